/* Stage losses (src/method/stage_loss.c): every loss kind selected through a recipe gives
 * the value of the loss library called directly on the same logits (the wiring is right);
 * bad loss keys are errors naming file:line and key; DRW switches at the right epoch of the
 * trainer's epoch counter; every recipe in configs/losses and configs/sampling trains one
 * seeded epoch on generated data; a run with the stochastic softmax-EQL loss resumes to
 * the same bytes. */
#include "test.h"
#include "test_util.h"
#include "longtail/train.h"
#include "method/stage_loss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SL_B 6
#define SL_C 4
static const int64_t sl_counts[SL_C] = {96, 48, 24, 12};

/* A tiny recipe with extra [model] and [stage1] lines. */
static lt_status parse_with(lt_recipe *r, const char *model_extra, const char *stage_extra) {
    char text[2048];
    snprintf(text, sizeof text,
             "[data]\nnormalize = dataset\n"
             "[model]\narch = resnet8\nwidth = 0.5\n%s"
             "[stage1]\nepochs = 3\nbatch_size = 16\n%s",
             model_extra, stage_extra);
    return lt_recipe_parse(r, text, "sl.ini", NULL, 0);
}

typedef struct sl_env {
    lt_ctx *ctx;
    lt_model m;
    float z[SL_B * SL_C], f[SL_B * 64];
    int32_t y[SL_B];
    lt_tensor *logits, *features;
    float wbuf[SL_C];
} sl_env;

static int env_init(sl_env *e, lt_head_kind head) {
    memset(e, 0, sizeof *e);
    lt_model_config mc = lt_model_config_resnet(8, 1, 8, 8, SL_C);
    mc.width = 0.5f;
    mc.head = head;
    if (lt_model_init(&e->m, &mc, 7) != LT_OK) return 0;
    e->ctx = lt_ctx_new();
    if (!e->ctx || e->m.feature_dim > 64) return 0;
    lt_rng r;
    lt_rng_init(&r, 11, LT_STREAM_TEST);
    for (int i = 0; i < SL_B * SL_C; i++) e->z[i] = 2.0f * lt_rng_normal(&r);
    for (int i = 0; i < SL_B * 64; i++) e->f[i] = lt_rng_normal(&r);
    for (int i = 0; i < SL_B; i++) e->y[i] = (int32_t)(i % SL_C);
    return 1;
}

static void env_tensors(sl_env *e) {
    lt_ctx_reset(e->ctx);
    e->logits = lt_tensor_wrap(e->ctx, e->z, 2, (int64_t[]){SL_B, SL_C});
    e->features = lt_tensor_wrap(e->ctx, e->f, 2, (int64_t[]){SL_B, e->m.feature_dim});
}

static void env_free(sl_env *e) {
    lt_ctx_free(e->ctx);
    lt_model_free(&e->m);
}

/* The loss the recipe's stage 1 builds at `epoch` (rng from seed 5, batch 0). NaN on error. */
static double via_recipe(sl_env *e, const lt_recipe *r, int64_t epoch) {
    env_tensors(e);
    lt_rng rng;
    lt_mt_stage_loss_rng(&rng, 5, 0, epoch, 0);
    lt_tensor *l = lt_mt_stage_loss(e->ctx, &r->stages[0], e->logits, e->features, e->y, sl_counts, epoch, &e->m,
                                    &rng, e->wbuf);
    if (!l || lt_ctx_status(e->ctx)) {
        lt_test_fail(__FILE__, __LINE__, "stage loss: %s", lt_ctx_error(e->ctx));
        return NAN;
    }
    return l->data[0];
}

static double value(lt_tensor *t, sl_env *e) {
    if (!t || lt_ctx_status(e->ctx)) {
        lt_test_fail(__FILE__, __LINE__, "direct loss: %s", lt_ctx_error(e->ctx));
        return NAN;
    }
    return t->data[0];
}

static void cbw(double beta, float *w) {
    if (lt_cb_weights(sl_counts, SL_C, beta, w) != LT_OK) lt_test_fail(__FILE__, __LINE__, "cb weights");
}

