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
    /* A fresh file, not a truncated one: ext4 flushes truncate-and-rewrite on close
     * (auto_da_alloc), which made the byte-flip test take seconds. */
    remove(path);
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

/* ======================================================================================
 * JSON
 * ====================================================================================== */

TEST(io_json_parses_all_value_kinds) {
    const char *text =
        " {\"a\": [0, -0, 12, -9223372036854775808, 9223372036854775808, 1.5e3, 1E-2, -0.25],\n"
        "  \"s\": \"q\\\"b\\\\s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \xc3\xa9\",\n"
        "  \"t\": true, \"f\": false, \"z\": null, \"o\": {\"x\": {}, \"y\": []}} ";
    lt_json *j;
    REQUIRE_OK(lt_json_parse(text, (int64_t)strlen(text), "doc.json", &j));
    REQUIRE(j->type == LT_JSON_OBJECT);
    CHECK_EQ_INT(j->n, 6);
    const lt_json *a = lt_json_get(j, "a");
    REQUIRE(a && a->type == LT_JSON_ARRAY && a->n == 8);
    CHECK(a->items[0].is_int && a->items[0].i == 0);
    CHECK(a->items[2].is_int && a->items[2].i == 12);
    CHECK(a->items[3].is_int && a->items[3].i == INT64_MIN);
    CHECK(!a->items[4].is_int && a->items[4].num == 9223372036854775808.0);
    CHECK(!a->items[5].is_int && a->items[5].num == 1500);
    CHECK(a->items[6].num == 0.01);
    CHECK(lt_json_number(lt_json_at(a, 7), 0) == -0.25);
    CHECK(lt_json_at(a, 8) == NULL && lt_json_at(a, -1) == NULL);
    CHECK(!strcmp(lt_json_string(lt_json_get(j, "s"), ""),
                  "q\"b\\s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9"));
    CHECK(lt_json_get(j, "t")->type == LT_JSON_BOOL && lt_json_get(j, "t")->boolean == 1);
    CHECK(lt_json_get(j, "f")->boolean == 0);
    CHECK(lt_json_get(j, "z")->type == LT_JSON_NULL && isnan(lt_json_number(lt_json_get(j, "z"), 1)));
    CHECK(lt_json_get(lt_json_get(j, "o"), "x")->type == LT_JSON_OBJECT);
    CHECK(lt_json_get(j, "missing") == NULL && lt_json_get(a, "x") == NULL);
    CHECK(lt_json_number(lt_json_get(j, "s"), 7) == 7);       /* wrong type: fallback */
    CHECK(!strcmp(lt_json_string(a, "fb"), "fb"));
    CHECK_EQ_INT(lt_json_get(j, "s")->offset, 90);           /* byte position of the value */
    lt_json_free(j);
}

TEST(io_json_rejects_malformed_text) {
    static const struct { const char *text; const char *needle; } cases[] = {
        {"", "expected a value, got end of text"},
        {"   ", "byte 3: expected a value"},
        {"{", "expected a string key"},
        {"[1,]", "byte 3: expected a value, got ']'"},
        {"[1 2]", "expected ',' or ']'"},
        {"{\"a\" 1}", "expected ':' after the key"},
        {"{1:2}", "expected a string key, got '1'"},
        {"01", "end of text after the JSON value"},
        {"1.", "digit after '.'"},
        {".5", "expected a value"},
        {"-", "expected a digit"},
        {"1e", "digit in the exponent"},
        {"+1", "expected a value"},
        {"tru", "expected a value"},
        {"nul", "expected a value"},
        {"NaN", "expected a value"},
        {"Infinity", "expected a value"},
        {"1e999", "out of range"},
        {"\"abc", "unterminated string"},
        {"\"\\q\"", "invalid escape"},
        {"\"\\u12\"", "4 hex digits"},
        {"\"\\u12G4\"", "4 hex digits"},
        {"\"a\tb\"", "control character 0x09"},
        {"\"\xc0\xaf\"", "invalid UTF-8"},          /* overlong '/' */
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},      /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},  /* beyond U+10FFFF */
        {"\"\xe2\x82\"", "invalid UTF-8"},          /* truncated sequence */
        {"\"\\udc00\"", "low surrogate"},
        {"\"\\ud800x\"", "not followed by a low one"},
        {"\"\\u0000\"", "\\u0000"},
        {"[1] [2]", "end of text after the JSON value"},
        {"{\"k\":1,\"j\":2,\"k\":3}", "byte 17: duplicate key \"k\""},
        {"[1,\n  x]", "byte 6: expected a value, got 'x'"},
        {"\xef\xbb\xbf{}", "got byte 0xef"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lt_json *j = (lt_json *)1;
        lt_status s = lt_json_parse(cases[i].text, (int64_t)strlen(cases[i].text), "bad.json", &j);
        if (s != LT_ERR_FORMAT || j != NULL || !strstr(lt_last_error(), cases[i].needle) ||
            strncmp(lt_last_error(), "bad.json: byte ", 15))
            lt_test_fail(__FILE__, __LINE__, "case %zu '%s': %s: '%s', want '%s'", i, cases[i].text,
                         lt_status_name(s), lt_last_error(), cases[i].needle);
    }
    /* Length is honoured: text past len is not read. */
    lt_json *j;
    CHECK_OK(lt_json_parse("[1]xyz", 3, "n.json", &j));
    lt_json_free(j);
    CHECK_EQ_INT(lt_json_parse("[1]", 2, "n.json", &j), LT_ERR_FORMAT);
}

