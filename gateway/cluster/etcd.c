/* The etcd v3 client: threads, members, leases, watches (etcd.h). */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "gateway/cluster/etcd.h"
#include "gateway/cluster/etcd_wire.h"

#define MAX_REQ_VAL	(1536u << 10)	/* etcd's --max-request-bytes default */
#define BACKOFF_MIN_MS	50
#define PROBE_DOWN_MS	500	/* while down (or not known yet): a probe this often */

/* A result or a watch batch or a state change on its way to the loop. */
struct item {
	struct item *next;
	enum { I_RESULT, I_WATCH, I_STATE } kind;
	xb_etcd_fn cb;
	xb_etcd_watch_fn wfn;
	void *ctx;
	int err;
	bool up, resync;
	struct xbe_answer a;
	char msg[256];
};

struct req {
	struct req *next;
	const char *path;
	enum xbe_kind kind;
	char *body;
	bool resend_ok;		/* a read: may go to the next member after a timeout */
	bool keepalive;		/* grant: keep the lease alive */
	xb_etcd_fn cb;
	void *ctx;
};

struct lease {
	struct lease *next;
	int64_t id, ttl;
	uint64_t due_ms;
};

struct buf {
	char *p;
	size_t len, max;
	bool over;
};

struct watch {
	struct xb_etcd *e;
	char *body_key, *body_end;	/* base64 */
	char *prefix;
	size_t plen;
	int64_t next_rev;
	xb_etcd_watch_fn fn;
	void *ctx;
	pthread_t th;
	CURLM *multi;
	struct xbe_stream st;
	atomic_int ep;
	bool created, resync, failed;
	char msg[256];
};

