/* lt_model: a backbone (a module tree from the architecture registry, arch.c) followed by
 * one or more heads (cfg.head), over one lt_params. Also the initialization helpers. */
#include "nn_internal.h"

#include "longtail/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- init helpers */

void lt_init_kaiming_normal(lt_tensor *w, int64_t fan, lt_rng *rng) {
    double std = sqrt(2.0 / (double)fan);
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = (float)(std * lt_rng_normal(rng));
}

void lt_init_uniform(lt_tensor *w, float lo, float hi, lt_rng *rng) {
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = lo + (hi - lo) * lt_rng_uniform(rng);
}

/* ---------------------------------------------------------------- model */

lt_model_config lt_model_config_resnet(int depth, int in_channels, int in_height,
                                       int in_width, int num_classes) {
    lt_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = LT_ARCH_RESNET_CIFAR;
    c.depth = depth;
    c.in_channels = in_channels;
    c.in_height = in_height;
    c.in_width = in_width;
    c.width = 1.0f;
    c.num_classes = num_classes;
    c.head = LT_HEAD_LINEAR;
    c.fc_bias_init = LT_BIAS_INIT_TORCH;
    c.bn_momentum = 0.1f;
    c.bn_eps = 1e-5f;
    return c;
}

const char *lt_head_kind_name(lt_head_kind kind) {
    switch (kind) {
    case LT_HEAD_LINEAR: return "linear";
    case LT_HEAD_COSINE: return "cosine";
    case LT_HEAD_ETF: return "etf";
    case LT_HEAD_LWS: return "lws";
    }
    return "?";
}

lt_head *lt_model_head(lt_model *m, int k) {
    if (k < 0 || k >= m->n_heads) return NULL;
    return k == 0 ? &m->head : &m->more_heads[k - 1];
}

static lt_status head_add(lt_model *m, const lt_head *h, const char *leaf, lt_param_kind kind, int ndim,
                          const int64_t *shape) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", h->prefix, leaf);
    return lt_params_add(&m->params, name, kind, ndim, shape, LT_GROUP_HEAD, NULL);
}

static lt_status head_declare(lt_model *m, const lt_head *h) {
    const lt_model_config *c = &m->cfg;
    int64_t ws[2] = {c->num_classes, m->feature_dim}, bs[1] = {c->num_classes};
    lt_status s;
    switch (c->head) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_LWS:
        s = head_add(m, h, "weight", LT_PARAM_WEIGHT, 2, ws);
        if (s == LT_OK) s = head_add(m, h, "bias", LT_PARAM_WEIGHT, 1, bs);
        if (s == LT_OK && c->head == LT_HEAD_LWS) s = head_add(m, h, "scales", LT_PARAM_WEIGHT, 1, bs);
        return s;
    case LT_HEAD_COSINE:
        return head_add(m, h, "weight", LT_PARAM_WEIGHT, 2, ws);
    case LT_HEAD_ETF:
        if (c->num_classes < 2)
            return lt_error(LT_ERR_ARG, "model: the ETF head needs at least 2 classes, got %d", c->num_classes);
        if (m->feature_dim < c->num_classes)
            return lt_error(LT_ERR_ARG,
                            "model: the ETF head needs feature dimension D >= classes C (a simplex of C unit vectors "
                            "with cosines -1/(C-1) spans C-1 dimensions and U has C orthonormal columns), got D = %lld, "
                            "C = %d (widen the backbone: [model] width)",
                            (long long)m->feature_dim, c->num_classes);
        s = head_add(m, h, "weight", LT_PARAM_BUFFER, 2, ws);
        if (s == LT_OK) s = head_add(m, h, "bias", LT_PARAM_WEIGHT, 1, bs);
        return s;
    }
    return lt_error(LT_ERR_ARG, "model: unknown head kind %d", (int)c->head);
}

static lt_tensor *head_view(lt_model *m, const lt_head *h, const char *leaf) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", h->prefix, leaf);
    return lt_params_tensor(&m->params, name);
}

static lt_status head_bind(lt_model *m, lt_head *h) {
    h->kind = m->cfg.head;
    h->in_dim = m->feature_dim;
    h->out_dim = m->cfg.num_classes;
    h->weight = head_view(m, h, "weight");
    h->bias = head_view(m, h, "bias");
    h->scales = head_view(m, h, "scales");
    if (!h->weight || (!h->bias && h->kind != LT_HEAD_COSINE) || (!h->scales && h->kind == LT_HEAD_LWS))
        return lt_error(LT_ERR_STATE, "model: head '%s' parameters missing", h->prefix);
    return LT_OK;
}

