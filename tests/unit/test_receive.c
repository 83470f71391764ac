/* The receive path against forged and replayed messages on live indices.
 *
 * Rule under test: no unauthenticated bytes change any state. A third party
 * sees every receiver index in clear (each data message carries one), so it
 * can aim anything at a live keypair or pending handshake; whatever it sends,
 * the session must go on carrying traffic with the same keys, no new
 * handshake, and the peers' endpoints where they were.
 *
 * The rig: two devices a and b in this process, each with a UDP socket on
 * 127.0.0.1 and a socketpair standing in for its TUN; pump() moves datagrams
 * between them until the wire is quiet. A third socket (the forger) sends
 * to either device.
 *
 * XB_WG_WORKERS=n runs the devices with n crypto workers (default 1): the
 * same rules must hold when data messages are opened in batches.
 */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/device.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

struct end {
	struct wg_device *dev;
	int tun;			/* our side of the device's TUN socketpair */
	union xb_sockaddr addr;		/* its UDP socket's address */
	uint8_t inner[4];		/* its tunnel address */
};

struct rig {
	struct end a, b;
	int forger;
	union xb_sockaddr forger_addr;
	unsigned handshakes;		/* initiations and responses a or b sent */
};

static void end_open(struct end *e, const char *name, const char *inner)
{
	struct wg_timing t;
	int sp[2];

	wg_timing_default(&t);
	CHECK(wg_device_alloc(&e->dev, name, &t) == 0);
	CHECK(wg_device_set_workers(e->dev, getenv("XB_WG_WORKERS") ?
					    (unsigned)atoi(getenv("XB_WG_WORKERS")) : 1) == 0);
	CHECK((e->dev->sock4 = wgtest_loopback_udp(&e->addr, 0)) >= 0);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	e->dev->tun_fd = sp[0];
	e->tun = sp[1];
	CHECK(inet_pton(AF_INET, inner, e->inner) == 1);
}

/* Configure `self' with its key and `other' as its one peer. */
static void end_config(struct end *self, const uint8_t key[32], const struct end *other,
		       const uint8_t other_pub[32])
{
	struct xb_prefix p = { .family = AF_INET, .cidr = 32 };

	memcpy(p.addr, other->inner, 4);
	CHECK(wgtest_one_peer(self->dev, key, other_pub, &other->addr, &p, 1) == 0);
}


/* Deliver one datagram waiting at e's socket; false when none is. */
static bool pump_one(struct rig *r, struct end *e)
{
	static uint8_t buf[WG_MAX_PACKET];
	union xb_sockaddr from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(e->dev->sock4, buf, sizeof(buf), 0, &from.sa, &flen);

	if (n <= 0)
		return false;
	if ((buf[0] == MESSAGE_HANDSHAKE_INITIATION || buf[0] == MESSAGE_HANDSHAKE_RESPONSE) &&
	    from.in.sin_port != r->forger_addr.in.sin_port)
		r->handshakes++;
	wg_receive(e->dev, buf, (size_t)n, &from, &e->addr, 1, clock_mono_ns());
	wg_tun_flush(e->dev);		/* ends the receive batch: what it sends, then */
	wg_txq_flush(e->dev);
	return true;
}

/* Until the wire is quiet (loopback delivers within the send call). */
static void pump(struct rig *r)
{
	for (int i = 0; i < 1000; i++)
		if (!pump_one(r, &r->a) && !pump_one(r, &r->b))
			return;
	CHECK(!"the rig's wire never went quiet");
}

/* An IPv4 packet from `from's tunnel address to `to's, with a tag byte. */
static size_t ip_packet(uint8_t *p, const struct end *from, const struct end *to, uint8_t tag)
{
	memset(p, 0, 60);
	p[0] = 0x45;
	p[3] = 60;
	p[8] = 64;
	p[9] = 17;
	memcpy(p + 12, from->inner, 4);
	memcpy(p + 16, to->inner, 4);
	memset(p + 20, tag, 40);
	return 60;
}

/* `from' sends a packet into its tunnel; true when `to' delivered exactly it. */
static bool carries(struct rig *r, struct end *from, struct end *to, uint8_t tag)
{
	uint8_t pkt[60], got[256];
	size_t len = ip_packet(pkt, from, to, tag);
	ssize_t n;

	wg_send_from_tun(from->dev, pkt, len, clock_mono_ns());
	wg_txq_flush(from->dev);
	pump(r);
	n = read(to->tun, got, sizeof(got));
	return n == (ssize_t)len && !memcmp(got, pkt, len) && read(to->tun, got, sizeof(got)) < 0;
}

