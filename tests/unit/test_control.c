/* The control socket server, driven with raw frames from this thread: the
 * test writes a frame, then runs xb_ctl_process() until the answer (or the
 * end of the stream) arrives, a bounded number of rounds. */
#include "tests/lib/check.h"
#include "common/clock.h"
#include "gateway/control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64], path[128];

static int echo(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)error, (void)errors;
	*result = json_pack("{s:O}", "args", args);
	return 0;
}

static int broken(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)args, (void)result;
	*error = strdup("policy has 2 errors\nsecond line");
	*errors = json_pack("[s,s]", "a.conf:3: bad", "a.conf:9: worse");
	return -1;
}

/* A string of (int)args[0] bytes: a response larger than a socket buffer. */
static int big(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	size_t n = (size_t)atoi(json_string_value(json_array_get(args, 0)));
	char *s = malloc(n + 1);

	(void)ctx, (void)error, (void)errors;
	memset(s, 'x', n);
	s[n] = '\0';
	*result = json_string(s);
	free(s);
	return 0;
}

static const struct xb_ctl_command cmds[] = {
	{ "echo", echo, "the arguments back" },
	{ "fail", broken, "an error with details" },
	{ "big", big, "a long string" },
};

static struct xb_ctl *start(void)
{
	struct xb_ctl *c;

	strcpy(dir, "/tmp/xb-test-control.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	c = xb_ctl_open(path, (gid_t)-1, cmds, 3, NULL);
	CHECK(c != NULL);
	return c;
}

static void stop(struct xb_ctl *c)
{
	xb_ctl_close(c);
	rmdir(dir);
}

/* One round of the server: wait up to ms for work, then process it. */
static void pump(struct xb_ctl *c, int ms)
{
	struct pollfd p = { .fd = xb_ctl_fd(c), .events = POLLIN };

	if (poll(&p, 1, ms) > 0)
		xb_ctl_process(c);
}

static int dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	strcpy(sa.sun_path, path);
	CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	return fd;
}

static void send_raw(int fd, const void *p, size_t n)
{
	CHECK_INT(send(fd, p, n, MSG_NOSIGNAL), ==, (long long)n);
}

static void send_frame(int fd, const char *json)
{
	uint32_t be = htonl((uint32_t)strlen(json));

	send_raw(fd, &be, 4);
	send_raw(fd, json, strlen(json));
}

/* Read exactly n bytes, running the server meanwhile; false at end of stream. */
static bool recv_all(struct xb_ctl *c, int fd, void *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 2000 && got < n; i++) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return false;
		if (r > 0)
			got += (size_t)r;
		else
			pump(c, 5);
	}
	CHECK(got == n);
	return true;
}

/* The next response as JSON, or NULL at end of stream. */
static json_t *answer(struct xb_ctl *c, int fd)
{
	uint32_t be;
	char *body;
	json_t *j;

	if (!recv_all(c, fd, &be, 4))
		return NULL;
	size_t n = ntohl(be);
	CHECK(n > 0 && n <= XB_CTL_MAX_RESPONSE);
	CHECK((body = malloc(n)) != NULL);
	CHECK(recv_all(c, fd, body, n));
	j = json_loadb(body, n, 0, NULL);
	free(body);
	CHECK(j != NULL);
	return j;
}

static bool at_eof(struct xb_ctl *c, int fd)
{
	char b;

	return !recv_all(c, fd, &b, 1);
}

/* The error text of an ok:false response (checked), and the response freed. */
static char errtext[512];
static const char *error_of(json_t *r)
{
	CHECK(r != NULL);
	CHECK(json_is_false(json_object_get(r, "ok")));
	CHECK(json_is_string(json_object_get(r, "error")));
	snprintf(errtext, sizeof(errtext), "%s", json_string_value(json_object_get(r, "error")));
	json_decref(r);
	return errtext;
}

