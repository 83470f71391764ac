/* The agent's HTTP client (agent/http.c, libcurl) against canned answers
 * from a local server: framing decoded, bad and over-long answers refused
 * with the reason; and the seq state file (agent/report.c). */
#include "tests/lib/check.h"
#include "agent/http.h"
#include "agent/report.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A one-shot server on 127.0.0.1: answers the first connection with
 * answer (n bytes) after reading the request head, then closes. Its port. */
static uint16_t serve(const char *answer, size_t n, pid_t *pid)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(l >= 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
	if ((*pid = fork()) == 0) {
		char buf[4096];
		int c = accept(l, NULL, NULL);

		alarm(5);
		if (c >= 0 && recv(c, buf, sizeof(buf), 0) > 0) {
			for (size_t off = 0; off < n;) {
				ssize_t w = send(c, answer + off, n - off, MSG_NOSIGNAL);
				if (w <= 0)
					break;
				off += (size_t)w;
			}
		}
		_exit(0);
	}
	close(l);
	return ntohs(a.sin_port);
}

static int ask(const char *answer, size_t n, struct xba_http_resp *r, char *err)
{
	pid_t pid;
	uint16_t port = serve(answer, n, &pid);
	int rc = xba_http_request("127.0.0.1", port, 3000, "POST", "/v1/report", "{}", 2, r, err, 256);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return rc;
}

TEST(framing_is_decoded)
{
	struct xba_http_resp r;
	char err[256];
	const char *t = "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
			"4;x=y\r\n{\"er\r\nb\r\nror\":\"seq\"}\r\n0\r\n\r\n";

	CHECK_INT(ask(t, strlen(t), &r, err), ==, 0);
	CHECK_INT(r.status, ==, 409);
	CHECK_STR(r.body, "{\"error\":\"seq\"}");
	xba_http_resp_free(&r);
	t = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"accepted\":1}";
	CHECK_INT(ask(t, strlen(t), &r, err), ==, 0);
	CHECK_INT(r.len, ==, 14);
	CHECK_STR(r.body, "{\"accepted\":1}");
	xba_http_resp_free(&r);
}

TEST(bad_and_long_answers_are_refused)
{
	struct xba_http_resp r;
	char err[256], *big;
	const char *t = "SSH-2.0-OpenSSH\r\n\r\n";
	size_t n;

	CHECK_INT(ask(t, strlen(t), &r, err), ==, -1);
	CHECK(strstr(err, "not an HTTP/1.x status line"));
	t = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}";	/* closed short */
	CHECK_INT(ask(t, strlen(t), &r, err), ==, -1);
	CHECK((big = malloc(XBA_HTTP_MAX + 200)));
	n = (size_t)snprintf(big, 100, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
			     XBA_HTTP_MAX + 1);
	memset(big + n, 'x', XBA_HTTP_MAX + 1);
	CHECK_INT(ask(big, n + XBA_HTTP_MAX + 1, &r, err), ==, -1);
	CHECK(strstr(err, "longer than"));
	free(big);
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
