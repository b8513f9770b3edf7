/* Private to src/ops: the oneDNN side of a context.
 *
 * A context owns one struct lt_backend (created by the first op that needs it through
 * lt_ctx_backend, freed by lt_ctx_free through the destructor registered then) that
 * holds the CPU engine and stream, a cache of primitives keyed by the op's shape tuple, and
 * one scratchpad buffer shared by every primitive (primitives are created with
 * dnnl_scratchpad_mode_user, so oneDNN does not allocate scratch memory per call; the
 * buffer grows to the largest request while primitives are created and never afterwards).
 *
 * Cache entries are created on the first call with a new shape and reused for every later
 * call with that shape, so a steady-state training step creates no primitive and makes no
 * allocation through lt_malloc. An entry's memory objects are created with no data handle;
 * each call points them at the caller's buffers (lt_prim_exec), so one entry serves every
 * layer of the same shape. */
#ifndef LT_OPS_BACKEND_H
#define LT_OPS_BACKEND_H

#include "ops_internal.h"

#include <dnnl.h>

/* The context's backend, created on the first call (NULL, with the error recorded in the
 * context, if oneDNN cannot give an engine and a stream). */
struct lt_backend *lt_ctx_backend(lt_ctx *ctx);

/* Kinds of cached entries: the first element of every key, so two ops with the same
 * numbers never share an entry. */
enum lt_prim_kind {
    LT_PRIM_CONV_FWD_TRAIN = 1,
    LT_PRIM_CONV_FWD_INFER,
    LT_PRIM_CONV_BWD_DATA,
    LT_PRIM_CONV_BWD_WEIGHTS,
    LT_PRIM_MATMUL,
};

#define LT_BACKEND_KEY_LEN 14
typedef struct lt_backend_key {
    int64_t v[LT_BACKEND_KEY_LEN];  /* v[0] = lt_prim_kind, v[1] = thread count, then shape */
} lt_backend_key;

#define LT_PRIM_MAX_ARGS 6

/* One primitive with the memory objects of its arguments (handles set per call). */
typedef struct lt_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    int n_args;
    int arg[LT_PRIM_MAX_ARGS];              /* DNNL_ARG_* */
    dnnl_memory_t mem[LT_PRIM_MAX_ARGS];
    dnnl_memory_t scratch;                   /* NULL when the primitive needs none */
} lt_prim;

typedef void (*lt_backend_free_fn)(void *entry);

/* Entry cached under key, or NULL. */
void *lt_backend_cache_get(struct lt_backend *b, const lt_backend_key *key);
/* Stores entry under key (the cache then owns it and calls free_fn on it when the context
 * is freed). On failure free_fn(entry) is called and the status returned. */
lt_status lt_backend_cache_put(struct lt_backend *b, const lt_backend_key *key, void *entry,
                               lt_backend_free_fn free_fn);

dnnl_engine_t lt_backend_engine(struct lt_backend *b);

/* Attributes every cached primitive is created with: user-managed scratchpad and, when
 * accumulate is set, a sum post-op (dst = op(...) + dst) so results add into dst. The
 * caller destroys the returned attr. NULL on failure. */
dnnl_primitive_attr_t lt_backend_attr(int accumulate);

/* Takes ownership of pd (destroyed on failure too), creates the primitive and one memory
 * object per DNNL_ARG_* in args, and reserves its scratchpad in the backend. */
lt_status lt_prim_init(struct lt_backend *b, lt_prim *p, dnnl_primitive_desc_t pd, int n_args,
                       const int *args);
/* Points the argument memories at ptrs (same order as args in lt_prim_init; NULL leaves
 * an argument unset) and runs the primitive to completion. */
lt_status lt_prim_exec(struct lt_backend *b, lt_prim *p, void *const *ptrs);
/* Memory descriptor of argument `arg` (DNNL_ARG_*) as the primitive expects it. */
const dnnl_memory_desc_t *lt_prim_md(const lt_prim *p, int arg);
void lt_prim_destroy(lt_prim *p);   /* zeroed or half-built primitives are fine */

/* Gradient buffer of t for an op that writes every element of its contribution: when t
 * has no gradient yet, a fresh arena buffer is returned *uninitialized* with *fresh = 1, so
 * the op may overwrite it instead of zero-filling and adding; otherwise the existing
 * buffer with *fresh = 0 (the op must add into it). NULL on out-of-memory (context failed)
 * or when t needs no gradient. */
float *lt_grad_for_write(lt_ctx *ctx, lt_tensor *t, int *fresh);
/* dst[i] += src[i], threaded. */
void lt_add_inplace(float *restrict dst, const float *restrict src, int64_t n);

/* The context's thread count, part of every key: oneDNN fixes its work split when a
 * primitive is created, so a primitive made for 1 thread is not reused with 2. */
int64_t lt_backend_threads(void);

#endif