TEST(request_and_response)
{
	struct xb_ctl *c = start();
	int fd = dial();
	json_t *r;

	send_frame(fd, "{\"command\":\"echo\",\"args\":[\"a\",\"b\"]}");
	r = answer(c, fd);
	CHECK(r != NULL);
	char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK_STR(s, "{\"ok\":true,\"result\":{\"args\":[\"a\",\"b\"]}}");
	free(s);
	json_decref(r);
	/* args may be left out: the handler sees an empty array. */
	send_frame(fd, "{\"command\":\"echo\"}");
	r = answer(c, fd);
	CHECK_INT(json_array_size(json_object_get(json_object_get(r, "result"), "args")), ==, 0);
	CHECK(json_is_array(json_object_get(json_object_get(r, "result"), "args")));
	json_decref(r);
	close(fd);
	stop(c);
}

TEST(handler_error_with_details)
{
	struct xb_ctl *c = start();
	int fd = dial();
	json_t *r, *e;

	send_frame(fd, "{\"command\":\"fail\",\"args\":[]}");
	r = answer(c, fd);
	e = json_object_get(r, "errors");
	CHECK_INT(json_array_size(e), ==, 2);
	CHECK_STR(json_string_value(json_array_get(e, 1)), "a.conf:9: worse");
	/* Kept to one line whatever the handler wrote. */
	CHECK_STR(error_of(r), "policy has 2 errors second line");
	/* A failed command is an answer, not a protocol error: still open. */
	send_frame(fd, "{\"command\":\"echo\"}");
	r = answer(c, fd);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	close(fd);
	stop(c);
}

TEST(several_requests_on_one_connection)
{
	struct xb_ctl *c = start();
	int fd = dial();
	char req[64];

	/* Sent back to back before the server runs; answered one by one. */
	for (int i = 0; i < 5; i++) {
		snprintf(req, sizeof(req), "{\"command\":\"echo\",\"args\":[\"%d\"]}", i);
		send_frame(fd, req);
	}
	for (int i = 0; i < 5; i++) {
		json_t *r = answer(c, fd);
		json_t *a = json_object_get(json_object_get(r, "result"), "args");
		CHECK_INT(atoi(json_string_value(json_array_get(a, 0))), ==, i);
		json_decref(r);
	}
	CHECK_INT(xb_ctl_conns(c), ==, 1);
	close(fd);
	for (int i = 0; i < 100 && xb_ctl_conns(c); i++)
		pump(c, 10);
	CHECK_INT(xb_ctl_conns(c), ==, 0);
	stop(c);
}

/* Send raw bytes, expect one error containing want, then the end of stream. */
static void rejected(struct xb_ctl *c, const void *raw, size_t n, const char *want)
{
	int fd = dial();

	send_raw(fd, raw, n);
	const char *e = error_of(answer(c, fd));
	if (!strstr(e, want))
		xb_test_fail(__FILE__, __LINE__, "error \"%s\" does not say \"%s\"", e, want);
	CHECK(at_eof(c, fd));
	close(fd);
}

static void rejected_json(struct xb_ctl *c, const char *json, const char *want)
{
	char buf[256];
	uint32_t be = htonl((uint32_t)strlen(json));

	memcpy(buf, &be, 4);
	memcpy(buf + 4, json, strlen(json));
	rejected(c, buf, 4 + strlen(json), want);
}

