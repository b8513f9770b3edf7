/* Image files: decoding (Debian's libstb-dev, stb_image compiled here and nowhere else),
 * resizing, and the two readers built on them: image folders and list files.
 *
 * Resizing follows OpenCV's INTER_AREA: along an axis that shrinks, each output pixel is
 * the average of the input pixels it covers, weighted by the covered fraction (an exact
 * box filter, no aliasing); along an axis that grows, bilinear interpolation with
 * half-pixel centers (src = (dst + 0.5) * in/out - 0.5, clamped at the border). The two
 * axes are filtered separately, horizontal first, in float, then rounded to uint8. */
#include "data/data_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* stb_image: only the formats we accept, every allocation through the hook, symbols
 * private to this file, and a dimension limit so a lying header cannot ask for gigabytes. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 15)
#define STBI_MALLOC(sz) lt_malloc(sz)
#define STBI_REALLOC(p, sz) lt_realloc(p, sz)
#define STBI_FREE(p) lt_free(p)
/* STB_IMAGE_STATIC + STBI_ONLY_* leaves a few static prototypes (GIF, unpremultiply)
 * without a body; GCC reports those at the end of the file, so the suppression cannot be
 * popped. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image.h>

/* Largest decoded image we accept (pixels): 64 Mpixel, e.g. 8192 x 8192. */
#define IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* ---- resize ---- */

/* Filter taps of one axis: output j reads `count[j]` inputs from `first[j]` with weights
 * w[offset[j] ...]. */
typedef struct axis_taps {
    int32_t *first, *count, *offset;
    float *w;
} axis_taps;

static void taps_free(axis_taps *t) {
    lt_free(t->first);
    lt_free(t->count);
    lt_free(t->offset);
    lt_free(t->w);
}

static lt_status taps_make(axis_taps *t, int64_t in, int64_t out) {
    memset(t, 0, sizeof *t);
    double scale = (double)in / (double)out;
    int64_t max_taps = in > out ? (int64_t)ceil(scale) + 2 : 2;
    t->first = lt_malloc((size_t)out * sizeof(int32_t));
    t->count = lt_malloc((size_t)out * sizeof(int32_t));
    t->offset = lt_malloc((size_t)out * sizeof(int32_t));
    t->w = lt_malloc((size_t)(out * max_taps) * sizeof(float));
    if (!t->first || !t->count || !t->offset || !t->w) {
        taps_free(t);
        return lt_error(LT_ERR_NOMEM, "image resize: out of memory");
    }
    int32_t off = 0;
    for (int64_t j = 0; j < out; j++) {
        t->offset[j] = off;
        if (in > out) {
            /* box: output j covers [j*scale, (j+1)*scale) of the input */
            double lo = (double)j * scale, hi = (double)(j + 1) * scale;
            int64_t k0 = (int64_t)floor(lo), k1 = (int64_t)ceil(hi);
            if (k1 > in) k1 = in;
            t->first[j] = (int32_t)k0;
            t->count[j] = 0;
            for (int64_t k = k0; k < k1; k++) {
                double a = lo > (double)k ? lo : (double)k;
                double b = hi < (double)(k + 1) ? hi : (double)(k + 1);
                t->w[off + t->count[j]++] = (float)((b - a) / scale);
            }
        } else {
            double src = ((double)j + 0.5) * scale - 0.5;
            if (src < 0) src = 0;
            int64_t k0 = (int64_t)floor(src);
            if (k0 > in - 1) k0 = in - 1;
            double frac = src - (double)k0;
            t->first[j] = (int32_t)k0;
            if (k0 + 1 < in && frac > 0) {
                t->count[j] = 2;
                t->w[off] = (float)(1.0 - frac);
                t->w[off + 1] = (float)frac;
            } else {
                t->count[j] = 1;
                t->w[off] = 1.0f;
            }
        }
        off += t->count[j];
    }
    return LT_OK;
}

