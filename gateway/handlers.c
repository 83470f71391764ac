/* The control commands of xborderd (docs/control.md has the result
 * schemas; xborderctl renders them). Each handler reads the daemon's state
 * in the daemon's thread; nothing here changes it except `reload'. */
#include "gateway/control.h"
#include "gateway/daemon.h"
#include "gateway/explain.h"
#include "gateway/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
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

static json_t *jprefix(const struct wg_prefix *p)
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

static json_t *jendpoint(const union wg_sockaddr *sa)
{
	char buf[64];

	if (sa->sa.sa_family == AF_UNSPEC)
		return json_null();
	wg_endpoint_format(buf, sizeof(buf), sa);
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
	/* Devices connecting and disconnecting, and its anomaly (gateway/fleet.h). */
	if (*result && (h = xb_health_devices_json(d->health)))
		json_object_set_new(*result, "device_signals", h);
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
	static const union wg_sockaddr none;

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
				json_object_set_new(o, "posture", xb_prt_summary(d->prt, i));
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
		/* Until the prober (tunnel health) lands: up means a handshake in
		 * the last 3 minutes, the lifetime of a WireGuard session. */
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
	/* Its path's availability and SLO (gateway/health.h). */
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
		for (size_t i = 0; *errors && i < errs.n; i++)
			json_array_append_new(*errors, errs.v[i].line
				? json_sprintf("%s:%u: %s", errs.v[i].file, errs.v[i].line, errs.v[i].msg)
				: json_sprintf("%s: %s", errs.v[i].file, errs.v[i].msg));
		/* All or nothing (daemon.h): the errors say which step. */
		*error = strdup("the running policy stays");
	} else {
		*result = json_pack("{s:b, s:s}", "changed", true, "summary", summary);
	}
	xb_errors_free(&errs);
	return e ? -1 : 0;
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
	*result = xb_dnssvc_status(d->dns);
	if (*result)
		json_object_set_new(*result, "loop", json_pack("{s:f, s:I, s:I, s:I}",
			"stall_max_ms", (double)(d->stall.max_ns / 100000) / 10.0,
			"stall_max_at", (json_int_t)d->stall.max_at,
			"stalls_over_10ms", (json_int_t)d->stall.over_10ms,
			"rounds", (json_int_t)d->stall.rounds));
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
		*result = xb_prt_status(d->prt);
		return *result ? 0 : oom(error);
	}
	for (size_t i = 0; i < d->policy->n_devices; i++)
		if (!strcmp(d->policy->devices[i].name, name)) {
			*result = xb_prt_detail(d->prt, i);
			return *result ? 0 : oom(error);
		}
	if (asprintf(error, "no device \"%s\" in the policy", name) < 0)
		*error = NULL;
	return -1;
}


/* explain DEVICE DEST [PROTO/PORT]: the rule walk of gateway/explain.h on
 * the daemon's live state — posture from the posture service, learned
 * destinations from the DNS service, the path's tunnel from steering. */
struct ex_ctx {
	struct xb_daemon *d;
};

static int ex_fail(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ex_fail(char **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(error, fmt, ap) < 0)
		*error = NULL;
	va_end(ap);
	return -1;
}

static bool ex_posture(void *ctx, size_t rule, size_t device)
{
	struct xb_daemon *d = ((struct ex_ctx *)ctx)->d;

	return d->prt && xb_prt_ok(d->prt, rule, device);
}

static bool ex_learned_at(struct xb_daemon *d, size_t rule, int family, const uint8_t *addr,
			  int64_t *expires, char *set, size_t len)
{
	enum xb_set_kind k = family == AF_INET6 ? XB_SET_DNS6 : XB_SET_DNS4;

	return d->dns && xb_compile_set_name(set, len, d->policy, rule, k) &&
	       xb_dnssvc_learned(d->dns, set, family, addr, expires);
}

static bool ex_learned(void *ctx, size_t rule, int family, const uint8_t *addr)
{
	char set[XB_SET_NAME_MAX];
	int64_t exp;

	return ex_learned_at(((struct ex_ctx *)ctx)->d, rule, family, addr, &exp, set, sizeof(set));
}

