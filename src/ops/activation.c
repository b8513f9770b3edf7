/* Activations: ReLU, per-channel PReLU, and sign with a straight-through estimator.
 *
 * ReLU runs on every conv block's output, so it is one contiguous vectorized loop,
 * threaded above PAR_MIN elements; backward reads the saved output (y > 0), as PyTorch
 * does, so no mask is stored. */
#include "backend.h"
#include "colsum.h"

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

/* ---- relu: y = max(x, 0); NaN propagates ---- */

lt_tensor *lt_relu(lt_ctx *ctx, lt_tensor *x) {
    if (lt_ops_bad_inputs(ctx, "relu", 1, x)) return NULL;
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, x->shape);
    if (!out) return NULL;
    const float *px = x->data;
    float *py = out->data;
    int64_t n = x->numel;
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) py[i] = px[i] < 0.0f ? 0.0f : px[i];
    lt_tape_record(ctx, LT_OP_RELU, out, 1, (lt_tensor *[]){x});
    return out;
}

/* dx += g · [y > 0]  (0 at x = 0, as PyTorch). x's first gradient is written, not
 * zero-filled and added to (the usual case: a conv's output feeds only this ReLU). */
void lt_relu_backward(lt_ctx *ctx, const lt_node *nd) {
    int fresh;
    float *gx = lt_grad_for_write(ctx, nd->in[0], &fresh);
    if (!gx) return;
    const float *g = nd->out->grad, *y = nd->out->data;
    int64_t n = nd->out->numel;
    if (fresh) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] = y[i] > 0.0f ? g[i] + 0.0f : 0.0f;
    } else {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += y[i] > 0.0f ? g[i] : 0.0f;
    }
}

/* ---- prelu: y = x if x > 0 else alpha[c] · x, c = index along the last axis ---- */

lt_tensor *lt_prelu(lt_ctx *ctx, lt_tensor *x, lt_tensor *alpha) {
    if (lt_ops_bad_inputs(ctx, "prelu", 2, x, alpha)) return NULL;
    int64_t c = x->shape[x->ndim - 1];
    if (alpha->ndim != 1 || (alpha->numel != c && alpha->numel != 1)) {
        char sx[64], sa[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE,
                           "prelu: alpha %s must have shape (%lld) (the last dim of x %s) or (1)",
                           lt_shape_str(alpha, sa, sizeof sa), (long long)c, lt_shape_str(x, sx, sizeof sx));
    }
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, x->shape);
    if (!out) return NULL;
    const float *px = x->data, *pa = alpha->data;
    float *py = out->data;
    int64_t n = x->numel;
    if (alpha->numel == 1) {
        float a = pa[0];
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) py[i] = px[i] > 0.0f ? px[i] : a * px[i];
    } else {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < n / c; r++) {
            const float *xr = px + r * c;
            float *yr = py + r * c;
#pragma omp simd
            for (int64_t j = 0; j < c; j++) yr[j] = xr[j] > 0.0f ? xr[j] : pa[j] * xr[j];
        }
    }
    lt_tape_record(ctx, LT_OP_PRELU, out, 2, (lt_tensor *[]){x, alpha});
    return out;
}

/* dx += g · (x > 0 ? 1 : alpha_c);  dalpha_c += Σ_{rows} g · min(x, 0) */
void lt_prelu_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0], *alpha = nd->in[1];
    const float *g = nd->out->grad, *px = x->data, *pa = alpha->data;
    int64_t n = x->numel, na = alpha->numel;
    float *gx = lt_tensor_grad(ctx, x), *galpha = lt_tensor_grad(ctx, alpha);
    if (gx && na == 1) {
        float a = pa[0];
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += px[i] > 0.0f ? g[i] : a * g[i];
    } else if (gx) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < n / na; r++) {
            const float *xr = px + r * na, *gr = g + r * na;
            float *gxr = gx + r * na;
#pragma omp simd
            for (int64_t j = 0; j < na; j++) gxr[j] += xr[j] > 0.0f ? gr[j] : pa[j] * gr[j];
        }
    }
    if (galpha) {
        double *acc = lt_ctx_alloc(ctx, (size_t)na * sizeof(double));
        if (!acc || lt_colsum(ctx, g, px, LT_COLSUM_NEGPART, n / na, na, acc)) return;
        for (int64_t j = 0; j < na; j++) galpha[j] += (float)acc[j];
    }
}

/* ---- sign with a straight-through estimator ---- */

lt_tensor *lt_sign_ste(lt_ctx *ctx, lt_tensor *x, lt_ste ste) {
    if (lt_ops_bad_inputs(ctx, "sign_ste", 1, x)) return NULL;
    if (ste != LT_STE_CLIPPED && ste != LT_STE_APPROX)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "sign_ste: estimator %d is not LT_STE_CLIPPED (0) or LT_STE_APPROX (1)", (int)ste);
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, x->shape);
    if (!out) return NULL;
    const float *px = x->data;
    float *py = out->data;
    int64_t n = x->numel;
    /* sign(0) = +1: a binary net has no zero weight or activation. */
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) py[i] = px[i] >= 0.0f ? 1.0f : -1.0f;
    lt_node *nd = lt_tape_record(ctx, LT_OP_SIGN_STE, out, 1, (lt_tensor *[]){x});
    if (nd) nd->i[0] = ste;
    return out;
}

/* Clipped STE (BNN, Courbariaux et al. 2016): dx += g · [|x| <= 1].
 * ApproxSign (Bi-Real Net, Liu et al. 2018): dx += g · (2 + 2x on [-1, 0), 2 - 2x on
 * [0, 1), 0 elsewhere), the derivative of the piecewise quadratic that approximates sign. */
void lt_sign_ste_backward(lt_ctx *ctx, const lt_node *nd) {
    float *gx = lt_tensor_grad(ctx, nd->in[0]);
    if (!gx) return;
    const float *g = nd->out->grad, *px = nd->in[0]->data;
    int64_t n = nd->out->numel;
    if (nd->i[0] == LT_STE_CLIPPED) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += (px[i] >= -1.0f && px[i] <= 1.0f) ? g[i] : 0.0f;
    } else {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float x = px[i];
            float d = x >= -1.0f && x < 0.0f ? 2.0f + 2.0f * x : (x >= 0.0f && x < 1.0f ? 2.0f - 2.0f * x : 0.0f);
            gx[i] += g[i] * d;
        }
    }
}
