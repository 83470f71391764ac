/* A notification target's queue and retries (gateway/health/alert_queue.h): the
 * backoff doubles and is capped, a try count and a total time both end
 * the retries, a full queue drops its oldest and counts it; and the queue
 * against a naive reference (a growing array trimmed from the front) on
 * random pushes and outcomes. */
#include <stdlib.h>

#include "gateway/health/alert_queue.h"
#include "tests/lib/check.h"

static char *num(unsigned i)
{
	char *s = malloc(16);

	snprintf(s, 16, "%u", i);
	return s;
}

TEST(backoff_doubles_and_is_capped)
{
	struct xb_alertq_rule r = { .tries = 10, .backoff_ms = 1000, .give_up_ms = 3600000 };

	CHECK_INT(xb_alertq_backoff(&r, 1), ==, 1000);
	CHECK_INT(xb_alertq_backoff(&r, 2), ==, 2000);
	CHECK_INT(xb_alertq_backoff(&r, 3), ==, 4000);
	CHECK_INT(xb_alertq_backoff(&r, 7), ==, 60000);
	CHECK_INT(xb_alertq_backoff(&r, 40), ==, XB_ALERTQ_BACKOFF_CAP_MS);
}

TEST(retries_wait_then_give_up_after_tries)
{
	struct xb_alertq_rule r = { .tries = 3, .backoff_ms = 100, .give_up_ms = 100000 };
	struct xb_alertq q;

	xb_alertq_init(&q, &r);
	CHECK(xb_alertq_start(&q, 0) == NULL);
	xb_alertq_push(&q, num(1));
	CHECK_STR(xb_alertq_start(&q, 10), "1");
	CHECK_INT(xb_alertq_done(&q, false, 20), ==, XB_ALERTQ_RETRY);
	CHECK(xb_alertq_start(&q, 119) == NULL);	/* 20 + 100 */
	CHECK_STR(xb_alertq_start(&q, 120), "1");
	CHECK_INT(xb_alertq_done(&q, false, 130), ==, XB_ALERTQ_RETRY);
	CHECK(xb_alertq_start(&q, 329) == NULL);	/* 130 + 200 */
	CHECK_STR(xb_alertq_start(&q, 330), "1");
	CHECK_INT(xb_alertq_done(&q, false, 340), ==, XB_ALERTQ_GAVE_UP);
	CHECK_INT(q.failed, ==, 1);
	CHECK_INT(q.n, ==, 0);
	CHECK(xb_alertq_start(&q, 10000) == NULL);
	xb_alertq_clear(&q);
}

TEST(total_time_ends_retries_and_next_starts_at_once)
{
	struct xb_alertq_rule r = { .tries = 100, .backoff_ms = 1000, .give_up_ms = 2500 };
	struct xb_alertq q;

	xb_alertq_init(&q, &r);
	xb_alertq_push(&q, num(1));
	xb_alertq_push(&q, num(2));
	CHECK_STR(xb_alertq_start(&q, 0), "1");
	CHECK_INT(xb_alertq_done(&q, false, 0), ==, XB_ALERTQ_RETRY);	/* at 1000 */
	CHECK_STR(xb_alertq_start(&q, 1000), "1");
	/* The next try would be at 3000, past 2500 after the first: given up. */
	CHECK_INT(xb_alertq_done(&q, false, 1000), ==, XB_ALERTQ_GAVE_UP);
	CHECK_STR(xb_alertq_start(&q, 1000), "2");
	CHECK_INT(xb_alertq_done(&q, true, 1001), ==, XB_ALERTQ_DELIVERED);
	CHECK_INT(q.delivered, ==, 1);
	CHECK_INT(q.failed, ==, 1);
	xb_alertq_clear(&q);
}

TEST(full_queue_drops_the_oldest)
{
	struct xb_alertq_rule r = { .tries = 1, .backoff_ms = 1, .give_up_ms = 1 };
	struct xb_alertq q;

	xb_alertq_init(&q, &r);
	for (unsigned i = 0; i < XB_ALERTQ_MAX; i++)
		CHECK(xb_alertq_push(&q, num(i)));
	CHECK(!xb_alertq_push(&q, num(XB_ALERTQ_MAX)));
	CHECK(!xb_alertq_push(&q, num(XB_ALERTQ_MAX + 1)));
	CHECK_INT(q.dropped, ==, 2);
	CHECK_INT(q.n, ==, XB_ALERTQ_MAX);
	CHECK_STR(xb_alertq_start(&q, 0), "2");
	xb_alertq_clear(&q);
	CHECK_INT(q.n, ==, 0);
}

TEST(the_head_in_flight_is_not_dropped)
{
	struct xb_alertq_rule r = { .tries = 2, .backoff_ms = 1, .give_up_ms = 100 };
	struct xb_alertq q;

	xb_alertq_init(&q, &r);
	for (unsigned i = 0; i < XB_ALERTQ_MAX; i++)
		xb_alertq_push(&q, num(i));
	CHECK_STR(xb_alertq_start(&q, 0), "0");
	CHECK(xb_alertq_start(&q, 0) == NULL);		/* one at a time */
	CHECK(!xb_alertq_push(&q, num(XB_ALERTQ_MAX)));	/* drops "1", not "0" */
	CHECK_INT(q.dropped, ==, 1);
	CHECK_STR(q.v[q.head], "0");
	CHECK_INT(xb_alertq_done(&q, true, 1), ==, XB_ALERTQ_DELIVERED);
	CHECK_STR(xb_alertq_start(&q, 1), "2");
	xb_alertq_clear(&q);
}

/* The reference: every payload ever pushed in order; lo is the oldest still
 * queued. */
TEST(matches_a_naive_reference)
{
	struct xb_alertq_rule r = { .tries = 3, .backoff_ms = 5, .give_up_ms = 1000 };
	struct xb_alertq q;
	unsigned pushed = 0, lo = 0, tries = 0;
	uint64_t dropped = 0, now = 0;

	srand(20);
	xb_alertq_init(&q, &r);
	for (int step = 0; step < 20000; step++) {
		const char *s;

		now += (uint64_t)(rand() % 7);
		if (rand() % 3 == 0) {
			xb_alertq_push(&q, num(pushed++));
			if (pushed - lo > XB_ALERTQ_MAX) {
				lo++;
				dropped++;
				tries = 0;	/* a dropped head takes its tries with it */
			}
		}
		if (q.tries && now < q.next_ms)
			continue;
		if (!(s = xb_alertq_start(&q, now))) {
			CHECK_INT(pushed, ==, lo);
			continue;
		}
		CHECK_INT(atoi(s), ==, lo);
		tries++;
		bool ok = rand() % 4 == 0;

		if (ok || tries == r.tries) {
			/* delivered, or failed at its last try: the next one */
			CHECK_INT(xb_alertq_done(&q, ok, now), ==,
				  ok ? XB_ALERTQ_DELIVERED : XB_ALERTQ_GAVE_UP);
			lo++;
			tries = 0;
		} else {
			CHECK_INT(xb_alertq_done(&q, false, now), ==, XB_ALERTQ_RETRY);
		}
		CHECK_INT(q.n, ==, pushed - lo);
	}
	CHECK_INT(q.dropped, ==, dropped);
	xb_alertq_clear(&q);
}
