/* `longtail bench`: training and inference throughput of a model on random data.
 *
 * Training: SGD steps (forward, mean cross-entropy, backward, update with lr 0.1,
 * momentum 0.9, weight decay 5e-4), BN in training mode. Inference: eval mode (running
 * statistics), no tape. Each line reports the median over the timed steps of
 * batch / step time; bench/torch_resnet.py measures PyTorch the same way. */
#include "cli.h"

#include "longtail/nn.h"
#include "longtail/optim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: longtail bench [--model resnetN] [--batch B] [--input CxHxW] [--steps N]\n"
            "                      [--warmup W] [--threads T] [--classes K] [--width X]\n"
            "                      [--only train|infer]\n"
            "\n"
            "Times SGD training steps and eval-mode inference of a CIFAR ResNet on random data\n"
            "and prints one line each: `train ... : X img/s` and `infer ... : X img/s` (median\n"
            "over the timed steps).\n"
            "\n"
            "  --model resnetN   N = 6n+2: resnet8, resnet20, resnet32 (default), resnet44, resnet56\n"
            "  --batch B         images per step (default 128)\n"
            "  --input CxHxW     image shape (default 3x32x32)\n"
            "  --steps N         timed steps for each of train and infer (default 10)\n"
            "  --warmup W        untimed steps before each (default 2)\n"
            "  --threads T       OpenMP threads (default: all cores)\n"
            "  --classes K       classifier outputs (default 10)\n"
            "  --width X         channel multiplier (default 1)\n"
            "  --only WHAT       run only the training or only the inference part (profiling)\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_args {
    int depth;
    long batch, c, h, w, steps, warmup, threads, classes;
    double width;
    int train, infer;
} bench_args;

static int parse_args(int argc, char **argv, bench_args *a) {
    *a = (bench_args){.depth = 32, .batch = 128, .c = 3, .h = 32, .w = 32, .steps = 10,
                      .warmup = 2, .threads = 0, .classes = 10, .width = 1.0, .train = 1, .infer = 1};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) { usage(stdout); return 1; }
        if (i + 1 >= argc) { lt_cli_error("bench: %s needs a value (see `longtail bench --help`)", opt); return -1; }
        const char *v = argv[++i];
        long x;
        if (!strcmp(opt, "--model")) {
            if (strncmp(v, "resnet", 6) || !parse_long(v + 6, 8, 1000, &x) || (x - 2) % 6) {
                lt_cli_error("bench: --model '%s' (expected resnetN with N = 6n+2, e.g. resnet32)", v);
                return -1;
            }
            a->depth = (int)x;
        } else if (!strcmp(opt, "--input")) {
            char tail;
            if (sscanf(v, "%ldx%ldx%ld%c", &a->c, &a->h, &a->w, &tail) != 3 || a->c < 1 || a->h < 1 ||
                a->w < 1 || a->c > 4096 || a->h > 4096 || a->w > 4096) {
                lt_cli_error("bench: --input '%s' (expected CxHxW, e.g. 3x32x32)", v);
                return -1;
            }
        } else if (!strcmp(opt, "--only")) {
            if (strcmp(v, "train") && strcmp(v, "infer")) {
                lt_cli_error("bench: --only '%s' (expected train or infer)", v);
                return -1;
            }
            a->train = !strcmp(v, "train");
            a->infer = !a->train;
        } else if (!strcmp(opt, "--width")) {
            char *end;
            errno = 0;
            a->width = strtod(v, &end);
            if (errno || end == v || *end || !(a->width > 0 && a->width <= 64)) {
                lt_cli_error("bench: --width '%s' (expected a number in (0, 64])", v);
                return -1;
            }
        } else {
            struct { const char *name; long *dst; long lo, hi; } nums[] = {
                {"--batch", &a->batch, 1, 1 << 16}, {"--steps", &a->steps, 1, 100000},
                {"--warmup", &a->warmup, 0, 100000}, {"--threads", &a->threads, 1, 1024},
                {"--classes", &a->classes, 1, 1 << 20},
            };
            size_t k;
            for (k = 0; k < sizeof nums / sizeof nums[0]; k++) if (!strcmp(opt, nums[k].name)) break;
            if (k == sizeof nums / sizeof nums[0]) {
                lt_cli_error("bench: unknown option '%s' (see `longtail bench --help`)", opt);
                return -1;
            }
            if (!parse_long(v, nums[k].lo, nums[k].hi, nums[k].dst)) {
                lt_cli_error("bench: %s '%s' (expected an integer in %ld..%ld)", opt, v, nums[k].lo, nums[k].hi);
                return -1;
            }
        }
    }
    return 0;
}

