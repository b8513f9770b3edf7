/* Internal: argument checks and constant-tensor builders shared by the loss files.
 * Losses use the public op API only (ops.h); nothing here touches the tape. */
#ifndef LT_LOSS_INTERNAL_H
#define LT_LOSS_INTERNAL_H

#include "longtail/loss.h"

/* "log 0" for additive masks: exp(−1e30 − m) is exactly 0 in double, and unlike −inf it
 * keeps every intermediate finite. */
#define LT_LOSS_LOG_ZERO (-1e30f)

/* 0 when the context has no error, logits is a (B, C) tensor with B, C >= 1, and labels
 * (if need_labels) is non-NULL with every value in [0, C); otherwise records an error
 * naming `loss` in the context (unless one is already there) and returns -1. */
int lt_loss_check_logits(lt_ctx *ctx, const char *loss, const lt_tensor *logits,
                         const int32_t *labels, int need_labels);

/* 0 when class_counts is non-NULL and every n_c >= min_count (and Σ n_c > 0); otherwise
 * records an error in the context and returns -1. */
int lt_loss_check_counts(lt_ctx *ctx, const char *loss, const int64_t *class_counts,
                         int64_t C, int64_t min_count);

/* Copies the helper's lt_last_error() into the context when st != LT_OK; returns -1 then. */
int lt_loss_from_status(lt_ctx *ctx, lt_status st);

/* A constant (B, C) tensor in the arena (no gradient), contents uninitialized. */
lt_tensor *lt_loss_const2(lt_ctx *ctx, int64_t rows, int64_t cols);

/* Row weights: w_{y_i} for every element of row i, a constant (B, C) tensor; class_weight
 * NULL gives all ones. When onehot is 1 only the label's element keeps w_{y_i}, the rest 0;
 * onehot -1 gives the complement (w_{y_i} off the label, 0 on it). */
lt_tensor *lt_loss_row_weights(lt_ctx *ctx, const int32_t *labels, int64_t B, int64_t C,
                               const float *class_weight, int onehot);

/* v (B) -> (B, C), v_i repeated along each row (reshape to (B, 1), then concat C copies:
 * the element ops broadcast over trailing dimensions only). */
lt_tensor *lt_loss_repeat_cols(lt_ctx *ctx, lt_tensor *v, int64_t C);

#endif