/* `fib daddr type local': any address of this host. */
static bool ex_local(int family, const uint8_t *addr)
{
	struct ifaddrs *ifa, *i;
	bool hit = false;

	if (getifaddrs(&ifa))
		return false;
	for (i = ifa; i && !hit; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != family)
			continue;
		hit = family == AF_INET
			? !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, 4)
			: !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, addr, 16);
	}
	freeifaddrs(ifa);
	return hit;
}

static const char *const ex_proto[] = { "tcp", "udp", "icmp", "icmpv6" };

static void ex_protos(char *buf, size_t len, unsigned bits)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 4; i++)
		if (bits & (1u << i))
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", ex_proto[i]);
}

static void ex_ports(char *buf, size_t len, const struct xb_rule *r)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n_ports && off < len; i++)
		off += (size_t)(r->ports[i].lo == r->ports[i].hi
			? snprintf(buf + off, len - off, "%s%u", i ? ", " : "", r->ports[i].lo)
			: snprintf(buf + off, len - off, "%s%u-%u", i ? ", " : "", r->ports[i].lo,
				   r->ports[i].hi));
}

/* One line of why, for people; the JSON's `result' is for programs. */
static json_t *ex_reason(const struct xb_policy *p, const struct xb_explain_rule *er,
			 const struct xb_explain_q *q, const char *dest)
{
	const struct xb_rule *r = &p->rules[er->rule];
	const struct xb_device *dv = &p->devices[q->device];
	char protos[64], ports[256];

	ex_protos(protos, sizeof(protos), r->protocols);
	ex_ports(ports, sizeof(ports), r);
	switch (er->why) {
	case XB_EXPLAIN_MATCH:
		return er->dest == XB_DEST_TO ? json_sprintf("%s is in its to", dest)
		     : er->dest == XB_DEST_LIST ? json_sprintf("%s is in its list %s", dest,
							      r->to_lists[er->list].name)
		     : er->dest == XB_DEST_DNS ? json_sprintf("%s was learned by DNS for its domains", dest)
		     : json_string("it matches every destination");
	case XB_EXPLAIN_DEPENDS:
		return json_sprintf("it matches only %s%s%s; give PROTO/PORT to decide", protos,
				    r->n_ports ? " port " : "", ports);
	case XB_EXPLAIN_FAMILY:
		return json_sprintf("its protocols (%s) have none of IPv%d", protos,
				    q->family == AF_INET6 ? 6 : 4);
	case XB_EXPLAIN_DEVICE:
		return json_sprintf("it does not name %s or a group of it", dv->name);
	case XB_EXPLAIN_POSTURE:
		return json_sprintf("%s fails its posture", dv->name);
	case XB_EXPLAIN_DEST:
		return json_sprintf("%s is not in its to or to_lists%s", dest,
				    r->n_domains ? ", nor learned for its domains" : "");
	case XB_EXPLAIN_PROTO:
		return json_sprintf("%s is not one of its protocols (%s)", ex_proto[__builtin_ctz(q->proto)],
				    protos);
	case XB_EXPLAIN_PORT:
		return json_sprintf("port %u is not one of its ports (%s)", q->port, ports);
	}
	return json_null();
}

static json_t *ex_rules(struct xb_daemon *d, const struct xb_explain *e,
			const struct xb_explain_q *q, const char *dest)
{
	json_t *a = json_array();
	char fb[32];

	for (size_t i = 0; a && i < e->n; i++) {
		const struct xb_explain_rule *er = &e->v[i];
		const struct xb_rule *r = &d->policy->rules[er->rule];
		json_t *o;

		snprintf(fb, sizeof(fb), "rule%zu", er->rule + 1);
		o = json_pack("{s:s, s:s, s:o, s:s, s:o}", "name", r->name ? r->name : fb,
			      "action", r->action == XB_ACTION_ALLOW ? "allow" : "deny",
			      "source", jsrc(&r->src), "result", xb_explain_why_name(er->why),
			      "reason", ex_reason(d->policy, er, q, dest));
		if (o && (er->why == XB_EXPLAIN_MATCH || er->why == XB_EXPLAIN_DEPENDS))
			json_object_set_new(o, "matched_by", json_string(xb_explain_dest_name(er->dest)));
		json_array_append_new(a, o);
	}
	return a;
}

