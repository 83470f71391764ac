/* The posture endpoint in a private network namespace, driven from this
 * thread with raw HTTP/1.1 over TCP: the test writes a request, then runs
 * xb_posture_http_process() until the server closes the connection (Connection:
 * close), a bounded number of rounds.
 *
 *   lo:         192.0.2.1 (gateway, reports)   192.0.2.2 alice   192.0.2.3 bob
 *               198.51.100.9 (no device)        203.0.113.1 (admin, pushes)
 */
#include "tests/lib/check.h"
#include "common/clock.h"
#include "gateway/posture/posture_http.h"
#include "common/jsonlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], dbpath[128];
static struct xb_posture_store *store;
static struct xb_posture_http *svc;
static char resp[128 << 10];	/* the last response's body */
static unsigned reports_seen;	/* on_report calls */
static char accepted[16];	/* initials of the devices on_report accepted, in order */
static struct xb_jsonlog *audit_log;	/* the service's audit log, when a test wants one */

static const char *device_for(void *ctx, const struct sockaddr *sa)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
	char a[INET_ADDRSTRLEN];

	(void)ctx;
	if (sa->sa_family != AF_INET)
		return NULL;
	inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
	return !strcmp(a, "192.0.2.2") ? "alice" : !strcmp(a, "192.0.2.3") ? "bob" : NULL;
}

static int on_report(void *ctx, const char *device, json_t *report, json_t **reply, char *err,
		     size_t errlen)
{
	(void)ctx, (void)device;
	reports_seen++;
	if (json_is_true(json_object_get(report, "refuse"))) {
		snprintf(err, errlen, "disk encryption: expected on, saw off");
		return 1;
	}
	if (strlen(accepted) + 1 < sizeof(accepted))
		strncat(accepted, device, 1);
	*reply = json_pack("{s:s, s:b}", "posture", "pass", "accepted", 0);	/* cannot override */
	return 0;
}

static int on_push(void *ctx, const char *body, size_t len, const char *sig, json_t **attrs,
		   char *err, size_t errlen)
{
	(void)ctx, (void)body, (void)len;
	if (!sig || strcmp(sig, "Z29vZA==")) {
		snprintf(err, errlen, "bad signature");
		return 401;
	}
	*attrs = json_pack("[{s:s, s:s, s:s, s:I, s:s}]", "device", "alice", "key", "edr",
			   "value", "healthy", "expires_at", (json_int_t)9999999999999, "source",
			   "mdm-key-1");
	return 0;
}

static unsigned undone, rounds_kept;	/* on_undo calls, on_round(true) calls */

static void on_round(void *ctx, bool committed)
{
	(void)ctx;
	rounds_kept += committed;
}

static void on_undo(void *ctx)
{
	(void)ctx;
	undone++;
}

static const struct xb_posture_http_ops ops = { device_for, on_report, on_push, on_round, on_undo, NULL };

/* A cluster's gate (xb_posture_http_ops.gate), played here: it holds a
 * report (WAIT) and gives its verdict a few pumps later, or refuses at once. */
static struct {
	int answer;		/* what gate() returns */
	unsigned verdict;	/* given to a held one */
	uint64_t id;		/* held, 0: none */
	int pumps;		/* pumps until the verdict */
	int64_t stored_meanwhile;	/* the store's seq while it was held */
	unsigned asked;
} g;

static int gate(void *ctx, const char *device, int64_t seq, const char *body, size_t len,
		uint64_t id, char *err, size_t errlen)
{
	(void)ctx, (void)device, (void)body, (void)len;
	g.asked++;
	if (g.answer == XB_POSTURE_HTTP_GATE_WAIT)
		g.id = id, g.pumps = 5;
	else if (g.answer)
		snprintf(err, errlen, "seq %lld is not above 40 (accepted by gateway gw-b)", (long long)seq);
	return g.answer;
}

static const struct xb_posture_http_ops gated_ops = { device_for, on_report, on_push, on_round, on_undo,
						      gate };
static int64_t last_seq(const char *device);

static void netns(void)
{
	static bool done;

	if (done)
		return;
	xb_test_private_netns();
	/* This kernel has no dummy links: the addresses go on lo. */
	CHECK(system("ip addr add 192.0.2.1/32 dev lo && ip addr add 192.0.2.2/32 dev lo"
		     " && ip addr add 192.0.2.3/32 dev lo && ip addr add 198.51.100.9/32 dev lo"
		     " && ip addr add 203.0.113.1/32 dev lo") == 0);
	done = true;
}

