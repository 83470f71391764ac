/* Posture enforcement: per-device state, evaluation, the nft sets and the
 * conntrack cut (see posture_rt.h). The endpoint's callbacks are in
 * posture_rt_http.c. */
#include "gateway/posture/posture_rt_int.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRUNE_S 60	/* expired attributes leave the store this often */

static struct log_rl rl_set = LOG_RL_INIT(5, 10);

struct xb_ptime posture_rt_now(void)
{
	return (struct xb_ptime){ .wall = (int64_t)(clock_real_ns() / NSEC_PER_SEC),
				  .boot = (int64_t)(clock_boot_ns() / NSEC_PER_SEC) };
}

void posture_rt_pending_drop(struct xb_posture_rt *r, struct posture_rt_pending *k)
{
	if (k->rep)
		xb_posture_report_free(k->rep);
	else if (k->push.key)
		xb_posture_mdm_replay_forget(&r->replay, k->push.key->name, k->push.nonce);
	k->rep = NULL;
	k->push.key = NULL;
	xb_posture_mdm_push_free(&k->push);
}

/* --- lookups ------------------------------------------------------------------ */

static int by_name_cmp(const void *a, const void *b, void *ctx)
{
	const struct posture_rt_dev *d = ctx;

	return strcmp(d[*(const size_t *)a].name, d[*(const size_t *)b].name);
}

static int addr_cmp(const void *a, const void *b)
{
	return memcmp(((const struct posture_rt_addr *)a)->a, ((const struct posture_rt_addr *)b)->a, 16);
}

size_t posture_rt_find(const struct xb_posture_rt *r, const char *name)
{
	size_t lo = 0, hi = r->n_dev;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, r->dev[r->by_name[mid]].name);

		if (!c)
			return r->by_name[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return SIZE_MAX;
}

/* --- sets of posture rules ------------------------------------------------------ */

/* One posture_rt_set per distinct device set of the rules with posture. */
static int build_sets(struct xb_posture_rt *r)
{
	const struct xb_policy *p = r->p;

	r->rule_set = malloc((p->n_rules ? p->n_rules : 1) * sizeof(*r->rule_set));
	r->sets = calloc(p->n_rules ? p->n_rules : 1, sizeof(*r->sets));
	if (!r->rule_set || !r->sets)
		return -1;
	for (size_t ri = 0; ri < p->n_rules; ri++) {
		struct posture_rt_set *s = &r->sets[r->n_sets];
		size_t k;

		r->rule_set[ri] = SIZE_MAX;
		if (!p->rules[ri].n_posture)
			continue;
		s->has4 = xb_compile_set_name(s->name4, sizeof(s->name4), p, ri, XB_SET_DEV4);
		s->has6 = xb_compile_set_name(s->name6, sizeof(s->name6), p, ri, XB_SET_DEV6);
		for (k = 0; k < r->n_sets && strcmp(r->sets[k].name4, s->name4); k++)
			;
		if (k == r->n_sets) {
			s->rule = ri;
			r->n_sets++;
		}
		r->rule_set[ri] = k;
	}
	return 0;
}

static int build_index(struct xb_posture_rt *r)
{
	const struct xb_policy *p = r->p;
	size_t n = r->n_dev ? r->n_dev : 1;

	r->by_name = malloc(n * sizeof(*r->by_name));
	r->by4 = calloc(n, sizeof(*r->by4));
	r->by6 = calloc(n, sizeof(*r->by6));
	if (!r->by_name || !r->by4 || !r->by6)
		return -1;
	for (size_t i = 0; i < r->n_dev; i++) {
		const struct xb_device *d = &p->devices[i];

		r->by_name[i] = i;
		if (d->has4) {
			memcpy(r->by4[r->n4].a, &d->address4, 4);
			r->by4[r->n4++].dev = i;
		}
		if (d->has6) {
			memcpy(r->by6[r->n6].a, &d->address6, 16);
			r->by6[r->n6++].dev = i;
		}
	}
	qsort_r(r->by_name, r->n_dev, sizeof(size_t), by_name_cmp, r->dev);
	qsort(r->by4, r->n4, sizeof(*r->by4), addr_cmp);
	qsort(r->by6, r->n6, sizeof(*r->by6), addr_cmp);
	return 0;
}

