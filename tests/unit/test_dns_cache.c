/* The answer cache with a fake clock: TTL aging and expiry, negative caching
 * from the SOA, the min/max caps, LRU eviction at the entry and byte bounds,
 * scopes, refusal of malformed and uncacheable messages, stats; and, as
 * notes, lookup cost and memory per entry with 100k entries. */
#include "gateway/dns/dns_cache.h"
#include "tests/lib/check.h"

#include <time.h>

#define S 1000000000ULL		/* a second of the fake clock */
#define T0 (1000 * S)

static struct xb_dns_wire_question qn(const char *text, uint16_t type)
{
	struct xb_dns_wire_question q = { .qtype = type, .qclass = XB_DNS_WIRE_C_IN };
	int n = xb_dns_wire_name_from_text(text, q.name);

	CHECK(n > 0);
	q.name_len = (uint16_t)n;
	return q;
}

static const uint8_t zone[] = "\7example\3com";
static const uint8_t ns1[] = "\3ns1\7example\3com";
static const uint8_t host[] = "\10hostmast\7example\3com";

/* An answer to q: rcode, n A records with TTL a_ttl, and an SOA with soa_ttl
 * and minimum soa_min when soa_ttl != 0. Returns its length. */
static size_t answer(uint8_t *buf, size_t cap, const struct xb_dns_wire_question *q,
		     unsigned rcode, unsigned n, uint32_t a_ttl, uint32_t soa_ttl,
		     uint32_t soa_min)
{
	uint8_t qb[512];
	struct xb_dns_wire_query pq;
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_soa soa = { zone, ns1, host, soa_ttl, 1, 7200, 900, 86400, soa_min };
	int qlen = xb_dns_wire_build_query(qb, sizeof(qb), 0x4242, 0, q, NULL);

	CHECK(qlen > 0);
	CHECK_INT(xb_dns_wire_parse_query(&pq, qb, (size_t)qlen), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, cap, &pq, rcode, 0, XB_DNS_WIRE_EDNS_SIZE), ==, 0);
	for (unsigned i = 0; i < n; i++) {
		uint8_t a[4] = { 192, 0, 2, (uint8_t)(i + 1) };

		CHECK_INT(xb_dns_wire_answer_a(&b, NULL, a_ttl, a), ==, 0);
	}
	if (soa_ttl)
		CHECK_INT(xb_dns_wire_answer_soa(&b, &soa), ==, 0);
	return xb_dns_wire_answer_finish(&b);
}

static size_t a_answer(uint8_t *buf, const struct xb_dns_wire_question *q, uint32_t ttl)
{
	return answer(buf, 4096, q, XB_DNS_WIRE_NOERROR, 1, ttl, 0, 0);
}

/* The TTL of every record of a returned message must be want; checks its
 * id too. */
static void check_ttls(const uint8_t *msg, size_t len, const struct xb_dns_wire_question *q,
		       uint16_t id, uint32_t want)
{
	struct xb_dns_wire_msg m;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	unsigned n = 0;

	CHECK_INT(xb_dns_wire_parse_response(&m, msg, len, id, q), ==, XB_DNS_WIRE_R_OK);
	for (int s = XB_DNS_WIRE_AN; s <= XB_DNS_WIRE_NS; s++) {
		xb_dns_wire_iter_init(&it, &m, (enum xb_dns_wire_section)s);
		while (xb_dns_wire_iter_next(&it, &rr)) {
			CHECK_INT(rr.ttl, ==, want);
			n++;
		}
	}
	CHECK_INT(n, >, 0);
}

static struct xb_dns_cache *cache(size_t entries, size_t bytes, uint32_t min, uint32_t max)
{
	struct xb_dns_cache_conf conf = { entries, bytes, min, max, 0, 0 };
	struct xb_dns_cache *c = xb_dns_cache_new(&conf);

	CHECK(c);
	return c;
}

