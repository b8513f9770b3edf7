/* The training loop of one seed: stages, epochs, steps, validation, best-epoch selection,
 * stage evaluation, checkpoints and resume.
 *
 * Resume state (last.safetensors, rewritten atomically after every epoch and at every
 * stage end) holds everything the rest of the run depends on: the model (weights, BN
 * statistics, num_batches_tracked), the optimizer's buffers and step counts, the
 * best-validation copy of the model, and under metadata "progress" the position (stage,
 * epochs done, whether the stage's end was done), the best-validation bookkeeping and the
 * length of log.jsonl. The data order and augmentation of an epoch are functions of
 * (seed, stage, epoch, batch) alone (data.h), so no RNG position needs saving. Resuming
 * therefore replays exactly what an uninterrupted run does, and ends with the same bytes.
 *
 * Methods plug in through the method table (methods.h): at a stage's start, for the loss
 * of every batch, after every optimizer step, after every epoch and before the stage's
 * final evaluation, the loop calls every active row's hook in table order; it holds no
 * method's code itself. */
#include "trainer.h"
#include "wb_stage.h"

#include "longtail/ops.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double lt_mt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t lt_mt_stage_batches(const lt_stage_config *sc, int64_t n) {
    int64_t len = sc->sampler.epoch_length > 0 ? sc->sampler.epoch_length : n;
    return sc->drop_last ? len / sc->batch_size : (len + sc->batch_size - 1) / sc->batch_size;
}

const char *lt_mt_path_in(trainer *t, const char *name) {
    snprintf(t->path_buf, sizeof t->path_buf, "%s/%s", t->dir, name);
    return t->path_buf;
}

void lt_mt_emit(trainer *t, lt_train_event *ev) {
    const lt_train_options *o = t->call->opt;
    if (!o->progress) return;
    ev->run_dir = t->dir;
    ev->seed = t->seed;
    ev->seed_index = t->seed_index;
    ev->n_seeds = t->call->n_seeds;
    ev->n_stages = t->r->n_stages;
    ev->elapsed_s = lt_mt_now() - t->call->t0;
    double rate = t->call->units_done > 0 ? t->call->train_s / (double)t->call->units_done : NAN;
    ev->eta_s = isnan(rate) ? NAN : rate * (double)(t->call->units_left > 0 ? t->call->units_left : 0);
    o->progress(ev, o->progress_user);
}

/* A line of information for the user (LT_TRAIN_NOTE). */
void lt_mt_note(trainer *t, const char *note) {
    lt_train_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = LT_TRAIN_NOTE;
    ev.note = note;
    lt_mt_emit(t, &ev);
}

/* An event of stage k (0-based) with its name, the epoch count and NaN for "no value". */
lt_train_event lt_mt_stage_event(lt_train_event_kind kind, const lt_stage_config *sc, int k) {
    lt_train_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.stage = k + 1;
    ev.stage_name = sc->name;
    ev.epochs = sc->epochs;
    ev.val_top1 = NAN;
    return ev;
}

/* ---------------------------------------------------------------- one stage */

static void json_eval_entry(lt_jw *w, const lt_eval_result *r) {
    lt_jw_begin_object(w);
    lt_eval_result_write_json(r, w);
    lt_jw_end_object(w);
}

/* The selected epoch's model m (context ctx, method state ms) scored at a stage's end:
 * post-hoc transform (for these two evaluations only), validation and test metrics, then
 * the analysis (features, norms) of the trained model. */
static lt_status stage_eval(trainer *t, lt_model *m, lt_ctx *ctx, lt_mt_stage *ms, int has_val, int has_test,
                            lt_eval_result *val, lt_eval_result *test) {
    const lt_recipe *r = t->r;
    lt_status s = lt_mt_methods_posthoc(ms);
    if (s) return s;
    if (has_val)
        s = lt_evaluate(ctx, m, t->data->val, &t->norm, r->eval_batch_size, r->topk, t->train_counts, &r->groups, val);
    if (!s && has_test)
        s = lt_evaluate(ctx, m, t->data->test, &t->norm, r->eval_batch_size, r->topk, t->train_counts, &r->groups, test);
    /* The transform was for these two evaluations only; the analysis (features, norms)
     * and the next stage see the trained model. */
    if (!s) s = lt_model_set_posthoc(m, NULL, NULL);
    val->posthoc = test->posthoc = ms->ph_kind;
    val->posthoc_tau = test->posthoc_tau = ms->ph_tau;
    if (!s && has_test)
        s = lt_mt_stage_analysis(ctx, m, t->data->test, t->data->train, &t->norm, r->eval_batch_size, test);
    if (!s && has_val) s = lt_mt_stage_analysis(ctx, m, t->data->val, NULL, &t->norm, r->eval_batch_size, val);
    return s;
}