static void start_cfg(struct xb_posture_http_config *cfg)
{
	char err[256];

	netns();
	strcpy(dir, "/tmp/xb-test-psvc.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(dbpath, sizeof(dbpath), "%s/posture.db", dir);
	store = xb_posture_store_open(dbpath, 0, err, sizeof(err));
	CHECK(store != NULL);
	svc = xb_posture_http_open(cfg, &ops, NULL, store, audit_log);
	CHECK(svc != NULL);
}

/* Most cases send many requests from alice in a burst: no rate limit. */
static void start(void)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .admin = "203.0.113.1",
				      .admin_port = 9443, .rate = 1000000, .burst = 1000000 };
	start_cfg(&cfg);
}

static void stop(void)
{
	char cmd[128];

	xb_posture_http_close(svc);
	xb_posture_store_close(store);
	xb_jsonlog_close(audit_log);
	audit_log = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

static void pump(int ms)
{
	struct pollfd p = { .fd = xb_posture_http_fd(svc), .events = POLLIN };

	if (poll(&p, 1, ms) > 0)
		xb_posture_http_process(svc);
	if (g.id && --g.pumps == 0) {
		uint64_t id = g.id;

		g.id = 0;
		g.stored_meanwhile = last_seq("alice");
		xb_posture_http_gate_done(svc, id, g.verdict, "seq 7 is not above 40 (accepted by gateway gw-b)");
	}
}

/* A non-blocking TCP connection from src to dst:port. */
static int dial(const char *src, const char *dst, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET }, d = { .sin_family = AF_INET,
								 .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	CHECK(fd >= 0);
	inet_pton(AF_INET, src, &s.sin_addr);
	inet_pton(AF_INET, dst, &d.sin_addr);
	CHECK(bind(fd, (struct sockaddr *)&s, sizeof(s)) == 0);
	CHECK(connect(fd, (struct sockaddr *)&d, sizeof(d)) == 0 || errno == EINPROGRESS);
	return fd;
}

/* Send raw bytes, serving meanwhile; then read until the server closes. The
 * status; the body in resp. */
static int exchange(int fd, const char *req, size_t len)
{
	static char buf[sizeof(resp) + 4096];
	size_t off = 0, got = 0;
	const char *body;
	int status = -1;

	for (int round = 0; round < 2000; round++) {
		ssize_t n;

		if (off < len && (n = send(fd, req + off, len - off, MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		pump(1);
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != ENOTCONN))
			break;
		if (n > 0)
			got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	sscanf(buf, "HTTP/1.1 %d", &status);
	body = strstr(buf, "\r\n\r\n");
	snprintf(resp, sizeof(resp), "%s", body ? body + 4 : "");
	return status;
}

static int http(const char *src, const char *dst, uint16_t port, const char *method,
		const char *path, const char *headers, const char *body)
{
	static char req[sizeof(resp) + 1024];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s",
			 method, path, headers ? headers : "");

	if (body)
		n += snprintf(req + n, sizeof(req) - (size_t)n,
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			      strlen(body), body);
	else
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	return exchange(dial(src, dst, port), req, (size_t)n);
}

static int get(const char *src, const char *path)
{
	return http(src, "192.0.2.1", 8443, "GET", path, NULL, NULL);
}

static int post(const char *src, const char *body)
{
	return http(src, "192.0.2.1", 8443, "POST", "/v1/report", NULL, body);
}

/* A fresh nonce for src into out (33 bytes). */
static void nonce(const char *src, char *out)
{
	json_t *j;

	CHECK_INT(get(src, "/v1/nonce"), ==, 200);
	j = json_loads(resp, 0, NULL);
	CHECK(j != NULL);
	CHECK_INT(json_integer_value(json_object_get(j, "expires_in")), ==, 60);
	snprintf(out, 33, "%s", json_string_value(json_object_get(j, "nonce")));
	CHECK_INT(strlen(out), ==, 32);
	CHECK_INT(strspn(out, "0123456789abcdef"), ==, 32);
	json_decref(j);
}

static int report(const char *src, long seq, const char *nonce_hex, const char *extra)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"seq\":%ld,\"nonce\":\"%s\",\"os\":\"macos 14.5\"%s}", seq,
		 nonce_hex, extra ? extra : "");
	return post(src, body);
}

