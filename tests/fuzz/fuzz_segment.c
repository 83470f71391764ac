/* libFuzzer: the TSO segmenter (offload_seg.c offload_segment*), fed TUN
 * reads as the kernel hands them to both send paths (WireGuard, GRE).
 * Input: [mode u8] then
 *   mode & 1 == 0  the rest is a raw read (vnet header + packet)
 *   mode & 1 == 1  a TCPV6 read with IPv6 extension headers built from the
 *                  rest: [k u8] k x [type u8][hdr ext len u8][segs left u8],
 *                  [mss u16][payload u16][flags u8][hdr_len slack u8],
 *                  [corrupt: pos u16, xor u8 (0: none)], then payload
 *                  bytes (u16 big-endian)
 * Check, raw: never out of bounds; an accepted read's segments each have
 * IP lengths that agree, a valid IPv4 header checksum and a transport
 * checksum valid over the pseudo-header with the upper-layer length, the
 * read's headers but in the fields a segment changes, and together its
 * payload; offload_segment_window three at a time, and in windows
 * bounded by their room, and offload_segment_strided cut the same. Built (not corrupted): accepted
 * exactly when a naive reading of RFC 8200 and the rules of offload.h says
 * so, and then each segment equals one built here from scratch. */
#include "ref_csum.h"
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define HDR	OFFLOAD_VNET_HDR_LEN
#define MAXS	512			/* segments a cut here takes */
#define READ	(HDR + 40 + 6 * 2048 + 60 + 65535)
#define OUT	(MAXS * 2048 + 2 * 65536)
#define STRIDE	(2 * 65536)

static uint8_t *out, *win, *rd;

/* Pseudo-header sum of the IP packet at ip for an upper layer of l4 bytes. */
static uint32_t pseudo(const uint8_t *ip, uint8_t proto, size_t l4)
{
	uint32_t s = ip[0] >> 4 == 6 ? ref_sum16(ip + 8, 32, 0) : ref_sum16(ip + 12, 8, 0);

	return s + proto + (uint32_t)(l4 >> 16) + (uint32_t)(l4 & 0xffff);
}

/* May segment byte i of the header differ from the read's? */
static bool changes(size_t i, bool v6, size_t th)
{
	if (v6 ? i == 4 || i == 5 : (i >= 2 && i <= 5) || i == 10 || i == 11)
		return true;	/* lengths, IPv4 id and header checksum */
	/* TCP: sequence number, flags, checksum; UDP: length, checksum. */
	return (i >= th + 4 && i < th + 8) || i == th + 13 || i == th + 16 || i == th + 17;
}

/* Segments of the read in out (n of them), against the read itself. */
static void check_segments(const uint8_t *in, size_t in_len, const size_t *off, const size_t *lens,
			   int n)
{
	struct virtio_net_hdr vh;
	const uint8_t *p = in + HDR;
	size_t th, hl, done = 0, plen = in_len - HDR;
	bool v6 = p[0] >> 4 == 6, tcp;

	memcpy(&vh, in, HDR);
	if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		check(n == 1 && lens[0] == plen);
		for (size_t i = 0; i < plen; i++)
			check(out[off[0] + i] == p[i] || ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
				(i == (size_t)vh.csum_start + vh.csum_offset ||
				 i == (size_t)vh.csum_start + vh.csum_offset + 1)));
		return;
	}
	tcp = (vh.gso_type & 0x7f) != VIRTIO_NET_HDR_GSO_UDP_L4;
	th = vh.csum_start;
	hl = th + (tcp ? (size_t)(p[th + 12] >> 4) * 4 : 8);
	for (int k = 0; k < n; k++) {
		const uint8_t *s = out + off[k];
		size_t len = lens[k], pay = len - hl;

		check(len > hl && len <= OFFLOAD_MAX_IP_LEN && pay <= vh.gso_size);
		check(k + 1 == n || pay == vh.gso_size);
		if (v6) {
			check(xb_get16(s + 4) == len - 40);
		} else {
			check(xb_get16(s + 2) == len);
			check(ref_fold(ref_sum16(s, th, 0)) == 0xffff);
		}
		check(ref_fold(ref_sum16(s + th, len - th, pseudo(s, tcp ? 6 : 17, len - th))) == 0xffff);
		for (size_t i = 0; i < hl; i++)
			check(s[i] == p[i] || changes(i, v6, th));
		check(!memcmp(s + hl, p + hl + done, pay));
		done += pay;
	}
	check(hl + done == plen);
}

