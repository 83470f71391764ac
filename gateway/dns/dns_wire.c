/* DNS wire format: names, parsing of queries and responses, walking and
 * rewriting records; see dns_wire.h. Building answers is in dns_wire_build.c.
 *
 * Every read is preceded by a length check against the message, and every
 * section is walked completely before anything in it is trusted: a parsed
 * query or a validated response has no record that ends past the message, no
 * name that does not decode, and at most one OPT, in the additional section,
 * owned by the root (RFC 6891 6.1.1).
 */
#include "gateway/dns/dns_wire.h"
#include "common/bytes.h"

#include <string.h>

/* Fixed part of a record after its owner: type, class, TTL, RDLENGTH. */
#define RR_FIXED 10
#define TTL_MAX 0x7fffffffu	/* RFC 2181 8: larger values mean 0 */

static uint8_t low(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static int fail(struct xb_dns_wire_err *err, const char *what, size_t off)
{
	err->what = what;
	err->off = off;
	return -1;
}

/* ---- names ---- */

size_t xb_dns_wire_name_len(const uint8_t *p, size_t max)
{
	size_t i = 0;

	if (max > XB_DNS_WIRE_NAME_MAX)
		max = XB_DNS_WIRE_NAME_MAX;
	while (i < max) {
		uint8_t c = p[i];

		if (c & 0xc0)
			return 0;
		if (!c)
			return i + 1;
		i += 1 + (size_t)c;
	}
	return 0;
}

bool xb_dns_wire_name_equal(const uint8_t *a, const uint8_t *b)
{
	size_t i = 0;

	for (;;) {
		uint8_t n = a[i];

		if (n != b[i])
			return false;
		if (!n)
			return true;
		for (i++; n; n--, i++)
			if (low(a[i]) != low(b[i]))
				return false;
	}
}

static unsigned labels(const uint8_t *p)
{
	unsigned n = 0;

	for (; *p; p += 1 + *p)
		n++;
	return n;
}

bool xb_dns_wire_name_within(const uint8_t *name, const uint8_t *parent)
{
	unsigned ln = labels(name), lp = labels(parent);

	if (ln < lp)
		return false;
	for (; ln > lp; ln--)
		name += 1 + *name;
	return xb_dns_wire_name_equal(name, parent);
}

void xb_dns_wire_name_lower(uint8_t *name)
{
	for (; *name; name += 1 + *name)
		for (uint8_t i = 1; i <= *name; i++)
			name[i] = low(name[i]);
}

int xb_dns_wire_name_to_text(const uint8_t *name, char *text, size_t cap, bool lower)
{
	size_t n = 0;

	if (!*name) {
		if (cap < 2)
			return -1;
		memcpy(text, ".", 2);
		return 1;
	}
	for (; *name; name += 1 + *name) {
		if (n) {
			if (n + 2 > cap)
				return -1;
			text[n++] = '.';
		}
		for (uint8_t i = 1; i <= *name; i++) {
			uint8_t c = lower ? low(name[i]) : name[i];
			size_t k = c < 0x21 || c > 0x7e ? 4 : c == '.' || c == '\\' ? 2 : 1;

			if (n + k + 1 > cap)
				return -1;
			if (k == 4) {
				text[n++] = '\\';
				text[n++] = (char)('0' + c / 100);
				text[n++] = (char)('0' + c / 10 % 10);
				text[n++] = (char)('0' + c % 10);
				continue;
			}
			if (k == 2)
				text[n++] = '\\';
			text[n++] = (char)c;
		}
	}
	if (n + 1 > cap)
		return -1;
	text[n] = '\0';
	return (int)n;
}

/* One octet of text at *t, an escape or a plain character; -1 if bad. */
static int text_octet(const char **t)
{
	const char *s = *t;
	int v;

	if (*s != '\\') {
		*t = s + 1;
		return (uint8_t)*s;
	}
	if (s[1] >= '0' && s[1] <= '9') {
		if (s[2] < '0' || s[2] > '9' || s[3] < '0' || s[3] > '9')
			return -1;
		v = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
		*t = s + 4;
		return v > 255 ? -1 : v;
	}
	if (!s[1])
		return -1;
	*t = s + 2;
	return (uint8_t)s[1];
}

int xb_dns_wire_name_from_text(const char *t, uint8_t name[static XB_DNS_WIRE_NAME_MAX])
{
	size_t n = 1, lab = 0;	/* n: next octet; lab: the current length octet */

	if (!strcmp(t, ".")) {
		name[0] = 0;
		return 1;
	}
	for (;;) {
		int c;

		if (!*t || *t == '.') {
			if (n == lab + 1)
				return -1;	/* empty label: "", "a..b", ".a" */
			name[lab] = (uint8_t)(n - lab - 1);
			if (!*t || !*++t)
				break;		/* the end, or a final dot */
			lab = n++;
			continue;
		}
		c = text_octet(&t);
		if (c < 0 || n - lab - 1 == XB_DNS_WIRE_LABEL_MAX || n + 1 >= XB_DNS_WIRE_NAME_MAX)
			return -1;
		name[n++] = (uint8_t)c;
	}
	name[n++] = 0;
	return (int)n;
}

/* A name is read in runs: labels from where it starts, then from each
 * compression target. A pointer must land before the run it ends (so it
 * points backwards, never to itself), past the header, and the run it starts
 * must end before that run began: no byte is read twice, so no loop exists
 * and the work is bounded by the message. A correct encoder only points at
 * names it wrote whole earlier, which always satisfies this. */
int xb_dns_wire_name_decode(const uint8_t *msg, size_t len, size_t off, uint8_t *out,
		     size_t *next, struct xb_dns_wire_err *err)
{
	size_t pos = off, start = off, end = len, n = 0, after = 0;
	unsigned jumps = 0;

	for (;;) {
		uint8_t c;

		if (pos >= end)
			return fail(err, end == len ? "name runs past the end" :
				    "compressed name overlaps the name pointing to it", pos);
		c = msg[pos];
		if ((c & 0xc0) == 0xc0) {
			size_t to;

			if (pos + 1 >= end)
				return fail(err, "compression pointer cut off", pos);
			to = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			if (!after)
				after = pos + 2;
			if (to >= start)
				return fail(err, "compression pointer not backwards", pos);
			if (to < XB_DNS_WIRE_HDR_LEN)
				return fail(err, "compression pointer into the header", pos);
			if (++jumps > XB_DNS_WIRE_JUMPS_MAX)
				return fail(err, "too many compression pointers", pos);
			end = start;
			pos = start = to;
			continue;
		}
		if (c & 0xc0)
			return fail(err, "label longer than 63 (or an unknown label type)", pos);
		if (pos + 1 + c > end)
			return fail(err, end == len ? "label runs past the end" :
				    "compressed name overlaps the name pointing to it", pos);
		if (n + 1 + c + (c ? 1 : 0) > XB_DNS_WIRE_NAME_MAX)
			return fail(err, "name longer than 255 octets", pos);
		if (out) {
			out[n] = c;
			memcpy(out + n + 1, msg + pos + 1, c);
		}
		n += 1 + (size_t)c;
		pos += 1 + (size_t)c;
		if (!c)
			break;
	}
	*next = after ? after : pos;
	return (int)n;
}

/* ---- records ---- */

struct rrpos {
	size_t owner_off, fixed_off, rdata_off, end;
	uint16_t type, rclass, rdlen;
	uint32_t ttl;		/* as sent */
};

/* The record at off; owner (may be NULL) receives its owner name. */
static int rr_at(const uint8_t *msg, size_t len, size_t off, uint8_t *owner,
		 struct rrpos *r, struct xb_dns_wire_err *err)
{
	size_t p;
	int n = xb_dns_wire_name_decode(msg, len, off, owner, &p, err);

	if (n < 0)
		return -1;
	if (len - p < RR_FIXED)
		return fail(err, "record header runs past the end", p);
	r->owner_off = off;
	r->fixed_off = p;
	r->type = xb_get16(msg + p);
	r->rclass = xb_get16(msg + p + 2);
	r->ttl = xb_get32(msg + p + 4);
	r->rdlen = xb_get16(msg + p + 8);
	r->rdata_off = p + RR_FIXED;
	if (len - r->rdata_off < r->rdlen)
		return fail(err, "RDLENGTH runs past the end", p + 8);
	r->end = r->rdata_off + r->rdlen;
	return n;
}

/* A name in rdata must end inside it; returns the offset after it. */
static int rdata_name(const uint8_t *msg, const struct rrpos *r, size_t off, size_t *next,
		      struct xb_dns_wire_err *err)
{
	if (xb_dns_wire_name_decode(msg, r->end, off, NULL, next, err) < 0)
		return -1;
	return 0;
}

/* The rdata layouts the resolver reads must be exact (class IN only). */
static int rdata_check(const uint8_t *msg, const struct rrpos *r, struct xb_dns_wire_err *err)
{
	size_t p = r->rdata_off;

	if (r->rclass != XB_DNS_WIRE_C_IN)
		return 0;
	switch (r->type) {
	case XB_DNS_WIRE_T_A:
		return r->rdlen == 4 ? 0 : fail(err, "A rdata is not 4 octets", r->fixed_off + 8);
	case XB_DNS_WIRE_T_AAAA:
		return r->rdlen == 16 ? 0 : fail(err, "AAAA rdata is not 16 octets", r->fixed_off + 8);
	case XB_DNS_WIRE_T_CNAME:
		if (rdata_name(msg, r, p, &p, err))
			return -1;
		return p == r->end ? 0 : fail(err, "CNAME rdata longer than its name", p);
	case XB_DNS_WIRE_T_SOA:
		if (rdata_name(msg, r, p, &p, err) || rdata_name(msg, r, p, &p, err))
			return -1;
		return r->end - p == 20 ? 0 : fail(err, "SOA rdata has the wrong length", p);
	}
	return 0;
}

/* RFC 6891 6.1: root owner, payload size in the class, extended rcode,
 * version and DO in the TTL, options as code/length/value within rdata. */
static int opt_read(const uint8_t *msg, const struct rrpos *r, struct xb_dns_wire_edns *e,
		    struct xb_dns_wire_err *err)
{
	size_t p = r->rdata_off;

	if (r->fixed_off != r->owner_off + 1)
		return fail(err, "OPT owner is not the root", r->owner_off);
	while (p < r->end) {
		if (r->end - p < 4 || r->end - p - 4 < xb_get16(msg + p + 2))
			return fail(err, "EDNS option runs past its record", p);
		p += 4 + xb_get16(msg + p + 2);
	}
	e->present = true;
	e->udp_size = r->rclass < XB_DNS_WIRE_UDP_MIN ? XB_DNS_WIRE_UDP_MIN : r->rclass;
	e->ext_rcode = (uint8_t)(r->ttl >> 24);
	e->version = (uint8_t)(r->ttl >> 16);
	e->do_bit = r->ttl & 0x8000;
	return 0;
}

/* Walk count records of one section from *off, checking each. */
static int sec_walk(const uint8_t *msg, size_t len, size_t *off, unsigned count,
		    enum xb_dns_wire_section sec, struct xb_dns_wire_edns *e, struct xb_dns_wire_err *err)
{
	struct rrpos r;

	for (; count; count--) {
		if (rr_at(msg, len, *off, NULL, &r, err) < 0)
			return -1;
		if (r.type == XB_DNS_WIRE_T_OPT) {
			if (sec != XB_DNS_WIRE_AR)
				return fail(err, "OPT outside the additional section", *off);
			if (e->present)
				return fail(err, "more than one OPT", *off);
			if (opt_read(msg, &r, e, err))
				return -1;
		} else if (rdata_check(msg, &r, err)) {
			return -1;
		}
		*off = r.end;
	}
	return 0;
}

static void hdr_read(struct xb_dns_wire_hdr *h, const uint8_t *msg)
{
	h->id = xb_get16(msg);
	h->flags = xb_get16(msg + 2);
	h->qdcount = xb_get16(msg + 4);
	h->ancount = xb_get16(msg + 6);
	h->nscount = xb_get16(msg + 8);
	h->arcount = xb_get16(msg + 10);
}

static int question_read(const uint8_t *msg, size_t len, struct xb_dns_wire_question *q, size_t *off,
			 struct xb_dns_wire_err *err)
{
	int n = xb_dns_wire_name_decode(msg, len, XB_DNS_WIRE_HDR_LEN, q->name, off, err);

	if (n < 0)
		return -1;
	if (len - *off < 4)
		return fail(err, "question type and class cut off", *off);
	q->name_len = (uint16_t)n;
	q->qtype = xb_get16(msg + *off);
	q->qclass = xb_get16(msg + *off + 2);
	*off += 4;
	return 0;
}

/* All three record sections from off; *off ends after the last record. */
static int sections(const uint8_t *msg, size_t len, size_t *off, const struct xb_dns_wire_hdr *h,
		    struct xb_dns_wire_edns *e, size_t *sec_off, struct xb_dns_wire_err *err)
{
	const uint16_t count[4] = { 0, h->ancount, h->nscount, h->arcount };

	memset(e, 0, sizeof(*e));
	for (enum xb_dns_wire_section s = XB_DNS_WIRE_AN; s <= XB_DNS_WIRE_AR; s++) {
		if (sec_off)
			sec_off[s] = *off;
		if (sec_walk(msg, len, off, count[s], s, e, err)) {
			e->present = false;
			return -1;
		}
	}
	return 0;
}

/* ---- queries ---- */

static enum xb_dns_wire_qverdict qfail(struct xb_dns_wire_query *q, enum xb_dns_wire_qverdict v, const char *what,
				size_t off)
{
	if (what)
		fail(&q->err, what, off);
	q->edns.present = false;	/* answer errors without OPT: always understood */
	return v;
}

enum xb_dns_wire_qverdict xb_dns_wire_parse_query(struct xb_dns_wire_query *q, const uint8_t *msg, size_t len)
{
	size_t off = XB_DNS_WIRE_HDR_LEN;

	q->has_question = false;
	q->text[0] = '\0';
	q->edns.present = false;
	q->err.what = NULL;
	q->err.off = 0;
	if (len < XB_DNS_WIRE_HDR_LEN)
		return qfail(q, XB_DNS_WIRE_Q_DROP, "shorter than a DNS header", len);
	hdr_read(&q->hdr, msg);
	if (q->hdr.flags & XB_DNS_WIRE_F_QR)
		return qfail(q, XB_DNS_WIRE_Q_DROP, "QR set: a response, not a query", 2);
	if (q->hdr.qdcount == 1)
		q->has_question = !question_read(msg, len, &q->q, &off, &q->err);
	if (xb_dns_wire_opcode(q->hdr.flags) != XB_DNS_WIRE_OP_QUERY)
		return qfail(q, XB_DNS_WIRE_Q_NOTIMP, "opcode is not QUERY", 2);
	if (q->hdr.qdcount != 1)
		return qfail(q, XB_DNS_WIRE_Q_FORMERR, "question count is not 1", 4);
	if (!q->has_question)
		return qfail(q, XB_DNS_WIRE_Q_FORMERR, NULL, 0);
	if (sections(msg, len, &off, &q->hdr, &q->edns, NULL, &q->err))
		return qfail(q, XB_DNS_WIRE_Q_FORMERR, NULL, 0);
	if (off != len)
		return qfail(q, XB_DNS_WIRE_Q_FORMERR, "bytes after the last record", off);
	if (q->edns.present && q->edns.version) {
		fail(&q->err, "EDNS version is not 0", off);
		return XB_DNS_WIRE_Q_BADVERS;
	}
	xb_dns_wire_name_to_text(q->q.name, q->text, sizeof(q->text), true);
	return XB_DNS_WIRE_Q_OK;
}

size_t xb_dns_wire_udp_limit(const struct xb_dns_wire_query *q, uint16_t our_size)
{
	size_t n = q->edns.present ? q->edns.udp_size : XB_DNS_WIRE_UDP_MIN;

	if (n > our_size)
		n = our_size;
	return n < XB_DNS_WIRE_UDP_MIN ? XB_DNS_WIRE_UDP_MIN : n;
}

/* ---- upstream responses ---- */

static enum xb_dns_wire_rverdict rfail(struct xb_dns_wire_msg *m, enum xb_dns_wire_rverdict v, const char *what,
				size_t off)
{
	if (what)
		fail(&m->err, what, off);
	return v;
}

enum xb_dns_wire_rverdict xb_dns_wire_parse_response(struct xb_dns_wire_msg *m, const uint8_t *msg, size_t len,
				       uint16_t id, const struct xb_dns_wire_question *q)
{
	size_t off = XB_DNS_WIRE_HDR_LEN;

	memset(m, 0, offsetof(struct xb_dns_wire_msg, q));
	m->msg = msg;		/* m->len stays 0 until the message is valid */
	m->edns.present = false;
	m->err.what = NULL;
	if (len < XB_DNS_WIRE_HDR_LEN)
		return rfail(m, XB_DNS_WIRE_R_MISMATCH, "shorter than a DNS header", len);
	hdr_read(&m->hdr, msg);
	if (!(m->hdr.flags & XB_DNS_WIRE_F_QR) || xb_dns_wire_opcode(m->hdr.flags) != XB_DNS_WIRE_OP_QUERY)
		return rfail(m, XB_DNS_WIRE_R_MISMATCH, "not a response to a QUERY", 2);
	if (m->hdr.id != id)
		return rfail(m, XB_DNS_WIRE_R_MISMATCH, "id differs", 0);
	if (m->hdr.qdcount != 1)
		return rfail(m, XB_DNS_WIRE_R_MISMATCH, "question count is not 1", 4);
	if (question_read(msg, len, &m->q, &off, &m->err))
		return XB_DNS_WIRE_R_MISMATCH;
	if (m->q.qtype != q->qtype || m->q.qclass != q->qclass ||
	    !xb_dns_wire_name_equal(m->q.name, q->name))
		return rfail(m, XB_DNS_WIRE_R_MISMATCH, "question differs", XB_DNS_WIRE_HDR_LEN);
	m->sec_off[0] = XB_DNS_WIRE_HDR_LEN;
	if (sections(msg, len, &off, &m->hdr, &m->edns, m->sec_off, &m->err)) {
		if (!(m->hdr.flags & XB_DNS_WIRE_F_TC))
			return XB_DNS_WIRE_R_MALFORMED;
		off = m->sec_off[XB_DNS_WIRE_AN];
		m->hdr.ancount = m->hdr.nscount = m->hdr.arcount = 0;
		m->sec_off[XB_DNS_WIRE_NS] = m->sec_off[XB_DNS_WIRE_AR] = off;
	}
	m->len = off;
	m->rcode = xb_dns_wire_hdr_rcode(m->hdr.flags) | (unsigned)m->edns.ext_rcode << 4;
	return XB_DNS_WIRE_R_OK;
}

void xb_dns_wire_iter_init(struct xb_dns_wire_iter *it, const struct xb_dns_wire_msg *m, enum xb_dns_wire_section sec)
{
	const uint16_t count[4] = { 0, m->hdr.ancount, m->hdr.nscount, m->hdr.arcount };

	it->m = m;
	it->off = m->sec_off[sec];
	it->left = count[sec];
}

bool xb_dns_wire_iter_next(struct xb_dns_wire_iter *it, struct xb_dns_wire_rr *rr)
{
	struct xb_dns_wire_err err;
	struct rrpos r;
	int n;

	if (!it->left)
		return false;
	n = rr_at(it->m->msg, it->m->len, it->off, rr->owner, &r, &err);
	if (n < 0) {
		it->left = 0;	/* cannot happen on a validated message */
		return false;
	}
	it->left--;
	it->off = r.end;
	rr->owner_len = (uint16_t)n;
	rr->type = r.type;
	rr->rclass = r.rclass;
	rr->ttl = r.ttl > TTL_MAX ? 0 : r.ttl;
	rr->rdlen = r.rdlen;
	rr->rdata_off = r.rdata_off;
	rr->rdata = it->m->msg + r.rdata_off;
	return true;
}

int xb_dns_wire_rr_name(const struct xb_dns_wire_msg *m, const struct xb_dns_wire_rr *rr, size_t off, uint8_t *out)
{
	struct xb_dns_wire_err err;
	size_t next;

	if (off >= rr->rdlen)
		return -1;
	return xb_dns_wire_name_decode(m->msg, rr->rdata_off + rr->rdlen, rr->rdata_off + off, out,
				&next, &err);
}

static uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* The target of the CNAME owned by name in the answer section, if any. */
static bool cname_of(const struct xb_dns_wire_msg *m, const uint8_t *name, uint8_t *target,
		     uint32_t *ttl)
{
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;

	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_AN);
	while (xb_dns_wire_iter_next(&it, &rr)) {
		if (rr.type != XB_DNS_WIRE_T_CNAME || rr.rclass != m->q.qclass ||
		    !xb_dns_wire_name_equal(rr.owner, name))
			continue;
		if (xb_dns_wire_rr_name(m, &rr, 0, target) < 0)
			return false;
		*ttl = min32(*ttl, rr.ttl);
		return true;
	}
	return false;
}

