/* CIFAR ResNet-(6n+2) (He et al., "Deep Residual Learning for Image Recognition", 2016,
 * §4.2), as in the reference PyTorch code the long-tail literature builds on
 * (akamaster/pytorch_resnet_cifar10, used by LDAM-DRW, weight balancing, ...):
 *
 *   conv1 3x3 (16w, no bias) -> bn1 -> ReLU
 *   layer1..3: n BasicBlocks at 16w / 32w / 64w channels, stride 2 at the first block of
 *              layer2 and layer3; block: conv1 3x3 -> bn1 -> ReLU -> conv2 3x3 -> bn2,
 *              + shortcut -> ReLU; shortcut "option A" (x[:, ::2, ::2] and zero channel
 *              padding, no parameters) where stride or width changes, identity otherwise
 *   global average pool -> features (B, 64w) -> head (model.c)
 *
 * Names follow that code's state_dict: conv1.weight, bn1.*, layer1.0.conv1.weight, ... */
#include "nn_internal.h"

#include "longtail/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct block {
    lt_tensor *conv1, *conv2;     /* (O, 3, 3, I) */
    lt_bn_layer bn1, bn2;
    int stride;
    int64_t in_c, out_c;
} block;

struct lt_backbone {
    lt_arch arch;
    int n;                        /* blocks per stage */
    int64_t widths[3];
    lt_tensor *conv1;
    lt_bn_layer bn1;
    int n_blocks;
    block blocks[];               /* 3n blocks, stage-major */
};

static lt_status add_conv(lt_params *p, const char *name, int64_t o, int64_t i) {
    int64_t shape[4] = {o, 3, 3, i};
    return lt_params_add(p, name, LT_PARAM_WEIGHT, 4, shape, LT_GROUP_BACKBONE, NULL);
}

lt_status lt_resnet_cifar_declare(lt_model *m) {
    const lt_model_config *c = &m->cfg;
    if (c->depth < 8 || (c->depth - 2) % 6 != 0)
        return lt_error(LT_ERR_ARG, "resnet: depth %d (expected 6n+2 >= 8: 8, 20, 32, 44, 56, ...)", c->depth);
    int n = (c->depth - 2) / 6;
    if (n > 1000) return lt_error(LT_ERR_ARG, "resnet: depth %d is too large", c->depth);
    struct lt_backbone *b = lt_calloc(1, sizeof *b + (size_t)(3 * n) * sizeof(block));
    if (!b) return lt_error(LT_ERR_NOMEM, "resnet: out of memory");
    m->backbone = b;
    b->arch = LT_ARCH_RESNET_CIFAR;
    b->n = n;
    b->n_blocks = 3 * n;
    for (int s = 0; s < 3; s++) {
        long w = lround(16.0 * (double)(1 << s) * (double)c->width);
        b->widths[s] = w < 1 ? 1 : w;
    }
    lt_params *p = &m->params;
    lt_status st = add_conv(p, "conv1.weight", b->widths[0], c->in_channels);
    if (st == LT_OK) st = lt_bn_declare(p, "bn1", b->widths[0], LT_GROUP_BACKBONE);
    int64_t in_c = b->widths[0];
    char name[128];
    for (int s = 0; s < 3 && st == LT_OK; s++) {
        for (int k = 0; k < n && st == LT_OK; k++) {
            block *bl = &b->blocks[s * n + k];
            bl->in_c = in_c;
            bl->out_c = b->widths[s];
            bl->stride = (s > 0 && k == 0) ? 2 : 1;
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", s + 1, k);
            st = add_conv(p, name, bl->out_c, bl->in_c);
            snprintf(name, sizeof name, "layer%d.%d.bn1", s + 1, k);
            if (st == LT_OK) st = lt_bn_declare(p, name, bl->out_c, LT_GROUP_BACKBONE);
            snprintf(name, sizeof name, "layer%d.%d.conv2.weight", s + 1, k);
            if (st == LT_OK) st = add_conv(p, name, bl->out_c, bl->out_c);
            snprintf(name, sizeof name, "layer%d.%d.bn2", s + 1, k);
            if (st == LT_OK) st = lt_bn_declare(p, name, bl->out_c, LT_GROUP_BACKBONE);
            in_c = bl->out_c;
        }
    }
    m->feature_dim = b->widths[2];
    return st;
}

