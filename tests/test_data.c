/* Data: readers on small generated files (IDX plain and gzip, CIFAR-10/100 binary, PNG/BMP
 * folders, list files), every bad-input case, long-tail profiles and the published counts,
 * the validation split, Many/Medium/Few groups, augmentation and the loader thread. */
#include "test.h"
#include "longtail/data.h"
#include "longtail/eval.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

/* ---- file writers ---- */

static char *tpath(const char *dir, const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) { lt_test_fail(__FILE__, __LINE__, "cannot write %s", path); return; }
        if (n) gzwrite(g, data, (unsigned)n);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) { lt_test_fail(__FILE__, __LINE__, "cannot write %s", path); return; }
        if (n) fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX images file (n, h, w) with pixel(i, y, x) = (7i + 3y + x) & 255 and a labels file
 * with label(i) = labels[i]. Returns the byte count of the images file. */
static size_t write_idx(const char *img_path, const char *lab_path, int n, int h, int w, const uint8_t *labels,
                        int gz) {
    size_t isz = 16 + (size_t)n * h * w;
    uint8_t *buf = malloc(isz);
    buf[0] = buf[1] = 0;
    buf[2] = 8;
    buf[3] = 3;
    put_be32(buf + 4, (uint32_t)n);
    put_be32(buf + 8, (uint32_t)h);
    put_be32(buf + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) buf[16 + ((size_t)i * h + y) * w + x] = (uint8_t)((7 * i + 3 * y + x) & 255);
    write_bytes(img_path, buf, isz, gz);
    free(buf);
    uint8_t *lb = malloc(8 + (size_t)n);
    lb[0] = lb[1] = 0;
    lb[2] = 8;
    lb[3] = 1;
    put_be32(lb + 4, (uint32_t)n);
    memcpy(lb + 8, labels, (size_t)n);
    write_bytes(lab_path, lb, 8 + (size_t)n, gz);
    free(lb);
    return isz;
}

/* The error message names `what` (a file) and says where (offset or line). */
static void check_msg(const char *file, int line, const char *what, const char *where) {
    const char *m = lt_last_error();
    if (!strstr(m, what)) lt_test_fail(file, line, "message '%s' does not name '%s'", m, what);
    if (where && !strstr(m, where)) lt_test_fail(file, line, "message '%s' does not say '%s'", m, where);
    if (strchr(m, '\n')) lt_test_fail(file, line, "message '%s' is not one line", m);
}
#define CHECK_MSG(what, where) check_msg(__FILE__, __LINE__, what, where)

static int dataset_empty(const lt_dataset *ds) {
    return ds->images == NULL && ds->labels == NULL && ds->class_names == NULL && ds->n == 0;
}

/* ---- an allocation hook that records the largest single request ---- */

static size_t max_request;
static void *rec_malloc(size_t n, void *u) {
    (void)u;
    if (n > max_request) max_request = n;
    return malloc(n);
}
static void *rec_realloc(void *p, size_t n, void *u) {
    (void)u;
    if (n > max_request) max_request = n;
    return realloc(p, n);
}
static void rec_free(void *p, void *u) { (void)u; free(p); }
static const lt_alloc_hook rec_hook = {rec_malloc, rec_realloc, rec_free, NULL};

/* ---- IDX ---- */

TEST(data_idx_plain_and_gzip) {
    const char *dir = lt_test_tmpdir();
    uint8_t labels[7] = {3, 1, 4, 1, 5, 9, 2};
    for (int gz = 0; gz < 2; gz++) {
        const char *ip = tpath(dir, gz ? "img.gz" : "img"), *lp = tpath(dir, gz ? "lab.gz" : "lab");
        write_idx(ip, lp, 7, 5, 4, labels, gz);
        lt_dataset ds;
        REQUIRE_OK(lt_dataset_read_idx(&ds, ip, lp, 10, lt_fmnist_class_names));
        CHECK_EQ_INT(ds.n, 7);
        CHECK_EQ_INT(ds.h, 5);
        CHECK_EQ_INT(ds.w, 4);
        CHECK_EQ_INT(ds.c, 1);
        CHECK_EQ_INT(ds.n_classes, 10);
        CHECK(strcmp(ds.class_names[9], "Ankle boot") == 0);
        int bad = 0;
        for (int i = 0; i < 7; i++) {
            if (ds.labels[i] != labels[i]) bad++;
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 4; x++)
                    if (ds.images[(i * 5 + y) * 4 + x] != ((7 * i + 3 * y + x) & 255)) bad++;
        }
        CHECK_EQ_INT(bad, 0);
        lt_dataset_free(&ds);
        CHECK(dataset_empty(&ds));
        lt_dataset_free(&ds);   /* twice is fine */
    }
}

TEST(data_idx_bad_inputs) {
    const char *dir = lt_test_tmpdir();
    uint8_t labels[6] = {0, 1, 2, 3, 4, 5};
    /* copied: tpath's ring of buffers wraps before the last use below */
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s", tpath(dir, "img"));
    snprintf(lp, sizeof lp, "%s", tpath(dir, "lab"));
    size_t isz = write_idx(ip, lp, 6, 4, 4, labels, 0);
    lt_dataset ds;

    /* wrong magic */
    FILE *f = fopen(ip, "r+b");
    fputc(0x1b, f);
    fclose(f);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, ip, lp, 10, NULL), LT_ERR_FORMAT);
    CHECK_MSG(ip, "offset 0");
    CHECK(dataset_empty(&ds));

    /* truncated */
    write_idx(ip, lp, 6, 4, 4, labels, 0);
    CHECK(truncate(ip, (off_t)isz - 5) == 0);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, ip, lp, 10, NULL), LT_ERR_FORMAT);
    CHECK_MSG(ip, "offset");
    CHECK(dataset_empty(&ds));
    /* truncated inside the header */
    CHECK(truncate(ip, 10) == 0);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, ip, lp, 10, NULL), LT_ERR_FORMAT);
    CHECK_MSG(ip, "offset");

    /* label >= class count: label 5 at byte offset 8 + 5 */
    write_idx(ip, lp, 6, 4, 4, labels, 0);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, ip, lp, 5, NULL), LT_ERR_FORMAT);
    CHECK_MSG(lp, "offset 13");
    CHECK(dataset_empty(&ds));

    /* image and label counts disagree */
    write_idx(tpath(dir, "img7"), tpath(dir, "lab7"), 7, 4, 4, (const uint8_t[7]){0}, 0);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, ip, tpath(dir, "lab7"), 10, NULL), LT_ERR_FORMAT);
    CHECK_MSG(tpath(dir, "lab7"), "offset 4");

    /* missing file */
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, tpath(dir, "nope"), lp, 10, NULL), LT_ERR_IO);
    CHECK_MSG(tpath(dir, "nope"), NULL);

    /* a dimension field claiming gigabytes, plain and gzip: no large allocation */
    for (int gz = 0; gz < 2; gz++) {
        const char *bp = tpath(dir, gz ? "big.gz" : "big");
        uint8_t buf[16 + 1000];
        memset(buf, 0, sizeof buf);
        buf[2] = 8;
        buf[3] = 3;
        put_be32(buf + 4, 0xFFFFFFFFu);   /* 4 G images of 1000 x 1000: 4 PB */
        put_be32(buf + 8, 1000);
        put_be32(buf + 12, 1000);
        write_bytes(bp, buf, sizeof buf, gz);
        max_request = 0;
        lt_set_alloc_hook(&rec_hook);
        lt_status st = lt_dataset_read_idx(&ds, bp, lp, 10, NULL);
        lt_set_alloc_hook(NULL);
        CHECK_EQ_INT(st, LT_ERR_FORMAT);
        CHECK_MSG(bp, "offset");
        CHECK(max_request < (1u << 20));
        CHECK(dataset_empty(&ds));
        /* a claim of 60 images where the data holds one */
        put_be32(buf + 4, 60);
        for (int i = 16; i < (int)sizeof buf; i++) buf[i] = (uint8_t)(i * 2654435761u >> 24);
        write_bytes(bp, buf, sizeof buf, gz);
        max_request = 0;
        lt_set_alloc_hook(&rec_hook);
        st = lt_dataset_read_idx(&ds, bp, lp, 10, NULL);
        lt_set_alloc_hook(NULL);
        CHECK_EQ_INT(st, LT_ERR_FORMAT);
        CHECK_MSG(bp, "offset");
    }

    /* truncated gzip stream */
    const char *gp = tpath(dir, "img.gz"), *glp = tpath(dir, "lab.gz");
    write_idx(gp, glp, 6, 4, 4, labels, 1);
    struct stat st;
    stat(gp, &st);
    CHECK(truncate(gp, st.st_size - 12) == 0);
    CHECK_EQ_INT(lt_dataset_read_idx(&ds, gp, glp, 10, NULL), LT_ERR_FORMAT);
    CHECK_MSG(gp, "offset");
    CHECK(dataset_empty(&ds));
}