static void addr_take(const struct xb_dns_wire_rr *rr, struct xb_dns_wire_chain *c, struct xb_dns_wire_addr *addr,
		      size_t cap)
{
	c->found++;
	c->ttl = min32(c->ttl, rr->ttl);
	if (c->naddr == cap)
		return;
	addr += c->naddr++;
	addr->family = rr->type == XB_DNS_WIRE_T_A ? 4 : 6;
	memset(addr->addr, 0, sizeof(addr->addr));
	memcpy(addr->addr, rr->rdata, rr->rdlen);
	addr->ttl = rr->ttl;
}

int xb_dns_wire_chain(const struct xb_dns_wire_msg *m, struct xb_dns_wire_chain *c, struct xb_dns_wire_addr *addr, size_t cap)
{
	uint8_t target[XB_DNS_WIRE_NAME_MAX];
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;

	memcpy(c->name, m->q.name, m->q.name_len);
	c->cnames = 0;
	c->naddr = c->found = 0;
	c->ttl = UINT32_MAX;
	while (cname_of(m, c->name, target, &c->ttl)) {
		if (c->cnames == XB_DNS_WIRE_CHAIN_MAX)
			return -1;	/* a loop, or longer than any sane chain */
		c->cnames++;
		memcpy(c->name, target, xb_dns_wire_name_len(target, XB_DNS_WIRE_NAME_MAX));
	}
	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_AN);
	while (xb_dns_wire_iter_next(&it, &rr)) {
		if ((rr.type != XB_DNS_WIRE_T_A && rr.type != XB_DNS_WIRE_T_AAAA) || rr.rclass != XB_DNS_WIRE_C_IN ||
		    !xb_dns_wire_name_equal(rr.owner, c->name))
			continue;
		addr_take(&rr, c, addr, cap);
	}
	return 0;
}

