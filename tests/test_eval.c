/* Tests for src/eval: every metric on small cases whose answer is worked out by hand in
 * the comments, FDR against the definition, the solver's two paths, post-hoc transforms,
 * the τ sweep, JSON output, and error paths (including failed allocations). */
#include "test.h"

#include "longtail/eval.h"
#include "longtail/io.h"
#include "eval/eval_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- top-1 / top-k with ties, confusion, per-class, balanced ---- */

/* C = 6, k = 5. Hand analysis (argmax ties -> lowest index; label in top-k when fewer
 * than k classes have a larger logit or an equal logit at a lower index):
 *   s0 z=[1,3,3,0,0,0] y=2: pred 1 (tie 1 vs 2)     wrong; beaten by {1}        -> top5
 *   s1 same z,        y=1: pred 1                   right; beaten by {}         -> top5
 *   s2 z=0,           y=5: pred 0                   wrong; beaten by {0..4} = 5 -> not top5
 *   s3 z=0,           y=4: pred 0                   wrong; beaten by 4          -> top5
 *   s4 z=[5,0,0,0,0,9] y=0: pred 5                  wrong; beaten by {5}        -> top5
 *   s5 z=[0,1,2,3,4,5] y=0: pred 5                  wrong; beaten by 5          -> not top5
 * top1 = 1/6, top5 = 4/6. Confusion (true,pred): (2,1) (1,1) (5,0) (4,0) (0,5) (0,5).
 * Per-class: c0 0/2, c1 1/1, c2 0/1, c3 none (NaN), c4 0/1, c5 0/1; balanced = 1/5. */
static const float k_tie_logits[6 * 6] = {
    1, 3, 3, 0, 0, 0,
    1, 3, 3, 0, 0, 0,
    0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0,
    5, 0, 0, 0, 0, 9,
    0, 1, 2, 3, 4, 5,
};
static const int32_t k_tie_labels[6] = {2, 1, 5, 4, 0, 0};

TEST(eval_top1_top5_ties_confusion_per_class) {
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(6, 5, &m));
    REQUIRE_OK(lt_metrics_add_logits(m, k_tie_logits, k_tie_labels, 6));
    const int64_t counts[6] = {50, 40, 30, 20, 10, 5};
    lt_eval_result r;
    lt_eval_result_init(&r);
    REQUIRE_OK(lt_metrics_finalize(m, counts, NULL, &r));
    CHECK_EQ_INT(r.num_samples, 6);
    CHECK_EQ_INT(r.topk_k, 5);
    CHECK_NEAR(r.top1, 1.0 / 6.0, 1e-15);
    CHECK_NEAR(r.topk, 4.0 / 6.0, 1e-15);
    int64_t want[36] = {0};
    want[2 * 6 + 1] = 1; want[1 * 6 + 1] = 1; want[5 * 6 + 0] = 1;
    want[4 * 6 + 0] = 1; want[0 * 6 + 5] = 2;
    for (int i = 0; i < 36; i++)
        if (r.confusion[i] != want[i]) {
            lt_test_fail(__FILE__, __LINE__, "confusion[%d][%d] = %lld, want %lld", i / 6, i % 6,
                         (long long)r.confusion[i], (long long)want[i]);
            break;
        }
    const int64_t samples[6] = {2, 1, 1, 0, 1, 1};
    for (int c = 0; c < 6; c++) CHECK_EQ_INT(r.class_samples[c], samples[c]);
    CHECK_NEAR(r.per_class_acc[0], 0.0, 0);
    CHECK_NEAR(r.per_class_acc[1], 1.0, 0);
    CHECK(isnan(r.per_class_acc[3]));
    CHECK_NEAR(r.balanced_acc, 0.2, 1e-15);
    lt_eval_result_free(&r);
    CHECK(r.confusion == NULL && isnan(r.top1));

    /* k capped at C: with C = 3 every label is in the "top 5". */
    lt_metrics *m3 = NULL;
    REQUIRE_OK(lt_metrics_new(3, 5, &m3));
    const float z3[2 * 3] = {0, 1, 2, 2, 1, 0};
    const int32_t y3[2] = {0, 2};
    REQUIRE_OK(lt_metrics_add_logits(m3, z3, y3, 2));
    const int64_t c3[3] = {1, 1, 1};
    REQUIRE_OK(lt_metrics_finalize(m3, c3, NULL, &r));
    CHECK_EQ_INT(r.topk_k, 3);
    CHECK_NEAR(r.topk, 1.0, 0);
    CHECK_NEAR(r.top1, 0.0, 0);
    lt_eval_result_free(&r);
    lt_metrics_free(m3);

    /* top-2 on the tie case: s0 (beaten by 1) in, s1 in, s3 (4) out, s4 (1) in -> 3/6. */
    lt_metrics *m2 = NULL;
    REQUIRE_OK(lt_metrics_new(6, 2, &m2));
    REQUIRE_OK(lt_metrics_add_logits(m2, k_tie_logits, k_tie_labels, 6));
    REQUIRE_OK(lt_metrics_finalize(m2, counts, NULL, &r));
    CHECK_NEAR(r.topk, 3.0 / 6.0, 1e-15);
    lt_eval_result_free(&r);
    lt_metrics_free(m2);
    lt_metrics_free(m);
}

/* ---- groups ---- */