TEST(bad_frames_are_answered_and_closed)
{
	struct xb_ctl *c = start();
	uint32_t be;

	be = htonl(XB_CTL_MAX_REQUEST + 1);
	rejected(c, &be, 4, "frame length 65537 is not 1 to 65536");
	be = htonl(0xffffffffu);
	rejected(c, &be, 4, "frame length 4294967295");
	be = 0;
	rejected(c, &be, 4, "frame length 0");
	rejected_json(c, "{\"command\":", "bad request: ");
	rejected_json(c, "{\"command\":\"echo\"} trailing", "bad request: ");
	rejected_json(c, "{\"command\":\"echo\",\"command\":\"fail\"}", "duplicate");
	rejected_json(c, "[\"echo\"]", "not a JSON object");
	rejected_json(c, "\"echo\"", "not a JSON object");
	rejected_json(c, "{\"args\":[]}", "\"command\" is missing or not a string");
	rejected_json(c, "{\"command\":7}", "\"command\" is missing or not a string");
	rejected_json(c, "{\"command\":\"echo\",\"args\":\"x\"}", "\"args\" is not an array");
	rejected_json(c, "{\"command\":\"echo\",\"args\":[\"x\",1]}", "args[1] is not a string");
	rejected_json(c, "{\"command\":\"echo\",\"args\":[null]}", "args[0] is not a string");
	/* A raw NUL and invalid UTF-8 are not JSON. */
	rejected(c, "\0\0\0\x13{\"command\":\"e\0ho\"}", 23, "bad request: ");
	rejected(c, "\0\0\0\x13{\"command\":\"e\xffho\"}", 23, "bad request: ");
	/* The largest request is read whole (and is bad JSON here). */
	char *huge = malloc(4 + XB_CTL_MAX_REQUEST);
	be = htonl(XB_CTL_MAX_REQUEST);
	memcpy(huge, &be, 4);
	memset(huge + 4, '[', XB_CTL_MAX_REQUEST);
	rejected(c, huge, 4 + XB_CTL_MAX_REQUEST, "bad request: ");
	free(huge);
	stop(c);
}

TEST(unknown_command_lists_valid_ones)
{
	struct xb_ctl *c = start();
	int fd = dial();

	send_frame(fd, "{\"command\":\"ech\"}");
	CHECK_STR(error_of(answer(c, fd)), "unknown command `ech'; valid commands: echo fail big");
	send_frame(fd, "{\"command\":\"echo\"}");
	json_t *r = answer(c, fd);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	close(fd);
	stop(c);
}

TEST(truncated_frame_then_close)
{
	struct xb_ctl *c = start();
	int fd = dial();

	send_raw(fd, "\0\0\0\x40{\"comm", 10);	/* promises 64 bytes, sends 6 */
	pump(c, 10);
	CHECK_INT(xb_ctl_conns(c), ==, 1);
	close(fd);
	for (int i = 0; i < 100 && xb_ctl_conns(c); i++)
		pump(c, 10);
	CHECK_INT(xb_ctl_conns(c), ==, 0);
	fd = dial();	/* and the server still serves */
	send_frame(fd, "{\"command\":\"echo\"}");
	json_t *r = answer(c, fd);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* Half a header, then close. */
	send_raw(fd, "\0\0", 2);
	close(fd);
	for (int i = 0; i < 100 && xb_ctl_conns(c); i++)
		pump(c, 10);
	CHECK_INT(xb_ctl_conns(c), ==, 0);
	stop(c);
}

TEST(silent_client_expires)
{
	struct xb_ctl *c = start();
	int fd;
	uint64_t t0;

	xb_ctl_set_idle_ms(c, 200);
	fd = dial();
	t0 = clock_mono_ns();
	for (int i = 0; i < 200 && xb_ctl_conns(c) == 0; i++)
		pump(c, 5);
	CHECK_INT(xb_ctl_conns(c), ==, 1);
	/* A partial request is no progress after its last byte. */
	send_raw(fd, "\0\0", 2);
	for (int i = 0; i < 300 && xb_ctl_conns(c); i++)
		pump(c, 10);
	uint64_t ms = (clock_mono_ns() - t0) / NSEC_PER_MSEC;
	printf("# silent client closed after %llu ms (limit 200 ms)\n", (unsigned long long)ms);
	CHECK_INT(xb_ctl_conns(c), ==, 0);
	CHECK_INT(ms, >=, 200);
	CHECK_INT(ms, <, 1000);
	CHECK(at_eof(c, fd));
	close(fd);
	stop(c);
}

