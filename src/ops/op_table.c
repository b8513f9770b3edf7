/* The op table: name and backward of every differentiable op, indexed by enum lt_op.
 * Each op file's owner adds its entries here when the op lands; the unit test
 * "op_table_complete" fails while any entry is missing. */
#include "ops_internal.h"

#include <stdarg.h>

_Static_assert(LT_OP_COUNT == 35, "enum lt_op changed: update lt_op_table and this count");

const char *lt_op_name(enum lt_op op) {
    if ((int)op < 0 || op >= LT_OP_COUNT) return "?";
    return lt_op_table[op].name;
}

const lt_op_info lt_op_table[LT_OP_COUNT] = {
    /* elementwise.c */
    [LT_OP_ADD] = {"add", lt_add_backward},
    [LT_OP_SUB] = {"sub", lt_sub_backward},
    [LT_OP_MUL] = {"mul", lt_mul_backward},
    [LT_OP_DIV] = {"div", lt_div_backward},
    [LT_OP_SCALE] = {"scale", lt_scale_backward},
    [LT_OP_ADD_SCALAR] = {"add_scalar", lt_add_scalar_backward},
    [LT_OP_EXP] = {"exp", lt_exp_backward},
    [LT_OP_LOG] = {"log", lt_log_backward},
    [LT_OP_ABS] = {"abs", lt_abs_backward},
    [LT_OP_SQRT] = {"sqrt", lt_sqrt_backward},
    [LT_OP_POW] = {"pow", lt_pow_backward},
    [LT_OP_CLAMP] = {"clamp", lt_clamp_backward},
    /* activation.c */
    [LT_OP_RELU] = {"relu", lt_relu_backward},
    [LT_OP_PRELU] = {"prelu", lt_prelu_backward},
    [LT_OP_SIGN_STE] = {"sign_ste", lt_sign_ste_backward},
    /* reduce.c */
    [LT_OP_SUM] = {"sum", lt_sum_backward},
    [LT_OP_MEAN] = {"mean", lt_mean_backward},
    /* softmax.c */
    [LT_OP_SOFTMAX] = {"softmax", lt_softmax_backward},
    [LT_OP_LOG_SOFTMAX] = {"log_softmax", lt_log_softmax_backward},
    [LT_OP_CROSS_ENTROPY] = {"cross_entropy", lt_cross_entropy_backward},
    /* norm_rows.c */
    [LT_OP_ROW_L2NORM] = {"row_l2norm", lt_row_l2norm_backward},
    [LT_OP_NORMALIZE_ROWS] = {"normalize_rows", lt_normalize_rows_backward},
    [LT_OP_COSINE_SIM] = {"cosine_sim", lt_cosine_sim_backward},
    /* shape.c */
    [LT_OP_CONCAT] = {"concat", lt_concat_backward},
    [LT_OP_SLICE] = {"slice", lt_slice_backward},
    [LT_OP_RESHAPE] = {"reshape", lt_reshape_backward},
    [LT_OP_RESIZE_NEAREST] = {"resize_nearest", lt_resize_nearest_backward},
    [LT_OP_SHORTCUT_A] = {"shortcut_a", lt_shortcut_a_backward},
    /* matmul.c, conv.c */
    [LT_OP_MATMUL] = {"matmul", lt_matmul_backward},
    [LT_OP_LINEAR] = {"linear", lt_linear_backward},
    [LT_OP_CONV2D] = {"conv2d", lt_conv2d_backward},
    /* batchnorm.c, pool.c */
    [LT_OP_BATCHNORM] = {"batchnorm", lt_batchnorm_backward},
    [LT_OP_AVGPOOL] = {"avgpool2d", lt_avgpool_backward},
    [LT_OP_MAXPOOL] = {"maxpool2d", lt_maxpool_backward},
    [LT_OP_GLOBAL_AVGPOOL] = {"global_avgpool", lt_global_avgpool_backward},
};

int lt_ops_bad_inputs(lt_ctx *ctx, const char *op, int n, ...) {
    if (ctx->status != LT_OK) return 1;
    va_list ap;
    va_start(ap, n);
    int bad = -1;
    for (int k = 0; k < n; k++) {
        const lt_tensor *t = va_arg(ap, const lt_tensor *);
        if (!t && bad < 0) bad = k;
    }
    va_end(ap);
    if (bad >= 0) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "%s: input %d is NULL", op, bad);
        return 1;
    }
    return 0;
}
