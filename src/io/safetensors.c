/* safetensors checkpoints: the format of Hugging Face's safetensors library
 * (https://github.com/huggingface/safetensors), so checkpoints move between longtail and
 * PyTorch unchanged.
 *
 * Every number in a file is checked before it is used: the header length against the file
 * size and LT_ST_MAX_HEADER, each tensor's data_offsets against the data section and
 * against its dtype × shape, and the tensors' byte ranges against each other (no overlap).
 * Only then is memory allocated, so its size is bounded by the file's real size. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "longtail's safetensors io assumes a little-endian host (the format is little-endian)"
#endif

static const struct { const char *name; int64_t size; } dtypes[LT_DT_COUNT] = {
    [LT_DT_F32] = {"F32", 4},  [LT_DT_F64] = {"F64", 8}, [LT_DT_F16] = {"F16", 2},
    [LT_DT_BF16] = {"BF16", 2}, [LT_DT_I64] = {"I64", 8}, [LT_DT_I32] = {"I32", 4},
    [LT_DT_I16] = {"I16", 2},  [LT_DT_I8] = {"I8", 1},   [LT_DT_U64] = {"U64", 8},
    [LT_DT_U32] = {"U32", 4},  [LT_DT_U16] = {"U16", 2}, [LT_DT_U8] = {"U8", 1},
    [LT_DT_BOOL] = {"BOOL", 1},
};

const char *lt_dtype_name(lt_dtype dt) {
    return (unsigned)dt < LT_DT_COUNT ? dtypes[dt].name : "?";
}

int64_t lt_dtype_size(lt_dtype dt) {
    return (unsigned)dt < LT_DT_COUNT ? dtypes[dt].size : 0;
}

struct lt_safetensors {
    char *path;
    lt_st_entry *entries;        /* sorted by name */
    const void **ptr;            /* ptr[i]: data of entries[i] in `data` */
    int64_t n;
    unsigned char *data;         /* each tensor 64-byte aligned */
    char **meta;                 /* key0, value0, key1, value1, ... in file order */
    int64_t n_meta;
};

/* "(10, 64)" */
static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
    return buf;
}

/* numel of a shape, or -1 if a dim is negative or the byte size overflows int64. */
static int64_t checked_numel(int ndim, const int64_t *shape, int64_t elem_size) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return -1;
        if (shape[d] && numel > INT64_MAX / elem_size / shape[d]) return -1;
        numel *= shape[d];
    }
    return numel;
}

void lt_safetensors_free(lt_safetensors *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n; i++) lt_free(st->entries[i].name);
    for (int64_t i = 0; i < 2 * st->n_meta; i++) lt_free(st->meta[i]);
    lt_free(st->entries);
    lt_free(st->ptr);
    lt_free(st->meta);
    lt_free_aligned(st->data);
    lt_free(st->path);
    lt_free(st);
}

/* ---- header validation ---- */

static lt_status parse_metadata(lt_safetensors *st, const lt_json *m) {
    if (m->type != LT_JSON_OBJECT)
        return lt_error(LT_ERR_FORMAT, "%s: byte %lld: __metadata__ must be an object of strings",
                        st->path, (long long)m->offset);
    st->meta = lt_calloc((size_t)(2 * m->n + 1), sizeof *st->meta);
    if (!st->meta) return lt_error(LT_ERR_NOMEM, "%s: out of memory", st->path);
    for (int64_t k = 0; k < m->n; k++) {
        if (m->items[k].type != LT_JSON_STRING)
            return lt_error(LT_ERR_FORMAT, "%s: byte %lld: __metadata__ value of \"%.200s\" is not a string",
                            st->path, (long long)m->items[k].offset, m->keys[k]);
        st->meta[2 * k] = lt_strdup(m->keys[k]);
        st->meta[2 * k + 1] = lt_strdup(m->items[k].str);
        st->n_meta = k + 1;
        if (!st->meta[2 * k] || !st->meta[2 * k + 1]) return lt_error(LT_ERR_NOMEM, "%s: out of memory", st->path);
    }
    return LT_OK;
}

