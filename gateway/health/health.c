/* Tunnel health in xborderd: probes, steering, events. See
 * health.h; docs/probing.md explains steering and failover.
 *
 * Failover timing: the prober calls on_state() from xb_probe_process() the
 * moment a tunnel's state changes (for a blackhole: detect missed probes
 * after its onset); on_state() re-picks every path and replaces the routes
 * that change before it returns. Nothing waits for the one-second timer,
 * which only re-weighs `best' paths by score and looks for anomalies.
 */
#include "gateway/health/health.h"
#include "gateway/health/alert.h"
#include "gateway/health/avail.h"
#include "gateway/kernel/conntrack.h"
#include "gateway/health/fleet.h"
#include "common/clock.h"
#include "common/log.h"
#include "probe/probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define RING 1024		/* probe results kept for `xborderctl probe' */
#define NO_TUNNEL SIZE_MAX	/* a kept result whose tunnel went away */
/* How often the tunnels' counters are read for the passive signals: a
 * change is placed at most this late (gateway/health/passive.h), so a tunnel
 * that stopped receiving less than this before a round left is judged
 * by the probes alone for that round. */
#define SAMPLE_MS 100

struct result {
	uint64_t seq, at_ns;	/* at: wall clock */
	size_t tunnel;
	unsigned target;
	uint64_t round, rtt_ns;
	bool ok, late;
	const char *error;	/* static string */
};

/* Per plan path, kept by name across reloads: how often it had a usable
 * tunnel over the last hour (a rule's availability is its path's). */
struct pathav {
	char *name;
	struct xb_avail av;
};

/* Per policy tunnel. */
struct tun {
	struct xb_probe_tunnel_cfg cfg;
	bool probed;			/* has targets: in the prober */
	bool rtt_anomaly, loss_anomaly, below_slo;	/* raised, not yet cleared */
	struct xb_passive pv;		/* the data plane's counters */
	uint64_t passive_downs;		/* downs the data plane confirmed at a first miss */
};

struct xb_health {
	struct xb_health_ops ops;
	const struct xb_policy *p;	/* as last set; NULL before */
	struct xb_plan plan;		/* shallow: the caller's arrays */
	struct xb_probe *probe;
	int epfd, timerfd, samplefd;
	struct tun *tun;
	struct xb_steer_tunnel *st;	/* parallel to tun */
	size_t n_tun;
	size_t *active;			/* per plan path */
	size_t n_active;
	struct xb_conntrack ct;
	bool ct_open;
	struct result ring[RING];
	uint64_t seq;
	uint64_t swaps;
	struct xb_alert *alert;
	/* Devices: who is connected now (sorted keys), connects and
	 * disconnects per minute, the anomalies raised. */
	struct xb_fleet fleet;
	uint8_t (*dev_keys)[XB_FLEET_KEY_LEN];
	size_t n_dev;
	bool dev_anomaly[2];
	struct pathav *pav;		/* parallel to active */
	bool *rule_below;		/* per policy rule: below its SLO, raised */
	size_t n_rules;
};

/* ---- events ---- */

static json_t *figures(const struct xb_health *h, size_t ti, uint64_t now)
{
	struct xb_pstats_summary s;

	if (!h->tun[ti].probed || xb_probe_stats(h->probe, h->tun[ti].cfg.name, -1, now, &s) < 0)
		return json_null();
	return json_pack("{s:f, s:f, s:f, s:f, s:f}", "rtt_ms", s.rtt_mean_ns / 1e6,
			 "loss_pct", s.loss_pct, "jitter_ms", s.jitter_ns / 1e6,
			 "availability", s.availability, "score", isfinite(s.score) ? s.score : -1.0);
}

/* Logged, then handed to the command and webhook (if configured). */
static void emit(struct xb_health *h, json_t *ev)
{
	char *line;

	if (!ev)
		return;
	json_object_set_new(ev, "time", json_integer((json_int_t)time(NULL)));
	if ((line = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS))) {
		log_info("event %s", line);
		free(line);
	}
	if (h->alert)
		xb_alert_event(h->alert, ev);
	json_decref(ev);
}

/* ---- steering ---- */

