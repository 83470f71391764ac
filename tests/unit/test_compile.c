/* The policy compiler (policy/compile.h): the routing plan, the nftables
 * script against golden files, and the script in a real kernel.
 *
 *   golden   deploy/examples/small.conf and tests/compile/NAME.conf compile
 *            to exactly tests/compile/NAME.nft. XB_UPDATE_GOLDEN=1 rewrites
 *            the .nft files from what the compiler writes now (review the
 *            diff before committing).
 *   kernel   in a private network namespace (root only, else skipped):
 *            every golden script loads, loads again over itself, and
 *            `nft list' shows the sets and rules; packets written into a
 *            TUN device named like the device interface are judged by the
 *            rule the policy says (the rules' counters tell).
 *
 * Run from the top of the tree (make test does). Policies are loaded from a
 * temporary copy whose key files are made 0600 (git keeps no modes), by
 * relative name, so the FILE:LINE comments do not depend on where the copy
 * is.
 */
#include "tests/lib/check.h"
#include "gateway/nft.h"
#include "policy/compile.h"
#include "tunnel/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX - 256];
static char tmp[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		xb_test_fail(__FILE__, __LINE__, "command failed: %s", cmd);
}

/* A temporary copy of the example and test policies, keys made 0600. */
static void copy_tree(void)
{
	if (!root[0] && !getcwd(root, sizeof(root)))
		xb_test_fail(__FILE__, __LINE__, "getcwd: %s", strerror(errno));
	if (access("deploy/examples/small.conf", R_OK) != 0)
		xb_test_fail(__FILE__, __LINE__, "run from the top of the tree (make test)");
	strcpy(tmp, "/tmp/xb-test-compile.XXXXXX");
	CHECK(mkdtemp(tmp) != NULL);
	sh("cp -r deploy/examples '%s/examples' && cp -r tests/compile tests/policy '%s/' && "
	   "chmod 600 '%s'/examples/keys/* '%s'/policy/keys/*", tmp, tmp, tmp, tmp);
}

static void remove_tree(void)
{
	CHECK(chdir(root) == 0);
	sh("rm -rf '%s'", tmp);
}

/* Loads DIR/NAME.conf of the copy (DIR "examples" or "compile") and
 * allocates pool addresses from nothing. */
static struct xb_policy *load(const char *dir, const char *name)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmp, dir);
	CHECK(chdir(path) == 0);
	snprintf(path, sizeof(path), "%s.conf", name);
	p = xb_policy_load(path, &errs);
	if (p && xb_policy_allocate(p, NULL, &errs) < 0) {
		xb_policy_free(p);
		p = NULL;
	}
	if (!p)
		xb_errors_print(&errs, stdout);
	xb_errors_free(&errs);
	CHECK(chdir(root) == 0);
	CHECK(p != NULL);
	return p;
}

static char *compile(const struct xb_policy *p, const struct xb_compile_opts *o)
{
	struct xb_errors errs = { 0 };
	struct xb_plan plan;
	char *s;

	CHECK_INT(xb_plan_build(p, &plan, &errs), ==, 0);
	xb_errors_free(&errs);
	s = xb_compile_nft(p, &plan, o);
	xb_plan_free(&plan);
	CHECK(s != NULL);
	return s;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	CHECK(s && fread(s, 1, (size_t)n, f) == (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Compares with tests/compile/NAME.nft, or rewrites it. */
static void golden(const char *name, const char *got)
{
	char path[PATH_MAX];
	const char *upd = getenv("XB_UPDATE_GOLDEN");
	char *want;

	snprintf(path, sizeof(path), "%s/tests/compile/%s.nft", root, name);
	if (upd && !strcmp(upd, "1")) {
		FILE *f = fopen(path, "w");

		CHECK(f && fputs(got, f) >= 0 && fclose(f) == 0);
		return;
	}
	want = read_all(path);
	if (!want)
		xb_test_fail(__FILE__, __LINE__, "%s: %s (XB_UPDATE_GOLDEN=1 writes it)", path,
			     strerror(errno));
	if (strcmp(want, got)) {
		size_t i = 0;

		while (want[i] && want[i] == got[i])
			i++;
		printf("%s differs at byte %zu:\n--- want\n%.200s\n--- got\n%.200s\n", path, i,
		       want + i, got + i);
		free(want);
		xb_test_fail(__FILE__, __LINE__, "%s: output differs", name);
	}
	free(want);
}

static const struct { const char *dir, *name; } cases[] = {
	{ "examples", "small" }, { "compile", "families" }, { "compile", "v4only" },
};

TEST(golden_files)
{
	copy_tree();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xb_policy *p = load(cases[i].dir, cases[i].name);
		char *s = compile(p, NULL), *again = compile(p, NULL);

		CHECK_STR(s, again);	/* deterministic */
		golden(cases[i].name, s);
		free(s);
		free(again);
		xb_policy_free(p);
	}
	remove_tree();
}
