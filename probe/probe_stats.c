/* Probe statistics and the up / degraded / down state machine.
 *
 * Rules (docs/probing.md has the reasoning):
 *
 *   fast down   the last `detect' probes all missed their timeout, where
 *               detect = max(detect_mult, ceil(ln false_down / ln bg)) capped
 *               at 3 x detect_mult, bg being the background miss rate learnt
 *               while the tunnel was not down. On a clean link detect is
 *               detect_mult (BFD's rule); on a 5 % lossy link it grows to 6,
 *               so random loss alone makes a false down about once in 10^7
 *               probes instead of once in 8 000.
 *   loss down   loss >= down_loss over the probes decided since the tunnel
 *               last came up (at least min_decided of them).
 *   degraded    loss >= degraded_loss_on over a whole window of probes
 *               decided since the tunnel came up, or RTT p95 >= mult x min
 *               + add; left only below the lower _off thresholds
 *               (hysteresis).
 *   up          after an outage: up_after good probes in a row, and not
 *               sooner than hold_down_ns after going down; a tunnel never
 *               down yet (just created): its first good probe.
 *
 * The loss rules look only at probes sent since the tunnel last came up,
 * otherwise the losses of the outage itself would hold it down for a whole
 * window after it recovered.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "probe/probe_stats.h"

#define NSEC_PER_MIN (60 * NSEC_PER_SEC)
#define BG_ALPHA_MIN (1.0 / 256)	/* slowest weight of the background estimate */

enum {
	F_REPLIED = 1 << 0,	/* reply within loss_ns */
	F_JUDGED = 1 << 1,	/* timeout decision taken (good or missed) */
	F_MISSED = 1 << 2,	/* no reply by the timeout */
	F_LOST = 1 << 3,	/* no reply by loss_ns */
	F_LATE = 1 << 4,	/* reply after loss_ns */
};

struct slot {
	uint64_t sent, rtt;
	uint8_t fl;
};

struct minute {
	int64_t idx;		/* minute number (monotonic), -1 unused */
	uint32_t decided, lost, nrtt;
	double rtt_sum;		/* ns */
};

struct xb_pstats {
	struct xb_pstats_cfg cfg;
	struct slot *ring;
	uint64_t next_id;	/* id of the next probe; ring holds the last window */
	uint64_t timeout;	/* current per-probe timeout, ns */
	unsigned miss_run, good_run;
	uint64_t miss_sent;	/* send time of the newest missed probe */
	double bg;		/* background miss rate */
	uint64_t bg_n;
	double jitter;		/* ns */
	uint64_t last_rtt;
	bool have_last;
	enum xb_pstate state;
	uint64_t since, epoch, down_at;
	bool was_down;		/* down_at is meaningful */
	uint64_t transitions, downs;
	struct minute hist[XB_PSTATS_HISTORY_MIN];
};

void xb_pstats_defaults(struct xb_pstats_cfg *c)
{
	*c = (struct xb_pstats_cfg){
		.window = 100,
		.loss_ns = NSEC_PER_SEC,
		.timeout_min_ns = 50 * NSEC_PER_MSEC,
		.timeout_rtt_mult = 3,
		.detect_mult = 3,
		.false_down = 1e-7,
		.up_after = 10,
		.hold_down_ns = 5 * NSEC_PER_SEC,
		.min_decided = 20,
		.down_loss = 50,
		.degraded_loss_on = 20,
		.degraded_loss_off = 10,
		.degraded_rtt_mult_on = 2,
		.degraded_rtt_add_on_ns = 50 * NSEC_PER_MSEC,
		.degraded_rtt_mult_off = 1.5,
		.degraded_rtt_add_off_ns = 25 * NSEC_PER_MSEC,
	};
}

