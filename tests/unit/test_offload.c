/* TUN offloads: segmenting GSO reads, coalescing writes, checksums.
 *
 * Packets are built here from scratch and checked with a deliberately naive
 * checksum (one byte at a time), never with offload_csum. Expected segments
 * and super-packets are built independently by the same builders, so every
 * comparison is against bytes the module under test did not produce. The
 * kernel tests at the end hand our super-packets to a real TUN in a throwaway
 * network namespace and read the kernel's back.
 */
#include "tests/lib/check.h"
#include "common/bytes.h"
#include "tunnel/offload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR OFFLOAD_VNET_HDR_LEN

/* ---- Helpers: byte order, a PRNG, the reference checksum ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void fill_rnd(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* Sum of p as big-endian 16-bit words, one byte at a time, not folded. */
static uint32_t ref_sum(const uint8_t *p, size_t len, uint32_t acc)
{
	for (size_t i = 0; i < len; i++)
		acc += i & 1 ? p[i] : (uint32_t)p[i] << 8;
	return acc;
}

static uint16_t ref_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static bool is_v6(const uint8_t *ip)
{
	return ip[0] >> 4 == 6;
}

static size_t ip_hl(const uint8_t *ip)
{
	return is_v6(ip) ? 40 : (size_t)(ip[0] & 15) * 4;
}

static uint8_t ip_proto(const uint8_t *ip)
{
	return is_v6(ip) ? ip[6] : ip[9];
}

static uint32_t ref_pseudo(const uint8_t *ip, uint8_t proto, size_t l4_len)
{
	uint32_t s = is_v6(ip) ? ref_sum(ip + 8, 32, 0) : ref_sum(ip + 12, 8, 0);

	return s + proto + (uint32_t)(l4_len >> 16) + (uint32_t)(l4_len & 0xffff);
}

/* A packet as a receiver checks it: IP lengths, IPv4 header checksum, and
 * the full TCP/UDP checksum over pseudo-header and segment. */
static bool ref_packet_ok(const uint8_t *ip, size_t len)
{
	size_t iphl;

	if (len < 20)
		return false;
	iphl = ip_hl(ip);
	if (len < iphl + 8)
		return false;
	if (is_v6(ip)) {
		if (xb_get16(ip + 4) != len - 40)
			return false;
	} else if (xb_get16(ip + 2) != len || ref_fold(ref_sum(ip, iphl, 0)) != 0xffff) {
		return false;
	}
	return ref_fold(ref_sum(ip + iphl, len - iphl,
				ref_pseudo(ip, ip_proto(ip), len - iphl))) == 0xffff;
}

/* ---- Packet builders ---- */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80

struct flow {
	bool v6;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint8_t ttl, tos;
	uint32_t label;		/* IPv6 flow label */
	uint32_t ack;
	uint16_t win;
	bool ts;		/* NOP NOP timestamps: a 32-byte TCP header */
	uint32_t tsval, tsecr;
	bool df;
};

/* Flow n: 192.0.2.x -> 198.51.100.x, or 2001:db8:1::x -> 2001:db8:2::x. */
static void flow_init(struct flow *f, bool v6, unsigned n)
{
	memset(f, 0, sizeof(*f));
	f->v6 = v6;
	if (v6) {
		inet_pton(AF_INET6, "2001:db8:1::2", f->src);
		inet_pton(AF_INET6, "2001:db8:2::2", f->dst);
		f->src[15] = (uint8_t)(2 + n);
		f->label = 0x12345;
	} else {
		inet_pton(AF_INET, "192.0.2.2", f->src);
		inet_pton(AF_INET, "198.51.100.2", f->dst);
		f->src[3] = (uint8_t)(2 + n);
	}
	f->sport = (uint16_t)(40000 + n);
	f->dport = 443;
	f->ttl = 64;
	f->tos = 0;
	f->ack = 0x10203040 + n;
	f->win = 502;
	f->ts = true;
	f->tsval = 0xaabbccdd;
	f->tsecr = 0x01020304;
	f->df = true;
}

static size_t ip_build(uint8_t *b, const struct flow *f, uint8_t proto, size_t l4_len,
		       uint16_t id)
{
	if (f->v6) {
		b[0] = (uint8_t)(0x60 | f->tos >> 4);
		b[1] = (uint8_t)(f->tos << 4 | (f->label >> 16 & 15));
		xb_put16(b + 2, (uint16_t)f->label);
		xb_put16(b + 4, (uint16_t)l4_len);
		b[6] = proto;
		b[7] = f->ttl;
		memcpy(b + 8, f->src, 16);
		memcpy(b + 24, f->dst, 16);
		return 40;
	}
	b[0] = 0x45;
	b[1] = f->tos;
	xb_put16(b + 2, (uint16_t)(20 + l4_len));
	xb_put16(b + 4, id);
	xb_put16(b + 6, f->df ? 0x4000 : 0);
	b[8] = f->ttl;
	b[9] = proto;
	xb_put16(b + 10, 0);
	memcpy(b + 12, f->src, 4);
	memcpy(b + 16, f->dst, 4);
	xb_put16(b + 10, (uint16_t)~ref_fold(ref_sum(b, 20, 0)));
	return 20;
}

static size_t tcp_hl(const struct flow *f)
{
	return f->ts ? 32 : 20;
}

/* A TCP segment with valid checksums; returns its length. */
static size_t tcp_build(uint8_t *b, const struct flow *f, uint32_t seq, uint16_t id,
			uint8_t flags, const uint8_t *pl, size_t n)
{
	size_t thl = tcp_hl(f), iphl = ip_build(b, f, IPPROTO_TCP, thl + n, id);
	uint8_t *t = b + iphl;

	xb_put16(t, f->sport);
	xb_put16(t + 2, f->dport);
	xb_put32(t + 4, seq);
	xb_put32(t + 8, f->ack);
	t[12] = (uint8_t)(thl / 4 << 4);
	t[13] = flags;
	xb_put16(t + 14, f->win);
	xb_put32(t + 16, 0);
	if (f->ts) {
		t[20] = 1;
		t[21] = 1;
		t[22] = 8;
		t[23] = 10;
		xb_put32(t + 24, f->tsval);
		xb_put32(t + 28, f->tsecr);
	}
	if (n)
		memcpy(t + thl, pl, n);
	xb_put16(t + 16, (uint16_t)~ref_fold(ref_sum(t, thl + n,
						  ref_pseudo(b, IPPROTO_TCP, thl + n))));
	return iphl + thl + n;
}

static size_t udp_build(uint8_t *b, const struct flow *f, uint16_t id, const uint8_t *pl,
			size_t n)
{
	size_t iphl = ip_build(b, f, IPPROTO_UDP, 8 + n, id);
	uint8_t *u = b + iphl;
	uint16_t c;

	xb_put16(u, f->sport);
	xb_put16(u + 2, f->dport);
	xb_put16(u + 4, (uint16_t)(8 + n));
	xb_put16(u + 6, 0);
	memcpy(u + 8, pl, n);
	c = (uint16_t)~ref_fold(ref_sum(u, 8 + n, ref_pseudo(b, IPPROTO_UDP, 8 + n)));
	xb_put16(u + 6, c ? c : 0xffff);
	return iphl + 8 + n;
}

static size_t icmp_build(uint8_t *b, const struct flow *f, uint16_t id)
{
	size_t iphl = ip_build(b, f, f->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 16, id);

	memset(b + iphl, 0, 16);
	b[iphl] = f->v6 ? 128 : 8;	/* echo request; checksum not needed here */
	xb_put16(b + iphl + 4, id);
	return iphl + 16;
}

static void vnet_put(uint8_t *b, uint8_t flags, uint8_t type, uint16_t hdr_len,
		     uint16_t gso_size, uint16_t start, uint16_t off)
{
	struct virtio_net_hdr h = {
		.flags = flags, .gso_type = type, .hdr_len = hdr_len,
		.gso_size = gso_size, .csum_start = start, .csum_offset = off,
	};

	memcpy(b, &h, HDR);
}

static struct virtio_net_hdr vnet_get(const uint8_t *b)
{
	struct virtio_net_hdr h;

	memcpy(&h, b, HDR);
	return h;
}

/* Turn a built packet's full L4 checksum into the pseudo-header sum that a
 * CHECKSUM_PARTIAL packet carries (what tcp_v4_send_check leaves). */
static void make_partial(uint8_t *ip, size_t len, size_t csum_off)
{
	size_t iphl = ip_hl(ip);

	xb_put16(ip + iphl + csum_off, ref_fold(ref_pseudo(ip, ip_proto(ip), len - iphl)));
}

/* A TSO super-packet as a TUN read returns it: vnet header, then one packet
 * carrying all n payload bytes; returns the read's length. */
static size_t tso_build(uint8_t *in, const struct flow *f, uint32_t seq, uint16_t id,
			uint8_t flags, const uint8_t *pl, size_t n, uint16_t mss, bool ecn)
{
	size_t len = tcp_build(in + HDR, f, seq, id, flags, pl, n);
	uint8_t type = f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
	size_t iphl = f->v6 ? 40 : 20;

	make_partial(in + HDR, len, 16);
	vnet_put(in, VIRTIO_NET_HDR_F_NEEDS_CSUM, (uint8_t)(type | (ecn ? VIRTIO_NET_HDR_GSO_ECN : 0)),
		 (uint16_t)len, mss, (uint16_t)iphl, 16);	/* hdr_len: skb_headlen() */
	return HDR + len;
}

/* Segment i of the super-packet above, built from scratch. */
static size_t tso_expect(uint8_t *b, const struct flow *f, uint32_t seq, uint16_t id,
			 uint8_t flags, const uint8_t *pl, size_t n, size_t mss, size_t i)
{
	size_t segs = (n + mss - 1) / mss, len = i + 1 < segs ? mss : n - i * mss;

	if (i > 0)
		flags &= (uint8_t)~TH_CWR;
	if (i + 1 < segs)
		flags &= (uint8_t)~(TH_FIN | TH_PSH);
	return tcp_build(b, f, seq + (uint32_t)(i * mss), (uint16_t)(id + i), flags,
			 pl + i * mss, len);
}

/* ---- The checksum ---- */

TEST(csum_rfc1071_example)
{
	/* RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2. */
	static const uint8_t b[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

	CHECK_INT(offload_csum(b, sizeof(b), 0), ==, 0xddf2);
	CHECK_INT(offload_csum(b, 0, 0), ==, 0);
	CHECK_INT(offload_csum(b, 1, 0), ==, 0x0000);
	CHECK_INT(offload_csum(b + 2, 1, 0), ==, 0xf200);
	CHECK_INT(offload_csum(b, 4, 0x1ffff), ==, 0xf204 + 1);
}

TEST(csum_end_around_carry)
{
	/* Native 64-bit words ~0, ~0, 1: the 128-bit total's halves overflow
	 * when added, the case the final end-around carry exists for. */
	uint8_t b[24];

	memset(b, 0xff, 16);
	memset(b + 16, 0, 8);
	b[16] = 1;
	CHECK_INT(offload_csum(b, 24, 0), ==, ref_fold(ref_sum(b, 24, 0)));
	b[16] = 0;
	b[23] = 1;
	CHECK_INT(offload_csum(b, 24, 0), ==, ref_fold(ref_sum(b, 24, 0)));
	CHECK_INT(offload_csum(b, 24, 0xffffffff), ==, ref_fold(ref_sum(b, 24, 0xffff)));
}

TEST(csum_matches_reference)
{
	static uint8_t buf[4200];

	rng_state = 0x0ff10adULL;
	for (int iter = 0; iter < 3000; iter++) {
		size_t align = rnd_below(8), len = rnd_below(iter < 200 ? 70 : 4096);
		uint32_t init = (uint32_t)rnd();

		if (iter % 7 == 0)
			memset(buf, 0xff, sizeof(buf));	/* worst case for carries */
		else
			fill_rnd(buf, sizeof(buf));
		if (iter % 11 == 0)
			init = 0xffffffff;
		CHECK_INT(offload_csum(buf + align, len, init), ==,
			  ref_fold(ref_fold(init) + ref_sum(buf + align, len, 0)));
	}
}

TEST(csum_chains_even_chunks)
{
	static uint8_t buf[3000];

	rng_state = 7;
	fill_rnd(buf, sizeof(buf));
	for (size_t cut = 0; cut <= 2000; cut += 2) {
		uint16_t a = offload_csum(buf, cut, 0x1234);

		CHECK_INT(offload_csum(buf + cut, sizeof(buf) - 1 - cut, a), ==,
			  offload_csum(buf, sizeof(buf) - 1, 0x1234));
	}
}

/* ---- Segmentation ---- */

static uint8_t seg_in[HDR + 70000], seg_out[140000], seg_exp[70000];
static size_t seg_offs[256], seg_lens[256];

TEST(segment_none_passes_unchanged)
{
	struct flow f;
	size_t len;
	uint8_t pl[100];

	flow_init(&f, false, 0);
	fill_rnd(pl, sizeof(pl));
	len = tcp_build(seg_in + HDR, &f, 1000, 7, TH_ACK, pl, sizeof(pl));
	vnet_put(seg_in, 0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 1), ==, 1);
	CHECK_INT(seg_offs[0], ==, 0);
	CHECK_INT(seg_lens[0], ==, len);
	CHECK_MEM(seg_out, seg_in + HDR, len);
	/* DATA_VALID (the kernel's CHECKSUM_UNNECESSARY) changes nothing. */
	vnet_put(seg_in, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, len, seg_offs, seg_lens, 1), ==, 1);
	CHECK_MEM(seg_out, seg_in + HDR, len);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, len - 1, seg_offs, seg_lens, 1),
		  ==, -1);
}

