/* The DNS service's policy side: what a policy makes of names (matchers,
 * lists, server sets), what a query gets, and which of an answer's
 * addresses may teach the firewall (learn(): the filter and the
 * per-answer cap; dns_learned.c puts them into the sets). I/O is in
 * dns_service.c. docs/dns.md.
 */
#include "gateway/dns/dns_internal.h"

#include "common/array.h"
#include "common/clock.h"
#include "common/log.h"
#include "gateway/dns/dns_list.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const action_names[] = { "forward", "override", "tunnel", "block" };

/* ---- configuration ---- */

static int add_patterns(struct xb_dns_match *m, const struct xb_dns_rule *r, uint32_t value,
			struct xb_errors *errs)
{
	struct xb_dns_entry e = { .value = value, .kind = XB_DNS_RULE };
	static const enum xb_dns_list_fmt fmts[] = {
		[XB_DNS_LISTFMT_DNSMASQ] = XB_DNS_LIST_DNSMASQ,
		[XB_DNS_LISTFMT_PATTERNS] = XB_DNS_LIST_PATTERNS,
		[XB_DNS_LISTFMT_DOMAINS] = XB_DNS_LIST_DOMAINS,
	};
	int rc = 0;

	for (size_t i = 0; i < r->n_domains; i++) {
		struct xb_dns_pattern pat;
		const char *why;

		if (xb_dns_match_pattern_parse(&pat, r->domains[i], strlen(r->domains[i]), XB_DNS_EXACT,
					 &why) < 0) {
			xb_errors_add(errs, r->src.file, r->src.line, "dns rule \"%s\": %s: %s",
				      r->name, r->domains[i], why);
			rc = -1;
		} else if (xb_dns_match_add(m, &pat, &e) < 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < r->n_lists; i++)
		if (xb_dns_list_load(m, r->list_paths[i], fmts[r->list_format], value, errs) < 0)
			rc = -1;
	return rc;
}

static int server_set(struct xb_dns_upstream_set *set, const char *name, const union xb_sockaddr *v,
		      size_t n, const struct xb_dns *d, struct xb_errors *errs, struct xb_src src)
{
	char text[80];

	xb_dns_upstream_set_init(set, name);
	set->timeout_ms = d->timeout_ms;
	set->tries = d->tries;
	for (size_t i = 0; i < n; i++) {
		xb_endpoint_format(text, sizeof(text), &v[i]);
		if (xb_dns_upstream_set_add(set, text) < 0) {
			xb_errors_add(errs, src.file, src.line, "dns: %s: server %s: %s", name, text,
				      errno == ENOSPC ? "more servers than a set holds" : "bad address");
			return -1;
		}
	}
	return 0;
}

/* Does any access rule with domains send traffic to the internet? Then a
 * tunnel rule that follows the path may have to ask on the gateway's own
 * route. */
static bool any_internet(const struct xb_policy *p)
{
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t k = 0; p->rules[i].n_domains && k < p->rules[i].n_via; k++)
			if (p->rules[i].via[k].kind == XB_VIA_INTERNET)
				return true;
	return false;
}

static int set_put(struct xb_dns_service_cfg *c, size_t si, const union xb_sockaddr *v, size_t n,
		   uint32_t ti, const char *ifname)
{
	struct xb_dns_upstream_set *set = &c->sets[si];
	char text[80];

	for (size_t i = 0; i < n; i++) {
		xb_endpoint_format(text, sizeof(text), &v[i]);
		if (xb_dns_upstream_set_add(set, text) < 0)
			return -1;
		c->srv_tun[si][set->n - 1] = ti;
		snprintf(set->srv[set->n - 1].ifname, sizeof(set->srv[0].ifname), "%s", ifname);
	}
	return 0;
}

/* May names' traffic take tunnel ti: is it on the path of an allow rule
 * with domains (or is there a `best' one)? */
static bool on_a_path(const struct xb_policy *p, size_t ti)
{
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t k = 0; p->rules[i].n_domains && k < p->rules[i].n_via; k++)
			if (p->rules[i].via[k].kind == XB_VIA_BEST ||
			    (p->rules[i].via[k].kind == XB_VIA_TUNNEL && p->rules[i].via[k].tunnel.idx == ti))
				return true;
	return false;
}

/* A tunnel rule's set: every server once per tunnel it may be reached
 * through (its own list; or, following the path, every tunnel on a path
 * names take and the one it names, and the gateway's own route when a
 * path may end in the internet). */
