/* The prober's sockets, per target kind. Every socket is bound to the
 * tunnel's interface and carries the tunnel's mark, if any. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/clock.h"
#include "probe/probe_int.h"
#include "probe/probe_wire.h"

#define READ_BURST 64		/* datagrams read per readable event */
/* From linux/icmp.h, which clashes with net/if.h: a raw ICMP socket's mask
 * of types it does not want; 0 is echo reply. */
#define RAW_ICMP_FILTER 1
#define ICMP_TYPE_ECHO_REPLY 0

static int open_sock(struct ptunnel *t, int family, int type, int proto)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	uint32_t mark = t->cfg.mark;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, t->cfg.ifname, strlen(t->cfg.ifname)) ||
	    (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)))) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int watch(struct ptunnel *t, int fd, struct handle *h, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(t->p->epfd, op, fd, &ev);
}

static void note_err(struct ptarget *g, const char *what, int e)
{
	snprintf(g->err, sizeof(g->err), "%s: %s", what, strerror(e));
}

static socklen_t alen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* SO_BINDTODEVICE holds the interface's index, not its name: once the
 * interface is deleted (and maybe re-created under the name, as xborderd
 * does with a tunnel deleted by hand) every send fails with ENODEV for
 * good. Such a socket is closed; the next round opens one on the
 * interface that has the name now. */
static bool stale(int e)
{
	return e == ENODEV || e == ENXIO;
}

static void drop(struct ptunnel *t, int *fd)
{
	epoll_ctl(t->p->epfd, EPOLL_CTL_DEL, *fd, NULL);
	close(*fd);
	*fd = -1;
}

/* --- ICMP: one raw socket per family, shared by the tunnel's targets. --- */

