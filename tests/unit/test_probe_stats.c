/* Probe statistics: loss with late replies, percentiles, RFC 3550 jitter,
 * the state machine under simulated links (seeded), anomalies, score. */
#include <math.h>

#include "common/clock.h"
#include "tests/lib/check.h"
#include "probe/probe_stats.h"

#define MS ((uint64_t)NSEC_PER_MSEC)
#define SEC ((uint64_t)NSEC_PER_SEC)

static struct xb_pstats *mk(void)
{
	struct xb_pstats_cfg c;
	struct xb_pstats *ps;

	xb_pstats_defaults(&c);
	ps = xb_pstats_new(&c);
	CHECK(ps);
	return ps;
}

/* --- a simulated link: probes every interval, replies after rtt (+ up to
 * spread) unless lost (seeded) or blackholed. Event-driven. --- */
struct sim {
	struct xb_pstats *ps;
	uint64_t now, interval, next_send, rtt, spread;
	double loss;
	bool blackhole;
	uint64_t rng;
	struct { uint64_t id, at; } pend[256];
	unsigned npend;
	unsigned trans_after_up;	/* state changes after the first up */
	unsigned max_lost;		/* worst window loss seen (probes) */
	bool was_up;
	uint64_t last_change;
};

static uint64_t rnd(struct sim *s)
{
	/* xorshift64* */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

static double unif(struct sim *s)
{
	return (double)(rnd(s) >> 11) / (double)(1ULL << 53);
}

static void sim_init(struct sim *s, struct xb_pstats *ps, uint64_t interval, uint64_t rtt,
		     double loss, uint64_t seed)
{
	*s = (struct sim){ .ps = ps, .interval = interval, .rtt = rtt, .loss = loss,
			   .rng = seed * 0x9e3779b97f4a7c15ULL + 1 };
}

static void sim_update(struct sim *s)
{
	struct xb_pstats_summary sum;

	if (xb_pstats_update(s->ps, s->now)) {
		s->last_change = s->now;
		if (s->was_up)
			s->trans_after_up++;
		if (xb_pstats_state(s->ps) == XB_PST_UP)
			s->was_up = true;
	}
	xb_pstats_get(s->ps, s->now, &sum);
	if (s->was_up && sum.lost > s->max_lost)
		s->max_lost = sum.lost;
}

static void sim_send(struct sim *s)
{
	uint64_t id = xb_pstats_sent(s->ps, s->now);
	bool lost = unif(s) < s->loss;

	if (!lost && !s->blackhole && s->npend < 256) {
		uint64_t d = s->rtt + (s->spread ? rnd(s) % s->spread : 0);

		s->pend[s->npend].id = id;
		s->pend[s->npend++].at = s->now + d;
	}
	s->next_send += s->interval;
}

/* Run until time `until'; stop early when stop_on_change and the state changed. */
static void sim_run(struct sim *s, uint64_t until, bool stop_on_change)
{
	uint64_t start_changes = s->last_change;

	for (unsigned guard = 0; guard < 50000000; guard++) {
		uint64_t t = s->next_send, dl = xb_pstats_deadline(s->ps);

		for (unsigned i = 0; i < s->npend; i++)
			if (s->pend[i].at < t)
				t = s->pend[i].at;
		if (dl < t)
			t = dl;
		if (t > until)
			break;
		s->now = t;
		for (unsigned i = 0; i < s->npend;) {
			if (s->pend[i].at == t) {
				xb_pstats_reply(s->ps, s->pend[i].id, t);
				s->pend[i] = s->pend[--s->npend];
			} else {
				i++;
			}
		}
		if (s->next_send == t)
			sim_send(s);
		sim_update(s);
		if (stop_on_change && s->last_change != start_changes)
			return;
	}
	s->now = until;
}

TEST(config_checked)
{
	struct xb_pstats_cfg c;

	xb_pstats_defaults(&c);
	CHECK(!xb_pstats_check(&c));
	c.window = 1;
	CHECK(xb_pstats_check(&c));
	CHECK(!xb_pstats_new(&c));
	xb_pstats_defaults(&c);
	c.degraded_loss_off = 25;	/* above the entry threshold */
	CHECK(xb_pstats_check(&c));
	xb_pstats_defaults(&c);
	c.timeout_min_ns = 2 * c.loss_ns;
	CHECK(xb_pstats_check(&c));
}

TEST(loss_with_late_replies)
{
	struct xb_pstats *ps = mk();
	struct xb_pstats_summary s;

	CHECK_INT(xb_pstats_sent(ps, 0), ==, 0);
	/* 600 ms: slower than the timeout (no RTT yet: timeout = loss interval
	 * = 1 s, so still good) and before the loss interval: not a loss. */
	CHECK_INT(xb_pstats_reply(ps, 0, 600 * MS), ==, 0);
	CHECK_INT(xb_pstats_sent(ps, 1 * SEC), ==, 1);
	/* Exactly the loss interval is still in time; one nanosecond later lost. */
	CHECK_INT(xb_pstats_deadline(ps), ==, 2 * SEC + 1);
	xb_pstats_update(ps, 2 * SEC);
	xb_pstats_get(ps, 2 * SEC, &s);
	CHECK_INT(s.decided, ==, 1);	/* probe 1 still undecided */
	CHECK_INT(s.lost, ==, 0);
	xb_pstats_update(ps, 2 * SEC + 1);
	xb_pstats_get(ps, 2 * SEC + 1, &s);
	CHECK_INT(s.decided, ==, 2);
	CHECK_INT(s.lost, ==, 1);
	/* The reply after the loss interval is late and does not un-lose. */
	CHECK_INT(xb_pstats_reply(ps, 1, 2200 * MS), ==, 1);
	xb_pstats_get(ps, 2200 * MS, &s);
	CHECK_INT(s.lost, ==, 1);
	CHECK_INT(s.late, ==, 1);
	CHECK(fabs(s.loss_pct - 50) < 1e-9);
	CHECK_INT(s.replies, ==, 1);
	/* Duplicates and unknown ids are refused. */
	CHECK_INT(xb_pstats_reply(ps, 0, 2300 * MS), ==, -1);
	CHECK_INT(xb_pstats_reply(ps, 1, 2300 * MS), ==, -1);
	CHECK_INT(xb_pstats_reply(ps, 7, 2300 * MS), ==, -1);
	/* A late reply that comes before anyone called update is still late. */
	CHECK_INT(xb_pstats_sent(ps, 3 * SEC), ==, 2);
	CHECK_INT(xb_pstats_reply(ps, 2, 4 * SEC + 1), ==, 1);
	xb_pstats_get(ps, 4 * SEC + 1, &s);
	CHECK_INT(s.lost, ==, 2);
	xb_pstats_free(ps);
}

TEST(window_evicts_oldest)
{
	struct xb_pstats_cfg c;
	struct xb_pstats *ps;
	struct xb_pstats_summary s;

	xb_pstats_defaults(&c);
	c.window = 4;
	c.min_decided = 2;
	ps = xb_pstats_new(&c);
	for (uint64_t i = 0; i < 10; i++) {
		uint64_t id = xb_pstats_sent(ps, i * SEC);

		if (i >= 6)	/* the last four replied */
			CHECK_INT(xb_pstats_reply(ps, id, i * SEC + 10 * MS), ==, 0);
	}
	CHECK_INT(xb_pstats_reply(ps, 5, 10 * SEC), ==, -1);	/* out of the window */
	xb_pstats_get(ps, 10 * SEC, &s);
	CHECK_INT(s.in_window, ==, 4);
	CHECK_INT(s.lost, ==, 0);
	CHECK_INT(s.sent, ==, 10);
	xb_pstats_free(ps);
}

TEST(percentiles_exact)
{
	struct xb_pstats *ps = mk();
	struct xb_pstats_summary s;
	/* 1..100 ms in a scrambled order (37 is coprime to 100). */
	for (uint64_t i = 0; i < 100; i++) {
		uint64_t t = i * SEC, rtt = ((i * 37) % 100 + 1) * MS;

		xb_pstats_sent(ps, t);
		xb_pstats_reply(ps, i, t + rtt);
	}
	xb_pstats_get(ps, 100 * SEC, &s);
	CHECK_INT(s.replies, ==, 100);
	CHECK_INT(s.rtt_min_ns, ==, 1 * MS);
	CHECK_INT(s.rtt_p50_ns, ==, 50 * MS);
	CHECK_INT(s.rtt_p95_ns, ==, 95 * MS);
	CHECK_INT(s.rtt_mean_ns, ==, 50500 * 1000);
	CHECK_INT(s.rtt_last_ns, ==, ((99 * 37) % 100 + 1) * MS);
	/* Timeout: 3 x p95 = 285 ms. */
	CHECK_INT(s.timeout_ns, ==, 285 * MS);
	xb_pstats_free(ps);
}

TEST(percentiles_small)
{
	struct xb_pstats *ps = mk();
	struct xb_pstats_summary s;
	static const unsigned v[] = { 7, 3, 9 };

	for (uint64_t i = 0; i < 3; i++) {
		xb_pstats_sent(ps, i * SEC);
		xb_pstats_reply(ps, i, i * SEC + v[i] * MS);
	}
	xb_pstats_get(ps, 3 * SEC, &s);
	CHECK_INT(s.rtt_p50_ns, ==, 7 * MS);	/* rank ceil(1.5) = 2 */
	CHECK_INT(s.rtt_p95_ns, ==, 9 * MS);	/* rank ceil(2.85) = 3 */
	CHECK_INT(s.timeout_ns, ==, 50 * MS);	/* 27 ms, raised to the floor */
	xb_pstats_free(ps);
}

TEST(jitter_rfc3550)
{
	struct xb_pstats *ps = mk();
	struct xb_pstats_summary s;
	static const unsigned v[] = { 10, 12, 11, 15 };

	for (uint64_t i = 0; i < 4; i++) {
		xb_pstats_sent(ps, i * SEC);
		xb_pstats_reply(ps, i, i * SEC + v[i] * MS);
	}
	xb_pstats_get(ps, 4 * SEC, &s);
	/* J: 0 → 2/16 = 0.125 → 0.125 + (1 - 0.125)/16 = 0.1796875
	 *   → 0.1796875 + (4 - 0.1796875)/16 = 0.41845703125 ms. */
	CHECK(fabs(s.jitter_ns - 418457.03125) < 1e-3);
	xb_pstats_free(ps);
}

/* Up on a clean link, then a blackhole at `phase' after a probe: time to down. */
static uint64_t blackhole_ms(uint64_t interval, uint64_t phase, unsigned *probes)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	uint64_t on, sent_before;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, interval, 10 * MS, 0, 1);
	sim_run(&s, 200 * interval + phase, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	s.blackhole = true;
	on = s.now;
	xb_pstats_get(ps, s.now, &sum);
	sent_before = sum.sent;
	sim_run(&s, on + 100 * interval, true);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DOWN);
	xb_pstats_get(ps, s.now, &sum);
	*probes = (unsigned)(sum.sent - sent_before);
	xb_pstats_free(ps);
	return (s.now - on) / MS;
}

