/* The architecture registry: one builder per lt_arch, each turning a few numbers of
 * lt_model_config into a module tree (module.c). docs/architecture.md lists the names and
 * shows how to add one.
 *
 * CIFAR ResNet-(6n+2) (He et al. 2016, §4.2; the CIFAR code the long-tail literature
 * builds on: LDAM-DRW, weight balancing):
 *   conv1 3x3 (16w, no bias) -> bn1 -> ReLU
 *   layer1..3: n BasicBlocks at 16w / 32w / 64w channels, stride 2 at the first block of
 *              layer2 and layer3; block: conv1 3x3 -> bn1 -> ReLU -> conv2 3x3 -> bn2,
 *              + shortcut -> ReLU; shortcut "option A" (x[:, ::2, ::2] and zero channel
 *              padding, no parameters) where stride or width changes, identity otherwise
 *   global average pool -> features (B, 64w)
 *   Convolutions and the head weight: Kaiming-normal fan-in.
 * The BN-free variant drops every batch norm and gives each convolution a bias (zero at
 * init), the setting of the weight-decay analysis that trains networks without BN.
 *
 * torchvision ResNet-18/34 (BasicBlock, [2,2,2,2] / [3,4,6,3]) and ResNet-50 (Bottleneck,
 * expansion 4, stride on the 3x3 conv, [3,4,6,3]): stem conv1 7x7/2 + bn1 + ReLU +
 * max-pool 3x3/2 (or a CIFAR stem: conv1 3x3/1, no pool), layer1..4 at 64w..512w planes,
 * downsample = 1x1 conv (stride s) + BN where the shape changes, global average pool.
 * Parameter names are torchvision's state_dict names; convolutions Kaiming-normal
 * fan-out, BN 1 / 0, the fc layer nn.Linear's default uniform init.
 *
 * MLP: flatten (NHWC order), then Linear + ReLU per hidden layer, named layers.0,
 * layers.2, ... as nn.Sequential numbers them (the ReLUs take the odd indices); the
 * features are the last hidden layer's output (the flattened input with no hidden layer).
 * nn.Linear's default init. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t scaled(double base, float width) {
    long w = lround(base * (double)width);
    return w < 1 ? 1 : w;
}

/* conv (+ BN) (+ ReLU) appended to parent: names "<conv>", "<bn>". */
static lt_status add_conv(lt_module *parent, const char *name, int64_t in_c, int64_t out_c, int k, int stride,
                          int pad, int has_bias, lt_weight_init init, lt_module **out) {
    lt_module *c;
    lt_status s = lt_module_add(parent, LT_MOD_CONV, name, &c);
    if (s) return s;
    c->in_c = in_c;
    c->out_c = out_c;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->has_bias = has_bias;
    c->init = init;
    if (out) *out = c;
    return LT_OK;
}

static lt_status add_bn(lt_module *parent, const char *name, int64_t c) {
    lt_module *b;
    lt_status s = lt_module_add(parent, LT_MOD_BATCHNORM, name, &b);
    if (!s) b->out_c = c;
    return s;
}

static lt_status add_simple(lt_module *parent, lt_module_kind kind, const char *name) {
    return lt_module_add(parent, kind, name, NULL);
}

/* ---------------------------------------------------------------- CIFAR ResNet */

