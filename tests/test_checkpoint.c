/* Checkpoints: round trip, PyTorch names and layouts in the file (OIHW, I64 scalars), a
 * PyTorch state_dict (committed fixture) loading into longtail with the same logits,
 * optimizer state, and clear errors for truncated, lying or mismatched files. */
#include "test.h"
#include "longtail/checkpoint.h"
#include "longtail/nn.h"
#include "longtail/optim.h"

#include <stdio.h>
#include <string.h>

static lt_status tiny_model(lt_model *m, int classes, uint64_t seed) {
    lt_model_config c = lt_model_config_resnet(8, 3, 8, 8, classes);
    c.width = 0.25f;
    return lt_model_init(m, &c, seed);
}

/* Gives every buffer and counter a distinct value so a round trip really checks them. */
static void scramble_state(lt_model *m, uint64_t seed) {
    lt_rng r;
    lt_rng_init(&r, seed, LT_STREAM_TEST);
    for (int64_t i = 0; i < m->params.n_buffers; i++) m->params.buffers[i] = 0.5f + lt_rng_uniform(&r);
    for (int64_t i = 0; i < m->params.n_counters; i++) m->params.counters[i] = 3 + (int64_t)i;
}

static int same_state(const lt_model *a, const lt_model *b) {
    return a->params.n_data == b->params.n_data &&
           !memcmp(a->params.data, b->params.data, (size_t)a->params.n_data * sizeof(float)) &&
           !memcmp(a->params.buffers, b->params.buffers, (size_t)a->params.n_buffers * sizeof(float)) &&
           !memcmp(a->params.counters, b->params.counters, (size_t)a->params.n_counters * sizeof(int64_t));
}

static const char *tmp_path(const char *name) {
    static char buf[4][600];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 600, "%s/%s", lt_test_tmpdir(), name);
    return b;
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static char *read_bytes(const char *path, int64_t *n) {
    char *d;
    if (lt_file_read(path, 0, &d, n) != LT_OK) return NULL;
    return d;
}

TEST(checkpoint_round_trip_is_exact) {
    lt_model a, b;
    REQUIRE_OK(tiny_model(&a, 5, 1));
    scramble_state(&a, 7);
    REQUIRE_OK(tiny_model(&b, 5, 2));
    CHECK(!same_state(&a, &b));
    const char *path = tmp_path("model.safetensors");
    const char *meta[] = {"arch", "resnet8", "note", "round trip"};
    REQUIRE_OK(lt_checkpoint_save(path, &a.params, meta, 2));
    REQUIRE_OK(lt_checkpoint_load(path, &b.params));
    CHECK(same_state(&a, &b));
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    CHECK(lt_safetensors_metadata(st, "arch") && !strcmp(lt_safetensors_metadata(st, "arch"), "resnet8"));
    lt_safetensors_free(st);
    lt_model_free(&a);
    lt_model_free(&b);
}