/* --- evaluation and enforcement ------------------------------------------------------ */

/* When evaluation can next change without a report: a report passing a
 * profile's max_age (the age check is age > max_age; boot clock), a
 * pushed attribute expiring (ignored once now >= expires; Unix time). */
static void deadline(const struct xb_posture_rt *r, struct posture_rt_dev *d, struct xb_ptime now)
{
	d->next_boot = d->next_wall = 0;
	for (size_t k = 0; d->st.report && k < r->p->n_profiles; k++) {
		int64_t t = d->st.received + (int64_t)r->p->profiles[k].max_age + 1;

		if (t > now.boot && (!d->next_boot || t < d->next_boot))
			d->next_boot = t;
	}
	for (size_t k = 0; k < d->st.n_mdm; k++) {
		int64_t t = d->st.mdm[k].expires;

		if (t > now.wall && (!d->next_wall || t < d->next_wall))
			d->next_wall = t;
	}
}

static json_t *failing_json(const struct xb_check_result *res, size_t n)
{
	json_t *a = json_array();

	for (size_t k = 0; a && k < n; k++) {
		const struct xb_check_result *c = &res[k];

		if (c->outcome != XB_FAIL && c->outcome != XB_UNKNOWN)
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:b}",
			"check", c->check ? xb_check_name(c->check->kind) : "profile",
			"outcome", xb_outcome_name(c->outcome), "expected", c->expected,
			"seen", c->seen, "report_only", c->report_only));
	}
	return a;
}

/* "os_version: expected >= 14.2, seen 13.6; ..." of the failing checks. */
static void reason(char *buf, size_t len, const struct xb_check_result *res, size_t n)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < n && at + 1 < len; k++) {
		if (res[k].outcome != XB_FAIL && res[k].outcome != XB_UNKNOWN)
			continue;
		at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "; " : "", res[k].text);
	}
	if (!buf[0])
		snprintf(buf, len, "all checks pass");
}

static void transition(struct xb_posture_rt *r, size_t i, size_t k, bool to, struct xb_ptime now)
{
	const struct xb_profile *pr = &r->p->profiles[k];
	const char *from_s = to ? "fail" : "pass", *to_s = to ? "pass" : "fail";
	char why[1024];
	bool ok;
	size_t n = xb_posture_eval(pr, &r->dev[i].st, now, r->res, r->n_res, &ok);
	struct xb_posture_store_transition t = {
		.device = r->dev[i].name, .profile = pr->name, .at = now.wall * 1000,
		.from = from_s, .to = to_s, .reason = why,
	};

	r->stat.transitions++;
	reason(why, sizeof(why), r->res, n);
	log_info("posture: device %s: profile %s: %s -> %s (%s)", t.device, pr->name, from_s,
		 to_s, why);
	if (xb_posture_store_put_transition(r->store, &t) < 0)
		log_warnx("posture: storing a transition of %s: %s", t.device,
			  xb_posture_store_error(r->store));
	if (r->audit) {
		json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o}",
				      "at", (json_int_t)(clock_real_ns() / NSEC_PER_MSEC),
				      "event", "transition", "device", t.device, "profile", pr->name,
				      "from", from_s, "to", to_s, "failing", failing_json(r->res, n));

		if (o)
			xb_jsonlog_write(r->audit, o);
		json_decref(o);
	}
}

/* Does device i belong in set s: selected by its rule, passing one of
 * the rule's profiles (rules sharing the set have the same both). */
