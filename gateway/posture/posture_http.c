/* The posture service's HTTP endpoint; see posture_http.h and docs/posture.md.
 *
 * One libmicrohttpd daemon per listening address, each in external-epoll mode
 * (MHD_USE_EPOLL, no thread of its own): their epoll fds and a timerfd for
 * their connection timeouts sit in our epoll set, and process() runs every
 * daemon. We make the listening sockets ourselves so that they can bind to
 * the device-side address before the device interface has it (IP_FREEBIND).
 *
 * libmicrohttpd calls handle() once when the headers are in (routes, size
 * and type are refused there, before any body is read), once per chunk of
 * body, and once more at the end, when the request is answered.
 *
 * Limits (docs/posture.md, "Limits"), so that one device cannot starve the
 * others: a device over its request rate is refused 429 at its headers
 * (posture_rate.c); a source address gets conns_per_source connections,
 * and a request must be in by its header and body deadlines
 * (posture_conns.c: the accept policy, the connection notification, and
 * a sweep at every xb_posture_http_process()).
 */
#include "gateway/posture/posture_http.h"
#include "gateway/posture/posture_conns.h"
#include "gateway/posture/posture_nonce.h"
#include "gateway/posture/posture_rate.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define DISCARD_MAX (1u << 20)	/* body bytes thrown away after a 413 is due */
#define PASSES 4		/* rounds per xb_posture_http_process() */

enum route { R_NONE, R_NONCE, R_REPORT, R_PUSH };

struct lsn {
	struct xb_posture_http *svc;
	struct MHD_Daemon *d;
	bool admin;
	char name[64];		/* address:port, for log lines */
	struct xb_posture_conns_lsn conns;	/* {svc->conns, name} */
};

struct xb_posture_http {
	struct xb_posture_http_config cfg;	/* defaults filled in */
	const struct xb_posture_http_ops *ops;
	void *ctx;
	struct xb_posture_store *store;
	struct xb_jsonlog *audit;
	struct xb_posture_nonce *nonces;
	struct xb_posture_rate *rate;
	struct xb_posture_conns *conns;	/* every open connection, all listeners */
	uint64_t limited, nonce_full;	/* for xb_posture_http_stats() */
	int epfd, tfd;
	/* The round: every report and push accepted in one xb_posture_http_process()
	 * call is written in one transaction (open while in_tx), and answered
	 * after it commits. */
	bool in_tx, tx_failed;
	char why[160];			/* why the round's transaction failed */
	struct req *held, *held_last;	/* in the order accepted */
	struct req *gating;		/* reports waiting on the gate, suspended */
	uint64_t gate_id;		/* the last id given; starts at the clock */
	size_t n_lsn;
	struct lsn lsn[XB_POSTURE_HTTP_MAX_LISTEN + 1];
};

/* A request with a body, between handle() calls. An accepted report or
 * push is held (its connection suspended) until the round's commit: then
 * `answer' is sent, or a 503 if the commit failed. */
struct req {
	enum route route;
	char *body;
	size_t len;
	size_t discarded;	/* > 0: over the limit, answered 413 at the end */
	struct MHD_Connection *conn;
	struct req *next;	/* in xb_posture_http.held */
	bool held, ready;	/* suspended; resumed with its answer */
	unsigned status;
	json_t *answer;
	char addr[INET6_ADDRSTRLEN];
	char *device;		/* for the audit line; NULL for a push */
	json_int_t seq;
	/* The gate (ops->gate): waiting on it (in xb_posture_http.gating),
	 * passed, or refused with gate_status and gate_msg. */
	bool gating, gated;
	unsigned gate_status;
	char *gate_msg;
	uint64_t gate_id;
	struct req *gnext;
};

static struct log_rl rl_http = LOG_RL_INIT(1, 5);
static struct log_rl rl_limit = LOG_RL_INIT(1, 5);	/* over a device's rate */

