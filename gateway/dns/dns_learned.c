/* What answers teach the sets, after the filter (learn() in dns_engine.c):
 * the round's queued changes applied per set, the table of learned
 * destinations with its cap, the refill after a reload, the state file,
 * and the gateway's own addresses the filter refuses. See dns_learn.h for
 * the table and docs/dns.md, docs/security.md for the rules.
 */
#include "gateway/dns/dns_internal.h"

#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The table's expiries are CLOCK_MONOTONIC seconds, like the kernel's
 * timeouts (relative): a step of the wall clock moves neither. Only the
 * state file, which outlives a reboot, holds wall-clock times. */
static uint64_t mono_s(void)
{
	return clock_mono_ns() / 1000000000ull;
}

/* What lingers expired in the table (dns_learn.h) goes now. */
static uint64_t linger_end(void)
{
	uint64_t now = mono_s();

	return now > XB_DNS_LEARN_LINGER ? now - XB_DNS_LEARN_LINGER : 0;
}

size_t dns_learn_cap(const struct xb_dns *d)
{
	return d->learn_max ? d->learn_max : 65536;
}

static int own_addr(struct xb_dns_learn_own *o, int family, const void *addr, unsigned cidr)
{
	struct xb_prefix p = { .family = (sa_family_t)family, .cidr = (uint8_t)cidr };

	memcpy(p.addr, addr, family == AF_INET ? 4 : 16);
	return xb_dns_learn_own_add(o, &p);
}

static int own_tunnel(struct xb_dns_learn_own *o, const struct xb_tunnel *t)
{
	struct in6_addr ep;
	int rc = 0;

	if (t->has_address4)
		rc |= xb_dns_learn_own_add(o, &t->address4);
	if (t->has_address6)
		rc |= xb_dns_learn_own_add(o, &t->address6);
	if (t->has_peer4)
		rc |= own_addr(o, AF_INET, &t->peer4, 32);
	if (t->has_peer6)
		rc |= own_addr(o, AF_INET6, &t->peer6, 128);
	if (t->type == XB_TUNNEL_GRE) {
		rc |= own_addr(o, t->gre.family, &t->gre.local, t->gre.family == AF_INET ? 32 : 128);
		if (!t->gre.remote_is_name)
			rc |= own_addr(o, t->gre.family, &t->gre.remote_addr,
				       t->gre.family == AF_INET ? 32 : 128);
	} else if (t->endpoint_host && !t->endpoint_is_name) {
		if (inet_pton(AF_INET, t->endpoint_host, &ep) == 1)
			rc |= own_addr(o, AF_INET, &ep, 32);
		else if (inet_pton(AF_INET6, t->endpoint_host, &ep) == 1)
			rc |= own_addr(o, AF_INET6, &ep, 128);
	}
	return rc;
}

static int own_servers(struct xb_dns_learn_own *o, const union xb_sockaddr *v, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (v[i].sa.sa_family == AF_INET)
			rc |= own_addr(o, AF_INET, &v[i].in.sin_addr, 32);
		else if (v[i].sa.sa_family == AF_INET6)
			rc |= own_addr(o, AF_INET6, &v[i].in6.sin6_addr, 128);
	return rc;
}

/* What the gateway itself is, as far as the policy says: the device pools
 * (the gateway's address is in them), each tunnel's inner prefix, partner
 * address and literal outer addresses (ours for GRE, the partner's), and
 * the DNS servers it asks (the section's upstreams, each rule's servers).
 * A name resolving to one of them would steer the gateway's own traffic or
 * its devices' into a tunnel. Names (endpoints resolved at run time) are
 * not known here. */
