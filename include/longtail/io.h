/* longtail io: checkpoints (safetensors), atomic file writes, JSON, recipe INI files.
 *
 * Ownership. Every object returned through an `out` pointer (lt_safetensors, lt_json,
 * lt_config, lt_atomic_file, a buffer from lt_file_read) belongs to the caller and is
 * released with its _free / commit / abort function; every _free accepts NULL. Pointers
 * returned by lookups (entries, tensor data, metadata values, JSON children, config
 * strings) point into their owner and stay valid until it is freed (config strings: until
 * the key is set again).
 *
 * Errors. Bad files give LT_ERR_FORMAT (bad recipes LT_ERR_CONFIG) and a one-line message
 * that names the file and what is wrong, with the byte offset or line where it makes
 * sense: "ckpt.safetensors: byte 131: tensor 'fc.weight': data_offsets [0, 40] hold 40
 * bytes, dtype F32 shape (10, 2) needs 80". Nothing here trusts a length read from a file
 * before checking it against the file's size, so a corrupt file cannot cause a huge
 * allocation or an out-of-bounds read.
 *
 * Durability. Every file the library writes goes to `path.tmp`, is flushed and fsync'ed,
 * then renamed over `path`: a crash or an error leaves either the old file or the new one,
 * never a torn one. See docs/formats.md for the file formats. */
#ifndef LONGTAIL_IO_H
#define LONGTAIL_IO_H

#include "core.h"

/* ======================================================================================
 * Files
 * ====================================================================================== */

/* Writes n bytes to `path` atomically (path.tmp, fflush, fsync, rename). */
lt_status lt_file_write_atomic(const char *path, const void *data, int64_t n);

/* Streaming atomic writer. Errors are sticky: after a failed write, later writes do
 * nothing and commit returns the first error. commit and abort both free f; on any
 * failure path.tmp is removed and `path` is left as it was. */