static int tunnel_set(struct xb_dns_service_cfg *c, size_t ri, struct xb_errors *errs)
{
	const struct xb_policy *p = c->p;
	const struct xb_dns_rule *r = &p->dns.rules[ri];
	size_t n = r->n_tunnels ? r->n_tunnels : p->n_tunnels, used = 0;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t ti = r->n_tunnels ? r->tunnels[i].idx : i;

		if (!r->n_tunnels && !on_a_path(p, ti) && !(r->tunnel.name && r->tunnel.idx == ti))
			continue;
		rc = set_put(c, ri, r->servers, r->n_servers, (uint32_t)ti, p->tunnels[ti].ifname);
		used++;
	}
	n = used;
	if (rc == 0 && !r->n_tunnels && any_internet(p))
		rc = set_put(c, ri, r->servers, r->n_servers, DNS_UNBOUND, "");
	if (rc < 0)
		xb_errors_add(errs, r->src.file, r->src.line,
			      "dns rule \"%s\": %zu servers through %zu tunnels: more than %d", r->name,
			      r->n_servers, n, XB_DNS_UPSTREAM_SERVERS_MAX);
	return rc;
}

/* What a learned address was learned for: a rule whose domains change (or
 * a new rule under an old name) must not inherit the old addresses. */
static uint32_t domains_fp(const struct xb_rule *r)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < r->n_domains; i++)
		for (const char *c = r->domains[i]; ; c++) {
			h = (h ^ (uint8_t)*c) * 16777619u;
			if (!*c)
				break;
		}
	return h ? h : 1;
}

/* Access rules with domains (allow and deny): their patterns, set names
 * and fingerprints. */
static int access_rules(struct xb_dns_service_cfg *c, struct xb_errors *errs)
{
	const struct xb_policy *p = c->p;

	for (size_t ri = 0; ri < p->n_rules; ri++) {
		const struct xb_rule *r = &p->rules[ri];
		struct dns_acc *a;

		if (!r->n_domains)
			continue;
		if (!(a = xb_grow(c->acc, c->n_acc, sizeof(*a))))
			return -1;
		c->acc = a;
		a = &a[c->n_acc++];
		memset(a, 0, sizeof(*a));
		a->rule = ri;
		a->allow = r->action == XB_ACTION_ALLOW;
		a->learn_private = r->learn_private;
		a->fp = domains_fp(r);
		a->has4 = xb_compile_set_name(a->set4, sizeof(a->set4), p, ri, XB_SET_DNS4);
		a->has6 = xb_compile_set_name(a->set6, sizeof(a->set6), p, ri, XB_SET_DNS6);
		if (!(a->pats = calloc(r->n_domains, sizeof(*a->pats))))
			return -1;
		for (size_t k = 0; k < r->n_domains; k++) {
			const char *why;

			if (xb_dns_match_pattern_parse(&a->pats[a->n_pats], r->domains[k],
						 strlen(r->domains[k]), XB_DNS_EXACT, &why) < 0)
				xb_errors_add(errs, r->src.file, r->src.line, "rule \"%s\": domains %s: %s",
					      r->name ? r->name : "?", r->domains[k], why);
			else
				a->n_pats++;
		}
	}
	return 0;
}

struct xb_dns_service_cfg *xb_dns_service_prepare(const struct xb_policy *p, struct xb_errors *errs)
{
	const struct xb_dns *d = &p->dns;
	struct xb_dns_service_cfg *c = calloc(1, sizeof(*c));
	size_t n0 = errs->n;
	bool oom = !c;

	if (c) {
		c->p = p;
		c->n_sets = d->n_rules + 1;
		c->names = xb_dns_match_new();
		c->sets = calloc(c->n_sets, sizeof(*c->sets));
		c->stats = calloc(c->n_sets, sizeof(*c->stats));
		c->srv_tun = calloc(c->n_sets, sizeof(*c->srv_tun));
		oom = !c->names || !c->sets || !c->stats || !c->srv_tun;
	}
	for (size_t i = 0; !oom && i < d->n_rules; i++) {
		const struct xb_dns_rule *r = &d->rules[i];
		const union xb_sockaddr *v = r->n_servers ? r->servers : d->upstreams;
		size_t n = r->n_servers ? r->n_servers : d->n_upstreams;

		if (add_patterns(c->names, r, (uint32_t)i, errs) < 0 && errs->n == n0)
			oom = true;
		if (r->action != XB_DNS_TUNNEL) {
			server_set(&c->sets[i], r->name, v, n, d, errs, r->src);
			for (size_t k = 0; k < XB_DNS_UPSTREAM_SERVERS_MAX; k++)
				c->srv_tun[i][k] = DNS_UNBOUND;
			continue;
		}
		server_set(&c->sets[i], r->name, NULL, 0, d, errs, r->src);
		tunnel_set(c, i, errs);
	}
	if (!oom) {
		server_set(&c->sets[d->n_rules], "upstreams", d->upstreams, d->n_upstreams, d, errs,
			   (struct xb_src){ p->path, 0 });
		oom = access_rules(c, errs) < 0 || dns_own_addrs(&c->own, p) < 0;
		c->n_patterns = xb_dns_match_count(c->names);
	}
	if (oom)
		xb_errors_add(errs, p->path, 0, "dns: out of memory");
	if (oom || errs->n > n0) {
		xb_dns_service_cfg_free(c);
		return NULL;
	}
	return c;
}

