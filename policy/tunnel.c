/* The tunnels section. A WireGuard tunnel to a partner is written inline
 * (private_key_file, public_key, endpoint, ...) or taken from the wg-quick
 * file the partner handed out (`config'); with a file, the policy may still
 * set everything but the keys, and what it sets wins over the file.
 * A GRE tunnel (type "gre") has its own outer settings (gre.c); a setting
 * of the other type is an error, not ignored.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MTU_MIN		576	/* the smallest IPv4 datagram every host accepts */
#define MTU_MIN6	1280	/* IPv6's minimum link MTU */
#define MTU_MAX		9000
#define MTU_DEFAULT	1420	/* 1500 less IPv6 + UDP + WireGuard overhead */
#define KEEPALIVE_DEFAULT 25	/* seconds: keeps NAT mappings on the path open */

static const char *const tunnel_keys[] = {
	"name", "type", "backend", "config", "private_key_file", "public_key",
	"preshared_key_file", "endpoint", "listen_port", "address4", "address6", "peer4",
	"peer6", "allowed_ips", "keepalive", "mtu", "snat",
	"local", "remote", "key", "sequence", "checksum", "keepalive_retries",
	"probe_interval", "probe_targets", "slo", NULL
};
/* Settings of one type only (`keepalive' is both's, with its own meaning). */
static const char *const wg_only_keys[] = {
	"config", "private_key_file", "public_key", "preshared_key_file", "endpoint",
	"listen_port", "allowed_ips", NULL
};
static const char *const gre_only_keys[] = {
	"local", "remote", "key", "sequence", "checksum", "keepalive_retries", NULL
};
/* Key material comes either from the policy or from the wg-quick file. */
static const char *const key_keys[] = { "private_key_file", "public_key", "preshared_key_file", NULL };

bool xbp_dns_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;
	bool digits = true;

	if (!n || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' || !c) {
			if (!label || label > 63 || s[i - 1] == '-')
				return false;
			if (!c)
				break;
			label = 0;
			digits = true;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && label))
			return false;
		digits &= isdigit(c) != 0;
		label++;
	}
	return !digits;
}

static bool parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (!n || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!v || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool xbp_endpoint_parse(struct xb_tunnel *t, const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[256];
	uint8_t a[16];
	size_t n;
	bool bracket = s[0] == '[';

	if (!colon || !parse_port(colon + 1, &t->endpoint_port))
		return false;
	n = (size_t)(colon - s);
	if (bracket && (n < 2 || s[n - 1] != ']'))
		return false;
	if (bracket)
		s++, n -= 2;
	if (n >= sizeof(host))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	if (bracket ? inet_pton(AF_INET6, host, a) != 1
		    : inet_pton(AF_INET, host, a) != 1 && !xbp_dns_name_ok(host))
		return false;
	t->endpoint_is_name = !bracket && inet_pton(AF_INET, host, a) != 1;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	free(t->endpoint_host);
	t->endpoint_host = strdup(host);
	return t->endpoint_host != NULL;
}

/* The wg-quick parser's "FILE:LINE: message" lines, as our errors. */
static void wg_errors(struct ld *l, const char *file, char *text)
{
	size_t flen = strlen(file);

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *msg = line;
		unsigned long n = 0;

		if (!strncmp(line, file, flen) && line[flen] == ':') {
			msg = line + flen + 1;
			n = strtoul(msg, &msg, 10);
			msg += strspn(msg, ": ");
		}
		xb_errors_add(l->errs, file, (unsigned)n, "%s", msg);
	}
}

static void set_endpoint(struct ld *l, const config_setting_t *m, const char *what,
			 struct xb_tunnel *t, const char *from, const char *v)
{
	char qb[QUOTE_MAX + 4];

	if (!xbp_endpoint_parse(t, v))
		xbp_err(l, m, "%s: %s%sendpoint `%s' is not host:port", what, from ? from : "",
			from ? ": " : "", xbp_quote(qb, v));
}

/* The partner's peer section of a wg-quick file. */
static void import_peer(struct ld *l, const config_setting_t *m, const char *what,
			struct xb_tunnel *t, const char *from, const struct wg_peer_conf *pc)
{
	char ep[INET6_ADDRSTRLEN + 16];