static bool member(const struct xb_posture_rt *r, size_t s, size_t i)
{
	const struct xb_rule *ru = &r->p->rules[r->sets[s].rule];
	const uint8_t *pok = r->pok + i * r->p->n_profiles;

	if (!xb_compile_selects(r->p, r->sets[s].rule, i))
		return false;
	for (size_t k = 0; k < ru->n_posture; k++)
		if (pok[ru->posture[k].idx] == POSTURE_RT_PASS)
			return true;
	return false;
}

/* Append one item of size sz to *v (n used, cap allocated); false when
 * out of memory. */
static bool push(void **v, size_t *n, size_t *cap, size_t sz, const void *item)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		void *g = realloc(*v, c * sz);

		if (!g)
			return false;
		*v = g;
		*cap = c;
	}
	memcpy((char *)*v + *n * sz, item, sz);
	(*n)++;
	return true;
}

static void set_failed(struct xb_posture_rt *r, const struct posture_rt_change *c, int err, bool again)
{
	r->stat.set_errors += !again;
	if (log_ratelimit(&rl_set))
		log_warnx("posture: device %s: %s set %s: %s%s", r->p->devices[c->dev].name,
			  c->add ? "adding to" : "removing from", r->sets[c->set].name4,
			  strerror(-err), again ? "; trying again" : "; given up");
}

/* The nft ops of change c (one per family the set and device have). */
static size_t change_ops(const struct xb_posture_rt *r, const struct posture_rt_change *c,
			 struct xb_nft_set_op *op)
{
	const struct xb_device *d = &r->p->devices[c->dev];
	const struct posture_rt_set *set = &r->sets[c->set];
	size_t n = 0;

	if (set->has4 && d->has4) {
		op[n] = (struct xb_nft_set_op){ .set = set->name4, .add = c->add,
					       .e.family = AF_INET };
		memcpy(op[n++].e.addr, &d->address4, 4);
	}
	if (set->has6 && d->has6) {
		op[n] = (struct xb_nft_set_op){ .set = set->name6, .add = c->add,
					       .e.family = AF_INET6 };
		memcpy(op[n++].e.addr, &d->address6, 16);
	}
	return n;
}

/* The queued set changes, in order, in one batch. If the kernel refuses it
 * for one change's sake (a set or element missing), change by change so
 * that only the bad ones fail; any other error (no memory, a timeout) would
 * only repeat once per change, so all of them fail with it. A failed
 * change stays queued for the next flush, up to POSTURE_RT_SET_TRIES attempts: a
 * device that left a set must not keep its access over a passing error. */
static void apply_sets(struct xb_posture_rt *r)
{
	struct xb_nft_set_op *ops = malloc(r->n_chg * 2 * sizeof(*ops)), one[2];
	size_t n = 0, kept = 0;
	int err = -ENOMEM;

	for (size_t k = 0; ops && k < r->n_chg; k++)
		n += change_ops(r, &r->chg[k], ops + n);
	if (ops)
		err = xb_nft_set_apply(&r->nft, ops, n);
	free(ops);
	for (size_t k = 0; err && k < r->n_chg; k++) {
		struct posture_rt_change c = r->chg[k];
		bool one_by_one = err == -ENOENT || err == -EINVAL || err == -EEXIST;
		int e = one_by_one ? xb_nft_set_apply(&r->nft, one, change_ops(r, &c, one)) : err;

		if (!e)
			continue;
		set_failed(r, &c, e, ++c.tries < POSTURE_RT_SET_TRIES);
		if (c.tries < POSTURE_RT_SET_TRIES)
			r->chg[kept++] = c;
	}
	r->stat.set_changes += r->n_chg - kept;
	r->n_chg = kept;
}

