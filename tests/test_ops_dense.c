/* Dense ops (conv2d, matmul, linear, batch norm, pooling): finite-difference gradient
 * checks of every configuration, PyTorch fixtures (tests/fixtures/fx_dense.py ->
 * dense.safetensors) for forward, backward and batch-norm running statistics, the
 * overwrite-a-fresh-gradient and accumulate-into-an-existing-gradient paths, inference
 * (no tape) against training forward, thread-count independence of batch norm, no heap
 * allocation in a repeated conv + bn + pool step, and the error paths. */
#include "test.h"
#include "test_util.h"
#include "longtail/io.h"

#include <stdlib.h>
#include <string.h>

/* Caller-owned inputs (gradcheck needs grad buffers that outlive the arena):
 * tu_owned_new / tu_owned_free in tests/test_util.c. */

static void fill_normal(lt_tensor *t, lt_rng *r, float scale, float shift) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = shift + scale * lt_rng_normal(r);
}

/* Values a random permutation of a grid 0.05 apart: max pooling has no ties and a 0.01
 * finite-difference step never changes a window's maximum. */
static void fill_distinct(lt_tensor *t, lt_rng *r) {
    int64_t n = t->numel;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) return;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    lt_rng_shuffle(r, idx, n);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)(idx[i] - n / 2) * 0.05f;
    free(idx);
}

/* Σ y·r for a fixed random r: every output element gets its own weight, so a gradient
 * check of this scalar checks every element of the backward. */
#define R_MAX 8192
static float r_weights[R_MAX];
static void r_init(void) {
    lt_rng r;
    lt_rng_init(&r, 11, LT_STREAM_TEST);
    for (int i = 0; i < R_MAX; i++) r_weights[i] = lt_rng_normal(&r);
}

static lt_tensor *weighted_sum(lt_ctx *ctx, lt_tensor *y, const float *r) {
    if (!y) return NULL;
    if (y->numel > R_MAX) return lt_ctx_fail(ctx, LT_ERR_SHAPE, "test: output too large for r");
    lt_tensor *rt = lt_tensor_wrap(ctx, (float *)r, y->ndim, y->shape);
    return lt_sum(ctx, lt_mul(ctx, y, rt), LT_AXES_ALL);
}

/* ---- configurations (the same names and numbers as fx_dense.py) ---- */

typedef struct conv_case {
    const char *name;
    int64_t n, ci, h, w, co, k;
    int stride, pad, bias;
} conv_case;

static const conv_case CONV[] = {
    {"conv1x1_s1_bias", 2, 3, 5, 5, 4, 1, 1, 0, 1},
    {"conv1x1_s2", 2, 5, 6, 6, 3, 1, 2, 0, 0},
    {"conv3x3_s1_p1", 2, 3, 6, 6, 4, 3, 1, 1, 0},
    {"conv3x3_s1_p0_bias", 2, 3, 6, 5, 2, 3, 1, 0, 1},
    {"conv3x3_s2_p1_bias", 2, 4, 7, 7, 5, 3, 2, 1, 1},
    {"conv3x3_s2_p0", 2, 3, 8, 8, 4, 3, 2, 0, 0},
    {"conv3x3_16_16", 3, 16, 8, 8, 16, 3, 1, 1, 0},
    {"conv3x3_16_32_s2", 2, 16, 8, 8, 32, 3, 2, 1, 1},
    {"conv3x3_32_32", 2, 32, 8, 8, 32, 3, 1, 1, 1},
};
#define N_CONV (int)(sizeof CONV / sizeof CONV[0])

typedef struct mm_case { const char *name; int64_t m, k, n; int ta, tb; } mm_case;
static const mm_case MATMUL[] = {
    {"matmul_nn", 3, 4, 5, 0, 0},
    {"matmul_tn", 3, 4, 5, 1, 0},
    {"matmul_nt", 3, 4, 5, 0, 1},
    {"matmul_tt", 3, 4, 5, 1, 1},
};

typedef struct linear_case { const char *name; int64_t b, in, out; int bias; } linear_case;
static const linear_case LINEAR[] = {
    {"linear_bias", 5, 7, 6, 1},
    {"linear_nobias", 4, 3, 2, 0},
};

typedef struct bn_case { const char *name; int64_t shape[4]; int affine, batch; } bn_case;
static const bn_case BN[] = {
    {"bn_batch_affine", {4, 3, 3, 6}, 1, 1},
    {"bn_batch_plain", {4, 3, 3, 6}, 0, 1},
    {"bn_running_affine", {4, 3, 3, 6}, 1, 0},
    {"bn_running_plain", {3, 2, 2, 5}, 0, 0},
    {"bn_batch_2d", {8, 1, 1, 5}, 1, 1},
};
#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

enum pool_kind { P_AVG, P_MAX, P_GLOBAL };
typedef struct pool_case { const char *name; enum pool_kind kind; int64_t n, c, h, w; int k, stride, pad; } pool_case;
static const pool_case POOL[] = {
    {"avgpool_k2_s2", P_AVG, 2, 3, 6, 6, 2, 2, 0},
    {"avgpool_k3_s2", P_AVG, 2, 3, 7, 8, 3, 2, 0},
    {"maxpool_k2_s2", P_MAX, 2, 3, 6, 6, 2, 2, 0},
    {"maxpool_k3_s2_p1", P_MAX, 2, 3, 7, 7, 3, 2, 1},
    {"maxpool_k3_s1_p1", P_MAX, 1, 2, 5, 4, 3, 1, 1},
    {"global_avgpool", P_GLOBAL, 2, 3, 4, 5, 0, 0, 0},
};

