/* Transport-data AEAD (tunnel/aead.c: OpenSSL's ChaCha20 and Poly1305 from
 * OPENSSL_FROM bytes, libsodium below) against libsodium's, the reference it
 * replaces, itself pinned to RFC 8439's vector: the same bytes both ways for
 * every length to 2 100, in place and not; a flipped bit anywhere refused with
 * dst wiped; a wrong counter or key refused; short input; each thread with its
 * own context. The same for the variants that work in the caller's
 * headroom and tailroom, with guard bytes around that room. */
#include "tests/lib/check.h"
#include "tunnel/aead.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>

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

/* RFC 8439 2.8.2. It has associated data and a nonce with a non-zero
 * first word, which WireGuard's transport data never has and xb_aead cannot
 * express, so it pins the reference the tests below compare against. */
TEST(reference_is_rfc8439)
{
	static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
				 "only one tip for the future, sunscreen would be it.";
	static const uint8_t aad[12] = { 0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3,
					 0xc4, 0xc5, 0xc6, 0xc7 };
	static const uint8_t nonce[12] = { 0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43,
					   0x44, 0x45, 0x46, 0x47 };
	static const uint8_t want[114 + 16] = {
		0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2,
		0xa4, 0xad, 0xed, 0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee, 0x62, 0xd6,
		0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9, 0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda, 0x92, 0x72, 0x8b,
		0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05, 0xd6, 0xa5, 0xb6, 0x7e, 0xcd, 0x3b, 0x36,
		0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae, 0xe3, 0x28, 0x09, 0x1b, 0x58,
		0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85, 0x80, 0x8b, 0x48, 0x31, 0xd7, 0xbc,
		0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5, 0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b,
		0x61, 0x16,
		0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91,
	};
	uint8_t key[32], c[114 + 16];
	unsigned long long clen = 0;

	CHECK_INT(sizeof(pt) - 1, ==, 114);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	crypto_aead_chacha20poly1305_ietf_encrypt(c, &clen, (const uint8_t *)pt, 114, aad, sizeof(aad),
						  NULL, nonce, key);
	CHECK_INT(clen, ==, sizeof(want));
	CHECK(!memcmp(c, want, sizeof(want)));
}

TEST(openssl_runs)
{
	CHECK_STR(xb_aead_impl(), "openssl");
}

/* Every length to 2 100 (both sides of the threshold, each remainder mod
 * 16 and 64, whole blocks), random key and counter: ours and libsodium give
 * the same bytes, each opens the other's, in place and not. */
TEST(same_as_libsodium_every_length)
{
	static uint8_t msg[2100], a[2100 + 16], b[2100 + 16], back[2100], buf[2100 + 16];
	uint8_t key[32];

	for (size_t len = 0; len <= sizeof(msg); len++) {
		uint64_t counter;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(&counter, sizeof(counter));
		randombytes_buf(msg, len);
		xb_aead_seal(a, msg, len, counter, key);
		ref_seal(b, msg, len, counter, key);
		CHECK(!memcmp(a, b, len + 16));
		memcpy(buf, msg, len);
		xb_aead_seal(buf, buf, len, counter, key);
		CHECK(!memcmp(buf, b, len + 16));
		CHECK(ref_open(back, a, len + 16, counter, key));
		CHECK(!memcmp(back, msg, len));
		memset(back, 0xa5, len);
		CHECK(xb_aead_open(back, b, len + 16, counter, key));
		CHECK(!memcmp(back, msg, len));
		CHECK(xb_aead_open(buf, buf, len + 16, counter, key));
		CHECK(!memcmp(buf, msg, len));
	}
}

/* One bit flipped at every byte of text and tag, at lengths around the
 * threshold and block edges: refused, and dst holds zeros (in place too),
 * never the unauthenticated plaintext. */
TEST(flipped_bit_refused_dst_wiped)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 511, 512, 513,
				       767, 768, 769, 1024, 1280, 1419, 1420, 1421, 2048 };
	static uint8_t key[32], msg[2048], c[2048 + 16], t[2048 + 16], out[2048];

	randombytes_buf(key, 32);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];

		randombytes_buf(msg, len);
		xb_aead_seal(c, msg, len, 99 + i, key);
		for (size_t at = 0; at < len + 16; at += 1 + at / 7) {
			memcpy(t, c, len + 16);
			t[at] ^= (uint8_t)(1u << (at % 8));
			memset(out, 0xa5, len);
			CHECK(!xb_aead_open(out, t, len + 16, 99 + i, key));
			CHECK(sodium_is_zero(out, len));
			CHECK(!xb_aead_open(t, t, len + 16, 99 + i, key));
			CHECK(sodium_is_zero(t, len));
		}
		CHECK(xb_aead_open(out, c, len + 16, 99 + i, key));
		CHECK(!memcmp(out, msg, len));
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
	memset(out, 0xa5, sizeof(out));
	CHECK(!xb_aead_open(out, c, sizeof(c), 8, key));
	CHECK(sodium_is_zero(out, sizeof(out)));
	CHECK(!xb_aead_open(out, c, sizeof(c), 7, other));
	CHECK(!xb_aead_open(out, c, 15, 7, key));
	CHECK(!xb_aead_open(out, c, 0, 7, key));
	/* A good one after the failures: nothing was left half-done. */
	CHECK(xb_aead_open(out, c, sizeof(c), 7, key));
	CHECK(!memcmp(out, msg, sizeof(msg)));
}