/* The raw-mode checks: any read. */
static void cut_raw(const uint8_t *in, size_t in_len)
{
	static size_t off[MAXS], lens[MAXS], woff[3], wlen[3], slen[MAXS];
	int n = offload_segment(in, in_len, out, OUT, off, lens, MAXS), s;

	check(n == -1 || (n >= 1 && n <= MAXS));
	if (n < 1)
		return;
	check_segments(in, in_len, off, lens, n);
	for (size_t first = 0; first < (size_t)n;) {
		int r = offload_segment_window(in, in_len, first, win, 3 * 65600, woff, wlen, 3);

		check(r >= 1 && r <= 3);
		for (int j = 0; j < r; j++)
			check(wlen[j] == lens[first + (size_t)j] &&
			      !memcmp(win + woff[j], out + off[first + (size_t)j], wlen[j]));
		first += (size_t)r;
	}
	check(offload_segment_window(in, in_len, (size_t)n, win, 3 * 65600, woff, wlen, 3) == 0);
	/* Windows bounded by the room, not the count: each holds as many as
	 * fit in one and a half of the largest segment (so one at a time). */
	size_t most = 0;

	for (int j = 0; j < n; j++)
		most = lens[j] > most ? lens[j] : most;
	for (size_t first = 0; first < (size_t)n;) {
		int r = offload_segment_window(in, in_len, first, win, most + most / 2, woff, wlen, 64);

		check(r >= 1);
		for (int j = 0; j < r; j++)
			check(wlen[j] == lens[first + (size_t)j] &&
			      !memcmp(win + woff[j], out + off[first + (size_t)j], wlen[j]));
		first += (size_t)r;
	}
	if ((size_t)n > OUT / STRIDE)
		return;
	memcpy(win, out, off[n - 1] + lens[n - 1]);	/* out is overwritten next; win holds OUT */
	s = offload_segment_strided(in, in_len, out, STRIDE, STRIDE, slen, n);
	check(s == n);
	for (int j = 0; j < n; j++)
		check(slen[j] == lens[j] && !memcmp(out + (size_t)j * STRIDE, win + off[j], lens[j]));
}

struct ext {
	uint8_t type, len, left;
};

static uint8_t pick_type(uint8_t b)
{
	static const uint8_t types[] = {
		IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS,
		IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_ESP, IPPROTO_NONE,
	};

	return b & 8 ? b : types[b & 7];
}

/* Do the rules accept this chain before TCP? */
static bool chain_ok(const struct ext *e, unsigned k)
{
	if (k > 4)
		return false;
	for (unsigned i = 0; i < k; i++) {
		if (e[i].type == IPPROTO_HOPOPTS ? i > 0 :
		    e[i].type == IPPROTO_ROUTING ? e[i].left != 0 : e[i].type != IPPROTO_DSTOPTS)
			return false;
	}
	return true;
}

/* A TCP packet over IPv6 with the extension headers e before TCP and n
 * payload bytes, seq and flags as given; checksum complete, or (partial)
 * the pseudo-header sum alone. Returns its length. */
static size_t build(uint8_t *b, const struct ext *e, unsigned k, const uint8_t *pl, size_t n,
		    uint32_t seq, uint8_t flags, bool partial)
{
	size_t o = 40, l4;

	memset(b, 0, 40);
	b[0] = 0x60;
	b[7] = 64;
	b[8] = 0x20, b[9] = 0x01, b[10] = 0x0d, b[11] = 0xb8, b[23] = 2;
	b[24] = 0x20, b[25] = 0x01, b[26] = 0x0d, b[27] = 0xb8, b[28] = 1, b[39] = 1;
	b[6] = k ? e[0].type : IPPROTO_TCP;
	for (unsigned i = 0; i < k; i++) {
		size_t hl = ((size_t)e[i].len + 1) * 8;

		memset(b + o, 0, hl);
		b[o] = i + 1 < k ? e[i + 1].type : IPPROTO_TCP;
		b[o + 1] = e[i].len;
		b[o + 2] = (uint8_t)(1 + i);
		b[o + 3] = e[i].left;
		for (size_t j = 4; j < hl; j++)
			b[o + j] = (uint8_t)(j * 7 + i);
		o += hl;
	}
	l4 = 20 + n;
	memset(b + o, 0, 20);
	xb_put16(b + o, 40001);
	xb_put16(b + o + 2, 443);
	xb_put32(b + o + 4, seq);
	xb_put32(b + o + 8, 0x01020304);
	b[o + 12] = 5 << 4;
	b[o + 13] = flags;
	xb_put16(b + o + 14, 500);
	memcpy(b + o + 20, pl, n);
	xb_put16(b + 4, (uint16_t)(o - 40 + l4));
	if (partial)
		xb_put16(b + o + 16, ref_fold(pseudo(b, 6, l4)));
	else
		xb_put16(b + o + 16, (uint16_t)~ref_fold(ref_sum16(b + o, l4, pseudo(b, 6, l4))));
	return o + l4;
}

