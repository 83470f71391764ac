/* DNS name matching: the semantics table, pattern validation, list formats
 * and their errors, the matcher against a deliberately naive model (every
 * pattern checked in turn) on random input, and the real 110k-name list. */
#include "tests/lib/check.h"
#include "gateway/dns/dns_list.h"
#include "gateway/dns/dns_match.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The real list (docs/dns.md, tests/data/README.md), in the repository. */
#define CHINA_LIST "accelerated-domains.china.conf"	/* under $XB_DATA, else tests/data */

static struct xb_dns_match *fresh(void)
{
	struct xb_dns_match *m = xb_dns_match_new();

	if (!m)
		xb_test_fail(__FILE__, __LINE__, "out of memory");
	return m;
}

/* Adds pattern text s (a bare name is exact); returns xb_dns_match_add's result. */
static int add(struct xb_dns_match *m, const char *s, uint32_t value)
{
	struct xb_dns_entry e = { .value = value };
	struct xb_dns_pattern p;
	const char *why;

	if (xb_dns_match_pattern_parse(&p, s, strlen(s), XB_DNS_EXACT, &why))
		xb_test_fail(__FILE__, __LINE__, "pattern `%s': %s", s, why);
	return xb_dns_match_add(m, &p, &e);
}

/* Dotted text (no escapes, at most 253 characters) to wire format. */
static size_t to_wire(uint8_t *out, const char *s)
{
	size_t n = 0, len = strlen(s);

	if (len && s[len - 1] == '.')
		len--;
	while (len) {
		const char *dot = memchr(s, '.', len);
		size_t l = dot ? (size_t)(dot - s) : len;

		out[n++] = (uint8_t)l;
		memcpy(out + n, s, l);
		n += l;
		s += l + !!dot;
		len -= l + !!dot;
	}
	out[n++] = 0;
	return n;
}

/* The value found for name by text and by wire lookup (which must agree),
 * or -1 for no match. */
static long look(const struct xb_dns_match *m, const char *name)
{
	const struct xb_dns_entry *t = xb_dns_match_lookup(m, name, strlen(name)), *w;
	uint8_t wire[256];

	w = xb_dns_match_lookup_wire(m, wire, to_wire(wire, name));
	if (t != w)
		xb_test_fail(__FILE__, __LINE__, "`%s': text and wire lookups differ", name);
	return t ? (long)t->value : -1;
}

TEST(semantics)
{
	static const struct { const char *name; long value; } table[] = {
		{ "acme.cn", 1 },		/* exact */
		{ "ACME.cn.", 1 },		/* case, final dot */
		{ "www.acme.cn", 2 },		/* *.acme.cn */
		{ "a.b.acme.cn", 2 },
		{ "erp.acme.cn", 4 },		/* exact beats .erp.acme.cn */
		{ "x.erp.acme.cn", 3 },		/* deeper suffix beats *.acme.cn */
		{ "cn", 5 },			/* .cn: the name itself */
		{ "other.cn", 6 },		/* *.cn beats .cn below cn */
		{ "notacme.cn", 6 },		/* whole labels only */
		{ "acme.cn.evil.com", -1 },
		{ "cn.com", -1 },
		{ "", -1 },			/* no root pattern yet */
		{ ".", -1 },
		{ "xn--fiqs8s", 7 },		/* IDN: punycode is plain ASCII */
		{ "xn--55qx5d.xn--fiqs8s", 7 },
		{ "a..acme.cn", -1 },		/* not a name: matches nothing */
		{ ".acme.cn", -1 },
	};
	struct xb_dns_match *m = fresh();

	CHECK_INT(add(m, "acme.cn", 1), ==, 0);
	CHECK_INT(add(m, "*.acme.cn", 2), ==, 0);
	CHECK_INT(add(m, ".erp.acme.cn", 3), ==, 0);
	CHECK_INT(add(m, "erp.acme.cn", 4), ==, 0);
	CHECK_INT(add(m, ".cn", 5), ==, 0);
	CHECK_INT(add(m, "*.CN.", 6), ==, 0);
	CHECK_INT(add(m, ".xn--fiqs8s", 7), ==, 0);
	CHECK_INT(xb_dns_match_count(m), ==, 7);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (look(m, table[i].name) != table[i].value)
			xb_test_fail(__FILE__, __LINE__, "`%s': %ld, want %ld", table[i].name,
				     look(m, table[i].name), table[i].value);
	CHECK_INT(xb_dns_match_lookup(m, "www.acme.cn", 11)->mode, ==, XB_DNS_BELOW);
	CHECK_INT(xb_dns_match_lookup(m, "x.erp.acme.cn", 13)->mode, ==, XB_DNS_SUFFIX);

	/* The root: "." is the root name itself, "*" every name below it. */
	CHECK_INT(add(m, "*", 8), ==, 0);
	CHECK_INT(look(m, "example.org"), ==, 8);
	CHECK_INT(look(m, ""), ==, -1);
	CHECK_INT(add(m, ".", 9), ==, 0);
	CHECK_INT(look(m, "."), ==, 9);
	CHECK_INT(look(m, ""), ==, 9);
	CHECK_INT(look(m, "www.acme.cn"), ==, 2);	/* deeper patterns still win */
	xb_dns_match_free(m);
}

