/* A seed's run directory: the resume state (last.safetensors, rewritten atomically after
 * every epoch and at every stage end; what it holds: the top of train.c), log.jsonl,
 * stageK.safetensors with the model's metadata and architecture record, and
 * metrics.json. Called by the training loop (train.c) through trainer.h. */
#include "trainer.h"
#include "wb_stage.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- files */

static lt_status write_progress_json(const trainer *t, int finished, char **out) {
    lt_jw w;
    lt_jw_init(&w, 0);
    lt_jw_begin_object(&w);
    lt_jw_key(&w, "seed"); lt_jw_int(&w, (int64_t)t->seed);
    lt_jw_key(&w, "stage"); lt_jw_int(&w, t->ps.stage + 1);
    lt_jw_key(&w, "epochs_done"); lt_jw_int(&w, t->ps.epochs_done);
    lt_jw_key(&w, "stage_done"); lt_jw_bool(&w, t->ps.stage_done);
    lt_jw_key(&w, "best_epoch"); lt_jw_int(&w, t->ps.best_epoch + 1);
    lt_jw_key(&w, "best_val_top1"); lt_jw_double(&w, t->ps.best_epoch >= 0 ? t->ps.best_val : NAN);
    lt_jw_key(&w, "log_lines"); lt_jw_int(&w, t->ps.log_lines);
    lt_jw_key(&w, "finished"); lt_jw_bool(&w, finished);
    if (t->n_roles > 0) {
        /* each trained role's best-epoch bookkeeping, in recipe order */
        lt_jw_key(&w, "roles");
        lt_jw_begin_array(&w);
        for (int i = 0; i < t->n_roles; i++) {
            lt_jw_begin_object(&w);
            lt_jw_key(&w, "name"); lt_jw_string(&w, t->roles[i].spec->name);
            lt_jw_key(&w, "best_epoch"); lt_jw_int(&w, t->roles[i].best_epoch + 1);
            lt_jw_key(&w, "best_val_top1");
            lt_jw_double(&w, t->roles[i].best_epoch >= 0 ? t->roles[i].best_val : NAN);
            lt_jw_end_object(&w);
        }
        lt_jw_end_array(&w);
    }
    lt_jw_end_object(&w);
    const char *text;
    int64_t n;
    lt_status s = lt_jw_finish(&w, &text, &n);
    if (!s) {
        *out = lt_strdup(text);
        if (!*out) s = lt_error(LT_ERR_NOMEM, "out of memory");
    }
    lt_jw_free(&w);
    return s;
}

static lt_status add_model_meta(trainer *t, const lt_model *m, lt_ckpt_writer *w);

/* last.safetensors: the whole state a resumed run needs (see the top of this file). */
lt_status lt_mt_save_resume(trainer *t) {
    int finished = t->ps.stage_done && t->ps.stage == t->r->n_stages - 1;
    char *progress = NULL;
    lt_status s = write_progress_json(t, finished, &progress);
    if (s) return s;
    lt_ckpt_writer *w;
    s = lt_ckpt_writer_new(&w);
    if (s) { lt_free(progress); return s; }
    lt_ckpt_writer_add_params(w, &t->model.params, "", LT_CKPT_ALL, NULL, NULL, NULL);
    if (!t->ps.stage_done && t->have_optim) lt_ckpt_writer_add_optim(w, &t->optim, "");
    if (!t->ps.stage_done && t->ps.best_epoch >= 0)
        lt_ckpt_writer_add_params(w, &t->model.params, "best/", LT_CKPT_ALL, t->best.data, t->best.buffers,
                                  t->best.counters);
    for (int i = 0; i < t->n_roles; i++) {
        const lt_mt_role *ro = &t->roles[i];
        char best[64];
        snprintf(best, sizeof best, "%sbest/", ro->prefix);
        lt_ckpt_writer_add_params(w, &ro->model.params, ro->prefix, LT_CKPT_ALL, NULL, NULL, NULL);
        if (!t->ps.stage_done && ro->have_optim) lt_ckpt_writer_add_optim(w, &ro->optim, ro->prefix);
        if (!t->ps.stage_done && ro->best_epoch >= 0)
            lt_ckpt_writer_add_params(w, &ro->model.params, best, LT_CKPT_ALL, ro->best.data, ro->best.buffers,
                                      ro->best.counters);
    }
    lt_ckpt_writer_add_meta(w, "format", "longtail-resume-1");
    s = add_model_meta(t, &t->model, w);
    if (s) {
        lt_free(progress);
        lt_ckpt_writer_free(w);
        return s;
    }
    lt_ckpt_writer_add_meta(w, "progress", progress);
    if (!t->ps.stage_done && t->r->stages[t->ps.stage].maxnorm) {
        /* The stage-start MaxNorm radius (the start weights are gone by now). */
        char rad[40];
        snprintf(rad, sizeof rad, "%.17g", t->ms.maxnorm_r);
        lt_ckpt_writer_add_meta(w, "maxnorm_radius", rad);
        for (int i = 0; i < t->n_roles; i++) {
            char key[64];
            snprintf(key, sizeof key, "%smaxnorm_radius", t->roles[i].prefix);
            snprintf(rad, sizeof rad, "%.17g", t->roles[i].ms.maxnorm_r);
            lt_ckpt_writer_add_meta(w, key, rad);
        }
    }
    for (int k = 0; k < t->r->n_stages; k++)
        if (t->stage_json[k]) {
            char key[48];
            snprintf(key, sizeof key, "stage_metrics.%d", k + 1);
            lt_ckpt_writer_add_meta(w, key, t->stage_json[k]);
        }
    lt_free(progress);
    return lt_ckpt_writer_commit(w, lt_mt_path_in(t, "last.safetensors"));
}

