/* The DNS wire codec: every malformed input of RFC 9267's list and ours,
 * round trips through the builder, the CNAME chain against off-chain data,
 * truncation, TTL aging, EDNS, and name decoding against a naive model. */
#include "gateway/dns/dns_wire.h"
#include "tests/lib/check.h"

/* ---- crafting packets by hand ---- */

struct pkt {
	uint8_t b[4096];
	size_t n;
};

static void raw(struct pkt *p, const void *d, size_t n)
{
	CHECK(p->n + n <= sizeof(p->b));
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void u16(struct pkt *p, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	raw(p, b, 2);
}

static void u32(struct pkt *p, uint32_t v)
{
	u16(p, (uint16_t)(v >> 16));
	u16(p, (uint16_t)v);
}

static void hdr(struct pkt *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
		uint16_t ns, uint16_t ar)
{
	p->n = 0;
	u16(p, id);
	u16(p, flags);
	u16(p, qd);
	u16(p, an);
	u16(p, ns);
	u16(p, ar);
}

/* A wire name from a C literal: sizeof counts the final NUL, the root. */
#define NAME(p, lit) raw((p), (lit), sizeof(lit))
#define WWW "\3www\7example\3com"
#define CDN "\3cdn\7example\3net"

static void rrhead(struct pkt *p, uint16_t type, uint16_t class, uint32_t ttl, uint16_t rdlen)
{
	u16(p, type);
	u16(p, class);
	u32(p, ttl);
	u16(p, rdlen);
}

static void ptr(struct pkt *p, uint16_t off)
{
	u16(p, (uint16_t)(0xc000 | off));
}

static void opt(struct pkt *p, uint16_t size, uint32_t ttl)
{
	uint8_t root = 0;

	raw(p, &root, 1);
	rrhead(p, XB_DNS_WIRE_T_OPT, size, ttl, 0);
}

/* A standard query for www.example.com A, with EDNS when size != 0. */
static void query(struct pkt *p, uint16_t size, bool do_bit)
{
	hdr(p, 0x1234, XB_DNS_WIRE_F_RD, 1, 0, 0, size ? 1 : 0);
	NAME(p, WWW);
	u16(p, XB_DNS_WIRE_T_A);
	u16(p, XB_DNS_WIRE_C_IN);
	if (size)
		opt(p, size, do_bit ? 0x8000 : 0);
}

static enum xb_dns_wire_qverdict parse(struct xb_dns_wire_query *q, const struct pkt *p)
{
	return xb_dns_wire_parse_query(q, p->b, p->n);
}

#define QV(p, want, why)                                                      \
	do {                                                                  \
		struct xb_dns_wire_query q_;                                         \
		enum xb_dns_wire_qverdict v_ = parse(&q_, (p));                      \
		if (v_ != (want))                                             \
			xb_test_fail(__FILE__, __LINE__, "verdict %d, want %d (%s)", \
				     v_, (want), q_.err.what ? q_.err.what : "-"); \
		if ((want) != XB_DNS_WIRE_Q_OK && !strstr(q_.err.what ? q_.err.what : "", (why))) \
			xb_test_fail(__FILE__, __LINE__, "error \"%s\", want \"%s\"", \
				     q_.err.what ? q_.err.what : "(none)", (why)); \
	} while (0)

/* ---- names ---- */

TEST(name_text_round_trip)
{
	uint8_t w[XB_DNS_WIRE_NAME_MAX];
	char t[XB_DNS_WIRE_TEXT_MAX];

	CHECK_INT(xb_dns_wire_name_from_text("WWW.Example.com.", w), ==, 17);
	CHECK_MEM(w, "\3WWW\7Example\3com", 17);
	CHECK_INT(xb_dns_wire_name_from_text("WWW.Example.com", w), ==, 17);
	CHECK_INT(xb_dns_wire_name_to_text(w, t, sizeof(t), true), ==, 15);
	CHECK_STR(t, "www.example.com");
	xb_dns_wire_name_to_text(w, t, sizeof(t), false);
	CHECK_STR(t, "WWW.Example.com");
	CHECK_INT(xb_dns_wire_name_from_text(".", w), ==, 1);
	CHECK_INT(w[0], ==, 0);
	xb_dns_wire_name_to_text(w, t, sizeof(t), true);
	CHECK_STR(t, ".");

	/* Escapes: a dot and a backslash inside a label, odd bytes as \DDD. */
	CHECK_INT(xb_dns_wire_name_from_text("a\\.b\\\\c.\\000\\255x\\ .", w), ==, 12);
	CHECK_MEM(w, "\5a.b\\c\4\0\377x \0", 12);
	CHECK_INT(xb_dns_wire_name_to_text(w, t, sizeof(t), true), >, 0);
	CHECK_STR(t, "a\\.b\\\\c.\\000\\255x\\032");
	CHECK_INT(xb_dns_wire_name_from_text(t, w), ==, 12);
	CHECK_MEM(w, "\5a.b\\c\4\0\377x \0", 12);
}

TEST(name_text_limits)
{
	uint8_t w[XB_DNS_WIRE_NAME_MAX];
	char t[XB_DNS_WIRE_TEXT_MAX], l63[64], big[400];

	memset(l63, 'a', 63);
	l63[63] = '\0';
	CHECK_INT(xb_dns_wire_name_from_text(l63, w), ==, 65);
	snprintf(big, sizeof(big), "%sb", l63);		/* label of 64 */
	CHECK_INT(xb_dns_wire_name_from_text(big, w), ==, -1);
	/* 63+63+63+61 octets in four labels: 255 on the wire, the maximum. */
	snprintf(big, sizeof(big), "%s.%s.%s.%.61s", l63, l63, l63, l63);
	CHECK_INT(xb_dns_wire_name_from_text(big, w), ==, 255);
	CHECK_INT(xb_dns_wire_name_len(w, 255), ==, 255);
	snprintf(big, sizeof(big), "%s.%s.%s.%.62s", l63, l63, l63, l63);
	CHECK_INT(xb_dns_wire_name_from_text(big, w), ==, -1);	/* 256 */
	CHECK_INT(xb_dns_wire_name_from_text("", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text("a..b", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text(".a", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text("a.b..", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text("a\\25", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text("a\\256", w), ==, -1);
	CHECK_INT(xb_dns_wire_name_from_text("a\\", w), ==, -1);

	/* The largest text: every octet as \DDD, in the fewest labels. */
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 3; i++)
		w[i * 64] = 63;
	w[192] = 61;
	CHECK_INT(xb_dns_wire_name_len(w, 255), ==, 255);
	CHECK_INT(xb_dns_wire_name_to_text(w, t, sizeof(t), true), ==, XB_DNS_WIRE_TEXT_MAX - 1);
	CHECK_INT(xb_dns_wire_name_to_text(w, t, XB_DNS_WIRE_TEXT_MAX - 1, true), ==, -1);
	CHECK_INT(xb_dns_wire_name_to_text((const uint8_t *)WWW, t, 16, true), ==, 15);
	CHECK_INT(xb_dns_wire_name_to_text((const uint8_t *)WWW, t, 15, true), ==, -1);
}

TEST(name_compare)
{
	const uint8_t *a = (const uint8_t *)"\3WwW\7exAMple\3COM", *b = (const uint8_t *)WWW;

	CHECK(xb_dns_wire_name_equal(a, b));
	CHECK(!xb_dns_wire_name_equal(a, (const uint8_t *)"\3www\7example\3co"));
	CHECK(!xb_dns_wire_name_equal(a, (const uint8_t *)"\3www\7example"));
	CHECK(xb_dns_wire_name_within(a, (const uint8_t *)"\7EXAMPLE\3com"));
	CHECK(xb_dns_wire_name_within(a, (const uint8_t *)""));
	CHECK(xb_dns_wire_name_within(a, b));
	CHECK(!xb_dns_wire_name_within(a, (const uint8_t *)"\6xample\3com"));
	CHECK(!xb_dns_wire_name_within((const uint8_t *)"\3com", a));
	/* Only ASCII folds: 0xC0 and 0xE0 differ. */
	CHECK(!xb_dns_wire_name_equal((const uint8_t *)"\1\300", (const uint8_t *)"\1\340"));
}

/* ---- name decoding: the malformed cases ---- */

static int decode(const struct pkt *p, size_t off, uint8_t *out, size_t *next, const char **why)
{
	struct xb_dns_wire_err err = { NULL, 0 };
	int n = xb_dns_wire_name_decode(p->b, p->n, off, out, next, &err);

	*why = err.what ? err.what : "";
	return n;
}

TEST(decode_pointers)
{
	struct pkt p;
	uint8_t out[XB_DNS_WIRE_NAME_MAX];
	size_t next;
	const char *why;

	hdr(&p, 0, 0, 0, 0, 0, 0);
	NAME(&p, WWW);			/* 12 */
	raw(&p, "\2ns", 3);		/* 29: ns + pointer to 16 (example.com) */
	ptr(&p, 16);
	CHECK_INT(decode(&p, 29, out, &next, &why), ==, 16);
	CHECK_MEM(out, "\2ns\7example\3com", 16);
	CHECK_INT(next, ==, 34);

	ptr(&p, 34);			/* 34: points to itself */
	CHECK_INT(decode(&p, 34, out, &next, &why), ==, -1);
	CHECK(strstr(why, "not backwards"));
	ptr(&p, 38);			/* 36 -> 38 -> 36: a loop of two */
	ptr(&p, 36);
	CHECK_INT(decode(&p, 38, out, &next, &why), ==, -1);
	CHECK(strstr(why, "not backwards"));
	CHECK_INT(decode(&p, 36, out, &next, &why), ==, -1);
	ptr(&p, 1000);			/* 40: past the end */
	CHECK_INT(decode(&p, 40, out, &next, &why), ==, -1);
	raw(&p, "\1a", 2);		/* 42: a label, then a pointer into its own run */
	ptr(&p, 42);
	CHECK_INT(decode(&p, 42, out, &next, &why), ==, -1);
	ptr(&p, 2);			/* 46: into the header */
	CHECK_INT(decode(&p, 46, out, &next, &why), ==, -1);
	CHECK(strstr(why, "header"));
	raw(&p, "\300", 1);		/* 48: half a pointer at the end */
	CHECK_INT(decode(&p, 48, out, &next, &why), ==, -1);
	CHECK(strstr(why, "cut off"));
}

TEST(decode_labels)
{
	struct pkt p;
	uint8_t out[XB_DNS_WIRE_NAME_MAX], lab[64];
	size_t next;
	const char *why;

	memset(lab, 'x', sizeof(lab));
	hdr(&p, 0, 0, 0, 0, 0, 0);
	lab[0] = 64;			/* a 64-octet label is type 0x40 */
	raw(&p, lab, sizeof(lab));
	raw(&p, "x", 2);
	CHECK_INT(decode(&p, 12, out, &next, &why), ==, -1);
	CHECK(strstr(why, "longer than 63"));
	p.b[12] = 0x80;			/* reserved label type */
	CHECK_INT(decode(&p, 12, out, &next, &why), ==, -1);
	p.b[12] = 20;			/* runs past the end */
	p.n = 20;
	CHECK_INT(decode(&p, 12, out, &next, &why), ==, -1);
	CHECK(strstr(why, "past the end"));
	p.n = 12;			/* no terminating root */
	raw(&p, "\1a", 2);
	CHECK_INT(decode(&p, 12, out, &next, &why), ==, -1);

	/* 256 octets, reached only through compression: four runs of 63 and
	 * one of 2 chained backwards = 4*64 + 3 + 1 > 255. */
	hdr(&p, 0, 0, 0, 0, 0, 0);
	lab[0] = 63;
	raw(&p, lab, 64);		/* 12 */
	raw(&p, "", 1);
	for (int i = 0; i < 3; i++) {
		size_t here = p.n;

		raw(&p, lab, 64);
		ptr(&p, (uint16_t)(here - (i ? 66 : 65)));
	}
	/* 77: 63+ptr->12 (128 octets) ; 143 -> 77 (192) ; 209 -> 143 (256+) */
	CHECK_INT(decode(&p, 77, out, &next, &why), ==, 129);
	CHECK_INT(decode(&p, 143, out, &next, &why), ==, 193);
	CHECK_INT(decode(&p, 209, out, &next, &why), ==, -1);
	CHECK(strstr(why, "longer than 255"));
}

/* A deliberately naive decoder, as RFC 9267 words the rules: a pointer
 * goes to an earlier offset (past the header), no byte of the message is
 * read twice, labels up to 63, names up to 255. */
static int naive_decode(const uint8_t *m, size_t len, size_t off, uint8_t *out)
{
	bool seen[512] = { false };
	size_t n = 0;
	int jumps = 0;

	for (;;) {
		size_t w;

		if (off >= len || (m[off] > 63 && m[off] < 0xc0))
			return -1;
		w = m[off] >= 0xc0 ? 2 : (size_t)m[off] + 1;
		if (off + w > len)
			return -1;
		for (size_t i = 0; i < w; i++)
			if (seen[off + i])
				return -1;
		for (size_t i = 0; i < w; i++)
			seen[off + i] = true;
		if (m[off] >= 0xc0) {
			size_t to = (size_t)(m[off] & 0x3f) * 256 + m[off + 1];

			if (to >= off || to < 12 || ++jumps > XB_DNS_WIRE_JUMPS_MAX)
				return -1;
			off = to;
			continue;
		}
		if (n + w + (w > 1 ? 1 : 0) > 255)
			return -1;
		memcpy(out + n, m + off, w);
		n += w;
		if (w == 1)
			return (int)n;
		off += w;
	}
}

TEST(decode_against_naive)
{
	uint8_t m[300], a[XB_DNS_WIRE_NAME_MAX], b[XB_DNS_WIRE_NAME_MAX];
	unsigned seed = 12345, ok = 0;
	struct xb_dns_wire_err err;
	size_t next;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = 13 + (size_t)(rand_r(&seed) % 280);

		/* Mostly short labels, some pointers, some zeros. */
		for (size_t i = 0; i < len; i++) {
			unsigned r = (unsigned)rand_r(&seed) % 100;

			m[i] = r < 30 ? (uint8_t)(r % 4) : r < 45 ? (uint8_t)(0xc0 | (r & 1)) :
			       r < 50 ? 0 : r < 52 ? 64 : (uint8_t)rand_r(&seed);
		}
		for (int k = 0; k < 4; k++) {
			size_t off = 12 + (size_t)rand_r(&seed) % (len - 12);
			int x = xb_dns_wire_name_decode(m, len, off, a, &next, &err);
			int y = naive_decode(m, len, off, b);

			if (x != y)
				xb_test_fail(__FILE__, __LINE__, "iter %d off %zu: %d vs naive %d",
					     iter, off, x, y);
			if (x > 0) {
				CHECK_MEM(a, b, (size_t)x);
				CHECK_INT(xb_dns_wire_name_len(a, XB_DNS_WIRE_NAME_MAX), ==, x);
				ok++;
			}
		}
	}
	printf("# %u of 80000 random names decoded, all as the naive model did\n", ok);
	CHECK(ok > 1000);
}

/* ---- client queries ---- */

TEST(query_good)
{
	struct xb_dns_wire_query q;
	struct pkt p;

	query(&p, 1232, true);
	p.b[12 + 1] = 'W';		/* case as sent, text lower-cased */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(q.hdr.id, ==, 0x1234);
	CHECK(q.hdr.flags & XB_DNS_WIRE_F_RD);
	CHECK_STR(q.text, "www.example.com");
	CHECK_MEM(q.q.name, "\3Www\7example\3com", 17);
	CHECK_INT(q.q.name_len, ==, 17);
	CHECK_INT(q.q.qtype, ==, XB_DNS_WIRE_T_A);
	CHECK_INT(q.q.qclass, ==, XB_DNS_WIRE_C_IN);
	CHECK(q.edns.present);
	CHECK(q.edns.do_bit);
	CHECK_INT(q.edns.udp_size, ==, 1232);
	CHECK_INT(q.edns.version, ==, 0);
	CHECK_INT(xb_dns_wire_udp_limit(&q, 1232), ==, 1232);
	CHECK_INT(xb_dns_wire_udp_limit(&q, 4096), ==, 1232);

	query(&p, 0, false);
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK(!q.edns.present);
	CHECK_INT(xb_dns_wire_udp_limit(&q, 1232), ==, 512);
	query(&p, 100, false);		/* below 512 reads as 512 */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(q.edns.udp_size, ==, 512);
	CHECK_INT(xb_dns_wire_udp_limit(&q, 1232), ==, 512);
}

TEST(query_header_cases)
{
	struct pkt p;

	p.n = 0;
	QV(&p, XB_DNS_WIRE_Q_DROP, "shorter than a DNS header");
	query(&p, 0, false);
	p.n = 11;
	QV(&p, XB_DNS_WIRE_Q_DROP, "shorter than a DNS header");
	query(&p, 0, false);
	p.b[2] |= 0x80;				/* QR */
	QV(&p, XB_DNS_WIRE_Q_DROP, "QR set");
	query(&p, 0, false);
	p.b[2] |= 2 << 3;			/* opcode STATUS */
	QV(&p, XB_DNS_WIRE_Q_NOTIMP, "opcode");
	query(&p, 0, false);
	p.b[5] = 0;				/* qdcount 0 */
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "question count");
	query(&p, 0, false);
	p.b[5] = 2;				/* qdcount 2, one present */
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "question count");
	NAME(&p, WWW);				/* and with both present */
	u16(&p, 1);
	u16(&p, 1);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "question count");
}

TEST(query_question_cases)
{
	struct pkt p;
	uint8_t lab[64];

	hdr(&p, 1, 0, 1, 0, 0, 0);	/* a pointer in the question: only the header is before it */
	raw(&p, "\1a", 2);
	ptr(&p, 12);
	u32(&p, 0x00010001);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "not backwards");
	hdr(&p, 1, 0, 1, 0, 0, 0);
	ptr(&p, 30);			/* forwards */
	u32(&p, 0x00010001);
	raw(&p, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 14);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "not backwards");
	hdr(&p, 1, 0, 1, 0, 0, 0);
	ptr(&p, 4);			/* into the header */
	u32(&p, 0x00010001);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "into the header");

	memset(lab, 'a', sizeof(lab));
	lab[0] = 64;
	hdr(&p, 1, 0, 1, 0, 0, 0);
	raw(&p, lab, 64);
	raw(&p, "", 1);
	u32(&p, 0x00010001);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "longer than 63");

	lab[0] = 63;			/* 4 x 64 + root = 257 */
	hdr(&p, 1, 0, 1, 0, 0, 0);
	for (int i = 0; i < 4; i++)
		raw(&p, lab, 64);
	raw(&p, "", 1);
	u32(&p, 0x00010001);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "longer than 255");

	query(&p, 0, false);		/* type and class cut off */
	p.n -= 2;
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "cut off");
	p.n = 12 + 10;			/* name cut off */
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "past the end");
}

