/* Analysis of a trained model (Hasegawa & Sato, "Exploring weight balancing on long-tailed
 * recognition problem", ICLR 2024; docs/metrics.md): per-class classifier weight norms,
 * per-class feature norms, the Fisher discriminant ratio of the features, batch-norm
 * scale statistics. All in double precision. */
#include "eval_internal.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <string.h>

lt_status lt_eval_weight_norms(const float *weight, int64_t num_classes, int64_t dim,
                               double *norms) {
    if (!weight || !norms || num_classes < 1 || dim < 1)
        return lt_error(LT_ERR_ARG, "weight_norms: weight (%lld, %lld) must be non-empty and "
                        "pointers non-NULL", (long long)num_classes, (long long)dim);
    for (int64_t c = 0; c < num_classes; c++) {
        const float *w = weight + c * dim;
        double s = 0.0;
        for (int64_t d = 0; d < dim; d++) s += (double)w[d] * (double)w[d];
        norms[c] = sqrt(s);
    }
    return LT_OK;
}

static lt_status check_labels(const char *fn, const int32_t *labels, int64_t n, int64_t C) {
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return lt_error(LT_ERR_ARG, "%s: labels[%lld] = %d, expected in [0, %lld)", fn,
                            (long long)i, (int)labels[i], (long long)C);
    return LT_OK;
}

lt_status lt_eval_feature_norms(const float *features, const int32_t *labels, int64_t n,
                                int64_t dim, int64_t num_classes, double *class_norm) {
    if (!features || !labels || !class_norm || n < 1 || dim < 1 || num_classes < 1)
        return lt_error(LT_ERR_ARG, "feature_norms: features (%lld, %lld), %lld classes: "
                        "expected non-empty and non-NULL", (long long)n, (long long)dim,
                        (long long)num_classes);
    lt_status st = check_labels("feature_norms", labels, n, num_classes);
    if (st != LT_OK) return st;
    int64_t *cnt = lt_calloc((size_t)num_classes, sizeof *cnt);
    if (!cnt) return lt_error(LT_ERR_NOMEM, "feature_norms: out of memory");
    for (int64_t c = 0; c < num_classes; c++) class_norm[c] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = features + i * dim;
        double s = 0.0;
        for (int64_t d = 0; d < dim; d++) s += (double)x[d] * (double)x[d];
        class_norm[labels[i]] += sqrt(s);
        cnt[labels[i]]++;
    }
    for (int64_t c = 0; c < num_classes; c++)
        class_norm[c] = cnt[c] ? class_norm[c] / (double)cnt[c] : NAN;
    lt_free(cnt);
    return LT_OK;
}

/* Samples per chunk when accumulating S_W: a chunk of centered rows stays in cache. */
#define FDR_CHUNK 256

/* S_W upper triangle: Σ_i r_i r_iᵀ with r_i = x_i − μ_{y_i}, in sample order. One
 * parallel region and no barriers: every thread centers each chunk into its own buffer
 * (cheap next to the O(D²) products) and owns the rows j ≡ tid (mod nth), so each entry
 * is summed by one thread in sample order: bit-identical for any thread count. A
 * per-chunk `omp for` would put a barrier per chunk, which costs far more than the work
 * on a loaded 2-core machine. */
static void scatter_within(const float *features, const int32_t *labels, int64_t n,
                           int64_t dim, const int64_t *keep, int64_t Dk, const double *mu_c,
                           double *sw, double *bufs, int64_t chunk, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        double *r = bufs + (int64_t)tid * chunk * Dk;
        for (int64_t i0 = 0; i0 < n; i0 += chunk) {
            const int64_t nb = n - i0 < chunk ? n - i0 : chunk;
            for (int64_t b = 0; b < nb; b++) {
                const float *x = features + (i0 + b) * dim;
                const double *m = mu_c + (int64_t)labels[i0 + b] * Dk;
                for (int64_t j = 0; j < Dk; j++) r[b * Dk + j] = (double)x[keep[j]] - m[j];
            }
            for (int64_t j = tid; j < Dk; j += nth) {
                double *row = sw + j * Dk;
                for (int64_t b = 0; b < nb; b++) {
                    const double *rb = r + b * Dk;
                    const double rj = rb[j];
                    for (int64_t k = j; k < Dk; k++) row[k] += rj * rb[k];
                }
            }
        }
    }
}

