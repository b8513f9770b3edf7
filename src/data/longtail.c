/* Long-tail construction: class-count profiles and the balanced validation split carved
 * out before subsampling. (Many / Medium / Few groups: lt_eval_groups_assign, eval.h.)
 *
 * Exponential profile (Cui et al., CVPR 2019; the LDAM-DRW code everybody copies):
 *     n_i = int(n_max * (1/IF)^(i / (C - 1)))      i = 0 .. C-1, class 0 the head
 * computed in double with libm pow and truncated, exactly as the Python reference, so that
 * CIFAR-100-LT totals 10,847 / 12,608 / 19,573 at IF 100 / 50 / 10 and CIFAR-10-LT
 * 12,406 / 13,996 / 20,431. Step profile (Buda et al. 2018, LDAM code): the first
 * floor(C/2) classes keep n_max, the rest int(n_max / IF). */
#include "data/data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lt_longtail_config_default(lt_longtail_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->profile = LT_PROFILE_EXP;
    cfg->imbalance_factor = 100.0;
    cfg->n_max = 0;
    cfg->val_per_class = 20;
    cfg->selection = LT_SELECT_SHUFFLE;
    cfg->class_order = LT_ORDER_LABEL;
    cfg->seed = 0;
}

static const char *const profile_names[] = {"exp", "step", "none"};

lt_status lt_profile_parse(const char *name, lt_profile *profile) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, profile_names[k])) {
            *profile = (lt_profile)k;
            return LT_OK;
        }
    return lt_error(LT_ERR_ARG, "unknown long-tail profile '%s' (expected exp, step or none)", name);
}

const char *lt_profile_name(lt_profile profile) { return (unsigned)profile < 3 ? profile_names[profile] : "?"; }

lt_status lt_longtail_profile(lt_profile profile, double imbalance_factor, int64_t n_max, int32_t n_classes,
                              int64_t *counts) {
    if (n_classes < 1) return lt_error(LT_ERR_ARG, "long-tail profile: %d classes, expected at least 1", n_classes);
    if (n_max < 0) return lt_error(LT_ERR_ARG, "long-tail profile: n_max %lld is negative", (long long)n_max);
    if (profile != LT_PROFILE_NONE && !(imbalance_factor >= 1.0 && isfinite(imbalance_factor)))
        return lt_error(LT_ERR_ARG, "long-tail profile: imbalance factor %g, expected a finite number >= 1",
                        imbalance_factor);
    double inv = 1.0 / imbalance_factor;   /* the reference code's `imb_factor` */
    for (int32_t i = 0; i < n_classes; i++) {
        switch (profile) {
        case LT_PROFILE_EXP:
            counts[i] = n_classes == 1 ? n_max
                                       : (int64_t)((double)n_max * pow(inv, (double)i / ((double)n_classes - 1.0)));
            break;
        case LT_PROFILE_STEP:
            counts[i] = i < n_classes / 2 ? n_max : (int64_t)((double)n_max * inv);
            break;
        case LT_PROFILE_NONE:
            counts[i] = n_max;
            break;
        default:
            return lt_error(LT_ERR_ARG, "long-tail profile: unknown profile %d", (int)profile);
        }
    }
    return LT_OK;
}

void lt_split_free(lt_split *sp) {
    if (!sp) return;
    lt_free(sp->train_idx);
    lt_free(sp->val_idx);
    lt_free(sp->train_counts);
    lt_free(sp->val_counts);
    memset(sp, 0, sizeof *sp);
}

/* Class indices by count, largest first, ties by lower label. */
typedef struct count_label {
    int64_t count;
    int32_t label;
} count_label;