/* The trainable weights of the model (for wd_loss). */
static int64_t trainable(lt_model *m, lt_tensor **ts) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->params.count; i++)
        if (m->params.items[i].kind == LT_PARAM_WEIGHT && m->params.items[i].t.requires_grad) ts[n++] = &m->params.items[i].t;
    return n;
}

#define EXPECT_SAME(stage_keys, direct_expr)                                                \
    do {                                                                                    \
        lt_recipe r_;                                                                       \
        lt_status s_ = parse_with(&r_, "", stage_keys);                                     \
        if (s_) { lt_test_fail(__FILE__, __LINE__, "%s: %s", stage_keys, lt_last_error()); break; } \
        double got_ = via_recipe(&e, &r_, 0);                                               \
        env_tensors(&e);                                                                    \
        double want_ = value(direct_expr, &e);                                              \
        if (!(got_ == want_))                                                               \
            lt_test_fail(__FILE__, __LINE__, "%s: recipe %.9g, library %.9g", stage_keys, got_, want_); \
        lt_recipe_free(&r_);                                                                \
    } while (0)

TEST(stage_loss_recipe_matches_library) {
    sl_env e;
    REQUIRE(env_init(&e, LT_HEAD_LINEAR));
    float w[SL_C], w2[SL_C];
    lt_ctx *c = e.ctx;
    cbw(0.9999, w);
    cbw(0.99, w2);
    EXPECT_SAME("loss = ce\n", lt_cross_entropy(c, e.logits, e.y, NULL, 0, LT_REDUCE_MEAN));
    EXPECT_SAME("loss = ce\nclass_weights = cb\ncb_beta = 0.99\nlabel_smoothing = 0.1\n",
                lt_cross_entropy(c, e.logits, e.y, w2, 0.1f, LT_REDUCE_MEAN));
    EXPECT_SAME("loss = cb_softmax\n", lt_loss_cb_softmax(c, e.logits, e.y, w, LT_REDUCE_BATCH_MEAN));
    EXPECT_SAME("loss = cb_softmax\ncb_norm = weights\n", lt_loss_cb_softmax(c, e.logits, e.y, w, LT_REDUCE_MEAN));
    EXPECT_SAME("loss = cb_softmax\nclass_weights = none\n",
                lt_loss_cb_softmax(c, e.logits, e.y, NULL, LT_REDUCE_BATCH_MEAN));
    EXPECT_SAME("loss = cb_bce\n", lt_loss_cb_softmax_bce(c, e.logits, e.y, w));
    EXPECT_SAME("loss = focal\nfocal_gamma = 2\n", lt_loss_focal(c, e.logits, e.y, NULL, 2.0f));
    EXPECT_SAME("loss = focal\nclass_weights = cb\ncb_beta = 0.99\n", lt_loss_focal(c, e.logits, e.y, w2, 1.0f));
    EXPECT_SAME("loss = cb_focal\ncb_beta = 0.99\nfocal_gamma = 0.5\n", lt_loss_cb_focal(c, e.logits, e.y, w2, 0.5f));
    EXPECT_SAME("loss = cb_sigmoid\n", lt_loss_cb_sigmoid(c, e.logits, e.y, w));
    EXPECT_SAME("loss = balanced_softmax\n", lt_loss_balanced_softmax(c, e.logits, e.y, sl_counts));
    EXPECT_SAME("loss = la\nla_tau = 0.5\n", lt_loss_logit_adjusted(c, e.logits, e.y, sl_counts, 0.5f));
    EXPECT_SAME("loss = eql\neql_lambda = 0.1\n", lt_loss_eql(c, e.logits, e.y, sl_counts, 0.1f));
    EXPECT_SAME("loss = las\nlas_head = 0.3\nlas_tail = 0.05\n", lt_loss_las(c, e.logits, e.y, sl_counts, 0.3f, 0.05f));
    {
        lt_rng rng;
        lt_mt_stage_loss_rng(&rng, 5, 0, 0, 0);
        EXPECT_SAME("loss = seql\nseql_lambda = 0.2\nseql_gamma = 0.7\n",
                    lt_loss_seql(c, e.logits, e.y, sl_counts, 0.2f, 0.7f, &rng));
    }
    {
        lt_iwb_config ic = lt_iwb_config_default();
        ic.lambda = 0.2f;
        ic.log2_nc = 1;
        ic.hc = LT_IWB_HC_SCALAR;
        ic.divergence = LT_IWB_KL_PAPER;
        ic.batch_mean = 1;
        EXPECT_SAME("loss = iwb\niwb_lambda = 0.2\niwb_nc = log2\niwb_hc = scalar\niwb_kl = paper\niwb_reduce = mean\n",
                    lt_add(c, lt_loss_cb_softmax_bce(c, e.logits, e.y, w),
                           lt_loss_iwb(c, e.features, e.m.head.weight, e.y, sl_counts, &ic)));
        lt_iwb_config id = lt_iwb_config_default();
        id.divergence = LT_IWB_MSE;
        EXPECT_SAME("loss = iwb\niwb_base = ce\nclass_weights = none\niwb_kl = mse\n",
                    lt_add(c, lt_cross_entropy(c, e.logits, e.y, NULL, 0, LT_REDUCE_MEAN),
                           lt_loss_iwb(c, e.features, e.m.head.weight, e.y, sl_counts, &id)));
    }
    {
        lt_tensor *ts[256];
        REQUIRE(e.m.params.count <= 256);
        /* only the classifier trains: wd_loss covers the trainable weights only */
        const char *fc = "fc";
        REQUIRE_OK(lt_params_freeze_all_except(&e.m.params, &fc, 1));
        int64_t n = trainable(&e.m, ts);
        CHECK_EQ_INT(n, 2);
        EXPECT_SAME("loss = ce\nwd_loss = 0.05\nfeature_reg = 0.01\n",
                    lt_add(c, lt_add(c, lt_cross_entropy(c, e.logits, e.y, NULL, 0, LT_REDUCE_MEAN),
                                     lt_loss_weight_decay(c, ts, n, 0.05f)),
                           lt_loss_feature_reg(c, e.features, 0.01f)));
        REQUIRE_OK(lt_params_set_trainable(&e.m.params, "", 1));
        n = trainable(&e.m, ts);
        CHECK(n > 2);
        EXPECT_SAME("loss = focal\nwd_loss = 5e-3\n",
                    lt_add(c, lt_loss_focal(c, e.logits, e.y, NULL, 1.0f), lt_loss_weight_decay(c, ts, n, 5e-3f)));
    }
    /* the terms are not no-ops: the value changes with them */
    {
        lt_recipe a, b;
        REQUIRE_OK(parse_with(&a, "", "loss = ce\n"));
        REQUIRE_OK(parse_with(&b, "", "loss = ce\nfeature_reg = 0.5\n"));
        CHECK(via_recipe(&e, &b, 0) > via_recipe(&e, &a, 0) + 1e-3);
        lt_recipe_free(&a);
        lt_recipe_free(&b);
    }
    env_free(&e);
}

