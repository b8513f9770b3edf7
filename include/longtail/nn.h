/* Parameters and models.
 *
 * lt_params holds every parameter of one model in ONE contiguous float buffer (`data`),
 * their gradients in a second buffer of the same length (`grad`), and the non-trainable
 * buffers (batch-norm running_mean / running_var) in a third (`buffers`); PyTorch's
 * `num_batches_tracked` is an int64 counter per batch norm (`counters`). Each entry is a
 * named lt_tensor view into those buffers, named as PyTorch's state_dict names it
 * (`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, ..., `fc.bias`) and kept
 * in state_dict order, so a checkpoint is a walk over the entries and an optimizer step,
 * a gradient reset or an all-reduce is one loop over one buffer.
 *
 * Ownership: lt_params owns its buffers, names and entries; views (lt_param.t, and every
 * lt_tensor * returned by the lookups) stay valid until lt_params_free. Layouts: conv
 * weights (O, KH, KW, I) ("OHWI", see ops.h), linear weights (out, in).
 *
 * Per entry: `t.requires_grad` is the trainable flag (requires_grad in PyTorch; frozen
 * weights get no gradient and no optimizer update), `group` selects the optimizer's
 * per-group weight decay and lr scale (optim.h).
 *
 * lt_model is a backbone (a module tree built by a named architecture of the registry)
 * followed by one or more heads (kind + parameters), over one lt_params.
 * lt_model_forward_features() gives the pooled features (B, D), lt_model_head_forward()
 * the logits, lt_model_forward_outputs() every head's logits and their combination. */
#ifndef LONGTAIL_NN_H
#define LONGTAIL_NN_H

#include "autodiff.h"

/* ------------------------------------------------------------------ parameters */

#define LT_MAX_PARAM_GROUPS 8
/* Default groups of the built-in models: everything before the head is the backbone,
 * the classifier (fc.weight, fc.bias) is the head group. */
#define LT_GROUP_BACKBONE 0
#define LT_GROUP_HEAD 1

typedef enum lt_param_kind {
    LT_PARAM_WEIGHT = 0,   /* a parameter: data in params->data, gradient in params->grad */
    LT_PARAM_BUFFER = 1,   /* float state that is not trained (running_mean, running_var) */
    LT_PARAM_COUNTER = 2,  /* int64 scalar (num_batches_tracked): t.data == NULL, value *counter */
} lt_param_kind;

typedef struct lt_param {
    lt_tensor t;          /* the view; t.name is the PyTorch name, t.requires_grad = trainable */
    lt_param_kind kind;
    int group;            /* 0 .. LT_MAX_PARAM_GROUPS-1 (weights only) */
    int home_group;       /* declared, or set by lt_params_set_group (a stage's groups start here) */
    int64_t offset;       /* element offset into data/grad (weights), buffers, or counters */
    int64_t *counter;     /* LT_PARAM_COUNTER only */
} lt_param;

typedef struct lt_params {
    lt_param *items;      /* state_dict order; pointers into it are stable after finalize */
    int64_t count, cap;
    float *data;          /* all weights, contiguous, 64-byte aligned */
    float *grad;          /* their gradients, same length and layout */
    int64_t n_data;       /* total weight elements (PyTorch's sum of p.numel()) */
    float *buffers;       /* running statistics */
    int64_t n_buffers;
    int64_t *counters;
    int64_t n_counters;
    int finalized;
} lt_params;

/* Building: init, add entries (names copied), then finalize, which allocates the
 * buffers (all zero) and points the views into them. Adding after finalize, a duplicate
 * or empty name, or a bad shape is LT_ERR_ARG / LT_ERR_SHAPE. *index (may be NULL) gets
 * the entry's index. A counter's shape argument is ignored (scalar). */
void lt_params_init(lt_params *p);
lt_status lt_params_add(lt_params *p, const char *name, lt_param_kind kind, int ndim,
                        const int64_t *shape, int group, int64_t *index);
lt_status lt_params_finalize(lt_params *p);
void lt_params_free(lt_params *p);   /* NULL / never-initialized-after-init are fine */

