/* Finite-difference gradient check: central differences, evaluated without the tape. */
#include "longtail/tape.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static lt_status eval(lt_ctx *ctx, lt_gradcheck_fn fn, lt_tensor **in, void *user, double *out) {
    lt_ctx_reset(ctx);
    lt_tensor *y = fn(ctx, in, user);
    if (ctx->status != LT_OK) return lt_error(ctx->status, "gradcheck: %s", ctx->errmsg);
    if (!y || y->numel != 1) return lt_error(LT_ERR_SHAPE, "gradcheck: function must return a scalar");
    *out = y->data[0];
    return LT_OK;
}

lt_status lt_gradcheck(lt_ctx *ctx, lt_gradcheck_fn fn, lt_tensor **inputs, int n_inputs,
                       void *user, double eps, double atol, double rtol,
                       lt_gradcheck_result *res) {
    memset(res, 0, sizeof *res);
    int64_t total = 0;
    for (int i = 0; i < n_inputs; i++) {
        lt_tensor *t = inputs[i];
        if (!t->requires_grad) continue;
        if (!t->grad) return lt_error(LT_ERR_ARG, "gradcheck: input %d (%s) needs a caller-owned grad buffer", i, t->name ? t->name : "?");
        memset(t->grad, 0, (size_t)t->numel * sizeof(float));
        total += t->numel;
    }
    float *analytic = lt_malloc((size_t)(total ? total : 1) * sizeof(float));
    if (!analytic) return lt_error(LT_ERR_NOMEM, "gradcheck: out of memory");

    int saved_grad = ctx->grad_enabled;
    lt_ctx_set_grad(ctx, 1);
    lt_ctx_reset(ctx);
    lt_tensor *y = fn(ctx, inputs, user);
    lt_status st = ctx->status != LT_OK ? lt_error(ctx->status, "gradcheck: %s", ctx->errmsg) : LT_OK;
    if (st == LT_OK) st = lt_backward(ctx, y);
    if (st != LT_OK) { lt_free(analytic); lt_ctx_set_grad(ctx, saved_grad); return st; }
    int64_t off = 0;
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i]->requires_grad) continue;
        memcpy(analytic + off, inputs[i]->grad, (size_t)inputs[i]->numel * sizeof(float));
        off += inputs[i]->numel;
    }

    lt_ctx_set_grad(ctx, 0);
    off = 0;
    for (int i = 0; i < n_inputs && st == LT_OK; i++) {
        lt_tensor *t = inputs[i];
        if (!t->requires_grad) continue;
        for (int64_t j = 0; j < t->numel && st == LT_OK; j++) {
            float orig = t->data[j];
            double lp = 0, lm = 0;
            t->data[j] = (float)(orig + eps);
            double hp = (double)t->data[j] - orig;
            st = eval(ctx, fn, inputs, user, &lp);
            t->data[j] = (float)(orig - eps);
            double hm = orig - (double)t->data[j];
            if (st == LT_OK) st = eval(ctx, fn, inputs, user, &lm);
            t->data[j] = orig;
            if (st != LT_OK) break;
            double num = (lp - lm) / (hp + hm);
            double ana = analytic[off + j];
            double err = fabs(ana - num);
            double scale = fmax(fabs(ana), fabs(num));
            double rel = scale > 0 ? err / scale : 0;
            if (err > res->max_abs_err) res->max_abs_err = err;
            if (rel > res->max_rel_err && err > atol) res->max_rel_err = rel;
            res->checked++;
            if (err > atol + rtol * scale) {
                if (res->failed == 0)
                    snprintf(res->report, sizeof res->report,
                             "input %d (%s) element %lld: analytic %.6g, numeric %.6g",
                             i, t->name ? t->name : "?", (long long)j, ana, num);
                res->failed++;
            }
        }
        off += t->numel;
    }
    lt_ctx_set_grad(ctx, saved_grad);
    lt_ctx_reset(ctx);
    lt_free(analytic);
    return st;
}
