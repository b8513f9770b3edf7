/* Samplers: which training images an epoch visits, and how often each class comes up.
 *
 *   instance      a permutation of the training set (repeated if the epoch is longer):
 *                 class c appears with frequency p_c = n_c / N
 *   class-aware   Shen et al. 2016 (ECCV), as in the decoupling code (Kang et al. 2020):
 *                 cycle over the classes in shuffled order (reshuffled at every pass),
 *                 k consecutive images of each (k = 4): p_c = 1 / C
 *   q-power       p_c = n_c^q / sum_j n_j^q (Mahajan et al. 2018; q = 1 instance,
 *                 q = 1/2 square-root, q = 0 class-balanced)
 *   reversed      p_c = (n_max / n_c) / sum_j (n_max / n_j) (BBN, Zhou et al. 2020)
 *   progressive   p_c(t) = (1 - t/T) n_c / N + (t/T) / C, t = epoch, T = total epochs
 *                 (Kang et al. 2020): instance-balanced at t = 0, balanced at t = T
 *
 * Class-based samplers pick a class, then the next image of that class's cycle: a
 * shuffled list of its images, reshuffled when used up, so images of a class repeat only
 * after all of them were seen. Classes with no images are never drawn. Everything an epoch
 * draws comes from one generator seeded by lt_rng_derive_seed(seed, epoch, 0) on
 * LT_STREAM_SAMPLER, and the cycles restart at every epoch: epoch e's indices depend on
 * (seed, e) only, which is what makes resumed training identical. */
#include "longtail/data.h"

#include <math.h>
#include <string.h>

static const char *const kind_names[] = {"instance", "class_aware", "qpower", "reversed", "progressive"};

void lt_sampler_config_default(lt_sampler_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = LT_SAMPLER_INSTANCE;
    cfg->q = 0.0;
    cfg->k = 4;
    cfg->epoch_length = 0;
    cfg->total_epochs = 1;
}

lt_status lt_sampler_kind_parse(const char *name, lt_sampler_kind *kind) {
    for (int k = 0; k < 5; k++)
        if (!strcmp(name, kind_names[k])) {
            *kind = (lt_sampler_kind)k;
            return LT_OK;
        }
    return lt_error(LT_ERR_ARG,
                    "unknown sampler '%s' (expected instance, class_aware, qpower, reversed or progressive)", name);
}

const char *lt_sampler_kind_name(lt_sampler_kind kind) { return (unsigned)kind < 5 ? kind_names[kind] : "?"; }

void lt_sampler_free(lt_sampler *s) {
    if (!s) return;
    lt_free(s->class_counts);
    lt_free(s->class_start);
    lt_free(s->by_class);
    lt_free(s->cycle);
    lt_free(s->cycle_pos);
    lt_free(s->class_cycle);
    lt_free(s->cdf);
    memset(s, 0, sizeof *s);
}

lt_status lt_sampler_init(lt_sampler *s, const lt_sampler_config *cfg, const int32_t *labels, int64_t n,
                          int32_t n_classes, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if ((unsigned)cfg->kind > LT_SAMPLER_PROGRESSIVE)
        return lt_error(LT_ERR_ARG, "sampler: unknown kind %d", (int)cfg->kind);
    if (n < 1 || n_classes < 1)
        return lt_error(LT_ERR_ARG, "sampler: %lld images in %d classes, expected at least 1 of each", (long long)n,
                        n_classes);
    if (cfg->kind == LT_SAMPLER_CLASS_AWARE && cfg->k < 1)
        return lt_error(LT_ERR_ARG, "sampler: class_aware takes k >= 1 images per class, got %lld", (long long)cfg->k);
    if (cfg->kind == LT_SAMPLER_QPOWER && !isfinite(cfg->q))
        return lt_error(LT_ERR_ARG, "sampler: q-power exponent %g is not finite", cfg->q);
    if (cfg->kind == LT_SAMPLER_PROGRESSIVE && cfg->total_epochs < 1)
        return lt_error(LT_ERR_ARG, "sampler: progressive needs total_epochs >= 1, got %lld",
                        (long long)cfg->total_epochs);
    if (cfg->epoch_length < 0)
        return lt_error(LT_ERR_ARG, "sampler: epoch length %lld is negative", (long long)cfg->epoch_length);
    s->cfg = *cfg;
    s->n = n;
    s->n_classes = n_classes;
    s->seed = seed;
    size_t C = (size_t)n_classes;
    s->class_counts = lt_calloc(C, sizeof(int64_t));
    s->class_start = lt_calloc(C + 1, sizeof(int64_t));
    s->by_class = lt_malloc((size_t)n * sizeof(int64_t));
    s->cycle = lt_malloc((size_t)n * sizeof(int64_t));
    s->cycle_pos = lt_calloc(C, sizeof(int64_t));
    s->class_cycle = lt_malloc(C * sizeof(int64_t));
    s->cdf = lt_malloc(C * sizeof(double));
    if (!s->class_counts || !s->class_start || !s->by_class || !s->cycle || !s->cycle_pos || !s->class_cycle ||
        !s->cdf) {
        lt_sampler_free(s);
        return lt_error(LT_ERR_NOMEM, "sampler: out of memory for %lld images", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes) {
            lt_status st = lt_error(LT_ERR_ARG, "sampler: label %d of image %lld is outside [0, %d)", labels[i],
                                    (long long)i, n_classes);
            lt_sampler_free(s);
            return st;
        }
        s->class_counts[labels[i]]++;
    }
    for (int32_t c = 0; c < n_classes; c++) s->class_start[c + 1] = s->class_start[c] + s->class_counts[c];
    for (int32_t c = 0; c < n_classes; c++) s->cycle_pos[c] = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = labels[i];
        s->by_class[s->class_start[c] + s->cycle_pos[c]++] = i;
    }
    return LT_OK;
}