TEST(checkpoint_file_has_pytorch_names_and_layouts) {
    lt_model m;
    REQUIRE_OK(tiny_model(&m, 3, 4));
    scramble_state(&m, 9);
    const char *path = tmp_path("layout.safetensors");
    REQUIRE_OK(lt_checkpoint_save(path, &m.params, NULL, 0));
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    /* Exactly the state_dict keys, nothing else. */
    CHECK_EQ_INT(lt_safetensors_count(st), m.params.count);
    /* conv weights OIHW: conv1 is (4, 3, 3, 3) in PyTorch, (4, 3, 3, 3) OHWI in memory
     * happens to look alike, so check a non-square one: layer2.0.conv1 (8, 4, 3, 3). */
    const lt_st_entry *e = lt_safetensors_find(st, "layer2.0.conv1.weight");
    REQUIRE(e != NULL);
    CHECK_EQ_INT(e->ndim, 4);
    CHECK_EQ_INT(e->shape[0], 8);
    CHECK_EQ_INT(e->shape[1], 4);
    CHECK_EQ_INT(e->shape[2], 3);
    CHECK_EQ_INT(e->shape[3], 3);
    CHECK(e->dtype == LT_DT_F32);
    /* element (o, i, kh, kw) of the file == element (o, kh, kw, i) in memory */
    const float *file = lt_safetensors_data(st, e);
    const lt_tensor *w = lt_params_tensor(&m.params, "layer2.0.conv1.weight");
    REQUIRE(w != NULL);
    int bad = 0;
    for (int o = 0; o < 8; o++)
        for (int i = 0; i < 4; i++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++)
                    bad += file[((o * 4 + i) * 3 + y) * 3 + x] != w->data[((o * 3 + y) * 3 + x) * 4 + i];
    CHECK_EQ_INT(bad, 0);
    /* num_batches_tracked: I64 scalar (shape ()), as PyTorch's 0-d tensor */
    e = lt_safetensors_find(st, "layer1.0.bn2.num_batches_tracked");
    REQUIRE(e != NULL);
    CHECK(e->dtype == LT_DT_I64);
    CHECK_EQ_INT(e->ndim, 0);
    int64_t v;
    memcpy(&v, lt_safetensors_data(st, e), sizeof v);
    CHECK_EQ_INT(v, *lt_params_find(&m.params, "layer1.0.bn2.num_batches_tracked")->counter);
    e = lt_safetensors_find(st, "fc.weight");
    REQUIRE(e != NULL);
    CHECK_EQ_INT(e->shape[0], 3);
    CHECK_EQ_INT(e->shape[1], 16);
    CHECK(lt_safetensors_find(st, "bn1.running_var") != NULL);
    lt_safetensors_free(st);
    lt_model_free(&m);
}

TEST(checkpoint_pytorch_state_dict_loads_with_same_logits) {
    lt_model m;
    REQUIRE_OK(tiny_model(&m, 2, 0));
    REQUIRE_OK(lt_checkpoint_load(lt_test_fixture("checkpoint_torch.safetensors"), &m.params));
    CHECK_EQ_INT(*lt_params_find(&m.params, "layer3.0.bn1.num_batches_tracked")->counter, 7);
    lt_safetensors *io;
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("checkpoint_io.safetensors"), &io));
    const float *x, *want;
    int64_t xs[4] = {2, 8, 8, 3}, ls[2] = {2, 2};
    REQUIRE_OK(lt_safetensors_get_f32(io, "x", 4, xs, &x));
    REQUIRE_OK(lt_safetensors_get_f32(io, "logits", 2, ls, &want));
    lt_ctx *ctx = lt_ctx_new();
    REQUIRE(ctx != NULL);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    lt_tensor *logits = lt_model_forward(ctx, &m, lt_tensor_wrap(ctx, (float *)x, 4, xs), NULL);
    REQUIRE(logits != NULL);
    CHECK_CLOSE("logits", logits->data, want, 4, 1e-5, 1e-4);
    /* and a longtail save of what was loaded is the same state_dict again */
    const char *path = tmp_path("resaved.safetensors");
    REQUIRE_OK(lt_checkpoint_save(path, &m.params, NULL, 0));
    lt_safetensors *a, *b;
    REQUIRE_OK(lt_safetensors_load(path, &a));
    REQUIRE_OK(lt_safetensors_load(lt_test_fixture("checkpoint_torch.safetensors"), &b));
    CHECK_EQ_INT(lt_safetensors_count(a), lt_safetensors_count(b));
    for (int64_t i = 0; i < lt_safetensors_count(b); i++) {
        const lt_st_entry *eb = lt_safetensors_entry(b, i), *ea = lt_safetensors_find(a, eb->name);
        if (!ea) { CHECK(ea != NULL); continue; }
        CHECK(ea->numel == eb->numel && ea->dtype == eb->dtype);
        if (ea->numel == eb->numel && ea->dtype == eb->dtype && memcmp(lt_safetensors_data(a, ea), lt_safetensors_data(b, eb), (size_t)ea->nbytes))
            lt_test_fail(__FILE__, __LINE__, "tensor %s differs after load + save", eb->name);
    }
    lt_safetensors_free(a);
    lt_safetensors_free(b);
    lt_safetensors_free(io);
    lt_ctx_free(ctx);
    lt_model_free(&m);
}

