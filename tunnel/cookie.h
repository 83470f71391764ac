/* Cookies and MACs of handshake messages (whitepaper §5.4.4, §5.4.7).
 *
 * Every handshake message carries mac1 = MAC(HASH("mac1----" ‖ receiver's
 * public key), message up to mac1), proving the sender knows whom it talks
 * to. Under load a responder also demands mac2 = MAC(cookie, message up to
 * mac2); a sender without a fresh cookie gets a cookie reply instead of a
 * handshake. The cookie is MAC(secret rotated every 120 s, source IP ‖
 * source port), sent encrypted with XChaCha20-Poly1305 under HASH("cookie--"
 * ‖ responder's public key), with the message's mac1 as associated data.
 */
#ifndef XB_COOKIE_H
#define XB_COOKIE_H

#include "tunnel/messages.h"
#include "tunnel/ratelimiter.h"
#include "tunnel/wgconf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Responder side, one per device. */
struct cookie_checker {
	uint8_t secret[NOISE_HASH_LEN];
	uint64_t secret_birthdate_ns;
	uint8_t mac1_key[NOISE_SYMMETRIC_KEY_LEN];
	uint8_t cookie_key[NOISE_SYMMETRIC_KEY_LEN];
	bool has_key;
	struct wg_ratelimiter limiter;
	pthread_mutex_t lock;		/* secret rotation */
};

/* Initiator side, one per peer. */
struct cookie {
	uint8_t cookie[COOKIE_LEN];
	uint64_t birthdate_ns;
	bool is_valid;
	uint8_t last_mac1_sent[COOKIE_LEN];
	bool have_sent_mac1;
	uint8_t mac1_key[NOISE_SYMMETRIC_KEY_LEN];
	uint8_t cookie_key[NOISE_SYMMETRIC_KEY_LEN];
};

enum cookie_mac_state {
	COOKIE_INVALID_MAC,
	COOKIE_VALID_MAC_BUT_NO_COOKIE,
	COOKIE_VALID_MAC_WITH_COOKIE_BUT_RATELIMITED,
	COOKIE_VALID_MAC_WITH_COOKIE,
};

void wg_cookie_checker_init(struct cookie_checker *c);
void wg_cookie_checker_free(struct cookie_checker *c);
/* After the device's key changed (NULL: no key). */
void wg_cookie_checker_set_key(struct cookie_checker *c, const uint8_t *our_public);
void wg_cookie_init(struct cookie *c, const uint8_t peer_public[NOISE_PUBLIC_KEY_LEN]);

/* msg is a whole handshake message of len bytes, ending with its macs. With
 * check_cookie (under load) mac2 and the source's rate are checked too. */
enum cookie_mac_state wg_cookie_validate(struct cookie_checker *c, const void *msg, size_t len,
					 const union xb_sockaddr *src, bool check_cookie,
					 uint64_t now_ns);
/* Fill mac1 and (with a fresh cookie) mac2 of an outgoing message. */
void wg_cookie_add_macs(struct cookie *c, void *msg, size_t len, uint64_t now_ns);
void wg_cookie_reply_create(struct message_handshake_cookie *dst, struct cookie_checker *c,
			    const void *msg, size_t len, uint32_t receiver_index,
			    const union xb_sockaddr *src, uint64_t now_ns);
bool wg_cookie_reply_consume(struct cookie *c, const struct message_handshake_cookie *src,
			     uint64_t now_ns);

#endif
