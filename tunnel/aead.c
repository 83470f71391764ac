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

/* scratch = ChaCha20(key, nonce, counter 0) over [0^64 ‖ src ‖ 0 pad]:
 * the Poly1305 key in its first 32 bytes, src's en/decryption from byte
 * 64. One call over whole blocks takes OpenSSL's wide path throughout. */
static bool stream(struct aead_thread *t, const uint8_t *src, size_t len,
		   const uint8_t nonce[12], const uint8_t *key)
{
	size_t total = 64 + ((len + 63) & ~(size_t)63);
	uint8_t iv[16] = { 0 };	/* LE32 block counter 0 ‖ nonce */
	bool rekey = !t->keyed || memcmp(t->key, key, XB_AEAD_KEY_LEN);	/* ours, both */
	int n;

	memcpy(iv + 4, nonce, 12);
	memset(t->scratch, 0, 64);
	if (len)	/* a keepalive's src may be NULL */
		memcpy(t->scratch + 64, src, len);
	memset(t->scratch + 64 + len, 0, total - 64 - len);
	if (EVP_CipherInit_ex2(t->ctx, NULL, rekey ? key : NULL, iv, 1, NULL) != 1) {
		t->keyed = false;
		return false;
	}
	if (rekey) {
		memcpy(t->key, key, XB_AEAD_KEY_LEN);
		t->keyed = true;
	}
	return EVP_CipherUpdate(t->ctx, t->scratch, &n, t->scratch, (int)total) == 1 &&
	       (size_t)n == total;
}

/* RFC 8439 2.8: the tag over ct ‖ pad16 ‖ LE64 0 (no AAD) ‖ LE64 len,
 * keyed with the first 32 bytes of the scratch. */
static bool tag_of(struct aead_thread *t, uint8_t tag[XB_AEAD_TAG_LEN], const uint8_t *ct, size_t len)
{
	size_t whole = len & ~(size_t)15, rest = len - whole, out = 0;
	uint8_t tail[32] = { 0 };
	uint64_t n = len;	/* little-endian host */
	size_t tl = (rest ? 16 : 0) + 16;

	if (rest)
		memcpy(tail, ct + whole, rest);
	memcpy(tail + tl - 8, &n, 8);
	return EVP_MAC_init(t->mctx, t->scratch, 32, NULL) == 1 &&
	       (!whole || EVP_MAC_update(t->mctx, ct, whole) == 1) &&
	       EVP_MAC_update(t->mctx, tail, tl) == 1 &&
	       EVP_MAC_final(t->mctx, tag, &out, XB_AEAD_TAG_LEN) == 1 && out == XB_AEAD_TAG_LEN;
}

/* Seal with libcrypto; false when it failed, dst untouched. */
static bool evp_seal(struct aead_thread *t, uint8_t *dst, const uint8_t *src, size_t len,
		     const uint8_t nonce[12], const uint8_t *key)
{
	uint8_t tag[XB_AEAD_TAG_LEN];
	bool ok = stream(t, src, len, nonce, key) && tag_of(t, tag, t->scratch + 64, len);

	if (ok) {
		if (len)
			memcpy(dst, t->scratch + 64, len);
		memcpy(dst + len, tag, XB_AEAD_TAG_LEN);
	}
	sodium_memzero(t->scratch, 64 + len + 64);
	return ok;
}

enum { EVP_BROKE, EVP_BAD_TAG, EVP_OK };

/* Open with libcrypto: the tag is checked over src before any plaintext
 * reaches dst; EVP_BROKE leaves dst untouched. */
static int evp_open(struct aead_thread *t, uint8_t *dst, const uint8_t *src, size_t len,
		    const uint8_t nonce[12], const uint8_t *key)
{
	uint8_t tag[XB_AEAD_TAG_LEN];
	int r = EVP_BROKE;

	if (stream(t, src, len, nonce, key) && tag_of(t, tag, src, len))
		r = CRYPTO_memcmp(tag, src + len, XB_AEAD_TAG_LEN) ? EVP_BAD_TAG : EVP_OK;
	if (r == EVP_OK && len)
		memcpy(dst, t->scratch + 64, len);
	sodium_memzero(t->scratch, 64 + len + 64);
	return r;
}

void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];

	make_nonce(nonce, counter);
	if (len <= SCRATCH_DATA && (t = thread_ctx()) &&
	    evp_seal(t, dst, src, len, nonce, key))
		return;
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, NULL, 0, NULL, nonce, key);
}

bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];
	size_t n;
	int r = EVP_BROKE;

	if (len < XB_AEAD_TAG_LEN)
		return false;
	n = len - XB_AEAD_TAG_LEN;
	make_nonce(nonce, counter);
	if (n <= SCRATCH_DATA && (t = thread_ctx()))
		r = evp_open(t, dst, src, n, nonce, key);
	if (r == EVP_OK)
		return true;
	if (r == EVP_BAD_TAG) {	/* as libsodium: zeros, not what was there */
		sodium_memzero(dst, n);
		return false;
	}
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, NULL, 0,
							 nonce, key) == 0;
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
