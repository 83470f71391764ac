/* The userspace GRE tunnel's batched data path (gre_dev.c), on the wire in
 * a private namespace: a tunnel between addresses on lo and a raw GRE
 * socket standing in for the remote, IPv4 and IPv6 outer (inner the same
 * family).
 *
 *  - receive: a batch of datagrams, valid, invalid and out of sequence,
 *    queued before the tunnel's thread starts so that one recvmmsg() takes
 *    them all, delivers exactly the right inner packets to the TUN, each
 *    flow in order (seen by a packet socket on the TUN, coalesced writes cut
 *    back into packets), and counts every drop by reason; the three
 *    in-sequence segments of one TCP flow reach the kernel as one write.
 *  - send: a TCP super-packet handed to the TUN (a packet socket with a
 *    vnet header) leaves as GRE packets, one per MSS (700 of them for a
 *    90-byte MSS), with consecutive sequence numbers, valid GRE, IP and TCP
 *    checksums, the segment fields the kernel's segmentation would give, and
 *    the payload intact; the TUN offers TSO, so the kernel did not cut it.
 */
#include "tests/lib/check.h"
#include "tunnel/gre.h"
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IFN	"xbgt"
#define MSS	1000
#define CAP	(OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_IP_LEN)

static const struct gre_opts opts = { .has_key = true, .key = 7, .seq = true, .csum = true };

struct side {
	bool v6;
	int peer;			/* raw GRE socket: the remote */
	struct gre_tunnel *t;
	uint8_t src[16], dst[16];	/* inner addresses */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The folded pseudo-header sum for an L4 packet of len bytes. */
static uint16_t pseudo(const struct side *s, uint8_t proto, size_t len)
{
	uint8_t ph[36] = { 0 };
	size_t a = s->v6 ? 16 : 4;

	memcpy(ph, s->src, a);
	memcpy(ph + a, s->dst, a);
	ph[2 * a + 1] = proto;
	xb_put16(ph + 2 * a + 2, (uint16_t)len);
	return offload_csum(ph, 2 * a + 4, 0);
}

static size_t ip_hdr(const struct side *s, uint8_t *p, uint8_t proto, size_t l4, uint16_t id)
{
	if (s->v6) {
		memset(p, 0, 40);
		p[0] = 0x60;
		xb_put16(p + 4, (uint16_t)l4);
		p[6] = proto;
		p[7] = 64;
		memcpy(p + 8, s->src, 16);
		memcpy(p + 24, s->dst, 16);
		return 40;
	}
	memset(p, 0, 20);
	p[0] = 0x45;
	xb_put16(p + 2, (uint16_t)(20 + l4));
	xb_put16(p + 4, id);
	p[6] = 0x40;
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, s->src, 4);
	memcpy(p + 16, s->dst, 4);
	xb_put16(p + 10, (uint16_t)~offload_csum(p, 20, 0));
	return 20;
}

/* A TCP packet of flow 40000 → 5201 with n payload bytes of fill + i.
 * csum: 1 a valid checksum, 0 a wrong one, -1 the pseudo-header sum that a
 * super-packet for segmentation carries. */
static size_t tcp(const struct side *s, uint8_t *p, uint32_t seq, uint16_t id, size_t n,
		  uint8_t fill, uint8_t flags, int csum)
{
	size_t ip = ip_hdr(s, p, IPPROTO_TCP, 20 + n, id);
	uint8_t *t = p + ip;
	uint16_t ps = pseudo(s, IPPROTO_TCP, 20 + n);

	memset(t, 0, 20);
	xb_put16(t, 40000);
	xb_put16(t + 2, 5201);
	xb_put32(t + 4, seq);
	xb_put32(t + 8, 1);
	t[12] = 5 << 4;
	t[13] = flags;
	xb_put16(t + 14, 512);
	for (size_t i = 0; i < n; i++)
		t[20 + i] = (uint8_t)(fill + i);
	if (csum < 0)
		xb_put16(t + 16, ps);
	else
		xb_put16(t + 16, (uint16_t)(~offload_csum(t, 20 + n, ps) + (csum ? 0 : 1)));
	return ip + 20 + n;
}

static size_t udp(const struct side *s, uint8_t *p, size_t n)
{
	size_t ip = ip_hdr(s, p, IPPROTO_UDP, 8 + n, 99);
	uint8_t *u = p + ip;

	xb_put16(u, 53);
	xb_put16(u + 2, 5353);
	xb_put16(u + 4, (uint16_t)(8 + n));
	xb_put16(u + 6, 0);
	memset(u + 8, 0x5a, n);
	xb_put16(u + 6, (uint16_t)~offload_csum(u, 8 + n, pseudo(s, IPPROTO_UDP, 8 + n)));
	return ip + 8 + n;
}

