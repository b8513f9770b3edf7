/* Long-tail losses (include/longtail/loss.h): every loss's value on a hand-computed case
 * (B = 2, C = 3), its value and input gradients against PyTorch autograd on the authors'
 * formulas (tests/fixtures/fx_loss.py -> loss.safetensors), finite-difference gradient
 * checks of every loss, the per-class helpers against their formulas (class-balanced
 * weights, DRW switching epoch, LDAM margins, label-aware smoothing, EQL masks, the softmax
 * EQL Bernoulli frequency), the teacher detach of KD, and the error paths. */
#include "test.h"
#include "test_util.h"
#include "longtail/io.h"

#include <stdlib.h>
#include <string.h>

/* Caller-owned inputs (gradcheck needs grad buffers that outlive the arena):
 * tu_owned_new / tu_owned_from / tu_owned_free in tests/test_util.c. */

static lt_tensor *no_grad(lt_tensor *t) {
    if (t) t->requires_grad = 0;
    return t;
}

static void zero_grad(lt_tensor *t) { memset(t->grad, 0, (size_t)t->numel * sizeof(float)); }

/* ---- the case table, shared by the gradient checks and the PyTorch fixtures ---- */

enum kind {
    K_CB_SOFTMAX, K_CB_SOFTMAX_BCE, K_FOCAL, K_CB_SIGMOID, K_CB_FOCAL, K_LDAM, K_LDAM_COS,
    K_BALANCED, K_LA, K_EQL, K_SEQL, K_SEQL_MASK, K_LAS, K_KD, K_COSDIST, K_IWB, K_WD, K_FR,
};

enum gen { G_LOGIT, G_COS, G_ANY };

typedef struct in_spec { int ndim; int64_t shape[3]; enum gen gen; int no_grad; } in_spec;

typedef struct loss_case {
    const char *name;
    enum kind kind;
    int n_in;
    in_spec in[3];
    float f0, f1;     /* γ | τ | λ | T | ε_h ; γ (seql) | ε_t */
    int i0;           /* reduction | IWB hc */
    int i1, i2, i3;   /* IWB divergence, batch_mean, log2_nc */
    double beta;      /* class weights: 0 none, else class-balanced with this β */
} loss_case;

#define LOGITS {2, {6, 5}, G_LOGIT, 0}
#define COSL {2, {6, 5}, G_COS, 0}
#define FEAT {2, {6, 4}, G_ANY, 0}
#define ROWS {2, {5, 4}, G_ANY, 0}

