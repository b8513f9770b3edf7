/* The long-tail loss library: re-weighting, re-margining and distillation losses, each
 * composed from the differentiable ops of ops.h, so every loss has a gradient through the
 * tape with no hand-written backward.
 *
 * Conventions. A loss takes the context first and returns a scalar tensor (shape (1)) in
 * the context's arena, valid until lt_ctx_reset(); on bad input it returns NULL and the
 * context keeps the error (sticky, as every op). Logits are (B, C); labels are B int32
 * values in [0, C), read during the call only. Class counts are int64_t n_c[C] (training
 * images per class, C = the logits' second dimension); class weights are float w[C] or
 * NULL (all ones). Everything the caller passes (labels, counts, weights, rng) stays the
 * caller's; nothing is kept after the call returns. Constant tensors a loss builds (masks,
 * margins, targets) live in the arena and carry no gradient.
 *
 * The helpers that compute per-class quantities (class-balanced weights, DRW schedule,
 * LDAM margins, label-aware smoothing factors, equalization masks) are plain functions
 * filling caller-owned arrays; they return LT_OK or an lt_status with lt_last_error() set.
 *
 * Formulas and defaults: docs/losses.md (and in each comment below,
 * with the paper or code each comes from). */
#ifndef LONGTAIL_LOSS_H
#define LONGTAIL_LOSS_H

#include "ops.h"

/* ======================================================================================
 * Per-class helpers
 * ====================================================================================== */

/* Class-balanced weights (Cui et al., CVPR 2019, "effective number of samples"):
 *   w_c = (1 − β) / (1 − β^{n_c}),  then rescaled so that Σ_c w_c = C.
 * β in [0, 1) (0.9999 is the usual default; β = 0 gives all ones); every n_c >= 1. */
lt_status lt_cb_weights(const int64_t *class_counts, int64_t C, double beta, float *w);

/* Deferred re-weighting (Cao et al., NeurIPS 2019, LDAM-DRW code: `idx = epoch // 160`):
 * all ones for epoch < drw_epoch, class-balanced weights with β from drw_epoch on
 * (epochs counted from 0; the published schedule is drw_epoch = 160 of 200, β = 0.9999). */
lt_status lt_drw_weights(int64_t epoch, int64_t drw_epoch, double beta,
                         const int64_t *class_counts, int64_t C, float *w);

/* LDAM margins (Cao et al. 2019): Δ_c ∝ n_c^(−1/4), scaled so that max_c Δ_c = max_m
 * (0.5 in the paper). Every n_c >= 1, max_m >= 0. */
lt_status lt_ldam_margins(const int64_t *class_counts, int64_t C, float max_m, float *delta);

/* Label-aware smoothing factors (Zhong et al., CVPR 2021, MiSLAS, "concave" form):
 *   ε_c = ε_t + (ε_h − ε_t) · sin(π (n_c − n_min) / (2 (n_max − n_min)))
 * so the largest class gets ε_h (head, 0.4 at IF 100) and the smallest ε_t (tail, 0.1).
 * When every class has the same count the formula is 0/0; every class then gets ε_h (all
 * classes are head classes). ε_h, ε_t in [0, 1]. */
lt_status lt_las_smoothing(const int64_t *class_counts, int64_t C, float eps_head,
                           float eps_tail, float *eps);

/* Sigmoid equalization-loss weights (Tan et al., CVPR 2020, Eq. 7 with E(r) = 1, every
 * image is "foreground" in classification):
 *   w_{i,k} = 1 − T_λ(f_k) (1 − y_{i,k}),  T_λ(f) = 1 if f < λ, f_k = n_k / N,
 * i.e. the entries of rare classes (f_k < λ) that are not the sample's label are 0, all
 * others 1. Fills w[B·C] row-major. Counts n_k >= 0 with N = Σ n_k > 0. */
lt_status lt_eql_weights(const int32_t *labels, int64_t B, const int64_t *class_counts,
                         int64_t C, float lambda, float *w);

