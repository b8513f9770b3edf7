/* Optimizers and schedules against PyTorch's numbers and the formulas of optim.h. */
#include "test.h"
#include "longtail/optim.h"

#include <string.h>

/* A 3-element parameter "w" (plus a frozen-able 2-element "v" in group 1). */
static int make_params(lt_params *p) {
    lt_params_init(p);
    int64_t s3 = 3, s2 = 2;
    if (lt_params_add(p, "w", LT_PARAM_WEIGHT, 1, &s3, 0, NULL) != LT_OK) return 0;
    if (lt_params_add(p, "head.v", LT_PARAM_WEIGHT, 1, &s2, 1, NULL) != LT_OK) return 0;
    if (lt_params_finalize(p) != LT_OK) return 0;
    const float w0[3] = {0.5f, -1.25f, 2.0f}, v0[2] = {0.75f, -0.5f};
    memcpy(p->data, w0, sizeof w0);
    memcpy(p->data + 3, v0, sizeof v0);
    return 1;
}

static const float grads[3][3] = {{0.1f, -0.2f, 0.3f}, {-0.4f, 0.25f, 0.05f}, {0.3f, 0.3f, -0.6f}};

/* Runs 3 steps with the gradients above on "w" and compares with torch.optim's results
 * (written by this script with torch 1.13:
 *   p = Parameter(tensor([0.5, -1.25, 2.0])); opt = <optimizer>([p])
 *   for g in grads: p.grad = tensor(g); opt.step(); print(p) ). */
static void check_optimizer(const char *what, const lt_optim_config *cfg, float lr,
                            const float want[3][3]) {
    lt_params p;
    REQUIRE(make_params(&p));
    lt_optim o;
    lt_status s = lt_optim_init(&o, &p, cfg);
    if (s != LT_OK) { lt_test_fail(__FILE__, __LINE__, "%s: init: %s", what, lt_last_error()); lt_params_free(&p); return; }
    for (int step = 0; step < 3; step++) {
        memcpy(p.grad, grads[step], sizeof grads[step]);
        p.grad[3] = 1.0f;   /* "head.v" moves too; not checked here */
        CHECK_OK(lt_optim_step(&o, lr));
        char name[64];
        snprintf(name, sizeof name, "%s step %d", what, step + 1);
        /* float32 rounding of a few ops: a couple of ulps */
        CHECK_CLOSE(name, p.data, want[step], 3, 1e-7, 2e-6);
    }
    lt_optim_free(&o);
    lt_params_free(&p);
}

TEST(optim_sgd_plain_and_weight_decay) {
    lt_optim_config c = lt_optim_config_sgd(0.0f, 0.0f, 0);
    const float sgd[3][3] = {{0.49000001f, -1.23000002f, 1.97000003f},
                             {0.530000031f, -1.255f, 1.96500003f},
                             {0.5f, -1.28499997f, 2.0250001f}};
    check_optimizer("sgd", &c, 0.1f, sgd);
    c = lt_optim_config_sgd(0.0f, 0.01f, 0);
    const float sgd_wd[3][3] = {{0.489499986f, -1.22874999f, 1.96800005f},
                                {0.529010475f, -1.25252128f, 1.96103203f},
                                {0.498481452f, -1.28126872f, 2.0190711f}};
    check_optimizer("sgd wd", &c, 0.1f, sgd_wd);
}

TEST(optim_sgd_momentum_nesterov_dampening) {
    lt_optim_config c = lt_optim_config_sgd(0.9f, 5e-4f, 0);
    const float mom[3][3] = {{0.489975005f, -1.22993755f, 1.96990001f},
                             {0.520928025f, -1.23681986f, 1.93771148f},
                             {0.518759668f, -1.27295208f, 1.96864498f}};
    check_optimizer("sgd momentum wd", &c, 0.1f, mom);
    c = lt_optim_config_sgd(0.9f, 1e-3f, 1);
    const float nest[3][3] = {{0.480904996f, -1.21176255f, 1.94262004f},
                              {0.548673153f, -1.24273109f, 1.90828896f},
                              {0.516603529f, -1.30497575f, 1.99570322f}};
    check_optimizer("sgd nesterov", &c, 0.1f, nest);
    c = lt_optim_config_sgd(0.5f, 0.0f, 0);
    c.dampening = 0.3f;
    const float damp[3][3] = {{0.495000005f, -1.24000001f, 1.98500001f},
                              {0.506500006f, -1.24374998f, 1.97574997f},
                              {0.501749992f, -1.25612497f, 1.99212492f}};
    check_optimizer("sgd dampening", &c, 0.05f, damp);
}

