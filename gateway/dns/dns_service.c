/* The DNS service's I/O: listening sockets, TCP clients, queries in flight
 * to upstreams, the timer. Decisions are dns_engine.c's. See dns_service.h.
 *
 * One epoll set, level-triggered, tagged by data.u64. Every loop is
 * bounded: at most UDP_DRAIN batches of UDP_BATCH datagrams per socket per
 * wakeup, one read per TCP client per event. A busy service's cost is
 * per wakeup (the context switch, epoll_wait), not per query: a socket is
 * read again while its last batch came full, so a backlog is drained in
 * one wakeup. A client gets its answer on the transport it
 * asked on; a UDP answer larger than the client's limit is cut at a record
 * boundary with TC set, and the client retries over TCP.
 *
 * The device interface's local UDP tap (tunnel/tap.h) is one more UDP
 * listener: the same batches, each datagram framed with the client's and
 * our address, which take the place of recvmmsg's source address and the
 * socket's own (docs/dns.md, "The tap").
 */
#include "gateway/dns/dns_internal.h"
#include "tunnel/tap.h"

#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define UDP_BATCH	64		/* datagrams per recvmmsg/sendmmsg */
#define UDP_DRAIN	8		/* full batches per socket per wakeup, at most */
#define UDP_QUERY_MAX	4096		/* larger queries are dropped (counted) */
_Static_assert(UDP_QUERY_MAX == WG_TAP_PAYLOAD_MAX, "the tap takes what a socket would");
#define MSG_MAX		65535
_Static_assert(MSG_MAX + 2 == XB_DNS_WIRE_TCP_FRAME_MAX, "a client's buffer holds one whole message");

enum { TAG_TIMER = 1, TAG_UP, TAG_UDP, TAG_TCPL = TAG_UDP + DNS_LISTEN_MAX,
       TAG_CONN = TAG_TCPL + DNS_LISTEN_MAX };

struct dns_tcp {
	int fd;				/* -1: free */
	uint32_t gen;			/* bumped on close: late answers are dropped */
	union xb_sockaddr peer;
	uint8_t *in;			/* 2 + MSG_MAX */
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off;
	unsigned pending;		/* queries in flight for this client */
	uint64_t deadline_ns;
};

struct dns_flight {
	struct xb_dns_service *s;
	bool used;
	uint64_t handle;
	struct dns_query qq;
	int udp_fd;			/* -1: a TCP client */
	bool tap;			/* udp_fd is the tap: answer framed from local */
	union xb_sockaddr peer, local;
	socklen_t peer_len;
	int conn;
	uint32_t conn_gen;
};

/* Answers to one batch of UDP queries, sent with one sendmmsg. Never
 * larger than XB_DNS_WIRE_EDNS_SIZE: udp_send cuts them to the client's limit,
 * which is at most ours. */
struct udp_out {
	int fd;				/* -1: not batching, send at once */
	unsigned n;
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH][2];		/* the tap's: its frame header first */
	union xb_sockaddr peer[UDP_BATCH];
	struct wg_tap_hdr hdr[UDP_BATCH];
	uint8_t buf[UDP_BATCH][XB_DNS_WIRE_EDNS_SIZE];
};

/* Datagrams as they arrive; peer[i] and buf[i] belong to m[i]. */
struct udp_in {
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	union xb_sockaddr peer[UDP_BATCH];
	uint8_t buf[UDP_BATCH][WG_TAP_HDR_LEN + UDP_QUERY_MAX];	/* a socket's read: UDP_QUERY_MAX */
};

/* The service's I/O buffers, one set per service (made with it): the
 * datagrams of a recvmmsg, their answers for one sendmmsg, the answer
 * being built for a query and for an upstream reply (distinct: an
 * upstream may answer while a query is being decided). */
struct dns_io {
	struct udp_in in;		/* iov and msg_hdr point into it, set at start */
	struct udp_out batch;		/* fd -1: not batching */
	uint8_t answer[MSG_MAX];	/* on_query's */
	uint8_t reply[MSG_MAX];		/* on_upstream's */
	struct log_rl rl;		/* send errors */
};

static struct dns_io *io_new(void)
{
	struct dns_io *io = calloc(1, sizeof(*io));
	struct udp_in *in;