/* The op of each family applied to inputs (x first); `pre` scales x by 1 through
 * lt_scale first, so x reaches the op as an arena activation whose gradient is fresh. */
typedef struct run_opts { int pre; float *rm, *rv; } run_opts;

static lt_tensor *maybe_pre(lt_ctx *ctx, lt_tensor *x, const run_opts *o) {
    return o && o->pre ? lt_scale(ctx, x, 1.0f) : x;
}

static lt_tensor *run_conv(lt_ctx *ctx, const void *cs, lt_tensor **in, const run_opts *o) {
    const conv_case *c = cs;
    return lt_conv2d(ctx, maybe_pre(ctx, in[0], o), in[1], c->bias ? in[2] : NULL, c->stride, c->pad);
}

static lt_tensor *run_mm(lt_ctx *ctx, const void *cs, lt_tensor **in, const run_opts *o) {
    const mm_case *c = cs;
    return lt_matmul(ctx, maybe_pre(ctx, in[0], o), in[1], c->ta, c->tb);
}

static lt_tensor *run_linear(lt_ctx *ctx, const void *cs, lt_tensor **in, const run_opts *o) {
    const linear_case *c = cs;
    return lt_linear(ctx, maybe_pre(ctx, in[0], o), in[1], c->bias ? in[2] : NULL);
}

static lt_tensor *run_bn(lt_ctx *ctx, const void *cs, lt_tensor **in, const run_opts *o) {
    const bn_case *c = cs;
    int64_t C = c->shape[3];
    lt_tensor *rm = lt_tensor_wrap(ctx, o->rm, 1, &C), *rv = lt_tensor_wrap(ctx, o->rv, 1, &C);
    return lt_batchnorm(ctx, maybe_pre(ctx, in[0], o), c->affine ? in[1] : NULL,
                        c->affine ? in[2] : NULL, rm, rv, c->batch, BN_MOMENTUM, BN_EPS);
}

static lt_tensor *run_pool(lt_ctx *ctx, const void *cs, lt_tensor **in, const run_opts *o) {
    const pool_case *c = cs;
    lt_tensor *x = maybe_pre(ctx, in[0], o);
    switch (c->kind) {
    case P_AVG: return lt_avgpool2d(ctx, x, c->k, c->stride);
    case P_MAX: return lt_maxpool2d(ctx, x, c->k, c->stride, c->pad);
    default: return lt_global_avgpool(ctx, x);
    }
}

/* ---- gradient checks ---- */

typedef struct gc_user {
    int family;          /* 0 conv, 1 matmul, 2 linear, 3 bn, 4 pool */
    const void *c;
    run_opts o;
} gc_user;

static lt_tensor *gc_fn(lt_ctx *ctx, lt_tensor **in, void *user) {
    gc_user *u = user;
    lt_tensor *y = NULL;
    switch (u->family) {
    case 0: y = run_conv(ctx, u->c, in, &u->o); break;
    case 1: y = run_mm(ctx, u->c, in, &u->o); break;
    case 2: y = run_linear(ctx, u->c, in, &u->o); break;
    case 3: y = run_bn(ctx, u->c, in, &u->o); break;
    default: y = run_pool(ctx, u->c, in, &u->o); break;
    }
    return weighted_sum(ctx, y, r_weights);
}

static void gradcheck_case(lt_ctx *ctx, gc_user *u, lt_tensor **in, int n_in, double eps,
                           double atol, double rtol, const char *name) {
    lt_gradcheck_result res;
    lt_status st = lt_gradcheck(ctx, gc_fn, in, n_in, u, eps, atol, rtol, &res);
    tu_gradcheck_ok(name, st, &res);
}

/* Conv, matmul, linear, avg pooling are linear in each input: central differences are
 * exact up to rounding, so a large step keeps rounding small. */
#define EPS_LINEAR 0.05
#define EPS_SMOOTH 0.01
/* atol, rtol: tight enough that a gradient 1% off fails. */
#define TOL_LINEAR 5e-4, 2e-3

