/* Recipe config files: a strict INI dialect (see io.h and docs/formats.md).
 *
 * Unlike darknet's parser, which warns and goes on, nothing here is forgiving: a line that
 * is not understood, a duplicate, or a key no code ever read is an error naming file:line,
 * because a silently ignored typo ("lrr = 0.1") makes a published number irreproducible.
 * Keys are typed only when read; the code that reads a section decides its schema. */
#include "longtail/io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct cfg_entry {
    char *section, *key, *value;
    int line;        /* 1-based line in the file; 0 = set by an override */
    int used;
} cfg_entry;

typedef struct cfg_section {
    char *name;
    int line;
    int used;
} cfg_section;

typedef struct cfg_query { char *section, *key; } cfg_query;   /* asked for but absent */

struct lt_config {
    char *name;
    cfg_entry *e;
    int64_t n, cap;
    cfg_section *sec;
    int64_t n_sec, cap_sec;
    cfg_query *q;
    int64_t n_q, cap_q;
};

/* ---- small helpers ---- */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 1;
    int64_t nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *q = lt_realloc(*p, (size_t)nc * elem);
    if (!q) return 0;
    *p = q;
    *cap = nc;
    return 1;
}

static char *dup_range(const char *s, size_t n) {
    char *d = lt_malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = '\0'; }
    return d;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Letters, digits, '_' and '-'; a section name may also have '.' between such runs
 * ([model.teacher]), a key may not, so `--set a.b.c=v` is section a.b, key c. */
static int valid_name(const char *s, size_t n, int allow_dot) {
    if (n == 0) return 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        int dot_ok = allow_dot && c == '.' && k > 0 && k + 1 < n && s[k - 1] != '.';
        if (!(isalnum(c) || c == '_' || c == '-' || dot_ok)) return 0;
    }
    return 1;
}

/* "recipe.ini:12" or "--set" for messages. */
static const char *where(const lt_config *cfg, int line, char *buf, size_t n) {
    if (line > 0) snprintf(buf, n, "%s:%d", cfg->name, line);
    else snprintf(buf, n, "--set");
    return buf;
}

static cfg_section *find_section(const lt_config *cfg, const char *name) {
    for (int64_t i = 0; i < cfg->n_sec; i++)
        if (!strcmp(cfg->sec[i].name, name)) return &cfg->sec[i];
    return NULL;
}

static cfg_entry *find_entry(const lt_config *cfg, const char *section, const char *key) {
    for (int64_t i = 0; i < cfg->n; i++)
        if (!strcmp(cfg->e[i].section, section) && !strcmp(cfg->e[i].key, key)) return &cfg->e[i];
    return NULL;
}

static lt_status nomem(const lt_config *cfg) { return lt_error(LT_ERR_NOMEM, "%s: out of memory", cfg->name); }

static lt_status add_section(lt_config *cfg, const char *name, size_t n, int line) {
    if (!grow((void **)&cfg->sec, &cfg->cap_sec, cfg->n_sec + 1, sizeof *cfg->sec)) return nomem(cfg);
    char *d = dup_range(name, n);
    if (!d) return nomem(cfg);
    cfg->sec[cfg->n_sec++] = (cfg_section){d, line, 0};
    return LT_OK;
}

static lt_status add_entry(lt_config *cfg, const char *section, const char *key, size_t key_n,
                           const char *value, size_t value_n, int line) {
    if (!grow((void **)&cfg->e, &cfg->cap, cfg->n + 1, sizeof *cfg->e)) return nomem(cfg);
    cfg_entry x = {lt_strdup(section), dup_range(key, key_n), dup_range(value, value_n), line, 0};
    if (!x.section || !x.key || !x.value) {
        lt_free(x.section); lt_free(x.key); lt_free(x.value);
        return nomem(cfg);
    }
    cfg->e[cfg->n++] = x;
    return LT_OK;
}

