/* Light ops (elementwise, activations, reductions, softmax and cross-entropy, row norms,
 * shape ops): finite-difference gradient checks of every op, PyTorch fixtures
 * (tests/fixtures/fx_basic.py -> basic.safetensors), broadcast backward against a direct
 * sum, gradient accumulation, cross-entropy against a hand-written formula, the straight-
 * through estimators against their formulas, determinism across thread counts, no heap
 * allocation after warm-up, and the error paths. */
#include "test.h"
#include "test_util.h"
#include "longtail/io.h"

#include <stdlib.h>
#include <string.h>

/* Caller-owned inputs (gradcheck needs grad buffers that outlive the arena):
 * tu_owned_new / tu_owned_free in tests/test_util.c. */

enum gen {
    G_ANY,       /* uniform [-1, 1] */
    G_POS,       /* uniform [0.5, 2] */
    G_AWAY0,     /* |x| in [0.1, 1], random sign: off the kink at 0 */
    G_CLAMP,     /* uniform [-1, 1], at least 0.05 away from ±0.5 (the clamp bounds) */
    G_WIDE,      /* uniform [-3, 3] (logits) */
    G_SMALLROW,  /* uniform [-1, 1], first row (last axis) scaled by 0.02: norm below eps */
};

static void fill(lt_tensor *t, enum gen g, lt_rng *r) {
    for (int64_t i = 0; i < t->numel; i++) {
        float u = lt_rng_uniform(r), x;
        switch (g) {
        case G_POS: x = 0.5f + 1.5f * u; break;
        case G_AWAY0: x = (0.1f + 0.9f * u) * (lt_rng_uniform(r) < 0.5f ? -1.0f : 1.0f); break;
        case G_CLAMP:
            x = 2 * u - 1;
            while (fabsf(fabsf(x) - 0.5f) < 0.05f) x = 2 * lt_rng_uniform(r) - 1;
            break;
        case G_WIDE: x = 6 * u - 3; break;
        default: x = 2 * u - 1; break;
        }
        t->data[i] = x;
    }
    if (g == G_SMALLROW)
        for (int64_t k = 0; k < t->shape[t->ndim - 1]; k++) t->data[k] *= 0.02f;
}

/* ---- the case table: one row per op configuration, shared by gradcheck and fixtures ---- */

typedef struct op_params {
    float f0, f1;           /* scale, power, clamp lo/hi, eps, label smoothing */
    unsigned axes;          /* sum, mean */
    int i0;                 /* axis, stride, ste, reduction */
    int64_t j0, j1;         /* slice start/len, resize h/w, shortcut out_c */
    int ndim;               /* reshape */
    int64_t shape[4];
    const int32_t *labels;  /* cross-entropy */
    const float *weight;
} op_params;

typedef struct in_spec { int ndim; int64_t shape[4]; enum gen gen; } in_spec;

typedef struct op_case {
    const char *family, *name;
    enum lt_op op;
    int n_in;
    in_spec in[5];
    op_params p;
    int no_gradcheck;       /* sign_ste: the numeric derivative of sign is 0 */
    int no_fixture;         /* configurations only the gradient check covers */
} op_case;

static const int32_t ce_labels[6] = {2, 0, 4, 4, 1, 3};
static const float ce_weight[5] = {0.5f, 1.5f, 1.0f, 2.0f, 0.3f};

#define T234 {3, {2, 3, 4}, G_ANY}
#define T25 {2, {2, 5}, G_ANY}