/* src (ih, iw, c) uint8 -> dst (oh, ow, c) uint8. */
static lt_status resize_u8(const uint8_t *src, int64_t ih, int64_t iw, int64_t c, uint8_t *dst, int64_t oh,
                           int64_t ow) {
    if (ih == oh && iw == ow) {
        memcpy(dst, src, (size_t)(ih * iw * c));
        return LT_OK;
    }
    axis_taps tx, ty;
    lt_status st = taps_make(&tx, iw, ow);
    if (st != LT_OK) return st;
    st = taps_make(&ty, ih, oh);
    if (st != LT_OK) {
        taps_free(&tx);
        return st;
    }
    float *tmp = lt_malloc((size_t)(ih * ow * c) * sizeof(float));   /* (ih, ow, c) */
    if (!tmp) {
        taps_free(&tx);
        taps_free(&ty);
        return lt_error(LT_ERR_NOMEM, "image resize: out of memory");
    }
    for (int64_t y = 0; y < ih; y++)
        for (int64_t x = 0; x < ow; x++)
            for (int64_t ch = 0; ch < c; ch++) {
                float s = 0;
                const float *w = tx.w + tx.offset[x];
                for (int32_t k = 0; k < tx.count[x]; k++) s += w[k] * src[(y * iw + tx.first[x] + k) * c + ch];
                tmp[(y * ow + x) * c + ch] = s;
            }
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++)
            for (int64_t ch = 0; ch < c; ch++) {
                float s = 0;
                const float *w = ty.w + ty.offset[y];
                for (int32_t k = 0; k < ty.count[y]; k++) s += w[k] * tmp[((ty.first[y] + k) * ow + x) * c + ch];
                long v = lrintf(s);
                dst[(y * ow + x) * c + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    lt_free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return LT_OK;
}

/* ---- decoding one file ---- */

/* Decodes `path` into out (opt->h, opt->w, opt->c). `where` prefixes the message (a list
 * file line) or is NULL. */
static lt_status image_load(const char *path, const lt_image_options *opt, uint8_t *out, const char *where) {
    char pre[600] = "";
    if (where) snprintf(pre, sizeof pre, "%s: ", where);
    int64_t size = lt_data_file_size(path);
    FILE *f = size >= 0 ? fopen(path, "rb") : NULL;
    if (!f) return lt_error(LT_ERR_IO, "%s%s: cannot open: %s", pre, path, strerror(errno));
    if (size == 0 || size > INT32_MAX) {
        fclose(f);
        return lt_error(LT_ERR_FORMAT, "%s%s: cannot decode: file size %lld bytes", pre, path, (long long)size);
    }
    uint8_t *bytes = lt_malloc((size_t)size);
    if (!bytes) {
        fclose(f);
        return lt_error(LT_ERR_NOMEM, "%s%s: out of memory for %lld bytes", pre, path, (long long)size);
    }
    lt_status st = lt_data_read_exact(f, path, 0, bytes, size);
    fclose(f);
    if (st != LT_OK) {
        lt_free(bytes);
        return st;
    }
    int w, h, comp;
    if (!stbi_info_from_memory(bytes, (int)size, &w, &h, &comp)) {
        st = lt_error(LT_ERR_FORMAT, "%s%s: cannot decode (offset 0: not a PNG, JPEG or BMP image): %s", pre, path,
                      stbi_failure_reason());
        lt_free(bytes);
        return st;
    }
    if ((int64_t)w * h > IMAGE_MAX_PIXELS) {
        lt_free(bytes);
        return lt_error(LT_ERR_FORMAT, "%s%s: header claims %dx%d pixels, above the limit of %lld", pre, path, w, h,
                        (long long)IMAGE_MAX_PIXELS);
    }
    uint8_t *pix = stbi_load_from_memory(bytes, (int)size, &w, &h, &comp, (int)opt->c);
    lt_free(bytes);
    if (!pix)
        return lt_error(LT_ERR_FORMAT, "%s%s: cannot decode: %s", pre, path, stbi_failure_reason());
    st = resize_u8(pix, h, w, opt->c, out, opt->h, opt->w);
    stbi_image_free(pix);
    return st;
}

static lt_status check_options(const lt_image_options *opt, const char *what) {
    if (opt->h < 1 || opt->w < 1 || opt->h > 4096 || opt->w > 4096 || (opt->c != 1 && opt->c != 3))
        return lt_error(LT_ERR_ARG, "%s: image size %lldx%lldx%lld: expected h, w in 1..4096 and 1 or 3 channels",
                        what, (long long)opt->h, (long long)opt->w, (long long)opt->c);
    return LT_OK;
}

/* Decodes n files into ds (allocated here). OpenMP over files; on failure the error of the
 * lowest-numbered failing file is reported, whatever the thread count. `where[i]` (may be
 * NULL) prefixes file i's message. */
static lt_status decode_all(lt_dataset *ds, char **paths, const int32_t *labels, int64_t n,
                            const lt_image_options *opt, char **where) {
    lt_status st = lt_data_alloc_images(ds, n, opt->h, opt->w, opt->c);
    if (st != LT_OK) return st;
    int64_t per = opt->h * opt->w * opt->c;
    int64_t first_bad = n;
    lt_status bad_status = LT_OK;
    char bad_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; i++) {
        int64_t seen;
#pragma omp atomic read
        seen = first_bad;
        if (i > seen) continue;
        lt_status s = image_load(paths[i], opt, ds->images + i * per, where ? where[i] : NULL);
        if (s != LT_OK) {
#pragma omp critical(lt_decode_error)
            if (i < first_bad) {
#pragma omp atomic write
                first_bad = i;
                bad_status = s;
                snprintf(bad_msg, sizeof bad_msg, "%s", lt_last_error());
            }
        }
        ds->labels[i] = labels[i];
    }
    if (first_bad < n) return lt_error(bad_status, "%s", bad_msg);
    return LT_OK;
}

