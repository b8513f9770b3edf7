/* longtail eval: metrics, Many/Medium/Few groups, weight/feature analysis (FDR), post-hoc
 * transforms (τ-norm, logit adjustment, τ sweep) and the JSON form of an evaluation.
 *
 * What it is for. The trainer, `longtail eval` and `longtail report` all score a model the
 * same way: feed batches of logits (B, C) and int32 labels to an lt_metrics accumulator,
 * then lt_metrics_finalize fills an lt_eval_result (top-1, top-k, per-class and balanced
 * accuracy, Many/Medium/Few, confusion matrix, ECE, NLL). Analysis functions add
 * per-class weight norms, per-class feature norms, FDR and batch-norm scale statistics to
 * the same result, and lt_eval_result_write_json writes it as the fields of a JSON object
 * (metrics.json). docs/metrics.md explains every number for a newcomer.
 *
 * Conventions. Accuracies are fractions in [0, 1] (the CLI prints percentages). A value
 * that is undefined (a group with no classes, a class with no test images, an analysis not
 * run) is NaN in C and null in JSON. Argmax ties go to the lowest class index, everywhere.
 * All sums are in double precision, in a fixed order: the same inputs in the same batch
 * order give bit-identical results for any thread count.
 *
 * Ownership. lt_metrics objects are created with lt_metrics_new and released with
 * lt_metrics_free. An lt_eval_result is a caller-owned value: lt_eval_result_init it,
 * let the library fill it, lt_eval_result_free it; every array inside it is owned by the
 * result (allocated with lt_malloc) and freed by lt_eval_result_free. Functions that take
 * an `out` array write into caller memory of the documented size and allocate nothing the
 * caller must free. All _free functions accept NULL.
 *
 * Errors. Bad shapes, labels out of range, non-finite logits, negative counts: LT_ERR_ARG
 * with a message naming the function, the index and expected vs got. A singular
 * within-class scatter in FDR is an error (LT_ERR_ARG), never a NaN result. */
#ifndef LONGTAIL_EVAL_H
#define LONGTAIL_EVAL_H

#include "core.h"

/* ======================================================================================
 * Many / Medium / Few groups, chosen from TRAINING counts
 * ====================================================================================== */

/* Group indices: index group_acc / group_size and the values of group_of_class. */
enum lt_eval_group {
    LT_EVAL_MANY = 0,
    LT_EVAL_MEDIUM = 1,
    LT_EVAL_FEW = 2,
    LT_EVAL_GROUPS = 3
};

typedef enum lt_group_mode {
    /* many: n_c > many_above; few: n_c < few_below; medium otherwise. The field's
     * standard (Liu et al. 2019, OLTR) is many_above = 100, few_below = 20, so counts of
     * exactly 100 or 20 are medium. */
    LT_GROUP_BY_THRESHOLD = 0,
    /* Rank thirds, for datasets with few classes: classes sorted by training count
     * (descending, ties by lower class index first); the first floor(C/3) are many, the
     * last floor(C/3) few, the rest medium. C = 10 gives 3 / 4 / 3, C = 100 33 / 34 / 33. */
    LT_GROUP_BY_RANK = 1,
    /* THRESHOLD if it leaves no group empty, else RANK. The mode actually used is what
     * gets reported. */
    LT_GROUP_BY_AUTO = 2
} lt_group_mode;

typedef struct lt_group_spec {
    lt_group_mode mode;
    int64_t many_above;   /* THRESHOLD: many if n_c > many_above (default 100) */
    int64_t few_below;    /* THRESHOLD: few if n_c < few_below (default 20) */
} lt_group_spec;

/* THRESHOLD mode with 100 / 20. */
lt_group_spec lt_group_spec_default(void);
/* "threshold" / "rank" / "auto" ("?" for an invalid value); and the inverse (LT_ERR_ARG
 * naming the word if unknown). */
const char *lt_group_mode_name(lt_group_mode mode);
lt_status lt_group_mode_parse(const char *name, lt_group_mode *mode);
/* "many" / "medium" / "few" ("?" for an invalid value). */
const char *lt_group_name(int group);