void lt_config_free(lt_config *cfg) {
    if (!cfg) return;
    for (int64_t i = 0; i < cfg->n; i++) { lt_free(cfg->e[i].section); lt_free(cfg->e[i].key); lt_free(cfg->e[i].value); }
    for (int64_t i = 0; i < cfg->n_sec; i++) lt_free(cfg->sec[i].name);
    for (int64_t i = 0; i < cfg->n_q; i++) { lt_free(cfg->q[i].section); lt_free(cfg->q[i].key); }
    lt_free(cfg->e);
    lt_free(cfg->sec);
    lt_free(cfg->q);
    lt_free(cfg->name);
    lt_free(cfg);
}

const char *lt_config_name(const lt_config *cfg) { return cfg->name; }

/* ---- parsing ---- */

#define LINE_FAIL(...) line_fail(cfg, lineno, __VA_ARGS__)
static lt_status line_fail(const lt_config *cfg, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lt_status line_fail(const lt_config *cfg, int line, const char *fmt, ...) {
    char at[300];
    snprintf(at, sizeof at, "%s:%d", cfg->name, line);
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(LT_ERR_CONFIG, at, fmt, ap);
    va_end(ap);
    return s;
}

/* Value text after '=' (s[0..n)) → the value: a "quoted" value runs to the last quote on
 * the line; otherwise it ends at a # or ; that starts the value or follows whitespace. */
static lt_status parse_value(const lt_config *cfg, int lineno, const char *s, size_t n,
                             const char **v, size_t *vn) {
    while (n && is_space(*s)) { s++; n--; }
    if (n && *s == '"') {
        const char *close = NULL;
        for (size_t k = n - 1; k > 0 && !close; k--)
            if (s[k] == '"') close = s + k;
        if (!close) return LINE_FAIL("unterminated quoted value");
        const char *rest = close + 1, *end = s + n;
        while (rest < end && is_space(*rest)) rest++;
        if (rest < end && *rest != '#' && *rest != ';')
            return LINE_FAIL("unexpected text after the closing quote: '%.*s'", (int)(end - rest), rest);
        *v = s + 1;
        *vn = (size_t)(close - s - 1);
        return LT_OK;
    }
    size_t k = 0;
    while (k < n && !((s[k] == '#' || s[k] == ';') && (k == 0 || is_space(s[k - 1])))) k++;
    while (k && is_space(s[k - 1])) k--;
    *v = s;
    *vn = k;
    return LT_OK;
}

static lt_status parse_line(lt_config *cfg, int lineno, const char *s, size_t n, const char **cur_section) {
    while (n && is_space(*s)) { s++; n--; }
    while (n && is_space(s[n - 1])) n--;
    if (n == 0 || *s == '#' || *s == ';') return LT_OK;
    if (*s == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) return LINE_FAIL("missing ']' in section header");
        const char *name = s + 1, *rest = close + 1, *end = s + n;
        size_t nn = (size_t)(close - name);
        while (nn && is_space(*name)) { name++; nn--; }
        while (nn && is_space(name[nn - 1])) nn--;
        while (rest < end && is_space(*rest)) rest++;
        if (rest < end && *rest != '#' && *rest != ';')
            return LINE_FAIL("unexpected text after ']': '%.*s'", (int)(end - rest), rest);
        if (!valid_name(name, nn, 1))
            return LINE_FAIL("bad section name '[%.*s]' (letters, digits, '_' and '-', parts joined by '.')", (int)nn,
                             name);
        for (int64_t i = 0; i < cfg->n_sec; i++)
            if (strlen(cfg->sec[i].name) == nn && !memcmp(cfg->sec[i].name, name, nn))
                return LINE_FAIL("duplicate section [%.*s] (first at line %d)", (int)nn, name, cfg->sec[i].line);
        lt_status st = add_section(cfg, name, nn, lineno);
        if (!st) *cur_section = cfg->sec[cfg->n_sec - 1].name;
        return st;
    }
    const char *eq = memchr(s, '=', n);
    if (!eq) return LINE_FAIL("expected 'key = value' or '[section]', got '%.*s'", (int)(n > 80 ? 80 : n), s);
    size_t kn = (size_t)(eq - s);
    while (kn && is_space(s[kn - 1])) kn--;
    if (!valid_name(s, kn, 0))
        return LINE_FAIL("bad key '%.*s' (letters, digits, '_' and '-' only)", (int)kn, s);
    if (!*cur_section) return LINE_FAIL("key '%.*s' before any [section]", (int)kn, s);
    const char *v = NULL;
    size_t vn = 0;
    lt_status st = parse_value(cfg, lineno, eq + 1, (size_t)(s + n - eq - 1), &v, &vn);
    if (st) return st;
    for (int64_t i = 0; i < cfg->n; i++) {
        const cfg_entry *e = &cfg->e[i];
        if (!strcmp(e->section, *cur_section) && strlen(e->key) == kn && !memcmp(e->key, s, kn))
            return LINE_FAIL("duplicate key %s.%.*s (first at line %d)", *cur_section, (int)kn, s, e->line);
    }
    return add_entry(cfg, *cur_section, s, kn, v, vn, lineno);
}

