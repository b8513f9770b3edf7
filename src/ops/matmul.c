/* Matrix products on oneDNN's matmul primitive: lt_matmul (with transpose flags) and
 * lt_linear (x · wᵀ + bias, PyTorch's nn.Linear). Transposes are expressed as strides of
 * the memory descriptors, never as copies. Backward runs more matmuls; gradients are
 * accumulated by a sum post-op (C = A·B + C) or, when the gradient buffer is fresh,
 * written directly. One cache entry per (M, K, N, transposes, bias, accumulate). */
#include "backend.h"
#include "ops_internal.h"

static void mm_entry_free(void *p) {
    lt_prim_destroy(p);
    lt_free(p);
}

/* Logical (rows, cols) matrix stored row-major, or stored transposed ((cols, rows)
 * row-major) when trans is set. */
static dnnl_status_t mat_md(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int trans) {
    dnnl_dims_t d = {rows, cols};
    dnnl_dims_t s = {trans ? 1 : cols, trans ? rows : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s);
}

static lt_prim *mm_get(lt_ctx *ctx, const char *op, int64_t M, int64_t K, int64_t N, int ta,
                       int tb, int bias, int acc) {
    struct lt_backend *b = lt_ctx_backend(ctx);
    if (!b) return NULL;
    lt_backend_key key = {{LT_PRIM_MATMUL, lt_backend_threads(), M, K, N, ta, tb, bias, acc, 0, 0, 0, 0, 0}};
    lt_prim *p = lt_backend_cache_get(b, &key);
    if (p) return p;
    dnnl_memory_desc_t amd, bmd, cmd, biasmd;
    dnnl_matmul_desc_t desc;
    dnnl_status_t s = mat_md(&amd, M, K, ta);
    if (s == dnnl_success) s = mat_md(&bmd, K, N, tb);
    if (s == dnnl_success) s = mat_md(&cmd, M, N, 0);
    if (s == dnnl_success) s = mat_md(&biasmd, 1, N, 0);
    if (s == dnnl_success) s = dnnl_matmul_desc_init(&desc, &amd, &bmd, bias ? &biasmd : NULL, &cmd);
    if (s != dnnl_success)
        return lt_ctx_fail(ctx, LT_ERR_BACKEND, "%s: oneDNN rejected the matmul descriptor (status %d)", op, (int)s);
    dnnl_primitive_attr_t attr = lt_backend_attr(acc);
    dnnl_primitive_desc_t pd = NULL;
    s = attr ? dnnl_primitive_desc_create(&pd, &desc, attr, lt_backend_engine(b), NULL) : dnnl_out_of_memory;
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return lt_ctx_fail(ctx, LT_ERR_BACKEND, "%s: oneDNN has no matmul for (%lld x %lld) · (%lld x %lld) (status %d)",
                           op, (long long)M, (long long)K, (long long)K, (long long)N, (int)s);
    p = lt_calloc(1, sizeof *p);
    if (!p) {
        dnnl_primitive_desc_destroy(pd);
        return lt_ctx_fail(ctx, LT_ERR_NOMEM, "%s: out of memory for a primitive cache entry", op);
    }
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    lt_status st = lt_prim_init(b, p, pd, bias ? 4 : 3, args);
    if (st != LT_OK) { lt_free(p); return lt_ctx_fail(ctx, st, "%s: %s", op, lt_last_error()); }
    st = lt_backend_cache_put(b, &key, p, mm_entry_free);
    if (st != LT_OK) return lt_ctx_fail(ctx, st, "%s: %s", op, lt_last_error());
    return p;
}

/* c (M, N) = op(a) (M, K) · op(b) (K, N) [+ bias (N)] [+ c when acc]. Returns 0 on failure
 * (the context has the error). */
static int mm_run(lt_ctx *ctx, const char *op, const float *a, const float *b, const float *bias,
                  float *c, int64_t M, int64_t K, int64_t N, int ta, int tb, int acc) {
    lt_prim *p = mm_get(ctx, op, M, K, N, ta, tb, bias != NULL, acc);
    if (!p) return 0;
    lt_status st = lt_prim_exec(lt_ctx_backend(ctx), p, (void *[]){(void *)a, (void *)b, c, (void *)bias});
    if (st != LT_OK) { lt_ctx_fail(ctx, st, "%s: %s", op, lt_last_error()); return 0; }
    return 1;
}

/* C (M, N) = op(A) · op(B); A stored (M, K) or (K, M) when trans_a, B (K, N) or (N, K). */
lt_tensor *lt_matmul(lt_ctx *ctx, lt_tensor *a, lt_tensor *b, int trans_a, int trans_b) {
    if (lt_ops_bad_inputs(ctx, "matmul", 2, a, b)) return NULL;
    char ba[64], bb[64];
    if (a->ndim != 2 || b->ndim != 2)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "matmul: a %s and b %s must both be 2-D",
                           lt_shape_str(a, ba, sizeof ba), lt_shape_str(b, bb, sizeof bb));
    trans_a = trans_a != 0;
    trans_b = trans_b != 0;
    int64_t M = a->shape[trans_a], K = a->shape[!trans_a];
    int64_t Kb = b->shape[trans_b], N = b->shape[!trans_b];
    if (K != Kb)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "matmul: inner dimensions differ: a%s %s gives %lld, b%s %s gives %lld",
                           trans_a ? "ᵀ" : "", lt_shape_str(a, ba, sizeof ba), (long long)K,
                           trans_b ? "ᵀ" : "", lt_shape_str(b, bb, sizeof bb), (long long)Kb);
    lt_tensor *out = lt_tensor_new2(ctx, M, N);
    if (!out) return NULL;
    if (!mm_run(ctx, "matmul", a->data, b->data, NULL, out->data, M, K, N, trans_a, trans_b, 0))
        return NULL;
    lt_node *nd = lt_tape_record(ctx, LT_OP_MATMUL, out, 2, (lt_tensor *[]){a, b});
    if (nd) {
        nd->i[0] = trans_a;
        nd->i[1] = trans_b;
    }
    return out;
}

