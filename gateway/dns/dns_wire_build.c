/* DNS wire format: building answers and upstream queries; see dns_wire.h.
 *
 * An answer is written front to back into the caller's buffer. The bytes
 * for the OPT are reserved from the start, so EDNS is never what gets cut.
 * A record that does not fit is rolled back whole: the message always ends
 * at a record boundary. Owner and rdata names equal to a name already
 * written whole (the question's, a CNAME target) become compression pointers.
 */
#include "gateway/dns/dns_wire.h"
#include "common/bytes.h"

#include <string.h>

#define MSG_MAX 65535	/* TCP's two-octet length prefix */

/* Append n octets, if they fit before the OPT reserve. */
static bool put(struct xb_dns_wire_builder *b, const void *p, size_t n)
{
	if (b->size - b->reserve - b->len < n)
		return false;
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	return true;
}

static bool put_name(struct xb_dns_wire_builder *b, const uint8_t *name)
{
	size_t off = b->len;
	uint8_t ptr[2];

	for (unsigned i = 0; i < b->nnames; i++) {
		if (xb_dns_wire_name_equal(b->buf + b->names[i], name)) {
			ptr[0] = (uint8_t)(0xc0 | b->names[i] >> 8);
			ptr[1] = (uint8_t)b->names[i];
			return put(b, ptr, 2);
		}
	}
	if (!put(b, name, xb_dns_wire_name_len(name, XB_DNS_WIRE_NAME_MAX)))
		return false;
	if (b->nnames < sizeof(b->names) / sizeof(b->names[0]) && off < 0x4000 && name[0])
		b->names[b->nnames++] = (uint16_t)off;
	return true;
}

static void opt_put(uint8_t *p, uint16_t size, uint32_t ttl)
{
	p[0] = 0;			/* the root */
	xb_put16(p + 1, XB_DNS_WIRE_T_OPT);
	xb_put16(p + 3, size);
	xb_put32(p + 5, ttl);
	xb_put16(p + 9, 0);		/* no options */
}

int xb_dns_wire_answer_begin(struct xb_dns_wire_builder *b, uint8_t *buf, size_t size,
		      const struct xb_dns_wire_query *q, unsigned rcode, uint16_t extra,
		      uint16_t our_size)
{
	size_t qlen = q->has_question ? q->q.name_len + 4u : 0;
	uint16_t flags = XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RA | (extra & (XB_DNS_WIRE_F_AA | XB_DNS_WIRE_F_AD));

	if (rcode > 0xfff || (rcode > 0xf && !q->edns.present))
		return -1;
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->size = size > MSG_MAX ? MSG_MAX : size;
	b->opt = q->edns.present;
	b->reserve = b->opt ? XB_DNS_WIRE_OPT_LEN : 0;
	if (XB_DNS_WIRE_HDR_LEN + qlen + b->reserve > b->size)
		return -1;
	b->opt_size = our_size < XB_DNS_WIRE_UDP_MIN ? XB_DNS_WIRE_UDP_MIN : our_size;
	b->opt_ttl = (uint32_t)(rcode >> 4) << 24 | (q->edns.do_bit ? 0x8000 : 0);
	flags |= q->hdr.flags & (0x7800 | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_CD);	/* opcode, RD, CD */
	xb_put16(buf, q->hdr.id);
	xb_put16(buf + 2, flags | (rcode & 0xf));
	memset(buf + 4, 0, 8);
	b->len = XB_DNS_WIRE_HDR_LEN;
	b->sec = XB_DNS_WIRE_AN;
	if (q->has_question) {
		b->names[b->nnames++] = XB_DNS_WIRE_HDR_LEN;
		memcpy(buf + b->len, q->q.name, q->q.name_len);
		xb_put16(buf + b->len + q->q.name_len, q->q.qtype);
		xb_put16(buf + b->len + q->q.name_len + 2, q->q.qclass);
		b->len += qlen;
		b->count[0] = 1;
	}
	return 0;
}

/* Rdata as up to two names (compressible, RFC 3597 4) then raw octets. */
struct rdata {
	const uint8_t *name[2];
	const void *raw;
	size_t rawlen;
};

static bool args_ok(const struct xb_dns_wire_builder *b, enum xb_dns_wire_section sec, const uint8_t *owner,
		    const struct rdata *rd)
{
	if (sec < b->sec || sec > XB_DNS_WIRE_AR || !owner || !xb_dns_wire_name_len(owner, XB_DNS_WIRE_NAME_MAX))
		return false;
	for (int i = 0; i < 2; i++)
		if (rd->name[i] && !xb_dns_wire_name_len(rd->name[i], XB_DNS_WIRE_NAME_MAX))
			return false;
	return rd->rawlen <= MSG_MAX;
}

