/* The DNS wire format (RFC 1035, EDNS0 from RFC 6891) for the gateway's
 * resolver: parse client queries, build answers, build upstream queries,
 * validate and walk upstream responses, rewrite stored responses.
 *
 * No allocation and no I/O: callers pass every buffer, every length is
 * checked against the message, and bad input returns an error that says what
 * was wrong and at which offset. Names inside the API are in uncompressed
 * wire form ("\3www\7example\3com\0", at most XB_DNS_WIRE_NAME_MAX octets) unless a
 * parameter says text. Decoding follows compression pointers only backwards,
 * each jump strictly before the previous one (so no loop can exist), at most
 * XB_DNS_WIRE_JUMPS_MAX of them, never into the header. Labels are 1..63 octets
 * (0x40 and 0x80 label types are refused), names at most 255 octets.
 *
 * Trailing bytes: a query with bytes after its last declared record is
 * FORMERR; in an upstream response they are ignored and xb_dns_wire_msg.len stops at
 * the last record, so they are never cached or forwarded.
 */
#ifndef XB_GATEWAY_DNS_WIRE_H
#define XB_GATEWAY_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_DNS_WIRE_HDR_LEN	12
#define XB_DNS_WIRE_NAME_MAX	255	/* wire octets, root label included */
#define XB_DNS_WIRE_LABEL_MAX	63
#define XB_DNS_WIRE_TEXT_MAX	1004	/* escaped dotted text + NUL: 4 labels of \DDD */
#define XB_DNS_WIRE_JUMPS_MAX	64	/* compression pointers followed per name */
#define XB_DNS_WIRE_CHAIN_MAX	16	/* CNAMEs followed from the question name */
#define XB_DNS_WIRE_UDP_MIN	512	/* without EDNS; also the floor of any EDNS size */
#define XB_DNS_WIRE_OPT_LEN	11	/* an OPT record without options */
#define XB_DNS_WIRE_EDNS_SIZE	1232	/* our payload size: fits an IPv6 minimum MTU unfragmented (DNS flag day 2020) */

/* Header flags (the 16-bit word after the id). */
#define XB_DNS_WIRE_F_QR	0x8000
#define XB_DNS_WIRE_F_AA	0x0400
#define XB_DNS_WIRE_F_TC	0x0200
#define XB_DNS_WIRE_F_RD	0x0100
#define XB_DNS_WIRE_F_RA	0x0080
#define XB_DNS_WIRE_F_AD	0x0020
#define XB_DNS_WIRE_F_CD	0x0010
#define xb_dns_wire_opcode(flags)	(((flags) >> 11) & 0xf)
#define xb_dns_wire_hdr_rcode(flags)	((flags) & 0xf)

enum { XB_DNS_WIRE_OP_QUERY = 0 };

enum {
	XB_DNS_WIRE_T_A = 1, XB_DNS_WIRE_T_NS = 2, XB_DNS_WIRE_T_CNAME = 5, XB_DNS_WIRE_T_SOA = 6,
	XB_DNS_WIRE_T_PTR = 12, XB_DNS_WIRE_T_MX = 15, XB_DNS_WIRE_T_TXT = 16, XB_DNS_WIRE_T_AAAA = 28,
	XB_DNS_WIRE_T_OPT = 41, XB_DNS_WIRE_T_HTTPS = 65, XB_DNS_WIRE_T_ANY = 255,
};
enum { XB_DNS_WIRE_C_IN = 1, XB_DNS_WIRE_C_ANY = 255 };

/* Response codes; above 15 they need EDNS (the high 8 bits go in OPT). */
enum {
	XB_DNS_WIRE_NOERROR = 0, XB_DNS_WIRE_FORMERR = 1, XB_DNS_WIRE_SERVFAIL = 2, XB_DNS_WIRE_NXDOMAIN = 3,
	XB_DNS_WIRE_NOTIMP = 4, XB_DNS_WIRE_REFUSED = 5, XB_DNS_WIRE_BADVERS = 16,
};

enum xb_dns_wire_section { XB_DNS_WIRE_AN = 1, XB_DNS_WIRE_NS = 2, XB_DNS_WIRE_AR = 3 };

struct xb_dns_wire_hdr {
	uint16_t id, flags;
	uint16_t qdcount, ancount, nscount, arcount;
};

