/* xb-etcdtest: drives gateway/cluster/etcd.c against a real etcd cluster;
 * for tests/net/etcd.sh.
 *
 *   xb-etcdtest -e http://198.51.100.51:2379,... -c CTL [-C CA -E CERT -K KEY] CASE...
 *
 * CASE is kv, cas, lease, watch, resync, failover, quorum, refused, prune. -C, -E
 * and -K: TLS for https:// endpoints (etcd.h, xb_etcd_opts). refused: the
 * members must turn this client away (tests/net/etcd_tls.sh gives it a
 * wrong CA or certificate): a put fails, the state never goes up, and
 * "# refused: MSG" prints libcurl's reason for the caller to check. CTL is the
 * script tests/lib/etcd.sh writes ("CTL kill N", "CTL restart N");
 * failover and quorum kill and restart members through it, resync runs
 * etcdctl to compact. Each case prints "ok - etcd/CASE: what" or
 * "not ok - etcd/CASE: what"; lines starting with '#' are figures.
 * Every wait is bounded; the exit status is 1 when a case failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/cluster/cluster.h"
#include "gateway/cluster/etcd.h"

#define MAX_EPS 8
#define MAX_EVS 4096
#define REQ_MS 1000

static const char *ctl;
static const char *ca_file, *cert_file, *key_file;
static char *eps_str;
static const char *eps[MAX_EPS];
static size_t n_eps;
static int failed;
static const char *cur;		/* the case running */

struct res {
	bool done;
	int err;
	char msg[256];
	int64_t rev, lease_id, ttl;
	bool succeeded;
	size_t n_kvs;
	char key[256], val[256];
	int64_t mod_rev, lease;
	uint64_t at_ms;
};

struct ev {
	enum xb_etcd_ev_type type;
	char key[64], val[64];
	int64_t mod_rev;
	uint64_t at_ms;
};

struct evlog {
	struct ev ev[MAX_EVS];
	size_t n, batches, resyncs, overflow;
	int64_t last_rev;
};

struct state {
	int ups, downs;
	bool up;
	uint64_t down_at, up_at;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
	va_list ap;

	printf("ok - etcd/%s: ", cur);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void nok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nok(const char *fmt, ...)
{
	va_list ap;

	printf("not ok - etcd/%s: ", cur);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed = 1;
}

#define EXPECT(c, ...) do { if (c) ok(__VA_ARGS__); else { nok(__VA_ARGS__); } } while (0)

static void on_res(void *ctx, const struct xb_etcd_result *r)
{
	struct res *s = ctx;

	s->done = true;
	s->at_ms = now_ms();
	s->err = r->err;
	snprintf(s->msg, sizeof(s->msg), "%s", r->msg ? r->msg : "");
	s->rev = r->revision;
	s->succeeded = r->succeeded;
	s->n_kvs = r->n_kvs;
	s->lease_id = r->lease_id;
	s->ttl = r->ttl;
	if (r->n_kvs) {
		snprintf(s->key, sizeof(s->key), "%s", r->kvs[0].key);
		snprintf(s->val, sizeof(s->val), "%s", r->kvs[0].val);
		s->mod_rev = r->kvs[0].mod_rev;
		s->lease = r->kvs[0].lease;
	}
}

static void on_watch(void *ctx, const struct xb_etcd_event *ev, size_t n, bool resync,
		     int64_t revision)
{
	struct evlog *l = ctx;
	size_t i;

	l->batches++;
	l->resyncs += resync;
	l->last_rev = revision;
	for (i = 0; i < n; i++) {
		struct ev *e;

		if (l->n == MAX_EVS) {
			l->overflow++;
			continue;
		}
		e = &l->ev[l->n++];
		e->type = ev[i].type;
		snprintf(e->key, sizeof(e->key), "%s", ev[i].kv.key);
		snprintf(e->val, sizeof(e->val), "%s", ev[i].kv.val);
		e->mod_rev = ev[i].kv.mod_rev;
		e->at_ms = now_ms();
	}
}

static void on_state(void *ctx, bool up, const char *why)
{
	struct state *s = ctx;

	printf("# state %s: %s\n", up ? "up" : "down", why);
	s->up = up;
	if (up) {
		s->ups++;
		s->up_at = now_ms();
	} else {
		s->downs++;
		s->down_at = now_ms();
	}
}

/* Runs the client's callbacks for up to ms, or until *flag. */
static bool pump(struct xb_etcd *e, unsigned ms, const bool *flag)
{
	uint64_t end = now_ms() + ms;
	struct pollfd p = { .fd = xb_etcd_fd(e), .events = POLLIN };

	while (!(flag && *flag)) {
		uint64_t t = now_ms();

		if (t >= end)
			return false;
		if (poll(&p, 1, (int)(end - t < 50 ? end - t : 50)) > 0)
			xb_etcd_dispatch(e);
	}
	return true;
}

static struct xb_etcd *open_client(struct state *st)
{
	struct xb_etcd_opts o = { .endpoints = eps, .n_endpoints = n_eps,
				  .request_timeout_ms = REQ_MS, .dial_timeout_ms = 500,
				  .backoff_max_ms = 500, .ca_file = ca_file,
				  .cert_file = cert_file, .key_file = key_file };
	char err[256];
	struct xb_etcd *e = xb_etcd_open(&o, on_state, st, err, sizeof(err));

