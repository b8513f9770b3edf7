/* IDX reader (LeCun's MNIST format, also Fashion-MNIST): big-endian header
 *   0x00 0x00 <type> <ndims>, then ndims uint32 sizes, then the payload (type 0x08 = ubyte).
 * Plain files are checked against their size before anything is allocated; gzip files
 * (detected by magic 1f 8b) are inflated with zlib into a buffer that grows with the data
 * actually decompressed, so a header that lies about its dimensions cannot trigger a huge
 * allocation. */
#include "data/data_internal.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
/* deflate cannot compress better than about 1032:1 (zlib technical details); a header
 * claiming more than this is lying before we inflate a single byte. */
#define GZIP_MAX_RATIO 1032

typedef struct idx_file {
    const char *path;
    int gz;
    FILE *f;
    gzFile g;
    int64_t pos;           /* offset in the (uncompressed) stream */
} idx_file;

static lt_status idx_read(idx_file *x, void *buf, int64_t n) {
    if (!x->gz) {
        lt_status st = lt_data_read_exact(x->f, x->path, x->pos, buf, n);
        if (st == LT_OK) x->pos += n;
        return st;
    }
    int64_t done = 0;
    while (done < n) {
        int64_t want = n - done;
        if (want > (1 << 30)) want = 1 << 30;
        int got = gzread(x->g, (char *)buf + done, (unsigned)want);
        if (got < 0) {
            int err;
            const char *msg = gzerror(x->g, &err);
            return lt_error(LT_ERR_FORMAT, "%s: corrupt gzip data at uncompressed offset %lld: %s", x->path,
                            (long long)(x->pos + done), msg);
        }
        if (got == 0) {
            return lt_error(LT_ERR_FORMAT, "%s: truncated: data ends at uncompressed offset %lld, expected %lld more bytes",
                            x->path, (long long)(x->pos + done), (long long)(n - done));
        }
        done += got;
    }
    x->pos += n;
    return LT_OK;
}

static void idx_close(idx_file *x) {
    if (x->f) fclose(x->f);
    if (x->g) gzclose(x->g);
    x->f = NULL;
    x->g = NULL;
}

/* Reads the header and payload of an IDX ubyte file with `ndims` dimensions. *payload is
 * lt_malloc'ed (free with lt_free); its length is the product of dims. */