/* Appends one line to log.jsonl and records the new length. */
lt_status lt_mt_append_log(trainer *t, const char *line) {
    const char *path = lt_mt_path_in(t, "log.jsonl");
    FILE *f = fopen(path, "ab");
    if (!f) return lt_error(LT_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    int ok = fputs(line, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) return lt_error(LT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    t->ps.log_lines++;
    return LT_OK;
}

static void csv_floats(char *buf, size_t n, const float *v, int64_t c) {
    size_t k = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < c && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ",%.9g" : "%.9g", (double)v[i]);
}

/* Metadata that describes the model (to rebuild it, normalize its inputs, reproduce it). */
static lt_status add_model_meta(trainer *t, const lt_model *m, lt_ckpt_writer *w) {
    char *recipe = NULL;
    lt_status s = lt_recipe_to_string(t->r, &recipe);
    if (s) return s;
    const lt_model_config *mc = &m->cfg;
    char arch[32], depth[16], width[32], ncls[16], h[16], w_[16], c[16], seed[32], mean[160], std[160];
    lt_arch_name(mc, arch, sizeof arch);
    snprintf(depth, sizeof depth, "%d", mc->depth);
    snprintf(width, sizeof width, "%.9g", (double)mc->width);
    snprintf(ncls, sizeof ncls, "%d", mc->num_classes);
    snprintf(h, sizeof h, "%d", mc->in_height);
    snprintf(w_, sizeof w_, "%d", mc->in_width);
    snprintf(c, sizeof c, "%d", mc->in_channels);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->seed);
    csv_floats(mean, sizeof mean, t->norm.mean, mc->in_channels);
    csv_floats(std, sizeof std, t->norm.std, mc->in_channels);
    const char *meta[] = {"arch", arch, "depth", depth, "width", width, "num_classes", ncls, "in_height", h,
                          "in_width", w_, "in_channels", c, "bias_init",
                          mc->fc_bias_init == LT_BIAS_INIT_ZERO ? "zero" : "torch", "normalize_mean", mean,
                          "normalize_std", std, "seed", seed, "recipe", recipe, "longtail", LT_VERSION};
    for (size_t k = 0; k + 1 < sizeof meta / sizeof meta[0] && !s; k += 2) s = lt_ckpt_writer_add_meta(w, meta[k], meta[k + 1]);
    char *arch_json = NULL;
    if (!s) s = lt_model_arch_json(m, &arch_json);
    if (!s) s = lt_ckpt_writer_add_meta(w, "architecture", arch_json);
    lt_free(arch_json);
    lt_free(recipe);
    return s;
}

