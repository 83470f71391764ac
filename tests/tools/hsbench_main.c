/* xb-hsbench [SECONDS] — how many WireGuard handshakes one core of this
 * machine completes (tunnel/noise.c), per side, over the thread's CPU time
 * (so other load matters little):
 *   initiator  create an initiation + consume the response + derive keys:
 *              the gateway's work per device in a takeover
 *   responder  open + finish an initiation + create the response + derive:
 *              its work per device that initiates
 * plus mac1 (cookie.c) on each message, as the receive path checks it.
 * Prints "initiator N/s responder N/s" (docs/ha.md, docs/performance.md). */
#include "tunnel/cookie.h"
#include "tunnel/noise.h"

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

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2, t_init = 0, t_resp = 0, t0;
	struct noise_identity gw, dev;
	struct cookie_checker cc;
	uint8_t kg[32], kd[32];
	unsigned long n = 0;

	if (secs <= 0 || secs > 60) {
		fprintf(stderr, "usage: xb-hsbench [SECONDS, 0-60]\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	noise_init();
	randombytes_buf(kg, 32);
	randombytes_buf(kd, 32);
	if (!noise_identity_set(&gw, kg) || !noise_identity_set(&dev, kd))
		return 1;
	wg_cookie_checker_init(&cc);
	wg_cookie_checker_set_key(&cc, gw.static_public);
	while (t_init + t_resp < secs) {
		struct noise_handshake hg, hd;
		struct message_handshake_initiation in;
		struct message_handshake_response re;
		struct noise_initiation st;
		struct noise_keypair kpg, kpd;

		/* fresh state each round: no replay or flood check trips */
		noise_handshake_init(&hg, &gw, dev.static_public, NULL);
		noise_handshake_init(&hd, &dev, gw.static_public, NULL);
		t0 = cpu_s();
		if (!noise_create_initiation(&in, &hg, &gw, (uint32_t)n))
			return 1;
		t_init += cpu_s() - t0;
		t0 = cpu_s();
		wg_cookie_validate(&cc, &in, sizeof(in), NULL, false, 0);
		if (!noise_open_initiation(&st, &in, &dev) ||
		    !noise_finish_initiation(&hd, &st, &in, 1000000000ULL) ||
		    !noise_create_response(&re, &hd, (uint32_t)n + 1) ||
		    !noise_derive_keypair(&kpd, &hd, 1))
			return 1;
		t_resp += cpu_s() - t0;
		t0 = cpu_s();
		wg_cookie_validate(&cc, &re, sizeof(re), NULL, false, 0);
		if (!noise_consume_response(&hg, &re, &gw) || !noise_derive_keypair(&kpg, &hg, 1))
			return 1;
		t_init += cpu_s() - t0;
		n++;
	}
	printf("initiator %.0f/s responder %.0f/s (%lu handshakes, one core)\n", n / t_init, n / t_resp, n);
	return 0;
}