static int icmp_fd(struct ptunnel *t, bool v6)
{
	int fd;

	if (t->icmp[v6] >= 0)
		return t->icmp[v6];
	fd = open_sock(t, v6 ? AF_INET6 : AF_INET, SOCK_RAW, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
	if (fd < 0)
		return -1;
	if (v6) {
		struct icmp6_filter f;

		ICMP6_FILTER_SETBLOCKALL(&f);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
		setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
	} else {
		uint32_t f = ~(1u << ICMP_TYPE_ECHO_REPLY);

		setsockopt(fd, SOL_RAW, RAW_ICMP_FILTER, &f, sizeof(f));
	}
	t->hicmp[v6] = (struct handle){ v6 ? H_ICMP6 : H_ICMP4, t, NULL };
	if (watch(t, fd, &t->hicmp[v6], EPOLLIN, EPOLL_CTL_ADD)) {
		close(fd);
		return -1;
	}
	t->icmp[v6] = fd;
	return fd;
}

static void icmp_send(struct ptunnel *t, struct ptarget *g, uint64_t round)
{
	bool v6 = g->t.addr.ss_family == AF_INET6;
	int fd = icmp_fd(t, v6);
	uint8_t buf[PW_ECHO_LEN];
	struct pw_echo e = { .ident = t->ident, .seq = (uint16_t)round, .nonce = t->p->nonce,
			     .round = round, .target = (uint8_t)(g - t->tg) };
	size_t n;

	e.tid = xb_pstats_sent(g->ps, clock_mono_ns());
	g->round_off = round - e.tid;
	if (fd < 0) {
		note_err(g, "socket", errno);
		return;
	}
	n = pw_echo_build(buf, v6, &e);
	t->p->packets++;
	if (sendto(fd, buf, n, 0, (const struct sockaddr *)&g->t.addr, alen(&g->t.addr)) < 0) {
		note_err(g, "send", errno);
		if (stale(errno))
			drop(t, &t->icmp[v6]);
	} else {
		g->err[0] = 0;
	}
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

void pt_icmp_read(struct ptunnel *t, bool v6)
{
	uint8_t buf[1500];
	struct sockaddr_storage from;

	for (int i = 0; i < READ_BURST; i++) {
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(t->icmp[v6], buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		uint64_t at = clock_mono_ns();
		struct pw_echo e;
		struct ptarget *g;

		if (n < 0)
			return;
		/* Someone else's echo, another run's, another tunnel's: ignore. */
		if (!pw_echo_parse(buf, (size_t)n, v6, &e) || e.nonce != t->p->nonce ||
		    e.ident != t->ident || e.target >= t->cfg.n_targets)
			continue;
		g = &t->tg[e.target];
		if (g->t.kind != XB_PROBE_ICMP || !same_addr(&from, &g->t.addr))
			continue;
		pt_answer(t, g, e.round, e.tid, at);
	}
}

/* --- DNS: one connected UDP socket per target. --- */

static void dns_send(struct ptunnel *t, struct ptarget *g, uint64_t round)
{
	uint8_t q[300];
	uint16_t qid = (uint16_t)pt_rand(t->p);
	uint64_t tid = xb_pstats_sent(g->ps, clock_mono_ns());
	size_t n = pw_dns_build(q, sizeof(q), qid, g->t.name);

	g->round_off = round - tid;
	if (g->fd < 0) {
		g->fd = open_sock(t, g->t.addr.ss_family, SOCK_DGRAM, 0);
		g->h = (struct handle){ H_DNS, t, g };
		if (g->fd >= 0 &&
		    (connect(g->fd, (const struct sockaddr *)&g->t.addr, alen(&g->t.addr)) ||
		     watch(t, g->fd, &g->h, EPOLLIN, EPOLL_CTL_ADD))) {
			close(g->fd);
			g->fd = -1;
		}
		if (g->fd < 0) {
			note_err(g, "socket", errno);
			return;
		}
	}
	g->dq[tid % DNS_INFLIGHT].qid = qid;
	g->dq[tid % DNS_INFLIGHT].tid = tid;
	g->dq[tid % DNS_INFLIGHT].round = round;
	g->dq[tid % DNS_INFLIGHT].live = true;
	t->p->packets++;
	if (!n || send(g->fd, q, n, 0) < 0) {
		note_err(g, "send", n ? errno : EINVAL);
		if (n && stale(errno))
			drop(t, &g->fd);
	} else {
		g->err[0] = 0;
	}
}

void pt_dns_read(struct ptunnel *t, struct ptarget *g)
{
	uint8_t buf[1500];

	for (int i = 0; i < READ_BURST; i++) {
		ssize_t n = recv(g->fd, buf, sizeof(buf), 0);
		uint64_t at = clock_mono_ns();

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			continue;	/* ICMP error queued on the socket */
		}
		for (unsigned k = 0; k < DNS_INFLIGHT; k++) {
			if (!g->dq[k].live ||
			    !pw_dns_match(buf, (size_t)n, g->dq[k].qid, g->t.name))
				continue;
			g->dq[k].live = false;
			pt_answer(t, g, g->dq[k].round, g->dq[k].tid, at);
			break;
		}
	}
}

/* --- TCP and HTTP: one attempt in flight per target. --- */

static void conn_end(struct ptunnel *t, struct ptarget *g, uint64_t at, const char *error)
{
	if (!error)
		pt_answer(t, g, g->round, g->tid, at);
	else
		pt_result(t, g, g->round, -1, 0, error);
	close(g->fd);
	g->fd = -1;
	g->busy = g->sent_req = false;
	g->got = 0;
}

static void conn_fail(struct ptunnel *t, struct ptarget *g, const char *what, int e)
{
	note_err(g, what, e);
	conn_end(t, g, 0, g->err);
}

static void conn_start(struct ptunnel *t, struct ptarget *g, uint64_t round)
{
	if (g->busy)
		return;		/* skipped: the last attempt is still going */
	g->round = round;
	g->fd = open_sock(t, g->t.addr.ss_family, SOCK_STREAM, 0);
	g->started = clock_mono_ns();
	g->tid = xb_pstats_sent(g->ps, g->started);
	if (g->fd < 0) {
		note_err(g, "socket", errno);
		pt_result(t, g, round, -1, 0, g->err);
		return;
	}
	g->busy = true;
	g->h = (struct handle){ H_CONN, t, g };
	t->p->packets++;
	if (connect(g->fd, (const struct sockaddr *)&g->t.addr, alen(&g->t.addr)) &&
	    errno != EINPROGRESS) {
		conn_fail(t, g, "connect", errno);
		return;
	}
	if (watch(t, g->fd, &g->h, EPOLLOUT, EPOLL_CTL_ADD))
		conn_fail(t, g, "epoll", errno);
}

static void http_request(struct ptunnel *t, struct ptarget *g)
{
	char req[512], host[INET6_ADDRSTRLEN + 2] = "";
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&g->t.addr;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&g->t.addr;
	int n;

	if (g->t.addr.ss_family == AF_INET6) {
		host[0] = '[';
		inet_ntop(AF_INET6, &s6->sin6_addr, host + 1, INET6_ADDRSTRLEN);
		strcat(host, "]");
	} else {
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
	}
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xborder-probe\r\n"
		     "Connection: close\r\n\r\n", g->t.path, g->t.name[0] ? g->t.name : host);
	/* A fresh connection takes a few hundred bytes whole. */
	if (n < 0 || (size_t)n >= sizeof(req) || send(g->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_fail(t, g, "send", errno ? errno : EMSGSIZE);
		return;
	}
	g->sent_req = true;
	if (watch(t, g->fd, &g->h, EPOLLIN, EPOLL_CTL_MOD))
		conn_fail(t, g, "epoll", errno);
}

static void http_read(struct ptunnel *t, struct ptarget *g)
{
	ssize_t n = recv(g->fd, g->buf + g->got, sizeof(g->buf) - g->got, 0);
	uint64_t at = clock_mono_ns();
	int st;

	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_fail(t, g, "recv", errno);
		return;
	}
	if (n == 0) {
		conn_end(t, g, 0, "closed before the status line");
		return;
	}
	g->got += (size_t)n;
	st = pw_http_status(g->buf, g->got);
	if (st > 0)
		conn_end(t, g, at, NULL);
	else if (st < 0 || g->got == sizeof(g->buf))
		conn_end(t, g, 0, "not an HTTP status line");
}

void pt_conn_event(struct ptunnel *t, struct ptarget *g, uint32_t events)
{
	uint64_t at = clock_mono_ns();
	int err = 0;
	socklen_t len = sizeof(err);

	(void)events;
	if (!g->busy)
		return;
	if (g->sent_req) {
		http_read(t, g);
		return;
	}
	if (getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (err == EINPROGRESS)
		return;
	/* A refusal is an answer: the path carried the partner's RST. */
	if (err && err != ECONNREFUSED) {
		conn_fail(t, g, "connect", err);
		return;
	}
	if (g->t.kind == XB_PROBE_HTTP && !err)
		http_request(t, g);
	else
		conn_end(t, g, at, NULL);
}

void pt_conn_expire(struct ptunnel *t, struct ptarget *g, uint64_t now)
{
	if (g->busy && now >= g->started + t->cfg.stats.loss_ns)
		conn_end(t, g, 0, "no answer");
}

uint64_t pt_conn_deadline(const struct ptunnel *t, const struct ptarget *g)
{
	return g->busy ? g->started + t->cfg.stats.loss_ns : UINT64_MAX;
}

void pt_send(struct ptunnel *t, struct ptarget *g, uint64_t round, uint64_t now)
{
	(void)now;
	switch (g->t.kind) {
	case XB_PROBE_ICMP:
		icmp_send(t, g, round);
		break;
	case XB_PROBE_DNS:
		dns_send(t, g, round);
		break;
	case XB_PROBE_TCP:
	case XB_PROBE_HTTP:
		conn_start(t, g, round);
		break;
	}
}

/* --- life cycle --- */

struct ptunnel *pt_new(struct xb_probe *p, const struct xb_probe_tunnel_cfg *cfg)
{
	struct ptunnel *t = calloc(1, sizeof(*t));
	bool ok;

	if (!t)
		return NULL;
	t->cfg = *cfg;
	t->p = p;
	t->icmp[0] = t->icmp[1] = -1;
	t->ident = (uint16_t)pt_rand(p);
	t->next_send = 0;	/* the first round goes at once */
	t->ps = xb_pstats_new(&cfg->stats);
	ok = t->ps != NULL;
	for (unsigned i = 0; i < cfg->n_targets; i++) {
		struct ptarget *g = &t->tg[i];

		g->t = cfg->targets[i];
		g->fd = -1;
		g->t_conn = g->t.kind == XB_PROBE_TCP || g->t.kind == XB_PROBE_HTTP;
		g->ps = xb_pstats_new(&cfg->stats);
		ok &= g->ps != NULL;
	}
	if (!ok) {
		pt_free(t);
		return NULL;
	}
	return t;
}

void pt_free(struct ptunnel *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->cfg.n_targets; i++) {
		if (t->tg[i].fd >= 0)
			close(t->tg[i].fd);
		xb_pstats_free(t->tg[i].ps);
	}
	for (int v6 = 0; v6 < 2; v6++)
		if (t->icmp[v6] >= 0)
			close(t->icmp[v6]);
	xb_pstats_free(t->ps);
	free(t);
}

static bool same_target(const struct xb_probe_target *a, const struct xb_probe_target *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->addr, *b4 = (const void *)&b->addr;

	/* sin_port and sin6_port sit at the same offset. */
	return a->kind == b->kind && same_addr(&a->addr, &b->addr) && a4->sin_port == b4->sin_port &&
	       !strcmp(a->name, b->name) && !strcmp(a->path, b->path);
}

static bool same_stats(const struct xb_pstats_cfg *a, const struct xb_pstats_cfg *b)
{
	return a->window == b->window && a->loss_ns == b->loss_ns &&
	       a->timeout_min_ns == b->timeout_min_ns && a->timeout_rtt_mult == b->timeout_rtt_mult &&
	       a->detect_mult == b->detect_mult && a->false_down == b->false_down &&
	       a->up_after == b->up_after && a->hold_down_ns == b->hold_down_ns &&
	       a->min_decided == b->min_decided && a->down_loss == b->down_loss &&
	       a->degraded_loss_on == b->degraded_loss_on &&
	       a->degraded_loss_off == b->degraded_loss_off &&
	       a->degraded_rtt_mult_on == b->degraded_rtt_mult_on &&
	       a->degraded_rtt_add_on_ns == b->degraded_rtt_add_on_ns &&
	       a->degraded_rtt_mult_off == b->degraded_rtt_mult_off &&
	       a->degraded_rtt_add_off_ns == b->degraded_rtt_add_off_ns;
}

bool pt_same_cfg(const struct xb_probe_tunnel_cfg *a, const struct xb_probe_tunnel_cfg *b)
{
	if (strcmp(a->name, b->name) || strcmp(a->ifname, b->ifname) ||
	    a->interval_ns != b->interval_ns || a->mark != b->mark ||
	    a->silent_hold_ns != b->silent_hold_ns ||
	    a->n_targets != b->n_targets || !same_stats(&a->stats, &b->stats))
		return false;
	for (unsigned i = 0; i < a->n_targets; i++)
		if (!same_target(&a->targets[i], &b->targets[i]))
			return false;
	return true;
}

static void swap_ps(struct xb_pstats **a, struct xb_pstats **b)
{
	struct xb_pstats *x = *a;

	*a = *b;
	*b = x;
}

/* Point a moved socket's epoll entry at its new owner; if even that fails,
 * drop the socket: the next round opens a new one. */
static void rewatch(struct ptunnel *t, int *fd, struct handle *h, uint32_t events)
{
	if (*fd >= 0 && watch(t, *fd, h, events, EPOLL_CTL_MOD)) {
		close(*fd);
		*fd = -1;
	}
}

/* Same interface and mark: t takes old's sockets too, with what is in
 * flight on them, so a reload loses no probe. Target g came from old. */
static void take_target(struct ptunnel *t, struct ptarget *g, struct ptarget *og)
{
	struct ptarget tmp = *g;

	*g = *og;
	*og = tmp;
	og->h.tg = og;
	g->h = (struct handle){ g->h.type, t, g };
	rewatch(t, &g->fd, &g->h, g->busy && !g->sent_req && g->t_conn ? EPOLLOUT : EPOLLIN);
	if (g->fd < 0)
		g->busy = false;
}

static void take_icmp(struct ptunnel *t, struct ptunnel *old)
{
	t->ident = old->ident;	/* echoes in flight carry it */
	for (int v6 = 0; v6 < 2; v6++) {
		t->icmp[v6] = old->icmp[v6];
		old->icmp[v6] = -1;
		t->hicmp[v6] = (struct handle){ v6 ? H_ICMP6 : H_ICMP4, t, NULL };
		rewatch(t, &t->icmp[v6], &t->hicmp[v6], EPOLLIN);
	}
}

/* t replaces old: take its statistics (old frees the fresh ones), if the
 * stats settings are the same, and the per-target ones of targets kept. */
void pt_adopt(struct ptunnel *t, struct ptunnel *old)
{
	bool socks = !strcmp(t->cfg.ifname, old->cfg.ifname) && t->cfg.mark == old->cfg.mark;

	if (!same_stats(&t->cfg.stats, &old->cfg.stats))
		return;
	swap_ps(&t->ps, &old->ps);
	t->round = old->round;	/* the tunnel's stats ids are rounds */
	t->next_send = old->next_send;
	if (socks)
		take_icmp(t, old);
	for (unsigned i = 0; i < t->cfg.n_targets; i++)
		for (unsigned j = 0; j < old->cfg.n_targets; j++) {
			if (!same_target(&t->tg[i].t, &old->tg[j].t))
				continue;
			if (socks) {
				take_target(t, &t->tg[i], &old->tg[j]);
			} else {
				swap_ps(&t->tg[i].ps, &old->tg[j].ps);
				t->tg[i].cursor = old->tg[j].cursor;
				t->tg[i].round_off = old->tg[j].round_off;
			}
			break;
		}
}
