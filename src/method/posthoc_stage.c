/* Post-hoc transforms chosen at a stage's end, and the per-stage analysis of
 * metrics.json (docs/recipes.md, "Post-hoc transforms" and "Analysis").
 *
 * Every transform is applied as the head's evaluation-only logit transform
 * z_c ← s_c z_c + h_c (lt_model_set_posthoc), which reproduces on the logits exactly what
 * the transform does to the weights:
 *   τ-norm, bias kept:    w_c/‖w_c‖^τ · f + b_c  = s_c (z_c − b_c) + b_c,  s_c = ‖w_c‖^−τ
 *   τ-norm, bias dropped: w_c/‖w_c‖^τ · f        = s_c (z_c − b_c)
 *   additive LA:          z_c − τ log π_c
 *   multiplicative LA:    z_c · π_c^−τ
 * (LWS: b_c stands for s_c b_c; the cosine head and the ETF rows have unit-invariant /
 * unit rows, so τ-norm is the identity there.) The weights themselves stay untouched: the
 * stage checkpoint is the trained model, the transform and τ go in its metadata and in
 * metrics.json, and the next stage starts from the untransformed model. */
#include "method_internal.h"
#include "wb_stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_status lt_mt_posthoc_apply(lt_model *m, const lt_stage_config *sc, double tau, const int64_t *train_counts) {
    int64_t C = m->cfg.num_classes;
    if (sc->posthoc == LT_STAGE_POSTHOC_NONE) return lt_model_set_posthoc(m, NULL, NULL);
    float *scale = lt_malloc((size_t)C * sizeof(float)), *shift = lt_malloc((size_t)C * sizeof(float));
    double *norms = lt_malloc((size_t)C * sizeof(double));
    lt_status s = (!scale || !shift || !norms) ? lt_error(LT_ERR_NOMEM, "post-hoc: out of memory") : LT_OK;
    if (!s && (sc->posthoc == LT_STAGE_POSTHOC_L2NORM || sc->posthoc == LT_STAGE_POSTHOC_TAUNORM)) {
        const lt_tensor *w = m->head.weight;
        s = lt_eval_weight_norms(w->data, C, w->shape[1], norms);
        for (int64_t c = 0; c < C && !s; c++) {
            double sc_c = (m->head.kind == LT_HEAD_COSINE || !(norms[c] > 0)) ? 1.0 : pow(norms[c], -tau);
            double b = m->head.bias ? (double)m->head.bias->data[c] : 0.0;
            if (m->head.scales) b *= (double)m->head.scales->data[c];
            scale[c] = (float)sc_c;
            shift[c] = (float)(sc->posthoc_drop_bias ? -b * sc_c : b * (1.0 - sc_c));
        }
    } else if (!s) {
        /* Through eval.h's formulas: LA of an all-zero logit row is the shift (additive),
         * LA of an all-one row the scale (multiplicative). */
        lt_posthoc kind = sc->posthoc == LT_STAGE_POSTHOC_LA_ADD ? LT_POSTHOC_LA_ADD : LT_POSTHOC_LA_MUL;
        float *row = kind == LT_POSTHOC_LA_ADD ? shift : scale;
        for (int64_t c = 0; c < C; c++) {
            shift[c] = 0.0f;
            scale[c] = 1.0f;
        }
        s = lt_posthoc_logit_adjust(row, 1, C, train_counts, kind, tau, row);
    }
    if (!s) s = lt_model_set_posthoc(m, scale, shift);
    lt_free(scale);
    lt_free(shift);
    lt_free(norms);
    return s;
}

const char *const lt_stage_posthoc_names[LT_STAGE_POSTHOC_KINDS] = {"none", "l2norm", "taunorm", "la_add", "la_mul"};

