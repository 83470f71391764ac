/* The routing plan: which paths (mark + routing table) the policy needs.
 *
 * A path is a preference list of tunnels, or "best", possibly ending in the
 * internet fallback. Each tunnel has its own path, so that the daemon's
 * probes and DNS queries can go through one tunnel on purpose; every other
 * via list gets one path, shared by all rules that write the same list.
 * The mark carries the path id in bits 8-15 (XB_MARK_MASK), which leaves
 * the rest of the mark to other software on the host.
 */
#include "policy/compile.h"

#include "common/array.h"

#include <stdlib.h>
#include <string.h>

/* The via list of a rule as a path (tunnels not yet copied). */
static void via_shape(const struct xb_policy *p, const struct xb_rule *r, struct xb_path *k,
		      size_t *tun)
{
	size_t n = 0;

	memset(k, 0, sizeof(*k));
	for (size_t i = 0; i < r->n_via; i++) {
		if (r->via[i].kind == XB_VIA_BEST)
			k->best = true;
		else if (r->via[i].kind == XB_VIA_INTERNET)
			k->internet_fallback = true;
		else if (n < p->n_tunnels)	/* each tunnel at most once (validated) */
			tun[n++] = r->via[i].tunnel.idx;
	}
	if (k->best)
		for (n = 0; n < p->n_tunnels; n++)
			tun[n] = n;
	k->tunnels = tun;
	k->n_tunnels = n;
}

static bool same_path(const struct xb_path *a, const struct xb_path *b)
{
	return a->best == b->best && a->internet_fallback == b->internet_fallback &&
	       a->n_tunnels == b->n_tunnels &&
	       !memcmp(a->tunnels, b->tunnels, a->n_tunnels * sizeof(*a->tunnels));
}

/* "cmi,ctg,internet", "best". */
static char *path_name(const struct xb_policy *p, const struct xb_path *k)
{
	size_t len = sizeof("best,internet");
	char *s;

	for (size_t i = 0; i < k->n_tunnels; i++)
		len += strlen(p->tunnels[k->tunnels[i]].name) + 1;
	if (!(s = malloc(len)))
		return NULL;
	s[0] = '\0';
	if (k->best)
		strcat(s, "best,");
	for (size_t i = 0; !k->best && i < k->n_tunnels; i++) {
		strcat(s, p->tunnels[k->tunnels[i]].name);
		strcat(s, ",");
	}
	if (k->internet_fallback)
		strcat(s, "internet,");
	s[strlen(s) - 1] = '\0';
	return s;
}

/* Appends a copy of k as the next path; false when out of memory. */
static bool add_path(const struct xb_policy *p, struct xb_plan *pl, const struct xb_path *k)
{
	struct xb_path *v = xb_grow(pl->paths, pl->n_paths, sizeof(*v));
	struct xb_path *np;

	if (!v)
		return false;
	pl->paths = v;
	np = &v[pl->n_paths];
	*np = *k;
	np->id = (unsigned)pl->n_paths + 1;
	np->mark = (uint32_t)np->id << XB_MARK_SHIFT;
	np->table = XB_TABLE_BASE + np->id;
	np->priority = XB_RULE_PRIO + np->id;
	np->tunnels = malloc((k->n_tunnels ? k->n_tunnels : 1) * sizeof(*np->tunnels));
	np->name = path_name(p, k);
	if (!np->tunnels || !np->name) {
		free(np->tunnels);
		free(np->name);
		return false;
	}
	memcpy(np->tunnels, k->tunnels, k->n_tunnels * sizeof(*np->tunnels));
	pl->n_paths++;
	return true;
}

/* The path for rule ri: found or added; -1 for none, -2 when full, -3 on
 * ENOMEM. */
static int rule_path(const struct xb_policy *p, struct xb_plan *pl, size_t ri, size_t *tun)
{
	const struct xb_rule *r = &p->rules[ri];
	struct xb_path k;

	if (r->action != XB_ACTION_ALLOW || !r->n_via)
		return -1;
	via_shape(p, r, &k, tun);
	if (!k.best && !k.internet_fallback && k.n_tunnels == 1)
		return (int)k.tunnels[0];
	if (!k.best && !k.n_tunnels)
		return -1;	/* "internet" alone: the main table */
	for (size_t i = p->n_tunnels; i < pl->n_paths; i++)
		if (same_path(&pl->paths[i], &k))
			return (int)i;
	if (pl->n_paths >= XB_PATHS_MAX)
		return -2;
	return add_path(p, pl, &k) ? (int)pl->n_paths - 1 : -3;
}

static int tunnel_paths(const struct xb_policy *p, struct xb_plan *pl, struct xb_errors *errs)
{
	for (size_t i = 0; i < p->n_tunnels; i++) {
		size_t t = i;
		struct xb_path k = { .tunnels = &t, .n_tunnels = 1 };

		if (i >= XB_PATHS_MAX) {
			xb_errors_add(errs, p->tunnels[i].src.file, p->tunnels[i].src.line,
				      "tunnel \"%s\": more than %u tunnels (one routing table each)",
				      p->tunnels[i].name, XB_PATHS_MAX);
			return -1;
		}
		if (!add_path(p, pl, &k)) {
			errs->oom = true;
			return -1;
		}
	}
	return 0;
}

int xb_plan_build(const struct xb_policy *p, struct xb_plan *out, struct xb_errors *errs)
{
	size_t *tun = malloc((p->n_tunnels + 1) * sizeof(*tun));

	memset(out, 0, sizeof(*out));
	out->rule_path = calloc(p->n_rules + 1, sizeof(*out->rule_path));
	if (!tun || !out->rule_path) {
		errs->oom = true;
		goto fail;
	}
	if (tunnel_paths(p, out, errs) < 0)
		goto fail;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct xb_rule *r = &p->rules[i];
		int k = rule_path(p, out, i, tun);

		if (k == -2)
			xb_errors_add(errs, r->src.file, r->src.line,
				      "rule \"%s\": via needs routing path %u, more than the %u "
				      "xborder supports (one per tunnel and per distinct via list)",
				      r->name ? r->name : "?", XB_PATHS_MAX + 1, XB_PATHS_MAX);
		if (k == -3)
			errs->oom = true;
		if (k < -1)
			goto fail;
		out->rule_path[i] = k;
	}
	free(tun);
	return 0;
fail:
	free(tun);
	xb_plan_free(out);
	return -1;
}

void xb_plan_free(struct xb_plan *plan)
{
	for (size_t i = 0; i < plan->n_paths; i++) {
		free(plan->paths[i].tunnels);
		free(plan->paths[i].name);
	}
	free(plan->paths);
	free(plan->rule_path);
	memset(plan, 0, sizeof(*plan));
}