static const op_case cases[] = {
    /* elementwise */
    {"elementwise", "add_same", LT_OP_ADD, 2, {T234, T234}, {.f0 = 0}, 0, 0},
    {"elementwise", "add_bcast", LT_OP_ADD, 2, {T234, {1, {4}, G_ANY}}, {.f0 = 0}, 0, 0},
    {"elementwise", "sub_bcast", LT_OP_SUB, 2, {T234, {2, {3, 4}, G_ANY}}, {.f0 = 0}, 0, 0},
    {"elementwise", "mul_same", LT_OP_MUL, 2, {T234, T234}, {.f0 = 0}, 0, 0},
    {"elementwise", "mul_bcast", LT_OP_MUL, 2, {T234, {1, {4}, G_ANY}}, {.f0 = 0}, 0, 0},
    {"elementwise", "div_same", LT_OP_DIV, 2, {T234, {3, {2, 3, 4}, G_POS}}, {.f0 = 0}, 0, 0},
    {"elementwise", "div_bcast", LT_OP_DIV, 2, {T234, {2, {3, 4}, G_POS}}, {.f0 = 0}, 0, 0},
    {"elementwise", "scale", LT_OP_SCALE, 1, {T25}, {.f0 = -1.5f}, 0, 0},
    {"elementwise", "add_scalar", LT_OP_ADD_SCALAR, 1, {T25}, {.f0 = 0.25f}, 0, 0},
    {"elementwise", "exp", LT_OP_EXP, 1, {T25}, {.f0 = 0}, 0, 0},
    {"elementwise", "log", LT_OP_LOG, 1, {{2, {2, 5}, G_POS}}, {.f0 = 0}, 0, 0},
    {"elementwise", "abs", LT_OP_ABS, 1, {{2, {2, 5}, G_AWAY0}}, {.f0 = 0}, 0, 0},
    {"elementwise", "sqrt", LT_OP_SQRT, 1, {{2, {2, 5}, G_POS}}, {.f0 = 0}, 0, 0},
    {"elementwise", "pow3", LT_OP_POW, 1, {T25}, {.f0 = 3.0f}, 0, 0},
    {"elementwise", "pow_half", LT_OP_POW, 1, {{2, {2, 5}, G_POS}}, {.f0 = 0.5f}, 0, 0},
    {"elementwise", "pow_neg", LT_OP_POW, 1, {{2, {2, 5}, G_POS}}, {.f0 = -1.5f}, 0, 1},
    {"elementwise", "clamp", LT_OP_CLAMP, 1, {{2, {3, 7}, G_CLAMP}}, {.f0 = -0.5f, .f1 = 0.5f}, 0, 0},
    /* activations */
    {"activation", "relu", LT_OP_RELU, 1, {{4, {2, 3, 3, 4}, G_AWAY0}}, {.f0 = 0}, 0, 0},
    {"activation", "prelu", LT_OP_PRELU, 2, {{4, {2, 3, 3, 4}, G_AWAY0}, {1, {4}, G_POS}}, {.f0 = 0}, 0, 0},
    {"activation", "prelu1", LT_OP_PRELU, 2, {{2, {3, 6}, G_AWAY0}, {1, {1}, G_POS}}, {.f0 = 0}, 0, 0},
    {"activation", "sign_clipped", LT_OP_SIGN_STE, 1, {{2, {4, 8}, G_ANY}}, {.i0 = LT_STE_CLIPPED}, 1, 0},
    {"activation", "sign_approx", LT_OP_SIGN_STE, 1, {{2, {4, 8}, G_ANY}}, {.i0 = LT_STE_APPROX}, 1, 0},
    /* reductions */
    {"reduce", "sum_a1", LT_OP_SUM, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = 0x2}, 0, 0},
    {"reduce", "sum_a02", LT_OP_SUM, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = 0x5}, 0, 0},
    {"reduce", "sum_a13", LT_OP_SUM, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = 0xA}, 0, 0},
    {"reduce", "sum_all", LT_OP_SUM, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = LT_AXES_ALL}, 0, 0},
    {"reduce", "mean_a0", LT_OP_MEAN, 1, {{2, {6, 5}, G_ANY}}, {.axes = 0x1}, 0, 0},
    {"reduce", "mean_a12", LT_OP_MEAN, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = 0x6}, 0, 0},
    {"reduce", "mean_a3", LT_OP_MEAN, 1, {{4, {2, 3, 4, 5}, G_ANY}}, {.axes = 0x8}, 0, 0},
    {"reduce", "mean_all", LT_OP_MEAN, 1, {{2, {3, 4}, G_ANY}}, {.axes = LT_AXES_ALL}, 0, 0},
    /* softmax family and cross-entropy */
    {"softmax", "softmax", LT_OP_SOFTMAX, 1, {{2, {3, 5}, G_WIDE}}, {.f0 = 0}, 0, 0},
    {"softmax", "log_softmax", LT_OP_LOG_SOFTMAX, 1, {{3, {2, 2, 4}, G_WIDE}}, {.f0 = 0}, 0, 0},
    {"softmax", "ce_mean", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .i0 = LT_REDUCE_MEAN}, 0, 0},
    {"softmax", "ce_mean_w", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .weight = ce_weight, .i0 = LT_REDUCE_MEAN}, 0, 0},
    {"softmax", "ce_mean_w_ls", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .weight = ce_weight, .f0 = 0.2f, .i0 = LT_REDUCE_MEAN}, 0, 0},
    {"softmax", "ce_sum_ls", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .f0 = 0.1f, .i0 = LT_REDUCE_SUM}, 0, 0},
    {"softmax", "ce_bmean_w_ls", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .weight = ce_weight, .f0 = 0.2f, .i0 = LT_REDUCE_BATCH_MEAN}, 0, 0},
    {"softmax", "ce_none_w_ls", LT_OP_CROSS_ENTROPY, 1, {{2, {6, 5}, G_WIDE}},
     {.labels = ce_labels, .weight = ce_weight, .f0 = 0.3f, .i0 = LT_REDUCE_NONE}, 0, 0},
    /* row norms and the cosine classifier */
    {"norm_rows", "row_l2norm", LT_OP_ROW_L2NORM, 1, {T234}, {.f0 = 0}, 0, 0},
    {"norm_rows", "normalize_rows", LT_OP_NORMALIZE_ROWS, 1, {{2, {3, 6}, G_ANY}}, {.f0 = 1e-12f}, 0, 0},
    {"norm_rows", "normalize_rows_eps", LT_OP_NORMALIZE_ROWS, 1, {{2, {3, 6}, G_SMALLROW}}, {.f0 = 0.5f}, 0, 1},
    {"norm_rows", "cosine_sim", LT_OP_COSINE_SIM, 2, {{2, {4, 6}, G_ANY}, {2, {5, 6}, G_ANY}}, {.f0 = 1e-12f}, 0, 0},
    {"norm_rows", "cosine_sim_eps", LT_OP_COSINE_SIM, 2, {{2, {4, 6}, G_SMALLROW}, {2, {5, 6}, G_SMALLROW}},
     {.f0 = 0.5f}, 0, 1},
    /* shape ops */
    {"shape", "concat0", LT_OP_CONCAT, 2, {{2, {1, 3}, G_ANY}, {2, {2, 3}, G_ANY}}, {.i0 = 0}, 0, 0},
    {"shape", "concat_c", LT_OP_CONCAT, 3, {{4, {2, 2, 2, 1}, G_ANY}, {4, {2, 2, 2, 3}, G_ANY}, {4, {2, 2, 2, 2}, G_ANY}},
     {.i0 = 3}, 0, 0},
    {"shape", "concat1", LT_OP_CONCAT, 2, {{3, {2, 2, 3}, G_ANY}, {3, {2, 3, 3}, G_ANY}}, {.i0 = 1}, 0, 0},
    {"shape", "concat_5", LT_OP_CONCAT, 5,
     {{2, {2, 1}, G_ANY}, {2, {2, 2}, G_ANY}, {2, {2, 1}, G_ANY}, {2, {2, 3}, G_ANY}, {2, {2, 2}, G_ANY}},
     {.i0 = 1}, 0, 1},
    {"shape", "slice1", LT_OP_SLICE, 1, {{3, {2, 5, 3}, G_ANY}}, {.i0 = 1, .j0 = 1, .j1 = 3}, 0, 0},
    {"shape", "reshape", LT_OP_RESHAPE, 1, {T234}, {.ndim = 2, .shape = {4, 6}}, 0, 0},
    {"shape", "reshape_infer", LT_OP_RESHAPE, 1, {T234}, {.ndim = 3, .shape = {3, -1, 2}}, 0, 1},
    {"shape", "resize_up", LT_OP_RESIZE_NEAREST, 1, {{4, {1, 3, 4, 2}, G_ANY}}, {.j0 = 5, .j1 = 7}, 0, 0},
    {"shape", "resize_down", LT_OP_RESIZE_NEAREST, 1, {{4, {1, 6, 5, 2}, G_ANY}}, {.j0 = 4, .j1 = 3}, 0, 0},
    {"shape", "resize_2x", LT_OP_RESIZE_NEAREST, 1, {{4, {1, 2, 3, 2}, G_ANY}}, {.j0 = 4, .j1 = 6}, 0, 0},
    {"shape", "resize_odd", LT_OP_RESIZE_NEAREST, 1, {{4, {2, 7, 7, 1}, G_ANY}}, {.j0 = 3, .j1 = 5}, 0, 0},
    {"shape", "resize_float", LT_OP_RESIZE_NEAREST, 1, {{4, {1, 26, 3, 1}, G_ANY}}, {.j0 = 22, .j1 = 3}, 0, 0},
    {"shape", "shortcut_a", LT_OP_SHORTCUT_A, 1, {{4, {2, 4, 4, 4}, G_ANY}}, {.j0 = 8, .i0 = 2}, 0, 0},
    {"shape", "shortcut_a_odd", LT_OP_SHORTCUT_A, 1, {{4, {2, 5, 5, 3}, G_ANY}}, {.j0 = 8, .i0 = 2}, 0, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static lt_tensor *apply(lt_ctx *ctx, const op_case *c, lt_tensor **in, const op_params *p) {
    switch (c->op) {
    case LT_OP_ADD: return lt_add(ctx, in[0], in[1]);
    case LT_OP_SUB: return lt_sub(ctx, in[0], in[1]);
    case LT_OP_MUL: return lt_mul(ctx, in[0], in[1]);
    case LT_OP_DIV: return lt_div(ctx, in[0], in[1]);
    case LT_OP_SCALE: return lt_scale(ctx, in[0], p->f0);
    case LT_OP_ADD_SCALAR: return lt_add_scalar(ctx, in[0], p->f0);
    case LT_OP_EXP: return lt_exp(ctx, in[0]);
    case LT_OP_LOG: return lt_log(ctx, in[0]);
    case LT_OP_ABS: return lt_abs(ctx, in[0]);
    case LT_OP_SQRT: return lt_sqrt(ctx, in[0]);
    case LT_OP_POW: return lt_pow(ctx, in[0], p->f0);
    case LT_OP_CLAMP: return lt_clamp(ctx, in[0], p->f0, p->f1);
    case LT_OP_RELU: return lt_relu(ctx, in[0]);
    case LT_OP_PRELU: return lt_prelu(ctx, in[0], in[1]);
    case LT_OP_SIGN_STE: return lt_sign_ste(ctx, in[0], (lt_ste)p->i0);
    case LT_OP_SUM: return lt_sum(ctx, in[0], p->axes);
    case LT_OP_MEAN: return lt_mean(ctx, in[0], p->axes);
    case LT_OP_SOFTMAX: return lt_softmax(ctx, in[0]);
    case LT_OP_LOG_SOFTMAX: return lt_log_softmax(ctx, in[0]);
    case LT_OP_CROSS_ENTROPY:
        return lt_cross_entropy(ctx, in[0], p->labels, p->weight, p->f0, (lt_reduction)p->i0);
    case LT_OP_ROW_L2NORM: return lt_row_l2norm(ctx, in[0]);
    case LT_OP_NORMALIZE_ROWS: return lt_normalize_rows(ctx, in[0], p->f0);
    case LT_OP_COSINE_SIM: return lt_cosine_sim(ctx, in[0], in[1], p->f0);
    case LT_OP_CONCAT: return lt_concat(ctx, in, c->n_in, p->i0);
    case LT_OP_SLICE: return lt_slice(ctx, in[0], p->i0, p->j0, p->j1);
    case LT_OP_RESHAPE: return lt_reshape(ctx, in[0], p->ndim, p->shape);
    case LT_OP_RESIZE_NEAREST: return lt_resize_nearest(ctx, in[0], p->j0, p->j1);
    case LT_OP_SHORTCUT_A: return lt_shortcut_a(ctx, in[0], p->j0, p->i0);
    default: return lt_ctx_fail(ctx, LT_ERR_ARG, "test: op %d not in the light-op table", (int)c->op);
    }
}

/* scalar = Σ out ⊙ r with r uniform in [-1, 1] from a fixed seed (same r every call). */
static lt_tensor *weighted_sum(lt_ctx *ctx, lt_tensor *y) {
    if (!y) return NULL;
    lt_tensor *r = lt_tensor_new(ctx, y->ndim, y->shape);
    if (!r) return NULL;
    lt_rng g;
    lt_rng_init(&g, 777, LT_STREAM_TEST);
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = 2 * lt_rng_uniform(&g) - 1;
    return lt_sum(ctx, lt_mul(ctx, y, r), LT_AXES_ALL);
}

typedef struct gc_user { const op_case *c; } gc_user;

static lt_tensor *gc_fn(lt_ctx *ctx, lt_tensor **in, void *user) {
    const op_case *c = ((gc_user *)user)->c;
    return weighted_sum(ctx, apply(ctx, c, in, &c->p));
}

static void gradcheck_family(const char *family) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    int ran = 0;
    for (int k = 0; k < N_CASES; k++) {
        const op_case *c = &cases[k];
        if (strcmp(c->family, family) != 0 || c->no_gradcheck) continue;
        lt_tensor *in[5] = {0};
        lt_rng r;
        lt_rng_init(&r, 1000 + (uint64_t)k, LT_STREAM_TEST);
        int ok = 1;
        for (int i = 0; i < c->n_in; i++) {
            in[i] = tu_owned_new(c->name, c->in[i].ndim, c->in[i].shape);
            if (!in[i]) { ok = 0; break; }
            fill(in[i], c->in[i].gen, &r);
        }
        if (ok) {
            gc_user u = {c};
            lt_gradcheck_result res;
            lt_status st = lt_gradcheck(ctx, gc_fn, in, c->n_in, &u, 1e-3, 2e-3, 2e-2, &res);
            tu_gradcheck_ok(c->name, st, &res);
            ran++;
        } else {
            lt_test_fail(__FILE__, __LINE__, "%s: out of memory", c->name);
        }
        for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
    }
    CHECK(ran > 0);
    lt_ctx_free(ctx);
}