int xb_dns_wire_negative_ttl(const struct xb_dns_wire_msg *m, const uint8_t *name, uint32_t *ttl)
{
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;

	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_NS);
	while (xb_dns_wire_iter_next(&it, &rr)) {
		if (rr.type != XB_DNS_WIRE_T_SOA || rr.rclass != XB_DNS_WIRE_C_IN ||
		    !xb_dns_wire_name_within(name, rr.owner))
			continue;
		/* rdata_check made the SOA end in its 20 octets of numbers. */
		*ttl = min32(rr.ttl, xb_get32(rr.rdata + rr.rdlen - 4));
		return 0;
	}
	return -1;
}

/* ---- rewriting ---- */

void xb_dns_wire_set_id(uint8_t *msg, size_t len, uint16_t id)
{
	if (len >= 2)
		xb_put16(msg, id);
}

/* Offset of the first record (after the questions), or 0. */
static size_t skip_questions(const uint8_t *msg, size_t len, unsigned *nrr)
{
	struct xb_dns_wire_err err;
	size_t off = XB_DNS_WIRE_HDR_LEN;

	if (len < XB_DNS_WIRE_HDR_LEN)
		return 0;
	for (unsigned n = xb_get16(msg + 4); n; n--) {
		if (xb_dns_wire_name_decode(msg, len, off, NULL, &off, &err) < 0 || len - off < 4)
			return 0;
		off += 4;
	}
	*nrr = (unsigned)xb_get16(msg + 6) + xb_get16(msg + 8) + xb_get16(msg + 10);
	return off;
}

