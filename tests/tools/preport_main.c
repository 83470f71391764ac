/* xb-preport: a posture report load generator for bench/posture.sh.
 *
 *   xb-preport -g 198.18.0.1 -p 8443 -b 198.18.0.2 -n 10000 -i 10 -t 30 -f 1 -o lat
 *
 * N devices with consecutive IPv4 addresses from -b (each must be a local
 * address: the tool binds it, so the gateway sees the device's own
 * source) report every -i seconds for -t seconds, spread evenly over the
 * interval. A report is one connection: GET /v1/nonce on it, kept alive,
 * then POST /v1/report with that nonce (Connection: close). A nonce is
 * good for one report, so every report fetches one; the connection is
 * not kept between reports because the gateway closes connections idle
 * for 5 s, and a device reports every 10.
 *
 * -f FLIP, the share of reports (percent) that change the device's
 * compliance: 0, every report passes (os.version "12"); 100, every report
 * flips — the first fails ("11"), the next passes, and so on (a fail takes
 * the device out of its rule's set, which cuts its flows: the costly case);
 * in between, that share of reports fail, chosen by a hash of device and
 * round, never a device's last one, so every device ends compliant.
 *
 * One process (W with -w, device i in worker i mod W), non-blocking
 * sockets in one epoll set, no thread or process per report. Per worker,
 * one line per report to OUT.W: the POST's latency in microseconds, from
 * its first byte sent to the 200's last byte read. The gateway answers
 * only after enforcing, so this bounds the report → enforcement latency
 * from above. A report not answered 200 within TIMEOUT_S is a line
 * "err STATUS" (-1: no answer). Lateness against the schedule and the
 * generator's own CPU time are printed on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S	5
#define MAX_FLIGHT	4096	/* reports in flight per worker */

enum { NONCE, REPORT };

struct conn {
	int fd, state;
	uint32_t dev;
	bool pass;
	uint64_t seq, t0, deadline;
	size_t out_len, out_off, got;
	char out[640], in[2048];
};

struct opts {
	struct sockaddr_in gw;
	uint32_t base;
	unsigned n, interval, duration, nw;
	double flip;
	const char *out;
};

struct worker {
	const struct opts *o;
	unsigned w;
	int ep;
	FILE *f;
	struct conn *flight[MAX_FLIGHT];
	size_t n_flight;
	uint64_t wall, late, late_max, ok, errs;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Does device i pass in round k (of rounds)? See -f above. */
static bool passes(const struct opts *o, uint32_t i, unsigned k, unsigned rounds)
{
	uint64_t h = ((uint64_t)i * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)k * 0xc2b2ae3d27d4eb4fULL);

	if (o->flip >= 100)
		return k % 2 == 1;
	if (k + 1 == rounds || o->flip <= 0)
		return true;
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 29;
	return (double)(h % 1000000) >= o->flip * 10000;
}

static void finish(struct worker *wk, struct conn *c, long status)
{
	struct epoll_event ev;

	if (status == 200) {
		fprintf(wk->f, "%llu\n", (unsigned long long)(now_us() - c->t0));
		wk->ok++;
	} else {
		fprintf(wk->f, "err %ld\n", status);
		if (wk->errs++ < 3)	/* the first few, to say why */
			fprintf(stderr, "xb-preport: device %u: %s: %s (%s)\n", c->dev,
				c->state == NONCE ? "nonce" : "report",
				status > 0 ? "refused" : "no answer", status > 0 ? c->in :
				errno ? strerror(errno) : "timeout or closed");
	}
	epoll_ctl(wk->ep, EPOLL_CTL_DEL, c->fd, &ev);
	close(c->fd);
	for (size_t k = 0; k < wk->n_flight; k++)
		if (wk->flight[k] == c) {
			wk->flight[k] = wk->flight[--wk->n_flight];
			break;
		}
	free(c);
}

