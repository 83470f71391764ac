/* Noise_IKpsk2 handshake and transport keys; see noise.h.
 *
 * Message flow (whitepaper §5.4.2–5.4.4), C = chaining key, H = hash:
 *   initiator: C = KDF1(C, Ei_pub); H = HASH(H ‖ Ei_pub)
 *              C, k = KDF2(C, DH(Ei, Sr));   static = AEAD(k, 0, Si_pub, H)
 *              C, k = KDF2(C, DH(Si, Sr));   timestamp = AEAD(k, 0, TAI64N, H)
 *   responder: C = KDF1(C, Er_pub); H = HASH(H ‖ Er_pub)
 *              C = KDF1(C, DH(Er, Ei)); C = KDF1(C, DH(Er, Si))
 *              C, τ, k = KDF3(C, psk); H = HASH(H ‖ τ); empty = AEAD(k, 0, ε, H)
 *   both:      send, recv = KDF2(C, ε) (the responder swaps them)
 * Every AEAD output is mixed into H after it is produced or checked.
 */
#include "tunnel/noise.h"
#include "tunnel/aead.h"
#include "tunnel/blake2s.h"
#include "common/clock.h"

#include <sodium.h>
#include <string.h>

static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
static uint8_t construction_hash[NOISE_HASH_LEN];
static uint8_t identifier_hash[NOISE_HASH_LEN];

void noise_init(void)
{
	struct blake2s_state s;

	if (sodium_init() < 0)
		abort();
	blake2s(construction_hash, NOISE_HASH_LEN, (const uint8_t *)construction,
		sizeof(construction) - 1, NULL, 0);
	blake2s_init(&s, NOISE_HASH_LEN);
	blake2s_update(&s, construction_hash, NOISE_HASH_LEN);
	blake2s_update(&s, (const uint8_t *)identifier, sizeof(identifier) - 1);
	blake2s_final(&s, identifier_hash);
}

static void mix_hash(uint8_t hash[NOISE_HASH_LEN], const uint8_t *src, size_t len)
{
	struct blake2s_state s;

	blake2s_init(&s, NOISE_HASH_LEN);
	blake2s_update(&s, hash, NOISE_HASH_LEN);
	blake2s_update(&s, src, len);
	blake2s_final(&s, hash);
}

/* C = KDF1(C, data) */
static void mix_key(uint8_t ck[NOISE_HASH_LEN], const uint8_t *src, size_t len)
{
	wg_kdf(ck, NULL, NULL, src, len, ck);
}

/* C, k = KDF2(C, DH(priv, pub)); false when the DH result is all zero. */
static bool mix_dh(uint8_t ck[NOISE_HASH_LEN], uint8_t key[NOISE_SYMMETRIC_KEY_LEN],
		   const uint8_t priv[NOISE_PUBLIC_KEY_LEN], const uint8_t pub[NOISE_PUBLIC_KEY_LEN])
{
	uint8_t dh[NOISE_PUBLIC_KEY_LEN];

	if (crypto_scalarmult(dh, priv, pub) != 0)
		return false;
	wg_kdf(ck, key, NULL, dh, sizeof(dh), ck);
	sodium_memzero(dh, sizeof(dh));
	return true;
}

/* C, k = KDF2(C, precomputed DH) */
static bool mix_precomputed(uint8_t ck[NOISE_HASH_LEN], uint8_t key[NOISE_SYMMETRIC_KEY_LEN],
			    const uint8_t dh[NOISE_PUBLIC_KEY_LEN])
{
	if (sodium_is_zero(dh, NOISE_PUBLIC_KEY_LEN))
		return false;
	wg_kdf(ck, key, NULL, dh, NOISE_PUBLIC_KEY_LEN, ck);
	return true;
}

/* AEAD with AD = H, then H = HASH(H ‖ ciphertext). */
static void encrypt_and_hash(uint8_t *dst, const uint8_t *src, size_t len,
			     const uint8_t key[NOISE_SYMMETRIC_KEY_LEN], uint8_t hash[NOISE_HASH_LEN])
{
	uint8_t nonce[12] = { 0 };

	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, hash, NOISE_HASH_LEN,
						  NULL, nonce, key);
	mix_hash(hash, dst, noise_encrypted_len(len));
}

static bool decrypt_and_hash(uint8_t *dst, const uint8_t *src, size_t len,
			     const uint8_t key[NOISE_SYMMETRIC_KEY_LEN], uint8_t hash[NOISE_HASH_LEN])
{
	uint8_t nonce[12] = { 0 };

	if (crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, noise_encrypted_len(len),
						      hash, NOISE_HASH_LEN, nonce, key) != 0)
		return false;
	mix_hash(hash, src, noise_encrypted_len(len));
	return true;
}

