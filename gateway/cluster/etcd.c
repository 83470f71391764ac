/* The etcd v3 client: the queue to the loop, the worker, requests, leases
 * (etcd.h); watches are in etcd_watch.c. */
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

#include "gateway/cluster/etcd_int.h"

#define MAX_REQ_VAL	(1536u << 10)	/* etcd's --max-request-bytes default */
#define PROBE_DOWN_MS	500	/* while down (or not known yet): a probe this often */

/* ---- the queue to the loop ---- */

void xbe_post(struct xb_etcd *e, struct item *it)
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

void xbe_set_state(struct xb_etcd *e, bool up, const char *why)
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
	xbe_post(e, it);
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

struct curl_slist *xbe_json_headers(bool hasleader)
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

/* TLS on a handle: verify the member's certificate against ca_file alone
 * (CAPATH cleared: libcurl's built-in default would add the system's store)
 * and its name or address; present the client's certificate when given.
 * The CA is read at each new connection (no cache), so a file replaced in
 * place is used from the next connection on. HTTP/1.1 as over http://
 * (ALPN would pick HTTP/2): one protocol, so what a request that failed
 * was sent (CURLINFO_REQUEST_SIZE, xbe_call's resend rule) means the same. */
static void easy_tls(const struct xb_etcd *e, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 0L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (e->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
	}
}

/* With TLS 1.3 a member checks the client's certificate after the
 * handshake: one it refuses shows here as a reset or an alert while
 * sending or reading, not as a handshake failure. Said so in the message. */
const char *xbe_tls_hint(const struct xb_etcd *e, CURLcode cc)
{
	if (!e->ca_file)
		return "";
	switch (cc) {
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
		return e->cert_file ? " (TLS: the member may have refused our client certificate)" :
			" (TLS: the member may require a client certificate: cert_file, key_file)";
	default:
		return "";
	}
}

void xbe_easy_common(const struct xb_etcd *e, CURL *h, struct curl_slist *hdrs)
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
	if (e->ca_file)
		easy_tls(e, h);
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
int xbe_call(struct xb_etcd *e, CURL *h, const char *path, const char *body,
		enum xbe_kind kind, bool resend_ok, struct xbe_answer *a, char *msg, size_t msglen)
{
	uint64_t start = clock_mono_ms();
	int first = atomic_load(&e->ep), rc = -ECONNREFUSED;
	char url[512], errbuf[CURL_ERROR_SIZE];
	size_t i;

	memset(a, 0, sizeof(*a));
	snprintf(msg, msglen, "no member answered");
	for (i = 0; i < e->n_eps; i++) {
		int ep = (int)(((first < 0 ? 0 : (size_t)first) + i) % e->n_eps);
		uint64_t spent = clock_mono_ms() - start;
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
			snprintf(msg, msglen, "%s: %.150s%s", e->eps[ep], b.over ? "answer too large" :
				 errbuf[0] ? errbuf : curl_easy_strerror(cc), xbe_tls_hint(e, cc));
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
			atomic_store(&e->last_ok_ms, clock_mono_ms());
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

	rc = xbe_call(e, h, "/v3/kv/range", "{\"key\":\"AA==\",\"count_only\":true}", XBE_RANGE,
		  true, &a, msg, sizeof(msg));
	xbe_answer_free(&a);
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		xbe_set_state(e, false, msg);
	else if (!rc)
		xbe_set_state(e, true, "a member answered");
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
	rc = xbe_call(e, h, "/v3/lease/keepalive", body, XBE_KEEPALIVE, true, &a, msg, sizeof(msg));
	pthread_mutex_lock(&e->mu);
	for (p = &e->leases; (l = *p); p = &l->next) {
		if (l->id != id)
			continue;
		/* Expired or revoked elsewhere: nothing to keep. */
		if ((!rc && a.ttl <= 0) || rc == -ENOENT) {
			*p = l->next;
			free(l);
		}
		break;
	}
	pthread_mutex_unlock(&e->mu);
	xbe_answer_free(&a);
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		xbe_set_state(e, false, msg);
	else if (!rc)
		xbe_set_state(e, true, "lease keepalive answered");
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
	l->due_ms = clock_mono_ms() + (uint64_t)(ttl * 1000 / 3);
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

	rc = xbe_call(e, h, r->path, r->body, r->kind, r->resend_ok, &a, msg, sizeof(msg));
	if (rc == -ETIMEDOUT || rc == -ECONNREFUSED)
		xbe_set_state(e, false, msg);
	else if (!rc)
		xbe_set_state(e, true, "a member answered");
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
	xbe_post(e, it);
}

static void *worker(void *arg)
{
	struct xb_etcd *e = arg;
	struct curl_slist *hdrs = xbe_json_headers(false);
	CURL *h = curl_easy_init();
	uint64_t next, last_probe = 0, t;
	struct timespec ts;
	struct req *r;
	int64_t id;

	if (h)
		xbe_easy_common(e, h, hdrs);
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		t = clock_mono_ms();
		if (!e->rq_head && h && probe_due(e, last_probe) <= t) {
			e->busy = true;
			pthread_mutex_unlock(&e->mu);
			probe(e, h);
			last_probe = clock_mono_ms();
			pthread_mutex_lock(&e->mu);
			e->busy = false;
			continue;
		}
		if ((id = lease_due(e, t, &next))) {
			e->busy = true;
			pthread_mutex_unlock(&e->mu);
			if (h)
				keepalive_one(e, h, id);
			pthread_mutex_lock(&e->mu);
			e->busy = false;
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
		e->busy = true;
		pthread_mutex_unlock(&e->mu);
		if (h)
			do_req(e, h, r);
		free(r->body);
		free(r);
		pthread_mutex_lock(&e->mu);
		e->busy = false;
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

char *xbe_b64(const char *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s)
		xbe_b64_enc(p, n, s);
	return s;
}

/* json_t string of base64(p[0..n)), or NULL. */
static json_t *jb64(const char *p, size_t n)
{
	char *s = xbe_b64(p, n);
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

bool xbe_key_ok(const char *key, size_t klen)
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
	if (!xbe_key_ok(key, klen) || vlen > MAX_REQ_VAL || (vlen && !val))
		return -EINVAL;
	return enqueue(e, "/v3/kv/put", XBE_PUT, put_body(key, klen, val ? val : "", vlen, lease),
		       false, false, cb, ctx);
}

int xb_etcd_delete(struct xb_etcd *e, const char *key, size_t klen, xb_etcd_fn cb, void *ctx)
{
	if (!xbe_key_ok(key, klen))
		return -EINVAL;
	return enqueue(e, "/v3/kv/deleterange", XBE_DELETE,
		       json_pack("{s:o}", "key", jb64(key, klen)), false, false, cb, ctx);
}

json_t *xbe_range_body(const char *key, size_t klen, bool prefix)
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
	if (!xbe_key_ok(key, klen))
		return -EINVAL;
	return enqueue(e, "/v3/kv/range", XBE_RANGE, xbe_range_body(key, klen, prefix), true, false,
		       cb, ctx);
}

/* compare: mod_revision == mod_rev, or version == 0 (absent) for mod_rev 0.
 * success: put; failure: range of the key, so the caller sees what won. */
int xb_etcd_cas(struct xb_etcd *e, const char *key, size_t klen, int64_t mod_rev,
		const char *val, size_t vlen, int64_t lease, xb_etcd_fn cb, void *ctx)
{
	json_t *cmp;

	if (!xbe_key_ok(key, klen) || vlen > MAX_REQ_VAL || (vlen && !val) || mod_rev < 0)
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
				 "failure", "request_range", xbe_range_body(key, klen, false)),
		       false, false, cb, ctx);
}