lt_status lt_config_parse_string(const char *text, const char *name, lt_config **out) {
    *out = NULL;
    lt_config *cfg = lt_calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->name = lt_strdup(name ? name : "config"))) {
        lt_free(cfg);
        return lt_error(LT_ERR_NOMEM, "%s: out of memory", name ? name : "config");
    }
    if (!strncmp(text, "\xEF\xBB\xBF", 3)) text += 3;   /* UTF-8 byte order mark */
    const char *cur_section = NULL;
    lt_status s = LT_OK;
    int lineno = 1;
    for (const char *p = text; !s; lineno++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        s = parse_line(cfg, lineno, p, n, &cur_section);
        if (!nl) break;
        p = nl + 1;
    }
    if (s) { lt_config_free(cfg); return s; }
    *out = cfg;
    return LT_OK;
}

lt_status lt_config_load(const char *path, lt_config **out) {
    char *text;
    int64_t n;
    *out = NULL;
    lt_status s = lt_file_read(path, (int64_t)1 << 20, &text, &n);
    if (s) return s == LT_ERR_FORMAT ? lt_error(LT_ERR_CONFIG, "%s", lt_last_error()) : s;
    if ((int64_t)strlen(text) != n) s = lt_error(LT_ERR_CONFIG, "%s: byte %zu: NUL byte (not a text file?)", path, strlen(text));
    else s = lt_config_parse_string(text, path, out);
    lt_free(text);
    return s;
}

/* ---- overrides ---- */

lt_status lt_config_set(lt_config *cfg, const char *dotted_key, const char *value) {
    const char *dot = strrchr(dotted_key, '.');
    if (!dot || !valid_name(dotted_key, (size_t)(dot - dotted_key), 1) || !valid_name(dot + 1, strlen(dot + 1), 0))
        return lt_error(LT_ERR_CONFIG, "--set %s: expected section.key (letters, digits, '_', '-')", dotted_key);
    if (strpbrk(value, "\r\n")) return lt_error(LT_ERR_CONFIG, "--set %s: the value has a line break", dotted_key);
    char section[128];
    size_t sn = (size_t)(dot - dotted_key);
    if (sn >= sizeof section) return lt_error(LT_ERR_CONFIG, "--set %s: section name too long", dotted_key);
    memcpy(section, dotted_key, sn);
    section[sn] = '\0';
    const char *key = dot + 1;
    lt_status s = LT_OK;
    if (!find_section(cfg, section)) s = add_section(cfg, section, sn, 0);
    if (s) return s;
    cfg_entry *e = find_entry(cfg, section, key);
    if (!e) return add_entry(cfg, section, key, strlen(key), value, strlen(value), 0);
    char *v = lt_strdup(value);
    if (!v) return nomem(cfg);
    lt_free(e->value);
    e->value = v;
    e->line = 0;
    return LT_OK;
}