	if (!io)
		return NULL;
	in = &io->in;
	for (int i = 0; i < UDP_BATCH; i++) {
		in->iov[i] = (struct iovec){ in->buf[i], sizeof(in->buf[i]) };
		in->m[i].msg_hdr = (struct msghdr){ .msg_name = &in->peer[i], .msg_iov = &in->iov[i],
						    .msg_iovlen = 1 };
	}
	io->batch.fd = -1;
	io->rl = (struct log_rl)LOG_RL_INIT(1, 5);
	return io;
}

static int watch(struct xb_dns_service *s, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(s->epfd, op, fd, &ev);
}

struct xb_dns_service *xb_dns_service_new(const char *state_dir, xb_dns_service_posture_fn posture, void *ctx)
{
	struct xb_dns_service *s = calloc(1, sizeof(*s));
	struct itimerspec tick = { { 1, 0 }, { 1, 0 } };
	int e;

	if (!s)
		return NULL;
	s->posture = posture;
	s->posture_ctx = ctx;
	s->epfd = s->tfd = s->tap_fd = -1;
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		s->udp[i] = s->tcp[i] = -1;
	s->conns = calloc(DNS_TCP_MAX, sizeof(*s->conns));
	s->flights = calloc(DNS_INFLIGHT_MAX, sizeof(*s->flights));
	s->free = calloc(DNS_INFLIGHT_MAX, sizeof(*s->free));
	s->pend = calloc(DNS_PEND_MAX, sizeof(*s->pend));
	s->io = io_new();
	s->learn_rl = (struct log_rl)LOG_RL_INIT(1, 5);
	xb_dns_learn_init(&s->learned);
	if (!s->conns || !s->flights || !s->free || !s->pend || !s->io)
		goto fail;
	for (size_t i = 0; i < DNS_INFLIGHT_MAX; i++)
		s->free[s->n_free++] = (uint16_t)(DNS_INFLIGHT_MAX - 1 - i);
	for (int i = 0; i < DNS_TCP_MAX; i++)
		s->conns[i].fd = -1;
	if (state_dir && asprintf(&s->state_file, "%s/dns-learned", state_dir) < 0)
		goto fail;
	if ((e = xb_nft_set_open(&s->nft)) < 0)
		log_warnx("dns: netlink for nft sets: %s (answers will not open paths)", strerror(-e));
	s->nft_ok = e == 0;
	if (!(s->up = xb_dns_upstream_new(NULL)) ||
	    (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(s->tfd, 0, &tick, NULL) < 0 ||
	    watch(s, EPOLL_CTL_ADD, s->tfd, EPOLLIN, TAG_TIMER) < 0 ||
	    watch(s, EPOLL_CTL_ADD, xb_dns_upstream_fd(s->up), EPOLLIN, TAG_UP) < 0)
		goto fail;
	return s;
fail:
	log_warn("dns: starting");
	xb_dns_service_free(s);
	return NULL;
}

void xb_dns_service_set_route(struct xb_dns_service *s, xb_dns_service_route_fn fn, void *ctx)
{
	s->route = fn;
	s->route_ctx = ctx;
}

void xb_dns_service_tunnel_up(struct xb_dns_service *s, size_t ti)
{
	const struct xb_dns_service_cfg *c = s->cfg;

	if (!c || ti >= c->p->n_tunnels)
		return;
	for (size_t i = 0; i < c->n_sets; i++)
		xb_dns_upstream_set_revive(&c->sets[i], c->p->tunnels[ti].ifname);
}

void xb_dns_service_tunnel_down(struct xb_dns_service *s, size_t ti)
{
	const struct xb_dns_service_cfg *c = s->cfg;

	if (c && ti < c->p->n_tunnels)
		xb_dns_upstream_give_up(s->up, c->p->tunnels[ti].ifname, clock_mono_ns());
}

int xb_dns_service_fd(const struct xb_dns_service *s)
{
	return s->epfd;
}

/* ---- answering ---- */

static void tcp_close(struct xb_dns_service *s, int slot)
{
	struct dns_tcp *k = &s->conns[slot];

	if (k->fd < 0)
		return;
	close(k->fd);
	free(k->in);
	free(k->out);
	k->in = k->out = NULL;
	k->in_len = k->out_len = k->out_off = 0;
	k->fd = -1;
	k->gen++;
}

static void tcp_flush(struct xb_dns_service *s, int slot)
{
	struct dns_tcp *k = &s->conns[slot];

	while (k->out_off < k->out_len) {
		ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			tcp_close(s, slot);
			return;
		}
		k->out_off += (size_t)n;
	}
	if (k->out_off == k->out_len)
		k->out_off = k->out_len = 0;
	watch(s, EPOLL_CTL_MOD, k->fd, EPOLLIN | (k->out_len ? EPOLLOUT : 0), TAG_CONN + (uint64_t)slot);
}

