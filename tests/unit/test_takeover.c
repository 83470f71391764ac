/* Takeover (gateway/cluster/takeover.h): the pacer on a fake clock against
 * a naive reference, and the takeover against a fake interface that records
 * every set — which peers, in which order, how fast, keepalive put back. */
#include "gateway/cluster/takeover.h"
#include "common/clock.h"
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"

#include <arpa/inet.h>
#include <errno.h>

#define MS NSEC_PER_MSEC

TEST(pacer_first_at_once_then_rate)
{
	struct xb_pacer p;

	xb_pacer_init(&p, 500, 0, 1000 * MS);		/* 2 ms a token, burst 4 */
	CHECK_INT(xb_pacer_take(&p, 1000 * MS, 10), ==, 1);
	CHECK_INT(xb_pacer_take(&p, 1000 * MS, 10), ==, 0);
	CHECK_INT(xb_pacer_wait(&p, 1000 * MS), ==, 2 * MS);
	CHECK_INT(xb_pacer_wait(&p, 1001 * MS), ==, 1 * MS);
	CHECK_INT(xb_pacer_take(&p, 1002 * MS, 10), ==, 1);
	/* a long pause banks at most the burst */
	CHECK_INT(xb_pacer_take(&p, 5000 * MS, 100), ==, XB_TAKEOVER_BURST_MAX);
	CHECK_INT(xb_pacer_take(&p, 5000 * MS, 100), ==, 0);
	/* want caps what is taken; the rest stays banked */
	CHECK_INT(xb_pacer_take(&p, 5008 * MS, 1), ==, 1);
	CHECK_INT(xb_pacer_take(&p, 5008 * MS, 9), ==, 3);
}

TEST(pacer_clock_going_back_adds_nothing)
{
	struct xb_pacer p;

	xb_pacer_init(&p, 10, 1, 5000 * MS);
	CHECK_INT(xb_pacer_take(&p, 5000 * MS, 5), ==, 1);
	CHECK_INT(xb_pacer_take(&p, 4000 * MS, 5), ==, 0);
	CHECK_INT(xb_pacer_take(&p, 5099 * MS, 5), ==, 0);
	CHECK_INT(xb_pacer_take(&p, 5100 * MS, 5), ==, 1);
}

TEST(pacer_burst_bounds)
{
	struct xb_pacer p;

	xb_pacer_init(&p, 1, 0, 0);			/* rate/100 = 0: burst 1 */
	CHECK_INT(p.cap_ns, ==, NSEC_PER_SEC);
	xb_pacer_init(&p, 100000, 0, 0);		/* rate/100 = 1000: capped */
	CHECK_INT(p.cap_ns / p.cost_ns, ==, XB_TAKEOVER_BURST_MAX);
	xb_pacer_init(&p, 0, 0, 0);			/* 0 is taken as 1 */
	CHECK_INT(p.cost_ns, ==, NSEC_PER_SEC);
}

/* What the pacer lets through never runs ahead of one at start + rate ×
 * elapsed, and, polled when xb_pacer_wait says (as the daemon does) even if
 * late by up to the burst's slack, it keeps up with the rate within a burst:
 * checked on a random fake clock against that count. */
TEST(pacer_against_reference)
{
	srand(17);
	for (int run = 0; run < 50; run++) {
		unsigned rate = 1 + (unsigned)(rand() % 5000);
		struct xb_pacer p;
		uint64_t now = (uint64_t)(rand() % 1000) * MS, t0 = now;
		uint64_t taken = 0, burst;

		xb_pacer_init(&p, rate, 0, now);
		burst = p.cap_ns / p.cost_ns;
		for (int step = 0; step < 2000; step++) {
			/* when it asks, late by up to the slack the burst leaves */
			now += xb_pacer_wait(&p, now) + (uint64_t)rand() % (p.cap_ns - p.cost_ns + 1);
			taken += xb_pacer_take(&p, now, 1000000);
			/* never ahead of the reference: 1 at start + rate × elapsed */
			CHECK(taken <= 1 + (now - t0) / p.cost_ns);
		}
		/* and not far behind it: within the burst of the ideal */
		CHECK(taken + burst + 1 >= (now - t0) / p.cost_ns);
	}
}

/* A fake interface: peers with keepalive and handshake times; every set is
 * recorded. */
