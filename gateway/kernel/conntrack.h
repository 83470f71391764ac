/* Cutting a device's established flows: every conntrack entry whose
 * original source or reply destination is the device's address is
 * deleted through ctnetlink (libmnl), so that a device that falls out of
 * compliance loses the flows its last allow verdict let through. The
 * ruleset judges every packet the device sends (policy/compile.c), but
 * replies into the devices pass on conntrack state alone (chain forward),
 * and an entry keeps its NAT mapping: both end with the entry. The daemon
 * never runs `conntrack';
 * tests use it to check this module.
 */
#ifndef XB_CONNTRACK_H
#define XB_CONNTRACK_H

#include "gateway/kernel/netlink.h"

#include <stddef.h>
#include <stdint.h>

struct xb_conntrack {
	struct xb_nl nl;
};

/* Entries deleted per dump; more matching entries mean another dump
 * (at most XB_CONNTRACK_PASSES in one call). */
#define XB_CONNTRACK_BATCH	4096
#define XB_CONNTRACK_PASSES	64

/* Returns 0 or a negative errno. */
int xb_conntrack_open(struct xb_conntrack *c);
void xb_conntrack_close(struct xb_conntrack *c);
/* Deletes the entries of family (AF_INET: addr is a struct in_addr,
 * AF_INET6: a struct in6_addr) whose original source or reply destination
 * is addr, in every zone. Returns how many were deleted (entries that
 * vanished on their own meanwhile are not counted), or a negative errno. */
long xb_conntrack_cut(struct xb_conntrack *c, int family, const void *addr);

/* A filtered dump walks the kernel's whole hash table; an unfiltered one
 * copies every entry. One dump for many addresses is read unfiltered
 * while the table holds at most this many entries per address beyond the
 * first (a walk costs about as much as reading that many entries). */
#define XB_CONNTRACK_WALK_ENTRIES 1024

/* xb_conntrack_cut for n addresses of one family (packed: 4 or 16 bytes each),
 * with as few walks of the table as the rule above allows: how many
 * entries of addrs[i] were deleted goes to cut[i], or a negative errno when
 * its cut failed (its dump or one of its deletes; the other addresses'
 * cuts go on). Returns the total deleted, or the first error. */
long xb_conntrack_cut_many(struct xb_conntrack *c, int family, const void *addrs, size_t n, long *cut);

#endif