TEST(query_record_cases)
{
	struct pkt p;

	query(&p, 1232, false);
	raw(&p, "junk", 4);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "bytes after the last record");

	query(&p, 1232, false);		/* two OPT */
	p.b[11] = 2;
	opt(&p, 1232, 0);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "more than one OPT");

	query(&p, 0, false);		/* OPT in the answer section */
	p.b[7] = 1;
	opt(&p, 1232, 0);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "OPT outside");
	query(&p, 0, false);		/* ... in the authority section */
	p.b[9] = 1;
	opt(&p, 1232, 0);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "OPT outside");

	query(&p, 0, false);		/* OPT not owned by the root */
	p.b[11] = 1;
	NAME(&p, "\1x");
	rrhead(&p, XB_DNS_WIRE_T_OPT, 1232, 0, 0);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "not the root");

	query(&p, 0, false);		/* an option longer than the record */
	p.b[11] = 1;
	raw(&p, "", 1);
	rrhead(&p, XB_DNS_WIRE_T_OPT, 1232, 0, 6);
	u16(&p, 10);			/* COOKIE */
	u16(&p, 8);
	u16(&p, 0);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "EDNS option");

	query(&p, 0, false);		/* RDLENGTH past the end */
	p.b[11] = 1;
	raw(&p, "", 1);
	rrhead(&p, XB_DNS_WIRE_T_OPT, 1232, 0, 40);
	raw(&p, "\0\0\0\0", 4);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "RDLENGTH");

	query(&p, 0, false);		/* ancount 100, one present */
	p.b[7] = 100;
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 4);
	raw(&p, "\300\0\2\1", 4);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "past the end");
	p.b[7] = 1;			/* counts right: answer records are ignored */
	QV(&p, XB_DNS_WIRE_Q_OK, "");

	query(&p, 0, false);		/* arcount 1, record header cut */
	p.b[11] = 1;
	raw(&p, "\0\0\51", 3);
	QV(&p, XB_DNS_WIRE_Q_FORMERR, "record header");

	query(&p, 1232, false);		/* version 1: BADVERS, not FORMERR */
	p.b[p.n - 5] = 1;
	QV(&p, XB_DNS_WIRE_Q_BADVERS, "version");
}

