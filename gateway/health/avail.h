/* Availability over the last hour from one-second checks: per minute, the
 * checks that found the thing usable and all checks. Pure; health.c keeps
 * one per path (a rule's availability is its path's). Unit-tested in
 * tests/unit/test_fleet.c. */
#ifndef XB_AVAIL_H
#define XB_AVAIL_H

#include <stdbool.h>
#include <stdint.h>

#define XB_AVAIL_MIN 60

struct xb_avail {
	int64_t idx[XB_AVAIL_MIN];	/* minute number (monotonic); -1 unused */
	uint32_t ok[XB_AVAIL_MIN], n[XB_AVAIL_MIN];
};

void xb_avail_init(struct xb_avail *a);
/* One check at now (monotonic ns). */
void xb_avail_add(struct xb_avail *a, uint64_t now, bool ok);
/* ok / all over the XB_AVAIL_MIN minutes up to now, 0..1; -1 with none. */
double xb_avail_get(const struct xb_avail *a, uint64_t now);

#endif