TEST(segment_none_completes_checksum)
{
	struct flow f;
	uint8_t pl[301], want[400];

	for (int v6 = 0; v6 <= 1; v6++) {
		size_t len, iphl;

		flow_init(&f, v6, 1);
		fill_rnd(pl, sizeof(pl));
		len = tcp_build(want, &f, 5, 9, TH_ACK | TH_PSH, pl, sizeof(pl));
		iphl = ip_hl(want);
		memcpy(seg_in + HDR, want, len);
		make_partial(seg_in + HDR, len, 16);
		vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)iphl, 16);
		CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
					  seg_lens, 4), ==, 1);
		CHECK_INT(seg_lens[0], ==, len);
		CHECK_MEM(seg_out, want, len);
		CHECK(ref_packet_ok(seg_out, len));
		/* csum_offset must leave room for the 2-byte field. */
		vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)(len - 2), 1);
		CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
					  seg_lens, 4), ==, -1);
		vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)(len - 2), 0);
		CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
					  seg_lens, 4), ==, 1);
	}
}

TEST(segment_none_udp_zero_checksum_becomes_ffff)
{
	struct flow f;
	uint8_t pl[64] = { 0 };
	size_t len;
	uint16_t s;

	/* Choose the last payload word so the UDP sum is 0xffff, its complement 0. */
	flow_init(&f, false, 2);
	len = udp_build(seg_in + HDR, &f, 1, pl, sizeof(pl));
	make_partial(seg_in + HDR, len, 6);
	s = ref_fold(ref_sum(seg_in + HDR + 20, len - 20, 0));
	xb_put16(seg_in + HDR + len - 2, (uint16_t)(0xffff - s));
	vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 6);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 1), ==, 1);
	CHECK_INT(xb_get16(seg_out + 26), ==, 0xffff);
	CHECK(ref_packet_ok(seg_out, len));
}

/* Segment a super-packet of n payload bytes and check every segment: bytes
 * equal to one built from scratch, plus each property spelled out. */
static void check_tso(bool v6, size_t n, uint16_t mss, uint8_t flags, bool ecn)
{
	static uint8_t pl[66000], joined[66000];
	struct flow f;
	size_t in_len, segs = (n + mss - 1) / mss, got = 0;
	const uint32_t seq = 0xfffff000;	/* wraps past 2^32 */
	const uint16_t id = 0xfffe;		/* wraps past 2^16 */
	int r;

	flow_init(&f, v6, 3);
	fill_rnd(pl, n);
	in_len = tso_build(seg_in, &f, seq, id, flags, pl, n, mss, ecn);
	r = offload_segment(seg_in, in_len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 256);
	CHECK_INT(r, ==, segs);
	for (size_t i = 0; i < segs; i++) {
		const uint8_t *s = seg_out + seg_offs[i], *t = s + (v6 ? 40 : 20);
		size_t want = tso_expect(seg_exp, &f, seq, id, flags, pl, n, mss, i);
		size_t pay = seg_lens[i] - (v6 ? 40 : 20) - 32;

		CHECK_INT(seg_lens[i], ==, want);
		CHECK_MEM(s, seg_exp, want);
		CHECK(ref_packet_ok(s, seg_lens[i]));
		CHECK_INT(pay, ==, i + 1 < segs ? mss : n - (segs - 1) * mss);
		CHECK_INT(xb_get32(t + 4), ==, (uint32_t)(seq + i * mss));
		if (!v6)
			CHECK_INT(xb_get16(s + 4), ==, (uint16_t)(id + i));
		CHECK_INT(!!(t[13] & TH_FIN), ==, i + 1 == segs && (flags & TH_FIN));
		CHECK_INT(!!(t[13] & TH_PSH), ==, i + 1 == segs && (flags & TH_PSH));
		CHECK_INT(!!(t[13] & TH_CWR), ==, i == 0 && (flags & TH_CWR));
		CHECK_INT(t[13] & TH_ACK, ==, TH_ACK);
		if (i > 0)
			CHECK_INT(seg_offs[i], ==, seg_offs[i - 1] + seg_lens[i - 1]);
		memcpy(joined + got, t + 32, pay);
		got += pay;
	}
	CHECK_INT(got, ==, n);
	CHECK_MEM(joined, pl, n);
}

TEST(segment_tcp4_timestamps)
{
	check_tso(false, 10000, 1448, TH_ACK | TH_PSH | TH_FIN | TH_CWR, false);
	check_tso(false, 1448 * 7, 1448, TH_ACK | TH_PSH, false);
	check_tso(false, 65535 - 52, 1448, TH_ACK, false);	/* the largest */
	check_tso(false, 256, 1, TH_ACK | TH_FIN, false);	/* one byte each */
}

TEST(segment_tcp6_timestamps)
{
	check_tso(true, 10000, 1428, TH_ACK | TH_PSH | TH_FIN | TH_CWR, false);
	check_tso(true, 65535 - 72, 1428, TH_ACK | TH_PSH, false);
	check_tso(true, 1000, 1428, TH_ACK | TH_PSH, false);	/* one segment */
}

TEST(segment_ecn_gso_type)
{
	check_tso(false, 5000, 1000, TH_ACK | TH_CWR | TH_ECE, true);
	check_tso(true, 5000, 1000, TH_ACK | TH_CWR, true);
}

TEST(segment_ignores_hdr_len)
{
	/* The kernel puts skb_headlen() in hdr_len: anything from 0 to all of it. */
	static const uint16_t lies[] = { 0, 1, 52, 53, 1500, 9999, 0xffff };
	uint8_t pl[5000], first[2000];
	struct flow f;
	size_t len, first_len;

	flow_init(&f, false, 4);
	fill_rnd(pl, sizeof(pl));
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, sizeof(pl), 1448, false);
	first_len = tso_expect(first, &f, 1, 1, TH_ACK, pl, sizeof(pl), 1448, 0);
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		struct virtio_net_hdr h = vnet_get(seg_in);

		h.hdr_len = lies[i];
		memcpy(seg_in, &h, HDR);
		CHECK_INT(offload_segment(seg_in, len, seg_out, sizeof(seg_out), seg_offs, seg_lens,
					  16), ==, 4);
		CHECK_INT(seg_lens[0], ==, first_len);
		CHECK_MEM(seg_out, first, first_len);
	}
}

static void check_uso(bool v6)
{
	uint8_t pl[3000], want[1600];
	struct flow f;
	size_t len, iphl = v6 ? 40 : 20;

	flow_init(&f, v6, 5);
	fill_rnd(pl, sizeof(pl));
	len = udp_build(seg_in + HDR, &f, 100, pl, sizeof(pl));
	make_partial(seg_in + HDR, len, 6);
	vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4,
		 (uint16_t)(iphl + 8), 1200, (uint16_t)iphl, 6);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 8), ==, 3);
	for (size_t i = 0; i < 3; i++) {
		size_t n = i < 2 ? 1200 : 600, wl = udp_build(want, &f, (uint16_t)(100 + i),
							       pl + i * 1200, n);

		CHECK_INT(seg_lens[i], ==, wl);
		CHECK_MEM(seg_out + seg_offs[i], want, wl);
		CHECK(ref_packet_ok(seg_out + seg_offs[i], wl));
	}
	/* USO with the ECN bit means nothing: refused. */
	seg_in[1] |= VIRTIO_NET_HDR_GSO_ECN;
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 8), ==, -1);
}

TEST(segment_udp_l4)
{
	check_uso(false);
	check_uso(true);
}

TEST(segment_udp_l4_zero_checksum_becomes_ffff)
{
	uint8_t pl[200] = { 0 }, want[300];
	struct flow f;
	size_t len, wl;
	uint16_t s;

	/* Pick the first segment's last payload word so its sum is 0xffff. */
	flow_init(&f, true, 8);
	wl = udp_build(want, &f, 0, pl, 100);
	xb_put16(want + 46, 0);
	s = ref_fold(ref_sum(want + 40, 108, ref_pseudo(want, IPPROTO_UDP, 108)));
	xb_put16(pl + 98, (uint16_t)(0xffff - s));
	wl = udp_build(want, &f, 0, pl, 100);
	CHECK_INT(xb_get16(want + 46), ==, 0xffff);
	len = udp_build(seg_in + HDR, &f, 0, pl, sizeof(pl));
	make_partial(seg_in + HDR, len, 6);
	vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4, 48, 100, 40, 6);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 8), ==, 2);
	CHECK_INT(seg_lens[0], ==, wl);
	CHECK_MEM(seg_out, want, wl);
}

/* ---- Malformed reads ---- */

static int seg(const uint8_t *in, size_t len)
{
	return offload_segment(in, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 256);
}

/* Windows of a read (offload_segment_window) are its segments, each with the
 * sequence number, IPv4 id, flags and checksums of its place in the whole:
 * compared with offload_segment's cut and with segments built from scratch,
 * for window sizes 1, 7 and 64, and for a read of more segments (1 000 of one
 * byte) than any one cut here takes. Past the last segment: 0. */
static void check_windows(const uint8_t *in, size_t in_len, int whole)
{
	static uint8_t win[140000];
	static size_t woffs[64], wlens[64];
	static const int sizes[] = { 1, 7, 64 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t first = 0;
		int n;

		while ((n = offload_segment_window(in, in_len, first, win, sizeof(win), woffs, wlens,
						   sizes[k])) > 0) {
			CHECK(n <= sizes[k]);
			for (int i = 0; i < n; i++) {
				CHECK_INT(wlens[i], ==, seg_lens[first + (size_t)i]);
				CHECK_MEM(win + woffs[i], seg_out + seg_offs[first + (size_t)i], wlens[i]);
			}
			first += (size_t)n;
		}
		CHECK_INT(n, ==, 0);
		CHECK_INT(first, ==, whole);
	}
}

TEST(segment_window_equals_whole)
{
	static uint8_t pl[12000];
	struct flow f;
	size_t len;

	fill_rnd(pl, sizeof(pl));
	for (int v6 = 0; v6 < 2; v6++) {
		flow_init(&f, v6, 4);
		len = tso_build(seg_in, &f, 0xffffff00, 0xfff0, TH_ACK | TH_PSH | TH_FIN | TH_CWR, pl,
				10001, 100, false);
		CHECK_INT(seg(seg_in, len), ==, 101);
		check_windows(seg_in, len, 101);
		/* UDP (USO) and a read without segmentation. */
		len = udp_build(seg_in + HDR, &f, 100, pl, 3000);
		make_partial(seg_in + HDR, len, 6);
		vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4,
			 (uint16_t)((v6 ? 40 : 20) + 8), 1200, (uint16_t)(v6 ? 40 : 20), 6);
		CHECK_INT(seg(seg_in, HDR + len), ==, 3);
		check_windows(seg_in, HDR + len, 3);
		vnet_put(seg_in, 0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0);
		CHECK_INT(seg(seg_in, HDR + len), ==, 1);
		check_windows(seg_in, HDR + len, 1);
	}
	/* 1 000 one-byte segments: more than offload_segment takes here (256). */
	flow_init(&f, false, 4);
	len = tso_build(seg_in, &f, 7, 9, TH_ACK | TH_FIN, pl, 1000, 1, false);
	CHECK_INT(seg(seg_in, len), ==, -1);
	{
		static uint8_t win[140000];
		static size_t woffs[128], wlens[128];
		size_t first = 0;
		int n;

		while ((n = offload_segment_window(seg_in, len, first, win, sizeof(win), woffs, wlens,
						   128)) > 0) {
			for (int i = 0; i < n; i++) {
				size_t want = tso_expect(seg_exp, &f, 7, 9, TH_ACK | TH_FIN, pl, 1000, 1,
							 first + (size_t)i);

				CHECK_INT(wlens[i], ==, want);
				CHECK_MEM(win + woffs[i], seg_exp, want);
			}
			first += (size_t)n;
		}
		CHECK_INT(n, ==, 0);
		CHECK_INT(first, ==, 1000);
	}
	/* Malformed stays malformed in every window. */
	CHECK_INT(offload_segment_window(seg_in, len - 1, 0, seg_out, sizeof(seg_out), seg_offs,
					 seg_lens, 128), ==, -1);
	CHECK_INT(offload_segment_window(seg_in, len - 1, 500, seg_out, sizeof(seg_out), seg_offs,
					 seg_lens, 128), ==, -1);
}

/* A fresh 10-segment IPv4 super-packet in seg_in; returns the read length. */
static size_t fresh_tso(bool v6)
{
	static uint8_t pl[14480];
	struct flow f;

	flow_init(&f, v6, 6);
	fill_rnd(pl, sizeof(pl));
	return tso_build(seg_in, &f, 77, 88, TH_ACK, pl, sizeof(pl), 1448, false);
}

TEST(segment_strided_equals_back_to_back)
{
	/* Each segment in a slot of its own: the bytes of the contiguous cut;
	 * too few slots, or a slot too small for one segment, is refused. */
	static uint8_t slots[12 * 2000];
	size_t lens[12], in_len;
	int r;

	for (int v6 = 0; v6 <= 1; v6++) {
		in_len = fresh_tso(v6);
		r = seg(seg_in, in_len);
		CHECK_INT(r, ==, 10);
		CHECK_INT(offload_segment_strided(seg_in, in_len, slots, 2000, 1600, lens, 12), ==, r);
		for (int i = 0; i < r; i++) {
			CHECK_INT(lens[i], ==, seg_lens[i]);
			CHECK_MEM(slots + (size_t)i * 2000, seg_out + seg_offs[i], seg_lens[i]);
		}
		CHECK_INT(offload_segment_strided(seg_in, in_len, slots, 2000, 1600, lens, 9), ==, -1);
		CHECK_INT(offload_segment_strided(seg_in, in_len, slots, 2000, 1400, lens, 12), ==, -1);
		CHECK_INT(offload_segment_strided(seg_in, in_len, slots, 1000, 1600, lens, 12), ==, -1);
	}
}

