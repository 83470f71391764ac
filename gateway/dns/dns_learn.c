/* What answers may teach the sets, and the table of learned destinations.
 * See dns_learn.h.
 */
#include "gateway/dns/dns_learn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- the filter ---- */

struct range {
	uint8_t addr[16];
	uint8_t cidr;
};

/* IANA special-purpose registries (RFC 6890 and successors), the part no
 * tunnel or firewall rule should ever be taught by a resolver: 0/8 "this
 * network", 127/8 loopback, 169.254/16 link-local, 192.0.0/24 IETF
 * protocol assignments, 224/4 multicast, 240/4 reserved (which holds
 * 255.255.255.255, the limited broadcast). The documentation and
 * benchmark ranges are left learnable: labs use them. */
static const struct range special4[] = {
	{ { 0 }, 8 }, { { 127 }, 8 }, { { 169, 254 }, 16 }, { { 192, 0, 0 }, 24 },
	{ { 224 }, 4 }, { { 240 }, 4 },
};
static const struct range private4[] = {
	{ { 10 }, 8 }, { { 172, 16 }, 12 }, { { 192, 168 }, 16 }, { { 100, 64 }, 10 },
};
/* ::/96 IPv4-compatible (deprecated by RFC 4291; holds :: and ::1),
 * ::ffff:0:0/96 IPv4-mapped (an IPv4 address in disguise, judged by no
 * IPv4 rule), 100::/64 discard-only (RFC 6666), fe80::/10 link-local,
 * ff00::/8 multicast. */
static const struct range special6[] = {
	{ { 0 }, 96 },
	{ { [10] = 0xff, [11] = 0xff }, 96 },
	{ { 0x01 }, 64 },
	{ { 0xfe, 0x80 }, 10 },
	{ { 0xff }, 8 },
};
/* fc00::/7 unique local; 64:ff9b:1::/48 local-use NAT64 (RFC 8215). */
static const struct range private6[] = {
	{ { 0xfc }, 7 },
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48 },
};
/* Prefixes that carry an IPv4 address, and where: 64:ff9b::/96, the
 * well-known NAT64 prefix (RFC 6052: DNS64 answers a v4-only name with
 * it, so it is not refused outright), and 2002::/16, 6to4 (RFC 3056). */
static const struct {
	struct range r;
	uint8_t at;
} wrap6[] = {
	{ { { 0x00, 0x64, 0xff, 0x9b }, 96 }, 12 },
	{ { { 0x20, 0x02 }, 16 }, 2 },
};

static bool in_prefix(const uint8_t *addr, const uint8_t *net, unsigned cidr)
{
	unsigned full = cidr / 8, rest = cidr % 8;

	if (memcmp(addr, net, full))
		return false;
	return !rest || !((addr[full] ^ net[full]) & (uint8_t)(0xff << (8 - rest)));
}

static bool in_any(const uint8_t *addr, const struct range *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in_prefix(addr, r[i].addr, r[i].cidr))
			return true;
	return false;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The IPv4 address an IPv6 one carries to an IPv4 host (NAT64, 6to4), or
 * NULL: that address is judged by the IPv4 rules, own addresses included. */
static const uint8_t *wrapped4(const uint8_t *addr6)
{
	for (size_t i = 0; i < N(wrap6); i++)
		if (in_prefix(addr6, wrap6[i].r.addr, wrap6[i].r.cidr))
			return addr6 + wrap6[i].at;
	return NULL;
}

enum xb_dns_learn_class xb_dns_learn_classify(int family, const uint8_t *addr)
{
	const uint8_t *v4;

	if (family == AF_INET) {
		if (in_any(addr, special4, N(special4)))
			return XB_DNS_LEARN_SPECIAL;
		return in_any(addr, private4, N(private4)) ? XB_DNS_LEARN_PRIVATE : XB_DNS_LEARN_PUBLIC;
	}
	if (family != AF_INET6 || in_any(addr, special6, N(special6)))
		return XB_DNS_LEARN_SPECIAL;
	if ((v4 = wrapped4(addr)))
		return xb_dns_learn_classify(AF_INET, v4);
	return in_any(addr, private6, N(private6)) ? XB_DNS_LEARN_PRIVATE : XB_DNS_LEARN_PUBLIC;
}

