/* Shape ops: concat, slice, reshape (a copy), nearest resize and the ResNet option-A
 * shortcut. All are copies with index arithmetic; backward scatters (accumulates) the
 * output gradient back to where each element came from. Every output element has one
 * source, and the backward loops are split so that no two threads write the same input
 * element: results do not depend on the thread count. */
#include "ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

static void add_to(float *restrict dst, const float *restrict src, int64_t n) {
#pragma omp simd
    for (int64_t k = 0; k < n; k++) dst[k] += src[k];
}

/* Product of shape[from..to). */
static int64_t span(const lt_tensor *t, int from, int to) {
    int64_t p = 1;
    for (int k = from; k < to; k++) p *= t->shape[k];
    return p;
}

/* ---- concat ---- */

lt_tensor *lt_concat(lt_ctx *ctx, lt_tensor *const *xs, int n, int axis) {
    if (ctx->status != LT_OK) return NULL;
    if (!xs || n < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "concat: %s", !xs ? "xs is NULL" : "n < 1 inputs");
    for (int k = 0; k < n; k++)
        if (!xs[k]) return lt_ctx_fail(ctx, LT_ERR_ARG, "concat: input %d is NULL", k);
    const lt_tensor *x0 = xs[0];
    if (axis < 0 || axis >= x0->ndim)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "concat: axis %d is outside [0, %d)", axis, x0->ndim);
    int64_t shape[LT_MAX_DIMS];
    for (int d = 0; d < x0->ndim; d++) shape[d] = x0->shape[d];
    for (int k = 1; k < n; k++) {
        const lt_tensor *x = xs[k];
        int ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            if (d != axis && x->shape[d] != x0->shape[d]) ok = 0;
        if (!ok) {
            char s0[64], sk[64];
            return lt_ctx_fail(ctx, LT_ERR_SHAPE,
                               "concat: input %d %s does not match input 0 %s outside axis %d",
                               k, lt_shape_str(x, sk, sizeof sk), lt_shape_str(x0, s0, sizeof s0), axis);
        }
        shape[axis] += x->shape[axis];
    }
    lt_tensor *out = lt_tensor_new(ctx, x0->ndim, shape);
    if (!out) return NULL;
    /* View every tensor as (outer, row); the output row is the inputs' rows side by side. */
    int64_t outer = span(x0, 0, axis), inner = span(x0, axis + 1, x0->ndim);
    int64_t orow = shape[axis] * inner;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = 0;
        for (int k = 0; k < n; k++) {
            int64_t row = xs[k]->shape[axis] * inner;
            memcpy(out->data + o * orow + off, xs[k]->data + o * row, (size_t)row * sizeof(float));
            off += row;
        }
    }
    /* The node holds at most LT_NODE_MAX_IN inputs: with more, it records one input that
     * needs a gradient (so the tape knows one is wanted) and keeps the full list in aux[0]. */
    lt_tensor *rec[LT_NODE_MAX_IN];
    int nrec = n <= LT_NODE_MAX_IN ? n : 1;
    if (n <= LT_NODE_MAX_IN) {
        for (int k = 0; k < n; k++) rec[k] = xs[k];
    } else {
        rec[0] = xs[0];
        for (int k = 0; k < n; k++)
            if (xs[k]->requires_grad) { rec[0] = xs[k]; break; }
    }
    lt_node *nd = lt_tape_record(ctx, LT_OP_CONCAT, out, nrec, rec);
    if (nd) {
        lt_tensor **list = lt_ctx_alloc(ctx, (size_t)n * sizeof *list);
        if (!list) return NULL;
        memcpy(list, xs, (size_t)n * sizeof *list);
        nd->aux[0] = list;
        nd->i[0] = n;
        nd->i[1] = axis;
    }
    return out;
}

void lt_concat_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *const *xs = nd->aux[0];
    int n = (int)nd->i[0], axis = (int)nd->i[1];
    const lt_tensor *out = nd->out;
    int64_t outer = span(out, 0, axis), inner = span(out, axis + 1, out->ndim);
    int64_t orow = out->shape[axis] * inner, off = 0;
    for (int k = 0; k < n; k++) {
        int64_t row = xs[k]->shape[axis] * inner;
        float *gk = lt_tensor_grad(ctx, xs[k]);
        if (gk) {
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++) add_to(gk + o * row, out->grad + o * orow + off, row);
        }
        off += row;
    }
}

/* ---- slice: x[..., start : start + len, ...] along axis ---- */

