/* Asking upstream resolvers: UDP with TCP after TC, failover over a server
 * set, replies accepted only when they match (RFC 5452). docs/dns.md,
 * "Upstream queries".
 *
 * Event-loop agnostic like control.c: the client owns an epoll fd (the
 * query sockets and a timerfd for timeouts) that the daemon nests in its own
 * loop; when xb_dns_upstream_fd() is readable it calls xb_dns_upstream_process(now). Callbacks
 * run from xb_dns_upstream_process only, never from xb_dns_upstream_query, and may start or
 * cancel queries.
 *
 * A try: a fresh socket (kernel-chosen random source port, connect()ed to
 * the server, optionally bound to an interface and a source address), a
 * fresh random id, one query. A UDP reply counts only when it comes from the
 * server's address and port, carries the id, QR set, opcode QUERY and our
 * question (xb_dns_wire_parse_response); anything else is counted as mismatched and
 * the try keeps waiting. A reply with TC is retried over TCP to the same
 * server (its own timeout), with the same checks.
 *
 * Outcome of a valid reply by rcode: NOERROR and NXDOMAIN are delivered.
 * SERVFAIL, REFUSED, NOTIMP, FORMERR, any other rcode and a malformed reply
 * fail that server for this query: the next server is asked at once and the
 * failed one is not asked again by this query. A try that times out marks
 * its server down for down_ms; the query moves to the next server.
 *
 * Order: servers not marked down, in configuration order (or the order the
 * query gives: xb_dns_upstream_query_order), tried round-robin for `tries' rounds
 * (s0 s1 s0 s1 ...); when every server is down, all of them. A valid reply from a server marks it up. So a query takes at most
 * tries x servers x timeout, plus one timeout per TCP retry.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (common/clock.h), passed by the
 * caller: the timerfd runs on that clock.
 */
#ifndef XB_GATEWAY_DNS_UPSTREAM_H
#define XB_GATEWAY_DNS_UPSTREAM_H

#include "gateway/dns/dns_wire.h"

#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#define XB_DNS_UPSTREAM_SERVERS_MAX	32	/* a server reached through several tunnels counts once per tunnel */
#define XB_DNS_UPSTREAM_TIMEOUT_MS	1000	/* per try */
#define XB_DNS_UPSTREAM_TRIES		2	/* rounds over the servers */
#define XB_DNS_UPSTREAM_DOWN_MS		30000	/* a server that timed out is skipped this long */
#define XB_DNS_UPSTREAM_MAX_OUTSTANDING	1024

union xb_dns_upstream_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct xb_dns_upstream_server {
	union xb_dns_upstream_addr addr;
	char ifname[IFNAMSIZ];	/* "": the set's bind_ifname; else SO_BINDTODEVICE to this */
	uint64_t down_until_ns;	/* health, kept by the client */
};

/* A server set. The caller fills it (xb_dns_upstream_set_init, xb_dns_upstream_set_add, the
 * fields) and keeps it alive and in place while queries use it: the
 * servers' health lives here. */
struct xb_dns_upstream_set {
	char name[32];			/* for log lines */
	struct xb_dns_upstream_server srv[XB_DNS_UPSTREAM_SERVERS_MAX];
	unsigned n;
	char bind_ifname[IFNAMSIZ];	/* "": none; else SO_BINDTODEVICE */
	union xb_dns_upstream_addr source;	/* family AF_UNSPEC: the kernel chooses */
	unsigned timeout_ms, tries, down_ms;
};

/* Defaults: no servers, no interface, timeout 1000 ms, 2 tries, down 30 s. */
void xb_dns_upstream_set_init(struct xb_dns_upstream_set *s, const char *name);
/* Add "192.0.2.1", "192.0.2.1:5353", "2001:db8::1" or "[2001:db8::1]:53".
 * Returns 0, or -1 on bad text (errno EINVAL) or a full set (ENOSPC). */
int xb_dns_upstream_set_add(struct xb_dns_upstream_set *s, const char *text);
/* The source address, as an address without port; -1 on bad text. */
int xb_dns_upstream_set_source(struct xb_dns_upstream_set *s, const char *text);
/* Forget that the servers reached through ifname timed out (its tunnel is
 * up again): the next query asks them in their turn. */