TEST(eval_groups_threshold_rank_auto) {
    int32_t g[10];
    lt_group_mode used;
    /* threshold 100 / 20: >100 many, 20..100 medium, <20 few (101 many, 100 and 20 medium,
     * 19 few). */
    const int64_t n[10] = {500, 300, 150, 101, 100, 60, 20, 19, 5, 1};
    const int32_t want_t[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    REQUIRE_OK(lt_eval_groups_assign(n, 10, NULL, g, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_THRESHOLD);
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_t[c]);

    /* custom thresholds: many > 200, few < 60 */
    lt_group_spec sp = {LT_GROUP_BY_THRESHOLD, 200, 60};
    const int32_t want_c[10] = {0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
    REQUIRE_OK(lt_eval_groups_assign(n, 10, &sp, g, NULL));
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_c[c]);

    /* rank thirds, C = 10 -> 3 / 4 / 3, with the counts shuffled so rank != index, and a
     * tie (two 50s: the lower index ranks first). Sorted: 900(c4) 700(c1) 300(c7) | 200(c0)
     * 50(c2) 50(c8) 40(c5) | 30(c9) 10(c3) 1(c6). */
    const int64_t r[10] = {200, 700, 50, 10, 900, 40, 1, 300, 50, 30};
    const int32_t want_r[10] = {1, 0, 1, 2, 0, 1, 2, 0, 1, 2};
    sp.mode = LT_GROUP_BY_RANK;
    REQUIRE_OK(lt_eval_groups_assign(r, 10, &sp, g, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_RANK);
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_r[c]);
    /* ties across a boundary: equal counts split by index (3 / 4 / 3) */
    const int64_t eq[10] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    const int32_t want_eq[10] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
    REQUIRE_OK(lt_eval_groups_assign(eq, 10, &sp, g, NULL));
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_eq[c]);
    /* C = 100: 33 / 34 / 33 */
    int64_t big[100];
    int32_t gb[100];
    int size[3] = {0, 0, 0};
    for (int c = 0; c < 100; c++) big[c] = 1000 - c;
    REQUIRE_OK(lt_eval_groups_assign(big, 100, &sp, gb, NULL));
    for (int c = 0; c < 100; c++) size[gb[c]]++;
    CHECK_EQ_INT(size[0], 33);
    CHECK_EQ_INT(size[1], 34);
    CHECK_EQ_INT(size[2], 33);

    /* auto: the default FMNIST-LT counts leave Few empty under 100/20 -> rank; FMNIST-LT-500
     * gives 4 / 3 / 3 under the thresholds -> threshold. */
    const int64_t fm[10] = {5980, 3576, 2136, 1272, 754, 444, 258, 146, 80, 40};
    const int64_t fm500[10] = {500, 299, 179, 107, 64, 38, 23, 13, 8, 5};
    sp.mode = LT_GROUP_BY_AUTO;
    sp.many_above = 100;
    sp.few_below = 20;
    REQUIRE_OK(lt_eval_groups_assign(fm, 10, &sp, g, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_RANK);
    const int32_t want_thirds[10] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_thirds[c]);
    REQUIRE_OK(lt_eval_groups_assign(fm500, 10, &sp, g, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_THRESHOLD);
    const int32_t want_500[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(g[c], want_500[c]);

    /* errors */
    const int64_t neg[2] = {3, -1};
    CHECK(lt_eval_groups_assign(neg, 2, NULL, g, NULL) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "class_counts[1] = -1") != NULL);
    lt_group_spec bad = {LT_GROUP_BY_THRESHOLD, 10, 50};
    CHECK(lt_eval_groups_assign(n, 10, &bad, g, NULL) == LT_ERR_ARG);
    CHECK(lt_eval_groups_assign(n, 0, NULL, g, NULL) == LT_ERR_ARG);
    lt_group_mode pm;
    REQUIRE_OK(lt_group_mode_parse("rank", &pm));
    CHECK_EQ_INT(pm, LT_GROUP_BY_RANK);
    CHECK(lt_group_mode_parse("thirds", &pm) == LT_ERR_ARG);
    CHECK(strcmp(lt_group_mode_name(LT_GROUP_BY_THRESHOLD), "threshold") == 0);
}

/* Per-class accuracy acc_c = k_c / n_c with preds only (wrong ones predict (y+1) mod C).
 *   class:    0    1    2    3    4    5    6    7    8    9
 *   n_c:      8    4    4    4    4    4    4    4    4    4
 *   k_c:      8    3    2    1    0    4    3    2    1    0
 *   acc:      1  .75   .5  .25    0    1  .75   .5  .25    0
 * top1 = 24/44; balanced = 5/10 = 0.5.
 * train counts {500,300,150,101,100,60,20,19,5,1}:
 *   threshold: many {0,1,2,3} = (1+.75+.5+.25)/4 = .625; medium {4,5,6} = 1.75/3;
 *              few {7,8,9} = .75/3 = .25
 *   rank:      many {0,1,2} = 2.25/3 = .75; medium {3,4,5,6} = 2/4 = .5; few = .25 */
static void fill_group_case(lt_metrics *m) {
    const int n_c[10] = {8, 4, 4, 4, 4, 4, 4, 4, 4, 4};
    const int k_c[10] = {8, 3, 2, 1, 0, 4, 3, 2, 1, 0};
    int32_t preds[44], labels[44];
    int i = 0;
    for (int c = 0; c < 10; c++)
        for (int j = 0; j < n_c[c]; j++, i++) {
            labels[i] = c;
            preds[i] = j < k_c[c] ? c : (c + 1) % 10;
        }
    LT_ASSERT(i == 44);
    LT_ASSERT(lt_metrics_add_preds(m, preds, labels, 44) == LT_OK);
}

TEST(eval_group_accuracy_both_modes) {
    const int64_t counts[10] = {500, 300, 150, 101, 100, 60, 20, 19, 5, 1};
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(10, 5, &m));
    fill_group_case(m);
    lt_eval_result r;
    lt_eval_result_init(&r);
    REQUIRE_OK(lt_metrics_finalize(m, counts, NULL, &r));
    CHECK_NEAR(r.top1, 24.0 / 44.0, 1e-15);
    CHECK_NEAR(r.balanced_acc, 0.5, 1e-15);
    CHECK_NEAR(r.group_acc[LT_EVAL_MANY], 0.625, 1e-15);
    CHECK_NEAR(r.group_acc[LT_EVAL_MEDIUM], 1.75 / 3.0, 1e-15);
    CHECK_NEAR(r.group_acc[LT_EVAL_FEW], 0.25, 1e-15);
    CHECK_EQ_INT(r.group_size[0], 4);
    CHECK_EQ_INT(r.group_size[1], 3);
    CHECK_EQ_INT(r.group_size[2], 3);
    CHECK_EQ_INT(r.groups.mode, LT_GROUP_BY_THRESHOLD);
    /* preds only: no scores, so top-k, ECE and NLL are undefined */
    CHECK(!r.has_probs && isnan(r.topk) && isnan(r.ece) && isnan(r.nll));

    lt_group_spec rank = {LT_GROUP_BY_RANK, 100, 20};
    REQUIRE_OK(lt_metrics_finalize(m, counts, &rank, &r));
    CHECK_NEAR(lt_eval_many(&r), 0.75, 1e-15);
    CHECK_NEAR(lt_eval_medium(&r), 0.5, 1e-15);
    CHECK_NEAR(lt_eval_few(&r), 0.25, 1e-15);
    CHECK_EQ_INT(r.groups.mode, LT_GROUP_BY_RANK);

    /* every class has > 100 training images: Medium and Few are empty -> NaN */
    int64_t all_many[10];
    for (int c = 0; c < 10; c++) all_many[c] = 1000 + c;
    REQUIRE_OK(lt_metrics_finalize(m, all_many, NULL, &r));
    CHECK_NEAR(r.group_acc[LT_EVAL_MANY], 0.5, 1e-15);
    CHECK(isnan(r.group_acc[LT_EVAL_MEDIUM]) && isnan(r.group_acc[LT_EVAL_FEW]));
    CHECK_EQ_INT(r.group_size[LT_EVAL_MEDIUM], 0);
    lt_eval_result_free(&r);
    lt_metrics_free(m);
}