TEST(checkpoint_optimizer_and_prefixed_state_round_trip) {
    lt_model m;
    REQUIRE_OK(tiny_model(&m, 3, 5));
    lt_optim o;
    lt_optim_config oc = lt_optim_config_adam(1e-4f);
    REQUIRE_OK(lt_optim_init(&o, &m.params, &oc));
    lt_rng r;
    lt_rng_init(&r, 3, LT_STREAM_TEST);
    for (int64_t i = 0; i < o.n_state; i++) o.state[i] = lt_rng_normal(&r);
    for (int64_t i = 0; i < m.params.count; i++)
        if (m.params.items[i].kind == LT_PARAM_WEIGHT) o.steps[i] = 10 + i;   /* only weights have steps */
    lt_snapshot snap;
    REQUIRE_OK(lt_snapshot_init(&snap, &m.params));
    scramble_state(&m, 11);
    lt_snapshot_take(&snap, &m.params);
    snap.data[0] += 1.0f;   /* the "best" copy differs from the live model */

    lt_ckpt_writer *w;
    REQUIRE_OK(lt_ckpt_writer_new(&w));
    CHECK_OK(lt_ckpt_writer_add_params(w, &m.params, "", LT_CKPT_ALL, NULL, NULL, NULL));
    CHECK_OK(lt_ckpt_writer_add_optim(w, &o, ""));
    CHECK_OK(lt_ckpt_writer_add_params(w, &m.params, "best/", LT_CKPT_ALL, snap.data, snap.buffers, snap.counters));
    CHECK_OK(lt_ckpt_writer_add_meta(w, "progress", "{}"));
    const char *path = tmp_path("resume.safetensors");
    REQUIRE_OK(lt_ckpt_writer_commit(w, path));

    lt_model m2;
    REQUIRE_OK(tiny_model(&m2, 3, 6));
    lt_optim o2;
    REQUIRE_OK(lt_optim_init(&o2, &m2.params, &oc));
    lt_snapshot snap2;
    REQUIRE_OK(lt_snapshot_init(&snap2, &m2.params));
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    /* strict model loading ignores the optimizer/ and best/ namespaces */
    REQUIRE_OK(lt_ckpt_read_params(st, &m2.params, "", LT_CKPT_ALL, 1, NULL, NULL, NULL));
    REQUIRE_OK(lt_ckpt_read_optim(st, &o2, ""));
    REQUIRE_OK(lt_ckpt_read_params(st, &m2.params, "best/", LT_CKPT_ALL, 0, snap2.data, snap2.buffers, snap2.counters));
    CHECK(same_state(&m, &m2));
    CHECK(!memcmp(o.state, o2.state, (size_t)o.n_state * sizeof(float)));
    CHECK(!memcmp(o.steps, o2.steps, (size_t)m.params.count * sizeof(int64_t)));
    CHECK(!memcmp(snap.data, snap2.data, (size_t)snap.n_data * sizeof(float)));
    CHECK(!memcmp(snap.counters, snap2.counters, (size_t)snap.n_counters * sizeof(int64_t)));
    /* an SGD optimizer refuses Adam state */
    lt_optim o3;
    lt_optim_config sgd = lt_optim_config_sgd(0.9f, 0.0f, 0);
    REQUIRE_OK(lt_optim_init(&o3, &m2.params, &sgd));
    CHECK(lt_ckpt_read_optim(st, &o3, "") == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "adam") != NULL);
    lt_optim_free(&o3);
    /* no state under another role's prefix */
    CHECK(lt_ckpt_read_optim(st, &o2, "role.x/") == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "role.x/optimizer state is for '(none)'") != NULL);
    lt_safetensors_free(st);
    /* a role's state under its prefix reads back there, and only there */
    REQUIRE_OK(lt_ckpt_writer_new(&w));
    CHECK_OK(lt_ckpt_writer_add_optim(w, &o, "role.x/"));
    REQUIRE_OK(lt_ckpt_writer_commit(w, path));
    REQUIRE_OK(lt_safetensors_load(path, &st));
    CHECK(lt_safetensors_find(st, "role.x/optimizer/step/fc.weight") != NULL);
    lt_optim o4;
    REQUIRE_OK(lt_optim_init(&o4, &m2.params, &oc));
    CHECK_OK(lt_ckpt_read_optim(st, &o4, "role.x/"));
    CHECK(!memcmp(o.state, o4.state, (size_t)o.n_state * sizeof(float)));
    CHECK(!memcmp(o.steps, o4.steps, (size_t)m.params.count * sizeof(int64_t)));
    CHECK(lt_ckpt_read_optim(st, &o4, "") == LT_ERR_FORMAT);
    lt_optim_free(&o4);
    lt_safetensors_free(st);
    lt_snapshot_free(&snap);
    lt_snapshot_free(&snap2);
    lt_optim_free(&o);
    lt_optim_free(&o2);
    lt_model_free(&m);
    lt_model_free(&m2);
}