TEST(io_json_nesting_limit) {
    char deep[2 * LT_JSON_MAX_DEPTH + 8];
    int d = LT_JSON_MAX_DEPTH;
    memset(deep, '[', (size_t)d);
    memset(deep + d, ']', (size_t)d);
    lt_json *j;
    CHECK_OK(lt_json_parse(deep, 2 * d, "deep.json", &j));
    lt_json_free(j);
    memset(deep, '[', (size_t)d + 1);
    memset(deep + d + 1, ']', (size_t)d + 1);
    CHECK_EQ_INT(lt_json_parse(deep, 2 * d + 2, "deep.json", &j), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), "nesting deeper than"));
}

TEST(io_json_writer_compact_and_indented) {
    lt_jw w;
    const char *text;
    for (int indent = 0; indent <= 2; indent += 2) {
        lt_jw_init(&w, indent);
        lt_jw_begin_object(&w);
        lt_jw_key(&w, "a");
        lt_jw_int(&w, -7);
        lt_jw_key(&w, "b");
        lt_jw_begin_array(&w);
        lt_jw_float(&w, 1.5f);
        lt_jw_string(&w, "x\"y\\\n\x01\xff");
        lt_jw_double(&w, NAN);
        lt_jw_float(&w, -INFINITY);
        lt_jw_bool(&w, 1);
        lt_jw_null(&w);
        lt_jw_end_array(&w);
        lt_jw_key(&w, "c");
        lt_jw_begin_object(&w);
        lt_jw_end_object(&w);
        lt_jw_key(&w, "d");
        lt_jw_begin_array(&w);
        lt_jw_end_array(&w);
        lt_jw_end_object(&w);
        REQUIRE_OK(lt_jw_finish(&w, &text, NULL));
        const char *want = indent == 0
            ? "{\"a\":-7,\"b\":[1.5,\"x\\\"y\\\\\\n\\u0001\\u00ff\",null,null,true,null],\"c\":{},\"d\":[]}"
            : "{\n  \"a\": -7,\n  \"b\": [\n    1.5,\n    \"x\\\"y\\\\\\n\\u0001\\u00ff\",\n    null,\n"
              "    null,\n    true,\n    null\n  ],\n  \"c\": {},\n  \"d\": []\n}";
        if (strcmp(text, want)) lt_test_fail(__FILE__, __LINE__, "indent %d:\n%s\nwant\n%s", indent, text, want);
        lt_json *j;
        CHECK_OK(lt_json_parse(text, (int64_t)strlen(text), "w.json", &j));
        if (j) CHECK(!strcmp(lt_json_string(lt_json_at(lt_json_get(j, "b"), 1), ""), "x\"y\\\n\x01\xc3\xbf"));
        lt_json_free(j);
        lt_jw_free(&w);
    }
}

TEST(io_json_writer_numbers_round_trip_shortest) {
    lt_jw w;
    const char *text;
    lt_jw_init(&w, 0);
    lt_jw_begin_array(&w);
    lt_jw_float(&w, 0.1f);
    lt_jw_double(&w, 0.1);
    lt_jw_double(&w, 1.0 / 3.0);
    lt_jw_float(&w, 16777216.0f);
    lt_jw_int(&w, INT64_MIN);
    lt_jw_end_array(&w);
    REQUIRE_OK(lt_jw_finish(&w, &text, NULL));
    CHECK(!strcmp(text, "[0.1,0.1,0.333333333333333315,16777216,-9223372036854775808]") ||
          !strcmp(text, "[0.1,0.1,0.3333333333333333,16777216,-9223372036854775808]"));
    lt_jw_free(&w);

    lt_rng r;
    lt_rng_init(&r, 7, LT_STREAM_TEST);
    lt_jw_init(&w, 0);
    lt_jw_begin_array(&w);
    enum { N = 2000 };
    static float fv[N];
    static double dv[N];
    for (int i = 0; i < N; i++) {
        uint32_t bits = lt_rng_u32(&r);
        memcpy(&fv[i], &bits, 4);
        if (!isfinite(fv[i])) fv[i] = (float)i;
        uint64_t b64 = lt_rng_u64(&r);
        memcpy(&dv[i], &b64, 8);
        if (!isfinite(dv[i])) dv[i] = -i;
        lt_jw_float(&w, fv[i]);
        lt_jw_double(&w, dv[i]);
    }
    lt_jw_end_array(&w);
    int64_t n;
    REQUIRE_OK(lt_jw_finish(&w, &text, &n));
    lt_json *j;
    REQUIRE_OK(lt_json_parse(text, n, "nums.json", &j));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float f = (float)j->items[2 * i].num;
        bad += memcmp(&f, &fv[i], 4) != 0 && !(f == 0 && fv[i] == 0);
        bad += j->items[2 * i + 1].num != dv[i];
    }
    CHECK_EQ_INT(bad, 0);
    lt_json_free(j);
    lt_jw_free(&w);
}

