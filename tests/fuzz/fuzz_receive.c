/* libFuzzer: datagrams into the receive path of a device that has one peer
 * and a pending session. The input is a sequence of records
 *   [mode u8][len u16 LE][len bytes]
 * mode even: the bytes as a raw datagram; mode odd: the bytes as the
 * plaintext of a data message correctly encrypted on the peer's session, so
 * that the inner-packet checks behind decryption are reached too. */
#include "tunnel/device.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t key_b[32], key_a[32], pub_a[32];

static union wg_sockaddr addr(const char *ip, uint16_t port)
{
	union wg_sockaddr sa = { .in = { .sin_family = AF_INET, .sin_port = htons(port) } };

	inet_pton(AF_INET, ip, &sa.in.sin_addr);
	return sa;
}

/* Device b (made once) with a fresh peer a whose initiation b has received,
 * so that b holds a "next" keypair for it. */
static struct wg_device *setup(void)
{
	static struct wg_device *dev;
	struct wg_timing t;
	struct wg_conf c = { .replace_peers = true };
	struct wg_peer_conf *pc;
	struct wg_prefix all = { .family = AF_INET, .cidr = 0 };
	struct noise_identity ida;
	struct noise_handshake hs;
	struct cookie ck;
	struct message_handshake_initiation init;
	union wg_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);

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
	wg_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &all);
	if (wg_device_set(dev, &c))
		abort();
	wg_conf_free(&c);

	noise_identity_set(&ida, key_a);
	noise_handshake_init(&hs, &ida, dev->identity.static_public, NULL);
	wg_cookie_init(&ck, dev->identity.static_public);
	noise_create_initiation(&init, &hs, &ida, 7);
	wg_cookie_add_macs(&ck, &init, sizeof(init), 1);
	wg_receive(dev, (uint8_t *)&init, sizeof(init), &from, &to, 1, 1000000000ULL);
	noise_identity_clear(&ida);
	return dev;
}

static void send_data(struct wg_device *dev, const uint8_t *pt, size_t len, uint64_t counter,
		      const union wg_sockaddr *from, const union wg_sockaddr *to)
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
	wg_receive(dev, buf, message_data_len(len), from, to, 1, 2000000000ULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	union wg_sockaddr from = addr("192.0.2.1", 51820), to = addr("192.0.2.2", 51821);
	static uint8_t buf[65536];
	struct wg_device *dev;
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
		if (mode & 1)
			send_data(dev, buf, len, counter++ ^ (mode >> 1), &from, &to);
		else
			wg_receive(dev, buf, len, &from, &to, 1, 2000000000ULL);
		data += len;
		size -= len;
	}
	return 0;
}
