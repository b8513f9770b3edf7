/* Recipes and training: recipe errors name file:line and key; a tiny end-to-end run on
 * generated data learns well above chance and writes the run directory; a run stopped
 * and resumed ends with byte-identical files; an existing run directory is refused
 * without force; a classifier-only stage leaves the backbone untouched; several seeds
 * give summary.json. */
#include "test.h"
#include "test_util.h"
#include "longtail/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- recipes */

#define BASE_RECIPE                                                                              \
    "[data]\n"            /* 1 */                                                                \
    "dataset = fmnist\n"  /* 2 */                                                                \
    "\n"                  /* 3 */                                                                \
    "[model]\n"           /* 4 */                                                                \
    "arch = resnet8\n"    /* 5 */                                                                \
    "\n"                  /* 6 */                                                                \
    "[stage1]\n"          /* 7 */                                                                \
    "epochs = 3\n"        /* 8 */                                                                \
    "optimizer = sgd\n"   /* 9 */                                                                \
    "lr = 0.1\n"          /* 10 */

/* Parses text (+ overrides); expects failure with every needle in the message. */
static void expect_recipe_error(const char *text, const char *const *sets, int n_sets, const char *n1, const char *n2,
                                int line) {
    lt_recipe r;
    lt_status s = lt_recipe_parse(&r, text, "r.ini", sets, n_sets);
    if (s != LT_ERR_CONFIG) {
        lt_test_fail(__FILE__, line, "expected a config error, got %s", lt_status_name(s));
        if (s == LT_OK) lt_recipe_free(&r);
        return;
    }
    const char *msg = lt_last_error();
    if ((n1 && !strstr(msg, n1)) || (n2 && !strstr(msg, n2)))
        lt_test_fail(__FILE__, line, "message '%s' lacks '%s' / '%s'", msg, n1 ? n1 : "", n2 ? n2 : "");
}
#define EXPECT_RECIPE_ERROR(text, sets, n, a, b) expect_recipe_error(text, sets, n, a, b, __LINE__)

/* [model.NAME]: a trained role is [model] with its section's keys replaced; a frozen
 * [model.teacher] is model.teacher; the errors name the role's section and key. */
TEST(recipe_model_roles) {
    lt_recipe r;
    const char *text = "[data]\ndataset = fmnist\n[model]\narch = resnet8\nwidth = 0.5\nbias_init = zero\n"
                       "[model.twin]\ninit = w.safetensors\n[model.wide]\nwidth = 2\n[stage1]\nepochs = 1\n";
    REQUIRE_OK(lt_recipe_parse(&r, text, "r.ini", NULL, 0));
    CHECK_EQ_INT(r.n_roles, 2);
    CHECK(!strcmp(r.roles[0].name, "twin") && !strcmp(r.roles[1].name, "wide"));
    /* twin: [model] as it is, its own init */
    CHECK(r.roles[0].model.arch == LT_ARCH_RESNET_CIFAR && r.roles[0].model.depth == 8);
    CHECK_NEAR(r.roles[0].model.width, 0.5, 0);
    CHECK(r.roles[0].init && !strcmp(r.roles[0].init, "w.safetensors") && r.roles[0].init_strict);
    CHECK(!r.init);
    /* wide: [model]'s arch and bias init, its own width */
    CHECK(r.roles[1].model.arch == LT_ARCH_RESNET_CIFAR && r.roles[1].model.depth == 8);
    CHECK_NEAR(r.roles[1].model.width, 2.0, 0);
    CHECK(r.roles[1].model.fc_bias_init == LT_BIAS_INIT_ZERO);
    CHECK(!r.roles[1].init);
    CHECK(!r.teacher);
    lt_recipe_free(&r);
    /* an MLP role: hidden widths as given */
    const char *mlp = "[data]\ndataset = fmnist\n[model]\narch = resnet8\n"
                      "[model.small]\narch = mlp\nhidden = 64, 32\n[stage1]\nepochs = 1\n";
    REQUIRE_OK(lt_recipe_parse(&r, mlp, "r.ini", NULL, 0));
    CHECK_EQ_INT(r.roles[0].model.n_hidden, 2);
    CHECK_EQ_INT(r.roles[0].model.hidden[0], 64);
    CHECK_EQ_INT(r.roles[0].model.hidden[1], 32);
    lt_model_config mc;
    CHECK_OK(lt_recipe_role_model_config(&r, "small", 28, 28, 1, 10, &mc));
    CHECK(mc.arch == LT_ARCH_MLP && mc.in_channels == 1 && mc.num_classes == 10 && mc.in_height == 28);
    CHECK_EQ_INT(lt_recipe_role_model_config(&r, "nope", 28, 28, 1, 10, &mc), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "no trained role 'nope'"));
    lt_recipe_free(&r);
    /* dotted role names (expert.0 ..), also from an override alone */
    const char *ex = "[data]\ndataset = fmnist\n[model]\narch = resnet8\n[model.expert.0]\n[stage1]\nepochs = 1\n";
    const char *ex_sets[] = {"model.expert.1.width=2"};
    REQUIRE_OK(lt_recipe_parse(&r, ex, "r.ini", ex_sets, 1));
    CHECK_EQ_INT(r.n_roles, 2);
    CHECK(!strcmp(r.roles[0].name, "expert.0") && !strcmp(r.roles[1].name, "expert.1"));
    CHECK_NEAR(r.roles[1].model.width, 2.0, 0);
    lt_recipe_free(&r);
    /* [model.teacher] checkpoint = PATH is model.teacher = PATH */
    const char *tch = "[data]\ndataset = fmnist\n[model.teacher]\ncheckpoint = t.safetensors\n"
                      "[stage1]\nepochs = 1\nkd = 0.5\n";
    REQUIRE_OK(lt_recipe_parse(&r, tch, "r.ini", NULL, 0));
    CHECK(r.teacher && !strcmp(r.teacher, "t.safetensors") && r.n_roles == 0);
    lt_recipe_free(&r);
    const char *inherit_width = "[data]\ndataset = fmnist\n[model]\narch = mlp\nwidth = 0.5\n"
                                "[model.small]\nhidden = 64\n[stage1]\nepochs = 1\n";
    /* [model] width is inherited: with the role's hidden that is both ways at once */
    EXPECT_RECIPE_ERROR(inherit_width, NULL, 0, "r.ini:7: model.small.hidden", "not both");
    const char *two = "[data]\ndataset = fmnist\n[model]\nteacher = a.safetensors\n[model.teacher]\n"
                      "checkpoint = b.safetensors\n[stage1]\nepochs = 1\nkd = 1\n";
    EXPECT_RECIPE_ERROR(two, NULL, 0, "r.ini:6: model.teacher.checkpoint", "twice");
    const char *sets[] = {"model.teacher.arch=mlp"};
    EXPECT_RECIPE_ERROR(BASE_RECIPE, sets, 1, "[model.teacher]", "checkpoint = PATH");
    const char *sets2[] = {"model.x.depth=3"};
    EXPECT_RECIPE_ERROR(BASE_RECIPE, sets2, 1, "--set: model.x.depth", "mlp");
}