lt_tensor *lt_slice(lt_ctx *ctx, lt_tensor *x, int axis, int64_t start, int64_t len) {
    if (lt_ops_bad_inputs(ctx, "slice", 1, x)) return NULL;
    if (axis < 0 || axis >= x->ndim)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "slice: axis %d is outside [0, %d)", axis, x->ndim);
    if (start < 0 || len < 1 || start > x->shape[axis] - len) {
        char s[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "slice: [%lld, %lld + %lld) does not fit axis %d of x %s",
                           (long long)start, (long long)start, (long long)len, axis, lt_shape_str(x, s, sizeof s));
    }
    int64_t shape[LT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == axis ? len : x->shape[d];
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, shape);
    if (!out) return NULL;
    int64_t outer = span(x, 0, axis), inner = span(x, axis + 1, x->ndim);
    int64_t xrow = x->shape[axis] * inner, orow = len * inner;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++)
        memcpy(out->data + o * orow, x->data + o * xrow + start * inner, (size_t)orow * sizeof(float));
    lt_node *nd = lt_tape_record(ctx, LT_OP_SLICE, out, 1, (lt_tensor *[]){x});
    if (nd) { nd->i[0] = axis; nd->i[1] = start; }
    return out;
}

void lt_slice_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *gx = lt_tensor_grad(ctx, x);
    if (!gx) return;
    int axis = (int)nd->i[0];
    int64_t start = nd->i[1], len = nd->out->shape[axis];
    int64_t outer = span(x, 0, axis), inner = span(x, axis + 1, x->ndim);
    int64_t xrow = x->shape[axis] * inner, orow = len * inner;
#pragma omp parallel for if (nd->out->numel > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) add_to(gx + o * xrow + start * inner, nd->out->grad + o * orow, orow);
}

/* ---- reshape (a copy; one dim may be -1) ---- */

lt_tensor *lt_reshape(lt_ctx *ctx, lt_tensor *x, int ndim, const int64_t *shape) {
    if (lt_ops_bad_inputs(ctx, "reshape", 1, x)) return NULL;
    if (!shape || ndim < 1 || ndim > LT_MAX_DIMS)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "reshape: %s", !shape ? "shape is NULL" : "ndim outside [1, 4]");
    int64_t s[LT_MAX_DIMS], known = 1;
    int infer = -1, fits = 1;
    for (int d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (s[d] == -1 && infer < 0) { infer = d; continue; }
        if (s[d] < 1) return lt_ctx_fail(ctx, LT_ERR_SHAPE, "reshape: dim %d is %lld (expected > 0, or one -1)", d, (long long)s[d]);
        if (known > x->numel / s[d]) fits = 0;  /* the product already exceeds numel */
        else known *= s[d];
    }
    if (infer >= 0 && fits && x->numel % known == 0) { s[infer] = x->numel / known; known = x->numel; }
    if (!fits || known != x->numel) {
        char sx[64], want[96];
        size_t k = 0;
        for (int d = 0; d < ndim && k < sizeof want; d++)
            k += (size_t)snprintf(want + k, sizeof want - k, d ? ", %lld" : "%lld", (long long)shape[d]);
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "reshape: x %s has %lld elements, which shape (%s) cannot hold",
                           lt_shape_str(x, sx, sizeof sx), (long long)x->numel, want);
    }
    lt_tensor *out = lt_tensor_new(ctx, ndim, s);
    if (!out) return NULL;
    memcpy(out->data, x->data, (size_t)x->numel * sizeof(float));
    lt_tape_record(ctx, LT_OP_RESHAPE, out, 1, (lt_tensor *[]){x});
    return out;
}

void lt_reshape_backward(lt_ctx *ctx, const lt_node *nd) {
    float *gx = lt_tensor_grad(ctx, nd->in[0]);
    if (!gx) return;
    int64_t n = nd->out->numel;
    const float *g = nd->out->grad;
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t k = 0; k < n; k++) gx[k] += g[k];
}

/* ---- resize_nearest: NHWC, PyTorch's mode='nearest' ---- */

/* Source index of output index o, exactly as PyTorch's nearest_idx (UpSample.h) computes
 * it for an explicit output size: equal size copies, 2x halves, else floor(o · (float)(in/out)). */
static int64_t nearest_src(int64_t o, int64_t in, int64_t out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)o * scale);
    return s < in - 1 ? s : in - 1;
}

static int check_image(lt_ctx *ctx, const char *op, const lt_tensor *x) {
    if (x->ndim == 4) return 0;
    char s[64];
    lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s: x must be NHWC (N, H, W, C), got %s", op, lt_shape_str(x, s, sizeof s));
    return -1;
}