int xb_dns_learn_own_add(struct xb_dns_learn_own *o, const struct xb_prefix *p)
{
	struct xb_prefix *v = realloc(o->v, (o->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	o->v = v;
	v[o->n++] = *p;
	return 0;
}

bool xb_dns_learn_own_has(const struct xb_dns_learn_own *o, int family, const uint8_t *addr)
{
	const uint8_t *v4;

	if (family == AF_INET6 && (v4 = wrapped4(addr)) && xb_dns_learn_own_has(o, AF_INET, v4))
		return true;
	for (size_t i = 0; i < o->n; i++)
		if (o->v[i].family == family && in_prefix(addr, o->v[i].addr, o->v[i].cidr))
			return true;
	return false;
}

void xb_dns_learn_own_free(struct xb_dns_learn_own *o)
{
	free(o->v);
	o->v = NULL;
	o->n = 0;
}

/* ---- the table ---- */

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static uint32_t hash(int set, int family, const uint8_t *addr)
{
	uint32_t h = 2166136261u ^ (uint32_t)set;

	h = (h ^ (uint32_t)family) * 16777619u;
	for (size_t i = 0; i < alen(family); i++)
		h = (h ^ addr[i]) * 16777619u;
	return h;
}

void xb_dns_learn_init(struct xb_dns_learn *t)
{
	memset(t, 0, sizeof(*t));
}

void xb_dns_learn_free(struct xb_dns_learn *t)
{
	for (size_t i = 0; i < t->n_sets; i++)
		free(t->sets[i].heap);
	free(t->sets);
	free(t->v);
	free(t->free);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

int xb_dns_learn_set_id(struct xb_dns_learn *t, const char *name)
{
	struct xb_dns_learn_set *v;

	for (size_t i = 0; i < t->n_sets; i++)
		if (!strcmp(t->sets[i].name, name))
			return (int)i;
	if (strlen(name) >= XB_DNS_LEARN_SET_MAX || t->n_sets >= UINT16_MAX ||
	    !(v = realloc(t->sets, (t->n_sets + 1) * sizeof(*v))))
		return -1;
	t->sets = v;
	memset(&v[t->n_sets], 0, sizeof(v[0]));
	snprintf(v[t->n_sets].name, sizeof(v[0].name), "%s", name);
	return (int)t->n_sets++;
}

/* ---- per-set heaps, by expiry ---- */

static bool before(const struct xb_dns_learn *t, uint32_t a, uint32_t b)
{
	return t->v[a].expires < t->v[b].expires;
}

static void hset(struct xb_dns_learn *t, struct xb_dns_learn_set *s, size_t pos, uint32_t idx)
{
	s->heap[pos] = idx;
	t->v[idx].hpos = (uint32_t)pos;
}

static void sift_up(struct xb_dns_learn *t, struct xb_dns_learn_set *s, size_t pos)
{
	uint32_t idx = s->heap[pos];

	while (pos > 0 && before(t, idx, s->heap[(pos - 1) / 2])) {
		hset(t, s, pos, s->heap[(pos - 1) / 2]);
		pos = (pos - 1) / 2;
	}
	hset(t, s, pos, idx);
}

static void sift_down(struct xb_dns_learn *t, struct xb_dns_learn_set *s, size_t pos)
{
	uint32_t idx = s->heap[pos];

	for (;;) {
		size_t c = 2 * pos + 1;

		if (c >= s->n)
			break;
		if (c + 1 < s->n && before(t, s->heap[c + 1], s->heap[c]))
			c++;
		if (!before(t, s->heap[c], idx))
			break;
		hset(t, s, pos, s->heap[c]);
		pos = c;
	}
	hset(t, s, pos, idx);
}

static void heap_remove(struct xb_dns_learn *t, struct xb_dns_learn_set *s, size_t pos)
{
	uint32_t last = s->heap[--s->n];

	if (pos == s->n)
		return;
	hset(t, s, pos, last);
	sift_down(t, s, pos);
	sift_up(t, s, t->v[last].hpos);
}

/* ---- the index: open addressing, linear probing ---- */

static bool rehash(struct xb_dns_learn *t, size_t nslots)
{
	uint32_t *slot = calloc(nslots, sizeof(*slot));

	if (!slot)
		return false;
	free(t->slot);
	t->slot = slot;
	t->nslots = nslots;
	for (size_t i = 0; i < t->used_top; i++) {
		const struct xb_dns_learn_entry *e = &t->v[i];
		size_t k;

		if (!e->family)
			continue;
		for (k = hash(e->set, e->family, e->addr) & (nslots - 1); slot[k]; k = (k + 1) & (nslots - 1))
			;
		slot[k] = (uint32_t)i + 1;
	}
	return true;
}

/* The slot holding (set, addr), or the empty one ending its probe. */
static size_t probe(const struct xb_dns_learn *t, int set, int family, const uint8_t *addr)
{
	size_t k = hash(set, family, addr) & (t->nslots - 1);

	for (; t->slot[k]; k = (k + 1) & (t->nslots - 1)) {
		const struct xb_dns_learn_entry *e = &t->v[t->slot[k] - 1];

		if (e->set == set && e->family == family && !memcmp(e->addr, addr, alen(family)))
			break;
	}
	return k;
}

/* Backward-shift deletion: no tombstones, probes stay short. */
static void unindex(struct xb_dns_learn *t, size_t k)
{
	size_t mask = t->nslots - 1;

	t->slot[k] = 0;
	for (size_t j = (k + 1) & mask; t->slot[j]; j = (j + 1) & mask) {
		const struct xb_dns_learn_entry *e = &t->v[t->slot[j] - 1];
		size_t home = hash(e->set, e->family, e->addr) & mask;

		/* Move j's entry into the hole unless its home lies
		 * cyclically in (k, j]. */
		if (((j - home) & mask) >= ((j - k) & mask)) {
			t->slot[k] = t->slot[j];
			t->slot[j] = 0;
			k = j;
		}
	}
}

struct xb_dns_learn_entry *xb_dns_learn_find(struct xb_dns_learn *t, int set, int family, const uint8_t *addr)
{
	size_t k;

	if (!t->nslots)
		return NULL;
	k = probe(t, set, family, addr);
	return t->slot[k] ? &t->v[t->slot[k] - 1] : NULL;
}

void xb_dns_learn_update(struct xb_dns_learn *t, struct xb_dns_learn_entry *e, uint64_t expires)
{
	struct xb_dns_learn_set *s = &t->sets[e->set];
	uint64_t old = e->expires;

	e->expires = expires;
	if (expires < old)
		sift_up(t, s, e->hpos);
	else
		sift_down(t, s, e->hpos);
	t->dirty = true;
}

void xb_dns_learn_del(struct xb_dns_learn *t, struct xb_dns_learn_entry *e)
{
	uint32_t idx = (uint32_t)(e - t->v);

	unindex(t, probe(t, e->set, e->family, e->addr));
	heap_remove(t, &t->sets[e->set], e->hpos);
	e->family = 0;
	t->free[t->n_free++] = idx;
	t->n_used--;
	t->dirty = true;
}

/* A pool slot, growing the pool (and the free stack beside it). */
static bool take_slot(struct xb_dns_learn *t, uint32_t *idx)
{
	if (t->n_free) {
		*idx = t->free[--t->n_free];
		return true;
	}
	if (t->used_top == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct xb_dns_learn_entry *v;
		uint32_t *f;

		if (cap > UINT32_MAX / 2 || !(v = realloc(t->v, cap * sizeof(*v))))
			return false;
		t->v = v;
		if (!(f = realloc(t->free, cap * sizeof(*f))))
			return false;
		t->free = f;
		t->cap = cap;
	}
	*idx = (uint32_t)t->used_top++;
	return true;
}

static bool heap_room(struct xb_dns_learn_set *s)
{
	uint32_t *h;

	if (s->n < s->hcap)
		return true;
	if (!(h = realloc(s->heap, (s->hcap ? s->hcap * 2 : 64) * sizeof(*h))))
		return false;
	s->heap = h;
	s->hcap = s->hcap ? s->hcap * 2 : 64;
	return true;
}

struct xb_dns_learn_entry *xb_dns_learn_add(struct xb_dns_learn *t, int set, int family, const uint8_t *addr,
				  uint64_t expires, uint32_t fp, size_t cap, uint64_t now,
				  struct xb_dns_learn_entry *evicted)
{
	struct xb_dns_learn_set *s = &t->sets[set];
	struct xb_dns_learn_entry *e;
	uint32_t idx;
	size_t k;

	if (evicted)
		evicted->family = 0;
	if (cap && s->n >= cap) {
		e = &t->v[s->heap[0]];
		if (e->expires <= now) {
			errno = ENOSPC;	/* the kernel may still count it */
			return NULL;
		}
		if (evicted)
			*evicted = *e;
		xb_dns_learn_del(t, e);
		s->evicted++;
	}
	if (((t->n_used + 1) * 2 > t->nslots && !rehash(t, t->nslots ? t->nslots * 2 : 1024)) ||
	    !heap_room(s) || !take_slot(t, &idx)) {
		errno = ENOMEM;
		return NULL;
	}
	e = &t->v[idx];
	memset(e, 0, sizeof(*e));
	memcpy(e->addr, addr, alen(family));
	e->family = (uint8_t)family;
	e->set = (uint16_t)set;
	e->fp = fp;
	e->expires = expires;
	k = probe(t, set, family, addr);
	t->slot[k] = idx + 1;
	s->heap[s->n] = idx;
	e->hpos = (uint32_t)s->n++;
	sift_up(t, s, e->hpos);
	t->n_used++;
	t->dirty = true;
	return e;
}

struct xb_dns_learn_entry *xb_dns_learn_first(struct xb_dns_learn *t, int set)
{
	const struct xb_dns_learn_set *s = &t->sets[set];

	return s->n ? &t->v[s->heap[0]] : NULL;
}

size_t xb_dns_learn_expire(struct xb_dns_learn *t, uint64_t now)
{
	size_t gone = 0;
	struct xb_dns_learn_entry *e;

	for (size_t i = 0; i < t->n_sets; i++)
		while ((e = xb_dns_learn_first(t, (int)i)) && e->expires <= now) {
			xb_dns_learn_del(t, e);
			gone++;
		}
	return gone;
}

size_t xb_dns_learn_trim(struct xb_dns_learn *t, int set, size_t cap)
{
	size_t gone = 0;

	while (t->sets[set].n > cap) {
		xb_dns_learn_del(t, xb_dns_learn_first(t, set));
		t->sets[set].evicted++;
		gone++;
	}
	return gone;
}

size_t xb_dns_learn_count(const struct xb_dns_learn *t, int set)
{
	return set >= 0 && (size_t)set < t->n_sets ? t->sets[set].n : 0;
}

size_t xb_dns_learn_total(const struct xb_dns_learn *t)
{
	return t->n_used;
}
