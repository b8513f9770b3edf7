/* Internal to src/method: the per-seed trainer's state, shared by the training loop
 * (train.c) and the run-directory I/O (rundir.c). */
#ifndef LT_METHOD_TRAINER_H
#define LT_METHOD_TRAINER_H

#include "method_internal.h"
#include "methods.h"

#include "longtail/checkpoint.h"

typedef struct progress_state {
    int stage;               /* 0-based stage in progress (or the last one done) */
    int64_t epochs_done;     /* epochs of that stage finished */
    int stage_done;          /* its end (selection, evaluation, stageK file) is done */
    int64_t best_epoch;      /* 0-based; -1: none yet */
    double best_val;         /* validation top-1 of best_epoch */
    int64_t log_lines;       /* lines of log.jsonl at this state (a count, not a byte
                              * length, so the resume file itself is deterministic) */
} progress_state;

/* A trained role besides the student ([model.NAME], lt_role_spec): trained on the
 * student's batches with its own parameters, optimizer, method state and best-epoch
 * selection; its tensors in last.safetensors are under "role.NAME/". */
typedef struct lt_mt_role {
    const lt_role_spec *spec;
    lt_model model;
    lt_ctx *ctx;
    lt_optim optim;
    int have_optim;
    lt_snapshot best;
    int64_t best_epoch;              /* 0-based within the stage; -1: none yet */
    double best_val;
    lt_mt_stage ms;
    char prefix[48];                 /* "role.NAME/" */
    double loss_sum;                 /* the epoch so far */
    int64_t correct;
    double val_top1;                 /* the epoch's validation top-1 (NaN: none) */
} lt_mt_role;

typedef struct trainer {
    lt_train_call *call;
    const lt_recipe *r;
    const lt_train_data *data;
    const char *dir;
    uint64_t seed;
    int seed_index;
    lt_model model;
    lt_ctx *ctx;
    lt_model teacher;                /* [model] teacher (have_teacher), frozen, own context */
    int have_teacher;
    lt_ctx *teacher_ctx;
    lt_optim optim;
    int have_optim;
    lt_snapshot best;
    lt_augment_config aug;           /* training: crop/flip + normalization */
    lt_augment_config norm;          /* evaluation: normalization only */
    int64_t *train_counts;
    int32_t C;
    float *class_weight;             /* [C] or unused */
    progress_state ps;
    lt_mt_stage ms;                  /* what the method hooks see (methods.h), their state */
    lt_mt_role roles[LT_MAX_ROLES];  /* trained roles besides the student */
    int n_roles;
    char *stage_json[LT_MAX_STAGES]; /* compact JSON of each finished stage's entry */
    char path_buf[4096];
} trainer;

/* "<run dir>/<name>" in t->path_buf (valid until the next call). */
const char *lt_mt_path_in(trainer *t, const char *name);
/* Sends ev to the caller's progress callback (if any), with the seed and ETA filled in. */
void lt_mt_emit(trainer *t, lt_train_event *ev);
/* Sends a line of information for the user (LT_TRAIN_NOTE). */
void lt_mt_note(trainer *t, const char *note);
/* An event of stage k (0-based) with its name, the epoch count and NaN for "no value". */
lt_train_event lt_mt_stage_event(lt_train_event_kind kind, const lt_stage_config *sc, int k);

/* ---- run directory (rundir.c) ---- */
/* last.safetensors: model, optimizer, best-validation copy, progress (atomic). */
lt_status lt_mt_save_resume(trainer *t);
/* Appends one line to log.jsonl. */
lt_status lt_mt_append_log(trainer *t, const char *line);
/* stageK.safetensors (k 0-based) of the student as it is now, with its metadata; with ro,
 * stageK.NAME.safetensors of that role. */
lt_status lt_mt_save_stage_checkpoint(trainer *t, int k, int64_t selected_epoch, const lt_mt_role *ro);
/* metrics.json from the finished stages' entries. */
lt_status lt_mt_write_metrics(trainer *t);
/* Reads last.safetensors into the trainer (model, best copy, progress, log length);
 * *out keeps the file open for the optimizer state of a stage resumed in its middle. */
lt_status lt_mt_read_resume(trainer *t, lt_safetensors **out);

#endif