TEST(io_json_writer_misuse_is_an_error) {
    lt_jw w;
    const char *text = "unchanged";
    lt_jw_init(&w, 0);   /* value without key in an object */
    lt_jw_begin_object(&w);
    lt_jw_int(&w, 1);
    lt_jw_end_object(&w);
    CHECK_EQ_INT(lt_jw_finish(&w, &text, NULL), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "without a key"));
    CHECK(!strcmp(text, "unchanged"));
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* key inside an array */
    lt_jw_begin_array(&w);
    lt_jw_key(&w, "k");
    lt_jw_end_array(&w);
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* mismatched end */
    lt_jw_begin_array(&w);
    lt_jw_end_object(&w);
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* incomplete */
    lt_jw_begin_object(&w);
    lt_jw_key(&w, "k");
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "incomplete"));
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* empty */
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* two top-level values */
    lt_jw_int(&w, 1);
    lt_jw_int(&w, 2);
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "more than one top-level value"));
    lt_jw_free(&w);

    lt_jw_init(&w, 0);   /* too deep */
    for (int k = 0; k <= LT_JSON_MAX_DEPTH; k++) lt_jw_begin_array(&w);
    CHECK_EQ_INT(lt_jw_finish(&w, NULL, NULL), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "too deep"));
    lt_jw_free(&w);
}

TEST(io_json_load_file) {
    const char *dir = lt_test_tmpdir(), *p = tmp_path(dir, "m.json");
    CHECK_OK(lt_file_write_atomic(p, "{\"top1\": 0.5}\n", 14));
    lt_json *j;
    REQUIRE_OK(lt_json_load(p, 0, &j));
    CHECK(lt_json_number(lt_json_get(j, "top1"), 0) == 0.5);
    lt_json_free(j);
    CHECK_EQ_INT(lt_json_load(p, 10, &j), LT_ERR_FORMAT);   /* over the size limit */
    CHECK(strstr(lt_last_error(), "limit"));
    CHECK_OK(lt_file_write_atomic(p, "{\"top1\": }", 10));
    CHECK_EQ_INT(lt_json_load(p, 0, &j), LT_ERR_FORMAT);
    CHECK(strstr(lt_last_error(), p) && strstr(lt_last_error(), "byte 9"));
    CHECK_EQ_INT(lt_json_load(tmp_path(dir, "none.json"), 0, &j), LT_ERR_IO);
}

/* ======================================================================================
 * Files
 * ====================================================================================== */

static int file_is(const char *path, const char *want) {
    int64_t n;
    char *d = read_all(path, &n);
    int ok = d && n == (int64_t)strlen(want) && !memcmp(d, want, (size_t)n);
    lt_free(d);
    return ok;
}

TEST(io_atomic_write_replaces_whole_file) {
    const char *dir = lt_test_tmpdir(), *p = tmp_path(dir, "a.txt"), *tmp = tmp_path(dir, "a.txt.tmp");
    CHECK_OK(lt_file_write_atomic(p, "first version, long", 19));
    CHECK(file_is(p, "first version, long"));
    CHECK_OK(lt_file_write_atomic(p, "second", 6));
    CHECK(file_is(p, "second"));
    CHECK(!lt_path_exists(tmp));
    CHECK_OK(lt_file_write_atomic(p, "", 0));
    CHECK(file_is(p, ""));

    lt_atomic_file *f;
    REQUIRE_OK(lt_atomic_open(p, &f));
    CHECK(lt_path_exists(tmp));
    CHECK_OK(lt_atomic_write(f, "epoch ", 6));
    CHECK_OK(lt_atomic_printf(f, "%d loss %.2f\n", 3, 0.25));
    CHECK(file_is(p, ""));            /* nothing visible before commit */
    CHECK_OK(lt_atomic_commit(f));
    CHECK(file_is(p, "epoch 3 loss 0.25\n"));
    CHECK(!lt_path_exists(tmp));
}

