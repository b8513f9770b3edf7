/* Reductions: sum and mean over a bit mask of axes, and the deterministic column sums
 * (colsum.h) the other light ops share.
 *
 * A tensor's axes are merged into runs of kept (K) and reduced (R) axes; any mask on at
 * most 4 dims then fits the pattern [K0 R0 K1 R1 K2] (unused slots have size 1):
 *   out[k0, k1, k2] = Σ_{r0, r1} x[k0, r0, k1, r1, k2].
 * Sums are accumulated in double in a fixed order, so results do not depend on the number
 * of threads. */
#include "colsum.h"

#include <string.h>

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

/* ---- column sums (colsum.h) ---- */

int lt_colsum(lt_ctx *ctx, const float *x, const float *y, lt_colsum_weight w,
              int64_t rows, int64_t cols, double *out) {
    /* The chunk count depends on the size only: the same partials for any thread count. */
    int64_t nch = 1;
    if (rows * cols >= 65536) nch = rows < 64 ? rows : 64;
    double *part = out;
    if (nch > 1) {
        part = lt_ctx_alloc(ctx, (size_t)(nch * cols) * sizeof(double));
        if (!part) return -1;
    }
    int64_t per = (rows + nch - 1) / nch;
#pragma omp parallel for if (nch > 1) schedule(static)
    for (int64_t k = 0; k < nch; k++) {
        double *acc = part + k * cols;
        int64_t r0 = k * per, r1 = r0 + per < rows ? r0 + per : rows;
        if (cols == 1) {  /* a plain sum: one vectorized reduction */
            double s = 0;
            const float *xr = x, *yr = y;
            switch (w) {
            case LT_COLSUM_ONE:
#pragma omp simd reduction(+ : s)
                for (int64_t r = r0; r < r1; r++) s += xr[r];
                break;
            case LT_COLSUM_MUL:
#pragma omp simd reduction(+ : s)
                for (int64_t r = r0; r < r1; r++) s += (double)xr[r] * yr[r];
                break;
            case LT_COLSUM_NEGPART:
#pragma omp simd reduction(+ : s)
                for (int64_t r = r0; r < r1; r++) s += (double)xr[r] * (yr[r] < 0 ? yr[r] : 0.0f);
                break;
            }
            acc[0] = s;
            continue;
        }
        for (int64_t j = 0; j < cols; j++) acc[j] = 0;
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = x + r * cols, *yr = y ? y + r * cols : NULL;
            switch (w) {
            case LT_COLSUM_ONE:
#pragma omp simd
                for (int64_t j = 0; j < cols; j++) acc[j] += xr[j];
                break;
            case LT_COLSUM_MUL:
#pragma omp simd
                for (int64_t j = 0; j < cols; j++) acc[j] += (double)xr[j] * yr[j];
                break;
            case LT_COLSUM_NEGPART:
#pragma omp simd
                for (int64_t j = 0; j < cols; j++) acc[j] += (double)xr[j] * (yr[j] < 0 ? yr[j] : 0.0f);
                break;
            }
        }
    }
    if (nch > 1) {
        for (int64_t j = 0; j < cols; j++) {
            double s = 0;
            for (int64_t k = 0; k < nch; k++) s += part[k * cols + j];
            out[j] = s;
        }
    }
    return 0;
}

/* ---- sum / mean ---- */

typedef struct red_plan { int64_t k0, r0, k1, r1, k2; } red_plan;

/* Validates the mask, fills the [K0 R0 K1 R1 K2] plan and the output shape. */
static int plan_axes(lt_ctx *ctx, const char *op, const lt_tensor *x, unsigned axes,
                     red_plan *p, int *ondim, int64_t *oshape) {
    unsigned all = (1u << x->ndim) - 1u;
    if (axes == LT_AXES_ALL) axes = all;
    if (axes & ~all) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axes mask 0x%x names an axis >= %d, but x has %d dims",
                    op, axes, x->ndim, x->ndim);
        return -1;
    }
    if (axes == 0) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axes mask is 0 (expected at least one axis to reduce)", op);
        return -1;
    }
    int64_t slot[5] = {1, 1, 1, 1, 1};  /* K0 R0 K1 R1 K2 */
    int s = (axes & 1u) ? 1 : 0, prev = -1;
    *ondim = 0;
    for (int i = 0; i < x->ndim; i++) {
        int red = (axes >> i) & 1u;
        if (prev >= 0 && red != prev) s++;
        slot[s] *= x->shape[i];
        prev = red;
        if (!red) oshape[(*ondim)++] = x->shape[i];
    }
    if (*ondim == 0) { *ondim = 1; oshape[0] = 1; }
    p->k0 = slot[0]; p->r0 = slot[1]; p->k1 = slot[2]; p->r1 = slot[3]; p->k2 = slot[4];
    return 0;
}

