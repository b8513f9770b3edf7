/* Data: dataset readers, long-tail construction, the validation split, augmentation,
 * samplers and the batch loader thread. (Many / Medium / Few groups are in eval.h:
 * lt_eval_groups_assign.)
 *
 * An lt_dataset holds images in memory as uint8 NHWC (n, h, w, c) with int32 labels and
 * class names. It owns every buffer it points to; lt_dataset_free() releases them and
 * zeroes the struct (free of a zeroed struct is a no-op). Readers fill a zeroed or freed
 * dataset and, on error, leave it empty: a failed read allocates nothing that survives.
 *
 * Long-tail construction (lt_split_make) never copies images: it returns index lists
 * into the source dataset; lt_dataset_subset() materializes them. lt_data_load() does the
 * whole protocol in one call (read train + test, carve the balanced validation split,
 * subsample the training set to the profile) and is what the CLI and the trainer use.
 *
 * Randomness is explicit and derivable: the subsampling draws from (seed, LT_STREAM_DATA);
 * a sampler's order for epoch e comes from (seed, e) alone, and the augmentation of batch
 * b of epoch e from (seed, e, b) alone, so a run resumed at any epoch/batch sees exactly
 * the batches an uninterrupted run would have seen.
 *
 * The loader (lt_loader) runs one worker thread that prepares the next batch (gather,
 * augment, normalize into float NHWC) while the caller trains on the current one. It
 * borrows the dataset and the sampler: both must outlive it. Batch views it returns stay
 * valid until the next lt_loader_next/lt_loader_start/lt_loader_free call. Nothing here
 * prints; every failure is an lt_status with a message naming the file and the byte
 * offset or line. The protocol in prose: docs/data.md. */
#ifndef LONGTAIL_DATA_H
#define LONGTAIL_DATA_H

#include "core.h"

#define LT_DATA_MAX_CHANNELS 4

/* ---- datasets ---- */

typedef struct lt_dataset {
    uint8_t *images;       /* n*h*w*c bytes, NHWC, pixel values 0..255 */
    int32_t *labels;       /* n labels in [0, n_classes) */
    int64_t n, h, w, c;    /* c is 1 (gray) or 3 (RGB) */
    int32_t n_classes;
    char **class_names;    /* n_classes NUL-terminated strings */
} lt_dataset;

void lt_dataset_free(lt_dataset *ds);   /* releases everything and zeroes *ds; NULL ok */

/* The 10 Fashion-MNIST class names, index = label. */
extern const char *const lt_fmnist_class_names[10];

/* IDX files (MNIST / Fashion-MNIST), plain or gzip-compressed (detected by the gzip magic,
 * read with zlib): images of type ubyte with 3 dimensions (n, rows, cols), labels ubyte with
 * 1 dimension. Every label must be < n_classes. class_names: n_classes names, or NULL for
 * "0".."C-1". The size the header claims is checked against the file before allocating. */
lt_status lt_dataset_read_idx(lt_dataset *ds, const char *images_path, const char *labels_path,
                              int32_t n_classes, const char *const *class_names);

/* CIFAR binary version. n_classes 10: ROOT/data_batch_1..5.bin (train) or test_batch.bin,
 * records of 1 label byte + 3072 bytes (3 planes of 32x32, converted to HWC). n_classes 100:
 * ROOT/train.bin or test.bin, records of coarse byte + fine byte + 3072; the fine label is
 * used. ROOT may also be the folder that holds cifar-10-batches-bin/ or cifar-100-binary/. */
lt_status lt_dataset_read_cifar(lt_dataset *ds, const char *root, int32_t n_classes, int train);

/* How decoded images are stored: every image is resized to h x w (OpenCV INTER_AREA rules:
 * box average along an axis that shrinks, bilinear with half-pixel centers along one that
 * grows) and converted to c = 1 (ITU-R 601 luma, stb_image's rounding) or 3 channels. */
typedef struct lt_image_options {
    int64_t h, w, c;
} lt_image_options;

/* Decodes one PNG/JPEG/BMP file into out (opt->h * opt->w * opt->c bytes, HWC), resized and
 * converted as above (what `longtail predict` uses for its inputs). */
