/* Per-device request budgets (gateway/posture/posture_rate.c): a burst, then the
 * rate; one device's spending never touches another's; refilled entries
 * are dropped. */
#include "tests/lib/check.h"
#include "gateway/posture/posture_rate.h"

#define MS 1000000ULL	/* ns */

TEST(burst_then_rate)
{
	struct xb_posture_rate *r = xb_posture_rate_new(5, 10);
	uint64_t now = 1000 * MS;
	int ok = 0;

	CHECK(r != NULL);
	for (int i = 0; i < 100; i++)
		ok += xb_posture_rate_take(r, "bob", now);
	CHECK_INT(ok, ==, 10);
	CHECK(!xb_posture_rate_take(r, "bob", now + 199 * MS));	/* 0.995 tokens */
	CHECK(xb_posture_rate_take(r, "bob", now + 200 * MS));
	CHECK(!xb_posture_rate_take(r, "bob", now + 200 * MS));
	/* One request a second over 10 s: 5 a second refill, all pass. */
	for (int i = 1; i <= 10; i++)
		CHECK(xb_posture_rate_take(r, "bob", now + 200 * MS + (uint64_t)i * 1000 * MS));
	xb_posture_rate_free(r);
}

TEST(devices_do_not_share)
{
	struct xb_posture_rate *r = xb_posture_rate_new(1, 2);
	uint64_t now = 5000 * MS;

	CHECK(r != NULL);
	for (int i = 0; i < 50; i++)
		xb_posture_rate_take(r, "bob", now + (uint64_t)i * MS);
	CHECK(xb_posture_rate_take(r, "alice", now + 50 * MS));
	CHECK(xb_posture_rate_take(r, "alice", now + 50 * MS));
	CHECK(!xb_posture_rate_take(r, "alice", now + 50 * MS));
	CHECK_INT(xb_posture_rate_count(r), ==, 2);
	/* 2 s later both are full again: the next sweep drops them. */
	CHECK(xb_posture_rate_take(r, "carol", now + 2100 * MS));
	CHECK_INT(xb_posture_rate_count(r), ==, 1);
	xb_posture_rate_free(r);
}

TEST(large_gaps_and_limits)
{
	struct xb_posture_rate *r = xb_posture_rate_new(1000000, 1000000);

	CHECK(r != NULL);
	CHECK(xb_posture_rate_take(r, "a", 1));
	CHECK(xb_posture_rate_take(r, "a", UINT64_MAX / 2));	/* no overflow */
	CHECK(xb_posture_rate_take(r, "a", 2));		/* time running back */
	xb_posture_rate_free(r);
}
