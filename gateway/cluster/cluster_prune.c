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
 * waits for its answers: the daemon's loop is held for at most
 * XB_CLUSTER_PRUNE_WAIT_MS for the read, as long for the deletes and as
 * long again for a request in flight at the close (its timeout is capped
 * to it): 12 s, under systemd's WatchdogSec (30 s, pinged every 15 s).
 * The data path runs on; the DNS service and the posture endpoint wait.
 */
#include "gateway/cluster/cluster_int.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

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

static uint64_t now_ms(void)
{
	return clock_mono_ns() / NSEC_PER_MSEC;
}

/* The client's callbacks until *done reaches want or the deadline. */
static bool pump(struct xb_etcd *e, uint64_t deadline, const size_t *done, size_t want)
{
	struct pollfd p = { .fd = xb_etcd_fd(e), .events = POLLIN };

	while (*done < want) {
		uint64_t t = now_ms();

		if (t >= deadline)
			return false;
		if (poll(&p, 1, (int)(deadline - t < 100 ? deadline - t : 100)) > 0)
			xb_etcd_dispatch(e);
	}
	return true;
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

struct range_res { size_t done; struct xb_cluster_prune *pr; int err; char msg[200];
		   xb_cluster_prune_in_policy_fn in_policy; void *ctx; };

static void on_range(void *ctx, const struct xb_etcd_result *r)
{
	struct range_res *rr = ctx;

	rr->done = 1;
	if ((rr->err = r->err)) {
		snprintf(rr->msg, sizeof(rr->msg), "%s", r->msg ? r->msg : strerror(-r->err));
		return;
	}
	rr->pr->revision = r->revision;
	for (size_t i = 0; i < r->n_kvs; i++) {
		if ((rr->err = add(rr->pr, &r->kvs[i]))) {
			snprintf(rr->msg, sizeof(rr->msg), "out of memory");
			return;
		}
		judge(rr->pr, &rr->pr->v[rr->pr->n - 1], r->kvs[i].val, r->kvs[i].vlen, rr->in_policy,
		      rr->ctx);
		printable(rr->pr->v[rr->pr->n - 1].why);
	}
}

int xb_cluster_prune_read(struct xb_etcd *e, struct xb_cluster_prune *pr,
			  xb_cluster_prune_in_policy_fn in_policy, void *ctx, char *err, size_t errlen)
{
	struct range_res rr = { .pr = pr, .in_policy = in_policy, .ctx = ctx };
	char key[KEY_MAX];
	int n = snprintf(key, sizeof(key), "%salloc/", pr->prefix);
	int rc;

	if (n < 0 || (size_t)n >= sizeof(key)) {
		snprintf(err, errlen, "the cluster's prefix is too long");
		return -EINVAL;
	}
	if ((rc = xb_etcd_range(e, key, (size_t)n, true, on_range, &rr)) < 0) {
		snprintf(err, errlen, "reading %s: %s", key, strerror(-rc));
		return rc;
	}
	if (!pump(e, now_ms() + pr->wait_ms, &rr.done, 1)) {
		snprintf(err, errlen, "etcd did not answer within %u ms", pr->wait_ms);
		return -ETIMEDOUT;
	}
	if (rr.err)
		snprintf(err, errlen, "etcd: %s", rr.msg);
	return rr.err;
}

struct del_res { struct xb_cluster_prune_key *k; size_t *done; };

static void on_delete(void *ctx, const struct xb_etcd_result *r)
{
	struct del_res *d = ctx;
	struct xb_cluster_prune_key *k = d->k;

	(*d->done)++;
	k->answered = true;
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

int xb_cluster_prune_delete(struct xb_etcd *e, struct xb_cluster_prune *pr)
{
	struct del_res *d = calloc(pr->n ? pr->n : 1, sizeof(*d));
	size_t want = 0, done = 0;
	int rc;

	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < pr->n; i++) {
		struct xb_cluster_prune_key *k = &pr->v[i];

		if (k->what != XB_PRUNE_DELETED)
			continue;
		d[i] = (struct del_res){ k, &done };
		if ((rc = xb_etcd_cad(e, k->key, k->klen, k->mod_rev, on_delete, &d[i])) < 0) {
			k->what = XB_PRUNE_ERROR;
			snprintf(k->why, sizeof(k->why), "not deleted: %s", strerror(-rc));
			continue;
		}
		want++;
	}
	pump(e, now_ms() + pr->wait_ms, &done, want);
	for (size_t i = 0; i < pr->n; i++) {
		struct xb_cluster_prune_key *k = &pr->v[i];

		if (k->what == XB_PRUNE_DELETED && !k->answered) {
			k->what = XB_PRUNE_ERROR;
			snprintf(k->why, sizeof(k->why), "no answer from etcd within %u ms: deleted "
				 "or not, run the prune again", pr->wait_ms);
		}
	}
	/* Callbacks still queued are dropped by the client's close, before d goes. */
	pr->pending = d;
	return 0;
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
	free(pr->pending);
	pr->v = NULL;
	pr->pending = NULL;
	pr->n = pr->cap = 0;
}

static void no_state(void *ctx, bool up, const char *why)
{
	(void)ctx;
	(void)up;
	(void)why;
}

int xb_cluster_prune(const struct xb_cluster_cfg *cfg, bool dry_run,
		     xb_cluster_prune_in_policy_fn in_policy, void *ctx, json_t **result,
		     char *err, size_t errlen)
{
	struct xb_etcd_opts o = {
		.endpoints = (const char *const *)cfg->endpoints, .n_endpoints = cfg->n_endpoints,
		/* Closing the client waits for a request in flight: no longer
		 * than the prune itself waits (the policy allows 60 s). */
		.request_timeout_ms = cfg->request_timeout_ms < XB_CLUSTER_PRUNE_WAIT_MS ?
				      cfg->request_timeout_ms : XB_CLUSTER_PRUNE_WAIT_MS,
		.ca_file = cfg->ca_resolved, .cert_file = cfg->cert_resolved,
		.key_file = cfg->key_resolved,
	};
	struct xb_cluster_prune pr = { .prefix = cfg->prefix, .dry_run = dry_run,
				       .wait_ms = XB_CLUSTER_PRUNE_WAIT_MS };
	struct xb_etcd *e;
	int rc;

	*err = 0;
	if (!(e = xb_etcd_open(&o, no_state, NULL, err, errlen)))
		return -EIO;	/* nothing sent */
	if ((rc = xb_cluster_prune_read(e, &pr, in_policy, ctx, err, errlen))) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, ": nothing deleted");
	} else if (!dry_run) {
		rc = xb_cluster_prune_delete(e, &pr);
	}
	xb_etcd_close(e);
	if (!rc && !(*result = xb_cluster_prune_json(&pr))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	if (rc == -ENOMEM && !*err)
		snprintf(err, errlen, "out of memory");
	xb_cluster_prune_free(&pr);
	return rc;
}
