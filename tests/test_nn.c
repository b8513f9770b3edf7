/* Parameters and models: naming, counts, freezing, initialization, BN modes, the
 * allocation-free training step, and 5 SGD steps of a ResNet-8 against PyTorch. */
#include "test.h"
#include "longtail/io.h"
#include "longtail/nn.h"
#include "longtail/optim.h"

#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* Copies every entry of p from the fixture tensors "<prefix><name>" (shape checked). */
static lt_status load_state(lt_params *p, const lt_safetensors *st, const char *prefix) {
    char key[192];
    for (int64_t i = 0; i < p->count; i++) {
        lt_param *e = &p->items[i];
        snprintf(key, sizeof key, "%s%s", prefix, e->t.name);
        if (e->kind == LT_PARAM_COUNTER) {
            const void *v;
            lt_status s = lt_safetensors_get(st, key, LT_DT_I64, 0, NULL, &v);
            if (s != LT_OK) return s;
            memcpy(e->counter, v, sizeof(int64_t));
            continue;
        }
        const float *v;
        lt_status s = lt_safetensors_get_f32(st, key, e->t.ndim, e->t.shape, &v);
        if (s != LT_OK) return s;
        memcpy(e->t.data, v, (size_t)e->t.numel * sizeof(float));
    }
    return LT_OK;
}

static float *copy_floats(const float *src, int64_t n) {
    float *d = lt_malloc((size_t)n * sizeof(float));
    if (d) memcpy(d, src, (size_t)n * sizeof(float));
    return d;
}

/* One training step: forward, mean cross-entropy, backward, optimizer update. */
static lt_status train_step(lt_ctx *ctx, lt_model *m, lt_optim *o, float *x, const int64_t shape[4],
                            const int32_t *labels, float lr, float *loss_out) {
    lt_ctx_reset(ctx);
    lt_params_zero_grad(&m->params);
    lt_tensor *xt = lt_tensor_wrap(ctx, x, 4, shape);
    lt_tensor *logits = lt_model_forward(ctx, m, xt, NULL);
    lt_tensor *loss = lt_cross_entropy(ctx, logits, labels, NULL, 0.0f, LT_REDUCE_MEAN);
    if (lt_ctx_status(ctx) != LT_OK) return lt_error(lt_ctx_status(ctx), "%s", lt_ctx_error(ctx));
    if (loss_out) *loss_out = loss->data[0];
    lt_status s = lt_backward(ctx, loss);
    if (s != LT_OK) return s;
    return lt_optim_step(o, lr);
}

static void fill_normal(float *x, int64_t n, uint64_t seed) {
    lt_rng r;
    lt_rng_init(&r, seed, LT_STREAM_TEST);
    for (int64_t i = 0; i < n; i++) x[i] = lt_rng_normal(&r);
}

/* ---------------------------------------------------------------- lt_params */