/* The fields of a stage entry that describe one model's outcome. */
static void json_outcome(lt_jw *w, const lt_stage_config *sc, int use_best, int64_t selected, int64_t best_epoch,
                         double best_val, const lt_model *m, int has_val, int has_test, const lt_eval_result *val,
                         const lt_eval_result *test) {
    lt_jw_key(w, "select");
    lt_jw_string(w, sc->epochs == 0                  ? "none (0 epochs: the starting model)"
                    : sc->select == LT_EPOCH_LAST ? "last"
                    : use_best                    ? "best_val"
                                                  : "last (no validation set)");
    lt_jw_key(w, "selected_epoch"); lt_jw_int(w, selected + 1);
    lt_jw_key(w, "best_val_top1"); lt_jw_double(w, best_epoch >= 0 ? best_val : NAN);
    lt_jw_key(w, "trainable_params"); lt_jw_int(w, lt_params_numel_trainable(&m->params));
    lt_jw_key(w, "split"); lt_jw_string(w, has_test ? "test" : "none");
    if (has_test) lt_eval_result_write_json(test, w);
    lt_jw_key(w, "val");
    if (has_val) json_eval_entry(w, val);
    else lt_jw_null(w);
}

/* A trained role at the end of stage k: its selected epoch, evaluation and
 * stageK.NAME.safetensors; its outcome goes to w as the value of key NAME. */
static lt_status finish_role(trainer *t, int k, lt_mt_role *ro, lt_jw *w) {
    const lt_stage_config *sc = &t->r->stages[k];
    int use_best = sc->select == LT_EPOCH_BEST_VAL && ro->best_epoch >= 0;
    if (use_best) lt_snapshot_restore(&ro->best, &ro->model.params);
    int64_t selected = use_best ? ro->best_epoch : sc->epochs - 1;
    int has_val = t->data->val && t->data->val->n > 0, has_test = t->data->test && t->data->test->n > 0;
    lt_eval_result val, test;
    lt_eval_result_init(&val);
    lt_eval_result_init(&test);
    lt_status s = stage_eval(t, &ro->model, ro->ctx, &ro->ms, has_val, has_test, &val, &test);
    if (s) s = lt_error(s, "role %s: %s", ro->spec->name, lt_last_error());
    if (!s) s = lt_mt_save_stage_checkpoint(t, k, selected, ro);
    if (!s) {
        char note[300], vs[48] = "no validation set", ts[48] = "no test set";
        if (ro->best_epoch >= 0) snprintf(vs, sizeof vs, "val top-1 %.2f%%", 100.0 * ro->best_val);
        if (has_test) snprintf(ts, sizeof ts, "test top-1 %.2f%%", 100.0 * test.top1);
        snprintf(note, sizeof note, "%s role %s: epoch %lld selected (%s); %s", sc->name, ro->spec->name,
                 (long long)selected + 1, vs, ts);
        lt_mt_note(t, note);
        lt_jw_key(w, ro->spec->name);
        lt_jw_begin_object(w);
        json_outcome(w, sc, use_best, selected, ro->best_epoch, ro->best_val, &ro->model, has_val, has_test, &val, &test);
        lt_jw_end_object(w);
    }
    lt_eval_result_free(&val);
    lt_eval_result_free(&test);
    return s;
}

/* Stage end: select the epoch, evaluate on validation and test, write stageK and
 * metrics.json, then the resume state. */
static lt_status finish_stage(trainer *t, int k) {
    const lt_recipe *r = t->r;
    const lt_stage_config *sc = &r->stages[k];
    int use_best = sc->select == LT_EPOCH_BEST_VAL && t->ps.best_epoch >= 0;
    if (use_best) lt_snapshot_restore(&t->best, &t->model.params);
    int64_t selected = use_best ? t->ps.best_epoch : sc->epochs - 1;

    lt_eval_result val, test;
    lt_eval_result_init(&val);
    lt_eval_result_init(&test);
    int has_val = t->data->val && t->data->val->n > 0, has_test = t->data->test && t->data->test->n > 0;
    lt_status s = stage_eval(t, &t->model, t->ctx, &t->ms, has_val, has_test, &val, &test);
    if (!s) s = lt_mt_save_stage_checkpoint(t, k, selected, NULL);
    if (!s) {
        lt_jw w;
        lt_jw_init(&w, 0);
        lt_jw_begin_object(&w);
        lt_jw_key(&w, "stage"); lt_jw_int(&w, k + 1);
        lt_jw_key(&w, "name"); lt_jw_string(&w, sc->name);
        lt_jw_key(&w, "epochs"); lt_jw_int(&w, sc->epochs);
        json_outcome(&w, sc, use_best, selected, t->ps.best_epoch, t->ps.best_val, &t->model, has_val, has_test, &val,
                     &test);
        if (t->n_roles > 0) {
            lt_jw_key(&w, "roles");
            lt_jw_begin_object(&w);
            for (int i = 0; i < t->n_roles && !s; i++) s = finish_role(t, k, &t->roles[i], &w);
            lt_jw_end_object(&w);
        }
        lt_jw_end_object(&w);
        const char *text;
        int64_t n;
        if (!s) s = lt_jw_finish(&w, &text, &n);
        if (!s) {
            lt_free(t->stage_json[k]);
            t->stage_json[k] = lt_strdup(text);
            if (!t->stage_json[k]) s = lt_error(LT_ERR_NOMEM, "out of memory");
        }
        lt_jw_free(&w);
    }
    if (!s) s = lt_mt_write_metrics(t);
    if (!s) {
        t->ps.stage_done = 1;
        s = lt_mt_save_resume(t);
    }
    if (!s) {
        lt_train_event ev = lt_mt_stage_event(LT_TRAIN_STAGE_END, sc, k);
        ev.epoch = sc->epochs;
        ev.selected_epoch = selected + 1;
        ev.val_top1 = t->ps.best_epoch >= 0 ? t->ps.best_val : NAN;
        ev.test = has_test ? &test : NULL;
        ev.val = has_val ? &val : NULL;
        lt_mt_emit(t, &ev);
    }
    lt_eval_result_free(&val);
    lt_eval_result_free(&test);
    return s;
}

