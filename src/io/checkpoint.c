/* Checkpoints in PyTorch's layouts (see include/longtail/checkpoint.h).
 *
 * The only layout difference between longtail's memory and a PyTorch state_dict is the
 * convolution weight: (O, KH, KW, I) here, (O, I, KH, KW) in PyTorch. Every 4-d weight of
 * an lt_params is a convolution weight (nn.h), so the rule is by rank. */
#include "longtail/checkpoint.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- snapshots */

lt_status lt_snapshot_init(lt_snapshot *s, const lt_params *p) {
    memset(s, 0, sizeof *s);
    s->n_data = p->n_data;
    s->n_buffers = p->n_buffers;
    s->n_counters = p->n_counters;
    s->data = lt_calloc((size_t)(s->n_data > 0 ? s->n_data : 1), sizeof(float));
    s->buffers = lt_calloc((size_t)(s->n_buffers > 0 ? s->n_buffers : 1), sizeof(float));
    s->counters = lt_calloc((size_t)(s->n_counters > 0 ? s->n_counters : 1), sizeof(int64_t));
    if (!s->data || !s->buffers || !s->counters) {
        lt_snapshot_free(s);
        return lt_error(LT_ERR_NOMEM, "snapshot: out of memory for %lld values", (long long)p->n_data);
    }
    return LT_OK;
}

void lt_snapshot_free(lt_snapshot *s) {
    if (!s) return;
    lt_free(s->data);
    lt_free(s->buffers);
    lt_free(s->counters);
    memset(s, 0, sizeof *s);
}

void lt_snapshot_take(lt_snapshot *s, const lt_params *p) {
    LT_ASSERT(s->n_data == p->n_data && s->n_buffers == p->n_buffers && s->n_counters == p->n_counters);
    if (p->n_data) memcpy(s->data, p->data, (size_t)p->n_data * sizeof(float));
    if (p->n_buffers) memcpy(s->buffers, p->buffers, (size_t)p->n_buffers * sizeof(float));
    if (p->n_counters) memcpy(s->counters, p->counters, (size_t)p->n_counters * sizeof(int64_t));
}

void lt_snapshot_restore(const lt_snapshot *s, lt_params *p) {
    LT_ASSERT(s->n_data == p->n_data && s->n_buffers == p->n_buffers && s->n_counters == p->n_counters);
    if (p->n_data) memcpy(p->data, s->data, (size_t)p->n_data * sizeof(float));
    if (p->n_buffers) memcpy(p->buffers, s->buffers, (size_t)p->n_buffers * sizeof(float));
    if (p->n_counters) memcpy(p->counters, s->counters, (size_t)p->n_counters * sizeof(int64_t));
}

/* ---------------------------------------------------------------- layouts */

/* PyTorch shape of an entry: OIHW for a 4-d weight, [] for a counter, else as in memory. */
static int torch_shape(const lt_param *e, int64_t *shape) {
    if (e->kind == LT_PARAM_COUNTER) return 0;
    const lt_tensor *t = &e->t;
    if (t->ndim == 4) {
        shape[0] = t->shape[0];
        shape[1] = t->shape[3];
        shape[2] = t->shape[1];
        shape[3] = t->shape[2];
        return 4;
    }
    for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
    return t->ndim;
}

/* (O, KH, KW, I) -> (O, I, KH, KW) */
static void ohwi_to_oihw(const float *src, float *dst, int64_t o, int64_t kh, int64_t kw, int64_t ci) {
    for (int64_t a = 0; a < o; a++)
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++)
                for (int64_t i = 0; i < ci; i++)
                    dst[((a * ci + i) * kh + y) * kw + x] = src[((a * kh + y) * kw + x) * ci + i];
}

/* (O, I, KH, KW) -> (O, KH, KW, I) */
static void oihw_to_ohwi(const float *src, float *dst, int64_t o, int64_t kh, int64_t kw, int64_t ci) {
    for (int64_t a = 0; a < o; a++)
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++)
                for (int64_t i = 0; i < ci; i++)
                    dst[((a * kh + y) * kw + x) * ci + i] = src[((a * ci + i) * kh + y) * kw + x];
}

static int selected(const lt_param *e, unsigned what) {
    switch (e->kind) {
    case LT_PARAM_WEIGHT: return (what & LT_CKPT_WEIGHTS) != 0;
    case LT_PARAM_BUFFER: return (what & LT_CKPT_BUFFERS) != 0;
    case LT_PARAM_COUNTER: return (what & LT_CKPT_COUNTERS) != 0;
    }
    return 0;
}

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ---------------------------------------------------------------- writer */