static const loss_case cases[] = {
    {"cb_softmax_bmean", K_CB_SOFTMAX, 1, {LOGITS}, 0, 0, LT_REDUCE_BATCH_MEAN, 0, 0, 0, 0.999},
    {"cb_softmax_mean", K_CB_SOFTMAX, 1, {LOGITS}, 0, 0, LT_REDUCE_MEAN, 0, 0, 0, 0.999},
    {"cb_softmax_bce", K_CB_SOFTMAX_BCE, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0.999},
    {"cb_softmax_bce_now", K_CB_SOFTMAX_BCE, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0},
    {"focal_g2", K_FOCAL, 1, {LOGITS}, 2.0f, 0, 0, 0, 0, 0, 0},
    {"focal_g1_w", K_FOCAL, 1, {LOGITS}, 1.0f, 0, 0, 0, 0, 0, 0.999},
    {"focal_g05", K_FOCAL, 1, {LOGITS}, 0.5f, 0, 0, 0, 0, 0, 0},
    {"cb_sigmoid_w", K_CB_SIGMOID, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0.999},
    {"cb_sigmoid_now", K_CB_SIGMOID, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0},
    {"cb_focal_g2_w", K_CB_FOCAL, 1, {LOGITS}, 2.0f, 0, 0, 0, 0, 0, 0.999},
    {"cb_focal_g0", K_CB_FOCAL, 1, {LOGITS}, 0.0f, 0, 0, 0, 0, 0, 0},
    {"cb_focal_g05_w", K_CB_FOCAL, 1, {LOGITS}, 0.5f, 0, 0, 0, 0, 0, 0.999},
    {"ldam", K_LDAM, 1, {COSL}, 0, 0, 0, 0, 0, 0, 0},
    {"ldam_drw", K_LDAM, 1, {COSL}, 0, 0, 0, 0, 0, 0, 0.9999},
    {"ldam_cos", K_LDAM_COS, 2, {FEAT, ROWS}, 0, 0, 0, 0, 0, 0, 0.9999},
    {"balanced_softmax", K_BALANCED, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0},
    {"la_tau15", K_LA, 1, {LOGITS}, 1.5f, 0, 0, 0, 0, 0, 0},
    {"eql", K_EQL, 1, {LOGITS}, 0.02f, 0, 0, 0, 0, 0, 0},
    {"seql_g1", K_SEQL, 1, {LOGITS}, 0.02f, 1.0f, 0, 0, 0, 0, 0},
    {"seql_mask", K_SEQL_MASK, 1, {LOGITS}, 0, 0, 0, 0, 0, 0, 0},
    {"las", K_LAS, 1, {LOGITS}, 0.4f, 0.1f, 0, 0, 0, 0, 0},
    {"kd_t4", K_KD, 2, {LOGITS, {2, {6, 5}, G_LOGIT, 1}}, 4.0f, 0, 0, 0, 0, 0, 0},
    {"kd_t1", K_KD, 2, {LOGITS, {2, {6, 5}, G_LOGIT, 1}}, 1.0f, 0, 0, 0, 0, 0, 0},
    {"cosine_distance", K_COSDIST, 2, {{2, {6, 8}, G_ANY, 0}, {2, {6, 8}, G_ANY, 0}}, 0, 0, 0, 0, 0, 0, 0},
    {"iwb_code_sum", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_VECTOR, LT_IWB_KL_CODE, 0, 0, 0},
    {"iwb_paper_mean", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_VECTOR, LT_IWB_KL_PAPER, 1, 0, 0},
    {"iwb_scalar", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_SCALAR, LT_IWB_KL_CODE, 0, 0, 0},
    {"iwb_log2_paper", K_IWB, 2, {FEAT, ROWS}, 0.5f, 0, LT_IWB_HC_VECTOR, LT_IWB_KL_PAPER, 0, 1, 0},
    {"iwb_nc_only", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_NONE, LT_IWB_KL_CODE, 0, 0, 0},
    {"iwb_mse_sum", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_VECTOR, LT_IWB_MSE, 0, 0, 0},
    {"iwb_mse_mean", K_IWB, 2, {FEAT, ROWS}, 0.15f, 0, LT_IWB_HC_VECTOR, LT_IWB_MSE, 1, 0, 0},
    {"weight_decay", K_WD, 3, {{2, {3, 4}, G_ANY, 0}, {1, {5}, G_ANY, 0}, {3, {2, 2, 3}, G_ANY, 0}}, 0, 0, 0, 0, 0, 0, 0},
    {"feature_reg", K_FR, 1, {FEAT}, 0, 0, 0, 0, 0, 0, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* The data the fixture script uses too (fx_loss.py: LABELS, COUNTS). */
static const int32_t LABELS[6] = {2, 0, 4, 4, 1, 3};
static const int64_t COUNTS[5] = {500, 120, 40, 9, 3};

typedef struct case_data {
    const int32_t *labels;
    const int64_t *counts;
    const float *weight;   /* NULL: no class weights */
    const float *mask;     /* softmax-EQL w~ (B·C) */
} case_data;

static lt_tensor *apply(lt_ctx *ctx, const loss_case *c, lt_tensor **in, const case_data *d) {
    switch (c->kind) {
    case K_CB_SOFTMAX: return lt_loss_cb_softmax(ctx, in[0], d->labels, d->weight, (lt_reduction)c->i0);
    case K_CB_SOFTMAX_BCE: return lt_loss_cb_softmax_bce(ctx, in[0], d->labels, d->weight);
    case K_FOCAL: return lt_loss_focal(ctx, in[0], d->labels, d->weight, c->f0);
    case K_CB_SIGMOID: return lt_loss_cb_sigmoid(ctx, in[0], d->labels, d->weight);
    case K_CB_FOCAL: return lt_loss_cb_focal(ctx, in[0], d->labels, d->weight, c->f0);
    case K_LDAM: return lt_loss_ldam(ctx, in[0], d->labels, d->counts, 0.5f, 30.0f, d->weight);
    case K_LDAM_COS:
        return lt_loss_ldam(ctx, lt_cosine_sim(ctx, in[0], in[1], 1e-12f), d->labels, d->counts, 0.5f, 30.0f, d->weight);
    case K_BALANCED: return lt_loss_balanced_softmax(ctx, in[0], d->labels, d->counts);
    case K_LA: return lt_loss_logit_adjusted(ctx, in[0], d->labels, d->counts, c->f0);
    case K_EQL: return lt_loss_eql(ctx, in[0], d->labels, d->counts, c->f0);
    case K_SEQL: {
        lt_rng r;   /* re-seeded on every call: the gradient check evaluates the loss many times */
        lt_rng_init(&r, 17, LT_STREAM_LOSS);
        return lt_loss_seql(ctx, in[0], d->labels, d->counts, c->f0, c->f1, &r);
    }
    case K_SEQL_MASK: return lt_loss_seql_weighted(ctx, in[0], d->labels, d->mask);
    case K_LAS: return lt_loss_las(ctx, in[0], d->labels, d->counts, c->f0, c->f1);
    case K_KD: return lt_loss_kd(ctx, in[0], in[1], c->f0);
    case K_COSDIST: return lt_loss_cosine_distance(ctx, in[0], in[1]);
    case K_IWB: {
        lt_iwb_config cfg = lt_iwb_config_default();
        cfg.lambda = c->f0;
        cfg.hc = (lt_iwb_hc)c->i0;
        cfg.divergence = (lt_iwb_divergence)c->i1;
        cfg.batch_mean = c->i2;
        cfg.log2_nc = c->i3;
        return lt_loss_iwb(ctx, in[0], in[1], d->labels, d->counts, &cfg);
    }
    case K_WD: return lt_loss_weight_decay(ctx, in, c->n_in, 5e-3f);
    case K_FR: return lt_loss_feature_reg(ctx, in[0], 0.01f);
    }
    return lt_ctx_fail(ctx, LT_ERR_ARG, "test: unknown loss kind %d", (int)c->kind);
}

/* ---- finite-difference gradient checks ---- */

typedef struct gc_user { const loss_case *c; const case_data *d; } gc_user;

static lt_tensor *gc_fn(lt_ctx *ctx, lt_tensor **in, void *user) {
    gc_user *u = user;
    return apply(ctx, u->c, in, u->d);
}

static void fill(lt_tensor *t, enum gen g, lt_rng *r) {
    for (int64_t i = 0; i < t->numel; i++) {
        float u = lt_rng_uniform(r);
        t->data[i] = g == G_LOGIT ? 6 * u - 3 : g == G_COS ? 1.8f * u - 0.9f : 2 * u - 1;
    }
}

/* Input i of case c (data v, or zeros if v is NULL); no_grad inputs do not require grad. */
static lt_tensor *case_input(const loss_case *c, int i, const float *v) {
    lt_tensor *t = tu_owned_from(c->name, c->in[i].ndim, c->in[i].shape, v);
    return c->in[i].no_grad ? no_grad(t) : t;
}

/* All inputs of case c, filled from stream LT_STREAM_TEST of seed. Returns 0 when out of
 * memory (free in[] all the same). */
static int case_inputs(const loss_case *c, uint64_t seed, lt_tensor **in) {
    lt_rng r;
    lt_rng_init(&r, seed, LT_STREAM_TEST);
    for (int i = 0; i < c->n_in; i++) {
        in[i] = case_input(c, i, NULL);
        if (!in[i]) return 0;
        fill(in[i], c->in[i].gen, &r);
    }
    return 1;
}

static void gradcheck_kinds(int first_kind, int last_kind) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    float mask[30];
    lt_rng mr;
    lt_rng_init(&mr, 3, LT_STREAM_LOSS);
    REQUIRE_OK(lt_seql_weights(&mr, LABELS, 6, COUNTS, 5, 0.02f, 0.6f, mask));
    int ran = 0;
    for (int k = 0; k < N_CASES; k++) {
        const loss_case *c = &cases[k];
        if ((int)c->kind < first_kind || (int)c->kind > last_kind) continue;
        float w[5];
        if (c->beta > 0) REQUIRE_OK(lt_cb_weights(COUNTS, 5, c->beta, w));
        case_data d = {LABELS, COUNTS, c->beta > 0 ? w : NULL, mask};
        lt_tensor *in[3] = {0};
        if (!case_inputs(c, 500 + (uint64_t)k, in)) {
            lt_test_fail(__FILE__, __LINE__, "%s: out of memory", c->name);
        } else {
            gc_user u = {c, &d};
            lt_gradcheck_result res;
            lt_status st = lt_gradcheck(ctx, gc_fn, in, c->n_in, &u, 1e-3, 2e-3, 2e-2, &res);
            tu_gradcheck_ok(c->name, st, &res);
            ran++;
        }
        for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
    }
    CHECK(ran > 0);
    lt_ctx_free(ctx);
}

TEST(loss_gradcheck_softmax) { gradcheck_kinds(K_CB_SOFTMAX, K_FOCAL); }
TEST(loss_gradcheck_sigmoid) { gradcheck_kinds(K_CB_SIGMOID, K_CB_FOCAL); }
TEST(loss_gradcheck_margin_prior) { gradcheck_kinds(K_LDAM, K_LA); }
TEST(loss_gradcheck_equalization_las) { gradcheck_kinds(K_EQL, K_LAS); }
TEST(loss_gradcheck_distill) { gradcheck_kinds(K_KD, K_COSDIST); }
TEST(loss_gradcheck_iwb_regularizers) { gradcheck_kinds(K_IWB, K_FR); }

/* A training step performs no heap allocation after warm-up (design.md): every loss,
 * forward and backward, runs from the arena once it has grown. */
TEST(loss_no_allocation_after_warmup) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    float mask[30], w[5];
    lt_rng mr;
    lt_rng_init(&mr, 3, LT_STREAM_LOSS);
    REQUIRE_OK(lt_seql_weights(&mr, LABELS, 6, COUNTS, 5, 0.02f, 0.6f, mask));
    REQUIRE_OK(lt_cb_weights(COUNTS, 5, 0.999, w));
    for (int k = 0; k < N_CASES; k++) {
        const loss_case *c = &cases[k];
        case_data d = {LABELS, COUNTS, c->beta > 0 ? w : NULL, mask};
        lt_tensor *in[3] = {0};
        REQUIRE(case_inputs(c, 900 + (uint64_t)k, in));
        for (int step = 0; step < 4; step++) {
            uint64_t before = lt_alloc_count();
            lt_ctx_reset(ctx);
            lt_tensor *l = apply(ctx, c, in, &d);
            lt_status st = lt_backward(ctx, l);
            if (st != LT_OK) {
                lt_test_fail(__FILE__, __LINE__, "%s: %s", c->name, lt_last_error());
                break;
            }
            uint64_t n = lt_alloc_count() - before;
            if (step >= 2 && n != 0)
                lt_test_fail(__FILE__, __LINE__, "%s: step %d made %llu heap allocations", c->name, step,
                             (unsigned long long)n);
        }
        for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
    }
    lt_ctx_free(ctx);
}