int dns_own_addrs(struct xb_dns_learn_own *o, const struct xb_policy *p)
{
	int rc = 0;

	if (p->gateway.has_pool4)
		rc |= xb_dns_learn_own_add(o, &p->gateway.pool4);
	if (p->gateway.has_pool6)
		rc |= xb_dns_learn_own_add(o, &p->gateway.pool6);
	for (size_t i = 0; i < p->n_tunnels; i++)
		rc |= own_tunnel(o, &p->tunnels[i]);
	rc |= own_servers(o, p->dns.upstreams, p->dns.n_upstreams);
	for (size_t i = 0; i < p->dns.n_rules; i++)
		rc |= own_servers(o, p->dns.rules[i].servers, p->dns.rules[i].n_servers);
	return rc;
}

static void put_hist(struct xb_dns_service *s, uint64_t t0)
{
	uint64_t us = (clock_mono_ns() - t0) / 1000;
	unsigned b = 0;

	while (b + 1 < 24 && (us >> (b + 1)))
		b++;
	s->c.put_hist[b]++;
}

/* One set's changes on their way to the kernel (s->batch: about 20 KiB,
 * made at the first flush). */
struct dns_learn_batch {
	const char *set;
	int sid;
	uint64_t now;
	size_t n_put, n_del;
	struct xb_nft_set_elem put[XB_NFT_SET_OPS], del[XB_NFT_SET_OPS];
	/* Each put's entry's expiry before this round, 0 for a new entry:
	 * what the table goes back to when the put fails. */
	uint64_t prev[XB_NFT_SET_OPS];
};

/* Evictions first (they make the room), then the puts: one transaction
 * each. A put that failed changed nothing in the kernel: its new entries
 * are left expired in the table (the next answer tries again), refreshed
 * ones get back the expiry the kernel still has for them. */
static void send_batch(struct xb_dns_service *s, struct dns_learn_batch *b)
{
	uint64_t t0 = clock_mono_ns();
	int err;

	if (b->n_del && xb_nft_set_remove(&s->nft, b->set, b->del, b->n_del) < 0)
		s->c.set_failures += b->n_del;
	if (b->n_put) {
		err = s->nft_ok ? xb_nft_set_put(&s->nft, b->set, b->put, b->n_put) : -EBADF;
		put_hist(s, t0);
		for (size_t i = 0; err < 0 && i < b->n_put; i++) {
			struct xb_dns_learn_entry *l = xb_dns_learn_find(&s->learned, b->sid, b->put[i].family,
								 b->put[i].addr);

			s->c.set_failures++;
			if (l)
				xb_dns_learn_update(&s->learned, l, b->prev[i]);
		}
	}
	b->n_put = b->n_del = 0;
}

/* The batch's puts of addr are not sent: there may be two, a new entry's
 * and its refresh by a later answer of the same round. */
static void put_drop(struct dns_learn_batch *b, int family, const uint8_t *addr)
{
	size_t len = family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < b->n_put;)
		if (b->put[i].family == family && !memcmp(b->put[i].addr, addr, len)) {
			b->n_put--;
			b->put[i] = b->put[b->n_put];
			b->prev[i] = b->prev[b->n_put];
		} else {
			i++;
		}
}

/* An entry evicted to make room: out of the kernel's set too. A put of it
 * queued in this batch is dropped, and the delete is queued all the same:
 * the put may have been a refresh of an element the kernel already holds
 * (or an earlier batch of the round sent it). Deleting an absent element
 * is no error (xb_nft_set_remove), and deletes go before puts. */
static void evicted(struct dns_learn_batch *b, const struct xb_dns_learn_entry *ev)
{
	size_t len = ev->family == AF_INET ? 4 : 16;

	put_drop(b, ev->family, ev->addr);
	b->del[b->n_del] = (struct xb_nft_set_elem){ .family = ev->family };
	memcpy(b->del[b->n_del++].addr, ev->addr, len);
}

/* Tell the cluster (xb_dns_service_on_learn) of an entry now in the table
 * until secs from now. */
