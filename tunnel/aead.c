/* Transport-data AEAD; see aead.h. */
#include "tunnel/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* libcrypto does every length up to this (libsodium longer ones: the
 * scratch below is per thread); a datagram is shorter. Built this way,
 * ours / libsodium 1.0.18 (seal + open, xb-aeadbench, the CI machine) is
 * 1.3 at 16 and 64 bytes, 1.15 at 256, 1.6 at 512, 2.1 at 768 and 2.7 at
 * 1 420, so there is no size below which libsodium is faster. */
#define SCRATCH_DATA	65536

/* One thread's libcrypto state: ChaCha20 alone (not OpenSSL's
 * ChaCha20-Poly1305, which makes three ChaCha20 calls a packet, two of
 * them on one block through its short path) and Poly1305 as a MAC. */
struct aead_thread {
	EVP_CIPHER *cipher;
	EVP_CIPHER_CTX *ctx;
	EVP_MAC *mac;
	EVP_MAC_CTX *mctx;
	uint8_t key[XB_AEAD_KEY_LEN];	/* the one ctx holds; keyed is false when none */
	bool keyed;
	bool failed;		/* libcrypto gave no context: libsodium here */
	/* 64 zero bytes (block 0: the Poly1305 key) ‖ data ‖ zeros up to a
	 * whole block, so ChaCha20 runs once over whole blocks. */
	_Alignas(64) uint8_t scratch[64 + SCRATCH_DATA + 64];
};

static pthread_key_t key_thread;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_free(void *p)
{
	struct aead_thread *t = p;

	EVP_MAC_CTX_free(t->mctx);
	EVP_MAC_free(t->mac);
	EVP_CIPHER_CTX_free(t->ctx);
	EVP_CIPHER_free(t->cipher);
	sodium_memzero(t->key, sizeof(t->key));
	free(t);
}

static bool have_key;

static void make_key(void) { have_key = pthread_key_create(&key_thread, thread_free) == 0; }

/* The calling thread's context; NULL means libsodium. */
static struct aead_thread *thread_ctx(void)
{
	struct aead_thread *t;

	pthread_once(&key_once, make_key);
	if (!have_key)
		return NULL;
	if ((t = pthread_getspecific(key_thread)))
		return t->failed ? NULL : t;
	if (!(t = aligned_alloc(64, sizeof(*t))))
		return NULL;
	memset(t, 0, offsetof(struct aead_thread, scratch));
	memset(t->scratch, 0, sizeof(t->scratch));
	/* Fetched once per thread: an implicit fetch on every init costs more
	 * than sealing a small packet. The cipher is set once; a packet sets
	 * the IV, and the key only when it changed. */
	t->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20", NULL);
	t->ctx = EVP_CIPHER_CTX_new();
	t->mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
	t->mctx = t->mac ? EVP_MAC_CTX_new(t->mac) : NULL;
	t->failed = !t->cipher || !t->ctx || !t->mctx ||
		    EVP_CipherInit_ex2(t->ctx, t->cipher, NULL, NULL, 1, NULL) != 1;
	if (pthread_setspecific(key_thread, t)) {
		thread_free(t);
		return NULL;
	}
	return t->failed ? NULL : t;
}

static void make_nonce(uint8_t nonce[12], uint64_t counter)
{
	memset(nonce, 0, 4);
	memcpy(nonce + 4, &counter, 8);	/* little-endian host */
}

/* Keys the context when the key changed and sets the IV: LE32 block
 * counter 0 ‖ nonce (4 zero bytes ‖ LE64 counter, little-endian host).
 * EVP_CipherInit_ex2 is the one way OpenSSL 3.0 takes an IV (its ChaCha20
 * has no settable "iv" parameter). */
static bool set_iv(struct aead_thread *t, uint64_t counter, const uint8_t *key)
{
	uint8_t iv[16] = { 0 };
	bool rekey = !t->keyed || memcmp(t->key, key, XB_AEAD_KEY_LEN);	/* ours, both */

	memcpy(iv + 8, &counter, 8);
	if (EVP_CipherInit_ex2(t->ctx, NULL, rekey ? key : NULL, iv, 1, NULL) != 1) {
		t->keyed = false;
		return false;
	}
	if (rekey) {
		memcpy(t->key, key, XB_AEAD_KEY_LEN);
		t->keyed = true;
	}
	return true;
}

/* out = ChaCha20 from block 0 over in, 64 + len rounded up to a block:
 * one call over whole blocks keeps OpenSSL on its wide path throughout.
 * out may be in. */
static bool stream(struct aead_thread *t, uint8_t *out, const uint8_t *in, size_t len,
		   uint64_t counter, const uint8_t *key)
{
	size_t total = 64 + ((len + 63) & ~(size_t)63);
	int n;

	return set_iv(t, counter, key) &&
	       EVP_CipherUpdate(t->ctx, out, &n, in, (int)total) == 1 && (size_t)n == total;
}

