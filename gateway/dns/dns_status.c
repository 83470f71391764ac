/* The DNS service's status for xborderctl (xborderctl -j dns): per rule,
 * cache, upstreams, clients, learning, the tap. See dns_service.h.
 */
#include "gateway/dns/dns_internal.h"

#include <string.h>

/* The upper bound of the log2 bucket holding the 99th percentile, in the
 * histogram's unit (0 when empty). */
static uint64_t p99_below(const uint64_t hist[24])
{
	uint64_t n = 0, seen = 0, want;
	unsigned b = 0;

	for (unsigned i = 0; i < 24; i++)
		n += hist[i];
	if (!n)
		return 0;
	want = n - n / 100;
	for (; b < 23; b++)
		if ((seen += hist[b]) >= want)
			break;
	return 2ull << b;
}

static json_t *stats_json(const struct dns_stats *st)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I}",
			 "queries", (json_int_t)st->queries, "answered", (json_int_t)st->answered,
			 "cached", (json_int_t)st->cached, "failed", (json_int_t)st->failed,
			 "blocked", (json_int_t)st->blocked, "denied", (json_int_t)st->denied,
			 "latency_mean_ms",
			 st->answered ? (double)st->lat_sum_us / (double)st->answered / 1000.0 : 0.0,
			 "latency_p99_ms_below", (json_int_t)(st->answered ? p99_below(st->lat_hist) / 1000 + 1 : 0),
			 "latency_max_ms", (json_int_t)(st->lat_max_us / 1000));
}

/* Per access rule with domains: what it learned, and what it refused. */
static json_t *learning_json(const struct xb_dns_service *s)
{
	const struct xb_dns_service_cfg *c = s->cfg;
	json_t *v = json_array();
	size_t cap = dns_learn_cap(&c->p->dns);

	for (size_t i = 0; v && i < c->n_acc; i++) {
		const struct dns_acc *a = &c->acc[i];
		const char *name = c->p->rules[a->rule].name;
		size_t n4 = 0, n6 = 0;

		for (size_t k = 0; k < s->learned.n_sets; k++) {
			if (a->has4 && !strcmp(s->learned.sets[k].name, a->set4))
				n4 = s->learned.sets[k].n;
			if (a->has6 && !strcmp(s->learned.sets[k].name, a->set6))
				n6 = s->learned.sets[k].n;
		}
		json_array_append_new(v, json_pack("{s:s, s:I, s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I, s:I}, s:I}",
			"rule", name ? name : "?", "learned4", (json_int_t)n4, "learned6", (json_int_t)n6,
			"cap", (json_int_t)cap, "learn_private", a->learn_private,
			"refused", "special", (json_int_t)a->refused.special,
			"private", (json_int_t)a->refused.private_, "own", (json_int_t)a->refused.own,
			"over_answer_max", (json_int_t)a->refused.cut,
			"set_full", (json_int_t)a->refused.full,
			"evicted", (json_int_t)a->refused.evicted));
	}
	return v;
}

json_t *xb_dns_service_status(const struct xb_dns_service *s)
{
	static const char *const actions[] = { "forward", "override", "tunnel", "block" };
	const struct xb_dns_service_cfg *c = s->cfg;
	struct xb_dns_cache_stats cs = { 0 };
	struct xb_dns_upstream_stats us;
	json_t *rules = json_array(), *listen = json_array(), *o;
	char text[80];

	if (!c)
		return json_pack("{s:b}", "enabled", 0);
	for (size_t i = 0; i < c->n_sets; i++) {
		const struct xb_dns_rule *r = i < c->p->dns.n_rules ? &c->p->dns.rules[i] : NULL;

		o = stats_json(&c->stats[i]);
		json_object_set_new(o, "name", json_string(r ? r->name : "(no rule)"));
		json_object_set_new(o, "action", json_string(r ? actions[r->action] : "forward"));
		json_array_append_new(rules, o);
	}
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		if (s->udp[i] >= 0) {
			xb_endpoint_format(text, sizeof(text), &s->bound[i]);
			json_array_append_new(listen, json_string(text));
		}
	if (s->cache)
		xb_dns_cache_stats(s->cache, &cs);
	xb_dns_upstream_stats(s->up, &us);
	o = json_pack("{s:b, s:o, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I}, "
			 "s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
			 "enabled", c->p->dns.enabled, "listen", listen,
			 "patterns", (json_int_t)c->n_patterns, "since", (json_int_t)s->since,
			 "rules", rules,
			 "cache", "entries", (json_int_t)cs.entries, "hits", (json_int_t)cs.hits,
			 "misses", (json_int_t)cs.misses, "evictions", (json_int_t)cs.evictions,
			 "stale", (json_int_t)cs.stale,
			 "upstream", "queries", (json_int_t)us.queries, "tries", (json_int_t)us.tries,
			 "timeouts", (json_int_t)us.timeouts,
			 "failed", (json_int_t)us.failed, "tcp", (json_int_t)us.tcp,
			 "mismatched", (json_int_t)us.mismatched,
			 "clients", "refused", (json_int_t)s->c.refused, "formerr", (json_int_t)s->c.formerr,
			 "dropped", (json_int_t)s->c.dropped, "truncated", (json_int_t)s->c.truncated,
			 "learned", (json_int_t)xb_dns_learn_total(&s->learned), "set_puts", (json_int_t)s->c.set_puts,
			 "set_failures", (json_int_t)s->c.set_failures,
			 "set_update_p99_us_below", (json_int_t)p99_below(s->c.put_hist));
	if (o)
		json_object_set_new(o, "learning", learning_json(s));
	if (o)
		json_object_set_new(o, "tap", json_pack("{s:b, s:I, s:I, s:I}", "on", s->tap_fd >= 0,
							 "queries", (json_int_t)s->c.tap_queries,
							 "answers", (json_int_t)s->c.tap_answers,
							 "bad", (json_int_t)s->c.tap_bad));
	return o;
}
