/* Modules: the layer kinds a backbone is built from, one row of a table each (see nn.h).
 *
 * A kind's row says how it declares its parameters (under the module's prefix, in
 * state_dict order), binds its views after lt_params_finalize, draws its initial values
 * (in the same order, so the draws do not depend on how a tree is stored), runs forward,
 * and whether it folds into the convolution before it at inference (batch norm does). */
#include "nn_internal.h"

#include "longtail/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- building */

lt_status lt_module_new(lt_module **out, lt_module_kind kind, const char *prefix, const char *name) {
    *out = NULL;
    lt_module *m = lt_calloc(1, sizeof *m);
    if (!m) return lt_error(LT_ERR_NOMEM, "model: out of memory for a module");
    m->kind = kind;
    m->bn_mode = -1;
    int n = prefix && *prefix ? snprintf(m->name, sizeof m->name, "%s.%s", prefix, name)
                              : snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    if (n < 0 || (size_t)n >= sizeof m->name) {
        lt_free(m);
        return lt_error(LT_ERR_ARG, "model: module name '%s.%s' is too long", prefix ? prefix : "", name ? name : "");
    }
    *out = m;
    return LT_OK;
}

lt_status lt_module_add(lt_module *parent, lt_module_kind kind, const char *name, lt_module **out) {
    if (out) *out = NULL;
    if (parent->n_children == parent->cap_children) {
        int cap = parent->cap_children ? 2 * parent->cap_children : 4;
        lt_module **c = lt_realloc(parent->children, (size_t)cap * sizeof *c);
        if (!c) return lt_error(LT_ERR_NOMEM, "model: out of memory for a module");
        parent->children = c;
        parent->cap_children = cap;
    }
    lt_module *m;
    lt_status s = lt_module_new(&m, kind, parent->name, name);
    if (s) return s;
    parent->children[parent->n_children++] = m;
    if (out) *out = m;
    return LT_OK;
}

void lt_module_free(lt_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_children; i++) lt_module_free(m->children[i]);
    lt_free(m->children);
    lt_free(m);
}

int64_t lt_module_count(const lt_module *m, lt_module_kind kind) {
    if (!m) return 0;
    int64_t n = m->kind == kind;
    for (int i = 0; i < m->n_children; i++) n += lt_module_count(m->children[i], kind);
    return n;
}

/* ---------------------------------------------------------------- per kind */

static lt_status add_param(lt_params *p, const lt_module *m, const char *leaf, lt_param_kind kind, int ndim,
                           const int64_t *shape) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->name, leaf);
    return lt_params_add(p, name, kind, ndim, shape, LT_GROUP_BACKBONE, NULL);
}

static lt_tensor *view(lt_params *p, const lt_module *m, const char *leaf) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->name, leaf);
    return lt_params_tensor(p, name);
}

static lt_status missing(const lt_module *m, const char *leaf) {
    return lt_error(LT_ERR_STATE, "model: parameter '%s.%s' missing", m->name, leaf);
}

static int64_t fan_in_of(const lt_tensor *w) { return w->numel / w->shape[0]; }

static void init_weight(lt_tensor *w, lt_tensor *b, lt_weight_init how, int64_t fan_out, lt_rng *rng) {
    int64_t fan_in = fan_in_of(w);
    switch (how) {
    case LT_WINIT_KAIMING_FAN_IN: lt_init_kaiming_normal(w, fan_in, rng); break;
    case LT_WINIT_KAIMING_FAN_OUT: lt_init_kaiming_normal(w, fan_out, rng); break;
    case LT_WINIT_TORCH_DEFAULT: {
        float bound = (float)(1.0 / sqrt((double)fan_in));
        lt_init_uniform(w, -bound, bound, rng);
        if (b) lt_init_uniform(b, -bound, bound, rng);
        return;
    }
    }
    if (b) memset(b->data, 0, (size_t)b->numel * sizeof(float));
}

