/* Prometheus metrics; see metrics.h. The figures come from the same JSON
 * that `xborderctl' shows (health.c, dns_service.c), so both agree. */
#include "gateway/metrics.h"
#include "gateway/daemon.h"
#include "gateway/health/health.h"
#include "gateway/metrics_devices.h"
#include "gateway/status_page.h"
#include "common/log.h"

#include <microhttpd.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct xb_metrics {
	struct MHD_Daemon *mhd;
	struct xb_daemon *d;
	char *addr;		/* as in the policy */
	int fd;			/* libmicrohttpd's epoll fd */
	/* The status page's samples, one series per tunnel by name (a reload
	 * keeps those of tunnels that stay). */
	struct xb_status_series *ser;
	size_t n_ser;
	time_t sampled;
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* One gauge per tunnel from the health figures (key k of its JSON). */
static void tunnel_gauge(FILE *f, struct xb_daemon *d, const char *name, const char *k,
			 const char *help)
{
	family(f, name, "gauge", help);
	for (size_t i = 0; i < d->policy->n_tunnels; i++) {
		json_t *o = xb_health_tunnel_json(d->health, i);

		if (o && json_object_get(o, k))
			fprintf(f, "%s{tunnel=\"%s\"} %.6g\n", name, d->policy->tunnels[i].name, num(o, k));
		json_decref(o);
	}
}

static void tunnel_states(FILE *f, struct xb_daemon *d)
{
	static const char *const states[] = { "up", "degraded", "down", "unprobed" };

	family(f, "xborder_tunnel_state", "gauge", "1 for the tunnel's probe state");
	for (size_t i = 0; i < d->policy->n_tunnels; i++) {
		json_t *o = xb_health_tunnel_json(d->health, i);
		const char *st = json_string_value(json_object_get(o, "probe_state"));

		for (size_t k = 0; st && k < 4; k++)
			fprintf(f, "xborder_tunnel_state{tunnel=\"%s\",state=\"%s\"} %d\n",
				d->policy->tunnels[i].name, states[k], !strcmp(st, states[k]));
		json_decref(o);
	}
}

/* 1 or 0 per tunnel for a boolean of its health; null (unknown) left out. */
static void tunnel_flag(FILE *f, struct xb_daemon *d, const char *name, const char *k,
			const char *help)
{
	family(f, name, "gauge", help);
	for (size_t i = 0; i < d->policy->n_tunnels; i++) {
		json_t *o = xb_health_tunnel_json(d->health, i), *v = json_object_get(o, k);

		if (json_is_boolean(v))
			fprintf(f, "%s{tunnel=\"%s\"} %d\n", name, d->policy->tunnels[i].name,
				json_is_true(v));
		json_decref(o);
	}
}

static void passive_downs(FILE *f, struct xb_daemon *d)
{
	family(f, "xborder_tunnel_passive_downs_total", "counter",
	       "downs at the first missed round: nothing received on the tunnel since it left");
	for (size_t i = 0; i < d->policy->n_tunnels; i++) {
		json_t *o = xb_health_tunnel_json(d->health, i);
		json_t *v = json_object_get(json_object_get(o, "passive"), "downs");

		if (json_is_integer(v))
			fprintf(f, "xborder_tunnel_passive_downs_total{tunnel=\"%s\"} %lld\n",
				d->policy->tunnels[i].name, (long long)json_integer_value(v));
		json_decref(o);
	}
}

