/* Minimal test harness. A test is `TEST(name) { ... }` in any C file under tests/; it registers
 * itself at load time. CHECK* record a failure (with file:line and values) and go on;
 * REQUIRE* also end the test. The runner prints one line per failure and, last,
 * "N passed, N failed"; it exits non-zero if anything failed.
 * Usage: test_longtail [substring...]   runs only tests whose name contains a substring. */
#ifndef LT_TEST_H
#define LT_TEST_H

#include "longtail/longtail.h"

#include <math.h>
#include <stdio.h>

typedef void (*lt_test_fn)(void);
void lt_test_register(const char *name, lt_test_fn fn, const char *file);
void lt_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int lt_test_failed_now(void);
/* Path of a committed fixture: "tests/fixtures/<name>" relative to the repo root. */
const char *lt_test_fixture(const char *name);
/* A fresh temporary directory for this test (removed at exit). */
const char *lt_test_tmpdir(void);

#define TEST(name)                                                               \
    static void test_##name(void);                                               \
    __attribute__((constructor)) static void register_##name(void) {             \
        lt_test_register(#name, test_##name, __FILE__);                          \
    }                                                                            \
    static void test_##name(void)

#define CHECK(c) \
    do { if (!(c)) lt_test_fail(__FILE__, __LINE__, "CHECK(%s)", #c); } while (0)
#define REQUIRE(c) \
    do { if (!(c)) { lt_test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #c); return; } } while (0)
#define CHECK_EQ_INT(a, b) \
    do { long long a_ = (long long)(a), b_ = (long long)(b); \
         if (a_ != b_) lt_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_NEAR(a, b, tol) \
    do { double a_ = (double)(a), b_ = (double)(b); \
         if (!(fabs(a_ - b_) <= (tol))) lt_test_fail(__FILE__, __LINE__, "%s ≈ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); } while (0)
#define CHECK_OK(expr) \
    do { lt_status s_ = (expr); \
         if (s_ != LT_OK) lt_test_fail(__FILE__, __LINE__, "%s: %s: %s", #expr, lt_status_name(s_), lt_last_error()); } while (0)
#define REQUIRE_OK(expr) \
    do { lt_status s_ = (expr); \
         if (s_ != LT_OK) { lt_test_fail(__FILE__, __LINE__, "%s: %s: %s", #expr, lt_status_name(s_), lt_last_error()); return; } } while (0)

/* Compares n floats: |a-b| <= atol + rtol·|b|; reports the first mismatches. Returns 1 if equal. */
int lt_test_close(const char *file, int line, const char *what, const float *got,
                  const float *want, int64_t n, double atol, double rtol);
#define CHECK_CLOSE(what, got, want, n, atol, rtol) \
    lt_test_close(__FILE__, __LINE__, what, got, want, n, atol, rtol)

#endif