const char *xb_pstats_check(const struct xb_pstats_cfg *c)
{
	if (c->window < 2 || c->window > 4096)
		return "window must be 2..4096 probes";
	if (!c->loss_ns || c->timeout_min_ns > c->loss_ns)
		return "loss interval must be > 0 and >= the minimum timeout";
	if (!c->timeout_rtt_mult || !c->detect_mult || c->detect_mult > 64)
		return "timeout multiplier must be > 0, detect multiplier 1..64";
	if (!(c->false_down > 0 && c->false_down < 1))
		return "false_down must be between 0 and 1";
	if (!c->up_after || c->min_decided > c->window)
		return "up_after must be > 0, min_decided <= window";
	if (!(c->degraded_loss_off <= c->degraded_loss_on && c->degraded_loss_on <= c->down_loss &&
	      c->degraded_loss_off >= 0 && c->down_loss <= 100))
		return "loss thresholds must be 0 <= degraded off <= degraded on <= down <= 100";
	if (!(c->degraded_rtt_mult_off >= 1 && c->degraded_rtt_mult_off <= c->degraded_rtt_mult_on) ||
	    c->degraded_rtt_add_off_ns > c->degraded_rtt_add_on_ns)
		return "RTT thresholds must be 1 <= off <= on";
	return NULL;
}

struct xb_pstats *xb_pstats_new(const struct xb_pstats_cfg *cfg)
{
	struct xb_pstats *ps;

