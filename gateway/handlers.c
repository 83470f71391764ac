/* The control commands of xborderd (docs/control.md has the result
 * schemas; xborderctl renders them). Each handler reads the daemon's state
 * in the daemon's thread; nothing here changes it except `reload' and the
 * enrolment commands (gateway/enrol.c: the enrolment file, then a reload). */
#include "gateway/cluster/cluster.h"
#include "gateway/control.h"
#include "gateway/daemon.h"
#include "gateway/enrol.h"
#include "gateway/ha_ops.h"
#include "gateway/handlers.h"
#include "gateway/health/health.h"
#include "tunnel/device.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XB_VERSION "0.1"

static json_t *jkey(const uint8_t key[static WG_KEY_LEN])
{
	char b64[WG_KEY_B64_LEN + 1];

	wg_key_to_base64(b64, key);
	return json_string(b64);
}

static json_t *jaddr(int family, const void *a)
{
	char buf[INET6_ADDRSTRLEN];

	return inet_ntop(family, a, buf, sizeof(buf)) ? json_string(buf) : json_null();
}

static json_t *jprefix(const struct xb_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 4];

	if (!inet_ntop(p->family, p->addr, buf, sizeof(buf)))
		return json_null();
	snprintf(buf + strlen(buf), 5, "/%u", p->cidr);
	return json_string(buf);
}

static json_t *jsrc(const struct xb_src *s)
{
	const char *base = s->file ? strrchr(s->file, '/') : NULL;

	return json_sprintf("%s:%u", base ? base + 1 : s->file ? s->file : "-", s->line);
}

static json_t *jendpoint(const union xb_sockaddr *sa)
{
	char buf[64];

	if (sa->sa.sa_family == AF_UNSPEC)
		return json_null();
	xb_endpoint_format(buf, sizeof(buf), sa);
	return json_string(buf);
}

static int oom(char **error)
{
	*error = strdup("out of memory");
	return -1;
}

static int cmd_status(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const struct xb_policy *p = d->policy;
	json_t *errs = json_array(), *h;

	(void)args;
	(void)errors;
	for (size_t i = 0; errs && i < d->last_reload.n_errors; i++)
		json_array_append_new(errs, json_string(d->last_reload.errors[i]));
	*result = json_pack("{s:s, s:i, s:I, s:{s:s, s:I, s:I, s:I, s:I}, "
			    "s:{s:s, s:s, s:s, s:i, s:o}, s:{s:b, s:I, s:o}}",
		"version", XB_VERSION, "pid", (int)getpid(),
		"uptime_s", (json_int_t)(time(NULL) - d->started),
		"policy", "path", d->policy_path, "loaded_at", (json_int_t)d->loaded_at,
		"devices", (json_int_t)p->n_devices, "tunnels", (json_int_t)p->n_tunnels,
		"rules", (json_int_t)p->n_rules,
		"interface", "ifname", d->devif.ifname,
		"backend", d->devif.kernel ? "kernel" : "userspace", "backend_reason", d->devif.reason,
		"listen_port", p->gateway.listen_port, "public_key", jkey(p->gateway.key.public_key),
		"last_reload", "ok", d->last_reload.ok, "at", (json_int_t)d->last_reload.at,
		"errors", errs ? errs : json_array());
	/* Devices connecting and disconnecting, and its anomaly (gateway/health/fleet.h). */
	if (*result && (h = xb_health_devices_json(d->health)))
		json_object_set_new(*result, "device_signals", h);
	/* Shared state on etcd (docs/ha.md); absent for one gateway. */
	if (*result && d->cluster && (h = xb_cluster_status(d->cluster)))
		json_object_set_new(*result, "cluster", h);
	return *result ? 0 : oom(error);
}

static int by_key(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer_conf *)a)->public_key,
		      ((const struct wg_peer_conf *)b)->public_key, WG_KEY_LEN);
}

static const struct wg_peer_conf *find_peer(const struct wg_conf *c, const uint8_t *key)
{
	struct wg_peer_conf k;

	memcpy(k.public_key, key, WG_KEY_LEN);
	return c->n_peers ? bsearch(&k, c->peers, c->n_peers, sizeof(k), by_key) : NULL;
}

static json_t *jgroups(const struct xb_ref *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i].name));
	return a;
}

/* A rule's to_lists: each file as written and the prefixes it holds now. */
static json_t *jlists(const struct xb_policy *p, const struct xb_rule *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < r->n_to_lists; i++)
		json_array_append_new(a, json_pack("{s:s, s:I}", "path", r->to_lists[i].name, "prefixes",
						   (json_int_t)p->lists[r->to_lists[i].idx].n));
	return a;
}

