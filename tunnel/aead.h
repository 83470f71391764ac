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
 * between threads.
 *
 * Two ways in. xb_aead_seal/xb_aead_open take any buffers: the text is
 * copied into the scratch and the result out of it (an open checks the tag
 * before any plaintext reaches dst; the scratch is wiped after one).
 * xb_aead_seal_inplace/xb_aead_open_room, for the data path, take buffers
 * with XB_AEAD_HEADROOM bytes before the text and XB_AEAD_TAILROOM after
 * it, and run ChaCha20 straight over them: no copy in or out. Their open
 * writes plaintext to dst before the tag is judged, as Linux's WireGuard
 * does, and wipes dst when it fails. */
#ifndef XB_AEAD_H
#define XB_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_AEAD_KEY_LEN	32
#define XB_AEAD_TAG_LEN	16
/* The room the _inplace/_room variants need around the text. */
#define XB_AEAD_HEADROOM 64
#define XB_AEAD_TAILROOM 64

/* dst (len + 16 bytes) = seal(src, len); dst may be src. */
void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN]);
/* dst (len - 16 bytes) = open(src, len); false when the tag does not check
 * out (or len < 16): then dst holds nothing to use (zeros, or untouched).
 * dst may be src. */
bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN]);
/* buf (len + 16 bytes) = seal(buf, len), in place. Contract: the
 * XB_AEAD_HEADROOM bytes before buf are writable (ChaCha20's block 0 runs
 * there; they are put back as they were) and the XB_AEAD_TAILROOM bytes
 * from buf + len are writable and the caller's to lose: the tag takes the
 * first 16, the rest come back as garbage. No other byte is touched. Two
 * buffers sealed at the same time must not share any of this room. */
void xb_aead_seal_inplace(uint8_t *buf, size_t len, uint64_t counter,
			  const uint8_t key[static XB_AEAD_KEY_LEN]);
/* dst (len - 16 bytes) = open(src, len), out of place. Contract: the
 * XB_AEAD_HEADROOM bytes before src and the XB_AEAD_TAILROOM bytes from
 * src + len - 16 are readable (only read: whatever they hold); the
 * XB_AEAD_HEADROOM bytes before dst are writable (put back as they were)
 * and the XB_AEAD_TAILROOM bytes from dst + len - 16 are the caller's to
 * lose (garbage, never plaintext); these write ranges must not overlap the
 * read ones nor another open's. The plaintext reaches dst before the tag
 * is judged: false on a bad tag leaves zeros there (len < 16: untouched). */
bool xb_aead_open_room(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		       const uint8_t key[static XB_AEAD_KEY_LEN]);
/* The calling thread's context forgets the last key it used (libcrypto
 * keeps it until the next packet otherwise): called where keypairs are
 * wiped. */
void xb_aead_forget(void);
/* Which implementation this thread uses for transport data: "openssl", or
 * "libsodium" when libcrypto gave no context. */
const char *xb_aead_impl(void);

#endif