/* The cuts of one family: one conntrack pass for all (xb_conntrack_cut_many). */
static void cut_family(struct xb_posture_rt *r, int family, long *total)
{
	size_t len = family == AF_INET ? 4 : 16, n = 0;
	uint8_t *a = calloc(r->n_cut, len);
	long *cut = calloc(r->n_cut, sizeof(*cut));
	size_t *who = malloc(r->n_cut * sizeof(*who));

	if (!a || !cut || !who) {
		log_warnx("posture: out of memory: %zu devices' flows not cut", r->n_cut);
		n = 0;
		goto out;
	}
	for (size_t k = 0; k < r->n_cut; k++) {
		const struct xb_device *d = &r->p->devices[r->cut[k]];

		if (family == AF_INET ? !d->has4 : !d->has6)
			continue;
		memcpy(a + n * len, family == AF_INET ? (const void *)&d->address4 :
		       (const void *)&d->address6, len);
		who[n++] = k;
	}
	xb_conntrack_cut_many(&r->ct, family, a, n, cut);	/* errors: per address */
	for (size_t k = 0; k < n; k++) {
		if (cut[k] < 0)
			log_warnx("posture: device %s: cutting its flows failed: %s",
				  r->p->devices[r->cut[who[k]]].name, strerror((int)-cut[k]));
		else
			total[who[k]] += cut[k];
	}
out:
	free(a);
	free(cut);
	free(who);
}

static void apply_cuts(struct xb_posture_rt *r)
{
	long *total = calloc(r->n_cut, sizeof(*total));

	if (!total) {
		log_warnx("posture: out of memory: %zu devices' flows not cut", r->n_cut);
		for (size_t k = 0; k < r->n_cut; k++)
			r->dev[r->cut[k]].cut_queued = false;
		r->n_cut = 0;
		return;
	}
	cut_family(r, AF_INET, total);
	cut_family(r, AF_INET6, total);
	for (size_t k = 0; k < r->n_cut; k++) {
		r->dev[r->cut[k]].cut_queued = false;
		r->stat.cuts++;
		r->stat.cut_entries += (uint64_t)total[k];
		log_info("posture: device %s: left a posture set; %ld flow entries cut",
			 r->p->devices[r->cut[k]].name, total[k]);
	}
	free(total);
	r->n_cut = 0;
}

/* One report's enforcement latency into the log2 histogram. */
static void latency(struct xb_posture_rt *r, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (b + 1 < POSTURE_RT_LAT_BUCKETS && (us >> (b + 1)))
		b++;
	r->stat.lat[b]++;
	if (us > r->stat.lat_max_us)
		r->stat.lat_max_us = us;
}

void posture_rt_flush(struct xb_posture_rt *r)
{
	uint64_t now;

	if (r->n_chg)
		apply_sets(r);
	if (r->n_cut)
		apply_cuts(r);
	now = clock_mono_ns();
	for (size_t k = 0; k < r->n_t0; k++)
		latency(r, now - r->t0[k]);
	r->n_t0 = 0;
}

void posture_rt_arrived(struct xb_posture_rt *r, uint64_t t0)
{
	if (!push((void **)&r->t0, &r->n_t0, &r->cap_t0, sizeof(t0), &t0))
		latency(r, clock_mono_ns() - t0);	/* not counted: enforcement time */
}

