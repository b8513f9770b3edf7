/* The in-memory dataset (uint8 NHWC + labels + class names), subsets, statistics, shared
 * file helpers, and lt_data_load: the whole protocol (read, split, subsample) in one call. */
#include "data/data_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

const char *const lt_fmnist_class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static const char *const mnist_class_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

void lt_dataset_free(lt_dataset *ds) {
    if (!ds) return;
    lt_free(ds->images);
    lt_free(ds->labels);
    if (ds->class_names)
        for (int32_t k = 0; k < ds->n_classes; k++) lt_free(ds->class_names[k]);
    lt_free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}

/* ---- helpers shared by the readers ---- */

int64_t lt_data_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

lt_status lt_data_read_exact(FILE *f, const char *path, int64_t offset, void *buf, int64_t n) {
    size_t got = fread(buf, 1, (size_t)n, f);
    if ((int64_t)got != n) {
        if (ferror(f))
            return lt_error(LT_ERR_IO, "%s: read error at byte offset %lld: %s", path,
                            (long long)(offset + (int64_t)got), strerror(errno));
        return lt_error(LT_ERR_FORMAT, "%s: truncated: file ends at byte offset %lld, expected %lld more bytes",
                        path, (long long)(offset + (int64_t)got), (long long)(n - (int64_t)got));
    }
    return LT_OK;
}

lt_status lt_data_set_class_names(lt_dataset *ds, int32_t n_classes, const char *const *names) {
    ds->class_names = lt_calloc((size_t)n_classes, sizeof(char *));
    if (!ds->class_names) return lt_error(LT_ERR_NOMEM, "dataset: out of memory for %d class names", n_classes);
    ds->n_classes = n_classes;
    for (int32_t k = 0; k < n_classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        ds->class_names[k] = lt_strdup(names ? names[k] : num);
        if (!ds->class_names[k]) return lt_error(LT_ERR_NOMEM, "dataset: out of memory for class names");
    }
    return LT_OK;
}

lt_status lt_data_alloc_images(lt_dataset *ds, int64_t n, int64_t h, int64_t w, int64_t c) {
    int64_t per = h * w * c, bytes;
    if (n < 0 || per <= 0 || __builtin_mul_overflow(n, per, &bytes) || (uint64_t)bytes > SIZE_MAX)
        return lt_error(LT_ERR_ARG, "dataset: %lld images of %lldx%lldx%lld do not fit in memory",
                        (long long)n, (long long)h, (long long)w, (long long)c);
    ds->images = lt_malloc((size_t)bytes);
    ds->labels = lt_malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!ds->images || !ds->labels)
        return lt_error(LT_ERR_NOMEM, "dataset: out of memory for %lld images (%lld bytes)",
                        (long long)n, (long long)bytes);
    ds->n = n;
    ds->h = h;
    ds->w = w;
    ds->c = c;
    return LT_OK;
}

int lt_data_is_gzip(FILE *f) {
    unsigned char m[2];
    size_t got = fread(m, 1, 2, f);
    rewind(f);
    return got == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

char *lt_data_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *p = lt_malloc(la + (size_t)slash + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    if (slash) p[la] = '/';
    memcpy(p + la + slash, b, lb + 1);
    return p;
}

/* ---- subsets and statistics ---- */

lt_status lt_dataset_subset(lt_dataset *dst, const lt_dataset *src, const int64_t *idx, int64_t n) {
    memset(dst, 0, sizeof *dst);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= src->n) {
            return lt_error(LT_ERR_ARG, "dataset subset: index %lld at position %lld is outside [0, %lld)",
                            (long long)idx[i], (long long)i, (long long)src->n);
        }
    lt_status st = lt_data_alloc_images(dst, n, src->h, src->w, src->c);
    if (st == LT_OK)
        st = lt_data_set_class_names(dst, src->n_classes, (const char *const *)src->class_names);
    if (st != LT_OK) {
        lt_dataset_free(dst);
        return st;
    }
    int64_t per = src->h * src->w * src->c;
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst->images + i * per, src->images + idx[i] * per, (size_t)per);
        dst->labels[i] = src->labels[idx[i]];
    }
    return LT_OK;
}