/* Per named rule with a path: its availability and SLO. */
static void rules(FILE *f, struct xb_daemon *d)
{
	static const char *const names[] = { "xborder_rule_availability",
		"xborder_rule_slo_target_percent", "xborder_rule_slo_met" };
	static const char *const help[] = {
		"the rule's path had a usable tunnel, share of seconds over the last hour (-1: none yet)",
		"availability target of the rule (its own slo, else gateway.slo; 0: off)",
		"1 when the last hour's availability meets the rule's SLO" };
	static const char *const keys[] = { "availability", "slo", "slo_met" };

	for (size_t k = 0; k < 3; k++) {
		family(f, names[k], "gauge", help[k]);
		for (size_t i = 0; i < d->policy->n_rules; i++) {
			json_t *o = xb_health_rule_json(d->health, i), *v = json_object_get(o, keys[k]);

			if (d->policy->rules[i].name && (json_is_number(v) || json_is_boolean(v)))
				fprintf(f, "%s{rule=\"%s\"} %.6g\n", names[k], d->policy->rules[i].name,
					json_is_boolean(v) ? (double)json_is_true(v) : json_number_value(v));
			json_decref(o);
		}
	}
}

/* Devices with a session, connects and disconnects, and their anomaly. */
static void devices(FILE *f, struct xb_daemon *d)
{
	static const char *const kinds[] = { "connects", "disconnects" };
	json_t *o = xb_health_devices_json(d->health);

	if (!o)
		return;
	family(f, "xborder_devices_connected", "gauge", "devices with a WireGuard session");
	fprintf(f, "xborder_devices_connected %.0f\n", num(o, "connected"));
	family(f, "xborder_device_events_total", "counter", "devices connecting and disconnecting");
	for (size_t k = 0; k < 2; k++)
		fprintf(f, "xborder_device_events_total{kind=\"%s\"} %.0f\n", kinds[k],
			num(json_object_get(o, kinds[k]), "total"));
	family(f, "xborder_device_anomaly", "gauge",
	       "1 when the last 5 minutes' count is beyond 3.5 standard deviations of the last 4 hours'");
	for (size_t k = 0; k < 2; k++)
		fprintf(f, "xborder_device_anomaly{kind=\"%s\"} %d\n", kinds[k],
			json_is_true(json_object_get(json_object_get(o, kinds[k]), "anomaly")));
	family(f, "xborder_device_anomaly_z", "gauge", "z-score of the last 5 minutes' count (0 until judged)");
	for (size_t k = 0; k < 2; k++)
		fprintf(f, "xborder_device_anomaly_z{kind=\"%s\"} %.6g\n", kinds[k],
			num(json_object_get(o, kinds[k]), "z"));
	json_decref(o);
}

static void tunnel_bytes(FILE *f, struct xb_daemon *d)
{
	family(f, "xborder_tunnel_bytes_total", "counter", "inner bytes by direction");
	family(f, "xborder_tunnel_handshake_seconds", "gauge",
	       "WireGuard: last handshake (unix time); GRE: keepalive replies");
	for (size_t i = 0; d->tunnels && i < d->policy->n_tunnels; i++) {
		const char *n = d->policy->tunnels[i].name;
		uint64_t rx = 0, tx = 0, hs = 0;
		struct wg_conf c;

		if (d->policy->tunnels[i].type == XB_TUNNEL_GRE) {
			struct gre_stats gs;
			xb_greif_stats(&d->tunnels[i].gre, &gs);
			rx = gs.rx_bytes;
			tx = gs.tx_bytes;
			hs = gs.keepalive_replies;
		} else if (!xb_wgif_get(&d->tunnels[i].wg, &c)) {
			if (c.n_peers) {
				rx = c.peers[0].rx_bytes;
				tx = c.peers[0].tx_bytes;
				hs = (uint64_t)c.peers[0].last_handshake_sec;
			}
			wg_conf_free(&c);
		}
		fprintf(f, "xborder_tunnel_bytes_total{tunnel=\"%s\",direction=\"rx\"} %llu\n"
			"xborder_tunnel_bytes_total{tunnel=\"%s\",direction=\"tx\"} %llu\n"
			"xborder_tunnel_handshake_seconds{tunnel=\"%s\"} %llu\n", n,
			(unsigned long long)rx, n, (unsigned long long)tx, n, (unsigned long long)hs);
	}
}