/* Out of memory anywhere inside a loss (arena blocks, the tape) gives NULL and
 * LT_ERR_NOMEM in the context, never a crash; fail the 1st, 2nd, ... allocation until the
 * loss runs through. */
static long oom_at, oom_calls;
static void *oom_malloc(size_t n, void *u) { (void)u; return ++oom_calls == oom_at ? NULL : malloc(n); }
static void *oom_realloc(void *p, size_t n, void *u) { (void)u; return ++oom_calls == oom_at ? NULL : realloc(p, n); }
static void oom_free(void *p, void *u) { (void)u; free(p); }

TEST(loss_out_of_memory) {
    static const lt_alloc_hook hook = {oom_malloc, oom_realloc, oom_free, NULL};
    float mask[30], w[5];
    lt_rng mr;
    lt_rng_init(&mr, 3, LT_STREAM_LOSS);
    REQUIRE_OK(lt_seql_weights(&mr, LABELS, 6, COUNTS, 5, 0.02f, 0.6f, mask));
    REQUIRE_OK(lt_cb_weights(COUNTS, 5, 0.999, w));
    int failed_total = 0;
    for (int k = 0; k < N_CASES; k++) {
        const loss_case *c = &cases[k];
        case_data d = {LABELS, COUNTS, c->beta > 0 ? w : NULL, mask};
        lt_tensor *in[3] = {0};
        REQUIRE(case_inputs(c, 700 + (uint64_t)k, in));
        for (oom_at = 1; oom_at < 100; oom_at++) {
            lt_ctx *ctx = lt_ctx_new();   /* a fresh arena and tape: every allocation happens */
            REQUIRE(ctx != NULL);
            oom_calls = 0;
            lt_set_alloc_hook(&hook);
            lt_tensor *l = apply(ctx, c, in, &d);
            lt_status st = l ? lt_backward(ctx, l) : lt_ctx_status(ctx);
            lt_set_alloc_hook(NULL);
            int hit = oom_calls >= oom_at;
            lt_ctx_free(ctx);
            if (!hit) {
                if (st != LT_OK) lt_test_fail(__FILE__, __LINE__, "%s: %s without a failed allocation", c->name, lt_last_error());
                break;
            }
            failed_total++;
            if (st != LT_ERR_NOMEM || (l && st == LT_OK))
                lt_test_fail(__FILE__, __LINE__, "%s: allocation %ld failed but the status is %s", c->name, oom_at,
                             lt_status_name(st));
        }
        for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
    }
    CHECK(failed_total >= N_CASES);
}

/* ---- PyTorch fixtures ---- */

static void fixture_case(lt_ctx *ctx, const lt_safetensors *st, const loss_case *c) {
    lt_tensor *in[3] = {0};
    int ok = 1;
    for (int i = 0; i < c->n_in && ok; i++) {
        int64_t numel = 1;
        for (int d = 0; d < c->in[i].ndim; d++) numel *= c->in[i].shape[d];
        char what[16];
        snprintf(what, sizeof what, "in%d", i);
        const float *v = tu_fixture_get(st, c->name, what, LT_DT_F32, numel);
        in[i] = v ? case_input(c, i, v) : NULL;
        ok = in[i] != NULL;
    }
    case_data d = {0};
    if (ok) {
        d.labels = tu_fixture_get(st, c->name, "labels", LT_DT_I32, 6);
        d.counts = tu_fixture_get(st, c->name, "counts", LT_DT_I64, 5);
        ok = d.labels && d.counts;
    }
    if (ok && c->beta > 0) {
        d.weight = tu_fixture_get(st, c->name, "weight", LT_DT_F32, 5);
        ok = d.weight != NULL;
        /* The fixture's weights come from the Python formula; lt_cb_weights must agree. */
        float w[5];
        if (ok && lt_cb_weights(d.counts, 5, c->beta, w) == LT_OK) {
            char what[96];
            snprintf(what, sizeof what, "%s: lt_cb_weights vs fixture", c->name);
            CHECK_CLOSE(what, w, d.weight, 5, 1e-6, 1e-6);
        }
    }
    if (ok && c->kind == K_SEQL_MASK) {
        d.mask = tu_fixture_get(st, c->name, "mask", LT_DT_F32, 30);
        ok = d.mask != NULL;
    }
    if (ok) {
        lt_ctx_reset(ctx);
        for (int i = 0; i < c->n_in; i++) zero_grad(in[i]);
        lt_tensor *y = apply(ctx, c, in, &d);
        const float *want = tu_fixture_get(st, c->name, "out", LT_DT_F32, 1);
        if (!y || !want) {
            lt_test_fail(__FILE__, __LINE__, "%s: %s", c->name, !y ? lt_ctx_error(ctx) : "no fixture value");
        } else {
            char what[96];
            snprintf(what, sizeof what, "%s value", c->name);
            CHECK(y->numel == 1);
            CHECK_CLOSE(what, y->data, want, 1, 1e-5, 1e-4);
            if (lt_backward(ctx, y) == LT_OK) {
                tu_fixture_input_grads(st, c->name, in, c->n_in, 1e-5, 1e-4);
            } else {
                lt_test_fail(__FILE__, __LINE__, "%s: backward: %s", c->name, lt_last_error());
            }
        }
    }
    for (int i = 0; i < c->n_in; i++) tu_owned_free(in[i]);
}

