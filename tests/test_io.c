/* Tests of src/io: safetensors reading/writing (round trips, interop bytes, every kind of
 * corrupt file), JSON parsing and writing, atomic files, recipe INI configs. */
#include "test.h"
#include "longtail/io.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ---- */

static const char *tmp_path(const char *dir, const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    LT_ASSERT(f);
    LT_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static char *read_all(const char *path, int64_t *n) {
    char *d;
    if (lt_file_read(path, 0, &d, n)) return NULL;
    return d;
}

/* A safetensors file from a header string (length field = strlen(header)) and data. */
static void write_st(const char *path, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + n + 1);
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(buf + 8, header, h);
    if (n) memcpy(buf + 8 + h, data, n);
    write_bytes(path, buf, 8 + h + n);
    free(buf);
}

/* Loading must fail with `code` and a message containing the file name and `needle`. */
#define CHECK_LOAD_FAILS(path, code, needle)                                                \
    do {                                                                                    \
        lt_safetensors *st_ = (lt_safetensors *)1;                                          \
        lt_status s_ = lt_safetensors_load(path, &st_);                                     \
        CHECK_EQ_INT(s_, code);                                                             \
        CHECK(st_ == NULL);                                                                 \
        if (!strstr(lt_last_error(), needle) || !strstr(lt_last_error(), path))             \
            lt_test_fail(__FILE__, __LINE__, "message '%s' lacks '%s' or the path",         \
                         lt_last_error(), needle);                                          \
        if (s_ == LT_OK) lt_safetensors_free(st_);                                          \
    } while (0)

/* ======================================================================================
 * safetensors
 * ====================================================================================== */

/* Bytes written by tests/fixtures/fx_common.py's save(): counts I64 [5,-3,7], labels I32
 * [[1,2]], layer1.0.conv1.weight F32 (2,3) = arange(6)*0.5-1, metadata arch=resnet32,
 * epoch=3 (metadata last, header padded with spaces). */
static const unsigned char fx_common_bytes[] = {
    0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0x73,
    0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x36, 0x34, 0x22,
    0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x32,
    0x34, 0x5d, 0x7d, 0x2c, 0x22, 0x6c, 0x61, 0x62, 0x65, 0x6c, 0x73, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61,
    0x70, 0x65, 0x22, 0x3a, 0x5b, 0x31, 0x2c, 0x32, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f,
    0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c, 0x33, 0x32, 0x5d,
    0x7d, 0x2c, 0x22, 0x6c, 0x61, 0x79, 0x65, 0x72, 0x31, 0x2e, 0x30, 0x2e, 0x63, 0x6f, 0x6e, 0x76,
    0x31, 0x2e, 0x77, 0x65, 0x69, 0x67, 0x68, 0x74, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70,
    0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22,
    0x3a, 0x5b, 0x32, 0x2c, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66,
    0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x33, 0x32, 0x2c, 0x35, 0x36, 0x5d, 0x7d, 0x2c, 0x22,
    0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x7b, 0x22,
    0x61, 0x72, 0x63, 0x68, 0x22, 0x3a, 0x22, 0x72, 0x65, 0x73, 0x6e, 0x65, 0x74, 0x33, 0x32, 0x22,
    0x2c, 0x22, 0x65, 0x70, 0x6f, 0x63, 0x68, 0x22, 0x3a, 0x22, 0x33, 0x22, 0x7d, 0x7d, 0x20, 0x20,
    0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f,
};

