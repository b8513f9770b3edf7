/* 2-D convolution on oneDNN: forward, backward-data, backward-weights (+bias).
 *
 * Activations stay NHWC in our buffers (oneDNN tag nhwc: its brgemm/jit kernels read and
 * write them in place, no activation reorders). Weights are OHWI in our buffers; the
 * primitives are created with dnnl_format_tag_any for the weights so oneDNN picks the
 * blocked layout its fast kernel wants (e.g. Acdb16a forward, ABcd16a16b backward-data),
 * and a cached reorder converts our OHWI weights (small) on every call. Backward-weights
 * writes the gradient in oneDNN's layout into an arena temporary; a cached reorder with a
 * sum post-op converts it back to OHWI *adding* into the parameter gradient.
 *
 * Why not Winograd: oneDNN 2.6 has Winograd F(4x4, 3x3) (jit_wino_4x3:avx512_core) for f32,
 * but only on blocked activations (nChw16c). Alone it beats the direct NHWC kernels for
 * 3x3 stride-1 convs with 32-64 channels on 16x16 / 8x8 images (2-core AMD EPYC, batch
 * 128, 2 threads: 64ch 8x8 forward 1.32 -> 0.89 ms, backward-data 1.59 -> 0.96 ms), but
 * inside a ResNet-32 step the NHWC <-> nChw16c reorders of activations that are no longer
 * in cache cost about as much as it saves (oneDNN time per step 184-187 ms with it,
 * 153-189 ms without), so everything runs direct on NHWC.
 *
 * One cache entry per (kind, threads, shape): forward-training / forward-inference,
 * backward-data, backward-weights. Backward primitives are created with the
 * forward-training primitive descriptor as their hint, as oneDNN requires. */
#include "backend.h"
#include "ops_internal.h"

#include <string.h>

typedef struct conv_geom {
    int64_t n, h, w, ci;      /* x (N, H, W, I) */
    int64_t co, kh, kw;       /* w (O, KH, KW, I) */
    int64_t oh, ow;           /* out (N, OH, OW, O) */
    int64_t stride, pad, bias;
} conv_geom;

typedef struct conv_entry {
    lt_prim conv;
    /* Weights reorder. Forward / backward-data: OHWI -> the conv's format (prim NULL when
     * the conv takes OHWI as is). Backward-weights: the conv's diff-weights format ->
     * OHWI with a sum post-op (always present: it is also what accumulates). */
    lt_prim wre;
    size_t wbytes;            /* bytes of weights in the conv's format */
} conv_entry;

static void conv_entry_free(void *p) {
    conv_entry *e = p;
    lt_prim_destroy(&e->conv);
    lt_prim_destroy(&e->wre);
    lt_free(e);
}

/* oneDNN dims are logical (N, C, H, W) / (O, I, KH, KW) whatever the memory layout. */
static dnnl_status_t conv_mds(const conv_geom *g, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wany,
                              dnnl_memory_desc_t *wohwi, dnnl_memory_desc_t *bias,
                              dnnl_memory_desc_t *dst) {
    dnnl_dims_t sd = {g->n, g->ci, g->h, g->w}, dd = {g->n, g->co, g->oh, g->ow};
    dnnl_dims_t wd = {g->co, g->ci, g->kh, g->kw}, bd = {g->co};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(src, 4, sd, dnnl_f32, dnnl_nhwc);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, dnnl_nhwc);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(wany, 4, wd, dnnl_f32, dnnl_format_tag_any);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(wohwi, 4, wd, dnnl_f32, dnnl_ohwi);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(bias, 1, bd, dnnl_f32, dnnl_a);
    return s;
}