/* ---- ECE and NLL ---- */

/* Two classes, so max softmax = 1 / (1 + e^{-|z0 - z1|}):
 *   s0 z=[ln 3, 0]      y=0: pred 0, conf .75, right   bin 11 = (11/15, 12/15]
 *   s1 z=[ln(18/7), 0]  y=1: pred 0, conf .72, wrong   bin 10 = (10/15, 11/15]
 *   s2 z=[0, ln 9]      y=1: pred 1, conf .9,  right   bin 13 = (13/15, 14/15]
 *   s3 z=[ln 9, 0]      y=1: pred 0, conf .9,  wrong   bin 13
 * ECE = Σ_b n_b/N |acc_b − conf_b| = 1/4·|1−.75| + 1/4·|0−.72| + 2/4·|.5−.9|
 *     = .0625 + .18 + .2 = .4425
 * (10 bins would put .72 and .75 together: .3175; one global bin: .3175; an unweighted
 * mean over the 3 non-empty bins: .4567 — all caught.)
 * NLL = −(ln .75 + ln .28 + ln .9 + ln .1) / 4. */
TEST(eval_ece_nll_hand_case) {
    const float l3 = (float)log(3.0), l9 = (float)log(9.0), l187 = (float)log(18.0 / 7.0);
    const float z[8] = {l3, 0, l187, 0, 0, l9, l9, 0};
    const int32_t y[4] = {0, 1, 1, 1};
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(2, 5, &m));
    REQUIRE_OK(lt_metrics_add_logits(m, z, y, 4));
    const int64_t counts[2] = {10, 5};
    lt_eval_result r;
    lt_eval_result_init(&r);
    REQUIRE_OK(lt_metrics_finalize(m, counts, NULL, &r));
    CHECK_NEAR(r.ece, 0.4425, 1e-6);
    CHECK_NEAR(r.nll, -(log(0.75) + log(0.28) + log(0.9) + log(0.1)) / 4.0, 1e-6);
    CHECK_NEAR(r.top1, 0.5, 0);
    CHECK(r.has_probs);
    lt_eval_result_free(&r);

    /* NLL must be computed stably: z = [1000, 0], y = 1 gives exactly 1000 (a naive
     * softmax overflows to inf/NaN); conf = 1 lands in the last bin, wrong: ECE = 1. */
    lt_metrics_reset(m);
    CHECK_EQ_INT(lt_metrics_count(m), 0);
    const float zb[2] = {1000, 0};
    const int32_t yb[1] = {1};
    REQUIRE_OK(lt_metrics_add_logits(m, zb, yb, 1));
    REQUIRE_OK(lt_metrics_finalize(m, counts, NULL, &r));
    CHECK_NEAR(r.nll, 1000.0, 1e-9);
    CHECK_NEAR(r.ece, 1.0, 1e-12);
    lt_eval_result_free(&r);
    lt_metrics_free(m);
}

/* Same data in one batch, in two batches, and through merge: identical counts and (up to
 * association of one addition) identical sums. */
TEST(eval_metrics_batches_merge_deterministic) {
    enum { N = 300, C = 7 };
    float *z = malloc(sizeof(float) * N * C);
    int32_t y[N];
    lt_rng rng;
    lt_rng_init(&rng, 5, LT_STREAM_TEST);
    for (int i = 0; i < N * C; i++) z[i] = 3.0f * lt_rng_normal(&rng);
    for (int i = 0; i < N; i++) y[i] = (int32_t)lt_rng_below(&rng, C);
    const int64_t counts[C] = {400, 200, 120, 80, 30, 10, 3};
    lt_metrics *a = NULL, *b = NULL, *b2 = NULL;
    REQUIRE_OK(lt_metrics_new(C, 5, &a));
    REQUIRE_OK(lt_metrics_new(C, 5, &b));
    REQUIRE_OK(lt_metrics_new(C, 5, &b2));
    REQUIRE_OK(lt_metrics_add_logits(a, z, y, N));
    REQUIRE_OK(lt_metrics_add_logits(b, z, y, 100));
    REQUIRE_OK(lt_metrics_add_logits(b, z + 100 * C, y + 100, N - 100));
    lt_eval_result ra, rb;
    lt_eval_result_init(&ra);
    lt_eval_result_init(&rb);
    REQUIRE_OK(lt_metrics_finalize(a, counts, NULL, &ra));
    REQUIRE_OK(lt_metrics_finalize(b, counts, NULL, &rb));
    CHECK(ra.top1 == rb.top1 && ra.topk == rb.topk && ra.nll == rb.nll && ra.ece == rb.ece);
    CHECK(memcmp(ra.confusion, rb.confusion, sizeof(int64_t) * C * C) == 0);
    /* merge: b = first 100, b2 = rest */
    lt_metrics_reset(b);
    REQUIRE_OK(lt_metrics_add_logits(b, z, y, 100));
    REQUIRE_OK(lt_metrics_add_logits(b2, z + 100 * C, y + 100, N - 100));
    REQUIRE_OK(lt_metrics_merge(b, b2));
    REQUIRE_OK(lt_metrics_finalize(b, counts, NULL, &rb));
    CHECK(ra.top1 == rb.top1 && ra.topk == rb.topk);
    CHECK_NEAR(ra.nll, rb.nll, 1e-12);
    CHECK_NEAR(ra.ece, rb.ece, 1e-12);
    CHECK(memcmp(ra.confusion, rb.confusion, sizeof(int64_t) * C * C) == 0);
    /* cross-check top-1 against a direct count */
    int correct = 0;
    for (int i = 0; i < N; i++) {
        int p = 0;
        for (int c = 1; c < C; c++) if (z[i * C + c] > z[i * C + p]) p = c;
        correct += p == y[i];
    }
    CHECK_NEAR(ra.top1, (double)correct / N, 1e-15);
    lt_metrics *other = NULL;
    REQUIRE_OK(lt_metrics_new(C + 1, 5, &other));
    CHECK(lt_metrics_merge(b, other) == LT_ERR_ARG);
    lt_metrics_free(other);
    lt_eval_result_free(&ra);
    lt_eval_result_free(&rb);
    lt_metrics_free(a);
    lt_metrics_free(b);
    lt_metrics_free(b2);
    free(z);
}

