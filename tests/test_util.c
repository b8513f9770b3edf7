/* Shared test helpers; see test_util.h. */
#include "test_util.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_tensor *tu_owned_new(const char *name, int ndim, const int64_t *shape) {
    lt_tensor tmp = {0};
    if (lt_tensor_set_shape(&tmp, ndim, shape) != LT_OK) return NULL;
    lt_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    *t = tmp;
    t->data = calloc((size_t)tmp.numel, sizeof(float));
    t->grad = calloc((size_t)tmp.numel, sizeof(float));
    t->requires_grad = 1;
    t->name = name;
    if (!t->data || !t->grad) { free(t->data); free(t->grad); free(t); return NULL; }
    return t;
}

lt_tensor *tu_owned_from(const char *name, int ndim, const int64_t *shape, const float *data) {
    lt_tensor *t = tu_owned_new(name, ndim, shape);
    if (t && data) memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    return t;
}

void tu_owned_free(lt_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

const lt_st_entry *tu_fixture_entry(const lt_safetensors *st, const char *c, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", c, what);
    return lt_safetensors_find(st, name);
}

const void *tu_fixture_get_at(const char *file, int line, const lt_safetensors *st, const char *c,
                              const char *what, lt_dtype dt, int64_t numel) {
    const lt_st_entry *e = tu_fixture_entry(st, c, what);
    if (!e) {
        lt_test_fail(file, line, "fixture %s.%s: missing", c, what);
        return NULL;
    }
    if (e->dtype != dt || e->numel != numel) {
        lt_test_fail(file, line, "fixture %s.%s: %lld elements of %s, want %lld of %s", c, what,
                     (long long)e->numel, lt_dtype_name(e->dtype), (long long)numel, lt_dtype_name(dt));
        return NULL;
    }
    return lt_safetensors_data(st, e);
}

void tu_fixture_input_grads_at(const char *file, int line, const lt_safetensors *st, const char *c,
                               lt_tensor *const *in, int n_in, double atol, double rtol) {
    for (int i = 0; i < n_in; i++) {
        char gname[16], what[160];
        snprintf(gname, sizeof gname, "gin%d", i);
        const float *want = tu_fixture_get_at(file, line, st, c, gname, LT_DT_F32, in[i]->numel);
        snprintf(what, sizeof what, "%s grad of input %d", c, i);
        if (want) lt_test_close(file, line, what, in[i]->grad, want, in[i]->numel, atol, rtol);
    }
}

int tu_gradcheck_ok_at(const char *file, int line, const char *name, lt_status st, const lt_gradcheck_result *res) {
    if (st != LT_OK) {
        lt_test_fail(file, line, "%s: gradcheck: %s", name, lt_last_error());
        return 0;
    }
    if (res->failed) {
        lt_test_fail(file, line, "%s: %lld of %lld gradient elements wrong (max abs err %.3g): %s", name,
                     (long long)res->failed, (long long)res->checked, res->max_abs_err, res->report);
        return 0;
    }
    if (res->checked == 0) {
        lt_test_fail(file, line, "%s: nothing checked", name);
        return 0;
    }
    return 1;
}

char *tu_slurp(const char *dir, const char *name, int64_t *n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *d = NULL;
    int64_t len = 0;
    if (lt_file_read(path, 0, &d, &len) != LT_OK) return NULL;
    if (n) *n = len;
    return d;
}

lt_status tu_make_quadrants(lt_dataset *ds, const int64_t *counts, uint64_t seed, const char *name_prefix) {
    memset(ds, 0, sizeof *ds);
    int64_t n = 0;
    for (int k = 0; k < 4; k++) n += counts[k];
    ds->n = n;
    ds->h = ds->w = 8;
    ds->c = 1;
    ds->n_classes = 4;
    ds->images = lt_malloc((size_t)(n * 64));
    ds->labels = lt_malloc((size_t)n * sizeof(int32_t));
    ds->class_names = lt_calloc(4, sizeof(char *));
    if (!ds->images || !ds->labels || !ds->class_names) { lt_dataset_free(ds); return LT_ERR_NOMEM; }
    for (int k = 0; k < 4; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s%d", name_prefix, k);
        ds->class_names[k] = lt_strdup(nm);
    }
    lt_rng r;
    lt_rng_init(&r, seed, LT_STREAM_TEST);
    int64_t i = 0;
    for (int k = 0; k < 4; k++)
        for (int64_t j = 0; j < counts[k]; j++, i++) {
            ds->labels[i] = k;
            uint8_t *img = ds->images + i * 64;
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    int q = (y >= 4) * 2 + (x >= 4);
                    int v = (int)(lt_rng_uniform(&r) * 90.0f) + (q == k ? 130 : 0);
                    img[y * 8 + x] = (uint8_t)(v > 255 ? 255 : v);
                }
        }
    return LT_OK;
}

int tu_gen_init(tu_gen *g, int64_t n_test_per_class, const char *name_prefix) {
    static const int64_t tr[4] = {96, 48, 24, 12}, va[4] = {4, 4, 4, 4};
    const int64_t te[4] = {n_test_per_class, n_test_per_class, n_test_per_class, n_test_per_class};
    if (tu_make_quadrants(&g->train, tr, 1, name_prefix) || tu_make_quadrants(&g->val, va, 2, name_prefix) ||
        tu_make_quadrants(&g->test, te, 3, name_prefix))
        return 0;
    g->td = (lt_train_data){&g->train, &g->val, &g->test};
    return 1;
}

void tu_gen_free(tu_gen *g) {
    lt_dataset_free(&g->train);
    lt_dataset_free(&g->val);
    lt_dataset_free(&g->test);
}

/* Counts the tensors that differ between two checkpoints: those whose name starts with
 * `prefix` into *in, the others into *out. */
int tu_ckpt_diff(const char *p1, const char *p2, const char *prefix, int *in, int *out) {
    lt_safetensors *a, *b;
    if (lt_safetensors_load(p1, &a)) return 0;
    if (lt_safetensors_load(p2, &b)) { lt_safetensors_free(a); return 0; }
    *in = *out = 0;
    int ok = 1;
    size_t pl = strlen(prefix);
    for (int64_t i = 0; i < lt_safetensors_count(a); i++) {
        const lt_st_entry *ea = lt_safetensors_entry(a, i), *eb = lt_safetensors_find(b, ea->name);
        if (!eb || eb->nbytes != ea->nbytes) { ok = 0; continue; }
        int diff = memcmp(lt_safetensors_data(a, ea), lt_safetensors_data(b, eb), (size_t)ea->nbytes) != 0;
        if (!strncmp(ea->name, prefix, pl)) *in += diff;
        else *out += diff;
    }
    lt_safetensors_free(a);
    lt_safetensors_free(b);
    return ok;
}