/* The ETF rows (see LT_HEAD_ETF): modified Gram–Schmidt on a Gaussian D×C in double gives
 * U (the first C columns of a Haar-random orthogonal matrix, up to column signs), then
 * W[j, :] = Σ_k M[k, j] U[:, k] with M = √(C/(C−1)) (I − 11ᵀ/C). */
static lt_status etf_init(lt_tensor *w, int64_t C, int64_t D, lt_rng *rng) {
    double *u = lt_malloc((size_t)(C * D) * sizeof(double));   /* column k at u + k*D */
    if (!u) return lt_error(LT_ERR_NOMEM, "model: ETF head: out of memory");
    for (int64_t i = 0; i < C * D; i++) u[i] = lt_rng_normal(rng);
    for (int64_t k = 0; k < C; k++) {
        double *uk = u + k * D;
        for (int pass = 0; pass < 2; pass++)   /* re-orthogonalize once for accuracy */
            for (int64_t j = 0; j < k; j++) {
                const double *uj = u + j * D;
                double dot = 0;
                for (int64_t d = 0; d < D; d++) dot += uj[d] * uk[d];
                for (int64_t d = 0; d < D; d++) uk[d] -= dot * uj[d];
            }
        double nn = 0;
        for (int64_t d = 0; d < D; d++) nn += uk[d] * uk[d];
        nn = sqrt(nn);
        if (!(nn > 1e-12)) {
            lt_free(u);
            return lt_error(LT_ERR_STATE, "model: ETF head: degenerate random basis (column %lld)", (long long)k);
        }
        for (int64_t d = 0; d < D; d++) uk[d] /= nn;
    }
    double a = sqrt((double)C / (double)(C - 1));
    for (int64_t j = 0; j < C; j++)
        for (int64_t d = 0; d < D; d++) {
            /* Σ_k M[k,j] U[d,k] = a (U[d,j] − mean_k U[d,k]) */
            double mean = 0;
            for (int64_t k = 0; k < C; k++) mean += u[k * D + d];
            mean /= (double)C;
            w->data[j * D + d] = (float)(a * (u[j * D + d] - mean));
        }
    lt_free(u);
    return LT_OK;
}

/* Draws in the order weight, bias, as the architecture's reference code does: the CIFAR
 * ResNets re-initialize the weight Kaiming-normal fan-in and keep nn.Linear's bias
 * (fc_bias_init), torchvision and the MLP keep nn.Linear's default for both. */
static lt_status head_init(lt_model *m, lt_head *h, lt_weight_init how, lt_rng *rng) {
    int64_t D = m->feature_dim;
    float bound = (float)(1.0 / sqrt((double)D));
    if (h->kind == LT_HEAD_ETF) {
        lt_status s = etf_init(h->weight, m->cfg.num_classes, D, rng);
        if (s != LT_OK) return s;
    } else if (how == LT_WINIT_TORCH_DEFAULT) {
        lt_init_uniform(h->weight, -bound, bound, rng);
    } else {
        lt_init_kaiming_normal(h->weight, D, rng);
    }
    if (h->scales)
        for (int64_t i = 0; i < h->scales->numel; i++) h->scales->data[i] = 1.0f;
    if (!h->bias) return LT_OK;
    if (m->cfg.fc_bias_init == LT_BIAS_INIT_ZERO) memset(h->bias->data, 0, (size_t)h->bias->numel * sizeof(float));
    else lt_init_uniform(h->bias, -bound, bound, rng);
    return LT_OK;
}

