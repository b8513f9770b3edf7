/* Regularizers written as loss terms (Hasegawa & Sato, ICLR 2024, the analysis of weight
 * balancing; docs/losses.md): weight decay λ/2 Σ‖θ‖² and feature regularization
 * coef · mean_i ‖f_i‖² / 2. */
#include "loss_internal.h"

#include <math.h>

lt_tensor *lt_loss_weight_decay(lt_ctx *ctx, lt_tensor *const *params, int64_t n, float lambda) {
    if (lt_ctx_status(ctx) != LT_OK) return NULL;
    if (!params || n < 1 || n > 0x7fffffff)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "weight_decay: %s", !params ? "params is NULL" : "n must be in [1, 2^31)");
    if (!isfinite(lambda)) return lt_ctx_fail(ctx, LT_ERR_ARG, "weight_decay: lambda = %g is not finite", (double)lambda);
    lt_tensor **sq = lt_arena_alloc(lt_ctx_arena(ctx), (size_t)n * sizeof *sq);
    if (!sq) return lt_ctx_fail(ctx, LT_ERR_NOMEM, "weight_decay: out of memory for %lld tensors", (long long)n);
    for (int64_t k = 0; k < n; k++) {
        if (!params[k]) return lt_ctx_fail(ctx, LT_ERR_ARG, "weight_decay: params[%lld] is NULL", (long long)k);
        /* ‖θ_k‖² = Σ θ ⊙ θ; each is (1), then one concat and one sum over all tensors. */
        sq[k] = lt_sum(ctx, lt_mul(ctx, params[k], params[k]), LT_AXES_ALL);
    }
    lt_tensor *all = n == 1 ? sq[0] : lt_concat(ctx, sq, (int)n, 0);
    return lt_scale(ctx, lt_sum(ctx, all, LT_AXES_ALL), 0.5f * lambda);
}

lt_tensor *lt_loss_feature_reg(lt_ctx *ctx, lt_tensor *features, float coef) {
    if (lt_ctx_status(ctx) != LT_OK) return NULL;
    if (!features) return lt_ctx_fail(ctx, LT_ERR_ARG, "feature_reg: features is NULL");
    if (features->ndim != 2) {
        char s[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "feature_reg: features must be (B, D), got %s",
                           lt_shape_str(features, s, sizeof s));
    }
    if (!isfinite(coef)) return lt_ctx_fail(ctx, LT_ERR_ARG, "feature_reg: coef = %g is not finite", (double)coef);
    lt_tensor *s = lt_sum(ctx, lt_mul(ctx, features, features), LT_AXES_ALL);
    return lt_scale(ctx, s, coef / (2.0f * (float)features->shape[0]));
}