/* stageK.safetensors: the model with what is needed to rebuild and use it. */
lt_status lt_mt_save_stage_checkpoint(trainer *t, int k, int64_t selected_epoch, const lt_mt_role *ro) {
    const lt_model *m = ro ? &ro->model : &t->model;
    const lt_mt_stage *ms = ro ? &ro->ms : &t->ms;
    lt_ckpt_writer *w;
    lt_status s = lt_ckpt_writer_new(&w);
    if (s) return s;
    char stage[16], sel[24], name[64];
    snprintf(stage, sizeof stage, "%d", k + 1);
    snprintf(sel, sizeof sel, "%lld", (long long)selected_epoch + 1);
    if (ro) snprintf(name, sizeof name, "stage%d.%s.safetensors", k + 1, ro->spec->name);
    else snprintf(name, sizeof name, "stage%d.safetensors", k + 1);
    s = lt_ckpt_writer_add_meta(w, "format", "longtail-model-1");
    if (!s) s = add_model_meta(t, m, w);
    if (!s && ro) s = lt_ckpt_writer_add_meta(w, "role", ro->spec->name);
    if (!s) s = lt_ckpt_writer_add_meta(w, "stage", stage);
    if (!s) s = lt_ckpt_writer_add_meta(w, "selected_epoch", sel);
    if (!s && ms->ph_kind != LT_POSTHOC_NONE) {
        /* The weights are the trained model; the transform its final evaluation used is
         * recorded beside them (docs/recipes.md, post-hoc transforms). */
        char tau[40];
        snprintf(tau, sizeof tau, "%.17g", ms->ph_tau);
        s = lt_ckpt_writer_add_meta(w, "posthoc", lt_posthoc_name(ms->ph_kind));
        if (!s) s = lt_ckpt_writer_add_meta(w, "posthoc_tau", tau);
        if (!s) s = lt_ckpt_writer_add_meta(w, "posthoc_bias", t->r->stages[k].posthoc_drop_bias ? "drop" : "keep");
    }
    if (!s) s = lt_ckpt_writer_add_params(w, &m->params, "", LT_CKPT_ALL, NULL, NULL, NULL);
    if (s) {
        lt_ckpt_writer_free(w);
        return s;
    }
    return lt_ckpt_writer_commit(w, lt_mt_path_in(t, name));
}

/* metrics.json from the finished stages' entries. */
lt_status lt_mt_write_metrics(trainer *t) {
    const lt_dataset *tr = t->data->train;
    lt_jw w;
    lt_jw_init(&w, 2);
    lt_jw_begin_object(&w);
    lt_jw_key(&w, "format"); lt_jw_string(&w, "longtail-metrics-1");
    lt_jw_key(&w, "recipe"); lt_jw_string(&w, t->r->name);
    lt_jw_key(&w, "seed"); lt_jw_int(&w, (int64_t)t->seed);
    lt_jw_key(&w, "threads"); lt_jw_int(&w, t->r->threads);
    lt_jw_key(&w, "dataset"); lt_jw_string(&w, lt_dataset_kind_name(t->r->data.kind));
    lt_jw_key(&w, "class_names");
    lt_jw_begin_array(&w);
    for (int32_t c = 0; c < t->C; c++) lt_jw_string(&w, tr->class_names ? tr->class_names[c] : "");
    lt_jw_end_array(&w);
    lt_jw_key(&w, "train_counts");
    lt_jw_begin_array(&w);
    for (int32_t c = 0; c < t->C; c++) lt_jw_int(&w, t->train_counts[c]);
    lt_jw_end_array(&w);
    lt_jw_key(&w, "num_params"); lt_jw_int(&w, lt_model_num_params(&t->model));
    int n_done = 0;
    for (int k = 0; k < t->r->n_stages; k++) n_done += t->stage_json[k] != NULL;
    lt_jw_key(&w, "finished"); lt_jw_bool(&w, n_done == t->r->n_stages);
    lt_jw_key(&w, "stages");
    lt_jw_begin_array(&w);
    lt_status s = LT_OK;
    for (int k = 0; k < t->r->n_stages && !s; k++) {
        if (!t->stage_json[k]) continue;
        lt_json *j;
        s = lt_json_parse(t->stage_json[k], (int64_t)strlen(t->stage_json[k]), "stage metrics", &j);
        if (s) break;
        lt_mt_json_write(&w, j);
        lt_json_free(j);
    }
    lt_jw_end_array(&w);
    lt_jw_end_object(&w);
    const char *text;
    int64_t n;
    if (!s) s = lt_jw_finish(&w, &text, &n);
    if (!s) {
        char *buf = lt_malloc((size_t)n + 1);
        if (!buf) s = lt_error(LT_ERR_NOMEM, "out of memory");
        else {
            memcpy(buf, text, (size_t)n);
            buf[n] = '\n';
            s = lt_file_write_atomic(lt_mt_path_in(t, "metrics.json"), buf, n + 1);
            lt_free(buf);
        }
    }
    lt_jw_free(&w);
    return s;
}

