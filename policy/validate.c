/* Checks between objects, once every file is read: duplicate names, keys
 * and addresses, references by name, addresses against pools, overlapping
 * prefixes, ports used twice. Each object is indexed in a hash table as it
 * is checked, so that the whole is linear in the number of devices; the
 * indexes stay with the policy for lookups.
 *
 * A duplicate is reported where it is defined the second time, citing the
 * first.
 */
#include "policy/internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SUGGEST_MAX 1000	/* names compared for "did you mean" */

/* A named array in the policy: every object struct starts with its
 * struct xb_src, and has its name at name_off. */
struct table {
	const char *kind;
	const void *base;
	size_t n, size, name_off;
	struct xb_map *map;
	bool tunnel;		/* names are tunnel names */
};

static const char *name_at(const struct table *t, size_t i)
{
	return *(char *const *)((const char *)t->base + i * t->size + t->name_off);
}

static struct xb_src src_at(const struct table *t, size_t i)
{
	return *(const struct xb_src *)((const char *)t->base + i * t->size);
}

/* "(first at 12)" or "(first at devices.d/a.conf:12)" */
static const char *first_at(char *buf, size_t len, struct xb_src here, struct xb_src first)
{
	if (here.file == first.file)
		snprintf(buf, len, "line %u", first.line);
	else
		snprintf(buf, len, "%s:%u", first.file, first.line);
	return buf;
}

static void index_names(struct ld *l, const struct table *t)
{
	char at[512];
	uint32_t old;

	for (size_t i = 0; i < t->n; i++) {
		const char *name = name_at(t, i);

		/* A bad name is reported; indexing it would hide that. */
		if (!name || !xbp_name_ok(name, t->tunnel ? XB_TUNNEL_NAME_MAX : XB_NAME_MAX, t->tunnel) ||
		    xbp_map_put(t->map, name, strlen(name), (uint32_t)i, &old))
			continue;
		if (old == UINT32_MAX)
			l->oom = true;
		else
			xbp_err_at(l, src_at(t, i), "duplicate %s name \"%s\" (first at %s)", t->kind,
				   name, first_at(at, sizeof(at), src_at(t, i), src_at(t, old)));
	}
}

static const char *suggest(const struct table *t, const char *name)
{
	const char **names;
	const char *s = NULL;
	size_t n = 0;

	if (t->n > SUGGEST_MAX || !(names = calloc(t->n + 1, sizeof(*names))))
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (name_at(t, i))
			names[n++] = name_at(t, i);
	s = xbp_suggest(name, names, n);
	free(names);
	return s;
}

static void resolve(struct ld *l, struct xb_src owner, const char *what, const char *key,
		    const struct table *t, struct xb_ref *refs, size_t n)
{
	char qb[QUOTE_MAX + 4];
	uint32_t idx;

	for (size_t i = 0; i < n; i++) {
		const char *hint;

		if (xbp_map_get(t->map, refs[i].name, strlen(refs[i].name), &idx)) {
			refs[i].idx = idx;
			continue;
		}
		hint = suggest(t, refs[i].name);
		xbp_err_at(l, (struct xb_src){ owner.file, refs[i].line },
			   "%s: %s: unknown %s `%s'%s%s%s", what, key, t->kind,
			   xbp_quote(qb, refs[i].name), hint ? " (did you mean `" : "",
			   hint ? hint : "", hint ? "'?)" : "");
	}
}

static const char *what_of(char *buf, size_t len, const char *kind, const char *name)
{
	char qb[QUOTE_MAX + 4];

	if (name)
		snprintf(buf, len, "%s \"%s\"", kind, xbp_quote(qb, name));
	else
		snprintf(buf, len, "%s without a name", kind);
	return buf;
}

static struct xb_src line_in(struct xb_src obj, unsigned line)
{
	return (struct xb_src){ obj.file, line ? line : obj.line };
}

/* A device's fixed address: in the pool, a host address, not the
 * gateway's, not another device's. */
