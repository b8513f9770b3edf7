/* The execution context and the define-by-run tape.
 *
 * An lt_ctx holds everything a step needs: the activation arena, the tape, the training
 * flag, backend state (oneDNN engine, stream, primitive cache). Ops (ops.h) take a context,
 * allocate their output in its arena and, when gradients are enabled and an input requires
 * a gradient, append a node to its tape. lt_backward() walks the tape in reverse and
 * *accumulates* into .grad of every tensor that requires one (parameter gradients are not
 * cleared by backward: zero them with lt_params_zero_grad()).
 *
 * Errors are sticky: an op that fails returns NULL, records the status and message in the
 * context, and every later op given a NULL input returns NULL at once. Check
 * lt_ctx_status() once after building a graph. lt_ctx_reset() clears the arena, the tape
 * and the error, ready for the next step. */
#ifndef LONGTAIL_AUTODIFF_H
#define LONGTAIL_AUTODIFF_H

#include "tensor.h"

typedef struct lt_ctx lt_ctx;

/* NULL on out-of-memory or when the compute backend cannot start (message set). */
lt_ctx *lt_ctx_new(void);
void lt_ctx_free(lt_ctx *ctx);                 /* NULL is a no-op */
void lt_ctx_reset(lt_ctx *ctx);                /* new step: arena, tape and error cleared */
void lt_ctx_set_training(lt_ctx *ctx, int training);  /* batch norm uses batch statistics */
int lt_ctx_training(const lt_ctx *ctx);
void lt_ctx_set_grad(lt_ctx *ctx, int enabled);       /* record the tape (default on) */
int lt_ctx_grad_enabled(const lt_ctx *ctx);
lt_status lt_ctx_status(const lt_ctx *ctx);    /* first error since the last reset */
const char *lt_ctx_error(const lt_ctx *ctx);   /* its message ("" if none) */
/* Records an error in the context (sticky; the first one wins) and returns NULL, for use
 * as `return lt_ctx_fail(ctx, LT_ERR_SHAPE, "...")` inside ops. */
void *lt_ctx_fail(lt_ctx *ctx, lt_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
lt_arena *lt_ctx_arena(lt_ctx *ctx);
/* `bytes` from the step's arena (freed by lt_ctx_reset); NULL with LT_ERR_NOMEM recorded
 * in the context when out of memory. */
void *lt_ctx_alloc(lt_ctx *ctx, size_t bytes);
size_t lt_ctx_tape_len(const lt_ctx *ctx);

/* New activation tensor in the arena, contents uninitialized (zeros: lt_tensor_zeros).
 * NULL (sticky error) on a bad shape or out-of-memory. */
lt_tensor *lt_tensor_new(lt_ctx *ctx, int ndim, const int64_t *shape);
lt_tensor *lt_tensor_zeros(lt_ctx *ctx, int ndim, const int64_t *shape);
lt_tensor *lt_tensor_new1(lt_ctx *ctx, int64_t a);
lt_tensor *lt_tensor_new2(lt_ctx *ctx, int64_t a, int64_t b);
lt_tensor *lt_tensor_new4(lt_ctx *ctx, int64_t n, int64_t h, int64_t w, int64_t c);
/* Wraps caller-owned memory as an input tensor (no copy, no gradient). */
lt_tensor *lt_tensor_wrap(lt_ctx *ctx, float *data, int ndim, const int64_t *shape);

/* Gradient buffer of t, allocated in the arena and zeroed on first use; NULL when t does
 * not require a gradient. Used by backward functions. */
float *lt_tensor_grad(lt_ctx *ctx, lt_tensor *t);

/* Back-propagates from a scalar (numel 1) tensor, seeding d loss = 1. Returns LT_ERR_STATE
 * if loss is not on the tape, LT_ERR_SHAPE if it is not a scalar. */
lt_status lt_backward(lt_ctx *ctx, lt_tensor *loss);

/* ---- finite-difference gradient check ----
 * fn builds a scalar from the inputs in ctx. Every element of every input with
 * requires_grad is perturbed by ±eps (central difference, computed in double) and compared
 * with the tape's gradient: |a - n| <= atol + rtol * max(|a|, |n|). On failure, *report gets
 * the first mismatch. Inputs must be caller-owned (e.g. lt_params or static buffers). */
typedef lt_tensor *(*lt_gradcheck_fn)(lt_ctx *ctx, lt_tensor **inputs, void *user);
typedef struct lt_gradcheck_result {
    double max_abs_err, max_rel_err;
    int64_t checked, failed;
    char report[256];
} lt_gradcheck_result;
lt_status lt_gradcheck(lt_ctx *ctx, lt_gradcheck_fn fn, lt_tensor **inputs, int n_inputs,
                       void *user, double eps, double atol, double rtol,
                       lt_gradcheck_result *res);

#endif