void xb_dns_service_cfg_free(struct xb_dns_service_cfg *c)
{
	if (!c)
		return;
	xb_dns_match_free(c->names);
	xb_dns_learn_own_free(&c->own);
	for (size_t i = 0; i < c->n_acc; i++)
		free(c->acc[i].pats);
	free(c->acc);
	free(c->sets);
	free(c->srv_tun);
	free(c->stats);
	free(c);
}

/* ---- names ---- */

static bool covers(const struct xb_dns_pattern *pat, const char *name, size_t len)
{
	bool below;

	if (pat->len == 0)	/* the root */
		return pat->mode != XB_DNS_EXACT ? (pat->mode == XB_DNS_SUFFIX || len > 0) : len == 0;
	below = len > pat->len && name[len - pat->len - 1] == '.' &&
		!memcmp(name + len - pat->len, pat->name, pat->len);
	if (pat->mode == XB_DNS_BELOW)
		return below;
	if (len == pat->len && !memcmp(name, pat->name, len))
		return true;
	return pat->mode == XB_DNS_SUFFIX && below;
}

/* name is the query's lower-cased text; a name with an escaped byte (a
 * label holding a dot, say) matches no access pattern: its labels are not
 * what its text shows. */
static bool acc_matches(const struct dns_acc *a, const char *name)
{
	size_t len = strlen(name);

	if (strchr(name, '\\'))
		return false;
	for (size_t i = 0; i < a->n_pats; i++)
		if (covers(&a->pats[i], name, len))
			return true;
	return false;
}

static bool any_acc(const struct xb_dns_service_cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_acc; i++)
		if (acc_matches(&c->acc[i], name))
			return true;
	return false;
}

/* The first access rule by which device d may reach name (group,
 * posture), or SIZE_MAX: its path is the one the name's traffic takes. */
static size_t admitted(const struct xb_dns_service *s, const char *name, size_t d)
{
	const struct xb_dns_service_cfg *c = s->cfg;

	for (size_t i = 0; i < c->n_acc; i++) {
		const struct xb_rule *r = &c->p->rules[c->acc[i].rule];

		if (!c->acc[i].allow || !acc_matches(&c->acc[i], name) ||
		    !xb_compile_selects(c->p, c->acc[i].rule, d))
			continue;
		if (!r->n_posture || (s->posture && s->posture(s->posture_ctx, c->acc[i].rule, d)))
			return c->acc[i].rule;
	}
	return SIZE_MAX;
}

/* ---- local answers ---- */

