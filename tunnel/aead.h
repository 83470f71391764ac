/* ChaCha20-Poly1305 (RFC 8439) for transport data: WireGuard's data
 * messages, nonce = 4 zero bytes ‖ LE64 counter, no associated data.
 *
 * OpenSSL's libcrypto does it, as its ChaCha20 and its Poly1305 called
 * apart: ChaCha20 once per packet over [64 zero bytes ‖ data ‖ zero pad to
 * a whole block] from block 0 (block 0 is the Poly1305 key), so all of it
 * runs on the AVX-512/AVX2 wide path; Poly1305 (AVX-512 IFMA) as an
 * EVP_MAC. OpenSSL's own "ChaCha20-Poly1305" runs ChaCha20 three times a
 * packet, two of them a single block through its 4-block short path, and
 * looks parameters up by name for every tag. This is 2.7x libsodium 1.0.18
 * (SSE2 Poly1305) at 1 420-byte packets and faster at every length on the CI
 * machine (bench/aead.sh; docs/performance.md). libsodium does the handshake
 * (X25519, AEADs on a few dozen bytes), packets over 64 KiB, and everything
 * when libcrypto cannot give a context. Both produce the same bytes.
 *
 * Each calling thread gets its own contexts and a 64 KiB scratch buffer,
 * made at its first call and freed when the thread ends; nothing is shared
 * between threads. The scratch is wiped after every packet. An open checks
 * the tag before any plaintext reaches dst. */
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
/* Which implementation this thread uses for transport data: "openssl", or
 * "libsodium" when libcrypto gave no context. */
const char *xb_aead_impl(void);

#endif
