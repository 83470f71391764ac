/* xb-gwfake — a fake gateway posture endpoint, for testing xborder-posture.
 *
 *   xb-gwfake [-a ADDR] [-p PORT] [-F CODE [-e TEXT]] [-G] DIR
 *
 * Serves GET /v1/nonce and POST /v1/report as docs/posture.md describes,
 * checking what the gateway checks: the body is a JSON object of at most
 * 64 KiB (400, 413), its nonce was issued here and not used yet (401), its
 * seq is an integer above the last accepted one (409). An accepted report is
 * stored as DIR/report-N.json (N from 1). -F answers every report with CODE
 * and {"error": TEXT}; -G answers every request with bytes that are not
 * HTTP. DIR/ready appears once it listens. One connection at a time; runs
 * until SIGTERM or SIGINT, and at most 120 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LIFETIME_S 120
#define READ_MS 5000
#define MAX_BODY (64 * 1024)
#define MAX_REQ (MAX_BODY + 8192)
#define NONCES 16

struct fake {
	const char *dir;
	int force;		/* answer reports with this status */
	const char *force_text;
	bool garbage;
	char nonce[NONCES][33];
	unsigned next_nonce;
	long long last_seq;
	unsigned stored;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void answer(int fd, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT), head[256];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
		     text ? strlen(text) : 0);
	if (write(fd, head, (size_t)n) < 0 || (text && write(fd, text, strlen(text)) < 0))
		perror("xb-gwfake: write");
	free(text);
	json_decref(body);
}

static void error(int fd, int status, const char *text)
{
	fprintf(stderr, "xb-gwfake: %d %s\n", status, text);
	answer(fd, status, json_pack("{s:s}", "error", text));
}

static void nonce(struct fake *f, int fd)
{
	unsigned char raw[16];
	char *slot = f->nonce[f->next_nonce++ % NONCES];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(slot, 33, raw, sizeof(raw));
	answer(fd, 200, json_pack("{s:s,s:i}", "nonce", slot, "expires_in", 60));
}

/* Use up an issued nonce: false when it was never issued or already used. */
static bool take_nonce(struct fake *f, const char *n)
{
	for (int i = 0; n && i < NONCES; i++)
		if (f->nonce[i][0] && !strcmp(f->nonce[i], n)) {
			f->nonce[i][0] = '\0';
			return true;
		}
	return false;
}

static void store(struct fake *f, const char *body, size_t len)
{
	char path[4096];
	FILE *o;

	snprintf(path, sizeof(path), "%s/report-%u.json", f->dir, ++f->stored);
	if (!(o = fopen(path, "w")) || fwrite(body, 1, len, o) != len || fclose(o))
		perror(path);
}

static void report(struct fake *f, int fd, const char *body, size_t len)
{
	json_t *r = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *seq;
	long long s;

	if (f->force) {
		error(fd, f->force, f->force_text);
	} else if (!json_is_object(r)) {
		error(fd, 400, "malformed");
	} else if (!take_nonce(f, json_string_value(json_object_get(r, "nonce")))) {
		error(fd, 401, "stale nonce");
	} else if (!json_is_integer(seq = json_object_get(r, "seq")) ||
		   (s = json_integer_value(seq)) <= f->last_seq) {
		error(fd, 409, "seq not increasing");
	} else {
		f->last_seq = s;
		store(f, body, len);
		answer(fd, 200, json_pack("{s:b,s:I}", "accepted", 1, "seq", (json_int_t)s));
	}
	json_decref(r);
}

/* Content-Length of a request head, -1 when absent or bad. */
static long content_length(const char *head)
{
	const char *p = head;

	while ((p = strchr(p, '\n'))) {
		p++;
		if (!strncasecmp(p, "Content-Length:", 15))
			return strtol(p + 15, NULL, 10);
	}
	return -1;
}

static void route(struct fake *f, int fd, char *req, size_t len, char *body)
{
	if (f->garbage) {
		if (write(fd, "SSH-2.0-nonsense\r\n\r\n", 20) < 0)
			perror("xb-gwfake: write");
	} else if (!strncmp(req, "GET /v1/nonce ", 14)) {
		nonce(f, fd);
	} else if (!strncmp(req, "POST /v1/report ", 16)) {
		report(f, fd, body, len - (size_t)(body - req));
	} else {
		error(fd, 404, "no such endpoint");
	}
}

/* Read one request (head and Content-Length body), bounded in size and time. */
static void serve_one(struct fake *f, int fd)
{
	static char req[MAX_REQ + 1];
	size_t len = 0;
	char *body = NULL;
	long want = 0;

	while (len < MAX_REQ) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, READ_MS) <= 0 || (r = read(fd, req + len, MAX_REQ - len)) <= 0)
			return;
		len += (size_t)r;
		req[len] = '\0';
		if (!body && (body = strstr(req, "\r\n\r\n"))) {
			body += 4;
			if ((want = content_length(req)) > MAX_BODY)
				return error(fd, 413, "too big");
		}
		if (body && (long)(len - (size_t)(body - req)) >= want)
			return route(f, fd, req, len, body);
	}
	error(fd, 413, "too big");
}

static int listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "xb-gwfake: `%s' is not an IPv4 address\n", addr);
		return -1;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		perror("xb-gwfake: listen");
		return -1;
	}
	return fd;
}

static int run(struct fake *f, int lfd)
{
	time_t end = time(NULL) + LIFETIME_S;
	char path[4096];
	FILE *r;

	snprintf(path, sizeof(path), "%s/ready", f->dir);
	if (!(r = fopen(path, "w")) || fclose(r)) {
		perror(path);
		return 1;
	}
	while (!stop && time(NULL) < end) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 200) <= 0 || (fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		serve_one(f, fd);
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fake f = { .force_text = "refused", .last_seq = -1 };
	const char *addr = "127.0.0.1";
	int port = 8443, c, lfd, ret;

	while ((c = getopt(argc, argv, "a:p:F:e:G")) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'F': f.force = atoi(optarg); break;
		case 'e': f.force_text = optarg; break;
		case 'G': f.garbage = true; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	f.dir = argv[optind];
	if (sodium_init() < 0 || (lfd = listen_on(addr, port)) < 0)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ret = run(&f, lfd);
	close(lfd);
	return ret;
usage:
	fprintf(stderr, "usage: xb-gwfake [-a ADDR] [-p PORT] [-F CODE [-e TEXT]] [-G] DIR\n");
	return 2;
}
