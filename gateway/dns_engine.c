/* The DNS service's policy side: what a policy makes of names (matchers,
 * lists, server sets), what a query gets, and the destinations answers
 * teach the firewall. I/O is in dns_service.c. docs/dns.md.
 */
#include "gateway/dns_internal.h"

#include "common/array.h"
#include "common/clock.h"
#include "common/log.h"
#include "gateway/dns_list.h"

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

		if (xb_dns_pattern_parse(&pat, r->domains[i], strlen(r->domains[i]), XB_DNS_EXACT,
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

static int server_set(struct xb_up_set *set, const char *name, const union wg_sockaddr *v,
		      size_t n, const struct xb_dns *d, struct xb_errors *errs, struct xb_src src)
{
	char text[80];

	xb_up_set_init(set, name);
	set->timeout_ms = d->timeout_ms;
	set->tries = d->tries;
	for (size_t i = 0; i < n; i++) {
		wg_endpoint_format(text, sizeof(text), &v[i]);
		if (xb_up_set_add(set, text) < 0) {
			xb_errors_add(errs, src.file, src.line, "dns: %s: server %s: %s", name, text,
				      errno == ENOSPC ? "more servers than a set holds" : "bad address");
			return -1;
		}
	}
	return 0;
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
static int access_rules(struct xb_dnssvc_cfg *c, struct xb_errors *errs)
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
		a->fp = domains_fp(r);
		a->has4 = xb_compile_set_name(a->set4, sizeof(a->set4), p, ri, XB_SET_DNS4);
		a->has6 = xb_compile_set_name(a->set6, sizeof(a->set6), p, ri, XB_SET_DNS6);
		if (!(a->pats = calloc(r->n_domains, sizeof(*a->pats))))
			return -1;
		for (size_t k = 0; k < r->n_domains; k++) {
			const char *why;

			if (xb_dns_pattern_parse(&a->pats[a->n_pats], r->domains[k],
						 strlen(r->domains[k]), XB_DNS_EXACT, &why) < 0)
				xb_errors_add(errs, r->src.file, r->src.line, "rule \"%s\": domains %s: %s",
					      r->name ? r->name : "?", r->domains[k], why);
			else
				a->n_pats++;
		}
	}
	return 0;
}

struct xb_dnssvc_cfg *xb_dnssvc_prepare(const struct xb_policy *p, struct xb_errors *errs)
{
	const struct xb_dns *d = &p->dns;
	struct xb_dnssvc_cfg *c = calloc(1, sizeof(*c));
	size_t n0 = errs->n;
	bool oom = !c;

	if (c) {
		c->p = p;
		c->n_sets = d->n_rules + 1;
		c->names = xb_dns_match_new();
		c->sets = calloc(c->n_sets, sizeof(*c->sets));
		c->stats = calloc(c->n_sets, sizeof(*c->stats));
		oom = !c->names || !c->sets || !c->stats;
	}
	for (size_t i = 0; !oom && i < d->n_rules; i++) {
		const struct xb_dns_rule *r = &d->rules[i];
		const union wg_sockaddr *v = r->n_servers ? r->servers : d->upstreams;
		size_t n = r->n_servers ? r->n_servers : d->n_upstreams;

		if (add_patterns(c->names, r, (uint32_t)i, errs) < 0 && errs->n == n0)
			oom = true;
		server_set(&c->sets[i], r->name, v, n, d, errs, r->src);
		if (r->action == XB_DNS_TUNNEL)
			snprintf(c->sets[i].bind_ifname, sizeof(c->sets[i].bind_ifname), "%s",
				 p->tunnels[r->tunnel.idx].ifname);
	}
	if (!oom) {
		server_set(&c->sets[d->n_rules], "upstreams", d->upstreams, d->n_upstreams, d, errs,
			   (struct xb_src){ p->path, 0 });
		oom = access_rules(c, errs) < 0;
		c->n_patterns = xb_dns_match_count(c->names);
	}
	if (oom)
		xb_errors_add(errs, p->path, 0, "dns: out of memory");
	if (oom || errs->n > n0) {
		xb_dnssvc_cfg_free(c);
		return NULL;
	}
	return c;
}

void xb_dnssvc_cfg_free(struct xb_dnssvc_cfg *c)
{
	if (!c)
		return;
	xb_dns_match_free(c->names);
	for (size_t i = 0; i < c->n_acc; i++)
		free(c->acc[i].pats);
	free(c->acc);
	free(c->sets);
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

static bool any_acc(const struct xb_dnssvc_cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_acc; i++)
		if (acc_matches(&c->acc[i], name))
			return true;
	return false;
}

/* May device d reach name through some access rule (group, posture)? */
static bool admitted(const struct xb_dnssvc *s, const char *name, size_t d)
{
	const struct xb_dnssvc_cfg *c = s->cfg;

	for (size_t i = 0; i < c->n_acc; i++) {
		const struct xb_rule *r = &c->p->rules[c->acc[i].rule];

		if (!c->acc[i].allow || !acc_matches(&c->acc[i], name) ||
		    !xb_compile_selects(c->p, c->acc[i].rule, d))
			continue;
		if (!r->n_posture || (s->posture && s->posture(s->posture_ctx, c->acc[i].rule, d)))
			return true;
	}
	return false;
}

/* ---- local answers ---- */

static size_t local_rcode(const struct dnsw_query *q, unsigned rcode, uint8_t *out, size_t cap)
{
	struct dnsw_builder b;

	if (dnsw_answer_begin(&b, out, cap, q, rcode, 0, DNSW_EDNS_SIZE) < 0)
		return 0;
	return dnsw_answer_finish(&b);
}

size_t dns_fail(const struct dns_query *qq, unsigned rcode, uint8_t *out, size_t cap)
{
	return local_rcode(&qq->q, rcode, out, cap);
}

/* NXDOMAIN with an SOA of the name itself, so that the client caches the
 * denial for the rule's TTL (RFC 2308). */
static size_t nxdomain(const struct dnsw_query *q, uint32_t ttl, uint8_t *out, size_t cap)
{
	static const uint8_t host[] = "\7xborder\7invalid";
	struct dnsw_soa soa = { q->q.name, host, host, ttl, 1, 3600, 600, 86400, ttl };
	struct dnsw_builder b;

	if (dnsw_answer_begin(&b, out, cap, q, DNSW_NXDOMAIN, DNSW_F_AA, DNSW_EDNS_SIZE) < 0)
		return 0;
	dnsw_answer_soa(&b, &soa);
	return dnsw_answer_finish(&b);
}

static void add_addrs(struct dnsw_builder *b, const struct dnsw_query *q, const uint8_t *owner,
		      uint32_t ttl, const struct in_addr *a, size_t na, const struct in6_addr *a6,
		      size_t na6)
{
	bool any = q->q.qtype == DNSW_T_ANY;

	for (size_t i = 0; (q->q.qtype == DNSW_T_A || any) && i < na; i++)
		dnsw_answer_a(b, owner, ttl, (const uint8_t *)&a[i]);
	for (size_t i = 0; (q->q.qtype == DNSW_T_AAAA || any) && i < na6; i++)
		dnsw_answer_aaaa(b, owner, ttl, a6[i].s6_addr);
}

static size_t block_answer(const struct xb_dns_rule *r, const struct dnsw_query *q, uint8_t *out,
			   size_t cap)
{
	struct dnsw_builder b;

	if (r->block == XB_DNS_BLOCK_NXDOMAIN)
		return nxdomain(q, r->ttl, out, cap);
	if (r->block == XB_DNS_BLOCK_REFUSED)
		return local_rcode(q, DNSW_REFUSED, out, cap);
	if (dnsw_answer_begin(&b, out, cap, q, DNSW_NOERROR, DNSW_F_AA, DNSW_EDNS_SIZE) < 0)
		return 0;
	add_addrs(&b, q, NULL, r->ttl, &r->block4, r->has_block4, &r->block6, r->has_block6);
	return dnsw_answer_finish(&b);
}

/* RFC 8482: ANY is answered with one synthesized HINFO, not everything. */
static size_t any_answer(const struct dnsw_query *q, uint8_t *out, size_t cap)
{
	static const uint8_t hinfo[] = "\7RFC8482\0";
	struct dnsw_builder b;

	if (dnsw_answer_begin(&b, out, cap, q, DNSW_NOERROR, 0, DNSW_EDNS_SIZE) < 0)
		return 0;
	dnsw_answer_add(&b, DNSW_AN, NULL, 13 /* HINFO */, 3600, hinfo, sizeof(hinfo) - 1);
	return dnsw_answer_finish(&b);
}

/* ---- learning destinations ---- */

static uint64_t wall_s(void)
{
	return (uint64_t)time(NULL);
}

static uint32_t lhash(const char *set, uint8_t family, const uint8_t *addr)
{
	uint32_t h = 2166136261u;

	for (; *set; set++)
		h = (h ^ (uint8_t)*set) * 16777619u;
	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++)
		h = (h ^ addr[i]) * 16777619u;
	return h;
}

