/* Differentiable operations.
 *
 * Every op takes the context first, allocates its output in the context's arena, and
 * records a tape node when gradients are enabled and an input requires a gradient. On bad
 * input (wrong shapes, NULL input) an op returns NULL and the context keeps the error
 * (see autodiff.h); nothing is written to the inputs.
 *
 * Layouts: images NHWC (N, H, W, C); matrices row-major; conv weights (O, KH, KW, I) —
 * checkpoints convert to PyTorch's OIHW on save and back on load; linear weights
 * (out, in) as in PyTorch. "Broadcast" below means: b has the same shape as a, or b's
 * shape equals the trailing dimensions of a's (e.g. a bias (C) against (N, H, W, C)). */
#ifndef LONGTAIL_OPS_H
#define LONGTAIL_OPS_H

#include "autodiff.h"

/* One entry per differentiable op; the op table (src/ops/op_table.c) is indexed by it and
 * a static assert keeps the two the same size. Append inside the family's section. */
enum lt_op {
    /* elementwise and unary (src/ops/elementwise.c) */
    LT_OP_ADD,
    LT_OP_SUB,
    LT_OP_MUL,
    LT_OP_DIV,
    LT_OP_SCALE,
    LT_OP_ADD_SCALAR,
    LT_OP_EXP,
    LT_OP_LOG,
    LT_OP_ABS,
    LT_OP_SQRT,
    LT_OP_POW,
    LT_OP_CLAMP,
    /* activations (src/ops/activation.c) */
    LT_OP_RELU,
    LT_OP_PRELU,
    LT_OP_SIGN_STE,
    /* reductions (src/ops/reduce.c) */
    LT_OP_SUM,
    LT_OP_MEAN,
    /* softmax family and losses (src/ops/softmax.c) */
    LT_OP_SOFTMAX,
    LT_OP_LOG_SOFTMAX,
    LT_OP_CROSS_ENTROPY,
    /* norms and similarity (src/ops/norm_rows.c) */
    LT_OP_ROW_L2NORM,
    LT_OP_NORMALIZE_ROWS,
    LT_OP_COSINE_SIM,
    /* shape ops (src/ops/shape.c) */
    LT_OP_CONCAT,
    LT_OP_SLICE,
    LT_OP_RESHAPE,
    LT_OP_RESIZE_NEAREST,
    LT_OP_SHORTCUT_A,
    /* dense and convolution, oneDNN (src/ops/matmul.c, src/ops/conv.c) */
    LT_OP_MATMUL,
    LT_OP_LINEAR,
    LT_OP_CONV2D,
    /* normalization and pooling (src/ops/batchnorm.c, src/ops/pool.c) */
    LT_OP_BATCHNORM,
    LT_OP_AVGPOOL,
    LT_OP_MAXPOOL,
    LT_OP_GLOBAL_AVGPOOL,
    LT_OP_COUNT
};

const char *lt_op_name(enum lt_op op);

/* ---- elementwise (b broadcast as above) ---- */
lt_tensor *lt_add(lt_ctx *ctx, lt_tensor *a, lt_tensor *b);
lt_tensor *lt_sub(lt_ctx *ctx, lt_tensor *a, lt_tensor *b);
lt_tensor *lt_mul(lt_ctx *ctx, lt_tensor *a, lt_tensor *b);
lt_tensor *lt_div(lt_ctx *ctx, lt_tensor *a, lt_tensor *b);
lt_tensor *lt_scale(lt_ctx *ctx, lt_tensor *a, float s);          /* s · a */
lt_tensor *lt_add_scalar(lt_ctx *ctx, lt_tensor *a, float s);     /* a + s */
lt_tensor *lt_exp(lt_ctx *ctx, lt_tensor *a);
lt_tensor *lt_log(lt_ctx *ctx, lt_tensor *a);
lt_tensor *lt_abs(lt_ctx *ctx, lt_tensor *a);                     /* d/dx at 0: 0 */
lt_tensor *lt_sqrt(lt_ctx *ctx, lt_tensor *a);
lt_tensor *lt_pow(lt_ctx *ctx, lt_tensor *a, float p);            /* a^p; grad exactly 0 for p = 0 */
/* grad 1 on [lo, hi], bounds included (as PyTorch); lo > hi is an LT_ERR_ARG error. */
lt_tensor *lt_clamp(lt_ctx *ctx, lt_tensor *a, float lo, float hi);

