/* Probe statistics and tunnel health: pure computation, no I/O, time passed
 * in (monotonic nanoseconds). One struct xb_pstats follows one stream of
 * probes (one target, or a whole tunnel); docs/probing.md explains the
 * definitions and why the defaults are what they are.
 *
 * A probe is identified by the id xb_pstats_sent() returns. Its fate:
 *
 *   reply within timeout        good: counts toward the slow-up run
 *   no reply by timeout         missed: counts toward the fast-down run
 *   reply within loss_ns        received (a late-but-in-time reply is not a
 *                               loss; it also ends a miss run)
 *   no reply by loss_ns         lost, for good: a reply after that is "late"
 *                               and does not un-lose it
 *
 * timeout = clamp(timeout_rtt_mult x RTT p95, timeout_min_ns, loss_ns), or
 * loss_ns before any reply. It exists so that a blackhole is seen after a
 * few probe intervals instead of after the (long) loss interval.
 *
 * Not thread-safe; the caller serialises calls per struct.
 */
#ifndef XB_PROBE_STATS_H
#define XB_PROBE_STATS_H

#include <stdbool.h>
#include <stdint.h>

enum xb_pstate { XB_PST_DOWN, XB_PST_DEGRADED, XB_PST_UP };

struct xb_pstats_cfg {
	unsigned window;		/* probes kept for loss and RTT; default 100 */
	uint64_t loss_ns;		/* no reply this long after sending: lost; 1 s */
	uint64_t timeout_min_ns;	/* floor of the per-probe timeout; 50 ms */
	unsigned timeout_rtt_mult;	/* timeout = this x RTT p95; 3 */
	unsigned detect_mult;		/* missed probes in a row for fast down; 3 */
	double false_down;		/* wanted chance that background loss alone
					 * makes a miss run long enough: 1e-7 a probe */
	unsigned up_after;		/* good probes in a row before up; 10 */
	uint64_t hold_down_ns;		/* at least this long down before up; 5 s */
	unsigned min_decided;		/* decided probes before loss rules apply; 20 */
	double down_loss;		/* loss % that means down; 50 */
	double degraded_loss_on;	/* loss % to enter degraded; 20 */
	double degraded_loss_off;	/* loss % below which degraded is left; 10 */
	double degraded_rtt_mult_on;	/* p95 >= mult x min + add: degraded; 2 */
	uint64_t degraded_rtt_add_on_ns;	/* 50 ms */
	double degraded_rtt_mult_off;	/* p95 < mult x min + add to leave; 1.5 */
	uint64_t degraded_rtt_add_off_ns;	/* 25 ms */
};

/* Anomaly detector: per-minute RTT means and loss over XB_PSTATS_HISTORY_MIN
 * minutes; the mean of the last XB_PSTATS_RECENT_MIN complete minutes
 * against the mean and standard deviation of the minutes before them. */
#define XB_PSTATS_HISTORY_MIN 240
#define XB_PSTATS_RECENT_MIN 5
#define XB_PSTATS_AVAIL_MIN 60		/* availability horizon, minutes */
#define XB_PSTATS_ANOMALY_Z 3.5
#define XB_PSTATS_BASELINE_MIN 30	/* baseline minutes needed before judging */
#define XB_PSTATS_RTT_SD_FLOOR_NS 1000000.0	/* 1 ms, and at least 5 % of the mean */
#define XB_PSTATS_RTT_SD_FLOOR_FRAC 0.05
#define XB_PSTATS_LOSS_SD_FLOOR 1.0		/* percentage points */

/* Score terms (milliseconds): see xb_pstats_get(). */
#define XB_PSTATS_JITTER_WEIGHT 2.0
#define XB_PSTATS_LOSS_PENALTY_MS 10.0	/* per percent of loss */
#define XB_PSTATS_DEGRADED_PENALTY_MS 100.0