TEST(stage_loss_ldam_drw_matches_library) {
    sl_env e;
    REQUIRE(env_init(&e, LT_HEAD_COSINE));
    lt_recipe r;
    REQUIRE_OK(parse_with(&r, "head = cosine\n", "loss = ldam\nclass_weights = drw\ndrw_epoch = 2\nldam_s = 20\nldam_max_m = 0.4\n"));
    CHECK(r.stages[0].class_weights == LT_WEIGHTS_DRW);
    CHECK_EQ_INT(r.stages[0].lc.drw_epoch, 2);
    REQUIRE_OK(lt_mt_stage_loss_begin(&r, &r.stages[0], &e.m, 1));
    for (int64_t epoch = 0; epoch < 4; epoch++) {
        float w[SL_C];
        REQUIRE_OK(lt_drw_weights(epoch, 2, 0.9999, sl_counts, SL_C, w));
        double got = via_recipe(&e, &r, epoch);
        env_tensors(&e);
        double want = value(lt_loss_ldam(e.ctx, e.logits, e.y, sl_counts, 0.4f, 20.0f, w), &e);
        CHECK(got == want);
        env_tensors(&e);
        double plain = value(lt_loss_ldam(e.ctx, e.logits, e.y, sl_counts, 0.4f, 20.0f, NULL), &e);
        if (epoch < 2) CHECK(got == plain);
        else CHECK(fabs(got - plain) > 1e-4);   /* the weights are on */
    }
    lt_recipe_free(&r);
    /* a linear head is refused when the stage starts */
    sl_env lin;
    REQUIRE(env_init(&lin, LT_HEAD_LINEAR));
    REQUIRE_OK(parse_with(&r, "head = cosine\n", "loss = ldam\n"));
    CHECK(lt_mt_stage_loss_begin(&r, &r.stages[0], &lin.m, 1) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "stage1.loss") != NULL);
    lt_recipe_free(&r);
    env_free(&lin);
    env_free(&e);
}