/* ---- CIFAR ---- */

/* Record r of a CIFAR file: planes R, G, B with value(ch, p) = (r + 50 ch + p) & 255. */
static void write_cifar(const char *path, int n, int c100, const uint8_t *labels, int bad_label_at) {
    int head = c100 ? 2 : 1, rec = head + 3072;
    uint8_t *buf = malloc((size_t)n * rec);
    for (int r = 0; r < n; r++) {
        uint8_t *p = buf + (size_t)r * rec;
        if (c100) {
            p[0] = (uint8_t)(labels[r] / 5);   /* coarse */
            p[1] = labels[r];                  /* fine */
        } else {
            p[0] = labels[r];
        }
        if (r == bad_label_at) p[head - 1] = c100 ? 100 : 10;
        for (int ch = 0; ch < 3; ch++)
            for (int q = 0; q < 1024; q++) p[head + ch * 1024 + q] = (uint8_t)((r + 50 * ch + q) & 255);
    }
    write_bytes(path, buf, (size_t)n * rec, 0);
    free(buf);
}

static int cifar_pixels_ok(const lt_dataset *ds, int i, int r) {
    for (int q = 0; q < 1024; q++)
        for (int ch = 0; ch < 3; ch++)
            if (ds->images[((int64_t)i * 1024 + q) * 3 + ch] != ((r + 50 * ch + q) & 255)) return 0;
    return 1;
}

TEST(data_cifar10_and_cifar100) {
    const char *dir = lt_test_tmpdir();
    char sub[600];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    mkdir(sub, 0700);
    uint8_t lab[5][3];
    for (int b = 0; b < 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        for (int r = 0; r < 3; r++) lab[b][r] = (uint8_t)((b * 3 + r) % 10);
        write_cifar(tpath(sub, name), 3, 0, lab[b], -1);
    }
    write_cifar(tpath(sub, "test_batch.bin"), 2, 0, (const uint8_t[]){7, 9}, -1);
    lt_dataset ds;
    REQUIRE_OK(lt_dataset_read_cifar(&ds, dir, 10, 1));   /* finds the cifar-10-batches-bin folder */
    CHECK_EQ_INT(ds.n, 15);
    CHECK_EQ_INT(ds.h, 32);
    CHECK_EQ_INT(ds.c, 3);
    for (int i = 0; i < 15; i++) {
        CHECK_EQ_INT(ds.labels[i], (i % 10));
        CHECK(cifar_pixels_ok(&ds, i, i % 3));   /* planes converted to HWC, batches in order */
    }
    CHECK(strcmp(ds.class_names[0], "airplane") == 0);
    lt_dataset_free(&ds);
    REQUIRE_OK(lt_dataset_read_cifar(&ds, sub, 10, 0));
    CHECK_EQ_INT(ds.n, 2);
    CHECK_EQ_INT(ds.labels[1], 9);
    lt_dataset_free(&ds);

    /* CIFAR-100: fine labels */
    uint8_t fine[4] = {99, 0, 42, 57};
    write_cifar(tpath(dir, "train.bin"), 4, 1, fine, -1);
    REQUIRE_OK(lt_dataset_read_cifar(&ds, dir, 100, 1));
    CHECK_EQ_INT(ds.n, 4);
    CHECK_EQ_INT(ds.n_classes, 100);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(ds.labels[i], fine[i]);
    CHECK(cifar_pixels_ok(&ds, 3, 3));
    CHECK(strcmp(ds.class_names[99], "worm") == 0);
    lt_dataset_free(&ds);

    /* bad inputs: truncated, label >= class count, missing file */
    const char *tb = tpath(dir, "test.bin");
    write_cifar(tb, 3, 1, fine, -1);
    CHECK(truncate(tb, 2 * 3074 + 100) == 0);
    CHECK_EQ_INT(lt_dataset_read_cifar(&ds, dir, 100, 0), LT_ERR_FORMAT);
    CHECK_MSG(tb, "offset 6148");
    CHECK(dataset_empty(&ds));
    write_cifar(tb, 3, 1, fine, 2);
    CHECK_EQ_INT(lt_dataset_read_cifar(&ds, dir, 100, 0), LT_ERR_FORMAT);
    CHECK_MSG(tb, "offset 6149");   /* record 2's fine byte: 2*3074 + 1 */
    CHECK(dataset_empty(&ds));
    write_cifar(tpath(sub, "data_batch_4.bin"), 3, 0, lab[3], 1);
    CHECK_EQ_INT(lt_dataset_read_cifar(&ds, sub, 10, 1), LT_ERR_FORMAT);
    CHECK_MSG("data_batch_4.bin", "offset 3073");
    remove(tpath(sub, "data_batch_4.bin"));
    CHECK_EQ_INT(lt_dataset_read_cifar(&ds, sub, 10, 1), LT_ERR_IO);
    CHECK_MSG("data_batch_4.bin", NULL);
    CHECK(dataset_empty(&ds));
}

/* ---- image folders and list files ---- */

/* A w x h RGB image with pixel (x, y) = (10x + k, 20y + k, 100 + k). */
static void make_rgb(uint8_t *p, int w, int h, int k) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3 + 0] = (uint8_t)(10 * x + k);
            p[(y * w + x) * 3 + 1] = (uint8_t)(20 * y + k);
            p[(y * w + x) * 3 + 2] = (uint8_t)(100 + k);
        }
}

