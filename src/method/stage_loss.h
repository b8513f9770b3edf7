/* Internal to src/method: the loss of a training stage (stage_loss.c) — reading its
 * recipe keys, preparing the model at the stage start, and building the loss tensor of
 * a batch from the loss library (loss.h). Keys and defaults: docs/recipes.md; formulas:
 * docs/losses.md. */
#ifndef LT_METHOD_STAGE_LOSS_H
#define LT_METHOD_STAGE_LOSS_H

#include "longtail/train.h"

/* Reads the loss keys of [section] (loss, class_weights, cb_beta, drw_epoch, cb_norm,
 * label_smoothing, focal_gamma, sigmoid_bias_init, ldam_*, la_tau, eql_lambda, seql_*,
 * las_*, iwb_*, wd_loss, feature_reg) into st->loss, st->class_weights, st->cb_beta,
 * st->label_smoothing and st->lc. A bad value or a key that means nothing with the chosen
 * loss is LT_ERR_CONFIG "file:line: section.key: ...". [model] must have been read. */
lt_status lt_mt_read_stage_loss(lt_recipe *r, const char *section, lt_stage_config *st);

/* At the start of a stage: checks the model suits the loss (LDAM needs the cosine head)
 * and, when fresh (not a resume in the middle of the stage) and sigmoid_bias_init is on,
 * sets the classifier bias to −log(C − 1). */
lt_status lt_mt_stage_loss_begin(const lt_recipe *r, const lt_stage_config *sc, lt_model *m, int fresh);

/* The generator of a batch's stochastic loss terms (softmax EQL's Bernoulli draws): a
 * function of (seed, stage, epoch, batch) only, on LT_STREAM_LOSS, so a resumed run draws
 * exactly what an uninterrupted one does. stage and epoch 0-based. */
void lt_mt_stage_loss_rng(lt_rng *rng, uint64_t seed, int stage, int64_t epoch, int64_t batch);

/* The loss of one batch: logits (B, C) from the model, features (B, D) its pooled
 * features, labels B values, counts the C training counts, epoch the 0-based epoch of the
 * stage (for DRW), m the model (classifier weight for LDAM / IWB, trainable weights for
 * wd_loss), rng from lt_mt_stage_loss_rng, weight_buf C floats of scratch (class weights
 * of this batch). Returns a scalar in ctx's arena, or NULL with the error in ctx. */
lt_tensor *lt_mt_stage_loss(lt_ctx *ctx, const lt_stage_config *sc, lt_tensor *logits, lt_tensor *features,
                            const int32_t *labels, const int64_t *counts, int64_t epoch, lt_model *m,
                            lt_rng *rng, float *weight_buf);

#endif
