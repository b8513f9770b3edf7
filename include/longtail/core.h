/* longtail core: status codes and error messages, the allocation hook, the explicit RNG,
 * threads.
 *
 * Every library function that can fail returns an lt_status (LT_OK = 0, negative codes
 * otherwise) and leaves a one-line message, readable with lt_last_error(), that says what
 * failed and where (file, offset, line, key, tensor name) and expected vs got. The message
 * is per thread. The library never prints and never exits; internal invariants use
 * LT_ASSERT, which aborts only on a broken invariant (a bug), never on user input.
 *
 * All heap memory goes through lt_malloc/lt_calloc/lt_realloc/lt_free, which call a hook
 * that tests may replace (count calls, fail the Nth allocation). */
#ifndef LONGTAIL_CORE_H
#define LONGTAIL_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define LT_VERSION "0.1.0"

typedef enum lt_status {
    LT_OK = 0,
    LT_ERR_NOMEM = -1,     /* allocation failed */
    LT_ERR_SHAPE = -2,     /* tensor shapes do not fit the operation */
    LT_ERR_ARG = -3,       /* an argument is out of range or inconsistent */
    LT_ERR_IO = -4,        /* a file could not be opened, read or written */
    LT_ERR_FORMAT = -5,    /* a file's contents are corrupt or not of the expected kind */
    LT_ERR_CONFIG = -6,    /* a recipe/config key or value is wrong */
    LT_ERR_BACKEND = -7,   /* oneDNN (or another backend) refused an operation */
    LT_ERR_STATE = -8,     /* a call made in the wrong state (e.g. backward twice) */
    LT_ERR_EXISTS = -9,    /* an output already exists and would be overwritten */
} lt_status;

/* The message of the last error on this thread ("" if none). Valid until the next error. */
const char *lt_last_error(void);
/* Name of a status code, e.g. "shape error". */
const char *lt_status_name(lt_status s);
/* Sets this thread's message (printf-style) and returns `code`, so callers can write
 * `return lt_error(LT_ERR_SHAPE, "conv2d: ...")`. The arguments may include
 * lt_last_error() itself: `lt_error(s, "%s: %s", path, lt_last_error())` adds context. */
lt_status lt_error(lt_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The same with "prefix: " before the message (prefix NULL: none) and the arguments as a
 * va_list: the one formatter behind every printf-style error helper of a parser (a config
 * line, a JSON byte, a safetensors entry, a recipe key), each of which only builds its
 * prefix. */
lt_status lt_errorv(lt_status code, const char *prefix, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 0)))
#endif
    ;
void lt_clear_error(void);

/* Always-on internal invariant check: a failure is a bug in longtail, not bad input. */
void lt_assert_fail(const char *expr, const char *file, int line);
#define LT_ASSERT(e) ((e) ? (void)0 : lt_assert_fail(#e, __FILE__, __LINE__))

/* ---- allocation hook ---- */
typedef struct lt_alloc_hook {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *p, size_t size, void *user);
    void (*free_fn)(void *p, void *user);
    void *user;
} lt_alloc_hook;

/* Replaces the hook (NULL restores the default malloc/realloc/free). Not thread safe:
 * set it before using the library. */
void lt_set_alloc_hook(const lt_alloc_hook *hook);
/* Number of malloc/calloc/realloc calls made through the hook since start (all threads). */
uint64_t lt_alloc_count(void);

void *lt_malloc(size_t size);
void *lt_calloc(size_t n, size_t size);   /* overflow-checked */
void *lt_realloc(void *p, size_t size);
void lt_free(void *p);
/* 64-byte aligned allocation for tensor buffers; free with lt_free_aligned. */
void *lt_malloc_aligned(size_t size);
void lt_free_aligned(void *p);
char *lt_strdup(const char *s);

/* ---- explicit random number generator ----
 * PCG-XSH-RR 64/32 (O'Neill 2014). A generator is a value; there is no global state.
 * lt_rng_init(seed, stream) gives independent streams for one seed, so data order,
 * augmentation and initialization never share draws. */
typedef struct lt_rng {
    uint64_t state, inc;
} lt_rng;

enum lt_rng_stream {
    LT_STREAM_INIT = 1,     /* parameter initialization */
    LT_STREAM_DATA = 2,     /* long-tail subsampling, validation split */
    LT_STREAM_SAMPLER = 3,  /* epoch order */
    LT_STREAM_AUGMENT = 4,  /* crops and flips */
    LT_STREAM_LOSS = 5,     /* stochastic losses (e.g. softmax EQL's Bernoulli draws) */
    LT_STREAM_ROLE = 6,     /* a trained role's own seed: lt_rng_derive_seed(seed, this, index) */
    LT_STREAM_TEST = 99,
};

void lt_rng_init(lt_rng *r, uint64_t seed, uint64_t stream);
/* Seed of a derived generator: a hash (SplitMix64 finalizer) of (seed, a, b), so nearby
 * triples give unrelated seeds. The sampler uses (seed, epoch, 0), the loader (seed,
 * epoch, batch), the stochastic losses (seed, stage, epoch, batch). */
uint64_t lt_rng_derive_seed(uint64_t seed, uint64_t a, uint64_t b);
uint32_t lt_rng_u32(lt_rng *r);
uint64_t lt_rng_u64(lt_rng *r);
/* Uniform integer in [0, n), unbiased. n must be > 0. */
uint64_t lt_rng_below(lt_rng *r, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float lt_rng_uniform(lt_rng *r);
/* Standard normal (Box-Muller, double precision internally). */
float lt_rng_normal(lt_rng *r);
/* Fisher-Yates shuffle of n int64 indices. */
void lt_rng_shuffle(lt_rng *r, int64_t *idx, int64_t n);

/* ---- threads ---- */
void lt_set_threads(int n);   /* n <= 0: all cores */
int lt_get_threads(void);

#endif