TEST(data_folder_reader) {
    char root[600];   /* lt_test_tmpdir() reuses its buffer */
    snprintf(root, sizeof root, "%s", lt_test_tmpdir());
    mkdir(tpath(root, "zebra"), 0700);
    mkdir(tpath(root, "ant"), 0700);
    mkdir(tpath(root, ".hidden"), 0700);
    uint8_t img[8 * 8 * 3];
    make_rgb(img, 8, 8, 1);
    CHECK(stbi_write_png(tpath(root, "zebra/b.png"), 8, 8, 3, img, 8 * 3));
    make_rgb(img, 8, 8, 2);
    CHECK(stbi_write_bmp(tpath(root, "zebra/a.BMP"), 8, 8, 3, img));
    make_rgb(img, 8, 8, 3);
    CHECK(stbi_write_png(tpath(root, "ant/x.png"), 8, 8, 3, img, 8 * 3));
    write_bytes(tpath(root, "ant/notes.txt"), "not an image", 12, 0);   /* ignored */
    /* a 16x16 image whose 2x2 blocks are constant: area downscale to 8x8 is exact */
    uint8_t big[16 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int ch = 0; ch < 3; ch++) big[(y * 16 + x) * 3 + ch] = (uint8_t)(10 * (x / 2) + 20 * (y / 2) + ch);
    CHECK(stbi_write_png(tpath(root, "ant/y_big.png"), 16, 16, 3, big, 16 * 3));

    lt_image_options opt = {8, 8, 3};
    lt_dataset ds;
    REQUIRE_OK(lt_dataset_read_folder(&ds, root, &opt, NULL));
    CHECK_EQ_INT(ds.n, 4);
    CHECK_EQ_INT(ds.n_classes, 2);
    CHECK(strcmp(ds.class_names[0], "ant") == 0 && strcmp(ds.class_names[1], "zebra") == 0);
    /* files sorted within a class: ant/x.png, ant/y_big.png, zebra/a.BMP, zebra/b.png */
    const int want_label[4] = {0, 0, 1, 1}, want_k[4] = {3, -1, 2, 1};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(ds.labels[i], want_label[i]);
        uint8_t ref[8 * 8 * 3];
        if (want_k[i] >= 0) make_rgb(ref, 8, 8, want_k[i]);
        else
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++)
                    for (int ch = 0; ch < 3; ch++) ref[(y * 8 + x) * 3 + ch] = (uint8_t)(10 * x + 20 * y + ch);
        CHECK(memcmp(ds.images + i * 192, ref, 192) == 0);
    }
    lt_dataset_free(&ds);

    /* gray, and upscaling a constant image stays constant */
    lt_image_options g = {12, 20, 1};
    REQUIRE_OK(lt_dataset_read_folder(&ds, root, &g, NULL));
    CHECK_EQ_INT(ds.c, 1);
    CHECK_EQ_INT(ds.w, 20);
    int bad = 0;
    for (int p = 0; p < 12 * 20; p++) {
        /* image 3 (zebra/b.png): red grows with x and nothing else depends on x, so its
         * gray version, interpolated, is non-decreasing along each row */
        if (p % 20 && ds.images[3 * 240 + p] < ds.images[3 * 240 + p - 1]) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    lt_dataset_free(&ds);

    /* a test folder takes its labels from the training classes */
    const char *troot = lt_test_tmpdir();
    mkdir(tpath(troot, "zebra"), 0700);
    CHECK(stbi_write_png(tpath(troot, "zebra/q.png"), 8, 8, 3, img, 8 * 3));
    lt_dataset train, test;
    REQUIRE_OK(lt_dataset_read_folder(&train, root, &opt, NULL));
    REQUIRE_OK(lt_dataset_read_folder(&test, troot, &opt, &train));
    CHECK_EQ_INT(test.n_classes, 2);
    CHECK_EQ_INT(test.labels[0], 1);
    lt_dataset_free(&test);
    mkdir(tpath(troot, "lion"), 0700);
    CHECK_EQ_INT(lt_dataset_read_folder(&test, troot, &opt, &train), LT_ERR_FORMAT);
    CHECK_MSG("lion", NULL);
    lt_dataset_free(&train);
}

/* Exact box and bilinear resizing on a single-row image, from the formulas. */
TEST(data_resize_area_and_bilinear) {
    const char *root = lt_test_tmpdir();
    mkdir(tpath(root, "c"), 0700);
    uint8_t row[6] = {0, 60, 120, 180, 240, 30};   /* 6 x 1 gray */
    CHECK(stbi_write_png(tpath(root, "c/r.png"), 6, 1, 1, row, 6));
    lt_dataset ds;
    lt_image_options down = {1, 4, 1};   /* 6 -> 4: box of width 1.5 */
    REQUIRE_OK(lt_dataset_read_folder(&ds, root, &down, NULL));
    /* out j covers [1.5j, 1.5j+1.5): (x0 + .5 x1)/1.5, (.5 x1 + x2)/1.5, ... */
    double want_d[4] = {(0 + 0.5 * 60) / 1.5, (0.5 * 60 + 120) / 1.5, (180 + 0.5 * 240) / 1.5,
                        (0.5 * 240 + 30) / 1.5};
    for (int j = 0; j < 4; j++) CHECK_NEAR(ds.images[j], want_d[j], 0.51);
    lt_dataset_free(&ds);
    lt_image_options up = {1, 12, 1};    /* 6 -> 12: bilinear, src = (j + .5)/2 - .5 */
    REQUIRE_OK(lt_dataset_read_folder(&ds, root, &up, NULL));
    for (int j = 0; j < 12; j++) {
        double s = (j + 0.5) / 2 - 0.5;
        if (s < 0) s = 0;
        int k0 = (int)s;
        double fr = s - k0, v = k0 + 1 < 6 ? row[k0] * (1 - fr) + row[k0 + 1] * fr : row[k0];
        CHECK_NEAR(ds.images[j], v, 0.51);
    }
    lt_dataset_free(&ds);
}

TEST(data_folder_bad_inputs) {
    lt_image_options opt = {8, 8, 3};
    lt_dataset ds;
    const char *root = lt_test_tmpdir();
    /* empty folder */
    CHECK_EQ_INT(lt_dataset_read_folder(&ds, root, &opt, NULL), LT_ERR_FORMAT);
    CHECK_MSG(root, "empty");
    CHECK(dataset_empty(&ds));
    /* a class folder without images */
    mkdir(tpath(root, "a"), 0700);
    write_bytes(tpath(root, "a/readme.txt"), "x", 1, 0);
    CHECK_EQ_INT(lt_dataset_read_folder(&ds, root, &opt, NULL), LT_ERR_FORMAT);
    CHECK_MSG(tpath(root, "a"), "empty");
    /* an undecodable image, after a good one */
    uint8_t img[8 * 8 * 3] = {0};
    CHECK(stbi_write_png(tpath(root, "a/0.png"), 8, 8, 3, img, 24));
    write_bytes(tpath(root, "a/1.png"), "\x89PNG garbage garbage garbage", 28, 0);
    CHECK_EQ_INT(lt_dataset_read_folder(&ds, root, &opt, NULL), LT_ERR_FORMAT);
    CHECK_MSG(tpath(root, "a/1.png"), "decode");
    CHECK(dataset_empty(&ds));
    /* a truncated PNG */
    remove(tpath(root, "a/1.png"));
    CHECK(truncate(tpath(root, "a/0.png"), 40) == 0);
    CHECK_EQ_INT(lt_dataset_read_folder(&ds, root, &opt, NULL), LT_ERR_FORMAT);
    CHECK_MSG(tpath(root, "a/0.png"), NULL);
    /* a PNG header claiming 30000 x 30000 pixels */
    uint8_t hdr[33] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    put_be32(hdr + 16, 30000);
    put_be32(hdr + 20, 30000);
    hdr[24] = 8;
    hdr[25] = 2;
    uLong crc = crc32(0, hdr + 12, 17);
    put_be32(hdr + 29, (uint32_t)crc);
    write_bytes(tpath(root, "a/0.png"), hdr, sizeof hdr, 0);
    max_request = 0;
    lt_set_alloc_hook(&rec_hook);
    lt_status st = lt_dataset_read_folder(&ds, root, &opt, NULL);
    lt_set_alloc_hook(NULL);
    CHECK_EQ_INT(st, LT_ERR_FORMAT);
    CHECK_MSG(tpath(root, "a/0.png"), NULL);
    CHECK(max_request < (1u << 20));
    /* missing root */
    CHECK_EQ_INT(lt_dataset_read_folder(&ds, tpath(root, "missing"), &opt, NULL), LT_ERR_IO);
    CHECK_MSG("missing", NULL);
}