TEST(loss_pytorch_fixtures) {
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("loss.safetensors"), &st));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    for (int k = 0; k < N_CASES; k++) fixture_case(ctx, st, &cases[k]);
    /* every case the fixture script wrote is in the table (a missing table case fails in
     * fixture_case): a fixture case without a test would otherwise pass unnoticed */
    for (int64_t i = 0; i < lt_safetensors_count(st); i++) {
        const char *nm = lt_safetensors_entry(st, i)->name;
        const char *dot = strchr(nm, '.');
        size_t n = dot ? (size_t)(dot - nm) : strlen(nm);
        int found = 0;
        for (int k = 0; k < N_CASES && !found; k++) found = strlen(cases[k].name) == n && !strncmp(cases[k].name, nm, n);
        if (!found) lt_test_fail(__FILE__, __LINE__, "fixture entry %s belongs to no case of the table", nm);
    }
    lt_ctx_free(ctx);
    lt_safetensors_free(st);
}

/* ---- values on a hand-computed case ----
 * B = 2, C = 3, logits z = [[1, 2, 3], [0.5, -1, 0]], labels y = [2, 0], counts n = [100, 10, 1].
 *   p   = softmax(z) = [[0.0900306, 0.2447285, 0.6652410], [0.5465494, 0.1219517, 0.3314990]]
 *   log p           = [[-2.4076060, -1.4076060, -0.4076060], [-0.6041306, -2.1041306, -1.1041306]]
 *   CE_i = −log p_{y_i} = [0.4076060, 0.6041306]
 *   CB weights, β = 0.99: (1 − β)/(1 − β^n) = [0.0157854, 0.1045642, 1] → ×3/Σ =
 *     w = [0.0422375, 0.2800436, 2.6777189];  w_y = [2.6777189, 0.0422375]
 *   σ(z) BCE per element = [[1.3132617, 2.1269280, 0.0485874], [0.4740770, 0.3132617, 0.6931472]]
 * Each number below was worked out from the formula in loss.h in float64 (numpy), not by
 * running longtail. */

typedef struct hand_case { const char *what; double got, want; } hand_case;