struct xb_pstats_summary {
	enum xb_pstate state;
	uint64_t state_since_ns;
	uint64_t transitions;		/* state changes since creation */
	uint64_t downs;			/* of them, into down */
	uint64_t sent;			/* probes ever sent */
	unsigned in_window;		/* probes in the window now */
	unsigned decided;		/* of them, replied in time or lost */
	unsigned lost;
	unsigned late;			/* replies after loss_ns (still lost) */
	double loss_pct;		/* lost / decided x 100; 0 when none decided */
	unsigned replies;		/* in-time replies in the window */
	uint64_t rtt_last_ns, rtt_min_ns, rtt_mean_ns, rtt_p50_ns, rtt_p95_ns;
	uint64_t rtt_sd_ns;
	double jitter_ns;		/* RFC 3550 estimator over all replies */
	double availability;		/* replied / decided over the last hour, 0..1;
					 * -1 when nothing decided */
	uint64_t timeout_ns;		/* per-probe timeout now */
	unsigned detect;		/* miss run needed for fast down now */
	double bg_loss;			/* background miss rate estimate, 0..1 */
	bool rtt_anomaly, loss_anomaly;
	double rtt_z, loss_z;		/* 0 until the baseline is long enough */
	double score;			/* lower is better; INFINITY when down */
};

void xb_pstats_defaults(struct xb_pstats_cfg *cfg);
/* NULL if cfg is usable, else why not (a static string). */
const char *xb_pstats_check(const struct xb_pstats_cfg *cfg);

/* NULL on a bad cfg (errno EINVAL) or no memory. Starts down: a tunnel has
 * to prove itself with up_after good probes before traffic goes there. */
struct xb_pstats *xb_pstats_new(const struct xb_pstats_cfg *cfg);
void xb_pstats_free(struct xb_pstats *ps);
const struct xb_pstats_cfg *xb_pstats_cfg(const struct xb_pstats *ps);

/* A probe left at now; returns its id (0, 1, 2, ...). */
uint64_t xb_pstats_sent(struct xb_pstats *ps, uint64_t now);
/* Probes ever sent: the next id. */
uint64_t xb_pstats_count(const struct xb_pstats *ps);
/* The reply to probe id arrived at now. 0: counted; 1: late (after loss_ns);
 * -1: unknown id (never sent, no longer in the window) or a duplicate. */
int xb_pstats_reply(struct xb_pstats *ps, uint64_t id, uint64_t now);
/* Apply timeouts due by now and re-evaluate the state; true if it changed.
 * Call after every sent/reply and when xb_pstats_deadline() passes. */
bool xb_pstats_update(struct xb_pstats *ps, uint64_t now);
/* The earliest time a pending probe times out or is lost (the first
 * nanosecond past its timeout or loss interval); UINT64_MAX if
 * nothing is pending. */
uint64_t xb_pstats_deadline(const struct xb_pstats *ps);
enum xb_pstate xb_pstats_state(const struct xb_pstats *ps);
/* Probes missed in a row now (the run toward fast down; 0 once down). */
unsigned xb_pstats_miss_run(const struct xb_pstats *ps);
/* When the newest probe of the current miss run was sent; 0 when no run. */
uint64_t xb_pstats_miss_sent(const struct xb_pstats *ps);
/* Down now, whatever the probes say: the caller has other evidence (the
 * tunnel's own data plane, gateway/health/passive.h). Counts as a down like any
 * other: the slow-up rule and hold-down apply. true if it changed. */
bool xb_pstats_force_down(struct xb_pstats *ps, uint64_t now);

enum xb_pfate { XB_PFATE_UNKNOWN = -1, XB_PFATE_PENDING, XB_PFATE_REPLIED, XB_PFATE_LOST };
/* What became of probe id (UNKNOWN: never sent or out of the window);
 * *sent_ns and *rtt_ns (REPLIED only) are filled when not NULL. */
enum xb_pfate xb_pstats_fate(const struct xb_pstats *ps, uint64_t id, uint64_t *sent_ns,
			     uint64_t *rtt_ns);
/* Fill *s as of now (does not change the state; call update first). */
void xb_pstats_get(const struct xb_pstats *ps, uint64_t now, struct xb_pstats_summary *s);

const char *xb_pstate_name(enum xb_pstate st);

#endif