static void rig_open(struct rig *r)
{
	uint8_t ka[32], kb[32], pa[32], pb[32];

	memset(r, 0, sizeof(*r));
	log_init("test_receive", LOG_LVL_ERR, false);
	noise_init();
	randombytes_buf(ka, 32);
	randombytes_buf(kb, 32);
	crypto_scalarmult_base(pa, ka);
	crypto_scalarmult_base(pb, kb);
	end_open(&r->a, "rxa", "198.51.100.1");
	end_open(&r->b, "rxb", "198.51.100.2");
	end_config(&r->a, ka, &r->b, pb);
	end_config(&r->b, kb, &r->a, pa);
	sodium_memzero(ka, 32);
	sodium_memzero(kb, 32);
	CHECK((r->forger = wgtest_loopback_udp(&r->forger_addr, 0)) >= 0);
}

static void rig_close(struct rig *r)
{
	close(r->a.tun);
	close(r->b.tun);
	close(r->forger);
	wg_device_close(r->a.dev);
	wg_device_close(r->b.dev);
}

static struct wg_peer *peer_of(struct end *e) { return e->dev->peers; }

/* A session both ways: a initiates, b confirms; both hold a current keypair. */
static void establish(struct rig *r)
{
	CHECK(carries(r, &r->a, &r->b, 1));
	CHECK(carries(r, &r->b, &r->a, 2));
	CHECK(peer_of(&r->a)->current && peer_of(&r->b)->current);
	CHECK(!peer_of(&r->b)->next_kp);
	r->handshakes = 0;
}

/* What a forged message must leave alone. */
struct snapshot {
	struct noise_keypair *current[2], *previous[2], *next[2];
	union xb_sockaddr endpoint[2];
	int64_t last_handshake[2];
	enum noise_handshake_state hs_state[2];
	bool cookie_valid[2];
};

static void snap(struct rig *r, struct snapshot *s)
{
	struct end *e[2] = { &r->a, &r->b };

	for (int i = 0; i < 2; i++) {
		struct wg_peer *p = peer_of(e[i]);
		s->current[i] = p->current;
		s->previous[i] = p->previous;
		s->next[i] = p->next_kp;
		s->endpoint[i] = p->endpoint;
		s->last_handshake[i] = p->last_handshake_sec * 1000000000LL + p->last_handshake_nsec;
		s->hs_state[i] = p->handshake.state;
		s->cookie_valid[i] = p->cookie.is_valid;
	}
}

/* After forgeries: nothing moved, and the session still carries traffic both
 * ways on the same keys without a handshake. */
static void unharmed(struct rig *r, const struct snapshot *before)
{
	struct snapshot after;

	snap(r, &after);
	for (int i = 0; i < 2; i++) {
		CHECK(after.current[i] == before->current[i]);
		CHECK(after.previous[i] == before->previous[i]);
		CHECK(after.next[i] == before->next[i]);
		CHECK(!memcmp(&after.endpoint[i], &before->endpoint[i], sizeof(after.endpoint[i])));
		CHECK_INT(after.last_handshake[i], ==, before->last_handshake[i]);
		CHECK_INT(after.hs_state[i], ==, before->hs_state[i]);
		CHECK_INT(after.cookie_valid[i], ==, before->cookie_valid[i]);
	}
	for (uint8_t t = 10; t < 15; t++) {
		CHECK(carries(r, &r->a, &r->b, t));
		CHECK(carries(r, &r->b, &r->a, (uint8_t)(t + 100)));
	}
	CHECK_INT(r->handshakes, ==, 0);
	CHECK(peer_of(&r->a)->current == before->current[0]);
	CHECK(peer_of(&r->b)->current == before->current[1]);
	CHECK(peer_of(&r->a)->current->receiving_valid && peer_of(&r->b)->current->receiving_valid);
}

static void forge(struct rig *r, const struct end *to, const void *msg, size_t len)
{
	CHECK(sendto(r->forger, msg, len, 0, &to->addr.sa, sizeof(to->addr.in)) == (ssize_t)len);
	pump(r);
}

/* A 32-byte data message (an empty payload's size) with random "ciphertext". */
static void forge_data(struct rig *r, struct end *to, uint64_t counter)
{
	uint8_t buf[MESSAGE_MINIMUM_LENGTH];
	struct message_data *m = (struct message_data *)buf;

	randombytes_buf(buf, sizeof(buf));
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = peer_of(to)->current->local_index;
	m->counter = counter;
	forge(r, to, buf, sizeof(buf));
}