lt_status lt_eval_fdr(const float *features, const int32_t *labels, int64_t n, int64_t dim,
                      int64_t num_classes, double *fdr, int64_t *dims_used) {
    if (dims_used) *dims_used = 0;
    if (!features || !labels || !fdr || n < 1 || dim < 1 || num_classes < 1)
        return lt_error(LT_ERR_ARG, "fdr: features (%lld, %lld), %lld classes: expected "
                        "non-empty and non-NULL", (long long)n, (long long)dim,
                        (long long)num_classes);
    *fdr = NAN;
    lt_status st = check_labels("fdr", labels, n, num_classes);
    if (st != LT_OK) return st;
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(features[i]))
            return lt_error(LT_ERR_ARG, "fdr: features[%lld][%lld] = %g, expected finite",
                            (long long)(i / dim), (long long)(i % dim), (double)features[i]);

    const int64_t C = num_classes;
    int64_t *cnt = lt_calloc((size_t)C, sizeof *cnt);
    int64_t *keep = lt_malloc((size_t)dim * sizeof *keep);
    if (!cnt || !keep) {
        lt_free(cnt);
        lt_free(keep);
        return lt_error(LT_ERR_NOMEM, "fdr: out of memory");
    }
    for (int64_t i = 0; i < n; i++) cnt[labels[i]]++;
    int64_t K = 0;
    for (int64_t c = 0; c < C; c++) K += cnt[c] > 0;

    /* A dimension is constant when every image has exactly the value of the first one:
     * exact comparison, since a mean of equal floats need not round back to them. */
    int64_t Dk = 0;
    for (int64_t d = 0; d < dim; d++) {
        const float v0 = features[d];
        int64_t i = 1;
        while (i < n && features[i * dim + d] == v0) i++;
        if (i < n) keep[Dk++] = d;
    }
    if (dims_used) *dims_used = Dk;
    if (K < 2) {
        st = lt_error(LT_ERR_ARG, "fdr: %lld class(es) have images, expected >= 2", (long long)K);
    } else if (Dk == 0) {
        st = lt_error(LT_ERR_ARG, "fdr: all %lld feature dimensions are constant over the %lld "
                      "images", (long long)dim, (long long)n);
    } else if (n - K < Dk) {
        /* Every class's deviations sum to zero, so rank(S_W) <= n − K. */
        st = lt_error(LT_ERR_ARG, "fdr: S_W is singular: %lld images in %lld classes give rank "
                      "<= %lld, fewer than the %lld non-constant dimensions", (long long)n,
                      (long long)K, (long long)(n - K), (long long)Dk);
    }
    if (st != LT_OK) {
        lt_free(cnt);
        lt_free(keep);
        return st;
    }

    double *mu_c = lt_calloc((size_t)(C * Dk), sizeof *mu_c);   /* class means (C, Dk) */
    double *sw = lt_calloc((size_t)(Dk * Dk), sizeof *sw);      /* S_W (Dk, Dk) */
    double *rhs = lt_malloc((size_t)(Dk * K) * sizeof *rhs);    /* d_c as columns (Dk, K) */
    double *mu = lt_calloc((size_t)Dk, sizeof *mu);
    const int64_t chunk = n < FDR_CHUNK ? n : FDR_CHUNK;
    int nthreads = 1;
#ifdef _OPENMP
    /* threads only where the O(n·D²) work pays for them */
    if (Dk * Dk * n > ((int64_t)1 << 22)) nthreads = omp_get_max_threads();
    if (nthreads > Dk) nthreads = (int)Dk;
#endif
    double *r = lt_malloc((size_t)(nthreads * chunk * Dk) * sizeof *r);
    if (!mu_c || !sw || !rhs || !mu || !r) {
        st = lt_error(LT_ERR_NOMEM, "fdr: out of memory for %lld dimensions", (long long)Dk);
        goto done;
    }

    for (int64_t i = 0; i < n; i++) {
        const float *x = features + i * dim;
        double *m = mu_c + (int64_t)labels[i] * Dk;
        for (int64_t j = 0; j < Dk; j++) m[j] += (double)x[keep[j]];
    }
    for (int64_t c = 0; c < C; c++) {
        if (!cnt[c]) continue;
        double *m = mu_c + c * Dk;
        for (int64_t j = 0; j < Dk; j++) {
            mu[j] += m[j];            /* class sums add up to the total sum */
            m[j] /= (double)cnt[c];
        }
    }
    for (int64_t j = 0; j < Dk; j++) mu[j] /= (double)n;

    scatter_within(features, labels, n, dim, keep, Dk, mu_c, sw, r, chunk, nthreads);
    for (int64_t j = 0; j < Dk; j++)
        for (int64_t k = 0; k < j; k++) sw[j * Dk + k] = sw[k * Dk + j];

    /* tr(S_W⁻¹ S_B) = tr(S_W⁻¹ Σ_c n_c d_c d_cᵀ) = Σ_c n_c d_cᵀ (S_W⁻¹ d_c): one solve with
     * the K vectors d_c = μ_c − μ as right-hand sides instead of forming S_B. */
    int64_t col = 0;
    for (int64_t c = 0; c < C; c++) {
        if (!cnt[c]) continue;
        for (int64_t j = 0; j < Dk; j++) rhs[j * K + col] = mu_c[c * Dk + j] - mu[j];
        col++;
    }
    st = lt_eval_solve_sym(sw, Dk, rhs, K, "fdr: S_W", NULL);
    if (st != LT_OK) goto done;
    double total = 0.0;
    col = 0;
    for (int64_t c = 0; c < C; c++) {
        if (!cnt[c]) continue;
        double q = 0.0;
        for (int64_t j = 0; j < Dk; j++) q += (mu_c[c * Dk + j] - mu[j]) * rhs[j * K + col];
        total += (double)cnt[c] * q;
        col++;
    }
    *fdr = total;