static void told(struct xb_dns_service *s, const struct dns_learn_batch *b, const struct dns_pend *p,
		 uint32_t fp, uint64_t secs)
{
	if (s->on_learn && !s->remote)
		s->on_learn(s->on_learn_ctx, b->set, p->family, p->addr, fp,
			    (int64_t)time(NULL) + (int64_t)secs);
}

/* Put p into the batch for ttl (capped at ttl_max) plus grace, unless the
 * kernel's entry is fresh enough (there for at least half the new
 * timeout: a busy name costs no netlink round trip). */
static void put_one(struct xb_dns_service *s, struct dns_learn_batch *b, const struct dns_pend *p)
{
	const struct xb_dns *d = &s->cfg->p->dns;
	struct dns_acc *a = &s->cfg->acc[p->acc];
	uint64_t secs = (uint64_t)(p->ttl < d->ttl_max ? p->ttl : d->ttl_max) + d->grace;
	struct xb_dns_learn_entry *l, ev = { .family = 0 };
	struct xb_nft_set_elem *e;
	uint64_t prev;

	if (!secs)
		secs = 1;
	l = xb_dns_learn_find(&s->learned, b->sid, p->family, p->addr);
	prev = l ? l->expires : 0;
	if (l && l->fp != a->fp) {	/* learned for another rule of that name */
		l->fp = a->fp;
		xb_dns_learn_update(&s->learned, l, 0);
	}
	if (l && l->expires >= b->now + secs / 2 + 1)
		return;
	if (b->n_put == XB_NFT_SET_OPS || b->n_del == XB_NFT_SET_OPS)
		send_batch(s, b);
	s->c.set_puts++;
	b->prev[b->n_put] = prev;
	e = &b->put[b->n_put++];
	*e = (struct xb_nft_set_elem){ .family = p->family, .timeout_ms = secs * 1000 };
	memcpy(e->addr, p->addr, p->family == AF_INET ? 4 : 16);
	/* A kernel that cannot refresh (Linux < 6.3) keeps an element's first
	 * timeout: then only an absent (expired) element's expiry moves. */
	if (l) {
		if (l->expires <= b->now || xb_nft_set_refreshes()) {
			xb_dns_learn_update(&s->learned, l, b->now + secs);
			told(s, b, p, a->fp, secs);
		}
		return;
	}
	/* Only what the table holds goes to the kernel: its set is never
	 * fuller than the table (dns_learn.h). */
	l = xb_dns_learn_add(&s->learned, b->sid, p->family, p->addr, b->now + secs, a->fp,
			dns_learn_cap(d), b->now, &ev);
	/* What was evicted is gone from the table even when the add then
	 * failed: it leaves the kernel's set either way. */
	if (ev.family) {
		a->refused.evicted++;
		evicted(b, &ev);
	}
	if (l)
		told(s, b, p, a->fp, secs);
	if (!l) {
		put_drop(b, p->family, p->addr);
		s->c.set_puts--;
		if (errno == ENOSPC)
			a->refused.full++;
		else
			s->c.set_failures++;
	}
}

void dns_learn_flush(struct xb_dns_service *s)
{
	struct dns_learn_batch *b = s->batch;

	if (!s->n_pend)
		return;
	if (!b && !(b = s->batch = calloc(1, sizeof(*b)))) {
		s->c.set_failures += s->n_pend;	/* learned nothing: not in the table either */
		s->n_pend = 0;
		return;
	}
	for (size_t i = 0; i < s->n_pend; i++)
		s->pend[i].done = false;
	b->n_put = b->n_del = 0;
	b->now = mono_s();
	for (size_t i = 0; i < s->n_pend; i++) {
		const struct dns_pend *p = &s->pend[i];
		const struct dns_acc *a = &s->cfg->acc[p->acc];

		if (p->done)
			continue;
		b->set = p->family == AF_INET ? a->set4 : a->set6;
		if ((b->sid = xb_dns_learn_set_id(&s->learned, b->set)) < 0)
			break;
		for (size_t k = i; k < s->n_pend; k++)
			if (!s->pend[k].done && s->pend[k].acc == p->acc && s->pend[k].family == p->family) {
				s->pend[k].done = true;
				put_one(s, b, &s->pend[k]);
			}
		send_batch(s, b);
	}
	s->n_pend = 0;
}

