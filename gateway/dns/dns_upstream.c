/* The upstream client; see dns_upstream.h and docs/dns.md, "Upstream
 * queries".
 *
 * Queries live in a fixed array of max_outstanding slots. A slot has at
 * most one socket open at a time (the current try: UDP, or TCP after TC),
 * registered in the epoll set with (socket sequence << 32 | slot + 1), so an
 * event fetched for a socket that has since been closed is recognised and
 * dropped. Handles are (generation << 32 | slot + 1); the generation moves
 * on when a slot is released, so a stale handle cancels nothing. Deadlines
 * are kept per slot and the timerfd is armed for the earliest; finding it
 * scans the slots in use (at most 1024 by default).
 */
#include "gateway/dns/dns_upstream.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sodium.h>
#include <unistd.h>

#define TAG_TIMER	0
#define QUERY_MAX	(XB_DNS_WIRE_HDR_LEN + XB_DNS_WIRE_NAME_MAX + 4 + XB_DNS_WIRE_OPT_LEN)
#define TCP_MAX		XB_DNS_WIRE_TCP_FRAME_MAX
#define RECV_BURST	64	/* datagrams read per socket per process call */

struct uq {
	bool used;
	uint32_t gen;		/* handle generation */
	uint32_t seq;		/* the current socket's sequence number */
	struct xb_dns_upstream_set *set;
	struct xb_dns_wire_question q;
	unsigned flags;
	xb_dns_upstream_cb cb;
	void *ctx;
	uint8_t plan[XB_DNS_UPSTREAM_SERVERS_MAX];
	unsigned nplan, step, nsteps;
	uint32_t failed;	/* servers that answered with a failure: not asked again */
	int rcode;		/* the last failure's rcode, or -1 */
	bool refused;		/* a server answered with a failure */
	/* The current try. */
	int fd, srv;
	bool tcp, connected;
	uint16_t id;
	uint64_t deadline;
	uint8_t out[2 + QUERY_MAX];	/* TCP length, then the query */
	size_t out_len, tcp_off;	/* query length; octets of out sent over TCP */
	uint8_t *in;			/* TCP reply: length, then message */
	size_t in_got;
};

struct xb_dns_upstream {
	int epfd, tfd;
	struct xb_dns_upstream_conf conf;
	struct uq *qs;
	uint32_t seq;
	uint64_t armed;		/* the timer's deadline; 0: disarmed */
	struct xb_dns_upstream_stats st;
	uint8_t buf[65536];	/* UDP replies */
	struct log_rl rl_down;	/* "server down" warnings */
};

/* ---- server sets ---- */

void xb_dns_upstream_set_init(struct xb_dns_upstream_set *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "upstream");
	s->timeout_ms = XB_DNS_UPSTREAM_TIMEOUT_MS;
	s->tries = XB_DNS_UPSTREAM_TRIES;
	s->down_ms = XB_DNS_UPSTREAM_DOWN_MS;
}

/* text is an address with an optional port: "A", "A:P", "V6", "[V6]:P". */
static int addr_parse(const char *text, union xb_dns_upstream_addr *a, bool want_port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL, *colon = strrchr(text, ':');
	size_t n = strlen(text);
	unsigned long p = 53;
	char *end;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || (close[1] && close[1] != ':') || (size_t)(close - text - 1) >= sizeof(host))
			return -1;
		n = (size_t)(close - text - 1);
		memcpy(host, text + 1, n);
		port = close[1] ? close + 2 : NULL;
	} else {
		if (colon && colon == strchr(text, ':')) {	/* one colon: v4:port */
			n = (size_t)(colon - text);
			port = colon + 1;
		}
		if (n >= sizeof(host))
			return -1;
		memcpy(host, text, n);
	}
	host[n] = '\0';
	if (port) {
		if (!want_port || !*port)
			return -1;
		errno = 0;
		p = strtoul(port, &end, 10);
		if (*end || errno || p == 0 || p > 65535)
			return -1;
	}
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
		a->in.sin_family = AF_INET;
		a->in.sin_port = htons((uint16_t)p);
	} else if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)p);
	} else {
		return -1;
	}
	return 0;
}

