/* libFuzzer: datagrams into the receive path of a device b that has one peer
 * a, a "next" keypair for it (b answered a's initiation) and a pending
 * handshake of its own (b initiated too), so that three kinds of live index
 * exist. The input is a sequence of records
 *   [mode u8][len u16 LE][len bytes]
 * and mode & 3 says what the bytes are:
 *   0  a raw datagram;
 *   1  the plaintext of a data message sealed on the session (counter: a
 *      running one XOR mode >> 2), so the inner-packet checks behind
 *      decryption are reached;
 *   2  a raw datagram with a live receiver index spliced in where its type
 *      puts one (bytes 8..11 of a response, 4..7 otherwise), the
 *      (mode >> 2)th of b's live indices: a forger reads them off the wire,
 *      and without them nothing gets past the index lookup;
 *   3  as 2, and a handshake message of the right size gets a correct mac1
 *      (anyone can compute it from b's public key), so noise and the
 *      cookie layer are reached; mode & 0x80 puts b under load first.
 * Oracle, besides the sanitizers: no record but a sealed one (mode 1) may
 * change the peer's keypairs, replay windows, endpoint, timers, handshake or
 * cookie state — no unauthenticated bytes change state (receive.c).
 * The device has no TUN offloads (dev->gro is NULL): each packet is one
 * write(); fuzz_receive_gro drives the path with coalescing on. */
#include "tunnel/device.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T_INIT 1000000000ULL
#define T_RUN 2000000000ULL

static uint8_t key_b[32], key_a[32], pub_a[32];

static union xb_sockaddr addr(const char *ip, uint16_t port)
{
	union xb_sockaddr sa = { .in = { .sin_family = AF_INET, .sin_port = htons(port) } };

	inet_pton(AF_INET, ip, &sa.in.sin_addr);
	return sa;
}

/* Device b (made once), with a fresh peer a each run: b receives a's
 * initiation (a "next" keypair) and starts a handshake of its own. */
static struct wg_device *setup(void)
{
	static struct wg_device *dev;
	struct wg_timing t;
	struct wg_conf c = { .replace_peers = true };
	struct wg_peer_conf *pc;
	struct xb_prefix all = { .family = AF_INET, .cidr = 0 };
	struct noise_identity ida;
	struct noise_handshake hs;
	struct cookie ck;
	struct message_handshake_initiation init;
	union xb_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);

	wg_timing_default(&t);
	if (!dev) {
		if (wg_device_alloc(&dev, "fuzz0", &t) < 0)
			abort();
		dev->tun_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	}
	memcpy(c.private_key, key_b, 32);
	c.has_private_key = true;
	pc = wg_conf_add_peer(&c);
	memcpy(pc->public_key, pub_a, 32);
	xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &all);
	if (wg_device_set(dev, &c))
		abort();
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
	if (!dev->peers || !dev->peers->next_kp)
		abort();
	dev->peers->last_sent_handshake_ns = 0;
	wg_send_handshake_initiation(dev->peers, false, T_INIT);
	if (dev->peers->handshake.state != HANDSHAKE_CREATED_INITIATION)
		abort();
	return dev;
}

static void send_data(struct wg_device *dev, const uint8_t *pt, size_t len, uint64_t counter,
		      const union xb_sockaddr *from, const union xb_sockaddr *to)
{
	static uint8_t buf[2048];
	struct message_data *m = (struct message_data *)buf;
	/* The first data message confirms "next"; later ones use "current". */
	struct noise_keypair *kp = !dev->peers ? NULL :
				   dev->peers->next_kp ? dev->peers->next_kp : dev->peers->current;

	if (!kp || len > sizeof(buf) - 64)
		return;
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = kp->local_index;
	m->counter = counter;
	/* Our side's send key is the device's receive key. */
	noise_encrypt(m->encrypted_data, pt, len, counter, kp->recv_key);
	wg_receive(dev, buf, message_data_len(len), from, to, 1, T_RUN);
}