static int64_t last_seq(const char *device)
{
	int64_t seq = -1;

	return xb_posture_store_last_seq(store, device, &seq) == 1 ? seq : -1;
}

/* The gate holds a report: nothing is stored or evaluated until its
 * verdict; then it goes on (200) or is refused with the gate's status, its
 * nonce spent either way. */
TEST(gate_holds_then_accepts_or_refuses)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .rate = 1000000,
					      .burst = 1000000 };
	char n[33];
	unsigned seen;

	netns();
	strcpy(dir, "/tmp/xb-test-psvc.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(dbpath, sizeof(dbpath), "%s/posture.db", dir);
	CHECK((store = xb_posture_store_open(dbpath, 0, resp, sizeof(resp))) != NULL);
	CHECK((svc = xb_posture_http_open(&cfg, &gated_ops, NULL, store, NULL)) != NULL);
	memset(&g, 0, sizeof(g));
	g.answer = XB_POSTURE_HTTP_GATE_WAIT;
	seen = reports_seen;
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 5, n, NULL), ==, 200);
	CHECK_INT(g.asked, ==, 1);
	CHECK_INT(g.stored_meanwhile, ==, -1);		/* held: nothing stored */
	CHECK_INT(reports_seen, ==, seen + 1);		/* evaluated once, after */
	CHECK_INT(last_seq("alice"), ==, 5);

	g.verdict = 409;
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 7, n, NULL), ==, 409);
	CHECK(strstr(resp, "accepted by gateway gw-b"));
	CHECK_INT(last_seq("alice"), ==, 5);
	CHECK_INT(report("192.0.2.2", 8, n, NULL), ==, 401);	/* its nonce is spent */

	g.answer = 409;				/* refused at once */
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 9, n, NULL), ==, 409);
	CHECK_INT(last_seq("alice"), ==, 5);
	g.answer = 0;				/* passed at once */
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 10, n, NULL), ==, 200);
	CHECK_INT(last_seq("alice"), ==, 10);
	CHECK_INT(g.asked, ==, 4);			/* the 401 never reached it */
	stop();
}

TEST(nonce_then_report_accepted)
{
	char n[33];

	start();
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 17, n, NULL), ==, 200);
	CHECK_STR(resp, "{\"accepted\":true,\"seq\":17,\"posture\":\"pass\"}");
	CHECK_INT(last_seq("alice"), ==, 17);
	CHECK_INT(last_seq("bob"), ==, -1);
	stop();
}

/* Read one response with a Content-Length from fd (serving meanwhile);
 * the status, the body in resp. The connection stays open. */
static int one_response(int fd)
{
	static char buf[8192];
	size_t got = 0;
	const char *end, *cl;
	int status = -1;

	for (int round = 0; round < 2000; round++) {
		ssize_t n;

		pump(1);
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (n > 0)
			got += (size_t)n;
		buf[got] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) && (cl = strstr(buf, "Content-Length:")) &&
		    (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10) <= got) {
			sscanf(buf, "HTTP/1.1 %d", &status);
			snprintf(resp, sizeof(resp), "%s", end + 4);
			break;
		}
	}
	return status;
}

/* The load generator's way: nonce and report on one kept-alive
 * connection; the report's answer waits for its round's commit. */
TEST(nonce_and_report_on_one_connection)
{
	char req[512], body[256];
	json_t *j;
	int fd;

	start();
	fd = dial("192.0.2.2", "192.0.2.1", 8443);
	snprintf(req, sizeof(req), "GET /v1/nonce HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 100 && send(fd, req, strlen(req), MSG_NOSIGNAL) < 0; i++)
		pump(1);
	CHECK_INT(one_response(fd), ==, 200);
	CHECK((j = json_loads(resp, 0, NULL)) != NULL);
	snprintf(body, sizeof(body), "{\"seq\":5,\"nonce\":\"%s\"}",
		 json_string_value(json_object_get(j, "nonce")));
	json_decref(j);
	snprintf(req, sizeof(req), "POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: "
		 "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
	CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
	CHECK_INT(one_response(fd), ==, 200);
	CHECK_STR(resp, "{\"accepted\":true,\"seq\":5,\"posture\":\"pass\"}");
	CHECK_INT(last_seq("alice"), ==, 5);
	close(fd);
	stop();
}

TEST(replayed_seq_conflicts)
{
	char n[33];

	start();
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 18, n, NULL), ==, 200);
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 17, n, NULL), ==, 409);
	CHECK_STR(resp, "{\"error\":\"seq 17 is not above 18\"}");
	CHECK_INT(report("192.0.2.2", 18, n, NULL), ==, 409);
	/* The refused report did not use the nonce up. */
	CHECK_INT(report("192.0.2.2", 19, n, NULL), ==, 200);
	CHECK_INT(last_seq("alice"), ==, 19);
	stop();
}

