/* Samplers: class frequencies against each formula (computed here, independently of the
 * sampler's own lt_sampler_class_probs) over many draws, with tolerances a wrong formula
 * fails; class-aware runs; within-class cycling; determinism per (seed, epoch). */
#include "test.h"
#include "longtail/data.h"

#include <string.h>

/* Class counts 1000, 300, 100, 30, 10, 0 (an empty class), images interleaved. */
#define NC 6
static const int64_t counts[NC] = {1000, 300, 100, 30, 10, 0};

static int32_t *make_labels(int64_t *n) {
    int64_t total = 0;
    for (int c = 0; c < NC; c++) total += counts[c];
    int32_t *lab = lt_malloc((size_t)total * sizeof(int32_t));
    int64_t left[NC], i = 0;
    memcpy(left, counts, sizeof left);
    while (i < total)
        for (int c = 0; c < NC; c++)
            if (left[c]) {
                lab[i++] = c;
                left[c]--;
            }
    *n = total;
    return lab;
}

/* Draws `epochs` epochs and returns per-class frequencies. */
static void frequencies(lt_sampler *s, const int32_t *lab, int64_t first_epoch, int epochs, double *freq) {
    int64_t L = lt_sampler_epoch_length(s), hist[NC] = {0}, tot = 0;
    int64_t *out = lt_malloc((size_t)L * sizeof(int64_t));
    for (int e = 0; e < epochs; e++) {
        if (lt_sampler_epoch(s, first_epoch + e, out) != LT_OK) break;
        for (int64_t i = 0; i < L; i++) hist[lab[out[i]]]++;
        tot += L;
    }
    for (int c = 0; c < NC; c++) freq[c] = (double)hist[c] / (double)(tot ? tot : 1);
    lt_free(out);
}

/* |freq - p| within 5 standard errors of a binomial proportion over `draws` draws (plus a
 * tiny floor), and the empty class never drawn. */
static void check_freq(const char *what, const double *freq, const double *p, double draws) {
    for (int c = 0; c < NC; c++) {
        double se = sqrt(p[c] * (1 - p[c]) / draws), tol = 5 * se + 1e-4;
        if (!(fabs(freq[c] - p[c]) <= tol))
            lt_test_fail(__FILE__, __LINE__, "%s: class %d frequency %.5f, formula %.5f (tol %.5f)", what, c, freq[c],
                         p[c], tol);
    }
}

static void normalize(double *p) {
    double s = 0;
    for (int c = 0; c < NC; c++) s += p[c];
    for (int c = 0; c < NC; c++) p[c] /= s;
}

TEST(sampler_instance_is_a_permutation) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    lt_sampler_config cfg;
    lt_sampler_config_default(&cfg);
    lt_sampler s;
    REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 7));
    CHECK_EQ_INT(lt_sampler_epoch_length(&s), n);
    int64_t *out = lt_malloc((size_t)n * sizeof(int64_t));
    uint8_t *seen = lt_calloc((size_t)n, 1);
    REQUIRE_OK(lt_sampler_epoch(&s, 0, out));
    int64_t dup = 0, moved = 0;
    for (int64_t i = 0; i < n; i++) {
        if (seen[out[i]]++) dup++;
        if (out[i] != i) moved++;
    }
    CHECK_EQ_INT(dup, 0);
    CHECK(moved > n / 2);   /* shuffled */
    lt_free(out);
    lt_free(seen);
    lt_sampler_free(&s);
    /* a longer epoch: back-to-back permutations, class frequencies n_c / N */
    cfg.epoch_length = 3 * n + 17;
    REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 7));
    double freq[NC], p[NC];
    frequencies(&s, lab, 0, 4, freq);
    for (int c = 0; c < NC; c++) p[c] = (double)counts[c];
    normalize(p);
    check_freq("instance", freq, p, 4.0 * (double)cfg.epoch_length);
    lt_sampler_free(&s);
    lt_free(lab);
}

