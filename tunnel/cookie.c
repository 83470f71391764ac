/* Handshake MACs and cookie replies; see cookie.h. */
#include "tunnel/cookie.h"
#include "tunnel/blake2s.h"
#include "common/clock.h"

#include <sodium.h>
#include <string.h>

static const char label_mac1[] = "mac1----";
static const char label_cookie[] = "cookie--";

/* HASH(label ‖ public key) */
static void precompute_key(uint8_t key[NOISE_SYMMETRIC_KEY_LEN], const uint8_t pub[NOISE_PUBLIC_KEY_LEN],
			   const char *label)
{
	struct blake2s_state s;

	blake2s_init(&s, NOISE_SYMMETRIC_KEY_LEN);
	blake2s_update(&s, (const uint8_t *)label, 8);
	blake2s_update(&s, pub, NOISE_PUBLIC_KEY_LEN);
	blake2s_final(&s, key);
}

void wg_cookie_checker_init(struct cookie_checker *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	wg_ratelimiter_init(&c->limiter);
}

void wg_cookie_checker_free(struct cookie_checker *c)
{
	wg_ratelimiter_free(&c->limiter);
	pthread_mutex_destroy(&c->lock);
	sodium_memzero(c->secret, sizeof(c->secret));
}

void wg_cookie_checker_set_key(struct cookie_checker *c, const uint8_t *our_public)
{
	c->has_key = our_public != NULL;
	if (!our_public) {
		sodium_memzero(c->mac1_key, sizeof(c->mac1_key));
		sodium_memzero(c->cookie_key, sizeof(c->cookie_key));
		return;
	}
	precompute_key(c->mac1_key, our_public, label_mac1);
	precompute_key(c->cookie_key, our_public, label_cookie);
}

void wg_cookie_init(struct cookie *c, const uint8_t peer_public[NOISE_PUBLIC_KEY_LEN])
{
	memset(c, 0, sizeof(*c));
	precompute_key(c->mac1_key, peer_public, label_mac1);
	precompute_key(c->cookie_key, peer_public, label_cookie);
}

/* mac1 covers the message up to mac1; mac2 up to mac2 (the last 32 bytes
 * of every handshake message are mac1 ‖ mac2). */
static void compute_mac1(uint8_t mac[COOKIE_LEN], const uint8_t *msg, size_t len,
			 const uint8_t key[NOISE_SYMMETRIC_KEY_LEN])
{
	blake2s(mac, COOKIE_LEN, msg, len - 2 * COOKIE_LEN, key, NOISE_SYMMETRIC_KEY_LEN);
}

static void compute_mac2(uint8_t mac[COOKIE_LEN], const uint8_t *msg, size_t len,
			 const uint8_t cookie[COOKIE_LEN])
{
	blake2s(mac, COOKIE_LEN, msg, len - COOKIE_LEN, cookie, COOKIE_LEN);
}

static void make_cookie(uint8_t cookie[COOKIE_LEN], struct cookie_checker *c,
			const union xb_sockaddr *src, uint64_t now)
{
	struct blake2s_state s;

	pthread_mutex_lock(&c->lock);
	if (!c->secret_birthdate_ns || now - c->secret_birthdate_ns >= COOKIE_SECRET_MAX_AGE * NSEC_PER_SEC) {
		randombytes_buf(c->secret, sizeof(c->secret));
		c->secret_birthdate_ns = now;
	}
	blake2s_init_key(&s, COOKIE_LEN, c->secret, NOISE_HASH_LEN);
	pthread_mutex_unlock(&c->lock);
	if (src->sa.sa_family == AF_INET) {
		blake2s_update(&s, (const uint8_t *)&src->in.sin_addr, 4);
		blake2s_update(&s, (const uint8_t *)&src->in.sin_port, 2);
	} else {
		blake2s_update(&s, (const uint8_t *)&src->in6.sin6_addr, 16);
		blake2s_update(&s, (const uint8_t *)&src->in6.sin6_port, 2);
	}
	blake2s_final(&s, cookie);
}

