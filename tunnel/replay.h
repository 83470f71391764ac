/* Receive-side anti-replay window for transport data counters: the bitmap
 * of RFC 6479, as in the WireGuard kernel module's counter_validate().
 *
 * The bitmap is WG_REPLAY_BITS bits in 64-bit words used as a ring. One word
 * is kept as slack so that advancing the window clears whole words instead of
 * shifting bits, which leaves WG_REPLAY_WINDOW = 8128 usable bits: with
 * highest accepted counter H, counters H - 8128 .. H are judged by the
 * bitmap, anything older is rejected.
 *
 * Not thread-safe: the caller serialises calls per keypair.
 */
#ifndef XB_REPLAY_H
#define XB_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define WG_REPLAY_BITS 8192
#define WG_REPLAY_WINDOW (WG_REPLAY_BITS - 64)	/* 8128 */

/* Reject-After-Messages of the WireGuard paper (section 6.1), 2^64 - 2^13 - 1
 * = 0xffffffffffffdfff, as in wireguard-go. 2^64 does not fit in a uint64_t,
 * but UINT64_MAX is 2^64 - 1, so UINT64_MAX - 2^13 is exactly the value;
 * "UINT64_MAX - 8192 - 1" would be one short. (The Linux module uses
 * U64_MAX - 8128 - 1 instead, a little higher.) A counter at or above it is
 * never accepted, so the nonce space cannot wrap. */
#define WG_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))

struct wg_replay {
	uint64_t counter;	/* one past the highest accepted; 0 = none yet */
	uint64_t bitmap[WG_REPLAY_BITS / 64];
};

void wg_replay_init(struct wg_replay *r);
/* Called only after the packet authenticated. True if counter is new, inside
 * the window and below WG_REJECT_AFTER_MESSAGES, and records it; false for
 * replays, counters too old for the window, and counters at/above the limit. */
bool wg_replay_accept(struct wg_replay *r, uint64_t counter);

#endif
