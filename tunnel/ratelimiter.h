/* Per-source handshake rate limit: 20 a second, bursts of 5 (the kernel's
 * numbers). IPv4 sources are limited per address, IPv6 per /64. The table is
 * bounded; when it is full of active sources, new sources are refused. */
#ifndef XB_RATELIMITER_H
#define XB_RATELIMITER_H

#include "tunnel/wgconf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RATELIMITER_PACKETS_PER_SECOND 20
#define RATELIMITER_BURST 5
#define RATELIMITER_SLOTS 8192

struct wg_ratelimiter_entry {
	uint8_t key[9];		/* family byte + address (v6: first 8 bytes) */
	bool used;
	uint64_t last_ns;
	uint64_t tokens;	/* in nanoseconds of credit */
};

struct wg_ratelimiter {
	struct wg_ratelimiter_entry *slots;
	uint32_t used;
	uint64_t last_gc_ns;
	pthread_mutex_t lock;
};

bool wg_ratelimiter_init(struct wg_ratelimiter *r);
void wg_ratelimiter_free(struct wg_ratelimiter *r);
bool wg_ratelimiter_allow(struct wg_ratelimiter *r, const union xb_sockaddr *src, uint64_t now_ns);

#endif