TEST(data_list_reader) {
    const char *root = lt_test_tmpdir();
    mkdir(tpath(root, "imgs"), 0700);
    uint8_t img[4 * 4 * 3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, k == 2 ? "imgs/with space %d.png" : "imgs/%d.png", k);
        make_rgb(img, 4, 4, k);
        CHECK(stbi_write_png(tpath(root, name), 4, 4, 3, img, 12));
    }
    const char *list = tpath(root, "train.txt");
    const char *text = "imgs/0.png 2\n\nimgs/1.png\t0\nimgs/with space 2.png 5\r\n";
    write_bytes(list, text, strlen(text), 0);
    lt_image_options opt = {4, 4, 3};
    lt_dataset ds;
    REQUIRE_OK(lt_dataset_read_list(&ds, root, list, &opt, 0));
    CHECK_EQ_INT(ds.n, 3);
    CHECK_EQ_INT(ds.n_classes, 6);   /* largest label + 1 */
    CHECK_EQ_INT(ds.labels[0], 2);
    CHECK_EQ_INT(ds.labels[1], 0);
    CHECK_EQ_INT(ds.labels[2], 5);
    make_rgb(img, 4, 4, 2);
    CHECK(memcmp(ds.images + 2 * 48, img, 48) == 0);
    lt_dataset_free(&ds);

    /* bad inputs name the list file and the line */
    const char *bad = tpath(root, "bad.txt");
    const char *missing = "imgs/0.png 1\nimgs/nothere.png 1\n";
    write_bytes(bad, missing, strlen(missing), 0);
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, bad, &opt, 0), LT_ERR_IO);
    CHECK_MSG("bad.txt:2", "nothere.png");
    CHECK(dataset_empty(&ds));
    const char *toobig = "imgs/0.png 1\n\nimgs/1.png 6\n";
    write_bytes(bad, toobig, strlen(toobig), 0);
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, bad, &opt, 6), LT_ERR_FORMAT);
    CHECK_MSG("bad.txt:3", "class count");
    const char *nolabel = "imgs/0.png\n";
    write_bytes(bad, nolabel, strlen(nolabel), 0);
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, bad, &opt, 0), LT_ERR_FORMAT);
    CHECK_MSG("bad.txt:1", NULL);
    const char *neg = "imgs/0.png -1\n";
    write_bytes(bad, neg, strlen(neg), 0);
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, bad, &opt, 0), LT_ERR_FORMAT);
    CHECK_MSG("bad.txt:1", NULL);
    write_bytes(tpath(root, "imgs/broken.jpg"), "JFIF?", 5, 0);
    const char *undec = "imgs/0.png 0\nimgs/broken.jpg 0\n";
    write_bytes(bad, undec, strlen(undec), 0);
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, bad, &opt, 0), LT_ERR_FORMAT);
    CHECK_MSG("bad.txt:2", "broken.jpg");
    CHECK_EQ_INT(lt_dataset_read_list(&ds, root, tpath(root, "none.txt"), &opt, 0), LT_ERR_IO);
    CHECK_MSG("none.txt", NULL);
    CHECK(dataset_empty(&ds));
}

/* ---- long-tail profiles, split, groups ---- */

/* A dataset of labels only (the split never looks at pixels): per_class images per class,
 * interleaved (label = i % C) as real files are. */
static void fake_labels(lt_dataset *ds, int32_t C, int64_t per_class) {
    memset(ds, 0, sizeof *ds);
    ds->n = C * per_class;
    ds->n_classes = C;
    ds->labels = lt_malloc((size_t)ds->n * sizeof(int32_t));
    for (int64_t i = 0; i < ds->n; i++) ds->labels[i] = (int32_t)(i % C);
}

static int64_t split_total(const lt_dataset *src, lt_profile prof, double IF, int64_t val) {
    lt_longtail_config cfg;
    lt_longtail_config_default(&cfg);
    cfg.profile = prof;
    cfg.imbalance_factor = IF;
    cfg.val_per_class = val;
    lt_split sp;
    if (lt_split_make(&sp, src, &cfg) != LT_OK) return -1;
    int64_t t = sp.n_train;
    lt_split_free(&sp);
    return t;
}

