/* Row L2 norms, row normalization, and the cosine classifier.
 *
 * A "row" is everything but the last axis: x (..., D) has numel / D rows of D elements.
 * Norms are accumulated in double. cosine_sim is the classifier head of LDAM / RIDE
 * (NormedLinear: F.normalize(f) · F.normalize(W)ᵀ): it normalizes the rows of both
 * inputs once, then takes row-by-row dot products, threaded over the rows of a. */
#include "ops_internal.h"

#include <math.h>

enum { PAR_MIN = 32768 };  /* elements below which threading costs more than it saves */

static double row_norm(const float *x, int64_t d) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < d; k++) s += (double)x[k] * x[k];
    return sqrt(s);
}

/* y = x / max(n, eps) for one row; returns n. */
static float normalize_row(const float *x, float *y, int64_t d, float eps) {
    float n = (float)row_norm(x, d);
    float inv = 1.0f / (n > eps ? n : eps);
#pragma omp simd
    for (int64_t k = 0; k < d; k++) y[k] = x[k] * inv;
    return n;
}

/* Backward of y = x / max(n, eps) for one row, n = ‖x‖:
 *   n >= eps: dx += (g - y (y·g)) / n;   n < eps: dx += g / eps
 * (the clamp passes its gradient at n = eps, as PyTorch's clamp_min). */
static void normalize_row_backward(const float *g, const float *y, float n, float eps,
                                   float *gx, int64_t d) {
    if (n >= eps && n > 0) {
        double dot = 0;
        for (int64_t k = 0; k < d; k++) dot += (double)y[k] * g[k];
        float fd = (float)dot, inv = 1.0f / n;
#pragma omp simd
        for (int64_t k = 0; k < d; k++) gx[k] += (g[k] - y[k] * fd) * inv;
    } else {
        float inv = 1.0f / eps;
#pragma omp simd
        for (int64_t k = 0; k < d; k++) gx[k] += g[k] * inv;
    }
}

static int check_eps(lt_ctx *ctx, const char *op, float eps) {
    if (eps > 0.0f) return 0;
    lt_ctx_fail(ctx, LT_ERR_ARG, "%s: eps %g must be > 0", op, (double)eps);
    return -1;
}

/* ---- row_l2norm: (..., D) -> (...) ; (D) -> (1) ---- */

lt_tensor *lt_row_l2norm(lt_ctx *ctx, lt_tensor *x) {
    if (lt_ops_bad_inputs(ctx, "row_l2norm", 1, x)) return NULL;
    int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
    lt_tensor *out = x->ndim == 1 ? lt_tensor_new1(ctx, 1) : lt_tensor_new(ctx, x->ndim - 1, x->shape);
    if (!out) return NULL;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) out->data[r] = (float)row_norm(x->data + r * d, d);
    lt_tape_record(ctx, LT_OP_ROW_L2NORM, out, 1, (lt_tensor *[]){x});
    return out;
}

/* dx += g_r · x / ‖x‖  (0 for a zero row, as PyTorch's norm backward) */
void lt_row_l2norm_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *gx = lt_tensor_grad(ctx, x);
    if (!gx) return;
    int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
    const float *g = nd->out->grad, *n = nd->out->data;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (n[r] == 0.0f) continue;
        float s = g[r] / n[r];
        const float *xr = x->data + r * d;
        float *gr = gx + r * d;
#pragma omp simd
        for (int64_t k = 0; k < d; k++) gr[k] += s * xr[k];
    }
}

/* ---- normalize_rows: x / max(‖x‖, eps) ---- */

lt_tensor *lt_normalize_rows(lt_ctx *ctx, lt_tensor *x, float eps) {
    if (lt_ops_bad_inputs(ctx, "normalize_rows", 1, x) || check_eps(ctx, "normalize_rows", eps)) return NULL;
    int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
    lt_tensor *out = lt_tensor_new(ctx, x->ndim, x->shape);
    float *norms = out ? lt_ctx_alloc(ctx, (size_t)rows * sizeof(float)) : NULL;
    if (!norms) return NULL;
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) norms[r] = normalize_row(x->data + r * d, out->data + r * d, d, eps);
    lt_node *nd = lt_tape_record(ctx, LT_OP_NORMALIZE_ROWS, out, 1, (lt_tensor *[]){x});
    if (nd) { nd->aux[0] = norms; nd->f[0] = eps; }
    return out;
}

void lt_normalize_rows_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0];
    float *gx = lt_tensor_grad(ctx, x);
    if (!gx) return;
    int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
    const float *g = nd->out->grad, *y = nd->out->data, *norms = nd->aux[0];