TEST(optim_sgd_first_step_by_hand) {
    /* Step 1 with momentum: buf = d = g + wd·p, p -= lr·buf; step 2: buf = μ·buf + d. */
    lt_params p;
    REQUIRE(make_params(&p));
    lt_optim o;
    lt_optim_config c = lt_optim_config_sgd(0.9f, 0.1f, 0);
    REQUIRE_OK(lt_optim_init(&o, &p, &c));
    p.grad[0] = 1.0f;                                  /* p = 0.5 */
    CHECK_OK(lt_optim_step(&o, 0.5f));
    double d1 = 1.0 + 0.1 * 0.5, p1 = 0.5 - 0.5 * d1;  /* 0.475 */
    CHECK_NEAR(p.data[0], p1, 1e-7);
    CHECK_NEAR(o.state[0], d1, 1e-7);
    CHECK_OK(lt_optim_step(&o, 0.5f));
    double d2 = 1.0 + 0.1 * p1, b2 = 0.9 * d1 + d2, p2 = p1 - 0.5 * b2;
    CHECK_NEAR(p.data[0], p2, 1e-6);
    CHECK_NEAR(o.state[0], b2, 1e-6);
    CHECK_EQ_INT(o.steps[0], 2);
    lt_optim_free(&o);
    lt_params_free(&p);
}

TEST(optim_adam_and_adamw) {
    lt_optim_config c = lt_optim_config_adam(0.0f);
    const float adam[3][3] = {{0.49000001f, -1.24000001f, 1.99000001f},
                              {0.495595038f, -1.24162734f, 1.98216677f},
                              {0.495331854f, -1.24691451f, 1.98513031f}};
    check_optimizer("adam", &c, 0.01f, adam);
    c = lt_optim_config_adam(0.1f);
    c.beta1 = 0.8f;
    c.beta2 = 0.99f;
    c.eps = 1e-6f;
    const float adam_wd[3][3] = {{0.490000069f, -1.24000001f, 1.99000001f},
                                 {0.494746506f, -1.236974f, 1.98085749f},
                                 {0.49249199f, -1.23823285f, 1.97964644f}};
    check_optimizer("adam wd", &c, 0.01f, adam_wd);
    c = lt_optim_config_adamw(0.1f);
    const float adamw[3][3] = {{0.489500016f, -1.23874998f, 1.98800004f},
                               {0.494605541f, -1.2391386f, 1.97817886f},
                               {0.493847758f, -1.24318659f, 1.97916424f}};
    check_optimizer("adamw", &c, 0.01f, adamw);
}

TEST(optim_adam_first_step_is_lr_times_sign) {
    /* With bias correction, step 1 moves every element by lr·g/(|g| + eps): ≈ lr·sign(g)
     * for |g| >> eps, half of that for |g| = eps (eps outside the square root, as PyTorch). */
    lt_params p;
    REQUIRE(make_params(&p));
    lt_optim o;
    lt_optim_config c = lt_optim_config_adam(0.0f);
    REQUIRE_OK(lt_optim_init(&o, &p, &c));
    CHECK_EQ_INT(o.n_state, 2 * p.n_data);
    const float g[5] = {3.0f, -0.001f, 20.0f, 1e-8f, -7.0f};
    float before[5];
    memcpy(before, p.data, sizeof before);
    memcpy(p.grad, g, sizeof g);
    CHECK_OK(lt_optim_step(&o, 0.1f));
    for (int i = 0; i < 5; i++) CHECK_NEAR(before[i] - p.data[i], 0.1 * g[i] / (fabs(g[i]) + 1e-8), 1e-5);
    lt_optim_free(&o);
    lt_params_free(&p);
}