/* group_of_class[c] = LT_EVAL_MANY / MEDIUM / FEW of class c, from the TRAINING counts
 * class_counts[C]. spec NULL means lt_group_spec_default(). *used (may be NULL) receives
 * the mode applied (THRESHOLD or RANK; differs from spec->mode only for AUTO). Errors:
 * C < 1, a negative count, an unknown mode, few_below > many_above + 1 (a class could be
 * both many and few). */
lt_status lt_eval_groups_assign(const int64_t *class_counts, int64_t num_classes,
                                const lt_group_spec *spec, int32_t *group_of_class,
                                lt_group_mode *used);

/* ======================================================================================
 * The result of one evaluation (one model, one split)
 * ====================================================================================== */

#define LT_ECE_BINS 15

typedef enum lt_posthoc {
    LT_POSTHOC_NONE = 0,
    LT_POSTHOC_TAU_NORM,    /* w_c / ‖w_c‖^τ on the classifier rows */
    LT_POSTHOC_LA_ADD,      /* z − τ log π */
    LT_POSTHOC_LA_MUL,      /* z_c · π_c^(−τ) */
    LT_POSTHOC_COUNT
} lt_posthoc;
/* "none", "tau_norm", "la_additive", "la_multiplicative" ("?" for an invalid value). */
const char *lt_posthoc_name(lt_posthoc kind);

/* Per-class feature norms and FDR of one set of features (see lt_eval_features). */
typedef struct lt_feature_stats {
    double *class_norm;   /* [C] mean ‖f_i‖ over images of class c; NaN if none; NULL if not run */
    double fdr;           /* tr(S_W⁻¹ S_B); NaN if not run or if it failed */
    int64_t fdr_dims;     /* feature dimensions used (constant ones dropped); 0 if not run */
    lt_status fdr_status; /* LT_OK, or why fdr is NaN */
    char fdr_error[200];  /* the error message when fdr_status != LT_OK, else "" */
} lt_feature_stats;

typedef struct lt_eval_result {
    int64_t num_classes;          /* C */
    int64_t num_samples;          /* N images scored */

    /* Metrics (lt_metrics_finalize). */
    double top1;                  /* overall accuracy: correct / N */
    double topk;                  /* top-k accuracy, k = topk_k (5 capped at C) */
    int64_t topk_k;
    double balanced_acc;          /* mean of per_class_acc over classes with test images */
    double group_acc[LT_EVAL_GROUPS];   /* many / medium / few: mean per-class accuracy */
    int64_t group_size[LT_EVAL_GROUPS]; /* classes in each group */
    lt_group_spec groups;         /* how the groups were chosen (mode: the one used) */
    double ece;                   /* expected calibration error, LT_ECE_BINS bins */
    double nll;                   /* mean −log softmax(z)_y */
    int has_probs;                /* 0 if any batch was predictions only: topk, ece, nll NaN */

    int64_t *class_counts;        /* [C] training counts the groups came from */
    int32_t *class_group;         /* [C] LT_EVAL_* */
    int64_t *class_samples;       /* [C] test images per class */
    double *per_class_acc;        /* [C] NaN for a class with no test images */
    int64_t *confusion;           /* [C*C] row = true class, column = predicted */

    /* Analysis (optional; NULL / NaN when not run). */
    double *weight_norms;         /* [C] ‖w_c‖ of the classifier rows */
    lt_feature_stats features;    /* features of the evaluated split */
    lt_feature_stats train_features; /* features of the training set */
    double bn_scale_mean, bn_scale_std;  /* over all batch-norm γ; NaN if none */
    int64_t bn_scale_count;

    /* Post-hoc transform applied before scoring, and its τ (NaN for none). */
    lt_posthoc posthoc;
    double posthoc_tau;
} lt_eval_result;

/* Empty result: pointers NULL, numbers NaN, posthoc NONE. */
void lt_eval_result_init(lt_eval_result *r);
/* Frees the arrays and re-initializes r. NULL is a no-op. */
void lt_eval_result_free(lt_eval_result *r);
/* group_acc by name, for tables. */
static inline double lt_eval_many(const lt_eval_result *r) { return r->group_acc[LT_EVAL_MANY]; }
static inline double lt_eval_medium(const lt_eval_result *r) { return r->group_acc[LT_EVAL_MEDIUM]; }
static inline double lt_eval_few(const lt_eval_result *r) { return r->group_acc[LT_EVAL_FEW]; }

/* ======================================================================================
 * Metrics accumulator
 * ====================================================================================== */