TEST(loss_hand_values) {
    static float zv[6] = {1, 2, 3, 0.5f, -1, 0};
    static const int32_t y[2] = {2, 0};
    static const int64_t n[3] = {100, 10, 1};
    const int64_t s23[2] = {2, 3};
    lt_ctx *ctx = lt_ctx_new();
    lt_tensor *z = tu_owned_from("z", 2, s23, zv);
    REQUIRE(ctx && z);
    float w[3];
    REQUIRE_OK(lt_cb_weights(n, 3, 0.99, w));
    CHECK_NEAR(w[0], 0.0422374688, 1e-6);
    CHECK_NEAR(w[1], 0.2800436130, 1e-6);
    CHECK_NEAR(w[2], 2.6777189182, 1e-6);

    /* cosine logits for LDAM: c = [[0.2, -0.4, 0.6], [0.9, 0.1, -0.3]]; margins n^(-1/4)
     * scaled to max 0.5: Δ = [0.1581139, 0.2811707, 0.5]; s = 30. */
    static float cv[6] = {0.2f, -0.4f, 0.6f, 0.9f, 0.1f, -0.3f};
    lt_tensor *cz = tu_owned_from("c", 2, s23, cv);
    /* KD teacher [[3, 1, 0], [0, 0, 1]], T = 2; cosine distance rows fs = [[1,0,0],[1,1,0]],
     * ft = [[0,1,0],[1,1,1]]: cos = [0, 2/√6] -> mean(1 − cos) = (1 + 1 − 0.8164966)/2. */
    static float tv[6] = {3, 1, 0, 0, 0, 1};
    static float fsv[6] = {1, 0, 0, 1, 1, 0}, ftv[6] = {0, 1, 0, 1, 1, 1};
    lt_tensor *zt = no_grad(tu_owned_from("t", 2, s23, tv));
    lt_tensor *fs = tu_owned_from("fs", 2, s23, fsv), *ft = no_grad(tu_owned_from("ft", 2, s23, ftv));
    /* IWB: f = [[1, 0], [0, 1]], W = [[1, 0], [0, 2], [-1, 1]], λ = 0.15, N = 111:
     *   NC = ln(111 / [101, 11, 2]) = [0.0944097, 2.3116349, 4.0163830]
     *   cos(f, W) = [[1, 0, -0.7071068], [0, 1, 0.7071068]], HC = (1 − cos)/2
     *   P = [[0, 0.1733726, 0.5142296], [0.0070807, 0, 0.0882279]], A = [1, 2, 1.4142136] */
    static float fv[4] = {1, 0, 0, 1}, wv[6] = {1, 0, 0, 2, -1, 1};
    lt_tensor *f = tu_owned_from("f", 2, (int64_t[]){2, 2}, fv), *W = tu_owned_from("W", 2, (int64_t[]){3, 2}, wv);
    /* weight decay λ = 0.1 over θ1 = [1, 2], θ2 = [-1, 0.5, 3]: 0.05 · 15.25; feature
     * regularization 0.01 over rows [1, 2], [3, -1]: 0.01 · (5 + 10)/2 / 2. */
    static float t1v[2] = {1, 2}, t2v[3] = {-1, 0.5f, 3}, frv[4] = {1, 2, 3, -1};
    lt_tensor *t1 = tu_owned_from("t1", 1, (int64_t[]){2}, t1v), *t2 = tu_owned_from("t2", 1, (int64_t[]){3}, t2v);
    lt_tensor *fr = tu_owned_from("fr", 2, (int64_t[]){2, 2}, frv);
    REQUIRE(cz && zt && fs && ft && f && W && t1 && t2 && fr);
    lt_iwb_config cfg = lt_iwb_config_default();
    lt_iwb_config cfg_paper = cfg, cfg_scalar = cfg, cfg_mse = cfg, cfg_log2 = cfg;
    cfg_paper.divergence = LT_IWB_KL_PAPER;
    cfg_paper.batch_mean = 1;
    cfg_scalar.hc = LT_IWB_HC_SCALAR;
    cfg_mse.divergence = LT_IWB_MSE;
    cfg_log2.log2_nc = 1;
    float eps[3];
    REQUIRE_OK(lt_las_smoothing(n, 3, 0.4f, 0.1f, eps));
    lt_rng r;
    lt_rng_init(&r, 1, LT_STREAM_LOSS);
    lt_tensor *wd_in[2] = {t1, t2};
#define V(expr) ((lt_ctx_reset(ctx), (t_ = (expr))) ? (double)t_->data[0] : NAN)
    lt_tensor *t_ = NULL;
    const hand_case hc[] = {
        /* Σ_i w_{y_i} CE_i / B = (2.6777189·0.4076060 + 0.0422375·0.6041306) / 2 */
        {"cb_softmax / B", V(lt_loss_cb_softmax(ctx, z, y, w, LT_REDUCE_BATCH_MEAN)), 0.5584855749},
        /* the same sum / (w_2 + w_0) */
        {"cb_softmax / sum w", V(lt_loss_cb_softmax(ctx, z, y, w, LT_REDUCE_MEAN)), 0.4106577426},
        /* −1/6 Σ_i w_{y_i} Σ_k [y log p + (1 − y) log(1 − p)] */
        {"cb_softmax_bce", V(lt_loss_cb_softmax_bce(ctx, z, y, w)), 0.3572796945},
        {"softmax_bce unweighted", V(lt_loss_cb_softmax_bce(ctx, z, y, NULL)), 0.3199216248},
        /* mean_i (1 − e^{−CE_i})² CE_i = mean(0.3347590² · 0.4076060, 0.4534506² · 0.6041306) */
        {"focal γ=2", V(lt_loss_focal(ctx, z, y, NULL, 2.0f)), 0.0849487992},
        /* with weights the CE is w_y CE and p_t = exp(−w_y CE) (LDAM-DRW code) */
        {"focal γ=1 weighted", V(lt_loss_focal(ctx, z, y, w, 1.0f)), 0.3628327141},
        {"focal γ=0 = CE mean", V(lt_loss_focal(ctx, z, y, NULL, 0.0f)), (0.4076059644 + 0.6041306053) / 2},
        /* Σ_i w_{y_i} Σ_k BCE_ik / (B C) */
        {"cb_sigmoid", V(lt_loss_cb_sigmoid(ctx, z, y, w)), 1.5674160473},
        /* Σ w_{y_i} (1 − p_t)² BCE / #positives (= B) */
        {"cb_focal γ=2", V(lt_loss_cb_focal(ctx, z, y, w, 2.0f)), 3.1546372848},
        {"cb_focal γ=0 = C·cb_sigmoid", V(lt_loss_cb_focal(ctx, z, y, w, 0.0f)), 3 * 1.5674160473},
        /* mean_i CE(30 (c − Δ_y onehot)) */
        {"ldam", V(lt_loss_ldam(ctx, cz, y, n, 0.5f, 30.0f, NULL)), 1.5242936852},
        /* Σ w_y l_i / Σ w_y with the β = 0.99 weights (the DRW phase) */
        {"ldam weighted", V(lt_loss_ldam(ctx, cz, y, n, 0.5f, 30.0f, w)), 3.0012466756},
        /* mean_i CE(z + log π), π = n / 111 */
        {"balanced softmax", V(lt_loss_balanced_softmax(ctx, z, y, n)), 1.4650407779},
        {"logit adjusted τ=0.5", V(lt_loss_logit_adjusted(ctx, z, y, n, 0.5f)), 0.6904053327},
        /* λ = 0.05: f = [0.9009, 0.0901, 0.0090], class 2 is rare; the mask zeroes (1, 2)
         * only (row 0's label is class 2 itself): (Σ BCE − 0.6931472) / 2 */
        {"eql", V(lt_loss_eql(ctx, z, y, n, 0.05f)), 2.1380578609},
        /* γ = 1: the same entry is dropped from row 1's denominator */
        {"seql γ=1", V(lt_loss_seql(ctx, z, y, n, 0.05f, 1.0f, &r)), 0.3045096212},
        /* γ = 0: no draw is 1, plain CE */
        {"seql γ=0", V(lt_loss_seql(ctx, z, y, n, 0.05f, 0.0f, &r)), (0.4076059644 + 0.6041306053) / 2},
        /* ε = [0.4, 0.1 + 0.3 sin(π 9/198), 0.1] = [0.4, 0.1426945, 0.1]; ε_y = [0.1, 0.4] */
        {"las", V(lt_loss_las(ctx, z, y, n, 0.4f, 0.1f)), 0.6892016182},
        /* 4 · 1/2 Σ p_t (log p_t − log p_s) at T = 2 */
        {"kd T=2", V(lt_loss_kd(ctx, z, zt, 2.0f)), 1.1599494921},
        {"cosine distance", V(lt_loss_cosine_distance(ctx, fs, ft)), 0.5917517095},
        {"iwb code, sum", V(lt_loss_iwb(ctx, f, W, y, n, &cfg)), 0.1805957895},
        {"iwb paper, mean", V(lt_loss_iwb(ctx, f, W, y, n, &cfg_paper)), 0.0930166140},
        {"iwb scalar HC", V(lt_loss_iwb(ctx, f, W, y, n, &cfg_scalar)), 0.1410106013},
        {"iwb MSE sum", V(lt_loss_iwb(ctx, f, W, y, n, &cfg_mse)), 11.8906655059},
        {"iwb log2 NC", V(lt_loss_iwb(ctx, f, W, y, n, &cfg_log2)), 0.2043948165},
        {"weight decay", V(lt_loss_weight_decay(ctx, wd_in, 2, 0.1f)), 0.7625},
        {"feature reg", V(lt_loss_feature_reg(ctx, fr, 0.01f)), 0.0375},
    };
#undef V
    CHECK(lt_ctx_status(ctx) == LT_OK);
    for (size_t k = 0; k < sizeof hc / sizeof hc[0]; k++)
        if (!(fabs(hc[k].got - hc[k].want) <= 1e-5 * (1 + fabs(hc[k].want))))
            lt_test_fail(__FILE__, __LINE__, "%s: got %.9g, want %.9g", hc[k].what, hc[k].got, hc[k].want);
    CHECK_NEAR(eps[1], 0.1426944515, 1e-6);
    lt_ctx_free(ctx);
    tu_owned_free(z);
    tu_owned_free(cz);
    tu_owned_free(zt);
    tu_owned_free(fs);
    tu_owned_free(ft);
    tu_owned_free(f);
    tu_owned_free(W);
    tu_owned_free(t1);
    tu_owned_free(t2);
    tu_owned_free(fr);
}