TEST(aging_and_expiry)
{
	struct xb_dns_wire_question q = qn("WWW.Example.com", XB_DNS_WIRE_T_A), lq = qn("www.example.COM", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	struct xb_dns_cache_stats st;
	uint32_t left = 0;
	size_t len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 3, 300, 0, 0), n;

	CHECK_INT(xb_dns_cache_lookup(c, 0, &lq, 7, T0, out, sizeof(out), &left), ==, 0);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	n = xb_dns_cache_lookup(c, 0, &lq, 0xbeef, T0 + 100 * S + S / 2, out, sizeof(out), &left);
	CHECK_INT(n, ==, len);
	CHECK_INT(left, ==, 200);
	check_ttls(out, n, &q, 0xbeef, 200);
	n = xb_dns_cache_lookup(c, 0, &lq, 1, T0 + 299 * S, out, sizeof(out), &left);
	CHECK_INT(n, ==, len);
	CHECK_INT(left, ==, 1);
	check_ttls(out, n, &q, 1, 1);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &lq, 1, T0 + 300 * S, out, sizeof(out), &left), ==, 0);
	/* A clock that goes backwards reads as no time passed. */
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &lq, 1, T0 - 5 * S, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, 300);
	/* Another type or class is another key. */
	q.qtype = XB_DNS_WIRE_T_AAAA;
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0, out, sizeof(out), NULL), ==, 0);
	/* A buffer too small for the entry is a miss, nothing written past it. */
	CHECK_INT(xb_dns_cache_lookup(c, 0, &lq, 1, T0, out, len - 1, NULL), ==, 0);
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.hits, ==, 3);
	CHECK_INT(st.misses, ==, 4);
	CHECK_INT(st.expired, ==, 1);
	CHECK_INT(st.entries, ==, 1);
	CHECK_INT(st.stored, ==, 2);
	xb_dns_cache_free(c);
}

TEST(negative_from_soa)
{
	struct xb_dns_wire_question q = qn("nope.example.com", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	uint32_t left;
	size_t len;

	/* NXDOMAIN: min(SOA TTL 900, MINIMUM 60). */
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NXDOMAIN, 0, 0, 900, 60);
	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 9, T0 + 10 * S, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, 50);
	CHECK_INT(out[3] & 0xf, ==, XB_DNS_WIRE_NXDOMAIN);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 9, T0 + 60 * S, out, sizeof(out), &left), ==, 0);
	/* NODATA: min(SOA TTL 30, MINIMUM 600). */
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 0, 0, 30, 600);
	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 9, T0, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, 30);
	/* Capped at the negative maximum (3600 by default). */
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NXDOMAIN, 0, 0, 86400, 86400);
	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 9, T0, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, XB_DNS_CACHE_NEG_MAX_TTL);
	/* Without an SOA a negative answer is not cached (RFC 2308 5). */
	xb_dns_cache_flush(c);
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NXDOMAIN, 0, 0, 0, 0);
	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 0, 0, 0, 0);
	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 9, T0, out, sizeof(out), NULL), ==, 0);
	xb_dns_cache_free(c);
}

TEST(ttl_caps)
{
	struct xb_dns_wire_question q = qn("a.example.com", XB_DNS_WIRE_T_A), r = qn("b.example.com", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = cache(0, 0, 60, 120);
	uint32_t left;
	size_t len = a_answer(msg, &q, 5);

	/* Raised to the minimum: the entry lives 60 s, its records read 0 by then. */
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0 + 59 * S, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, 1);
	check_ttls(out, len, &q, 1, 0);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0 + 60 * S, out, sizeof(out), &left), ==, 0);
	/* Lowered to the maximum. */
	len = a_answer(msg, &r, 100000);
	CHECK_INT(xb_dns_cache_store(c, 0, &r, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &r, 1, T0, out, sizeof(out), &left), ==, len);
	CHECK_INT(left, ==, 120);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &r, 1, T0 + 120 * S, out, sizeof(out), &left), ==, 0);
	xb_dns_cache_free(c);

	/* With the default minimum 0, a TTL of 0 is not stored. */
	c = xb_dns_cache_new(NULL);
	len = a_answer(msg, &q, 0);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	xb_dns_cache_free(c);
}

