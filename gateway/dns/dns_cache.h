/* The resolver's answer cache: upstream responses kept as wire bytes, keyed
 * by (question name lower-cased, qtype, qclass, scope), replayed with their
 * TTLs aged and the client's id.
 *
 * scope is the caller's: the resolver gives answers obtained through
 * different tunnels or upstream sets different scopes, so an answer fetched
 * through one path is never served to a query that policy sends another.
 *
 * What is stored: only a message that xb_dns_wire_parse_response accepts as the
 * answer to the question it is stored under (its own id, the same question),
 * with rcode NOERROR or NXDOMAIN and TC clear. Positive answers (NOERROR with
 * answer records) live for the smallest TTL in the answer section; negative
 * ones (NXDOMAIN, or NOERROR without answers) for min(SOA TTL, SOA MINIMUM)
 * of the SOA in the authority section (RFC 2308 5) and are not cached at all
 * without one. The result is capped to [min_ttl, max_ttl] (negative:
 * [min_ttl, neg_max_ttl]); a TTL of 0 after the caps is not stored. SERVFAIL,
 * REFUSED, any other rcode, truncated and malformed messages are refused.
 * Bytes after the last record are not stored (xb_dns_wire_msg.len).
 *
 * The cache trusts nothing else about the bytes: every lookup re-walks the
 * stored message while aging it (xb_dns_wire_age_ttls), and an entry that fails to
 * age is dropped and reported as a miss.
 *
 * Serve-stale (RFC 8767): with stale_s set, an entry outlives its TTL by
 * stale_s seconds. xb_dns_cache_lookup does not return it then;
 * xb_dns_cache_lookup_stale does, every TTL set to XB_DNS_CACHE_STALE_TTL, for the
 * caller to answer with when no upstream answered. Such entries still
 * count against the bounds and leave by LRU like any other.
 *
 * Time: every call takes now as monotonic nanoseconds from the caller (the
 * cache reads no clock). An entry is expired once now - stored >= its TTL.
 *
 * Bounds: at most max_entries entries and max_bytes bytes, counted as each
 * entry's allocation (header + name + message); the least recently used
 * entry goes first. Lookups are one hash (SipHash with a random key, so
 * hostile names cannot pile into one bucket) and a chain walk; they allocate
 * nothing. Not thread-safe: one cache per thread, or the caller locks.
 */
#ifndef XB_GATEWAY_DNS_CACHE_H
#define XB_GATEWAY_DNS_CACHE_H

#include "gateway/dns/dns_wire.h"

#include <stddef.h>
#include <stdint.h>

#define XB_DNS_CACHE_MAX_ENTRIES	100000
#define XB_DNS_CACHE_MAX_BYTES	(64u << 20)
#define XB_DNS_CACHE_MAX_TTL		86400	/* seconds */
#define XB_DNS_CACHE_NEG_MAX_TTL	3600
#define XB_DNS_CACHE_MSG_MAX		65535	/* largest message stored or returned */
#define XB_DNS_CACHE_STALE_TTL	30	/* seconds: RFC 8767 4's recommendation */

struct xb_dns_cache_conf {
	size_t max_entries;	/* 0: XB_DNS_CACHE_MAX_ENTRIES */
	size_t max_bytes;	/* 0: XB_DNS_CACHE_MAX_BYTES */
	uint32_t min_ttl;	/* seconds; default 0 */
	uint32_t max_ttl;	/* 0: XB_DNS_CACHE_MAX_TTL */
	uint32_t neg_max_ttl;	/* 0: XB_DNS_CACHE_NEG_MAX_TTL */
	uint32_t stale_s;	/* seconds an entry is kept past its TTL; default 0 */
};

struct xb_dns_cache_stats {
	size_t entries, bytes;
	uint64_t hits, misses;
	uint64_t evictions;	/* pushed out by the entry or byte bound */
	uint64_t expired;	/* found expired (past stale_s too) by a lookup and dropped */
	uint64_t stale;		/* answers from xb_dns_cache_lookup_stale */
	uint64_t stored;
	uint64_t uncacheable;	/* valid, but an rcode, TC or TTL that is not kept */
	uint64_t malformed;	/* refused: not a valid answer to the question */
};

enum xb_dns_cache_verdict {
	XB_DNS_CACHE_STORED,
	XB_DNS_CACHE_UNCACHEABLE,	/* SERVFAIL and other rcodes, TC, TTL 0, negative without SOA */
	XB_DNS_CACHE_MALFORMED,	/* not an answer to q, or does not parse */
	XB_DNS_CACHE_NOMEM,		/* larger than max_bytes, or malloc failed */
};

struct xb_dns_cache;

/* conf NULL: every default. Returns NULL on allocation failure. */
struct xb_dns_cache *xb_dns_cache_new(const struct xb_dns_cache_conf *conf);
void xb_dns_cache_free(struct xb_dns_cache *c);

/* Store msg (len octets as received) as the answer to q under scope,
 * replacing what was there for the same key. */
enum xb_dns_cache_verdict xb_dns_cache_store(struct xb_dns_cache *c, uint32_t scope,
				   const struct xb_dns_wire_question *q, const uint8_t *msg,
				   size_t len, uint64_t now_ns);

/* On a hit, copy the answer into buf (cap octets; XB_DNS_CACHE_MSG_MAX always
 * suffices), TTLs aged by the whole seconds it has been stored, its id set
 * to id, and return its length; *ttl_left (may be NULL) gets the seconds
 * the entry has left (at least 1). On a miss, an expired entry, or cap too
 * small for the entry, return 0. */
size_t xb_dns_cache_lookup(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q,
		      uint16_t id, uint64_t now_ns, uint8_t *buf, size_t cap,
		      uint32_t *ttl_left);

/* The entry for q, fresh or expired at most stale_s ago, into buf with
 * every TTL XB_DNS_CACHE_STALE_TTL and its id set to id; its length, or 0 (none,
 * expired longer ago, cap too small). */
size_t xb_dns_cache_lookup_stale(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q,
			    uint16_t id, uint64_t now_ns, uint8_t *buf, size_t cap);

/* Drop every entry, or every entry of one scope (when a tunnel goes away). */
void xb_dns_cache_flush(struct xb_dns_cache *c);
void xb_dns_cache_flush_scope(struct xb_dns_cache *c, uint32_t scope);

void xb_dns_cache_stats(const struct xb_dns_cache *c, struct xb_dns_cache_stats *st);

#endif
