/* Per-step bump allocator. A step that outgrows the current block chains a new one; the
 * next reset merges all blocks into one of the combined size, so steady-state steps make
 * no heap allocation. */
#include "longtail/tensor.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK (1u << 20)

void lt_arena_init(lt_arena *a) {
    a->head = NULL;
    a->total_cap = a->used = a->peak = 0;
}

static void free_blocks(lt_arena_block *b) {
    while (b) {
        lt_arena_block *next = b->next;
        lt_free_aligned(b->mem);
        lt_free(b);
        b = next;
    }
}

void lt_arena_free(lt_arena *a) {
    free_blocks(a->head);
    lt_arena_init(a);
}

static lt_arena_block *new_block(size_t cap) {
    lt_arena_block *b = lt_malloc(sizeof *b);
    if (!b) return NULL;
    b->mem = lt_malloc_aligned(cap);
    if (!b->mem) { lt_free(b); return NULL; }
    b->cap = cap;
    b->used = 0;
    b->next = NULL;
    return b;
}

void *lt_arena_alloc(lt_arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < bytes) { lt_error(LT_ERR_NOMEM, "arena: request of %zu bytes overflows", bytes); return NULL; }
    lt_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_MIN_BLOCK ? need : ARENA_MIN_BLOCK;
        if (b && cap < b->cap) cap = b->cap;  /* grow geometrically-ish */
        lt_arena_block *nb = new_block(cap);
        if (!nb) { lt_error(LT_ERR_NOMEM, "arena: out of memory allocating %zu bytes", cap); return NULL; }
        nb->next = b;
        a->head = nb;
        a->total_cap += cap;
        b = nb;
    }
    void *p = b->mem + b->used;
    b->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void lt_arena_reset(lt_arena *a) {
    if (a->head && a->head->next) {
        /* Merge: one block big enough for the most any step has used (the tails left
         * unused in chained blocks are not carried over). */
        size_t cap = a->peak;
        free_blocks(a->head);
        a->head = new_block(cap);  /* on failure the next alloc simply starts over */
        a->total_cap = a->head ? cap : 0;
    }
    if (a->head) a->head->used = 0;
    a->used = 0;
}