static void handshake_start(uint8_t ck[NOISE_HASH_LEN], uint8_t hash[NOISE_HASH_LEN],
			    const uint8_t responder_static[NOISE_PUBLIC_KEY_LEN])
{
	memcpy(ck, construction_hash, NOISE_HASH_LEN);
	memcpy(hash, identifier_hash, NOISE_HASH_LEN);
	mix_hash(hash, responder_static, NOISE_PUBLIC_KEY_LEN);
}

bool noise_identity_set(struct noise_identity *id, const uint8_t *private_key)
{
	uint8_t pub[NOISE_PUBLIC_KEY_LEN];

	if (!private_key || sodium_is_zero(private_key, NOISE_PUBLIC_KEY_LEN)) {
		noise_identity_clear(id);
		return true;
	}
	if (crypto_scalarmult_base(pub, private_key) != 0)
		return false;
	memcpy(id->static_private, private_key, NOISE_PUBLIC_KEY_LEN);
	/* Stored clamped, as wg shows it back. */
	id->static_private[0] &= 248;
	id->static_private[31] = (uint8_t)((id->static_private[31] & 127) | 64);
	memcpy(id->static_public, pub, NOISE_PUBLIC_KEY_LEN);
	id->has_identity = true;
	return true;
}

void noise_identity_clear(struct noise_identity *id)
{
	sodium_memzero(id, sizeof(*id));
}

void noise_handshake_precompute(struct noise_handshake *hs, const struct noise_identity *id)
{
	hs->identity = id;
	hs->ss_ready = false;
	sodium_memzero(hs->precomputed_static_static, NOISE_PUBLIC_KEY_LEN);
}

/* The static-static DH, computed once per identity. */
static const uint8_t *static_static(struct noise_handshake *hs)
{
	const struct noise_identity *id = hs->identity;

	if (!hs->ss_ready) {
		if (!id || !id->has_identity ||
		    crypto_scalarmult(hs->precomputed_static_static, id->static_private,
				      hs->remote_static) != 0)
			sodium_memzero(hs->precomputed_static_static, NOISE_PUBLIC_KEY_LEN);
		hs->ss_ready = true;
	}
	return hs->precomputed_static_static;
}

void noise_handshake_set_psk(struct noise_handshake *hs, const uint8_t *preshared_key)
{
	if (preshared_key)
		memcpy(hs->preshared_key, preshared_key, NOISE_SYMMETRIC_KEY_LEN);
	else
		sodium_memzero(hs->preshared_key, NOISE_SYMMETRIC_KEY_LEN);
}

void noise_handshake_init(struct noise_handshake *hs, const struct noise_identity *id,
			  const uint8_t remote_static[NOISE_PUBLIC_KEY_LEN],
			  const uint8_t *preshared_key)
{
	memset(hs, 0, sizeof(*hs));
	memcpy(hs->remote_static, remote_static, NOISE_PUBLIC_KEY_LEN);
	noise_handshake_set_psk(hs, preshared_key);
	noise_handshake_precompute(hs, id);
}

void noise_handshake_clear(struct noise_handshake *hs)
{
	sodium_memzero(hs->ephemeral_private, sizeof(hs->ephemeral_private));
	sodium_memzero(hs->remote_ephemeral, sizeof(hs->remote_ephemeral));
	sodium_memzero(hs->hash, sizeof(hs->hash));
	sodium_memzero(hs->chaining_key, sizeof(hs->chaining_key));
	hs->remote_index = 0;
	hs->local_index = 0;
	hs->state = HANDSHAKE_ZEROED;
}

/* TAI64N with nanoseconds rounded down to 2^24 ns, so that the timestamp
 * does not leak fine-grained timing (as the kernel does). */