/* ---------------------------------------------------------------- resume */

/* Cuts log.jsonl after its first ps.log_lines lines (a missing log is recreated). */
static lt_status truncate_log(trainer *t) {
    const char *path = lt_mt_path_in(t, "log.jsonl");
    char *text = NULL;
    int64_t n = 0;
    if (!lt_path_exists(path)) return lt_file_write_atomic(path, "", 0);
    lt_status s = lt_file_read(path, 0, &text, &n);
    if (s) return s;
    int64_t keep = 0, lines = 0;
    while (keep < n && lines < t->ps.log_lines) {
        const char *nl = memchr(text + keep, '\n', (size_t)(n - keep));
        if (!nl) break;
        keep = nl - text + 1;
        lines++;
    }
    if (keep < n) s = lt_file_write_atomic(path, text, keep);
    lt_free(text);
    if (!s && lines < t->ps.log_lines) t->ps.log_lines = lines;   /* the log lost lines: count what is there */
    return s;
}

lt_status lt_mt_read_resume(trainer *t, lt_safetensors **out) {
    const char *path = lt_mt_path_in(t, "last.safetensors");
    lt_safetensors *st;
    lt_status s = lt_safetensors_load(path, &st);
    if (s) return s;
    const char *fmt = lt_safetensors_metadata(st, "format"), *prog = lt_safetensors_metadata(st, "progress");
    if (!fmt || strcmp(fmt, "longtail-resume-1") != 0 || !prog) {
        s = lt_error(LT_ERR_FORMAT, "%s: not a longtail resume file (metadata format '%s')", path, fmt ? fmt : "");
        lt_safetensors_free(st);
        return s;
    }
    lt_json *j;
    s = lt_json_parse(prog, (int64_t)strlen(prog), path, &j);
    if (s) { lt_safetensors_free(st); return s; }
    double seed = lt_json_number(lt_json_get(j, "seed"), -1), stage = lt_json_number(lt_json_get(j, "stage"), 0);
    double ed = lt_json_number(lt_json_get(j, "epochs_done"), -1), be = lt_json_number(lt_json_get(j, "best_epoch"), -1);
    double lb = lt_json_number(lt_json_get(j, "log_lines"), -1);
    const lt_json *sd = lt_json_get(j, "stage_done");
    int stage_done = sd && sd->type == LT_JSON_BOOL ? sd->boolean : -1;
    t->ps.best_val = lt_json_number(lt_json_get(j, "best_val_top1"), NAN);
    /* the trained roles' bookkeeping: one entry per role of the recipe, same names */
    const lt_json *roles = lt_json_get(j, "roles");
    int64_t n_roles = roles && roles->type == LT_JSON_ARRAY ? roles->n : 0;
    int roles_ok = n_roles == t->n_roles && (t->n_roles == 0 || roles->type == LT_JSON_ARRAY);
    for (int i = 0; i < t->n_roles && roles_ok; i++) {
        const lt_json *e = lt_json_at(roles, i);
        const char *nm = lt_json_string(lt_json_get(e, "name"), NULL);
        double rb = lt_json_number(lt_json_get(e, "best_epoch"), -1);
        roles_ok = nm && !strcmp(nm, t->roles[i].spec->name) && rb >= 0;
        t->roles[i].best_epoch = (int64_t)rb - 1;
        t->roles[i].best_val = lt_json_number(lt_json_get(e, "best_val_top1"), NAN);
    }
    lt_json_free(j);
    if (!roles_ok) {
        s = lt_error(LT_ERR_FORMAT, "%s: the resume state's trained roles are not the recipe's %d ([model.NAME] sections)",
                     path, t->n_roles);
        lt_safetensors_free(st);
        return s;
    }
    if (seed != (double)t->seed || !(stage >= 1 && stage <= t->r->n_stages) || stage_done < 0 || !(ed >= 0) ||
        !(lb >= 0) || !(be >= 0)) {
        s = lt_error(LT_ERR_FORMAT, "%s: progress %s does not fit this run (seed %llu, %d stages)", path, prog,
                     (unsigned long long)t->seed, t->r->n_stages);
        lt_safetensors_free(st);
        return s;
    }
    t->ps.stage = (int)stage - 1;
    t->ps.epochs_done = (int64_t)ed;
    t->ps.stage_done = stage_done;
    t->ps.best_epoch = (int64_t)be - 1;
    t->ps.log_lines = (int64_t)lb;
    const char *rad = lt_safetensors_metadata(st, "maxnorm_radius");
    t->ms.maxnorm_r = NAN;
    if (rad) {
        double v;
        if (!lt_parse_double(rad, &v) || !(v > 0)) {
            s = lt_error(LT_ERR_FORMAT, "%s: maxnorm_radius '%s' is not a radius > 0", path, rad);
            lt_safetensors_free(st);
            return s;
        }
        t->ms.maxnorm_r = v;
    }
    for (int i = 0; i < t->n_roles; i++) {
        char key[64];
        snprintf(key, sizeof key, "%smaxnorm_radius", t->roles[i].prefix);
        const char *rr = lt_safetensors_metadata(st, key);
        double v = NAN;
        if (rr && (!lt_parse_double(rr, &v) || !(v > 0))) {
            s = lt_error(LT_ERR_FORMAT, "%s: %s '%s' is not a radius > 0", path, key, rr);
            lt_safetensors_free(st);
            return s;
        }
        t->roles[i].ms.maxnorm_r = v;
    }
    if (t->ps.epochs_done > t->r->stages[t->ps.stage].epochs) {
        lt_safetensors_free(st);
        return lt_error(LT_ERR_FORMAT, "%s: %lld epochs done in stage %d, the recipe has %lld", path,
                        (long long)t->ps.epochs_done, t->ps.stage + 1, (long long)t->r->stages[t->ps.stage].epochs);
    }
    for (int k = 0; k < t->r->n_stages; k++) {
        char key[48];
        snprintf(key, sizeof key, "stage_metrics.%d", k + 1);
        const char *m = lt_safetensors_metadata(st, key);
        if (m && (k < t->ps.stage || (k == t->ps.stage && t->ps.stage_done))) {
            t->stage_json[k] = lt_strdup(m);
            if (!t->stage_json[k]) { lt_safetensors_free(st); return lt_error(LT_ERR_NOMEM, "out of memory"); }
        }
    }
    s = lt_ckpt_read_params(st, &t->model.params, "", LT_CKPT_ALL, 1, NULL, NULL, NULL);
    if (!s && !t->ps.stage_done && t->ps.best_epoch >= 0)
        s = lt_ckpt_read_params(st, &t->model.params, "best/", LT_CKPT_ALL, 0, t->best.data, t->best.buffers,
                                t->best.counters);
    for (int i = 0; i < t->n_roles && !s; i++) {
        lt_mt_role *ro = &t->roles[i];
        char best[64];
        snprintf(best, sizeof best, "%sbest/", ro->prefix);
        s = lt_ckpt_read_params(st, &ro->model.params, ro->prefix, LT_CKPT_ALL, 1, NULL, NULL, NULL);
        if (!s && !t->ps.stage_done && ro->best_epoch >= 0)
            s = lt_ckpt_read_params(st, &ro->model.params, best, LT_CKPT_ALL, 0, ro->best.data, ro->best.buffers,
                                    ro->best.counters);
    }
    if (s) { lt_safetensors_free(st); return s; }
    /* log.jsonl back to what it held at this state (a kill may have left later lines). */
    s = truncate_log(t);
    if (s) { lt_safetensors_free(st); return s; }
    *out = st;
    return LT_OK;
}