/* compare: mod_revision == mod_rev; success: delete the key; failure: range
 * of the key, so the caller sees what is there now. */
int xb_etcd_cad(struct xb_etcd *e, const char *key, size_t klen, int64_t mod_rev, xb_etcd_fn cb,
		void *ctx)
{
	json_t *cmp;

	if (!xbe_key_ok(key, klen) || mod_rev < 1)
		return -EINVAL;
	cmp = json_pack("{s:o, s:s, s:s, s:o}", "key", jb64(key, klen), "target", "MOD",
			"result", "EQUAL", "mod_revision", jint(mod_rev));
	return enqueue(e, "/v3/kv/txn", XBE_TXN,
		       json_pack("{s:[o], s:[{s:o}], s:[{s:o}]}", "compare", cmp,
				 "success", "request_delete_range", json_pack("{s:o}", "key", jb64(key, klen)),
				 "failure", "request_range", xbe_range_body(key, klen, false)),
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
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	if (e->efd >= 0)
		close(e->efd);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cond);
	free(e);
}

/* https endpoints all or none; with https a CA, and the client's
 * certificate with its key or neither; with http no TLS files (they would
 * look like protection that is not there). */
static int tls_check(const struct xb_etcd_opts *o, char *err, size_t errlen)
{
	size_t i, n_tls = 0;

	for (i = 0; i < o->n_endpoints; i++)
		n_tls += !strncmp(o->endpoints[i], "https://", 8);
	if (n_tls && n_tls != o->n_endpoints)
		snprintf(err, errlen, "etcd: endpoints mix http:// and https://");
	else if (n_tls && !o->ca_file)
		snprintf(err, errlen, "etcd: https endpoints need a CA file");
	else if (!n_tls && (o->ca_file || o->cert_file || o->key_file))
		snprintf(err, errlen, "etcd: TLS files given for http endpoints");
	else if (!o->cert_file != !o->key_file)
		snprintf(err, errlen, "etcd: a client certificate needs its key, and a key its certificate");
	else
		return 0;
	return -1;
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
	if (tls_check(o, err, errlen) < 0)
		return NULL;
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
	if (o->ca_file && (!(e->ca_file = strdup(o->ca_file)) ||
			   (o->cert_file && !(e->cert_file = strdup(o->cert_file))) ||
			   (o->key_file && !(e->key_file = strdup(o->key_file)))))
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

bool xb_etcd_close_if_idle(struct xb_etcd *e)
{
	bool busy;

	if (!e)
		return true;
	pthread_mutex_lock(&e->mu);
	busy = e->busy || e->n_watches;
	/* The worker starts nothing more, queued or not: it ends after the
	 * request in flight, if any, and the next call joins it. Without this,
	 * a queue of requests to a silent member kept it busy for all of them
	 * in turn (the worker never shows busy == false between two). */
	if (!e->n_watches)
		e->stop = true;
	pthread_mutex_unlock(&e->mu);
	if (!busy)
		xb_etcd_close(e);
	return !busy;
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
		pthread_join(e->watches[i]->th, NULL);
		xbe_watch_free(e->watches[i]);
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