TEST(recipe_defaults_and_overrides) {
    lt_recipe r;
    const char *sets[] = {"stage1.epochs=2", "eval.groups = rank", "run.threads=1"};
    REQUIRE_OK(lt_recipe_parse(&r, BASE_RECIPE, "r.ini", sets, 3));
    CHECK_EQ_INT(r.n_stages, 1);
    CHECK_EQ_INT(r.stages[0].epochs, 2);
    CHECK_EQ_INT(r.stages[0].batch_size, 128);
    CHECK(r.stages[0].optim.kind == LT_OPTIM_SGD);
    CHECK_NEAR(r.stages[0].schedule.base_lr, 0.1, 1e-7);
    CHECK(r.stages[0].schedule.kind == LT_SCHED_COSINE);
    CHECK(r.stages[0].train_all);
    CHECK(r.stages[0].select == LT_EPOCH_BEST_VAL);
    CHECK(r.groups.mode == LT_GROUP_BY_RANK);
    CHECK_EQ_INT(r.depth, 8);
    CHECK_EQ_INT(r.data.longtail.val_per_class, 20);
    CHECK_EQ_INT(r.threads, 1);
    CHECK(!strcmp(r.name, "r"));
    /* the resolved recipe parses back to the same settings and records name and threads */
    char *text;
    REQUIRE_OK(lt_recipe_to_string(&r, &text));
    CHECK(strstr(text, "epochs = 2") != NULL);
    CHECK(strstr(text, "name = r") != NULL);
    lt_recipe r2;
    REQUIRE_OK(lt_recipe_parse(&r2, text, "config.ini", NULL, 0));
    CHECK_EQ_INT(r2.stages[0].epochs, 2);
    CHECK(!strcmp(r2.name, "r"));
    char *text2;
    REQUIRE_OK(lt_recipe_to_string(&r2, &text2));
    CHECK(!strcmp(text, text2));
    lt_free(text);
    lt_free(text2);
    lt_recipe_free(&r2);
    lt_recipe_free(&r);
    /* threads = 0 resolves to a number */
    REQUIRE_OK(lt_recipe_parse(&r, BASE_RECIPE, "r.ini", NULL, 0));
    CHECK(r.threads >= 1);
    lt_recipe_free(&r);
}