#define ENTRY_FAIL(...) entry_fail(st->path, v->offset, name, __VA_ARGS__)
static lt_status entry_fail(const char *path, int64_t at, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static lt_status entry_fail(const char *path, int64_t at, const char *name, const char *fmt, ...) {
    char where[600];
    snprintf(where, sizeof where, "%s: byte %lld: tensor '%.200s'", path, (long long)at, name);
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(LT_ERR_FORMAT, where, fmt, ap);
    va_end(ap);
    return s;
}

/* Fills e from the header object v of tensor `name`; data_size bounds the offsets. */
static lt_status parse_entry(const lt_safetensors *st, const char *name, const lt_json *v,
                             int64_t data_size, lt_st_entry *e) {
    if (v->type != LT_JSON_OBJECT) return ENTRY_FAIL("expected an object with dtype, shape, data_offsets");
    const lt_json *dt = NULL, *shape = NULL, *offs = NULL;
    for (int64_t k = 0; k < v->n; k++) {
        const char *key = v->keys[k];
        if (!strcmp(key, "dtype")) dt = &v->items[k];
        else if (!strcmp(key, "shape")) shape = &v->items[k];
        else if (!strcmp(key, "data_offsets")) offs = &v->items[k];
        else return ENTRY_FAIL("unknown field \"%.100s\"", key);
    }
    if (!dt || !shape || !offs)
        return ENTRY_FAIL("missing field \"%s\"", !dt ? "dtype" : !shape ? "shape" : "data_offsets");

    if (dt->type != LT_JSON_STRING) return ENTRY_FAIL("dtype must be a string");
    e->dtype = LT_DT_COUNT;
    for (int k = 0; k < LT_DT_COUNT; k++)
        if (!strcmp(dt->str, dtypes[k].name)) e->dtype = (lt_dtype)k;
    if (e->dtype == LT_DT_COUNT) return ENTRY_FAIL("unsupported dtype \"%.32s\"", dt->str);

    if (shape->type != LT_JSON_ARRAY) return ENTRY_FAIL("shape must be an array of integers");
    if (shape->n > LT_ST_MAX_DIMS) return ENTRY_FAIL("shape has %lld dims, at most %d supported", (long long)shape->n, LT_ST_MAX_DIMS);
    e->ndim = (int)shape->n;
    for (int d = 0; d < e->ndim; d++) {
        const lt_json *x = &shape->items[d];
        if (x->type != LT_JSON_NUMBER || !x->is_int || x->i < 0)
            return ENTRY_FAIL("shape[%d] is not a non-negative integer", d);
        e->shape[d] = x->i;
    }
    int64_t esize = dtypes[e->dtype].size;
    e->numel = checked_numel(e->ndim, e->shape, esize);
    if (e->numel < 0) return ENTRY_FAIL("shape's byte size overflows");

    if (offs->type != LT_JSON_ARRAY || offs->n != 2) return ENTRY_FAIL("data_offsets must be [begin, end]");
    for (int k = 0; k < 2; k++)
        if (offs->items[k].type != LT_JSON_NUMBER || !offs->items[k].is_int || offs->items[k].i < 0)
            return ENTRY_FAIL("data_offsets[%d] is not a non-negative integer", k);
    int64_t b = offs->items[0].i, end = offs->items[1].i;
    if (b > end) return ENTRY_FAIL("data_offsets [%lld, %lld] end before they begin", (long long)b, (long long)end);
    if (end > data_size)
        return ENTRY_FAIL("data_offsets [%lld, %lld] run past the data section (%lld bytes)",
                          (long long)b, (long long)end, (long long)data_size);
    if (end - b != e->numel * esize) {
        char sb[128];
        return ENTRY_FAIL("data_offsets [%lld, %lld] hold %lld bytes, dtype %s shape %s needs %lld",
                          (long long)b, (long long)end, (long long)(end - b), dtypes[e->dtype].name,
                          shape_str(e->ndim, e->shape, sb, sizeof sb), (long long)(e->numel * esize));
    }
    e->offset = b;
    e->nbytes = end - b;
    e->name = lt_strdup(name);
    if (!e->name) return lt_error(LT_ERR_NOMEM, "%s: out of memory", st->path);
    return LT_OK;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const lt_st_entry *)a)->name, ((const lt_st_entry *)b)->name);
}