/* ---- answers ---- */

static const uint8_t A1[4] = { 192, 0, 2, 1 }, A2[4] = { 198, 51, 100, 9 };
static const uint8_t A6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

static size_t answer(uint8_t *buf, size_t size, const struct xb_dns_wire_query *q)
{
	struct xb_dns_wire_builder b;

	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, size, q, XB_DNS_WIRE_NOERROR, 0, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_cname(&b, NULL, 300, (const uint8_t *)CDN), ==, 0);
	CHECK_INT(xb_dns_wire_answer_a(&b, (const uint8_t *)CDN, 60, A1), ==, 0);
	CHECK_INT(xb_dns_wire_answer_aaaa(&b, (const uint8_t *)CDN, 120, A6), ==, 0);
	return xb_dns_wire_answer_finish(&b);
}

TEST(answer_round_trip)
{
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	struct xb_dns_wire_chain c;
	struct xb_dns_wire_addr addr[4];
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	uint8_t buf[1232], name[XB_DNS_WIRE_NAME_MAX];
	struct pkt p;
	size_t n;

	query(&p, 4096, true);
	p.b[2] |= XB_DNS_WIRE_F_CD >> 8;
	p.b[3] |= XB_DNS_WIRE_F_CD;
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	n = answer(buf, xb_dns_wire_udp_limit(&q, 1232), &q);
	/* hdr 12, question 21, CNAME 2+10+17, A 2+10+4, AAAA 2+10+16, OPT 11:
	 * the A and AAAA owners point at the CNAME's target. */
	CHECK_INT(n, ==, 12 + 21 + 29 + 16 + 28 + 11);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(m.hdr.flags & 0xfff0, ==, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA | XB_DNS_WIRE_F_CD);
	CHECK_INT(m.rcode, ==, XB_DNS_WIRE_NOERROR);
	CHECK_INT(m.hdr.ancount, ==, 3);
	CHECK_INT(m.hdr.arcount, ==, 1);
	CHECK(m.edns.present && m.edns.do_bit);
	CHECK_INT(m.edns.udp_size, ==, 1232);
	CHECK_INT(m.len, ==, n);

	xb_dns_wire_iter_init(&it, &m, XB_DNS_WIRE_AN);
	CHECK(xb_dns_wire_iter_next(&it, &rr));
	CHECK_INT(rr.type, ==, XB_DNS_WIRE_T_CNAME);
	CHECK_INT(rr.ttl, ==, 300);
	CHECK_MEM(rr.owner, WWW, 17);
	CHECK_INT(xb_dns_wire_rr_name(&m, &rr, 0, name), ==, 17);
	CHECK_MEM(name, CDN, 17);
	CHECK(xb_dns_wire_iter_next(&it, &rr));
	CHECK_MEM(rr.owner, CDN, 17);
	CHECK_INT(rr.rdlen, ==, 4);
	CHECK_MEM(rr.rdata, A1, 4);
	CHECK(xb_dns_wire_iter_next(&it, &rr));
	CHECK(!xb_dns_wire_iter_next(&it, &rr));

	CHECK_INT(xb_dns_wire_chain(&m, &c, addr, 4), ==, 0);
	CHECK_INT(c.cnames, ==, 1);
	CHECK_MEM(c.name, CDN, 17);
	CHECK_INT(c.naddr, ==, 2);
	CHECK_INT(addr[0].family, ==, 4);
	CHECK_MEM(addr[0].addr, A1, 4);
	CHECK_INT(addr[1].family, ==, 6);
	CHECK_MEM(addr[1].addr, A6, 16);
	CHECK_INT(c.ttl, ==, 60);
	CHECK_INT(xb_dns_wire_chain(&m, &c, addr, 1), ==, 0);	/* a short array */
	CHECK_INT(c.naddr, ==, 1);
	CHECK_INT(c.found, ==, 2);
}