TEST(dense_gradcheck_conv2d) {
    r_init();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_rng r;
    lt_rng_init(&r, 1, LT_STREAM_TEST);
    for (int i = 0; i < N_CONV; i++) {
        /* The 16- and 32-channel cases (oneDNN's blocked-weights kernels) on one small
         * image: every element of the weights is still checked, in a fraction of the
         * time; for 32 channels only the input gradient (the weights' is checked on 16). */
        conv_case cs = CONV[i];
        const conv_case *c = &cs;
        int big = cs.ci >= 16;
        if (big) {
            if (cs.ci == 16 && cs.co > 16) continue;  /* covered by its PyTorch fixture */
            cs.n = 1;
            cs.h = cs.w = 4;
        }
        lt_tensor *in[3] = {
            tu_owned_new("x", 4, (int64_t[]){c->n, c->h, c->w, c->ci}),
            tu_owned_new("w", 4, (int64_t[]){c->co, c->k, c->k, c->ci}),
            tu_owned_new("bias", 1, (int64_t[]){c->co}),
        };
        REQUIRE(in[0] && in[1] && in[2]);
        fill_normal(in[0], &r, 1, 0);
        fill_normal(in[1], &r, 0.3f, 0);
        fill_normal(in[2], &r, 1, 0);
        if (c->ci >= 32) in[1]->requires_grad = 0;
        for (int pre = 0; pre < 2 - big; pre++) {
            gc_user u = {0, c, {pre, NULL, NULL}};
            gradcheck_case(ctx, &u, in, c->bias ? 3 : 2, EPS_LINEAR, TOL_LINEAR, c->name);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
    }
    lt_ctx_free(ctx);
}

TEST(dense_gradcheck_matmul_linear) {
    r_init();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_rng r;
    lt_rng_init(&r, 2, LT_STREAM_TEST);
    for (size_t i = 0; i < sizeof MATMUL / sizeof MATMUL[0]; i++) {
        const mm_case *c = &MATMUL[i];
        lt_tensor *in[2] = {
            tu_owned_new("a", 2, c->ta ? (int64_t[]){c->k, c->m} : (int64_t[]){c->m, c->k}),
            tu_owned_new("b", 2, c->tb ? (int64_t[]){c->n, c->k} : (int64_t[]){c->k, c->n}),
        };
        REQUIRE(in[0] && in[1]);
        fill_normal(in[0], &r, 1, 0);
        fill_normal(in[1], &r, 1, 0);
        for (int pre = 0; pre < 2; pre++) {
            gc_user u = {1, c, {pre, NULL, NULL}};
            gradcheck_case(ctx, &u, in, 2, EPS_LINEAR, TOL_LINEAR, c->name);
        }
        tu_owned_free(in[0]);
        tu_owned_free(in[1]);
    }
    for (size_t i = 0; i < sizeof LINEAR / sizeof LINEAR[0]; i++) {
        const linear_case *c = &LINEAR[i];
        lt_tensor *in[3] = {
            tu_owned_new("x", 2, (int64_t[]){c->b, c->in}),
            tu_owned_new("w", 2, (int64_t[]){c->out, c->in}),
            tu_owned_new("bias", 1, (int64_t[]){c->out}),
        };
        REQUIRE(in[0] && in[1] && in[2]);
        for (int k = 0; k < 3; k++) fill_normal(in[k], &r, 1, 0);
        for (int pre = 0; pre < 2; pre++) {
            gc_user u = {2, c, {pre, NULL, NULL}};
            gradcheck_case(ctx, &u, in, c->bias ? 3 : 2, EPS_LINEAR, TOL_LINEAR, c->name);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
    }
    lt_ctx_free(ctx);
}

TEST(dense_gradcheck_batchnorm) {
    r_init();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_rng r;
    lt_rng_init(&r, 3, LT_STREAM_TEST);
    for (size_t i = 0; i < sizeof BN / sizeof BN[0]; i++) {
        const bn_case *c = &BN[i];
        int64_t C = c->shape[3];
        lt_tensor *in[3] = {tu_owned_new("x", 4, c->shape), tu_owned_new("gamma", 1, &C), tu_owned_new("beta", 1, &C)};
        float *rm = calloc((size_t)C, sizeof(float)), *rv = calloc((size_t)C, sizeof(float));
        REQUIRE(in[0] && in[1] && in[2] && rm && rv);
        fill_normal(in[0], &r, 2, 0.5f);
        fill_normal(in[1], &r, 0.5f, 1);
        fill_normal(in[2], &r, 0.5f, 0);
        for (int64_t k = 0; k < C; k++) {
            rm[k] = 0.3f * lt_rng_normal(&r);
            rv[k] = 0.5f + lt_rng_uniform(&r);
        }
        for (int pre = 0; pre < 2; pre++) {
            gc_user u = {3, c, {pre, rm, rv}};
            gradcheck_case(ctx, &u, in, c->affine ? 3 : 1, EPS_SMOOTH, 1e-3, 5e-3, c->name);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
        free(rm);
        free(rv);
    }
    lt_ctx_free(ctx);
}

TEST(dense_gradcheck_pooling) {
    r_init();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_rng r;
    lt_rng_init(&r, 4, LT_STREAM_TEST);
    for (size_t i = 0; i < sizeof POOL / sizeof POOL[0]; i++) {
        const pool_case *c = &POOL[i];
        lt_tensor *in[1] = {tu_owned_new("x", 4, (int64_t[]){c->n, c->h, c->w, c->c})};
        REQUIRE(in[0]);
        fill_distinct(in[0], &r);
        for (int pre = 0; pre < 2; pre++) {
            gc_user u = {4, c, {pre, NULL, NULL}};
            gradcheck_case(ctx, &u, in, 1, c->kind == P_MAX ? EPS_SMOOTH : EPS_LINEAR, TOL_LINEAR, c->name);
        }
        tu_owned_free(in[0]);
    }
    lt_ctx_free(ctx);
}

/* ---- PyTorch fixtures ---- */

/* An owned tensor holding fixture c.what, gradient zeroed. */
static lt_tensor *fx_owned(const lt_safetensors *st, const char *c, const char *what, int ndim,
                           const int64_t *shape) {
    lt_tensor *t = tu_owned_new(what, ndim, shape);
    if (!t) return NULL;
    const float *d = tu_fixture_get(st, c, what, LT_DT_F32, t->numel);
    if (!d) { tu_owned_free(t); return NULL; }
    memcpy(t->data, d, (size_t)t->numel * sizeof(float));
    return t;
}

/* Checks t's gradient against `times` × fixture c.what (tolerance relative to the
 * fixture's largest magnitude). */
static void check_grad(const lt_safetensors *st, const char *c, const char *what,
                       const lt_tensor *t, float times, const char *pass) {
    const float *want = tu_fixture_get(st, c, what, LT_DT_F32, t->numel);
    if (!want) return;
    float *w = malloc((size_t)t->numel * sizeof(float));
    if (!w) return;
    double mx = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        w[i] = times * want[i];
        if (fabs(w[i]) > mx) mx = fabs(w[i]);
    }
    char label[160];
    snprintf(label, sizeof label, "%s.%s (%s)", c, what, pass);
    CHECK_CLOSE(label, t->grad, w, t->numel, 1e-5 + 2e-5 * mx, 1e-4);
    free(w);
}

static void check_out(const lt_safetensors *st, const char *c, const lt_tensor *y) {
    const float *want = tu_fixture_get(st, c, "y", LT_DT_F32, y ? y->numel : 0);
    if (!y || !want) { lt_test_fail(__FILE__, __LINE__, "%s: no output", c); return; }
    double mx = 0;
    for (int64_t i = 0; i < y->numel; i++) if (fabs(want[i]) > mx) mx = fabs(want[i]);
    char label[160];
    snprintf(label, sizeof label, "%s.y", c);
    CHECK_CLOSE(label, y->data, want, y->numel, 1e-5 + 2e-5 * mx, 1e-4);
}

/* After pass `pass` (0: into existing gradients, 1: fresh then accumulated, so twice the
 * fixture's) of case c: the output, then in[k]'s gradient against fixture c.gnames[k] for
 * each k < n whose name is not NULL. */
static void check_pass(const lt_safetensors *st, const char *c, const lt_tensor *y, lt_tensor *const *in,
                       const char *const *gnames, int n, int pass) {
    check_out(st, c, y);
    for (int k = 0; k < n; k++)
        if (gnames[k]) check_grad(st, c, gnames[k], in[k], pass + 1.0f, pass ? "fresh, accumulated" : "into existing");
}

/* Runs forward + backward of Σ y·gy. Returns y (valid until the next reset). */
typedef lt_tensor *(*run_fn)(lt_ctx *, const void *, lt_tensor **, const run_opts *);
static lt_tensor *fx_step(lt_ctx *ctx, const lt_safetensors *st, const char *c, run_fn fn,
                          const void *cs, lt_tensor **in, const run_opts *o) {
    lt_ctx_reset(ctx);
    lt_tensor *y = fn(ctx, cs, in, o);
    const float *gy = tu_fixture_get(st, c, "gy", LT_DT_F32, y ? y->numel : 0);
    if (!y || !gy) {
        lt_test_fail(__FILE__, __LINE__, "%s: forward failed: %s", c, lt_ctx_error(ctx));
        return NULL;
    }
    lt_tensor *loss = weighted_sum(ctx, y, gy);
    lt_status s = lt_backward(ctx, loss);
    if (s != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "%s: backward failed: %s", c, lt_last_error());
        return NULL;
    }
    return y;
}

static lt_safetensors *fx_load(void) {
    lt_safetensors *st = NULL;
    if (lt_safetensors_load(lt_test_fixture("dense.safetensors"), &st) != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "dense.safetensors: %s", lt_last_error());
        return NULL;
    }
    return st;
}