void posture_rt_judge(struct xb_posture_rt *r, size_t i, struct xb_ptime now, unsigned flags)
{
	const struct xb_policy *p = r->p;
	uint8_t *pok = r->pok + i * p->n_profiles, *in = r->in + i * r->n_sets;
	bool left = false;

	for (size_t k = 0; k < p->n_profiles; k++) {
		bool ok;

		xb_posture_eval(&p->profiles[k], &r->dev[i].st, now, NULL, 0, &ok);
		if (pok[k] != POSTURE_RT_UNSEEN && pok[k] != ok && (flags & POSTURE_RT_AUDIT))
			transition(r, i, k, ok, now);
		pok[k] = ok ? POSTURE_RT_PASS : POSTURE_RT_FAIL;
	}
	deadline(r, &r->dev[i], now);
	for (size_t s = 0; s < r->n_sets; s++) {
		struct posture_rt_change c = { .set = s, .dev = i, .add = member(r, s, i) };

		if (c.add == (bool)in[s])
			continue;
		in[s] = c.add;
		/* Out of memory: the one change goes on its own now. */
		if ((flags & POSTURE_RT_SETS) &&
		    !push((void **)&r->chg, &r->n_chg, &r->cap_chg, sizeof(c), &c)) {
			struct xb_nft_set_op one[2];
			int e = xb_nft_set_apply(&r->nft, one, change_ops(r, &c, one));

			r->stat.set_changes++;
			if (e)
				set_failed(r, &c, e, false);
		}
		left |= !c.add;
	}
	/* Once per device and flush, however often it was judged meanwhile. */
	if (!left || !(flags & POSTURE_RT_CUT) || r->dev[i].cut_queued)
		return;
	if (push((void **)&r->cut, &r->n_cut, &r->cap_cut, sizeof(i), &i))
		r->dev[i].cut_queued = true;
	else
		log_warnx("posture: out of memory: device %s's flows not cut", r->dev[i].name);
}

bool xb_posture_rt_ok(void *ctx, size_t rule, size_t device)
{
	const struct xb_posture_rt *r = ctx;

	if (!r || rule >= r->p->n_rules || device >= r->n_dev || r->rule_set[rule] == SIZE_MAX)
		return false;
	return r->in[device * r->n_sets + r->rule_set[rule]];
}

/* --- binding to a policy ------------------------------------------------------- */

/* The bound part empty, without freeing it (it may live on elsewhere). */
static void unbind(struct xb_posture_rt *r)
{
	r->dev = NULL;
	r->by_name = NULL;
	r->by4 = r->by6 = NULL;
	r->pok = r->in = NULL;
	r->sets = NULL;
	r->rule_set = NULL;
	r->res = NULL;
	r->n_dev = r->n4 = r->n6 = r->n_sets = r->n_res = 0;
}

static void bound_free(struct xb_posture_rt *r)
{
	for (size_t i = 0; r->dev && i < r->n_dev; i++) {
		free(r->dev[i].name);
		xb_posture_state_free(&r->dev[i].st);
	}
	free(r->dev);
	free(r->by_name);
	free(r->by4);
	free(r->by6);
	free(r->pok);
	free(r->in);
	free(r->sets);
	free(r->rule_set);
	free(r->res);
	unbind(r);
}

/* Fill r (zeroed bound part) for p; devices start with nothing. */
static int attach(struct xb_posture_rt *r, const struct xb_policy *p)
{
	size_t n_res = 1;

	r->p = p;
	r->n_dev = p->n_devices;
	for (size_t k = 0; k < p->n_profiles; k++)
		if (XB_POSTURE_OUT(&p->profiles[k]) > n_res)
			n_res = XB_POSTURE_OUT(&p->profiles[k]);
	r->n_res = n_res;
	if (!(r->dev = calloc(r->n_dev ? r->n_dev : 1, sizeof(*r->dev))) ||
	    !(r->res = calloc(n_res, sizeof(*r->res))) || build_sets(r) < 0)
		return -1;
	for (size_t i = 0; i < r->n_dev; i++)
		if (!(r->dev[i].name = strdup(p->devices[i].name)))
			return -1;
	if (build_index(r) < 0 ||
	    !(r->pok = malloc((r->n_dev * p->n_profiles) | 1)) ||
	    !(r->in = calloc((r->n_dev * r->n_sets) | 1, 1)))
		return -1;
	memset(r->pok, POSTURE_RT_UNSEEN, (r->n_dev * p->n_profiles) | 1);
	return 0;
}

/* Carry device j's state, profile results and set memberships over from
 * old device i: by profile name and by set name (a profile or set that is
 * new starts unseen / empty). */
