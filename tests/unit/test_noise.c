/* Noise_IKpsk2 between two in-process peers, transport data, and the cookie
 * layer (mac1, mac2, cookie replies, rate limit). */
#include "tests/lib/check.h"
#include "tunnel/cookie.h"
#include "tunnel/noise.h"

#include <arpa/inet.h>
#include <sodium.h>

struct side {
	struct noise_identity id;
	struct noise_handshake hs;
	struct noise_keypair kp;
};

static void keys(struct side *a, struct side *b, const uint8_t *psk_a, const uint8_t *psk_b)
{
	uint8_t ka[32], kb[32];

	noise_init();
	randombytes_buf(ka, 32);
	randombytes_buf(kb, 32);
	CHECK(noise_identity_set(&a->id, ka));
	CHECK(noise_identity_set(&b->id, kb));
	noise_handshake_init(&a->hs, &a->id, b->id.static_public, psk_a);
	noise_handshake_init(&b->hs, &b->id, a->id.static_public, psk_b);
}

/* Full exchange; returns false where it fails. */
static bool handshake(struct side *a, struct side *b, struct message_handshake_initiation *init_out)
{
	struct message_handshake_initiation init;
	struct message_handshake_response resp;
	struct noise_initiation st;

	if (!noise_create_initiation(&init, &a->hs, &a->id, 0x11111111))
		return false;
	if (init_out)
		*init_out = init;
	if (!noise_open_initiation(&st, &init, &b->id) ||
	    memcmp(st.remote_static, a->id.static_public, 32) ||
	    !noise_finish_initiation(&b->hs, &st, &init, 1000000000ULL) ||
	    !noise_create_response(&resp, &b->hs, 0x22222222) ||
	    !noise_derive_keypair(&b->kp, &b->hs, 1) ||
	    !noise_consume_response(&a->hs, &resp, &a->id) ||
	    !noise_derive_keypair(&a->kp, &a->hs, 1))
		return false;
	return true;
}

TEST(handshake_and_transport)
{
	struct side a = { 0 }, b = { 0 };
	uint8_t msg[100], ct[116], pt[100];

	keys(&a, &b, NULL, NULL);
	CHECK(handshake(&a, &b, NULL));
	CHECK(a.kp.i_am_initiator && !b.kp.i_am_initiator);
	CHECK_MEM(a.kp.send_key, b.kp.recv_key, 32);
	CHECK_MEM(a.kp.recv_key, b.kp.send_key, 32);
	CHECK(memcmp(a.kp.send_key, a.kp.recv_key, 32));
	CHECK_INT(a.kp.local_index, ==, 0x11111111);
	CHECK_INT(a.kp.remote_index, ==, 0x22222222);
	CHECK_INT(b.kp.remote_index, ==, 0x11111111);
	/* The handshake's ephemeral secrets are gone once keys are derived. */
	CHECK(sodium_is_zero(a.hs.ephemeral_private, 32));
	CHECK(sodium_is_zero(b.hs.chaining_key, 32));

	randombytes_buf(msg, sizeof(msg));
	noise_encrypt(ct, msg, sizeof(msg), 7, a.kp.send_key);
	CHECK(noise_decrypt(pt, ct, sizeof(ct), 7, b.kp.recv_key));
	CHECK_MEM(pt, msg, sizeof(msg));
	CHECK(!noise_decrypt(pt, ct, sizeof(ct), 8, b.kp.recv_key));	/* wrong counter */
	ct[50] ^= 1;
	CHECK(!noise_decrypt(pt, ct, sizeof(ct), 7, b.kp.recv_key));	/* tampered */
	CHECK(!noise_decrypt(pt, ct, 15, 7, b.kp.recv_key));		/* shorter than a tag */
}

TEST(preshared_key)
{
	struct side a = { 0 }, b = { 0 };
	uint8_t psk[32], other[32];

	randombytes_buf(psk, 32);
	keys(&a, &b, psk, psk);
	CHECK(handshake(&a, &b, NULL));
	CHECK_MEM(a.kp.send_key, b.kp.recv_key, 32);

	randombytes_buf(other, 32);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	keys(&a, &b, psk, other);
	CHECK(!handshake(&a, &b, NULL));	/* the response does not authenticate */
}