TEST(sampler_qpower_frequencies) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    const double qs[3] = {0.0, 0.5, 1.0};
    for (int t = 0; t < 3; t++) {
        lt_sampler_config cfg;
        lt_sampler_config_default(&cfg);
        cfg.kind = LT_SAMPLER_QPOWER;
        cfg.q = qs[t];
        lt_sampler s;
        REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 3));
        double freq[NC], p[NC];
        frequencies(&s, lab, 0, 40, freq);
        for (int c = 0; c < NC; c++) p[c] = counts[c] ? pow((double)counts[c], qs[t]) : 0.0;
        normalize(p);
        char what[32];
        snprintf(what, sizeof what, "q-power q=%.1f", qs[t]);
        check_freq(what, freq, p, 40.0 * (double)n);
        /* the sampler's own formula agrees */
        double own[NC];
        lt_sampler_class_probs(&s, 0, own);
        for (int c = 0; c < NC; c++) CHECK_NEAR(own[c], p[c], 1e-12);
        lt_sampler_free(&s);
    }
    lt_free(lab);
}

TEST(sampler_reversed_frequencies) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    lt_sampler_config cfg;
    lt_sampler_config_default(&cfg);
    cfg.kind = LT_SAMPLER_REVERSED;
    lt_sampler s;
    REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 4));
    double freq[NC], p[NC];
    frequencies(&s, lab, 0, 40, freq);
    for (int c = 0; c < NC; c++) p[c] = counts[c] ? 1000.0 / (double)counts[c] : 0.0;   /* n_max / n_c */
    normalize(p);
    check_freq("reversed", freq, p, 40.0 * (double)n);
    CHECK(freq[4] > 0.5);   /* the tail dominates */
    lt_sampler_free(&s);
    lt_free(lab);
}

TEST(sampler_progressive_frequencies) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    lt_sampler_config cfg;
    lt_sampler_config_default(&cfg);
    cfg.kind = LT_SAMPLER_PROGRESSIVE;
    cfg.total_epochs = 100;
    lt_sampler s;
    REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 5));
    const int64_t ts[3] = {0, 50, 100};
    for (int k = 0; k < 3; k++) {
        double a = (double)ts[k] / 100.0, freq[NC] = {0}, p[NC];
        /* 30 draws of the same epoch t: the epoch is fixed by (seed, t), so use 30 seeds */
        double acc[NC] = {0};
        for (int r = 0; r < 30; r++) {
            s.seed = 100 + (uint64_t)r;
            frequencies(&s, lab, ts[k], 1, freq);
            for (int c = 0; c < NC; c++) acc[c] += freq[c] / 30;
        }
        for (int c = 0; c < NC; c++)
            p[c] = counts[c] ? (1 - a) * (double)counts[c] / (double)n + a / 5.0 : 0.0;   /* 5 non-empty classes */
        char what[32];
        snprintf(what, sizeof what, "progressive t=%lld", (long long)ts[k]);
        check_freq(what, acc, p, 30.0 * (double)n);
    }
    lt_sampler_free(&s);
    lt_free(lab);
}

TEST(sampler_class_aware_runs_and_balance) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    lt_sampler_config cfg;
    lt_sampler_config_default(&cfg);
    cfg.kind = LT_SAMPLER_CLASS_AWARE;
    cfg.epoch_length = 1000;   /* 250 visits of k = 4: 50 per class exactly */
    lt_sampler s;
    REQUIRE_OK(lt_sampler_init(&s, &cfg, lab, n, NC, 8));
    int64_t out[1000];
    REQUIRE_OK(lt_sampler_epoch(&s, 0, out));
    int64_t hist[NC] = {0}, broken_runs = 0;
    for (int i = 0; i < 1000; i++) {
        hist[lab[out[i]]]++;
        if (i % 4 && lab[out[i]] != lab[out[i - 1]]) broken_runs++;
    }
    CHECK_EQ_INT(broken_runs, 0);
    for (int c = 0; c < 5; c++) CHECK_EQ_INT(hist[c], 200);
    CHECK_EQ_INT(hist[5], 0);
    /* every pass over the classes visits each class once: each block of 5 visits has 5
     * different classes */
    int64_t bad_pass = 0;
    for (int v = 0; v < 250; v += 5) {
        int mask = 0;
        for (int j = 0; j < 5; j++) mask |= 1 << lab[out[(v + j) * 4]];
        if (mask != 0x1f) bad_pass++;
    }
    CHECK_EQ_INT(bad_pass, 0);
    /* class 4 (10 images) seen 200 times: each image 20 times, cycling through all 10
     * before any repeats */
    int64_t seen[2000] = {0}, early_repeat = 0, k4 = 0;
    for (int i = 0; i < 1000; i++)
        if (lab[out[i]] == 4) {
            int64_t img = out[i];
            if (seen[img] > k4 / 10) early_repeat++;
            seen[img]++;
            k4++;
        }
    CHECK_EQ_INT(early_repeat, 0);
    lt_sampler_free(&s);
    lt_free(lab);
}