TEST(params_build_views_and_lookup) {
    lt_params p;
    lt_params_init(&p);
    int64_t s_w[4] = {4, 3, 3, 2}, s_b[1] = {4}, idx = -1;
    REQUIRE_OK(lt_params_add(&p, "conv.weight", LT_PARAM_WEIGHT, 4, s_w, 0, &idx));
    CHECK_EQ_INT(idx, 0);
    REQUIRE_OK(lt_params_add(&p, "bn.weight", LT_PARAM_WEIGHT, 1, s_b, 0, NULL));
    REQUIRE_OK(lt_params_add(&p, "bn.running_mean", LT_PARAM_BUFFER, 1, s_b, 0, NULL));
    REQUIRE_OK(lt_params_add(&p, "bn.num_batches_tracked", LT_PARAM_COUNTER, 0, NULL, 0, NULL));
    REQUIRE_OK(lt_params_add(&p, "fc.bias", LT_PARAM_WEIGHT, 1, s_b, 1, &idx));
    CHECK_EQ_INT(idx, 4);
    CHECK(lt_params_add(&p, "fc.bias", LT_PARAM_WEIGHT, 1, s_b, 1, NULL) == LT_ERR_ARG);   /* duplicate */
    CHECK(strstr(lt_last_error(), "fc.bias") != NULL);
    CHECK(lt_params_add(&p, "", LT_PARAM_WEIGHT, 1, s_b, 0, NULL) == LT_ERR_ARG);
    CHECK(lt_params_add(&p, "x", LT_PARAM_WEIGHT, 1, s_b, LT_MAX_PARAM_GROUPS, NULL) == LT_ERR_ARG);
    int64_t bad[1] = {0};
    CHECK(lt_params_add(&p, "y", LT_PARAM_WEIGHT, 1, bad, 0, NULL) == LT_ERR_SHAPE);
    REQUIRE_OK(lt_params_finalize(&p));
    CHECK(lt_params_add(&p, "late", LT_PARAM_WEIGHT, 1, s_b, 0, NULL) == LT_ERR_STATE);

    CHECK_EQ_INT(p.count, 5);
    CHECK_EQ_INT(p.n_data, 72 + 4 + 4);
    CHECK_EQ_INT(lt_params_numel(&p), 80);
    CHECK_EQ_INT(p.n_buffers, 4);
    CHECK_EQ_INT(p.n_counters, 1);
    lt_tensor *w = lt_params_tensor(&p, "conv.weight"), *g = lt_params_tensor(&p, "bn.weight");
    lt_tensor *fb = lt_params_tensor(&p, "fc.bias"), *rm = lt_params_tensor(&p, "bn.running_mean");
    REQUIRE(w && g && fb && rm);
    CHECK(w->data == p.data && w->grad == p.grad);              /* contiguous, in order */
    CHECK(g->data == p.data + 72 && fb->data == p.data + 76);
    CHECK(fb->grad == p.grad + 76);
    CHECK(rm->data == p.buffers && rm->grad == NULL && !rm->requires_grad);
    CHECK(w->requires_grad && w->is_param && strcmp(w->name, "conv.weight") == 0);
    CHECK(lt_params_find(&p, "bn.num_batches_tracked")->counter == p.counters);
    CHECK(lt_params_tensor(&p, "bn.num_batches_tracked") == NULL);
    CHECK(lt_params_find(&p, "nope") == NULL);
    CHECK_EQ_INT(lt_params_find(&p, "fc.bias")->group, 1);
    for (int64_t i = 0; i < p.n_data; i++) p.grad[i] = 1.0f;
    lt_params_zero_grad(&p);
    for (int64_t i = 0; i < p.n_data; i++) CHECK(p.grad[i] == 0.0f);
    lt_params_free(&p);
    lt_params_free(&p);   /* idempotent */
}

TEST(params_prefix_matching) {
    CHECK(lt_params_name_matches("layer1.0.conv1.weight", "layer1"));
    CHECK(lt_params_name_matches("layer1.0.conv1.weight", "layer1.0"));
    CHECK(lt_params_name_matches("layer1.0.conv1.weight", "layer1.0.conv1.weight"));
    CHECK(lt_params_name_matches("layer1.0.conv1.weight", "layer1."));
    CHECK(!lt_params_name_matches("layer10.0.conv1.weight", "layer1"));
    CHECK(!lt_params_name_matches("fc2.weight", "fc"));
    CHECK(!lt_params_name_matches("fc", "fc.weight"));
    CHECK(lt_params_name_matches("anything", ""));
}

/* ---------------------------------------------------------------- models without ops */

TEST(model_param_counts_match_pytorch) {
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("resnet.safetensors"), &st));
    const lt_st_entry *e = lt_safetensors_find(st, "param_counts");
    REQUIRE(e && e->dtype == LT_DT_I64 && e->ndim == 2 && e->shape[1] == 5);
    const int64_t *rows = lt_safetensors_data(st, e);
    int found_32 = 0;
    for (int64_t r = 0; r < e->shape[0]; r++) {
        const int64_t *row = rows + 5 * r;
        lt_model_config c = lt_model_config_resnet((int)row[0], (int)row[2], 32, 32, (int)row[1]);
        c.width = (float)row[3] / 4.0f;
        lt_model m;
        REQUIRE_OK(lt_model_init(&m, &c, 1));
        if (lt_model_num_params(&m) != row[4])
            lt_test_fail(__FILE__, __LINE__, "ResNet-%lld, %lld classes, width %g: %lld parameters, PyTorch has %lld",
                         (long long)row[0], (long long)row[1], (double)c.width,
                         (long long)lt_model_num_params(&m), (long long)row[4]);
        if (row[0] == 32 && row[1] == 10 && row[2] == 3 && row[3] == 4) found_32 = 1;
        lt_model_free(&m);
    }
    CHECK(found_32);   /* the fixture includes ResNet-32/CIFAR-10 (464,154) */
    lt_safetensors_free(st);
}

