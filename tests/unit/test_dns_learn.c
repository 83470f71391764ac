/* What the DNS service learns from answers (gateway/dns/dns_learn.h,
 * docs/security.md):
 *
 *   filter   each special-purpose class refused, private only for a rule
 *            with learn_private, the gateway's own addresses refused
 *   table    the per-set cap, eviction soonest-expiring first, expiry,
 *            trimming — against a naive reference model on random input
 *   engine   answers through the DNS engine into real nft sets in a
 *            private network namespace: the filter, learn_answer_max,
 *            learn_max with eviction order, one transaction per set and
 *            round, ttl_max in the answer, the counters in the status
 *   tap      the tap's answers count what its socketpair took
 */
#include "tests/lib/check.h"
#include "gateway/dns/dns_internal.h"
#include "common/clock.h"
#include "common/log.h"
#include "gateway/kernel/nft.h"
#include "tunnel/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fam_of(const char *a)
{
	return strchr(a, ':') ? AF_INET6 : AF_INET;
}

static enum xb_dns_learn_class cls(const char *a)
{
	uint8_t b[16];

	if (inet_pton(fam_of(a), a, b) != 1)
		xb_test_fail(__FILE__, __LINE__, "bad address %s", a);
	return xb_dns_learn_classify(fam_of(a), b);
}

TEST(special_purpose_refused)
{
	static const char *const special[] = {
		"0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "169.254.1.1",
		"224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "fe80::1", "febf::1", "ff02::1", "ff05::1:3", "::ffff:192.0.2.1",
		"::ffff:8.8.8.8",
		/* IPv4-compatible (deprecated), discard-only, IETF protocol
		 * assignments, and NAT64 / 6to4 wrapping a special IPv4. */
		"::127.0.0.1", "::a00:1", "::2", "::808:808", "100::1", "100::ffff:ffff:ffff:ffff",
		"192.0.0.1", "192.0.0.255", "64:ff9b::7f00:1", "64:ff9b::e000:1", "64:ff9b::",
		"2002:7f00:1::1", "2002:a9fe:101::", "2002::1",
	};

	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (cls(special[i]) != XB_DNS_LEARN_SPECIAL)
			xb_test_fail(__FILE__, __LINE__, "%s is not special", special[i]);
}

TEST(private_and_public)
{
	static const char *const priv[] = {
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.1", "192.168.1.1",
		"100.64.0.1", "100.127.255.255", "fc00::1", "fdff::1",
		/* NAT64 / 6to4 wrapping a private IPv4; RFC 8215 local-use NAT64. */
		"64:ff9b::a00:1", "64:ff9b::c0a8:101", "2002:a00:1::1", "64:ff9b:1::1",
		"64:ff9b:1:ffff::8.8.8.8",
	};
	static const char *const pub[] = {
		"1.1.1.1", "9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0",
		"192.167.1.1", "100.63.255.255", "100.128.0.0", "128.0.0.1", "169.253.1.1",
		"223.255.255.255", "203.0.113.10", "2001:db8::10", "fe00::1", "fec0::1",
		"fbff::1", "::fffe:1:2", "2606:4700::1111",
		/* DNS64 of a public IPv4 is a real destination. */
		"64:ff9b::808:808", "64:ff9b::cb00:710a", "2002:808:808::1", "100:0:0:1::1",
		"192.0.1.255", "192.0.2.1", "64:ff9b:2::1",
	};

	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		if (cls(priv[i]) != XB_DNS_LEARN_PRIVATE)
			xb_test_fail(__FILE__, __LINE__, "%s is not private", priv[i]);
	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++)
		if (cls(pub[i]) != XB_DNS_LEARN_PUBLIC)
			xb_test_fail(__FILE__, __LINE__, "%s is not public", pub[i]);
}

TEST(own_prefixes)
{
	struct xb_dns_learn_own o = { 0 };
	struct xb_prefix p = { .family = AF_INET, .cidr = 24 }, q = { .family = AF_INET6, .cidr = 128 };
	uint8_t a[16];

	inet_pton(AF_INET, "198.51.100.7", p.addr);	/* host bits are ignored */
	inet_pton(AF_INET6, "2001:db8::1", q.addr);
	CHECK_INT(xb_dns_learn_own_add(&o, &p), ==, 0);
	CHECK_INT(xb_dns_learn_own_add(&o, &q), ==, 0);
	inet_pton(AF_INET, "198.51.100.255", a);
	CHECK(xb_dns_learn_own_has(&o, AF_INET, a));
	inet_pton(AF_INET, "198.51.101.0", a);
	CHECK(!xb_dns_learn_own_has(&o, AF_INET, a));
	inet_pton(AF_INET6, "2001:db8::1", a);
	CHECK(xb_dns_learn_own_has(&o, AF_INET6, a));
	inet_pton(AF_INET6, "2001:db8::2", a);
	CHECK(!xb_dns_learn_own_has(&o, AF_INET6, a));
	/* An own IPv4 address in a NAT64 or 6to4 wrapper is still ours. */
	inet_pton(AF_INET6, "64:ff9b::c633:6401", a);
	CHECK(xb_dns_learn_own_has(&o, AF_INET6, a));
	inet_pton(AF_INET6, "2002:c633:64ff::1", a);
	CHECK(xb_dns_learn_own_has(&o, AF_INET6, a));
	inet_pton(AF_INET6, "64:ff9b::c633:6501", a);
	CHECK(!xb_dns_learn_own_has(&o, AF_INET6, a));
	xb_dns_learn_own_free(&o);
}