static conv_entry *conv_get(lt_ctx *ctx, const conv_geom *g, enum lt_prim_kind kind) {
    struct lt_backend *b = lt_ctx_backend(ctx);
    if (!b) return NULL;
    lt_backend_key key = {{kind, lt_backend_threads(), g->n, g->h, g->w, g->ci, g->co, g->kh,
                           g->kw, g->stride, g->pad, g->bias, 0, 0}};
    conv_entry *e = lt_backend_cache_get(b, &key);
    if (e) return e;

    dnnl_primitive_desc_t hint = NULL;
    if (kind == LT_PRIM_CONV_BWD_DATA || kind == LT_PRIM_CONV_BWD_WEIGHTS) {
        conv_entry *f = conv_get(ctx, g, LT_PRIM_CONV_FWD_TRAIN);
        if (!f) return NULL;
        hint = f->conv.pd;
    }
    dnnl_memory_desc_t src, wany, wohwi, bias, dst;
    dnnl_dims_t strides = {g->stride, g->stride}, pad = {g->pad, g->pad};
    dnnl_convolution_desc_t cd;
    dnnl_status_t s = conv_mds(g, &src, &wany, &wohwi, &bias, &dst);
    const dnnl_memory_desc_t *bmd = g->bias ? &bias : NULL;
    if (s == dnnl_success) {
        if (kind == LT_PRIM_CONV_FWD_TRAIN || kind == LT_PRIM_CONV_FWD_INFER)
            s = dnnl_convolution_forward_desc_init(
                &cd, kind == LT_PRIM_CONV_FWD_TRAIN ? dnnl_forward_training : dnnl_forward_inference,
                dnnl_convolution_direct, &src, &wany, bmd, &dst, strides, pad, pad);
        else if (kind == LT_PRIM_CONV_BWD_DATA)
            s = dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src, &wany,
                                                         &dst, strides, pad, pad);
        else
            s = dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src,
                                                            &wany, bmd, &dst, strides, pad, pad);
    }
    if (s != dnnl_success)
        return lt_ctx_fail(ctx, LT_ERR_BACKEND, "conv2d: oneDNN rejected the convolution descriptor (status %d)", (int)s);

    e = lt_calloc(1, sizeof *e);
    if (!e) return lt_ctx_fail(ctx, LT_ERR_NOMEM, "conv2d: out of memory for a primitive cache entry");
    dnnl_primitive_attr_t attr = lt_backend_attr(0);
    dnnl_primitive_desc_t pd = NULL;
    s = attr ? dnnl_primitive_desc_create(&pd, &cd, attr, lt_backend_engine(b), hint)
             : dnnl_out_of_memory;
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        lt_free(e);
        return lt_ctx_fail(ctx, LT_ERR_BACKEND,
                           "conv2d: oneDNN has no implementation for x (%lld, %lld, %lld, %lld), w (%lld, %lld, %lld, %lld), stride %lld, pad %lld (status %d)",
                           (long long)g->n, (long long)g->h, (long long)g->w, (long long)g->ci,
                           (long long)g->co, (long long)g->kh, (long long)g->kw, (long long)g->ci,
                           (long long)g->stride, (long long)g->pad, (int)s);
    }
    int args[4], n_args = 0, warg;
    if (kind == LT_PRIM_CONV_BWD_DATA) {
        args[n_args++] = DNNL_ARG_DIFF_DST;
        args[n_args++] = warg = DNNL_ARG_WEIGHTS;
        args[n_args++] = DNNL_ARG_DIFF_SRC;
    } else if (kind == LT_PRIM_CONV_BWD_WEIGHTS) {
        args[n_args++] = DNNL_ARG_SRC;
        args[n_args++] = DNNL_ARG_DIFF_DST;
        args[n_args++] = warg = DNNL_ARG_DIFF_WEIGHTS;
        if (g->bias) args[n_args++] = DNNL_ARG_DIFF_BIAS;
    } else {
        args[n_args++] = DNNL_ARG_SRC;
        args[n_args++] = warg = DNNL_ARG_WEIGHTS;
        args[n_args++] = DNNL_ARG_DST;
        if (g->bias) args[n_args++] = DNNL_ARG_BIAS;
    }
    lt_status st = lt_prim_init(b, &e->conv, pd, n_args, args);
    if (st != LT_OK) { lt_free(e); return lt_ctx_fail(ctx, st, "conv2d: %s", lt_last_error()); }

    const dnnl_memory_desc_t *wmd = lt_prim_md(&e->conv, warg);
    e->wbytes = dnnl_memory_desc_get_size(wmd);
    int accumulate = kind == LT_PRIM_CONV_BWD_WEIGHTS;
    if (accumulate || !dnnl_memory_desc_equal(wmd, &wohwi)) {
        dnnl_primitive_attr_t rattr = lt_backend_attr(accumulate);
        dnnl_primitive_desc_t rpd = NULL;
        s = rattr ? (accumulate ? dnnl_reorder_primitive_desc_create(&rpd, wmd, lt_backend_engine(b), &wohwi, lt_backend_engine(b), rattr)
                                : dnnl_reorder_primitive_desc_create(&rpd, &wohwi, lt_backend_engine(b), wmd, lt_backend_engine(b), rattr))
                  : dnnl_out_of_memory;
        dnnl_primitive_attr_destroy(rattr);
        if (s == dnnl_success)
            st = lt_prim_init(b, &e->wre, rpd, 2, (const int[]){DNNL_ARG_FROM, DNNL_ARG_TO});
        if (s != dnnl_success || st != LT_OK) {
            conv_entry_free(e);
            return lt_ctx_fail(ctx, LT_ERR_BACKEND, "conv2d: oneDNN could not create the weights reorder (status %d)", (int)s);
        }
    }
    st = lt_backend_cache_put(b, &key, e, conv_entry_free);
    if (st != LT_OK) return lt_ctx_fail(ctx, st, "conv2d: %s", lt_last_error());
    return e;
}

