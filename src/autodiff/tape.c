/* Define-by-run tape and the backward pass. */
#include "longtail/tape.h"

#include <string.h>

lt_node *lt_tape_record_op(lt_ctx *ctx, enum lt_op op, const lt_op_info *info, lt_tensor *out, int n_in,
                           lt_tensor *const *in) {
    LT_ASSERT(n_in <= LT_NODE_MAX_IN);
    int need = 0;
    if (ctx->grad_enabled)
        for (int k = 0; k < n_in; k++)
            if (in[k] && in[k]->requires_grad) need = 1;
    out->requires_grad = (uint8_t)need;
    out->grad = NULL;
    if (!out->name) out->name = info->name;
    if (!need) return NULL;
    if (ctx->tape_len == ctx->tape_cap) {
        /* Grows during warm-up only: the capacity stays for later steps. */
        size_t cap = ctx->tape_cap ? 2 * ctx->tape_cap : 256;
        lt_node *t = lt_realloc(ctx->tape, cap * sizeof *t);
        if (!t) { lt_ctx_fail(ctx, LT_ERR_NOMEM, "tape: out of memory"); return NULL; }
        ctx->tape = t;
        ctx->tape_cap = cap;
    }
    lt_node *nd = &ctx->tape[ctx->tape_len++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->info = info;
    nd->n_in = n_in;
    for (int k = 0; k < n_in; k++) nd->in[k] = in[k];
    nd->out = out;
    return nd;
}

lt_status lt_backward(lt_ctx *ctx, lt_tensor *loss) {
    if (ctx->status != LT_OK) return lt_error(ctx->status, "%s", ctx->errmsg);
    if (!loss) return lt_error(LT_ERR_ARG, "backward: NULL loss");
    if (loss->numel != 1) {
        char b[64];
        return lt_error(LT_ERR_SHAPE, "backward: loss must be a scalar, got shape %s", lt_shape_str(loss, b, sizeof b));
    }
    if (ctx->backward_done)
        return lt_error(LT_ERR_STATE, "backward: already run on this tape; call lt_ctx_reset() and rebuild the graph");
    if (!loss->requires_grad || ctx->tape_len == 0)
        return lt_error(LT_ERR_STATE, "backward: loss does not depend on any tensor that requires a gradient");
    float *g = lt_tensor_grad(ctx, loss);
    if (!g) return lt_error(ctx->status, "%s", ctx->errmsg);
    g[0] += 1.0f;
    ctx->backward_done = 1;  /* intermediate gradients are now consumed */
    for (size_t k = ctx->tape_len; k-- > 0;) {
        const lt_node *nd = &ctx->tape[k];
        if (!nd->out->grad) continue;  /* nothing flowed into this output */
        nd->info->backward(ctx, nd);
        if (ctx->status != LT_OK) return lt_error(ctx->status, "%s", ctx->errmsg);
    }
    return LT_OK;
}
