/* The local UDP tap (tunnel/tap.h): which decrypted packets it takes off
 * the TUN path, the frames it makes of them, and the packets it builds from
 * reply frames.
 *
 * Packets are built here byte by byte and checked with a deliberately naive
 * checksum (one byte at a time, RFC 1071 by the definition), never with the
 * module's. The device cases run two devices in this process, as
 * test_receive.c does: a query sent into a's tunnel must reach b's tap
 * socket framed (and not b's TUN), and a reply frame written there must
 * come out of a's TUN as the IP packet it stands for.
 */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/device.h"
#include "tunnel/tap.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the reference ---- */

/* The one's-complement sum of 16-bit big-endian words, a byte at a time. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t start)
{
	uint32_t s = start;

	for (size_t i = 0; i < n; i++) {
		s += i % 2 ? p[i] : (uint32_t)p[i] << 8;
		s = (s & 0xffff) + (s >> 16);
	}
	return (uint16_t)s;
}

/* The UDP checksum field's value for udp[0..ulen) (checksum bytes zero). */
static uint16_t ref_udp_csum(int v, const uint8_t *src, const uint8_t *dst, const uint8_t *udp, size_t ulen)
{
	uint8_t ph[40] = { 0 };
	size_t alen = v == 4 ? 4 : 16, pl;
	uint16_t c;

	memcpy(ph, src, alen);
	memcpy(ph + alen, dst, alen);
	pl = 2 * alen;
	if (v == 4) {
		ph[pl + 1] = 17;
		ph[pl + 2] = (uint8_t)(ulen >> 8);
		ph[pl + 3] = (uint8_t)ulen;
		pl += 4;
	} else {
		ph[pl + 2] = (uint8_t)(ulen >> 8);
		ph[pl + 3] = (uint8_t)ulen;
		ph[pl + 7] = 17;
		pl += 8;
	}
	c = (uint16_t)~ref_sum(udp, ulen, ref_sum(ph, pl, 0));
	return c ? c : 0xffff;
}

static const uint8_t gw4[4] = { 192, 0, 2, 1 }, dev4[4] = { 198, 51, 100, 2 };
static uint8_t gw6[16], dev6[16];

static size_t n_eps(struct wg_tap_endpoint eps[2])
{
	inet_pton(AF_INET6, "2001:db8::1", gw6);
	inet_pton(AF_INET6, "2001:db8::1:2", dev6);
	eps[0] = (struct wg_tap_endpoint){ .family = 4, .port = 53 };
	memcpy(eps[0].addr, gw4, 4);
	eps[1] = (struct wg_tap_endpoint){ .family = 6, .port = 53 };
	memcpy(eps[1].addr, gw6, 16);
	return 2;
}

/* A UDP packet from src:sport to dst:dport with payload pay[0..n), right
 * checksums; returns its length. */
static size_t udp_pkt(uint8_t *p, int v, const uint8_t *src, const uint8_t *dst, uint16_t sport,
		      uint16_t dport, const uint8_t *pay, size_t n)
{
	size_t hl = v == 4 ? 20 : 40, ulen = 8 + n;
	uint8_t *u = p + hl;
	uint16_t c;

	memset(p, 0, hl + 8);
	if (v == 4) {
		p[0] = 0x45;
		p[2] = (uint8_t)((hl + ulen) >> 8);
		p[3] = (uint8_t)(hl + ulen);
		p[8] = 64;
		p[9] = 17;
		memcpy(p + 12, src, 4);
		memcpy(p + 16, dst, 4);
		c = (uint16_t)~ref_sum(p, 20, 0);
		p[10] = (uint8_t)(c >> 8);
		p[11] = (uint8_t)c;
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)(ulen >> 8);
		p[5] = (uint8_t)ulen;
		p[6] = 17;
		p[7] = 64;
		memcpy(p + 8, src, 16);
		memcpy(p + 24, dst, 16);
	}
	u[0] = (uint8_t)(sport >> 8);
	u[1] = (uint8_t)sport;
	u[2] = (uint8_t)(dport >> 8);
	u[3] = (uint8_t)dport;
	u[4] = (uint8_t)(ulen >> 8);
	u[5] = (uint8_t)ulen;
	memcpy(u + 8, pay, n);
	c = ref_udp_csum(v, src, dst, u, ulen);
	u[6] = (uint8_t)(c >> 8);
	u[7] = (uint8_t)c;
	return hl + ulen;
}