TEST(checkpoint_mismatches_name_the_tensor) {
    lt_model m3, m2;
    REQUIRE_OK(tiny_model(&m3, 3, 1));
    REQUIRE_OK(tiny_model(&m2, 2, 1));
    const char *path = tmp_path("three.safetensors");
    REQUIRE_OK(lt_checkpoint_save(path, &m3.params, NULL, 0));
    lt_model before;
    REQUIRE_OK(tiny_model(&before, 2, 1));
    /* wrong class count: fc.weight (3, 16) vs (2, 16); nothing is written */
    lt_status s = lt_checkpoint_load(path, &m2.params);
    CHECK(s == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "fc.") != NULL);
    CHECK(strstr(lt_last_error(), "three.safetensors") != NULL);
    CHECK(same_state(&m2, &before));

    /* a missing tensor and an unexpected one */
    float one = 1.0f;
    int64_t shp[1] = {1};
    lt_st_tensor t[1] = {{"conv1.weight", LT_DT_F32, 1, {1}, &one}};
    (void)shp;
    const char *p2 = tmp_path("partial.safetensors");
    REQUIRE_OK(lt_safetensors_save(p2, t, 1, NULL, 0));
    s = lt_checkpoint_load(p2, &m2.params);
    CHECK(s == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "conv1.weight") != NULL);

    lt_ckpt_writer *w;
    REQUIRE_OK(lt_ckpt_writer_new(&w));
    CHECK_OK(lt_ckpt_writer_add_params(w, &m2.params, "", LT_CKPT_ALL, NULL, NULL, NULL));
    CHECK_OK(lt_ckpt_writer_add_tensor(w, "extra.weight", LT_DT_F32, 1, shp, &one));
    const char *p3 = tmp_path("extra.safetensors");
    REQUIRE_OK(lt_ckpt_writer_commit(w, p3));
    s = lt_checkpoint_load(p3, &m2.params);
    CHECK(s == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "unexpected") && strstr(lt_last_error(), "extra.weight"));

    /* a float tensor stored as F64 */
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    int64_t n = lt_safetensors_count(st);
    lt_st_tensor *all = lt_calloc((size_t)n, sizeof *all);
    double *d = NULL;
    REQUIRE(all != NULL);
    for (int64_t i = 0; i < n; i++) {
        const lt_st_entry *e = lt_safetensors_entry(st, i);
        all[i].name = e->name;
        all[i].dtype = e->dtype;
        all[i].ndim = e->ndim;
        memcpy(all[i].shape, e->shape, sizeof e->shape);
        all[i].data = lt_safetensors_data(st, e);
        if (!strcmp(e->name, "bn1.weight")) {
            d = lt_calloc((size_t)e->numel, sizeof *d);
            all[i].dtype = LT_DT_F64;
            all[i].data = d;
        }
    }
    const char *p4 = tmp_path("f64.safetensors");
    REQUIRE_OK(lt_safetensors_save(p4, all, n, NULL, 0));
    s = lt_checkpoint_load(p4, &m3.params);
    CHECK(s == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "bn1.weight") && strstr(lt_last_error(), "F64"));
    lt_free(d);
    lt_free(all);
    lt_safetensors_free(st);
    lt_model_free(&m3);
    lt_model_free(&m2);
    lt_model_free(&before);
}