/* conv */
static lt_status conv_declare(lt_module *m, lt_params *p) {
    int64_t shape[4] = {m->out_c, m->k, m->k, m->in_c};
    lt_status s = add_param(p, m, "weight", LT_PARAM_WEIGHT, 4, shape);
    if (!s && m->has_bias) s = add_param(p, m, "bias", LT_PARAM_WEIGHT, 1, &m->out_c);
    return s;
}
static lt_status conv_bind(lt_module *m, lt_params *p) {
    if (!(m->weight = view(p, m, "weight"))) return missing(m, "weight");
    if (m->has_bias && !(m->bias = view(p, m, "bias"))) return missing(m, "bias");
    return LT_OK;
}
static lt_status conv_init(lt_module *m, lt_rng *rng) {
    init_weight(m->weight, m->bias, m->init, m->out_c * m->k * m->k, rng);
    return LT_OK;
}
static lt_tensor *conv_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return lt_conv2d(ctx, x, m->weight, m->bias, m->stride, m->pad);
}

/* batch norm */
static lt_status bn_declare(lt_module *m, lt_params *p) {
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    static const lt_param_kind kinds[] = {LT_PARAM_WEIGHT, LT_PARAM_WEIGHT, LT_PARAM_BUFFER, LT_PARAM_BUFFER,
                                          LT_PARAM_COUNTER};
    for (int k = 0; k < 5; k++) {
        lt_status s = add_param(p, m, names[k], kinds[k], 1, &m->out_c);
        if (s) return s;
    }
    return LT_OK;
}
static lt_status bn_bind(lt_module *m, lt_params *p) {
    lt_tensor **views[] = {&m->weight, &m->bias, &m->running_mean, &m->running_var};
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++)
        if (!(*views[k] = view(p, m, names[k]))) return missing(m, names[k]);
    char name[128];
    snprintf(name, sizeof name, "%s.num_batches_tracked", m->name);
    lt_param *e = lt_params_find(p, name);
    if (!e || !e->counter) return lt_error(LT_ERR_STATE, "model: counter '%s' missing", name);
    m->num_batches_tracked = e->counter;
    return LT_OK;
}
static lt_status bn_init(lt_module *m, lt_rng *rng) {
    for (int64_t i = 0; i < m->out_c; i++) {
        m->weight->data[i] = 1.0f;
        m->bias->data[i] = 0.0f;
        m->running_mean->data[i] = 0.0f;
        m->running_var->data[i] = 1.0f;
    }
    *m->num_batches_tracked = 0;
    return LT_OK;
}
static lt_bn_mode bn_mode_of(const lt_model *md, const lt_module *m) {
    return m->bn_mode >= 0 ? (lt_bn_mode)m->bn_mode : md->bn_mode;
}
static lt_tensor *bn_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    if (!x) return NULL;
    lt_bn_mode mode = bn_mode_of(md, m);
    int batch_stats = lt_ctx_training(ctx) && mode != LT_BN_FROZEN;
    lt_tensor *gamma = m->weight, *beta = m->bias;
    if (mode == LT_BN_STATS_ONLY) {
        /* Gradient-free views of the same γ/β: the tape never reaches the parameters. */
        gamma = lt_tensor_wrap(ctx, gamma->data, 1, gamma->shape);
        beta = lt_tensor_wrap(ctx, beta->data, 1, beta->shape);
        if (!gamma || !beta) return NULL;
    }
    lt_tensor *y = lt_batchnorm(ctx, x, gamma, beta, m->running_mean, m->running_var, batch_stats,
                                md->cfg.bn_momentum, md->cfg.bn_eps);
    if (y && batch_stats) (*m->num_batches_tracked)++;
    return y;
}
/* conv (no bias) followed by BN. When the BN normalizes with its running statistics and
 * no gradient is wanted for the conv weight or the BN affine parameters (evaluation, or a
 * frozen backbone with BN frozen, as in classifier re-training), the pair is one affine
 * map of x and runs as a single conv with folded weights and a bias:
 *   s = γ / sqrt(running_var + eps),  W' = W · s (per output channel),
 *   b' = β − running_mean · s.
 * This saves the BN pass over the activation; gradients still reach x when it needs one. */