static void ranks(struct xb_health *h, uint64_t now)
{
	for (size_t i = 0; i < h->n_tun; i++) {
		struct tun *t = &h->tun[i];
		struct xb_steer_tunnel *st = &h->st[i];
		struct xb_pstats_summary s;

		st->rank = XB_RANK_UNPROVEN;
		st->score = INFINITY;
		if (!t->probed || xb_probe_stats(h->probe, t->cfg.name, -1, now, &s) < 0)
			continue;
		st->score = s.score;
		if (s.state == XB_PST_UP)
			st->rank = XB_RANK_UP;
		else if (s.state == XB_PST_DEGRADED)
			st->rank = XB_RANK_DEGRADED;
		else if (s.transitions)
			st->rank = XB_RANK_DOWN;
	}
}

/* Flows masqueraded to the old tunnel's address keep that mapping in
 * conntrack; deleted, their next packets are NATed afresh out of the new
 * tunnel (docs/probing.md: what that means for open connections). */
static void cut_nat(struct xb_health *h, size_t ti)
{
	const struct xb_tunnel *t = &h->p->tunnels[ti];
	long n4 = 0, n6 = 0;

	if (!t->snat)
		return;
	if (!h->ct_open && xb_conntrack_open(&h->ct) == 0)
		h->ct_open = true;
	if (!h->ct_open)
		return;
	if (t->has_address4)
		n4 = xb_conntrack_cut(&h->ct, AF_INET, t->address4.addr);
	if (t->has_address6)
		n6 = xb_conntrack_cut(&h->ct, AF_INET6, t->address6.addr);
	if (n4 > 0 || n6 > 0)
		log_info("tunnel %s: %ld conntrack entries NATed to its address deleted", t->name,
			 (n4 > 0 ? n4 : 0) + (n6 > 0 ? n6 : 0));
}

static const char *tname(const struct xb_health *h, size_t ti)
{
	return ti == XB_STEER_NONE ? "none" : h->p->tunnels[ti].name;
}

/* One route replacement of a steering pass, told after all of them. */
struct move {
	size_t pi, from, to;
	int err;
	uint64_t took;		/* ns from the decision to the route replaced */
};

static void swap(struct xb_health *h, struct move *m, uint64_t since)
{
	const struct xb_path *pa = &h->plan.paths[m->pi];

	m->from = h->active[m->pi];
	m->err = h->ops.path_live(h->ops.ctx, pa, m->to);
	m->took = clock_mono_ns() - since;
	h->active[m->pi] = m->to;
	h->swaps++;
}

static void told(struct xb_health *h, const struct move *m, const char *why)
{
	const struct xb_path *pa = &h->plan.paths[m->pi];

	if (m->err < 0)
		log_warnx("path %s: moving the route from %s to %s: %s", pa->name,
			  tname(h, m->from), tname(h, m->to), strerror(-m->err));
	else
		log_info("path %s: route moved from %s to %s (%s; %.3f ms after the decision)",
			 pa->name, tname(h, m->from), tname(h, m->to), why, m->took / 1e6);
	emit(h, json_pack("{s:s, s:s, s:s, s:s, s:I}", "event", "path", "path", pa->name,
			  "from", tname(h, m->from), "to", tname(h, m->to),
			  "table", (json_int_t)pa->table));
}

/* Re-pick every path; replace the routes that change. Every route moves
 * before conntrack is cut and anything is logged or sent: a conntrack dump
 * or an event (the notify command's fork, the webhook's socket) cost 5-7 ms
 * per path before the next path got its turn. */
static void steer(struct xb_health *h, const char *why, uint64_t since)
{
	struct move moves[XB_PATHS_MAX];
	size_t n = 0;

	if (!h->p || !h->active || h->n_tun != h->p->n_tunnels)
		return;
	ranks(h, clock_mono_ns());
	for (size_t i = 0; i < h->n_active && i < h->plan.n_paths && n < XB_PATHS_MAX; i++) {
		size_t to = xb_steer_pick(&h->plan.paths[i], h->st, h->active[i]);

		if (to == h->active[i])
			continue;
		moves[n] = (struct move){ .pi = i, .to = to };
		swap(h, &moves[n++], since);
	}
	for (size_t k = 0; k < n; k++)
		if (moves[k].from != XB_STEER_NONE)
			cut_nat(h, moves[k].from);
	for (size_t k = 0; k < n; k++)
		told(h, &moves[k], why);
}

/* For `xborderctl probe NAME' only: the prober reports indices. */
static ssize_t tunnel_index(const struct xb_health *h, const char *name)
{
	for (size_t i = 0; i < h->n_tun; i++)
		if (!strcmp(h->tun[i].cfg.name, name))
			return (ssize_t)i;
	return -1;
}

/* ---- passive signals: the tunnels' own counters ---- */

