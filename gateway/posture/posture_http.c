/* The posture service's HTTP endpoint; see posture_http.h and docs/posture.md.
 *
 * One libmicrohttpd daemon per listening address, each in external-epoll mode
 * (MHD_USE_EPOLL, no thread of its own): their epoll fds and a timerfd for
 * their connection timeouts sit in our epoll set, and process() runs every
 * daemon. We make the listening sockets ourselves so that they can bind to
 * the device-side address before the device interface has it (IP_FREEBIND).
 *
 * The requests themselves (routes, reports, pushes, answers) are
 * posture_http_req.c's.
 *
 * Limits (docs/posture.md, "Limits"), so that one device cannot starve the
 * others: a device over its request rate is refused 429 at its headers
 * (posture_rate.c); a source address gets conns_per_source connections,
 * and a request must be in by its header and body deadlines
 * (posture_conns.c: the accept policy, the connection notification, and
 * a sweep at every xb_posture_http_process()).
 */
#include "gateway/posture/posture_http_int.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PASSES 4		/* rounds per xb_posture_http_process() */

static struct log_rl rl_http = LOG_RL_INIT(1, 5);

/* --- the round ---------------------------------------------------------------- */

/* The round's transaction is lost: every request held in it gets a 503. */
static void round_failed(struct xb_posture_http *s)
{
	if (!s->tx_failed)
		snprintf(s->why, sizeof(s->why), "%s", xb_posture_store_error(s->store));
	s->tx_failed = true;
}

/* Start one request's writes in the round's transaction, opening it at
 * the round's first request. False (refuse with 503, before anything is
 * vetted, enforced or remembered) when it cannot be opened — the store
 * busy or failing — or the round is already lost. */
bool posture_http_join(struct xb_posture_http *s)
{
	if (!s->in_tx && !s->tx_failed) {
		if (xb_posture_store_begin(s->store) == 0)
			s->in_tx = true;
		else
			round_failed(s);	/* one busy wait a round, not one a request */
	}
	if (s->tx_failed)
		return false;
	if (xb_posture_store_mark(s->store) == 0)
		return true;
	round_failed(s);
	return false;
}

/* End one request's writes: kept, or undone alone when it failed, so one
 * bad row does not fail the round's other requests. */
void posture_http_part(struct xb_posture_http *s, bool keep)
{
	if (xb_posture_store_unmark(s->store, keep) < 0)
		round_failed(s);
}

/* Keep an accepted request's answer (ok) until the round is enforced and
 * committed (settle()); its connection waits, suspended. */
enum MHD_Result posture_http_hold(struct xb_posture_http *s, struct MHD_Connection *c, struct req *q,
				  const char *addr, const char *device, json_int_t seq, json_t *ok)
{
	q->conn = c;
	q->status = MHD_HTTP_OK;
	q->answer = ok;
	snprintf(q->addr, sizeof(q->addr), "%s", addr);
	q->device = device ? strdup(device) : NULL;
	q->seq = seq;
	q->held = true;
	q->next = NULL;		/* answered and audited in the order accepted */
	if (s->held)
		s->held_last->next = q;
	else
		s->held = q;
	s->held_last = q;
	MHD_suspend_connection(c);
	return MHD_YES;
}

static void arm(struct xb_posture_http *s, bool resumed);

/* Ask the gate about a report that passed the local checks, its nonce
 * spent (a refusal is final for it too). 0: it passed at once; else the
 * status to refuse with (msg), or XB_POSTURE_HTTP_GATE_WAIT: held, the
 * connection suspended until xb_posture_http_gate_done(). */