TEST(fast_down_blackhole)
{
	uint64_t worst = 0, best = UINT64_MAX, ms;
	unsigned probes;

	/* At 100 ms probes, 10 ms RTT: timeout 50 ms (the floor), detect 3. */
	for (uint64_t phase = 0; phase < 100; phase += 10) {
		ms = blackhole_ms(100 * MS, phase * MS + 11 * MS, &probes);
		printf("# phase %" PRIu64 ": %" PRIu64 " ms, %u probes\n", phase, ms, probes);
		CHECK_INT(probes, ==, 3);
		worst = ms > worst ? ms : worst;
		best = ms < best ? ms : best;
	}
	printf("# blackhole at 100 ms probes: down after %" PRIu64 "..%" PRIu64
	       " ms (onset phase 0..90 ms after a reply)\n", best, worst);
	/* 3 probes lost and the third one's 50 ms timeout: 2 x 100 + 50 ms from
	 * the first lost probe, plus the wait for that probe after the onset. */
	CHECK_INT(worst, <=, 350);
	CHECK_INT(best, >=, 250);
	ms = blackhole_ms(1 * SEC, 500 * MS, &probes);
	printf("# blackhole at 1 s probes: down after %" PRIu64 " ms\n", ms);
	CHECK_INT(ms, <=, 3050);
}