TEST(io_safetensors_reads_fx_common_file) {
    const char *path = tmp_path(lt_test_tmpdir(), "fx.safetensors");
    write_bytes(path, fx_common_bytes, sizeof fx_common_bytes);
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    CHECK_EQ_INT(lt_safetensors_count(st), 3);
    const float *w;
    CHECK_OK(lt_safetensors_get_f32(st, "layer1.0.conv1.weight", 2, (int64_t[]){2, 3}, &w));
    if (w) {
        const float want[6] = {-1, -0.5f, 0, 0.5f, 1, 1.5f};
        CHECK_CLOSE("weight", w, want, 6, 0, 0);
        CHECK_EQ_INT((uintptr_t)w % 64, 0);
    }
    const void *c;
    CHECK_OK(lt_safetensors_get(st, "counts", LT_DT_I64, 1, (int64_t[]){3}, &c));
    if (c) { CHECK_EQ_INT(((const int64_t *)c)[1], -3); CHECK_EQ_INT(((const int64_t *)c)[2], 7); }
    const lt_st_entry *e = lt_safetensors_find(st, "labels");
    REQUIRE(e);
    CHECK_EQ_INT(e->dtype, LT_DT_I32);
    CHECK_EQ_INT(e->ndim, 2);
    CHECK_EQ_INT(e->shape[1], 2);
    CHECK_EQ_INT(e->offset, 24);
    CHECK_EQ_INT(e->nbytes, 8);
    CHECK_EQ_INT(((const int32_t *)lt_safetensors_data(st, e))[1], 2);
    CHECK(lt_safetensors_find(st, "nope") == NULL);
    /* entries are sorted by name */
    CHECK(!strcmp(lt_safetensors_entry(st, 0)->name, "counts"));
    CHECK(!strcmp(lt_safetensors_entry(st, 2)->name, "layer1.0.conv1.weight"));
    CHECK(lt_safetensors_entry(st, 3) == NULL);
    CHECK(lt_safetensors_metadata(st, "arch") && !strcmp(lt_safetensors_metadata(st, "arch"), "resnet32"));
    CHECK(lt_safetensors_metadata(st, "epoch") && !strcmp(lt_safetensors_metadata(st, "epoch"), "3"));
    CHECK(lt_safetensors_metadata(st, "missing") == NULL);
    CHECK_EQ_INT(lt_safetensors_metadata_count(st), 2);
    lt_safetensors_free(st);
}

/* The layout of Hugging Face's safetensors library: __metadata__ first, tensors ordered by
 * dtype alignment then name, so a 3-byte U8 tensor can put an F32 tensor at an odd file
 * offset; our copy must still be aligned. Also a scalar, an empty tensor and BF16. */
TEST(io_safetensors_reads_hf_layout_unaligned_scalar_empty) {
    const char *path = tmp_path(lt_test_tmpdir(), "hf.safetensors");
    const char *h =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"mask\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]},"
        "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[11,19]},"
        "\"none\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[19,19]},"
        "\"h\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[19,21]}}   ";
    unsigned char data[21] = {1, 0, 255};
    float wv[2] = {3.25f, -7.5f};
    int64_t step = 123456789012345LL;
    memcpy(data + 3, wv, 8);
    memcpy(data + 11, &step, 8);
    data[19] = 0x80; data[20] = 0x3f;   /* bf16 1.0 */
    write_st(path, h, data, sizeof data);
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    CHECK_EQ_INT(lt_safetensors_count(st), 5);
    const float *w;
    CHECK_OK(lt_safetensors_get_f32(st, "w", 1, (int64_t[]){2}, &w));
    if (w) { CHECK_EQ_INT((uintptr_t)w % 64, 0); CHECK(w[0] == 3.25f && w[1] == -7.5f); }
    const lt_st_entry *e = lt_safetensors_find(st, "step");
    REQUIRE(e);
    CHECK_EQ_INT(e->ndim, 0);
    CHECK_EQ_INT(e->numel, 1);
    CHECK_EQ_INT(*(const int64_t *)lt_safetensors_data(st, e), step);
    e = lt_safetensors_find(st, "none");
    REQUIRE(e);
    CHECK_EQ_INT(e->numel, 0);
    CHECK_EQ_INT(e->shape[0], 0);
    e = lt_safetensors_find(st, "mask");
    REQUIRE(e);
    CHECK_EQ_INT(((const uint8_t *)lt_safetensors_data(st, e))[2], 255);
    CHECK(lt_safetensors_metadata(st, "format") && !strcmp(lt_safetensors_metadata(st, "format"), "pt"));
    lt_safetensors_free(st);
}