unsigned posture_http_gate(struct xb_posture_http *s, struct MHD_Connection *c, struct req *r,
			   const char *device, json_int_t seq, char *msg, size_t len)
{
	int rc;

	r->gate_id = ++s->gate_id;
	rc = s->ops->gate(s->ctx, device, seq, r->body ? r->body : "", r->len, r->gate_id, msg, len);
	if (rc == 0) {
		r->gated = true;
		return 0;
	}
	if (rc != XB_POSTURE_HTTP_GATE_WAIT) {
		if (!msg[0])
			snprintf(msg, len, "refused");
		return rc >= 400 && rc <= 599 ? (unsigned)rc : MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	r->gating = true;
	r->gnext = s->gating;
	s->gating = r;
	r->conn = c;
	MHD_suspend_connection(c);
	return XB_POSTURE_HTTP_GATE_WAIT;
}

void xb_posture_http_gate_done(struct xb_posture_http *s, uint64_t id, unsigned status,
			       const char *msg)
{
	for (struct req **pp = &s->gating; *pp; pp = &(*pp)->gnext) {
		struct req *q = *pp;

		if (q->gate_id != id)
			continue;
		*pp = q->gnext;
		q->gating = false;
		if (status) {
			q->gate_status = status;
			q->gate_msg = strdup(msg ? msg : "refused");
		} else {
			q->gated = true;
		}
		MHD_resume_connection(q->conn);
		arm(s, true);
		return;
	}
}

/* The end of a round: commit its writes, apply and enforce what its
 * reports and pushes changed (on_round) — or drop it when the commit
 * failed, so that a 503 has changed nothing — then answer each held
 * request, 200 or 503, and resume its connection. True when
 * there were any: the answers leave in the next pass, together with the
 * next round's requests (arm() makes it come at once). */
static bool settle(struct xb_posture_http *s)
{
	struct req *q;
	bool ok;

	if (!s->in_tx && !s->held && !s->tx_failed)
		return false;
	if (!s->tx_failed && s->in_tx && xb_posture_store_commit(s->store) < 0)
		round_failed(s);
	ok = !s->tx_failed;
	if (!ok) {
		xb_posture_store_rollback(s->store);
		if (log_ratelimit(&rl_http))
			log_warnx("posture: a round of reports and pushes is lost: %s", s->why);
	}
	s->in_tx = false;	/* on_round may write (transitions) on its own */
	if (s->ops->on_round)
		s->ops->on_round(s->ctx, ok);
	s->in_tx = s->tx_failed = false;
	while ((q = s->held)) {
		s->held = q->next;
		if (!ok) {
			json_decref(q->answer);
			q->status = MHD_HTTP_SERVICE_UNAVAILABLE;
			q->answer = json_pack("{s:s}", "error", "storage error");
		}
		posture_http_audit(s, q->device ? "report" : "push", q->addr, q->device, q->seq, q->status,
		      ok ? NULL : "storage error");
		q->held = false;
		q->ready = true;
		MHD_resume_connection(q->conn);
	}
	return true;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct lsn *l = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (log_ratelimit(&rl_http))
		log_warnx("posture %s: %s", l->name, msg);
}

/* --- listeners --------------------------------------------------------------- */

/* A listening socket on addr:port, bound to interface ifname unless it is
 * NULL (as the DNS service's: only what came through a device's WireGuard
 * tunnel reaches it, so its source is one cryptokey routing vouched for);
 * -1 with the reason logged. */
static int listen_on(const char *addr, uint16_t port, const char *ifname, bool *v6)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
	} else {
		log_warnx("posture: listen address `%s' is not an IPv4 or IPv6 address", addr);
		return -1;
	}
	*v6 = ss.ss_family == AF_INET6;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one)) < 0 ||
	    (*v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    (ifname && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname,
				  (socklen_t)strlen(ifname)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, *v6 ? sizeof(*in6) : sizeof(*in)) < 0 ||
	    listen(fd, 128) < 0) {
		log_warn("posture: listen on %s port %u%s%s", addr, port, ifname ? " on " : "",
			 ifname ? ifname : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int add_listener(struct xb_posture_http *s, const char *addr, uint16_t port, bool admin)
{
	struct lsn *l = &s->lsn[s->n_lsn];
	const union MHD_DaemonInfo *di;
	struct epoll_event ev = { .events = EPOLLIN };
	bool v6;
	int fd = listen_on(addr, port, admin ? NULL : s->cfg.ifname, &v6);

	if (fd < 0)
		return -1;
	l->svc = s;
	l->admin = admin;
	snprintf(l->name, sizeof(l->name), v6 ? "[%s]:%u" : "%s:%u", addr, port);
	l->conns = (struct xb_posture_conns_lsn){ s->conns, l->name };
	/* The request deadlines are posture_conns.c's: libmicrohttpd's
	 * timeout is the idle one. */
	l->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
				(v6 ? MHD_USE_IPv6 : 0), 0,
				xb_posture_conns_admit, &l->conns, posture_http_handle, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,	/* first */
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
				MHD_OPTION_NOTIFY_COMPLETED, posture_http_done, l,
				MHD_OPTION_NOTIFY_CONNECTION, xb_posture_conns_track, &l->conns,
				MHD_OPTION_END);
	if (!l->d) {
		log_warnx("posture %s: libmicrohttpd would not start", l->name);
		close(fd);
		return -1;
	}
	di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	ev.data.u64 = s->n_lsn;
	if (!di || epoll_ctl(s->epfd, EPOLL_CTL_ADD, di->epoll_fd, &ev) < 0) {
		log_warn("posture %s: epoll", l->name);
		MHD_stop_daemon(l->d);
		return -1;
	}
	s->n_lsn++;
	log_info("posture: %s on %s%s%s", admin ? "attribute push" : "reports", l->name,
		 !admin && s->cfg.ifname ? ", " : "", !admin && s->cfg.ifname ? s->cfg.ifname : "");
	return 0;
}

static void defaults(struct xb_posture_http_config *c)
{
	c->port = c->port ? c->port : XB_POSTURE_HTTP_PORT;
	c->admin_port = c->admin_port ? c->admin_port : XB_POSTURE_HTTP_PORT;
	c->max_conns = c->max_conns ? c->max_conns : XB_POSTURE_HTTP_MAX_CONNS;
	c->timeout_s = c->timeout_s ? c->timeout_s : XB_POSTURE_HTTP_TIMEOUT_S;
	c->nonce_ttl_s = c->nonce_ttl_s ? c->nonce_ttl_s : XB_POSTURE_HTTP_NONCE_TTL_S;
	c->nonces_per_device = c->nonces_per_device ? c->nonces_per_device :
			       XB_POSTURE_HTTP_NONCES_PER_DEVICE;
	c->nonces = c->nonces ? c->nonces : XB_POSTURE_HTTP_NONCES;
	c->rate = c->rate ? c->rate : XB_POSTURE_HTTP_RATE;
	c->burst = c->burst ? c->burst : XB_POSTURE_HTTP_BURST;
	c->conns_per_source = c->conns_per_source ? c->conns_per_source : XB_POSTURE_HTTP_CONNS_PER_SOURCE;
	c->header_timeout_s = c->header_timeout_s ? c->header_timeout_s : XB_POSTURE_HTTP_HEADER_TIMEOUT_S;
	c->body_timeout_s = c->body_timeout_s ? c->body_timeout_s : XB_POSTURE_HTTP_BODY_TIMEOUT_S;
}

/* The device listeners' SO_BINDTODEVICE holds the interface's index as it
 * was then: bind them again by name after the interface was made again. */
void xb_posture_http_rebind(struct xb_posture_http *s, const char *ifname)
{
	for (size_t i = 0; i < s->n_lsn; i++) {
		const union MHD_DaemonInfo *di = s->lsn[i].admin ? NULL :
			MHD_get_daemon_info(s->lsn[i].d, MHD_DAEMON_INFO_LISTEN_FD);

		if (di && setsockopt(di->listen_fd, SOL_SOCKET, SO_BINDTODEVICE, ifname,
				     (socklen_t)strlen(ifname)) < 0)
			log_warn("posture %s: binding to %s again", s->lsn[i].name, ifname);
	}
}

struct xb_posture_http *xb_posture_http_open(const struct xb_posture_http_config *cfg, const struct xb_posture_http_ops *ops,
			     void *ctx, struct xb_posture_store *store, struct xb_jsonlog *audit)
{
	struct xb_posture_http *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
	int ok = 0;

	if (!s)
		return NULL;
	s->cfg = *cfg;
	defaults(&s->cfg);
	s->ops = ops;
	s->ctx = ctx;
	s->store = store;
	s->audit = audit;
	s->gate_id = clock_mono_ns();	/* ids of a reopened service are new ones */
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	s->nonces = xb_posture_nonce_new(s->cfg.nonce_ttl_s * NSEC_PER_SEC, s->cfg.nonces_per_device,
				  s->cfg.nonces);
	s->rate = xb_posture_rate_new(s->cfg.rate, s->cfg.burst);
	s->conns = xb_posture_conns_new(s->cfg.conns_per_source, s->cfg.header_timeout_s,
				 s->cfg.body_timeout_s);
	if (s->epfd < 0 || s->tfd < 0 || !s->nonces || !s->rate || !s->conns ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev) < 0) {
		log_warn("posture: set-up");
		goto fail;
	}
	for (size_t i = 0; i < XB_POSTURE_HTTP_MAX_LISTEN && cfg->listen[i]; i++)
		ok |= add_listener(s, cfg->listen[i], s->cfg.port, false);
	if (cfg->admin)
		ok |= add_listener(s, cfg->admin, s->cfg.admin_port, true);
	if (ok == 0 && s->n_lsn)
		return s;
fail:
	xb_posture_http_close(s);
	return NULL;
}