lt_status lt_model_init(lt_model *m, const lt_model_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    lt_params_init(&m->params);
    if (!cfg) return lt_error(LT_ERR_ARG, "model: NULL config");
    m->cfg = *cfg;
    lt_model_config *c = &m->cfg;
    if (c->width == 0.0f) c->width = 1.0f;
    if (c->bn_momentum == 0.0f) c->bn_momentum = 0.1f;
    if (c->bn_eps == 0.0f) c->bn_eps = 1e-5f;
    if (!(c->width > 0.0f) || c->width > 64.0f)
        return lt_error(LT_ERR_ARG, "model: width multiplier %g (expected > 0 and <= 64)", (double)c->width);
    if (!(c->bn_momentum > 0.0f && c->bn_momentum <= 1.0f) || !(c->bn_eps > 0.0f))
        return lt_error(LT_ERR_ARG, "model: bn momentum %g / eps %g (expected (0, 1] / > 0)",
                        (double)c->bn_momentum, (double)c->bn_eps);
    if (c->in_channels < 1 || c->in_height < 1 || c->in_width < 1)
        return lt_error(LT_ERR_ARG, "model: input %dx%dx%d (expected positive channels x height x width)",
                        c->in_channels, c->in_height, c->in_width);
    if (c->num_classes < 1) return lt_error(LT_ERR_ARG, "model: %d classes (expected >= 1)", c->num_classes);
    if (c->fc_bias_init != LT_BIAS_INIT_TORCH && c->fc_bias_init != LT_BIAS_INIT_ZERO)
        return lt_error(LT_ERR_ARG, "model: unknown fc bias init %d", (int)c->fc_bias_init);

    if (c->heads == 0) c->heads = 1;
    if (c->heads < 1 || c->heads > LT_MAX_HEADS)
        return lt_error(LT_ERR_ARG, "model: %d heads (expected 1 .. %d)", c->heads, LT_MAX_HEADS);

    lt_weight_init head_how = LT_WINIT_KAIMING_FAN_IN;
    lt_status s = lt_arch_build(m, &m->root, &head_how);
    if (s == LT_OK) s = lt_module_declare(m->root, &m->params);
    m->n_heads = c->heads;
    for (int k = 0; k < m->n_heads && s == LT_OK; k++) {
        lt_head *h = lt_model_head(m, k);
        if (m->n_heads == 1) snprintf(h->prefix, sizeof h->prefix, "fc");
        else snprintf(h->prefix, sizeof h->prefix, "fc.%d", k);
        s = head_declare(m, h);
    }
    if (s == LT_OK) s = lt_params_finalize(&m->params);
    if (s == LT_OK) s = lt_module_bind(m->root, &m->params);
    for (int k = 0; k < m->n_heads && s == LT_OK; k++) s = head_bind(m, lt_model_head(m, k));
    if (s == LT_OK) {
        /* State_dict order: the backbone, then each head. */
        lt_rng rng;
        lt_rng_init(&rng, seed, LT_STREAM_INIT);
        lt_module_init(m->root, &rng);
        for (int k = 0; k < m->n_heads && s == LT_OK; k++) s = head_init(m, lt_model_head(m, k), head_how, &rng);
    }
    if (s != LT_OK) {
        lt_model_free(m); /* frees raise nothing: the message set above stands */
        return s;
    }
    m->bn_mode = LT_BN_TRAIN;
    return LT_OK;
}

void lt_model_free(lt_model *m) {
    if (!m) return;
    lt_module_free(m->root);
    lt_free(m->head.post_scale);
    lt_free(m->head.post_shift);
    lt_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

void lt_model_set_bn_mode(lt_model *m, lt_bn_mode mode) {
    m->bn_mode = mode;
    if (m->root) lt_module_set_bn_mode(m->root, NULL, -1);
}

lt_status lt_model_set_bn_mode_prefix(lt_model *m, const char *prefix, lt_bn_mode mode) {
    if (!m->root || lt_module_set_bn_mode(m->root, prefix, (int)mode) == 0)
        return lt_error(LT_ERR_ARG, "model: no batch norm under '%s'", prefix);
    return LT_OK;
}

lt_status lt_model_set_posthoc(lt_model *m, const float *scale, const float *shift) {
    lt_free(m->head.post_scale);
    lt_free(m->head.post_shift);
    m->head.post_scale = m->head.post_shift = NULL;
    if (!scale && !shift) return LT_OK;
    int64_t C = m->cfg.num_classes;
    float *sc = lt_malloc((size_t)C * sizeof(float)), *sh = lt_malloc((size_t)C * sizeof(float));
    if (!sc || !sh) {
        lt_free(sc);
        lt_free(sh);
        return lt_error(LT_ERR_NOMEM, "model: post-hoc transform: out of memory");
    }
    for (int64_t c = 0; c < C; c++) {
        sc[c] = scale ? scale[c] : 1.0f;
        sh[c] = shift ? shift[c] : 0.0f;
    }
    m->head.post_scale = sc;
    m->head.post_shift = sh;
    return LT_OK;
}

int64_t lt_model_num_params(const lt_model *m) { return lt_params_numel(&m->params); }

lt_tensor *lt_model_forward_features(lt_ctx *ctx, lt_model *m, lt_tensor *x) {
    if (lt_ctx_status(ctx) != LT_OK) return NULL;
    if (!x) return lt_ctx_fail(ctx, LT_ERR_ARG, "model: NULL input");
    if (!m || !m->root) return lt_ctx_fail(ctx, LT_ERR_STATE, "model: not initialized");
    int fixed = m->cfg.arch == LT_ARCH_MLP; /* the first linear layer fixes H and W */
    if (x->ndim != 4 || x->shape[3] != m->cfg.in_channels ||
        (fixed && (x->shape[1] != m->cfg.in_height || x->shape[2] != m->cfg.in_width))) {
        char b[64];
        if (fixed)
            return lt_ctx_fail(ctx, LT_ERR_SHAPE, "model: input %s (expected (B, %d, %d, %d) NHWC)",
                               lt_shape_str(x, b, sizeof b), m->cfg.in_height, m->cfg.in_width, m->cfg.in_channels);
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "model: input %s (expected (B, H, W, %d) NHWC)",
                           lt_shape_str(x, b, sizeof b), m->cfg.in_channels);
    }
    return lt_module_forward(ctx, m, m->root, x);
}