lt_status lt_resnet_cifar_bind(lt_model *m) {
    struct lt_backbone *b = m->backbone;
    lt_params *p = &m->params;
    char name[128];
    b->conv1 = lt_params_tensor(p, "conv1.weight");
    if (!b->conv1) return lt_error(LT_ERR_STATE, "resnet: conv1.weight missing");
    lt_status st = lt_bn_bind(p, "bn1", &b->bn1);
    for (int s = 0; s < 3 && st == LT_OK; s++) {
        for (int k = 0; k < b->n && st == LT_OK; k++) {
            block *bl = &b->blocks[s * b->n + k];
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", s + 1, k);
            bl->conv1 = lt_params_tensor(p, name);
            snprintf(name, sizeof name, "layer%d.%d.conv2.weight", s + 1, k);
            bl->conv2 = lt_params_tensor(p, name);
            if (!bl->conv1 || !bl->conv2) return lt_error(LT_ERR_STATE, "resnet: layer%d.%d conv missing", s + 1, k);
            snprintf(name, sizeof name, "layer%d.%d.bn1", s + 1, k);
            st = lt_bn_bind(p, name, &bl->bn1);
            snprintf(name, sizeof name, "layer%d.%d.bn2", s + 1, k);
            if (st == LT_OK) st = lt_bn_bind(p, name, &bl->bn2);
        }
    }
    return st;
}

static int64_t conv_fan_in(const lt_tensor *w) { return w->shape[1] * w->shape[2] * w->shape[3]; }

void lt_resnet_cifar_init(lt_model *m, lt_rng *rng) {
    /* State_dict order, so the draws do not depend on how the layers are stored. */
    struct lt_backbone *b = m->backbone;
    lt_init_kaiming_normal(b->conv1, conv_fan_in(b->conv1), rng);
    lt_bn_reset(&b->bn1);
    for (int i = 0; i < b->n_blocks; i++) {
        block *bl = &b->blocks[i];
        lt_init_kaiming_normal(bl->conv1, conv_fan_in(bl->conv1), rng);
        lt_bn_reset(&bl->bn1);
        lt_init_kaiming_normal(bl->conv2, conv_fan_in(bl->conv2), rng);
        lt_bn_reset(&bl->bn2);
    }
}

void lt_resnet_cifar_free(struct lt_backbone *b) { lt_free(b); }

/* conv (no bias) followed by BN. When the BN normalizes with its running statistics and
 * no gradient is wanted for the conv weight or the BN affine parameters (evaluation, or a
 * frozen backbone with BN frozen, as in classifier re-training), the pair is one affine
 * map of x and runs as a single conv with folded weights and a bias:
 *   s = γ / sqrt(running_var + eps),  W' = W · s (per output channel),
 *   b' = β − running_mean · s.
 * This saves the BN pass over the activation; gradients still reach x when it needs one. */
static lt_tensor *conv_bn(lt_ctx *ctx, const lt_model *m, lt_tensor *x, lt_tensor *w,
                          const lt_bn_layer *bn, int stride) {
    int running = !lt_ctx_training(ctx) || m->bn_mode == LT_BN_FROZEN;
    int params_need_grad = lt_ctx_grad_enabled(ctx) &&
                           (w->requires_grad || bn->weight->requires_grad || bn->bias->requires_grad);
    if (!running || params_need_grad)
        return lt_bn_forward(ctx, m, bn, lt_conv2d(ctx, x, w, NULL, stride, 1));
    if (!x) return NULL;
    lt_tensor *wf = lt_tensor_new(ctx, 4, w->shape);
    lt_tensor *bf = lt_tensor_new1(ctx, w->shape[0]);
    if (!wf || !bf) return NULL;
    const int64_t o_n = w->shape[0], k = w->numel / o_n;
    const float eps = m->cfg.bn_eps;
    for (int64_t o = 0; o < o_n; o++) {
        float s = bn->weight->data[o] / sqrtf(bn->running_var->data[o] + eps);
        for (int64_t j = 0; j < k; j++) wf->data[o * k + j] = w->data[o * k + j] * s;
        bf->data[o] = bn->bias->data[o] - bn->running_mean->data[o] * s;
    }
    return lt_conv2d(ctx, x, wf, bf, stride, 1);
}

lt_tensor *lt_resnet_cifar_forward(lt_ctx *ctx, lt_model *m, lt_tensor *x) {
    struct lt_backbone *b = m->backbone;
    lt_tensor *h = lt_relu(ctx, conv_bn(ctx, m, x, b->conv1, &b->bn1, 1));
    for (int i = 0; i < b->n_blocks; i++) {
        const block *bl = &b->blocks[i];
        lt_tensor *o = lt_relu(ctx, conv_bn(ctx, m, h, bl->conv1, &bl->bn1, bl->stride));
        o = conv_bn(ctx, m, o, bl->conv2, &bl->bn2, 1);
        lt_tensor *sc = h;
        if (bl->stride != 1 || bl->in_c != bl->out_c) sc = lt_shortcut_a(ctx, h, bl->out_c, bl->stride);
        h = lt_relu(ctx, lt_add(ctx, o, sc));
    }
    return lt_global_avgpool(ctx, h);
}