static lt_tensor *bn_fold_after(lt_ctx *ctx, const lt_model *md, lt_module *conv, lt_module *bn, lt_tensor *x) {
    lt_tensor *w = conv->weight;
    int running = !lt_ctx_training(ctx) || bn_mode_of(md, bn) == LT_BN_FROZEN;
    int params_need_grad = lt_ctx_grad_enabled(ctx) &&
                           (w->requires_grad || bn->weight->requires_grad || bn->bias->requires_grad);
    if (!running || params_need_grad || conv->bias) return bn_forward(ctx, md, bn, conv_forward(ctx, md, conv, x));
    if (!x) return NULL;
    lt_tensor *wf = lt_tensor_new(ctx, 4, w->shape);
    lt_tensor *bf = lt_tensor_new1(ctx, w->shape[0]);
    if (!wf || !bf) return NULL;
    const int64_t o_n = w->shape[0], k = w->numel / o_n;
    const float eps = md->cfg.bn_eps;
    for (int64_t o = 0; o < o_n; o++) {
        float s = bn->weight->data[o] / sqrtf(bn->running_var->data[o] + eps);
        for (int64_t j = 0; j < k; j++) wf->data[o * k + j] = w->data[o * k + j] * s;
        bf->data[o] = bn->bias->data[o] - bn->running_mean->data[o] * s;
    }
    return lt_conv2d(ctx, x, wf, bf, conv->stride, conv->pad);
}

/* linear */
static lt_status linear_declare(lt_module *m, lt_params *p) {
    int64_t shape[2] = {m->out_c, m->in_c};
    lt_status s = add_param(p, m, "weight", LT_PARAM_WEIGHT, 2, shape);
    if (!s) s = add_param(p, m, "bias", LT_PARAM_WEIGHT, 1, &m->out_c);
    return s;
}
static lt_status linear_bind(lt_module *m, lt_params *p) {
    if (!(m->weight = view(p, m, "weight"))) return missing(m, "weight");
    if (!(m->bias = view(p, m, "bias"))) return missing(m, "bias");
    return LT_OK;
}
static lt_status linear_init(lt_module *m, lt_rng *rng) {
    init_weight(m->weight, m->bias, m->init, m->out_c, rng);
    return LT_OK;
}
static lt_tensor *linear_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return lt_linear(ctx, x, m->weight, m->bias);
}

/* activations, pooling, reshaping */
static lt_tensor *relu_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) { return lt_relu(ctx, x); }
static lt_status prelu_declare(lt_module *m, lt_params *p) { return add_param(p, m, "weight", LT_PARAM_WEIGHT, 1, &m->out_c); }
static lt_status prelu_bind(lt_module *m, lt_params *p) {
    return (m->weight = view(p, m, "weight")) ? LT_OK : missing(m, "weight");
}
static lt_status prelu_init(lt_module *m, lt_rng *rng) {
    for (int64_t i = 0; i < m->out_c; i++) m->weight->data[i] = 0.25f;
    return LT_OK;
}
static lt_tensor *prelu_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return lt_prelu(ctx, x, m->weight);
}
static lt_tensor *maxpool_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return lt_maxpool2d(ctx, x, m->k, m->stride, m->pad);
}
static lt_tensor *gap_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return lt_global_avgpool(ctx, x);
}
static lt_tensor *flatten_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    if (!x) return NULL;
    int64_t shape[2] = {x->shape[0], x->numel / (x->shape[0] > 0 ? x->shape[0] : 1)};
    return lt_reshape(ctx, x, 2, shape);
}

/* containers */
static lt_tensor *run_children(lt_ctx *ctx, const lt_model *md, lt_module *m, int n, lt_tensor *x);
static lt_tensor *sequential_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    return run_children(ctx, md, m, m->n_children, x);
}
static lt_tensor *residual_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    int proj = m->shortcut == LT_SHORTCUT_PROJECTION;
    lt_tensor *o = run_children(ctx, md, m, m->n_children - proj, x);
    lt_tensor *sc = x;
    if (proj) sc = lt_module_forward(ctx, md, m->children[m->n_children - 1], x);
    else if (m->shortcut == LT_SHORTCUT_A) sc = lt_shortcut_a(ctx, x, m->out_c, m->stride);
    return lt_relu(ctx, lt_add(ctx, o, sc));
}

/* head: the classifier (see LT_HEAD_* in nn.h). Its parameters belong to the head group
 * (LT_GROUP_HEAD: the weight-balancing stages tell them apart from the backbone's). */
static lt_status head_add(lt_params *p, const lt_module *m, const char *leaf, lt_param_kind kind, int ndim,
                          const int64_t *shape) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->name, leaf);
    return lt_params_add(p, name, kind, ndim, shape, LT_GROUP_HEAD, NULL);
}

