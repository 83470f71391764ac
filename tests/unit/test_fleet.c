/* Fleet signals (gateway/health/fleet.h): the z-score anomaly on device connects
 * and disconnects, case by case and against a naive reference that keeps
 * every event; the key-set difference against a quadratic one. */
#include <math.h>
#include <stdlib.h>

#include "gateway/health/avail.h"
#include "gateway/health/fleet.h"
#include "tests/lib/check.h"

#define MIN (60 * 1000000000ULL)

TEST(z_score)
{
	double base[] = { 0, 10, 0, 10, 0, 10, 0, 10 }, mean, sd;
	double z = xb_fleet_z(base, 8, 15, &mean, &sd);

	CHECK(fabs(mean - 5) < 1e-9);
	CHECK(fabs(sd - 5) < 1e-9);		/* population sd, above sqrt(5) */
	CHECK(fabs(z - 2) < 1e-9);
	double spread[] = { 2, 4, 4, 4, 5, 5, 7, 9 };	/* sd 2 < sqrt(5): the floor */
	CHECK(fabs(xb_fleet_z(spread, 8, 15, &mean, &sd) - 10 / sqrt(5)) < 1e-9);
	CHECK(fabs(sd - 2) < 1e-9);
	/* A flat baseline: the floor, not a division by zero. */
	double flat[] = { 0, 0, 0, 0 }, busy[] = { 100, 100, 100, 100 };
	CHECK(fabs(xb_fleet_z(flat, 4, 3, &mean, &sd) - 3) < 1e-9);	/* floor 1 */
	CHECK(fabs(xb_fleet_z(busy, 4, 150, &mean, &sd) - 5) < 1e-9);	/* floor sqrt(100) */
	CHECK(xb_fleet_z(base, 0, 3, &mean, &sd) == 0);
}

/* A steady fleet: 10 connects and 10 disconnects every 5 minutes for 4 h. */
static void steady(struct xb_fleet *f, uint64_t t0, unsigned minutes)
{
	for (unsigned m = 0; m < minutes; m++) {
		xb_fleet_add(f, t0 + m * MIN + 1, XB_FLEET_CONNECTS, 2);
		xb_fleet_add(f, t0 + m * MIN + 1, XB_FLEET_DISCONNECTS, 2);
	}
}

TEST(mass_disconnect_is_an_anomaly)
{
	static struct xb_fleet f;
	struct xb_fleet_anomaly a;
	uint64_t t0 = 1000 * MIN;

	xb_fleet_init(&f);
	xb_fleet_judge(&f, t0, XB_FLEET_CONNECTS, &a);
	CHECK(!a.judged);
	steady(&f, t0, 30);
	xb_fleet_judge(&f, t0 + 30 * MIN, XB_FLEET_DISCONNECTS, &a);
	CHECK(!a.judged);			/* 5 windows: not an hour yet */
	CHECK_INT(a.windows, ==, 5);
	steady(&f, t0 + 30 * MIN, 240);
	xb_fleet_judge(&f, t0 + 270 * MIN, XB_FLEET_DISCONNECTS, &a);
	CHECK(a.judged && !a.anomaly);
	CHECK_INT(a.windows, ==, XB_FLEET_WINDOWS);
	CHECK(fabs(a.recent - 10) < 1e-9 && fabs(a.z) < 1e-9);
	/* A link of the office's ISP fails: 60 devices drop within a minute. */
	xb_fleet_add(&f, t0 + 270 * MIN + 5, XB_FLEET_DISCONNECTS, 60);
	xb_fleet_judge(&f, t0 + 270 * MIN + 30, XB_FLEET_DISCONNECTS, &a);
	CHECK(!a.anomaly);			/* that minute is not complete yet */
	xb_fleet_judge(&f, t0 + 271 * MIN, XB_FLEET_DISCONNECTS, &a);
	printf("# 70 disconnects in 5 min against 10 ± %.2f: z %.1f\n", a.sd, a.z);
	CHECK(a.anomaly && a.z > XB_FLEET_Z);
	xb_fleet_judge(&f, t0 + 271 * MIN, XB_FLEET_CONNECTS, &a);
	CHECK(!a.anomaly);
	/* Five minutes later the burst has left the recent window. */
	xb_fleet_judge(&f, t0 + 276 * MIN, XB_FLEET_DISCONNECTS, &a);
	CHECK(!a.anomaly && a.z < 0);		/* nothing counted since: low */
	CHECK_INT(f.total[XB_FLEET_DISCONNECTS], ==, 270 * 2 + 60);
	CHECK_STR(xb_fleet_kind_name(XB_FLEET_DISCONNECTS), "disconnects");
}

struct event {
	uint64_t at;
	enum xb_fleet_kind kind;
	unsigned n;
};

/* Events of kind in minutes [lo, hi). */
static double count(const struct event *e, size_t n, enum xb_fleet_kind kind, int64_t lo, int64_t hi)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t m = (int64_t)(e[i].at / MIN);

		if (e[i].kind == kind && m >= lo && m < hi)
			sum += e[i].n;
	}
	return sum;
}

/* Judged the long way: sums by scanning every event, moments by the
 * sum-of-squares formula. */
static void naive(const struct event *e, size_t n, uint64_t now, enum xb_fleet_kind kind,
		  struct xb_fleet_anomaly *a)
{
	int64_t cur = (int64_t)(now / MIN), first = n ? (int64_t)(e[0].at / MIN) : -1;
	double s = 0, s2 = 0, mean, sd, floor;
	unsigned k;

