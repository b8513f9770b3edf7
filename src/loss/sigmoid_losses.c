/* Sigmoid-family losses: class-balanced sigmoid and focal (Cui et al. 2019) and the
 * sigmoid equalization loss (Tan et al. 2020). Formulas and sources in loss.h.
 *
 * All three are Σ_{i,k} W_{ik} (1 − p_t)^γ (−log p_t) / norm over the B·C binary problems.
 * With u = z for a negative (y = 0) and u = −z for a positive (y = 1):
 *   −log p_t = softplus(u) = log(1 + e^u),   1 − p_t = σ(u),
 * and both come from one stable, smooth op: log_softmax([0, u]) = [−softplus(u), log σ(u)].
 * (relu(u) + log(1 + exp(−|u|)) would need abs and relu, whose derivative at u = 0 is 0
 * where the true derivative is σ(0) = 1/2: zero logits are common at initialization.) */
#include "loss_internal.h"

#include <math.h>

/* Σ W ⊙ σ(u)^γ ⊙ softplus(u) / norm, W a constant (B, C) tensor (reshaped here). */
static lt_tensor *sigmoid_family(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                 lt_tensor *w, float gamma, double norm) {
    if (!w) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1], n = B * C;
    lt_tensor *sign = lt_loss_const2(ctx, B, C);
    lt_tensor *zero = lt_tensor_zeros(ctx, 2, (int64_t[]){n, 1});
    if (!sign || !zero) return NULL;
    for (int64_t i = 0; i < B; i++)
        for (int64_t k = 0; k < C; k++) sign->data[i * C + k] = k == labels[i] ? -1.0f : 1.0f;
    if (lt_loss_from_status(ctx, lt_tensor_set_shape(w, 2, (int64_t[]){n, 1}))) return NULL;
    lt_tensor *u = lt_reshape(ctx, lt_mul(ctx, logits, sign), 2, (int64_t[]){n, 1});
    lt_tensor *pair = u ? lt_concat(ctx, (lt_tensor *[]){zero, u}, 2, 1) : NULL;
    lt_tensor *ls = lt_log_softmax(ctx, pair);                  /* (n, 2) */
    lt_tensor *term = lt_mul(ctx, lt_slice(ctx, ls, 1, 0, 1), w);  /* −W softplus(u) */
    if (gamma != 0.0f)
        term = lt_mul(ctx, term, lt_exp(ctx, lt_scale(ctx, lt_slice(ctx, ls, 1, 1, 1), gamma)));
    return lt_scale(ctx, lt_sum(ctx, term, LT_AXES_ALL), (float)(-1.0 / norm));
}

lt_tensor *lt_loss_cb_sigmoid(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                              const float *class_weight) {
    if (lt_loss_check_logits(ctx, "cb_sigmoid", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    lt_tensor *w = lt_loss_row_weights(ctx, labels, B, C, class_weight, 0);
    return sigmoid_family(ctx, logits, labels, w, 0.0f, (double)(B * C));
}

lt_tensor *lt_loss_cb_focal(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                            const float *class_weight, float gamma) {
    if (lt_loss_check_logits(ctx, "cb_focal", logits, labels, 1)) return NULL;
    if (!(gamma >= 0.0f && isfinite(gamma)))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "cb_focal: gamma = %g, expected a finite value >= 0", (double)gamma);
    int64_t B = logits->shape[0], C = logits->shape[1];
    lt_tensor *w = lt_loss_row_weights(ctx, labels, B, C, class_weight, 0);
    /* Cui et al.: focal_loss /= reduce_sum(labels), one positive per row. */
    return sigmoid_family(ctx, logits, labels, w, gamma, (double)B);
}

lt_tensor *lt_loss_eql(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                       const int64_t *class_counts, float lambda) {
    if (lt_loss_check_logits(ctx, "eql", logits, labels, 1)) return NULL;
    int64_t B = logits->shape[0], C = logits->shape[1];
    if (lt_loss_check_counts(ctx, "eql", class_counts, C, 0)) return NULL;
    lt_tensor *w = lt_loss_const2(ctx, B, C);
    if (!w || lt_loss_from_status(ctx, lt_eql_weights(labels, B, class_counts, C, lambda, w->data)))
        return NULL;
    /* EQL code: torch.sum(cls_loss * eql_w) / n_i. */
    return sigmoid_family(ctx, logits, labels, w, 0.0f, (double)B);
}