static lt_status log_epoch(trainer *t, const lt_stage_config *sc, int k, int64_t e, double lr, double loss,
                           double acc, int64_t seen, double ips, double secs, const lt_eval_result *val) {
    lt_jw w;
    lt_jw_init(&w, 0);
    lt_jw_begin_object(&w);
    lt_jw_key(&w, "seed"); lt_jw_int(&w, (int64_t)t->seed);
    lt_jw_key(&w, "stage"); lt_jw_int(&w, k + 1);
    lt_jw_key(&w, "epoch"); lt_jw_int(&w, e + 1);
    lt_jw_key(&w, "epochs"); lt_jw_int(&w, sc->epochs);
    lt_jw_key(&w, "lr"); lt_jw_double(&w, lr);
    lt_jw_key(&w, "loss"); lt_jw_double(&w, loss);
    lt_jw_key(&w, "train_acc"); lt_jw_double(&w, acc);
    if (val) {
        lt_jw_key(&w, "val_top1"); lt_jw_double(&w, val->top1);
        lt_jw_key(&w, "val_many"); lt_jw_double(&w, lt_eval_many(val));
        lt_jw_key(&w, "val_medium"); lt_jw_double(&w, lt_eval_medium(val));
        lt_jw_key(&w, "val_few"); lt_jw_double(&w, lt_eval_few(val));
        lt_jw_key(&w, "val_nll"); lt_jw_double(&w, val->nll);
    }
    if (t->n_roles > 0) {
        lt_jw_key(&w, "roles");
        lt_jw_begin_object(&w);
        for (int i = 0; i < t->n_roles; i++) {
            const lt_mt_role *ro = &t->roles[i];
            lt_jw_key(&w, ro->spec->name);
            lt_jw_begin_object(&w);
            lt_jw_key(&w, "loss"); lt_jw_double(&w, seen ? ro->loss_sum / (double)seen : NAN);
            lt_jw_key(&w, "train_acc"); lt_jw_double(&w, seen ? (double)ro->correct / (double)seen : NAN);
            if (val) { lt_jw_key(&w, "val_top1"); lt_jw_double(&w, ro->val_top1); }
            lt_jw_end_object(&w);
        }
        lt_jw_end_object(&w);
    }
    lt_jw_key(&w, "images_per_s"); lt_jw_double(&w, ips);
    lt_jw_key(&w, "epoch_s"); lt_jw_double(&w, secs);
    lt_jw_end_object(&w);
    const char *text;
    int64_t n;
    lt_status s = lt_jw_finish(&w, &text, &n);
    if (!s) s = lt_mt_append_log(t, text);
    lt_jw_free(&w);
    return s;
}

/* A weight_decay_groups selector: a glob when it has a '*', else a name prefix as in train. */
static int wd_sel_matches(const char *name, const char *sel) {
    return strchr(sel, '*') ? fnmatch(sel, name, 0) == 0 : lt_params_name_matches(name, sel);
}

/* LT_ERR_CONFIG naming the recipe line if one of a stage's selectors (train prefixes,
 * weight_decay_groups) matches no weight of the model: fail before training. */
static lt_status check_selectors(const trainer *t, const lt_params *p, const char *role, const lt_stage_config *sc,
                                 const char *key, const char *const *sels, int n,
                                 int (*match)(const char *, const char *), const char *examples) {
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (int64_t e = 0; e < p->count && !hit; e++)
            hit = p->items[e].kind == LT_PARAM_WEIGHT && match(p->items[e].t.name, sels[i]);
        if (!hit) {
            char w[300];
            return lt_error(LT_ERR_CONFIG, "%s: %s.%s: '%s' matches no parameter of the %s%s (e.g. %s)",
                            lt_recipe_where(t->r, sc->name, key, w, sizeof w), sc->name, key, sels[i],
                            role ? "role " : "model", role ? role : "", examples);
        }
    }
    return LT_OK;
}

/* Every stage's train prefixes and weight_decay_groups selectors against p. */
static lt_status check_stage_selectors(const trainer *t, const lt_params *p, const char *role) {
    lt_status s = LT_OK;
    for (int k = 0; k < t->r->n_stages && !s; k++) {
        const lt_stage_config *sc = &t->r->stages[k];
        s = check_selectors(t, p, role, sc, "train", sc->train_prefixes, sc->n_train_prefixes, lt_params_name_matches,
                            "conv1, layer3, fc");
        if (!s)
            s = check_selectors(t, p, role, sc, "weight_decay_groups", sc->wd_group_sel, sc->n_wd_groups, wd_sel_matches,
                                "fc, layer3, *.bias");
    }
    return s;
}

/* weight_decay_groups: every weight starts in its home group (backbone / head, which decay
 * by the stage's weight_decay); the last item whose selector matches it moves it to the
 * optimizer group 2 + i, which decays by that item's value. */
