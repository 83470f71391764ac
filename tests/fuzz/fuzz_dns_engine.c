/* libFuzzer: an upstream's answer through the resolver's engine
 * (dns_engine.c): dns_answer_from learns its addresses for the access rules
 * (learn), re-encodes it after an override's CNAME (chased_answer) or cuts
 * its OPT for a client that sent none (strip_opt); then the same answer
 * stored in the cache and served from it (dns_from_cache).
 *
 * Input: one octet of options, then the upstream's message. The client's
 * query is made from that message's question (so that the answer matches
 * it), or asks for an override name whose CNAME target the message must
 * then answer. Options: bit 0 the client sent EDNS, bit 1 with DO, bits 2-3
 * the name asked (0: the message's own; 1: www.example.org, a CNAME override
 * to a.example.com, itself an access rule's; 2: x.example.org, a CNAME to a
 * local override). Checks: every answer for the client parses as a response
 * to its query, and carries no OPT when the query had none (RFC 6891 7);
 * what it taught, flushed as each service round does, holds no special-
 * purpose address and no set over learn_max. */
#include "fuzz_policy.h"
#include "gateway/dns/dns_internal.h"
#include "common/bytes.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\";\n"
	"  pool6 = \"2001:db8:100::/64\"; };\n"
	"devices = ( { name = \"d1\"; public_key = \"4Y/dLaQvQZ4EuD2bQOcm0Z+vMIUIGI4MZqth6a/3/m0=\"; } );\n"
	"rules = (\n"
	"  { name = \"web\"; domains = [ \"*.example.com\", \"example.net\" ]; action = \"allow\"; via = [ \"internet\" ]; },\n"
	"  { name = \"bad\"; domains = [ \"*.bad.example\", \"example.net\" ]; action = \"deny\"; }\n"
	");\n"
	"dns = { upstreams = [ \"192.0.2.53\" ];\n"
	"  rules = (\n"
	"    { name = \"ov\"; domains = [ \"www.example.org\" ]; action = \"override\"; cname = \"a.example.com\"; },\n"
	"    { name = \"loc\"; domains = [ \"local.example.org\" ]; action = \"override\";\n"
	"      answer = [ \"203.0.113.10\", \"2001:db8::10\" ]; },\n"
	"    { name = \"ovl\"; domains = [ \"x.example.org\" ]; action = \"override\"; cname = \"local.example.org\"; }\n"
	"  );\n"
	"};\n";

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static struct xb_dns_service *setup(void)
{
	static struct xb_dns_service s;
	struct xb_errors errs = { 0 };

	if (s.cfg)
		return &s;
	log_init("fuzz", LOG_LVL_ERR, false);
	if (!(s.cfg = xb_dns_service_prepare(fuzz_policy(conf), &errs)) || !(s.cache = xb_dns_cache_new(NULL)))
		abort();
	check(s.cfg->n_acc == 2 && s.cfg->acc[0].has4 && s.cfg->acc[0].has6);
	s.nft_ok = false;	/* set updates fail (counted): no kernel here */
	/* What xb_dns_service_new sets up for learning: the queue and the table. */
	if (!(s.pend = calloc(DNS_PEND_MAX, sizeof(*s.pend))))
		abort();
	xb_dns_learn_init(&s.learned);
	return &s;
}

/* The client's query: the message's header id, RD, its question or the
 * override name, and an OPT when asked. 0 when there is no question. */
static size_t client_query(const uint8_t *msg, size_t len, unsigned opt, uint8_t *q)
{
	static const char *const names[] = { NULL, "www.example.org", "x.example.org", "local.example.org" };
	uint8_t name[XB_DNS_WIRE_NAME_MAX];
	size_t ml, nl, n;

	if (len < XB_DNS_WIRE_HDR_LEN + 5 || !(ml = xb_dns_wire_name_len(msg + XB_DNS_WIRE_HDR_LEN, len - XB_DNS_WIRE_HDR_LEN - 4)))
		return 0;
	if (names[opt >> 2 & 3]) {
		nl = (size_t)xb_dns_wire_name_from_text(names[opt >> 2 & 3], name);
	} else {
		nl = ml;
		memcpy(name, msg + XB_DNS_WIRE_HDR_LEN, ml);
	}
	memcpy(q, msg, 2);
	memcpy(q + 2, "\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);
	memcpy(q + XB_DNS_WIRE_HDR_LEN, name, nl);
	n = XB_DNS_WIRE_HDR_LEN + nl;
	memcpy(q + n, msg + XB_DNS_WIRE_HDR_LEN + ml, 4);	/* the message's qtype and qclass */
	n += 4;
	if (opt & 1) {
		static const uint8_t edns[XB_DNS_WIRE_OPT_LEN] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };

		memcpy(q + n, edns, sizeof(edns));
		if (opt & 2)
			q[n + 7] = 0x80;	/* DO */
		q[11] = 1;
		n += sizeof(edns);
	}
	return n;
}

/* An answer for the client: a response to its query, no OPT without its. */
static void client_answer(const struct dns_query *qq, const uint8_t *out, size_t len)
{
	struct xb_dns_wire_msg m;

	if (!len)
		return;
	check(len <= XB_DNS_CACHE_MSG_MAX);
	check(xb_dns_wire_parse_response(&m, out, len, qq->q.hdr.id, &qq->q.q) == XB_DNS_WIRE_R_OK);
	check(qq->q.edns.present || !m.edns.present);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_service *s = setup();
	uint8_t qbuf[XB_DNS_WIRE_HDR_LEN + XB_DNS_WIRE_NAME_MAX + 4 + XB_DNS_WIRE_OPT_LEN];
	struct dns_query qq = { 0 }, qc;
	const struct xb_dns_wire_query *ask;
	struct xb_dns_wire_msg m;
	size_t qlen, len = 0;

	if (size < 1 || !(qlen = client_query(data + 1, size - 1, data[0], qbuf)))
		return 0;
	if (xb_dns_wire_parse_query(&qq.q, qbuf, qlen) != XB_DNS_WIRE_Q_OK)
		return 0;
	s->now_ns += 1000000000;
	if (dns_decide(s, &qq, out, sizeof(out), &len) == DNS_ANSWERED) {
		client_answer(&qq, out, len);
		return 0;
	}
	ask = qq.chase ? &qq.qc : &qq.q;
	qc = qq;
	if (xb_dns_wire_parse_response(&m, data + 1, size - 1, xb_get16(data + 1), &ask->q) != XB_DNS_WIRE_R_OK)
		return 0;
	xb_dns_cache_store(s->cache, qq.scope, &ask->q, data + 1, size - 1, s->now_ns);
	len = dns_answer_from(s, &qq, &m, out, sizeof(out));
	client_answer(&qq, out, len);
	/* What the answer taught, applied as the service does each round: no
	 * special-purpose address, no set over its cap. */
	dns_learn_flush(s);
	check(s->n_pend == 0);
	for (size_t i = 0; i < s->learned.used_top; i++)
		if (s->learned.v[i].family)
			check(xb_dns_learn_classify(s->learned.v[i].family, s->learned.v[i].addr) != XB_DNS_LEARN_SPECIAL);
	for (size_t k = 0; k < s->learned.n_sets; k++)
		check(xb_dns_learn_count(&s->learned, (int)k) <= dns_learn_cap(&s->cfg->p->dns));
	len = dns_from_cache(s, &qc, out, sizeof(out));
	client_answer(&qc, out, len);
	xb_dns_cache_flush(s->cache);
	return 0;
}