TEST(same_pattern_twice_last_wins)
{
	struct xb_dns_match *m = fresh();

	CHECK_INT(add(m, "acme.cn", 1), ==, 0);
	CHECK_INT(add(m, "ACME.CN.", 2), ==, 1);	/* equal once normalised */
	CHECK_INT(look(m, "acme.cn"), ==, 2);
	CHECK_INT(xb_dns_match_count(m), ==, 1);
	CHECK_INT(xb_dns_match_replaced(m), ==, 1);
	/* Another mode on the same name is another pattern. */
	CHECK_INT(add(m, ".acme.cn", 3), ==, 0);
	CHECK_INT(add(m, "*.acme.cn", 4), ==, 0);
	CHECK_INT(xb_dns_match_count(m), ==, 3);
	CHECK_INT(look(m, "acme.cn"), ==, 2);
	CHECK_INT(look(m, "www.acme.cn"), ==, 4);
	xb_dns_match_free(m);
}

TEST(invalid_patterns)
{
	char label64[80], name254[300], label63[80], name253[300];
	const char *bad[] = {
		"", "..", "*..", "a..b", ".a..", "a.*.b", "*a.cn", "**.cn", ".*.cn",
		"*.*.cn", "a b.cn", "a/b.cn", "caf\xc3\xa9.cn", "a\\.cn", label64, name254,
	};
	const char *good[] = { "a", "a.", "-x_y-.cn", "*.", "*", ".", "XN--FIQS8S", label63,
			       name253 };
	struct xb_dns_pattern p;
	const char *why;

	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".cn");
	memcpy(label63, label64 + 1, sizeof(label63) - 1);
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters */
	snprintf(name253, sizeof(name253), "%.63s.%.63s.%.63s.%.61s", label64, label64,
		 label64, label64);
	snprintf(name254, sizeof(name254), "%.63s.%.63s.%.63s.%.62s", label64, label64,
		 label64, label64);
	CHECK_INT(strlen(name253), ==, 253);
	CHECK_INT(strlen(name254), ==, 254);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (!xb_dns_match_pattern_parse(&p, bad[i], strlen(bad[i]), XB_DNS_EXACT, &why))
			xb_test_fail(__FILE__, __LINE__, "`%s' accepted", bad[i]);
		CHECK(why != NULL);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (xb_dns_match_pattern_parse(&p, good[i], strlen(good[i]), XB_DNS_EXACT, &why))
			xb_test_fail(__FILE__, __LINE__, "`%s' refused: %s", good[i], why);
	CHECK(!xb_dns_match_pattern_parse(&p, "*.Acme.CN.", 10, XB_DNS_EXACT, &why));
	CHECK_STR(p.name, "acme.cn");
	CHECK_INT(p.mode, ==, XB_DNS_BELOW);
	CHECK(!xb_dns_match_pattern_parse(&p, "acme.cn", 7, XB_DNS_SUFFIX, &why));
	CHECK_INT(p.mode, ==, XB_DNS_SUFFIX);
	CHECK(!xb_dns_match_pattern_parse(&p, "*", 1, XB_DNS_EXACT, &why));
	CHECK_INT(p.len, ==, 0);
	CHECK_INT(p.mode, ==, XB_DNS_BELOW);
}

