/* What the DNS service may learn from an answer, and the table of what it
 * learned (docs/dns.md, docs/security.md "What the gateway learns from DNS").
 *
 * An address answered for a name that an access rule's `domains' match
 * goes into that rule's _dns4/_dns6 set: whoever controls the answer (the
 * resolver, or whoever registered a name under a listed suffix) steers
 * traffic to that address. So:
 *
 *  - xb_dns_learn_classify() refuses special-purpose addresses outright
 *    (unspecified, loopback, link-local, multicast, reserved, broadcast,
 *    IETF protocol assignments, discard-only, IPv4-mapped and
 *    IPv4-compatible) and marks private ones (RFC 1918, 100.64/10,
 *    fc00::/7, 64:ff9b:1::/48), which a rule takes only with
 *    learn_private; an IPv6 address that carries an IPv4 one (NAT64
 *    64:ff9b::/96, 6to4 2002::/16) is judged by what it carries;
 *  - xb_dns_learn_own_has() refuses the gateway's own addresses (also when
 *    carried that way), a list of prefixes the caller builds from the
 *    policy (pools, tunnel inner addresses and peers, literal tunnel
 *    endpoints, DNS servers);
 *  - the table holds at most `cap' entries per set: adding to a full set
 *    evicts the entry that expires soonest (it would leave first anyway),
 *    and the caller removes it from the kernel's set.
 *
 * The kernel's set has `size' cap too, and it counts an element that
 * expired until its garbage collector runs (about a second later, up to
 * 3 s measured), and a delete does not find such an element. A put into a
 * set the kernel thinks full fails whole. So an expired entry stays in
 * the table, counted, for XB_DNS_LEARN_LINGER seconds (the caller expires with
 * now - XB_DNS_LEARN_LINGER), and a full set whose soonest entry has already
 * expired takes nothing new until it is gone: the table never holds fewer
 * entries than the kernel's set.
 *
 * The table is keyed by (set, address). Entries live in a pool with stable
 * indices; each set keeps a binary min-heap of its entries by expiry, so
 * eviction and expiry cost O(log n), never a scan.
 */
#ifndef XB_GATEWAY_DNS_LEARN_H
#define XB_GATEWAY_DNS_LEARN_H

#include "common/prefix.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xb_dns_learn_class {
	XB_DNS_LEARN_PUBLIC,
	XB_DNS_LEARN_PRIVATE,	/* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7,
				   64:ff9b:1::/48 */
	XB_DNS_LEARN_SPECIAL,	/* never learned: see dns_learn.c */
};

/* addr: 4 bytes (AF_INET) or 16 (AF_INET6), network order. */
enum xb_dns_learn_class xb_dns_learn_classify(int family, const uint8_t *addr);

/* The gateway's own addresses, as prefixes. */
struct xb_dns_learn_own {
	struct xb_prefix *v;
	size_t n;
};

/* 0, or -1 without memory. Host bits of p beyond cidr are ignored. */
int xb_dns_learn_own_add(struct xb_dns_learn_own *o, const struct xb_prefix *p);
bool xb_dns_learn_own_has(const struct xb_dns_learn_own *o, int family, const uint8_t *addr);
void xb_dns_learn_own_free(struct xb_dns_learn_own *o);

#define XB_DNS_LEARN_SET_MAX	72	/* = XB_SET_NAME_MAX */
#define XB_DNS_LEARN_LINGER	5	/* s an expired entry stays counted */

struct xb_dns_learn_entry {
	uint8_t addr[16];
	uint8_t family;		/* AF_INET / AF_INET6; 0: a free pool slot */
	uint16_t set;		/* into xb_dns_learn.sets */
	uint32_t fp;		/* the domains of the rule it was learned for */
	uint64_t expires;	/* CLOCK_MONOTONIC seconds (the state file: wall clock) */
	uint32_t hpos;		/* its place in the set's heap */
};

struct xb_dns_learn_set {
	char name[XB_DNS_LEARN_SET_MAX];
	uint32_t *heap;		/* entry indices, soonest expiry first */
	size_t n, hcap;
	uint64_t evicted;	/* since the table was made */
};

struct xb_dns_learn {
	struct xb_dns_learn_entry *v;	/* the pool */
	size_t n_used, cap;
	uint32_t *free;			/* free pool slots */
	size_t n_free;
	size_t used_top;		/* slots [0, used_top) have been used */
	uint32_t *slot;			/* open addressing: index + 1, 0 empty */
	size_t nslots;
	struct xb_dns_learn_set *sets;
	size_t n_sets;
	bool dirty;			/* changed since the last save */
};

void xb_dns_learn_init(struct xb_dns_learn *t);
void xb_dns_learn_free(struct xb_dns_learn *t);
/* The set's number (made if new), or -1 without memory or with a name
 * that does not fit. */
int xb_dns_learn_set_id(struct xb_dns_learn *t, const char *name);
struct xb_dns_learn_entry *xb_dns_learn_find(struct xb_dns_learn *t, int set, int family, const uint8_t *addr);
/* Adds (set, addr) expiring at `expires' (it must not be there). A set
 * already holding cap entries (or more) first loses its soonest-expiring
 * one, copied to *evicted (may be NULL; its family is 0 when nothing was
 * evicted) and counted — unless that one has expired by now (see above):
 * then nothing is added. Returns the new entry, or NULL with errno
 * ENOSPC (full) or ENOMEM. Entry pointers are valid until the next add. */
struct xb_dns_learn_entry *xb_dns_learn_add(struct xb_dns_learn *t, int set, int family, const uint8_t *addr,
				  uint64_t expires, uint32_t fp, size_t cap, uint64_t now,
				  struct xb_dns_learn_entry *evicted);
void xb_dns_learn_update(struct xb_dns_learn *t, struct xb_dns_learn_entry *e, uint64_t expires);
void xb_dns_learn_del(struct xb_dns_learn *t, struct xb_dns_learn_entry *e);
/* Drops every entry expiring at or before now; returns how many. */
size_t xb_dns_learn_expire(struct xb_dns_learn *t, uint64_t now);
/* Drops set's soonest-expiring entries until it holds at most cap (a
 * reload lowered the cap); returns how many, counted as evictions. */
size_t xb_dns_learn_trim(struct xb_dns_learn *t, int set, size_t cap);
/* The soonest-expiring entry of set, or NULL when it is empty. */
struct xb_dns_learn_entry *xb_dns_learn_first(struct xb_dns_learn *t, int set);
size_t xb_dns_learn_count(const struct xb_dns_learn *t, int set);
size_t xb_dns_learn_total(const struct xb_dns_learn *t);

#endif