TEST(eval_metrics_errors_add_nothing) {
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(3, 5, &m));
    const float z[6] = {0, 1, 2, 0, NAN, 1};
    const int32_t y[2] = {0, 1};
    CHECK(lt_metrics_add_logits(m, z, y, 2) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "logits[1][1]") != NULL);
    CHECK_EQ_INT(lt_metrics_count(m), 0);
    const int32_t ybad[2] = {0, 3};
    const float z2[6] = {0, 1, 2, 0, 1, 1};
    CHECK(lt_metrics_add_logits(m, z2, ybad, 2) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "labels[1] = 3") != NULL);
    CHECK_EQ_INT(lt_metrics_count(m), 0);
    const int32_t pbad[2] = {-1, 0};
    CHECK(lt_metrics_add_preds(m, pbad, y, 2) == LT_ERR_ARG);
    lt_eval_result r;
    lt_eval_result_init(&r);
    const int64_t counts[3] = {1, 1, 1};
    CHECK(lt_metrics_finalize(m, counts, NULL, &r) == LT_ERR_STATE);   /* nothing added */
    lt_metrics *m0 = (lt_metrics *)&r;   /* must be reset to NULL on failure */
    CHECK(lt_metrics_new(0, 5, &m0) == LT_ERR_ARG && m0 == NULL);
    lt_metrics_free(m);
    lt_metrics_free(NULL);
    lt_eval_result_free(NULL);
}

/* Every allocation inside finalize and FDR failing in turn: an error, no leak (ASan). */
static int g_fail_at = -1, g_calls = 0;
static void *failing_malloc(size_t n, void *u) {
    (void)u;
    if (g_calls++ == g_fail_at) return NULL;
    return malloc(n);
}
static void *failing_realloc(void *p, size_t n, void *u) {
    (void)u;
    if (g_calls++ == g_fail_at) return NULL;
    return realloc(p, n);
}
static void plain_free(void *p, void *u) { (void)u; free(p); }

TEST(eval_allocation_failures) {
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(2, 5, &m));
    const float z[8] = {1, 0, 0, 1, 1, 0, 0, 1};
    const int32_t y[4] = {0, 1, 1, 0};
    REQUIRE_OK(lt_metrics_add_logits(m, z, y, 4));
    const int64_t counts[2] = {3, 1};
    const float f[4 * 2] = {0, 0, 1, 0, 5, 1, 6, 3};
    const int32_t fy[4] = {0, 0, 1, 1};
    lt_alloc_hook hook = {failing_malloc, failing_realloc, plain_free, NULL};
    int failures = 0;
    for (int k = 0; k < 20; k++) {
        g_fail_at = k;
        g_calls = 0;
        lt_set_alloc_hook(&hook);
        lt_eval_result r;
        lt_eval_result_init(&r);
        lt_status s1 = lt_metrics_finalize(m, counts, NULL, &r);
        lt_status s2 = s1 == LT_OK ? lt_eval_features(f, fy, 4, 2, 2, &r.features) : s1;
        lt_set_alloc_hook(NULL);
        if (s1 == LT_ERR_NOMEM || s2 == LT_ERR_NOMEM) failures++;
        else CHECK(s1 == LT_OK && s2 == LT_OK);
        lt_eval_result_free(&r);
    }
    CHECK(failures >= 5);   /* finalize allocates 5 arrays, FDR several more */
    lt_metrics_free(m);
}

/* ---- analysis ---- */

TEST(eval_weight_feature_norms_bn_stats) {
    const float w[2 * 2] = {3, 4, 1, 0};
    double norms[2];
    REQUIRE_OK(lt_eval_weight_norms(w, 2, 2, norms));
    CHECK_NEAR(norms[0], 5.0, 0);
    CHECK_NEAR(norms[1], 1.0, 0);
    /* class 0: ‖(3,4)‖ = 5, ‖(6,8)‖ = 10 -> 7.5; class 1: 1; class 2: no images -> NaN */
    const float x[3 * 2] = {3, 4, 0, 1, 6, 8};
    const int32_t y[3] = {0, 1, 0};
    double fn[3];
    REQUIRE_OK(lt_eval_feature_norms(x, y, 3, 2, 3, fn));
    CHECK_NEAR(fn[0], 7.5, 1e-15);
    CHECK_NEAR(fn[1], 1.0, 0);
    CHECK(isnan(fn[2]));
    /* γ = 1, 2, 3, 4: mean 2.5, population std sqrt(((1.5)² + (.5)²)·2 / 4) = sqrt(1.25) */
    const float gamma[4] = {1, 2, 3, 4};
    double mean, sd;
    REQUIRE_OK(lt_eval_bn_scale_stats(gamma, 4, &mean, &sd));
    CHECK_NEAR(mean, 2.5, 0);
    CHECK_NEAR(sd, sqrt(1.25), 1e-15);
    REQUIRE_OK(lt_eval_bn_scale_stats(NULL, 0, &mean, &sd));
    CHECK(isnan(mean) && isnan(sd));
    lt_eval_result r;
    lt_eval_result_init(&r);
    REQUIRE_OK(lt_eval_result_set_weight_norms(&r, w, 2, 2));
    CHECK_NEAR(r.weight_norms[0], 5.0, 0);
    CHECK(lt_eval_result_set_weight_norms(&r, w, 1, 4) == LT_ERR_ARG);   /* C mismatch */
    REQUIRE_OK(lt_eval_result_set_bn_scales(&r, gamma, 4));
    CHECK_EQ_INT(r.bn_scale_count, 4);
    lt_eval_result_free(&r);
}