TEST(io_atomic_errors_leave_old_file) {
    const char *dir = lt_test_tmpdir(), *p = tmp_path(dir, "keep.txt"), *tmp = tmp_path(dir, "keep.txt.tmp");
    CHECK_OK(lt_file_write_atomic(p, "old", 3));
    lt_atomic_file *f;
    REQUIRE_OK(lt_atomic_open(p, &f));   /* abort */
    lt_atomic_write(f, "new", 3);
    lt_atomic_abort(f);
    CHECK(file_is(p, "old"));
    CHECK(!lt_path_exists(tmp));
    lt_atomic_abort(NULL);

    REQUIRE_OK(lt_atomic_open(p, &f));   /* a failed write is sticky and reported by commit */
    CHECK_EQ_INT(lt_atomic_write(f, NULL, 5), LT_ERR_ARG);
    CHECK_EQ_INT(lt_atomic_write(f, "x", 1), LT_ERR_ARG);
    lt_clear_error();
    CHECK_EQ_INT(lt_atomic_commit(f), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "keep.txt"));
    CHECK(file_is(p, "old"));
    CHECK(!lt_path_exists(tmp));

    /* rename over a directory fails: the directory and no tmp remain */
    const char *d = tmp_path(dir, "adir");
    REQUIRE_OK(lt_mkdir_p(d));
    CHECK_EQ_INT(lt_file_write_atomic(d, "x", 1), LT_ERR_IO);
    CHECK(strstr(lt_last_error(), "cannot rename"));
    CHECK(!lt_path_exists(tmp_path(dir, "adir.tmp")));
    struct stat sb;
    CHECK(stat(d, &sb) == 0 && S_ISDIR(sb.st_mode));

    CHECK_EQ_INT(lt_atomic_open(tmp_path(dir, "missing/x.txt"), &f), LT_ERR_IO);
    CHECK(f == NULL && strstr(lt_last_error(), "cannot create"));
}

TEST(io_file_read_mkdir_exists) {
    const char *dir = lt_test_tmpdir();
    char *d;
    int64_t n;
    CHECK_EQ_INT(lt_file_read(tmp_path(dir, "none"), 0, &d, &n), LT_ERR_IO);
    CHECK(d == NULL);
    CHECK_EQ_INT(lt_file_read(dir, 0, &d, &n), LT_ERR_IO);
    const char *p = tmp_path(dir, "f");
    CHECK_OK(lt_file_write_atomic(p, "abc", 3));
    REQUIRE_OK(lt_file_read(p, 3, &d, &n));
    CHECK(n == 3 && !strcmp(d, "abc"));   /* NUL-terminated */
    lt_free(d);
    CHECK_EQ_INT(lt_file_read(p, 2, &d, &n), LT_ERR_FORMAT);

    const char *deep = tmp_path(dir, "runs/a/b/c/");
    CHECK(!lt_path_exists(deep));
    CHECK_OK(lt_mkdir_p(deep));
    CHECK(lt_path_exists(tmp_path(dir, "runs/a/b/c")));
    CHECK_OK(lt_mkdir_p(tmp_path(dir, "runs/a")));   /* existing is fine */
    CHECK_EQ_INT(lt_mkdir_p(tmp_path(dir, "f/sub")), LT_ERR_IO);   /* a file is in the way */
    CHECK(strstr(lt_last_error(), "not a directory") || strstr(lt_last_error(), "cannot create"));
    CHECK_EQ_INT(lt_mkdir_p(p), LT_ERR_IO);
    CHECK(!lt_path_exists(NULL));
}

/* ======================================================================================
 * Recipe configs
 * ====================================================================================== */

static const char *recipe_text =
    "\xEF\xBB\xBF# WD + MaxNorm, CIFAR-100-LT, IF=100\r\n"
    "[data]\r\n"
    "dataset = cifar100   # inline comment\n"
    "imbalance = 100\n"
    "\n"
    "; another comment\n"
    "[model]\n"
    "  arch = resnet32  \n"
    "[stage1]\n"
    "epochs = 200\n"
    "lr = 0.01\n"
    "milestones = 160, 180\n"
    "class_weights = 1.5,2 , -3e-1\n"
    "nesterov = Yes\n"
    "name = \"  padded # not a comment ; \"  ; comment\n"
    "url = a#b;c\n"
    "empty =\n"
    "eq = a=b\n"
    "[stage2]\n"
    "epochs = 10\n";