/* ---- activations ---- */
lt_tensor *lt_relu(lt_ctx *ctx, lt_tensor *x);                     /* d/dx at 0: 0 */
/* Per-channel PReLU: alpha has shape (C), C = last dim of x, or (1) for one shared slope
 * (nn.PReLU()). y = x if x > 0 else alpha·x; at x = 0 dx uses alpha, as PyTorch. */
lt_tensor *lt_prelu(lt_ctx *ctx, lt_tensor *x, lt_tensor *alpha);
typedef enum lt_ste {
    LT_STE_CLIPPED = 0,   /* d/dx = 1 for |x| <= 1, else 0 (also the weight STE: d clamp(W,-1,1)) */
    LT_STE_APPROX = 1,    /* ApproxSign (Bi-Real): 2+2x on [-1,0), 2-2x on [0,1), 0 elsewhere */
} lt_ste;
/* sign(x) in forward with sign(0) = +1; backward by the chosen straight-through estimator. */
lt_tensor *lt_sign_ste(lt_ctx *ctx, lt_tensor *x, lt_ste ste);

/* ---- reductions: axes is a bit mask (bit i = reduce axis i); reduced axes are removed;
 * reducing every axis gives shape (1). LT_AXES_ALL reduces every axis of any rank; any
 * other mask naming an axis >= ndim, and the empty mask, are LT_ERR_ARG errors. Sums are
 * accumulated in double in a fixed order: the same result for any thread count. ---- */
#define LT_AXES_ALL 0xFu
lt_tensor *lt_sum(lt_ctx *ctx, lt_tensor *x, unsigned axes);
lt_tensor *lt_mean(lt_ctx *ctx, lt_tensor *x, unsigned axes);

/* ---- softmax family over the last axis (max subtracted; Σ exp in double) ---- */
lt_tensor *lt_softmax(lt_ctx *ctx, lt_tensor *x);
lt_tensor *lt_log_softmax(lt_ctx *ctx, lt_tensor *x);

/* Per-sample loss with class weights w (all 1 when NULL), smoothing ε, p = softmax(x_i):
 *   l_i = -Σ_c w_c q_c log p_c,  q = (1-ε)·onehot(y_i) + ε/C
 *       = (1-ε) w_{y_i} (-log p_{y_i}) + (ε/C) Σ_c w_c (-log p_c)
 * exactly PyTorch's F.cross_entropy(weight=w, label_smoothing=ε, reduction='none'). */
typedef enum lt_reduction {
    LT_REDUCE_MEAN = 0,        /* PyTorch 'mean': Σ l_i / Σ w_{y_i} (plain mean without weights) */
    LT_REDUCE_SUM = 1,         /* Σ l_i */
    LT_REDUCE_BATCH_MEAN = 2,  /* Σ l_i / B */
    LT_REDUCE_NONE = 3,        /* per-sample losses l_i, shape (B) */
} lt_reduction;
/* Cross-entropy of logits (B, C) against integer labels in [0, C) (copied into the arena;
 * an out-of-range label is an LT_ERR_ARG error naming its index). class_weight: NULL or C
 * weights (copied). label_smoothing ε in [0, 1], as PyTorch. Output: shape (1), or (B)
 * for NONE. */
lt_tensor *lt_cross_entropy(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                            const float *class_weight, float label_smoothing,
                            lt_reduction reduction);

/* ---- row norms and similarity, rows = all but the last axis ---- */
/* (..., D) -> (...), i.e. (R, D) -> (R); a vector (D) gives shape (1). Grad 0 for a zero row. */
lt_tensor *lt_row_l2norm(lt_ctx *ctx, lt_tensor *x);
/* x / max(‖x‖, eps), as F.normalize(x, dim=-1, eps); eps must be > 0 (LT_ERR_ARG). */
lt_tensor *lt_normalize_rows(lt_ctx *ctx, lt_tensor *x, float eps);
/* cos(a_i, b_j) for a (N, D), b (M, D) -> (N, M): F.normalize(a) · F.normalize(b)ᵀ, each
 * norm clamped below by eps (> 0), as the LDAM / RIDE NormedLinear classifier. */
