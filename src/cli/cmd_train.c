/* `longtail train`: runs a recipe (configs/default.ini without one) into a run directory
 * and prints a final table of test top-1 and Many / Medium / Few per stage. */
#include "cli.h"
#include "longtail/train.h"
#include "progress.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RECIPE "configs/default.ini"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: longtail train [RECIPE] [--set section.key=value ...] [--out DIR] [--seeds N]\n"
            "                      [--seed S] [--threads N] [--resume] [--force] [--quiet]\n"
            "\n"
            "Trains the stages of RECIPE (default: %s, Fashion-MNIST-LT) and writes a run\n"
            "directory: config.ini, log.jsonl, metrics.json, stageK.safetensors, last.safetensors\n"
            "(and summary.json with several seeds). See docs/recipes.md.\n"
            "\n"
            "  --set K=V       override a recipe key, e.g. --set stage1.epochs=2 (repeatable)\n"
            "  --out DIR       run directory (default runs/<recipe>-<date>-<time>)\n"
            "  --seeds N       train N seeds (seed, seed+1, ...) into DIR/seed<s>/ and write\n"
            "                  DIR/summary.json with mean and std (same as --set run.seeds=N)\n"
            "  --seed S        first training seed (run.seed, default 0)\n"
            "  --threads N     OpenMP threads (run.threads, default: all cores); results are\n"
            "                  bit-identical for the same seed and thread count\n"
            "  --resume        continue the run in --out DIR from its last finished epoch\n"
            "  --force         replace the run in an existing --out DIR\n"
            "  --quiet         print only stage results and the final table\n",
            DEFAULT_RECIPE);
}

/* ---- Ctrl-C: files are always whole (atomic writes); say how to continue ---- */

static char interrupt_msg[4200];
static size_t interrupt_len;

static void on_interrupt(int sig) {
    (void)sig;
    if (write(STDERR_FILENO, interrupt_msg, interrupt_len) < 0) { /* nothing to do */ }
    _exit(130);
}

static void install_interrupt(const char *out) {
    int n = snprintf(interrupt_msg, sizeof interrupt_msg,
                     "\nlongtail: interrupted; the run continues with: longtail train --resume --out %s\n", out);
    interrupt_len = n > 0 && (size_t)n < sizeof interrupt_msg ? (size_t)n : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* configs/default.ini from the working directory, else beside the executable's folder
 * (build/longtail -> ../configs/default.ini). */
static const char *find_default_recipe(char *buf, size_t n) {
    if (access(DEFAULT_RECIPE, R_OK) == 0) return DEFAULT_RECIPE;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *dir = dirname(exe);
        snprintf(buf, n, "%s/../%s", dir, DEFAULT_RECIPE);
        if (access(buf, R_OK) == 0) return buf;
    }
    return DEFAULT_RECIPE;
}

static int parse_count(const char *opt, const char *v, long lo, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo) {
        lt_cli_error("train: %s expects an integer >= %ld, got '%s'", opt, lo, v);
        return 0;
    }
    *out = x;
    return 1;
}

static int exit_code(lt_status s) {
    return s == LT_ERR_CONFIG || s == LT_ERR_EXISTS ? LT_EXIT_USAGE : LT_EXIT_RUNTIME;
}

static void cell(char *buf, size_t n, const lt_train_outcome *o, int k, int field) {
    double v[1024];
    int m = 0;
    for (int i = 0; i < o->n_seeds && m < 1024; i++) {
        const lt_stage_result *r = &o->results[i * o->n_stages + k];
        double x = field == 0 ? r->top1 : field == 1 ? r->many : field == 2 ? r->medium : r->few;
        if (isfinite(x)) v[m++] = 100.0 * x;
    }
    if (m == 0) { snprintf(buf, n, "-"); return; }
    double mu = 0, q = 0;
    for (int i = 0; i < m; i++) mu += v[i];
    mu /= m;
    for (int i = 0; i < m; i++) q += (v[i] - mu) * (v[i] - mu);
    if (o->n_seeds > 1) snprintf(buf, n, "%.2f ± %.2f", mu, m > 1 ? sqrt(q / (m - 1)) : 0.0);
    else snprintf(buf, n, "%.2f", mu);
}

static void print_table(const lt_train_outcome *o, const char *out) {
    printf("\nTest accuracy (%%) of each stage's selected model");
    if (o->n_seeds > 1) printf(", mean ± std over %d seeds", o->n_seeds);
    printf(" — run %s\n", out);
    int w = o->n_seeds > 1 ? 15 : 8;
    printf("%-8s  %*s  %*s  %*s  %*s\n", "stage", w, "top-1", w, "Many", w, "Medium", w, "Few");
    for (int k = 0; k < o->n_stages; k++) {
        char c[4][48], name[24];
        for (int f = 0; f < 4; f++) cell(c[f], sizeof c[f], o, k, f);
        snprintf(name, sizeof name, "stage%d", k + 1);
        printf("%-8s  %*s  %*s  %*s  %*s\n", name, w, c[0], w, c[1], w, c[2], w, c[3]);
    }
    if (!strcmp(o->group_mode, "rank"))
        printf("Many / Medium / Few: classes ranked by training images, split in thirds (%lld / %lld / %lld classes).\n",
               (long long)o->group_size[0], (long long)o->group_size[1], (long long)o->group_size[2]);
    else
        printf("Many / Medium / Few: > 100, 20-100, < 20 training images (%lld / %lld / %lld classes).\n",
               (long long)o->group_size[0], (long long)o->group_size[1], (long long)o->group_size[2]);
    printf("Details: %s/metrics.json%s\n", out, o->n_seeds > 1 ? " (per seed), summary.json" : "");
}