/* Each device's posture state from its summary (posture_rt.h). */
static enum xb_mdev_posture posture_of(struct xb_daemon *d, size_t i)
{
	json_t *o = d->prt ? xb_posture_rt_summary(d->prt, i) : NULL;
	enum xb_mdev_posture st = XB_MDEV_NO_REPORT;

	if (json_array_size(json_object_get(o, "compliant")))
		st = XB_MDEV_COMPLIANT;
	else if (json_is_number(json_object_get(o, "report_age")))
		st = XB_MDEV_NONCOMPLIANT;
	json_decref(o);
	return st;
}

/* The table's acct sets into bytes (metrics_devices.h); a set the policy
 * has not (no pool of that family) is skipped. */
static void acct_read(struct xb_daemon *d, uint64_t *bytes)
{
	static const char *const sets[] = { "acct_tx4", "acct_rx4", "acct_tx6", "acct_rx6" };

	for (size_t k = 0; d->policy->n_tunnels && k < 4; k++) {
		char cmd[64], *out = NULL, *err = NULL;

		snprintf(cmd, sizeof(cmd), "list set inet " XB_NFT_TABLE " %s", sets[k]);
		if (!xb_nft_query(&d->nft, cmd, true, &out, &err))
			xb_mdev_acct_add(out, k & 1, d->policy, bytes);
		free(out);
		free(err);
	}
}

static int by_peer_key(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer_conf *)a)->public_key,
		      ((const struct wg_peer_conf *)b)->public_key, WG_KEY_LEN);
}

/* Each device's name, last handshake and posture into dv (n_devices). */
static void gather_devices(struct xb_daemon *d, struct xb_mdev *dv)
{
	const struct xb_policy *p = d->policy;
	struct wg_conf c;

	if (xb_wgif_get(&d->devif, &c))
		memset(&c, 0, sizeof(c));
	if (c.n_peers)
		qsort(c.peers, c.n_peers, sizeof(*c.peers), by_peer_key);
	for (size_t i = 0; i < p->n_devices; i++) {
		struct wg_peer_conf k, *pc;

		memcpy(k.public_key, p->devices[i].public_key, WG_KEY_LEN);
		pc = c.n_peers ? bsearch(&k, c.peers, c.n_peers, sizeof(k), by_peer_key) : NULL;
		dv[i].name = p->devices[i].name;
		dv[i].handshake = pc ? (int64_t)pc->last_handshake_sec : 0;
		dv[i].posture = posture_of(d, i);
	}
	wg_conf_free(&c);
}

static void device_series(FILE *f, struct xb_daemon *d)
{
	const struct xb_policy *p = d->policy;
	struct xb_mdev *dv = calloc(p->n_devices + 1, sizeof(*dv));
	uint64_t *bytes = calloc(p->n_devices * p->n_tunnels * 2 + 1, sizeof(*bytes));
	struct xb_mdev_page pg = { .p = p, .dev = dv, .n_dev = p->n_devices, .bytes = bytes,
				   .posture = p->n_profiles > 0, .now = time(NULL),
				   .max = p->gateway.metrics_devices_max };

	if (dv && bytes) {
		gather_devices(d, dv);
		acct_read(d, bytes);
		xb_mdev_render(f, &pg);
	}
	free(dv);
	free(bytes);
}