/* The checks of the rules' posture profiles that the walk asked about. */
static json_t *ex_posture_json(struct xb_daemon *d, const struct xb_explain *e, size_t dev)
{
	json_t *a = json_array(), *detail = d->prt ? xb_prt_detail(d->prt, dev) : NULL;
	json_t *profiles = json_object_get(detail, "profiles"), *pr;
	size_t k;

	for (size_t i = 0; a && i < e->n; i++) {
		const struct xb_rule *r = &d->policy->rules[e->v[i].rule];

		/* asked: the rule's family and device matched */
		if (!r->n_posture || e->v[i].why == XB_EXPLAIN_FAMILY ||
		    e->v[i].why == XB_EXPLAIN_DEVICE)
			continue;
		for (size_t j = 0; j < r->n_posture; j++)
			json_array_foreach(profiles, k, pr)
				if (!strcmp(json_string_value(json_object_get(pr, "name")),
					    r->posture[j].name)) {
					json_t *o = json_deep_copy(pr);

					json_object_set_new(o, "rule", r->name ? json_string(r->name)
							    : json_sprintf("rule%zu", e->v[i].rule + 1));
					json_array_append_new(a, o);
				}
	}
	json_decref(detail);
	return a;
}

/* Every access rule with domains whose learned set holds the address. */
static json_t *ex_dns(struct xb_daemon *d, const struct xb_explain_q *q)
{
	json_t *a = json_array();
	char set[XB_SET_NAME_MAX], fb[32];
	int64_t exp;

	for (size_t i = 0; a && i < d->policy->n_rules; i++) {
		const struct xb_rule *r = &d->policy->rules[i];
		json_t *dom;

		if (!r->n_domains || !ex_learned_at(d, i, q->family, q->addr, &exp, set, sizeof(set)))
			continue;
		dom = json_array();
		for (size_t k = 0; dom && k < r->n_domains; k++)
			json_array_append_new(dom, json_string(r->domains[k]));
		snprintf(fb, sizeof(fb), "rule%zu", i + 1);
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I}", "rule", r->name ? r->name : fb,
			"set", set, "domains", dom, "expires", (json_int_t)exp));
	}
	return a;
}

/* The deciding rule's path: its tunnels, their states, the one used now. */
static json_t *ex_path(struct xb_daemon *d, const struct xb_explain *e)
{
	const struct xb_path *pa;
	json_t *tun = json_array(), *o;
	size_t ti;

	if (e->verdict != XB_VERDICT_ALLOW || e->path < 0) {
		json_decref(tun);
		return json_null();
	}
	pa = &d->plan.paths[e->path];
	ti = xb_health_active(d->health, pa);
	for (size_t i = 0; tun && i < pa->n_tunnels; i++) {
		json_t *t = tunnel_json(d, pa->tunnels[i]);

		json_array_append_new(tun, json_pack("{s:s, s:O}", "name",
			d->policy->tunnels[pa->tunnels[i]].name, "state",
			json_object_get(t, "state") ? json_object_get(t, "state") : json_null()));
		json_decref(t);
	}
	o = json_pack("{s:s, s:I, s:o, s:b, s:o}", "name", pa->name, "table", (json_int_t)pa->table,
		      "active", ti != XB_STEER_NONE ? json_string(d->policy->tunnels[ti].name)
		      : pa->internet_fallback ? json_string("internet") : json_null(),
		      "internet_fallback", pa->internet_fallback, "tunnels", tun);
	return o;
}

static int ex_query(struct xb_daemon *d, json_t *args, struct xb_explain_q *q, char **error)
{
	const char *dev = json_string_value(json_array_get(args, 0));
	const char *dest = json_string_value(json_array_get(args, 1));
	const char *proto = json_string_value(json_array_get(args, 2));
	size_t i;

	*q = (struct xb_explain_q){ 0 };
	if (!dev || !dest || json_array_size(args) > 3) {
		*error = strdup("usage: explain DEVICE DEST [PROTO[/PORT]]");
		return -1;
	}
	for (i = 0; i < d->policy->n_devices && strcmp(d->policy->devices[i].name, dev); i++)
		;
	if (i == d->policy->n_devices)
		return ex_fail(error, "no device \"%s\" in the policy", dev);
	q->device = i;
	q->family = strchr(dest, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(q->family, dest, q->addr) != 1)
		return ex_fail(error, "`%s' is not an IPv4 or IPv6 address", dest);
	if (proto && !xb_explain_parse_proto(proto, q))
		return ex_fail(error, "`%s' is not tcp[/PORT], udp[/PORT], icmp or icmpv6", proto);
	if (q->proto == (q->family == AF_INET ? XB_PROTO_ICMPV6 : XB_PROTO_ICMP))
		return ex_fail(error, "%s is not a protocol of %s", proto, dest);
	q->local = ex_local(q->family, q->addr);
	return 0;
}