typedef struct wentry {
    char *name;
    lt_dtype dtype;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
    void *data;
} wentry;

struct lt_ckpt_writer {
    wentry *e;
    int64_t n, cap;
    char **meta;        /* key, value, key, value, ... */
    int64_t n_meta, cap_meta;
    lt_status err;      /* first error (sticky) */
};

lt_status lt_ckpt_writer_new(lt_ckpt_writer **out) {
    *out = lt_calloc(1, sizeof **out);
    return *out ? LT_OK : lt_error(LT_ERR_NOMEM, "checkpoint: out of memory");
}

void lt_ckpt_writer_free(lt_ckpt_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        lt_free(w->e[i].name);
        lt_free_aligned(w->e[i].data);
    }
    for (int64_t i = 0; i < 2 * w->n_meta; i++) lt_free(w->meta[i]);
    lt_free(w->e);
    lt_free(w->meta);
    lt_free(w);
}

/* A new entry with an uninitialized data buffer of `bytes`; NULL on out-of-memory. */
static wentry *push(lt_ckpt_writer *w, const char *prefix, const char *name, lt_dtype dt, int ndim,
                    const int64_t *shape) {
    if (w->err) return NULL;
    if (w->n == w->cap) {
        int64_t cap = w->cap ? 2 * w->cap : 64;
        wentry *e = lt_realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) { w->err = lt_error(LT_ERR_NOMEM, "checkpoint: out of memory"); return NULL; }
        w->e = e;
        w->cap = cap;
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    size_t nl = strlen(prefix) + strlen(name) + 1;
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = lt_malloc(nl);
    e->data = lt_malloc_aligned((size_t)(numel > 0 ? numel : 1) * (size_t)lt_dtype_size(dt));
    if (!e->name || !e->data) {
        lt_free(e->name);
        lt_free_aligned(e->data);
        w->err = lt_error(LT_ERR_NOMEM, "checkpoint: out of memory for '%s%s'", prefix, name);
        return NULL;
    }
    snprintf(e->name, nl, "%s%s", prefix, name);
    e->dtype = dt;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    w->n++;
    return e;
}

lt_status lt_ckpt_writer_add_params(lt_ckpt_writer *w, const lt_params *p, const char *prefix,
                                    unsigned what, const float *data, const float *buffers,
                                    const int64_t *counters) {
    if (w->err) return w->err;
    if (!p->finalized) return w->err = lt_error(LT_ERR_STATE, "checkpoint: parameters are not finalized");
    if (!prefix) prefix = "";
    const float *dbase = data ? data : p->data, *bbase = buffers ? buffers : p->buffers;
    const int64_t *cbase = counters ? counters : p->counters;
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (!selected(pe, what)) continue;
        int64_t shape[4];
        int ndim = torch_shape(pe, shape);
        if (pe->kind == LT_PARAM_COUNTER) {
            wentry *e = push(w, prefix, pe->t.name, LT_DT_I64, 0, shape);
            if (!e) return w->err;
            memcpy(e->data, cbase + pe->offset, sizeof(int64_t));
            continue;
        }
        wentry *e = push(w, prefix, pe->t.name, LT_DT_F32, ndim, shape);
        if (!e) return w->err;
        const float *src = (pe->kind == LT_PARAM_WEIGHT ? dbase : bbase) + pe->offset;
        const lt_tensor *t = &pe->t;
        if (t->ndim == 4) ohwi_to_oihw(src, e->data, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
        else memcpy(e->data, src, (size_t)t->numel * sizeof(float));
    }
    return LT_OK;
}

static const char *optim_kind_name(lt_optim_kind k) {
    switch (k) {
    case LT_OPTIM_SGD: return "sgd";
    case LT_OPTIM_ADAM: return "adam";
    case LT_OPTIM_ADAMW: return "adamw";
    }
    return "?";
}

/* State slot names as in torch.optim's state_dict. */
static const char *slot_name(const lt_optim *o, int slot) {
    if (o->cfg.kind == LT_OPTIM_SGD) return "momentum_buffer";
    return slot == 0 ? "exp_avg" : "exp_avg_sq";
}

