/* The drop log: recent packets the policy refused, for `xborderctl drops'
 * (docs/control.md). The compiled table logs what a deny rule or the
 * default deny drops to nfnetlink_log group XB_DROPS_GROUP, rate-limited
 * per line (policy/compile.h); this module binds that group through the
 * netlink client (netlink.h: only the kernel is listened to), copies the first XB_DROPS_COPY bytes of each packet, and keeps
 * the last XB_DROPS_MAX in a ring: when, which rule (the log prefix), and
 * the packet's addresses, protocol and port. Nothing is written to disk.
 *
 * One fd, non-blocking, in the daemon's epoll loop; xb_drops_process()
 * reads what is there and never blocks. The kernel may drop log messages
 * when the socket's buffer is full (ENOBUFS): counted as `lost'.
 */
#ifndef XB_GATEWAY_DROPS_H
#define XB_GATEWAY_DROPS_H

#include "gateway/kernel/netlink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_DROPS_MAX	256	/* packets kept */
#define XB_DROPS_COPY	64	/* bytes of each packet: IPv6 header + ports */

struct xb_drop {
	int64_t at;		/* wall clock, seconds */
	uint8_t family;		/* AF_INET, AF_INET6 */
	uint8_t proto;		/* IPPROTO_* */
	uint16_t dport;		/* tcp/udp; 0 for others */
	uint8_t src[16], dst[16];
	char rule[72];		/* the refusing rule's name; "" for the default deny */
};

struct xb_drops {
	struct xb_nl nl;	/* closed: not bound */
	struct xb_drop ring[XB_DROPS_MAX];
	size_t next, n;		/* next slot to write; entries held */
	uint64_t total, lost;	/* logged since start; lost to ENOBUFS */
};

/* Binds the group. 0, or -errno with the reason logged (the daemon runs
 * without a drop log then). */
int xb_drops_open(struct xb_drops *d, uint16_t group);
int xb_drops_fd(const struct xb_drops *d);
void xb_drops_process(struct xb_drops *d);
void xb_drops_close(struct xb_drops *d);
/* The i-th newest entry (0: the newest), NULL past the end. */
const struct xb_drop *xb_drops_get(const struct xb_drops *d, size_t i);

/* Pure, for the tests: one NFULNL_MSG_PACKET into *out (at left alone).
 * false for anything else: another message, no prefix of ours, a payload
 * too short for its IP header. */
bool xb_drops_parse(const struct nlmsghdr *nlh, struct xb_drop *out);
/* Adds one entry, overwriting the oldest when full. */
void xb_drops_put(struct xb_drops *d, const struct xb_drop *x);

#endif
