/* The op table: name and backward of every differentiable op, indexed by enum lt_op.
 * Each op file's owner adds its entries here when the op lands; the unit test
 * "op_table_complete" fails while any entry is missing. */
#include "ops_internal.h"

#include <stdarg.h>

_Static_assert(LT_OP_COUNT == 35, "enum lt_op changed: update lt_op_table and this count");

const lt_op_info lt_op_table[LT_OP_COUNT] = {
    /* elementwise.c */
    /* activation.c */
    /* reduce.c */
    /* softmax.c */
    /* norm_rows.c */
    /* shape.c */
    /* matmul.c, conv.c */
    /* batchnorm.c, pool.c */
};

int lt_ops_bad_inputs(lt_ctx *ctx, const char *op, int n, ...) {
    if (ctx->status != LT_OK) return 1;
    va_list ap;
    va_start(ap, n);
    int bad = -1;
    for (int k = 0; k < n; k++) {
        const lt_tensor *t = va_arg(ap, const lt_tensor *);
        if (!t && bad < 0) bad = k;
    }
    va_end(ap);
    if (bad >= 0) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: input %d is NULL", op, bad);
        return 1;
    }
    return 0;
}
