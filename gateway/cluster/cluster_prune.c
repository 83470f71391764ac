/* `xborderctl cluster prune' (cluster.h, docs/ha.md "Pool allocations").
 *
 * No gateway deletes an alloc/ key on its own: during a rollout policies
 * differ, and one gateway cannot know a device is gone everywhere. The
 * operator, once every gateway's policy has dropped the device, asks one
 * gateway to delete the keys naming devices its running policy does not
 * have. Each delete is a compare-and-delete at the mod_revision the read
 * saw: a key re-written meanwhile (another gateway just gave the address
 * to a device of its policy) stays. Keys or values that do not decode are
 * hostile: reported and left alone.
 *
 * The command runs on a client of its own, so that the cluster's copy and
 * its callbacks see only the watch's events (the deletes among them), and
 * never waits: it is a state machine the daemon's loop drives (read, judge,
 * compare-and-deletes, answer), its client's fd and a timerfd for its
 * deadlines in one epoll fd of its own that nests in the loop's set. The
 * read has XB_CLUSTER_PRUNE_WAIT_MS, the deletes as long again; then the
 * answer goes (the control request was deferred: control.h) and the
 * client closes as soon as its worker is between requests — never from a
 * point where xb_etcd_close() would wait for a request in flight, except
 * at the daemon's shutdown (xb_cluster_prune_close: the request timeout,
 * capped to the wait, bounds it). Devices are judged when the read's
 * answer arrives, against the policy running then (in_policy asks it).
 */
#include "gateway/cluster/cluster_int.h"
#include "common/clock.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

static const char *const what_names[] = { "deleted", "would_delete", "kept", "changed", "error" };

/* A hostile key or value for a line of output: bytes outside printable
 * ASCII as '?', at most 200 of them. */
