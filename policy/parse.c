/* The gateway, groups and devices sections: each value's
 * type, syntax and range. Checks between objects (duplicates, references,
 * addresses against pools) are validate.c's.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define POOL4_MIN 8	/* pool prefix lengths: a pool has at least two hosts */
#define POOL4_MAX 30
#define POOL6_MIN 32
#define POOL6_MAX 126

static const char *const gateway_keys[] = {
	"interface", "listen_port", "private_key_file", "pool4", "pool6", "address4",
	"address6", "dns_port", "dns_tap", "posture_port", "posture_admin", "posture_limits",
	"control_socket", "state_dir",
	"metrics", "metrics_devices_max", "status_interval", "notify_command", "notify_webhook",
	"notify", "slo", "address_quarantine",
	"enrol_file", "enrol_endpoint", NULL
};
static const char *const device_keys[] = {
	"name", "public_key", "groups", "address4", "address6", "expires", NULL
};

static const char *fam_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

static void missing(struct ld *l, const config_setting_t *s, const char *what, const char *key)
{
	if (!config_setting_get_member(s, key))
		xbp_err(l, s, "%s: no %s", what, key);
}

/* pool4/pool6: a network prefix of the family (no host bits). */
static void parse_pool(struct ld *l, const config_setting_t *s, const char *key, int family,
		       struct xb_prefix *pool, bool *has, unsigned *line)
{
	const char *v = xbp_get_str(l, s, key, "gateway", line);
	const config_setting_t *m = config_setting_get_member(s, key);
	unsigned lo = family == AF_INET ? POOL4_MIN : POOL6_MIN;
	unsigned hi = family == AF_INET ? POOL4_MAX : POOL6_MAX;
	char qb[QUOTE_MAX + 4], fixed[64];
	struct xb_prefix p;

	if (!v)
		return;
	if (!xb_prefix_parse(&p, v) || p.family != family || !strchr(v, '/')) {
		xbp_err(l, m, "gateway: %s `%s' is not an %s prefix", key, xbp_quote(qb, v),
			fam_name(family));
	} else if (p.cidr < lo || p.cidr > hi) {
		xbp_err(l, m, "gateway: %s `%s': the prefix length must be %u-%u", key,
			xbp_quote(qb, v), lo, hi);
	} else if (xbp_prefix_host_bits(&p)) {
		xbp_prefix_mask(&p);
		xbp_prefix_format(fixed, sizeof(fixed), &p);
		xbp_err(l, m, "gateway: %s `%s' has host bits set (did you mean %s?)", key,
			xbp_quote(qb, v), fixed);
	} else {
		*pool = p;
		*has = true;
	}
}

/* The gateway's own address in a pool; default: the first host. */
static void parse_gw_addr(struct ld *l, const config_setting_t *s, const char *key,
			  const struct xb_prefix *pool, bool has_pool, void *addr)
{
	const config_setting_t *m = config_setting_get_member(s, key);
	const char *v = xbp_get_str(l, s, key, "gateway", NULL);
	char qb[QUOTE_MAX + 4], pb[64];
	const char *pool_key = pool->family == AF_INET6 ? "pool6" : "pool4";

	if (!v) {
		if (has_pool)
			xbp_pool_nth(pool, 1, addr);
		return;
	}
	if (!xbp_addr_parse(!strcmp(key, "address4") ? AF_INET : AF_INET6, v, addr)) {
		xbp_err(l, m, "gateway: %s `%s' is not an %s address", key, xbp_quote(qb, v),
			!strcmp(key, "address4") ? "IPv4" : "IPv6");
		return;
	}
	if (!has_pool) {
		if (!config_setting_get_member(s, pool_key))
			xbp_err(l, m, "gateway: %s needs %s", key, pool_key);
		return;
	}
	xbp_prefix_format(pb, sizeof(pb), pool);
	if (!xbp_addr_in(pool, addr))
		xbp_err(l, m, "gateway: %s %s is outside %s %s", key, v, pool_key, pb);
	else if (xbp_addr_reserved(pool, addr))
		xbp_err(l, m, "gateway: %s %s is the network or broadcast address of %s %s", key,
			v, pool_key, pb);
}

static uint16_t get_port(struct ld *l, const config_setting_t *s, const char *key,
			 uint16_t dflt, unsigned *line)
{
	config_setting_t *m = config_setting_get_member(s, key);
	long v;

	if (line && m)
		*line = config_setting_source_line(m);
	return xbp_get_int(l, s, key, "gateway", 1, 65535, &v) ? (uint16_t)v : dflt;
}

/* posture_admin: "ADDR:PORT" or "[ADDR]:PORT", an address literal (no
 * name: the daemon binds it before any resolver is asked). */
