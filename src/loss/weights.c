/* Per-class quantities of the re-weighting and re-margining losses: class-balanced
 * weights, the DRW schedule, LDAM margins, label-aware smoothing factors, the
 * equalization-loss masks and the sigmoid bias prior. Plain functions over caller-owned
 * arrays, computed in double. */
#include "loss_internal.h"

#include <math.h>

static lt_status check_counts(const char *what, const int64_t *n, int64_t C, int64_t min_count) {
    if (!n) return lt_error(LT_ERR_ARG, "%s: class_counts is NULL", what);
    if (C < 1) return lt_error(LT_ERR_ARG, "%s: C = %lld classes, expected >= 1", what, (long long)C);
    int64_t total = 0;
    for (int64_t c = 0; c < C; c++) {
        if (n[c] < min_count)
            return lt_error(LT_ERR_ARG, "%s: class_counts[%lld] = %lld, expected >= %lld", what,
                            (long long)c, (long long)n[c], (long long)min_count);
        total += n[c];
    }
    if (total <= 0) return lt_error(LT_ERR_ARG, "%s: class counts sum to %lld, expected > 0", what, (long long)total);
    return LT_OK;
}

/* Cui et al. 2019, Eq. 3 / their code: effective number E_n = (1 − β^n) / (1 − β),
 * w = 1 / E_n, normalized to Σ w = C. 1 − β^n is computed as −expm1(n log β), exact also
 * when β^n is close to 1 (β = 0.9999, small n). */
lt_status lt_cb_weights(const int64_t *class_counts, int64_t C, double beta, float *w) {
    lt_status st = check_counts("cb_weights", class_counts, C, 1);
    if (st != LT_OK) return st;
    if (!w) return lt_error(LT_ERR_ARG, "cb_weights: w is NULL");
    if (!(beta >= 0.0 && beta < 1.0))
        return lt_error(LT_ERR_ARG, "cb_weights: beta = %g, expected 0 <= beta < 1", beta);
    double sum = 0;
    for (int64_t c = 0; c < C; c++) {
        double eff = beta == 0.0 ? 1.0 : -expm1((double)class_counts[c] * log(beta));
        sum += (1.0 - beta) / eff;
    }
    for (int64_t c = 0; c < C; c++) {
        double eff = beta == 0.0 ? 1.0 : -expm1((double)class_counts[c] * log(beta));
        w[c] = (float)((1.0 - beta) / eff / sum * (double)C);
    }
    return LT_OK;
}

lt_status lt_drw_weights(int64_t epoch, int64_t drw_epoch, double beta,
                         const int64_t *class_counts, int64_t C, float *w) {
    /* Cao et al.'s train.py: betas = [0, beta]; idx = epoch // drw_epoch (capped at 1). */
    return lt_cb_weights(class_counts, C, epoch < drw_epoch ? 0.0 : beta, w);
}

/* Cao et al.'s LDAMLoss: m_list = 1 / sqrt(sqrt(n)); m_list *= max_m / max(m_list). */
lt_status lt_ldam_margins(const int64_t *class_counts, int64_t C, float max_m, float *delta) {
    lt_status st = check_counts("ldam_margins", class_counts, C, 1);
    if (st != LT_OK) return st;
    if (!delta) return lt_error(LT_ERR_ARG, "ldam_margins: delta is NULL");
    if (!(max_m >= 0.0f && isfinite(max_m)))
        return lt_error(LT_ERR_ARG, "ldam_margins: max_m = %g, expected a finite value >= 0", (double)max_m);
    double mmax = 0;
    for (int64_t c = 0; c < C; c++) {
        double m = 1.0 / sqrt(sqrt((double)class_counts[c]));
        mmax = m > mmax ? m : mmax;
    }
    for (int64_t c = 0; c < C; c++)
        delta[c] = (float)(1.0 / sqrt(sqrt((double)class_counts[c])) * ((double)max_m / mmax));
    return LT_OK;
}

/* MiSLAS LabelAwareSmoothing, shape 'concave':
 * smooth = tail + (head − tail) · sin((n − n_K) π / (2 (n_1 − n_K))). */
