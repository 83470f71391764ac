/* libFuzzer: the resolver's state file of learned destinations
 * (dns-learned, "SET ADDRESS EXPIRES FINGERPRINT" lines) read by
 * dns_learned_load at start-up. Checks: only our DNS sets with an address
 * of their family are taken, no special-purpose address, none expired,
 * none kept past the policy's ttl_max + grace, no set over learn_max; what
 * was taken, saved (dns_learned_save) and loaded again is the same table. */
#include "fuzz_policy.h"
#include "gateway/dns/dns_internal.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static const char conf[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
	"rules = ( { name = \"web\"; domains = [ \"*.example.com\" ]; action = \"allow\"; via = [ \"internet\" ]; } );\n"
	"dns = { upstreams = [ \"192.0.2.53\" ]; };\n";

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Only our DNS sets, an address of the set's family and not special, none
 * expired, none kept past ttl_max + grace (monotonic seconds). */
static bool entry_ok(const struct xb_dns_learn *t, const struct xb_dns_learn_entry *l, uint64_t now,
		     uint64_t longest)
{
	const char *set = t->sets[l->set].name;
	size_t n = strnlen(set, XB_DNS_LEARN_SET_MAX);

	return n < XB_DNS_LEARN_SET_MAX && n > 7 && !strncmp(set, "r_", 2) &&
	       !strcmp(set + n - 5, l->family == AF_INET ? "_dns4" : "_dns6") &&
	       (l->family == AF_INET || l->family == AF_INET6) &&
	       xb_dns_learn_classify(l->family, l->addr) != XB_DNS_LEARN_SPECIAL &&
	       l->expires + 5 > now && l->expires <= now + longest + 5;
}

/* Every entry of a is in b with the same rule fingerprint and an expiry
 * within 2 s (saving and loading go through the wall clock), unless it
 * expires within 2 s (then the save or the load may skip it). */
static bool kept(const struct xb_dns_learn *a, struct xb_dns_learn *b, uint64_t now)
{
	for (size_t i = 0; i < a->used_top; i++) {
		const struct xb_dns_learn_entry *e = &a->v[i];
		struct xb_dns_learn_entry *f;
		int sid;

		if (!e->family || e->expires <= now + 2)
			continue;
		if ((sid = xb_dns_learn_set_id(b, a->sets[e->set].name)) < 0 ||
		    !(f = xb_dns_learn_find(b, sid, e->family, e->addr)) || f->fp != e->fp ||
		    f->expires + 2 < e->expires || f->expires > e->expires + 2)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xb_dns_service_cfg *cfg;
	static char path[512];
	struct xb_dns_service s = { 0 }, s2 = { 0 };
	struct xb_errors errs = { 0 };
	uint64_t now = mono_now(), longest;
	size_t cap;
	char *text;

	if (!cfg) {
		log_init("fuzz", LOG_LVL_ERR, false);
		if (!(cfg = xb_dns_service_prepare(fuzz_policy(conf), &errs)))
			abort();
		snprintf(path, sizeof(path), "%s/dns-learned", fuzz_dir);
	}
	longest = (uint64_t)cfg->p->dns.ttl_max + cfg->p->dns.grace;
	cap = dns_learn_cap(&cfg->p->dns);
	if (!(text = malloc(size + 1)))
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_write("dns-learned", text, 0600);	/* up to the first NUL, as fgets would stop */
	free(text);
	s.cfg = s2.cfg = cfg;
	s.state_file = s2.state_file = path;
	xb_dns_learn_init(&s.learned);
	xb_dns_learn_init(&s2.learned);
	dns_learned_load(&s);
	for (size_t i = 0; i < s.learned.used_top; i++)
		if (s.learned.v[i].family)
			check(entry_ok(&s.learned, &s.learned.v[i], now, longest));
	for (size_t k = 0; k < s.learned.n_sets; k++)
		check(xb_dns_learn_count(&s.learned, (int)k) <= cap);
	s.learned.dirty = true;
	dns_learned_save(&s);
	dns_learned_load(&s2);
	check(kept(&s.learned, &s2.learned, now));
	check(xb_dns_learn_total(&s2.learned) <= xb_dns_learn_total(&s.learned));
	xb_dns_learn_free(&s.learned);
	xb_dns_learn_free(&s2.learned);
	return 0;
}