TEST(ops_basic_gradcheck_elementwise) { gradcheck_family("elementwise"); }
TEST(ops_basic_gradcheck_activation) { gradcheck_family("activation"); }
TEST(ops_basic_gradcheck_reduce) { gradcheck_family("reduce"); }
TEST(ops_basic_gradcheck_softmax) { gradcheck_family("softmax"); }
TEST(ops_basic_gradcheck_norm_rows) { gradcheck_family("norm_rows"); }
TEST(ops_basic_gradcheck_shape) { gradcheck_family("shape"); }

/* ---- PyTorch fixtures ---- */

/* Runs one fixture case: forward, backward from Σ out ⊙ gout, compares out and input grads. */
static void fixture_case(lt_ctx *ctx, const lt_safetensors *st, const op_case *c) {
    lt_tensor *in[5] = {0};
    op_params p = c->p;
    int ok = 1;
    for (int i = 0; i < c->n_in && ok; i++) {
        char what[16];
        snprintf(what, sizeof what, "in%d", i);
        const lt_st_entry *e = tu_fixture_entry(st, c->name, what);
        if (!e || e->dtype != LT_DT_F32 || e->ndim < 1 || e->ndim > 4) {
            lt_test_fail(__FILE__, __LINE__, "fixture %s.%s missing or not a 1..4-D F32 tensor", c->name, what);
            ok = 0;
            break;
        }
        in[i] = tu_owned_new(c->name, e->ndim, e->shape);
        if (!in[i]) { ok = 0; break; }
        memcpy(in[i]->data, lt_safetensors_data(st, e), (size_t)e->numel * sizeof(float));
    }
    if (ok && c->op == LT_OP_CROSS_ENTROPY) {
        p.labels = tu_fixture_get(st, c->name, "labels", LT_DT_I32, in[0]->shape[0]);
        ok = p.labels != NULL;
        if (ok && c->p.weight) {
            p.weight = tu_fixture_get(st, c->name, "weight", LT_DT_F32, in[0]->shape[1]);
            ok = p.weight != NULL;
        }
    }
    if (ok) {
        lt_ctx_reset(ctx);
        lt_tensor *y = apply(ctx, c, in, &p);
        const lt_st_entry *eo = tu_fixture_entry(st, c->name, "out");
        if (!y || !eo) {
            lt_test_fail(__FILE__, __LINE__, "%s: %s", c->name, !y ? lt_ctx_error(ctx) : "fixture out missing");
        } else {
            int same = eo->ndim == y->ndim;
            for (int d = 0; same && d < y->ndim; d++) same = eo->shape[d] == y->shape[d];
            if (!same) {
                char s[64];
                lt_test_fail(__FILE__, __LINE__, "%s: output shape %s differs from PyTorch's", c->name,
                             lt_shape_str(y, s, sizeof s));
            } else {
                char what[96];
                snprintf(what, sizeof what, "%s forward", c->name);
                CHECK_CLOSE(what, y->data, lt_safetensors_data(st, eo), y->numel, 1e-5, 1e-4);
                const float *gout = tu_fixture_get(st, c->name, "gout", LT_DT_F32, y->numel);
                lt_tensor *gt = gout ? lt_tensor_wrap(ctx, (float *)gout, y->ndim, y->shape) : NULL;
                lt_tensor *loss = gt ? lt_sum(ctx, lt_mul(ctx, y, gt), LT_AXES_ALL) : NULL;
                for (int i = 0; i < c->n_in; i++) memset(in[i]->grad, 0, (size_t)in[i]->numel * sizeof(float));
                if (loss && lt_backward(ctx, loss) == LT_OK) {
                    tu_fixture_input_grads(st, c->name, in, c->n_in, 1e-5, 1e-4);
                } else {
                    lt_test_fail(__FILE__, __LINE__, "%s: backward: %s", c->name, lt_last_error());
                }
            }
        }
    }
    for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
}

