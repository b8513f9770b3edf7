/* Shared test helpers: one copy of code several test files need, so a fix lands once.
 * - tu_owned_new / tu_owned_free: a tensor with caller-owned (calloc'd) data and grad
 *   buffers and requires_grad set; gradcheck needs grad buffers that outlive the arena.
 *   The tensor does not own its name (keep the string alive). tu_owned_from also copies
 *   numel floats of initial data.
 * - tu_fixture_get / tu_fixture_input_grads: PyTorch fixture lookup ("<case>.<what>" in a
 *   safetensors file, dtype and element count checked) and the comparison of every input's
 *   gradient with the fixture's "<case>.gin<i>"; failures are reported at the caller's
 *   file:line and name the fixture entry.
 * - tu_gradcheck_ok: reports an lt_gradcheck outcome (error, wrong gradients, nothing
 *   checked) at the caller's file:line.
 * - tu_slurp: a whole file dir/name, read with lt_file_read (free with lt_free).
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
lt_tensor *tu_owned_from(const char *name, int ndim, const int64_t *shape, const float *data);
void tu_owned_free(lt_tensor *t);

/* The data of fixture entry "<c>.<what>" if it exists with dtype dt and numel elements;
 * otherwise fails the test (at file:line, naming the entry and what is wrong) and returns NULL. */
const void *tu_fixture_get_at(const char *file, int line, const lt_safetensors *st, const char *c,
                              const char *what, lt_dtype dt, int64_t numel);
#define tu_fixture_get(st, c, what, dt, numel) tu_fixture_get_at(__FILE__, __LINE__, st, c, what, dt, numel)
/* Entry "<c>.<what>" or NULL, unchecked (for entries whose shape the fixture decides). */
const lt_st_entry *tu_fixture_entry(const lt_safetensors *st, const char *c, const char *what);

/* After a backward pass: in[i]->grad against F32 fixture "<c>.gin<i>" for i < n_in, with
 * CHECK_CLOSE's |a-b| <= atol + rtol·|b|, labelled "<c> grad of input <i>". */
void tu_fixture_input_grads_at(const char *file, int line, const lt_safetensors *st, const char *c,
                               lt_tensor *const *in, int n_in, double atol, double rtol);
#define tu_fixture_input_grads(st, c, in, n_in, atol, rtol) \
    tu_fixture_input_grads_at(__FILE__, __LINE__, st, c, in, n_in, atol, rtol)

/* Fails the test (at file:line, prefixed with name) if lt_gradcheck returned an error,
 * found wrong gradients or checked nothing. Returns 1 if none of these. */
int tu_gradcheck_ok_at(const char *file, int line, const char *name, lt_status st, const lt_gradcheck_result *res);
#define tu_gradcheck_ok(name, st, res) tu_gradcheck_ok_at(__FILE__, __LINE__, name, st, res)

/* Contents of dir/name (NUL-terminated by lt_file_read), its length in *n if n is not NULL;
 * NULL if it cannot be read. Free with lt_free. */
char *tu_slurp(const char *dir, const char *name, int64_t *n);
/* Counts the tensors that differ between checkpoints p1 and p2: those whose name starts
 * with prefix into *in, the others into *out; 0 if a file cannot be read or a tensor is
 * missing or resized. */
int tu_ckpt_diff(const char *p1, const char *p2, const char *prefix, int *in, int *out);

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