int64_t lt_sampler_epoch_length(const lt_sampler *s) { return s->cfg.epoch_length > 0 ? s->cfg.epoch_length : s->n; }

void lt_sampler_class_probs(const lt_sampler *s, int64_t epoch, double *p) {
    const int32_t C = s->n_classes;
    int64_t nonempty = 0, n_max = 0;
    for (int32_t c = 0; c < C; c++) {
        if (s->class_counts[c] > 0) nonempty++;
        if (s->class_counts[c] > n_max) n_max = s->class_counts[c];
    }
    double alpha = 0;   /* progressive: weight of the balanced term */
    if (s->cfg.kind == LT_SAMPLER_PROGRESSIVE) {
        alpha = (double)epoch / (double)s->cfg.total_epochs;
        if (alpha < 0) alpha = 0;
        if (alpha > 1) alpha = 1;
    }
    double total = 0;
    for (int32_t c = 0; c < C; c++) {
        double nc = (double)s->class_counts[c], v = 0;
        if (nc > 0) {
            switch (s->cfg.kind) {
            case LT_SAMPLER_INSTANCE: v = nc / (double)s->n; break;
            case LT_SAMPLER_CLASS_AWARE: v = 1.0 / (double)nonempty; break;
            case LT_SAMPLER_QPOWER: v = pow(nc, s->cfg.q); break;
            case LT_SAMPLER_REVERSED: v = (double)n_max / nc; break;
            case LT_SAMPLER_PROGRESSIVE: v = (1.0 - alpha) * nc / (double)s->n + alpha / (double)nonempty; break;
            }
        }
        p[c] = v;
        total += v;
    }
    for (int32_t c = 0; c < C; c++) p[c] /= total;
}

/* The next image of class c's cycle; a used-up cycle is reshuffled. */
static int64_t next_of_class(lt_sampler *s, lt_rng *rng, int32_t c) {
    int64_t *seg = s->cycle + s->class_start[c];
    if (s->cycle_pos[c] == s->class_counts[c]) {
        lt_rng_shuffle(rng, seg, s->class_counts[c]);
        s->cycle_pos[c] = 0;
    }
    return seg[s->cycle_pos[c]++];
}

lt_status lt_sampler_epoch(lt_sampler *s, int64_t epoch, int64_t *out) {
    if (epoch < 0) return lt_error(LT_ERR_ARG, "sampler: epoch %lld is negative", (long long)epoch);
    const int32_t C = s->n_classes;
    const int64_t L = lt_sampler_epoch_length(s);
    lt_rng rng;
    lt_rng_init(&rng, lt_rng_derive_seed(s->seed, (uint64_t)epoch, 0), LT_STREAM_SAMPLER);

    if (s->cfg.kind == LT_SAMPLER_INSTANCE) {
        /* Back-to-back permutations of 0..n-1. */
        for (int64_t i0 = 0; i0 < L; i0 += s->n) {
            for (int64_t i = 0; i < s->n; i++) s->cycle[i] = i;
            lt_rng_shuffle(&rng, s->cycle, s->n);
            int64_t m = L - i0 < s->n ? L - i0 : s->n;
            memcpy(out + i0, s->cycle, (size_t)m * sizeof(int64_t));
        }
        return LT_OK;
    }

    /* Fresh per-class cycles: every class starts the epoch with a new shuffle. */
    memcpy(s->cycle, s->by_class, (size_t)s->n * sizeof(int64_t));
    for (int32_t c = 0; c < C; c++) {
        lt_rng_shuffle(&rng, s->cycle + s->class_start[c], s->class_counts[c]);
        s->cycle_pos[c] = 0;
    }

    if (s->cfg.kind == LT_SAMPLER_CLASS_AWARE) {
        int64_t nonempty = 0;
        for (int32_t c = 0; c < C; c++)
            if (s->class_counts[c] > 0) s->class_cycle[nonempty++] = c;
        lt_rng_shuffle(&rng, s->class_cycle, nonempty);
        int64_t cp = 0;
        int32_t cls = 0;
        for (int64_t i = 0; i < L; i++) {
            if (i % s->cfg.k == 0) {
                if (cp == nonempty) {
                    lt_rng_shuffle(&rng, s->class_cycle, nonempty);
                    cp = 0;
                }
                cls = (int32_t)s->class_cycle[cp++];
            }
            out[i] = next_of_class(s, &rng, cls);
        }
        return LT_OK;
    }

    /* q-power, reversed, progressive: a class from the cumulative distribution, then the
     * next image of its cycle. */
    lt_sampler_class_probs(s, epoch, s->cdf);
    double acc = 0;
    for (int32_t c = 0; c < C; c++) {
        acc += s->cdf[c];
        s->cdf[c] = acc;
    }
    for (int64_t i = 0; i < L; i++) {
        double u = (double)(lt_rng_u64(&rng) >> 11) * (1.0 / 9007199254740992.0) * acc;   /* [0, acc) */
        int32_t lo = 0, hi = C - 1;   /* first class with cdf > u */
        while (lo < hi) {
            int32_t mid = lo + (hi - lo) / 2;
            if (s->cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        while (s->class_counts[lo] == 0) lo--;   /* u rounding onto an empty class's edge */
        out[i] = next_of_class(s, &rng, lo);
    }
    return LT_OK;
}