int xb_dns_upstream_set_add(struct xb_dns_upstream_set *s, const char *text)
{
	if (s->n == XB_DNS_UPSTREAM_SERVERS_MAX) {
		errno = ENOSPC;
		return -1;
	}
	if (addr_parse(text, &s->srv[s->n].addr, true) < 0) {
		errno = EINVAL;
		return -1;
	}
	s->srv[s->n++].down_until_ns = 0;
	return 0;
}

void xb_dns_upstream_set_revive(struct xb_dns_upstream_set *s, const char *ifname)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->srv[i].ifname, ifname))
			s->srv[i].down_until_ns = 0;
}

int xb_dns_upstream_set_source(struct xb_dns_upstream_set *s, const char *text)
{
	if (addr_parse(text, &s->source, false) < 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static socklen_t addr_len(const union xb_dns_upstream_addr *a)
{
	return a->sa.sa_family == AF_INET ? sizeof(a->in) : sizeof(a->in6);
}

static bool addr_same(const union xb_dns_upstream_addr *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *b4 = (const void *)b;
	const struct sockaddr_in6 *b6 = (const void *)b;

	if (a->sa.sa_family != b->ss_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_port == b4->sin_port && a->in.sin_addr.s_addr == b4->sin_addr.s_addr;
	return a->in6.sin6_port == b6->sin6_port &&
	       !memcmp(&a->in6.sin6_addr, &b6->sin6_addr, sizeof(b6->sin6_addr));
}

static const char *addr_text(const union xb_dns_upstream_addr *a, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	const void *raw = a->sa.sa_family == AF_INET ? (const void *)&a->in.sin_addr
						      : (const void *)&a->in6.sin6_addr;

	inet_ntop(a->sa.sa_family, raw, host, sizeof(host));
	snprintf(buf, cap, a->sa.sa_family == AF_INET ? "%s:%u" : "[%s]:%u", host,
		 ntohs(a->in.sin_port));
	return buf;
}

/* ---- the client ---- */

struct xb_dns_upstream *xb_dns_upstream_new(const struct xb_dns_upstream_conf *conf)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_TIMER };
	struct xb_dns_upstream *u;

	if (sodium_init() < 0 || !(u = calloc(1, sizeof(*u))))
		return NULL;
	u->rl_down = (struct log_rl)LOG_RL_INIT(1, 5);
	if (conf)
		u->conf = *conf;
	if (!u->conf.max_outstanding)
		u->conf.max_outstanding = XB_DNS_UPSTREAM_MAX_OUTSTANDING;
	if (!u->conf.edns_size)
		u->conf.edns_size = XB_DNS_WIRE_EDNS_SIZE;
	u->epfd = epoll_create1(EPOLL_CLOEXEC);
	u->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	u->qs = calloc(u->conf.max_outstanding, sizeof(*u->qs));
	if (u->epfd < 0 || u->tfd < 0 || !u->qs ||
	    epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->tfd, &ev) < 0) {
		log_warn("dns upstream: cannot set up its epoll and timer");
		xb_dns_upstream_free(u);
		return NULL;
	}
	for (unsigned i = 0; i < u->conf.max_outstanding; i++) {
		u->qs[i].fd = -1;
		u->qs[i].gen = 1;
	}
	return u;
}

static void try_close(struct uq *q)
{
	if (q->fd >= 0)
		close(q->fd);	/* leaves the epoll set with it */
	q->fd = -1;
	free(q->in);
	q->in = NULL;
	q->tcp = false;
}

/* The slot is free again before any callback runs, so that the callback
 * may start queries and a cancel of this handle from it does nothing. */
static void release(struct xb_dns_upstream *u, struct uq *q)
{
	try_close(q);
	q->used = false;
	q->gen++;
	u->st.outstanding--;
}

