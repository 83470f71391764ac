/* libFuzzer: a whole policy file, as an operator might mistype it, through
 * the loader (libconfig, then every section's checks) and, when it loads,
 * the path plan, the nft compiler and the printer. Checks: a load that fails
 * said why, with at least one error whose message is not empty and whose
 * line is within the file it names (0: the file as a whole); a load that
 * succeeds gave a plan or an error for it, and the compiler's text is the
 * same when asked twice (docs: deterministic). Keys are where the committed
 * policies look for them ("../keys/gw.key") and beside the file ("gw.key");
 * the seeds are tests/policy/good and bad. */
#include "policy/compile.h"
#include "policy/policy.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 (Debian 12) leaks what its scanner was holding when the
 * parser stops at a syntax error: the string it was building, a token's
 * copy (a few bytes a failed load). Those are the library's (fixed in its
 * 1.7) and no call of ours could free them; the settings a parse makes,
 * which config_destroy() must free, are allocated elsewhere and stay
 * checked. */
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static const char key[] = "mF4d/96W8I2d2yeqxh2Xcw9/Vi5BdKS90bCB3puspFQ=\n";
static char dir[256], conf[300];
static char sub[2][300];

static void cleanup(void)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/keys/gw.key", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/conf/gw.key", dir);
	unlink(p);
	unlink(conf);
	rmdir(sub[0]);
	rmdir(sub[1]);
	rmdir(dir);
}

static void put(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	check(fd >= 0 && write(fd, p, n) == (ssize_t)n && close(fd) == 0);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char p[400];

	if ((!tmp || !*tmp) && access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	snprintf(dir, sizeof(dir), "%s/xb-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	check(mkdtemp(dir));
	atexit(cleanup);
	snprintf(sub[0], sizeof(sub[0]), "%s/keys", dir);
	snprintf(sub[1], sizeof(sub[1]), "%s/conf", dir);
	check(mkdir(sub[0], 0700) == 0 && mkdir(sub[1], 0700) == 0);
	snprintf(p, sizeof(p), "%s/gw.key", sub[0]);
	put(p, key, strlen(key), 0600);
	snprintf(p, sizeof(p), "%s/gw.key", sub[1]);
	put(p, key, strlen(key), 0600);
	snprintf(conf, sizeof(conf), "%s/xborder.conf", sub[1]);
}

/* Lines in the main file, counting a last line without its newline. */
static unsigned lines(const uint8_t *data, size_t size)
{
	unsigned n = 0;

	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n + (size && data[size - 1] != '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;

	if (!dir[0])
		setup();
	if (size > 16384)
		return 0;
	put(conf, data, size, 0644);
	p = xb_policy_load(conf, &errs);
	if (!p) {
		check(errs.n > 0 || errs.oom);
		for (size_t i = 0; i < errs.n; i++) {
			check(errs.v[i].msg && errs.v[i].msg[0]);
			check(errs.v[i].file);
			if (!strcmp(errs.v[i].file, conf))
				check(errs.v[i].line <= lines(data, size) + 1);
		}
		xb_errors_free(&errs);
		return 0;
	}
	check(errs.n == 0);

	struct xb_plan plan = { 0 };

	if (xb_plan_build(p, &plan, &errs) == 0) {
		char *a = xb_compile_nft(p, &plan, NULL), *b = xb_compile_nft(p, &plan, NULL);

		check(a && b && !strcmp(a, b));
		free(a);
		free(b);
	} else {
		check(errs.n > 0);
	}
	xb_plan_free(&plan);

	FILE *out = fopen("/dev/null", "we");

	check(out);
	xb_policy_print(p, out);
	fclose(out);
	xb_errors_free(&errs);
	xb_policy_free(p);
	return 0;
}