static bool can_sample(const struct xb_health *h)
{
	return h->p && h->n_tun == h->p->n_tunnels;
}

static void sample(struct xb_health *h, size_t ti, uint64_t now)
{
	struct xb_passive_counters c;

	if (!can_sample(h) || !h->tun[ti].probed)
		return;
	h->ops.counters(h->ops.ctx, ti, &c);
	xb_passive_sample(&h->tun[ti].pv, &c, now);
}

static void on_sample(struct xb_health *h)
{
	uint64_t n;

	if (read(h->samplefd, &n, sizeof(n)) < 0)
		return;
	for (size_t i = 0; i < h->n_tun; i++)
		sample(h, i, clock_mono_ns());
}

/* ---- prober callbacks ---- */

static void on_result(void *ctx, const struct xb_probe_result *r)
{
	struct xb_health *h = ctx;
	struct result *x;

	if (r->tunnel >= h->n_tun)
		return;
	x = &h->ring[h->seq % RING];
	*x = (struct result){ .seq = h->seq++, .at_ns = clock_real_ns(), .tunnel = r->tunnel,
			      .target = r->target, .round = r->round, .rtt_ns = r->rtt_ns,
			      .ok = r->ok, .late = r->late, .error = r->error };
}

static void on_state(void *ctx, size_t ti, enum xb_pstate from, enum xb_pstate to)
{
	struct xb_health *h = ctx;
	uint64_t now = clock_mono_ns();
	const char *tunnel;
	char why[96];

	if (ti >= h->n_tun)
		return;
	tunnel = h->tun[ti].cfg.name;
	log_info("tunnel %s: %s -> %s", tunnel, xb_pstate_name(from), xb_pstate_name(to));
	snprintf(why, sizeof(why), "%s %s", tunnel, xb_pstate_name(to));
	steer(h, why, now);	/* routes first, events after */
	/* DNS follows: queries waiting on a dead tunnel's resolvers go on to
	 * the next tunnel now; a live one's resolvers are asked again at
	 * once, not after their down time. */
	if ((to == XB_PST_DOWN || to == XB_PST_UP) && h->ops.tunnel_state)
		h->ops.tunnel_state(h->ops.ctx, ti, to == XB_PST_UP);
	emit(h, json_pack("{s:s, s:s, s:s, s:s, s:o}", "event", "state", "tunnel", tunnel,
			  "from", xb_pstate_name(from), "to", xb_pstate_name(to),
			  "figures", figures(h, ti, now)));
}

/* A round of tunnel's went unanswered: down at once if its data plane has
 * received nothing since the round left (gateway/health/passive.h). */
static bool on_silent(void *ctx, size_t ti, uint64_t since)
{
	struct xb_health *h = ctx;
	uint64_t now = clock_mono_ns();
	struct tun *t;

	if (ti >= h->n_tun)
		return false;
	t = &h->tun[ti];
	sample(h, ti, now);	/* judge on a reading taken after the miss */
	if (xb_passive_judge(&t->pv, since) != XB_PASSIVE_SILENT)
		return false;
	t->passive_downs++;
	log_info("tunnel %s: probe round missed and nothing received since it left %.0f ms ago%s: "
		 "down without waiting for more misses", t->cfg.name, (now - since) / 1e6,
		 t->pv.no_session ? " (no WireGuard session)" :
		 t->pv.ka_down ? " (GRE keepalives unanswered)" : "");
	return true;
}

/* ---- the one-second timer: best paths by score, anomalies, the SLO ---- */

static void edge(struct xb_health *h, size_t ti, bool *flag, bool now_on, const char *event,
		 uint64_t now)
{
	if (now_on == *flag)
		return;
	*flag = now_on;
	emit(h, json_pack("{s:s, s:s, s:b, s:o}", "event", event, "tunnel", h->tun[ti].cfg.name,
			  "active", now_on, "figures", figures(h, ti, now)));
}

/* The SLO that applies: the tunnel's or rule's own, else the gateway's. */
static double slo_of(const struct xb_health *h, double own)
{
	return own >= 0 ? own : h->p ? h->p->gateway.slo : 0;
}

static bool below(double slo, double availability)
{
	return slo > 0 && availability >= 0 && availability * 100 < slo;
}

