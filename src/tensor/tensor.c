/* Tensor shape helpers. */
#include "longtail/tensor.h"

#include <stdio.h>

lt_status lt_tensor_set_shape(lt_tensor *t, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > LT_MAX_DIMS)
        return lt_error(LT_ERR_SHAPE, "tensor: %d dimensions (expected 1..%d)", ndim, LT_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return lt_error(LT_ERR_SHAPE, "tensor: dimension %d is %lld (expected > 0)", i, (long long)shape[i]);
        if (n > INT64_MAX / shape[i]) return lt_error(LT_ERR_SHAPE, "tensor: element count overflows");
        n *= shape[i];
    }
    t->ndim = ndim;
    for (int i = 0; i < LT_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = n;
    return LT_OK;
}

int lt_tensor_same_shape(const lt_tensor *a, const lt_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *lt_shape_str(const lt_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}
