/* Many / Medium / Few class groups from training counts.
 *
 * Threshold mode is the protocol of Liu et al. 2019 (OLTR), used by every later long-tail
 * paper: many n > 100, medium 20 <= n <= 100, few n < 20 (CIFAR-100-LT IF100 -> 35/35/30).
 * Rank mode splits classes into thirds by count, for datasets with too few classes for
 * the thresholds to mean anything (Fashion-MNIST-LT: 3 / 4 / 3). */
#include "longtail/eval.h"

#include <string.h>

lt_group_spec lt_group_spec_default(void) {
    lt_group_spec s;
    s.mode = LT_GROUP_BY_THRESHOLD;
    s.many_above = 100;
    s.few_below = 20;
    return s;
}

const char *lt_group_mode_name(lt_group_mode mode) {
    switch (mode) {
    case LT_GROUP_BY_THRESHOLD: return "threshold";
    case LT_GROUP_BY_RANK: return "rank";
    case LT_GROUP_BY_AUTO: return "auto";
    }
    return "?";
}

lt_status lt_group_mode_parse(const char *name, lt_group_mode *mode) {
    if (name && strcmp(name, "threshold") == 0) { *mode = LT_GROUP_BY_THRESHOLD; return LT_OK; }
    if (name && strcmp(name, "rank") == 0) { *mode = LT_GROUP_BY_RANK; return LT_OK; }
    if (name && strcmp(name, "auto") == 0) { *mode = LT_GROUP_BY_AUTO; return LT_OK; }
    return lt_error(LT_ERR_ARG, "groups: unknown mode '%s' (expected threshold, rank or auto)",
                    name ? name : "(null)");
}

const char *lt_group_name(int group) {
    switch (group) {
    case LT_EVAL_MANY: return "many";
    case LT_EVAL_MEDIUM: return "medium";
    case LT_EVAL_FEW: return "few";
    }
    return "?";
}

static void assign_threshold(const int64_t *n, int64_t C, const lt_group_spec *s, int32_t *g) {
    for (int64_t c = 0; c < C; c++)
        g[c] = n[c] > s->many_above ? LT_EVAL_MANY : n[c] < s->few_below ? LT_EVAL_FEW : LT_EVAL_MEDIUM;
}

/* Rank of class c = number of classes before it in the order (count descending, index
 * ascending). O(C^2), a few ms even for iNat's 8142 classes, and needs no buffer. */
static void assign_rank(const int64_t *n, int64_t C, int32_t *g) {
    const int64_t third = C / 3;
    for (int64_t c = 0; c < C; c++) {
        int64_t rank = 0;
        for (int64_t j = 0; j < C; j++)
            if (n[j] > n[c] || (n[j] == n[c] && j < c)) rank++;
        g[c] = rank < third ? LT_EVAL_MANY : rank >= C - third ? LT_EVAL_FEW : LT_EVAL_MEDIUM;
    }
}

lt_status lt_eval_groups_assign(const int64_t *class_counts, int64_t num_classes,
                                const lt_group_spec *spec, int32_t *group_of_class,
                                lt_group_mode *used) {
    lt_group_spec s = spec ? *spec : lt_group_spec_default();
    if (num_classes < 1)
        return lt_error(LT_ERR_ARG, "groups: num_classes = %lld, expected >= 1",
                        (long long)num_classes);
    if (!class_counts || !group_of_class)
        return lt_error(LT_ERR_ARG, "groups: class_counts and group_of_class must not be NULL");
    for (int64_t c = 0; c < num_classes; c++)
        if (class_counts[c] < 0)
            return lt_error(LT_ERR_ARG, "groups: class_counts[%lld] = %lld, expected >= 0",
                            (long long)c, (long long)class_counts[c]);
    if (s.mode != LT_GROUP_BY_THRESHOLD && s.mode != LT_GROUP_BY_RANK &&
        s.mode != LT_GROUP_BY_AUTO)
        return lt_error(LT_ERR_ARG, "groups: mode = %d, expected threshold (0), rank (1) or "
                        "auto (2)", (int)s.mode);
    /* few_below <= many_above + 1 keeps "few" and "many" disjoint. */
    if (s.mode != LT_GROUP_BY_RANK && s.few_below > s.many_above + 1)
        return lt_error(LT_ERR_ARG, "groups: few_below = %lld > many_above + 1 = %lld: a class "
                        "could be both many and few", (long long)s.few_below,
                        (long long)s.many_above + 1);

    lt_group_mode mode = s.mode;
    if (mode == LT_GROUP_BY_AUTO) {
        int64_t size[LT_EVAL_GROUPS] = {0};
        assign_threshold(class_counts, num_classes, &s, group_of_class);
        for (int64_t c = 0; c < num_classes; c++) size[group_of_class[c]]++;
        mode = size[0] && size[1] && size[2] ? LT_GROUP_BY_THRESHOLD : LT_GROUP_BY_RANK;
    }
    if (mode == LT_GROUP_BY_THRESHOLD)
        assign_threshold(class_counts, num_classes, &s, group_of_class);
    else
        assign_rank(class_counts, num_classes, group_of_class);
    if (used) *used = mode;
    return LT_OK;
}
