/* The loss of a training stage: the recipe keys, the stage-start preparation and the
 * per-batch loss, wired to the loss library (loss.h). Every loss formula lives in loss.h
 * and src/loss; this file only chooses, parameterizes and sums them:
 *
 *   loss = base(kind, class weights of the epoch) [+ IWB term] [+ wd_loss] [+ feature_reg]
 *
 * Class weights (class_weights = none | cb | drw) are recomputed for every batch from the
 * training counts and the epoch (C pow() calls, no allocation), which is what makes DRW
 * switch exactly at drw_epoch, also after a resume. Keys and defaults: docs/recipes.md;
 * formulas and normalizations: docs/losses.md. */
#include "stage_loss.h"
#include "reader.h"


#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

static const char *const loss_names[] = {"ce", "cb_softmax", "cb_bce", "focal", "cb_focal", "cb_sigmoid", "ldam",
                                         "balanced_softmax", "la", "eql", "seql", "las", "iwb"};
#define N_LOSSES ((int)(sizeof loss_names / sizeof loss_names[0]))

/* Losses whose library function takes class weights. */
static int takes_weights(lt_loss_kind k) {
    return k == LT_LOSS_CE || k == LT_LOSS_CB_SOFTMAX || k == LT_LOSS_CB_BCE || k == LT_LOSS_FOCAL ||
           k == LT_LOSS_CB_FOCAL || k == LT_LOSS_CB_SIGMOID || k == LT_LOSS_LDAM;
}

static int is_cb_kind(lt_loss_kind k) {
    return k == LT_LOSS_CB_SOFTMAX || k == LT_LOSS_CB_BCE || k == LT_LOSS_CB_FOCAL || k == LT_LOSS_CB_SIGMOID;
}

/* ---------------------------------------------------------------- reading keys */

