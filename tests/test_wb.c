/* Weight balancing machinery: classifier heads (cosine, ETF, LWS), MaxNorm, post-hoc
 * transforms through the stage-end path, stage-2 freezing, analysis fields, recipes. */
#include "test.h"
#include "test_util.h"

#include "longtail/ops.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- heads */

static lt_status small_model(lt_model *m, lt_head_kind head, int classes, float width) {
    lt_model_config c = lt_model_config_resnet(8, 1, 8, 8, classes);
    c.head = head;
    c.width = width;
    return lt_model_init(m, &c, 7);
}

TEST(wb_etf_head_properties) {
    lt_model m;
    REQUIRE_OK(small_model(&m, LT_HEAD_ETF, 10, 1.0f));
    const lt_tensor *w = m.head.weight;
    int64_t C = w->shape[0], D = w->shape[1];
    CHECK_EQ_INT(C, 10);
    CHECK_EQ_INT(D, 64);
    lt_param *pw = lt_params_find(&m.params, "fc.weight");
    REQUIRE(pw);
    CHECK_EQ_INT(pw->kind, LT_PARAM_BUFFER);   /* never trained */
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (int64_t d = 0; d < D; d++) {
                dot += (double)w->data[i * D + d] * w->data[j * D + d];
                ni += (double)w->data[i * D + d] * w->data[i * D + d];
                nj += (double)w->data[j * D + d] * w->data[j * D + d];
            }
            if (i == j) CHECK_NEAR(sqrt(ni), 1.0, 1e-5);
            else CHECK_NEAR(dot / sqrt(ni * nj), -1.0 / (double)(C - 1), 1e-5);
        }
    /* the rows sum to zero (a simplex centred at the origin) */
    for (int64_t d = 0; d < D; d++) {
        double s = 0;
        for (int64_t i = 0; i < C; i++) s += w->data[i * D + d];
        CHECK_NEAR(s, 0.0, 1e-5);
    }
    lt_model_free(&m);

    /* D < C is refused with a message saying why */
    lt_model bad;
    lt_status s = small_model(&bad, LT_HEAD_ETF, 100, 1.0f);
    CHECK(s == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "D >= classes C") != NULL);
    lt_model_free(&bad);
}

static lt_tensor *cos_head_loss(lt_ctx *ctx, lt_tensor **in, void *user) {
    lt_model *m = user;
    static float f[3 * 64];
    for (int i = 0; i < 3 * 64; i++) f[i] = (float)sin(0.37 * i + 0.1);
    lt_tensor *x = lt_tensor_wrap(ctx, f, 2, (int64_t[]){3, 64});
    (void)in;
    lt_tensor *z = lt_model_head_forward(ctx, m, x);
    static float coef[3 * 5];
    for (int i = 0; i < 15; i++) coef[i] = (float)cos(1.3 * i);
    lt_tensor *cf = lt_tensor_wrap(ctx, coef, 2, (int64_t[]){3, 5});
    return lt_sum(ctx, lt_mul(ctx, z, cf), LT_AXES_ALL);
}

TEST(wb_cosine_head_values_and_gradcheck) {
    lt_model m;
    REQUIRE_OK(small_model(&m, LT_HEAD_COSINE, 5, 1.0f));
    CHECK(m.head.bias == NULL);
    CHECK(lt_params_find(&m.params, "fc.bias") == NULL);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    /* values: cos(f_i, w_c) */
    float f[2 * 64];
    for (int i = 0; i < 2 * 64; i++) f[i] = (float)(i % 7) - 3.0f;
    lt_tensor *x = lt_tensor_wrap(ctx, f, 2, (int64_t[]){2, 64});
    lt_tensor *z = lt_model_head_forward(ctx, &m, x);
    REQUIRE(z);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 5; c++) {
            double dot = 0, nf = 0, nw = 0;
            for (int d = 0; d < 64; d++) {
                double a = f[i * 64 + d], b = m.head.weight->data[c * 64 + d];
                dot += a * b;
                nf += a * a;
                nw += b * b;
            }
            CHECK_NEAR(z->data[i * 5 + c], dot / sqrt(nf * nw), 1e-5);
        }
    lt_ctx_reset(ctx);
    REQUIRE_OK(lt_params_freeze_all_except(&m.params, (const char *[]){"fc"}, 1));
    lt_gradcheck_result res;
    lt_tensor *inputs[1] = {m.head.weight};
    lt_ctx_set_grad(ctx, 1);
    CHECK_OK(lt_gradcheck(ctx, cos_head_loss, inputs, 1, &m, 1e-3, 1e-3, 1e-2, &res));
    CHECK_EQ_INT(res.failed, 0);
    CHECK(res.checked > 0);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

