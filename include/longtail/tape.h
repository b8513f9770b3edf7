/* For op implementers: the tape node and the context layout (autodiff, src/autodiff).
 * The ops (src/ops) record their nodes here and own the op table and the oneDNN backend;
 * nothing here depends on src/ops: a node carries its op's row of the table (name,
 * backward), and the context holds the backend as an opaque object with the destructor
 * its creator registered. Not included by longtail.h: library users never need it. */
#ifndef LONGTAIL_TAPE_H
#define LONGTAIL_TAPE_H

#include "ops.h"

#define LT_NODE_MAX_IN 4

struct lt_op_info;

typedef struct lt_node {
    enum lt_op op;
    const struct lt_op_info *info;   /* the op's row of the op table (src/ops/op_table.c) */
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


struct lt_ctx {
    lt_arena arena;
    lt_node *tape;
    size_t tape_len, tape_cap;
    int training;
    int grad_enabled;
    int backward_done;   /* lt_backward ran since the last reset */
    lt_status status;
    char errmsg[512];
    /* The ops layer's backend state (oneDNN engine, stream, primitive cache), created by
     * src/ops on first use and freed by lt_ctx_free through backend_free. */
    void *backend;
    void (*backend_free)(void *backend);
};

/* Creates the output's node when grad is enabled and some input requires a gradient;
 * sets out->requires_grad accordingly. Returns NULL when no node is needed, or on
 * out-of-memory (then the context has the error: check ctx->status). */
lt_node *lt_tape_record_op(lt_ctx *ctx, enum lt_op op, const lt_op_info *info, lt_tensor *out, int n_in,
                           lt_tensor *const *in);


#endif
