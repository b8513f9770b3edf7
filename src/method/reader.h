/* Internal to src/method: typed reads of recipe keys, shared by every file that reads a
 * part of a recipe (recipe.c, stage_loss.c). Each read marks its key used (so unknown keys
 * are reported at the end), checks the value's range, and on a bad value records
 * LT_ERR_CONFIG "file:line: section.key: <why>" in rd->st; once rd->st is set every later
 * read returns its default and does nothing, so a reader checks rd->st once. */
#ifndef LT_METHOD_READER_H
#define LT_METHOD_READER_H

#include "longtail/train.h"

typedef struct lt_mt_reader {
    lt_recipe *r;
    lt_status st;   /* the first error */
} lt_mt_reader;

/* s[0..n) without leading and trailing white space (moves *s, returns the new length);
 * whether the trimmed s[0..n) is `word`. */
size_t lt_mt_trim(const char **s, size_t n);
int lt_mt_trim_eq(const char *s, size_t n, const char *word);

/* LT_ERR_CONFIG "<where section.key was given>: section.key: <message>". */
lt_status lt_mt_bad(const lt_recipe *r, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int lt_mt_has(const lt_mt_reader *rd, const char *sec, const char *key);
const char *lt_mt_get_str(lt_mt_reader *rd, const char *sec, const char *key, const char *def);
int64_t lt_mt_get_int(lt_mt_reader *rd, const char *sec, const char *key, int64_t def, int64_t lo, int64_t hi);
/* A number in [lo, hi] (hi_open: [lo, hi)). */
double lt_mt_get_num(lt_mt_reader *rd, const char *sec, const char *key, double def, double lo, double hi,
                     int hi_open);
int lt_mt_get_bool(lt_mt_reader *rd, const char *sec, const char *key, int def);
/* One of names[0..n): values[k] for names[k] (values NULL: k itself); the message lists
 * the names. */
int lt_mt_get_enum(lt_mt_reader *rd, const char *sec, const char *key, const char *def, const char *const *names,
                   const int *values, int n);

#endif
