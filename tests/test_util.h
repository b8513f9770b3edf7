/* Shared test helpers: one copy of code several test files need, so a fix lands once.
 * - tu_owned_new / tu_owned_free: a tensor with caller-owned (calloc'd) data and grad
 *   buffers and requires_grad set; gradcheck needs grad buffers that outlive the arena.
 *   The tensor does not own its name (keep the string alive).
 * - tu_make_quadrants / tu_gen: a synthetic 8x8 gray dataset of 4 classes where class k
 *   lights up quadrant k (plus noise), a pattern a small CNN separates in a few epochs,
 *   and the train/val/test split the training tests use. Freed with lt_dataset_free /
 *   tu_gen_free. */
#ifndef LT_TEST_UTIL_H
#define LT_TEST_UTIL_H

#include "longtail/longtail.h"
#include "longtail/train.h"

#include <stdint.h>

lt_tensor *tu_owned_new(const char *name, int ndim, const int64_t *shape);
void tu_owned_free(lt_tensor *t);

/* counts[k] images of class k (k = 0..3), pixel noise from stream LT_STREAM_TEST of seed;
 * class k is named "<name_prefix><k>". */
lt_status tu_make_quadrants(lt_dataset *ds, const int64_t *counts, uint64_t seed, const char *name_prefix);

typedef struct tu_gen {
    lt_dataset train, val, test;
    lt_train_data td;
} tu_gen;

/* Train {96, 48, 24, 12} (seed 1), val 4 per class (seed 2), test n_test_per_class per
 * class (seed 3). Returns 1 on success, 0 on failure. */
int tu_gen_init(tu_gen *g, int64_t n_test_per_class, const char *name_prefix);
void tu_gen_free(tu_gen *g);

#endif