/* The offset after the name at off as it lies there, without following
 * pointers. Only for a message rr_at has walked. */
static size_t name_skip(const uint8_t *msg, size_t off)
{
	while (msg[off] && msg[off] < 0xc0)
		off += 1 + (size_t)msg[off];
	return off + (msg[off] ? 2 : 1);
}

/* Two passes: a hostile message may point a name into a TTL field, so the
 * names are checked before any TTL changes, and the rewriting pass skips
 * names without following their pointers. */
static int64_t rewrite_ttls(uint8_t *msg, size_t len, uint32_t elapsed, uint32_t floor,
			    uint32_t cap)
{
	uint32_t least = UINT32_MAX;
	struct xb_dns_wire_err err;
	struct rrpos r;
	unsigned nrr, n;
	size_t first = skip_questions(msg, len, &nrr), off;

	if (!first)
		return -1;
	for (n = nrr, off = first; n; n--, off = r.end)
		if (rr_at(msg, len, off, NULL, &r, &err) < 0)
			return -1;
	for (n = nrr, off = first; n; n--) {
		size_t p = name_skip(msg, off);
		uint32_t ttl = xb_get32(msg + p + 4);

		off = p + RR_FIXED + xb_get16(msg + p + 8);
		if (xb_get16(msg + p) == XB_DNS_WIRE_T_OPT)
			continue;	/* its TTL field holds flags */
		ttl = ttl > TTL_MAX ? 0 : ttl;
		ttl = ttl > elapsed ? ttl - elapsed : 0;
		if (ttl < floor)
			ttl = floor;
		if (ttl > cap)
			ttl = cap;
		xb_put32(msg + p + 4, ttl);
		least = min32(least, ttl);
	}
	return least;
}