static void a4(uint8_t *b, unsigned i)
{
	b[0] = 203;
	b[1] = (uint8_t)(i >> 16);
	b[2] = (uint8_t)(i >> 8);
	b[3] = (uint8_t)i;
}

TEST(cap_evicts_soonest_expiring)
{
	struct xb_dns_learn t;
	struct xb_dns_learn_entry ev;
	uint8_t b[16];
	int s, o;

	xb_dns_learn_init(&t);
	s = xb_dns_learn_set_id(&t, "r_a_dns4");
	o = xb_dns_learn_set_id(&t, "r_b_dns4");
	CHECK_INT(xb_dns_learn_set_id(&t, "r_a_dns4"), ==, s);
	/* Expiries 100, 90, ..., 10 for addresses 0..9: cap 10. */
	for (unsigned i = 0; i < 10; i++) {
		a4(b, i);
		CHECK(xb_dns_learn_add(&t, s, AF_INET, b, 100 - 10 * i, 7, 10, 0, &ev) != NULL);
		CHECK_INT(ev.family, ==, 0);
	}
	/* The other set is not touched by this one's cap. */
	a4(b, 0);
	CHECK(xb_dns_learn_add(&t, o, AF_INET, b, 1, 7, 10, 0, &ev) != NULL);
	CHECK_INT(ev.family, ==, 0);
	/* Full: each add evicts the soonest, 9 (10), then 8 (20). */
	a4(b, 100);
	CHECK(xb_dns_learn_add(&t, s, AF_INET, b, 1000, 7, 10, 0, &ev) != NULL);
	CHECK_INT(ev.family, ==, AF_INET);
	CHECK_INT(ev.addr[3], ==, 9);
	CHECK_INT(ev.expires, ==, 10);
	a4(b, 101);
	CHECK(xb_dns_learn_add(&t, s, AF_INET, b, 1000, 7, 10, 0, &ev) != NULL);
	CHECK_INT(ev.addr[3], ==, 8);
	CHECK_INT(xb_dns_learn_count(&t, s), ==, 10);
	CHECK_INT(t.sets[s].evicted, ==, 2);
	a4(b, 9);
	CHECK(xb_dns_learn_find(&t, s, AF_INET, b) == NULL);
	/* A refresh moves an entry back: 7 (30) is no longer the soonest. */
	a4(b, 7);
	xb_dns_learn_update(&t, xb_dns_learn_find(&t, s, AF_INET, b), 500);
	CHECK_INT(xb_dns_learn_first(&t, s)->addr[3], ==, 6);
	/* Expiry drops what is due, in both sets; trim keeps the latest. */
	CHECK_INT(xb_dns_learn_expire(&t, 60), ==, 3 + 1);	/* 6, 5, 4 and the other set's */
	CHECK_INT(xb_dns_learn_count(&t, s), ==, 7);
	CHECK_INT(xb_dns_learn_trim(&t, s, 3), ==, 4);
	CHECK_INT(xb_dns_learn_first(&t, s)->addr[3], ==, 7);
	CHECK_INT(xb_dns_learn_total(&t), ==, 3);
	/* Full, and the soonest (7, 500) has expired by 600: the kernel may
	 * still count it, so nothing new comes in until it is dropped. */
	a4(b, 102);
	errno = 0;
	CHECK(xb_dns_learn_add(&t, s, AF_INET, b, 2000, 7, 3, 600, &ev) == NULL);
	CHECK_INT(errno, ==, ENOSPC);
	CHECK_INT(ev.family, ==, 0);
	CHECK_INT(xb_dns_learn_count(&t, s), ==, 3);
	CHECK_INT(xb_dns_learn_expire(&t, 600 - XB_DNS_LEARN_LINGER), ==, 1);
	CHECK(xb_dns_learn_add(&t, s, AF_INET, b, 2000, 7, 3, 600, &ev) != NULL);
	CHECK_INT(ev.family, ==, 0);
	xb_dns_learn_free(&t);
}

/* The reference: a plain array per set, scanned. */
struct ref {
	uint32_t key;
	uint64_t exp;
	bool used;
};

static size_t ref_count(const struct ref *r, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += r[i].used;
	return c;
}