/* Per access rule: destinations learned from DNS, and those refused. */
static void dns_learning(FILE *f, json_t *v)
{
	static const char *const why[] = { "special", "own", "private", "over_answer_max", "set_full" };
	json_t *e;
	size_t i;

	family(f, "xborder_dns_learned", "gauge", "destinations learned from DNS, by access rule");
	json_array_foreach(v, i, e)
		fprintf(f, "xborder_dns_learned{rule=\"%s\",family=\"4\"} %.0f\n"
			"xborder_dns_learned{rule=\"%s\",family=\"6\"} %.0f\n",
			json_string_value(json_object_get(e, "rule")), num(e, "learned4"),
			json_string_value(json_object_get(e, "rule")), num(e, "learned6"));
	family(f, "xborder_dns_learn_refused_total", "counter",
	       "answered addresses not learned, by access rule and reason");
	json_array_foreach(v, i, e)
		for (size_t k = 0; k < 5; k++)
			fprintf(f, "xborder_dns_learn_refused_total{rule=\"%s\",reason=\"%s\"} %.0f\n",
				json_string_value(json_object_get(e, "rule")), why[k],
				num(json_object_get(e, "refused"), why[k]));
	family(f, "xborder_dns_learn_evicted_total", "counter",
	       "learned destinations evicted from a full set, by access rule");
	json_array_foreach(v, i, e)
		fprintf(f, "xborder_dns_learn_evicted_total{rule=\"%s\"} %.0f\n",
			json_string_value(json_object_get(e, "rule")), num(e, "evicted"));
}

static void dns(FILE *f, struct xb_daemon *d)
{
	static const char *const actions[] = { "forward", "override", "tunnel", "block" };
	double sum[4] = { 0 };
	json_t *st = d->dns ? xb_dns_service_status(d->dns) : NULL, *r;
	size_t i;

	json_array_foreach(json_object_get(st, "rules"), i, r) {
		const char *a = json_string_value(json_object_get(r, "action"));
		for (size_t k = 0; a && k < 4; k++)
			if (!strcmp(a, actions[k]))
				sum[k] += num(r, "answered");
	}
	family(f, "xborder_dns_answers_total", "counter", "DNS answers by rule action");
	for (size_t k = 0; k < 4; k++)
		fprintf(f, "xborder_dns_answers_total{action=\"%s\"} %.0f\n", actions[k], sum[k]);
	dns_learning(f, json_object_get(st, "learning"));
	json_decref(st);
	family(f, "xborder_loop_stall_max_seconds", "gauge",
	       "the main loop's longest round since start");
	fprintf(f, "xborder_loop_stall_max_seconds %.6f\n", (double)d->stall.max_ns / 1e9);
}

char *xb_metrics_render(struct xb_daemon *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	tunnel_states(f, d);
	tunnel_gauge(f, d, "xborder_tunnel_rtt_ms", "rtt_mean_ms", "probe RTT, mean over the window");
	tunnel_gauge(f, d, "xborder_tunnel_rtt_p95_ms", "rtt_p95_ms", "probe RTT, p95 over the window");
	tunnel_gauge(f, d, "xborder_tunnel_loss_percent", "loss_pct", "probe loss over the window");
	tunnel_gauge(f, d, "xborder_tunnel_jitter_ms", "jitter_ms", "RFC 3550 jitter of probe RTTs");
	tunnel_gauge(f, d, "xborder_tunnel_availability", "availability",
		     "answered / decided probes over the last hour (-1: none decided)");
	tunnel_gauge(f, d, "xborder_tunnel_slo_target_percent", "slo",
		     "availability target of the tunnel (its own slo, else gateway.slo; 0: off)");
	tunnel_flag(f, d, "xborder_tunnel_slo_met", "slo_met",
		    "1 when the last hour's availability meets the tunnel's SLO");
	tunnel_gauge(f, d, "xborder_tunnel_score", "score", "steering score, lower is better (-1: down)");
	tunnel_gauge(f, d, "xborder_tunnel_probes_total", "probes_sent", "probe rounds sent");
	tunnel_bytes(f, d);
	passive_downs(f, d);
	rules(f, d);
	devices(f, d);
	device_series(f, d);
	family(f, "xborder_route_swaps_total", "counter", "path route replacements by steering");
	fprintf(f, "xborder_route_swaps_total %llu\n", (unsigned long long)xb_health_swaps(d->health));
	dns(f, d);
	if (fclose(f))
		return NULL;
	return buf;
}

/* The series of tunnel name, added when missing; NULL: out of memory. */
static struct xb_status_series *series(struct xb_metrics *m, const char *name)
{
	struct xb_status_series *v;