static void set_vnet(uint8_t flags, uint8_t type, uint16_t gso, uint16_t start, uint16_t off)
{
	struct virtio_net_hdr h = vnet_get(seg_in);

	vnet_put(seg_in, flags, type, h.hdr_len, gso, start, off);
}

TEST(segment_rejects_bad_vnet_headers)
{
	const uint8_t csum = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	size_t len = fresh_tso(false);

	CHECK_INT(seg(seg_in, len), ==, 10);
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 0, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* gso_size 0 */
	set_vnet(0, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* TSO without NEEDS_CSUM */
	set_vnet(csum | 0x20, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* unknown flag */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 24, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* csum_start not at TCP */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 20, 6);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* not the TCP checksum */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 60000, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* beyond the packet */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV6, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* version mismatch */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_UDP_L4, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* protocol mismatch */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_UDP, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* UFO */
	set_vnet(csum, 2, 1448, 20, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* no such type */
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 20, 16);
	CHECK_INT(offload_segment(seg_in, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 9),
		  ==, -1);					/* max_segs */
	CHECK_INT(offload_segment(seg_in, len, seg_out, 14480 + 10 * 52 - 1, seg_offs, seg_lens,
				  10), ==, -1);			/* out_cap */
	CHECK_INT(offload_segment(seg_in, len, seg_out, 14480 + 10 * 52, seg_offs, seg_lens, 10),
		  ==, 10);
	CHECK_INT(offload_segment(seg_in, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 0),
		  ==, -1);
	CHECK_INT(offload_segment(NULL, 0, seg_out, sizeof(seg_out), seg_offs, seg_lens, 1),
		  ==, -1);
	len = fresh_tso(true);
	CHECK_INT(seg(seg_in, len), ==, 10);
	set_vnet(csum, VIRTIO_NET_HDR_GSO_TCPV4, 1428, 40, 16);
	CHECK_INT(seg(seg_in, len), ==, -1);			/* version mismatch */
}

TEST(segment_rejects_bad_packets)
{
	size_t len = fresh_tso(false);
	uint8_t *ip = seg_in + HDR;

	ip[0] = 0x44;						/* IHL 4 */
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(false);
	ip[0] = 0x46;						/* IHL 6, csum_start 20 */
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(false);
	ip[9] = IPPROTO_UDP;
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(false);
	ip[6] |= 0x20;						/* MF */
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(false);
	ip[7] = 1;						/* fragment offset */
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(false);
	ip[32] = 0x40;						/* data offset 4 */
	CHECK_INT(seg(seg_in, len), ==, -1);
	CHECK_INT(seg(seg_in, HDR + 20 + 32), ==, -1);		/* headers only */
	len = fresh_tso(false);
	CHECK_INT(seg(seg_in, HDR + 20 + 31), ==, -1);		/* TCP header cut */
	len = fresh_tso(true);
	ip[6] = IPPROTO_HOPOPTS;				/* over TCP's bytes: */
	CHECK_INT(seg(seg_in, len), ==, -1);			/* no TCP after it */
	len = fresh_tso(true);
	ip[6] = IPPROTO_FRAGMENT;
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(true);
	ip[0] = 0x45;						/* not IPv6 any more */
	CHECK_INT(seg(seg_in, len), ==, -1);
}

TEST(segment_rejects_oversized_segments)
{
	static uint8_t pl[65535];
	struct flow f;
	size_t len;

	/* gso_size 65535: one segment, as long as it fits 16-bit IP lengths. */
	flow_init(&f, false, 7);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 52, 65535, false);
	CHECK_INT(seg(seg_in, len), ==, 1);
	CHECK_INT(seg_lens[0], ==, 65535);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 51, 65535, false);
	CHECK_INT(seg(seg_in, len), ==, -1);		/* total length wrapped */
	/* An IPv6 packet may reach 65575 bytes; its segments may not. */
	flow_init(&f, true, 7);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 32, 65535, false);
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 32, 30000, false);
	CHECK_INT(seg(seg_in, len), ==, 3);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 32, 65535 - 72, false);
	CHECK_INT(seg(seg_in, len), ==, 2);
	CHECK_INT(seg_lens[0], ==, 65535);
}

TEST(segment_truncations_never_overrun)
{
	size_t len = fresh_tso(false);

	/* Exact-size heap copies let ASan see a read past the end. */
	for (size_t cut = 0; cut <= len; cut = cut < 200 || cut + 997 > len ? cut + 1 : cut + 997) {
		uint8_t *copy = malloc(cut ? cut : 1);
		int r;

		memcpy(copy, seg_in, cut);
		r = seg(copy, cut);
		CHECK_INT(r, ==, cut == len ? 10 : -1);	/* IP length disagrees */
		free(copy);
	}
}

/* ---- IPv6 extension headers in a TSO read ---- */

/* Extension headers as a socket's sticky options put them before TCP:
 * hop-by-hop, destination options, a routing header with no segments left. */