TEST(replayed_initiation_refused)
{
	struct side a = { 0 }, b = { 0 };
	struct message_handshake_initiation init;
	struct noise_initiation st;

	keys(&a, &b, NULL, NULL);
	CHECK(handshake(&a, &b, &init));
	CHECK(noise_open_initiation(&st, &init, &b.id));
	/* Same timestamp again: replay. */
	CHECK(!noise_finish_initiation(&b.hs, &st, &init, 10 * 1000000000ULL));
}

TEST(initiation_flood_refused)
{
	struct side a = { 0 }, b = { 0 };
	struct message_handshake_initiation i1, i2;
	struct noise_initiation st;

	keys(&a, &b, NULL, NULL);
	CHECK(noise_create_initiation(&i1, &a.hs, &a.id, 1));
	CHECK(noise_open_initiation(&st, &i1, &b.id));
	CHECK(noise_finish_initiation(&b.hs, &st, &i1, 5000000000ULL));
	/* A newer timestamp (TAI64N advances in 2^24 ns steps) ... */
	struct timespec ts = { 0, 40 * 1000000 };
	nanosleep(&ts, NULL);
	CHECK(noise_create_initiation(&i2, &a.hs, &a.id, 2));
	CHECK(noise_open_initiation(&st, &i2, &b.id));
	/* ... but less than 1/50 s after the last one: flood. */
	CHECK(!noise_finish_initiation(&b.hs, &st, &i2, 5000000000ULL + 10000000ULL));
	CHECK(noise_finish_initiation(&b.hs, &st, &i2, 5000000000ULL + 30000000ULL));
}

TEST(tampered_or_misaddressed_initiation)
{
	struct side a = { 0 }, b = { 0 }, c = { 0 };
	struct message_handshake_initiation init;
	struct noise_initiation st;
	uint8_t kc[32];

	keys(&a, &b, NULL, NULL);
	CHECK(noise_create_initiation(&init, &a.hs, &a.id, 1));
	init.encrypted_static[3] ^= 0x80;
	CHECK(!noise_open_initiation(&st, &init, &b.id));
	CHECK(noise_create_initiation(&init, &a.hs, &a.id, 1));
	randombytes_buf(kc, 32);
	CHECK(noise_identity_set(&c.id, kc));
	CHECK(!noise_open_initiation(&st, &init, &c.id));	/* not for c */
	/* A zero ephemeral key makes the DH all-zero: refused. */
	CHECK(noise_create_initiation(&init, &a.hs, &a.id, 1));
	memset(init.unencrypted_ephemeral, 0, 32);
	CHECK(!noise_open_initiation(&st, &init, &b.id));
}

TEST(response_for_wrong_state_refused)
{
	struct side a = { 0 }, b = { 0 };
	struct message_handshake_response resp = { 0 };

	keys(&a, &b, NULL, NULL);
	CHECK(!noise_consume_response(&a.hs, &resp, &a.id));	/* nothing initiated */
	CHECK(!noise_create_response(&resp, &b.hs, 1));		/* nothing consumed */
}

TEST(tai64n_increases)
{
	uint8_t t1[12], t2[12];
	struct timespec ts = { 0, 20 * 1000000 };

	noise_tai64n_now(t1);
	nanosleep(&ts, NULL);
	noise_tai64n_now(t2);
	CHECK(memcmp(t1, t2, 12) < 0);
	CHECK_INT(t1[0], ==, 0x40);	/* 2^62 + seconds */
	CHECK_INT(t1[11] & 0xff, ==, 0);	/* nanoseconds rounded down to 2^24 */
}

static union xb_sockaddr src4(const char *ip, uint16_t port)
{
	union xb_sockaddr sa = { .in = { .sin_family = AF_INET, .sin_port = htons(port) } };

	inet_pton(AF_INET, ip, &sa.in.sin_addr);
	return sa;
}

