/* All heap allocation goes through one hook (as SQLite's test_malloc does), so tests can
 * count allocations and fail the Nth one. */
#include "longtail/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void *default_malloc(size_t size, void *user) { (void)user; return malloc(size); }
static void *default_realloc(void *p, size_t size, void *user) { (void)user; return realloc(p, size); }
static void default_free(void *p, void *user) { (void)user; free(p); }

static lt_alloc_hook hook = {default_malloc, default_realloc, default_free, NULL};
static atomic_uint_fast64_t n_allocs;

void lt_set_alloc_hook(const lt_alloc_hook *h) {
    if (h) hook = *h;
    else hook = (lt_alloc_hook){default_malloc, default_realloc, default_free, NULL};
}

uint64_t lt_alloc_count(void) { return (uint64_t)atomic_load(&n_allocs); }

void *lt_malloc(size_t size) {
    atomic_fetch_add(&n_allocs, 1);
    return hook.malloc_fn(size ? size : 1, hook.user);
}

void *lt_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = lt_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *lt_realloc(void *p, size_t size) {
    atomic_fetch_add(&n_allocs, 1);
    return hook.realloc_fn(p, size ? size : 1, hook.user);
}

void lt_free(void *p) {
    if (p) hook.free_fn(p, hook.user);
}

/* Aligned blocks: over-allocate, store the original pointer just below the aligned one. */
void *lt_malloc_aligned(size_t size) {
    if (size > SIZE_MAX - 64 - sizeof(void *)) return NULL;
    unsigned char *raw = lt_malloc(size + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void lt_free_aligned(void *p) {
    if (p) lt_free(((void **)p)[-1]);
}

char *lt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = lt_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