TEST(wb_lws_head_scales) {
    lt_model m;
    REQUIRE_OK(small_model(&m, LT_HEAD_LWS, 4, 1.0f));
    REQUIRE(m.head.scales);
    for (int c = 0; c < 4; c++) CHECK(m.head.scales->data[c] == 1.0f);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    float f[64];
    for (int i = 0; i < 64; i++) f[i] = 0.01f * (float)i;
    lt_tensor *x = lt_tensor_wrap(ctx, f, 2, (int64_t[]){1, 64});
    m.head.scales->data[2] = 3.0f;
    lt_tensor *z = lt_model_head_forward(ctx, &m, x);
    REQUIRE(z);
    for (int c = 0; c < 4; c++) {
        double lin = m.head.bias->data[c];
        for (int d = 0; d < 64; d++) lin += (double)f[d] * m.head.weight->data[c * 64 + d];
        CHECK_NEAR(z->data[c], (c == 2 ? 3.0 : 1.0) * lin, 1e-4);
    }
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

/* ---------------------------------------------------------------- MaxNorm */

#include "method/wb_stage.h"

TEST(wb_maxnorm_projection_and_radius) {
    /* rows of norm 5, 1, 13 (3-4, 0-1, 5-12) and 2 */
    float w[4 * 2] = {3, 4, 0, 1, 5, 12, 0, -2};
    float before[8];
    memcpy(before, w, sizeof w);
    double r = lt_maxnorm_radius(w, 4, 2, 0.25);
    CHECK_NEAR(r, 1.0 + 0.25 * (13.0 - 1.0), 1e-12);   /* min + t (max - min) = 4 */
    CHECK_NEAR(lt_maxnorm_radius(w, 4, 2, 0.0), 1.0, 1e-12);
    CHECK_NEAR(lt_maxnorm_radius(w, 4, 2, 1.0), 13.0, 1e-12);
    int64_t n = lt_maxnorm_project(w, 4, 2, r);
    CHECK_EQ_INT(n, 2);
    for (int c = 0; c < 4; c++) {
        double norm = sqrt((double)w[2 * c] * w[2 * c] + (double)w[2 * c + 1] * w[2 * c + 1]);
        double nb = sqrt((double)before[2 * c] * before[2 * c] + (double)before[2 * c + 1] * before[2 * c + 1]);
        if (nb > r) {
            CHECK_NEAR(norm, r, 1e-6);   /* scaled exactly to r ... */
            CHECK_NEAR(w[2 * c] * nb / r, before[2 * c], 1e-5);   /* ... along the same direction */
        } else {
            CHECK(w[2 * c] == before[2 * c] && w[2 * c + 1] == before[2 * c + 1]);   /* bit-identical */
        }
    }
    /* projecting again changes nothing beyond rounding */
    CHECK_EQ_INT(lt_maxnorm_project(w, 4, 2, r + 1e-6), 0);
}

/* ---------------------------------------------------------------- post-hoc path */

static lt_tensor *eval_logits(lt_ctx *ctx, lt_model *m, float *f) {
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    lt_tensor *x = lt_tensor_wrap(ctx, f, 2, (int64_t[]){2, m->feature_dim});
    return lt_model_head_forward(ctx, m, x);
}

/* lt_posthoc_choose at a fixed τ (no sweep), then the head's evaluation logits of the two
 * feature rows f into out[8]. Returns 1 on success. */
static int choose_logits(lt_ctx *ctx, lt_model *m, lt_stage_posthoc kind, int drop_bias, double tau,
                         const int64_t *counts, float *f, float *out, lt_posthoc *k_out, double *t_out) {
    if (lt_posthoc_choose(ctx, m, "eval", kind, drop_bias, tau, NULL, NULL, 32, 1, counts, NULL, k_out, t_out)) return 0;
    lt_tensor *z = eval_logits(ctx, m, f);
    if (!z) return 0;
    memcpy(out, z->data, 8 * sizeof(float));
    return 1;
}

TEST(wb_posthoc_taunorm_and_logit_adjustment) {
    lt_model m;
    REQUIRE_OK(small_model(&m, LT_HEAD_LINEAR, 4, 1.0f));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    int64_t D = m.feature_dim, C = 4;
    float f[2 * 64];
    for (int i = 0; i < 2 * 64; i++) f[i] = (float)cos(0.7 * i);
    for (int c = 0; c < C; c++) m.head.bias->data[c] = 0.1f * (float)(c + 1);
    int64_t counts[4] = {100, 30, 10, 2};
    lt_stage_config sc;
    memset(&sc, 0, sizeof sc);
    snprintf(sc.name, sizeof sc.name, "stage2");
    double taus[] = {0.0, 0.7, 1.0, 1.9};
    for (int ti = 0; ti < 4; ti++)
        for (int kind = LT_STAGE_POSTHOC_TAUNORM; kind <= LT_STAGE_POSTHOC_LA_MUL; kind++)
            for (int drop = 0; drop < 2; drop++) {
                if (drop && kind != LT_STAGE_POSTHOC_TAUNORM) continue;
                double tau = taus[ti];
                sc.posthoc = (lt_stage_posthoc)kind;
                sc.posthoc_drop_bias = drop;
                REQUIRE_OK(lt_model_set_posthoc(&m, NULL, NULL));
                lt_tensor *z0 = eval_logits(ctx, &m, f);
                REQUIRE(z0);
                float plain[8];
                memcpy(plain, z0->data, sizeof plain);
                /* the expected logits, from the weights (τ-norm) or eval.h's formula (LA) */
                float want[8];
                if (kind == LT_STAGE_POSTHOC_TAUNORM) {
                    float *wn = lt_malloc((size_t)(C * D) * sizeof(float));
                    REQUIRE(wn);
                    REQUIRE_OK(lt_posthoc_tau_norm(m.head.weight->data, C, D, tau, wn));
                    for (int i = 0; i < 2; i++)
                        for (int c = 0; c < C; c++) {
                            double z = drop ? 0.0 : m.head.bias->data[c];
                            for (int64_t d = 0; d < D; d++) z += (double)wn[c * D + d] * f[i * D + d];
                            want[i * C + c] = (float)z;
                        }
                    lt_free(wn);
                } else {
                    REQUIRE_OK(lt_posthoc_logit_adjust(plain, 2, C, counts,
                                                       kind == LT_STAGE_POSTHOC_LA_ADD ? LT_POSTHOC_LA_ADD : LT_POSTHOC_LA_MUL,
                                                       tau, want));
                }
                REQUIRE_OK(lt_mt_posthoc_apply(&m, &sc, tau, counts));
                lt_tensor *z = eval_logits(ctx, &m, f);
                REQUIRE(z);
                CHECK_CLOSE("post-hoc logits", z->data, want, 8, 1e-4, 1e-4);
                /* training contexts never see the transform */
                lt_ctx_reset(ctx);
                lt_ctx_set_training(ctx, 1);
                lt_ctx_set_grad(ctx, 1);
                lt_tensor *x = lt_tensor_wrap(ctx, f, 2, (int64_t[]){2, D});
                lt_tensor *zt = lt_model_head_forward(ctx, &m, x);
                REQUIRE(zt);
                CHECK_CLOSE("training logits", zt->data, plain, 8, 0, 0);
            }
    /* l2norm is τ-norm at τ = 1 */
    sc.posthoc = LT_STAGE_POSTHOC_L2NORM;
    sc.posthoc_drop_bias = 0;
    REQUIRE_OK(lt_mt_posthoc_apply(&m, &sc, 1.0, counts));
    lt_tensor *z = eval_logits(ctx, &m, f);
    REQUIRE(z);
    float l2[8];
    memcpy(l2, z->data, sizeof l2);
    sc.posthoc = LT_STAGE_POSTHOC_TAUNORM;
    REQUIRE_OK(lt_mt_posthoc_apply(&m, &sc, 1.0, counts));
    z = eval_logits(ctx, &m, f);
    REQUIRE(z);
    CHECK_CLOSE("l2norm = taunorm(1)", z->data, l2, 8, 0, 0);
    /* the public entry (longtail eval's overrides) at a fixed τ is the stage's transform */
    float raw[8], want[8], got[8];
    lt_posthoc k_out;
    double t_out;
    REQUIRE(choose_logits(ctx, &m, LT_STAGE_POSTHOC_NONE, 0, NAN, counts, f, raw, &k_out, &t_out));
    CHECK(k_out == LT_POSTHOC_NONE && isnan(t_out));
    REQUIRE_OK(lt_posthoc_logit_adjust(raw, 2, C, counts, LT_POSTHOC_LA_MUL, 0.7, want));
    REQUIRE(choose_logits(ctx, &m, LT_STAGE_POSTHOC_LA_MUL, 0, 0.7, counts, f, got, &k_out, &t_out));
    CHECK(k_out == LT_POSTHOC_LA_MUL);
    CHECK_NEAR(t_out, 0.7, 0);
    CHECK_CLOSE("lt_posthoc_choose la_mul", got, want, 8, 1e-4, 1e-4);
    /* l2norm ignores the given τ (τ = 1); drop_bias reaches the transform */
    REQUIRE(choose_logits(ctx, &m, LT_STAGE_POSTHOC_L2NORM, 0, 0.3, counts, f, got, &k_out, &t_out));
    CHECK(k_out == LT_POSTHOC_TAU_NORM);
    CHECK_NEAR(t_out, 1.0, 0);
    CHECK_CLOSE("lt_posthoc_choose l2norm", got, l2, 8, 0, 0);
    REQUIRE(choose_logits(ctx, &m, LT_STAGE_POSTHOC_TAUNORM, 1, 1.0, counts, f, got, &k_out, &t_out));
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < C; c++) want[i * C + c] = l2[i * C + c] - m.head.bias->data[c];
    CHECK_CLOSE("lt_posthoc_choose taunorm, bias dropped", got, want, 8, 1e-5, 1e-5);
    /* none clears it again */
    REQUIRE(choose_logits(ctx, &m, LT_STAGE_POSTHOC_NONE, 0, NAN, counts, f, got, &k_out, &t_out));
    CHECK_CLOSE("lt_posthoc_choose none", got, raw, 8, 0, 0);
    /* errors: a negative or infinite τ, a sweep without validation images, a bad kind */
    CHECK_EQ_INT(lt_posthoc_choose(ctx, &m, "eval", LT_STAGE_POSTHOC_TAUNORM, 0, -0.5, NULL, NULL, 32, 1, counts, NULL,
                                   &k_out, &t_out), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "eval") && strstr(lt_last_error(), "-0.5"));
    CHECK_EQ_INT(lt_posthoc_choose(ctx, &m, "eval", LT_STAGE_POSTHOC_TAUNORM, 0, INFINITY, NULL, NULL, 32, 1, counts,
                                   NULL, &k_out, &t_out), LT_ERR_ARG);
    CHECK_EQ_INT(lt_posthoc_choose(ctx, &m, "eval", LT_STAGE_POSTHOC_TAUNORM, 0, NAN, NULL, NULL, 32, 1, counts, NULL,
                                   &k_out, &t_out), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "validation") != NULL);
    CHECK_EQ_INT(lt_posthoc_choose(ctx, &m, "eval", (lt_stage_posthoc)9, 0, 1.0, NULL, NULL, 32, 1, counts, NULL,
                                   &k_out, &t_out), LT_ERR_ARG);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