/* The kernel collects expired elements a little later (dns_learn.h). */
void dns_learned_prune(struct xb_dns_service *s)
{
	xb_dns_learn_expire(&s->learned, linger_end());
}

/* The access rule owning set, if the policy still has it with the same
 * domains (fp). */
static const struct dns_acc *acc_of(const struct xb_dns_service_cfg *c, const char *set, uint32_t fp)
{
	for (size_t i = 0; i < c->n_acc; i++)
		if (c->acc[i].fp == fp && ((c->acc[i].has4 && !strcmp(c->acc[i].set4, set)) ||
					   (c->acc[i].has6 && !strcmp(c->acc[i].set6, set))))
			return &c->acc[i];
	return NULL;
}

/* Set k's entries whose rule is gone or whose domains changed, or that the
 * new policy refuses (its own addresses, learn_private). The rule is
 * looked up once per fingerprint met (a set's entries nearly always share
 * one), not once per entry: a refill costs O(entries + sets x rules). */
static size_t drop_set(struct xb_dns_service *s, size_t k, uint32_t *idx)
{
	struct xb_dns_learn *t = &s->learned;
	const struct dns_acc *a = NULL;
	size_t n = t->sets[k].n, dropped = 0;
	uint32_t fp = 0;
	bool known = false;

	/* A copy: deleting reorders the heap. */
	memcpy(idx, t->sets[k].heap, n * sizeof(*idx));
	for (size_t i = 0; i < n; i++) {
		struct xb_dns_learn_entry *e = &t->v[idx[i]];

		if (!known || e->fp != fp) {
			fp = e->fp;
			a = acc_of(s->cfg, t->sets[k].name, fp);
			known = true;
		}
		if (!a || xb_dns_learn_own_has(&s->cfg->own, e->family, e->addr) ||
		    (!a->learn_private && xb_dns_learn_classify(e->family, e->addr) == XB_DNS_LEARN_PRIVATE)) {
			xb_dns_learn_del(t, e);
			dropped++;
		}
	}
	return dropped;
}

/* What the new policy no longer wants (drop_set), what expired, and what
 * a lowered cap no longer holds (counted as evictions). Returns how many
 * went. */
static size_t refill_drop(struct xb_dns_service *s)
{
	struct xb_dns_learn *t = &s->learned;
	size_t dropped = 0, most = 0;
	uint32_t *idx;

	for (size_t k = 0; k < t->n_sets; k++)
		most = t->sets[k].n > most ? t->sets[k].n : most;
	if (most && !(idx = malloc(most * sizeof(*idx)))) {
		log_warnx("dns: no memory to check the learned destinations against the policy: "
			  "all %zu forgotten", xb_dns_learn_total(t));
		dropped = xb_dns_learn_total(t);
		xb_dns_learn_free(t);
		return dropped;
	}
	for (size_t k = 0; most && k < t->n_sets; k++)
		dropped += drop_set(s, k, idx);
	if (most)
		free(idx);
	xb_dns_learn_expire(t, mono_s());
	for (size_t k = 0; k < t->n_sets; k++) {
		size_t n = xb_dns_learn_trim(t, (int)k, dns_learn_cap(&s->cfg->p->dns));

		dropped += n;
		for (size_t i = 0; n && i < s->cfg->n_acc; i++) {
			struct dns_acc *a = &s->cfg->acc[i];

			if ((a->has4 && !strcmp(a->set4, t->sets[k].name)) ||
			    (a->has6 && !strcmp(a->set6, t->sets[k].name))) {
				a->refused.evicted += n;
				break;
			}
		}
	}
	return dropped;
}