TEST(refused)
{
	struct xb_dns_wire_question q = qn("www.example.com", XB_DNS_WIRE_T_A), other = qn("www.example.net", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	struct xb_dns_cache_stats st;
	size_t len;

	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_SERVFAIL, 0, 0, 300, 300);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_REFUSED, 1, 300, 0, 0);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	len = a_answer(msg, &q, 300);
	msg[2] |= XB_DNS_WIRE_F_TC >> 8;
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_UNCACHEABLE);
	msg[2] &= (uint8_t)~(XB_DNS_WIRE_F_TC >> 8);
	/* Cut inside the last record; an answer to another question; a query;
	 * short and empty input. */
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len - 1, T0), ==, XB_DNS_CACHE_MALFORMED);
	CHECK_INT(xb_dns_cache_store(c, 0, &other, msg, len, T0), ==, XB_DNS_CACHE_MALFORMED);
	msg[2] &= 0x7f;
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_MALFORMED);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, 11, T0), ==, XB_DNS_CACHE_MALFORMED);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, 0, T0), ==, XB_DNS_CACHE_MALFORMED);
	memset(msg, 0xff, sizeof(msg));
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, sizeof(msg), T0), ==, XB_DNS_CACHE_MALFORMED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0, out, sizeof(out), NULL), ==, 0);
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.uncacheable, ==, 3);
	CHECK_INT(st.malformed, ==, 6);
	CHECK_INT(st.entries, ==, 0);
	CHECK_INT(st.bytes, ==, 0);
	xb_dns_cache_free(c);
}

TEST(trailing_bytes_not_stored)
{
	struct xb_dns_wire_question q = qn("www.example.com", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	size_t len = a_answer(msg, &q, 300);

	memset(msg + len, 0xab, 40);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len + 40, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0, out, sizeof(out), NULL), ==, len);
	xb_dns_cache_free(c);
}

static struct xb_dns_wire_question numbered(unsigned i)
{
	char text[64];

	snprintf(text, sizeof(text), "host%u.example.com", i);
	return qn(text, XB_DNS_WIRE_T_A);
}

static bool present(struct xb_dns_cache *c, unsigned i)
{
	struct xb_dns_wire_question q = numbered(i);
	uint8_t out[XB_DNS_CACHE_MSG_MAX];

	return xb_dns_cache_lookup(c, 0, &q, 1, T0, out, sizeof(out), NULL) > 0;
}

static void put(struct xb_dns_cache *c, unsigned i)
{
	struct xb_dns_wire_question q = numbered(i);
	uint8_t msg[4096];
	size_t len = a_answer(msg, &q, 300);

	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
}

TEST(lru_entries)
{
	struct xb_dns_cache *c = cache(3, 0, 0, 0);
	struct xb_dns_cache_stats st;

	put(c, 1);
	put(c, 2);
	put(c, 3);
	CHECK(present(c, 1));	/* 1 is now the most recent; 2 the least */
	put(c, 4);
	CHECK(!present(c, 2));
	CHECK(present(c, 1) && present(c, 3) && present(c, 4));
	put(c, 3);		/* replacing keeps the count */
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.entries, ==, 3);
	CHECK_INT(st.evictions, ==, 1);
	put(c, 5);		/* 1 is the least recent now */
	CHECK(!present(c, 1));
	CHECK(present(c, 3) && present(c, 4) && present(c, 5));
	xb_dns_cache_free(c);
}

TEST(lru_bytes)
{
	struct xb_dns_wire_question q = numbered(1);
	uint8_t msg[4096];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	struct xb_dns_cache_stats st;
	size_t one, len;

	put(c, 1);
	xb_dns_cache_stats(c, &st);
	one = st.bytes;
	CHECK_INT(one, >, a_answer(msg, &q, 1));
	xb_dns_cache_free(c);

	/* Room for three entries of this size and a half. */
	c = cache(0, one * 7 / 2, 0, 0);
	put(c, 1);
	put(c, 2);
	put(c, 3);
	CHECK(present(c, 1));
	put(c, 4);
	CHECK(!present(c, 2));
	CHECK(present(c, 1) && present(c, 3) && present(c, 4));
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.bytes, ==, 3 * one);
	CHECK_INT(st.evictions, ==, 1);
	/* A message larger than the whole bound is refused; nothing evicted. */
	len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 200, 300, 0, 0);
	CHECK_INT(len, >, one * 7 / 2);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_NOMEM);
	CHECK(present(c, 3) && present(c, 4));
	xb_dns_cache_free(c);
}

