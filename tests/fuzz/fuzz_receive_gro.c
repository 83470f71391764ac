/* libFuzzer: the WireGuard receive path with TUN offloads on, as
 * wg_device_open() runs it when the TUN has them (dev->gro with
 * OFFLOAD_GRO_TRUSTED | OFFLOAD_GRO_IOV): decrypted packets handed to the
 * coalescer by reference where they were opened (deliver(), add_ref), merged
 * without checksum verification, and each batch written with writev()
 * (tun_write_out) at wg_tun_flush(). fuzz_receive covers the rest of the
 * receive path with coalescing off; fuzz_gro_modes the coalescer alone.
 *
 * Device b has one peer a and a's "next" keypair (b answered a's
 * initiation); every data message below is sealed under it, so all of them
 * get past the AEAD unless a record breaks one on purpose. a's allowed IPs
 * are 198.51.100.0/24 and 2001:db8:1::/48. The TUN is a memfd. Each
 * device has the DNS tap on (tunnel/tap.h), endpoints 192.0.2.53:53 and
 * [2001:db8::53]:53, its socketpair's other end read by the harness.
 *
 * Input: [dev u8] then records [op u8][len u16 LE][len bytes]. dev & 1:
 * data messages go through the receive queue (dev->rxq, as with two or more
 * workers: opened together at the flush) rather than one by one. op & 7:
 *   0  a new TCP flow in slot (op >> 4) & 7: op & 8 IPv6; bytes [0..1]
 *      source port (and the source address's last byte), [2..5] sequence
 *      number, [6] & 3 option words, [6] & 4 a source outside the allowed
 *      IPs (then dropped: cryptokey routing), the rest payload
 *   1  the flow's next segment, the bytes as payload; op & 8 PSH
 *   2  a burst: 1 + bytes[0] segments of the flow, 1 + bytes[1..2] & 0x1fff
 *      payload bytes each (the last 1 + bytes[3] % that, if given); op & 8
 *      PSH on the last
 *   3  an odd segment: sequence moved by (int8)bytes[0], TCP flags
 *      bytes[1], bytes[2] & 1 another TTL, & 2 a wrong TCP checksum, & 4 the
 *      IPv4 id not advanced, & 8 another window; the rest payload
 *   4  the bytes as an inner packet (anything); op & 8: source put in the
 *      allowed IPs, lengths and checksums fixed
 *   5  a message that must not be delivered: (op >> 4) & 3 = 0 tag broken,
 *      1 the last accepted counter again (replay), 2 an unknown index
 *   6  op & 8: a UDP datagram from a's allowed IPs, to the tap unless
 *      bytes[0] says otherwise: & 1 IPv6, & 2 to port 5353, & 4 to another
 *      address, & 8 a wrong UDP checksum, & 0x10 an IPv4 fragment (MF),
 *      & 0x20 no checksum (0: the tap takes it over IPv4 only); bytes[1]
 *      the source port's low byte, the rest payload (over
 *      WG_TAP_PAYLOAD_MAX: not the tap's). Else toggle "glue": messages
 *      follow each other with no gap, as UDP_GRO segments do in one
 *      datagram (else CANARY bytes between them)
 *   7  op & 8: a junk cookie message (flushes the receive queue, not the
 *      TUN batch); else the end of a receive batch: wg_tun_flush() and checks
 * The input's end ends a batch too. A batch also ends when the harness's
 * buffer is full; the coalescer's own limit (OFFLOAD_GRO_MAX_PKTS) is
 * reached by bursts and makes deliver() write out mid-batch.
 *
 * Checks, per batch, against what the harness knows it sealed:
 *  - the TUN got a sequence of writes, each a vnet header and one IP packet
 *    whose length fields account for every byte: lone packets with
 *    DATA_VALID and nothing else, merged ones NEEDS_CSUM, TCPV4/V6 matching
 *    the IP version, csum_start/offset at the TCP checksum, a valid IPv4
 *    header checksum;
 *  - offload_segment() cuts the writes back into exactly the packets that
 *    should have been delivered (sealed, fresh counter, inner length valid,
 *    source in the allowed IPs), each once, in the order they were fed per
 *    TCP flow (and for all non-TCP packets together), byte for byte — but
 *    the checksum fields of a merged packet's segments whose sender got
 *    them wrong, which re-segmenting recomputes. So every TCP payload byte
 *    fed in comes out once, in order;
 *  - nothing in the receive buffer outside a delivered packet and the
 *    OFFLOAD_VNET_HDR_LEN bytes before it was written: the CANARY gaps, the
 *    first 6 bytes of each message header and the padding behind each
 *    delivered packet are as they were;
 *  - no write failed (tx_send_failed) and no packet was refused by the
 *    batch (rx_bad_inner stays at what the harness expects);
 *  - the tap: what it should take (op 6's datagrams by the harness's own
 *    rule above; op 4's packets by wg_tap_parse, which fuzz_tap and
 *    test_tap check on their own) never reaches the TUN, and comes out of
 *    the socketpair framed, header and payload byte for byte, once, in the
 *    order fed — or is counted in tap_dropped (a full socket). tap_queries
 *    counts exactly what was taken.
 */