TEST(model_names_match_pytorch_state_dict) {
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("resnet.safetensors"), &st));
    lt_model_config c = lt_model_config_resnet(8, 3, 16, 16, 10);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 0));
    /* Every PyTorch state_dict entry exists here with the same shape and kind ... */
    int64_t n_init = 0;
    for (int64_t i = 0; i < lt_safetensors_count(st); i++) {
        const lt_st_entry *e = lt_safetensors_entry(st, i);
        if (strncmp(e->name, "init.", 5) != 0) continue;
        n_init++;
        lt_param *p = lt_params_find(&m.params, e->name + 5);
        if (!p) { lt_test_fail(__FILE__, __LINE__, "no entry '%s'", e->name + 5); continue; }
        if (e->dtype == LT_DT_I64) { CHECK(p->kind == LT_PARAM_COUNTER); continue; }
        int buffer = strstr(e->name, "running_") != NULL;
        CHECK(p->kind == (buffer ? LT_PARAM_BUFFER : LT_PARAM_WEIGHT));
        CHECK_EQ_INT(p->t.ndim, e->ndim);
        for (int d = 0; d < e->ndim && d < 4; d++) CHECK_EQ_INT(p->t.shape[d], e->shape[d]);
    }
    /* ... and nothing else. */
    CHECK_EQ_INT(m.params.count, n_init);
    CHECK(lt_params_find(&m.params, "layer2.0.conv1.weight") != NULL);
    CHECK(lt_params_find(&m.params, "layer3.0.bn2.running_var") != NULL);
    CHECK_EQ_INT(lt_params_find(&m.params, "fc.weight")->group, LT_GROUP_HEAD);
    CHECK_EQ_INT(lt_params_find(&m.params, "conv1.weight")->group, LT_GROUP_BACKBONE);
    CHECK(m.head.weight == lt_params_tensor(&m.params, "fc.weight"));
    CHECK_EQ_INT(m.feature_dim, 64);
    lt_model_free(&m);
    lt_safetensors_free(st);
}

TEST(model_freeze_all_except_classifier) {
    lt_model_config c = lt_model_config_resnet(32, 3, 32, 32, 100);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 0));
    CHECK_EQ_INT(lt_params_numel_trainable(&m.params), lt_model_num_params(&m));
    REQUIRE_OK(lt_params_freeze_all_except(&m.params, (const char *[]){"fc"}, 1));
    CHECK_EQ_INT(lt_params_numel_trainable(&m.params), 64 * 100 + 100);
    CHECK(!lt_params_find(&m.params, "layer3.4.bn2.weight")->t.requires_grad);
    /* A prefix that selects nothing is an error and changes nothing. */
    CHECK(lt_params_freeze_all_except(&m.params, (const char *[]){"layer3", "fcc"}, 2) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "fcc") != NULL);
    CHECK_EQ_INT(lt_params_numel_trainable(&m.params), 64 * 100 + 100);
    CHECK_OK(lt_params_set_trainable(&m.params, "layer3.4", 1));
    CHECK(lt_params_find(&m.params, "layer3.4.bn2.weight")->t.requires_grad);
    CHECK(!lt_params_find(&m.params, "layer3.3.bn2.weight")->t.requires_grad);
    CHECK(lt_params_set_trainable(&m.params, "layer4", 1) == LT_ERR_ARG);
    CHECK_OK(lt_params_set_group(&m.params, "layer3", 2));
    CHECK_EQ_INT(lt_params_find(&m.params, "layer3.0.conv1.weight")->group, 2);
    CHECK_EQ_INT(lt_params_find(&m.params, "layer2.0.conv1.weight")->group, LT_GROUP_BACKBONE);
    lt_model_free(&m);
}