static lt_status set_wd_groups(lt_params *p, lt_optim *o, const lt_stage_config *sc) {
    _Static_assert(LT_MAX_WD_GROUPS + 2 == LT_MAX_PARAM_GROUPS, "weight_decay_groups use groups 2 .. max-1");
    for (int64_t e = 0; e < p->count; e++) {
        lt_param *q = &p->items[e];
        if (q->kind != LT_PARAM_WEIGHT) continue;
        q->group = q->home_group;
        for (int i = 0; i < sc->n_wd_groups; i++)
            if (wd_sel_matches(q->t.name, sc->wd_group_sel[i])) q->group = 2 + i;
    }
    for (int i = 0; i < sc->n_wd_groups; i++) {
        lt_status s = lt_optim_set_group(o, 2 + i, (float)sc->wd_group_value[i], 1.0f);
        if (s) return s;
    }
    return LT_OK;
}

/* How many rows of logits (n, C) have their largest score at the label. */
static int64_t count_correct(const lt_tensor *logits, const int32_t *y, int64_t n) {
    int64_t C = logits->shape[1], correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits->data + i * C;
        int64_t am = 0;
        for (int64_t c = 1; c < C; c++)
            if (z[c] > z[am]) am = c;
        correct += am == y[i];
    }
    return correct;
}

/* Stage sc's trainable set and BN mode on model m (role NULL: the student). */
static lt_status stage_trainable(trainer *t, lt_model *m, const lt_stage_config *sc, const char *role) {
    lt_params *p = &m->params;
    char w[300];
    lt_status s = sc->train_all ? lt_params_set_trainable(p, "", 1)
                                : lt_params_freeze_all_except(p, sc->train_prefixes, sc->n_train_prefixes);
    if (s)
        return lt_error(LT_ERR_CONFIG, "%s: %s.train: %s%s%s%s", lt_recipe_where(t->r, sc->name, "train", w, sizeof w),
                        sc->name, role ? "role " : "", role ? role : "", role ? ": " : "", lt_last_error());
    lt_model_set_bn_mode(m, sc->bn);
    return LT_OK;
}

/* A fresh optimizer for stage sc over p, as a new torch.optim object, with the stage's
 * weight-decay groups; resume_st: its state from the resume file (under prefix). */
static lt_status stage_optim(lt_params *p, lt_optim *o, int *have, const lt_stage_config *sc,
                             lt_safetensors *resume_st, const char *prefix) {
    if (*have) lt_optim_free(o);
    *have = 0;
    lt_status s = lt_optim_init(o, p, &sc->optim);
    if (s) return s;
    *have = 1;
    s = set_wd_groups(p, o, sc);
    if (!s && resume_st) s = lt_ckpt_read_optim(resume_st, o, prefix);
    return s;
}

/* A trained role at the start of stage k: the stage's trainable set and BN mode, its
 * method rows, a fresh optimizer (its state from the resume file in a stage's middle). */
static lt_status role_stage_begin(trainer *t, lt_mt_role *ro, int k, int mid_stage, lt_safetensors *resume_st) {
    const lt_stage_config *sc = &t->r->stages[k];
    lt_status s = stage_trainable(t, &ro->model, sc, ro->spec->name);
    if (s) return s;
    ro->ms.sc = sc;
    ro->ms.k = k;
    s = lt_mt_methods_begin(&ro->ms, !mid_stage);
    if (s) return lt_error(s, "role %s: %s", ro->spec->name, lt_last_error());
    if (!mid_stage) {
        ro->best_epoch = -1;
        ro->best_val = NAN;
    }
    return stage_optim(&ro->model.params, &ro->optim, &ro->have_optim, sc, mid_stage ? resume_st : NULL, ro->prefix);
}

/* One training step of a trained role on the student's batch bt. */
static lt_status role_step(trainer *t, lt_mt_role *ro, const lt_batch *bt, int64_t e, int64_t b, double lr) {
    const lt_stage_config *sc = ro->ms.sc;
    lt_ctx_reset(ro->ctx);
    int64_t shape[4] = {bt->n, bt->h, bt->w, bt->c};
    lt_tensor *x = lt_tensor_wrap(ro->ctx, bt->x, 4, shape);
    lt_outputs out;
    (void)lt_model_forward_outputs(ro->ctx, &ro->model, x, &out);
    lt_mt_batch mb = {x, &out, bt->y, e, b};
    lt_tensor *loss = lt_ctx_status(ro->ctx) ? NULL : lt_mt_methods_loss(&ro->ms, &mb);
    if (lt_ctx_status(ro->ctx))
        return lt_error(lt_ctx_status(ro->ctx), "%s epoch %lld batch %lld: role %s: %s", sc->name, (long long)e + 1,
                        (long long)b + 1, ro->spec->name, lt_ctx_error(ro->ctx));
    float lv = loss->data[0];
    if (!isfinite(lv))
        return lt_error(LT_ERR_STATE, "%s epoch %lld batch %lld: role %s: the loss is %g (training diverged; lower %s.lr?)",
                        sc->name, (long long)e + 1, (long long)b + 1, ro->spec->name, (double)lv, sc->name);
    lt_status s = LT_OK;
    if (lt_params_numel_trainable(&ro->model.params) > 0) {
        lt_params_zero_grad(&ro->model.params);
        s = lt_backward(ro->ctx, loss);
        if (!s) s = lt_optim_step(&ro->optim, lr);
        if (!s) lt_mt_methods_after_step(&ro->ms);
    }
    ro->correct += count_correct(out.logits, bt->y, bt->n);
    ro->loss_sum += (double)lv * (double)bt->n;
    return s;
}