/* The evaluation-only transform, in place (no tape reads z afterwards). */
static void apply_posthoc(lt_ctx *ctx, const lt_model *m, lt_tensor *z) {
    if (!z || !m->head.post_scale || lt_ctx_training(ctx) || lt_ctx_grad_enabled(ctx)) return;
    int64_t C = z->shape[1];
    for (int64_t i = 0; i < z->shape[0]; i++)
        for (int64_t c = 0; c < C; c++) z->data[i * C + c] = z->data[i * C + c] * m->head.post_scale[c] + m->head.post_shift[c];
}

static lt_tensor *head_logits(lt_ctx *ctx, lt_model *m, int k, lt_tensor *f) {
    if (lt_ctx_status(ctx) != LT_OK) return NULL;
    if (!f) return lt_ctx_fail(ctx, LT_ERR_ARG, "model: NULL features");
    lt_head *h = lt_model_head(m, k);
    if (!h) return lt_ctx_fail(ctx, LT_ERR_ARG, "model: head %d (the model has %d)", k, m->n_heads);
    if (f->ndim != 2 || f->shape[1] != m->feature_dim) {
        char b[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "model head: features %s (expected (B, %lld))",
                           lt_shape_str(f, b, sizeof b), (long long)m->feature_dim);
    }
    switch (h->kind) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_ETF: return lt_linear(ctx, f, h->weight, h->bias);
    case LT_HEAD_COSINE: return lt_cosine_sim(ctx, f, h->weight, 1e-12f);
    case LT_HEAD_LWS: return lt_mul(ctx, lt_linear(ctx, f, h->weight, h->bias), h->scales);
    }
    return lt_ctx_fail(ctx, LT_ERR_STATE, "model: unknown head kind %d", (int)h->kind);
}

lt_tensor *lt_model_head_forward_k(lt_ctx *ctx, lt_model *m, int k, lt_tensor *f) {
    lt_tensor *z = head_logits(ctx, m, k, f);
    if (m->n_heads == 1) apply_posthoc(ctx, m, z);
    return z;
}

/* The mean of the heads' logits (the post-hoc transform is affine per class, so applying
 * it to the mean equals the mean of the transformed heads). */
static lt_tensor *combine(lt_ctx *ctx, lt_model *m, lt_tensor *const *z) {
    if (m->n_heads == 1) return z[0];
    lt_tensor *sum = z[0];
    for (int k = 1; k < m->n_heads; k++) sum = lt_add(ctx, sum, z[k]);
    lt_tensor *mean = lt_scale(ctx, sum, 1.0f / (float)m->n_heads);
    apply_posthoc(ctx, m, mean);
    return mean;
}

lt_tensor *lt_model_head_forward(lt_ctx *ctx, lt_model *m, lt_tensor *f) {
    lt_tensor *z[LT_MAX_HEADS];
    for (int k = 0; k < m->n_heads; k++) z[k] = lt_model_head_forward_k(ctx, m, k, f);
    return combine(ctx, m, z);
}

lt_status lt_model_forward_outputs(lt_ctx *ctx, lt_model *m, lt_tensor *x, lt_outputs *out) {
    memset(out, 0, sizeof *out);
    lt_tensor *f = lt_model_forward_features(ctx, m, x);
    out->features = f;
    out->n_branches = m->n_heads;
    for (int k = 0; k < m->n_heads; k++) {
        out->branch_features[k] = f;
        out->branch_logits[k] = lt_model_head_forward_k(ctx, m, k, f);
    }
    out->logits = combine(ctx, m, out->branch_logits);
    return lt_ctx_status(ctx);
}

lt_tensor *lt_model_forward(lt_ctx *ctx, lt_model *m, lt_tensor *x, lt_tensor **features_out) {
    lt_tensor *f = lt_model_forward_features(ctx, m, x);
    if (features_out) *features_out = f;
    return lt_model_head_forward(ctx, m, f);
}