	*a = (struct xb_fleet_anomaly){ 0 };
	if (!n || cur - 5 < first)
		return;
	a->recent = count(e, n, kind, cur - 5, cur);
	for (k = 1; k <= 48 && cur - 5 * (int64_t)k - 5 >= first; k++) {
		double w = count(e, n, kind, cur - 5 * (int64_t)k - 5, cur - 5 * (int64_t)k);

		s += w;
		s2 += w * w;
	}
	a->windows = k - 1;
	if (a->windows < 12)
		return;
	mean = s / a->windows;
	sd = sqrt(fmax(0, s2 / a->windows - mean * mean));
	floor = fmax(1, sqrt(mean));
	a->judged = true;
	a->z = (a->recent - mean) / fmax(sd, floor);
	a->anomaly = fabs(a->z) > 3.5;
}

TEST(random_against_reference)
{
	static struct event ev[4096];
	static struct xb_fleet f;

	srand(35);
	for (int round = 0; round < 60; round++) {
		uint64_t t = (uint64_t)(rand() % 100000) * MIN / 7;
		size_t n = 0;
		unsigned rate = 1 + (unsigned)(rand() % 6);

		xb_fleet_init(&f);
		while (n < 4096) {
			struct xb_fleet_anomaly a, b;
			enum xb_fleet_kind kind = (enum xb_fleet_kind)(rand() % 2);

			t += (uint64_t)(rand() % 60) * 1000000000ULL * (unsigned)(1 + rand() % 4) / rate;
			ev[n] = (struct event){ t, kind, (unsigned)(rand() % 50 ? 1 : 30 + rand() % 40) };
			xb_fleet_add(&f, t, kind, ev[n].n);
			n++;
			xb_fleet_judge(&f, t, kind, &a);
			naive(ev, n, t, kind, &b);
			CHECK_INT(a.judged, ==, b.judged);
			CHECK_INT(a.windows, ==, b.windows);
			CHECK(fabs(a.recent - b.recent) < 1e-9);
			CHECK(fabs(a.z - b.z) < 1e-6);
			CHECK_INT(a.anomaly, ==, b.anomaly);
		}
	}
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, XB_FLEET_KEY_LEN);
}

TEST(key_set_difference)
{
	static uint8_t a[200][XB_FLEET_KEY_LEN], b[200][XB_FLEET_KEY_LEN];

	srand(5);
	for (int round = 0; round < 500; round++) {
		size_t na = (size_t)(rand() % 200), nb = 0;
		unsigned conn, disc, want_conn = 0, want_disc = 0;

		for (size_t i = 0; i < na; i++) {
			memset(a[i], 0, XB_FLEET_KEY_LEN);
			a[i][0] = (uint8_t)i;		/* distinct */
			a[i][31] = (uint8_t)rand();
		}
		for (size_t i = 0; i < na; i++)	/* keep some, add some */
			if (rand() % 3)
				memcpy(b[nb++], a[i], XB_FLEET_KEY_LEN);
		for (size_t i = na; i < 200 && rand() % 4; i++) {
			memset(b[nb], 0, XB_FLEET_KEY_LEN);
			b[nb][0] = (uint8_t)i;
			b[nb++][1] = 1;
		}
		/* quadratic reference */
		for (size_t i = 0; i < na; i++) {
			bool in = false;
			for (size_t j = 0; j < nb; j++)
				in |= !memcmp(a[i], b[j], XB_FLEET_KEY_LEN);
			want_disc += !in;
		}
		for (size_t j = 0; j < nb; j++) {
			bool in = false;
			for (size_t i = 0; i < na; i++)
				in |= !memcmp(a[i], b[j], XB_FLEET_KEY_LEN);
			want_conn += !in;
		}
		qsort(a, na, XB_FLEET_KEY_LEN, cmp_key);
		qsort(b, nb, XB_FLEET_KEY_LEN, cmp_key);
		xb_fleet_diff((const uint8_t (*)[XB_FLEET_KEY_LEN])a, na,
			      (const uint8_t (*)[XB_FLEET_KEY_LEN])b, nb, &conn, &disc);
		CHECK_INT(conn, ==, want_conn);
		CHECK_INT(disc, ==, want_disc);
	}
}

/* A path's availability: one check a second, the last hour. */
TEST(availability_over_the_last_hour)
{
	struct xb_avail a;
	uint64_t t = 5000 * MIN, s = 1000000000ULL;

	xb_avail_init(&a);
	CHECK(xb_avail_get(&a, t) == -1);
	for (int i = 0; i < 3600; i++)		/* an hour, down for 36 s of it */
		xb_avail_add(&a, t + (uint64_t)i * s, i < 1000 || i >= 1036);
	CHECK(fabs(xb_avail_get(&a, t + 3599 * s) - 0.99) < 1e-9);
	/* Half an hour later the outage is still in; 40 minutes on it is out. */
	for (int i = 3600; i < 3600 + 2400; i++)
		xb_avail_add(&a, t + (uint64_t)i * s, true);
	CHECK(fabs(xb_avail_get(&a, t + 5999 * s) - 1.0) < 1e-9);
	/* Nothing counted for over an hour: unknown again. */
	CHECK(xb_avail_get(&a, t + 6000 * s + 61 * MIN) == -1);
}