TEST(ops_basic_pytorch_fixtures) {
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("basic.safetensors"), &st));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    int ran = 0;
    for (int k = 0; k < N_CASES; k++) {
        if (cases[k].no_fixture) continue;
        fixture_case(ctx, st, &cases[k]);
        ran++;
    }
    CHECK(ran >= 50);
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

/* ---- straight-through estimators against their formulas ---- */

TEST(ops_basic_sign_ste_formulas) {
    static float x[] = {-2.0f, -1.0f, -0.75f, -0.25f, 0.0f, 0.25f, 0.75f, 0.999f, 1.0f, 1.5f, -1.001f, -0.5f};
    const int64_t n = sizeof x / sizeof x[0];
    float gx[sizeof x / sizeof x[0]], up[sizeof x / sizeof x[0]];
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    for (int ste = LT_STE_CLIPPED; ste <= LT_STE_APPROX; ste++) {
        lt_ctx_reset(ctx);
        lt_tensor xt = {0};
        REQUIRE_OK(lt_tensor_set_shape(&xt, 1, &n));
        xt.data = x;
        xt.grad = gx;
        xt.requires_grad = 1;
        memset(gx, 0, sizeof gx);
        for (int64_t i = 0; i < n; i++) up[i] = 0.5f + (float)i;   /* distinct upstream grads */
        lt_tensor *y = lt_sign_ste(ctx, &xt, (lt_ste)ste);
        REQUIRE(y != NULL);
        lt_tensor *u = lt_tensor_wrap(ctx, up, 1, &n);
        REQUIRE_OK(lt_backward(ctx, lt_sum(ctx, lt_mul(ctx, y, u), LT_AXES_ALL)));
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            CHECK_NEAR(y->data[i], v >= 0 ? 1.0 : -1.0, 0);   /* sign(0) = +1 */
            double d;
            if (ste == LT_STE_CLIPPED) d = (v >= -1 && v <= 1) ? 1.0 : 0.0;
            else d = (v >= -1 && v < 0) ? 2 + 2.0 * v : (v >= 0 && v < 1) ? 2 - 2.0 * v : 0.0;
            CHECK_NEAR(gx[i], up[i] * d, 1e-5 * (1 + fabs(up[i] * d)));
        }
    }
    lt_ctx_free(ctx);
}

/* ---- broadcast backward against a direct double sum, on a size that takes the chunked path ---- */

TEST(ops_basic_broadcast_backward) {
    const int64_t sa[3] = {300, 5, 64}, sb[1] = {64};
    lt_tensor *a = tu_owned_new("a", 3, sa), *b = tu_owned_new("b", 1, sb);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(a && b && ctx);
    lt_rng r;
    lt_rng_init(&r, 5, LT_STREAM_TEST);
    fill(a, G_ANY, &r);
    fill(b, G_POS, &r);
    int64_t rows = a->numel / 64;
    for (int op = 0; op < 4; op++) {
        lt_ctx_reset(ctx);
        memset(a->grad, 0, (size_t)a->numel * sizeof(float));
        memset(b->grad, 0, 64 * sizeof(float));
        lt_tensor *y = op == 0 ? lt_add(ctx, a, b) : op == 1 ? lt_sub(ctx, a, b)
                     : op == 2 ? lt_mul(ctx, a, b) : lt_div(ctx, a, b);
        lt_tensor *loss = weighted_sum(ctx, y);
        REQUIRE(loss != NULL);
        REQUIRE_OK(lt_backward(ctx, loss));
        /* the same r as weighted_sum draws */
        lt_rng g;
        lt_rng_init(&g, 777, LT_STREAM_TEST);
        double want[64] = {0};
        for (int64_t i = 0; i < rows; i++)
            for (int j = 0; j < 64; j++) {
                double rv = 2 * lt_rng_uniform(&g) - 1, av = a->data[i * 64 + j], bv = b->data[j];
                want[j] += op == 0 ? rv : op == 1 ? -rv : op == 2 ? rv * av : -rv * av / (bv * bv);
            }
        for (int j = 0; j < 64; j++) CHECK_NEAR(b->grad[j], want[j], 1e-4 * (1 + fabs(want[j])));
    }
    lt_ctx_free(ctx);
    tu_owned_free(a);
    tu_owned_free(b);
}