TEST(optim_frozen_params_untouched_and_groups) {
    lt_params p;
    REQUIRE(make_params(&p));
    const lt_optim_config cfgs[3] = {lt_optim_config_sgd(0.9f, 5e-4f, 1), lt_optim_config_adam(0.1f),
                                     lt_optim_config_adamw(0.1f)};
    for (int k = 0; k < 3; k++) {
        lt_optim o;
        REQUIRE_OK(lt_optim_init(&o, &p, &cfgs[k]));
        REQUIRE_OK(lt_params_freeze_all_except(&p, (const char *[]){"head"}, 1));
        CHECK(!lt_params_find(&p, "w")->t.requires_grad);
        CHECK(lt_params_find(&p, "head.v")->t.requires_grad);
        CHECK_EQ_INT(lt_params_numel_trainable(&p), 2);
        float w_before[3], v_before[2];
        memcpy(w_before, p.data, sizeof w_before);
        memcpy(v_before, p.data + 3, sizeof v_before);
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < 5; i++) p.grad[i] = 0.25f * (float)(i + 1);
            CHECK_OK(lt_optim_step(&o, 0.1f));
        }
        CHECK(memcmp(w_before, p.data, sizeof w_before) == 0);   /* bit-identical */
        CHECK(memcmp(v_before, p.data + 3, sizeof v_before) != 0);
        CHECK_EQ_INT(o.steps[0], 0);
        CHECK_EQ_INT(o.steps[1], 3);
        for (int i = 0; i < 3; i++) CHECK(o.state[i] == 0.0f);  /* frozen state untouched */
        REQUIRE_OK(lt_params_set_trainable(&p, "", 1));
        lt_optim_free(&o);
    }

    /* Group 1 (head.v): lr scale 2, no weight decay; group 0: wd 0.5, scale 1. Plain SGD. */
    lt_optim o;
    lt_optim_config c = lt_optim_config_sgd(0.0f, 0.5f, 0);
    REQUIRE_OK(lt_optim_init(&o, &p, &c));
    REQUIRE_OK(lt_optim_set_group(&o, 1, 0.0f, 2.0f));
    CHECK(lt_optim_set_group(&o, LT_MAX_PARAM_GROUPS, 0.0f, 1.0f) == LT_ERR_ARG);
    float before[5];
    memcpy(before, p.data, sizeof before);
    for (int i = 0; i < 5; i++) p.grad[i] = 1.0f;
    CHECK_OK(lt_optim_step(&o, 0.1f));
    for (int i = 0; i < 3; i++) CHECK_NEAR(p.data[i], before[i] - 0.1 * (1.0 + 0.5 * before[i]), 1e-6);
    for (int i = 3; i < 5; i++) CHECK_NEAR(p.data[i], before[i] - 0.2 * 1.0, 1e-6);
    lt_optim_free(&o);
    lt_params_free(&p);
}

TEST(optim_rejects_bad_settings) {
    lt_params p;
    REQUIRE(make_params(&p));
    lt_optim o;
    lt_optim_config c = lt_optim_config_sgd(0.0f, 0.0f, 1);   /* Nesterov without momentum */
    CHECK(lt_optim_init(&o, &p, &c) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "Nesterov") != NULL);
    c = lt_optim_config_sgd(-0.1f, 0.0f, 0);
    CHECK(lt_optim_init(&o, &p, &c) == LT_ERR_ARG);
    c = lt_optim_config_adam(0.0f);
    c.beta2 = 1.0f;
    CHECK(lt_optim_init(&o, &p, &c) == LT_ERR_ARG);
    c = lt_optim_config_sgd(0.9f, 0.0f, 0);
    REQUIRE_OK(lt_optim_init(&o, &p, &c));
    CHECK(lt_optim_step(&o, -1.0f) == LT_ERR_ARG);
    CHECK(lt_optim_step(&o, NAN) == LT_ERR_ARG);
    lt_optim_free(&o);
    lt_optim_free(NULL);
    lt_params unfinished;
    lt_params_init(&unfinished);
    CHECK(lt_optim_init(&o, &unfinished, &c) == LT_ERR_STATE);
    lt_params_free(&p);
}