/* FDR, 2 classes in 2-D, unequal class sizes (so μ is the sample mean, not the mean of
 * class means):
 *   class 0: (0,0), (2,1)          μ0 = (1, .5);  deviations ±(1, .5)
 *   class 1: (3,3), (3,5), (3,4)   μ1 = (3, 4);   deviations (0,-1), (0,1), (0,0)
 *   S_W = 2·[[1,.5],[.5,.25]] + [[0,0],[0,2]] = [[2,1],[1,2.5]], det 4,
 *   S_W⁻¹ = ¼ [[2.5,-1],[-1,2]]
 *   μ = (2+9, 1+12)/5 = (2.2, 2.6); d1 = μ1 − μ = (.8, 1.4); d0 = (-1.2, -2.1) = -1.5·d1
 *   S_W⁻¹ d1 = ¼ (2.5·.8 − 1.4, −.8 + 2.8) = (.15, .5); d1ᵀ S_W⁻¹ d1 = .12 + .7 = .82
 *   FDR = tr(S_W⁻¹ S_B) = Σ n_c d_cᵀ S_W⁻¹ d_c = 2·(2.25·.82) + 3·.82 = 3.69 + 2.46 = 6.15
 * (The mean of class means instead of the sample mean would give 6.40625, dropping the
 * n_c weights 2.25·.82 + .82 = 2.665: both are caught.) */
static const float k_fdr_x[5 * 2] = {0, 0, 2, 1, 3, 3, 3, 5, 3, 4};
static const int32_t k_fdr_y[5] = {0, 0, 1, 1, 1};

TEST(eval_fdr_hand_case) {
    double fdr = 0;
    int64_t dims = 0;
    REQUIRE_OK(lt_eval_fdr(k_fdr_x, k_fdr_y, 5, 2, 2, &fdr, &dims));
    CHECK_NEAR(fdr, 6.15, 1e-12);
    CHECK_EQ_INT(dims, 2);
    /* a third class with no images changes nothing */
    REQUIRE_OK(lt_eval_fdr(k_fdr_x, k_fdr_y, 5, 2, 3, &fdr, &dims));
    CHECK_NEAR(fdr, 6.15, 1e-12);

    /* constant dimensions (7 everywhere, and 0 everywhere) are dropped: same 6.15 */
    float x4[5 * 4];
    for (int i = 0; i < 5; i++) {
        x4[i * 4 + 0] = 7.0f;
        x4[i * 4 + 1] = k_fdr_x[i * 2 + 0];
        x4[i * 4 + 2] = 0.0f;
        x4[i * 4 + 3] = k_fdr_x[i * 2 + 1];
    }
    REQUIRE_OK(lt_eval_fdr(x4, k_fdr_y, 5, 4, 2, &fdr, &dims));
    CHECK_NEAR(fdr, 6.15, 1e-12);
    CHECK_EQ_INT(dims, 2);

    /* through lt_eval_features into a result */
    lt_feature_stats st = {NULL, NAN, 0, LT_OK, ""};
    REQUIRE_OK(lt_eval_features(x4, k_fdr_y, 5, 4, 2, &st));
    CHECK_NEAR(st.fdr, 6.15, 1e-12);
    CHECK_EQ_INT(st.fdr_status, LT_OK);
    CHECK_NEAR(st.class_norm[0], (7.0 + sqrt(49.0 + 4 + 1)) / 2, 1e-12);
    lt_feature_stats_free(&st);
}

TEST(eval_fdr_singular_and_degenerate) {
    double fdr = 0;
    int64_t dims = 0;
    /* each class on the line x = y: within-class deviations all along (1,1), so
     * S_W = [[1,1],[1,1]] is singular although n − K = 2 = D */
    const float xl[4 * 2] = {0, 0, 1, 1, 2, 2, 3, 3};
    const int32_t yl[4] = {0, 0, 1, 1};
    CHECK(lt_eval_fdr(xl, yl, 4, 2, 2, &fdr, &dims) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "singular") != NULL);
    CHECK(isnan(fdr));
    /* dimension 1 is constant within each class but differs between them: S_W = diag(1,0) */
    const float xc[4 * 2] = {0, 0, 1, 0, 0, 5, 1, 5};
    CHECK(lt_eval_fdr(xc, yl, 4, 2, 2, &fdr, &dims) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "singular") != NULL);
    /* x2 = x0 + x1 exactly (small integers), 3 classes of 10: S_W is singular in exact
     * arithmetic, but the class means (sums / 10) round, so the computed pivot is ~1e-16,
     * not 0: the relative tolerance must call it singular rather than return a huge FDR. */
    float xd[30 * 3];
    int32_t yd[30];
    for (int i = 0; i < 30; i++) {
        yd[i] = i % 3;
        xd[i * 3 + 0] = (float)((i * 7) % 5 - 2);
        xd[i * 3 + 1] = (float)((i * 3) % 7 + yd[i]);
        xd[i * 3 + 2] = xd[i * 3 + 0] + xd[i * 3 + 1];
    }
    CHECK(lt_eval_fdr(xd, yd, 30, 3, 3, &fdr, &dims) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "singular") != NULL);
    /* fewer images than dimensions allow: rank(S_W) <= n − K = 1 < 2 */
    const float x3[3 * 2] = {0, 0, 1, 2, 5, 1};
    const int32_t y3[3] = {0, 0, 1};
    CHECK(lt_eval_fdr(x3, y3, 3, 2, 2, &fdr, &dims) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "rank") != NULL);
    /* one class only */
    const int32_t y1[4] = {0, 0, 0, 0};
    CHECK(lt_eval_fdr(xc, y1, 4, 2, 2, &fdr, &dims) == LT_ERR_ARG);
    /* every dimension constant */
    const float xk[4 * 2] = {1, 2, 1, 2, 1, 2, 1, 2};
    CHECK(lt_eval_fdr(xk, yl, 4, 2, 2, &fdr, &dims) == LT_ERR_ARG);
    CHECK_EQ_INT(dims, 0);
    /* lt_eval_features records the failure instead of failing */
    lt_feature_stats st = {NULL, NAN, 0, LT_OK, ""};
    REQUIRE_OK(lt_eval_features(xl, yl, 4, 2, 2, &st));
    CHECK(isnan(st.fdr) && st.fdr_status == LT_ERR_ARG && strstr(st.fdr_error, "singular"));
    CHECK(st.class_norm != NULL);
    lt_feature_stats_free(&st);
}

