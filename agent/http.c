/* The agent's HTTP/1.1 client; see http.h.
 *
 * Response rules (RFC 9112): a status line "HTTP/1.x SSS reason", header
 * lines ended by CRLF (a bare LF is accepted), an empty line, then the body:
 * chunked when Transfer-Encoding says so, else Content-Length bytes, else
 * everything until the server closes. Conflicting or repeated lengths, bad
 * chunk sizes and anything beyond XBA_HTTP_MAX are refused.
 */
#include "agent/http.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The next line in [p, end): its length without CR LF in *n, the start of
 * the line after as the result; NULL when no LF yet. */
static const char *line(const char *p, const char *end, size_t *n)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (!lf)
		return NULL;
	*n = (size_t)(lf - p) - (lf > p && lf[-1] == '\r');
	return lf + 1;
}

static bool status_line(const char *p, size_t n, int *status)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
		return false;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	if (n > 12 && p[12] != ' ')
		return false;
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return *status >= 100 && *status <= 599;
}

struct head {
	long long length;	/* -1: none */
	bool chunked;
};

/* One header line; only the two that frame the body matter. */
static int header(const char *p, size_t n, struct head *h, char *err, size_t errlen)
{
	const char *colon = memchr(p, ':', n), *v, *end = p + n;
	char num[24];
	size_t vn;

	if (!colon || colon == p)
		return fail(err, errlen, "header line without a name");
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	vn = (size_t)(end - v);
	if ((size_t)(colon - p) == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
		if (vn != 7 || strncasecmp(v, "chunked", 7))
			return fail(err, errlen, "transfer encoding `%.*s' not supported", (int)vn, v);
		h->chunked = true;
	} else if ((size_t)(colon - p) == 14 && !strncasecmp(p, "Content-Length", 14)) {
		if (h->length >= 0 || vn == 0 || vn > 9 || strspn(v, "0123456789") < vn)
			return fail(err, errlen, "bad or repeated Content-Length");
		memcpy(num, v, vn);
		num[vn] = '\0';
		h->length = atoll(num);
	}
	return 0;
}

static int set_body(struct xba_http_resp *r, const char *p, size_t n)
{
	if (!(r->body = malloc(n + 1)))
		return -1;
	memcpy(r->body, p, n);
	r->body[n] = '\0';
	r->len = n;
	return 0;
}

/* A chunk-size line: hex digits, then nothing or ";extensions". */
static bool chunk_size(const char *p, size_t n, size_t *size)
{
	size_t i = 0, v = 0;

	for (; i < n && i < 8; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			break;
		v = v * 16 + (size_t)d;
	}
	*size = v;
	return i > 0 && (i == n || p[i] == ';') && v <= XBA_HTTP_MAX;
}

/* Decode chunks from p; 1 when they are not all here yet. */
static int chunks(const char *p, const char *end, struct xba_http_resp *r, char *err,
		  size_t errlen)
{
	char *out = malloc((size_t)(end - p) + 1);
	size_t used = 0, n;
	const char *next;

	if (!out)
		return fail(err, errlen, "out of memory");
	for (;;) {
		size_t size;

		if (!(next = line(p, end, &n)))
			goto more;
		if (!chunk_size(p, n, &size)) {
			free(out);
			return fail(err, errlen, "bad chunk size line");
		}
		p = next;
		if (size == 0)
			break;
		if ((size_t)(end - p) < size + 1)
			goto more;
		memcpy(out + used, p, size);
		used += size;
		p += size;
		if (!(next = line(p, end, &n)))
			goto more;
		if (n) {
			free(out);
			return fail(err, errlen, "chunk longer than its size");
		}
		p = next;
	}
	/* Trailer lines, then the empty line that ends the message. */
	while ((next = line(p, end, &n)) && n)
		p = next;
	if (!next)
		goto more;
	out[used] = '\0';
	r->body = out;
	r->len = used;
	return 0;
more:
	free(out);
	return 1;
}