int lt_cmd_train(int argc, char **argv) {
    const char *recipe_path = NULL, *out = NULL;
    int resume = 0, force = 0, quiet = 0;
    long stop_after = 0;
    const char **sets = calloc((size_t)argc + 4, sizeof *sets);
    char **owned = calloc((size_t)argc + 1, sizeof *owned);
    int n_sets = 0, n_owned = 0, rc = 0;
    if (!sets || !owned) {
        free(sets);
        free(owned);
        lt_cli_error("train: out of memory");
        return LT_EXIT_RUNTIME;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            goto done;
        }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        if (a[0] != '-') {
            if (recipe_path) {
                lt_cli_error("train: more than one recipe ('%s' and '%s')", recipe_path, a);
                rc = LT_EXIT_USAGE;
                goto done;
            }
            recipe_path = a;
            continue;
        }
        if (i + 1 >= argc) {
            lt_cli_error("train: %s needs a value (see `longtail train --help`)", a);
            rc = LT_EXIT_USAGE;
            goto done;
        }
        const char *v = argv[++i];
        long x;
        if (!strcmp(a, "--set")) sets[n_sets++] = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--seeds") || !strcmp(a, "--seed") || !strcmp(a, "--threads")) {
            if (!parse_count(a, v, !strcmp(a, "--seeds") ? 1 : 0, &x)) { rc = LT_EXIT_USAGE; goto done; }
            char *s = malloc(64);
            if (!s) { lt_cli_error("train: out of memory"); rc = LT_EXIT_RUNTIME; goto done; }
            snprintf(s, 64, "run.%s=%ld", a + 2, x);
            owned[n_owned++] = s;
            sets[n_sets++] = s;
        } else if (!strcmp(a, "--stop-after-epochs")) {
            /* Testing aid: stop after N epochs as if killed, leaving a resumable run. */
            if (!parse_count(a, v, 1, &stop_after)) { rc = LT_EXIT_USAGE; goto done; }
        } else {
            lt_cli_error("train: unknown option '%s' (see `longtail train --help`)", a);
            rc = LT_EXIT_USAGE;
            goto done;
        }
    }
    if (resume && force) {
        lt_cli_error("train: --resume continues a run and --force replaces it: give one");
        rc = LT_EXIT_USAGE;
        goto done;
    }
    if (resume && !out) {
        lt_cli_error("train: --resume needs --out DIR (the run directory to continue)");
        rc = LT_EXIT_USAGE;
        goto done;
    }

    char def_buf[4200], cfg_buf[4200], out_buf[4200];
    lt_recipe r;
    lt_status s;
    if (resume && !recipe_path) {
        /* Continue with the recipe the run started with (overrides must not change it:
         * the library compares the result with config.ini). */
        snprintf(cfg_buf, sizeof cfg_buf, "%s/config.ini", out);
        s = lt_recipe_load(&r, cfg_buf, sets, n_sets);
    } else {
        if (!recipe_path) recipe_path = find_default_recipe(def_buf, sizeof def_buf);
        s = lt_recipe_load(&r, recipe_path, sets, n_sets);
    }
    if (s) {
        lt_cli_error("%s", lt_last_error());
        rc = exit_code(s);
        goto done;
    }
    if (!out) {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        snprintf(out_buf, sizeof out_buf, "runs/%s-%s", r.name, stamp);
        for (int k = 2; access(out_buf, F_OK) == 0 && k < 100; k++)
            snprintf(out_buf, sizeof out_buf, "runs/%s-%s-%d", r.name, stamp, k);
        out = out_buf;
    }
    install_interrupt(out);
    if (!quiet) {
        printf("longtail train: recipe %s, %d stage%s, %d seed%s, %d threads -> %s\n", lt_config_name(r.cfg), r.n_stages,
               r.n_stages == 1 ? "" : "s", r.seeds, r.seeds == 1 ? "" : "s", r.threads, out);
        fflush(stdout);
    }

    lt_progress prog;
    lt_progress_init(&prog, stdout, quiet);
    lt_train_options opt;
    memset(&opt, 0, sizeof opt);
    opt.out_dir = out;
    opt.resume = resume;
    opt.force = force;
    opt.stop_after_epochs = stop_after;
    opt.progress = lt_progress_event;
    opt.progress_user = &prog;
    lt_train_outcome outcome;
    s = lt_train(&r, NULL, &opt, &outcome);
    lt_progress_finish(&prog);
    if (s) {
        lt_cli_error("%s", lt_last_error());
        rc = exit_code(s);
    } else if (!outcome.finished) {
        printf("stopped after %ld epoch%s; continue with: longtail train --resume --out %s\n", stop_after,
               stop_after == 1 ? "" : "s", out);
    } else {
        print_table(&outcome, out);
    }
    lt_train_outcome_free(&outcome);
    lt_recipe_free(&r);
done:
    for (int k = 0; k < n_owned; k++) free(owned[k]);
    free(owned);
    free(sets);
    return rc;
}
