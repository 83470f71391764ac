/* Steering: see steer.h. */
#include "gateway/health/steer.h"

#include <stdbool.h>

static bool in_path(const struct xb_path *pa, size_t ti)
{
	for (size_t i = 0; i < pa->n_tunnels; i++)
		if (pa->tunnels[i] == ti)
			return true;
	return false;
}

/* Keep the current tunnel unless the candidate is clearly better. */
static bool clearly_better(double cand, double cur)
{
	double margin = cur * XB_STEER_MARGIN_FRAC;

	if (margin < XB_STEER_MARGIN_MS)
		margin = XB_STEER_MARGIN_MS;
	return cand + margin < cur;
}

size_t xb_steer_pick(const struct xb_path *pa, const struct xb_steer_tunnel *t, size_t current)
{
	enum xb_rank top = XB_RANK_DOWN;
	size_t pick = XB_STEER_NONE;

	for (size_t i = 0; i < pa->n_tunnels; i++)
		if (t[pa->tunnels[i]].rank > top)
			top = t[pa->tunnels[i]].rank;
	if (top == XB_RANK_DOWN)
		return XB_STEER_NONE;
	for (size_t i = 0; i < pa->n_tunnels; i++) {
		size_t ti = pa->tunnels[i];

		if (t[ti].rank != top)
			continue;
		if (!pa->best)
			return ti;
		if (pick == XB_STEER_NONE || t[ti].score < t[pick].score)
			pick = ti;
	}
	/* best: unproven tunnels have no score yet; keep the order then. */
	if (current != XB_STEER_NONE && current != pick && in_path(pa, current) &&
	    t[current].rank == top && !clearly_better(t[pick].score, t[current].score))
		return current;
	return pick;
}

/* Does a come before b among the tunnels after the pick? */
static bool before(const struct xb_path *pa, const struct xb_steer_tunnel *t, size_t a, size_t b)
{
	if (t[a].rank != t[b].rank)
		return t[a].rank > t[b].rank;
	return pa->best && t[a].score < t[b].score;
}

size_t xb_steer_order(const struct xb_path *pa, const struct xb_steer_tunnel *t, size_t current,
		      size_t *out)
{
	size_t pick = xb_steer_pick(pa, t, current), n = 0;

	if (pick != XB_STEER_NONE)
		out[n++] = pick;
	for (size_t i = 0; i < pa->n_tunnels; i++) {
		size_t ti = pa->tunnels[i], k;

		if (ti == pick)
			continue;
		/* Insertion: stable, so list order holds within a rank. */
		for (k = n; k > (pick != XB_STEER_NONE) && before(pa, t, ti, out[k - 1]); k--)
			out[k] = out[k - 1];
		out[k] = ti;
		n++;
	}
	if (pick == XB_STEER_NONE)
		return n;	/* every tunnel down: all, in list order */
	while (n > 1 && t[out[n - 1]].rank == XB_RANK_DOWN)
		n--;
	return n;
}

const char *xb_rank_name(enum xb_rank r)
{
	static const char *const names[] = { "down", "unproven", "degraded", "up" };

	return names[r];
}