/* --- answers ----------------------------------------------------------------- */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, json_t *body,
			      const char *allow)
{
	char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(body);
	if (!js)
		return MHD_NO;	/* out of memory: drop the connection */
	resp = MHD_create_response_from_buffer(strlen(js), js, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(js);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum MHD_Result fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return answer(c, status, json_pack("{s:s}", "error", msg), NULL);
}

/* The peer's address as text, and the sockaddr itself. */
static const struct sockaddr *peer(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			  (socklen_t)len);
	return sa;
}

/* One audit line: what was asked, by whom, and the answer. */
static void audit(struct xb_posture_http *s, const char *event, const char *addr, const char *device,
		  json_int_t seq, unsigned status, const char *error)
{
	json_t *o;

	if (!s->audit)
		return;
	o = json_pack("{s:I, s:s, s:s, s:i}", "at", (json_int_t)(clock_real_ns() / NSEC_PER_MSEC),
		      "event", event, "peer", addr, "status", (int)status);
	if (!o)
		return;
	if (device)
		json_object_set_new(o, "device", json_string(device));
	if (seq >= 0)
		json_object_set_new(o, "seq", json_integer(seq));
	if (error)
		json_object_set_new(o, "error", json_string(error));
	xb_jsonlog_write(s->audit, o);
	json_decref(o);
}

/* An error answer that is also audited. */
static enum MHD_Result refuse(struct xb_posture_http *s, struct MHD_Connection *c, const char *event,
			      const char *addr, const char *device, json_int_t seq,
			      unsigned status, const char *msg)
{
	audit(s, event, addr, device, seq, status, msg);
	return fail(c, status, "%s", msg);
}

/* --- routes ------------------------------------------------------------------ */

static enum MHD_Result nonce(struct lsn *l, struct MHD_Connection *c)
{
	struct xb_posture_http *s = l->svc;
	char addr[INET6_ADDRSTRLEN], hex[XB_POSTURE_NONCE_HEX + 1];
	const struct sockaddr *sa = peer(c, addr, sizeof(addr));
	const char *device = sa ? s->ops->device_for(s->ctx, sa) : NULL;

	if (!device)
		return refuse(s, c, "nonce", addr, NULL, -1, MHD_HTTP_FORBIDDEN,
			      "not a device address");
	if (xb_posture_nonce_issue(s->nonces, device, clock_mono_ns(), hex) < 0) {
		s->nonce_full++;
		if (log_ratelimit(&rl_http))
			log_warnx("posture %s: nonce table full (%zu outstanding)", l->name,
				  xb_posture_nonce_count(s->nonces));
		return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many outstanding nonces");
	}
	return answer(c, MHD_HTTP_OK, json_pack("{s:s, s:i}", "nonce", hex, "expires_in",
						(int)s->cfg.nonce_ttl_s), NULL);
}