int lt_cmd_bench(int argc, char **argv) {
    bench_args a;
    int pr = parse_args(argc, argv, &a);
    if (pr > 0) return 0;
    if (pr < 0) return LT_EXIT_USAGE;
    lt_set_threads((int)a.threads);
    int threads = lt_get_threads();

    lt_model_config cfg = lt_model_config_resnet(a.depth, (int)a.c, (int)a.h, (int)a.w, (int)a.classes);
    cfg.width = (float)a.width;
    lt_model m;
    lt_ctx *ctx = NULL;
    lt_optim opt = {0};
    float *x = NULL;
    int32_t *labels = NULL;
    double *times = NULL;
    int rc = LT_EXIT_RUNTIME;
    if (lt_model_init(&m, &cfg, 0) != LT_OK) {
        lt_cli_error("bench: %s", lt_last_error());
        return LT_EXIT_RUNTIME;
    }
    lt_optim_config oc = lt_optim_config_sgd(0.9f, 5e-4f, 0);
    int64_t shape[4] = {a.batch, a.h, a.w, a.c};
    int64_t n = a.batch * a.h * a.w * a.c;
    ctx = lt_ctx_new();
    x = lt_malloc((size_t)n * sizeof(float));
    labels = lt_malloc((size_t)a.batch * sizeof(int32_t));
    times = lt_malloc((size_t)a.steps * sizeof(double));
    if (!ctx || !x || !labels || !times) { lt_cli_error("bench: out of memory for a batch of %lld", (long long)a.batch); goto out; }
    if (lt_optim_init(&opt, &m.params, &oc) != LT_OK) { lt_cli_error("bench: %s", lt_last_error()); goto out; }
    lt_rng rng;
    lt_rng_init(&rng, 0, LT_STREAM_TEST);
    for (int64_t i = 0; i < n; i++) x[i] = lt_rng_normal(&rng);
    for (long i = 0; i < a.batch; i++) labels[i] = (int32_t)lt_rng_below(&rng, (uint64_t)a.classes);

    char what[160];
    snprintf(what, sizeof what, "resnet%d batch %ld %ldx%ldx%ld threads %d", a.depth, a.batch, a.c, a.h, a.w, threads);
    if (a.width != 1.0) snprintf(what + strlen(what), sizeof what - strlen(what), " width %g", a.width);

    /* Training. */
    lt_ctx_set_training(ctx, 1);
    lt_ctx_set_grad(ctx, 1);
    for (long s = 0; a.train && s < a.warmup + a.steps; s++) {
        double t0 = now_s();
        lt_ctx_reset(ctx);
        lt_params_zero_grad(&m.params);
        lt_tensor *xt = lt_tensor_wrap(ctx, x, 4, shape);
        lt_tensor *logits = lt_model_forward(ctx, &m, xt, NULL);
        lt_tensor *loss = lt_cross_entropy(ctx, logits, labels, NULL, 0.0f, LT_REDUCE_MEAN);
        if (lt_ctx_status(ctx) != LT_OK) { lt_cli_error("bench: %s", lt_ctx_error(ctx)); goto out; }
        if (lt_backward(ctx, loss) != LT_OK || lt_optim_step(&opt, 0.1f) != LT_OK) {
            lt_cli_error("bench: %s", lt_last_error());
            goto out;
        }
        if (s >= a.warmup) times[s - a.warmup] = now_s() - t0;
    }
    if (a.train) printf("train  %s: %.1f img/s (median of %ld steps)\n", what, (double)a.batch / median(times, (int)a.steps), a.steps);
    fflush(stdout);

    /* Inference: eval-mode BN, no tape. */
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    for (long s = 0; a.infer && s < a.warmup + a.steps; s++) {
        double t0 = now_s();
        lt_ctx_reset(ctx);
        lt_tensor *logits = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), NULL);
        if (!logits) { lt_cli_error("bench: %s", lt_ctx_error(ctx)); goto out; }
        if (s >= a.warmup) times[s - a.warmup] = now_s() - t0;
    }
    if (a.infer) printf("infer  %s: %.1f img/s (median of %ld steps)\n", what, (double)a.batch / median(times, (int)a.steps), a.steps);
    rc = 0;
out:
    lt_free(times);
    lt_free(labels);
    lt_free(x);
    lt_optim_free(&opt);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    return rc;
}
