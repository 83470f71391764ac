/* The DNS wire format (RFC 1035, EDNS0 from RFC 6891) for the gateway's
 * resolver: parse client queries, build answers, build upstream queries,
 * validate and walk upstream responses, rewrite stored responses.
 *
 * No allocation and no I/O: callers pass every buffer, every length is
 * checked against the message, and bad input returns an error that says what
 * was wrong and at which offset. Names inside the API are in uncompressed
 * wire form ("\3www\7example\3com\0", at most DNSW_NAME_MAX octets) unless a
 * parameter says text. Decoding follows compression pointers only backwards,
 * each jump strictly before the previous one (so no loop can exist), at most
 * DNSW_JUMPS_MAX of them, never into the header. Labels are 1..63 octets
 * (0x40 and 0x80 label types are refused), names at most 255 octets.
 *
 * Trailing bytes: a query with bytes after its last declared record is
 * FORMERR; in an upstream response they are ignored and dnsw_msg.len stops at
 * the last record, so they are never cached or forwarded.
 */
#ifndef XB_GATEWAY_DNS_WIRE_H
#define XB_GATEWAY_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNSW_HDR_LEN	12
#define DNSW_NAME_MAX	255	/* wire octets, root label included */
#define DNSW_LABEL_MAX	63
#define DNSW_TEXT_MAX	1004	/* escaped dotted text + NUL: 4 labels of \DDD */
#define DNSW_JUMPS_MAX	64	/* compression pointers followed per name */
#define DNSW_CHAIN_MAX	16	/* CNAMEs followed from the question name */
#define DNSW_UDP_MIN	512	/* without EDNS; also the floor of any EDNS size */
#define DNSW_OPT_LEN	11	/* an OPT record without options */
#define DNSW_EDNS_SIZE	1232	/* our payload size: fits an IPv6 minimum MTU unfragmented (DNS flag day 2020) */

/* Header flags (the 16-bit word after the id). */
#define DNSW_F_QR	0x8000
#define DNSW_F_AA	0x0400
#define DNSW_F_TC	0x0200
#define DNSW_F_RD	0x0100
#define DNSW_F_RA	0x0080
#define DNSW_F_AD	0x0020
#define DNSW_F_CD	0x0010
#define dnsw_opcode(flags)	(((flags) >> 11) & 0xf)
#define dnsw_hdr_rcode(flags)	((flags) & 0xf)

enum { DNSW_OP_QUERY = 0 };

enum {
	DNSW_T_A = 1, DNSW_T_NS = 2, DNSW_T_CNAME = 5, DNSW_T_SOA = 6,
	DNSW_T_PTR = 12, DNSW_T_MX = 15, DNSW_T_TXT = 16, DNSW_T_AAAA = 28,
	DNSW_T_OPT = 41, DNSW_T_HTTPS = 65, DNSW_T_ANY = 255,
};
enum { DNSW_C_IN = 1, DNSW_C_ANY = 255 };

/* Response codes; above 15 they need EDNS (the high 8 bits go in OPT). */
enum {
	DNSW_NOERROR = 0, DNSW_FORMERR = 1, DNSW_SERVFAIL = 2, DNSW_NXDOMAIN = 3,
	DNSW_NOTIMP = 4, DNSW_REFUSED = 5, DNSW_BADVERS = 16,
};

enum dnsw_section { DNSW_AN = 1, DNSW_NS = 2, DNSW_AR = 3 };

struct dnsw_hdr {
	uint16_t id, flags;
	uint16_t qdcount, ancount, nscount, arcount;
};

struct dnsw_question {
	uint8_t name[DNSW_NAME_MAX];	/* case as received */
	uint16_t name_len;
	uint16_t qtype, qclass;
};

/* An OPT record (RFC 6891). udp_size is what the sender can receive, raised
 * to 512 when it said less. */
