/* The posture store in a temporary directory: what is written is there after
 * close and open and after kill -9, seq, attribute expiry, bounded history,
 * corrupt and newer files, and the commit rate (printed). */
#include "tests/lib/check.h"
#include "common/clock.h"
#include "gateway/posture/posture_store.h"

#include <glob.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], path[128];
static char err[512];

static struct xb_posture_store *setup(void)
{
	struct xb_posture_store *s;

	strcpy(dir, "/tmp/xb-test-pstore.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/posture.db", dir);
	s = xb_posture_store_open(path, 0, err, sizeof(err));
	if (!s)
		xb_test_fail(__FILE__, __LINE__, "open: %s", err);
	return s;
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

static struct xb_posture_store *reopen(struct xb_posture_store *s)
{
	xb_posture_store_close(s);
	s = xb_posture_store_open(path, 0, err, sizeof(err));
	if (!s)
		xb_test_fail(__FILE__, __LINE__, "reopen: %s", err);
	return s;
}

/* Collects iterated rows as text lines. */
static char seen[4096];

static int report_line(void *ctx, const char *device, int64_t seq, int64_t at, const char *body)
{
	size_t n = strlen(seen);

	(void)ctx;
	snprintf(seen + n, sizeof(seen) - n, "%s %lld %lld %s\n", device, (long long)seq,
		 (long long)at, body);
	return 0;
}

static int attr_line(void *ctx, const struct xb_posture_store_attr *a)
{
	size_t n = strlen(seen);

	(void)ctx;
	snprintf(seen + n, sizeof(seen) - n, "%s %s=%s %lld %s\n", a->device, a->key, a->value,
		 (long long)a->expires_at, a->source);
	return 0;
}

static int trans_line(void *ctx, const struct xb_posture_store_transition *t)
{
	size_t n = strlen(seen);

	(void)ctx;
	snprintf(seen + n, sizeof(seen) - n, "%s %s %lld %s>%s %s\n", t->device, t->profile,
		 (long long)t->at, t->from, t->to, t->reason);
	return 0;
}

TEST(reports_survive_reopen)
{
	struct xb_posture_store *s = setup();
	int64_t seq = 0;

	CHECK_INT(xb_posture_store_last_seq(s, "alice-laptop", &seq), ==, 0);
	CHECK_INT(xb_posture_store_put_report(s, "alice-laptop", 17, 1000, "{\"os\":\"macos\"}"), ==, 0);
	CHECK_INT(xb_posture_store_put_report(s, "alice-laptop", 18, 2000, "{\"os\":\"macos 14\"}"), ==, 0);
	CHECK_INT(xb_posture_store_put_report(s, "bob-phone", 3, 1500, "{}"), ==, 0);
	s = reopen(s);
	CHECK_INT(xb_posture_store_last_seq(s, "alice-laptop", &seq), ==, 1);
	CHECK_INT(seq, ==, 18);
	CHECK_INT(xb_posture_store_last_seq(s, "bob-phone", &seq), ==, 1);
	CHECK_INT(seq, ==, 3);
	seen[0] = '\0';
	CHECK_INT(xb_posture_store_foreach_report(s, report_line, NULL), ==, 0);
	CHECK_STR(seen, "alice-laptop 18 2000 {\"os\":\"macos 14\"}\nbob-phone 3 1500 {}\n");
	xb_posture_store_close(s);
	teardown();
}

/* With a history of 3, the 3 newest reports are kept; the last one is what
 * iteration returns. */
TEST(report_history_bounded)
{
	struct xb_posture_store *s = setup();
	char cmd[256];

	xb_posture_store_set_limits(s, 3, 10);
	for (int i = 1; i <= 10; i++)
		CHECK_INT(xb_posture_store_put_report(s, "d", i * 10, i, "{}"), ==, 0);
	xb_posture_store_close(s);
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'SELECT group_concat(seq) FROM reports'", path);
	CHECK_STR(xb_test_run(cmd), "80,90,100\n");
	teardown();
}

TEST(batch_is_atomic)
{
	struct xb_posture_store *s = setup();
	int64_t seq;

	CHECK_INT(xb_posture_store_begin(s), ==, 0);
	CHECK_INT(xb_posture_store_begin(s), ==, -1);	/* no nesting */
	xb_posture_store_put_report(s, "a", 1, 1, "{}");
	xb_posture_store_put_report(s, "b", 1, 1, "{}");
	xb_posture_store_rollback(s);
	CHECK_INT(xb_posture_store_last_seq(s, "a", &seq), ==, 0);
	CHECK_INT(xb_posture_store_begin(s), ==, 0);
	xb_posture_store_put_report(s, "a", 5, 1, "{}");
	xb_posture_store_put_report(s, "b", 6, 1, "{}");
	CHECK_INT(xb_posture_store_commit(s), ==, 0);
	s = reopen(s);
	CHECK_INT(xb_posture_store_last_seq(s, "b", &seq), ==, 1);
	CHECK_INT(seq, ==, 6);
	xb_posture_store_close(s);
	teardown();
}

/* A child writes and is killed with SIGKILL right after the call returns:
 * what it was told is committed is there. */
TEST(commit_survives_kill9)
{
	struct xb_posture_store *s = setup();
	int p[2], status;
	int64_t seq = 0;
	pid_t pid;
	char c;

	xb_posture_store_close(s);
	CHECK(pipe(p) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		s = xb_posture_store_open(path, 0, err, sizeof(err));
		for (int i = 1; s && i <= 500; i++)
			xb_posture_store_put_report(s, "dev", i, i, "{\"x\":1}");
		if (write(p[1], "k", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	CHECK_INT(read(p[0], &c, 1), ==, 1);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(p[0]);
	CHECK(WIFSIGNALED(status));
	s = xb_posture_store_open(path, 0, err, sizeof(err));
	CHECK(s != NULL);
	CHECK_INT(xb_posture_store_last_seq(s, "dev", &seq), ==, 1);
	CHECK_INT(seq, ==, 500);
	xb_posture_store_close(s);
	teardown();
}

TEST(attributes_expire)
{
	struct xb_posture_store *s = setup();
	struct xb_posture_store_attr a = { "alice", "edr", "\"healthy\"", 5000, "mdm-1" };
	struct xb_posture_store_attr b = { "alice", "managed", "true", 0, "mdm-1" };
	struct xb_posture_store_attr c = { "bob", "edr", "\"infected\"", 9000, "mdm-2" };

	CHECK_INT(xb_posture_store_put_attr(s, &a), ==, 0);
	CHECK_INT(xb_posture_store_put_attr(s, &b), ==, 0);
	CHECK_INT(xb_posture_store_put_attr(s, &c), ==, 0);
	s = reopen(s);
	seen[0] = '\0';
	xb_posture_store_foreach_attr(s, 4999, attr_line, NULL);
	CHECK_STR(seen, "alice edr=\"healthy\" 5000 mdm-1\nalice managed=true 0 mdm-1\n"
			"bob edr=\"infected\" 9000 mdm-2\n");
	seen[0] = '\0';
	xb_posture_store_foreach_attr(s, 5000, attr_line, NULL);	/* expires_at is exclusive */
	CHECK_STR(seen, "alice managed=true 0 mdm-1\nbob edr=\"infected\" 9000 mdm-2\n");
	/* A push replaces the value and expiry. */
	c.value = "\"healthy\"";
	c.expires_at = 20000;
	CHECK_INT(xb_posture_store_put_attr(s, &c), ==, 0);
	CHECK_INT(xb_posture_store_prune(s, 10000), ==, 1);
	seen[0] = '\0';
	xb_posture_store_foreach_attr(s, 0, attr_line, NULL);
	CHECK_STR(seen, "alice managed=true 0 mdm-1\nbob edr=\"healthy\" 20000 mdm-2\n");
	xb_posture_store_close(s);
	teardown();
}

TEST(transitions_pruned_per_device)
{
	struct xb_posture_store *s = setup();
	struct xb_posture_store_transition t = { "alice", "corp", 0, "pass", "fail", "disk not encrypted" };

	xb_posture_store_set_limits(s, 1, 3);
	for (int i = 1; i <= 6; i++) {
		t.at = i;
		CHECK_INT(xb_posture_store_put_transition(s, &t), ==, 0);
	}
	t.device = "bob";
	t.at = 100;
	xb_posture_store_put_transition(s, &t);
	s = reopen(s);
	seen[0] = '\0';
	xb_posture_store_foreach_transition(s, "alice", trans_line, NULL);
	CHECK_STR(seen, "alice corp 4 pass>fail disk not encrypted\n"
			"alice corp 5 pass>fail disk not encrypted\n"
			"alice corp 6 pass>fail disk not encrypted\n");
	seen[0] = '\0';
	xb_posture_store_foreach_transition(s, NULL, trans_line, NULL);
	CHECK(strstr(seen, "bob corp 100") != NULL);
	xb_posture_store_close(s);
	teardown();
}

static bool corrupt_file_exists(void)
{
	char pat[160];
	glob_t g;
	bool found;

	snprintf(pat, sizeof(pat), "%s.corrupt-*", path);
	found = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1;
	globfree(&g);
	return found;
}

TEST(corrupt_file_moved_aside_only_when_asked)
{
	struct xb_posture_store *s = setup();
	FILE *f;

	xb_posture_store_close(s);
	f = fopen(path, "w");
	CHECK(f != NULL);
	for (int i = 0; i < 100; i++)
		fputs("this is not an SQLite database at all\n", f);
	fclose(f);
	CHECK(xb_posture_store_open(path, 0, err, sizeof(err)) == NULL);
	CHECK(strstr(err, path) != NULL);
	CHECK(strstr(err, "not a database") != NULL);
	CHECK(!corrupt_file_exists());
	s = xb_posture_store_open(path, XB_POSTURE_STORE_MOVE_ASIDE, err, sizeof(err));
	CHECK(s != NULL);
	CHECK(corrupt_file_exists());	/* kept, not deleted */
	CHECK_INT(xb_posture_store_put_report(s, "d", 1, 1, "{}"), ==, 0);
	xb_posture_store_close(s);
	teardown();
}

TEST(newer_schema_refused)
{
	struct xb_posture_store *s = setup();
	char cmd[256];

	xb_posture_store_close(s);
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA user_version = 99'", path);
	xb_test_run(cmd);
	CHECK(xb_posture_store_open(path, XB_POSTURE_STORE_MOVE_ASIDE, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "schema version 99 is from a newer xborder") != NULL);
	CHECK(!corrupt_file_exists());
	teardown();
}

static int nonce_line(void *ctx, const char *key, const char *nonce, int64_t until)
{
	size_t n = strlen(seen);

	(void)ctx;
	snprintf(seen + n, sizeof(seen) - n, "%s %s %lld\n", key, nonce, (long long)until);
	return 0;
}

/* A store written by the schema-1 code (before the MDM replay cache):
 * opened, it keeps its rows and gains the nonce table. */
TEST(schema1_store_upgraded)
{
	char cmd[2048];

	strcpy(dir, "/tmp/xb-test-pstore.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/posture.db", dir);
	snprintf(cmd, sizeof(cmd), "sqlite3 %s \""
		 "PRAGMA journal_mode=WAL;"
		 "CREATE TABLE devices (device TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,"
		 " last_at INTEGER NOT NULL) WITHOUT ROWID;"
		 "CREATE TABLE reports (device TEXT NOT NULL, seq INTEGER NOT NULL,"
		 " received_at INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (device, seq)) WITHOUT ROWID;"
		 "CREATE TABLE attributes (device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
		 " expires_at INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY (device, key)) WITHOUT ROWID;"
		 "CREATE INDEX attributes_expiry ON attributes (expires_at) WHERE expires_at > 0;"
		 "CREATE TABLE transitions (id INTEGER PRIMARY KEY, device TEXT NOT NULL,"
		 " profile TEXT NOT NULL, at INTEGER NOT NULL, from_state TEXT NOT NULL,"
		 " to_state TEXT NOT NULL, reason TEXT NOT NULL);"
		 "CREATE INDEX transitions_device ON transitions (device, id);"
		 "INSERT INTO devices VALUES ('d', 7, 1000);"
		 "INSERT INTO reports VALUES ('d', 7, 1000, '{}');"
		 "PRAGMA user_version = 1;\" >/dev/null", path);
	xb_test_run(cmd);
	struct xb_posture_store *s = xb_posture_store_open(path, 0, err, sizeof(err));

	if (!s)
		xb_test_fail(__FILE__, __LINE__, "open: %s", err);
	seen[0] = '\0';
	CHECK_INT(xb_posture_store_foreach_report(s, report_line, NULL), ==, 0);
	CHECK_STR(seen, "d 7 1000 {}\n");
	CHECK_INT(xb_posture_store_put_nonce(s, "mdm1", "n1", 5000), ==, 0);
	s = reopen(s);
	seen[0] = '\0';
	CHECK_INT(xb_posture_store_foreach_nonce(s, 4000, nonce_line, NULL), ==, 0);
	CHECK_STR(seen, "mdm1 n1 5000\n");
	CHECK_INT(xb_posture_store_prune(s, 6000), ==, 1);
	seen[0] = '\0';
	CHECK_INT(xb_posture_store_foreach_nonce(s, 0, nonce_line, NULL), ==, 0);
	CHECK_STR(seen, "");
	xb_posture_store_close(s);
	teardown();
}

TEST(unreadable_directory_is_an_error)
{
	char e[256];

	CHECK(xb_posture_store_open("/nonexistent-dir/posture.db", XB_POSTURE_STORE_MOVE_ASIDE, e,
			     sizeof(e)) == NULL);
	CHECK(strstr(e, "/nonexistent-dir/posture.db: ") != NULL);
}

/* 10 000 devices reporting every 10 s need 1 000 commits/s. Measured: one
 * transaction per report, and batches of 50 (one event-loop round). */
TEST(commit_rate)
{
	struct xb_posture_store *s = setup();
	char dev[32], body[600];
	const int n = 5000;
	uint64_t t0, t1, t2;

	memset(body, 'x', sizeof(body));
	memcpy(body, "{\"os\":\"", 7);
	memcpy(body + sizeof(body) - 3, "\"}", 3);
	t0 = clock_mono_ns();
	for (int i = 0; i < n; i++) {
		snprintf(dev, sizeof(dev), "device-%05d", i % 10000);
		CHECK_INT(xb_posture_store_put_report(s, dev, i + 1, i, body), ==, 0);
	}
	t1 = clock_mono_ns();
	for (int i = 0; i < n; i += 50) {
		CHECK_INT(xb_posture_store_begin(s), ==, 0);
		for (int j = i; j < i + 50; j++) {
			snprintf(dev, sizeof(dev), "device-%05d", (j + 5000) % 10000);
			xb_posture_store_put_report(s, dev, n + j + 1, j, body);
		}
		CHECK_INT(xb_posture_store_commit(s), ==, 0);
	}
	t2 = clock_mono_ns();
	printf("# %d single commits: %.0f reports/s; batches of 50: %.0f reports/s\n", n,
	       n / ((double)(t1 - t0) / NSEC_PER_SEC), n / ((double)(t2 - t1) / NSEC_PER_SEC));
	CHECK(n / ((double)(t1 - t0) / NSEC_PER_SEC) > 1000);
	xb_posture_store_close(s);
	teardown();
}