TEST(nonce_single_use_and_bound_to_device)
{
	char n[33], nb[33];

	start();
	nonce("192.0.2.2", n);
	nonce("192.0.2.3", nb);
	CHECK_INT(report("192.0.2.2", 1, nb, NULL), ==, 401);	/* bob's nonce */
	CHECK_STR(resp, "{\"error\":\"stale or unknown nonce\"}");
	CHECK_INT(report("192.0.2.2", 1, "00112233445566778899aabbccddeeff", NULL), ==, 401);
	CHECK_INT(report("192.0.2.2", 1, "not hex", NULL), ==, 401);
	CHECK_INT(report("192.0.2.2", 1, n, NULL), ==, 200);
	CHECK_INT(report("192.0.2.2", 2, n, NULL), ==, 401);	/* used */
	CHECK_INT(report("192.0.2.3", 1, nb, NULL), ==, 200);	/* bob's still good */
	CHECK_INT(last_seq("alice"), ==, 1);
	stop();
}

TEST(nonce_expires)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .nonce_ttl_s = 1 };
	char n[33];

	start_cfg(&cfg);
	CHECK_INT(get("192.0.2.2", "/v1/nonce"), ==, 200);
	CHECK(strstr(resp, "\"expires_in\":1") != NULL);
	snprintf(n, sizeof(n), "%.32s", strstr(resp, "\"nonce\":\"") + 9);
	usleep(1100 * 1000);
	CHECK_INT(report("192.0.2.2", 1, n, NULL), ==, 401);
	CHECK_INT(last_seq("alice"), ==, -1);
	stop();
}

/* Per device at most 4 unused nonces: the fifth evicts the oldest. */
TEST(nonces_bounded_per_device)
{
	char n[6][33];

	start();
	for (int i = 0; i < 6; i++)
		nonce("192.0.2.2", n[i]);
	CHECK_INT(report("192.0.2.2", 1, n[0], NULL), ==, 401);
	CHECK_INT(report("192.0.2.2", 1, n[1], NULL), ==, 401);
	CHECK_INT(report("192.0.2.2", 1, n[2], NULL), ==, 200);
	CHECK_INT(report("192.0.2.2", 2, n[5], NULL), ==, 200);
	stop();
}

TEST(unknown_address_forbidden)
{
	start();
	CHECK_INT(get("198.51.100.9", "/v1/nonce"), ==, 403);
	CHECK_STR(resp, "{\"error\":\"not a device address\"}");
	CHECK_INT(post("198.51.100.9", "{\"seq\":1,\"nonce\":\"x\"}"), ==, 403);
	stop();
}

TEST(malformed_json_bad_request)
{
	char n[33];

	start();
	nonce("192.0.2.2", n);
	CHECK_INT(post("192.0.2.2", "{\"seq\": 1,\n \"nonce\": }"), ==, 400);
	CHECK(strstr(resp, "malformed JSON: ") != NULL);
	CHECK(strstr(resp, "line 2 column") != NULL);
	CHECK_INT(post("192.0.2.2", "[1,2]"), ==, 400);
	CHECK_STR(resp, "{\"error\":\"the body is not a JSON object\"}");
	CHECK_INT(post("192.0.2.2", "{\"seq\":\"1\",\"nonce\":\"x\"}"), ==, 400);
	CHECK_INT(post("192.0.2.2", "{\"seq\":1,\"seq\":2}"), ==, 400);	/* duplicate key */
	CHECK_INT(post("192.0.2.2", ""), ==, 400);
	CHECK_INT(http("192.0.2.2", "192.0.2.1", 8443, "POST", "/v1/report",
		       "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", NULL), ==, 415);
	/* None of it used the nonce up or stored anything. */
	CHECK_INT(report("192.0.2.2", 1, n, NULL), ==, 200);
	stop();
}