TEST(recipe_errors_name_file_line_and_key) {
    /* unknown key, with a hint */
    EXPECT_RECIPE_ERROR(BASE_RECIPE "lrr = 0.2\n", NULL, 0, "r.ini:11", "stage1.lrr");
    /* duplicate key */
    EXPECT_RECIPE_ERROR(BASE_RECIPE "lr = 0.2\n", NULL, 0, "r.ini:11", "stage1.lr");
    /* bad values: not a number, unknown word, out of range */
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 2\nlr = fast\n", NULL, 0, "r.ini:3", "stage1.lr");
    EXPECT_RECIPE_ERROR(BASE_RECIPE "schedule = linear\n", NULL, 0, "r.ini:11", "stage1.schedule");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = -1\n", NULL, 0, "r.ini:2", "stage1.epochs");
    EXPECT_RECIPE_ERROR("[model]\narch = vgg16\n[stage1]\nepochs = 1\n", NULL, 0, "r.ini:2", "model.arch");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 1\n\nsampler = balanced\n", NULL, 0, "r.ini:4", "stage1.sampler");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 4\nschedule = step\nmilestones = 3, 2\nfactors = 0.1, 0.01\n", NULL, 0,
                        "r.ini:4", "stage1.milestones");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 4\nmomentum = 1.5\n", NULL, 0, "r.ini:3", "stage1.momentum");
    EXPECT_RECIPE_ERROR("[eval]\ngroups = thirds\n[stage1]\nepochs = 1\n", NULL, 0, "r.ini:2", "eval.groups");
    /* a key that only makes sense with another setting */
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 1\nq = 0.3\n", NULL, 0, "r.ini:3", "stage1.q");
    /* structure: no stage, a gap, a stage without epochs, an unknown section */
    EXPECT_RECIPE_ERROR("[data]\ndataset = fmnist\n", NULL, 0, "r.ini", "stage1");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 1\n[stage3]\nepochs = 1\n", NULL, 0, "r.ini:3", "stage3");
    EXPECT_RECIPE_ERROR("[stage1]\nlr = 0.1\n", NULL, 0, "r.ini:1", "epochs");
    EXPECT_RECIPE_ERROR("[stage1]\nepochs = 1\n[optim]\nlr = 1\n", NULL, 0, "r.ini:3", "optim");
    /* overrides: an unknown key and a bad value say --set */
    const char *bad_key[] = {"stage1.epoch=3"};
    EXPECT_RECIPE_ERROR(BASE_RECIPE, bad_key, 1, "--set", "stage1.epoch");
    const char *bad_val[] = {"stage1.optimizer=rmsprop"};
    EXPECT_RECIPE_ERROR(BASE_RECIPE, bad_val, 1, "--set", "stage1.optimizer");
    const char *no_eq[] = {"stage1.epochs"};
    EXPECT_RECIPE_ERROR(BASE_RECIPE, no_eq, 1, "--set", "stage1.epochs");
}

TEST(recipe_file_errors_name_the_path) {
    const char *dir = lt_test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("[stage1]\nepochs = 2\nweight_decay = -1\n", f);
    fclose(f);
    lt_recipe r;
    CHECK(lt_recipe_load(&r, path, NULL, 0) == LT_ERR_CONFIG);
    char want[700];
    snprintf(want, sizeof want, "%s:3", path);
    CHECK(strstr(lt_last_error(), want) != NULL);
    CHECK(strstr(lt_last_error(), "stage1.weight_decay") != NULL);
    CHECK(!strcmp(r.name, ""));   /* left freed */

    /* a file over the 1 MiB limit: a config error that still names the file */
    snprintf(path, sizeof path, "%s/huge.ini", dir);
    f = fopen(path, "w");
    REQUIRE(f != NULL);
    for (int i = 0; i < (1 << 20) / 16 + 16; i++) fputs("# padding line.\n", f);
    fclose(f);
    CHECK_EQ_INT(lt_recipe_load(&r, path, NULL, 0), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), path) != NULL);
    lt_config *cfg = NULL;
    CHECK_EQ_INT(lt_config_load(path, &cfg), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), path) != NULL);
    CHECK(cfg == NULL);
}

TEST(recipe_default_config_parses) {
    const char *root = getenv("LT_TEST_ROOT");
    char path[600];
    snprintf(path, sizeof path, "%s/configs/default.ini", root ? root : ".");
    lt_recipe r;
    REQUIRE_OK(lt_recipe_load(&r, path, NULL, 0));
    CHECK(r.data.kind == LT_DATASET_FMNIST);
    CHECK_NEAR(r.data.longtail.imbalance_factor, 100, 0);
    CHECK_EQ_INT(r.depth, 8);
    CHECK(r.groups.mode == LT_GROUP_BY_RANK);
    CHECK(r.stages[0].optim.kind == LT_OPTIM_SGD);
    CHECK_NEAR(r.stages[0].optim.momentum, 0.9, 1e-7);
    CHECK_NEAR(r.stages[0].optim.weight_decay, 5e-3, 1e-9);
    CHECK(!strcmp(r.name, "default"));
    lt_recipe_free(&r);
}

/* ---------------------------------------------------------------- generated data */

/* tu_gen (tests/test_util.c): 8x8 gray images of 4 classes, class k lights up quadrant k;
 * 25 test images per class, classes "quadrant0".."quadrant3". */

