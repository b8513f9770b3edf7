/* Argument checks and constant builders shared by the losses (loss_internal.h). */
#include "loss_internal.h"


int lt_loss_check_logits(lt_ctx *ctx, const char *loss, const lt_tensor *logits,
                         const int32_t *labels, int need_labels) {
    if (lt_ctx_status(ctx) != LT_OK) return -1;
    if (!logits) { lt_ctx_fail(ctx, LT_ERR_ARG, "%s: logits is NULL", loss); return -1; }
    if (logits->ndim != 2) {
        char s[64];
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "%s: logits must be (B, C), got %s", loss,
                    lt_shape_str(logits, s, sizeof s));
        return -1;
    }
    if (!need_labels) return 0;
    if (!labels) { lt_ctx_fail(ctx, LT_ERR_ARG, "%s: labels is NULL", loss); return -1; }
    int64_t B = logits->shape[0], C = logits->shape[1];
    for (int64_t i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= C) {
            lt_ctx_fail(ctx, LT_ERR_ARG, "%s: labels[%lld] = %d is outside [0, %lld)", loss,
                        (long long)i, (int)labels[i], (long long)C);
            return -1;
        }
    return 0;
}

int lt_loss_check_counts(lt_ctx *ctx, const char *loss, const int64_t *class_counts,
                         int64_t C, int64_t min_count) {
    if (lt_ctx_status(ctx) != LT_OK) return -1;
    if (!class_counts) { lt_ctx_fail(ctx, LT_ERR_ARG, "%s: class_counts is NULL", loss); return -1; }
    int64_t total = 0;
    for (int64_t c = 0; c < C; c++) {
        if (class_counts[c] < min_count) {
            lt_ctx_fail(ctx, LT_ERR_ARG, "%s: class_counts[%lld] = %lld, expected >= %lld", loss,
                        (long long)c, (long long)class_counts[c], (long long)min_count);
            return -1;
        }
        total += class_counts[c];
    }
    if (total <= 0) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: class counts sum to %lld, expected > 0", loss, (long long)total);
        return -1;
    }
    return 0;
}

int lt_loss_from_status(lt_ctx *ctx, lt_status st) {
    if (st == LT_OK) return 0;
    lt_ctx_fail(ctx, st, "%s", lt_last_error());
    return -1;
}

lt_tensor *lt_loss_const2(lt_ctx *ctx, int64_t rows, int64_t cols) {
    return lt_tensor_new2(ctx, rows, cols);  /* requires_grad is 0 for a new tensor */
}

lt_tensor *lt_loss_row_weights(lt_ctx *ctx, const int32_t *labels, int64_t B, int64_t C,
                               const float *class_weight, int onehot) {
    lt_tensor *t = lt_loss_const2(ctx, B, C);
    if (!t) return NULL;
    for (int64_t i = 0; i < B; i++) {
        int32_t y = labels[i];
        float wy = class_weight ? class_weight[y] : 1.0f;
        float *row = t->data + i * C;
        for (int64_t k = 0; k < C; k++)
            row[k] = onehot == 0 ? wy : (onehot > 0) == (k == y) ? wy : 0.0f;
    }
    return t;
}

lt_tensor *lt_loss_repeat_cols(lt_ctx *ctx, lt_tensor *v, int64_t C) {
    if (lt_ctx_status(ctx) != LT_OK || !v) return NULL;
    lt_tensor *col = lt_reshape(ctx, v, 2, (int64_t[]){v->numel, 1});
    if (!col) return NULL;
    if (C == 1) return col;
    if (C > 0x7fffffff) return lt_ctx_fail(ctx, LT_ERR_SHAPE, "repeat_cols: %lld columns is too many", (long long)C);
    lt_tensor **xs = lt_arena_alloc(lt_ctx_arena(ctx), (size_t)C * sizeof *xs);
    if (!xs) return lt_ctx_fail(ctx, LT_ERR_NOMEM, "repeat_cols: out of memory for %lld inputs", (long long)C);
    for (int64_t k = 0; k < C; k++) xs[k] = col;
    return lt_concat(ctx, xs, (int)C, 1);
}