#include "ref_csum.h"
#include "tunnel/device.h"
#include "tunnel/offload.h"
#include "tunnel/tap.h"
#include "common/bytes.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define T_INIT	1000000000ULL
#define T_RUN	2000000000ULL
#define HDR	OFFLOAD_VNET_HDR_LEN
#define RXBUF	(4u << 20)		/* the receive buffer of one batch */
#define GAP	16			/* CANARY bytes between separate datagrams */
#define CANARY	0xa5
#define MAXMSG	4096			/* messages per batch */
#define MAXPL	9000			/* largest inner packet the harness builds */
#define NFLOWS	8
#define OUTBUF	(RXBUF + MAXMSG * HDR)
#define SEGBUF	(1u << 20)

struct msg {			/* a sealed message in the receive buffer */
	size_t at, n, plen;	/* offset; inner packet and plaintext length */
	size_t pt;		/* its plaintext in pt_pool */
	uint8_t head[6];	/* its first bytes, which nothing may write */
	bool delivered;		/* what the harness expects */
	bool tapped;		/* taken by the tap instead */
	struct wg_tap_hdr th;	/* then its frame's header; payload at pt + poff */
	size_t poff;
	bool bad_ip_csum, bad_tcp_csum;
	int stream, next;	/* the next delivered packet of its stream */
};

struct stream {
	uint8_t key[40];
	int head, tail;
};

struct flow {
	uint8_t h[40 + 60];	/* IP and TCP headers */
	size_t ip, thl;
	bool used;
};

struct gap {
	size_t at, len;
};

static struct wg_device *devs[2];
static uint8_t key_b[32], key_a[32], pub_a[32];
static uint8_t *rxbuf, *pt_pool, *outbuf, *segbuf;
static size_t rx_used, pt_used;
static struct msg msgs[MAXMSG];
static size_t n_msgs;
static struct gap gaps[MAXMSG + 1];
static size_t n_gaps;
static struct stream streams[MAXMSG];
static size_t n_streams;
static struct flow flows[NFLOWS];
static bool glue;
static uint64_t counter, last_accepted;
static bool any_accepted;
static uint64_t bad_inner_expected;
/* The tap: the harness's end of each device's socketpair, what it should
 * have taken this run and what came out of the socket. */
enum tap_want { TAP_NO, TAP_YES, TAP_PARSE };
static int tap_rd[2] = { -1, -1 };
static struct wg_tap_endpoint tap_eps[2];
static uint64_t tap_expected, tap_got;
static uint8_t frame[WG_TAP_HDR_LEN + 65536];
/* FUZZ_RECEIVE_GRO_STATS=1 prints these at exit: what the checks saw. */
static struct {
	unsigned long batches, writes, merged, segs, fed, delivered, tapped, tap_dropped;
} seen;

static union xb_sockaddr addr(const char *ip, uint16_t port)
{
	union xb_sockaddr sa = { .in = { .sin_family = AF_INET, .sin_port = htons(port) } };

	inet_pton(AF_INET, ip, &sa.in.sin_addr);
	return sa;
}

/* ---- Packets ---- */

/* p's IP header length and protocol; 0 when it is not IPv4 or IPv6. */
static size_t ip_hdr(const uint8_t *p, size_t len, uint8_t *proto)
{
	if (len >= 20 && p[0] >> 4 == 4 && (p[0] & 15) >= 5 && (size_t)(p[0] & 15) * 4 <= len) {
		*proto = p[9];
		return (size_t)(p[0] & 15) * 4;
	}
	if (len >= 40 && p[0] >> 4 == 6) {
		*proto = p[6];
		return 40;
	}
	return 0;
}

static uint32_t pseudo(const uint8_t *p, size_t ip, uint8_t proto, size_t l4)
{
	return (ip == 40 ? ref_sum16(p + 8, 32, 0) : ref_sum16(p + 12, 8, 0)) + proto + (uint32_t)l4;
}

/* IP length fields and checksums (IPv4 header, TCP, UDP) made right. */
static void fix(uint8_t *p, size_t len)
{
	uint8_t proto;
	size_t ip = ip_hdr(p, len, &proto), l4 = len - ip;

	if (!ip)
		return;
	if (ip == 40) {
		xb_put16(p + 4, (uint16_t)(len - 40));
	} else {
		xb_put16(p + 2, (uint16_t)len);
		xb_put16(p + 10, 0);
		xb_put16(p + 10, ref_csum(ref_sum16(p, ip, 0)));
	}
	if (proto == 6 && l4 >= 20) {
		xb_put16(p + ip + 16, 0);
		xb_put16(p + ip + 16, ref_csum(ref_sum16(p + ip, l4, pseudo(p, ip, proto, l4))));
	} else if (proto == 17 && l4 >= 8) {
		xb_put16(p + ip + 4, (uint16_t)l4);
		xb_put16(p + ip + 6, 0);
		xb_put16(p + ip + 6, ref_csum(ref_sum16(p + ip, l4, pseudo(p, ip, proto, l4))));
	}
}

