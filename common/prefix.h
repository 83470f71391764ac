/* IP prefixes and socket addresses: the address primitives shared by the
 * policy, the gateway and both tunnels (WireGuard's allowed IPs and
 * endpoints, GRE's ends, access rules, pools, routes). Nothing here knows
 * a protocol; parsers are numeric only and never resolve a name.
 */
#ifndef XB_COMMON_PREFIX_H
#define XB_COMMON_PREFIX_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct xb_prefix {
	sa_family_t family;	/* AF_INET or AF_INET6 */
	uint8_t cidr;
	uint8_t addr[16];	/* network order; 4 bytes used for AF_INET */
};

union xb_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Appends *p to the array *v of *n (grown with xb_grow); false on ENOMEM. */
bool xb_prefix_append(struct xb_prefix **v, size_t *n, const struct xb_prefix *p);

/* "192.0.2.0/24", "2001:db8::/32"; a missing /cidr means a host prefix. Host
 * bits below the prefix are allowed and kept (the trie masks them). */
bool xb_prefix_parse(struct xb_prefix *p, const char *s);
/* "192.0.2.1:51820", "[2001:db8::1]:51820" — numeric only. */
bool xb_endpoint_parse(union xb_sockaddr *sa, const char *s);
/* Formats as the UAPI and `wg` show them: a.b.c.d:port, [v6]:port. */
void xb_endpoint_format(char *buf, size_t len, const union xb_sockaddr *sa);

#endif