TEST(model_init_kaiming_and_deterministic) {
    lt_model_config c = lt_model_config_resnet(32, 3, 32, 32, 10);
    lt_model a, b, d;
    REQUIRE_OK(lt_model_init(&a, &c, 7));
    REQUIRE_OK(lt_model_init(&b, &c, 7));
    REQUIRE_OK(lt_model_init(&d, &c, 8));
    CHECK(memcmp(a.params.data, b.params.data, (size_t)a.params.n_data * sizeof(float)) == 0);
    CHECK(memcmp(a.params.data, d.params.data, (size_t)a.params.n_data * sizeof(float)) != 0);
    for (int64_t i = 0; i < a.params.count; i++) {
        lt_param *e = &a.params.items[i];
        const char *nm = e->t.name;
        if (e->kind == LT_PARAM_COUNTER) { CHECK_EQ_INT(*e->counter, 0); continue; }
        double s = 0, s2 = 0, mn = 1e30, mx = -1e30;
        int64_t n = e->t.numel;
        for (int64_t k = 0; k < n; k++) {
            double v = e->t.data[k];
            s += v; s2 += v * v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        const char *leaf = strrchr(nm, '.') + 1;
        int is_bn = strstr(nm, "bn") != NULL;
        if (is_bn) {
            double want = (!strcmp(leaf, "weight") || !strcmp(leaf, "running_var")) ? 1.0 : 0.0;
            if (mn != want || mx != want) lt_test_fail(__FILE__, __LINE__, "%s not all %g", nm, want);
        } else if (!strcmp(nm, "fc.bias")) {
            CHECK(mn >= -0.125 && mx < 0.125 && mx > mn);   /* U(±1/sqrt(64)) */
        } else {
            int64_t fan_in = e->t.ndim == 4 ? e->t.shape[1] * e->t.shape[2] * e->t.shape[3] : e->t.shape[1];
            double std = sqrt(s2 / n), want = sqrt(2.0 / (double)fan_in);
            double tol = 4.0 / sqrt((double)n) + 0.005;   /* sampling error of a std estimate */
            if (fabs(std / want - 1.0) > tol)
                lt_test_fail(__FILE__, __LINE__, "%s: std %.5f, want %.5f", nm, std, want);
            if (fabs(s / n) > 4.0 * want / sqrt((double)n))
                lt_test_fail(__FILE__, __LINE__, "%s: mean %.5f", nm, s / n);
        }
    }
    lt_model_config cz = c;
    cz.fc_bias_init = LT_BIAS_INIT_ZERO;
    lt_model z;
    REQUIRE_OK(lt_model_init(&z, &cz, 7));
    for (int k = 0; k < 10; k++) CHECK(z.head.bias->data[k] == 0.0f);
    lt_model_free(&a);
    lt_model_free(&b);
    lt_model_free(&d);
    lt_model_free(&z);
}

TEST(model_rejects_bad_config) {
    lt_model m;
    lt_model_config c = lt_model_config_resnet(9, 3, 32, 32, 10);
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "depth 9") != NULL);
    lt_model_free(&m);
    c = lt_model_config_resnet(20, 3, 32, 32, 0);
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    c = lt_model_config_resnet(20, 0, 32, 32, 10);
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    c = lt_model_config_resnet(20, 3, 32, 32, 10);
    c.width = -1.0f;
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    c.width = 1.0f;
    c.arch = (lt_arch)42;
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "unknown architecture 42") != NULL);
    /* fails after the backbone is declared: the model is freed and the message survives */
    c = lt_model_config_resnet(8, 3, 16, 16, 100);
    c.head = LT_HEAD_ETF;
    CHECK(lt_model_init(&m, &c, 0) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "ETF head needs feature dimension") != NULL);
    lt_model_free(&m);
    lt_model_free(NULL);
}

/* ---------------------------------------------------------------- models with ops */

TEST(model_forward_rejects_bad_input) {
    lt_model_config c = lt_model_config_resnet(8, 3, 16, 16, 10);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 0));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    static float buf[2 * 8 * 8 * 1];
    lt_tensor *x = lt_tensor_wrap(ctx, buf, 4, (int64_t[]){2, 8, 8, 1});   /* 1 channel, model wants 3 */
    CHECK(lt_model_forward(ctx, &m, x, NULL) == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_SHAPE);
    CHECK(strstr(lt_ctx_error(ctx), "(2, 8, 8, 1)") != NULL);
    lt_ctx_reset(ctx);
    x = lt_tensor_wrap(ctx, buf, 2, (int64_t[]){2, 64});
    CHECK(lt_model_forward(ctx, &m, x, NULL) == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_SHAPE);
    lt_ctx_reset(ctx);
    CHECK(lt_model_forward(ctx, &m, NULL, NULL) == NULL);
    CHECK(lt_ctx_status(ctx) != LT_OK);
    lt_ctx_reset(ctx);
    lt_tensor *f = lt_tensor_wrap(ctx, buf, 2, (int64_t[]){2, 32});   /* feature dim is 64 */
    CHECK(lt_model_head_forward(ctx, &m, f) == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_SHAPE);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