#define TINY_RECIPE                                                                              \
    "[data]\nnormalize = dataset\n"                                                              \
    "[model]\narch = resnet8\nwidth = 0.5\n"                                                     \
    "[stage1]\nepochs = 3\nbatch_size = 16\nlr = 0.05\nweight_decay = 5e-4\n"                    \
    "[eval]\ngroups = rank\nbatch_size = 32\n"

#define TWO_STAGE_RECIPE                                                                         \
    "[data]\nnormalize = dataset\ncrop_pad = 1\nhflip = true\n"                                  \
    "[model]\narch = resnet8\nwidth = 0.5\n"                                                     \
    "[stage1]\nepochs = 2\nbatch_size = 16\nlr = 0.05\nweight_decay = 5e-3\n"                    \
    "[stage2]\nepochs = 2\nbatch_size = 16\nlr = 0.02\nweight_decay = 0.1\ntrain = classifier\n" \
    "reinit_classifier = true\nbn = frozen\nclass_weights = cb\nsampler = class_aware\n"         \
    "select = last\n"                                                                            \
    "[eval]\ngroups = rank\nbatch_size = 32\n"


/* Files a and b in two directories are byte for byte equal. */
static int same_file(const char *da, const char *db, const char *name) {
    int64_t na, nb;
    char *a = tu_slurp(da, name, &na), *b = tu_slurp(db, name, &nb);
    int same = a && b && na == nb && !memcmp(a, b, (size_t)na);
    if (!same) lt_test_fail(__FILE__, __LINE__, "%s differs between %s and %s (%lld vs %lld bytes)", name, da, db,
                            a ? (long long)na : -1LL, b ? (long long)nb : -1LL);
    lt_free(a);
    lt_free(b);
    return same;
}

static int count_lines(const char *dir, const char *name) {
    int64_t n;
    char *d = tu_slurp(dir, name, &n);
    if (!d) return -1;
    int lines = 0;
    for (int64_t i = 0; i < n; i++) lines += d[i] == '\n';
    lt_free(d);
    return lines;
}

static const char *subdir(const char *name) {
    static char buf[8][700];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 700, "%s/%s", lt_test_tmpdir(), name);
    return b;
}

static lt_status run(const char *recipe_text, const char *const *sets, int n_sets, tu_gen *g, const char *dir,
                     int resume, int force, int64_t stop, lt_train_outcome *out) {
    lt_recipe r;
    lt_status s = lt_recipe_parse(&r, recipe_text, "tiny.ini", sets, n_sets);
    if (s) return s;
    lt_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = dir;
    o.resume = resume;
    o.force = force;
    o.stop_after_epochs = stop;
    s = lt_train(&r, &g->td, &o, out);
    lt_recipe_free(&r);
    return s;
}

TEST(train_end_to_end_on_generated_data) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *dir = subdir("e2e");
    lt_train_outcome out;
    REQUIRE_OK(run(TINY_RECIPE, NULL, 0, &g, dir, 0, 0, 0, &out));
    CHECK(out.finished);
    CHECK_EQ_INT(out.n_seeds, 1);
    CHECK_EQ_INT(out.n_stages, 1);
    REQUIRE(out.results != NULL);
    double top1 = out.results[0].top1;
    CHECK(top1 > 0.7);   /* chance is 0.25 */
    CHECK(!strcmp(out.group_mode, "rank"));
    lt_train_outcome_free(&out);

    /* the run directory */
    CHECK_EQ_INT(count_lines(dir, "log.jsonl"), 3);
    char *cfg = tu_slurp(dir, "config.ini", NULL);
    CHECK(cfg && strstr(cfg, "[stage1]") && strstr(cfg, "threads = "));
    lt_free(cfg);
    char path[800];
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    lt_json *j;
    REQUIRE_OK(lt_json_load(path, 0, &j));
    const lt_json *st = lt_json_at(lt_json_get(j, "stages"), 0);
    REQUIRE(st != NULL);
    static const char *const keys[] = {"top1", "top5", "many", "medium", "few", "per_class_acc", "class_counts",
                                       "weight_norms", "confusion", "ece", "groups", "val", "selected_epoch"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!lt_json_get(st, keys[k])) lt_test_fail(__FILE__, __LINE__, "metrics.json stage entry lacks %s", keys[k]);
    CHECK_NEAR(lt_json_number(lt_json_get(st, "top1"), -1), top1, 0);
    CHECK_EQ_INT(lt_json_get(st, "weight_norms")->n, 4);
    CHECK_EQ_INT(lt_json_number(lt_json_at(lt_json_get(st, "class_counts"), 0), -1), 96);
    CHECK(lt_json_get(lt_json_get(st, "val"), "top1") != NULL);
    lt_json_free(j);

    /* longtail eval's path: the stage checkpoint scores the same on the test set */
    lt_model m;
    lt_recipe r;
    REQUIRE_OK(lt_recipe_parse(&r, TINY_RECIPE, "tiny.ini", NULL, 0));
    lt_model_config mc = lt_recipe_model_config(&r, 8, 8, 1, 4);
    REQUIRE_OK(lt_model_init(&m, &mc, 123));
    snprintf(path, sizeof path, "%s/stage1.safetensors", dir);
    REQUIRE_OK(lt_checkpoint_load(path, &m.params));
    lt_augment_config norm;
    REQUIRE_OK(lt_recipe_augment(&r, &g.train, &norm));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    int64_t counts[4];
    lt_dataset_class_counts(&g.train, counts);
    lt_eval_result res;
    lt_eval_result_init(&res);
    REQUIRE_OK(lt_evaluate(ctx, &m, &g.test, &norm, 7, 5, counts, &r.groups, &res));
    CHECK_NEAR(res.top1, top1, 0);
    CHECK_EQ_INT(res.num_samples, 100);
    lt_eval_result_free(&res);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    lt_recipe_free(&r);
    tu_gen_free(&g);
}

