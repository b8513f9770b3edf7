/* Inverse weight balancing (docs/losses.md, `iwb`; "Inverse Weight-Balancing for Deep Long-Tailed
 * Learning", Eq. 2–8): the classifier's weight-norm distribution A_c = ‖w_c‖ is pulled
 * toward the target P = λ · NC · HC, with NC from the class counts and HC from the cosine
 * between each feature and the classifier rows. The term is returned alone; the caller
 * adds the class-balanced loss (Eq. 10). */
#include "loss_internal.h"

#include <math.h>

lt_iwb_config lt_iwb_config_default(void) {
    lt_iwb_config c = {0};
    c.lambda = 0.15f;
    c.log2_nc = 0;
    c.hc = LT_IWB_HC_VECTOR;
    c.divergence = LT_IWB_KL_CODE;
    c.batch_mean = 0;
    c.cos_eps = 1e-12f;
    return c;
}

static int check_iwb(lt_ctx *ctx, const lt_tensor *f, const lt_tensor *w, const int32_t *labels,
                     const int64_t *counts, const lt_iwb_config *cfg) {
    if (lt_ctx_status(ctx) != LT_OK) return -1;
    if (!f || !w || !cfg) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "iwb: %s is NULL", !f ? "features" : !w ? "weight" : "cfg");
        return -1;
    }
    if (f->ndim != 2 || w->ndim != 2 || f->shape[1] != w->shape[1]) {
        char sf[64], sw[64];
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "iwb: features %s and weight %s must be (B, D) and (C, D)",
                    lt_shape_str(f, sf, sizeof sf), lt_shape_str(w, sw, sizeof sw));
        return -1;
    }
    if ((unsigned)cfg->hc > LT_IWB_HC_NONE || (unsigned)cfg->divergence > LT_IWB_MSE) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "iwb: hc %d / divergence %d is not a known option", (int)cfg->hc,
                    (int)cfg->divergence);
        return -1;
    }
    if (!isfinite(cfg->lambda) || !(cfg->cos_eps > 0.0f)) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "iwb: lambda %g must be finite and cos_eps %g > 0", (double)cfg->lambda,
                    (double)cfg->cos_eps);
        return -1;
    }
    int64_t B = f->shape[0], C = w->shape[0];
    if (lt_loss_check_counts(ctx, "iwb", counts, C, 0)) return -1;
    if (cfg->hc == LT_IWB_HC_SCALAR) {
        if (!labels) { lt_ctx_fail(ctx, LT_ERR_ARG, "iwb: the scalar HC needs labels"); return -1; }
        for (int64_t i = 0; i < B; i++)
            if (labels[i] < 0 || labels[i] >= C) {
                lt_ctx_fail(ctx, LT_ERR_ARG, "iwb: labels[%lld] = %d is outside [0, %lld)", (long long)i,
                            (int)labels[i], (long long)C);
                return -1;
            }
    }
    return 0;
}

lt_tensor *lt_loss_iwb(lt_ctx *ctx, lt_tensor *features, lt_tensor *weight,
                       const int32_t *labels, const int64_t *class_counts,
                       const lt_iwb_config *cfg) {
    if (check_iwb(ctx, features, weight, labels, class_counts, cfg)) return NULL;
    int64_t B = features->shape[0], C = weight->shape[0];

    /* λ · NC_c, NC_c = log(N / (n_c + 1)) (Eq. 3; natural log in the code). */
    lt_tensor *lam_nc = lt_tensor_new1(ctx, C);
    if (!lam_nc) return NULL;
    double total = 0;
    for (int64_t c = 0; c < C; c++) total += (double)class_counts[c];
    for (int64_t c = 0; c < C; c++) {
        double nc = log(total / ((double)class_counts[c] + 1.0));
        if (cfg->log2_nc) nc /= log(2.0);
        lam_nc->data[c] = (float)((double)cfg->lambda * nc);
    }

    /* P (B, C) = λ NC_c HC. */
    lt_tensor *p;
    if (cfg->hc == LT_IWB_HC_NONE) {
        p = lt_loss_const2(ctx, B, C);
        if (!p) return NULL;
        for (int64_t i = 0; i < B; i++)
            for (int64_t c = 0; c < C; c++) p->data[i * C + c] = lam_nc->data[c];
    } else {
        lt_tensor *cos = lt_cosine_sim(ctx, features, weight, cfg->cos_eps);   /* (B, C) */
        if (cfg->hc == LT_IWB_HC_SCALAR) {
            lt_tensor *onehot = lt_loss_row_weights(ctx, labels, B, C, NULL, 1);
            cos = lt_loss_repeat_cols(ctx, lt_sum(ctx, lt_mul(ctx, cos, onehot), 0x2u), C);
        }
        lt_tensor *hc = lt_scale(ctx, lt_add_scalar(ctx, lt_scale(ctx, cos, -1.0f), 1.0f), 0.5f);  /* Eq. 6 */
        p = lt_mul(ctx, hc, lam_nc);
    }

    lt_tensor *a = lt_row_l2norm(ctx, weight);   /* (C): the same for every row b */
    lt_tensor *total_t;
    double norm;
    if (cfg->divergence == LT_IWB_MSE) {
        lt_tensor *d = lt_sub(ctx, p, a);
        total_t = lt_sum(ctx, lt_mul(ctx, d, d), LT_AXES_ALL);
        norm = cfg->batch_mean ? (double)(B * C) : 1.0;
    } else {
        lt_tensor *log_sp = lt_log_softmax(ctx, p), *log_sa = lt_log_softmax(ctx, a);
        lt_tensor *d = lt_sub(ctx, log_sp, log_sa);   /* log softmax(P) − log softmax(A) */
        if (cfg->divergence == LT_IWB_KL_CODE) {
            /* Σ_b Σ_c sP (log sP − log sA): F.kl_div(log_softmax(A), softmax(P), 'sum'). */
            total_t = lt_sum(ctx, lt_mul(ctx, d, lt_softmax(ctx, p)), LT_AXES_ALL);
        } else {
            /* Σ_b Σ_c sA (log sA − log sP) (Eq. 8). */
            total_t = lt_scale(ctx, lt_sum(ctx, lt_mul(ctx, d, lt_softmax(ctx, a)), LT_AXES_ALL), -1.0f);
        }
        norm = cfg->batch_mean ? (double)B : 1.0;
    }
    return norm == 1.0 ? total_t : lt_scale(ctx, total_t, (float)(1.0 / norm));
}
