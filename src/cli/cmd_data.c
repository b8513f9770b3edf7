/* `longtail data`: builds a dataset's long-tailed version and prints its per-class train /
 * validation / test counts, the realized imbalance factor and the Many / Medium / Few
 * groups, as a table or (--json) as one JSON object. */
#include "cli.h"
#include "longtail/data.h"
#include "longtail/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void data_usage(FILE *f) {
    fprintf(f,
            "usage: longtail data [options]\n"
            "\n"
            "Builds the long-tailed training set, the balanced validation split and the test set\n"
            "of a dataset and prints per-class counts, the realized imbalance factor and the\n"
            "Many / Medium / Few groups.\n"
            "\n"
            "  --dataset NAME        fmnist (default), mnist, cifar10, cifar100, folder, list\n"
            "  --root DIR            data folder (fmnist default: %s)\n"
            "  --train-list F        list: training list file (`path label` per line, paths under --root)\n"
            "  --test-list F         list: test list file\n"
            "  --image-size N        folder/list: images are resized to N x N (default 32)\n"
            "  --channels 1|3        folder/list: gray or RGB (default 3)\n"
            "  --profile P           exp, step or none (default exp; none for folder and list)\n"
            "  --imbalance IF        imbalance factor n_max / n_min (default 100)\n"
            "  --n-max N             head class size (default: largest class after the validation split)\n"
            "  --val-per-class N     balanced validation images per class (default 20; 0 = none)\n"
            "  --selection S         shuffle (seeded, default) or first (file order)\n"
            "  --class-order O       label (class 0 is the head, default) or counts (source's largest first)\n"
            "  --seed S              seed of the per-class shuffle (default 0)\n"
            "  --groups G            auto (default), count (the thresholds below; also 'threshold') or rank\n"
            "  --many-above N        many: more than N training images (default 100)\n"
            "  --few-below N         few: fewer than N training images (default 20)\n"
            "  --json                print one JSON object instead of a table\n"
            "  --indices             with --json: also train_index and val_index, the images' positions\n"
            "                        in the source training set (file order), in the split's order\n",
            LT_FMNIST_DEFAULT_ROOT);
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo) {
        lt_cli_error("data: %s expects an integer >= %lld, got '%s'", opt, (long long)lo, s);
        return 0;
    }
    *out = v;
    return 1;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_counts(const char *key, const int64_t *v, int32_t n) {
    printf("  \"%s\": [", key);
    for (int32_t k = 0; k < n; k++) printf("%s%lld", k ? ", " : "", (long long)v[k]);
    printf("],\n");
}

