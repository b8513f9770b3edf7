/* lt_params: every weight of a model in one buffer, gradients in a second, running
 * statistics in a third, with named views (the llm.c / KANN layout; see nn.h). */
#include "longtail/nn.h"

#include <stdio.h>
#include <string.h>

void lt_params_init(lt_params *p) { memset(p, 0, sizeof *p); }

void lt_params_free(lt_params *p) {
    if (!p) return;
    for (int64_t i = 0; i < p->count; i++) lt_free((char *)p->items[i].t.name);
    lt_free(p->items);
    lt_free_aligned(p->data);
    lt_free_aligned(p->grad);
    lt_free_aligned(p->buffers);
    lt_free(p->counters);
    memset(p, 0, sizeof *p);
}

lt_param *lt_params_find(lt_params *p, const char *name) {
    for (int64_t i = 0; i < p->count; i++)
        if (strcmp(p->items[i].t.name, name) == 0) return &p->items[i];
    return NULL;
}

lt_tensor *lt_params_tensor(lt_params *p, const char *name) {
    lt_param *e = lt_params_find(p, name);
    if (!e || e->kind == LT_PARAM_COUNTER) return NULL;
    return &e->t;
}

lt_status lt_params_add(lt_params *p, const char *name, lt_param_kind kind, int ndim,
                        const int64_t *shape, int group, int64_t *index) {
    if (p->finalized) return lt_error(LT_ERR_STATE, "params: cannot add '%s' after finalize", name ? name : "");
    if (!name || !name[0]) return lt_error(LT_ERR_ARG, "params: empty parameter name");
    if (kind != LT_PARAM_WEIGHT && kind != LT_PARAM_BUFFER && kind != LT_PARAM_COUNTER)
        return lt_error(LT_ERR_ARG, "params: '%s' has unknown kind %d", name, (int)kind);
    if (group < 0 || group >= LT_MAX_PARAM_GROUPS)
        return lt_error(LT_ERR_ARG, "params: '%s' group %d (expected 0..%d)", name, group, LT_MAX_PARAM_GROUPS - 1);
    if (lt_params_find(p, name)) return lt_error(LT_ERR_ARG, "params: duplicate name '%s'", name);
    lt_tensor t = {0};
    if (kind == LT_PARAM_COUNTER) {
        t.ndim = 1;
        t.shape[0] = t.shape[1] = t.shape[2] = t.shape[3] = 1;
        t.numel = 1;
    } else if (lt_tensor_set_shape(&t, ndim, shape) != LT_OK) {
        return lt_error(LT_ERR_SHAPE, "params: '%s': %s", name, lt_last_error());
    }
    if (p->count == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 64;
        lt_param *items = lt_realloc(p->items, (size_t)cap * sizeof *items);
        if (!items) return lt_error(LT_ERR_NOMEM, "params: out of memory adding '%s'", name);
        p->items = items;
        p->cap = cap;
    }
    char *nm = lt_strdup(name);
    if (!nm) return lt_error(LT_ERR_NOMEM, "params: out of memory adding '%s'", name);
    lt_param *e = &p->items[p->count];
    memset(e, 0, sizeof *e);
    e->t = t;
    e->t.name = nm;
    e->kind = kind;
    e->group = kind == LT_PARAM_WEIGHT ? group : 0;
    e->home_group = e->group;
    switch (kind) {
    case LT_PARAM_WEIGHT:
        e->offset = p->n_data;
        p->n_data += t.numel;
        e->t.requires_grad = 1;
        e->t.is_param = 1;
        break;
    case LT_PARAM_BUFFER:
        e->offset = p->n_buffers;
        p->n_buffers += t.numel;
        break;
    case LT_PARAM_COUNTER:
        e->offset = p->n_counters;
        p->n_counters += 1;
        break;
    }
    if (index) *index = p->count;
    p->count++;
    return LT_OK;
}

static float *alloc_zeroed(int64_t n) {
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    float *b = lt_malloc_aligned(bytes);
    if (b) memset(b, 0, bytes);
    return b;
}