TEST(train_resume_is_byte_identical) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *a = subdir("full"), *b = subdir("stopped");
    lt_train_outcome out;
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, a, 0, 0, 0, &out));
    CHECK(out.finished);
    CHECK_EQ_INT(out.n_stages, 2);
    lt_train_outcome_free(&out);

    /* stop after epoch 1 (mid stage 1) */
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, b, 0, 0, 1, &out));
    CHECK(!out.finished);
    char p[800];
    snprintf(p, sizeof p, "%s/stage1.safetensors", b);
    CHECK(!lt_path_exists(p));
    CHECK_EQ_INT(count_lines(b, "log.jsonl"), 1);
    /* a kill mid-write: a torn log line and a stale temporary file */
    snprintf(p, sizeof p, "%s/log.jsonl", b);
    FILE *f = fopen(p, "a");
    REQUIRE(f != NULL);
    fputs("{\"seed\":0,\"stage\":1,\"ep", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/last.safetensors.tmp", b);
    f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs("junk", f);
    fclose(f);
    /* resume: one more epoch ends stage 1's epochs but not its end-of-stage work */
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, b, 1, 0, 1, &out));
    CHECK(!out.finished);
    /* resume to the end */
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, b, 1, 0, 0, &out));
    CHECK(out.finished);
    lt_train_outcome_free(&out);
    same_file(a, b, "stage1.safetensors");
    same_file(a, b, "stage2.safetensors");
    same_file(a, b, "last.safetensors");
    same_file(a, b, "metrics.json");
    same_file(a, b, "config.ini");
    CHECK_EQ_INT(count_lines(b, "log.jsonl"), 4);

    /* stopping at every other epoch boundary gives the same bytes too */
    const char *c = subdir("stepwise");
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, c, 0, 0, 2, &out));
    for (int i = 0; i < 4 && !out.finished; i++) REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, c, 1, 0, 1, &out));
    CHECK(out.finished);
    lt_train_outcome_free(&out);
    same_file(a, c, "stage2.safetensors");
    same_file(a, c, "metrics.json");

    /* resuming a finished run changes nothing */
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, b, 1, 0, 0, &out));
    CHECK(out.finished);
    lt_train_outcome_free(&out);
    same_file(a, b, "last.safetensors");
    /* an override that repeats a value of the recipe is the same recipe */
    const char *same[] = {"stage2.lr=0.02"};
    REQUIRE_OK(run(TWO_STAGE_RECIPE, same, 1, &g, b, 1, 0, 0, &out));
    lt_train_outcome_free(&out);
    /* a different recipe cannot resume this run */
    const char *other[] = {"stage2.lr=0.5"};
    CHECK(run(TWO_STAGE_RECIPE, other, 1, &g, b, 1, 0, 0, &out) == LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "config.ini") != NULL);
    CHECK(strstr(lt_last_error(), "lr = 0.5") != NULL);
    tu_gen_free(&g);
}

/* Tensors that differ between dir's stage-1 and stage-2 checkpoints: fc.* into *fc, the
 * others into *other (tu_ckpt_diff). */
static int stage_diff(const char *dir, int *fc, int *other) {
    char p1[800], p2[800];
    snprintf(p1, sizeof p1, "%s/stage1.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/stage2.safetensors", dir);
    return tu_ckpt_diff(p1, p2, "fc.", fc, other);
}

TEST(train_classifier_stage_keeps_backbone) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *dir = subdir("two");
    lt_train_outcome out;
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, dir, 0, 0, 0, &out));
    lt_train_outcome_free(&out);
    int fc_changed = -1, other_changed = -1;
    CHECK(stage_diff(dir, &fc_changed, &other_changed));
    CHECK_EQ_INT(fc_changed, 2);
    CHECK_EQ_INT(other_changed, 0);   /* weights, BN statistics and counters all unchanged */
    tu_gen_free(&g);
}

/* cRT: reinit_classifier re-draws the head at the start of the stage (Kaiming-normal rows,
 * bias U(-1/sqrt(D), 1/sqrt(D))); without it a 0-epoch stage keeps stage 1's head. */