/* Lookup by exact name: the entry, or NULL (no error set). */
lt_param *lt_params_find(lt_params *p, const char *name);
/* The view of a weight or buffer named `name`, or NULL. */
lt_tensor *lt_params_tensor(lt_params *p, const char *name);

/* Gradient buffer := 0 (all weights, trainable or not). */
void lt_params_zero_grad(lt_params *p);

/* Prefix match used below: `prefix` selects an entry when it equals the entry's name, or
 * the name continues with '.' after it ("layer1" selects layer1.0.conv1.weight but not
 * layer10.x), or prefix itself ends with '.'. The empty string selects everything. */
int lt_params_name_matches(const char *name, const char *prefix);
/* Sets the trainable flag of every weight selected by prefix; LT_ERR_ARG if none. */
lt_status lt_params_set_trainable(lt_params *p, const char *prefix, int trainable);
/* Freezes every weight, then makes the ones selected by any of the n prefixes trainable:
 * lt_params_freeze_all_except(p, (const char *[]){"fc"}, 1) trains only fc.weight and
 * fc.bias. LT_ERR_ARG (nothing changed) if a prefix selects no weight. */
lt_status lt_params_freeze_all_except(lt_params *p, const char *const *prefixes, int n);
/* Moves the weights selected by prefix into optimizer group g; LT_ERR_ARG if none or g
 * is out of range. */
lt_status lt_params_set_group(lt_params *p, const char *prefix, int group);
/* Element counts: all weights (n_data), trainable weights only. */
int64_t lt_params_numel(const lt_params *p);
int64_t lt_params_numel_trainable(const lt_params *p);

/* ------------------------------------------------------------------ models */

/* Architectures (src/nn/arch.c holds the registry; docs/architecture.md lists the names).
 * Each is a builder that turns a few numbers of lt_model_config into a module tree. */
typedef enum lt_arch {
    LT_ARCH_RESNET_CIFAR = 0,      /* He et al. CIFAR ResNet-(6n+2), option-A shortcuts: resnet<6n+2> */
    LT_ARCH_RESNET_CIFAR_NOBN = 1, /* the same without batch norm, convs with a bias: resnet<6n+2>_nobn */
    LT_ARCH_RESNET = 2,            /* torchvision ResNet-18/34/50 (BasicBlock / Bottleneck, 1x1
                                      projection shortcuts), torchvision's parameter names */
    LT_ARCH_MLP = 3,               /* flatten, then Linear + ReLU per hidden layer: mlp */
} lt_arch;

/* Stem of the torchvision ResNets: 7x7 stride-2 conv + 3x3 stride-2 max-pool (ImageNet), or
 * a 3x3 stride-1 conv and no pool (for 32x32 inputs, as CIFAR ports of ResNet-18 do). */
typedef enum lt_stem {
    LT_STEM_IMAGENET = 0,
    LT_STEM_CIFAR = 1,
} lt_stem;

#define LT_MAX_HIDDEN 16   /* MLP hidden layers */
#define LT_MAX_HEADS 8     /* heads over one shared backbone */

/* ------------------------------------------------------------------ modules
 *
 * A backbone is a tree of modules (src/nn/module.c). Each kind has one row in a static
 * table {name, declare parameters, bind views, init, forward, fold}; a module carries its
 * parameter-name prefix (the full state_dict prefix, "layer1.0.conv1"), its options and its
 * children. The tree is what a checkpoint's "architecture" metadata describes and what an
 * exporter walks; the forward pass is one recursive walk. */
