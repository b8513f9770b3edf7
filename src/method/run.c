/* The run driver: the run directory (exists / --force / --resume), the seeds, the summary
 * over seeds, and reading finished runs back for tables. */
#include "method_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- directories */

static int dir_has_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

/* "seed12" -> 12; -1 if the name is not seed<digits>. */
static long long seed_dir_number(const char *name) {
    if (strncmp(name, "seed", 4) != 0 || !name[4]) return -1;
    long long v = 0;
    for (const char *c = name + 4; *c; c++) {
        if (*c < '0' || *c > '9' || v > (1LL << 50)) return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

/* A file longtail writes into a run directory (or its .tmp). */
static int is_run_file(const char *name) {
    static const char *const fixed[] = {"config.ini", "log.jsonl", "metrics.json", "summary.json", "last.safetensors"};
    char base[256];
    snprintf(base, sizeof base, "%s", name);
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".tmp")) base[n - 4] = '\0';
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (!strcmp(base, fixed[k])) return 1;
    int num = 0, len = 0;
    return sscanf(base, "stage%d.safetensors%n", &num, &len) == 1 && len == (int)strlen(base) && num >= 1;
}

/* Removes longtail's own files from dir (and from its seed<N>/ folders), nothing else. */
static lt_status clean_run_dir(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return lt_error(LT_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    lt_status s = LT_OK;
    struct dirent *e;
    char path[4096];
    while (!s && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth == 0 && seed_dir_number(e->d_name) >= 0) {
            s = clean_run_dir(path, 1);
            if (!s) rmdir(path);   /* stays if it holds other files */
        } else if (S_ISREG(sb.st_mode) && is_run_file(e->d_name)) {
            if (unlink(path) != 0) s = lt_error(LT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        }
    }
    closedir(d);
    return s;
}

static lt_status seed_config_text(const lt_recipe *r, uint64_t seed, char **text) {
    char *base = NULL;
    lt_config *c = NULL;
    lt_status s = lt_recipe_to_string(r, &base);
    if (!s) s = lt_config_parse_string(base, lt_config_name(r->cfg), &c);
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)seed);
    if (!s) s = lt_config_set(c, "run.seed", v);
    if (!s) s = lt_config_set(c, "run.seeds", "1");
    if (!s) s = lt_config_to_string(c, text);
    lt_config_free(c);
    lt_free(base);
    return s;
}

static lt_status write_text(const char *path, const char *text) {
    return lt_file_write_atomic(path, text, (int64_t)strlen(text));
}

/* ---------------------------------------------------------------- outcome */

void lt_train_outcome_free(lt_train_outcome *o) {
    if (!o) return;
    lt_free(o->seeds);
    lt_free(o->results);
    memset(o, 0, sizeof *o);
}

static double num_or_nan(const lt_json *j, const char *key) {
    const lt_json *v = lt_json_get(j, key);
    return v && v->type == LT_JSON_NUMBER ? v->num : NAN;
}

typedef struct seed_run {
    long long seed;
    char path[4096];
} seed_run;

static int cmp_seed_run(const void *a, const void *b) {
    long long x = ((const seed_run *)a)->seed, y = ((const seed_run *)b)->seed;
    return (x > y) - (x < y);
}

/* The metrics.json files of a run directory, in seed order. */
static lt_status list_runs(const char *run_dir, seed_run **out, int *n) {
    *out = NULL;
    *n = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.json", run_dir);
    if (lt_path_exists(path)) {
        seed_run *one = lt_calloc(1, sizeof *one);
        if (!one) return lt_error(LT_ERR_NOMEM, "out of memory");
        one->seed = 0;
        snprintf(one->path, sizeof one->path, "%s", path);
        *out = one;
        *n = 1;
        return LT_OK;
    }
    DIR *d = opendir(run_dir);
    if (!d) return lt_error(LT_ERR_IO, "%s: cannot open: %s", run_dir, strerror(errno));
    seed_run *v = NULL;
    int cnt = 0, cap = 0;
    struct dirent *e;
    lt_status s = LT_OK;
    while (!s && (e = readdir(d))) {
        long long num = seed_dir_number(e->d_name);
        if (num < 0) continue;
        snprintf(path, sizeof path, "%s/%s/metrics.json", run_dir, e->d_name);
        if (!lt_path_exists(path)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            seed_run *g = lt_realloc(v, (size_t)cap * sizeof *g);
            if (!g) { s = lt_error(LT_ERR_NOMEM, "out of memory"); break; }
            v = g;
        }
        v[cnt].seed = num;
        snprintf(v[cnt].path, sizeof v[cnt].path, "%s", path);
        cnt++;
    }
    closedir(d);
    if (s) { lt_free(v); return s; }
    if (cnt == 0) {
        lt_free(v);
        return lt_error(LT_ERR_IO, "%s: no metrics.json (not a finished run directory)", run_dir);
    }
    qsort(v, (size_t)cnt, sizeof *v, cmp_seed_run);
    *out = v;
    *n = cnt;
    return LT_OK;
}