static bool lsame(const struct dns_learned *e, const char *set, uint8_t family, const uint8_t *addr)
{
	return e->family == family && !memcmp(e->addr, addr, family == AF_INET ? 4 : 16) &&
	       !strcmp(e->set, set);
}

static bool lrehash(struct dns_ltab *t, size_t nslots)
{
	uint32_t *slot = calloc(nslots, sizeof(*slot));

	if (!slot)
		return false;
	free(t->slot);
	t->slot = slot;
	t->nslots = nslots;
	for (size_t i = 0; i < t->n; i++) {
		size_t k = lhash(t->v[i].set, t->v[i].family, t->v[i].addr) & (nslots - 1);

		while (slot[k])
			k = (k + 1) & (nslots - 1);
		slot[k] = (uint32_t)i + 1;
	}
	return true;
}

/* The entry for (set, addr), made if absent; NULL without memory. */
static struct dns_learned *ltab_get(struct dns_ltab *t, const char *set, uint8_t family,
				const uint8_t *addr)
{
	size_t k;

	if ((t->n + 1) * 2 > t->nslots && !lrehash(t, t->nslots ? t->nslots * 2 : 1024))
		return NULL;
	for (k = lhash(set, family, addr) & (t->nslots - 1); t->slot[k]; k = (k + 1) & (t->nslots - 1))
		if (lsame(&t->v[t->slot[k] - 1], set, family, addr))
			return &t->v[t->slot[k] - 1];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct dns_learned *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	t->slot[k] = (uint32_t)t->n + 1;
	memset(&t->v[t->n], 0, sizeof(t->v[0]));
	snprintf(t->v[t->n].set, sizeof(t->v[0].set), "%s", set);
	t->v[t->n].family = family;
	memcpy(t->v[t->n].addr, addr, family == AF_INET ? 4 : 16);
	return &t->v[t->n++];
}