static void tcp_send(struct xb_dns_service *s, int slot, const uint8_t *msg, size_t len)
{
	struct dns_tcp *k = &s->conns[slot];
	uint8_t *nv;

	if (k->out_len + len + 2 > 4 * (MSG_MAX + 2) ||	/* a client that does not read */
	    !(nv = realloc(k->out, k->out_len + len + 2))) {
		tcp_close(s, slot);
		return;
	}
	dns_learn_flush(s);	/* the sets before the answer */
	k->out = nv;
	nv[k->out_len] = (uint8_t)(len >> 8);
	nv[k->out_len + 1] = (uint8_t)len;
	memcpy(nv + k->out_len + 2, msg, len);
	k->out_len += len + 2;
	k->deadline_ns = s->now_ns + DNS_TCP_IDLE_MS * NSEC_PER_MSEC;
	tcp_flush(s, slot);
}

static const uint8_t *sa_addr(const union xb_sockaddr *a)
{
	return a->sa.sa_family == AF_INET ? (const uint8_t *)&a->in.sin_addr : (const uint8_t *)&a->in6.sin6_addr;
}

/* A tap frame's header for an answer from local to peer. */
static void tap_hdr(struct wg_tap_hdr *h, const union xb_sockaddr *local, const union xb_sockaddr *peer)
{
	bool v4 = peer->sa.sa_family == AF_INET;

	memset(h, 0, sizeof(*h));
	h->family = v4 ? 4 : 6;
	h->sport = v4 ? local->in.sin_port : local->in6.sin6_port;
	h->dport = v4 ? peer->in.sin_port : peer->in6.sin6_port;
	memcpy(h->src, sa_addr(local), v4 ? 4 : 16);
	memcpy(h->dst, sa_addr(peer), v4 ? 4 : 16);
}

/* What the tap carries fits the interface's MTU after IP and UDP (a
 * kernel socket would fragment; we cut with TC, as RFC 1035 lets us). */
static size_t tap_limit(const struct xb_dns_service *s, const union xb_sockaddr *peer)
{
	size_t over = peer->sa.sa_family == AF_INET ? 28 : 48;

	return s->tap_mtu > over + 512 ? s->tap_mtu - over : 512;
}