TEST(table_against_model)
{
	enum { KEYS = 600, CAP = 97, STEPS = 40000 };
	static struct ref r[2][KEYS];
	struct xb_dns_learn t;
	struct xb_dns_learn_entry ev;
	uint64_t now = 0;
	uint8_t b[16];
	unsigned seed = 14;

	memset(r, 0, sizeof(r));
	xb_dns_learn_init(&t);
	CHECK_INT(xb_dns_learn_set_id(&t, "r_a_dns4"), ==, 0);
	CHECK_INT(xb_dns_learn_set_id(&t, "r_b_dns4"), ==, 1);
	for (unsigned step = 0; step < STEPS; step++) {
		unsigned set = (unsigned)rand_r(&seed) % 2, key = (unsigned)rand_r(&seed) % KEYS;
		/* Distinct expiries: eviction order is then exact. */
		uint64_t exp = now + 1 + (uint64_t)(rand_r(&seed) % 5000) * 40000 + step % 40000;
		struct xb_dns_learn_entry *e;

		a4(b, key);
		e = xb_dns_learn_find(&t, (int)set, AF_INET, b);
		CHECK((e != NULL) == r[set][key].used);
		if (e) {
			CHECK_INT(e->expires, ==, r[set][key].exp);
			if (rand_r(&seed) % 4 == 0) {
				xb_dns_learn_del(&t, e);
				r[set][key].used = false;
			} else {
				xb_dns_learn_update(&t, e, exp);
				r[set][key].exp = exp;
			}
		} else {
			size_t victim = KEYS;

			if (ref_count(r[set], KEYS) >= CAP)
				for (size_t i = 0; i < KEYS; i++)
					if (r[set][i].used &&
					    (victim == KEYS || r[set][i].exp < r[set][victim].exp))
						victim = i;
			CHECK(xb_dns_learn_add(&t, (int)set, AF_INET, b, exp, 1, CAP, now, &ev) != NULL);
			if (victim < KEYS) {
				CHECK_INT(ev.family, ==, AF_INET);
				CHECK_INT((unsigned)ev.addr[1] << 16 | (unsigned)ev.addr[2] << 8 | ev.addr[3],
					  ==, victim);
				r[set][victim].used = false;
			} else {
				CHECK_INT(ev.family, ==, 0);
			}
			r[set][key] = (struct ref){ key, exp, true };
		}
		if (step % 1000 == 999) {
			now += 40000000;
			xb_dns_learn_expire(&t, now);
			for (size_t s = 0; s < 2; s++)
				for (size_t i = 0; i < KEYS; i++)
					if (r[s][i].used && r[s][i].exp <= now)
						r[s][i].used = false;
		}
		CHECK_INT(xb_dns_learn_count(&t, (int)set), ==, ref_count(r[set], KEYS));
		CHECK(xb_dns_learn_count(&t, (int)set) <= CAP);
	}
	xb_dns_learn_free(&t);
}

/* ---- through the engine, into real sets ---- */

static char dir[64];
static char *out;
static uint8_t reply[8192];	/* the engine's answer to the device */
static size_t reply_len;

static const char table[] =
	"table inet xborder {\n"
	"\tset r_web_dns4 { type ipv4_addr; flags timeout; size 16; }\n"
	"\tset r_web_dns6 { type ipv6_addr; flags timeout; }\n"
	"\tset r_lan_dns4 { type ipv4_addr; flags timeout; }\n"
	"\tset r_lan_dns6 { type ipv6_addr; flags timeout; }\n"
	"}\n";

/* The policy of `rules' and `dns' (text inside the sections) in dir, and
 * its DNS configuration. */
static struct xb_dns_service_cfg *prepare(struct xb_policy **pp, const char *rules, const char *dns)
{
	struct xb_errors errs = { 0 };
	struct xb_dns_service_cfg *cfg;
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/xborder.conf", dir);
	CHECK((f = fopen(path, "w")) != NULL);
	fprintf(f, "gateway = { private_key_file = \"gw.key\"; interface = \"xbt%d\";\n"
		"  pool4 = \"198.51.100.0/24\"; pool6 = \"2001:db8:100::/64\"; };\n"
		"tunnels = ( { name = \"t1\"; endpoint = \"192.0.2.200:51820\"; private_key_file = \"gw.key\";\n"
		"  public_key = \"VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU=\";\n"
		"  address4 = \"192.0.2.1/30\"; peer4 = \"192.0.2.2\"; address6 = \"2001:db8:ffff::1/126\"; } );\n"
		"rules = ( %s );\n"
		"dns = { upstreams = [ \"192.0.2.53\" ]; %s };\n", (int)getpid() % 10000, rules, dns);
	fclose(f);
	*pp = xb_policy_load(path, &errs);
	if (*pp && xb_policy_allocate(*pp, NULL, &errs) < 0) {
		xb_policy_free(*pp);
		*pp = NULL;
	}
	if (!*pp)
		xb_errors_print(&errs, stdout);
	CHECK(*pp != NULL);
	CHECK((cfg = xb_dns_service_prepare(*pp, &errs)) != NULL);
	xb_errors_free(&errs);
	return cfg;
}