static lt_status idx_load(const char *path, int ndims, int64_t *dims, uint8_t **payload) {
    *payload = NULL;
    idx_file x = {.path = path};
    int64_t fsize = lt_data_file_size(path);
    x.f = fsize >= 0 ? fopen(path, "rb") : NULL;
    if (!x.f) return lt_error(LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    x.gz = lt_data_is_gzip(x.f);
    if (x.gz) {
        fclose(x.f);
        x.f = NULL;
        x.g = gzopen(path, "rb");
        if (!x.g) return lt_error(LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        gzbuffer(x.g, 1 << 18);
    }
    uint8_t head[4 + 4 * 4];
    int64_t hlen = 4 + 4 * (int64_t)ndims;
    lt_status st = idx_read(&x, head, 4);
    if (st != LT_OK) goto fail;
    if (head[0] != 0 || head[1] != 0 || head[2] != IDX_UBYTE || head[3] != ndims) {
        st = lt_error(LT_ERR_FORMAT,
                      "%s: not an IDX ubyte file with %d dimensions: magic at byte offset 0 is %02x %02x %02x %02x, "
                      "expected 00 00 08 %02x", path, ndims, head[0], head[1], head[2], head[3], ndims);
        goto fail;
    }
    st = idx_read(&x, head + 4, 4 * (int64_t)ndims);
    if (st != LT_OK) goto fail;
    int64_t total = 1;
    for (int d = 0; d < ndims; d++) {
        const uint8_t *b = head + 4 + 4 * d;
        dims[d] = ((int64_t)b[0] << 24) | ((int64_t)b[1] << 16) | ((int64_t)b[2] << 8) | b[3];
        /* each factor < 2^32, so the running product of up to 3 cannot overflow int64 after
         * this check */
        if (dims[d] == 0 && d > 0) {
            st = lt_error(LT_ERR_FORMAT, "%s: dimension %d at byte offset %d is 0", path, d, 4 + 4 * d);
            goto fail;
        }
        if (__builtin_mul_overflow(total, dims[d], &total)) {
            st = lt_error(LT_ERR_FORMAT, "%s: dimensions in the header (byte offsets 4..%lld) overflow", path,
                          (long long)hlen - 1);
            goto fail;
        }
    }
    if (!x.gz && total != fsize - hlen) {
        if (total > fsize - hlen)
            st = lt_error(LT_ERR_FORMAT,
                          "%s: truncated or lying header: dimensions at byte offset 4 claim %lld data bytes, "
                          "but the file has %lld after the %lld-byte header", path, (long long)total,
                          (long long)(fsize - hlen), (long long)hlen);
        else
            st = lt_error(LT_ERR_FORMAT, "%s: %lld unexpected bytes after the data, at byte offset %lld", path,
                          (long long)(fsize - hlen - total), (long long)(hlen + total));
        goto fail;
    }
    if (x.gz && total / GZIP_MAX_RATIO > fsize) {
        st = lt_error(LT_ERR_FORMAT,
                      "%s: lying header: dimensions at offset 4 claim %lld bytes, more than a %lld-byte gzip file can hold",
                      path, (long long)total, (long long)fsize);
        goto fail;
    }
    /* Grow with the data actually read: start at min(total, 64 MiB) and double. */
    int64_t cap = total < (64 << 20) ? total : (64 << 20);
    uint8_t *buf = lt_malloc((size_t)(cap ? cap : 1));
    if (!buf) {
        st = lt_error(LT_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)cap);
        goto fail;
    }
    int64_t have = 0;
    while (have < total) {
        if (have == cap) {
            int64_t ncap = cap * 2 < total ? cap * 2 : total;
            uint8_t *nb = lt_realloc(buf, (size_t)ncap);
            if (!nb) {
                lt_free(buf);
                st = lt_error(LT_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)ncap);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        st = idx_read(&x, buf + have, cap - have);
        if (st != LT_OK) {
            lt_free(buf);
            goto fail;
        }
        have = cap;
    }
    if (x.gz) {
        uint8_t extra;
        int got = gzread(x.g, &extra, 1);
        if (got != 0) {
            lt_free(buf);
            st = got < 0 ? lt_error(LT_ERR_FORMAT, "%s: corrupt gzip data after uncompressed offset %lld", path,
                                    (long long)x.pos)
                         : lt_error(LT_ERR_FORMAT, "%s: unexpected bytes after the data, at uncompressed offset %lld",
                                    path, (long long)x.pos);
            goto fail;
        }
    }
    idx_close(&x);
    *payload = buf;
    return LT_OK;
fail:
    idx_close(&x);
    return st;
}

lt_status lt_dataset_read_idx(lt_dataset *ds, const char *images_path, const char *labels_path,
                              int32_t n_classes, const char *const *class_names) {
    memset(ds, 0, sizeof *ds);
    if (n_classes < 1 || n_classes > 256)
        return lt_error(LT_ERR_ARG, "idx: class count %d outside 1..256", n_classes);
    int64_t idims[3], ldims[1];
    uint8_t *images = NULL, *labels = NULL;
    lt_status st = idx_load(images_path, 3, idims, &images);
    if (st != LT_OK) return st;
    st = idx_load(labels_path, 1, ldims, &labels);
    if (st != LT_OK) {
        lt_free(images);
        return st;
    }
    if (ldims[0] != idims[0]) {
        st = lt_error(LT_ERR_FORMAT, "%s: %lld labels (count at byte offset 4), but %s has %lld images",
                      labels_path, (long long)ldims[0], images_path, (long long)idims[0]);
        goto fail;
    }
    for (int64_t i = 0; i < ldims[0]; i++)
        if (labels[i] >= n_classes) {
            st = lt_error(LT_ERR_FORMAT, "%s: label %d at byte offset %lld is not below the class count %d",
                          labels_path, labels[i], (long long)(8 + i), n_classes);
            goto fail;
        }
    ds->labels = lt_malloc((size_t)(idims[0] ? idims[0] : 1) * sizeof(int32_t));
    if (!ds->labels) {
        st = lt_error(LT_ERR_NOMEM, "idx: out of memory for %lld labels", (long long)idims[0]);
        goto fail;
    }
    for (int64_t i = 0; i < ldims[0]; i++) ds->labels[i] = labels[i];
    lt_free(labels);
    labels = NULL;
    ds->images = images;
    ds->n = idims[0];
    ds->h = idims[1];
    ds->w = idims[2];
    ds->c = 1;
    st = lt_data_set_class_names(ds, n_classes, class_names);
    if (st != LT_OK) lt_dataset_free(ds);
    return st;
fail:
    lt_free(images);
    lt_free(labels);
    lt_dataset_free(ds);
    return st;
}
