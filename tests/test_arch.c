/* The architecture registry, the architecture record of checkpoints (lt_model_load),
 * per-prefix batch-norm modes and several heads over one backbone. */
#include "longtail/checkpoint.h"
#include "longtail/longtail.h"
#include "test.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fill_uniform(float *x, int64_t n, uint64_t seed) {
    lt_rng r;
    lt_rng_init(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lt_rng_uniform(&r) * 2.0 - 1.0);
}

static lt_model_config arch_config(const char *name, int c, int hw, int classes) {
    lt_model_config m = lt_model_config_resnet(8, c, hw, hw, classes);
    lt_status s = lt_arch_parse(name, &m);
    if (s) lt_test_fail(__FILE__, __LINE__, "lt_arch_parse(%s): %s", name, lt_last_error());
    return m;
}

TEST(arch_names_round_trip) {
    static const char *const names[] = {"resnet8", "resnet32", "resnet110", "resnet_cifar50", "resnet20_nobn",
                                         "resnet_cifar50_nobn", "resnet18", "resnet34", "resnet50", "mlp"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        lt_model_config c = arch_config(names[k], 3, 32, 10);
        char buf[48];
        const char *back = lt_arch_name(&c, buf, sizeof buf);
        if (strcmp(back, names[k]) != 0) lt_test_fail(__FILE__, __LINE__, "%s reads back as %s", names[k], back);
    }
    /* resnet50 is torchvision's; the CIFAR ResNet of depth 50 is resnet_cifar50 */
    lt_model_config c = arch_config("resnet50", 3, 32, 10);
    CHECK_EQ_INT(c.arch, LT_ARCH_RESNET);
    c = arch_config("resnet_cifar50", 3, 32, 10);
    CHECK_EQ_INT(c.arch, LT_ARCH_RESNET_CIFAR);
    CHECK_EQ_INT(c.depth, 50);
    static const char *const bad[] = {"vgg11", "resnet", "resnet18x", "resnet-8", "mlp2", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK_EQ_INT(lt_arch_parse(bad[k], &c), LT_ERR_ARG);
        CHECK(strstr(lt_last_error(), "resnet18") != NULL);
    }
}

/* Parameter counts (sum of p.numel() over parameters(), buffers excluded) against
 * torchvision's (resnet18/34/50 with num_classes = 10) and hand counts. */
TEST(arch_param_counts) {
    struct { const char *arch; int64_t want; } tv[] = {
        {"resnet18", 11181642}, {"resnet34", 21289802}, {"resnet50", 23528522}};
    for (int k = 0; k < 3; k++) {
        lt_model_config c = arch_config(tv[k].arch, 3, 64, 10);
        lt_model m;
        REQUIRE_OK(lt_model_init(&m, &c, 1));
        if (lt_model_num_params(&m) != tv[k].want)
            lt_test_fail(__FILE__, __LINE__, "%s: %lld parameters, torchvision has %lld", tv[k].arch,
                         (long long)lt_model_num_params(&m), (long long)tv[k].want);
        lt_model_free(&m);
    }
    /* MLP 784 -> 64 -> 32 -> 10: (784·64 + 64) + (64·32 + 32) + (32·10 + 10) */
    lt_model_config c = arch_config("mlp", 1, 28, 10);
    c.n_hidden = 2;
    c.hidden[0] = 64;
    c.hidden[1] = 32;
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 1));
    CHECK_EQ_INT(lt_model_num_params(&m), 50240 + 2080 + 330);
    CHECK(lt_params_find(&m.params, "layers.0.weight") && lt_params_find(&m.params, "layers.2.bias"));
    lt_model_free(&m);
    /* BN-free ResNet-8, 1 channel: every conv has a bias instead of a BN.
     * conv1 1·9·16 + 16; layer1 2 × (16·9·16 + 16); layer2 (16·9·32 + 32) + (32·9·32 + 32);
     * layer3 (32·9·64 + 64) + (64·9·64 + 64); fc 64·10 + 10 */
    c = arch_config("resnet8_nobn", 1, 28, 10);
    REQUIRE_OK(lt_model_init(&m, &c, 1));
    CHECK_EQ_INT(lt_model_num_params(&m), 160 + 4640 + 13888 + 55424 + 650);
    CHECK(lt_params_find(&m.params, "layer1.0.conv1.bias") != NULL);
    CHECK(lt_params_find(&m.params, "bn1.weight") == NULL);
    CHECK_EQ_INT(lt_module_count(m.root, LT_MOD_BATCHNORM), 0);
    lt_model_free(&m);
}