/* Softmax equalization-loss weights (Tan et al. 2020, Eq. 10–11):
 *   w̃_{i,k} = 1 − β_{i,k} T_λ(f_k) (1 − y_{i,k}),  β_{i,k} ~ Bernoulli(γ),
 * one β drawn from `rng` for every (i, k) in row-major order (B·C draws whatever the
 * labels, so a seeded run consumes the stream the same way every step). w̃ is 0 or 1 and
 * w̃_{i,y_i} = 1 always. γ in [0, 1]. */
lt_status lt_seql_weights(lt_rng *rng, const int32_t *labels, int64_t B,
                          const int64_t *class_counts, int64_t C, float lambda, float gamma,
                          float *w);

/* The bias initialization of the sigmoid / focal classifiers (Cui et al. 2019, after Lin
 * et al. 2017): b = −log((1 − π)/π) with prior π = 1/C, i.e. −log(C − 1), so every class
 * starts at probability 1/C. Needs C >= 2; returns NaN otherwise. */
float lt_loss_sigmoid_bias_init(int64_t C);

/* ======================================================================================
 * Softmax losses
 * ====================================================================================== */

/* Class-balanced softmax cross-entropy: l_i = −w_{y_i} log p_{y_i}, reduced by
 * LT_REDUCE_BATCH_MEAN (Σ / B: Cui et al.'s TF code, tf.losses with one weight per sample)
 * or LT_REDUCE_MEAN (Σ / Σ_i w_{y_i}: PyTorch's weighted F.cross_entropy); SUM and NONE
 * also pass through. class_weight: NULL or C weights (e.g. from lt_cb_weights). */
lt_tensor *lt_loss_cb_softmax(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                              const float *class_weight, lt_reduction reduction);

/* The class-balanced softmax loss of the WB and IWB code (CB_loss(..., "softmax") of the
 * class-balanced-loss-pytorch port): binary cross-entropy of p = softmax(z) against the
 * one-hot y, every element of row i weighted by w_{y_i}, averaged over all B·C elements:
 *   L = −1/(B C) Σ_i w_{y_i} Σ_k [y_{ik} log p_{ik} + (1 − y_{ik}) log(1 − p_{ik})].
 * log p_y is taken from log_softmax; 1 − p is clamped below at FLT_MIN. PyTorch clamps
 * the log at −100 instead; the two differ only when 1 − p rounds to 0 in float (a term of
 * −log FLT_MIN = 87.3 with no gradient here, 100 there). */
lt_tensor *lt_loss_cb_softmax_bce(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                  const float *class_weight);

/* Focal loss on softmax (Lin et al. 2017; the form of the LDAM-DRW code, FocalLoss):
 *   CE_i = w_{y_i} (−log p_{y_i}),  p_t = exp(−CE_i),  L = mean_i (1 − p_t)^γ CE_i.
 * With class weights p_t is exp of the *weighted* CE, exactly as that code (DRW + focal).
 * γ >= 0 (1 or 2 usual); γ = 0 is the (weighted) cross-entropy averaged over B. */
lt_tensor *lt_loss_focal(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                         const float *class_weight, float gamma);

/* LDAM (Cao et al. 2019): L = CE(s · (z − Δ_y · onehot(y)), y) with the margins of
 * lt_ldam_margins(class_counts, max_m) and PyTorch's weighted mean (Σ w_y l / Σ w_y), as
 * the LDAMLoss of the authors' code. z are cosine logits: the caller passes
 * lt_cosine_sim(features, classifier rows) (LDAM-DRW's NormedLinear). s = 30, max_m = 0.5
 * usual; class_weight NULL or the DRW weights of the epoch (lt_drw_weights). */
lt_tensor *lt_loss_ldam(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                        const int64_t *class_counts, float max_m, float s,
                        const float *class_weight);

/* Logit-adjusted loss (Menon et al., ICLR 2021): L = mean_i CE(z_i + τ log π, y_i) with
 * π_c = n_c / N; τ = 1 is the balanced softmax (Ren et al., NeurIPS 2020). Training only:
 * at test time use the raw logits. Every n_c >= 1. */