TEST(resnet8_matches_pytorch_5_sgd_steps) {
    /* tests/fixtures/fx_resnet.py: same init, batch and labels; SGD lr 0.1, momentum 0.9,
     * weight decay 5e-4, mean CE. Criterion: loss at every step within 1e-4 relative;
     * after step 5 every weight and running statistic within |a - b| <= 1e-3·max(1, |b|),
     * num_batches_tracked equal; eval-mode logits within the same bound. */
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("resnet.safetensors"), &st));
    lt_model_config c = lt_model_config_resnet(8, 3, 16, 16, 10);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 123));
    lt_ctx *ctx = lt_ctx_new();
    float *x = NULL;
    lt_optim o = {0};
    const float *xs, *want_loss, *want_logits;
    const void *labels_v;
    int64_t xshape[4] = {8, 16, 16, 3};
    if (!ctx) { lt_test_fail(__FILE__, __LINE__, "ctx: %s", lt_last_error()); goto done; }
    if (load_state(&m.params, st, "init.") != LT_OK ||
        lt_safetensors_get_f32(st, "x", 4, xshape, &xs) != LT_OK ||
        lt_safetensors_get(st, "labels", LT_DT_I32, 1, (int64_t[]){8}, &labels_v) != LT_OK ||
        lt_safetensors_get_f32(st, "losses", 1, (int64_t[]){5}, &want_loss) != LT_OK ||
        lt_safetensors_get_f32(st, "eval_logits", 2, (int64_t[]){8, 10}, &want_logits) != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "fixture: %s", lt_last_error());
        goto done;
    }
    x = copy_floats(xs, 8 * 16 * 16 * 3);
    lt_optim_config oc = lt_optim_config_sgd(0.9f, 5e-4f, 0);
    if (!x || lt_optim_init(&o, &m.params, &oc) != LT_OK) { lt_test_fail(__FILE__, __LINE__, "setup: %s", lt_last_error()); goto done; }
    for (int step = 0; step < 5; step++) {
        float loss = 0;
        lt_status s = train_step(ctx, &m, &o, x, xshape, labels_v, 0.1f, &loss);
        if (s != LT_OK) { lt_test_fail(__FILE__, __LINE__, "step %d: %s", step + 1, lt_last_error()); goto done; }
        if (!(fabs(loss - want_loss[step]) <= 1e-4 * fabs(want_loss[step])))
            lt_test_fail(__FILE__, __LINE__, "step %d: loss %.7f, PyTorch %.7f", step + 1, loss, want_loss[step]);
    }
    char key[192];
    int64_t bad = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int64_t i = 0; i < m.params.count; i++) {
        lt_param *e = &m.params.items[i];
        snprintf(key, sizeof key, "final.%s", e->t.name);
        if (e->kind == LT_PARAM_COUNTER) {
            const void *v;
            if (lt_safetensors_get(st, key, LT_DT_I64, 0, NULL, &v) != LT_OK) { lt_test_fail(__FILE__, __LINE__, "%s", lt_last_error()); continue; }
            int64_t want;
            memcpy(&want, v, sizeof want);
            CHECK_EQ_INT(*e->counter, want);
            continue;
        }
        const float *want;
        if (lt_safetensors_get_f32(st, key, e->t.ndim, e->t.shape, &want) != LT_OK) { lt_test_fail(__FILE__, __LINE__, "%s", lt_last_error()); continue; }
        for (int64_t k = 0; k < e->t.numel; k++) {
            double b = want[k], err = fabs(e->t.data[k] - b) / fmax(1.0, fabs(b));
            if (err > worst) { worst = err; worst_name = e->t.name; }
            if (!(err <= 1e-3)) {
                if (bad < 3) lt_test_fail(__FILE__, __LINE__, "%s[%lld]: %.7g, PyTorch %.7g", e->t.name, (long long)k, e->t.data[k], b);
                bad++;
            }
        }
    }
    if (bad) lt_test_fail(__FILE__, __LINE__, "%lld values differ (worst %.3g in %s)", (long long)bad, worst, worst_name);

    /* Eval mode: running statistics, no tape. */
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    lt_tensor *logits = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, xshape), NULL);
    if (!logits) { lt_test_fail(__FILE__, __LINE__, "eval: %s", lt_ctx_error(ctx)); goto done; }
    CHECK_EQ_INT(lt_ctx_tape_len(ctx), 0);
    for (int k = 0; k < 80; k++) {
        double b = want_logits[k];
        if (!(fabs(logits->data[k] - b) <= 1e-3 * fmax(1.0, fabs(b)))) {
            lt_test_fail(__FILE__, __LINE__, "eval logit %d: %.7g, PyTorch %.7g", k, logits->data[k], b);
            break;
        }
    }
    /* The same function through lt_batchnorm with running statistics: BN frozen with
     * gradients on, so conv and BN are not folded into one conv. */
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, 1);
    lt_ctx_set_grad(ctx, 1);
    lt_model_set_bn_mode(&m, LT_BN_FROZEN);
    logits = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, xshape), NULL);
    if (!logits) { lt_test_fail(__FILE__, __LINE__, "frozen BN: %s", lt_ctx_error(ctx)); goto done; }
    CHECK(lt_ctx_tape_len(ctx) > 0);
    for (int k = 0; k < 80; k++) {
        double b = want_logits[k];
        if (!(fabs(logits->data[k] - b) <= 1e-3 * fmax(1.0, fabs(b)))) {
            lt_test_fail(__FILE__, __LINE__, "frozen-BN logit %d: %.7g, PyTorch %.7g", k, logits->data[k], b);
            break;
        }
    }