lt_tensor *lt_resize_nearest(lt_ctx *ctx, lt_tensor *x, int64_t out_h, int64_t out_w) {
    if (lt_ops_bad_inputs(ctx, "resize_nearest", 1, x) || check_image(ctx, "resize_nearest", x)) return NULL;
    if (out_h < 1 || out_w < 1)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "resize_nearest: output size %lldx%lld (expected >= 1)",
                           (long long)out_h, (long long)out_w);
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    lt_tensor *out = lt_tensor_new4(ctx, N, out_h, out_w, C);
    if (!out) return NULL;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < N * out_h; r++) {
        int64_t nn = r / out_h, sy = nearest_src(r % out_h, H, out_h);
        for (int64_t ox = 0; ox < out_w; ox++) {
            int64_t sx = nearest_src(ox, W, out_w);
            memcpy(out->data + (r * out_w + ox) * C, x->data + ((nn * H + sy) * W + sx) * C, (size_t)C * sizeof(float));
        }
    }
    lt_tape_record(ctx, LT_OP_RESIZE_NEAREST, out, 1, (lt_tensor *[]){x});
    return out;
}

/* Several outputs may read one input pixel (upsampling): threads split over images, each
 * image is summed in output order by one thread. */
void lt_resize_nearest_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *gx = lt_tensor_grad(ctx, x);
    if (!gx) return;
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t OH = nd->out->shape[1], OW = nd->out->shape[2];
    const float *g = nd->out->grad;
#pragma omp parallel for if (nd->out->numel > PAR_MIN) schedule(static)
    for (int64_t nn = 0; nn < N; nn++)
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t sy = nearest_src(oy, H, OH);
            for (int64_t ox = 0; ox < OW; ox++)
                add_to(gx + ((nn * H + sy) * W + nearest_src(ox, W, OW)) * C,
                       g + ((nn * OH + oy) * OW + ox) * C, C);
        }
}

/* ---- shortcut_a: ResNet option A (He et al. 2016, CIFAR ResNets) ----
 * y[n, oy, ox, before + c] = x[n, oy·s, ox·s, c], zeros in the other channels, with
 * before = (out_c - C) / 2 and after = out_c - C - before. For out_c = 2C this is the
 * LambdaLayer F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)). */

lt_tensor *lt_shortcut_a(lt_ctx *ctx, lt_tensor *x, int64_t out_c, int stride) {
    if (lt_ops_bad_inputs(ctx, "shortcut_a", 1, x) || check_image(ctx, "shortcut_a", x)) return NULL;
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    if (stride < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "shortcut_a: stride %d (expected >= 1)", stride);
    if (out_c < C)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "shortcut_a: out_c %lld is less than the %lld input channels",
                           (long long)out_c, (long long)C);
    int64_t OH = (H + stride - 1) / stride, OW = (W + stride - 1) / stride, before = (out_c - C) / 2;
    lt_tensor *out = lt_tensor_new4(ctx, N, OH, OW, out_c);
    if (!out) return NULL;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < N * OH; r++) {
        int64_t nn = r / OH, iy = (r % OH) * stride;
        for (int64_t ox = 0; ox < OW; ox++) {
            float *dst = out->data + (r * OW + ox) * out_c;
            memset(dst, 0, (size_t)before * sizeof(float));
            memcpy(dst + before, x->data + ((nn * H + iy) * W + ox * stride) * C, (size_t)C * sizeof(float));
            memset(dst + before + C, 0, (size_t)(out_c - C - before) * sizeof(float));
        }
    }
    lt_node *nd = lt_tape_record(ctx, LT_OP_SHORTCUT_A, out, 1, (lt_tensor *[]){x});
    if (nd) { nd->i[0] = stride; nd->i[1] = before; }
    return out;
}

void lt_shortcut_a_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *gx = lt_tensor_grad(ctx, x);
    if (!gx) return;
    int64_t H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t s = nd->i[0], before = nd->i[1];
    int64_t OH = nd->out->shape[1], OW = nd->out->shape[2], OC = nd->out->shape[3];
    const float *g = nd->out->grad;
#pragma omp parallel for if (nd->out->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < x->shape[0] * OH; r++) {
        int64_t nn = r / OH, iy = (r % OH) * s;
        for (int64_t ox = 0; ox < OW; ox++)
            add_to(gx + ((nn * H + iy) * W + ox * s) * C, g + (r * OW + ox) * OC + before, C);
    }
}
