/* libFuzzer: one DNS message, read as a client's query and as an upstream's
 * response to the question it carries. What the codec accepts must survive
 * its own round trips: an answer built for a parsed query parses back as a
 * response to it, a validated response can be walked, aged and truncated,
 * and the result still validates. Seeds: tests/fuzz/corpus/fuzz_dns. */
#include "gateway/dns/dns_wire.h"

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
	static struct xb_dns_wire_query q;
	uint8_t buf[1232], name[XB_DNS_WIRE_NAME_MAX];
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_msg m;
	enum xb_dns_wire_qverdict v = xb_dns_wire_parse_query(&q, data, size);
	size_t n, limit = xb_dns_wire_udp_limit(&q, sizeof(buf));

	if (v != XB_DNS_WIRE_Q_OK) {
		check(q.err.what != NULL);	/* every refusal says why */
		if (v == XB_DNS_WIRE_Q_DROP || (v == XB_DNS_WIRE_Q_FORMERR && !q.has_question))
			return;
	} else {
		int w = xb_dns_wire_name_from_text(q.text, name);

		check(w == q.q.name_len && xb_dns_wire_name_equal(name, q.q.name));
	}
	if (xb_dns_wire_answer_begin(&b, buf, limit, &q, v == XB_DNS_WIRE_Q_OK ? XB_DNS_WIRE_NOERROR : XB_DNS_WIRE_FORMERR,
			      0, sizeof(buf)))
		return;
	for (int i = 0; i < 100 && xb_dns_wire_answer_a(&b, NULL, 60, a) == 0; i++)
		;
	n = xb_dns_wire_answer_finish(&b);
	check(n <= limit);
	if (v == XB_DNS_WIRE_Q_OK)
		check(xb_dns_wire_parse_response(&m, buf, n, q.hdr.id, &q.q) == XB_DNS_WIRE_R_OK);
}

/* Walk, chain, age and truncate a validated response. */
static void walk(const struct xb_dns_wire_msg *m)
{
	static uint8_t copy[65536];
	struct xb_dns_wire_addr addr[8];
	struct xb_dns_wire_chain c;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	uint32_t ttl;
	size_t t;

	for (enum xb_dns_wire_section s = XB_DNS_WIRE_AN; s <= XB_DNS_WIRE_AR; s++)
		for (xb_dns_wire_iter_init(&it, m, s); xb_dns_wire_iter_next(&it, &rr);)
			check(xb_dns_wire_name_len(rr.owner, rr.owner_len) == rr.owner_len &&
			      rr.rdata_off + rr.rdlen <= m->len);
	if (!xb_dns_wire_chain(m, &c, addr, 8))
		xb_dns_wire_negative_ttl(m, c.name, &ttl);
	if (m->hdr.flags & XB_DNS_WIRE_F_TC)
		return;		/* its header may still count records it dropped */
	memcpy(copy, m->msg, m->len);
	check(xb_dns_wire_age_ttls(copy, m->len, 30, 0) >= 0);
	/* Aging may change what a hostile name pointing into a TTL field
	 * reads as (see docs/dns.md), so truncation starts from the original. */
	memcpy(copy, m->msg, m->len);
	t = xb_dns_wire_truncate(copy, m->len, 512);
	if (t) {
		struct xb_dns_wire_msg again;

		check(t <= 512 || t == m->len);
		check(xb_dns_wire_parse_response(&again, copy, t, m->hdr.id, &m->q) == XB_DNS_WIRE_R_OK);
	}
}

static void as_response(const uint8_t *data, size_t size)
{
	struct xb_dns_wire_question q;
	struct xb_dns_wire_err err;
	struct xb_dns_wire_msg m;
	size_t next;
	int n;

	if (size < XB_DNS_WIRE_HDR_LEN)
		return;
	n = xb_dns_wire_name_decode(data, size, XB_DNS_WIRE_HDR_LEN, q.name, &next, &err);
	if (n < 0 || size - next < 4)
		return;
	q.name_len = (uint16_t)n;
	q.qtype = (uint16_t)(data[next] << 8 | data[next + 1]);
	q.qclass = (uint16_t)(data[next + 2] << 8 | data[next + 3]);
	xb_dns_wire_name_lower(q.name);	/* matching ignores case */
	if (xb_dns_wire_parse_response(&m, data, size, (uint16_t)(data[0] << 8 | data[1]), &q) == XB_DNS_WIRE_R_OK)
		walk(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_query(data, size);
	as_response(data, size);
	return 0;
}