	if (xb_pstats_check(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	ps->ring = calloc(cfg->window, sizeof(*ps->ring));
	if (!ps->ring) {
		free(ps);
		return NULL;
	}
	ps->cfg = *cfg;
	ps->timeout = cfg->loss_ns;
	ps->state = XB_PST_DOWN;
	for (size_t i = 0; i < XB_PSTATS_HISTORY_MIN; i++)
		ps->hist[i].idx = -1;
	return ps;
}

void xb_pstats_free(struct xb_pstats *ps)
{
	if (!ps)
		return;
	free(ps->ring);
	free(ps);
}

const struct xb_pstats_cfg *xb_pstats_cfg(const struct xb_pstats *ps)
{
	return &ps->cfg;
}

unsigned xb_pstats_miss_run(const struct xb_pstats *ps)
{
	return ps->miss_run;
}

enum xb_pstate xb_pstats_state(const struct xb_pstats *ps)
{
	return ps->state;
}

const char *xb_pstate_name(enum xb_pstate st)
{
	switch (st) {
	case XB_PST_UP:
		return "up";
	case XB_PST_DEGRADED:
		return "degraded";
	case XB_PST_DOWN:
		break;
	}
	return "down";
}

static uint64_t first_id(const struct xb_pstats *ps)
{
	return ps->next_id > ps->cfg.window ? ps->next_id - ps->cfg.window : 0;
}

static struct slot *slot_of(const struct xb_pstats *ps, uint64_t id)
{
	return &ps->ring[id % ps->cfg.window];
}

static struct minute *minute_of(struct xb_pstats *ps, uint64_t t)
{
	int64_t m = (int64_t)(t / NSEC_PER_MIN);
	struct minute *b = &ps->hist[m % XB_PSTATS_HISTORY_MIN];

	if (b->idx > m)
		return NULL;	/* older than the history */
	if (b->idx < m)
		*b = (struct minute){ .idx = m };
	return b;
}

/* A probe is decided (replied in time, or lost): into its minute's bucket. */
static void account(struct xb_pstats *ps, const struct slot *s)
{
	struct minute *b = minute_of(ps, s->sent);

	if (!b)
		return;
	b->decided++;
	if (s->fl & F_LOST) {
		b->lost++;
	} else {
		b->nrtt++;
		b->rtt_sum += (double)s->rtt;
	}
}

static void learn_bg(struct xb_pstats *ps, bool missed)
{
	double a;

	if (ps->state == XB_PST_DOWN)
		return;		/* an outage is not background loss */
	ps->bg_n++;
	a = 1.0 / (double)ps->bg_n;
	if (a < BG_ALPHA_MIN)
		a = BG_ALPHA_MIN;
	ps->bg += a * ((missed ? 1.0 : 0.0) - ps->bg);
}

/* Misses of the current run are learnt as background loss only once the
 * path answers again; a run that ends in down was an outage, not noise, and
 * must not raise `detect' for the next one. */
static void miss(struct xb_pstats *ps, struct slot *s)
{
	s->fl |= F_JUDGED | F_MISSED;
	if (s->sent > ps->miss_sent)
		ps->miss_sent = s->sent;
	ps->miss_run++;
	ps->good_run = 0;
}

static void run_ended(struct xb_pstats *ps)
{
	for (unsigned i = 0; i < ps->miss_run; i++)
		learn_bg(ps, true);
	ps->miss_run = 0;
}

/* Apply what is due by now to one probe; force: it leaves the window. */
static void expire(struct xb_pstats *ps, struct slot *s, uint64_t now, bool force)
{
	if ((s->fl & F_REPLIED) || (now < s->sent && !force))
		return;
	/* An answer at exactly the timeout or loss interval is in time. */
	if (!(s->fl & F_JUDGED) && (force || now - s->sent > ps->timeout))
		miss(ps, s);
	if (!(s->fl & F_LOST) && (force || now - s->sent > ps->cfg.loss_ns)) {
		s->fl |= F_LOST;
		account(ps, s);
	}
}

uint64_t xb_pstats_sent(struct xb_pstats *ps, uint64_t now)
{
	struct slot *s = slot_of(ps, ps->next_id);

	if (ps->next_id >= ps->cfg.window)
		expire(ps, s, now, true);
	*s = (struct slot){ .sent = now };
	return ps->next_id++;
}

uint64_t xb_pstats_count(const struct xb_pstats *ps)
{
	return ps->next_id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* In-time RTTs of the window, sorted; returns how many. */
static unsigned sorted_rtts(const struct xb_pstats *ps, uint64_t *out)
{
	unsigned n = 0;

	for (uint64_t id = first_id(ps); id < ps->next_id; id++) {
		const struct slot *s = slot_of(ps, id);

		if (s->fl & F_REPLIED)
			out[n++] = s->rtt;
	}
	qsort(out, n, sizeof(*out), cmp_u64);
	return n;
}

/* Nearest rank: the smallest value with at least p % of the values <= it. */
static uint64_t pctl(const uint64_t *v, unsigned n, unsigned p)
{
	unsigned rank = (unsigned)(((uint64_t)p * n + 99) / 100);

	return v[rank ? rank - 1 : 0];
}

static void set_timeout(struct xb_pstats *ps)
{
	uint64_t v[4096], t;
	unsigned n = sorted_rtts(ps, v);

	if (!n) {
		ps->timeout = ps->cfg.loss_ns;
		return;
	}
	t = pctl(v, n, 95) * ps->cfg.timeout_rtt_mult;
	if (t < ps->cfg.timeout_min_ns)
		t = ps->cfg.timeout_min_ns;
	if (t > ps->cfg.loss_ns)
		t = ps->cfg.loss_ns;
	ps->timeout = t;
}

static void jitter(struct xb_pstats *ps, uint64_t rtt)
{
	/* RFC 3550 6.4.1: D is the difference of transit times, which for an
	 * echo is the difference of consecutive RTTs; J += (|D| - J) / 16. */
	if (ps->have_last) {
		double d = fabs((double)rtt - (double)ps->last_rtt);

		ps->jitter += (d - ps->jitter) / 16;
	}
	ps->last_rtt = rtt;
	ps->have_last = true;
}

int xb_pstats_reply(struct xb_pstats *ps, uint64_t id, uint64_t now)
{
	struct slot *s;

	if (id >= ps->next_id || id < first_id(ps))
		return -1;
	s = slot_of(ps, id);
	if ((s->fl & (F_REPLIED | F_LATE)) || now < s->sent)
		return -1;
	if ((s->fl & F_LOST) || now - s->sent > ps->cfg.loss_ns) {
		expire(ps, s, now, false);
		s->fl |= F_LATE;
		return 1;
	}
	s->fl |= F_REPLIED;
	s->rtt = now - s->sent;
	account(ps, s);
	jitter(ps, s->rtt);
	if (!(s->fl & F_JUDGED) && s->rtt > ps->timeout)
		miss(ps, s);	/* update() was not called in time */
	run_ended(ps);		/* even a slow reply shows the path works */
	if (!(s->fl & F_JUDGED)) {
		s->fl |= F_JUDGED;
		ps->good_run++;
		learn_bg(ps, false);
	}
	set_timeout(ps);
	return 0;
}

static unsigned detect(const struct xb_pstats *ps)
{
	unsigned lo = ps->cfg.detect_mult, hi = 3 * lo;
	double k;

	if (ps->bg <= 0)
		return lo;
	if (ps->bg >= 1)
		return hi;
	k = ceil(log(ps->cfg.false_down) / log(ps->bg) - 1e-9);
	return k < lo ? lo : k > hi ? hi : (unsigned)k;
}

struct view {
	unsigned decided, lost, replies;
	bool full;		/* the whole window was sent since the epoch */
	uint64_t min, p95;
};

/* Loss since the epoch, RTT over the whole window. */
static void look(const struct xb_pstats *ps, struct view *v)
{
	uint64_t r[4096];

	*v = (struct view){ 0 };
	v->full = ps->next_id >= ps->cfg.window && slot_of(ps, first_id(ps))->sent >= ps->epoch;
	for (uint64_t id = first_id(ps); id < ps->next_id; id++) {
		const struct slot *s = slot_of(ps, id);

		if (s->sent < ps->epoch || !(s->fl & (F_REPLIED | F_LOST)))
			continue;
		v->decided++;
		v->lost += !!(s->fl & F_LOST);
	}
	v->replies = sorted_rtts(ps, r);
	if (v->replies) {
		v->min = r[0];
		v->p95 = pctl(r, v->replies, 95);
	}
}

/* The down rule judges from min_decided probes: 50 % of 20 does not happen
 * by chance on a working link. The degraded rules need a whole window: 20 %
 * of 20 probes would happen by chance on a 5 % lossy link. */
static bool loss_over(const struct view *v, double pct, unsigned need, bool full)
{
	return v->decided >= need && (v->full || !full) && 100.0 * v->lost >= pct * v->decided;
}

static bool rtt_over(const struct xb_pstats *ps, const struct view *v, double mult, uint64_t add)
{
	return v->replies >= ps->cfg.min_decided && (double)v->p95 >= mult * (double)v->min + (double)add;
}

static enum xb_pstate next_state(const struct xb_pstats *ps, const struct view *v, uint64_t now)
{
	const struct xb_pstats_cfg *c = &ps->cfg;

	if (ps->state == XB_PST_DOWN) {
		/* Slow up is for a tunnel coming back from an outage; a new
		 * one is up at its first answer. */
		if (ps->good_run < (ps->was_down ? c->up_after : 1) ||
		    (ps->was_down && now - ps->down_at < c->hold_down_ns))
			return XB_PST_DOWN;
		return XB_PST_UP;	/* degraded, if so, on the next update */
	}
	if (ps->miss_run >= detect(ps) || loss_over(v, c->down_loss, c->min_decided, false))
		return XB_PST_DOWN;
	if (ps->state == XB_PST_UP)
		return loss_over(v, c->degraded_loss_on, c->min_decided, true) ||
			rtt_over(ps, v, c->degraded_rtt_mult_on, c->degraded_rtt_add_on_ns) ?
			XB_PST_DEGRADED : XB_PST_UP;
	return loss_over(v, c->degraded_loss_off, c->min_decided, true) ||
		rtt_over(ps, v, c->degraded_rtt_mult_off, c->degraded_rtt_add_off_ns) ?
		XB_PST_DEGRADED : XB_PST_UP;
}

/* A state change: the down and up-again bookkeeping. */
static void enter(struct xb_pstats *ps, enum xb_pstate st, uint64_t now)
{
	if (st == XB_PST_DOWN) {
		ps->miss_run = 0;	/* the outage's misses are not learnt */
		ps->down_at = now;
		ps->was_down = true;
		ps->good_run = 0;
		ps->downs++;
	} else if (ps->state == XB_PST_DOWN) {
		ps->epoch = now;
	}
	ps->state = st;
	ps->since = now;
	ps->transitions++;
}

bool xb_pstats_update(struct xb_pstats *ps, uint64_t now)
{
	struct view v;
	enum xb_pstate st;

	for (uint64_t id = first_id(ps); id < ps->next_id; id++)
		expire(ps, slot_of(ps, id), now, false);
	look(ps, &v);
	st = next_state(ps, &v, now);
	if (st == ps->state)
		return false;
	enter(ps, st, now);
	return true;
}

bool xb_pstats_force_down(struct xb_pstats *ps, uint64_t now)
{
	if (ps->state == XB_PST_DOWN)
		return false;
	enter(ps, XB_PST_DOWN, now);
	return true;
}

uint64_t xb_pstats_miss_sent(const struct xb_pstats *ps)
{
	return ps->miss_run ? ps->miss_sent : 0;
}

enum xb_pfate xb_pstats_fate(const struct xb_pstats *ps, uint64_t id, uint64_t *sent_ns,
			     uint64_t *rtt_ns)
{
	const struct slot *s;

	if (id >= ps->next_id || id < first_id(ps))
		return XB_PFATE_UNKNOWN;
	s = slot_of(ps, id);
	if (sent_ns)
		*sent_ns = s->sent;
	if (s->fl & F_REPLIED) {
		if (rtt_ns)
			*rtt_ns = s->rtt;
		return XB_PFATE_REPLIED;
	}
	return s->fl & F_LOST ? XB_PFATE_LOST : XB_PFATE_PENDING;
}

uint64_t xb_pstats_deadline(const struct xb_pstats *ps)
{
	uint64_t d = UINT64_MAX;

	for (uint64_t id = first_id(ps); id < ps->next_id; id++) {
		const struct slot *s = slot_of(ps, id);
		uint64_t t;

		if (s->fl & F_REPLIED)
			continue;
		if (!(s->fl & F_JUDGED))
			t = s->sent + ps->timeout + 1;
		else if (!(s->fl & F_LOST))
			t = s->sent + ps->cfg.loss_ns + 1;
		else
			continue;
		if (t < d)
			d = t;
	}
	return d;
}

static void window_stats(const struct xb_pstats *ps, struct xb_pstats_summary *s)
{
	uint64_t r[4096];
	double sum = 0, sq = 0, mean;

	for (uint64_t id = first_id(ps); id < ps->next_id; id++) {
		const struct slot *p = slot_of(ps, id);

		s->in_window++;
		s->decided += !!(p->fl & (F_REPLIED | F_LOST));
		s->lost += !!(p->fl & F_LOST);
		s->late += !!(p->fl & F_LATE);
	}
	s->loss_pct = s->decided ? 100.0 * s->lost / s->decided : 0;
	s->replies = sorted_rtts(ps, r);
	if (!s->replies)
		return;
	for (unsigned i = 0; i < s->replies; i++) {
		sum += (double)r[i];
		sq += (double)r[i] * (double)r[i];
	}
	mean = sum / s->replies;
	s->rtt_min_ns = r[0];
	s->rtt_mean_ns = (uint64_t)llround(mean);
	s->rtt_sd_ns = (uint64_t)llround(sqrt(fmax(0, sq / s->replies - mean * mean)));
	s->rtt_p50_ns = pctl(r, s->replies, 50);
	s->rtt_p95_ns = pctl(r, s->replies, 95);
}

/* Buckets of minutes cur - from .. cur - to (inclusive, from >= to). */
static const struct minute *bucket(const struct xb_pstats *ps, int64_t m)
{
	const struct minute *b;

	if (m < 0)
		return NULL;
	b = &ps->hist[m % XB_PSTATS_HISTORY_MIN];
	return b->idx == m && b->decided ? b : NULL;
}

static double availability(const struct xb_pstats *ps, int64_t cur)
{
	uint64_t dec = 0, ok = 0;

	for (int64_t m = cur - XB_PSTATS_AVAIL_MIN + 1; m <= cur; m++) {
		const struct minute *b = bucket(ps, m);

		if (b) {
			dec += b->decided;
			ok += b->decided - b->lost;
		}
	}
	return dec ? (double)ok / (double)dec : -1;
}

/* One per-minute series (RTT mean or loss %): z of the recent minutes'
 * mean against the baseline minutes before them; 0 without enough data. */
static double zscore(const struct xb_pstats *ps, int64_t cur, bool rtt)
{
	double rs = 0, bs = 0, bq = 0, v, mean, sd, floor;
	unsigned rn = 0, bn = 0;

	for (int64_t m = cur - XB_PSTATS_HISTORY_MIN + 1; m < cur; m++) {
		const struct minute *b = bucket(ps, m);

		if (!b || (rtt && !b->nrtt))
			continue;
		v = rtt ? b->rtt_sum / b->nrtt : 100.0 * b->lost / b->decided;
		if (m >= cur - XB_PSTATS_RECENT_MIN) {
			rs += v;
			rn++;
		} else {
			bs += v;
			bq += v * v;
			bn++;
		}
	}
	if (bn < XB_PSTATS_BASELINE_MIN || rn < (XB_PSTATS_RECENT_MIN + 1) / 2)
		return 0;
	mean = bs / bn;
	sd = sqrt(fmax(0, bq / bn - mean * mean));
	floor = rtt ? fmax(XB_PSTATS_RTT_SD_FLOOR_NS, XB_PSTATS_RTT_SD_FLOOR_FRAC * mean) :
		XB_PSTATS_LOSS_SD_FLOOR;
	return (rs / rn - mean) / fmax(sd, floor);
}

void xb_pstats_get(const struct xb_pstats *ps, uint64_t now, struct xb_pstats_summary *s)
{
	int64_t cur = (int64_t)(now / NSEC_PER_MIN);

	*s = (struct xb_pstats_summary){
		.state = ps->state,
		.state_since_ns = ps->since,
		.transitions = ps->transitions,
		.downs = ps->downs,
		.sent = ps->next_id,
		.rtt_last_ns = ps->last_rtt,
		.jitter_ns = ps->jitter,
		.timeout_ns = ps->timeout,
		.detect = detect(ps),
		.bg_loss = ps->bg,
	};
	window_stats(ps, s);
	s->availability = availability(ps, cur);
	s->rtt_z = zscore(ps, cur, true);
	s->loss_z = zscore(ps, cur, false);
	s->rtt_anomaly = fabs(s->rtt_z) > XB_PSTATS_ANOMALY_Z;
	s->loss_anomaly = fabs(s->loss_z) > XB_PSTATS_ANOMALY_Z;
	if (ps->state == XB_PST_DOWN) {
		s->score = INFINITY;
		return;
	}
	s->score = s->rtt_mean_ns / 1e6 + XB_PSTATS_JITTER_WEIGHT * s->jitter_ns / 1e6 +
		   XB_PSTATS_LOSS_PENALTY_MS * s->loss_pct;
	if (ps->state == XB_PST_DEGRADED)
		s->score += XB_PSTATS_DEGRADED_PENALTY_MS;
}
