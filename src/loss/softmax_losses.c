/* Softmax-family losses: class-balanced cross-entropy (both normalizations) and the WB
 * code's BCE-on-softmax, focal, LDAM, logit adjustment / balanced softmax, softmax
 * equalization loss, label-aware smoothing. Each is a short composition of ops.h; the
 * formulas and their sources are in loss.h. */
#include "loss_internal.h"

#include <float.h>
#include <math.h>

/* A scratch float array of n elements in the arena (as a tensor, for the sticky error). */
static float *scratch(lt_ctx *ctx, int64_t n) {
    lt_tensor *t = lt_tensor_new1(ctx, n);
    return t ? t->data : NULL;
}

/* ---- class-balanced softmax ---- */

lt_tensor *lt_loss_cb_softmax(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                              const float *class_weight, lt_reduction reduction) {
    if (lt_loss_check_logits(ctx, "cb_softmax", logits, labels, 1)) return NULL;
    return lt_cross_entropy(ctx, logits, labels, class_weight, 0.0f, reduction);
}

/* L = −1/(B C) [Σ M1 ⊙ log_softmax(z) + Σ M0 ⊙ log(1 − softmax(z))] with the constant
 * masks M1 = w_{y_i} on the label, M0 = w_{y_i} off it. */
lt_tensor *lt_loss_cb_softmax_bce(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                  const float *class_weight) {
    if (lt_loss_check_logits(ctx, "cb_softmax_bce", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    lt_tensor *m1 = lt_loss_row_weights(ctx, labels, B, C, class_weight, 1);
    lt_tensor *m0 = lt_loss_row_weights(ctx, labels, B, C, class_weight, -1);
    lt_tensor *logp = lt_log_softmax(ctx, logits);
    lt_tensor *q = lt_add_scalar(ctx, lt_scale(ctx, lt_softmax(ctx, logits), -1.0f), 1.0f);
    lt_tensor *log1mp = lt_log(ctx, lt_clamp(ctx, q, FLT_MIN, 1.0f));
    lt_tensor *s = lt_add(ctx, lt_mul(ctx, logp, m1), lt_mul(ctx, log1mp, m0));
    return lt_scale(ctx, lt_sum(ctx, s, LT_AXES_ALL), -1.0f / (float)(B * C));
}

/* ---- focal ---- */

lt_tensor *lt_loss_focal(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                         const float *class_weight, float gamma) {
    if (lt_loss_check_logits(ctx, "focal", logits, labels, 1)) return NULL;
    if (!(gamma >= 0.0f && isfinite(gamma)))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "focal: gamma = %g, expected a finite value >= 0", (double)gamma);
    lt_tensor *ce = lt_cross_entropy(ctx, logits, labels, class_weight, 0.0f, LT_REDUCE_NONE);
    if (gamma == 0.0f) return lt_mean(ctx, ce, LT_AXES_ALL);
    /* 1 − p_t with p_t = exp(−CE); CE >= 0 so it lies in [0, 1] (the clamp only guards the
     * power against a rounding below 0). */
    lt_tensor *one_m_pt = lt_add_scalar(ctx, lt_scale(ctx, lt_exp(ctx, lt_scale(ctx, ce, -1.0f)), -1.0f), 1.0f);
    lt_tensor *mod = lt_pow(ctx, lt_clamp(ctx, one_m_pt, 0.0f, 1.0f), gamma);
    return lt_mean(ctx, lt_mul(ctx, mod, ce), LT_AXES_ALL);
}

/* ---- LDAM ---- */

lt_tensor *lt_loss_ldam(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                        const int64_t *class_counts, float max_m, float s,
                        const float *class_weight) {
    if (lt_loss_check_logits(ctx, "ldam", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    if (lt_loss_check_counts(ctx, "ldam", class_counts, C, 1)) return NULL;
    if (!(s > 0.0f && isfinite(s)))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "ldam: scale s = %g, expected a finite value > 0", (double)s);
    float *delta = scratch(ctx, C);
    if (!delta || lt_loss_from_status(ctx, lt_ldam_margins(class_counts, C, max_m, delta))) return NULL;
    /* The margin matrix: Δ_{y_i} at (i, y_i), 0 elsewhere (LDAMLoss's torch.where). */
    lt_tensor *margin = lt_loss_const2(ctx, B, C);
    if (!margin) return NULL;
    for (int64_t i = 0; i < B; i++)
        for (int64_t k = 0; k < C; k++) margin->data[i * C + k] = k == labels[i] ? delta[k] : 0.0f;
    lt_tensor *z = lt_scale(ctx, lt_sub(ctx, logits, margin), s);
    return lt_cross_entropy(ctx, z, labels, class_weight, 0.0f, LT_REDUCE_MEAN);
}

/* ---- logit adjustment / balanced softmax ---- */

lt_tensor *lt_loss_logit_adjusted(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                  const int64_t *class_counts, float tau) {
    if (lt_loss_check_logits(ctx, "logit_adjusted", logits, labels, 1)) return NULL;
    int64_t C = logits->shape[1];
    if (lt_loss_check_counts(ctx, "logit_adjusted", class_counts, C, 1)) return NULL;
    if (!isfinite(tau)) return lt_ctx_fail(ctx, LT_ERR_ARG, "logit_adjusted: tau = %g is not finite", (double)tau);
    lt_tensor *adj = lt_tensor_new1(ctx, C);   /* τ log π_c, broadcast over the rows */
    if (!adj) return NULL;
    double total = 0;
    for (int64_t c = 0; c < C; c++) total += (double)class_counts[c];
    for (int64_t c = 0; c < C; c++) adj->data[c] = (float)((double)tau * log((double)class_counts[c] / total));
    return lt_cross_entropy(ctx, lt_add(ctx, logits, adj), labels, NULL, 0.0f, LT_REDUCE_MEAN);
}

lt_tensor *lt_loss_balanced_softmax(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                    const int64_t *class_counts) {
    return lt_loss_logit_adjusted(ctx, logits, labels, class_counts, 1.0f);
}

/* ---- softmax equalization loss ---- */

lt_tensor *lt_loss_seql_weighted(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                 const float *w_tilde) {
    if (lt_loss_check_logits(ctx, "seql", logits, labels, 1)) return NULL;
    if (!w_tilde) return lt_ctx_fail(ctx, LT_ERR_ARG, "seql: w_tilde is NULL");
    int64_t B = logits->shape[0], C = logits->shape[1];
    lt_tensor *logw = lt_loss_const2(ctx, B, C);
    if (!logw) return NULL;
    for (int64_t i = 0; i < B; i++)
        for (int64_t k = 0; k < C; k++) {
            float v = w_tilde[i * C + k];
            if (!(v >= 0.0f && isfinite(v)) || (k == labels[i] && v != 1.0f))
                return lt_ctx_fail(ctx, LT_ERR_ARG, "seql: w_tilde[%lld][%lld] = %g, expected %s", (long long)i,
                                   (long long)k, (double)v, k == labels[i] ? "1 at the label" : "a finite value >= 0");
            /* Σ_k w̃_k e^{z_k} = Σ_k e^{z_k + log w̃_k}; w̃_y = 1 keeps z_y as it is. */
            logw->data[i * C + k] = v > 0.0f ? logf(v) : LT_LOSS_LOG_ZERO;
        }
    return lt_cross_entropy(ctx, lt_add(ctx, logits, logw), labels, NULL, 0.0f, LT_REDUCE_MEAN);
}

lt_tensor *lt_loss_seql(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                        const int64_t *class_counts, float lambda, float gamma, lt_rng *rng) {
    if (lt_loss_check_logits(ctx, "seql", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    if (lt_loss_check_counts(ctx, "seql", class_counts, C, 0)) return NULL;
    lt_tensor *w = lt_loss_const2(ctx, B, C);
    if (!w || lt_loss_from_status(ctx, lt_seql_weights(rng, labels, B, class_counts, C, lambda, gamma, w->data)))
        return NULL;
    return lt_loss_seql_weighted(ctx, logits, labels, w->data);
}

/* ---- label-aware smoothing ---- */

/* L = −1/B Σ_{i,k} a_{ik} log p_{ik} with the target a_{ik} = (1 − ε_{y_i}) [k = y_i] + ε_{y_i} / C,
 * which is (1 − ε) nll + ε · mean_k (−log p_k) row by row. */
lt_tensor *lt_loss_las(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                       const int64_t *class_counts, float eps_head, float eps_tail) {
    if (lt_loss_check_logits(ctx, "las", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    if (lt_loss_check_counts(ctx, "las", class_counts, C, 0)) return NULL;
    float *eps = scratch(ctx, C);
    if (!eps || lt_loss_from_status(ctx, lt_las_smoothing(class_counts, C, eps_head, eps_tail, eps)))
        return NULL;
    lt_tensor *target = lt_loss_const2(ctx, B, C);
    if (!target) return NULL;
    for (int64_t i = 0; i < B; i++) {
        float e = eps[labels[i]];
        for (int64_t k = 0; k < C; k++)
            target->data[i * C + k] = (k == labels[i] ? 1.0f - e : 0.0f) + e / (float)C;
    }
    lt_tensor *s = lt_sum(ctx, lt_mul(ctx, lt_log_softmax(ctx, logits), target), LT_AXES_ALL);
    return lt_scale(ctx, s, -1.0f / (float)B);
}