static lt_status head_declare(lt_module *m, lt_params *p) {
    int64_t C = m->out_c, D = m->in_c, ws[2] = {C, D}, bs[1] = {C};
    lt_status s;
    switch ((lt_head_kind)m->head_kind) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_LWS:
        s = head_add(p, m, "weight", LT_PARAM_WEIGHT, 2, ws);
        if (s == LT_OK) s = head_add(p, m, "bias", LT_PARAM_WEIGHT, 1, bs);
        if (s == LT_OK && m->head_kind == LT_HEAD_LWS) s = head_add(p, m, "scales", LT_PARAM_WEIGHT, 1, bs);
        return s;
    case LT_HEAD_COSINE:
        return head_add(p, m, "weight", LT_PARAM_WEIGHT, 2, ws);
    case LT_HEAD_ETF:
        if (C < 2) return lt_error(LT_ERR_ARG, "model: the ETF head needs at least 2 classes, got %lld", (long long)C);
        if (D < C)
            return lt_error(LT_ERR_ARG,
                            "model: the ETF head needs feature dimension D >= classes C (a simplex of C unit vectors "
                            "with cosines -1/(C-1) spans C-1 dimensions and U has C orthonormal columns), got D = %lld, "
                            "C = %lld (widen the backbone: [model] width)",
                            (long long)D, (long long)C);
        s = head_add(p, m, "weight", LT_PARAM_BUFFER, 2, ws);
        if (s == LT_OK) s = head_add(p, m, "bias", LT_PARAM_WEIGHT, 1, bs);
        return s;
    }
    return lt_error(LT_ERR_ARG, "model: unknown head kind %d", m->head_kind);
}

static lt_status head_bind(lt_module *m, lt_params *p) {
    lt_head *h = m->head;
    h->kind = (lt_head_kind)m->head_kind;
    h->in_dim = m->in_c;
    h->out_dim = m->out_c;
    h->weight = m->weight = view(p, m, "weight");
    h->bias = m->bias = view(p, m, "bias");
    h->scales = view(p, m, "scales");
    if (!h->weight || (!h->bias && h->kind != LT_HEAD_COSINE) || (!h->scales && h->kind == LT_HEAD_LWS))
        return lt_error(LT_ERR_STATE, "model: head '%s' parameters missing", m->name);
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
 * ResNets re-initialize the weight Kaiming-normal fan-in and keep nn.Linear's bias (unless
 * bias_zero), torchvision and the MLP keep nn.Linear's default for both. */
static lt_status head_init(lt_module *m, lt_rng *rng) {
    lt_head *h = m->head;
    int64_t D = m->in_c;
    float bound = (float)(1.0 / sqrt((double)D));
    if (h->kind == LT_HEAD_ETF) {
        lt_status s = etf_init(h->weight, m->out_c, D, rng);
        if (s != LT_OK) return s;
    } else if (m->init == LT_WINIT_TORCH_DEFAULT) {
        lt_init_uniform(h->weight, -bound, bound, rng);
    } else {
        lt_init_kaiming_normal(h->weight, D, rng);
    }
    if (h->scales)
        for (int64_t i = 0; i < h->scales->numel; i++) h->scales->data[i] = 1.0f;
    if (!h->bias) return LT_OK;
    if (m->bias_zero) memset(h->bias->data, 0, (size_t)h->bias->numel * sizeof(float));
    else lt_init_uniform(h->bias, -bound, bound, rng);
    return LT_OK;
}

static lt_tensor *head_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *f) {
    const lt_head *h = m->head;
    switch (h->kind) {
    case LT_HEAD_LINEAR:
    case LT_HEAD_ETF: return lt_linear(ctx, f, h->weight, h->bias);
    case LT_HEAD_COSINE: return lt_cosine_sim(ctx, f, h->weight, 1e-12f);
    case LT_HEAD_LWS: return lt_mul(ctx, lt_linear(ctx, f, h->weight, h->bias), h->scales);
    }
    return lt_ctx_fail(ctx, LT_ERR_STATE, "model: unknown head kind %d", (int)h->kind);
}