lt_status lt_ckpt_writer_add_optim(lt_ckpt_writer *w, const lt_optim *o, const char *prefix) {
    if (w->err) return w->err;
    const lt_params *p = o->params;
    char pre[160];
    for (int s = 0; s < o->n_slots; s++) {
        snprintf(pre, sizeof pre, "%soptimizer/%s/", prefix, slot_name(o, s));
        lt_status st = lt_ckpt_writer_add_params(w, p, pre, LT_CKPT_WEIGHTS, o->state + (int64_t)s * p->n_data,
                                                 NULL, NULL);
        if (st) return st;
    }
    snprintf(pre, sizeof pre, "%soptimizer/step/", prefix);
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (pe->kind != LT_PARAM_WEIGHT) continue;
        wentry *e = push(w, pre, pe->t.name, LT_DT_I64, 0, NULL);
        if (!e) return w->err;
        memcpy(e->data, &o->steps[i], sizeof(int64_t));
    }
    snprintf(pre, sizeof pre, "%soptimizer", prefix);
    return lt_ckpt_writer_add_meta(w, pre, optim_kind_name(o->cfg.kind));
}

lt_status lt_ckpt_writer_add_tensor(lt_ckpt_writer *w, const char *name, lt_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data) {
    if (w->err) return w->err;
    if (ndim < 0 || ndim > LT_ST_MAX_DIMS || lt_dtype_size(dtype) == 0)
        return w->err = lt_error(LT_ERR_ARG, "checkpoint: tensor '%s': bad dtype or rank %d", name, ndim);
    wentry *e = push(w, "", name, dtype, ndim, shape);
    if (!e) return w->err;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    if (numel > 0) memcpy(e->data, data, (size_t)numel * (size_t)lt_dtype_size(dtype));
    return LT_OK;
}

lt_status lt_ckpt_writer_add_meta(lt_ckpt_writer *w, const char *key, const char *value) {
    if (w->err) return w->err;
    for (int64_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[2 * i], key)) {
            char *v = lt_strdup(value);
            if (!v) return w->err = lt_error(LT_ERR_NOMEM, "checkpoint: out of memory");
            lt_free(w->meta[2 * i + 1]);
            w->meta[2 * i + 1] = v;
            return LT_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int64_t cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **m = lt_realloc(w->meta, (size_t)(2 * cap) * sizeof *m);
        if (!m) return w->err = lt_error(LT_ERR_NOMEM, "checkpoint: out of memory");
        w->meta = m;
        w->cap_meta = cap;
    }
    char *k = lt_strdup(key), *v = lt_strdup(value);
    if (!k || !v) {
        lt_free(k);
        lt_free(v);
        return w->err = lt_error(LT_ERR_NOMEM, "checkpoint: out of memory");
    }
    w->meta[2 * w->n_meta] = k;
    w->meta[2 * w->n_meta + 1] = v;
    w->n_meta++;
    return LT_OK;
}