lt_status lt_mt_read_stage_loss(lt_recipe *r, const char *section, lt_stage_config *st) {
    lt_mt_reader d = {r, LT_OK};
    const char *S = section;
    lt_stage_loss_config *lc = &st->lc;
    memset(lc, 0, sizeof *lc);
    st->loss = (lt_loss_kind)lt_mt_get_enum(&d, S, "loss", "ce", loss_names, NULL, N_LOSSES);
    if (d.st) return d.st;
    lt_loss_kind k = st->loss;
    const char *kname = loss_names[k];
    char what[160];
#define ONLY(key, cond, desc)                                                                                      \
    do {                                                                                                           \
        if (!d.st && !(cond) && lt_mt_has(&d, S, key))                                                                      \
            d.st = lt_mt_bad(r, S, key, "only used with %s (loss is '%s')", desc, kname);                                  \
    } while (0)

    /* IWB's base loss first: it decides which weights and base-loss keys apply. */
    static const char *const bases[] = {"ce", "cb_softmax", "cb_bce", "focal", "cb_focal", "cb_sigmoid"};
    ONLY("iwb_base", k == LT_LOSS_IWB, "loss = iwb");
    lc->iwb_base = (lt_loss_kind)lt_mt_get_enum(&d, S, "iwb_base", "cb_bce", bases, NULL, 6);
    lt_loss_kind base = k == LT_LOSS_IWB ? lc->iwb_base : k;

    /* class weights */
    static const char *const cws[] = {"none", "cb", "drw"};
    st->class_weights = (lt_class_weighting)lt_mt_get_enum(&d, S, "class_weights", is_cb_kind(base) ? "cb" : "none", cws, NULL, 3);
    if (!d.st && st->class_weights != LT_WEIGHTS_NONE && !takes_weights(base))
        d.st = lt_mt_bad(r, S, "class_weights", "loss '%s' takes no class weights (it re-balances by itself); use none", kname);
    ONLY("cb_beta", st->class_weights != LT_WEIGHTS_NONE, "class_weights = cb or drw");
    st->cb_beta = lt_mt_get_num(&d, S, "cb_beta", 0.9999, 0.0, 1.0, 1);
    if (!d.st && st->class_weights == LT_WEIGHTS_DRW && !lt_mt_has(&d, S, "drw_epoch"))
        d.st = lt_mt_bad(r, S, "class_weights", "class_weights = drw needs drw_epoch (the first re-weighted epoch, counted from 0: 160 of 200)");
    ONLY("drw_epoch", st->class_weights == LT_WEIGHTS_DRW, "class_weights = drw");
    if (!d.st) d.st = lt_config_get_int(r->cfg, section, "drw_epoch", 0, &lc->drw_epoch);
    if (!d.st && lc->drw_epoch < 0) d.st = lt_mt_bad(r, S, "drw_epoch", "expected an integer >= 0, got %lld", (long long)lc->drw_epoch);

    static const char *const norms[] = {"batch", "weights"};
    ONLY("cb_norm", base == LT_LOSS_CB_SOFTMAX, "loss = cb_softmax");
    lc->cb_norm_weights = lt_mt_get_enum(&d, S, "cb_norm", "batch", norms, NULL, 2);
    ONLY("label_smoothing", base == LT_LOSS_CE, "loss = ce");
    st->label_smoothing = (float)lt_mt_get_num(&d, S, "label_smoothing", 0.0, 0.0, 1.0, 1);
    ONLY("focal_gamma", base == LT_LOSS_FOCAL || base == LT_LOSS_CB_FOCAL, "loss = focal or cb_focal");
    lc->focal_gamma = (float)lt_mt_get_num(&d, S, "focal_gamma", 1.0, 0.0, 100.0, 0);
    int sig = base == LT_LOSS_CB_FOCAL || base == LT_LOSS_CB_SIGMOID || base == LT_LOSS_EQL;
    ONLY("sigmoid_bias_init", sig, "a sigmoid loss (cb_focal, cb_sigmoid, eql)");
    if (!d.st) {
        int v = base == LT_LOSS_CB_FOCAL || base == LT_LOSS_CB_SIGMOID;
        d.st = lt_config_get_bool(r->cfg, section, "sigmoid_bias_init", v, &v);
        lc->sigmoid_bias_init = v;
    }
    ONLY("ldam_s", k == LT_LOSS_LDAM, "loss = ldam");
    ONLY("ldam_max_m", k == LT_LOSS_LDAM, "loss = ldam");
    lc->ldam_s = (float)lt_mt_get_num(&d, S, "ldam_s", 30.0, 0.0, INFINITY, 0);
    lc->ldam_max_m = (float)lt_mt_get_num(&d, S, "ldam_max_m", 0.5, 0.0, INFINITY, 0);
    ONLY("la_tau", k == LT_LOSS_LA, "loss = la");
    lc->la_tau = (float)lt_mt_get_num(&d, S, "la_tau", 1.0, -100.0, 100.0, 0);
    ONLY("eql_lambda", k == LT_LOSS_EQL, "loss = eql");
    lc->eql_lambda = (float)lt_mt_get_num(&d, S, "eql_lambda", 1.77e-3, 0.0, 1.0, 0);
    ONLY("seql_gamma", k == LT_LOSS_SEQL, "loss = seql");
    ONLY("seql_lambda", k == LT_LOSS_SEQL, "loss = seql");
    lc->seql_gamma = (float)lt_mt_get_num(&d, S, "seql_gamma", 0.9, 0.0, 1.0, 0);
    lc->seql_lambda = (float)lt_mt_get_num(&d, S, "seql_lambda", 0.005, 0.0, 1.0, 0);
    ONLY("las_head", k == LT_LOSS_LAS, "loss = las");
    ONLY("las_tail", k == LT_LOSS_LAS, "loss = las");
    lc->las_head = (float)lt_mt_get_num(&d, S, "las_head", 0.4, 0.0, 1.0, 0);
    lc->las_tail = (float)lt_mt_get_num(&d, S, "las_tail", 0.1, 0.0, 1.0, 0);

    /* IWB: the inverse weight-balancing term (docs/losses.md, `iwb`) */
    lc->iwb = lt_iwb_config_default();
    static const char *const iwb_keys[] = {"iwb_lambda", "iwb_nc", "iwb_hc", "iwb_kl", "iwb_reduce"};
    for (int i = 0; i < 5; i++) ONLY(iwb_keys[i], k == LT_LOSS_IWB, "loss = iwb");
    lc->iwb.lambda = (float)lt_mt_get_num(&d, S, "iwb_lambda", 0.15, 0.0, INFINITY, 0);
    static const char *const ncs[] = {"ln", "log2"};
    lc->iwb.log2_nc = lt_mt_get_enum(&d, S, "iwb_nc", "ln", ncs, NULL, 2);
    static const char *const hcs[] = {"vector", "scalar", "none"};
    static const lt_iwb_hc hc_v[] = {LT_IWB_HC_VECTOR, LT_IWB_HC_SCALAR, LT_IWB_HC_NONE};
    lc->iwb.hc = hc_v[lt_mt_get_enum(&d, S, "iwb_hc", "vector", hcs, NULL, 3)];
    static const char *const kls[] = {"code", "paper", "mse"};
    static const lt_iwb_divergence kl_v[] = {LT_IWB_KL_CODE, LT_IWB_KL_PAPER, LT_IWB_MSE};
    lc->iwb.divergence = kl_v[lt_mt_get_enum(&d, S, "iwb_kl", "code", kls, NULL, 3)];
    static const char *const reds[] = {"sum", "mean"};
    lc->iwb.batch_mean = lt_mt_get_enum(&d, S, "iwb_reduce", "sum", reds, NULL, 2);

    /* additive terms */
    lc->wd_loss = (float)lt_mt_get_num(&d, S, "wd_loss", 0.0, 0.0, INFINITY, 0);
    lc->feature_reg = (float)lt_mt_get_num(&d, S, "feature_reg", 0.0, 0.0, INFINITY, 0);

    /* several heads: each head's loss, averaged; what works on the one classifier is refused */
    if (!d.st && r->model.heads > 1 && (k == LT_LOSS_IWB || lc->sigmoid_bias_init))
        d.st = lt_mt_bad(r, S, "loss", "%s works on one classifier; the model has heads = %d",
                   k == LT_LOSS_IWB ? "loss = iwb" : "sigmoid_bias_init", r->model.heads);

    /* LDAM computes cosine logits: the model must score with the cosine classifier too. */
    if (!d.st && k == LT_LOSS_LDAM && r->head != LT_HEAD_COSINE) {
        snprintf(what, sizeof what, "loss = ldam needs [model] head = cosine (LDAM's normed classifier), the model's head is '%s'",
                 lt_head_kind_name(r->head));
        d.st = lt_mt_bad(r, S, "loss", "%s", what);
    }
    /* IWB and the sigmoid bias need a classifier with trainable rows / a bias. */
    if (!d.st && k == LT_LOSS_IWB && r->head == LT_HEAD_ETF)
        d.st = lt_mt_bad(r, S, "loss", "loss = iwb pulls the classifier's row norms, the ETF head's rows are fixed");
    if (!d.st && lc->sigmoid_bias_init && r->head == LT_HEAD_COSINE)
        d.st = lt_mt_bad(r, S, lt_mt_has(&d, S, "sigmoid_bias_init") ? "sigmoid_bias_init" : "loss",
                   "sigmoid_bias_init needs a classifier bias, the cosine head has none (set it to false)");
#undef ONLY
    return d.st;
}

