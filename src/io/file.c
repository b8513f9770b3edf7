/* Files: atomic writes (path.tmp, fflush, fsync, rename), whole-file reads, mkdir -p.
 *
 * rename(2) within one directory is atomic on POSIX file systems, so a reader of `path`
 * sees the old contents or the new ones, never a mix; the fsync before the rename makes
 * sure the new contents are on disk before the name points at them, and the fsync of the
 * directory after it makes the rename itself durable. */
#include "longtail/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lt_atomic_file {
    FILE *fp;
    char *path, *tmp;
    lt_status err;
    char msg[512];   /* the first error's message, re-raised by commit */
};

static void atomic_fail(lt_atomic_file *f, const char *what) {
    if (f->err) return;
    f->err = lt_error(LT_ERR_IO, "%s: %s: %s", f->tmp, what, strerror(errno));
    snprintf(f->msg, sizeof f->msg, "%s", lt_last_error());
}

lt_status lt_atomic_open(const char *path, lt_atomic_file **out) {
    *out = NULL;
    if (!path || !*path) return lt_error(LT_ERR_ARG, "lt_atomic_open: empty path");
    lt_atomic_file *f = lt_calloc(1, sizeof *f);
    size_t n = strlen(path);
    if (f) f->path = lt_strdup(path);
    if (f) f->tmp = lt_malloc(n + 5);
    if (!f || !f->path || !f->tmp) {
        if (f) { lt_free(f->path); lt_free(f->tmp); lt_free(f); }
        return lt_error(LT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".tmp", 5);
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        lt_status s = lt_error(LT_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
        lt_free(f->path); lt_free(f->tmp); lt_free(f);
        return s;
    }
    *out = f;
    return LT_OK;
}

lt_status lt_atomic_write(lt_atomic_file *f, const void *data, int64_t n) {
    if (f->err || n == 0) return f->err;
    if (n < 0 || !data) {
        f->err = lt_error(LT_ERR_ARG, "%s: lt_atomic_write of %lld bytes from %p", f->path, (long long)n, data);
        snprintf(f->msg, sizeof f->msg, "%s", lt_last_error());
        return f->err;
    }
    if (fwrite(data, 1, (size_t)n, f->fp) != (size_t)n) atomic_fail(f, "write failed");
    return f->err;
}

lt_status lt_atomic_printf(lt_atomic_file *f, const char *fmt, ...) {
    if (f->err) return f->err;
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f->fp, fmt, ap);
    va_end(ap);
    if (r < 0) atomic_fail(f, "write failed");
    return f->err;
}

static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;   /* best effort: some file systems refuse directory fsync */
    (void)fsync(fd);
    close(fd);
}

static void atomic_release(lt_atomic_file *f) {
    lt_free(f->path);
    lt_free(f->tmp);
    lt_free(f);
}

lt_status lt_atomic_commit(lt_atomic_file *f) {
    if (!f->err && fflush(f->fp) != 0) atomic_fail(f, "write failed");
    if (!f->err && fsync(fileno(f->fp)) != 0) atomic_fail(f, "fsync failed");
    int closed = fclose(f->fp);
    f->fp = NULL;
    if (!f->err && closed != 0) atomic_fail(f, "close failed");
    if (!f->err && rename(f->tmp, f->path) != 0) {
        f->err = lt_error(LT_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp, strerror(errno));
        snprintf(f->msg, sizeof f->msg, "%s", lt_last_error());
    }
    lt_status s = f->err;
    if (s) {
        remove(f->tmp);
        lt_error(s, "%s", f->msg);
    } else {
        fsync_parent_dir(f->path);
    }
    atomic_release(f);
    return s;
}

void lt_atomic_abort(lt_atomic_file *f) {
    if (!f) return;
    if (f->fp) fclose(f->fp);
    remove(f->tmp);
    atomic_release(f);
}

lt_status lt_file_write_atomic(const char *path, const void *data, int64_t n) {
    lt_atomic_file *f;
    lt_status s = lt_atomic_open(path, &f);
    if (s) return s;
    lt_atomic_write(f, data, n);
    return lt_atomic_commit(f);
}

lt_status lt_file_read(const char *path, int64_t max_bytes, char **data, int64_t *n) {
    *data = NULL;
    if (n) *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lt_error(LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return lt_error(LT_ERR_IO, "%s: not a regular file", path);
    }
    int64_t size = (int64_t)st.st_size;
    if (max_bytes > 0 && size > max_bytes) {
        fclose(fp);
        return lt_error(LT_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %lld",
                        path, (long long)size, (long long)max_bytes);
    }
    char *buf = lt_malloc((size_t)size + 1);
    if (!buf) { fclose(fp); return lt_error(LT_ERR_NOMEM, "%s: out of memory reading %lld bytes", path, (long long)size); }
    size_t got = fread(buf, 1, (size_t)size, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (got != (size_t)size || bad) {
        lt_free(buf);
        return lt_error(LT_ERR_IO, "%s: read %zu of %lld bytes", path, got, (long long)size);
    }
    buf[size] = '\0';
    *data = buf;
    if (n) *n = size;
    return LT_OK;
}

int lt_path_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}

static lt_status mkdir_one(const char *dir) {
    struct stat st;
    if (mkdir(dir, 0777) == 0) return LT_OK;
    int e = errno;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return LT_OK;
    if (e == EEXIST) return lt_error(LT_ERR_IO, "%s: exists and is not a directory", dir);
    return lt_error(LT_ERR_IO, "%s: cannot create directory: %s", dir, strerror(e));
}

lt_status lt_mkdir_p(const char *path) {
    if (!path || !*path) return lt_error(LT_ERR_ARG, "lt_mkdir_p: empty path");
    char *p = lt_strdup(path);
    if (!p) return lt_error(LT_ERR_NOMEM, "%s: out of memory", path);
    lt_status s = LT_OK;
    for (char *c = p + 1; *c && !s; c++) {
        if (*c != '/') continue;
        *c = '\0';
        s = mkdir_one(p);
        *c = '/';
    }
    if (!s) s = mkdir_one(p);
    lt_free(p);
    return s;
}
