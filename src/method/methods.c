/* The method table (methods.h): each row the hooks of one method, in the order they run. */
#include "methods.h"
#include "stage_loss.h"
#include "wb_stage.h"

#include "longtail/ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* A method that acts on the one classifier refuses a model with several heads. */
static void one_classifier(lt_mt_reader *rd, const char *S, const char *key, int on) {
    if (!rd->st && on && rd->r->model.heads > 1)
        rd->st = lt_mt_bad(rd->r, S, key, "works on one classifier; the model has [model] heads = %d", rd->r->model.heads);
}

/* ---- reinit_classifier: the head re-drawn as at model construction (cRT's re-initialized
 * classifier): Kaiming-normal weight, bias per the recipe, from a stream of its own. */
static void reinit_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    st->reinit_classifier = lt_mt_get_bool(rd, S, "reinit_classifier", 0);
    one_classifier(rd, S, "reinit_classifier", st->reinit_classifier);
}

static int reinit_active(const lt_stage_config *sc) { return sc->reinit_classifier; }

static lt_status reinit_begin(lt_mt_stage *s, int fresh) {
    if (!fresh) return LT_OK;
    lt_rng rng;
    lt_rng_init(&rng, lt_rng_derive_seed(s->seed, 1000 + (uint64_t)s->k, 0), LT_STREAM_INIT);
    lt_head *h = &s->model->head;
    lt_tensor *w = h->weight, *b = h->bias;
    double std = sqrt(2.0 / (double)w->shape[1]);
    if (h->kind != LT_HEAD_ETF)   /* the ETF rows are fixed: only its bias is re-drawn */
        for (int64_t i = 0; i < w->numel; i++) w->data[i] = (float)(std * lt_rng_normal(&rng));
    if (h->scales)
        for (int64_t i = 0; i < h->scales->numel; i++) h->scales->data[i] = 1.0f;
    float bound = (float)(1.0 / sqrt((double)w->shape[1]));
    for (int64_t i = 0; b && i < b->numel; i++)
        b->data[i] = s->model->cfg.fc_bias_init == LT_BIAS_INIT_ZERO ? 0.0f : -bound + 2.0f * bound * lt_rng_uniform(&rng);
    return LT_OK;
}

/* ---- loss: the stage's loss of each head's logits (stage_loss.c), averaged over heads.
 * Class weights of the epoch go to s->class_weight; stochastic terms draw from (seed,
 * stage, epoch, batch) on LT_STREAM_LOSS. */
/* loss, class_weights, cb_beta, label_smoothing and the loss's own keys (stage_loss.c) */
static void loss_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    if (!rd->st) rd->st = lt_mt_read_stage_loss(rd->r, S, st);
}

static lt_status loss_begin(lt_mt_stage *s, int fresh) { return lt_mt_stage_loss_begin(s->r, s->sc, s->model, fresh); }

static lt_tensor *loss_loss(lt_mt_stage *s, const lt_mt_batch *b, lt_tensor *loss) {
    (void)loss;
    const lt_outputs *o = b->out;
    lt_tensor *sum = NULL;
    for (int h = 0; h < o->n_branches && !lt_ctx_status(s->ctx); h++) {
        lt_rng rng;
        lt_mt_stage_loss_rng(&rng, s->seed, s->k, b->epoch, b->batch);
        lt_tensor *lh = lt_mt_stage_loss(s->ctx, s->sc, o->branch_logits[h], o->features, b->labels, s->train_counts,
                                         b->epoch, s->model, &rng, s->class_weight);
        sum = sum ? lt_add(s->ctx, sum, lh) : lh;
    }
    if (o->n_branches > 1 && !lt_ctx_status(s->ctx)) sum = lt_scale(s->ctx, sum, 1.0f / (float)o->n_branches);
    return sum;
}

/* ---- maxnorm: projected gradient descent on the classifier rows (constraint.c), after
 * every step or every epoch, at the radius fixed at the stage start. */
static void maxnorm_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    st->maxnorm = lt_mt_get_bool(rd, S, "maxnorm", 0);
    static const char *const every[] = {"step", "epoch"};
    static const int every_v[] = {0, 1};
    st->maxnorm_every_epoch = lt_mt_get_enum(rd, S, "maxnorm_every", "step", every, every_v, 2);
    st->maxnorm_t = lt_mt_get_num(rd, S, "maxnorm_t", 0.1, 0.0, 1.0, 0);
    st->maxnorm_radius = lt_mt_get_num(rd, S, "maxnorm_radius", 0.0, 0.0, INFINITY, 0);
    if (rd->st) return;
    if (!st->maxnorm) {
        static const char *const mk[] = {"maxnorm_every", "maxnorm_t", "maxnorm_radius"};
        for (int i = 0; i < 3; i++)
            if (lt_mt_has(rd, S, mk[i])) {
                rd->st = lt_mt_bad(r, S, mk[i], "only used with maxnorm = true");
                return;
            }
    } else if (lt_mt_has(rd, S, "maxnorm_t") && lt_mt_has(rd, S, "maxnorm_radius")) {
        rd->st = lt_mt_bad(r, S, "maxnorm_radius", "give maxnorm_t (relative radius) or maxnorm_radius (absolute), not both");
        return;
    } else if (lt_mt_has(rd, S, "maxnorm_radius") && !(st->maxnorm_radius > 0)) {
        rd->st = lt_mt_bad(r, S, "maxnorm_radius", "expected a radius > 0");
        return;
    }
    one_classifier(rd, S, "maxnorm", st->maxnorm);
}