struct xb_dns_wire_question {
	uint8_t name[XB_DNS_WIRE_NAME_MAX];	/* case as received */
	uint16_t name_len;
	uint16_t qtype, qclass;
};

/* An OPT record (RFC 6891). udp_size is what the sender can receive, raised
 * to 512 when it said less. */
struct xb_dns_wire_edns {
	bool present;
	bool do_bit;
	uint8_t version;
	uint8_t ext_rcode;		/* the high 8 bits of a 12-bit rcode */
	uint16_t udp_size;
};

/* Where parsing stopped: a static string and the offset it refers to. */
struct xb_dns_wire_err {
	const char *what;
	size_t off;
};

/* ---- names ---- */

/* Length of the uncompressed wire name at p (at most max octets read), or 0
 * when it is not a valid name. */
size_t xb_dns_wire_name_len(const uint8_t *p, size_t max);
/* Case-insensitive (ASCII) equality of two valid wire names. */
bool xb_dns_wire_name_equal(const uint8_t *a, const uint8_t *b);
/* Is name equal to or below parent (label-aligned, case-insensitive)? */
bool xb_dns_wire_name_within(const uint8_t *name, const uint8_t *parent);
void xb_dns_wire_name_lower(uint8_t *name);

/* Dotted text of a valid wire name, without the final dot ("." for the
 * root). '.' and '\' inside a label are written "\." and "\\", bytes outside
 * 0x21..0x7e as "\DDD" (decimal). lower: A-Z as a-z. Returns the text length
 * or -1 when cap is too small; a cap of XB_DNS_WIRE_TEXT_MAX always suffices. */
int xb_dns_wire_name_to_text(const uint8_t *name, char *text, size_t cap, bool lower);
/* The inverse: dotted text with or without the final dot, escapes as above.
 * Returns the wire length, or -1 on an empty label, a label over 63 octets, a
 * name over 255, or a bad escape. */
int xb_dns_wire_name_from_text(const char *text, uint8_t name[static XB_DNS_WIRE_NAME_MAX]);

/* Decode the possibly compressed name at off in msg[0..len) into out.
 * Returns its wire length, or -1 with *err set; *next is the offset after
 * the name's bytes at off. out may be NULL to validate only. */
int xb_dns_wire_name_decode(const uint8_t *msg, size_t len, size_t off, uint8_t *out,
		     size_t *next, struct xb_dns_wire_err *err);

/* ---- client queries ---- */

enum xb_dns_wire_qverdict {
	XB_DNS_WIRE_Q_OK,
	XB_DNS_WIRE_Q_DROP,		/* no answer: shorter than a header, or QR set */
	XB_DNS_WIRE_Q_FORMERR,		/* answer FORMERR */
	XB_DNS_WIRE_Q_NOTIMP,		/* opcode other than QUERY: answer NOTIMP */
	XB_DNS_WIRE_Q_BADVERS,		/* EDNS version > 0: answer BADVERS with OPT */
};

struct xb_dns_wire_query {
	struct xb_dns_wire_hdr hdr;
	bool has_question;	/* q is valid (it may be on errors, to echo it) */
	struct xb_dns_wire_question q;
	char text[XB_DNS_WIRE_TEXT_MAX];	/* q.name lower-cased, dotted */
	struct xb_dns_wire_edns edns;
	struct xb_dns_wire_err err;	/* why, when the verdict is not OK */
};

/* Parse a query from a client. The question must be the only one; answer
 * and authority records (if any) are checked and ignored; the additional
 * section may hold one OPT, owned by the root. */
enum xb_dns_wire_qverdict xb_dns_wire_parse_query(struct xb_dns_wire_query *q, const uint8_t *msg, size_t len);

/* The largest UDP answer for this query: 512 without EDNS, else the client's
 * size capped at ours (and never below 512). */
size_t xb_dns_wire_udp_limit(const struct xb_dns_wire_query *q, uint16_t our_size);

/* ---- building answers ---- */

struct xb_dns_wire_builder {
	uint8_t *buf;
	size_t size;		/* the buffer or the client's limit, the smaller */
	size_t len;
	size_t reserve;		/* kept free for the OPT record */
	uint16_t count[4];	/* qd, an, ns, ar */
	enum xb_dns_wire_section sec;
	bool tc, opt;
	uint16_t opt_size;	/* our payload size, in the OPT */
	uint32_t opt_ttl;	/* extended rcode, version 0, DO */
	uint16_t names[8];	/* offsets of names written whole, for compression */
	unsigned nnames;
};

