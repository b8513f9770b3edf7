/* Pooling over NHWC images, PyTorch semantics (floor mode):
 *   avgpool2d(k, s):      no padding, out = mean of the k×k window (divisor k²);
 *   maxpool2d(k, s, p):   padding counts as -inf (p <= k/2 as PyTorch requires), gradient
 *                         to the first maximum of each window in (kh, kw) order;
 *   global_avgpool:       (N, H, W, C) -> (N, C), mean over H·W.
 * Loops run over images in parallel; an image's gradient is written by one thread in a
 * fixed order, so results do not depend on the thread count. */
#include "backend.h"
#include "ops_internal.h"

#include <math.h>
#include <string.h>

static int pool_check(lt_ctx *ctx, const char *op, const lt_tensor *x, int k, int stride, int pad) {
    char bx[64];
    if (x->ndim != 4) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s: x %s must be 4-D (N, H, W, C)", op, lt_shape_str(x, bx, sizeof bx));
        return 0;
    }
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: kernel %d, stride %d, pad %d: need kernel >= 1, stride >= 1, 0 <= pad <= kernel/2",
                    op, k, stride, pad);
        return 0;
    }
    if (k > x->shape[1] + 2 * pad || k > x->shape[2] + 2 * pad) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s: kernel %d is larger than the %s input x %s", op, k,
                    pad ? "padded" : "", lt_shape_str(x, bx, sizeof bx));
        return 0;
    }
    return 1;
}

/* ---- average pooling ---- */

/* out[n,oh,ow,c] = (1/k²) Σ_{i,j<k} x[n, oh·s+i, ow·s+j, c]
 * x (N,H,W,C) -> out (N,OH,OW,C), OH = (H-k)/s + 1 */
lt_tensor *lt_avgpool2d(lt_ctx *ctx, lt_tensor *x, int k, int stride) {
    if (lt_ops_bad_inputs(ctx, "avgpool2d", 1, x)) return NULL;
    if (!pool_check(ctx, "avgpool2d", x, k, stride, 0)) return NULL;
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t OH = (H - k) / stride + 1, OW = (W - k) / stride + 1;
    lt_tensor *out = lt_tensor_new4(ctx, N, OH, OW, C);
    if (!out) return NULL;
    const float *xd = x->data;
    float *od = out->data;
    const float inv = 1.0f / (float)(k * k);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float *restrict o = od + ((n * OH + oh) * OW + ow) * C;
                for (int64_t c = 0; c < C; c++) o[c] = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        const float *restrict xi = xd + ((n * H + oh * stride + i) * W + ow * stride + j) * C;
                        #pragma omp simd
                        for (int64_t c = 0; c < C; c++) o[c] += xi[c];
                    }
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) o[c] *= inv;
            }
    lt_node *nd = lt_tape_record(ctx, LT_OP_AVGPOOL, out, 1, (lt_tensor *[]){x});
    if (nd) {
        nd->i[0] = k;
        nd->i[1] = stride;
    }
    return out;
}

/* dx[n, oh·s+i, ow·s+j, c] += dy[n,oh,ow,c] / k² */
void lt_avgpool_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *dx = lt_tensor_grad(ctx, x);
    if (!dx) return;
    int k = (int)nd->i[0], stride = (int)nd->i[1];
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t OH = nd->out->shape[1], OW = nd->out->shape[2];
    const float *dy = nd->out->grad;
    const float inv = 1.0f / (float)(k * k);
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *restrict g = dy + ((n * OH + oh) * OW + ow) * C;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        float *restrict d = dx + ((n * H + oh * stride + i) * W + ow * stride + j) * C;
                        #pragma omp simd
                        for (int64_t c = 0; c < C; c++) d[c] += g[c] * inv;
                    }
            }
}

/* ---- max pooling ---- */

/* out[n,oh,ow,c] = max over the window of x (padding = -inf); aux[0] keeps, per output
 * element, the index h·W + w of the chosen input (the first maximum; a NaN wins, as in
 * PyTorch). x (N,H,W,C) -> out (N,OH,OW,C), OH = (H + 2p - k)/s + 1 */
