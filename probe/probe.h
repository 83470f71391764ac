/* The tunnel prober: probes every tunnel's targets through the tunnel's own
 * interface and keeps the statistics and health state of tunnel and
 * targets (probe/probe_stats.h; docs/probing.md).
 *
 * Every socket is bound to the tunnel's interface (SO_BINDTODEVICE), so a
 * probe never follows the main routing table: with the interface gone or
 * down, probes fail instead of leaking out of another link.
 *
 * A round goes out every interval — every half interval while the tunnel
 * (not down) is missing probes: one probe to each target. The tunnel
 * answers a round when any target answers (one dead monitor does not
 * condemn a tunnel); the tunnel's stats see the first answer. Targets:
 *
 *   icmp  echo request, IPv4 or IPv6, on one raw socket per tunnel and
 *         family; ours are told apart by identifier, a per-run random nonce
 *         and the round in the payload; anything else is ignored
 *   tcp   connect(); RTT = connect time; a refusal (RST) is an answer too:
 *         the path carried it
 *   http  connect, GET path; RTT = to the status line ("HTTP/1.x NNN")
 *   dns   a query for name (type A) over UDP; any reply with our id and
 *         question is an answer, whatever its rcode
 *
 * TCP and HTTP keep at most one attempt in flight per target: a round that
 * finds one still pending skips that target; an attempt older than the loss
 * interval is abandoned (and counted lost). Sockets: 2 ICMP + one per TCP,
 * HTTP or DNS target per tunnel, whatever the interval.
 *
 * Event-loop agnostic, like gateway/control.c: xb_probe_fd() is an epoll fd
 * (all sockets and a timerfd) that the daemon nests in its own loop; when it
 * is readable, call xb_probe_process(). Callbacks run inside process().
 */
#ifndef XB_PROBE_H
#define XB_PROBE_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "probe/probe_stats.h"

#define XB_PROBE_MAX_TARGETS 8
#define XB_PROBE_MIN_INTERVAL_NS (50 * 1000000ULL)	/* 50 ms */
#define XB_PROBE_DEFAULT_INTERVAL_NS (1000 * 1000000ULL)
#define XB_PROBE_SILENT_HOLD_NS (200 * 1000000ULL)

enum xb_probe_kind { XB_PROBE_ICMP, XB_PROBE_TCP, XB_PROBE_HTTP, XB_PROBE_DNS };

struct xb_probe_target {
	enum xb_probe_kind kind;
	struct sockaddr_storage addr;	/* port ignored for icmp */
	char name[254];			/* dns: query name; http: Host header */
	char path[128];			/* http: request path */
};

struct xb_probe_tunnel_cfg {
	char name[64];
	size_t id;			/* the caller's handle for the tunnel (its index,
					 * say): what results and callbacks report */
	char ifname[IFNAMSIZ];
	uint64_t interval_ns;		/* between rounds; >= XB_PROBE_MIN_INTERVAL_NS */
	uint32_t mark;			/* SO_MARK for the probes; 0: none */
	uint64_t silent_hold_ns;	/* cbs.silent is asked this long after a missed
					 * round left (at its miss, if later); 200 ms */
	struct xb_pstats_cfg stats;	/* for the tunnel and each target */
	unsigned n_targets;
	struct xb_probe_target targets[XB_PROBE_MAX_TARGETS];
};

/* One probe's outcome, for streaming (`xborderctl probe TUNNEL'). */
struct xb_probe_result {
	size_t tunnel;			/* its cfg's id */
	unsigned target;		/* index in the tunnel's targets */
	uint64_t round;
	bool ok;			/* answered within the loss interval */
	bool late;			/* answered after it (still lost) */
	uint64_t rtt_ns;		/* when ok or late */
	const char *error;		/* when !ok: why (static string) */
};

/* Callbacks name the tunnel by its cfg's id.
 * silent: asked once per unanswered round (no target replied within the
 * timeout), silent_hold_ns after it left, while the tunnel is not down and
 * the round is still unanswered: true when the tunnel's own
 * data plane has received nothing since `since' (monotonic ns, when that
 * round left) though it was given traffic to carry — then the tunnel goes
 * down at this first miss instead of after `detect' of them. The hold keeps
 * one late answer (an RTT spike past the timeout) from being taken for
 * silence. false when it
 * received something (the monitors are dead, not the tunnel) or cannot tell. */
struct xb_probe_cbs {
	void (*result)(void *ctx, const struct xb_probe_result *r);
	void (*state)(void *ctx, size_t tunnel, enum xb_pstate from, enum xb_pstate to);
	void *ctx;
	bool (*silent)(void *ctx, size_t tunnel, uint64_t since);
};

struct xb_probe;

/* cbs may be NULL or have NULL members. NULL with errno on failure. */
struct xb_probe *xb_probe_new(const struct xb_probe_cbs *cbs);
void xb_probe_free(struct xb_probe *p);

void xb_probe_tunnel_defaults(struct xb_probe_tunnel_cfg *c);
/* NULL if usable, else why not (static string). */
const char *xb_probe_tunnel_check(const struct xb_probe_tunnel_cfg *c);

/* Make the set of probed tunnels exactly cfgs[0..n). A tunnel whose name and
 * configuration stay is left running untouched (sockets, probes in flight,
 * statistics); one whose configuration changed keeps its tunnel statistics
 * and those of the targets that stay, if its stats settings stayed. Returns
 * 0, or -1 with *err set (nothing changed) when a cfg is invalid or names
 * repeat. Sockets that cannot be opened now (interface missing) are retried
 * every round; their probes count as lost. */
int xb_probe_set(struct xb_probe *p, const struct xb_probe_tunnel_cfg *cfgs, size_t n,
		 const char **err);

int xb_probe_fd(const struct xb_probe *p);
/* Non-blocking: read answers, send due rounds, apply timeouts, re-arm. */
void xb_probe_process(struct xb_probe *p, uint64_t now);

/* Statistics as of now: target -1 for the tunnel. -1 if no such tunnel/target. */
int xb_probe_stats(const struct xb_probe *p, const char *tunnel, int target, uint64_t now,
		   struct xb_pstats_summary *s);
size_t xb_probe_count(const struct xb_probe *p);
/* Probe packets/segments sent since creation (for cost figures). */
uint64_t xb_probe_packets(const struct xb_probe *p);

/* "icmp:ADDR", "tcp:ADDR:PORT", "http:ADDR:PORT/PATH", "dns:ADDR:PORT/NAME"
 * (IPv6 in brackets when a port follows: "tcp:[2001:db8::1]:443"; ports
 * default to 80 and 53). false with *err set on bad input. */
bool xb_probe_target_parse(const char *spec, struct xb_probe_target *t, const char **err);
/* The spec form of t into buf; returns buf. */
char *xb_probe_target_str(const struct xb_probe_target *t, char *buf, size_t len);

#endif