static void fix_ip_csum(uint8_t *p)
{
	uint16_t c;

	p[10] = p[11] = 0;
	c = (uint16_t)~ref_sum(p, 20, 0);
	p[10] = (uint8_t)(c >> 8);
	p[11] = (uint8_t)c;
}

static bool taken(const uint8_t *p, size_t len)
{
	struct wg_tap_endpoint eps[2];
	struct wg_tap_hdr h;
	size_t off, plen;

	return wg_tap_parse(eps, n_eps(eps), p, len, &h, &off, &plen);
}

/* ---- parsing ---- */

TEST(parse_ipv4)
{
	struct wg_tap_endpoint eps[2];
	uint8_t p[128], q[] = "a DNS query";
	size_t n = udp_pkt(p, 4, dev4, gw4, 40000, 53, q, sizeof(q)), off, plen;
	struct wg_tap_hdr h;

	CHECK(wg_tap_parse(eps, n_eps(eps), p, n, &h, &off, &plen));
	CHECK_INT(h.family, ==, 4);
	CHECK_INT(ntohs(h.sport), ==, 40000);
	CHECK_INT(ntohs(h.dport), ==, 53);
	CHECK(!memcmp(h.src, dev4, 4) && !memcmp(h.dst, gw4, 4));
	CHECK(!h.zero[0] && !h.zero[1] && !h.zero[2] && !h.src[4] && !h.dst[15]);
	CHECK_INT(plen, ==, sizeof(q));
	CHECK(!memcmp(p + off, q, sizeof(q)));
	/* No checksum at all is allowed over IPv4 (RFC 768). */
	p[26] = p[27] = 0;
	CHECK(taken(p, n));
}

TEST(parse_ipv6)
{
	struct wg_tap_endpoint eps[2];
	uint8_t p[128], q[] = "another query, odd length";
	size_t n = udp_pkt(p, 6, dev6, gw6, 1234, 53, q, sizeof(q)), off, plen;
	struct wg_tap_hdr h;

	n_eps(eps);
	n = udp_pkt(p, 6, dev6, gw6, 1234, 53, q, sizeof(q));
	CHECK(wg_tap_parse(eps, 2, p, n, &h, &off, &plen));
	CHECK_INT(h.family, ==, 6);
	CHECK_INT(ntohs(h.sport), ==, 1234);
	CHECK(!memcmp(h.src, dev6, 16) && !memcmp(h.dst, gw6, 16));
	CHECK_INT(off, ==, 48);
	CHECK_INT(plen, ==, sizeof(q));
}

/* Everything the tap does not fully understand is the kernel's. */
TEST(parse_leaves_to_the_kernel)
{
	uint8_t p[128], q[16] = "query";
	size_t n;
	struct wg_tap_endpoint eps[2];

	n_eps(eps);
	n = udp_pkt(p, 4, dev4, gw4, 40000, 54, q, sizeof(q));
	CHECK(!taken(p, n));				/* another port */
	n = udp_pkt(p, 4, dev4, dev4, 40000, 53, q, sizeof(q));
	CHECK(!taken(p, n));				/* another address */
	n = udp_pkt(p, 6, dev6, gw6, 40000, 53, q, sizeof(q));
	p[8 + 15] ^= 1;
	CHECK(!taken(p, n));				/* bad checksum (v6) */
	n = udp_pkt(p, 4, dev4, gw4, 40000, 53, q, sizeof(q));
	p[30] ^= 0x10;
	CHECK(!taken(p, n));				/* bad checksum (v4) */
	n = udp_pkt(p, 4, dev4, gw4, 40000, 53, q, sizeof(q));
	p[6] = 0x20;
	fix_ip_csum(p);
	CHECK(!taken(p, n));				/* more fragments */
	p[6] = 0;
	p[7] = 1;
	fix_ip_csum(p);
	CHECK(!taken(p, n));				/* a later fragment */
	p[7] = 0;
	p[10] ^= 1;
	CHECK(!taken(p, n));				/* bad IP header checksum */
	fix_ip_csum(p);
	CHECK(taken(p, n));				/* (and sound again) */
	p[25]++;
	CHECK(!taken(p, n));				/* UDP length > IP's */
	p[25] -= 2;
	CHECK(!taken(p, n));				/* UDP length < IP's */
	p[25]++;
	CHECK(!taken(p, n - 1));			/* IP length != packet */
	CHECK(!taken(p, 27));				/* short */
	p[9] = 6;
	fix_ip_csum(p);
	CHECK(!taken(p, n));				/* TCP */
	/* IPv4 options: the same datagram behind a 24-byte header. */
	n = udp_pkt(p, 4, dev4, gw4, 40000, 53, q, sizeof(q));
	memmove(p + 24, p + 20, n - 20);
	memset(p + 20, 1, 4);				/* NOPs */
	p[0] = 0x46;
	p[3] += 4;
	fix_ip_csum(p);
	CHECK(!taken(p, n + 4));
	/* IPv6: no checksum is not allowed; extension headers are not read. */
	n = udp_pkt(p, 6, dev6, gw6, 40000, 53, q, sizeof(q));
	p[46] = p[47] = 0;
	CHECK(!taken(p, n));
	n = udp_pkt(p, 6, dev6, gw6, 40000, 53, q, sizeof(q));
	p[6] = 0;					/* hop-by-hop */
	CHECK(!taken(p, n));
	CHECK(!taken(p, 47));
	p[0] = 0x50;
	CHECK(!taken(p, n));				/* version 5 */
}