/* The body as a JSON object, or NULL with the 400 message in msg. */
static json_t *parse(const struct req *r, char *msg, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);

	if (!j) {
		snprintf(msg, len, "malformed JSON: %s at line %d column %d (byte %d)", jerr.text,
			 jerr.line, jerr.column, jerr.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(msg, len, "the body is not a JSON object");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Checks up to and including the nonce; the status to refuse with and msg,
 * or 0. */
static unsigned vet(struct xb_posture_http *s, const char *device, json_t *rep, json_int_t seq,
		    bool take, char *msg, size_t len)
{
	json_t *jn = json_object_get(rep, "nonce");
	int64_t last;
	int rc;

	if (!json_is_integer(json_object_get(rep, "seq")) || seq < 0) {
		snprintf(msg, len, "\"seq\" is missing or not a non-negative integer");
		return MHD_HTTP_BAD_REQUEST;
	}
	if (!json_is_string(jn)) {
		snprintf(msg, len, "\"nonce\" is missing or not a string");
		return MHD_HTTP_BAD_REQUEST;
	}
	rc = xb_posture_store_last_seq(s->store, device, &last);
	if (rc < 0) {
		snprintf(msg, len, "storage error");
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	if (rc == 1 && seq <= last) {
		snprintf(msg, len, "seq %lld is not above %lld", (long long)seq, (long long)last);
		return MHD_HTTP_CONFLICT;
	}
	if (take && !xb_posture_nonce_take(s->nonces, device, json_string_value(jn), clock_mono_ns())) {
		snprintf(msg, len, "stale or unknown nonce");
		return MHD_HTTP_UNAUTHORIZED;
	}
	return 0;
}

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
static bool join(struct xb_posture_http *s)
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
static void part(struct xb_posture_http *s, bool keep)
{
	if (xb_posture_store_unmark(s->store, keep) < 0)
		round_failed(s);
}

/* Keep an accepted request's answer (ok) until the round is enforced and
 * committed (settle()); its connection waits, suspended. */
static enum MHD_Result hold(struct xb_posture_http *s, struct MHD_Connection *c, struct req *q,
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
static unsigned gate(struct xb_posture_http *s, struct MHD_Connection *c, struct req *r,
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

static enum MHD_Result report(struct lsn *l, struct MHD_Connection *c, struct req *r)
{
	struct xb_posture_http *s = l->svc;
	char addr[INET6_ADDRSTRLEN], msg[512] = "";
	const struct sockaddr *sa = peer(c, addr, sizeof(addr));
	const char *device = sa ? s->ops->device_for(s->ctx, sa) : NULL;
	json_t *rep, *reply = NULL, *ok;
	json_int_t seq;
	unsigned status;

	if (!device)
		return refuse(s, c, "report", addr, NULL, -1, MHD_HTTP_FORBIDDEN,
			      "not a device address");
	if (!(rep = parse(r, msg, sizeof(msg))))
		return refuse(s, c, "report", addr, device, -1, MHD_HTTP_BAD_REQUEST, msg);
	seq = json_integer_value(json_object_get(rep, "seq"));
	if (r->gate_status) {
		json_decref(rep);
		return refuse(s, c, "report", addr, device, seq, r->gate_status,
			      r->gate_msg ? r->gate_msg : "refused");
	}
	if (!join(s)) {
		json_decref(rep);
		return refuse(s, c, "report", addr, device, seq, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "storage unavailable");
	}
	status = vet(s, device, rep, seq, !r->gated, msg, sizeof(msg));
	/* Held for the gate: nothing of it written; it comes back here. */
	if (!status && s->ops->gate && !r->gated &&
	    (status = gate(s, c, r, device, seq, msg, sizeof(msg))) == XB_POSTURE_HTTP_GATE_WAIT) {
		json_decref(rep);
		part(s, false);
		return MHD_YES;
	}
	if (!status && s->ops->on_report(s->ctx, device, rep, &reply, msg, sizeof(msg))) {
		status = MHD_HTTP_UNPROCESSABLE_CONTENT;
		if (!msg[0])
			snprintf(msg, sizeof(msg), "report refused");
	}
	json_decref(rep);
	if (!status && xb_posture_store_put_report(s->store, device, seq,
					    (int64_t)(clock_real_ns() / NSEC_PER_MSEC), r->body)) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "storage error");
		if (s->ops->on_undo)
			s->ops->on_undo(s->ctx);
	}
	part(s, !status);
	if (status) {
		json_decref(reply);
		return refuse(s, c, "report", addr, device, seq, status, msg);
	}
	ok = json_pack("{s:b, s:I}", "accepted", 1, "seq", seq);
	if (ok && json_is_object(reply))
		json_object_update_missing(ok, reply);
	json_decref(reply);
	return hold(s, c, r, addr, device, seq, ok);
}

/* Store the attributes on_push returned, in the round's transaction. The
 * number stored, or -1 with msg (the caller undoes what was written). */
static int store_attrs(struct xb_posture_http *s, json_t *attrs, char *msg, size_t len)
{
	size_t i;
	json_t *a;

	if (!json_is_array(attrs)) {
		snprintf(msg, len, "no attributes");
		return -1;
	}
	json_array_foreach(attrs, i, a) {
		json_t *exp = json_object_get(a, "expires_at");
		char *value = json_dumps(json_object_get(a, "value"), JSON_ENCODE_ANY | JSON_COMPACT);
		struct xb_posture_store_attr pa = {
			.device = json_string_value(json_object_get(a, "device")),
			.key = json_string_value(json_object_get(a, "key")),
			.value = value,
			.expires_at = json_is_integer(exp) ? json_integer_value(exp) : 0,
			.source = json_string_value(json_object_get(a, "source")),
		};
		int rc = !pa.device || !pa.key || !value || !pa.source ? -2 :
			 xb_posture_store_put_attr(s->store, &pa);

		free(value);
		if (rc < 0) {
			snprintf(msg, len, rc == -2 ? "attribute %zu is malformed" : "storage error", i);
			return -1;
		}
	}
	return (int)i;
}

static enum MHD_Result push(struct lsn *l, struct MHD_Connection *c, struct req *r)
{
	struct xb_posture_http *s = l->svc;
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Xborder-Signature");
	char addr[INET6_ADDRSTRLEN], msg[512] = "";
	json_t *attrs = NULL;
	int rc, n;

	peer(c, addr, sizeof(addr));
	/* Before on_push, which spends the push's nonce. */
	if (!join(s))
		return refuse(s, c, "push", addr, NULL, -1, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "storage unavailable");
	rc = s->ops->on_push(s->ctx, r->body ? r->body : "", r->len, sig, &attrs, msg, sizeof(msg));
	if (rc) {
		json_decref(attrs);
		part(s, false);
		return refuse(s, c, "push", addr, NULL, -1,
			      (rc >= 400 && rc <= 499) || rc == MHD_HTTP_SERVICE_UNAVAILABLE ?
			      (unsigned)rc : MHD_HTTP_UNPROCESSABLE_CONTENT,
			      msg[0] ? msg : "push refused");
	}
	n = store_attrs(s, attrs, msg, sizeof(msg));
	json_decref(attrs);
	part(s, n >= 0);
	if (n < 0 && s->ops->on_undo)
		s->ops->on_undo(s->ctx);
	if (n < 0) {
		log_warnx("posture %s: push from %s: %s", l->name, addr, msg);
		return refuse(s, c, "push", addr, NULL, -1, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	return hold(s, c, r, addr, NULL, -1,
		    json_pack("{s:b, s:i}", "accepted", 1, "stored", n));
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
		audit(s, q->device ? "report" : "push", q->addr, q->device, q->seq, q->status,
		      ok ? NULL : "storage error");
		q->held = false;
		q->ready = true;
		MHD_resume_connection(q->conn);
	}
	return true;
}

/* --- requests ---------------------------------------------------------------- */

/* The route for url and method on listener l; R_NONE and the status
 * (and Allow header) to refuse with. */
static enum route route(const struct lsn *l, const char *url, const char *method,
			unsigned *status, const char **allow)
{
	static const struct { const char *url, *method; enum route r; bool admin; } routes[] = {
		{ "/v1/nonce", MHD_HTTP_METHOD_GET, R_NONCE, false },
		{ "/v1/report", MHD_HTTP_METHOD_POST, R_REPORT, false },
		{ "/v1/attributes", MHD_HTTP_METHOD_POST, R_PUSH, true },
	};

	*status = MHD_HTTP_NOT_FOUND;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (routes[i].admin != l->admin || strcmp(url, routes[i].url))
			continue;
		if (!strcmp(method, routes[i].method))
			return routes[i].r;
		*status = MHD_HTTP_METHOD_NOT_ALLOWED;
		*allow = routes[i].method;
	}
	return R_NONE;
}

/* application/json, with or without parameters (charset). */
static bool is_json(const char *ct)
{
	size_t n = strlen("application/json");

	return ct && !strncasecmp(ct, "application/json", n) &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The device's request budget (device listeners only): false, and the
 * refusal counted and logged, when it is spent. */
static bool within_rate(struct lsn *l, struct MHD_Connection *c)
{
	struct xb_posture_http *s = l->svc;
	char addr[INET6_ADDRSTRLEN];
	const struct sockaddr *sa;
	const char *device;

	if (l->admin || !(sa = peer(c, addr, sizeof(addr))) ||
	    !(device = s->ops->device_for(s->ctx, sa)) ||
	    xb_posture_rate_take(s->rate, device, clock_mono_ns()))
		return true;
	s->limited++;
	if (log_ratelimit(&rl_limit))
		log_warnx("posture %s: device %s (%s) over %u requests/s (burst %u): refused "
			  "429 (%llu so far)", l->name, device, addr, s->cfg.rate, s->cfg.burst,
			  (unsigned long long)s->limited);
	return false;
}

/* First call for a request: refuse what can be refused from the headers. */
static enum MHD_Result start(struct lsn *l, struct MHD_Connection *c, const char *url,
			     const char *method, void **con_cls)
{
	const char *allow = NULL, *cl;
	unsigned status;
	enum route r = route(l, url, method, &status, &allow);
	struct req *q;

	xb_posture_conns_headers_in(c, clock_mono_ns());
	if (!within_rate(l, c))
		return fail(c, MHD_HTTP_TOO_MANY_REQUESTS, "too many requests from this device");
	if (r == R_NONE)
		return answer(c, status, json_pack("{s:s}", "error", status == MHD_HTTP_NOT_FOUND ?
						   "no such resource" : "method not allowed"), allow);
	if (r == R_NONCE)
		goto keep;	/* answered at the request's end: an answer queued
				 * before it makes libmicrohttpd close the connection,
				 * and the device posts its report on the same one */
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > XB_POSTURE_HTTP_MAX_BODY)
		return fail(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over %u bytes", XB_POSTURE_HTTP_MAX_BODY);
	if (!is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_CONTENT_TYPE)))
		return fail(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json");
keep:
	if (!(q = calloc(1, sizeof(*q))))
		return MHD_NO;
	q->route = r;
	*con_cls = q;
	return MHD_YES;
}

/* A chunk of body: kept up to the limit, counted and dropped beyond it. */
static enum MHD_Result take(struct req *q, const char *data, size_t n)
{
	char *b;

	if (q->discarded || q->len + n > XB_POSTURE_HTTP_MAX_BODY) {
		q->discarded += n;
		return q->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
	}
	if (!(b = realloc(q->body, q->len + n + 1)))
		return MHD_NO;
	memcpy(b + q->len, data, n);
	q->len += n;
	b[q->len] = '\0';
	q->body = b;
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *size, void **con_cls)
{
	struct lsn *l = cls;
	struct req *q = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (!q)
		return start(l, c, url, method, con_cls);
	if (q->ready) {		/* resumed after its round: the answer */
		json_t *a = q->answer;

		q->answer = NULL;
		q->ready = false;
		return answer(c, q->status, a, NULL);
	}
	if (*size) {
		ret = take(q, data, *size);
		*size = 0;
		return ret;
	}
	xb_posture_conns_request_in(c);
	if (q->discarded)
		return fail(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over %u bytes", XB_POSTURE_HTTP_MAX_BODY);
	if (q->route == R_NONCE)
		return nonce(l, c);
	if (q->route == R_REPORT)
		return report(l, c, q);
	if (!l->svc->ops->on_push)
		return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "attribute push is not configured");
	return push(l, c, q);
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
		 enum MHD_RequestTerminationCode why)
{
	struct lsn *l = cls;
	struct req *q = *con_cls;

	(void)why;
	xb_posture_conns_answered(c, clock_mono_ns());
	if (q) {
		/* Closed while the gate had it: its verdict finds nothing. */
		for (struct req **pp = &l->svc->gating; q->gating && *pp; pp = &(*pp)->gnext)
			if (*pp == q) {
				*pp = q->gnext;
				break;
			}
		free(q->gate_msg);
		free(q->body);
		free(q->device);
		json_decref(q->answer);
		free(q);
		*con_cls = NULL;
	}
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
				xb_posture_conns_admit, &l->conns, handle, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,	/* first */
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
				MHD_OPTION_NOTIFY_COMPLETED, done, l,
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
