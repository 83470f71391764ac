/* Prefix and pool arithmetic on struct xb_prefix (network byte order). */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static size_t alen(sa_family_t family)
{
	return family == AF_INET ? 4 : 16;
}

/* True when the first bits bits of a and b agree. */
static bool same_bits(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full))
		return false;
	if (!rest)
		return true;
	return !((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest)));
}

bool xbp_prefix_in(const struct xb_prefix *outer, const struct xb_prefix *inner)
{
	return outer->family == inner->family && inner->cidr >= outer->cidr &&
	       same_bits(outer->addr, inner->addr, outer->cidr);
}

bool xbp_prefix_overlap(const struct xb_prefix *a, const struct xb_prefix *b)
{
	return xbp_prefix_in(a, b) || xbp_prefix_in(b, a);
}

void xbp_prefix_mask(struct xb_prefix *p)
{
	size_t n = alen(p->family);

	for (size_t i = 0; i < n; i++) {
		unsigned keep = p->cidr > i * 8 ? p->cidr - i * 8 : 0;

		if (keep < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

bool xbp_prefix_host_bits(const struct xb_prefix *p)
{
	struct xb_prefix m = *p;

	xbp_prefix_mask(&m);
	return memcmp(m.addr, p->addr, alen(p->family)) != 0;
}

void xbp_addr_format(char *buf, size_t len, int family, const void *addr)
{
	if (!inet_ntop(family, addr, buf, (socklen_t)len) && len)
		buf[0] = '\0';
}

void xbp_prefix_format(char *buf, size_t len, const struct xb_prefix *p)
{
	char a[INET6_ADDRSTRLEN];

	xbp_addr_format(a, sizeof(a), p->family, p->addr);
	snprintf(buf, len, "%s/%u", a, p->cidr);
}

bool xbp_addr_parse(int family, const char *s, void *addr)
{
	struct xb_prefix p;

	if (!xb_prefix_parse(&p, s) || p.family != family || p.cidr != alen(p.family) * 8)
		return false;
	memcpy(addr, p.addr, alen(p.family));
	return true;
}

bool xbp_addr_in(const struct xb_prefix *pool, const void *addr)
{
	return same_bits(pool->addr, addr, pool->cidr);
}

/* The network address (IPv6: the subnet-router anycast address) and the
 * IPv4 broadcast address cannot be given to a host. */
bool xbp_addr_reserved(const struct xb_prefix *pool, const void *addr)
{
	struct xb_prefix host = *pool, bcast = *pool;
	size_t n = alen(pool->family);

	memcpy(host.addr, addr, n);
	host.cidr = (uint8_t)(n * 8);
	if (!memcmp(host.addr, pool->addr, n))
		return true;
	if (pool->family != AF_INET)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned keep = pool->cidr > i * 8 ? pool->cidr - i * 8 : 0;

		if (keep < 8)
			bcast.addr[i] |= (uint8_t)(0xff >> keep);
	}
	return !memcmp(host.addr, bcast.addr, n);
}

/* Adds off to the low 64 bits of the address; false when the result leaves
 * the pool (or is the IPv4 broadcast address). */
bool xbp_pool_nth(const struct xb_prefix *pool, uint64_t off, void *addr)
{
	uint8_t a[16];
	size_t n = alen(pool->family);
	unsigned host_bits = (unsigned)(n * 8) - pool->cidr;
	uint64_t carry = off;

	if (host_bits < 64 && off >> host_bits)
		return false;
	memcpy(a, pool->addr, n);
	for (size_t i = n; i-- > 0 && carry;) {
		uint64_t v = a[i] + (carry & 0xff);

		a[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
	if (xbp_addr_reserved(pool, a))
		return false;
	memcpy(addr, a, n);
	return true;
}
