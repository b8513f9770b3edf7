/* Post-hoc transforms, applied to a trained model without retraining, and the τ sweep that
 * tunes them on validation (docs/metrics.md, "Post-hoc transforms and choosing τ"):
 *   τ-norm (Kang et al., "Decoupling representation and classifier", ICLR 2020):
 *     w_c ← w_c / ‖w_c‖^τ
 *   additive logit adjustment (Menon et al., "Long-tail learning via logit adjustment",
 *     ICLR 2021): argmax_c z_c − τ log π_c
 *   multiplicative logit adjustment (Hasegawa & Sato, ICLR 2024): z_c · π_c^(−τ)
 * with π_c = n_c / N the training prior. */
#include "longtail/eval.h"

#include <math.h>

const char *lt_posthoc_name(lt_posthoc kind) {
    switch (kind) {
    case LT_POSTHOC_NONE: return "none";
    case LT_POSTHOC_TAU_NORM: return "tau_norm";
    case LT_POSTHOC_LA_ADD: return "la_additive";
    case LT_POSTHOC_LA_MUL: return "la_multiplicative";
    case LT_POSTHOC_COUNT: break;
    }
    return "?";
}

lt_status lt_posthoc_tau_norm(const float *weight, int64_t num_classes, int64_t dim,
                              double tau, float *out) {
    if (!weight || !out || num_classes < 1 || dim < 1)
        return lt_error(LT_ERR_ARG, "tau_norm: weight (%lld, %lld): expected non-empty and "
                        "non-NULL", (long long)num_classes, (long long)dim);
    if (!isfinite(tau))
        return lt_error(LT_ERR_ARG, "tau_norm: tau = %g, expected finite", tau);
    for (int64_t c = 0; c < num_classes; c++) {
        const float *w = weight + c * dim;
        float *o = out + c * dim;
        double s = 0.0;
        for (int64_t d = 0; d < dim; d++) s += (double)w[d] * (double)w[d];
        const double norm = sqrt(s);
        /* ‖w‖^0 = 1 exactly; a zero row has no direction to keep, so it stays zero. */
        const double scale = (tau == 0.0 || norm == 0.0) ? 1.0 : 1.0 / pow(norm, tau);
        for (int64_t d = 0; d < dim; d++) o[d] = (float)((double)w[d] * scale);
    }
    return LT_OK;
}

lt_status lt_posthoc_logit_adjust(const float *logits, int64_t batch, int64_t num_classes,
                                  const int64_t *class_counts, lt_posthoc kind, double tau,
                                  float *out) {
    if (!logits || !out || !class_counts || batch < 0 || num_classes < 1)
        return lt_error(LT_ERR_ARG, "logit_adjust: logits (%lld, %lld): expected non-NULL "
                        "pointers and C >= 1", (long long)batch, (long long)num_classes);
    if (kind != LT_POSTHOC_LA_ADD && kind != LT_POSTHOC_LA_MUL)
        return lt_error(LT_ERR_ARG, "logit_adjust: kind = %s, expected la_additive or "
                        "la_multiplicative", lt_posthoc_name(kind));
    if (!isfinite(tau))
        return lt_error(LT_ERR_ARG, "logit_adjust: tau = %g, expected finite", tau);
    double total = 0.0;
    for (int64_t c = 0; c < num_classes; c++) {
        if (class_counts[c] <= 0)
            return lt_error(LT_ERR_ARG, "logit_adjust: class_counts[%lld] = %lld, expected > 0 "
                            "(the prior π_c must be positive)", (long long)c,
                            (long long)class_counts[c]);
        total += (double)class_counts[c];
    }
    /* Per-class term in double: additive shift −τ log π_c, or multiplicative π_c^(−τ). */
    double *t = lt_malloc((size_t)num_classes * sizeof *t);
    if (!t) return lt_error(LT_ERR_NOMEM, "logit_adjust: out of memory");
    for (int64_t c = 0; c < num_classes; c++) {
        const double log_pi = log((double)class_counts[c] / total);
        t[c] = kind == LT_POSTHOC_LA_ADD ? -tau * log_pi : exp(-tau * log_pi);
    }
    for (int64_t i = 0; i < batch; i++) {
        const float *z = logits + i * num_classes;
        float *o = out + i * num_classes;
        if (kind == LT_POSTHOC_LA_ADD)
            for (int64_t c = 0; c < num_classes; c++) o[c] = (float)((double)z[c] + t[c]);
        else
            for (int64_t c = 0; c < num_classes; c++) o[c] = (float)((double)z[c] * t[c]);
    }
    lt_free(t);
    return LT_OK;
}

void lt_tau_grid_default(double taus[LT_TAU_GRID_N]) {
    for (int i = 0; i < LT_TAU_GRID_N; i++) taus[i] = i / 10.0;
}

lt_status lt_tau_sweep(lt_tau_score_fn fn, void *user, const double *taus, int64_t n,
                       double *scores, double *best_tau, double *best_score) {
    if (!fn || !best_tau || !best_score)
        return lt_error(LT_ERR_ARG, "tau_sweep: fn, best_tau and best_score must not be NULL");
    double grid[LT_TAU_GRID_N];
    if (!taus) {
        lt_tau_grid_default(grid);
        taus = grid;
        n = LT_TAU_GRID_N;
    }
    if (n < 1) return lt_error(LT_ERR_ARG, "tau_sweep: %lld values of tau, expected >= 1", (long long)n);
    *best_tau = *best_score = NAN;
    int found = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = NAN;
        lt_status st = fn(taus[i], user, &s);
        if (st != LT_OK) return st;
        if (scores) scores[i] = s;
        if (isnan(s)) continue;
        /* strictly better, or equal at a smaller τ (the grid need not be sorted) */
        if (!found || s > *best_score || (s == *best_score && taus[i] < *best_tau)) {
            *best_tau = taus[i];
            *best_score = s;
            found = 1;
        }
    }
    if (!found)
        return lt_error(LT_ERR_ARG, "tau_sweep: every one of the %lld scores was NaN", (long long)n);
    return LT_OK;
}