static int cmd_explain(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	struct ex_ctx c = { d };
	struct xb_explain_in in = { d->policy, &d->plan, ex_posture, ex_learned, &c };
	struct xb_explain_q q;
	struct xb_explain e;
	const char *dest = json_string_value(json_array_get(args, 1));
	const struct xb_rule *r;

	(void)errors;
	if (ex_query(d, args, &q, error))
		return -1;
	if (xb_explain(&in, &q, &e)) {
		if (errno != EADDRNOTAVAIL)
			return oom(error);
		return ex_fail(error, "device \"%s\" has no IPv%d address", d->policy->devices[q.device].name,
				q.family == AF_INET6 ? 6 : 4);
	}
	r = e.decided != SIZE_MAX ? &d->policy->rules[e.decided] : NULL;
	*result = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o}",
		"device", d->policy->devices[q.device].name, "destination", dest,
		"protocol", q.proto ? json_string(ex_proto[__builtin_ctz(q.proto)]) : json_null(),
		"port", q.port ? json_integer(q.port) : json_null(),
		"verdict", xb_explain_verdict_name(e.verdict),
		"rule", r ? r->name ? json_string(r->name) : json_sprintf("rule%zu", e.decided + 1)
			  : json_null(),
		"rules", ex_rules(d, &e, &q, dest), "posture", ex_posture_json(d, &e, q.device),
		"dns", ex_dns(d, &q), "path", ex_path(d, &e));
	xb_explain_free(&e);
	return *result ? 0 : oom(error);
}

/* drops [DEVICE]: the drop log, newest first. For each packet the device
 * (by source address), the rule that refused it (null: the default deny)
 * and, for rules the device was named by but whose posture it failed at
 * that moment's walk, the failing checks: what to fix. */
static size_t dr_device(const struct xb_policy *p, const struct xb_drop *x)
{
	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *dv = &p->devices[i];

		if (x->family == AF_INET ? dv->has4 && !memcmp(&dv->address4, x->src, 4)
					 : dv->has6 && !memcmp(&dv->address6, x->src, 16))
			return i;
	}
	return SIZE_MAX;
}

/* Fails the profile: fail, or unknown (not reported); skip and pass do not. */
static bool dr_failing(const char *outcome)
{
	return outcome && (!strcmp(outcome, "fail") || !strcmp(outcome, "unknown"));
}

/* The rules whose posture the device fails now, with each failing check. */
static json_t *dr_posture(struct xb_daemon *d, const struct xb_drop *x, size_t dev)
{
	struct ex_ctx c = { d };
	struct xb_explain_in in = { d->policy, &d->plan, ex_posture, ex_learned, &c };
	struct xb_explain_q q = { .device = dev, .family = x->family, .port = x->dport };
	struct xb_explain e;
	json_t *a, *out = json_array(), *pr, *ch;
	size_t i, k;

	memcpy(q.addr, x->dst, 16);
	q.proto = x->proto == IPPROTO_TCP ? XB_PROTO_TCP : x->proto == IPPROTO_UDP ? XB_PROTO_UDP :
		  x->proto == IPPROTO_ICMP ? XB_PROTO_ICMP : x->proto == IPPROTO_ICMPV6 ? XB_PROTO_ICMPV6 : 0;
	if (!out || xb_explain(&in, &q, &e))
		return out;
	a = ex_posture_json(d, &e, dev);
	json_array_foreach(a, i, pr) {
		json_t *failing = json_array();

		if (json_is_true(json_object_get(pr, "compliant")))
			continue;
		json_array_foreach(json_object_get(pr, "checks"), k, ch)
			if (dr_failing(json_string_value(json_object_get(ch, "outcome"))) &&
			    strcmp(json_string_value(json_object_get(ch, "mode")) ?: "", "report"))
				json_array_append(failing, json_object_get(ch, "check"));
		json_array_append_new(out, json_pack("{s:O, s:O, s:o}", "rule", json_object_get(pr, "rule"),
			"profile", json_object_get(pr, "name"), "failing", failing));
	}
	json_decref(a);
	xb_explain_free(&e);
	return out;
}