TEST(train_crt_reinitializes_classifier) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    for (int reinit = 0; reinit < 2; reinit++) {
        const char *dir = subdir(reinit ? "crt_reinit" : "crt_keep");
        const char *sets[] = {"stage1.epochs=1", "stage2.epochs=0",
                              reinit ? "stage2.reinit_classifier=true" : "stage2.reinit_classifier=false"};
        lt_train_outcome out;
        REQUIRE_OK(run(TWO_STAGE_RECIPE, sets, 3, &g, dir, 0, 0, 0, &out));
        lt_train_outcome_free(&out);
        int fc_changed = -1, other_changed = -1;
        CHECK(stage_diff(dir, &fc_changed, &other_changed));
        CHECK_EQ_INT(other_changed, 0);
        CHECK_EQ_INT(fc_changed, reinit ? 2 : 0);
        char p2[800];
        snprintf(p2, sizeof p2, "%s/stage2.safetensors", dir);
        lt_safetensors *b;
        REQUIRE_OK(lt_safetensors_load(p2, &b));
        if (reinit) {
            const lt_st_entry *w = lt_safetensors_find(b, "fc.weight"), *bias = lt_safetensors_find(b, "fc.bias");
            REQUIRE(w && bias);
            int64_t n = w->shape[0] * w->shape[1];
            const float *x = (const float *)lt_safetensors_data(b, w);
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
            double want = sqrt(2.0 / (double)w->shape[1]), got = sqrt(ss / (double)n);
            CHECK(fabs(got / want - 1.0) < 0.25);   /* n = 4 x 32 draws: the std is within 25% */
            const float *bv = (const float *)lt_safetensors_data(b, bias);
            double bound = 1.0 / sqrt((double)w->shape[1]);
            for (int64_t c = 0; c < bias->shape[0]; c++) CHECK(fabs(bv[c]) <= bound);
        }
        lt_safetensors_free(b);
    }
    tu_gen_free(&g);
}

/* A stage 1 trained once and shared: [model] init + stage1.epochs = 0 reaches the same
 * stage-2 weights as the whole recipe run straight through. */
TEST(train_init_and_zero_epoch_stage_share_stage1) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *a = subdir("share_full"), *b = subdir("share_init");
    lt_train_outcome out;
    REQUIRE_OK(run(TWO_STAGE_RECIPE, NULL, 0, &g, a, 0, 0, 0, &out));
    double stage1_top1 = out.results[0].top1;
    lt_train_outcome_free(&out);
    char init[900], p1[800], p2[800];
    snprintf(init, sizeof init, "model.init=%s/stage1.safetensors", a);
    const char *sets[] = {init, "stage1.epochs=0"};
    REQUIRE_OK(run(TWO_STAGE_RECIPE, sets, 2, &g, b, 0, 0, 0, &out));
    CHECK(out.finished);
    CHECK_NEAR(out.results[0].top1, stage1_top1, 0);   /* stage 1 only scored the loaded model */
    lt_train_outcome_free(&out);
    CHECK_EQ_INT(count_lines(b, "log.jsonl"), 2);      /* stage 2's epochs alone */
    snprintf(p1, sizeof p1, "%s/stage2.safetensors", a);
    snprintf(p2, sizeof p2, "%s/stage2.safetensors", b);
    lt_safetensors *x, *y;
    REQUIRE_OK(lt_safetensors_load(p1, &x));
    REQUIRE_OK(lt_safetensors_load(p2, &y));
    int differ = 0;
    for (int64_t i = 0; i < lt_safetensors_count(x); i++) {
        const lt_st_entry *ex = lt_safetensors_entry(x, i), *ey = lt_safetensors_find(y, ex->name);
        REQUIRE(ey != NULL && ey->nbytes == ex->nbytes);
        differ += memcmp(lt_safetensors_data(x, ex), lt_safetensors_data(y, ey), (size_t)ex->nbytes) != 0;
    }
    CHECK_EQ_INT(lt_safetensors_count(x), lt_safetensors_count(y));
    CHECK_EQ_INT(differ, 0);
    lt_safetensors_free(x);
    lt_safetensors_free(y);

    /* a missing file and a checkpoint of another shape: errors naming model.init */
    const char *missing[] = {"model.init=/nonexistent/stage1.safetensors"};
    CHECK(run(TWO_STAGE_RECIPE, missing, 1, &g, subdir("share_missing"), 0, 0, 0, &out) != LT_OK);
    CHECK(strstr(lt_last_error(), "model.init") && strstr(lt_last_error(), "/nonexistent/stage1.safetensors"));
    const char *wider[] = {init, "model.width=1"};
    CHECK(run(TWO_STAGE_RECIPE, wider, 2, &g, subdir("share_wider"), 0, 0, 0, &out) != LT_OK);
    CHECK(strstr(lt_last_error(), "model.init") && strstr(lt_last_error(), "conv1.weight"));
    tu_gen_free(&g);
}

/* longtail eval's path re-applies the post-hoc transform a stage checkpoint records:
 * the same test top-1 as the stage's final evaluation in training. */
