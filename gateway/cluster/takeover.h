/* Takeover: a gateway that becomes active starts the handshakes with the
 * devices itself instead of waiting for their own timers.
 *
 * A device talking to the gateway that died keeps sending data to the
 * shared address; the new active gateway has no session with it and drops
 * it. The device initiates again only when its REKEY_TIMEOUT/KEEPALIVE
 * timers fire (5–15 s), so the gateway initiates instead: for each device
 * peer without a live session here it sets the endpoint last seen (from the
 * shared state) and turns persistent keepalive on. Both backends send a
 * keepalive at once when it goes from off to on (the kernel in
 * set_peer(), tunnel/device.c in apply_peer()); with no session, that
 * keepalive is staged and a handshake initiation goes out. The configured
 * keepalive is put back by a second set right after: the initiation is
 * already on its way and retransmits on its own timer.
 *
 * Pacing: at most `rate' initiations a second, in bursts of at most
 * XB_TAKEOVER_BURST_MAX, most recently seen devices first. The responses
 * come back at the same pace; the userspace driver counts 8 handshake
 * messages in one receive batch as "under load" (tunnel/receive.c) and
 * then answers without a cookie only with a cookie reply — a device's
 * response dropped that way costs it REKEY_TIMEOUT (5 s). The kernel's
 * threshold is MAX_QUEUED_INCOMING_HANDSHAKES/8 = 512 queued. docs/ha.md has
 * the figures behind the default rate.
 */
#ifndef XB_TAKEOVER_H
#define XB_TAKEOVER_H

#include "common/prefix.h"
#include "tunnel/wgconf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_TAKEOVER_RATE_DEFAULT 500	/* initiations per second */
#define XB_TAKEOVER_BURST_MAX 4		/* initiations at one instant, < 8 (see above) */
/* A session younger than this is live: no initiation (REJECT_AFTER_TIME). */
#define XB_TAKEOVER_LIVE_SEC 180

/* A token bucket on a caller's monotonic clock (ns): rate tokens a second,
 * at most burst banked. Starts with one token: the first goes at once. */
struct xb_pacer {
	uint64_t cost_ns;	/* one token */
	uint64_t cap_ns;	/* burst tokens */
	uint64_t credit_ns;
	uint64_t last_ns;
};
/* rate >= 1; burst 0 picks rate/100 (10 ms worth) within [1, XB_TAKEOVER_BURST_MAX]. */
void xb_pacer_init(struct xb_pacer *p, unsigned rate, unsigned burst, uint64_t now);
/* How many of want may go at now; they are taken. */
size_t xb_pacer_take(struct xb_pacer *p, uint64_t now, size_t want);
/* Nanoseconds from now until the next token (0: one is there). */
uint64_t xb_pacer_wait(const struct xb_pacer *p, uint64_t now);

/* The WireGuard interface, as the takeover sees it (xb_wgif_get/set). Both
 * return 0 or a positive errno. */
struct xb_takeover_ops {
	int (*get)(void *ctx, struct wg_conf *out);
	int (*set)(void *ctx, const struct wg_conf *in);
};

struct xb_takeover_cand {
	uint8_t key[WG_KEY_LEN];
	union xb_sockaddr ep;
	int64_t seen_ms;	/* wall ms the endpoint was last seen; newest first */
	uint16_t keepalive;	/* the peer's configured one, put back after */
};

struct xb_takeover {
	struct xb_takeover_ops ops;
	void *ctx;
	struct xb_takeover_cand *q;
	size_t n, cap, next;
	struct xb_pacer pacer;
	bool active;
	bool collecting;		/* offers since the last begin */
	uint64_t started_ns, finished_ns;
	/* last run: candidates offered, left out (live session here / no such
	 * peer / no endpoint), initiated, failed sets */
	size_t offered, live, unknown, sent, failed;
};

void xb_takeover_init(struct xb_takeover *t, const struct xb_takeover_ops *ops, void *ctx);
/* Offer one device for the next xb_takeover_begin(); a later offer of the
 * same key replaces an older one only when it was seen later. 0 or -ENOMEM. */
int xb_takeover_add(struct xb_takeover *t, const uint8_t key[static WG_KEY_LEN],
		    const union xb_sockaddr *ep, int64_t seen_ms);
/* Keep the offered devices that are peers of the interface and have no live
 * session (handshake within XB_TAKEOVER_LIVE_SEC of wall_sec), newest first,
 * and start pacing at rate a second. Replaces a run in progress. Returns
 * how many are queued, or a negative errno (the interface could not be read). */
long xb_takeover_begin(struct xb_takeover *t, unsigned rate, uint64_t now, int64_t wall_sec);
/* Initiate what the pacer allows at now. Returns the nanoseconds until it
 * wants to run again, 0 when the queue is done (then active is false). */
uint64_t xb_takeover_run(struct xb_takeover *t, uint64_t now);
/* Drop what is still queued (the address went away). */
void xb_takeover_stop(struct xb_takeover *t);
void xb_takeover_free(struct xb_takeover *t);

#endif
