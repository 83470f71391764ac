/* JSON-lines log: lines, the size cap with one rotation, reopen after an
 * outside rename, and counted write errors (/dev/full). */
#include "tests/lib/check.h"
#include "common/jsonlog.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], path[128], path1[160];

static void setup(void)
{
	strcpy(dir, "/tmp/xb-test-jsonlog.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(path1, sizeof(path1), "%s.1", path);
}

static void teardown(void)
{
	unlink(path);
	unlink(path1);
	rmdir(dir);
}

/* Lines in file f, each checked to be a JSON object; -1 if it is missing. */
static int lines(const char *f)
{
	char buf[4096];
	FILE *fp = fopen(f, "r");
	int n = 0;

	if (!fp)
		return -1;
	while (fgets(buf, sizeof(buf), fp)) {
		json_t *o = json_loads(buf, 0, NULL);

		CHECK(buf[strlen(buf) - 1] == '\n');
		CHECK(json_is_object(o));
		json_decref(o);
		n++;
	}
	fclose(fp);
	return n;
}

static off_t size(const char *f)
{
	struct stat st;

	return stat(f, &st) == 0 ? st.st_size : -1;
}

TEST(lines_appended)
{
	struct xb_jsonlog *l;
	json_t *o = json_pack("{s:s, s:i, s:s}", "event", "report", "seq", 7, "text", "a\nb\"c");

	setup();
	l = xb_jsonlog_open(path, 0);
	CHECK(l != NULL);
	for (int i = 0; i < 10; i++)
		CHECK_INT(xb_jsonlog_write(l, o), ==, 0);
	xb_jsonlog_close(l);
	/* Reopened: appends, does not truncate. */
	l = xb_jsonlog_open(path, 0);
	CHECK_INT(xb_jsonlog_write(l, o), ==, 0);
	xb_jsonlog_close(l);
	CHECK_INT(lines(path), ==, 11);
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "head -n1 %s", path);
	CHECK_STR(xb_test_run(cmd),
		  "{\"event\":\"report\",\"seq\":7,\"text\":\"a\\nb\\\"c\"}\n");
	json_decref(o);
	teardown();
}

/* Each line is 31 bytes; a 100-byte cap holds 3 lines, the 4th rotates. */
TEST(cap_rotates_once)
{
	json_t *o = json_pack("{s:s}", "k", "0123456789012345678901");
	struct xb_jsonlog *l;

	setup();
	l = xb_jsonlog_open(path, 100);
	for (int i = 0; i < 3; i++)
		xb_jsonlog_write(l, o);
	CHECK_INT(size(path), ==, 93);
	CHECK_INT(size(path1), ==, -1);
	xb_jsonlog_write(l, o);
	CHECK_INT(lines(path1), ==, 3);
	CHECK_INT(lines(path), ==, 1);
	for (int i = 0; i < 3; i++)
		xb_jsonlog_write(l, o);
	/* The second rotation replaces FILE.1: never more than two files. */
	CHECK_INT(lines(path1), ==, 3);
	CHECK_INT(lines(path), ==, 1);
	CHECK(size(path) <= 100 && size(path1) <= 100);
	CHECK_INT(xb_jsonlog_errors(l), ==, 0);
	xb_jsonlog_close(l);
	json_decref(o);
	teardown();
}

/* An existing file's size counts toward the cap. */
TEST(cap_counts_existing)
{
	json_t *o = json_pack("{s:s}", "k", "0123456789012345678901");
	struct xb_jsonlog *l;

	setup();
	l = xb_jsonlog_open(path, 0);
	for (int i = 0; i < 3; i++)
		xb_jsonlog_write(l, o);
	xb_jsonlog_close(l);
	l = xb_jsonlog_open(path, 100);
	xb_jsonlog_write(l, o);
	CHECK_INT(lines(path1), ==, 3);
	CHECK_INT(lines(path), ==, 1);
	xb_jsonlog_close(l);
	json_decref(o);
	teardown();
}

TEST(reopen_after_outside_rotation)
{
	json_t *o = json_pack("{s:i}", "n", 1);
	struct xb_jsonlog *l;

	setup();
	l = xb_jsonlog_open(path, 0);
	xb_jsonlog_write(l, o);
	CHECK_INT(rename(path, path1), ==, 0);	/* what logrotate does */
	xb_jsonlog_write(l, o);			/* still goes to the renamed file */
	CHECK_INT(lines(path1), ==, 2);
	CHECK_INT(xb_jsonlog_reopen(l), ==, 0);
	xb_jsonlog_write(l, o);
	CHECK_INT(lines(path), ==, 1);
	CHECK_INT(lines(path1), ==, 2);
	xb_jsonlog_close(l);
	json_decref(o);
	teardown();
}

TEST(write_errors_counted)
{
	json_t *o = json_pack("{s:i}", "n", 1);
	struct xb_jsonlog *l = xb_jsonlog_open("/dev/full", 0);

	CHECK(l != NULL);
	CHECK_INT(xb_jsonlog_write(l, o), ==, -1);
	CHECK_INT(xb_jsonlog_write(l, o), ==, -1);
	CHECK_INT(xb_jsonlog_errors(l), ==, 2);
	xb_jsonlog_close(l);
	CHECK(xb_jsonlog_open("/nonexistent-dir/x.log", 0) == NULL);
	json_decref(o);
}