#define NPEERS 40
static struct fake {
	uint8_t keys[NPEERS][WG_KEY_LEN];
	uint16_t ka[NPEERS];
	int64_t hs[NPEERS];
	union xb_sockaddr ep[NPEERS];
	int fail_get, fail_set;
	/* every set: peer index, keepalive set, endpoint given, update_only */
	struct { int peer; uint16_t ka; bool ep, upd; } log[4 * NPEERS];
	size_t n_log, n_sets;
	/* the keepalive "sends" a backend would do: off -> on */
	int sends[NPEERS];
} F;

static int peer_index(const uint8_t *k)
{
	for (int i = 0; i < NPEERS; i++)
		if (!memcmp(F.keys[i], k, WG_KEY_LEN))
			return i;
	return -1;
}

static int fget(void *ctx, struct wg_conf *out)
{
	(void)ctx;
	if (F.fail_get)
		return F.fail_get;
	for (int i = 0; i < NPEERS; i++) {
		struct wg_peer_conf *pc = wg_conf_add_peer(out);

		CHECK(pc);
		memcpy(pc->public_key, F.keys[i], WG_KEY_LEN);
		pc->persistent_keepalive = F.ka[i];
		pc->last_handshake_sec = F.hs[i];
	}
	return 0;
}

static int fset(void *ctx, const struct wg_conf *in)
{
	(void)ctx;
	if (F.fail_set)
		return F.fail_set;
	F.n_sets++;
	for (size_t i = 0; i < in->n_peers; i++) {
		const struct wg_peer_conf *pc = &in->peers[i];
		int k = peer_index(pc->public_key);

		CHECK(k >= 0 && F.n_log < 4 * NPEERS);
		CHECK(pc->has_persistent_keepalive && !pc->remove && !pc->replace_allowed_ips);
		F.log[F.n_log].peer = k;
		F.log[F.n_log].ka = pc->persistent_keepalive;
		F.log[F.n_log].ep = pc->endpoint.sa.sa_family != AF_UNSPEC;
		F.log[F.n_log++].upd = pc->update_only;
		if (pc->endpoint.sa.sa_family != AF_UNSPEC)
			F.ep[k] = pc->endpoint;
		if (!F.ka[k] && pc->persistent_keepalive)
			F.sends[k]++;
		F.ka[k] = pc->persistent_keepalive;
	}
	return 0;
}

static const struct xb_takeover_ops ops = { fget, fset };

static union xb_sockaddr ep4(int i)
{
	union xb_sockaddr a = { 0 };

	a.in.sin_family = AF_INET;
	a.in.sin_port = htons((uint16_t)(40000 + i));
	a.in.sin_addr.s_addr = htonl(0xc0000200u | (uint32_t)i);	/* 192.0.2.i */
	return a;
}

static void fake_reset(void)
{
	memset(&F, 0, sizeof(F));
	for (int i = 0; i < NPEERS; i++)
		wgtest_fill(F.keys[i], (uint8_t)(i + 1));
}

