/* TUN offloads: segmenting what the kernel reads out, coalescing what we
 * write in; see offload.h.
 *
 * Both directions follow the kernel's own rules, because the kernel undoes
 * what we do and the result must be the packets we started from:
 *
 *  - Segmenting a TCP super-packet (tcp_gso_segment, inet_gso_segment): each
 *    segment carries the super-packet's headers with the sequence number
 *    advanced by the payload before it, the IPv4 id advanced by the segment's
 *    index, FIN and PSH only on the last segment, CWR only on the first, and
 *    recomputed lengths and checksums. UDP_L4 (USO) is the same without the
 *    TCP fields.
 *  - Coalescing (tcp_gro_receive, inet_gro_receive) is the inverse: a segment
 *    joins a super-packet only when segmenting the result yields it again
 *    byte for byte, so every header field the segmenter copies must be equal
 *    (IP fields but length/id/checksum, TCP ports, ack, window, urgent
 *    pointer, options, flags but PSH), its sequence number and IPv4 id must
 *    continue the super-packet, and it may carry PSH or be shorter than the
 *    others only as the last one.
 *
 * A written super-packet carries NEEDS_CSUM, which the kernel turns into
 * CHECKSUM_PARTIAL and then trusts: it never verifies the segments' own
 * checksums, and re-segmenting it (forwarding) writes fresh ones. So in an
 * untrusted batch (GRE: nothing authenticates the bytes) a segment joins
 * only after its checksum verified; whatever does not join is written
 * unchanged with a zero vnet header and the kernel verifies it as usual.
 * A trusted batch (OFFLOAD_GRO_TRUSTED: WireGuard, whose AEAD authenticated
 * every byte as the peer's sender made it) verifies nothing and writes lone
 * packets with DATA_VALID. That is Linux's WireGuard exactly: it marks what
 * it decrypts CHECKSUM_UNNECESSARY, its GRO merges segments without summing
 * them, and a forwarded merge is re-segmented with fresh checksums. Only the
 * sender of the inner packet can have got a checksum wrong; nothing on the
 * path between can corrupt a byte without the tag failing.
 */
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* A gathered write (OFFLOAD_GRO_IOV) is at most one iovec per packet of the
 * batch; writev() refuses more than IOV_MAX with EINVAL. */
_Static_assert(OFFLOAD_GRO_MAX_PKTS <= IOV_MAX, "a batch's packets must fit one writev()");

#define HDR_LEN OFFLOAD_VNET_HDR_LEN

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_ECE 0x40
#define TCP_CWR 0x80

#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6

static uint64_t load64(const uint8_t *p)
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
static uint64_t sum_raw(const uint8_t *p, size_t len, uint64_t acc)
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

/* sum_raw of src (len bytes, from an even offset of its packet) while
 * copying it to dst: one pass over the bytes instead of two. */
static uint64_t copy_sum_raw(uint8_t *dst, const uint8_t *src, size_t len)
{
	unsigned __int128 a = 0, b = 0;
	uint8_t tail[8] = { 0 };
	uint64_t lo, hi;

	for (; len >= 32; src += 32, dst += 32, len -= 32) {
		uint64_t w0 = load64(src), w1 = load64(src + 8), w2 = load64(src + 16),
			 w3 = load64(src + 24);

		memcpy(dst, &w0, 8);
		memcpy(dst + 8, &w1, 8);
		memcpy(dst + 16, &w2, 8);
		memcpy(dst + 24, &w3, 8);
		a += w0;
		b += w1;
		a += w2;
		b += w3;
	}
	for (; len >= 8; src += 8, dst += 8, len -= 8) {
		uint64_t w = load64(src);

		memcpy(dst, &w, 8);
		a += w;
	}
	memcpy(dst, src, len);
	memcpy(tail, src, len);
	a += load64(tail) + b;
	lo = (uint64_t)a;
	hi = (uint64_t)(a >> 64);
	lo += hi;
	return lo + (lo < hi);
}

/* Two raw sums added, the carry around. */
static uint64_t add_raw(uint64_t x, uint64_t y)
{
	uint64_t s = x + y;

	return s + (s < x);
}