TEST(scopes)
{
	struct xb_dns_wire_question q = qn("erp.acme.cn", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(NULL);
	struct xb_dns_cache_stats st;
	size_t len = a_answer(msg, &q, 300), len2;

	CHECK_INT(xb_dns_cache_store(c, 1, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 2, &q, 1, T0, out, sizeof(out), NULL), ==, 0);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 1, T0, out, sizeof(out), NULL), ==, len);
	len2 = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 2, 300, 0, 0);
	CHECK_INT(xb_dns_cache_store(c, 2, &q, msg, len2, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 2, &q, 1, T0, out, sizeof(out), NULL), ==, len2);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 1, T0, out, sizeof(out), NULL), ==, len);
	xb_dns_cache_flush_scope(c, 1);
	CHECK_INT(xb_dns_cache_lookup(c, 1, &q, 1, T0, out, sizeof(out), NULL), ==, 0);
	CHECK_INT(xb_dns_cache_lookup(c, 2, &q, 1, T0, out, sizeof(out), NULL), ==, len2);
	xb_dns_cache_flush(c);
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.entries, ==, 0);
	CHECK_INT(st.bytes, ==, 0);
	CHECK_INT(xb_dns_cache_lookup(c, 2, &q, 1, T0, out, sizeof(out), NULL), ==, 0);
	xb_dns_cache_free(c);
}

/* The cache against a naive model (an array searched linearly, LRU by a
 * use counter) on random stores and lookups over a few names and scopes. */
