/* Link-impairment engine; see impair.h for the per-packet rules. */
#include "tests/tools/impair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
uint64_t imp_rand(struct imp_dir *d)
{
	uint64_t *s = d->rng, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* A draw in [0, IMP_PPM). */
static uint32_t draw_ppm(struct imp_dir *d)
{
	return (uint32_t)((imp_rand(d) >> 11) % IMP_PPM);
}

void imp_dir_reseed(struct imp_dir *d, uint64_t seed)
{
	/* Each direction gets its own stream from the same seed. */
	uint64_t x = seed ^ (d->name[0] == 'b' ? 0xba5eba11ULL : 0);

	d->seed = seed;
	for (int i = 0; i < 4; i++)
		d->rng[i] = splitmix64(&x);
}

void imp_profile_default(struct imp_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->limit = 10000;
}

void imp_dir_init(struct imp_dir *d, const char *name, uint64_t seed)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	imp_profile_default(&d->prof);
	imp_dir_reseed(d, seed);
}

void imp_dir_free(struct imp_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->heap[i]);
	free(d->heap);
	d->heap = NULL;
	d->n = d->cap = 0;
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return !errno && end != s && !*end && *out >= lo && *out <= hi;
}

/* Rates: a number with an optional bit/kbit/mbit/gbit suffix (tc's units). */
static bool parse_rate(const char *s, uint64_t *bps)
{
	static const struct { const char *sfx; double mul; } units[] = {
		{ "gbit", 1e9 }, { "mbit", 1e6 }, { "kbit", 1e3 }, { "bit", 1 }, { "", 1 },
	};
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcasecmp(end, units[i].sfx)) {
			v *= units[i].mul;
			if (v > 1e12)
				return false;
			*bps = (uint64_t)v;
			return true;
		}
	}
	return false;
}

static bool parse_onoff(const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "1") || !strcmp(s, "true"))
		return (*out = true), true;
	if (!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "false"))
		return (*out = false), true;
	return false;
}

bool imp_apply(struct imp_dir *d, struct imp_profile *p, const char *kv,
	       char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	char key[32];
	const char *val;
	double v;

	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
		snprintf(err, errlen, "`%s' is not key=value", kv);
		return false;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	val = eq + 1;

	if (!strcmp(key, "delay") || !strcmp(key, "jitter")) {
		if (!parse_num(val, 0, 600000, &v))
			goto bad;
		*(!strcmp(key, "delay") ? &p->delay_ns : &p->jitter_ns) = (uint64_t)(v * 1e6 + 0.5);
	} else if (!strcmp(key, "loss") || !strcmp(key, "duplicate") || !strcmp(key, "reorder")) {
		if (!parse_num(val, 0, 100, &v))
			goto bad;
		uint32_t ppm = (uint32_t)(v * 1e4 + 0.5);
		if (!strcmp(key, "loss"))
			p->loss_ppm = ppm;
		else if (!strcmp(key, "duplicate"))
			p->dup_ppm = ppm;
		else
			p->reorder_ppm = ppm;
	} else if (!strcmp(key, "rate")) {
		if (!parse_rate(val, &p->rate_bps))
			goto bad;
	} else if (!strcmp(key, "limit")) {
		if (!parse_num(val, 1, 1000000, &v) || v != (uint32_t)v)
			goto bad;
		p->limit = (uint32_t)v;
	} else if (!strcmp(key, "blackhole")) {
		if (!parse_onoff(val, &p->blackhole))
			goto bad;
	} else if (!strcmp(key, "seed")) {
		char *end;
		errno = 0;
		unsigned long long s = strtoull(val, &end, 0);
		if (errno || end == val || *end)
			goto bad;
		imp_dir_reseed(d, s);
	} else {
		snprintf(err, errlen, "unknown key `%s' (delay jitter loss duplicate "
			 "reorder rate limit blackhole seed)", key);
		return false;
	}
	return true;
bad:
	snprintf(err, errlen, "bad value for %s: `%s'", key, val);
	return false;
}

static bool before(const struct imp_pkt *a, const struct imp_pkt *b)
{
	return a->release_ns < b->release_ns ||
	       (a->release_ns == b->release_ns && a->order < b->order);
}

static void sift_up(struct imp_dir *d, size_t i)
{
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!before(d->heap[i], d->heap[up]))
			break;
		struct imp_pkt *t = d->heap[i];
		d->heap[i] = d->heap[up];
		d->heap[up] = t;
		i = up;
	}
}