struct xb_etcd {
	char **eps;
	size_t n_eps;
	unsigned req_ms, dial_ms, backoff_max_ms;
	xb_etcd_state_fn state;
	void *state_ctx;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cond;	/* CLOCK_MONOTONIC */
	bool stop;
	int up;			/* -1 unknown, 0 down, 1 up */
	struct req *rq_head, **rq_tail;
	struct item *q_head, **q_tail;
	struct lease *leases;
	atomic_int ep;
	_Atomic uint64_t last_ok_ms;	/* a unary request last succeeded */
	unsigned probe_ms;
	pthread_t worker;
	struct watch *watches[XB_ETCD_MAX_WATCHES];
	size_t n_watches;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the queue to the loop ---- */

static void post(struct xb_etcd *e, struct item *it)
{
	uint64_t one = 1;

	pthread_mutex_lock(&e->mu);
	it->next = NULL;
	*e->q_tail = it;
	e->q_tail = &it->next;
	pthread_mutex_unlock(&e->mu);
	if (write(e->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();	/* an eventfd write fails only on overflow (EAGAIN) */
}

static void set_state(struct xb_etcd *e, bool up, const char *why)
{
	struct item *it;

	pthread_mutex_lock(&e->mu);
	if (e->up == (int)up) {
		pthread_mutex_unlock(&e->mu);
		return;
	}
	e->up = up;
	pthread_mutex_unlock(&e->mu);
	if (!(it = calloc(1, sizeof(*it))))
		return;
	it->kind = I_STATE;
	it->up = up;
	snprintf(it->msg, sizeof(it->msg), "%s", why);
	post(e, it);
}

int xb_etcd_fd(const struct xb_etcd *e)
{
	return e->efd;
}

int xb_etcd_endpoint(const struct xb_etcd *e, bool watch)
{
	if (watch)
		return e->n_watches ? atomic_load(&e->watches[0]->ep) : -1;
	return atomic_load(&e->ep);
}

static void run_item(struct xb_etcd *e, struct item *it)
{
	struct xb_etcd_result r;

	switch (it->kind) {
	case I_STATE:
		if (e->state)
			e->state(e->state_ctx, it->up, it->msg);
		break;
	case I_WATCH:
		it->wfn(it->ctx, it->a.evs, it->a.n_evs, it->resync, it->a.revision);
		break;
	case I_RESULT:
		if (!it->cb)
			break;
		memset(&r, 0, sizeof(r));
		r.err = it->err;
		r.msg = it->msg;
		if (!it->err) {
			r.revision = it->a.revision;
			r.succeeded = it->a.succeeded;
			r.kvs = it->a.kvs;
			r.n_kvs = it->a.n_kvs;
			r.lease_id = it->a.lease_id;
			r.ttl = it->a.ttl;
		}
		it->cb(it->ctx, &r);
		break;
	}
}

void xb_etcd_dispatch(struct xb_etcd *e)
{
	struct item *list, *it;
	uint64_t n;

	if (read(e->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&e->mu);
	list = e->q_head;
	e->q_head = NULL;
	e->q_tail = &e->q_head;
	pthread_mutex_unlock(&e->mu);
	while ((it = list)) {
		list = it->next;
		run_item(e, it);
		xbe_answer_free(&it->a);
		free(it);
	}
}

/* ---- one HTTP exchange ---- */

static size_t collect(char *p, size_t sz, size_t n, void *u)
{
	struct buf *b = u;
	char *np;

	n *= sz;
	if (b->len + n > b->max) {
		b->over = true;
		return 0;
	}
	if (!(np = realloc(b->p, b->len + n + 1)))
		return 0;
	b->p = np;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return n;
}

static struct curl_slist *json_headers(bool hasleader)
{
	struct curl_slist *h = NULL, *n;

	if (!(h = curl_slist_append(NULL, "Content-Type: application/json")))
		return NULL;
	if (!(n = curl_slist_append(h, "Expect:")))
		goto fail;
	h = n;
	if (hasleader) {
		/* grpc-gateway passes Grpc-Metadata-* on as gRPC metadata;
		 * etcd then ends the watch when its member loses the leader. */
		if (!(n = curl_slist_append(h, "Grpc-Metadata-hasleader: true")))
			goto fail;
		h = n;
	}
	return h;
fail:
	curl_slist_free_all(h);
	return NULL;
}

static void easy_common(CURL *h, struct curl_slist *hdrs)
{
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "xborderd");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 2L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 1L);
}

static int grpc_err(int code)
{
	switch (code) {
	case 4:	/* DeadlineExceeded */
	case 14: /* Unavailable */
		return -ETIMEDOUT;
	case 5:	/* NotFound */
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* POSTs body to path, on the members in turn from e->ep (etcd.h has the
 * rule); parses the answer into a. Returns 0 or -errno, msg filled. */
static int call(struct xb_etcd *e, CURL *h, const char *path, const char *body,
		enum xbe_kind kind, bool resend_ok, struct xbe_answer *a, char *msg, size_t msglen)
{
	uint64_t start = now_ms();
	int first = atomic_load(&e->ep), rc = -ECONNREFUSED;
	char url[512], errbuf[CURL_ERROR_SIZE];
	size_t i;

	memset(a, 0, sizeof(*a));
	snprintf(msg, msglen, "no member answered");
	for (i = 0; i < e->n_eps; i++) {
		int ep = (int)(((first < 0 ? 0 : (size_t)first) + i) % e->n_eps);
		uint64_t spent = now_ms() - start;
		struct buf b = { .max = XBE_MAX_BODY };
		long sent = 0;
		long status = 0;
		CURLcode cc;

		if (spent >= e->req_ms)
			break;
		snprintf(url, sizeof(url), "%s%s", e->eps[ep], path);
		errbuf[0] = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(e->req_ms - spent));
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(e->dial_ms < e->req_ms - spent ? e->dial_ms : e->req_ms - spent));
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
		if (cc != CURLE_OK) {
			free(b.p);
			snprintf(msg, msglen, "%s: %s", e->eps[ep], b.over ? "answer too large" :
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
			if (b.over)
				return -EPROTO;
			if (sent > 0 && !resend_ok)
				return cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
			if (sent > 0)
				rc = -ETIMEDOUT;
			continue;
		}
		rc = xbe_parse(b.p ? b.p : "", b.len, kind, a, msg, msglen);
		free(b.p);
		if (rc == 1) {
			rc = grpc_err(a->code);
			xbe_answer_free(a);
			if (a->code == 14)	/* Unavailable: not applied, another member may do */
				continue;
			atomic_store(&e->ep, ep);
			return rc;
		}
		if (!rc && status != 200) {
			xbe_answer_free(a);
			snprintf(msg, msglen, "%s: HTTP status %ld", e->eps[ep], status);
			return -EPROTO;
		}
		if (!rc) {
			atomic_store(&e->ep, ep);
			atomic_store(&e->last_ok_ms, now_ms());
		}
		return rc;
	}
	return rc;
}

/* A quorum read of one key, to learn whether the cluster answers: while
 * up, after probe_ms without a successful request; while down, every
 * PROBE_DOWN_MS. The first runs at open. */
static void probe(struct xb_etcd *e, CURL *h)
{
	struct xbe_answer a;
	char msg[256];
	int rc;

	rc = call(e, h, "/v3/kv/range", "{\"key\":\"AA==\",\"count_only\":true}", XBE_RANGE,
		  true, &a, msg, sizeof(msg));
	xbe_answer_free(&a);
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		set_state(e, false, msg);
	else if (!rc)
		set_state(e, true, "a member answered");
}

/* With e->mu held. */
static uint64_t probe_due(struct xb_etcd *e, uint64_t last_probe)
{
	if (e->up == 1)
		return atomic_load(&e->last_ok_ms) + e->probe_ms;
	return last_probe ? last_probe + PROBE_DOWN_MS : 0;
}

/* ---- the worker: unary requests, lease keepalives ---- */

static void keepalive_one(struct xb_etcd *e, CURL *h, int64_t id)
{
	char body[64], msg[256];
	struct xbe_answer a;
	struct lease **p, *l;
	int rc;

	snprintf(body, sizeof(body), "{\"ID\":\"%" PRId64 "\"}", id);
	rc = call(e, h, "/v3/lease/keepalive", body, XBE_KEEPALIVE, true, &a, msg, sizeof(msg));
	pthread_mutex_lock(&e->mu);
	for (p = &e->leases; (l = *p); p = &l->next) {
		if (l->id != id)
			continue;
		if (!rc && a.ttl <= 0) {	/* expired or revoked elsewhere: nothing to keep */
			*p = l->next;
			free(l);
		}
		break;
	}
	pthread_mutex_unlock(&e->mu);
	xbe_answer_free(&a);
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		set_state(e, false, msg);
	else if (!rc)
		set_state(e, true, "lease keepalive answered");
}

/* With e->mu held: the first lease due now, its id (0: none), and when the
 * next one is due. The due lease's next time is set: ttl/3 from now. */
static int64_t lease_due(struct xb_etcd *e, uint64_t now, uint64_t *next)
{
	struct lease *l;
	int64_t id = 0;

	*next = now + 60000;
	for (l = e->leases; l; l = l->next) {
		if (!id && l->due_ms <= now) {
			id = l->id;
			l->due_ms = now + (uint64_t)(l->ttl * 1000 / 3 > 0 ? l->ttl * 1000 / 3 : 1);
		}
		if (l->due_ms < *next)
			*next = l->due_ms;
	}
	return id;
}

static void add_lease(struct xb_etcd *e, int64_t id, int64_t ttl)
{
	struct lease *l = calloc(1, sizeof(*l));

	if (!l)
		return;
	l->id = id;
	l->ttl = ttl;
	pthread_mutex_lock(&e->mu);
	l->due_ms = now_ms() + (uint64_t)(ttl * 1000 / 3);
	l->next = e->leases;
	e->leases = l;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

static void do_req(struct xb_etcd *e, CURL *h, struct req *r)
{
	struct item *it = calloc(1, sizeof(*it));
	struct xbe_answer a;
	char msg[256];
	int rc;

	rc = call(e, h, r->path, r->body, r->kind, r->resend_ok, &a, msg, sizeof(msg));
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		set_state(e, false, msg);
	else if (!rc)
		set_state(e, true, "a member answered");
	if (!rc && r->kind == XBE_GRANT && r->keepalive)
		add_lease(e, a.lease_id, a.ttl);
	if (!it) {
		xbe_answer_free(&a);
		return;
	}
	it->kind = I_RESULT;
	it->cb = r->cb;
	it->ctx = r->ctx;
	it->err = rc;
	it->a = a;
	snprintf(it->msg, sizeof(it->msg), "%s", rc ? msg : "");
	post(e, it);
}

static void *worker(void *arg)
{
	struct xb_etcd *e = arg;
	struct curl_slist *hdrs = json_headers(false);
	CURL *h = curl_easy_init();
	uint64_t next, last_probe = 0, t;
	struct timespec ts;
	struct req *r;
	int64_t id;

	if (h)
		easy_common(h, hdrs);
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		t = now_ms();
		if (!e->rq_head && h && probe_due(e, last_probe) <= t) {
			pthread_mutex_unlock(&e->mu);
			probe(e, h);
			last_probe = now_ms();
			pthread_mutex_lock(&e->mu);
			continue;
		}
		if ((id = lease_due(e, t, &next))) {
			pthread_mutex_unlock(&e->mu);
			if (h)
				keepalive_one(e, h, id);
			pthread_mutex_lock(&e->mu);
			continue;
		}
		if (!(r = e->rq_head)) {
			if (probe_due(e, last_probe) < next)
				next = probe_due(e, last_probe);
			ts.tv_sec = (time_t)(next / 1000);
			ts.tv_nsec = (long)(next % 1000) * 1000000;
			pthread_cond_timedwait(&e->cond, &e->mu, &ts);
			continue;
		}
		if (!(e->rq_head = r->next))
			e->rq_tail = &e->rq_head;
		pthread_mutex_unlock(&e->mu);
		if (h)
			do_req(e, h, r);
		free(r->body);
		free(r);
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return NULL;
}

/* Queues a request; takes body (a json_t, encoded here). */
static int enqueue(struct xb_etcd *e, const char *path, enum xbe_kind kind, json_t *body,
		   bool resend_ok, bool keepalive, xb_etcd_fn cb, void *ctx)
{
	struct req *r;
	char *s;

	if (!body)
		return -ENOMEM;
	s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s || !(r = calloc(1, sizeof(*r)))) {
		free(s);
		return -ENOMEM;
	}
	r->path = path;
	r->kind = kind;
	r->body = s;
	r->resend_ok = resend_ok;
	r->keepalive = keepalive;
	r->cb = cb;
	r->ctx = ctx;
	pthread_mutex_lock(&e->mu);
	*e->rq_tail = r;
	e->rq_tail = &r->next;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

/* ---- requests ---- */

static char *b64(const char *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s)
		xbe_b64_enc(p, n, s);
	return s;
}

/* json_t string of base64(p[0..n)), or NULL. */
static json_t *jb64(const char *p, size_t n)
{
	char *s = b64(p, n);
	json_t *j = s ? json_string(s) : NULL;

	free(s);
	return j;
}

static json_t *jint(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_string(s);
}

static bool key_ok(const char *key, size_t klen)
{
	return key && klen && klen <= XBE_MAX_KEY;
}

static json_t *put_body(const char *key, size_t klen, const char *val, size_t vlen, int64_t lease)
{
	json_t *o = json_pack("{s:o, s:o}", "key", jb64(key, klen), "value", jb64(val, vlen));

	if (o && lease && json_object_set_new(o, "lease", jint(lease))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int xb_etcd_put(struct xb_etcd *e, const char *key, size_t klen, const char *val, size_t vlen,
		int64_t lease, xb_etcd_fn cb, void *ctx)
{
	if (!key_ok(key, klen) || vlen > MAX_REQ_VAL || (vlen && !val))
		return -EINVAL;
	return enqueue(e, "/v3/kv/put", XBE_PUT, put_body(key, klen, val ? val : "", vlen, lease),
		       false, false, cb, ctx);
}

int xb_etcd_delete(struct xb_etcd *e, const char *key, size_t klen, xb_etcd_fn cb, void *ctx)
{
	if (!key_ok(key, klen))
		return -EINVAL;
	return enqueue(e, "/v3/kv/deleterange", XBE_DELETE,
		       json_pack("{s:o}", "key", jb64(key, klen)), false, false, cb, ctx);
}

static json_t *range_body(const char *key, size_t klen, bool prefix)
{
	char end[XBE_MAX_KEY];
	size_t n;
	json_t *o = json_pack("{s:o}", "key", jb64(key, klen));

	if (o && prefix) {
		n = xbe_prefix_end(key, klen, end);
		if (json_object_set_new(o, "range_end", jb64(end, n))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int xb_etcd_range(struct xb_etcd *e, const char *key, size_t klen, bool prefix, xb_etcd_fn cb, void *ctx)
{
	if (!key_ok(key, klen))
		return -EINVAL;
	return enqueue(e, "/v3/kv/range", XBE_RANGE, range_body(key, klen, prefix), true, false,
		       cb, ctx);
}

/* compare: mod_revision == mod_rev, or version == 0 (absent) for mod_rev 0.
 * success: put; failure: range of the key, so the caller sees what won. */
int xb_etcd_cas(struct xb_etcd *e, const char *key, size_t klen, int64_t mod_rev,
		const char *val, size_t vlen, int64_t lease, xb_etcd_fn cb, void *ctx)
{
	json_t *cmp;

	if (!key_ok(key, klen) || vlen > MAX_REQ_VAL || (vlen && !val) || mod_rev < 0)
		return -EINVAL;
	if (mod_rev)
		cmp = json_pack("{s:o, s:s, s:s, s:o}", "key", jb64(key, klen), "target", "MOD",
				"result", "EQUAL", "mod_revision", jint(mod_rev));
	else
		cmp = json_pack("{s:o, s:s, s:s, s:s}", "key", jb64(key, klen), "target", "VERSION",
				"result", "EQUAL", "version", "0");
	return enqueue(e, "/v3/kv/txn", XBE_TXN,
		       json_pack("{s:[o], s:[{s:o}], s:[{s:o}]}", "compare", cmp,
				 "success", "request_put", put_body(key, klen, val ? val : "", vlen, lease),
				 "failure", "request_range", range_body(key, klen, false)),
		       false, false, cb, ctx);
}

int xb_etcd_lease_grant(struct xb_etcd *e, int64_t ttl, bool keepalive, xb_etcd_fn cb, void *ctx)
{
	if (ttl < 1)
		return -EINVAL;
	return enqueue(e, "/v3/lease/grant", XBE_GRANT, json_pack("{s:o}", "TTL", jint(ttl)),
		       false, keepalive, cb, ctx);
}

int xb_etcd_lease_revoke(struct xb_etcd *e, int64_t lease, xb_etcd_fn cb, void *ctx)
{
	struct lease **p, *l;

	pthread_mutex_lock(&e->mu);
	for (p = &e->leases; (l = *p); p = &l->next)
		if (l->id == lease) {
			*p = l->next;
			free(l);
			break;
		}
	pthread_mutex_unlock(&e->mu);
	return enqueue(e, "/v3/lease/revoke", XBE_REVOKE, json_pack("{s:o}", "ID", jint(lease)),
		       false, false, cb, ctx);
}

/* ---- watches ---- */

static void post_watch(struct watch *w, struct xbe_answer *a, bool resync)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it) {
		xbe_answer_free(a);
		return;
	}
	it->kind = I_WATCH;
	it->wfn = w->fn;
	it->ctx = w->ctx;
	it->resync = resync;
	it->a = *a;
	memset(a, 0, sizeof(*a));
	post(w->e, it);
}

/* One watch response. Non-zero ends the stream. */
static int on_msg(void *arg, const char *obj, size_t len)
{
	struct watch *w = arg;
	struct xbe_answer a;
	size_t i;
	int rc;

	rc = xbe_parse(obj, len, XBE_WATCH, &a, w->msg, sizeof(w->msg));
	if (rc) {
		xbe_answer_free(&a);
		w->failed = true;
		return 1;
	}
	if (a.compact_rev) {
		snprintf(w->msg, sizeof(w->msg), "revision %" PRId64 " compacted (at %" PRId64 ")",
			 w->next_rev, a.compact_rev);
		w->resync = true;
		xbe_answer_free(&a);
		return 1;
	}
	if (a.created) {
		w->created = true;
		if (!w->next_rev)
			w->next_rev = a.revision + 1;
		set_state(w->e, true, "watch created");
	}
	if (a.canceled) {
		snprintf(w->msg, sizeof(w->msg), "watch canceled by etcd");
		xbe_answer_free(&a);
		return 1;
	}
	for (i = 0; i < a.n_evs; i++)
		if (a.evs[i].kv.mod_rev >= w->next_rev)
			w->next_rev = a.evs[i].kv.mod_rev + 1;
	if (a.n_evs)
		post_watch(w, &a, false);
	xbe_answer_free(&a);
	return 0;
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct watch *w = arg;
	int rc;

	rc = xbe_stream_feed(&w->st, p, sz * n, on_msg, w, w->msg, sizeof(w->msg));
	if (rc < 0)
		w->failed = true;
	return rc ? 0 : sz * n;
}

static bool stopping(struct xb_etcd *e)
{
	bool s;

	pthread_mutex_lock(&e->mu);
	s = e->stop;
	pthread_mutex_unlock(&e->mu);
	return s;
}

/* One stream on member ep until it ends; true when it was created. */
static bool stream(struct watch *w, CURL *h, int ep)
{
	struct xb_etcd *e = w->e;
	char url[512], *body, start[48] = "";
	uint64_t t0 = now_ms();
	CURLMsg *m;
	int running = 1, left;

	if (w->next_rev)
		snprintf(start, sizeof(start), ",\"start_revision\":\"%" PRId64 "\"", w->next_rev);
	if (asprintf(&body, "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\"%s}}",
		     w->body_key, w->body_end, start) < 0) {
		snprintf(w->msg, sizeof(w->msg), "out of memory");
		return false;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", e->eps[ep]);
	atomic_store(&w->ep, ep);
	xbe_stream_reset(&w->st);
	w->created = w->failed = false;
	snprintf(w->msg, sizeof(w->msg), "%s: stream ended", e->eps[ep]);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
	free(body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->dial_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
	curl_multi_add_handle(w->multi, h);
	while (running && !stopping(e)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		while ((m = curl_multi_info_read(w->multi, &left)))
			if (m->msg == CURLMSG_DONE && m->data.result != CURLE_OK && !w->failed &&
			    !w->resync)
				snprintf(w->msg, sizeof(w->msg), "%s: %s", e->eps[ep],
					 curl_easy_strerror(m->data.result));
		if (!running)
			break;
		/* Created within the request timeout, or the member is no use. */
		if (!w->created && now_ms() - t0 > e->req_ms) {
			snprintf(w->msg, sizeof(w->msg), "%s: watch not created in %u ms",
				 e->eps[ep], e->req_ms);
			break;
		}
		curl_multi_poll(w->multi, NULL, 0, 200, NULL);
	}
	curl_multi_remove_handle(w->multi, h);
	return w->created;
}

/* The revision to resume from is gone: read the whole prefix, hand it over as
 * a resync, go on from its revision. */
static void resync(struct watch *w, CURL *h)
{
	struct xb_etcd *e = w->e;
	struct xbe_answer a;
	char msg[256], *body;
	json_t *j = range_body(w->prefix, w->plen, true);
	size_t i;
	int rc;

	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!body)
		return;
	rc = call(e, h, "/v3/kv/range", body, XBE_RANGE, true, &a, msg, sizeof(msg));
	free(body);
	if (rc) {
		xbe_answer_free(&a);
		snprintf(w->msg, sizeof(w->msg), "resync: %.200s", msg);
		return;
	}
	/* Deliver the kvs as PUT events. */
	if (a.n_kvs && !(a.evs = calloc(a.n_kvs, sizeof(*a.evs)))) {
		xbe_answer_free(&a);
		return;
	}
	for (i = 0; i < a.n_kvs; i++) {
		a.evs[i].type = XB_ETCD_PUT;
		a.evs[i].kv = a.kvs[i];
	}
	a.n_evs = a.n_kvs;
	free(a.kvs);
	a.kvs = NULL;
	a.n_kvs = 0;
	w->next_rev = a.revision + 1;
	w->resync = false;
	post_watch(w, &a, true);
}

static void *watcher(void *arg)
{
	struct watch *w = arg;
	struct xb_etcd *e = w->e;
	struct curl_slist *hdrs = json_headers(true), *uhdrs = json_headers(false);
	CURL *h = curl_easy_init(), *u = curl_easy_init();
	unsigned backoff = BACKOFF_MIN_MS, fails = 0;
	int ep = atomic_load(&e->ep);
	struct timespec ts;
	uint64_t until;

	if (!h || !u || !hdrs || !uhdrs)
		goto out;
	easy_common(h, hdrs);
	easy_common(u, uhdrs);
	ep = ep < 0 ? 0 : ep;
	while (!stopping(e)) {
		if (stream(w, h, ep)) {
			backoff = BACKOFF_MIN_MS;
			fails = 0;
		} else {
			fails++;
		}
		if (w->resync) {
			resync(w, u);
			if (!w->resync)
				continue;
		}
		if (stopping(e))
			break;
		ep = (ep + 1) % (int)e->n_eps;
		if (fails < e->n_eps)
			continue;	/* try every member before waiting */
		set_state(e, false, w->msg);
		until = now_ms() + backoff;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000;
		pthread_mutex_lock(&e->mu);
		if (!e->stop)
			pthread_cond_timedwait(&e->cond, &e->mu, &ts);
		pthread_mutex_unlock(&e->mu);
		backoff = backoff * 2 > e->backoff_max_ms ? e->backoff_max_ms : backoff * 2;
		fails = 0;
	}
out:
	curl_easy_cleanup(h);
	curl_easy_cleanup(u);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(uhdrs);
	return NULL;
}

int xb_etcd_watch(struct xb_etcd *e, const char *prefix, size_t plen, int64_t start,
		  xb_etcd_watch_fn fn, void *ctx)
{
	char end[XBE_MAX_KEY];
	struct watch *w;
	size_t n;

	if (!key_ok(prefix, plen) || start < 0 || !fn)
		return -EINVAL;
	if (e->n_watches == XB_ETCD_MAX_WATCHES)
		return -ENOSPC;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	n = xbe_prefix_end(prefix, plen, end);
	w->e = e;
	w->prefix = malloc(plen);
	w->body_key = b64(prefix, plen);
	w->body_end = b64(end, n);
	w->multi = curl_multi_init();
	if (!w->prefix || !w->body_key || !w->body_end || !w->multi)
		goto fail;
	memcpy(w->prefix, prefix, plen);
	w->plen = plen;
	w->next_rev = start;
	w->fn = fn;
	w->ctx = ctx;
	atomic_init(&w->ep, -1);
	xbe_stream_init(&w->st, XBE_MAX_MSG);
	if (pthread_create(&w->th, NULL, watcher, w))
		goto fail;
	e->watches[e->n_watches++] = w;
	return 0;
fail:
	curl_multi_cleanup(w->multi);
	free(w->prefix);
	free(w->body_key);
	free(w->body_end);
	free(w);
	return -ENOMEM;
}

/* ---- open, close ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_client(struct xb_etcd *e)
{
	size_t i;

	for (i = 0; i < e->n_eps; i++)
		free(e->eps[i]);
	free(e->eps);
	if (e->efd >= 0)
		close(e->efd);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cond);
	free(e);
}

struct xb_etcd *xb_etcd_open(const struct xb_etcd_opts *o, xb_etcd_state_fn state, void *ctx,
			     char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct xb_etcd *e;
	size_t i;

	if (!o->n_endpoints || !o->endpoints) {
		snprintf(err, errlen, "etcd: no endpoints");
		return NULL;
	}
	for (i = 0; i < o->n_endpoints; i++)
		if (!o->endpoints[i] || (strncmp(o->endpoints[i], "http://", 7) &&
					 strncmp(o->endpoints[i], "https://", 8)) ||
		    strlen(o->endpoints[i]) > 300) {
			snprintf(err, errlen, "etcd: endpoint `%.300s' is not an http(s) URL",
				 o->endpoints[i] ? o->endpoints[i] : "(null)");
			return NULL;
		}
	pthread_once(&curl_once, curl_init);
	if (!(e = calloc(1, sizeof(*e)))) {
		snprintf(err, errlen, "etcd: out of memory");
		return NULL;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->eps = calloc(o->n_endpoints, sizeof(*e->eps));
	if (e->efd < 0 || !e->eps)
		goto fail;
	for (i = 0; i < o->n_endpoints; i++, e->n_eps++)
		if (!(e->eps[i] = strdup(o->endpoints[i])))
			goto fail;
	/* No trailing slash: paths are appended. */
	for (i = 0; i < e->n_eps; i++)
		while (strlen(e->eps[i]) > 8 && e->eps[i][strlen(e->eps[i]) - 1] == '/')
			e->eps[i][strlen(e->eps[i]) - 1] = 0;
	e->req_ms = o->request_timeout_ms ? o->request_timeout_ms : 1000;
	e->dial_ms = o->dial_timeout_ms ? o->dial_timeout_ms : 500;
	e->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 2000;
	e->probe_ms = o->probe_interval_ms ? o->probe_interval_ms : 3000;
	if (e->backoff_max_ms < BACKOFF_MIN_MS)
		e->backoff_max_ms = BACKOFF_MIN_MS;
	e->state = state;
	e->state_ctx = ctx;
	e->up = -1;
	e->rq_tail = &e->rq_head;
	e->q_tail = &e->q_head;
	atomic_init(&e->ep, -1);
	if (pthread_create(&e->worker, NULL, worker, e))
		goto fail;
	return e;
fail:
	snprintf(err, errlen, "etcd: %s", strerror(errno ? errno : ENOMEM));
	free_client(e);
	return NULL;
}

void xb_etcd_close(struct xb_etcd *e)
{
	struct item *it;
	struct lease *l;
	struct req *r;
	size_t i;

	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
	for (i = 0; i < e->n_watches; i++)
		curl_multi_wakeup(e->watches[i]->multi);
	pthread_join(e->worker, NULL);
	for (i = 0; i < e->n_watches; i++) {
		struct watch *w = e->watches[i];

		pthread_join(w->th, NULL);
		curl_multi_cleanup(w->multi);
		xbe_stream_free(&w->st);
		free(w->prefix);
		free(w->body_key);
		free(w->body_end);
		free(w);
	}
	while ((r = e->rq_head)) {
		e->rq_head = r->next;
		free(r->body);
		free(r);
	}
	while ((it = e->q_head)) {
		e->q_head = it->next;
		xbe_answer_free(&it->a);
		free(it);
	}
	while ((l = e->leases)) {
		e->leases = l->next;
		free(l);
	}
	free_client(e);
}