/* ---------------------------------------------------------------- two-stage runs */

/* Generated data: tu_gen (tests/test_util.c), 25 test images per class, classes "q0".."q3". */

static const char *wb_dir(const char *name) {
    static char buf[8][700];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 700, "%s/%s", lt_test_tmpdir(), name);
    return b;
}

static lt_status wb_run(const char *text, const char *const *sets, int n_sets, tu_gen *g, const char *dir, int resume,
                        int64_t stop, int *finished) {
    lt_recipe r;
    lt_status s = lt_recipe_parse(&r, text, "wb.ini", sets, n_sets);
    if (s) return s;
    lt_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = dir;
    o.resume = resume;
    o.stop_after_epochs = stop;
    lt_train_outcome out;
    memset(&out, 0, sizeof out);
    s = lt_train(&r, &g->td, &o, &out);
    if (finished) *finished = out.finished;
    lt_train_outcome_free(&out);
    lt_recipe_free(&r);
    return s;
}

#define WB_RECIPE                                                                                 \
    "[data]\nnormalize = dataset\n"                                                               \
    "[model]\narch = resnet8\nwidth = 0.5\n"                                                      \
    "[stage1]\nepochs = 2\nbatch_size = 16\nlr = 0.05\nweight_decay = 5e-3\n"                     \
    "[stage2]\nepochs = 2\nbatch_size = 16\nlr = 0.2\nweight_decay = 0\ntrain = classifier\n"    \
    "bn = frozen\nmaxnorm = true\nmaxnorm_t = 0.1\nposthoc = taunorm\nselect = last\n"            \
    "[eval]\ngroups = rank\nbatch_size = 32\n"

