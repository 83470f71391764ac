/* The etcd client's watches: one HTTP stream each, on a thread of its own
 * (etcd.h, xb_etcd_watch; docs/ha.md, "The etcd client"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/cluster/etcd_int.h"

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
	xbe_post(w->e, it);
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
		xbe_set_state(w->e, true, "watch created");
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
	uint64_t t0 = clock_mono_ms();
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
	w->errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->dial_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
	curl_multi_add_handle(w->multi, h);
	while (running && !stopping(e)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		while ((m = curl_multi_info_read(w->multi, &left)))
			if (m->msg == CURLMSG_DONE && m->data.result != CURLE_OK && !w->failed &&
			    !w->resync)
				snprintf(w->msg, sizeof(w->msg), "%s: %.150s%s", e->eps[ep],
					 w->errbuf[0] ? w->errbuf : curl_easy_strerror(m->data.result),
					 xbe_tls_hint(e, m->data.result));
		if (!running)
			break;
		/* Created within the request timeout, or the member is no use. */
		if (!w->created && clock_mono_ms() - t0 > e->req_ms) {
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
	json_t *j = xbe_range_body(w->prefix, w->plen, true);
	size_t i;
	int rc;

	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!body)
		return;
	rc = xbe_call(e, h, "/v3/kv/range", body, XBE_RANGE, true, &a, msg, sizeof(msg));
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
	struct curl_slist *hdrs = xbe_json_headers(true), *uhdrs = xbe_json_headers(false);
	CURL *h = curl_easy_init(), *u = curl_easy_init();
	unsigned backoff = BACKOFF_MIN_MS, fails = 0, nocreate = 0;
	int ep = atomic_load(&e->ep);
	struct timespec ts;
	uint64_t until;

	if (!h || !u || !hdrs || !uhdrs)
		goto out;
	xbe_easy_common(e, h, hdrs);
	xbe_easy_common(e, u, uhdrs);
	ep = ep < 0 ? 0 : ep;
	while (!stopping(e)) {
		uint64_t t0 = clock_mono_ms();

		/* A stream that was created and lasted resets the backoff; one
		 * that ended within a second counts as a failure, so a member
		 * that accepts and drops watches is not hammered. */
		bool created = stream(w, h, ep);

		if (created && clock_mono_ms() - t0 >= 1000) {
			backoff = BACKOFF_MIN_MS;
			fails = nocreate = 0;
		} else {
			fails++;
			nocreate = created ? 0 : nocreate + 1;
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
		if (nocreate >= e->n_eps)	/* no member would take it */
			xbe_set_state(e, false, w->msg);
		until = clock_mono_ms() + backoff;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000;
		pthread_mutex_lock(&e->mu);
		if (!e->stop)
			pthread_cond_timedwait(&e->cond, &e->mu, &ts);
		pthread_mutex_unlock(&e->mu);
		backoff = backoff * 2 > e->backoff_max_ms ? e->backoff_max_ms : backoff * 2;
		fails = nocreate = 0;
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

	if (!xbe_key_ok(prefix, plen) || start < 0 || !fn)
		return -EINVAL;
	if (e->n_watches == XB_ETCD_MAX_WATCHES)
		return -ENOSPC;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	n = xbe_prefix_end(prefix, plen, end);
	w->e = e;
	w->prefix = malloc(plen);
	w->body_key = xbe_b64(prefix, plen);
	w->body_end = xbe_b64(end, n);
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
	xbe_watch_free(w);
	return -ENOMEM;
}

/* After its thread has ended (or never started). */
void xbe_watch_free(struct watch *w)
{
	curl_multi_cleanup(w->multi);
	xbe_stream_free(&w->st);
	free(w->prefix);
	free(w->body_key);
	free(w->body_end);
	free(w);
}

