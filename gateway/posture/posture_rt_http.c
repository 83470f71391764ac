/* The posture runtime's side of the HTTP endpoint (the xb_posture_http callbacks)
 * and its views for the control commands. See posture_rt.h. */
#include "gateway/posture/posture_rt_int.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* --- the endpoint's callbacks ------------------------------------------------------- */

static const struct posture_rt_addr *find_addr(const struct posture_rt_addr *v, size_t n, const uint8_t *a,
					size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(a, v[mid].a, len);

		if (!c)
			return &v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* WireGuard admits a packet from the device interface only with the
 * sending peer's own inner address, so the source names the device. */
static const char *device_for(void *ctx, const struct sockaddr *peer)
{
	const struct xb_posture_rt *r = ctx;
	const struct posture_rt_addr *hit = NULL;
	uint8_t a[16] = { 0 };

	if (peer->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
		hit = find_addr(r->by4, r->n4, a, 16);
	} else if (peer->sa_family == AF_INET6) {
		const struct in6_addr *x = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(x)) {
			memcpy(a, &x->s6_addr[12], 4);
			hit = find_addr(r->by4, r->n4, a, 16);
		} else {
			hit = find_addr(r->by6, r->n6, x->s6_addr, 16);
		}
	}
	return hit ? r->dev[hit->dev].name : NULL;
}

static json_t *compliant_json(const struct xb_posture_rt *r, size_t i)
{
	json_t *a = json_array();

	for (size_t k = 0; a && k < r->p->n_profiles; k++)
		if (r->pok[i * r->p->n_profiles + k] == POSTURE_RT_PASS)
			json_array_append_new(a, json_string(r->p->profiles[k].name));
	return a;
}

/* A new entry at the end of the pending list, zeroed; NULL: out of memory. */
static struct posture_rt_pending *pend_add(struct xb_posture_rt *r)
{
	if (r->n_pend == r->cap_pend) {
		size_t c = r->cap_pend ? r->cap_pend * 2 : 16;
		struct posture_rt_pending *v = realloc(r->pend, c * sizeof(*v));

		if (!v)
			return NULL;
		r->pend = v;
		r->cap_pend = c;
	}
	memset(&r->pend[r->n_pend], 0, sizeof(r->pend[0]));
	return &r->pend[r->n_pend++];
}

/* The profiles device i would pass with rep as its report. */
static json_t *would_comply(const struct xb_posture_rt *r, size_t i, const struct xb_report *rep,
			    struct xb_ptime now)
{
	struct xb_posture_state st = r->dev[i].st;	/* a shallow copy, read only */
	json_t *a = json_array();

	st.report = (struct xb_report *)rep;
	st.received = now.boot;
	for (size_t k = 0; a && k < r->p->n_profiles; k++) {
		bool ok;

		xb_posture_eval(&r->p->profiles[k], &st, now, NULL, 0, &ok);
		if (ok)
			json_array_append_new(a, json_string(r->p->profiles[k].name));
	}
	return a;
}

/* Parse and evaluate; the report waits in r->pend until the round's
 * commit, then on_round applies and enforces it before the 200 leaves:
 * the answer means the sets already say what the report does, and a 503
 * means nothing changed. */
static int on_report(void *ctx, const char *device, json_t *report, json_t **reply, char *err,
		     size_t errlen)
{
	struct xb_posture_rt *r = ctx;
	uint64_t t0 = clock_mono_ns();
	size_t i = posture_rt_find(r, device);
	struct xb_report *rep = xb_posture_report_from_json(report, err, errlen);
	struct posture_rt_pending *e;

	if (i == SIZE_MAX || !rep) {
		if (i == SIZE_MAX)
			snprintf(err, errlen, "not a device of the policy");
		xb_posture_report_free(rep);
		return -1;
	}
	if (!(e = pend_add(r))) {
		snprintf(err, errlen, "out of memory");
		xb_posture_report_free(rep);
		return -1;
	}
	*e = (struct posture_rt_pending){ .dev = i, .rep = rep, .t0 = t0 };
	*reply = json_pack("{s:o}", "compliant", would_comply(r, i, rep, posture_rt_now()));
	return 0;
}

json_t *posture_rt_value_json(const struct xb_value *v)
{
	switch (v->type) {
	case XB_VAL_STR:
		return json_string(v->str ? v->str : "");
	case XB_VAL_BOOL:
		return json_boolean(v->b);
	default:
		return json_real(v->num);
	}
}

/* The status for each refusal of a push: a forged or unknown signer, or
 * a time out of the window 403; a replayed nonce 409; a device not in the
 * policy 404; the rest is malformed. */