static void watch(struct xb_health *h, uint64_t now)
{
	for (size_t i = 0; h->p && i < h->n_tun && i < h->p->n_tunnels; i++) {
		double slo = slo_of(h, h->p->tunnels[i].slo);

		struct tun *t = &h->tun[i];
		struct xb_pstats_summary s;

		if (!t->probed || xb_probe_stats(h->probe, t->cfg.name, -1, now, &s) < 0)
			continue;
		edge(h, i, &t->rtt_anomaly, s.rtt_anomaly, "rtt_anomaly", now);
		edge(h, i, &t->loss_anomaly, s.loss_anomaly, "loss_anomaly", now);
		edge(h, i, &t->below_slo, below(slo, s.availability), "slo", now);
	}
}

/* Each path: usable this second when its route uses a tunnel not down.
 * Each rule: its path's availability against its SLO. */
static void paths(struct xb_health *h, uint64_t now)
{
	const struct xb_policy *p = h->p;

	for (size_t i = 0; i < h->n_active; i++)
		xb_avail_add(&h->pav[i].av, now, h->active[i] != XB_STEER_NONE &&
			     h->st[h->active[i]].rank != XB_RANK_DOWN);
	for (size_t r = 0; p && h->plan.rule_path && r < h->n_rules && r < p->n_rules; r++) {
		int pi = h->plan.rule_path[r];
		double slo = slo_of(h, p->rules[r].slo), a;
		bool now_below;

		if (pi < 0 || (size_t)pi >= h->n_active)
			continue;
		a = xb_avail_get(&h->pav[pi].av, now);
		now_below = below(slo, a);
		if (now_below == h->rule_below[r] || !p->rules[r].name)
			continue;
		h->rule_below[r] = now_below;
		emit(h, json_pack("{s:s, s:s, s:s, s:b, s:f, s:f}", "event", "slo", "rule",
				  p->rules[r].name, "path", h->pav[pi].name, "active", now_below,
				  "availability", a, "slo", slo));
	}
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, XB_FLEET_KEY_LEN);
}

/* The device interface's peers with a session now, sorted; NULL when the
 * interface cannot be read (*n then 0 and the fleet left as it is). */
static uint8_t (*connected(struct xb_health *h, int64_t wall, size_t *n))[XB_FLEET_KEY_LEN]
{
	uint8_t (*k)[XB_FLEET_KEY_LEN];
	struct wg_conf c;

	*n = 0;
	if (h->ops.devices(h->ops.ctx, &c))
		return NULL;
	if ((k = calloc(c.n_peers + 1, XB_FLEET_KEY_LEN))) {
		for (size_t i = 0; i < c.n_peers; i++) {
			int64_t hs = c.peers[i].last_handshake_sec;

			if (hs && wall - hs <= XB_FLEET_CONNECTED_S)
				memcpy(k[(*n)++], c.peers[i].public_key, XB_FLEET_KEY_LEN);
		}
		qsort(k, *n, XB_FLEET_KEY_LEN, cmp_key);
	}
	wg_conf_free(&c);
	return k;
}

static json_t *fleet_json(const struct xb_health *h, enum xb_fleet_kind kind, uint64_t now)
{
	struct xb_fleet_anomaly a;

	xb_fleet_judge(&h->fleet, now, kind, &a);
	return json_pack("{s:b, s:b, s:f, s:f, s:f, s:f, s:I, s:I}", "judged", a.judged,
			 "anomaly", a.anomaly, "z", a.z, "last_5min", a.recent, "mean_5min", a.mean,
			 "sd_5min", a.sd, "windows", (json_int_t)a.windows,
			 "total", (json_int_t)h->fleet.total[kind]);
}

/* Connects and disconnects since the last second; an event when either
 * kind's anomaly is raised or cleared. */
static void fleet(struct xb_health *h, uint64_t now)
{
	size_t n;
	uint8_t (*k)[XB_FLEET_KEY_LEN] = connected(h, (int64_t)time(NULL), &n);
	unsigned conn, disc;

	if (!k)
		return;
	xb_fleet_diff((const uint8_t (*)[XB_FLEET_KEY_LEN])h->dev_keys, h->n_dev,
		      (const uint8_t (*)[XB_FLEET_KEY_LEN])k, n, &conn, &disc);
	xb_fleet_add(&h->fleet, now, XB_FLEET_CONNECTS, conn);
	xb_fleet_add(&h->fleet, now, XB_FLEET_DISCONNECTS, disc);
	free(h->dev_keys);
	h->dev_keys = k;
	h->n_dev = n;
	for (int kind = XB_FLEET_CONNECTS; kind <= XB_FLEET_DISCONNECTS; kind++) {
		struct xb_fleet_anomaly a;

		xb_fleet_judge(&h->fleet, now, kind, &a);
		if (a.anomaly == h->dev_anomaly[kind])
			continue;
		h->dev_anomaly[kind] = a.anomaly;
		emit(h, json_pack("{s:s, s:s, s:b, s:I, s:o}", "event", "device_anomaly", "kind",
				  xb_fleet_kind_name(kind), "active", a.anomaly,
				  "connected", (json_int_t)n, "figures", fleet_json(h, kind, now)));
	}
}