/* Writes m with its architecture record to path (as a stage checkpoint does). */
static void save_with_arch(const lt_model *m, const char *path, const char *arch_json) {
    lt_ckpt_writer *w;
    REQUIRE_OK(lt_ckpt_writer_new(&w));
    REQUIRE_OK(lt_ckpt_writer_add_params(w, &m->params, "", LT_CKPT_ALL, NULL, NULL, NULL));
    if (arch_json) REQUIRE_OK(lt_ckpt_writer_add_meta(w, "architecture", arch_json));
    REQUIRE_OK(lt_ckpt_writer_commit(w, path));
}

static void logits_of(lt_model *m, const float *x, const int64_t shape[4], float *out, int64_t n) {
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    lt_tensor *z = lt_model_forward(ctx, m, lt_tensor_wrap(ctx, (float *)x, 4, shape), NULL);
    if (!z) lt_test_fail(__FILE__, __LINE__, "forward: %s", lt_ctx_error(ctx));
    else memcpy(out, z->data, (size_t)n * sizeof *out);
    lt_ctx_free(ctx);
}

TEST(arch_checkpoint_alone_rebuilds_the_model) {
    char dir[] = "/tmp/lt-arch-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    struct { const char *arch; int heads; float width; lt_head_kind head; } cases[] = {
        {"mlp", 1, 1, LT_HEAD_LINEAR}, {"resnet18", 3, 0.125f, LT_HEAD_LINEAR}, {"resnet8_nobn", 1, 0.5f, LT_HEAD_LWS},
        {"resnet8", 2, 0.25f, LT_HEAD_COSINE}, {"resnet50", 1, 0.0625f, LT_HEAD_ETF}};
    for (int k = 0; k < 5; k++) {
        lt_model_config c = arch_config(cases[k].arch, 1, 16, 6);
        c.heads = cases[k].heads;
        c.width = cases[k].width;
        c.head = cases[k].head;
        if (c.arch == LT_ARCH_RESNET) c.stem = LT_STEM_CIFAR;
        if (c.arch == LT_ARCH_MLP) {
            c.n_hidden = 1;
            c.hidden[0] = 24;
        }
        lt_model a, b;
        REQUIRE_OK(lt_model_init(&a, &c, 7));
        fill_uniform(a.params.data, a.params.n_data, 11 + (uint64_t)k);   /* not the init: a real copy is needed */
        char *json = NULL;
        REQUIRE_OK(lt_model_arch_json(&a, &json));
        save_with_arch(&a, path, json);
        lt_status s = lt_model_load(&b, path);
        if (s) {
            lt_test_fail(__FILE__, __LINE__, "%s: lt_model_load: %s", cases[k].arch, lt_last_error());
        } else {
            CHECK_EQ_INT(b.n_heads, cases[k].heads);
            CHECK_EQ_INT(b.cfg.head, cases[k].head);
            CHECK_EQ_INT(b.params.n_data, a.params.n_data);
            CHECK(memcmp(a.params.data, b.params.data, (size_t)a.params.n_data * sizeof(float)) == 0);
            CHECK(memcmp(a.params.buffers, b.params.buffers, (size_t)a.params.n_buffers * sizeof(float)) == 0);
            int64_t shape[4] = {2, 16, 16, 1};
            float x[2 * 16 * 16], za[12], zb[12];
            fill_uniform(x, 2 * 16 * 16, 3);
            logits_of(&a, x, shape, za, 12);
            logits_of(&b, x, shape, zb, 12);
            CHECK(memcmp(za, zb, sizeof za) == 0);
            lt_model_free(&b);
        }
        lt_free(json);
        lt_model_free(&a);
    }

    /* a record that does not describe the stored tree is refused, naming the file */
    lt_model_config c = arch_config("resnet8", 1, 16, 6);
    lt_model a, b;
    REQUIRE_OK(lt_model_init(&a, &c, 7));
    char *json = NULL;
    REQUIRE_OK(lt_model_arch_json(&a, &json));
    char *k3 = strstr(json, "\"kernel\":3");
    REQUIRE(k3);
    k3[9] = '5';
    save_with_arch(&a, path, json);
    CHECK_EQ_INT(lt_model_load(&b, path), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "module tree") && strstr(lt_last_error(), "m.safetensors"));
    k3[9] = '3';
    char *d = strstr(json, "\"depth\":8");
    REQUIRE(d);
    d[8] = '9';   /* resnet9 is no 6n+2 ResNet: the builder refuses */
    save_with_arch(&a, path, json);
    CHECK_EQ_INT(lt_model_load(&b, path), LT_ERR_FORMAT);
    d[8] = '8';
    char *h = strstr(json, "\"head\":\"linear\"");
    REQUIRE(h);
    memcpy(h + 8, "linea_", 6);
    save_with_arch(&a, path, json);
    CHECK_EQ_INT(lt_model_load(&b, path), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "architecture.head") != NULL);
    /* without the record and without the old keys: an error saying so */
    save_with_arch(&a, path, NULL);
    CHECK_EQ_INT(lt_model_load(&b, path), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "no architecture") != NULL);
    lt_free(json);
    lt_model_free(&a);
    unlink(path);
    rmdir(dir);
}

