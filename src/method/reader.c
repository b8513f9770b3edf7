/* Typed reads of recipe keys (reader.h). */
#include "reader.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

lt_status lt_mt_bad(const lt_recipe *r, const char *sec, const char *key, const char *fmt, ...) {
    char w[300], msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lt_error(LT_ERR_CONFIG, "%s: %s.%s: %s", lt_recipe_where(r, sec, key, w, sizeof w), sec, key, msg);
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