static lt_status build_resnet_cifar(lt_model *m, lt_module *root, lt_weight_init *head_init) {
    const lt_model_config *c = &m->cfg;
    int bn = c->arch == LT_ARCH_RESNET_CIFAR;
    if (c->depth < 8 || (c->depth - 2) % 6 != 0)
        return lt_error(LT_ERR_ARG, "resnet: depth %d (expected 6n+2 >= 8: 8, 20, 32, 44, 56, ...)", c->depth);
    int n = (c->depth - 2) / 6;
    if (n > 1000) return lt_error(LT_ERR_ARG, "resnet: depth %d is too large", c->depth);
    int64_t widths[3];
    for (int s = 0; s < 3; s++) widths[s] = scaled(16.0 * (1 << s), c->width);
    lt_status st = add_conv(root, "conv1", c->in_channels, widths[0], 3, 1, 1, !bn, LT_WINIT_KAIMING_FAN_IN, NULL);
    if (!st && bn) st = add_bn(root, "bn1", widths[0]);
    if (!st) st = add_simple(root, LT_MOD_RELU, "relu");
    int64_t in_c = widths[0];
    char name[32];
    for (int s = 0; s < 3 && !st; s++) {
        lt_module *layer;
        snprintf(name, sizeof name, "layer%d", s + 1);
        st = lt_module_add(root, LT_MOD_SEQUENTIAL, name, &layer);
        for (int k = 0; k < n && !st; k++) {
            int stride = (s > 0 && k == 0) ? 2 : 1;
            lt_module *blk;
            snprintf(name, sizeof name, "%d", k);
            st = lt_module_add(layer, LT_MOD_RESIDUAL, name, &blk);
            if (st) break;
            blk->out_c = widths[s];
            blk->stride = stride;
            blk->shortcut = (stride != 1 || in_c != widths[s]) ? LT_SHORTCUT_A : LT_SHORTCUT_IDENTITY;
            st = add_conv(blk, "conv1", in_c, widths[s], 3, stride, 1, !bn, LT_WINIT_KAIMING_FAN_IN, NULL);
            if (!st && bn) st = add_bn(blk, "bn1", widths[s]);
            if (!st) st = add_simple(blk, LT_MOD_RELU, "relu");
            if (!st) st = add_conv(blk, "conv2", widths[s], widths[s], 3, 1, 1, !bn, LT_WINIT_KAIMING_FAN_IN, NULL);
            if (!st && bn) st = add_bn(blk, "bn2", widths[s]);
            in_c = widths[s];
        }
    }
    if (!st) st = add_simple(root, LT_MOD_GLOBAL_AVGPOOL, "avgpool");
    m->feature_dim = widths[2];
    *head_init = LT_WINIT_KAIMING_FAN_IN;
    return st;
}

/* ---------------------------------------------------------------- torchvision ResNet */