/* The test's sets, empty, as a reload of the ruleset leaves them. */
static void fresh_table(void)
{
	struct xb_nft n;
	char *err = NULL;

	xb_test_run("nft delete table inet xborder 2>/dev/null; true");
	CHECK_INT(xb_nft_open(&n), ==, 0);
	if (xb_nft_run(&n, table, &err) < 0)
		xb_test_fail(__FILE__, __LINE__, "table: %s", err ? err : "?");
	xb_nft_close(&n);
}

/* A service over a policy of `rules' and `dns', its sets in a fresh
 * table. */
static struct xb_dns_service *service(struct xb_policy **pp, const char *rules, const char *dns)
{
	struct xb_dns_service_cfg *cfg;
	struct xb_dns_service *s;
	char path[PATH_MAX];
	FILE *f;

	xb_test_private_netns();
	snprintf(dir, sizeof(dir), "/tmp/xb-dnslearn.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/gw.key", dir);
	CHECK((f = fopen(path, "w")) != NULL);
	fputs("SMvIRSbyqKDSVwi4A2iNWyhxxFPVfeqgnYa6yUyh0Ho=\n", f);
	fclose(f);
	chmod(path, 0600);
	cfg = prepare(pp, rules, dns);
	fresh_table();
	CHECK((s = xb_dns_service_new(NULL, NULL, NULL)) != NULL);
	xb_dns_service_commit(s, cfg);	/* no device interface here: it cannot listen */
	return s;
}

static void service_free(struct xb_dns_service *s, struct xb_policy *p)
{
	char cmd[PATH_MAX];

	xb_dns_service_free(s);
	xb_policy_free(p);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	xb_test_run(cmd);
}

/* The engine as an upstream answer to a device's query for name reaches
 * it: n addresses (A or AAAA by their form), TTL ttl; what it learned is
 * queued, not yet flushed. */
static void answer_queued(struct xb_dns_service *s, const char *name, const char *const *addrs, size_t n,
			  uint32_t ttl)
{
	static uint8_t qb[512], ab[8192];
	struct xb_dns_wire_question q = { .qtype = fam_of(addrs[0]) == AF_INET ? XB_DNS_WIRE_T_A : XB_DNS_WIRE_T_AAAA,
				   .qclass = XB_DNS_WIRE_C_IN };
	struct dns_query qq;
	struct xb_dns_wire_builder b;
	struct xb_dns_wire_msg m;
	int qlen, nl = xb_dns_wire_name_from_text(name, q.name);

	CHECK(nl > 0);
	q.name_len = (uint16_t)nl;
	CHECK((qlen = xb_dns_wire_build_query(qb, sizeof(qb), 0x1414, 0, &q, NULL)) > 0);
	memset(&qq, 0, sizeof(qq));
	CHECK_INT(xb_dns_wire_parse_query(&qq.q, qb, (size_t)qlen), ==, XB_DNS_WIRE_Q_OK);
	qq.rule = DNS_NO_RULE;
	CHECK_INT(xb_dns_wire_answer_begin(&b, ab, sizeof(ab), &qq.q, XB_DNS_WIRE_NOERROR, 0, 4096), ==, 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t a[16];

		CHECK(inet_pton(fam_of(addrs[i]), addrs[i], a) == 1);
		if (fam_of(addrs[i]) == AF_INET)
			xb_dns_wire_answer_a(&b, NULL, ttl, a);
		else
			xb_dns_wire_answer_aaaa(&b, NULL, ttl, a);
	}
	size_t len = xb_dns_wire_answer_finish(&b);
	CHECK(len > 0);
	CHECK_INT(xb_dns_wire_parse_response(&m, ab, len, 0x1414, &qq.q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK((reply_len = dns_answer_from(s, &qq, &m, reply, sizeof(reply))) > 0);
}

/* The same, and the round ends: what it learned goes to the kernel. */
static void answer(struct xb_dns_service *s, const char *name, const char *const *addrs, size_t n,
		   uint32_t ttl)
{
	answer_queued(s, name, addrs, n, ttl);
	dns_learn_flush(s);
}

static const char *set_text(const char *set)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "nft list set inet xborder %s", set);
	return out = xb_test_run(cmd);
}

static bool in_set(const char *set, const char *addr)
{
	char pat[64];

	set_text(set);
	snprintf(pat, sizeof(pat), " %s timeout", addr);
	return strstr(out, pat) != NULL;
}

static size_t set_size(const char *set)
{
	size_t n = 0;

	set_text(set);
	for (const char *p = out; (p = strstr(p, " expires ")); p++)
		n++;
	return n;
}

/* The status's learning row for rule. */
static json_t *row(struct xb_dns_service *s, const char *rule, json_t **st)
{
	json_t *e;
	size_t i;

	*st = xb_dns_service_status(s);
	json_array_foreach(json_object_get(*st, "learning"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "rule")), rule))
			return e;
	xb_test_fail(__FILE__, __LINE__, "no learning row for %s", rule);
}

static long long refused(json_t *e, const char *why)
{
	return json_integer_value(json_object_get(json_object_get(e, "refused"), why));
}