/* Reference: S_B and S_W straight from their definitions, 3-D, inverse by cofactors. */
static double fdr_reference_3d(const float *x, const int32_t *y, int n, int C) {
    double mu[3] = {0}, muc[8][3] = {{0}}, cnt[8] = {0};
    for (int i = 0; i < n; i++) {
        cnt[y[i]]++;
        for (int d = 0; d < 3; d++) { mu[d] += x[i * 3 + d]; muc[y[i]][d] += x[i * 3 + d]; }
    }
    for (int d = 0; d < 3; d++) mu[d] /= n;
    for (int c = 0; c < C; c++)
        for (int d = 0; d < 3; d++) muc[c][d] /= cnt[c];
    double sw[3][3] = {{0}}, sb[3][3] = {{0}};
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                sw[a][b] += (x[i * 3 + a] - muc[y[i]][a]) * (x[i * 3 + b] - muc[y[i]][b]);
    for (int c = 0; c < C; c++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                sb[a][b] += cnt[c] * (muc[c][a] - mu[a]) * (muc[c][b] - mu[b]);
    double inv[3][3];
    const double det = sw[0][0] * (sw[1][1] * sw[2][2] - sw[1][2] * sw[2][1]) -
                       sw[0][1] * (sw[1][0] * sw[2][2] - sw[1][2] * sw[2][0]) +
                       sw[0][2] * (sw[1][0] * sw[2][1] - sw[1][1] * sw[2][0]);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            /* inv[a][b] = cofactor(b, a) / det */
            int r0 = b == 0 ? 1 : 0, r1 = b == 2 ? 1 : 2, c0 = a == 0 ? 1 : 0, c1 = a == 2 ? 1 : 2;
            double minor = sw[r0][c0] * sw[r1][c1] - sw[r0][c1] * sw[r1][c0];
            inv[a][b] = ((a + b) % 2 ? -minor : minor) / det;
        }
    double tr = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) tr += inv[a][b] * sb[b][a];
    return tr;
}

TEST(eval_fdr_matches_definition_and_is_affine_invariant) {
    enum { N = 60, C = 4 };
    float x[N * 3], xt[N * 3];
    int32_t y[N];
    lt_rng rng;
    lt_rng_init(&rng, 11, LT_STREAM_TEST);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int d = 0; d < 3; d++) x[i * 3 + d] = lt_rng_normal(&rng) + 0.7f * (float)(y[i] * (d + 1) % 3);
    }
    double fdr, ref = fdr_reference_3d(x, y, N, C);
    REQUIRE_OK(lt_eval_fdr(x, y, N, 3, C, &fdr, NULL));
    CHECK_NEAR(fdr, ref, 1e-9 * fabs(ref));
    CHECK(fdr > 0.1);
    /* FDR is invariant under x -> A x + b for invertible A (here with very different
     * scales per output, which the equilibrated solve must not mind) */
    const double A[3][3] = {{1000, 2, 0}, {0.5, -3, 1}, {0, 1e-3, 2e-3}};
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 3; a++) {
            double s = 10.0 * (a + 1);
            for (int b = 0; b < 3; b++) s += A[a][b] * x[i * 3 + b];
            xt[i * 3 + a] = (float)s;
        }
    double fdr_t;
    REQUIRE_OK(lt_eval_fdr(xt, y, N, 3, C, &fdr_t, NULL));
    CHECK_NEAR(fdr_t, fdr, 1e-4 * fdr);   /* float rounding of xt */
}

/* Large enough (N·D² = 4.8M > the 4M threshold in analysis.c) for the chunked S_W
 * accumulation to run threaded: same answer for 1 and 2 threads, bit for bit. */
TEST(eval_fdr_threads_bit_identical) {
    enum { N = 3000, D = 40, C = 5 };
    float *x = malloc(sizeof(float) * N * D);
    static int32_t y[N];
    lt_rng rng;
    lt_rng_init(&rng, 3, LT_STREAM_TEST);
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)lt_rng_below(&rng, C);
        for (int d = 0; d < D; d++) x[i * D + d] = lt_rng_normal(&rng) + (d % C == y[i]);
    }
    int saved = lt_get_threads();
    double f1, f2;
    lt_set_threads(1);
    lt_status s1 = lt_eval_fdr(x, y, N, D, C, &f1, NULL);
    lt_set_threads(2);
    lt_status s2 = lt_eval_fdr(x, y, N, D, C, &f2, NULL);
    lt_set_threads(saved);
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(f1 == f2);
    CHECK(f1 > 0);
    free(x);
}

TEST(eval_solver_cholesky_lu_singular) {
    int method = 0;
    /* SPD: 4x + 2y = 6, 2x + 3y = 5 -> (1, 1) by Cholesky */
    const double spd[4] = {4, 2, 2, 3};
    double b[2] = {6, 5};
    REQUIRE_OK(lt_eval_solve_sym(spd, 2, b, 1, "t", &method));
    CHECK_EQ_INT(method, LT_SOLVE_CHOLESKY);
    CHECK_NEAR(b[0], 1.0, 1e-14);
    CHECK_NEAR(b[1], 1.0, 1e-14);
    /* symmetric indefinite (eigenvalues 3, −1): Cholesky fails, LU solves x + 2y = 3,
     * 2x + y = 3 -> (1, 1); two right-hand sides, the second 2x + y = 0, x + 2y = 3 ... */
    const double ind[4] = {1, 2, 2, 1};
    double b2[4] = {3, 3, 3, 0};   /* columns: (3,3) and (3,0) */
    REQUIRE_OK(lt_eval_solve_sym(ind, 2, b2, 2, "t", &method));
    CHECK_EQ_INT(method, LT_SOLVE_LU);
    CHECK_NEAR(b2[0], 1.0, 1e-14);
    CHECK_NEAR(b2[2], 1.0, 1e-14);
    /* x + 2y = 3, 2x + y = 0 -> x = -1, y = 2 */
    CHECK_NEAR(b2[1], -1.0, 1e-14);
    CHECK_NEAR(b2[3], 2.0, 1e-14);
    /* zero diagonal, needs a row exchange: [[0,1],[1,0]] x = (2, 3) -> x = (3, 2) */
    const double swp[4] = {0, 1, 1, 0};
    double b4[2] = {2, 3};
    REQUIRE_OK(lt_eval_solve_sym(swp, 2, b4, 1, "t", &method));
    CHECK_EQ_INT(method, LT_SOLVE_LU);
    CHECK_NEAR(b4[0], 3.0, 1e-14);
    CHECK_NEAR(b4[1], 2.0, 1e-14);
    /* singular */
    const double sing[4] = {1, 2, 2, 4};
    double b3[2] = {1, 2};
    CHECK(lt_eval_solve_sym(sing, 2, b3, 1, "t", &method) == LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "singular") != NULL);
}

/* ---- post-hoc transforms ---- */

