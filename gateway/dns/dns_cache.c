/* The answer cache; see dns_cache.h and docs/dns.md, "Cache".
 *
 * Each entry is one allocation: the header below, the lower-cased question
 * name, then the message. Entries hang in a power-of-two bucket array
 * (chained through hnext, at least as many buckets as max_entries, so
 * chains stay short) and on one LRU list (most recent at head). Lookup and
 * store move an entry to the head; eviction takes the tail.
 */
#include "gateway/dns/dns_cache.h"
#include "common/bytes.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000ULL

struct ent {
	struct ent *hnext;		/* bucket chain */
	struct ent *prev, *next;	/* LRU list */
	uint64_t hash;
	uint64_t born_ns;
	uint32_t ttl;			/* seconds, capped */
	uint32_t scope;
	uint16_t qtype, qclass;
	uint16_t name_len;
	uint16_t len;			/* the message */
	uint8_t data[];			/* name, then message */
};

struct xb_dns_cache {
	struct xb_dns_cache_conf conf;
	struct ent **buckets;
	size_t mask;
	struct ent *head, *tail;
	struct xb_dns_cache_stats st;
	uint8_t key[crypto_shorthash_KEYBYTES];
};

/* A lookup key: the name lower-cased and what sits beside it. */
struct key {
	uint8_t name[XB_DNS_WIRE_NAME_MAX];
	uint16_t name_len, qtype, qclass;
	uint32_t scope;
	uint64_t hash;
};

static size_t ent_size(size_t name_len, size_t len)
{
	return sizeof(struct ent) + name_len + len;
}

struct xb_dns_cache *xb_dns_cache_new(const struct xb_dns_cache_conf *conf)
{
	struct xb_dns_cache *c;
	size_t n = 16;

