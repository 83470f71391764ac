/* Routing netlink through libmnl: links, addresses, routes in per-tunnel
 * tables, and the fwmark rules that select them. The daemon never runs
 * `ip`; tests and operators use it to check what this module did.
 *
 * Every call is one request with NLM_F_ACK, answered before it returns;
 * errors are negative errno values.
 */
#ifndef XB_RTNL_H
#define XB_RTNL_H

#include "gateway/kernel/netlink.h"
#include "common/prefix.h"

#include <stdbool.h>
#include <stdint.h>

struct nlmsghdr;

struct xb_rtnl {
	struct xb_nl nl;
};

int xb_rtnl_open(struct xb_rtnl *r);
void xb_rtnl_close(struct xb_rtnl *r);

/* Send a request built by the caller (other modules' link kinds, e.g.
 * gre_kernel.c) and wait for the acknowledgement; 0 or a negative errno. */
int xb_rtnl_send(struct xb_rtnl *r, struct nlmsghdr *nlh);

/* Interface index by name, or 0. */
unsigned xb_rtnl_ifindex(const char *ifname);
int xb_rtnl_link_up(struct xb_rtnl *r, unsigned ifindex, bool up);
int xb_rtnl_link_mtu(struct xb_rtnl *r, unsigned ifindex, unsigned mtu);
int xb_rtnl_link_del(struct xb_rtnl *r, unsigned ifindex);
/* A new link of kind ("wireguard", "dummy", ...), down; -EOPNOTSUPP when the
 * kernel has no such kind. */
int xb_rtnl_link_add(struct xb_rtnl *r, const char *ifname, const char *kind);
/* The link's kind ("wireguard", "tun", "veth", ...; "" for none). */
int xb_rtnl_link_kind(struct xb_rtnl *r, unsigned ifindex, char kind[static 16]);

/* Add (replacing nothing: EEXIST is success) or delete an address. */
int xb_rtnl_addr(struct xb_rtnl *r, bool add, unsigned ifindex, const struct xb_prefix *p);

/* A route to dst in table (0 = main) out of ifindex, optionally via gw
 * (family of dst; NULL = on-link). add replaces an existing route. */
struct xb_route {
	struct xb_prefix dst;
	uint32_t table;
	unsigned ifindex;
	const uint8_t *gw;
	uint32_t metric;
	uint8_t type;		/* RTN_UNICAST (default when 0), RTN_BLACKHOLE, RTN_UNREACHABLE */
};
int xb_rtnl_route(struct xb_rtnl *r, bool add, const struct xb_route *rt);

/* "fwmark MARK/MASK lookup TABLE" at priority prio, for one family. */
struct xb_iprule {
	sa_family_t family;
	uint32_t fwmark, mask;
	uint32_t table;
	uint32_t priority;
};
int xb_rtnl_rule(struct xb_rtnl *r, bool add, const struct xb_iprule *rule);

/* Remove every rule whose priority is in [lo, hi] and every route in
 * tables [tlo, thi] — what a crashed run may have left. Returns how many
 * objects were removed, or a negative errno. */
int xb_rtnl_sweep(struct xb_rtnl *r, uint32_t prio_lo, uint32_t prio_hi, uint32_t tlo, uint32_t thi);

#endif