static void want(struct worker *wk, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	epoll_ctl(wk->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void launch(struct worker *wk, uint32_t dev, uint64_t seq, bool pass)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(wk->o->base + dev) };
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLOUT };

	if (!c || wk->n_flight == MAX_FLIGHT) {
		free(c);
		fprintf(wk->f, "err -1\n");
		wk->errs++;
		return;
	}
	c->dev = dev;
	c->seq = seq;
	c->pass = pass;
	c->deadline = now_us() + TIMEOUT_S * 1000000ULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->out_len = (size_t)snprintf(c->out, sizeof(c->out),
				      "GET /v1/nonce HTTP/1.1\r\nHost: gw\r\n\r\n");
	wk->flight[wk->n_flight++] = c;
	ev.data.ptr = c;
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&s, sizeof(s)) < 0 ||
	    (connect(c->fd, (const struct sockaddr *)&wk->o->gw, sizeof(wk->o->gw)) < 0 &&
	     errno != EINPROGRESS) || epoll_ctl(wk->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		finish(wk, c, -1);
}

/* A whole response in c->in: its status, and the body at *body; 0 when
 * more is to come. */
static int complete(struct conn *c, const char **body)
{
	const char *end = strstr(c->in, "\r\n\r\n"), *cl;
	int status;

	if (!end)
		return 0;
	*body = end + 4;
	cl = strstr(c->in, "Content-Length:");
	if (!cl || cl > end || (size_t)(*body - c->in) + strtoul(cl + 15, NULL, 10) > c->got)
		return 0;
	return sscanf(c->in, "HTTP/1.%*d %d", &status) == 1 ? status : -1;
}

/* The nonce's answer is in: send the report on the same connection. */
static void send_report(struct worker *wk, struct conn *c, const char *body)
{
	const char *n = strstr(body, "\"nonce\":\"");
	char js[256];
	int len;

	if (!n || !strchr(n + 9, '"')) {
		finish(wk, c, -1);
		return;
	}
	len = snprintf(js, sizeof(js), "{\"seq\":%llu,\"nonce\":\"%.*s\",\"time\":0,\"os\":"
		       "{\"family\":\"linux\",\"version\":\"%s\"}}", (unsigned long long)c->seq,
		       (int)(strchr(n + 9, '"') - (n + 9)), n + 9, c->pass ? "12" : "11");
	c->out_len = (size_t)snprintf(c->out, sizeof(c->out), "POST /v1/report HTTP/1.1\r\n"
				      "Host: gw\r\nConnection: close\r\nContent-Type: "
				      "application/json\r\nContent-Length: %d\r\n\r\n%s", len, js);
	c->out_off = c->got = 0;
	c->state = REPORT;
	c->t0 = now_us();
	want(wk, c, EPOLLOUT);
}

static void event(struct worker *wk, struct conn *c, uint32_t ev)
{
	const char *body;
	ssize_t k;
	int st;

	if (ev & EPOLLOUT) {
		k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN) {
			finish(wk, c, -1);
			return;
		}
		c->out_off += k > 0 ? (size_t)k : 0;
		if (c->out_off == c->out_len)
			want(wk, c, EPOLLIN);
		return;
	}
	k = recv(c->fd, c->in + c->got, sizeof(c->in) - 1 - c->got, 0);
	if (k < 0 && errno == EAGAIN)
		return;
	if (k <= 0) {
		finish(wk, c, -1);
		return;
	}
	c->got += (size_t)k;
	c->in[c->got] = '\0';
	if (!(st = complete(c, &body)))
		return;
	if (c->state == NONCE && st == 200)
		send_report(wk, c, body);
	else
		finish(wk, c, st);
}

static void expire(struct worker *wk)
{
	uint64_t t = now_us();

	for (size_t k = 0; k < wk->n_flight; k++)
		if (wk->flight[k]->deadline < t)
			finish(wk, wk->flight[k--], -1);
}