TEST(oversized_body)
{
	static char big[70000 + 64];
	char req[256];
	int fd, n;

	start();
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	CHECK_INT(post("192.0.2.2", big), ==, 413);
	CHECK(strstr(resp, "body over 65536 bytes") != NULL);
	/* Chunked, without a length: read, dropped, answered 413 at the end. */
	fd = dial("192.0.2.2", "192.0.2.1", 8443);
	n = snprintf(req, sizeof(req), "POST /v1/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
	static char chunked[80000];
	size_t len = (size_t)n;

	memcpy(chunked, req, len);
	for (int i = 0; i < 7; i++) {
		len += (size_t)sprintf(chunked + len, "2710\r\n");	/* 10000 bytes */
		memset(chunked + len, ' ', 10000);
		len += 10000;
		len += (size_t)sprintf(chunked + len, "\r\n");
	}
	len += (size_t)sprintf(chunked + len, "0\r\n\r\n");
	CHECK_INT(exchange(fd, chunked, len), ==, 413);
	stop();
}

TEST(wrong_method_or_path)
{
	start();
	CHECK_INT(get("192.0.2.2", "/v1/report"), ==, 405);
	CHECK_STR(resp, "{\"error\":\"method not allowed\"}");
	CHECK_INT(http("192.0.2.2", "192.0.2.1", 8443, "POST", "/v1/nonce", NULL, "{}"), ==, 405);
	CHECK_INT(get("192.0.2.2", "/"), ==, 404);
	CHECK_INT(get("192.0.2.2", "/v1/nonce/../report"), ==, 404);
	CHECK_STR(resp, "{\"error\":\"no such resource\"}");
	/* The admin route exists only on the admin address, and vice versa. */
	CHECK_INT(http("192.0.2.2", "192.0.2.1", 8443, "POST", "/v1/attributes", NULL, "{}"), ==,
		  404);
	CHECK_INT(http("192.0.2.2", "203.0.113.1", 9443, "GET", "/v1/nonce", NULL, NULL), ==, 404);
	stop();
}

static void report_req(char *req, size_t len, long seq, const char *nonce_hex)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"seq\":%ld,\"nonce\":\"%s\"}", seq, nonce_hex);
	snprintf(req, len, "POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: "
		 "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
}

/* Two reports in one round, bob's write fails (a trigger refuses his row):
 * bob gets 503, alice's report is kept and acknowledged. */
TEST(one_bad_row_fails_only_its_request)
{
	char na[33], nb[33], ra[512], rb[512];
	sqlite3 *db;
	int fa, fb;

	start();
	CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "CREATE TRIGGER no_bob BEFORE INSERT ON reports WHEN "
			   "NEW.device = 'bob' BEGIN SELECT RAISE(ABORT, 'no bob'); END;",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	nonce("192.0.2.2", na);
	nonce("192.0.2.3", nb);
	fa = dial("192.0.2.2", "192.0.2.1", 8443);
	fb = dial("192.0.2.3", "192.0.2.1", 8443);
	pump(20);
	report_req(ra, sizeof(ra), 7, na);
	report_req(rb, sizeof(rb), 7, nb);
	CHECK(send(fa, ra, strlen(ra), MSG_NOSIGNAL) == (ssize_t)strlen(ra));
	CHECK(send(fb, rb, strlen(rb), MSG_NOSIGNAL) == (ssize_t)strlen(rb));
	usleep(20000);
	undone = rounds_kept = 0;
	xb_posture_http_process(svc);		/* both in one round */
	CHECK_INT(one_response(fb), ==, 503);
	CHECK_INT(one_response(fa), ==, 200);
	CHECK_INT(undone, ==, 1);	/* bob's accepted report forgotten */
	CHECK_INT(rounds_kept, ==, 1);	/* alice's applied after the commit */
	CHECK_INT(last_seq("alice"), ==, 7);
	CHECK_INT(last_seq("bob"), ==, -1);
	close(fa);
	close(fb);
	stop();
}

/* The answers held in one round are audited in the order their requests
 * were accepted (the order on_report saw them and on_round applies them),
 * not the reverse. */
