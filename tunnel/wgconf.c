/* WireGuard configuration values: keys, prefixes, endpoints, and the owning
 * structure. Every decoder here accepts exactly one canonical spelling of a
 * value and nothing around it: no whitespace, no trailing bytes, no signs.
 */
#include "tunnel/wgconf.h"
#include "common/array.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wg_conf_free(struct wg_conf *c)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		struct wg_peer_conf *p = &c->peers[i];

		free(p->allowed_ips);
		free(p->endpoint_host);
		sodium_memzero(p, sizeof(*p));
	}
	free(c->peers);
	free(c->addresses);
	sodium_memzero(c, sizeof(*c));
}


struct wg_peer_conf *wg_conf_add_peer(struct wg_conf *c)
{
	struct wg_peer_conf *v = xb_grow(c->peers, c->n_peers, sizeof(*v));

	if (!v)
		return NULL;
	c->peers = v;
	memset(&v[c->n_peers], 0, sizeof(*v));
	return &v[c->n_peers++];
}

bool wg_prefix_append(struct wg_prefix **v, size_t *n, const struct wg_prefix *p)
{
	struct wg_prefix *nv = xb_grow(*v, *n, sizeof(*nv));

	if (!nv)
		return false;
	*v = nv;
	nv[(*n)++] = *p;
	return true;
}

bool wg_key_from_hex(uint8_t key[static WG_KEY_LEN], const char *hex)
{
	uint8_t tmp[WG_KEY_LEN];
	const char *end = NULL;
	size_t len = 0;
	bool ok;

	ok = strlen(hex) == WG_KEY_HEX_LEN &&
	     !sodium_hex2bin(tmp, sizeof(tmp), hex, WG_KEY_HEX_LEN, NULL, &len, &end) &&
	     len == WG_KEY_LEN && end == hex + WG_KEY_HEX_LEN;
	if (ok)
		memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return ok;
}

void wg_key_to_hex(char hex[static WG_KEY_HEX_LEN + 1], const uint8_t key[static WG_KEY_LEN])
{
	sodium_bin2hex(hex, WG_KEY_HEX_LEN + 1, key, WG_KEY_LEN);
}

/* 32 bytes are 43 base64 digits and one '='; libsodium rejects a last digit
 * whose two unused bits are not zero, so every key has exactly one spelling. */
bool wg_key_from_base64(uint8_t key[static WG_KEY_LEN], const char *b64)
{
	uint8_t tmp[WG_KEY_LEN];
	const char *end = NULL;
	size_t len = 0;
	bool ok;

	ok = strlen(b64) == WG_KEY_B64_LEN && b64[WG_KEY_B64_LEN - 1] == '=' &&
	     !sodium_base642bin(tmp, sizeof(tmp), b64, WG_KEY_B64_LEN, NULL, &len, &end,
				sodium_base64_VARIANT_ORIGINAL) &&
	     len == WG_KEY_LEN && end == b64 + WG_KEY_B64_LEN;
	if (ok)
		memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return ok;
}

void wg_key_to_base64(char b64[static WG_KEY_B64_LEN + 1], const uint8_t key[static WG_KEY_LEN])
{
	sodium_bin2base64(b64, WG_KEY_B64_LEN + 1, key, WG_KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
}

bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN])
{
	return sodium_is_zero(key, WG_KEY_LEN) == 1;
}

/* Decimal digits only, at most max; no sign, no space, no empty string. */
static bool parse_dec(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!n || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Copies s[0..n) into a NUL-terminated buffer of size len; false if too long. */
static bool copy_part(char *buf, size_t len, const char *s, size_t n)
{
	if (n >= len)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

bool wg_prefix_parse(struct wg_prefix *p, const char *s)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long cidr, max;
	struct wg_prefix r = { 0 };

	if (!copy_part(addr, sizeof(addr), s, alen))
		return false;
	r.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(r.family, addr, r.addr) != 1)
		return false;
	max = r.family == AF_INET ? 32 : 128;
	if (!slash)
		cidr = max;
	else if (!parse_dec(slash + 1, strlen(slash + 1), max, &cidr))
		return false;
	r.cidr = (uint8_t)cidr;
	*p = r;
	return true;
}

/* A scope is an interface name or index: "[fe80::1%eth0]:51820". */
static bool parse_scope(uint32_t *id, const char *scope)
{
	unsigned long n;

	if (parse_dec(scope, strlen(scope), UINT32_MAX, &n) && n) {
		*id = (uint32_t)n;
		return true;
	}
	*id = if_nametoindex(scope);
	return *id != 0;
}

static bool parse_in6(struct sockaddr_in6 *in6, const char *s, size_t n)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1], *pct;

	if (!copy_part(host, sizeof(host), s, n))
		return false;
	pct = strchr(host, '%');
	if (pct) {
		*pct++ = '\0';
		if (!parse_scope(&in6->sin6_scope_id, pct))
			return false;
	}
	in6->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1;
}

bool wg_endpoint_parse(union wg_sockaddr *sa, const char *s)
{
	union wg_sockaddr r;
	const char *colon;
	unsigned long port;
	char host[INET_ADDRSTRLEN];

	memset(&r, 0, sizeof(r));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':' || !parse_in6(&r.in6, s + 1, (size_t)(close - s - 1)))
			return false;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || !copy_part(host, sizeof(host), s, (size_t)(colon - s)) ||
		    inet_pton(AF_INET, host, &r.in.sin_addr) != 1)
			return false;
		r.in.sin_family = AF_INET;
	}
	/* Port 0 cannot be sent to. */
	if (!parse_dec(colon + 1, strlen(colon + 1), 65535, &port) || !port)
		return false;
	if (r.sa.sa_family == AF_INET)
		r.in.sin_port = htons((uint16_t)port);
	else
		r.in6.sin6_port = htons((uint16_t)port);
	*sa = r;
	return true;
}

void wg_endpoint_format(char *buf, size_t len, const union wg_sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 1] = "";

	if (!len)
		return;
	buf[0] = '\0';
	if (sa->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &sa->in.sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sa->in.sin_port));
	} else if (sa->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &sa->in6.sin6_addr, host, sizeof(host));
		if (sa->in6.sin6_scope_id) {
			scope[0] = '%';
			if (!if_indextoname(sa->in6.sin6_scope_id, scope + 1))
				snprintf(scope, sizeof(scope), "%%%u", sa->in6.sin6_scope_id);
		}
		snprintf(buf, len, "[%s%s]:%u", host, scope, ntohs(sa->in6.sin6_port));
	}
}
