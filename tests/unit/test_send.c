/* The send path's TSO reads (wg_send_from_tun_gso), whose segments are cut
 * straight into the send queue's slots: every segment must reach the peer,
 * whatever the queue held before the read.
 *
 * The rig (as test_receive's): two devices a and b in this process, each with
 * a UDP socket on 127.0.0.1 and a socketpair standing in for its TUN; pump()
 * moves datagrams between them until the wire is quiet.
 *
 * Cases: a read arriving when the queue is exactly full (send_data() flushes
 * lazily, before the next packet, so the queue stays full between reads: the
 * re-landed change cut into q->slot[WG_BATCH], past the array, and the SAN
 * build aborted there, which stalled TCP through the tunnel); a read of more
 * segments than the queue has slots (a small MSS), which the copying path
 * always sent and the slot path dropped; a read at the least MSS Linux
 * sends with, which the copying path dropped.
 */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/device.h"
#include "tunnel/aead.h"
#include "tunnel/offload.h"
#include "tunnel/wgconf.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

struct end {
	struct wg_device *dev;
	int tun;			/* our side of the device's TUN socketpair */
	union xb_sockaddr addr;		/* its UDP socket's address */
	uint8_t inner[4];		/* its tunnel address */
};

static struct end a, b;

static void end_open(struct end *e, const char *name, const char *inner)
{
	struct wg_timing t;
	int sp[2], big = 8 << 20;

	wg_timing_default(&t);
	CHECK(wg_device_alloc(&e->dev, name, &t) == 0);
	CHECK(wg_device_set_workers(e->dev, getenv("XB_WG_WORKERS") ?
					    (unsigned)atoi(getenv("XB_WG_WORKERS")) : 1) == 0);
	/* Room for a whole burst on loopback before pump() reads it. */
	CHECK((e->dev->sock4 = wgtest_loopback_udp(&e->addr, big)) >= 0);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	e->dev->tun_fd = sp[0];
	e->tun = sp[1];
	CHECK(inet_pton(AF_INET, inner, e->inner) == 1);
}

static void end_config(struct end *self, const uint8_t key[32], const struct end *other,
		       const uint8_t other_pub[32])
{
	struct xb_prefix p = { .family = AF_INET, .cidr = 32 };

	memcpy(p.addr, other->inner, 4);
	CHECK(wgtest_one_peer(self->dev, key, other_pub, &other->addr, &p, 1) == 0);
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

static void pump(void)
{
	for (int i = 0; i < 5000; i++)
		if (!pump_one(&a) && !pump_one(&b))
			return;
	CHECK(!"the rig's wire never went quiet");
}

/* A small UDP packet from a to b whose payload is its number. */
static size_t small_packet(uint8_t *p, unsigned i)
{
	memset(p, 0, 32);
	p[0] = 0x45;
	p[3] = 32;
	p[8] = 64;
	p[9] = IPPROTO_UDP;
	memcpy(p + 12, a.inner, 4);
	memcpy(p + 16, b.inner, 4);
	xb_put16(p + 24, 12);
	xb_put32(p + 28, i);
	return 32;
}

/* A TSO read (vnet header, IPv4, TCP with NEEDS_CSUM) from a to b:
 * payload bytes of a counting pattern, cut at mss. */
static size_t tso_read(uint8_t *in, size_t payload, uint16_t mss)
{
	struct virtio_net_hdr vh = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				     .hdr_len = 40, .gso_size = mss, .csum_start = 20, .csum_offset = 16 };
	uint8_t *ip = in + OFFLOAD_VNET_HDR_LEN;
	size_t len = 40 + payload;

	memcpy(in, &vh, sizeof(vh));
	memset(ip, 0, 40);
	ip[0] = 0x45;
	xb_put16(ip + 2, (uint16_t)len);
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, a.inner, 4);
	memcpy(ip + 16, b.inner, 4);
	xb_put16(ip + 10, (uint16_t)~offload_csum(ip, 20, 0));
	xb_put16(ip + 20, 40000);
	xb_put16(ip + 22, 5001);
	xb_put32(ip + 24, 1000);
	ip[32] = 5 << 4;
	ip[33] = 0x18;		/* PSH, ACK */
	xb_put16(ip + 34, 65535);
	for (size_t k = 0; k < payload; k++)
		ip[40 + k] = (uint8_t)(k * 7 + k / 251);
	return OFFLOAD_VNET_HDR_LEN + len;
}

/* b's TUN must hold segment after segment of the read: sequence numbers
 * and bytes in order, each TCP checksum right. */
