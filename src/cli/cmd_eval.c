/* `longtail eval CHECKPOINT`: re-evaluates a checkpoint on the recipe's test (and
 * validation) set and prints the metrics `longtail train` reports: top-1, top-5,
 * Many / Medium / Few, per-class accuracy and weight norms, ECE, the confusion matrix. */
#include "cli.h"
#include "longtail/train.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: longtail eval CHECKPOINT [--recipe R] [--set section.key=value ...] [--split test|val|both]\n"
            "                     [--no-posthoc | --posthoc K] [--posthoc-tau T|sweep] [--posthoc-bias keep|drop]\n"
            "                     [--json]\n"
            "\n"
            "Loads a model checkpoint (stageK.safetensors, last.safetensors, or a PyTorch state_dict saved\n"
            "with safetensors) and scores it as `longtail train` does. The recipe (data, model,\n"
            "evaluation) is, in order: --recipe R; config.ini beside the checkpoint (a run directory);\n"
            "the recipe stored in the checkpoint's metadata.\n"
            "\n"
            "  --recipe R      recipe file\n"
            "  --set K=V       override a recipe key (repeatable), e.g. --set eval.groups=count\n"
            "  --split S       test (default), val or both\n"
            "  --no-posthoc    score the raw weights, without the post-hoc transform (tau-norm, logit\n"
            "                  adjustment) the checkpoint's stage chose; by default it is applied again\n"
            "  --posthoc K     apply transform K instead: none, l2norm, taunorm, la_add or la_mul (the\n"
            "                  recipe's posthoc values); tau is swept unless --posthoc-tau gives it\n"
            "  --posthoc-tau T tau of the transform (K's, or the checkpoint's when --posthoc is not\n"
            "                  given): a number >= 0, or sweep (0, 0.1, ..., 2; the best validation top-1)\n"
            "  --posthoc-bias B  with --posthoc l2norm / taunorm: keep (default, or the checkpoint's\n"
            "                  choice) or drop the classifier bias\n"
            "  --json          print one JSON object (the metrics.json fields) instead of tables\n");
}

static void pct(char *buf, size_t n, double x) {
    if (isfinite(x)) snprintf(buf, n, "%.2f%%", 100.0 * x);
    else snprintf(buf, n, "-");
}

static void print_result(const char *split, const lt_eval_result *r, const lt_dataset *train) {
    char a[32], b[32], c[32], d[32];
    printf("\n%s: %lld images\n", split, (long long)r->num_samples);
    pct(a, sizeof a, r->top1);
    pct(b, sizeof b, r->topk);
    pct(c, sizeof c, r->balanced_acc);
    printf("  top-1 %s   top-%lld %s   balanced %s   ECE %.4f   NLL %.4f\n", a, (long long)r->topk_k, b, c, r->ece, r->nll);
    pct(a, sizeof a, r->group_acc[0]);
    pct(b, sizeof b, r->group_acc[1]);
    pct(c, sizeof c, r->group_acc[2]);
    if (r->groups.mode == LT_GROUP_BY_RANK)
        snprintf(d, sizeof d, "rank thirds");
    else
        snprintf(d, sizeof d, "> %lld / < %lld images", (long long)r->groups.many_above, (long long)r->groups.few_below);
    printf("  Many %s   Medium %s   Few %s   (groups: %s; %lld / %lld / %lld classes)\n", a, b, c, d,
           (long long)r->group_size[0], (long long)r->group_size[1], (long long)r->group_size[2]);
    int w = 5;
    for (int64_t k = 0; k < r->num_classes && train->class_names; k++) {
        int l = (int)strlen(train->class_names[k]);
        if (l > w) w = l;
    }
    if (w > 24) w = 24;
    printf("\n  %5s  %-*s %8s %7s %8s %8s  %s\n", "class", w, "name", "train", "images", "acc", "|w_c|", "group");
    for (int64_t k = 0; k < r->num_classes; k++) {
        pct(a, sizeof a, r->per_class_acc[k]);
        printf("  %5lld  %-*.*s %8lld %7lld %8s %8.4f  %s\n", (long long)k, w, w,
               train->class_names ? train->class_names[k] : "", (long long)r->class_counts[k],
               (long long)r->class_samples[k], a, r->weight_norms ? r->weight_norms[k] : NAN,
               lt_group_name(r->class_group[k]));
    }
    if (r->num_classes <= 20) {
        printf("\n  confusion (rows: true class, columns: predicted)\n       ");
        for (int64_t j = 0; j < r->num_classes; j++) printf(" %5lld", (long long)j);
        printf("\n");
        for (int64_t i = 0; i < r->num_classes; i++) {
            printf("  %5lld", (long long)i);
            for (int64_t j = 0; j < r->num_classes; j++) printf(" %5lld", (long long)r->confusion[i * r->num_classes + j]);
            printf("\n");
        }
    }
}