TEST(answer_negative)
{
	struct xb_dns_wire_soa soa = {
		(const uint8_t *)"\7example\3com", (const uint8_t *)"\2ns\7example\3com",
		(const uint8_t *)"\4root\7example\3com", 3600, 1, 7200, 900, 86400, 300,
	};
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	struct xb_dns_wire_chain c;
	uint8_t buf[512];
	struct pkt p;
	uint32_t ttl;
	size_t n;

	query(&p, 0, false);
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_NXDOMAIN, XB_DNS_WIRE_F_AA, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_soa(&b, &soa), ==, 0);
	CHECK_INT(xb_dns_wire_answer_a(&b, NULL, 1, A1), ==, -1);	/* sections go forward only */
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(m.rcode, ==, XB_DNS_WIRE_NXDOMAIN);
	CHECK(m.hdr.flags & XB_DNS_WIRE_F_AA);
	CHECK(!m.edns.present);
	CHECK_INT(m.hdr.ancount, ==, 0);
	CHECK_INT(m.hdr.nscount, ==, 1);
	CHECK_INT(xb_dns_wire_negative_ttl(&m, q.q.name, &ttl), ==, 0);
	CHECK_INT(ttl, ==, 300);			/* min(3600, MINIMUM 300) */
	CHECK_INT(xb_dns_wire_negative_ttl(&m, (const uint8_t *)"\3www\5other\3com", &ttl), ==, -1);

	soa.ttl = 30;				/* NODATA, TTL below MINIMUM */
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_NOERROR, 0, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_soa(&b, &soa), ==, 0);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(xb_dns_wire_chain(&m, &c, NULL, 0), ==, 0);
	CHECK_INT(c.found, ==, 0);
	CHECK_INT(xb_dns_wire_negative_ttl(&m, c.name, &ttl), ==, 0);
	CHECK_INT(ttl, ==, 30);
}

