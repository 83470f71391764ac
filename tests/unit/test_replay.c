/* The anti-replay window: edge rules and a comparison with a naive model. */
#include "tests/lib/check.h"
#include "tunnel/replay.h"

#define WIN WG_REPLAY_WINDOW		/* 8128 */
#define LIMIT WG_REJECT_AFTER_MESSAGES
#define T(r, n, v)                                                           \
	do {                                                                 \
		uint64_t n_ = (n);                                           \
		if (wg_replay_accept((r), n_) != (v))                        \
			xb_test_fail(__FILE__, __LINE__, "counter %" PRIu64 \
				     ": want %s", n_, (v) ? "accept" : "reject"); \
	} while (0)

TEST(limit_value)
{
	/* 2^64 - 2^13 - 1, spelled out. */
	CHECK(LIMIT == 18446744073709543423ULL);
	CHECK(LIMIT == 0xffffffffffffdfffULL);
	CHECK(WIN == 8128);
}

TEST(kernel_sequence)
{
	/* The scenario of the kernel's selftest/counter.c, with L = window + 1. */
	const uint64_t L = WIN + 1;
	struct wg_replay r;

	wg_replay_init(&r);
	T(&r, 0, true);
	T(&r, 1, true);
	T(&r, 1, false);
	T(&r, 9, true);
	T(&r, 8, true);
	T(&r, 7, true);
	T(&r, 7, false);
	T(&r, L, true);
	T(&r, L - 1, true);
	T(&r, L - 1, false);
	T(&r, L - 2, true);
	T(&r, 2, true);
	T(&r, 2, false);
	T(&r, L + 16, true);
	T(&r, 3, false);
	T(&r, L + 16, false);
	T(&r, L * 4, true);
	T(&r, L * 4 - (L - 1), true);
	T(&r, 10, false);
	T(&r, L * 4 - L, false);
	T(&r, L * 4 - (L + 1), false);
	T(&r, L * 4 - (L - 2), true);
	T(&r, L * 4 + 1 - L, false);
	T(&r, 0, false);
	T(&r, LIMIT, false);
	T(&r, LIMIT - 1, true);
	T(&r, LIMIT, false);
	T(&r, LIMIT - 1, false);
	T(&r, LIMIT - 2, true);
	T(&r, LIMIT + 1, false);
	T(&r, LIMIT + 2, false);
	T(&r, LIMIT - 2, false);
	T(&r, LIMIT - 3, true);
	T(&r, 0, false);
}

TEST(in_order_and_duplicates)
{
	struct wg_replay r;

	wg_replay_init(&r);
	for (uint64_t i = 0; i < 100000; i++) {
		T(&r, i, true);
		T(&r, i, false);
		if (i)
			T(&r, i - 1, false);
	}
	CHECK(r.counter == 100000);
}

TEST(reordering_inside_window)
{
	/* Blocks of 1000 arrive back to front; every counter accepted once. */
	struct wg_replay r;

	wg_replay_init(&r);
	for (uint64_t b = 0; b < 50; b++)
		for (uint64_t i = 1000; i-- > 0;)
			T(&r, b * 1000 + i, true);
	for (uint64_t i = 50000 - WIN; i < 50000; i++)
		T(&r, i, false);
}

TEST(window_edge)
{
	/* Highest accepted H: H - 8128 is still judged by the bitmap (accepted
	 * once), H - 8129 is too old. Matches counter_validate(), where the
	 * test is (their + 1) + 8128 < highest + 1. */
	const uint64_t H = 100000;
	struct wg_replay r;

	wg_replay_init(&r);
	T(&r, H, true);
	T(&r, H - WIN - 1, false);
	T(&r, H - WIN, true);
	T(&r, H - WIN, false);
	T(&r, H - WIN + 1, true);

	/* From a fresh window: 8128 then 0 fits, 8129 then 0 does not. */
	wg_replay_init(&r);
	T(&r, WIN, true);
	T(&r, 0, true);
	wg_replay_init(&r);
	T(&r, WIN + 1, true);
	T(&r, 0, false);
	T(&r, 1, true);
}

TEST(window_full_both_directions)
{
	/* The kernel's bulk cases: the whole window filled ascending and
	 * descending, then the value just past its edge. */
	struct wg_replay r;

	wg_replay_init(&r);
	for (uint64_t i = 1; i <= WIN; i++)
		T(&r, i, true);
	T(&r, 0, true);
	T(&r, 0, false);

	wg_replay_init(&r);
	for (uint64_t i = 2; i <= WIN + 1; i++)
		T(&r, i, true);
	T(&r, 1, true);
	T(&r, 0, false);

	wg_replay_init(&r);
	for (uint64_t i = WIN + 1; i-- > 0;)
		T(&r, i, true);

	wg_replay_init(&r);
	for (uint64_t i = WIN + 2; i-- > 1;)
		T(&r, i, true);
	T(&r, 0, false);

	wg_replay_init(&r);
	for (uint64_t i = WIN + 1; i-- > 1;)
		T(&r, i, true);
	T(&r, WIN + 1, true);
	T(&r, 0, false);
}

