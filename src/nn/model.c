/* lt_model: a backbone (dispatched by cfg.arch) followed by a head (cfg.head), over one
 * lt_params. Also the BN and initialization helpers the backbones share. */
#include "nn_internal.h"

#include "longtail/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- init helpers */

void lt_init_kaiming_normal(lt_tensor *w, int64_t fan_in, lt_rng *rng) {
    double std = sqrt(2.0 / (double)fan_in);
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = (float)(std * lt_rng_normal(rng));
}

void lt_init_uniform(lt_tensor *w, float lo, float hi, lt_rng *rng) {
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = lo + (hi - lo) * lt_rng_uniform(rng);
}

/* ---------------------------------------------------------------- batch norm */

lt_status lt_bn_declare(lt_params *p, const char *prefix, int64_t c, int group) {
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    static const lt_param_kind kinds[] = {LT_PARAM_WEIGHT, LT_PARAM_WEIGHT, LT_PARAM_BUFFER,
                                          LT_PARAM_BUFFER, LT_PARAM_COUNTER};
    char name[128];
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, names[k]);
        lt_status s = lt_params_add(p, name, kinds[k], 1, &c, group, NULL);
        if (s != LT_OK) return s;
    }
    return LT_OK;
}

lt_status lt_bn_bind(lt_params *p, const char *prefix, lt_bn_layer *bn) {
    char name[128];
    lt_tensor **views[] = {&bn->weight, &bn->bias, &bn->running_mean, &bn->running_var};
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, names[k]);
        *views[k] = lt_params_tensor(p, name);
        if (!*views[k]) return lt_error(LT_ERR_STATE, "model: parameter '%s' missing", name);
    }
    snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
    lt_param *e = lt_params_find(p, name);
    if (!e || !e->counter) return lt_error(LT_ERR_STATE, "model: counter '%s' missing", name);
    bn->num_batches_tracked = e->counter;
    return LT_OK;
}

void lt_bn_reset(lt_bn_layer *bn) {
    int64_t c = bn->weight->numel;
    for (int64_t i = 0; i < c; i++) {
        bn->weight->data[i] = 1.0f;
        bn->bias->data[i] = 0.0f;
        bn->running_mean->data[i] = 0.0f;
        bn->running_var->data[i] = 1.0f;
    }
    *bn->num_batches_tracked = 0;
}

lt_tensor *lt_bn_forward(lt_ctx *ctx, const lt_model *m, const lt_bn_layer *bn, lt_tensor *x) {
    if (!x) return NULL;
    int batch_stats = lt_ctx_training(ctx) && m->bn_mode != LT_BN_FROZEN;
    lt_tensor *gamma = bn->weight, *beta = bn->bias;
    if (m->bn_mode == LT_BN_STATS_ONLY) {
        /* Gradient-free views of the same γ/β: the tape never reaches the parameters. */
        gamma = lt_tensor_wrap(ctx, gamma->data, 1, gamma->shape);
        beta = lt_tensor_wrap(ctx, beta->data, 1, beta->shape);
        if (!gamma || !beta) return NULL;
    }
    lt_tensor *y = lt_batchnorm(ctx, x, gamma, beta, bn->running_mean, bn->running_var,
                                batch_stats, m->cfg.bn_momentum, m->cfg.bn_eps);
    if (y && batch_stats) (*bn->num_batches_tracked)++;
    return y;
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

static lt_status head_declare(lt_model *m) {
    const lt_model_config *c = &m->cfg;
    int64_t ws[2] = {c->num_classes, m->feature_dim}, bs[1] = {c->num_classes};
    lt_status s;
    switch (c->head) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_LWS:
        s = lt_params_add(&m->params, "fc.weight", LT_PARAM_WEIGHT, 2, ws, LT_GROUP_HEAD, NULL);
        if (s == LT_OK) s = lt_params_add(&m->params, "fc.bias", LT_PARAM_WEIGHT, 1, bs, LT_GROUP_HEAD, NULL);
        if (s == LT_OK && c->head == LT_HEAD_LWS)
            s = lt_params_add(&m->params, "fc.scales", LT_PARAM_WEIGHT, 1, bs, LT_GROUP_HEAD, NULL);
        return s;
    case LT_HEAD_COSINE:
        return lt_params_add(&m->params, "fc.weight", LT_PARAM_WEIGHT, 2, ws, LT_GROUP_HEAD, NULL);
    case LT_HEAD_ETF:
        if (c->num_classes < 2)
            return lt_error(LT_ERR_ARG, "model: the ETF head needs at least 2 classes, got %d", c->num_classes);
        if (m->feature_dim < c->num_classes)
            return lt_error(LT_ERR_ARG,
                            "model: the ETF head needs feature dimension D >= classes C (a simplex of C unit vectors "
                            "with cosines -1/(C-1) spans C-1 dimensions and U has C orthonormal columns), got D = %lld, "
                            "C = %d (widen the backbone: [model] width)",
                            (long long)m->feature_dim, c->num_classes);
        s = lt_params_add(&m->params, "fc.weight", LT_PARAM_BUFFER, 2, ws, LT_GROUP_HEAD, NULL);
        if (s == LT_OK) s = lt_params_add(&m->params, "fc.bias", LT_PARAM_WEIGHT, 1, bs, LT_GROUP_HEAD, NULL);
        return s;
    }
    return lt_error(LT_ERR_ARG, "model: unknown head kind %d", (int)c->head);
}