TEST(eval_tau_norm) {
    /* rows with norms 5, 2, 0 */
    const float w[3 * 2] = {3, 4, 0, 2, 0, 0};
    float o[6];
    REQUIRE_OK(lt_posthoc_tau_norm(w, 3, 2, 1.0, o));
    const float want1[6] = {0.6f, 0.8f, 0, 1, 0, 0};
    CHECK_CLOSE("tau=1", o, want1, 6, 1e-7, 0);
    REQUIRE_OK(lt_posthoc_tau_norm(w, 3, 2, 0.5, o));
    const float want05[6] = {(float)(3 / sqrt(5.0)), (float)(4 / sqrt(5.0)), 0, (float)(2 / sqrt(2.0)), 0, 0};
    CHECK_CLOSE("tau=0.5", o, want05, 6, 1e-7, 0);
    REQUIRE_OK(lt_posthoc_tau_norm(w, 3, 2, 2.0, o));
    const float want2[6] = {3.0f / 25, 4.0f / 25, 0, 0.5f, 0, 0};
    CHECK_CLOSE("tau=2", o, want2, 6, 1e-7, 0);
    REQUIRE_OK(lt_posthoc_tau_norm(w, 3, 2, 0.0, o));
    CHECK(memcmp(o, w, sizeof w) == 0);
    /* in place */
    float ip[6];
    memcpy(ip, w, sizeof w);
    REQUIRE_OK(lt_posthoc_tau_norm(ip, 3, 2, 1.0, ip));
    CHECK_CLOSE("in place", ip, want1, 6, 1e-7, 0);
    CHECK(lt_posthoc_tau_norm(w, 3, 2, NAN, o) == LT_ERR_ARG);
}

TEST(eval_logit_adjustment) {
    /* counts (3, 1): π = (.75, .25); z = (1, 2) and (4, 0) */
    const int64_t counts[2] = {3, 1};
    const float z[4] = {1, 2, 4, 0};
    float o[4];
    /* additive τ = 1: z − log π = (1 − ln .75, 2 − ln .25), (4 − ln .75, 0 − ln .25) */
    REQUIRE_OK(lt_posthoc_logit_adjust(z, 2, 2, counts, LT_POSTHOC_LA_ADD, 1.0, o));
    const float wa[4] = {(float)(1 - log(0.75)), (float)(2 - log(0.25)), (float)(4 - log(0.75)),
                         (float)(-log(0.25))};
    CHECK_CLOSE("additive", o, wa, 4, 1e-6, 0);
    /* additive τ = 2 doubles the shift */
    REQUIRE_OK(lt_posthoc_logit_adjust(z, 2, 2, counts, LT_POSTHOC_LA_ADD, 2.0, o));
    CHECK_NEAR(o[0], 1 - 2 * log(0.75), 1e-6);
    CHECK_NEAR(o[3], -2 * log(0.25), 1e-6);
    /* multiplicative τ = 1: z_c / π_c = (4/3, 8), (16/3, 0); τ = .5: z_c / sqrt(π_c) */
    REQUIRE_OK(lt_posthoc_logit_adjust(z, 2, 2, counts, LT_POSTHOC_LA_MUL, 1.0, o));
    const float wm[4] = {4.0f / 3, 8, 16.0f / 3, 0};
    CHECK_CLOSE("multiplicative", o, wm, 4, 1e-6, 0);
    REQUIRE_OK(lt_posthoc_logit_adjust(z, 2, 2, counts, LT_POSTHOC_LA_MUL, 0.5, o));
    CHECK_NEAR(o[0], 1 / sqrt(0.75), 1e-6);
    CHECK_NEAR(o[1], 2 / sqrt(0.25), 1e-6);
    /* τ = 0 is the identity for both; in place works */
    float ip[4];
    memcpy(ip, z, sizeof z);
    REQUIRE_OK(lt_posthoc_logit_adjust(ip, 2, 2, counts, LT_POSTHOC_LA_MUL, 0.0, ip));
    CHECK(memcmp(ip, z, sizeof z) == 0);
    REQUIRE_OK(lt_posthoc_logit_adjust(ip, 2, 2, counts, LT_POSTHOC_LA_ADD, 0.0, ip));
    CHECK(memcmp(ip, z, sizeof z) == 0);
    const int64_t zero[2] = {3, 0};
    CHECK(lt_posthoc_logit_adjust(z, 2, 2, zero, LT_POSTHOC_LA_ADD, 1.0, o) == LT_ERR_ARG);
    CHECK(lt_posthoc_logit_adjust(z, 2, 2, counts, LT_POSTHOC_TAU_NORM, 1.0, o) == LT_ERR_ARG);
}

/* ---- τ sweep ---- */

static lt_status score_peak(double tau, void *user, double *s) {
    (void)user;
    *s = -(tau - 1.3) * (tau - 1.3);
    return LT_OK;
}
static lt_status score_plateau(double tau, void *user, double *s) {
    (void)user;
    *s = tau >= 0.45 ? 1.0 : 0.0;   /* best from τ = 0.5 on: ties go to the smaller τ */
    return LT_OK;
}
static lt_status score_nan_then_fail(double tau, void *user, double *s) {
    int *calls = user;
    (*calls)++;
    *s = tau < 0.25 ? NAN : tau;
    return tau > 1.05 ? lt_error(LT_ERR_STATE, "score: stop at %g", tau) : LT_OK;
}

/* A real use: choose the additive logit-adjustment τ by validation balanced accuracy on
 * a set built so that the answer is known. See eval_tau_sweep for the derivation. */
struct la_val {
    const float *z;
    const int32_t *y;
    int64_t n;
    const int64_t *counts;
};
static lt_status score_la(double tau, void *user, double *s) {
    const struct la_val *v = user;
    float adj[16];
    lt_status st = lt_posthoc_logit_adjust(v->z, v->n, 2, v->counts, LT_POSTHOC_LA_ADD, tau, adj);
    if (st != LT_OK) return st;
    lt_metrics *m = NULL;
    st = lt_metrics_new(2, 5, &m);
    if (st != LT_OK) return st;
    lt_eval_result r;
    lt_eval_result_init(&r);
    st = lt_metrics_add_logits(m, adj, v->y, v->n);
    if (st == LT_OK) st = lt_metrics_finalize(m, v->counts, NULL, &r);
    *s = r.balanced_acc;
    lt_eval_result_free(&r);
    lt_metrics_free(m);
    return st;
}