static void parse_admin(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const config_setting_t *m = config_setting_get_member(s, "posture_admin");
	const char *v = xbp_get_str(l, s, "posture_admin", "gateway", &g->posture_admin_line);
	char qb[QUOTE_MAX + 4], host[INET6_ADDRSTRLEN + 2], *end;
	const char *colon, *h = v;
	size_t hl;
	long port;

	if (!v)
		return;
	colon = strrchr(v, ':');
	if (v[0] == '[') {
		const char *rb = strchr(v, ']');

		h = v + 1;
		colon = rb && rb[1] == ':' ? rb + 1 : NULL;
		hl = rb ? (size_t)(rb - h) : 0;
	} else {
		hl = colon ? (size_t)(colon - v) : 0;
	}
	port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || !hl || hl >= sizeof(host) || !colon[1] || *end || port < 1 || port > 65535) {
		xbp_err(l, m, "gateway: posture_admin `%s' is not ADDRESS:PORT", xbp_quote(qb, v));
		return;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	g->posture_admin_family = v[0] == '[' ? AF_INET6 : AF_INET;
	if (!xbp_addr_parse(g->posture_admin_family, host, &g->posture_admin_addr)) {
		xbp_err(l, m, "gateway: posture_admin `%s': `%s' is not an %s address%s",
			xbp_quote(qb, v), host, fam_name(g->posture_admin_family),
			v[0] != '[' && strchr(host, ':') ? " (write IPv6 as [ADDR]:PORT)" : "");
		return;
	}
	g->posture_admin_port = (uint16_t)port;
	g->has_posture_admin = true;
}

/* An absolute path; max: its longest length (0: PATH_MAX). */
static char *get_abs_path(struct ld *l, const config_setting_t *s, const char *key,
			  const char *dflt, size_t max)
{
	const config_setting_t *m = config_setting_get_member(s, key);
	const char *v = xbp_get_str(l, s, key, "gateway", NULL);
	char qb[QUOTE_MAX + 4];

	if (!v)
		return xbp_strdup(l, dflt);
	if (v[0] != '/')
		xbp_err(l, m, "gateway: %s `%s' is not an absolute path", key, xbp_quote(qb, v));
	else if (max && strlen(v) > max)
		xbp_err(l, m, "gateway: %s `%s' is longer than %zu bytes", key, xbp_quote(qb, v), max);
	return xbp_strdup(l, v);
}

static void parse_interface(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const char *v = xbp_get_str(l, s, "interface", "gateway", NULL);
	char qb[QUOTE_MAX + 4];

	strcpy(g->interface, "xb-dev");
	if (!v)
		return;
	if (!xbp_name_ok(v, XB_IFNAME_MAX, false))
		xbp_err(l, config_setting_get_member(s, "interface"),
			"gateway: interface `%s' is not an interface name (1-15 letters, digits, "
			"'.', '_' and '-', starting with a letter or digit)", xbp_quote(qb, v));
	else
		strcpy(g->interface, v);
}

/* enrol_file: a relative or absolute file name (not a pattern: the daemon
 * writes it); enrol_endpoint: HOST:PORT as a device's Endpoint. */
static void parse_enrol(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const char *f = xbp_get_str(l, s, "enrol_file", "gateway", NULL);
	const char *e = xbp_get_str(l, s, "enrol_endpoint", "gateway", NULL);
	char qb[QUOTE_MAX + 4];
	struct xb_tunnel t = { 0 };

	if (f && (!*f || strpbrk(f, "*?[") || f[strlen(f) - 1] == '/'))
		xbp_err(l, config_setting_get_member(s, "enrol_file"),
			"gateway: enrol_file `%s' is not a file name (no wildcards)", xbp_quote(qb, f));
	else if (f) {
		g->enrol_file = xbp_strdup(l, f);
		g->enrol_file_resolved = xbp_join(l->p->dir, f);
		l->oom |= !g->enrol_file_resolved;
	}
	if (e && !xbp_endpoint_parse(&t, e))
		xbp_err(l, config_setting_get_member(s, "enrol_endpoint"),
			"gateway: enrol_endpoint `%s' is not host:port", xbp_quote(qb, e));
	else if (e)
		g->enrol_endpoint = xbp_strdup(l, e);
	free(t.endpoint_host);
}