static int record(struct xb_dns_wire_builder *b, enum xb_dns_wire_section sec, const uint8_t *owner,
		  uint16_t type, uint32_t ttl, const struct rdata *rd)
{
	size_t start = b->len, rdata;
	unsigned nnames = b->nnames;
	uint8_t fixed[10];

	if (!owner && b->count[0])
		owner = b->buf + XB_DNS_WIRE_HDR_LEN;
	if (!args_ok(b, sec, owner, rd))
		return -1;
	if (b->tc)
		return 1;
	b->sec = sec;
	xb_put16(fixed, type);
	xb_put16(fixed + 2, XB_DNS_WIRE_C_IN);
	xb_put32(fixed + 4, ttl);
	xb_put16(fixed + 8, 0);
	if (!put_name(b, owner) || !put(b, fixed, sizeof(fixed)))
		goto full;
	rdata = b->len;
	for (int i = 0; i < 2; i++)
		if (rd->name[i] && !put_name(b, rd->name[i]))
			goto full;
	if (rd->rawlen && !put(b, rd->raw, rd->rawlen))
		goto full;
	xb_put16(b->buf + rdata - 2, (uint16_t)(b->len - rdata));
	b->count[sec]++;
	return 0;
full:
	b->len = start;
	b->nnames = nnames;
	if (sec != XB_DNS_WIRE_AR)
		b->tc = true;	/* RFC 2181 9: only missing required data is TC */
	return 1;
}

int xb_dns_wire_answer_add(struct xb_dns_wire_builder *b, enum xb_dns_wire_section sec, const uint8_t *owner,
		    uint16_t type, uint32_t ttl, const void *rdata, size_t rdlen)
{
	const struct rdata rd = { { NULL, NULL }, rdata, rdlen };

	if (type == XB_DNS_WIRE_T_OPT)
		return -1;	/* the builder writes the only OPT */
	return record(b, sec, owner, type, ttl, &rd);
}

int xb_dns_wire_answer_a(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[4])
{
	return xb_dns_wire_answer_add(b, XB_DNS_WIRE_AN, owner, XB_DNS_WIRE_T_A, ttl, a, 4);
}

int xb_dns_wire_answer_aaaa(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[16])
{
	return xb_dns_wire_answer_add(b, XB_DNS_WIRE_AN, owner, XB_DNS_WIRE_T_AAAA, ttl, a, 16);
}

int xb_dns_wire_answer_cname(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t *target)
{
	const struct rdata rd = { { target, NULL }, NULL, 0 };

	if (!target)
		return -1;
	return record(b, XB_DNS_WIRE_AN, owner, XB_DNS_WIRE_T_CNAME, ttl, &rd);
}

int xb_dns_wire_answer_soa(struct xb_dns_wire_builder *b, const struct xb_dns_wire_soa *soa)
{
	uint8_t num[20];
	const struct rdata rd = { { soa->mname, soa->rname }, num, sizeof(num) };

	if (!soa->zone || !soa->mname || !soa->rname)
		return -1;
	xb_put32(num, soa->serial);
	xb_put32(num + 4, soa->refresh);
	xb_put32(num + 8, soa->retry);
	xb_put32(num + 12, soa->expire);
	xb_put32(num + 16, soa->minimum);
	return record(b, XB_DNS_WIRE_NS, soa->zone, XB_DNS_WIRE_T_SOA, soa->ttl, &rd);
}

size_t xb_dns_wire_answer_finish(struct xb_dns_wire_builder *b)
{
	if (b->opt) {
		opt_put(b->buf + b->len, b->opt_size, b->opt_ttl);
		b->len += XB_DNS_WIRE_OPT_LEN;
		b->count[XB_DNS_WIRE_AR]++;
		b->opt = false;
		b->reserve = 0;
	}
	for (int i = 0; i < 4; i++)
		xb_put16(b->buf + 4 + 2 * i, b->count[i]);
	if (b->tc)
		b->buf[2] |= XB_DNS_WIRE_F_TC >> 8;
	return b->len;
}

int xb_dns_wire_build_query(uint8_t *buf, size_t cap, uint16_t id, uint16_t flags,
		     const struct xb_dns_wire_question *q, const struct xb_dns_wire_edns *edns)
{
	size_t n = XB_DNS_WIRE_HDR_LEN + q->name_len;

	if (!q->name_len || xb_dns_wire_name_len(q->name, q->name_len) != q->name_len ||
	    n + 4 + (edns ? XB_DNS_WIRE_OPT_LEN : 0) > cap)
		return -1;
	xb_put16(buf, id);
	xb_put16(buf + 2, XB_DNS_WIRE_F_RD | (flags & (XB_DNS_WIRE_F_CD | XB_DNS_WIRE_F_AD)));
	xb_put16(buf + 4, 1);
	memset(buf + 6, 0, 4);
	xb_put16(buf + 10, edns ? 1 : 0);
	memcpy(buf + XB_DNS_WIRE_HDR_LEN, q->name, q->name_len);
	xb_put16(buf + n, q->qtype);
	xb_put16(buf + n + 2, q->qclass);
	n += 4;
	if (edns) {
		opt_put(buf + n, edns->udp_size < XB_DNS_WIRE_UDP_MIN ? XB_DNS_WIRE_UDP_MIN : edns->udp_size,
			edns->do_bit ? 0x8000 : 0);
		n += XB_DNS_WIRE_OPT_LEN;
	}
	return (int)n;
}