static uint16_t fold(uint64_t s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)((s & 0xffff) + (s >> 16));
}

uint16_t offload_csum(const uint8_t *p, size_t len, uint32_t initial)
{
	uint16_t init = fold(initial);

	return ntohs(fold(sum_raw(p, len, htons(init))));
}

/* Raw sum of the pseudo-header over the addresses of the IP header at ip. */
static uint64_t pseudo_raw(const uint8_t *ip, bool v6, uint8_t proto, size_t l4_len)
{
	uint8_t rest[4] = { 0, proto, (uint8_t)(l4_len >> 8), (uint8_t)l4_len };
	uint64_t s = v6 ? sum_raw(ip + 8, 32, 0) : sum_raw(ip + 12, 8, 0);

	/* l4_len < 65536 always, so IPv6's 32-bit length is its low word. */
	return sum_raw(rest, sizeof(rest), s);
}

static void store_raw(uint8_t *p, uint16_t raw)
{
	memcpy(p, &raw, sizeof(raw));
}

static void ip4_fix_csum(uint8_t *ip, size_t iphl)
{
	ip[10] = ip[11] = 0;
	store_raw(ip + 10, (uint16_t)~fold(sum_raw(ip, iphl, 0)));
}

/* What the network and transport headers of a packet say. */
struct hdrs {
	size_t iphl;		/* IPv4: 20-60 bytes, IPv6: 40 (no extensions) */
	size_t thl;		/* TCP: 20-60 bytes, UDP: 8 */
	uint8_t proto;
	bool v6;
};

static bool ip4_is_fragment(const uint8_t *ip)
{
	return xb_get16(ip + 6) & 0x3fff;	/* MF or a fragment offset */
}

/* The IP header: version, its length, the next protocol. */
static bool parse_net(const uint8_t *p, size_t len, struct hdrs *h)
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
static bool ip_len_ok(const uint8_t *p, size_t len, const struct hdrs *h)
{
	return (h->v6 ? 40 + (size_t)xb_get16(p + 4) : xb_get16(p + 2)) == len;
}

/* The TCP or UDP header after the IP header; false for anything else. */
static bool parse_l4(const uint8_t *p, size_t len, struct hdrs *h)
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

/* ---- Segmentation ---- */

/* A super-packet being cut: headers of hlen bytes, then payload. */
struct gso {
	const uint8_t *pkt;
	size_t len;
	struct hdrs h;
	size_t hlen;
	size_t mss;		/* payload bytes per segment; the last may be less */
	size_t segs;
};

static int seg_one(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len,
		   uint8_t *out, size_t out_cap, size_t *offsets, size_t *lens)
{
	size_t start = vh->csum_start, at = start + vh->csum_offset;
	uint16_t c;

	if (len > out_cap)
		return -1;
	if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && at + 2 > len)
		return -1;
	memcpy(out, pkt, len);
	if (offsets)
		offsets[0] = 0;
	lens[0] = len;
	if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return 1;
	/* The field holds the pseudo-header sum; the rest is added to it. */
	c = (uint16_t)~fold(sum_raw(out + start, len - start, 0));
	store_raw(out + at, c ? c : 0xffff);	/* as skb_checksum_help() */
	return 1;
}

/* Which protocol and IP version the gso_type promises, checked on the packet. */
static bool gso_type_matches(uint8_t gso_type, const struct hdrs *h)
{
	bool ecn = gso_type & VIRTIO_NET_HDR_GSO_ECN;

	switch (gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return !h->v6 && h->proto == IPPROTO_TCP;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return h->v6 && h->proto == IPPROTO_TCP;
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		return !ecn && h->proto == IPPROTO_UDP;
	default:
		return false;
	}
}

/* Rules for a GSO packet: NEEDS_CSUM at the transport checksum, headers that
 * parse to what gso_type says, payload, and segments that fit in 16-bit IP
 * lengths. hdr_len is only a hint in the kernel (skb_headlen()), never used. */
static bool gso_parse(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len,
		      struct gso *g)
{
	size_t payload, csum_off;

