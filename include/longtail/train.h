/* Training: recipes, stages, the training loop, the run directory, seeds and summaries.
 *
 * What it is for. A recipe (an INI file, docs/recipes.md) names the data protocol, the
 * model, one or more stages and how to evaluate. lt_train() runs the stages in order for
 * one or several seeds and writes a run directory:
 *
 *   config.ini          the resolved recipe (every override applied; threads explicit)
 *   log.jsonl           one JSON object per epoch (lr, loss, train accuracy, validation
 *                       metrics, images/s)
 *   metrics.json        one entry per finished stage: test metrics (top-1, top-5, Many /
 *                       Medium / Few, per-class accuracy, class counts, classifier weight
 *                       norms, confusion, ECE) and the same on validation under "val"
 *   stageK.safetensors  the model selected at the end of stage K (PyTorch names and
 *                       layouts, see checkpoint.h)
 *   last.safetensors    the resume state, rewritten atomically after every epoch: the
 *                       model, the optimizer state, the best-validation copy, the progress
 *   summary.json        with several seeds: mean and std of every number in metrics.json
 *                       over the seeds, each seed's run in seed<s>/
 *
 * A stage trains the parameters it names (all, the classifier, or name prefixes), with
 * its own optimizer, schedule, sampler, loss, batch-norm mode and epochs, and ends by
 * selecting the epoch with the best validation top-1 (or the last one; never the test
 * set) and evaluating it. Every file is written atomically; a killed run continues with
 * resume = 1 and ends with the same bytes as an uninterrupted one, for the same seed and
 * thread count. Randomness: initialization draws from (seed, LT_STREAM_INIT), the epoch
 * order from a sampler seeded by (seed, stage) and augmentation from (seed, stage) on
 * LT_STREAM_AUGMENT; the long-tailed subset is fixed by [data] data_seed, shared by all
 * training seeds (the published protocol).
 *
 * Ownership. lt_recipe owns its parsed config and every string its fields point to;
 * lt_recipe_free releases them. lt_train_outcome owns its arrays (lt_train_outcome_free).
 * The library prints nothing: progress goes to an optional callback. */
#ifndef LONGTAIL_TRAIN_H
#define LONGTAIL_TRAIN_H

#include "checkpoint.h"
#include "data.h"
#include "eval.h"
#include "io.h"
#include "loss.h"
#include "nn.h"
#include "optim.h"

#define LT_MAX_STAGES 16
#define LT_MAX_TRAIN_PREFIXES 16
/* weight_decay_groups items: optimizer groups 2 .. LT_MAX_PARAM_GROUPS-1 (0 and 1 are
 * the model's backbone and head, which keep the stage's weight_decay). */
#define LT_MAX_WD_GROUPS 6

/* ---------------------------------------------------------------- recipes */

/* The loss of a stage (`loss = ...`); formulas in docs/losses.md, the wiring in
 * src/method/stage_loss.c, the losses themselves in loss.h. */
typedef enum lt_loss_kind {
    LT_LOSS_CE = 0,            /* cross-entropy (optionally class-weighted, label-smoothed) */
    LT_LOSS_CB_SOFTMAX,        /* weighted CE, normalized by B or by Σ w (cb_norm) */
    LT_LOSS_CB_BCE,            /* the WB / IWB code's BCE on softmax */
    LT_LOSS_FOCAL,             /* softmax focal (focal_gamma) */
    LT_LOSS_CB_FOCAL,          /* sigmoid focal with class weights */
    LT_LOSS_CB_SIGMOID,        /* sigmoid BCE with class weights */
    LT_LOSS_LDAM,              /* LDAM on cosine logits (needs [model] head = cosine) */
    LT_LOSS_BALANCED_SOFTMAX,  /* CE(z + log π) */
    LT_LOSS_LA,                /* CE(z + τ log π) */
    LT_LOSS_EQL,               /* sigmoid equalization loss */
    LT_LOSS_SEQL,              /* softmax equalization loss (stochastic, LT_STREAM_LOSS) */
    LT_LOSS_LAS,               /* label-aware smoothing */
    LT_LOSS_IWB,               /* iwb_base loss + the IWB term */
} lt_loss_kind;

