/* lt_eval_result as JSON fields, through the io module's streaming writer (lt_jw). The
 * field names are the contract with metrics.json readers (`longtail report`, the results
 * script, users' notebooks): docs/metrics.md lists them. Undefined values are null. */
#include "longtail/eval.h"
#include "longtail/io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void num(lt_jw *w, const char *key, double v) {
    lt_jw_key(w, key);
    if (isfinite(v)) lt_jw_double(w, v);
    else lt_jw_null(w);
}

static void doubles(lt_jw *w, const char *key, const double *v, int64_t n) {
    lt_jw_key(w, key);
    if (!v) {
        lt_jw_null(w);
        return;
    }
    lt_jw_begin_array(w);
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(v[i])) lt_jw_double(w, v[i]);
        else lt_jw_null(w);
    }
    lt_jw_end_array(w);
}

static void ints(lt_jw *w, const char *key, const int64_t *v, int64_t n) {
    lt_jw_key(w, key);
    if (!v) {
        lt_jw_null(w);
        return;
    }
    lt_jw_begin_array(w);
    for (int64_t i = 0; i < n; i++) lt_jw_int(w, v[i]);
    lt_jw_end_array(w);
}

static void features(lt_jw *w, const char *prefix, const lt_feature_stats *f, int64_t C) {
    char key[64];
    snprintf(key, sizeof key, "%sfeature_norms", prefix);
    doubles(w, key, f->class_norm, C);
    snprintf(key, sizeof key, "%sfdr", prefix);
    num(w, key, f->fdr);
    snprintf(key, sizeof key, "%sfdr_dims", prefix);
    lt_jw_key(w, key);
    if (f->fdr_dims > 0) lt_jw_int(w, f->fdr_dims);
    else lt_jw_null(w);
    snprintf(key, sizeof key, "%sfdr_error", prefix);
    lt_jw_key(w, key);
    if (f->fdr_status != LT_OK) lt_jw_string(w, f->fdr_error);
    else lt_jw_null(w);
}

void lt_eval_result_write_json(const lt_eval_result *r, struct lt_jw *w) {
    const int64_t C = r->num_classes;
    lt_jw_key(w, "num_classes");
    lt_jw_int(w, C);
    lt_jw_key(w, "num_samples");
    lt_jw_int(w, r->num_samples);
    num(w, "top1", r->top1);
    num(w, "top5", r->topk);
    lt_jw_key(w, "topk_k");
    lt_jw_int(w, r->topk_k);
    num(w, "balanced_acc", r->balanced_acc);
    num(w, "many", r->group_acc[LT_EVAL_MANY]);
    num(w, "medium", r->group_acc[LT_EVAL_MEDIUM]);
    num(w, "few", r->group_acc[LT_EVAL_FEW]);

    lt_jw_key(w, "groups");
    lt_jw_begin_object(w);
    lt_jw_key(w, "mode");
    lt_jw_string(w, lt_group_mode_name(r->groups.mode));
    lt_jw_key(w, "many_above");
    lt_jw_int(w, r->groups.many_above);
    lt_jw_key(w, "few_below");
    lt_jw_int(w, r->groups.few_below);
    ints(w, "sizes", r->group_size, LT_EVAL_GROUPS);
    lt_jw_key(w, "class_group");
    if (r->class_group) {
        lt_jw_begin_array(w);
        for (int64_t c = 0; c < C; c++) lt_jw_string(w, lt_group_name(r->class_group[c]));
        lt_jw_end_array(w);
    } else {
        lt_jw_null(w);
    }
    lt_jw_end_object(w);

    doubles(w, "per_class_acc", r->per_class_acc, C);
    ints(w, "class_counts", r->class_counts, C);
    ints(w, "class_samples", r->class_samples, C);
    lt_jw_key(w, "confusion");
    if (r->confusion) {
        lt_jw_begin_array(w);
        for (int64_t i = 0; i < C; i++) {
            lt_jw_begin_array(w);
            for (int64_t j = 0; j < C; j++) lt_jw_int(w, r->confusion[i * C + j]);
            lt_jw_end_array(w);
        }
        lt_jw_end_array(w);
    } else {
        lt_jw_null(w);
    }
    num(w, "ece", r->ece);
    lt_jw_key(w, "ece_bins");
    lt_jw_int(w, LT_ECE_BINS);
    num(w, "nll", r->nll);

    doubles(w, "weight_norms", r->weight_norms, C);
    features(w, "", &r->features, C);
    features(w, "train_", &r->train_features, C);
    num(w, "bn_scale_mean", r->bn_scale_mean);
    num(w, "bn_scale_std", r->bn_scale_std);
    lt_jw_key(w, "bn_scale_count");
    lt_jw_int(w, r->bn_scale_count);
    lt_jw_key(w, "posthoc");
    lt_jw_string(w, lt_posthoc_name(r->posthoc));
    num(w, "posthoc_tau", r->posthoc_tau);
}

lt_status lt_eval_result_to_json(const lt_eval_result *r, int indent, char **json,
                                 int64_t *len) {
    if (!r || !json) return lt_error(LT_ERR_ARG, "eval_result_to_json: NULL argument");
    *json = NULL;
    if (len) *len = 0;
    lt_jw w;
    lt_jw_init(&w, indent);
    lt_jw_begin_object(&w);
    lt_eval_result_write_json(r, &w);
    lt_jw_end_object(&w);
    const char *text = NULL;
    int64_t n = 0;
    lt_status st = lt_jw_finish(&w, &text, &n);
    if (st == LT_OK) {
        char *copy = lt_malloc((size_t)n + 1);
        if (!copy) {
            st = lt_error(LT_ERR_NOMEM, "eval_result_to_json: out of memory (%lld bytes)", (long long)n);
        } else {
            memcpy(copy, text, (size_t)n);
            copy[n] = '\0';
            *json = copy;
            if (len) *len = n;
        }
    }
    lt_jw_free(&w);
    return st;
}