lt_status lt_checkpoint_posthoc_read(const lt_safetensors *st, const char *path, lt_stage_posthoc *kind, double *tau,
                                     int *drop_bias) {
    *kind = LT_STAGE_POSTHOC_NONE;
    *tau = NAN;
    *drop_bias = 0;
    const char *name = lt_safetensors_metadata(st, "posthoc");
    if (!name || !strcmp(name, "none")) return LT_OK;
    /* recorded with eval.h's names; l2norm is recorded as tau_norm at τ = 1 */
    if (!strcmp(name, lt_posthoc_name(LT_POSTHOC_TAU_NORM))) *kind = LT_STAGE_POSTHOC_TAUNORM;
    else if (!strcmp(name, lt_posthoc_name(LT_POSTHOC_LA_ADD))) *kind = LT_STAGE_POSTHOC_LA_ADD;
    else if (!strcmp(name, lt_posthoc_name(LT_POSTHOC_LA_MUL))) *kind = LT_STAGE_POSTHOC_LA_MUL;
    else
        return lt_error(LT_ERR_FORMAT, "%s: metadata posthoc: expected none, tau_norm, la_additive or la_multiplicative, got '%s'",
                        path, name);
    const char *t = lt_safetensors_metadata(st, "posthoc_tau"), *bias = lt_safetensors_metadata(st, "posthoc_bias");
    double v = NAN;
    lt_status s = LT_OK;
    if (!t || !lt_parse_double(t, &v) || !(v >= 0))
        s = lt_error(LT_ERR_FORMAT, "%s: metadata posthoc_tau: expected a number >= 0 for posthoc = %s, got '%s'", path,
                     name, t ? t : "(missing)");
    else if (bias && strcmp(bias, "keep") && strcmp(bias, "drop"))
        s = lt_error(LT_ERR_FORMAT, "%s: metadata posthoc_bias: expected keep or drop, got '%s'", path, bias);
    if (s) {
        *kind = LT_STAGE_POSTHOC_NONE;   /* a malformed record reads as none */
        return s;
    }
    *tau = v;
    *drop_bias = bias && !strcmp(bias, "drop");
    return LT_OK;
}

lt_status lt_checkpoint_posthoc_apply(lt_model *m, const lt_safetensors *st, const char *path,
                                      const int64_t *train_counts, lt_posthoc *kind, double *tau) {
    lt_stage_posthoc k;
    double t;
    int drop;
    lt_posthoc k_out = LT_POSTHOC_NONE;
    double t_out = NAN;
    lt_status s = lt_checkpoint_posthoc_read(st, path, &k, &t, &drop);
    /* a fixed τ: no sweep, so no context or validation set */
    if (!s) s = lt_posthoc_choose(NULL, m, "checkpoint", k, drop, t, NULL, NULL, 0, 1, train_counts, NULL, &k_out, &t_out);
    if (kind) *kind = s ? LT_POSTHOC_NONE : k_out;
    if (tau) *tau = s ? NAN : t_out;
    return s;
}

typedef struct sweep_user {
    lt_ctx *ctx;
    lt_model *m;
    const lt_stage_config *sc;
    const lt_dataset *val;
    const lt_augment_config *norm;
    int64_t batch_size;
    int topk;
    const int64_t *counts;
    const lt_group_spec *groups;
} sweep_user;

/* The sweep's score: validation top-1 with the transform at τ. */
static lt_status sweep_score(double tau, void *user, double *score) {
    sweep_user *u = user;
    lt_status s = lt_mt_posthoc_apply(u->m, u->sc, tau, u->counts);
    if (s) return s;
    lt_eval_result r;
    lt_eval_result_init(&r);
    s = lt_evaluate(u->ctx, u->m, u->val, u->norm, u->batch_size, u->topk, u->counts, u->groups, &r);
    *score = s ? NAN : r.top1;
    lt_eval_result_free(&r);
    return s;
}