	memcpy(t->peer_public_key, pc->public_key, WG_KEY_LEN);
	if (pc->has_preshared_key && !wg_key_is_zero(pc->preshared_key)) {
		memcpy(t->psk.key, pc->preshared_key, WG_KEY_LEN);
		t->has_psk = t->psk.loaded = true;
	}
	if (pc->endpoint.sa.sa_family != AF_UNSPEC) {
		xb_endpoint_format(ep, sizeof(ep), &pc->endpoint);
		set_endpoint(l, m, what, t, from, ep);
	} else if (pc->endpoint_host) {
		set_endpoint(l, m, what, t, from, pc->endpoint_host);
	}
	if (pc->has_persistent_keepalive)
		t->keepalive = pc->persistent_keepalive;
	for (size_t i = 0; i < pc->n_allowed_ips; i++) {
		struct xb_prefix a = pc->allowed_ips[i];

		xbp_prefix_mask(&a);
		if (!xb_prefix_append(&t->allowed_ips, &t->n_allowed_ips, &a))
			l->oom = true;
	}
}

static void import_addresses(struct ld *l, const config_setting_t *m, const char *what,
			     struct xb_tunnel *t, const char *from, const struct wg_conf *c)
{
	for (size_t i = 0; i < c->n_addresses; i++) {
		bool v4 = c->addresses[i].family == AF_INET;
		bool *has = v4 ? &t->has_address4 : &t->has_address6;

		if (*has) {
			xbp_err(l, m, "%s: %s: more than one %s Address; a tunnel has one of each family",
				what, from, v4 ? "IPv4" : "IPv6");
			continue;
		}
		*has = true;
		*(v4 ? &t->address4 : &t->address6) = c->addresses[i];
	}
}

static void key_conflicts(struct ld *l, const config_setting_t *s, const char *what)
{
	for (size_t i = 0; key_keys[i]; i++)
		if (config_setting_get_member(s, key_keys[i]))
			xbp_err(l, config_setting_get_member(s, key_keys[i]),
				"%s: %s cannot be combined with config (the keys come from the file)",
				what, key_keys[i]);
}

/* False when the file cannot be used (reported). */
static bool import_wgquick(struct ld *l, const config_setting_t *s, const char *what,
			   struct xb_tunnel *t)
{
	const config_setting_t *m = config_setting_get_member(s, "config");
	const char *v = xbp_get_str(l, s, "config", what, NULL), *shown;
	struct wg_conf c;
	char err[8192];

	if (!v)
		return false;
	key_conflicts(l, s, what);
	t->config = xbp_strdup(l, v);
	t->config_resolved = xbp_join(l->p->dir, v);
	shown = xbp_intern_name(l, xbp_join(l->dir, v));
	if (!t->config || !t->config_resolved) {
		l->oom = true;
		return false;
	}
	if (!xbp_secret_file_ok(l, m, what, v, t->config_resolved))
		return false;
	if (wg_conf_parse_file(&c, shown, err, sizeof(err))) {
		wg_errors(l, shown, err);
		return false;
	}
	if (c.n_peers != 1)
		xbp_err(l, m, "%s: %s has %zu [Peer] sections; a tunnel has exactly one partner",
			what, shown, c.n_peers);
	if (!c.has_private_key || wg_key_is_zero(c.private_key))
		xbp_err(l, m, "%s: %s has no PrivateKey", what, shown);
	memcpy(t->key.key, c.private_key, WG_KEY_LEN);
	crypto_scalarmult_curve25519_base(t->key.public_key, t->key.key);
	t->key.loaded = c.has_private_key;
	if (c.n_peers)
		import_peer(l, m, what, t, shown, &c.peers[0]);
	import_addresses(l, m, what, t, shown, &c);
	if (c.mtu)
		t->mtu = c.mtu;
	if (c.has_listen_port)
		t->listen_port = c.listen_port;
	wg_conf_free(&c);
	return true;
}

static void inline_keys(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_tunnel *t)
{
	char qb[QUOTE_MAX + 4];
	const char *v;

	if (!xbp_key_file(l, s, what, "private_key_file", &t->key, true) &&
	    !config_setting_get_member(s, "private_key_file"))
		xbp_err(l, s, "%s: no private_key_file (or config)", what);
	if (xbp_key_file(l, s, what, "preshared_key_file", &t->psk, false))
		t->has_psk = true;
	v = xbp_get_str(l, s, "public_key", what, NULL);
	if (v && !wg_key_from_base64(t->peer_public_key, v))
		xbp_err(l, config_setting_get_member(s, "public_key"),
			"%s: public_key `%s' is not a base64 WireGuard key", what, xbp_quote(qb, v));
	else if (!v && !config_setting_get_member(s, "public_key"))
		xbp_err(l, s, "%s: no public_key (the partner's key)", what);
}

/* address4/address6: the tunnel's inner address with its prefix length
 * ("192.0.2.1/30"; no length: a host route). */
