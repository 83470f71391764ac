/* Fleet signals: devices connecting and disconnecting, and whether the
 * last five minutes of it are out of the ordinary. Pure: no I/O, time
 * passed in; health.c counts from the device interface's handshakes every
 * second and alerts on the anomaly. Unit-tested in tests/unit/test_fleet.c
 * against a naive reference.
 *
 * A device is connected while its last WireGuard handshake is at most
 * XB_FLEET_CONNECTED_S old (REJECT_AFTER_TIME: after that it has no
 * session). Connects and disconnects are counted per minute; the anomaly
 * is Cloudflare DEX's rule: the count of the last XB_FLEET_RECENT_MIN
 * complete minutes against the same-length windows of the
 * XB_FLEET_BASELINE_MIN minutes before them,
 *
 *   z = (recent - mean) / max(sd, sqrt(mean), 1)       anomaly: |z| > 3.5
 *
 * The floor: counts of devices are Poisson-like (variance ~ mean), and a
 * baseline of identical windows (sd 0) must not turn one extra connect into
 * an infinite z. Not judged until XB_FLEET_MIN_WINDOWS baseline windows
 * (an hour) have been counted since start.
 */
#ifndef XB_FLEET_H
#define XB_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_FLEET_CONNECTED_S 180
#define XB_FLEET_RECENT_MIN 5
#define XB_FLEET_BASELINE_MIN 240
#define XB_FLEET_WINDOWS (XB_FLEET_BASELINE_MIN / XB_FLEET_RECENT_MIN)
#define XB_FLEET_MIN_WINDOWS 12
#define XB_FLEET_Z 3.5
#define XB_FLEET_MINUTES (XB_FLEET_BASELINE_MIN + XB_FLEET_RECENT_MIN + 1)
#define XB_FLEET_KEY_LEN 32

enum xb_fleet_kind { XB_FLEET_CONNECTS, XB_FLEET_DISCONNECTS };

struct xb_fleet_minute {
	int64_t idx;			/* minute number (monotonic); -1 unused */
	uint32_t n[2];			/* by enum xb_fleet_kind */
};

struct xb_fleet {
	struct xb_fleet_minute m[XB_FLEET_MINUTES];
	int64_t first;			/* the first minute counted; -1 before */
	uint64_t total[2];		/* since start */
};

struct xb_fleet_anomaly {
	bool judged;			/* enough baseline */
	bool anomaly;			/* |z| > XB_FLEET_Z */
	double z, recent, mean, sd;
	unsigned windows;		/* baseline windows used */
};

/* z of x against the values base[0..n): (x - mean) / max(sd, sqrt(mean), 1),
 * sd the population standard deviation; 0 when n is 0. */
double xb_fleet_z(const double *base, size_t n, double x, double *mean, double *sd);

void xb_fleet_init(struct xb_fleet *f);
/* Count events of kind at now (monotonic ns). */
void xb_fleet_add(struct xb_fleet *f, uint64_t now, enum xb_fleet_kind kind, unsigned count);
/* The anomaly of kind as of now. */
void xb_fleet_judge(const struct xb_fleet *f, uint64_t now, enum xb_fleet_kind kind,
		    struct xb_fleet_anomaly *out);
const char *xb_fleet_kind_name(enum xb_fleet_kind k);

/* Connects and disconnects between two sets of device keys, each sorted
 * (memcmp order, no repeats): keys in cur not in prev, and in prev not in cur. */
void xb_fleet_diff(const uint8_t (*prev)[XB_FLEET_KEY_LEN], size_t np,
		   const uint8_t (*cur)[XB_FLEET_KEY_LEN], size_t nc, unsigned *connects,
		   unsigned *disconnects);

#endif