int64_t xb_dns_wire_age_ttls(uint8_t *msg, size_t len, uint32_t elapsed, uint32_t floor)
{
	return rewrite_ttls(msg, len, elapsed, floor, UINT32_MAX);
}

int xb_dns_wire_cap_ttls(uint8_t *msg, size_t len, uint32_t max)
{
	return rewrite_ttls(msg, len, 0, 0, max) < 0 ? -1 : 0;
}

/* Truncation keeps a prefix of the records, so every compression pointer
 * in it (pointing backwards) still lands inside. The OPT and whatever
 * follows it are dropped, and a bare OPT with the same class and flags is
 * appended. */
size_t xb_dns_wire_truncate(uint8_t *msg, size_t len, size_t limit)
{
	unsigned nrr, count[3], kept[3] = { 0 }, i = 0;
	struct xb_dns_wire_err err;
	struct rrpos r, opt = { .type = 0 };
	size_t off = skip_questions(msg, len, &nrr), cut, optlen;

	if (!off)
		return 0;
	for (size_t o = off, n = nrr; n; n--, o = r.end) {
		if (rr_at(msg, len, o, NULL, &r, &err) < 0)
			return 0;
		if (r.type == XB_DNS_WIRE_T_OPT && !opt.type)
			opt = r;
	}
	if (len <= limit)
		return len;
	optlen = opt.type ? XB_DNS_WIRE_OPT_LEN : 0;
	if (off + optlen > limit)
		return 0;
	for (unsigned s = 0; s < 3; s++)
		count[s] = xb_get16(msg + 6 + 2 * s);
	for (cut = off; i < nrr; i++, cut = r.end) {
		unsigned s = i < count[0] ? 0 : i < count[0] + count[1] ? 1 : 2;

		rr_at(msg, len, cut, NULL, &r, &err);
		if (r.type == XB_DNS_WIRE_T_OPT || r.end + optlen > limit)
			break;
		kept[s]++;
	}
	if (kept[0] < count[0] || kept[1] < count[1])
		msg[2] |= XB_DNS_WIRE_F_TC >> 8;
	for (unsigned s = 0; s < 3; s++)
		xb_put16(msg + 6 + 2 * s, (uint16_t)(kept[s] + (s == 2 && optlen)));
	if (optlen) {
		msg[cut] = 0;
		xb_put16(msg + cut + 1, XB_DNS_WIRE_T_OPT);
		xb_put16(msg + cut + 3, opt.rclass);
		xb_put32(msg + cut + 5, opt.ttl);
		xb_put16(msg + cut + 9, 0);
	}
	return cut + optlen;
}

/* ---- TCP framing ---- */

bool xb_dns_wire_tcp_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **msg,
		   size_t *msg_len)
{
	size_t n;

	if (*off > len || len - *off < 2)
		return false;
	n = xb_get16(buf + *off);
	if (len - *off - 2 < n)
		return false;
	*msg = buf + *off + 2;
	*msg_len = n;
	*off += 2 + n;
	return true;
}

long xb_dns_wire_tcp_need(const uint8_t *buf, size_t got)
{
	size_t want;

	if (got < 2)
		return (long)(2 - got);
	want = 2 + (size_t)xb_get16(buf);
	if (want < 2 + XB_DNS_WIRE_HDR_LEN)
		return -1;
	return got < want ? (long)(want - got) : 0;
}