done:
    lt_free(cnt);
    lt_free(keep);
    lt_free(mu_c);
    lt_free(sw);
    lt_free(rhs);
    lt_free(mu);
    lt_free(r);
    return st;
}

void lt_feature_stats_free(lt_feature_stats *st) {
    if (!st) return;
    lt_free(st->class_norm);
    st->class_norm = NULL;
    st->fdr = NAN;
    st->fdr_dims = 0;
    st->fdr_status = LT_OK;
    st->fdr_error[0] = '\0';
}

lt_status lt_eval_features(const float *features, const int32_t *labels, int64_t n,
                           int64_t dim, int64_t num_classes, lt_feature_stats *st) {
    if (!st) return lt_error(LT_ERR_ARG, "eval_features: st is NULL");
    lt_feature_stats_free(st);
    if (num_classes < 1)
        return lt_error(LT_ERR_ARG, "eval_features: num_classes = %lld, expected >= 1",
                        (long long)num_classes);
    double *norms = lt_malloc((size_t)num_classes * sizeof *norms);
    if (!norms) return lt_error(LT_ERR_NOMEM, "eval_features: out of memory");
    lt_status s = lt_eval_feature_norms(features, labels, n, dim, num_classes, norms);
    if (s != LT_OK) {
        lt_free(norms);
        return s;
    }
    st->class_norm = norms;
    /* Arguments are valid (checked above), so an FDR failure is a property of the data
     * (singular S_W, constant features): record it, keep the norms. */
    st->fdr_status = lt_eval_fdr(features, labels, n, dim, num_classes, &st->fdr, &st->fdr_dims);
    if (st->fdr_status != LT_OK) {
        st->fdr = NAN;
        snprintf(st->fdr_error, sizeof st->fdr_error, "%s", lt_last_error());
        if (st->fdr_status == LT_ERR_NOMEM) {
            lt_status e = st->fdr_status;
            lt_feature_stats_free(st);
            return e;
        }
    }
    return LT_OK;
}

lt_status lt_eval_result_set_weight_norms(lt_eval_result *r, const float *weight,
                                          int64_t num_classes, int64_t dim) {
    if (!r) return lt_error(LT_ERR_ARG, "set_weight_norms: r is NULL");
    if (r->num_classes > 0 && r->num_classes != num_classes)
        return lt_error(LT_ERR_ARG, "set_weight_norms: weight has %lld rows, result has %lld "
                        "classes", (long long)num_classes, (long long)r->num_classes);
    if (num_classes < 1)
        return lt_error(LT_ERR_ARG, "set_weight_norms: num_classes = %lld, expected >= 1",
                        (long long)num_classes);
    double *norms = lt_malloc((size_t)num_classes * sizeof *norms);
    if (!norms) return lt_error(LT_ERR_NOMEM, "set_weight_norms: out of memory");
    lt_status st = lt_eval_weight_norms(weight, num_classes, dim, norms);
    if (st != LT_OK) {
        lt_free(norms);
        return st;
    }
    lt_free(r->weight_norms);
    r->weight_norms = norms;
    if (r->num_classes == 0) r->num_classes = num_classes;
    return LT_OK;
}

lt_status lt_eval_bn_scale_stats(const float *gamma, int64_t n, double *mean, double *std) {
    if (!mean || !std || n < 0 || (n > 0 && !gamma))
        return lt_error(LT_ERR_ARG, "bn_scale_stats: n = %lld, expected >= 0 with non-NULL "
                        "pointers", (long long)n);
    if (n == 0) {
        *mean = *std = NAN;
        return LT_OK;
    }
    /* two passes: mean, then Σ (γ − mean)² (no cancellation) */
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += gamma[i];
    const double m = s / (double)n;
    double v = 0.0;
    for (int64_t i = 0; i < n; i++) v += ((double)gamma[i] - m) * ((double)gamma[i] - m);
    *mean = m;
    *std = sqrt(v / (double)n);
    return LT_OK;
}

lt_status lt_eval_result_set_bn_scales(lt_eval_result *r, const float *gamma, int64_t n) {
    if (!r) return lt_error(LT_ERR_ARG, "set_bn_scales: r is NULL");
    double m, s;
    lt_status st = lt_eval_bn_scale_stats(gamma, n, &m, &s);
    if (st != LT_OK) return st;
    r->bn_scale_mean = m;
    r->bn_scale_std = s;
    r->bn_scale_count = n;
    return LT_OK;
}
