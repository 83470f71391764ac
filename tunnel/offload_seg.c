/* TUN offloads, the read side: segmenting what the kernel reads out; see
 * offload.h. The write side is offload_gro.c; the helpers both share are in
 * offload_int.h.
 *
 * Segmenting a TCP super-packet follows the kernel (tcp_gso_segment,
 * inet_gso_segment), because the coalescer on the far side, or the kernel
 * there, undoes it and the result must be the packets we started from: each
 * segment carries the super-packet's headers with the sequence number
 * advanced by the payload before it, the IPv4 id advanced by the segment's
 * index, FIN and PSH only on the last segment, CWR only on the first, and
 * recomputed lengths and checksums. UDP_L4 (USO) is the same without the
 * TCP fields.
 */
#include "tunnel/offload_int.h"

#include <arpa/inet.h>

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

uint16_t offload_csum(const uint8_t *p, size_t len, uint32_t initial)
{
	uint16_t init = fold(initial);

	return ntohs(fold(sum_raw(p, len, htons(init))));
}

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

/* IPv6 extension headers a TSO read may carry before TCP or UDP are those
 * a socket's sticky options put there (IPV6_HOPOPTS, IPV6_DSTOPTS,
 * IPV6_RTHDR); every segment carries them unchanged, with its own payload
 * length, as ipv6_gso_segment cuts. At most EXT_MAX of them. */
#define EXT_MAX 4

/* Walks the extension headers after the fixed IPv6 header: h->iphl grows by
 * their length and h->proto becomes the header after them. Hop-by-hop only
 * first (RFC 8200 4.1); destination options; a routing header only with no
 * segments left, for then the IPv6 destination is the final one the
 * transport checksum's pseudo-header takes (RFC 8200 8.1) - with segments
 * left the final destination lies in the routing header, in a form each
 * type defines, so that is refused. A fragment header (a fragment is no
 * super-packet), AH (it covers the lengths segmenting changes), ESP and
 * anything unknown are left in h->proto, which gso_type_matches refuses.
 * Each header must lie within the read. hdr_len bounds nothing here, as
 * nowhere in this file: the kernel fills it with skb_headlen(), which may
 * be anything (segment_ignores_hdr_len); csum_start, checked against the
 * walk's end in gso_parse, is what says where the transport header is. */
static bool ext_walk(const uint8_t *p, size_t lim, struct hdrs *h)
{
	size_t hl;

	for (unsigned n = 0;; n++) {
		switch (h->proto) {
		case IPPROTO_HOPOPTS:
			if (n > 0)
				return false;
			break;
		case IPPROTO_DSTOPTS:
		case IPPROTO_ROUTING:
			break;
		default:
			return true;
		}
		if (n == EXT_MAX || h->iphl + 8 > lim)
			return false;
		hl = ((size_t)p[h->iphl + 1] + 1) * 8;
		if (h->iphl + hl > lim)
			return false;
		if (h->proto == IPPROTO_ROUTING && p[h->iphl + 3] != 0)
			return false;	/* segments left */
		h->proto = p[h->iphl];
		h->iphl += hl;
	}
}

/* Rules for a GSO packet: NEEDS_CSUM at the transport checksum, headers that
 * parse to what gso_type says, payload, and segments that fit in 16-bit IP
 * lengths. hdr_len is only a hint in the kernel (skb_headlen()): unused. */
static bool gso_parse(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len,
		      struct gso *g)
{
	size_t payload, csum_off;

	if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || vh->gso_size == 0)
		return false;
	if (!parse_net(pkt, len, &g->h))
		return false;
	if (g->h.v6 && !ext_walk(pkt, len, &g->h))
		return false;
	if (!gso_type_matches(vh->gso_type, &g->h))
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
 * them and as many as out_cap holds (window true: 0 past the last). */
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
	if (window && !stride) {
		/* As many as fit: callers size out_cap for ordinary headers, and
		 * IPv6 extension headers repeat in every segment. At least one
		 * is tried, so a segment too large for out_cap still fails. */
		size_t fit = out_cap / (g.hlen + g.mss);

		if (end - first > (fit ? fit : 1))
			end = first + (fit ? fit : 1);
	}
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