typedef struct lt_atomic_file lt_atomic_file;
lt_status lt_atomic_open(const char *path, lt_atomic_file **out);
lt_status lt_atomic_write(lt_atomic_file *f, const void *data, int64_t n);
lt_status lt_atomic_printf(lt_atomic_file *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
lt_status lt_atomic_commit(lt_atomic_file *f);
void lt_atomic_abort(lt_atomic_file *f);   /* NULL is a no-op */

/* Reads a whole file into a new NUL-terminated buffer (free with lt_free). Files larger
 * than max_bytes are refused with LT_ERR_FORMAT (max_bytes <= 0: no limit). */
lt_status lt_file_read(const char *path, int64_t max_bytes, char **data, int64_t *n);
int lt_path_exists(const char *path);
/* Creates a directory and its missing parents (like `mkdir -p`); existing ones are fine. */
lt_status lt_mkdir_p(const char *path);

/* ======================================================================================
 * safetensors checkpoints
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__":{"k":"v",...}, "name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]}, ...}
 * then the data section; offsets are relative to its start. Tensors are row-major,
 * little-endian. Written by lt_safetensors_save in sorted name order with the header
 * padded with spaces to a multiple of 8, exactly as PyTorch's safetensors library does.
 * ====================================================================================== */

typedef enum lt_dtype {
    LT_DT_F32, LT_DT_F64, LT_DT_F16, LT_DT_BF16,
    LT_DT_I64, LT_DT_I32, LT_DT_I16, LT_DT_I8,
    LT_DT_U64, LT_DT_U32, LT_DT_U16, LT_DT_U8,
    LT_DT_BOOL,
    LT_DT_COUNT
} lt_dtype;

const char *lt_dtype_name(lt_dtype dt);   /* "F32", ...; "?" for an invalid value */
int64_t lt_dtype_size(lt_dtype dt);       /* bytes per element; 0 for an invalid value */

#define LT_ST_MAX_DIMS 8
/* Cap on the JSON header: a larger header length in a file is treated as corrupt. */
#define LT_ST_MAX_HEADER ((int64_t)100 << 20)

typedef struct lt_st_entry {
    char *name;
    lt_dtype dtype;
    int ndim;                        /* 0 = scalar */
    int64_t shape[LT_ST_MAX_DIMS];
    int64_t numel;
    int64_t offset, nbytes;          /* as in the file: data_offsets = [offset, offset+nbytes] */
} lt_st_entry;

typedef struct lt_safetensors lt_safetensors;

/* Reads and validates the whole file into memory. Each tensor's data is 64-byte aligned
 * in memory, whatever its offset in the file. */
lt_status lt_safetensors_load(const char *path, lt_safetensors **out);
void lt_safetensors_free(lt_safetensors *st);
const char *lt_safetensors_path(const lt_safetensors *st);
/* Entries are sorted by name. */
int64_t lt_safetensors_count(const lt_safetensors *st);
const lt_st_entry *lt_safetensors_entry(const lt_safetensors *st, int64_t i);
const lt_st_entry *lt_safetensors_find(const lt_safetensors *st, const char *name);  /* NULL if absent */
const void *lt_safetensors_data(const lt_safetensors *st, const lt_st_entry *e);
/* Tensor `name` of dtype `dt`; checks the shape when `shape` is not NULL (ndim dims).
 * Errors name the file, the tensor and expected vs got (LT_ERR_FORMAT). */
lt_status lt_safetensors_get(const lt_safetensors *st, const char *name, lt_dtype dt,
                             int ndim, const int64_t *shape, const void **data);
lt_status lt_safetensors_get_f32(const lt_safetensors *st, const char *name, int ndim,
                                 const int64_t *shape, const float **data);
/* Value of __metadata__[key], or NULL if absent. */
const char *lt_safetensors_metadata(const lt_safetensors *st, const char *key);
int64_t lt_safetensors_metadata_count(const lt_safetensors *st);
/* i-th metadata pair in file order; key/value may be NULL. */
void lt_safetensors_metadata_at(const lt_safetensors *st, int64_t i, const char **key,
                                const char **value);

typedef struct lt_st_tensor {
    const char *name;
    lt_dtype dtype;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
    const void *data;                /* numel * dtype size bytes, little-endian */
} lt_st_tensor;

/* Writes n tensors (any order; duplicate names are an error) and n_meta metadata pairs
 * given as meta_kv = {key0, value0, key1, value1, ...}, atomically. */
lt_status lt_safetensors_save(const char *path, const lt_st_tensor *t, int64_t n,
                              const char *const *meta_kv, int64_t n_meta);

/* ======================================================================================
 * JSON
 *
 * Reading: a strict RFC 8259 parser into a small tree. Numbers: `num` always holds the
 * value; `is_int` says it was written as an integer that fits int64, then `i` is exact.
 * Strings are valid UTF-8 with escapes decoded (\u0000 is refused). Duplicate keys in an
 * object are an error. Nesting is limited to LT_JSON_MAX_DEPTH.
 * ====================================================================================== */

#define LT_JSON_MAX_DEPTH 128

typedef enum lt_json_type {
    LT_JSON_NULL, LT_JSON_BOOL, LT_JSON_NUMBER, LT_JSON_STRING, LT_JSON_ARRAY, LT_JSON_OBJECT
} lt_json_type;

typedef struct lt_json {
    lt_json_type type;
    int boolean;             /* BOOL */
    int is_int;              /* NUMBER written as an int64 integer */
    int64_t i;               /* NUMBER, exact when is_int */
    double num;              /* NUMBER */
    char *str;               /* STRING */
    int64_t n;               /* ARRAY, OBJECT: number of children */
    struct lt_json *items;   /* ARRAY, OBJECT: children in file order */
    char **keys;             /* OBJECT: keys[k] names items[k] */
    int64_t offset;          /* byte offset of the value in the text (for messages) */
} lt_json;

/* Parses len bytes of text; `name` (a file name) starts every error message. */
lt_status lt_json_parse(const char *text, int64_t len, const char *name, lt_json **out);
/* Reads and parses a file (at most max_bytes, <= 0: 100 MB). */
lt_status lt_json_load(const char *path, int64_t max_bytes, lt_json **out);
void lt_json_free(lt_json *j);
/* Child of an object by key; NULL if j is not an object or has no such key. */
const lt_json *lt_json_get(const lt_json *j, const char *key);
/* Array element; NULL if j is not an array or i is out of range. */
const lt_json *lt_json_at(const lt_json *j, int64_t i);
/* Typed reads with a fallback for a missing child or a wrong type (null reads as NaN). */
double lt_json_number(const lt_json *j, double fallback);
const char *lt_json_string(const lt_json *j, const char *fallback);

/* Writing: a streaming writer into a growable buffer. Commas and (with indent > 0)
 * newlines and indentation are inserted automatically. Errors (out of memory, a value
 * where a key is needed, unbalanced ends, too deep) are sticky and returned by
 * lt_jw_finish. Non-finite numbers are written as null, since JSON has no NaN/Inf. */
typedef struct lt_jw {
    char *buf;
    int64_t len, cap;
    int indent;
    int depth;
    int after_key;
    lt_status err;
    const char *why;         /* what went wrong, when err != LT_OK */
    uint8_t is_object[LT_JSON_MAX_DEPTH];
    uint8_t has_items[LT_JSON_MAX_DEPTH];
} lt_jw;

void lt_jw_init(lt_jw *w, int indent);   /* indent 0: compact, one line */
void lt_jw_free(lt_jw *w);
void lt_jw_begin_object(lt_jw *w);
void lt_jw_end_object(lt_jw *w);
void lt_jw_begin_array(lt_jw *w);
void lt_jw_end_array(lt_jw *w);
void lt_jw_key(lt_jw *w, const char *key);
void lt_jw_string(lt_jw *w, const char *s);
void lt_jw_int(lt_jw *w, int64_t v);
void lt_jw_double(lt_jw *w, double v);   /* shortest of %.15g..%.17g that reads back exactly */
void lt_jw_float(lt_jw *w, float v);     /* shortest of %.6g..%.9g that reads back as the same float */
void lt_jw_bool(lt_jw *w, int v);
void lt_jw_null(lt_jw *w);
/* Checks the document is complete; on success *text (NUL-terminated, owned by w) and *n.
 * text/n may be NULL. */
lt_status lt_jw_finish(lt_jw *w, const char **text, int64_t *n);

/* ======================================================================================
 * Recipe config files (INI)
 *
 *   # comment            ; comment too
 *   [stage1]             sections in file order: [data] [model] [stage1] [stage2] [eval]
 *   epochs = 200         key = value; an inline comment needs whitespace before # or ;
 *   milestones = 160, 180
 *   name = "a # b"       a value quoted with "..." keeps #, ; and outer spaces
 *
 * A duplicate section, a duplicate key in a section, a key before any section or a line
 * that is neither is an LT_ERR_CONFIG naming file:line. Which keys exist is up to the code
 * that reads the recipe: getters mark keys as used, and lt_config_check_unused() then
 * reports the first key nobody read ("recipe.ini:14: unknown key stage1.lrr (did you mean
 * stage1.lr?)"), so a typo never silently becomes a default.
 * ====================================================================================== */

typedef struct lt_config lt_config;

lt_status lt_config_load(const char *path, lt_config **out);   /* at most 1 MB */
/* `name` (e.g. a file name, "default recipe") starts error messages. */
lt_status lt_config_parse_string(const char *text, const char *name, lt_config **out);
void lt_config_free(lt_config *cfg);
const char *lt_config_name(const lt_config *cfg);

/* Overrides: sets "section.key" to value, adding the section and/or key if missing (a new
 * key must still be read by someone, or lt_config_check_unused reports it). */
lt_status lt_config_set(lt_config *cfg, const char *dotted_key, const char *value);
/* "section.key=value" as given to --set. */
lt_status lt_config_set_arg(lt_config *cfg, const char *arg);

/* Sections in file order (sections added by lt_config_set come last). */
int64_t lt_config_section_count(const lt_config *cfg);
const char *lt_config_section_name(const lt_config *cfg, int64_t i);
/* Marks the section as used (an empty section is then not reported as unknown). */
int lt_config_has_section(lt_config *cfg, const char *section);
/* Whether section.key is present; does not mark it used. */
int lt_config_has(const lt_config *cfg, const char *section, const char *key);

/* A whole string as one finite number (white space around it allowed): 1 and *out set,
 * else 0. The number syntax of the typed getters below. */
int lt_parse_double(const char *s, double *out);

/* Typed getters. A missing key gives the default and LT_OK; a present key is marked used
 * and a bad value is LT_ERR_CONFIG "recipe.ini:12: stage1.lr: expected a number, got 'abc'".
 * Strings stay valid until the key is set again or cfg is freed. _float reads a double.
 * _bool accepts true/false, yes/no, on/off, 1/0 (any case). */
lt_status lt_config_get_str(lt_config *cfg, const char *section, const char *key,
                            const char *def, const char **out);
lt_status lt_config_get_int(lt_config *cfg, const char *section, const char *key,
                            int64_t def, int64_t *out);
lt_status lt_config_get_float(lt_config *cfg, const char *section, const char *key,
                              double def, double *out);
lt_status lt_config_get_bool(lt_config *cfg, const char *section, const char *key,
                             int def, int *out);
/* Comma-separated lists ("160, 180"; "" is the empty list) into vals[0..cap). On entry
 * vals[0..*n) hold the default, which a missing key leaves as is. More than cap items is
 * an error. */
lt_status lt_config_get_int_list(lt_config *cfg, const char *section, const char *key,
                                 int64_t *vals, int64_t cap, int64_t *n);
lt_status lt_config_get_float_list(lt_config *cfg, const char *section, const char *key,
                                   double *vals, int64_t cap, int64_t *n);

/* LT_OK if every key (and section) was read; otherwise LT_ERR_CONFIG naming the first
 * unread one with its file:line, and the closest key the code asked for. */
lt_status lt_config_check_unused(const lt_config *cfg);

/* The resolved recipe as INI text that parses back to the same sections, keys and values
 * (new buffer, free with lt_free); lt_config_save writes it atomically. */
lt_status lt_config_to_string(const lt_config *cfg, char **text);
lt_status lt_config_save(const lt_config *cfg, const char *path);

#endif