static void setup(struct side *s, bool v6)
{
	struct gre_config c = { .ifname = IFN, .opts = opts };
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int big = 4 << 20;

	memset(s, 0, sizeof(*s));
	s->v6 = v6;
	xb_test_private_netns();
	/* No router solicitations or MLD reports out of the TUN: only ours. */
	xb_test_run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1; "
		    "ip addr add 192.0.2.1/32 dev lo; ip addr add 192.0.2.2/32 dev lo; "
		    "ip -6 addr add 2001:db8::1/128 dev lo nodad; ip -6 addr add 2001:db8::2/128 dev lo nodad");
	c.family = v6 ? AF_INET6 : AF_INET;
	inet_pton(c.family, v6 ? "2001:db8::1" : "192.0.2.1", &c.local);
	inet_pton(c.family, v6 ? "2001:db8::2" : "192.0.2.2", &c.remote);
	inet_pton(c.family, v6 ? "2001:db8:100::1" : "198.51.100.1", s->src);
	inet_pton(c.family, v6 ? "2001:db8:100::2" : "198.51.100.2", s->dst);
	CHECK_INT(gre_tunnel_open(&s->t, &c), ==, 0);
	s->peer = socket(c.family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_GRE);
	CHECK(s->peer >= 0);
	CHECK(setsockopt(s->peer, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) == 0);
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = c.remote;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, &c.remote, 4);
		sl = sizeof(*a);
	}
	CHECK(bind(s->peer, (struct sockaddr *)&ss, sl) == 0);
	if (v6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = c.local;
	else
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, &c.local, 4);
	CHECK(connect(s->peer, (struct sockaddr *)&ss, sl) == 0);
}

/* A packet socket on the TUN that sees every packet with its vnet header. */
static int tun_tap(void)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = (int)if_nametoindex(IFN) };
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)), one = 1;

	CHECK(fd >= 0 && ll.sll_ifindex > 0);
	CHECK(setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) == 0);
	CHECK(bind(fd, (struct sockaddr *)&ll, sizeof(ll)) == 0);
	return fd;
}

/* Send GRE from the remote: header per o (proto, seq) then the inner packet. */
static void peer_send(const struct side *s, const struct gre_opts *o, uint16_t proto, uint32_t seq,
		      const uint8_t *inner, size_t n, bool bad_csum)
{
	uint8_t d[GRE_HDR_MAX + 2048];
	size_t h = gre_hdr_size(o);

	if (n)
		memcpy(d + h, inner, n);
	gre_encap(d, o, proto, seq, n);
	if (bad_csum)
		d[5] ^= 1;
	CHECK(send(s->peer, d, h + n, 0) == (ssize_t)(h + n));
}

static uint64_t accounted(const struct gre_stats *st)
{
	uint64_t n = st->rx_packets + st->rx_errors + st->keepalive_replies;

	for (int i = 1; i < GRE_DROP_COUNT; i++)
		n += st->rx_drops[i];
	return n;
}