lt_status lt_image_load(const char *path, const lt_image_options *opt, uint8_t *out);

/* Image folder ROOT/<class>/<file>.png|jpg|jpeg|bmp (extension case-insensitive; other
 * files and hidden entries are ignored). Classes are the subfolders sorted by name (byte
 * order), files sorted by name within a class. If `classes_from` is given (reading a test
 * folder), its class names fix the labels and every subfolder must be one of them;
 * otherwise every class folder must hold at least one image. */
lt_status lt_dataset_read_folder(lt_dataset *ds, const char *root, const lt_image_options *opt,
                                 const lt_dataset *classes_from);

/* List file: one `relative/path label` per line (the ImageNet-LT / Places-LT / iNaturalist
 * convention), the path relative to `root` (it may contain spaces: the label is the last
 * field); blank lines are skipped. n_classes 0 = the largest label + 1 (class names
 * "0".."C-1"); otherwise every label must be below it. */
lt_status lt_dataset_read_list(lt_dataset *ds, const char *root, const char *list_path,
                               const lt_image_options *opt, int32_t n_classes);

/* dst = the images src[idx[0]], ..., src[idx[n-1]] (copied) with src's class names. */
lt_status lt_dataset_subset(lt_dataset *dst, const lt_dataset *src, const int64_t *idx, int64_t n);
/* counts[k] = number of images with label k, k < ds->n_classes. */
void lt_dataset_class_counts(const lt_dataset *ds, int64_t *counts);
/* Per-channel mean and standard deviation (population, i.e. divided by N) of the pixels
 * on the [0, 1] scale, over the whole dataset; what "normalization computed from the
 * training set" uses. mean/std have ds->c entries. */
lt_status lt_dataset_channel_stats(const lt_dataset *ds, float *mean, float *std);

/* ---- long-tail construction and the validation split ---- */

typedef enum lt_profile {
    LT_PROFILE_EXP = 0,   /* n_i = int(n_max * (1/IF)^(i/(C-1))) (Cui et al. 2019, LDAM code) */
    LT_PROFILE_STEP,      /* first floor(C/2) classes n_max, the rest int(n_max / IF) */
    LT_PROFILE_NONE,      /* keep what the source has (at most n_max per class if set) */
} lt_profile;

typedef enum lt_selection {
    LT_SELECT_SHUFFLE = 0,  /* per-class seeded shuffle, then the first n_i */
    LT_SELECT_FIRST,        /* the first n_i in file order (repos that do no shuffle) */
} lt_selection;

typedef enum lt_class_order {
    LT_ORDER_LABEL = 0,     /* class with label i gets n_i: class 0 is the head */
    LT_ORDER_COUNTS,        /* the class with the i-th largest source count gets n_i */
} lt_class_order;

typedef struct lt_longtail_config {
    lt_profile profile;
    double imbalance_factor;   /* IF = n_max / n_min, >= 1 */
    int64_t n_max;             /* 0: the largest class after the validation split */
    int64_t val_per_class;     /* balanced hold-out per class; 0: none (papers' protocol) */
    lt_selection selection;
    lt_class_order class_order;
    uint64_t seed;
} lt_longtail_config;

/* exp, IF 100, n_max 0, val_per_class 20, shuffle, by label, seed 0. */
void lt_longtail_config_default(lt_longtail_config *cfg);

/* The profile alone: counts[r] for the class of rank r (r = 0 is the head), C classes. */
lt_status lt_longtail_profile(lt_profile profile, double imbalance_factor, int64_t n_max,
                              int32_t n_classes, int64_t *counts);

/* Which source images train and validate. Indices are ascending (file order). */
typedef struct lt_split {
    int32_t n_classes;
    int64_t *train_idx, n_train;
    int64_t *val_idx, n_val;
    int64_t *train_counts;     /* per class */
    int64_t *val_counts;       /* per class */
    int64_t n_max;             /* the n_max actually used */
} lt_split;