lt_status lt_config_set_arg(lt_config *cfg, const char *arg) {
    while (is_space(*arg)) arg++;
    const char *eq = strchr(arg, '=');
    if (!eq) return lt_error(LT_ERR_CONFIG, "--set %s: expected section.key=value", arg);
    char key[256];
    size_t kn = (size_t)(eq - arg);
    while (kn && is_space(arg[kn - 1])) kn--;
    if (kn >= sizeof key) return lt_error(LT_ERR_CONFIG, "--set %s: key too long", arg);
    memcpy(key, arg, kn);
    key[kn] = '\0';
    const char *v = eq + 1;
    while (is_space(*v)) v++;
    size_t vn = strlen(v);
    while (vn && is_space(v[vn - 1])) vn--;
    char *val = dup_range(v, vn);
    if (!val) return nomem(cfg);
    lt_status s = lt_config_set(cfg, key, val);
    lt_free(val);
    return s;
}

/* ---- queries ---- */

int64_t lt_config_section_count(const lt_config *cfg) { return cfg->n_sec; }

const char *lt_config_section_name(const lt_config *cfg, int64_t i) {
    return i >= 0 && i < cfg->n_sec ? cfg->sec[i].name : NULL;
}

int lt_config_has_section(lt_config *cfg, const char *section) {
    cfg_section *s = find_section(cfg, section);
    if (s) s->used = 1;
    return s != NULL;
}

int lt_config_has(const lt_config *cfg, const char *section, const char *key) {
    return find_entry(cfg, section, key) != NULL;
}

/* The entry for section.key, marked used, or NULL (then remembered for suggestions). */
static cfg_entry *use(lt_config *cfg, const char *section, const char *key) {
    cfg_section *s = find_section(cfg, section);
    if (s) s->used = 1;
    cfg_entry *e = find_entry(cfg, section, key);
    if (e) { e->used = 1; return e; }
    for (int64_t i = 0; i < cfg->n_q; i++)
        if (!strcmp(cfg->q[i].section, section) && !strcmp(cfg->q[i].key, key)) return NULL;
    /* best effort: without memory we only lose a "did you mean" hint */
    if (grow((void **)&cfg->q, &cfg->cap_q, cfg->n_q + 1, sizeof *cfg->q)) {
        cfg_query q = {lt_strdup(section), lt_strdup(key)};
        if (q.section && q.key) cfg->q[cfg->n_q++] = q;
        else { lt_free(q.section); lt_free(q.key); }
    }
    return NULL;
}

static lt_status bad_value(const lt_config *cfg, const cfg_entry *e, const char *item, const char *expect, const char *got) {
    char w[300];
    return lt_error(LT_ERR_CONFIG, "%s: %s.%s: %s%s, got '%.200s'", where(cfg, e->line, w, sizeof w), e->section,
                    e->key, item, expect, got);
}

static int parse_int(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno == ERANGE) return 0;
    while (is_space(*end)) end++;
    if (*end) return 0;
    *out = v;
    return 1;
}

int lt_parse_double(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v)) return 0;
    while (is_space(*end)) end++;
    if (*end) return 0;
    *out = v;
    return 1;
}

lt_status lt_config_get_str(lt_config *cfg, const char *section, const char *key, const char *def, const char **out) {
    const cfg_entry *e = use(cfg, section, key);
    *out = e ? e->value : def;
    return LT_OK;
}

lt_status lt_config_get_int(lt_config *cfg, const char *section, const char *key, int64_t def, int64_t *out) {
    const cfg_entry *e = use(cfg, section, key);
    *out = def;
    if (e && !parse_int(e->value, out)) return bad_value(cfg, e, "", "expected an integer", e->value);
    return LT_OK;
}