/* Pass 1: caller-owned inputs (the op adds into existing gradient buffers). Pass 2, with
 * gradients not cleared: x goes through lt_scale(x, 1) so the op overwrites a fresh
 * gradient; every gradient must then be twice the fixture's. */
TEST(dense_fixtures_conv2d) {
    lt_safetensors *st = fx_load();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(st && ctx);
    for (int i = 0; i < N_CONV; i++) {
        const conv_case *c = &CONV[i];
        lt_tensor *in[3] = {
            fx_owned(st, c->name, "x", 4, (int64_t[]){c->n, c->h, c->w, c->ci}),
            fx_owned(st, c->name, "w", 4, (int64_t[]){c->co, c->k, c->k, c->ci}),
            c->bias ? fx_owned(st, c->name, "b", 1, (int64_t[]){c->co}) : NULL,
        };
        if (in[0] && in[1] && (!c->bias || in[2])) {
            for (int pass = 0; pass < 2; pass++) {
                run_opts o = {pass, NULL, NULL};
                lt_tensor *y = fx_step(ctx, st, c->name, run_conv, c, in, &o);
                if (!y) break;
                check_pass(st, c->name, y, in, (const char *[]){"gx", "gw", c->bias ? "gb" : NULL}, 3, pass);
            }
            /* Inference (no tape): the forward-inference primitive gives the same output. */
            lt_ctx_reset(ctx);
            lt_ctx_set_grad(ctx, 0);
            lt_tensor *y = run_conv(ctx, c, in, NULL);
            lt_ctx_set_grad(ctx, 1);
            CHECK(y && !y->requires_grad);
            CHECK_EQ_INT(lt_ctx_tape_len(ctx), 0);
            check_out(st, c->name, y);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
    }
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

TEST(dense_fixtures_matmul_linear) {
    lt_safetensors *st = fx_load();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(st && ctx);
    for (size_t i = 0; i < sizeof MATMUL / sizeof MATMUL[0]; i++) {
        const mm_case *c = &MATMUL[i];
        lt_tensor *in[2] = {
            fx_owned(st, c->name, "a", 2, c->ta ? (int64_t[]){c->k, c->m} : (int64_t[]){c->m, c->k}),
            fx_owned(st, c->name, "b", 2, c->tb ? (int64_t[]){c->n, c->k} : (int64_t[]){c->k, c->n}),
        };
        for (int pass = 0; pass < 2 && in[0] && in[1]; pass++) {
            run_opts o = {pass, NULL, NULL};
            lt_tensor *y = fx_step(ctx, st, c->name, run_mm, c, in, &o);
            if (!y) break;
            check_pass(st, c->name, y, in, (const char *[]){"ga", "gb"}, 2, pass);
        }
        tu_owned_free(in[0]);
        tu_owned_free(in[1]);
    }
    for (size_t i = 0; i < sizeof LINEAR / sizeof LINEAR[0]; i++) {
        const linear_case *c = &LINEAR[i];
        lt_tensor *in[3] = {
            fx_owned(st, c->name, "x", 2, (int64_t[]){c->b, c->in}),
            fx_owned(st, c->name, "w", 2, (int64_t[]){c->out, c->in}),
            c->bias ? fx_owned(st, c->name, "b", 1, (int64_t[]){c->out}) : NULL,
        };
        for (int pass = 0; pass < 2 && in[0] && in[1] && (!c->bias || in[2]); pass++) {
            run_opts o = {pass, NULL, NULL};
            lt_tensor *y = fx_step(ctx, st, c->name, run_linear, c, in, &o);
            if (!y) break;
            check_pass(st, c->name, y, in, (const char *[]){"gx", "gw", c->bias ? "gb" : NULL}, 3, pass);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
    }
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

TEST(dense_fixtures_batchnorm) {
    lt_safetensors *st = fx_load();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(st && ctx);
    for (size_t i = 0; i < sizeof BN / sizeof BN[0]; i++) {
        const bn_case *c = &BN[i];
        int64_t C = c->shape[3];
        lt_tensor *in[3] = {
            fx_owned(st, c->name, "x", 4, c->shape),
            c->affine ? fx_owned(st, c->name, "gamma", 1, &C) : NULL,
            c->affine ? fx_owned(st, c->name, "beta", 1, &C) : NULL,
        };
        const float *rm0 = tu_fixture_get(st, c->name, "rm0", LT_DT_F32, C);
        const float *rv0 = tu_fixture_get(st, c->name, "rv0", LT_DT_F32, C);
        const float *rm1 = tu_fixture_get(st, c->name, "rm", LT_DT_F32, C);
        const float *rv1 = tu_fixture_get(st, c->name, "rv", LT_DT_F32, C);
        float rm[64], rv[64];
        REQUIRE(C <= 64);
        for (int pass = 0; pass < 2 && in[0] && (!c->affine || (in[1] && in[2])) && rm0 && rv0 && rm1 && rv1; pass++) {
            memcpy(rm, rm0, (size_t)C * sizeof(float));
            memcpy(rv, rv0, (size_t)C * sizeof(float));
            run_opts o = {pass, rm, rv};
            lt_tensor *y = fx_step(ctx, st, c->name, run_bn, c, in, &o);
            if (!y) break;
            check_pass(st, c->name, y, in, (const char *[]){"gx", "ggamma", "gbeta"}, c->affine ? 3 : 1, pass);
            /* One update of the running statistics (none with running statistics). */
            CHECK_CLOSE("running_mean", rm, rm1, C, 1e-6, 1e-5);
            CHECK_CLOSE("running_var", rv, rv1, C, 1e-6, 1e-5);
        }
        for (int k = 0; k < 3; k++) tu_owned_free(in[k]);
    }
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

TEST(dense_fixtures_pooling) {
    lt_safetensors *st = fx_load();
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(st && ctx);
    for (size_t i = 0; i < sizeof POOL / sizeof POOL[0]; i++) {
        const pool_case *c = &POOL[i];
        lt_tensor *in[1] = {fx_owned(st, c->name, "x", 4, (int64_t[]){c->n, c->h, c->w, c->c})};
        for (int pass = 0; pass < 2 && in[0]; pass++) {
            run_opts o = {pass, NULL, NULL};
            lt_tensor *y = fx_step(ctx, st, c->name, run_pool, c, in, &o);
            if (!y) break;
            check_pass(st, c->name, y, in, (const char *[]){"gx"}, 1, pass);
        }
        tu_owned_free(in[0]);
    }
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

/* ---- semantics PyTorch's fixtures do not pin ---- */

/* Max pooling sends the gradient of a tie to the first maximum in (kh, kw) order, and a
 * window that overlaps the padding never picks the padding. */
TEST(dense_maxpool_ties_and_padding) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_tensor *x = tu_owned_new("x", 4, (int64_t[]){1, 2, 2, 1});
    REQUIRE(x);
    for (int i = 0; i < 4; i++) x->data[i] = -5.0f;  /* all equal and below zero */
    lt_tensor *y = lt_maxpool2d(ctx, x, 2, 2, 1);     /* 4 windows, each 1 real element */
    REQUIRE(y);
    CHECK_EQ_INT(y->numel, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(y->data[i], -5.0, 0);
    lt_ctx_reset(ctx);
    y = lt_maxpool2d(ctx, x, 2, 1, 0);                /* one window, four tied elements */
    REQUIRE(y && y->numel == 1);
    REQUIRE_OK(lt_backward(ctx, lt_sum(ctx, y, LT_AXES_ALL)));
    CHECK_NEAR(x->grad[0], 1.0, 0);
    for (int i = 1; i < 4; i++) CHECK_NEAR(x->grad[i], 0.0, 0);
    tu_owned_free(x);
    lt_ctx_free(ctx);
}

/* Batch norm gives bit-identical results with 1 and 2 threads (fixed-order reductions). */
TEST(dense_batchnorm_thread_count_independent) {
    int saved = lt_get_threads();
    lt_rng r;
    lt_rng_init(&r, 5, LT_STREAM_TEST);
    int64_t shape[4] = {16, 16, 16, 8}, C = 8;
    lt_tensor *x = tu_owned_new("x", 4, shape), *g = tu_owned_new("gamma", 1, &C), *b = tu_owned_new("beta", 1, &C);
    float *out[2] = {malloc(sizeof(float) * 32768), malloc(sizeof(float) * 32768)};
    float *gx[2] = {malloc(sizeof(float) * 32768), malloc(sizeof(float) * 32768)};
    float gg[2][8], rmv[2][16];
    REQUIRE(x && g && b && out[0] && out[1] && gx[0] && gx[1] && x->numel == 32768);
    fill_normal(x, &r, 3, 1);
    fill_normal(g, &r, 0.5f, 1);
    fill_normal(b, &r, 0.5f, 0);
    for (int t = 0; t < 2; t++) {
        lt_set_threads(t + 1);
        lt_ctx *ctx = lt_ctx_new();
        REQUIRE(ctx);
        float rm[8] = {0}, rv[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        memset(x->grad, 0, sizeof(float) * 32768);
        memset(g->grad, 0, sizeof gg[0]);
        lt_tensor *y = lt_batchnorm(ctx, x, g, b, lt_tensor_wrap(ctx, rm, 1, &C),
                                    lt_tensor_wrap(ctx, rv, 1, &C), 1, 0.1f, 1e-5f);
        REQUIRE(y);
        lt_tensor *loss = lt_sum(ctx, lt_mul(ctx, y, y), LT_AXES_ALL);
        REQUIRE_OK(lt_backward(ctx, loss));
        memcpy(out[t], y->data, sizeof(float) * 32768);
        memcpy(gx[t], x->grad, sizeof(float) * 32768);
        memcpy(gg[t], g->grad, sizeof gg[t]);
        memcpy(rmv[t], rm, sizeof rm);
        memcpy(rmv[t] + 8, rv, sizeof rv);
        lt_ctx_free(ctx);
    }
    lt_set_threads(saved);
    CHECK(memcmp(out[0], out[1], sizeof(float) * 32768) == 0);
    CHECK(memcmp(gx[0], gx[1], sizeof(float) * 32768) == 0);
    CHECK(memcmp(gg[0], gg[1], sizeof gg[0]) == 0);
    CHECK(memcmp(rmv[0], rmv[1], sizeof rmv[0]) == 0);
    for (int t = 0; t < 2; t++) { free(out[t]); free(gx[t]); }
    tu_owned_free(x);
    tu_owned_free(g);
    tu_owned_free(b);
}

/* The same conv forward/backward in two fresh contexts gives bit-identical results (the
 * contract behind "same seed + same thread count => same weights"). */
TEST(dense_conv2d_repeatable) {
    r_init();
    lt_rng r;
    lt_rng_init(&r, 7, LT_STREAM_TEST);
    lt_tensor *x = tu_owned_new("x", 4, (int64_t[]){4, 8, 8, 16}), *w = tu_owned_new("w", 4, (int64_t[]){32, 3, 3, 16});
    lt_tensor *b = tu_owned_new("bias", 1, (int64_t[]){32});
    REQUIRE(x && w && b);
    fill_normal(x, &r, 1, 0);
    fill_normal(w, &r, 0.2f, 0);
    fill_normal(b, &r, 1, 0);
    float *keep[2][4] = {{0}};
    for (int k = 0; k < 2; k++) {
        lt_ctx *ctx = lt_ctx_new();
        REQUIRE(ctx);
        memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
        memset(w->grad, 0, sizeof(float) * (size_t)w->numel);
        memset(b->grad, 0, sizeof(float) * (size_t)b->numel);
        lt_tensor *y = lt_conv2d(ctx, lt_scale(ctx, x, 1.0f), w, b, 2, 1);
        REQUIRE(y);
        REQUIRE_OK(lt_backward(ctx, weighted_sum(ctx, y, r_weights)));
        const lt_tensor *src[4] = {y, x, w, b};
        for (int i = 0; i < 4; i++) {
            size_t n = (size_t)src[i]->numel * sizeof(float);
            keep[k][i] = malloc(n);
            REQUIRE(keep[k][i]);
            memcpy(keep[k][i], i == 0 ? src[i]->data : src[i]->grad, n);
        }
        lt_ctx_free(ctx);
    }
    int64_t n[4] = {4 * 4 * 4 * 32, x->numel, w->numel, b->numel};
    for (int i = 0; i < 4; i++) {
        CHECK(memcmp(keep[0][i], keep[1][i], (size_t)n[i] * sizeof(float)) == 0);
        free(keep[0][i]);
        free(keep[1][i]);
    }
    tu_owned_free(x); tu_owned_free(w); tu_owned_free(b);
}

/* A training step conv -> bn -> maxpool -> global pool -> linear -> scalar, repeated with
 * the same shapes, makes no allocation through lt_malloc once warm (primitives cached,
 * scratchpad sized, arena merged, tape grown). Only the dense ops are used. */
TEST(dense_step_allocates_nothing_after_warmup) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_rng r;
    lt_rng_init(&r, 6, LT_STREAM_TEST);
    const int64_t N = 8, C = 16;
    lt_tensor *x = tu_owned_new("x", 4, (int64_t[]){N, 8, 8, 16}), *w = tu_owned_new("w", 4, (int64_t[]){C, 3, 3, 16});
    lt_tensor *g = tu_owned_new("gamma", 1, &C), *b = tu_owned_new("beta", 1, &C);
    lt_tensor *fw = tu_owned_new("fc", 2, (int64_t[]){1, C}), *ones = tu_owned_new("ones", 2, (int64_t[]){1, N});
    float rm[16] = {0}, rv[16];
    REQUIRE(x && w && g && b && fw && ones);
    fill_normal(x, &r, 1, 0);
    fill_normal(w, &r, 0.1f, 0);
    fill_normal(g, &r, 0.1f, 1);
    fill_normal(b, &r, 0.1f, 0);
    fill_normal(fw, &r, 1, 0);
    ones->requires_grad = 0;
    for (int i = 0; i < N; i++) ones->data[i] = 1;
    for (int i = 0; i < 16; i++) rv[i] = 1;
    uint64_t made[4];
    for (int step = 0; step < 4; step++) {
        uint64_t before = lt_alloc_count();
        lt_ctx_reset(ctx);
        lt_tensor *y = lt_conv2d(ctx, x, w, NULL, 1, 1);
        y = lt_batchnorm(ctx, y, g, b, lt_tensor_wrap(ctx, rm, 1, &C), lt_tensor_wrap(ctx, rv, 1, &C),
                         1, 0.1f, 1e-5f);
        y = lt_maxpool2d(ctx, y, 2, 2, 0);
        y = lt_avgpool2d(ctx, y, 2, 2);
        y = lt_global_avgpool(ctx, y);                                     /* (N, C) */
        y = lt_linear(ctx, y, fw, NULL);                                   /* (N, 1) */
        y = lt_matmul(ctx, ones, y, 0, 0);                                 /* (1, 1) */
        REQUIRE(y && y->numel == 1);
        REQUIRE_OK(lt_backward(ctx, y));
        made[step] = lt_alloc_count() - before;
    }
    CHECK(made[0] > 0);          /* the counter works: the first step did allocate */
    CHECK_EQ_INT(made[2], 0);
    CHECK_EQ_INT(made[3], 0);
    tu_owned_free(x); tu_owned_free(w); tu_owned_free(g); tu_owned_free(b); tu_owned_free(fw); tu_owned_free(ones);
    lt_ctx_free(ctx);
}

/* ---- errors: NULL + status + message, never a crash ---- */

static void expect_fail(lt_ctx *ctx, lt_tensor *y, lt_status want, const char *op, int line) {
    if (y) lt_test_fail(__FILE__, line, "%s: bad input gave an output", op);
    if (lt_ctx_status(ctx) != want)
        lt_test_fail(__FILE__, line, "%s: status %s, want %s (%s)", op, lt_status_name(lt_ctx_status(ctx)),
                     lt_status_name(want), lt_ctx_error(ctx));
    if (!strstr(lt_ctx_error(ctx), op))
        lt_test_fail(__FILE__, line, "message '%s' does not name %s", lt_ctx_error(ctx), op);
    lt_ctx_reset(ctx);
}
#define EXPECT_FAIL(expr, want, op) expect_fail(ctx, (expr), want, op, __LINE__)

TEST(dense_bad_shapes_fail_cleanly) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    static float buf[4096];
    lt_tensor *x = lt_tensor_wrap(ctx, buf, 4, (int64_t[]){2, 5, 5, 3});
    lt_tensor *w = lt_tensor_wrap(ctx, buf, 4, (int64_t[]){4, 3, 3, 3});
    REQUIRE(x && w);
    /* Keep the wrapped tensors across resets: they live in the arena, so copy them. */
    lt_tensor xs = *x, ws = *w;
    lt_tensor w4 = ws, b5 = {0}, m2 = {0}, m3 = {0}, v7 = {0};
    w4.shape[3] = 4;
    REQUIRE_OK(lt_tensor_set_shape(&b5, 1, (int64_t[]){5})); b5.data = buf;
    REQUIRE_OK(lt_tensor_set_shape(&m2, 2, (int64_t[]){3, 4})); m2.data = buf;
    REQUIRE_OK(lt_tensor_set_shape(&m3, 2, (int64_t[]){5, 6})); m3.data = buf;
    REQUIRE_OK(lt_tensor_set_shape(&v7, 1, (int64_t[]){7})); v7.data = buf;
    lt_tensor w7 = ws;
    w7.shape[1] = w7.shape[2] = 7;
    lt_ctx_reset(ctx);

    EXPECT_FAIL(lt_conv2d(ctx, &xs, &w4, NULL, 1, 1), LT_ERR_SHAPE, "conv2d");     /* channels */
    EXPECT_FAIL(lt_conv2d(ctx, &xs, &w7, NULL, 1, 0), LT_ERR_SHAPE, "conv2d");     /* kernel > input */
    EXPECT_FAIL(lt_conv2d(ctx, &m2, &ws, NULL, 1, 0), LT_ERR_SHAPE, "conv2d");     /* ndim */
    EXPECT_FAIL(lt_conv2d(ctx, &xs, &ws, &b5, 1, 0), LT_ERR_SHAPE, "conv2d");      /* bias */
    EXPECT_FAIL(lt_conv2d(ctx, &xs, &ws, NULL, 0, 0), LT_ERR_ARG, "conv2d");       /* stride */
    EXPECT_FAIL(lt_conv2d(ctx, NULL, &ws, NULL, 1, 0), LT_ERR_ARG, "conv2d");      /* NULL */
    EXPECT_FAIL(lt_matmul(ctx, &m2, &m3, 0, 0), LT_ERR_SHAPE, "matmul");           /* inner dims */
    EXPECT_FAIL(lt_matmul(ctx, &m2, &xs, 0, 0), LT_ERR_SHAPE, "matmul");           /* ndim */
    EXPECT_FAIL(lt_matmul(ctx, &m2, NULL, 0, 0), LT_ERR_ARG, "matmul");
    EXPECT_FAIL(lt_linear(ctx, &m2, &m3, NULL), LT_ERR_SHAPE, "linear");           /* in features */
    EXPECT_FAIL(lt_linear(ctx, &m2, &m2, &v7), LT_ERR_SHAPE, "linear");            /* bias */
    EXPECT_FAIL(lt_linear(ctx, NULL, &m2, NULL), LT_ERR_ARG, "linear");
    EXPECT_FAIL(lt_batchnorm(ctx, &xs, &v7, NULL, NULL, NULL, 1, 0.1f, 1e-5f), LT_ERR_SHAPE, "batchnorm");
    EXPECT_FAIL(lt_batchnorm(ctx, &xs, NULL, NULL, NULL, NULL, 0, 0.1f, 1e-5f), LT_ERR_ARG, "batchnorm");
    EXPECT_FAIL(lt_batchnorm(ctx, &xs, NULL, NULL, NULL, NULL, 1, 0.1f, 0.0f), LT_ERR_ARG, "batchnorm");
    EXPECT_FAIL(lt_batchnorm(ctx, NULL, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f), LT_ERR_ARG, "batchnorm");
    lt_tensor one = {0};
    REQUIRE_OK(lt_tensor_set_shape(&one, 4, (int64_t[]){1, 1, 1, 3})); one.data = buf;
    EXPECT_FAIL(lt_batchnorm(ctx, &one, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f), LT_ERR_SHAPE, "batchnorm");
    EXPECT_FAIL(lt_avgpool2d(ctx, &xs, 6, 1), LT_ERR_SHAPE, "avgpool2d");
    EXPECT_FAIL(lt_avgpool2d(ctx, &m2, 2, 2), LT_ERR_SHAPE, "avgpool2d");
    EXPECT_FAIL(lt_avgpool2d(ctx, &xs, 2, 0), LT_ERR_ARG, "avgpool2d");
    EXPECT_FAIL(lt_maxpool2d(ctx, &xs, 2, 2, 2), LT_ERR_ARG, "maxpool2d");         /* pad > k/2 */
    EXPECT_FAIL(lt_maxpool2d(ctx, &xs, 8, 1, 1), LT_ERR_SHAPE, "maxpool2d");
    EXPECT_FAIL(lt_maxpool2d(ctx, NULL, 2, 2, 0), LT_ERR_ARG, "maxpool2d");
    EXPECT_FAIL(lt_global_avgpool(ctx, &m2), LT_ERR_SHAPE, "global_avgpool");
    EXPECT_FAIL(lt_global_avgpool(ctx, NULL), LT_ERR_ARG, "global_avgpool");

    /* Errors are sticky: a later op given the failed result returns NULL at once. */
    lt_tensor *bad = lt_conv2d(ctx, &xs, &w4, NULL, 1, 1);
    CHECK(bad == NULL);
    CHECK(lt_batchnorm(ctx, bad, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f) == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_SHAPE);
    CHECK(strstr(lt_ctx_error(ctx), "channels") != NULL);
    lt_ctx_free(ctx);
}
