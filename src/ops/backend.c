/* oneDNN backend state held by a context: CPU engine, stream, primitive cache, scratchpad.
 * See backend.h for the contract. */
#include "backend.h"

#include <omp.h>
#include <string.h>

typedef struct cache_slot {
    lt_backend_key key;
    void *entry;               /* NULL: empty slot */
    lt_backend_free_fn free_fn;
} cache_slot;

struct lt_backend {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    /* Open-addressing hash map (linear probing), capacity a power of two, at most half
     * full. Entries are only added, never removed, until the context is freed. */
    cache_slot *slots;
    size_t cap, count;
    /* Shared scratchpad for all primitives (dnnl_scratchpad_mode_user). Primitives run one
     * at a time on the context's stream, so one buffer of the largest size serves all. */
    void *scratch;
    size_t scratch_bytes;
};

static lt_status backend_new(struct lt_backend **out) {
    struct lt_backend *b = lt_calloc(1, sizeof *b);
    if (!b) return lt_error(LT_ERR_NOMEM, "backend: out of memory");
    if (dnnl_engine_create(&b->engine, dnnl_cpu, 0) != dnnl_success) {
        lt_free(b);
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a CPU engine");
    }
    if (dnnl_stream_create(&b->stream, b->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(b->engine);
        lt_free(b);
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a stream");
    }
    *out = b;
    return LT_OK;
}

static void backend_free(void *p) {
    struct lt_backend *b = p;
    if (!b) return;
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].entry) b->slots[i].free_fn(b->slots[i].entry);
    lt_free(b->slots);
    lt_free_aligned(b->scratch);
    dnnl_stream_destroy(b->stream);
    dnnl_engine_destroy(b->engine);
    lt_free(b);
}

struct lt_backend *lt_ctx_backend(lt_ctx *ctx) {
    if (ctx->backend) return ctx->backend;
    struct lt_backend *b = NULL;
    lt_status s = backend_new(&b);
    if (s) return lt_ctx_fail(ctx, s, "%s", lt_last_error());
    ctx->backend = b;
    ctx->backend_free = backend_free;
    return b;
}

dnnl_engine_t lt_backend_engine(struct lt_backend *b) { return b->engine; }

int64_t lt_backend_threads(void) { return omp_get_max_threads(); }

/* ---- cache ---- */

static uint64_t key_hash(const lt_backend_key *k) {
    /* FNV-1a over the key's 64-bit words, then a final avalanche (splitmix64). */
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < LT_BACKEND_KEY_LEN; i++) {
        h ^= (uint64_t)k->v[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27; h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static cache_slot *find_slot(cache_slot *slots, size_t cap, const lt_backend_key *k) {
    size_t i = (size_t)key_hash(k) & (cap - 1);
    while (slots[i].entry && memcmp(&slots[i].key, k, sizeof *k) != 0) i = (i + 1) & (cap - 1);
    return &slots[i];
}

void *lt_backend_cache_get(struct lt_backend *b, const lt_backend_key *key) {
    if (!b->cap) return NULL;
    return find_slot(b->slots, b->cap, key)->entry;
}

lt_status lt_backend_cache_put(struct lt_backend *b, const lt_backend_key *key, void *entry,
                               lt_backend_free_fn free_fn) {
    if (2 * (b->count + 1) > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        cache_slot *s = lt_calloc(cap, sizeof *s);
        if (!s) {
            free_fn(entry);
            return lt_error(LT_ERR_NOMEM, "backend: out of memory growing the primitive cache to %zu entries", cap);
        }
        for (size_t i = 0; i < b->cap; i++)
            if (b->slots[i].entry) *find_slot(s, cap, &b->slots[i].key) = b->slots[i];
        lt_free(b->slots);
        b->slots = s;
        b->cap = cap;
    }
    cache_slot *slot = find_slot(b->slots, b->cap, key);
    LT_ASSERT(!slot->entry);  /* callers put only after a get that missed */
    slot->key = *key;
    slot->entry = entry;
    slot->free_fn = free_fn;
    b->count++;
    return LT_OK;
}

/* ---- primitives ---- */

dnnl_primitive_attr_t lt_backend_attr(int accumulate) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success)
        goto fail;
    if (accumulate) {
        dnnl_post_ops_t po = NULL;
        if (dnnl_post_ops_create(&po) != dnnl_success) goto fail;
        dnnl_status_t s = dnnl_post_ops_append_sum(po, 1.0f);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
        if (s != dnnl_success) goto fail;
    }
    return attr;
fail:
    dnnl_primitive_attr_destroy(attr);
    return NULL;
}