void xb_dns_upstream_free(struct xb_dns_upstream *u)
{
	if (!u)
		return;
	for (unsigned i = 0; u->qs && i < u->conf.max_outstanding; i++)
		if (u->qs[i].used)
			release(u, &u->qs[i]);
	if (u->epfd >= 0)
		close(u->epfd);
	if (u->tfd >= 0)
		close(u->tfd);
	free(u->qs);
	free(u);
}

int xb_dns_upstream_fd(const struct xb_dns_upstream *u)
{
	return u->epfd;
}

void xb_dns_upstream_stats(const struct xb_dns_upstream *u, struct xb_dns_upstream_stats *st)
{
	*st = u->st;
}

/* ---- tries ---- */

static int sock_open(struct xb_dns_upstream *u, struct uq *q, int type)
{
	const struct xb_dns_upstream_set *s = q->set;
	const union xb_dns_upstream_addr *to = &s->srv[q->srv].addr;
	const char *ifname = s->srv[q->srv].ifname[0] ? s->srv[q->srv].ifname : s->bind_ifname;
	struct epoll_event ev = { .events = type == SOCK_STREAM ? EPOLLOUT : EPOLLIN };
	int fd = socket(to->sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -1;
	if ((ifname[0] && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname,
				     (socklen_t)strlen(ifname)) < 0) ||
	    (s->source.sa.sa_family && bind(fd, &s->source.sa, addr_len(&s->source)) < 0) ||
	    (connect(fd, &to->sa, addr_len(to)) < 0 && errno != EINPROGRESS))
		goto fail;
	q->seq = ++u->seq;
	ev.data.u64 = (uint64_t)q->seq << 32 | (uint64_t)(q - u->qs + 1);
	if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int query_build(struct xb_dns_upstream *u, struct uq *q)
{
	struct xb_dns_wire_edns edns = { .present = true, .udp_size = u->conf.edns_size,
				  .do_bit = q->flags & XB_DNS_UPSTREAM_DO };
	int n;

	randombytes_buf(&q->id, sizeof(q->id));
	n = xb_dns_wire_build_query(q->out + 2, QUERY_MAX, q->id, q->flags & XB_DNS_UPSTREAM_CD ? XB_DNS_WIRE_F_CD : 0,
			     &q->q, q->flags & XB_DNS_UPSTREAM_NOEDNS ? NULL : &edns);
	if (n < 0)
		return -1;
	q->out_len = (size_t)n;
	xb_put16(q->out, (uint16_t)n);
	return 0;
}

/* Start the next UDP try that can be sent. Returns -1 with errno from the
 * last failure when no step is left. */
static int try_next(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	int err = EHOSTUNREACH;

	try_close(q);
	while (q->step < q->nsteps) {
		q->srv = q->plan[q->step++ % q->nplan];
		if (q->failed & (1u << q->srv))
			continue;
		if (query_build(u, q) < 0) {
			err = EINVAL;
			break;
		}
		q->fd = sock_open(u, q, SOCK_DGRAM);
		if (q->fd >= 0 && send(q->fd, q->out + 2, q->out_len, 0) == (ssize_t)q->out_len) {
			q->deadline = now + (uint64_t)q->set->timeout_ms * NSEC_PER_MSEC;
			u->st.tries++;
			return 0;
		}
		err = errno;
		try_close(q);
	}
	errno = err;
	return -1;
}

static void deliver(struct xb_dns_upstream *u, struct uq *q, struct xb_dns_upstream_result *r)
{
	xb_dns_upstream_cb cb = q->cb;
	void *ctx = q->ctx;
	uint8_t *keep = q->in;	/* a TCP reply lives here until the callback returns */

	q->in = NULL;
	release(u, q);
	switch (r->status) {
	case XB_DNS_UPSTREAM_OK: u->st.answered++; break;
	case XB_DNS_UPSTREAM_FAILED: u->st.failed++; break;
	case XB_DNS_UPSTREAM_TIMEOUT: u->st.timeouts++; break;
	}
	cb(ctx, r);
	free(keep);
}

/* The current try is over without an answer: the next one, or the end.
 * Tries that cannot be sent are skipped; the first one was sent (or
 * xb_dns_upstream_query failed), so the end is a failure or a timeout. */
static void advance(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	struct xb_dns_upstream_result r = { .rcode = q->rcode, .server = -1 };

	if (try_next(u, q, now) == 0)
		return;
	r.status = q->refused ? XB_DNS_UPSTREAM_FAILED : XB_DNS_UPSTREAM_TIMEOUT;
	deliver(u, q, &r);
}

/* The server answered with a failure (or broke the protocol): not asked
 * again by this query. */
static void server_failed(struct xb_dns_upstream *u, struct uq *q, int rcode, uint64_t now)
{
	q->failed |= 1u << q->srv;
	q->refused = true;
	q->rcode = rcode;
	advance(u, q, now);
}

static void server_down(struct xb_dns_upstream *u, struct uq *q, uint64_t now, const char *why)
{
	struct xb_dns_upstream_server *s = &q->set->srv[q->srv];
	char a[INET6_ADDRSTRLEN + 8];

	if (s->down_until_ns <= now && log_ratelimit(&u->rl_down))
		log_warnx("dns upstream %s: server %s: %s; skipped for %u ms", q->set->name,
			  addr_text(&s->addr, a, sizeof(a)), why, q->set->down_ms);
	s->down_until_ns = now + (uint64_t)q->set->down_ms * NSEC_PER_MSEC;
}

static void tcp_start(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	try_close(q);
	q->in = malloc(TCP_MAX);
	q->tcp = true;
	q->connected = false;
	q->tcp_off = q->in_got = 0;
	if (!q->in || (q->fd = sock_open(u, q, SOCK_STREAM)) < 0) {
		server_failed(u, q, -1, now);
		return;
	}
	q->deadline = now + (uint64_t)q->set->timeout_ms * NSEC_PER_MSEC;
	u->st.tcp++;
}

/* A reply read from the current try's socket. */
static void reply(struct xb_dns_upstream *u, struct uq *q, const uint8_t *msg, size_t len, uint64_t now)
{
	struct xb_dns_upstream_result r = { .status = XB_DNS_UPSTREAM_OK, .server = q->srv, .tcp = q->tcp };
	struct xb_dns_wire_msg m;

	switch (xb_dns_wire_parse_response(&m, msg, len, q->id, &q->q)) {
	case XB_DNS_WIRE_R_MISMATCH:
		u->st.mismatched++;
		if (q->tcp)	/* a stream that says something else is useless */
			server_failed(u, q, -1, now);
		return;
	case XB_DNS_WIRE_R_MALFORMED:
		u->st.malformed++;
		server_failed(u, q, -1, now);
		return;
	case XB_DNS_WIRE_R_OK:
		break;
	}
	q->set->srv[q->srv].down_until_ns = 0;
	if (!q->tcp && (m.hdr.flags & XB_DNS_WIRE_F_TC)) {
		tcp_start(u, q, now);
		return;
	}
	if (m.rcode != XB_DNS_WIRE_NOERROR && m.rcode != XB_DNS_WIRE_NXDOMAIN) {
		server_failed(u, q, (int)m.rcode, now);
		return;
	}
	r.rcode = (int)m.rcode;
	r.msg = msg;
	r.len = m.len;
	r.m = &m;
	deliver(u, q, &r);
}

static void on_udp(struct xb_dns_upstream *u, struct uq *q, uint32_t seq, uint64_t now)
{
	for (int i = 0; i < RECV_BURST && q->used && q->seq == seq && !q->tcp; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(q->fd, u->buf, sizeof(u->buf), 0, (struct sockaddr *)&from, &fl);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			/* ICMP unreachable (ECONNREFUSED) and the like: nobody there. */
			server_down(u, q, now, strerror(errno));
			server_failed(u, q, -1, now);
			return;
		}
		if (!addr_same(&q->set->srv[q->srv].addr, &from)) {
			u->st.mismatched++;
			continue;
		}
		reply(u, q, u->buf, (size_t)n, now);
	}
}