done:
    lt_optim_free(&o);
    lt_free(x);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    lt_safetensors_free(st);
}

TEST(train_step_makes_no_allocations_after_warmup) {
    lt_model_config c = lt_model_config_resnet(8, 3, 16, 16, 10);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 1));
    lt_ctx *ctx = lt_ctx_new();
    lt_optim o;
    lt_optim_config oc = lt_optim_config_sgd(0.9f, 5e-4f, 1);
    REQUIRE(ctx);
    REQUIRE_OK(lt_optim_init(&o, &m.params, &oc));
    enum { B = 8 };
    int64_t shape[4] = {B, 16, 16, 3};
    float *x = lt_malloc(sizeof(float) * B * 16 * 16 * 3);
    REQUIRE(x);
    fill_normal(x, B * 16 * 16 * 3, 3);
    int32_t labels[B];
    for (int i = 0; i < B; i++) labels[i] = i % 10;
    for (int step = 0; step < 5; step++) {
        uint64_t before = lt_alloc_count();
        float loss;
        lt_status s = train_step(ctx, &m, &o, x, shape, labels, 0.05f, &loss);
        uint64_t made = lt_alloc_count() - before;
        if (s != LT_OK) { lt_test_fail(__FILE__, __LINE__, "step %d: %s", step, lt_last_error()); break; }
        CHECK(isfinite(loss));
        if (step >= 2 && made != 0)
            lt_test_fail(__FILE__, __LINE__, "step %d made %llu allocations", step, (unsigned long long)made);
    }
    lt_free(x);
    lt_optim_free(&o);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