TEST(forged_data_high_counter)
{
	static const uint64_t counters[] = { UINT64_MAX, REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES - 1,
					     1ULL << 63, 1000000 };
	struct rig r;
	struct snapshot s;

	rig_open(&r);
	establish(&r);
	snap(&r, &s);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		forge_data(&r, &r.b, counters[i]);
		forge_data(&r, &r.a, counters[i]);
	}
	CHECK_INT(r.b.dev->stats.rx_decrypt_failed + r.b.dev->stats.rx_no_keypair, ==, 5);
	unharmed(&r, &s);
	rig_close(&r);
}

/* Truncated, bit-flipped and replayed copies of a real data message. */
TEST(forged_data_truncated_tampered_replayed)
{
	uint8_t pkt[60], wire[256];
	struct message_data *m = (struct message_data *)wire;
	struct rig r;
	struct snapshot s;
	ssize_t n;

	rig_open(&r);
	establish(&r);
	snap(&r, &s);
	/* Catch a real a → b message before b sees it. */
	wg_send_from_tun(r.a.dev, pkt, ip_packet(pkt, &r.a, &r.b, 7), clock_mono_ns());
	wg_txq_flush(r.a.dev);
	n = recv(r.b.dev->sock4, wire, sizeof(wire), 0);
	CHECK(n > (ssize_t)MESSAGE_MINIMUM_LENGTH);
	for (size_t len = 4; len < MESSAGE_MINIMUM_LENGTH; len += 9)
		forge(&r, &r.b, wire, len);
	forge(&r, &r.b, wire, (size_t)n - 1);		/* the tag cut short */
	wire[n - 1] ^= 1;				/* a wrong tag */
	forge(&r, &r.b, wire, (size_t)n);
	wire[n - 1] ^= 1;
	m->counter += 100000;				/* a counter the tag does not cover */
	forge(&r, &r.b, wire, (size_t)n);
	m->counter -= 100000;
	CHECK(read(r.b.tun, pkt, sizeof(pkt)) < 0);	/* none of that was delivered */
	CHECK_INT(r.b.dev->stats.rx_decrypt_failed, ==, 3);
	CHECK_INT(r.b.dev->stats.rx_bad_length, ==, 4);
	forge(&r, &r.b, wire, (size_t)n);		/* the real one, late, from elsewhere */
	CHECK(read(r.b.tun, pkt, sizeof(pkt)) == 60);
	/* A real message moves the endpoint (roaming): put it back, then replay. */
	peer_of(&r.b)->endpoint = s.endpoint[1];
	forge(&r, &r.b, wire, (size_t)n);
	CHECK(read(r.b.tun, pkt, sizeof(pkt)) < 0);
	CHECK_INT(r.b.dev->stats.rx_replayed, ==, 1);
	unharmed(&r, &s);
	rig_close(&r);
}

/* A message sealed with the session's own key but a counter past the limit
 * is authentic, so the peer itself has used the keypair up: refused, and the
 * keypair takes no more (checked after decryption, as the kernel does). */
TEST(authentic_counter_past_limit_ends_receiving)
{
	uint8_t buf[MESSAGE_MINIMUM_LENGTH];
	struct message_data *m = (struct message_data *)buf;
	struct noise_keypair *kp;
	struct rig r;

	rig_open(&r);
	establish(&r);
	kp = peer_of(&r.b)->current;
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = kp->local_index;
	m->counter = REJECT_AFTER_MESSAGES;
	noise_encrypt(m->encrypted_data, NULL, 0, m->counter, kp->recv_key);
	forge(&r, &r.b, buf, sizeof(buf));
	CHECK(!kp->receiving_valid);
	CHECK(!carries(&r, &r.a, &r.b, 3));
	rig_close(&r);
}

/* Handshake responses and cookie replies aimed at a live keypair index, with
 * a correct mac1 (anyone can compute it from the public key). */
TEST(forged_response_and_cookie_on_live_index)
{
	struct message_handshake_response resp;
	struct message_handshake_cookie ck;
	struct cookie macs;
	struct rig r;
	struct snapshot s;
	uint64_t bad_before;

	rig_open(&r);
	establish(&r);
	snap(&r, &s);
	for (int i = 0; i < 2; i++) {
		struct end *to = i ? &r.b : &r.a;
		randombytes_buf(&resp, sizeof(resp));
		resp.header = (struct message_header){ .type = MESSAGE_HANDSHAKE_RESPONSE };
		resp.receiver_index = peer_of(to)->current->local_index;
		wg_cookie_init(&macs, to->dev->identity.static_public);
		wg_cookie_add_macs(&macs, &resp, sizeof(resp), clock_mono_ns());
		forge(&r, to, &resp, sizeof(resp));
		CHECK_INT(to->dev->stats.rx_handshake_failed, ==, 1);

		randombytes_buf(&ck, sizeof(ck));
		ck.header = (struct message_header){ .type = MESSAGE_HANDSHAKE_COOKIE };
		ck.receiver_index = peer_of(to)->current->local_index;
		bad_before = to->dev->stats.rx_bad_mac;
		forge(&r, to, &ck, sizeof(ck));
		CHECK_INT(to->dev->stats.rx_bad_mac, ==, bad_before + 1);
	}
	unharmed(&r, &s);
	rig_close(&r);
}