static char *clean(const char *s, size_t n)
{
	char *o = malloc((n > 200 ? 200 : n) + 1);

	if (!o)
		return NULL;
	n = n > 200 ? 200 : n;
	for (size_t i = 0; i < n; i++)
		o[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	o[n] = 0;
	return o;
}

static int add(struct xb_cluster_prune *pr, const struct xb_etcd_kv *kv)
{
	struct xb_cluster_prune_key *v;

	if (pr->n == pr->cap) {
		size_t cap = pr->cap ? 2 * pr->cap : 32;

		if (!(v = realloc(pr->v, cap * sizeof(*v))))
			return -ENOMEM;
		pr->v = v;
		pr->cap = cap;
	}
	v = &pr->v[pr->n];
	memset(v, 0, sizeof(*v));
	if (!(v->key = malloc(kv->klen + 1)) || !(v->shown = clean(kv->key, kv->klen))) {
		free(v->key);
		return -ENOMEM;
	}
	memcpy(v->key, kv->key, kv->klen + 1);
	v->klen = kv->klen;
	v->mod_rev = kv->mod_rev;
	pr->n++;
	return 0;
}

/* What the prune does with one key: kept when it does not decode or names
 * a device in the policy, else deleted. */
static void judge(struct xb_cluster_prune *pr, struct xb_cluster_prune_key *k, const char *val,
		  size_t vlen, xb_cluster_prune_in_policy_fn in_policy, void *ctx)
{
	struct xb_cluster_kv_key kk;
	struct xb_cluster_kv_alloc a;
	char err[160];

	k->what = XB_PRUNE_KEPT;
	if (xb_cluster_kv_key_parse(pr->prefix, k->key, k->klen, &kk, err, sizeof(err)) < 0 ||
	    (kk.kind != XB_CLUSTER_KV_ALLOC && snprintf(err, sizeof(err), "not an alloc/ key"))) {
		snprintf(k->why, sizeof(k->why), "the key does not decode (%s)", err);
		return;
	}
	if (xb_cluster_kv_alloc_decode(val, vlen, &a, err, sizeof(err)) < 0) {
		snprintf(k->why, sizeof(k->why), "the value does not decode (%s)", err);
		return;
	}
	snprintf(k->device, sizeof(k->device), "%s", a.device);
	snprintf(k->node, sizeof(k->node), "%s", a.node);
	if (in_policy(ctx, a.device)) {
		snprintf(k->why, sizeof(k->why), "device %s is in this gateway's policy", a.device);
		return;
	}
	k->what = pr->dry_run ? XB_PRUNE_WOULD_DELETE : XB_PRUNE_DELETED;
	snprintf(k->why, sizeof(k->why), "device %s is not in this gateway's policy", a.device);
}

/* A decoder's message may quote the hostile bytes (jansson's "near ..."). */
static void printable(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			*s = '?';
}

static void on_range(void *ctx, const struct xb_etcd_result *r)
{
	struct xb_cluster_prune *pr = ctx;

	pr->read_done = true;
	if ((pr->read_err = r->err)) {
		snprintf(pr->read_msg, sizeof(pr->read_msg), "etcd: %s",
			 r->msg ? r->msg : strerror(-r->err));
		return;
	}
	pr->revision = r->revision;
	for (size_t i = 0; i < r->n_kvs; i++) {
		if ((pr->read_err = add(pr, &r->kvs[i]))) {
			snprintf(pr->read_msg, sizeof(pr->read_msg), "out of memory");
			return;
		}
		judge(pr, &pr->v[pr->n - 1], r->kvs[i].val, r->kvs[i].vlen, pr->in_policy, pr->ctx);
		printable(pr->v[pr->n - 1].why);
	}
}

int xb_cluster_prune_read_start(struct xb_etcd *e, struct xb_cluster_prune *pr, char *err,
				size_t errlen)
{
	char key[KEY_MAX];
	int n = snprintf(key, sizeof(key), "%salloc/", pr->prefix);
	int rc;

	if (n < 0 || (size_t)n >= sizeof(key)) {
		snprintf(err, errlen, "the cluster's prefix is too long");
		return -EINVAL;
	}
	if ((rc = xb_etcd_range(e, key, (size_t)n, true, on_range, pr)) < 0) {
		snprintf(err, errlen, "reading %s: %s", key, strerror(-rc));
		return rc;
	}
	return 0;
}

static void on_delete(void *ctx, const struct xb_etcd_result *r)
{
	struct xb_cluster_prune_key *k = ctx;

	k->owner->cads_done++;
	k->answered = true;
	if (k->what != XB_PRUNE_DELETED)
		return;		/* given up on (xb_cluster_prune_unanswered) */
	if (r->err) {
		k->what = XB_PRUNE_ERROR;
		snprintf(k->why, sizeof(k->why), "not deleted: etcd: %s",
			 r->msg ? r->msg : strerror(-r->err));
	} else if (!r->succeeded) {
		k->what = XB_PRUNE_CHANGED;
		snprintf(k->why, sizeof(k->why), "not deleted: %s since it was read (revision %lld)",
			 r->n_kvs ? "written again" : "deleted by someone else", (long long)k->mod_rev);
	}
}

void xb_cluster_prune_delete_start(struct xb_etcd *e, struct xb_cluster_prune *pr)
{
	int rc;

	for (size_t i = 0; i < pr->n; i++) {
		struct xb_cluster_prune_key *k = &pr->v[i];

		if (k->what != XB_PRUNE_DELETED)
			continue;
		k->owner = pr;
		if ((rc = xb_etcd_cad(e, k->key, k->klen, k->mod_rev, on_delete, k)) < 0) {
			k->what = XB_PRUNE_ERROR;
			snprintf(k->why, sizeof(k->why), "not deleted: %s", strerror(-rc));
			continue;
		}
		pr->cads_sent++;
	}
}

void xb_cluster_prune_unanswered(struct xb_cluster_prune *pr)
{
	for (size_t i = 0; i < pr->n; i++) {
		struct xb_cluster_prune_key *k = &pr->v[i];

		if (k->what == XB_PRUNE_DELETED && !k->answered) {
			k->what = XB_PRUNE_ERROR;
			snprintf(k->why, sizeof(k->why), "no answer from etcd within %u ms: deleted "
				 "or not, run the prune again", pr->wait_ms);
		}
	}
}

json_t *xb_cluster_prune_json(const struct xb_cluster_prune *pr)
{
	json_t *keys = json_array(), *o;
	size_t count[5] = { 0 };

	for (size_t i = 0; keys && i < pr->n; i++) {
		const struct xb_cluster_prune_key *k = &pr->v[i];

		count[k->what]++;
		o = json_pack("{s:s, s:s, s:s, s:I}", "key", k->shown, "action", what_names[k->what],
			      "reason", k->why, "mod_revision", (json_int_t)k->mod_rev);
		if (o && *k->device) {
			json_object_set_new(o, "device", json_string(k->device));
			json_object_set_new(o, "node", json_string(k->node));
		}
		if (!o || json_array_append_new(keys, o)) {
			json_decref(keys);
			return NULL;
		}
	}
	if (!keys)
		return NULL;
	return json_pack("{s:b, s:I, s:o, s:I, s:I, s:I, s:I, s:I}", "dry_run", pr->dry_run,
			 "revision", (json_int_t)pr->revision, "keys", keys,
			 "deleted", (json_int_t)count[XB_PRUNE_DELETED],
			 "would_delete", (json_int_t)count[XB_PRUNE_WOULD_DELETE],
			 "kept", (json_int_t)count[XB_PRUNE_KEPT],
			 "changed", (json_int_t)count[XB_PRUNE_CHANGED],
			 "errors", (json_int_t)count[XB_PRUNE_ERROR]);
}

void xb_cluster_prune_free(struct xb_cluster_prune *pr)
{
	for (size_t i = 0; i < pr->n; i++) {
		free(pr->v[i].key);
		free(pr->v[i].shown);
	}
	free(pr->v);
	pr->v = NULL;
	pr->n = pr->cap = 0;
}

static void no_state(void *ctx, bool up, const char *why)
{
	(void)ctx;
	(void)up;
	(void)why;
}

/* --- the prune as the daemon's loop drives it ------------------------------ */

enum op_state { OP_READ, OP_DELETE, OP_CLOSING, OP_DONE };
enum { TAG_ETCD, TAG_TIMER };
#define CLOSE_RETRY_MS 100	/* while the client's worker is inside a request */

struct xb_cluster_prune_op {
	struct xb_etcd *e;
	struct xb_cluster_prune pr;
	char *prefix;		/* a copy: a reload may free the policy's */
	int epfd, tfd;
	enum op_state state;
	uint64_t deadline_ms;	/* of the read, then of the deletes (monotonic) */
	xb_cluster_prune_done_fn done;
	void *done_ctx;
};

static void arm(struct xb_cluster_prune_op *op)
{
	uint64_t at = op->state == OP_CLOSING ? clock_mono_ms() + CLOSE_RETRY_MS : op->deadline_ms;
	struct itimerspec its = { .it_value = clock_ts(at * NSEC_PER_MSEC) };

	if (op->state == OP_DONE)
		its.it_value = (struct timespec){ 0, 0 };
	timerfd_settime(op->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void try_close(struct xb_cluster_prune_op *op)
{
	if (xb_etcd_close_if_idle(op->e)) {
		op->e = NULL;
		op->state = OP_DONE;
	}
}

/* The answer, once; then the client closes as soon as that does not wait. */
static void finish(struct xb_cluster_prune_op *op, int rc, const char *err)
{
	char msg[320];
	json_t *result = NULL;

	if (!rc && !(result = xb_cluster_prune_json(&op->pr))) {
		rc = -ENOMEM;
		err = "out of memory";
	}
	snprintf(msg, sizeof(msg), "%s", err ? err : "");
	op->state = OP_CLOSING;
	op->done(op->done_ctx, rc, result, msg);
	try_close(op);
}

static void step(struct xb_cluster_prune_op *op)
{
	struct xb_cluster_prune *pr = &op->pr;
	char msg[320];
	bool late = clock_mono_ms() >= op->deadline_ms;

	switch (op->state) {
	case OP_READ:
		if (pr->read_done && pr->read_err) {
			snprintf(msg, sizeof(msg), "%s: nothing deleted", pr->read_msg);
			finish(op, pr->read_err, msg);
		} else if (pr->read_done) {
			if (!pr->dry_run)
				xb_cluster_prune_delete_start(op->e, pr);
			op->state = OP_DELETE;
			op->deadline_ms = clock_mono_ms() + pr->wait_ms;
			step(op);
		} else if (late) {
			snprintf(msg, sizeof(msg), "etcd did not answer within %u ms: nothing deleted",
				 pr->wait_ms);
			finish(op, -ETIMEDOUT, msg);
		}
		break;
	case OP_DELETE:
		if (pr->cads_done < pr->cads_sent && !late)
			break;
		xb_cluster_prune_unanswered(pr);
		finish(op, 0, NULL);
		break;
	case OP_CLOSING:
		try_close(op);
		break;
	case OP_DONE:
		break;
	}
}

struct xb_cluster_prune_op *xb_cluster_prune_start(const struct xb_cluster_cfg *cfg, bool dry_run,
						   unsigned wait_ms,
						   xb_cluster_prune_in_policy_fn in_policy,
						   void *ctx, xb_cluster_prune_done_fn done,
						   void *done_ctx, char *err, size_t errlen)
{
	struct xb_etcd_opts o = {
		.endpoints = (const char *const *)cfg->endpoints, .n_endpoints = cfg->n_endpoints,
		/* A request in flight ends within this, and the client closes
		 * only when none is (the policy allows 60 s). */
		.request_timeout_ms = cfg->request_timeout_ms < wait_ms ? cfg->request_timeout_ms :
				      wait_ms,
		.ca_file = cfg->ca_resolved, .cert_file = cfg->cert_resolved,
		.key_file = cfg->key_resolved,
	};
	struct epoll_event ev = { .events = EPOLLIN };
	struct xb_cluster_prune_op *op = calloc(1, sizeof(*op));
	int rc;

	*err = 0;
	if (!op || !(op->prefix = strdup(cfg->prefix))) {
		free(op);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	op->epfd = op->tfd = -1;
	op->done = done;
	op->done_ctx = done_ctx;
	op->pr = (struct xb_cluster_prune){ .prefix = op->prefix, .dry_run = dry_run,
					    .wait_ms = wait_ms, .in_policy = in_policy, .ctx = ctx };
	op->deadline_ms = clock_mono_ms() + wait_ms;
	if (!(op->e = xb_etcd_open(&o, no_state, NULL, err, errlen)))
		goto fail;	/* nothing sent */
	op->epfd = epoll_create1(EPOLL_CLOEXEC);
	op->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ev.data.u32 = TAG_ETCD;
	if (op->epfd < 0 || op->tfd < 0 ||
	    epoll_ctl(op->epfd, EPOLL_CTL_ADD, xb_etcd_fd(op->e), &ev) < 0 ||
	    (ev.data.u32 = TAG_TIMER, epoll_ctl(op->epfd, EPOLL_CTL_ADD, op->tfd, &ev) < 0)) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	if ((rc = xb_cluster_prune_read_start(op->e, &op->pr, err, errlen)) < 0) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, ": nothing deleted");
		goto fail;
	}
	arm(op);
	return op;
fail:
	op->state = OP_DONE;	/* no answer from here: the caller has err */
	xb_cluster_prune_close(op);
	return NULL;
}

int xb_cluster_prune_fd(const struct xb_cluster_prune_op *op)
{
	return op->epfd;
}

void xb_cluster_prune_process(struct xb_cluster_prune_op *op)
{
	struct epoll_event ev[2];
	int n = epoll_wait(op->epfd, ev, 2, 0);
	uint64_t ticks;

	for (int i = 0; i < n; i++) {
		if (ev[i].data.u32 == TAG_TIMER) {
			if (read(op->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				log_warn("cluster prune: timerfd");
		} else if (op->e) {
			xb_etcd_dispatch(op->e);	/* after the answer too: it drains the queue */
		}
	}
	step(op);
	arm(op);
}

bool xb_cluster_prune_finished(const struct xb_cluster_prune_op *op)
{
	return op->state == OP_DONE;
}

void xb_cluster_prune_close(struct xb_cluster_prune_op *op)
{
	if (!op)
		return;
	if (op->state == OP_READ || op->state == OP_DELETE) {
		op->state = OP_CLOSING;
		op->done(op->done_ctx, -ECANCELED, NULL, "xborderd is stopping: the prune was "
			 "cancelled (deletes already sent may have been applied: run it again)");
	}
	xb_etcd_close(op->e);	/* waits for a request in flight: request_timeout_ms at most */
	if (op->epfd >= 0)
		close(op->epfd);
	if (op->tfd >= 0)
		close(op->tfd);
	xb_cluster_prune_free(&op->pr);
	free(op->prefix);
	free(op);
}
