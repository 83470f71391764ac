/* For fuzz targets that need a loaded policy: written with its key into a
 * fresh directory under TMPDIR (else /dev/shm, else /tmp; the key file must
 * be 0600), loaded once.
 * The key is the committed test key tests/policy/keys/gw.key. */
#ifndef XB_TESTS_FUZZ_POLICY_H
#define XB_TESTS_FUZZ_POLICY_H

#include "policy/policy.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256];
static const char *fuzz_files[8];	/* what to remove at exit */

static void fuzz_cleanup(void)
{
	char path[512];

	for (size_t i = 0; i < 8 && fuzz_files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", fuzz_dir, fuzz_files[i]);
		unlink(path);
	}
	rmdir(fuzz_dir);
}

/* Writes dir/name; name must be a literal (it is kept for fuzz_cleanup). */
static void fuzz_write(const char *name, const char *text, mode_t mode)
{
	char path[512];
	size_t i;
	int fd;

	for (i = 0; i < 7 && fuzz_files[i] && strcmp(fuzz_files[i], name); i++)
		;
	fuzz_files[i] = name;
	snprintf(path, sizeof(path), "%s/%s", fuzz_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) < 0) {
		perror(path);
		abort();
	}
}

/* conf: the policy's text; its key file is "gw.key". Files the target
 * writes with fuzz_write go into the same directory; the directory goes at
 * exit. */
static struct xb_policy *fuzz_policy(const char *conf)
{
	const char *tmp = getenv("TMPDIR");

	/* Targets that write files each run are faster on a tmpfs. */
	if ((!tmp || !*tmp) && access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[512];

	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/xb-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fuzz_dir)) {
		perror(fuzz_dir);
		abort();
	}
	atexit(fuzz_cleanup);
	fuzz_write("gw.key", "mF4d/96W8I2d2yeqxh2Xcw9/Vi5BdKS90bCB3puspFQ=\n", 0600);
	fuzz_write("xborder.conf", conf, 0644);
	snprintf(path, sizeof(path), "%s/xborder.conf", fuzz_dir);
	if (!(p = xb_policy_load(path, &errs))) {
		xb_errors_print(&errs, stderr);
		abort();
	}
	xb_errors_free(&errs);
	return p;
}

#endif
