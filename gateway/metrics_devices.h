/* Per-device series on /metrics: bytes per device per tunnel, handshake
 * age and posture state, with a bounded number of series.
 *
 * Bytes: the table counts them (policy/compile.c, sets acct_{tx,rx}{4,6}:
 * one counter per device address and tunnel interface, in forward): inner
 * IP bytes as they cross the tunnel's interface, so a device's traffic is
 * split by the tunnel its path used at the time. The device's WireGuard
 * peer counters are per device but not per tunnel; conntrack accounting
 * comes only when a connection closes. The sets are rebuilt with the table
 * at every reload, so the counters start again there (a counter reset to
 * Prometheus, which rate() handles).
 *
 * Cardinality: the first max devices in policy order get their own
 * series; the rest add up in device="_other" (bytes summed, the oldest
 * handshake age, posture states counted): no device name starts with
 * '_' (policy/cfg.c), so it names no device. Series: with D devices, T
 * tunnels, D' = min(D, max) + (D > max), bytes 2*D'*T, handshake age D',
 * posture 3*D' when posture profiles exist.
 */
#ifndef XB_METRICS_DEVICES_H
#define XB_METRICS_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct xb_policy;

#define XB_MDEV_OTHER "_other"

enum xb_mdev_posture { XB_MDEV_COMPLIANT, XB_MDEV_NONCOMPLIANT, XB_MDEV_NO_REPORT,
		       XB_MDEV_POSTURE_N };

struct xb_mdev {
	const char *name;
	int64_t handshake;		/* unix seconds of the last one, 0: never */
	enum xb_mdev_posture posture;
};

struct xb_mdev_page {
	const struct xb_policy *p;	/* tunnel names */
	const struct xb_mdev *dev;	/* n_dev, in policy order */
	size_t n_dev;
	/* bytes[(device * n_tunnels + tunnel) * 2 + rx]: 0 tx, 1 rx */
	const uint64_t *bytes;
	bool posture;			/* posture profiles exist */
	int64_t now;			/* unix seconds */
	unsigned max;			/* gateway.metrics_devices_max */
};

/* Add the elements of one acct set, as `nft -j list set' gives it, to
 * bytes (laid out as above) for policy p; elements whose address is no
 * device's or whose interface is no tunnel's are skipped. 0, or -1 when
 * json is not nft's set listing. */
int xb_mdev_acct_add(const char *json, bool rx, const struct xb_policy *p, uint64_t *bytes);

/* The families: xborder_device_tunnel_bytes_total,
 * xborder_device_handshake_age_seconds, xborder_device_posture. */
void xb_mdev_render(FILE *f, const struct xb_mdev_page *pg);

/* s as a Prometheus label value: \ " and newline escaped. */
void xb_mdev_label(FILE *f, const char *s);

#endif