/* A pending handshake's index is live too: a forged response and cookie
 * reply on it change nothing, and the real response still completes it. */
TEST(forged_response_on_pending_handshake)
{
	struct message_handshake_initiation init;
	struct message_handshake_response resp;
	struct message_handshake_cookie ck;
	struct cookie macs;
	struct wg_peer *pa;
	struct noise_keypair *old;
	struct rig r;
	uint8_t hash[NOISE_HASH_LEN];
	/* b takes a new initiation only with a newer timestamp (TAI64N moves in
	 * 2^24 ns steps) and at most 50 a second. */
	struct timespec gap = { 0, 50 * 1000000 };

	rig_open(&r);
	establish(&r);
	nanosleep(&gap, NULL);
	pa = peer_of(&r.a);
	old = pa->current;
	pa->last_sent_handshake_ns = 0;
	wg_send_handshake_initiation(pa, false, clock_mono_ns());
	CHECK(recv(r.b.dev->sock4, &init, sizeof(init), 0) == sizeof(init));	/* held back */
	CHECK_INT(pa->handshake.state, ==, HANDSHAKE_CREATED_INITIATION);
	memcpy(hash, pa->handshake.hash, sizeof(hash));

	randombytes_buf(&resp, sizeof(resp));
	resp.header = (struct message_header){ .type = MESSAGE_HANDSHAKE_RESPONSE };
	resp.receiver_index = pa->handshake.local_index;
	wg_cookie_init(&macs, r.a.dev->identity.static_public);
	wg_cookie_add_macs(&macs, &resp, sizeof(resp), clock_mono_ns());
	forge(&r, &r.a, &resp, sizeof(resp));
	randombytes_buf(&ck, sizeof(ck));
	ck.header = (struct message_header){ .type = MESSAGE_HANDSHAKE_COOKIE };
	ck.receiver_index = pa->handshake.local_index;
	forge(&r, &r.a, &ck, sizeof(ck));
	CHECK_INT(pa->handshake.state, ==, HANDSHAKE_CREATED_INITIATION);
	CHECK(!memcmp(hash, pa->handshake.hash, sizeof(hash)));
	CHECK(!pa->cookie.is_valid && pa->cookie.have_sent_mac1);
	CHECK(pa->current == old);

	/* The held initiation arrives: the real handshake completes. */
	CHECK(sendto(r.a.dev->sock4, &init, sizeof(init), 0, &r.b.addr.sa, sizeof(r.b.addr.in)) ==
	      sizeof(init));
	pump(&r);
	CHECK(pa->current != old && pa->previous == old);
	CHECK(carries(&r, &r.a, &r.b, 4));
	CHECK(carries(&r, &r.b, &r.a, 5));
	rig_close(&r);
}

/* A replayed initiation (captured off the wire) and one from a stranger, both
 * with a good mac1, sent from a third address. */
TEST(replayed_and_foreign_initiation)
{
	struct message_handshake_initiation init;
	struct noise_identity stranger;
	struct noise_handshake hs;
	struct cookie macs;
	uint8_t ks[32], pkt[60];
	struct rig r;
	struct snapshot s;

	rig_open(&r);
	/* The first initiation, caught on its way to b, then let through. */
	wg_send_from_tun(r.a.dev, pkt, ip_packet(pkt, &r.a, &r.b, 1), clock_mono_ns());
	CHECK(recv(r.b.dev->sock4, &init, sizeof(init), 0) == sizeof(init));
	CHECK(sendto(r.a.dev->sock4, &init, sizeof(init), 0, &r.b.addr.sa, sizeof(r.b.addr.in)) ==
	      sizeof(init));
	pump(&r);
	CHECK(read(r.b.tun, pkt, sizeof(pkt)) == 60);
	CHECK(carries(&r, &r.b, &r.a, 2));
	r.handshakes = 0;
	snap(&r, &s);

	forge(&r, &r.b, &init, sizeof(init));
	randombytes_buf(ks, 32);
	CHECK(noise_identity_set(&stranger, ks));
	noise_handshake_init(&hs, &stranger, r.b.dev->identity.static_public, NULL);
	CHECK(noise_create_initiation(&init, &hs, &stranger, 99));
	wg_cookie_init(&macs, r.b.dev->identity.static_public);
	wg_cookie_add_macs(&macs, &init, sizeof(init), clock_mono_ns());
	forge(&r, &r.b, &init, sizeof(init));
	CHECK_INT(r.b.dev->stats.rx_handshake_failed, ==, 2);
	unharmed(&r, &s);
	rig_close(&r);
}