/* Learned destinations back into the sets of the table now loaded, one
 * netlink batch per set and up to 256 elements; each set's entries are
 * its heap, so this is O(entries). */
void xb_dns_service_refill(struct xb_dns_service *s)
{
	struct xb_nft_set_elem batch[256];
	struct xb_dns_learn *t = &s->learned;
	uint64_t now = mono_s();
	size_t put = 0, dropped, failed = 0;

	if (!s->cfg || !s->nft_ok)
		return;
	dns_learn_flush(s);
	dropped = refill_drop(s);
	for (size_t k = 0; k < t->n_sets; k++) {
		size_t n = 0;

		for (size_t i = 0; i < t->sets[k].n; i++) {
			const struct xb_dns_learn_entry *l = &t->v[t->sets[k].heap[i]];

			batch[n] = (struct xb_nft_set_elem){ .family = l->family,
							    .timeout_ms = (l->expires - now) * 1000 };
			memcpy(batch[n++].addr, l->addr, 16);
			if (n == 256 || i + 1 == t->sets[k].n) {
				failed += xb_nft_set_put(&s->nft, t->sets[k].name, batch, n) < 0 ? n : 0;
				put += n;
				n = 0;
			}
		}
	}
	if (put || dropped)
		log_info("dns: %zu learned destinations put back into the sets (%zu failed), %zu dropped "
			 "(their rule is gone or changed, or over learn_max)", put - failed,
			 failed, dropped);
}

/* "SET ADDRESS EXPIRES FINGERPRINT" lines, EXPIRES in wall-clock
 * seconds; replaced atomically. */
void dns_learned_save(struct xb_dns_service *s)
{
	char tmp[4096], a[INET6_ADDRSTRLEN];
	uint64_t now = mono_s(), wall = (uint64_t)time(NULL);
	FILE *f;

	if (!s->state_file || !s->learned.dirty)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->state_file);
	if (!(f = fopen(tmp, "w"))) {
		log_warn("dns: %s", tmp);
		return;
	}
	for (size_t i = 0; i < s->learned.used_top; i++) {
		const struct xb_dns_learn_entry *l = &s->learned.v[i];

		if (!l->family || l->expires <= now)
			continue;
		inet_ntop(l->family, l->addr, a, sizeof(a));
		fprintf(f, "%s %s %llu %08x\n", s->learned.sets[l->set].name, a,
			(unsigned long long)(wall + (l->expires - now)), l->fp);
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

/* The file is ours, but the addresses in it came from answers: they pass
 * the same filter (special-purpose addresses; the rest is judged against
 * the rule at refill, whose learn_private may have changed — not here). */
void dns_learned_load(struct xb_dns_service *s)
{
	char line[256], set[XB_SET_NAME_MAX], a[INET6_ADDRSTRLEN];	/* %70s: XB_SET_NAME_MAX - 1 */
	unsigned long long exp;
	unsigned fp;
	uint64_t now = mono_s(), wall = (uint64_t)time(NULL);
	unsigned lineno = 0, bad = 0;
	size_t cap = s->cfg ? dns_learn_cap(&s->cfg->p->dns) : 65536;
	FILE *f;

	if (!s->state_file || !(f = fopen(s->state_file, "r")))
		return;
	while (fgets(line, sizeof(line), f) && lineno++ < 10000000) {
		struct xb_dns_learn_entry *l;
		uint8_t addr[16] = { 0 };
		int fam, sid;

		if (sscanf(line, "%70s %45s %llu %8x", set, a, &exp, &fp) != 4) {
			bad++;
			continue;
		}
		fam = strchr(a, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, a, addr) != 1 || !learned_line_ok(set, fam) ||
		    xb_dns_learn_classify(fam, addr) == XB_DNS_LEARN_SPECIAL) {
			bad++;
			continue;
		}
		if (exp <= wall || (sid = xb_dns_learn_set_id(&s->learned, set)) < 0)
			continue;
		exp = exp - wall < UINT32_MAX ? now + (exp - wall) : now + UINT32_MAX;
		/* Never longer than the longest TTL the policy allows. */
		if (s->cfg && exp > now + s->cfg->p->dns.ttl_max + s->cfg->p->dns.grace)
			exp = now + s->cfg->p->dns.ttl_max + s->cfg->p->dns.grace;
		if ((l = xb_dns_learn_find(&s->learned, sid, fam, addr))) {
			l->fp = fp;
			xb_dns_learn_update(&s->learned, l, exp);
		} else {
			xb_dns_learn_add(&s->learned, sid, fam, addr, exp, fp, cap, now, NULL);
		}
	}
	fclose(f);
	if (bad)
		log_warnx("dns: %s: %u malformed lines ignored", s->state_file, bad);
	log_info("dns: %zu learned destinations restored from %s", xb_dns_learn_total(&s->learned),
		 s->state_file);
}

