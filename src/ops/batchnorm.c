/* Batch normalization over NHWC (or any (..., C)) input, PyTorch semantics
 * (Ioffe & Szegedy 2015; torch.nn.BatchNorm2d):
 *
 *   batch statistics:  μ = mean(x), σ² = mean((x-μ)²) (biased) over all rows (N·H·W),
 *                      y = γ (x - μ) / √(σ² + ε) + β,
 *                      running_mean = (1-m)·running_mean + m·μ,
 *                      running_var  = (1-m)·running_var  + m·σ²·R/(R-1)   (unbiased)
 *   running statistics: y = γ (x - running_mean) / √(running_var + ε) + β
 *
 * Channel sums are accumulated in double over fixed blocks of rows (the blocks do not depend
 * on the thread count) and the blocks are combined in order, so the result is the same for
 * any number of threads. */
#include "backend.h"
#include "ops_internal.h"

#include <math.h>

#define BN_BLOCK_ROWS 256

/* part[b*2C + c] = Σ_{rows r of block b} a[r,c], part[b*2C + C + c] = Σ f(r,c) for the
 * second quantity chosen by the caller; combined into out[c], out[C + c] in block order. */
static void bn_combine(const double *part, int64_t nblk, int64_t C, double *out) {
    #pragma omp parallel for schedule(static) if (C * nblk > 65536)
    for (int64_t c = 0; c < 2 * C; c++) {
        double s = 0;
        for (int64_t b = 0; b < nblk; b++) s += part[b * 2 * C + c];
        out[c] = s;
    }
}

/* out[c] = Σ_r x[r,c], out[C+c] = Σ_r x[r,c]² (double). */
static void bn_moments(const float *restrict x, int64_t R, int64_t C, double *part, double *out) {
    int64_t nblk = (R + BN_BLOCK_ROWS - 1) / BN_BLOCK_ROWS;
    #pragma omp parallel for schedule(static) if (R * C > 32768)
    for (int64_t b = 0; b < nblk; b++) {
        double *restrict s = part + b * 2 * C, *restrict s2 = s + C;
        for (int64_t c = 0; c < C; c++) s[c] = s2[c] = 0;
        int64_t r1 = (b + 1) * BN_BLOCK_ROWS < R ? (b + 1) * BN_BLOCK_ROWS : R;
        for (int64_t r = b * BN_BLOCK_ROWS; r < r1; r++) {
            const float *restrict xr = x + r * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                double v = xr[c];
                s[c] += v;
                s2[c] += v * v;
            }
        }
    }
    bn_combine(part, nblk, C, out);
}

/* out[c] = Σ_r dy[r,c], out[C+c] = Σ_r dy[r,c]·(x[r,c] - mean[c]) (double); the second
 * sum times invstd is Σ dy·x̂. */
static void bn_grad_sums(const float *restrict dy, const float *restrict x,
                         const float *restrict mean, int64_t R, int64_t C, double *part,
                         double *out) {
    int64_t nblk = (R + BN_BLOCK_ROWS - 1) / BN_BLOCK_ROWS;
    #pragma omp parallel for schedule(static) if (R * C > 32768)
    for (int64_t b = 0; b < nblk; b++) {
        double *restrict s = part + b * 2 * C, *restrict s2 = s + C;
        for (int64_t c = 0; c < C; c++) s[c] = s2[c] = 0;
        int64_t r1 = (b + 1) * BN_BLOCK_ROWS < R ? (b + 1) * BN_BLOCK_ROWS : R;
        for (int64_t r = b * BN_BLOCK_ROWS; r < r1; r++) {
            const float *restrict g = dy + r * C, *restrict xr = x + r * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                double d = g[c];
                s[c] += d;
                s2[c] += d * (double)(xr[c] - mean[c]);
            }
        }
    }
    bn_combine(part, nblk, C, out);
}

/* y[r,c] = x[r,c]·scale[c] + shift[c] */
static void bn_affine(const float *restrict x, float *restrict y, const float *restrict scale,
                      const float *restrict shift, int64_t R, int64_t C) {
    #pragma omp parallel for schedule(static) if (R * C > 32768)
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = x + r * C;
        float *restrict yr = y + r * C;
        #pragma omp simd
        for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * scale[c] + shift[c];
    }
}

/* x (..., C), gamma/beta/running_mean/running_var (C) -> y (same shape as x). Saved for
 * backward: aux[0] = mean (C) and aux[1] = invstd (C) actually used to normalize.
 * running_mean/running_var may both be NULL with use_batch_stats (nothing to update). */