/* The six, the gateway's own, and one good one. */
TEST(engine_filter)
{
	static const char *const v4[] = {
		"0.0.0.0", "127.0.0.1", "198.51.100.1", "224.0.0.1", "169.254.1.1", "255.255.255.255",
		"192.0.2.2", "192.0.2.200", "192.0.2.53", "10.1.2.3", "203.0.113.10",
	};
	static const char *const v6[] = { "::1", "fe80::1", "ff02::1", "::ffff:203.0.113.9",
					  "2001:db8:100::1", "fd00::5", "2001:db8:cafe::10" };
	struct xb_policy *p;
	struct xb_dns_service *s;
	json_t *st, *e;

	log_init("test_dns_learn", LOG_LVL_WARN, false);
	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\";"
			" via = [ \"t1\" ]; }", "");
	answer(s, "a.acme.example", v4, sizeof(v4) / sizeof(v4[0]), 300);
	answer(s, "a.acme.example", v6, sizeof(v6) / sizeof(v6[0]), 300);
	CHECK(in_set("r_web_dns4", "203.0.113.10"));
	CHECK(in_set("r_web_dns6", "2001:db8:cafe::10"));
	for (size_t i = 0; i + 1 < sizeof(v4) / sizeof(v4[0]); i++)
		if (in_set("r_web_dns4", v4[i]))
			xb_test_fail(__FILE__, __LINE__, "%s was learned", v4[i]);
	for (size_t i = 0; i + 1 < sizeof(v6) / sizeof(v6[0]); i++)
		if (in_set("r_web_dns6", v6[i]))
			xb_test_fail(__FILE__, __LINE__, "%s was learned", v6[i]);
	CHECK_INT(set_size("r_web_dns4"), ==, 1);
	CHECK_INT(set_size("r_web_dns6"), ==, 1);
	e = row(s, "web", &st);
	CHECK_INT(refused(e, "special"), ==, 5 + 4);
	CHECK_INT(refused(e, "own"), ==, 4 + 1);	/* pool, peer, endpoint, upstream; pool6 */
	CHECK_INT(refused(e, "private"), ==, 1 + 1);
	CHECK_INT(json_integer_value(json_object_get(e, "learned4")), ==, 1);
	json_decref(st);
	service_free(s, p);
}

TEST(engine_learn_private)
{
	static const char *const v4[] = { "10.1.2.3", "172.16.9.9", "192.168.0.7", "100.64.1.1",
					  "127.0.0.1", "198.51.100.9" };
	struct xb_policy *p;
	struct xb_dns_service *s;

	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; },"
			"{ name = \"lan\"; domains = [ \"*.lan.example\" ]; learn_private = true;"
			" action = \"allow\"; via = [ \"t1\" ]; }", "");
	answer(s, "db.lan.example", v4, 6, 300);
	answer(s, "db.acme.example", v4, 6, 300);
	for (size_t i = 0; i < 4; i++) {
		if (!in_set("r_lan_dns4", v4[i]))
			xb_test_fail(__FILE__, __LINE__, "%s was not learned with learn_private", v4[i]);
		if (in_set("r_web_dns4", v4[i]))
			xb_test_fail(__FILE__, __LINE__, "%s was learned without learn_private", v4[i]);
	}
	/* learn_private is about private ranges, not the rest of the filter. */
	CHECK(!in_set("r_lan_dns4", "127.0.0.1"));
	CHECK(!in_set("r_lan_dns4", "198.51.100.9"));
	service_free(s, p);
}

/* learn_max 16, learn_answer_max 8: an answer of 10 teaches 8; a full set
 * loses its soonest-expiring entries, each eviction counted, and the
 * kernel's set follows. */
TEST(engine_caps_and_eviction)
{
	char a[3][10][32];
	const char *v[3][10];
	struct xb_policy *p;
	struct xb_dns_service *s;
	json_t *st, *e;

	for (int n = 0; n < 3; n++)
		for (int i = 0; i < 10; i++) {
			snprintf(a[n][i], sizeof(a[n][i]), "203.0.113.%d", n * 10 + i + 1);
			v[n][i] = a[n][i];
		}
	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "learn_max = 16; learn_answer_max = 8; grace = 0; ttl_max = 3600;");
	unsigned long batches = s->nft.batches;

	answer(s, "long.acme.example", v[0], 10, 3000);
	/* One transaction for the answer's 8 addresses, not one each. */
	CHECK_INT(s->nft.batches - batches, ==, 1);
	CHECK_INT(set_size("r_web_dns4"), ==, 8);
	CHECK(in_set("r_web_dns4", "203.0.113.8") && !in_set("r_web_dns4", "203.0.113.9"));
	answer(s, "short.acme.example", v[1], 8, 100);
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	/* Full: the 8 new ones push out the 8 that expire soonest (TTL 100). */
	batches = s->nft.batches;
	answer(s, "mid.acme.example", v[2], 8, 2000);
	CHECK_INT(s->nft.batches - batches, ==, 2);	/* the evictions, then the puts */
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	for (int i = 0; i < 8; i++) {
		CHECK(in_set("r_web_dns4", v[0][i]));
		CHECK(!in_set("r_web_dns4", v[1][i]));
		CHECK(in_set("r_web_dns4", v[2][i]));
	}
	e = row(s, "web", &st);
	CHECK_INT(json_integer_value(json_object_get(e, "evicted")), ==, 8);
	CHECK_INT(refused(e, "over_answer_max"), ==, 2);
	CHECK_INT(refused(e, "set_full"), ==, 0);
	CHECK_INT(json_integer_value(json_object_get(e, "learned4")), ==, 16);
	CHECK_INT(json_integer_value(json_object_get(e, "cap")), ==, 16);
	json_decref(st);
	service_free(s, p);
}

