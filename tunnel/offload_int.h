/* Internal to the TUN offloads (offload_seg.c, offload_gro.c): the header
 * parsing and one's complement checksum helpers both directions share. They
 * are static inline here so that each file keeps them inlined on its packet
 * path, as when both directions were one file; nothing outside tunnel/
 * offload_*.c includes this header.
 *
 * Both directions follow the kernel's own rules, because the kernel undoes
 * what we do and the result must be the packets we started from; each file's
 * header says which rules it follows.
 */
#ifndef XB_TUNNEL_OFFLOAD_INT_H
#define XB_TUNNEL_OFFLOAD_INT_H

#include "tunnel/offload.h"
#include "common/bytes.h"

#include <netinet/in.h>
#include <string.h>

#define HDR_LEN OFFLOAD_VNET_HDR_LEN

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_ECE 0x40
#define TCP_CWR 0x80

#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Checksums are summed in memory order: one's complement addition commutes
 * with byte swapping, so a sum of native words, folded to 16 bits and stored
 * as a native uint16, has the bytes of the big-endian sum. Sums in this form
 * are "raw"; only offload_csum converts to host order. */

/* Raw one's complement sum of p plus acc; 128 bits hold every carry. */
static inline uint64_t sum_raw(const uint8_t *p, size_t len, uint64_t acc)
{
	unsigned __int128 a = acc, b = 0;
	uint8_t tail[8] = { 0 };
	uint64_t lo, hi;

	for (; len >= 32; p += 32, len -= 32) {
		a += load64(p);
		b += load64(p + 8);
		a += load64(p + 16);
		b += load64(p + 24);
	}
	for (; len >= 8; p += 8, len -= 8)
		a += load64(p);
	memcpy(tail, p, len);	/* zero padding keeps an odd byte the high one */
	a += load64(tail) + b;
	lo = (uint64_t)a;
	hi = (uint64_t)(a >> 64);
	lo += hi;
	return lo + (lo < hi);
}

/* Two raw sums added, the carry around. */
static inline uint64_t add_raw(uint64_t x, uint64_t y)
{
	uint64_t s = x + y;

	return s + (s < x);
}

static inline uint16_t fold(uint64_t s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)((s & 0xffff) + (s >> 16));
}

/* Raw sum of the pseudo-header over the addresses of the IP header at ip. */
static inline uint64_t pseudo_raw(const uint8_t *ip, bool v6, uint8_t proto, size_t l4_len)
{
	uint8_t rest[4] = { 0, proto, (uint8_t)(l4_len >> 8), (uint8_t)l4_len };
	uint64_t s = v6 ? sum_raw(ip + 8, 32, 0) : sum_raw(ip + 12, 8, 0);

	/* l4_len < 65536 always, so IPv6's 32-bit length is its low word. */
	return sum_raw(rest, sizeof(rest), s);
}

static inline void store_raw(uint8_t *p, uint16_t raw)
{
	memcpy(p, &raw, sizeof(raw));
}

static inline void ip4_fix_csum(uint8_t *ip, size_t iphl)
{
	ip[10] = ip[11] = 0;
	store_raw(ip + 10, (uint16_t)~fold(sum_raw(ip, iphl, 0)));
}

/* What the network and transport headers of a packet say. */
struct hdrs {
	size_t iphl;		/* IPv4: 20-60 bytes, IPv6: 40, plus the extension
				 * headers the segmenter walked (ext_walk) */
	size_t thl;		/* TCP: 20-60 bytes, UDP: 8 */
	uint8_t proto;
	bool v6;
};

static inline bool ip4_is_fragment(const uint8_t *ip)
{
	return xb_get16(ip + 6) & 0x3fff;	/* MF or a fragment offset */
}

/* The IP header: version, its length, the next protocol. */
static inline bool parse_net(const uint8_t *p, size_t len, struct hdrs *h)
{
	if (len < 20)
		return false;
	switch (p[0] >> 4) {
	case 4:
		h->v6 = false;
		h->iphl = (size_t)(p[0] & 15) * 4;
		h->proto = p[9];
		return h->iphl >= 20 && h->iphl <= len;
	case 6:
		h->v6 = true;
		h->iphl = 40;
		h->proto = p[6];
		return len >= 40;
	default:
		return false;
	}
}

/* The IP header's length field agrees with the bytes we have. */
static inline bool ip_len_ok(const uint8_t *p, size_t len, const struct hdrs *h)
{
	return (h->v6 ? 40 + (size_t)xb_get16(p + 4) : xb_get16(p + 2)) == len;
}

/* The TCP or UDP header after the IP header; false for anything else. */
static inline bool parse_l4(const uint8_t *p, size_t len, struct hdrs *h)
{
	if (h->proto == IPPROTO_UDP) {
		h->thl = 8;
		return h->iphl + 8 <= len;
	}
	if (h->proto != IPPROTO_TCP || h->iphl + 20 > len)
		return false;
	h->thl = (size_t)(p[h->iphl + 12] >> 4) * 4;
	return h->thl >= 20 && h->iphl + h->thl <= len;
}

#endif