static lt_status run_stage(trainer *t, int k, int mid_stage, lt_safetensors *resume_st) {
    const lt_recipe *r = t->r;
    const lt_stage_config *sc = &r->stages[k];
    lt_params *p = &t->model.params;
    char w[300];

    /* Which parameters train, the BN mode, the classifier. */
    lt_status s = stage_trainable(t, &t->model, sc, NULL);
    if (s) return s;
    t->ms.sc = sc;
    t->ms.k = k;
    s = lt_mt_methods_begin(&t->ms, !mid_stage);
    if (s) return mid_stage ? lt_error(s, "%s: %s", lt_mt_path_in(t, "last.safetensors"), lt_last_error()) : s;
    if (!mid_stage) {
        t->ps.best_epoch = -1;
        t->ps.best_val = NAN;
        t->ps.epochs_done = 0;
    }

    /* A fresh optimizer per stage, as a new torch.optim object. */
    s = stage_optim(p, &t->optim, &t->have_optim, sc, mid_stage ? resume_st : NULL, "");
    if (s) return s;
    for (int i = 0; i < t->n_roles && !s; i++) s = role_stage_begin(t, &t->roles[i], k, mid_stage, resume_st);
    if (s) return s;

    lt_sampler sampler;
    memset(&sampler, 0, sizeof sampler);
    lt_loader *ld = NULL;
    const lt_dataset *tr = t->data->train;
    if (sc->epochs > 0)   /* a 0-epoch stage only evaluates: no data order to draw */
        s = lt_sampler_init(&sampler, &sc->sampler, tr->labels, tr->n, tr->n_classes,
                            lt_rng_derive_seed(t->seed, LT_STREAM_SAMPLER, (uint64_t)k));
    if (!s && sc->epochs > 0) {
        lt_loader_config lc;
        memset(&lc, 0, sizeof lc);
        lc.batch_size = sc->batch_size;
        lc.drop_last = sc->drop_last;
        lc.augment = t->aug;
        lc.seed = lt_rng_derive_seed(t->seed, LT_STREAM_AUGMENT, (uint64_t)k);
        s = lt_loader_init(&ld, tr, &sampler, &lc);
    }
    int64_t batches = ld ? lt_loader_num_batches(ld) : 0;
    if (!s && sc->epochs > 0 && batches < 1)
        s = lt_error(LT_ERR_CONFIG, "%s: %s.batch_size: %lld with drop_last leaves no batch of %lld training images",
                     lt_recipe_where(r, sc->name, "batch_size", w, sizeof w), sc->name, (long long)sc->batch_size,
                     (long long)tr->n);
    int has_val = t->data->val && t->data->val->n > 0;

    if (!s && t->ps.epochs_done == 0) {
        lt_train_event ev = lt_mt_stage_event(LT_TRAIN_STAGE_BEGIN, sc, k);
        ev.batches = batches;
        lt_mt_emit(t, &ev);
    }

    for (int64_t e = t->ps.epochs_done; !s && e < sc->epochs && !t->call->stopped; e++) {
        double t_epoch = lt_mt_now(), t_train = 0, loss_sum = 0;
        int64_t seen = 0, correct = 0;
        double lr = lt_schedule_lr(&sc->schedule, (int)e, 0, batches);
        s = lt_loader_start(ld, e, 0);
        lt_ctx_set_training(t->ctx, 1);
        lt_ctx_set_grad(t->ctx, 1);
        for (int i = 0; i < t->n_roles; i++) {
            lt_mt_role *ro = &t->roles[i];
            lt_ctx_set_training(ro->ctx, 1);
            lt_ctx_set_grad(ro->ctx, 1);
            ro->loss_sum = 0;
            ro->correct = 0;
            ro->val_top1 = NAN;
        }
        for (int64_t b = 0; !s; b++) {
            lt_batch bt;
            s = lt_loader_next(ld, &bt);
            if (s || bt.n == 0) break;
            double t_step = lt_mt_now();
            lr = lt_schedule_lr(&sc->schedule, (int)e, b, batches);
            lt_ctx_reset(t->ctx);
            int64_t shape[4] = {bt.n, bt.h, bt.w, bt.c};
            lt_tensor *x = lt_tensor_wrap(t->ctx, bt.x, 4, shape);
            lt_outputs out;
            (void)lt_model_forward_outputs(t->ctx, &t->model, x, &out);
            lt_tensor *logits = out.logits;
            lt_mt_batch mb = {x, &out, bt.y, e, b};
            lt_tensor *loss = lt_ctx_status(t->ctx) ? NULL : lt_mt_methods_loss(&t->ms, &mb);
            if (lt_ctx_status(t->ctx)) {
                s = lt_error(lt_ctx_status(t->ctx), "%s epoch %lld batch %lld: %s", sc->name, (long long)e + 1,
                             (long long)b + 1, lt_ctx_error(t->ctx));
                break;
            }
            float lv = loss->data[0];
            if (!isfinite(lv)) {
                s = lt_error(LT_ERR_STATE, "%s epoch %lld batch %lld: the loss is %g (training diverged; lower %s.lr?)",
                             sc->name, (long long)e + 1, (long long)b + 1, (double)lv, sc->name);
                break;
            }
            if (lt_params_numel_trainable(p) > 0) {
                lt_params_zero_grad(p);
                s = lt_backward(t->ctx, loss);
                if (!s) s = lt_optim_step(&t->optim, lr);
                if (!s) lt_mt_methods_after_step(&t->ms);
            }
            /* running statistics of the epoch */
            correct += count_correct(logits, bt.y, bt.n);
            loss_sum += (double)lv * (double)bt.n;
            for (int i = 0; i < t->n_roles && !s; i++) s = role_step(t, &t->roles[i], &bt, e, b, lr);
            if (s) break;
            seen += bt.n;
            double dt = lt_mt_now() - t_step;
            t_train += dt;
            t->call->train_s += dt;
            t->call->units_done++;
            t->call->units_left--;
            if (t->call->opt->progress && (b % 4 == 3 || b + 1 == batches)) {
                lt_train_event ev = lt_mt_stage_event(LT_TRAIN_BATCH, sc, k);
                ev.epoch = e + 1;
                ev.batch = b + 1;
                ev.batches = batches;
                ev.lr = lr;
                ev.loss = loss_sum / (double)seen;
                ev.train_acc = (double)correct / (double)seen;
                ev.images_per_s = t_train > 0 ? (double)seen / t_train : NAN;
                lt_mt_emit(t, &ev);
            }
        }
        lt_ctx_reset(t->ctx);
        if (!s) lt_mt_methods_after_epoch(&t->ms);
        for (int i = 0; i < t->n_roles && !s; i++) {
            lt_ctx_reset(t->roles[i].ctx);
            lt_mt_methods_after_epoch(&t->roles[i].ms);
        }
        if (s) break;

        lt_eval_result val;
        lt_eval_result_init(&val);
        double vtop1 = NAN;
        int is_best = 0;
        if (has_val) {
            s = lt_evaluate(t->ctx, &t->model, t->data->val, &t->norm, r->eval_batch_size, r->topk, t->train_counts,
                            &r->groups, &val);
            if (!s) {
                vtop1 = val.top1;
                if (t->ps.best_epoch < 0 || vtop1 > t->ps.best_val) {
                    t->ps.best_epoch = e;
                    t->ps.best_val = vtop1;
                    lt_snapshot_take(&t->best, p);
                    is_best = 1;
                }
            }
            for (int i = 0; i < t->n_roles && !s; i++) {
                lt_mt_role *ro = &t->roles[i];
                lt_eval_result rv;
                lt_eval_result_init(&rv);
                s = lt_evaluate(ro->ctx, &ro->model, t->data->val, &t->norm, r->eval_batch_size, r->topk,
                                t->train_counts, &r->groups, &rv);
                if (!s) {
                    ro->val_top1 = rv.top1;
                    if (ro->best_epoch < 0 || rv.top1 > ro->best_val) {
                        ro->best_epoch = e;
                        ro->best_val = rv.top1;
                        lt_snapshot_take(&ro->best, &ro->model.params);
                    }
                }
                lt_eval_result_free(&rv);
            }
        }
        double lr_epoch = lt_schedule_lr(&sc->schedule, (int)e, 0, batches);
        double loss_mean = seen ? loss_sum / (double)seen : NAN, acc = seen ? (double)correct / (double)seen : NAN;
        double ips = t_train > 0 ? (double)seen / t_train : NAN;
        if (!s) s = log_epoch(t, sc, k, e, lr_epoch, loss_mean, acc, seen, ips, lt_mt_now() - t_epoch, has_val ? &val : NULL);
        if (!s) {
            t->ps.epochs_done = e + 1;
            t->ps.stage_done = 0;
            s = lt_mt_save_resume(t);
        }
        if (!s) {
            lt_train_event ev = lt_mt_stage_event(LT_TRAIN_EPOCH_END, sc, k);
            ev.epoch = e + 1;
            ev.batch = ev.batches = batches;
            ev.lr = lr_epoch;
            ev.loss = loss_mean;
            ev.train_acc = acc;
            ev.images_per_s = ips;
            ev.val_top1 = vtop1;
            ev.is_best = is_best;
            ev.val = has_val ? &val : NULL;
            lt_mt_emit(t, &ev);
            t->call->epochs_trained++;
            const lt_train_options *o = t->call->opt;
            if (o->stop_after_epochs > 0 && t->call->epochs_trained >= o->stop_after_epochs) t->call->stopped = 1;
        }
        lt_eval_result_free(&val);
    }
    lt_loader_free(ld);
    if (sc->epochs > 0) lt_sampler_free(&sampler);
    if (!s && !t->call->stopped && t->ps.epochs_done == sc->epochs) s = finish_stage(t, k);
    return s;
}