lt_tensor *lt_maxpool2d(lt_ctx *ctx, lt_tensor *x, int k, int stride, int pad) {
    if (lt_ops_bad_inputs(ctx, "maxpool2d", 1, x)) return NULL;
    if (!pool_check(ctx, "maxpool2d", x, k, stride, pad)) return NULL;
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    if (H * W > INT32_MAX)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "maxpool2d: %lldx%lld image is too large", (long long)H, (long long)W);
    int64_t OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    lt_tensor *out = lt_tensor_new4(ctx, N, OH, OW, C);
    if (!out) return NULL;
    lt_node *nd = lt_tape_record(ctx, LT_OP_MAXPOOL, out, 1, (lt_tensor *[]){x});
    if (ctx->status != LT_OK) return NULL;
    int32_t *arg = NULL;
    if (nd) {
        arg = lt_ctx_alloc(ctx, (size_t)out->numel * sizeof(int32_t));
        if (!arg) return NULL;
        nd->i[0] = k;
        nd->i[1] = stride;
        nd->i[2] = pad;
        nd->aux[0] = arg;
    }
    const float *xd = x->data;
    float *od = out->data;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * stride - pad, h1 = h0 + k;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * stride - pad, w1 = w0 + k;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                int64_t off = ((n * OH + oh) * OW + ow) * C;
                float *restrict o = od + off;
                int32_t *restrict a = arg ? arg + off : NULL;
                int32_t first = (int32_t)(h0 * W + w0);
                for (int64_t c = 0; c < C; c++) o[c] = -INFINITY;
                if (a) for (int64_t c = 0; c < C; c++) a[c] = first;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        const float *restrict xi = xd + ((n * H + h) * W + w) * C;
                        int32_t pos = (int32_t)(h * W + w);
                        if (a) {
                            for (int64_t c = 0; c < C; c++)
                                if (xi[c] > o[c] || isnan(xi[c])) { o[c] = xi[c]; a[c] = pos; }
                        } else {
                            for (int64_t c = 0; c < C; c++)
                                if (xi[c] > o[c] || isnan(xi[c])) o[c] = xi[c];
                        }
                    }
            }
        }
    return out;
}

/* dx[n, argmax] += dy */
void lt_maxpool_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *dx = lt_tensor_grad(ctx, x);
    if (!dx) return;
    int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t OHW = nd->out->shape[1] * nd->out->shape[2];
    const float *dy = nd->out->grad;
    const int32_t *arg = nd->aux[0];
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float *dxn = dx + n * H * W * C;
        for (int64_t p = 0; p < OHW; p++) {
            int64_t off = (n * OHW + p) * C;
            for (int64_t c = 0; c < C; c++) dxn[(int64_t)arg[off + c] * C + c] += dy[off + c];
        }
    }
}

/* ---- global average pooling ---- */

/* out[n,c] = (1/HW) Σ_{h,w} x[n,h,w,c]   x (N,H,W,C) -> (N,C) */
lt_tensor *lt_global_avgpool(lt_ctx *ctx, lt_tensor *x) {
    if (lt_ops_bad_inputs(ctx, "global_avgpool", 1, x)) return NULL;
    char bx[64];
    if (x->ndim != 4)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "global_avgpool: x %s must be 4-D (N, H, W, C)", lt_shape_str(x, bx, sizeof bx));
    int64_t N = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    lt_tensor *out = lt_tensor_new2(ctx, N, C);
    double *acc = lt_ctx_alloc(ctx, (size_t)(N * C) * sizeof(double));
    if (!out || !acc) return NULL;
    const float *xd = x->data;
    float *od = out->data;
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        double *restrict s = acc + n * C;
        for (int64_t c = 0; c < C; c++) s[c] = 0;
        for (int64_t p = 0; p < HW; p++) {
            const float *restrict xi = xd + (n * HW + p) * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) s[c] += xi[c];
        }
        for (int64_t c = 0; c < C; c++) od[n * C + c] = (float)(s[c] / (double)HW);
    }
    lt_tape_record(ctx, LT_OP_GLOBAL_AVGPOOL, out, 1, (lt_tensor *[]){x});
    return out;
}

/* dx[n,h,w,c] += dy[n,c] / HW */
void lt_global_avgpool_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    int fresh;
    float *dx = lt_grad_for_write(ctx, x, &fresh);
    if (!dx) return;
    int64_t N = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    const float *dy = nd->out->grad;
    const float inv = 1.0f / (float)HW;
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < HW; p++) {
            float *restrict d = dx + (n * HW + p) * C;
            const float *restrict g = dy + n * C;
            if (fresh) {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) d[c] = g[c] * inv;
            } else {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) d[c] += g[c] * inv;
            }
        }
}