/* Runs one training step and reports whether BN statistics / γ changed. */
TEST(model_bn_modes) {
    lt_model_config c = lt_model_config_resnet(8, 3, 8, 8, 4);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 2));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_optim o;
    lt_optim_config oc = lt_optim_config_sgd(0.0f, 0.0f, 0);
    REQUIRE_OK(lt_optim_init(&o, &m.params, &oc));
    int64_t shape[4] = {4, 8, 8, 3};
    float x[4 * 8 * 8 * 3];
    fill_normal(x, 4 * 8 * 8 * 3, 5);
    for (int i = 0; i < 4 * 8 * 8 * 3; i++) x[i] = 2.0f * x[i] + 0.5f;   /* stats far from 0/1 */
    int32_t labels[4] = {0, 1, 2, 3};
    lt_tensor *rm = lt_params_tensor(&m.params, "bn1.running_mean");
    lt_tensor *gamma = lt_params_tensor(&m.params, "layer1.0.bn2.weight");
    lt_tensor *conv = lt_params_tensor(&m.params, "layer1.0.conv2.weight");
    int64_t *nbt = lt_params_find(&m.params, "bn1.num_batches_tracked")->counter;
    size_t nbuf = (size_t)m.params.n_buffers * sizeof(float);
    float *buf0 = lt_malloc(nbuf);
    REQUIRE(buf0);

    /* FROZEN: statistics untouched, γ still trains. */
    lt_model_set_bn_mode(&m, LT_BN_FROZEN);
    memcpy(buf0, m.params.buffers, nbuf);
    float g0 = gamma->data[0];
    CHECK_OK(train_step(ctx, &m, &o, x, shape, labels, 0.1f, NULL));
    CHECK(memcmp(buf0, m.params.buffers, nbuf) == 0);
    CHECK_EQ_INT(*nbt, 0);
    CHECK(gamma->data[0] != g0);

    /* STATS_ONLY: statistics update, γ gets no gradient, convs still do. */
    lt_model_set_bn_mode(&m, LT_BN_STATS_ONLY);
    g0 = gamma->data[0];
    CHECK_OK(train_step(ctx, &m, &o, x, shape, labels, 0.1f, NULL));
    CHECK(memcmp(buf0, m.params.buffers, nbuf) != 0);
    CHECK(rm->data[0] != 0.0f);
    CHECK_EQ_INT(*nbt, 1);
    CHECK(gamma->data[0] == g0);
    for (int64_t k = 0; k < gamma->numel; k++) CHECK(gamma->grad[k] == 0.0f);
    double gsum = 0;
    for (int64_t k = 0; k < conv->numel; k++) gsum += fabs(conv->grad[k]);
    CHECK(gsum > 0);

    /* TRAIN: both. */
    lt_model_set_bn_mode(&m, LT_BN_TRAIN);
    memcpy(buf0, m.params.buffers, nbuf);
    CHECK_OK(train_step(ctx, &m, &o, x, shape, labels, 0.1f, NULL));
    CHECK(memcmp(buf0, m.params.buffers, nbuf) != 0);
    CHECK(gamma->data[0] != g0);
    CHECK_EQ_INT(*nbt, 2);

    /* Evaluation context: nothing changes whatever the mode. */
    memcpy(buf0, m.params.buffers, nbuf);
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_tensor *logits = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), NULL);
    CHECK(logits != NULL);
    CHECK(memcmp(buf0, m.params.buffers, nbuf) == 0);
    CHECK_EQ_INT(*nbt, 2);
    lt_free(buf0);
    lt_optim_free(&o);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

TEST(model_train_only_classifier_leaves_backbone_bit_identical) {
    lt_model_config c = lt_model_config_resnet(8, 1, 12, 12, 5);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 4));
    REQUIRE_OK(lt_params_freeze_all_except(&m.params, (const char *[]){"fc"}, 1));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_optim o;
    lt_optim_config oc = lt_optim_config_sgd(0.9f, 5e-4f, 0);
    REQUIRE_OK(lt_optim_init(&o, &m.params, &oc));
    int64_t fc_off = lt_params_find(&m.params, "fc.weight")->offset;
    size_t nb = (size_t)fc_off * sizeof(float);
    float *before = lt_malloc(nb), *fc_before = lt_malloc(5 * 64 * sizeof(float));
    REQUIRE(before && fc_before);
    memcpy(before, m.params.data, nb);
    memcpy(fc_before, m.params.data + fc_off, 5 * 64 * sizeof(float));
    int64_t shape[4] = {6, 12, 12, 1};
    float x[6 * 12 * 12];
    fill_normal(x, 6 * 12 * 12, 9);
    int32_t labels[6] = {0, 1, 2, 3, 4, 0};
    for (int step = 0; step < 3; step++) CHECK_OK(train_step(ctx, &m, &o, x, shape, labels, 0.1f, NULL));
    CHECK(memcmp(before, m.params.data, nb) == 0);
    CHECK(memcmp(fc_before, m.params.data + fc_off, 5 * 64 * sizeof(float)) != 0);
    /* No gradient reached the frozen weights. */
    double gsum = 0;
    for (int64_t k = 0; k < fc_off; k++) gsum += fabs(m.params.grad[k]);
    CHECK(gsum == 0.0);
    lt_free(before);
    lt_free(fc_before);
    lt_optim_free(&o);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}