TEST(train_checkpoint_posthoc_reapplied) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *dir = subdir("posthoc_eval");
    const char *sets[] = {"stage1.posthoc=la_add", "stage1.posthoc_tau=2"};
    lt_train_outcome out;
    REQUIRE_OK(run(TINY_RECIPE, sets, 2, &g, dir, 0, 0, 0, &out));
    double top1 = out.results[0].top1;
    lt_train_outcome_free(&out);

    lt_recipe r;
    REQUIRE_OK(lt_recipe_parse(&r, TINY_RECIPE, "tiny.ini", sets, 2));
    lt_model m;
    lt_model_config mc = lt_recipe_model_config(&r, 8, 8, 1, 4);
    REQUIRE_OK(lt_model_init(&m, &mc, 7));
    char path[800], bad[800];
    snprintf(path, sizeof path, "%s/stage1.safetensors", dir);
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    REQUIRE_OK(lt_ckpt_read_params(st, &m.params, "", LT_CKPT_ALL, 1, NULL, NULL, NULL));
    int64_t counts[4];
    lt_dataset_class_counts(&g.train, counts);
    lt_posthoc kind;
    double tau;
    REQUIRE_OK(lt_checkpoint_posthoc_apply(&m, st, path, counts, &kind, &tau));
    CHECK(kind == LT_POSTHOC_LA_ADD);
    CHECK_NEAR(tau, 2.0, 0);
    CHECK(m.head.post_shift != NULL);
    lt_augment_config norm;
    REQUIRE_OK(lt_recipe_augment(&r, &g.train, &norm));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_eval_result res;
    lt_eval_result_init(&res);
    REQUIRE_OK(lt_evaluate(ctx, &m, &g.test, &norm, 32, 5, counts, &r.groups, &res));
    CHECK_NEAR(res.top1, top1, 0);
    double with = res.nll;
    lt_eval_result_free(&res);
    lt_eval_result_init(&res);
    REQUIRE_OK(lt_model_set_posthoc(&m, NULL, NULL));   /* the raw weights score differently */
    REQUIRE_OK(lt_evaluate(ctx, &m, &g.test, &norm, 32, 5, counts, &r.groups, &res));
    CHECK(fabs(res.nll - with) > 1e-3);
    lt_eval_result_free(&res);
    lt_safetensors_free(st);

    /* a checkpoint without the keys clears the transform; a bad tau is an error naming it */
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    const char *meta_bad[] = {"posthoc", "la_additive", "posthoc_tau", "abc"};
    REQUIRE_OK(lt_checkpoint_save(bad, &m.params, meta_bad, 2));
    REQUIRE_OK(lt_safetensors_load(bad, &st));
    CHECK(lt_checkpoint_posthoc_apply(&m, st, bad, counts, &kind, &tau) == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "posthoc_tau") && strstr(lt_last_error(), "abc") && strstr(lt_last_error(), "bad.safetensors"));
    lt_safetensors_free(st);
    REQUIRE_OK(lt_checkpoint_save(bad, &m.params, NULL, 0));
    REQUIRE_OK(lt_safetensors_load(bad, &st));
    REQUIRE_OK(lt_checkpoint_posthoc_apply(&m, st, bad, counts, &kind, &tau));
    CHECK(kind == LT_POSTHOC_NONE && isnan(tau) && m.head.post_shift == NULL && m.head.post_scale == NULL);
    lt_safetensors_free(st);

    /* the record alone (longtail eval's overrides): kind, τ and bias, or an error naming the key */
    struct { const char *meta[6]; lt_status want; lt_stage_posthoc kind; double tau; int drop; const char *names; } rec[] = {
        {{"posthoc", "tau_norm", "posthoc_tau", "0.7", "posthoc_bias", "drop"}, LT_OK, LT_STAGE_POSTHOC_TAUNORM, 0.7, 1, NULL},
        {{"posthoc", "la_multiplicative", "posthoc_tau", "1.5", "x", "y"}, LT_OK, LT_STAGE_POSTHOC_LA_MUL, 1.5, 0, NULL},
        {{"posthoc", "none", "a", "b", "x", "y"}, LT_OK, LT_STAGE_POSTHOC_NONE, NAN, 0, NULL},
        {{"posthoc", "cubic", "posthoc_tau", "1", "x", "y"}, LT_ERR_FORMAT, LT_STAGE_POSTHOC_NONE, NAN, 0, "cubic"},
        {{"posthoc", "tau_norm", "posthoc_tau", "1", "posthoc_bias", "half"}, LT_ERR_FORMAT, LT_STAGE_POSTHOC_NONE, NAN, 0,
         "posthoc_bias"},
        {{"posthoc", "tau_norm", "posthoc_tau", "-1", "x", "y"}, LT_ERR_FORMAT, LT_STAGE_POSTHOC_NONE, NAN, 0, "posthoc_tau"},
    };
    for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++) {
        REQUIRE_OK(lt_checkpoint_save(bad, &m.params, rec[i].meta, 3));
        REQUIRE_OK(lt_safetensors_load(bad, &st));
        lt_stage_posthoc k;
        double t;
        int drop;
        CHECK_EQ_INT(lt_checkpoint_posthoc_read(st, bad, &k, &t, &drop), rec[i].want);
        CHECK(k == rec[i].kind && drop == rec[i].drop && (isnan(rec[i].tau) ? isnan(t) : t == rec[i].tau));
        if (rec[i].names) CHECK(strstr(lt_last_error(), rec[i].names) && strstr(lt_last_error(), "bad.safetensors"));
        lt_safetensors_free(st);
    }
    lt_ctx_free(ctx);
    lt_model_free(&m);
    lt_recipe_free(&r);
    tu_gen_free(&g);
}

