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
 *              traffic to carry (tx grew by XB_PASSIVE_TX_MIN or more
 *              since) — or a WireGuard peer has
 *              no session (no handshake for XB_PASSIVE_HANDSHAKE_DEAD_S),
 *              or the GRE keepalives go unanswered: down at this first miss
 *   unknown    no counters (a kernel GRE link), no sample after the round
 *              left, or less than XB_PASSIVE_TX_MIN sent: the probes alone
 *              decide
 *
 * The probes are tunnel traffic too: on an idle tunnel the round itself is
 * all the tx there is, so "tx grew" alone would make one lost reply on a
 * lossy path a silent tunnel, down at once, where random loss used to have
 * to miss `detect' rounds in a row. Hence the threshold: the growth is
 * measured from the last reading at or before the round left (kept in a
 * ring of the last XB_PASSIVE_RING readings; when all are newer, from the
 * oldest — that underestimates the growth, which errs toward unknown).
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

/* Octets of tunnel tx since a round left that make a silent tunnel, well
 * above what a round of probes costs. Through WireGuard (counted as sent on
 * the wire: the 16-octet data header, the inner packet padded to 16, the
 * 16-octet tag) an ICMP probe (37-octet echo) is 96 octets over IPv4, 112
 * over IPv6; a DNS probe ~130; an HTTP probe's exchange (SYN, ACK, request,
 * ACKs, FINs) ~0.7-1 KB. A handshake initiation adds 148, a keepalive 32.
 * A round of four HTTP monitors stays under ~3-4 KB; 4096 octets in the
 * hold after a round (200 ms) is ~160 kbit/s of traffic the tunnel had to
 * carry. GRE costs less per packet (4-16 octets of header). */
#define XB_PASSIVE_TX_MIN 4096

/* Readings kept to measure tx growth since a round left: 32 at the 100 ms
 * sampling period is ~3.2 s, more than a hold after any probe interval's
 * round needs to look back. */
#define XB_PASSIVE_RING 32

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
	struct {
		uint64_t at, tx;
	} ring[XB_PASSIVE_RING];	/* the last readings of this history */
	unsigned ring_head, ring_n;	/* next slot; readings kept */
};

enum xb_passive_verdict { XB_PASSIVE_UNKNOWN, XB_PASSIVE_RECEIVING, XB_PASSIVE_SILENT };

void xb_passive_init(struct xb_passive *p);
/* Record a reading taken at now (monotonic ns). A reading whose counters
 * went backwards (the interface was re-created) starts the history again. */
void xb_passive_sample(struct xb_passive *p, const struct xb_passive_counters *c, uint64_t now);
/* What the data plane says about the time since `since' (monotonic ns):
 * silent from tx only when it grew by XB_PASSIVE_TX_MIN or more since. */
enum xb_passive_verdict xb_passive_judge(const struct xb_passive *p, uint64_t since);
const char *xb_passive_verdict_name(enum xb_passive_verdict v);

#endif