TEST(io_safetensors_roundtrip) {
    const char *dir = lt_test_tmpdir(), *path = tmp_path(dir, "ck.safetensors");
    float fc[6] = {1.5f, -2, 3.25e-8f, 0, -0.0f, 1e30f};
    int64_t cnt[4] = {6000, 3596, -1, INT64_MAX};
    uint8_t flags[5] = {1, 2, 3, 4, 5};
    double sc = 3.141592653589793;
    lt_st_tensor t[] = {
        {"fc.weight", LT_DT_F32, 2, {3, 2}, fc},
        {"class_counts", LT_DT_I64, 1, {4}, cnt},
        {"flags", LT_DT_U8, 1, {5}, flags},
        {"scalar", LT_DT_F64, 0, {0}, &sc},
        {"empty", LT_DT_F32, 2, {0, 7}, NULL},
    };
    const char *meta[] = {"arch", "resnet32", "note", "quote \" back\\slash \n newline é"};
    REQUIRE_OK(lt_safetensors_save(path, t, 5, meta, 2));
    CHECK(!lt_path_exists(tmp_path(dir, "ck.safetensors.tmp")));

    /* On disk: header length a multiple of 8, tensors back to back in name order. */
    int64_t n;
    char *raw = read_all(path, &n);
    REQUIRE(raw);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | (unsigned char)raw[k];
    CHECK_EQ_INT(hlen % 8, 0);
    CHECK_EQ_INT(n, 8 + (int64_t)hlen + 24 + 32 + 0 + 5 + 8);
    lt_free(raw);

    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    CHECK_EQ_INT(lt_safetensors_count(st), 5);
    const char *order[] = {"class_counts", "empty", "fc.weight", "flags", "scalar"};
    int64_t off = 0;
    for (int i = 0; i < 5; i++) {
        const lt_st_entry *e = lt_safetensors_entry(st, i);
        CHECK(!strcmp(e->name, order[i]));
        CHECK_EQ_INT(e->offset, off);   /* sorted name order, contiguous */
        off += e->nbytes;
    }
    const float *w;
    CHECK_OK(lt_safetensors_get_f32(st, "fc.weight", 2, (int64_t[]){3, 2}, &w));
    if (w) CHECK(!memcmp(w, fc, sizeof fc));
    const void *p;
    CHECK_OK(lt_safetensors_get(st, "class_counts", LT_DT_I64, 1, (int64_t[]){4}, &p));
    if (p) CHECK(!memcmp(p, cnt, sizeof cnt));
    CHECK_OK(lt_safetensors_get(st, "flags", LT_DT_U8, 1, NULL, &p));
    if (p) CHECK(!memcmp(p, flags, 5));
    CHECK_OK(lt_safetensors_get(st, "scalar", LT_DT_F64, 0, NULL, &p));
    if (p) CHECK(*(const double *)p == sc);
    CHECK_OK(lt_safetensors_get_f32(st, "empty", 2, (int64_t[]){0, 7}, &w));
    CHECK(lt_safetensors_metadata(st, "note") && !strcmp(lt_safetensors_metadata(st, "note"), meta[3]));
    CHECK(lt_safetensors_metadata(st, "arch") && !strcmp(lt_safetensors_metadata(st, "arch"), "resnet32"));

    /* Saving what was loaded gives the same bytes. */
    lt_st_tensor back[5];
    for (int i = 0; i < 5; i++) {
        const lt_st_entry *e = lt_safetensors_entry(st, i);
        back[i] = (lt_st_tensor){e->name, e->dtype, e->ndim, {0}, lt_safetensors_data(st, e)};
        memcpy(back[i].shape, e->shape, sizeof e->shape);
    }
    const char *path2 = tmp_path(dir, "ck2.safetensors");
    CHECK_OK(lt_safetensors_save(path2, back, 5, meta, 2));
    int64_t n1, n2;
    char *a = read_all(path, &n1), *b = read_all(path2, &n2);
    CHECK(a && b && n1 == n2 && !memcmp(a, b, (size_t)n1));
    lt_free(a);
    lt_free(b);
    lt_safetensors_free(st);
}

TEST(io_safetensors_get_errors_name_expected_and_got) {
    const char *path = tmp_path(lt_test_tmpdir(), "g.safetensors");
    float d[6] = {0};
    lt_st_tensor t = {"fc.weight", LT_DT_F32, 2, {2, 3}, d};
    REQUIRE_OK(lt_safetensors_save(path, &t, 1, NULL, 0));
    lt_safetensors *st;
    REQUIRE_OK(lt_safetensors_load(path, &st));
    const float *w = (const float *)1;
    CHECK_EQ_INT(lt_safetensors_get_f32(st, "fc.weight", 2, (int64_t[]){2, 4}, &w), LT_ERR_FORMAT);
    CHECK(w == NULL);
    CHECK(strstr(lt_last_error(), "expected shape (2, 4), got (2, 3)") && strstr(lt_last_error(), "fc.weight") &&
          strstr(lt_last_error(), path));
    CHECK_EQ_INT(lt_safetensors_get_f32(st, "fc.weight", 1, (int64_t[]){6}, &w), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "expected shape (6,), got (2, 3)"));
    const void *p;
    CHECK_EQ_INT(lt_safetensors_get(st, "fc.weight", LT_DT_I64, 2, NULL, &p), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "expected dtype I64, got F32"));
    CHECK_EQ_INT(lt_safetensors_get_f32(st, "fc.bias", 1, NULL, &w), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "no tensor named 'fc.bias'"));
    CHECK_OK(lt_safetensors_get_f32(st, "fc.weight", 0, NULL, &w));   /* NULL shape: any */
    lt_safetensors_free(st);
}

