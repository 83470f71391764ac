/* GRE (RFC 2784) with the key and sequence number extensions (RFC 2890):
 * the header codec (gre.c) and the userspace tunnel (gre_dev.c) that runs
 * it between a TUN interface and a raw IPPROTO_GRE socket.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   |C| |K|S| Reserved0       | Ver |         Protocol Type         |
 *   |      Checksum (if C)          |       Reserved1 (if C)        |
 *   |                         Key (if K)                            |
 *   |                   Sequence Number (if S)                      |
 *
 * Optional words appear in that order. Bit 1 (routing present, RFC 1701),
 * bit 4 (strict source route) and bits 5-7 (recursion control) must be zero
 * here: RFC 2784 §2.3 says a receiver that does not implement RFC 1701
 * discards such packets. Bits 8-12 are ignored on receipt and sent as zero.
 * Ver must be 0. The checksum is the Internet checksum over the GRE header
 * and payload, computed with the checksum field zero.
 *
 * Protocol type 0 carries no payload for us: it is the inner header of a
 * returning keepalive (see gre_dev.c).
 */
#ifndef XB_GRE_H
#define XB_GRE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRE_F_CSUM	0x8000
#define GRE_F_ROUTING	0x4000
#define GRE_F_KEY	0x2000
#define GRE_F_SEQ	0x1000
#define GRE_F_SSR	0x0800		/* strict source route (RFC 1701) */
#define GRE_F_RECUR	0x0700		/* recursion control (RFC 1701) */
#define GRE_F_VERSION	0x0007

#define GRE_PROTO_KEEPALIVE	0x0000
#define GRE_PROTO_IPV4		0x0800
#define GRE_PROTO_IPV6		0x86dd

#define GRE_HDR_MAX	16		/* base + checksum + key + sequence */

/* Why a received packet was dropped. */
enum gre_drop {
	GRE_OK,
	GRE_DROP_SHORT,		/* shorter than its header says */
	GRE_DROP_VERSION,	/* Ver is not 0 */
	GRE_DROP_FLAGS,		/* routing, strict source route, recursion bits */
	GRE_DROP_CSUM,		/* checksum present and wrong */
	GRE_DROP_KEY,		/* key missing, unexpected or different */
	GRE_DROP_NO_SEQ,	/* sequence numbers required and absent */
	GRE_DROP_SEQ,		/* out of order or duplicate (RFC 2890 §2.2) */
	GRE_DROP_PROTO,		/* protocol type other than IPv4, IPv6, keepalive */
	GRE_DROP_INNER,		/* inner packet too short or of the wrong version */
	GRE_DROP_OUTER,		/* outer IPv4 header malformed or not the remote's */
	GRE_DROP_COUNT,
};

/* A decoded header; len is its size in bytes (4 to 16). */
struct gre_hdr {
	uint16_t flags, proto;
	uint32_t key, seq;
	size_t len;
};

/* What one side of a tunnel sends and expects: a key on every packet (or
 * none), sequence numbers, checksums. */
struct gre_opts {
	bool has_key;
	uint32_t key;
	bool seq;		/* send S; require S on receipt */
	bool csum;		/* send C (received checksums are always verified) */
};

/* The header size the options produce. */
size_t gre_hdr_size(const struct gre_opts *o);
/* Write the header for a payload of plen bytes that already sits at
 * buf + gre_hdr_size(o); with o->csum the checksum covers both. seq is
 * written only with o->seq. Returns the header size. */
size_t gre_encap(uint8_t *buf, const struct gre_opts *o, uint16_t proto, uint32_t seq,
		 size_t plen);
/* The same header written at hdr for a payload elsewhere (a gather send:
 * header and packet as two iovecs). */
size_t gre_encap_hdr(uint8_t *hdr, const struct gre_opts *o, uint16_t proto, uint32_t seq,
		     const uint8_t *payload, size_t plen);
/* Decode and check the header of pkt (the GRE header and what follows):
 * version, flags, length, checksum, key against o. The sequence rule and
 * the protocol type are the caller's (gre_seq_accept, gre_inner_ok). */
enum gre_drop gre_decode(const uint8_t *pkt, size_t n, const struct gre_opts *o,
			 struct gre_hdr *h);
/* The inner packet's first nibble agrees with proto and it is long enough
 * for its IP header. */
enum gre_drop gre_inner_ok(uint16_t proto, const uint8_t *p, size_t n);
/* The Internet checksum (RFC 1071) of n bytes, folded and complemented. */
uint16_t gre_checksum(const uint8_t *p, size_t n);

/* RFC 2890 §2.2 without a reorder buffer: a packet is in sequence when its
 * number is greater than the last one accepted, in 32-bit serial number
 * arithmetic (RFC 1982); others are dropped. The first packet is accepted. */