TEST(io_config_parses_recipe) {
    lt_config *c;
    REQUIRE_OK(lt_config_parse_string(recipe_text, "recipe.ini", &c));
    CHECK_EQ_INT(lt_config_section_count(c), 4);
    const char *names[] = {"data", "model", "stage1", "stage2"};
    for (int i = 0; i < 4; i++) CHECK(!strcmp(lt_config_section_name(c, i), names[i]));
    CHECK(lt_config_section_name(c, 4) == NULL);
    const char *s;
    int64_t i64;
    double d;
    int b;
    CHECK_OK(lt_config_get_str(c, "data", "dataset", "x", &s));
    CHECK(!strcmp(s, "cifar100"));
    CHECK_OK(lt_config_get_int(c, "data", "imbalance", 1, &i64));
    CHECK_EQ_INT(i64, 100);
    CHECK_OK(lt_config_get_str(c, "model", "arch", "x", &s));
    CHECK(!strcmp(s, "resnet32"));
    CHECK_OK(lt_config_get_int(c, "stage1", "epochs", 1, &i64));
    CHECK_EQ_INT(i64, 200);
    CHECK_OK(lt_config_get_float(c, "stage1", "lr", 1, &d));
    CHECK(d == 0.01);
    int64_t ms[4] = {7}, nms = 1;
    CHECK_OK(lt_config_get_int_list(c, "stage1", "milestones", ms, 4, &nms));
    CHECK(nms == 2 && ms[0] == 160 && ms[1] == 180);
    double cw[3];
    int64_t ncw = 0;
    CHECK_OK(lt_config_get_float_list(c, "stage1", "class_weights", cw, 3, &ncw));
    CHECK(ncw == 3 && cw[0] == 1.5 && cw[1] == 2 && cw[2] == -0.3);
    CHECK_OK(lt_config_get_bool(c, "stage1", "nesterov", 0, &b));
    CHECK_EQ_INT(b, 1);
    CHECK_OK(lt_config_get_str(c, "stage1", "name", "x", &s));
    CHECK(!strcmp(s, "  padded # not a comment ; "));
    CHECK_OK(lt_config_get_str(c, "stage1", "url", "x", &s));
    CHECK(!strcmp(s, "a#b;c"));
    CHECK_OK(lt_config_get_str(c, "stage1", "empty", "x", &s));
    CHECK(!strcmp(s, ""));
    CHECK_OK(lt_config_get_str(c, "stage1", "eq", "x", &s));
    CHECK(!strcmp(s, "a=b"));
    /* missing keys give the default; lists keep the caller's default */
    CHECK_OK(lt_config_get_int(c, "stage2", "batch_size", 128, &i64));
    CHECK_EQ_INT(i64, 128);
    CHECK_OK(lt_config_get_float(c, "nosuch", "x", 2.5, &d));
    CHECK(d == 2.5);
    CHECK_OK(lt_config_get_bool(c, "stage2", "flip", 1, &b));
    CHECK_EQ_INT(b, 1);
    CHECK_OK(lt_config_get_str(c, "stage2", "loss", "ce", &s));
    CHECK(!strcmp(s, "ce"));
    ms[0] = 5; nms = 1;
    CHECK_OK(lt_config_get_int_list(c, "stage2", "milestones", ms, 4, &nms));
    CHECK(nms == 1 && ms[0] == 5);
    CHECK(lt_config_has(c, "stage2", "epochs") && !lt_config_has(c, "stage2", "lr"));
    /* stage2.epochs has not been read yet */
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:20: unknown key stage2.epochs"));
    CHECK_OK(lt_config_get_int(c, "stage2", "epochs", 1, &i64));
    CHECK_OK(lt_config_check_unused(c));
    lt_config_free(c);
    lt_config_free(NULL);
}