TEST(answer_errors)
{
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	uint8_t buf[512];
	struct pkt p;
	size_t n;

	query(&p, 0, false);			/* qdcount 0: FORMERR without a question */
	p.b[5] = 0;
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_FORMERR);
	CHECK(!q.has_question);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_FORMERR, 0, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_a(&b, NULL, 1, A1), ==, -1);	/* no question name */
	CHECK_INT(xb_dns_wire_answer_finish(&b), ==, 12);
	CHECK_MEM(buf, "\x12\x34\x81\x81\0\0\0\0\0\0\0\0", 12);

	query(&p, 1232, false);			/* NOTIMP echoes opcode and question */
	p.b[2] |= 4 << 3;			/* NOTIFY */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_NOTIMP);
	CHECK(q.has_question);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_NOTIMP, 0, 1232), ==, 0);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(n, ==, 12 + 21);		/* no OPT: the query was not parsed */
	CHECK_INT(xb_dns_wire_opcode(buf[2] << 8), ==, 4);
	CHECK_INT(buf[3] & 0xf, ==, XB_DNS_WIRE_NOTIMP);

	query(&p, 1232, true);			/* BADVERS: extended rcode in the OPT */
	p.b[p.n - 5] = 1;
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_BADVERS);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_BADVERS, 0, 1232), ==, 0);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(m.rcode, ==, XB_DNS_WIRE_BADVERS);
	CHECK_INT(m.edns.version, ==, 0);

	query(&p, 0, false);			/* extended rcode without EDNS */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_BADVERS, 0, 1232), ==, -1);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, 20, &q, XB_DNS_WIRE_REFUSED, 0, 1232), ==, -1);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, sizeof(buf), &q, XB_DNS_WIRE_REFUSED, 0, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_add(&b, XB_DNS_WIRE_AN, (const uint8_t *)"\300", 1, 1, A1, 4), ==, -1);
	CHECK_INT(xb_dns_wire_answer_add(&b, XB_DNS_WIRE_AR, NULL, XB_DNS_WIRE_T_OPT, 0, NULL, 0), ==, -1);
	CHECK_INT(xb_dns_wire_answer_finish(&b), ==, 33);
	CHECK_INT(buf[3] & 0xf, ==, XB_DNS_WIRE_REFUSED);
}

/* Fill an answer with A records until it is full; returns how many went in. */
static int fill(struct xb_dns_wire_builder *b, enum xb_dns_wire_section sec, int max)
{
	uint8_t a[4] = { 203, 0, 113, 0 };
	int i, r = 0;

	for (i = 0; i < max; i++) {
		a[3] = (uint8_t)i;
		r = xb_dns_wire_answer_add(b, sec, NULL, XB_DNS_WIRE_T_A, 60, a, 4);
		if (r)
			break;
	}
	CHECK_INT(r, ==, 1);
	CHECK_INT(xb_dns_wire_answer_add(b, sec, NULL, XB_DNS_WIRE_T_A, 60, a, 4), ==, 1);	/* stays full */
	return i;
}

