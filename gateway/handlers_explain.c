/* The control commands `explain' and `drops' (docs/control.md): the
 * daemon's live state gathered for gateway/explain.h and read from the
 * drop log (gateway/kernel/drops.h). Registered in handlers.c's table. */
#include "gateway/control.h"
#include "gateway/daemon.h"
#include "gateway/explain.h"
#include "gateway/handlers.h"
#include "gateway/health/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

	return d->prt && xb_posture_rt_ok(d->prt, rule, device);
}

static bool ex_learned_at(struct xb_daemon *d, size_t rule, int family, const uint8_t *addr,
			  int64_t *expires, char *set, size_t len)
{
	enum xb_set_kind k = family == AF_INET6 ? XB_SET_DNS6 : XB_SET_DNS4;

	return d->dns && xb_compile_set_name(set, len, d->policy, rule, k) &&
	       xb_dns_service_learned(d->dns, set, family, addr, expires);
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
			      "source", xb_hj_src(&r->src), "result", xb_explain_why_name(er->why),
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
	json_t *a = json_array(), *detail = d->prt ? xb_posture_rt_detail(d->prt, dev) : NULL;
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
		json_t *t = xb_hj_tunnel(d, pa->tunnels[i]);

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

int xb_cmd_explain(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
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
			return ex_fail(error, "out of memory");
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
	return *result ? 0 : ex_fail(error, "out of memory");
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
		"source", xb_hj_addr(x->family, x->src), "destination", xb_hj_addr(x->family, x->dst),
		"protocol", pn[x->proto] ? json_string(pn[x->proto]) : json_integer(x->proto),
		"port", x->dport ? json_integer(x->dport) : json_null(),
		"rule", x->rule[0] ? json_string(x->rule) : json_null(),
		"rule_source", r ? xb_hj_src(&r->src) : json_null(),
		"posture", dev != SIZE_MAX ? dr_posture(d, x, dev) : json_array());
}

int xb_cmd_drops(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
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
	*result = json_pack("{s:b, s:I, s:I, s:i, s:o}", "logging", xb_nl_is_open(&d->drops.nl),
			    "total", (json_int_t)d->drops.total, "lost", (json_int_t)d->drops.lost,
			    "rate_per_line", (int)XB_DROPS_RATE, "drops", a ? a : json_array());
	return *result ? 0 : ex_fail(error, "out of memory");
}