lt_status lt_ckpt_writer_commit(lt_ckpt_writer *w, const char *path) {
    lt_status s = w->err;
    lt_st_tensor *t = NULL;
    if (!s) {
        t = lt_calloc((size_t)(w->n > 0 ? w->n : 1), sizeof *t);
        if (!t) s = lt_error(LT_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!s) {
        for (int64_t i = 0; i < w->n; i++) {
            t[i].name = w->e[i].name;
            t[i].dtype = w->e[i].dtype;
            t[i].ndim = w->e[i].ndim;
            for (int d = 0; d < w->e[i].ndim; d++) t[i].shape[d] = w->e[i].shape[d];
            t[i].data = w->e[i].data;
        }
        s = lt_safetensors_save(path, t, w->n, (const char *const *)w->meta, w->n_meta);
    }
    lt_free(t);
    lt_ckpt_writer_free(w);
    return s;
}

lt_status lt_checkpoint_save(const char *path, const lt_params *p, const char *const *meta_kv, int64_t n_meta) {
    lt_ckpt_writer *w;
    lt_status s = lt_ckpt_writer_new(&w);
    if (s) return s;
    s = lt_ckpt_writer_add_params(w, p, "", LT_CKPT_ALL, NULL, NULL, NULL);
    for (int64_t i = 0; i < n_meta && !s; i++) s = lt_ckpt_writer_add_meta(w, meta_kv[2 * i], meta_kv[2 * i + 1]);
    if (s) {
        lt_ckpt_writer_free(w);
        return s;
    }
    return lt_ckpt_writer_commit(w, path);
}

/* ---------------------------------------------------------------- reader */

/* Checks one selected entry against the file; *e gets the file's entry (NULL for a
 * missing counter). */
static lt_status check_entry(const lt_safetensors *st, const lt_param *pe, const char *prefix,
                             const lt_st_entry **out) {
    const char *path = lt_safetensors_path(st);
    char name[512], a[96], b[96];
    snprintf(name, sizeof name, "%s%s", prefix, pe->t.name);
    const lt_st_entry *e = lt_safetensors_find(st, name);
    *out = e;
    if (pe->kind == LT_PARAM_COUNTER) {
        if (!e) return LT_OK;
        if ((e->dtype != LT_DT_I64 && e->dtype != LT_DT_I32) || e->numel != 1 || e->ndim > 1)
            return lt_error(LT_ERR_FORMAT, "%s: tensor '%s': %s %s in the file, expected an I64 scalar (shape ())",
                            path, name, lt_dtype_name(e->dtype), shape_text(e->ndim, e->shape, a, sizeof a));
        return LT_OK;
    }
    int64_t shape[4];
    int ndim = torch_shape(pe, shape);
    if (!e)
        return lt_error(LT_ERR_FORMAT, "%s: tensor '%s' is missing (the model needs it, shape %s)", path, name,
                        shape_text(ndim, shape, a, sizeof a));
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same)
        return lt_error(LT_ERR_FORMAT, "%s: tensor '%s': shape %s in the file, the model needs %s%s", path, name,
                        shape_text(e->ndim, e->shape, a, sizeof a), shape_text(ndim, shape, b, sizeof b),
                        ndim == 4 ? " (PyTorch OIHW)" : "");
    if (e->dtype != LT_DT_F32)
        return lt_error(LT_ERR_FORMAT, "%s: tensor '%s': dtype %s in the file, expected F32", path, name,
                        lt_dtype_name(e->dtype));
    return LT_OK;
}

/* Copies one checked entry e (NULL: a missing counter, read as 0) into the storage of pe. */
static void copy_entry(const lt_safetensors *st, const lt_param *pe, const lt_st_entry *e, float *dbase,
                       float *bbase, int64_t *cbase) {
    if (pe->kind == LT_PARAM_COUNTER) {
        int64_t v = 0;
        if (e && e->dtype == LT_DT_I64) memcpy(&v, lt_safetensors_data(st, e), sizeof v);
        else if (e) {
            int32_t v32;
            memcpy(&v32, lt_safetensors_data(st, e), sizeof v32);
            v = v32;
        }
        cbase[pe->offset] = v;
        return;
    }
    const float *src = lt_safetensors_data(st, e);
    float *dst = (pe->kind == LT_PARAM_WEIGHT ? dbase : bbase) + pe->offset;
    const lt_tensor *t = &pe->t;
    if (t->ndim == 4) oihw_to_ohwi(src, dst, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    else memcpy(dst, src, (size_t)t->numel * sizeof(float));
}

lt_status lt_ckpt_read_params(const lt_safetensors *st, lt_params *p, const char *prefix, unsigned what,
                              int strict, float *data, float *buffers, int64_t *counters) {
    const char *path = lt_safetensors_path(st);
    if (!prefix) prefix = "";
    if (!p->finalized) return lt_error(LT_ERR_STATE, "%s: the model's parameters are not finalized", path);
    /* Pass 1: every check, so a bad file changes nothing. */
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (!selected(pe, what)) continue;
        const lt_st_entry *e;
        lt_status s = check_entry(st, pe, prefix, &e);
        if (s) return s;
    }
    if (strict) {
        size_t pl = strlen(prefix);
        for (int64_t k = 0; k < lt_safetensors_count(st); k++) {
            const char *nm = lt_safetensors_entry(st, k)->name;
            if (strncmp(nm, prefix, pl) != 0 || strchr(nm + pl, '/')) continue;
            if (!lt_params_find(p, nm + pl))
                return lt_error(LT_ERR_FORMAT, "%s: unexpected tensor '%s' (the model has no such parameter or buffer)",
                                path, nm);
        }
    }
    /* Pass 2: copy. */
    float *dbase = data ? data : p->data, *bbase = buffers ? buffers : p->buffers;
    int64_t *cbase = counters ? counters : p->counters;
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (!selected(pe, what)) continue;
        const lt_st_entry *e;
        (void)check_entry(st, pe, prefix, &e);
        copy_entry(st, pe, e, dbase, bbase, cbase);
    }
    return LT_OK;
}