lt_status lt_train_outcome_read(const char *run_dir, lt_train_outcome *o) {
    memset(o, 0, sizeof *o);
    seed_run *runs;
    int n;
    lt_status s = list_runs(run_dir, &runs, &n);
    if (s) return s;
    o->n_seeds = n;
    o->finished = 1;
    o->seeds = lt_calloc((size_t)n, sizeof *o->seeds);
    if (!o->seeds) s = lt_error(LT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !s; i++) {
        lt_json *j;
        s = lt_json_load(runs[i].path, 0, &j);
        if (s) break;
        const lt_json *stages = lt_json_get(j, "stages"), *fin = lt_json_get(j, "finished");
        o->seeds[i] = (uint64_t)num_or_nan(j, "seed");
        if (!fin || fin->type != LT_JSON_BOOL || !fin->boolean) o->finished = 0;
        if (!stages || stages->type != LT_JSON_ARRAY) {
            s = lt_error(LT_ERR_FORMAT, "%s: no \"stages\" array", runs[i].path);
        } else if (i == 0) {
            o->n_stages = (int)stages->n;
            o->results = lt_calloc((size_t)(n * (o->n_stages > 0 ? o->n_stages : 1)), sizeof *o->results);
            if (!o->results) s = lt_error(LT_ERR_NOMEM, "out of memory");
        }
        for (int k = 0; !s && k < o->n_stages; k++) {
            lt_stage_result *res = &o->results[i * o->n_stages + k];
            const lt_json *st = lt_json_at(stages, k);
            if (!st) {
                res->top1 = res->top5 = res->many = res->medium = res->few = res->balanced_acc = res->val_top1 = NAN;
                o->finished = 0;
                continue;
            }
            res->top1 = num_or_nan(st, "top1");
            res->top5 = num_or_nan(st, "top5");
            res->many = num_or_nan(st, "many");
            res->medium = num_or_nan(st, "medium");
            res->few = num_or_nan(st, "few");
            res->balanced_acc = num_or_nan(st, "balanced_acc");
            res->val_top1 = num_or_nan(st, "best_val_top1");
            res->selected_epoch = (int64_t)num_or_nan(st, "selected_epoch");
            const lt_json *g = lt_json_get(st, "groups");
            if (i == 0 && k == 0 && g) {
                snprintf(o->group_mode, sizeof o->group_mode, "%s", lt_json_string(lt_json_get(g, "mode"), "?"));
                const lt_json *sz = lt_json_get(g, "sizes");
                for (int q = 0; q < 3; q++) o->group_size[q] = (int64_t)lt_json_number(lt_json_at(sz, q), 0);
            }
        }
        lt_json_free(j);
    }
    lt_free(runs);
    if (s) lt_train_outcome_free(o);
    return s;
}

/* summary.json: mean and std over seeds of every number of every stage entry. */
static lt_status write_summary(const lt_recipe *r, const char *out_dir) {
    seed_run *runs;
    int n;
    lt_status s = list_runs(out_dir, &runs, &n);
    if (s) return s;
    lt_json **trees = lt_calloc((size_t)n, sizeof *trees);
    const lt_json **stages = lt_calloc((size_t)n, sizeof *stages);
    if (!trees || !stages) s = lt_error(LT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !s; i++) {
        s = lt_json_load(runs[i].path, 0, &trees[i]);
        if (!s) {
            stages[i] = lt_json_get(trees[i], "stages");
            if (!stages[i]) s = lt_error(LT_ERR_FORMAT, "%s: no \"stages\" array", runs[i].path);
        }
    }
    lt_jw w;
    lt_jw_init(&w, 2);
    if (!s) {
        lt_jw_begin_object(&w);
        lt_jw_key(&w, "format"); lt_jw_string(&w, "longtail-summary-1");
        lt_jw_key(&w, "recipe"); lt_jw_string(&w, r->name);
        lt_jw_key(&w, "std"); lt_jw_string(&w, "sample standard deviation over seeds (n - 1)");
        lt_jw_key(&w, "seeds");
        lt_jw_begin_array(&w);
        for (int i = 0; i < n; i++) lt_jw_int(&w, runs[i].seed);
        lt_jw_end_array(&w);
        lt_jw_key(&w, "runs");
        lt_jw_begin_array(&w);
        for (int i = 0; i < n; i++) {
            char name[40];
            snprintf(name, sizeof name, "seed%lld", runs[i].seed);
            lt_jw_string(&w, name);
        }
        lt_jw_end_array(&w);
        lt_jw_key(&w, "train_counts");
        lt_mt_json_write(&w, lt_json_get(trees[0], "train_counts") ? lt_json_get(trees[0], "train_counts") : stages[0]);
        lt_jw_key(&w, "stages");
        lt_mt_json_summarize(&w, stages, n);
        lt_jw_end_object(&w);
        const char *text;
        int64_t len;
        s = lt_jw_finish(&w, &text, &len);
        if (!s) {
            char path[4096];
            snprintf(path, sizeof path, "%s/summary.json", out_dir);
            char *buf = lt_malloc((size_t)len + 1);
            if (!buf) s = lt_error(LT_ERR_NOMEM, "out of memory");
            else {
                memcpy(buf, text, (size_t)len);
                buf[len] = '\n';
                s = lt_file_write_atomic(path, buf, len + 1);
                lt_free(buf);
            }
        }
    }
    lt_jw_free(&w);
    for (int i = 0; trees && i < n; i++) lt_json_free(trees[i]);
    lt_free(trees);
    lt_free(stages);
    lt_free(runs);
    return s;
}