static const char *pathj(const char *dir, const char *name) {
    static char buf[4][900];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 900, "%s/%s", dir, name);
    return b;
}

TEST(wb_two_stage_maxnorm_posthoc_analysis) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    const char *dir = wb_dir("wb");
    int fin = 0;
    REQUIRE_OK(wb_run(WB_RECIPE, NULL, 0, &g, dir, 0, 0, &fin));
    CHECK(fin);
    /* stage 2 trained only the classifier: everything else, BN running statistics and
     * counters included (bn = frozen), is bit-identical */
    int in = -1, out = -1;
    CHECK(tu_ckpt_diff(pathj(dir, "stage1.safetensors"), pathj(dir, "stage2.safetensors"), "fc.", &in, &out));
    CHECK_EQ_INT(in, 2);
    CHECK_EQ_INT(out, 0);

    /* MaxNorm: every stage-2 row within the radius from the stage-1 norms */
    lt_safetensors *s1, *s2;
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage1.safetensors"), &s1));
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage2.safetensors"), &s2));
    const lt_st_entry *w1 = lt_safetensors_find(s1, "fc.weight"), *w2 = lt_safetensors_find(s2, "fc.weight");
    REQUIRE(w1 && w2);
    int64_t C = w1->shape[0], D = w1->shape[1];
    double r = lt_maxnorm_radius((const float *)lt_safetensors_data(s1, w1), C, D, 0.1);
    const float *wd = (const float *)lt_safetensors_data(s2, w2);
    int at_radius = 0;
    for (int64_t c = 0; c < C; c++) {
        double n = 0;
        for (int64_t d = 0; d < D; d++) n += (double)wd[c * D + d] * wd[c * D + d];
        n = sqrt(n);
        CHECK(n <= r * (1 + 1e-6));
        at_radius += fabs(n - r) <= r * 1e-5;
    }
    CHECK(at_radius >= 1);   /* the constraint was active */
    /* the stage checkpoint records the transform and τ */
    CHECK(lt_safetensors_metadata(s2, "posthoc") && !strcmp(lt_safetensors_metadata(s2, "posthoc"), "tau_norm"));
    /* copied out: the metadata string lives in s2, which is freed below */
    const char *tau_md = lt_safetensors_metadata(s2, "posthoc_tau");
    CHECK(tau_md != NULL);
    double tau_ckpt = tau_md ? strtod(tau_md, NULL) : NAN;
    CHECK(lt_safetensors_metadata(s1, "posthoc") == NULL);
    lt_safetensors_free(s1);
    lt_safetensors_free(s2);

    /* metrics.json: analysis fields for every stage, the transform on stage 2 */
    lt_json *j;
    REQUIRE_OK(lt_json_load(pathj(dir, "metrics.json"), 0, &j));
    const lt_json *st = lt_json_get(j, "stages");
    REQUIRE(st && st->n == 2);
    for (int k = 0; k < 2; k++) {
        const lt_json *e = lt_json_at(st, k);
        const lt_json *wn = lt_json_get(e, "weight_norms"), *fn = lt_json_get(e, "feature_norms"),
                      *tfn = lt_json_get(e, "train_feature_norms");
        CHECK(wn && wn->type == LT_JSON_ARRAY && wn->n == 4);
        CHECK(fn && fn->type == LT_JSON_ARRAY && fn->n == 4);
        CHECK(tfn && tfn->type == LT_JSON_ARRAY && tfn->n == 4);
        for (int c = 0; c < 4 && fn && tfn; c++) {
            CHECK(lt_json_number(lt_json_at(fn, c), -1) > 0);
            CHECK(lt_json_number(lt_json_at(tfn, c), -1) > 0);
        }
        /* FDR: a number, or null with the reason */
        const lt_json *fdr = lt_json_get(e, "fdr"), *tfdr = lt_json_get(e, "train_fdr");
        CHECK(fdr && (fdr->type == LT_JSON_NUMBER || lt_json_string(lt_json_get(e, "fdr_error"), NULL)));
        CHECK(tfdr && tfdr->type == LT_JSON_NUMBER && tfdr->num > 0);
        CHECK(lt_json_number(lt_json_get(e, "bn_scale_count"), 0) > 0);
        CHECK(lt_json_number(lt_json_get(e, "bn_scale_mean"), NAN) > 0);
        CHECK(lt_json_number(lt_json_get(e, "bn_scale_std"), NAN) >= 0);
        const char *ph = lt_json_string(lt_json_get(e, "posthoc"), "?");
        CHECK(!strcmp(ph, k == 0 ? "none" : "tau_norm"));
        double pt = lt_json_number(lt_json_get(e, "posthoc_tau"), NAN);
        if (k == 1) {
            CHECK(pt >= 0 && pt <= 2);
            CHECK(fabs(pt * 10 - round(pt * 10)) < 1e-9);   /* a grid point */
            CHECK_NEAR(pt, tau_ckpt, 1e-12);
            const lt_json *v = lt_json_get(e, "val");
            CHECK(!strcmp(lt_json_string(lt_json_get(v, "posthoc"), "?"), "tau_norm"));
        } else {
            CHECK(isnan(pt));
        }
    }
    lt_json_free(j);

    /* resume mid stage 2 (after MaxNorm steps) ends with the same bytes */
    const char *b = wb_dir("wb_resumed");
    REQUIRE_OK(wb_run(WB_RECIPE, NULL, 0, &g, b, 0, 3, &fin));
    CHECK(!fin);
    {   /* a resume state whose MaxNorm radius is not a number is refused, not read as 0 */
        char *orig = NULL;
        int64_t n = 0;
        const char *last = pathj(b, "last.safetensors");
        REQUIRE_OK(lt_file_read(last, 0, &orig, &n));
        char *bad = lt_malloc((size_t)n);
        REQUIRE(bad);
        memcpy(bad, orig, (size_t)n);
        const char *key = "\"maxnorm_radius\":\"";
        char *at = NULL;
        for (int64_t i = 0; i + (int64_t)strlen(key) < n && !at; i++)
            if (!memcmp(bad + i, key, strlen(key))) at = bad + i + strlen(key);
        REQUIRE(at);
        at[0] = 'x';
        REQUIRE_OK(lt_file_write_atomic(last, bad, n));
        CHECK(wb_run(WB_RECIPE, NULL, 0, &g, b, 1, 0, &fin) == LT_ERR_FORMAT);
        CHECK(strstr(lt_last_error(), "maxnorm_radius 'x") != NULL);
        REQUIRE_OK(lt_file_write_atomic(last, orig, n));
        lt_free(bad);
        lt_free(orig);
    }
    REQUIRE_OK(wb_run(WB_RECIPE, NULL, 0, &g, b, 1, 0, &fin));
    CHECK(fin);
    static const char *const files[] = {"stage1.safetensors", "stage2.safetensors", "metrics.json", "last.safetensors"};
    for (int i = 0; i < 4; i++) {
        char *da = NULL, *db = NULL;
        int64_t na = 0, nb = 0;
        REQUIRE_OK(lt_file_read(pathj(dir, files[i]), 0, &da, &na));
        REQUIRE_OK(lt_file_read(pathj(b, files[i]), 0, &db, &nb));
        if (!(na == nb && !memcmp(da, db, (size_t)na))) lt_test_fail(__FILE__, __LINE__, "%s differs after resume", files[i]);
        lt_free(da);
        lt_free(db);
    }
    tu_gen_free(&g);
}