/* Appends ", name" (or "name") to a report list, "..." once it is full. */
static void list_add(char *buf, size_t cap, const char *name) {
    size_t n = strlen(buf);
    if (n + 4 >= cap) return;
    int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", name);
    if (w < 0 || (size_t)w >= cap - n) snprintf(buf + (cap > 4 ? cap - 4 : 0), 4, "...");
}

lt_status lt_ckpt_import(const lt_safetensors *st, lt_params *p, int strict, lt_ckpt_import_report *rep) {
    if (rep) memset(rep, 0, sizeof *rep);
    if (strict) {
        lt_status s = lt_ckpt_read_params(st, p, "", LT_CKPT_ALL, 1, NULL, NULL, NULL);
        if (!s && rep) rep->loaded = p->count;
        return s;
    }
    const char *path = lt_safetensors_path(st);
    if (!p->finalized) return lt_error(LT_ERR_STATE, "%s: the model's parameters are not finalized", path);
    lt_ckpt_import_report r;
    memset(&r, 0, sizeof r);
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        const lt_st_entry *e;
        if (check_entry(st, pe, "", &e) != LT_OK || !e) {
            if (e) {
                r.n_mismatched++;
                list_add(r.mismatched, sizeof r.mismatched, pe->t.name);
            } else if (pe->kind != LT_PARAM_COUNTER) {
                r.n_missing++;
                list_add(r.missing, sizeof r.missing, pe->t.name);
            }
            continue;
        }
        copy_entry(st, pe, e, p->data, p->buffers, p->counters);
        r.loaded++;
    }
    for (int64_t k = 0; k < lt_safetensors_count(st); k++) {
        const char *nm = lt_safetensors_entry(st, k)->name;
        if (strchr(nm, '/') || lt_params_find(p, nm)) continue;
        r.n_unexpected++;
        list_add(r.unexpected, sizeof r.unexpected, nm);
    }
    if (rep) *rep = r;
    return LT_OK;
}

lt_status lt_ckpt_read_optim(const lt_safetensors *st, lt_optim *o, const char *prefix) {
    const char *path = lt_safetensors_path(st);
    char pre[160];
    snprintf(pre, sizeof pre, "%soptimizer", prefix);
    const char *kind = lt_safetensors_metadata(st, pre);
    if (!kind || strcmp(kind, optim_kind_name(o->cfg.kind)) != 0)
        return lt_error(LT_ERR_FORMAT, "%s: %s state is for '%s', the stage uses '%s'", path, pre,
                        kind ? kind : "(none)", optim_kind_name(o->cfg.kind));
    lt_params *p = o->params;
    /* Check the step counters first (the slot reads below check themselves before copying). */
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (pe->kind != LT_PARAM_WEIGHT) continue;
        char name[512];
        snprintf(name, sizeof name, "%soptimizer/step/%s", prefix, pe->t.name);
        const lt_st_entry *e = lt_safetensors_find(st, name);
        if (!e || e->dtype != LT_DT_I64 || e->numel != 1)
            return lt_error(LT_ERR_FORMAT, "%s: tensor '%s' missing or not an I64 scalar", path, name);
    }
    for (int s = 0; s < o->n_slots; s++) {
        snprintf(pre, sizeof pre, "%soptimizer/%s/", prefix, slot_name(o, s));
        lt_status r = lt_ckpt_read_params(st, p, pre, LT_CKPT_WEIGHTS, 0, o->state + (int64_t)s * p->n_data,
                                          NULL, NULL);
        if (r) return r;
    }
    for (int64_t i = 0; i < p->count; i++) {
        const lt_param *pe = &p->items[i];
        if (pe->kind != LT_PARAM_WEIGHT) continue;
        char name[512];
        snprintf(name, sizeof name, "%soptimizer/step/%s", prefix, pe->t.name);
        memcpy(&o->steps[i], lt_safetensors_data(st, lt_safetensors_find(st, name)), sizeof(int64_t));
    }
    return LT_OK;
}

lt_status lt_checkpoint_load(const char *path, lt_params *p) {
    lt_safetensors *st;
    lt_status s = lt_safetensors_load(path, &st);
    if (s) return s;
    s = lt_ckpt_read_params(st, p, "", LT_CKPT_ALL, 1, NULL, NULL, NULL);
    lt_safetensors_free(st);
    return s;
}