/* What receive.c delivers of a plaintext: its inner packet's length by its
 * header, 0 when none (inner_packet()); and whether its source is one of
 * a's allowed IPs. */
static size_t inner_len(const uint8_t *p, size_t len)
{
	size_t n;

	if (len >= 20 && p[0] >> 4 == 4 && (p[0] & 15) >= 5) {
		n = xb_get16(p + 2);
		return n >= (size_t)(p[0] & 15) * 4 && n <= len ? n : 0;
	}
	if (len >= 40 && p[0] >> 4 == 6) {
		n = 40 + (size_t)xb_get16(p + 4);
		return n <= len ? n : 0;
	}
	return 0;
}

static const uint8_t net4[3] = { 198, 51, 100 };
static const uint8_t net6[6] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01 };

static bool src_allowed(const uint8_t *p)
{
	return p[0] >> 4 == 4 ? !memcmp(p + 12, net4, 3) : !memcmp(p + 8, net6, 6);
}

/* The stream a packet's order is kept in: its TCP flow (version, addresses,
 * ports), or one stream for everything else. */
static void stream_key(const uint8_t *p, size_t len, uint8_t key[40])
{
	uint8_t proto;
	size_t ip = ip_hdr(p, len, &proto);

	memset(key, 0, 40);
	if (!ip || proto != 6 || ip + 4 > len)
		return;
	key[0] = p[0] >> 4;
	if (ip == 40)
		memcpy(key + 4, p + 8, 32);
	else
		memcpy(key + 4, p + 12, 8);
	memcpy(key + 36, p + ip, 4);
}

static bool csums_ok(const uint8_t *p, size_t len, bool *ip_ok, bool *tcp_ok)
{
	uint8_t proto;
	size_t ip = ip_hdr(p, len, &proto);

	*ip_ok = *tcp_ok = true;
	if (!ip)
		return true;
	if (ip != 40)
		*ip_ok = ref_csum(ref_sum16(p, ip, 0)) == 0;
	if (proto == 6 && len >= ip + 20)
		*tcp_ok = ref_csum(ref_sum16(p + ip, len - ip, pseudo(p, ip, proto, len - ip))) == 0;
	return *ip_ok && *tcp_ok;
}

/* ---- The device ---- */

/* The tap on dev, endpoints 192.0.2.53:53 and [2001:db8::53]:53. Its
 * socket holds a whole batch of queries (as root; else a full one drops
 * some, which the checks allow for). */