TEST(wb_bn_stats_only_updates_statistics_only) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    const char *dir = wb_dir("stats_only");
    const char *sets[] = {"stage2.bn=stats_only", "stage2.train=all", "stage2.maxnorm=false",
                          "stage2.posthoc=none", "stage2.maxnorm_t=0.1"};
    /* maxnorm_t without maxnorm is refused */
    CHECK(wb_run(WB_RECIPE, sets, 5, &g, dir, 0, 0, NULL) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "maxnorm_t") != NULL);
    const char *sets2[] = {"stage2.bn=stats_only", "stage2.maxnorm=false", "stage2.posthoc=none"};
    const char *recipe = "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\n"
                         "[stage1]\nepochs = 1\nbatch_size = 16\nlr = 0.05\n"
                         "[stage2]\nepochs = 1\nbatch_size = 16\nlr = 0.05\ntrain = classifier\nselect = last\n"
                         "[eval]\ngroups = rank\n";
    REQUIRE_OK(wb_run(recipe, sets2, 1, &g, dir, 0, 0, NULL));
    lt_safetensors *a, *b;
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage1.safetensors"), &a));
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage2.safetensors"), &b));
    int stats_changed = 0, affine_changed = 0, conv_changed = 0;
    for (int64_t i = 0; i < lt_safetensors_count(a); i++) {
        const lt_st_entry *ea = lt_safetensors_entry(a, i), *eb = lt_safetensors_find(b, ea->name);
        REQUIRE(eb);
        int diff = memcmp(lt_safetensors_data(a, ea), lt_safetensors_data(b, eb), (size_t)ea->nbytes) != 0;
        if (strstr(ea->name, "running_") || strstr(ea->name, "num_batches")) stats_changed += diff;
        else if (strstr(ea->name, "bn")) affine_changed += diff;
        else if (strncmp(ea->name, "fc.", 3)) conv_changed += diff;
    }
    CHECK(stats_changed > 0);   /* the statistics kept updating (WB code: model.train()) */
    CHECK_EQ_INT(affine_changed, 0);
    CHECK_EQ_INT(conv_changed, 0);
    lt_safetensors_free(a);
    lt_safetensors_free(b);
    tu_gen_free(&g);
}