TEST(wire_names)
{
	struct xb_dns_match *m = fresh();
	uint8_t w[300];
	const struct {
		const char *wire;
		size_t len;
		long value;
	} cases[] = {
		{ "\4ACME\2Cn\0", 9, 1 },
		{ "\3www\4acme\2cn\0", 13, 2 },
		{ "\7acme.cn\0", 9, -1 },		/* one label holding a dot */
		{ "\3www\4acme\2cn", 12, -1 },		/* no root label within max */
		{ "\3www\4acme\5cn\0", 13, -1 },	/* label runs past max */
		{ "\300\14", 2, -1 },			/* a compression pointer */
		{ "\0", 1, -1 },			/* the root: no root pattern */
	};

	CHECK_INT(add(m, "acme.cn", 1), ==, 0);
	CHECK_INT(add(m, "*.acme.cn", 2), ==, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct xb_dns_entry *e =
			xb_dns_match_lookup_wire(m, (const uint8_t *)cases[i].wire, cases[i].len);

		if ((e ? (long)e->value : -1) != cases[i].value)
			xb_test_fail(__FILE__, __LINE__, "case %zu: %ld, want %ld", i,
				     e ? (long)e->value : -1, cases[i].value);
	}
	/* The longest name: 3 labels of 63, one of 61 and the root label, 255
	 * octets (253 characters as text). */
	CHECK_INT(add(m, "*", 3), ==, 0);
	memset(w, 'x', sizeof(w));
	w[0] = w[64] = w[128] = 63;
	w[192] = 61;
	w[254] = 0;
	CHECK(xb_dns_match_lookup_wire(m, w, 255) != NULL);
	CHECK(xb_dns_match_lookup_wire(m, w, 254) == NULL);	/* cut by max */
	w[192] = 62;
	w[254] = 'x';
	w[255] = 0;
	CHECK(xb_dns_match_lookup_wire(m, w, sizeof(w)) == NULL);	/* 256 octets */
	memset(w, 'x', sizeof(w));
	w[63] = w[127] = w[191] = '.';
	w[253] = '\0';
	CHECK(xb_dns_match_lookup(m, (char *)w, 253) != NULL);
	w[253] = 'x';
	CHECK(xb_dns_match_lookup(m, (char *)w, 254) == NULL);	/* 254 characters */
	CHECK(xb_dns_match_lookup(m, (char *)w, 253) != NULL);
	xb_dns_match_free(m);
}

/* ---- the naive model ---- */

struct ref {
	char name[300];
	int mode;
	uint32_t value;
};

static int depth(const char *s)
{
	int n = *s ? 1 : 0;

	while (*s)
		n += *s++ == '.';
	return n;
}

static bool below(const char *q, const char *base)
{
	size_t lq = strlen(q), lb = strlen(base);

	if (!lb)
		return lq > 0;
	return lq > lb && !strcmp(q + lq - lb, base) && q[lq - lb - 1] == '.';
}

/* Deepest base name first; at the same base, exact (2) over below (1) over suffix (0). */
static const struct ref *ref_lookup(const struct ref *v, size_t n, const char *q)
{
	const struct ref *best = NULL;
	int best_d = -1, best_c = -1;

	for (size_t i = 0; i < n; i++) {
		bool self = !strcmp(q, v[i].name), under = below(q, v[i].name);
		int c = v[i].mode == XB_DNS_EXACT ? 2 : v[i].mode == XB_DNS_BELOW ? 1 : 0;
		bool hit = v[i].mode == XB_DNS_EXACT ? self :
			   v[i].mode == XB_DNS_BELOW ? under : self || under;
		int d = depth(v[i].name);

		if (hit && (d > best_d || (d == best_d && c > best_c))) {
			best = &v[i];
			best_d = d;
			best_c = c;
		}
	}
	return best;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* A random name of 0..max labels from a small alphabet, so that names share
 * suffixes often; lower case. */
static void rand_name(char *out, int max)
{
	static const char *labels[] = { "a", "b", "c", "xn--d", "e-f", "_g" };
	int n = (int)rnd((uint32_t)max + 1);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i)
			strcat(out, ".");
		strcat(out, labels[rnd(6)]);
	}
}

