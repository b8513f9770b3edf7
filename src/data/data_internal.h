/* Private helpers shared by the dataset readers. */
#ifndef LT_DATA_INTERNAL_H
#define LT_DATA_INTERNAL_H

#include "longtail/data.h"

#include <stdio.h>

/* Size in bytes of a regular file, or -1 (errno set) if it cannot be stat'ed. */
int64_t lt_data_file_size(const char *path);

/* Reads exactly n bytes at the current position of f; the error names path and offset. */
lt_status lt_data_read_exact(FILE *f, const char *path, int64_t offset, void *buf, int64_t n);

/* Allocates ds->class_names for n classes: copies of names[k], or "0".."C-1" if names is
 * NULL. Sets ds->n_classes. */
lt_status lt_data_set_class_names(lt_dataset *ds, int32_t n_classes, const char *const *names);

/* Allocates images (n*h*w*c bytes) and labels for n images; sets the shape fields. */
lt_status lt_data_alloc_images(lt_dataset *ds, int64_t n, int64_t h, int64_t w, int64_t c);

/* A string like "gzip-compressed" path check: 1 if the file starts with 1f 8b. */
int lt_data_is_gzip(FILE *f);

/* Joins a and b with one '/' into a fresh lt_malloc'ed string (NULL on out-of-memory). */
char *lt_data_path_join(const char *a, const char *b);

#endif