typedef enum lt_module_kind {
    LT_MOD_SEQUENTIAL = 0,   /* children in order */
    LT_MOD_CONV,             /* k x k conv, stride, pad, optional bias: <p>.weight (O, k, k, I), <p>.bias */
    LT_MOD_BATCHNORM,        /* <p>.weight, .bias, .running_mean, .running_var, .num_batches_tracked */
    LT_MOD_LINEAR,           /* <p>.weight (out, in), <p>.bias */
    LT_MOD_RELU,
    LT_MOD_PRELU,            /* <p>.weight (C), one slope per channel, init 0.25 */
    LT_MOD_MAXPOOL,          /* k x k, stride, pad (-inf padding) */
    LT_MOD_GLOBAL_AVGPOOL,   /* (N, H, W, C) -> (N, C) */
    LT_MOD_FLATTEN,          /* (N, H, W, C) -> (N, H*W*C), NHWC order */
    LT_MOD_RESIDUAL,         /* relu(body(x) + shortcut(x)); body = the children, except a
                                projection shortcut, which is the last child (downsample) */
    LT_MOD_HEAD,             /* a classifier over pooled features (B, D) -> logits (B, C), of
                                kind head_kind (lt_head_kind: linear, cosine, ETF, LWS): <p>.weight,
                                .bias, .scales as the kind has them; the model's heads */
    LT_MOD_KIND_COUNT
} lt_module_kind;

typedef enum lt_shortcut {
    LT_SHORTCUT_IDENTITY = 0,
    LT_SHORTCUT_A = 1,          /* x[:, ::s, ::s] and zero channel padding (no parameters) */
    LT_SHORTCUT_PROJECTION = 2, /* the last child: 1x1 conv (stride s) + BN, torchvision's downsample */
} lt_shortcut;

typedef enum lt_weight_init {
    LT_WINIT_KAIMING_FAN_IN = 0,  /* N(0, 2 / fan_in): kaiming_normal_ (CIFAR ResNet code) */
    LT_WINIT_KAIMING_FAN_OUT = 1, /* N(0, 2 / fan_out), fan_out = O k k: torchvision ResNets */
    LT_WINIT_TORCH_DEFAULT = 2,   /* U(+-1/sqrt(fan_in)) weight and bias: nn.Linear / nn.Conv2d default */
} lt_weight_init;

typedef struct lt_module {
    lt_module_kind kind;
    char name[96];              /* parameter-name prefix; "" for the root */
    struct lt_module **children;
    int n_children, cap_children;
    int64_t in_c, out_c;        /* conv, linear, batch norm / PReLU (out_c) */
    int k, stride, pad;         /* conv, max-pool; residual: stride of its shortcut */
    int has_bias;               /* conv */
    lt_weight_init init;        /* conv, linear */
    lt_shortcut shortcut;       /* residual */
    int bn_mode;                /* batch norm: -1 follows the model's lt_bn_mode, else one of them */
    int head_kind;              /* head: an lt_head_kind */
    int bias_zero;              /* head: bias initialized to 0 (else nn.Linear's U(+-1/sqrt(D))) */
    struct lt_head *head;       /* head: the model's lt_head whose views it binds */
    /* views into lt_params, bound after finalize */
    lt_tensor *weight, *bias, *running_mean, *running_var;
    int64_t *num_batches_tracked;
} lt_module;

/* "sequential", "conv", ... ("?" otherwise). */
const char *lt_module_kind_name(lt_module_kind kind);
/* Number of modules of the tree (the root included) whose kind is `kind`. */
int64_t lt_module_count(const lt_module *root, lt_module_kind kind);

typedef enum lt_head_kind {
    LT_HEAD_LINEAR = 0,         /* fc: logits = f · Wᵀ + b */
    /* logits_c = cos(f, w_c) (LDAM / RIDE NormedLinear, no bias, no scale: a loss that
     * wants s · cos multiplies itself). fc.weight (C, D) only. */
    LT_HEAD_COSINE = 1,
    /* Fixed simplex ETF (Hasegawa & Sato 2024; docs/recipes.md, `head = etf`): W = (U M)ᵀ with
     * M = √(C/(C−1)) (I − 11ᵀ/C) and U the first C columns of a random orthogonal D×D
     * matrix (Gram–Schmidt of a seeded Gaussian D×C, in double), so rows are unit and
     * pairwise cosines −1/(C−1). W is stored as the BUFFER fc.weight (never trained, no
     * weight decay, saved in the state_dict as a registered buffer); fc.bias trains.
     * Needs D ≥ C and C ≥ 2. */
    LT_HEAD_ETF = 2,
    /* Learnable weight scaling (Kang et al. 2020): logits_c = s_c · (w_c · f + b_c), with
     * fc.scales (C) initialized to 1 beside fc.weight and fc.bias. */
    LT_HEAD_LWS = 3,
} lt_head_kind;
/* "linear", "cosine", "etf", "lws" ("?" otherwise). */
const char *lt_head_kind_name(lt_head_kind kind);