/* ---- accumulation ---- */

TEST(ops_basic_backward_accumulates) {
    const int64_t s[2] = {3, 4};
    lt_tensor *x = tu_owned_new("x", 2, s);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(x && ctx);
    lt_rng r;
    lt_rng_init(&r, 9, LT_STREAM_TEST);
    fill(x, G_AWAY0, &r);
    float first[12];
    /* Two steps into the same caller-owned gradient: the second adds to the first. */
    for (int step = 0; step < 2; step++) {
        lt_ctx_reset(ctx);
        REQUIRE_OK(lt_backward(ctx, weighted_sum(ctx, lt_relu(ctx, lt_scale(ctx, x, 2.0f)))));
        if (step == 0) memcpy(first, x->grad, sizeof first);
    }
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], 2 * first[i], 1e-6);
    int nonzero = 0;
    for (int i = 0; i < 12; i++) nonzero += first[i] != 0;
    CHECK(nonzero > 0);
    /* An input used twice in one graph gets both contributions: d Σ(x + x) = 2, d Σ x·x = 2x. */
    memset(x->grad, 0, sizeof first);
    lt_ctx_reset(ctx);
    REQUIRE_OK(lt_backward(ctx, lt_sum(ctx, lt_add(ctx, x, x), LT_AXES_ALL)));
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], 2.0, 0);
    memset(x->grad, 0, sizeof first);
    lt_ctx_reset(ctx);
    REQUIRE_OK(lt_backward(ctx, lt_sum(ctx, lt_mul(ctx, x, x), LT_AXES_ALL)));
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], 2.0 * x->data[i], 1e-6);
    lt_ctx_free(ctx);
    tu_owned_free(x);
}

/* ---- cross-entropy by hand: 2 samples, 3 classes, class weights + label smoothing ----
 * PyTorch's definition written as a target distribution: q = (1-ε)·onehot(y) + ε/C,
 * l_i = -Σ_c w_c q_c log p_c, 'mean' = Σ l_i / Σ w_{y_i}. The op computes it in another
 * form ((1-ε) w_y nll + ε/C Σ w_c (-log p_c)), so this is an independent check. */

TEST(ops_basic_cross_entropy_by_hand) {
    static float logits[6] = {1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 0.0f};
    static float glog[6];
    static const int32_t y[2] = {2, 0};
    static const float w[3] = {1.0f, 2.0f, 0.5f};
    const double eps = 0.3;
    double logp[2][3], l[2], p[2][3];
    for (int i = 0; i < 2; i++) {
        double s = 0;
        for (int c = 0; c < 3; c++) s += exp(logits[i * 3 + c]);
        for (int c = 0; c < 3; c++) {
            logp[i][c] = logits[i * 3 + c] - log(s);
            p[i][c] = exp(logits[i * 3 + c]) / s;
        }
        l[i] = 0;
        for (int c = 0; c < 3; c++) l[i] -= w[c] * ((c == y[i] ? 1 - eps : 0) + eps / 3) * logp[i][c];
    }
    double wsum = w[y[0]] + w[y[1]];
    const struct { lt_reduction red; double want; } red[] = {
        {LT_REDUCE_MEAN, (l[0] + l[1]) / wsum},
        {LT_REDUCE_SUM, l[0] + l[1]},
        {LT_REDUCE_BATCH_MEAN, (l[0] + l[1]) / 2},
    };
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_tensor x = {0};
    REQUIRE_OK(lt_tensor_set_shape(&x, 2, (int64_t[]){2, 3}));
    x.data = logits;
    x.grad = glog;
    x.requires_grad = 1;
    for (int k = 0; k < 3; k++) {
        lt_ctx_reset(ctx);
        memset(glog, 0, sizeof glog);
        lt_tensor *loss = lt_cross_entropy(ctx, &x, y, w, (float)eps, red[k].red);
        REQUIRE(loss != NULL);
        CHECK_EQ_INT(loss->numel, 1);
        CHECK_NEAR(loss->data[0], red[k].want, 1e-6);
        REQUIRE_OK(lt_backward(ctx, loss));
        double div = red[k].red == LT_REDUCE_MEAN ? wsum : red[k].red == LT_REDUCE_SUM ? 1 : 2;
        for (int i = 0; i < 2; i++)
            for (int c = 0; c < 3; c++) {
                /* d l_i / d x_c = p_c Σ_k w_k q_k - w_c q_c */
                double a_sum = 0;
                for (int kk = 0; kk < 3; kk++) a_sum += w[kk] * ((kk == y[i] ? 1 - eps : 0) + eps / 3);
                double qc = (c == y[i] ? 1 - eps : 0) + eps / 3;
                CHECK_NEAR(glog[i * 3 + c], (p[i][c] * a_sum - w[c] * qc) / div, 1e-6);
            }
    }
    /* NONE: per-sample losses. */
    lt_ctx_reset(ctx);
    lt_tensor *ln = lt_cross_entropy(ctx, &x, y, w, (float)eps, LT_REDUCE_NONE);
    REQUIRE(ln != NULL);
    CHECK_EQ_INT(ln->ndim, 1);
    CHECK_EQ_INT(ln->shape[0], 2);
    CHECK_NEAR(ln->data[0], l[0], 1e-6);
    CHECK_NEAR(ln->data[1], l[1], 1e-6);
    /* Labels and weights are copied: changing the caller's arrays after the call does not
     * change the gradient. */
    lt_ctx_reset(ctx);
    memset(glog, 0, sizeof glog);
    int32_t ylocal[2] = {2, 0};
    float wlocal[3] = {1.0f, 2.0f, 0.5f};
    lt_tensor *lm = lt_cross_entropy(ctx, &x, ylocal, wlocal, (float)eps, LT_REDUCE_SUM);
    REQUIRE(lm != NULL);
    ylocal[0] = 1;
    ylocal[1] = 1;
    wlocal[0] = wlocal[1] = wlocal[2] = 100.0f;
    REQUIRE_OK(lt_backward(ctx, lm));
    double a0 = 0;
    for (int kk = 0; kk < 3; kk++) a0 += w[kk] * ((kk == 2 ? 1 - eps : 0) + eps / 3);
    CHECK_NEAR(glog[2], p[0][2] * a0 - w[2] * (1 - eps + eps / 3), 1e-6);
    lt_ctx_free(ctx);
}