/* A keepalive: no payload, so callers may pass NULL for it (memcpy's
 * arguments must not be NULL even for 0 bytes: the SAN build catches it). */
TEST(keepalive_null_payload)
{
	uint8_t key[32], c[16], want[16];

	randombytes_buf(key, 32);
	xb_aead_seal(c, NULL, 0, 5, key);
	ref_seal(want, (const uint8_t *)"", 0, 5, key);
	CHECK(!memcmp(c, want, 16));
	CHECK(xb_aead_open(NULL, c, 16, 5, key));
	c[3] ^= 4;
	CHECK(!xb_aead_open(NULL, c, 16, 5, key));
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

/* The _inplace/_room variants on buffers laid out [guard ‖ headroom ‖
 * text ‖ tailroom ‖ guard], each its own allocation (the SAN build catches
 * a byte read or written past the guards). */
#define GUARD 48
#define ROOM (GUARD + XB_AEAD_HEADROOM)

struct roomy {
	uint8_t *mem, *text;	/* text = mem + ROOM */
	size_t size;
};

static void roomy_make(struct roomy *r, size_t len, uint8_t fill)
{
	r->size = ROOM + len + XB_AEAD_TAILROOM + GUARD;
	r->mem = malloc(r->size);
	r->text = r->mem + ROOM;
	memset(r->mem, fill, r->size);
}

/* The guards and (keep_head) the headroom still hold fill. */
static bool roomy_kept(const struct roomy *r, size_t len, uint8_t fill, bool keep_head)
{
	for (size_t i = 0; i < (keep_head ? ROOM : GUARD); i++)
		if (r->mem[i] != fill)
			return false;
	for (size_t i = ROOM + len + XB_AEAD_TAILROOM; i < r->size; i++)
		if (r->mem[i] != fill)
			return false;
	return true;
}

/* Every length to 2 100: xb_aead_seal_inplace gives libsodium's bytes,
 * puts its headroom back and touches nothing outside its room;
 * xb_aead_open_room opens libsodium's, with src (room and all) only read
 * and dst's headroom put back, nothing outside. */
TEST(room_variants_same_as_libsodium_every_length)
{
	static uint8_t msg[2100], want[2100 + 16];
	uint8_t key[32];

	for (size_t len = 0; len <= sizeof(msg); len++) {
		struct roomy b, d;
		uint64_t counter;
		uint8_t *copy;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(&counter, sizeof(counter));
		randombytes_buf(msg, len);
		ref_seal(want, msg, len, counter, key);
		roomy_make(&b, len, 0x5a);
		memcpy(b.text, msg, len);
		xb_aead_seal_inplace(b.text, len, counter, key);
		CHECK(!memcmp(b.text, want, len + 16));
		CHECK(roomy_kept(&b, len, 0x5a, true));

		memcpy(b.text + len + 16, msg, XB_AEAD_TAILROOM - 16 < len ? XB_AEAD_TAILROOM - 16 : len);
		copy = malloc(b.size);
		memcpy(copy, b.mem, b.size);
		roomy_make(&d, len, 0xc3);
		CHECK(xb_aead_open_room(d.text, b.text, len + 16, counter, key));
		CHECK(!memcmp(d.text, msg, len));
		CHECK(roomy_kept(&d, len, 0xc3, true));
		CHECK(!memcmp(copy, b.mem, b.size));
		free(copy);
		free(d.mem);
		free(b.mem);
	}
}

/* A flipped bit anywhere in text or tag: xb_aead_open_room refuses and
 * leaves zeros in dst, its headroom put back, nothing outside touched. */
TEST(room_open_flipped_bit_refused_dst_wiped)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1419, 1420, 2048 };
	uint8_t key[32];

	randombytes_buf(key, 32);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		struct roomy c, d;

		roomy_make(&c, len, 0x11);
		randombytes_buf(c.text, len);
		xb_aead_seal_inplace(c.text, len, 7 + i, key);
		roomy_make(&d, len, 0xc3);
		for (size_t at = 0; at < len + 16; at += 1 + at / 7) {
			c.text[at] ^= (uint8_t)(1u << (at % 8));
			memset(d.text, 0xa5, len);
			CHECK(!xb_aead_open_room(d.text, c.text, len + 16, 7 + i, key));
			CHECK(sodium_is_zero(d.text, len));
			CHECK(roomy_kept(&d, len, 0xc3, true));
			c.text[at] ^= (uint8_t)(1u << (at % 8));
		}
		CHECK(xb_aead_open_room(d.text, c.text, len + 16, 7 + i, key));
		CHECK(!xb_aead_open_room(d.text, c.text, len + 16, 8 + i, key));
		CHECK(sodium_is_zero(d.text, len));
		CHECK(!xb_aead_open_room(d.text, c.text, 15, 7 + i, key));
		free(d.mem);
		free(c.mem);
	}
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