int xb_posture_http_fd(const struct xb_posture_http *s)
{
	return s->epfd;
}

/* The timer for the earliest libmicrohttpd timeout (connection idle) or
 * request deadline, or at once when connections were resumed: in external
 * epoll mode libmicrohttpd has no wake-up of its own for them, they wait
 * for the next MHD_run(). */
static void arm(struct xb_posture_http *s, bool resumed)
{
	struct itimerspec its = { 0 };
	MHD_UNSIGNED_LONG_LONG ms, min = UINT64_MAX;

	for (size_t i = 0; i < s->n_lsn; i++)
		if (MHD_get_timeout(s->lsn[i].d, &ms) == MHD_YES && ms < min)
			min = ms;
	if ((ms = xb_posture_conns_next_ms(s->conns, clock_mono_ns())) < min)
		min = ms;
	if (resumed) {
		its.it_value.tv_nsec = 1;
		timerfd_settime(s->tfd, 0, &its, NULL);
	} else if (min != UINT64_MAX) {
		its.it_value = clock_ts((min ? min : 1) * NSEC_PER_MSEC);
		timerfd_settime(s->tfd, 0, &its, NULL);
	}
}

void xb_posture_http_process(struct xb_posture_http *s)
{
	struct epoll_event evs[8];
	uint64_t ticks;
	bool resumed = false;
	int n = epoll_wait(s->epfd, evs, 8, 0);

	/* The timer is only a wake-up: read it to clear it; EAGAIN is fine. */
	for (int i = 0; i < n; i++)
		if (evs[i].data.u64 == UINT64_MAX && read(s->tfd, &ticks, sizeof(ticks)) < 0)
			continue;
	xb_posture_conns_sweep(s->conns, clock_mono_ns());
	/* Cheap when idle: each daemon polls its own epoll set without waiting. */
	/* Each pass is a round; the next pass sends the answers the last one
	 * settled (and takes new requests). The last pass's wait for a timer. */
	for (int pass = 0; pass < PASSES; pass++) {
		for (size_t i = 0; i < s->n_lsn; i++)
			MHD_run(s->lsn[i].d);
		if (!(resumed = settle(s)))
			break;
	}
	arm(s, resumed);
}

