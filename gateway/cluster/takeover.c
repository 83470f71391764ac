/* Takeover: initiate handshakes with devices, paced; see takeover.h. */
#include "gateway/cluster/takeover.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void xb_pacer_init(struct xb_pacer *p, unsigned rate, unsigned burst, uint64_t now)
{
	if (rate == 0)
		rate = 1;
	if (burst == 0)
		burst = rate / 100;
	if (burst < 1)
		burst = 1;
	if (burst > XB_TAKEOVER_BURST_MAX)
		burst = XB_TAKEOVER_BURST_MAX;
	p->cost_ns = NSEC_PER_SEC / rate;
	if (p->cost_ns == 0)
		p->cost_ns = 1;
	p->cap_ns = p->cost_ns * burst;
	p->credit_ns = p->cost_ns;
	p->last_ns = now;
}

static void refill(struct xb_pacer *p, uint64_t now)
{
	uint64_t dt = now > p->last_ns ? now - p->last_ns : 0;	/* a clock that goes back adds nothing */

	p->last_ns = now > p->last_ns ? now : p->last_ns;
	p->credit_ns = dt >= p->cap_ns - p->credit_ns ? p->cap_ns : p->credit_ns + dt;
}

size_t xb_pacer_take(struct xb_pacer *p, uint64_t now, size_t want)
{
	size_t n;

	refill(p, now);
	n = (size_t)(p->credit_ns / p->cost_ns);
	if (n > want)
		n = want;
	p->credit_ns -= n * p->cost_ns;
	return n;
}

uint64_t xb_pacer_wait(const struct xb_pacer *p, uint64_t now)
{
	uint64_t dt = now > p->last_ns ? now - p->last_ns : 0;
	uint64_t have = p->credit_ns + dt;

	return have >= p->cost_ns ? 0 : p->cost_ns - have;
}

void xb_takeover_init(struct xb_takeover *t, const struct xb_takeover_ops *ops, void *ctx)
{
	memset(t, 0, sizeof(*t));
	t->ops = *ops;
	t->ctx = ctx;
}

int xb_takeover_add(struct xb_takeover *t, const uint8_t key[static WG_KEY_LEN],
		    const union xb_sockaddr *ep, int64_t seen_ms)
{
	struct xb_takeover_cand *c;

	if (!t->collecting) {		/* the first offer for the next run */
		xb_takeover_stop(t);
		t->collecting = true;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		void *q = realloc(t->q, cap * sizeof(*t->q));

		if (!q)
			return -ENOMEM;
		t->q = q;
		t->cap = cap;
	}
	c = &t->q[t->n++];
	memset(c, 0, sizeof(*c));
	memcpy(c->key, key, WG_KEY_LEN);
	c->ep = *ep;
	c->seen_ms = seen_ms;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer_conf *)a)->public_key,
		      ((const struct wg_peer_conf *)b)->public_key, WG_KEY_LEN);
}

/* Newest first; for one key, the newest sorts first and the others are
 * dropped after. */
static int by_seen(const void *a, const void *b)
{
	const struct xb_takeover_cand *x = a, *y = b;

	return x->seen_ms < y->seen_ms ? 1 : x->seen_ms > y->seen_ms ? -1 : 0;
}

static int cand_by_key(const void *a, const void *b)
{
	const struct xb_takeover_cand *x = a, *y = b;
	int k = memcmp(x->key, y->key, WG_KEY_LEN);

	return k ? k : by_seen(a, b);
}

/* Keep one candidate per key (the newest) that is a peer without a live
 * session; the peer's keepalive comes along. */