TEST(data_published_longtail_counts) {
    /* CIFAR-100-LT and CIFAR-10-LT (val_per_class = 0: the papers' protocol) */
    lt_dataset c100, c10;
    fake_labels(&c100, 100, 500);
    fake_labels(&c10, 10, 5000);
    CHECK_EQ_INT(split_total(&c100, LT_PROFILE_EXP, 100, 0), 10847);
    CHECK_EQ_INT(split_total(&c100, LT_PROFILE_EXP, 50, 0), 12608);
    CHECK_EQ_INT(split_total(&c100, LT_PROFILE_EXP, 10, 0), 19573);
    CHECK_EQ_INT(split_total(&c10, LT_PROFILE_EXP, 100, 0), 12406);
    CHECK_EQ_INT(split_total(&c10, LT_PROFILE_EXP, 50, 0), 13996);
    CHECK_EQ_INT(split_total(&c10, LT_PROFILE_EXP, 10, 0), 20431);
    CHECK_EQ_INT(split_total(&c100, LT_PROFILE_NONE, 100, 0), 50000);
    /* step, IF 10: 50 classes of 500, 50 of 50 */
    CHECK_EQ_INT(split_total(&c100, LT_PROFILE_STEP, 10, 0), 50 * 500 + 50 * 50);
    /* with the default validation split: n_max = 480 */
    lt_longtail_config cfg;
    lt_longtail_config_default(&cfg);
    lt_split sp;
    REQUIRE_OK(lt_split_make(&sp, &c100, &cfg));
    CHECK_EQ_INT(sp.n_max, 480);
    CHECK_EQ_INT(sp.train_counts[0], 480);
    CHECK_EQ_INT(sp.train_counts[99], 4);   /* int(480 / 100) */
    CHECK_EQ_INT(sp.n_val, 2000);

    /* CIFAR-100-LT IF 100: 35 / 35 / 30 classes by count (methods.md §1) */
    lt_split_free(&sp);
    cfg.val_per_class = 0;
    REQUIRE_OK(lt_split_make(&sp, &c100, &cfg));
    int32_t group[100];
    lt_group_spec g = lt_group_spec_default();
    g.mode = LT_GROUP_BY_AUTO;   /* auto must pick the thresholds here */
    lt_group_mode used;
    REQUIRE_OK(lt_eval_groups_assign(sp.train_counts, 100, &g, group, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_THRESHOLD);
    int size[3] = {0, 0, 0};
    for (int k = 0; k < 100; k++) size[group[k]]++;
    CHECK_EQ_INT(size[0], 35);
    CHECK_EQ_INT(size[1], 35);
    CHECK_EQ_INT(size[2], 30);
    g.mode = LT_GROUP_BY_RANK;
    REQUIRE_OK(lt_eval_groups_assign(sp.train_counts, 100, &g, group, &used));
    memset(size, 0, sizeof size);
    for (int k = 0; k < 100; k++) size[group[k]]++;
    CHECK_EQ_INT(size[0], 33);
    CHECK_EQ_INT(size[1], 34);
    CHECK_EQ_INT(size[2], 33);
    lt_split_free(&sp);
    lt_dataset_free(&c100);
    lt_dataset_free(&c10);
}

TEST(data_fmnist_profile_counts) {
    lt_dataset fm;
    fake_labels(&fm, 10, 6000);
    lt_longtail_config cfg;
    lt_longtail_config_default(&cfg);
    lt_split sp;
    REQUIRE_OK(lt_split_make(&sp, &fm, &cfg));
    const int64_t want20[10] = {5980, 3584, 2149, 1288, 772, 463, 277, 166, 99, 59};
    for (int k = 0; k < 10; k++) {
        CHECK_EQ_INT(sp.train_counts[k], want20[k]);
        CHECK_EQ_INT(sp.val_counts[k], 20);
    }
    /* rank thirds for 10 classes: 3 / 4 / 3, head classes many */
    int32_t group[10];
    lt_group_spec g = lt_group_spec_default();
    g.mode = LT_GROUP_BY_AUTO;
    lt_group_mode used;
    REQUIRE_OK(lt_eval_groups_assign(sp.train_counts, 10, &g, group, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_RANK);   /* count thresholds leave "few" empty */
    const int32_t wantg[10] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
    for (int k = 0; k < 10; k++) CHECK_EQ_INT(group[k], wantg[k]);
    lt_split_free(&sp);
    cfg.val_per_class = 0;
    REQUIRE_OK(lt_split_make(&sp, &fm, &cfg));
    const int64_t want0[10] = {6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60};
    for (int k = 0; k < 10; k++) CHECK_EQ_INT(sp.train_counts[k], want0[k]);
    CHECK_EQ_INT(sp.n_val, 0);
    lt_split_free(&sp);
    /* FMNIST-LT-500: the CIFAR-100-LT regime, count thresholds apply */
    cfg.val_per_class = 20;
    cfg.n_max = 500;
    REQUIRE_OK(lt_split_make(&sp, &fm, &cfg));
    CHECK_EQ_INT(sp.train_counts[0], 500);
    CHECK_EQ_INT(sp.train_counts[9], 5);
    REQUIRE_OK(lt_eval_groups_assign(sp.train_counts, 10, &g, group, &used));
    CHECK_EQ_INT(used, LT_GROUP_BY_THRESHOLD);
    lt_split_free(&sp);
    lt_dataset_free(&fm);
}

TEST(data_split_protocol) {
    lt_dataset src;
    fake_labels(&src, 5, 40);
    lt_longtail_config cfg;
    lt_longtail_config_default(&cfg);
    cfg.imbalance_factor = 10;
    cfg.val_per_class = 5;
    cfg.seed = 3;
    lt_split a, b, c;
    REQUIRE_OK(lt_split_make(&a, &src, &cfg));
    REQUIRE_OK(lt_split_make(&b, &src, &cfg));
    cfg.seed = 4;
    REQUIRE_OK(lt_split_make(&c, &src, &cfg));
    CHECK_EQ_INT(a.n_max, 35);
    /* same seed, same split; another seed, another choice of images */
    CHECK_EQ_INT(a.n_train, b.n_train);
    CHECK(memcmp(a.train_idx, b.train_idx, (size_t)a.n_train * 8) == 0);
    CHECK(memcmp(a.val_idx, b.val_idx, (size_t)a.n_val * 8) == 0);
    CHECK(memcmp(a.train_idx, c.train_idx, (size_t)a.n_train * 8) != 0);
    /* ascending, disjoint, counts per class as claimed, validation balanced */
    uint8_t role[200] = {0};
    int64_t cnt[5] = {0}, vcnt[5] = {0};
    for (int64_t i = 0; i < a.n_train; i++) {
        if (i) CHECK(a.train_idx[i] > a.train_idx[i - 1]);
        role[a.train_idx[i]] |= 1;
        cnt[src.labels[a.train_idx[i]]]++;
    }
    for (int64_t i = 0; i < a.n_val; i++) {
        if (i) CHECK(a.val_idx[i] > a.val_idx[i - 1]);
        CHECK(!(role[a.val_idx[i]] & 1));
        role[a.val_idx[i]] |= 2;
        vcnt[src.labels[a.val_idx[i]]]++;
    }
    const int64_t want[5] = {35, 19, 11, 6, 3};   /* int(35 * 0.1^(i/4)) */
    for (int k = 0; k < 5; k++) {
        CHECK_EQ_INT(cnt[k], want[k]);
        CHECK_EQ_INT(a.train_counts[k], want[k]);
        CHECK_EQ_INT(vcnt[k], 5);
    }
    lt_split_free(&a);
    lt_split_free(&b);
    lt_split_free(&c);

    /* first-n: the first n_i of each class in file order train, its last 5 validate */
    cfg.selection = LT_SELECT_FIRST;
    REQUIRE_OK(lt_split_make(&a, &src, &cfg));
    for (int64_t i = 0; i < a.n_train; i++) {
        int64_t k = src.labels[a.train_idx[i]], pos = a.train_idx[i] / 5;   /* position within class */
        CHECK(pos < want[k]);
    }
    for (int64_t i = 0; i < a.n_val; i++) CHECK(a.val_idx[i] / 5 >= 35);
    lt_split_free(&a);

    /* class order by the source's counts: the largest source class is the head */
    for (int64_t i = 0; i < src.n; i++) src.labels[i] = i < 100 ? 3 : (int32_t)(i % 3);   /* class 4 empty */
    src.labels[199] = 4;
    src.labels[198] = 4;
    cfg.val_per_class = 0;
    cfg.class_order = LT_ORDER_COUNTS;
    cfg.imbalance_factor = 100;
    REQUIRE_OK(lt_split_make(&a, &src, &cfg));
    CHECK_EQ_INT(a.train_counts[3], 100);
    CHECK_EQ_INT(a.train_counts[4], 1);   /* int(100 * 0.01) = 1 */
    /* source counts: class 1 and 2 have 33, class 0 has 32: ranks 1, 2, 3 -> 31, 10, 3 */
    CHECK_EQ_INT(a.train_counts[1], 31);
    CHECK_EQ_INT(a.train_counts[2], 10);
    CHECK_EQ_INT(a.train_counts[0], 3);
    lt_split_free(&a);

    /* a class too small for the validation split is an error naming it */
    cfg.val_per_class = 2;
    CHECK_EQ_INT(lt_split_make(&a, &src, &cfg), LT_ERR_ARG);
    CHECK(strstr(lt_last_error(), "class 4") != NULL);
    cfg.val_per_class = 0;
    cfg.imbalance_factor = 0.5;
    CHECK_EQ_INT(lt_split_make(&a, &src, &cfg), LT_ERR_ARG);
    lt_dataset_free(&src);
}

TEST(data_groups_by_count_and_rank) {
    const int64_t counts[7] = {500, 101, 100, 20, 19, 0, 300};
    int32_t g[7];
    lt_group_spec cfg = lt_group_spec_default();
    cfg.mode = LT_GROUP_BY_THRESHOLD;
    lt_group_mode used;
    REQUIRE_OK(lt_eval_groups_assign(counts, 7, &cfg, g, &used));
    const int32_t want[7] = {0, 0, 1, 1, 2, 2, 0};
    for (int k = 0; k < 7; k++) CHECK_EQ_INT(g[k], want[k]);
    cfg.many_above = 200;
    cfg.few_below = 101;
    REQUIRE_OK(lt_eval_groups_assign(counts, 7, &cfg, g, &used));
    CHECK_EQ_INT(g[1], 1);
    CHECK_EQ_INT(g[2], 2);
    cfg.few_below = 300;   /* overlapping thresholds */
    CHECK_EQ_INT(lt_eval_groups_assign(counts, 7, &cfg, g, &used), LT_ERR_ARG);
    /* rank: 7 classes -> 2 many, 3 medium, 2 few, by count */
    cfg.mode = LT_GROUP_BY_RANK;
    cfg.few_below = 20;
    REQUIRE_OK(lt_eval_groups_assign(counts, 7, &cfg, g, &used));
    const int32_t wr[7] = {0, 1, 1, 1, 2, 2, 0};
    for (int k = 0; k < 7; k++) CHECK_EQ_INT(g[k], wr[k]);
}

/* ---- augmentation ---- */

TEST(data_augment_crop_flip_normalize) {
    enum { H = 6, W = 5, C = 3 };
    uint8_t img[H * W * C];
    for (int i = 0; i < H * W * C; i++) img[i] = (uint8_t)(i * 37 % 251 + 1);   /* distinct, non-zero */
    lt_augment_config a;
    lt_augment_config_default(&a);
    a.pad = 2;
    a.hflip = 1;
    const float mean[3] = {0.5f, 0.25f, 0.1f}, sd[3] = {0.2f, 0.3f, 0.4f};
    for (int ch = 0; ch < 3; ch++) {
        a.mean[ch] = mean[ch];
        a.std[ch] = sd[ch];
    }
    /* evaluation: normalization only, the torchvision formula */
    float out[H * W * C];
    lt_augment_image(img, H, W, C, &a, NULL, out);
    int bad = 0;
    for (int i = 0; i < H * W * C; i++)
        if (out[i] != ((float)img[i] / 255.0f - mean[i % 3]) / sd[i % 3]) bad++;
    CHECK_EQ_INT(bad, 0);
    /* training: every output is the padded image shifted by some (dy, dx) in [0, 4]^2,
     * maybe mirrored; all 25 offsets and both flips occur over many draws */
    lt_rng rng;
    lt_rng_init(&rng, 11, LT_STREAM_AUGMENT);
    int seen[5][5][2];
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < 2000; t++) {
        lt_augment_image(img, H, W, C, &a, &rng, out);
        int found = 0;
        for (int dy = 0; dy <= 4 && !found; dy++)
            for (int dx = 0; dx <= 4 && !found; dx++)
                for (int fl = 0; fl < 2 && !found; fl++) {
                    int ok = 1;
                    for (int y = 0; y < H && ok; y++)
                        for (int x = 0; x < W && ok; x++)
                            for (int ch = 0; ch < C && ok; ch++) {
                                int sy = y + dy - 2, sx = (fl ? W - 1 - x : x) + dx - 2;
                                float v = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0.0f : (float)img[(sy * W + sx) * C + ch] / 255.0f;
                                if (out[(y * W + x) * C + ch] != (v - mean[ch]) / sd[ch]) ok = 0;
                            }
                    if (ok) {
                        found = 1;
                        seen[dy][dx][fl]++;
                    }
                }
        if (!found) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    int missing = 0;
    for (int dy = 0; dy < 5; dy++)
        for (int dx = 0; dx < 5; dx++)
            for (int fl = 0; fl < 2; fl++)
                if (seen[dy][dx][fl] < 15) missing++;   /* expected 40 each */
    CHECK_EQ_INT(missing, 0);
}

TEST(data_channel_stats) {
    lt_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 3;
    ds.h = 2;
    ds.w = 2;
    ds.c = 3;
    uint8_t px[36];
    for (int i = 0; i < 36; i++) px[i] = (uint8_t)(i * 7 % 256);
    ds.images = px;
    float mean[3], sd[3];
    REQUIRE_OK(lt_dataset_channel_stats(&ds, mean, sd));
    for (int ch = 0; ch < 3; ch++) {
        double s = 0, s2 = 0;
        for (int p = 0; p < 12; p++) s += px[p * 3 + ch] / 255.0;
        double m = s / 12;
        for (int p = 0; p < 12; p++) s2 += (px[p * 3 + ch] / 255.0 - m) * (px[p * 3 + ch] / 255.0 - m);
        CHECK_NEAR(mean[ch], m, 1e-6);
        CHECK_NEAR(sd[ch], sqrt(s2 / 12), 1e-6);
    }
}

/* ---- loader ---- */

static void make_images(lt_dataset *ds, int64_t n, int64_t h, int64_t w, int64_t c, int32_t C) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->h = h;
    ds->w = w;
    ds->c = c;
    ds->n_classes = C;
    ds->images = lt_malloc((size_t)(n * h * w * c));
    ds->labels = lt_malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n * h * w * c; i++) ds->images[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int64_t i = 0; i < n; i++) ds->labels[i] = (int32_t)(i % 7 == 0 ? 1 : i % 3 == 0 ? 2 : 0) % C;
}

