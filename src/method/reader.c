/* Where recipe keys were given (lt_recipe_where) and their typed reads (reader.h). */
#include "reader.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- locations */

/* s[0..n) without leading and trailing white space (moves *s, shrinks the length). */
size_t lt_mt_trim(const char **s, size_t n) {
    while (n && isspace((unsigned char)**s)) { (*s)++; n--; }
    while (n && isspace((unsigned char)(*s)[n - 1])) n--;
    return n;
}

int lt_mt_trim_eq(const char *s, size_t n, const char *word) {
    n = lt_mt_trim(&s, n);
    return strlen(word) == n && !memcmp(s, word, n);
}

/* 1-based line of "key = ..." in [section] of text (0 if absent); key NULL: the
 * section header's line. */
static int find_line(const char *text, const char *section, const char *key) {
    if (!text) return 0;
    if (!strncmp(text, "\xEF\xBB\xBF", 3)) text += 3;
    int line = 1, in_sec = 0;
    for (const char *p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *s = p;
        size_t m = n;
        while (m && isspace((unsigned char)*s)) { s++; m--; }
        if (m && *s == '[') {
            const char *close = memchr(s, ']', m);
            in_sec = close && lt_mt_trim_eq(s + 1, (size_t)(close - s - 1), section);
            if (in_sec && !key) return line;
        } else if (in_sec && key && m && *s != '#' && *s != ';') {
            const char *eq = memchr(s, '=', m);
            if (eq && lt_mt_trim_eq(s, (size_t)(eq - s), key)) return line;
        }
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

const char *lt_recipe_where(const lt_recipe *r, const char *section, const char *key, char *buf, size_t n) {
    char dotted[160];
    snprintf(dotted, sizeof dotted, "%s.%s", section, key ? key : "");
    for (int i = r->n_set_keys - 1; key && i >= 0; i--)
        if (!strcmp(r->set_keys[i], dotted)) {
            snprintf(buf, n, "--set");
            return buf;
        }
    int line = find_line(r->text, section, key);
    const char *name = r->cfg ? lt_config_name(r->cfg) : "recipe";
    if (line > 0) snprintf(buf, n, "%s:%d", name, line);
    else if (key) {
        int sl = find_line(r->text, section, NULL);   /* a missing key: point at its section */
        if (sl > 0) snprintf(buf, n, "%s:%d", name, sl);
        else snprintf(buf, n, "%s", name);
    } else snprintf(buf, n, "%s", name);
    return buf;
}

/* ---------------------------------------------------------------- typed reads */

lt_status lt_mt_bad(const lt_recipe *r, const char *sec, const char *key, const char *fmt, ...) {
    char w[300], where[600];
    snprintf(where, sizeof where, "%s: %s.%s", lt_recipe_where(r, sec, key, w, sizeof w), sec, key);
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(LT_ERR_CONFIG, where, fmt, ap);
    va_end(ap);
    return s;
}

int lt_mt_has(const lt_mt_reader *rd, const char *sec, const char *key) { return lt_config_has(rd->r->cfg, sec, key); }

const char *lt_mt_get_str(lt_mt_reader *rd, const char *sec, const char *key, const char *def) {
    const char *v = def;
    if (!rd->st) rd->st = lt_config_get_str(rd->r->cfg, sec, key, def, &v);
    return rd->st ? def : v;
}

int64_t lt_mt_get_int(lt_mt_reader *rd, const char *sec, const char *key, int64_t def, int64_t lo, int64_t hi) {
    int64_t v = def;
    if (rd->st) return def;
    rd->st = lt_config_get_int(rd->r->cfg, sec, key, def, &v);
    if (!rd->st && (v < lo || v > hi)) {
        if (hi == INT64_MAX) rd->st = lt_mt_bad(rd->r, sec, key, "expected an integer >= %lld, got %lld", (long long)lo, (long long)v);
        else rd->st = lt_mt_bad(rd->r, sec, key, "expected an integer in [%lld, %lld], got %lld", (long long)lo, (long long)hi,
                                (long long)v);
    }
    return rd->st ? def : v;
}

double lt_mt_get_num(lt_mt_reader *rd, const char *sec, const char *key, double def, double lo, double hi,
                     int hi_open) {
    double v = def;
    if (rd->st) return def;
    rd->st = lt_config_get_float(rd->r->cfg, sec, key, def, &v);
    if (!rd->st && (!(v >= lo) || (hi_open ? !(v < hi) : !(v <= hi)))) {
        if (isinf(hi)) rd->st = lt_mt_bad(rd->r, sec, key, "expected a number >= %g, got %g", lo, v);
        else rd->st = lt_mt_bad(rd->r, sec, key, "expected a number in [%g, %g%c, got %g", lo, hi, hi_open ? ')' : ']', v);
    }
    return rd->st ? def : v;
}

int lt_mt_get_bool(lt_mt_reader *rd, const char *sec, const char *key, int def) {
    int v = def;
    if (!rd->st) rd->st = lt_config_get_bool(rd->r->cfg, sec, key, def, &v);
    return rd->st ? def : v;
}

int lt_mt_get_enum(lt_mt_reader *rd, const char *sec, const char *key, const char *def, const char *const *names,
                   const int *values, int n) {
    const char *v = lt_mt_get_str(rd, sec, key, def);
    if (rd->st) return values ? values[0] : 0;
    for (int k = 0; k < n; k++)
        if (!strcmp(v, names[k])) return values ? values[k] : k;
    char list[400];
    size_t len = 0;
    list[0] = '\0';
    for (int k = 0; k < n && len < sizeof list; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k == 0 ? "" : (k == n - 1 ? " or " : ", "), names[k]);
    rd->st = lt_mt_bad(rd->r, sec, key, "expected %s, got '%s'", list, v);
    return values ? values[0] : 0;
}