static void on_timer(struct xb_health *h)
{
	uint64_t n, now = clock_mono_ns();

	if (read(h->timerfd, &n, sizeof(n)) < 0)
		return;
	steer(h, "scores", now);
	watch(h, now);
	paths(h, now);
	fleet(h, now);
	if (h->alert)
		xb_alert_tick(h->alert);
}

/* ---- life ---- */

static int watch_fd(int epfd, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

struct xb_health *xb_health_new(const struct xb_health_ops *ops)
{
	struct xb_health *h = calloc(1, sizeof(*h));
	struct xb_probe_cbs cbs = { .result = on_result, .state = on_state, .silent = on_silent,
				    .ctx = h };
	struct itimerspec one = { { 1, 0 }, { 1, 0 } };
	struct itimerspec tick = { { 0, SAMPLE_MS * 1000000L }, { 0, SAMPLE_MS * 1000000L } };

	if (!h)
		return NULL;
	h->ops = *ops;
	h->epfd = h->timerfd = h->samplefd = -1;
	xb_fleet_init(&h->fleet);
	if (!(h->probe = xb_probe_new(&cbs)) || (h->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (h->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(h->timerfd, 0, &one, NULL) < 0 ||
	    (h->samplefd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(h->samplefd, 0, &tick, NULL) < 0 ||
	    watch_fd(h->epfd, xb_probe_fd(h->probe), h->probe) < 0 ||
	    watch_fd(h->epfd, h->timerfd, &h->timerfd) < 0 ||
	    watch_fd(h->epfd, h->samplefd, &h->samplefd) < 0 ||
	    !(h->alert = xb_alert_new(h->epfd, NULL))) {
		log_warn("tunnel health: setting up");
		xb_health_free(h);
		return NULL;
	}
	return h;
}

static void free_pav(struct pathav *pav, size_t n)
{
	for (size_t i = 0; pav && i < n; i++)
		free(pav[i].name);
	free(pav);
}

void xb_health_free(struct xb_health *h)
{
	if (!h)
		return;
	xb_alert_free(h->alert);
	xb_probe_free(h->probe);
	if (h->ct_open)
		xb_conntrack_close(&h->ct);
	if (h->timerfd >= 0)
		close(h->timerfd);
	if (h->samplefd >= 0)
		close(h->samplefd);
	if (h->epfd >= 0)
		close(h->epfd);
	free(h->tun);
	free(h->st);
	free_pav(h->pav, h->n_active);
	free(h->rule_below);
	free(h->active);
	free(h->dev_keys);
	free(h);
}

/* The prober's view of policy tunnel t (index ti): its targets, or ICMP to the
 * partner's inner addresses. */
static bool probe_cfg(const struct xb_tunnel *t, size_t ti, struct xb_probe_tunnel_cfg *c)
{
	const char *err;

	xb_probe_tunnel_defaults(c);
	c->id = ti;
	snprintf(c->name, sizeof(c->name), "%s", t->name);
	snprintf(c->ifname, sizeof(c->ifname), "%s", t->ifname);
	c->interval_ns = (uint64_t)t->probe_interval_ms * 1000000ULL;
	if (c->stats.loss_ns < c->interval_ns)
		c->stats.loss_ns = c->interval_ns;
	for (size_t i = 0; i < t->n_probe_targets && c->n_targets < XB_PROBE_MAX_TARGETS; i++)
		if (xb_probe_target_parse(t->probe_targets[i], &c->targets[c->n_targets], &err))
			c->n_targets++;
	if (!t->n_probe_targets && t->has_peer4) {
		struct sockaddr_in *a = (struct sockaddr_in *)&c->targets[c->n_targets++].addr;
		a->sin_family = AF_INET;
		a->sin_addr = t->peer4;
	}
	if (!t->n_probe_targets && t->has_peer6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->targets[c->n_targets++].addr;
		a->sin6_family = AF_INET6;
		a->sin6_addr = t->peer6;
	}
	return c->n_targets > 0;
}

static bool same_target(const struct tun *a, const struct tun *b, unsigned i)
{
	char x[512], y[512];

	return i < a->cfg.n_targets && i < b->cfg.n_targets &&
	       !strcmp(xb_probe_target_str(&a->cfg.targets[i], x, sizeof(x)),
		       xb_probe_target_str(&b->cfg.targets[i], y, sizeof(y)));
}

/* The kept results follow their tunnel into the new array tun[0..n) (a
 * reload may reorder tunnels); those whose tunnel or target is gone are
 * dropped, so `xborderctl probe' never shows one tunnel's results under
 * another's name. */
static void remap_ring(struct xb_health *h, const struct tun *tun, size_t n)
{
	for (size_t i = 0; i < RING && i < h->seq; i++) {
		struct result *r = &h->ring[i];
		size_t to = NO_TUNNEL;

		if (r->tunnel >= h->n_tun)
			continue;
		for (size_t j = 0; j < n && to == NO_TUNNEL; j++)
			if (!strcmp(tun[j].cfg.name, h->tun[r->tunnel].cfg.name) &&
			    same_target(&h->tun[r->tunnel], &tun[j], r->target))
				to = j;
		r->tunnel = to;
	}
}

static int set_tunnels(struct xb_health *h, const struct xb_policy *p)
{
	struct tun *tun = calloc(p->n_tunnels + 1, sizeof(*tun));
	struct xb_steer_tunnel *st = calloc(p->n_tunnels + 1, sizeof(*st));
	struct xb_probe_tunnel_cfg *cfgs = calloc(p->n_tunnels + 1, sizeof(*cfgs));
	size_t n = 0;
	const char *err = NULL;

	if (!tun || !st || !cfgs)
		goto fail;
	for (size_t i = 0; i < p->n_tunnels; i++) {
		memset(&cfgs[n], 0, sizeof(cfgs[n]));
		if ((tun[i].probed = probe_cfg(&p->tunnels[i], i, &tun[i].cfg)))
			cfgs[n++] = tun[i].cfg;
		else
			log_info("tunnel %s: not probed (no probe_targets, no peer4/peer6): its "
				 "health is unknown and it is always usable", p->tunnels[i].name);
	}
	if (xb_probe_set(h->probe, cfgs, n, &err) < 0) {
		log_warnx("tunnel health: %s", err ? err : "cannot configure the prober");
		goto fail;
	}
	free(cfgs);
	remap_ring(h, tun, p->n_tunnels);
	free(h->tun);
	free(h->st);
	h->tun = tun;
	h->st = st;
	h->n_tun = p->n_tunnels;
	return 0;
fail:
	free(tun);
	free(st);
	free(cfgs);
	return -1;
}

/* The paths' availability for plan: a path that stays (by name) keeps its
 * hour. NULL on no memory. */
static struct pathav *new_pav(const struct xb_health *h, const struct xb_plan *plan)
{
	struct pathav *pav = calloc(plan->n_paths + 1, sizeof(*pav));

	for (size_t i = 0; pav && i < plan->n_paths; i++) {
		xb_avail_init(&pav[i].av);
		for (size_t j = 0; j < h->n_active; j++)
			if (!strcmp(h->pav[j].name, plan->paths[i].name))
				pav[i].av = h->pav[j].av;
		if (!(pav[i].name = strdup(plan->paths[i].name))) {
			free_pav(pav, i);
			return NULL;
		}
	}
	return pav;
}

int xb_health_set(struct xb_health *h, const struct xb_policy *p, const struct xb_plan *plan)
{
	size_t *active = calloc(plan->n_paths + 1, sizeof(*active));
	struct pathav *pav = new_pav(h, plan);
	bool *rule_below = calloc(p->n_rules + 1, sizeof(*rule_below));

	if (!active || !pav || !rule_below || set_tunnels(h, p) < 0) {
		free(active);
		free_pav(pav, plan->n_paths);
		free(rule_below);
		return -1;
	}
	ranks(h, clock_mono_ns());
	for (size_t i = 0; i < plan->n_paths; i++)
		active[i] = xb_steer_pick(&plan->paths[i], h->st, XB_STEER_NONE);
	free(h->active);
	free_pav(h->pav, h->n_active);
	free(h->rule_below);
	h->active = active;
	h->pav = pav;
	h->n_active = plan->n_paths;
	h->rule_below = rule_below;
	h->n_rules = p->n_rules;
	h->p = p;
	h->plan = *plan;
	xb_alert_set(h->alert, (const char *const *)p->gateway.notify_command,
		     p->gateway.n_notify_command, p->gateway.notify, p->gateway.n_notify);
	return 0;
}

int xb_health_fd(const struct xb_health *h)
{
	return h->epfd;
}

void xb_health_process(struct xb_health *h)
{
	struct epoll_event ev[8];
	int n = epoll_wait(h->epfd, ev, 8, 0);

	for (int i = 0; i < n; i++) {
		void *tag = ev[i].data.ptr;

		if (tag == h->probe)
			xb_probe_process(h->probe, clock_mono_ns());
		else if (tag == &h->timerfd)
			on_timer(h);
		else if (tag == &h->samplefd)
			on_sample(h);
		else
			xb_alert_process(h->alert, tag);
	}
}

size_t xb_health_active(const struct xb_health *h, const struct xb_path *pa)
{
	size_t pi = pa->id - 1;

	if (h && h->active && pi < h->n_active)
		return h->active[pi];
	return pa->n_tunnels ? pa->tunnels[0] : XB_STEER_NONE;
}

size_t xb_health_order(const struct xb_health *h, const struct xb_path *pa, size_t *out)
{
	size_t pi = pa->id - 1;	/* a made-up path has id 0: no current tunnel */

	if (!h || !h->st || !h->p || h->n_tun != h->p->n_tunnels) {
		for (size_t i = 0; i < pa->n_tunnels; i++)
			out[i] = pa->tunnels[i];
		return pa->n_tunnels;
	}
	return xb_steer_order(pa, h->st, h->active && pi < h->n_active ? h->active[pi]
								   : XB_STEER_NONE, out);
}

uint64_t xb_health_swaps(const struct xb_health *h)
{
	return h ? h->swaps : 0;
}

json_t *xb_health_devices_json(const struct xb_health *h)
{
	uint64_t now = clock_mono_ns();

	if (!h)
		return NULL;
	return json_pack("{s:I, s:o, s:o}", "connected", (json_int_t)h->n_dev, "connects",
			 fleet_json(h, XB_FLEET_CONNECTS, now), "disconnects",
			 fleet_json(h, XB_FLEET_DISCONNECTS, now));
}

/* ---- for xborderctl ---- */

static json_t *active_for(const struct xb_health *h, size_t ti)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < h->n_active && i < h->plan.n_paths; i++)
		if (h->active[i] == ti)
			json_array_append_new(a, json_string(h->plan.paths[i].name));
	return a;
}

/* The SLO that applies (per cent, 0: off) and whether the hour meets it
 * (null while off or nothing is known). */
static void slo_json(json_t *o, double slo, double availability)
{
	json_object_set_new(o, "slo", json_real(slo));
	json_object_set_new(o, "slo_met", slo > 0 && availability >= 0 ?
			    json_boolean(!below(slo, availability)) : json_null());
}

json_t *xb_health_rule_json(const struct xb_health *h, size_t ri)
{
	const struct xb_policy *p = h ? h->p : NULL;
	int pi;
	json_t *o;

	if (!p || ri >= p->n_rules || !h->plan.rule_path)
		return NULL;
	pi = h->plan.rule_path[ri];
	if (pi < 0 || (size_t)pi >= h->n_active)
		return NULL;
	o = json_pack("{s:f}", "availability", xb_avail_get(&h->pav[pi].av, clock_mono_ns()));
	if (o)
		slo_json(o, slo_of(h, p->rules[ri].slo),
			 json_real_value(json_object_get(o, "availability")));
	return o;
}

/* Each monitor's own state: one dead monitor does not take the tunnel down. */
static json_t *targets_json(const struct xb_health *h, size_t ti, uint64_t now)
{
	const struct tun *t = &h->tun[ti];
	json_t *a = json_array();
	char spec[512];

	for (unsigned i = 0; a && i < t->cfg.n_targets; i++) {
		struct xb_pstats_summary s;

		if (xb_probe_stats(h->probe, t->cfg.name, (int)i, now, &s) < 0)
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s, s:f}", "target",
			xb_probe_target_str(&t->cfg.targets[i], spec, sizeof(spec)),
			"state", xb_pstate_name(s.state), "loss_pct", s.loss_pct));
	}
	return a;
}