/* local: the tap's answer (framed, from local); NULL: a socket's. */
static void udp_send(struct xb_dns_service *s, int fd, const struct xb_dns_wire_query *q, uint8_t *msg,
		     size_t len, const union xb_sockaddr *peer, socklen_t plen, const union xb_sockaddr *local)
{
	size_t limit = xb_dns_wire_udp_limit(q, XB_DNS_WIRE_EDNS_SIZE);
	struct udp_out *batch = &s->io->batch;
	struct wg_tap_hdr h;

	if (local && limit > tap_limit(s, peer))
		limit = tap_limit(s, peer);
	if (len > limit) {
		len = xb_dns_wire_truncate(msg, len, limit);
		s->c.truncated++;
	}
	if (!len)
		return;
	if (batch->fd == fd && batch->n < UDP_BATCH && len <= sizeof(batch->buf[0])) {
		unsigned i = batch->n++;
		struct iovec *iov = batch->iov[i];

		memcpy(batch->buf[i], msg, len);
		batch->peer[i] = *peer;
		if (local)
			tap_hdr(&batch->hdr[i], local, peer);
		if (local)
			*iov++ = (struct iovec){ &batch->hdr[i], sizeof(batch->hdr[i]) };
		*iov = (struct iovec){ batch->buf[i], len };
		batch->m[i].msg_hdr = (struct msghdr){ .msg_name = local ? NULL : &batch->peer[i],
						      .msg_namelen = local ? 0 : plen,
						      .msg_iov = batch->iov[i], .msg_iovlen = local ? 2 : 1 };
		return;
	}
	dns_learn_flush(s);	/* the sets before the answer */
	if (local) {
		struct iovec iov[2] = { { &h, sizeof(h) }, { msg, len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

		tap_hdr(&h, local, peer);
		if (sendmsg(fd, &mh, MSG_DONTWAIT) >= 0)
			s->c.tap_answers++;
		else if (log_ratelimit(&s->io->rl))
			log_warn("dns: sending to the tap");
		return;
	}
	if (sendto(fd, msg, len, MSG_DONTWAIT, &peer->sa, plen) < 0 && log_ratelimit(&s->io->rl))
		log_warn("dns: sendto");
}

/* Deliver an answer to wherever the query came from. */
static void deliver(struct xb_dns_service *s, struct dns_flight *f, uint8_t *msg, size_t len)
{
	if (f->udp_fd >= 0) {
		udp_send(s, f->udp_fd, &f->qq.q, msg, len, &f->peer, f->peer_len, f->tap ? &f->local : NULL);
		return;
	}
	if (s->conns[f->conn].fd >= 0 && s->conns[f->conn].gen == f->conn_gen) {
		s->conns[f->conn].pending--;
		if (len)
			tcp_send(s, f->conn, msg, len);
	}
}

/* Flights come from a stack of free slots: O(1) both ways. */
static struct dns_flight *flight_new(struct xb_dns_service *s)
{
	struct dns_flight *f;

	if (!s->n_free)
		return NULL;
	f = &s->flights[s->free[--s->n_free]];
	memset(f, 0, sizeof(*f));
	f->used = true;
	f->s = s;
	return f;
}

static void flight_free(struct xb_dns_service *s, struct dns_flight *f)
{
	if (!f->used)
		return;
	f->used = false;
	s->free[s->n_free++] = (uint16_t)(f - s->flights);
}

static void finish(struct xb_dns_service *s, struct dns_flight *f, uint8_t *msg, size_t len, bool ok)
{
	dns_stats_done(s, &f->qq, ok);
	dns_log(s, &f->qq, msg, len);
	deliver(s, f, msg, len);
	flight_free(s, f);
}

static void on_upstream(void *ctx, const struct xb_dns_upstream_result *r)
{
	struct dns_flight *f = ctx;
	struct xb_dns_service *s = f->s;
	const struct xb_dns_wire_query *ask = f->qq.chase ? &f->qq.qc : &f->qq.q;
	uint8_t *out = s->io->reply;
	const size_t cap = sizeof(s->io->reply);
	size_t len;

	if (r->status != XB_DNS_UPSTREAM_OK) {
		/* RFC 8767: every server failed; an expired answer beats none. */
		if ((len = dns_from_stale(s, &f->qq, out, cap))) {
			finish(s, f, out, len, true);
			return;
		}
		len = dns_fail(&f->qq, XB_DNS_WIRE_SERVFAIL, out, cap);
		finish(s, f, out, len, false);
		return;
	}
	if (s->cache)
		xb_dns_cache_store(s->cache, f->qq.scope, &ask->q, r->msg, r->len, s->now_ns);
	len = dns_answer_from(s, &f->qq, r->m, out, cap);
	if (!len)
		len = dns_fail(&f->qq, XB_DNS_WIRE_SERVFAIL, out, cap);
	finish(s, f, out, len, true);
}


/* One query from a client: udp_fd >= 0 with peer (and local: through the
 * tap, to local), or TCP client `conn'. */
static void on_query(struct xb_dns_service *s, const uint8_t *msg, size_t n, int udp_fd,
		     const union xb_sockaddr *peer, socklen_t plen, int conn, const union xb_sockaddr *local)
{
	uint8_t *out = s->io->answer;
	const size_t cap = sizeof(s->io->answer);
	struct dns_flight *f = flight_new(s);
	const struct xb_device *dev;
	enum xb_dns_wire_qverdict v;
	size_t len = 0;
	unsigned flags;

	if (!f) {
		s->c.inflight_full++;
		return;		/* the client retries */
	}
	f->udp_fd = udp_fd;
	f->tap = local != NULL;
	if (local)
		f->local = *local;
	f->peer = *peer;
	f->peer_len = plen;
	f->conn = conn;
	f->conn_gen = conn >= 0 ? s->conns[conn].gen : 0;
	if (conn >= 0)
		s->conns[conn].pending++;
	f->qq.t0_ns = s->now_ns;
	v = xb_dns_wire_parse_query(&f->qq.q, msg, n);
	if (v == XB_DNS_WIRE_Q_DROP) {
		s->c.dropped++;
		deliver(s, f, out, 0);
		flight_free(s, f);
		return;
	}
	dev = xb_policy_device_by_addr(s->cfg->p, peer->sa.sa_family,
				       peer->sa.sa_family == AF_INET ? (const void *)&peer->in.sin_addr
								     : (const void *)&peer->in6.sin6_addr);
	if (v != XB_DNS_WIRE_Q_OK || !dev) {
		static const unsigned rc[] = { [XB_DNS_WIRE_Q_FORMERR] = XB_DNS_WIRE_FORMERR,
					       [XB_DNS_WIRE_Q_NOTIMP] = XB_DNS_WIRE_NOTIMP,
					       [XB_DNS_WIRE_Q_BADVERS] = XB_DNS_WIRE_BADVERS };

		if (v != XB_DNS_WIRE_Q_OK)
			s->c.formerr++;
		else
			s->c.refused++;	/* not a device's address */
		len = dns_fail(&f->qq, v == XB_DNS_WIRE_Q_OK ? XB_DNS_WIRE_REFUSED : rc[v], out, cap);
		deliver(s, f, out, len);
		flight_free(s, f);
		return;
	}
	f->qq.device = (size_t)(dev - s->cfg->p->devices);
	if (dns_decide(s, &f->qq, out, cap, &len) == DNS_ANSWERED ||
	    (len = dns_from_cache(s, &f->qq, out, cap))) {
		finish(s, f, out, len, len > 0);
		return;
	}
	flags = f->qq.q.edns.present && f->qq.q.edns.do_bit ? XB_DNS_UPSTREAM_DO : 0;
	f->handle = xb_dns_upstream_query_order(s->up, f->qq.set, f->qq.n_order ? f->qq.order : NULL,
				      f->qq.n_order ? f->qq.n_order : f->qq.set->n,
				      f->qq.chase ? &f->qq.qc.q : &f->qq.q.q, flags, on_upstream, f,
				      s->now_ns);
	if (!f->handle) {	/* no try could be sent: no route, say */
		if (!(len = dns_from_stale(s, &f->qq, out, cap)))
			len = dns_fail(&f->qq, XB_DNS_WIRE_SERVFAIL, out, cap);
		finish(s, f, out, len, f->qq.stale);
	}
}

/* ---- sockets ---- */

/* The round's answers, after the round's set changes. The tap's count
 * what the socketpair took: an answer it refused is not one given. */
static void flush(struct xb_dns_service *s, int fd)
{
	struct udp_out *batch = &s->io->batch;
	unsigned sent = 0;

	dns_learn_flush(s);
	while (sent < batch->n) {
		int k = sendmmsg(fd, batch->m + sent, batch->n - sent, MSG_DONTWAIT);

		if (k <= 0) {
			if (log_ratelimit(&s->io->rl))
				log_warn("dns: sendmmsg");
			break;
		}
		sent += (unsigned)k;
	}
	if (fd == s->tap_fd)
		s->c.tap_answers += sent;
	batch->n = 0;
}

/* One recvmmsg of up to UDP_BATCH queries; the answers that are ready at
 * once leave in one sendmmsg. Returns how many datagrams came. */
static int udp_batch(struct xb_dns_service *s, int fd, struct udp_in *in)
{
	int n;

	for (int i = 0; i < UDP_BATCH; i++) {
		in->m[i].msg_hdr.msg_namelen = sizeof(in->peer[i]);
		in->iov[i].iov_len = UDP_QUERY_MAX;
	}
	if ((n = recvmmsg(fd, in->m, UDP_BATCH, MSG_DONTWAIT, NULL)) <= 0)
		return 0;
	s->now_ns = clock_mono_ns();
	s->io->batch.fd = fd;
	for (int i = 0; i < n; i++) {
		if (in->m[i].msg_hdr.msg_flags & MSG_TRUNC) {
			s->c.dropped++;
			continue;
		}
		on_query(s, in->buf[i], in->m[i].msg_len, fd, &in->peer[i], in->m[i].msg_hdr.msg_namelen, -1,
			 NULL);
	}
	flush(s, fd);
	s->io->batch.fd = -1;
	return n;
}

static void on_udp(struct xb_dns_service *s, int fd)
{
	for (int i = 0; i < UDP_DRAIN && udp_batch(s, fd, &s->io->in) == UDP_BATCH; i++)
		;
}

/* A tap frame's addresses as the sockets' would be: false when the frame
 * is not one (our own data thread's; checked all the same). */
static bool tap_unframe(const uint8_t *buf, size_t len, union xb_sockaddr *peer, union xb_sockaddr *local,
			socklen_t *plen)
{
	struct wg_tap_hdr h;

	if (len < sizeof(h))
		return false;
	memcpy(&h, buf, sizeof(h));
	memset(peer, 0, sizeof(*peer));
	memset(local, 0, sizeof(*local));
	if (h.family == 4) {
		peer->in = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = h.sport };
		local->in = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = h.dport };
		memcpy(&peer->in.sin_addr, h.src, 4);
		memcpy(&local->in.sin_addr, h.dst, 4);
		*plen = sizeof(peer->in);
		return true;
	}
	if (h.family == 6) {
		peer->in6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = h.sport };
		local->in6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = h.dport };
		memcpy(&peer->in6.sin6_addr, h.src, 16);
		memcpy(&local->in6.sin6_addr, h.dst, 16);
		*plen = sizeof(peer->in6);
		return true;
	}
	return false;
}