TEST(eval_tau_sweep) {
    double grid[LT_TAU_GRID_N];
    lt_tau_grid_default(grid);
    CHECK(grid[0] == 0.0 && grid[3] == 0.3 && grid[20] == 2.0);
    double best, bs, scores[LT_TAU_GRID_N];
    REQUIRE_OK(lt_tau_sweep(score_peak, NULL, NULL, 0, scores, &best, &bs));
    CHECK_NEAR(best, 1.3, 1e-12);
    CHECK_NEAR(bs, 0.0, 1e-12);
    CHECK_NEAR(scores[0], -1.69, 1e-12);
    REQUIRE_OK(lt_tau_sweep(score_plateau, NULL, NULL, 0, NULL, &best, &bs));
    CHECK_NEAR(best, 0.5, 1e-12);
    /* an unsorted grid: the tie still goes to the smaller τ */
    const double g2[4] = {1.5, 0.7, 2.0, 0.6};
    REQUIRE_OK(lt_tau_sweep(score_plateau, NULL, g2, 4, NULL, &best, &bs));
    CHECK_NEAR(best, 0.6, 0);
    /* NaN scores are skipped; an error stops the sweep and is returned */
    int calls = 0;
    CHECK(lt_tau_sweep(score_nan_then_fail, &calls, NULL, 0, NULL, &best, &bs) == LT_ERR_STATE);
    CHECK_EQ_INT(calls, 12);   /* τ = 0 .. 1.1 */
    const double g3[2] = {0.0, 0.1};
    calls = 0;
    CHECK(lt_tau_sweep(score_nan_then_fail, &calls, g3, 2, NULL, &best, &bs) == LT_ERR_ARG);

    /* Known-best τ from real metrics. π = (.9, .1). Additive adjustment gives
     * z1 − z0 + τ(ln .9 − ln .1) = z1 − z0 + t with t = τ ln 9 (ln 9 ≈ 2.1972), and class 1
     * wins iff that is > 0 (a tie goes to class 0). With z1 − z0 = −a_i for class-1 images,
     * a = (.5, 1.2, 2.0, 1.9), and −b_i for class-0 images, b = (2.4, 3, 4, 5):
     *   acc_1 = #{a < t}/4, acc_0 = #{b >= t}/4; both are 1 iff 2.0 < t <= 2.4,
     *   i.e. τ ∈ (0.910, 1.092]: on the grid only τ = 1.0 (balanced accuracy 1).
     *   τ = .9 (t 1.977): acc_1 3/4, acc_0 1 -> .875; τ = 1.1 (t 2.417): 1 and 3/4 -> .875 */
    const float z[8 * 2] = {0, -0.5f, 0, -1.2f, 0, -2.0f, 0, -1.9f,    /* class 1 */
                            0, -2.4f, 0, -3.0f, 0, -4.0f, 0, -5.0f};   /* class 0 */
    const int32_t y[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    const int64_t counts[2] = {900, 100};
    struct la_val v = {z, y, 8, counts};
    REQUIRE_OK(lt_tau_sweep(score_la, &v, NULL, 0, scores, &best, &bs));
    CHECK_NEAR(best, 1.0, 1e-12);
    CHECK_NEAR(bs, 1.0, 0);
    CHECK(scores[9] < 1.0 && scores[11] < 1.0);
}

/* ---- JSON ---- */

TEST(eval_result_json) {
    lt_metrics *m = NULL;
    REQUIRE_OK(lt_metrics_new(10, 5, &m));
    fill_group_case(m);
    const int64_t counts[10] = {500, 300, 150, 101, 100, 60, 20, 19, 5, 1};
    lt_eval_result r;
    lt_eval_result_init(&r);
    REQUIRE_OK(lt_metrics_finalize(m, counts, NULL, &r));
    float w[10 * 2];
    for (int i = 0; i < 20; i++) w[i] = (float)(i % 2 ? 0 : i / 2 + 1);   /* norms 1..10 */
    REQUIRE_OK(lt_eval_result_set_weight_norms(&r, w, 10, 2));
    r.posthoc = LT_POSTHOC_TAU_NORM;
    r.posthoc_tau = 1.9;
    char *text = NULL;
    int64_t len = 0;
    REQUIRE_OK(lt_eval_result_to_json(&r, 2, &text, &len));
    CHECK_EQ_INT((int64_t)strlen(text), len);
    lt_json *j = NULL;
    lt_status ps = lt_json_parse(text, len, "metrics", &j);
    CHECK_OK(ps);
    if (ps == LT_OK) {
        CHECK_NEAR(lt_json_number(lt_json_get(j, "top1"), -1), 24.0 / 44.0, 1e-15);
        CHECK_NEAR(lt_json_number(lt_json_get(j, "many"), -1), 0.625, 1e-15);
        CHECK_NEAR(lt_json_number(lt_json_get(j, "few"), -1), 0.25, 1e-15);
        /* preds only: top5, ece, nll are null (read back as NaN) */
        const lt_json *t5 = lt_json_get(j, "top5");
        CHECK(t5 && t5->type == LT_JSON_NULL);
        CHECK(strcmp(lt_json_string(lt_json_get(lt_json_get(j, "groups"), "mode"), ""), "threshold") == 0);
        const lt_json *sizes = lt_json_get(lt_json_get(j, "groups"), "sizes");
        CHECK(sizes && sizes->n == 3 && lt_json_at(sizes, 0)->i == 4);
        const lt_json *conf = lt_json_get(j, "confusion");
        REQUIRE(conf && conf->n == 10);
        CHECK_EQ_INT(lt_json_at(lt_json_at(conf, 0), 0)->i, 8);
        CHECK_EQ_INT(lt_json_at(lt_json_at(conf, 1), 2)->i, 1);
        const lt_json *wn = lt_json_get(j, "weight_norms");
        CHECK(wn && wn->n == 10 && lt_json_number(lt_json_at(wn, 9), 0) == 10.0);
        CHECK(lt_json_get(j, "fdr")->type == LT_JSON_NULL);
        CHECK(lt_json_get(j, "feature_norms")->type == LT_JSON_NULL);
        CHECK(strcmp(lt_json_string(lt_json_get(j, "posthoc"), ""), "tau_norm") == 0);
        CHECK_NEAR(lt_json_number(lt_json_get(j, "posthoc_tau"), 0), 1.9, 0);
        const lt_json *cc = lt_json_get(j, "class_counts");
        CHECK(cc && cc->n == 10 && lt_json_at(cc, 3)->i == 101);
        CHECK(strcmp(lt_json_string(lt_json_at(lt_json_get(lt_json_get(j, "groups"), "class_group"), 7), ""), "few") == 0);
    }
    lt_json_free(j);
    lt_free(text);
    lt_eval_result_free(&r);
    lt_metrics_free(m);
}