static const uint8_t ext_dst[8] = { IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0 };	/* PadN */
static const uint8_t ext_hbh_dst[24] = {
	IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
	IPPROTO_TCP, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
static const uint8_t ext_dst_rt_dst[8 + 24 + 8] = {
	IPPROTO_ROUTING, 0, 1, 4, 0, 0, 0, 0,
	IPPROTO_DSTOPTS, 2, 4, 0, 0, 0, 0, 0,	/* SRH, segments left 0 */
	0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0,
};

/* A TCP segment of flow f over IPv6 with extension headers ext (extlen
 * bytes, the first of type first), built from scratch: tcp_build's packet
 * with the headers put between IPv6 and TCP and the payload length grown by
 * them. Its TCP checksum stands, for the pseudo-header takes the
 * upper-layer length and the addresses, neither of which moved. */
static size_t ext_build(uint8_t *b, const struct flow *f, uint8_t first, const uint8_t *ext,
			size_t extlen, uint32_t seq, uint8_t flags, const uint8_t *pl, size_t n)
{
	static uint8_t plain[70000];
	size_t len = tcp_build(plain, f, seq, 0, flags, pl, n);

	memcpy(b, plain, 40);
	b[6] = first;
	xb_put16(b + 4, (uint16_t)(len - 40 + extlen));
	memcpy(b + 40, ext, extlen);
	memcpy(b + 40 + extlen, plain + 40, len - 40);
	return len + extlen;
}

/* The TSO read of all n bytes, as the kernel hands it over: the TCP
 * checksum field holds the pseudo-header sum, hdr_len all headers. */
static size_t ext_tso(uint8_t *in, const struct flow *f, uint8_t first, const uint8_t *ext,
		      size_t extlen, uint32_t seq, uint8_t flags, const uint8_t *pl, size_t n,
		      uint16_t mss)
{
	size_t len = ext_build(in + HDR, f, first, ext, extlen, seq, flags, pl, n);
	size_t th = 40 + extlen, thl = tcp_hl(f);

	xb_put16(in + HDR + th + 16, ref_fold(ref_pseudo(in + HDR, IPPROTO_TCP, len - th)));
	vnet_put(in, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, (uint16_t)(th + thl),
		 mss, (uint16_t)th, 16);
	return HDR + len;
}

static void check_ext_tso(uint8_t first, const uint8_t *ext, size_t extlen, size_t n,
			  uint16_t mss)
{
	static uint8_t pl[66000];
	const uint8_t flags = TH_ACK | TH_PSH | TH_FIN | TH_CWR;
	const uint32_t seq = 0xfffff000;
	size_t segs = (n + mss - 1) / mss, in_len, th = 40 + extlen;
	struct flow f;

	flow_init(&f, true, 9);
	fill_rnd(pl, n);
	in_len = ext_tso(seg_in, &f, first, ext, extlen, seq, flags, pl, n, mss);
	CHECK_INT(seg(seg_in, in_len), ==, segs);
	for (size_t i = 0; i < segs; i++) {
		const uint8_t *s = seg_out + seg_offs[i];
		size_t pay = i + 1 < segs ? mss : n - i * mss, want;
		uint8_t fl = flags;

		if (i > 0)
			fl &= (uint8_t)~TH_CWR;
		if (i + 1 < segs)
			fl &= (uint8_t)~(TH_FIN | TH_PSH);
		want = ext_build(seg_exp, &f, first, ext, extlen, seq + (uint32_t)(i * mss), fl,
				 pl + i * mss, pay);
		CHECK_INT(seg_lens[i], ==, want);
		CHECK_MEM(s, seg_exp, want);
		/* As a receiver checks it: payload length, then the checksum
		 * over the upper-layer length (RFC 8200 8.1). */
		CHECK_INT(xb_get16(s + 4), ==, seg_lens[i] - 40);
		CHECK_INT(ref_fold(ref_sum(s + th, seg_lens[i] - th,
					   ref_pseudo(s, IPPROTO_TCP, seg_lens[i] - th))), ==, 0xffff);
	}
	check_windows(seg_in, in_len, (int)segs);
}

TEST(segment_tcp6_dstopts)
{
	check_ext_tso(IPPROTO_DSTOPTS, ext_dst, sizeof(ext_dst), 10000, 1420);
	check_ext_tso(IPPROTO_DSTOPTS, ext_dst, sizeof(ext_dst), 1000, 1420);	/* one */
}

TEST(segment_tcp6_hopopts_dstopts)
{
	check_ext_tso(IPPROTO_HOPOPTS, ext_hbh_dst, sizeof(ext_hbh_dst), 10000, 1400);
	check_ext_tso(IPPROTO_HOPOPTS, ext_hbh_dst, sizeof(ext_hbh_dst), 65535 - 24 - 32, 1400);
}

TEST(segment_tcp6_routing_done)
{
	/* A routing header with no segments left: the IPv6 destination is the
	 * final one, the pseudo-header's. */
	check_ext_tso(IPPROTO_DSTOPTS, ext_dst_rt_dst, sizeof(ext_dst_rt_dst), 7000, 1380);
}

/* A read of 4 destination options headers of 8 bytes before TCP. */
static size_t ext_chain(unsigned k, uint8_t last)
{
	static uint8_t ext[8 * 16], pl[5000];
	struct flow f;

	for (unsigned i = 0; i < k; i++) {
		memcpy(ext + 8 * i, ext_dst, 8);
		ext[8 * i] = i + 1 < k ? IPPROTO_DSTOPTS : last;
	}
	flow_init(&f, true, 10);
	return ext_tso(seg_in, &f, IPPROTO_DSTOPTS, ext, 8 * k, 1, TH_ACK, pl, sizeof(pl), 1000);
}

TEST(segment_rejects_bad_ext_headers)
{
	static const uint8_t refused[] = {
		IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_ESP, IPPROTO_NONE, IPPROTO_ICMPV6, 253,
	};
	static uint8_t pl[5000];
	uint8_t *ip = seg_in + HDR, ext[sizeof(ext_dst_rt_dst)];
	struct virtio_net_hdr h;
	struct flow f;
	size_t len;

	flow_init(&f, true, 11);
	CHECK_INT(seg(seg_in, ext_chain(4, IPPROTO_TCP)), ==, 5);	/* the most */
	CHECK_INT(seg(seg_in, ext_chain(5, IPPROTO_TCP)), ==, -1);	/* one too many */
	CHECK_INT(seg(seg_in, ext_chain(16, IPPROTO_TCP)), ==, -1);
	/* A chain ending in a header no super-packet has before TCP. */
	for (size_t i = 0; i < sizeof(refused); i++)
		CHECK_INT(seg(seg_in, ext_chain(1, refused[i])), ==, -1);
	/* Hop-by-hop anywhere but first. */
	len = ext_chain(2, IPPROTO_TCP);
	ip[40] = IPPROTO_HOPOPTS;
	CHECK_INT(seg(seg_in, len), ==, -1);
	/* A routing header with segments left: the final destination is in it. */
	memcpy(ext, ext_dst_rt_dst, sizeof(ext));
	ext[8 + 3] = 1;
	len = ext_tso(seg_in, &f, IPPROTO_DSTOPTS, ext, sizeof(ext), 1, TH_ACK, pl, 3000, 1000);
	CHECK_INT(seg(seg_in, len), ==, -1);
	/* hdr_len does not bound them: it is skb_headlen(), anything at all. */
	len = ext_tso(seg_in, &f, IPPROTO_HOPOPTS, ext_hbh_dst, 24, 1, TH_ACK, pl, 3000, 1000);
	h = vnet_get(seg_in);
	for (size_t i = 0; i < 3; i++) {
		h.hdr_len = (uint16_t[]){ 40 + 24, 40 + 7, 0 }[i];
		memcpy(seg_in, &h, HDR);
		CHECK_INT(seg(seg_in, len), ==, 3);
	}
	/* A header longer than the read (2 048 bytes claimed in 1 100). */
	len = ext_tso(seg_in, &f, IPPROTO_DSTOPTS, ext_dst, 8, 1, TH_ACK, pl, 1000, 500);
	ip[41] = 255;
	h = vnet_get(seg_in);
	h.hdr_len = 0xffff;
	memcpy(seg_in, &h, HDR);
	CHECK_INT(seg(seg_in, len), ==, -1);
	/* A chain of destination options to the end of the read. */
	memset(ip + 40, 0, len - HDR - 40);
	for (size_t o = 40; o + 8 <= len - HDR; o += 8)
		ip[o] = IPPROTO_DSTOPTS;
	CHECK_INT(seg(seg_in, len), ==, -1);
}

TEST(segment_ext_truncations_never_overrun)
{
	static uint8_t pl[3000];
	const size_t hdrs = 40 + 24 + 32;
	struct flow f;
	size_t len;

	flow_init(&f, true, 12);
	fill_rnd(pl, sizeof(pl));
	len = ext_tso(seg_in, &f, IPPROTO_HOPOPTS, ext_hbh_dst, 24, 1, TH_ACK, pl, sizeof(pl),
		      1000);
	/* Exact-size heap copies, the IPv6 payload length made to agree with
	 * the cut, so that every cut reaches the walk. */
	for (size_t cut = HDR + 40; cut <= len; cut = cut < HDR + hdrs + 20 ? cut + 1 : cut + 97) {
		uint8_t *copy = malloc(cut);
		size_t pay = cut - HDR - hdrs;
		int r;

		memcpy(copy, seg_in, cut);
		xb_put16(copy + HDR + 4, (uint16_t)(cut - HDR - 40));
		r = seg(copy, cut);
		CHECK_INT(r, ==, cut > HDR + hdrs ? (int)((pay + 999) / 1000) : -1);
		free(copy);
	}
}

/* ---- Coalescing ---- */

/* A list of packets, back to back in one buffer. */
struct plist {
	uint8_t *buf;
	size_t cap, used, n;
	size_t off[4096], len[4096];
};

static struct plist *plist_new(size_t cap)
{
	struct plist *l = calloc(1, sizeof(*l));

	l->buf = malloc(cap);
	l->cap = cap;
	return l;
}

static void plist_free(struct plist *l)
{
	free(l->buf);
	free(l);
}

static uint8_t *plist_at(const struct plist *l, size_t i)
{
	return l->buf + l->off[i];
}

/* Room for the next packet; plist_push() then records its length. */
static uint8_t *plist_next(struct plist *l)
{
	if (l->cap - l->used < 70000 || l->n == 4096)
		xb_test_fail(__FILE__, __LINE__, "plist full");
	return l->buf + l->used;
}

static void plist_push(struct plist *l, size_t len)
{
	l->off[l->n] = l->used;
	l->len[l->n++] = len;
	l->used += len;
}

static void plist_add(struct plist *l, const uint8_t *p, size_t len)
{
	memcpy(plist_next(l), p, len);
	plist_push(l, len);
}

/* Add every packet of in to g (a batch of one call each), then finish. */
static size_t gro_all(struct offload_gro *g, const struct plist *in)
{
	offload_gro_reset(g);
	for (size_t i = 0; i < in->n; i++)
		CHECK(offload_gro_add(g, plist_at(in, i), in->len[i]));
	return offload_gro_finish(g);
}

/* What the kernel sees: every write of g segmented again, as GSO would. */
static void gro_deliver(const struct offload_gro *g, size_t n, struct plist *out)
{
	static size_t offs[256], lens[256];

	for (size_t i = 0; i < n; i++) {
		size_t len;
		const uint8_t *w = offload_gro_get(g, i, &len);
		uint8_t *d = plist_next(out);
		int r;

		CHECK(w != NULL);
		r = offload_segment(w, len, d, 70000 * 2, offs, lens, 256);
		CHECK_INT(r, >=, 1);
		for (int k = 0; k < r; k++)
			plist_add(out, d + offs[k], lens[k]);
	}
}

static void check_same_lists(const struct plist *a, const struct plist *b)
{
	CHECK_INT(a->n, ==, b->n);
	for (size_t i = 0; i < a->n; i++) {
		CHECK_INT(a->len[i], ==, b->len[i]);
		CHECK_MEM(plist_at(a, i), plist_at(b, i), a->len[i]);
	}
}

/* Write i must be a plain packet equal to want: zero vnet header. */
static void check_lone(const struct offload_gro *g, size_t i, const uint8_t *want, size_t len)
{
	static const uint8_t zero[HDR];
	size_t got;
	const uint8_t *w = offload_gro_get(g, i, &got);

	CHECK(w != NULL);
	CHECK_INT(got, ==, HDR + len);
	CHECK_MEM(w, zero, HDR);
	CHECK_MEM(w + HDR, want, len);
}

/* Segments of one flow: count packets of mss bytes (the last one last_len),
 * starting at seq/id, last one with last_flags; appended to l. */
static void flow_segments(struct plist *l, const struct flow *f, uint32_t seq, uint16_t id,
			  size_t count, size_t mss, size_t last_len, uint8_t last_flags,
			  const uint8_t *pl)
{
	uint8_t flags = last_flags & (uint8_t)~(TH_PSH | TH_FIN);

	for (size_t i = 0; i < count; i++) {
		bool last = i + 1 == count;

		plist_push(l, tcp_build(plist_next(l), f, seq + (uint32_t)(i * mss),
					(uint16_t)(id + i), last ? last_flags : flags,
					pl + i * mss, last ? last_len : mss));
	}
}

/* The write the kernel needs for those segments, built from scratch. */
static size_t expected_write(uint8_t *w, const struct flow *f, uint32_t seq, uint16_t id,
			     uint8_t flags, const uint8_t *pl, size_t n, uint16_t mss)
{
	size_t len = tcp_build(w + HDR, f, seq, id, flags, pl, n), iphl = f->v6 ? 40 : 20;

	make_partial(w + HDR, len, 16);
	vnet_put(w, VIRTIO_NET_HDR_F_NEEDS_CSUM,
		 f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
		 (uint16_t)(iphl + tcp_hl(f)), mss, (uint16_t)iphl, 16);
	return HDR + len;
}

static uint8_t gro_pl[1 << 20];

static struct offload_gro *gro_new_ok(void)
{
	struct offload_gro *g = offload_gro_new(1 << 20);

	if (!g)
		xb_test_fail(__FILE__, __LINE__, "offload_gro_new");
	return g;
}

static void check_round_trip(bool v6, bool ts, uint8_t last_flags)
{
	struct offload_gro *g = gro_new_ok();
	struct plist *in = plist_new(1 << 20), *back = plist_new(1 << 21);
	static uint8_t want[70000];
	struct flow f;
	size_t n, got, mss = v6 ? 1428 : 1448, wl;
	const uint8_t *w;

	flow_init(&f, v6, 10);
	f.ts = ts;
	fill_rnd(gro_pl, sizeof(gro_pl));
	flow_segments(in, &f, 0xfffffff0, 0xfffd, 8, mss, 700, last_flags, gro_pl);
	n = gro_all(g, in);
	CHECK_INT(n, ==, 1);
	w = offload_gro_get(g, 0, &got);
	wl = expected_write(want, &f, 0xfffffff0, 0xfffd, last_flags, gro_pl, 7 * mss + 700,
			    (uint16_t)mss);
	CHECK_INT(got, ==, wl);
	CHECK_MEM(w, want, wl);
	{
		struct virtio_net_hdr h = vnet_get(w);

		CHECK_INT(h.flags, ==, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		CHECK_INT(h.gso_type, ==, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
		CHECK_INT(h.gso_size, ==, mss);
		CHECK_INT(h.hdr_len, ==, (v6 ? 40 : 20) + (ts ? 32 : 20));
		CHECK_INT(h.csum_start, ==, v6 ? 40 : 20);
		CHECK_INT(h.csum_offset, ==, 16);
	}
	gro_deliver(g, n, back);
	check_same_lists(in, back);
	CHECK(offload_gro_get(g, 1, &got) == NULL);
	offload_gro_free(g);
	plist_free(in);
	plist_free(back);
}

TEST(gro_round_trip_tcp4)
{
	check_round_trip(false, true, TH_ACK | TH_PSH);
	check_round_trip(false, false, TH_ACK);
}

TEST(gro_round_trip_tcp6)
{
	check_round_trip(true, true, TH_ACK | TH_PSH);
	check_round_trip(true, false, TH_ACK | TH_ECE);
}

TEST(gro_round_trip_kernel_segments)
{
	/* Cut a super-packet, coalesce the segments: the same super-packet, but
	 * for hdr_len, which the kernel fills with skb_headlen(). */
	struct offload_gro *g = gro_new_ok();
	static uint8_t pl[20000];
	struct flow f;
	size_t in_len, len;
	const uint8_t *w;
	int r;

	for (int v6 = 0; v6 <= 1; v6++) {
		flow_init(&f, v6, 11);
		fill_rnd(pl, sizeof(pl));
		in_len = tso_build(seg_in, &f, 12345, 678, TH_ACK | TH_PSH, pl, sizeof(pl), 1400,
				   false);
		r = seg(seg_in, in_len);
		CHECK_INT(r, ==, 15);
		offload_gro_reset(g);
		for (int i = 0; i < r; i++)
			CHECK(offload_gro_add(g, seg_out + seg_offs[i], seg_lens[i]));
		CHECK_INT(offload_gro_finish(g), ==, 1);
		w = offload_gro_get(g, 0, &len);
		CHECK_INT(len, ==, in_len);
		CHECK_INT(vnet_get(w).hdr_len, ==, (v6 ? 40 : 20) + 32);
		CHECK_MEM(w, seg_in, 2);
		CHECK_MEM(w + 4, seg_in + 4, in_len - 4);
	}
	offload_gro_free(g);
}

/* Runs in, expects writes made of these runs of packet indices ([first,
 * count], merged when count > 1), and checks that segmenting the writes
 * gives back in, flow by flow in order. */
struct run { size_t first, count; };

static void check_writes(const struct plist *in, const struct run *runs, size_t nruns)
{
	struct offload_gro *g = gro_new_ok();
	struct plist *back = plist_new(1 << 21), *want = plist_new(1 << 21);
	size_t n = gro_all(g, in);

	CHECK_INT(n, ==, nruns);
	for (size_t i = 0; i < nruns; i++) {
		size_t len;
		const uint8_t *w = offload_gro_get(g, i, &len);
		struct virtio_net_hdr h = vnet_get(w);

		for (size_t k = 0; k < runs[i].count; k++)
			plist_add(want, plist_at(in, runs[i].first + k), in->len[runs[i].first + k]);
		if (runs[i].count == 1) {
			check_lone(g, i, plist_at(in, runs[i].first), in->len[runs[i].first]);
			continue;
		}
		CHECK_INT(h.gso_type, !=, VIRTIO_NET_HDR_GSO_NONE);
		CHECK_INT(h.gso_size, ==, in->len[runs[i].first] - h.hdr_len);
	}
	gro_deliver(g, n, back);
	check_same_lists(want, back);
	offload_gro_free(g);
	plist_free(back);
	plist_free(want);
}

static struct plist *test_in;

static size_t push_tcp(const struct flow *f, uint32_t seq, uint16_t id, uint8_t flags,
		       size_t n)
{
	plist_push(test_in, tcp_build(plist_next(test_in), f, seq, id, flags,
				      gro_pl + (seq & 0xffff), n));
	return test_in->n - 1;
}

static void in_reset(void)
{
	if (!test_in)
		test_in = plist_new(1 << 21);
	test_in->n = test_in->used = 0;
	fill_rnd(gro_pl, sizeof(gro_pl));
}

TEST(gro_interleaved_flows_each_merge)
{
	/* Arrival a0 b0 c0 a1 b1 c1 a2 b2 a3 b3 a4 b4: three writes, ordered by
	 * their first packets, each flow whole and in order. */
	static const size_t by_flow[] = { 0, 3, 6, 8, 10, 1, 4, 7, 9, 11, 2, 5 };
	struct plist *want = plist_new(1 << 21), *back = plist_new(1 << 21);
	struct offload_gro *g = gro_new_ok();
	struct flow a, b, c;

	in_reset();
	flow_init(&a, false, 20);
	flow_init(&b, true, 21);
	flow_init(&c, false, 22);
	for (uint32_t i = 0; i < 5; i++) {
		push_tcp(&a, 1000 + i * 1000, (uint16_t)(50 + i), TH_ACK, 1000);
		push_tcp(&b, 9000 + i * 1200, 0, TH_ACK, 1200);
		if (i < 2)
			push_tcp(&c, 7 + i * 500, (uint16_t)(9 + i), TH_ACK, 500);
	}
	for (size_t i = 0; i < 12; i++)
		plist_add(want, plist_at(test_in, by_flow[i]), test_in->len[by_flow[i]]);
	CHECK_INT(gro_all(g, test_in), ==, 3);
	gro_deliver(g, 3, back);
	check_same_lists(want, back);
	offload_gro_free(g);
	plist_free(back);
	plist_free(want);
}

TEST(gro_sequence_gap_ends_merge)
{
	struct flow a;
	static const struct run runs[] = { { 0, 2 }, { 2, 2 } };

	in_reset();
	flow_init(&a, false, 23);
	push_tcp(&a, 100, 1, TH_ACK, 1000);
	push_tcp(&a, 1100, 2, TH_ACK, 1000);
	push_tcp(&a, 3100, 3, TH_ACK, 1000);	/* 2100 missing */
	push_tcp(&a, 4100, 4, TH_ACK, 1000);
	check_writes(test_in, runs, 2);
	/* Nor does a retransmission (seq going back) join. */
	in_reset();
	push_tcp(&a, 100, 1, TH_ACK, 1000);
	push_tcp(&a, 1100, 2, TH_ACK, 1000);
	push_tcp(&a, 100, 3, TH_ACK, 1000);
	{
		static const struct run r2[] = { { 0, 2 }, { 2, 1 } };
		check_writes(test_in, r2, 2);
	}
}

TEST(gro_control_flags_stand_alone)
{
	static const uint8_t flags[] = { TH_ACK | TH_FIN, TH_ACK | TH_RST, TH_SYN,
					 TH_ACK | TH_SYN, TH_ACK | TH_URG, TH_ACK | TH_CWR, 0 };
	struct flow a;

	for (size_t k = 0; k < sizeof(flags); k++) {
		/* a0 a1 X a3 a4: X alone, and a3 starts over after it. */
		static const struct run runs[] = { { 0, 2 }, { 2, 1 }, { 3, 2 } };

		in_reset();
		flow_init(&a, k & 1, 24);
		push_tcp(&a, 0, 1, TH_ACK, 1000);
		push_tcp(&a, 1000, 2, TH_ACK, 1000);
		push_tcp(&a, 2000, 3, flags[k], 1000);
		push_tcp(&a, 3000, 4, TH_ACK, 1000);
		push_tcp(&a, 4000, 5, TH_ACK, 1000);
		check_writes(test_in, runs, 3);
	}
}

TEST(gro_short_segment_ends_merge)
{
	struct flow a;
	static const struct run runs[] = { { 0, 3 }, { 3, 2 } };

	in_reset();
	flow_init(&a, true, 25);
	push_tcp(&a, 0, 0, TH_ACK, 1000);
	push_tcp(&a, 1000, 0, TH_ACK, 1000);
	push_tcp(&a, 2000, 0, TH_ACK, 600);	/* shorter: last of its write */
	push_tcp(&a, 2600, 0, TH_ACK, 1000);
	push_tcp(&a, 3600, 0, TH_ACK, 1000);
	check_writes(test_in, runs, 2);
}

TEST(gro_larger_segment_does_not_join)
{
	struct flow a;
	static const struct run runs[] = { { 0, 1 }, { 1, 2 } };

	in_reset();
	flow_init(&a, false, 26);
	push_tcp(&a, 0, 1, TH_ACK, 600);
	push_tcp(&a, 600, 2, TH_ACK, 1000);
	push_tcp(&a, 1600, 3, TH_ACK, 1000);
	check_writes(test_in, runs, 2);
}

TEST(gro_psh_only_last)
{
	struct flow a;
	static const struct run runs[] = { { 0, 3 }, { 3, 2 }, { 5, 1 } };

	in_reset();
	flow_init(&a, false, 27);
	push_tcp(&a, 0, 1, TH_ACK, 1000);
	push_tcp(&a, 1000, 2, TH_ACK, 1000);
	push_tcp(&a, 2000, 3, TH_ACK | TH_PSH, 1000);
	push_tcp(&a, 3000, 4, TH_ACK, 1000);
	push_tcp(&a, 4000, 5, TH_ACK | TH_PSH, 1000);
	push_tcp(&a, 5000, 6, TH_ACK | TH_PSH, 1000);	/* PSH first: alone */
	check_writes(test_in, runs, 3);
}

TEST(gro_header_differences_end_merge)
{
	/* Each changes one field the segmenter would copy from the first. */
	for (int what = 0; what < 11; what++) {
		static const struct run runs[] = { { 0, 2 }, { 2, 2 } };
		struct flow a, b;
		uint16_t id3 = 3;

		in_reset();
		flow_init(&a, what >= 8, 28);
		b = a;
		switch (what) {
		case 0: b.ack++; break;
		case 1: b.win++; break;
		case 2: b.ttl--; break;
		case 3: b.tos = 0x02; break;		/* ECT(0) vs not-ECT */
		case 4: b.tsval++; break;		/* options differ */
		case 5: b.df = false; break;
		case 6: id3 = 9; break;			/* id does not continue */
		case 7: b.ts = false; break;		/* options length */
		case 8: b.label ^= 1; break;
		case 9: b.ttl++; break;			/* hop limit */
		case 10: b.tos = 0x03; break;		/* CE mark */
		}
		push_tcp(&a, 0, 1, TH_ACK, 1000);
		push_tcp(&a, 1000, 2, TH_ACK, 1000);
		push_tcp(&b, 2000, id3, TH_ACK, 1000);
		push_tcp(&b, 3000, (uint16_t)(id3 + 1), TH_ACK, 1000);
		check_writes(test_in, runs, 2);
	}
}

TEST(gro_other_protocols_pass_through)
{
	struct flow a, u, i6;
	uint8_t pl[300];

	in_reset();
	fill_rnd(pl, sizeof(pl));
	flow_init(&a, false, 29);
	flow_init(&u, false, 30);
	flow_init(&i6, true, 31);
	/* a0 U a1 a2 I a3(alone: pure ACK) Uv6 -- expect a0+a1+a2 first. */
	push_tcp(&a, 0, 1, TH_ACK, 1000);
	plist_push(test_in, udp_build(plist_next(test_in), &u, 5, pl, sizeof(pl)));
	push_tcp(&a, 1000, 2, TH_ACK, 1000);
	push_tcp(&a, 2000, 3, TH_ACK, 1000);
	plist_push(test_in, icmp_build(plist_next(test_in), &i6, 6));
	push_tcp(&a, 3000, 4, TH_ACK, 0);
	{
		/* Reorder the expectation: a0 a1 a2 U I ack. */
		struct plist *want = plist_new(1 << 21);
		static const size_t idx[] = { 0, 2, 3, 1, 4, 5 };
		struct offload_gro *g = gro_new_ok();
		struct plist *back = plist_new(1 << 21);

		for (size_t k = 0; k < 6; k++)
			plist_add(want, plist_at(test_in, idx[k]), test_in->len[idx[k]]);
		CHECK_INT(gro_all(g, test_in), ==, 4);
		check_lone(g, 1, plist_at(test_in, 1), test_in->len[1]);
		check_lone(g, 2, plist_at(test_in, 4), test_in->len[4]);
		check_lone(g, 3, plist_at(test_in, 5), test_in->len[5]);
		gro_deliver(g, 4, back);
		check_same_lists(want, back);
		offload_gro_free(g);
		plist_free(back);
		plist_free(want);
	}
}

TEST(gro_ip_options_and_fragments)
{
	struct flow a;
	uint8_t *p;
	size_t i;

	/* a0 a1 [a2 with IP options] a3 a4: the option packet stands alone. */
	in_reset();
	flow_init(&a, false, 32);
	push_tcp(&a, 0, 1, TH_ACK, 1000);
	push_tcp(&a, 1000, 2, TH_ACK, 1000);
	p = plist_next(test_in);
	i = tcp_build(p + 4, &a, 2000, 3, TH_ACK, gro_pl, 1000);
	memmove(p, p + 4, 20);
	p[0] = 0x46;
	memset(p + 20, 1, 4);		/* four NOP options */
	xb_put16(p + 2, (uint16_t)(i + 4));
	xb_put16(p + 10, 0);
	xb_put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 24, 0)));
	plist_push(test_in, i + 4);
	CHECK(ref_packet_ok(p, i + 4));
	push_tcp(&a, 3000, 4, TH_ACK, 1000);
	push_tcp(&a, 4000, 5, TH_ACK, 1000);
	{
		static const struct run runs[] = { { 0, 2 }, { 2, 1 }, { 3, 2 } };
		check_writes(test_in, runs, 3);
	}
	/* Two packets with the same IP options continue each other, yet stay
	 * apart: the kernel coalesces only 20-byte IPv4 headers. */
	in_reset();
	for (uint32_t k = 0; k < 2; k++) {
		p = plist_next(test_in);
		i = tcp_build(p + 4, &a, k * 1000, (uint16_t)(1 + k), TH_ACK, gro_pl, 1000);
		memmove(p, p + 4, 20);
		p[0] = 0x46;
		memset(p + 20, 1, 4);
		xb_put16(p + 2, (uint16_t)(i + 4));
		xb_put16(p + 10, 0);
		xb_put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 24, 0)));
		plist_push(test_in, i + 4);
	}
	{
		static const struct run runs[] = { { 0, 1 }, { 1, 1 } };
		check_writes(test_in, runs, 2);
	}
	/* Bytes beyond the IP length (padding) keep a packet apart too. */
	in_reset();
	push_tcp(&a, 0, 1, TH_ACK, 1000);
	i = push_tcp(&a, 1000, 2, TH_ACK, 1000);
	memset(plist_at(test_in, i) + test_in->len[i], 0, 2);
	test_in->len[i] += 2;
	test_in->used += 2;
	push_tcp(&a, 2000, 3, TH_ACK, 1000);
	{
		static const struct run runs[] = { { 0, 1 }, { 1, 1 }, { 2, 1 } };
		check_writes(test_in, runs, 3);
	}
	/* a0 [fragment] a1: the fragment's flow is unknown, so nothing passes it. */
	for (int mf = 0; mf <= 1; mf++) {
		static const struct run runs[] = { { 0, 1 }, { 1, 1 }, { 2, 2 } };

		in_reset();
		push_tcp(&a, 0, 1, TH_ACK, 1000);
		p = plist_next(test_in);
		plist_push(test_in, tcp_build(p, &a, 1000, 2, TH_ACK, gro_pl, 1000));
		xb_put16(p + 6, mf ? 0x2000 : 0x0010);
		xb_put16(p + 10, 0);
		xb_put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 20, 0)));
		push_tcp(&a, 2000, 3, TH_ACK, 1000);
		push_tcp(&a, 3000, 4, TH_ACK, 1000);
		check_writes(test_in, runs, 3);
	}
	/* The same for an IPv6 packet whose extension headers hide its flow. */
	{
		static const struct run runs[] = { { 0, 1 }, { 1, 1 }, { 2, 2 } };
		struct flow b;

		in_reset();
		flow_init(&b, true, 33);
		push_tcp(&b, 0, 0, TH_ACK, 1000);
		p = plist_next(test_in);
		plist_push(test_in, tcp_build(p, &b, 1000, 0, TH_ACK, gro_pl, 1000));
		p[6] = IPPROTO_DSTOPTS;
		push_tcp(&b, 2000, 0, TH_ACK, 1000);
		push_tcp(&b, 3000, 0, TH_ACK, 1000);
		check_writes(test_in, runs, 3);
	}
}

