/* Optimizers and learning-rate schedules, with PyTorch's exact update rules.
 *
 * An lt_optim updates the trainable weights of one lt_params (nn.h) from their gradients.
 * Its state (SGD momentum buffers, Adam's first and second moments) lives in ONE
 * contiguous float buffer laid out parallel to params->data: element i of each state slot
 * belongs to params->data[i], so saving or restoring the optimizer is a memcpy of
 * `state` (n_state floats) and `steps` (one int64 per params entry). The optimizer
 * borrows the lt_params (it must outlive the optimizer) and owns its state.
 *
 * Per parameter group g (lt_param.group): weight decay and an lr multiplier, both set by
 * lt_optim_set_group; by default every group has cfg.weight_decay and scale 1.
 * Weights whose trainable flag (t.requires_grad) is 0 are skipped entirely: not updated,
 * not decayed, their state and step count untouched (PyTorch skips params whose .grad is
 * None).
 *
 * Update rules, per element, lr = the lr passed to lt_optim_step × the group's scale,
 * wd = the group's weight decay, g = gradient, t = this parameter's step count after
 * incrementing (torch.optim, 1.13):
 *   SGD:   d = g + wd·p;  buf = d at t = 1, else μ·buf + (1 − dampening)·d;
 *          d = d + μ·buf (Nesterov) or buf (μ > 0), d (μ = 0);  p −= lr·d
 *   Adam:  g = g + wd·p;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *          p −= (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
 *   AdamW: p ·= (1 − lr·wd); then Adam with g unchanged (decoupled decay, Loshchilov &
 *          Hutter 2019). */
#ifndef LONGTAIL_OPTIM_H
#define LONGTAIL_OPTIM_H

#include "nn.h"

typedef enum lt_optim_kind {
    LT_OPTIM_SGD = 0,
    LT_OPTIM_ADAM = 1,
    LT_OPTIM_ADAMW = 2,
} lt_optim_kind;

typedef struct lt_optim_config {
    lt_optim_kind kind;
    float weight_decay;        /* default for every group */
    /* SGD */
    float momentum;            /* μ; 0 = plain SGD */
    float dampening;
    int nesterov;              /* needs μ > 0 and dampening 0 (as PyTorch) */
    /* Adam / AdamW */
    float beta1, beta2, eps;
} lt_optim_config;

/* Defaults as torch.optim: SGD(momentum given, dampening 0), Adam/AdamW betas (0.9,
 * 0.999), eps 1e-8; AdamW's PyTorch default weight decay is 0.01. */
lt_optim_config lt_optim_config_sgd(float momentum, float weight_decay, int nesterov);
lt_optim_config lt_optim_config_adam(float weight_decay);
lt_optim_config lt_optim_config_adamw(float weight_decay);

typedef struct lt_optim {
    lt_optim_config cfg;
    lt_params *params;
    float group_weight_decay[LT_MAX_PARAM_GROUPS];
    float group_lr_scale[LT_MAX_PARAM_GROUPS];
    int n_slots;               /* state slots: SGD with momentum 1, Adam(W) 2, else 0 */
    float *state;              /* n_slots × params->n_data floats, slot-major */
    int64_t n_state;
    int64_t *steps;            /* per params entry: updates applied to it so far */
} lt_optim;

/* LT_ERR_ARG for an out-of-range setting (negative lr factors, β outside [0, 1), ...),
 * LT_ERR_STATE if params is not finalized. */
lt_status lt_optim_init(lt_optim *o, lt_params *params, const lt_optim_config *cfg);
void lt_optim_free(lt_optim *o);   /* NULL is a no-op */
lt_status lt_optim_set_group(lt_optim *o, int group, float weight_decay, float lr_scale);
/* One update of every trainable weight with learning rate lr (>= 0, finite). */
lt_status lt_optim_step(lt_optim *o, float lr);
/* Zeroes the state and step counts (as a freshly constructed PyTorch optimizer). */
void lt_optim_reset(lt_optim *o);

/* ---- learning-rate schedules ----
 * lr(epoch, it) = base_lr · warm-up factor · schedule factor, epochs counted from 0:
 *   warm-up (warmup_epochs = k > 0): factor (epoch + 1) / k for epoch < k, else 1
 *     (LDAM-DRW's adjust_learning_rate: lr · epoch / 5 with its 1-based epoch);
 *   CONSTANT: 1;
 *   STEP: factors[j] of the last milestone with milestones[j] <= epoch (1 before the
 *     first) — cumulative factors given explicitly: LDAM-DRW's ×0.01 from epoch 160 and
 *     ×0.0001 from 180 is milestones {160, 180}, factors {0.01, 0.0001};
 *   COSINE: (1 + cos(π·t / total_epochs)) / 2, PyTorch's CosineAnnealingLR with
 *     eta_min 0 and T_max = total_epochs; t = epoch when stepped per epoch (PyTorch's
 *     usual scheduler.step() after each epoch), t = epoch + it / iters_per_epoch with
 *     per_iter; t is clamped to total_epochs (lr 0 after the end).
 * Warm-up multiplies whatever the schedule gives (cosine keeps counting from epoch 0). */
typedef enum lt_sched_kind {
    LT_SCHED_CONSTANT = 0,
    LT_SCHED_STEP = 1,
    LT_SCHED_COSINE = 2,
} lt_sched_kind;

#define LT_SCHED_MAX_MILESTONES 8

typedef struct lt_schedule {
    lt_sched_kind kind;
    float base_lr;
    int warmup_epochs;
    int total_epochs;                        /* COSINE */
    int per_iter;                            /* COSINE: anneal every iteration */
    int n_milestones;                        /* STEP */
    int milestones[LT_SCHED_MAX_MILESTONES]; /* strictly increasing epochs */
    float factors[LT_SCHED_MAX_MILESTONES];
} lt_schedule;

/* LT_ERR_ARG naming the field if the schedule is inconsistent. */
lt_status lt_schedule_check(const lt_schedule *s);
float lt_schedule_lr(const lt_schedule *s, int epoch, int64_t iter_in_epoch, int64_t iters_per_epoch);

/* ---- MaxNorm: a constraint on classifier rows (src/optim/maxnorm.c) ---- */

/* r = min_c ‖w_c‖ + t · (max_c ‖w_c‖ − min_c ‖w_c‖) over the rows of W (C, D), in double
 * (the WB code's thresh = min + t · (max − min) of the stage-start norms). */
double lt_maxnorm_radius(const float *w, int64_t C, int64_t D, double t);
/* The projection of projected gradient descent: every row with ‖w_c‖ > r is rescaled to
 * norm r (w_c ← w_c · r / ‖w_c‖); rows with ‖w_c‖ <= r are left bit-identical. The bias is
 * not a row of W and is never touched. Returns how many rows were rescaled. */
int64_t lt_maxnorm_project(float *w, int64_t C, int64_t D, double r);

#endif