TEST(slow_up_and_hold_down)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	uint64_t down_at, up_at;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, 100 * MS, 10 * MS, 0, 2);
	sim_run(&s, 20 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	s.blackhole = true;
	sim_run(&s, 30 * SEC, true);
	down_at = s.now;
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DOWN);
	/* The link heals 0.5 s later: 10 good probes take 1 s, but the
	 * hold-down keeps it down 5 s from the moment it went down. */
	sim_run(&s, down_at + 500 * MS, false);
	s.blackhole = false;
	sim_run(&s, down_at + 60 * SEC, true);
	up_at = s.now;
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	CHECK_INT(up_at - down_at, >=, 5 * SEC);
	CHECK_INT(up_at - down_at, <=, 5 * SEC + 100 * MS);
	/* No degraded right after: the outage's losses predate the epoch. */
	sim_run(&s, up_at + 30 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	CHECK_INT(sum.state, ==, XB_PST_UP);
	xb_pstats_free(ps);

	/* At 1 s probes the up_after run dominates: 10 good probes, 10 s. */
	ps = mk();
	sim_init(&s, ps, 1 * SEC, 10 * MS, 0, 3);
	sim_run(&s, 200 * SEC, false);
	s.blackhole = true;
	sim_run(&s, 300 * SEC, true);
	down_at = s.now;
	s.blackhole = false;
	sim_run(&s, down_at + 60 * SEC, true);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	CHECK_INT(s.now - down_at, >=, 9 * SEC);
	CHECK_INT(s.now - down_at, <=, 11 * SEC);
	/* A single good probe during an outage does not bring it up. */
	s.blackhole = true;
	sim_run(&s, s.now + 60 * SEC, true);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DOWN);
	s.blackhole = false;
	sim_run(&s, s.now + 1500 * MS, false);
	s.blackhole = true;
	sim_run(&s, s.now + 30 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DOWN);
	xb_pstats_free(ps);
}

