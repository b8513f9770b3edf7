/* Elementwise binary ops with trailing-dims broadcast of b, and unary math ops.
 *
 * Broadcast: b has a's shape, or b's shape equals a's trailing dims (a bias (C) against
 * (N, H, W, C)); then a is viewed as (rows, nb) with nb = b.numel and b repeats per row.
 * The backward of a broadcast b sums over the rows (colsum.h: deterministic for any thread
 * count). These loops run on whole activation tensors (residual adds), so they are plain
 * contiguous loops marked `omp simd` (GCC -O2 does not vectorize unknown trip counts on
 * its own) and threaded above PAR_MIN elements. */
#include "backend.h"
#include "colsum.h"

#include <math.h>

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

/* ---- binary: add, sub, mul, div ---- */

static int broadcasts(const lt_tensor *a, const lt_tensor *b) {
    if (b->ndim > a->ndim) return 0;
    for (int k = 0; k < b->ndim; k++)
        if (b->shape[k] != a->shape[a->ndim - b->ndim + k]) return 0;
    return 1;
}

/* y = EXPR(u, v) with u = a[i], v = b[i mod nb]. */
#define BINARY_LOOP(EXPR)                                                                \
    do {                                                                                 \
        if (nb == n) {                                                                   \
            _Pragma("omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)") \
            for (int64_t i = 0; i < n; i++) { float u = pa[i], v = pb[i]; py[i] = (EXPR); } \
        } else {                                                                         \
            int64_t rows = n / nb;                                                       \
            _Pragma("omp parallel for if (n > PAR_MIN) schedule(static)")                \
            for (int64_t r = 0; r < rows; r++) {                                         \
                const float *ar = pa + r * nb;                                           \
                float *yr = py + r * nb;                                                 \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < nb; j++) { float u = ar[j], v = pb[j]; yr[j] = (EXPR); } \
            }                                                                            \
        }                                                                                \
    } while (0)

static lt_tensor *binary(lt_ctx *ctx, enum lt_op op, const char *name, lt_tensor *a, lt_tensor *b) {
    if (lt_ops_bad_inputs(ctx, name, 2, a, b)) return NULL;
    if (!broadcasts(a, b)) {
        char sa[64], sb[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE,
                           "%s: b %s does not broadcast to a %s (b's shape must equal a's or a's trailing dims)",
                           name, lt_shape_str(b, sb, sizeof sb), lt_shape_str(a, sa, sizeof sa));
    }
    lt_tensor *out = lt_tensor_new(ctx, a->ndim, a->shape);
    if (!out) return NULL;
    const float *pa = a->data, *pb = b->data;
    float *py = out->data;
    int64_t n = a->numel, nb = b->numel;
    switch (op) {
    case LT_OP_ADD: BINARY_LOOP(u + v); break;
    case LT_OP_SUB: BINARY_LOOP(u - v); break;
    case LT_OP_MUL: BINARY_LOOP(u * v); break;
    default:        BINARY_LOOP(u / v); break;
    }
    lt_tape_record(ctx, op, out, 2, (lt_tensor *[]){a, b});
    return out;
}

lt_tensor *lt_add(lt_ctx *ctx, lt_tensor *a, lt_tensor *b) { return binary(ctx, LT_OP_ADD, "add", a, b); }
lt_tensor *lt_sub(lt_ctx *ctx, lt_tensor *a, lt_tensor *b) { return binary(ctx, LT_OP_SUB, "sub", a, b); }
lt_tensor *lt_mul(lt_ctx *ctx, lt_tensor *a, lt_tensor *b) { return binary(ctx, LT_OP_MUL, "mul", a, b); }
lt_tensor *lt_div(lt_ctx *ctx, lt_tensor *a, lt_tensor *b) { return binary(ctx, LT_OP_DIV, "div", a, b); }

/* ga += s · g · (m ? m : 1), elementwise over n. */
static void axpy(float *ga, float s, const float *g, const float *m, int64_t n) {
    if (m) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ga[i] += s * g[i] * m[i];
    } else {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ga[i] += s * g[i];
    }
}