/* ttl_max caps what the devices are told too: a device must ask again
 * before the address leaves the set. */
TEST(engine_ttl_capped)
{
	static const char *const v4[] = { "203.0.113.77" };
	struct xb_policy *p;
	struct xb_dns_service *s;

	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "grace = 60;");
	struct xb_dns_wire_question q = { .qtype = XB_DNS_WIRE_T_A, .qclass = XB_DNS_WIRE_C_IN };
	struct xb_dns_wire_msg m;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;

	answer(s, "a.acme.example", v4, 1, 86400);
	set_text("r_web_dns4");
	/* 3600 (the default ttl_max) + 60. */
	CHECK(strstr(out, "203.0.113.77 timeout 1h1m") != NULL);
	q.name_len = (uint16_t)xb_dns_wire_name_from_text("a.acme.example", q.name);
	CHECK_INT(xb_dns_wire_parse_response(&m, reply, reply_len, 0x1414, &q), ==, XB_DNS_WIRE_R_OK);
	xb_dns_wire_iter_init(&it, &m, XB_DNS_WIRE_AN);
	CHECK(xb_dns_wire_iter_next(&it, &rr));
	CHECK_INT(rr.ttl, ==, 3600);
	service_free(s, p);
}

/* Finding 1 of the review: an entry refreshed in a round (its put queued)
 * and then evicted in the same round must leave the kernel's set too, or
 * the kernel holds more than the table and, with the set sized to the cap,
 * the new address's put fails. The set here has size 16 = learn_max. */
TEST(engine_refresh_then_evict)
{
	char a[15][32];
	const char *v[15];
	static const char *const xy[] = { "198.18.0.1", "198.18.0.2" };
	struct xb_policy *p;
	struct xb_dns_service *s;
	json_t *st, *e;

	for (int i = 0; i < 15; i++) {
		snprintf(a[i], sizeof(a[i]), "203.0.113.%d", i + 1);
		v[i] = a[i];
	}
	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "learn_max = 16; learn_answer_max = 32; grace = 0; ttl_max = 3600;");
	answer(s, "long.acme.example", v, 15, 3000);
	answer(s, "x.acme.example", xy, 1, 10);
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	uint64_t fail0 = s->c.set_failures;

	answer(s, "xy.acme.example", xy, 2, 30);	/* X refreshed, then evicted by Y */
	CHECK_INT(s->c.set_failures - fail0, ==, 0);
	CHECK(!in_set("r_web_dns4", xy[0]));
	CHECK(in_set("r_web_dns4", xy[1]));
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	CHECK_INT(xb_dns_learn_total(&s->learned), ==, 16);
	e = row(s, "web", &st);
	CHECK_INT(json_integer_value(json_object_get(e, "evicted")), ==, 1);
	json_decref(st);
	service_free(s, p);
}

/* Finding 2 of the review: a put that fails (here: the kernel's set is
 * full of elements the table does not know) must not make the table
 * forget the entries it was refreshing — the kernel still holds them. */
TEST(engine_failed_put_keeps_refreshed)
{
	static const char *const mine[] = { "203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4" };
	static const char *const both[] = { "203.0.113.1", "203.0.113.99" };
	struct xb_policy *p;
	struct xb_dns_service *s;
	char cmd[512];
	int n = 0;

	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "learn_max = 16; grace = 0; ttl_max = 3600;");
	answer(s, "four.acme.example", mine, 4, 100);
	/* Someone else fills the kernel's set (size 16). */
	n = snprintf(cmd, sizeof(cmd), "nft add element inet xborder r_web_dns4 { ");
	for (int i = 0; i < 12; i++)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "%s198.18.1.%d timeout 1h", i ? ", " : "", i + 1);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " }");
	xb_test_run(cmd);
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	uint64_t fail0 = s->c.set_failures;

	/* .1 is refreshed (100 s left < half of 3000), .99 is new: the put fails. */
	answer(s, "both.acme.example", both, 2, 3000);
	CHECK(s->c.set_failures > fail0);
	CHECK(in_set("r_web_dns4", "203.0.113.1"));
	dns_learned_prune(s);
	/* The four the kernel holds are still counted; the new one is not. */
	CHECK_INT(xb_dns_learn_total(&s->learned), ==, 4);
	/* .1 keeps at least the expiry it had, like .2 learned beside it. */
	uint8_t a1[4], a2[4];
	int sid = xb_dns_learn_set_id(&s->learned, "r_web_dns4");

	inet_pton(AF_INET, "203.0.113.1", a1);
	inet_pton(AF_INET, "203.0.113.2", a2);
	struct xb_dns_learn_entry *l1 = xb_dns_learn_find(&s->learned, sid, AF_INET, a1);
	struct xb_dns_learn_entry *l2 = xb_dns_learn_find(&s->learned, sid, AF_INET, a2);
	CHECK(l1 && l2);
	CHECK_INT(l1->expires, >=, l2->expires);
	service_free(s, p);
}