static struct dns_learned *ltab_find(struct dns_ltab *t, const char *set, uint8_t family,
				 const uint8_t *addr)
{
	if (!t->nslots)
		return NULL;
	for (size_t k = lhash(set, family, addr) & (t->nslots - 1); t->slot[k]; k = (k + 1) & (t->nslots - 1))
		if (lsame(&t->v[t->slot[k] - 1], set, family, addr))
			return &t->v[t->slot[k] - 1];
	return NULL;
}

void dns_learned_prune(struct xb_dnssvc *s)
{
	struct dns_ltab *t = &s->learned;
	uint64_t now = wall_s();
	size_t j = 0;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].expires > now)
			t->v[j++] = t->v[i];
	if (j != t->n) {
		t->n = j;
		t->dirty = true;
		lrehash(t, t->nslots ? t->nslots : 1024);
	}
}

void dns_learned_free(struct dns_ltab *t)
{
	free(t->v);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static void put_hist(struct xb_dnssvc *s, uint64_t t0)
{
	uint64_t us = (clock_mono_ns() - t0) / 1000;
	unsigned b = 0;

	while (b + 1 < 24 && (us >> (b + 1)))
		b++;
	s->c.put_hist[b]++;
}

/* Put one address into an access rule's set for ttl (capped at ttl_max)
 * plus grace. */
static void put_one(struct xb_dnssvc *s, const struct dns_acc *acc, const char *set,
		    const struct dnsw_addr *a, uint32_t ttl)
{
	const struct xb_dns *d = &s->cfg->p->dns;
	struct xb_nftset_elem e = { .family = a->family == 4 ? AF_INET : AF_INET6 };
	uint64_t secs = (uint64_t)(ttl < d->ttl_max ? ttl : d->ttl_max) + d->grace, now = wall_s();
	struct dns_learned *l;
	uint64_t t0;
	int err;

	if (!secs)
		secs = 1;
	memcpy(e.addr, a->addr, a->family == 4 ? 4 : 16);
	e.timeout_ms = secs * 1000;
	l = ltab_find(&s->learned, set, (uint8_t)e.family, e.addr);
	if (l && l->fp != acc->fp)
		l->expires = 0;		/* learned for another rule of that name */
	/* Already there for at least half the new timeout: the kernel's entry
	 * is fresh enough, and a busy name costs no netlink round trip. */
	if (l && l->expires >= now + secs / 2 + 1)
		return;
	s->c.set_puts++;
	t0 = clock_mono_ns();
	err = s->nft_ok ? xb_nftset_put(&s->nft, set, &e, 1) : -EBADF;
	put_hist(s, t0);
	if (err < 0) {
		s->c.set_failures++;
		if (l)
			l->expires = 0;	/* not known to be there: try again next time */
		return;
	}
	/* A kernel that cannot refresh (Linux < 6.3) keeps an element's first
	 * timeout: then only an absent (expired) element's expiry moves. */
	if (l && l->expires > now && !xb_nftset_refreshes())
		return;
	if ((l = l ? l : ltab_get(&s->learned, set, (uint8_t)e.family, e.addr))) {
		l->expires = now + secs;
		l->fp = acc->fp;
		s->learned.dirty = true;
	}
}

/* Every address the answer holds for name goes into the sets of every
 * access rule whose domains match name or the name the chain ends at. */
static void learn(struct xb_dnssvc *s, const char *name, const struct dnsw_msg *m)
{
	struct dnsw_addr addr[DNS_ADDRS_MAX];
	struct dnsw_chain ch;
	char end[DNSW_TEXT_MAX];
	const struct xb_dnssvc_cfg *c = s->cfg;

	if (!c->n_acc || dnsw_chain(m, &ch, addr, DNS_ADDRS_MAX) < 0 || !ch.naddr)
		return;
	if (dnsw_name_to_text(ch.name, end, sizeof(end), true) < 0)
		end[0] = '\0';
	for (size_t i = 0; i < c->n_acc; i++) {
		const struct dns_acc *a = &c->acc[i];

		if (!acc_matches(a, name) && !(end[0] && acc_matches(a, end)))
			continue;
		for (size_t k = 0; k < ch.naddr; k++) {
			if (addr[k].family == 4 && a->has4)
				put_one(s, a, a->set4, &addr[k], addr[k].ttl);
			else if (addr[k].family == 6 && a->has6)
				put_one(s, a, a->set6, &addr[k], addr[k].ttl);
		}
	}
}

/* The access rule owning set, if the policy still has it with the same
 * domains (fp). */
static const struct dns_acc *acc_of(const struct xb_dnssvc_cfg *c, const char *set, uint32_t fp)
{
	for (size_t i = 0; i < c->n_acc; i++)
		if (c->acc[i].fp == fp && ((c->acc[i].has4 && !strcmp(c->acc[i].set4, set)) ||
					   (c->acc[i].has6 && !strcmp(c->acc[i].set6, set))))
			return &c->acc[i];
	return NULL;
}

/* Learned destinations back into the sets of the table now loaded, one
 * netlink batch per set and up to 256 elements. Entries whose rule is gone
 * or whose domains changed are dropped. */
void xb_dnssvc_refill(struct xb_dnssvc *s)
{
	struct xb_nftset_elem batch[256];
	uint64_t now = wall_s();
	size_t put = 0, dropped = 0, failed = 0;

	if (!s->cfg || !s->nft_ok)
		return;
	for (size_t i = 0; i < s->learned.n; i++)
		if (s->learned.v[i].expires > now && !acc_of(s->cfg, s->learned.v[i].set, s->learned.v[i].fp)) {
			s->learned.v[i].expires = 0;
			dropped++;
		}
	dns_learned_prune(s);
	/* Group by set: each pass takes the first unsent entry's set. */
	bool *sent = calloc(s->learned.n + 1, sizeof(*sent));
	for (size_t i = 0; sent && i < s->learned.n; i++) {
		const char *set = s->learned.v[i].set;
		size_t n = 0;

		if (sent[i])
			continue;
		for (size_t k = i; k < s->learned.n; k++) {
			const struct dns_learned *l = &s->learned.v[k];

			if (sent[k] || strcmp(l->set, set))
				continue;
			sent[k] = true;
			batch[n] = (struct xb_nftset_elem){ .family = l->family,
							    .timeout_ms = (l->expires - now) * 1000 };
			memcpy(batch[n].addr, l->addr, 16);
			if (++n == 256) {
				failed += xb_nftset_put(&s->nft, set, batch, n) < 0 ? n : 0;
				put += n;
				n = 0;
			}
		}
		if (n) {
			failed += xb_nftset_put(&s->nft, set, batch, n) < 0 ? n : 0;
			put += n;
		}
	}
	free(sent);
	if (put || dropped)
		log_info("dns: %zu learned destinations put back into the sets (%zu failed), %zu dropped "
			 "(their rule is gone or its domains changed)", put - failed, failed, dropped);
}

/* "SET ADDRESS EXPIRES FINGERPRINT" lines; replaced atomically. */
void dns_learned_save(struct xb_dnssvc *s)
{
	char tmp[4096], a[INET6_ADDRSTRLEN];
	FILE *f;

	if (!s->state_file || !s->learned.dirty)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->state_file);
	if (!(f = fopen(tmp, "w"))) {
		log_warn("dns: %s", tmp);
		return;
	}
	for (size_t i = 0; i < s->learned.n; i++) {
		const struct dns_learned *l = &s->learned.v[i];

		inet_ntop(l->family, l->addr, a, sizeof(a));
		fprintf(f, "%s %s %llu %08x\n", l->set, a, (unsigned long long)l->expires, l->fp);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, s->state_file)) {
		log_warn("dns: saving %s", s->state_file);
		unlink(tmp);
		return;
	}
	s->learned.dirty = false;
}