void noise_tai64n_now(uint8_t out[NOISE_TIMESTAMP_LEN])
{
	struct timespec ts;
	uint64_t sec;
	uint32_t nsec;

	clock_gettime(CLOCK_REALTIME, &ts);
	sec = 0x400000000000000aULL + (uint64_t)ts.tv_sec;
	nsec = (uint32_t)ts.tv_nsec & ~((1u << 24) - 1);
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(sec >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

static void new_ephemeral(uint8_t priv[NOISE_PUBLIC_KEY_LEN], uint8_t pub[NOISE_PUBLIC_KEY_LEN])
{
	do {
		randombytes_buf(priv, NOISE_PUBLIC_KEY_LEN);
	} while (crypto_scalarmult_base(pub, priv) != 0);
}

bool noise_create_initiation(struct message_handshake_initiation *dst, struct noise_handshake *hs,
			     const struct noise_identity *id, uint32_t local_index)
{
	uint8_t ts[NOISE_TIMESTAMP_LEN], key[NOISE_SYMMETRIC_KEY_LEN];
	bool ok = false;

	if (!id->has_identity)
		return false;
	memset(dst, 0, sizeof(*dst));
	dst->header.type = MESSAGE_HANDSHAKE_INITIATION;
	handshake_start(hs->chaining_key, hs->hash, hs->remote_static);

	new_ephemeral(hs->ephemeral_private, dst->unencrypted_ephemeral);
	mix_key(hs->chaining_key, dst->unencrypted_ephemeral, NOISE_PUBLIC_KEY_LEN);
	mix_hash(hs->hash, dst->unencrypted_ephemeral, NOISE_PUBLIC_KEY_LEN);

	if (!mix_dh(hs->chaining_key, key, hs->ephemeral_private, hs->remote_static))
		goto out;
	encrypt_and_hash(dst->encrypted_static, id->static_public, NOISE_PUBLIC_KEY_LEN, key, hs->hash);

	if (!mix_precomputed(hs->chaining_key, key, static_static(hs)))
		goto out;
	noise_tai64n_now(ts);
	encrypt_and_hash(dst->encrypted_timestamp, ts, NOISE_TIMESTAMP_LEN, key, hs->hash);

	dst->sender_index = local_index;
	hs->local_index = local_index;
	hs->state = HANDSHAKE_CREATED_INITIATION;
	ok = true;
out:
	sodium_memzero(key, sizeof(key));
	return ok;
}

bool noise_open_initiation(struct noise_initiation *st, const struct message_handshake_initiation *src,
			   const struct noise_identity *id)
{
	uint8_t key[NOISE_SYMMETRIC_KEY_LEN];
	bool ok = false;

	if (!id->has_identity)
		return false;
	handshake_start(st->chaining_key, st->hash, id->static_public);
	memcpy(st->remote_ephemeral, src->unencrypted_ephemeral, NOISE_PUBLIC_KEY_LEN);
	mix_key(st->chaining_key, st->remote_ephemeral, NOISE_PUBLIC_KEY_LEN);
	mix_hash(st->hash, st->remote_ephemeral, NOISE_PUBLIC_KEY_LEN);

	if (!mix_dh(st->chaining_key, key, id->static_private, st->remote_ephemeral))
		goto out;
	if (!decrypt_and_hash(st->remote_static, src->encrypted_static, NOISE_PUBLIC_KEY_LEN,
			      key, st->hash))
		goto out;
	st->sender_index = src->sender_index;
	ok = true;
out:
	sodium_memzero(key, sizeof(key));
	if (!ok)
		sodium_memzero(st, sizeof(*st));
	return ok;
}

bool noise_finish_initiation(struct noise_handshake *hs, const struct noise_initiation *st,
			     const struct message_handshake_initiation *src, uint64_t now_ns)
{
	uint8_t key[NOISE_SYMMETRIC_KEY_LEN], ts[NOISE_TIMESTAMP_LEN];
	uint8_t ck[NOISE_HASH_LEN], hash[NOISE_HASH_LEN];
	bool ok = false, replay, flood;

	memcpy(ck, st->chaining_key, sizeof(ck));
	memcpy(hash, st->hash, sizeof(hash));
	if (!mix_precomputed(ck, key, static_static(hs)))
		goto out;
	if (!decrypt_and_hash(ts, src->encrypted_timestamp, NOISE_TIMESTAMP_LEN, key, hash))
		goto out;
	/* A timestamp must be newer than the last accepted one (replay), and
	 * initiations are taken at most INITIATIONS_PER_SECOND (flood). */
	replay = memcmp(ts, hs->latest_timestamp, NOISE_TIMESTAMP_LEN) <= 0;
	flood = hs->last_initiation_consumption_ns &&
		hs->last_initiation_consumption_ns + NSEC_PER_SEC / INITIATIONS_PER_SECOND > now_ns;
	if (replay || flood)
		goto out;

	memcpy(hs->remote_ephemeral, st->remote_ephemeral, NOISE_PUBLIC_KEY_LEN);
	memcpy(hs->latest_timestamp, ts, NOISE_TIMESTAMP_LEN);
	memcpy(hs->hash, hash, NOISE_HASH_LEN);
	memcpy(hs->chaining_key, ck, NOISE_HASH_LEN);
	hs->remote_index = st->sender_index;
	hs->last_initiation_consumption_ns = now_ns;
	hs->state = HANDSHAKE_CONSUMED_INITIATION;
	ok = true;
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(hash, sizeof(hash));
	return ok;
}

/* C, τ, k = KDF3(C, psk); H = HASH(H ‖ τ) */
static void mix_psk(uint8_t ck[NOISE_HASH_LEN], uint8_t hash[NOISE_HASH_LEN],
		    uint8_t key[NOISE_SYMMETRIC_KEY_LEN], const uint8_t psk[NOISE_SYMMETRIC_KEY_LEN])
{
	uint8_t tau[NOISE_HASH_LEN];

	wg_kdf(ck, tau, key, psk, NOISE_SYMMETRIC_KEY_LEN, ck);
	mix_hash(hash, tau, sizeof(tau));
	sodium_memzero(tau, sizeof(tau));
}

bool noise_create_response(struct message_handshake_response *dst, struct noise_handshake *hs,
			   uint32_t local_index)
{
	uint8_t key[NOISE_SYMMETRIC_KEY_LEN];
	bool ok = false;

	if (hs->state != HANDSHAKE_CONSUMED_INITIATION)
		return false;
	memset(dst, 0, sizeof(*dst));
	dst->header.type = MESSAGE_HANDSHAKE_RESPONSE;
	dst->receiver_index = hs->remote_index;

	new_ephemeral(hs->ephemeral_private, dst->unencrypted_ephemeral);
	mix_key(hs->chaining_key, dst->unencrypted_ephemeral, NOISE_PUBLIC_KEY_LEN);
	mix_hash(hs->hash, dst->unencrypted_ephemeral, NOISE_PUBLIC_KEY_LEN);

	if (!mix_dh(hs->chaining_key, NULL, hs->ephemeral_private, hs->remote_ephemeral) ||
	    !mix_dh(hs->chaining_key, NULL, hs->ephemeral_private, hs->remote_static))
		goto out;
	mix_psk(hs->chaining_key, hs->hash, key, hs->preshared_key);
	encrypt_and_hash(dst->encrypted_nothing, NULL, 0, key, hs->hash);

	dst->sender_index = local_index;
	hs->local_index = local_index;
	hs->state = HANDSHAKE_CREATED_RESPONSE;
	ok = true;
out:
	sodium_memzero(key, sizeof(key));
	return ok;
}

bool noise_consume_response(struct noise_handshake *hs, const struct message_handshake_response *src,
			    const struct noise_identity *id)
{
	uint8_t key[NOISE_SYMMETRIC_KEY_LEN], ck[NOISE_HASH_LEN], hash[NOISE_HASH_LEN];
	const uint8_t *e = src->unencrypted_ephemeral;
	bool ok = false;

	if (hs->state != HANDSHAKE_CREATED_INITIATION || !id->has_identity)
		return false;
	/* Work on copies: a forged response must not disturb the handshake. */
	memcpy(ck, hs->chaining_key, sizeof(ck));
	memcpy(hash, hs->hash, sizeof(hash));
	mix_key(ck, e, NOISE_PUBLIC_KEY_LEN);
	mix_hash(hash, e, NOISE_PUBLIC_KEY_LEN);
	if (!mix_dh(ck, NULL, hs->ephemeral_private, e) || !mix_dh(ck, NULL, id->static_private, e))
		goto out;
	mix_psk(ck, hash, key, hs->preshared_key);
	if (!decrypt_and_hash(NULL, src->encrypted_nothing, 0, key, hash))
		goto out;

	memcpy(hs->remote_ephemeral, e, NOISE_PUBLIC_KEY_LEN);
	memcpy(hs->chaining_key, ck, sizeof(ck));
	memcpy(hs->hash, hash, sizeof(hash));
	hs->remote_index = src->sender_index;
	hs->state = HANDSHAKE_CONSUMED_RESPONSE;
	ok = true;
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(hash, sizeof(hash));
	return ok;
}

bool noise_derive_keypair(struct noise_keypair *kp, struct noise_handshake *hs, uint64_t now_ns)
{
	bool initiator;

	if (hs->state == HANDSHAKE_CONSUMED_RESPONSE)
		initiator = true;
	else if (hs->state == HANDSHAKE_CREATED_RESPONSE)
		initiator = false;
	else
		return false;
	memset(kp, 0, sizeof(*kp));
	if (initiator)
		wg_kdf(kp->send_key, kp->recv_key, NULL, NULL, 0, hs->chaining_key);
	else
		wg_kdf(kp->recv_key, kp->send_key, NULL, NULL, 0, hs->chaining_key);
	wg_replay_init(&kp->replay);
	atomic_store(&kp->send_counter, 0);
	kp->birthdate_ns = now_ns;
	kp->i_am_initiator = initiator;
	kp->sending_valid = kp->receiving_valid = true;
	kp->local_index = hs->local_index;
	kp->remote_index = hs->remote_index;
	noise_handshake_clear(hs);
	return true;
}

void noise_encrypt(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		   const uint8_t key[NOISE_SYMMETRIC_KEY_LEN])
{
	xb_aead_seal(dst, src, len, counter, key);
}

bool noise_decrypt(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		   const uint8_t key[NOISE_SYMMETRIC_KEY_LEN])
{
	return xb_aead_open(dst, src, len, counter, key);
}