static void tcp_send(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)q->seq << 32 |
							       (uint64_t)(q - u->qs + 1) };
	int err = 0;
	socklen_t el = sizeof(err);
	ssize_t n;

	if (!q->connected) {
		if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			server_failed(u, q, -1, now);
			return;
		}
		q->connected = true;
	}
	n = send(q->fd, q->out + q->tcp_off, q->out_len + 2 - q->tcp_off, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			server_failed(u, q, -1, now);
		return;
	}
	q->tcp_off += (size_t)n;
	if (q->tcp_off == q->out_len + 2 && epoll_ctl(u->epfd, EPOLL_CTL_MOD, q->fd, &ev) < 0)
		server_failed(u, q, -1, now);
}

static void tcp_recv(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	long need = xb_dns_wire_tcp_need(q->in, q->in_got);
	ssize_t n = need > 0 ? recv(q->fd, q->in + q->in_got, (size_t)need, 0) : 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {		/* closed or reset before the whole reply */
		server_failed(u, q, -1, now);
		return;
	}
	q->in_got += (size_t)n;
	if ((need = xb_dns_wire_tcp_need(q->in, q->in_got)) < 0)	/* shorter than a header */
		server_failed(u, q, -1, now);
	else if (!need)
		reply(u, q, q->in + 2, q->in_got - 2, now);
}