	for (size_t i = 0; i < m->n_ser; i++)
		if (!strcmp(m->ser[i].tunnel, name))
			return &m->ser[i];
	if (!(v = realloc(m->ser, (m->n_ser + 1) * sizeof(*v))))
		return NULL;
	m->ser = v;
	v = &m->ser[m->n_ser];
	memset(v, 0, sizeof(*v));
	if (!(v->tunnel = strdup(name)))
		return NULL;
	m->n_ser++;
	return v;
}

/* Series of tunnels the policy no longer has go. */
static void prune(struct xb_metrics *m, const struct xb_policy *p)
{
	for (size_t i = 0; i < m->n_ser;) {
		bool keep = false;

		for (size_t t = 0; !keep && t < p->n_tunnels; t++)
			keep = !strcmp(p->tunnels[t].name, m->ser[i].tunnel);
		if (keep) {
			i++;
			continue;
		}
		free(m->ser[i].tunnel);
		m->ser[i] = m->ser[--m->n_ser];
	}
}

static double or_nan(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* One sample per tunnel every gateway.status_interval seconds: the probe
 * window's figures then (NAN where the tunnel has none). */
static void sample(struct xb_metrics *m)
{
	const struct xb_policy *p = m->d->policy;
	time_t now = time(NULL);

	if (m->sampled && now - m->sampled < (time_t)p->gateway.status_interval && now >= m->sampled)
		return;
	m->sampled = now;
	prune(m, p);
	for (size_t i = 0; i < p->n_tunnels; i++) {
		json_t *o = xb_health_tunnel_json(m->d->health, i);
		struct xb_status_series *s = series(m, p->tunnels[i].name);
		double v[XB_STATUS_N] = { or_nan(o, "rtt_mean_ms"), or_nan(o, "loss_pct"),
					  or_nan(o, "jitter_ms") };

		if (s)
			xb_status_push(s, v);
		json_decref(o);
	}
}

static const char *const posture_names[] = {
	[XB_MDEV_COMPLIANT] = "compliant", [XB_MDEV_NONCOMPLIANT] = "noncompliant",
	[XB_MDEV_NO_REPORT] = "no_report",
};

static void status_tunnels(struct xb_metrics *m, struct xb_status_tunnel *t, json_t **keep)
{
	const struct xb_policy *p = m->d->policy;

	for (size_t i = 0; i < p->n_tunnels; i++) {
		keep[i] = xb_health_tunnel_json(m->d->health, i);
		t[i].name = p->tunnels[i].name;
		t[i].state = json_string_value(json_object_get(keep[i], "probe_state"));
		t[i].s = NULL;
		for (size_t k = 0; k < m->n_ser; k++)
			if (!strcmp(m->ser[k].tunnel, t[i].name))
				t[i].s = &m->ser[k];
	}
}

/* The status page (status_page.h) as text, malloc'ed. */
static char *status_render(struct xb_metrics *m)
{
	const struct xb_policy *p = m->d->policy;
	size_t nd = p->n_devices < p->gateway.metrics_devices_max ? p->n_devices
								     : p->gateway.metrics_devices_max;
	struct xb_status_tunnel *t = calloc(p->n_tunnels + 1, sizeof(*t));
	json_t **keep = calloc(p->n_tunnels + 1, sizeof(*keep));
	struct xb_status_device *sd = calloc(nd + 1, sizeof(*sd));
	struct xb_mdev *dv = calloc(p->n_devices + 1, sizeof(*dv));
	json_t *evj = xb_health_events(m->d->health), *e;
	size_t n_ev = json_array_size(evj);
	char **ev = calloc(n_ev + 1, sizeof(*ev));
	char *buf = NULL, when[32];
	size_t len = 0;
	time_t now = time(NULL);
	FILE *f = NULL;
	size_t i;

	if (!t || !keep || !sd || !dv || !ev || !(f = open_memstream(&buf, &len)))
		goto out;
	json_array_foreach(evj, i, e)
		ev[i] = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
	sample(m);
	status_tunnels(m, t, keep);
	gather_devices(m->d, dv);
	for (i = 0; i < nd; i++) {
		sd[i].name = dv[i].name;
		sd[i].posture = p->n_profiles ? posture_names[dv[i].posture] : NULL;
		sd[i].handshake_age = dv[i].handshake > 0 ? (int64_t)now - dv[i].handshake : -1;
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	xb_status_render(f, &(struct xb_status_view){ t, p->n_tunnels, sd, nd, p->n_devices - nd,
						      (const char *const *)ev, n_ev,
						      p->gateway.status_interval, when });
out:
	if (f && fclose(f)) {
		free(buf);
		buf = NULL;
	}
	for (size_t i = 0; keep && i < p->n_tunnels; i++)
		json_decref(keep[i]);
	free(keep);
	for (size_t i = 0; ev && i < n_ev; i++)
		free(ev[i]);
	free(ev);
	json_decref(evj);
	free(t);
	free(sd);
	free(dv);
	return buf;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
			     const char *method, const char *version, const char *data,
			     size_t *size, void **state)
{
	struct xb_metrics *m = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	const char *type = "text/plain; version=0.0.4";
	bool st = !strcmp(url, "/status");
	char *page;

	(void)version;
	(void)data;
	(void)size;
	(void)state;
	if (strcmp(method, "GET") || (strcmp(url, "/metrics") && !st)) {
		static char nf[] = "not found: GET /metrics or /status\n";
		r = MHD_create_response_from_buffer(sizeof(nf) - 1, nf, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_FOUND;
	} else if (!(page = st ? status_render(m) : xb_metrics_render(m->d))) {
		return MHD_NO;
	} else {
		r = MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_FREE);
		type = st ? "text/html; charset=utf-8" : type;
	}
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (st)
		MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static struct xb_metrics *start(int epfd, const struct xb_policy *p, struct xb_daemon *d)
{
	struct xb_metrics *m = calloc(1, sizeof(*m));
	const union MHD_DaemonInfo *di;
	const union xb_sockaddr *a = &p->gateway.metrics_addr;
	struct epoll_event ev = { .events = EPOLLIN };

	if (!m || !(m->addr = strdup(p->gateway.metrics)))
		goto fail;
	m->d = d;
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL | (a->sa.sa_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, serve, m, MHD_OPTION_SOCK_ADDR, &a->sa,
				  MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				  MHD_OPTION_END);
	if (!m->mhd || !(di = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD)))
		goto fail;
	m->fd = ev.data.fd = di->epoll_fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, di->epoll_fd, &ev) < 0)
		goto fail;
	log_info("metrics: serving http://%s/metrics and /status", m->addr);
	return m;
fail:
	log_warnx("metrics: cannot serve on %s", p->gateway.metrics);
	xb_metrics_free(m);
	return NULL;
}

int xb_metrics_set(struct xb_metrics **m, int epfd, const struct xb_policy *p,
		   struct xb_daemon *d)
{
	if (*m && p->gateway.metrics && !strcmp((*m)->addr, p->gateway.metrics))
		return 0;
	xb_metrics_free(*m);	/* its epoll fd leaves epfd as it closes */
	*m = NULL;
	if (!p->gateway.metrics)
		return 0;
	return (*m = start(epfd, p, d)) ? 0 : -1;
}

int xb_metrics_fd(const struct xb_metrics *m)
{
	return m->fd;
}

void xb_metrics_process(struct xb_metrics *m)
{
	MHD_run(m->mhd);
	sample(m);
}

void xb_metrics_free(struct xb_metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	for (size_t i = 0; i < m->n_ser; i++)
		free(m->ser[i].tunnel);
	free(m->ser);
	free(m->addr);
	free(m);
}
