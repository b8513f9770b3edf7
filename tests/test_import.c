/* Importing torchvision weights: a torchvision-named state_dict (safetensors) loads into
 * longtail's resnet18 / resnet50 through the import path of `model.init` (lt_ckpt_import,
 * strict), and the logits equal PyTorch's in evaluation and in training mode.
 *
 * The weights are not shipped: tests/fixtures/fx_torchvision.py sets every state_dict
 * entry by a formula of (name, flat index) that this file recomputes (see that script for
 * the formula); the fixture holds the input, PyTorch's logits and bn1's statistics after
 * the train-mode forward. */
#include "longtail/checkpoint.h"
#include "longtail/longtail.h"
#include "test.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double formula_u(uint64_t base, int64_t i) {
    return (double)(splitmix64(base + (uint64_t)i) >> 40) / (double)(1 << 23) - 1.0;
}

/* The value of entry `name` (PyTorch shape shape[0..ndim)) at flat index i. */
static float formula(const char *name, int ndim, const int64_t *shape, int64_t numel, int64_t fc_in, uint64_t base,
                     int64_t i) {
    double u = formula_u(base, i);
    size_t n = strlen(name);
#define ENDS(s) (n >= sizeof(s) - 1 && strcmp(name + n - (sizeof(s) - 1), s) == 0)
    if (ENDS("running_mean")) return (float)(u / 4);
    if (ENDS("running_var")) return (float)(1 + (u + 1) / 2);
    if (ndim == 1 && ENDS(".weight")) return (float)(1 + u / 4);
    if (ndim == 1 && ENDS(".bias") && strcmp(name, "fc.bias") != 0) return (float)(u / 4);
#undef ENDS
    int64_t fan_in = strcmp(name, "fc.bias") == 0 ? fc_in : numel / shape[0];
    return (float)(u * pow(2.0, -floor(log2(sqrt((double)fan_in)) + 0.5)));
}

/* Writes the formula's state_dict for the parameters of m (torchvision names, PyTorch
 * layout) to path; `rename` (NULL: none) = {old, new} renames one entry, `reshape_fc`
 * writes fc.weight with one row too many. */
static void write_state_dict(const lt_model *m, const char *path, const char *const *rename, int reshape_fc) {
    lt_ckpt_writer *w;
    REQUIRE_OK(lt_ckpt_writer_new(&w));
    const lt_params *p = &m->params;
    int64_t fc_in = lt_params_find((lt_params *)p, "fc.weight")->t.shape[1];
    for (int64_t k = 0; k < p->count; k++) {
        const lt_param *pe = &p->items[k];
        const char *name = pe->t.name;
        if (rename && !strcmp(name, rename[0])) name = rename[1];
        if (pe->kind == LT_PARAM_COUNTER) {
            int64_t zero = 0;
            REQUIRE_OK(lt_ckpt_writer_add_tensor(w, name, LT_DT_I64, 0, NULL, &zero));
            continue;
        }
        const lt_tensor *t = &pe->t;
        int64_t shape[4];
        int ndim = t->ndim;
        if (ndim == 4) {   /* longtail OHWI -> PyTorch OIHW */
            shape[0] = t->shape[0], shape[1] = t->shape[3], shape[2] = t->shape[1], shape[3] = t->shape[2];
        } else {
            for (int d = 0; d < ndim; d++) shape[d] = t->shape[d];
        }
        int64_t numel = t->numel;
        if (reshape_fc && !strcmp(pe->t.name, "fc.weight")) {
            shape[0] += 1;
            numel += shape[1];
        }
        float *v = malloc((size_t)numel * sizeof *v);
        REQUIRE(v);
        uint64_t base = fnv1a64(pe->t.name);
        for (int64_t i = 0; i < numel; i++) v[i] = formula(pe->t.name, ndim, shape, numel, fc_in, base, i);
        REQUIRE_OK(lt_ckpt_writer_add_tensor(w, name, LT_DT_F32, ndim, shape, v));
        free(v);
    }
    REQUIRE_OK(lt_ckpt_writer_commit(w, path));
}

static lt_model_config tv_config(const char *arch, float width) {
    lt_model_config c = lt_model_config_resnet(8, 3, 64, 64, 10);
    lt_status s = lt_arch_parse(arch, &c);
    if (s) lt_test_fail(__FILE__, __LINE__, "%s: %s", arch, lt_last_error());
    c.width = width;
    return c;
}

static const float *fixture(const lt_safetensors *st, const char *name, int64_t numel) {
    const lt_st_entry *e = lt_safetensors_find(st, name);
    if (!e || e->dtype != LT_DT_F32 || e->numel != numel) {
        lt_test_fail(__FILE__, __LINE__, "fixture %s missing or not %lld F32 values", name, (long long)numel);
        return NULL;
    }
    return lt_safetensors_data(st, e);
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static void compare(const char *what, const float *got, const float *want, int64_t n) {
    double tol = 1e-3 * fmax(1.0, max_abs(want, n)), worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - (double)want[i]));
    if (!(worst <= tol)) lt_test_fail(__FILE__, __LINE__, "%s: max |longtail - PyTorch| = %g > %g", what, worst, tol);
}