	if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || vh->gso_size == 0)
		return false;
	if (!parse_net(pkt, len, &g->h) || !gso_type_matches(vh->gso_type, &g->h))
		return false;
	if ((!g->h.v6 && ip4_is_fragment(pkt)) || !ip_len_ok(pkt, len, &g->h))
		return false;	/* a short read buffer truncates, for one */
	if (!parse_l4(pkt, len, &g->h))
		return false;
	csum_off = g->h.proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF;
	if (vh->csum_start != g->h.iphl || vh->csum_offset != csum_off)
		return false;
	g->pkt = pkt;
	g->len = len;
	g->hlen = g->h.iphl + g->h.thl;
	g->mss = vh->gso_size;
	payload = len - g->hlen;
	if (payload == 0)
		return false;
	g->segs = (payload + g->mss - 1) / g->mss;
	return g->hlen + (payload < g->mss ? payload : g->mss) <= OFFLOAD_MAX_IP_LEN;
}

static void seg_fix_ip(uint8_t *s, const struct gso *g, size_t i, size_t seg_len)
{
	if (g->h.v6) {
		xb_put16(s + 4, (uint16_t)(seg_len - 40));
		return;
	}
	xb_put16(s + 2, (uint16_t)seg_len);
	xb_put16(s + 4, (uint16_t)(xb_get16(s + 4) + i));
	ip4_fix_csum(s, g->h.iphl);
}

/* Transport header of segment i, whose payload starts done bytes into the
 * super-packet's and is n bytes long with raw sum psum; then its full
 * checksum. */