static int maxnorm_active(const lt_stage_config *sc) { return sc->maxnorm; }

static lt_status maxnorm_begin(lt_mt_stage *s, int fresh) {
    if (fresh) s->maxnorm_r = lt_mt_maxnorm_stage_radius(s->sc, s->model);
    else if (isnan(s->maxnorm_r))
        return lt_error(LT_ERR_FORMAT, "the resume state has no maxnorm_radius for %s", s->sc->name);
    return LT_OK;
}

static void maxnorm_project(lt_mt_stage *s) {
    lt_tensor *w = s->model->head.weight;
    lt_maxnorm_project(w->data, w->shape[0], w->shape[1], s->maxnorm_r);
}

static void maxnorm_after_step(lt_mt_stage *s) {
    if (!s->sc->maxnorm_every_epoch) maxnorm_project(s);
}

static void maxnorm_after_epoch(lt_mt_stage *s) {
    if (s->sc->maxnorm_every_epoch) maxnorm_project(s);
}

/* ---- kd: (1 − α) · loss + α · KD(student, teacher, T). The teacher scores the same batch
 * in its own context (evaluation mode, no gradient); its logits enter the student's graph
 * as a constant. */
static void kd_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    lt_stage_loss_config *lc = &st->lc;
    lc->kd = (float)lt_mt_get_num(rd, S, "kd", 0.0, 0.0, 1.0, 0);
    if (!rd->st && lc->kd > 0 && !r->teacher)
        rd->st = lt_mt_bad(r, S, "kd", "kd = %g distills from a teacher: set [model] teacher = a checkpoint", (double)lc->kd);
    if (!rd->st && lc->kd == 0 && lt_mt_has(rd, S, "kd_temperature"))
        rd->st = lt_mt_bad(r, S, "kd_temperature", "only used with kd > 0");
    lc->kd_temperature = (float)lt_mt_get_num(rd, S, "kd_temperature", 4.0, 1e-3, 1e3, 0);
}

static int kd_active(const lt_stage_config *sc) { return sc->lc.kd > 0; }

static lt_status kd_begin(lt_mt_stage *s, int fresh) {
    (void)fresh;
    if (!s->teacher) return lt_error(LT_ERR_STATE, "%s: kd needs the teacher role", s->sc->name);
    return LT_OK;
}

static lt_tensor *kd_loss(lt_mt_stage *s, const lt_mt_batch *b, lt_tensor *loss) {
    lt_ctx_reset(s->teacher_ctx);
    lt_tensor *xt = lt_tensor_wrap(s->teacher_ctx, b->x->data, 4, b->x->shape);
    lt_tensor *zt = lt_model_forward(s->teacher_ctx, s->teacher, xt, NULL);
    if (lt_ctx_status(s->teacher_ctx))
        return lt_ctx_fail(s->ctx, lt_ctx_status(s->teacher_ctx), "teacher: %s", lt_ctx_error(s->teacher_ctx));
    lt_tensor *zc = lt_tensor_wrap(s->ctx, zt->data, 2, zt->shape);
    float a = s->sc->lc.kd;
    lt_tensor *kd = lt_loss_kd(s->ctx, b->out->logits, zc, s->sc->lc.kd_temperature);
    return a >= 1.0f ? kd : lt_add(s->ctx, lt_scale(s->ctx, loss, 1.0f - a), lt_scale(s->ctx, kd, a));
}

/* ---- posthoc: the stage's transform and τ (chosen on validation) set on the head for the
 * stage's final evaluation; the trainer clears it afterwards (posthoc_stage.c). */