static const int push_status[] = {
	[XB_MDM_MALFORMED] = 400,
	[XB_MDM_FORBIDDEN] = 403,
	[XB_MDM_REPLAYED] = 409,
	[XB_MDM_NO_DEVICE] = 404,
};

static json_t *push_json(const struct xb_mdm_push *m)
{
	json_t *a = json_array();

	for (size_t k = 0; a && k < m->n_attrs; k++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I, s:s}",
			"device", m->device, "key", m->attrs[k].key,
			"value", posture_rt_value_json(&m->attrs[k].value),
			"expires_at", (json_int_t)m->attrs[k].expires * 1000, "source", m->key->name));
	return a;
}

static int on_push(void *ctx, const char *body, size_t len, const char *sig, json_t **attrs,
		   char *err, size_t errlen)
{
	struct xb_posture_rt *r = ctx;
	struct xb_mdm_push m = { 0 };
	int64_t now = posture_rt_now().wall;
	enum xb_mdm_refusal why;
	size_t i;

	if (!sig) {
		snprintf(err, errlen, "no X-Xborder-Signature header");
		return 401;
	}
	why = xb_posture_mdm_verify(r->p, &r->replay, body, len, sig, now, &m, err, errlen);
	if (why != XB_MDM_OK)
		return push_status[why];
	if ((i = posture_rt_find(r, m.device)) == SIZE_MAX || !(*attrs = push_json(&m))) {
		snprintf(err, errlen, i == SIZE_MAX ? "device: not in the policy" : "out of memory");
		xb_posture_mdm_push_free(&m);
		return i == SIZE_MAX ? 404 : 422;
	}
	/* The nonce goes into the request's savepoint with the attributes:
	 * kept (and so refused after a restart) exactly when they are. */
	struct posture_rt_pending *e = NULL;
	int64_t until = m.until * 1000;
	int rc = xb_posture_store_put_nonce(r->store, m.key->name, m.nonce, until) < 0 ? 503 :
		 !(e = pend_add(r)) ? 422 : 0;

	if (rc) {
		snprintf(err, errlen, rc == 503 ? "storage error" : "out of memory");
		xb_posture_mdm_replay_forget(&r->replay, m.key->name, m.nonce);
		xb_posture_mdm_push_free(&m);
		json_decref(*attrs);
		*attrs = NULL;
		return rc;
	}
	*e = (struct posture_rt_pending){ .dev = i, .push = m };
	return 0;
}

/* After the round's commit: apply its reports and pushes in order, judge
 * each device, then its set changes in one nft batch and its cuts in one
 * conntrack pass (xb_conntrack_cut_many), before the round's answers. The
 * transitions they cause share one transaction. When the commit failed,
 * everything pending is dropped (pushes' nonces forgotten with it). */
static void on_round(void *ctx, bool committed)
{
	struct xb_posture_rt *r = ctx;
	struct xb_ptime now = posture_rt_now();
	bool tx = committed && r->n_pend && xb_posture_store_begin(r->store) == 0;

	for (size_t k = 0; k < r->n_pend; k++) {
		struct posture_rt_pending *e = &r->pend[k];
		struct posture_rt_dev *d = &r->dev[e->dev];

		if (!committed) {
			posture_rt_pending_drop(r, e);
			continue;
		}
		if (e->rep) {
			xb_posture_set_report(&d->st, e->rep, now);
			e->rep = NULL;
			r->stat.reports++;
			posture_rt_arrived(r, e->t0);
		} else {
			if (r->push_fn)
				r->push_fn(r->push_ctx, &e->push);
			if (xb_posture_push(&d->st, &e->push, now.wall) < 0)
				log_warnx("posture: device %s: out of memory merging a push", d->name);
			xb_posture_mdm_push_free(&e->push);
			r->stat.pushes++;
		}
		posture_rt_judge(r, e->dev, now, POSTURE_RT_ALL);
	}
	r->n_pend = 0;
	posture_rt_flush(r);
	if (tx && xb_posture_store_commit(r->store) < 0)
		log_warnx("posture: storing transitions: %s", xb_posture_store_error(r->store));
}

/* The last accepted request's writes were undone: it never happened. */
static void on_undo(void *ctx)
{
	struct xb_posture_rt *r = ctx;

	if (r->n_pend)
		posture_rt_pending_drop(r, &r->pend[--r->n_pend]);
}

/* The cluster's say (docs/ha.md): a report no gateway could apply is
 * refused here, before it can move the cluster's seq high-water. */