/* ---- folders ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp"};
    for (int k = 0; k < 4; k++) {
        size_t m = strlen(ext[k]);
        if (strlen(dot) != m) continue;
        int eq = 1;
        for (size_t j = 0; j < m; j++)
            if (tolower((unsigned char)dot[j]) != ext[k][j]) eq = 0;
        if (eq) return 1;
    }
    return 0;
}

typedef struct str_list {
    char **s;
    int64_t n, cap;
} str_list;

static int str_list_push(str_list *l, char *s) {
    if (!s) return 0;
    if (l->n == l->cap) {
        int64_t ncap = l->cap ? 2 * l->cap : 64;
        char **ns = lt_realloc(l->s, (size_t)ncap * sizeof(char *));
        if (!ns) {
            lt_free(s);
            return 0;
        }
        l->s = ns;
        l->cap = ncap;
    }
    l->s[l->n++] = s;
    return 1;
}

static void str_list_free(str_list *l) {
    for (int64_t i = 0; i < l->n; i++) lt_free(l->s[i]);
    lt_free(l->s);
    memset(l, 0, sizeof *l);
}

/* Names in dir (not starting with '.') that are directories (want_dirs) or image files,
 * sorted. */
static lt_status list_dir(const char *dir, int want_dirs, str_list *out) {
    DIR *d = opendir(dir);
    if (!d) return lt_error(LT_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    lt_status st = LT_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *full = lt_data_path_join(dir, e->d_name);
        if (!full) {
            st = lt_error(LT_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        struct stat s;
        int ok = stat(full, &s) == 0;
        lt_free(full);
        if (!ok) continue;
        int keep = want_dirs ? S_ISDIR(s.st_mode) : (S_ISREG(s.st_mode) && has_image_ext(e->d_name));
        if (keep && !str_list_push(out, lt_strdup(e->d_name))) {
            st = lt_error(LT_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
    }
    closedir(d);
    if (st == LT_OK && out->n > 1) qsort(out->s, (size_t)out->n, sizeof(char *), cmp_str);
    return st;
}

lt_status lt_dataset_read_folder(lt_dataset *ds, const char *root, const lt_image_options *opt,
                                 const lt_dataset *classes_from) {
    memset(ds, 0, sizeof *ds);
    lt_status st = check_options(opt, root);
    if (st != LT_OK) return st;
    str_list classes = {0}, paths = {0};
    int32_t *labels = NULL;
    int64_t lab_cap = 0;
    st = list_dir(root, 1, &classes);
    if (st == LT_OK && classes.n == 0)
        st = lt_error(LT_ERR_FORMAT, "%s: empty folder: no class subfolders", root);
    if (st == LT_OK && classes.n > INT32_MAX / 2)
        st = lt_error(LT_ERR_FORMAT, "%s: too many class subfolders (%lld)", root, (long long)classes.n);
    for (int64_t k = 0; k < classes.n && st == LT_OK; k++) {
        int32_t label = (int32_t)k;
        if (classes_from) {
            label = -1;
            for (int32_t j = 0; j < classes_from->n_classes; j++)
                if (!strcmp(classes_from->class_names[j], classes.s[k])) label = j;
            if (label < 0) {
                st = lt_error(LT_ERR_FORMAT, "%s/%s: class folder not among the %d training classes", root,
                              classes.s[k], classes_from->n_classes);
                break;
            }
        }
        char *cdir = lt_data_path_join(root, classes.s[k]);
        str_list files = {0};
        st = cdir ? list_dir(cdir, 0, &files) : lt_error(LT_ERR_NOMEM, "%s: out of memory", root);
        if (st == LT_OK && files.n == 0 && !classes_from)
            st = lt_error(LT_ERR_FORMAT, "%s: empty class folder: no .png, .jpg, .jpeg or .bmp files", cdir);
        if (st == LT_OK && paths.n + files.n > lab_cap) {
            int64_t ncap = 2 * (paths.n + files.n) + 64;
            int32_t *nl = lt_realloc(labels, (size_t)ncap * sizeof(int32_t));
            if (!nl) st = lt_error(LT_ERR_NOMEM, "%s: out of memory", root);
            else {
                labels = nl;
                lab_cap = ncap;
            }
        }
        for (int64_t i = 0; i < files.n && st == LT_OK; i++) {
            labels[paths.n] = label;
            if (!str_list_push(&paths, lt_data_path_join(cdir, files.s[i])))
                st = lt_error(LT_ERR_NOMEM, "%s: out of memory", root);
        }
        str_list_free(&files);
        lt_free(cdir);
    }
    if (st == LT_OK) st = decode_all(ds, paths.s, labels, paths.n, opt, NULL);
    if (st == LT_OK) {
        if (classes_from)
            st = lt_data_set_class_names(ds, classes_from->n_classes, (const char *const *)classes_from->class_names);
        else
            st = lt_data_set_class_names(ds, (int32_t)classes.n, (const char *const *)classes.s);
    }
    str_list_free(&classes);
    str_list_free(&paths);
    lt_free(labels);
    if (st != LT_OK) lt_dataset_free(ds);
    return st;
}

/* ---- list files ---- */

lt_status lt_dataset_read_list(lt_dataset *ds, const char *root, const char *list_path,
                               const lt_image_options *opt, int32_t n_classes) {
    memset(ds, 0, sizeof *ds);
    lt_status st = check_options(opt, list_path);
    if (st != LT_OK) return st;
    FILE *f = fopen(list_path, "r");
    if (!f) return lt_error(LT_ERR_IO, "%s: cannot open: %s", list_path, strerror(errno));
    str_list paths = {0}, where = {0};
    int32_t *labels = NULL;
    int64_t lab_cap = 0, max_label = -1, lineno = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while (st == LT_OK && (len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        char *p = line;
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) continue;   /* blank line */
        char *sp = p + strlen(p);
        while (sp > p && !isspace((unsigned char)sp[-1])) sp--;
        if (sp == p) {
            st = lt_error(LT_ERR_FORMAT, "%s:%lld: expected `path label`, got '%s'", list_path, (long long)lineno, p);
            break;
        }
        char *tok = sp, *end;
        errno = 0;
        long lab = strtol(tok, &end, 10);
        if (*end || errno || lab < 0 || lab >= INT32_MAX) {
            st = lt_error(LT_ERR_FORMAT, "%s:%lld: label '%s' is not a non-negative integer", list_path,
                          (long long)lineno, tok);
            break;
        }
        if (n_classes > 0 && lab >= n_classes) {
            st = lt_error(LT_ERR_FORMAT, "%s:%lld: label %ld is not below the class count %d", list_path,
                          (long long)lineno, lab, n_classes);
            break;
        }
        if (lab >= (1 << 20)) {
            st = lt_error(LT_ERR_FORMAT, "%s:%lld: label %ld is implausibly large (more than 2^20 classes)",
                          list_path, (long long)lineno, lab);
            break;
        }
        while (sp > p && isspace((unsigned char)sp[-1])) sp--;
        *sp = '\0';
        char *full = lt_data_path_join(root, p);
        char loc[600];
        snprintf(loc, sizeof loc, "%s:%lld", list_path, (long long)lineno);
        if (full && lt_data_file_size(full) < 0) {
            st = lt_error(LT_ERR_IO, "%s: cannot open %s: %s", loc, full, strerror(errno));
            lt_free(full);
            break;
        }
        if (paths.n == lab_cap) {
            int64_t ncap = lab_cap ? 2 * lab_cap : 256;
            int32_t *nl = lt_realloc(labels, (size_t)ncap * sizeof(int32_t));
            if (!nl) {
                lt_free(full);
                st = lt_error(LT_ERR_NOMEM, "%s: out of memory", list_path);
                break;
            }
            labels = nl;
            lab_cap = ncap;
        }
        labels[paths.n] = (int32_t)lab;
        if (!str_list_push(&paths, full) || !str_list_push(&where, lt_strdup(loc))) {
            st = lt_error(LT_ERR_NOMEM, "%s: out of memory", list_path);
            break;
        }
        if (lab > max_label) max_label = lab;
    }
    if (st == LT_OK && ferror(f)) st = lt_error(LT_ERR_IO, "%s: read error after line %lld", list_path, (long long)lineno);
    free(line);   /* getline's buffer comes from libc malloc */
    fclose(f);
    if (st == LT_OK && paths.n == 0) st = lt_error(LT_ERR_FORMAT, "%s: no entries", list_path);
    if (st == LT_OK) st = decode_all(ds, paths.s, labels, paths.n, opt, where.s);
    if (st == LT_OK) st = lt_data_set_class_names(ds, n_classes > 0 ? n_classes : (int32_t)(max_label + 1), NULL);
    str_list_free(&paths);
    str_list_free(&where);
    lt_free(labels);
    if (st != LT_OK) lt_dataset_free(ds);
    return st;
}

lt_status lt_image_load(const char *path, const lt_image_options *opt, uint8_t *out) {
    lt_status st = check_options(opt, path);
    if (st != LT_OK) return st;
    return image_load(path, opt, out, NULL);
}