struct dnsw_edns {
	bool present;
	bool do_bit;
	uint8_t version;
	uint8_t ext_rcode;		/* the high 8 bits of a 12-bit rcode */
	uint16_t udp_size;
};

/* Where parsing stopped: a static string and the offset it refers to. */
struct dnsw_err {
	const char *what;
	size_t off;
};

/* ---- names ---- */

/* Length of the uncompressed wire name at p (at most max octets read), or 0
 * when it is not a valid name. */
size_t dnsw_name_len(const uint8_t *p, size_t max);
/* Case-insensitive (ASCII) equality of two valid wire names. */
bool dnsw_name_equal(const uint8_t *a, const uint8_t *b);
/* Is name equal to or below parent (label-aligned, case-insensitive)? */
bool dnsw_name_within(const uint8_t *name, const uint8_t *parent);
void dnsw_name_lower(uint8_t *name);

/* Dotted text of a valid wire name, without the final dot ("." for the
 * root). '.' and '\' inside a label are written "\." and "\\", bytes outside
 * 0x21..0x7e as "\DDD" (decimal). lower: A-Z as a-z. Returns the text length
 * or -1 when cap is too small; a cap of DNSW_TEXT_MAX always suffices. */
int dnsw_name_to_text(const uint8_t *name, char *text, size_t cap, bool lower);
/* The inverse: dotted text with or without the final dot, escapes as above.
 * Returns the wire length, or -1 on an empty label, a label over 63 octets, a
 * name over 255, or a bad escape. */
int dnsw_name_from_text(const char *text, uint8_t name[static DNSW_NAME_MAX]);

/* Decode the possibly compressed name at off in msg[0..len) into out.
 * Returns its wire length, or -1 with *err set; *next is the offset after
 * the name's bytes at off. out may be NULL to validate only. */
int dnsw_name_decode(const uint8_t *msg, size_t len, size_t off, uint8_t *out,
		     size_t *next, struct dnsw_err *err);

/* ---- client queries ---- */

enum dnsw_qverdict {
	DNSW_Q_OK,
	DNSW_Q_DROP,		/* no answer: shorter than a header, or QR set */
	DNSW_Q_FORMERR,		/* answer FORMERR */
	DNSW_Q_NOTIMP,		/* opcode other than QUERY: answer NOTIMP */
	DNSW_Q_BADVERS,		/* EDNS version > 0: answer BADVERS with OPT */
};

struct dnsw_query {
	struct dnsw_hdr hdr;
	bool has_question;	/* q is valid (it may be on errors, to echo it) */
	struct dnsw_question q;
	char text[DNSW_TEXT_MAX];	/* q.name lower-cased, dotted */
	struct dnsw_edns edns;
	struct dnsw_err err;	/* why, when the verdict is not OK */
};

/* Parse a query from a client. The question must be the only one; answer
 * and authority records (if any) are checked and ignored; the additional
 * section may hold one OPT, owned by the root. */
enum dnsw_qverdict dnsw_parse_query(struct dnsw_query *q, const uint8_t *msg, size_t len);

/* The largest UDP answer for this query: 512 without EDNS, else the client's
 * size capped at ours (and never below 512). */
size_t dnsw_udp_limit(const struct dnsw_query *q, uint16_t our_size);

/* ---- building answers ---- */

struct dnsw_builder {
	uint8_t *buf;
	size_t size;		/* the buffer or the client's limit, the smaller */
	size_t len;
	size_t reserve;		/* kept free for the OPT record */
	uint16_t count[4];	/* qd, an, ns, ar */
	enum dnsw_section sec;
	bool tc, opt;
	uint16_t opt_size;	/* our payload size, in the OPT */
	uint32_t opt_ttl;	/* extended rcode, version 0, DO */
	uint16_t names[8];	/* offsets of names written whole, for compression */
	unsigned nnames;
};