	if (sodium_init() < 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (conf)
		c->conf = *conf;
	if (!c->conf.max_entries)
		c->conf.max_entries = XB_DNS_CACHE_MAX_ENTRIES;
	if (!c->conf.max_bytes)
		c->conf.max_bytes = XB_DNS_CACHE_MAX_BYTES;
	if (!c->conf.max_ttl)
		c->conf.max_ttl = XB_DNS_CACHE_MAX_TTL;
	if (!c->conf.neg_max_ttl)
		c->conf.neg_max_ttl = XB_DNS_CACHE_NEG_MAX_TTL;
	while (n < c->conf.max_entries && n < ((size_t)1 << 30))
		n <<= 1;
	c->buckets = calloc(n, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	randombytes_buf(c->key, sizeof(c->key));
	return c;
}

void xb_dns_cache_free(struct xb_dns_cache *c)
{
	if (!c)
		return;
	xb_dns_cache_flush(c);
	free(c->buckets);
	free(c);
}

/* ---- keys, lists, buckets ---- */

static void key_make(const struct xb_dns_cache *c, struct key *k, uint32_t scope,
		     const struct xb_dns_wire_question *q)
{
	uint8_t in[XB_DNS_WIRE_NAME_MAX + 8];

	memcpy(k->name, q->name, q->name_len);
	xb_dns_wire_name_lower(k->name);
	k->name_len = q->name_len;
	k->qtype = q->qtype;
	k->qclass = q->qclass;
	k->scope = scope;
	memcpy(in, k->name, k->name_len);
	xb_put16(in + k->name_len, k->qtype);
	xb_put16(in + k->name_len + 2, k->qclass);
	xb_put32(in + k->name_len + 4, scope);
	crypto_shorthash((uint8_t *)&k->hash, in, k->name_len + 8u, c->key);
}

static bool key_is(const struct ent *e, const struct key *k)
{
	return e->hash == k->hash && e->scope == k->scope && e->qtype == k->qtype &&
	       e->qclass == k->qclass && e->name_len == k->name_len &&
	       !memcmp(e->data, k->name, k->name_len);
}

static void lru_unlink(struct xb_dns_cache *c, struct ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
}

static void lru_push(struct xb_dns_cache *c, struct ent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

/* The bucket slot that points at the entry for k (or the chain's end). */
static struct ent **slot_of(struct xb_dns_cache *c, const struct key *k)
{
	struct ent **pp = &c->buckets[k->hash & c->mask];

	while (*pp && !key_is(*pp, k))
		pp = &(*pp)->hnext;
	return pp;
}

static void drop(struct xb_dns_cache *c, struct ent *e)
{
	struct ent **pp = &c->buckets[e->hash & c->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->st.entries--;
	c->st.bytes -= ent_size(e->name_len, e->len);
	free(e);
}

/* ---- store ---- */

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static uint32_t answer_min_ttl(const struct xb_dns_wire_msg *m)
{
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	uint32_t least = UINT32_MAX;

	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_AN);
	while (xb_dns_wire_iter_next(&it, &rr))
		if (rr.ttl < least)
			least = rr.ttl;
	return least;
}

/* The TTL an answer is kept for, after the caps, or 0 for "do not keep".
 * Negative: NXDOMAIN, or NOERROR without answers (NODATA); the SOA is looked
 * up for the name the CNAME chain ends at, which is the name that does not
 * exist (RFC 2308 2.1). */
static uint32_t keep_ttl(const struct xb_dns_cache *c, const struct xb_dns_wire_msg *m)
{
	uint32_t ttl = answer_min_ttl(m), neg;
	struct xb_dns_wire_chain ch;
	const uint8_t *name = m->q.name;

	if (m->rcode == XB_DNS_WIRE_NOERROR && m->hdr.ancount)
		return clamp(ttl, c->conf.min_ttl, c->conf.max_ttl);
	if (xb_dns_wire_chain(m, &ch, NULL, 0) == 0)
		name = ch.name;
	if (xb_dns_wire_negative_ttl(m, name, &neg) < 0)
		return 0;	/* no SOA: RFC 2308 5 says do not cache */
	if (neg < ttl)
		ttl = neg;
	return clamp(ttl, c->conf.min_ttl, c->conf.neg_max_ttl);
}

static void make_room(struct xb_dns_cache *c, size_t need)
{
	while (c->tail && (c->st.entries + 1 > c->conf.max_entries ||
			   c->st.bytes + need > c->conf.max_bytes)) {
		drop(c, c->tail);
		c->st.evictions++;
	}
}

enum xb_dns_cache_verdict xb_dns_cache_store(struct xb_dns_cache *c, uint32_t scope,
				   const struct xb_dns_wire_question *q, const uint8_t *msg,
				   size_t len, uint64_t now_ns)
{
	struct xb_dns_wire_msg m;
	struct key k;
	struct ent *e, **pp;
	uint32_t ttl;
	size_t need;

	if (len < XB_DNS_WIRE_HDR_LEN || len > XB_DNS_CACHE_MSG_MAX || q->name_len > XB_DNS_WIRE_NAME_MAX ||
	    xb_dns_wire_parse_response(&m, msg, len, xb_get16(msg), q) != XB_DNS_WIRE_R_OK) {
		c->st.malformed++;
		return XB_DNS_CACHE_MALFORMED;
	}
	ttl = (m.hdr.flags & XB_DNS_WIRE_F_TC) ||
	      (m.rcode != XB_DNS_WIRE_NOERROR && m.rcode != XB_DNS_WIRE_NXDOMAIN) ? 0 : keep_ttl(c, &m);
	if (!ttl) {
		c->st.uncacheable++;
		return XB_DNS_CACHE_UNCACHEABLE;
	}
	key_make(c, &k, scope, q);
	pp = slot_of(c, &k);
	if (*pp)
		drop(c, *pp);
	need = ent_size(k.name_len, m.len);
	if (need > c->conf.max_bytes || !(e = malloc(need)))
		return XB_DNS_CACHE_NOMEM;
	make_room(c, need);
	*e = (struct ent){ .hash = k.hash, .born_ns = now_ns, .ttl = ttl, .scope = scope,
			   .qtype = k.qtype, .qclass = k.qclass, .name_len = k.name_len,
			   .len = (uint16_t)m.len };
	memcpy(e->data, k.name, k.name_len);
	memcpy(e->data + k.name_len, msg, m.len);
	pp = &c->buckets[k.hash & c->mask];
	e->hnext = *pp;
	*pp = e;
	lru_push(c, e);
	c->st.entries++;
	c->st.bytes += need;
	c->st.stored++;
	return XB_DNS_CACHE_STORED;
}

/* ---- lookup ---- */

/* The entry for the key, or NULL; one expired past stale_s is dropped. */
static struct ent *find(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q,
			size_t cap, uint64_t now_ns, uint64_t *age)
{
	struct key k;
	struct ent *e;

	if (q->name_len > XB_DNS_WIRE_NAME_MAX)	/* not a name: nothing stored under it */
		return NULL;
	key_make(c, &k, scope, q);
	e = *slot_of(c, &k);
	if (!e || e->len > cap)
		return NULL;
	/* A clock that went backwards reads as no time passed. */
	*age = now_ns > e->born_ns ? (now_ns - e->born_ns) / NS_PER_S : 0;
	if (*age >= (uint64_t)e->ttl + c->conf.stale_s) {
		drop(c, e);
		c->st.expired++;
		return NULL;
	}
	return e;
}

/* Copy e into buf, TTLs aged by age and raised to floor; 0 when the
 * stored bytes do not age (then e is gone). */
static size_t copy_out(struct xb_dns_cache *c, struct ent *e, uint32_t age, uint32_t floor,
		       uint16_t id, uint8_t *buf)
{
	memcpy(buf, e->data + e->name_len, e->len);
	if (xb_dns_wire_age_ttls(buf, e->len, age, floor) < 0) {
		drop(c, e);	/* see dns_wire.h: a hostile name pointing into a TTL */
		c->st.malformed++;
		return 0;
	}
	xb_dns_wire_set_id(buf, e->len, id);
	lru_unlink(c, e);
	lru_push(c, e);
	return e->len;
}

size_t xb_dns_cache_lookup(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q,
		      uint16_t id, uint64_t now_ns, uint8_t *buf, size_t cap,
		      uint32_t *ttl_left)
{
	uint64_t age;
	struct ent *e = find(c, scope, q, cap, now_ns, &age);
	size_t len;

	if (!e || age >= e->ttl || !(len = copy_out(c, e, (uint32_t)age, 0, id, buf))) {
		c->st.misses++;
		return 0;
	}
	c->st.hits++;
	if (ttl_left)
		*ttl_left = e->ttl - (uint32_t)age;
	return len;
}

size_t xb_dns_cache_lookup_stale(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q,
			    uint16_t id, uint64_t now_ns, uint8_t *buf, size_t cap)
{
	uint64_t age;
	struct ent *e = find(c, scope, q, cap, now_ns, &age);
	size_t len;

	/* Every TTL aged to 0, then raised to the stale TTL. */
	if (!e || !(len = copy_out(c, e, UINT32_MAX, XB_DNS_CACHE_STALE_TTL, id, buf)) ||
	    xb_dns_wire_cap_ttls(buf, len, XB_DNS_CACHE_STALE_TTL) < 0)
		return 0;
	c->st.stale++;
	return len;
}

/* ---- the rest ---- */

void xb_dns_cache_flush(struct xb_dns_cache *c)
{
	while (c->head)
		drop(c, c->head);
}

void xb_dns_cache_flush_scope(struct xb_dns_cache *c, uint32_t scope)
{
	struct ent *e = c->head, *next;

	for (; e; e = next) {
		next = e->next;
		if (e->scope == scope)
			drop(c, e);
	}
}

void xb_dns_cache_stats(const struct xb_dns_cache *c, struct xb_dns_cache_stats *st)
{
	*st = c->st;
}