int lt_cmd_data(int argc, char **argv) {
    lt_data_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.kind = LT_DATASET_FMNIST;
    lt_longtail_config_default(&spec.longtail);
    spec.image = (lt_image_options){32, 32, 3};
    /* The library default is threshold mode; `longtail data` defaults to auto so that small
     * datasets (Fashion-MNIST-LT) still show three non-empty groups. */
    lt_group_spec gspec = lt_group_spec_default();
    gspec.mode = LT_GROUP_BY_AUTO;
    int json = 0, indices = 0, profile_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            data_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--indices")) {
            indices = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            lt_cli_error("data: unexpected argument '%s' (see `longtail data --help`)", a);
            return LT_EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            lt_cli_error("data: %s needs a value", a);
            return LT_EXIT_USAGE;
        }
        const char *v = argv[++i];
        int64_t n;
        if (!strcmp(a, "--dataset")) {
            if (lt_dataset_kind_parse(v, &spec.kind) != LT_OK) {
                lt_cli_error("data: %s", lt_last_error());
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--root")) {
            spec.root = v;
        } else if (!strcmp(a, "--train-list")) {
            spec.train_list = v;
        } else if (!strcmp(a, "--test-list")) {
            spec.test_list = v;
        } else if (!strcmp(a, "--image-size")) {
            if (!parse_i64(a, v, 1, &n)) return LT_EXIT_USAGE;
            spec.image.h = spec.image.w = n;
        } else if (!strcmp(a, "--channels")) {
            if (!parse_i64(a, v, 1, &n)) return LT_EXIT_USAGE;
            if (n != 1 && n != 3) {
                lt_cli_error("data: --channels expects 1 or 3, got %s", v);
                return LT_EXIT_USAGE;
            }
            spec.image.c = n;
        } else if (!strcmp(a, "--profile")) {
            if (lt_profile_parse(v, &spec.longtail.profile) != LT_OK) {
                lt_cli_error("data: %s", lt_last_error());
                return LT_EXIT_USAGE;
            }
            profile_set = 1;
        } else if (!strcmp(a, "--imbalance")) {
            char *end;
            errno = 0;
            double x = strtod(v, &end);
            if (!*v || *end || errno || !(x >= 1.0) || !isfinite(x)) {
                lt_cli_error("data: --imbalance expects a number >= 1, got '%s'", v);
                return LT_EXIT_USAGE;
            }
            spec.longtail.imbalance_factor = x;
        } else if (!strcmp(a, "--n-max")) {
            if (!parse_i64(a, v, 0, &spec.longtail.n_max)) return LT_EXIT_USAGE;
        } else if (!strcmp(a, "--val-per-class")) {
            if (!parse_i64(a, v, 0, &spec.longtail.val_per_class)) return LT_EXIT_USAGE;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_i64(a, v, 0, &n)) return LT_EXIT_USAGE;
            spec.longtail.seed = (uint64_t)n;
        } else if (!strcmp(a, "--selection")) {
            if (!strcmp(v, "shuffle")) spec.longtail.selection = LT_SELECT_SHUFFLE;
            else if (!strcmp(v, "first")) spec.longtail.selection = LT_SELECT_FIRST;
            else {
                lt_cli_error("data: --selection expects shuffle or first, got '%s'", v);
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--class-order")) {
            if (!strcmp(v, "label")) spec.longtail.class_order = LT_ORDER_LABEL;
            else if (!strcmp(v, "counts")) spec.longtail.class_order = LT_ORDER_COUNTS;
            else {
                lt_cli_error("data: --class-order expects label or counts, got '%s'", v);
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--groups")) {
            /* "count" is this command's historical name for threshold mode. */
            if (!strcmp(v, "auto")) gspec.mode = LT_GROUP_BY_AUTO;
            else if (!strcmp(v, "count") || !strcmp(v, "threshold")) gspec.mode = LT_GROUP_BY_THRESHOLD;
            else if (!strcmp(v, "rank")) gspec.mode = LT_GROUP_BY_RANK;
            else {
                lt_cli_error("data: --groups expects auto, count (or threshold) or rank, got '%s'", v);
                return LT_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--many-above")) {
            if (!parse_i64(a, v, 0, &gspec.many_above)) return LT_EXIT_USAGE;
        } else if (!strcmp(a, "--few-below")) {
            if (!parse_i64(a, v, 0, &gspec.few_below)) return LT_EXIT_USAGE;
        } else {
            lt_cli_error("data: unknown option '%s' (see `longtail data --help`)", a);
            return LT_EXIT_USAGE;
        }
    }
    if (indices && !json) {
        lt_cli_error("data: --indices needs --json");
        return LT_EXIT_USAGE;
    }
    /* Folders and lists usually are long-tailed already: keep their counts by default. */
    if (!profile_set && (spec.kind == LT_DATASET_FOLDER || spec.kind == LT_DATASET_LIST))
        spec.longtail.profile = LT_PROFILE_NONE;
    if ((spec.kind == LT_DATASET_CIFAR10 || spec.kind == LT_DATASET_CIFAR100 || spec.kind == LT_DATASET_FOLDER ||
         spec.kind == LT_DATASET_MNIST) && !spec.root) {
        lt_cli_error("data: --dataset %s needs --root DIR", lt_dataset_kind_name(spec.kind));
        return LT_EXIT_USAGE;
    }
    if (spec.kind == LT_DATASET_LIST && !spec.train_list) {
        lt_cli_error("data: --dataset list needs --train-list F (and usually --root DIR, --test-list F)");
        return LT_EXIT_USAGE;
    }

    lt_data d;
    if (lt_data_load(&d, &spec) != LT_OK) {
        lt_cli_error("%s", lt_last_error());
        return LT_EXIT_RUNTIME;
    }
    const int32_t C = d.train.n_classes;
    int64_t *test_counts = calloc((size_t)C, sizeof(int64_t));
    int32_t *group = malloc((size_t)C * sizeof(int32_t));
    if (!test_counts || !group) {
        free(test_counts);
        free(group);
        lt_data_free(&d);
        lt_cli_error("data: out of memory");
        return LT_EXIT_RUNTIME;
    }
    lt_dataset_class_counts(&d.test, test_counts);
    lt_group_mode used;
    if (lt_eval_groups_assign(d.split.train_counts, C, &gspec, group, &used) != LT_OK) {
        lt_cli_error("%s", lt_last_error());
        free(test_counts);
        free(group);
        lt_data_free(&d);
        return LT_EXIT_USAGE;
    }
    int64_t mx = 0, mn = INT64_MAX, tot_src = 0, tot_tr = 0, tot_va = 0, tot_te = 0;
    for (int32_t k = 0; k < C; k++) {
        int64_t c = d.split.train_counts[k];
        if (c > mx) mx = c;
        if (c < mn) mn = c;
        tot_src += d.source_counts[k];
        tot_tr += c;
        tot_va += d.split.val_counts[k];
        tot_te += test_counts[k];
    }
    double realized = mn > 0 ? (double)mx / (double)mn : INFINITY;
    const char *root = spec.root ? spec.root : (spec.kind == LT_DATASET_FMNIST ? LT_FMNIST_DEFAULT_ROOT : ".");
    const lt_longtail_config *lc = &spec.longtail;

    if (json) {
        printf("{\n  \"dataset\": ");
        json_string(lt_dataset_kind_name(spec.kind));
        printf(",\n  \"root\": ");
        json_string(root);
        printf(",\n  \"profile\": \"%s\",\n  \"imbalance_factor_target\": %.17g,\n", lt_profile_name(lc->profile),
               lc->imbalance_factor);
        printf("  \"n_max\": %lld,\n  \"val_per_class\": %lld,\n  \"selection\": \"%s\",\n  \"class_order\": \"%s\",\n"
               "  \"seed\": %llu,\n",
               (long long)d.split.n_max, (long long)lc->val_per_class,
               lc->selection == LT_SELECT_SHUFFLE ? "shuffle" : "first",
               lc->class_order == LT_ORDER_LABEL ? "label" : "counts", (unsigned long long)lc->seed);
        printf("  \"image_shape\": [%lld, %lld, %lld],\n", (long long)d.train.h, (long long)d.train.w,
               (long long)d.train.c);
        printf("  \"classes\": [");
        for (int32_t k = 0; k < C; k++) {
            if (k) printf(", ");
            json_string(d.train.class_names[k]);
        }
        printf("],\n");
        json_counts("source_counts", d.source_counts, C);
        json_counts("train_counts", d.split.train_counts, C);
        json_counts("val_counts", d.split.val_counts, C);
        json_counts("test_counts", test_counts, C);
        if (indices) {
            json_counts("train_index", d.split.train_idx, (int32_t)d.split.n_train);
            json_counts("val_index", d.split.val_idx, (int32_t)d.split.n_val);
        }
        printf("  \"totals\": {\"source\": %lld, \"train\": %lld, \"val\": %lld, \"test\": %lld},\n",
               (long long)tot_src, (long long)tot_tr, (long long)tot_va, (long long)tot_te);
        if (isfinite(realized)) printf("  \"imbalance_factor\": %.17g,\n", realized);
        else printf("  \"imbalance_factor\": null,\n");
        printf("  \"groups\": {\"mode\": \"%s\", \"many_above\": %lld, \"few_below\": %lld",
               lt_group_mode_name(used), (long long)gspec.many_above, (long long)gspec.few_below);
        for (int g = 0; g < LT_EVAL_GROUPS; g++) {
            printf(", \"%s\": [", lt_group_name(g));
            int first = 1;
            for (int32_t k = 0; k < C; k++)
                if (group[k] == g) {
                    printf("%s%d", first ? "" : ", ", k);
                    first = 0;
                }
            printf("]");
        }
        printf("}\n}\n");
    } else {
        printf("dataset    %s (%s), images %lldx%lldx%lld\n", lt_dataset_kind_name(spec.kind), root,
               (long long)d.train.h, (long long)d.train.w, (long long)d.train.c);
        printf("profile    %s", lt_profile_name(lc->profile));
        if (lc->profile != LT_PROFILE_NONE) printf(", imbalance factor %g", lc->imbalance_factor);
        printf(", n_max %lld, validation %lld per class, selection %s (seed %llu), class order %s\n",
               (long long)d.split.n_max, (long long)lc->val_per_class,
               lc->selection == LT_SELECT_SHUFFLE ? "shuffle" : "first", (unsigned long long)lc->seed,
               lc->class_order == LT_ORDER_LABEL ? "label" : "counts");
        if (used == LT_GROUP_BY_RANK)
            printf("groups     rank thirds by training count (%d many, %d medium, %d few)%s\n", C / 3, C - 2 * (C / 3),
                   C / 3, gspec.mode == LT_GROUP_BY_AUTO ? "; count thresholds would leave a group empty" : "");
        else
            printf("groups     by training count: many > %lld, medium %lld..%lld, few < %lld\n",
                   (long long)gspec.many_above, (long long)gspec.few_below, (long long)gspec.many_above,
                   (long long)gspec.few_below);
        int w = 4;
        for (int32_t k = 0; k < C; k++) {
            int l = (int)strlen(d.train.class_names[k]);
            if (l > w) w = l;
        }
        if (w > 32) w = 32;
        printf("\n%5s  %-*s %8s %8s %6s %8s  %s\n", "class", w, "name", "source", "train", "val", "test", "group");
        for (int32_t k = 0; k < C; k++)
            printf("%5d  %-*.*s %8lld %8lld %6lld %8lld  %s\n", k, w, w, d.train.class_names[k],
                   (long long)d.source_counts[k], (long long)d.split.train_counts[k],
                   (long long)d.split.val_counts[k], (long long)test_counts[k], lt_group_name(group[k]));
        printf("%5s  %-*s %8lld %8lld %6lld %8lld\n\n", "total", w, "", (long long)tot_src, (long long)tot_tr,
               (long long)tot_va, (long long)tot_te);
        if (isfinite(realized))
            printf("realized imbalance factor %.2f (%lld / %lld)\n", realized, (long long)mx, (long long)mn);
        else
            printf("realized imbalance factor inf (a class has no training images)\n");
        for (int g = 0; g < LT_EVAL_GROUPS; g++) {
            int64_t m = 0;
            for (int32_t k = 0; k < C; k++) m += group[k] == g;
            printf("%-7s (%lld):", lt_group_name(g), (long long)m);
            for (int32_t k = 0; k < C; k++)
                if (group[k] == g) printf(" %d", k);
            printf("\n");
        }
    }
    free(test_counts);
    free(group);
    lt_data_free(&d);
    return 0;
}