int xba_http_parse(const char *buf, size_t len, bool eof, struct xba_http_resp *resp,
		   char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len, *next;
	struct head h = { -1, false };
	size_t n;
	int rc;

	memset(resp, 0, sizeof(*resp));
	if (!(next = line(p, end, &n)))
		goto more;
	if (!status_line(p, n, &resp->status))
		return fail(err, errlen, "not an HTTP/1.x status line");
	for (p = next; (next = line(p, end, &n)) && n; p = next)
		if (header(p, n, &h, err, errlen))
			return -1;
	if (!next)
		goto more;
	p = next;
	if (h.chunked) {
		if ((rc = chunks(p, end, resp, err, errlen)) != 1)
			return rc;
		goto more;
	}
	if (h.length >= 0) {
		if ((size_t)(end - p) < (size_t)h.length)
			goto more;
		return set_body(resp, p, (size_t)h.length) ? fail(err, errlen, "out of memory") : 0;
	}
	if (!eof)
		return 1;
	return set_body(resp, p, (size_t)(end - p)) ? fail(err, errlen, "out of memory") : 0;
more:
	if (eof)
		return fail(err, errlen, "connection closed before the response was complete");
	return 1;
}

void xba_http_resp_free(struct xba_http_resp *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* Milliseconds left until deadline (monotonic ns), at least 0. */
static int left_ms(uint64_t deadline)
{
	uint64_t now = clock_mono_ns();

	return now >= deadline ? 0 : (int)((deadline - now) / NSEC_PER_MSEC) + 1;
}

/* Wait for events on fd; -1 with errno ETIMEDOUT when the deadline passes. */
static int await(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		int ms = left_ms(deadline);

		if (!ms) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, ms);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

static int dial(const char *host, uint16_t port, uint64_t deadline)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl, el = sizeof(int);
	int fd, e = 0;

	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		errno = EINVAL;
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)
		goto fail;
	if (await(fd, POLLOUT, deadline))
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) || e) {
		errno = e ?: errno;
		goto fail;
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (w < 0) {
			if (await(fd, POLLOUT, deadline))
				return -1;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until the response is complete, the server closes, or the deadline. */
static int receive(int fd, uint64_t deadline, struct xba_http_resp *resp, char *err,
		   size_t errlen)
{
	char *buf = malloc(XBA_HTTP_MAX);
	size_t len = 0;
	int rc = 1;

	if (!buf)
		return fail(err, errlen, "out of memory");
	while (rc == 1) {
		ssize_t r;

		if (await(fd, POLLIN, deadline)) {
			rc = fail(err, errlen, "no complete answer: %s", strerror(errno));
			break;
		}
		r = recv(fd, buf + len, XBA_HTTP_MAX - len, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0) {
			rc = fail(err, errlen, "receiving: %s", strerror(errno));
			break;
		}
		len += (size_t)r;
		rc = xba_http_parse(buf, len, r == 0, resp, err, errlen);
		if (rc == 1 && len == XBA_HTTP_MAX)
			rc = fail(err, errlen, "answer longer than %d bytes", XBA_HTTP_MAX);
	}
	free(buf);
	return rc;
}

int xba_http_request(const char *host, uint16_t port, unsigned timeout_ms,
		     const char *method, const char *path, const char *body,
		     size_t body_len, struct xba_http_resp *resp, char *err, size_t errlen)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	bool v6 = strchr(host, ':');
	char head[512];
	int fd, n, rc;

	memset(resp, 0, sizeof(*resp));
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: xborder-posture\r\n"
		     "Accept: application/json\r\nConnection: close\r\n",
		     method, path, v6 ? "[" : "", host, v6 ? "]" : "", port);
	if (body)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	if (n >= (int)sizeof(head))
		return fail(err, errlen, "request head too long");
	if ((fd = dial(host, port, deadline)) < 0)
		return fail(err, errlen, "cannot connect to %s port %u: %s", host, port,
			    strerror(errno));
	if (send_all(fd, head, (size_t)n, deadline) ||
	    (body && send_all(fd, body, body_len, deadline)))
		rc = fail(err, errlen, "sending to %s port %u: %s", host, port, strerror(errno));
	else
		rc = receive(fd, deadline, resp, err, errlen);
	close(fd);
	return rc;
}