static void posthoc_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    const char *const *ph = lt_stage_posthoc_names;
    static const int ph_v[LT_STAGE_POSTHOC_KINDS] = {LT_STAGE_POSTHOC_NONE, LT_STAGE_POSTHOC_L2NORM,
                                                     LT_STAGE_POSTHOC_TAUNORM, LT_STAGE_POSTHOC_LA_ADD,
                                                     LT_STAGE_POSTHOC_LA_MUL};
    st->posthoc = (lt_stage_posthoc)lt_mt_get_enum(rd, S, "posthoc", "none", ph, ph_v, LT_STAGE_POSTHOC_KINDS);
    static const char *const pb[] = {"keep", "drop"};
    static const int pb_v[] = {0, 1};
    st->posthoc_drop_bias = lt_mt_get_enum(rd, S, "posthoc_bias", "keep", pb, pb_v, 2);
    const char *tau = lt_mt_get_str(rd, S, "posthoc_tau", "sweep");
    if (rd->st) return;
    st->posthoc_tau = NAN;
    if (strcmp(tau, "sweep") != 0) {
        double v;
        if (!lt_parse_double(tau, &v) || v < 0) {
            rd->st = lt_mt_bad(r, S, "posthoc_tau", "expected sweep or a number >= 0, got '%s'", tau);
            return;
        }
        st->posthoc_tau = v;
    }
    if (st->posthoc == LT_STAGE_POSTHOC_NONE || st->posthoc == LT_STAGE_POSTHOC_L2NORM) {
        if (lt_mt_has(rd, S, "posthoc_tau"))
            rd->st = lt_mt_bad(r, S, "posthoc_tau", "only used with posthoc = taunorm, la_add or la_mul (posthoc is '%s')",
                               ph[st->posthoc]);
    }
    if (!rd->st && lt_mt_has(rd, S, "posthoc_bias") && st->posthoc != LT_STAGE_POSTHOC_L2NORM &&
        st->posthoc != LT_STAGE_POSTHOC_TAUNORM)
        rd->st = lt_mt_bad(r, S, "posthoc_bias", "only used with posthoc = l2norm or taunorm (posthoc is '%s')",
                           ph[st->posthoc]);
    one_classifier(rd, S, "posthoc", st->posthoc != LT_STAGE_POSTHOC_NONE);
}

static lt_status posthoc_begin(lt_mt_stage *s, int fresh) {
    (void)fresh;
    s->ph_kind = LT_POSTHOC_NONE;
    s->ph_tau = NAN;
    return LT_OK;
}

static lt_status posthoc_posthoc(lt_mt_stage *s) {
    const lt_recipe *r = s->r;
    return lt_mt_posthoc_choose(s->ctx, s->model, s->sc, s->val, s->norm, r->eval_batch_size, r->topk, s->train_counts,
                                &r->groups, &s->ph_kind, &s->ph_tau);
}

const lt_method lt_methods[LT_N_METHODS] = {
    [LT_METHOD_REINIT_CLASSIFIER] = {.name = "reinit_classifier", .read = reinit_read, .active = reinit_active,
                                     .begin = reinit_begin},
    [LT_METHOD_LOSS] = {.name = "loss", .read = loss_read, .begin = loss_begin, .loss = loss_loss},
    [LT_METHOD_MAXNORM] = {.name = "maxnorm", .read = maxnorm_read, .active = maxnorm_active, .begin = maxnorm_begin,
                           .after_step = maxnorm_after_step, .after_epoch = maxnorm_after_epoch},
    [LT_METHOD_KD] = {.name = "kd", .read = kd_read, .active = kd_active, .begin = kd_begin, .loss = kd_loss},
    [LT_METHOD_POSTHOC] = {.name = "posthoc", .read = posthoc_read, .begin = posthoc_begin,
                           .posthoc = posthoc_posthoc},
};
_Static_assert(sizeof lt_methods / sizeof lt_methods[0] == LT_N_METHODS, "one row per method");

static int on(const lt_method *m, const lt_mt_stage *s) { return !m->active || m->active(s->sc); }

void lt_mt_methods_read(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    for (int i = 0; i < LT_N_METHODS && !rd->st; i++)
        if (lt_methods[i].read) lt_methods[i].read(rd, S, st);
}

lt_status lt_mt_methods_begin(lt_mt_stage *s, int fresh) {
    for (int i = 0; i < LT_N_METHODS; i++) {
        const lt_method *m = &lt_methods[i];
        lt_status st = m->begin && on(m, s) ? m->begin(s, fresh) : LT_OK;
        if (st) return st;
    }
    return LT_OK;
}

lt_tensor *lt_mt_methods_loss(lt_mt_stage *s, const lt_mt_batch *b) {
    lt_tensor *loss = NULL;
    for (int i = 0; i < LT_N_METHODS && !lt_ctx_status(s->ctx); i++) {
        const lt_method *m = &lt_methods[i];
        if (m->loss && on(m, s)) loss = m->loss(s, b, loss);
    }
    return lt_ctx_status(s->ctx) ? NULL : loss;
}

void lt_mt_methods_after_step(lt_mt_stage *s) {
    for (int i = 0; i < LT_N_METHODS; i++)
        if (lt_methods[i].after_step && on(&lt_methods[i], s)) lt_methods[i].after_step(s);
}

void lt_mt_methods_after_epoch(lt_mt_stage *s) {
    for (int i = 0; i < LT_N_METHODS; i++)
        if (lt_methods[i].after_epoch && on(&lt_methods[i], s)) lt_methods[i].after_epoch(s);
}

lt_status lt_mt_methods_posthoc(lt_mt_stage *s) {
    for (int i = 0; i < LT_N_METHODS; i++) {
        const lt_method *m = &lt_methods[i];
        lt_status st = m->posthoc && on(m, s) ? m->posthoc(s) : LT_OK;
        if (st) return st;
    }
    return LT_OK;
}