/* 10 minutes of 5 % random loss: no state change at all once up. */
static void lossy(uint64_t interval, uint64_t seed)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, interval, 30 * MS, 0.05, seed);
	s.spread = 2 * MS;
	sim_run(&s, 600 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# 5%% loss, %" PRIu64 " ms probes, seed %" PRIu64 ": %" PRIu64
	       " probes, window loss now %.1f %%, worst %u %%, bg %.3f, detect %u,"
	       " state changes after up %u\n",
	       interval / MS, seed, sum.sent, sum.loss_pct, s.max_lost, sum.bg_loss,
	       sum.detect, s.trans_after_up);
	CHECK(s.was_up);
	CHECK_INT(sum.downs, ==, 0);
	CHECK_INT(s.trans_after_up, ==, 0);
	CHECK_INT(sum.state, ==, XB_PST_UP);
	xb_pstats_free(ps);
}

TEST(no_flap_5pct_loss_1s)
{
	for (uint64_t seed = 1; seed <= 20; seed++)
		lossy(1 * SEC, seed);
}

TEST(no_flap_5pct_loss_100ms)
{
	for (uint64_t seed = 1; seed <= 20; seed++)
		lossy(100 * MS, seed);
}

TEST(lossy_link_blackhole_still_detected)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	uint64_t on;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, 100 * MS, 30 * MS, 0.05, 9);
	sim_run(&s, 120 * SEC, false);
	CHECK(xb_pstats_state(ps) != XB_PST_DOWN);
	xb_pstats_get(ps, s.now, &sum);
	s.blackhole = true;
	on = s.now;
	sim_run(&s, on + 10 * SEC, true);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DOWN);
	printf("# blackhole on a 5%% lossy link (detect %u): down after %" PRIu64 " ms\n",
	       sum.detect, (s.now - on) / MS);
	CHECK_INT(sum.detect, >=, 5);
	CHECK_INT(s.now - on, <=, (uint64_t)sum.detect * 100 * MS + 100 * MS);
	xb_pstats_free(ps);
}