lt_tensor *lt_batchnorm(lt_ctx *ctx, lt_tensor *x, lt_tensor *gamma, lt_tensor *beta,
                        lt_tensor *running_mean, lt_tensor *running_var, int use_batch_stats,
                        float momentum, float eps) {
    if (lt_ops_bad_inputs(ctx, "batchnorm", 1, x)) return NULL;
    if (!running_mean != !running_var || (!use_batch_stats && !running_mean))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "batchnorm: running_mean and running_var must both be given%s",
                           use_batch_stats ? " or both be NULL" : " when normalizing with running statistics");
    char bs[64], bx[64];
    int64_t C = x->shape[x->ndim - 1], R = x->numel / C;
    lt_tensor *const vecs[4] = {gamma, beta, running_mean, running_var};
    static const char *const names[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++)
        if (vecs[k] && (vecs[k]->ndim != 1 || vecs[k]->shape[0] != C))
            return lt_ctx_fail(ctx, LT_ERR_SHAPE, "batchnorm: %s %s must be (%lld) for x %s", names[k],
                               lt_shape_str(vecs[k], bs, sizeof bs), (long long)C,
                               lt_shape_str(x, bx, sizeof bx));
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "batchnorm: eps %g must be > 0 and momentum %g in [0, 1]",
                           (double)eps, (double)momentum);
    if (use_batch_stats && R < 2)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "batchnorm: batch statistics need more than 1 value per channel, x %s has %lld",
                           lt_shape_str(x, bx, sizeof bx), (long long)R);
    lt_tensor *y = lt_tensor_new(ctx, x->ndim, x->shape);
    float *mean = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
    float *invstd = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
    float *scale = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
    float *shift = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
    if (!y || !mean || !invstd || !scale || !shift) return NULL;

    if (use_batch_stats) {
        int64_t nblk = (R + BN_BLOCK_ROWS - 1) / BN_BLOCK_ROWS;
        double *part = lt_ctx_alloc(ctx, (size_t)(nblk * 2 * C) * sizeof(double));
        double *mom = lt_ctx_alloc(ctx, (size_t)(2 * C) * sizeof(double));
        if (!part || !mom) return NULL;
        bn_moments(x->data, R, C, part, mom);
        for (int64_t c = 0; c < C; c++) {
            double mu = mom[c] / (double)R;
            double var = mom[C + c] / (double)R - mu * mu;
            if (var < 0) var = 0;  /* rounding of E[x²] - μ² */
            mean[c] = (float)mu;
            invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            if (!running_mean) continue;
            float *rm = running_mean->data, *rv = running_var->data;
            rm[c] = (1.0f - momentum) * rm[c] + momentum * (float)mu;
            rv[c] = (1.0f - momentum) * rv[c] + momentum * (float)(var * (double)R / (double)(R - 1));
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            mean[c] = running_mean->data[c];
            invstd[c] = (float)(1.0 / sqrt((double)running_var->data[c] + (double)eps));
        }
    }
    for (int64_t c = 0; c < C; c++) {
        float gc = gamma ? gamma->data[c] : 1.0f, bc = beta ? beta->data[c] : 0.0f;
        scale[c] = gc * invstd[c];
        shift[c] = bc - mean[c] * scale[c];
    }
    bn_affine(x->data, y->data, scale, shift, R, C);

    lt_node *nd = lt_tape_record(ctx, LT_OP_BATCHNORM, y, 3, (lt_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->i[0] = use_batch_stats != 0;
        nd->aux[0] = mean;
        nd->aux[1] = invstd;
    }
    return y;
}

/* With x̂ = (x - μ)·invstd, g = γ·dy:
 *   batch statistics:   dx = invstd·(g - mean(g) - x̂·mean(g·x̂))   (μ, σ² depend on x)
 *   running statistics: dx = invstd·g                                (plain affine)
 *   dγ += Σ dy·x̂,  dβ += Σ dy. */
void lt_batchnorm_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int64_t C = x->shape[x->ndim - 1], R = x->numel / C;
    const float *dy = nd->out->grad, *mean = nd->aux[0], *invstd = nd->aux[1];
    int batch = (int)nd->i[0];
    int need_x = x->requires_grad;
    int need_gb = (gamma && gamma->requires_grad) || (beta && beta->requires_grad);

    double *sums = NULL;  /* sums[c] = Σ dy, sums[C+c] = Σ dy·(x-μ) */
    if (need_gb || (need_x && batch)) {
        int64_t nblk = (R + BN_BLOCK_ROWS - 1) / BN_BLOCK_ROWS;
        double *part = lt_ctx_alloc(ctx, (size_t)(nblk * 2 * C) * sizeof(double));
        sums = lt_ctx_alloc(ctx, (size_t)(2 * C) * sizeof(double));
        if (!part || !sums) return;
        bn_grad_sums(dy, x->data, mean, R, C, part, sums);
    }
    if (need_x) {
        /* dx = a[c]·dy + b[c]·x + k[c], with (batch statistics)
         *   a = γ·invstd,  b = -γ·invstd³·Σdy(x-μ)/R,  k = -a·Σdy/R - b·μ. */
        float *a = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
        float *bcoef = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
        float *k = lt_ctx_alloc(ctx, (size_t)C * sizeof(float));
        int fresh;
        float *dx = lt_grad_for_write(ctx, x, &fresh);
        if (!a || !bcoef || !k || !dx) return;
        for (int64_t c = 0; c < C; c++) {
            double gc = gamma ? gamma->data[c] : 1.0, is = invstd[c];
            double ac = gc * is, bc = 0, kc = 0;
            if (batch) {
                bc = -gc * is * is * is * sums[C + c] / (double)R;
                kc = -ac * sums[c] / (double)R - bc * mean[c];
            }
            a[c] = (float)ac;
            bcoef[c] = (float)bc;
            k[c] = (float)kc;
        }
        const float *xd = x->data;
        #pragma omp parallel for schedule(static) if (R * C > 32768)
        for (int64_t r = 0; r < R; r++) {
            const float *restrict g = dy + r * C, *restrict xr = xd + r * C;
            float *restrict d = dx + r * C;
            if (fresh) {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) d[c] = a[c] * g[c] + bcoef[c] * xr[c] + k[c];
            } else {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) d[c] += a[c] * g[c] + bcoef[c] * xr[c] + k[c];
            }
        }
    }
    float *dg = lt_tensor_grad(ctx, gamma), *db = lt_tensor_grad(ctx, beta);
    for (int64_t c = 0; c < C && sums; c++) {
        if (dg) dg[c] += (float)(sums[C + c] * (double)invstd[c]);
        if (db) db[c] += (float)sums[c];
    }
}