lt_status lt_params_finalize(lt_params *p) {
    if (p->finalized) return lt_error(LT_ERR_STATE, "params: finalized twice");
    p->data = alloc_zeroed(p->n_data);
    p->grad = alloc_zeroed(p->n_data);
    p->buffers = alloc_zeroed(p->n_buffers);
    p->counters = lt_calloc((size_t)(p->n_counters > 0 ? p->n_counters : 1), sizeof(int64_t));
    if (!p->data || !p->grad || !p->buffers || !p->counters)
        return lt_error(LT_ERR_NOMEM, "params: out of memory for %lld weights and %lld buffer values",
                        (long long)p->n_data, (long long)p->n_buffers);
    for (int64_t i = 0; i < p->count; i++) {
        lt_param *e = &p->items[i];
        switch (e->kind) {
        case LT_PARAM_WEIGHT:
            e->t.data = p->data + e->offset;
            e->t.grad = p->grad + e->offset;
            break;
        case LT_PARAM_BUFFER:
            e->t.data = p->buffers + e->offset;
            break;
        case LT_PARAM_COUNTER:
            e->counter = p->counters + e->offset;
            break;
        }
    }
    p->finalized = 1;
    return LT_OK;
}

void lt_params_zero_grad(lt_params *p) {
    if (p->grad) memset(p->grad, 0, (size_t)p->n_data * sizeof(float));
}

int lt_params_name_matches(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (n == 0) return 1;
    if (strncmp(name, prefix, n) != 0) return 0;
    return name[n] == '\0' || name[n] == '.' || prefix[n - 1] == '.';
}

lt_status lt_params_set_trainable(lt_params *p, const char *prefix, int trainable) {
    int64_t hit = 0;
    for (int64_t i = 0; i < p->count; i++) {
        lt_param *e = &p->items[i];
        if (e->kind != LT_PARAM_WEIGHT || !lt_params_name_matches(e->t.name, prefix)) continue;
        e->t.requires_grad = trainable != 0;
        hit++;
    }
    if (!hit) return lt_error(LT_ERR_ARG, "params: no parameter matches '%s'", prefix);
    return LT_OK;
}

lt_status lt_params_freeze_all_except(lt_params *p, const char *const *prefixes, int n) {
    /* Check every prefix first so a typo changes nothing. */
    for (int k = 0; k < n; k++) {
        int hit = 0;
        for (int64_t i = 0; i < p->count && !hit; i++)
            hit = p->items[i].kind == LT_PARAM_WEIGHT && lt_params_name_matches(p->items[i].t.name, prefixes[k]);
        if (!hit) return lt_error(LT_ERR_ARG, "params: no parameter matches '%s'", prefixes[k]);
    }
    for (int64_t i = 0; i < p->count; i++) {
        lt_param *e = &p->items[i];
        if (e->kind != LT_PARAM_WEIGHT) continue;
        int keep = 0;
        for (int k = 0; k < n && !keep; k++) keep = lt_params_name_matches(e->t.name, prefixes[k]);
        e->t.requires_grad = (uint8_t)keep;
    }
    return LT_OK;
}

lt_status lt_params_set_group(lt_params *p, const char *prefix, int group) {
    if (group < 0 || group >= LT_MAX_PARAM_GROUPS)
        return lt_error(LT_ERR_ARG, "params: group %d (expected 0..%d)", group, LT_MAX_PARAM_GROUPS - 1);
    int64_t hit = 0;
    for (int64_t i = 0; i < p->count; i++) {
        lt_param *e = &p->items[i];
        if (e->kind != LT_PARAM_WEIGHT || !lt_params_name_matches(e->t.name, prefix)) continue;
        e->group = e->home_group = group;
        hit++;
    }
    if (!hit) return lt_error(LT_ERR_ARG, "params: no parameter matches '%s'", prefix);
    return LT_OK;
}

int64_t lt_params_numel(const lt_params *p) { return p->n_data; }

int64_t lt_params_numel_trainable(const lt_params *p) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->count; i++)
        if (p->items[i].kind == LT_PARAM_WEIGHT && p->items[i].t.requires_grad) n += p->items[i].t.numel;
    return n;
}