void lt_dataset_class_counts(const lt_dataset *ds, int64_t *counts) {
    memset(counts, 0, (size_t)ds->n_classes * sizeof *counts);
    for (int64_t i = 0; i < ds->n; i++) counts[ds->labels[i]]++;
}

lt_status lt_dataset_channel_stats(const lt_dataset *ds, float *mean, float *std) {
    if (ds->n <= 0) return lt_error(LT_ERR_ARG, "channel statistics: the dataset is empty");
    if (ds->c > LT_DATA_MAX_CHANNELS)
        return lt_error(LT_ERR_ARG, "channel statistics: %lld channels, at most %d", (long long)ds->c,
                        LT_DATA_MAX_CHANNELS);
    /* Exact integer sums (a uint64 holds 255^2 * 2^40 pixels), so the result does not
     * depend on summation order or thread count. */
    uint64_t s[LT_DATA_MAX_CHANNELS] = {0}, s2[LT_DATA_MAX_CHANNELS] = {0};
    int64_t pixels = ds->n * ds->h * ds->w, c = ds->c;
    for (int64_t p = 0; p < pixels; p++)
        for (int64_t ch = 0; ch < c; ch++) {
            uint64_t v = ds->images[p * c + ch];
            s[ch] += v;
            s2[ch] += v * v;
        }
    for (int64_t ch = 0; ch < c; ch++) {
        double m = (double)s[ch] / (double)pixels;
        double var = (double)s2[ch] / (double)pixels - m * m;
        mean[ch] = (float)(m / 255.0);
        std[ch] = (float)(sqrt(var > 0 ? var : 0) / 255.0);
    }
    return LT_OK;
}

/* ---- names ---- */

static const char *const kind_names[] = {"fmnist", "mnist", "cifar10", "cifar100", "folder", "list"};

lt_status lt_dataset_kind_parse(const char *name, lt_dataset_kind *kind) {
    for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
        if (!strcmp(name, kind_names[k])) {
            *kind = (lt_dataset_kind)k;
            return LT_OK;
        }
    return lt_error(LT_ERR_ARG, "unknown dataset '%s' (expected fmnist, mnist, cifar10, cifar100, folder or list)", name);
}

const char *lt_dataset_kind_name(lt_dataset_kind kind) {
    return (unsigned)kind < sizeof kind_names / sizeof kind_names[0] ? kind_names[kind] : "?";
}

/* ---- the whole protocol ---- */