/* ---- per-class helpers ---- */

TEST(loss_cb_weights_formula) {
    static const int64_t n[5] = {500, 120, 40, 9, 3};
    const double betas[] = {0.0, 0.9, 0.999, 0.9999};
    for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
        float w[5];
        REQUIRE_OK(lt_cb_weights(n, 5, betas[b], w));
        double raw[5], sum = 0, wsum = 0;
        for (int c = 0; c < 5; c++) {
            raw[c] = (1 - betas[b]) / (1 - pow(betas[b], (double)n[c]));
            sum += raw[c];
        }
        for (int c = 0; c < 5; c++) {
            CHECK_NEAR(w[c], raw[c] / sum * 5, 1e-6 * (1 + raw[c] / sum * 5));
            wsum += w[c];
            if (c > 0) CHECK(betas[b] == 0 ? w[c] == w[c - 1] : w[c] > w[c - 1]);  /* tail weighs more */
        }
        CHECK_NEAR(wsum, 5.0, 1e-5);
        if (betas[b] == 0)
            for (int c = 0; c < 5; c++) CHECK_NEAR(w[c], 1.0, 0);
    }
    float w[5];
    CHECK(lt_cb_weights(n, 5, 1.0, w) == LT_ERR_ARG);
    CHECK(lt_cb_weights(n, 5, -0.1, w) == LT_ERR_ARG);
    static const int64_t zero[2] = {4, 0};
    CHECK(lt_cb_weights(zero, 2, 0.9, w) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "class_counts[1]") != NULL);
}

TEST(loss_drw_switches_at_epoch) {
    static const int64_t n[5] = {500, 120, 40, 9, 3};
    float cb[5], w[5];
    REQUIRE_OK(lt_cb_weights(n, 5, 0.9999, cb));
    const int64_t drw = 160;
    for (int64_t epoch = 0; epoch < 200; epoch++) {
        REQUIRE_OK(lt_drw_weights(epoch, drw, 0.9999, n, 5, w));
        int ones = 1, same_cb = 1;
        for (int c = 0; c < 5; c++) {
            ones &= w[c] == 1.0f;
            same_cb &= w[c] == cb[c];
        }
        if (epoch < drw) {
            if (!ones) lt_test_fail(__FILE__, __LINE__, "epoch %lld: weights are not all ones before DRW", (long long)epoch);
        } else if (!same_cb || ones) {
            lt_test_fail(__FILE__, __LINE__, "epoch %lld: weights are not the CB weights after DRW", (long long)epoch);
        }
    }
}

TEST(loss_ldam_margins) {
    static const int64_t n[5] = {500, 120, 40, 9, 3};
    float d[5];
    REQUIRE_OK(lt_ldam_margins(n, 5, 0.5f, d));
    CHECK_NEAR(d[4], 0.5, 1e-7);   /* the rarest class gets max_m */
    for (int c = 0; c < 5; c++) CHECK_NEAR(d[c] / d[4], pow((double)n[4] / (double)n[c], 0.25), 1e-6);
    CHECK(lt_ldam_margins(n, 5, -1.0f, d) == LT_ERR_ARG);
}

TEST(loss_las_factors) {
    static const int64_t n[4] = {400, 100, 25, 4};
    float e[4];
    REQUIRE_OK(lt_las_smoothing(n, 4, 0.4f, 0.1f, e));
    CHECK_NEAR(e[0], 0.4, 1e-7);   /* head: ε_h */
    CHECK_NEAR(e[3], 0.1, 1e-7);   /* tail: ε_t */
    const double pi = 3.14159265358979323846;
    CHECK_NEAR(e[1], 0.1 + 0.3 * sin(pi * 96.0 / (2 * 396.0)), 1e-6);
    CHECK_NEAR(e[2], 0.1 + 0.3 * sin(pi * 21.0 / (2 * 396.0)), 1e-6);
    static const int64_t flat[3] = {7, 7, 7};
    REQUIRE_OK(lt_las_smoothing(flat, 3, 0.4f, 0.1f, e));
    for (int c = 0; c < 3; c++) CHECK_NEAR(e[c], 0.4, 1e-7);
    CHECK(lt_las_smoothing(n, 4, 1.5f, 0.1f, e) == LT_ERR_ARG);
}

/* EQL masks: with counts [500, 120, 40, 9, 3] (N = 672) and λ = 0.02, classes 3 and 4 are
 * rare (f = 0.0134, 0.0045); every (i, k) with k rare and k ≠ y_i is zeroed, nothing else.
 * The same entries get exactly zero gradient through lt_loss_eql and lt_loss_seql (γ = 1),
 * every other entry a non-zero one. */
