/* Steering: which tunnel a path uses from the tunnels' ranks and scores
 * (gateway/health/steer.h), checked case by case and against a naive reference
 * on random input. */
#include <math.h>
#include <stdlib.h>

#include "gateway/health/steer.h"
#include "tests/lib/check.h"

static struct xb_path path(size_t *tun, size_t n, bool best)
{
	return (struct xb_path){ .id = 1, .tunnels = tun, .n_tunnels = n, .best = best };
}

TEST(preference_order)
{
	size_t tun[] = { 0, 1, 2 };
	struct xb_path pa = path(tun, 3, false);
	struct xb_steer_tunnel t[3] = { { XB_RANK_UP, 10 }, { XB_RANK_UP, 5 }, { XB_RANK_UP, 1 } };

	CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, 0);
	t[0].rank = XB_RANK_DOWN;			/* blackholed: the next */
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 1);
	t[1].rank = XB_RANK_DEGRADED;			/* up beats degraded */
	CHECK_INT(xb_steer_pick(&pa, t, 1), ==, 2);
	t[2].rank = XB_RANK_DOWN;			/* degraded beats down */
	CHECK_INT(xb_steer_pick(&pa, t, 2), ==, 1);
	t[1].rank = XB_RANK_DOWN;
	CHECK_INT(xb_steer_pick(&pa, t, 1), ==, XB_STEER_NONE);
	t[2].rank = XB_RANK_UNPROVEN;			/* unproven beats down */
	CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, 2);
	t[0].rank = XB_RANK_UP;				/* back: takes the path back */
	CHECK_INT(xb_steer_pick(&pa, t, 2), ==, 0);
}

TEST(start_uses_the_first_listed)
{
	size_t tun[] = { 1, 0 };
	struct xb_path pa = path(tun, 2, false);
	struct xb_steer_tunnel t[2] = { { XB_RANK_UNPROVEN, INFINITY }, { XB_RANK_UNPROVEN, INFINITY } };

	CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, 1);
	pa.n_tunnels = 0;
	CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, XB_STEER_NONE);
}

TEST(best_by_score_with_a_margin)
{
	size_t tun[] = { 0, 1 };
	struct xb_path pa = path(tun, 2, true);
	struct xb_steer_tunnel t[2] = { { XB_RANK_UP, 40 }, { XB_RANK_UP, 30 } };

	CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, 1);
	/* current 0 at 40: 30 is more than max(5, 4) better */
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 1);
	t[1].score = 36;				/* 4 ms better: stay */
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 0);
	t[0].score = 400;
	t[1].score = 370;				/* 30 < 10 % of 400: stay */
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 0);
	t[1].score = 350;
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 1);
	t[1].rank = XB_RANK_DEGRADED;			/* rank first, then score */
	t[1].score = 1;
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 0);
	t[0].rank = XB_RANK_DOWN;
	CHECK_INT(xb_steer_pick(&pa, t, 0), ==, 1);
}

/* The reference: the best rank present; the first (or lowest scored) of it. */
static size_t naive(const struct xb_path *pa, const struct xb_steer_tunnel *t)
{
	size_t pick = XB_STEER_NONE;

	for (size_t i = 0; i < pa->n_tunnels; i++) {
		size_t ti = pa->tunnels[i];

		if (t[ti].rank == XB_RANK_DOWN)
			continue;
		if (pick == XB_STEER_NONE || t[ti].rank > t[pick].rank ||
		    (pa->best && t[ti].rank == t[pick].rank && t[ti].score < t[pick].score))
			pick = ti;
	}
	return pick;
}

TEST(random_against_reference)
{
	srand(7);
	for (int round = 0; round < 20000; round++) {
		size_t tun[6], n = (size_t)(rand() % 7);
		struct xb_steer_tunnel t[6];
		struct xb_path pa;

		for (size_t i = 0; i < 6; i++) {
			t[i].rank = (enum xb_rank)(rand() % 4);
			t[i].score = t[i].rank == XB_RANK_UP || t[i].rank == XB_RANK_DEGRADED ?
				     rand() % 500 : INFINITY;
			tun[i] = (i * 5 + (size_t)round) % 6;	/* a permutation */
		}
		pa = path(tun, n, rand() % 2);
		CHECK_INT(xb_steer_pick(&pa, t, XB_STEER_NONE), ==, naive(&pa, t));
	}
}

/* order[0..n) as text, "0 1 2", for one CHECK_STR per case. */
static const char *order_text(const struct xb_path *pa, const struct xb_steer_tunnel *t,
			      size_t current)
{
	static char buf[64];
	size_t out[8], n = xb_steer_order(pa, t, current, out), k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		k += (size_t)snprintf(buf + k, sizeof(buf) - k, i ? " %zu" : "%zu", out[i]);
	return buf;
}

/* The order a path's names are resolved through (docs/dns.md): the pick
 * first, then by rank in list order (best: by score), down ones only when
 * all are down. */
TEST(order_for_dns)
{
	size_t tun[] = { 0, 1, 2 };
	struct xb_path pa = path(tun, 3, false);
	struct xb_steer_tunnel t[3] = { { XB_RANK_UP, 10 }, { XB_RANK_UP, 5 }, { XB_RANK_UP, 1 } };

	CHECK_STR(order_text(&pa, t, 0), "0 1 2");
	t[0].rank = XB_RANK_DOWN;			/* blackholed: left out */
	CHECK_STR(order_text(&pa, t, 1), "1 2");
	t[1].rank = XB_RANK_DEGRADED;			/* up before degraded */
	CHECK_STR(order_text(&pa, t, 1), "2 1");
	t[2].rank = XB_RANK_UNPROVEN;			/* degraded before unproven */
	CHECK_STR(order_text(&pa, t, 1), "1 2");
	t[1].rank = t[2].rank = XB_RANK_DOWN;		/* all down: all, as listed */
	CHECK_STR(order_text(&pa, t, XB_STEER_NONE), "0 1 2");
	pa = path(tun, 3, true);			/* best: the kept one, then by score */
	t[0] = t[1] = t[2] = (struct xb_steer_tunnel){ XB_RANK_UP, 0 };
	t[0].score = 10, t[1].score = 9.5, t[2].score = 1;
	CHECK_STR(order_text(&pa, t, XB_STEER_NONE), "2 1 0");
	t[2].score = 9.8;				/* within the margin: 0 is kept */
	CHECK_STR(order_text(&pa, t, 0), "0 1 2");
	pa.n_tunnels = 0;
	CHECK_STR(order_text(&pa, t, XB_STEER_NONE), "");
}
