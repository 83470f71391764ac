/* BLAKE2s (RFC 7693) and the two constructions WireGuard builds on it:
 * HMAC-BLAKE2s (RFC 2104 with a 64-byte block) and the HKDF-style KDF_n of
 * the Noise protocol. libsodium has BLAKE2b only, hence this file.
 *
 * Preconditions (checked with assert): outlen 1..32, keylen 0..32 for the
 * keyed hash (0 means unkeyed). Outputs may alias inputs everywhere: results
 * are written only after every input has been consumed.
 */
#ifndef XB_BLAKE2S_H
#define XB_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

#define BLAKE2S_HASH_SIZE 32
#define BLAKE2S_BLOCK_SIZE 64
#define BLAKE2S_KEY_SIZE 32

struct blake2s_state {
	uint32_t h[8];
	uint32_t t[2];		/* bytes compressed so far, 64-bit little-endian */
	uint32_t f[2];		/* f[0] = ~0 marks the last block */
	uint8_t buf[BLAKE2S_BLOCK_SIZE];
	size_t buflen;		/* 1..64 once data arrived: the last block is held back */
	size_t outlen;
};

void blake2s_init(struct blake2s_state *s, size_t outlen);
void blake2s_init_key(struct blake2s_state *s, size_t outlen, const uint8_t *key, size_t keylen);
void blake2s_update(struct blake2s_state *s, const uint8_t *in, size_t inlen);
/* Writes outlen bytes, then wipes the state. */
void blake2s_final(struct blake2s_state *s, uint8_t *out);
/* One shot; key may be NULL with keylen 0. */
void blake2s(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen,
	     const uint8_t *key, size_t keylen);

/* HMAC (RFC 2104) over BLAKE2s-256 with a 64-byte block, as WireGuard uses it.
 * Keys longer than a block are hashed first; any key length is accepted. */
void blake2s_hmac(uint8_t out[BLAKE2S_HASH_SIZE], const uint8_t *in, size_t inlen,
		  const uint8_t *key, size_t keylen);

/* WireGuard's KDF_n (HKDF with HMAC-BLAKE2s):
 *   secret = HMAC(chaining_key, data)
 *   t1 = HMAC(secret, 0x01), t2 = HMAC(secret, t1 || 0x02), t3 = HMAC(secret, t2 || 0x03)
 * Each ti is 32 bytes. NULL outputs are skipped; nothing past the last
 * non-NULL output is computed (t2 = t3 = NULL is KDF1, t3 = NULL is KDF2).
 * Outputs may alias data or chaining_key. */
void wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t *data, size_t datalen,
	    const uint8_t chaining_key[BLAKE2S_HASH_SIZE]);

#endif