static void seg_fix_l4(uint8_t *s, const struct gso *g, size_t i, size_t done, size_t n,
		       uint64_t psum)
{
	uint8_t *t = s + g->h.iphl;
	size_t l4_len = g->h.thl + n;
	uint16_t c;

	if (g->h.proto == IPPROTO_TCP) {
		xb_put32(t + 4, xb_get32(t + 4) + (uint32_t)done);
		if (i > 0)
			t[13] &= (uint8_t)~TCP_CWR;
		if (i + 1 < g->segs)
			t[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
		t[16] = t[17] = 0;
		store_raw(t + 16, (uint16_t)~fold(sum_raw(t, g->h.thl,
				add_raw(psum, pseudo_raw(s, g->h.v6, IPPROTO_TCP, l4_len)))));
		return;
	}
	xb_put16(t + 4, (uint16_t)l4_len);
	t[6] = t[7] = 0;
	c = (uint16_t)~fold(sum_raw(t, 8, add_raw(psum, pseudo_raw(s, g->h.v6, IPPROTO_UDP, l4_len))));
	store_raw(t + 6, c ? c : 0xffff);	/* 0 means "no checksum" in UDP */
}

/* Segments back to back in out_cap bytes (stride 0), or segment i at
 * out + i * stride, each at most out_cap bytes. All of them (window false:
 * more than max_segs is an error), or segments first... up to max_segs of
 * them (window true: 0 past the last). */
static int seg_gso(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len, size_t first,
		   bool window, uint8_t *out, size_t out_cap, size_t stride, size_t *offsets,
		   size_t *lens, int max_segs)
{
	size_t payload, done, off = 0, end, bytes;
	struct gso g;

	if (!gso_parse(vh, pkt, len, &g) || (!window && g.segs > (size_t)max_segs))
		return -1;
	if (first >= g.segs)
		return 0;
	end = g.segs - first <= (size_t)max_segs ? g.segs : first + (size_t)max_segs;
	payload = len - g.hlen;
	done = first * g.mss;
	bytes = (end < g.segs ? end * g.mss : payload) - done;
	if (stride ? g.hlen + (bytes < g.mss ? bytes : g.mss) > out_cap :
		     (end - first) * g.hlen + bytes > out_cap)
		return -1;
	for (size_t i = first; i < end; i++) {
		size_t n = payload - done < g.mss ? payload - done : g.mss;
		uint8_t *s = out + off;
		uint64_t psum;

		memcpy(s, pkt, g.hlen);
		psum = copy_sum_raw(s + g.hlen, pkt + g.hlen + done, n);
		seg_fix_ip(s, &g, i, g.hlen + n);
		seg_fix_l4(s, &g, i, done, n, psum);
		if (offsets)
			offsets[i - first] = off;
		lens[i - first] = g.hlen + n;
		off = stride ? off + stride : off + g.hlen + n;
		done += n;
	}
	return (int)(end - first);
}

static int segment(const uint8_t *in, size_t in_len, size_t first, bool window, uint8_t *out,
		   size_t out_cap, size_t stride, size_t *offsets, size_t *lens, int max_segs)
{
	const uint8_t known = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	struct virtio_net_hdr vh;

	if (!in || in_len <= HDR_LEN || max_segs < 1)
		return -1;
	memcpy(&vh, in, HDR_LEN);
	if (vh.flags & ~known)
		return -1;
	if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return first ? 0 : seg_one(&vh, in + HDR_LEN, in_len - HDR_LEN, out, out_cap, offsets, lens);
	return seg_gso(&vh, in + HDR_LEN, in_len - HDR_LEN, first, window, out, out_cap, stride,
		       offsets, lens, max_segs);
}

int offload_segment(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
		    size_t *offsets, size_t *lens, int max_segs)
{
	return segment(in, in_len, 0, false, out, out_cap, 0, offsets, lens, max_segs);
}

int offload_segment_window(const uint8_t *in, size_t in_len, size_t first, uint8_t *out,
			   size_t out_cap, size_t *offsets, size_t *lens, int max_segs)
{
	return segment(in, in_len, first, true, out, out_cap, 0, offsets, lens, max_segs);
}

int offload_segment_strided(const uint8_t *in, size_t in_len, uint8_t *out, size_t stride,
			    size_t seg_cap, size_t *lens, int max_segs)
{
	if (seg_cap > stride)
		return -1;
	return segment(in, in_len, 0, false, out, seg_cap, stride, NULL, lens, max_segs);
}

/* ---- Coalescing ----
 *
 * add() copies each packet into a byte arena, leaving room for its vnet
 * header before it, and decides at once which output it belongs to: a new
 * one, or the latest output of its flow (5-tuple) if it continues that one.
 * Outputs are ordered by their first packet, so a segment that joins moves
 * ahead of later packets of other flows only; a flow's own packets never pass
 * each other because only its latest output can grow. finish() writes the
 * merged outputs into a second arena; lone packets are written where they lie.
 *
 * A packet whose flow cannot be told (IPv4 TCP fragments, IPv6 extension
 * headers, truncated TCP) might belong to any open flow, so it closes them all.
 */

#define GRO_FLOWS 16		/* flows a batch keeps open; the least recent goes */
#define GRO_NONE UINT32_MAX

struct gro_pkt {
	uint8_t *data;		/* IP header, in in_buf or the caller's (add_ref);
				 * HDR_LEN bytes before it ours to write */
	uint32_t len;
	uint32_t next;		/* next packet of the same output, or GRO_NONE */
};

struct gro_out {
	uint32_t first, last;	/* packets, linked through gro_pkt.next */
	uint32_t segs;
	uint32_t ip_len;	/* of the merged packet */
	uint32_t next_seq;	/* a joining segment's sequence number */
	uint16_t next_id;	/* a joining segment's IPv4 id */
	uint16_t mss;		/* payload of every segment but the last */
	bool open;		/* a segment may still join */
	bool checked;		/* the first packet's checksum verified */
	bool psh;		/* the last segment carries PSH */
	const uint8_t *data;	/* after finish: vnet header + packet */
	size_t data_len;
	uint32_t iov_first;	/* after finish with OFFLOAD_GRO_IOV: iovecs of the write */
	int iov_n;
};

struct gro_flow {
	uint32_t hash;
	uint32_t out;		/* the flow's latest output */
	uint64_t used;		/* for eviction */
};

struct offload_gro {
	uint8_t *in_buf, *out_buf;
	size_t cap, in_used, out_used;
	struct gro_pkt pkts[OFFLOAD_GRO_MAX_PKTS];
	struct gro_out outs[OFFLOAD_GRO_MAX_PKTS];
	uint32_t npkts, nouts;
	struct gro_flow flows[GRO_FLOWS];
	unsigned nflows;
	uint64_t clock;
	bool finished;
	unsigned flags;		/* OFFLOAD_GRO_* */
	struct iovec iov[OFFLOAD_GRO_MAX_PKTS];	/* one per packet */
};

/* A TCP packet as the coalescer sees it. */
struct seg {
	const uint8_t *p;
	size_t len;
	struct hdrs h;
	size_t payload;
	uint32_t seq;
	uint32_t hash;
	uint8_t flags;
	bool mergeable;		/* may start or join a super-packet */
};

struct offload_gro *offload_gro_new(size_t max_bytes)
{
	struct offload_gro *g;

	if (max_bytes < OFFLOAD_GRO_MIN_BYTES || max_bytes > UINT32_MAX)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cap = max_bytes;
	g->in_buf = malloc(max_bytes);
	g->out_buf = malloc(max_bytes);
	if (!g->in_buf || !g->out_buf) {
		offload_gro_free(g);
		return NULL;
	}
	return g;
}

void offload_gro_free(struct offload_gro *g)
{
	if (!g)
		return;
	free(g->in_buf);
	free(g->out_buf);
	free(g);
}

void offload_gro_reset(struct offload_gro *g)
{
	g->in_used = g->out_used = 0;
	g->npkts = g->nouts = 0;
	g->nflows = 0;
	g->finished = false;
}

static const uint8_t *pkt_data(const struct offload_gro *g, uint32_t i)
{
	return g->pkts[i].data;
}

static uint32_t flow_hash(const struct seg *s)
{
	const uint8_t *a = s->p + (s->h.v6 ? 8 : 12);
	size_t n = s->h.v6 ? 32 : 8;
	uint32_t h = s->h.v6 ? 0x9e3779b9u : 0x85ebca6bu;

	for (size_t i = 0; i < n; i += 4)
		h = (h ^ xb_get32(a + i)) * 0x01000193u;
	return (h ^ xb_get32(s->p + s->h.iphl)) * 0x01000193u;
}

/* Same addresses and ports; p is a stored packet of an earlier output. */
static bool same_flow(const struct seg *s, const uint8_t *p)
{
	size_t a = s->h.v6 ? 8 : 12, n = s->h.v6 ? 32 : 8;
	size_t iphl = s->h.v6 ? 40 : (size_t)(p[0] & 15) * 4;

	return p[0] >> 4 == s->p[0] >> 4 && !memcmp(p + a, s->p + a, n) &&
	       !memcmp(p + iphl, s->p + s->h.iphl, 4);
}

static struct gro_flow *flow_find(struct offload_gro *g, const struct seg *s)
{
	for (unsigned i = 0; i < g->nflows; i++) {
		struct gro_flow *f = &g->flows[i];

		if (f->hash == s->hash &&
		    same_flow(s, pkt_data(g, g->outs[f->out].first)))
			return f;
	}
	return NULL;
}

static struct gro_flow *flow_insert(struct offload_gro *g)
{
	struct gro_flow *old;

	if (g->nflows < GRO_FLOWS)
		return &g->flows[g->nflows++];
	old = &g->flows[0];
	for (unsigned i = 1; i < GRO_FLOWS; i++)
		if (g->flows[i].used < old->used)
			old = &g->flows[i];
	return old;
}

/* Only ACK, and PSH or ECE besides, may ride in a super-packet. */
static bool flags_mergeable(uint8_t flags)
{
	return (flags & (uint8_t)~(TCP_PSH | TCP_ECE)) == TCP_ACK;
}

/* A TCP packet with readable ports; false when it is not one. */
static bool seg_parse(const uint8_t *p, size_t len, struct seg *s)
{
	if (!parse_net(p, len, &s->h) || s->h.proto != IPPROTO_TCP)
		return false;
	if (!s->h.v6 && ip4_is_fragment(p))
		return false;
	if (!parse_l4(p, len, &s->h))
		return false;
	s->p = p;
	s->len = len;
	s->payload = len - s->h.iphl - s->h.thl;
	s->seq = xb_get32(p + s->h.iphl + 4);
	s->flags = p[s->h.iphl + 13];
	s->hash = flow_hash(s);
	s->mergeable = flags_mergeable(s->flags) && s->payload > 0 && ip_len_ok(p, len, &s->h) &&
		       (s->h.v6 || s->h.iphl == 20);
	return true;
}

/* Might p be a TCP packet whose flow seg_parse() could not read? */
static bool flow_unknown(const uint8_t *p, size_t len)
{
	struct hdrs h;

	if (!parse_net(p, len, &h))
		return false;	/* not IP at all: the kernel drops it */
	if (!h.v6)
		return h.proto == IPPROTO_TCP;	/* a fragment or truncated */
	switch (h.proto) {
	case IPPROTO_HOPOPTS: case IPPROTO_ROUTING: case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS: case IPPROTO_AH: case IPPROTO_ESP:
	case IPPROTO_MH: case 139: case 140:	/* HIP, shim6 */
	case IPPROTO_TCP:
		return true;
	default:
		return false;
	}
}

/* Every field the segmenter copies from the first segment must be equal. */
static bool same_headers(const struct seg *s, const uint8_t *head)
{
	const uint8_t *t = s->p + s->h.iphl, *ht = head + s->h.iphl;

	if ((size_t)(ht[12] >> 4) * 4 != s->h.thl)
		return false;	/* first, so comparing options stays inside head */
	if (s->h.v6) {
		if (memcmp(s->p, head, 4) || memcmp(s->p + 6, head + 6, 34))
			return false;
	} else if (memcmp(s->p, head, 2) || memcmp(s->p + 6, head + 6, 4) ||
		   memcmp(s->p + 12, head + 12, 8)) {
		return false;	/* all but length, id and checksum */
	}
	return !memcmp(t, ht, 4) && !memcmp(t + 8, ht + 8, 5) &&
	       (t[13] & (uint8_t)~TCP_PSH) == ht[13] &&
	       !memcmp(t + 14, ht + 14, 2) && !memcmp(t + 18, ht + 18, s->h.thl - 18);
}

static bool tcp_csum_ok(const uint8_t *p, size_t len, size_t iphl, bool v6)
{
	size_t l4_len = len - iphl;

	return fold(sum_raw(p + iphl, l4_len, pseudo_raw(p, v6, IPPROTO_TCP, l4_len))) == 0xffff;
}

/* Does s continue o exactly, as the next segment the kernel would cut? */
static bool seg_continues(const struct offload_gro *g, const struct gro_out *o,
			  const struct seg *s)
{
	const uint8_t *head = pkt_data(g, o->first);

	if (!o->open || !s->mergeable || !same_headers(s, head))
		return false;
	if (s->seq != o->next_seq || s->payload > o->mss)
		return false;
	if (o->ip_len + s->payload > OFFLOAD_MAX_IP_LEN)
		return false;
	return s->h.v6 || xb_get16(s->p + 4) == o->next_id;
}

static bool seg_join(struct offload_gro *g, struct gro_out *o, const struct seg *s,
		     uint32_t idx)
{
	const struct gro_pkt *head = &g->pkts[o->first];

	if (!seg_continues(g, o, s))
		return false;
	if (g->flags & OFFLOAD_GRO_TRUSTED) {
		/* Authenticated bytes: nothing to verify (see offload.h). */
	} else if (!o->checked) {
		o->checked = true;
		o->open = tcp_csum_ok(pkt_data(g, o->first), head->len, s->h.iphl, s->h.v6);
		if (!o->open)
			return false;
	}
	if (!(g->flags & OFFLOAD_GRO_TRUSTED) && !tcp_csum_ok(s->p, s->len, s->h.iphl, s->h.v6))
		return false;
	g->pkts[o->last].next = idx;
	o->last = idx;
	o->segs++;
	o->ip_len += (uint32_t)s->payload;
	o->next_seq += (uint32_t)s->payload;
	o->next_id++;
	o->psh = s->flags & TCP_PSH;
	o->open = !o->psh && s->payload == o->mss;
	return true;
}

static uint32_t out_new(struct offload_gro *g, uint32_t idx, const struct seg *s)
{
	struct gro_out *o = &g->outs[g->nouts];

	memset(o, 0, sizeof(*o));
	o->first = o->last = idx;
	o->segs = 1;
	o->ip_len = g->pkts[idx].len;
	if (s) {
		o->next_seq = s->seq + (uint32_t)s->payload;
		o->next_id = (uint16_t)(xb_get16(s->p + 4) + 1);
		o->mss = (uint16_t)s->payload;
		o->open = s->mergeable && !(s->flags & TCP_PSH);
	}
	return g->nouts++;
}

static void gro_tcp(struct offload_gro *g, uint32_t idx, const struct seg *s)
{
	struct gro_flow *f = flow_find(g, s);

	if (f && seg_join(g, &g->outs[f->out], s, idx)) {
		f->used = ++g->clock;
		return;
	}
	if (!f) {
		f = flow_insert(g);
		f->hash = s->hash;
	}
	f->out = out_new(g, idx, s);
	f->used = ++g->clock;
}

/* Packet p (in in_buf or the caller's) joins the batch. */
static void gro_take(struct offload_gro *g, uint8_t *data, size_t len)
{
	struct gro_pkt *p = &g->pkts[g->npkts];
	struct seg s;

	p->data = data;
	p->len = (uint32_t)len;
	p->next = GRO_NONE;
	if (seg_parse(data, len, &s)) {
		gro_tcp(g, g->npkts++, &s);
		return;
	}
	if (flow_unknown(data, len))
		g->nflows = 0;
	out_new(g, g->npkts++, NULL);
}

bool offload_gro_add(struct offload_gro *g, const uint8_t *pkt, size_t len)
{
	uint8_t *data;

	if (g->finished || len == 0 || len > OFFLOAD_MAX_IP_LEN)
		return false;
	if (g->cap - g->in_used < HDR_LEN + len || g->npkts == OFFLOAD_GRO_MAX_PKTS)
		return false;
	data = g->in_buf + g->in_used + HDR_LEN;
	memcpy(data, pkt, len);
	g->in_used += HDR_LEN + len;
	gro_take(g, data, len);
	return true;
}

/* Without OFFLOAD_GRO_IOV, finish() copies merged packets into out_buf, which
 * holds cap bytes: a packet taken by reference counts against cap as a copy
 * would, so that no more can be merged than out_buf holds. */
bool offload_gro_add_ref(struct offload_gro *g, uint8_t *pkt, size_t len)
{
	if (g->finished || len == 0 || len > OFFLOAD_MAX_IP_LEN || g->npkts == OFFLOAD_GRO_MAX_PKTS)
		return false;
	if (!(g->flags & OFFLOAD_GRO_IOV)) {
		if (g->cap - g->in_used < HDR_LEN + len)
			return false;
		g->in_used += HDR_LEN + len;
	}
	gro_take(g, pkt, len);
	return true;
}

/* The merged packet at d + HDR_LEN, whose headers are still the first
 * segment's: its vnet header at d, the final lengths, PSH of the last
 * segment, and in the TCP checksum field the pseudo-header sum the kernel's
 * CHECKSUM_PARTIAL expects (as tcp_v4_send_check leaves it). */
static void out_headers(uint8_t *d, const struct gro_out *o)
{
	uint8_t *ip = d + HDR_LEN;
	bool v6 = ip[0] >> 4 == 6;
	size_t iphl = v6 ? 40 : 20, thl = (size_t)(ip[iphl + 12] >> 4) * 4;
	struct virtio_net_hdr vh = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = (uint16_t)(iphl + thl),
		.gso_size = o->mss,
		.csum_start = (uint16_t)iphl,
		.csum_offset = TCP_CSUM_OFF,
	};

	memcpy(d, &vh, HDR_LEN);
	if (v6) {
		xb_put16(ip + 4, (uint16_t)(o->ip_len - 40));
	} else {
		xb_put16(ip + 2, (uint16_t)o->ip_len);
		ip4_fix_csum(ip, iphl);
	}
	if (o->psh)
		ip[iphl + 13] |= TCP_PSH;
	store_raw(ip + iphl + 16, fold(pseudo_raw(ip, v6, IPPROTO_TCP, o->ip_len - iphl)));
}