static size_t local_rcode(const struct xb_dns_wire_query *q, unsigned rcode, uint8_t *out, size_t cap)
{
	struct xb_dns_wire_builder b;

	if (xb_dns_wire_answer_begin(&b, out, cap, q, rcode, 0, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	return xb_dns_wire_answer_finish(&b);
}

size_t dns_fail(const struct dns_query *qq, unsigned rcode, uint8_t *out, size_t cap)
{
	return local_rcode(&qq->q, rcode, out, cap);
}

/* NXDOMAIN with an SOA of the name itself, so that the client caches the
 * denial for the rule's TTL (RFC 2308). */
static size_t nxdomain(const struct xb_dns_wire_query *q, uint32_t ttl, uint8_t *out, size_t cap)
{
	static const uint8_t host[] = "\7xborder\7invalid";
	struct xb_dns_wire_soa soa = { q->q.name, host, host, ttl, 1, 3600, 600, 86400, ttl };
	struct xb_dns_wire_builder b;

	if (xb_dns_wire_answer_begin(&b, out, cap, q, XB_DNS_WIRE_NXDOMAIN, XB_DNS_WIRE_F_AA, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	xb_dns_wire_answer_soa(&b, &soa);
	return xb_dns_wire_answer_finish(&b);
}

static void add_addrs(struct xb_dns_wire_builder *b, const struct xb_dns_wire_query *q, const uint8_t *owner,
		      uint32_t ttl, const struct in_addr *a, size_t na, const struct in6_addr *a6,
		      size_t na6)
{
	bool any = q->q.qtype == XB_DNS_WIRE_T_ANY;

	for (size_t i = 0; (q->q.qtype == XB_DNS_WIRE_T_A || any) && i < na; i++)
		xb_dns_wire_answer_a(b, owner, ttl, (const uint8_t *)&a[i]);
	for (size_t i = 0; (q->q.qtype == XB_DNS_WIRE_T_AAAA || any) && i < na6; i++)
		xb_dns_wire_answer_aaaa(b, owner, ttl, a6[i].s6_addr);
}

static size_t block_answer(const struct xb_dns_rule *r, const struct xb_dns_wire_query *q, uint8_t *out,
			   size_t cap)
{
	struct xb_dns_wire_builder b;

	if (r->block == XB_DNS_BLOCK_NXDOMAIN)
		return nxdomain(q, r->ttl, out, cap);
	if (r->block == XB_DNS_BLOCK_REFUSED)
		return local_rcode(q, XB_DNS_WIRE_REFUSED, out, cap);
	if (xb_dns_wire_answer_begin(&b, out, cap, q, XB_DNS_WIRE_NOERROR, XB_DNS_WIRE_F_AA, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	add_addrs(&b, q, NULL, r->ttl, &r->block4, r->has_block4, &r->block6, r->has_block6);
	return xb_dns_wire_answer_finish(&b);
}

/* RFC 8482: ANY is answered with one synthesized HINFO, not everything. */
static size_t any_answer(const struct xb_dns_wire_query *q, uint8_t *out, size_t cap)
{
	static const uint8_t hinfo[] = "\7RFC8482\0";
	struct xb_dns_wire_builder b;

	if (xb_dns_wire_answer_begin(&b, out, cap, q, XB_DNS_WIRE_NOERROR, 0, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	xb_dns_wire_answer_add(&b, XB_DNS_WIRE_AN, NULL, 13 /* HINFO */, 3600, hinfo, sizeof(hinfo) - 1);
	return xb_dns_wire_answer_finish(&b);
}

/* ---- learning destinations ---- */

/* Why addr must not enter a's sets (counted), or NULL when it may. */
static const char *refusal(const struct xb_dns_service_cfg *c, struct dns_acc *a, int family,
			   const uint8_t *addr)
{
	enum xb_dns_learn_class k = xb_dns_learn_classify(family, addr);

	if (k == XB_DNS_LEARN_SPECIAL) {
		a->refused.special++;
		return "a special-purpose address";
	}
	if (xb_dns_learn_own_has(&c->own, family, addr)) {
		a->refused.own++;
		return "one of the gateway's own addresses";
	}
	if (k == XB_DNS_LEARN_PRIVATE && !a->learn_private) {
		a->refused.private_++;
		return "a private address, and the rule has no learn_private";
	}
	return NULL;
}

static const char *acc_name(const struct xb_dns_service_cfg *c, const struct dns_acc *a)
{
	const char *n = c->p->rules[a->rule].name;

	return n ? n : "?";
}

static void refused_log(struct xb_dns_service *s, const struct dns_acc *a, const char *name,
			int family, const uint8_t *addr, const char *why)
{
	const struct xb_dns_service_cfg *c = s->cfg;
	char text[INET6_ADDRSTRLEN];

	if (!log_ratelimit(&s->learn_rl))
		return;
	inet_ntop(family, addr, text, sizeof(text));
	log_warnx("dns: rule \"%s\": %s answered for %s not learned: %s", acc_name(c, a), text,
		  name, why);
}

static void queue(struct xb_dns_service *s, size_t acc, int family, const uint8_t *addr, uint32_t ttl)
{
	struct dns_pend *p;

	if (s->n_pend == DNS_PEND_MAX)
		dns_learn_flush(s);
	p = &s->pend[s->n_pend++];
	p->acc = (uint32_t)acc;
	p->family = (uint8_t)family;
	memcpy(p->addr, addr, family == AF_INET ? 4 : 16);
	p->ttl = ttl;
}

/* The addresses the answer holds for name are queued for the sets of every
 * access rule whose domains match name or the name the chain ends at —
 * those the filter lets through (dns_learn.h), at most learn_answer_max
 * per rule. */
static void learn(struct xb_dns_service *s, const char *name, const struct xb_dns_wire_msg *m)
{
	struct xb_dns_wire_addr addr[DNS_ADDRS_MAX];
	struct xb_dns_wire_chain ch;
	char end[XB_DNS_WIRE_TEXT_MAX];
	struct xb_dns_service_cfg *c = s->cfg;
	unsigned most = c->p->dns.learn_answer_max ? c->p->dns.learn_answer_max : 32;

	if (!c->n_acc || xb_dns_wire_chain(m, &ch, addr, DNS_ADDRS_MAX) < 0 || !ch.naddr)
		return;
	if (xb_dns_wire_name_to_text(ch.name, end, sizeof(end), true) < 0)
		end[0] = '\0';
	for (size_t i = 0; i < c->n_acc; i++) {
		struct dns_acc *a = &c->acc[i];
		unsigned took = 0, cut = 0;

		if (!acc_matches(a, name) && !(end[0] && acc_matches(a, end)))
			continue;
		for (size_t k = 0; k < ch.naddr; k++) {
			int fam = addr[k].family == 4 ? AF_INET : AF_INET6;
			const char *why;

			if (!(fam == AF_INET ? a->has4 : a->has6))
				continue;
			if ((why = refusal(c, a, fam, addr[k].addr))) {
				refused_log(s, a, name, fam, addr[k].addr, why);
			} else if (took == most) {
				cut++;
			} else {
				queue(s, i, fam, addr[k].addr, addr[k].ttl);
				took++;
			}
		}
		a->refused.cut += cut;
		if (cut && log_ratelimit(&s->learn_rl))
			log_warnx("dns: rule \"%s\": the answer for %s holds %u more addresses than "
				  "learn_answer_max (%u): not learned", acc_name(c, a), name, cut, most);
	}
}

/* ---- deciding ---- */

static const struct xb_dns_rule *rule_of(const struct xb_dns_service *s, const struct dns_query *qq)
{
	return qq->rule == DNS_NO_RULE ? NULL : &s->cfg->p->dns.rules[qq->rule];
}

static size_t override_answer(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap)
{
	const struct xb_dns_rule *r = rule_of(s, qq);
	uint32_t ttl_max = s->cfg->p->dns.ttl_max;
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_msg m;
	size_t len;

	if (xb_dns_wire_answer_begin(&b, out, cap, &qq->q, XB_DNS_WIRE_NOERROR, XB_DNS_WIRE_F_AA, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	/* Like any learned address: no device is told a longer TTL than the
	 * set keeps it for (dns_answer_from). */
	add_addrs(&b, &qq->q, NULL, ttl_max && r->ttl > ttl_max ? ttl_max : r->ttl, r->a, r->n_a,
		  r->aaaa, r->n_aaaa);
	len = xb_dns_wire_answer_finish(&b);
	/* Overrides teach the sets too: parse what we built, if any access
	 * rule wants the name. */
	if (any_acc(s->cfg, qq->q.text) &&
	    xb_dns_wire_parse_response(&m, out, len, qq->q.hdr.id, &qq->q.q) == XB_DNS_WIRE_R_OK)
		learn(s, qq->q.text, &m);
	return len;
}

/* The target's question for an override with cname. */
static bool chase_setup(struct xb_dns_service *s, struct dns_query *qq)
{
	const struct xb_dns_rule *r = rule_of(s, qq);

	qq->qc = qq->q;
	if (xb_dns_wire_name_from_text(r->cname, qq->qc.q.name) < 0)
		return false;
	qq->qc.q.name_len = (uint16_t)xb_dns_wire_name_len(qq->qc.q.name, XB_DNS_WIRE_NAME_MAX);
	snprintf(qq->qc.text, sizeof(qq->qc.text), "%s", r->cname);
	qq->chase = true;
	qq->cname_ttl = r->ttl;
	return true;
}

/* The tunnels access rule a sends its traffic through as written: its via
 * tunnels in order, every tunnel for best. */
static size_t via_tunnels(const struct xb_policy *p, const struct xb_rule *a, size_t *out)
{
	size_t n = 0;

	for (size_t k = 0; k < a->n_via; k++)
		if (a->via[k].kind == XB_VIA_TUNNEL)
			out[n++] = a->via[k].tunnel.idx;
		else if (a->via[k].kind == XB_VIA_BEST)
			for (size_t ti = 0; ti < p->n_tunnels; ti++)
				out[n++] = ti;
	return n;
}

/* The tunnels a tunnel rule's query goes through, best first: the rule's
 * own list, or the path of access rule ar (the one that admitted the
 * device), as health ranks them now. *internet: the path may leave on the
 * gateway's own route. tun has room for XB_DNS_UPSTREAM_SERVERS_MAX: tunnel_set
 * admitted the rule only with at most that many tunnels of its own, or on
 * the paths of allow rules with domains (ar's among them). */
static size_t route_tunnels(struct xb_dns_service *s, const struct xb_dns_rule *r, size_t ar,
			    size_t *tun, bool *internet)
{
	const struct xb_policy *p = s->cfg->p;
	size_t own[XB_DNS_UPSTREAM_SERVERS_MAX], n = 0;

	*internet = false;
	if (r->n_tunnels) {
		for (size_t i = 0; i < r->n_tunnels; i++)
			own[i] = tun[i] = r->tunnels[i].idx;
		n = s->route ? s->route(s->route_ctx, SIZE_MAX, own, r->n_tunnels, tun)
			     : r->n_tunnels;
	} else if (ar != SIZE_MAX) {
		const struct xb_rule *a = &p->rules[ar];

		for (size_t k = 0; k < a->n_via; k++)
			*internet |= a->via[k].kind == XB_VIA_INTERNET;
		n = s->route ? s->route(s->route_ctx, ar, NULL, 0, tun) : via_tunnels(p, a, tun);
	}
	if (!n && r->tunnel.name) {	/* a path without tunnels: the one named */
		tun[n++] = r->tunnel.idx;
		*internet = false;
	}
	if (!n)
		*internet = true;
	return n;
}

/* qq->order: the servers of the rule's set, tunnel by tunnel in the order
 * route_tunnels gives, then those on the gateway's own route if the path
 * may end there. */
static void route_order(struct xb_dns_service *s, struct dns_query *qq, size_t ar)
{
	const struct xb_dns_service_cfg *c = s->cfg;
	const uint32_t *via = c->srv_tun[qq->rule];
	size_t tun[XB_DNS_UPSTREAM_SERVERS_MAX];
	bool internet;
	size_t n = route_tunnels(s, rule_of(s, qq), ar, tun, &internet);

	qq->n_order = 0;
	for (size_t k = 0; k <= n; k++) {
		uint32_t want = k < n ? (uint32_t)tun[k] : DNS_UNBOUND;

		if (k == n && !internet)
			break;
		for (unsigned i = 0; i < qq->set->n; i++)
			if (via[i] == want && qq->n_order < XB_DNS_UPSTREAM_SERVERS_MAX)
				qq->order[qq->n_order++] = (uint8_t)i;
	}
}

/* The rule for the name being resolved: the target's when chasing. */
static size_t match_rule(const struct xb_dns_service *s, const char *text)
{
	const struct xb_dns_entry *e = xb_dns_match_lookup(s->cfg->names, text, strlen(text));

	return e ? e->value : DNS_NO_RULE;
}

enum dns_verdict dns_decide(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap,
			    size_t *len)
{
	const struct xb_dns *d = &s->cfg->p->dns;
	const struct xb_dns_rule *r;
	size_t ar = SIZE_MAX;

	qq->rule = match_rule(s, qq->q.text);
	r = rule_of(s, qq);
	qq->action = r ? action_names[r->action] : "forward";
	s->cfg->stats[r ? qq->rule : d->n_rules].queries++;
	if (d->doh_canary && !strcmp(qq->q.text, DNS_CANARY)) {
		/* Browsers that find the canary missing leave DNS-over-HTTPS
		 * off and ask us: their names are learned. */
		s->cfg->stats[r ? qq->rule : d->n_rules].blocked++;
		qq->action = "canary";
		*len = nxdomain(&qq->q, 60, out, cap);
		return DNS_ANSWERED;
	}
	if (r && r->action == XB_DNS_OVERRIDE && r->cname && chase_setup(s, qq)) {
		/* Resolve the target under its own rule (one level: an
		 * override target that is itself a cname override is not
		 * followed again). */
		size_t tr = match_rule(s, qq->qc.text);

		if (tr != DNS_NO_RULE && d->rules[tr].action == XB_DNS_OVERRIDE && !d->rules[tr].cname) {
			qq->rule = tr;
			*len = dns_answer_from(s, qq, NULL, out, cap);
			return DNS_ANSWERED;
		}
		qq->rule = tr;
		r = rule_of(s, qq);
		if (r && r->action == XB_DNS_BLOCK) {
			*len = block_answer(r, &qq->q, out, cap);
			return DNS_ANSWERED;
		}
	} else if (r && r->action == XB_DNS_OVERRIDE) {
		*len = override_answer(s, qq, out, cap);
		return DNS_ANSWERED;
	}
	if (r && r->action == XB_DNS_BLOCK) {
		s->cfg->stats[qq->rule].blocked++;
		*len = block_answer(r, &qq->q, out, cap);
		return DNS_ANSWERED;
	}
	if (r && r->action == XB_DNS_TUNNEL &&
	    (ar = admitted(s, qq->chase ? qq->qc.text : qq->q.text, qq->device)) == SIZE_MAX) {
		s->cfg->stats[qq->rule].denied++;
		qq->action = "deny";
		*len = block_answer(r, &qq->q, out, cap);
		return DNS_ANSWERED;
	}
	if (qq->q.q.qtype == XB_DNS_WIRE_T_ANY) {
		*len = any_answer(&qq->q, out, cap);
		return DNS_ANSWERED;
	}
	qq->set = &s->cfg->sets[r ? qq->rule : d->n_rules];
	if (!qq->set->n) {
		*len = local_rcode(&qq->q, XB_DNS_WIRE_REFUSED, out, cap);	/* nowhere to ask */
		return DNS_ANSWERED;
	}
	qq->n_order = 0;
	if (r && r->action == XB_DNS_TUNNEL)
		route_order(s, qq, ar);
	/* Answers fetched with DO (signatures) and without are kept apart.
	 * Those of a tunnel rule share the rule's scope whichever tunnel
	 * brought them: the same resolvers answered. */
	qq->scope = (r ? (uint32_t)qq->rule + 1 : 0) * 2 + (qq->q.edns.present && qq->q.edns.do_bit);
	return DNS_ASK;
}

/* Copy the upstream answer section (re-encoded: names in rdata may point
 * into the upstream message) after our CNAME. */
static size_t chased_answer(struct xb_dns_service *s, struct dns_query *qq, const struct xb_dns_wire_msg *m,
			    uint8_t *out, size_t cap)
{
	const struct xb_dns_rule *r = rule_of(s, qq);
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	uint8_t target[XB_DNS_WIRE_NAME_MAX];
	unsigned rcode = m ? m->rcode : XB_DNS_WIRE_NOERROR;

	if (xb_dns_wire_answer_begin(&b, out, cap, &qq->q, rcode, 0, XB_DNS_WIRE_EDNS_SIZE) < 0)
		return 0;
	xb_dns_wire_answer_cname(&b, NULL, qq->cname_ttl, qq->qc.q.name);
	if (!m) {	/* the target is a local override */
		add_addrs(&b, &qq->q, qq->qc.q.name, r->ttl, r->a, r->n_a, r->aaaa, r->n_aaaa);
		return xb_dns_wire_answer_finish(&b);
	}
	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_AN);
	while (xb_dns_wire_iter_next(&it, &rr)) {
		/* Only class IN rdata is validated (an A of another class may
		 * hold any number of octets); ours is an IN answer. */
		if (rr.rclass != XB_DNS_WIRE_C_IN)
			continue;
		if (rr.type == XB_DNS_WIRE_T_CNAME && xb_dns_wire_rr_name(m, &rr, 0, target) >= 0)
			xb_dns_wire_answer_cname(&b, rr.owner, rr.ttl, target);
		else if (rr.type == XB_DNS_WIRE_T_A || rr.type == XB_DNS_WIRE_T_AAAA)
			xb_dns_wire_answer_add(&b, XB_DNS_WIRE_AN, rr.owner, rr.type, rr.ttl, rr.rdata, rr.rdlen);
	}
	return xb_dns_wire_answer_finish(&b);
}

/* RFC 6891 7: no OPT in the answer to a query without one. The upstream's
 * OPT (we always ask with EDNS) is in its additional section, not always
 * last: cut out[0..m->len) where the OPT starts — the records after it go
 * too, and the prefix keeps every compression pointer inside — and return
 * the new length. */
static size_t strip_opt(const struct xb_dns_wire_msg *m, uint8_t *out)
{
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	size_t start = m->sec_off[XB_DNS_WIRE_AR];
	uint16_t kept = 0;

	if (!m->edns.present)
		return m->len;
	xb_dns_wire_iter_init(&it, m, XB_DNS_WIRE_AR);
	while (xb_dns_wire_iter_next(&it, &rr)) {
		if (rr.type == XB_DNS_WIRE_T_OPT) {
			out[10] = (uint8_t)(kept >> 8);
			out[11] = (uint8_t)kept;
			return start;
		}
		start = rr.rdata_off + rr.rdlen;
		kept++;
	}
	return m->len;
}

/* Devices see no TTL above ttl_max: a learned address stays in the sets
 * for at most ttl_max + grace, and a device must ask again before it
 * leaves them. */
size_t dns_answer_from(struct xb_dns_service *s, struct dns_query *qq, const struct xb_dns_wire_msg *m,
		       uint8_t *out, size_t cap)
{
	uint32_t ttl_max = s->cfg->p->dns.ttl_max;
	size_t len;

	if (qq->chase) {
		struct xb_dns_wire_msg mine;

		len = chased_answer(s, qq, m, out, cap);
		if (len && xb_dns_wire_parse_response(&mine, out, len, qq->q.hdr.id, &qq->q.q) == XB_DNS_WIRE_R_OK)
			learn(s, qq->q.text, &mine);
		/* Fails closed: no device is told a TTL the set does not keep. */
		if (len && ttl_max && xb_dns_wire_cap_ttls(out, len, ttl_max) < 0)
			return 0;
		return len;
	}
	learn(s, qq->q.text, m);
	if (m->len > cap)
		return 0;
	memcpy(out, m->msg, m->len);
	xb_dns_wire_set_id(out, m->len, qq->q.hdr.id);
	if (ttl_max && xb_dns_wire_cap_ttls(out, m->len, ttl_max) < 0)
		return 0;	/* the caller answers SERVFAIL */
	return qq->q.edns.present ? m->len : strip_opt(m, out);
}

size_t dns_from_cache(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap)
{
	const struct xb_dns_wire_query *ask = qq->chase ? &qq->qc : &qq->q;
	uint8_t buf[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_wire_msg m;
	uint32_t left;
	size_t n;

	if (!s->cache)
		return 0;
	n = xb_dns_cache_lookup(s->cache, qq->scope, &ask->q, ask->hdr.id, s->now_ns, buf,
			   sizeof(buf), &left);
	if (!n || xb_dns_wire_parse_response(&m, buf, n, ask->hdr.id, &ask->q) != XB_DNS_WIRE_R_OK)
		return 0;
	qq->cached = true;
	return dns_answer_from(s, qq, &m, out, cap);
}

size_t dns_from_stale(struct xb_dns_service *s, struct dns_query *qq, uint8_t *out, size_t cap)
{
	const struct xb_dns_wire_query *ask = qq->chase ? &qq->qc : &qq->q;
	uint8_t buf[XB_DNS_CACHE_MSG_MAX];
	struct xb_dns_wire_msg m;
	size_t n;

	if (!s->cache || !s->cfg->p->dns.serve_stale)
		return 0;
	n = xb_dns_cache_lookup_stale(s->cache, qq->scope, &ask->q, ask->hdr.id, s->now_ns, buf,
				 sizeof(buf));
	if (!n || xb_dns_wire_parse_response(&m, buf, n, ask->hdr.id, &ask->q) != XB_DNS_WIRE_R_OK)
		return 0;
	qq->cached = qq->stale = true;
	return dns_answer_from(s, qq, &m, out, cap);
}

void dns_stats_done(struct xb_dns_service *s, const struct dns_query *qq, bool ok)
{
	struct dns_stats *st = &s->cfg->stats[qq->rule == DNS_NO_RULE ? s->cfg->n_sets - 1 : qq->rule];
	uint64_t us = (s->now_ns - qq->t0_ns) / 1000;
	unsigned b = 0;

	if (!ok) {
		st->failed++;
		return;
	}
	st->answered++;
	st->cached += qq->cached;
	st->lat_sum_us += us;
	if (us > st->lat_max_us)
		st->lat_max_us = us;
	while (b + 1 < 24 && (us >> (b + 1)))
		b++;
	st->lat_hist[b]++;
}

static const char *rcode_name(unsigned rc)
{
	static const char *const n[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
					 "REFUSED" };

	return rc < 6 ? n[rc] : "OTHER";
}

void dns_log(struct xb_dns_service *s, const struct dns_query *qq, const uint8_t *ans, size_t len)
{
	const struct xb_policy *p = s->cfg->p;
	const struct xb_dns_rule *r = rule_of(s, qq);
	json_t *o, *addrs;
	struct xb_dns_wire_addr a[DNS_ADDRS_MAX];
	struct xb_dns_wire_chain ch = { 0 };
	struct xb_dns_wire_msg m;
	char text[INET6_ADDRSTRLEN], ts[32];
	struct timespec now;
	struct tm tm;

	if (!s->log)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ", now.tv_nsec / 1000000);
	addrs = json_array();
	if (len && xb_dns_wire_parse_response(&m, ans, len, qq->q.hdr.id, &qq->q.q) == XB_DNS_WIRE_R_OK &&
	    xb_dns_wire_chain(&m, &ch, a, DNS_ADDRS_MAX) == 0)
		for (size_t i = 0; i < ch.naddr; i++) {
			inet_ntop(a[i].family == 4 ? AF_INET : AF_INET6, a[i].addr, text, sizeof(text));
			json_array_append_new(addrs, json_string(text));
		}
	o = json_pack("{s:s, s:s, s:s, s:i, s:s?, s:s, s:s, s:o, s:f, s:b, s:b}",
		      "time", ts, "device", p->devices[qq->device].name, "name", qq->q.text,
		      "type", qq->q.q.qtype, "rule", r ? r->name : NULL, "action", qq->action,
		      "rcode", len >= XB_DNS_WIRE_HDR_LEN ? rcode_name(ans[3] & 0xf) : "SERVFAIL",
		      "answer", addrs, "latency_ms",
		      (double)(clock_mono_ns() - qq->t0_ns) / 1e6, "cached", qq->cached,
		      "stale", qq->stale);
	if (o)
		xb_jsonlog_write(s->log, o);
	json_decref(o);
}