TEST(loss_eql_masks) {
    float w[30];
    REQUIRE_OK(lt_eql_weights(LABELS, 6, COUNTS, 5, 0.02f, w));
    int zeroed = 0;
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 5; k++) {
            int want0 = (k == 3 || k == 4) && k != LABELS[i];
            CHECK_NEAR(w[i * 5 + k], want0 ? 0.0 : 1.0, 0);
            zeroed += want0;
        }
    CHECK_EQ_INT(zeroed, 9);   /* 6 rows × 2 rare classes − 3 rows labelled 3 or 4 */
    float none[30];
    REQUIRE_OK(lt_eql_weights(LABELS, 6, COUNTS, 5, 0.0f, none));   /* λ = 0: nothing is rare */
    for (int k = 0; k < 30; k++) CHECK_NEAR(none[k], 1.0, 0);

    lt_ctx *ctx = lt_ctx_new();
    lt_tensor *z = tu_owned_new("z", 2, (int64_t[]){6, 5});
    REQUIRE(ctx && z);
    lt_rng r;
    lt_rng_init(&r, 2, LT_STREAM_TEST);
    fill(z, G_LOGIT, &r);
    for (int which = 0; which < 2; which++) {
        lt_ctx_reset(ctx);
        zero_grad(z);
        lt_rng d;
        lt_rng_init(&d, 8, LT_STREAM_LOSS);
        lt_tensor *l = which == 0 ? lt_loss_eql(ctx, z, LABELS, COUNTS, 0.02f)
                                  : lt_loss_seql(ctx, z, LABELS, COUNTS, 0.02f, 1.0f, &d);
        REQUIRE(l != NULL);
        REQUIRE_OK(lt_backward(ctx, l));
        for (int k = 0; k < 30; k++) {
            if (w[k] == 0.0f && z->grad[k] != 0.0f)
                lt_test_fail(__FILE__, __LINE__, "%s: masked entry %d has gradient %g", which ? "seql" : "eql", k, z->grad[k]);
            if (w[k] != 0.0f && z->grad[k] == 0.0f)
                lt_test_fail(__FILE__, __LINE__, "%s: unmasked entry %d has zero gradient", which ? "seql" : "eql", k);
        }
    }
    lt_ctx_free(ctx);
    tu_owned_free(z);
}

/* Softmax EQL's β ~ Bernoulli(γ): over many seeded draws, the fraction of eligible entries
 * (rare class, not the label) that are dropped is γ within 5 standard errors; labels and
 * frequent classes are never dropped; the same seed gives the same masks. */
TEST(loss_seql_bernoulli_frequency) {
    enum { B = 500, Cn = 5, ROUNDS = 40 };
    static int32_t y[B];
    static float w[B * Cn], w2[B * Cn];
    for (int i = 0; i < B; i++) y[i] = (int32_t)(i % Cn);
    const float gammas[2] = {0.9f, 0.3f};
    for (int g = 0; g < 2; g++) {
        lt_rng r, r2;
        lt_rng_init(&r, 42, LT_STREAM_LOSS);
        lt_rng_init(&r2, 42, LT_STREAM_LOSS);
        int64_t eligible = 0, dropped = 0, bad = 0, differ = 0;
        for (int round = 0; round < ROUNDS; round++) {
            REQUIRE_OK(lt_seql_weights(&r, y, B, COUNTS, Cn, 0.02f, gammas[g], w));
            REQUIRE_OK(lt_seql_weights(&r2, y, B, COUNTS, Cn, 0.02f, gammas[g], w2));
            differ += memcmp(w, w2, sizeof w) != 0;
            for (int i = 0; i < B; i++)
                for (int k = 0; k < Cn; k++) {
                    float v = w[i * Cn + k];
                    if ((k == 3 || k == 4) && k != y[i]) {
                        eligible++;
                        dropped += v == 0.0f;
                        bad += v != 0.0f && v != 1.0f;
                    } else {
                        bad += v != 1.0f;
                    }
                }
        }
        double frac = (double)dropped / (double)eligible;
        double se = sqrt(gammas[g] * (1 - gammas[g]) / (double)eligible);
        if (!(fabs(frac - gammas[g]) <= 5 * se))
            lt_test_fail(__FILE__, __LINE__, "gamma %g: dropped fraction %.4f over %lld draws (se %.4f)",
                         (double)gammas[g], frac, (long long)eligible, se);
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(differ, 0);
    }
    /* A different seed gives different masks. */
    lt_rng a, b;
    lt_rng_init(&a, 1, LT_STREAM_LOSS);
    lt_rng_init(&b, 2, LT_STREAM_LOSS);
    REQUIRE_OK(lt_seql_weights(&a, y, B, COUNTS, Cn, 0.02f, 0.5f, w));
    REQUIRE_OK(lt_seql_weights(&b, y, B, COUNTS, Cn, 0.02f, 0.5f, w2));
    CHECK(memcmp(w, w2, sizeof w) != 0);
}

TEST(loss_sigmoid_bias_init) {
    CHECK_NEAR(lt_loss_sigmoid_bias_init(100), -4.5951198501, 1e-6);
    CHECK_NEAR(lt_loss_sigmoid_bias_init(2), 0.0, 0);
    CHECK(isnan(lt_loss_sigmoid_bias_init(1)));
    /* the prior it encodes: σ(b) = 1/C */
    for (int64_t C = 2; C <= 1000; C *= 3) {
        double b = lt_loss_sigmoid_bias_init(C);
        CHECK_NEAR(1.0 / (1.0 + exp(-b)), 1.0 / (double)C, 1e-7);
    }
}

/* At z = 0 the sigmoid BCE's derivative is σ(0) − y = ±1/2 (a composition through relu and
 * abs would give 0 there); cb_sigmoid divides by B·C and weights by w_{y_i}. */
TEST(loss_sigmoid_zero_logits) {
    lt_ctx *ctx = lt_ctx_new();
    lt_tensor *z = tu_owned_new("z", 2, (int64_t[]){2, 3});
    REQUIRE(ctx && z);
    static const int32_t y[2] = {1, 2};
    static const float w[3] = {0.5f, 2.0f, 4.0f};
    lt_tensor *l = lt_loss_cb_sigmoid(ctx, z, y, w);
    REQUIRE(l != NULL);
    CHECK_NEAR(l->data[0], (2.0 * 3 + 4.0 * 3) * log(2.0) / 6, 1e-6);
    REQUIRE_OK(lt_backward(ctx, l));
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(z->grad[i * 3 + k], w[y[i]] * ((k == y[i]) ? -0.5 : 0.5) / 6, 1e-7);
    lt_ctx_free(ctx);
    tu_owned_free(z);
}

/* The teacher of KD is a target: a teacher that requires a gradient gets none, and the
 * value and student gradient do not change. */
