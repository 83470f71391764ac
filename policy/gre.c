/* The GRE-only settings of a tunnel of type "gre": the outer addresses,
 * key, sequence numbers, checksums and keepalives (docs/gre.md). The
 * settings GRE and WireGuard share (addresses, peers, mtu, snat, backend)
 * are tunnel.c's. */
#include "policy/internal.h"
#include "tunnel/gre.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define GRE_KEEPALIVE_DEFAULT	10	/* seconds, as on most routers */
#define GRE_RETRIES_DEFAULT	3

/* local: our outer address, an IPv4 or IPv6 literal; it sets the family. */
static void local_addr(struct ld *l, const config_setting_t *s, const char *what,
		       struct xb_gre *g)
{
	const char *v = xbp_get_str(l, s, "local", what, &g->local_line);
	char qb[QUOTE_MAX + 4];

	if (!v) {
		if (!config_setting_get_member(s, "local"))
			xbp_err(l, s, "%s: no local (our outer address for GRE)", what);
		return;
	}
	if (xbp_addr_parse(AF_INET, v, &g->local))
		g->family = AF_INET;
	else if (xbp_addr_parse(AF_INET6, v, &g->local))
		g->family = AF_INET6;
	else
		xbp_err(l, config_setting_get_member(s, "local"),
			"%s: local `%s' is not an IPv4 or IPv6 address", what, xbp_quote(qb, v));
}

/* remote: the partner's outer address, or a DNS name resolved in the
 * family of local. */
static void remote_addr(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_gre *g)
{
	const config_setting_t *m = config_setting_get_member(s, "remote");
	const char *v = xbp_get_str(l, s, "remote", what, &g->remote_line);
	char qb[QUOTE_MAX + 4];
	int fam = 0;

	if (!v) {
		if (!m)
			xbp_err(l, s, "%s: no remote (the partner's outer address or name)", what);
		return;
	}
	if (xbp_addr_parse(AF_INET, v, &g->remote_addr))
		fam = AF_INET;
	else if (xbp_addr_parse(AF_INET6, v, &g->remote_addr))
		fam = AF_INET6;
	else if (!xbp_dns_name_ok(v)) {
		xbp_err(l, m, "%s: remote `%s' is not an address or a DNS name", what, xbp_quote(qb, v));
		return;
	}
	if (fam && g->family && fam != g->family)
		xbp_err(l, m, "%s: remote `%s' is %s but local is %s; GRE needs one outer family",
			what, xbp_quote(qb, v), fam == AF_INET ? "IPv4" : "IPv6",
			g->family == AF_INET ? "IPv4" : "IPv6");
	g->remote_is_name = !fam;
	if (!(g->remote = xbp_strdup(l, v)))
		return;
	for (char *c = g->remote; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (fam) {	/* canonical form, as printed */
		char buf[INET6_ADDRSTRLEN];

		inet_ntop(fam, &g->remote_addr, buf, sizeof(buf));
		free(g->remote);
		g->remote = xbp_strdup(l, buf);
	}
}

/* key: an integer or a string (dotted quad or digits). libconfig 1.5
 * keeps plain integers in 32 signed bits, wrapping larger ones, so keys
 * above 2147483647 are written as strings or with the L suffix; a wrapped
 * negative value is reported with that advice (a wrap to a positive value
 * cannot be seen). */
static void key(struct ld *l, const config_setting_t *s, const char *what, struct xb_gre *g)
{
	const config_setting_t *m = config_setting_get_member(s, "key");
	char qb[QUOTE_MAX + 4];
	long v;

	if (!m)
		return;
	if (config_setting_type(m) == CONFIG_TYPE_STRING) {
		const char *str = config_setting_get_string(m);

		if (!(g->has_key = gre_key_parse(str, &g->key)))
			xbp_err(l, m, "%s: key `%s' is not an integer (0-4294967295) or a dotted quad",
				what, xbp_quote(qb, str));
		return;
	}
	if (config_setting_type(m) == CONFIG_TYPE_INT && config_setting_get_int64(m) < 0) {
		xbp_err(l, m, "%s: key %lld is negative; write keys above 2147483647 as a string "
			"(\"4294967295\") or a dotted quad", what, config_setting_get_int64(m));
		return;
	}
	if (xbp_get_int(l, s, "key", what, 0, 4294967295L, &v)) {
		g->has_key = true;
		g->key = (uint32_t)v;
	}
}

void xbp_parse_gre(struct ld *l, const config_setting_t *s, const char *what, struct xb_tunnel *t)
{
	struct xb_gre *g = &t->gre;
	long v;

	g->keepalive = GRE_KEEPALIVE_DEFAULT;
	g->keepalive_retries = GRE_RETRIES_DEFAULT;
	local_addr(l, s, what, g);
	remote_addr(l, s, what, g);
	key(l, s, what, g);
	xbp_get_bool(l, s, "sequence", what, &g->sequence);
	xbp_get_bool(l, s, "checksum", what, &g->checksum);
	if (xbp_get_int(l, s, "keepalive", what, 0, 3600, &v))
		g->keepalive = (uint16_t)v;
	if (xbp_get_int(l, s, "keepalive_retries", what, 1, 255, &v))
		g->keepalive_retries = (uint8_t)v;
	/* A tunnel's own mtu, parsed after this, replaces it. */
	t->mtu = GRE_DEFAULT_MTU(g->family == AF_INET6, g->has_key + g->sequence + g->checksum);
}
