/* BLAKE2s, HMAC-BLAKE2s and WireGuard's KDF against published vectors. */
#include "tests/lib/check.h"
#include "tunnel/blake2s.h"

/* RFC 7693 Appendix E: the deterministic input generator of the self-test. */
static void selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t a = 0xdead4bad * seed, b = 1, t;

	for (size_t i = 0; i < len; i++) {
		t = a + b;
		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

/* The kernel's blake2s selftest inputs: a 32-byte Fibonacci key (mod 256,
 * starting 1, 1) and the 256-byte message 00 01 .. ff. */
static void kernel_inputs(uint8_t key[32], uint8_t buf[256])
{
	key[0] = key[1] = 1;
	for (int i = 2; i < 32; i++)
		key[i] = (uint8_t)(key[i - 2] + key[i - 1]);
	for (int i = 0; i < 256; i++)
		buf[i] = (uint8_t)i;
}

TEST(rfc7693_abc)
{
	/* RFC 7693 Appendix B, BLAKE2s-256("abc"). */
	uint8_t want[32], got[32];

	xb_test_unhex(want, 32, "508c5e8c327c14e2e1a72ba34eeb452f"
				"37458b209ed63a294d999b4c86675982");
	blake2s(got, 32, (const uint8_t *)"abc", 3, NULL, 0);
	CHECK_MEM(got, want, 32);
}

TEST(empty_message)
{
	/* BLAKE2s-256 of the empty string (BLAKE2 reference KAT). */
	uint8_t want[32], got[32];

	xb_test_unhex(want, 32, "69217a3079908094e11121d042354a7c"
				"1f55b6482ca1a51e1b250dfd1ed0eef9");
	blake2s(got, 32, NULL, 0, NULL, 0);
	CHECK_MEM(got, want, 32);
}

TEST(rfc7693_selftest)
{
	/* RFC 7693 Appendix E: hash the unkeyed and keyed digests of every
	 * (digest length, message length) pair; the grand hash is fixed. */
	static const size_t md_len[4] = { 16, 20, 28, 32 };
	static const size_t in_len[6] = { 0, 3, 64, 65, 255, 1024 };
	uint8_t in[1024], md[32], key[32], want[32], got[32];
	struct blake2s_state grand;

	xb_test_unhex(want, 32, "6a411f08ce25adcdfb02aba641451cec"
				"53c598b24f4fc787fbdc88797f4c1dfe");
	blake2s_init(&grand, 32);
	for (int i = 0; i < 4; i++) {
		size_t outlen = md_len[i];

		for (int j = 0; j < 6; j++) {
			size_t inlen = in_len[j];

			selftest_seq(in, inlen, (uint32_t)inlen);
			blake2s(md, outlen, in, inlen, NULL, 0);
			blake2s_update(&grand, md, outlen);
			selftest_seq(key, outlen, (uint32_t)outlen);
			blake2s(md, outlen, in, inlen, key, outlen);
			blake2s_update(&grand, md, outlen);
		}
	}
	blake2s_final(&grand, got);
	CHECK_MEM(got, want, 32);
}

TEST(noise_construction_constants)
{
	/* WireGuard's initial chaining key and hash, as precomputed by other
	 * implementations (BoringTun's INITIAL_CHAIN_KEY / INITIAL_CHAIN_HASH):
	 * C = HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"), H = HASH(C || identifier). */
	static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	uint8_t want_c[32], want_h[32], c[32], h[32];
	struct blake2s_state s;

	xb_test_unhex(want_c, 32, "60e26daef327efc02ec335e2a025d2d0"
				  "16eb4206f87277f52d38d1988b78cd36");
	xb_test_unhex(want_h, 32, "2211b361081ac566691243db458ad532"
				  "2d9c6c662293e8b70ee19c65ba079ef3");
	blake2s(c, 32, (const uint8_t *)construction, strlen(construction), NULL, 0);
	CHECK_MEM(c, want_c, 32);
	blake2s_init(&s, 32);
	blake2s_update(&s, c, 32);
	blake2s_update(&s, (const uint8_t *)identifier, strlen(identifier));
	blake2s_final(&s, h);
	CHECK_MEM(h, want_h, 32);
}

TEST(incremental_equals_oneshot)
{
	/* Every split of the input, in odd chunk sizes, across block edges. */
	static const size_t chunks[] = { 1, 3, 7, 63, 64, 65, 13, 128, 129 };
	uint8_t in[1500], key[32], want[32], got[32];
	struct blake2s_state s;

	selftest_seq(in, sizeof(in), 1500);
	selftest_seq(key, sizeof(key), 7);
	for (size_t len = 0; len <= sizeof(in); len += len < 200 ? 1 : 97) {
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			for (int keyed = 0; keyed < 2; keyed++) {
				size_t outlen = keyed ? 16 : 32, off = 0, step = chunks[c];

				blake2s(want, outlen, in, len, keyed ? key : NULL, keyed ? 32 : 0);
				if (keyed)
					blake2s_init_key(&s, outlen, key, 32);
				else
					blake2s_init(&s, outlen);
				while (off < len) {
					size_t n = len - off < step ? len - off : step;

					blake2s_update(&s, in + off, n);
					blake2s_update(&s, in + off, 0);
					off += n;
					step = step * 5 % 131 + 1;	/* vary the sizes */
				}
				blake2s_final(&s, got);
				CHECK_MEM(got, want, outlen);
			}
		}
	}
}