/* Checkpoints written before the architecture record rebuild from their old keys. */
TEST(arch_load_checkpoint_without_record) {
    lt_model m;
    lt_status s = lt_model_load(&m, lt_test_fixture("pre_models/stage1.safetensors"));
    if (s) {
        lt_test_fail(__FILE__, __LINE__, "%s", lt_last_error());
        return;
    }
    CHECK_EQ_INT(m.cfg.arch, LT_ARCH_RESNET_CIFAR);
    CHECK_EQ_INT(m.cfg.depth, 8);
    CHECK_EQ_INT(m.cfg.num_classes, 10);
    lt_safetensors *st = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("pre_models/stage1.safetensors"), &st));
    const lt_st_entry *e = lt_safetensors_find(st, "fc.bias");
    REQUIRE(e);
    CHECK(memcmp(lt_safetensors_data(st, e), lt_params_tensor(&m.params, "fc.bias")->data, 10 * sizeof(float)) == 0);
    lt_safetensors_free(st);
    lt_model_free(&m);
}

/* BN modes per prefix: frozen statistics in layer1 while the rest of the model updates. */
TEST(arch_bn_mode_per_prefix) {
    lt_model_config c = lt_model_config_resnet(8, 1, 8, 8, 3);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 2));
    REQUIRE_OK(lt_model_set_bn_mode_prefix(&m, "layer1", LT_BN_FROZEN));
    CHECK_EQ_INT(lt_model_set_bn_mode_prefix(&m, "layer9", LT_BN_FROZEN), LT_ERR_ARG);
    lt_tensor *l1 = lt_params_tensor(&m.params, "layer1.0.bn1.running_mean");
    lt_tensor *l2 = lt_params_tensor(&m.params, "layer2.0.bn1.running_mean");
    lt_tensor *top = lt_params_tensor(&m.params, "bn1.running_mean");
    REQUIRE(l1 && l2 && top);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_ctx_set_training(ctx, 1);
    lt_ctx_set_grad(ctx, 0);
    int64_t shape[4] = {4, 8, 8, 1};
    float x[4 * 64];
    fill_uniform(x, 4 * 64, 9);
    for (int i = 0; i < 4 * 64; i++) x[i] = 3.0f * x[i] + 1.0f;
    CHECK(lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), NULL) != NULL);
    for (int64_t i = 0; i < l1->numel; i++) CHECK(l1->data[i] == 0.0f);
    CHECK(top->data[0] != 0.0f);
    double s2 = 0;
    for (int64_t i = 0; i < l2->numel; i++) s2 += fabs(l2->data[i]);
    CHECK(s2 > 0);
    CHECK_EQ_INT(*lt_params_find(&m.params, "layer1.0.bn1.num_batches_tracked")->counter, 0);
    CHECK_EQ_INT(*lt_params_find(&m.params, "layer2.0.bn1.num_batches_tracked")->counter, 1);
    /* the model-wide mode clears the per-prefix ones */
    lt_model_set_bn_mode(&m, LT_BN_TRAIN);
    lt_ctx_reset(ctx);
    CHECK(lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), NULL) != NULL);
    CHECK(l1->data[0] != 0.0f);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