TEST(model)
{
	enum { NAMES = 12, SCOPES = 3, CAP = 10, ROUNDS = 20000 };
	/* live: held by the cache, expired or not (only a lookup or eviction
	 * removes an entry); used: the tick of its last store or hit. */
	struct { bool live; uint64_t used; uint64_t born; } m[NAMES][SCOPES] = { 0 };
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = cache(CAP, 0, 0, 0);
	uint64_t now = T0, tick = 0;
	unsigned live = 0;

	srand(7);
	for (int r = 0; r < ROUNDS; r++, tick++) {
		unsigned i = (unsigned)rand() % NAMES, s = (unsigned)rand() % SCOPES;
		struct xb_dns_wire_question q = numbered(i);

		now += (uint64_t)(rand() % 3) * S;
		if (rand() % 2) {
			bool hit = xb_dns_cache_lookup(c, s, &q, 1, now, out, sizeof(out), NULL) > 0;
			bool want = m[i][s].live && now - m[i][s].born < 30 * S;

			CHECK_INT(hit, ==, want);
			if (m[i][s].live && !want) {
				m[i][s].live = false;	/* found expired: dropped */
				live--;
			}
			if (hit)
				m[i][s].used = tick;	/* a miss leaves the order alone */
			continue;
		}
		CHECK_INT(xb_dns_cache_store(c, s, &q, msg, a_answer(msg, &q, 30), now), ==, XB_DNS_CACHE_STORED);
		if (!m[i][s].live && live == CAP) {
			unsigned bi = 0, bs = 0;
			uint64_t least = UINT64_MAX;

			for (unsigned a = 0; a < NAMES; a++)
				for (unsigned b = 0; b < SCOPES; b++)
					if (m[a][b].live && m[a][b].used < least) {
						least = m[a][b].used;
						bi = a, bs = b;
					}
			m[bi][bs].live = false;
			live--;
		}
		live += !m[i][s].live;
		m[i][s].live = true;
		m[i][s].used = tick;
		m[i][s].born = now;
	}
	xb_dns_cache_free(c);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

TEST(cost_100k)
{
	enum { N = 100000 };
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = cache(N, 0, 0, 0);
	struct xb_dns_wire_question *qs = malloc(N * sizeof(*qs));
	struct xb_dns_cache_stats st;
	double t, hit, miss;
	size_t n = 0;

	CHECK(qs);
	for (unsigned i = 0; i < N; i++) {
		qs[i] = numbered(i);
		CHECK_INT(xb_dns_cache_store(c, 0, &qs[i], msg, a_answer(msg, &qs[i], 300), T0), ==,
			  XB_DNS_CACHE_STORED);
	}
	t = mono();
	for (unsigned i = 0; i < N; i++)
		n += xb_dns_cache_lookup(c, 0, &qs[(i * 7919u) % N], 1, T0 + S, out, sizeof(out), NULL) > 0;
	hit = (mono() - t) / N;
	CHECK_INT(n, ==, N);
	t = mono();
	for (unsigned i = 0; i < N; i++)
		n += xb_dns_cache_lookup(c, 1, &qs[i], 1, T0 + S, out, sizeof(out), NULL) > 0;
	miss = (mono() - t) / N;
	CHECK_INT(n, ==, N);
	xb_dns_cache_stats(c, &st);
	printf("# note: %d entries, %zu bytes each with a %zu-byte message (+%zu of buckets); "
	       "lookup %.0f ns per hit, %.0f ns per miss\n", N, st.bytes / N,
	       a_answer(msg, &qs[0], 300), 131072 * sizeof(void *) / N, hit, miss);
	free(qs);
	xb_dns_cache_free(c);
}

/* Serve-stale (RFC 8767): an entry outlives its TTL by stale_s for
 * xb_dns_cache_lookup_stale, which gives it with every TTL 30; the normal
 * lookup misses it all along; past the window it is gone. min_ttl holds
 * a short answer at least that long. */
TEST(stale)
{
	struct xb_dns_cache_conf conf = { .stale_s = 3600, .min_ttl = 5 };
	struct xb_dns_wire_question q = qn("www.example.com", XB_DNS_WIRE_T_A);
	uint8_t msg[4096], out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_cache *c = xb_dns_cache_new(&conf);
	struct xb_dns_cache_stats st;
	size_t len = answer(msg, sizeof(msg), &q, XB_DNS_WIRE_NOERROR, 3, 300, 0, 0), n;

	CHECK(c);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	n = xb_dns_cache_lookup_stale(c, 0, &q, 9, T0 + 10 * S, out, sizeof(out));
	CHECK_INT(n, ==, len);				/* a fresh one too */
	check_ttls(out, n, &q, 9, XB_DNS_CACHE_STALE_TTL);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0 + 300 * S, out, sizeof(out), NULL), ==, 0);
	n = xb_dns_cache_lookup_stale(c, 0, &q, 2, T0 + 300 * S, out, sizeof(out));
	CHECK_INT(n, ==, len);				/* expired, still kept */
	check_ttls(out, n, &q, 2, 30);
	n = xb_dns_cache_lookup_stale(c, 0, &q, 3, T0 + (300 + 3599) * S, out, sizeof(out));
	CHECK_INT(n, ==, len);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 1, T0 + (300 + 3599) * S, out, sizeof(out), NULL), ==, 0);
	CHECK_INT(xb_dns_cache_lookup_stale(c, 1, &q, 3, T0 + 400 * S, out, sizeof(out)), ==, 0);
	CHECK_INT(xb_dns_cache_lookup_stale(c, 0, &q, 3, T0 + (300 + 3600) * S, out, sizeof(out)), ==, 0);
	xb_dns_cache_stats(c, &st);
	CHECK_INT(st.stale, ==, 3);
	CHECK_INT(st.expired, ==, 1);
	CHECK_INT(st.entries, ==, 0);			/* past the window: gone */
	/* Without stale_s an expired entry is gone at its TTL. */
	conf.stale_s = 0;
	xb_dns_cache_free(c);
	CHECK((c = xb_dns_cache_new(&conf)) != NULL);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup_stale(c, 0, &q, 3, T0 + 300 * S, out, sizeof(out)), ==, 0);
	/* min_ttl: a 1 s answer is kept 5 s. */
	len = a_answer(msg, &q, 1);
	CHECK_INT(xb_dns_cache_store(c, 0, &q, msg, len, T0), ==, XB_DNS_CACHE_STORED);
	CHECK_INT(xb_dns_cache_lookup(c, 0, &q, 3, T0 + 4 * S, out, sizeof(out), NULL), ==, len);
	xb_dns_cache_free(c);
}