TEST(stage_loss_sigmoid_bias_init) {
    sl_env e;
    REQUIRE(env_init(&e, LT_HEAD_LINEAR));
    lt_recipe r;
    REQUIRE_OK(parse_with(&r, "", "loss = cb_focal\n"));
    CHECK(r.stages[0].lc.sigmoid_bias_init);
    REQUIRE_OK(lt_mt_stage_loss_begin(&r, &r.stages[0], &e.m, 0));   /* a resumed stage keeps its bias */
    CHECK(e.m.head.bias->data[0] != lt_loss_sigmoid_bias_init(SL_C));
    REQUIRE_OK(lt_mt_stage_loss_begin(&r, &r.stages[0], &e.m, 1));
    for (int c = 0; c < SL_C; c++) CHECK_NEAR(e.m.head.bias->data[c], -log(3.0), 1e-6);
    lt_recipe_free(&r);
    REQUIRE_OK(parse_with(&r, "", "loss = cb_sigmoid\nsigmoid_bias_init = false\n"));
    CHECK(!r.stages[0].lc.sigmoid_bias_init);
    lt_recipe_free(&r);
    REQUIRE_OK(parse_with(&r, "", "loss = eql\n"));
    CHECK(!r.stages[0].lc.sigmoid_bias_init);
    lt_recipe_free(&r);
    env_free(&e);
}

/* ---------------------------------------------------------------- recipe errors */

static void expect_error(const char *model_extra, const char *stage_extra, const char *needle1, const char *needle2,
                         int line) {
    lt_recipe r;
    lt_status s = parse_with(&r, model_extra, stage_extra);
    if (s != LT_ERR_CONFIG) {
        lt_test_fail(__FILE__, line, "expected a config error, got %s", lt_status_name(s));
        if (!s) lt_recipe_free(&r);
        return;
    }
    const char *msg = lt_last_error();
    if (!strstr(msg, needle1) || (needle2 && !strstr(msg, needle2)))
        lt_test_fail(__FILE__, line, "message '%s' lacks '%s' / '%s'", msg, needle1, needle2 ? needle2 : "");
}
#define EXPECT_ERROR(m, s, a, b) expect_error(m, s, a, b, __LINE__)