/* Finding 7 of the review: changes still queued under the old rules when
 * a reload commits must not reach the new table: there the set of that
 * name may belong to a rule with other domains (a renamed or edited rule;
 * rules without a name have r_ruleN by position). */
TEST(engine_reload_drops_queued)
{
	static const char *const v4[] = { "203.0.113.50" };
	struct xb_policy *p, *p2;
	struct xb_dns_service *s;

	s = service(&p, "{ name = \"web\"; domains = [ \"*.a.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }", "");
	answer_queued(s, "x.a.example", v4, 1, 300);
	CHECK_INT(s->n_pend, ==, 1);
	/* The reload: the ruleset (empty sets) first, then the DNS service.
	 * Rule web is about other names now. */
	fresh_table();
	xb_dns_service_commit(s, prepare(&p2, "{ name = \"web\"; domains = [ \"*.b.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }", ""));
	xb_policy_free(p);
	CHECK(!in_set("r_web_dns4", v4[0]));
	CHECK_INT(s->n_pend, ==, 0);
	/* The table agrees with the kernel. */
	CHECK_INT(xb_dns_learn_total(&s->learned), ==, 0);
	service_free(s, p2);
}

/* Learned, refreshed and evicted within one round: the batch holds two
 * puts of X, and neither may reach the kernel. */
TEST(engine_learn_refresh_evict_one_round)
{
	char a[15][32];
	const char *v[15];
	static const char *const x[] = { "198.18.0.1" }, *const y[] = { "198.18.0.2" };
	struct xb_policy *p;
	struct xb_dns_service *s;

	for (int i = 0; i < 15; i++) {
		snprintf(a[i], sizeof(a[i]), "203.0.113.%d", i + 1);
		v[i] = a[i];
	}
	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "learn_max = 16; learn_answer_max = 32; grace = 0; ttl_max = 3600;");
	answer(s, "long.acme.example", v, 15, 3000);
	uint64_t fail0 = s->c.set_failures;

	answer_queued(s, "x.acme.example", x, 1, 10);
	answer_queued(s, "x.acme.example", x, 1, 30);	/* a refresh: 10 s left < 30 / 2 */
	answer_queued(s, "y.acme.example", y, 1, 3000);	/* evicts X */
	dns_learn_flush(s);
	CHECK_INT(s->c.set_failures - fail0, ==, 0);
	CHECK(!in_set("r_web_dns4", x[0]));
	CHECK(in_set("r_web_dns4", y[0]));
	CHECK_INT(set_size("r_web_dns4"), ==, 16);
	CHECK_INT(xb_dns_learn_total(&s->learned), ==, 16);
	service_free(s, p);
}

/* Finding 3 of the review: the table's expiries are on the monotonic
 * clock, like the kernel's relative timeouts, so a step of the wall clock
 * does not split them; the state file holds wall-clock times (it outlives
 * a reboot), converted on save and load. */
TEST(engine_expiry_monotonic_file_wall)
{
	static const char *const v4[] = { "203.0.113.60" };
	struct xb_policy *p, *p2;
	struct xb_dns_service *s;
	struct xb_dns_learn_entry *l;
	char path[PATH_MAX], line[256];
	unsigned long long exp = 0;
	uint8_t a[4];
	FILE *f;

	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "grace = 0; ttl_max = 3600;");
	answer(s, "a.acme.example", v4, 1, 600);
	inet_pton(AF_INET, v4[0], a);
	l = xb_dns_learn_find(&s->learned, xb_dns_learn_set_id(&s->learned, "r_web_dns4"), AF_INET, a);
	CHECK(l != NULL);
	uint64_t mono = clock_mono_ns() / 1000000000ull;

	CHECK_INT(l->expires, >=, mono + 598);
	CHECK_INT(l->expires, <=, mono + 601);
	/* Saved: wall clock. */
	snprintf(path, sizeof(path), "%s/dns-learned", dir);
	s->state_file = strdup(path);
	dns_learned_save(s);
	CHECK((f = fopen(path, "r")) != NULL);
	CHECK(fgets(line, sizeof(line), f) != NULL);
	fclose(f);
	CHECK(sscanf(line, "r_web_dns4 203.0.113.60 %llu", &exp) == 1);
	CHECK_INT(exp, >=, (unsigned long long)time(NULL) + 598);
	CHECK_INT(exp, <=, (unsigned long long)time(NULL) + 601);
	xb_dns_service_free(s);
	xb_policy_free(p);
	/* Loaded: monotonic again. */
	CHECK((s = xb_dns_service_new(dir, NULL, NULL)) != NULL);
	xb_dns_service_commit(s, prepare(&p2, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
				    "grace = 0; ttl_max = 3600;"));
	l = xb_dns_learn_find(&s->learned, xb_dns_learn_set_id(&s->learned, "r_web_dns4"), AF_INET, a);
	CHECK(l != NULL);
	mono = clock_mono_ns() / 1000000000ull;
	CHECK_INT(l->expires, >=, mono + 597);
	CHECK_INT(l->expires, <=, mono + 601);
	CHECK(in_set("r_web_dns4", v4[0]));
	service_free(s, p2);
}