/* Sort keys carry what they compare, so sorting needs no global context (thread safe). */
typedef struct span { int64_t offset, nbytes, idx; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int64_t round64(int64_t n) { return (n + 63) & ~(int64_t)63; }

/* Checks that no two tensors share bytes, then reads each one into its own 64-aligned
 * slot of st->data, in file order. */
static lt_status read_tensors(lt_safetensors *st, FILE *fp, int64_t data_start) {
    span *order = lt_malloc((size_t)(st->n + 1) * sizeof *order);
    if (!order) return lt_error(LT_ERR_NOMEM, "%s: out of memory", st->path);
    for (int64_t i = 0; i < st->n; i++) order[i] = (span){st->entries[i].offset, st->entries[i].nbytes, i};
    qsort(order, (size_t)st->n, sizeof *order, cmp_span);
    lt_status s = LT_OK;
    int64_t prev_end = 0, total = 0;
    const lt_st_entry *prev = NULL;
    for (int64_t k = 0; k < st->n && !s; k++) {
        const lt_st_entry *e = &st->entries[order[k].idx];
        if (e->nbytes == 0) continue;   /* empty tensors occupy no bytes and overlap nothing */
        if (prev && e->offset < prev_end)
            s = lt_error(LT_ERR_FORMAT, "%s: tensors '%.200s' [%lld, %lld] and '%.200s' [%lld, %lld] overlap",
                         st->path, prev->name, (long long)prev->offset, (long long)prev_end, e->name,
                         (long long)e->offset, (long long)(e->offset + e->nbytes));
        prev = e;
        prev_end = e->offset + e->nbytes;
        total += round64(e->nbytes);
    }
    if (!s) {
        st->data = lt_malloc_aligned((size_t)(total ? total : 64));
        if (!st->data) s = lt_error(LT_ERR_NOMEM, "%s: out of memory for %lld bytes of tensors", st->path, (long long)total);
    }
    int64_t at = 0;
    for (int64_t k = 0; k < st->n && !s; k++) {
        int64_t i = order[k].idx;
        const lt_st_entry *e = &st->entries[i];
        st->ptr[i] = st->data + at;
        if (e->nbytes == 0) continue;
        if (fseeko(fp, (off_t)(data_start + e->offset), SEEK_SET) != 0 ||
            fread(st->data + at, 1, (size_t)e->nbytes, fp) != (size_t)e->nbytes)
            s = lt_error(LT_ERR_IO, "%s: cannot read tensor '%.200s' (%lld bytes at byte %lld)", st->path,
                         e->name, (long long)e->nbytes, (long long)(data_start + e->offset));
        at += round64(e->nbytes);
    }
    lt_free(order);
    return s;
}

static lt_status load_open(lt_safetensors *st, FILE *fp) {
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode))
        return lt_error(LT_ERR_IO, "%s: not a regular file", st->path);
    int64_t size = (int64_t)sb.st_size;
    unsigned char len8[8];
    if (size < 8)
        return lt_error(LT_ERR_FORMAT, "%s: file is %lld bytes, too short for a safetensors header",
                        st->path, (long long)size);
    if (fread(len8, 1, 8, fp) != 8) return lt_error(LT_ERR_IO, "%s: cannot read the header length", st->path);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | len8[k];
    if (hlen > (uint64_t)LT_ST_MAX_HEADER)
        return lt_error(LT_ERR_FORMAT, "%s: byte 0: header length %llu is over the %lld-byte limit (corrupt or not safetensors)",
                        st->path, (unsigned long long)hlen, (long long)LT_ST_MAX_HEADER);
    if ((int64_t)hlen > size - 8)
        return lt_error(LT_ERR_FORMAT, "%s: byte 0: header length %llu runs past the end of the %lld-byte file (truncated?)",
                        st->path, (unsigned long long)hlen, (long long)size);
    if (hlen < 2)
        return lt_error(LT_ERR_FORMAT, "%s: byte 0: header length %llu is too small for a JSON object",
                        st->path, (unsigned long long)hlen);
    char *text = lt_malloc((size_t)hlen);
    if (!text) return lt_error(LT_ERR_NOMEM, "%s: out of memory for the header", st->path);
    if (fread(text, 1, (size_t)hlen, fp) != (size_t)hlen) {
        lt_free(text);
        return lt_error(LT_ERR_IO, "%s: cannot read the %llu-byte header", st->path, (unsigned long long)hlen);
    }
    lt_json *h;
    lt_status s = lt_json_parse_at(text, (int64_t)hlen, st->path, 8, &h);
    lt_free(text);
    if (s) return s;

    int64_t data_start = 8 + (int64_t)hlen, data_size = size - data_start;
    if (h->type != LT_JSON_OBJECT) {
        lt_json_free(h);
        return lt_error(LT_ERR_FORMAT, "%s: byte 8: the header is not a JSON object", st->path);
    }
    st->entries = lt_calloc((size_t)h->n + 1, sizeof *st->entries);
    st->ptr = lt_calloc((size_t)h->n + 1, sizeof *st->ptr);
    if (!st->entries || !st->ptr) s = lt_error(LT_ERR_NOMEM, "%s: out of memory", st->path);
    for (int64_t k = 0; k < h->n && !s; k++) {
        if (!strcmp(h->keys[k], "__metadata__")) s = parse_metadata(st, &h->items[k]);
        else if (!(s = parse_entry(st, h->keys[k], &h->items[k], data_size, &st->entries[st->n])))
            st->n++;
    }
    lt_json_free(h);
    if (s) return s;
    qsort(st->entries, (size_t)st->n, sizeof *st->entries, cmp_entry_name);
    return read_tensors(st, fp, data_start);
}