TEST(train_existing_run_dir_needs_force) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *dir = subdir("exists");
    const char *one[] = {"stage1.epochs=1"};
    lt_train_outcome out;
    REQUIRE_OK(run(TINY_RECIPE, one, 1, &g, dir, 0, 0, 0, &out));
    lt_train_outcome_free(&out);
    int64_t n0;
    char *before = tu_slurp(dir, "stage1.safetensors", &n0);
    REQUIRE(before != NULL);
    /* a user file in the directory must survive --force */
    char p[800];
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs("mine", f);
    fclose(f);
    const char *two[] = {"stage1.epochs=2"};
    lt_status s = run(TINY_RECIPE, two, 1, &g, dir, 0, 0, 0, &out);
    CHECK(s == LT_ERR_EXISTS);
    CHECK(strstr(lt_last_error(), "--force") != NULL);
    same_file(dir, dir, "stage1.safetensors");
    int64_t n1;
    char *after = tu_slurp(dir, "stage1.safetensors", &n1);
    CHECK(after && n1 == n0 && !memcmp(before, after, (size_t)n0));
    CHECK_EQ_INT(count_lines(dir, "log.jsonl"), 1);
    lt_free(after);
    /* --force replaces the run: the same recipe gives the same bytes (determinism) */
    REQUIRE_OK(run(TINY_RECIPE, one, 1, &g, dir, 0, 1, 0, &out));
    lt_train_outcome_free(&out);
    after = tu_slurp(dir, "stage1.safetensors", &n1);
    CHECK(after && n1 == n0 && !memcmp(before, after, (size_t)n0));
    CHECK(lt_path_exists(p));
    lt_free(after);
    lt_free(before);
    /* resuming a directory that is not a run */
    CHECK(run(TINY_RECIPE, one, 1, &g, subdir("nothing"), 1, 0, 0, &out) == LT_ERR_ARG);
    tu_gen_free(&g);
}

TEST(train_seeds_write_summary) {
    tu_gen g;
    REQUIRE(tu_gen_init(&g, 25, "quadrant"));
    const char *dir = subdir("seeds");
    const char *sets[] = {"stage1.epochs=1", "run.seeds=2", "run.seed=5"};
    lt_train_outcome out;
    REQUIRE_OK(run(TINY_RECIPE, sets, 3, &g, dir, 0, 0, 0, &out));
    CHECK(out.finished);
    CHECK_EQ_INT(out.n_seeds, 2);
    REQUIRE(out.seeds != NULL);
    CHECK_EQ_INT(out.seeds[0], 5);
    CHECK_EQ_INT(out.seeds[1], 6);
    char p[800];
    snprintf(p, sizeof p, "%s/seed6/stage1.safetensors", dir);
    CHECK(lt_path_exists(p));
    snprintf(p, sizeof p, "%s/seed5/config.ini", dir);
    char *cfg = NULL;
    int64_t n;
    REQUIRE_OK(lt_file_read(p, 0, &cfg, &n));
    CHECK(strstr(cfg, "seed = 5") && strstr(cfg, "seeds = 1"));
    lt_free(cfg);
    snprintf(p, sizeof p, "%s/summary.json", dir);
    lt_json *j;
    REQUIRE_OK(lt_json_load(p, 0, &j));
    const lt_json *top1 = lt_json_get(lt_json_at(lt_json_get(j, "stages"), 0), "top1");
    REQUIRE(top1 != NULL);
    double mean = lt_json_number(lt_json_get(top1, "mean"), -1), sd = lt_json_number(lt_json_get(top1, "std"), -1);
    double a = out.results[0].top1, b = out.results[1].top1;
    CHECK_NEAR(mean, (a + b) / 2, 1e-12);
    CHECK_NEAR(sd, fabs(a - b) / sqrt(2.0), 1e-12);
    const lt_json *pc = lt_json_get(lt_json_at(lt_json_get(j, "stages"), 0), "per_class_acc");
    CHECK(pc && lt_json_get(pc, "mean") && lt_json_get(pc, "mean")->n == 4);
    lt_json_free(j);
    lt_train_outcome_free(&out);
    tu_gen_free(&g);
}