typedef struct lt_metrics lt_metrics;

/* An accumulator for C classes; top-k uses k = min(topk, C) (topk <= 0 means 5). */
lt_status lt_metrics_new(int64_t num_classes, int topk, lt_metrics **out);
void lt_metrics_free(lt_metrics *m);
void lt_metrics_reset(lt_metrics *m);
int64_t lt_metrics_count(const lt_metrics *m);   /* images added so far */

/* Adds a batch: logits (B, C) row-major, labels[B] in [0, C). Prediction = argmax with
 * ties to the lowest index; a label is in the top k when fewer than k classes beat it
 * (a larger logit, or an equal logit at a lower index). Non-finite logits are an error;
 * on any error nothing is added. */
lt_status lt_metrics_add_logits(lt_metrics *m, const float *logits, const int32_t *labels,
                                int64_t batch);
/* Adds a batch of predicted classes only (e.g. from the binary runtime). top-k, ECE and
 * NLL then become NaN, since they need scores. */
lt_status lt_metrics_add_preds(lt_metrics *m, const int32_t *preds, const int32_t *labels,
                               int64_t batch);
/* dst += src (same C and k), e.g. to combine shards; deterministic for a fixed order. */
lt_status lt_metrics_merge(lt_metrics *dst, const lt_metrics *src);

/* Fills res (previous contents freed; res must be initialized) from what was added.
 * class_counts[C] are the TRAINING counts that define Many/Medium/Few (spec NULL = the
 * default thresholds). Analysis fields of res are left NaN / NULL. At least one image
 * must have been added. */
lt_status lt_metrics_finalize(const lt_metrics *m, const int64_t *class_counts,
                              const lt_group_spec *spec, lt_eval_result *res);

/* ======================================================================================
 * Analysis (Hasegawa & Sato, ICLR 2024; docs/metrics.md)
 * ====================================================================================== */

/* norms[c] = ‖W[c, :]‖₂ for a classifier weight W (C, D), summed in double. */
lt_status lt_eval_weight_norms(const float *weight, int64_t num_classes, int64_t dim,
                               double *norms);

/* class_norm[c] = mean over images i of class c of ‖x_i‖₂; NaN for a class with none.
 * features (N, D) row-major, labels[N] in [0, C). */
lt_status lt_eval_feature_norms(const float *features, const int32_t *labels, int64_t n,
                                int64_t dim, int64_t num_classes, double *class_norm);

/* Fisher discriminant ratio FDR = tr(S_W⁻¹ S_B) of features (N, D) with labels in [0, C):
 *   S_B = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ,  S_W = Σ_c Σ_{i∈c} (x_i − μ_c)(x_i − μ_c)ᵀ,
 * μ the mean of all N features. Double precision. Dimensions whose value is the same for
 * all N images are dropped first (*dims_used, may be NULL, says how many remain). The
 * trace is Σ_c n_c d_cᵀ S_W⁻¹ d_c with d_c = μ_c − μ, from one linear solve with the C
 * vectors d_c as right-hand sides: Cholesky, or LU with partial pivoting if S_W is not
 * numerically positive definite. A singular S_W (e.g. fewer images than dimensions), no
 * non-constant dimension, or fewer than 2 classes with images: LT_ERR_ARG. */
lt_status lt_eval_fdr(const float *features, const int32_t *labels, int64_t n, int64_t dim,
                      int64_t num_classes, double *fdr, int64_t *dims_used);

/* Both of the above into st (class_norm allocated, owned by st; previous contents freed,
 * so st must be initialized: lt_eval_result_init does it for a result's two stats).
 * An FDR failure caused by the data (singular S_W, constant features) is not an error of
 * this function: it is recorded as fdr = NaN, fdr_status and fdr_error, so a metrics file
 * still gets written; bad arguments and out-of-memory are errors. */
lt_status lt_eval_features(const float *features, const int32_t *labels, int64_t n,
                           int64_t dim, int64_t num_classes, lt_feature_stats *st);
void lt_feature_stats_free(lt_feature_stats *st);   /* frees class_norm, resets to "not run" */

/* Sets r->weight_norms from W (C, D); C must equal r->num_classes when that is set. */
lt_status lt_eval_result_set_weight_norms(lt_eval_result *r, const float *weight,
                                          int64_t num_classes, int64_t dim);