TEST(stage_loss_recipe_errors) {
    /* line numbers: [data] 1-2, [model] 3-5, [stage1] 6, epochs 7, batch_size 8, extra from 9 */
    EXPECT_ERROR("", "loss = ldam\n", "sl.ini:9: stage1.loss", "head = cosine");
    EXPECT_ERROR("", "loss = cross_entropy\n", "sl.ini:9: stage1.loss", "balanced_softmax");
    EXPECT_ERROR("", "loss = la\nclass_weights = cb\n", "sl.ini:10: stage1.class_weights", "la");
    EXPECT_ERROR("", "loss = seql\nclass_weights = drw\ndrw_epoch = 1\n", "stage1.class_weights", NULL);
    EXPECT_ERROR("", "loss = focal\nlabel_smoothing = 0.1\n", "sl.ini:10: stage1.label_smoothing", "loss = ce");
    EXPECT_ERROR("", "loss = ce\nclass_weights = drw\n", "stage1.class_weights", "drw_epoch");
    EXPECT_ERROR("", "loss = ce\ndrw_epoch = 3\n", "sl.ini:10: stage1.drw_epoch", "class_weights = drw");
    EXPECT_ERROR("", "loss = ce\ncb_beta = 0.9\n", "sl.ini:10: stage1.cb_beta", NULL);
    EXPECT_ERROR("", "loss = ce\niwb_lambda = 0.1\n", "sl.ini:10: stage1.iwb_lambda", "loss = iwb");
    EXPECT_ERROR("", "loss = iwb\niwb_kl = forward\n", "stage1.iwb_kl", "paper");
    EXPECT_ERROR("", "loss = iwb\niwb_base = ldam\n", "stage1.iwb_base", NULL);
    EXPECT_ERROR("", "loss = cb_softmax\nfocal_gamma = 2\n", "stage1.focal_gamma", NULL);
    EXPECT_ERROR("", "loss = ce\ncb_norm = batch\n", "stage1.cb_norm", "cb_softmax");
    EXPECT_ERROR("", "loss = ce\nsigmoid_bias_init = true\n", "stage1.sigmoid_bias_init", NULL);
    EXPECT_ERROR("", "loss = focal\nfocal_gamma = -1\n", "stage1.focal_gamma", NULL);
    EXPECT_ERROR("", "loss = seql\nseql_gamma = 1.5\n", "stage1.seql_gamma", NULL);
    EXPECT_ERROR("", "loss = ce\nwd_loss = -1\n", "stage1.wd_loss", NULL);
    EXPECT_ERROR("", "loss = ce\nldam_s = 30\n", "stage1.ldam_s", "loss = ldam");
    EXPECT_ERROR("", "loss = ce\ndrw_epochs = 3\n", "drw_epochs", NULL);   /* unknown key */
    EXPECT_ERROR("", "loss = ce\nclass_weights = drw\ndrw_epoch = -1\n", "sl.ini:11: stage1.drw_epoch", ">= 0");
    EXPECT_ERROR("", "loss = ce\nclass_weights = drw\ndrw_epoch = 1.5\n", "stage1.drw_epoch", NULL);
    EXPECT_ERROR("head = etf\n", "loss = iwb\n", "stage1.loss", "ETF");
    EXPECT_ERROR("head = cosine\n", "loss = cb_focal\n", "stage1.loss", "sigmoid_bias_init");
    EXPECT_ERROR("head = linear\n", "loss = ldam\n", "stage1.loss", "'linear'");
}

/* ---------------------------------------------------------------- training */

/* Generated data: tu_gen (tests/test_util.c), 10 test images per class, classes "q0".."q3". */

/* dir/name in this test's temporary directory (lt_test_tmpdir makes a new one per call). */
static char sl_base[600];
static const char *sub(const char *name) {
    static char buf[8][700];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 700, "%s/%s", sl_base, name);
    return b;
}

/* The "loss" of every line of dir/log.jsonl (at most n). */
static int log_losses(const char *dir, double *loss, int n) {
    char *d = tu_slurp(dir, "log.jsonl", NULL);
    if (!d) return -1;
    int k = 0;
    for (char *p = d; k < n && (p = strstr(p, "\"loss\":")); p += 7) loss[k++] = strtod(p + 7, NULL);
    lt_free(d);
    return k;
}

static lt_status train_text(const char *text, const char *const *sets, int n_sets, tu_gen *g, const char *dir, int resume,
                            int64_t stop) {
    lt_recipe r;
    lt_status s = lt_recipe_parse(&r, text, "t.ini", sets, n_sets);
    if (s) return s;
    lt_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = dir;
    o.resume = resume;
    o.stop_after_epochs = stop;
    lt_train_outcome out;
    s = lt_train(&r, &g->td, &o, &out);
    if (!s) lt_train_outcome_free(&out);
    lt_recipe_free(&r);
    return s;
}