TEST(ops_basic_cross_entropy_label_out_of_range) {
    static float logits[6] = {0};
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_tensor *x = lt_tensor_wrap(ctx, logits, 2, (int64_t[]){2, 3});
    REQUIRE(x != NULL);
    const int32_t bad_hi[2] = {0, 3}, bad_neg[2] = {-1, 0};
    CHECK(lt_cross_entropy(ctx, x, bad_hi, NULL, 0, LT_REDUCE_MEAN) == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_ARG);
    CHECK(strstr(lt_ctx_error(ctx), "labels[1] = 3") != NULL);
    CHECK(strstr(lt_ctx_error(ctx), "[0, 3)") != NULL);
    lt_ctx_reset(ctx);
    x = lt_tensor_wrap(ctx, logits, 2, (int64_t[]){2, 3});
    CHECK(lt_cross_entropy(ctx, x, bad_neg, NULL, 0, LT_REDUCE_MEAN) == NULL);
    CHECK(strstr(lt_ctx_error(ctx), "labels[0] = -1") != NULL);
    lt_ctx_free(ctx);
}

/* ---- same bits for any thread count ---- */

static void run_big(lt_ctx *ctx, lt_tensor *x, lt_tensor *b, lt_tensor *w, float *outs, int64_t *n_out) {
    lt_ctx_reset(ctx);
    memset(x->grad, 0, (size_t)x->numel * sizeof(float));
    memset(b->grad, 0, (size_t)b->numel * sizeof(float));
    memset(w->grad, 0, (size_t)w->numel * sizeof(float));
    lt_tensor *h = lt_add(ctx, x, b);                               /* broadcast: colsum backward */
    lt_tensor *s1 = lt_sum(ctx, h, 0x7);                            /* (C): leading axes */
    lt_tensor *s2 = lt_mean(ctx, lt_prelu(ctx, h, b), LT_AXES_ALL);
    lt_tensor *f = lt_reshape(ctx, h, 2, (int64_t[]){-1, x->shape[3]});
    lt_tensor *cs = lt_cosine_sim(ctx, f, w, 1e-12f);
    lt_tensor *sm = lt_log_softmax(ctx, cs);
    lt_tensor *loss = lt_add(ctx, lt_add(ctx, lt_mean(ctx, sm, LT_AXES_ALL), s2),
                             lt_sum(ctx, lt_mul(ctx, s1, s1), LT_AXES_ALL));
    if (lt_backward(ctx, loss) != LT_OK) { *n_out = -1; return; }
    int64_t k = 0;
    const lt_tensor *res[] = {s1, s2, cs, sm, loss};
    for (int i = 0; i < 5; i++) { memcpy(outs + k, res[i]->data, (size_t)res[i]->numel * sizeof(float)); k += res[i]->numel; }
    memcpy(outs + k, x->grad, (size_t)x->numel * sizeof(float)); k += x->numel;
    memcpy(outs + k, b->grad, (size_t)b->numel * sizeof(float)); k += b->numel;
    memcpy(outs + k, w->grad, (size_t)w->numel * sizeof(float)); k += w->numel;
    *n_out = k;
}

TEST(ops_basic_thread_count_invariant) {
    const int64_t sx[4] = {32, 16, 16, 16}, sb[1] = {16}, sw[2] = {10, 16};
    lt_tensor *x = tu_owned_new("x", 4, sx), *b = tu_owned_new("b", 1, sb), *w = tu_owned_new("w", 2, sw);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(x && b && w && ctx);
    lt_rng r;
    lt_rng_init(&r, 11, LT_STREAM_TEST);
    fill(x, G_ANY, &r);
    fill(b, G_POS, &r);
    fill(w, G_ANY, &r);
    int64_t cap = 2 * (x->numel + 16 * 10) + 1000 + x->numel / 16 * 10 * 2;
    float *o1 = malloc((size_t)cap * sizeof(float)), *o2 = malloc((size_t)cap * sizeof(float));
    REQUIRE(o1 && o2);
    int saved = lt_get_threads();
    int64_t n1 = 0, n2 = 0;
    lt_set_threads(1);
    run_big(ctx, x, b, w, o1, &n1);
    lt_set_threads(saved > 1 ? saved : 2);
    run_big(ctx, x, b, w, o2, &n2);
    lt_set_threads(saved);
    CHECK(n1 > 0);
    CHECK_EQ_INT(n1, n2);
    if (n1 == n2 && n1 > 0) CHECK(memcmp(o1, o2, (size_t)n1 * sizeof(float)) == 0);
    /* Sums accumulate in double, so reordering rarely shows after rounding to float. Make it
     * show: one column holds +1e20 and -1e20, which absorb whatever is summed beside them,
     * so the result depends on exactly which elements share a partial sum. */
    float saved0 = x->data[0], savedl = x->data[x->numel - 16];
    x->data[0] = 1e20f;
    x->data[x->numel - 16] = -1e20f;
    float col[2][16], all[2];
    for (int t = 0; t < 2; t++) {
        lt_set_threads(t == 0 ? 1 : (saved > 1 ? saved : 2));
        lt_ctx_reset(ctx);
        lt_tensor *c = lt_sum(ctx, x, 0x7), *a = lt_sum(ctx, x, LT_AXES_ALL);
        REQUIRE(c && a);
        memcpy(col[t], c->data, sizeof col[t]);
        all[t] = a->data[0];
    }
    lt_set_threads(saved);
    x->data[0] = saved0;
    x->data[x->numel - 16] = savedl;
    CHECK(memcmp(col[0], col[1], sizeof col[0]) == 0);
    CHECK(memcmp(&all[0], &all[1], sizeof all[0]) == 0);
    free(o1);
    free(o2);
    lt_ctx_free(ctx);
    tu_owned_free(x);
    tu_owned_free(b);
    tu_owned_free(w);
}

/* ---- a training-like step of these ops makes no heap allocation after warm-up ---- */