static void device_addr(struct ld *l, struct xb_device *d, uint32_t idx, int family)
{
	const struct xb_gateway *g = &l->p->gateway;
	bool v4 = family == AF_INET;
	const struct xb_prefix *pool = v4 ? &g->pool4 : &g->pool6;
	const char *key = v4 ? "address4" : "address6", *pkey = v4 ? "pool4" : "pool6";
	const void *a = v4 ? (const void *)&d->address4 : (const void *)&d->address6;
	struct xb_map *m = v4 ? &l->p->index->addr4 : &l->p->index->addr6;
	struct xb_src at = { d->src.file, v4 ? d->address4_line : d->address6_line };
	char w[WHAT_MAX], ow[WHAT_MAX], ab[64], pb[64], fb[512];
	uint32_t old = idx;

	what_of(w, sizeof(w), "device", d->name);
	xbp_addr_format(ab, sizeof(ab), family, a);
	xbp_prefix_format(pb, sizeof(pb), pool);
	if (!(v4 ? g->has_pool4 : g->has_pool6))
		xbp_err_at(l, at, "%s: %s given, but the gateway has no %s", w, key, pkey);
	else if (!xbp_addr_in(pool, a))
		xbp_err_at(l, at, "%s: %s %s is outside %s %s", w, key, ab, pkey, pb);
	else if (xbp_addr_reserved(pool, a))
		xbp_err_at(l, at, "%s: %s %s is the network or broadcast address of %s %s", w, key,
			   ab, pkey, pb);
	else if (!memcmp(a, v4 ? (const void *)&g->address4 : (const void *)&g->address6, v4 ? 4 : 16))
		xbp_err_at(l, at, "%s: %s %s is the gateway's own address", w, key, ab);
	else if (!xbp_map_put(m, a, v4 ? 4 : 16, idx, &old) && old == UINT32_MAX)
		l->oom = true;
	else if (old != idx)
		xbp_err_at(l, at, "%s: %s %s is already %s's (%s)", w, key, ab,
			   what_of(ow, sizeof(ow), "device", l->p->devices[old].name),
			   first_at(fb, sizeof(fb), d->src, l->p->devices[old].src));
}

static void device_key(struct ld *l, struct xb_device *d, uint32_t idx)
{
	struct xb_src at = { d->src.file, d->key_line };
	char w[WHAT_MAX], ow[WHAT_MAX], fb[512];
	uint32_t old = idx;

	if (wg_key_is_zero(d->public_key))	/* missing or bad, reported */
		return;
	what_of(w, sizeof(w), "device", d->name);
	if (l->p->gateway.key.loaded && !memcmp(d->public_key, l->p->gateway.key.public_key, WG_KEY_LEN))
		xbp_err_at(l, at, "%s: public_key is the gateway's own", w);
	else if (!xbp_map_put(&l->p->index->keys, d->public_key, WG_KEY_LEN, idx, &old) &&
		 old == UINT32_MAX)
		l->oom = true;
	else if (old != idx)
		xbp_err_at(l, at, "%s: public_key is already %s's (%s)", w,
			   what_of(ow, sizeof(ow), "device", l->p->devices[old].name),
			   first_at(fb, sizeof(fb), d->src, l->p->devices[old].src));
}

static void check_devices(struct ld *l, const struct table *groups)
{
	struct xb_policy *p = l->p;
	char w[WHAT_MAX];

	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *d = &p->devices[i];

		device_key(l, d, (uint32_t)i);
		if (d->fixed4)
			device_addr(l, d, (uint32_t)i, AF_INET);
		if (d->fixed6)
			device_addr(l, d, (uint32_t)i, AF_INET6);
		resolve(l, d->src, what_of(w, sizeof(w), "device", d->name), "groups", groups,
			d->groups, d->n_groups);
	}
}

static const char *tunnel_what(char *buf, size_t len, const struct xb_tunnel *t)
{
	return what_of(buf, len, "tunnel", t->name);
}

/* A tunnel's inner prefix against the device pool and earlier tunnels'. */
static void tunnel_prefix(struct ld *l, size_t ti, bool v4)
{
	const struct xb_policy *p = l->p;
	const struct xb_tunnel *t = &p->tunnels[ti];
	const struct xb_prefix *a = v4 ? &t->address4 : &t->address6;
	const char *key = v4 ? "address4" : "address6";
	struct xb_src at = { t->src.file, v4 ? t->address4_line : t->address6_line };
	char w[WHAT_MAX], ow[WHAT_MAX], ab[64], pb[64];
	struct xb_prefix net = *a;

	if (!(v4 ? t->has_address4 : t->has_address6))
		return;
	xbp_prefix_mask(&net);
	tunnel_what(w, sizeof(w), t);
	xbp_prefix_format(ab, sizeof(ab), a);
	if (v4 ? p->gateway.has_pool4 : p->gateway.has_pool6) {
		const struct xb_prefix *pool = v4 ? &p->gateway.pool4 : &p->gateway.pool6;

		xbp_prefix_format(pb, sizeof(pb), pool);
		if (xbp_prefix_overlap(&net, pool))
			xbp_err_at(l, at, "%s: %s %s overlaps the device pool %s", w, key, ab, pb);
	}
	for (size_t j = 0; j < ti; j++) {
		const struct xb_tunnel *o = &p->tunnels[j];
		struct xb_prefix onet = v4 ? o->address4 : o->address6;

		xbp_prefix_mask(&onet);
		if ((v4 ? o->has_address4 : o->has_address6) && xbp_prefix_overlap(&net, &onet)) {
			xbp_prefix_format(pb, sizeof(pb), v4 ? &o->address4 : &o->address6);
			xbp_err_at(l, at, "%s: %s %s overlaps %s's %s %s", w, key, ab,
				   tunnel_what(ow, sizeof(ow), o), key, pb);
		}
	}
}