lt_status lt_safetensors_load(const char *path, lt_safetensors **out) {
    *out = NULL;
    lt_safetensors *st = lt_calloc(1, sizeof *st);
    if (!st || !(st->path = lt_strdup(path))) {
        lt_free(st);
        return lt_error(LT_ERR_NOMEM, "%s: out of memory", path);
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        lt_status s = lt_error(LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        lt_safetensors_free(st);
        return s;
    }
    lt_status s = load_open(st, fp);
    fclose(fp);
    if (s) { lt_safetensors_free(st); return s; }
    *out = st;
    return LT_OK;
}

/* ---- lookups ---- */

const char *lt_safetensors_path(const lt_safetensors *st) { return st->path; }
int64_t lt_safetensors_count(const lt_safetensors *st) { return st->n; }

const lt_st_entry *lt_safetensors_entry(const lt_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n ? &st->entries[i] : NULL;
}

const lt_st_entry *lt_safetensors_find(const lt_safetensors *st, const char *name) {
    lt_st_entry key = {.name = (char *)name};
    return bsearch(&key, st->entries, (size_t)st->n, sizeof key, cmp_entry_name);
}

const void *lt_safetensors_data(const lt_safetensors *st, const lt_st_entry *e) {
    LT_ASSERT(e >= st->entries && e < st->entries + st->n);
    return st->ptr[e - st->entries];
}

lt_status lt_safetensors_get(const lt_safetensors *st, const char *name, lt_dtype dt,
                             int ndim, const int64_t *shape, const void **data) {
    *data = NULL;
    const lt_st_entry *e = lt_safetensors_find(st, name);
    if (!e) return lt_error(LT_ERR_FORMAT, "%s: no tensor named '%s'", st->path, name);
    if (e->dtype != dt)
        return lt_error(LT_ERR_FORMAT, "%s: tensor '%s': expected dtype %s, got %s", st->path, name,
                        lt_dtype_name(dt), lt_dtype_name(e->dtype));
    if (shape) {
        int same = e->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
        if (!same) {
            char a[160], b[160];
            return lt_error(LT_ERR_FORMAT, "%s: tensor '%s': expected shape %s, got %s", st->path, name,
                            shape_str(ndim, shape, a, sizeof a), shape_str(e->ndim, e->shape, b, sizeof b));
        }
    }
    *data = lt_safetensors_data(st, e);
    return LT_OK;
}

lt_status lt_safetensors_get_f32(const lt_safetensors *st, const char *name, int ndim,
                                 const int64_t *shape, const float **data) {
    const void *p;
    lt_status s = lt_safetensors_get(st, name, LT_DT_F32, ndim, shape, &p);
    *data = p;
    return s;
}

const char *lt_safetensors_metadata(const lt_safetensors *st, const char *key) {
    for (int64_t k = 0; k < st->n_meta; k++)
        if (!strcmp(st->meta[2 * k], key)) return st->meta[2 * k + 1];
    return NULL;
}

int64_t lt_safetensors_metadata_count(const lt_safetensors *st) { return st->n_meta; }

void lt_safetensors_metadata_at(const lt_safetensors *st, int64_t i, const char **key, const char **value) {
    int ok = i >= 0 && i < st->n_meta;
    if (key) *key = ok ? st->meta[2 * i] : NULL;
    if (value) *value = ok ? st->meta[2 * i + 1] : NULL;
}

/* ---- writer ---- */

typedef struct named { const char *name; int64_t idx; } named;
static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Validates the tensors and builds the header JSON; tensors in `order` (sorted by name)
 * are laid out back to back. */
static lt_status build_header(const char *path, const lt_st_tensor *t, const named *order, int64_t n,
                              const char *const *meta_kv, int64_t n_meta, lt_jw *w) {
    lt_jw_begin_object(w);
    if (n_meta > 0) {
        lt_jw_key(w, "__metadata__");
        lt_jw_begin_object(w);
        for (int64_t k = 0; k < n_meta; k++) {
            const char *key = meta_kv[2 * k], *val = meta_kv[2 * k + 1];
            if (!key || !val) return lt_error(LT_ERR_ARG, "%s: metadata pair %lld has a NULL key or value", path, (long long)k);
            for (int64_t j = 0; j < k; j++)
                if (!strcmp(meta_kv[2 * j], key)) return lt_error(LT_ERR_ARG, "%s: duplicate metadata key '%s'", path, key);
            lt_jw_key(w, key);
            lt_jw_string(w, val);
        }
        lt_jw_end_object(w);
    }
    int64_t off = 0;
    for (int64_t k = 0; k < n; k++) {
        const lt_st_tensor *x = &t[order[k].idx];
        if (k > 0 && !strcmp(x->name, order[k - 1].name))
            return lt_error(LT_ERR_ARG, "%s: duplicate tensor name '%s'", path, x->name);
        if ((unsigned)x->dtype >= LT_DT_COUNT)
            return lt_error(LT_ERR_ARG, "%s: tensor '%s': invalid dtype %d", path, x->name, (int)x->dtype);
        if (x->ndim < 0 || x->ndim > LT_ST_MAX_DIMS)
            return lt_error(LT_ERR_ARG, "%s: tensor '%s': ndim %d not in [0, %d]", path, x->name, x->ndim, LT_ST_MAX_DIMS);
        int64_t esize = dtypes[x->dtype].size, numel = checked_numel(x->ndim, x->shape, esize);
        if (numel < 0) return lt_error(LT_ERR_ARG, "%s: tensor '%s': negative or overflowing shape", path, x->name);
        if (numel && !x->data) return lt_error(LT_ERR_ARG, "%s: tensor '%s': no data", path, x->name);
        if (off > INT64_MAX - numel * esize) return lt_error(LT_ERR_ARG, "%s: tensors too large", path);
        lt_jw_key(w, x->name);
        lt_jw_begin_object(w);
        lt_jw_key(w, "dtype");
        lt_jw_string(w, dtypes[x->dtype].name);
        lt_jw_key(w, "shape");
        lt_jw_begin_array(w);
        for (int d = 0; d < x->ndim; d++) lt_jw_int(w, x->shape[d]);
        lt_jw_end_array(w);
        lt_jw_key(w, "data_offsets");
        lt_jw_begin_array(w);
        lt_jw_int(w, off);
        lt_jw_int(w, off + numel * esize);
        lt_jw_end_array(w);
        lt_jw_end_object(w);
        off += numel * esize;
    }
    lt_jw_end_object(w);
    return lt_jw_finish(w, NULL, NULL);
}

lt_status lt_safetensors_save(const char *path, const lt_st_tensor *t, int64_t n,
                              const char *const *meta_kv, int64_t n_meta) {
    if (n < 0 || n_meta < 0 || (n && !t) || (n_meta && !meta_kv))
        return lt_error(LT_ERR_ARG, "%s: lt_safetensors_save: bad tensor or metadata list", path);
    for (int64_t i = 0; i < n; i++)
        if (!t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__"))
            return lt_error(LT_ERR_ARG, "%s: tensor %lld has an empty or reserved name", path, (long long)i);
    named *order = lt_malloc((size_t)(n + 1) * sizeof *order);
    if (!order) return lt_error(LT_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < n; i++) order[i] = (named){t[i].name, i};
    qsort(order, (size_t)n, sizeof *order, cmp_named);

    lt_jw w;
    lt_jw_init(&w, 0);
    lt_status s = build_header(path, t, order, n, meta_kv, n_meta, &w);
    lt_atomic_file *f = NULL;
    if (!s) s = lt_atomic_open(path, &f);
    if (!s) {
        static const char spaces[8] = "        ";
        int64_t pad = (8 - w.len % 8) % 8, hlen = w.len + pad;
        unsigned char len8[8];
        for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
        lt_atomic_write(f, len8, 8);
        lt_atomic_write(f, w.buf, w.len);
        lt_atomic_write(f, spaces, pad);
        for (int64_t k = 0; k < n; k++) {
            const lt_st_tensor *x = &t[order[k].idx];
            int64_t esize = dtypes[x->dtype].size;
            lt_atomic_write(f, x->data, checked_numel(x->ndim, x->shape, esize) * esize);
        }
        s = lt_atomic_commit(f);
    }
    lt_jw_free(&w);
    lt_free(order);
    return s;
}
