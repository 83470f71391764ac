/* The tunnel prober: rounds, answers, timers, reload (probe/probe.h).
 *
 * Timestamps: a probe's send and answer times are read from the monotonic
 * clock right at sendto()/recv(), not taken from the caller's `now', so the
 * caller's loop latency does not enter the RTT. `now' drives scheduling.
 *
 * Loss reports: ICMP and DNS probes carry their round (their stats id equals
 * the round: every round sends one to each), so a lost one is reported from
 * the stats' verdict, walking a cursor. TCP and HTTP have one attempt in
 * flight, reported when it ends or is abandoned.
 */
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "probe/probe.h"
#include "probe/probe_int.h"
#include "probe/probe_wire.h"

#define MAX_EVENTS 64
#define MAX_BATCHES 16		/* epoll_wait rounds per process() */

void xb_probe_tunnel_defaults(struct xb_probe_tunnel_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->interval_ns = XB_PROBE_DEFAULT_INTERVAL_NS;
	c->silent_hold_ns = XB_PROBE_SILENT_HOLD_NS;
	xb_pstats_defaults(&c->stats);
}

const char *xb_probe_tunnel_check(const struct xb_probe_tunnel_cfg *c)
{
	const char *e;

	if (!c->name[0] || !memchr(c->name, 0, sizeof(c->name)))
		return "tunnel name missing or too long";
	if (!c->ifname[0] || !memchr(c->ifname, 0, sizeof(c->ifname)))
		return "interface name missing or too long";
	if (c->interval_ns < XB_PROBE_MIN_INTERVAL_NS)
		return "interval below 50 ms";
	if (c->stats.loss_ns < c->interval_ns)
		return "loss interval shorter than the probe interval";
	if (!c->n_targets || c->n_targets > XB_PROBE_MAX_TARGETS)
		return "1..8 targets";
	for (unsigned i = 0; i < c->n_targets; i++) {
		sa_family_t f = c->targets[i].addr.ss_family;

		if (f != AF_INET && f != AF_INET6)
			return "target without an IPv4/IPv6 address";
		if (c->targets[i].kind > XB_PROBE_DNS)
			return "unknown target kind";
	}
	e = xb_pstats_check(&c->stats);
	return e;
}

struct xb_probe *xb_probe_new(const struct xb_probe_cbs *cbs)
{
	struct xb_probe *p = calloc(1, sizeof(*p));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!p)
		return NULL;
	p->epfd = p->tfd = -1;
	if (cbs)
		p->cbs = *cbs;
	p->htimer.type = H_TIMER;
	ev.data.ptr = &p->htimer;
	if (getrandom(&p->nonce, sizeof(p->nonce), 0) != sizeof(p->nonce) ||
	    getrandom(&p->rng, sizeof(p->rng), 0) != sizeof(p->rng))
		goto fail;
	p->rng |= 1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->epfd < 0 || p->tfd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->tfd, &ev))
		goto fail;
	return p;
fail:
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->tfd >= 0)
		close(p->tfd);
	free(p);
	return NULL;
}

void xb_probe_free(struct xb_probe *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		pt_free(p->tun[i]);
	free(p->tun);
	close(p->tfd);
	close(p->epfd);
	free(p);
}

int xb_probe_fd(const struct xb_probe *p)
{
	return p->epfd;
}

size_t xb_probe_count(const struct xb_probe *p)
{
	return p->n;
}

uint64_t xb_probe_packets(const struct xb_probe *p)
{
	return p->packets;
}

uint64_t pt_rand(struct xb_probe *p)
{
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 2685821657736338717ULL;
}

void pt_result(struct ptunnel *t, struct ptarget *g, uint64_t round, int rc, uint64_t rtt,
	       const char *error)
{
	struct xb_probe_result r = {
		.tunnel = t->cfg.id, .target = (unsigned)(g - t->tg), .round = round,
		.ok = rc == 0, .late = rc == 1, .rtt_ns = rtt, .error = error,
	};

	if (t->p->cbs.result)
		t->p->cbs.result(t->p->cbs.ctx, &r);
}

/* Target g answered probe tid of round at time at. */
void pt_answer(struct ptunnel *t, struct ptarget *g, uint64_t round, uint64_t tid, uint64_t at)
{
	uint64_t sent;
	int rc;

	if (xb_pstats_fate(g->ps, tid, &sent, NULL) == XB_PFATE_UNKNOWN)
		return;
	rc = xb_pstats_reply(g->ps, tid, at);
	if (rc < 0)
		return;		/* duplicate */
	pt_result(t, g, round, rc, at - sent, rc ? "late" : NULL);
	xb_pstats_reply(t->ps, round, at);	/* the first target's answer counts */
}