/* Runs an epoch and returns a checksum of (idx, y, x) over its batches. */
static uint64_t epoch_digest(lt_loader *ld, int64_t epoch, int64_t first, int64_t *n_images) {
    uint64_t h = 1469598103934665603ULL;
    *n_images = 0;
    if (lt_loader_start(ld, epoch, first) != LT_OK) return 0;
    lt_batch b;
    for (;;) {
        if (lt_loader_next(ld, &b) != LT_OK) return 0;
        if (b.n == 0) break;
        for (int64_t i = 0; i < b.n; i++) {
            h = (h ^ (uint64_t)b.idx[i]) * 1099511628211ULL;
            h = (h ^ (uint64_t)b.y[i]) * 1099511628211ULL;
        }
        const unsigned char *xb = (const unsigned char *)b.x;
        for (int64_t i = 0; i < b.n * b.h * b.w * b.c * 4; i++) h = (h ^ xb[i]) * 1099511628211ULL;
        *n_images += b.n;
    }
    return h;
}

TEST(data_loader_matches_sampler_and_augment) {
    lt_dataset ds;
    make_images(&ds, 103, 6, 6, 3, 3);
    lt_sampler_config scfg;
    lt_sampler_config_default(&scfg);
    scfg.kind = LT_SAMPLER_CLASS_AWARE;
    lt_sampler s;
    REQUIRE_OK(lt_sampler_init(&s, &scfg, ds.labels, ds.n, 3, 5));
    lt_loader_config lc = {.batch_size = 16, .seed = 9};
    lt_augment_config_cifar(&lc.augment);
    lc.augment.pad = 2;
    lt_loader *ld;
    REQUIRE_OK(lt_loader_init(&ld, &ds, &s, &lc));
    CHECK_EQ_INT(lt_loader_num_batches(ld), 7);   /* ceil(103 / 16) */
    int64_t order[103];
    lt_sampler sref;
    REQUIRE_OK(lt_sampler_init(&sref, &scfg, ds.labels, ds.n, 3, 5));
    REQUIRE_OK(lt_sampler_epoch(&sref, 2, order));
    REQUIRE_OK(lt_loader_start(ld, 2, 0));
    float ref[6 * 6 * 3];
    int64_t seen = 0, bad = 0;
    lt_batch b;
    for (int64_t k = 0;; k++) {
        REQUIRE_OK(lt_loader_next(ld, &b));
        if (b.n == 0) break;
        CHECK_EQ_INT(b.index, k);
        CHECK_EQ_INT(b.epoch, 2);
        CHECK_EQ_INT(b.n, k < 6 ? 16 : 7);
        CHECK(((uintptr_t)b.x & 63) == 0);
        lt_rng rng;
        lt_rng_init(&rng, lt_rng_derive_seed(9, 2, (uint64_t)k), LT_STREAM_AUGMENT);
        for (int64_t i = 0; i < b.n; i++, seen++) {
            if (b.idx[i] != order[seen] || b.y[i] != ds.labels[order[seen]]) bad++;
            lt_augment_image(ds.images + order[seen] * 108, 6, 6, 3, &lc.augment, &rng, ref);
            if (memcmp(ref, b.x + i * 108, sizeof ref) != 0) bad++;
        }
    }
    CHECK_EQ_INT(seen, 103);
    CHECK_EQ_INT(bad, 0);
    REQUIRE_OK(lt_loader_next(ld, &b));   /* still over */
    CHECK_EQ_INT(b.n, 0);
    lt_loader_free(ld);
    lt_sampler_free(&s);
    lt_sampler_free(&sref);
    lt_dataset_free(&ds);
}