/* What counts towards "under load": well-framed handshake messages, each
 * segment of a coalesced (UDP_GRO) datagram on its own. */
TEST(under_load_counts_handshakes_not_type_bytes)
{
	static uint8_t buf[4 * sizeof(struct message_handshake_initiation)];
	const size_t in = sizeof(struct message_handshake_initiation);
	const size_t re = sizeof(struct message_handshake_response);

	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 4; i++)
		buf[i * in] = MESSAGE_HANDSHAKE_INITIATION;
	CHECK_INT(wg_handshakes_in(buf, in, 0), ==, 1);
	CHECK_INT(wg_handshakes_in(buf, 4 * in, in), ==, 4);	/* a coalesced flood */
	CHECK_INT(wg_handshakes_in(buf, 3 * in + 1, in), ==, 3);	/* and a stub */
	CHECK_INT(wg_handshakes_in(buf, 1, 0), ==, 0);		/* a lone type byte */
	CHECK_INT(wg_handshakes_in(buf, in - 1, 0), ==, 0);
	CHECK_INT(wg_handshakes_in(buf, 0, 0), ==, 0);
	buf[1] = 1;						/* reserved bytes set */
	CHECK_INT(wg_handshakes_in(buf, in, 0), ==, 0);
	buf[1] = 0;
	buf[0] = MESSAGE_HANDSHAKE_RESPONSE;
	CHECK_INT(wg_handshakes_in(buf, re, 0), ==, 1);
	CHECK_INT(wg_handshakes_in(buf, in, 0), ==, 0);		/* wrong size for a response */
	buf[0] = MESSAGE_HANDSHAKE_COOKIE;
	CHECK_INT(wg_handshakes_in(buf, sizeof(struct message_handshake_cookie), 0), ==, 0);
}

/* Lines of file f (from its start) that contain s. */
static int lines_with(FILE *f, const char *s)
{
	char line[512];
	int n = 0;

	rewind(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	return n;
}

/* The send path's rate-limited warnings are per device: a flood of
 * packets for a peer without endpoint on one device does not silence the
 * same warning on another (each device runs its own thread: one shared
 * limiter was also a data race between them). */
TEST(send_warnings_limited_per_device)
{
	struct end a, b;
	struct wg_conf c = { .has_private_key = true };
	struct wg_peer_conf *pc;
	struct xb_prefix p = { .family = AF_INET, .cidr = 32 };
	uint8_t pkt[20] = { 0x45 }, pub[32];
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);

	CHECK(f && saved >= 0);
	end_open(&a, "xbt-ratelim-a", "198.51.100.1");
	end_open(&b, "xbt-ratelim-b", "198.51.100.2");
	randombytes_buf(c.private_key, 32);
	randombytes_buf(pub, 32);
	CHECK((pc = wg_conf_add_peer(&c)));
	memcpy(pc->public_key, pub, 32);	/* no endpoint */
	memcpy(p.addr, (uint8_t[]){ 203, 0, 113, 1 }, 4);
	CHECK(xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p));
	CHECK(wg_device_set(a.dev, &c) == 0);
	CHECK(wg_device_set(b.dev, &c) == 0);
	wg_conf_free(&c);
	memcpy(pkt + 16, p.addr, 4);

	log_init("test_receive", LOG_LVL_WARN, false);
	fflush(stderr);
	CHECK(dup2(fileno(f), STDERR_FILENO) >= 0);
	for (int i = 0; i < 20; i++)
		wg_send_from_tun(a.dev, pkt, sizeof(pkt), clock_mono_ns());
	wg_send_from_tun(b.dev, pkt, sizeof(pkt), clock_mono_ns());
	fflush(stderr);
	CHECK(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	log_init("test_receive", LOG_LVL_ERR, false);

	CHECK_INT(a.dev->stats.tx_no_endpoint, ==, 20);
	CHECK_INT(lines_with(f, "xbt-ratelim-a: no endpoint"), <, 20);	/* limited */
	CHECK_INT(lines_with(f, "xbt-ratelim-b: no endpoint"), ==, 1);
	fclose(f);
	close(a.tun);
	close(b.tun);
	wg_device_close(a.dev);
	wg_device_close(b.dev);
}