/* udp_batch for the tap: the addresses come from each frame. */
static int tap_batch(struct xb_dns_service *s, struct udp_in *in)
{
	int fd = s->tap_fd, n;

	for (int i = 0; i < UDP_BATCH; i++) {	/* a frame: its header, then a query as long as a socket's */
		in->m[i].msg_hdr.msg_namelen = 0;
		in->iov[i].iov_len = sizeof(in->buf[i]);
	}
	if ((n = recvmmsg(fd, in->m, UDP_BATCH, MSG_DONTWAIT, NULL)) <= 0)
		return 0;
	s->now_ns = clock_mono_ns();
	s->io->batch.fd = fd;
	for (int i = 0; i < n; i++) {
		union xb_sockaddr peer, local;
		socklen_t plen;

		if (in->m[i].msg_hdr.msg_flags & MSG_TRUNC) {
			s->c.dropped++;
			continue;
		}
		if (!tap_unframe(in->buf[i], in->m[i].msg_len, &peer, &local, &plen)) {
			s->c.tap_bad++;
			continue;
		}
		s->c.tap_queries++;
		on_query(s, in->buf[i] + WG_TAP_HDR_LEN, in->m[i].msg_len - WG_TAP_HDR_LEN, fd, &peer, plen, -1,
			 &local);
	}
	flush(s, fd);
	s->io->batch.fd = -1;
	return n;
}