TEST(data_loader_deterministic_resumable_no_alloc) {
    lt_dataset ds;
    make_images(&ds, 250, 8, 8, 1, 3);
    lt_sampler_config scfg;
    lt_sampler_config_default(&scfg);
    lt_sampler s1, s2;
    REQUIRE_OK(lt_sampler_init(&s1, &scfg, ds.labels, ds.n, 3, 1));
    REQUIRE_OK(lt_sampler_init(&s2, &scfg, ds.labels, ds.n, 3, 1));
    lt_loader_config lc = {.batch_size = 32, .seed = 1};
    lt_augment_config_default(&lc.augment);
    lc.augment.pad = 2;
    lc.augment.hflip = 1;
    lt_loader *a, *b;
    REQUIRE_OK(lt_loader_init(&a, &ds, &s1, &lc));
    REQUIRE_OK(lt_loader_init(&b, &ds, &s2, &lc));
    int64_t na, nb;
    uint64_t e0 = epoch_digest(a, 0, 0, &na), e1 = epoch_digest(a, 1, 0, &na);
    CHECK_EQ_INT(na, 250);
    /* same seed => same batches, in any epoch order; another epoch differs */
    CHECK(epoch_digest(b, 1, 0, &nb) == e1);
    CHECK(epoch_digest(b, 0, 0, &nb) == e0);
    CHECK(e0 != e1);
    /* warm: epochs allocate nothing */
    uint64_t before = lt_alloc_count();
    epoch_digest(a, 5, 0, &na);
    epoch_digest(a, 6, 0, &na);
    CHECK_EQ_INT(lt_alloc_count() - before, 0);
    /* resuming mid-epoch gives the same remaining batches */
    lt_batch x, y;
    REQUIRE_OK(lt_loader_start(a, 3, 0));
    for (int k = 0; k < 4; k++) REQUIRE_OK(lt_loader_next(a, &x));
    REQUIRE_OK(lt_loader_start(b, 3, 4));
    for (int k = 4; k < 8; k++) {
        REQUIRE_OK(lt_loader_next(a, &x));
        REQUIRE_OK(lt_loader_next(b, &y));
        CHECK_EQ_INT(x.index, k);
        CHECK_EQ_INT(y.index, k);
        REQUIRE(x.n == y.n);
        CHECK(memcmp(x.idx, y.idx, (size_t)x.n * 8) == 0);
        CHECK(memcmp(x.x, y.x, (size_t)(x.n * 64) * sizeof(float)) == 0);
    }
    /* restarting in the middle of an epoch (abandoning batches) is fine */
    REQUIRE_OK(lt_loader_start(a, 3, 0));
    REQUIRE_OK(lt_loader_next(a, &x));
    REQUIRE_OK(lt_loader_start(a, 4, 0));
    REQUIRE_OK(lt_loader_next(a, &x));
    CHECK_EQ_INT(x.epoch, 4);
    CHECK_EQ_INT(x.index, 0);
    /* another seed, other batches */
    lt_loader_free(b);
    lc.seed = 2;
    REQUIRE_OK(lt_loader_init(&b, &ds, &s2, &lc));
    CHECK(epoch_digest(b, 1, 0, &nb) != e1);
    CHECK_EQ_INT(lt_loader_start(a, 0, 99), LT_ERR_ARG);
    lt_loader_free(a);
    lt_loader_free(b);
    lt_loader_free(NULL);
    lt_sampler_free(&s1);
    lt_sampler_free(&s2);
    lt_dataset_free(&ds);
}

TEST(data_loader_evaluation_order) {
    lt_dataset ds;
    make_images(&ds, 21, 4, 4, 3, 3);
    lt_loader_config lc = {.batch_size = 8, .drop_last = 0, .seed = 1};
    lt_augment_config_cifar(&lc.augment);   /* crop/flip must be ignored without a sampler */
    lt_loader *ld;
    REQUIRE_OK(lt_loader_init(&ld, &ds, NULL, &lc));
    for (int pass = 0; pass < 2; pass++) {
        REQUIRE_OK(lt_loader_start(ld, 0, 0));
        int64_t i = 0, bad = 0;
        lt_batch b;
        float ref[48];
        for (;;) {
            REQUIRE_OK(lt_loader_next(ld, &b));
            if (b.n == 0) break;
            for (int64_t j = 0; j < b.n; j++, i++) {
                if (b.idx[j] != i || b.y[j] != ds.labels[i]) bad++;
                lt_augment_image(ds.images + i * 48, 4, 4, 3, &lc.augment, NULL, ref);
                if (memcmp(ref, b.x + j * 48, sizeof ref)) bad++;
            }
        }
        CHECK_EQ_INT(i, 21);
        CHECK_EQ_INT(bad, 0);
    }
    lt_loader_free(ld);
    lc.drop_last = 1;
    REQUIRE_OK(lt_loader_init(&ld, &ds, NULL, &lc));
    CHECK_EQ_INT(lt_loader_num_batches(ld), 2);
    lt_loader_free(ld);
    lc.batch_size = 0;
    CHECK_EQ_INT(lt_loader_init(&ld, &ds, NULL, &lc), LT_ERR_ARG);
    CHECK(ld == NULL);
    lt_dataset_free(&ds);
}

/* ---- the whole protocol ---- */

TEST(data_load_generated_idx_folder) {
    /* An FMNIST-layout folder of gzip IDX files: 10 classes x 30 train, x 4 test. */
    const char *dir = lt_test_tmpdir();
    uint8_t lab[300], tlab[40];
    for (int i = 0; i < 300; i++) lab[i] = (uint8_t)(i % 10);
    for (int i = 0; i < 40; i++) tlab[i] = (uint8_t)(i % 10);
    write_idx(tpath(dir, "train-images-idx3-ubyte.gz"), tpath(dir, "train-labels-idx1-ubyte.gz"), 300, 28, 28, lab, 1);
    write_idx(tpath(dir, "t10k-images-idx3-ubyte.gz"), tpath(dir, "t10k-labels-idx1-ubyte.gz"), 40, 28, 28, tlab, 1);
    lt_data_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.kind = LT_DATASET_FMNIST;
    spec.root = dir;
    lt_longtail_config_default(&spec.longtail);
    spec.longtail.val_per_class = 5;
    spec.longtail.imbalance_factor = 5;
    lt_data d;
    REQUIRE_OK(lt_data_load(&d, &spec));
    CHECK_EQ_INT(d.split.n_max, 25);
    int64_t counts[10];
    lt_dataset_class_counts(&d.train, counts);
    for (int k = 0; k < 10; k++) {
        CHECK_EQ_INT(counts[k], (int64_t)(25.0 * pow(0.2, k / 9.0)));
        CHECK_EQ_INT(d.source_counts[k], 30);
    }
    lt_dataset_class_counts(&d.val, counts);
    for (int k = 0; k < 10; k++) CHECK_EQ_INT(counts[k], 5);
    CHECK_EQ_INT(d.test.n, 40);
    /* train images are the source images the split named */
    CHECK_EQ_INT(d.train.images[5 * 784 + 100], (7 * d.split.train_idx[5] + 3 * 3 + 16) & 255);
    CHECK(strcmp(d.train.class_names[0], "T-shirt/top") == 0);
    lt_data_free(&d);
    lt_data_free(&d);
    /* a missing test file fails cleanly */
    remove(tpath(dir, "t10k-labels-idx1-ubyte.gz"));
    CHECK_EQ_INT(lt_data_load(&d, &spec), LT_ERR_IO);
    CHECK_MSG("t10k-labels-idx1-ubyte", NULL);
}

