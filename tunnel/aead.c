/* Transport-data AEAD; see aead.h. */
#include "tunnel/aead.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

struct aead_thread {
	EVP_CIPHER *cipher;
	EVP_CIPHER_CTX *ctx;
	bool failed;		/* libcrypto gave no context: libsodium here */
};

/* Below this many bytes libsodium does it: libcrypto's per-call set-up
 * (provider dispatch, parameters) costs more there than its faster core
 * saves, and its widest paths start at larger inputs. Measured on the CI
 * machine, OpenSSL / libsodium, seal + open: 0.8 at 64 bytes, 0.96 at 256,
 * 0.88 at 512, 1.5 at 768 and 1 024, 1.8 at 1 420 (xb-aeadbench). Both give
 * the same bytes. */
#define OPENSSL_FROM	768

static pthread_key_t key_thread;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_free(void *p)
{
	struct aead_thread *t = p;

	EVP_CIPHER_CTX_free(t->ctx);
	EVP_CIPHER_free(t->cipher);
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
	if (!(t = calloc(1, sizeof(*t))))
		return NULL;
	/* Fetched once per thread: an implicit fetch on every init costs more
	 * than sealing a small packet. */
	t->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	t->ctx = EVP_CIPHER_CTX_new();
	/* The cipher is set once; each packet then sets only key and nonce,
	 * which re-initialises no provider state. */
	t->failed = !t->cipher || !t->ctx ||
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

/* RUN_UNTOUCHED: nothing was written, libsodium may do it instead;
 * RUN_FAILED: output was written and is no good (a bad tag, or libcrypto
 * failed half way: an in-place seal has already overwritten the plaintext,
 * so falling back would XOR the same keystream again and send it in clear). */
enum { RUN_UNTOUCHED, RUN_FAILED, RUN_OK };

/* Seal (enc 1) or open (enc 0) len bytes; the tag is after them. One
 * EVP_CipherUpdate takes at most INT_MAX bytes; ours are datagrams. */
static int evp_run(struct aead_thread *t, int enc, uint8_t *dst, const uint8_t *src, size_t len,
		   const uint8_t nonce[12], const uint8_t *key)
{
	int n = 0, fin = 0;

	if (len > 1u << 30 || EVP_CipherInit_ex2(t->ctx, NULL, key, nonce, enc, NULL) != 1)
		return RUN_UNTOUCHED;
	if (!enc && EVP_CIPHER_CTX_ctrl(t->ctx, EVP_CTRL_AEAD_SET_TAG, XB_AEAD_TAG_LEN,
					(void *)(src + len)) != 1)
		return RUN_UNTOUCHED;
	if ((len && EVP_CipherUpdate(t->ctx, dst, &n, src, (int)len) != 1) ||
	    EVP_CipherFinal_ex(t->ctx, dst + n, &fin) != 1 ||
	    (enc && EVP_CIPHER_CTX_ctrl(t->ctx, EVP_CTRL_AEAD_GET_TAG, XB_AEAD_TAG_LEN, dst + len) != 1))
		return RUN_FAILED;
	return RUN_OK;
}

void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];
	int r = RUN_UNTOUCHED;

	make_nonce(nonce, counter);
	if (len >= OPENSSL_FROM && (t = thread_ctx()))
		r = evp_run(t, 1, dst, src, len, nonce, key);
	if (r == RUN_OK)
		return;
	if (r == RUN_FAILED) {	/* all zero: the peer drops it as a bad tag */
		sodium_memzero(dst, len + XB_AEAD_TAG_LEN);
		return;
	}
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, NULL, 0, NULL, nonce, key);
}

bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];
	int r = RUN_UNTOUCHED;

	if (len < XB_AEAD_TAG_LEN)
		return false;
	make_nonce(nonce, counter);
	if (len - XB_AEAD_TAG_LEN >= OPENSSL_FROM && (t = thread_ctx()))
		r = evp_run(t, 0, dst, src, len - XB_AEAD_TAG_LEN, nonce, key);
	if (r == RUN_OK)
		return true;
	if (r == RUN_FAILED) {	/* unauthenticated bytes are not left behind, as libsodium's */
		sodium_memzero(dst, len - XB_AEAD_TAG_LEN);
		return false;
	}
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, NULL, 0,
							 nonce, key) == 0;
}

void xb_aead_forget(void)
{
	static const uint8_t zero[XB_AEAD_KEY_LEN + 12];
	struct aead_thread *t;

	pthread_once(&key_once, make_key);
	if (have_key && (t = pthread_getspecific(key_thread)) && !t->failed)
		(void)EVP_CipherInit_ex2(t->ctx, NULL, zero, zero + XB_AEAD_KEY_LEN, 1, NULL);
}

const char *xb_aead_impl(void)
{
	return thread_ctx() ? "openssl" : "libsodium";
}