/* What the data plane says now: received since the last probe round's
 * interval began (verdict over the last interval), and the ages of the
 * last counter changes (-1: no counters). */
static json_t *passive_json(const struct tun *t, uint64_t now)
{
	const struct xb_passive *pv = &t->pv;
	uint64_t since = now > t->cfg.interval_ns ? now - t->cfg.interval_ns : 0;

	return json_pack("{s:s, s:f, s:f, s:b, s:b, s:I}", "verdict",
		xb_passive_verdict_name(xb_passive_judge(pv, since)),
		"rx_age_ms", pv->have ? (now - pv->rx_at) / 1e6 : -1.0,
		"tx_age_ms", pv->have ? (now - pv->tx_at) / 1e6 : -1.0,
		"no_session", pv->no_session, "keepalive_down", pv->ka_down,
		"downs", (json_int_t)t->passive_downs);
}

json_t *xb_health_tunnel_json(const struct xb_health *h, size_t ti)
{
	struct xb_pstats_summary s;
	uint64_t now = clock_mono_ns();
	json_t *o;

	if (!h || ti >= h->n_tun)
		return NULL;
	if (!h->tun[ti].probed || xb_probe_stats(h->probe, h->tun[ti].cfg.name, -1, now, &s) < 0)
		return json_pack("{s:s, s:s, s:o}", "probe_state", "unprobed", "rank",
				 xb_rank_name(h->st[ti].rank), "active_for", active_for(h, ti));
	o = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:o}",
		"probe_state", xb_pstate_name(s.state), "rank", xb_rank_name(h->st[ti].rank),
		"interval_ms", (json_int_t)(h->tun[ti].cfg.interval_ns / 1000000),
		"rtt_last_ms", s.rtt_last_ns / 1e6, "rtt_min_ms", s.rtt_min_ns / 1e6,
		"rtt_mean_ms", s.rtt_mean_ns / 1e6, "rtt_p95_ms", s.rtt_p95_ns / 1e6,
		"jitter_ms", s.jitter_ns / 1e6, "loss_pct", s.loss_pct,
		"availability", s.availability, "score", isfinite(s.score) ? s.score : -1.0,
		"probes_sent", (json_int_t)s.sent, "transitions", (json_int_t)s.transitions,
		"active_for", active_for(h, ti));
	/* Why a blackhole takes the probes it takes: the miss run for fast
	 * down now, and the background miss rate that set it. */
	if (o) {
		json_object_set_new(o, "detect", json_integer(s.detect));
		json_object_set_new(o, "bg_loss", json_real(s.bg_loss));
		json_object_set_new(o, "targets", targets_json(h, ti, now));
		json_object_set_new(o, "passive", passive_json(&h->tun[ti], now));
		slo_json(o, slo_of(h, h->p->tunnels[ti].slo), s.availability);
	}
	return o;
}

