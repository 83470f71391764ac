/* Report nonces: random, single use, bound to the device they were issued
 * to, valid for a fixed time (docs/posture.md, "Reporting endpoint").
 *
 * Bounds: a device holds at most per_device unused nonces (a new one evicts
 * its oldest), and at most total nonces are issued per ttl (issuing fails
 * when that many are younger than ttl). Memory is therefore bounded by total.
 * Times are monotonic nanoseconds passed in by the caller.
 */
#ifndef XB_POSTURE_NONCE_H
#define XB_POSTURE_NONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_PNONCE_BYTES 16
#define XB_PNONCE_HEX (2 * XB_PNONCE_BYTES)

struct xb_pnonce;

struct xb_pnonce *xb_pnonce_new(uint64_t ttl_ns, unsigned per_device, size_t total);
void xb_pnonce_free(struct xb_pnonce *t);
/* A new nonce for device into hex (XB_PNONCE_HEX + 1 bytes, NUL-terminated).
 * 0, or -1 when the table is full (or out of memory). */
int xb_pnonce_issue(struct xb_pnonce *t, const char *device, uint64_t now, char *hex);
/* True, and the nonce used up, when hex is a nonce issued to device, not
 * expired at now and not used. A nonce of another device is left alone. */
bool xb_pnonce_take(struct xb_pnonce *t, const char *device, const char *hex, uint64_t now);
/* Nonces issued and not yet expired or dropped (used ones included). */
size_t xb_pnonce_count(const struct xb_pnonce *t);

#endif