typedef enum lt_class_weighting {
    LT_WEIGHTS_NONE = 0,
    /* Class-balanced weights (Cui et al. 2019): w_c = (1 - β) / (1 - β^{n_c}), rescaled so
     * that Σ_c w_c = C. */
    LT_WEIGHTS_CB = 1,
    /* Deferred re-weighting (Cao et al. 2019): all ones before drw_epoch, CB weights from
     * it on (epochs of the stage counted from 0). */
    LT_WEIGHTS_DRW = 2,
} lt_class_weighting;

/* The settings of the stage loss besides its kind (defaults in docs/recipes.md). */
typedef struct lt_stage_loss_config {
    int cb_norm_weights;                 /* cb_softmax: 0 = Σ/B, 1 = Σ/Σw (PyTorch) */
    float focal_gamma;                   /* focal, cb_focal */
    int sigmoid_bias_init;               /* cb_focal/cb_sigmoid/eql: bias := −log(C−1) */
    float ldam_s, ldam_max_m;
    float la_tau;
    float eql_lambda;
    float seql_gamma, seql_lambda;
    float las_head, las_tail;
    lt_iwb_config iwb;
    lt_loss_kind iwb_base;               /* the loss the IWB term is added to */
    int64_t drw_epoch;                   /* class_weights = drw: first weighted epoch (0-based) */
    float wd_loss;                       /* λ of λ/2 Σ‖θ‖² over trainable weights; 0 = off */
    float feature_reg;                   /* coef of coef · mean‖f‖²/2; 0 = off */
    float kd;                            /* weight α of (1 − α) · loss + α · KD; 0 = off */
    float kd_temperature;                /* T of the KD term (default 4) */
} lt_stage_loss_config;

typedef enum lt_stage_posthoc {
    LT_STAGE_POSTHOC_NONE = 0,
    LT_STAGE_POSTHOC_L2NORM,   /* τ-norm with τ = 1 */
    LT_STAGE_POSTHOC_TAUNORM,  /* w_c / ‖w_c‖^τ (Kang et al. 2020) */
    LT_STAGE_POSTHOC_LA_ADD,   /* z − τ log π (Menon et al. 2021) */
    LT_STAGE_POSTHOC_LA_MUL,   /* z_c · π_c^−τ (Hasegawa & Sato 2024) */
} lt_stage_posthoc;
/* The recipe's spellings of the kinds, indexed by lt_stage_posthoc (`posthoc = taunorm`). */
#define LT_STAGE_POSTHOC_KINDS 5
extern const char *const lt_stage_posthoc_names[LT_STAGE_POSTHOC_KINDS];

typedef enum lt_epoch_select {
    LT_EPOCH_BEST_VAL = 0,     /* the epoch with the highest validation top-1 (first of ties) */
    LT_EPOCH_LAST = 1,
} lt_epoch_select;

typedef enum lt_normalize {
    LT_NORM_DATASET = 0,       /* mean / std of the long-tailed training set, per channel */
    LT_NORM_NONE = 1,          /* pixel / 255 */
    LT_NORM_CIFAR = 2,         /* the CIFAR constants (docs/data.md §4) */
    LT_NORM_CUSTOM = 3,        /* [data] mean, std */
} lt_normalize;

