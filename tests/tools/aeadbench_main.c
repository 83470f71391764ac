/* xb-aeadbench [SECONDS] [BYTES] — transport-data AEAD speed on this
 * machine: seal then open BYTES-byte packets (default 1420) with libsodium's
 * ChaCha20-Poly1305, with ours (tunnel/aead.c, OpenSSL's) on any buffer
 * (xb_aead_seal/open, in place) and with ours on buffers with room, as the
 * data path has them (xb_aead_seal_inplace, xb_aead_open_room), alternating
 * rounds of 0.1 s for SECONDS each (default 2); prints Gbit/s per core of
 * each (bytes over the thread's CPU time, so other load matters little)
 * and ours / libsodium. */
#include "tunnel/aead.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sodium_seal(uint8_t *c, const uint8_t *m, size_t n, uint64_t ctr, const uint8_t *k)
{
	uint8_t nonce[12] = { 0 };

	memcpy(nonce + 4, &ctr, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt(c, NULL, m, n, NULL, 0, NULL, nonce, k);
}

static bool sodium_open(uint8_t *m, const uint8_t *c, size_t n, uint64_t ctr, const uint8_t *k)
{
	uint8_t nonce[12] = { 0 };

	memcpy(nonce + 4, &ctr, 8);
	return crypto_aead_chacha20poly1305_ietf_decrypt(m, NULL, NULL, c, n, NULL, 0, nonce, k) == 0;
}

/* One round of about 0.1 s of CPU; adds bytes and CPU seconds. */
static int round_of(int kind, uint8_t *buf, size_t len, const uint8_t *key, double *bytes, double *cpu)
{
	uint8_t *room = buf + len + 16 + XB_AEAD_TAILROOM + XB_AEAD_HEADROOM;	/* a second roomy buffer */
	static uint64_t ctr;
	double t0 = cpu_s(), t;
	unsigned long n = 0;

	do {
		for (int i = 0; i < 64; i++, n++, ctr++) {
			if (kind == 2) {
				xb_aead_seal_inplace(buf, len, ctr, key);
				if (!xb_aead_open_room(room, buf, len + 16, ctr, key))
					return -1;
			} else if (kind == 1) {
				xb_aead_seal(buf, buf, len, ctr, key);
				if (!xb_aead_open(buf, buf, len + 16, ctr, key))
					return -1;
			} else {
				sodium_seal(buf, buf, len, ctr, key);
				if (!sodium_open(buf, buf, len + 16, ctr, key))
					return -1;
			}
		}
	} while ((t = cpu_s() - t0) < 0.1);
	*bytes += (double)n * (double)len;
	*cpu += t;
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2, bytes[3] = { 0 }, cpu[3] = { 0 }, g[3];
	size_t len = argc > 2 ? (size_t)atol(argv[2]) : 1420;
	uint8_t key[32], *mem, *buf;

	if (sodium_init() < 0 || secs <= 0 || secs > 600 || len < 1 || len > 65000 ||
	    !(mem = calloc(2, XB_AEAD_HEADROOM + len + 16 + XB_AEAD_TAILROOM))) {
		fprintf(stderr, "usage: xb-aeadbench [SECONDS (0-600)] [BYTES (1-65000)]\n");
		return 2;
	}
	buf = mem + XB_AEAD_HEADROOM;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(buf, len);
	while (cpu[0] < secs || cpu[1] < secs || cpu[2] < secs)
		for (int k = 0; k < 3; k++)
			if (round_of(k, buf, len, key, &bytes[k], &cpu[k]) < 0) {
				fprintf(stderr, "xb-aeadbench: a packet did not open\n");
				return 1;
			}
	for (int k = 0; k < 3; k++)
		g[k] = bytes[k] * 8 / cpu[k] / 1e9;
	printf("ChaCha20-Poly1305, %zu-byte packets, seal + open, Gbit/s per core of CPU time:\n", len);
	printf("  libsodium %s   %6.2f\n", sodium_version_string(), g[0]);
	printf("  ours (%s)        %6.2f\n", xb_aead_impl(), g[1]);
	printf("  ours, with room        %6.2f\n", g[2]);
	printf("  ours / libsodium  %6.2f   with room: %6.2f\n", g[1] / g[0], g[2] / g[0]);
	free(mem);
	return 0;
}