/* ---- building replies ---- */

static size_t frame(uint8_t *f, int v, const uint8_t *src, uint16_t sport, const uint8_t *dst, uint16_t dport,
		    const uint8_t *pay, size_t n)
{
	size_t alen = v == 4 ? 4 : 16;

	memset(f, 0, WG_TAP_HDR_LEN);
	f[0] = (uint8_t)v;
	f[4] = (uint8_t)(sport >> 8);
	f[5] = (uint8_t)sport;
	f[6] = (uint8_t)(dport >> 8);
	f[7] = (uint8_t)dport;
	memcpy(f + 8, src, alen);
	memcpy(f + 24, dst, alen);
	memcpy(f + WG_TAP_HDR_LEN, pay, n);
	return WG_TAP_HDR_LEN + n;
}

/* A built reply must equal the reference builder's packet but for the
 * IPv4 DF bit, and carry checksums the reference accepts. */
static void check_built(int v, size_t n)
{
	struct wg_tap_endpoint eps[2];
	uint8_t pay[2048], f[WG_TAP_HDR_LEN + 2048], got[2100], want[2100];
	size_t flen, glen, wlen, hl = v == 4 ? 20 : 40;
	const uint8_t *src = v == 4 ? gw4 : gw6, *dst = v == 4 ? dev4 : dev6;

	n_eps(eps);
	randombytes_buf(pay, n);
	flen = frame(f, v, src, 53, dst, 40001, pay, n);
	glen = wg_tap_build(eps, 2, f, flen, 1400, got, sizeof(got));
	wlen = udp_pkt(want, v, src, dst, 53, 40001, pay, n);
	CHECK_INT(glen, ==, wlen);
	if (v == 4) {
		CHECK_INT(got[6], ==, 0x40);
		want[6] = 0x40;
		fix_ip_csum(want);
		CHECK_INT(ref_sum(got, 20, 0), ==, 0xffff);
	}
	CHECK_INT(got[v == 4 ? 8 : 7], ==, 64);
	/* The checksum verifies: recomputed with its field zeroed, it is itself. */
	uint16_t c = (uint16_t)(got[hl + 6] << 8 | got[hl + 7]);
	got[hl + 6] = got[hl + 7] = 0;
	CHECK_INT(ref_udp_csum(v, src, dst, got + hl, glen - hl), ==, c);
	got[hl + 6] = (uint8_t)(c >> 8);
	got[hl + 7] = (uint8_t)c;
	CHECK(!memcmp(got, want, wlen));
	CHECK(!taken(got, glen));		/* to the device, not an endpoint */
}

/* Queries up to the service's limit (a socket's, WG_TAP_PAYLOAD_MAX) go
 * through the tap; a longer one would only fill the socket to be dropped
 * by the service, so it goes to the TUN like everything else. */
TEST(parse_payload_bound)
{
	static uint8_t p[40 + 8 + WG_TAP_PAYLOAD_MAX + 1], q[WG_TAP_PAYLOAD_MAX + 1];
	size_t n;

	for (int v = 4; v <= 6; v += 2) {
		const uint8_t *src = v == 4 ? dev4 : dev6, *dst = v == 4 ? gw4 : gw6;

		n = udp_pkt(p, v, src, dst, 40000, 53, q, WG_TAP_PAYLOAD_MAX);
		CHECK(taken(p, n));
		n = udp_pkt(p, v, src, dst, 40000, 53, q, WG_TAP_PAYLOAD_MAX + 1);
		CHECK(!taken(p, n));
	}
}