/* Only our DNS sets, with an address of the set's family. */
static bool learned_line_ok(const char *set, int fam)
{
	size_t n = strlen(set);

	return n > 7 && !strncmp(set, "r_", 2) &&
	       !strcmp(set + n - 5, fam == AF_INET ? "_dns4" : "_dns6");
}

void dns_learned_load(struct xb_dnssvc *s)
{
	char line[256], set[XB_SET_NAME_MAX], a[INET6_ADDRSTRLEN];	/* %70s: XB_SET_NAME_MAX - 1 */
	unsigned long long exp;
	unsigned fp;
	uint64_t now = wall_s();
	unsigned lineno = 0, bad = 0;
	FILE *f;

	if (!s->state_file || !(f = fopen(s->state_file, "r")))
		return;
	while (fgets(line, sizeof(line), f) && lineno++ < 10000000) {
		struct dns_learned *l;
		uint8_t addr[16] = { 0 };
		int fam;

		if (sscanf(line, "%70s %45s %llu %8x", set, a, &exp, &fp) != 4) {
			bad++;
			continue;
		}
		fam = strchr(a, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, a, addr) != 1 || !learned_line_ok(set, fam)) {
			bad++;
			continue;
		}
		if (exp <= now)
			continue;
		/* Never longer than the longest TTL the policy allows. */
		if (s->cfg && exp > now + s->cfg->p->dns.ttl_max + s->cfg->p->dns.grace)
			exp = now + s->cfg->p->dns.ttl_max + s->cfg->p->dns.grace;
		if ((l = ltab_get(&s->learned, set, (uint8_t)fam, addr))) {
			l->expires = exp;
			l->fp = fp;
		}
	}
	fclose(f);
	if (bad)
		log_warnx("dns: %s: %u malformed lines ignored", s->state_file, bad);
	log_info("dns: %zu learned destinations restored from %s", s->learned.n, s->state_file);
}