static void inner_address(struct ld *l, const config_setting_t *s, const char *what,
			  int family, struct xb_prefix *a, bool *has, unsigned *line)
{
	const char *key = family == AF_INET ? "address4" : "address6";
	const config_setting_t *m = config_setting_get_member(s, key);
	const char *v = xbp_get_str(l, s, key, what, line);
	char qb[QUOTE_MAX + 4];
	struct xb_prefix p, net;

	if (!v)
		return;
	if (!xb_prefix_parse(&p, v) || p.family != family) {
		xbp_err(l, m, "%s: %s `%s' is not an %s address/prefix", what, key,
			xbp_quote(qb, v), family == AF_INET ? "IPv4" : "IPv6");
		return;
	}
	net = p;
	xbp_prefix_mask(&net);
	if (p.cidr < (family == AF_INET ? 31 : 127) && xbp_addr_reserved(&net, p.addr)) {
		xbp_err(l, m, "%s: %s `%s' is the network or broadcast address of its prefix",
			what, key, xbp_quote(qb, v));
		return;
	}
	*a = p;
	*has = true;
}

static void peer_address(struct ld *l, const config_setting_t *s, const char *what,
			 int family, void *addr, bool *has)
{
	const char *key = family == AF_INET ? "peer4" : "peer6";
	const char *v = xbp_get_str(l, s, key, what, NULL);
	char qb[QUOTE_MAX + 4];

	if (!v)
		return;
	if (xbp_addr_parse(family, v, addr))
		*has = true;
	else
		xbp_err(l, config_setting_get_member(s, key), "%s: %s `%s' is not an %s address",
			what, key, xbp_quote(qb, v), family == AF_INET ? "IPv4" : "IPv6");
}

static void allowed_ips(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_tunnel *t)
{
	const config_setting_t *list = xbp_get_list(l, s, "allowed_ips", what);
	char qb[QUOTE_MAX + 4];

	if (!list)
		return;
	t->n_allowed_ips = 0;
	for (int i = 0; i < config_setting_length(list); i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "allowed_ips", what);
		struct xb_prefix p;

		if (!v)
			continue;
		if (!xb_prefix_parse(&p, v) || xbp_prefix_host_bits(&p))
			xbp_err(l, e, "%s: allowed_ips `%s' is not a network prefix", what,
				xbp_quote(qb, v));
		else if (!xb_prefix_append(&t->allowed_ips, &t->n_allowed_ips, &p))
			l->oom = true;
	}
}

/* "a, b or c" */
static void one_of(char *buf, size_t len, const char *const *names)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s",
				      !i ? "" : names[i + 1] ? ", " : " or ", names[i]);
}

static void enum_value(struct ld *l, const config_setting_t *s, const char *what,
		       const char *key, const char *const *names, int *out)
{
	const char *v = xbp_get_str(l, s, key, what, NULL);
	char qb[QUOTE_MAX + 4], list[128];

	if (!v)
		return;
	for (int i = 0; names[i]; i++) {
		if (!strcmp(v, names[i])) {
			*out = i;
			return;
		}
	}
	one_of(list, sizeof(list), names);
	xbp_err(l, config_setting_get_member(s, key), "%s: %s `%s' is not %s", what, key,
		xbp_quote(qb, v), list);
}

static const char *const type_names[] = { "wireguard", "gre", NULL };
static const char *const backend_names[] = { "auto", "kernel", "userspace", NULL };

const char *xb_backend_name(enum xb_backend b)
{
	return backend_names[b];
}

static void scalars(struct ld *l, const config_setting_t *s, const char *what,
		    struct xb_tunnel *t)
{
	int backend = 0;
	long v;

	enum_value(l, s, what, "backend", backend_names, &backend);
	t->backend = (enum xb_backend)backend;
	if (xbp_get_int(l, s, "mtu", what, MTU_MIN, MTU_MAX, &v))
		t->mtu = (unsigned)v;
	xbp_get_bool(l, s, "snat", what, &t->snat);
}

static void wg_scalars(struct ld *l, const config_setting_t *s, const char *what,
		       struct xb_tunnel *t)
{
	const config_setting_t *m;
	long v;

	if (xbp_get_int(l, s, "listen_port", what, 0, 65535, &v))
		t->listen_port = (uint16_t)v;
	if ((m = config_setting_get_member(s, "listen_port")))
		t->listen_port_line = config_setting_source_line(m);
	if (xbp_get_int(l, s, "keepalive", what, 0, 65535, &v))
		t->keepalive = (uint16_t)v;
}