TEST(build_ipv4_ipv6)
{
	static const size_t sizes[] = { 0, 1, 2, 11, 512, 1231, 1372 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		check_built(4, sizes[i]);
		check_built(6, sizes[i]);
	}
}

TEST(build_refuses_bad_frames)
{
	struct wg_tap_endpoint eps[2];
	uint8_t f[WG_TAP_HDR_LEN + 64], out[256], pay[8] = "answer";
	size_t n;

	n_eps(eps);
	n = frame(f, 4, gw4, 53, dev4, 40000, pay, sizeof(pay));
	CHECK(wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)) > 0);
	CHECK(!wg_tap_build(eps, 2, f, WG_TAP_HDR_LEN - 1, 1400, out, sizeof(out)));	/* short */
	CHECK(!wg_tap_build(eps, 2, f, n, sizeof(pay) - 1, out, sizeof(out)));		/* too long */
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, 20 + 8 + sizeof(pay) - 1));		/* no room */
	f[0] = 5;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* family */
	f[0] = 4;
	f[2] = 1;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* reserved */
	f[2] = 0;
	f[5] = 54;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* not our port */
	f[5] = 53;
	f[8 + 3] = 9;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* not our address */
	f[8 + 3] = 1;
	f[8 + 4] = 1;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* v4 padding */
	f[8 + 4] = 0;
	f[6] = f[7] = 0;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* port 0 */
	f[7] = 1;
	f[0] = 6;
	CHECK(!wg_tap_build(eps, 2, f, n, 1400, out, sizeof(out)));			/* v4 as v6 */
	CHECK(!wg_tap_build(eps, 0, f, n, 1400, out, sizeof(out)));			/* no endpoints */
}

/* ---- through two devices ---- */

struct end {
	struct wg_device *dev;
	int tun;
	union xb_sockaddr addr;
};