static json_t *dr_json(struct xb_daemon *d, const struct xb_drop *x, size_t dev)
{
	static const char *const pn[256] = { [IPPROTO_TCP] = "tcp", [IPPROTO_UDP] = "udp",
					     [IPPROTO_ICMP] = "icmp", [IPPROTO_ICMPV6] = "icmpv6" };
	const struct xb_rule *r = NULL;

	/* the log prefix names the rule, "#N" one without a name (compile.h) */
	for (size_t i = 0; x->rule[0] && i < d->policy->n_rules; i++) {
		const char *n = d->policy->rules[i].name;

		if (n ? !strcmp(n, x->rule) : x->rule[0] == '#' && strtoul(x->rule + 1, NULL, 10) == i + 1)
			r = &d->policy->rules[i];
	}
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "at", (json_int_t)x->at,
		"device", dev != SIZE_MAX ? json_string(d->policy->devices[dev].name) : json_null(),
		"source", jaddr(x->family, x->src), "destination", jaddr(x->family, x->dst),
		"protocol", pn[x->proto] ? json_string(pn[x->proto]) : json_integer(x->proto),
		"port", x->dport ? json_integer(x->dport) : json_null(),
		"rule", x->rule[0] ? json_string(x->rule) : json_null(),
		"rule_source", r ? jsrc(&r->src) : json_null(),
		"posture", dev != SIZE_MAX ? dr_posture(d, x, dev) : json_array());
}

static int cmd_drops(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const char *want = json_string_value(json_array_get(args, 0));
	json_t *a = json_array();
	const struct xb_drop *x;

	(void)errors;
	if (json_array_size(args) > 1)
		return ex_fail(error, "usage: drops [DEVICE]");
	if (want) {
		size_t i = 0;

		while (i < d->policy->n_devices && strcmp(d->policy->devices[i].name, want))
			i++;
		if (i == d->policy->n_devices)
			return ex_fail(error, "no device \"%s\" in the policy", want);
	}
	for (size_t i = 0; a && (x = xb_drops_get(&d->drops, i)); i++) {
		size_t dev = dr_device(d->policy, x);

		if (!want || (dev != SIZE_MAX && !strcmp(d->policy->devices[dev].name, want)))
			json_array_append_new(a, dr_json(d, x, dev));
	}
	*result = json_pack("{s:b, s:I, s:I, s:i, s:o}", "logging", d->drops.nl != NULL,
			    "total", (json_int_t)d->drops.total, "lost", (json_int_t)d->drops.lost,
			    "rate_per_line", (int)XB_DROPS_RATE, "drops", a ? a : json_array());
	return *result ? 0 : oom(error);
}

static const struct xb_ctl_command commands[] = {
	{ "status", cmd_status, "the daemon, its policy and the device interface" },
	{ "devices", cmd_devices, "devices: addresses, endpoint, handshake, bytes [NAME...]" },
	{ "tunnels", cmd_tunnels, "partner tunnels: backend, endpoint, state, bytes [NAME...]" },
	{ "rules", cmd_rules, "policy rules in order, with their counters" },
	{ "posture", cmd_posture, "posture: counters; with DEVICE each profile's checks, expected and seen" },
	{ "dns", cmd_dns, "the DNS service: listeners, counters per rule, cache, upstreams" },
	{ "probe", cmd_probe, "probe results of a tunnel since a sequence number: TUNNEL [SINCE]" },
	{ "explain", cmd_explain, "why DEVICE may or may not reach DEST [PROTO/PORT]: rules, posture, DNS, path" },
	{ "drops", cmd_drops, "recent refused packets and the rule or check that refused them [DEVICE]" },
	{ "reload", cmd_reload, "reload the policy file (an invalid one changes nothing)" },
};
const struct xb_ctl_command *const xb_daemon_commands = commands;
const size_t xb_daemon_n_commands = sizeof(commands) / sizeof(commands[0]);