/* ---------------------------------------------------------------- lt_train */

lt_status lt_train(const lt_recipe *r, const lt_train_data *data, const lt_train_options *opt,
                   lt_train_outcome *outcome) {
    if (outcome) memset(outcome, 0, sizeof *outcome);
    if (!r || !opt || !opt->out_dir || !*opt->out_dir) return lt_error(LT_ERR_ARG, "train: no run directory given");
    const char *out = opt->out_dir;
    if (opt->resume && opt->force) return lt_error(LT_ERR_ARG, "train: resume and force exclude each other");
    if (strlen(out) > 3000) return lt_error(LT_ERR_ARG, "train: run directory path too long");
    lt_set_threads(r->threads);

    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.ini", out);
    char *text = NULL;
    lt_status s = lt_recipe_to_string(r, &text);
    if (s) return s;
    if (opt->resume) {
        lt_recipe saved;
        if (!lt_path_exists(cfg_path))
            s = lt_error(LT_ERR_ARG, "%s: no config.ini there: not a run directory to resume", out);
        else s = lt_recipe_load(&saved, cfg_path, NULL, 0);
        if (!s) {
            const char *la = NULL, *lb = NULL;
            if (!lt_recipe_same(&saved, r, &la, &lb))
                s = lt_error(LT_ERR_CONFIG,
                             "%s differs from the recipe given ('%s' there, '%s' given): a run resumes with the "
                             "recipe it started with (give no recipe and no --set with --resume)",
                             cfg_path, la, lb);
            lt_recipe_free(&saved);
        }
    } else {
        struct stat sb;
        if (stat(out, &sb) == 0 && !S_ISDIR(sb.st_mode))
            s = lt_error(LT_ERR_EXISTS, "%s exists and is not a directory", out);
        else if (dir_has_entries(out)) {
            if (!opt->force)
                s = lt_error(LT_ERR_EXISTS,
                             "run directory %s exists and is not empty (use --force to replace its run, or --resume to "
                             "continue it)",
                             out);
            else s = clean_run_dir(out, 0);
        }
        if (!s) s = lt_mkdir_p(out);
        if (!s) s = write_text(cfg_path, text);
    }
    lt_free(text);
    if (s) return s;

    lt_data owned;
    memset(&owned, 0, sizeof owned);
    lt_train_data td;
    if (!data) {
        s = lt_recipe_load_data(r, &owned);
        if (s) return s;
        td = (lt_train_data){&owned.train, &owned.val, &owned.test};
        data = &td;
    }

    lt_train_call call;
    memset(&call, 0, sizeof call);
    call.recipe = r;
    call.opt = opt;
    call.t0 = lt_mt_now();
    call.n_seeds = r->seeds;
    for (int k = 0; k < r->n_stages; k++)
        call.units_per_seed += r->stages[k].epochs * lt_mt_stage_batches(&r->stages[k], data->train->n);
    call.units_left = call.units_per_seed * r->seeds;

    for (int i = 0; i < r->seeds && !s && !call.stopped; i++) {
        uint64_t seed = r->seed + (uint64_t)i;
        char dir[4096];
        if (r->seeds == 1) snprintf(dir, sizeof dir, "%s", out);
        else {
            snprintf(dir, sizeof dir, "%s/seed%llu", out, (unsigned long long)seed);
            char path[4200];
            snprintf(path, sizeof path, "%s/config.ini", dir);
            s = lt_mkdir_p(dir);
            if (!s && !(opt->resume && lt_path_exists(path))) {
                char *seed_text = NULL;
                s = seed_config_text(r, seed, &seed_text);
                if (!s) s = write_text(path, seed_text);
                lt_free(seed_text);
            }
        }
        if (!s) s = lt_mt_run_seed(&call, data, seed, i, dir);
    }
    if (!s && !call.stopped && r->seeds > 1) s = write_summary(r, out);
    if (!s && outcome) {
        if (call.stopped) outcome->finished = 0;
        else s = lt_train_outcome_read(out, outcome);
    }
    lt_data_free(&owned);
    return s;
}