/* Wait for events until t (monotonic us), serving connections. */
static void serve_until(struct worker *wk, uint64_t t)
{
	struct epoll_event evs[64];
	uint64_t now;

	while ((now = now_us()) < t || t == 0) {
		int ms = t ? (int)((t - now + 999) / 1000) : 100;
		int n = epoll_wait(wk->ep, evs, 64, ms);

		for (int i = 0; i < n; i++)
			event(wk, evs[i].data.ptr, evs[i].events);
		expire(wk);
		if (t == 0)
			return;
	}
}

static int worker(const struct opts *o, unsigned w)
{
	struct worker wk = { .o = o, .w = w };
	unsigned rounds = (o->duration + o->interval - 1) / o->interval;
	uint64_t start = now_us(), deadline;
	struct timespec ts;
	char path[512];

	snprintf(path, sizeof(path), "%s.%u", o->out, w);
	if (!(wk.f = fopen(path, "w")) || (wk.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	wk.wall = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	for (unsigned k = 0; k < rounds; k++) {
		for (uint32_t i = w; i < o->n; i += o->nw) {
			uint64_t due = start + (uint64_t)k * o->interval * 1000000 +
				       (uint64_t)i * o->interval * 1000000 / o->n, t;

			serve_until(&wk, due);
			t = now_us();
			wk.late += t - due;
			wk.late_max = t - due > wk.late_max ? t - due : wk.late_max;
			launch(&wk, i, wk.wall + k, passes(o, i, k, rounds));
		}
	}
	deadline = now_us() + (TIMEOUT_S + 1) * 1000000ULL;
	while (wk.n_flight && now_us() < deadline)
		serve_until(&wk, 0);
	fclose(wk.f);
	close(wk.ep);
	fprintf(stderr, "xb-preport: worker %u: %llu answered 200, %llu failed; late %.3f s in "
		"total, at most %.1f ms\n", w, (unsigned long long)wk.ok,
		(unsigned long long)wk.errs, (double)wk.late / 1e6, (double)wk.late_max / 1e3);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: xb-preport -g GW -b FIRST [-p PORT] [-n N] [-i S] [-t S] "
		"[-f FLIP%%] [-w WORKERS] [-o OUT]\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .n = 100, .interval = 10, .duration = 30, .nw = 1, .flip = 100,
			  .out = "preport" };
	const char *gwaddr = NULL, *first = NULL;
	unsigned port = 8443;
	struct in_addr b;
	struct rusage ru;
	uint64_t t0 = now_us();
	int c, rc = 0;

	while ((c = getopt(argc, argv, "g:p:b:n:i:t:f:w:o:")) != -1) {
		switch (c) {
		case 'g': gwaddr = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'b': first = optarg; break;
		case 'n': o.n = (unsigned)atoi(optarg); break;
		case 'i': o.interval = (unsigned)atoi(optarg); break;
		case 't': o.duration = (unsigned)atoi(optarg); break;
		case 'f': o.flip = atof(optarg); break;
		case 'w': o.nw = (unsigned)atoi(optarg); break;
		case 'o': o.out = optarg; break;
		default: usage(); return 2;
		}
	}
	o.gw.sin_family = AF_INET;
	o.gw.sin_port = htons((uint16_t)port);
	if (!gwaddr || !first || inet_pton(AF_INET, gwaddr, &o.gw.sin_addr) != 1 ||
	    inet_pton(AF_INET, first, &b) != 1 || !o.n || !o.interval || !o.duration || !o.nw ||
	    o.nw > 64 || o.flip < 0 || o.flip > 100) {
		usage();
		return 2;
	}
	o.base = ntohl(b.s_addr);
	for (unsigned w = 0; w < o.nw; w++)
		if (fork() == 0)
			_exit(worker(&o, w));
	for (unsigned w = 0; w < o.nw; w++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = 1;
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	fprintf(stderr, "xb-preport: cpu %.3f s in %.1f s\n",
		(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
		(double)(now_us() - t0) / 1e6);
	return rc;
}
