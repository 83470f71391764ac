/* The unit-test harness's runner: see check.h. */
#include "tests/lib/check.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>

static struct xb_test *head, **tail = &head;
static jmp_buf case_env;
static const char *suite;
static const char *current;

void xb_test_register(struct xb_test *t)
{
	*tail = t;
	tail = &t->next;
}

void xb_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("not ok - %s/%s: %s:%d: ", suite, current, file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	longjmp(case_env, 1);
}

void xb_test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("skip - %s/%s: ", suite, current);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	longjmp(case_env, 2);
}

void xb_test_hexdump(const char *what, const void *p, size_t n)
{
	const uint8_t *b = p;

	printf("# %s:", what);
	for (size_t i = 0; i < n; i++)
		printf("%s%02x", i % 32 ? "" : "\n#   ", b[i]);
	printf("\n");
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void xb_test_unhex(uint8_t *out, size_t n, const char *hex)
{
	if (strlen(hex) != 2 * n)
		xb_test_fail(__FILE__, __LINE__, "hex string of %zu chars, want %zu",
			     strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			xb_test_fail(__FILE__, __LINE__, "bad hex at %zu", 2 * i);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	volatile int failed = 0;

	suite = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (struct xb_test *volatile t = head; t; t = t->next) {
		if (only && strcmp(only, t->name))
			continue;
		current = t->name;
		switch (setjmp(case_env)) {
		case 0:
			t->fn();
			printf("ok - %s/%s\n", suite, t->name);
			break;
		case 1:
			failed++;
			break;
		default:
			break;
		}
	}
	return failed ? 1 : 0;
}

char *xb_test_run(const char *cmd)
{
	static char out[65536];
	FILE *f = popen(cmd, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;

	out[n] = '\0';
	if (f)
		pclose(f);
	return out;
}

void xb_test_private_netns(void)
{
	if (geteuid() != 0)
		SKIP("needs root for a private network namespace (run: sudo make test)");
	if (unshare(CLONE_NEWNET) < 0)
		SKIP("unshare(CLONE_NEWNET) failed: %s", strerror(errno));
	if (system("ip link set lo up") != 0)
		SKIP("ip link set lo up failed in the private namespace");
}