/* Mean and population standard deviation (divide by n) of n batch-norm scales γ, all
 * layers concatenated. n == 0 gives NaN, NaN (a model with no batch norm). */
lt_status lt_eval_bn_scale_stats(const float *gamma, int64_t n, double *mean, double *std);

/* Sets r->bn_scale_mean, bn_scale_std (lt_eval_bn_scale_stats) and bn_scale_count = n. */
lt_status lt_eval_result_set_bn_scales(lt_eval_result *r, const float *gamma, int64_t n);

/* ======================================================================================
 * Post-hoc transforms (docs/metrics.md, "Post-hoc transforms and choosing τ")
 * ====================================================================================== */

/* τ-norm (Kang et al. 2020): out[c] = w_c / ‖w_c‖^τ for W (C, D). τ = 0 is the identity,
 * τ = 1 the L2-norm classifier. A zero row stays zero. out may equal weight. */
lt_status lt_posthoc_tau_norm(const float *weight, int64_t num_classes, int64_t dim,
                              double tau, float *out);

/* Logit adjustment with priors π_c = n_c / Σ n (training counts, all > 0):
 *   LT_POSTHOC_LA_ADD: out = z − τ log π_c  (Menon et al. 2021, post-hoc form)
 *   LT_POSTHOC_LA_MUL: out = z_c · π_c^(−τ)  (Hasegawa & Sato 2024)
 * logits (B, C); out may equal logits. Other kinds: LT_ERR_ARG. */
lt_status lt_posthoc_logit_adjust(const float *logits, int64_t batch, int64_t num_classes,
                                  const int64_t *class_counts, lt_posthoc kind, double tau,
                                  float *out);

/* The default τ grid: 0, 0.1, ..., 2.0 (τ_i = i / 10, so 0.3 is the double nearest 0.3). */
#define LT_TAU_GRID_N 21
void lt_tau_grid_default(double taus[LT_TAU_GRID_N]);

/* Computes the validation score (e.g. balanced accuracy) for one τ. A non-OK status stops
 * the sweep and is returned; a NaN score is skipped. */
typedef lt_status (*lt_tau_score_fn)(double tau, void *user, double *score);

/* Calls fn for every τ of taus[n] (taus NULL: the default grid, n ignored) in order and
 * returns the τ with the highest score; ties go to the smaller τ. scores (may be NULL)
 * receives every score, n entries (LT_TAU_GRID_N for the default grid). All scores NaN:
 * LT_ERR_ARG. */
lt_status lt_tau_sweep(lt_tau_score_fn fn, void *user, const double *taus, int64_t n,
                       double *scores, double *best_tau, double *best_score);

/* ======================================================================================
 * JSON
 * ====================================================================================== */

struct lt_jw;
/* Writes r as the key/value fields of the JSON object that w is inside (the caller opens
 * and closes the object), e.g.
 *   "num_classes": 10, "num_samples": 1000, "top1": 0.81, "top5": 0.99, "topk_k": 5,
 *   "balanced_acc": ..., "many": ..., "medium": ..., "few": ...,
 *   "groups": {"mode": "rank", "many_above": 100, "few_below": 20, "sizes": [3, 4, 3],
 *              "class_group": ["many", ...]},
 *   "per_class_acc": [...], "class_counts": [...], "class_samples": [...],
 *   "confusion": [[...], ...], "ece": ..., "ece_bins": 15, "nll": ...,
 *   "weight_norms": [...] | null, "feature_norms": [...] | null, "fdr": ..., "fdr_dims": ..,
 *   "fdr_error": "why fdr is null" | null,
 *   "train_feature_norms": ..., "train_fdr": ..., "train_fdr_dims": ..., "train_fdr_error": ...,
 *   "bn_scale_mean": ..., "bn_scale_std": ..., "bn_scale_count": ...,
 *   "posthoc": "none", "posthoc_tau": null
 * NaN is written as null. Errors are the writer's (sticky, returned by lt_jw_finish). */
void lt_eval_result_write_json(const lt_eval_result *r, struct lt_jw *w);

/* The same as one standalone object: *json (NUL-terminated, free with lt_free). */
lt_status lt_eval_result_to_json(const lt_eval_result *r, int indent, char **json,
                                 int64_t *len);

#endif