static void carry(struct xb_posture_rt *r, size_t j, struct xb_posture_rt *old, size_t i,
		  const size_t *prof_map, const size_t *set_map)
{
	r->dev[j].st = old->dev[i].st;
	old->dev[i].st = (struct xb_posture_state){ 0 };
	for (size_t k = 0; k < r->p->n_profiles; k++)
		if (prof_map[k] != SIZE_MAX)
			r->pok[j * r->p->n_profiles + k] = old->pok[i * old->p->n_profiles + prof_map[k]];
	for (size_t s = 0; s < r->n_sets; s++)
		if (set_map[s] != SIZE_MAX)
			r->in[j * r->n_sets + s] = old->in[i * old->n_sets + set_map[s]];
}

static size_t *maps(const struct xb_posture_rt *r, const struct xb_posture_rt *old, bool sets)
{
	size_t n = sets ? r->n_sets : r->p->n_profiles, *m = malloc((n ? n : 1) * sizeof(*m));

	for (size_t k = 0; m && k < n; k++) {
		m[k] = SIZE_MAX;
		if (sets) {
			for (size_t o = 0; o < old->n_sets; o++)
				if (!strcmp(old->sets[o].name4, r->sets[k].name4))
					m[k] = o;
		} else {
			const struct xb_profile *op =
				xb_policy_profile_by_name(old->p, r->p->profiles[k].name);

			if (op)
				m[k] = (size_t)(op - old->p->profiles);
		}
	}
	return m;
}

/* What the endpoint accepted but has not applied yet (a round not over)
 * follows its device and key by name; what the new policy lacks is
 * dropped. */
static void repend(struct xb_posture_rt *r, const struct xb_posture_rt *old)
{
	size_t k = 0;

	for (size_t i = 0; i < r->n_pend; i++) {
		struct posture_rt_pending e = r->pend[i];

		e.dev = posture_rt_find(r, old->dev[e.dev].name);
		if (!e.rep && e.push.key)
			e.push.key = xb_policy_mdm_key_by_name(r->p, e.push.key->name);
		if (e.dev == SIZE_MAX || (!e.rep && !e.push.key)) {
			xb_posture_report_free(e.rep);
			xb_posture_mdm_push_free(&e.push);
			continue;
		}
		r->pend[k++] = e;
	}
	r->n_pend = k;
}

int xb_posture_rt_rebind(struct xb_posture_rt *r, const struct xb_policy *p)
{
	struct xb_posture_rt old;
	size_t *pm, *sm, kept = 0;
	struct xb_ptime now = posture_rt_now();
	uint64_t t0 = clock_mono_ns();

	/* What is queued names the old binding's devices and sets. Changes
	 * still failing are dropped: the new table is compiled from the
	 * devices' results, whatever the old sets hold. */
	posture_rt_flush(r);
	r->n_chg = 0;
	old = *r;
	unbind(r);
	if (attach(r, p) < 0 || !(pm = maps(r, &old, false)) || !(sm = maps(r, &old, true))) {
		/* Out of memory: keep the old binding; the new table is
		 * compiled with what it says (some devices may be left out). */
		log_warnx("posture: out of memory binding the new policy; keeping the old state");
		bound_free(r);
		*r = old;
		return -1;
	}
	/* One transaction for the transitions a reload may cause en masse
	 * (a tightened profile): single commits run at ~6 500/s. */
	bool tx = xb_posture_store_begin(r->store) == 0;

	if (!tx)
		log_warnx("posture: %s; transitions committed one by one", xb_posture_store_error(r->store));
	for (size_t j = 0; j < r->n_dev; j++) {
		size_t i = posture_rt_find(&old, r->dev[j].name);

		if (i != SIZE_MAX) {
			carry(r, j, &old, i, pm, sm);
			kept++;
		}
		posture_rt_judge(r, j, now, POSTURE_RT_AUDIT | POSTURE_RT_CUT);
	}
	posture_rt_flush(r);
	if (tx && xb_posture_store_commit(r->store) < 0)
		log_warnx("posture: storing transitions: %s", xb_posture_store_error(r->store));
	repend(r, &old);
	free(pm);
	free(sm);
	bound_free(&old);
	log_info("posture: %zu devices re-evaluated (%zu kept their state) in %llu ms", r->n_dev,
		 kept, (unsigned long long)((clock_mono_ns() - t0) / NSEC_PER_MSEC));
	return 0;
}

