/* ChaCha20-Poly1305 (RFC 8439) for transport data: WireGuard's data
 * messages, nonce = 4 zero bytes ‖ LE64 counter, no associated data.
 *
 * OpenSSL's libcrypto does it for packets of 768 bytes and more: its
 * ChaCha20 and Poly1305 have AVX2 and AVX-512 paths where libsodium
 * 1.0.18's Poly1305 has SSE2 only — 1.8x at 1 420-byte packets on the CI
 * machine, seal and open (bench/aead.sh prints both on the machine it runs
 * on; docs/performance.md). libsodium does smaller ones (libcrypto's
 * per-call set-up costs more than it saves there), the handshake (X25519,
 * AEADs on a few dozen bytes), and everything when libcrypto cannot give
 * a context. Both produce the same bytes.
 *
 * Each calling thread gets its own cipher context, made at its first call
 * and freed when the thread ends; nothing is shared between threads. A
 * seal that libcrypto fails half way leaves all zeros (the peer drops it),
 * never the plaintext. */
#ifndef XB_AEAD_H
#define XB_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_AEAD_KEY_LEN	32
#define XB_AEAD_TAG_LEN	16

/* dst (len + 16 bytes) = seal(src, len); dst may be src. */
void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN]);
/* dst (len - 16 bytes) = open(src, len); false when the tag does not check
 * out (or len < 16): then dst holds nothing to use (zeros, or untouched).
 * dst may be src. */
bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN]);
/* The calling thread's context forgets the last key it used (libcrypto
 * keeps it until the next packet otherwise): called where keypairs are
 * wiped. */
void xb_aead_forget(void);
/* Which implementation this thread uses for packets of 768 bytes and more:
 * "openssl", or "libsodium" when libcrypto gave no context. */
const char *xb_aead_impl(void);

#endif