/* ---------------------------------------------------------------- stage start */

lt_status lt_mt_stage_loss_begin(const lt_recipe *r, const lt_stage_config *sc, lt_model *m, int fresh) {
    char w[300];
    if (sc->loss == LT_LOSS_LDAM && m->head.kind != LT_HEAD_COSINE)
        return lt_error(LT_ERR_CONFIG, "%s: %s.loss: ldam needs the cosine classifier, the model has a %s head",
                        lt_recipe_where(r, sc->name, "loss", w, sizeof w), sc->name, lt_head_kind_name(m->head.kind));
    if ((sc->loss == LT_LOSS_LDAM || sc->loss == LT_LOSS_IWB) && !m->head.weight)
        return lt_error(LT_ERR_CONFIG, "%s: %s.loss: %s needs the classifier's weight rows, the model's head has none",
                        lt_recipe_where(r, sc->name, "loss", w, sizeof w), sc->name, sc->loss == LT_LOSS_LDAM ? "ldam" : "iwb");
    if (fresh && sc->lc.sigmoid_bias_init) {
        if (!m->head.bias)
            return lt_error(LT_ERR_CONFIG, "%s: %s.sigmoid_bias_init: the model's classifier has no bias",
                            lt_recipe_where(r, sc->name, "sigmoid_bias_init", w, sizeof w), sc->name);
        float b = lt_loss_sigmoid_bias_init(m->head.bias->numel);
        if (isnan(b))
            return lt_error(LT_ERR_CONFIG, "%s: %s.sigmoid_bias_init: needs at least 2 classes",
                            lt_recipe_where(r, sc->name, "sigmoid_bias_init", w, sizeof w), sc->name);
        for (int64_t i = 0; i < m->head.bias->numel; i++) m->head.bias->data[i] = b;
    }
    return LT_OK;
}

/* ---------------------------------------------------------------- per batch */

void lt_mt_stage_loss_rng(lt_rng *rng, uint64_t seed, int stage, int64_t epoch, int64_t batch) {
    uint64_t s = lt_rng_derive_seed(seed, LT_STREAM_LOSS, (uint64_t)stage);
    lt_rng_init(rng, lt_rng_derive_seed(s, (uint64_t)epoch, (uint64_t)batch), LT_STREAM_LOSS);
}

