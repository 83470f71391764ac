/* Inside the prober: shared by probe.c (rounds, timers, reload) and
 * probe_sock.c (sockets per target kind). Not a public header. */
#ifndef XB_PROBE_INT_H
#define XB_PROBE_INT_H

#include "probe/probe.h"

enum htype { H_TIMER, H_ICMP4, H_ICMP6, H_CONN, H_DNS };

/* epoll's data.ptr for every fd. */
struct handle {
	enum htype type;
	struct ptunnel *tun;
	struct ptarget *tg;
};

#define DNS_INFLIGHT 32		/* queries remembered per DNS target */

struct ptarget {
	struct xb_probe_target t;
	struct xb_pstats *ps;
	struct handle h;
	int fd;			/* tcp/http attempt, or the dns socket; -1 */
	bool t_conn;		/* tcp or http: one attempt at a time */
	bool busy, sent_req;	/* attempt in flight; http: request written */
	uint64_t started, round, tid;
	char buf[256];		/* http: the response's start */
	size_t got;
	struct { uint16_t qid; bool live; uint64_t round, tid; } dq[DNS_INFLIGHT];
	uint64_t cursor;	/* icmp, dns: next stats id whose loss is to be reported */
	uint64_t round_off;	/* icmp, dns: round - stats id (one probe a round) */
	char err[96];		/* the last send's error, for the loss report */
};

struct ptunnel {
	struct xb_probe_tunnel_cfg cfg;
	struct xb_probe *p;
	struct xb_pstats *ps;	/* the tunnel: a round answered by any target */
	struct ptarget tg[XB_PROBE_MAX_TARGETS];
	int icmp[2];		/* raw sockets, IPv4 and IPv6, opened on demand */
	struct handle hicmp[2];
	uint16_t ident;
	uint64_t round, next_send;
	uint64_t last_send;	/* the last round's time */
	unsigned confirmed_run;	/* miss run the next round was pulled forward for */
	uint64_t silent_asked;	/* the missed round cbs.silent was asked about (its send time) */
};

struct xb_probe {
	int epfd, tfd;
	struct handle htimer;
	struct xb_probe_cbs cbs;
	struct ptunnel **tun;
	size_t n;
	uint64_t nonce, rng;
	uint64_t packets;
};

uint64_t pt_rand(struct xb_probe *p);
void pt_result(struct ptunnel *t, struct ptarget *g, uint64_t round, int rc, uint64_t rtt,
	       const char *error);
void pt_answer(struct ptunnel *t, struct ptarget *g, uint64_t round, uint64_t tid, uint64_t at);

struct ptunnel *pt_new(struct xb_probe *p, const struct xb_probe_tunnel_cfg *cfg);
void pt_adopt(struct ptunnel *t, struct ptunnel *old);
void pt_free(struct ptunnel *t);
bool pt_same_cfg(const struct xb_probe_tunnel_cfg *a, const struct xb_probe_tunnel_cfg *b);
void pt_send(struct ptunnel *t, struct ptarget *g, uint64_t round, uint64_t now);
void pt_icmp_read(struct ptunnel *t, bool v6);
void pt_dns_read(struct ptunnel *t, struct ptarget *g);
void pt_conn_event(struct ptunnel *t, struct ptarget *g, uint32_t events);
void pt_conn_expire(struct ptunnel *t, struct ptarget *g, uint64_t now);
uint64_t pt_conn_deadline(const struct ptunnel *t, const struct ptarget *g);

#endif