/* Some upper case and sometimes a final dot, which must change nothing. */
static void disguise(char *out, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < n; i++)
		out[i] = rnd(3) ? name[i] : (char)toupper((unsigned char)name[i]);
	if (rnd(4) == 0)
		out[n++] = '.';
	out[n] = '\0';
}

static void ref_put(struct ref *v, size_t *n, const char *name, int mode, uint32_t value)
{
	for (size_t i = 0; i < *n; i++) {
		if (v[i].mode == mode && !strcmp(v[i].name, name)) {
			v[i].value = value;
			return;
		}
	}
	snprintf(v[*n].name, sizeof(v[*n].name), "%s", name);
	v[*n].mode = mode;
	v[(*n)++].value = value;
}

/* Pattern text for (name, mode); the root in SUFFIX mode needs bare = SUFFIX. */
static void model_add(struct xb_dns_match *m, struct ref *v, size_t *n, const char *name,
		      int mode, uint32_t value)
{
	static const char *prefix[] = { "", "*.", "." };
	struct xb_dns_entry e = { .value = value };
	struct xb_dns_pattern p;
	char text[300], body[300];
	const char *why;

	disguise(body, name);
	if (!*name)
		snprintf(text, sizeof(text), "%s", mode == XB_DNS_BELOW ? "*" : ".");
	else
		snprintf(text, sizeof(text), "%s%s", prefix[mode], body);
	if (xb_dns_match_pattern_parse(&p, text, strlen(text), *name ? XB_DNS_EXACT : (enum xb_dns_mode)mode,
				 &why))
		xb_test_fail(__FILE__, __LINE__, "`%s': %s", text, why);
	CHECK_INT(p.mode, ==, mode);
	CHECK_STR(p.name, name);
	CHECK(xb_dns_match_add(m, &p, &e) >= 0);
	ref_put(v, n, name, mode, value);
}

TEST(against_naive_model)
{
	static struct ref v[400];
	size_t lookups = 0;

	for (int round = 0; round < 40; round++) {
		struct xb_dns_match *m = fresh();
		size_t n = 0, patterns = 1 + rnd(300);
		char name[300], q[300];

		for (size_t i = 0; i < patterns; i++) {
			rand_name(name, 4);
			model_add(m, v, &n, name, (int)rnd(3), (uint32_t)i);
		}
		CHECK_INT(xb_dns_match_count(m), ==, n);
		for (int i = 0; i < 500; i++, lookups++) {
			const struct ref *r;
			long got;

			rand_name(name, 6);
			disguise(q, name);
			r = ref_lookup(v, n, name);
			got = look(m, q);
			if (got != (r ? (long)r->value : -1))
				xb_test_fail(__FILE__, __LINE__, "round %d, `%s': %ld, model %ld",
					     round, q, got, r ? (long)r->value : -1);
			if (r && xb_dns_match_lookup(m, q, strlen(q))->mode != r->mode)
				xb_test_fail(__FILE__, __LINE__, "`%s': wrong mode", q);
		}
		xb_dns_match_free(m);
	}
	CHECK_INT(lookups, >=, 10000);
}

/* ---- lists ---- */

/* Parses text as list "t.conf"; *errors gets every message, one per line. */
static int parse(struct xb_dns_match *m, const char *text, enum xb_dns_list_fmt fmt,
		 char *errors, size_t cap)
{
	struct xb_errors errs = { 0 };
	FILE *f = fmemopen(errors, cap, "w");
	int r;

	if (!f)
		xb_test_fail(__FILE__, __LINE__, "fmemopen: %s", strerror(errno));
	r = xb_dns_list_parse(m, "t.conf", text, strlen(text), fmt, 42, &errs);
	xb_errors_print(&errs, f);
	fclose(f);
	xb_errors_free(&errs);
	return r;
}

static const struct xb_dns_entry *find(const struct xb_dns_match *m, const char *name)
{
	return xb_dns_match_lookup(m, name, strlen(name));
}

