/* Test runner: see test.h. */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TESTS 1024

static struct { const char *name, *file; lt_test_fn fn; } tests[MAX_TESTS];
static int n_tests;
static int cur_failures;
static const char *cur_name;
static char tmp_root[256];
static char cur_tmp[512];

void lt_test_register(const char *name, lt_test_fn fn, const char *file) {
    if (n_tests == MAX_TESTS) { fprintf(stderr, "too many tests\n"); exit(2); }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    tests[n_tests].file = file;
    n_tests++;
}

void lt_test_fail(const char *file, int line, const char *fmt, ...) {
    if (cur_failures < 8) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stdout, "  FAIL %s (%s:%d): ", cur_name, file, line);
        vfprintf(stdout, fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
    }
    cur_failures++;
}

int lt_test_failed_now(void) { return cur_failures > 0; }

int lt_test_close(const char *file, int line, const char *what, const float *got,
                  const float *want, int64_t n, double atol, double rtol) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (!(fabs(g - w) <= atol + rtol * fabs(w))) {
            if (bad < 3) lt_test_fail(file, line, "%s[%lld]: got %.9g, want %.9g", what, (long long)i, g, w);
            bad++;
        }
    }
    if (bad > 3) lt_test_fail(file, line, "%s: %d of %lld elements differ", what, bad, (long long)n);
    return bad == 0;
}

const char *lt_test_fixture(const char *name) {
    static char buf[512];
    const char *root = getenv("LT_TEST_ROOT");
    snprintf(buf, sizeof buf, "%s/tests/fixtures/%s", root ? root : ".", name);
    return buf;
}

const char *lt_test_tmpdir(void) {
    static int k;
    snprintf(cur_tmp, sizeof cur_tmp, "%s/t%d", tmp_root, k++);
    mkdir(cur_tmp, 0700);
    return cur_tmp;
}

static void cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp_root);
}

int main(int argc, char **argv) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/longtail-test-XXXXXX");
    if (!mkdtemp(tmp_root)) { perror("mkdtemp"); return 2; }
    atexit(cleanup);
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strstr(tests[i].name, argv[a])) want = 1;
        if (!want) continue;
        cur_name = tests[i].name;
        cur_failures = 0;
        lt_clear_error();
        tests[i].fn();
        if (cur_failures) { failed++; printf("FAIL %s\n", tests[i].name); }
        else { passed++; printf("ok   %s\n", tests[i].name); }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