static lt_tensor *reduce(lt_ctx *ctx, enum lt_op op, const char *name, lt_tensor *x, unsigned axes) {
    if (lt_ops_bad_inputs(ctx, name, 1, x)) return NULL;
    red_plan p;
    int ondim;
    int64_t oshape[LT_MAX_DIMS];
    if (plan_axes(ctx, name, x, axes, &p, &ondim, oshape)) return NULL;
    lt_tensor *out = lt_tensor_new(ctx, ondim, oshape);
    if (!out) return NULL;
    double scale = op == LT_OP_MEAN ? 1.0 / ((double)p.r0 * (double)p.r1) : 1.0;
    const float *xd = x->data;
    float *y = out->data;
    if (p.k0 == 1 && p.k1 == 1) {
        /* [R0 K2] after merging (k2 may be 1): column sums over leading rows. */
        double *acc = lt_ctx_alloc(ctx, (size_t)p.k2 * sizeof(double));
        if (!acc || lt_colsum(ctx, xd, NULL, LT_COLSUM_ONE, p.r0 * p.r1, p.k2, acc)) return NULL;
        for (int64_t j = 0; j < p.k2; j++) y[j] = (float)(acc[j] * scale);
    } else if (p.k1 == 1 && p.k2 == 1) {
        /* [K0 R0]: contiguous row sums. */
        int64_t len = p.r0 * p.r1;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
        for (int64_t k = 0; k < p.k0; k++) {
            const float *xr = xd + k * len;
            double s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t r = 0; r < len; r++) s += xr[r];
            y[k] = (float)(s * scale);
        }
    } else {
        int64_t nout = p.k0 * p.k1 * p.k2;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
        for (int64_t o = 0; o < nout; o++) {
            int64_t k2 = o % p.k2, k1 = (o / p.k2) % p.k1, k0 = o / (p.k2 * p.k1);
            double s = 0;
            for (int64_t r0 = 0; r0 < p.r0; r0++)
                for (int64_t r1 = 0; r1 < p.r1; r1++)
                    s += xd[(((k0 * p.r0 + r0) * p.k1 + k1) * p.r1 + r1) * p.k2 + k2];
            y[o] = (float)(s * scale);
        }
    }
    lt_node *nd = lt_tape_record(ctx, op, out, 1, (lt_tensor *[]){x});
    if (nd) {
        nd->i[0] = p.k0; nd->i[1] = p.r0; nd->i[2] = p.k1; nd->i[3] = p.r1; nd->i[4] = p.k2;
    }
    return out;
}

/* dx[k0, r0, k1, r1, k2] += scale · dy[k0, k1, k2] */
static void reduce_backward(lt_ctx *ctx, const lt_node *nd, int is_mean) {
    float *gx = lt_tensor_grad(ctx, nd->in[0]);
    if (!gx) return;
    red_plan p = {nd->i[0], nd->i[1], nd->i[2], nd->i[3], nd->i[4]};
    const float *g = nd->out->grad;
    float scale = is_mean ? (float)(1.0 / ((double)p.r0 * (double)p.r1)) : 1.0f;
    int64_t n = nd->in[0]->numel;
    if (p.k0 == 1 && p.k1 == 1 && p.k2 == 1) {
        /* everything reduced: one constant */
        float v = scale * g[0];
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += v;
    } else if (p.k0 == 1 && p.k1 == 1) {
        /* [R K2]: every row gets the same (K2) vector */
        int64_t rows = p.r0 * p.r1;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *gr = gx + r * p.k2;
#pragma omp simd
            for (int64_t j = 0; j < p.k2; j++) gr[j] += scale * g[j];
        }
    } else if (p.k1 == 1 && p.k2 == 1) {
        /* [K0 R]: row k gets one constant */
        int64_t len = p.r0 * p.r1;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t k = 0; k < p.k0; k++) {
            float v = scale * g[k], *gr = gx + k * len;
#pragma omp simd
            for (int64_t r = 0; r < len; r++) gr[r] += v;
        }
    } else {
        int64_t outer = p.k0 * p.r0;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            int64_t k0 = o / p.r0;
            float *gxo = gx + o * p.k1 * p.r1 * p.k2;
            for (int64_t k1 = 0; k1 < p.k1; k1++) {
                const float *gk = g + (k0 * p.k1 + k1) * p.k2;
                for (int64_t r1 = 0; r1 < p.r1; r1++) {
                    float *gr = gxo + (k1 * p.r1 + r1) * p.k2;
#pragma omp simd
                    for (int64_t k2 = 0; k2 < p.k2; k2++) gr[k2] += scale * gk[k2];
                }
            }
        }
    }
}

lt_tensor *lt_sum(lt_ctx *ctx, lt_tensor *x, unsigned axes) { return reduce(ctx, LT_OP_SUM, "sum", x, axes); }
lt_tensor *lt_mean(lt_ctx *ctx, lt_tensor *x, unsigned axes) { return reduce(ctx, LT_OP_MEAN, "mean", x, axes); }
void lt_sum_backward(lt_ctx *ctx, const lt_node *n) { reduce_backward(ctx, n, 0); }
void lt_mean_backward(lt_ctx *ctx, const lt_node *n) { reduce_backward(ctx, n, 1); }