typedef struct lt_stage_config {
    char name[24];                       /* "stage1", ... */
    int64_t epochs;
    int64_t batch_size;
    int drop_last;
    lt_optim_config optim;
    lt_schedule schedule;                /* base_lr = lr; total_epochs = epochs */
    /* MaxNorm by projected gradient descent on the classifier rows (weight balancing):
     * maxnorm_every = step (after each optimizer step, the paper) or epoch (the code);
     * radius maxnorm_radius if > 0, else min + maxnorm_t · (max − min) of the row norms at
     * the stage's start. */
    int maxnorm;
    int maxnorm_every_epoch;
    double maxnorm_t, maxnorm_radius;
    /* Post-hoc transform at the stage's end (before its final evaluation); posthoc_tau NaN
     * = swept 0..2 by 0.1 on validation top-1. */
    lt_stage_posthoc posthoc;
    int posthoc_drop_bias;
    double posthoc_tau;
    /* Trainable parameters: train_all, or the weights matched by the prefixes (the word
     * "classifier" in the recipe stands for the model's head, "fc"). */
    int train_all;
    int n_train_prefixes;
    const char *train_prefixes[LT_MAX_TRAIN_PREFIXES];
    /* Weight decay per parameter group: the weights matched by wd_group_sel[i] (a name
     * prefix as in train, or a glob with '*' such as *.bias) decay by wd_group_value[i]
     * instead of the optimizer's weight_decay; the last matching item wins. */
    int n_wd_groups;
    const char *wd_group_sel[LT_MAX_WD_GROUPS];
    double wd_group_value[LT_MAX_WD_GROUPS];
    int reinit_classifier;               /* re-draw the head at the start of the stage (cRT) */
    lt_bn_mode bn;
    lt_loss_kind loss;
    lt_class_weighting class_weights;
    double cb_beta;
    float label_smoothing;
    lt_stage_loss_config lc;             /* the loss's own settings */
    lt_sampler_config sampler;           /* total_epochs = epochs */
    lt_epoch_select select;
} lt_stage_config;

/* A trained model role besides the student: a [model.NAME] section without checkpoint
 * (recipe.c, read_roles; docs/recipes.md, model roles). */
#define LT_MAX_ROLES 4
typedef struct lt_role_spec {
    char name[32];                       /* NAME of [model.NAME] */
    lt_model_config model;               /* [model] with the section's keys replaced */
    const char *init;                    /* its init checkpoint, or NULL */
    int init_strict;
} lt_role_spec;

typedef struct lt_recipe {
    char name[128];                      /* file name without folder and .ini: names runs */
    lt_data_spec data;                   /* strings point into cfg */
    int32_t crop_pad;                    /* zero padding before the random crop; 0 = none */
    int hflip;
    lt_normalize normalize;
    float mean[LT_DATA_MAX_CHANNELS], std[LT_DATA_MAX_CHANNELS];   /* CUSTOM */
    int n_mean;
    lt_model_config model;               /* [model] as parsed; input size and classes filled in by
                                            lt_recipe_model_config */
    int depth;                           /* model.depth: ResNet depth; mlp: hidden layers */
    float width;
    lt_bias_init bias_init;
    lt_head_kind head;                   /* [model] head: linear, cosine, etf, lws */
    const char *init;                    /* [model] init: a checkpoint to start from, or NULL */
    int init_strict;                     /* [model] init_strict: every tensor must match (default) */
    const char *teacher;                 /* the frozen teacher's checkpoint ([model] teacher or
                                            [model.teacher] checkpoint), or NULL */
    const char *teacher_sec, *teacher_key;   /* where it was given: model.teacher or
                                                model.teacher.checkpoint */
    lt_role_spec roles[LT_MAX_ROLES];    /* trained roles besides the student */
    int n_roles;
    int n_stages;
    lt_stage_config stages[LT_MAX_STAGES];
    lt_group_spec groups;                /* Many / Medium / Few */
    int64_t eval_batch_size;
    int topk;
    uint64_t seed;                       /* [run] seed: the first training seed */
    int seeds;                           /* [run] seeds: how many (seed, seed+1, ...) */
    int threads;                         /* [run] threads, resolved (never 0 after parsing) */

    lt_config *cfg;                      /* the resolved config, every key read */
    char *text;                          /* the file's text (for line numbers) */
    char **set_keys;                     /* "section.key" given as overrides */
    int n_set_keys;
    char **owned;                        /* other strings the fields point to */
    int n_owned;
} lt_recipe;

/* Parses a recipe from a file (path) or from text (name starts error messages), applies
 * the overrides "section.key=value" in order, reads and checks every key, and resolves
 * [run] threads = 0 to the number of cores. Unknown or duplicate keys, bad values and
 * inconsistent settings are LT_ERR_CONFIG naming file:line (or --set) and the key. On
 * error *r is left freed. */
lt_status lt_recipe_load(lt_recipe *r, const char *path, const char *const *sets, int n_sets);
lt_status lt_recipe_parse(lt_recipe *r, const char *text, const char *name, const char *const *sets,
                          int n_sets);