/* ---------------------------------------------------------------- one seed */

/* [model] init: the model's parameters, buffers and counters from a checkpoint (a
 * stageK.safetensors, a resume file, a torchvision state_dict saved with safetensors).
 * Strict (the default), as PyTorch's strict load_state_dict: a tensor missing, extra or
 * of another shape is an error naming it. init_strict = false loads what matches and
 * reports the rest (lt_ckpt_import). */
static lt_status load_init(trainer *t, lt_model *m, const char *sec, const char *init, int strict) {
    lt_safetensors *st = NULL;
    lt_ckpt_import_report rep;
    lt_status s = lt_safetensors_load(init, &st);
    if (!s) s = lt_ckpt_import(st, &m->params, strict, &rep);
    lt_safetensors_free(st);
    if (s) {
        char w[300];
        return lt_error(s, "%s: %s.init: %s", lt_recipe_where(t->r, sec, "init", w, sizeof w), sec, lt_last_error());
    }
    if (!strict) {
        char note[2048];
        snprintf(note, sizeof note,
                 "%s.init %s: loaded %lld tensors; kept initialized: %lld missing (%s), %lld of another shape (%s); "
                 "ignored %lld the model lacks (%s)", sec, init, (long long)rep.loaded, (long long)rep.n_missing,
                 rep.n_missing ? rep.missing : "none", (long long)rep.n_mismatched,
                 rep.n_mismatched ? rep.mismatched : "none", (long long)rep.n_unexpected,
                 rep.n_unexpected ? rep.unexpected : "none");
        lt_mt_note(t, note);
    }
    return LT_OK;
}

