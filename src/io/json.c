/* JSON: a strict RFC 8259 parser into a small tree, and a streaming writer.
 *
 * The parser never trusts its input: every read is bounds-checked against len, nesting is
 * capped (no stack overflow on "[[[[..."), and an error names the file, the byte offset
 * and what was expected vs found. */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if invalid:
 * truncated, overlong, a surrogate, or beyond U+10FFFF. */
static int utf8_seq_len(const unsigned char *s, int64_t n) {
    unsigned c = s[0];
    int len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static int utf8_put(char *d, uint32_t cp) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xC0 | cp >> 6); d[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12); d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18); d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ======================================================================================
 * Parser
 * ====================================================================================== */

typedef struct parser {
    const unsigned char *s;
    int64_t len, pos;
    const char *name;
    int64_t base;
    int depth;
} parser;

static lt_status failf(const parser *p, int64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lt_status failf(const parser *p, int64_t at, const char *fmt, ...) {
    char where[300];
    snprintf(where, sizeof where, "%s: byte %lld", p->name, (long long)(p->base + at));
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(LT_ERR_FORMAT, where, fmt, ap);
    va_end(ap);
    return s;
}

/* "expected X, got Y" where Y describes the byte at p->pos. */
static lt_status expected(const parser *p, const char *what) {
    if (p->pos >= p->len) return failf(p, p->pos, "expected %s, got end of text", what);
    unsigned c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7F) return failf(p, p->pos, "expected %s, got '%c'", what, (int)c);
    return failf(p, p->pos, "expected %s, got byte 0x%02x", what, c);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static void json_clear(lt_json *v) {
    if (v->type == LT_JSON_STRING) lt_free(v->str);
    if (v->type == LT_JSON_ARRAY || v->type == LT_JSON_OBJECT) {
        for (int64_t k = 0; k < v->n; k++) {
            json_clear(&v->items[k]);
            if (v->keys) lt_free(v->keys[k]);
        }
        lt_free(v->items);
        lt_free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

static int hex4(const unsigned char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/* p->pos is at the opening quote. The decoded string is never longer than the raw one,
 * so one allocation of the raw length suffices. */
static lt_status parse_string(parser *p, char **out) {
    int64_t start = p->pos, end = p->pos + 1;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return failf(p, start, "unterminated string");
    char *d = lt_malloc((size_t)(end - start));
    if (!d) return lt_error(LT_ERR_NOMEM, "%s: out of memory parsing JSON", p->name);
    int64_t i = start + 1, k = 0;
    while (i < end) {
        unsigned c = p->s[i];
        if (c < 0x20) { lt_free(d); return failf(p, i, "control character 0x%02x in string (must be escaped)", c); }
        if (c != '\\') {
            int n = utf8_seq_len(p->s + i, end - i);
            if (!n) { lt_free(d); return failf(p, i, "invalid UTF-8 in string"); }
            memcpy(d + k, p->s + i, (size_t)n);
            k += n;
            i += n;
            continue;
        }
        c = p->s[i + 1];   /* i + 1 < end: the scan above stepped over every escape */
        const char *simple = strchr("\"\\/bfnrt", (int)c);
        if (c && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            d[k++] = map[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        uint32_t cp, lo;
        if (c != 'u') { lt_free(d); return failf(p, i, "invalid escape '\\%c'", c >= 0x20 && c < 0x7F ? (int)c : '?'); }
        if (end - i < 6 || !hex4(p->s + i + 2, &cp)) { lt_free(d); return failf(p, i, "\\u needs 4 hex digits"); }
        int64_t at = i;
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) { lt_free(d); return failf(p, at, "unpaired UTF-16 low surrogate \\u%04X", (unsigned)cp); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - i < 6 || p->s[i] != '\\' || p->s[i + 1] != 'u' || !hex4(p->s + i + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
                lt_free(d);
                return failf(p, at, "UTF-16 high surrogate \\u%04X not followed by a low one", (unsigned)cp);
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        if (cp == 0) { lt_free(d); return failf(p, at, "\\u0000 is not allowed in strings"); }
        k += utf8_put(d + k, cp);
    }
    d[k] = '\0';
    p->pos = end + 1;
    *out = d;
    return LT_OK;
}

static int is_digit(parser *p) { return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; }

static lt_status parse_number(parser *p, lt_json *v) {
    int64_t start = p->pos;
    int is_int = 1;
    if (p->s[p->pos] == '-') p->pos++;
    if (!is_digit(p)) return expected(p, "a digit");
    if (p->s[p->pos] == '0') p->pos++;
    else while (is_digit(p)) p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        is_int = 0;
        p->pos++;
        if (!is_digit(p)) return expected(p, "a digit after '.'");
        while (is_digit(p)) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_int = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!is_digit(p)) return expected(p, "a digit in the exponent");
        while (is_digit(p)) p->pos++;
    }
    int64_t n = p->pos - start;
    char tok[128];
    if (n >= (int64_t)sizeof tok) return failf(p, start, "number longer than %d characters", (int)sizeof tok - 1);
    memcpy(tok, p->s + start, (size_t)n);
    tok[n] = '\0';
    v->type = LT_JSON_NUMBER;
    if (is_int) {
        /* Accumulate negatively so INT64_MIN fits; overflow falls back to a double. */
        int neg = tok[0] == '-';
        int64_t acc = 0;
        for (const char *c = tok + neg; *c; c++) {
            int dgt = *c - '0';
            if (acc < (INT64_MIN + dgt) / 10) { is_int = 0; break; }
            acc = acc * 10 - dgt;
        }
        if (is_int && !neg && acc == INT64_MIN) is_int = 0;
        if (is_int) {
            v->is_int = 1;
            v->i = neg ? acc : -acc;
            v->num = (double)v->i;
            return LT_OK;
        }
    }
    v->num = strtod(tok, NULL);
    if (!isfinite(v->num)) return failf(p, start, "number %s is out of range", tok);
    return LT_OK;
}

static lt_status parse_value(parser *p, lt_json *v);

/* Appends *item (and key) to container v, growing its arrays by doubling. */
static lt_status push_item(parser *p, lt_json *v, int64_t *cap, lt_json *item, char *key) {
    if (v->n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 4;
        lt_json *items = lt_realloc(v->items, (size_t)nc * sizeof *items);
        if (!items) return lt_error(LT_ERR_NOMEM, "%s: out of memory parsing JSON", p->name);
        v->items = items;
        if (v->type == LT_JSON_OBJECT) {
            char **keys = lt_realloc(v->keys, (size_t)nc * sizeof *keys);
            if (!keys) return lt_error(LT_ERR_NOMEM, "%s: out of memory parsing JSON", p->name);
            v->keys = keys;
        }
        *cap = nc;
    }
    v->items[v->n] = *item;
    if (v->type == LT_JSON_OBJECT) v->keys[v->n] = key;
    v->n++;
    return LT_OK;
}

static int cmp_keys(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorting a copy of the keys finds duplicates in O(n log n), so a header with 100k
 * tensor names stays fast. */
static lt_status check_duplicate_keys(parser *p, const lt_json *v) {
    if (v->n < 2) return LT_OK;
    char **sorted = lt_malloc((size_t)v->n * sizeof *sorted);
    if (!sorted) return lt_error(LT_ERR_NOMEM, "%s: out of memory parsing JSON", p->name);
    memcpy(sorted, v->keys, (size_t)v->n * sizeof *sorted);
    qsort(sorted, (size_t)v->n, sizeof *sorted, cmp_keys);
    const char *dup = NULL;
    for (int64_t k = 1; k < v->n && !dup; k++)
        if (!strcmp(sorted[k - 1], sorted[k])) dup = sorted[k];
    lt_status s = LT_OK;
    if (dup) {
        int64_t seen = 0, at = v->offset;
        for (int64_t k = 0; k < v->n; k++)
            if (!strcmp(v->keys[k], dup) && seen++) { at = v->items[k].offset - p->base; break; }
        s = failf(p, at, "duplicate key \"%.200s\"", dup);
    }
    lt_free(sorted);
    return s;
}

/* p->pos is at '[' or '{'. On error the partly built container is freed. */
static lt_status parse_container(parser *p, lt_json *v, int is_object) {
    const char close = is_object ? '}' : ']';
    if (++p->depth > LT_JSON_MAX_DEPTH) return failf(p, p->pos, "nesting deeper than %d", LT_JSON_MAX_DEPTH);
    v->type = is_object ? LT_JSON_OBJECT : LT_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    int64_t cap = 0;
    lt_status s = LT_OK;
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; p->depth--; return LT_OK; }
    for (;;) {
        char *key = NULL;
        lt_json item;
        if (is_object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') { s = expected(p, "a string key"); break; }
            if ((s = parse_string(p, &key))) break;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { lt_free(key); s = expected(p, "':' after the key"); break; }
            p->pos++;
        }
        if ((s = parse_value(p, &item))) { lt_free(key); break; }
        if ((s = push_item(p, v, &cap, &item, key))) { json_clear(&item); lt_free(key); break; }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; break; }
        s = expected(p, is_object ? "',' or '}' in object" : "',' or ']' in array");
        break;
    }
    if (!s && is_object) s = check_duplicate_keys(p, v);
    if (s) json_clear(v);
    p->depth--;
    return s;
}

static lt_status parse_value(parser *p, lt_json *v) {
    memset(v, 0, sizeof *v);
    skip_ws(p);
    v->offset = p->base + p->pos;
    if (p->pos >= p->len) return expected(p, "a value");
    unsigned char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, v, c == '{');
    if (c == '"') {
        lt_status s = parse_string(p, &v->str);
        if (!s) v->type = LT_JSON_STRING;
        return s;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    static const struct { const char *word; lt_json_type type; int b; } lits[] = {
        {"true", LT_JSON_BOOL, 1}, {"false", LT_JSON_BOOL, 0}, {"null", LT_JSON_NULL, 0}};
    for (int k = 0; k < 3; k++) {
        int64_t n = (int64_t)strlen(lits[k].word);
        if (p->len - p->pos >= n && !memcmp(p->s + p->pos, lits[k].word, (size_t)n)) {
            v->type = lits[k].type;
            v->boolean = lits[k].b;
            p->pos += n;
            return LT_OK;
        }
    }
    return expected(p, "a value");
}

lt_status lt_json_parse_at(const char *text, int64_t len, const char *name, int64_t base,
                           lt_json **out) {
    *out = NULL;
    if (!text || len < 0) return lt_error(LT_ERR_ARG, "lt_json_parse: no text");
    parser p = {(const unsigned char *)text, len, 0, name ? name : "json", base, 0};
    lt_json *root = lt_calloc(1, sizeof *root);
    if (!root) return lt_error(LT_ERR_NOMEM, "%s: out of memory parsing JSON", p.name);
    lt_status s = parse_value(&p, root);
    if (!s) {
        skip_ws(&p);
        if (p.pos < p.len) s = expected(&p, "end of text after the JSON value");
    }
    if (s) { lt_json_free(root); return s; }
    *out = root;
    return LT_OK;
}

lt_status lt_json_parse(const char *text, int64_t len, const char *name, lt_json **out) {
    return lt_json_parse_at(text, len, name, 0, out);
}

lt_status lt_json_load(const char *path, int64_t max_bytes, lt_json **out) {
    char *text;
    int64_t n;
    *out = NULL;
    lt_status s = lt_file_read(path, max_bytes > 0 ? max_bytes : (int64_t)100 << 20, &text, &n);
    if (s) return s;
    s = lt_json_parse(text, n, path, out);
    lt_free(text);
    return s;
}

void lt_json_free(lt_json *j) {
    if (!j) return;
    json_clear(j);
    lt_free(j);
}

const lt_json *lt_json_get(const lt_json *j, const char *key) {
    if (!j || j->type != LT_JSON_OBJECT) return NULL;
    for (int64_t k = 0; k < j->n; k++)
        if (!strcmp(j->keys[k], key)) return &j->items[k];
    return NULL;
}

const lt_json *lt_json_at(const lt_json *j, int64_t i) {
    if (!j || j->type != LT_JSON_ARRAY || i < 0 || i >= j->n) return NULL;
    return &j->items[i];
}

double lt_json_number(const lt_json *j, double fallback) {
    if (j && j->type == LT_JSON_NUMBER) return j->num;
    if (j && j->type == LT_JSON_NULL) return NAN;   /* the writer's spelling of NaN/Inf */
    return fallback;
}

const char *lt_json_string(const lt_json *j, const char *fallback) {
    return j && j->type == LT_JSON_STRING ? j->str : fallback;
}

/* ======================================================================================
 * Writer
 * ====================================================================================== */

static void jw_fail(lt_jw *w, lt_status s, const char *why) {
    if (w->err) return;
    w->err = s;
    w->why = why;
    lt_error(s, "json writer: %s", why);
}

static void put(lt_jw *w, const char *s, int64_t n) {
    if (w->err) return;
    if (w->len + n + 1 > w->cap) {
        int64_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n + 1) nc *= 2;
        char *b = lt_realloc(w->buf, (size_t)nc);
        if (!b) { jw_fail(w, LT_ERR_NOMEM, "out of memory"); return; }
        w->buf = b;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, s, (size_t)n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(lt_jw *w, const char *s) { put(w, s, (int64_t)strlen(s)); }

static void newline(lt_jw *w, int depth) {
    if (!w->indent) return;
    put(w, "\n", 1);
    for (int k = 0; k < depth * w->indent; k++) put(w, " ", 1);
}

void lt_jw_init(lt_jw *w, int indent) {
    memset(w, 0, sizeof *w);
    w->indent = indent < 0 ? 0 : indent;
}

void lt_jw_free(lt_jw *w) {
    lt_free(w->buf);
    memset(w, 0, sizeof *w);
}

/* Separator before a value or a key: a comma after a previous item, then a newline. */
static void separate(lt_jw *w) {
    if (w->depth == 0) {
        if (w->len > 0) jw_fail(w, LT_ERR_ARG, "more than one top-level value");
        return;
    }
    if (w->has_items[w->depth - 1]) put(w, ",", 1);
    w->has_items[w->depth - 1] = 1;
    newline(w, w->depth);
}

static void before_value(lt_jw *w) {
    if (w->err) return;
    if (w->after_key) { w->after_key = 0; return; }
    if (w->depth > 0 && w->is_object[w->depth - 1]) { jw_fail(w, LT_ERR_ARG, "value inside an object without a key"); return; }
    separate(w);
}

static void put_string(lt_jw *w, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    int64_t n = (int64_t)strlen(s), i = 0;
    put(w, "\"", 1);
    while (i < n) {
        unsigned c = u[i];
        char esc[8];
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (named) { puts_(w, named); i++; continue; }
        int len = c < 0x20 ? 0 : utf8_seq_len(u + i, n - i);
        if (!len) {
            /* A control character, or a byte that is not UTF-8 (e.g. in a Latin-1 file
             * name): escape it as that code point so the output stays valid JSON. */
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(w, esc);
            i++;
            continue;
        }
        put(w, s + i, len);
        i += len;
    }
    put(w, "\"", 1);
}

void lt_jw_begin_object(lt_jw *w) {
    before_value(w);
    if (w->depth == LT_JSON_MAX_DEPTH) jw_fail(w, LT_ERR_ARG, "nesting too deep");
    if (w->err) return;
    put(w, "{", 1);
    w->is_object[w->depth] = 1;
    w->has_items[w->depth] = 0;
    w->depth++;
}

void lt_jw_begin_array(lt_jw *w) {
    before_value(w);
    if (w->depth == LT_JSON_MAX_DEPTH) jw_fail(w, LT_ERR_ARG, "nesting too deep");
    if (w->err) return;
    put(w, "[", 1);
    w->is_object[w->depth] = 0;
    w->has_items[w->depth] = 0;
    w->depth++;
}

static void end_container(lt_jw *w, int is_object) {
    if (w->err) return;
    if (w->depth == 0 || w->is_object[w->depth - 1] != is_object || w->after_key) {
        jw_fail(w, LT_ERR_ARG, is_object ? "end_object does not match" : "end_array does not match");
        return;
    }
    w->depth--;
    if (w->has_items[w->depth]) newline(w, w->depth);
    put(w, is_object ? "}" : "]", 1);
}

void lt_jw_end_object(lt_jw *w) { end_container(w, 1); }
void lt_jw_end_array(lt_jw *w) { end_container(w, 0); }

void lt_jw_key(lt_jw *w, const char *key) {
    if (w->err) return;
    if (w->depth == 0 || !w->is_object[w->depth - 1] || w->after_key) {
        jw_fail(w, LT_ERR_ARG, "key outside an object or after another key");
        return;
    }
    separate(w);
    put_string(w, key);
    puts_(w, w->indent ? ": " : ":");
    w->after_key = 1;
}

void lt_jw_string(lt_jw *w, const char *s) {
    before_value(w);
    if (!s) { puts_(w, "null"); return; }
    put_string(w, s);
}

void lt_jw_int(lt_jw *w, int64_t v) {
    char b[32];
    before_value(w);
    snprintf(b, sizeof b, "%lld", (long long)v);
    puts_(w, b);
}

void lt_jw_double(lt_jw *w, double v) {
    char b[40];
    before_value(w);
    if (!isfinite(v)) { puts_(w, "null"); return; }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    puts_(w, b);
}

void lt_jw_float(lt_jw *w, float v) {
    char b[40];
    before_value(w);
    if (!isfinite(v)) { puts_(w, "null"); return; }
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    puts_(w, b);
}

void lt_jw_bool(lt_jw *w, int v) {
    before_value(w);
    puts_(w, v ? "true" : "false");
}

void lt_jw_null(lt_jw *w) {
    before_value(w);
    puts_(w, "null");
}

lt_status lt_jw_finish(lt_jw *w, const char **text, int64_t *n) {
    if (!w->err && (w->depth != 0 || w->after_key || w->len == 0)) jw_fail(w, LT_ERR_ARG, "document is incomplete");
    if (w->err) return lt_error(w->err, "json writer: %s", w->why);
    if (text) *text = w->buf;
    if (n) *n = w->len;
    return LT_OK;
}