TEST(io_config_syntax_errors_name_the_line) {
    static const struct { const char *text, *needle; } cases[] = {
        {"[a]\nx = 1\n[b]\n[a]\n", "r.ini:4: duplicate section [a] (first at line 1)"},
        {"[a]\nx = 1\ny = 2\n x = 3\n", "r.ini:4: duplicate key a.x (first at line 2)"},
        {"# c\nx = 1\n", "r.ini:2: key 'x' before any [section]"},
        {"[a]\njust text\n", "r.ini:2: expected 'key = value' or '[section]', got 'just text'"},
        {"[a]\n= 3\n", "r.ini:2: bad key ''"},
        {"[a]\nmy key = 3\n", "r.ini:2: bad key 'my key'"},
        {"[a..b]\n", "r.ini:1: bad section name '[a..b]'"},
        {"[.a]\n", "r.ini:1: bad section name '[.a]'"},
        {"[a.]\n", "r.ini:1: bad section name '[a.]'"},
        {"[a]\nx.y = 3\n", "r.ini:2: bad key 'x.y'"},
        {"[]\n", "r.ini:1: bad section name '[]'"},
        {"[a\n", "r.ini:1: missing ']'"},
        {"[a] x\n", "r.ini:1: unexpected text after ']'"},
        {"[a]\nx = \"abc\n", "r.ini:2: unterminated quoted value"},
        {"[a]\nx = \"abc\" def\n", "r.ini:2: unexpected text after the closing quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lt_config *c = (lt_config *)1;
        lt_status s = lt_config_parse_string(cases[i].text, "r.ini", &c);
        if (s != LT_ERR_CONFIG || c != NULL || !strstr(lt_last_error(), cases[i].needle))
            lt_test_fail(__FILE__, __LINE__, "case %zu: %s: '%s', want '%s'", i, lt_status_name(s),
                         lt_last_error(), cases[i].needle);
    }
    /* [a] x ; comment is fine, as is a comment after a section */
    lt_config *c;
    CHECK_OK(lt_config_parse_string("[a] # c\n[b]   ; c\n", "r.ini", &c));
    lt_config_free(c);
    CHECK_OK(lt_config_parse_string("", "empty.ini", &c));
    if (c) CHECK_EQ_INT(lt_config_section_count(c), 0);
    lt_config_free(c);
}

TEST(io_config_bad_values_name_line_key_and_value) {
    const char *text =
        "[stage1]\n"
        "lr = abc\n"
        "epochs = 1.5\n"
        "big = 99999999999999999999\n"
        "nan = nan\n"
        "inf = 1e999\n"
        "flag = maybe\n"
        "ms = 1,,2\n"
        "ms2 = 1, x\n"
        "ms3 = 1,2,3\n"
        "ms4 = 1,2,\n";
    lt_config *c;
    REQUIRE_OK(lt_config_parse_string(text, "recipe.ini", &c));
    double d = 0;
    int64_t i64 = 0, v[2] = {42, 43}, n = 2;
    int b;
    CHECK_EQ_INT(lt_config_get_float(c, "stage1", "lr", 0.1, &d), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "recipe.ini:2: stage1.lr: expected a number, got 'abc'"));
    CHECK(d == 0.1);   /* the default stays on error */
    CHECK_EQ_INT(lt_config_get_int(c, "stage1", "epochs", 1, &i64), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "recipe.ini:3: stage1.epochs: expected an integer, got '1.5'"));
    CHECK_EQ_INT(lt_config_get_int(c, "stage1", "big", 1, &i64), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:4: stage1.big: expected an integer"));
    CHECK_EQ_INT(lt_config_get_float(c, "stage1", "nan", 1, &d), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:5:"));
    CHECK_EQ_INT(lt_config_get_float(c, "stage1", "inf", 1, &d), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:6:"));
    CHECK_EQ_INT(lt_config_get_bool(c, "stage1", "flag", 1, &b), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:7: stage1.flag: expected true/false"));
    CHECK_EQ_INT(lt_config_get_int_list(c, "stage1", "ms", v, 2, &n), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "recipe.ini:8: stage1.ms: item 2: expected an integer, got ''"));
    CHECK_EQ_INT(lt_config_get_int_list(c, "stage1", "ms2", v, 2, &n), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "recipe.ini:9: stage1.ms2: item 2: expected an integer, got 'x'"));
    CHECK_EQ_INT(lt_config_get_int_list(c, "stage1", "ms3", v, 2, &n), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "recipe.ini:10: stage1.ms3: expected at most 2 items"));
    CHECK_EQ_INT(lt_config_get_float_list(c, "stage1", "ms4", &d, 1, &n), LT_ERR_CONFIG);
    CHECK(v[0] == 42 && v[1] == 43 && n == 2);   /* defaults survive failed reads */
    lt_config_free(c);
}

TEST(io_config_unknown_keys_and_sections_with_hints) {
    lt_config *c;
    const char *s;
    double d;
    REQUIRE_OK(lt_config_parse_string("[stage1]\nlr = 0.1\nlrr = 0.2\n", "r.ini", &c));
    CHECK_OK(lt_config_get_float(c, "stage1", "lr", 0, &d));
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "r.ini:3: unknown key stage1.lrr"));
    lt_config_free(c);

    REQUIRE_OK(lt_config_parse_string("[stage1]\nweight_decy = 5e-4\n", "r.ini", &c));
    CHECK_OK(lt_config_get_float(c, "stage1", "weight_decay", 0, &d));
    CHECK_OK(lt_config_get_str(c, "stage1", "loss", "ce", &s));
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "r.ini:2: unknown key stage1.weight_decy (did you mean stage1.weight_decay?)"));
    lt_config_free(c);

    REQUIRE_OK(lt_config_parse_string("[data]\n[stge1]\nepochs = 3\n", "r.ini", &c));
    CHECK(lt_config_has_section(c, "data"));
    CHECK(!lt_config_has_section(c, "stage1"));
    int64_t e;
    CHECK_OK(lt_config_get_int(c, "stage1", "epochs", 1, &e));
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "r.ini:2: unknown section [stge1] (did you mean [stage1]?)"));
    lt_config_free(c);

    REQUIRE_OK(lt_config_parse_string("[eval]\n", "r.ini", &c));   /* an empty, never-read section */
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "r.ini:1: unknown section [eval]"));
    lt_config_free(c);
}