static void send_round(struct ptunnel *t, uint64_t now)
{
	uint64_t round = t->round++;

	t->last_send = now;
	xb_pstats_sent(t->ps, clock_mono_ns());
	for (unsigned i = 0; i < t->cfg.n_targets; i++)
		pt_send(t, &t->tg[i], round, now);
	/* Keep the cadence; after a stall (suspend, a slow loop) restart it
	 * instead of firing a burst of rounds. */
	t->next_send += t->cfg.interval_ns;
	if (t->next_send <= now)
		t->next_send = now + t->cfg.interval_ns;
}

/* Losses the stats decided for ICMP and DNS targets, as results. */
static void report_lost(struct ptunnel *t, struct ptarget *g)
{
	uint64_t end = xb_pstats_count(g->ps);

	if (g->t_conn)
		return;		/* reported when the attempt ends */
	for (unsigned n = 0; n < t->cfg.stats.window && g->cursor < end; n++) {
		enum xb_pfate f = xb_pstats_fate(g->ps, g->cursor, NULL, NULL);

		if (f == XB_PFATE_PENDING)
			break;
		if (f == XB_PFATE_LOST)
			pt_result(t, g, g->cursor + g->round_off, -1, 0,
				  g->err[0] ? g->err : "no reply");
		g->cursor++;
	}
	if (end - g->cursor > t->cfg.stats.window)
		g->cursor = end - t->cfg.stats.window;	/* fell out unreported */
}

/* When to ask cbs.silent about the newest missed round; UINT64_MAX: not. */
static uint64_t silent_due(const struct ptunnel *t)
{
	uint64_t since = xb_pstats_miss_sent(t->ps);

	if (!t->p->cbs.silent || !since || since == t->silent_asked ||
	    xb_pstats_state(t->ps) == XB_PST_DOWN)
		return UINT64_MAX;
	return since + t->cfg.silent_hold_ns;
}

/* A miss that the tunnel's data plane confirms (cbs.silent: nothing
 * received since the missed round left): down now. */
static bool silent(struct ptunnel *t, uint64_t now)
{
	enum xb_pstate from = xb_pstats_state(t->ps);
	uint64_t since = xb_pstats_miss_sent(t->ps);

	if (now < silent_due(t))
		return false;
	t->silent_asked = since;
	if (!t->p->cbs.silent(t->p->cbs.ctx, t->cfg.id, since))
		return false;
	xb_pstats_force_down(t->ps, now);
	t->confirmed_run = 0;
	if (t->p->cbs.state)
		t->p->cbs.state(t->p->cbs.ctx, t->cfg.id, from, XB_PST_DOWN);
	return true;
}

/* Re-evaluate; true when the tunnel's miss run grew and it is not down:
 * the next round is pulled forward to half an interval after the last one.
 * A miss is either noise or an outage's start; asking again sooner tells
 * the two apart one interval earlier (at 100 ms probes and a 50 ms timeout,
 * at once). Detection still scales with the interval the operator chose:
 * a 1 s prober does not fall for a 200 ms hiccup. With independent loss the
 * chance of a false down is unchanged (the same run of misses is needed)
 * and so are the loss figures; the cost is at most twice the rounds while
 * probes are being missed. */