static size_t filter(struct xb_takeover *t, struct wg_conf *c, int64_t wall_sec)
{
	size_t kept = 0;

	if (!t->n || !c->n_peers) {	/* qsort and bsearch want arrays, not NULL */
		t->unknown += t->n;
		return 0;
	}
	qsort(c->peers, c->n_peers, sizeof(*c->peers), by_key);
	qsort(t->q, t->n, sizeof(*t->q), cand_by_key);
	for (size_t i = 0; i < t->n; i++) {
		struct xb_takeover_cand *cd = &t->q[i];
		struct wg_peer_conf key, *pc;

		if (kept && !memcmp(t->q[kept - 1].key, cd->key, WG_KEY_LEN))
			continue;
		memcpy(key.public_key, cd->key, WG_KEY_LEN);
		pc = bsearch(&key, c->peers, c->n_peers, sizeof(*c->peers), by_key);
		if (!pc || cd->ep.sa.sa_family == AF_UNSPEC) {
			t->unknown++;
			continue;
		}
		if (pc->last_handshake_sec && wall_sec - pc->last_handshake_sec < XB_TAKEOVER_LIVE_SEC) {
			t->live++;
			continue;
		}
		cd->keepalive = pc->persistent_keepalive;
		t->q[kept++] = *cd;
	}
	return kept;
}

long xb_takeover_begin(struct xb_takeover *t, unsigned rate, uint64_t now, int64_t wall_sec)
{
	struct wg_conf c = { 0 };
	int e;

	if (!t->collecting)
		t->n = 0;		/* no offers since the last run */
	t->collecting = false;
	t->offered = t->n;
	t->live = t->unknown = t->sent = t->failed = 0;
	t->next = 0;
	if ((e = t->ops.get(t->ctx, &c))) {
		t->n = 0;
		return -e;
	}
	t->n = filter(t, &c, wall_sec);
	wg_conf_free(&c);
	if (t->n)
		qsort(t->q, t->n, sizeof(*t->q), by_seen);
	xb_pacer_init(&t->pacer, rate ? rate : XB_TAKEOVER_RATE_DEFAULT, 0, now);
	t->active = t->n > 0;
	t->started_ns = now;
	t->finished_ns = t->active ? 0 : now;
	return (long)t->n;
}

/* Two sets for q[from, from+k): keepalive to "on" (from off: the send
 * happens here; from on: first off), then to what it was (from off to a
 * configured on: the send happens here). */
static int initiate(struct xb_takeover *t, size_t from, size_t k)
{
	struct wg_conf c = { 0 };
	int e = ENOMEM;

	for (int pass = 0; pass < 2; pass++) {
		c.n_peers = 0;
		for (size_t i = from; i < from + k; i++) {
			const struct xb_takeover_cand *cd = &t->q[i];
			struct wg_peer_conf *pc = wg_conf_add_peer(&c);

			if (!pc)
				goto out;
			memcpy(pc->public_key, cd->key, WG_KEY_LEN);
			pc->update_only = true;
			if (pass == 0)
				pc->endpoint = cd->ep;
			pc->has_persistent_keepalive = true;
			pc->persistent_keepalive = pass == 0 ? (cd->keepalive ? 0 : 1) : cd->keepalive;
		}
		if ((e = t->ops.set(t->ctx, &c)))
			goto out;
	}
	e = 0;
out:
	wg_conf_free(&c);
	return e;
}

uint64_t xb_takeover_run(struct xb_takeover *t, uint64_t now)
{
	size_t k;
	int e;

	if (!t->active)
		return 0;
	k = xb_pacer_take(&t->pacer, now, t->n - t->next);
	if (k) {
		if ((e = initiate(t, t->next, k))) {
			t->failed += k;
			log_warnx("takeover: initiating %zu handshake(s): %s", k, strerror(e));
		} else {
			t->sent += k;
		}
		t->next += k;
	}
	if (t->next < t->n) {
		uint64_t w = xb_pacer_wait(&t->pacer, now);

		return w ? w : 1;
	}
	t->active = false;
	t->finished_ns = now;
	return 0;
}

void xb_takeover_stop(struct xb_takeover *t)
{
	t->n = t->next = 0;
	t->active = false;
}

void xb_takeover_free(struct xb_takeover *t)
{
	free(t->q);
	t->q = NULL;
	t->n = t->cap = t->next = 0;
	t->active = false;
}
