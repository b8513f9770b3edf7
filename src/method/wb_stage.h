/* Internal to src/method: the weight-balancing stage machinery the trainer calls —
 * MaxNorm by projected gradient descent (constraint.c), the post-hoc transform chosen at
 * a stage's end and the per-stage analysis of metrics.json (posthoc_stage.c). Formulas
 * and sources: docs/recipes.md ([stageN] maxnorm*, posthoc*; "Analysis"), docs/metrics.md. */
#ifndef LT_METHOD_WB_STAGE_H
#define LT_METHOD_WB_STAGE_H

#include "longtail/train.h"

/* ---- MaxNorm (Alshammari et al. CVPR 2022, weight balancing, stage 2) ---- */

/* The radius stage sc uses for the model's head as it is now (the stage start): the
 * absolute maxnorm_radius, or the relative formula with maxnorm_t. NaN if the stage has
 * no MaxNorm. */
double lt_mt_maxnorm_stage_radius(const lt_stage_config *sc, const lt_model *m);

/* ---- post-hoc transforms at a stage's end ---- */

/* The head's evaluation-only logit transform (lt_model_set_posthoc) for stage sc's
 * posthoc kind at τ: τ-norm / L2-norm on the classifier rows with the bias kept or
 * dropped, or additive / multiplicative logit adjustment with the training priors
 * (lt_posthoc_logit_adjust's formulas). */
lt_status lt_mt_posthoc_apply(lt_model *m, const lt_stage_config *sc, double tau, const int64_t *train_counts);

/* Chooses τ (the fixed posthoc_tau, 1 for l2norm, or the default grid 0, 0.1, ..., 2
 * swept on the VALIDATION set's top-1 accuracy, ties to the smaller τ) and leaves the
 * transform set on the model. *kind_out / *tau_out: what goes in metrics.json.
 * posthoc = none: clears the transform, *tau_out = NaN. */
lt_status lt_mt_posthoc_choose(lt_ctx *ctx, lt_model *m, const lt_stage_config *sc, const lt_dataset *val,
                               const lt_augment_config *norm, int64_t batch_size, int topk,
                               const int64_t *train_counts, const lt_group_spec *groups, lt_posthoc *kind_out,
                               double *tau_out);

/* ---- analysis (Hasegawa & Sato, ICLR 2024; docs/metrics.md) ---- */

/* The pooled features of every image of ds (evaluation mode, normalization only) into
 * *features (N × D, lt_malloc) and *labels (N). */
lt_status lt_mt_collect_features(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const lt_augment_config *norm,
                                 int64_t batch_size, float **features, int32_t **labels);
/* Mean and population std of every batch-norm scale γ of the model (weights named
 * "...bn<k>.weight"); *count of them. */
lt_status lt_mt_bn_scales(const lt_model *m, double *mean, double *std, int64_t *count);
/* Fills res->features (from eval_ds), res->train_features (from train) and the BN scale
 * statistics. train may be NULL (left "not run"). */
lt_status lt_mt_stage_analysis(lt_ctx *ctx, lt_model *m, const lt_dataset *eval_ds, const lt_dataset *train,
                               const lt_augment_config *norm, int64_t batch_size, lt_eval_result *res);

#endif