static lt_tensor *base_loss(lt_ctx *ctx, const lt_stage_config *sc, lt_loss_kind k, lt_tensor *logits,
                            lt_tensor *features, const int32_t *labels, const int64_t *counts, lt_model *m,
                            lt_rng *rng, const float *w) {
    const lt_stage_loss_config *lc = &sc->lc;
    switch (k) {
    case LT_LOSS_CE: return lt_cross_entropy(ctx, logits, labels, w, sc->label_smoothing, LT_REDUCE_MEAN);
    case LT_LOSS_CB_SOFTMAX:
        return lt_loss_cb_softmax(ctx, logits, labels, w, lc->cb_norm_weights ? LT_REDUCE_MEAN : LT_REDUCE_BATCH_MEAN);
    case LT_LOSS_CB_BCE: return lt_loss_cb_softmax_bce(ctx, logits, labels, w);
    case LT_LOSS_FOCAL: return lt_loss_focal(ctx, logits, labels, w, lc->focal_gamma);
    case LT_LOSS_CB_FOCAL: return lt_loss_cb_focal(ctx, logits, labels, w, lc->focal_gamma);
    case LT_LOSS_CB_SIGMOID: return lt_loss_cb_sigmoid(ctx, logits, labels, w);
    case LT_LOSS_LDAM: {
        /* The cosine head's logits are cos(f, w_c) unscaled (LDAM-DRW's NormedLinear);
         * the loss applies s. */
        (void)features;
        (void)m;
        return lt_loss_ldam(ctx, logits, labels, counts, lc->ldam_max_m, lc->ldam_s, w);
    }
    case LT_LOSS_BALANCED_SOFTMAX: return lt_loss_balanced_softmax(ctx, logits, labels, counts);
    case LT_LOSS_LA: return lt_loss_logit_adjusted(ctx, logits, labels, counts, lc->la_tau);
    case LT_LOSS_EQL: return lt_loss_eql(ctx, logits, labels, counts, lc->eql_lambda);
    case LT_LOSS_SEQL: return lt_loss_seql(ctx, logits, labels, counts, lc->seql_lambda, lc->seql_gamma, rng);
    case LT_LOSS_LAS: return lt_loss_las(ctx, logits, labels, counts, lc->las_head, lc->las_tail);
    case LT_LOSS_IWB: break;
    }
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: loss %d cannot be a base loss", sc->name, (int)k);
}

lt_tensor *lt_mt_stage_loss(lt_ctx *ctx, const lt_stage_config *sc, lt_tensor *logits, lt_tensor *features,
                            const int32_t *labels, const int64_t *counts, int64_t epoch, lt_model *m,
                            lt_rng *rng, float *weight_buf) {
    if (lt_ctx_status(ctx) || !logits) return NULL;
    const lt_stage_loss_config *lc = &sc->lc;
    int64_t C = logits->shape[1];
    const float *w = NULL;
    lt_status s = LT_OK;
    if (sc->class_weights == LT_WEIGHTS_CB) s = lt_cb_weights(counts, C, sc->cb_beta, weight_buf);
    else if (sc->class_weights == LT_WEIGHTS_DRW) s = lt_drw_weights(epoch, lc->drw_epoch, sc->cb_beta, counts, C, weight_buf);
    if (s) return lt_ctx_fail(ctx, s, "%s: class weights: %s", sc->name, lt_last_error());
    if (sc->class_weights != LT_WEIGHTS_NONE) w = weight_buf;

    lt_loss_kind k = sc->loss == LT_LOSS_IWB ? lc->iwb_base : sc->loss;
    lt_tensor *loss = base_loss(ctx, sc, k, logits, features, labels, counts, m, rng, w);
    if (sc->loss == LT_LOSS_IWB)
        loss = lt_add(ctx, loss, lt_loss_iwb(ctx, features, m->head.weight, labels, counts, &lc->iwb));
    if (lc->wd_loss > 0) {
        /* λ/2 Σ‖θ‖² over the weights this stage trains (frozen ones get no gradient and
         * would only shift the value). */
        const lt_params *p = &m->params;
        int64_t n = 0;
        for (int64_t e = 0; e < p->count; e++) n += p->items[e].kind == LT_PARAM_WEIGHT && p->items[e].t.requires_grad;
        if (n > 0) {
            lt_tensor **ts = lt_ctx_alloc(ctx, (size_t)n * sizeof *ts);
            if (!ts) return lt_ctx_fail(ctx, LT_ERR_NOMEM, "%s: wd_loss: out of memory", sc->name);
            n = 0;
            for (int64_t e = 0; e < p->count; e++)
                if (p->items[e].kind == LT_PARAM_WEIGHT && p->items[e].t.requires_grad) ts[n++] = &p->items[e].t;
            loss = lt_add(ctx, loss, lt_loss_weight_decay(ctx, ts, n, lc->wd_loss));
        }
    }
    if (lc->feature_reg > 0) loss = lt_add(ctx, loss, lt_loss_feature_reg(ctx, features, lc->feature_reg));
    return loss;
}
