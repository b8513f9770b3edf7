/* Learning-rate schedules: constant, step, cosine, with linear warm-up (optim.h). */
#include "longtail/optim.h"

#include <math.h>

lt_status lt_schedule_check(const lt_schedule *s) {
    if (!s) return lt_error(LT_ERR_ARG, "schedule: NULL");
    if (!(isfinite(s->base_lr) && s->base_lr >= 0.0f))
        return lt_error(LT_ERR_ARG, "schedule: base_lr %g (expected finite, >= 0)", (double)s->base_lr);
    if (s->warmup_epochs < 0)
        return lt_error(LT_ERR_ARG, "schedule: warmup_epochs %d (expected >= 0)", s->warmup_epochs);
    switch (s->kind) {
    case LT_SCHED_CONSTANT:
        return LT_OK;
    case LT_SCHED_STEP:
        if (s->n_milestones < 0 || s->n_milestones > LT_SCHED_MAX_MILESTONES)
            return lt_error(LT_ERR_ARG, "schedule: %d milestones (expected 0..%d)", s->n_milestones, LT_SCHED_MAX_MILESTONES);
        for (int j = 0; j < s->n_milestones; j++) {
            if (s->milestones[j] < 0 || (j > 0 && s->milestones[j] <= s->milestones[j - 1]))
                return lt_error(LT_ERR_ARG, "schedule: milestone %d is epoch %d (expected >= 0 and increasing)", j, s->milestones[j]);
            if (!(isfinite(s->factors[j]) && s->factors[j] >= 0.0f))
                return lt_error(LT_ERR_ARG, "schedule: factor %d is %g (expected finite, >= 0)", j, (double)s->factors[j]);
        }
        return LT_OK;
    case LT_SCHED_COSINE:
        if (s->total_epochs < 1)
            return lt_error(LT_ERR_ARG, "schedule: cosine total_epochs %d (expected >= 1)", s->total_epochs);
        return LT_OK;
    }
    return lt_error(LT_ERR_ARG, "schedule: unknown kind %d", (int)s->kind);
}

float lt_schedule_lr(const lt_schedule *s, int epoch, int64_t iter_in_epoch, int64_t iters_per_epoch) {
    double lr = s->base_lr;
    if (s->warmup_epochs > 0 && epoch < s->warmup_epochs)
        lr = lr * (double)(epoch + 1) / (double)s->warmup_epochs;
    switch (s->kind) {
    case LT_SCHED_CONSTANT:
        break;
    case LT_SCHED_STEP: {
        double f = 1.0;
        for (int j = 0; j < s->n_milestones; j++)
            if (epoch >= s->milestones[j]) f = s->factors[j];
        lr *= f;
        break;
    }
    case LT_SCHED_COSINE: {
        double t = epoch;
        if (s->per_iter && iters_per_epoch > 0) t += (double)iter_in_epoch / (double)iters_per_epoch;
        if (t > s->total_epochs) t = s->total_epochs;
        if (t < 0) t = 0;
        lr *= 0.5 * (1.0 + cos(M_PI * t / (double)s->total_epochs));
        break;
    }
    }
    return (float)lr;
}