size_t xb_posture_http_conns(const struct xb_posture_http *s)
{
	const union MHD_DaemonInfo *di;
	size_t n = 0;

	for (size_t i = 0; i < s->n_lsn; i++)
		if ((di = MHD_get_daemon_info(s->lsn[i].d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)))
			n += di->num_connections;
	return n;
}

void xb_posture_http_stats(const struct xb_posture_http *s, struct xb_posture_http_stats *out)
{
	*out = (struct xb_posture_http_stats){
		.limited = s->limited, .conns_refused = xb_posture_conns_refused(s->conns),
		.deadline_closed = xb_posture_conns_cut(s->conns), .nonce_full = s->nonce_full,
	};
}

void xb_posture_http_close(struct xb_posture_http *s)
{
	if (!s)
		return;
	settle(s);	/* nothing is held between rounds; in case */
	while (s->gating)	/* resumed to be closed with the daemons */
		xb_posture_http_gate_done(s, s->gating->gate_id, MHD_HTTP_SERVICE_UNAVAILABLE,
					  "shutting down");
	for (size_t i = 0; i < s->n_lsn; i++)
		MHD_stop_daemon(s->lsn[i].d);
	xb_posture_nonce_free(s->nonces);
	xb_posture_rate_free(s->rate);
	xb_posture_conns_free(s->conns);
	if (s->tfd >= 0)
		close(s->tfd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
}