/* Settings that belong to the other type of tunnel. */
static void foreign_keys(struct ld *l, const config_setting_t *s, const char *what,
			 const char *const *keys, const char *type)
{
	for (size_t i = 0; keys[i]; i++)
		if (config_setting_get_member(s, keys[i]))
			xbp_err(l, config_setting_get_member(s, keys[i]),
				"%s: %s is a %s setting; this tunnel is of type \"%s\"", what, keys[i],
				type, type[0] == 'G' ? "wireguard" : "gre");
}

/* Checks within one tunnel, once the file and the policy are merged. */
static void check_tunnel(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_tunnel *t)
{
	static const struct xb_prefix any4 = { .family = AF_INET }, any6 = { .family = AF_INET6 };

	if (t->config && (t->mtu < MTU_MIN || t->mtu > MTU_MAX))
		xbp_err(l, s, "%s: MTU %u of %s is out of range (%u-%u)", what, t->mtu, t->config,
			MTU_MIN, MTU_MAX);
	else if (t->has_address6 && t->mtu < MTU_MIN6)
		xbp_err(l, s, "%s: mtu %u is below %u, the IPv6 minimum, and the tunnel has address6",
			what, t->mtu, MTU_MIN6);
	if (t->snat && !t->has_address4 && !t->has_address6 && !t->config &&
	    !config_setting_get_member(s, "address4") && !config_setting_get_member(s, "address6"))
		xbp_err(l, s, "%s: snat needs an inner address (address4 or address6)", what);
	if ((t->has_peer4 && t->has_address4 && !memcmp(&t->peer4, t->address4.addr, 4)) ||
	    (t->has_peer6 && t->has_address6 && !memcmp(&t->peer6, t->address6.addr, 16)))
		xbp_err(l, s, "%s: a peer address is the tunnel's own address", what);
	if (t->type == XB_TUNNEL_WIREGUARD && !t->n_allowed_ips && (!xb_prefix_append(&t->allowed_ips, &t->n_allowed_ips, &any4) ||
				  !xb_prefix_append(&t->allowed_ips, &t->n_allowed_ips, &any6)))
		l->oom = true;
}

static void parse_wireguard(struct ld *l, const config_setting_t *s, const char *what,
			    struct xb_tunnel *t)
{
	const char *v;
	bool keys_ok = true;

	t->keepalive = KEEPALIVE_DEFAULT;
	t->mtu = MTU_DEFAULT;
	foreign_keys(l, s, what, gre_only_keys, "GRE");
	if (config_setting_get_member(s, "config"))
		keys_ok = import_wgquick(l, s, what, t);
	else
		inline_keys(l, s, what, t);
	if ((v = xbp_get_str(l, s, "endpoint", what, NULL)))
		set_endpoint(l, config_setting_get_member(s, "endpoint"), what, t, NULL, v);
	else if (!t->endpoint_host && !config_setting_get_member(s, "endpoint") && keys_ok)
		xbp_err(l, s, "%s: no endpoint (host:port of the partner)", what);
}

static void parse_tunnel(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_tunnel *t = obj;
	char what[WHAT_MAX];
	const char *name = xbp_obj_name(l, s, "tunnel", idx, true, what, sizeof(what));
	int type = 0;

	t->src = xbp_src(l, s);
	t->name = name ? xbp_strdup(l, name) : NULL;
	snprintf(t->ifname, sizeof(t->ifname), "xb-%s", name ? name : "");
	t->snat = true;
	xbp_check_keys(l, s, what, tunnel_keys);
	enum_value(l, s, what, "type", type_names, &type);
	t->type = (enum xb_tunnel_type)type;
	if (t->type == XB_TUNNEL_GRE) {
		foreign_keys(l, s, what, wg_only_keys, "WireGuard");
		xbp_parse_gre(l, s, what, t);
	} else {
		parse_wireguard(l, s, what, t);
	}
	inner_address(l, s, what, AF_INET, &t->address4, &t->has_address4, &t->address4_line);
	inner_address(l, s, what, AF_INET6, &t->address6, &t->has_address6, &t->address6_line);
	peer_address(l, s, what, AF_INET, &t->peer4, &t->has_peer4);
	peer_address(l, s, what, AF_INET6, &t->peer6, &t->has_peer6);
	if (t->type == XB_TUNNEL_WIREGUARD) {
		allowed_ips(l, s, what, t);
		wg_scalars(l, s, what, t);
	}
	scalars(l, s, what, t);
	xbp_parse_probe(l, s, what, t);
	check_tunnel(l, s, what, t);
}

void xbp_parse_tunnels(struct ld *l, const config_setting_t *s)
{
	xbp_parse_objects(l, s, "tunnels", &l->p->tunnels, &l->p->n_tunnels,
			  sizeof(*l->p->tunnels), parse_tunnel);
}