/* The protocol: per class, order the images (seeded shuffle or file order); the LAST
 * val_per_class of that order are validation, carved out before any subsampling; then
 * n_max defaults to the largest remaining class and the class of rank r keeps the first
 * min(n_r, remaining) images of the order. A class with no more than val_per_class images
 * is an error. */
lt_status lt_split_make(lt_split *sp, const lt_dataset *src, const lt_longtail_config *cfg);
void lt_split_free(lt_split *sp);

/* ---- the whole protocol in one call ---- */

typedef enum lt_dataset_kind {
    LT_DATASET_FMNIST = 0,  /* IDX files; default root /usr/share/datasets/fashion-mnist */
    LT_DATASET_MNIST,       /* IDX files with MNIST names */
    LT_DATASET_CIFAR10,
    LT_DATASET_CIFAR100,
    LT_DATASET_FOLDER,      /* ROOT/train/<class>/..., ROOT/test/<class>/...; or ROOT/<class>/
                             * (no test set) when ROOT/train does not exist */
    LT_DATASET_LIST,        /* train_list / test_list under root */
} lt_dataset_kind;

#define LT_FMNIST_DEFAULT_ROOT "/usr/share/datasets/fashion-mnist"

typedef struct lt_data_spec {
    lt_dataset_kind kind;
    const char *root;          /* NULL: the kind's default (FMNIST only) */
    const char *train_list;    /* LIST: paths of the list files (relative paths are used */
    const char *test_list;     /*   as given, not under root); test_list may be NULL */
    lt_image_options image;    /* FOLDER / LIST: stored size (0 = 32x32x3) */
    lt_longtail_config longtail;
} lt_data_spec;

/* Source train split subsampled (train), the validation hold-out (val), the test set
 * (test: all of it, balanced as published; empty when the source has none). */
typedef struct lt_data {
    lt_dataset train, val, test;
    lt_split split;            /* indices into the source training set */
    int64_t *source_counts;    /* per class, before any split */
} lt_data;

lt_status lt_dataset_kind_parse(const char *name, lt_dataset_kind *kind);
const char *lt_dataset_kind_name(lt_dataset_kind kind);
lt_status lt_profile_parse(const char *name, lt_profile *profile);
const char *lt_profile_name(lt_profile profile);

lt_status lt_data_load(lt_data *d, const lt_data_spec *spec);
void lt_data_free(lt_data *d);

/* ---- augmentation ---- */

typedef struct lt_augment_config {
    int32_t pad;          /* zero padding on each side, then a random h x w crop; 0 = none */
    int32_t hflip;        /* 1: mirror left-right with probability 1/2 */
    float mean[LT_DATA_MAX_CHANNELS];   /* x = (pixel/255 - mean[ch]) / std[ch] */
    float std[LT_DATA_MAX_CHANNELS];
} lt_augment_config;

/* No crop, no flip, mean 0, std 1 (x = pixel / 255). */
void lt_augment_config_default(lt_augment_config *a);
/* The CIFAR recipe: pad 4, flip, mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010). */
void lt_augment_config_cifar(lt_augment_config *a);

/* One image (h, w, c) uint8 -> out (h, w, c) float. rng NULL: no crop or flip (evaluation),
 * only normalization. Draws per image, in order: crop dy, crop dx (if pad > 0), flip (if
 * hflip). */
void lt_augment_image(const uint8_t *img, int64_t h, int64_t w, int64_t c,
                      const lt_augment_config *a, lt_rng *rng, float *out);


/* ---- samplers ---- */

typedef enum lt_sampler_kind {
    LT_SAMPLER_INSTANCE = 0,   /* a permutation of the training set (p_c ∝ n_c) */
    LT_SAMPLER_CLASS_AWARE,    /* cycle over shuffled classes, k images of each (Shen 2016) */
    LT_SAMPLER_QPOWER,         /* class c with p_c ∝ n_c^q (q = 0 balanced, 1/2 square root) */
    LT_SAMPLER_REVERSED,       /* p_c ∝ n_max / n_c (BBN's reversed sampler) */
    LT_SAMPLER_PROGRESSIVE,    /* p_c(t) = (1 - t/T) n_c/N + (t/T) / C, t = epoch */
} lt_sampler_kind;