/* [model] teacher: a frozen model rebuilt from its checkpoint alone (lt_model_load), scored
 * in evaluation mode (running BN statistics) on the student's batch, for the KD term. */
static lt_status load_teacher(trainer *t) {
    const lt_recipe *r = t->r;
    char w[300];
    lt_status s = lt_model_load(&t->teacher, r->teacher);
    if (s) return lt_error(s, "%s: %s.%s: %s", lt_recipe_where(r, r->teacher_sec, r->teacher_key, w, sizeof w), r->teacher_sec,
                                r->teacher_key, lt_last_error());
    t->have_teacher = 1;
    const lt_dataset *tr = t->data->train;
    if (t->teacher.cfg.num_classes != t->C || t->teacher.cfg.in_channels != tr->c)
        return lt_error(LT_ERR_CONFIG, "%s: %s.%s: %s scores %d classes from %d channels, the data has %d classes "
                        "and %lld channels", lt_recipe_where(r, r->teacher_sec, r->teacher_key, w, sizeof w),
                        r->teacher_sec, r->teacher_key, r->teacher,
                        t->teacher.cfg.num_classes, t->teacher.cfg.in_channels, (int)t->C, (long long)tr->c);
    lt_params_freeze_all_except(&t->teacher.params, NULL, 0);
    t->teacher_ctx = lt_ctx_new();
    if (!t->teacher_ctx) return lt_error(LT_ERR_NOMEM, "train: cannot create the teacher's context");
    lt_ctx_set_training(t->teacher_ctx, 0);
    lt_ctx_set_grad(t->teacher_ctx, 0);
    char note[4400], an[48];
    snprintf(note, sizeof note, "teacher %s (%s, %lld parameters, frozen)", r->teacher,
             lt_arch_name(&t->teacher.cfg, an, sizeof an), (long long)lt_model_num_params(&t->teacher));
    lt_mt_note(t, note);
    return LT_OK;
}

/* Trained role i ([model.NAME]): built and initialized from its own seed, the stages'
 * selectors checked against it, its context, best-epoch copy and method view. */
static lt_status init_role(trainer *t, int i) {
    const lt_recipe *r = t->r;
    const lt_role_spec *sp = &r->roles[i];
    lt_mt_role *ro = &t->roles[i];
    const lt_dataset *tr = t->data->train;
    ro->spec = sp;
    snprintf(ro->prefix, sizeof ro->prefix, "role.%s/", sp->name);
    ro->best_epoch = -1;
    ro->best_val = NAN;
    lt_model_config mc = sp->model;
    mc.in_channels = (int)tr->c;
    mc.in_height = (int)tr->h;
    mc.in_width = (int)tr->w;
    mc.num_classes = tr->n_classes;
    uint64_t seed = lt_rng_derive_seed(t->seed, LT_STREAM_ROLE, (uint64_t)i);
    lt_status s = lt_model_init(&ro->model, &mc, seed);
    if (s) {
        char w[300], sec[48];
        snprintf(sec, sizeof sec, "model.%s", sp->name);
        return lt_error(s, "%s: [%s]: %s", lt_recipe_where(r, sec, NULL, w, sizeof w), sec, lt_last_error());
    }
    t->n_roles = i + 1;   /* from here trainer_free frees it */
    ro->ctx = lt_ctx_new();
    if (!ro->ctx) return lt_error(LT_ERR_NOMEM, "train: cannot create role %s's context", sp->name);
    s = lt_snapshot_init(&ro->best, &ro->model.params);
    if (!s) s = check_stage_selectors(t, &ro->model.params, sp->name);
    ro->ms = t->ms;
    ro->ms.seed = seed;
    ro->ms.model = &ro->model;
    ro->ms.ctx = ro->ctx;
    return s;
}

static void trainer_free(trainer *t) {
    for (int i = 0; i < t->n_roles; i++) {
        lt_mt_role *ro = &t->roles[i];
        if (ro->have_optim) lt_optim_free(&ro->optim);
        lt_snapshot_free(&ro->best);
        lt_model_free(&ro->model);
        lt_ctx_free(ro->ctx);
    }
    if (t->have_optim) lt_optim_free(&t->optim);
    if (t->have_teacher) lt_model_free(&t->teacher);
    lt_ctx_free(t->teacher_ctx);
    lt_snapshot_free(&t->best);
    lt_model_free(&t->model);
    lt_ctx_free(t->ctx);
    lt_free(t->train_counts);
    lt_free(t->class_weight);
    for (int k = 0; k < LT_MAX_STAGES; k++) lt_free(t->stage_json[k]);
}