static void expect_segments(size_t payload, uint16_t mss)
{
	static uint8_t got[WG_MAX_PACKET];
	size_t done = 0;

	while (done < payload) {
		ssize_t n = read(b.tun, got, sizeof(got));
		size_t want = payload - done < mss ? payload - done : mss;
		uint8_t ph[12];

		CHECK_INT(n, ==, 40 + want);
		CHECK_INT(xb_get32(got + 24), ==, 1000 + done);
		for (size_t k = 0; k < want; k++)
			CHECK(got[40 + k] == (uint8_t)((done + k) * 7 + (done + k) / 251));
		memcpy(ph, got + 12, 8);
		ph[8] = 0;
		ph[9] = IPPROTO_TCP;
		xb_put16(ph + 10, (uint16_t)(20 + want));
		CHECK(offload_csum(got + 20, 20 + want, offload_csum(ph, 12, 0)) == 0xffff);
		done += want;
	}
}

/* Both ends up and a session: a's first packet waits for the handshake, then goes. */
static void rig_open(void)
{
	uint8_t ka[32], kb[32], pa[32], pb[32], p[32], got[64];

	log_init("test_send", LOG_LVL_ERR, false);
	noise_init();
	randombytes_buf(ka, 32);
	randombytes_buf(kb, 32);
	crypto_scalarmult_base(pa, ka);
	crypto_scalarmult_base(pb, kb);
	end_open(&a, "txa", "198.51.100.1");
	end_open(&b, "txb", "198.51.100.2");
	end_config(&a, ka, &b, pb);
	end_config(&b, kb, &a, pa);
	sodium_memzero(ka, 32);
	sodium_memzero(kb, 32);
	wg_send_from_tun(a.dev, p, small_packet(p, 0), clock_mono_ns());
	wg_txq_flush(a.dev);
	pump();
	CHECK(read(b.tun, got, sizeof(got)) == 32);
	CHECK(a.dev->peers->current != NULL);
}

static void rig_close(void)
{
	close(a.tun);
	close(b.tun);
	wg_device_close(a.dev);
	wg_device_close(b.dev);
}

/* The queue exactly full (WG_BATCH small packets, no flush), then a read. */
TEST(read_into_full_queue)
{
	static uint8_t in[OFFLOAD_VNET_HDR_LEN + WG_MAX_PACKET], scratch[2 * WG_MAX_PACKET];
	uint8_t p[32], got[64];
	size_t len;

	rig_open();
	for (unsigned i = 0; i < WG_BATCH; i++)
		wg_send_from_tun(a.dev, p, small_packet(p, i), clock_mono_ns());
	len = tso_read(in, 3 * 1200 + 345, 1200);
	CHECK(wg_send_from_tun_gso(a.dev, in, len, scratch, sizeof(scratch), clock_mono_ns()));
	wg_txq_flush(a.dev);
	pump();
	for (unsigned i = 0; i < WG_BATCH; i++) {
		CHECK(read(b.tun, got, sizeof(got)) == 32);
		CHECK_INT(xb_get32(got + 28), ==, i);
	}
	expect_segments(3 * 1200 + 345, 1200);
	CHECK(read(b.tun, got, sizeof(got)) < 0);
	CHECK(a.dev->stats.tx_bad_packet == 0);
	rig_close();
}

/* More segments than WG_BATCH slots: up to WG_TUN_MAX_SEGS must still go. */
TEST(read_with_more_segments_than_slots)
{
	static uint8_t in[OFFLOAD_VNET_HDR_LEN + WG_MAX_PACKET], scratch[2 * WG_MAX_PACKET];
	uint8_t p[32], got[64];
	size_t len;

	rig_open();
	len = tso_read(in, 100 * 200 + 17, 200);	/* 101 segments */
	CHECK(wg_send_from_tun_gso(a.dev, in, len, scratch, sizeof(scratch), clock_mono_ns()));
	wg_txq_flush(a.dev);
	pump();
	expect_segments(100 * 200 + 17, 200);
	CHECK(read(b.tun, got, sizeof(got)) < 0);
	/* And a read into a half-full queue that fits only after a flush. */
	for (unsigned i = 0; i < WG_BATCH / 2; i++)
		wg_send_from_tun(a.dev, p, small_packet(p, i), clock_mono_ns());
	len = tso_read(in, 40 * 1000, 1000);
	CHECK(wg_send_from_tun_gso(a.dev, in, len, scratch, sizeof(scratch), clock_mono_ns()));
	wg_txq_flush(a.dev);
	pump();
	for (unsigned i = 0; i < WG_BATCH / 2; i++) {
		CHECK(read(b.tun, got, sizeof(got)) == 32);
		CHECK_INT(xb_get32(got + 28), ==, i);
	}
	expect_segments(40 * 1000, 1000);
	CHECK(read(b.tun, got, sizeof(got)) < 0);
	CHECK(a.dev->stats.tx_bad_packet == 0);
	rig_close();
}

/* The largest read the kernel hands over at a segment size of 48 (the least
 * MSS a peer may advertise, tcp_min_snd_mss): 1 364 segments; and 2 000 of 8
 * bytes (TCP options under that MSS, or a hostile origin's segments merged by
 * GRO). The copying path cuts them a window at a time. A gateway forwards such reads too:
 * the kernel's GRO merges an origin's small segments into 64 KB before they
 * reach the device interface's TUN. With room for 128 the whole read was
 * dropped as tx_bad_packet, and again at every retransmission. */