#pragma omp parallel for if (x->numel > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        normalize_row_backward(g + r * d, y + r * d, norms[r], nd->f[0], gx + r * d, d);
}

/* ---- cosine_sim: a (N, D), b (M, D) -> (N, M) = â b̂ᵀ, â = a / max(‖a‖, eps) ---- */

lt_tensor *lt_cosine_sim(lt_ctx *ctx, lt_tensor *a, lt_tensor *b, float eps) {
    if (lt_ops_bad_inputs(ctx, "cosine_sim", 2, a, b) || check_eps(ctx, "cosine_sim", eps)) return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1]) {
        char sa[64], sb[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "cosine_sim: expected a (N, D) and b (M, D), got a %s and b %s",
                           lt_shape_str(a, sa, sizeof sa), lt_shape_str(b, sb, sizeof sb));
    }
    int64_t N = a->shape[0], M = b->shape[0], D = a->shape[1];
    lt_tensor *out = lt_tensor_new2(ctx, N, M);
    float *ah = out ? lt_ctx_alloc(ctx, (size_t)(N * D) * sizeof(float)) : NULL;
    float *bh = ah ? lt_ctx_alloc(ctx, (size_t)(M * D) * sizeof(float)) : NULL;
    float *na = bh ? lt_ctx_alloc(ctx, (size_t)N * sizeof(float)) : NULL;
    float *nb = na ? lt_ctx_alloc(ctx, (size_t)M * sizeof(float)) : NULL;
    if (!nb) return NULL;
    int par = N * M * D > PAR_MIN;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) na[i] = normalize_row(a->data + i * D, ah + i * D, D, eps);
#pragma omp for schedule(static)
        for (int64_t j = 0; j < M; j++) nb[j] = normalize_row(b->data + j * D, bh + j * D, D, eps);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *ai = ah + i * D;
            for (int64_t j = 0; j < M; j++) {
                const float *bj = bh + j * D;
                float s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t k = 0; k < D; k++) s += ai[k] * bj[k];
                out->data[i * M + j] = s;
            }
        }
    }
    lt_node *nd = lt_tape_record(ctx, LT_OP_COSINE_SIM, out, 2, (lt_tensor *[]){a, b});
    if (nd) {
        nd->aux[0] = ah; nd->aux[1] = bh; nd->aux[2] = na; nd->aux[3] = nb;
        nd->f[0] = eps;
    }
    return out;
}

/* One side's gradient of cosine_sim: for each of its n rows r, gh_r = Σ_o G[r·gs + o·go] ô_o
 * over the m rows ô of the other side, then back through row r's normalization into gx.
 * Side a: (gs, go) = (M, 1); side b: (1, M). gh: scratch of n·D. */
static void cosine_side_backward(const float *G, int64_t gs, int64_t go, const float *self_hat,
                                 const float *self_norm, const float *other_hat, int64_t n, int64_t m,
                                 int64_t D, float eps, float *gh, float *gx, int par) {
#pragma omp parallel for if (par) schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *gr = gh + r * D;
        for (int64_t k = 0; k < D; k++) gr[k] = 0;
        for (int64_t o = 0; o < m; o++) {
            float g = G[r * gs + o * go];
            const float *oh = other_hat + o * D;
#pragma omp simd
            for (int64_t k = 0; k < D; k++) gr[k] += g * oh[k];
        }
        normalize_row_backward(gr, self_hat + r * D, self_norm[r], eps, gx + r * D, D);
    }
}

/* dÂ_i = Σ_j G_ij b̂_j,  dB̂_j = Σ_i G_ij â_i, then each through its row normalization. */
void lt_cosine_sim_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    float *ga = lt_tensor_grad(ctx, a), *gb = lt_tensor_grad(ctx, b);
    int64_t N = a->shape[0], M = b->shape[0], D = a->shape[1];
    const float *G = nd->out->grad, *ah = nd->aux[0], *bh = nd->aux[1], *na = nd->aux[2], *nb = nd->aux[3];
    float eps = nd->f[0];
    /* Scratch for the gradient w.r.t. the normalized rows. */
    float *gh = (ga || gb) ? lt_ctx_alloc(ctx, (size_t)((N > M ? N : M) * D) * sizeof(float)) : NULL;
    if (!gh) return;
    int par = N * M * D > PAR_MIN;
    if (ga) cosine_side_backward(G, M, 1, ah, na, bh, N, M, D, eps, gh, ga, par);
    if (gb) cosine_side_backward(G, 1, M, bh, nb, ah, M, N, D, eps, gh, gb, par);
}
