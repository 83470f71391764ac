/* Per-device request budgets of the posture endpoint (docs/posture.md,
 * "Limits"): a token bucket per device name, `burst' tokens deep, refilled
 * at `rate' a second; a request takes one, and a device with none left is
 * refused (429) until one has refilled. One device's budget is its own:
 * what it spends never slows another.
 *
 * Memory: one entry per device that asked lately. The names come from
 * the policy (the endpoint asks only for a peer that device_for knew), and
 * an entry whose bucket has refilled is dropped at the next sweep, so the
 * table holds at most the policy's devices. Times are monotonic ns.
 */
#ifndef XB_POSTURE_RATE_H
#define XB_POSTURE_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xb_posture_rate;

/* rate: tokens a second (>= 1); burst: the bucket's depth (>= 1). NULL
 * when out of memory. */
struct xb_posture_rate *xb_posture_rate_new(unsigned rate, unsigned burst);
void xb_posture_rate_free(struct xb_posture_rate *r);
/* True, and a token spent, when device may make a request at now. False
 * when its bucket is empty (or out of memory: refuse rather than grow). */
bool xb_posture_rate_take(struct xb_posture_rate *r, const char *device, uint64_t now);
/* Devices with an entry now (for tests). */
size_t xb_posture_rate_count(const struct xb_posture_rate *r);

#endif