static lt_status build_resnet_tv(lt_model *m, lt_module *root, lt_weight_init *head_init) {
    const lt_model_config *c = &m->cfg;
    static const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
    const int *blocks;
    int bottleneck = 0;
    switch (c->depth) {
    case 18: blocks = blocks18; break;
    case 34: blocks = blocks34; break;
    case 50: blocks = blocks34; bottleneck = 1; break;
    default: return lt_error(LT_ERR_ARG, "resnet: torchvision depth %d (expected 18, 34 or 50)", c->depth);
    }
    if (c->stem != LT_STEM_IMAGENET && c->stem != LT_STEM_CIFAR)
        return lt_error(LT_ERR_ARG, "resnet: unknown stem %d", (int)c->stem);
    const lt_weight_init wi = LT_WINIT_KAIMING_FAN_OUT;
    const int exp = bottleneck ? 4 : 1;
    int64_t in_c = scaled(64.0, c->width);
    lt_status st = c->stem == LT_STEM_IMAGENET ? add_conv(root, "conv1", c->in_channels, in_c, 7, 2, 3, 0, wi, NULL)
                                               : add_conv(root, "conv1", c->in_channels, in_c, 3, 1, 1, 0, wi, NULL);
    if (!st) st = add_bn(root, "bn1", in_c);
    if (!st) st = add_simple(root, LT_MOD_RELU, "relu");
    if (!st && c->stem == LT_STEM_IMAGENET) {
        lt_module *mp;
        st = lt_module_add(root, LT_MOD_MAXPOOL, "maxpool", &mp);
        if (!st) {
            mp->k = 3;
            mp->stride = 2;
            mp->pad = 1;
        }
    }
    char name[32];
    for (int s = 0; s < 4 && !st; s++) {
        int64_t planes = scaled(64.0 * (1 << s), c->width), out_c = planes * exp;
        lt_module *layer;
        snprintf(name, sizeof name, "layer%d", s + 1);
        st = lt_module_add(root, LT_MOD_SEQUENTIAL, name, &layer);
        for (int k = 0; k < blocks[s] && !st; k++) {
            int stride = (s > 0 && k == 0) ? 2 : 1;
            lt_module *blk;
            snprintf(name, sizeof name, "%d", k);
            st = lt_module_add(layer, LT_MOD_RESIDUAL, name, &blk);
            if (st) break;
            blk->out_c = out_c;
            blk->stride = stride;
            int proj = stride != 1 || in_c != out_c;
            blk->shortcut = proj ? LT_SHORTCUT_PROJECTION : LT_SHORTCUT_IDENTITY;
            if (bottleneck) {
                st = add_conv(blk, "conv1", in_c, planes, 1, 1, 0, 0, wi, NULL);
                if (!st) st = add_bn(blk, "bn1", planes);
                if (!st) st = add_simple(blk, LT_MOD_RELU, "relu");
                if (!st) st = add_conv(blk, "conv2", planes, planes, 3, stride, 1, 0, wi, NULL);
                if (!st) st = add_bn(blk, "bn2", planes);
                if (!st) st = add_simple(blk, LT_MOD_RELU, "relu");
                if (!st) st = add_conv(blk, "conv3", planes, out_c, 1, 1, 0, 0, wi, NULL);
                if (!st) st = add_bn(blk, "bn3", out_c);
            } else {
                st = add_conv(blk, "conv1", in_c, planes, 3, stride, 1, 0, wi, NULL);
                if (!st) st = add_bn(blk, "bn1", planes);
                if (!st) st = add_simple(blk, LT_MOD_RELU, "relu");
                if (!st) st = add_conv(blk, "conv2", planes, planes, 3, 1, 1, 0, wi, NULL);
                if (!st) st = add_bn(blk, "bn2", planes);
            }
            if (!st && proj) {
                lt_module *ds;
                st = lt_module_add(blk, LT_MOD_SEQUENTIAL, "downsample", &ds);
                if (!st) st = add_conv(ds, "0", in_c, out_c, 1, stride, 0, 0, wi, NULL);
                if (!st) st = add_bn(ds, "1", out_c);
            }
            in_c = out_c;
        }
    }
    if (!st) st = add_simple(root, LT_MOD_GLOBAL_AVGPOOL, "avgpool");
    m->feature_dim = in_c;
    *head_init = LT_WINIT_TORCH_DEFAULT;
    return st;
}

/* ---------------------------------------------------------------- MLP */

static lt_status build_mlp(lt_model *m, lt_module *root, lt_weight_init *head_init) {
    const lt_model_config *c = &m->cfg;
    if (c->n_hidden < 0 || c->n_hidden > LT_MAX_HIDDEN)
        return lt_error(LT_ERR_ARG, "mlp: %d hidden layers (expected 0 .. %d)", c->n_hidden, LT_MAX_HIDDEN);
    int64_t in = (int64_t)c->in_channels * c->in_height * c->in_width;
    lt_status st = add_simple(root, LT_MOD_FLATTEN, "flatten");
    char name[32];
    for (int i = 0; i < c->n_hidden && !st; i++) {
        if (c->hidden[i] < 1 || c->hidden[i] > (1 << 20))
            return lt_error(LT_ERR_ARG, "mlp: hidden layer %d has width %d (expected 1 .. %d)", i, c->hidden[i], 1 << 20);
        lt_module *lin;
        snprintf(name, sizeof name, "layers.%d", 2 * i);
        st = lt_module_add(root, LT_MOD_LINEAR, name, &lin);
        if (st) break;
        lin->in_c = in;
        lin->out_c = c->hidden[i];
        lin->init = LT_WINIT_TORCH_DEFAULT;
        snprintf(name, sizeof name, "layers.%d", 2 * i + 1);
        st = add_simple(root, LT_MOD_RELU, name);
        in = c->hidden[i];
    }
    m->feature_dim = in;
    *head_init = LT_WINIT_TORCH_DEFAULT;
    return st;
}

/* ---------------------------------------------------------------- registry */

