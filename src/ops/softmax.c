/* Softmax, log-softmax over the last axis, and cross-entropy with PyTorch's semantics.
 *
 * Numerically stable: every row subtracts its max before exp (float expf, as PyTorch); the
 * denominator Σ exp is accumulated in double in index order, so rows give the same result for any thread
 * count. Rows are independent and run in parallel. */
#include "ops_internal.h"

#include <math.h>
#include <string.h>

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

/* y = softmax(x) (want_log = 0) or log_softmax(x) (want_log = 1) of one row of d elements. */
static void softmax_row(const float *x, float *y, int64_t d, int want_log) {
    float m = x[0];
    for (int64_t k = 1; k < d; k++) m = x[k] > m ? x[k] : m;
    double s = 0;
    if (want_log) {
        for (int64_t k = 0; k < d; k++) s += expf(x[k] - m);
        double lse = (double)m + log(s);
        for (int64_t k = 0; k < d; k++) y[k] = (float)((double)x[k] - lse);
    } else {
        for (int64_t k = 0; k < d; k++) {
            float e = expf(x[k] - m);   /* x - m <= 0: no overflow */
            y[k] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
#pragma omp simd
        for (int64_t k = 0; k < d; k++) y[k] *= inv;
    }
}

static lt_tensor *softmax_any(lt_ctx *ctx, enum lt_op op, const char *name, lt_tensor *x) {
    if (lt_ops_bad_inputs(ctx, name, 1, x)) return NULL;
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, x->shape);
    if (!out) return NULL;
    int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
    int want_log = op == LT_OP_LOG_SOFTMAX;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) softmax_row(x->data + r * d, out->data + r * d, d, want_log);
    lt_tape_record(ctx, op, out, 1, (lt_tensor *[]){x});
    return out;
}

lt_tensor *lt_softmax(lt_ctx *ctx, lt_tensor *x) { return softmax_any(ctx, LT_OP_SOFTMAX, "softmax", x); }
lt_tensor *lt_log_softmax(lt_ctx *ctx, lt_tensor *x) { return softmax_any(ctx, LT_OP_LOG_SOFTMAX, "log_softmax", x); }

/* softmax: dx += y ⊙ (g - Σ_k g_k y_k) */
void lt_softmax_backward(lt_ctx *ctx, const lt_node *nd) {
    float *gx = lt_tensor_grad(ctx, nd->in[0]);
    if (!gx) return;
    const lt_tensor *out = nd->out;
    int64_t d = out->shape[out->ndim - 1], rows = out->numel / d;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = out->grad + r * d, *y = out->data + r * d;
        float *gr = gx + r * d;
        double dot = 0;
        for (int64_t k = 0; k < d; k++) dot += (double)g[k] * y[k];
        float fd = (float)dot;
#pragma omp simd
        for (int64_t k = 0; k < d; k++) gr[k] += y[k] * (g[k] - fd);
    }
}

/* log_softmax: dx += g - softmax(x) · Σ_k g_k, softmax(x) = exp(y) */
void lt_log_softmax_backward(lt_ctx *ctx, const lt_node *nd) {
    float *gx = lt_tensor_grad(ctx, nd->in[0]);
    if (!gx) return;
    const lt_tensor *out = nd->out;
    int64_t d = out->shape[out->ndim - 1], rows = out->numel / d;
#pragma omp parallel for if (out->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = out->grad + r * d, *y = out->data + r * d;
        float *gr = gx + r * d;
        double sg = 0;
        for (int64_t k = 0; k < d; k++) sg += g[k];
        float fs = (float)sg;
        for (int64_t k = 0; k < d; k++) gr[k] += g[k] - expf(y[k]) * fs;
    }
}

/* ---- cross-entropy ----
 * With p = softmax(x_i), w = class weights (1 without), ε = label smoothing, C classes:
 *   l_i = (1-ε) w_{y_i} (-log p_{y_i}) + (ε/C) Σ_c w_c (-log p_c)
 * which is PyTorch's F.cross_entropy(weight=w, label_smoothing=ε, reduction='none').
 * Reductions: MEAN Σ l_i / Σ w_{y_i} (PyTorch 'mean'), SUM Σ l_i, BATCH_MEAN Σ l_i / B.
 * Gradient: writing l_i = Σ_c a_c (-log p_c) with a_c = (1-ε) w_y [c = y] + (ε/C) w_c,
 *   dl_i/dx_k = p_k Σ_c a_c - a_k. */