/* For `xborderctl explain': the learned entry of (set, addr), if any. The
 * table follows the kernel's set (every put and delete goes through it),
 * so asking it costs no netlink round trip. */
bool xb_dns_service_learned(struct xb_dns_service *s, const char *set, int family, const uint8_t *addr,
		       int64_t *expires_wall)
{
	const struct xb_dns_learn_entry *e = NULL;
	uint64_t now = mono_s();

	for (size_t i = 0; !e && i < s->learned.n_sets; i++)
		if (!strcmp(s->learned.sets[i].name, set))
			e = xb_dns_learn_find(&s->learned, (int)i, family, addr);
	if (!e || e->expires <= now)
		return false;
	*expires_wall = (int64_t)time(NULL) + (int64_t)(e->expires - now);
	return true;
}

void xb_dns_service_on_learn(struct xb_dns_service *s, xb_dns_service_learn_fn fn, void *ctx)
{
	s->on_learn = fn;
	s->on_learn_ctx = ctx;
}

int xb_dns_service_learn_remote(struct xb_dns_service *s, const char *set, int family,
				const uint8_t *addr, uint32_t fp, int64_t expires_wall, char *err,
				size_t errlen)
{
	const struct dns_acc *a = s->cfg ? acc_of(s->cfg, set, fp) : NULL;
	int64_t left = expires_wall - (int64_t)time(NULL);
	enum xb_dns_learn_class cls;
	struct dns_pend *p;

	if (!a || strcmp(family == AF_INET ? a->set4 : a->set6, set)) {
		snprintf(err, errlen, "no access rule here with set %s and those domains", set);
		return -ENOENT;
	}
	cls = xb_dns_learn_classify(family, addr);
	if (cls == XB_DNS_LEARN_SPECIAL || (cls == XB_DNS_LEARN_PRIVATE && !a->learn_private) ||
	    xb_dns_learn_own_has(&s->cfg->own, family, addr)) {
		snprintf(err, errlen, "refused by the filter (%s)", cls == XB_DNS_LEARN_SPECIAL ?
			 "special-purpose" : cls == XB_DNS_LEARN_PRIVATE ? "private" : "own address");
		return -EPERM;
	}
	if (left <= 0)
		return 1;
	/* As an answer's, with the time left as its TTL (put_one adds the
	 * grace back and caps it at ttl_max). */
	if (s->n_pend == DNS_PEND_MAX)
		dns_learn_flush(s);
	p = &s->pend[s->n_pend++];
	*p = (struct dns_pend){ .acc = (uint32_t)(a - s->cfg->acc), .family = (uint8_t)family };
	memcpy(p->addr, addr, family == AF_INET ? 4 : 16);
	left -= s->cfg->p->dns.grace;
	p->ttl = left > 0 ? (uint32_t)(left < UINT32_MAX ? left : UINT32_MAX) : 0;
	s->remote = true;
	dns_learn_flush(s);
	s->remote = false;
	return 0;
}