TEST(checkpoint_truncated_or_lying_headers_are_clear_errors) {
    lt_model m;
    REQUIRE_OK(tiny_model(&m, 2, 3));
    const char *path = tmp_path("good.safetensors");
    REQUIRE_OK(lt_checkpoint_save(path, &m.params, NULL, 0));
    int64_t n;
    char *bytes = read_bytes(path, &n);
    REQUIRE(bytes != NULL && n > 64);
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++) hlen |= (uint64_t)(unsigned char)bytes[k] << (8 * k);
    lt_model keep;
    REQUIRE_OK(tiny_model(&keep, 2, 9));
    lt_model m2;
    REQUIRE_OK(tiny_model(&m2, 2, 9));

    const char *bad = tmp_path("bad.safetensors");
    /* 1. truncated in the data section, in the header, in the length */
    int64_t cuts[3] = {n - 4, 8 + (int64_t)hlen / 2, 5};
    for (int c = 0; c < 3; c++) {
        REQUIRE(write_bytes(bad, bytes, (size_t)cuts[c]));
        lt_status s = lt_checkpoint_load(bad, &m2.params);
        CHECK(s == LT_ERR_FORMAT);
        CHECK(strstr(lt_last_error(), "bad.safetensors") != NULL);
        CHECK(same_state(&m2, &keep));
    }
    /* 2. a header length larger than the file */
    char *lie = lt_malloc((size_t)n);
    REQUIRE(lie != NULL);
    memcpy(lie, bytes, (size_t)n);
    uint64_t huge = (uint64_t)n * 4;
    for (int k = 0; k < 8; k++) lie[k] = (char)(huge >> (8 * k));
    REQUIRE(write_bytes(bad, lie, (size_t)n));
    CHECK(lt_checkpoint_load(bad, &m2.params) == LT_ERR_FORMAT);
    CHECK(same_state(&m2, &keep));
    /* 3. data_offsets that claim more bytes than the shape needs: rewrite the first
     * "data_offsets":[0,N] end offset digits to a larger number of the same width */
    memcpy(lie, bytes, (size_t)n);
    char *hdr = lie + 8;
    char *p = strstr(hdr, "\"data_offsets\":[0,");
    REQUIRE(p != NULL && p < hdr + hlen);
    p += strlen("\"data_offsets\":[0,");
    REQUIRE(*p >= '1' && *p <= '8');
    (*p)++;   /* e.g. 16 -> 26: the tensor now claims bytes that belong to the next one */
    REQUIRE(write_bytes(bad, lie, (size_t)n));
    lt_status s = lt_checkpoint_load(bad, &m2.params);
    CHECK(s == LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "bad.safetensors") != NULL);
    CHECK(same_state(&m2, &keep));
    /* 4. a shape that lies about the data: bn1.weight (4,) claimed as (5,) */
    memcpy(lie, bytes, (size_t)n);
    p = strstr(hdr, "\"bn1.weight\":{\"dtype\":\"F32\",\"shape\":[4]");
    REQUIRE(p != NULL);
    p = strstr(p, "[4]");
    p[1] = '5';
    REQUIRE(write_bytes(bad, lie, (size_t)n));
    CHECK(lt_checkpoint_load(bad, &m2.params) == LT_ERR_FORMAT);
    CHECK(same_state(&m2, &keep));
    /* 5. not a file at all */
    CHECK(lt_checkpoint_load(tmp_path("missing.safetensors"), &m2.params) == LT_ERR_IO);
    lt_free(lie);
    lt_free(bytes);
    lt_model_free(&m);
    lt_model_free(&m2);
    lt_model_free(&keep);
}