TEST(slow_reader_does_not_block)
{
	struct xb_ctl *c = start();
	int fd = dial(), other;
	size_t n = 4u << 20;	/* far more than a socket buffer */
	char req[80];
	json_t *r;

	snprintf(req, sizeof(req), "{\"command\":\"big\",\"args\":[\"%zu\"]}", n);
	send_frame(fd, req);
	for (int i = 0; i < 20; i++)
		pump(c, 1);	/* returns although fd is not read */
	/* Another client is served meanwhile. */
	other = dial();
	send_frame(other, "{\"command\":\"echo\"}");
	r = answer(c, other);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	close(other);
	r = answer(c, fd);
	CHECK_INT(strlen(json_string_value(json_object_get(r, "result"))), ==, n);
	json_decref(r);
	close(fd);
	stop(c);
}

TEST(connection_limit)
{
	struct xb_ctl *c = start();
	int fds[XB_CTL_MAX_CONNS], extra;

	for (int i = 0; i < XB_CTL_MAX_CONNS; i++) {
		fds[i] = dial();
		pump(c, 5);
	}
	for (int i = 0; i < 100 && xb_ctl_conns(c) < XB_CTL_MAX_CONNS; i++)
		pump(c, 5);
	CHECK_INT(xb_ctl_conns(c), ==, XB_CTL_MAX_CONNS);
	extra = dial();
	CHECK_STR(error_of(answer(c, extra)), "too many control connections (64)");
	CHECK(at_eof(c, extra));
	close(extra);
	/* The others are still served. */
	send_frame(fds[XB_CTL_MAX_CONNS - 1], "{\"command\":\"echo\"}");
	json_t *r = answer(c, fds[XB_CTL_MAX_CONNS - 1]);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	for (int i = 0; i < XB_CTL_MAX_CONNS; i++)
		close(fds[i]);
	stop(c);
}

TEST(socket_mode_and_group)
{
	struct xb_ctl *c;
	struct stat st;
	gid_t gid = geteuid() == 0 ? 4 : getegid();	/* adm when root */

	strcpy(dir, "/tmp/xb-test-control.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	umask(0);	/* the mode must not depend on the umask */
	c = xb_ctl_open(path, gid, cmds, 3, NULL);
	umask(022);
	CHECK(c != NULL);
	CHECK_INT(lstat(path, &st), ==, 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 07777, ==, 0660);
	CHECK_INT(st.st_gid, ==, gid);
	CHECK_INT(st.st_uid, ==, geteuid());
	stop(c);
}

TEST(stale_socket_replaced_live_refused)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xb_ctl *c, *again;
	struct stat st;
	int fd;

	strcpy(dir, "/tmp/xb-test-control.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	/* A socket file nobody listens on: what a crashed daemon leaves. */
	strcpy(sa.sun_path, path);
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	close(fd);
	CHECK_INT(lstat(path, &st), ==, 0);
	c = xb_ctl_open(path, (gid_t)-1, cmds, 3, NULL);
	CHECK(c != NULL);

	/* A second server on a live socket is refused, and the first survives. */
	errno = 0;
	again = xb_ctl_open(path, (gid_t)-1, cmds, 3, NULL);
	CHECK(again == NULL);
	CHECK_INT(errno, ==, EADDRINUSE);
	fd = dial();
	send_frame(fd, "{\"command\":\"echo\"}");
	json_t *r = answer(c, fd);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	close(fd);

	/* Closing unlinks. */
	xb_ctl_close(c);
	CHECK_INT(lstat(path, &st), ==, -1);
	CHECK_INT(errno, ==, ENOENT);

	/* A file that is not a socket is never replaced. */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	errno = 0;
	CHECK(xb_ctl_open(path, (gid_t)-1, cmds, 3, NULL) == NULL);
	CHECK_INT(errno, ==, EEXIST);
	CHECK_INT(lstat(path, &st), ==, 0);
	CHECK(S_ISREG(st.st_mode));
	unlink(path);
	rmdir(dir);
}

TEST(close_leaves_a_replaced_socket_alone)
{
	struct xb_ctl *c = start();
	struct stat st;

	/* Someone removed ours and made another: not ours to unlink. */
	CHECK_INT(unlink(path), ==, 0);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	xb_ctl_close(c);
	CHECK_INT(lstat(path, &st), ==, 0);
	unlink(path);
	rmdir(dir);
}

/* --- deferred answers ------------------------------------------------------- */

static struct xb_ctl *lctl;
static xb_ctl_handle handles[4];
static size_t n_handles;

/* Answers later: its handle goes to handles[] for the test to answer. */
static int later(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)args, (void)result, (void)error, (void)errors;
	CHECK(n_handles < 4);
	handles[n_handles] = xb_ctl_defer(lctl);
	CHECK(handles[n_handles] != 0);
	n_handles++;
	return XB_CTL_LATER;
}