lt_status lt_mt_run_seed(lt_train_call *call, const lt_train_data *data, uint64_t seed, int seed_index,
                         const char *dir) {
    const lt_recipe *r = call->recipe;
    trainer *t = lt_calloc(1, sizeof *t);
    if (!t) return lt_error(LT_ERR_NOMEM, "train: out of memory");
    t->call = call;
    t->r = r;
    t->data = data;
    t->dir = dir;
    t->seed = seed;
    t->seed_index = seed_index;
    const lt_dataset *tr = data->train;
    lt_status s = LT_OK;
    if (tr->n < 1) s = lt_error(LT_ERR_ARG, "train: the training set is empty");
    t->C = tr->n_classes;
    if (!s) {
        t->train_counts = lt_calloc((size_t)t->C, sizeof(int64_t));
        t->class_weight = lt_calloc((size_t)t->C, sizeof(float));
        if (!t->train_counts || !t->class_weight) s = lt_error(LT_ERR_NOMEM, "train: out of memory");
        else lt_dataset_class_counts(tr, t->train_counts);
    }
    if (!s) s = lt_recipe_augment(r, tr, &t->aug);
    if (!s) {
        t->norm = t->aug;
        t->norm.pad = 0;
        t->norm.hflip = 0;
        lt_model_config mc = lt_recipe_model_config(r, tr->h, tr->w, tr->c, tr->n_classes);
        s = lt_model_init(&t->model, &mc, seed);
    }
    if (!s) {
        t->ctx = lt_ctx_new();
        if (!t->ctx) s = lt_error(LT_ERR_NOMEM, "train: cannot create a context");
    }
    if (!s) s = lt_snapshot_init(&t->best, &t->model.params);
    /* Every stage's prefixes must name parameters of this model: fail before training. */
    if (!s) s = check_stage_selectors(t, &t->model.params, NULL);

    if (!s && r->teacher) s = load_teacher(t);
    t->ms = (lt_mt_stage){.r = r, .seed = seed, .model = &t->model, .ctx = t->ctx,
                          .teacher = t->have_teacher ? &t->teacher : NULL, .teacher_ctx = t->teacher_ctx,
                          .train_counts = t->train_counts, .class_weight = t->class_weight, .val = data->val,
                          .norm = &t->norm, .maxnorm_r = NAN, .ph_kind = LT_POSTHOC_NONE, .ph_tau = NAN};
    for (int i = 0; i < r->n_roles && !s; i++) s = init_role(t, i);
    lt_safetensors *resume_st = NULL;
    t->ps.best_epoch = -1;
    t->ps.best_val = NAN;
    if (!s && call->opt->resume && lt_path_exists(lt_mt_path_in(t, "last.safetensors"))) s = lt_mt_read_resume(t, &resume_st);
    else if (!s) {
        /* A fresh run: the starting weights, an empty log. */
        if (r->init) s = load_init(t, &t->model, "model", r->init, r->init_strict);
        for (int i = 0; i < t->n_roles && !s; i++) {
            lt_mt_role *ro = &t->roles[i];
            char sec[48];
            snprintf(sec, sizeof sec, "model.%s", ro->spec->name);
            if (ro->spec->init) s = load_init(t, &ro->model, sec, ro->spec->init, ro->spec->init_strict);
        }
        if (!s) s = lt_file_write_atomic(lt_mt_path_in(t, "log.jsonl"), "", 0);
    }

    int first = 0, mid = 0;
    if (!s && resume_st) {
        if (t->ps.stage_done) first = t->ps.stage + 1;
        else {
            first = t->ps.stage;
            mid = 1;
        }
    }
    /* Work still to do (for the ETA): lt_train counted a whole run for every seed. */
    if (!s) {
        int64_t left = 0;
        for (int k = first; k < r->n_stages; k++) {
            int64_t ep = r->stages[k].epochs - (k == first && mid ? t->ps.epochs_done : 0);
            left += ep * lt_mt_stage_batches(&r->stages[k], tr->n);
        }
        call->units_left += left - call->units_per_seed;
        lt_train_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = LT_TRAIN_SEED_BEGIN;
        ev.stage = first + 1;
        ev.epoch = mid ? t->ps.epochs_done : 0;
        lt_mt_emit(t, &ev);
    }
    for (int k = first; !s && k < r->n_stages && !call->stopped; k++) {
        t->ps.stage = k;
        if (!(k == first && mid)) t->ps.stage_done = 0;
        s = run_stage(t, k, k == first && mid, k == first ? resume_st : NULL);
    }
    lt_safetensors_free(resume_st);
    if (!s && !call->stopped) {
        if (first >= r->n_stages) s = lt_mt_write_metrics(t);   /* an already finished run: refresh */
        lt_train_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = LT_TRAIN_SEED_END;
        lt_mt_emit(t, &ev);
    }
    trainer_free(t);
    lt_free(t);
    return s;
}