lt_tensor *lt_loss_logit_adjusted(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                  const int64_t *class_counts, float tau);
/* lt_loss_logit_adjusted with τ = 1. */
lt_tensor *lt_loss_balanced_softmax(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                    const int64_t *class_counts);

/* Softmax equalization loss (Tan et al. 2020, Eq. 10–11), batch mean:
 *   L_i = −log( e^{z_{y_i}} / Σ_k w̃_{ik} e^{z_k} ),  w̃ from lt_seql_weights(rng, …),
 * computed as CE(z + log w̃) with log 0 taken as −1e30 (exp of it is exactly 0, and nothing
 * is infinite). Draws B·C values from rng. γ = 0.9, λ = 0.005 in the paper. */
lt_tensor *lt_loss_seql(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                        const int64_t *class_counts, float lambda, float gamma, lt_rng *rng);
/* The same loss with the caller's w̃ (B·C values, row-major, each 0 or > 0, w̃_{i,y_i} = 1):
 * CE(z + log w̃). lt_loss_seql draws w̃ with lt_seql_weights and calls this. */
lt_tensor *lt_loss_seql_weighted(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                                 const float *w_tilde);

/* Label-aware smoothing (Zhong et al. 2021, MiSLAS LabelAwareSmoothing), batch mean:
 *   L_i = (1 − ε_{y_i}) (−log p_{y_i}) + ε_{y_i} · mean_k (−log p_k),
 * ε from lt_las_smoothing(class_counts, eps_head, eps_tail). */
lt_tensor *lt_loss_las(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                       const int64_t *class_counts, float eps_head, float eps_tail);

/* ======================================================================================
 * Sigmoid losses (one binary problem per class, target one-hot y)
 * ====================================================================================== */

/* Class-balanced sigmoid loss (Cui et al. 2019): binary cross-entropy with logits, every
 * element of row i weighted by w_{y_i}, averaged over B·C (tf.losses' default
 * SUM_BY_NONZERO_WEIGHTS in the authors' code, and F.binary_cross_entropy_with_logits'
 * mean in the PyTorch port). class_weight NULL: plain BCE. */
lt_tensor *lt_loss_cb_sigmoid(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                              const float *class_weight);

/* Class-balanced focal loss (Cui et al. 2019, focal_loss() of their code), elementwise
 * over classes:
 *   FL_{ik} = −w_{y_i} (1 − p_t)^γ log p_t,  p_t = σ(z_{ik}) if y_{ik} = 1 else 1 − σ(z_{ik}),
 * normalized as in their code: Σ_{i,k} FL_{ik} / Σ_{i,k} y_{ik}, i.e. divided by the number
 * of positives, which is B for single-label data. (γ = 0 gives C times lt_loss_cb_sigmoid.)
 * The classifier bias should start at lt_loss_sigmoid_bias_init(C). γ >= 0. */
lt_tensor *lt_loss_cb_focal(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                            const float *class_weight, float gamma);

/* Sigmoid equalization loss (Tan et al. 2020, Eq. 6–7 and their code): BCE with logits
 * weighted by lt_eql_weights (λ = 1.77e-3 in the paper), summed over classes and averaged
 * over the batch: L = 1/B Σ_{i,k} w_{ik} BCE(z_{ik}, y_{ik}). */
lt_tensor *lt_loss_eql(lt_ctx *ctx, lt_tensor *logits, const int32_t *labels,
                       const int64_t *class_counts, float lambda);

/* ======================================================================================
 * Distillation
 * ====================================================================================== */

/* Knowledge distillation (Hinton et al. 2015): T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)),
 * summed over classes and averaged over the batch (F.kl_div(..., 'batchmean') · T²).
 * The teacher logits get no gradient: when they require one, the loss works on a copy.
 * student and teacher (B, C); T > 0 (4 in RIDE, 2 in LFME). */
lt_tensor *lt_loss_kd(lt_ctx *ctx, lt_tensor *student_logits, lt_tensor *teacher_logits,
                      float T);

