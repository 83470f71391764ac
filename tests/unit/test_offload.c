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

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

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
		if (get16(ip + 4) != len - 40)
			return false;
	} else if (get16(ip + 2) != len || ref_fold(ref_sum(ip, iphl, 0)) != 0xffff) {
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
		put16(b + 2, (uint16_t)f->label);
		put16(b + 4, (uint16_t)l4_len);
		b[6] = proto;
		b[7] = f->ttl;
		memcpy(b + 8, f->src, 16);
		memcpy(b + 24, f->dst, 16);
		return 40;
	}
	b[0] = 0x45;
	b[1] = f->tos;
	put16(b + 2, (uint16_t)(20 + l4_len));
	put16(b + 4, id);
	put16(b + 6, f->df ? 0x4000 : 0);
	b[8] = f->ttl;
	b[9] = proto;
	put16(b + 10, 0);
	memcpy(b + 12, f->src, 4);
	memcpy(b + 16, f->dst, 4);
	put16(b + 10, (uint16_t)~ref_fold(ref_sum(b, 20, 0)));
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

	put16(t, f->sport);
	put16(t + 2, f->dport);
	put32(t + 4, seq);
	put32(t + 8, f->ack);
	t[12] = (uint8_t)(thl / 4 << 4);
	t[13] = flags;
	put16(t + 14, f->win);
	put32(t + 16, 0);
	if (f->ts) {
		t[20] = 1;
		t[21] = 1;
		t[22] = 8;
		t[23] = 10;
		put32(t + 24, f->tsval);
		put32(t + 28, f->tsecr);
	}
	memcpy(t + thl, pl, n);
	put16(t + 16, (uint16_t)~ref_fold(ref_sum(t, thl + n,
						  ref_pseudo(b, IPPROTO_TCP, thl + n))));
	return iphl + thl + n;
}

static size_t udp_build(uint8_t *b, const struct flow *f, uint16_t id, const uint8_t *pl,
			size_t n)
{
	size_t iphl = ip_build(b, f, IPPROTO_UDP, 8 + n, id);
	uint8_t *u = b + iphl;
	uint16_t c;

	put16(u, f->sport);
	put16(u + 2, f->dport);
	put16(u + 4, (uint16_t)(8 + n));
	put16(u + 6, 0);
	memcpy(u + 8, pl, n);
	c = (uint16_t)~ref_fold(ref_sum(u, 8 + n, ref_pseudo(b, IPPROTO_UDP, 8 + n)));
	put16(u + 6, c ? c : 0xffff);
	return iphl + 8 + n;
}

static size_t icmp_build(uint8_t *b, const struct flow *f, uint16_t id)
{
	size_t iphl = ip_build(b, f, f->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 16, id);

	memset(b + iphl, 0, 16);
	b[iphl] = f->v6 ? 128 : 8;	/* echo request; checksum not needed here */
	put16(b + iphl + 4, id);
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

	put16(ip + iphl + csum_off, ref_fold(ref_pseudo(ip, ip_proto(ip), len - iphl)));
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
	put16(seg_in + HDR + len - 2, (uint16_t)(0xffff - s));
	vnet_put(seg_in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 6);
	CHECK_INT(offload_segment(seg_in, HDR + len, seg_out, sizeof(seg_out), seg_offs,
				  seg_lens, 1), ==, 1);
	CHECK_INT(get16(seg_out + 26), ==, 0xffff);
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
		CHECK_INT(get32(t + 4), ==, (uint32_t)(seq + i * mss));
		if (!v6)
			CHECK_INT(get16(s + 4), ==, (uint16_t)(id + i));
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
	check_tso(false, 3000, 1, TH_ACK, false) ;
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

/* ---- Malformed reads ---- */

static int seg(const uint8_t *in, size_t len)
{
	return offload_segment(in, len, seg_out, sizeof(seg_out), seg_offs, seg_lens, 256);
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
	ip[6] = IPPROTO_HOPOPTS;				/* extension header */
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = fresh_tso(true);
	ip[0] = 0x45;						/* not IPv6 any more */
	CHECK_INT(seg(seg_in, len), ==, -1);
}

TEST(segment_rejects_oversized_segments)
{
	static uint8_t pl[65000];
	struct flow f;
	size_t len;

	/* One segment of 65000 + 52 bytes would not fit an IPv4 total length. */
	flow_init(&f, false, 7);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 52, 65535, false);
	CHECK_INT(seg(seg_in, len), ==, 1);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 51, 65535, false);
	CHECK_INT(seg(seg_in, len), ==, -1);
	len = tso_build(seg_in, &f, 1, 1, TH_ACK, pl, 65535 - 51, 30000, false);
	CHECK_INT(seg(seg_in, len), ==, 3);
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