static int gate(void *ctx, const char *device, int64_t seq, const char *body, size_t len,
		uint64_t id, char *err, size_t errlen)
{
	struct xb_posture_rt *r = ctx;
	struct xb_report *rep;

	if (!r->gate)
		return 0;
	if (!(rep = xb_posture_report_parse(body, len, err, errlen)))
		return 422;
	xb_posture_report_free(rep);
	return r->gate(r->gate_ctx, device, seq, body, len, id, err, errlen);
}

const struct xb_posture_http_ops posture_rt_ops = { device_for, on_report, on_push, on_round, on_undo,
						    gate };

/* --- listening ------------------------------------------------------------------- */

int xb_posture_rt_listen(struct xb_posture_rt *r)
{
	const struct xb_gateway *g = &r->p->gateway;
	char a4[INET6_ADDRSTRLEN] = "", a6[INET6_ADDRSTRLEN] = "", adm[INET6_ADDRSTRLEN] = "";
	const struct xb_posture_limits *pl = &g->posture_limits;
	char key[sizeof(r->svc_key)];
	struct xb_posture_http_config c = {
		.port = g->posture_port, .ifname = g->interface,
		.rate = pl->rate, .burst = pl->burst, .nonces_per_device = pl->nonces_per_device,
		.conns_per_source = pl->conns_per_source, .header_timeout_s = pl->header_timeout,
		.body_timeout_s = pl->body_timeout,
	};
	size_t n = 0;

	if (g->has_pool4 && inet_ntop(AF_INET, &g->address4, a4, sizeof(a4)))
		c.listen[n++] = a4;
	if (g->has_pool6 && inet_ntop(AF_INET6, &g->address6, a6, sizeof(a6)))
		c.listen[n++] = a6;
	if (g->has_posture_admin &&
	    inet_ntop(g->posture_admin_family, &g->posture_admin_addr, adm, sizeof(adm))) {
		c.admin = adm;
		c.admin_port = g->posture_admin_port;
	}
	/* What the service is opened with: a change reopens it. */
	snprintf(key, sizeof(key), "%s %s %u %s %u %s %u %u %u %u %u %u", a4, a6, c.port, adm,
		 c.admin_port, c.ifname, c.rate, c.burst, c.nonces_per_device, c.conns_per_source,
		 c.header_timeout_s, c.body_timeout_s);
	if (r->svc && !strcmp(key, r->svc_key))
		return 0;
	/* The same ports may be asked for again: the old service goes first
	 * (its unused nonces with it; devices fetch new ones). */
	if (r->svc) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, xb_posture_http_fd(r->svc), NULL);
		xb_posture_http_close(r->svc);
		r->svc_key[0] = '\0';
	}
	if (!(r->svc = xb_posture_http_open(&c, &posture_rt_ops, r, r->store, r->audit)))
		return -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = xb_posture_http_fd(r->svc) };

	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		log_warn("posture: epoll");
		xb_posture_http_close(r->svc);
		r->svc = NULL;
		return -1;
	}
	memcpy(r->svc_key, key, sizeof(key));
	log_info("posture: endpoint on %s%s%s port %u (%s only)%s%s", a4, a4[0] && a6[0] ? " and " : "",
		 a6, c.port, c.ifname, adm[0] ? ", admin on " : "", adm);
	return 0;
}

void xb_posture_rt_interface_remade(struct xb_posture_rt *r)
{
	/* None: a failed reload that renamed the interface reopened the
	 * endpoint before its switch back made the old interface again, and
	 * the bind to the missing name failed. */
	if (!r->svc)
		(void)xb_posture_rt_listen(r);
	else
		xb_posture_http_rebind(r->svc, r->p->gateway.interface);
}

/* --- views ------------------------------------------------------------------------ */

static json_t *age_json(const struct posture_rt_dev *d, struct xb_ptime now)
{
	return d->st.report ? json_integer(now.boot - d->st.received) : json_null();
}

json_t *xb_posture_rt_summary(struct xb_posture_rt *r, size_t i)
{
	struct xb_ptime now = posture_rt_now();
	json_int_t failing = 0;

	if (i >= r->n_dev)
		return json_null();
	for (size_t k = 0; k < r->p->n_profiles; k++) {
		bool ok;
		size_t n = xb_posture_eval(&r->p->profiles[k], &r->dev[i].st, now, r->res,
					   r->n_res, &ok);

		for (size_t c = 0; c < n; c++)
			failing += !r->res[c].report_only &&
				   (r->res[c].outcome == XB_FAIL || r->res[c].outcome == XB_UNKNOWN);
	}
	return json_pack("{s:o, s:I, s:o}", "compliant", compliant_json(r, i),
			 "failing_checks", failing, "report_age", age_json(&r->dev[i], now));
}