/* Start an answer to q in buf (size bytes: the smaller of the buffer and
 * xb_dns_wire_udp_limit or 65535 over TCP): id, question, RD and CD echoed, QR and
 * RA set, plus extra flags (AA, AD). rcode may be extended (BADVERS) only
 * when the query had EDNS; an OPT with our_size and the client's DO bit is
 * appended when it had. Returns -1 if the question does not fit. */
int xb_dns_wire_answer_begin(struct xb_dns_wire_builder *b, uint8_t *buf, size_t size,
		      const struct xb_dns_wire_query *q, unsigned rcode, uint16_t extra,
		      uint16_t our_size);

/* Append a record to section sec (sections go forward only). owner NULL is
 * the question name. Returns 0 when added, 1 when it did not fit (in the
 * answer and authority sections this sets TC, and nothing is added after),
 * -1 on a bad argument. Records are never cut: the answer ends at a record
 * boundary. */
int xb_dns_wire_answer_add(struct xb_dns_wire_builder *b, enum xb_dns_wire_section sec, const uint8_t *owner,
		    uint16_t type, uint32_t ttl, const void *rdata, size_t rdlen);
int xb_dns_wire_answer_a(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[4]);
int xb_dns_wire_answer_aaaa(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[16]);
int xb_dns_wire_answer_cname(struct xb_dns_wire_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t *target);

/* An SOA for negative answers (RFC 2308): its TTL and minimum bound how
 * long the client caches the NXDOMAIN or NODATA. */
struct xb_dns_wire_soa {
	const uint8_t *zone, *mname, *rname;	/* wire names */
	uint32_t ttl, serial, refresh, retry, expire, minimum;
};
int xb_dns_wire_answer_soa(struct xb_dns_wire_builder *b, const struct xb_dns_wire_soa *soa);

/* Write counts, TC and the OPT; returns the message length. */
size_t xb_dns_wire_answer_finish(struct xb_dns_wire_builder *b);

/* ---- upstream ---- */

/* A query for q with the given id (the caller's random one), RD set plus
 * flags (e.g. XB_DNS_WIRE_F_CD), and an OPT when edns is non-NULL (its udp_size and
 * DO are sent). Returns the length, or -1 when cap is too small. */
int xb_dns_wire_build_query(uint8_t *buf, size_t cap, uint16_t id, uint16_t flags,
		     const struct xb_dns_wire_question *q, const struct xb_dns_wire_edns *edns);

enum xb_dns_wire_rverdict {
	XB_DNS_WIRE_R_OK,
	XB_DNS_WIRE_R_MISMATCH,	/* not an answer to our query: ignore, keep waiting */
	XB_DNS_WIRE_R_MALFORMED,	/* an answer, but broken: treat as a failed upstream */
};

/* A validated response: every record lies within len, every name decodes,
 * A is 4 octets, AAAA 16, CNAME and SOA rdata hold exactly their fields. */
struct xb_dns_wire_msg {
	const uint8_t *msg;
	size_t len;		/* up to the end of the last record */
	struct xb_dns_wire_hdr hdr;
	unsigned rcode;		/* 12 bits with EDNS */
	struct xb_dns_wire_question q;
	struct xb_dns_wire_edns edns;
	size_t sec_off[4];	/* first record of each section, by xb_dns_wire_section */
	struct xb_dns_wire_err err;
};

/* Check that msg answers the query (id, q): a response, opcode QUERY, the
 * same id and one question with the same name (ignoring case), type and
 * class. With TC set, records that do not parse are dropped (counts read as
 * zero): the caller retries over TCP anyway. */
enum xb_dns_wire_rverdict xb_dns_wire_parse_response(struct xb_dns_wire_msg *m, const uint8_t *msg, size_t len,
				       uint16_t id, const struct xb_dns_wire_question *q);

struct xb_dns_wire_rr {
	uint8_t owner[XB_DNS_WIRE_NAME_MAX];
	uint16_t owner_len;
	uint16_t type, rclass;
	uint32_t ttl;		/* over 2^31-1 reads as 0 (RFC 2181 8) */
	uint16_t rdlen;
	size_t rdata_off;	/* into the message */
	const uint8_t *rdata;
};