lt_status lt_config_get_float(lt_config *cfg, const char *section, const char *key, double def, double *out) {
    const cfg_entry *e = use(cfg, section, key);
    *out = def;
    if (e && !lt_parse_double(e->value, out)) return bad_value(cfg, e, "", "expected a number", e->value);
    return LT_OK;
}

lt_status lt_config_get_bool(lt_config *cfg, const char *section, const char *key, int def, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    const cfg_entry *e = use(cfg, section, key);
    *out = def;
    if (!e) return LT_OK;
    for (int k = 0; k < 4; k++) {
        if (!strcasecmp(e->value, yes[k])) { *out = 1; return LT_OK; }
        if (!strcasecmp(e->value, no[k])) { *out = 0; return LT_OK; }
    }
    return bad_value(cfg, e, "", "expected true/false (yes/no, on/off, 1/0)", e->value);
}

/* Splits e->value at commas and calls parse_item on each trimmed item. */
static lt_status get_list(lt_config *cfg, const cfg_entry *e, void *vals, size_t elem, int64_t cap, int64_t *n,
                          int (*parse_item)(const char *, void *), const char *expect) {
    const char *p = e->value;
    while (is_space(*p)) p++;
    if (!*p) { *n = 0; return LT_OK; }
    int64_t count = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[128], label[32];
        const char *b = p;
        while (len && is_space(*b)) { b++; len--; }
        while (len && is_space(b[len - 1])) len--;
        snprintf(label, sizeof label, "item %lld: ", (long long)count + 1);
        if (len == 0) return bad_value(cfg, e, label, expect, "");
        snprintf(item, sizeof item, "%.*s", (int)len, b);
        if (len >= sizeof item || count >= cap || !parse_item(item, (char *)vals + (size_t)count * elem)) {
            if (count >= cap) {
                char w[300];
                return lt_error(LT_ERR_CONFIG, "%s: %s.%s: expected at most %lld items", where(cfg, e->line, w, sizeof w),
                                e->section, e->key, (long long)cap);
            }
            return bad_value(cfg, e, label, expect, item);
        }
        count++;
        if (!comma) break;
        p = comma + 1;
    }
    *n = count;
    return LT_OK;
}

static int parse_int_item(const char *s, void *out) { return parse_int(s, out); }
static int parse_double_item(const char *s, void *out) { return lt_parse_double(s, out); }

/* Parses into a scratch copy first so a bad list leaves the caller's defaults intact. */
lt_status lt_config_get_int_list(lt_config *cfg, const char *section, const char *key, int64_t *vals, int64_t cap, int64_t *n) {
    const cfg_entry *e = use(cfg, section, key);
    if (!e) return LT_OK;
    int64_t *tmp = lt_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *tmp), m = 0;
    if (!tmp) return nomem(cfg);
    lt_status s = get_list(cfg, e, tmp, sizeof *tmp, cap, &m, parse_int_item, "expected an integer");
    if (!s) { memcpy(vals, tmp, (size_t)m * sizeof *tmp); *n = m; }
    lt_free(tmp);
    return s;
}

lt_status lt_config_get_float_list(lt_config *cfg, const char *section, const char *key, double *vals, int64_t cap, int64_t *n) {
    const cfg_entry *e = use(cfg, section, key);
    if (!e) return LT_OK;
    double *tmp = lt_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *tmp);
    int64_t m = 0;
    if (!tmp) return nomem(cfg);
    lt_status s = get_list(cfg, e, tmp, sizeof *tmp, cap, &m, parse_double_item, "expected a number");
    if (!s) { memcpy(vals, tmp, (size_t)m * sizeof *tmp); *n = m; }
    lt_free(tmp);
    return s;
}

/* ---- unknown keys ---- */