static lt_status read_source(const lt_data_spec *spec, lt_dataset *train, lt_dataset *test) {
    lt_image_options opt = spec->image;
    if (opt.h <= 0) opt.h = 32;
    if (opt.w <= 0) opt.w = 32;
    if (opt.c <= 0) opt.c = 3;
    const char *root = spec->root;
    lt_status st = LT_OK;
    switch (spec->kind) {
    case LT_DATASET_FMNIST:
    case LT_DATASET_MNIST: {
        if (!root) {
            if (spec->kind == LT_DATASET_MNIST) return lt_error(LT_ERR_ARG, "mnist: no root folder given");
            root = LT_FMNIST_DEFAULT_ROOT;
        }
        const char *const *names = spec->kind == LT_DATASET_FMNIST ? lt_fmnist_class_names : mnist_class_names;
        static const char *const files[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
        char *p[4] = {0};
        for (int k = 0; k < 4 && st == LT_OK; k++) {
            /* Debian ships the .gz files; accept uncompressed copies too. */
            char name[64];
            snprintf(name, sizeof name, "%s.gz", files[k]);
            p[k] = lt_data_path_join(root, name);
            if (p[k] && lt_data_file_size(p[k]) < 0) {
                lt_free(p[k]);
                p[k] = lt_data_path_join(root, files[k]);
            }
            if (!p[k]) st = lt_error(LT_ERR_NOMEM, "data: out of memory");
        }
        if (st == LT_OK) st = lt_dataset_read_idx(train, p[0], p[1], 10, names);
        if (st == LT_OK) st = lt_dataset_read_idx(test, p[2], p[3], 10, names);
        for (int k = 0; k < 4; k++) lt_free(p[k]);
        return st;
    }
    case LT_DATASET_CIFAR10:
    case LT_DATASET_CIFAR100: {
        if (!root) return lt_error(LT_ERR_ARG, "%s: no root folder given", lt_dataset_kind_name(spec->kind));
        int32_t c = spec->kind == LT_DATASET_CIFAR10 ? 10 : 100;
        st = lt_dataset_read_cifar(train, root, c, 1);
        if (st == LT_OK) st = lt_dataset_read_cifar(test, root, c, 0);
        return st;
    }
    case LT_DATASET_FOLDER: {
        if (!root) return lt_error(LT_ERR_ARG, "folder: no root folder given");
        char *tr = lt_data_path_join(root, "train");
        char *te = lt_data_path_join(root, "test");
        if (!tr || !te) st = lt_error(LT_ERR_NOMEM, "data: out of memory");
        struct stat s;
        if (st == LT_OK && stat(tr, &s) == 0 && S_ISDIR(s.st_mode)) {
            st = lt_dataset_read_folder(train, tr, &opt, NULL);
            if (st == LT_OK && stat(te, &s) == 0 && S_ISDIR(s.st_mode))
                st = lt_dataset_read_folder(test, te, &opt, train);
        } else if (st == LT_OK) {
            st = lt_dataset_read_folder(train, root, &opt, NULL);
        }
        lt_free(tr);
        lt_free(te);
        return st;
    }
    case LT_DATASET_LIST: {
        if (!spec->train_list) return lt_error(LT_ERR_ARG, "list: no training list file given");
        st = lt_dataset_read_list(train, root ? root : ".", spec->train_list, &opt, 0);
        if (st == LT_OK && spec->test_list)
            st = lt_dataset_read_list(test, root ? root : ".", spec->test_list, &opt, train->n_classes);
        return st;
    }
    }
    return lt_error(LT_ERR_ARG, "unknown dataset kind %d", (int)spec->kind);
}

/* A dataset with no images but the shape and class names of `like` (a missing test set). */
static lt_status empty_like(lt_dataset *ds, const lt_dataset *like) {
    static const int64_t none = 0;
    return lt_dataset_subset(ds, like, &none, 0);
}

lt_status lt_data_load(lt_data *d, const lt_data_spec *spec) {
    memset(d, 0, sizeof *d);
    lt_dataset src = {0};
    lt_status st = read_source(spec, &src, &d->test);
    if (st == LT_OK && d->test.n_classes == 0) st = empty_like(&d->test, &src);
    if (st == LT_OK) {
        d->source_counts = lt_malloc((size_t)src.n_classes * sizeof(int64_t));
        if (!d->source_counts) st = lt_error(LT_ERR_NOMEM, "data: out of memory");
        else lt_dataset_class_counts(&src, d->source_counts);
    }
    if (st == LT_OK) st = lt_split_make(&d->split, &src, &spec->longtail);
    if (st == LT_OK) st = lt_dataset_subset(&d->train, &src, d->split.train_idx, d->split.n_train);
    if (st == LT_OK) st = lt_dataset_subset(&d->val, &src, d->split.val_idx, d->split.n_val);
    lt_dataset_free(&src);
    if (st != LT_OK) lt_data_free(d);
    return st;
}

void lt_data_free(lt_data *d) {
    if (!d) return;
    lt_dataset_free(&d->train);
    lt_dataset_free(&d->val);
    lt_dataset_free(&d->test);
    lt_split_free(&d->split);
    lt_free(d->source_counts);
    memset(d, 0, sizeof *d);
}