static bool update(struct ptunnel *t, uint64_t now)
{
	enum xb_pstate from = xb_pstats_state(t->ps);
	unsigned run;
	bool grew;

	for (unsigned i = 0; i < t->cfg.n_targets; i++) {
		struct ptarget *g = &t->tg[i];

		pt_conn_expire(t, g, now);
		xb_pstats_update(g->ps, now);
		report_lost(t, g);
	}
	if (xb_pstats_update(t->ps, now) && t->p->cbs.state)
		t->p->cbs.state(t->p->cbs.ctx, t->cfg.id, from, xb_pstats_state(t->ps));
	run = xb_pstats_miss_run(t->ps);
	grew = run > t->confirmed_run;
	t->confirmed_run = run;
	if (silent(t, now))
		return false;
	return grew && xb_pstats_state(t->ps) != XB_PST_DOWN;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void rearm(struct xb_probe *p, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct itimerspec its = { 0 };

	for (size_t i = 0; i < p->n; i++) {
		struct ptunnel *t = p->tun[i];

		next = min64(next, min64(t->next_send, xb_pstats_deadline(t->ps)));
		next = min64(next, silent_due(t));
		for (unsigned j = 0; j < t->cfg.n_targets; j++)
			next = min64(next, min64(xb_pstats_deadline(t->tg[j].ps),
						 pt_conn_deadline(t, &t->tg[j])));
	}
	if (next == UINT64_MAX)
		next = now + 3600 * NSEC_PER_SEC;
	if (next <= now)
		next = now + 1;
	/* +1 ms: wake after a deadline, not a hair before it. */
	its.it_value = clock_ts(next + NSEC_PER_MSEC);
	timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void dispatch(struct xb_probe *p, struct handle *h, uint32_t events)
{
	uint64_t junk;

	switch (h->type) {
	case H_TIMER:
		/* Only clears the expiry; process() looks at every deadline. */
		if (read(p->tfd, &junk, sizeof(junk)) < 0)
			junk = 0;
		break;
	case H_ICMP4:
	case H_ICMP6:
		pt_icmp_read(h->tun, h->type == H_ICMP6);
		break;
	case H_CONN:
		pt_conn_event(h->tun, h->tg, events);
		break;
	case H_DNS:
		pt_dns_read(h->tun, h->tg);
		break;
	}
}

void xb_probe_process(struct xb_probe *p, uint64_t now)
{
	struct epoll_event ev[MAX_EVENTS];

	for (int b = 0; b < MAX_BATCHES; b++) {
		int n = epoll_wait(p->epfd, ev, MAX_EVENTS, 0);

		for (int i = 0; i < n; i++)
			dispatch(p, ev[i].data.ptr, ev[i].events);
		if (n < MAX_EVENTS)
			break;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct ptunnel *t = p->tun[i];
		bool sent = now >= t->next_send;

		if (sent)
			send_round(t, now);
		if (update(t, now)) {
			uint64_t due = t->last_send + t->cfg.interval_ns / 2;

			if (due < t->next_send)
				t->next_send = due;	/* the cadence restarts there */
			if (now >= t->next_send) {
				send_round(t, now);
				update(t, now);
			}
		}
	}
	rearm(p, now);
}

static struct ptunnel *find(const struct xb_probe *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->tun[i]->cfg.name, name))
			return p->tun[i];
	return NULL;
}

int xb_probe_stats(const struct xb_probe *p, const char *tunnel, int target, uint64_t now,
		   struct xb_pstats_summary *s)
{
	const struct ptunnel *t = find(p, tunnel);

	if (!t || target < -1 || target >= (int)t->cfg.n_targets)
		return -1;
	xb_pstats_get(target < 0 ? t->ps : t->tg[target].ps, now, s);
	return 0;
}

static const char *check_all(const struct xb_probe_tunnel_cfg *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *e = xb_probe_tunnel_check(&c[i]);

		if (e)
			return e;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c[i].name, c[j].name))
				return "tunnel named twice";
	}
	return NULL;
}

/* New tunnel objects for the cfgs that changed; the unchanged old ones
 * as they are. false (and nothing changed) when one cannot be made. */
static bool build(struct xb_probe *p, const struct xb_probe_tunnel_cfg *cfgs, size_t n,
		  struct ptunnel **nt)
{
	for (size_t i = 0; i < n; i++) {
		struct ptunnel *old = find(p, cfgs[i].name);

		nt[i] = old && pt_same_cfg(&old->cfg, &cfgs[i]) ? old : pt_new(p, &cfgs[i]);
		if (nt[i])
			continue;
		for (size_t j = 0; j < i; j++)
			if (find(p, nt[j]->cfg.name) != nt[j])
				pt_free(nt[j]);
		return false;
	}
	return true;
}

int xb_probe_set(struct xb_probe *p, const struct xb_probe_tunnel_cfg *cfgs, size_t n,
		 const char **err)
{
	struct ptunnel **nt;

	*err = check_all(cfgs, n);
	if (*err)
		return -1;
	nt = calloc(n ? n : 1, sizeof(*nt));
	if (!nt || !build(p, cfgs, n, nt)) {
		free(nt);
		*err = "cannot set up the prober (out of memory or file descriptors)";
		return -1;
	}
	/* Nothing can fail from here: move what stays into the new objects. */
	for (size_t i = 0; i < n; i++) {
		struct ptunnel *old = find(p, cfgs[i].name);

		if (old && old != nt[i])
			pt_adopt(nt[i], old);
		nt[i]->cfg.id = cfgs[i].id;	/* a kept tunnel may have moved */
	}
	for (size_t i = 0; i < p->n; i++) {
		bool kept = false;

		for (size_t j = 0; j < n; j++)
			kept |= nt[j] == p->tun[i];
		if (!kept)
			pt_free(p->tun[i]);	/* with the fresh stats adopt swapped in */
	}
	free(p->tun);
	p->tun = nt;
	p->n = n;
	rearm(p, clock_mono_ns());
	return 0;
}
