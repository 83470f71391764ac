/* Addresses as the policy, the gateway and both tunnels spell them: IP
 * prefixes and socket addresses (endpoints). Every decoder here accepts
 * exactly one canonical spelling of a value and nothing around it: no
 * whitespace, no trailing bytes, no signs.
 */
#include "common/prefix.h"
#include "common/array.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

bool xb_prefix_append(struct xb_prefix **v, size_t *n, const struct xb_prefix *p)
{
	struct xb_prefix *nv = xb_grow(*v, *n, sizeof(*nv));

	if (!nv)
		return false;
	*v = nv;
	nv[(*n)++] = *p;
	return true;
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

bool xb_prefix_parse(struct xb_prefix *p, const char *s)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long cidr, max;
	struct xb_prefix r = { 0 };

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

bool xb_endpoint_parse(union xb_sockaddr *sa, const char *s)
{
	union xb_sockaddr r;
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

void xb_endpoint_format(char *buf, size_t len, const union xb_sockaddr *sa)
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
