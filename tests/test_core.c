/* Core: errors, RNG, arena, op table. */
#include "test.h"
#include "ops/ops_internal.h"

#include <stdarg.h>
#include <string.h>

TEST(error_message_and_status) {
    lt_status s = lt_error(LT_ERR_SHAPE, "conv2d: input %s", "(1, 2)");
    CHECK_EQ_INT(s, LT_ERR_SHAPE);
    CHECK(strcmp(lt_last_error(), "conv2d: input (1, 2)") == 0);
    CHECK(strcmp(lt_status_name(LT_ERR_IO), "i/o error") == 0);
    /* re-raising the last message with context, prefix and suffix around it */
    lt_error(LT_ERR_FORMAT, "bad byte");
    CHECK_EQ_INT(lt_error(LT_ERR_CONFIG, "a.ini: %s at %d (%s)", lt_last_error(), 7, lt_last_error()), LT_ERR_CONFIG);
    CHECK(strcmp(lt_last_error(), "a.ini: bad byte at 7 (bad byte)") == 0);
    lt_clear_error();
    CHECK(lt_last_error()[0] == '\0');
}

static lt_status fail_at(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lt_status fail_at(const char *where, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(LT_ERR_FORMAT, where, fmt, ap);
    va_end(ap);
    return s;
}

/* lt_errorv: "prefix: message", no prefix with NULL, the last message usable as an argument. */
TEST(error_with_prefix) {
    CHECK_EQ_INT(fail_at("f.json: byte 7", "expected %s, got '%c'", "a value", 'x'), LT_ERR_FORMAT);
    CHECK(strcmp(lt_last_error(), "f.json: byte 7: expected a value, got 'x'") == 0);
    CHECK_EQ_INT(fail_at(NULL, "n = %d", 3), LT_ERR_FORMAT);
    CHECK(strcmp(lt_last_error(), "n = 3") == 0);
    fail_at("r.ini:2", "%s", lt_last_error());
    CHECK(strcmp(lt_last_error(), "r.ini:2: n = 3") == 0);
}

TEST(rng_streams_deterministic_and_distinct) {
    lt_rng a, b, c;
    lt_rng_init(&a, 42, LT_STREAM_INIT);
    lt_rng_init(&b, 42, LT_STREAM_INIT);
    lt_rng_init(&c, 42, LT_STREAM_DATA);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 100; i++) {
        uint32_t x = lt_rng_u32(&a), y = lt_rng_u32(&b), z = lt_rng_u32(&c);
        if (x != y) same_ab = 0;
        if (x != z) same_ac = 0;
    }
    CHECK(same_ab);
    CHECK(!same_ac);
}

TEST(rng_distributions) {
    lt_rng r;
    lt_rng_init(&r, 7, LT_STREAM_TEST);
    double s = 0, s2 = 0, u = 0;
    int counts[5] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = lt_rng_normal(&r);
        s += x;
        s2 += x * x;
        float f = lt_rng_uniform(&r);
        CHECK(f >= 0.0f && f < 1.0f);
        u += f;
        counts[lt_rng_below(&r, 5)]++;
    }
    CHECK_NEAR(s / n, 0.0, 0.01);
    CHECK_NEAR(s2 / n, 1.0, 0.02);
    CHECK_NEAR(u / n, 0.5, 0.01);
    for (int k = 0; k < 5; k++) CHECK_NEAR(counts[k] / (double)n, 0.2, 0.01);
    int64_t idx[10];
    for (int i = 0; i < 10; i++) idx[i] = i;
    lt_rng_shuffle(&r, idx, 10);
    int seen[10] = {0};
    for (int i = 0; i < 10; i++) seen[idx[i]]++;
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(seen[i], 1);
}

TEST(arena_merges_blocks_then_stops_allocating) {
    lt_arena a;
    lt_arena_init(&a);
    for (int step = 0; step < 4; step++) {
        uint64_t before = lt_alloc_count();
        for (int k = 0; k < 10; k++) {
            float *p = lt_arena_alloc(&a, 600000);
            REQUIRE(p != NULL);
            CHECK(((uintptr_t)p & 63) == 0);
            p[0] = 1.0f;
        }
        uint64_t made = lt_alloc_count() - before;
        if (step >= 2) CHECK_EQ_INT(made, 0);
        lt_arena_reset(&a);
    }
    lt_arena_free(&a);
}

TEST(op_table_complete) {
    for (int op = 0; op < LT_OP_COUNT; op++) {
        if (!lt_op_table[op].name || !lt_op_table[op].backward)
            lt_test_fail(__FILE__, __LINE__, "op %d has no table entry", op);
    }
}

TEST(tensor_bad_shape_is_error) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_tensor *t = lt_tensor_new(ctx, 2, (int64_t[]){3, -1});
    CHECK(t == NULL);
    CHECK_EQ_INT(lt_ctx_status(ctx), LT_ERR_SHAPE);
    CHECK(strstr(lt_ctx_error(ctx), "dimension 1") != NULL);
    /* sticky: later ops fail too, until reset */
    CHECK(lt_tensor_new1(ctx, 4) == NULL);
    lt_ctx_reset(ctx);
    CHECK(lt_tensor_new1(ctx, 4) != NULL);
    lt_ctx_free(ctx);
}

TEST(backward_twice_is_state_error) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    float xd[3] = {1, 2, 3}, xg[3] = {0};
    lt_tensor x = {.data = xd, .grad = xg, .requires_grad = 1, .name = "x"};
    REQUIRE_OK(lt_tensor_set_shape(&x, 1, (int64_t[]){3}));
    lt_tensor *loss = lt_sum(ctx, lt_mul(ctx, &x, &x), LT_AXES_ALL);
    REQUIRE(loss != NULL);
    REQUIRE_OK(lt_backward(ctx, loss));
    CHECK_NEAR(xg[2], 6.0, 1e-6);
    CHECK_EQ_INT(lt_backward(ctx, loss), LT_ERR_STATE);
    CHECK_NEAR(xg[2], 6.0, 1e-6);   /* nothing added by the refused call */
    lt_ctx_free(ctx);
}