TEST(read_at_least_mss)
{
	static uint8_t in[OFFLOAD_VNET_HDR_LEN + WG_MAX_PACKET], scratch[WG_SEG_BYTES];
	uint8_t got[64];
	size_t len, payload = 65535 - 40;

	rig_open();
	len = tso_read(in, payload, 48);
	CHECK(wg_send_from_tun_gso(a.dev, in, len, scratch, sizeof(scratch), clock_mono_ns()));
	wg_txq_flush(a.dev);
	pump();
	expect_segments(payload, 48);
	CHECK(read(b.tun, got, sizeof(got)) < 0);
	len = tso_read(in, 2000 * 8, 8);
	CHECK(wg_send_from_tun_gso(a.dev, in, len, scratch, sizeof(scratch), clock_mono_ns()));
	wg_txq_flush(a.dev);
	pump();
	expect_segments(2000 * 8, 8);
	CHECK(read(b.tun, got, sizeof(got)) < 0);
	CHECK(a.dev->stats.tx_bad_packet == 0);
	rig_close();
}


/* Copies of key (kept masked here, so that this copy is no hit) in the
 * process's writable memory, but the one at skip. */
static int key_copies(const uint8_t masked[32], const uint8_t *skip)
{
	FILE *f = fopen("/proc/self/maps", "r");
	uint8_t key[32];
	char line[512];
	int hits = 0;

	CHECK(f != NULL);
	for (int i = 0; i < 32; i++)
		key[i] = masked[i] ^ 0x5a;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perm[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) != 3 || perm[0] != 'r' || perm[1] != 'w' ||
		    strstr(line, "[vvar") || strstr(line, "[vsyscall"))
			continue;
		for (const uint8_t *p = (const uint8_t *)lo, *end = (const uint8_t *)hi; p + 32 <= end; p++) {
			if (!(p = memchr(p, key[0], (size_t)(end - p))) || p + 32 > end)
				break;
			if (p != key && p != skip && !memcmp(p, key, 32))
				hits++;
		}
	}
	if (f)
		fclose(f);
	sodium_memzero(key, sizeof(key));
	return hits;
}

static int sealer_pipe[2], sealer_done[2];

/* A control thread (xborder-wg's UAPI thread, xborderd's main thread):
 * turning on a peer's persistent keepalive seals one at once, here. The
 * thread then stays, as those do. */
static void *keepalive_setter(void *arg)
{
	struct wg_conf c = { 0 };
	struct wg_peer_conf *pc = wg_conf_add_peer(&c);
	char x = 0;

	memcpy(pc->public_key, arg, 32);
	pc->update_only = true;
	pc->has_persistent_keepalive = true;
	pc->persistent_keepalive = 25;
	CHECK(wg_device_set(a.dev, &c) == 0);
	wg_conf_free(&c);
	CHECK(write(sealer_done[1], &x, 1) == 1);
	CHECK(read(sealer_pipe[0], &x, 1) == 1);
	return NULL;
}

/* A session key sealed with on a thread that called wg_device_set() must
 * not outlive the keypair in that thread's libcrypto context: freeing a
 * keypair wipes only the freeing thread's (xb_aead_forget in peer.c). On
 * the old code the setter's cached key and OpenSSL's copy were found (2). */
TEST(session_key_not_left_on_a_setter_thread)
{
	uint8_t masked[32], pub[32];
	struct wg_conf c = { 0 };
	struct wg_peer_conf *pc;
	const uint8_t *live;
	pthread_t t;
	char x = 0;

#ifdef __SANITIZE_ADDRESS__
	SKIP("a scan of the whole process reads memory ASan poisons, and its heap is too big to scan; "
	     "the plain build runs this");
	return;
#endif
	rig_open();
	memcpy(pub, b.dev->identity.static_public, 32);
	for (int i = 0; i < 32; i++)
		masked[i] = a.dev->peers->current->send_key[i] ^ 0x5a;
	CHECK(pipe(sealer_pipe) == 0 && pipe(sealer_done) == 0);
	CHECK(pthread_create(&t, NULL, keepalive_setter, pub) == 0);
	CHECK(read(sealer_done[0], &x, 1) == 1);
	pump();
	/* a's peer goes, and its keypairs with it; this thread forgets too. */
	pc = wg_conf_add_peer(&c);
	memcpy(pc->public_key, pub, 32);
	pc->remove = true;
	CHECK(wg_device_set(a.dev, &c) == 0);
	wg_conf_free(&c);
	xb_aead_forget();
	/* b's keypair receives with the same key: that copy is live. */
	live = b.dev->peers->current ? b.dev->peers->current->recv_key : b.dev->peers->next_kp->recv_key;
	CHECK_INT(key_copies(masked, live), ==, 0);
	CHECK(write(sealer_pipe[1], &x, 1) == 1);
	pthread_join(t, NULL);
	sodium_memzero(masked, sizeof(masked));
	rig_close();
}
