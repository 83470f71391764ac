/* Tunnel health in xborderd: one prober (probe/probe.h) for every tunnel,
 * steering of every path onto its best usable tunnel (gateway/health/steer.h),
 * events for state changes, anomalies and availability below the SLO
 * (gateway/health/alert.h). The Prometheus metrics (gateway/metrics.h) read its
 * figures through the JSON below.
 *
 * Like the DNS service, it is event-loop agnostic: xb_health_fd() is one
 * epoll fd (the prober's, a one-second timer, the alerts' sockets and the
 * metrics server) that the daemon nests in its loop; when it is readable,
 * call xb_health_process(). Route swaps happen inside process(), in the
 * owner's thread, through its ops.path_live (the daemon's rtnetlink socket).
 * Health knows nothing of the daemon: what it needs comes in as ops, and
 * the policy and plan as xb_health_set() gives them.
 *
 *   h = xb_health_new(&ops);
 *   xb_health_set(h, policy, plan);      start and every reload, after the
 *                                        tunnels and before the routes
 *   xb_health_active(h, path)            the tunnel the path's route uses
 *   xb_health_free(h);
 */
#ifndef XB_HEALTH_H
#define XB_HEALTH_H

#include "gateway/health/passive.h"
#include "gateway/health/steer.h"
#include "policy/compile.h"
#include "tunnel/wgconf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct xb_health;

/* What health asks of its owner, always from inside xb_health_process()
 * or xb_health_set(). ti is an index into the policy last given to
 * xb_health_set(). */
struct xb_health_ops {
	void *ctx;
	/* Point path pa's live default route at tunnel ti (XB_STEER_NONE:
	 * none). 0, or -errno. */
	int (*path_live)(void *ctx, const struct xb_path *pa, size_t ti);
	/* Tunnel ti's data-plane counters now (c->valid false: none). */
	void (*counters)(void *ctx, size_t ti, struct xb_passive_counters *c);
	/* The device interface's peers now, into c (wg_conf_free'd by
	 * health). 0, or -1 when it cannot be read. */
	int (*devices)(void *ctx, struct wg_conf *c);
	/* Tunnel ti's probes say it went down (up false) or came up. May be
	 * NULL. */
	void (*tunnel_state)(void *ctx, size_t ti, bool up);
};

/* ops is copied. */
struct xb_health *xb_health_new(const struct xb_health_ops *ops);
void xb_health_free(struct xb_health *h);

/* Probe the tunnels of p and steer the paths of plan. Picks each path's
 * tunnel from the health known now (tunnels that stay keep theirs) without
 * touching routes: xb_apply_routes() installs them. Health reads p and
 * plan's arrays (a shallow copy of *plan is kept) until the next set or
 * free: the caller keeps them alive that long. 0, or -1 logged. */
int xb_health_set(struct xb_health *h, const struct xb_policy *p, const struct xb_plan *plan);

int xb_health_fd(const struct xb_health *h);
void xb_health_process(struct xb_health *h);

/* The tunnel path pa uses now (index into the policy's tunnels), or
 * XB_STEER_NONE. h NULL: the first listed, as before any probe. */
size_t xb_health_active(const struct xb_health *h, const struct xb_path *pa);

/* The tunnels of pa (a path of the plan, or one made up with current
 * unknown) in the order failover would use them now (xb_steer_order),
 * into out (room for pa->n_tunnels); how many. h NULL: as listed. */
size_t xb_health_order(const struct xb_health *h, const struct xb_path *pa, size_t *out);

/* For xborderctl: the figures of tunnel ti (state, rank, RTT, loss,
 * jitter, score, availability, active_for); a new object or NULL. */
json_t *xb_health_tunnel_json(const struct xb_health *h, size_t ti);
/* For xborderctl rules: the availability of rule ri's path over the last
 * hour (0..1, -1 unknown: one check a second, usable when its route uses a
 * tunnel that is not down), its SLO (per cent, 0 off) and slo_met; NULL for
 * a rule without a path (deny, internet only). */
json_t *xb_health_rule_json(const struct xb_health *h, size_t ri);
/* Probe results of tunnel name with a sequence number >= since: {"next",
 * "interval_ms", "results": [...]}. NULL with *error when no such tunnel. */
json_t *xb_health_results(const struct xb_health *h, const char *name, uint64_t since,
			  const char **error);

/* Route swaps since start, and the last one's time from the state change
 * that caused it to the route replaced (ns). For metrics and tests. */
uint64_t xb_health_swaps(const struct xb_health *h);

/* Devices with a session now, and the connect and disconnect anomalies
 * (gateway/health/fleet.h): {"connected", "connects": {...}, "disconnects": {...}},
 * each {judged, anomaly, z, last_5min, mean_5min, sd_5min, windows, total}.
 * A new object, NULL when h is. */
json_t *xb_health_devices_json(const struct xb_health *h);

/* The last events (gateway/health/alert.h), newest first: a new array (empty
 * when h is NULL). */
json_t *xb_health_events(const struct xb_health *h);

#endif