/* UDP ports bound on every address: the gateway's WireGuard port, the DNS
 * port, and each tunnel's own listen_port (0: chosen by the kernel). */
static void tunnel_port(struct ld *l, size_t ti)
{
	const struct xb_policy *p = l->p;
	const struct xb_tunnel *t = &p->tunnels[ti];
	struct xb_src at = line_in(t->src, t->listen_port_line);
	char w[WHAT_MAX], ow[WHAT_MAX];

	if (!t->listen_port)
		return;
	tunnel_what(w, sizeof(w), t);
	if (t->listen_port == p->gateway.listen_port)
		xbp_err_at(l, at, "%s: listen_port %u is the gateway's listen_port", w, t->listen_port);
	else if (t->listen_port == p->gateway.dns_port)
		xbp_err_at(l, at, "%s: listen_port %u is the gateway's dns_port", w, t->listen_port);
	for (size_t j = 0; j < ti; j++)
		if (p->tunnels[j].listen_port == t->listen_port)
			xbp_err_at(l, at, "%s: listen_port %u is already %s's", w, t->listen_port,
				   tunnel_what(ow, sizeof(ow), &p->tunnels[j]));
}

static void check_tunnels(struct ld *l)
{
	const struct xb_policy *p = l->p;
	char w[WHAT_MAX];

	for (size_t i = 0; i < p->n_tunnels; i++) {
		const struct xb_tunnel *t = &p->tunnels[i];

		tunnel_what(w, sizeof(w), t);
		if (t->name && (!strcmp(t->name, "best") || !strcmp(t->name, "internet")))
			xbp_err_at(l, t->src, "%s: the name is reserved (a rule's via uses it)", w);
		if (t->name && !strcmp(t->ifname, p->gateway.interface))
			xbp_err_at(l, t->src, "%s: its interface %s is the gateway's interface", w,
				   t->ifname);
		tunnel_prefix(l, i, true);
		tunnel_prefix(l, i, false);
		tunnel_port(l, i);
	}
}


static void check_gateway(struct ld *l)
{
	const struct xb_gateway *g = &l->p->gateway;

	if (!g->src.file)	/* no gateway section, reported */
		return;
	if (g->dns_port == g->listen_port)
		xbp_err_at(l, line_in(g->src, g->dns_port_line),
			   "gateway: dns_port %u is also the listen_port", g->dns_port);
	if (g->posture_port == g->dns_port)
		xbp_err_at(l, line_in(g->src, g->posture_port_line),
			   "gateway: posture_port %u is also the dns_port", g->dns_port);
}

static void check_rules(struct ld *l, const struct table *t)
{
	const struct xb_policy *p = l->p;
	char w[WHAT_MAX];

	for (size_t i = 0; i < p->n_rules; i++) {
		struct xb_rule *r = &p->rules[i];

		what_of(w, sizeof(w), "rule", r->name);
		resolve(l, r->src, w, "groups", &t[0], r->groups, r->n_groups);
		resolve(l, r->src, w, "devices", &t[1], r->devices, r->n_devices);
		resolve(l, r->src, w, "posture", &t[3], r->posture, r->n_posture);
		for (size_t k = 0; k < r->n_via; k++) {
			for (size_t j = 0; j < k; j++)
				if (r->via[j].kind == r->via[k].kind && r->via[k].tunnel.name &&
				    !strcmp(r->via[j].tunnel.name, r->via[k].tunnel.name))
					xbp_err_at(l, (struct xb_src){ r->src.file, r->via[k].tunnel.line },
						   "%s: via: tunnel \"%s\" is listed twice", w,
						   r->via[k].tunnel.name);
			if (r->via[k].kind == XB_VIA_TUNNEL)
				resolve(l, r->src, w, "via", &t[2], &r->via[k].tunnel, 1);
		}
	}
}