typedef struct lt_sampler_config {
    lt_sampler_kind kind;
    double q;                  /* QPOWER exponent */
    int64_t k;                 /* CLASS_AWARE images per class visit, default 4 */
    int64_t epoch_length;      /* indices per epoch; 0 = number of training images */
    int64_t total_epochs;      /* PROGRESSIVE: T */
} lt_sampler_config;

void lt_sampler_config_default(lt_sampler_config *cfg);   /* INSTANCE, q 0, k 4, 0, T 1 */
lt_status lt_sampler_kind_parse(const char *name, lt_sampler_kind *kind);
const char *lt_sampler_kind_name(lt_sampler_kind kind);

/* Samplers that pick a class first then take that class's next image from a per-class
 * cycle over its images, reshuffled each time it runs out (and at every epoch start), so
 * within a class images repeat only once all of them have been seen. */
typedef struct lt_sampler {
    lt_sampler_config cfg;
    int32_t n_classes;
    int64_t n;                 /* training images */
    uint64_t seed;
    int64_t *class_counts;     /* n_c */
    int64_t *class_start;      /* C+1 offsets into by_class */
    int64_t *by_class;         /* image indices grouped by class */
    int64_t *cycle;            /* scratch: per-class cycles (n) */
    int64_t *cycle_pos;        /* scratch: per-class position (C) */
    int64_t *class_cycle;      /* scratch: class-aware class order (C) */
    double *cdf;               /* scratch: cumulative class probabilities (C) */
} lt_sampler;

/* labels: the n training labels (copied into class lists; not kept). Allocates all the
 * memory the sampler will ever use. */
lt_status lt_sampler_init(lt_sampler *s, const lt_sampler_config *cfg, const int32_t *labels,
                          int64_t n, int32_t n_classes, uint64_t seed);
void lt_sampler_free(lt_sampler *s);                  /* zeroes *s; NULL ok */
int64_t lt_sampler_epoch_length(const lt_sampler *s);
/* p[c] = the probability that a draw of epoch `epoch` is of class c (the formula; for
 * INSTANCE n_c/N, for CLASS_AWARE 1/C over non-empty classes). */
void lt_sampler_class_probs(const lt_sampler *s, int64_t epoch, double *p);
/* The indices of epoch `epoch` (epoch_length of them) into out, from (seed, epoch) only.
 * Allocation-free. */
lt_status lt_sampler_epoch(lt_sampler *s, int64_t epoch, int64_t *out);

/* ---- the loader thread ---- */

typedef struct lt_loader lt_loader;

typedef struct lt_loader_config {
    int64_t batch_size;
    int32_t drop_last;          /* 1: skip a last partial batch */
    lt_augment_config augment;  /* crop/flip ignored without a sampler (evaluation) */
    uint64_t seed;
} lt_loader_config;

typedef struct lt_batch {
    float *x;              /* (n, h, w, c) normalized images */
    int32_t *y;            /* n labels */
    const int64_t *idx;    /* n dataset indices */
    int64_t n, h, w, c;    /* n == 0: the epoch is over */
    int64_t epoch, index;  /* which batch this is */
} lt_batch;

/* sampler NULL: evaluation order (0..n-1), no crop or flip, normalization only. The
 * loader borrows ds and sampler; it allocates everything up front. */
lt_status lt_loader_init(lt_loader **out, const lt_dataset *ds, lt_sampler *sampler,
                         const lt_loader_config *cfg);
/* Starts epoch `epoch` at batch first_batch (0 normally; later when resuming mid-epoch).
 * Cancels whatever the previous epoch had left. */
lt_status lt_loader_start(lt_loader *ld, int64_t epoch, int64_t first_batch);
/* The next batch of the current epoch; batch->n == 0 after the last one. */
lt_status lt_loader_next(lt_loader *ld, lt_batch *batch);
int64_t lt_loader_num_batches(const lt_loader *ld);
void lt_loader_free(lt_loader *ld);   /* stops and joins the thread; NULL ok */

#endif