static void check_entry(const struct xb_dns_match *m, const char *name, int kind,
			const char *arg)
{
	const struct xb_dns_entry *e = find(m, name);

	if (!e)
		xb_test_fail(__FILE__, __LINE__, "`%s': no match", name);
	if (e->kind != kind || e->value != 42 || (arg ? !e->arg || strcmp(arg, e->arg) : !!e->arg))
		xb_test_fail(__FILE__, __LINE__, "`%s': kind %d value %u arg `%s'", name, e->kind,
			     e->value, e->arg ? e->arg : "(null)");
}

TEST(dnsmasq_directives)
{
	const char *text =
		"# comment\n"
		"\n"
		"server=/a.cn/b.cn/114.114.114.114\n"
		"server=/c.cn/#\n"
		"server=/local.lan/\n"
		"local=/l2.lan/\n"
		"address=/ads.example/0.0.0.0\r\n"
		"address=/nx.example/\n"
		"address=/null.example/#\n"
		"nftset=/set.cn/4#inet#fw#set\n"
		"ipset=/ips.cn/s4,s6\n"
		"server=/*.below.cn/1.2.3.4\n"
		"server=/.dot.cn/1.2.3.4\n"
		"   server=/SPACE.cn./5.6.7.8    # after a space: a comment\n"
		"\t# indented comment\n";
	struct xb_dns_match *m = fresh();
	char errors[1024] = "";

	CHECK_INT(parse(m, text, XB_DNS_LIST_DNSMASQ, errors, sizeof(errors)), ==, 0);
	CHECK_STR(errors, "");
	CHECK_INT(xb_dns_match_count(m), ==, 13);
	check_entry(m, "a.cn", XB_DNS_SERVER, "114.114.114.114");
	check_entry(m, "www.b.cn", XB_DNS_SERVER, "114.114.114.114");
	check_entry(m, "c.cn", XB_DNS_SERVER, "#");
	check_entry(m, "x.local.lan", XB_DNS_LOCAL, NULL);
	check_entry(m, "l2.lan", XB_DNS_LOCAL, NULL);
	check_entry(m, "ads.example", XB_DNS_ADDRESS, "0.0.0.0");
	check_entry(m, "nx.example", XB_DNS_ADDRESS, NULL);
	check_entry(m, "null.example", XB_DNS_ADDRESS, "#");
	check_entry(m, "set.cn", XB_DNS_NFTSET, "4#inet#fw#set");
	check_entry(m, "ips.cn", XB_DNS_IPSET, "s4,s6");
	CHECK(find(m, "below.cn") == NULL);
	check_entry(m, "x.below.cn", XB_DNS_SERVER, "1.2.3.4");
	check_entry(m, "dot.cn", XB_DNS_SERVER, "1.2.3.4");
	check_entry(m, "space.cn", XB_DNS_SERVER, "5.6.7.8");
	CHECK_INT(find(m, "a.cn")->mode, ==, XB_DNS_SUFFIX);
	CHECK(find(m, "cn") == NULL);
	/* "#" is every name. */
	CHECK_INT(parse(m, "address=/#/\n", XB_DNS_LIST_DNSMASQ, errors, sizeof(errors)), ==, 0);
	check_entry(m, "cn", XB_DNS_ADDRESS, NULL);
	check_entry(m, "", XB_DNS_ADDRESS, NULL);
	check_entry(m, "a.cn", XB_DNS_SERVER, "114.114.114.114");
	xb_dns_match_free(m);
}