TEST(cookie_macs_and_reply)
{
	struct side a = { 0 }, b = { 0 };
	struct cookie_checker chk;
	struct cookie ck;
	struct message_handshake_initiation init;
	struct message_handshake_cookie reply;
	union xb_sockaddr from = src4("192.0.2.1", 51820), other = src4("192.0.2.2", 51820);
	uint64_t now = 1000 * 1000000000ULL;

	keys(&a, &b, NULL, NULL);
	wg_cookie_checker_init(&chk);
	wg_cookie_checker_set_key(&chk, b.id.static_public);
	wg_cookie_init(&ck, b.id.static_public);

	CHECK(noise_create_initiation(&init, &a.hs, &a.id, 5));
	wg_cookie_add_macs(&ck, &init, sizeof(init), now);
	CHECK(sodium_is_zero(init.macs.mac2, 16));	/* no cookie yet */
	CHECK_INT(wg_cookie_validate(&chk, &init, sizeof(init), &from, false, now), ==,
		  COOKIE_VALID_MAC_BUT_NO_COOKIE);
	CHECK_INT(wg_cookie_validate(&chk, &init, sizeof(init), &from, true, now), ==,
		  COOKIE_VALID_MAC_BUT_NO_COOKIE);	/* under load: needs a cookie */

	/* The responder sends a cookie reply; the initiator takes it. */
	wg_cookie_reply_create(&reply, &chk, &init, sizeof(init), 5, &from, now);
	CHECK_INT(reply.header.type, ==, MESSAGE_HANDSHAKE_COOKIE);
	struct message_handshake_cookie bad = reply;
	bad.encrypted_cookie[0] ^= 1;
	CHECK(!wg_cookie_reply_consume(&ck, &bad, now));
	CHECK(wg_cookie_reply_consume(&ck, &reply, now));
	CHECK(!wg_cookie_reply_consume(&ck, &reply, now));	/* only for the last mac1 sent */

	wg_cookie_add_macs(&ck, &init, sizeof(init), now + 1);
	CHECK(!sodium_is_zero(init.macs.mac2, 16));
	CHECK_INT(wg_cookie_validate(&chk, &init, sizeof(init), &from, true, now + 1), ==,
		  COOKIE_VALID_MAC_WITH_COOKIE);
	/* The cookie is bound to the source address. */
	CHECK_INT(wg_cookie_validate(&chk, &init, sizeof(init), &other, true, now + 1), ==,
		  COOKIE_VALID_MAC_BUT_NO_COOKIE);
	/* A flipped byte breaks mac1. */
	init.sender_index ^= 1;
	CHECK_INT(wg_cookie_validate(&chk, &init, sizeof(init), &from, false, now), ==,
		  COOKIE_INVALID_MAC);
	init.sender_index ^= 1;
	/* Past COOKIE_SECRET_MAX_AGE - latency the initiator stops using it. */
	wg_cookie_add_macs(&ck, &init, sizeof(init), now + 116 * 1000000000ULL);
	CHECK(sodium_is_zero(init.macs.mac2, 16));
	wg_cookie_checker_free(&chk);
}

TEST(ratelimit_per_source)
{
	struct wg_ratelimiter r;
	union xb_sockaddr s1 = src4("192.0.2.1", 1), s2 = src4("192.0.2.2", 1);
	uint64_t now = 5 * 1000000000ULL;
	int allowed = 0;

	CHECK(wg_ratelimiter_init(&r));
	for (int i = 0; i < 20; i++)
		allowed += wg_ratelimiter_allow(&r, &s1, now);
	CHECK_INT(allowed, ==, RATELIMITER_BURST);
	CHECK(wg_ratelimiter_allow(&r, &s2, now));	/* another source has its own bucket */
	/* 20 a second: one more after 50 ms. */
	CHECK(wg_ratelimiter_allow(&r, &s1, now + 50 * 1000000ULL));
	CHECK(!wg_ratelimiter_allow(&r, &s1, now + 51 * 1000000ULL));
	/* Over a second at 100 attempts a second, about 20 pass. */
	allowed = 0;
	for (int i = 0; i < 100; i++)
		allowed += wg_ratelimiter_allow(&r, &s1, now + 2000000000ULL + (uint64_t)i * 10000000ULL);
	CHECK_INT(allowed, >=, 20);
	CHECK_INT(allowed, <=, 26);
	wg_ratelimiter_free(&r);
}