/* Start an answer to q in buf (size bytes: the smaller of the buffer and
 * dnsw_udp_limit or 65535 over TCP): id, question, RD and CD echoed, QR and
 * RA set, plus extra flags (AA, AD). rcode may be extended (BADVERS) only
 * when the query had EDNS; an OPT with our_size and the client's DO bit is
 * appended when it had. Returns -1 if the question does not fit. */
int dnsw_answer_begin(struct dnsw_builder *b, uint8_t *buf, size_t size,
		      const struct dnsw_query *q, unsigned rcode, uint16_t extra,
		      uint16_t our_size);

/* Append a record to section sec (sections go forward only). owner NULL is
 * the question name. Returns 0 when added, 1 when it did not fit (in the
 * answer and authority sections this sets TC, and nothing is added after),
 * -1 on a bad argument. Records are never cut: the answer ends at a record
 * boundary. */
int dnsw_answer_add(struct dnsw_builder *b, enum dnsw_section sec, const uint8_t *owner,
		    uint16_t type, uint32_t ttl, const void *rdata, size_t rdlen);
int dnsw_answer_a(struct dnsw_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[4]);
int dnsw_answer_aaaa(struct dnsw_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t a[16]);
int dnsw_answer_cname(struct dnsw_builder *b, const uint8_t *owner, uint32_t ttl, const uint8_t *target);

/* An SOA for negative answers (RFC 2308): its TTL and minimum bound how
 * long the client caches the NXDOMAIN or NODATA. */
struct dnsw_soa {
	const uint8_t *zone, *mname, *rname;	/* wire names */
	uint32_t ttl, serial, refresh, retry, expire, minimum;
};
int dnsw_answer_soa(struct dnsw_builder *b, const struct dnsw_soa *soa);

/* Write counts, TC and the OPT; returns the message length. */
size_t dnsw_answer_finish(struct dnsw_builder *b);

/* ---- upstream ---- */

/* A query for q with the given id (the caller's random one), RD set plus
 * flags (e.g. DNSW_F_CD), and an OPT when edns is non-NULL (its udp_size and
 * DO are sent). Returns the length, or -1 when cap is too small. */
int dnsw_build_query(uint8_t *buf, size_t cap, uint16_t id, uint16_t flags,
		     const struct dnsw_question *q, const struct dnsw_edns *edns);

enum dnsw_rverdict {
	DNSW_R_OK,
	DNSW_R_MISMATCH,	/* not an answer to our query: ignore, keep waiting */
	DNSW_R_MALFORMED,	/* an answer, but broken: treat as a failed upstream */
};

/* A validated response: every record lies within len, every name decodes,
 * A is 4 octets, AAAA 16, CNAME and SOA rdata hold exactly their fields. */
struct dnsw_msg {
	const uint8_t *msg;
	size_t len;		/* up to the end of the last record */
	struct dnsw_hdr hdr;
	unsigned rcode;		/* 12 bits with EDNS */
	struct dnsw_question q;
	struct dnsw_edns edns;
	size_t sec_off[4];	/* first record of each section, by dnsw_section */
	struct dnsw_err err;
};

/* Check that msg answers the query (id, q): a response, opcode QUERY, the
 * same id and one question with the same name (ignoring case), type and
 * class. With TC set, records that do not parse are dropped (counts read as
 * zero): the caller retries over TCP anyway. */
enum dnsw_rverdict dnsw_parse_response(struct dnsw_msg *m, const uint8_t *msg, size_t len,
				       uint16_t id, const struct dnsw_question *q);

struct dnsw_rr {
	uint8_t owner[DNSW_NAME_MAX];
	uint16_t owner_len;
	uint16_t type, rclass;
	uint32_t ttl;		/* over 2^31-1 reads as 0 (RFC 2181 8) */
	uint16_t rdlen;
	size_t rdata_off;	/* into the message */
	const uint8_t *rdata;
};

struct dnsw_iter {
	const struct dnsw_msg *m;
	size_t off;
	unsigned left;
};

