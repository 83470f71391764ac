/* Transport-data AEAD (tunnel/aead.c, OpenSSL's ChaCha20-Poly1305) against
 * libsodium's, the reference it replaces: the same bytes both ways on random
 * keys, counters and lengths; a wrong tag, byte, counter or key refused; in
 * place; short input; each thread with its own context. */
#include "tests/lib/check.h"
#include "tunnel/aead.h"

#include <pthread.h>
#include <sodium.h>

static void nonce_of(uint8_t n[12], uint64_t counter)
{
	memset(n, 0, 4);
	memcpy(n + 4, &counter, 8);
}

static void ref_seal(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter, const uint8_t *key)
{
	uint8_t n[12];

	nonce_of(n, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, NULL, 0, NULL, n, key);
}

static bool ref_open(uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter, const uint8_t *key)
{
	uint8_t n[12];

	nonce_of(n, counter);
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, NULL, 0, n, key) == 0;
}

TEST(openssl_runs)
{
	CHECK_STR(xb_aead_impl(), "openssl");
}

TEST(same_as_libsodium_both_ways)
{
	static uint8_t msg[2100], a[2100 + 16], b[2100 + 16], back[2100];
	uint8_t key[32];

	for (int i = 0; i < 3000; i++) {
		size_t len = i < 100 ? (size_t)i : randombytes_uniform(sizeof(msg));
		uint64_t counter;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(&counter, sizeof(counter));
		randombytes_buf(msg, len);
		xb_aead_seal(a, msg, len, counter, key);
		ref_seal(b, msg, len, counter, key);
		CHECK(!memcmp(a, b, len + 16));
		CHECK(ref_open(back, a, len + 16, counter, key));
		CHECK(!memcmp(back, msg, len));
		CHECK(xb_aead_open(back, b, len + 16, counter, key));
		CHECK(!memcmp(back, msg, len));
	}
}

TEST(forgeries_refused)
{
	uint8_t key[32], other[32], msg[1420], c[1420 + 16], t[1420 + 16], out[1420];

	randombytes_buf(key, 32);
	randombytes_buf(other, 32);
	randombytes_buf(msg, sizeof(msg));
	xb_aead_seal(c, msg, sizeof(msg), 7, key);
	CHECK(xb_aead_open(out, c, sizeof(c), 7, key));
	for (size_t at = 0; at < sizeof(c); at += 97) {	/* every region: text and tag */
		memcpy(t, c, sizeof(c));
		t[at] ^= 0x01;
		CHECK(!xb_aead_open(out, t, sizeof(t), 7, key));
	}
	CHECK(!xb_aead_open(out, c, sizeof(c), 8, key));
	CHECK(!xb_aead_open(out, c, sizeof(c), 7, other));
	CHECK(!xb_aead_open(out, c, 15, 7, key));
	CHECK(!xb_aead_open(out, c, 0, 7, key));
	/* A good one after the failures: nothing was left half-done. */
	CHECK(xb_aead_open(out, c, sizeof(c), 7, key));
	CHECK(!memcmp(out, msg, sizeof(msg)));
}

TEST(in_place)
{
	uint8_t key[32], msg[1000], buf[1000 + 16];

	randombytes_buf(key, 32);
	randombytes_buf(msg, sizeof(msg));
	memcpy(buf, msg, sizeof(msg));
	xb_aead_seal(buf, buf, sizeof(msg), 1ull << 40, key);
	CHECK(memcmp(buf, msg, sizeof(msg)));
	CHECK(xb_aead_open(buf, buf, sizeof(buf), 1ull << 40, key));
	CHECK(!memcmp(buf, msg, sizeof(msg)));
}

static void *worker(void *arg)
{
	uint8_t key[32], msg[1420], c[1420 + 16], out[1420];
	int *bad = arg;

	randombytes_buf(key, 32);
	for (uint64_t n = 0; n < 20000; n++) {
		msg[0] = (uint8_t)n;
		xb_aead_seal(c, msg, sizeof(msg), n, key);
		if (!xb_aead_open(out, c, sizeof(c), n, key) || out[0] != (uint8_t)n)
			(*bad)++;
	}
	return NULL;
}

TEST(threads_own_contexts)
{
	pthread_t th[4];
	int bad[4] = { 0 };

	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&th[i], NULL, worker, &bad[i]), ==, 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(bad[i], ==, 0);
	}
}