bool xb_dns_service_has_tap(const struct xb_dns_service *s)
{
	return s->tap_fd >= 0;
}

void xb_dns_service_set_tap(struct xb_dns_service *s, int fd, unsigned mtu)
{
	if (s->tap_fd >= 0) {
		/* Answers still owed through the old one have nowhere to go. */
		for (size_t i = 0; i < DNS_INFLIGHT_MAX; i++)
			if (s->flights[i].used && s->flights[i].tap) {
				xb_dns_upstream_cancel(s->up, s->flights[i].handle);
				flight_free(s, &s->flights[i]);
			}
		close(s->tap_fd);
	}
	s->tap_fd = fd;
	s->tap_mtu = mtu;
}

static void on_accept(struct xb_dns_service *s, int lfd)
{
	union xb_sockaddr peer;
	socklen_t plen = sizeof(peer);
	int fd = accept4(lfd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC), slot;

	if (fd < 0)
		return;
	for (slot = 0; slot < DNS_TCP_MAX && s->conns[slot].fd >= 0; slot++)
		;
	if (slot == DNS_TCP_MAX || !(s->conns[slot].in = malloc(MSG_MAX + 2))) {
		s->c.tcp_refused++;
		close(fd);
		return;
	}
	s->conns[slot].fd = fd;
	s->conns[slot].peer = peer;
	s->conns[slot].pending = 0;
	s->conns[slot].deadline_ns = s->now_ns + DNS_TCP_IDLE_MS * NSEC_PER_MSEC;
	if (watch(s, EPOLL_CTL_ADD, fd, EPOLLIN, TAG_CONN + (uint64_t)slot) < 0)
		tcp_close(s, slot);
}

/* Reads what is there; answers every complete message (RFC 7766:
 * pipelined queries, answers in completion order). */