static void import_and_compare(const char *arch) {
    lt_safetensors *fx = NULL;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("torchvision.safetensors"), &fx));
    char dir[] = "/tmp/lt-import-XXXXXX", path[256], key[64];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, arch);

    lt_model_config c = tv_config(arch, 1.0f);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 3));
    snprintf(key, sizeof key, "%s.num_params", arch);
    const lt_st_entry *np = lt_safetensors_find(fx, key);
    REQUIRE(np && np->dtype == LT_DT_I64);
    CHECK_EQ_INT(lt_model_num_params(&m), *(const int64_t *)lt_safetensors_data(fx, np));

    write_state_dict(&m, path, NULL, 0);
    lt_model_free(&m);
    REQUIRE_OK(lt_model_init(&m, &c, 4));   /* other weights: the import must replace them all */
    lt_safetensors *sd = NULL;
    REQUIRE_OK(lt_safetensors_load(path, &sd));
    lt_ckpt_import_report rep;
    lt_status s = lt_ckpt_import(sd, &m.params, 1, &rep);
    lt_safetensors_free(sd);
    unlink(path);
    rmdir(dir);
    if (s) {
        lt_test_fail(__FILE__, __LINE__, "%s: import: %s", arch, lt_last_error());
        lt_model_free(&m);
        lt_safetensors_free(fx);
        return;
    }
    CHECK_EQ_INT(rep.loaded, m.params.count);
    const float *x = fixture(fx, "x", 2 * 64 * 64 * 3);
    REQUIRE(x);
    int64_t shape[4] = {2, 64, 64, 3};
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx);
    lt_ctx_set_grad(ctx, 0);
    for (int train = 0; train < 2; train++) {
        lt_ctx_reset(ctx);
        lt_ctx_set_training(ctx, train);
        lt_tensor *z = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, (float *)x, 4, shape), NULL);
        if (!z) {
            lt_test_fail(__FILE__, __LINE__, "%s forward: %s", arch, lt_ctx_error(ctx));
            break;
        }
        snprintf(key, sizeof key, "%s.%s_logits", arch, train ? "train" : "eval");
        const float *want = fixture(fx, key, 20);
        if (want) compare(key, z->data, want, 20);
    }
    /* the train-mode forward moved bn1's running statistics as PyTorch's did (momentum 0.1) */
    lt_tensor *rm = lt_params_tensor(&m.params, "bn1.running_mean"), *rv = lt_params_tensor(&m.params, "bn1.running_var");
    snprintf(key, sizeof key, "%s.bn1_running_mean", arch);
    const float *want = fixture(fx, key, rm->numel);
    if (want) compare(key, rm->data, want, rm->numel);
    snprintf(key, sizeof key, "%s.bn1_running_var", arch);
    want = fixture(fx, key, rv->numel);
    if (want) compare(key, rv->data, want, rv->numel);
    lt_ctx_free(ctx);
    lt_model_free(&m);
    lt_safetensors_free(fx);
}

TEST(import_torchvision_resnet18) { import_and_compare("resnet18"); }

TEST(import_torchvision_resnet50) { import_and_compare("resnet50"); }

/* A state_dict whose names or shapes do not match: strict import is an error naming the
 * tensor (and both shapes), and changes nothing; not strict, it loads what matches and
 * reports the rest. A narrow resnet18 keeps the test fast; its names are torchvision's. */
static void check_mismatch(const char *const *rename, int reshape_fc) {
    char dir[] = "/tmp/lt-import-XXXXXX", path[256];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sd.safetensors", dir);
    lt_model_config c = tv_config("resnet18", 0.125f);
    lt_model m;
    REQUIRE_OK(lt_model_init(&m, &c, 3));
    write_state_dict(&m, path, rename, reshape_fc);
    float *before = malloc((size_t)m.params.n_data * sizeof *before);
    REQUIRE(before);
    memcpy(before, m.params.data, (size_t)m.params.n_data * sizeof *before);
    lt_safetensors *sd = NULL;
    REQUIRE_OK(lt_safetensors_load(path, &sd));
    lt_ckpt_import_report rep;
    CHECK_EQ_INT(lt_ckpt_import(sd, &m.params, 1, &rep), LT_ERR_FORMAT);
    const char *e = lt_last_error();
    if (rename) {
        CHECK(strstr(e, rename[0]) != NULL || strstr(e, rename[1]) != NULL);
    } else {
        CHECK(strstr(e, "fc.weight") && strstr(e, "(11, 64)") && strstr(e, "(10, 64)"));
    }
    CHECK(memcmp(before, m.params.data, (size_t)m.params.n_data * sizeof *before) == 0);
    /* not strict: everything else loads */
    CHECK_OK(lt_ckpt_import(sd, &m.params, 0, &rep));
    CHECK(memcmp(before, m.params.data, (size_t)m.params.n_data * sizeof *before) != 0);
    if (rename) {
        CHECK_EQ_INT(rep.n_missing, 1);
        CHECK_EQ_INT(rep.n_unexpected, 1);
        CHECK(strcmp(rep.missing, rename[0]) == 0 && strcmp(rep.unexpected, rename[1]) == 0);
        CHECK_EQ_INT(rep.loaded, m.params.count - 1);
        /* the missing tensor kept its initialized values */
        const lt_param *pe = lt_params_find(&m.params, rename[0]);
        CHECK(memcmp(before + pe->offset, pe->t.data, (size_t)pe->t.numel * sizeof(float)) == 0);
    } else {
        CHECK_EQ_INT(rep.n_mismatched, 1);
        CHECK(strcmp(rep.mismatched, "fc.weight") == 0);
        CHECK_EQ_INT(rep.loaded, m.params.count - 1);
    }
    lt_safetensors_free(sd);
    free(before);
    lt_model_free(&m);
    unlink(path);
    rmdir(dir);
}

TEST(import_rejects_renamed_tensor) {
    static const char *const rename[2] = {"layer2.0.downsample.0.weight", "layer2.0.shortcut.0.weight"};
    check_mismatch(rename, 0);
}

TEST(import_rejects_wrong_shape) { check_mismatch(NULL, 1); }
