/* Internal to src/method: the per-seed trainer (train.c), the run driver (run.c) and the
 * JSON tree helpers they share (jsontree.c). */
#ifndef LT_METHOD_INTERNAL_H
#define LT_METHOD_INTERNAL_H

#include "longtail/train.h"

/* What one lt_train call shares across its seeds: the clock, the work counters behind
 * the ETA, the stop-after-N-epochs budget. */
typedef struct lt_train_call {
    const lt_recipe *recipe;
    const lt_train_options *opt;
    double t0;                  /* monotonic seconds at the start */
    double train_s;             /* seconds spent in training steps */
    int64_t units_done;         /* training batches run in this call */
    int64_t units_left;         /* batches still to run (estimate) */
    int64_t units_per_seed;     /* batches of one whole run */
    int64_t epochs_trained;     /* epochs trained in this call */
    int stopped;                /* stop_after_epochs reached */
    int n_seeds;
} lt_train_call;

double lt_mt_now(void);   /* monotonic seconds */

/* Trains (or resumes) one seed in `dir` (which exists and holds config.ini). */
lt_status lt_mt_run_seed(lt_train_call *call, const lt_train_data *data, uint64_t seed, int seed_index,
                         const char *dir);
/* Training batches per epoch of stage k for a training set of n images. */
int64_t lt_mt_stage_batches(const lt_stage_config *sc, int64_t n);

/* ---- JSON trees (jsontree.c) ---- */
/* Writes a parsed tree back through a writer (numbers: integers exactly, others as the
 * shortest text that reads back to the same double). */
void lt_mt_json_write(lt_jw *w, const lt_json *j);
/* Mean and sample standard deviation (n - 1; 0 for one value) of every number in n trees
 * of the same shape: a number becomes {"mean": m, "std": s}, an array of numbers
 * {"mean": [...], "std": [...]}, objects and other arrays recurse, strings and booleans
 * are kept when all trees agree. Nulls (NaN) are left out of a mean. */
void lt_mt_json_summarize(lt_jw *w, const lt_json *const *trees, int n);

#endif