/* Levenshtein distance, capped: strings longer than 63 never match. */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 1 << 20;
    int row[64], prev;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int cur = row[j], sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[nb];
}

lt_status lt_config_check_unused(const lt_config *cfg) {
    char w[300], hint[300];
    for (int64_t i = 0; i < cfg->n_sec; i++) {
        const cfg_section *s = &cfg->sec[i];
        if (s->used) continue;
        hint[0] = '\0';
        int best = 3;
        for (int64_t k = 0; k < cfg->n_q; k++) {
            int d = edit_distance(s->name, cfg->q[k].section);
            if (d < best && !find_section(cfg, cfg->q[k].section)) {
                best = d;
                snprintf(hint, sizeof hint, " (did you mean [%s]?)", cfg->q[k].section);
            }
        }
        return lt_error(LT_ERR_CONFIG, "%s: unknown section [%s]%s", where(cfg, s->line, w, sizeof w), s->name, hint);
    }
    for (int64_t i = 0; i < cfg->n; i++) {
        const cfg_entry *e = &cfg->e[i];
        if (e->used) continue;
        hint[0] = '\0';
        int best = 3;
        for (int64_t k = 0; k < cfg->n_q; k++) {
            if (strcmp(cfg->q[k].section, e->section)) continue;
            int d = edit_distance(e->key, cfg->q[k].key);
            if (d < best) {
                best = d;
                snprintf(hint, sizeof hint, " (did you mean %s.%s?)", e->section, cfg->q[k].key);
            }
        }
        return lt_error(LT_ERR_CONFIG, "%s: unknown key %s.%s%s", where(cfg, e->line, w, sizeof w), e->section, e->key, hint);
    }
    return LT_OK;
}

/* ---- serialization ---- */

/* A value needs quotes when plain text would parse back differently. */
static int needs_quotes(const char *v) {
    size_t n = strlen(v);
    if (n == 0) return 0;
    if (is_space(v[0]) || is_space(v[n - 1]) || v[0] == '"' || v[0] == '#' || v[0] == ';') return 1;
    for (size_t k = 1; k < n; k++)
        if ((v[k] == '#' || v[k] == ';') && is_space(v[k - 1])) return 1;
    return 0;
}

typedef struct sbuf { char *p; int64_t len, cap; int bad; } sbuf;

static void sb_add(sbuf *b, const char *s) {
    int64_t n = (int64_t)strlen(s);
    if (b->bad || !grow((void **)&b->p, &b->cap, b->len + n + 1, 1)) { b->bad = 1; return; }
    memcpy(b->p + b->len, s, (size_t)n + 1);
    b->len += n;
}

lt_status lt_config_to_string(const lt_config *cfg, char **text) {
    sbuf b = {0};
    *text = NULL;
    sb_add(&b, "");
    for (int64_t i = 0; i < cfg->n_sec; i++) {
        if (i) sb_add(&b, "\n");
        sb_add(&b, "[");
        sb_add(&b, cfg->sec[i].name);
        sb_add(&b, "]\n");
        for (int64_t k = 0; k < cfg->n; k++) {
            const cfg_entry *e = &cfg->e[k];
            if (strcmp(e->section, cfg->sec[i].name)) continue;
            int q = needs_quotes(e->value);
            sb_add(&b, e->key);
            sb_add(&b, *e->value ? " = " : " =");
            sb_add(&b, q ? "\"" : "");
            sb_add(&b, e->value);
            sb_add(&b, q ? "\"\n" : "\n");
        }
    }
    if (b.bad) { lt_free(b.p); return nomem(cfg); }
    *text = b.p;
    return LT_OK;
}

lt_status lt_config_save(const lt_config *cfg, const char *path) {
    char *text;
    lt_status s = lt_config_to_string(cfg, &text);
    if (s) return s;
    s = lt_file_write_atomic(path, text, (int64_t)strlen(text));
    lt_free(text);
    return s;
}