static json_t *result_json(const struct xb_health *h, const struct result *r)
{
	char spec[512];
	const struct tun *t = &h->tun[r->tunnel];

	if (r->target < t->cfg.n_targets)
		xb_probe_target_str(&t->cfg.targets[r->target], spec, sizeof(spec));
	else
		snprintf(spec, sizeof(spec), "#%u", r->target);
	return json_pack("{s:I, s:I, s:s, s:I, s:b, s:b, s:f, s:s?}", "seq", (json_int_t)r->seq,
		"time_ms", (json_int_t)(r->at_ns / 1000000), "target", spec, "round",
		(json_int_t)r->round, "ok", r->ok, "late", r->late,
		"rtt_ms", r->ok || r->late ? r->rtt_ns / 1e6 : -1.0, "error", r->ok ? NULL : r->error);
}

json_t *xb_health_results(const struct xb_health *h, const char *name, uint64_t since,
			  const char **error)
{
	ssize_t ti = h ? tunnel_index(h, name) : -1;
	uint64_t first = h && h->seq > RING ? h->seq - RING : 0;
	json_t *a;

	if (ti < 0 || !h->tun[ti].probed) {
		*error = ti < 0 ? "no such tunnel" : "the tunnel is not probed (no targets)";
		return NULL;
	}
	if (!(a = json_array()))
		return NULL;
	for (uint64_t s = since > first ? since : first; s < h->seq; s++) {
		const struct result *r = &h->ring[s % RING];

		if (r->tunnel == (size_t)ti)
			json_array_append_new(a, result_json(h, r));
	}
	return json_pack("{s:I, s:I, s:o}", "next", (json_int_t)h->seq, "interval_ms",
			 (json_int_t)(h->tun[ti].cfg.interval_ns / 1000000), "results", a);
}

json_t *xb_health_events(const struct xb_health *h)
{
	return h && h->alert ? xb_alert_recent(h->alert) : json_array();
}