static json_t *device_json(const struct xb_device *dv, const struct wg_peer_conf *pc)
{
	static const union xb_sockaddr none;

	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:o}",
		"name", dv->name, "public_key", jkey(dv->public_key),
		"groups", jgroups(dv->groups, dv->n_groups),
		"address4", dv->has4 ? jaddr(AF_INET, &dv->address4) : json_null(),
		"address6", dv->has6 ? jaddr(AF_INET6, &dv->address6) : json_null(),
		"endpoint", jendpoint(pc ? &pc->endpoint : &none),
		"last_handshake", (json_int_t)(pc ? pc->last_handshake_sec : 0),
		"rx_bytes", (json_int_t)(pc ? pc->rx_bytes : 0),
		"tx_bytes", (json_int_t)(pc ? pc->tx_bytes : 0),
		"source", jsrc(&dv->src));
}

/* Expiry (gateway/enrol.h): added only to devices that have one. */
static void device_expiry(json_t *o, const struct xb_device *dv)
{
	char tb[21];

	if (!o || !dv->expires)
		return;
	xb_time_format(tb, dv->expires);
	json_object_set_new(o, "expires", json_string(tb));
	json_object_set_new(o, "expired", json_boolean(dv->expired));
}

static int cmd_devices(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	struct wg_conf c;
	json_t *a = json_array();

	(void)errors;
	if (xb_wgif_get(&d->devif, &c))
		memset(&c, 0, sizeof(c));
	if (c.n_peers)
		qsort(c.peers, c.n_peers, sizeof(*c.peers), by_key);
	for (size_t i = 0; a && i < d->policy->n_devices; i++) {
		const struct xb_device *dv = &d->policy->devices[i];
		bool wanted = !json_array_size(args);

		for (size_t k = 0; k < json_array_size(args); k++)
			wanted |= !strcmp(json_string_value(json_array_get(args, k)), dv->name);
		if (wanted) {
			json_t *o = device_json(dv, find_peer(&c, dv->public_key));

			if (o && d->prt)
				json_object_set_new(o, "posture", xb_posture_rt_summary(d->prt, i));
			device_expiry(o, dv);
			json_array_append_new(a, o);
		}
	}
	wg_conf_free(&c);
	*result = a;
	return a ? 0 : oom(error);
}

static json_t *wg_json(struct xb_daemon *d, size_t i);

static json_t *gre_json(struct xb_daemon *d, size_t i)
{
	const struct xb_tunnel *t = &d->policy->tunnels[i];
	struct xb_tunnel_rt *rt = &d->tunnels[i];
	const struct xb_path *pa = i < d->plan.n_paths ? &d->plan.paths[i] : NULL;
	static const char *const ka[] = { "off", "up", "down" };
	struct gre_stats st;
	char mark[16];

	xb_greif_stats(&rt->gre, &st);
	snprintf(mark, sizeof(mark), "0x%x", pa ? pa->mark : 0);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:s, s:I, "
			 "s:I, s:I, s:I, s:I, s:o}",
		"name", t->name, "ifname", t->ifname, "type", "gre",
		"backend", rt->gre.kernel ? "kernel" : "userspace", "backend_reason", rt->gre.reason,
		"local", jaddr(t->gre.family, &t->gre.local),
		"remote", jendpoint(&rt->resolved),
		"key", t->gre.has_key ? json_integer(t->gre.key) : json_null(),
		"address4", t->has_address4 ? jprefix(&t->address4) : json_null(),
		"address6", t->has_address6 ? jprefix(&t->address6) : json_null(),
		"mark", mark, "table", (json_int_t)(pa ? pa->table : 0),
		"keepalive", ka[st.ka_state], "keepalives_sent", (json_int_t)st.keepalives_sent,
		"keepalive_replies", (json_int_t)st.keepalive_replies,
		"rx_bytes", (json_int_t)st.rx_bytes, "tx_bytes", (json_int_t)st.tx_bytes,
		"rx_packets", (json_int_t)st.rx_packets, "source", jsrc(&t->src));
}

static json_t *tunnel_json(struct xb_daemon *d, size_t i)
{
	json_t *o = d->policy->tunnels[i].type == XB_TUNNEL_GRE ? gre_json(d, i) : wg_json(d, i);
	json_t *h = xb_health_tunnel_json(d->health, i);

	/* The prober's view: state is the probe state when probed. */
	if (o && h) {
		const char *ps = json_string_value(json_object_get(h, "probe_state"));
		if (ps && strcmp(ps, "unprobed"))
			json_object_set_new(o, "state", json_string(ps));
		json_object_set_new(o, "health", h);
	} else {
		json_decref(h);
	}
	return o;
}