/* gb += s · Σ_rows g · (m ? m : 1) for a broadcast b of nb elements (same-shape b: axpy). */
static void grad_b(lt_ctx *ctx, float *gb, float s, const float *g, const float *m,
                   int64_t n, int64_t nb) {
    if (nb == n) { axpy(gb, s, g, m, n); return; }
    double *acc = lt_ctx_alloc(ctx, (size_t)nb * sizeof(double));
    if (!acc || lt_colsum(ctx, g, m, m ? LT_COLSUM_MUL : LT_COLSUM_ONE, n / nb, nb, acc)) return;
    for (int64_t j = 0; j < nb; j++) gb[j] += (float)(s * acc[j]);
}

/* y = a + b:  da += g,  db += Σ_bcast g. A first gradient of a (the residual branch) is
 * a copy of g (g + 0, so a -0 becomes +0 exactly as zero-fill-and-add gives). */
void lt_add_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    const float *g = nd->out->grad;
    int fresh;
    float *ga = lt_grad_for_write(ctx, a, &fresh), *gb = lt_tensor_grad(ctx, b);
    if (ga && fresh) {
        int64_t n = a->numel;
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ga[i] = g[i] + 0.0f;
    } else if (ga) {
        axpy(ga, 1.0f, g, NULL, a->numel);
    }
    if (gb) grad_b(ctx, gb, 1.0f, g, NULL, a->numel, b->numel);
}

/* y = a - b:  da += g,  db -= Σ_bcast g */
void lt_sub_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    const float *g = nd->out->grad;
    float *ga = lt_tensor_grad(ctx, a), *gb = lt_tensor_grad(ctx, b);
    if (ga) axpy(ga, 1.0f, g, NULL, a->numel);
    if (gb) grad_b(ctx, gb, -1.0f, g, NULL, a->numel, b->numel);
}

/* y = a · b:  da += g · b,  db += Σ_bcast g · a */
void lt_mul_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    const float *g = nd->out->grad;
    int64_t n = a->numel, nb = b->numel;
    float *ga = lt_tensor_grad(ctx, a), *gb = lt_tensor_grad(ctx, b);
    if (ga) {
        const float *pb = b->data;
        if (nb == n) {
            axpy(ga, 1.0f, g, pb, n);
        } else {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
            for (int64_t r = 0; r < n / nb; r++) {
#pragma omp simd
                for (int64_t j = 0; j < nb; j++) ga[r * nb + j] += g[r * nb + j] * pb[j];
            }
        }
    }
    if (gb) grad_b(ctx, gb, 1.0f, g, a->data, n, nb);
}

/* y = a / b:  da += g / b,  db += Σ_bcast -g · a / b² */
void lt_div_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    const float *g = nd->out->grad, *pa = a->data, *pb = b->data;
    int64_t n = a->numel, nb = b->numel;
    float *ga = lt_tensor_grad(ctx, a), *gb = lt_tensor_grad(ctx, b);
    if (ga && nb == n) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) ga[i] += g[i] / pb[i];
    } else if (ga) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < n / nb; r++) {
#pragma omp simd
            for (int64_t j = 0; j < nb; j++) ga[r * nb + j] += g[r * nb + j] / pb[j];
        }
    }
    if (!gb) return;
    if (nb == n) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gb[i] -= g[i] * pa[i] / (pb[i] * pb[i]);
        return;
    }
    /* b is constant along the rows: Σ_r -g a / b_j² = -(Σ_r g a) / b_j² */
    double *acc = lt_ctx_alloc(ctx, (size_t)nb * sizeof(double));
    if (!acc || lt_colsum(ctx, g, pa, LT_COLSUM_MUL, n / nb, nb, acc)) return;
    for (int64_t j = 0; j < nb; j++) gb[j] -= (float)(acc[j] / ((double)pb[j] * pb[j]));
}

/* ---- unary ---- */

#define UNARY_LOOP(EXPR)                                                                 \
    do {                                                                                 \
        _Pragma("omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)")    \
        for (int64_t i = 0; i < n; i++) { float x = px[i]; py[i] = (EXPR); }             \
    } while (0)