/* Cosine feature distance (CANDLE's feature similarity): mean_i (1 − cos(f_s,i, f_t,i))
 * over rows, rows normalized as F.normalize (norms clamped below by 1e-12). f_s, f_t
 * (B, D); when widths differ the caller maps f_s first (its own linear layer P).
 * Gradients flow into both inputs when they require one. */
lt_tensor *lt_loss_cosine_distance(lt_ctx *ctx, lt_tensor *f_s, lt_tensor *f_t);

/* ======================================================================================
 * Inverse weight balancing (Hasegawa & Sato, docs/losses.md `iwb`)
 * ====================================================================================== */

typedef enum lt_iwb_hc {
    LT_IWB_HC_VECTOR = 0,  /* HC_{b,c} = (1 − cos(f_b, w_c)) / 2, every class (paper Eq. 5–6) */
    LT_IWB_HC_SCALAR = 1,  /* HC_b = (1 − cos(f_b, w_{y_b})) / 2, true class only (Eq. 4) */
    LT_IWB_HC_NONE = 2,    /* P = λ · NC: the "NC only" ablation (Table 3) */
} lt_iwb_hc;

typedef enum lt_iwb_divergence {
    LT_IWB_KL_CODE = 0,    /* KL(softmax(P) ‖ softmax(A)): the authors' code */
    LT_IWB_KL_PAPER = 1,   /* KL(softmax(A) ‖ softmax(P)): Eq. 8 of the paper */
    LT_IWB_MSE = 2,        /* (A − P)²: the Table 4 ablation */
} lt_iwb_divergence;

typedef struct lt_iwb_config {
    float lambda;                  /* 0.15 CIFAR-100, 0.05 ImageNet-LT, 0.01 iNat */
    int log2_nc;                   /* 1: NC with log₂ (paper); 0: natural log (code) */
    lt_iwb_hc hc;
    lt_iwb_divergence divergence;
    int batch_mean;                /* 0: sum over the batch (code); 1: mean (see below) */
    float cos_eps;                 /* norm clamp of the cosine (F.normalize's 1e-12) */
} lt_iwb_config;

/* λ = 0.15, natural log, vector HC, KL as the code, batch sum, cos_eps 1e-12. */
lt_iwb_config lt_iwb_config_default(void);

/* The IWB term (Inverse Weight-Balancing, docs/losses.md), to be added to the CB loss by
 * the caller:
 *   NC_c = log(N / (n_c + 1)),  HC as cfg->hc,  P_{b,c} = λ NC_c HC_{b,c},  A_{b,c} = ‖w_c‖,
 *   KL per row b between softmax_c(P_b) and softmax_c(A) in cfg->divergence's direction,
 *   then Σ_b (batch_mean 0) or 1/B Σ_b (batch_mean 1). For LT_IWB_MSE the squared error
 *   Σ_{b,c} (A_c − P_{b,c})² is divided by 1 (batch sum) or by B·C (batch mean, as
 *   F.mse_loss's default).
 * features (B, D) and weight (C, D) (the classifier's weight rows); gradients flow through
 * HC into both and through A into the weight. labels: needed for LT_IWB_HC_SCALAR only
 * (may be NULL otherwise). class_counts: n_c >= 0. */
lt_tensor *lt_loss_iwb(lt_ctx *ctx, lt_tensor *features, lt_tensor *weight,
                       const int32_t *labels, const int64_t *class_counts,
                       const lt_iwb_config *cfg);

/* ======================================================================================
 * Regularizers as loss terms (Hasegawa & Sato, ICLR 2024; docs/losses.md)
 * ====================================================================================== */

/* Weight decay as a loss: λ/2 · Σ_t ‖θ_t‖² over n >= 1 tensors (its gradient λθ equals
 * SGD's coupled weight decay). λ = 5e-3 in the WB analysis. */
lt_tensor *lt_loss_weight_decay(lt_ctx *ctx, lt_tensor *const *params, int64_t n,
                                float lambda);

/* Feature regularization: coef · mean_i ‖f_i‖² / 2 over the B rows of f (B, D)
 * (coef = 0.01 in the WB analysis). */
lt_tensor *lt_loss_feature_reg(lt_ctx *ctx, lt_tensor *features, float coef);

#endif