lt_tensor *lt_cross_entropy(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                            const float *class_weight, float label_smoothing,
                            lt_reduction reduction) {
    if (lt_ops_bad_inputs(ctx, "cross_entropy", 1, logits)) return NULL;
    if (logits->ndim != 2) {
        char s[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "cross_entropy: logits must be (B, C), got %s",
                           lt_shape_str(logits, s, sizeof s));
    }
    if (!labels) return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: labels is NULL");
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: label_smoothing %g is outside [0, 1]",
                           (double)label_smoothing);
    if ((int)reduction < LT_REDUCE_MEAN || (int)reduction > LT_REDUCE_NONE)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: reduction %d is not an lt_reduction", (int)reduction);
    int64_t B = logits->shape[0], C = logits->shape[1];
    for (int64_t i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: labels[%lld] = %d is outside [0, %lld)",
                               (long long)i, (int)labels[i], (long long)C);

    lt_tensor *out = reduction == LT_REDUCE_NONE ? lt_tensor_new1(ctx, B) : lt_tensor_new1(ctx, 1);
    double *li = out ? lt_ctx_alloc(ctx, (size_t)B * sizeof(double)) : NULL;
    if (!li) return NULL;
    lt_node *nd = lt_tape_record(ctx, LT_OP_CROSS_ENTROPY, out, 1, (lt_tensor *[]){logits});
    if (ctx->status != LT_OK) return NULL;
    float *probs = NULL;
    if (nd) {
        /* Saved for backward: probabilities, and copies of the caller's labels/weights. */
        probs = lt_ctx_alloc(ctx, (size_t)(B * C) * sizeof(float));
        int32_t *lab = lt_ctx_alloc(ctx, (size_t)B * sizeof(int32_t));
        float *w = class_weight ? lt_ctx_alloc(ctx, (size_t)C * sizeof(float)) : NULL;
        if (!probs || !lab || (class_weight && !w)) return NULL;
        memcpy(lab, labels, (size_t)B * sizeof(int32_t));
        if (w) memcpy(w, class_weight, (size_t)C * sizeof(float));
        nd->aux[0] = probs;
        nd->aux[1] = lab;
        nd->aux[2] = w;
    }

    double eps = label_smoothing, w_all = 0;  /* Σ_c w_c */
    for (int64_t c = 0; c < C; c++) w_all += class_weight ? class_weight[c] : 1.0;
    const float *x = logits->data;
#pragma omp parallel for if (B * C > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < B; i++) {
        const float *xr = x + i * C;
        float m = xr[0];
        for (int64_t c = 1; c < C; c++) m = xr[c] > m ? xr[c] : m;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += exp((double)xr[c] - m);
        double lse = m + log(s), smooth = 0;
        if (eps > 0)
            for (int64_t c = 0; c < C; c++) smooth += (class_weight ? class_weight[c] : 1.0) * (lse - xr[c]);
        int32_t y = labels[i];
        double wy = class_weight ? class_weight[y] : 1.0;
        li[i] = (1 - eps) * wy * (lse - xr[y]) + eps / (double)C * smooth;
        if (probs)
            for (int64_t c = 0; c < C; c++) probs[i * C + c] = (float)exp((double)xr[c] - lse);
    }

    double scale = 1;
    if (reduction == LT_REDUCE_NONE) {
        for (int64_t i = 0; i < B; i++) out->data[i] = (float)li[i];
    } else {
        double total = 0, wsum = 0;
        for (int64_t i = 0; i < B; i++) {
            total += li[i];
            wsum += class_weight ? class_weight[labels[i]] : 1.0;
        }
        if (reduction == LT_REDUCE_MEAN) scale = 1.0 / wsum;   /* Σ w_y = 0 gives NaN, as PyTorch */
        else if (reduction == LT_REDUCE_BATCH_MEAN) scale = 1.0 / (double)B;
        out->data[0] = (float)(total * scale);
    }
    if (nd) {
        nd->i[0] = reduction;
        nd->f[0] = label_smoothing;
        nd->f[1] = (float)scale;
        nd->f[2] = (float)w_all;
    }
    return out;
}

void lt_cross_entropy_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *logits = nd->in[0];
    float *gx = lt_tensor_grad(ctx, logits);
    if (!gx) return;
    int64_t B = logits->shape[0], C = logits->shape[1];
    const float *p = nd->aux[0], *w = nd->aux[2], *g = nd->out->grad;
    const int32_t *lab = nd->aux[1];
    int none = nd->i[0] == LT_REDUCE_NONE;
    float eps = nd->f[0], scale = nd->f[1], w_all = nd->f[2];
    float eps_c = eps / (float)C;
#pragma omp parallel for if (B * C > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < B; i++) {
        int32_t y = lab[i];
        float wy = w ? w[y] : 1.0f;
        float a_sum = (1.0f - eps) * wy + eps_c * w_all;   /* Σ_c a_c */
        float gs = none ? g[i] : g[0] * scale;
        const float *pr = p + i * C;
        float *gr = gx + i * C;
        for (int64_t c = 0; c < C; c++) {
            float a_c = eps_c * (w ? w[c] : 1.0f);
            gr[c] += gs * (pr[c] * a_sum - a_c);
        }
        gr[y] -= gs * (1.0f - eps) * wy;
    }
}