/* One batch per epoch holding the whole training set, lr 0: the model never changes, so
 * each epoch's loss is the same function of the same logits and only the class weights
 * of that epoch can change it. */
#define DRW_RECIPE                                                                                  \
    "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\n"                           \
    "[stage1]\nepochs = 4\nbatch_size = 180\nlr = 0\nweight_decay = 0\nmomentum = 0\nschedule = constant\n" \
    "loss = ce\n"                                                                                   \
    "[eval]\ngroups = rank\n"

TEST(stage_loss_drw_switches_at_epoch_in_training) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 10, "q"));
    snprintf(sl_base, sizeof sl_base, "%s", lt_test_tmpdir());
    double none[4], drw[4], drw1[4];
    REQUIRE_OK(train_text(DRW_RECIPE, NULL, 0, &g, sub("drw_none"), 0, 0));
    const char *s2[] = {"stage1.class_weights=drw", "stage1.drw_epoch=2"};
    REQUIRE_OK(train_text(DRW_RECIPE, s2, 2, &g, sub("drw_2"), 0, 0));
    const char *s1[] = {"stage1.class_weights=drw", "stage1.drw_epoch=1"};
    REQUIRE_OK(train_text(DRW_RECIPE, s1, 2, &g, sub("drw_1"), 0, 0));
    REQUIRE(log_losses(sub("drw_none"), none, 4) == 4);
    REQUIRE(log_losses(sub("drw_2"), drw, 4) == 4);
    REQUIRE(log_losses(sub("drw_1"), drw1, 4) == 4);
    for (int e = 0; e < 4; e++) {
        CHECK_NEAR(none[e], none[0], 1e-5);                 /* nothing changes without weights */
        if (e < 2) CHECK_NEAR(drw[e], none[e], 1e-6);       /* epochs 1, 2: unweighted */
        else CHECK(fabs(drw[e] - none[e]) > 1e-3);          /* epochs 3, 4: CB weights */
        if (e < 1) CHECK_NEAR(drw1[e], none[e], 1e-6);
        else CHECK(fabs(drw1[e] - none[e]) > 1e-3);
    }
    CHECK_NEAR(drw[3], drw[2], 1e-5);
    CHECK_NEAR(drw1[2], drw[2], 1e-5);
    tu_gen_free(&g);
}

static int same_bytes(const char *da, const char *db, const char *name) {
    int64_t na, nb;
    char *a = tu_slurp(da, name, &na), *b = tu_slurp(db, name, &nb);
    int same = a && b && na == nb && !memcmp(a, b, (size_t)na);
    lt_free(a);
    lt_free(b);
    return same;
}

#define SEQL_RECIPE                                                                                 \
    "[data]\nnormalize = dataset\n[model]\narch = resnet8\nwidth = 0.5\n"                           \
    "[stage1]\nepochs = 3\nbatch_size = 32\nlr = 0.05\nloss = seql\nseql_lambda = 0.1\n"            \
    "[eval]\ngroups = rank\n"

TEST(stage_loss_seql_resume_is_byte_identical) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 10, "q"));
    snprintf(sl_base, sizeof sl_base, "%s", lt_test_tmpdir());
    const char *a = sub("seql_full"), *b = sub("seql_steps");
    REQUIRE_OK(train_text(SEQL_RECIPE, NULL, 0, &g, a, 0, 0));
    REQUIRE_OK(train_text(SEQL_RECIPE, NULL, 0, &g, b, 0, 1));
    REQUIRE_OK(train_text(SEQL_RECIPE, NULL, 0, &g, b, 1, 1));
    REQUIRE_OK(train_text(SEQL_RECIPE, NULL, 0, &g, b, 1, 0));
    CHECK(same_bytes(a, b, "stage1.safetensors"));
    CHECK(same_bytes(a, b, "last.safetensors"));
    CHECK(same_bytes(a, b, "metrics.json"));
    /* the Bernoulli draws matter: another seed of the loss stream (another run seed) or
     * γ = 0 (no masking) trains differently */
    const char *c = sub("seql_g0");
    const char *g0[] = {"stage1.seql_gamma=0"};
    REQUIRE_OK(train_text(SEQL_RECIPE, g0, 1, &g, c, 0, 0));
    CHECK(!same_bytes(a, c, "stage1.safetensors"));
    tu_gen_free(&g);
}