static void batch_receive(bool v6)
{
	struct gre_opts wrong_key = opts, no_seq = opts, ka = opts;
	uint16_t proto = v6 ? GRE_PROTO_IPV6 : GRE_PROTO_IPV4;
	static uint8_t pk[5][2048], frame[CAP], segs[2 * CAP];
	size_t len[5], off[128], sl[128], got_n = 0, frames = 0;
	uint8_t a_dup[2048], late[2048], other[2048];
	size_t late_len, other_len;
	const uint8_t *got[16];
	size_t got_len[16];
	struct gre_stats st;
	struct side s;
	uint64_t end;
	int tap;

	setup(&s, v6);
	tap = tun_tap();
	wrong_key.key = 8;
	no_seq.seq = false;
	ka.seq = false;
	/* Expected deliveries: flow A's segments 1-3 (consecutive, mergeable),
	 * a UDP packet, and A's segment 4, whose TCP checksum is wrong (the
	 * kernel must see it unmerged, to drop it). */
	len[0] = tcp(&s, pk[0], 1000, 10, MSS, 1, 0x10, 1);
	len[1] = tcp(&s, pk[1], 1000 + MSS, 11, MSS, 2, 0x10, 1);
	len[2] = udp(&s, pk[2], 100);
	len[3] = tcp(&s, pk[3], 1000 + 2 * MSS, 12, MSS, 3, 0x10, 1);
	len[4] = tcp(&s, pk[4], 1000 + 3 * MSS, 13, MSS, 4, 0x10, 0);
	tcp(&s, a_dup, 1000 + MSS, 11, MSS, 2, 0x10, 1);
	late_len = tcp(&s, late, 9000, 50, 10, 7, 0x18, 1);
	other_len = tcp(&s, other, 7000, 60, 10, 8, 0x18, 1);

	peer_send(&s, &opts, proto, 10, pk[0], len[0], false);
	peer_send(&s, &opts, proto, 11, pk[1], len[1], false);
	peer_send(&s, &opts, proto, 11, a_dup, len[1], false);		/* duplicate */
	peer_send(&s, &wrong_key, proto, 12, pk[2], len[2], false);	/* key */
	peer_send(&s, &opts, proto, 12, pk[2], len[2], false);		/* 12 was not used up */
	peer_send(&s, &opts, proto, 14, pk[3], len[3], false);		/* a gap: lost packets */
	peer_send(&s, &opts, proto, 13, late, late_len, false);		/* late */
	peer_send(&s, &opts, proto, 15, other, other_len, true);		/* checksum */
	peer_send(&s, &ka, GRE_PROTO_KEEPALIVE, 0, NULL, 0, false);	/* a keepalive reply */
	peer_send(&s, &no_seq, proto, 0, other, other_len, false);		/* no sequence number */
	peer_send(&s, &opts, proto, 16, pk[4], len[4], false);
	/* Everything sits in the tunnel's socket before its first recvmmsg(). */
	CHECK_INT(gre_tunnel_start(s.t), ==, 0);
	end = now_ms() + 3000;
	do {
		gre_tunnel_stats(s.t, &st);
	} while (accounted(&st) < 11 && now_ms() < end && !usleep(2000));
	CHECK_INT(st.rx_packets, ==, 5);
	CHECK_INT(st.rx_drops[GRE_DROP_SEQ], ==, 2);
	CHECK_INT(st.rx_drops[GRE_DROP_KEY], ==, 1);
	CHECK_INT(st.rx_drops[GRE_DROP_CSUM], ==, 1);
	CHECK_INT(st.rx_drops[GRE_DROP_NO_SEQ], ==, 1);
	CHECK_INT(st.keepalive_replies, ==, 1);
	CHECK_INT(st.rx_errors, ==, 0);
	CHECK_INT(accounted(&st), ==, 11);

	/* What the kernel got from the TUN, cut back into packets. */
	end = now_ms() + 2000;
	while (got_n < 5 && now_ms() < end) {
		struct pollfd pfd = { .fd = tap, .events = POLLIN };
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		uint8_t *base = segs + got_n * 2048;
		ssize_t r;
		int k;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = recvfrom(tap, frame, sizeof(frame), 0, (struct sockaddr *)&from, &fl);
		CHECK(r > 0);
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		frames++;
		k = offload_segment(frame, (size_t)r, base, sizeof(segs) - got_n * 2048, off, sl, 16);
		CHECK(k >= 1 && got_n + (size_t)k <= 5);
		for (int i = 0; i < k; i++) {
			got[got_n] = base + off[i];
			got_len[got_n++] = sl[i];
		}
	}
	CHECK_INT(got_n, ==, 5);
	/* A's segments 1-3 first (one write), then the UDP packet, then A's 4th:
	 * every flow in order, and exactly these bytes. */
	static const int order[5] = { 0, 1, 3, 2, 4 };
	for (int i = 0; i < 5; i++) {
		CHECK_INT(got_len[i], ==, len[order[i]]);
		CHECK_MEM(got[i], pk[order[i]], len[order[i]]);
	}
	CHECK_INT(frames, ==, 3);
	close(tap);
	close(s.peer);
	gre_tunnel_close(s.t);
}

TEST(batch_delivers_the_right_packets_in_order_ipv4)
{
	batch_receive(false);
}

TEST(batch_delivers_the_right_packets_in_order_ipv6)
{
	batch_receive(true);
}

/* Hand the TUN a TCP super-packet of payload bytes as the kernel's stack
 * would (GSO at mss, the pseudo-header sum in the checksum field) and check
 * what the remote gets. */