struct gre_seq_rx {
	bool seen;
	uint32_t last;
};
bool gre_seq_accept(struct gre_seq_rx *s, uint32_t seq);
const char *gre_drop_name(enum gre_drop d);
/* A key as an integer (0-4294967295, decimal or 0x hex) or a dotted quad
 * ("10.0.0.1" = 0x0a000001, as `ip tunnel' writes keys). */
bool gre_key_parse(const char *s, uint32_t *key);

/* --- The userspace tunnel (gre_dev.c) ---------------------------------- */

struct gre_config {
	char ifname[16];		/* the TUN interface to create */
	int family;			/* outer: AF_INET or AF_INET6 */
	struct in6_addr local, remote;	/* AF_INET: the first 4 bytes */
	char bind_dev[16];		/* "" or SO_BINDTODEVICE for the socket */
	struct gre_opts opts;
	unsigned mtu;			/* 0: gre_default_mtu() */
	unsigned ttl;			/* outer hop limit, 0: the system's */
	unsigned keepalive_ms;		/* 0: no keepalives */
	unsigned keepalive_retries;	/* intervals without a reply: down */
};

#define GRE_MTU4	1476		/* 1500 - 20 (IPv4) - 4 (GRE), no options */
#define GRE_MTU6	1456		/* 1500 - 40 (IPv6) - 4 (GRE), no options */

/* The default interface MTU: what fills a 1500-byte outer packet behind the
 * outer header and the GRE header with its options (4 bytes each for
 * checksum, key and sequence), as the kernel's ip_gre computes it. 1476
 * with a key would make every full-sized packet 1504 bytes outside: two IP
 * fragments each (docs/gre.md "xb-gre" and "Speed"). */
#define GRE_DEFAULT_MTU(v6, n_opts) (((v6) ? GRE_MTU6 : GRE_MTU4) - 4u * (unsigned)(n_opts))
static inline unsigned gre_default_mtu(int family, const struct gre_opts *o)
{
	return GRE_DEFAULT_MTU(family == AF_INET6, o->csum + o->has_key + o->seq);
}

enum gre_ka_state { GRE_KA_OFF, GRE_KA_UP, GRE_KA_DOWN };

struct gre_stats {
	uint64_t rx_packets, rx_bytes;		/* inner packets and bytes to the TUN */
	uint64_t tx_packets, tx_bytes;		/* inner packets and bytes sent */
	uint64_t rx_drops[GRE_DROP_COUNT];	/* by reason; [GRE_OK] unused */
	uint64_t rx_errors, tx_errors;		/* socket or TUN calls that failed */
	uint64_t icmp_errors;			/* reported by the socket (ICMP) */
	uint64_t keepalives_sent, keepalive_replies;
	enum gre_ka_state ka_state;
	uint64_t ka_transitions;		/* up ↔ down changes */
	uint64_t last_reply_ns;			/* monotonic, 0 = never */
};

struct gre_tunnel;

/* Validate c; false with a message in err. */
bool gre_config_check(const struct gre_config *c, char *err, size_t errlen);
/* Create the TUN interface (up, with the MTU) and the socket. 0 or a
 * negative errno (the reason logged). */
int gre_tunnel_open(struct gre_tunnel **out, const struct gre_config *c);
/* The packet loop in the calling thread, until gre_tunnel_stop(). 0, or a
 * negative errno when the TUN or the socket fails for good. */
int gre_tunnel_run(struct gre_tunnel *t);
/* The same loop in a thread of its own. */
int gre_tunnel_start(struct gre_tunnel *t);
/* Ask the loop to end (async-signal-safe: one write to an eventfd). */
void gre_tunnel_stop(struct gre_tunnel *t);
/* Stop and join the thread if started, remove the interface, free. */
void gre_tunnel_close(struct gre_tunnel *t);
/* The thread started by gre_tunnel_start() has ended: stopped, or its TUN
 * or socket failed (the interface deleted by hand). Any thread. */
bool gre_tunnel_ended(struct gre_tunnel *t);
/* A consistent copy of the counters, from any thread. */
void gre_tunnel_stats(struct gre_tunnel *t, struct gre_stats *out);
/* Ask the loop to log its counters (async-signal-safe). */
void gre_tunnel_request_stats(struct gre_tunnel *t);
/* The counters on one line for a log: "rx 3 packets 252 bytes, ...". */
void gre_stats_format(const struct gre_stats *s, char *buf, size_t len);
const char *gre_tunnel_ifname(const struct gre_tunnel *t);
const char *gre_ka_state_name(enum gre_ka_state s);

#endif