	if (!e) {
		nok("open: %s", err);
		return NULL;
	}
	return e;
}

/* Synchronous helpers: queue, pump until the callback ran (bounded). */
#define WAIT_MS (REQ_MS * 3 + 2000)
static struct res put(struct xb_etcd *e, const char *k, const char *v, int64_t lease)
{
	struct res r = { 0 };
	int rc = xb_etcd_put(e, k, strlen(k), v, strlen(v), lease, on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static struct res get(struct xb_etcd *e, const char *k, bool prefix)
{
	struct res r = { 0 };
	int rc = xb_etcd_range(e, k, strlen(k), prefix, on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static struct res del(struct xb_etcd *e, const char *k)
{
	struct res r = { 0 };
	int rc = xb_etcd_delete(e, k, strlen(k), on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static struct res cas(struct xb_etcd *e, const char *k, int64_t mod, const char *v)
{
	struct res r = { 0 };
	int rc = xb_etcd_cas(e, k, strlen(k), mod, v, strlen(v), 0, on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static struct res grant(struct xb_etcd *e, int64_t ttl, bool keep)
{
	struct res r = { 0 };
	int rc = xb_etcd_lease_grant(e, ttl, keep, on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static struct res lrevoke(struct xb_etcd *e, int64_t id)
{
	struct res r = { 0 };
	int rc = xb_etcd_lease_revoke(e, id, on_res, &r);

	if (rc || !pump(e, WAIT_MS, &r.done))
		r.err = rc ? rc : -EDEADLK;
	return r;
}

static int member_ctl(const char *what, int idx)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "%s %s %d", ctl, what, idx + 1);
	printf("# %s\n", cmd);
	return system(cmd);
}

static void t_kv(struct xb_etcd *e)
{
	struct res a = put(e, "kv/a", "one", 0), b, c, d, f;

	EXPECT(!a.err && a.rev > 0, "put answered with a revision (%" PRId64 ", err %d %s)",
	       a.rev, a.err, a.msg);
	b = put(e, "kv/b", "two", 0);
	c = get(e, "kv/a", false);
	EXPECT(!c.err && c.n_kvs == 1 && !strcmp(c.key, "kv/a") && !strcmp(c.val, "one") &&
	       c.mod_rev == a.rev, "range of one key: its value and mod revision (%s=%s at %" PRId64 ")",
	       c.key, c.val, c.mod_rev);
	c = get(e, "kv/", true);
	EXPECT(!c.err && c.n_kvs == 2 && c.rev == b.rev, "range of the prefix: both keys, at the store's revision (%zu)",
	       c.n_kvs);
	c = get(e, "kv", false);
	EXPECT(!c.err && c.n_kvs == 0, "range of a key that is only a prefix: nothing (%zu)", c.n_kvs);
	d = del(e, "kv/a");
	f = get(e, "kv/", true);
	EXPECT(!d.err && d.rev > b.rev && !f.err && f.n_kvs == 1 && !strcmp(f.key, "kv/b"),
	       "delete: the key is gone, the other stays");
	EXPECT(xb_etcd_put(e, "", 0, "x", 1, 0, on_res, &f) == -EINVAL, "an empty key is refused at once");
}

static void t_cas(struct xb_etcd *e)
{
	struct res a, b, c, d;

	a = cas(e, "cas/k", 0, "first");
	EXPECT(!a.err && a.succeeded, "absent key, mod 0: swapped (err %d %s)", a.err, a.msg);
	b = cas(e, "cas/k", 0, "second");
	EXPECT(!b.err && !b.succeeded && b.n_kvs == 1 && !strcmp(b.val, "first") && b.mod_rev == a.rev,
	       "present key, mod 0: refused, the current kv returned (%s at %" PRId64 ")", b.val, b.mod_rev);
	c = cas(e, "cas/k", a.rev, "third");
	EXPECT(!c.err && c.succeeded, "mod revision matches: swapped");
	d = cas(e, "cas/k", a.rev, "fourth");
	EXPECT(!d.err && !d.succeeded && !strcmp(d.val, "third") && d.mod_rev == c.rev,
	       "stale mod revision: refused, returns the winner (%s)", d.val);
	d = get(e, "cas/k", false);
	EXPECT(!strcmp(d.val, "third"), "the store holds the winner (%s)", d.val);
}

/* Polls until the key is gone; the time it took, or -1. */
static long gone_after(struct xb_etcd *e, const char *k, unsigned ms)
{
	uint64_t t0 = now_ms();
	struct res r;

	while (now_ms() - t0 < ms) {
		r = get(e, k, false);
		if (!r.err && !r.n_kvs)
			return (long)(now_ms() - t0);
		pump(e, 100, NULL);
	}
	return -1;
}

static void t_lease(struct xb_etcd *e)
{
	struct res g, p, r;
	long t;

	g = grant(e, 30, false);
	EXPECT(!g.err && g.lease_id && g.ttl == 30, "grant: an id and the ttl (%" PRId64 ", %" PRId64 ")",
	       g.lease_id, g.ttl);
	p = put(e, "lease/revoked", "x", g.lease_id);
	r = get(e, "lease/revoked", false);
	EXPECT(!p.err && r.n_kvs == 1 && r.lease == g.lease_id, "a key put with the lease carries it");
	r = lrevoke(e, g.lease_id);
	t = gone_after(e, "lease/revoked", 2000);
	EXPECT(!r.err && t >= 0, "revoke: the key is gone (%ld ms)", t);
	r = lrevoke(e, g.lease_id);
	EXPECT(r.err == -ENOENT, "revoking it again: -ENOENT (%d %s)", r.err, r.msg);

	g = grant(e, 2, false);
	put(e, "lease/expires", "x", g.lease_id);
	r = get(e, "lease/expires", false);
	EXPECT(r.n_kvs == 1, "a 2 s lease without keepalive: key there at first");
	t = gone_after(e, "lease/expires", 8000);
	EXPECT(t >= 0, "... and gone after its ttl (%ld ms)", t);

	g = grant(e, 2, true);
	put(e, "lease/kept", "x", g.lease_id);
	pump(e, 5000, NULL);
	r = get(e, "lease/kept", false);
	EXPECT(r.n_kvs == 1, "a 2 s lease kept alive: the key still there after 5 s");
	lrevoke(e, g.lease_id);
	t = gone_after(e, "lease/kept", 2000);
	EXPECT(t >= 0, "... and gone once revoked (%ld ms)", t);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool wait_events(struct xb_etcd *e, struct evlog *l, size_t n, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (l->n < n && now_ms() < end)
		pump(e, 50, NULL);
	return l->n >= n;
}

static void t_watch(struct xb_etcd *e)
{
	static struct evlog l;
	static uint64_t lat[200];
	char k[32], v[32];
	size_t i, n = 0;
	bool order = true;
	struct res r;

	memset(&l, 0, sizeof(l));
	EXPECT(!xb_etcd_watch(e, "w/", 2, 0, on_watch, &l), "watch queued");
	pump(e, 1000, NULL);	/* created: from "now" */
	for (i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "w/%zu", i);
		snprintf(v, sizeof(v), "v%zu", i);
		put(e, k, v, 0);
	}
	del(e, "w/3");
	put(e, "x/other", "not watched", 0);
	put(e, "w/1", "again", 0);
	wait_events(e, &l, 7, 5000);
	EXPECT(l.n == 7, "7 events for 5 puts, a delete, a put again (%zu)", l.n);
	for (i = 0; i < l.n && i < 7; i++) {
		static const char *want[7] = { "w/0", "w/1", "w/2", "w/3", "w/4", "w/3", "w/1" };

		order &= !strcmp(l.ev[i].key, want[i]) &&
			 l.ev[i].type == (i == 5 ? XB_ETCD_DELETE : XB_ETCD_PUT) &&
			 (!i || l.ev[i].mod_rev > l.ev[i - 1].mod_rev);
	}
	EXPECT(order && l.n >= 7 && !strcmp(l.ev[6].val, "again"), "in order, the delete as a DELETE");

	/* Latency: put -> event, one at a time. */
	for (i = 0; i < 200; i++) {
		size_t before = l.n;
		uint64_t t0 = now_ms();

		snprintf(k, sizeof(k), "w/lat%zu", i);
		r = put(e, k, "x", 0);
		if (r.err || !wait_events(e, &l, before + 1, 3000))
			break;
		lat[n++] = l.ev[before].at_ms - t0;
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	if (n)
		printf("# watch latency put->event over %zu: p50 %" PRIu64 " ms p99 %" PRIu64 " ms max %" PRIu64 " ms\n",
		       n, lat[n / 2], lat[n * 99 / 100], lat[n - 1]);
	EXPECT(n == 200, "200 puts, each seen by the watch (%zu)", n);
}

static void t_resync(struct xb_etcd *e)
{
	static struct evlog l;
	struct res a, b;
	char cmd[700];

	memset(&l, 0, sizeof(l));
	a = put(e, "rs/a", "1", 0);
	put(e, "rs/b", "2", 0);
	put(e, "rs/b", "3", 0);
	b = put(e, "rs/c", "4", 0);
	del(e, "rs/c");
	snprintf(cmd, sizeof(cmd), "etcdctl --endpoints=%s compact %" PRId64 " >/dev/null", eps_str, b.rev);
	EXPECT(!system(cmd), "compacted at %" PRId64, b.rev);
	xb_etcd_watch(e, "rs/", 3, a.rev, on_watch, &l);
	wait_events(e, &l, 2, 5000);
	EXPECT(l.resyncs == 1 && l.n == 2 && !strcmp(l.ev[0].key, "rs/a") && !strcmp(l.ev[1].val, "3"),
	       "a watch from a compacted revision: one resync with the prefix's kvs (%zu resyncs, %zu kvs)",
	       l.resyncs, l.n);
	put(e, "rs/d", "5", 0);
	wait_events(e, &l, 3, 5000);
	EXPECT(l.n == 3 && !strcmp(l.ev[2].key, "rs/d") && l.resyncs == 1,
	       "then events again, from after the resync (%zu)", l.n);
}

/* The watch's events from start compared with a fresh watch's replay from
 * the same revision: the same list, no loss, no duplicate. */
static bool same_as_replay(struct xb_etcd *e, const char *prefix, int64_t start, struct evlog *l)
{
	static struct evlog ref;
	size_t i;

	memset(&ref, 0, sizeof(ref));
	xb_etcd_watch(e, prefix, strlen(prefix), start, on_watch, &ref);
	wait_events(e, &ref, l->n, 10000);
	pump(e, 500, NULL);
	if (ref.n != l->n) {
		printf("# replay has %zu events, the watch %zu\n", ref.n, l->n);
		return false;
	}
	for (i = 0; i < l->n; i++)
		if (ref.ev[i].mod_rev != l->ev[i].mod_rev || strcmp(ref.ev[i].key, l->ev[i].key) ||
		    ref.ev[i].type != l->ev[i].type) {
			printf("# event %zu differs: %s@%" PRId64 " vs %s@%" PRId64 "\n", i,
			       l->ev[i].key, l->ev[i].mod_rev, ref.ev[i].key, ref.ev[i].mod_rev);
			return false;
		}
	return true;
}

static void t_failover(struct xb_etcd *e, struct state *st)
{
	static struct evlog l;
	struct res r0, r;
	char k[32];
	int victim, i, fails = 0, written = 0;
	uint64_t t0;

	memset(&l, 0, sizeof(l));
	r0 = put(e, "fo/start", "x", 0);
	xb_etcd_watch(e, "fo/", 3, r0.rev, on_watch, &l);
	wait_events(e, &l, 1, 5000);
	victim = xb_etcd_endpoint(e, true);
	EXPECT(victim >= 0 && l.n == 1, "watch running on member %d", victim + 1);
	if (victim < 0)
		return;
	member_ctl("kill", victim);
	t0 = now_ms();
	/* Writes while the member is down (and while a leader is elected
	 * again, if it led): a put that fails is retried under a new key. */
	for (i = 0; i < 40 && now_ms() - t0 < 20000; i++) {
		snprintf(k, sizeof(k), "fo/%02d", i);
		r = put(e, k, "during", 0);
		if (r.err) {
			fails++;
			printf("# put %s: %d %s\n", k, r.err, r.msg);
		} else {
			written++;
		}
		pump(e, 50, NULL);
	}
	printf("# %d puts during the kill, %d failed (leader election)\n", written, fails);
	EXPECT(written >= 20, "writes go on with a member down (%d of 40)", written);
	EXPECT(l.n >= (size_t)written, "the watch saw them: it moved to member %d (%zu events)",
	       xb_etcd_endpoint(e, true) + 1, l.n);
	member_ctl("restart", victim);
	EXPECT(same_as_replay(e, "fo/", r0.rev, &l), "no event lost or twice: same as a replay from revision %" PRId64,
	       r0.rev);
	(void)st;
}

static void t_quorum(struct xb_etcd *e, struct state *st)
{
	static struct evlog l;
	int keep, i, killed[2], nk = 0, downs = st->downs;
	struct res r0, r;
	uint64_t t0, took;
	char k[32];

	memset(&l, 0, sizeof(l));
	r0 = put(e, "qu/start", "x", 0);
	xb_etcd_watch(e, "qu/", 3, r0.rev, on_watch, &l);
	wait_events(e, &l, 1, 5000);
	/* The watch's member goes down with another: the watch finds no
	 * member with a leader, backs off, and must resume from where it
	 * was once the quorum is back and writes go on. */
	keep = (xb_etcd_endpoint(e, true) + 1) % (int)n_eps;
	for (i = 0; i < (int)n_eps && nk < 2; i++)
		if (i != keep) {
			member_ctl("kill", i);
			killed[nk++] = i;
		}
	pump(e, 500, NULL);
	t0 = now_ms();
	r = put(e, "qu/lost", "x", 0);
	took = now_ms() - t0;
	EXPECT(r.err == -ETIMEDOUT || r.err == -ECONNREFUSED,
	       "2 of 3 killed: a put fails (%d: %s)", r.err, r.msg);
	EXPECT(took <= REQ_MS + 1500, "... within the timeout (%" PRIu64 " ms, timeout %d)", took, REQ_MS);
	t0 = now_ms();
	r = get(e, "qu/", true);
	took = now_ms() - t0;
	/* FIFO: the idle probe (one timeout) may be ahead of it. */
	EXPECT((r.err == -ETIMEDOUT || r.err == -ECONNREFUSED) && took <= 2 * REQ_MS + 1500,
	       "a range fails too, in %" PRIu64 " ms (%d)", took, r.err);
	t0 = now_ms();
	while (st->downs == downs && now_ms() - t0 < 10000)
		pump(e, 100, NULL);
	EXPECT(st->downs > downs && !st->up, "state callback: down (%" PRIu64 " ms)", now_ms() - t0);
	for (i = 0; i < nk; i++)
		member_ctl("restart", killed[i]);
	t0 = now_ms();
	while (!st->up && now_ms() - t0 < 30000)
		pump(e, 100, NULL);
	EXPECT(st->up, "members back: state up (%" PRIu64 " ms)", now_ms() - t0);
	for (i = 0, r.err = -1; i < 30 && r.err; i++) {
		snprintf(k, sizeof(k), "qu/back%d", i);
		r = put(e, k, "x", 0);
	}
	EXPECT(!r.err, "a put goes through again (after %d tries)", i);
	/* Not just any second event: the put that timed out (qu/lost) may
	 * still have been committed once the quorum came back, and arrive
	 * first. Wait for the write made after the return. */
	t0 = now_ms();
	while (!(l.n >= 2 && !strncmp(l.ev[l.n - 1].key, "qu/back", 7)) && now_ms() - t0 < 10000)
		pump(e, 50, NULL);
	EXPECT(l.n >= 2 && !strncmp(l.ev[l.n - 1].key, "qu/back", 7), "the watch catches up (%zu events)", l.n);
	EXPECT(same_as_replay(e, "qu/", r0.rev, &l), "and lost or doubled nothing");
}

static bool only_alice(void *ctx, const char *device)
{
	(void)ctx;
	return !strcmp(device, "alice");
}

static const struct xb_cluster_prune_key *pkey(const struct xb_cluster_prune *pr, const char *k)
{
	for (size_t i = 0; i < pr->n; i++)
		if (!strcmp(pr->v[i].key, k))
			return &pr->v[i];
	return NULL;
}

static bool pis(const struct xb_cluster_prune *pr, const char *k, enum xb_cluster_prune_what w)
{
	const struct xb_cluster_prune_key *pk = pkey(pr, k);

	if (pk)
		printf("# %s: %d %s\n", k, pk->what, pk->why);
	return pk && pk->what == w;
}

/* The pool-allocation prune (gateway/cluster/cluster_prune.c) on the real
 * store, with a write between its read and its deletes: a key written
 * again is not deleted. And compare-and-delete itself. */
static void t_prune(struct xb_etcd *e)
{
	char pfx[64], k[6][128], err[256];
	static const char *const tail[6] = { "alloc/4/203.0.113.40", "alloc/4/203.0.113.10",
					     "alloc/4/203.0.113.77", "alloc/4/203.0.113.41",
					     "alloc/6/2001:db8::5", "alloc/4/203.0.113.42" };
	static const char *const val[6] = { "{\"device\":\"bob\",\"node\":\"gwa\"}",
					    "{\"device\":\"alice\",\"node\":\"gwa\"}",
					    "{\"device\":\"../x\",\"node\":\"gwz\"}",
					    "{\"device\":\"carol\",\"node\":\"gwb\"}",
					    "{\"device\":\"dave\",\"node\":\"gwb\"}",
					    "{\"device\":\"erin\",\"node\":\"gwb\"}" };
	struct xb_cluster_prune pr = { .prefix = pfx, .wait_ms = 5000, .in_policy = only_alice };
	uint64_t t0;
	struct res r;
	int rc;

	snprintf(pfx, sizeof(pfx), "/xborder/prune%d/", (int)getpid());
	for (int i = 0; i < 6; i++) {
		snprintf(k[i], sizeof(k[i]), "%s%s", pfx, tail[i]);
		put(e, k[i], val[i], 0);
	}
	/* compare-and-delete: not at another revision, at its own */
	r = get(e, k[5], false);
	{
		struct res c = { 0 };

		rc = xb_etcd_cad(e, k[5], strlen(k[5]), r.mod_rev + 1000, on_res, &c);
		EXPECT(!rc && pump(e, WAIT_MS, &c.done) && !c.err && !c.succeeded && c.n_kvs == 1,
		       "compare-and-delete at another mod_revision fails and shows the key");
		memset(&c, 0, sizeof(c));
		rc = xb_etcd_cad(e, k[5], strlen(k[5]), r.mod_rev, on_res, &c);
		EXPECT(!rc && pump(e, WAIT_MS, &c.done) && !c.err && c.succeeded &&
		       get(e, k[5], false).n_kvs == 0, "compare-and-delete at its mod_revision deletes");
	}
	EXPECT(xb_etcd_cad(e, k[5], strlen(k[5]), 0, on_res, &r) == -EINVAL,
	       "compare-and-delete at revision 0 is refused (-EINVAL)");

	rc = xb_cluster_prune_read_start(e, &pr, err, sizeof(err));
	if (!rc && !pump(e, pr.wait_ms, &pr.read_done))
		snprintf(err, sizeof(err), "no answer"), rc = -ETIMEDOUT;
	if (!rc && (rc = pr.read_err))
		snprintf(err, sizeof(err), "%s", pr.read_msg);
	EXPECT(!rc && pr.n == 5, "prune: reads the 5 alloc/ keys (%d %s, %zu)", rc, rc ? err : "", pr.n);
	EXPECT(pis(&pr, k[0], XB_PRUNE_DELETED), "prune: bob's key (not in the policy) to delete");
	EXPECT(pis(&pr, k[1], XB_PRUNE_KEPT), "prune: alice's key (in the policy) kept");
	EXPECT(pis(&pr, k[2], XB_PRUNE_KEPT) && strstr(pkey(&pr, k[2])->why, "does not decode"),
	       "prune: a hostile value kept, and why");
	EXPECT(pis(&pr, k[4], XB_PRUNE_DELETED), "prune: dave's IPv6 key to delete");
	/* Between the read and the deletes, another gateway gives carol's
	 * address to erin, a device of its policy. */
	put(e, k[3], val[5], 0);
	xb_cluster_prune_delete_start(e, &pr);
	EXPECT(pr.cads_sent == 3, "prune: sends 3 compare-and-deletes (%zu)", pr.cads_sent);
	for (t0 = now_ms(); pr.cads_done < pr.cads_sent && now_ms() - t0 < pr.wait_ms;)
		pump(e, 50, NULL);
	xb_cluster_prune_unanswered(&pr);
	EXPECT(pr.cads_done == pr.cads_sent && pis(&pr, k[3], XB_PRUNE_CHANGED), "prune: a key written after the read is not "
	       "deleted (changed)");
	r = get(e, k[3], false);
	EXPECT(r.n_kvs == 1 && strstr(r.val, "erin"), "... and erin's value is still in the store");
	EXPECT(pis(&pr, k[0], XB_PRUNE_DELETED) && get(e, k[0], false).n_kvs == 0 &&
	       get(e, k[4], false).n_kvs == 0, "prune: bob's and dave's keys are gone");
	EXPECT(get(e, k[1], false).n_kvs == 1 && get(e, k[2], false).n_kvs == 1,
	       "prune: alice's key and the hostile one are still there");
	xb_cluster_prune_free(&pr);
	for (int i = 0; i < 6; i++)
		del(e, k[i]);
}

/* A client the members refuse: nothing it asks is done, and it says why. */
static void t_refused(struct xb_etcd *e, struct state *st)
{
	struct res r = put(e, "refused/k", "x", 0);

	printf("# refused: %s\n", r.msg);
	EXPECT(r.done && r.err, "a put is refused (%d)", r.err);
	pump(e, 1500, NULL);
	EXPECT(st->ups == 0 && st->downs >= 1, "the client reports etcd down, never up (%d ups, %d downs)",
	       st->ups, st->downs);
}

int main(int argc, char **argv)
{
	struct state st = { 0 };
	struct xb_etcd *e;
	char *p;
	int c, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "e:c:C:E:K:")) != -1) {
		switch (c) {
		case 'e': eps_str = optarg; break;
		case 'c': ctl = optarg; break;
		case 'C': ca_file = optarg; break;
		case 'E': cert_file = optarg; break;
		case 'K': key_file = optarg; break;
		default: goto usage;
		}
	}
	if (!eps_str || !ctl || optind == argc)
		goto usage;
	for (p = strtok(strdup(eps_str), ","); p && n_eps < MAX_EPS; p = strtok(NULL, ","))
		eps[n_eps++] = p;
	for (i = optind; i < argc; i++) {
		cur = argv[i];
		memset(&st, 0, sizeof(st));
		if (!(e = open_client(&st)))
			return 1;
		if (!strcmp(cur, "kv")) t_kv(e);
		else if (!strcmp(cur, "cas")) t_cas(e);
		else if (!strcmp(cur, "lease")) t_lease(e);
		else if (!strcmp(cur, "watch")) t_watch(e);
		else if (!strcmp(cur, "resync")) t_resync(e);
		else if (!strcmp(cur, "failover")) t_failover(e, &st);
		else if (!strcmp(cur, "quorum")) t_quorum(e, &st);
		else if (!strcmp(cur, "refused")) t_refused(e, &st);
		else if (!strcmp(cur, "prune")) t_prune(e);
		else nok("no such case");
		xb_etcd_close(e);
	}
	return failed;
usage:
	fprintf(stderr, "usage: xb-etcdtest -e URL,URL,... -c CTL [-C CA -E CERT -K KEY] "
		"kv|cas|lease|watch|resync|failover|quorum|refused|prune...\n");
	return 2;
}