static void end_open(struct end *e, const char *name)
{
	struct wg_timing t;
	int sp[2];

	wg_timing_default(&t);
	CHECK(wg_device_alloc(&e->dev, name, &t) == 0);
	CHECK((e->dev->sock4 = wgtest_loopback_udp(&e->addr, 0)) >= 0);
	CHECK((e->dev->epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	e->dev->tun_fd = sp[0];
	e->tun = sp[1];
}

static void end_config(struct end *self, const uint8_t key[32], const struct end *other,
		       const uint8_t other_pub[32], const uint8_t *a4, const uint8_t *a6)
{
	struct xb_prefix p[2] = { { .family = AF_INET, .cidr = 32 }, { .family = AF_INET6, .cidr = 128 } };

	memcpy(p[0].addr, a4, 4);
	memcpy(p[1].addr, a6, 16);
	CHECK(wgtest_one_peer(self->dev, key, other_pub, &other->addr, p, 2) == 0);
}

static bool pump_one(struct end *e)
{
	static uint8_t buf[WG_MAX_PACKET];
	union xb_sockaddr from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(e->dev->sock4, buf, sizeof(buf), 0, &from.sa, &flen);

	if (n <= 0)
		return false;
	wg_receive(e->dev, buf, (size_t)n, &from, &e->addr, 1, clock_mono_ns());
	wg_tun_flush(e->dev);
	wg_txq_flush(e->dev);
	return true;
}

static void pump(struct end *a, struct end *b)
{
	for (int i = 0; i < 1000; i++)
		if (!pump_one(a) && !pump_one(b))
			return;
	CHECK(!"the wire never went quiet");
}

/* a is the device (dev4/dev6), b the gateway with a tap on gw4/gw6:53. */
TEST(device_round_trip)
{
	struct end a, b;
	struct wg_tap_endpoint eps[2];
	uint8_t ka[32], kb[32], pa[32], pb[32], pkt[256], got[512], want[256], q[] = "query";
	int sp[2];
	size_t n, wn;
	uint64_t tx_no_peer;
	ssize_t r;

	log_init("test_tap", LOG_LVL_ERR, false);
	noise_init();
	randombytes_buf(ka, 32);
	randombytes_buf(kb, 32);
	crypto_scalarmult_base(pa, ka);
	crypto_scalarmult_base(pb, kb);
	end_open(&a, "tapa");
	end_open(&b, "tapb");
	n_eps(eps);
	end_config(&a, ka, &b, pb, gw4, gw6);
	end_config(&b, kb, &a, pa, dev4, dev6);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	CHECK(wg_device_set_tap(b.dev, sp[0], eps, 2) == 0);
	CHECK_INT(wg_tap_fd(b.dev), ==, sp[0]);

	/* A query: onto the tap, framed; not onto b's TUN. */
	for (int v = 4; v <= 6; v += 2) {
		n = udp_pkt(pkt, v, v == 4 ? dev4 : dev6, v == 4 ? gw4 : gw6, 33333, 53, q, sizeof(q));
		wg_send_from_tun(a.dev, pkt, n, clock_mono_ns());
		wg_txq_flush(a.dev);
		pump(&a, &b);
		r = read(sp[1], got, sizeof(got));
		CHECK_INT(r, ==, WG_TAP_HDR_LEN + sizeof(q));
		CHECK_INT(got[0], ==, v);
		CHECK(!memcmp(got + 8, v == 4 ? dev4 : dev6, v == 4 ? 4 : 16));
		CHECK_INT(got[4] << 8 | got[5], ==, 33333);
		CHECK(!memcmp(got + WG_TAP_HDR_LEN, q, sizeof(q)));
		CHECK(read(b.tun, got, sizeof(got)) < 0);
	}
	/* Another port: the TUN's as before. */
	n = udp_pkt(pkt, 4, dev4, gw4, 33333, 54, q, sizeof(q));
	wg_send_from_tun(a.dev, pkt, n, clock_mono_ns());
	wg_txq_flush(a.dev);
	pump(&a, &b);
	CHECK_INT(read(b.tun, got, sizeof(got)), ==, n);
	CHECK(read(sp[1], got, sizeof(got)) < 0);
	CHECK_INT(b.dev->stats.tap_queries, ==, 2);

	/* A reply: back through the tunnel as the packet it stands for. */
	n = frame(pkt, 6, gw6, 53, dev6, 33333, (const uint8_t *)"answer", 6);
	CHECK(write(sp[1], pkt, n) == (ssize_t)n);
	wg_tap_rx(b.dev, clock_mono_ns());
	wg_txq_flush(b.dev);
	pump(&a, &b);
	wn = udp_pkt(want, 6, gw6, dev6, 53, 33333, (const uint8_t *)"answer", 6);
	CHECK_INT(read(a.tun, got, sizeof(got)), ==, wn);
	CHECK(!memcmp(got, want, wn));
	CHECK_INT(b.dev->stats.tap_answers, ==, 1);

	/* Bad frames: dropped and counted, nothing sent. */
	n = frame(pkt, 4, dev4, 53, gw4, 33333, (const uint8_t *)"spoof", 5);
	CHECK(write(sp[1], pkt, n) == (ssize_t)n);
	CHECK(write(sp[1], pkt, 10) == 10);
	wg_tap_rx(b.dev, clock_mono_ns());
	wg_txq_flush(b.dev);
	pump(&a, &b);
	CHECK(read(a.tun, got, sizeof(got)) < 0);
	CHECK_INT(b.dev->stats.tap_bad_reply, ==, 2);
	CHECK_INT(b.dev->stats.tap_answers, ==, 1);

	/* A good frame to an address no peer has: dropped by the send path
	 * (tx_no_peer), so not an answer sent. */
	n = frame(pkt, 4, gw4, 53, (const uint8_t[4]){ 203, 0, 113, 9 }, 33333, (const uint8_t *)"lost", 4);
	CHECK(write(sp[1], pkt, n) == (ssize_t)n);
	tx_no_peer = b.dev->stats.tx_no_peer;
	wg_tap_rx(b.dev, clock_mono_ns());
	wg_txq_flush(b.dev);
	pump(&a, &b);
	CHECK(read(a.tun, got, sizeof(got)) < 0);
	CHECK_INT(b.dev->stats.tx_no_peer, ==, tx_no_peer + 1);
	CHECK_INT(b.dev->stats.tap_bad_reply, ==, 2);
	CHECK_INT(b.dev->stats.tap_answers, ==, 1);

	/* Off: queries go to the TUN again. */
	CHECK(wg_device_set_tap(b.dev, -1, NULL, 0) == 0);
	CHECK_INT(wg_tap_fd(b.dev), ==, -1);
	n = udp_pkt(pkt, 4, dev4, gw4, 33333, 53, q, sizeof(q));
	wg_send_from_tun(a.dev, pkt, n, clock_mono_ns());
	wg_txq_flush(a.dev);
	pump(&a, &b);
	CHECK_INT(read(b.tun, got, sizeof(got)), ==, n);

	close(sp[1]);
	close(a.tun);
	close(b.tun);
	wg_device_close(a.dev);
	wg_device_close(b.dev);
}