/* ---- deciding ---- */

static const struct xb_dns_rule *rule_of(const struct xb_dnssvc *s, const struct dns_query *qq)
{
	return qq->rule == DNS_NO_RULE ? NULL : &s->cfg->p->dns.rules[qq->rule];
}

static size_t override_answer(struct xb_dnssvc *s, struct dns_query *qq, uint8_t *out, size_t cap)
{
	const struct xb_dns_rule *r = rule_of(s, qq);
	struct dnsw_builder b;
	struct dnsw_msg m;
	size_t len;

	if (dnsw_answer_begin(&b, out, cap, &qq->q, DNSW_NOERROR, DNSW_F_AA, DNSW_EDNS_SIZE) < 0)
		return 0;
	add_addrs(&b, &qq->q, NULL, r->ttl, r->a, r->n_a, r->aaaa, r->n_aaaa);
	len = dnsw_answer_finish(&b);
	/* Overrides teach the sets too: parse what we built, if any access
	 * rule wants the name. */
	if (any_acc(s->cfg, qq->q.text) &&
	    dnsw_parse_response(&m, out, len, qq->q.hdr.id, &qq->q.q) == DNSW_R_OK)
		learn(s, qq->q.text, &m);
	return len;
}

/* The target's question for an override with cname. */
static bool chase_setup(struct xb_dnssvc *s, struct dns_query *qq)
{
	const struct xb_dns_rule *r = rule_of(s, qq);

	qq->qc = qq->q;
	if (dnsw_name_from_text(r->cname, qq->qc.q.name) < 0)
		return false;
	qq->qc.q.name_len = (uint16_t)dnsw_name_len(qq->qc.q.name, DNSW_NAME_MAX);
	snprintf(qq->qc.text, sizeof(qq->qc.text), "%s", r->cname);
	qq->chase = true;
	qq->cname_ttl = r->ttl;
	return true;
}

