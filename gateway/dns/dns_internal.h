/* Shared by dns_engine.c (policy: names, answers, what may be learned),
 * dns_learned.c (learned destinations into the sets, their table and
 * state file) and dns_service.c (sockets, queries in flight); not an
 * interface. */
#ifndef XB_GATEWAY_DNS_INTERNAL_H
#define XB_GATEWAY_DNS_INTERNAL_H

#include "common/jsonlog.h"
#include "common/log.h"
#include "gateway/dns/dns_cache.h"
#include "gateway/dns/dns_learn.h"
#include "gateway/dns/dns_match.h"
#include "gateway/dns/dns_service.h"
#include "gateway/dns/dns_upstream.h"
#include "gateway/dns/dns_wire.h"
#include "gateway/kernel/nft_set.h"
#include "policy/compile.h"

#define DNS_NO_RULE	SIZE_MAX	/* no dns rule matched: the default forward */
#define DNS_LISTEN_MAX	2		/* the gateway's IPv4 and IPv6 address */
#define DNS_TCP_MAX	64		/* TCP clients at once */
#define DNS_TCP_IDLE_MS	10000
#define DNS_INFLIGHT_MAX 1024		/* queries waiting on an upstream */
#define DNS_ADDRS_MAX	256		/* addresses read from one answer (more: cut) */
#define DNS_PEND_MAX	4096		/* set changes queued before a flush is forced */
#define DNS_UNBOUND	UINT32_MAX	/* a server asked on the gateway's own route */
#define DNS_CANARY	"use-application-dns.net"	/* browsers' DoH canary */

/* An access rule that names domains: answers for those names go into its
 * sets. */
struct dns_acc {
	size_t rule;			/* into p->rules */
	struct xb_dns_pattern *pats;
	size_t n_pats;
	char set4[XB_SET_NAME_MAX], set6[XB_SET_NAME_MAX];
	bool has4, has6;		/* the compiled table has that set */
	bool allow;			/* admits devices (deny rules' sets are filled too) */
	bool learn_private;		/* the rule's learn_private */
	uint32_t fp;			/* fingerprint of the rule's domains */
	/* Since the last commit: addresses not learned, and why. */
	struct {
		uint64_t special, private_, own, cut, evicted;
		uint64_t full;		/* the set full of entries just expired */
	} refused;
};

/* Per dns rule (and one more for "no rule"), since the last commit. */
struct dns_stats {
	uint64_t queries, answered, cached, failed, blocked, denied;
	uint64_t lat_sum_us, lat_max_us;
	uint64_t lat_hist[24];		/* by floor(log2(microseconds)) */
};

struct xb_dns_service_cfg {
	const struct xb_policy *p;
	struct xb_dns_match *names;	/* dns rule patterns and lists; value: rule */
	struct xb_dns_upstream_set *sets;		/* per dns rule: its servers (n: the default) */
	size_t n_sets;
	/* Per set and server: the tunnel it is reached through (the server's
	 * ifname), or DNS_UNBOUND. A tunnel rule's set holds every server
	 * once per tunnel it may resolve through. */
	uint32_t (*srv_tun)[XB_DNS_UPSTREAM_SERVERS_MAX];
	struct dns_acc *acc;
	size_t n_acc;
	struct dns_stats *stats;	/* per dns rule, then the default */
	size_t n_patterns;
	struct xb_dns_learn_own own;		/* the gateway's addresses: never learned */
};

/* A set change waiting for the round's flush. */
struct dns_pend {
	uint32_t acc;			/* into cfg->acc */
	uint8_t family;			/* AF_INET / AF_INET6 */
	uint8_t addr[16];
	uint32_t ttl;			/* the answer's */
	bool done;			/* dns_learn_flush's */
};

/* What the engine decided for a query. */
enum dns_verdict {
	DNS_ANSWERED,			/* a local answer is in the buffer */
	DNS_ASK,			/* ask upstream set `set' (cache missed) */
};

struct dns_query {
	struct xb_dns_wire_query q;
	size_t device;			/* into p->devices */
	size_t rule;			/* dns rule, or DNS_NO_RULE */
	struct xb_dns_upstream_set *set;
	uint32_t scope;			/* the cache's: rule + 1, 0 for the default */
	const char *action;		/* for the log */
	/* A tunnel rule's: the servers of set to ask, in order (n_order 0:
	 * all, in the set's order). */
	uint8_t order[XB_DNS_UPSTREAM_SERVERS_MAX];
	unsigned n_order;
	bool cached;
	bool stale;			/* answered from an expired entry (RFC 8767) */
	uint64_t t0_ns;
	/* An override with cname: the answer is the CNAME, then what the
	 * target resolves to (qc is the target's question). */
	bool chase;
	struct xb_dns_wire_query qc;
	uint32_t cname_ttl;
};