static int conv_exec(lt_ctx *ctx, lt_prim *p, void *const *ptrs) {
    lt_status st = lt_prim_exec(lt_ctx_backend(ctx), p, ptrs);
    if (st != LT_OK) { lt_ctx_fail(ctx, st, "conv2d: %s", lt_last_error()); return 0; }
    return 1;
}

/* Weights in the format of entry e: OHWI as is, or reordered into an arena buffer. */
static float *conv_weights(lt_ctx *ctx, conv_entry *e, float *w_ohwi) {
    if (!e->wre.prim) return w_ohwi;
    float *wb = lt_ctx_alloc(ctx, e->wbytes);
    if (!wb || !conv_exec(ctx, &e->wre, (void *[]){w_ohwi, wb})) return NULL;
    return wb;
}

/* Shape rules (PyTorch's Conv2d with symmetric zero padding); fills g. */
static int conv_check(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *bias,
                      int stride, int pad, conv_geom *g) {
    char bx[64], bw[64], bb[64];
    if (x->ndim != 4 || w->ndim != 4) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "conv2d: x %s and w %s must both be 4-D (x NHWC, w OHWI)",
                    lt_shape_str(x, bx, sizeof bx), lt_shape_str(w, bw, sizeof bw));
        return 0;
    }
    if (x->shape[3] != w->shape[3]) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "conv2d: x %s has %lld channels but w %s expects %lld",
                    lt_shape_str(x, bx, sizeof bx), (long long)x->shape[3],
                    lt_shape_str(w, bw, sizeof bw), (long long)w->shape[3]);
        return 0;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "conv2d: bias %s must be (%lld) for w %s",
                    lt_shape_str(bias, bb, sizeof bb), (long long)w->shape[0],
                    lt_shape_str(w, bw, sizeof bw));
        return 0;
    }
    if (stride < 1 || pad < 0) {
        lt_ctx_fail(ctx, LT_ERR_ARG, "conv2d: stride %d must be >= 1 and pad %d >= 0", stride, pad);
        return 0;
    }
    int64_t hp = x->shape[1] + 2 * (int64_t)pad, wp = x->shape[2] + 2 * (int64_t)pad;
    if (w->shape[1] > hp || w->shape[2] > wp) {
        lt_ctx_fail(ctx, LT_ERR_SHAPE, "conv2d: kernel %lldx%lld is larger than the padded input %lldx%lld (x %s, pad %d)",
                    (long long)w->shape[1], (long long)w->shape[2], (long long)hp, (long long)wp,
                    lt_shape_str(x, bx, sizeof bx), pad);
        return 0;
    }
    *g = (conv_geom){
        .n = x->shape[0], .h = x->shape[1], .w = x->shape[2], .ci = x->shape[3],
        .co = w->shape[0], .kh = w->shape[1], .kw = w->shape[2],
        .oh = (hp - w->shape[1]) / stride + 1, .ow = (wp - w->shape[2]) / stride + 1,
        .stride = stride, .pad = pad, .bias = bias != NULL,
    };
    return 1;
}

/* out[n,oh,ow,o] = bias[o] + Σ_{kh,kw,i} x[n, oh·s - p + kh, ow·s - p + kw, i] · w[o,kh,kw,i]
 * x (N,H,W,I), w (O,KH,KW,I), bias (O) -> out (N,OH,OW,O) */