/* The rule for the name being resolved: the target's when chasing. */
static size_t match_rule(const struct xb_dnssvc *s, const char *text)
{
	const struct xb_dns_entry *e = xb_dns_match_lookup(s->cfg->names, text, strlen(text));

	return e ? e->value : DNS_NO_RULE;
}

enum dns_verdict dns_decide(struct xb_dnssvc *s, struct dns_query *qq, uint8_t *out, size_t cap,
			    size_t *len)
{
	const struct xb_dns *d = &s->cfg->p->dns;
	const struct xb_dns_rule *r;

	qq->rule = match_rule(s, qq->q.text);
	r = rule_of(s, qq);
	qq->action = r ? action_names[r->action] : "forward";
	s->cfg->stats[r ? qq->rule : d->n_rules].queries++;
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
	if (r && r->action == XB_DNS_TUNNEL && !admitted(s, qq->chase ? qq->qc.text : qq->q.text, qq->device)) {
		s->cfg->stats[qq->rule].denied++;
		qq->action = "deny";
		*len = block_answer(r, &qq->q, out, cap);
		return DNS_ANSWERED;
	}
	if (qq->q.q.qtype == DNSW_T_ANY) {
		*len = any_answer(&qq->q, out, cap);
		return DNS_ANSWERED;
	}
	qq->set = &s->cfg->sets[r ? qq->rule : d->n_rules];
	if (!qq->set->n) {
		*len = local_rcode(&qq->q, DNSW_REFUSED, out, cap);	/* nowhere to ask */
		return DNS_ANSWERED;
	}
	/* Answers fetched with DO (signatures) and without are kept apart. */
	qq->scope = (r ? (uint32_t)qq->rule + 1 : 0) * 2 + (qq->q.edns.present && qq->q.edns.do_bit);
	return DNS_ASK;
}

/* Copy the upstream answer section (re-encoded: names in rdata may point
 * into the upstream message) after our CNAME. */
static size_t chased_answer(struct xb_dnssvc *s, struct dns_query *qq, const struct dnsw_msg *m,
			    uint8_t *out, size_t cap)
{
	const struct xb_dns_rule *r = rule_of(s, qq);
	struct dnsw_builder b;
	struct dnsw_iter it;
	struct dnsw_rr rr;
	uint8_t target[DNSW_NAME_MAX];
	unsigned rcode = m ? m->rcode : DNSW_NOERROR;

	if (dnsw_answer_begin(&b, out, cap, &qq->q, rcode, 0, DNSW_EDNS_SIZE) < 0)
		return 0;
	dnsw_answer_cname(&b, NULL, qq->cname_ttl, qq->qc.q.name);
	if (!m) {	/* the target is a local override */
		add_addrs(&b, &qq->q, qq->qc.q.name, r->ttl, r->a, r->n_a, r->aaaa, r->n_aaaa);
		return dnsw_answer_finish(&b);
	}
	dnsw_iter_init(&it, m, DNSW_AN);
	while (dnsw_iter_next(&it, &rr)) {
		/* Only class IN rdata is validated (an A of another class may
		 * hold any number of octets); ours is an IN answer. */
		if (rr.rclass != DNSW_C_IN)
			continue;
		if (rr.type == DNSW_T_CNAME && dnsw_rr_name(m, &rr, 0, target) >= 0)
			dnsw_answer_cname(&b, rr.owner, rr.ttl, target);
		else if (rr.type == DNSW_T_A || rr.type == DNSW_T_AAAA)
			dnsw_answer_add(&b, DNSW_AN, rr.owner, rr.type, rr.ttl, rr.rdata, rr.rdlen);
	}
	return dnsw_answer_finish(&b);
}