/* With C = op(A)·op(B):  d op(A) = dC · op(B)ᵀ,  d op(B) = op(A)ᵀ · dC; a stored-transposed
 * operand receives the transpose of its gradient. Each case is one matmul whose operands
 * are read through strides:
 *   A (M,K):  dA  += dC · op(B)ᵀ          A stored (K,M): dAs += op(B) · dCᵀ
 *   B (K,N):  dB  += op(A)ᵀ · dC          B stored (N,K): dBs += dCᵀ · op(A)          */
void lt_matmul_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *a = nd->in[0], *b = nd->in[1];
    int ta = (int)nd->i[0], tb = (int)nd->i[1];
    int64_t M = a->shape[ta], K = a->shape[!ta], N = b->shape[!tb];
    const float *dc = nd->out->grad;
    int fresh;
    float *da = lt_grad_for_write(ctx, a, &fresh);
    if (da) {
        int ok = !ta ? mm_run(ctx, "matmul", dc, b->data, NULL, da, M, N, K, 0, !tb, !fresh)
                     : mm_run(ctx, "matmul", b->data, dc, NULL, da, K, N, M, tb, 1, !fresh);
        if (!ok) return;
    }
    float *db = lt_grad_for_write(ctx, b, &fresh);
    if (db) {
        if (!tb) mm_run(ctx, "matmul", a->data, dc, NULL, db, K, M, N, !ta, 0, !fresh);
        else mm_run(ctx, "matmul", dc, a->data, NULL, db, N, M, K, 1, ta, !fresh);
    }
}

/* out (B, out) = x (B, in) · wᵀ + bias, w (out, in) as PyTorch's nn.Linear. */
lt_tensor *lt_linear(lt_ctx *ctx, lt_tensor *x, lt_tensor *w, lt_tensor *bias) {
    if (lt_ops_bad_inputs(ctx, "linear", 2, x, w)) return NULL;
    char bx[64], bw[64], bb[64];
    if (x->ndim != 2 || w->ndim != 2)
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "linear: x %s and w %s must both be 2-D (x (B, in), w (out, in))",
                           lt_shape_str(x, bx, sizeof bx), lt_shape_str(w, bw, sizeof bw));
    if (x->shape[1] != w->shape[1])
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "linear: x %s has %lld features but w %s expects %lld",
                           lt_shape_str(x, bx, sizeof bx), (long long)x->shape[1],
                           lt_shape_str(w, bw, sizeof bw), (long long)w->shape[1]);
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0]))
        return lt_ctx_fail(ctx, LT_ERR_SHAPE, "linear: bias %s must be (%lld) for w %s",
                           lt_shape_str(bias, bb, sizeof bb), (long long)w->shape[0],
                           lt_shape_str(w, bw, sizeof bw));
    int64_t B = x->shape[0], I = x->shape[1], O = w->shape[0];
    lt_tensor *out = lt_tensor_new2(ctx, B, O);
    if (!out) return NULL;
    if (!mm_run(ctx, "linear", x->data, w->data, bias ? bias->data : NULL, out->data, B, I, O, 0, 1, 0))
        return NULL;
    lt_tape_record(ctx, LT_OP_LINEAR, out, 3, (lt_tensor *[]){x, w, bias});
    return out;
}

/* dx += dy · w;  dw += dyᵀ · x;  dbias[o] += Σ_b dy[b, o]. */
void lt_linear_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    int64_t B = x->shape[0], I = x->shape[1], O = w->shape[0];
    const float *dy = nd->out->grad;
    int fresh;
    float *dx = lt_grad_for_write(ctx, x, &fresh);
    if (dx && !mm_run(ctx, "linear", dy, w->data, NULL, dx, B, O, I, 0, 0, !fresh)) return;
    float *dw = lt_grad_for_write(ctx, w, &fresh);
    if (dw && !mm_run(ctx, "linear", dy, x->data, NULL, dw, O, B, I, 1, 0, !fresh)) return;
    float *db = lt_tensor_grad(ctx, bias);
    if (db) {
        /* Rows in order, one accumulator per output: the same sum for any thread count. */
        double *acc = lt_ctx_alloc(ctx, (size_t)O * sizeof(double));
        if (!acc) return;
        for (int64_t o = 0; o < O; o++) acc[o] = 0;
        for (int64_t r = 0; r < B; r++)
            for (int64_t o = 0; o < O; o++) acc[o] += dy[r * O + o];
        for (int64_t o = 0; o < O; o++) db[o] += (float)acc[o];
    }
}