/* The nth live index of the device, cycling; 0 when there is none. */
static uint32_t live_index(const struct wg_device *dev, unsigned n)
{
	unsigned live = 0, i;

	for (i = 0; i <= dev->index.mask; i++)
		live += dev->index.slots[i].kind != 0;
	if (!live)
		return 0;
	n %= live;
	for (i = 0; i <= dev->index.mask; i++)
		if (dev->index.slots[i].kind && !n--)
			break;
	return dev->index.slots[i].key;
}

static void aim(struct wg_device *dev, uint8_t *buf, size_t len, uint8_t mode)
{
	uint32_t idx = live_index(dev, mode >> 2 & 0x1f);
	size_t at = len && buf[0] == MESSAGE_HANDSHAKE_RESPONSE ? 8 : 4;
	struct cookie ck;

	if (len >= at + 4)
		memcpy(buf + at, &idx, 4);
	if ((mode & 3) != 3)
		return;
	if (mode & 0x80)
		dev->handshakes_this_batch = WG_BATCH;
	if (len && ((buf[0] == MESSAGE_HANDSHAKE_INITIATION && len == sizeof(struct message_handshake_initiation)) ||
		    (buf[0] == MESSAGE_HANDSHAKE_RESPONSE && len == sizeof(struct message_handshake_response)))) {
		wg_cookie_init(&ck, dev->identity.static_public);
		wg_cookie_add_macs(&ck, buf, len, T_RUN);
	}
}

/* What only an authenticated message may change. */
struct state {
	struct noise_keypair *kp_ptr[3];
	struct noise_keypair kp[3];
	struct noise_handshake hs;
	struct cookie cookie;
	union xb_sockaddr endpoint, src;
	uint64_t timers[TIMER_COUNT];
	uint64_t rx_bytes;
	int64_t last_handshake_sec;
	unsigned n_staged;
};

static void take(const struct wg_peer *p, struct state *s)
{
	memset(s, 0, sizeof(*s));
	s->kp_ptr[0] = p->current;
	s->kp_ptr[1] = p->previous;
	s->kp_ptr[2] = p->next_kp;
	for (int i = 0; i < 3; i++)
		if (s->kp_ptr[i])
			memcpy(&s->kp[i], s->kp_ptr[i], sizeof(s->kp[i]));
	memcpy(&s->hs, &p->handshake, sizeof(s->hs));
	memcpy(&s->cookie, &p->cookie, sizeof(s->cookie));
	memcpy(&s->endpoint, &p->endpoint, sizeof(s->endpoint));
	memcpy(&s->src, &p->src, sizeof(s->src));
	memcpy(s->timers, p->timers, sizeof(s->timers));
	s->rx_bytes = p->rx_bytes;
	s->last_handshake_sec = p->last_handshake_sec;
	s->n_staged = p->n_staged;
}

static void same_state(const struct wg_peer *p, const struct state *before, uint8_t mode)
{
	struct state after;

	take(p, &after);
	if (memcmp(&after, before, sizeof(after))) {
		fprintf(stderr, "fuzz_receive: a record of mode %#x (not sealed) changed the peer's state\n",
			mode);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	union xb_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);
	union xb_sockaddr forger = addr("203.0.113.9", 40000);	/* so a moved endpoint shows */
	static uint8_t buf[65536];
	struct wg_device *dev;
	struct state before;
	uint64_t counter = 0;

	if (!init) {
		log_init("fuzz", LOG_LVL_ERR, false);
		noise_init();
		randombytes_buf(key_a, 32);
		randombytes_buf(key_b, 32);
		crypto_scalarmult_base(pub_a, key_a);
		init = true;
	}
	dev = setup();
	while (size >= 3) {
		uint8_t mode = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		memcpy(buf, data, len);
		if ((mode & 3) == 1) {
			send_data(dev, buf, len, counter++ ^ (mode >> 2), &from, &to);
		} else {
			if (mode & 2)
				aim(dev, buf, len, mode);
			take(dev->peers, &before);
			wg_receive(dev, buf, len, &forger, &to, 1, T_RUN);
			same_state(dev->peers, &before, mode);
			dev->handshakes_this_batch = 0;
		}
		data += len;
		size -= len;
	}
	return 0;
}