/* A reload that lowers learn_max trims each set to it, soonest-expiring
 * first, and counts what went as evictions of the rule (review nit). */
TEST(engine_reload_lower_cap_counted)
{
	char a[20][32];
	const char *v[20];
	struct xb_policy *p, *p2;
	struct xb_dns_service *s;
	json_t *st, *e;

	for (int i = 0; i < 20; i++) {
		snprintf(a[i], sizeof(a[i]), "2001:db8:cafe::%d", i + 1);
		v[i] = a[i];
	}
	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
		    "learn_max = 32; learn_answer_max = 32; grace = 0;");
	answer(s, "short.acme.example", v, 4, 100);
	answer(s, "long.acme.example", v + 4, 16, 3000);
	fresh_table();
	xb_dns_service_commit(s, prepare(&p2, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }",
				    "learn_max = 16; learn_answer_max = 32; grace = 0;"));
	xb_policy_free(p);
	CHECK_INT(set_size("r_web_dns6"), ==, 16);
	CHECK(!in_set("r_web_dns6", v[0]) && in_set("r_web_dns6", v[4]));
	e = row(s, "web", &st);
	CHECK_INT(json_integer_value(json_object_get(e, "evicted")), ==, 4);
	CHECK_INT(json_integer_value(json_object_get(e, "learned6")), ==, 16);
	json_decref(st);
	service_free(s, p2);
}

/* A query for x.example from 203.0.113.9 (no device: refused at once) as
 * the data thread frames it onto the tap (tunnel/tap.h). */
static void tap_query(int fd)
{
	static const uint8_t src[4] = { 203, 0, 113, 9 }, dst[4] = { 198, 51, 100, 1 };
	struct wg_tap_hdr h = { .family = 4, .sport = htons(33333), .dport = htons(53) };
	struct xb_dns_wire_question q = { .qtype = XB_DNS_WIRE_T_A, .qclass = XB_DNS_WIRE_C_IN };
	uint8_t f[WG_TAP_HDR_LEN + 512];
	int nl = xb_dns_wire_name_from_text("x.example", q.name), qlen;

	CHECK(nl > 0);
	q.name_len = (uint16_t)nl;
	memcpy(h.src, src, 4);
	memcpy(h.dst, dst, 4);
	memcpy(f, &h, sizeof(h));
	CHECK((qlen = xb_dns_wire_build_query(f + WG_TAP_HDR_LEN, sizeof(f) - WG_TAP_HDR_LEN, 0x7a7a, 0, &q,
					      NULL)) > 0);
	CHECK(write(fd, f, WG_TAP_HDR_LEN + (size_t)qlen) == WG_TAP_HDR_LEN + qlen);
}

static long long tap_count(struct xb_dns_service *s, const char *key)
{
	json_t *st = xb_dns_service_status(s);
	long long v = json_integer_value(json_object_get(json_object_get(st, "tap"), key));

	json_decref(st);
	return v;
}

/* The tap's answers (docs/dns.md, "The tap") are those the socketpair
 * took: with the data thread's end gone the answer cannot leave, and is
 * not counted. */
TEST(tap_answers_count_what_was_sent)
{
	struct xb_policy *p;
	struct xb_dns_service *s;
	uint8_t got[600];
	int sp[2];

	s = service(&p, "{ name = \"web\"; domains = [ \"*.acme.example\" ]; action = \"allow\"; via = [ \"t1\" ]; }", "");
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	xb_dns_service_set_tap(s, sp[1], 1420);
	tap_query(sp[0]);
	CHECK(xb_dns_service_udp_ready(s, sp[1]));
	CHECK(read(sp[0], got, sizeof(got)) > WG_TAP_HDR_LEN + 12);
	CHECK_INT(got[WG_TAP_HDR_LEN + 3] & 0xf, ==, XB_DNS_WIRE_REFUSED);
	CHECK_INT(tap_count(s, "queries"), ==, 1);
	CHECK_INT(tap_count(s, "answers"), ==, 1);
	tap_query(sp[0]);
	close(sp[0]);
	CHECK(xb_dns_service_udp_ready(s, sp[1]));
	CHECK_INT(tap_count(s, "queries"), ==, 2);
	CHECK_INT(tap_count(s, "answers"), ==, 1);
	service_free(s, p);
}