static lt_status reserve_scratch(struct lt_backend *b, size_t bytes) {
    if (bytes <= b->scratch_bytes) return LT_OK;
    void *p = lt_malloc_aligned(bytes);
    if (!p) return lt_error(LT_ERR_NOMEM, "backend: out of memory for a %zu-byte oneDNN scratchpad", bytes);
    lt_free_aligned(b->scratch);
    b->scratch = p;
    b->scratch_bytes = bytes;
    return LT_OK;
}

lt_status lt_prim_init(struct lt_backend *b, lt_prim *p, dnnl_primitive_desc_t pd, int n_args,
                       const int *args) {
    LT_ASSERT(n_args <= LT_PRIM_MAX_ARGS);
    memset(p, 0, sizeof *p);
    p->pd = pd;
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        p->prim = NULL;
        lt_prim_destroy(p);
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a primitive");
    }
    p->n_args = n_args;
    for (int i = 0; i < n_args; i++) {
        p->arg[i] = args[i];
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        if (!md || dnnl_memory_create(&p->mem[i], md, b->engine, DNNL_MEMORY_NONE) != dnnl_success) {
            p->mem[i] = NULL;
            lt_prim_destroy(p);
            return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not describe argument %d of a primitive", args[i]);
        }
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes > 0) {
        lt_status st = reserve_scratch(b, sbytes);
        if (st != LT_OK) { lt_prim_destroy(p); return st; }
        if (dnnl_memory_create(&p->scratch, smd, b->engine, DNNL_MEMORY_NONE) != dnnl_success) {
            p->scratch = NULL;
            lt_prim_destroy(p);
            return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a scratchpad memory");
        }
    }
    return LT_OK;
}

lt_status lt_prim_exec(struct lt_backend *b, lt_prim *p, void *const *ptrs) {
    dnnl_exec_arg_t args[LT_PRIM_MAX_ARGS + 1];
    int n = 0;
    for (int i = 0; i < p->n_args; i++) {
        if (!ptrs[i]) continue;
        if (dnnl_memory_set_data_handle_v2(p->mem[i], ptrs[i], b->stream) != dnnl_success)
            return lt_error(LT_ERR_BACKEND, "backend: oneDNN rejected a buffer for argument %d", p->arg[i]);
        args[n].arg = p->arg[i];
        args[n].memory = p->mem[i];
        n++;
    }
    if (p->scratch) {
        if (dnnl_memory_set_data_handle_v2(p->scratch, b->scratch, b->stream) != dnnl_success)
            return lt_error(LT_ERR_BACKEND, "backend: oneDNN rejected the scratchpad");
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n].memory = p->scratch;
        n++;
    }
    dnnl_status_t s = dnnl_primitive_execute(p->prim, b->stream, n, args);
    if (s == dnnl_success) s = dnnl_stream_wait(b->stream);
    if (s != dnnl_success)
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN primitive failed to execute (status %d)", (int)s);
    return LT_OK;
}

const dnnl_memory_desc_t *lt_prim_md(const lt_prim *p, int arg) {
    return dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
}

void lt_prim_destroy(lt_prim *p) {
    for (int i = 0; i < LT_PRIM_MAX_ARGS; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

/* ---- helpers shared by the dense ops ---- */

float *lt_grad_for_write(lt_ctx *ctx, lt_tensor *t, int *fresh) {
    *fresh = 0;
    if (!t || !t->requires_grad) return NULL;
    if (t->grad) return t->grad;
    t->grad = lt_ctx_alloc(ctx, (size_t)t->numel * sizeof(float));
    *fresh = t->grad != NULL;
    return t->grad;
}

void lt_add_inplace(float *restrict dst, const float *restrict src, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}
