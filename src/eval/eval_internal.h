/* Private to src/eval (and its tests): the dense symmetric solver behind FDR. */
#ifndef LT_EVAL_INTERNAL_H
#define LT_EVAL_INTERNAL_H

#include "longtail/eval.h"

enum lt_solve_method { LT_SOLVE_CHOLESKY = 1, LT_SOLVE_LU = 2 };

/* Solves A X = B for a symmetric n×n A (row-major doubles, not modified) and n×m
 * right-hand sides B (row-major, overwritten by X). The system is first equilibrated,
 * Ã = S A S with S = diag(1/sqrt|A_jj|) (1 where A_jj = 0), so that the singularity test
 * does not depend on the units of each variable. Cholesky is tried first; a pivot
 * <= tol (tol = 64 n ε on Ã, whose diagonal is ±1) means "not numerically positive
 * definite" and LU with partial pivoting is used instead; an LU pivot with |u_kk| <= tol ·
 * max|Ã| means singular: LT_ERR_ARG (message names `what` and the pivot). *method (may be
 * NULL) receives LT_SOLVE_CHOLESKY or LT_SOLVE_LU. On error B holds no useful values. */
lt_status lt_eval_solve_sym(const double *A, int64_t n, double *B, int64_t m,
                            const char *what, int *method);

#endif