static json_t *wg_json(struct xb_daemon *d, size_t i)
{
	const struct xb_tunnel *t = &d->policy->tunnels[i];
	struct xb_tunnel_rt *rt = &d->tunnels[i];
	const struct xb_path *pa = i < d->plan.n_paths ? &d->plan.paths[i] : NULL;
	struct wg_conf c;
	const struct wg_peer_conf *pc = NULL;
	json_t *o;
	char mark[16];
	int64_t hs = 0;

	if (xb_wgif_get(&rt->wg, &c))
		memset(&c, 0, sizeof(c));
	if (c.n_peers)
		pc = &c.peers[0];
	snprintf(mark, sizeof(mark), "0x%x", pa ? pa->mark : 0);
	hs = pc ? pc->last_handshake_sec : 0;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:I, s:s, s:I, s:I, s:I, s:o}",
		"name", t->name, "ifname", t->ifname, "type", "wireguard",
		"backend", rt->wg.kernel ? "kernel" : "userspace", "backend_reason", rt->wg.reason,
		"endpoint", jendpoint(pc ? &pc->endpoint : &rt->resolved),
		"peer_public_key", jkey(t->peer_public_key),
		"address4", t->has_address4 ? jprefix(&t->address4) : json_null(),
		"address6", t->has_address6 ? jprefix(&t->address6) : json_null(),
		"mark", mark, "table", (json_int_t)(pa ? pa->table : 0),
		/* Unprobed tunnels: up means a handshake in the last 3 minutes,
		 * the lifetime of a WireGuard session; tunnel_json() puts the
		 * probe state here for a probed one. */
		"state", hs && time(NULL) - hs < 180 ? "up" : hs ? "stale" : "unknown",
		"last_handshake", (json_int_t)hs,
		"rx_bytes", (json_int_t)(pc ? pc->rx_bytes : 0),
		"tx_bytes", (json_int_t)(pc ? pc->tx_bytes : 0),
		"source", jsrc(&t->src));
	wg_conf_free(&c);
	return o;
}

static int cmd_tunnels(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	json_t *a = json_array();

	(void)errors;
	for (size_t i = 0; a && i < d->policy->n_tunnels; i++) {
		bool wanted = !json_array_size(args);

		for (size_t k = 0; k < json_array_size(args); k++)
			wanted |= !strcmp(json_string_value(json_array_get(args, k)),
					  d->policy->tunnels[i].name);
		if (wanted)
			json_array_append_new(a, tunnel_json(d, i));
	}
	*result = a;
	return a ? 0 : oom(error);
}

/* Counters of the rule lines in chain from_devices, by the rule name in
 * their comment ("rule NAME (FILE:LINE)"). */
static void rule_counters(struct xb_daemon *d, json_t *rules)
{
	char *out = NULL, *err = NULL;
	json_t *root, *items, *it;
	size_t i;

	if (xb_nft_query(&d->nft, "list chain inet " XB_NFT_TABLE " from_devices", true, &out, &err)) {
		free(err);
		return;
	}
	root = json_loads(out, 0, NULL);
	free(out);
	items = json_object_get(root, "nftables");
	json_array_foreach(items, i, it) {
		json_t *rule = json_object_get(it, "rule"), *e, *x;
		const char *comment = json_string_value(json_object_get(rule, "comment"));
		size_t k, j;

		if (!comment)
			continue;
		json_array_foreach(rules, k, x) {
			const char *name = json_string_value(json_object_get(x, "name"));
			size_t n = strlen(name);

			if (strncmp(comment, "rule ", 5) || strncmp(comment + 5, name, n) ||
			    comment[5 + n] != ' ')
				continue;
			json_array_foreach(json_object_get(rule, "expr"), j, e) {
				json_t *ctr = json_object_get(e, "counter");
				if (!ctr)
					continue;
				json_object_set_new(x, "packets", json_integer(
					json_integer_value(json_object_get(x, "packets")) +
					json_integer_value(json_object_get(ctr, "packets"))));
				json_object_set_new(x, "bytes", json_integer(
					json_integer_value(json_object_get(x, "bytes")) +
					json_integer_value(json_object_get(ctr, "bytes"))));
			}
			break;
		}
	}
	json_decref(root);
}

static json_t *jports(const struct xb_rule *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < r->n_ports; i++)
		json_array_append_new(a, r->ports[i].lo == r->ports[i].hi
			? json_sprintf("%u", r->ports[i].lo)
			: json_sprintf("%u-%u", r->ports[i].lo, r->ports[i].hi));
	return a;
}

