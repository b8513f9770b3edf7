/* Internal: backward functions of every op (one family per file, forward beside backward)
 * and helpers shared by the op files. */
#ifndef LT_OPS_INTERNAL_H
#define LT_OPS_INTERNAL_H

#include "longtail/tape.h"

/* The op table (op_table.c): every op's name and backward, indexed by enum lt_op. */
extern const lt_op_info lt_op_table[LT_OP_COUNT];
/* Records a node of op `op` on the tape (autodiff/tape.c) with its row of the table. */
#define lt_tape_record(ctx, op, out, n_in, ...) lt_tape_record_op((ctx), (op), &lt_op_table[(op)], (out), (n_in), __VA_ARGS__)

/* Returns 1 (and records an error naming `op`) when any input is NULL or the context
 * already failed: ops start with `if (lt_ops_bad_inputs(ctx, "conv2d", 2, x, w)) return NULL;` */
int lt_ops_bad_inputs(lt_ctx *ctx, const char *op, int n, ...);

/* elementwise.c */
void lt_add_backward(lt_ctx *ctx, const lt_node *n);
void lt_sub_backward(lt_ctx *ctx, const lt_node *n);
void lt_mul_backward(lt_ctx *ctx, const lt_node *n);
void lt_div_backward(lt_ctx *ctx, const lt_node *n);
void lt_scale_backward(lt_ctx *ctx, const lt_node *n);
void lt_add_scalar_backward(lt_ctx *ctx, const lt_node *n);
void lt_exp_backward(lt_ctx *ctx, const lt_node *n);
void lt_log_backward(lt_ctx *ctx, const lt_node *n);
void lt_abs_backward(lt_ctx *ctx, const lt_node *n);
void lt_sqrt_backward(lt_ctx *ctx, const lt_node *n);
void lt_pow_backward(lt_ctx *ctx, const lt_node *n);
void lt_clamp_backward(lt_ctx *ctx, const lt_node *n);
/* activation.c */
void lt_relu_backward(lt_ctx *ctx, const lt_node *n);
void lt_prelu_backward(lt_ctx *ctx, const lt_node *n);
void lt_sign_ste_backward(lt_ctx *ctx, const lt_node *n);
/* reduce.c */
void lt_sum_backward(lt_ctx *ctx, const lt_node *n);
void lt_mean_backward(lt_ctx *ctx, const lt_node *n);
/* softmax.c */
void lt_softmax_backward(lt_ctx *ctx, const lt_node *n);
void lt_log_softmax_backward(lt_ctx *ctx, const lt_node *n);
void lt_cross_entropy_backward(lt_ctx *ctx, const lt_node *n);
/* norm_rows.c */
void lt_row_l2norm_backward(lt_ctx *ctx, const lt_node *n);
void lt_normalize_rows_backward(lt_ctx *ctx, const lt_node *n);
void lt_cosine_sim_backward(lt_ctx *ctx, const lt_node *n);
/* shape.c */
void lt_concat_backward(lt_ctx *ctx, const lt_node *n);
void lt_slice_backward(lt_ctx *ctx, const lt_node *n);
void lt_reshape_backward(lt_ctx *ctx, const lt_node *n);
void lt_resize_nearest_backward(lt_ctx *ctx, const lt_node *n);
void lt_shortcut_a_backward(lt_ctx *ctx, const lt_node *n);
/* matmul.c, conv.c */
void lt_matmul_backward(lt_ctx *ctx, const lt_node *n);
void lt_linear_backward(lt_ctx *ctx, const lt_node *n);
void lt_conv2d_backward(lt_ctx *ctx, const lt_node *n);
/* batchnorm.c, pool.c */
void lt_batchnorm_backward(lt_ctx *ctx, const lt_node *n);
void lt_avgpool_backward(lt_ctx *ctx, const lt_node *n);
void lt_maxpool_backward(lt_ctx *ctx, const lt_node *n);
void lt_global_avgpool_backward(lt_ctx *ctx, const lt_node *n);

#endif
