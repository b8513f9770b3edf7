/* Internal to src/method: the method table. A method is a row of hooks: the recipe reader
 * calls one at parse time (the method's keys), the trainer the others at fixed points of
 * a stage — begin, the loss of a batch, after each optimizer step, after each epoch,
 * post-hoc before the stage's final evaluation — so neither recipe.c nor the loop
 * (train.c) holds a method's code. Rows run in table order at every point; a row whose `active`
 * says no for the stage is skipped. docs/architecture.md, "How to add a method". */
#ifndef LT_METHOD_METHODS_H
#define LT_METHOD_METHODS_H

#include "longtail/train.h"
#include "reader.h"

/* What the hooks see of the stage in progress (owned by the trainer; one per seed). */
typedef struct lt_mt_stage {
    const lt_recipe *r;
    const lt_stage_config *sc;
    int k;                           /* 0-based stage */
    uint64_t seed;                   /* the run's seed */
    lt_model *model;                 /* the trained model (role student) */
    lt_ctx *ctx;                     /* its context */
    lt_model *teacher;               /* role teacher ([model] teacher), frozen; NULL without */
    lt_ctx *teacher_ctx;             /* the teacher's context (evaluation mode, no gradient) */
    const int64_t *train_counts;     /* [C] */
    float *class_weight;             /* [C] scratch for the epoch's class weights */
    const lt_dataset *val;           /* NULL or empty: no validation set */
    const lt_augment_config *norm;   /* evaluation normalization */
    /* state of the methods, kept across a resume by the trainer */
    double maxnorm_r;                /* MaxNorm's radius this stage (NaN: none) */
    lt_posthoc ph_kind;              /* the post-hoc transform chosen at the stage's end */
    double ph_tau;
} lt_mt_stage;

/* One training batch as the loss hooks see it. */
typedef struct lt_mt_batch {
    lt_tensor *x;                    /* the augmented, normalized input (B, H, W, C) */
    const lt_outputs *out;           /* features, each head's logits, combined logits */
    const int32_t *labels;           /* [B] */
    int64_t epoch, batch;            /* 0-based, within the stage */
} lt_mt_batch;

typedef struct lt_method {
    const char *name;
    /* at parse time: reads the method's keys of stage section S into st (errors in rd:
     * file:line, section.key); runs for every stage, before `active` can be asked */
    void (*read)(lt_mt_reader *rd, const char *S, lt_stage_config *st);
    int (*active)(const lt_stage_config *sc);                        /* NULL: every stage */
    /* fresh: the stage starts now (not a resume in its middle) */
    lt_status (*begin)(lt_mt_stage *s, int fresh);
    /* loss: what the rows before produced (NULL for the first); returns the new loss, or
     * NULL with the error in s->ctx */
    lt_tensor *(*loss)(lt_mt_stage *s, const lt_mt_batch *b, lt_tensor *loss);
    void (*after_step)(lt_mt_stage *s);
    void (*after_epoch)(lt_mt_stage *s);
    lt_status (*posthoc)(lt_mt_stage *s);
} lt_method;

enum {
    LT_METHOD_REINIT_CLASSIFIER = 0, /* cRT / LWS: the head re-drawn at the stage start */
    LT_METHOD_LOSS,                  /* the stage's loss (stage_loss.c), mean over heads */
    LT_METHOD_MAXNORM,               /* weight balancing's MaxNorm (constraint.c) */
    LT_METHOD_KD,                    /* (1 − kd) · loss + kd · KD(teacher) */
    LT_METHOD_POSTHOC,               /* τ-norm / logit adjustment at the stage's end */
    LT_N_METHODS
};
extern const lt_method lt_methods[LT_N_METHODS];

/* Runs hook `read` of every row in table order (stops at the first error in rd). */
void lt_mt_methods_read(lt_mt_reader *rd, const char *S, lt_stage_config *st);
/* Runs hook `begin` / `loss` / ... of every active row in table order. */
lt_status lt_mt_methods_begin(lt_mt_stage *s, int fresh);
lt_tensor *lt_mt_methods_loss(lt_mt_stage *s, const lt_mt_batch *b);
void lt_mt_methods_after_step(lt_mt_stage *s);
void lt_mt_methods_after_epoch(lt_mt_stage *s);
lt_status lt_mt_methods_posthoc(lt_mt_stage *s);

#endif