static void check_dns(struct ld *l, const struct table *tunnels)
{
	struct xb_dns *d = &l->p->dns;
	char w[WHAT_MAX];

	for (size_t i = 0; i < d->n_rules; i++) {
		struct xb_dns_rule *r = &d->rules[i];

		what_of(w, sizeof(w), "dns rule", r->name);
		if (r->tunnel.name)
			resolve(l, r->src, w, "tunnel", tunnels, &r->tunnel, 1);
		resolve(l, r->src, w, "tunnel", tunnels, r->tunnels, r->n_tunnels);
	}
}

#define TABLE(kind, arr, n, type, map) \
	{ kind, arr, n, sizeof(type), offsetof(type, name), map, !strcmp(kind, "tunnel") }

void xbp_validate(struct ld *l)
{
	struct xb_policy *p = l->p;
	struct xb_index *x = calloc(1, sizeof(*x));

	if (!(p->index = x)) {
		l->oom = true;
		return;
	}
	const struct table t[] = {
		TABLE("group", p->groups, p->n_groups, struct xb_group, &x->groups),
		TABLE("device", p->devices, p->n_devices, struct xb_device, &x->devices),
		TABLE("tunnel", p->tunnels, p->n_tunnels, struct xb_tunnel, &x->tunnels),
		TABLE("posture profile", p->profiles, p->n_profiles, struct xb_profile, &x->profiles),
		TABLE("rule", p->rules, p->n_rules, struct xb_rule, &x->rules),
		TABLE("dns rule", p->dns.rules, p->dns.n_rules, struct xb_dns_rule, &x->dns_rules),
		TABLE("mdm key", p->mdm_keys, p->n_mdm_keys, struct xb_mdm_key, &x->mdm_keys),
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		index_names(l, &t[i]);
	check_gateway(l);
	check_devices(l, &t[0]);
	check_tunnels(l);
	check_rules(l, t);
	check_dns(l, &t[2]);
}

void xbp_index_free(struct xb_index *x)
{
	if (!x)
		return;
	xbp_map_free(&x->groups);
	xbp_map_free(&x->devices);
	xbp_map_free(&x->keys);
	xbp_map_free(&x->addr4);
	xbp_map_free(&x->addr6);
	xbp_map_free(&x->tunnels);
	xbp_map_free(&x->profiles);
	xbp_map_free(&x->rules);
	xbp_map_free(&x->dns_rules);
	xbp_map_free(&x->mdm_keys);
	free(x);
}

static const void *by_name(const struct xb_map *m, const void *base, size_t size,
			   const char *name)
{
	uint32_t i;

	if (!xbp_map_get(m, name, strlen(name), &i))
		return NULL;
	return (const char *)base + i * size;
}

const struct xb_device *xb_policy_device_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->devices, p->devices, sizeof(*p->devices), name);
}

const struct xb_tunnel *xb_policy_tunnel_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->tunnels, p->tunnels, sizeof(*p->tunnels), name);
}

const struct xb_group *xb_policy_group_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->groups, p->groups, sizeof(*p->groups), name);
}

const struct xb_rule *xb_policy_rule_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->rules, p->rules, sizeof(*p->rules), name);
}

const struct xb_profile *xb_policy_profile_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->profiles, p->profiles, sizeof(*p->profiles), name);
}

const struct xb_mdm_key *xb_policy_mdm_key_by_name(const struct xb_policy *p, const char *name)
{
	return by_name(&p->index->mdm_keys, p->mdm_keys, sizeof(*p->mdm_keys), name);
}

const struct xb_device *xb_policy_device_by_key(const struct xb_policy *p,
						const uint8_t key[static WG_KEY_LEN])
{
	uint32_t i;

	return xbp_map_get(&p->index->keys, key, WG_KEY_LEN, &i) ? &p->devices[i] : NULL;
}

const struct xb_device *xb_policy_device_by_addr(const struct xb_policy *p, int family,
						 const void *addr)
{
	const struct xb_map *m = family == AF_INET ? &p->index->addr4 : &p->index->addr6;
	uint32_t i;

	return xbp_map_get(m, addr, family == AF_INET ? 4 : 16, &i) ? &p->devices[i] : NULL;
}
