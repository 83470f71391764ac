/* Steering: which tunnel a path uses, from the tunnels' health. Pure: no
 * I/O, unit-tested (tests/unit/test_steer.c); gateway/health/health.c applies
 * the answer as one route replacement.
 *
 * Ranks, best first: up, degraded, unproven (never judged yet: probes not
 * configured, or the tunnel has not finished its first up_after probes),
 * down. A path uses a tunnel of the best rank among its tunnels:
 *
 *   preference list   the first listed of that rank
 *   best              the lowest score of that rank; the current tunnel is
 *                     kept unless the other's score is lower by more than
 *                     XB_STEER_MARGIN_MS and XB_STEER_MARGIN_FRAC of the
 *                     current one's (scores wobble; a route swap costs
 *                     every masqueraded flow its NAT mapping)
 *
 * When every tunnel of a path is down, none: the path's table keeps only
 * its unreachable default (or nothing, with the internet fallback). A
 * degraded tunnel is penalised (ranked below up), never removed.
 */
#ifndef XB_STEER_H
#define XB_STEER_H

#include "policy/compile.h"

#include <stddef.h>
#include <stdint.h>

#define XB_STEER_NONE SIZE_MAX
#define XB_STEER_MARGIN_MS 5.0
#define XB_STEER_MARGIN_FRAC 0.10

enum xb_rank { XB_RANK_DOWN, XB_RANK_UNPROVEN, XB_RANK_DEGRADED, XB_RANK_UP };

struct xb_steer_tunnel {
	enum xb_rank rank;
	double score;		/* lower is better (probe_stats.h); used for best */
};

/* The tunnel (index into the policy's tunnels, as pa->tunnels holds) that
 * path pa should use, given every tunnel's health in t and the tunnel it
 * uses now (XB_STEER_NONE: none). XB_STEER_NONE when all are down or the
 * path has no tunnel. */
size_t xb_steer_pick(const struct xb_path *pa, const struct xb_steer_tunnel *t, size_t current);

/* The tunnels of pa in the order failover would use them: the pick
 * (xb_steer_pick with current) first, then the rest by rank, best first,
 * in list order within a rank (best: by score). Down tunnels are left out
 * as the path leaves them, unless every tunnel is down: then all of them,
 * in list order (something may still get through). The DNS service
 * resolves a path's names through them in this order. Writes at most
 * pa->n_tunnels indices to out and returns how many. */
size_t xb_steer_order(const struct xb_path *pa, const struct xb_steer_tunnel *t, size_t current,
		      size_t *out);

const char *xb_rank_name(enum xb_rank r);

#endif