TEST(ops_basic_no_allocation_after_warmup) {
    const int64_t sx[4] = {8, 8, 8, 8}, sb[1] = {8};
    lt_tensor *x = tu_owned_new("x", 4, sx), *b = tu_owned_new("b", 1, sb);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(x && b && ctx);
    lt_rng r;
    lt_rng_init(&r, 12, LT_STREAM_TEST);
    fill(x, G_ANY, &r);
    fill(b, G_ANY, &r);
    static const int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int step = 0; step < 4; step++) {
        uint64_t before = lt_alloc_count();
        lt_ctx_reset(ctx);
        lt_tensor *h = lt_relu(ctx, lt_add(ctx, x, b));
        h = lt_add(ctx, lt_shortcut_a(ctx, h, 16, 2), lt_shortcut_a(ctx, x, 16, 2));
        lt_tensor *f = lt_mean(ctx, h, 0x6);                                   /* (8, 16) */
        lt_tensor *logits = lt_scale(ctx, lt_slice(ctx, f, 1, 0, 10), 4.0f);   /* (8, 10) */
        lt_tensor *loss = lt_cross_entropy(ctx, logits, labels, NULL, 0.1f, LT_REDUCE_MEAN);
        REQUIRE_OK(lt_backward(ctx, loss));
        if (step >= 2) CHECK_EQ_INT(lt_alloc_count() - before, 0);
    }
    lt_ctx_free(ctx);
    tu_owned_free(x);
    tu_owned_free(b);
}

TEST(ops_basic_no_tape_without_grad) {
    const int64_t s[2] = {2, 3};
    lt_tensor *x = tu_owned_new("x", 2, s);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(x && ctx);
    lt_ctx_set_grad(ctx, 0);
    lt_tensor *y = lt_softmax(ctx, lt_relu(ctx, lt_add_scalar(ctx, x, 1.0f)));
    REQUIRE(y != NULL);
    CHECK_EQ_INT(lt_ctx_tape_len(ctx), 0);
    CHECK_EQ_INT(y->requires_grad, 0);
    CHECK_NEAR(y->data[0], 1.0 / 3.0, 1e-7);   /* x = 0: uniform softmax */
    lt_ctx_set_grad(ctx, 1);
    lt_ctx_reset(ctx);
    y = lt_relu(ctx, x);
    CHECK_EQ_INT(lt_ctx_tape_len(ctx), 1);
    CHECK_EQ_INT(y->requires_grad, 1);
    lt_ctx_free(ctx);
    tu_owned_free(x);
}

/* More inputs than a tape node holds: the gradient still reaches an input that is not
 * the first, when it is the only one that needs a gradient. */
TEST(ops_basic_concat_many_inputs) {
    static float d[5][2], g4[2];
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_tensor *xs[5];
    for (int k = 0; k < 5; k++) {
        d[k][0] = (float)k;
        d[k][1] = (float)(10 * k);
        xs[k] = lt_tensor_wrap(ctx, d[k], 1, (int64_t[]){2});
        REQUIRE(xs[k] != NULL);
    }
    xs[3]->grad = g4;
    xs[3]->requires_grad = 1;
    lt_tensor *y = lt_concat(ctx, xs, 5, 0);
    REQUIRE(y != NULL);
    CHECK_EQ_INT(y->shape[0], 10);
    CHECK_NEAR(y->data[7], 30.0, 0);
    float w[10];
    for (int i = 0; i < 10; i++) w[i] = (float)(i + 1);
    REQUIRE_OK(lt_backward(ctx, lt_sum(ctx, lt_mul(ctx, y, lt_tensor_wrap(ctx, w, 1, (int64_t[]){10})), LT_AXES_ALL)));
    CHECK_NEAR(g4[0], 7.0, 0);
    CHECK_NEAR(g4[1], 8.0, 0);
    lt_ctx_free(ctx);
}

/* ---- shapes and values of the shape-changing ops, spot-checked by index ---- */

TEST(ops_basic_shape_semantics) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    float xs[2 * 4 * 4 * 2];
    for (int i = 0; i < 64; i++) xs[i] = (float)i;
    lt_tensor *x = lt_tensor_wrap(ctx, xs, 4, (int64_t[]){2, 4, 4, 2});
    /* option A: (2,4,4,2) -> (2,2,2,6): channels [0 0 x0 x1 0 0] from x[n, 2oy, 2ox, :] */
    lt_tensor *s = lt_shortcut_a(ctx, x, 6, 2);
    REQUIRE(s != NULL);
    CHECK_EQ_INT(s->shape[1], 2);
    CHECK_EQ_INT(s->shape[3], 6);
    for (int n = 0; n < 2; n++)
        for (int oy = 0; oy < 2; oy++)
            for (int ox = 0; ox < 2; ox++)
                for (int c = 0; c < 6; c++) {
                    float got = s->data[((n * 2 + oy) * 2 + ox) * 6 + c];
                    float want = (c == 2 || c == 3) ? xs[((n * 4 + 2 * oy) * 4 + 2 * ox) * 2 + (c - 2)] : 0.0f;
                    CHECK_NEAR(got, want, 0);
                }
    /* sum over all axes gives shape (1) */
    lt_tensor *t = lt_sum(ctx, x, LT_AXES_ALL);
    REQUIRE(t != NULL);
    CHECK_EQ_INT(t->ndim, 1);
    CHECK_EQ_INT(t->shape[0], 1);
    CHECK_NEAR(t->data[0], 63.0 * 64 / 2, 0);
    /* reduced axes are removed */
    lt_tensor *m = lt_mean(ctx, x, 0x6);
    REQUIRE(m != NULL);
    CHECK_EQ_INT(m->ndim, 2);
    CHECK_EQ_INT(m->shape[0], 2);
    CHECK_EQ_INT(m->shape[1], 2);
    /* row_l2norm of a vector: shape (1) */
    lt_tensor *v = lt_tensor_wrap(ctx, xs, 1, (int64_t[]){3});
    lt_tensor *nv = lt_row_l2norm(ctx, v);
    REQUIRE(nv != NULL);
    CHECK_EQ_INT(nv->ndim, 1);
    CHECK_NEAR(nv->data[0], sqrt(0 + 1 + 4), 1e-6);
    /* resize to the same size is a copy */
    lt_tensor *rz = lt_resize_nearest(ctx, x, 4, 4);
    REQUIRE(rz != NULL);
    CHECK(memcmp(rz->data, xs, sizeof xs) == 0);
    /* softmax of huge logits stays finite (max subtracted) */
    float big[3] = {1000.0f, 1001.0f, 999.0f};
    lt_tensor *sm = lt_softmax(ctx, lt_tensor_wrap(ctx, big, 1, (int64_t[]){3}));
    REQUIRE(sm != NULL);
    double e1 = exp(-1.0), e2 = exp(-2.0), z = 1 + e1 + e2;
    CHECK_NEAR(sm->data[1], 1 / z, 1e-6);
    CHECK_NEAR(sm->data[2], e2 / z, 1e-6);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_OK);
    lt_ctx_free(ctx);
}

/* ---- errors: NULL + status + a message naming the op ---- */