TEST(io_config_overrides) {
    lt_config *c;
    REQUIRE_OK(lt_config_parse_string("[stage1]\nepochs = 200\nlr = 0.1\n", "r.ini", &c));
    CHECK_OK(lt_config_set(c, "stage1.epochs", "2"));
    CHECK_OK(lt_config_set_arg(c, " stage1.lr = abc "));
    CHECK_OK(lt_config_set_arg(c, "stage2.loss=ldam"));
    CHECK_OK(lt_config_set_arg(c, "stage2.note=a=b"));
    int64_t e;
    double d;
    const char *s;
    CHECK_OK(lt_config_get_int(c, "stage1", "epochs", 1, &e));
    CHECK_EQ_INT(e, 2);
    CHECK_EQ_INT(lt_config_get_float(c, "stage1", "lr", 1, &d), LT_ERR_CONFIG);
    CHECK(!strcmp(lt_last_error(), "--set: stage1.lr: expected a number, got 'abc'"));
    CHECK_EQ_INT(lt_config_section_count(c), 2);
    CHECK(!strcmp(lt_config_section_name(c, 1), "stage2"));
    CHECK_OK(lt_config_get_str(c, "stage2", "loss", "ce", &s));
    CHECK(!strcmp(s, "ldam"));
    CHECK_EQ_INT(lt_config_check_unused(c), LT_ERR_CONFIG);   /* stage2.note set but never read */
    CHECK(!strcmp(lt_last_error(), "--set: unknown key stage2.note"));
    CHECK_OK(lt_config_get_str(c, "stage2", "note", "", &s));
    CHECK(!strcmp(s, "a=b"));
    CHECK_OK(lt_config_check_unused(c));

    CHECK_EQ_INT(lt_config_set_arg(c, "stage1.epochs"), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "expected section.key=value"));
    CHECK_EQ_INT(lt_config_set(c, "epochs", "1"), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "expected section.key"));
    CHECK_EQ_INT(lt_config_set(c, "stage 1.epochs", "1"), LT_ERR_CONFIG);
    CHECK_EQ_INT(lt_config_set(c, "stage1.", "1"), LT_ERR_CONFIG);
    CHECK_EQ_INT(lt_config_set(c, "stage1.x", "a\nb"), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "line break"));
    /* a dotted section: the key is what follows the last dot */
    CHECK_OK(lt_config_set(c, "model.expert.0.arch", "mlp"));
    CHECK(lt_config_has(c, "model.expert.0", "arch"));
    CHECK(!lt_config_has(c, "model", "expert.0.arch"));
    CHECK_EQ_INT(lt_config_set(c, "model..arch", "mlp"), LT_ERR_CONFIG);
    lt_config_free(c);
}

TEST(io_config_serialization_round_trips) {
    const char *dir = lt_test_tmpdir();
    lt_config *c;
    REQUIRE_OK(lt_config_parse_string(recipe_text, "recipe.ini", &c));
    CHECK_OK(lt_config_set(c, "stage1.tricky1", " lead and trail "));
    CHECK_OK(lt_config_set(c, "stage1.tricky2", "\"starts with quote"));
    CHECK_OK(lt_config_set(c, "stage1.tricky3", "ends with quote\""));
    CHECK_OK(lt_config_set(c, "stage1.tricky4", "#hash"));
    CHECK_OK(lt_config_set(c, "stage1.tricky5", "x ; y"));
    CHECK_OK(lt_config_set(c, "stage1.tricky6", "\"both\""));
    CHECK_OK(lt_config_set(c, "eval.split", "test"));
    char *t1, *t2;
    REQUIRE_OK(lt_config_to_string(c, &t1));
    const char *p = tmp_path(dir, "resolved.ini");
    CHECK_OK(lt_config_save(c, p));
    lt_config *c2;
    REQUIRE_OK(lt_config_load(p, &c2));
    REQUIRE_OK(lt_config_to_string(c2, &t2));
    CHECK(!strcmp(t1, t2));
    CHECK_EQ_INT(lt_config_section_count(c2), 5);
    const char *keys[] = {"tricky1", "tricky2", "tricky3", "tricky4", "tricky5", "tricky6", "name", "empty", "url"};
    for (int k = 0; k < 9; k++) {
        const char *a, *b;
        lt_config_get_str(c, "stage1", keys[k], NULL, &a);
        lt_config_get_str(c2, "stage1", keys[k], NULL, &b);
        if (!a || !b || strcmp(a, b)) lt_test_fail(__FILE__, __LINE__, "%s: '%s' vs '%s'", keys[k], a, b);
    }
    CHECK(strstr(t1, "[data]\ndataset = cifar100\nimbalance = 100\n\n[model]\narch = resnet32\n"));
    lt_free(t1);
    lt_free(t2);
    lt_config_free(c);
    lt_config_free(c2);

    /* load errors */
    CHECK_EQ_INT(lt_config_load(tmp_path(dir, "none.ini"), &c), LT_ERR_IO);
    write_bytes(p, "[a]\nx = 1\0\n", 11);
    CHECK_EQ_INT(lt_config_load(p, &c), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "NUL byte"));
    write_bytes(p, "[a]\nx = 1\ny\n", 12);
    CHECK_EQ_INT(lt_config_load(p, &c), LT_ERR_CONFIG);
    CHECK(strstr(lt_last_error(), "resolved.ini:3:"));
}

