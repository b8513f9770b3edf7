/* Weight balancing machinery: classifier heads (cosine, ETF, LWS), MaxNorm, post-hoc
 * transforms through the stage-end path, stage-2 freezing, analysis fields, recipes. */
#include "test.h"

#include "longtail/ops.h"

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