#define EXPECT_FAIL(expr, code, needle)                                                       \
    do {                                                                                      \
        lt_ctx_reset(ctx);                                                                    \
        a = lt_tensor_wrap(ctx, buf, 2, (int64_t[]){2, 3});                                   \
        b = lt_tensor_wrap(ctx, buf, 2, (int64_t[]){3, 2});                                   \
        x4 = lt_tensor_wrap(ctx, buf, 4, (int64_t[]){1, 2, 2, 3});                            \
        lt_tensor *r_ = (expr);                                                               \
        if (r_ != NULL) lt_test_fail(__FILE__, __LINE__, "%s: expected NULL", #expr);        \
        if (lt_ctx_status(ctx) != (code))                                                     \
            lt_test_fail(__FILE__, __LINE__, "%s: status %s, want %s", #expr,                 \
                         lt_status_name(lt_ctx_status(ctx)), lt_status_name(code));           \
        if (!strstr(lt_ctx_error(ctx), (needle)))                                             \
            lt_test_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", #expr,        \
                         lt_ctx_error(ctx), (needle));                                        \
    } while (0)

TEST(ops_basic_errors) {
    static float buf[64];
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_tensor *a, *b, *x4, *none = NULL;
    const int32_t lab[2] = {0, 1};
    EXPECT_FAIL(lt_add(ctx, a, b), LT_ERR_SHAPE, "add: b (3, 2) does not broadcast to a (2, 3)");
    EXPECT_FAIL(lt_mul(ctx, a, lt_tensor_wrap(ctx, buf, 1, (int64_t[]){2})), LT_ERR_SHAPE, "mul: b (2)");
    EXPECT_FAIL(lt_div(ctx, none, a), LT_ERR_ARG, "div: input 0 is NULL");
    EXPECT_FAIL(lt_sub(ctx, a, none), LT_ERR_ARG, "sub: input 1 is NULL");
    EXPECT_FAIL(lt_exp(ctx, none), LT_ERR_ARG, "exp: input 0 is NULL");
    EXPECT_FAIL(lt_clamp(ctx, a, 1.0f, -1.0f), LT_ERR_ARG, "clamp: lo 1 > hi -1");
    EXPECT_FAIL(lt_relu(ctx, none), LT_ERR_ARG, "relu: input 0 is NULL");
    EXPECT_FAIL(lt_prelu(ctx, a, b), LT_ERR_SHAPE, "prelu: alpha (3, 2) must have shape (3)");
    EXPECT_FAIL(lt_sign_ste(ctx, a, (lt_ste)7), LT_ERR_ARG, "sign_ste: estimator 7");
    EXPECT_FAIL(lt_sum(ctx, a, 0x4), LT_ERR_ARG, "sum: axes mask 0x4 names an axis >= 2");
    EXPECT_FAIL(lt_mean(ctx, a, 0), LT_ERR_ARG, "mean: axes mask is 0");
    EXPECT_FAIL(lt_softmax(ctx, none), LT_ERR_ARG, "softmax: input 0 is NULL");
    EXPECT_FAIL(lt_cross_entropy(ctx, x4, lab, NULL, 0, LT_REDUCE_MEAN), LT_ERR_SHAPE,
                "cross_entropy: logits must be (B, C), got (1, 2, 2, 3)");
    EXPECT_FAIL(lt_cross_entropy(ctx, a, NULL, NULL, 0, LT_REDUCE_MEAN), LT_ERR_ARG, "cross_entropy: labels is NULL");
    EXPECT_FAIL(lt_cross_entropy(ctx, a, lab, NULL, 1.5f, LT_REDUCE_MEAN), LT_ERR_ARG, "label_smoothing 1.5");
    EXPECT_FAIL(lt_cross_entropy(ctx, a, lab, NULL, 0, (lt_reduction)9), LT_ERR_ARG, "reduction 9");
    EXPECT_FAIL(lt_normalize_rows(ctx, a, 0.0f), LT_ERR_ARG, "normalize_rows: eps 0 must be > 0");
    EXPECT_FAIL(lt_cosine_sim(ctx, a, b, 1e-12f), LT_ERR_SHAPE, "cosine_sim: expected a (N, D) and b (M, D), got a (2, 3) and b (3, 2)");
    EXPECT_FAIL(lt_cosine_sim(ctx, x4, a, 1e-12f), LT_ERR_SHAPE, "cosine_sim");
    EXPECT_FAIL(lt_concat(ctx, (lt_tensor *[]){a, b}, 2, 0), LT_ERR_SHAPE, "concat: input 1 (3, 2) does not match input 0 (2, 3)");
    EXPECT_FAIL(lt_concat(ctx, (lt_tensor *[]){a, none}, 2, 0), LT_ERR_ARG, "concat: input 1 is NULL");
    EXPECT_FAIL(lt_concat(ctx, (lt_tensor *[]){a}, 1, 2), LT_ERR_ARG, "concat: axis 2 is outside [0, 2)");
    EXPECT_FAIL(lt_slice(ctx, a, 1, 2, 2), LT_ERR_SHAPE, "slice: [2, 2 + 2) does not fit axis 1 of x (2, 3)");
    EXPECT_FAIL(lt_slice(ctx, a, 5, 0, 1), LT_ERR_ARG, "slice: axis 5");
    EXPECT_FAIL(lt_reshape(ctx, a, 2, (int64_t[]){4, 2}), LT_ERR_SHAPE, "reshape: x (2, 3) has 6 elements, which shape (4, 2) cannot hold");
    EXPECT_FAIL(lt_reshape(ctx, a, 2, (int64_t[]){-1, 4}), LT_ERR_SHAPE, "shape (-1, 4) cannot hold");
    EXPECT_FAIL(lt_resize_nearest(ctx, a, 4, 4), LT_ERR_SHAPE, "resize_nearest: x must be NHWC (N, H, W, C), got (2, 3)");
    EXPECT_FAIL(lt_resize_nearest(ctx, x4, 0, 4), LT_ERR_SHAPE, "resize_nearest: output size 0x4");
    EXPECT_FAIL(lt_shortcut_a(ctx, x4, 2, 2), LT_ERR_SHAPE, "shortcut_a: out_c 2 is less than the 3 input channels");
    EXPECT_FAIL(lt_shortcut_a(ctx, x4, 6, 0), LT_ERR_ARG, "shortcut_a: stride 0");
    /* Sticky: after an error every op returns NULL, and the first message stays. */
    EXPECT_FAIL(lt_relu(ctx, lt_add(ctx, a, b)), LT_ERR_SHAPE, "add: b (3, 2)");
    CHECK(lt_relu(ctx, a) == NULL);
    CHECK(strstr(lt_ctx_error(ctx), "add:") != NULL);
    lt_ctx_free(ctx);
}