void xbp_parse_gateway(struct ld *l, const config_setting_t *s)
{
	struct xb_gateway *g = &l->p->gateway;
	long v;

	g->src = xbp_src(l, s);
	xbp_check_keys(l, s, "gateway", gateway_keys);
	parse_interface(l, s, g);
	g->listen_port = get_port(l, s, "listen_port", 51820, &g->listen_port_line);
	if (!xbp_key_file(l, s, "gateway", "private_key_file", &g->key, true))
		missing(l, s, "gateway", "private_key_file");
	parse_pool(l, s, "pool4", AF_INET, &g->pool4, &g->has_pool4, &g->pool4_line);
	parse_pool(l, s, "pool6", AF_INET6, &g->pool6, &g->has_pool6, &g->pool6_line);
	g->pool4.family = AF_INET;
	g->pool6.family = AF_INET6;
	if (!config_setting_get_member(s, "pool4") && !config_setting_get_member(s, "pool6"))
		xbp_err(l, s, "gateway: no pool4 or pool6 (devices need addresses)");
	parse_gw_addr(l, s, "address4", &g->pool4, g->has_pool4, &g->address4);
	parse_gw_addr(l, s, "address6", &g->pool6, g->has_pool6, &g->address6);
	g->dns_port = get_port(l, s, "dns_port", 53, &g->dns_port_line);
	g->dns_tap = true;
	xbp_get_bool(l, s, "dns_tap", "gateway", &g->dns_tap);
	g->posture_port = get_port(l, s, "posture_port", 8443, &g->posture_port_line);
	parse_admin(l, s, g);
	xbp_parse_posture_limits(l, s, g);
	g->control_socket = get_abs_path(l, s, "control_socket", "/run/xborder/control.sock",
					 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	g->state_dir = get_abs_path(l, s, "state_dir", "/var/lib/xborder", 0);
	g->address_quarantine = XB_ADDRESS_QUARANTINE;
	if (xbp_get_int(l, s, "address_quarantine", "gateway", 0, 30 * 86400, &v))
		g->address_quarantine = (unsigned)v;
	xbp_parse_health(l, s, g);
	parse_enrol(l, s, g);
}

void xbp_parse_groups(struct ld *l, const config_setting_t *s)
{
	struct xb_policy *p = l->p;
	char qb[QUOTE_MAX + 4];

	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *name = xbp_elem_str(l, e, "groups", "groups");
		struct xb_group *v;

		if (!name)
			continue;
		if (!xbp_name_ok(name, XB_NAME_MAX, false)) {
			xbp_err(l, e, "groups: `%s' is not a valid name (1-63 letters, digits, '.', "
				"'_' and '-', starting with a letter or digit)", xbp_quote(qb, name));
			continue;
		}
		if (!(v = xb_grow(p->groups, p->n_groups, sizeof(*v)))) {
			l->oom = true;
			return;
		}
		p->groups = v;
		v[p->n_groups] = (struct xb_group){ xbp_src(l, e), xbp_strdup(l, name) };
		p->n_groups += v[p->n_groups].name != NULL;
	}
}

static void parse_dev_addr(struct ld *l, const config_setting_t *s, const char *what,
			   int family, void *addr, bool *fixed, unsigned *line)
{
	const char *key = family == AF_INET ? "address4" : "address6";
	const char *v = xbp_get_str(l, s, key, what, line);
	char qb[QUOTE_MAX + 4];

	if (!v)
		return;
	if (xbp_addr_parse(family, v, addr))
		*fixed = true;
	else
		xbp_err(l, config_setting_get_member(s, key), "%s: %s `%s' is not an %s address",
			what, key, xbp_quote(qb, v), fam_name(family));
}

static void parse_device(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_device *d = obj;
	char what[WHAT_MAX], qb[QUOTE_MAX + 4];
	const char *name = xbp_obj_name(l, s, "device", idx, false, what, sizeof(what));
	const char *key;

	d->src = xbp_src(l, s);
	d->name = name ? xbp_strdup(l, name) : NULL;
	xbp_check_keys(l, s, what, device_keys);
	key = xbp_get_str(l, s, "public_key", what, &d->key_line);
	if (key && !wg_key_from_base64(d->public_key, key))
		xbp_err(l, config_setting_get_member(s, "public_key"),
			"%s: public_key `%s' is not a base64 WireGuard key", what, xbp_quote(qb, key));
	else if (!key)
		missing(l, s, what, "public_key");
	xbp_get_refs(l, s, "groups", what, &d->groups, &d->n_groups);
	parse_dev_addr(l, s, what, AF_INET, &d->address4, &d->fixed4, &d->address4_line);
	parse_dev_addr(l, s, what, AF_INET6, &d->address6, &d->fixed6, &d->address6_line);
	d->has4 = d->fixed4;
	d->has6 = d->fixed6;
	if ((key = xbp_get_str(l, s, "expires", what, &d->expires_line)) &&
	    !xb_time_parse(key, &d->expires))
		xbp_err(l, config_setting_get_member(s, "expires"),
			"%s: expires `%s' is not a time like \"2027-01-31T00:00:00Z\" (RFC 3339, UTC "
			"or with an offset)", what, xbp_quote(qb, key));
}

/* Devices are kept even when something in them is wrong, so that the
 * checks between objects still see them (a bad key stays all-zero, a bad
 * name NULL); the load fails anyway. */
void xbp_parse_devices(struct ld *l, const config_setting_t *s)
{
	xbp_parse_objects(l, s, "devices", &l->p->devices, &l->p->n_devices,
			  sizeof(*l->p->devices), parse_device);
}