TEST(round_audited_in_order)
{
	char na[33], nb[33], ra[512], rb[512], path[160], line[1024], seen[16] = "";
	FILE *f;
	int fa, fb;

	start();
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	xb_posture_http_close(svc);	/* again, with an audit log */
	CHECK((audit_log = xb_jsonlog_open(path, 0)) != NULL);
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" } };

	CHECK((svc = xb_posture_http_open(&cfg, &ops, NULL, store, audit_log)) != NULL);
	nonce("192.0.2.2", na);
	nonce("192.0.2.3", nb);
	fa = dial("192.0.2.2", "192.0.2.1", 8443);
	fb = dial("192.0.2.3", "192.0.2.1", 8443);
	pump(20);
	report_req(ra, sizeof(ra), 7, na);
	report_req(rb, sizeof(rb), 7, nb);
	CHECK(send(fa, ra, strlen(ra), MSG_NOSIGNAL) == (ssize_t)strlen(ra));
	CHECK(send(fb, rb, strlen(rb), MSG_NOSIGNAL) == (ssize_t)strlen(rb));
	usleep(20000);
	accepted[0] = '\0';
	xb_posture_http_process(svc);		/* both in one round */
	CHECK_INT(one_response(fa), ==, 200);
	CHECK_INT(one_response(fb), ==, 200);
	CHECK_INT(strlen(accepted), ==, 2);
	CHECK((f = fopen(path, "r")) != NULL);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "\"event\":\"report\"") && strstr(line, "\"status\":200"))
			strncat(seen, strstr(line, "\"device\":\"") + 10, 1);
	fclose(f);
	CHECK_STR(seen, accepted);
	close(fa);
	close(fb);
	stop();
}

/* Another process holds the database's write lock: a report is refused
 * with 503 before it is vetted — not judged, its nonce not spent. */
TEST(busy_store_refuses_before_vetting)
{
	char n[33];
	sqlite3 *db;

	start();
	nonce("192.0.2.2", n);
	CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	reports_seen = 0;
	CHECK_INT(report("192.0.2.2", 3, n, NULL), ==, 503);
	CHECK_STR(resp, "{\"error\":\"storage unavailable\"}");
	CHECK_INT(reports_seen, ==, 0);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	CHECK_INT(report("192.0.2.2", 3, n, NULL), ==, 200);	/* the same nonce */
	CHECK_INT(last_seq("alice"), ==, 3);
	stop();
}

TEST(refused_report_not_stored)
{
	char n[33];

	start();
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 5, n, ",\"refuse\":true"), ==, 422);
	CHECK_STR(resp, "{\"error\":\"disk encryption: expected on, saw off\"}");
	CHECK_INT(last_seq("alice"), ==, -1);
	nonce("192.0.2.2", n);
	CHECK_INT(report("192.0.2.2", 5, n, NULL), ==, 200);	/* seq 5 still free */
	stop();
}

static int attr_seen(void *ctx, const struct xb_posture_store_attr *a)
{
	snprintf(ctx, 256, "%s %s=%s %s", a->device, a->key, a->value, a->source);
	return 0;
}

TEST(attribute_push)
{
	char seen[256] = "";

	start();
	CHECK_INT(http("203.0.113.1", "203.0.113.1", 9443, "POST", "/v1/attributes",
		       "X-Xborder-Signature: YmFk\r\n", "{\"any\":1}"), ==, 401);
	CHECK_STR(resp, "{\"error\":\"bad signature\"}");
	xb_posture_store_foreach_attr(store, 0, attr_seen, seen);
	CHECK_STR(seen, "");
	CHECK_INT(http("203.0.113.1", "203.0.113.1", 9443, "POST", "/v1/attributes",
		       "X-Xborder-Signature: Z29vZA==\r\n", "{\"any\":1}"), ==, 200);
	CHECK_STR(resp, "{\"accepted\":true,\"stored\":1}");
	xb_posture_store_foreach_attr(store, 0, attr_seen, seen);
	CHECK_STR(seen, "alice edr=\"healthy\" mdm-key-1");
	stop();
}

/* With 4 connections allowed per address, 10 idle clients: never more than
 * 4 held, the rest wait in the listen backlog; with a 1 s timeout all are
 * closed in turn within about 3 s, and the service answers again. */
