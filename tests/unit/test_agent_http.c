/* The agent's HTTP response parser (agent/http.c) on whole, partial and
 * malformed answers, and the seq state file (agent/report.c). */
#include "tests/lib/check.h"
#include "agent/http.h"
#include "agent/report.h"
#include "common/clock.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, bool eof, struct xba_http_resp *r, char *err)
{
	return xba_http_parse(text, strlen(text), eof, r, err, 128);
}

TEST(content_length)
{
	const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			"content-length: 15\r\n\r\n{\"accepted\":1}\n";
	struct xba_http_resp r;
	char err[128];

	CHECK_INT(parse(t, false, &r, err), ==, 0);
	CHECK_INT(r.status, ==, 200);
	CHECK_INT(r.len, ==, 15);
	CHECK_STR(r.body, "{\"accepted\":1}\n");
	xba_http_resp_free(&r);
	/* Every proper prefix needs more, and is an error at EOF. */
	for (size_t n = 0; n < strlen(t); n++) {
		CHECK_INT(xba_http_parse(t, n, false, &r, err, sizeof(err)), ==, 1);
		CHECK_INT(xba_http_parse(t, n, true, &r, err, sizeof(err)), ==, -1);
	}
}

TEST(chunked_and_until_close)
{
	struct xba_http_resp r;
	char err[128];

	CHECK_INT(parse("HTTP/1.1 409 Conflict\nTransfer-Encoding: chunked\n\n"
			"4;x=y\r\n{\"er\r\nb\r\nror\":\"seq\"}\r\n0\r\nX-T: 1\r\n\r\n", false, &r, err),
		  ==, 0);
	CHECK_INT(r.status, ==, 409);
	CHECK_STR(r.body, "{\"error\":\"seq\"}");
	xba_http_resp_free(&r);
	CHECK_INT(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab", true,
			&r, err), ==, -1);
	CHECK_INT(parse("HTTP/1.0 200 OK\r\n\r\n{}", false, &r, err), ==, 1);
	CHECK_INT(parse("HTTP/1.0 200 OK\r\n\r\n{}", true, &r, err), ==, 0);
	CHECK_STR(r.body, "{}");
	xba_http_resp_free(&r);
}

TEST(malformed)
{
	static const char *const bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 099 X\r\n\r\n",
		"HTTP/1.1 611 X\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n",
	};
	struct xba_http_resp r;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(bad[i], true, &r, err) != -1)
			xb_test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
		CHECK(err[0]);
	}
}

TEST(seq_increases_and_survives_a_bad_file)
{
	char dir[] = "/tmp/xb-agent-seq.XXXXXX", sub[256], path[PATH_MAX];
	uint64_t a, b, now = clock_real_ns() / 1000;
	FILE *f;

	CHECK(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/state", dir);
	CHECK(xba_seq_next(sub, &a) == 0);
	CHECK(a >= now);
	CHECK(xba_seq_next(sub, &b) == 0);
	CHECK(b > a);
	CHECK(xba_seq_peek(sub) > b);
	/* A value from the future (the clock was ahead) still only goes up. */
	snprintf(path, sizeof(path), "%s/seq", sub);
	CHECK((f = fopen(path, "w")));
	fprintf(f, "%llu\n", (unsigned long long)(now + 3600000000ULL));
	fclose(f);
	CHECK(xba_seq_next(sub, &a) == 0);
	CHECK_INT(a, ==, now + 3600000000ULL + 1);
	/* Garbage: the clock floor. */
	CHECK((f = fopen(path, "w")));
	fputs("garbage\n", f);
	fclose(f);
	CHECK(xba_seq_next(sub, &b) == 0);
	CHECK(b >= now);
	unlink(path);
	rmdir(sub);
	CHECK(rmdir(dir) == 0);
}
