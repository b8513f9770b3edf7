/* oneDNN backend state held by a context: CPU engine, stream, primitive cache. */
#include "autodiff/tape.h"

#include <dnnl.h>

struct lt_backend {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};

lt_status lt_backend_new(struct lt_backend **out) {
    struct lt_backend *b = lt_calloc(1, sizeof *b);
    if (!b) return lt_error(LT_ERR_NOMEM, "backend: out of memory");
    if (dnnl_engine_create(&b->engine, dnnl_cpu, 0) != dnnl_success) {
        lt_free(b);
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a CPU engine");
    }
    if (dnnl_stream_create(&b->stream, b->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(b->engine);
        lt_free(b);
        return lt_error(LT_ERR_BACKEND, "backend: oneDNN could not create a stream");
    }
    *out = b;
    return LT_OK;
}

void lt_backend_free(struct lt_backend *b) {
    if (!b) return;
    dnnl_stream_destroy(b->stream);
    dnnl_engine_destroy(b->engine);
    lt_free(b);
}