/* RFC 8439 2.8: the tag over ct ‖ pad16 ‖ LE64 0 (no AAD) ‖ LE64 len,
 * keyed with otk (the first 32 bytes of keystream block 0); by libsodium's
 * Poly1305 if libcrypto's fails, so that a tag never fails once the text
 * went through ChaCha20. */
static void tag_of(struct aead_thread *t, uint8_t tag[XB_AEAD_TAG_LEN], const uint8_t otk[32],
		   const uint8_t *ct, size_t len)
{
	size_t whole = len & ~(size_t)15, rest = len - whole, out = 0;
	uint8_t tail[32] = { 0 };
	uint64_t n = len;	/* little-endian host */
	size_t tl = (rest ? 16 : 0) + 16;
	crypto_onetimeauth_poly1305_state st;

	if (rest)
		memcpy(tail, ct + whole, rest);
	memcpy(tail + tl - 8, &n, 8);
	if (EVP_MAC_init(t->mctx, otk, 32, NULL) == 1 &&
	    (!whole || EVP_MAC_update(t->mctx, ct, whole) == 1) &&
	    EVP_MAC_update(t->mctx, tail, tl) == 1 &&
	    EVP_MAC_final(t->mctx, tag, &out, XB_AEAD_TAG_LEN) == 1 && out == XB_AEAD_TAG_LEN)
		return;
	crypto_onetimeauth_poly1305_init(&st, otk);
	crypto_onetimeauth_poly1305_update(&st, ct, whole);
	crypto_onetimeauth_poly1305_update(&st, tail, tl);
	crypto_onetimeauth_poly1305_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
}

/* Seal buf in place, with XB_AEAD_HEADROOM bytes before it saved and
 * zeroed so that ChaCha20's block 0 lands there as the Poly1305 key, then
 * put back (which also overwrites that key). The bytes past the text are
 * the caller's tailroom: they come out as keystream XOR whatever was there,
 * which tells nothing (that keystream encrypts no byte of any message),
 * and the tag goes over the first 16 of them. Only the local copy of the
 * Poly1305 key needs wiping. False when ChaCha20 failed (OpenSSL checks
 * before it writes): buf and its headroom are as they were. */
static bool evp_seal_inplace(struct aead_thread *t, uint8_t *buf, size_t len, uint64_t counter,
			     const uint8_t *key)
{
	uint8_t head[XB_AEAD_HEADROOM], otk[32];
	uint8_t *b0 = buf - XB_AEAD_HEADROOM;
	bool ok;

	memcpy(head, b0, XB_AEAD_HEADROOM);
	memset(b0, 0, XB_AEAD_HEADROOM);
	ok = stream(t, b0, b0, len, counter, key);
	memcpy(otk, b0, 32);
	memcpy(b0, head, XB_AEAD_HEADROOM);
	if (ok)
		tag_of(t, buf + len, otk, buf, len);
	sodium_memzero(otk, sizeof(otk));
	return ok;
}

/* Seal through the scratch [64 zero bytes ‖ src ‖ tail]; false when it
 * failed, dst untouched. Afterwards the scratch holds the Poly1305 key
 * (wiped), the ciphertext, and keystream XOR old scratch bytes past it
 * (ciphertext, keystream or zeros: an open wipes what it used): no
 * plaintext, so only block 0 is wiped. */
static bool evp_seal(struct aead_thread *t, uint8_t *dst, const uint8_t *src, size_t len,
		     uint64_t counter, const uint8_t *key)
{
	uint8_t tag[XB_AEAD_TAG_LEN];
	bool ok;

	memset(t->scratch, 0, 64);
	if (len)	/* a keepalive's src may be NULL */
		memcpy(t->scratch + 64, src, len);
	ok = stream(t, t->scratch, t->scratch, len, counter, key);
	if (ok) {
		tag_of(t, tag, t->scratch, t->scratch + 64, len);
		if (len)
			memcpy(dst, t->scratch + 64, len);
		memcpy(dst + len, tag, XB_AEAD_TAG_LEN);
	}
	sodium_memzero(t->scratch, ok ? 64 : 64 + len);	/* not run: the plaintext is there */
	return ok;
}

enum { EVP_BROKE, EVP_BAD_TAG, EVP_OK };

/* Open out of place with room: ChaCha20 once from src's headroom into
 * dst's, so block 0's keystream is what reached dst - 64 XOR what was at
 * src - 64; then the tag over src's ciphertext, which nothing touched.
 * The plaintext reaches dst before the tag is judged (as in Linux's
 * WireGuard); on a bad tag the caller wipes dst. dst's headroom is put
 * back, its tailroom holds keystream XOR src's tailroom (no plaintext). */