static size_t out_hlen(const uint8_t *first)
{
	size_t iphl = first[0] >> 4 == 6 ? 40 : 20;

	return iphl + (size_t)(first[iphl + 12] >> 4) * 4;
}

/* The merged packet copied into out_buf, in one piece. */
static void out_build(struct offload_gro *g, struct gro_out *o)
{
	uint8_t *d = g->out_buf + g->out_used, *end;
	const uint8_t *first = pkt_data(g, o->first);
	size_t hl = out_hlen(first);

	memcpy(d + HDR_LEN, first, g->pkts[o->first].len);
	end = d + HDR_LEN + g->pkts[o->first].len;
	for (uint32_t i = g->pkts[o->first].next; i != GRO_NONE; i = g->pkts[i].next) {
		memcpy(end, pkt_data(g, i) + hl, g->pkts[i].len - hl);
		end += g->pkts[i].len - hl;
	}
	out_headers(d, o);
	o->data = d;
	o->data_len = HDR_LEN + o->ip_len;
	g->out_used += o->data_len;
}

/* The merged packet left where its segments lie: the first one's headers
 * become the merged packet's, and iovecs gather the others' payloads. */
static void out_gather(struct offload_gro *g, struct gro_out *o, uint32_t *niov)
{
	struct gro_pkt *p = &g->pkts[o->first];
	uint8_t *d = p->data - HDR_LEN;
	size_t hl = out_hlen(d + HDR_LEN);

	o->iov_first = *niov;
	g->iov[(*niov)++] = (struct iovec){ d, HDR_LEN + p->len };
	for (uint32_t i = p->next; i != GRO_NONE; i = g->pkts[i].next)
		g->iov[(*niov)++] = (struct iovec){ g->pkts[i].data + hl, g->pkts[i].len - hl };
	o->iov_n = (int)(*niov - o->iov_first);
	out_headers(d, o);
}