TEST(final_wipes_state)
{
	struct blake2s_state s, zero;
	uint8_t out[32];

	memset(&zero, 0, sizeof(zero));
	blake2s_init_key(&s, 32, (const uint8_t *)"secret key", 10);
	blake2s_update(&s, (const uint8_t *)"abc", 3);
	blake2s_final(&s, out);
	CHECK(!memcmp(&s, &zero, sizeof(s)));
}

TEST(hmac_kernel_vectors)
{
	/* blake2s_hmac_testvecs of the Linux kernel's blake2s selftest
	 * (lib/crypto/blake2s-selftest.c, until commit d8d83d8ab0a4 moved the
	 * HMAC into WireGuard), generated with OpenSSL's HMAC over
	 * EVP_blake2s256: HMAC(key, buf) and HMAC(buf, key). The second has a
	 * 256-byte key, so it exercises hashing a key longer than a block. */
	uint8_t key[32], buf[256], want[32], got[32];

	kernel_inputs(key, buf);
	xb_test_unhex(want, 32, "cee1576982dcbf43ad564c70ed681696"
				"cfa473e8e8fc3279080a7582da3f0511");
	blake2s_hmac(got, buf, sizeof(buf), key, sizeof(key));
	CHECK_MEM(got, want, 32);
	xb_test_unhex(want, 32, "772f0c7141f44b2bb3c6b6f960dee452"
				"3866e8bf9b96c49f60d9243799d6ec31");
	blake2s_hmac(got, key, sizeof(key), buf, sizeof(buf));
	CHECK_MEM(got, want, 32);
}

/* RFC 2104 spelled out with the one-shot hash, for key lengths the vectors
 * above do not cover (0, exactly one block, one past). */
static void hmac_by_definition(uint8_t out[32], const uint8_t *in, size_t inlen,
			       const uint8_t *key, size_t keylen)
{
	uint8_t k[64] = { 0 }, inner[64 + 300], outer[64 + 32];

	if (keylen > 64)
		blake2s(k, 32, key, keylen, NULL, 0);
	else
		memcpy(k, key, keylen);
	for (int i = 0; i < 64; i++) {
		inner[i] = k[i] ^ 0x36;
		outer[i] = k[i] ^ 0x5c;
	}
	memcpy(inner + 64, in, inlen);
	blake2s(outer + 64, 32, inner, 64 + inlen, NULL, 0);
	blake2s(out, 32, outer, sizeof(outer), NULL, 0);
}