TEST(connections_bounded)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .max_conns = 4, .timeout_s = 1,
				      .conns_per_source = 10 };
	int fd[10], closed = 0;
	size_t most = 0;
	uint64_t t0;
	char c;

	start_cfg(&cfg);
	for (int i = 0; i < 10; i++)
		fd[i] = dial("192.0.2.2", "192.0.2.1", 8443);
	t0 = clock_mono_ns();
	for (int round = 0; round < 600 && closed < 10; round++) {
		pump(10);
		if (xb_posture_http_conns(svc) > most)
			most = xb_posture_http_conns(svc);
		closed = 0;
		for (int i = 0; i < 10; i++) {
			ssize_t n = recv(fd[i], &c, 1, MSG_PEEK);

			closed += n == 0 || (n < 0 && errno == ECONNRESET);
		}
	}
	CHECK_INT(most, ==, 4);
	CHECK_INT(closed, ==, 10);
	CHECK(clock_mono_ns() - t0 < 5 * NSEC_PER_SEC);
	printf("# 10 idle connections, 4 allowed, 1 s timeout: all closed after %.1f s\n",
	       (double)(clock_mono_ns() - t0) / NSEC_PER_SEC);
	for (int i = 0; i < 10; i++)
		close(fd[i]);
	CHECK_INT(get("192.0.2.2", "/v1/nonce"), ==, 200);
	stop();
}

/* Issue #15: bob asks for nonces as fast as he can, alice reports. bob is
 * refused 429 once past his budget (burst, then rate a second) and the
 * nonce table (16 slots here) never fills: alice's nonce and report are
 * accepted, every time. */
TEST(flooding_device_refused_others_served)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .nonces = 16, .rate = 5,
				      .burst = 10 };
	int ok = 0, limited = 0, other = 0;
	struct xb_posture_http_stats st;
	char n[33];

	start_cfg(&cfg);
	for (int i = 0; i < 100; i++) {
		int status = get("192.0.2.3", "/v1/nonce");

		ok += status == 200;
		limited += status == 429;
		other += status != 200 && status != 429;
	}
	printf("# bob's 100 nonce requests: %d answered, %d refused 429, %d other\n", ok, limited,
	       other);
	CHECK_INT(other, ==, 0);
	CHECK_INT(ok, >=, 10);
	CHECK_INT(ok, <, 30);		/* the burst and what 5/s refills meanwhile */
	CHECK_STR(resp, "{\"error\":\"too many requests from this device\"}");
	for (int i = 1; i <= 3; i++) {
		nonce("192.0.2.2", n);
		CHECK_INT(report("192.0.2.2", i, n, NULL), ==, 200);
	}
	xb_posture_http_stats(svc, &st);
	CHECK_INT(st.limited, ==, limited);
	CHECK_INT(st.nonce_full, ==, 0);
	stop();
}

/* A used nonce frees its slot: a table of 2 serves any number of reports. */
TEST(used_nonce_frees_its_slot)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .nonces = 2,
				      .rate = 1000, .burst = 1000 };
	char n[33];

	start_cfg(&cfg);
	for (int i = 1; i <= 10; i++) {
		nonce("192.0.2.2", n);
		CHECK_INT(report("192.0.2.2", i, n, NULL), ==, 200);
	}
	CHECK_INT(last_seq("alice"), ==, 10);
	stop();
}

/* Whether fd was closed by the server (EOF or reset), without reading. */
static bool closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != ENOTCONN);
}

/* 6 connections from bob with 2 allowed per source: at most 2 held, the
 * others closed at once; alice is still served. */
TEST(connections_bounded_per_source)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .conns_per_source = 2 };
	int fd[6], shut = 0;
	size_t most = 0;
	struct xb_posture_http_stats st;

	start_cfg(&cfg);
	for (int i = 0; i < 6; i++)
		fd[i] = dial("192.0.2.3", "192.0.2.1", 8443);
	for (int round = 0; round < 100 && shut < 4; round++) {
		pump(10);
		if (xb_posture_http_conns(svc) > most)
			most = xb_posture_http_conns(svc);
		shut = 0;
		for (int i = 0; i < 6; i++)
			shut += closed(fd[i]);
	}
	CHECK_INT(most, ==, 2);
	CHECK_INT(shut, ==, 4);
	CHECK_INT(get("192.0.2.2", "/v1/nonce"), ==, 200);
	xb_posture_http_stats(svc, &st);
	CHECK_INT(st.conns_refused, ==, 4);
	for (int i = 0; i < 6; i++)
		close(fd[i]);
	stop();
}

/* Send `head', then one byte of `drip' every 200 ms (never idle for the
 * 5 s timeout); the ms until the server closed the connection, or -1
 * when it was still open after 6 s. */
