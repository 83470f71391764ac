/* The impairment engine: seeded decisions, ordering, rate, limits, parsing. */
#include "tests/lib/check.h"
#include "tests/tools/impair.h"

#define MS 1000000ULL

static void set(struct imp_dir *d, const char *kv)
{
	struct imp_profile p = d->prof;
	char err[256];

	if (!imp_apply(d, &p, kv, err, sizeof(err)))
		xb_test_fail(__FILE__, __LINE__, "%s: %s", kv, err);
	imp_set_profile(d, &p);
}

/* Feed n packets 100 µs apart, release everything, return how many left. */
static uint64_t pass_through(struct imp_dir *d, unsigned n, uint64_t *hash)
{
	uint8_t pkt[64] = { 0 };
	uint64_t out = 0, h = 1469598103934665603ULL;
	struct imp_pkt *p;

	for (unsigned i = 0; i < n; i++) {
		memcpy(pkt, &i, sizeof(i));
		imp_enqueue(d, pkt, sizeof(pkt), i * 100000ULL);
		while ((p = imp_dequeue(d, UINT64_MAX - 1))) {
			unsigned seq;
			memcpy(&seq, p->data, sizeof(seq));
			h = (h ^ seq) * 1099511628211ULL;
			out++;
			free(p);
		}
	}
	if (hash)
		*hash = h;
	return out;
}

TEST(loss_rate_and_seed_reproducible)
{
	struct imp_dir a, b, c;
	uint64_t ha, hb, hc, na, nb, nc;

	imp_dir_init(&a, "ab", 42);
	imp_dir_init(&b, "ab", 42);
	imp_dir_init(&c, "ab", 43);
	set(&a, "loss=5");
	set(&b, "loss=5");
	set(&c, "loss=5");
	na = pass_through(&a, 10000, &ha);
	nb = pass_through(&b, 10000, &hb);
	nc = pass_through(&c, 10000, &hc);
	CHECK_INT(na, ==, nb);
	CHECK(ha == hb);
	CHECK(ha != hc);
	CHECK_INT(10000 - na, >=, 400);
	CHECK_INT(10000 - na, <=, 600);
	CHECK_INT(10000 - nc, >=, 400);
	CHECK_INT(a.cnt.lost, ==, 10000 - na);
	imp_dir_free(&a);
	imp_dir_free(&b);
	imp_dir_free(&c);
}

TEST(same_pattern_whatever_else_changes)
{
	/* Delay and jitter draw from the stream too; the loss pattern must not move. */
	struct imp_dir a, b;
	uint64_t ha, hb;

	imp_dir_init(&a, "ab", 7);
	imp_dir_init(&b, "ab", 7);
	set(&a, "loss=10");
	set(&b, "loss=10");
	set(&b, "duplicate=0");
	set(&b, "reorder=0");
	CHECK_INT(pass_through(&a, 5000, &ha), ==, pass_through(&b, 5000, &hb));
	CHECK(ha == hb);
	imp_dir_free(&a);
	imp_dir_free(&b);
}

TEST(delay_and_order)
{
	struct imp_dir d;
	uint8_t pkt[10] = { 0 };
	struct imp_pkt *p;

	imp_dir_init(&d, "ab", 1);
	set(&d, "delay=30");
	imp_enqueue(&d, pkt, 10, 1000);
	pkt[0] = 1;
	imp_enqueue(&d, pkt, 10, 2000);
	CHECK(imp_next_due(&d) == 1000 + 30 * MS);
	CHECK(imp_dequeue(&d, 1000 + 30 * MS - 1) == NULL);
	p = imp_dequeue(&d, 1000 + 30 * MS);
	CHECK(p && p->data[0] == 0);
	free(p);
	p = imp_dequeue(&d, 2000 + 30 * MS);
	CHECK(p && p->data[0] == 1);
	free(p);
	CHECK(imp_next_due(&d) == UINT64_MAX);
	imp_dir_free(&d);
}