TEST(answer_truncation)
{
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	uint8_t buf[4096];
	struct pkt p;
	size_t n;
	int k;

	query(&p, 0, false);			/* no EDNS: 512 */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	memset(buf, 0xee, sizeof(buf));
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, xb_dns_wire_udp_limit(&q, 1232), &q, 0, 0, 1232), ==, 0);
	k = fill(&b, XB_DNS_WIRE_AN, 100);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(k, ==, (512 - 33) / 16);	/* each record: pointer + 10 + 4 */
	CHECK_INT(n, ==, 33 + 16 * (size_t)k);
	CHECK_INT(buf[512], ==, 0xee);		/* nothing written past the limit */
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK(m.hdr.flags & XB_DNS_WIRE_F_TC);
	CHECK_INT(m.hdr.ancount, ==, k);

	query(&p, 1232, true);			/* EDNS: the client's size, with OPT kept */
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, xb_dns_wire_udp_limit(&q, 4096), &q, 0, 0, 4096), ==, 0);
	k = fill(&b, XB_DNS_WIRE_AN, 200);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(k, ==, (1232 - 33 - 11) / 16);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK(m.hdr.flags & XB_DNS_WIRE_F_TC);
	CHECK(m.edns.present && m.edns.do_bit);
	CHECK_INT(m.edns.udp_size, ==, 4096);

	/* Additional data that does not fit is left out without TC. */
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, 512, &q, 0, 0, 1232), ==, 0);
	CHECK_INT(xb_dns_wire_answer_a(&b, NULL, 60, A1), ==, 0);
	fill(&b, XB_DNS_WIRE_AR, 100);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK(!(m.hdr.flags & XB_DNS_WIRE_F_TC));
	CHECK(n <= 512);
}

/* ---- upstream ---- */