static int trickle(const char *head, const char *drip)
{
	int fd = dial("192.0.2.3", "192.0.2.1", 8443);
	uint64_t t0 = clock_mono_ns(), next = t0;
	size_t sent = 0, off = 0;

	while (clock_mono_ns() - t0 < 6 * NSEC_PER_SEC) {
		ssize_t n;

		if (sent < strlen(head) &&
		    (n = send(fd, head + sent, strlen(head) - sent, MSG_NOSIGNAL)) > 0)
			sent += (size_t)n;
		if (sent == strlen(head) && clock_mono_ns() >= next && drip[off]) {
			if (send(fd, &drip[off], 1, MSG_NOSIGNAL) == 1)
				off++;
			next += 200 * NSEC_PER_MSEC;
		}
		pump(10);
		if (closed(fd)) {
			close(fd);
			return (int)((clock_mono_ns() - t0) / NSEC_PER_MSEC);
		}
	}
	close(fd);
	return -1;
}

/* Issue #15: a client trickling a byte every 200 ms is never idle, but
 * its request must be whole by its deadlines: headers within 1 s of the
 * connection, the body within 1 s of the headers. */
TEST(slow_requests_cut_at_their_deadlines)
{
	struct xb_posture_http_config cfg = { .listen = { "192.0.2.1" }, .header_timeout_s = 1,
				      .body_timeout_s = 1 };
	struct xb_posture_http_stats st;
	char n[33];
	int ms;

	start_cfg(&cfg);
	ms = trickle("GET /v1/nonce HTTP/1.1\r\nHost: x\r\n",
		     "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	printf("# headers trickled: closed after %d ms\n", ms);
	CHECK_INT(ms, >=, 900);
	CHECK_INT(ms, <, 3500);
	ms = trickle("POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		     "Content-Length: 200\r\n\r\n", "{\"seq\":1,\"nonce\":\"aaaaaaaaaaaaaaaaaaaaaaaaaa");
	printf("# body trickled: closed after %d ms\n", ms);
	CHECK_INT(ms, >=, 900);
	CHECK_INT(ms, <, 3500);
	xb_posture_http_stats(svc, &st);
	CHECK_INT(st.deadline_closed, ==, 2);
	nonce("192.0.2.2", n);		/* a prompt client is unaffected */
	CHECK_INT(report("192.0.2.2", 1, n, NULL), ==, 200);
	stop();
}

/* A blocking client: one request on a new connection, the whole answer. */
static ssize_t ask(const char *src, const char *req, char *buf, size_t len)
{
	int fd = dial(src, "192.0.2.1", 8443);
	size_t got = 0;
	ssize_t n;

	fcntl(fd, F_SETFL, 0);
	for (int i = 0; i < 100; i++) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (poll(&p, 1, 100) > 0)
			break;
	}
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		return -1;
	while (got < len - 1 && (n = recv(fd, buf + got, len - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* n reports (nonce, then report, each on a new connection) from alice;
 * exit status 0 when every one was accepted. */
static _Noreturn void client(int n)
{
	char buf[2048], req[1024], body[256];
	const char *p;

	for (int i = 1; i <= n; i++) {
		if (ask("192.0.2.2", "GET /v1/nonce HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			buf, sizeof(buf)) < 0 || !(p = strstr(buf, "\"nonce\":\"")))
			_exit(1);
		snprintf(body, sizeof(body), "{\"seq\":%d,\"nonce\":\"%.32s\",\"os\":\"linux 6.1\"}", i,
			 p + 9);
		snprintf(req, sizeof(req), "POST /v1/report HTTP/1.1\r\nHost: x\r\nConnection: close"
			 "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body), body);
		if (ask("192.0.2.2", req, buf, sizeof(buf)) < 0 || strncmp(buf, "HTTP/1.1 200", 12))
			_exit(2);
	}
	_exit(0);
}

/* The service's rate with a client in another process: 10 000 devices
 * reporting every 10 s need 1 000 reports/s (2 000 requests/s). */
TEST(report_rate)
{
	const int n = 3000;
	int status = -1;
	uint64_t t0;
	pid_t pid;

	start();
	t0 = clock_mono_ns();
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		client(n);
	for (int round = 0; round < 600000; round++) {
		pump(10);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("# %d reports (nonce + report, a new connection each, client in another process):"
	       " %.0f reports/s\n", n, n / ((double)(clock_mono_ns() - t0) / NSEC_PER_SEC));
	CHECK_INT(last_seq("alice"), ==, n);
	stop();
}