static void on_tcp(struct xb_dns_upstream *u, struct uq *q, uint64_t now)
{
	if (q->tcp_off < q->out_len + 2)
		tcp_send(u, q, now);
	else
		tcp_recv(u, q, now);
}

/* ---- queries ---- */

static struct uq *slot_get(struct xb_dns_upstream *u)
{
	for (unsigned i = 0; i < u->conf.max_outstanding; i++)
		if (!u->qs[i].used)
			return &u->qs[i];
	return NULL;
}

/* The servers of order (NULL: all) not marked down, in that order; all of
 * them when all are down. */
static void plan(struct uq *q, const uint8_t *order, unsigned n, uint64_t now)
{
	const struct xb_dns_upstream_set *s = q->set;

	q->nplan = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned k = order ? order[i] : i;

		if (s->srv[k].down_until_ns <= now)
			q->plan[q->nplan++] = (uint8_t)k;
	}
	if (!q->nplan)
		for (unsigned i = 0; i < n; i++)
			q->plan[q->nplan++] = order ? order[i] : (uint8_t)i;
	q->step = 0;
	q->nsteps = q->nplan * (s->tries ? s->tries : 1);
}

static void timer_arm(struct xb_dns_upstream *u)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint64_t least = UINT64_MAX;

	for (unsigned i = 0; i < u->conf.max_outstanding; i++)
		if (u->qs[i].used && u->qs[i].deadline < least)
			least = u->qs[i].deadline;
	if (least == UINT64_MAX)
		least = 0;
	if (least == u->armed)
		return;
	u->armed = least;
	its.it_value = clock_ts(least ? least : 0);
	timerfd_settime(u->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static bool order_ok(const struct xb_dns_upstream_set *set, const uint8_t *order, unsigned n)
{
	if (!n || n > XB_DNS_UPSTREAM_SERVERS_MAX)
		return false;
	for (unsigned i = 0; order && i < n; i++)
		if (order[i] >= set->n)
			return false;
	return true;
}

uint64_t xb_dns_upstream_query(struct xb_dns_upstream *u, struct xb_dns_upstream_set *set, const struct xb_dns_wire_question *q,
		     unsigned flags, xb_dns_upstream_cb cb, void *ctx, uint64_t now_ns)
{
	return xb_dns_upstream_query_order(u, set, NULL, set->n, q, flags, cb, ctx, now_ns);
}

uint64_t xb_dns_upstream_query_order(struct xb_dns_upstream *u, struct xb_dns_upstream_set *set, const uint8_t *order,
			   unsigned n, const struct xb_dns_wire_question *q, unsigned flags, xb_dns_upstream_cb cb,
			   void *ctx, uint64_t now_ns)
{
	struct uq *s;

	if (!set->n || set->n > XB_DNS_UPSTREAM_SERVERS_MAX || !order_ok(set, order, n) || !cb ||
	    xb_dns_wire_name_len(q->name, XB_DNS_WIRE_NAME_MAX) != q->name_len) {
		errno = EINVAL;
		return 0;
	}
	if (!(s = slot_get(u))) {
		u->st.limited++;
		errno = EAGAIN;
		return 0;
	}
	*s = (struct uq){ .used = true, .gen = s->gen, .set = set, .q = *q, .flags = flags,
			  .cb = cb, .ctx = ctx, .rcode = -1, .fd = -1 };
	plan(s, order, n, now_ns);
	u->st.outstanding++;
	if (try_next(u, s, now_ns) < 0) {
		int err = errno;

		release(u, s);
		errno = err;
		u->st.errors++;
		return 0;
	}
	u->st.queries++;
	timer_arm(u);
	return (uint64_t)s->gen << 32 | (uint64_t)(s - u->qs + 1);
}

void xb_dns_upstream_cancel(struct xb_dns_upstream *u, uint64_t handle)
{
	uint64_t i = (handle & 0xffffffffu) - 1;

	if (i >= u->conf.max_outstanding || !u->qs[i].used || u->qs[i].gen != handle >> 32)
		return;
	release(u, &u->qs[i]);
	u->st.cancelled++;
	timer_arm(u);
}

void xb_dns_upstream_give_up(struct xb_dns_upstream *u, const char *ifname, uint64_t now_ns)
{
	bool any = false;

	for (unsigned i = 0; i < u->conf.max_outstanding; i++) {
		struct uq *q = &u->qs[i];
		const struct xb_dns_upstream_server *sv;

		if (!q->used || q->fd < 0)
			continue;
		sv = &q->set->srv[q->srv];
		if (strcmp(sv->ifname[0] ? sv->ifname : q->set->bind_ifname, ifname))
			continue;
		q->deadline = now_ns;
		any = true;
	}
	if (any)
		timer_arm(u);
}

static void expire(struct xb_dns_upstream *u, uint64_t now)
{
	for (unsigned i = 0; i < u->conf.max_outstanding; i++) {
		struct uq *q = &u->qs[i];

		if (!q->used || q->deadline > now)
			continue;
		if (q->tcp) {
			server_failed(u, q, -1, now);
		} else {
			server_down(u, q, now, "timed out");
			advance(u, q, now);
		}
	}
}

void xb_dns_upstream_process(struct xb_dns_upstream *u, uint64_t now_ns)
{
	struct epoll_event evs[64];
	uint64_t ticks;
	int n = epoll_wait(u->epfd, evs, 64, 0);

	for (int i = 0; i < n; i++) {
		uint64_t slot = (evs[i].data.u64 & 0xffffffffu) - 1;
		uint32_t seq = (uint32_t)(evs[i].data.u64 >> 32);
		struct uq *q;

		if (evs[i].data.u64 == TAG_TIMER) {
			if (read(u->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				log_warn("dns upstream: timerfd");
			continue;
		}
		q = &u->qs[slot];
		if (!q->used || q->seq != seq)
			continue;	/* its socket closed since the event was fetched */
		if (q->tcp)
			on_tcp(u, q, now_ns);
		else
			on_udp(u, q, seq, now_ns);
	}
	expire(u, now_ns);
	u->armed = UINT64_MAX;	/* the timer may have fired: set it again */
	timer_arm(u);
}