/* RFC 6891 7: no OPT in the answer to a query without one. The upstream's
 * OPT (we always ask with EDNS) is in its additional section, not always
 * last: cut out[0..m->len) where the OPT starts — the records after it go
 * too, and the prefix keeps every compression pointer inside — and return
 * the new length. */
static size_t strip_opt(const struct dnsw_msg *m, uint8_t *out)
{
	struct dnsw_iter it;
	struct dnsw_rr rr;
	size_t start = m->sec_off[DNSW_AR];
	uint16_t kept = 0;

	if (!m->edns.present)
		return m->len;
	dnsw_iter_init(&it, m, DNSW_AR);
	while (dnsw_iter_next(&it, &rr)) {
		if (rr.type == DNSW_T_OPT) {
			out[10] = (uint8_t)(kept >> 8);
			out[11] = (uint8_t)kept;
			return start;
		}
		start = rr.rdata_off + rr.rdlen;
		kept++;
	}
	return m->len;
}

size_t dns_answer_from(struct xb_dnssvc *s, struct dns_query *qq, const struct dnsw_msg *m,
		       uint8_t *out, size_t cap)
{
	size_t len;

	if (qq->chase) {
		struct dnsw_msg mine;

		len = chased_answer(s, qq, m, out, cap);
		if (len && dnsw_parse_response(&mine, out, len, qq->q.hdr.id, &qq->q.q) == DNSW_R_OK)
			learn(s, qq->q.text, &mine);
		return len;
	}
	learn(s, qq->q.text, m);
	if (m->len > cap)
		return 0;
	memcpy(out, m->msg, m->len);
	dnsw_set_id(out, m->len, qq->q.hdr.id);
	return qq->q.edns.present ? m->len : strip_opt(m, out);
}

size_t dns_from_cache(struct xb_dnssvc *s, struct dns_query *qq, uint8_t *out, size_t cap)
{
	const struct dnsw_query *ask = qq->chase ? &qq->qc : &qq->q;
	uint8_t buf[XB_DNSC_MSG_MAX];
	struct dnsw_msg m;
	uint32_t left;
	size_t n;

	if (!s->cache)
		return 0;
	n = xb_dnsc_lookup(s->cache, qq->scope, &ask->q, ask->hdr.id, s->now_ns, buf,
			   sizeof(buf), &left);
	if (!n || dnsw_parse_response(&m, buf, n, ask->hdr.id, &ask->q) != DNSW_R_OK)
		return 0;
	qq->cached = true;
	return dns_answer_from(s, qq, &m, out, cap);
}

void dns_stats_done(struct xb_dnssvc *s, const struct dns_query *qq, bool ok)
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

void dns_log(struct xb_dnssvc *s, const struct dns_query *qq, const uint8_t *ans, size_t len)
{
	const struct xb_policy *p = s->cfg->p;
	const struct xb_dns_rule *r = rule_of(s, qq);
	json_t *o, *addrs;
	struct dnsw_addr a[DNS_ADDRS_MAX];
	struct dnsw_chain ch = { 0 };
	struct dnsw_msg m;
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
	if (len && dnsw_parse_response(&m, ans, len, qq->q.hdr.id, &qq->q.q) == DNSW_R_OK &&
	    dnsw_chain(&m, &ch, a, DNS_ADDRS_MAX) == 0)
		for (size_t i = 0; i < ch.naddr; i++) {
			inet_ntop(a[i].family == 4 ? AF_INET : AF_INET6, a[i].addr, text, sizeof(text));
			json_array_append_new(addrs, json_string(text));
		}
	o = json_pack("{s:s, s:s, s:s, s:i, s:s?, s:s, s:s, s:o, s:f, s:b}",
		      "time", ts, "device", p->devices[qq->device].name, "name", qq->q.text,
		      "type", qq->q.q.qtype, "rule", r ? r->name : NULL, "action", qq->action,
		      "rcode", len >= DNSW_HDR_LEN ? rcode_name(ans[3] & 0xf) : "SERVFAIL",
		      "answer", addrs, "latency_ms",
		      (double)(clock_mono_ns() - qq->t0_ns) / 1e6, "cached", qq->cached);
	if (o)
		xb_jsonlog_write(s->log, o);
	json_decref(o);
}