/* Segments that carry IPv6 extension headers (cut from a TSO read with
 * hop-by-hop and destination options): the coalescer cannot read their flow
 * and merges none of them, so each is written alone and unchanged. */
TEST(gro_ext_header_segments_stand_alone)
{
	static struct run runs[8];
	static uint8_t pl[6000];
	struct flow f;
	size_t len;
	int n;

	flow_init(&f, true, 35);
	fill_rnd(pl, sizeof(pl));
	len = ext_tso(seg_in, &f, IPPROTO_HOPOPTS, ext_hbh_dst, 24, 1, TH_ACK, pl, sizeof(pl), 1200);
	n = seg(seg_in, len);
	CHECK_INT(n, ==, 5);
	in_reset();
	for (int i = 0; i < n; i++) {
		memcpy(plist_next(test_in), seg_out + seg_offs[i], seg_lens[i]);
		plist_push(test_in, seg_lens[i]);
		runs[i] = (struct run){ (size_t)i, 1 };
	}
	check_writes(test_in, runs, (size_t)n);
}

TEST(gro_total_size_cap)
{
	struct flow a;
	struct offload_gro *g = gro_new_ok();
	struct plist *back = plist_new(1 << 22);
	size_t n, len;

	in_reset();
	flow_init(&a, false, 34);
	for (uint32_t i = 0; i < 100; i++)
		push_tcp(&a, i * 1448, (uint16_t)i, TH_ACK, 1448);
	n = gro_all(g, test_in);
	/* 65535 - 52 bytes of payload hold 45 segments of 1448. */
	CHECK_INT(n, ==, 3);
	offload_gro_get(g, 0, &len);
	CHECK_INT(len, ==, HDR + 52 + 45 * 1448);
	offload_gro_get(g, 1, &len);
	CHECK_INT(len, ==, HDR + 52 + 45 * 1448);
	offload_gro_get(g, 2, &len);
	CHECK_INT(len, ==, HDR + 52 + 10 * 1448);
	gro_deliver(g, n, back);
	check_same_lists(test_in, back);
	offload_gro_free(g);
	plist_free(back);
}

TEST(gro_bad_checksums_never_merge)
{
	/* The kernel trusts a NEEDS_CSUM write, so a corrupt segment must not
	 * hide in one: it goes alone and the kernel drops it. */
	struct flow a;
	size_t i;

	for (int which = 0; which < 3; which++) {
		static const struct run r0[] = { { 0, 1 }, { 1, 2 } };		/* head bad */
		static const struct run r1[] = { { 0, 1 }, { 1, 1 }, { 2, 1 } };	/* middle bad */
		static const struct run r2[] = { { 0, 2 }, { 2, 1 } };		/* last bad */

		in_reset();
		flow_init(&a, which == 1, 35);
		for (uint32_t k = 0; k < 3; k++) {
			i = push_tcp(&a, k * 1000, (uint16_t)k, TH_ACK, 1000);
			if (k == (uint32_t)which)
				plist_at(test_in, i)[test_in->len[i] - 1] ^= 0x40;
		}
		if (which == 0)
			check_writes(test_in, r0, 2);
		else if (which == 1)
			check_writes(test_in, r1, 3);
		else
			check_writes(test_in, r2, 2);
	}
}

/* Concatenate write i of g, from offload_gro_get or offload_gro_iov. */
static size_t gro_write_bytes(const struct offload_gro *g, size_t i, bool iov, uint8_t *out)
{
	size_t len = 0;
	int n = 0;

	if (!iov) {
		const uint8_t *w = offload_gro_get(g, i, &len);

		CHECK(w != NULL);
		memcpy(out, w, len);
		return len;
	}
	{
		const struct iovec *v = offload_gro_iov(g, i, &n);

		CHECK(v != NULL);
		CHECK(offload_gro_get(g, i, &len) == NULL);
		len = 0;
		for (int k = 0; k < n; k++) {
			memcpy(out + len, v[k].iov_base, v[k].iov_len);
			len += v[k].iov_len;
		}
	}
	return len;
}