/* Says later without a handle: a bug, answered with an error. */
static int later_nohandle(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)args, (void)result, (void)error, (void)errors;
	return XB_CTL_LATER;
}

static const struct xb_ctl_command lcmds[] = {
	{ "echo", echo, NULL },
	{ "later", later, NULL },
	{ "bogus", later_nohandle, NULL },
};

static struct xb_ctl *start_later(void)
{
	strcpy(dir, "/tmp/xb-test-control.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	lctl = xb_ctl_open(path, (gid_t)-1, lcmds, 3, NULL);
	CHECK(lctl != NULL);
	n_handles = 0;
	return lctl;
}

/* Nothing to read on fd for ms milliseconds while the server runs. */
static bool silent(struct xb_ctl *c, int fd, int ms)
{
	uint64_t end = clock_mono_ns() + (uint64_t)ms * NSEC_PER_MSEC;
	char b;

	while (clock_mono_ns() < end) {
		if (recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) >= 0)
			return false;
		pump(c, 10);
	}
	return true;
}

static void run_until_deferred(struct xb_ctl *c, size_t want)
{
	for (int i = 0; i < 200 && xb_ctl_deferred(c) < want; i++)
		pump(c, 5);
	CHECK_INT(xb_ctl_deferred(c), ==, want);
}

TEST(deferred_answer_after_the_client_left_is_dropped)
{
	struct xb_ctl *c = start_later();
	int fd = dial(), fd2;
	json_t *r;

	send_frame(fd, "{\"command\":\"later\"}");
	run_until_deferred(c, 1);
	CHECK(silent(c, fd, 100));
	close(fd);
	for (int i = 0; i < 200 && xb_ctl_conns(c); i++)
		pump(c, 5);
	CHECK_INT(xb_ctl_conns(c), ==, 0);	/* closed at once, not at the answer */
	CHECK_INT(xb_ctl_deferred(c), ==, 0);
	/* The slot is used again: the old handle must not answer the new client. */
	fd2 = dial();
	send_frame(fd2, "{\"command\":\"later\"}");
	run_until_deferred(c, 1);
	CHECK((handles[0] & 0xffffffffu) == (handles[1] & 0xffffffffu));
	CHECK_INT(xb_ctl_answer(c, handles[0], 0, json_string("stale"), NULL, NULL), ==, -1);
	CHECK(silent(c, fd2, 50));
	CHECK_INT(xb_ctl_answer(c, handles[1], 0, json_string("fresh"), NULL, NULL), ==, 0);
	r = answer(c, fd2);
	CHECK_STR(json_string_value(json_object_get(r, "result")), "fresh");
	json_decref(r);
	/* A handle answers once. */
	CHECK_INT(xb_ctl_answer(c, handles[1], 0, json_string("again"), NULL, NULL), ==, -1);
	close(fd2);
	stop(c);
}