lt_status lt_mt_posthoc_choose(lt_ctx *ctx, lt_model *m, const lt_stage_config *sc, const lt_dataset *val,
                               const lt_augment_config *norm, int64_t batch_size, int topk,
                               const int64_t *train_counts, const lt_group_spec *groups, lt_posthoc *kind_out,
                               double *tau_out) {
    *kind_out = LT_POSTHOC_NONE;
    *tau_out = NAN;
    if (sc->posthoc == LT_STAGE_POSTHOC_NONE) return lt_model_set_posthoc(m, NULL, NULL);
    double tau = sc->posthoc == LT_STAGE_POSTHOC_L2NORM ? 1.0 : sc->posthoc_tau;
    if (isnan(tau)) {
        if (!val || val->n < 1)
            return lt_error(LT_ERR_CONFIG, "%s.posthoc_tau = sweep needs a validation set ([data] val_per_class > 0) "
                                           "or a fixed posthoc_tau", sc->name);
        sweep_user u = {ctx, m, sc, val, norm, batch_size, topk, train_counts, groups};
        double best;
        lt_status s = lt_tau_sweep(sweep_score, &u, NULL, 0, NULL, &tau, &best);
        if (s) return s;
    }
    lt_status s = lt_mt_posthoc_apply(m, sc, tau, train_counts);
    if (s) return s;
    switch (sc->posthoc) {
    case LT_STAGE_POSTHOC_L2NORM:
    case LT_STAGE_POSTHOC_TAUNORM: *kind_out = LT_POSTHOC_TAU_NORM; break;
    case LT_STAGE_POSTHOC_LA_ADD: *kind_out = LT_POSTHOC_LA_ADD; break;
    case LT_STAGE_POSTHOC_LA_MUL: *kind_out = LT_POSTHOC_LA_MUL; break;
    default: break;
    }
    *tau_out = tau;
    return LT_OK;
}

lt_status lt_posthoc_choose(lt_ctx *ctx, lt_model *m, const char *name, lt_stage_posthoc kind, int drop_bias,
                            double tau, const lt_dataset *val, const lt_augment_config *norm, int64_t batch_size,
                            int topk, const int64_t *train_counts, const lt_group_spec *groups, lt_posthoc *kind_out,
                            double *tau_out) {
    *kind_out = LT_POSTHOC_NONE;
    *tau_out = NAN;
    if (kind < LT_STAGE_POSTHOC_NONE || kind > LT_STAGE_POSTHOC_LA_MUL)
        return lt_error(LT_ERR_ARG, "%s: post-hoc kind %d is not one of none, l2norm, taunorm, la_add, la_mul",
                        name ? name : "post-hoc", (int)kind);
    if (!isnan(tau) && !(tau >= 0 && isfinite(tau)))
        return lt_error(LT_ERR_ARG, "%s: posthoc_tau %g: expected a number >= 0", name ? name : "post-hoc", tau);
    lt_stage_config sc;
    memset(&sc, 0, sizeof sc);
    snprintf(sc.name, sizeof sc.name, "%s", name ? name : "post-hoc");
    sc.posthoc = kind;
    sc.posthoc_drop_bias = drop_bias;
    sc.posthoc_tau = tau;
    return lt_mt_posthoc_choose(ctx, m, &sc, val, norm, batch_size, topk, train_counts, groups, kind_out, tau_out);
}

/* ---------------------------------------------------------------- analysis */