static void cut_built(const uint8_t *d, size_t size)
{
	static uint8_t pl[65535], want[65600];
	static size_t off[MAXS], lens[MAXS];
	struct ext e[8];
	unsigned k;
	size_t o = 1, exts = 0, mss, n, segs, len, hdr_len;
	uint8_t flags, slack;
	uint16_t pos;
	bool ok;
	int r;

	if (size < 1 + 1 + 9)
		return;
	k = d[0] % 7;
	if (size < o + 3 * k + 9)
		return;
	for (unsigned i = 0; i < k; i++, o += 3) {
		e[i] = (struct ext){ pick_type(d[o]), d[o + 1] & 0x80 ? d[o + 1] : d[o + 1] & 3,
				     d[o + 2] & 0x80 ? d[o + 2] : 0 };
		exts += ((size_t)e[i].len + 1) * 8;
	}
	mss = xb_get16(d + o) | 1;
	n = xb_get16(d + o + 2);
	flags = d[o + 4] | 0x10;
	slack = d[o + 5];
	pos = xb_get16(d + o + 6);
	o += 9;
	if (n > 65535 - 60 - exts)
		n = 65535 - 60 - exts;
	if (n > MAXS * mss)
		n = MAXS * mss;
	for (size_t i = 0; i < n; i++)
		pl[i] = o < size ? d[o + i % (size - o)] : (uint8_t)i;
	len = build(rd + HDR, e, k, pl, n, 0xfffffff0, flags, true);
	hdr_len = 40 + exts + 20;	/* all headers, up to 60 bytes less or 127 more: */
	if (slack & 0x80)
		hdr_len -= (size_t)(slack & 0x7f) < 60 ? (size_t)(slack & 0x7f) : 60;
	else
		hdr_len += slack;
	{
		struct virtio_net_hdr vh = {
			.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV6,
			.hdr_len = (uint16_t)hdr_len, .gso_size = (uint16_t)mss,
			.csum_start = (uint16_t)(40 + exts), .csum_offset = 16,
		};

		memcpy(rd, &vh, HDR);
	}
	if (d[o - 1]) {		/* corrupted: only the raw checks */
		rd[pos % (HDR + len)] ^= d[o - 1];
		cut_raw(rd, HDR + len);
		return;
	}
	segs = n ? (n + mss - 1) / mss : 0;
	ok = chain_ok(e, k) && n > 0 &&	/* hdr_len, whatever it says, bounds nothing */
	     40 + exts + 20 + (n < mss ? n : mss) <= 65535 && segs * (40 + exts + 20) + n <= OUT;
	r = offload_segment(rd, HDR + len, out, OUT, off, lens, MAXS);
	check(r == (ok ? (int)segs : -1));
	if (!ok)
		return;
	for (size_t i = 0; i < segs; i++) {
		size_t m = i + 1 < segs ? mss : n - i * mss, wl;
		uint8_t f = flags;

		if (i > 0)
			f &= (uint8_t)~0x80;		/* CWR */
		if (i + 1 < segs)
			f &= (uint8_t)~0x09;		/* FIN, PSH */
		wl = build(want, e, k, pl + i * mss, m, 0xfffffff0 + (uint32_t)(i * mss), f, false);
		check(lens[i] == wl && !memcmp(out + off[i], want, wl));
	}
	cut_raw(rd, HDR + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!out && (!(out = malloc(OUT)) || !(win = malloc(OUT)) || !(rd = malloc(READ))))
		abort();
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		cut_built(data + 1, size - 1);
	} else {
		uint8_t *copy = malloc(size - 1 ? size - 1 : 1);	/* exact: ASan sees overruns */

		memcpy(copy, data + 1, size - 1);
		cut_raw(copy, size - 1);
		free(copy);
	}
	return 0;
}