TEST(jitter_bounds)
{
	struct imp_dir d;
	uint8_t pkt[10] = { 0 };
	uint64_t lo = UINT64_MAX, hi = 0;
	struct imp_pkt *p;

	imp_dir_init(&d, "ab", 1);
	set(&d, "delay=30");
	set(&d, "jitter=10");
	for (int i = 0; i < 2000; i++)
		imp_enqueue(&d, pkt, 10, 100 * MS);
	while ((p = imp_dequeue(&d, UINT64_MAX - 1))) {
		uint64_t dl = p->release_ns - 100 * MS;
		lo = dl < lo ? dl : lo;
		hi = dl > hi ? dl : hi;
		free(p);
	}
	CHECK_INT(lo, >=, 20 * MS);
	CHECK_INT(hi, <=, 40 * MS);
	CHECK_INT(lo, <, 21 * MS);	/* the range is really used */
	CHECK_INT(hi, >, 39 * MS);
	imp_dir_free(&d);
}

TEST(rate_serialises)
{
	struct imp_dir d;
	uint8_t pkt[1000] = { 0 };
	struct imp_pkt *p;
	uint64_t last = 0;

	imp_dir_init(&d, "ab", 1);
	set(&d, "rate=8mbit");
	for (int i = 0; i < 100; i++)
		imp_enqueue(&d, pkt, sizeof(pkt), 0);
	while ((p = imp_dequeue(&d, UINT64_MAX - 1))) {
		last = p->release_ns;
		free(p);
	}
	/* 100 × 1000 B at 8 Mbit/s = 100 ms */
	CHECK_INT(last, ==, 100 * MS);
	imp_dir_free(&d);
}

TEST(limit_and_blackhole)
{
	struct imp_dir d;
	uint8_t pkt[10] = { 0 };

	imp_dir_init(&d, "ab", 1);
	set(&d, "delay=100");
	set(&d, "limit=5");
	for (int i = 0; i < 8; i++)
		imp_enqueue(&d, pkt, 10, 0);
	CHECK_INT(d.n, ==, 5);
	CHECK_INT(d.cnt.overlimit, ==, 3);
	set(&d, "blackhole=on");
	CHECK_INT(d.n, ==, 0);	/* what was queued is dropped too */
	CHECK_INT(d.cnt.blackholed, ==, 5);
	imp_enqueue(&d, pkt, 10, 0);
	CHECK_INT(d.n, ==, 0);
	set(&d, "blackhole=off");
	imp_enqueue(&d, pkt, 10, 0);
	CHECK_INT(d.n, ==, 1);
	imp_dir_free(&d);
}

TEST(duplicate_and_reorder)
{
	struct imp_dir d;
	uint64_t n;

	imp_dir_init(&d, "ab", 3);
	set(&d, "duplicate=10");
	n = pass_through(&d, 10000, NULL);
	CHECK_INT(n - 10000, >=, 800);
	CHECK_INT(n - 10000, <=, 1200);
	imp_dir_free(&d);

	imp_dir_init(&d, "ab", 3);
	set(&d, "delay=10");
	set(&d, "reorder=25");
	pass_through(&d, 4000, NULL);
	CHECK_INT(d.cnt.reordered, >=, 900);
	CHECK_INT(d.cnt.reordered, <=, 1100);
	imp_dir_free(&d);
}

TEST(bad_values_rejected)
{
	static const char *bad[] = {
		"delay", "delay=", "delay=-1", "delay=abc", "loss=101", "loss=5%",
		"rate=10xbit", "limit=0", "blackhole=maybe", "seed=x", "colour=red", "=5",
	};
	struct imp_dir d;
	struct imp_profile p;
	char err[256];

	imp_dir_init(&d, "ab", 1);
	p = d.prof;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(!imp_apply(&d, &p, bad[i], err, sizeof(err)));
		CHECK(err[0] != '\0');
	}
	CHECK(imp_apply(&d, &p, "rate=1.5mbit", err, sizeof(err)));
	CHECK_INT(p.rate_bps, ==, 1500000);
	imp_dir_free(&d);
}