/* The built-in default on Debian's dataset-fashion-mnist (installed by `make deps`). */
TEST(data_fmnist_default_counts) {
    lt_data_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.kind = LT_DATASET_FMNIST;
    lt_longtail_config_default(&spec.longtail);
    lt_data d;
    lt_status st = lt_data_load(&d, &spec);
    if (st != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "Fashion-MNIST (Debian dataset-fashion-mnist, `make deps`): %s",
                     lt_last_error());
        return;
    }
    CHECK_EQ_INT(d.train.h, 28);
    CHECK_EQ_INT(d.test.n, 10000);
    const int64_t want[10] = {5980, 3584, 2149, 1288, 772, 463, 277, 166, 99, 59};
    for (int k = 0; k < 10; k++) {
        CHECK_EQ_INT(d.split.train_counts[k], want[k]);
        CHECK_EQ_INT(d.split.val_counts[k], 20);
        CHECK_EQ_INT(d.source_counts[k], 6000);
    }
    lt_data_free(&d);
}

/* ---- every allocation failure is an error, never a crash or a leak (ASan checks leaks) ---- */

static long fail_at, alloc_calls;
static void *fail_malloc(size_t n, void *u) {
    (void)u;
    return __atomic_add_fetch(&alloc_calls, 1, __ATOMIC_SEQ_CST) == fail_at ? NULL : malloc(n);
}
static void *fail_realloc(void *p, size_t n, void *u) {
    (void)u;
    return __atomic_add_fetch(&alloc_calls, 1, __ATOMIC_SEQ_CST) == fail_at ? NULL : realloc(p, n);
}
static const lt_alloc_hook fail_hook = {fail_malloc, fail_realloc, rec_free, NULL};

TEST(data_alloc_failures_are_clean) {
    /* a small source of every kind: IDX (gzip) via lt_data_load, a folder, a list */
    char dir[600];
    snprintf(dir, sizeof dir, "%s", lt_test_tmpdir());
    uint8_t lab[60];
    int32_t lab32[60];
    for (int i = 0; i < 60; i++) lab32[i] = lab[i] = (uint8_t)(i % 10);
    write_idx(tpath(dir, "train-images-idx3-ubyte.gz"), tpath(dir, "train-labels-idx1-ubyte.gz"), 60, 6, 6, lab, 1);
    write_idx(tpath(dir, "t10k-images-idx3-ubyte.gz"), tpath(dir, "t10k-labels-idx1-ubyte.gz"), 20, 6, 6, lab, 1);
    mkdir(tpath(dir, "f"), 0700);
    mkdir(tpath(dir, "f/a"), 0700);
    mkdir(tpath(dir, "f/b"), 0700);
    uint8_t img[5 * 7 * 3];
    make_rgb(img, 5, 7, 0);
    CHECK(stbi_write_png(tpath(dir, "f/a/0.png"), 5, 7, 3, img, 15));
    CHECK(stbi_write_bmp(tpath(dir, "f/b/1.bmp"), 5, 7, 3, img));
    const char *list = "f/a/0.png 0\nf/b/1.bmp 1\n";
    write_bytes(tpath(dir, "l.txt"), list, strlen(list), 0);
    char list_path[1100];
    snprintf(list_path, sizeof list_path, "%s", tpath(dir, "l.txt"));
    char folder[1100];
    snprintf(folder, sizeof folder, "%s", tpath(dir, "f"));

    lt_data_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.kind = LT_DATASET_FMNIST;
    spec.root = dir;
    lt_longtail_config_default(&spec.longtail);
    spec.longtail.val_per_class = 1;
    lt_image_options opt = {4, 4, 3};
    lt_set_threads(1);   /* decode order, hence allocation order, fixed */
    uint8_t ref_pixels[96];
    lt_dataset ref;
    REQUIRE_OK(lt_dataset_read_folder(&ref, folder, &opt, NULL));
    memcpy(ref_pixels, ref.images, 96);
    lt_dataset_free(&ref);
    for (int what = 0; what < 4; what++) {
        int failures = 0, clean = 1, tries = 0;
        for (fail_at = 1; fail_at < 400; fail_at++) {
            alloc_calls = 0;
            lt_data d;
            lt_dataset ds;
            lt_sampler s;
            lt_loader *ld = NULL;
            lt_status st;
            lt_set_alloc_hook(&fail_hook);
            if (what == 0) {
                st = lt_data_load(&d, &spec);
            } else if (what == 1) {
                st = lt_dataset_read_folder(&ds, folder, &opt, NULL);
            } else if (what == 2) {
                st = lt_dataset_read_list(&ds, dir, list_path, &opt, 0);
            } else {
                lt_sampler_config sc;
                lt_sampler_config_default(&sc);
                sc.kind = LT_SAMPLER_QPOWER;
                st = lt_sampler_init(&s, &sc, lab32, 60, 10, 1);
                if (st == LT_OK) {
                    lt_dataset fake = {.images = img, .labels = lab32, .n = 60, .h = 1, .w = 1, .c = 1, .n_classes = 10};
                    lt_loader_config lc = {.batch_size = 8};
                    lt_augment_config_default(&lc.augment);
                    st = lt_loader_init(&ld, &fake, &s, &lc);
                    if (st != LT_OK) lt_sampler_free(&s);
                }
            }
            lt_set_alloc_hook(NULL);
            tries++;
            if (alloc_calls < fail_at) {   /* ran to the end without hitting the failure */
                if (st != LT_OK) clean = 0;
                if (what == 0 && st == LT_OK) lt_data_free(&d);
                if ((what == 1 || what == 2) && st == LT_OK) lt_dataset_free(&ds);
                if (what == 3 && st == LT_OK) {
                    lt_loader_free(ld);
                    lt_sampler_free(&s);
                }
                break;
            }
            if (st == LT_OK) {
                /* Only stb_image may survive a failed allocation: its format probes treat a
                 * failed allocation as "not this format" and move on. The result must then
                 * be complete and right. */
                int right = 1;
                if (what == 1 || what == 2) {
                    right = ds.n == 2 && ds.labels[0] == 0 && ds.labels[1] == 1 && memcmp(ds.images, ref_pixels, 96) == 0;
                    lt_dataset_free(&ds);
                } else {
                    lt_test_fail(__FILE__, __LINE__, "case %d: allocation %ld failed but the call succeeded", what, fail_at);
                    if (what == 0) lt_data_free(&d);
                    if (what == 3) {
                        lt_loader_free(ld);
                        lt_sampler_free(&s);
                    }
                }
                if (!right) {
                    clean = 0;
                    lt_test_fail(__FILE__, __LINE__, "case %d: allocation %ld failed and the result is wrong", what, fail_at);
                }
            } else {
                failures++;
                if ((what == 1 || what == 2) && !dataset_empty(&ds)) clean = 0;
                if (what == 3 && ld != NULL) clean = 0;
            }
        }
        CHECK(clean);
        CHECK(failures > 3);
        CHECK(tries < 400);
    }
    lt_set_threads(0);
}