TEST(upstream_query_do_passthrough)
{
	struct xb_dns_wire_edns e = { .present = true, .udp_size = 1232 };
	struct xb_dns_wire_query client, up;
	uint8_t buf[512];
	struct pkt p;
	int n;

	query(&p, 4096, true);
	CHECK_INT(parse(&client, &p), ==, XB_DNS_WIRE_Q_OK);
	e.do_bit = client.edns.do_bit;
	n = xb_dns_wire_build_query(buf, sizeof(buf), 0xbeef, XB_DNS_WIRE_F_CD | XB_DNS_WIRE_F_QR, &client.q, &e);
	CHECK_INT(n, ==, 12 + 21 + 11);
	CHECK_INT(xb_dns_wire_parse_query(&up, buf, (size_t)n), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(up.hdr.id, ==, 0xbeef);
	CHECK_INT(up.hdr.flags, ==, XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_CD);	/* QR is not ours to set */
	CHECK(up.edns.present && up.edns.do_bit);
	CHECK_INT(up.edns.udp_size, ==, 1232);
	CHECK_STR(up.text, "www.example.com");

	n = xb_dns_wire_build_query(buf, sizeof(buf), 7, 0, &client.q, NULL);
	CHECK_INT(n, ==, 33);
	CHECK_INT(xb_dns_wire_parse_query(&up, buf, (size_t)n), ==, XB_DNS_WIRE_Q_OK);
	CHECK(!up.edns.present);
	CHECK_INT(xb_dns_wire_build_query(buf, 32, 7, 0, &client.q, NULL), ==, -1);
	client.q.name_len = 5;			/* inconsistent with the name */
	CHECK_INT(xb_dns_wire_build_query(buf, sizeof(buf), 7, 0, &client.q, NULL), ==, -1);
}

/* A response to query() from an upstream, crafted by hand. */
static void response(struct pkt *p, uint16_t an)
{
	hdr(p, 0x1234, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA, 1, an, 0, 0);
	NAME(p, WWW);
	u16(p, XB_DNS_WIRE_T_A);
	u16(p, XB_DNS_WIRE_C_IN);
}

static struct xb_dns_wire_question www_a(void)
{
	struct xb_dns_wire_question q = { .qtype = XB_DNS_WIRE_T_A, .qclass = XB_DNS_WIRE_C_IN };

	q.name_len = (uint16_t)xb_dns_wire_name_from_text("www.example.com", q.name);
	return q;
}

#define RV(p, want)                                                           \
	do {                                                                  \
		struct xb_dns_wire_question q_ = www_a();                            \
		struct xb_dns_wire_msg m_;                                           \
		enum xb_dns_wire_rverdict v_ = xb_dns_wire_parse_response(&m_, (p)->b, (p)->n, 0x1234, &q_); \
		if (v_ != (want))                                             \
			xb_test_fail(__FILE__, __LINE__, "verdict %d, want %d (%s)", \
				     v_, (want), m_.err.what ? m_.err.what : "-"); \
	} while (0)

TEST(response_matching)
{
	struct xb_dns_wire_question q = www_a();
	struct xb_dns_wire_msg m;
	struct pkt p;

	response(&p, 0);
	RV(&p, XB_DNS_WIRE_R_OK);
	CHECK_INT(xb_dns_wire_parse_response(&m, p.b, p.n, 0x1235, &q), ==, XB_DNS_WIRE_R_MISMATCH);
	CHECK(strstr(m.err.what, "id"));
	p.b[13] = 'W';				/* 0x20: case does not matter */
	RV(&p, XB_DNS_WIRE_R_OK);
	p.b[14] = 'x';				/* another name */
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	response(&p, 0);
	p.b[30] = XB_DNS_WIRE_T_AAAA;			/* another type */
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	response(&p, 0);
	p.b[32] = 3;				/* another class */
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	response(&p, 0);
	p.b[2] &= 0x7f;				/* not a response */
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	response(&p, 0);
	p.b[5] = 0;				/* no question: cannot match */
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	p.n = 11;
	RV(&p, XB_DNS_WIRE_R_MISMATCH);
	q.name_len = 0;
}

TEST(response_malformed)
{
	struct xb_dns_wire_question q = www_a();
	struct xb_dns_wire_msg m;
	struct pkt p;

	response(&p, 100);			/* ancount 100, one present */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 4);
	raw(&p, A1, 4);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	p.b[2] |= XB_DNS_WIRE_F_TC >> 8;		/* with TC: records dropped, retry over TCP */
	CHECK_INT(xb_dns_wire_parse_response(&m, p.b, p.n, 0x1234, &q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(m.hdr.ancount, ==, 0);
	CHECK_INT(m.len, ==, 33);

	response(&p, 1);			/* A with 5 octets */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 5);
	raw(&p, "\1\2\3\4\5", 5);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 1);			/* RDLENGTH past the end */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 4);
	raw(&p, A1, 3);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 1);			/* owner pointer to itself */
	ptr(&p, 33);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 4);
	raw(&p, A1, 4);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 1);			/* CNAME target runs out of its rdata */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_CNAME, 1, 60, 3);
	raw(&p, "\3cdn", 4);
	raw(&p, "", 1);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 1);			/* SOA too short */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_SOA, 1, 60, 4 + 16);
	ptr(&p, 12);
	ptr(&p, 12);
	raw(&p, "0123456789abcdef", 16);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 1);			/* OPT in the answer section */
	opt(&p, 1232, 0);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);
	response(&p, 0);			/* two OPT */
	p.b[11] = 2;
	opt(&p, 1232, 0);
	opt(&p, 1232, 0);
	RV(&p, XB_DNS_WIRE_R_MALFORMED);

	response(&p, 1);			/* trailing bytes: ignored, not kept */
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_A, 1, 60, 4);
	raw(&p, A1, 4);
	raw(&p, "trailing", 8);
	CHECK_INT(xb_dns_wire_parse_response(&m, p.b, p.n, 0x1234, &q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(m.len, ==, p.n - 8);
}

static void a_rr(struct pkt *p, uint32_t ttl, const uint8_t a[4])
{
	rrhead(p, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, ttl, 4);
	raw(p, a, 4);
}

TEST(chain_ignores_poison)
{
	static const uint8_t evil[4] = { 203, 0, 113, 66 };
	struct xb_dns_wire_question q = www_a();
	struct xb_dns_wire_addr addr[8];
	struct xb_dns_wire_chain c;
	struct xb_dns_wire_msg m;
	struct pkt p;

	/* The A for the target comes first, CNAMEs in reverse order, an
	 * off-chain A, and an A at the alias itself: only 192.0.2.1 counts. */
	response(&p, 6);
	NAME(&p, CDN);				/* 33 */
	a_rr(&p, 50, A1);
	NAME(&p, "\3mid\7example\3org");	/* 64 */
	rrhead(&p, XB_DNS_WIRE_T_CNAME, 1, 40, 2);
	ptr(&p, 33);
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_CNAME, 1, 3000, 2);
	ptr(&p, 64);
	NAME(&p, "\4evil\7example\3org");
	a_rr(&p, 9999, evil);
	ptr(&p, 12);
	a_rr(&p, 9999, A2);
	ptr(&p, 64);
	a_rr(&p, 9999, evil);
	if (xb_dns_wire_parse_response(&m, p.b, p.n, 0x1234, &q) != XB_DNS_WIRE_R_OK)
		xb_test_fail(__FILE__, __LINE__, "%s at %zu", m.err.what, m.err.off);
	CHECK_INT(xb_dns_wire_chain(&m, &c, addr, 8), ==, 0);
	CHECK_INT(c.cnames, ==, 2);
	CHECK_MEM(c.name, CDN, 17);
	CHECK_INT(c.found, ==, 1);
	CHECK_INT(c.naddr, ==, 1);
	CHECK_MEM(addr[0].addr, A1, 4);
	CHECK_INT(c.ttl, ==, 40);

	/* A CNAME loop: www -> mid -> www. */
	response(&p, 2);
	ptr(&p, 12);
	rrhead(&p, XB_DNS_WIRE_T_CNAME, 1, 60, 17);
	NAME(&p, "\3mid\7example\3org");
	ptr(&p, 45);
	rrhead(&p, XB_DNS_WIRE_T_CNAME, 1, 60, 2);
	ptr(&p, 12);
	CHECK_INT(xb_dns_wire_parse_response(&m, p.b, p.n, 0x1234, &q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(xb_dns_wire_chain(&m, &c, addr, 8), ==, -1);
}

TEST(ttl_aging)
{
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	uint8_t buf[1232];
	struct pkt p;
	size_t n;

	query(&p, 1232, true);
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	n = answer(buf, sizeof(buf), &q);	/* TTLs 300, 60, 120 */
	CHECK_INT(xb_dns_wire_age_ttls(buf, n, 100, 0), ==, 0);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK(m.edns.do_bit);			/* the OPT's flags are not a TTL */
	xb_dns_wire_iter_init(&it, &m, XB_DNS_WIRE_AN);
	CHECK(xb_dns_wire_iter_next(&it, &rr) && rr.ttl == 200);
	CHECK(xb_dns_wire_iter_next(&it, &rr) && rr.ttl == 0);
	CHECK(xb_dns_wire_iter_next(&it, &rr) && rr.ttl == 20);
	CHECK_INT(xb_dns_wire_age_ttls(buf, n, 10, 5), ==, 5);	/* with a floor */
	CHECK_INT(xb_dns_wire_age_ttls(buf, n, 0, 0), ==, 5);
	xb_dns_wire_set_id(buf, n, 0x4321);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, n, 0x4321, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(xb_dns_wire_age_ttls(buf, n - 1, 0, 0), ==, -1);
	CHECK_INT(xb_dns_wire_age_ttls(buf, 11, 0, 0), ==, -1);

	response(&p, 1);			/* TTL with the top bit set reads as 0 */
	ptr(&p, 12);
	a_rr(&p, 0x80000000u, A1);
	CHECK_INT(xb_dns_wire_age_ttls(p.b, p.n, 0, 0), ==, 0);

	/* A hostile reply whose second owner points into the first record's
	 * TTL ("\1a\0"): valid, and aging must not trip over its own writes. */
	response(&p, 2);
	ptr(&p, 12);
	a_rr(&p, 0x01610000, A1);		/* TTL at 39 */
	ptr(&p, 39);
	a_rr(&p, 60, A2);
	CHECK_INT(xb_dns_wire_parse_response(&m, p.b, p.n, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(xb_dns_wire_age_ttls(p.b, p.n, 100, 0), ==, 0);
	CHECK_INT(p.b[p.n - 10 - 4 + 4 + 3], ==, 0);	/* the second TTL: 0 */
}

TEST(truncate_forwarded)
{
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	uint8_t buf[4096];
	struct pkt p;
	size_t n, t;

	query(&p, 4096, true);
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, 4096, &q, 0, 0, 4096), ==, 0);
	for (int i = 0; i < 100; i++)
		CHECK_INT(xb_dns_wire_answer_a(&b, NULL, 60, A1), ==, 0);
	CHECK_INT(xb_dns_wire_answer_add(&b, XB_DNS_WIRE_AR, (const uint8_t *)CDN, XB_DNS_WIRE_T_A, 60, A2, 4), ==, 0);
	n = xb_dns_wire_answer_finish(&b);
	CHECK_INT(n, ==, 33 + 1600 + 31 + 11);
	CHECK_INT(xb_dns_wire_truncate(buf, n, 4096), ==, n);

	t = xb_dns_wire_truncate(buf, n, 512);
	CHECK_INT(t, ==, 33 + 16 * 29 + 11);
	CHECK_INT(xb_dns_wire_parse_response(&m, buf, t, 0x1234, &q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK(m.hdr.flags & XB_DNS_WIRE_F_TC);
	CHECK_INT(m.hdr.ancount, ==, 29);
	CHECK_INT(m.hdr.arcount, ==, 1);
	CHECK(m.edns.present && m.edns.do_bit);
	CHECK_INT(m.edns.udp_size, ==, 4096);
	CHECK_INT(xb_dns_wire_truncate(buf, t, 40), ==, 0);	/* not even the question */
	CHECK_INT(xb_dns_wire_truncate(buf, t - 1, 100), ==, 0);	/* does not parse */
}

/* Whatever the bytes, nothing reads out of bounds (ASan) or hangs. */
TEST(mutations)
{
	struct xb_dns_wire_question qq = www_a();
	struct xb_dns_wire_addr addr[4];
	struct xb_dns_wire_chain c;
	struct xb_dns_wire_query q;
	struct xb_dns_wire_msg m;
	uint8_t good[1232], buf[1232], out[1232];
	unsigned seed = 7, accepted = 0;
	struct pkt p;
	size_t n;
	uint32_t ttl;

	query(&p, 1232, true);
	CHECK_INT(parse(&q, &p), ==, XB_DNS_WIRE_Q_OK);
	n = answer(good, sizeof(good), &q);
	for (int i = 0; i < 50000; i++) {
		size_t len = n - (size_t)(rand_r(&seed) % 4 == 0 ? rand_r(&seed) % (int)n : 0);
		struct xb_dns_wire_builder b;

		memcpy(buf, good, n);
		for (int k = rand_r(&seed) % 4 + 1; k; k--)
			buf[rand_r(&seed) % (int)n] = (uint8_t)rand_r(&seed);
		if (xb_dns_wire_parse_query(&q, buf, len) != XB_DNS_WIRE_Q_DROP &&
		    !xb_dns_wire_answer_begin(&b, out, 512, &q, q.has_question ? 0 : 1, 0, 1232))
			xb_dns_wire_answer_finish(&b);
		if (xb_dns_wire_parse_response(&m, buf, len, 0x1234, &qq) == XB_DNS_WIRE_R_OK) {
			accepted++;
			xb_dns_wire_chain(&m, &c, addr, 4);
			xb_dns_wire_negative_ttl(&m, c.name, &ttl);
		}
		xb_dns_wire_age_ttls(buf, len, 5, 0);
		xb_dns_wire_truncate(buf, len, 100);
	}
	printf("# %u of 50000 mutated responses accepted\n", accepted);
}

/* RFC 7766 framing: pipelined messages, a partial one, a zero-length one;
 * an upstream reply's length read before its body, a too short length. */
TEST(tcp_framing)
{
	static const uint8_t s[] = { 0, 3, 'a', 'b', 'c', 0, 0, 0, 12, 1, 2 };
	uint8_t r[2 + 12] = { 0, 12 };
	const uint8_t *msg;
	size_t off = 0, m;

	CHECK(xb_dns_wire_tcp_next(s, sizeof(s), &off, &msg, &m));
	CHECK(msg == s + 2 && m == 3 && off == 5);
	CHECK(xb_dns_wire_tcp_next(s, sizeof(s), &off, &msg, &m));
	CHECK(m == 0 && off == 7);
	CHECK(!xb_dns_wire_tcp_next(s, sizeof(s), &off, &msg, &m));	/* 12 announced, 2 there */
	CHECK_INT(off, ==, 7);
	CHECK(!xb_dns_wire_tcp_next(s, 1, &off, &msg, &m));		/* off past len */
	CHECK_INT(xb_dns_wire_tcp_need(r, 0), ==, 2);
	CHECK_INT(xb_dns_wire_tcp_need(r, 1), ==, 1);
	CHECK_INT(xb_dns_wire_tcp_need(r, 2), ==, 12);
	CHECK_INT(xb_dns_wire_tcp_need(r, 9), ==, 5);
	CHECK_INT(xb_dns_wire_tcp_need(r, 14), ==, 0);
	r[1] = 11;
	CHECK_INT(xb_dns_wire_tcp_need(r, 2), ==, -1);
	r[0] = r[1] = 0xff;
	CHECK_INT(xb_dns_wire_tcp_need(r, 2), ==, 65535);
}