TEST(dnsmasq_errors)
{
	const char *text =
		"foo=bar\n"
		"server=/ok.cn/1.1.1.1\n"
		"server=8.8.8.8\n"
		"nftset=/a.cn/\n"
		"server=/a..cn/good.cn/1.1.1.1\n"
		"server=//1.1.1.1\n"
		"address=/*ads.cn/\n"
		"server=/a.cn\n"
		"domain-needed\n"
		"server=/x.cn/1.1.1.1 extra\n"
		"ipset=/ok2.cn/\n";
	const char *want =
		"t.conf:1: unknown dnsmasq directive `foo'\n"
		"t.conf:3: server=8.8.8.8: want server=/DOMAIN/[DOMAIN/...][ADDR]\n"
		"t.conf:4: nftset= needs a set after the last `/'\n"
		"t.conf:5: domain `a..cn': empty label\n"
		"t.conf:6: empty domain (dnsmasq's `//', unqualified names) is not supported\n"
		"t.conf:7: domain `*ads.cn': `*' is allowed only as the whole first label (`*.name')\n"
		"t.conf:8: server=/a.cn: want server=/DOMAIN/[DOMAIN/...][ADDR]\n"
		"t.conf:9: unknown dnsmasq directive `domain-needed'\n"
		"t.conf:10: `server=/x.cn/1.1.1.1 extra': unexpected space\n"
		"t.conf:11: ipset= needs a set after the last `/'\n";
	struct xb_dns_match *m = fresh();
	char errors[2048] = "";

	CHECK_INT(parse(m, text, XB_DNS_LIST_DNSMASQ, errors, sizeof(errors)), ==, -1);
	CHECK_STR(errors, want);
	/* The good lines and domains are in: the caller decides what to keep. */
	CHECK_INT(xb_dns_match_count(m), ==, 2);
	CHECK(find(m, "ok.cn") != NULL);
	CHECK(find(m, "good.cn") != NULL);
	xb_dns_match_free(m);
}

TEST(plain_lists)
{
	const char *text = "acme.cn\n*.b.cn\n.c.cn\n# comment\n  d.cn  # note\r\n";
	struct xb_dns_match *pat = fresh(), *dom = fresh();
	char errors[1024] = "";

	CHECK_INT(parse(pat, text, XB_DNS_LIST_PATTERNS, errors, sizeof(errors)), ==, 0);
	CHECK_INT(parse(dom, text, XB_DNS_LIST_DOMAINS, errors, sizeof(errors)), ==, 0);
	CHECK_STR(errors, "");
	CHECK_INT(xb_dns_match_count(pat), ==, 4);
	CHECK_INT(look(pat, "acme.cn"), ==, 42);
	CHECK_INT(look(pat, "www.acme.cn"), ==, -1);	/* bare = exact */
	CHECK_INT(look(dom, "www.acme.cn"), ==, 42);	/* bare = itself and below */
	CHECK_INT(look(pat, "b.cn"), ==, -1);
	CHECK_INT(look(dom, "b.cn"), ==, -1);
	CHECK_INT(look(dom, "x.b.cn"), ==, 42);
	CHECK_INT(look(pat, "c.cn"), ==, 42);
	CHECK_INT(look(pat, "x.c.cn"), ==, 42);
	CHECK_INT(look(pat, "d.cn"), ==, 42);
	CHECK_INT(find(pat, "d.cn")->kind, ==, XB_DNS_RULE);

	CHECK_INT(parse(pat, "ok.cn\n0.0.0.0 ads.example\nx..y\n\n*x.cn\n",
			XB_DNS_LIST_PATTERNS, errors, sizeof(errors)), ==, -1);
	CHECK_STR(errors, "t.conf:2: `0.0.0.0 ads.example': one pattern per line\n"
			  "t.conf:3: `x..y': empty label\n"
			  "t.conf:5: `*x.cn': `*' is allowed only as the whole first label (`*.name')\n");
	xb_dns_match_free(pat);
	xb_dns_match_free(dom);
}

/* The way to reload without a half-updated matcher: load into a fresh one,
 * keep the old one when anything failed. */