static lt_status head_bind(lt_model *m) {
    m->head.kind = m->cfg.head;
    m->head.in_dim = m->feature_dim;
    m->head.out_dim = m->cfg.num_classes;
    m->head.weight = lt_params_tensor(&m->params, "fc.weight");
    m->head.bias = lt_params_tensor(&m->params, "fc.bias");
    m->head.scales = lt_params_tensor(&m->params, "fc.scales");
    if (!m->head.weight || (!m->head.bias && m->head.kind != LT_HEAD_COSINE) ||
        (!m->head.scales && m->head.kind == LT_HEAD_LWS))
        return lt_error(LT_ERR_STATE, "model: head parameters missing");
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

static lt_status head_init(lt_model *m, lt_rng *rng) {
    if (m->head.kind == LT_HEAD_ETF) {
        lt_status s = etf_init(m->head.weight, m->cfg.num_classes, m->feature_dim, rng);
        if (s != LT_OK) return s;
    } else {
        lt_init_kaiming_normal(m->head.weight, m->feature_dim, rng);
    }
    if (m->head.scales)
        for (int64_t i = 0; i < m->head.scales->numel; i++) m->head.scales->data[i] = 1.0f;
    if (!m->head.bias) return LT_OK;
    if (m->cfg.fc_bias_init == LT_BIAS_INIT_ZERO) {
        memset(m->head.bias->data, 0, (size_t)m->head.bias->numel * sizeof(float));
    } else {
        float bound = (float)(1.0 / sqrt((double)m->feature_dim));
        lt_init_uniform(m->head.bias, -bound, bound, rng);
    }
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

    lt_status s;
    switch (c->arch) {
    case LT_ARCH_RESNET_CIFAR: s = lt_resnet_cifar_declare(m); break;
    default: s = lt_error(LT_ERR_ARG, "model: unknown architecture %d", (int)c->arch); break;
    }
    if (s == LT_OK) s = head_declare(m);
    if (s == LT_OK) s = lt_params_finalize(&m->params);
    if (s == LT_OK) s = lt_resnet_cifar_bind(m);
    if (s == LT_OK) s = head_bind(m);
    if (s == LT_OK) {
        lt_rng rng;
        lt_rng_init(&rng, seed, LT_STREAM_INIT);
        lt_resnet_cifar_init(m, &rng);
        s = head_init(m, &rng);
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
    lt_resnet_cifar_free(m->backbone);
    lt_free(m->head.post_scale);
    lt_free(m->head.post_shift);
    lt_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

void lt_model_set_bn_mode(lt_model *m, lt_bn_mode mode) { m->bn_mode = mode; }

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
    if (!m || !m->backbone) return lt_ctx_fail(ctx, LT_ERR_STATE, "model: not initialized");
    if (x->ndim != 4 || x->shape[3] != m->cfg.in_channels) {
        char b[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "model: input %s (expected (B, H, W, %d) NHWC)",
                           lt_shape_str(x, b, sizeof b), m->cfg.in_channels);
    }
    switch (m->cfg.arch) {
    case LT_ARCH_RESNET_CIFAR: return lt_resnet_cifar_forward(ctx, m, x);
    }
    return lt_ctx_fail(ctx, LT_ERR_STATE, "model: unknown architecture %d", (int)m->cfg.arch);
}

lt_tensor *lt_model_head_forward(lt_ctx *ctx, lt_model *m, lt_tensor *f) {
    if (lt_ctx_status(ctx) != LT_OK) return NULL;
    if (!f) return lt_ctx_fail(ctx, LT_ERR_ARG, "model: NULL features");
    if (f->ndim != 2 || f->shape[1] != m->feature_dim) {
        char b[64];
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "model head: features %s (expected (B, %lld))",
                           lt_shape_str(f, b, sizeof b), (long long)m->feature_dim);
    }
    lt_tensor *z = NULL;
    switch (m->head.kind) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_ETF: z = lt_linear(ctx, f, m->head.weight, m->head.bias); break;
    case LT_HEAD_COSINE: z = lt_cosine_sim(ctx, f, m->head.weight, 1e-12f); break;
    case LT_HEAD_LWS: z = lt_mul(ctx, lt_linear(ctx, f, m->head.weight, m->head.bias), m->head.scales); break;
    default: return lt_ctx_fail(ctx, LT_ERR_STATE, "model: unknown head kind %d", (int)m->head.kind);
    }
    if (z && m->head.post_scale && !lt_ctx_training(ctx) && !lt_ctx_grad_enabled(ctx)) {
        /* Evaluation only (no tape reads z afterwards): transform in place. */
        int64_t C = z->shape[1];
        for (int64_t i = 0; i < z->shape[0]; i++)
            for (int64_t c = 0; c < C; c++) z->data[i * C + c] = z->data[i * C + c] * m->head.post_scale[c] + m->head.post_shift[c];
    }
    return z;
}

lt_tensor *lt_model_forward(lt_ctx *ctx, lt_model *m, lt_tensor *x, lt_tensor **features_out) {
    lt_tensor *f = lt_model_forward_features(ctx, m, x);
    if (features_out) *features_out = f;
    return lt_model_head_forward(ctx, m, f);
}
