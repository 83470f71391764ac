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

static void make_key(void) { (void)pthread_key_create(&key_thread, thread_free); }

/* The calling thread's context; NULL means libsodium. */
static struct aead_thread *thread_ctx(void)
{
	struct aead_thread *t;

	pthread_once(&key_once, make_key);
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

enum { RUN_SETUP = -1, RUN_BAD_TAG = 0, RUN_OK = 1 };

/* Seal (enc 1) or open (enc 0) len bytes; the tag is after them. One
 * EVP_CipherUpdate takes at most INT_MAX bytes; ours are datagrams. */
static int evp_run(struct aead_thread *t, int enc, uint8_t *dst, const uint8_t *src, size_t len,
		   const uint8_t nonce[12], const uint8_t *key)
{
	int n = 0, fin = 0;

	if (len > 1u << 30 || EVP_CipherInit_ex2(t->ctx, NULL, key, nonce, enc, NULL) != 1)
		return RUN_SETUP;
	if (len && EVP_CipherUpdate(t->ctx, dst, &n, src, (int)len) != 1)
		return RUN_SETUP;
	if (!enc && EVP_CIPHER_CTX_ctrl(t->ctx, EVP_CTRL_AEAD_SET_TAG, XB_AEAD_TAG_LEN,
					(void *)(src + len)) != 1)
		return RUN_SETUP;
	if (EVP_CipherFinal_ex(t->ctx, dst + n, &fin) != 1)
		return enc ? RUN_SETUP : RUN_BAD_TAG;
	if (enc && EVP_CIPHER_CTX_ctrl(t->ctx, EVP_CTRL_AEAD_GET_TAG, XB_AEAD_TAG_LEN, dst + len) != 1)
		return RUN_SETUP;
	return RUN_OK;
}

void xb_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];

	make_nonce(nonce, counter);
	if (len >= OPENSSL_FROM && (t = thread_ctx()) && evp_run(t, 1, dst, src, len, nonce, key) == RUN_OK)
		return;
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, NULL, 0, NULL, nonce, key);
}

bool xb_aead_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter,
		  const uint8_t key[static XB_AEAD_KEY_LEN])
{
	struct aead_thread *t;
	uint8_t nonce[12];

	if (len < XB_AEAD_TAG_LEN)
		return false;
	make_nonce(nonce, counter);
	if (len - XB_AEAD_TAG_LEN >= OPENSSL_FROM && (t = thread_ctx())) {
		int r = evp_run(t, 0, dst, src, len - XB_AEAD_TAG_LEN, nonce, key);

		if (r != RUN_SETUP)
			return r == RUN_OK;
	}
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, NULL, 0,
							 nonce, key) == 0;
}

const char *xb_aead_impl(void)
{
	return thread_ctx() ? "openssl" : "libsodium";
}