static json_t *checks_json(const struct xb_check_result *res, size_t n)
{
	json_t *a = json_array();

	for (size_t c = 0; a && c < n; c++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s}",
			"check", res[c].check ? xb_check_name(res[c].check->kind) : "profile",
			"outcome", xb_outcome_name(res[c].outcome),
			"mode", res[c].report_only ? "report" : "enforce",
			"expected", res[c].expected, "seen", res[c].seen));
	return a;
}

static json_t *attrs_json(const struct xb_posture_state *st, int64_t now)
{
	json_t *a = json_array();

	for (size_t k = 0; a && k < st->n_mdm; k++)
		if (st->mdm[k].expires > now)
			json_array_append_new(a, json_pack("{s:s, s:o, s:I}",
				"key", st->mdm[k].key, "value", posture_rt_value_json(&st->mdm[k].value),
				"expires", (json_int_t)st->mdm[k].expires));
	return a;
}

json_t *xb_posture_rt_detail(struct xb_posture_rt *r, size_t i)
{
	struct xb_ptime now = posture_rt_now();
	const struct posture_rt_dev *d = &r->dev[i];
	json_t *o, *profiles = json_array();

	for (size_t k = 0; profiles && k < r->p->n_profiles; k++) {
		const struct xb_profile *pr = &r->p->profiles[k];
		bool ok;
		size_t n = xb_posture_eval(pr, &d->st, now, r->res, r->n_res, &ok);

		json_array_append_new(profiles, json_pack("{s:s, s:b, s:i, s:o}", "name", pr->name,
			"compliant", ok, "max_age", (int)pr->max_age, "checks", checks_json(r->res, n)));
	}
	o = json_pack("{s:s, s:o, s:o, s:o, s:o}", "device", d->name,
		      "report_age", age_json(d, now),
		      "seq", d->st.report ? json_integer((json_int_t)d->st.report->seq) : json_null(),
		      "profiles", profiles, "attributes", attrs_json(&d->st, now.wall));
	if (o && d->st.report) {
		json_object_set_new(o, "platform",
				    json_string(xb_platform_name((enum xb_platform)d->st.report->platform)));
		/* Display only: the age above is on the boot clock. */
		json_object_set_new(o, "received_at", json_integer(d->st.received_wall));
	}
	return o;
}

/* The enforcement latency below which a share q of reports fell, from the
 * log2 histogram: an upper bound, in microseconds. */
static uint64_t quantile(const struct xb_posture_rt *r, double q)
{
	uint64_t total = 0, seen = 0;

	for (unsigned b = 0; b < POSTURE_RT_LAT_BUCKETS; b++)
		total += r->stat.lat[b];
	for (unsigned b = 0; b < POSTURE_RT_LAT_BUCKETS && total; b++) {
		seen += r->stat.lat[b];
		if ((double)seen >= q * (double)total)
			return (2ULL << b) < r->stat.lat_max_us ? (2ULL << b) : r->stat.lat_max_us;
	}
	return 0;
}

/* What the endpoint's limits refused (docs/operations.md). */
static json_t *limits_json(const struct xb_posture_rt *r)
{
	struct xb_posture_http_stats st = { 0 };

	if (r->svc)
		xb_posture_http_stats(r->svc, &st);
	return json_pack("{s:I, s:I, s:I, s:I}", "rate_limited", (json_int_t)st.limited,
			 "connections_refused", (json_int_t)st.conns_refused,
			 "deadline_closed", (json_int_t)st.deadline_closed,
			 "nonce_table_full", (json_int_t)st.nonce_full);
}

json_t *xb_posture_rt_status(const struct xb_posture_rt *r)
{
	size_t compliant = 0, reported = 0;
	json_t *o;

	for (size_t i = 0; i < r->n_dev; i++) {
		reported += r->dev[i].st.report != NULL;
		for (size_t k = 0; k < r->p->n_profiles; k++)
			if (r->pok[i * r->p->n_profiles + k] == POSTURE_RT_PASS) {
				compliant++;
				break;
			}
	}
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"devices", (json_int_t)r->n_dev, "reported", (json_int_t)reported,
		"compliant", (json_int_t)compliant, "reports", (json_int_t)r->stat.reports,
		"pushes", (json_int_t)r->stat.pushes, "transitions", (json_int_t)r->stat.transitions,
		"cuts", (json_int_t)r->stat.cuts, "cut_entries", (json_int_t)r->stat.cut_entries,
		"set_changes", (json_int_t)r->stat.set_changes,
		"set_errors", (json_int_t)r->stat.set_errors,
		"enforce_p99_us", (json_int_t)quantile(r, 0.99),
		"enforce_max_us", (json_int_t)r->stat.lat_max_us);
	if (o)
		json_object_set_new(o, "limits", limits_json(r));
	return o;
}