TEST(hmac_matches_definition)
{
	static const size_t keylens[] = { 0, 1, 32, 63, 64, 65, 200 };
	uint8_t key[200], msg[300], want[32], got[32];

	selftest_seq(key, sizeof(key), 99);
	selftest_seq(msg, sizeof(msg), 300);
	for (size_t i = 0; i < sizeof(keylens) / sizeof(keylens[0]); i++) {
		for (size_t len = 0; len <= sizeof(msg); len += 37) {
			hmac_by_definition(want, msg, len, key, keylens[i]);
			blake2s_hmac(got, msg, len, key, keylens[i]);
			CHECK_MEM(got, want, 32);
		}
	}
}

TEST(kdf_vectors)
{
	/* Computed independently with Python's hashlib.blake2s and hmac
	 * modules (whose HMAC-BLAKE2s reproduces the kernel vectors above):
	 * ck = 00 01 .. 1f, data = 40 41 .. 64 (37 bytes). */
	uint8_t ck[32], data[37], t[3][32], want[3][32], out[32];

	for (int i = 0; i < 32; i++)
		ck[i] = (uint8_t)i;
	for (int i = 0; i < 37; i++)
		data[i] = (uint8_t)(0x40 + i);
	xb_test_unhex(want[0], 32, "f583cd95453effd226f3bf69c31d443b"
				   "ae54119a5a519f50d66d1a7c5fb7ff1a");
	xb_test_unhex(want[1], 32, "c5971f2e3145821383d58a7a3d19c0e7"
				   "c2c6b0eee15a9dc0df6ddfb38e2597a0");
	xb_test_unhex(want[2], 32, "f70513885cd63853212a5f5e74ffe279"
				   "3bd2723216b3343710065de712ef66f5");
	wg_kdf(t[0], t[1], t[2], data, sizeof(data), ck);
	CHECK_MEM(t, want, sizeof(want));

	/* KDF1 and KDF2 are prefixes of KDF3; skipped outputs change nothing. */
	wg_kdf(out, NULL, NULL, data, sizeof(data), ck);
	CHECK_MEM(out, want[0], 32);
	wg_kdf(NULL, out, NULL, data, sizeof(data), ck);
	CHECK_MEM(out, want[1], 32);
	wg_kdf(NULL, NULL, out, data, sizeof(data), ck);
	CHECK_MEM(out, want[2], 32);

	/* Empty input, as in the final Noise step KDF2(C, empty). */
	xb_test_unhex(want[0], 32, "7a38c34bf2b8738d7374ca77c44ecb30"
				   "9a11d2b2528304fa86052c365e722624");
	wg_kdf(out, NULL, NULL, NULL, 0, ck);
	CHECK_MEM(out, want[0], 32);
}

TEST(kdf_matches_definition)
{
	uint8_t ck[32], data[100], secret[32], want[3][32], got[3][32], m[33];

	selftest_seq(ck, sizeof(ck), 32);
	selftest_seq(data, sizeof(data), 100);
	for (size_t len = 0; len <= sizeof(data); len += 11) {
		blake2s_hmac(secret, data, len, ck, 32);
		m[0] = 1;
		blake2s_hmac(want[0], m, 1, secret, 32);
		memcpy(m, want[0], 32);
		m[32] = 2;
		blake2s_hmac(want[1], m, 33, secret, 32);
		memcpy(m, want[1], 32);
		m[32] = 3;
		blake2s_hmac(want[2], m, 33, secret, 32);
		wg_kdf(got[0], got[1], got[2], data, len, ck);
		CHECK_MEM(got, want, sizeof(want));
	}
}

TEST(kdf_outputs_may_alias_inputs)
{
	/* Noise updates in place: C, k = KDF2(C, input). */
	uint8_t ck[32], data[32], want[2][32];

	selftest_seq(ck, sizeof(ck), 5);
	selftest_seq(data, sizeof(data), 6);
	wg_kdf(want[0], want[1], NULL, data, sizeof(data), ck);
	wg_kdf(ck, data, NULL, data, sizeof(data), ck);
	CHECK_MEM(ck, want[0], 32);
	CHECK_MEM(data, want[1], 32);
}