TEST(all_or_nothing_reload)
{
	char path[] = "/tmp/xb-dns-list-XXXXXX", errors[1024] = "";
	const char *bad = "server=/new.cn/1.1.1.1\nbogus=1\n";
	struct xb_dns_match *cur = fresh(), *next = fresh();
	struct xb_errors errs = { 0 };
	FILE *f;
	int fd;

	CHECK_INT(parse(cur, "server=/old.cn/1.1.1.1\n", XB_DNS_LIST_DNSMASQ, errors,
			sizeof(errors)), ==, 0);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, bad, strlen(bad)), ==, strlen(bad));
	close(fd);
	CHECK_INT(xb_dns_list_load(next, path, XB_DNS_LIST_DNSMASQ, 1, &errs), ==, -1);
	unlink(path);
	CHECK_INT(errs.n, ==, 1);
	CHECK_INT(errs.v[0].line, ==, 2);
	CHECK_STR(errs.v[0].file, path);
	xb_dns_match_free(next);		/* failed: keep cur */
	CHECK(find(cur, "old.cn") != NULL);
	CHECK(find(cur, "new.cn") == NULL);

	CHECK_INT(xb_dns_list_load(cur, "/nonexistent/list.conf", XB_DNS_LIST_DNSMASQ, 1, &errs),
		  ==, -1);
	f = fmemopen(errors, sizeof(errors), "w");
	CHECK(f != NULL);
	xb_errors_print(&errs, f);
	fclose(f);
	CHECK(strstr(errors, "/nonexistent/list.conf: cannot read: No such file or directory\n"));
	CHECK_INT(xb_dns_match_count(cur), ==, 1);
	xb_errors_free(&errs);
	xb_dns_match_free(cur);
}

/* A list that is not a regular file is refused without being read or
 * waited on: a FIFO's open waits for a writer (a reload would hang for
 * good), /dev/zero never ends (it was read until memory ran out). A regular
 * file over XB_DNS_LIST_MAX_BYTES is refused before it is read. SIGALRM
 * fails the test if a load blocks. */
TEST(list_not_regular_or_too_large)
{
	char dir[] = "/tmp/xb-dns-list-XXXXXX", fifo[64], big[64], errors[2048] = "", want[512];
	struct xb_dns_match *m = fresh();
	struct xb_errors errs = { 0 };
	FILE *f;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(fifo, sizeof(fifo), "%s/pipe.conf", dir);
	snprintf(big, sizeof(big), "%s/big.conf", dir);
	CHECK(mkfifo(fifo, 0644) == 0);
	fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)XB_DNS_LIST_MAX_BYTES + 1) == 0);
	close(fd);
	alarm(10);
	CHECK_INT(xb_dns_list_load(m, fifo, XB_DNS_LIST_DNSMASQ, 1, &errs), ==, -1);
	CHECK_INT(xb_dns_list_load(m, "/dev/zero", XB_DNS_LIST_DNSMASQ, 1, &errs), ==, -1);
	CHECK_INT(xb_dns_list_load(m, dir, XB_DNS_LIST_DNSMASQ, 1, &errs), ==, -1);
	CHECK_INT(xb_dns_list_load(m, big, XB_DNS_LIST_DNSMASQ, 1, &errs), ==, -1);
	alarm(0);
	f = fmemopen(errors, sizeof(errors), "w");
	CHECK(f != NULL);
	xb_errors_print(&errs, f);
	fclose(f);
	snprintf(want, sizeof(want),
		 "%s: not a regular file\n/dev/zero: not a regular file\n%s: not a regular file\n"
		 "%s: larger than %u MiB\n", fifo, dir, big, XB_DNS_LIST_MAX_BYTES >> 20);
	CHECK_STR(errors, want);
	CHECK_INT(xb_dns_match_count(m), ==, 0);
	unlink(fifo);
	unlink(big);
	rmdir(dir);
	xb_errors_free(&errs);
	xb_dns_match_free(m);
}

/* ---- the real list ---- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The server= names of the file, one per array element, in names[]. */
static size_t server_names(const char *path, char ***names)
{
	FILE *f = fopen(path, "r");
	char line[512], **v = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *end;

		if (strncmp(line, "server=/", 8) || !(end = strchr(line + 8, '/')))
			continue;
		if (n == cap && !(v = realloc(v, (cap = cap ? 2 * cap : 1024) * sizeof(*v))))
			abort();
		*end = '\0';
		if (!(v[n++] = strdup(line + 8)))
			abort();
	}
	fclose(f);
	*names = v;
	return n;
}

/* ns per lookup of names[0..n), rounds times over: dotted text, or (wire)
 * the names turned to wire format first, outside the timing. */