typedef enum lt_bias_init {
    /* PyTorch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the CIFAR ResNet
     * code (akamaster/pytorch_resnet_cifar10, LDAM-DRW, weight balancing) re-initializes
     * only the weight with kaiming_normal_, so its bias keeps this default. */
    LT_BIAS_INIT_TORCH = 0,
    LT_BIAS_INIT_ZERO = 1,
} lt_bias_init;

typedef enum lt_bn_mode {
    /* Batch statistics in training steps, running averages updated (PyTorch train()). */
    LT_BN_TRAIN = 0,
    /* Running statistics always, never updated (PyTorch eval() on the BN layers). γ/β
     * still get gradients if they are trainable: freeze them to fix them too. */
    LT_BN_FROZEN = 1,
    /* Batch statistics and running averages updated, but γ/β receive no gradient in this
     * mode whatever their trainable flag (only the statistics adapt; used when a frozen
     * backbone's BN statistics are re-estimated on re-sampled data). */
    LT_BN_STATS_ONLY = 2,
} lt_bn_mode;
/* In every mode a context with lt_ctx_training(ctx) == 0 (evaluation) normalizes with
 * the running statistics and updates nothing. */

typedef struct lt_model_config {
    lt_arch arch;
    int depth;             /* CIFAR ResNet: 6n+2 (8, 20, 32, 44, 56, ...); torchvision: 18, 34, 50 */
    int in_channels;       /* e.g. 3 (CIFAR) or 1 (MNIST) */
    int in_height, in_width; /* nominal input size; the ResNet is fully convolutional and
                                 its forward takes any H, W (the channel count must match) */
    float width;           /* channel multiplier on 16/32/64; 0 means 1 */
    int num_classes;
    lt_head_kind head;
    lt_bias_init fc_bias_init;
    float bn_momentum;     /* 0 means PyTorch's 0.1 */
    float bn_eps;          /* 0 means PyTorch's 1e-5 */
    lt_stem stem;          /* LT_ARCH_RESNET only */
    int n_hidden;          /* LT_ARCH_MLP: hidden layer widths hidden[0 .. n_hidden) */
    int hidden[LT_MAX_HIDDEN];
    int heads;             /* heads over the shared features; 0 means 1. One head is named
                              fc.*, K > 1 heads fc.0.* .. fc.K-1.* */
} lt_model_config;

typedef struct lt_head {
    lt_head_kind kind;
    int64_t in_dim, out_dim;
    lt_tensor *weight;     /* fc.weight (out, in) (ETF: a buffer) */
    lt_tensor *bias;       /* fc.bias (out); NULL for the cosine head */
    lt_tensor *scales;     /* fc.scales (out), LWS only; else NULL */
    /* Post-hoc logit transform used in evaluation only (a context with training off):
     * z_c ← z_c · post_scale[c] + post_shift[c]. NULL (the default): none. Owned by the
     * model (lt_model_set_posthoc). Every post-hoc transform of eval.h is one of these
     * for the linear head: τ-norm with the bias kept is s_c = ‖w_c‖^−τ, shift b_c(1 − s_c);
     * bias dropped, shift −b_c s_c; additive LA s = 1, shift −τ log π_c; multiplicative LA
     * s_c = π_c^−τ. */
    float *post_scale, *post_shift;
    char prefix[16];       /* "fc", or "fc.k" when the model has several heads */
} lt_head;

typedef struct lt_model {
    lt_model_config cfg;
    lt_params params;
    lt_bn_mode bn_mode;
    int64_t feature_dim;   /* D of the pooled features */
    lt_head head;          /* head 0 (the only one unless cfg.heads > 1) */
    lt_head more_heads[LT_MAX_HEADS - 1];   /* heads 1 .. n_heads-1 */
    int n_heads;
    lt_module *root;       /* the backbone: input (B, H, W, C) -> features (B, feature_dim) */
    lt_module *head_mods[LT_MAX_HEADS];   /* heads 0 .. n_heads-1 as modules of kind head */
} lt_model;