TEST(optim_reset_clears_state) {
    lt_params p;
    REQUIRE(make_params(&p));
    lt_optim o;
    lt_optim_config c = lt_optim_config_sgd(0.9f, 0.0f, 0);
    REQUIRE_OK(lt_optim_init(&o, &p, &c));
    for (int i = 0; i < 5; i++) p.grad[i] = 1.0f;
    CHECK_OK(lt_optim_step(&o, 0.1f));
    CHECK(o.state[0] != 0.0f);
    lt_optim_reset(&o);
    for (int64_t i = 0; i < o.n_state; i++) CHECK(o.state[i] == 0.0f);
    CHECK_EQ_INT(o.steps[0], 0);
    lt_optim_free(&o);
    lt_params_free(&p);
}

/* ---------------------------------------------------------------- schedules */

TEST(schedule_ldam_drw_step_with_warmup) {
    /* LDAM-DRW's adjust_learning_rate (1-based epoch e): lr·e/5 for e <= 5, ×0.0001 for
     * e > 180, ×0.01 for e > 160, else lr. Our epochs are 0-based. */
    lt_schedule s = {.kind = LT_SCHED_STEP, .base_lr = 0.1f, .warmup_epochs = 5, .n_milestones = 2,
                     .milestones = {160, 180}, .factors = {0.01f, 0.0001f}};
    CHECK_OK(lt_schedule_check(&s));
    for (int epoch = 0; epoch < 200; epoch++) {
        int e = epoch + 1;
        double want = e <= 5 ? 0.1 * e / 5 : e > 180 ? 0.1 * 0.0001 : e > 160 ? 0.1 * 0.01 : 0.1;
        double got = lt_schedule_lr(&s, epoch, 7, 100);
        if (fabs(got - want) > 1e-7 * want) {
            lt_test_fail(__FILE__, __LINE__, "epoch %d: lr %.9g, want %.9g", epoch, got, want);
            break;
        }
    }
    lt_schedule bad = s;
    bad.milestones[1] = 150;   /* not increasing */
    CHECK(lt_schedule_check(&bad) == LT_ERR_ARG);
}

TEST(schedule_cosine_matches_pytorch) {
    /* torch.optim.lr_scheduler.CosineAnnealingLR(SGD(lr=0.1), T_max=10), lr of epochs 0..10. */
    const double torch_lr[11] = {0.1, 0.0975528258, 0.0904508497, 0.0793892626, 0.0654508497, 0.05,
                                 0.0345491503, 0.0206107374, 0.00954915028, 0.00244717419, 0};
    lt_schedule s = {.kind = LT_SCHED_COSINE, .base_lr = 0.1f, .total_epochs = 10};
    CHECK_OK(lt_schedule_check(&s));
    for (int e = 0; e <= 10; e++) CHECK_NEAR(lt_schedule_lr(&s, e, 0, 50), torch_lr[e], 1e-8);
    CHECK_NEAR(lt_schedule_lr(&s, 3, 49, 50), torch_lr[3], 1e-8);   /* per epoch: iteration ignored */
    s.per_iter = 1;
    double t = 3 + 25.0 / 50.0;
    CHECK_NEAR(lt_schedule_lr(&s, 3, 25, 50), 0.05 * (1 + cos(M_PI * t / 10)), 1e-8);
    CHECK_NEAR(lt_schedule_lr(&s, 12, 0, 50), 0.0, 1e-12);   /* clamped after the end */
    s.warmup_epochs = 4;   /* warm-up multiplies the cosine value */
    CHECK_NEAR(lt_schedule_lr(&s, 1, 0, 50), torch_lr[1] * 2 / 4, 1e-8);
    CHECK_NEAR(lt_schedule_lr(&s, 4, 0, 50), torch_lr[4], 1e-8);
    s.total_epochs = 0;
    CHECK(lt_schedule_check(&s) == LT_ERR_ARG);
}

TEST(schedule_constant) {
    lt_schedule s = {.kind = LT_SCHED_CONSTANT, .base_lr = 0.05f};
    CHECK_OK(lt_schedule_check(&s));
    CHECK_NEAR(lt_schedule_lr(&s, 0, 0, 1), 0.05, 1e-9);
    CHECK_NEAR(lt_schedule_lr(&s, 1000, 3, 10), 0.05, 1e-9);
    s.base_lr = -1.0f;
    CHECK(lt_schedule_check(&s) == LT_ERR_ARG);
    s.base_lr = 0.1f;
    s.kind = (lt_sched_kind)7;
    CHECK(lt_schedule_check(&s) == LT_ERR_ARG);
}
