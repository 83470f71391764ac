/* Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, as WireGuard uses it (whitepaper
 * §5.4). This module holds the handshake state machine and the transport
 * keypairs; it knows nothing of sockets, peers' endpoints or timers. The
 * caller owns index allocation and finding peers by public key.
 */
#ifndef XB_NOISE_H
#define XB_NOISE_H

#include "tunnel/messages.h"
#include "tunnel/replay.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct noise_identity {
	uint8_t static_private[NOISE_PUBLIC_KEY_LEN];
	uint8_t static_public[NOISE_PUBLIC_KEY_LEN];
	bool has_identity;
};

enum noise_handshake_state {
	HANDSHAKE_ZEROED,
	HANDSHAKE_CREATED_INITIATION,
	HANDSHAKE_CONSUMED_INITIATION,
	HANDSHAKE_CREATED_RESPONSE,
	HANDSHAKE_CONSUMED_RESPONSE,
};

struct noise_handshake {
	enum noise_handshake_state state;
	uint8_t remote_static[NOISE_PUBLIC_KEY_LEN];
	/* DH(our static, their static), computed at the first handshake that
	 * needs it (a gateway adding 10 000 peers would otherwise spend half a
	 * second on it at start); zero if invalid. identity: ours, set by
	 * noise_handshake_precompute(), which also marks it stale. */
	uint8_t precomputed_static_static[NOISE_PUBLIC_KEY_LEN];
	const struct noise_identity *identity;
	bool ss_ready;
	uint8_t preshared_key[NOISE_SYMMETRIC_KEY_LEN];
	uint8_t ephemeral_private[NOISE_PUBLIC_KEY_LEN];
	uint8_t remote_ephemeral[NOISE_PUBLIC_KEY_LEN];
	uint8_t hash[NOISE_HASH_LEN];
	uint8_t chaining_key[NOISE_HASH_LEN];
	uint8_t latest_timestamp[NOISE_TIMESTAMP_LEN];
	uint32_t local_index;
	uint32_t remote_index;
	uint64_t last_initiation_consumption_ns;	/* monotonic */
};

struct noise_keypair {
	uint8_t send_key[NOISE_SYMMETRIC_KEY_LEN];
	uint8_t recv_key[NOISE_SYMMETRIC_KEY_LEN];
	_Atomic uint64_t send_counter;
	struct wg_replay replay;
	uint64_t birthdate_ns;		/* monotonic */
	uint32_t local_index;
	uint32_t remote_index;
	bool i_am_initiator;
	bool sending_valid;		/* cleared to force a new handshake */
	bool receiving_valid;
};

/* State carried between opening an initiation and finishing it for a peer. */
struct noise_initiation {
	uint8_t hash[NOISE_HASH_LEN];
	uint8_t chaining_key[NOISE_HASH_LEN];
	uint8_t remote_static[NOISE_PUBLIC_KEY_LEN];
	uint8_t remote_ephemeral[NOISE_PUBLIC_KEY_LEN];
	uint32_t sender_index;
};

void noise_init(void);
/* Set or clear (key NULL) the device's static key; false if the key is
 * unusable (its public key would be zero). */
bool noise_identity_set(struct noise_identity *id, const uint8_t *private_key);
void noise_identity_clear(struct noise_identity *id);

/* Prepare a peer's handshake: remote static, optional psk; the static DH
 * with id is computed when first needed (id must outlive hs, or be set
 * again with noise_handshake_precompute() when it changes). */
void noise_handshake_init(struct noise_handshake *hs, const struct noise_identity *id,
			  const uint8_t remote_static[NOISE_PUBLIC_KEY_LEN],
			  const uint8_t *preshared_key);
/* Recompute the static-static DH after the device key changed. */
void noise_handshake_precompute(struct noise_handshake *hs, const struct noise_identity *id);
void noise_handshake_set_psk(struct noise_handshake *hs, const uint8_t *preshared_key);
/* Forget ephemeral state (keeps remote static, psk, latest timestamp). */
void noise_handshake_clear(struct noise_handshake *hs);

/* Initiator: fill dst (macs left for the cookie layer). local_index is the
 * index the caller allocated for this handshake. */
bool noise_create_initiation(struct message_handshake_initiation *dst, struct noise_handshake *hs,
			     const struct noise_identity *id, uint32_t local_index);
/* Responder, step 1: decrypt the initiator's static key. */
bool noise_open_initiation(struct noise_initiation *st, const struct message_handshake_initiation *src,
			   const struct noise_identity *id);
/* Responder, step 2: for the peer with that static key, check the timestamp
 * (replay) and initiation rate (flood) and take over the state. */
bool noise_finish_initiation(struct noise_handshake *hs, const struct noise_initiation *st,
			     const struct message_handshake_initiation *src, uint64_t now_ns);
bool noise_create_response(struct message_handshake_response *dst, struct noise_handshake *hs,
			   uint32_t local_index);
/* Initiator: consume the response for the handshake whose local index it names. */
bool noise_consume_response(struct noise_handshake *hs, const struct message_handshake_response *src,
			    const struct noise_identity *id);
/* Both: derive transport keys from a completed handshake (zeroes hs's
 * ephemeral state). The keypair's local index is the handshake's. */
bool noise_derive_keypair(struct noise_keypair *kp, struct noise_handshake *hs, uint64_t now_ns);

/* Transport data (whitepaper §5.4.6): nonce = 32 zero bits ‖ LE64 counter. */
void noise_encrypt(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		   const uint8_t key[NOISE_SYMMETRIC_KEY_LEN]);
bool noise_decrypt(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		   const uint8_t key[NOISE_SYMMETRIC_KEY_LEN]);

void noise_tai64n_now(uint8_t out[NOISE_TIMESTAMP_LEN]);

#endif
