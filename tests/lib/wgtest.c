/* Helpers shared by the WireGuard configuration tests; see wgtest.h. */
#include "tests/lib/wgtest.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

void wgtest_fill(uint8_t key[WG_KEY_LEN], uint8_t b)
{
	memset(key, b, WG_KEY_LEN);
}

const char *wgtest_prefix_str(const struct xb_prefix *p)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char a[INET6_ADDRSTRLEN];

	inet_ntop(p->family, p->addr, a, sizeof(a));
	snprintf(buf, sizeof(buf), "%s/%u", a, p->cidr);
	return buf;
}

const char *wgtest_endpoint_str(const union xb_sockaddr *sa)
{
	static char buf[128];

	xb_endpoint_format(buf, sizeof(buf), sa);
	return buf;
}
