/* xb-pflood: one misbehaving device against the posture endpoint, for
 * tests/net/posture_flood.sh (issue #15).
 *
 *   xb-pflood -g 198.51.100.1 -p 8443 -c 6 -s 300 -i 2000 -t 80
 *
 * For -t seconds, from this host's own address (the device's):
 *   -c C connections ask GET /v1/nonce back to back, kept alive; one the
 *        server closes (it does after a 429) is dialled again at once;
 *   -s S connections each send a request line and then one header byte
 *        every -i ms, never finishing: the slow client that held a slot
 *        for ever when only idleness was timed. One the server closes is
 *        dialled again after a second (S a second at most).
 * One epoll loop, no threads. At the end, one line of counters on stdout:
 *   nonce_200=N nonce_429=N nonce_503=N nonce_other=N dials=N
 *   slow_closed=N slow_open_max=N slow_open_end=N
 * (slow_closed: slow connections the server closed; slow_open_*: how many
 * of them were connected, not yet closed, at most and at the end).
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define REDIAL_SLOW_MS 1000

struct conn {
	int fd;
	size_t idx;		/* in conns[] */
	bool slow, up;		/* up: connected (seen writable) */
	uint64_t next;		/* ms: the next byte (slow) or dial (closed) */
	size_t got;
	char in[4096];
};

static struct sockaddr_in gw;
static int ep;
static unsigned interval = 2000;	/* ms between a slow connection's bytes */
static uint64_t n200, n429, n503, nother, dials, slow_closed, slow_open, slow_open_max;
static const char nonce_req[] = "GET /v1/nonce HTTP/1.1\r\nHost: gw\r\n\r\n";
static const char slow_head[] = "GET /v1/nonce HTTP/1.1\r\nHost: gw\r\nX-Slow: ";

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dial(struct conn *c, size_t i)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u64 = i };

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->up = false;
	c->got = 0;
	if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&gw, sizeof(gw)) < 0 &&
			  errno != EINPROGRESS) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		c->next = now_ms() + REDIAL_SLOW_MS;
		return;
	}
	dials++;
}

static void drop(struct conn *c)
{
	if (c->slow && c->up) {
		slow_closed++;
		slow_open--;
	}
	close(c->fd);
	c->fd = -1;
	c->up = false;
	c->next = now_ms() + (c->slow ? REDIAL_SLOW_MS : 0);
}

static bool sendall(struct conn *c, const char *s, size_t n)
{
	return send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* Count the answers in c->in (status line, Content-Length, body); ask again. */
static void answers(struct conn *c)
{
	char *end;

	c->in[c->got] = '\0';
	while ((end = strstr(c->in, "\r\n\r\n"))) {
		char *cl = strcasestr(c->in, "Content-Length:");
		size_t len = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
		size_t whole = (size_t)(end + 4 - c->in) + len;
		int status = 0;

		if (c->got < whole)
			return;
		sscanf(c->in, "HTTP/1.1 %d", &status);
		n200 += status == 200;
		n429 += status == 429;
		n503 += status == 503;
		nother += status != 200 && status != 429 && status != 503;
		memmove(c->in, c->in + whole, c->got - whole + 1);
		c->got -= whole;
		if (!sendall(c, nonce_req, sizeof(nonce_req) - 1)) {
			drop(c);
			return;
		}
	}
}

static void on_event(struct conn *c, uint32_t events)
{
	ssize_t n;

	if ((events & EPOLLOUT) && !c->up) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = c->idx };

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			drop(c);
			return;
		}
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);	/* writable from now on: quiet */
		c->up = true;
		c->next = now_ms() + interval;
		if (c->slow && ++slow_open > slow_open_max)
			slow_open_max = slow_open;
		if (!sendall(c, c->slow ? slow_head : nonce_req,
			     c->slow ? sizeof(slow_head) - 1 : sizeof(nonce_req) - 1)) {
			drop(c);
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		n = recv(c->fd, c->in + c->got, sizeof(c->in) - 1 - c->got, 0);
		if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
			drop(c);
			return;
		}
		if (n > 0) {
			c->got += (size_t)n;
			if (c->slow)
				c->got = 0;	/* nothing is expected; drop it */
			else
				answers(c);
			if (c->got >= sizeof(c->in) - 1)
				drop(c);
		}
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: xb-pflood -g GATEWAY [-p PORT] [-c NONCE_CONNS] [-s SLOW_CONNS] "
		"[-i SLOW_INTERVAL_MS] -t SECONDS\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned c = 6, s = 300, secs = 0, port = 8443;
	static struct conn conns[MAX_CONNS];
	uint64_t end;
	int o;

	while ((o = getopt(argc, argv, "g:p:c:s:i:t:")) != -1) {
		switch (o) {
		case 'g':
			if (inet_pton(AF_INET, optarg, &gw.sin_addr) != 1)
				return usage();
			gw.sin_family = AF_INET;
			break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'c': c = (unsigned)atoi(optarg); break;
		case 's': s = (unsigned)atoi(optarg); break;
		case 'i': interval = (unsigned)atoi(optarg); break;
		case 't': secs = (unsigned)atoi(optarg); break;
		default: return usage();
		}
	}
	if (!gw.sin_family || !secs || !port || port > 65535 || c + s > MAX_CONNS || !interval)
		return usage();
	gw.sin_port = htons((uint16_t)port);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("xb-pflood: epoll");
		return 1;
	}
	for (size_t i = 0; i < c + s; i++) {
		conns[i].idx = i;
		conns[i].slow = i >= c;
		dial(&conns[i], i);
	}
	end = now_ms() + secs * 1000ULL;
	while (now_ms() < end) {
		struct epoll_event evs[64];
		uint64_t t = now_ms();
		int n = epoll_wait(ep, evs, 64, 20);

		for (int k = 0; k < n; k++) {
			struct conn *x = &conns[evs[k].data.u64];

			if (x->fd >= 0)
				on_event(x, evs[k].events);
		}
		for (size_t i = 0; i < c + s; i++) {
			struct conn *x = &conns[i];

			if (x->fd < 0 && x->next <= t)
				dial(x, i);
			else if (x->slow && x->up && x->next <= t) {
				if (!sendall(x, "a", 1))
					drop(x);
				else
					x->next = t + interval;
			}
		}
	}
	printf("nonce_200=%llu nonce_429=%llu nonce_503=%llu nonce_other=%llu dials=%llu "
	       "slow_closed=%llu slow_open_max=%llu slow_open_end=%llu\n",
	       (unsigned long long)n200, (unsigned long long)n429, (unsigned long long)n503,
	       (unsigned long long)nother, (unsigned long long)dials,
	       (unsigned long long)slow_closed, (unsigned long long)slow_open_max,
	       (unsigned long long)slow_open);
	return 0;
}