static void sift_down(struct imp_dir *d, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < d->n && before(d->heap[l], d->heap[m]))
			m = l;
		if (r < d->n && before(d->heap[r], d->heap[m]))
			m = r;
		if (m == i)
			return;
		struct imp_pkt *t = d->heap[i];
		d->heap[i] = d->heap[m];
		d->heap[m] = t;
		i = m;
	}
}

static void push(struct imp_dir *d, const uint8_t *pkt, size_t len, uint64_t release)
{
	struct imp_pkt *p;

	if (d->n >= d->prof.limit) {
		d->cnt.overlimit++;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 256;
		struct imp_pkt **h = realloc(d->heap, cap * sizeof(*h));
		if (!h) {
			d->cnt.overlimit++;
			return;
		}
		d->heap = h;
		d->cap = cap;
	}
	p = malloc(sizeof(*p) + len);
	if (!p) {
		d->cnt.overlimit++;
		return;
	}
	p->release_ns = release;
	p->order = d->next_order++;
	p->len = len;
	memcpy(p->data, pkt, len);
	d->heap[d->n] = p;
	sift_up(d, d->n++);
}

void imp_set_profile(struct imp_dir *d, const struct imp_profile *p)
{
	if (p->blackhole && !d->prof.blackhole) {
		d->cnt.blackholed += d->n;
		imp_dir_free(d);
	}
	d->prof = *p;
}

void imp_enqueue(struct imp_dir *d, const uint8_t *pkt, size_t len, uint64_t now)
{
	const struct imp_profile *p = &d->prof;
	uint32_t u_loss = draw_ppm(d), u_dup = draw_ppm(d), u_reorder = draw_ppm(d);
	uint64_t u_jitter = imp_rand(d);
	uint64_t t = now;
	int64_t jitter = 0;

	d->cnt.rx++;
	if (p->blackhole) {
		d->cnt.blackholed++;
		return;
	}
	if (u_loss < p->loss_ppm) {
		d->cnt.lost++;
		return;
	}
	if (p->rate_bps) {
		uint64_t start = d->link_free_ns > now ? d->link_free_ns : now;
		t = start + (uint64_t)len * 8 * NSEC_PER_SEC_IMP / p->rate_bps;
		d->link_free_ns = t;
	}
	if (u_reorder < p->reorder_ppm && p->delay_ns) {
		d->cnt.reordered++;
	} else {
		if (p->jitter_ns)
			jitter = (int64_t)(u_jitter % (2 * p->jitter_ns + 1)) - (int64_t)p->jitter_ns;
		int64_t dl = (int64_t)p->delay_ns + jitter;
		t += dl > 0 ? (uint64_t)dl : 0;
	}
	push(d, pkt, len, t);
	if (u_dup < p->dup_ppm) {
		d->cnt.duplicated++;
		push(d, pkt, len, t);
	}
}

uint64_t imp_next_due(const struct imp_dir *d)
{
	return d->n ? d->heap[0]->release_ns : UINT64_MAX;
}

struct imp_pkt *imp_dequeue(struct imp_dir *d, uint64_t now)
{
	struct imp_pkt *p;

	if (!d->n || d->heap[0]->release_ns > now)
		return NULL;
	p = d->heap[0];
	d->heap[0] = d->heap[--d->n];
	sift_down(d, 0);
	d->cnt.tx++;
	return p;
}

int imp_format(const struct imp_dir *d, char *buf, size_t len)
{
	const struct imp_profile *p = &d->prof;
	const struct imp_counters *c = &d->cnt;

	return snprintf(buf, len,
		"%s delay=%.3f jitter=%.3f loss=%.4f duplicate=%.4f reorder=%.4f "
		"rate=%" PRIu64 " limit=%u blackhole=%s seed=%" PRIu64 " "
		"rx=%" PRIu64 " tx=%" PRIu64 " lost=%" PRIu64 " blackholed=%" PRIu64
		" overlimit=%" PRIu64 " duplicated=%" PRIu64 " reordered=%" PRIu64
		" queued=%zu",
		d->name, p->delay_ns / 1e6, p->jitter_ns / 1e6, p->loss_ppm / 1e4,
		p->dup_ppm / 1e4, p->reorder_ppm / 1e4, p->rate_bps, p->limit,
		p->blackhole ? "on" : "off", d->seed, c->rx, c->tx, c->lost,
		c->blackholed, c->overlimit, c->duplicated, c->reordered, d->n);
}
