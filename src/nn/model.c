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
    /* The heads: modules of kind head over the pooled features, fc or fc.0 .. fc.K-1. */
    for (int k = 0; k < m->n_heads && s == LT_OK; k++) {
        lt_head *h = lt_model_head(m, k);
        if (m->n_heads == 1) snprintf(h->prefix, sizeof h->prefix, "fc");
        else snprintf(h->prefix, sizeof h->prefix, "fc.%d", k);
        s = lt_module_new(&m->head_mods[k], LT_MOD_HEAD, NULL, h->prefix);
        if (s != LT_OK) break;
        lt_module *hm = m->head_mods[k];
        hm->in_c = m->feature_dim;
        hm->out_c = c->num_classes;
        hm->head_kind = (int)c->head;
        hm->init = head_how;
        hm->bias_zero = c->fc_bias_init == LT_BIAS_INIT_ZERO;
        hm->head = h;
        s = lt_module_declare(hm, &m->params);
    }
    if (s == LT_OK) s = lt_params_finalize(&m->params);
    if (s == LT_OK) s = lt_module_bind(m->root, &m->params);
    for (int k = 0; k < m->n_heads && s == LT_OK; k++) s = lt_module_bind(m->head_mods[k], &m->params);
    if (s == LT_OK) {
        /* State_dict order: the backbone, then each head. */
        lt_rng rng;
        lt_rng_init(&rng, seed, LT_STREAM_INIT);
        s = lt_module_init(m->root, &rng);
        for (int k = 0; k < m->n_heads && s == LT_OK; k++) s = lt_module_init(m->head_mods[k], &rng);
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
    for (int k = 0; k < LT_MAX_HEADS; k++) lt_module_free(m->head_mods[k]);
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
    return lt_module_forward(ctx, m, m->head_mods[k], f);
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