static int evp_open_room(struct aead_thread *t, uint8_t *dst, const uint8_t *src, size_t len,
			 uint64_t counter, const uint8_t *key)
{
	uint8_t head[XB_AEAD_HEADROOM], otk[32], tag[XB_AEAD_TAG_LEN];
	uint8_t *d0 = dst - XB_AEAD_HEADROOM;
	const uint8_t *s0 = src - XB_AEAD_HEADROOM;
	int r = EVP_BROKE;

	memcpy(head, d0, XB_AEAD_HEADROOM);
	if (stream(t, d0, s0, len, counter, key)) {
		for (int i = 0; i < 32; i++)
			otk[i] = d0[i] ^ s0[i];
		tag_of(t, tag, otk, src, len);
		r = CRYPTO_memcmp(tag, src + len, XB_AEAD_TAG_LEN) ? EVP_BAD_TAG : EVP_OK;
		sodium_memzero(otk, sizeof(otk));
	}
	memcpy(d0, head, XB_AEAD_HEADROOM);
	return r;
}

/* Open through the scratch: the tag is checked over src before any
 * plaintext reaches dst; EVP_BROKE leaves dst untouched. The scratch held
 * the plaintext (and the key in block 0): wiped whole, as far as it went. */
static int evp_open(struct aead_thread *t, uint8_t *dst, const uint8_t *src, size_t len,
		    uint64_t counter, const uint8_t *key)
{
	size_t total = 64 + ((len + 63) & ~(size_t)63);
	uint8_t tag[XB_AEAD_TAG_LEN];
	int r = EVP_BROKE;

	memset(t->scratch, 0, 64);
	if (len)
		memcpy(t->scratch + 64, src, len);
	if (stream(t, t->scratch, t->scratch, len, counter, key)) {
		tag_of(t, tag, t->scratch, src, len);
		r = CRYPTO_memcmp(tag, src + len, XB_AEAD_TAG_LEN) ? EVP_BAD_TAG : EVP_OK;
	}
	if (r == EVP_OK && len)
		memcpy(dst, t->scratch + 64, len);
	sodium_memzero(t->scratch, total);
	return r;
}

static void sodium_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
			const uint8_t *key)
{
	uint8_t nonce[12];

	make_nonce(nonce, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, NULL, 0, NULL, nonce, key);
}

static bool sodium_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
			const uint8_t *key)
{
	uint8_t nonce[12];

	make_nonce(nonce, counter);
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, NULL, 0,
							 nonce, key) == 0;
}

void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;

	if (len <= SCRATCH_DATA && (t = thread_ctx()) && evp_seal(t, dst, src, len, counter, key))
		return;
	sodium_seal(dst, src, len, counter, key);
}

void xb_aead_seal_inplace(uint8_t *buf, size_t len, uint64_t counter,
			  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;

	if (len <= SCRATCH_DATA && (t = thread_ctx()) && evp_seal_inplace(t, buf, len, counter, key))
		return;
	sodium_seal(buf, buf, len, counter, key);
}

/* The verdict of an open: on a bad tag dst gets zeros, as from libsodium,
 * not what was there. */
static bool opened(int r, uint8_t *dst, size_t n)
{
	if (r == EVP_BAD_TAG)
		sodium_memzero(dst, n);
	return r == EVP_OK;
}

bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	size_t n;
	int r = EVP_BROKE;

	if (len < XB_AEAD_TAG_LEN)
		return false;
	n = len - XB_AEAD_TAG_LEN;
	if (n <= SCRATCH_DATA && (t = thread_ctx()))
		r = evp_open(t, dst, src, n, counter, key);
	if (r != EVP_BROKE)
		return opened(r, dst, n);
	return sodium_open(dst, src, len, counter, key);
}

bool xb_aead_open_room(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		       const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	size_t n;
	int r = EVP_BROKE;

	if (len < XB_AEAD_TAG_LEN)
		return false;
	n = len - XB_AEAD_TAG_LEN;
	if (n <= SCRATCH_DATA && (t = thread_ctx()))
		r = evp_open_room(t, dst, src, n, counter, key);
	if (r != EVP_BROKE)
		return opened(r, dst, n);
	return sodium_open(dst, src, len, counter, key);
}

void xb_aead_forget(void)
{
	static const uint8_t zero[XB_AEAD_KEY_LEN + 16];
	struct aead_thread *t;

	pthread_once(&key_once, make_key);
	if (!have_key || !(t = pthread_getspecific(key_thread)) || t->failed)
		return;
	(void)EVP_CipherInit_ex2(t->ctx, NULL, zero, zero + XB_AEAD_KEY_LEN, 1, NULL);
	(void)EVP_MAC_init(t->mctx, zero, 32, NULL);
	sodium_memzero(t->key, sizeof(t->key));
	t->keyed = false;
}

const char *xb_aead_impl(void)
{
	return thread_ctx() ? "openssl" : "libsodium";
}
