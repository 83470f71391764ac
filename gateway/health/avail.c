/* Availability over the last hour: see avail.h. */
#include "gateway/health/avail.h"

#define NS_PER_MIN (60 * 1000000000ULL)

void xb_avail_init(struct xb_avail *a)
{
	for (int i = 0; i < XB_AVAIL_MIN; i++) {
		a->idx[i] = -1;
		a->ok[i] = a->n[i] = 0;
	}
}

void xb_avail_add(struct xb_avail *a, uint64_t now, bool ok)
{
	int64_t m = (int64_t)(now / NS_PER_MIN);
	int i = (int)(m % XB_AVAIL_MIN);

	if (a->idx[i] != m) {
		a->idx[i] = m;
		a->ok[i] = a->n[i] = 0;
	}
	a->ok[i] += ok;
	a->n[i]++;
}

double xb_avail_get(const struct xb_avail *a, uint64_t now)
{
	int64_t m = (int64_t)(now / NS_PER_MIN);
	uint64_t ok = 0, n = 0;

	for (int i = 0; i < XB_AVAIL_MIN; i++)
		if (a->idx[i] > m - XB_AVAIL_MIN && a->idx[i] <= m) {
			ok += a->ok[i];
			n += a->n[i];
		}
	return n ? (double)ok / (double)n : -1;
}