TEST(io_safetensors_save_rejects_bad_tensors_and_keeps_old_file) {
    const char *dir = lt_test_tmpdir(), *path = tmp_path(dir, "keep.safetensors");
    write_bytes(path, "old", 3);
    float d[4] = {0};
    struct { lt_st_tensor t[2]; int n; const char *needle; } cases[] = {
        {{{"a", LT_DT_F32, 1, {4}, d}, {"a", LT_DT_F32, 1, {4}, d}}, 2, "duplicate tensor name 'a'"},
        {{{"a", LT_DT_F32, 1, {-4}, d}}, 1, "negative or overflowing"},
        {{{"a", LT_DT_F32, 2, {INT64_MAX / 2, 3}, d}}, 1, "negative or overflowing"},
        {{{"a", LT_DT_F32, 9, {1}, d}}, 1, "ndim 9"},
        {{{"a", (lt_dtype)99, 1, {4}, d}}, 1, "invalid dtype"},
        {{{"a", LT_DT_F32, 1, {4}, NULL}}, 1, "no data"},
        {{{"", LT_DT_F32, 1, {4}, d}}, 1, "empty or reserved"},
        {{{"__metadata__", LT_DT_F32, 1, {4}, d}}, 1, "empty or reserved"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(lt_safetensors_save(path, cases[i].t, cases[i].n, NULL, 0), LT_ERR_ARG);
        if (!strstr(lt_last_error(), cases[i].needle))
            lt_test_fail(__FILE__, __LINE__, "case %zu: '%s' lacks '%s'", i, lt_last_error(), cases[i].needle);
    }
    lt_st_tensor ok = {"a", LT_DT_F32, 1, {4}, d};
    const char *dup_meta[] = {"k", "1", "k", "2"};
    CHECK_EQ_INT(lt_safetensors_save(path, &ok, 1, dup_meta, 2), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "duplicate metadata key 'k'"));
    int64_t n;
    char *raw = read_all(path, &n);
    CHECK(raw && n == 3 && !memcmp(raw, "old", 3));
    lt_free(raw);
    CHECK(!lt_path_exists(tmp_path(dir, "keep.safetensors.tmp")));
    CHECK_EQ_INT(lt_safetensors_save(tmp_path(dir, "no/such/dir.safetensors"), &ok, 1, NULL, 0), LT_ERR_IO);
}

TEST(io_safetensors_rejects_corrupt_headers) {
    const char *dir = lt_test_tmpdir();
    /* extra: bytes of the header past its first NUL (the embedded-NUL case) */
    static const struct { const char *header; int data_n; const char *needle; int extra; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "expected a string key", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "expected ',' or '}'", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "end of text", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\0  ", 8, "got byte 0x00", 3},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8, "data_offsets[1] is not", 0},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype \"F33\"", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "run past the data section (8 bytes)", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12, "hold 8 bytes, dtype F32 shape (3,) needs 12", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before they begin", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets[0] is not", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets must be [begin, end]", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0] is not a non-negative", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "shape[0] is not a non-negative", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "overflows", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, "shape[0] is not", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "9 dims", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "unknown field \"x\"", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing field \"data_offsets\"", 0},
        {"{\"a\":[1]}", 8, "expected an object", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate key \"a\"", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap", 0},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of \"k\" is not a string", 0},
        {"{\"__metadata__\":[]}", 0, "__metadata__ must be an object", 0},
        {"[]", 0, "not a JSON object", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":\"\\x\"}", 8, "invalid escape", 0},
        {"{\"a\xff\":1}", 0, "invalid UTF-8", 0},
        {"{\"a\":\"\\u0000\"}", 0, "\\u0000", 0},
        {"{\"a\":\"\\ud800\"}", 0, "surrogate", 0},
        {"{\"a\":tru}", 0, "expected a value", 0},
        {"{\"a\":01}", 0, "expected ',' or '}'", 0},
        {"{\"a\":\"unterminated}", 0, "unterminated string", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%zu.safetensors", i);
        const char *path = tmp_path(dir, name);
        size_t hl = strlen(cases[i].header) + (size_t)cases[i].extra;
        unsigned char buf[512];
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
        memcpy(buf + 8, cases[i].header, hl);
        memset(buf + 8 + hl, 0, (size_t)cases[i].data_n);
        write_bytes(path, buf, 8 + hl + (size_t)cases[i].data_n);
        lt_safetensors *st = NULL;
        lt_status s = lt_safetensors_load(path, &st);
        /* header errors carry a byte offset; an overlap involves two tensors and has none */
        int wants_byte = strstr(cases[i].needle, "overlap") == NULL;
        int has_byte = strstr(lt_last_error(), ": byte ") != NULL;
        if (s != LT_ERR_FORMAT || !strstr(lt_last_error(), cases[i].needle) || !strstr(lt_last_error(), path) ||
            has_byte != wants_byte)
            lt_test_fail(__FILE__, __LINE__, "case %zu: status %s, message '%s', want '%s'", i,
                         lt_status_name(s), lt_last_error(), cases[i].needle);
        CHECK(st == NULL);
        lt_safetensors_free(st);
    }
}

