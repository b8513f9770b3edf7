/* The execution context: arena, tape, flags, sticky error. */
#include "longtail/tape.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

lt_ctx *lt_ctx_new(void) {
    lt_ctx *ctx = lt_calloc(1, sizeof *ctx);
    if (!ctx) { lt_error(LT_ERR_NOMEM, "context: out of memory"); return NULL; }
    lt_arena_init(&ctx->arena);
    ctx->training = 1;
    ctx->grad_enabled = 1;
    return ctx;
}

void lt_ctx_free(lt_ctx *ctx) {
    if (!ctx) return;
    if (ctx->backend_free) ctx->backend_free(ctx->backend);
    lt_arena_free(&ctx->arena);
    lt_free(ctx->tape);
    lt_free(ctx);
}

void lt_ctx_reset(lt_ctx *ctx) {
    lt_arena_reset(&ctx->arena);
    ctx->tape_len = 0;
    ctx->backward_done = 0;
    ctx->status = LT_OK;
    ctx->errmsg[0] = '\0';
}

void lt_ctx_set_training(lt_ctx *ctx, int training) { ctx->training = training != 0; }
int lt_ctx_training(const lt_ctx *ctx) { return ctx->training; }
void lt_ctx_set_grad(lt_ctx *ctx, int enabled) { ctx->grad_enabled = enabled != 0; }
int lt_ctx_grad_enabled(const lt_ctx *ctx) { return ctx->grad_enabled; }
lt_status lt_ctx_status(const lt_ctx *ctx) { return ctx->status; }
const char *lt_ctx_error(const lt_ctx *ctx) { return ctx->errmsg; }
lt_arena *lt_ctx_arena(lt_ctx *ctx) { return &ctx->arena; }
size_t lt_ctx_tape_len(const lt_ctx *ctx) { return ctx->tape_len; }

void *lt_ctx_fail(lt_ctx *ctx, lt_status code, const char *fmt, ...) {
    if (ctx->status == LT_OK) {
        va_list ap;
        va_start(ap, fmt);
        lt_errorv(code, NULL, fmt, ap);
        va_end(ap);
        ctx->status = code;
        snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s", lt_last_error());
    }
    return NULL;
}

void *lt_ctx_alloc(lt_ctx *ctx, size_t bytes) {
    void *p = lt_arena_alloc(&ctx->arena, bytes);
    if (!p) return lt_ctx_fail(ctx, LT_ERR_NOMEM, "out of memory: arena request of %zu bytes", bytes);
    return p;
}

lt_tensor *lt_tensor_new(lt_ctx *ctx, int ndim, const int64_t *shape) {
    if (ctx->status != LT_OK) return NULL;
    lt_tensor tmp = {0};
    if (lt_tensor_set_shape(&tmp, ndim, shape) != LT_OK)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s", lt_last_error());
    if ((uint64_t)tmp.numel > SIZE_MAX / sizeof(float))
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "tensor: %lld elements is too many", (long long)tmp.numel);
    lt_tensor *t = lt_ctx_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    *t = tmp;
    t->data = lt_ctx_alloc(ctx, (size_t)tmp.numel * sizeof(float));
    if (!t->data) return NULL;
    return t;
}

lt_tensor *lt_tensor_zeros(lt_ctx *ctx, int ndim, const int64_t *shape) {
    lt_tensor *t = lt_tensor_new(ctx, ndim, shape);
    if (t) memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

lt_tensor *lt_tensor_new1(lt_ctx *ctx, int64_t a) { return lt_tensor_new(ctx, 1, (int64_t[]){a}); }
lt_tensor *lt_tensor_new2(lt_ctx *ctx, int64_t a, int64_t b) { return lt_tensor_new(ctx, 2, (int64_t[]){a, b}); }
lt_tensor *lt_tensor_new4(lt_ctx *ctx, int64_t n, int64_t h, int64_t w, int64_t c) {
    return lt_tensor_new(ctx, 4, (int64_t[]){n, h, w, c});
}

lt_tensor *lt_tensor_wrap(lt_ctx *ctx, float *data, int ndim, const int64_t *shape) {
    if (ctx->status != LT_OK) return NULL;
    if (!data) return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor_wrap: NULL data");
    lt_tensor tmp = {0};
    if (lt_tensor_set_shape(&tmp, ndim, shape) != LT_OK)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s", lt_last_error());
    lt_tensor *t = lt_ctx_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    *t = tmp;
    t->data = data;
    return t;
}

float *lt_tensor_grad(lt_ctx *ctx, lt_tensor *t) {
    if (!t || !t->requires_grad) return NULL;
    if (!t->grad) {
        t->grad = lt_ctx_alloc(ctx, (size_t)t->numel * sizeof(float));
        if (!t->grad) return NULL;
        memset(t->grad, 0, (size_t)t->numel * sizeof(float));
    }
    return t->grad;
}
