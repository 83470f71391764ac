/* Internals shared by the etcd client's files (etcd.c: queue, worker,
 * requests; etcd_watch.c: watch streams). Not for other modules. */
#ifndef XB_ETCD_INT_H
#define XB_ETCD_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/clock.h"
#include "gateway/cluster/etcd.h"
#include "gateway/cluster/etcd_wire.h"

#define BACKOFF_MIN_MS	50	/* a watch's first wait between rounds of members */

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
	char errbuf[CURL_ERROR_SIZE];	/* libcurl's detail (a TLS failure's reason) */
};

struct xb_etcd {
	char **eps;
	size_t n_eps;
	char *ca_file, *cert_file, *key_file;	/* https: see etcd.h; NULL for http */
	unsigned req_ms, dial_ms, backoff_max_ms;
	xb_etcd_state_fn state;
	void *state_ctx;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cond;	/* CLOCK_MONOTONIC */
	bool stop;
	bool busy;	/* the worker is inside a request, a probe or a keepalive (mu) */
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

void xbe_post(struct xb_etcd *e, struct item *it);
void xbe_set_state(struct xb_etcd *e, bool up, const char *why);
bool xbe_key_ok(const char *key, size_t klen);
char *xbe_b64(const char *p, size_t n);
json_t *xbe_range_body(const char *key, size_t klen, bool prefix);
struct curl_slist *xbe_json_headers(bool hasleader);
const char *xbe_tls_hint(const struct xb_etcd *e, CURLcode cc);
void xbe_easy_common(const struct xb_etcd *e, CURL *h, struct curl_slist *hdrs);
int xbe_call(struct xb_etcd *e, CURL *h, const char *path, const char *body,
	     enum xbe_kind kind, bool resend_ok, struct xbe_answer *a, char *msg, size_t msglen);
void xbe_watch_free(struct watch *w);

#endif