TEST(io_safetensors_rejects_bad_lengths) {
    const char *dir = lt_test_tmpdir();
    const char *p = tmp_path(dir, "short.safetensors");
    write_bytes(p, "\x10\0\0", 3);
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "too short");
    p = tmp_path(dir, "empty.safetensors");
    write_bytes(p, "", 0);
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "too short");
    /* header length bigger than the file */
    p = tmp_path(dir, "past.safetensors");
    write_bytes(p, "\x40\0\0\0\0\0\0\0{}", 10);
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "runs past the end");
    /* absurd header length: must be refused before any allocation of that size */
    p = tmp_path(dir, "huge.safetensors");
    write_bytes(p, "\0\0\0\0\0\0\0\x40{}", 10);
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "over the");
    p = tmp_path(dir, "cap.safetensors");
    write_bytes(p, "\x01\0\x40\x06\0\0\0\0{}", 10);   /* 100 MB + 1 */
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "over the");
    p = tmp_path(dir, "tiny.safetensors");
    write_bytes(p, "\x01\0\0\0\0\0\0\0{", 9);
    CHECK_LOAD_FAILS(p, LT_ERR_FORMAT, "too small");
    p = tmp_path(dir, "missing.safetensors");
    CHECK_LOAD_FAILS(p, LT_ERR_IO, "cannot open");
    CHECK_LOAD_FAILS(dir, LT_ERR_IO, "not a regular file");
}

/* Every truncation of a valid file fails cleanly; every single-byte corruption either
 * loads or fails with a format error (ASan checks there is no bad read). */
TEST(io_safetensors_truncations_and_byte_flips) {
    const char *dir = lt_test_tmpdir(), *p = tmp_path(dir, "t.safetensors");
    size_t n = sizeof fx_common_bytes;
    unsigned char *buf = malloc(n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(p, fx_common_bytes, len);
        lt_safetensors *st = NULL;
        lt_status s = lt_safetensors_load(p, &st);
        /* the last tensor ends at the end of the file, so every cut is detectable */
        if (s != LT_ERR_FORMAT) lt_test_fail(__FILE__, __LINE__, "truncated to %zu: %s", len, lt_status_name(s));
        lt_safetensors_free(st);
    }
    int loaded = 0, failed = 0;
    for (size_t at = 0; at < n; at++) {
        for (int flip = 0; flip < 3; flip++) {
            memcpy(buf, fx_common_bytes, n);
            buf[at] ^= (unsigned char[]){0x01, 0x80, 0xff}[flip];
            write_bytes(p, buf, n);
            lt_safetensors *st = NULL;
            lt_status s = lt_safetensors_load(p, &st);
            if (s == LT_OK) loaded++;
            else if (s == LT_ERR_FORMAT) failed++;
            else lt_test_fail(__FILE__, __LINE__, "flip at %zu: %s: %s", at, lt_status_name(s), lt_last_error());
            if (s == LT_OK) {
                /* whatever loaded is self-consistent */
                for (int64_t i = 0; i < lt_safetensors_count(st); i++) {
                    const lt_st_entry *e = lt_safetensors_entry(st, i);
                    CHECK(e->nbytes == e->numel * lt_dtype_size(e->dtype));
                }
            }
            lt_safetensors_free(st);
        }
    }
    CHECK(loaded > 0 && failed > 0);
    free(buf);
}