struct xb_dns_wire_iter {
	const struct xb_dns_wire_msg *m;
	size_t off;
	unsigned left;
};

void xb_dns_wire_iter_init(struct xb_dns_wire_iter *it, const struct xb_dns_wire_msg *m, enum xb_dns_wire_section sec);
bool xb_dns_wire_iter_next(struct xb_dns_wire_iter *it, struct xb_dns_wire_rr *rr);
/* The name in a CNAME's rdata (or another name at rdata offset off). */
int xb_dns_wire_rr_name(const struct xb_dns_wire_msg *m, const struct xb_dns_wire_rr *rr, size_t off, uint8_t *out);

/* Follow the CNAME chain from the question name through the answer section
 * and collect the A/AAAA records owned by the name the chain ends at. Records
 * owned by any other name are ignored: off-chain data is how caches get
 * poisoned, and a name with a CNAME holds no other data (RFC 1034 3.6.2). */
struct xb_dns_wire_addr {
	uint8_t family;		/* 4 or 6 */
	uint8_t addr[16];
	uint32_t ttl;
};
struct xb_dns_wire_chain {
	uint8_t name[XB_DNS_WIRE_NAME_MAX];	/* where the chain ends */
	unsigned cnames;	/* CNAMEs followed */
	size_t naddr;		/* addresses stored (at most cap) */
	size_t found;		/* addresses present (may exceed cap) */
	uint32_t ttl;		/* min over CNAMEs and addresses; UINT32_MAX if none */
};
/* Returns 0, or -1 when the chain loops or is longer than XB_DNS_WIRE_CHAIN_MAX. */
int xb_dns_wire_chain(const struct xb_dns_wire_msg *m, struct xb_dns_wire_chain *c, struct xb_dns_wire_addr *addr, size_t cap);

/* Negative caching TTL (RFC 2308 5): min(SOA TTL, SOA MINIMUM) of the first
 * SOA in the authority section owned by name or an ancestor of it. Returns 0,
 * or -1 when there is none. */
int xb_dns_wire_negative_ttl(const struct xb_dns_wire_msg *m, const uint8_t *name, uint32_t *ttl);

/* ---- rewriting stored messages ---- */

void xb_dns_wire_set_id(uint8_t *msg, size_t len, uint16_t id);
/* Subtract elapsed seconds from every TTL except OPT's (not below 0), then
 * raise each to at least floor. Returns the smallest TTL now in the message
 * (UINT32_MAX without records), or -1 when the message does not parse. */
int64_t xb_dns_wire_age_ttls(uint8_t *msg, size_t len, uint32_t elapsed, uint32_t floor);
/* Lower every TTL above max (except OPT's) to max. 0, or -1 when the
 * message does not parse (then nothing changed). */
int xb_dns_wire_cap_ttls(uint8_t *msg, size_t len, uint32_t max);
/* Cut a valid message to at most limit octets at a record boundary, keeping
 * an OPT (without its options) when it had one; TC is set when answer or
 * authority records were cut. Returns the new length (len when it fits), or
 * 0 when even the question does not fit or the message does not parse. */
size_t xb_dns_wire_truncate(uint8_t *msg, size_t len, size_t limit);

/* ---- TCP framing (RFC 1035 4.2.2, RFC 7766 8) ---- */

/* On a TCP stream every message follows its length: two octets, network
 * order. A reader keeps what it has read in buf[0..len); the stream's first
 * octets sit at buf[0]. */
#define XB_DNS_WIRE_TCP_FRAME_MAX	(2 + 65535)	/* the most one message takes */

/* The next whole message of a stream of pipelined messages (the service's
 * clients): at *off a length and at least that many octets follow, within
 * len. Then *msg and *msg_len give the message, *off moves past it and true
 * is returned; false (nothing moved) while the message is still partly
 * unread. A buffer of XB_DNS_WIRE_TCP_FRAME_MAX octets always holds a whole one. */
bool xb_dns_wire_tcp_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **msg,
		   size_t *msg_len);

/* Octets still to read for the first message of a stream with one message
 * (an upstream's reply): 2 - got before the length is in, then what the
 * length says is missing; 0 once it is all there. -1 when the length is
 * below a DNS header: no reply. Never more than XB_DNS_WIRE_TCP_FRAME_MAX - got. */
long xb_dns_wire_tcp_need(const uint8_t *buf, size_t got);

#endif