void xb_dns_upstream_set_revive(struct xb_dns_upstream_set *s, const char *ifname);

/* Query flags. RD is always set. */
#define XB_DNS_UPSTREAM_DO	0x1	/* DNSSEC OK in the OPT */
#define XB_DNS_UPSTREAM_CD	0x2	/* checking disabled */
#define XB_DNS_UPSTREAM_NOEDNS	0x4	/* no OPT at all */

enum xb_dns_upstream_status {
	XB_DNS_UPSTREAM_OK,		/* msg/m: NOERROR or NXDOMAIN */
	XB_DNS_UPSTREAM_FAILED,		/* every server asked failed; rcode: the last one's, -1 if none */
	XB_DNS_UPSTREAM_TIMEOUT,		/* no server answered at all */
};

struct xb_dns_upstream_result {
	enum xb_dns_upstream_status status;
	int rcode;
	const uint8_t *msg;		/* XB_DNS_UPSTREAM_OK: the reply, valid during the callback */
	size_t len;			/* up to the last record (xb_dns_wire_msg.len) */
	const struct xb_dns_wire_msg *m;	/* msg parsed against the question */
	int server;			/* index in the set of who answered, or -1 */
	bool tcp;
};

typedef void (*xb_dns_upstream_cb)(void *ctx, const struct xb_dns_upstream_result *r);

struct xb_dns_upstream_conf {
	unsigned max_outstanding;	/* 0: XB_DNS_UPSTREAM_MAX_OUTSTANDING */
	uint16_t edns_size;		/* 0: XB_DNS_WIRE_EDNS_SIZE */
};

struct xb_dns_upstream_stats {
	uint64_t queries, answered, failed, timeouts, cancelled;
	uint64_t errors;		/* xb_dns_upstream_query could send no try */
	uint64_t tries, tcp;		/* UDP tries sent, TCP retries */
	uint64_t mismatched;		/* replies ignored: wrong source, id or question */
	uint64_t malformed;		/* replies that matched but did not parse */
	uint64_t limited;		/* queries refused at max_outstanding */
	unsigned outstanding;
};

struct xb_dns_upstream;

struct xb_dns_upstream *xb_dns_upstream_new(const struct xb_dns_upstream_conf *conf);
/* Ends every query without calling back. NULL is ignored. */
void xb_dns_upstream_free(struct xb_dns_upstream *u);
int xb_dns_upstream_fd(const struct xb_dns_upstream *u);
void xb_dns_upstream_process(struct xb_dns_upstream *u, uint64_t now_ns);

/* Start a query for q (name in wire form; case is sent as given). Returns a
 * handle (never 0), or 0 with errno EAGAIN at max_outstanding, EINVAL for a
 * set without servers or a bad question, or what the first send failed
 * with. The callback runs exactly once unless the query is cancelled. */
uint64_t xb_dns_upstream_query(struct xb_dns_upstream *u, struct xb_dns_upstream_set *set, const struct xb_dns_wire_question *q,
		     unsigned flags, xb_dns_upstream_cb cb, void *ctx, uint64_t now_ns);
/* The same, asking only the servers order[0..n) (indices into the set), in
 * that order: the first not marked down first. order NULL: every server in
 * configuration order (xb_dns_upstream_query). EINVAL for an index outside the set. */
uint64_t xb_dns_upstream_query_order(struct xb_dns_upstream *u, struct xb_dns_upstream_set *set, const uint8_t *order,
			   unsigned n, const struct xb_dns_wire_question *q, unsigned flags, xb_dns_upstream_cb cb,
			   void *ctx, uint64_t now_ns);
/* The tunnel behind ifname is down: every try waiting on a server reached
 * through it ends now as if it had timed out (its server marked down, the
 * query on to its next server) at the next xb_dns_upstream_process, which the fd
 * becomes readable for at once. */
void xb_dns_upstream_give_up(struct xb_dns_upstream *u, const char *ifname, uint64_t now_ns);
/* Cancel without calling back; a handle that already finished is ignored. */
void xb_dns_upstream_cancel(struct xb_dns_upstream *u, uint64_t handle);

void xb_dns_upstream_stats(const struct xb_dns_upstream *u, struct xb_dns_upstream_stats *st);

#endif