TEST(sampler_deterministic_per_seed_and_epoch) {
    int64_t n;
    int32_t *lab = make_labels(&n);
    for (int kind = 0; kind <= LT_SAMPLER_PROGRESSIVE; kind++) {
        lt_sampler_config cfg;
        lt_sampler_config_default(&cfg);
        cfg.kind = (lt_sampler_kind)kind;
        cfg.q = 0.5;
        cfg.total_epochs = 10;
        lt_sampler a, b, c;
        REQUIRE_OK(lt_sampler_init(&a, &cfg, lab, n, NC, 42));
        REQUIRE_OK(lt_sampler_init(&b, &cfg, lab, n, NC, 42));
        REQUIRE_OK(lt_sampler_init(&c, &cfg, lab, n, NC, 43));
        int64_t *x = lt_malloc((size_t)n * 8), *y = lt_malloc((size_t)n * 8), *z = lt_malloc((size_t)n * 8);
        /* epoch 3 of a, after epochs 0..2; epoch 3 of b directly */
        for (int e = 0; e < 3; e++) lt_sampler_epoch(&a, e, x);
        REQUIRE_OK(lt_sampler_epoch(&a, 3, x));
        uint64_t before = lt_alloc_count();
        REQUIRE_OK(lt_sampler_epoch(&b, 3, y));
        CHECK_EQ_INT(lt_alloc_count() - before, 0);
        CHECK(memcmp(x, y, (size_t)n * 8) == 0);
        REQUIRE_OK(lt_sampler_epoch(&c, 3, z));
        CHECK(memcmp(x, z, (size_t)n * 8) != 0);
        REQUIRE_OK(lt_sampler_epoch(&b, 4, y));
        CHECK(memcmp(x, y, (size_t)n * 8) != 0);
        int64_t oob = 0;
        for (int64_t i = 0; i < n; i++) oob += x[i] < 0 || x[i] >= n;
        CHECK_EQ_INT(oob, 0);
        lt_free(x);
        lt_free(y);
        lt_free(z);
        lt_sampler_free(&a);
        lt_sampler_free(&b);
        lt_sampler_free(&c);
    }
    lt_free(lab);
}

TEST(sampler_bad_config_and_names) {
    int32_t lab[4] = {0, 1, 1, 3};
    lt_sampler_config cfg;
    lt_sampler_config_default(&cfg);
    lt_sampler s;
    CHECK_EQ_INT(lt_sampler_init(&s, &cfg, lab, 4, 3, 0), LT_ERR_ARG);   /* label 3 >= 3 classes */
    CHECK(strstr(lt_last_error(), "label 3") != NULL);
    cfg.kind = LT_SAMPLER_CLASS_AWARE;
    cfg.k = 0;
    CHECK_EQ_INT(lt_sampler_init(&s, &cfg, lab, 4, 4, 0), LT_ERR_ARG);
    cfg.kind = LT_SAMPLER_PROGRESSIVE;
    cfg.total_epochs = 0;
    CHECK_EQ_INT(lt_sampler_init(&s, &cfg, lab, 4, 4, 0), LT_ERR_ARG);
    CHECK_EQ_INT(lt_sampler_init(&s, &cfg, lab, 0, 4, 0), LT_ERR_ARG);
    lt_sampler_free(NULL);
    lt_sampler_kind k;
    REQUIRE_OK(lt_sampler_kind_parse("class_aware", &k));
    CHECK_EQ_INT(k, LT_SAMPLER_CLASS_AWARE);
    CHECK(strcmp(lt_sampler_kind_name(LT_SAMPLER_PROGRESSIVE), "progressive") == 0);
    CHECK_EQ_INT(lt_sampler_kind_parse("square", &k), LT_ERR_ARG);
}