/* K heads over one backbone: each its own fc.k.* parameters and logits, combined by the
 * mean; the combined logits are what lt_model_forward returns. */
TEST(arch_heads_combine_by_mean) {
    lt_model_config c = lt_model_config_resnet(8, 1, 8, 8, 4);
    c.heads = 3;
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 4));
    CHECK_EQ_INT(m.n_heads, 3);
    CHECK(lt_params_find(&m.params, "fc.0.weight") && lt_params_find(&m.params, "fc.2.bias"));
    CHECK(lt_params_find(&m.params, "fc.weight") == NULL);
    /* each head is a module of kind head, named by its prefix, its parameters in the
     * head group */
    for (int k = 0; k < 3; k++) {
        char nm[24];
        snprintf(nm, sizeof nm, "fc.%d", k);
        REQUIRE(m.head_mods[k]);
        CHECK(m.head_mods[k]->kind == LT_MOD_HEAD && !strcmp(m.head_mods[k]->name, nm));
        CHECK(m.head_mods[k]->in_c == m.feature_dim && m.head_mods[k]->out_c == 4);
        CHECK(m.head_mods[k]->weight == lt_model_head(&m, k)->weight);
    }
    CHECK(!strcmp(lt_module_kind_name(LT_MOD_HEAD), "head"));
    CHECK(lt_params_find(&m.params, "fc.1.weight")->home_group == LT_GROUP_HEAD);
    CHECK_EQ_INT(lt_module_count(m.root, LT_MOD_HEAD), 0);   /* the backbone holds no head */
    /* heads are drawn independently */
    CHECK(memcmp(lt_params_tensor(&m.params, "fc.0.weight")->data, lt_params_tensor(&m.params, "fc.1.weight")->data,
                 64 * sizeof(float)) != 0);
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_ctx_set_training(ctx, 0);
    int64_t shape[4] = {2, 8, 8, 1};
    float x[2 * 64];
    fill_uniform(x, 2 * 64, 9);
    lt_outputs out;
    REQUIRE_OK(lt_model_forward_outputs(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), &out));
    CHECK_EQ_INT(out.n_branches, 3);
    for (int i = 0; i < 8; i++) {
        double mean = (out.branch_logits[0]->data[i] + out.branch_logits[1]->data[i] + out.branch_logits[2]->data[i]) / 3.0;
        CHECK_NEAR(out.logits->data[i], mean, 1e-5);
    }
    float z[8];
    memcpy(z, out.logits->data, sizeof z);
    lt_ctx_reset(ctx);
    lt_tensor *zf = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, x, 4, shape), NULL);
    REQUIRE(zf);
    CHECK(memcmp(zf->data, z, sizeof z) == 0);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    c.heads = LT_MAX_HEADS + 1;
    CHECK_EQ_INT(lt_model_init(&m, &c, 4), LT_ERR_ARG);
}