TEST(wb_etf_and_lws_stage2) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    /* ETF: W fixed through both stages, only the bias trains in stage 2 */
    const char *etf = "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\nhead = etf\n"
                      "[stage1]\nepochs = 1\nbatch_size = 16\nlr = 0.05\n"
                      "[stage2]\nepochs = 1\nbatch_size = 16\nlr = 0.05\ntrain = classifier\nbn = frozen\n"
                      "select = last\nposthoc = la_mul\nposthoc_tau = 0.65\n[eval]\ngroups = rank\n";
    const char *dir = wb_dir("etf");
    REQUIRE_OK(wb_run(etf, NULL, 0, &g, dir, 0, 0, NULL));
    int in = -1, out = -1;
    CHECK(tu_ckpt_diff(pathj(dir, "stage1.safetensors"), pathj(dir, "stage2.safetensors"), "fc.bias", &in, &out));
    CHECK_EQ_INT(in, 1);
    CHECK_EQ_INT(out, 0);   /* fc.weight too */
    lt_model m;
    REQUIRE_OK(small_model(&m, LT_HEAD_LINEAR, 4, 0.5f));
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage2.safetensors"), &st));
    const lt_st_entry *e = lt_safetensors_find(st, "fc.weight");
    REQUIRE(e && e->shape[0] == 4);
    const float *w = (const float *)lt_safetensors_data(st, e);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double dot = 0;
            for (int64_t d = 0; d < e->shape[1]; d++) dot += (double)w[i * e->shape[1] + d] * w[j * e->shape[1] + d];
            CHECK_NEAR(dot, i == j ? 1.0 : -1.0 / 3.0, 1e-5);
        }
    CHECK(lt_safetensors_metadata(st, "posthoc") && !strcmp(lt_safetensors_metadata(st, "posthoc"), "la_multiplicative"));
    lt_safetensors_free(st);
    lt_model_free(&m);

    /* LWS: stage 2 trains only fc.scales */
    const char *lws = "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\nhead = lws\n"
                      "[stage1]\nepochs = 1\nbatch_size = 16\nlr = 0.05\n"
                      "train = conv1, bn1, layer1, layer2, layer3, fc.weight, fc.bias\n"
                      "[stage2]\nepochs = 1\nbatch_size = 16\nlr = 0.05\ntrain = fc.scales\nbn = frozen\n"
                      "select = last\nsampler = class_balanced\n[eval]\ngroups = rank\n";
    dir = wb_dir("lws");
    REQUIRE_OK(wb_run(lws, NULL, 0, &g, dir, 0, 0, NULL));
    CHECK(tu_ckpt_diff(pathj(dir, "stage1.safetensors"), pathj(dir, "stage2.safetensors"), "fc.scales", &in, &out));
    CHECK_EQ_INT(in, 1);
    CHECK_EQ_INT(out, 0);
    tu_gen_free(&g);
}

/* ---------------------------------------------------------------- recipes */

#include <dirent.h>

/* Every recipe of the weight-balancing table parses (no data is read: the CIFAR root may
 * be absent) and says which dataset it is for. */