typedef struct kind_info {
    const char *name;
    lt_status (*declare)(lt_module *, lt_params *);
    lt_status (*bind)(lt_module *, lt_params *);
    lt_status (*init)(lt_module *, lt_rng *);
    lt_tensor *(*forward)(lt_ctx *, const lt_model *, lt_module *, lt_tensor *);
    /* Runs `prev` (a convolution) and this module as one op where it can (inference). */
    lt_tensor *(*fold_after)(lt_ctx *, const lt_model *, lt_module *prev, lt_module *self, lt_tensor *);
} kind_info;

static const kind_info kinds[] = {
    [LT_MOD_SEQUENTIAL] = {"sequential", NULL, NULL, NULL, sequential_forward, NULL},
    [LT_MOD_CONV] = {"conv", conv_declare, conv_bind, conv_init, conv_forward, NULL},
    [LT_MOD_BATCHNORM] = {"batchnorm", bn_declare, bn_bind, bn_init, bn_forward, bn_fold_after},
    [LT_MOD_LINEAR] = {"linear", linear_declare, linear_bind, linear_init, linear_forward, NULL},
    [LT_MOD_RELU] = {"relu", NULL, NULL, NULL, relu_forward, NULL},
    [LT_MOD_PRELU] = {"prelu", prelu_declare, prelu_bind, prelu_init, prelu_forward, NULL},
    [LT_MOD_MAXPOOL] = {"maxpool", NULL, NULL, NULL, maxpool_forward, NULL},
    [LT_MOD_GLOBAL_AVGPOOL] = {"global_avgpool", NULL, NULL, NULL, gap_forward, NULL},
    [LT_MOD_FLATTEN] = {"flatten", NULL, NULL, NULL, flatten_forward, NULL},
    [LT_MOD_RESIDUAL] = {"residual", NULL, NULL, NULL, residual_forward, NULL},
    [LT_MOD_HEAD] = {"head", head_declare, head_bind, head_init, head_forward, NULL},
};
_Static_assert(sizeof kinds / sizeof kinds[0] == LT_MOD_KIND_COUNT, "one row per module kind");

const char *lt_module_kind_name(lt_module_kind k) {
    return (unsigned)k < LT_MOD_KIND_COUNT ? kinds[k].name : "?";
}

static lt_tensor *run_children(lt_ctx *ctx, const lt_model *md, lt_module *m, int n, lt_tensor *x) {
    for (int i = 0; i < n; i++) {
        lt_module *c = m->children[i];
        if (i + 1 < n && c->kind == LT_MOD_CONV && kinds[m->children[i + 1]->kind].fold_after) {
            x = kinds[m->children[i + 1]->kind].fold_after(ctx, md, c, m->children[i + 1], x);
            i++;
        } else {
            x = lt_module_forward(ctx, md, c, x);
        }
    }
    return x;
}

/* ---------------------------------------------------------------- walks */

lt_status lt_module_declare(lt_module *m, lt_params *p) {
    lt_status s = kinds[m->kind].declare ? kinds[m->kind].declare(m, p) : LT_OK;
    for (int i = 0; i < m->n_children && !s; i++) s = lt_module_declare(m->children[i], p);
    return s;
}

lt_status lt_module_bind(lt_module *m, lt_params *p) {
    lt_status s = kinds[m->kind].bind ? kinds[m->kind].bind(m, p) : LT_OK;
    for (int i = 0; i < m->n_children && !s; i++) s = lt_module_bind(m->children[i], p);
    return s;
}

lt_status lt_module_init(lt_module *m, lt_rng *rng) {
    lt_status s = kinds[m->kind].init ? kinds[m->kind].init(m, rng) : LT_OK;
    for (int i = 0; i < m->n_children && !s; i++) s = lt_module_init(m->children[i], rng);
    return s;
}

lt_tensor *lt_module_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x) {
    if (!x) return NULL;
    return kinds[m->kind].forward(ctx, md, m, x);
}

int lt_module_set_bn_mode(lt_module *m, const char *prefix, int mode) {
    int n = 0;
    if (m->kind == LT_MOD_BATCHNORM && (!prefix || lt_params_name_matches(m->name, prefix))) {
        m->bn_mode = mode;
        n++;
    }
    for (int i = 0; i < m->n_children; i++) n += lt_module_set_bn_mode(m->children[i], prefix, mode);
    return n;
}