void lt_recipe_free(lt_recipe *r);   /* NULL is a no-op */
/* "recipe.ini:12" where section.key was given, "--set" for an override, the recipe's name
 * when absent. */
const char *lt_recipe_where(const lt_recipe *r, const char *section, const char *key, char *buf,
                            size_t n);
/* The resolved recipe as INI text (free with lt_free). */
lt_status lt_recipe_to_string(const lt_recipe *r, char **text);
/* 1 if the two resolved recipes are the same text (so every setting is equal). Otherwise
 * *line_a, *line_b (may be NULL) point to the first lines that differ (static storage). */
int lt_recipe_same(const lt_recipe *a, const lt_recipe *b, const char **line_a, const char **line_b);

/* Loads the recipe's data (lt_data_load with its [data] settings). */
lt_status lt_recipe_load_data(const lt_recipe *r, lt_data *d);
/* The model the recipe describes for images (h, w, c) and C classes. */
lt_model_config lt_recipe_model_config(const lt_recipe *r, int64_t h, int64_t w, int64_t c,
                                       int32_t num_classes);
/* The same for trained role `role` ([model.NAME]; NULL: the student). LT_ERR_CONFIG when
 * the recipe has no such role. */
lt_status lt_recipe_role_model_config(const lt_recipe *r, const char *role, int64_t h, int64_t w, int64_t c,
                                      int32_t num_classes, lt_model_config *out);
/* Evaluation normalization (no crop or flip) and training augmentation; DATASET
 * normalization uses the training set's statistics. */
lt_status lt_recipe_augment(const lt_recipe *r, const lt_dataset *train, lt_augment_config *aug);

/* ---------------------------------------------------------------- evaluation */

/* A started loader over ds in file order with normalization only (no crop, no flip), for
 * evaluation and feature collection (src/eval/evaluate.c). */
lt_status lt_eval_loader(const lt_dataset *ds, const lt_augment_config *norm, int64_t batch_size,
                         lt_loader **out);
/* Scores model m on ds (evaluation mode, batches of batch_size, normalization only):
 * metrics with Many / Medium / Few from the TRAINING counts train_counts[C], plus the
 * classifier's per-class weight norms. res must be initialized (lt_eval_result_init). */
lt_status lt_evaluate(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const lt_augment_config *norm,
                      int64_t batch_size, int topk, const int64_t *train_counts,
                      const lt_group_spec *groups, lt_eval_result *res);

/* Applies the post-hoc transform a stage checkpoint records in its metadata (`posthoc`,
 * `posthoc_tau`, `posthoc_bias`, written when the stage's final evaluation used one) to
 * the evaluation of m, whose weights were read from that checkpoint; without the keys the
 * transform is cleared. train_counts[C]: the recipe's training counts (logit adjustment).
 * *kind / *tau (either may be NULL) get what was applied (NONE / NaN if nothing). `path`
 * names the file in errors. */
struct lt_safetensors;
/* Reads that record without applying it: *kind (NONE, τ NaN, when there is none), *tau,
 * *drop_bias. A malformed record is LT_ERR_FORMAT naming `path`. */
lt_status lt_checkpoint_posthoc_read(const struct lt_safetensors *st, const char *path, lt_stage_posthoc *kind,
                                     double *tau, int *drop_bias);
lt_status lt_checkpoint_posthoc_apply(lt_model *m, const struct lt_safetensors *st, const char *path,
                                      const int64_t *train_counts, lt_posthoc *kind, double *tau);

/* Sets post-hoc transform `kind` on the evaluation of m (the weights stay untouched), as
 * a stage's end does: at the fixed τ `tau` (ignored for L2NORM, which is τ = 1), or, tau
 * NaN, at the τ of 0, 0.1, ..., 2 with the best top-1 on `val` (ties to the smaller τ;
 * val must have images). drop_bias: τ-norm drops the classifier bias. `name` names the
 * caller in errors. *kind_out / *tau_out get what was applied (NONE / NaN for none). */