lt_tensor *lt_cosine_sim(lt_ctx *ctx, lt_tensor *a, lt_tensor *b, float eps);

/* ---- shape ----
 * concat: inputs equal in every dim but `axis`; any number of inputs. slice: start >= 0,
 * len >= 1, start + len <= x->shape[axis]. reshape: a copy; one dim may be -1 (inferred). */
lt_tensor *lt_concat(lt_ctx *ctx, lt_tensor *const *xs, int n, int axis);
lt_tensor *lt_slice(lt_ctx *ctx, lt_tensor *x, int axis, int64_t start, int64_t len);
lt_tensor *lt_reshape(lt_ctx *ctx, lt_tensor *x, int ndim, const int64_t *shape);
/* NHWC nearest resize with PyTorch's mode='nearest' index rule for an explicit size:
 * src = min(floor(dst · (float)(in/out)), in-1) computed in float as PyTorch does (so e.g.
 * 26 -> 22 maps output 11 to input 12, not 13); out = in copies, out = 2·in halves. */
lt_tensor *lt_resize_nearest(lt_ctx *ctx, lt_tensor *x, int64_t out_h, int64_t out_w);
/* ResNet option-A shortcut: x[:, ::stride, ::stride, :] (output size ceil(H/stride)), then
 * zero channels so the output has out_c >= C channels: before = (out_c - C)/2 (rounded
 * down) zeros, the C input channels, then the remaining out_c - C - before zeros. For
 * out_c = 2C this is the CIFAR ResNet LambdaLayer
 * F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)). */
lt_tensor *lt_shortcut_a(lt_ctx *ctx, lt_tensor *x, int64_t out_c, int stride);

/* ---- dense and convolution (oneDNN) ---- */
/* a (M, K) or its transpose, b (K, N) or its transpose -> (M, N). */
lt_tensor *lt_matmul(lt_ctx *ctx, lt_tensor *a, lt_tensor *b, int trans_a, int trans_b);
/* x (B, in) · wᵀ + bias, w (out, in), bias (out) or NULL -> (B, out). */
lt_tensor *lt_linear(lt_ctx *ctx, lt_tensor *x, lt_tensor *w, lt_tensor *bias);
/* x (N, H, W, I), w (O, KH, KW, I), bias (O) or NULL -> (N, OH, OW, O);
 * OH = (H + 2·pad - KH) / stride + 1. Primitives are cached per shape in the context. */
lt_tensor *lt_conv2d(lt_ctx *ctx, lt_tensor *x, lt_tensor *w, lt_tensor *bias,
                     int stride, int pad);

/* ---- normalization and pooling ---- */
/* Batch norm over all but the last (channel) axis. use_batch_stats: normalize with the
 * batch's mean and biased variance and update running_mean / running_var (unbiased
 * variance, PyTorch's momentum convention: r = (1-m)·r + m·batch); otherwise normalize
 * with the running statistics. gamma/beta (C) may be NULL (no affine). */
lt_tensor *lt_batchnorm(lt_ctx *ctx, lt_tensor *x, lt_tensor *gamma, lt_tensor *beta,
                        lt_tensor *running_mean, lt_tensor *running_var,
                        int use_batch_stats, float momentum, float eps);
/* NHWC pooling, no padding for avg; max pooling pads with -inf. */
lt_tensor *lt_avgpool2d(lt_ctx *ctx, lt_tensor *x, int k, int stride);
lt_tensor *lt_maxpool2d(lt_ctx *ctx, lt_tensor *x, int k, int stride, int pad);
lt_tensor *lt_global_avgpool(lt_ctx *ctx, lt_tensor *x);            /* (N,H,W,C) -> (N,C) */

#endif
