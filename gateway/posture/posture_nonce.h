/* Report nonces: random, single use, bound to the device they were issued
 * to, valid for a fixed time (docs/posture.md, "Reporting endpoint").
 *
 * Bounds: a device holds at most per_device live nonces (unused and
 * unexpired; a new one evicts its oldest), and the table at most total
 * (issuing fails when that many are live). A nonce that is used or evicted
 * gives its slot back at once, so one device holds at most per_device slots
 * however fast it asks, and the table fills only when total / per_device
 * devices each hold their budget. Memory is bounded by total. Times are
 * monotonic nanoseconds passed in by the caller.
 */
#ifndef XB_POSTURE_NONCE_H
#define XB_POSTURE_NONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_POSTURE_NONCE_BYTES 16
#define XB_POSTURE_NONCE_HEX (2 * XB_POSTURE_NONCE_BYTES)

struct xb_posture_nonce;

struct xb_posture_nonce *xb_posture_nonce_new(uint64_t ttl_ns, unsigned per_device, size_t total);
void xb_posture_nonce_free(struct xb_posture_nonce *t);
/* A new nonce for device into hex (XB_POSTURE_NONCE_HEX + 1 bytes, NUL-terminated),
 * evicting the device's oldest when it holds per_device. 0, or -1 when the
 * table is full (or out of memory). */
int xb_posture_nonce_issue(struct xb_posture_nonce *t, const char *device, uint64_t now, char *hex);
/* True, and the nonce used up, when hex is a nonce issued to device, not
 * expired at now and not used. A nonce of another device is left alone. */
bool xb_posture_nonce_take(struct xb_posture_nonce *t, const char *device, const char *hex, uint64_t now);
/* Live nonces: issued and not yet used, evicted or expired. */
size_t xb_posture_nonce_count(const struct xb_posture_nonce *t);

#endif