TEST(gro_trusted_merges_without_verifying)
{
	/* WireGuard's packets were authenticated: a segment joins without its
	 * checksum being summed, so one whose checksum its sender got wrong
	 * joins too (as in Linux's WireGuard, whose CHECKSUM_UNNECESSARY lets
	 * the kernel's GRO merge it); lone packets carry DATA_VALID. Cleared,
	 * the same batch verifies again: the bad segment goes alone. */
	static uint8_t w[70000];
	static const struct run untrusted[] = { { 0, 1 }, { 1, 1 }, { 2, 1 }, { 3, 1 } };
	struct offload_gro *g = gro_new_ok();
	struct plist *back = plist_new(1 << 21);
	struct flow a, u;
	size_t i, len, n, pl_at;

	for (int v6 = 0; v6 <= 1; v6++) {
		in_reset();
		flow_init(&a, v6, 36);
		flow_init(&u, v6, 37);
		for (uint32_t k = 0; k < 3; k++) {
			i = push_tcp(&a, k * 1000, (uint16_t)k, TH_ACK, 1000);
			if (k == 1)
				plist_at(test_in, i)[test_in->len[i] - 1] ^= 0x40;
		}
		plist_push(test_in, udp_build(plist_next(test_in), &u, 7, gro_pl, 300));
		offload_gro_set_flags(g, OFFLOAD_GRO_TRUSTED);
		n = gro_all(g, test_in);
		CHECK_INT(n, ==, 2);
		len = gro_write_bytes(g, 0, false, w);
		CHECK_INT(vnet_get(w).gso_type, ==, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
		CHECK_INT(vnet_get(w).flags, ==, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		pl_at = HDR + (v6 ? 40 : 20) + 32;
		CHECK_INT(len, ==, pl_at + 3000);
		for (uint32_t k = 0; k < 3; k++)	/* the payloads as sent, the bad byte too */
			CHECK_MEM(w + pl_at + k * 1000, plist_at(test_in, k) + (v6 ? 40 : 20) + 32, 1000);
		len = gro_write_bytes(g, 1, false, w);
		CHECK_INT(len, ==, HDR + test_in->len[3]);
		CHECK_INT(vnet_get(w).flags, ==, VIRTIO_NET_HDR_F_DATA_VALID);
		CHECK_INT(vnet_get(w).gso_type, ==, VIRTIO_NET_HDR_GSO_NONE);
		CHECK_MEM(w + HDR, plist_at(test_in, 3), test_in->len[3]);
		/* Segmented again, the good segments come back byte for byte. */
		back->n = back->used = 0;
		gro_deliver(g, 1, back);
		CHECK_INT(back->n, ==, 3);
		CHECK_MEM(plist_at(back, 0), plist_at(test_in, 0), test_in->len[0]);
		CHECK_MEM(plist_at(back, 2), plist_at(test_in, 2), test_in->len[2]);
		offload_gro_set_flags(g, 0);
		check_writes(test_in, untrusted, 4);	/* a fresh batch: untrusted */
		CHECK_INT(gro_all(g, test_in), ==, 4);	/* this one, cleared */
	}
	offload_gro_free(g);
	plist_free(back);
}

TEST(gro_iov_writes_equal_contiguous)
{
	/* The same batch built both ways, trusted or not: the iovecs of each
	 * write hold exactly the bytes of the contiguous write. */
	static uint8_t a_w[70000], b_w[70000];
	struct offload_gro *g = gro_new_ok(), *h = gro_new_ok();
	struct flow a, b, c;
	size_t n;

	for (unsigned trusted = 0; trusted <= OFFLOAD_GRO_TRUSTED; trusted++) {
		in_reset();
		flow_init(&a, false, 40);
		flow_init(&b, true, 41);
		flow_init(&c, false, 42);
		for (uint32_t i = 0; i < 6; i++) {
			push_tcp(&a, 1000 + i * 1000, (uint16_t)(50 + i), i == 5 ? TH_ACK | TH_PSH : TH_ACK, 1000);
			push_tcp(&b, 9000 + i * 1200, 0, TH_ACK, i == 5 ? 100 : 1200);
			if (i < 2)
				plist_push(test_in, udp_build(plist_next(test_in), &c, (uint16_t)i, gro_pl, 200));
		}
		offload_gro_set_flags(g, trusted);
		offload_gro_set_flags(h, trusted | OFFLOAD_GRO_IOV);
		n = gro_all(g, test_in);
		CHECK_INT(n, ==, 4);
		CHECK_INT(gro_all(h, test_in), ==, n);
		for (size_t i = 0; i < n; i++) {
			size_t la = gro_write_bytes(g, i, false, a_w), lb = gro_write_bytes(h, i, true, b_w);

			CHECK_INT(la, ==, lb);
			CHECK_MEM(a_w, b_w, la);
		}
		CHECK(offload_gro_iov(h, n, &(int){ 0 }) == NULL);
		CHECK(offload_gro_iov(g, 0, &(int){ 0 }) == NULL);
		/* Taken by reference, each packet behind HDR free bytes: the
		 * same writes, and their iovecs point into the caller's bytes. */
		{
			static uint8_t own[1 << 20];
			size_t at = 0;

			offload_gro_reset(h);
			for (size_t i = 0; i < test_in->n; i++) {
				memcpy(own + at + HDR, plist_at(test_in, i), test_in->len[i]);
				CHECK(offload_gro_add_ref(h, own + at + HDR, test_in->len[i]));
				at += HDR + test_in->len[i];
			}
			CHECK_INT(offload_gro_finish(h), ==, n);
			for (size_t i = 0; i < n; i++) {
				size_t la = gro_write_bytes(g, i, false, a_w), lb = gro_write_bytes(h, i, true, b_w);
				int nv;
				const struct iovec *v = offload_gro_iov(h, i, &nv);

				CHECK_INT(la, ==, lb);
				CHECK_MEM(a_w, b_w, la);
				for (int k = 0; k < nv; k++)
					CHECK((uint8_t *)v[k].iov_base >= own &&
					      (uint8_t *)v[k].iov_base + v[k].iov_len <= own + at);
			}
		}
	}
	offload_gro_free(g);
	offload_gro_free(h);
}

TEST(gro_capacity_and_reset)
{
	struct offload_gro *g = offload_gro_new(OFFLOAD_GRO_MIN_BYTES);
	static uint8_t big[65536];
	struct flow a;
	size_t len, n = 0;

	CHECK(offload_gro_new(OFFLOAD_GRO_MIN_BYTES - 1) == NULL);
	CHECK(g != NULL);
	flow_init(&a, false, 36);
	len = tcp_build(big, &a, 0, 0, TH_ACK, gro_pl, 65535 - 52);
	CHECK(offload_gro_add(g, big, len));		/* the largest fits an empty batch */
	CHECK(!offload_gro_add(g, big, 20));		/* and fills it */
	CHECK(!offload_gro_add(g, big, 65536));
	offload_gro_reset(g);
	CHECK(!offload_gro_add(g, big, 65536));		/* never fits */
	CHECK(!offload_gro_add(g, big, 0));
	len = tcp_build(big, &a, 0, 0, TH_ACK, gro_pl, 1000);
	while (offload_gro_add(g, big, len))
		n++;
	CHECK_INT(n, ==, OFFLOAD_GRO_MIN_BYTES / (HDR + len));
	CHECK_INT(offload_gro_finish(g), ==, n);	/* the same segment: none join */
	CHECK_INT(offload_gro_finish(g), ==, n);
	CHECK(!offload_gro_add(g, big, len));		/* finished until reset */
	offload_gro_reset(g);
	CHECK_INT(offload_gro_finish(g), ==, 0);
	offload_gro_reset(g);
	for (size_t k = 0; k < OFFLOAD_GRO_MAX_PKTS + 1; k++)
		CHECK_INT(offload_gro_add(g, big, 20), ==, k < OFFLOAD_GRO_MAX_PKTS);
	offload_gro_free(g);
	offload_gro_free(NULL);
}

/* By reference into a contiguous batch: the merged packets are copied into
 * the batch's own buffer (max_bytes), so add_ref must say "full" before they
 * outgrow it, as add does. Four 30000-byte segments of one flow make two
 * merged packets of 60052 bytes each: more than the smallest batch holds.
 * Every batch is written, reset and refilled as receive.c's deliver() does,
 * and what it writes must cut back into the segments and fit the buffer. */
TEST(gro_add_ref_contiguous_bounded)
{
	static uint8_t own[4 * (HDR + 70000)];
	struct plist *in = plist_new(1 << 20), *back = plist_new(1 << 21);
	struct offload_gro *g = offload_gro_new(OFFLOAD_GRO_MIN_BYTES);
	struct flow a;

	CHECK(g != NULL);
	flow_init(&a, false, 50);
	for (unsigned trusted = 0; trusted <= OFFLOAD_GRO_TRUSTED; trusted++) {
		size_t at = 0, i = 0, writes = 0;

		in->n = in->used = back->n = back->used = 0;
		flow_segments(in, &a, 7000, 300, 4, 30000, 30000, TH_ACK, gro_pl);
		offload_gro_reset(g);
		offload_gro_set_flags(g, trusted);
		while (i <= in->n) {
			size_t n, bytes = 0;

			if (i < in->n) {
				memcpy(own + at + HDR, plist_at(in, i), in->len[i]);
				if (offload_gro_add_ref(g, own + at + HDR, in->len[i])) {
					at += HDR + in->len[i];
					i++;
					continue;
				}
			}
			n = offload_gro_finish(g);
			CHECK_INT(n, >=, 1);
			for (size_t k = 0; k < n; k++) {
				size_t len;

				CHECK(offload_gro_get(g, k, &len) != NULL);
				bytes += len;
			}
			CHECK_INT(bytes, <=, OFFLOAD_GRO_MIN_BYTES);
			gro_deliver(g, n, back);
			writes += n;
			offload_gro_reset(g);
			if (i == in->n)
				break;
		}
		CHECK_INT(writes, ==, 2);
		check_same_lists(in, back);
	}
	offload_gro_free(g);
	plist_free(in);
	plist_free(back);
}

/* ---- Randomized: streams through coalescing and back ---- */

/* Which flow a packet is, for order checks: version, addresses, protocol,
 * ports. 0 when it cannot be told (fragments, IPv6 extension headers): such
 * a packet must keep its place relative to every packet. */
static size_t order_key(const uint8_t *p, size_t len, uint8_t key[48])
{
	size_t iphl = ip_hl(p), n;
	uint8_t proto = ip_proto(p);

	if (!is_v6(p) && (xb_get16(p + 6) & 0x3fff))
		return 0;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMP &&
	    proto != IPPROTO_ICMPV6)
		return 0;
	n = is_v6(p) ? 32 : 8;
	key[0] = p[0] >> 4;
	key[1] = proto;
	memcpy(key + 2, p + (is_v6(p) ? 8 : 12), n);
	memset(key + 2 + n, 0, 4);
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) && len >= iphl + 4)
		memcpy(key + 2 + n, p + iphl, 4);
	return 6 + n;
}

struct stream {
	struct flow f;
	uint32_t seq;
	uint16_t id, mss;
};

/* One packet of stream s, of a kind drawn at random, appended to test_in. */
static void stream_step(struct stream *s)
{
	static const uint8_t ctl[] = { TH_ACK | TH_FIN, TH_ACK | TH_RST, TH_SYN, TH_ACK | TH_URG,
				       TH_ACK | TH_CWR, TH_ACK | TH_PSH | TH_FIN };
	size_t r = rnd_below(100), n = s->mss, i;
	uint8_t flags = TH_ACK, *p;

	if (r < 8)
		n = 1 + rnd_below(s->mss);			/* short */
	else if (r < 12)
		flags |= TH_PSH;
	else if (r < 14)
		s->seq += (uint32_t)rnd_below(5000);		/* gap */
	else if (r < 17)
		flags = ctl[rnd_below(sizeof(ctl))];
	else if (r < 20)
		n = 0;						/* pure ACK */
	else if (r < 22)
		s->f.ack += 1460;
	else if (r < 23)
		s->f.win = (uint16_t)rnd();
	else if (r < 24)
		s->f.tsval++;
	else if (r < 25)
		s->id += 7;
	else if (r < 26)
		s->seq -= (uint32_t)rnd_below(3000);		/* retransmission */
	else if (r < 27)
		s->f.ttl--;
	if (r >= 27 && r < 31) {			/* other protocols, same hosts */
		p = plist_next(test_in);
		plist_push(test_in, r & 1 ? udp_build(p, &s->f, s->id++, gro_pl, rnd_below(900))
					  : icmp_build(p, &s->f, s->id++));
		return;
	}
	i = push_tcp(&s->f, s->seq, s->id, flags, n);
	s->seq += (uint32_t)n;
	s->id++;
	p = plist_at(test_in, i);
	if (r >= 31 && r < 33) {
		p[test_in->len[i] - 1] ^= 1;			/* corrupt */
	} else if (r == 33) {					/* flow hidden */
		if (s->f.v6) {
			p[6] = IPPROTO_DSTOPTS;
		} else {
			xb_put16(p + 6, 0x2000);
			xb_put16(p + 10, 0);
			xb_put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 20, 0)));
		}
	}
}

/* Every packet came back once, in place, and flows kept their order. */
static void check_order(const struct plist *in, const struct plist *back)
{
	static size_t from[4096];
	static bool used[4096];
	uint8_t ka[48], kb[48];

	CHECK_INT(back->n, ==, in->n);
	memset(used, 0, sizeof(used));
	for (size_t b = 0; b < back->n; b++) {
		size_t i = 0;

		while (i < in->n && (used[i] || in->len[i] != back->len[b] ||
				     memcmp(plist_at(in, i), plist_at(back, b), in->len[i])))
			i++;
		if (i == in->n)
			xb_test_fail(__FILE__, __LINE__, "write %zu is no packet that went in", b);
		used[i] = true;
		from[b] = i;
	}
	for (size_t b = 0; b < back->n; b++) {
		size_t kl = order_key(plist_at(back, b), back->len[b], kb);

		for (size_t e = b + 1; e < back->n; e++) {
			size_t el = order_key(plist_at(back, e), back->len[e], ka);
			bool related = !kl || !el || (kl == el && !memcmp(ka, kb, kl));

			if (related && from[e] < from[b])
				xb_test_fail(__FILE__, __LINE__, "packet %zu passed packet %zu",
					     from[e], from[b]);
		}
	}
}

