/* Fleet signals: see fleet.h. */
#include "gateway/health/fleet.h"

#include <math.h>
#include <string.h>

#define NS_PER_MIN (60 * 1000000000ULL)

double xb_fleet_z(const double *base, size_t n, double x, double *mean, double *sd)
{
	double sum = 0, var = 0, m, floor;

	*mean = *sd = 0;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		sum += base[i];
	m = sum / (double)n;
	for (size_t i = 0; i < n; i++)
		var += (base[i] - m) * (base[i] - m);
	*mean = m;
	*sd = sqrt(var / (double)n);
	floor = sqrt(m) > 1 ? sqrt(m) : 1;
	return (x - m) / (*sd > floor ? *sd : floor);
}

void xb_fleet_init(struct xb_fleet *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < XB_FLEET_MINUTES; i++)
		f->m[i].idx = -1;
	f->first = -1;
}

void xb_fleet_add(struct xb_fleet *f, uint64_t now, enum xb_fleet_kind kind, unsigned count)
{
	int64_t idx = (int64_t)(now / NS_PER_MIN);
	struct xb_fleet_minute *m = &f->m[idx % XB_FLEET_MINUTES];

	if (f->first < 0)
		f->first = idx;
	if (m->idx != idx)
		*m = (struct xb_fleet_minute){ .idx = idx };
	m->n[kind] += count;
	f->total[kind] += count;
}

/* Events of kind in minute idx (0 for a minute nobody counted in). */
static double at(const struct xb_fleet *f, int64_t idx, enum xb_fleet_kind kind)
{
	const struct xb_fleet_minute *m = &f->m[idx % XB_FLEET_MINUTES];

	return m->idx == idx ? m->n[kind] : 0;
}

/* The window of XB_FLEET_RECENT_MIN minutes ending before minute end. */
static double window(const struct xb_fleet *f, int64_t end, enum xb_fleet_kind kind)
{
	double sum = 0;

	for (int64_t i = end - XB_FLEET_RECENT_MIN; i < end; i++)
		sum += at(f, i, kind);
	return sum;
}

void xb_fleet_judge(const struct xb_fleet *f, uint64_t now, enum xb_fleet_kind kind,
		    struct xb_fleet_anomaly *out)
{
	int64_t cur = (int64_t)(now / NS_PER_MIN);
	double base[XB_FLEET_WINDOWS];
	size_t n = 0;

	*out = (struct xb_fleet_anomaly){ 0 };
	if (f->first < 0 || cur - XB_FLEET_RECENT_MIN < f->first)
		return;
	out->recent = window(f, cur, kind);
	for (int64_t k = 1; k <= XB_FLEET_WINDOWS; k++) {
		int64_t end = cur - k * XB_FLEET_RECENT_MIN;

		if (end - XB_FLEET_RECENT_MIN < f->first)
			break;
		base[n++] = window(f, end, kind);
	}
	out->windows = (unsigned)n;
	if (n < XB_FLEET_MIN_WINDOWS)
		return;
	out->judged = true;
	out->z = xb_fleet_z(base, n, out->recent, &out->mean, &out->sd);
	out->anomaly = fabs(out->z) > XB_FLEET_Z;
}

const char *xb_fleet_kind_name(enum xb_fleet_kind k)
{
	return k == XB_FLEET_CONNECTS ? "connects" : "disconnects";
}

void xb_fleet_diff(const uint8_t (*prev)[XB_FLEET_KEY_LEN], size_t np,
		   const uint8_t (*cur)[XB_FLEET_KEY_LEN], size_t nc, unsigned *connects,
		   unsigned *disconnects)
{
	size_t i = 0, j = 0;

	*connects = *disconnects = 0;
	while (i < np || j < nc) {
		int c = i == np ? 1 : j == nc ? -1 : memcmp(prev[i], cur[j], XB_FLEET_KEY_LEN);

		if (c < 0) {
			++*disconnects;
			i++;
		} else if (c > 0) {
			++*connects;
			j++;
		} else {
			i++;
			j++;
		}
	}
}