static void tso_send(bool v6, size_t mss, size_t payload)
{
	static uint8_t super[OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_IP_LEN], d[4096];
	size_t ip = v6 ? 40 : 20, n, seen = 0, segs = (payload + mss - 1) / mss;
	struct virtio_net_hdr vh = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = (uint16_t)(ip + 20), .gso_size = (uint16_t)mss,
		.csum_start = (uint16_t)ip, .csum_offset = 16,
	};
	struct sockaddr_ll ll = { .sll_family = AF_PACKET,
				  .sll_protocol = htons(v6 ? ETH_P_IPV6 : ETH_P_IP) };
	uint8_t *pkt = super + OFFLOAD_VNET_HDR_LEN;
	struct gre_stats st;
	struct side s;
	int tx, one = 1;
	uint64_t end;

	setup(&s, v6);
	CHECK_INT(gre_tunnel_start(s.t), ==, 0);
	CHECK(strstr(xb_test_run("ethtool -k " IFN), "tcp-segmentation-offload: on"));
	memcpy(super, &vh, sizeof(vh));
	n = tcp(&s, pkt, 5000, 300, payload, 9, 0x18, -1);	/* ACK PSH */
	tx = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	CHECK(tx >= 0);
	CHECK(setsockopt(tx, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) == 0);
	ll.sll_ifindex = (int)if_nametoindex(IFN);
	CHECK(sendto(tx, super, OFFLOAD_VNET_HDR_LEN + n, 0, (struct sockaddr *)&ll, sizeof(ll)) ==
	      (ssize_t)(OFFLOAD_VNET_HDR_LEN + n));

	end = now_ms() + 3000;
	while (seen < segs && now_ms() < end) {
		struct pollfd pfd = { .fd = s.peer, .events = POLLIN };
		ssize_t r;
		size_t o = 0, l4;
		const uint8_t *in, *t;
		struct gre_hdr h;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = recv(s.peer, d, sizeof(d), 0);
		CHECK(r > 0);
		if (!v6) {	/* an IPv4 raw socket passes the outer header up */
			CHECK_INT(d[9], ==, IPPROTO_GRE);
			o = (d[0] & 15) * 4u;
		}
		CHECK_INT(gre_decode(d + o, (size_t)r - o, &opts, &h), ==, GRE_OK);
		CHECK(h.flags & GRE_F_CSUM);
		CHECK_INT(h.seq, ==, seen);		/* the tunnel's first packets */
		CHECK_INT(h.proto, ==, v6 ? GRE_PROTO_IPV6 : GRE_PROTO_IPV4);
		in = d + o + h.len;
		l4 = 20 + (seen + 1 < segs ? mss : payload - seen * mss);
		CHECK_INT((size_t)r - o - h.len, ==, ip + l4);
		t = in + ip;
		if (!v6) {
			CHECK_INT(xb_get16(in + 2), ==, ip + l4);
			CHECK_INT(xb_get16(in + 4), ==, 300 + seen);
			CHECK_INT(offload_csum(in, 20, 0), ==, 0xffff);
		} else {
			CHECK_INT(xb_get16(in + 4), ==, l4);
		}
		CHECK_INT(xb_get32(t + 4), ==, 5000 + seen * mss);
		CHECK_INT(t[13], ==, seen + 1 == segs ? 0x18 : 0x10);	/* PSH on the last only */
		CHECK_INT(offload_csum(t, l4, pseudo(&s, IPPROTO_TCP, l4)), ==, 0xffff);
		CHECK_MEM(t + 20, pkt + ip + 20 + seen * mss, l4 - 20);
		seen++;
	}
	CHECK_INT(seen, ==, segs);
	gre_tunnel_stats(s.t, &st);
	CHECK_INT(st.tx_packets, ==, segs);
	CHECK_INT(st.tx_errors, ==, 0);
	close(tx);
	close(s.peer);
	gre_tunnel_close(s.t);
}

TEST(tso_super_packet_leaves_as_gre_segments_ipv4)
{
	tso_send(false, MSS, 10 * MSS + 333);
}

TEST(tso_super_packet_leaves_as_gre_segments_ipv6)
{
	tso_send(true, MSS, 10 * MSS + 333);
}

/* A peer that announced a tiny MSS: a 64 KB segment cut into 700 packets,
 * more than one sendmmsg() of the first version took. */
TEST(tso_small_mss_leaves_whole)
{
	tso_send(false, 90, 700 * 90);
}

/* Smaller still: 1 500 segments of 40 bytes, more than the send queue holds
 * (TX_MSGS, 1 024), cut a window at a time (offload_segment_window). The
 * first version refused such a read whole (tx_errors). */
TEST(tso_tiny_segments_leave_whole)
{
	tso_send(false, 40, 1500 * 40);
}