static int cmp_count_label(const void *a, const void *b) {
    const count_label *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

static lt_status rank_by_count(const int64_t *counts, int32_t n, int32_t *order) {
    count_label *t = lt_malloc((size_t)n * sizeof *t);
    if (!t) return lt_error(LT_ERR_NOMEM, "ranking classes: out of memory");
    for (int32_t i = 0; i < n; i++) t[i] = (count_label){counts[i], i};
    qsort(t, (size_t)n, sizeof *t, cmp_count_label);
    for (int32_t i = 0; i < n; i++) order[i] = t[i].label;
    lt_free(t);
    return LT_OK;
}

lt_status lt_split_make(lt_split *sp, const lt_dataset *src, const lt_longtail_config *cfg) {
    memset(sp, 0, sizeof *sp);
    const int32_t C = src->n_classes;
    if (C < 1) return lt_error(LT_ERR_ARG, "long-tail split: the dataset has no classes");
    if (cfg->val_per_class < 0)
        return lt_error(LT_ERR_ARG, "long-tail split: val_per_class %lld is negative", (long long)cfg->val_per_class);
    if (cfg->selection != LT_SELECT_SHUFFLE && cfg->selection != LT_SELECT_FIRST)
        return lt_error(LT_ERR_ARG, "long-tail split: unknown selection %d", (int)cfg->selection);
    if (cfg->class_order != LT_ORDER_LABEL && cfg->class_order != LT_ORDER_COUNTS)
        return lt_error(LT_ERR_ARG, "long-tail split: unknown class order %d", (int)cfg->class_order);
    const int64_t n = src->n;
    int64_t *counts = lt_calloc((size_t)C, sizeof(int64_t));
    int64_t *start = lt_calloc((size_t)C + 1, sizeof(int64_t));
    int64_t *fill = lt_calloc((size_t)C, sizeof(int64_t));
    int64_t *order = lt_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t *prof = lt_malloc((size_t)C * sizeof(int64_t));
    int32_t *rank_order = lt_malloc((size_t)C * sizeof(int32_t));
    uint8_t *role = lt_calloc((size_t)(n ? n : 1), 1);   /* 0 unused, 1 train, 2 val */
    sp->train_counts = lt_calloc((size_t)C, sizeof(int64_t));
    sp->val_counts = lt_calloc((size_t)C, sizeof(int64_t));
    lt_status st = LT_OK;
    if (!counts || !start || !fill || !order || !prof || !rank_order || !role || !sp->train_counts ||
        !sp->val_counts) {
        st = lt_error(LT_ERR_NOMEM, "long-tail split: out of memory for %lld images", (long long)n);
        goto done;
    }
    sp->n_classes = C;
    for (int64_t i = 0; i < n; i++) {
        if (src->labels[i] < 0 || src->labels[i] >= C) {
            st = lt_error(LT_ERR_ARG, "long-tail split: image %lld has label %d outside [0, %d)", (long long)i,
                          src->labels[i], C);
            goto done;
        }
        counts[src->labels[i]]++;
    }
    /* Per class, the images in file order, then (SHUFFLE) a seeded shuffle of each class in
     * label order from one LT_STREAM_DATA generator. */
    for (int32_t k = 0; k < C; k++) start[k + 1] = start[k] + counts[k];
    for (int64_t i = 0; i < n; i++) {
        int32_t k = src->labels[i];
        order[start[k] + fill[k]++] = i;
    }
    if (cfg->selection == LT_SELECT_SHUFFLE) {
        lt_rng rng;
        lt_rng_init(&rng, cfg->seed, LT_STREAM_DATA);
        for (int32_t k = 0; k < C; k++) lt_rng_shuffle(&rng, order + start[k], counts[k]);
    }
    /* The balanced validation split comes first: it fixes what remains for training. */
    int64_t largest = 0;
    for (int32_t k = 0; k < C; k++) {
        if (cfg->val_per_class > 0 && counts[k] <= cfg->val_per_class) {
            st = lt_error(LT_ERR_ARG,
                          "long-tail split: class %d '%s' has %lld images; the validation split takes %lld per class "
                          "and training needs at least 1 (lower val_per_class, 0 = no validation split)",
                          k, src->class_names ? src->class_names[k] : "?", (long long)counts[k],
                          (long long)cfg->val_per_class);
            goto done;
        }
        int64_t rem = counts[k] - cfg->val_per_class;
        if (rem > largest) largest = rem;
    }
    sp->n_max = cfg->n_max > 0 ? cfg->n_max : largest;
    st = lt_longtail_profile(cfg->profile, cfg->imbalance_factor, sp->n_max, C, prof);
    if (st != LT_OK) goto done;
    if (cfg->class_order == LT_ORDER_COUNTS) {
        st = rank_by_count(counts, C, rank_order);
        if (st != LT_OK) goto done;
    } else {
        for (int32_t k = 0; k < C; k++) rank_order[k] = k;
    }
    for (int32_t r = 0; r < C; r++) {
        int32_t k = rank_order[r];
        int64_t rem = counts[k] - cfg->val_per_class;
        int64_t take = prof[r] < rem ? prof[r] : rem;   /* a class cannot give more than it has */
        sp->train_counts[k] = take;
        sp->val_counts[k] = cfg->val_per_class;
        for (int64_t j = 0; j < take; j++) role[order[start[k] + j]] = 1;
        for (int64_t j = counts[k] - cfg->val_per_class; j < counts[k]; j++) role[order[start[k] + j]] = 2;
        sp->n_train += take;
        sp->n_val += cfg->val_per_class;
    }
    sp->train_idx = lt_malloc((size_t)(sp->n_train ? sp->n_train : 1) * sizeof(int64_t));
    sp->val_idx = lt_malloc((size_t)(sp->n_val ? sp->n_val : 1) * sizeof(int64_t));
    if (!sp->train_idx || !sp->val_idx) {
        st = lt_error(LT_ERR_NOMEM, "long-tail split: out of memory");
        goto done;
    }
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (role[i] == 1) sp->train_idx[a++] = i;
        else if (role[i] == 2) sp->val_idx[b++] = i;
    }
    LT_ASSERT(a == sp->n_train && b == sp->n_val);
done:
    lt_free(counts);
    lt_free(start);
    lt_free(fill);
    lt_free(order);
    lt_free(prof);
    lt_free(rank_order);
    lt_free(role);
    if (st != LT_OK) lt_split_free(sp);
    return st;
}