TEST(newest_first_paced_keepalive_restored)
{
	struct xb_takeover t;
	const int64_t wall = 1700000000;
	uint64_t now = 1000 * MS, wait;
	uint8_t stranger[WG_KEY_LEN];
	union xb_sockaddr none = { 0 };
	int rounds = 0;

	fake_reset();
	F.ka[3] = 25;				/* a peer with a configured keepalive */
	F.hs[5] = wall - 10;			/* a live session: left alone */
	F.hs[6] = wall - 600;			/* an old one: taken over */
	xb_takeover_init(&t, &ops, NULL);
	for (int i = 0; i < 10; i++) {
		union xb_sockaddr e = ep4(i);

		CHECK_INT(xb_takeover_add(&t, F.keys[i], &e, 1000 * i), ==, 0);
	}
	union xb_sockaddr older = ep4(99);
	CHECK_INT(xb_takeover_add(&t, F.keys[2], &older, 5), ==, 0);	/* older dup: dropped */
	wgtest_fill(stranger, 0xee);
	CHECK_INT(xb_takeover_add(&t, stranger, &older, 99999), ==, 0);	/* not a peer */
	CHECK_INT(xb_takeover_add(&t, F.keys[20], &none, 99999), ==, 0);	/* no endpoint */

	CHECK_INT(xb_takeover_begin(&t, 100, now, wall), ==, 9);		/* 10 - the live one */
	CHECK_INT(t.offered, ==, 13);
	CHECK_INT(t.live, ==, 1);
	CHECK_INT(t.unknown, ==, 2);
	CHECK(t.active);
	/* 100/s, burst 1: one at once, then one each 10 ms */
	while ((wait = xb_takeover_run(&t, now)) && rounds++ < 100) {
		CHECK_INT(wait, <=, 10 * MS);
		now += wait;
	}
	CHECK(!t.active);
	CHECK_INT(t.sent, ==, 9);
	CHECK_INT(now - 1000 * MS, ==, 80 * MS);		/* 9 at 100/s: 0, 10, ..., 80 ms */
	CHECK_INT(F.n_sets, ==, 18);				/* two sets per round */
	/* order: by last seen, newest first: 9 8 7 6 4 3 2 1 0 (5 is live) */
	static const int want[] = { 9, 8, 7, 6, 4, 3, 2, 1, 0 };
	for (size_t i = 0; i < 9; i++) {
		int k = want[i];

		CHECK_INT(F.log[2 * i].peer, ==, k);
		CHECK_INT(F.log[2 * i + 1].peer, ==, k);
		CHECK(F.log[2 * i].ep && !F.log[2 * i + 1].ep);
		CHECK(F.log[2 * i].upd && F.log[2 * i + 1].upd);
		CHECK_INT(F.sends[k], ==, 1);			/* one off->on: one initiation */
		CHECK(!memcmp(&F.ep[k], &(union xb_sockaddr){ .in = ep4(k).in }, sizeof(F.ep[k])));
	}
	/* keepalive as configured afterwards */
	for (int i = 0; i < NPEERS; i++)
		CHECK_INT(F.ka[i], ==, i == 3 ? 25 : 0);
	CHECK_INT(F.sends[5], ==, 0);
	xb_takeover_free(&t);
}

TEST(stop_and_errors)
{
	struct xb_takeover t;
	uint64_t now = 0;

	fake_reset();
	xb_takeover_init(&t, &ops, NULL);
	for (int i = 0; i < 20; i++) {
		union xb_sockaddr e = ep4(i);

		CHECK_INT(xb_takeover_add(&t, F.keys[i], &e, i), ==, 0);
	}
	CHECK_INT(xb_takeover_begin(&t, 1000, now, 1700000000), ==, 20);
	CHECK(xb_takeover_run(&t, now) > 0);
	CHECK_INT(t.sent, ==, 1);
	xb_takeover_stop(&t);
	CHECK(!t.active);
	CHECK_INT(xb_takeover_run(&t, now + NSEC_PER_SEC), ==, 0);
	CHECK_INT(F.n_sets, ==, 2);

	/* an interface that cannot be read: an error, nothing queued */
	F.fail_get = EIO;
	union xb_sockaddr e = ep4(1);
	CHECK_INT(xb_takeover_add(&t, F.keys[1], &e, 1), ==, 0);
	CHECK_INT(xb_takeover_begin(&t, 1000, now, 1700000000), ==, -EIO);
	CHECK(!t.active);
	/* a set that fails is counted and the run goes on */
	F.fail_get = 0;
	F.fail_set = ENODEV;
	for (int i = 0; i < 3; i++) {
		union xb_sockaddr e2 = ep4(i);

		CHECK_INT(xb_takeover_add(&t, F.keys[i], &e2, i), ==, 0);
	}
	CHECK_INT(xb_takeover_begin(&t, 1000000, now, 1700000000), ==, 3);
	for (int r = 0; r < 10 && xb_takeover_run(&t, now); r++)
		now += MS;
	CHECK_INT(t.failed, ==, 3);
	CHECK_INT(t.sent, ==, 0);
	/* nothing offered: nothing to do */
	CHECK_INT(xb_takeover_begin(&t, 10, now, 1700000000), ==, 0);
	CHECK(!t.active);
	xb_takeover_free(&t);
	/* never offered anything (no queue at all; UBSan: qsort(NULL, 0)) */
	xb_takeover_init(&t, &ops, NULL);
	CHECK_INT(xb_takeover_begin(&t, 10, now, 1700000000), ==, 0);
	CHECK(!t.active);
	xb_takeover_free(&t);
}