static void on_conn(struct xb_dns_service *s, int slot, uint32_t events)
{
	struct dns_tcp *k = &s->conns[slot];
	socklen_t plen = k->peer.sa.sa_family == AF_INET ? sizeof(k->peer.in) : sizeof(k->peer.in6);
	const uint8_t *msg;
	size_t m, off = 0;
	ssize_t n;

	if (events & EPOLLOUT)
		tcp_flush(s, slot);
	if (k->fd < 0 || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(k->fd, k->in + k->in_len, MSG_MAX + 2 - k->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		tcp_close(s, slot);
		return;
	}
	if (n < 0)
		return;
	k->in_len += (size_t)n;
	k->deadline_ns = s->now_ns + DNS_TCP_IDLE_MS * NSEC_PER_MSEC;
	/* A full buffer holds a whole message (XB_DNS_WIRE_TCP_FRAME_MAX): there
	 * is always room to read on. */
	while (k->fd >= 0 && xb_dns_wire_tcp_next(k->in, k->in_len, &off, &msg, &m))
		on_query(s, msg, m, -1, &k->peer, plen, slot, NULL);
	if (k->fd >= 0 && off) {
		memmove(k->in, k->in + off, k->in_len - off);
		k->in_len -= off;
	}
}

static void on_timer(struct xb_dns_service *s)
{
	uint64_t n, now = s->now_ns;

	if (read(s->tfd, &n, sizeof(n)) < 0)
		return;
	for (int i = 0; i < DNS_TCP_MAX; i++)
		if (s->conns[i].fd >= 0 && !s->conns[i].pending && s->conns[i].deadline_ns <= now)
			tcp_close(s, i);
	dns_learned_prune(s);	/* the heaps' tops only: cheap */
	if (++s->ticks % 30 == 0)
		dns_learned_save(s);
}

/* The UDP sockets are watched by the daemon's own epoll set, not this
 * one: a query then costs one epoll_wait per wakeup instead of two (the
 * profile of a busy service was mostly wakeups). */
int xb_dns_service_udp_fds(const struct xb_dns_service *s, int fds[XB_DNS_SERVICE_UDP_FDS])
{
	int n = 0;

	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		if (s->udp[i] >= 0)
			fds[n++] = s->udp[i];
	if (s->tap_fd >= 0)
		fds[n++] = s->tap_fd;
	return n;
}

bool xb_dns_service_udp_ready(struct xb_dns_service *s, int fd)
{
	if (s->tap_fd >= 0 && fd == s->tap_fd) {
		for (int i = 0; i < UDP_DRAIN && tap_batch(s, &s->io->in) == UDP_BATCH; i++)
			;
		return true;
	}
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		if (s->udp[i] >= 0 && s->udp[i] == fd) {
			on_udp(s, fd);
			return true;
		}
	return false;
}

/* Upstream answers of one round: those to UDP clients on the first socket
 * leave in one sendmmsg, after one transaction per set. */
static void upstream_round(struct xb_dns_service *s)
{
	int fd = s->udp[0] >= 0 ? s->udp[0] : s->udp[1];

	s->io->batch.fd = fd;
	xb_dns_upstream_process(s->up, s->now_ns);
	if (fd >= 0)
		flush(s, fd);
	s->io->batch.fd = -1;
}

void xb_dns_service_process(struct xb_dns_service *s)
{
	struct epoll_event ev[32];
	int n = epoll_wait(s->epfd, ev, 32, 0);

	s->now_ns = clock_mono_ns();
	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;

		if (tag == TAG_TIMER)
			on_timer(s);
		else if (tag == TAG_UP)
			upstream_round(s);
		else if (tag >= TAG_TCPL && tag < TAG_CONN)
			on_accept(s, s->tcp[tag - TAG_TCPL]);
		else if (tag >= TAG_CONN && tag < TAG_CONN + DNS_TCP_MAX)
			on_conn(s, (int)(tag - TAG_CONN), ev[i].events);
	}
	/* An answer dropped (empty, or its TCP client gone) flushed nothing:
	 * no change stays queued past the round that learned it. */
	dns_learn_flush(s);
}

/* A socket bound to addr (which need not be configured yet) and to the
 * device interface: only what arrives through a device's WireGuard tunnel
 * reaches it, so the source address is one cryptokey routing vouched for
 * — not a neighbour on another link sending from a device's address. */
