/* Internal: deterministic column sums, shared by the light op files (reduce.c implements).
 *
 * Broadcast backward (the bias-like gradient of add/sub/mul/div), PReLU's alpha gradient
 * and sum/mean over leading axes all need out[j] = Σ_r x[r, j] · w[r, j] over a row-major
 * (rows, cols) array. Rows are split into a number of chunks that depends only on the
 * size (never on the thread count); each chunk sums into its own double partials and the
 * partials are added in chunk order, so the result is the same for any number of threads. */
#ifndef LT_OPS_COLSUM_H
#define LT_OPS_COLSUM_H

#include "ops_internal.h"

typedef enum lt_colsum_weight {
    LT_COLSUM_ONE = 0,    /* w = 1 */
    LT_COLSUM_MUL = 1,    /* w = y[r, j] */
    LT_COLSUM_NEGPART = 2 /* w = min(y[r, j], 0) (PReLU: d/dalpha of alpha·x on x <= 0) */
} lt_colsum_weight;

/* out[j] = Σ_r x[r·cols + j] · w(y[r·cols + j]) for j < cols, in double. Scratch comes from
 * the context's arena; returns 0, or -1 with the context's error set on out-of-memory. */
int lt_colsum(lt_ctx *ctx, const float *x, const float *y, lt_colsum_weight w,
              int64_t rows, int64_t cols, double *out);

#endif
