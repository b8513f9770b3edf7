/* Status codes, per-thread error messages, the invariant check and thread settings. */
#include "longtail/core.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char lt_errbuf[1024];

const char *lt_last_error(void) { return lt_errbuf; }

void lt_clear_error(void) { lt_errbuf[0] = '\0'; }

lt_status lt_errorv(lt_status code, const char *prefix, const char *fmt, va_list ap) {
    /* Formatted aside first: the arguments may point into lt_errbuf (re-raising
     * lt_last_error() with context), and vsnprintf's source and target must not overlap. */
    char msg[sizeof lt_errbuf];
    int n = prefix ? snprintf(msg, sizeof msg, "%s: ", prefix) : 0;
    if (n < 0 || (size_t)n >= sizeof msg) n = 0;
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    memcpy(lt_errbuf, msg, sizeof msg);
    return code;
}

lt_status lt_error(lt_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lt_status s = lt_errorv(code, NULL, fmt, ap);
    va_end(ap);
    return s;
}

const char *lt_status_name(lt_status s) {
    switch (s) {
    case LT_OK: return "ok";
    case LT_ERR_NOMEM: return "out of memory";
    case LT_ERR_SHAPE: return "shape error";
    case LT_ERR_ARG: return "bad argument";
    case LT_ERR_IO: return "i/o error";
    case LT_ERR_FORMAT: return "bad file format";
    case LT_ERR_CONFIG: return "config error";
    case LT_ERR_BACKEND: return "backend error";
    case LT_ERR_STATE: return "wrong state";
    case LT_ERR_EXISTS: return "already exists";
    }
    return "unknown status";
}

void lt_assert_fail(const char *expr, const char *file, int line) {
    /* A broken internal invariant is a bug in longtail: stop before corrupting results. */
    fprintf(stderr, "longtail: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
    abort();
}

void lt_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int lt_get_threads(void) { return omp_get_max_threads(); }