TEST(loss_kd_teacher_detached) {
    lt_ctx *ctx = lt_ctx_new();
    const int64_t s[2] = {4, 6};
    lt_tensor *zs = tu_owned_new("s", 2, s), *zt = tu_owned_new("t", 2, s), *zt0 = no_grad(tu_owned_new("t0", 2, s));
    REQUIRE(ctx && zs && zt && zt0);
    lt_rng r;
    lt_rng_init(&r, 4, LT_STREAM_TEST);
    fill(zs, G_LOGIT, &r);
    fill(zt, G_LOGIT, &r);
    memcpy(zt0->data, zt->data, 24 * sizeof(float));
    float g0[24], v0;
    lt_tensor *l = lt_loss_kd(ctx, zs, zt0, 3.0f);
    REQUIRE(l != NULL);
    v0 = l->data[0];
    REQUIRE_OK(lt_backward(ctx, l));
    memcpy(g0, zs->grad, sizeof g0);
    lt_ctx_reset(ctx);
    zero_grad(zs);
    l = lt_loss_kd(ctx, zs, zt, 3.0f);
    REQUIRE(l != NULL);
    CHECK_NEAR(l->data[0], v0, 0);
    REQUIRE_OK(lt_backward(ctx, l));
    CHECK_CLOSE("student grad", zs->grad, g0, 24, 0, 0);
    for (int k = 0; k < 24; k++) CHECK_NEAR(zt->grad[k], 0.0, 0);
    int nonzero = 0;
    for (int k = 0; k < 24; k++) nonzero += g0[k] != 0.0f;
    CHECK(nonzero > 0);
    lt_ctx_free(ctx);
    tu_owned_free(zs);
    tu_owned_free(zt);
    tu_owned_free(zt0);
}

/* ---- error paths: each names the loss and the problem; errors are sticky ---- */

TEST(loss_errors) {
    lt_ctx *ctx = lt_ctx_new();
    lt_tensor *z = tu_owned_new("z", 2, (int64_t[]){2, 3});
    lt_tensor *z3 = tu_owned_new("z3", 3, (int64_t[]){2, 3, 1});
    lt_tensor *f = tu_owned_new("f", 2, (int64_t[]){2, 4}), *W = tu_owned_new("W", 2, (int64_t[]){3, 5});
    REQUIRE(ctx && z && z3 && f && W);
    static const int32_t good[2] = {0, 2}, bad[2] = {0, 3};
    static const int64_t n[3] = {10, 5, 1}, n0[3] = {10, 0, 1};
    lt_rng r;
    lt_rng_init(&r, 1, LT_STREAM_LOSS);
    lt_iwb_config cfg = lt_iwb_config_default();
    static const float wt_bad[6] = {1, 1, 1, 1, 1, 0};   /* w~ at the label (1, 2) must be 1 */
    struct { const char *want; lt_status code; } expect[13] = {
        {"focal: labels[1] = 3 is outside [0, 3)", LT_ERR_ARG},
        {"cb_sigmoid: labels is NULL", LT_ERR_ARG},
        {"las: logits must be (B, C)", LT_ERR_SHAPE},
        {"ldam: class_counts[1] = 0", LT_ERR_ARG},
        {"logit_adjusted: class_counts[1] = 0", LT_ERR_ARG},
        {"seql_weights: rng is NULL", LT_ERR_ARG},
        {"seql: w_tilde[1][2]", LT_ERR_ARG},
        {"kd: student_logits", LT_ERR_SHAPE},
        {"kd: temperature", LT_ERR_ARG},
        {"iwb: features (2, 4) and weight (3, 5)", LT_ERR_SHAPE},
        {"focal: gamma", LT_ERR_ARG},
        {"weight_decay: n must be", LT_ERR_ARG},
        {"cb_focal: gamma", LT_ERR_ARG},
    };
    for (int k = 0; k < 13; k++) {
        lt_ctx_reset(ctx);
        lt_tensor *l = NULL;
        switch (k) {
        case 0: l = lt_loss_focal(ctx, z, bad, NULL, 2.0f); break;
        case 1: l = lt_loss_cb_sigmoid(ctx, z, NULL, NULL); break;
        case 2: l = lt_loss_las(ctx, z3, good, n, 0.4f, 0.1f); break;
        case 3: l = lt_loss_ldam(ctx, z, good, n0, 0.5f, 30.0f, NULL); break;
        case 4: l = lt_loss_logit_adjusted(ctx, z, good, n0, 1.0f); break;
        case 5: l = lt_loss_seql(ctx, z, good, n, 0.1f, 0.9f, NULL); break;
        case 6: l = lt_loss_seql_weighted(ctx, z, good, wt_bad); break;
        case 7: l = lt_loss_kd(ctx, z, f, 2.0f); break;
        case 8: l = lt_loss_kd(ctx, z, z, 0.0f); break;
        case 9: l = lt_loss_iwb(ctx, f, W, good, n, &cfg); break;
        case 10: l = lt_loss_focal(ctx, z, good, NULL, -1.0f); break;
        case 11: l = lt_loss_weight_decay(ctx, (lt_tensor *[]){z}, 0, 0.1f); break;
        case 12: l = lt_loss_cb_focal(ctx, z, good, NULL, NAN); break;
        }
        CHECK(l == NULL);
        if (lt_ctx_status(ctx) != expect[k].code || !strstr(lt_ctx_error(ctx), expect[k].want))
            lt_test_fail(__FILE__, __LINE__, "case %d: got %s \"%s\", want \"%s\"", k,
                         lt_status_name(lt_ctx_status(ctx)), lt_ctx_error(ctx), expect[k].want);
    }
    /* Sticky: after an error every loss returns NULL and the first message stays. */
    lt_ctx_reset(ctx);
    CHECK(lt_loss_focal(ctx, z, bad, NULL, 2.0f) == NULL);
    CHECK(lt_loss_cb_softmax(ctx, z, good, NULL, LT_REDUCE_MEAN) == NULL);
    CHECK(lt_loss_iwb(ctx, f, W, good, n, &cfg) == NULL);
    CHECK(strstr(lt_ctx_error(ctx), "focal: labels[1]") != NULL);
    /* The IWB scalar form needs labels; vector form does not. */
    lt_tensor *W4 = tu_owned_new("W4", 2, (int64_t[]){3, 4});
    REQUIRE(W4 != NULL);
    lt_ctx_reset(ctx);
    cfg.hc = LT_IWB_HC_SCALAR;
    CHECK(lt_loss_iwb(ctx, f, W4, NULL, n, &cfg) == NULL);
    CHECK(strstr(lt_ctx_error(ctx), "needs labels") != NULL);
    lt_ctx_reset(ctx);
    cfg.hc = LT_IWB_HC_VECTOR;
    f->data[0] = 1.0f;
    W4->data[0] = 1.0f;
    CHECK(lt_loss_iwb(ctx, f, W4, NULL, n, &cfg) != NULL);
    lt_ctx_free(ctx);
    tu_owned_free(z);
    tu_owned_free(z3);
    tu_owned_free(f);
    tu_owned_free(W);
    tu_owned_free(W4);
}
