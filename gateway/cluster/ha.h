/* Active/standby: when the devices' shared address (the vip, moved between
 * gateways by keepalived) appears on one of this gateway's interfaces, this
 * gateway has become the active one and starts the takeover
 * (takeover.h); when it goes, the takeover stops. docs/ha.md.
 *
 * The address is watched with rtnetlink address notifications (groups
 * RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR on a socket of the one netlink
 * client, gateway/kernel/netlink.h), after a dump for the state at open. An
 * operator can start a takeover by hand (`xborderctl takeover').
 *
 * Everything runs in the daemon's thread: one fd for its epoll set (an
 * epoll of the notification socket and the pacing timer). The devices and
 * their last endpoints come from the source callback, called at each start
 * (the cluster's shared state: xb_cluster_foreach_endpoint()).
 */
#ifndef XB_HA_H
#define XB_HA_H

#include "gateway/cluster/takeover.h"

#include <jansson.h>
#include <stdbool.h>

struct xb_ha;

/* Offers every known device to t (xb_takeover_add); 0 or a negative errno;
 * -EAGAIN: the devices are not known yet (the shared state has not been
 * read): the takeover waits for xb_ha_source_ready(). */
typedef int (*xb_ha_source_fn)(void *ctx, struct xb_takeover *t);

struct xb_ha_opts {
	const char *vip;	/* "203.0.113.10"; NULL or "": no watch, manual takeover only */
	unsigned rate;		/* initiations a second; 0: XB_TAKEOVER_RATE_DEFAULT */
	const struct xb_takeover_ops *ops;	/* the device interface, */
	void *wg;				/* its ops' context: both outlive the xb_ha */
	const char *ifname;			/* for the log */
	xb_ha_source_fn source;
	void *ctx;
};

/* NULL with the reason in err (a vip that is not an address, a socket). */
struct xb_ha *xb_ha_open(const struct xb_ha_opts *o, char *err, size_t errlen);
void xb_ha_close(struct xb_ha *h);
int xb_ha_fd(const struct xb_ha *h);
/* Notifications and the pacing timer; never blocks. */
void xb_ha_process(struct xb_ha *h);
/* Start a takeover now (why: for the log). How many devices are queued, or a
 * negative errno. */
long xb_ha_takeover(struct xb_ha *h, const char *why);
/* The source can answer now: a takeover it deferred starts, if the vip is
 * still here (a gateway that starts holding the vip). */
void xb_ha_source_ready(struct xb_ha *h);
/* What it was opened with: the vip as text ("" for none), the rate. */
const char *xb_ha_vip(const struct xb_ha *h);
unsigned xb_ha_rate(const struct xb_ha *h);
/* Whether the vip is on an interface here. */
bool xb_ha_holds_vip(const struct xb_ha *h);
/* {"vip", "holds_vip", "rate", "active", "offered", "live", "unknown", "queued",
 *  "sent", "failed", "started_ms_ago", "took_ms"} — docs/control.md. */
json_t *xb_ha_json(const struct xb_ha *h);

#endif