static int listen_on(struct xb_dns_service *s, int i, const union xb_sockaddr *a, const char *ifname)
{
	char text[80];

	if (a->sa.sa_family == AF_UNSPEC) {
		dns_close_listen(s, i);
		return 0;
	}
	if (!memcmp(&s->bound[i], a, sizeof(*a)) && s->udp[i] >= 0 && !strcmp(s->bound_if, ifname))
		return 0;
	dns_close_listen(s, i);
	xb_endpoint_format(text, sizeof(text), a);
	if ((s->udp[i] = dns_open_sock(a, SOCK_DGRAM, ifname)) < 0 ||
	    (s->tcp[i] = dns_open_sock(a, SOCK_STREAM, ifname)) < 0 ||
	    watch(s, EPOLL_CTL_ADD, s->tcp[i], EPOLLIN, TAG_TCPL + (uint64_t)i) < 0) {
		log_warn("dns: listening on %s", text);
		dns_close_listen(s, i);
		return -1;
	}
	s->bound[i] = *a;
	snprintf(s->bound_if, sizeof(s->bound_if), "%s", ifname);
	log_info("dns: listening on %s (UDP and TCP, %s only)", text, ifname);
	return 0;
}

static void cancel_flights(struct xb_dns_service *s)
{
	for (size_t i = 0; i < DNS_INFLIGHT_MAX; i++)
		if (s->flights[i].used) {
			xb_dns_upstream_cancel(s->up, s->flights[i].handle);
			flight_free(s, &s->flights[i]);
		}
	for (int i = 0; i < DNS_TCP_MAX; i++)
		s->conns[i].pending = 0;
}

static void open_log(struct xb_dns_service *s, const struct xb_dns *d)
{
	if (s->log && (!d->query_log_path || strcmp(s->log_path, d->query_log_path))) {
		xb_jsonlog_close(s->log);
		free(s->log_path);
		s->log = NULL;
		s->log_path = NULL;
	}
	if (!s->log && d->query_log_path && (s->log = xb_jsonlog_open(d->query_log_path, d->query_log_max)))
		s->log_path = strdup(d->query_log_path);
}

int xb_dns_service_commit(struct xb_dns_service *s, struct xb_dns_service_cfg *cfg)
{
	const struct xb_dns *d = &cfg->p->dns;
	union xb_sockaddr a[DNS_LISTEN_MAX];
	struct xb_dns_cache_conf cc = { .max_entries = d->cache_size, .max_ttl = d->ttl_max,
				   .neg_max_ttl = d->negative_ttl_max, .min_ttl = d->ttl_min,
				   .stale_s = d->serve_stale };
	int rc = 0;

	cancel_flights(s);
	/* Rounds flush what they learn (xb_dns_service_process), so this is at
	 * most what a caller outside a round queued. The new ruleset is
	 * loaded already: a set of the same name may be another rule's now
	 * (edited domains; r_ruleN by position), so it is dropped, not sent. */
	s->n_pend = 0;
	xb_dns_service_cfg_free(s->cfg);
	s->cfg = cfg;
	s->since = (uint64_t)time(NULL);
	/* Scopes are rule numbers, which a reload may reassign: start afresh. */
	xb_dns_cache_free(s->cache);
	s->cache = d->cache_size ? xb_dns_cache_new(&cc) : NULL;
	open_log(s, d);
	dns_gateway_addrs(cfg->p, a);
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		if (listen_on(s, i, &a[i], cfg->p->gateway.interface) < 0)
			rc = -1;
	if (!s->loaded) {	/* with a policy: its TTL caps apply to what is read */
		dns_learned_load(s);
		s->loaded = true;
	}
	xb_dns_service_refill(s);
	return rc;
}

void xb_dns_service_reopen_log(struct xb_dns_service *s)
{
	if (s->log && xb_jsonlog_reopen(s->log) < 0)
		log_warn("dns: reopening %s", s->log_path);
}

void xb_dns_service_free(struct xb_dns_service *s)
{
	if (!s)
		return;
	if (s->flights && s->up)
		cancel_flights(s);
	if (s->cfg && s->pend)
		dns_learn_flush(s);
	dns_learned_prune(s);
	dns_learned_save(s);
	for (int i = 0; s->conns && i < DNS_TCP_MAX; i++)
		tcp_close(s, i);
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		dns_close_listen(s, i);
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	xb_dns_upstream_free(s->up);
	xb_dns_cache_free(s->cache);
	xb_nft_set_close(&s->nft);
	xb_jsonlog_close(s->log);
	xb_dns_learn_free(&s->learned);
	free(s->pend);
	free(s->io);
	free(s->batch);
	xb_dns_service_cfg_free(s->cfg);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tfd >= 0)
		close(s->tfd);
	free(s->conns);
	free(s->flights);
	free(s->free);
	free(s->log_path);
	free(s->state_file);
	free(s);
}