lt_status lt_mt_collect_features(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const lt_augment_config *norm,
                                 int64_t batch_size, float **features, int32_t **labels) {
    *features = NULL;
    *labels = NULL;
    int64_t D = m->feature_dim, N = ds->n;
    float *f = lt_malloc((size_t)(N * D) * sizeof(float));
    int32_t *y = lt_malloc((size_t)N * sizeof(int32_t));
    lt_loader *ld = NULL;
    lt_status s = (!f || !y) ? lt_error(LT_ERR_NOMEM, "analysis: out of memory for %lld x %lld features",
                                        (long long)N, (long long)D)
                             : LT_OK;
    if (!s) s = lt_eval_loader(ds, norm, batch_size, &ld);
    int was_training = lt_ctx_training(ctx), had_grad = lt_ctx_grad_enabled(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    int64_t at = 0;
    while (!s) {
        lt_batch b;
        s = lt_loader_next(ld, &b);
        if (s || b.n == 0) break;
        lt_ctx_reset(ctx);
        int64_t shape[4] = {b.n, b.h, b.w, b.c};
        lt_tensor *x = lt_tensor_wrap(ctx, b.x, 4, shape);
        lt_tensor *feat = lt_model_forward_features(ctx, m, x);
        if (lt_ctx_status(ctx) || !feat) {
            s = lt_error(lt_ctx_status(ctx) ? lt_ctx_status(ctx) : LT_ERR_STATE, "analysis: %s", lt_ctx_error(ctx));
            break;
        }
        if (at + b.n > N) {
            s = lt_error(LT_ERR_STATE, "analysis: the loader gave more than %lld images", (long long)N);
            break;
        }
        memcpy(f + at * D, feat->data, (size_t)(b.n * D) * sizeof(float));
        memcpy(y + at, b.y, (size_t)b.n * sizeof(int32_t));
        at += b.n;
    }
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, was_training);
    lt_ctx_set_grad(ctx, had_grad);
    lt_loader_free(ld);
    if (!s && at != N) s = lt_error(LT_ERR_STATE, "analysis: %lld of %lld images scored", (long long)at, (long long)N);
    if (s) {
        lt_free(f);
        lt_free(y);
        return s;
    }
    *features = f;
    *labels = y;
    return LT_OK;
}

/* A batch-norm scale: a 1-D weight named "<...>bn<k>.weight" (bn1.weight, layer2.0.bn2.weight). */
static int is_bn_scale(const lt_param *p) {
    if (p->kind != LT_PARAM_WEIGHT || p->t.ndim != 1) return 0;
    const char *name = p->t.name;
    size_t n = strlen(name);
    if (n < 7 || strcmp(name + n - 7, ".weight")) return 0;
    const char *last = name;
    for (const char *c = name; c < name + n - 7; c++)
        if (*c == '.') last = c + 1;
    return !strncmp(last, "bn", 2);
}

lt_status lt_mt_bn_scales(const lt_model *m, double *mean, double *std, int64_t *count) {
    const lt_params *p = &m->params;
    int64_t n = 0;
    for (int64_t i = 0; i < p->count; i++)
        if (is_bn_scale(&p->items[i])) n += p->items[i].t.numel;
    float *g = lt_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!g) return lt_error(LT_ERR_NOMEM, "analysis: out of memory");
    int64_t at = 0;
    for (int64_t i = 0; i < p->count; i++)
        if (is_bn_scale(&p->items[i])) {
            memcpy(g + at, p->items[i].t.data, (size_t)p->items[i].t.numel * sizeof(float));
            at += p->items[i].t.numel;
        }
    lt_status s = lt_eval_bn_scale_stats(g, n, mean, std);
    lt_free(g);
    *count = n;
    return s;
}

static lt_status features_of(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const lt_augment_config *norm,
                             int64_t batch_size, lt_feature_stats *st) {
    float *f;
    int32_t *y;
    lt_status s = lt_mt_collect_features(ctx, m, ds, norm, batch_size, &f, &y);
    if (s) return s;
    s = lt_eval_features(f, y, ds->n, m->feature_dim, m->cfg.num_classes, st);
    lt_free(f);
    lt_free(y);
    return s;
}

lt_status lt_mt_stage_analysis(lt_ctx *ctx, lt_model *m, const lt_dataset *eval_ds, const lt_dataset *train,
                               const lt_augment_config *norm, int64_t batch_size, lt_eval_result *res) {
    lt_status s = features_of(ctx, m, eval_ds, norm, batch_size, &res->features);
    if (!s && train && train->n > 0) s = features_of(ctx, m, train, norm, batch_size, &res->train_features);
    if (!s) {
        double mean, std;
        int64_t n;
        s = lt_mt_bn_scales(m, &mean, &std, &n);
        if (!s) {
            res->bn_scale_mean = mean;
            res->bn_scale_std = std;
            res->bn_scale_count = n;
        }
    }
    return s;
}