/* --- loading the store ----------------------------------------------------------- */

static int load_report(void *ctx, const char *device, int64_t seq, int64_t received_at,
		       const char *body)
{
	struct xb_posture_rt *r = ctx;
	size_t i = posture_rt_find(r, device);
	struct xb_report *rep;
	char err[256];

	(void)seq;
	if (i == SIZE_MAX)
		return 0;	/* not in this policy: kept in the store */
	if (!(rep = xb_posture_report_parse(body, strlen(body), err, sizeof(err)))) {
		log_warnx("posture: device %s: stored report unreadable (%s); ignored", device, err);
		return 0;
	}
	/* Its age survives the restart only on the wall clock; from here on
	 * it ages on the boot clock (xb_posture_stored_age). */
	struct xb_ptime now = posture_rt_now();

	xb_posture_set_report(&r->dev[i].st, rep, now);
	r->dev[i].st.received -= xb_posture_stored_age(received_at / 1000, now.wall);
	r->dev[i].st.received_wall = received_at / 1000;
	return 0;
}

/* A stored value (JSON text) as an xb_value; false when it is none. */
static bool value_from(const char *text, struct xb_value *out)
{
	json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	bool ok = true;

	if (json_is_string(v))
		*out = (struct xb_value){ .type = XB_VAL_STR, .str = strdup(json_string_value(v)) };
	else if (json_is_boolean(v))
		*out = (struct xb_value){ .type = XB_VAL_BOOL, .b = json_is_true(v) };
	else if (json_is_number(v))
		*out = (struct xb_value){ .type = XB_VAL_NUM, .num = json_number_value(v) };
	else
		ok = false;
	json_decref(v);
	return ok && (out->type != XB_VAL_STR || out->str);
}

static int load_nonce(void *ctx, const char *key, const char *nonce, int64_t until)
{
	struct xb_posture_rt *r = ctx;

	if (xb_posture_mdm_replay_add(&r->replay, key, nonce, until / 1000, posture_rt_now().wall) < 0)
		log_warnx("posture: the MDM replay cache is full; a stored nonce is not loaded");
	return 0;
}

static int load_attr(void *ctx, const struct xb_posture_store_attr *a)
{
	struct xb_posture_rt *r = ctx;
	size_t i = posture_rt_find(r, a->device);
	struct xb_mdm_push m = { .n_attrs = 1 };

	if (i == SIZE_MAX || !(m.attrs = calloc(1, sizeof(*m.attrs))))
		return 0;
	m.attrs->expires = a->expires_at / 1000;
	if (!(m.attrs->key = strdup(a->key)) || !value_from(a->value, &m.attrs->value)) {
		log_warnx("posture: device %s: stored attribute %s unreadable; ignored", a->device,
			  a->key);
		xb_posture_mdm_push_free(&m);
		return 0;
	}
	xb_posture_push(&r->dev[i].st, &m, posture_rt_now().wall);
	xb_posture_mdm_push_free(&m);	/* emptied by a successful push */
	return 0;
}

struct xb_posture_rt *xb_posture_rt_open(const struct xb_policy *p)
{
	struct xb_posture_rt *r = calloc(1, sizeof(*r));
	char path[4096], err[512];
	struct xb_ptime now = posture_rt_now();
	int e;