TEST(two_deferred_answers_and_the_loop_runs_on)
{
	struct xb_ctl *c = start_later();
	int a = dial(), b = dial(), e = dial();
	json_t *r;

	xb_ctl_set_idle_ms(c, 100);
	send_frame(a, "{\"command\":\"later\"}");
	run_until_deferred(c, 1);
	send_frame(b, "{\"command\":\"later\"}");
	run_until_deferred(c, 2);
	/* Others are served meanwhile; a waiting connection reads nothing
	 * more, and is not idle: its wait is the handler's to bound. */
	send_frame(e, "{\"command\":\"echo\",\"args\":[\"x\"]}");
	r = answer(c, e);
	CHECK(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	send_frame(a, "{\"command\":\"echo\",\"args\":[\"next\"]}");
	CHECK(silent(c, a, 300));
	CHECK(at_eof(c, e));		/* the idle one expired */
	CHECK_INT(xb_ctl_conns(c), ==, 2);
	/* In any order, each to its own client. */
	CHECK_INT(xb_ctl_answer(c, handles[1], -1, NULL, strdup("etcd did not\nanswer"),
				json_pack("[s]", "detail")), ==, 0);
	CHECK_INT(xb_ctl_answer(c, handles[0], 0, json_pack("{s:i}", "n", 1), NULL, NULL), ==, 0);
	r = answer(c, b);
	CHECK_STR(json_string_value(json_array_get(json_object_get(r, "errors"), 0)), "detail");
	CHECK_STR(error_of(r), "etcd did not answer");
	r = answer(c, a);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(r, "result"), "n")), ==, 1);
	json_decref(r);
	/* Then a's next request, which waited in the socket. */
	r = answer(c, a);
	CHECK_STR(json_string_value(json_array_get(json_object_get(json_object_get(r, "result"),
							       "args"), 0)), "next");
	json_decref(r);
	CHECK_INT(xb_ctl_deferred(c), ==, 0);
	close(a), close(b), close(e);
	stop(c);
}

TEST(later_without_a_handle_is_an_error)
{
	struct xb_ctl *c = start_later();
	int fd = dial();

	send_frame(fd, "{\"command\":\"bogus\"}");
	CHECK_STR(error_of(answer(c, fd)), "command failed");
	CHECK_INT(xb_ctl_defer(c), ==, 0);	/* outside a handler */
	close(fd);
	stop(c);
}

TEST(close_with_deferred_answers_pending)
{
	struct xb_ctl *c = start_later();
	int a = dial(), b = dial();
	char x;

	send_frame(a, "{\"command\":\"later\"}");
	send_frame(b, "{\"command\":\"later\"}");
	run_until_deferred(c, 2);
	stop(c);			/* no leak (the SAN build checks) */
	CHECK_INT(recv(a, &x, 1, 0), ==, 0);
	CHECK_INT(recv(b, &x, 1, 0), ==, 0);
	/* The daemon may still hold handles: answering them is harmless. */
	CHECK_INT(xb_ctl_answer(NULL, handles[0], 0, json_string("late"), NULL, NULL), ==, -1);
	close(a), close(b);
}

/* A client that half-closes (SHUT_WR) after its request still gets
 * the deferred answer; one that sends garbage meanwhile is not read until
 * the answer has gone, then closed for the garbage. */
TEST(half_close_and_garbage_while_deferred)
{
	struct xb_ctl *c = start_later();
	int a = dial(), b = dial();
	json_t *r;

	send_frame(a, "{\"command\":\"later\"}");
	run_until_deferred(c, 1);
	shutdown(a, SHUT_WR);
	send_frame(b, "{\"command\":\"later\"}");
	run_until_deferred(c, 2);
	CHECK(send(b, "\xff\xff\xff\xffjunk", 8, 0) == 8);
	CHECK(silent(c, a, 100));
	CHECK_INT(xb_ctl_conns(c), ==, 2);
	CHECK_INT(xb_ctl_answer(c, handles[0], 0, json_string("a"), NULL, NULL), ==, 0);
	r = answer(c, a);
	CHECK_STR(json_string_value(json_object_get(r, "result")), "a");
	json_decref(r);
	CHECK(at_eof(c, a));
	CHECK_INT(xb_ctl_answer(c, handles[1], 0, json_string("b"), NULL, NULL), ==, 0);
	r = answer(c, b);
	CHECK_STR(json_string_value(json_object_get(r, "result")), "b");
	json_decref(r);
	r = answer(c, b);	/* the garbage frame: refused, then closed */
	CHECK(!json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	CHECK(at_eof(c, b));
	CHECK_INT(xb_ctl_conns(c), ==, 0);
	close(a), close(b);
	stop(c);
}
