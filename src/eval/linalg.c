/* Dense symmetric solve for FDR: equilibrate, Cholesky, LU with partial pivoting as the
 * fallback. n is a feature width (tens to a few thousand), so plain O(n^3) loops in double
 * are enough; no BLAS. Deterministic: fixed loop order, no threads. */
#include "eval_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* L Lᵀ = A (lower triangle of a overwritten by L). 0 on success, -1 at the first pivot
 * <= tol (reported in *bad_pivot, *bad_index). */
static int cholesky(double *a, int64_t n, double tol, double *bad_pivot, int64_t *bad_index) {
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (!(d > tol)) {
            *bad_pivot = d;
            *bad_index = j;
            return -1;
        }
        double ljj = sqrt(d);
        a[j * n + j] = ljj;
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / ljj;
        }
    }
    return 0;
}

/* Solves L Lᵀ X = B in place (B n×m). */
static void cholesky_solve(const double *l, int64_t n, double *b, int64_t m) {
    for (int64_t i = 0; i < n; i++) {          /* L y = b */
        double *bi = b + i * m;
        for (int64_t k = 0; k < i; k++) {
            const double lik = l[i * n + k], *bk = b + k * m;
            for (int64_t c = 0; c < m; c++) bi[c] -= lik * bk[c];
        }
        for (int64_t c = 0; c < m; c++) bi[c] /= l[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; i--) {     /* Lᵀ x = y */
        double *bi = b + i * m;
        for (int64_t k = i + 1; k < n; k++) {
            const double lki = l[k * n + i], *bk = b + k * m;
            for (int64_t c = 0; c < m; c++) bi[c] -= lki * bk[c];
        }
        for (int64_t c = 0; c < m; c++) bi[c] /= l[i * n + i];
    }
}

/* Gaussian elimination with partial pivoting applied to A and B together, then back
 * substitution; X left in B. -1 if a pivot is <= tol in magnitude. */
static int lu_solve(double *a, int64_t n, double *b, int64_t m, double tol,
                    double *bad_pivot, int64_t *bad_index) {
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
        if (!(fabs(a[p * n + k]) > tol)) {
            *bad_pivot = a[p * n + k];
            *bad_index = k;
            return -1;
        }
        if (p != k) {
            for (int64_t j = 0; j < n; j++) {
                double t = a[k * n + j]; a[k * n + j] = a[p * n + j]; a[p * n + j] = t;
            }
            for (int64_t c = 0; c < m; c++) {
                double t = b[k * m + c]; b[k * m + c] = b[p * m + c]; b[p * m + c] = t;
            }
        }
        const double piv = a[k * n + k];
        for (int64_t i = k + 1; i < n; i++) {
            const double f = a[i * n + k] / piv;
            if (f == 0.0) continue;
            a[i * n + k] = f;
            for (int64_t j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
            for (int64_t c = 0; c < m; c++) b[i * m + c] -= f * b[k * m + c];
        }
    }
    for (int64_t i = n - 1; i >= 0; i--) {
        double *bi = b + i * m;
        for (int64_t k = i + 1; k < n; k++) {
            const double aik = a[i * n + k], *bk = b + k * m;
            for (int64_t c = 0; c < m; c++) bi[c] -= aik * bk[c];
        }
        for (int64_t c = 0; c < m; c++) bi[c] /= a[i * n + i];
    }
    return 0;
}

lt_status lt_eval_solve_sym(const double *A, int64_t n, double *B, int64_t m,
                            const char *what, int *method) {
    if (method) *method = 0;
    if (!what) what = "solve";
    if (n < 1 || m < 0 || !A || (m > 0 && !B))
        return lt_error(LT_ERR_ARG, "%s: bad system n = %lld, m = %lld", what, (long long)n,
                        (long long)m);
    double *a = lt_malloc((size_t)(n * n) * sizeof *a);
    double *s = lt_malloc((size_t)n * sizeof *s);
    if (!a || !s) {
        lt_free(a);
        lt_free(s);
        return lt_error(LT_ERR_NOMEM, "%s: out of memory for a %lld x %lld system", what,
                        (long long)n, (long long)n);
    }
    for (int64_t j = 0; j < n; j++) {
        double d = fabs(A[j * n + j]);
        s[j] = d > 0.0 ? 1.0 / sqrt(d) : 1.0;
    }
    double amax = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            a[i * n + j] = s[i] * A[i * n + j] * s[j];
            if (fabs(a[i * n + j]) > amax) amax = fabs(a[i * n + j]);
        }
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < m; c++) B[i * m + c] *= s[i];

    const double tol = 64.0 * (double)n * DBL_EPSILON;
    double bad = 0.0;
    int64_t bad_i = 0;
    lt_status st = LT_OK;
    if (cholesky(a, n, tol, &bad, &bad_i) == 0) {
        cholesky_solve(a, n, B, m);
        if (method) *method = LT_SOLVE_CHOLESKY;
    } else {
        /* Not numerically positive definite: start again from Ã with LU. */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) a[i * n + j] = s[i] * A[i * n + j] * s[j];
        if (lu_solve(a, n, B, m, tol * amax, &bad, &bad_i) == 0) {
            if (method) *method = LT_SOLVE_LU;
        } else {
            st = lt_error(LT_ERR_ARG,
                          "%s: matrix is singular (%lld x %lld): LU pivot %lld is %.3g after "
                          "equilibration, expected |pivot| > %.3g",
                          what, (long long)n, (long long)n, (long long)bad_i, bad, tol * amax);
        }
    }
    if (st == LT_OK)
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < m; c++) B[i * m + c] *= s[i];
    lt_free(a);
    lt_free(s);
    return st;
}