struct xb_dns_service {
	struct xb_dns_service_cfg *cfg;
	xb_dns_service_posture_fn posture;
	void *posture_ctx;
	xb_dns_service_route_fn route;
	void *route_ctx;
	char *state_file;
	struct xb_dns_cache *cache;
	struct xb_dns_upstream *up;
	struct xb_nft_set nft;
	bool nft_ok;
	struct xb_dns_learn learned;
	/* Set changes learned this round, applied in one netlink transaction
	 * per set before any answer leaves (dns_learn_flush). */
	struct dns_pend *pend;
	size_t n_pend, pend_cap;
	struct dns_learn_batch *batch;	/* dns_learn_flush's, made at its first call */
	bool loaded;			/* the learned state file was read */
	xb_dns_service_learn_fn on_learn;	/* the cluster's, or NULL */
	void *on_learn_ctx;
	bool remote;			/* putting another gateway's: not told */
	struct xb_jsonlog *log;
	char *log_path;
	int epfd, tfd;
	int udp[DNS_LISTEN_MAX], tcp[DNS_LISTEN_MAX];
	union xb_sockaddr bound[DNS_LISTEN_MAX];
	char bound_if[16];		/* the device interface they are bound to */
	/* The device interface's local UDP tap (tunnel/tap.h): framed queries
	 * from its data thread, framed answers back; -1: none. Answers are
	 * cut to what fits tap_mtu after the IP and UDP headers. */
	int tap_fd;
	unsigned tap_mtu;
	struct dns_tcp *conns;		/* DNS_TCP_MAX */
	struct dns_flight *flights;	/* DNS_INFLIGHT_MAX */
	uint16_t *free;			/* free flight slots, a stack */
	size_t n_free;
	uint64_t last_tick_ns;
	unsigned ticks;			/* of the service's 1 s timer: saves every 30 */
	struct dns_io *io;		/* dns_service.c's buffers */
	/* Learning's refusals and cuts are the answer's doing, not the
	 * operator's: a hostile resolver must not flood the log either. */
	struct log_rl learn_rl;
	/* CLOCK_MONOTONIC read once per batch of work (a recvmmsg, a TCP
	 * read, an upstream event, a tick), not per query: what arrives in
	 * one batch is stamped alike, answers in the batch take no time. */
	uint64_t now_ns;
	struct {
		uint64_t refused, formerr, dropped, truncated, set_puts, set_failures;
		uint64_t tcp_refused, inflight_full;
		uint64_t tap_queries, tap_answers, tap_bad;	/* tap_bad: frames not understood */
		uint64_t put_hist[24];	/* set updates by floor(log2(us)) */
	} c;
	uint64_t since;			/* wall seconds of the last commit */
};

/* dns_engine.c */
/* Decide a query from device `device': DNS_ANSWERED with the answer in
 * out (length *len, at most cap), or DNS_ASK with qq->set/scope filled. */
enum dns_verdict dns_decide(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap,
			    size_t *len);
/* An upstream answer (m parsed against qq's question) or a cache hit:
 * learn its addresses, then write the client's answer to out. */
size_t dns_answer_from(struct xb_dns_service *s, struct dns_query *qq, const struct xb_dns_wire_msg *m,
		       uint8_t *out, size_t cap);
/* SERVFAIL to the client. */
size_t dns_fail(const struct dns_query *qq, unsigned rcode, uint8_t *out, size_t cap);
/* Cache lookup and, on a hit, the answer written to out. */
size_t dns_from_cache(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap);
/* No upstream answered: an answer expired at most serve_stale ago, TTLs
 * XB_DNS_CACHE_STALE_TTL, its addresses learned again; 0 when there is none. */
size_t dns_from_stale(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap);
void dns_stats_done(struct xb_dns_service *s, const struct dns_query *qq, bool ok);
void dns_log(struct xb_dns_service *s, const struct dns_query *qq, const uint8_t *ans, size_t len);

/* dns_learned.c */
/* The gateway's own addresses by the policy (the filter refuses them). 0,
 * or -1 without memory. */
int dns_own_addrs(struct xb_dns_learn_own *o, const struct xb_policy *p);
/* learn_max, or its default. */
size_t dns_learn_cap(const struct xb_dns *d);
void dns_learned_load(struct xb_dns_service *s);
void dns_learned_save(struct xb_dns_service *s);
void dns_learned_prune(struct xb_dns_service *s);
/* Applies the queued set changes: per set, evictions then puts, one
 * transaction each. Called before any answer is sent. */
void dns_learn_flush(struct xb_dns_service *s);

/* dns_listen.c */
/* A socket of type bound to addr on ifname only (SOCK_STREAM: listening),
 * non-blocking; -1 with errno. */
int dns_open_sock(const union xb_sockaddr *addr, int type, const char *ifname);
/* Closes listening slot i's sockets and forgets its address. */
void dns_close_listen(struct xb_dns_service *s, int i);
/* The addresses p has the service listen on (AF_UNSPEC: none). */
void dns_gateway_addrs(const struct xb_policy *p, union xb_sockaddr a[DNS_LISTEN_MAX]);

#endif