void dnsw_iter_init(struct dnsw_iter *it, const struct dnsw_msg *m, enum dnsw_section sec);
bool dnsw_iter_next(struct dnsw_iter *it, struct dnsw_rr *rr);
/* The name in a CNAME's rdata (or another name at rdata offset off). */
int dnsw_rr_name(const struct dnsw_msg *m, const struct dnsw_rr *rr, size_t off, uint8_t *out);

/* Follow the CNAME chain from the question name through the answer section
 * and collect the A/AAAA records owned by the name the chain ends at. Records
 * owned by any other name are ignored: off-chain data is how caches get
 * poisoned, and a name with a CNAME holds no other data (RFC 1034 3.6.2). */
struct dnsw_addr {
	uint8_t family;		/* 4 or 6 */
	uint8_t addr[16];
	uint32_t ttl;
};
struct dnsw_chain {
	uint8_t name[DNSW_NAME_MAX];	/* where the chain ends */
	unsigned cnames;	/* CNAMEs followed */
	size_t naddr;		/* addresses stored (at most cap) */
	size_t found;		/* addresses present (may exceed cap) */
	uint32_t ttl;		/* min over CNAMEs and addresses; UINT32_MAX if none */
};
/* Returns 0, or -1 when the chain loops or is longer than DNSW_CHAIN_MAX. */
int dnsw_chain(const struct dnsw_msg *m, struct dnsw_chain *c, struct dnsw_addr *addr, size_t cap);

/* Negative caching TTL (RFC 2308 5): min(SOA TTL, SOA MINIMUM) of the first
 * SOA in the authority section owned by name or an ancestor of it. Returns 0,
 * or -1 when there is none. */
int dnsw_negative_ttl(const struct dnsw_msg *m, const uint8_t *name, uint32_t *ttl);

/* ---- rewriting stored messages ---- */

void dnsw_set_id(uint8_t *msg, size_t len, uint16_t id);
/* Subtract elapsed seconds from every TTL except OPT's (not below 0), then
 * raise each to at least floor. Returns the smallest TTL now in the message
 * (UINT32_MAX without records), or -1 when the message does not parse. */
int64_t dnsw_age_ttls(uint8_t *msg, size_t len, uint32_t elapsed, uint32_t floor);
/* Lower every TTL above max (except OPT's) to max. 0, or -1 when the
 * message does not parse (then nothing changed). */
int dnsw_cap_ttls(uint8_t *msg, size_t len, uint32_t max);
/* Cut a valid message to at most limit octets at a record boundary, keeping
 * an OPT (without its options) when it had one; TC is set when answer or
 * authority records were cut. Returns the new length (len when it fits), or
 * 0 when even the question does not fit or the message does not parse. */
size_t dnsw_truncate(uint8_t *msg, size_t len, size_t limit);

/* ---- TCP framing (RFC 1035 4.2.2, RFC 7766 8) ---- */

/* On a TCP stream every message follows its length: two octets, network
 * order. A reader keeps what it has read in buf[0..len); the stream's first
 * octets sit at buf[0]. */
#define DNSW_TCP_FRAME_MAX	(2 + 65535)	/* the most one message takes */

/* The next whole message of a stream of pipelined messages (the service's
 * clients): at *off a length and at least that many octets follow, within
 * len. Then *msg and *msg_len give the message, *off moves past it and true
 * is returned; false (nothing moved) while the message is still partly
 * unread. A buffer of DNSW_TCP_FRAME_MAX octets always holds a whole one. */
bool dnsw_tcp_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **msg,
		   size_t *msg_len);

/* Octets still to read for the first message of a stream with one message
 * (an upstream's reply): 2 - got before the length is in, then what the
 * length says is missing; 0 once it is all there. -1 when the length is
 * below a DNS header: no reply. Never more than DNSW_TCP_FRAME_MAX - got. */
long dnsw_tcp_need(const uint8_t *buf, size_t got);

#endif