int lt_cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *recipe_path = NULL, *split = "test";
    const char *ph_opt = NULL, *tau_opt = NULL, *bias_opt = NULL;
    int json = 0, posthoc = 1, rc = 0;
    int ph_k = -1;          /* --posthoc, an lt_stage_posthoc */
    double tau_v = NAN;     /* --posthoc-tau; NaN = sweep */
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0;
    if (!sets) { lt_cli_error("eval: out of memory"); return LT_EXIT_RUNTIME; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { eval_usage(stdout); free(sets); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--no-posthoc")) { posthoc = 0; continue; }
        if (a[0] != '-') {
            if (ckpt) {
                lt_cli_error("eval: more than one checkpoint ('%s' and '%s')", ckpt, a);
                free(sets);
                return LT_EXIT_USAGE;
            }
            ckpt = a;
            continue;
        }
        if (i + 1 >= argc) {
            lt_cli_error("eval: %s needs a value", a);
            free(sets);
            return LT_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--recipe")) recipe_path = v;
        else if (!strcmp(a, "--set")) sets[n_sets++] = v;
        else if (!strcmp(a, "--posthoc")) {
            ph_opt = v;
            for (int k = 0; k < LT_STAGE_POSTHOC_KINDS; k++)
                if (!strcmp(v, lt_stage_posthoc_names[k])) ph_k = k;
            if (ph_k < 0) {
                lt_cli_error("eval: --posthoc expects none, l2norm, taunorm, la_add or la_mul, got '%s'", v);
                free(sets);
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--posthoc-tau")) {
            tau_opt = v;
            if (strcmp(v, "sweep") && (!lt_parse_double(v, &tau_v) || !(tau_v >= 0))) {
                lt_cli_error("eval: --posthoc-tau expects sweep or a number >= 0, got '%s'", v);
                free(sets);
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--posthoc-bias")) {
            bias_opt = v;
            if (strcmp(v, "keep") && strcmp(v, "drop")) {
                lt_cli_error("eval: --posthoc-bias expects keep or drop, got '%s'", v);
                free(sets);
                return LT_EXIT_USAGE;
            }
        }
        else if (!strcmp(a, "--split")) {
            if (strcmp(v, "test") && strcmp(v, "val") && strcmp(v, "both")) {
                lt_cli_error("eval: --split expects test, val or both, got '%s'", v);
                free(sets);
                return LT_EXIT_USAGE;
            }
            split = v;
        } else {
            lt_cli_error("eval: unknown option '%s' (see `longtail eval --help`)", a);
            free(sets);
            return LT_EXIT_USAGE;
        }
    }
    if (!ckpt) {
        lt_cli_error("eval: no checkpoint given (see `longtail eval --help`)");
        free(sets);
        return LT_EXIT_USAGE;
    }
    const char *conflict = NULL;
    if (!posthoc && (ph_opt || tau_opt || bias_opt))
        conflict = "--no-posthoc takes no --posthoc, --posthoc-tau or --posthoc-bias";
    else if (ph_k == LT_STAGE_POSTHOC_NONE && (tau_opt || bias_opt))
        conflict = "--posthoc none takes no --posthoc-tau or --posthoc-bias";
    else if (ph_k == LT_STAGE_POSTHOC_L2NORM && tau_opt)
        conflict = "--posthoc l2norm is tau-norm at tau = 1; it takes no --posthoc-tau";
    else if ((ph_k == LT_STAGE_POSTHOC_LA_ADD || ph_k == LT_STAGE_POSTHOC_LA_MUL) && bias_opt)
        conflict = "--posthoc-bias is for --posthoc l2norm or taunorm";
    if (conflict) {
        lt_cli_error("eval: %s", conflict);
        free(sets);
        return LT_EXIT_USAGE;
    }

    lt_safetensors *st = NULL;
    lt_recipe r;
    memset(&r, 0, sizeof r);
    lt_data d;
    memset(&d, 0, sizeof d);
    lt_model m;
    memset(&m, 0, sizeof m);
    lt_ctx *ctx = NULL;
    lt_eval_result res[2];
    lt_eval_result_init(&res[0]);
    lt_eval_result_init(&res[1]);
    char from[4200];
    lt_status s = lt_safetensors_load(ckpt, &st);
    if (!s) {
        char dirbuf[4096], cfg[4200];
        snprintf(dirbuf, sizeof dirbuf, "%s", ckpt);
        snprintf(cfg, sizeof cfg, "%s/config.ini", dirname(dirbuf));
        const char *meta = lt_safetensors_metadata(st, "recipe");
        if (recipe_path) {
            snprintf(from, sizeof from, "%s", recipe_path);
            s = lt_recipe_load(&r, recipe_path, sets, n_sets);
        } else if (lt_path_exists(cfg)) {
            snprintf(from, sizeof from, "%s", cfg);
            s = lt_recipe_load(&r, cfg, sets, n_sets);
        } else if (meta) {
            snprintf(from, sizeof from, "%s (metadata)", ckpt);
            s = lt_recipe_parse(&r, meta, from, sets, n_sets);
        } else {
            s = lt_error(LT_ERR_CONFIG, "%s: no recipe: give --recipe R (the checkpoint has no config.ini beside it and "
                         "no recipe in its metadata)", ckpt);
        }
    }
    if (!s) lt_set_threads(r.threads);
    if (!s) s = lt_recipe_load_data(&r, &d);
    lt_augment_config norm;
    if (!s) s = lt_recipe_augment(&r, &d.train, &norm);
    if (!s) {
        /* a trained role's checkpoint (metadata `role`) is described by its [model.NAME] */
        lt_model_config mc;
        s = lt_recipe_role_model_config(&r, lt_safetensors_metadata(st, "role"), d.train.h, d.train.w, d.train.c,
                                        d.train.n_classes, &mc);
        if (!s && lt_safetensors_metadata(st, "architecture")) {
            /* the checkpoint says what it is; the recipe must describe the same network */
            s = lt_model_load_from(&m, st, ckpt);
            char a[48], b[48];
            if (!s && (strcmp(lt_arch_name(&mc, a, sizeof a), lt_arch_name(&m.cfg, b, sizeof b)) ||
                       mc.num_classes != m.cfg.num_classes || mc.in_channels != m.cfg.in_channels ||
                       mc.head != m.cfg.head || (mc.heads > 1 ? mc.heads : 1) != m.n_heads || mc.width != m.cfg.width))
                s = lt_error(LT_ERR_CONFIG, "eval: %s holds %s (%s head x%d, width %g, %d classes, %d channels) and the "
                             "recipe %s describes %s (%s head x%d, width %g, %d classes, %d channels)", ckpt, b,
                             lt_head_kind_name(m.cfg.head), m.n_heads, (double)m.cfg.width, m.cfg.num_classes,
                             m.cfg.in_channels, from, a, lt_head_kind_name(mc.head), mc.heads > 1 ? mc.heads : 1,
                             (double)mc.width, mc.num_classes, mc.in_channels);
        } else if (!s) {
            s = lt_model_init(&m, &mc, 0);
            if (!s) s = lt_ckpt_read_params(st, &m.params, "", LT_CKPT_ALL, 1, NULL, NULL, NULL);
        }
    }
    if (!s) {
        ctx = lt_ctx_new();
        if (!ctx) s = lt_error(LT_ERR_NOMEM, "eval: cannot create a context");
    }
    int do_test = strcmp(split, "val") != 0, do_val = strcmp(split, "test") != 0;
    int64_t *counts = NULL;
    if (!s) {
        counts = calloc((size_t)d.train.n_classes, sizeof *counts);
        if (!counts) s = lt_error(LT_ERR_NOMEM, "eval: out of memory");
        else lt_dataset_class_counts(&d.train, counts);
    }
    if (!s && do_test && d.test.n == 0) s = lt_error(LT_ERR_ARG, "eval: the recipe's dataset has no test set (try --split val)");
    if (!s && do_val && d.val.n == 0) s = lt_error(LT_ERR_ARG, "eval: the recipe has no validation set (data.val_per_class = 0)");
    /* the stage's post-hoc transform, as its final evaluation in `longtail train` used it */
    lt_posthoc ph = LT_POSTHOC_NONE;
    double ph_tau = NAN;
    const char *ph_src = "checkpoint";
    if (!s && posthoc && !ph_opt && !tau_opt && !bias_opt) {
        s = lt_checkpoint_posthoc_apply(&m, st, ckpt, counts, &ph, &ph_tau);
    } else if (!s && posthoc) {
        /* an override of the recorded transform: its kind, tau or bias replaced */
        lt_stage_posthoc kind;
        double tau;
        int drop;
        s = lt_checkpoint_posthoc_read(st, ckpt, &kind, &tau, &drop);
        if (!s && ph_k >= 0) kind = (lt_stage_posthoc)ph_k;
        else if (!s && kind == LT_STAGE_POSTHOC_NONE)
            s = lt_error(LT_ERR_CONFIG, "eval: %s records no post-hoc transform; give --posthoc K with --posthoc-tau / "
                         "--posthoc-bias", ckpt);
        if (!s && bias_opt && kind != LT_STAGE_POSTHOC_TAUNORM && kind != LT_STAGE_POSTHOC_L2NORM)
            s = lt_error(LT_ERR_CONFIG, "eval: --posthoc-bias is for tau-norm, and %s records %s", ckpt,
                         lt_stage_posthoc_names[kind]);
        if (bias_opt) drop = !strcmp(bias_opt, "drop");
        if (tau_opt) tau = tau_v;            /* NaN: sweep */
        else if (ph_k >= 0) tau = NAN;       /* a new kind: its tau is swept */
        int sweep = isnan(tau) && kind != LT_STAGE_POSTHOC_L2NORM && kind != LT_STAGE_POSTHOC_NONE;
        if (!s && sweep && d.val.n == 0)
            s = lt_error(LT_ERR_CONFIG, "eval: a swept tau is chosen on the validation set and the recipe has none "
                         "(data.val_per_class = 0); give --posthoc-tau T");
        if (!s)
            s = lt_posthoc_choose(ctx, &m, "eval", kind, drop, tau, &d.val, &norm, r.eval_batch_size, r.topk, counts,
                                  &r.groups, &ph, &ph_tau);
        ph_src = sweep ? "given, tau swept on validation" : "given";
    }
    if (!s && do_test)
        s = lt_evaluate(ctx, &m, &d.test, &norm, r.eval_batch_size, r.topk, counts, &r.groups, &res[0]);
    if (!s && do_val) s = lt_evaluate(ctx, &m, &d.val, &norm, r.eval_batch_size, r.topk, counts, &r.groups, &res[1]);
    for (int k = 0; k < 2; k++) {
        res[k].posthoc = ph;
        res[k].posthoc_tau = ph_tau;
    }
    if (s) {
        lt_cli_error("%s", lt_last_error());
        rc = s == LT_ERR_CONFIG ? LT_EXIT_USAGE : LT_EXIT_RUNTIME;
    } else if (json) {
        lt_jw w;
        lt_jw_init(&w, 2);
        lt_jw_begin_object(&w);
        lt_jw_key(&w, "checkpoint"); lt_jw_string(&w, ckpt);
        lt_jw_key(&w, "recipe"); lt_jw_string(&w, from);
        lt_jw_key(&w, "posthoc_source");
        lt_jw_string(&w, !posthoc ? "disabled" : ph_src);
        for (int k = 0; k < 2; k++) {
            if (!(k == 0 ? do_test : do_val)) continue;
            lt_jw_key(&w, k == 0 ? "test" : "val");
            lt_jw_begin_object(&w);
            lt_eval_result_write_json(&res[k], &w);
            lt_jw_end_object(&w);
        }
        lt_jw_end_object(&w);
        const char *text;
        if (lt_jw_finish(&w, &text, NULL) == LT_OK) printf("%s\n", text);
        else { lt_cli_error("eval: JSON: %s", w.why ? w.why : "error"); rc = LT_EXIT_RUNTIME; }
        lt_jw_free(&w);
    } else {
        char an[48];
        printf("checkpoint  %s (%s, width %g, %d classes, %lld parameters)\n", ckpt, lt_arch_name(&m.cfg, an, sizeof an), (double)m.cfg.width,
               m.cfg.num_classes, (long long)lt_model_num_params(&m));
        printf("recipe      %s\n", from);
        if (ph != LT_POSTHOC_NONE)
            printf("post-hoc    %s, tau %g (%s%s)\n", lt_posthoc_name(ph), ph_tau, ph_src,
                   strcmp(ph_src, "checkpoint") ? "" : "; --no-posthoc for the raw weights");
        if (do_test) print_result("test", &res[0], &d.train);
        if (do_val) print_result("validation", &res[1], &d.train);
    }
    free(counts);
    lt_eval_result_free(&res[0]);
    lt_eval_result_free(&res[1]);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    lt_data_free(&d);
    lt_recipe_free(&r);
    lt_safetensors_free(st);
    free(sets);
    return rc;
}