/* ---------------------------------------------------------------- every recipe */

static const char *const recipes[] = {
    "losses/ce", "losses/focal", "losses/cb_focal", "losses/ldam_drw", "losses/balanced_softmax", "losses/la_loss",
    "losses/eql", "losses/seql", "losses/las", "sampling/sqrt", "sampling/class_aware", "sampling/progressive",
};

/* configs/<name>.<version>.ini with the data replaced by the generated set (8x8 gray: no
 * CIFAR normalization), a small net and batch, one epoch of the published schedule
 * (stop_after_epochs = 1, so milestones, warm-up and DRW epochs stay as published). */
static void one_epoch(tu_gen *g, const char *name, const char *version) {
    const char *root = getenv("LT_TEST_ROOT");
    char path[700], dir[700];
    snprintf(path, sizeof path, "%s/configs/%s.%s.ini", root ? root : ".", name, version);
    const char *sets[] = {"data.normalize=dataset", "data.root=/nonexistent", "model.arch=resnet8", "model.width=0.5",
                          "stage1.batch_size=32", "eval.groups=rank", "run.seeds=1"};
    lt_recipe r;
    lt_status s = lt_recipe_load(&r, path, sets, 7);
    if (s) {
        lt_test_fail(__FILE__, __LINE__, "%s: %s", path, lt_last_error());
        return;
    }
    /* Without milestones or warm-up every stage can be cut to one epoch, so every stage's
     * loss runs (losses/las: LAS is the second stage's). */
    int whole = 1, n_stages = r.n_stages;
    for (int k = 0; k < r.n_stages; k++)
        if (r.stages[k].schedule.n_milestones || r.stages[k].schedule.warmup_epochs) whole = 0;
    if (whole) {
        lt_recipe_free(&r);
        char ep[LT_MAX_STAGES][32];
        const char *all[7 + LT_MAX_STAGES];
        for (int k = 0; k < 7; k++) all[k] = sets[k];
        for (int k = 0; k < n_stages; k++) {
            snprintf(ep[k], sizeof ep[k], "stage%d.epochs=1", k + 1);
            all[7 + k] = ep[k];
        }
        s = lt_recipe_load(&r, path, all, 7 + n_stages);
        if (s) {
            lt_test_fail(__FILE__, __LINE__, "%s: %s", path, lt_last_error());
            return;
        }
    }
    const char *tmp = lt_test_tmpdir();
    snprintf(dir, sizeof dir, "%s/%s_%s", tmp, name, version);
    for (char *p = dir + strlen(tmp) + 1; *p; p++)
        if (*p == '/') *p = '_';
    lt_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = dir;
    o.stop_after_epochs = whole ? 0 : 1;
    lt_train_outcome out;
    s = lt_train(&r, &g->td, &o, &out);
    lt_recipe_free(&r);
    if (s) {
        lt_test_fail(__FILE__, __LINE__, "%s: train: %s", path, lt_last_error());
        return;
    }
    if (whole && !out.finished) lt_test_fail(__FILE__, __LINE__, "%s: not finished", path);
    lt_train_outcome_free(&out);
    double loss[LT_MAX_STAGES + 1];
    int want = whole ? n_stages : 1;
    int n = log_losses(dir, loss, LT_MAX_STAGES + 1);
    if (n != want) lt_test_fail(__FILE__, __LINE__, "%s: %d log lines, expected %d", path, n, want);
    for (int k = 0; k < n; k++)
        if (!isfinite(loss[k]) || !(loss[k] > 0)) lt_test_fail(__FILE__, __LINE__, "%s: epoch %d loss %g", path, k + 1, loss[k]);
}

TEST(stage_loss_every_recipe_one_epoch_fmnist) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 10, "q"));
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) one_epoch(&g, recipes[i], "fmnist");
    tu_gen_free(&g);
}