/* Head k (0 .. n_heads-1). */
lt_head *lt_model_head(lt_model *m, int k);

/* Everything a forward pass gives: the shared pooled features, each head's logits (a
 * branch; all branches share the features here), and the combined logits (the mean of
 * the branches' logits; with one head, that head's logits themselves). */
typedef struct lt_outputs {
    lt_tensor *features;
    int n_branches;
    lt_tensor *branch_features[LT_MAX_HEADS];
    lt_tensor *branch_logits[LT_MAX_HEADS];
    lt_tensor *logits;
} lt_outputs;

/* A config with the defaults filled in: CIFAR ResNet of the given depth, width 1,
 * linear head, PyTorch bias init and BN momentum/eps. */
lt_model_config lt_model_config_resnet(int depth, int in_channels, int in_height,
                                       int in_width, int num_classes);
/* Builds the model and initializes it from lt_rng(seed, LT_STREAM_INIT): Kaiming-normal
 * fan-in (std = sqrt(2 / fan_in), as torch.nn.init.kaiming_normal_) for conv and linear
 * weights, linear bias per cfg->fc_bias_init, BN weight 1 bias 0, running mean 0 var 1.
 * Weights are drawn in state_dict order. On error *m is left freed (lt_model_free safe). */
lt_status lt_model_init(lt_model *m, const lt_model_config *cfg, uint64_t seed);
void lt_model_free(lt_model *m);   /* NULL is a no-op */
/* The BN mode of every batch norm (clears per-prefix modes). */
void lt_model_set_bn_mode(lt_model *m, lt_bn_mode mode);
/* The BN mode of the batch norms whose names the prefix selects (lt_params_name_matches);
 * LT_ERR_ARG if it selects none. */
lt_status lt_model_set_bn_mode_prefix(lt_model *m, const char *prefix, lt_bn_mode mode);

/* The architecture registry (src/nn/arch.c). lt_arch_parse sets c->arch and c->depth (and
 * the stem default) from a name: resnet<6n+2> (CIFAR; also resnet_cifar<6n+2>, needed for
 * depth 50), resnet<6n+2>_nobn, resnet18 / resnet34 / resnet50 (torchvision), mlp. An
 * unknown name is LT_ERR_ARG with the list of names. lt_arch_name writes the canonical
 * name of c (the inverse). lt_arch_names: one line listing every pattern. */
lt_status lt_arch_parse(const char *name, lt_model_config *c);
const char *lt_arch_name(const lt_model_config *c, char *buf, size_t n);
const char *lt_arch_names(void);
/* Total parameter count (PyTorch's sum(p.numel() for p in model.parameters())). */
int64_t lt_model_num_params(const lt_model *m);

/* Sets (copies) or clears (both NULL) the evaluation-only logit transform of the head
 * (lt_head.post_scale / post_shift); scale NULL means 1, shift NULL means 0. */
lt_status lt_model_set_posthoc(lt_model *m, const float *scale, const float *shift);

/* x: (B, H, W, in_channels) NHWC. Returns the pooled features (B, feature_dim), or NULL
 * with the error in ctx. */
lt_tensor *lt_model_forward_features(lt_ctx *ctx, lt_model *m, lt_tensor *x);
/* features (B, feature_dim) -> logits (B, num_classes). */
lt_tensor *lt_model_head_forward(lt_ctx *ctx, lt_model *m, lt_tensor *features);
/* features -> logits of head k. */
lt_tensor *lt_model_head_forward_k(lt_ctx *ctx, lt_model *m, int k, lt_tensor *features);
/* Features, every head, combined logits. LT_OK, or the context's error. */
lt_status lt_model_forward_outputs(lt_ctx *ctx, lt_model *m, lt_tensor *x, lt_outputs *out);
/* The combined logits; *features_out (may be NULL) gets the pooled features. */
lt_tensor *lt_model_forward(lt_ctx *ctx, lt_model *m, lt_tensor *x, lt_tensor **features_out);

#endif
