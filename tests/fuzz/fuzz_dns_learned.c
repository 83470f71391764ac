/* libFuzzer: the resolver's state file of learned destinations
 * (dns-learned, "SET ADDRESS EXPIRES FINGERPRINT" lines) read by
 * dns_learned_load at start-up. Checks: only our DNS sets with an address
 * of their family are taken, none expired, none kept past the policy's
 * ttl_max + grace; what was taken, saved (dns_learned_save) and loaded
 * again is the same table. */
#include "fuzz_policy.h"
#include "gateway/dns_internal.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static const char conf[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
	"rules = ( { name = \"web\"; domains = [ \"*.example.com\" ]; action = \"allow\"; via = [ \"internet\" ]; } );\n"
	"dns = { upstreams = [ \"192.0.2.53\" ]; };\n";

static bool entry_ok(const struct dns_learned *l, uint64_t now, uint64_t longest)
{
	size_t n = strnlen(l->set, sizeof(l->set));

	return n < sizeof(l->set) && n > 7 && !strncmp(l->set, "r_", 2) &&
	       !strcmp(l->set + n - 5, l->family == AF_INET ? "_dns4" : "_dns6") &&
	       (l->family == AF_INET || l->family == AF_INET6) &&
	       l->expires > now - 5 && l->expires <= now + longest + 5;
}

static bool same(const struct dns_ltab *a, const struct dns_ltab *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		size_t k;

		for (k = 0; k < b->n; k++)
			if (!strcmp(a->v[i].set, b->v[k].set) && a->v[i].family == b->v[k].family &&
			    !memcmp(a->v[i].addr, b->v[k].addr, 16) && a->v[i].expires == b->v[k].expires &&
			    a->v[i].fp == b->v[k].fp)
				break;
		if (k == b->n)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xb_dnssvc_cfg *cfg;
	static char path[512];
	struct xb_dnssvc s = { 0 }, s2 = { 0 };
	struct xb_errors errs = { 0 };
	uint64_t now = (uint64_t)time(NULL), longest;
	char *text;

	if (!cfg) {
		log_init("fuzz", LOG_LVL_ERR, false);
		if (!(cfg = xb_dnssvc_prepare(fuzz_policy(conf), &errs)))
			abort();
		snprintf(path, sizeof(path), "%s/dns-learned", fuzz_dir);
	}
	longest = (uint64_t)cfg->p->dns.ttl_max + cfg->p->dns.grace;
	if (!(text = malloc(size + 1)))
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_write("dns-learned", text, 0600);	/* up to the first NUL, as fgets would stop */
	free(text);
	s.cfg = s2.cfg = cfg;
	s.state_file = s2.state_file = path;
	dns_learned_load(&s);
	for (size_t i = 0; i < s.learned.n; i++)
		check(entry_ok(&s.learned.v[i], now, longest));
	s.learned.dirty = true;
	dns_learned_save(&s);
	dns_learned_load(&s2);
	check(same(&s.learned, &s2.learned));
	dns_learned_free(&s.learned);
	dns_learned_free(&s2.learned);
	return 0;
}