TEST(wb_recipes_parse) {
    static const char *const dirs[] = {"wb", "iwb", "hs24", "decouple"};
    static const char *const rows[] = {"wb/naive", "wb/wd", "wb/wd_l2norm", "wb/wd_taunorm", "wb/wd_cb_wd_maxnorm",
                                       "iwb/nc", "iwb/nc_hc", "iwb/nc_hc_cb", "iwb/mse", "hs24/wd_fr_etf_multla",
                                       "decouple/crt", "decouple/lws"};
    const char *root = getenv("LT_TEST_ROOT");
    int parsed = 0;
    for (int d = 0; d < 4; d++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/configs/%s", root ? root : ".", dirs[d]);
        DIR *dh = opendir(dir);
        if (!dh) {
            lt_test_fail(__FILE__, __LINE__, "cannot open %s", dir);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(dh))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 4, ".ini")) continue;
            char path[1000];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            lt_recipe r;
            lt_status s = lt_recipe_load(&r, path, NULL, 0);
            if (s) {
                lt_test_fail(__FILE__, __LINE__, "%s: %s", path, lt_last_error());
                continue;
            }
            int cifar = strstr(e->d_name, ".cifar100.") != NULL, fm = strstr(e->d_name, ".fmnist.") != NULL;
            CHECK(cifar || fm);
            CHECK(r.data.kind == (cifar ? LT_DATASET_CIFAR100 : LT_DATASET_FMNIST));
            CHECK(r.n_stages >= 1);
            parsed++;
            lt_recipe_free(&r);
        }
        closedir(dh);
    }
    /* each table row, for both datasets */
    for (int i = 0; i < 12; i++)
        for (int k = 0; k < 2; k++) {
            char path[700];
            snprintf(path, sizeof path, "%s/configs/%s.%s.ini", root ? root : ".", rows[i], k ? "cifar100" : "fmnist");
            if (!lt_path_exists(path)) lt_test_fail(__FILE__, __LINE__, "missing recipe %s", path);
        }
    CHECK(parsed >= 24);
}

/* The classifier row norms of dir/stage2.safetensors into norms[0..C) and, in *stage1_min,
 * the smallest row norm of dir/stage1.safetensors; returns C, or 0 if unreadable / C > cap. */
static int64_t stage2_row_norms(const char *dir, double *stage1_min, double *norms, int64_t cap) {
    lt_safetensors *s1 = NULL, *s2 = NULL;
    int64_t C = 0;
    if (!lt_safetensors_load(pathj(dir, "stage1.safetensors"), &s1) &&
        !lt_safetensors_load(pathj(dir, "stage2.safetensors"), &s2)) {
        const lt_st_entry *w1 = lt_safetensors_find(s1, "fc.weight"), *w2 = lt_safetensors_find(s2, "fc.weight");
        if (w1 && w2 && w1->shape[0] <= cap) {
            C = w1->shape[0];
            int64_t D = w1->shape[1];
            *stage1_min = lt_maxnorm_radius((const float *)lt_safetensors_data(s1, w1), C, D, 0.0);
            const float *w = (const float *)lt_safetensors_data(s2, w2);
            for (int64_t c = 0; c < C; c++) {
                double n = 0;
                for (int64_t d = 0; d < D; d++) n += (double)w[c * D + d] * w[c * D + d];
                norms[c] = sqrt(n);
            }
        }
    }
    lt_safetensors_free(s1);
    lt_safetensors_free(s2);
    return C;
}

/* MaxNorm with an absolute radius: every classifier row ends inside it, and rows that
 * started outside sit on it (projected after every step). */
TEST(wb_maxnorm_absolute_radius) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    const char *text = "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\n"
                       "[stage1]\nepochs = 1\nbatch_size = 16\nlr = 0.05\nweight_decay = 5e-3\n"
                       "[stage2]\nepochs = 1\nbatch_size = 16\nlr = 0.2\nweight_decay = 0\ntrain = classifier\n"
                       "bn = frozen\nmaxnorm = true\nmaxnorm_radius = 0.05\nselect = last\n"
                       "[eval]\ngroups = rank\nbatch_size = 32\n";
    const char *dir = wb_dir("radius");
    REQUIRE_OK(wb_run(text, NULL, 0, &g, dir, 0, 0, NULL));
    double norms[16], r1;
    int64_t C = stage2_row_norms(dir, &r1, norms, 16);
    REQUIRE(C > 0);
    REQUIRE(r1 > 0.05);   /* every row starts outside the radius */
    for (int64_t c = 0; c < C; c++) CHECK_NEAR(norms[c], 0.05, 1e-6);
    tu_gen_free(&g);
}

/* weight_decay_groups: a group's value replaces the stage's weight_decay for the weights it
 * selects (prefix, the word classifier, or a glob; the last match wins); every run shares
 * stage 1 (same seed), so stage-2 classifiers are compared bit for bit. */