lt_status lt_posthoc_choose(lt_ctx *ctx, lt_model *m, const char *name, lt_stage_posthoc kind, int drop_bias,
                            double tau, const lt_dataset *val, const lt_augment_config *norm, int64_t batch_size,
                            int topk, const int64_t *train_counts, const lt_group_spec *groups, lt_posthoc *kind_out,
                            double *tau_out);

/* ---------------------------------------------------------------- training */

typedef enum lt_train_event_kind {
    LT_TRAIN_SEED_BEGIN = 0,   /* a seed's run starts (or resumes) */
    LT_TRAIN_STAGE_BEGIN,
    LT_TRAIN_BATCH,            /* every few batches, with running loss / accuracy */
    LT_TRAIN_EPOCH_END,        /* after the validation pass and the checkpoint */
    LT_TRAIN_STAGE_END,        /* after the stage's test evaluation */
    LT_TRAIN_SEED_END,
    LT_TRAIN_NOTE,             /* something the user should read (note): what a non-strict
                                  model.init skipped, the teacher loaded */
} lt_train_event_kind;

typedef struct lt_train_event {
    lt_train_event_kind kind;
    const char *run_dir;                 /* this seed's run directory */
    uint64_t seed;
    int seed_index, n_seeds;
    int stage, n_stages;                 /* 1-based stage */
    const char *stage_name;
    int64_t epoch, epochs;               /* 1-based epoch within the stage */
    int64_t batch, batches;              /* batches done in this epoch */
    double lr, loss, train_acc;          /* running means over the epoch so far */
    double images_per_s;
    double elapsed_s;                    /* since lt_train started */
    double eta_s;                        /* remaining training of the whole call; NaN if unknown */
    double val_top1;                     /* EPOCH_END; NaN without a validation set */
    int is_best;                         /* EPOCH_END: the best validation top-1 so far */
    int64_t selected_epoch;              /* STAGE_END */
    const lt_eval_result *test, *val;    /* STAGE_END (val NULL without a validation set) */
    const char *note;                    /* NOTE: one line */
} lt_train_event;

typedef void (*lt_train_progress_fn)(const lt_train_event *ev, void *user);

typedef struct lt_train_options {
    const char *out_dir;                 /* the run directory (required) */
    int resume;                          /* continue the run in out_dir */
    int force;                           /* replace longtail's files in an existing out_dir */
    int64_t stop_after_epochs;           /* > 0: return after this many epochs trained in
                                          * this call, leaving a resumable run (tests) */
    lt_train_progress_fn progress;
    void *progress_user;
} lt_train_options;

/* Test metrics of one stage of one seed, for tables. */
typedef struct lt_stage_result {
    double top1, top5, many, medium, few, balanced_acc, val_top1;
    int64_t selected_epoch;              /* 1-based */
} lt_stage_result;

typedef struct lt_train_outcome {
    int finished;                        /* every stage of every seed is done */
    int n_seeds, n_stages;
    uint64_t *seeds;                     /* [n_seeds] */
    lt_stage_result *results;            /* [n_seeds * n_stages], seed-major */
    char group_mode[16];                 /* "rank" or "threshold": how Many/Medium/Few were made */
    int64_t group_size[3];
} lt_train_outcome;

void lt_train_outcome_free(lt_train_outcome *o);   /* NULL is a no-op */

/* The datasets a run trains and scores on (val may be empty: then the last epoch is
 * selected). Borrowed for the duration of the call. */
typedef struct lt_train_data {
    const lt_dataset *train, *val, *test;
} lt_train_data;

/* Runs the recipe: every seed of [run] seed/seeds, every stage, in opt->out_dir (seed
 * runs in out_dir/seed<s>/ when there are several), then summary.json. data NULL: loads
 * the recipe's data. outcome may be NULL. A run directory that exists and is not empty
 * is LT_ERR_EXISTS unless opt->force (which removes longtail's own files there and
 * nothing else) or opt->resume (which needs the same resolved recipe as its config.ini). */
lt_status lt_train(const lt_recipe *r, const lt_train_data *data, const lt_train_options *opt,
                   lt_train_outcome *outcome);

/* Reads a run directory's metrics.json files (one seed or seed<s>/ runs) into *outcome. */
lt_status lt_train_outcome_read(const char *run_dir, lt_train_outcome *outcome);

#endif
