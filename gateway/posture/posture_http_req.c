/* The posture service's requests: routes, reports, pushes and their
 * answers (posture_http_int.h); the service around them is posture_http.c.
 *
 * libmicrohttpd calls posture_http_handle() once when the headers are in
 * (routes, size and type are refused there, before any body is read), once
 * per chunk of body, and once more at the end, when the request is answered.
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
void posture_http_audit(struct xb_posture_http *s, const char *event, const char *addr,
			const char *device, json_int_t seq, unsigned status, const char *error)
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
	posture_http_audit(s, event, addr, device, seq, status, msg);
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
	if (!posture_http_join(s)) {
		json_decref(rep);
		return refuse(s, c, "report", addr, device, seq, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "storage unavailable");
	}
	status = vet(s, device, rep, seq, !r->gated, msg, sizeof(msg));
	/* Held for the gate: nothing of it written; it comes back here. */
	if (!status && s->ops->gate && !r->gated &&
	    (status = posture_http_gate(s, c, r, device, seq, msg, sizeof(msg))) == XB_POSTURE_HTTP_GATE_WAIT) {
		json_decref(rep);
		posture_http_part(s, false);
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
	posture_http_part(s, !status);
	if (status) {
		json_decref(reply);
		return refuse(s, c, "report", addr, device, seq, status, msg);
	}
	ok = json_pack("{s:b, s:I}", "accepted", 1, "seq", seq);
	if (ok && json_is_object(reply))
		json_object_update_missing(ok, reply);
	json_decref(reply);
	return posture_http_hold(s, c, r, addr, device, seq, ok);
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
	if (!posture_http_join(s))
		return refuse(s, c, "push", addr, NULL, -1, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "storage unavailable");
	rc = s->ops->on_push(s->ctx, r->body ? r->body : "", r->len, sig, &attrs, msg, sizeof(msg));
	if (rc) {
		json_decref(attrs);
		posture_http_part(s, false);
		return refuse(s, c, "push", addr, NULL, -1,
			      (rc >= 400 && rc <= 499) || rc == MHD_HTTP_SERVICE_UNAVAILABLE ?
			      (unsigned)rc : MHD_HTTP_UNPROCESSABLE_CONTENT,
			      msg[0] ? msg : "push refused");
	}
	n = store_attrs(s, attrs, msg, sizeof(msg));
	json_decref(attrs);
	posture_http_part(s, n >= 0);
	if (n < 0 && s->ops->on_undo)
		s->ops->on_undo(s->ctx);
	if (n < 0) {
		log_warnx("posture %s: push from %s: %s", l->name, addr, msg);
		return refuse(s, c, "push", addr, NULL, -1, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	return posture_http_hold(s, c, r, addr, NULL, -1,
		    json_pack("{s:b, s:i}", "accepted", 1, "stored", n));
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

enum MHD_Result posture_http_handle(void *cls, struct MHD_Connection *c, const char *url,
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

void posture_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
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