enum cookie_mac_state wg_cookie_validate(struct cookie_checker *c, const void *msg, size_t len,
					 const union xb_sockaddr *src, bool check_cookie,
					 uint64_t now)
{
	const uint8_t *m = msg, *mac1 = m + len - 2 * COOKIE_LEN, *mac2 = m + len - COOKIE_LEN;
	uint8_t computed[COOKIE_LEN], cookie[COOKIE_LEN];

	if (!c->has_key || len < 2 * COOKIE_LEN)
		return COOKIE_INVALID_MAC;
	compute_mac1(computed, m, len, c->mac1_key);
	if (sodium_memcmp(computed, mac1, COOKIE_LEN))
		return COOKIE_INVALID_MAC;
	if (!check_cookie)
		return COOKIE_VALID_MAC_BUT_NO_COOKIE;
	make_cookie(cookie, c, src, now);
	compute_mac2(computed, m, len, cookie);
	sodium_memzero(cookie, sizeof(cookie));
	if (sodium_memcmp(computed, mac2, COOKIE_LEN))
		return COOKIE_VALID_MAC_BUT_NO_COOKIE;
	if (!wg_ratelimiter_allow(&c->limiter, src, now))
		return COOKIE_VALID_MAC_WITH_COOKIE_BUT_RATELIMITED;
	return COOKIE_VALID_MAC_WITH_COOKIE;
}

void wg_cookie_add_macs(struct cookie *c, void *msg, size_t len, uint64_t now)
{
	uint8_t *m = msg, *mac1 = m + len - 2 * COOKIE_LEN, *mac2 = m + len - COOKIE_LEN;

	compute_mac1(mac1, m, len, c->mac1_key);
	memcpy(c->last_mac1_sent, mac1, COOKIE_LEN);
	c->have_sent_mac1 = true;
	/* A cookie is used while the responder still has its secret, less the
	 * latency it may take us to use it. */
	if (c->is_valid &&
	    now - c->birthdate_ns < (COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY) * NSEC_PER_SEC)
		compute_mac2(mac2, m, len, c->cookie);
	else
		memset(mac2, 0, COOKIE_LEN);
}

void wg_cookie_reply_create(struct message_handshake_cookie *dst, struct cookie_checker *c,
			    const void *msg, size_t len, uint32_t receiver_index,
			    const union xb_sockaddr *src, uint64_t now)
{
	const uint8_t *mac1 = (const uint8_t *)msg + len - 2 * COOKIE_LEN;
	uint8_t cookie[COOKIE_LEN];

	memset(dst, 0, sizeof(*dst));
	dst->header.type = MESSAGE_HANDSHAKE_COOKIE;
	dst->receiver_index = receiver_index;
	randombytes_buf(dst->nonce, sizeof(dst->nonce));
	make_cookie(cookie, c, src, now);
	crypto_aead_xchacha20poly1305_ietf_encrypt(dst->encrypted_cookie, NULL, cookie, COOKIE_LEN,
						   mac1, COOKIE_LEN, NULL, dst->nonce, c->cookie_key);
	sodium_memzero(cookie, sizeof(cookie));
}

bool wg_cookie_reply_consume(struct cookie *c, const struct message_handshake_cookie *src, uint64_t now)
{
	uint8_t cookie[COOKIE_LEN];

	if (!c->have_sent_mac1)
		return false;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL, src->encrypted_cookie,
						       sizeof(src->encrypted_cookie), c->last_mac1_sent,
						       COOKIE_LEN, src->nonce, c->cookie_key) != 0)
		return false;
	memcpy(c->cookie, cookie, COOKIE_LEN);
	sodium_memzero(cookie, sizeof(cookie));
	c->birthdate_ns = now;
	c->is_valid = true;
	c->have_sent_mac1 = false;
	return true;
}
