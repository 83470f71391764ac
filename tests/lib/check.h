/* Minimal unit-test harness.
 *
 * A test file defines cases with TEST(name) { ... } and includes nothing else
 * from the harness; the harness supplies main(). Each case prints one result
 * line that tests/run.sh counts:
 *
 *   ok - FILE/name
 *   not ok - FILE/name: file.c:42: CHECK(x == y) failed
 *   skip - FILE/name: reason
 *
 * A failed CHECK ends the case (cases are independent functions). Cases run in
 * the order they appear. The exit status is non-zero when any case failed.
 */
#ifndef XB_TESTS_CHECK_H
#define XB_TESTS_CHECK_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xb_test {
	const char *name;
	void (*fn)(void);
	struct xb_test *next;
};

void xb_test_register(struct xb_test *t);
_Noreturn void xb_test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
_Noreturn void xb_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xb_test_hexdump(const char *what, const void *p, size_t n);

#define TEST(n)                                                              \
	static void test_##n(void);                                          \
	static struct xb_test xb_test_##n = { #n, test_##n, NULL };          \
	__attribute__((constructor)) static void xb_reg_##n(void)            \
	{ xb_test_register(&xb_test_##n); }                                  \
	static void test_##n(void)

#define CHECK(c)                                                             \
	do { if (!(c)) xb_test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #c); } while (0)

#define CHECK_INT(a, op, b)                                                  \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (!(a_ op b_))                                             \
			xb_test_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", \
				     #a, #op, #b, a_, b_);                   \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *a_ = (a), *b_ = (b);                             \
		if (!a_ || !b_ || strcmp(a_, b_))                            \
			xb_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", \
				     #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

#define CHECK_MEM(a, b, n)                                                   \
	do {                                                                 \
		if (memcmp((a), (b), (n))) {                                 \
			xb_test_hexdump(#a, (a), (n));                       \
			xb_test_hexdump(#b, (b), (n));                       \
			xb_test_fail(__FILE__, __LINE__, "%s == %s (%zu bytes) differ", \
				     #a, #b, (size_t)(n));                   \
		}                                                            \
	} while (0)

#define SKIP(...) xb_test_skip(__VA_ARGS__)

/* Decode a hex string into out (n bytes); aborts the case on bad input. */
void xb_test_unhex(uint8_t *out, size_t n, const char *hex);

/* A shell command's output (up to 64 KiB; overwritten by the next call). */
char *xb_test_run(const char *cmd);
/* Move this test process into a new network namespace of its own, with lo
 * up; skips (with the reason) when not root or when that fails. Nothing the
 * test does there can reach the host. */
void xb_test_private_netns(void);

#endif