static json_t *jprotos(unsigned bits)
{
	static const char *names[] = { "tcp", "udp", "icmp", "icmpv6" };
	json_t *a = json_array();

	for (unsigned i = 0; a && i < 4; i++)
		if (bits & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *rule_json(struct xb_daemon *d, size_t i, char *fallback, size_t len)
{
	const struct xb_policy *p = d->policy;
	const struct xb_rule *r = &p->rules[i];
	int path = d->plan.rule_path ? d->plan.rule_path[i] : -1;
	const struct xb_path *pa = path >= 0 ? &d->plan.paths[path] : NULL;
	json_t *to = json_array(), *dom = json_array(), *via = json_array(), *active = json_null();
	json_t *o, *h;
	size_t ti = pa ? xb_health_active(d->health, pa) : XB_STEER_NONE;

	for (size_t k = 0; to && k < r->n_to; k++)
		json_array_append_new(to, jprefix(&r->to[k]));
	for (size_t k = 0; dom && k < r->n_domains; k++)
		json_array_append_new(dom, json_string(r->domains[k]));
	for (size_t k = 0; via && k < r->n_via; k++)
		json_array_append_new(via, json_string(r->via[k].kind == XB_VIA_BEST ? "best" :
			r->via[k].kind == XB_VIA_INTERNET ? "internet" : r->via[k].tunnel.name));
	/* The tunnel the path's route uses now (steering), not the first listed;
	 * none usable: the internet fallback, or null (unreachable). */
	if (ti != XB_STEER_NONE)
		active = json_string(p->tunnels[ti].name);
	else if (r->action == XB_ACTION_ALLOW && (!pa || pa->internet_fallback))
		active = json_string("internet");
	snprintf(fallback, len, "rule%zu", i + 1);
	o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, "
			 "s:o, s:I}",
		"name", r->name ? r->name : fallback,
		"action", r->action == XB_ACTION_ALLOW ? "allow" : "deny",
		"groups", jgroups(r->groups, r->n_groups), "devices", jgroups(r->devices, r->n_devices),
		"posture", jgroups(r->posture, r->n_posture), "to", to, "to_lists", jlists(p, r),
		"domains", dom,
		"protocols", jprotos(r->protocols), "ports", jports(r), "via", via, "active", active,
		"packets", (json_int_t)0, "bytes", (json_int_t)0, "source", jsrc(&r->src),
		"table", (json_int_t)(pa ? pa->table : 0));
	/* Its path's availability and SLO (gateway/health/health.h). */
	if (o && (h = xb_health_rule_json(d->health, i)))
		json_object_set_new(o, "health", h);
	return o;
}

static int cmd_rules(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	json_t *a = json_array();
	char name[32];

	(void)args;
	(void)errors;
	for (size_t i = 0; a && i < d->policy->n_rules; i++)
		json_array_append_new(a, rule_json(d, i, name, sizeof(name)));
	if (!a)
		return oom(error);
	rule_counters(d, a);
	*result = a;
	return 0;
}

static int cmd_reload(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	struct xb_errors errs = { 0 };
	char summary[256] = "";
	int e;

	(void)args;
	e = xb_daemon_reload(d, &errs, summary, sizeof(summary));
	if (e) {
		*errors = json_array();
		for (size_t i = 0; *errors && i < errs.n; i++) {
			char *s = xb_error_str(&errs.v[i]);

			json_array_append_new(*errors, s ? json_string(s) : NULL);
			free(s);
		}
		/* All or nothing (daemon.h): the errors say which step. */
		*error = strdup("the running policy stays");
	} else {
		*result = json_pack("{s:b, s:s}", "changed", true, "summary", summary);
	}
	xb_errors_free(&errs);
	return e ? -1 : 0;
}

/* The data thread's side of the DNS tap (tunnel/tap.h), under its lock. */
static void dns_tap_device(struct xb_daemon *d, json_t *st)
{
	json_t *tap = json_object_get(st, "tap");
	struct wg_device *dev = d->devif.dev;
	struct wg_stats s;

	if (!json_is_object(tap) || !dev)
		return;
	pthread_mutex_lock(&dev->lock);
	s = dev->stats;
	pthread_mutex_unlock(&dev->lock);
	json_object_set_new(tap, "device", json_pack("{s:I, s:I, s:I, s:I}",
		"queries", (json_int_t)s.tap_queries, "answers", (json_int_t)s.tap_answers,
		"bad_reply", (json_int_t)s.tap_bad_reply, "dropped", (json_int_t)s.tap_dropped));
}

static int cmd_dns(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;

	(void)args;
	(void)errors;
	if (!d->dns) {
		*error = strdup("the DNS service is not running");
		return -1;
	}
	*result = xb_dns_service_status(d->dns);
	if (*result)
		json_object_set_new(*result, "loop", json_pack("{s:f, s:I, s:I, s:I}",
			"stall_max_ms", (double)(d->stall.max_ns / 100000) / 10.0,
			"stall_max_at", (json_int_t)d->stall.max_at,
			"stalls_over_10ms", (json_int_t)d->stall.over_10ms,
			"rounds", (json_int_t)d->stall.rounds));
	if (*result)
		dns_tap_device(d, *result);
	return *result ? 0 : oom(error);
}

/* `xborderctl probe TUNNEL' polls this every interval with the `next' it
 * was given: the control protocol stays request/response. */
static int cmd_probe(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const char *name = json_string_value(json_array_get(args, 0)), *why = NULL;
	json_t *since = json_array_get(args, 1);
	json_int_t from = json_is_integer(since) ? json_integer_value(since) :
			  json_is_string(since) ? strtoll(json_string_value(since), NULL, 10) : 0;

	(void)errors;
	if (!name) {
		*error = strdup("usage: probe TUNNEL [SINCE]");
		return -1;
	}
	*result = xb_health_results(d->health, name, from > 0 ? (uint64_t)from : 0, &why);
	if (!*result) {
		*error = strdup(why ? why : "out of memory");
		return -1;
	}
	return 0;
}

/* posture: the service's counters; posture DEVICE: each profile's checks. */
static int cmd_posture(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const char *name = json_string_value(json_array_get(args, 0));

	(void)errors;
	if (!d->prt) {
		*error = strdup("the posture service is not running");
		return -1;
	}
	if (json_array_size(args) > 1) {
		*error = strdup("usage: posture [DEVICE]");
		return -1;
	}
	if (!name) {
		*result = xb_posture_rt_status(d->prt);
		return *result ? 0 : oom(error);
	}
	for (size_t i = 0; i < d->policy->n_devices; i++)
		if (!strcmp(d->policy->devices[i].name, name)) {
			*result = xb_posture_rt_detail(d->prt, i);
			return *result ? 0 : oom(error);
		}
	if (asprintf(error, "no device \"%s\" in the policy", name) < 0)
		*error = NULL;
	return -1;
}

/* For the handlers of other files (gateway/handlers.h). */
json_t *xb_hj_addr(int family, const void *a)
{
	return jaddr(family, a);
}

json_t *xb_hj_src(const struct xb_src *s)
{
	return jsrc(s);
}

json_t *xb_hj_tunnel(struct xb_daemon *d, size_t i)
{
	return tunnel_json(d, i);
}

static const struct xb_ctl_command commands[] = {
	{ "status", cmd_status, "the daemon, its policy and the device interface" },
	{ "devices", cmd_devices, "devices: addresses, endpoint, handshake, bytes [NAME...]" },
	{ "tunnels", cmd_tunnels, "partner tunnels: backend, endpoint, state, bytes [NAME...]" },
	{ "rules", cmd_rules, "policy rules in order, with their counters" },
	{ "posture", cmd_posture, "posture: counters; with DEVICE each profile's checks, expected and seen" },
	{ "dns", cmd_dns, "the DNS service: listeners, counters per rule, cache, upstreams" },
	{ "probe", cmd_probe, "probe results of a tunnel since a sequence number: TUNNEL [SINCE]" },
	{ "explain", xb_cmd_explain, "why DEVICE may or may not reach DEST [PROTO/PORT]: rules, posture, DNS, path" },
	{ "drops", xb_cmd_drops, "recent refused packets and the rule or check that refused them [DEVICE]" },
	{ "reload", cmd_reload, "reload the policy file (an invalid one changes nothing)" },
	{ "takeover", xb_ha_cmd_takeover, "initiate the handshakes with the devices now, as on becoming active (docs/ha.md)" },
	{ "cluster-prune", xb_cmd_cluster_prune, "delete the store's pool allocations of devices not in this policy (docs/ha.md) [dry-run]" },
	/* Enrolment (gateway/enrol.c, docs/enrolment.md). */
	{ "device", xb_enrol_cmd_show, "one device and what its wg-quick file needs: NAME" },
	{ "device-add", xb_enrol_cmd_add, "enrol a device: NAME PUBLIC_KEY GROUPS EXPIRES" },
	{ "device-remove", xb_enrol_cmd_remove, "remove an enrolled device: NAME" },
};
const struct xb_ctl_command *const xb_daemon_commands = commands;
const size_t xb_daemon_n_commands = sizeof(commands) / sizeof(commands[0]);