TEST(jump_clears_bitmap)
{
	/* Fill the whole ring, then move so that the ring words are reused:
	 * none of the old bits may read as "seen" for the new counters. */
	struct wg_replay r;

	wg_replay_init(&r);
	for (uint64_t i = 0; i < WG_REPLAY_BITS; i++)
		T(&r, i, true);
	T(&r, WG_REPLAY_BITS + WIN, true);	/* less than a full ring ahead */
	for (uint64_t i = WG_REPLAY_BITS; i < WG_REPLAY_BITS + WIN; i++)
		T(&r, i, true);
	T(&r, WG_REPLAY_BITS - 1, false);	/* now too old */

	wg_replay_init(&r);
	for (uint64_t i = 0; i < 3 * WG_REPLAY_BITS; i += 3)
		T(&r, i, true);
	T(&r, 1000000000, true);		/* far ahead */
	for (uint64_t i = 1000000000 - WIN; i < 1000000000; i++)
		T(&r, i, true);
	T(&r, 1000000000 - WIN - 1, false);
	T(&r, 3, false);
}

TEST(near_the_limit)
{
	struct wg_replay r;

	wg_replay_init(&r);
	T(&r, UINT64_MAX, false);
	T(&r, LIMIT, false);
	for (uint64_t i = LIMIT - 20000; i < LIMIT; i++)
		T(&r, i, true);
	T(&r, LIMIT - 1, false);
	T(&r, LIMIT, false);
	T(&r, LIMIT + 1, false);
	T(&r, UINT64_MAX - 1, false);
	T(&r, UINT64_MAX, false);
	T(&r, LIMIT - 1 - WIN, false);	/* in the window but seen */
	CHECK(r.counter == LIMIT);	/* the highest stored value: LIMIT - 1 + 1 */

	wg_replay_init(&r);
	T(&r, LIMIT - 1, true);
	T(&r, LIMIT - 1 - WIN, true);
	T(&r, LIMIT - 2 - WIN, false);
}

/* The naive model: every accepted counter in a hash set, plus the highest. */
struct naive {
	uint64_t *slots;	/* open addressing; UINT64_MAX = empty (never accepted) */
	size_t mask;
	uint64_t highest;
	bool any;
};

static bool naive_insert(struct naive *n, uint64_t c)
{
	size_t i = (size_t)((c * 0x9e3779b97f4a7c15ULL) >> 40) & n->mask;

	for (; n->slots[i] != UINT64_MAX; i = (i + 1) & n->mask)
		if (n->slots[i] == c)
			return false;
	n->slots[i] = c;
	return true;
}

static bool naive_accept(struct naive *n, uint64_t c)
{
	if (c >= LIMIT)
		return false;
	if (n->any && c + WIN < n->highest)
		return false;
	if (!naive_insert(n, c))
		return false;
	if (!n->any || c > n->highest)
		n->highest = c;
	n->any = true;
	return true;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
	return a < b ? 0 : a - b;
}

/* A mix of in-order traffic, reordering, probes of the window edge,
 * duplicates and jumps of various sizes. */
static uint64_t next_counter(uint64_t *head, const uint64_t recent[64])
{
	unsigned k = (unsigned)(rnd() % 100);
	uint64_t c;

	if (k < 40)
		return *head = sat_add(*head, 1 + rnd() % 3);
	if (k < 70)
		return sat_sub(*head, rnd() % 8300);
	if (k < 80)
		return sat_sub(*head, WIN - 10 + rnd() % 20);
	if (k < 90)
		return recent[rnd() % 64];
	if (k < 95)
		c = sat_add(*head, WIN - 200 + rnd() % 400);
	else
		c = sat_add(*head, rnd() % 100000);
	return *head = c;
}

/* Returns the window's final top (one past the highest accepted). */
static uint64_t compare_run(uint64_t seed, uint64_t start, unsigned ops, unsigned *acc)
{
	struct naive n = { .mask = (1u << 19) - 1 };
	uint64_t head = start, recent[64];
	struct wg_replay r;

	n.slots = malloc((n.mask + 1) * sizeof(*n.slots));
	CHECK(n.slots);
	memset(n.slots, 0xff, (n.mask + 1) * sizeof(*n.slots));
	for (int i = 0; i < 64; i++)
		recent[i] = start;
	rng_state = seed;
	wg_replay_init(&r);
	for (unsigned i = 0; i < ops; i++) {
		uint64_t c = next_counter(&head, recent);
		bool want = naive_accept(&n, c), got = wg_replay_accept(&r, c);

		recent[i % 64] = c;
		if (want != got) {
			free(n.slots);
			xb_test_fail(__FILE__, __LINE__, "op %u counter %" PRIu64
				     ": model says %d, window says %d", i, c, want, got);
		}
		*acc += got;
	}
	free(n.slots);
	return r.counter;
}

TEST(random_vs_naive)
{
	unsigned acc = 0;
	uint64_t top;

	compare_run(1, 0, 200000, &acc);
	CHECK_INT(acc, >, 100000);	/* both outcomes well exercised */
	CHECK_INT(200000 - acc, >, 20000);
	/* The same near the limit: the run crosses it part way. */
	acc = 0;
	top = compare_run(2, LIMIT - 200000000, 100000, &acc);
	CHECK_INT(acc, >, 10000);
	CHECK(top > LIMIT - 100000);	/* it did get there */
}