TEST(wb_weight_decay_groups) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    static const char *const variants[][3] = {
        /* name, weight_decay, weight_decay_groups */
        {"all03", "0.3", ""},
        {"fc03", "0", "fc:0.3"},                    /* = all03: stage 2 trains fc only */
        {"cls03", "0", "classifier:0.3"},           /* = fc03 */
        {"glob03", "0", "fc.*:0.3"},                /* = fc03 */
        {"all0", "0", ""},
        {"fc0", "0.3", "fc:0"},                     /* = all0 */
        {"last", "0.3", "fc:0.3, *.bias:0"},        /* bias without decay ... */
        {"last2", "0.3", "fc.bias:0"},              /* ... = last */
    };
    enum { NV = sizeof variants / sizeof variants[0] };
    char dirs[NV][700];   /* wb_dir gives a new folder each call */
    for (int v = 0; v < NV; v++) {
        char wd[64], grp[96];
        snprintf(wd, sizeof wd, "stage2.weight_decay=%s", variants[v][1]);
        snprintf(grp, sizeof grp, "stage2.weight_decay_groups=%s", variants[v][2]);
        const char *sets[] = {"stage1.epochs=1", "stage2.epochs=1", "stage2.posthoc=none", "stage2.lr=0.5", wd, grp};
        snprintf(dirs[v], sizeof dirs[v], "%s", wb_dir(variants[v][0]));
        lt_status s = wb_run(WB_RECIPE, sets, variants[v][2][0] ? 6 : 5, &g, dirs[v], 0, 0, NULL);
        if (s) lt_test_fail(__FILE__, __LINE__, "%s: %s", variants[v][0], lt_last_error());
    }
    /* same[i] = {a, b, expected equal} */
    static const int pairs[][3] = {{0, 1, 1}, {1, 2, 1}, {1, 3, 1}, {4, 5, 1}, {6, 7, 1}, {0, 4, 0}, {0, 6, 0}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *a = dirs[pairs[i][0]], *b = dirs[pairs[i][1]];
        int in = -1, out = -1;
        CHECK(tu_ckpt_diff(pathj(a, "stage2.safetensors"), pathj(b, "stage2.safetensors"), "fc.", &in, &out));
        CHECK_EQ_INT(out, 0);   /* the backbone never trains in stage 2 */
        if (pairs[i][2] && in != 0)
            lt_test_fail(__FILE__, __LINE__, "%s and %s: %d classifier tensors differ, expected none",
                         variants[pairs[i][0]][0], variants[pairs[i][1]][0], in);
        if (!pairs[i][2] && in == 0)
            lt_test_fail(__FILE__, __LINE__, "%s and %s: same classifier, expected the decay to change it",
                         variants[pairs[i][0]][0], variants[pairs[i][1]][0]);
    }
    /* bad items name the key */
    static const char *const bad[] = {"stage2.weight_decay_groups=nothere:0.1", "stage2.weight_decay_groups=fc",
                                      "stage2.weight_decay_groups=fc:-1", "stage2.weight_decay_groups=:0.1",
                                      "stage2.weight_decay_groups=fc:0.1,", "stage2.weight_decay_groups=*.nothere:0",
                                      "stage2.weight_decay_groups=fc:0,fc:0,fc:0,fc:0,fc:0,fc:0,fc:0",
                                      "stage2.weight_decay_groups=fc:abc", "stage2.weight_decay_groups=fc:0.1x, *.bias:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *sets[] = {"stage1.epochs=1", "stage2.epochs=1", bad[i]};
        CHECK(wb_run(WB_RECIPE, sets, 3, &g, wb_dir("bad_wdg"), 0, 0, NULL) == LT_ERR_CONFIG);
        if (!strstr(lt_last_error(), "stage2.weight_decay_groups"))
            lt_test_fail(__FILE__, __LINE__, "%s: error does not name the key: %s", bad[i], lt_last_error());
    }
    tu_gen_free(&g);
}

TEST(wb_maxnorm_every_epoch_and_sweep_needs_validation) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "q"));
    const char *dir = wb_dir("per_epoch");
    const char *sets[] = {"stage2.maxnorm_every=epoch", "stage2.maxnorm_t=0", "stage2.posthoc=la_add",
                          "stage1.epochs=1", "stage2.epochs=1"};
    REQUIRE_OK(wb_run(WB_RECIPE, sets, 5, &g, dir, 0, 0, NULL));
    /* t = 0: the radius is the smallest stage-1 row norm; after the epoch's projection every
     * row is at most that */
    double norms[16], r;
    int64_t C = stage2_row_norms(dir, &r, norms, 16);
    REQUIRE(C > 0);
    for (int64_t c = 0; c < C; c++) CHECK(norms[c] <= r * (1 + 1e-6));
    lt_safetensors *s2;
    REQUIRE_OK(lt_safetensors_load(pathj(dir, "stage2.safetensors"), &s2));
    CHECK(lt_safetensors_metadata(s2, "posthoc") && !strcmp(lt_safetensors_metadata(s2, "posthoc"), "la_additive"));
    lt_safetensors_free(s2);

    /* a swept τ needs a validation set */
    const lt_dataset *val = g.td.val;
    g.td.val = NULL;
    CHECK(wb_run(WB_RECIPE, sets, 5, &g, wb_dir("no_val"), 0, 0, NULL) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "posthoc_tau") != NULL);
    g.td.val = val;
    /* bad values name the key */
    const char *bad1[] = {"stage2.posthoc_tau=abc"};
    CHECK(wb_run(WB_RECIPE, bad1, 1, &g, wb_dir("bad1"), 0, 0, NULL) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "stage2.posthoc_tau") != NULL);
    const char *bad2[] = {"stage2.maxnorm_radius=2"};
    CHECK(wb_run(WB_RECIPE, bad2, 1, &g, wb_dir("bad2"), 0, 0, NULL) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "not both") != NULL);
    tu_gen_free(&g);
}
