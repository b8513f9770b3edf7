/* JSON trees back to text, and the mean ± std summary of several runs' metrics. */
#include "method_internal.h"

#include <math.h>
#include <string.h>

void lt_mt_json_write(lt_jw *w, const lt_json *j) {
    switch (j->type) {
    case LT_JSON_NULL: lt_jw_null(w); break;
    case LT_JSON_BOOL: lt_jw_bool(w, j->boolean); break;
    case LT_JSON_NUMBER:
        if (j->is_int) lt_jw_int(w, j->i);
        else lt_jw_double(w, j->num);
        break;
    case LT_JSON_STRING: lt_jw_string(w, j->str); break;
    case LT_JSON_ARRAY:
        lt_jw_begin_array(w);
        for (int64_t k = 0; k < j->n; k++) lt_mt_json_write(w, &j->items[k]);
        lt_jw_end_array(w);
        break;
    case LT_JSON_OBJECT:
        lt_jw_begin_object(w);
        for (int64_t k = 0; k < j->n; k++) {
            lt_jw_key(w, j->keys[k]);
            lt_mt_json_write(w, &j->items[k]);
        }
        lt_jw_end_object(w);
        break;
    }
}

static int is_num(const lt_json *j) { return j && (j->type == LT_JSON_NUMBER || j->type == LT_JSON_NULL); }

/* Mean and sample std of the numbers (nulls skipped); NaN when none. */
static void stats(const lt_json *const *v, int n, double *mean, double *sd) {
    double s = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (v[i]->type == LT_JSON_NUMBER) { s += v[i]->num; m++; }
    if (m == 0) { *mean = *sd = NAN; return; }
    double mu = s / m, q = 0;
    for (int i = 0; i < n; i++)
        if (v[i]->type == LT_JSON_NUMBER) q += (v[i]->num - mu) * (v[i]->num - mu);
    *mean = mu;
    *sd = m > 1 ? sqrt(q / (m - 1)) : 0.0;
}

#define MAX_TREES 1024

void lt_mt_json_summarize(lt_jw *w, const lt_json *const *t, int n) {
    if (n <= 0 || n > MAX_TREES) { lt_jw_null(w); return; }
    const lt_json *v[MAX_TREES];
    int all_num = 1, same_type = 1;
    for (int i = 0; i < n; i++) {
        all_num &= is_num(t[i]);
        same_type &= t[i]->type == t[0]->type;
    }
    if (all_num) {
        double mu, sd;
        stats(t, n, &mu, &sd);
        lt_jw_begin_object(w);
        lt_jw_key(w, "mean");
        lt_jw_double(w, mu);
        lt_jw_key(w, "std");
        lt_jw_double(w, sd);
        lt_jw_end_object(w);
        return;
    }
    if (!same_type) { lt_jw_null(w); return; }
    switch (t[0]->type) {
    case LT_JSON_OBJECT:
        lt_jw_begin_object(w);
        for (int64_t k = 0; k < t[0]->n; k++) {
            int ok = 1;
            for (int i = 0; i < n && ok; i++) ok = (v[i] = lt_json_get(t[i], t[0]->keys[k])) != NULL;
            if (!ok) continue;
            lt_jw_key(w, t[0]->keys[k]);
            lt_mt_json_summarize(w, v, n);
        }
        lt_jw_end_object(w);
        break;
    case LT_JSON_ARRAY: {
        int same_len = 1, nums = 1;
        for (int i = 0; i < n; i++) {
            same_len &= t[i]->n == t[0]->n;
            for (int64_t k = 0; k < t[i]->n && nums; k++) nums = is_num(&t[i]->items[k]);
        }
        if (!same_len) { lt_jw_null(w); break; }
        if (nums && t[0]->n > 0) {
            /* {"mean": [...], "std": [...]} rather than a list of small objects. */
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 0) { lt_jw_begin_object(w); lt_jw_key(w, "mean"); }
                else lt_jw_key(w, "std");
                lt_jw_begin_array(w);
                for (int64_t k = 0; k < t[0]->n; k++) {
                    for (int i = 0; i < n; i++) v[i] = &t[i]->items[k];
                    double mu, sd;
                    stats(v, n, &mu, &sd);
                    lt_jw_double(w, pass == 0 ? mu : sd);
                }
                lt_jw_end_array(w);
            }
            lt_jw_end_object(w);
            break;
        }
        lt_jw_begin_array(w);
        for (int64_t k = 0; k < t[0]->n; k++) {
            for (int i = 0; i < n; i++) v[i] = &t[i]->items[k];
            lt_mt_json_summarize(w, v, n);
        }
        lt_jw_end_array(w);
        break;
    }
    case LT_JSON_STRING: {
        int same = 1;
        for (int i = 1; i < n && same; i++) same = !strcmp(t[i]->str, t[0]->str);
        if (same) lt_jw_string(w, t[0]->str);
        else lt_jw_null(w);
        break;
    }
    case LT_JSON_BOOL: {
        int same = 1;
        for (int i = 1; i < n && same; i++) same = t[i]->boolean == t[0]->boolean;
        if (same) lt_jw_bool(w, t[0]->boolean);
        else lt_jw_null(w);
        break;
    }
    default: lt_jw_null(w); break;
    }
}