/* ======================================================================================
 * Out-of-memory paths: fail the k-th allocation for every k until the call succeeds
 * (SQLite's test_malloc approach); every failure must be clean (no crash, no leak under
 * ASan) and reported as LT_ERR_NOMEM.
 * ====================================================================================== */

static int64_t fail_countdown;
static void *failing_malloc(size_t n, void *u) { (void)u; return fail_countdown-- == 0 ? NULL : malloc(n); }
static void *failing_realloc(void *p, size_t n, void *u) { (void)u; return fail_countdown-- == 0 ? NULL : realloc(p, n); }
static void plain_free(void *p, void *u) { (void)u; free(p); }

typedef lt_status (*oom_fn)(const char *arg);

static lt_status oom_load(const char *path) {
    lt_safetensors *st;
    lt_status s = lt_safetensors_load(path, &st);
    lt_safetensors_free(st);
    return s;
}

static lt_status oom_save(const char *path) {
    float d[3] = {1, 2, 3};
    lt_st_tensor t[2] = {{"b", LT_DT_F32, 1, {3}, d}, {"a", LT_DT_F32, 1, {2}, d}};
    const char *meta[] = {"k", "v"};
    return lt_safetensors_save(path, t, 2, meta, 1);
}

static lt_status oom_json(const char *text) {
    lt_json *j;
    lt_status s = lt_json_parse(text, (int64_t)strlen(text), "oom.json", &j);
    lt_json_free(j);
    return s;
}

static lt_status oom_config(const char *text) {
    lt_config *c;
    lt_status s = lt_config_parse_string(text, "oom.ini", &c);
    int64_t v[4], n = 0;
    double d;
    char *out = NULL;
    if (!s) s = lt_config_set_arg(c, "stage1.lr=0.5");
    if (!s) s = lt_config_get_int_list(c, "stage1", "ms", v, 4, &n);
    if (!s) s = lt_config_get_float(c, "stage1", "missing", 0, &d);
    if (!s) s = lt_config_to_string(c, &out);
    lt_free(out);
    lt_config_free(c);
    return s;
}

static void run_oom(const char *what, oom_fn fn, const char *arg) {
    lt_alloc_hook h = {failing_malloc, failing_realloc, plain_free, NULL};
    int64_t k;
    for (k = 0; k < 500; k++) {
        fail_countdown = k;
        lt_set_alloc_hook(&h);
        lt_status s = fn(arg);
        lt_set_alloc_hook(NULL);
        if (s == LT_OK) break;
        if (s != LT_ERR_NOMEM)
            lt_test_fail(__FILE__, __LINE__, "%s, allocation %lld failed: %s: %s", what, (long long)k,
                         lt_status_name(s), lt_last_error());
    }
    if (k == 0 || k == 500) lt_test_fail(__FILE__, __LINE__, "%s: %lld allocations tried", what, (long long)k);
}

TEST(io_out_of_memory_paths_are_clean) {
    const char *dir = lt_test_tmpdir(), *p = tmp_path(dir, "oom.safetensors");
    write_bytes(p, fx_common_bytes, sizeof fx_common_bytes);
    run_oom("safetensors load", oom_load, p);
    run_oom("safetensors save", oom_save, tmp_path(dir, "oom2.safetensors"));
    CHECK(!lt_path_exists(tmp_path(dir, "oom2.safetensors.tmp")));
    run_oom("json parse", oom_json, "{\"a\":[1,2,{\"b\":\"\\u00e9x\"}],\"c\":{\"d\":null,\"e\":[[],{}]},\"f\":\"g\"}");
    run_oom("config", oom_config, "[data]\nx = 1\n[stage1]\nms = 1, 2\nlr = 0.1\n");
}