TEST(gro_random_streams_round_trip)
{
	struct plist *back = plist_new(1 << 22);
	size_t packets = 0, writes = 0;

	rng_state = 0x5eed;
	in_reset();
	for (int round = 0; round < 300; round++) {
		struct stream st[6];
		size_t nst = 1 + rnd_below(6), npk = 20 + rnd_below(400), n = 0;
		struct offload_gro *g = offload_gro_new(OFFLOAD_GRO_MIN_BYTES + rnd_below(300000));

		test_in->n = test_in->used = 0;
		back->n = back->used = 0;
		for (size_t k = 0; k < nst; k++) {
			flow_init(&st[k].f, rnd() & 1, (unsigned)(k + 40));
			st[k].f.ts = rnd() & 1;
			st[k].seq = (uint32_t)rnd();
			st[k].id = (uint16_t)rnd();
			st[k].mss = (uint16_t)(100 + rnd_below(1349));
		}
		while (test_in->n < npk)
			stream_step(&st[rnd_below(rnd() & 1 ? 1 : nst)]);	/* bursts too */
		/* Batches as a writer makes them: full means write out and go on. */
		for (size_t i = 0; i < test_in->n; i++) {
			if (offload_gro_add(g, plist_at(test_in, i), test_in->len[i]))
				continue;
			n = offload_gro_finish(g);
			gro_deliver(g, n, back);
			writes += n;
			offload_gro_reset(g);
			CHECK(offload_gro_add(g, plist_at(test_in, i), test_in->len[i]));
		}
		n = offload_gro_finish(g);
		gro_deliver(g, n, back);
		writes += n;
		packets += test_in->n;
		check_order(test_in, back);
		offload_gro_free(g);
	}
	printf("# %zu packets in %zu writes\n", packets, writes);
	CHECK_INT(writes * 2, <, packets);	/* merging did happen */
	plist_free(back);
}

/* ---- Fuzzing: mutated reads must be refused or segmented correctly ---- */

/* A valid read of a random kind into b; returns its length. */
static size_t random_read(uint8_t *b)
{
	static uint8_t pl[6000];
	struct flow f;
	size_t n = 1 + rnd_below(rnd() & 1 ? 3000 : 200), len, iphl;
	uint16_t mss = (uint16_t)(1 + rnd_below(rnd() & 1 ? 1500 : 40));
	int kind = (int)rnd_below(5);

	flow_init(&f, rnd() & 1, 50);
	f.ts = rnd() & 1;
	fill_rnd(pl, n);
	iphl = f.v6 ? 40 : 20;
	switch (kind) {
	case 0:
	case 1:
		return tso_build(b, &f, (uint32_t)rnd(), (uint16_t)rnd(), (uint8_t)rnd() | TH_ACK,
				 pl, n, mss, kind);
	case 2:
		len = udp_build(b + HDR, &f, (uint16_t)rnd(), pl, n);
		make_partial(b + HDR, len, 6);
		vnet_put(b, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4,
			 (uint16_t)(iphl + 8), mss, (uint16_t)iphl, 6);
		return HDR + len;
	case 3:
		len = tcp_build(b + HDR, &f, 1, 2, TH_ACK, pl, n);
		make_partial(b + HDR, len, 16);
		vnet_put(b, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)iphl, 16);
		return HDR + len;
	default:
		len = tcp_build(b + HDR, &f, 1, 2, TH_ACK, pl, n);
		vnet_put(b, 0, 0, 0, 0, 0, 0);
		return HDR + len;
	}
}

static void mutate(uint8_t *b, size_t *len)
{
	size_t k = 1 + rnd_below(4);
	struct virtio_net_hdr h;

	for (size_t i = 0; i < k; i++) {
		size_t at = rnd() & 1 ? rnd_below(HDR + 80) : rnd_below(*len);

		if (at < *len)
			b[at] = rnd() & 1 ? (uint8_t)rnd() : b[at] ^ (uint8_t)(1u << rnd_below(8));
	}
	if (rnd_below(8) == 0) {
		memcpy(&h, b, HDR);
		switch (rnd_below(4)) {
		case 0: h.gso_size = (uint16_t)rnd(); break;
		case 1: h.csum_start = (uint16_t)rnd_below(100); break;
		case 2: h.csum_offset = (uint16_t)rnd_below(40); break;
		default: h.gso_type = (uint8_t)rnd_below(8); break;
		}
		memcpy(b, &h, HDR);
	}
	if (rnd_below(8) == 0)
		*len = rnd_below(*len + 1);
}

/* Properties of an accepted read; the vnet header is the input's. */
static void check_accepted(const uint8_t *in, size_t in_len, const uint8_t *out,
			   size_t out_cap, const size_t *offs, const size_t *lens, int r,
			   int max_segs)
{
	struct virtio_net_hdr h = vnet_get(in);
	size_t end = 0, payload = 0, hl = 0;

	CHECK_INT(r, <=, max_segs);
	for (int i = 0; i < r; i++) {
		CHECK_INT(offs[i], ==, end);
		end += lens[i];
		CHECK_INT(end, <=, out_cap);
		if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE)
			continue;
		CHECK(ref_packet_ok(out + offs[i], lens[i]));
		hl = h.csum_start + (ip_proto(out) == IPPROTO_TCP ?
				     (size_t)(out[h.csum_start + 12] >> 4) * 4 : 8);
		CHECK_INT(lens[i] - hl, <=, h.gso_size);
		payload += lens[i] - hl;
	}
	if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		CHECK_INT(r, ==, 1);
		CHECK_INT(lens[0], ==, in_len - HDR);
	} else {
		CHECK_INT(payload, ==, in_len - HDR - hl);
		CHECK_MEM(out + offs[r - 1] + hl, in + in_len - (lens[r - 1] - hl),
			  lens[r - 1] - hl);
	}
}

TEST(segment_fuzz_mutations)
{
	static uint8_t base[HDR + 7000];
	size_t accepted = 0, iters = 100000;

	rng_state = 0xf022;
	for (size_t it = 0; it < iters; it++) {
		size_t len = random_read(base), need;
		int max_segs = 1 + (int)rnd_below(rnd() & 1 ? 8 : 300), r;
		uint8_t *in, *out;
		size_t *offs = malloc(sizeof(size_t) * (size_t)max_segs);
		size_t *lens = malloc(sizeof(size_t) * (size_t)max_segs);

		if (rnd_below(4))
			mutate(base, &len);
		/* Exact-size heap blocks, so ASan sees any byte out of bounds. */
		in = malloc(len ? len : 1);
		memcpy(in, base, len);
		need = rnd_below(4) ? (size_t)max_segs * 120 + len : rnd_below(len + 200);
		out = malloc(need ? need : 1);
		r = offload_segment(in, len, out, need, offs, lens, max_segs);
		CHECK(r == -1 || r >= 1);
		if (r >= 1) {
			accepted++;
			check_accepted(in, len, out, need, offs, lens, r, max_segs);
		}
		free(in);
		free(out);
		free(offs);
		free(lens);
	}
	printf("# %zu of %zu reads accepted\n", accepted, iters);
	CHECK_INT(accepted, >, iters / 10);
}

TEST(gro_fuzz_mutations)
{
	/* Hostile packets into a batch: nothing merged that does not verify. */
	struct offload_gro *g = offload_gro_new(OFFLOAD_GRO_MIN_BYTES);
	static size_t offs[256], lens[256];
	static uint8_t out[140000];
	struct stream st[3];
	size_t merged = 0;

	rng_state = 0x6a0;
	in_reset();
	for (size_t k = 0; k < 3; k++) {
		flow_init(&st[k].f, k == 1, (unsigned)(k + 60));
		st[k].seq = (uint32_t)rnd();
		st[k].id = 1;
		st[k].mss = 700;
	}
	for (int round = 0; round < 400; round++) {
		test_in->n = test_in->used = 0;
		offload_gro_reset(g);
		while (test_in->n < 60)
			stream_step(&st[rnd_below(3)]);
		for (size_t i = 0; i < test_in->n; i++) {
			size_t len = test_in->len[i];
			uint8_t *p = plist_at(test_in, i);

			if (rnd_below(3) == 0) {
				p[rnd_below(len < 80 ? len : 80)] ^= (uint8_t)(1u << rnd_below(8));
				if (rnd_below(4) == 0)
					len = rnd_below(len + 1);
			}
			if (len && !offload_gro_add(g, p, len))
				break;
		}
		for (size_t i = 0, n = offload_gro_finish(g); i < n; i++) {
			size_t wl;
			const uint8_t *w = offload_gro_get(g, i, &wl);
			int r = offload_segment(w, wl, out, sizeof(out), offs, lens, 256);

			if (vnet_get(w).gso_type == VIRTIO_NET_HDR_GSO_NONE)
				continue;
			merged++;
			CHECK_INT(r, >=, 2);
			for (int k = 0; k < r; k++)
				CHECK(ref_packet_ok(out + offs[k], lens[k]));
		}
	}
	printf("# %zu merged writes\n", merged);
	CHECK_INT(merged, >, 100);
	offload_gro_free(g);
}

/* ---- Speed ---- */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

TEST(bench)
{
	static uint8_t pl[65535];
	struct offload_gro *g = gro_new_ok();
	const int iters = 2000;
	struct flow f;
	size_t len, n = 65535 - 52;
	volatile uint16_t sink = 0;
	double t0, t1, t2, t3;
	int r = 0;

	flow_init(&f, false, 70);
	fill_rnd(pl, sizeof(pl));
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, n, 1448, false);
	t0 = now_ns();
	for (int i = 0; i < iters; i++)
		sink = (uint16_t)(sink + offload_csum(seg_in, len, (uint32_t)i));
	t1 = now_ns();
	for (int i = 0; i < iters; i++)
		r = seg(seg_in, len);
	t2 = now_ns();
	CHECK_INT(r, ==, 46);
	for (int i = 0; i < iters; i++) {
		offload_gro_reset(g);
		for (int k = 0; k < r; k++)
			offload_gro_add(g, seg_out + seg_offs[k], seg_lens[k]);
		CHECK_INT(offload_gro_finish(g), ==, 1);
	}
	t3 = now_ns();
	printf("# checksum: %.3f ns/byte; segment 64 KB into 46: %.2f us, %.3f ns/byte; "
	       "coalesce 46 into 1: %.2f us, %.3f ns/byte\n",
	       (t1 - t0) / iters / (double)len, (t2 - t1) / iters / 1000,
	       (t2 - t1) / iters / (double)len, (t3 - t2) / iters / 1000,
	       (t3 - t2) / iters / (double)len);
	offload_gro_free(g);
	(void)sink;
}

/* ---- The real kernel ----
 *
 *   [this test] --xbo0 (vnet hdr, CSUM|TSO4|TSO6)--> kernel --xbo1 (plain)--> [this test]
 *   192.0.2.2, 2001:db8:1::2     192.0.2.1, 2001:db8:1::1     198.51.100.2, 2001:db8:2::2
 *
 * In a network namespace of our own, entered with unshare() and left with
 * setns() to the saved original; it vanishes with its last descriptor. We
 * write super-packets into xbo0 and read back what the kernel made of them:
 * segments forwarded to xbo1, which has no offloads, so the kernel cuts and
 * checksums them in software from our header and pseudo-header sum; and
 * data delivered to a local socket. The socket's answer is a TSO read.
 */

static struct {
	bool inside;
	int home, t0, t1;
} kn = { false, -1, -1, -1 };

static void knet_down(void)
{
	if (kn.t0 >= 0)
		close(kn.t0);
	if (kn.t1 >= 0)
		close(kn.t1);
	kn.t0 = kn.t1 = -1;
	if (kn.inside && setns(kn.home, CLONE_NEWNET) == 0)
		kn.inside = false;
	if (kn.home >= 0)
		close(kn.home);
	kn.home = -1;
}

static int tun_make(const char *name, bool offload)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    (offload && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool put_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(s, f) >= 0;

	return f && !fclose(f) && ok;
}

static void knet_up(void)
{
	static const char *setup =
		"ip link set lo up && "
		"ip addr add 192.0.2.1/24 dev xbo0 && "
		"ip -6 addr add 2001:db8:1::1/64 dev xbo0 nodad && "
		"ip link set xbo0 up && "
		"ip addr add 198.51.100.1/24 dev xbo1 && "
		"ip -6 addr add 2001:db8:2::1/64 dev xbo1 nodad && "
		"ip link set xbo1 up";

	knet_down();
	if (geteuid() != 0)
		SKIP("not root: a network namespace and TUN devices need it");
	if (access("/dev/net/tun", R_OK | W_OK))
		SKIP("no /dev/net/tun");
	if (system("ip -V >/dev/null 2>&1"))
		SKIP("no ip(8)");
	kn.home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	CHECK(kn.home >= 0);
	if (unshare(CLONE_NEWNET))
		SKIP("unshare(CLONE_NEWNET): %s", strerror(errno));
	kn.inside = true;
	kn.t0 = tun_make("xbo0", true);
	if (kn.t0 < 0)
		SKIP("TUN with IFF_VNET_HDR and TUNSETOFFLOAD: %s", strerror(errno));
	kn.t1 = tun_make("xbo1", false);
	CHECK(kn.t1 >= 0);
	CHECK_INT(system(setup), ==, 0);
	CHECK(put_file("/proc/sys/net/ipv4/ip_forward", "1"));
	CHECK(put_file("/proc/sys/net/ipv6/conf/all/forwarding", "1"));
}