static void tap_setup(struct wg_device *dev, int i)
{
	int sp[2], buf = 64 << 20;

	tap_eps[0] = (struct wg_tap_endpoint){ .family = 4, .port = 53, .addr = { 192, 0, 2, 53 } };
	tap_eps[1] = (struct wg_tap_endpoint){ .family = 6, .port = 53 };
	inet_pton(AF_INET6, "2001:db8::53", tap_eps[1].addr);
	/* The data thread's epoll set, which the tap's socket joins (nobody
	 * waits on it here). */
	check((dev->epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	check(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	for (int k = 0; k < 2; k++)
		if (setsockopt(sp[k], SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0 ||
		    setsockopt(sp[k], SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0) {
			setsockopt(sp[k], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
			setsockopt(sp[k], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		}
	check(wg_device_set_tap(dev, sp[0], tap_eps, 2) == 0);
	tap_rd[i] = sp[1];
}

/* Device i (made once; 1 with a receive queue), with a fresh peer a each
 * run that has sent b its initiation: b holds a's "next" keypair. */
static struct wg_device *setup(int i)
{
	struct wg_timing t;
	struct wg_conf c = { .replace_peers = true };
	struct wg_peer_conf *pc;
	struct xb_prefix p4 = { .family = AF_INET, .cidr = 24 }, p6 = { .family = AF_INET6, .cidr = 48 };
	struct noise_identity ida;
	struct noise_handshake hs;
	struct cookie ck;
	struct message_handshake_initiation init;
	union xb_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);
	struct wg_device *dev = devs[i];

	wg_timing_default(&t);
	if (!dev) {
		check(wg_device_alloc(&dev, i ? "fuzzgq0" : "fuzzg0", &t) == 0);
		check((dev->tun_fd = memfd_create("tun", MFD_CLOEXEC)) >= 0);
		check((dev->gro = offload_gro_new(WG_GRO_BYTES)));
		offload_gro_set_flags(dev->gro, OFFLOAD_GRO_TRUSTED | OFFLOAD_GRO_IOV);
		dev->tun_offload = true;
		/* The queue as wg_device_set_workers() makes it for two or
		 * more workers, with the opening done inline (no helper
		 * threads: dev->workers stays NULL), so runs stay repeatable. */
		if (i)
			check(wg_rxq_init(dev));
		tap_setup(dev, i);
		devs[i] = dev;
	}
	memcpy(c.private_key, key_b, 32);
	c.has_private_key = true;
	pc = wg_conf_add_peer(&c);
	memcpy(pc->public_key, pub_a, 32);
	memcpy(p4.addr, net4, 3);
	memcpy(p6.addr, net6, 6);
	xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p4);
	xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p6);
	check(wg_device_set(dev, &c) == 0);
	wg_conf_free(&c);
	dev->last_under_load_ns = 0;
	dev->handshakes_this_batch = 0;

	noise_identity_set(&ida, key_a);
	noise_handshake_init(&hs, &ida, dev->identity.static_public, NULL);
	wg_cookie_init(&ck, dev->identity.static_public);
	noise_create_initiation(&init, &hs, &ida, 7);
	wg_cookie_add_macs(&ck, &init, sizeof(init), 1);
	wg_receive(dev, (uint8_t *)&init, sizeof(init), &from, &to, 1, T_INIT);
	noise_identity_clear(&ida);
	check(dev->peers && dev->peers->next_kp);
	return dev;
}

/* Room for a message of mlen bytes in the receive buffer; its offset. A
 * separate datagram starts behind a CANARY gap; a glued one right behind
 * the last. SIZE_MAX when the batch's buffer or message table is full. */
static size_t place(size_t mlen)
{
	size_t gap = glue && n_msgs ? 0 : GAP;

	if (n_msgs == MAXMSG || rx_used + gap + mlen + GAP > RXBUF || pt_used + mlen > RXBUF)
		return SIZE_MAX;
	if (gap) {
		memset(rxbuf + rx_used, CANARY, gap);
		gaps[n_gaps++] = (struct gap){ rx_used, gap };
	}
	rx_used += gap;
	return rx_used;
}

enum fault { OK, BAD_TAG, REPLAY, BAD_INDEX };

/* e (a packet that passes cryptokey routing, pt its plaintext) goes to
 * the tap, not the TUN: its frame's header and payload, as expected. */
static void tap_expect(struct msg *e, const uint8_t *pt, enum tap_want tap)
{
	size_t hl, plen;

	if (tap == TAP_PARSE) {
		if (!wg_tap_parse(tap_eps, 2, pt, e->n, &e->th, &e->poff, &plen))
			return;
	} else {
		bool v4 = pt[0] >> 4 == 4;

		hl = v4 ? 20 : 40;
		memset(&e->th, 0, sizeof(e->th));
		e->th.family = v4 ? 4 : 6;
		memcpy(&e->th.sport, pt + hl, 2);
		memcpy(&e->th.dport, pt + hl + 2, 2);
		memcpy(e->th.src, pt + (v4 ? 12 : 8), v4 ? 4 : 16);
		memcpy(e->th.dst, pt + (v4 ? 16 : 24), v4 ? 4 : 16);
		e->poff = hl + 8;
	}
	e->delivered = false;
	e->tapped = true;
	tap_expected++;
	seen.tapped++;
}

/* Seal pt (plen bytes, of which the first n are the inner packet) as a
 * data message into the batch and feed it to wg_receive(). False when the
 * batch is full (nothing fed). */
static bool feed(struct wg_device *dev, const uint8_t *pt, size_t plen, enum fault f, enum tap_want tap)
{
	union xb_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);
	struct noise_keypair *kp = dev->peers->next_kp ? dev->peers->next_kp : dev->peers->current;
	size_t mlen = message_data_len(plen), at = place(mlen);
	struct message_data *m;
	struct msg *e;
	uint64_t ctr;

	if (at == SIZE_MAX)
		return false;
	if (f == REPLAY && !any_accepted)
		f = BAD_INDEX;
	ctr = f == REPLAY ? last_accepted : counter++;
	m = (struct message_data *)(rxbuf + at);
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = kp->local_index + (f == BAD_INDEX);
	m->counter = ctr;
	/* Our side's send key is the device's receive key. */
	noise_encrypt(m->encrypted_data, pt, plen, ctr, kp->recv_key);
	if (f == BAD_TAG)
		m->encrypted_data[plen / 2] ^= 1;
	rx_used += mlen;

	e = &msgs[n_msgs++];
	memset(e, 0, sizeof(*e));
	e->at = at;
	e->plen = plen;
	e->pt = pt_used;
	memcpy(pt_pool + pt_used, pt, plen);
	pt_used += plen;
	memcpy(e->head, m, sizeof(e->head));
	e->next = -1;
	if (f == OK) {
		last_accepted = ctr;
		any_accepted = true;
		e->n = inner_len(pt, plen);
		e->delivered = e->n && src_allowed(pt);
		if (e->delivered && tap != TAP_NO)
			tap_expect(e, pt, tap);
		seen.delivered += e->delivered;
		if (plen && !e->n)
			bad_inner_expected++;
	}
	wg_receive(dev, (uint8_t *)m, mlen, &from, &to, 1, T_RUN);
	return true;
}

/* ---- Checks ---- */

static int stream_of(const uint8_t *p, size_t len)
{
	uint8_t key[40];
	size_t i;

	stream_key(p, len, key);
	for (i = 0; i < n_streams; i++)
		if (!memcmp(streams[i].key, key, 40))
			return (int)i;
	memcpy(streams[i].key, key, 40);
	streams[i].head = streams[i].tail = -1;
	n_streams++;
	return (int)i;
}

/* Link the delivered messages into their streams, in the order fed. */
static void expect(void)
{
	n_streams = 0;
	for (size_t i = 0; i < n_msgs; i++) {
		struct msg *e = &msgs[i];
		const uint8_t *p = pt_pool + e->pt;
		bool ip_ok, tcp_ok;

		if (!e->delivered)
			continue;
		csums_ok(p, e->n, &ip_ok, &tcp_ok);
		e->bad_ip_csum = !ip_ok;
		e->bad_tcp_csum = !tcp_ok;
		e->stream = stream_of(p, e->n);
		if (streams[e->stream].tail >= 0)
			msgs[streams[e->stream].tail].next = (int)i;
		else
			streams[e->stream].head = (int)i;
		streams[e->stream].tail = (int)i;
	}
}

/* Segment s (of a write, merged or not) is the next packet of its stream. */
static void match(const uint8_t *s, size_t len, bool merged)
{
	int st = stream_of(s, len), i = streams[st].head;
	const uint8_t *p;
	uint8_t proto;
	size_t ip;
	struct msg *e;

	check(i >= 0);	/* a packet that was not fed, or came out twice */
	e = &msgs[i];
	p = pt_pool + e->pt;
	streams[st].head = e->next;
	check(len == e->n);
	ip = ip_hdr(p, len, &proto);
	for (size_t k = 0; k < len; k++) {
		if (merged && ip == 20 && e->bad_ip_csum && (k == 10 || k == 11))
			continue;
		if (merged && e->bad_tcp_csum && (k == ip + 16 || k == ip + 17))
			continue;
		check(s[k] == p[k]);
	}
}

/* One write at w (HDR + the packet): its header, then its segments. */
static size_t check_write(const uint8_t *w, size_t avail)
{
	struct virtio_net_hdr vh;
	const uint8_t *p = w + HDR;
	size_t len, ip, off[OFFLOAD_GRO_MAX_PKTS], lens[OFFLOAD_GRO_MAX_PKTS];
	bool merged;
	uint8_t proto;
	int n;

	check(avail >= HDR + 20);
	memcpy(&vh, w, HDR);
	check(p[0] >> 4 == 4 || p[0] >> 4 == 6);
	len = p[0] >> 4 == 4 ? xb_get16(p + 2) : 40 + (size_t)xb_get16(p + 4);
	check(len >= 20 && HDR + len <= avail);
	merged = vh.gso_type != VIRTIO_NET_HDR_GSO_NONE;
	seen.writes++;
	seen.merged += merged;
	if (!merged) {
		check(vh.flags == VIRTIO_NET_HDR_F_DATA_VALID && !vh.hdr_len && !vh.gso_size &&
		      !vh.csum_start && !vh.csum_offset);
	} else {
		ip = ip_hdr(p, len, &proto);
		check(ip == 20 || ip == 40);
		check(proto == 6 && vh.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM);
		check(vh.gso_type == (ip == 40 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4));
		check(vh.csum_start == ip && vh.csum_offset == 16 && vh.gso_size > 0);
		check(ip == 40 || ref_csum(ref_sum16(p, 20, 0)) == 0);
	}
	n = offload_segment(w, HDR + len, segbuf, SEGBUF, off, lens, OFFLOAD_GRO_MAX_PKTS);
	check(n >= 1 && (merged || n == 1));
	seen.segs += (unsigned)n;
	for (int i = 0; i < n; i++)
		match(segbuf + off[i], lens[i], merged);
	return HDR + len;
}

/* What came out of the tap's socket: the batch's taken packets, framed,
 * in the order fed, each once; those that did not come were dropped. */
static void check_tap(struct wg_device *dev)
{
	int rd = tap_rd[dev == devs[1]];
	size_t i = 0;
	ssize_t r;

	while ((r = recv(rd, frame, sizeof(frame), MSG_DONTWAIT)) >= 0) {
		const struct msg *e;
		size_t plen;

		while (i < n_msgs && !msgs[i].tapped)
			i++;
		if (dev->stats.tap_dropped == 0)	/* else one may be missing */
			check(i < n_msgs);
		for (; i < n_msgs; i++) {
			e = &msgs[i];
			plen = e->n - e->poff;
			if (e->tapped && (size_t)r == WG_TAP_HDR_LEN + plen &&
			    !memcmp(frame, &e->th, WG_TAP_HDR_LEN) &&
			    !memcmp(frame + WG_TAP_HDR_LEN, pt_pool + e->pt + e->poff, plen))
				break;
			check(!e->tapped || dev->stats.tap_dropped);	/* a frame out of order, or made wrong */
		}
		check(i < n_msgs);	/* a frame that was never fed, or came twice */
		i++;
		tap_got++;
	}
	check(errno == EAGAIN);
	check(dev->stats.tap_queries == tap_expected);
	check(tap_got + dev->stats.tap_dropped == tap_expected);
	seen.tap_dropped = dev->stats.tap_dropped;
}

static void check_batch(struct wg_device *dev)
{
	off_t end = lseek(dev->tun_fd, 0, SEEK_CUR);
	size_t got, at = 0;

	check(end >= 0 && (size_t)end <= OUTBUF);
	got = (size_t)end;
	check(pread(dev->tun_fd, outbuf, got, 0) == (ssize_t)got);
	expect();
	seen.batches++;
	seen.fed += n_msgs;
	while (at < got)
		at += check_write(outbuf + at, got - at);
	for (size_t i = 0; i < n_streams; i++)
		check(streams[i].head < 0);	/* a packet fed never came out */
	for (size_t i = 0; i < n_gaps; i++)
		for (size_t k = 0; k < gaps[i].len; k++)
			check(rxbuf[gaps[i].at + k] == CANARY);
	for (size_t i = 0; i < n_msgs; i++) {
		const struct msg *e = &msgs[i];
		check(!memcmp(rxbuf + e->at, e->head, sizeof(e->head)));
		if (e->delivered)
			check(!memcmp(rxbuf + e->at + sizeof(struct message_data) + e->n,
				      pt_pool + e->pt + e->n, e->plen - e->n));
	}
	check_tap(dev);
	check(dev->stats.tx_send_failed == 0);
	check(dev->stats.rx_bad_inner == bad_inner_expected);
	check(ftruncate(dev->tun_fd, 0) == 0 && lseek(dev->tun_fd, 0, SEEK_SET) == 0);
}

static void batch_end(struct wg_device *dev)
{
	wg_tun_flush(dev);
	check_batch(dev);
	rx_used = pt_used = n_msgs = n_gaps = 0;
}

/* ---- Records ---- */

/* Seal a packet; a full batch is ended and the packet fed to the next. */
static void feed_pkt(struct wg_device *dev, const uint8_t *pt, size_t plen, enum fault f, enum tap_want tap)
{
	if (!feed(dev, pt, plen, f, tap)) {
		batch_end(dev);
		check(feed(dev, pt, plen, f, tap));
	}
}

/* A flow's next segment: its headers, n payload bytes from src (k bytes,
 * repeated; a running pattern when k is 0), padded as a WireGuard sender
 * pads (to 16). Moves the flow on. */
static void segment(struct wg_device *dev, struct flow *fl, const uint8_t *src, size_t k, size_t n,
		    uint8_t flags, bool ip_id_stays)
{
	static uint8_t pkt[MAXPL + 16];
	size_t h = fl->ip + fl->thl, len, plen;
	uint32_t seq = xb_get32(fl->h + fl->ip + 4);

	if (n > MAXPL - h)
		n = MAXPL - h;
	len = h + n;
	plen = (len + 15) & ~(size_t)15;
	memcpy(pkt, fl->h, h);
	for (size_t i = 0; i < n; i++)
		pkt[h + i] = k ? src[i % k] : (uint8_t)(seq + i);
	memset(pkt + len, 0, plen - len);
	pkt[fl->ip + 13] = flags;
	fix(pkt, len);
	feed_pkt(dev, pkt, plen, OK, TAP_NO);
	xb_put32(fl->h + fl->ip + 4, seq + (uint32_t)n);
	if (fl->ip == 20 && !ip_id_stays)
		xb_put16(fl->h + 4, (uint16_t)(xb_get16(fl->h + 4) + 1));
}

/* op >> 4 & 7 names the slot; bytes: [0..1] port, [2..5] sequence number,
 * [6] & 3 option words (NOP), & 4 the source outside the allowed IPs. */
static struct flow *flow_new(uint8_t op, const uint8_t *b, size_t len)
{
	struct flow *fl = &flows[op >> 4 & 7];
	uint8_t opt = len > 6 ? b[6] : 0;
	bool v6 = op & 8, out = opt & 4;
	uint8_t *h = fl->h, *t;

	memset(fl, 0, sizeof(*fl));
	fl->used = true;
	fl->ip = v6 ? 40 : 20;
	fl->thl = 20 + 4 * (size_t)(opt & 3);
	t = h + fl->ip;
	if (v6) {
		h[0] = 0x60;
		h[6] = 6;
		h[7] = 64;
		memcpy(h + 8, net6, 6);
		h[13] ^= out ? 3 : 0;	/* 2001:db8:2::/48 */
		h[23] = len > 1 ? b[1] : 1;
		h[24] = 0x20, h[25] = 0x01, h[26] = 0x0d, h[27] = 0xb8, h[39] = 1;
	} else {
		h[0] = 0x45;
		h[6] = 0x40;	/* DF */
		h[8] = 64;
		h[9] = 6;
		memcpy(h + 12, out ? (const uint8_t[3]){ 203, 0, 113 } : net4, 3);
		h[15] = len > 1 ? b[1] : 1;
		h[16] = 192, h[18] = 2, h[19] = 1;
	}
	xb_put16(t, len > 1 ? xb_get16(b) : 40000);
	xb_put16(t + 2, 443);
	xb_put32(t + 4, len > 5 ? xb_get32(b + 2) : 1);
	xb_put32(t + 8, 1000);
	t[12] = (uint8_t)(fl->thl / 4 << 4);
	t[13] = 0x10;
	xb_put16(t + 14, 512);
	memset(t + 20, 1, fl->thl - 20);
	return fl;
}

static void rec_odd(struct wg_device *dev, struct flow *fl, const uint8_t *b, size_t len)
{
	uint8_t ttl = fl->h[fl->ip == 40 ? 7 : 8], win = fl->h[fl->ip + 15], opts;
	uint32_t seq = xb_get32(fl->h + fl->ip + 4);
	size_t hdr_len = len < 3 ? len : 3;
	static uint8_t pkt[MAXPL + 16];
	size_t h = fl->ip + fl->thl, n, plen;

	if (len < 3)
		return;
	opts = b[2];
	xb_put32(fl->h + fl->ip + 4, seq + (uint32_t)(int8_t)b[0]);
	if (opts & 1)
		fl->h[fl->ip == 40 ? 7 : 8] ^= 0x20;
	if (opts & 8)
		fl->h[fl->ip + 15] ^= 0x40;
	if (!(opts & 2)) {
		segment(dev, fl, b + hdr_len, len - hdr_len, len - hdr_len, b[1], opts & 4);
	} else {
		/* The same with the TCP checksum wrong (by its sender). */
		n = len - hdr_len > MAXPL - h ? MAXPL - h : len - hdr_len;
		plen = (h + n + 15) & ~(size_t)15;
		memcpy(pkt, fl->h, h);
		memcpy(pkt + h, b + hdr_len, n);
		memset(pkt + h + n, 0, plen - h - n);
		pkt[fl->ip + 13] = b[1];
		fix(pkt, h + n);
		pkt[fl->ip + 16] ^= 0x5a;
		feed_pkt(dev, pkt, plen, OK, TAP_NO);
		xb_put32(fl->h + fl->ip + 4, xb_get32(fl->h + fl->ip + 4) + (uint32_t)n);
		if (fl->ip == 20 && !(opts & 4))
			xb_put16(fl->h + 4, (uint16_t)(xb_get16(fl->h + 4) + 1));
	}
	fl->h[fl->ip == 40 ? 7 : 8] = ttl;
	fl->h[fl->ip + 15] = win;
}

static void rec_burst(struct wg_device *dev, struct flow *fl, uint8_t op, const uint8_t *b, size_t len)
{
	unsigned count = len ? 1u + b[0] : 1;
	size_t mss = 1 + (len > 2 ? (size_t)(b[1] | (b[2] & 0x1f) << 8) : 100);
	size_t last = len > 3 ? 1 + b[3] % mss : mss;

	for (unsigned i = 0; i < count; i++)
		segment(dev, fl, NULL, 0, i + 1 < count ? mss : last,
			(uint8_t)(0x10 | (i + 1 == count && (op & 8) ? 0x08 : 0)), false);
}

static void rec_raw(struct wg_device *dev, uint8_t op, const uint8_t *b, size_t len)
{
	static uint8_t pkt[65536];
	size_t plen = len > MAXPL ? MAXPL : len;

	memcpy(pkt, b, plen);
	if (op & 8) {
		if (plen >= 40 && pkt[0] >> 4 == 6)
			memcpy(pkt + 8, net6, 6);
		else if (plen >= 20 && pkt[0] >> 4 == 4)
			memcpy(pkt + 12, net4, 3);
		fix(pkt, plen);
	}
	feed_pkt(dev, pkt, plen, OK, TAP_PARSE);
}

/* A UDP datagram from a's allowed IPs, to the tap's endpoint unless
 * b[0] says otherwise (see the top); whether the tap takes it is decided
 * here from what was made, not by the tap's parser. */
static void rec_udp(struct wg_device *dev, const uint8_t *b, size_t len)
{
	static uint8_t pkt[MAXPL + 16];
	uint8_t how = len ? b[0] : 0;
	bool v6 = how & 1, frag = !v6 && (how & 0x10), none = how & 0x20, wrong = !none && (how & 8);
	size_t ip = v6 ? 40 : 20, n = len > 2 ? len - 2 : 0, plen, tot;
	uint16_t c;
	bool taken;

	if (n > MAXPL - ip - 8)
		n = MAXPL - ip - 8;
	tot = ip + 8 + n;
	plen = (tot + 15) & ~(size_t)15;
	memset(pkt, 0, plen);
	if (v6) {
		pkt[0] = 0x60;
		pkt[6] = 17;
		pkt[7] = 64;
		memcpy(pkt + 8, net6, 6);
		pkt[23] = 7;
		memcpy(pkt + 24, tap_eps[1].addr, 16);
		pkt[39] ^= how & 4 ? 1 : 0;
	} else {
		pkt[0] = 0x45;
		pkt[6] = frag ? 0x20 : 0x40;	/* MF, or DF */
		pkt[8] = 64;
		pkt[9] = 17;
		memcpy(pkt + 12, net4, 3);
		pkt[15] = 7;
		memcpy(pkt + 16, tap_eps[0].addr, 4);
		pkt[19] ^= how & 4 ? 1 : 0;
	}
	pkt[ip] = 0xc0;
	pkt[ip + 1] = len > 1 ? b[1] : 1;
	xb_put16(pkt + ip + 2, how & 2 ? 5353 : 53);
	if (n)
		memcpy(pkt + ip + 8, b + 2, n);
	fix(pkt, tot);
	c = xb_get16(pkt + ip + 6);
	if (!c)
		c = 0xffff;	/* RFC 768: 0 is "none"; its sender sends all ones */
	if (wrong)
		c = (c ^ 0x5a5a) ? c ^ 0x5a5a : 0xa5a5;
	xb_put16(pkt + ip + 6, none ? 0 : c);
	taken = !(how & (2 | 4)) && !wrong && !frag && !(v6 && none) && n <= WG_TAP_PAYLOAD_MAX;
	feed_pkt(dev, pkt, plen, OK, taken ? TAP_YES : TAP_NO);
}

static void record(struct wg_device *dev, uint8_t op, const uint8_t *b, size_t len)
{
	struct flow *fl = &flows[op >> 4 & 7];
	uint8_t junk[sizeof(struct message_handshake_cookie)] = { MESSAGE_HANDSHAKE_COOKIE };
	union xb_sockaddr from = addr("203.0.113.9", 40000);

	switch (op & 7) {
	case 0:
		fl = flow_new(op, b, len);
		segment(dev, fl, len > 7 ? b + 7 : NULL, len > 7 ? len - 7 : 0, len > 7 ? len - 7 : 0,
			0x10, false);
		break;
	case 1:
		if (fl->used)
			segment(dev, fl, b, len, len, (uint8_t)(0x10 | (op & 8)), false);
		break;
	case 2:
		if (fl->used)
			rec_burst(dev, fl, op, b, len);
		break;
	case 3:
		if (fl->used)
			rec_odd(dev, fl, b, len);
		break;
	case 4:
		rec_raw(dev, op, b, len);
		break;
	case 5:
		feed_pkt(dev, b, len > MAXPL ? MAXPL : len, (enum fault)(1 + (op >> 4 & 3) % 3), TAP_NO);
		break;
	case 6:
		if (op & 8)
			rec_udp(dev, b, len);
		else
			glue = !glue;
		break;
	default:
		if (op & 8)
			wg_receive(dev, junk, sizeof(junk), &from, NULL, 1, T_RUN);
		else
			batch_end(dev);
		break;
	}
}

static void print_seen(void)
{
	fprintf(stderr, "fuzz_receive_gro: %lu batches, %lu messages fed, %lu delivered, %lu writes "
		"(%lu merged), %lu segments cut back, %lu taken by the tap (%lu dropped, last run)\n",
		seen.batches, seen.fed, seen.delivered, seen.writes, seen.merged, seen.segs, seen.tapped,
		seen.tap_dropped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct wg_device *dev;

	if (!init) {
		log_init("fuzz", LOG_LVL_ERR, false);
		noise_init();
		randombytes_buf(key_a, 32);
		randombytes_buf(key_b, 32);
		crypto_scalarmult_base(pub_a, key_a);
		check((rxbuf = malloc(RXBUF)) && (pt_pool = malloc(RXBUF)) && (outbuf = malloc(OUTBUF)) &&
		      (segbuf = malloc(SEGBUF)));
		if (getenv("FUZZ_RECEIVE_GRO_STATS"))
			atexit(print_seen);
		init = true;
	}
	if (!size)
		return 0;
	dev = setup(data[0] & 1);
	data++;
	size--;
	memset(flows, 0, sizeof(flows));
	memset(&dev->stats, 0, sizeof(dev->stats));
	glue = false;
	counter = 0;
	any_accepted = false;
	bad_inner_expected = 0;
	tap_expected = tap_got = 0;
	rx_used = pt_used = n_msgs = n_gaps = 0;
	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		record(dev, op, data, len);
		data += len;
		size -= len;
	}
	batch_end(dev);
	return 0;
}