size_t offload_gro_finish(struct offload_gro *g)
{
	const struct virtio_net_hdr lone = {
		.flags = g->flags & OFFLOAD_GRO_TRUSTED ? VIRTIO_NET_HDR_F_DATA_VALID : 0,
	};
	uint32_t niov = 0;

	if (g->finished)
		return g->nouts;
	for (uint32_t i = 0; i < g->nouts; i++) {
		struct gro_out *o = &g->outs[i];
		struct gro_pkt *p = &g->pkts[o->first];

		if (o->segs > 1) {
			if (g->flags & OFFLOAD_GRO_IOV)
				out_gather(g, o, &niov);
			else
				out_build(g, o);
			continue;
		}
		memcpy(p->data - HDR_LEN, &lone, HDR_LEN);
		o->data = p->data - HDR_LEN;
		o->data_len = HDR_LEN + p->len;
		o->iov_first = niov;
		o->iov_n = 1;
		g->iov[niov++] = (struct iovec){ (void *)o->data, o->data_len };
	}
	g->finished = true;
	return g->nouts;
}

const uint8_t *offload_gro_get(const struct offload_gro *g, size_t i, size_t *len)
{
	if (!g->finished || i >= g->nouts || (g->flags & OFFLOAD_GRO_IOV))
		return NULL;
	*len = g->outs[i].data_len;
	return g->outs[i].data;
}


void offload_gro_set_flags(struct offload_gro *g, unsigned flags)
{
	g->flags = flags & (OFFLOAD_GRO_TRUSTED | OFFLOAD_GRO_IOV);
}

const struct iovec *offload_gro_iov(const struct offload_gro *g, size_t i, int *n)
{
	if (!g->finished || i >= g->nouts || !(g->flags & OFFLOAD_GRO_IOV))
		return NULL;
	*n = g->outs[i].iov_n;
	return &g->iov[g->outs[i].iov_first];
}