lt_status lt_las_smoothing(const int64_t *class_counts, int64_t C, float eps_head,
                           float eps_tail, float *eps) {
    lt_status st = check_counts("las_smoothing", class_counts, C, 0);
    if (st != LT_OK) return st;
    if (!eps) return lt_error(LT_ERR_ARG, "las_smoothing: eps is NULL");
    if (!(eps_head >= 0.0f && eps_head <= 1.0f && eps_tail >= 0.0f && eps_tail <= 1.0f))
        return lt_error(LT_ERR_ARG, "las_smoothing: eps_head %g and eps_tail %g must be in [0, 1]",
                        (double)eps_head, (double)eps_tail);
    int64_t nmin = class_counts[0], nmax = class_counts[0];
    for (int64_t c = 1; c < C; c++) {
        nmin = class_counts[c] < nmin ? class_counts[c] : nmin;
        nmax = class_counts[c] > nmax ? class_counts[c] : nmax;
    }
    const double pi = 3.14159265358979323846;
    for (int64_t c = 0; c < C; c++) {
        if (nmax == nmin) { eps[c] = eps_head; continue; }
        double t = (double)(class_counts[c] - nmin) / (double)(nmax - nmin);
        eps[c] = (float)(eps_tail + ((double)eps_head - eps_tail) * sin(pi * t / 2.0));
    }
    return LT_OK;
}

/* Checks the arguments of the equalization masks; *total gets N = Σ n_k. No allocation:
 * the masks are rebuilt every training step. */
static lt_status check_eql(const char *what, const int32_t *labels, int64_t B, const int64_t *n,
                           int64_t C, float lambda, const float *w, double *total) {
    lt_status st = check_counts(what, n, C, 0);
    if (st != LT_OK) return st;
    if (!labels || !w) return lt_error(LT_ERR_ARG, "%s: %s is NULL", what, !labels ? "labels" : "w");
    if (B < 1) return lt_error(LT_ERR_ARG, "%s: B = %lld samples, expected >= 1", what, (long long)B);
    if (!(lambda >= 0.0f)) return lt_error(LT_ERR_ARG, "%s: lambda = %g, expected >= 0", what, (double)lambda);
    for (int64_t i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return lt_error(LT_ERR_ARG, "%s: labels[%lld] = %d is outside [0, %lld)", what,
                            (long long)i, (int)labels[i], (long long)C);
    *total = 0;
    for (int64_t c = 0; c < C; c++) *total += (double)n[c];
    return LT_OK;
}

/* T_λ(f_k) = 1 when the class frequency n_k / N is below λ. */
static int rare(const int64_t *n, int64_t k, double total, float lambda) {
    return (double)n[k] / total < (double)lambda;
}

/* Tan et al. 2020, Eq. 7 (EQL code: eql_w = 1 − exclude · threshold · (1 − target)). */
lt_status lt_eql_weights(const int32_t *labels, int64_t B, const int64_t *class_counts,
                         int64_t C, float lambda, float *w) {
    double total;
    lt_status st = check_eql("eql_weights", labels, B, class_counts, C, lambda, w, &total);
    if (st != LT_OK) return st;
    for (int64_t i = 0; i < B; i++)
        for (int64_t k = 0; k < C; k++)
            w[i * C + k] = (k != labels[i] && rare(class_counts, k, total, lambda)) ? 0.0f : 1.0f;
    return LT_OK;
}

/* Tan et al. 2020, Eq. 11: w̃_k = 1 − β T_λ(f_k)(1 − y_k), β ~ Bernoulli(γ). */
lt_status lt_seql_weights(lt_rng *rng, const int32_t *labels, int64_t B,
                          const int64_t *class_counts, int64_t C, float lambda, float gamma,
                          float *w) {
    if (!rng) return lt_error(LT_ERR_ARG, "seql_weights: rng is NULL");
    if (!(gamma >= 0.0f && gamma <= 1.0f))
        return lt_error(LT_ERR_ARG, "seql_weights: gamma = %g, expected a probability in [0, 1]", (double)gamma);
    double total;
    lt_status st = check_eql("seql_weights", labels, B, class_counts, C, lambda, w, &total);
    if (st != LT_OK) return st;
    for (int64_t i = 0; i < B; i++)
        for (int64_t k = 0; k < C; k++) {
            int beta = lt_rng_uniform(rng) < gamma;   /* drawn for every element */
            w[i * C + k] = (beta && k != labels[i] && rare(class_counts, k, total, lambda)) ? 0.0f : 1.0f;
        }
    return LT_OK;
}

float lt_loss_sigmoid_bias_init(int64_t C) {
    if (C < 2) return NAN;
    return (float)-log((double)(C - 1));
}
