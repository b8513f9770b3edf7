/* Tensors and the per-step arena.
 *
 * An lt_tensor is a view: it never owns its buffers. Parameters and their gradients point
 * into the contiguous buffers of an lt_params (see nn.h); activations and their gradients
 * live in the arena of an lt_ctx and are valid until lt_ctx_reset(). Image activations are
 * NHWC (channels last); matrices are row-major (rows, cols). Shapes are int64_t. */
#ifndef LONGTAIL_TENSOR_H
#define LONGTAIL_TENSOR_H

#include "core.h"

#define LT_MAX_DIMS 4

typedef struct lt_tensor {
    float *data;
    float *grad;             /* NULL until a gradient flows into it */
    int64_t shape[LT_MAX_DIMS];
    int ndim;
    int64_t numel;
    uint8_t requires_grad;   /* gradients are wanted for this tensor */
    uint8_t is_param;        /* data/grad belong to an lt_params buffer */
    const char *name;        /* parameters: PyTorch-style name; activations: op name */
} lt_tensor;

/* Fills the shape fields of t (ndim 1..4); returns LT_ERR_SHAPE for a bad shape. */
lt_status lt_tensor_set_shape(lt_tensor *t, int ndim, const int64_t *shape);
int lt_tensor_same_shape(const lt_tensor *a, const lt_tensor *b);
/* "(2, 8, 8, 16)" into buf; returns buf. */
const char *lt_shape_str(const lt_tensor *t, char *buf, size_t n);

/* ---- arena: bump allocator reset once per step ----
 * Memory comes in blocks; when a step needed more than one block, the next reset merges
 * them into one block of the total size, so after the first step or two a step performs
 * no heap allocation at all. All returned pointers are 64-byte aligned. */
typedef struct lt_arena_block {
    struct lt_arena_block *next;
    size_t cap, used;
    unsigned char *mem;
} lt_arena_block;

typedef struct lt_arena {
    lt_arena_block *head;    /* current block (newest first) */
    size_t total_cap;        /* sum of block capacities */
    size_t used;             /* bytes handed out since the last reset */
    size_t peak;             /* largest `used` seen */
} lt_arena;

void lt_arena_init(lt_arena *a);
void lt_arena_free(lt_arena *a);
/* NULL on out-of-memory (message set). Memory is not zeroed. */
void *lt_arena_alloc(lt_arena *a, size_t bytes);
void lt_arena_reset(lt_arena *a);

#endif