typedef struct arch_info {
    const char *name;     /* the pattern, as docs/architecture.md lists it */
    lt_status (*build)(lt_model *, lt_module *, lt_weight_init *);
} arch_info;

static const arch_info archs[] = {
    [LT_ARCH_RESNET_CIFAR] = {"resnet<6n+2>", build_resnet_cifar},
    [LT_ARCH_RESNET_CIFAR_NOBN] = {"resnet<6n+2>_nobn", build_resnet_cifar},
    [LT_ARCH_RESNET] = {"resnet18|resnet34|resnet50", build_resnet_tv},
    [LT_ARCH_MLP] = {"mlp", build_mlp},
};
#define N_ARCHS ((int)(sizeof archs / sizeof archs[0]))
_Static_assert(sizeof archs / sizeof archs[0] == LT_ARCH_MLP + 1, "one row per architecture");

lt_status lt_arch_build(lt_model *m, lt_module **root, lt_weight_init *head_init) {
    *root = NULL;
    if ((unsigned)m->cfg.arch >= (unsigned)N_ARCHS)
        return lt_error(LT_ERR_ARG, "model: unknown architecture %d", (int)m->cfg.arch);
    lt_module *r;
    lt_status s = lt_module_new(&r, LT_MOD_SEQUENTIAL, NULL, "");
    if (s) return s;
    s = archs[m->cfg.arch].build(m, r, head_init);
    if (s) {
        lt_module_free(r);
        return s;
    }
    *root = r;
    return LT_OK;
}

const char *lt_arch_names(void) {
    return "resnet<6n+2> (CIFAR: resnet8, resnet20, resnet32, resnet44, resnet56, ...; resnet_cifar<6n+2> also), "
           "resnet<6n+2>_nobn, resnet18, resnet34, resnet50 (torchvision), mlp";
}

/* Digits then the end of the string or `tail`; the number, or -1. */
static int number_then(const char *s, const char *tail) {
    if (*s < '0' || *s > '9') return -1;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > 100000) return -1;
    }
    return strcmp(s, tail) == 0 ? (int)v : -1;
}

lt_status lt_arch_parse(const char *name, lt_model_config *c) {
    int d;
    if (name && strcmp(name, "mlp") == 0) {
        c->arch = LT_ARCH_MLP;
        c->depth = 0;
        return LT_OK;
    }
    if (name && strncmp(name, "resnet", 6) == 0) {
        const char *rest = name + 6;
        int cifar_only = strncmp(rest, "_cifar", 6) == 0;
        if (cifar_only) rest += 6;
        if ((d = number_then(rest, "_nobn")) >= 0) {
            c->arch = LT_ARCH_RESNET_CIFAR_NOBN;
            c->depth = d;
            return LT_OK;
        }
        if ((d = number_then(rest, "")) >= 0) {
            if (!cifar_only && (d == 18 || d == 34 || d == 50)) {
                c->arch = LT_ARCH_RESNET;
                c->stem = LT_STEM_IMAGENET;
            } else {
                c->arch = LT_ARCH_RESNET_CIFAR;
            }
            c->depth = d;
            return LT_OK;
        }
    }
    return lt_error(LT_ERR_ARG, "unknown architecture '%s' (expected %s)", name ? name : "(null)", lt_arch_names());
}

const char *lt_arch_name(const lt_model_config *c, char *buf, size_t n) {
    switch (c->arch) {
    case LT_ARCH_RESNET_CIFAR:
    case LT_ARCH_RESNET_CIFAR_NOBN: {
        int clash = c->depth == 18 || c->depth == 34 || c->depth == 50;
        snprintf(buf, n, "resnet%s%d%s", clash ? "_cifar" : "", c->depth,
                 c->arch == LT_ARCH_RESNET_CIFAR_NOBN ? "_nobn" : "");
        break;
    }
    case LT_ARCH_RESNET: snprintf(buf, n, "resnet%d", c->depth); break;
    case LT_ARCH_MLP: snprintf(buf, n, "mlp"); break;
    default: snprintf(buf, n, "?"); break;
    }
    return buf;
}