lt_tensor *lt_conv2d(lt_ctx *ctx, lt_tensor *x, lt_tensor *w, lt_tensor *bias, int stride,
                     int pad) {
    if (lt_ops_bad_inputs(ctx, "conv2d", 2, x, w)) return NULL;
    conv_geom g;
    if (!conv_check(ctx, x, w, bias, stride, pad, &g)) return NULL;
    lt_tensor *out = lt_tensor_new4(ctx, g.n, g.oh, g.ow, g.co);
    if (!out) return NULL;
    lt_node *nd = lt_tape_record(ctx, LT_OP_CONV2D, out, 3, (lt_tensor *[]){x, w, bias});
    if (ctx->status != LT_OK) return NULL;
    conv_entry *e = conv_get(ctx, &g, nd ? LT_PRIM_CONV_FWD_TRAIN : LT_PRIM_CONV_FWD_INFER);
    if (!e) return NULL;
    float *wb = conv_weights(ctx, e, w->data);
    if (!wb) return NULL;
    if (!conv_exec(ctx, &e->conv, (void *[]){x->data, wb, out->data, bias ? bias->data : NULL}))
        return NULL;
    if (nd) {
        nd->i[0] = stride;
        nd->i[1] = pad;
    }
    return out;
}

/* dx = conv_transpose(dy, w) (oneDNN backward-data); dw[o,kh,kw,i] += Σ dy[n,oh,ow,o] ·
 * x[n, oh·s-p+kh, ow·s-p+kw, i] and dbias[o] += Σ dy[n,oh,ow,o] (backward-weights). */
void lt_conv2d_backward(lt_ctx *ctx, const lt_node *nd) {
    lt_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2], *out = nd->out;
    conv_geom g;
    if (!conv_check(ctx, x, w, bias, (int)nd->i[0], (int)nd->i[1], &g)) return;
    float *dy = out->grad;

    if (x->requires_grad) {
        conv_entry *e = conv_get(ctx, &g, LT_PRIM_CONV_BWD_DATA);
        if (!e) return;
        float *wb = conv_weights(ctx, e, w->data);
        int fresh;
        float *dx = lt_grad_for_write(ctx, x, &fresh);
        if (!wb || !dx) return;
        /* A fresh gradient is overwritten; an existing one (e.g. a residual branch already
         * flowed into x) gets the result through a temporary and an add. */
        float *dst = fresh ? dx : lt_ctx_alloc(ctx, (size_t)x->numel * sizeof(float));
        if (!dst || !conv_exec(ctx, &e->conv, (void *[]){dy, wb, dst})) return;
        if (!fresh) lt_add_inplace(dx, dst, x->numel);
    }

    int need_w = w->requires_grad, need_b = bias && bias->requires_grad;
    if (need_w || need_b) {
        conv_geom gw = g;
        float *src = x->data;
        if (g.kh == 1 && g.kw == 1 && g.pad == 0 && g.stride > 1) {
            /* A strided 1x1 conv's weight gradient is the unit-stride one over the pixels
             * it reads, x[:, ::s, ::s, :]. oneDNN 2.6's jit_1x1 backward-weights makes
             * that copy itself in a workspace it overruns when an NHWC input has fewer
             * channels than its block (8 on AVX2): wrong gradients from 2 threads on,
             * and memory past the scratchpad written (oneDNN issue 6035; the 1x1 stride-2
             * case of dense_gradcheck_conv2d failed 1 run in 5 here). So we gather. */
            src = lt_ctx_alloc(ctx, (size_t)(g.n * g.oh * g.ow * g.ci) * sizeof(float));
            if (!src) return;
            for (int64_t n = 0; n < g.n; n++)
                for (int64_t i = 0; i < g.oh; i++)
                    for (int64_t j = 0; j < g.ow; j++)
                        memcpy(src + ((n * g.oh + i) * g.ow + j) * g.ci,
                               x->data + ((n * g.h + i * g.stride) * g.w + j * g.stride) * g.ci,
                               (size_t)g.ci * sizeof(float));
            gw.h = g.oh;
            gw.w = g.ow;
            gw.stride = 1;
        }
        conv_entry *e = conv_get(ctx, &gw, LT_PRIM_CONV_BWD_WEIGHTS);
        if (!e) return;
        float *dw_blk = lt_ctx_alloc(ctx, e->wbytes);
        float *db = bias ? lt_ctx_alloc(ctx, (size_t)g.co * sizeof(float)) : NULL;
        if (!dw_blk || (bias && !db)) return;
        if (!conv_exec(ctx, &e->conv, (void *[]){src, dy, dw_blk, db})) return;
        if (need_w) {
            float *dw = lt_tensor_grad(ctx, w);
            if (!dw || !conv_exec(ctx, &e->wre, (void *[]){dw_blk, dw})) return;  /* dw += */
        }
        if (need_b) {
            float *gb = lt_tensor_grad(ctx, bias);
            if (!gb) return;
            for (int64_t o = 0; o < g.co; o++) gb[o] += db[o];
        }
    }
}
