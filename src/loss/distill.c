/* Distillation losses: temperature-scaled KL to a teacher (Hinton et al. 2015) and the
 * cosine feature distance of CANDLE. Formulas in loss.h. */
#include "loss_internal.h"

#include <math.h>
#include <string.h>

static int same_2d(lt_ctx *ctx, const char *loss, const char *na, const lt_tensor *a,
                   const char *nb, const lt_tensor *b) {
    if (lt_ctx_status(ctx) != LT_OK) return -1;
    if (!a || !b) { lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s is NULL", loss, !a ? na : nb); return -1; }
    if (a->ndim != 2 || !lt_tensor_same_shape(a, b)) {
        char sa[64], sb[64];
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s: %s %s and %s %s must be the same (B, D) shape", loss, na,
                    lt_shape_str(a, sa, sizeof sa), nb, lt_shape_str(b, sb, sizeof sb));
        return -1;
    }
    return 0;
}

/* F.kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') · T²
 *   = T²/B Σ_{i,k} p_t (log p_t − log p_s);  log p_t from log_softmax, so p_t = 0 gives 0. */
lt_tensor *lt_loss_kd(lt_ctx *ctx, lt_tensor *student_logits, lt_tensor *teacher_logits, float T) {
    if (same_2d(ctx, "kd", "student_logits", student_logits, "teacher_logits", teacher_logits)) return NULL;
    if (!(T > 0.0f && isfinite(T)))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "kd: temperature T = %g, expected a finite value > 0", (double)T);
    lt_tensor *teacher = teacher_logits;
    if (teacher->requires_grad) {   /* detach: the teacher is a target, not a parameter */
        teacher = lt_tensor_new(ctx, 2, teacher_logits->shape);
        if (!teacher) return NULL;
        memcpy(teacher->data, teacher_logits->data, (size_t)teacher->numel * sizeof(float));
    }
    lt_tensor *zt = lt_scale(ctx, teacher, 1.0f / T);
    lt_tensor *pt = lt_softmax(ctx, zt), *log_pt = lt_log_softmax(ctx, zt);
    lt_tensor *log_ps = lt_log_softmax(ctx, lt_scale(ctx, student_logits, 1.0f / T));
    lt_tensor *kl = lt_sum(ctx, lt_mul(ctx, lt_sub(ctx, log_pt, log_ps), pt), LT_AXES_ALL);
    return lt_scale(ctx, kl, T * T / (float)student_logits->shape[0]);
}

lt_tensor *lt_loss_cosine_distance(lt_ctx *ctx, lt_tensor *f_s, lt_tensor *f_t) {
    if (same_2d(ctx, "cosine_distance", "f_s", f_s, "f_t", f_t)) return NULL;
    lt_tensor *a = lt_normalize_rows(ctx, f_s, 1e-12f), *b = lt_normalize_rows(ctx, f_t, 1e-12f);
    lt_tensor *cos = lt_sum(ctx, lt_mul(ctx, a, b), 0x2u);   /* (B) */
    return lt_add_scalar(ctx, lt_scale(ctx, lt_mean(ctx, cos, LT_AXES_ALL), -1.0f), 1.0f);
}