	if (!r)
		return NULL;
	r->epfd = -1;
	if (mkdir(p->gateway.state_dir, 0750) < 0 && errno != EEXIST)
		log_warn("posture: creating %s", p->gateway.state_dir);
	snprintf(path, sizeof(path), "%s/%s", p->gateway.state_dir, XB_POSTURE_RT_DB);
	if (!(r->store = xb_posture_store_open(path, XB_POSTURE_STORE_MOVE_ASIDE, err, sizeof(err)))) {
		log_warnx("posture: %s", err);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", p->gateway.state_dir, XB_POSTURE_RT_LOG);
	if (!(r->audit = xb_jsonlog_open(path, XB_POSTURE_RT_LOG_MAX)))
		log_warnx("posture: no audit log: transitions go to the daemon's log only");
	if ((e = xb_nft_set_open(&r->nft)) < 0 || (e = xb_conntrack_open(&r->ct)) < 0) {
		log_warnx("posture: netlink: %s", strerror(-e));
		goto fail;
	}
	if ((r->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || attach(r, p) < 0) {
		log_warn("posture: setting up");
		goto fail;
	}
	if (xb_posture_store_foreach_report(r->store, load_report, r) < 0 ||
	    xb_posture_store_foreach_attr(r->store, now.wall * 1000, load_attr, r) < 0)
		log_warnx("posture: reading %s: %s; devices without a state must report again",
			  XB_POSTURE_RT_DB, xb_posture_store_error(r->store));
	/* The replay cache as it was: a push captured before the restart is
	 * still refused while its time is in the window. Unreadable, no push
	 * is taken (the cache is refused wholesale rather than half-known). */
	if (xb_posture_store_foreach_nonce(r->store, now.wall * 1000, load_nonce, r) < 0) {
		log_warnx("posture: reading the MDM nonces from %s: %s", XB_POSTURE_RT_DB,
			  xb_posture_store_error(r->store));
		goto fail;
	}
	for (size_t i = 0; i < r->n_dev; i++)
		posture_rt_judge(r, i, now, 0);
	r->pruned = now.boot;
	return r;
fail:
	xb_posture_rt_close(r);
	return NULL;
}

void xb_posture_rt_tick(struct xb_posture_rt *r)
{
	struct xb_ptime now = posture_rt_now();

	for (size_t i = 0; i < r->n_dev; i++)
		if ((r->dev[i].next_boot && r->dev[i].next_boot <= now.boot) ||
		    (r->dev[i].next_wall && r->dev[i].next_wall <= now.wall))
			posture_rt_judge(r, i, now, POSTURE_RT_ALL);
	posture_rt_flush(r);
	if (now.boot - r->pruned >= PRUNE_S) {
		if (xb_posture_store_prune(r->store, now.wall * 1000) < 0)
			log_warnx("posture: pruning expired attributes and MDM nonces: %s", xb_posture_store_error(r->store));
		r->pruned = now.boot;
	}
}

int xb_posture_rt_fd(const struct xb_posture_rt *r)
{
	return r->epfd;
}

void xb_posture_rt_process(struct xb_posture_rt *r)
{
	if (r->svc)
		xb_posture_http_process(r->svc);
}

void xb_posture_rt_reopen_log(struct xb_posture_rt *r)
{
	if (r->audit && xb_jsonlog_reopen(r->audit) < 0)
		log_warn("posture: reopening the audit log");
}

void xb_posture_rt_close(struct xb_posture_rt *r)
{
	if (!r)
		return;
	xb_posture_http_close(r->svc);
	for (size_t k = 0; k < r->n_pend; k++)
		posture_rt_pending_drop(r, &r->pend[k]);
	free(r->pend);
	bound_free(r);
	xb_posture_mdm_replay_free(&r->replay);
	xb_nft_set_close(&r->nft);
	xb_conntrack_close(&r->ct);
	xb_jsonlog_close(r->audit);
	xb_posture_store_close(r->store);
	if (r->epfd >= 0)
		close(r->epfd);
	free(r->chg);
	free(r->cut);
	free(r->t0);
	free(r);
}