/* One packet from fd, or 0 after ms milliseconds of nothing. */
static size_t tun_get(int fd, uint8_t *b, size_t cap, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	n = read(fd, b, cap);
	return n > 0 ? (size_t)n : 0;
}

/* The next TCP packet for port from xbo1 (plain) or xbo0 (a vnet read, made
 * whole with offload_segment; GSO reads are counted and split). */
static bool is_tcp_to(const uint8_t *ip, size_t len, uint16_t port)
{
	return len >= 40 && ip_proto(ip) == IPPROTO_TCP && len >= ip_hl(ip) + 20 &&
	       xb_get16(ip + ip_hl(ip) + 2) == port;
}

static void write_all_gro(int fd, const struct plist *in, size_t want_writes)
{
	struct offload_gro *g = gro_new_ok();
	size_t n = gro_all(g, in);

	CHECK_INT(n, ==, want_writes);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const uint8_t *w = offload_gro_get(g, i, &len);

		CHECK_INT(write(fd, w, len), ==, len);
	}
	offload_gro_free(g);
}

static void kernel_forward(bool v6)
{
	static uint8_t b[70000];
	struct plist *want;
	struct flow f;
	size_t got = 0, len;

	knet_up();		/* may skip: allocate nothing before */
	want = plist_new(1 << 21);
	in_reset();
	flow_init(&f, v6, 0);		/* 192.0.2.2 -> 198.51.100.2 */
	flow_segments(test_in, &f, 0x7ffffe00, 4242, 12, 1200, 345, TH_ACK | TH_PSH, gro_pl);
	f.ttl--;			/* what forwarding changes */
	flow_segments(want, &f, 0x7ffffe00, 4242, 12, 1200, 345, TH_ACK | TH_PSH, gro_pl);
	write_all_gro(kn.t0, test_in, 1);
	while (got < want->n && (len = tun_get(kn.t1, b, sizeof(b), 3000))) {
		if (!is_tcp_to(b, len, f.dport))
			continue;	/* router solicitations and such */
		CHECK_INT(len, ==, want->len[got]);
		CHECK_MEM(b, plist_at(want, got), len);
		got++;
	}
	CHECK_INT(got, ==, want->n);
	plist_free(want);
	knet_down();
}

TEST(kernel_forwards_coalesced_tcp4)
{
	kernel_forward(false);
}

TEST(kernel_forwards_coalesced_tcp6)
{
	kernel_forward(true);
}

/* A TCP connection between a local socket and us at the far end of xbo0. */
struct conn {
	struct flow f;		/* our side: src is us */
	int ls, s;
	uint32_t our_seq, their_next;
};

/* Read xbo0 until a TCP packet for us; made whole by offload_segment into
 * seg_out. Returns the number of segments, 0 on timeout. */
static int read_for_us(const struct conn *c, int ms)
{
	static uint8_t b[HDR + 70000];
	size_t len;
	int r;

	while ((len = tun_get(kn.t0, b, sizeof(b), ms))) {
		if (!is_tcp_to(b + HDR, len - HDR, c->f.sport))
			continue;
		r = offload_segment(b, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 256);
		CHECK_INT(r, >=, 1);
		for (int i = 0; i < r; i++)
			CHECK(ref_packet_ok(seg_out + seg_offs[i], seg_lens[i]));
		return r;
	}
	return 0;
}

static void send_plain(const struct conn *c, uint8_t flags)
{
	uint8_t b[HDR + 100] = { 0 };
	size_t len = tcp_build(b + HDR, &c->f, c->our_seq, 1, flags, NULL, 0);

	CHECK_INT(write(kn.t0, b, HDR + len), ==, HDR + len);
}

static void conn_open(struct conn *c, bool v6)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct pollfd p;
	const uint8_t *t;
	int one = 1;

	flow_init(&c->f, v6, 0);
	inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? "2001:db8:1::1" : "192.0.2.1", c->f.dst);
	c->f.dport = 5001;
	c->f.ts = false;	/* no options: MSS 536 / 1220 by default */
	c->f.win = 65535;
	c->f.ack = 0;
	c->ls = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c->ls >= 0);
	setsockopt(c->ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(5001);
		memcpy(&s6->sin6_addr, c->f.dst, 16);
	} else {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(5001);
		memcpy(&s4->sin_addr, c->f.dst, 4);
	}
	CHECK_INT(bind(c->ls, (struct sockaddr *)&ss, v6 ? sizeof(*s6) : sizeof(*s4)), ==, 0);
	CHECK_INT(listen(c->ls, 1), ==, 0);
	c->our_seq = 1000;
	send_plain(c, TH_SYN);
	CHECK_INT(read_for_us(c, 3000), ==, 1);
	t = seg_out + ip_hl(seg_out);
	CHECK_INT(t[13], ==, TH_SYN | TH_ACK);
	CHECK_INT(xb_get32(t + 8), ==, 1001);
	c->our_seq = 1001;
	c->their_next = xb_get32(t + 4) + 1;
	c->f.ack = c->their_next;
	send_plain(c, TH_ACK);
	p = (struct pollfd){ .fd = c->ls, .events = POLLIN };
	CHECK_INT(poll(&p, 1, 3000), ==, 1);
	c->s = accept(c->ls, NULL, NULL);
	CHECK(c->s >= 0);
}

/* Our super-packet into the local socket: the bytes must arrive intact. */
static void conn_push(struct conn *c, size_t segs, size_t mss)
{
	static uint8_t got[70000];
	size_t have = 0, n = segs * mss;
	struct pollfd p = { .fd = c->s, .events = POLLIN };
	ssize_t r;

	in_reset();
	flow_segments(test_in, &c->f, c->our_seq, 7, segs, mss, mss, TH_ACK | TH_PSH, gro_pl);
	write_all_gro(kn.t0, test_in, 1);
	while (have < n && poll(&p, 1, 3000) == 1 && (r = read(c->s, got + have, n - have)) > 0)
		have += (size_t)r;
	CHECK_INT(have, ==, n);
	CHECK_MEM(got, gro_pl, n);
	c->our_seq += (uint32_t)n;
}

/* The socket's bytes to us: the kernel hands TSO super-packets to xbo0.
 * The socket does not block: we are the peer that must ack. */
static void conn_pull(struct conn *c, size_t n)
{
	static uint8_t sent[200000], got[200000];
	size_t have = 0, gso_reads = 0, out = 0;
	ssize_t w;
	int r;

	fill_rnd(sent, n);
	CHECK_INT(fcntl(c->s, F_SETFL, O_NONBLOCK), ==, 0);
	for (;;) {
		if (out < n && (w = write(c->s, sent + out, n - out)) > 0)
			out += (size_t)w;
		if (have == n || (r = read_for_us(c, 3000)) == 0)
			break;
		gso_reads += r > 1;
		for (int i = 0; i < r; i++) {
			const uint8_t *ip = seg_out + seg_offs[i], *t = ip + ip_hl(ip);
			size_t hl = ip_hl(ip) + (size_t)(t[12] >> 4) * 4, pay = seg_lens[i] - hl;

			if (pay == 0 || xb_get32(t + 4) != c->their_next)
				continue;	/* acks; anything out of order comes again */
			CHECK_INT(have + pay, <=, n);
			memcpy(got + have, ip + hl, pay);
			have += pay;
			c->their_next += (uint32_t)pay;
		}
		c->f.ack = c->their_next;
		send_plain(c, TH_ACK);
	}
	CHECK_INT(out, ==, n);
	CHECK_INT(have, ==, n);
	CHECK_MEM(got, sent, n);
	printf("# %zu bytes from the kernel in %zu TSO reads and others\n", n, gso_reads);
	CHECK_INT(gso_reads, >, 0);
}

static void kernel_local(bool v6)
{
	struct conn c;

	knet_up();
	conn_open(&c, v6);
	conn_push(&c, 20, v6 ? 1220 : 536);
	conn_pull(&c, 150000);
	close(c.s);
	close(c.ls);
	knet_down();
}

TEST(kernel_local_socket_tcp4)
{
	kernel_local(false);
}

TEST(kernel_local_socket_tcp6)
{
	kernel_local(true);
}

/* A local TCP socket with a sticky destination options header (as
 * IPV6_DSTOPTS sets it, root only): the kernel's TSO reads carry the header
 * before TCP, within hdr_len, and are cut into segments that each carry it
 * with a valid checksum; all bytes arrive. Before extension headers were
 * walked every such read was refused and the flow stalled. */
TEST(kernel_local_socket_tcp6_dstopts)
{
	static const uint8_t opt[8] = { 0, 0, 1, 4, 0, 0, 0, 0 };	/* PadN */
	static uint8_t sent[100000], got[100000], b[HDR + 70000];
	const size_t n = sizeof(sent), th = 40 + 8;
	size_t out = 0, have = 0, gso_reads = 0, len;
	struct conn c;
	ssize_t w;

	knet_up();
	conn_open(&c, true);
	CHECK_INT(setsockopt(c.s, IPPROTO_IPV6, IPV6_DSTOPTS, opt, sizeof(opt)), ==, 0);
	fill_rnd(sent, n);
	CHECK_INT(fcntl(c.s, F_SETFL, O_NONBLOCK), ==, 0);
	while (have < n) {
		struct virtio_net_hdr h;
		int r;

		if (out < n && (w = write(c.s, sent + out, n - out)) > 0)
			out += (size_t)w;
		if (!(len = tun_get(kn.t0, b, sizeof(b), 3000)))
			break;
		if (len < HDR + th + 20 || b[HDR] >> 4 != 6 || b[HDR + 6] != IPPROTO_DSTOPTS)
			continue;	/* router solicitations and such */
		h = vnet_get(b);
		CHECK_INT(b[HDR + 40], ==, IPPROTO_TCP);
		if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
			CHECK_INT(h.hdr_len, >=, th);
		r = offload_segment(b, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 256);
		CHECK_INT(r, >=, 1);
		gso_reads += r > 1;
		for (int i = 0; i < r; i++) {
			const uint8_t *ip = seg_out + seg_offs[i], *t = ip + th;
			size_t l = seg_lens[i], hl = th + (size_t)(t[12] >> 4) * 4;

			CHECK_MEM(ip + 40 + 1, b + HDR + 40 + 1, 7);	/* the options */
			CHECK_INT(xb_get16(ip + 4), ==, l - 40);
			CHECK_INT(ref_fold(ref_sum(t, l - th, ref_pseudo(ip, IPPROTO_TCP, l - th))),
				  ==, 0xffff);
			if (l == hl || xb_get32(t + 4) != c.their_next)
				continue;
			CHECK_INT(have + (l - hl), <=, n);
			memcpy(got + have, ip + hl, l - hl);
			have += l - hl;
			c.their_next += (uint32_t)(l - hl);
		}
		c.f.ack = c.their_next;
		send_plain(&c, TH_ACK);
	}
	CHECK_INT(out, ==, n);
	CHECK_INT(have, ==, n);
	CHECK_MEM(got, sent, n);
	printf("# %zu bytes with destination options in %zu TSO reads and others\n", n, gso_reads);
	CHECK_INT(gso_reads, >, 0);
	close(c.s);
	close(c.ls);
	knet_down();
}

/* A TSO read with sticky extension headers whose window does not fit the
 * callers' scratch: WG's copying path cuts WG_TUN_MAX_SEGS (128) segments
 * into WG_SEG_BYTES (65536 + 128 * 120) bytes, GRE up to TX_MSGS (1024)
 * into TX_ARENA (4 * 65545 + 1024 * 120), both sized for 120 bytes of
 * headers per segment. A window is cut to what fits; it was refused whole
 * (-1), and the read dropped (tx_bad_packet / tx_errors). */
static size_t ext_big_tso(size_t extlen, size_t n, uint16_t mss)
{
	static uint8_t ext[2048], pl[66000];
	struct flow f;

	memset(ext, 0, sizeof(ext));
	ext[0] = IPPROTO_TCP;
	ext[1] = (uint8_t)(extlen / 8 - 1);
	for (size_t o = 2; o < extlen;) {	/* PadN options */
		size_t d = extlen - o - 2 > 255 ? 255 : extlen - o - 2;

		if (extlen - o - 2 - d == 1)	/* leave no lone byte */
			d--;
		ext[o] = 1;
		ext[o + 1] = (uint8_t)d;
		o += 2 + d;
	}
	flow_init(&f, true, 13);
	fill_rnd(pl, n);
	return ext_tso(seg_in, &f, IPPROTO_DSTOPTS, ext, extlen, 1, TH_ACK, pl, n, mss);
}

static size_t windows_cut(const uint8_t *in, size_t len, size_t cap, int max)
{
	static uint8_t scratch[1 << 20];
	static size_t o[1024], l[1024];
	size_t first = 0;
	int n;

	while ((n = offload_segment_window(in, len, first, scratch, cap, o, l, max)) > 0)
		first += (size_t)n;
	return n == 0 ? first : 0;
}

TEST(ext_window_fits_wg_scratch)
{
	/* 512 bytes of destination options at MTU 1420: MSS 1420-40-512-32 = 836,
	 * 77 segments (> WG_BATCH 64, so the copying path). */
	size_t n = 77 * 836, len = ext_big_tso(512, n, 836);

	CHECK_INT(seg(seg_in, len), ==, 77);
	CHECK_INT(windows_cut(seg_in, len, 65536 + 128 * 120, 128), ==, 77);
}

TEST(ext_window_fits_gre_arena)
{
	/* 1 200 bytes at GRE's default MTU 1476: MSS 204, 315 segments. */
	size_t n = 315 * 204, len = ext_big_tso(1200, n, 204);

	CHECK_INT(windows_cut(seg_in, len, 4 * (10 + 65535) + 1024 * 120, 1024), ==, 315);
}
