/* BLAKE2s per RFC 7693 section 3, with the parameter block reduced to what
 * WireGuard needs (digest length and key length; no salt, personalisation or
 * tree mode). HMAC and KDF_n as in the WireGuard paper, section 5.4.
 */
#include "tunnel/blake2s.h"

#include <assert.h>
#include <endian.h>
#include <string.h>

#include <sodium.h>

static const uint32_t blake2s_iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* Message word schedule, RFC 7693 section 2.7. BLAKE2s uses 10 rounds. */
static const uint8_t blake2s_sigma[10][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
};

static inline uint32_t ror32(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static inline uint32_t load_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

/* The mixing function G, RFC 7693 section 3.1, with BLAKE2s's rotations
 * (R1..R4 = 16, 12, 8, 7). */
#define G(r, i, a, b, c, d)                                          \
	do {                                                         \
		a += b + m[blake2s_sigma[r][2 * (i)]];               \
		d = ror32(d ^ a, 16);                                \
		c += d;                                              \
		b = ror32(b ^ c, 12);                                \
		a += b + m[blake2s_sigma[r][2 * (i) + 1]];           \
		d = ror32(d ^ a, 8);                                 \
		c += d;                                              \
		b = ror32(b ^ c, 7);                                 \
	} while (0)

/* One round: four column steps, then four diagonal steps. */
#define ROUND(r)                                                     \
	do {                                                         \
		G(r, 0, v[0], v[4], v[8], v[12]);                    \
		G(r, 1, v[1], v[5], v[9], v[13]);                    \
		G(r, 2, v[2], v[6], v[10], v[14]);                   \
		G(r, 3, v[3], v[7], v[11], v[15]);                   \
		G(r, 4, v[0], v[5], v[10], v[15]);                   \
		G(r, 5, v[1], v[6], v[11], v[12]);                   \
		G(r, 6, v[2], v[7], v[8], v[13]);                    \
		G(r, 7, v[3], v[4], v[9], v[14]);                    \
	} while (0)

/* Compression function F, RFC 7693 section 3.2, over nblocks consecutive
 * blocks, each advancing the byte counter by inc (64, or the length of the
 * final partial block). */
static void compress(struct blake2s_state *s, const uint8_t *block, size_t nblocks,
		     uint32_t inc)
{
	uint32_t m[16], v[16];

	while (nblocks--) {
		s->t[0] += inc;
		s->t[1] += s->t[0] < inc;
		for (int i = 0; i < 16; i++)
			m[i] = load_le32(block + 4 * i);
		memcpy(v, s->h, sizeof(s->h));
		memcpy(v + 8, blake2s_iv, sizeof(blake2s_iv));
		v[12] ^= s->t[0];
		v[13] ^= s->t[1];
		v[14] ^= s->f[0];
		v[15] ^= s->f[1];
		ROUND(0);
		ROUND(1);
		ROUND(2);
		ROUND(3);
		ROUND(4);
		ROUND(5);
		ROUND(6);
		ROUND(7);
		ROUND(8);
		ROUND(9);
		for (int i = 0; i < 8; i++)
			s->h[i] ^= v[i] ^ v[i + 8];
		block += BLAKE2S_BLOCK_SIZE;
	}
	sodium_memzero(m, sizeof(m));
	sodium_memzero(v, sizeof(v));
}

#undef ROUND
#undef G

/* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
static void init_param(struct blake2s_state *s, size_t outlen, size_t keylen)
{
	assert(outlen >= 1 && outlen <= BLAKE2S_HASH_SIZE);
	assert(keylen <= BLAKE2S_KEY_SIZE);
	memset(s, 0, sizeof(*s));
	memcpy(s->h, blake2s_iv, sizeof(s->h));
	s->h[0] ^= 0x01010000u ^ (uint32_t)keylen << 8 ^ (uint32_t)outlen;
	s->outlen = outlen;
}

void blake2s_init(struct blake2s_state *s, size_t outlen)
{
	init_param(s, outlen, 0);
}

/* A keyed hash prepends the key, zero-padded to one full block. */
void blake2s_init_key(struct blake2s_state *s, size_t outlen, const uint8_t *key, size_t keylen)
{
	assert(key && keylen >= 1);
	init_param(s, outlen, keylen);
	memcpy(s->buf, key, keylen);
	s->buflen = BLAKE2S_BLOCK_SIZE;
}

/* The last block must be compressed with the final flag set, so a block is
 * only compressed once more input is known to follow it. */
void blake2s_update(struct blake2s_state *s, const uint8_t *in, size_t inlen)
{
	size_t fill = BLAKE2S_BLOCK_SIZE - s->buflen;

	if (!inlen)
		return;
	if (inlen > fill) {
		memcpy(s->buf + s->buflen, in, fill);
		compress(s, s->buf, 1, BLAKE2S_BLOCK_SIZE);
		s->buflen = 0;
		in += fill;
		inlen -= fill;
		if (inlen > BLAKE2S_BLOCK_SIZE) {
			size_t n = (inlen - 1) / BLAKE2S_BLOCK_SIZE;

			compress(s, in, n, BLAKE2S_BLOCK_SIZE);
			in += n * BLAKE2S_BLOCK_SIZE;
			inlen -= n * BLAKE2S_BLOCK_SIZE;
		}
	}
	memcpy(s->buf + s->buflen, in, inlen);
	s->buflen += inlen;
}

void blake2s_final(struct blake2s_state *s, uint8_t *out)
{
	uint8_t full[BLAKE2S_HASH_SIZE];

	s->f[0] = 0xffffffffu;
	memset(s->buf + s->buflen, 0, BLAKE2S_BLOCK_SIZE - s->buflen);
	compress(s, s->buf, 1, (uint32_t)s->buflen);
	for (int i = 0; i < 8; i++)
		store_le32(full + 4 * i, s->h[i]);
	memcpy(out, full, s->outlen);
	sodium_memzero(full, sizeof(full));
	sodium_memzero(s, sizeof(*s));
}

void blake2s(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen,
	     const uint8_t *key, size_t keylen)
{
	struct blake2s_state s;

	if (key && keylen)
		blake2s_init_key(&s, outlen, key, keylen);
	else
		blake2s_init(&s, outlen);
	blake2s_update(&s, in, inlen);
	blake2s_final(&s, out);
}

/* HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), K' = K zero-padded to
 * the 64-byte block, or H(K) padded when K is longer than a block. */
void blake2s_hmac(uint8_t out[BLAKE2S_HASH_SIZE], const uint8_t *in, size_t inlen,
		  const uint8_t *key, size_t keylen)
{
	uint8_t xkey[BLAKE2S_BLOCK_SIZE] = { 0 };
	uint8_t ihash[BLAKE2S_HASH_SIZE];
	struct blake2s_state s;

	if (keylen > BLAKE2S_BLOCK_SIZE)
		blake2s(xkey, BLAKE2S_HASH_SIZE, key, keylen, NULL, 0);
	else if (keylen)
		memcpy(xkey, key, keylen);

	for (int i = 0; i < BLAKE2S_BLOCK_SIZE; i++)
		xkey[i] ^= 0x36;
	blake2s_init(&s, BLAKE2S_HASH_SIZE);
	blake2s_update(&s, xkey, BLAKE2S_BLOCK_SIZE);
	blake2s_update(&s, in, inlen);
	blake2s_final(&s, ihash);

	for (int i = 0; i < BLAKE2S_BLOCK_SIZE; i++)
		xkey[i] ^= 0x36 ^ 0x5c;
	blake2s_init(&s, BLAKE2S_HASH_SIZE);
	blake2s_update(&s, xkey, BLAKE2S_BLOCK_SIZE);
	blake2s_update(&s, ihash, BLAKE2S_HASH_SIZE);
	blake2s_final(&s, ihash);

	memcpy(out, ihash, BLAKE2S_HASH_SIZE);
	sodium_memzero(xkey, sizeof(xkey));
	sodium_memzero(ihash, sizeof(ihash));
}

/* HKDF-Expand step i: t_i = HMAC(secret, t_{i-1} || i), t_0 empty. */
static void expand(uint8_t t[BLAKE2S_HASH_SIZE + 1], const uint8_t secret[BLAKE2S_HASH_SIZE],
		   uint8_t i)
{
	size_t len = i == 1 ? 0 : BLAKE2S_HASH_SIZE;

	t[len] = i;
	blake2s_hmac(t, t, len + 1, secret, BLAKE2S_HASH_SIZE);
}

void wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t *data, size_t datalen,
	    const uint8_t chaining_key[BLAKE2S_HASH_SIZE])
{
	uint8_t *outs[3] = { t1, t2, t3 };
	uint8_t secret[BLAKE2S_HASH_SIZE];
	uint8_t t[BLAKE2S_HASH_SIZE + 1];
	int last = t3 ? 3 : t2 ? 2 : t1 ? 1 : 0;

	/* Extract first: after this, data and chaining_key are no longer read,
	 * so the outputs may alias them. */
	blake2s_hmac(secret, data, datalen, chaining_key, BLAKE2S_HASH_SIZE);
	for (int i = 1; i <= last; i++) {
		expand(t, secret, (uint8_t)i);
		if (outs[i - 1])
			memcpy(outs[i - 1], t, BLAKE2S_HASH_SIZE);
	}
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(t, sizeof(t));
}