TEST(heavy_loss_down_moderate_degraded)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, 100 * MS, 20 * MS, 0, 4);
	sim_run(&s, 10 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	/* A link that worsens: 10 % loss for a minute (the background estimate
	 * learns it, detect grows), then 25 %: degraded (>= 20 % over a
	 * window), not down. */
	s.loss = 0.10;
	sim_run(&s, 70 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	s.loss = 0.25;
	sim_run(&s, 130 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# 25%% loss: state %s, window loss %.0f %%, detect %u, downs %" PRIu64 "\n",
	       xb_pstate_name(sum.state), sum.loss_pct, sum.detect, sum.downs);
	CHECK_INT(sum.state, ==, XB_PST_DEGRADED);
	CHECK_INT(sum.downs, ==, 0);
	CHECK(isfinite(sum.score));
	/* Back to 1 %: leaves degraded once the window is below 10 %. */
	s.loss = 0.01;
	sim_run(&s, 160 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	/* 70 % loss: down by the loss rule. */
	s.loss = 0.7;
	sim_run(&s, 190 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	CHECK_INT(sum.state, ==, XB_PST_DOWN);
	CHECK(isinf(sum.score));
	xb_pstats_free(ps);
}

TEST(rtt_degraded_hysteresis)
{
	struct xb_pstats *ps = mk();
	struct sim s;

	sim_init(&s, ps, 100 * MS, 20 * MS, 0, 5);
	sim_run(&s, 20 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	/* Bufferbloat: RTT 20..120 ms: p95 ~115 ms >= 2 x 20 + 50 = 90 ms. */
	s.spread = 100 * MS;
	sim_run(&s, 40 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DEGRADED);
	/* 20..80 ms: p95 ~77 ms, below entry but above 1.5 x 20 + 25 = 55 ms:
	 * stays degraded (hysteresis). */
	s.spread = 60 * MS;
	sim_run(&s, 60 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_DEGRADED);
	s.spread = 5 * MS;
	sim_run(&s, 80 * SEC, false);
	CHECK_INT(xb_pstats_state(ps), ==, XB_PST_UP);
	xb_pstats_free(ps);
}

TEST(anomaly_zscore)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	struct xb_pstats_summary sum;
	const uint64_t H4 = 4 * 3600 * SEC;

	/* Four hours at 30 ms +- 1 ms, one probe every 5 s. */
	sim_init(&s, ps, 5 * SEC, 30 * MS, 0, 6);
	s.spread = 1 * MS;
	sim_run(&s, H4, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# steady: rtt z %.2f, loss z %.2f, availability %.4f\n", sum.rtt_z, sum.loss_z,
	       sum.availability);
	CHECK(!sum.rtt_anomaly && !sum.loss_anomaly);
	CHECK(fabs(sum.availability - 1) < 1e-9);
	/* A 1 ms step on a flat line: the stddev floor (max(1 ms, 5 % of 30 ms)
	 * = 1.5 ms) keeps it quiet. */
	s.rtt = 31 * MS;
	sim_run(&s, H4 + 6 * 60 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# +1 ms: rtt z %.2f\n", sum.rtt_z);
	CHECK(!sum.rtt_anomaly);
	/* +10 ms for six minutes: anomaly. */
	s.rtt = 40 * MS;
	sim_run(&s, H4 + 12 * 60 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# +10 ms: rtt z %.2f\n", sum.rtt_z);
	CHECK(sum.rtt_anomaly);
	CHECK(sum.rtt_z > 3.5);
	CHECK(!sum.loss_anomaly);
	/* 20 % loss for six minutes: loss anomaly; availability drops. */
	s.rtt = 30 * MS;
	s.loss = 0.2;
	sim_run(&s, H4 + 18 * 60 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	printf("# 20%% loss: loss z %.2f, availability %.3f\n", sum.loss_z, sum.availability);
	CHECK(sum.loss_anomaly);
	CHECK(sum.availability < 0.99 && sum.availability > 0.85);
	xb_pstats_free(ps);
}

TEST(anomaly_needs_baseline)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, 5 * SEC, 30 * MS, 0, 7);
	sim_run(&s, 20 * 60 * SEC, false);	/* 20 minutes: too short */
	s.rtt = 300 * MS;
	sim_run(&s, 27 * 60 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	CHECK(!sum.rtt_anomaly);
	CHECK(sum.rtt_z == 0);
	xb_pstats_free(ps);
}

static double score_of(uint64_t rtt, uint64_t spread, double loss, uint64_t seed,
		       enum xb_pstate *st)
{
	struct xb_pstats *ps = mk();
	struct sim s;
	struct xb_pstats_summary sum;

	sim_init(&s, ps, 100 * MS, rtt, loss, seed);
	s.spread = spread;
	sim_run(&s, 60 * SEC, false);
	xb_pstats_get(ps, s.now, &sum);
	*st = sum.state;
	xb_pstats_free(ps);
	return sum.score;
}

TEST(score_ordering)
{
	enum xb_pstate st;
	double fast = score_of(20 * MS, 0, 0, 1, &st);
	double slow = score_of(60 * MS, 0, 0, 1, &st);
	double jittery = score_of(20 * MS, 20 * MS, 0, 1, &st);
	double lossy = score_of(20 * MS, 0, 0.05, 1, &st);
	double degraded = score_of(20 * MS, 0, 0.3, 1, &st);

	CHECK_INT(st, ==, XB_PST_DEGRADED);
	printf("# scores: fast %.1f slow %.1f jittery %.1f lossy %.1f degraded %.1f\n", fast,
	       slow, jittery, lossy, degraded);
	CHECK(fast < jittery && jittery < slow);
	CHECK(fast < lossy && lossy < degraded);
	CHECK(fast > 19 && fast < 21);	/* RTT and nothing else */
}