TEST(stage_loss_every_recipe_one_epoch_cifar100) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 10, "q"));
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) one_epoch(&g, recipes[i], "cifar100");
    tu_gen_free(&g);
}

/* The CIFAR-100-LT recipes carry the published LDAM-DRW schedule, and the sampling
 * recipes select their samplers. */
static int load_cfg(lt_recipe *r, const char *name) {
    const char *root = getenv("LT_TEST_ROOT");
    char path[700];
    snprintf(path, sizeof path, "%s/configs/%s.ini", root ? root : ".", name);
    if (lt_recipe_load(r, path, NULL, 0) != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "%s: %s", path, lt_last_error());
        return 0;
    }
    return 1;
}

TEST(stage_loss_recipes_published_settings) {
    lt_recipe r;
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
        char name[200];
        snprintf(name, sizeof name, "%s.cifar100", recipes[i]);
        if (!load_cfg(&r, name)) continue;
        CHECK(r.data.kind == LT_DATASET_CIFAR100);
        CHECK_NEAR(r.data.longtail.imbalance_factor, 100, 0);
        CHECK_EQ_INT(r.data.longtail.n_max, 500);
        CHECK_EQ_INT(r.data.longtail.val_per_class, 0);
        CHECK_EQ_INT(r.depth, 32);
        const lt_stage_config *st = &r.stages[0];
        CHECK_EQ_INT(st->batch_size, 128);
        CHECK_NEAR(st->schedule.base_lr, 0.1, 1e-7);
        if (!strstr(name, "las")) {
            CHECK_EQ_INT(st->epochs, 200);
            CHECK_NEAR(st->optim.weight_decay, 2e-4, 1e-10);
            CHECK_EQ_INT(st->schedule.warmup_epochs, 5);
            CHECK_EQ_INT(st->schedule.n_milestones, 2);
            CHECK_EQ_INT(st->schedule.milestones[0], 160);
            CHECK_EQ_INT(st->schedule.milestones[1], 180);
            CHECK_NEAR(st->schedule.factors[0], 0.01, 1e-9);
            CHECK_NEAR(st->schedule.factors[1], 1e-4, 1e-11);
        }
        lt_recipe_free(&r);
    }
    if (load_cfg(&r, "losses/ldam_drw.cifar100")) {
        CHECK(r.head == LT_HEAD_COSINE);
        CHECK(r.stages[0].loss == LT_LOSS_LDAM);
        CHECK(r.stages[0].class_weights == LT_WEIGHTS_DRW);
        CHECK_EQ_INT(r.stages[0].lc.drw_epoch, 160);
        CHECK_NEAR(r.stages[0].lc.ldam_s, 30, 0);
        CHECK_NEAR(r.stages[0].lc.ldam_max_m, 0.5, 0);
        lt_recipe_free(&r);
    }
    if (load_cfg(&r, "losses/las.cifar100")) {
        CHECK_EQ_INT(r.n_stages, 2);
        CHECK(r.stages[1].loss == LT_LOSS_LAS);
        CHECK(r.stages[1].sampler.kind == LT_SAMPLER_CLASS_AWARE);
        lt_recipe_free(&r);
    }
    if (load_cfg(&r, "sampling/sqrt.fmnist")) {
        CHECK(r.stages[0].sampler.kind == LT_SAMPLER_QPOWER);
        CHECK_NEAR(r.stages[0].sampler.q, 0.5, 0);
        lt_recipe_free(&r);
    }
    if (load_cfg(&r, "sampling/class_aware.fmnist")) {
        CHECK(r.stages[0].sampler.kind == LT_SAMPLER_CLASS_AWARE);
        CHECK_EQ_INT(r.stages[0].sampler.k, 4);
        lt_recipe_free(&r);
    }
    if (load_cfg(&r, "sampling/progressive.fmnist")) {
        CHECK(r.stages[0].sampler.kind == LT_SAMPLER_PROGRESSIVE);
        CHECK_EQ_INT(r.stages[0].sampler.total_epochs, 40);
        lt_recipe_free(&r);
    }
}
