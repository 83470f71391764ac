/* libFuzzer: one DNS message, read as a client's query and as an upstream's
 * response to the question it carries. What the codec accepts must survive
 * its own round trips: an answer built for a parsed query parses back as a
 * response to it, a validated response can be walked, aged and truncated,
 * and the result still validates. Seeds: tests/fuzz/corpus/fuzz_dns. */
#include "gateway/dns_wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void as_query(const uint8_t *data, size_t size)
{
	static const uint8_t a[4] = { 192, 0, 2, 1 };
	static struct dnsw_query q;
	uint8_t buf[1232], name[DNSW_NAME_MAX];
	struct dnsw_builder b;
	struct dnsw_msg m;
	enum dnsw_qverdict v = dnsw_parse_query(&q, data, size);
	size_t n, limit = dnsw_udp_limit(&q, sizeof(buf));

	if (v != DNSW_Q_OK) {
		check(q.err.what != NULL);	/* every refusal says why */
		if (v == DNSW_Q_DROP || (v == DNSW_Q_FORMERR && !q.has_question))
			return;
	} else {
		int w = dnsw_name_from_text(q.text, name);

		check(w == q.q.name_len && dnsw_name_equal(name, q.q.name));
	}
	if (dnsw_answer_begin(&b, buf, limit, &q, v == DNSW_Q_OK ? DNSW_NOERROR : DNSW_FORMERR,
			      0, sizeof(buf)))
		return;
	for (int i = 0; i < 100 && dnsw_answer_a(&b, NULL, 60, a) == 0; i++)
		;
	n = dnsw_answer_finish(&b);
	check(n <= limit);
	if (v == DNSW_Q_OK)
		check(dnsw_parse_response(&m, buf, n, q.hdr.id, &q.q) == DNSW_R_OK);
}

/* Walk, chain, age and truncate a validated response. */
static void walk(const struct dnsw_msg *m)
{
	static uint8_t copy[65536];
	struct dnsw_addr addr[8];
	struct dnsw_chain c;
	struct dnsw_iter it;
	struct dnsw_rr rr;
	uint32_t ttl;
	size_t t;

	for (enum dnsw_section s = DNSW_AN; s <= DNSW_AR; s++)
		for (dnsw_iter_init(&it, m, s); dnsw_iter_next(&it, &rr);)
			check(dnsw_name_len(rr.owner, rr.owner_len) == rr.owner_len &&
			      rr.rdata_off + rr.rdlen <= m->len);
	if (!dnsw_chain(m, &c, addr, 8))
		dnsw_negative_ttl(m, c.name, &ttl);
	if (m->hdr.flags & DNSW_F_TC)
		return;		/* its header may still count records it dropped */
	memcpy(copy, m->msg, m->len);
	check(dnsw_age_ttls(copy, m->len, 30, 0) >= 0);
	/* Aging may change what a hostile name pointing into a TTL field
	 * reads as (see docs/dns.md), so truncation starts from the original. */
	memcpy(copy, m->msg, m->len);
	t = dnsw_truncate(copy, m->len, 512);
	if (t) {
		struct dnsw_msg again;

		check(t <= 512 || t == m->len);
		check(dnsw_parse_response(&again, copy, t, m->hdr.id, &m->q) == DNSW_R_OK);
	}
}

static void as_response(const uint8_t *data, size_t size)
{
	struct dnsw_question q;
	struct dnsw_err err;
	struct dnsw_msg m;
	size_t next;
	int n;

	if (size < DNSW_HDR_LEN)
		return;
	n = dnsw_name_decode(data, size, DNSW_HDR_LEN, q.name, &next, &err);
	if (n < 0 || size - next < 4)
		return;
	q.name_len = (uint16_t)n;
	q.qtype = (uint16_t)(data[next] << 8 | data[next + 1]);
	q.qclass = (uint16_t)(data[next + 2] << 8 | data[next + 3]);
	dnsw_name_lower(q.name);	/* matching ignores case */
	if (dnsw_parse_response(&m, data, size, (uint16_t)(data[0] << 8 | data[1]), &q) == DNSW_R_OK)
		walk(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_query(data, size);
	as_response(data, size);
	return 0;
}
