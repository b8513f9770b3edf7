/* Internal: the tape node, the context layout and the op table. Ops include this. */
#ifndef LT_AUTODIFF_TAPE_H
#define LT_AUTODIFF_TAPE_H

#include "longtail/ops.h"

#define LT_NODE_MAX_IN 4

typedef struct lt_node {
    enum lt_op op;
    int n_in;
    lt_tensor *in[LT_NODE_MAX_IN];
    lt_tensor *out;
    int64_t i[8];        /* op-specific integer parameters (stride, axis, ...) */
    float f[4];          /* op-specific float parameters (eps, slope, ...) */
    void *aux[4];        /* op-specific saved buffers in the arena (masks, statistics) */
} lt_node;

typedef void (*lt_backward_fn)(lt_ctx *ctx, const lt_node *node);

typedef struct lt_op_info {
    const char *name;
    lt_backward_fn backward;
} lt_op_info;

extern const lt_op_info lt_op_table[LT_OP_COUNT];

struct lt_backend;  /* oneDNN engine, stream, primitive cache: src/ops/backend.c */

struct lt_ctx {
    lt_arena arena;
    lt_node *tape;
    size_t tape_len, tape_cap;
    int training;
    int grad_enabled;
    int backward_done;   /* lt_backward ran since the last reset */
    lt_status status;
    char errmsg[512];
    struct lt_backend *backend;
};

/* Creates the output's node when grad is enabled and some input requires a gradient;
 * sets out->requires_grad accordingly. Returns NULL when no node is needed, or on
 * out-of-memory (then the context has the error: check ctx->status). */
lt_node *lt_tape_record(lt_ctx *ctx, enum lt_op op, lt_tensor *out, int n_in,
                        lt_tensor *const *in);

/* Backend hooks (src/ops/backend.c). */
lt_status lt_backend_new(struct lt_backend **out);
void lt_backend_free(struct lt_backend *b);

/* Arena allocation that records a sticky error in the context on failure. */
void *lt_ctx_alloc(lt_ctx *ctx, size_t bytes);

#endif