static double time_lookups(const struct xb_dns_match *m, char **names, size_t n, int rounds,
			   bool wire, size_t *hits)
{
	uint8_t *w = wire ? malloc(n * 256) : NULL;
	double t;

	if (wire && !w)
		abort();
	for (size_t i = 0; wire && i < n; i++)
		to_wire(w + 256 * i, names[i]);
	*hits = 0;
	t = now();
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++)
			*hits += (wire ? xb_dns_match_lookup_wire(m, w + 256 * i, 256) :
				  xb_dns_match_lookup(m, names[i], strlen(names[i]))) != NULL;
	t = (now() - t) * 1e9 / ((double)n * rounds);
	free(w);
	return t;
}

TEST(china_list)
{
	char buf[4096];
	const char *path = getenv("XB_CHINA_LIST");
	struct xb_errors errs = { 0 };
	struct xb_dns_match *m;
	char **names = NULL, **probe;
	size_t n, hits;
	double t, hit_ns, wire_ns, miss_ns;
	long rss;

	if (!path) {
		snprintf(buf, sizeof(buf), "%s/" CHINA_LIST, getenv("XB_DATA") ? getenv("XB_DATA") : "tests/data");
		path = buf;
	}
	if (access(path, R_OK))
		SKIP("%s: %s (it is in the repository under tests/data; set XB_DATA to that directory or XB_CHINA_LIST to the list)",
		     path, strerror(errno));
	n = server_names(path, &names);
	CHECK_INT(n, >, 100000);
	m = fresh();
	rss = rss_kb();
	t = now();
	CHECK_INT(xb_dns_list_load(m, path, XB_DNS_LIST_DNSMASQ, 7, &errs), ==, 0);
	t = now() - t;
	rss = rss_kb() - rss;
	CHECK_INT(errs.n, ==, 0);
	CHECK_INT(xb_dns_match_count(m), ==, n);	/* every server= line, no duplicates */
	CHECK_INT(xb_dns_match_replaced(m), ==, 0);
	CHECK_INT(look(m, "baidu.com"), ==, 7);
	CHECK_INT(look(m, "WWW.Baidu.COM."), ==, 7);
	CHECK_STR(find(m, "www.qq.com")->arg, "114.114.114.114");
	CHECK_INT(look(m, "gov.cn"), ==, 7);		/* server=/cn/ */
	CHECK_INT(look(m, "xn--55qx5d.xn--fiqs8s"), ==, 7);
	CHECK_INT(look(m, "webnovel.com"), ==, 7);
	CHECK_INT(look(m, "zoom.us"), ==, -1);		/* commented out in the list */
	CHECK_INT(look(m, "www.bing.com"), ==, -1);
	CHECK_INT(look(m, "example.org"), ==, -1);
	CHECK_INT(look(m, "notbaidu.com"), ==, -1);
	printf("# note: %zu names loaded in %.0f ms; matcher %.1f MB allocated, RSS +%.1f MB\n",
	       n, t * 1e3, (double)xb_dns_match_memory(m) / (1 << 20), (double)rss / 1024);

	/* Hits: "www." under every listed name; misses: a sibling of every name. */
	probe = calloc(n, sizeof(*probe));
	CHECK(probe != NULL);
	for (size_t i = 0; i < n; i++)
		if (asprintf(&probe[i], "www.%s", names[i]) < 0)
			abort();
	hit_ns = time_lookups(m, probe, n, 5, false, &hits);
	CHECK_INT(hits, ==, 5 * n);
	wire_ns = time_lookups(m, probe, n, 5, true, &hits);
	CHECK_INT(hits, ==, 5 * n);
	for (size_t i = 0; i < n; i++) {
		char *dot = strrchr(names[i], '.');

		free(probe[i]);
		if (asprintf(&probe[i], "www.zz-not-listed-%zu%s", i, dot ? dot : "") < 0)
			abort();
	}
	miss_ns = time_lookups(m, probe, n, 5, false, &hits);
	CHECK_INT(hits, <, n / 100);	/* only names under a listed TLD (cn, top, ...) */
	printf("# note: lookup %.0f ns per hit (www.NAME; %.0f ns as wire), %.0f ns per miss "
	       "(www.zz-not-listed-N.TLD)\n", hit_ns, wire_ns, miss_ns);
	for (size_t i = 0; i < n; i++) {
		free(probe[i]);
		free(names[i]);
	}
	free(probe);
	free(names);
	xb_errors_free(&errs);
	xb_dns_match_free(m);
}
