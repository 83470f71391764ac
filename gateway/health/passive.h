/* Passive tunnel signals: what the tunnel's own data plane says about it,
 * next to what the probes say. Pure: no I/O, time passed in; health.c
 * samples the counters and asks at a missed probe round (probe/probe.h,
 * cbs.silent). Unit-tested in tests/unit/test_passive.c.
 *
 * A probe round that no target answers is either dead monitors or a dead
 * tunnel. The counters tell them apart:
 *
 *   receiving  the tunnel received inner bytes after the round left: it
 *              carries traffic, the monitors are what is dead (the miss
 *              counts toward the usual `detect' run, nothing more)
 *   silent     nothing received since the round left while the tunnel had
 *              traffic to carry (tx grew since) — or a WireGuard peer has
 *              no session (no handshake for XB_PASSIVE_HANDSHAKE_DEAD_S),
 *              or the GRE keepalives go unanswered: down at this first miss
 *   unknown    no counters (a kernel GRE link), no sample after the round
 *              left, or nothing sent: the probes alone decide
 *
 * Counters are sampled, not watched: xb_passive_sample() records the time
 * of the first sample that showed a new value (rx_at, tx_at), so a change
 * is placed up to one sampling period late. That errs toward `receiving'
 * (rx that came just before the round left may look like after it), never
 * toward `silent'; the caller samples once more right before judging.
 */
#ifndef XB_PASSIVE_H
#define XB_PASSIVE_H

#include <stdbool.h>
#include <stdint.h>

/* WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing;
 * a peer whose last handshake is older has none. */
#define XB_PASSIVE_HANDSHAKE_DEAD_S 180

enum xb_passive_ka { XB_PASSIVE_KA_NONE, XB_PASSIVE_KA_UP, XB_PASSIVE_KA_DOWN };

/* One reading of a tunnel's counters. */
struct xb_passive_counters {
	bool valid;			/* false: no counters for this tunnel */
	uint64_t rx_bytes, tx_bytes;	/* since the interface was created */
	bool wireguard;			/* handshake_sec means something */
	int64_t handshake_sec;		/* last handshake, Unix time; 0: never */
	int64_t wall_sec;		/* Unix time of the reading */
	enum xb_passive_ka ka;		/* GRE keepalives */
};

struct xb_passive {
	bool have;			/* at least one valid sample */
	uint64_t rx, tx;		/* as last sampled */
	uint64_t rx_at, tx_at;		/* first sample showing the current value (mono ns) */
	uint64_t sampled_at;		/* the last valid sample */
	bool no_session, ka_down;	/* as of the last sample */
};

enum xb_passive_verdict { XB_PASSIVE_UNKNOWN, XB_PASSIVE_RECEIVING, XB_PASSIVE_SILENT };

void xb_passive_init(struct xb_passive *p);
/* Record a reading taken at now (monotonic ns). A reading whose counters
 * went backwards (the interface was re-created) starts the history again. */
void xb_passive_sample(struct xb_passive *p, const struct xb_passive_counters *c, uint64_t now);
/* What the data plane says about the time since `since' (monotonic ns). */
enum xb_passive_verdict xb_passive_judge(const struct xb_passive *p, uint64_t since);
const char *xb_passive_verdict_name(enum xb_passive_verdict v);

#endif