static lt_tensor *unary(lt_ctx *ctx, enum lt_op op, const char *name, lt_tensor *a, float p0, float p1) {
    if (lt_ops_bad_inputs(ctx, name, 1, a)) return NULL;
    lt_tensor *out = lt_tensor_new(ctx, a->ndim, a->shape);
    if (!out) return NULL;
    const float *px = a->data;
    float *py = out->data;
    int64_t n = a->numel;
    switch (op) {
    case LT_OP_SCALE:      UNARY_LOOP(p0 * x); break;
    case LT_OP_ADD_SCALAR: UNARY_LOOP(x + p0); break;
    case LT_OP_EXP:        UNARY_LOOP(expf(x)); break;
    case LT_OP_LOG:        UNARY_LOOP(logf(x)); break;
    case LT_OP_ABS:        UNARY_LOOP(fabsf(x)); break;
    case LT_OP_SQRT:       UNARY_LOOP(sqrtf(x)); break;
    case LT_OP_POW:        UNARY_LOOP(powf(x, p0)); break;
    case LT_OP_CLAMP:      UNARY_LOOP(x < p0 ? p0 : (x > p1 ? p1 : x)); break;  /* NaN stays NaN */
    default: LT_ASSERT(!"unary: not a unary op");
    }
    lt_node *nd = lt_tape_record(ctx, op, out, 1, (lt_tensor *[]){a});
    if (nd) { nd->f[0] = p0; nd->f[1] = p1; }
    return out;
}

lt_tensor *lt_scale(lt_ctx *ctx, lt_tensor *a, float s) { return unary(ctx, LT_OP_SCALE, "scale", a, s, 0); }
lt_tensor *lt_add_scalar(lt_ctx *ctx, lt_tensor *a, float s) { return unary(ctx, LT_OP_ADD_SCALAR, "add_scalar", a, s, 0); }
lt_tensor *lt_exp(lt_ctx *ctx, lt_tensor *a) { return unary(ctx, LT_OP_EXP, "exp", a, 0, 0); }
lt_tensor *lt_log(lt_ctx *ctx, lt_tensor *a) { return unary(ctx, LT_OP_LOG, "log", a, 0, 0); }
lt_tensor *lt_abs(lt_ctx *ctx, lt_tensor *a) { return unary(ctx, LT_OP_ABS, "abs", a, 0, 0); }
lt_tensor *lt_sqrt(lt_ctx *ctx, lt_tensor *a) { return unary(ctx, LT_OP_SQRT, "sqrt", a, 0, 0); }
lt_tensor *lt_pow(lt_ctx *ctx, lt_tensor *a, float p) { return unary(ctx, LT_OP_POW, "pow", a, p, 0); }

lt_tensor *lt_clamp(lt_ctx *ctx, lt_tensor *a, float lo, float hi) {
    if (ctx->status == LT_OK && !(lo <= hi))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "clamp: lo %g > hi %g (or NaN)", (double)lo, (double)hi);
    return unary(ctx, LT_OP_CLAMP, "clamp", a, lo, hi);
}

/* ga += EXPR(g, x, y) with x = input, y = output. */
#define UNARY_BACKWARD(EXPR)                                                             \
    do {                                                                                 \
        float *ga = lt_tensor_grad(ctx, nd->in[0]);                                      \
        if (!ga) return;                                                                 \
        const float *pg = nd->out->grad, *px = nd->in[0]->data, *py = nd->out->data;     \
        float p0 = nd->f[0], p1 = nd->f[1];                                              \
        int64_t n = nd->in[0]->numel;                                                    \
        (void)px; (void)py; (void)p0; (void)p1;                                          \
        _Pragma("omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)")    \
        for (int64_t i = 0; i < n; i++) { float g = pg[i], x = px[i], y = py[i]; (void)x; (void)y; ga[i] += (EXPR); } \
    } while (0)

void lt_scale_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(p0 * g); }
void lt_add_scalar_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(g); }
void lt_exp_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(g * y); }
void lt_log_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(g / x); }
/* d|x|/dx = sign(x), 0 at 0 (as PyTorch). */
void lt_abs_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(x > 0 ? g : (x < 0 ? -g : 0.0f)); }
void lt_sqrt_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(0.5f * g / y); }
/* d x^p = p x^(p-1); exactly 0 for p = 0 (PyTorch's pow_backward). */
void lt_pow_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(p0 == 0.0f ? 0.0f : g * p0 * powf(x, p0 - 1.0f)); }
/* Gradient passes where lo <= x <= hi, bounds included (as PyTorch's clamp). */
void lt_clamp_backward(lt_ctx *ctx, const lt_node *nd) { UNARY_BACKWARD(x >= p0 && x <= p1 ? g : 0.0f); }
