/* The policy compiler (policy/compile.h): the routing plan, the nftables
 * script against golden files, and the script in a real kernel.
 *
 *   golden   deploy/examples/small.conf and tests/compile/NAME.conf compile
 *            to exactly tests/compile/NAME.nft. XB_UPDATE_GOLDEN=1 rewrites
 *            the .nft files from what the compiler writes now (review the
 *            diff before committing).
 *   kernel   in a private network namespace (root only, else skipped):
 *            every golden script loads, loads again over itself, and
 *            `nft list' shows the sets and rules; packets written into a
 *            TUN device named like the device interface are judged by the
 *            rule the policy says (the rules' counters tell).
 *
 * Run from the top of the tree (make test does). Policies are loaded from a
 * temporary copy whose key files are made 0600 (git keeps no modes), by
 * relative name, so the FILE:LINE comments do not depend on where the copy
 * is.
 */
#include "tests/lib/check.h"
#include "gateway/kernel/nft.h"
#include "policy/compile.h"
#include "tunnel/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

/* The last command's output. */
static char *out;
#define run(cmd) (out = xb_test_run(cmd))

static char root[PATH_MAX - 256];
static char tmp[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		xb_test_fail(__FILE__, __LINE__, "command failed: %s", cmd);
}

/* A temporary copy of the example and test policies, keys made 0600. */
static void copy_tree(void)
{
	if (!root[0] && !getcwd(root, sizeof(root)))
		xb_test_fail(__FILE__, __LINE__, "getcwd: %s", strerror(errno));
	if (access("deploy/examples/small.conf", R_OK) != 0)
		xb_test_fail(__FILE__, __LINE__, "run from the top of the tree (make test)");
	strcpy(tmp, "/tmp/xb-test-compile.XXXXXX");
	CHECK(mkdtemp(tmp) != NULL);
	sh("cp -r deploy/examples '%s/examples' && cp -r tests/compile tests/policy '%s/' && "
	   "chmod 600 '%s'/examples/keys/* '%s'/policy/keys/*", tmp, tmp, tmp, tmp);
}

static void remove_tree(void)
{
	CHECK(chdir(root) == 0);
	sh("rm -rf '%s'", tmp);
}

/* Loads DIR/NAME.conf of the copy (DIR "examples" or "compile") and
 * allocates pool addresses from nothing. */
static struct xb_policy *load(const char *dir, const char *name)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmp, dir);
	CHECK(chdir(path) == 0);
	snprintf(path, sizeof(path), "%s.conf", name);
	p = xb_policy_load(path, &errs);
	if (p && xb_policy_allocate(p, NULL, &errs) < 0) {
		xb_policy_free(p);
		p = NULL;
	}
	if (!p)
		xb_errors_print(&errs, stdout);
	xb_errors_free(&errs);
	CHECK(chdir(root) == 0);
	CHECK(p != NULL);
	return p;
}

static char *compile(const struct xb_policy *p, const struct xb_compile_opts *o)
{
	struct xb_errors errs = { 0 };
	struct xb_plan plan;
	char *s;

	CHECK_INT(xb_plan_build(p, &plan, &errs), ==, 0);
	xb_errors_free(&errs);
	s = xb_compile_nft(p, &plan, o);
	xb_plan_free(&plan);
	CHECK(s != NULL);
	return s;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	CHECK(s && fread(s, 1, (size_t)n, f) == (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Compares with tests/compile/NAME.nft, or rewrites it. */
static void golden(const char *name, const char *got)
{
	char path[PATH_MAX];
	const char *upd = getenv("XB_UPDATE_GOLDEN");
	char *want;

	snprintf(path, sizeof(path), "%s/tests/compile/%s.nft", root, name);
	if (upd && !strcmp(upd, "1")) {
		FILE *f = fopen(path, "w");

		CHECK(f && fputs(got, f) >= 0 && fclose(f) == 0);
		return;
	}
	want = read_all(path);
	if (!want)
		xb_test_fail(__FILE__, __LINE__, "%s: %s (XB_UPDATE_GOLDEN=1 writes it)", path,
			     strerror(errno));
	if (strcmp(want, got)) {
		size_t i = 0;

		while (want[i] && want[i] == got[i])
			i++;
		printf("%s differs at byte %zu:\n--- want\n%.200s\n--- got\n%.200s\n", path, i,
		       want + i, got + i);
		free(want);
		xb_test_fail(__FILE__, __LINE__, "%s: output differs", name);
	}
	free(want);
}

static const struct { const char *dir, *name; } cases[] = {
	{ "examples", "small" }, { "compile", "families" }, { "compile", "v4only" },
	{ "compile", "lists" },
};

TEST(golden_files)
{
	copy_tree();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xb_policy *p = load(cases[i].dir, cases[i].name);
		char *s = compile(p, NULL), *again = compile(p, NULL);

		CHECK_STR(s, again);	/* deterministic */
		golden(cases[i].name, s);
		free(s);
		free(again);
		xb_policy_free(p);
	}
	remove_tree();
}

/* A policy made in memory: n tunnels "t0".., rules added with via lists;
 * enough for the plan, which reads nothing else. */
struct fake {
	struct xb_policy p;
	struct xb_tunnel t[16];
	struct xb_rule r[300];
	struct xb_via via[300][3];
	char names[316][8];
};

static void fake_init(struct fake *f, size_t n_tunnels)
{
	memset(f, 0, sizeof(*f));
	f->p.tunnels = f->t;
	f->p.n_tunnels = n_tunnels;
	f->p.rules = f->r;
	for (size_t i = 0; i < n_tunnels; i++) {
		snprintf(f->names[300 + i], 8, "t%zu", i);
		f->t[i].name = f->names[300 + i];
		f->t[i].src = (struct xb_src){ "fake.conf", (unsigned)i + 1 };
	}
}

/* Adds a rule; via: tunnel indices, -1 "best", -2 "internet", -3 ends;
 * no via at all: a deny rule. */
static void fake_rule(struct fake *f, int a, int b, int c)
{
	size_t i = f->p.n_rules++;
	struct xb_rule *r = &f->r[i];
	int v[3] = { a, b, c };

	snprintf(f->names[i], 8, "r%zu", i);
	r->name = f->names[i];
	r->src = (struct xb_src){ "fake.conf", (unsigned)(100 + i) };
	r->via = f->via[i];
	r->action = a == -3 ? XB_ACTION_DENY : XB_ACTION_ALLOW;
	for (size_t k = 0; k < 3 && v[k] != -3; k++) {
		struct xb_via *x = &r->via[r->n_via++];

		x->kind = v[k] >= 0 ? XB_VIA_TUNNEL : v[k] == -1 ? XB_VIA_BEST : XB_VIA_INTERNET;
		x->tunnel.idx = v[k] >= 0 ? (size_t)v[k] : 0;
	}
}

TEST(plan_small_conf)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	struct xb_plan pl;
	static const char *const names[] = { "cmi", "ctg", "cmi,ctg", "best", "ctg,internet" };

	copy_tree();
	p = load("examples", "small");
	CHECK_INT(xb_plan_build(p, &pl, &errs), ==, 0);
	CHECK_INT(pl.n_paths, ==, 5);
	for (size_t i = 0; i < pl.n_paths; i++) {
		CHECK_STR(pl.paths[i].name, names[i]);
		CHECK_INT(pl.paths[i].id, ==, i + 1);
		CHECK_INT(pl.paths[i].mark, ==, (i + 1) << 8);
		CHECK_INT(pl.paths[i].table, ==, 51801 + i);
		CHECK_INT(pl.paths[i].priority, ==, 10801 + i);
	}
	CHECK(pl.paths[3].best && pl.paths[3].n_tunnels == 2);
	CHECK(pl.paths[4].internet_fallback && !pl.paths[2].internet_fallback);
	CHECK_INT(pl.paths[2].n_tunnels, ==, 2);
	CHECK_INT(pl.paths[2].tunnels[0], ==, 0);
	CHECK_INT(pl.paths[2].tunnels[1], ==, 1);
	/* erp, build, web, rest */
	CHECK_INT(pl.rule_path[0], ==, 2);
	CHECK_INT(pl.rule_path[1], ==, 3);
	CHECK_INT(pl.rule_path[2], ==, 4);
	CHECK_INT(pl.rule_path[3], ==, -1);
	xb_plan_free(&pl);
	xb_errors_free(&errs);
	xb_policy_free(p);
	remove_tree();
}

TEST(plan_shares_paths)
{
	static struct fake f;
	struct xb_errors errs = { 0 };
	struct xb_plan pl;

	fake_init(&f, 3);
	fake_rule(&f, 1, 0, -3);	/* t1,t0: path 3 */
	fake_rule(&f, 2, -3, -3);	/* t2 alone: its own path 2 */
	fake_rule(&f, -2, -3, -3);	/* internet alone: main table */
	fake_rule(&f, 1, 0, -3);	/* shares path 3 */
	fake_rule(&f, 0, 1, -3);	/* another order: path 4 */
	fake_rule(&f, -3, -3, -3);	/* deny */
	fake_rule(&f, 1, 0, -2);	/* with the fallback: path 5 */
	fake_rule(&f, -1, -3, -3);	/* best: path 6 */
	fake_rule(&f, -1, -3, -3);
	CHECK_INT(xb_plan_build(&f.p, &pl, &errs), ==, 0);
	CHECK_INT(pl.n_paths, ==, 7);
	static const int want[] = { 3, 2, -1, 3, 4, -1, 5, 6, 6 };
	for (size_t i = 0; i < 9; i++)
		CHECK_INT(pl.rule_path[i], ==, want[i]);
	CHECK_STR(pl.paths[3].name, "t1,t0");
	CHECK_STR(pl.paths[4].name, "t0,t1");
	CHECK_STR(pl.paths[5].name, "t1,t0,internet");
	CHECK_STR(pl.paths[6].name, "best");
	CHECK_INT(pl.paths[6].n_tunnels, ==, 3);
	CHECK_INT(errs.n, ==, 0);
	xb_plan_free(&pl);
}

/* 16 tunnels and ordered pairs of them: 16 + 240 paths wanted, 255 fit. */
TEST(plan_too_many_paths)
{
	static struct fake f;
	struct xb_errors errs = { 0 };
	struct xb_plan pl;
	char buf[256];
	FILE *m;

	fake_init(&f, 16);
	for (int a = 0; a < 16; a++)
		for (int b = 0; b < 16; b++)
			if (a != b && f.p.n_rules < 239)
				fake_rule(&f, a, b, -3);
	CHECK_INT(xb_plan_build(&f.p, &pl, &errs), ==, 0);
	CHECK_INT(pl.n_paths, ==, 255);
	CHECK_INT(pl.paths[254].mark, ==, 0xff00);
	CHECK_INT(pl.paths[254].table, ==, 51800 + 255);
	xb_plan_free(&pl);

	fake_rule(&f, 15, 14, -3);	/* rule r239: the 256th path */
	fake_rule(&f, 0, 1, -3);
	CHECK_INT(xb_plan_build(&f.p, &pl, &errs), ==, -1);
	CHECK(pl.paths == NULL && pl.n_paths == 0 && pl.rule_path == NULL);
	CHECK_INT(errs.n, ==, 1);
	m = fmemopen(buf, sizeof(buf), "w");
	xb_errors_print(&errs, m);
	fclose(m);
	CHECK(strstr(buf, "fake.conf:339: rule \"r239\": ") == buf);
	CHECK(strstr(buf, "255"));
	xb_errors_free(&errs);
}

/* The posture callback: which rule it is asked about, and its answer. */
struct answers {
	const struct xb_policy *p;
	const char *yes;	/* the device that passes */
	size_t calls, bad_calls;
};

static bool posture_ok(void *ctx, size_t rule, size_t device)
{
	struct answers *a = ctx;

	a->calls++;
	if (!a->p->rules[rule].n_posture)
		a->bad_calls++;
	return a->yes && !strcmp(a->p->devices[device].name, a->yes);
}

/* The elements line of set NAME in script s ("" when it has none). */
static const char *elements(const char *s, const char *name)
{
	static char line[512];
	char head[128];
	const char *a, *e, *end;

	snprintf(head, sizeof(head), "\tset %s {\n", name);
	if (!(a = strstr(s, head)))
		return NULL;
	end = strstr(a, "\t}\n");
	e = strstr(a, "elements = {");
	if (!e || e > end)
		return "";
	snprintf(line, sizeof(line), "%.*s", (int)(strchr(e, '\n') - e), e);
	return line;
}

TEST(posture_decides_set_members)
{
	struct xb_policy *p;
	struct answers a = { 0 };
	struct xb_compile_opts o = { posture_ok, &a };
	char *s;

	copy_tree();
	p = load("compile", "families");
	a.p = p;
	s = compile(p, &o);
	CHECK_INT(a.calls, ==, 6);	/* rule "posture" only: 3 devices, 2 sets */
	CHECK_INT(a.bad_calls, ==, 0);
	CHECK_STR(elements(s, "r_posture_dev4"), "");
	CHECK_STR(elements(s, "r_posture_dev6"), "");
	free(s);

	a.yes = "c";
	s = compile(p, &o);
	CHECK_STR(elements(s, "r_posture_dev4"), "elements = { 198.51.100.3 }");
	CHECK_STR(elements(s, "r_posture_dev6"), "elements = { 2001:db8:100::3 }");
	/* other rules do not depend on it */
	CHECK_STR(elements(s, "r_dns-names_dev4"),
		  "elements = { 198.51.100.2, 198.51.100.77, 198.51.100.3 }");
	free(s);

	a.yes = "b";
	s = compile(p, &o);
	CHECK_STR(elements(s, "r_posture_dev4"), "elements = { 198.51.100.77 }");
	free(s);

	s = compile(p, NULL);	/* nobody passes yet */
	CHECK_STR(elements(s, "r_posture_dev4"), "");
	free(s);
	xb_policy_free(p);
	remove_tree();
}

TEST(set_names)
{
	static struct fake f;
	char buf[XB_SET_NAME_MAX];

	fake_init(&f, 0);
	fake_rule(&f, -3, -3, -3);
	f.p.gateway.has_pool4 = true;
	f.r[0].name = "9-lives.x";
	CHECK(!xb_compile_set_name(buf, sizeof(buf), &f.p, 0, XB_SET_DEV4));
	CHECK_STR(buf, "r_9-lives.x_dev4");
	f.r[0].n_groups = 1;
	CHECK(xb_compile_set_name(buf, sizeof(buf), &f.p, 0, XB_SET_DEV4));
	CHECK(!xb_compile_set_name(buf, sizeof(buf), &f.p, 0, XB_SET_DEV6));	/* no pool6 */
	CHECK_STR(buf, "r_9-lives.x_dev6");
	f.r[0].name = NULL;
	CHECK(!xb_compile_set_name(buf, sizeof(buf), &f.p, 0, XB_SET_DNS4));
	CHECK_STR(buf, "r_rule1_dns4");
	f.r[0].name = "a";
	CHECK(!xb_compile_set_name(buf, 5, &f.p, 0, XB_SET_TO4));	/* truncated, terminated */
	CHECK_STR(buf, "r_a_");
}

/* Rules selecting the same devices under the same posture share the first
 * one's device set, whatever the order they list groups in; a different
 * posture or group makes a set of its own. */
TEST(device_sets_shared)
{
	static struct fake f;
	struct xb_ref g01[2] = { { .idx = 0 }, { .idx = 1 } }, g10[2] = { { .idx = 1 }, { .idx = 0 } };
	struct xb_ref prof = { .idx = 0 };
	struct xb_errors errs = { 0 };
	struct xb_plan pl;
	char buf[XB_SET_NAME_MAX];
	char *s;

	fake_init(&f, 0);
	f.p.gateway.has_pool4 = true;
	for (int i = 0; i < 4; i++)
		fake_rule(&f, -3, -3, -3);
	f.r[0].groups = g01, f.r[0].n_groups = 2;
	f.r[1].groups = g10, f.r[1].n_groups = 2;
	f.r[2].groups = g10, f.r[2].n_groups = 2, f.r[2].posture = &prof, f.r[2].n_posture = 1;
	f.r[3].groups = g01, f.r[3].n_groups = 1;
	CHECK(xb_compile_set_name(buf, sizeof(buf), &f.p, 1, XB_SET_DEV4));
	CHECK_STR(buf, "r_r0_dev4");
	CHECK(xb_compile_set_name(buf, sizeof(buf), &f.p, 2, XB_SET_DEV4));
	CHECK_STR(buf, "r_r2_dev4");
	CHECK(xb_compile_set_name(buf, sizeof(buf), &f.p, 3, XB_SET_DEV4));
	CHECK_STR(buf, "r_r3_dev4");
	xb_compile_set_name(buf, sizeof(buf), &f.p, 1, XB_SET_TO4);
	CHECK_STR(buf, "r_r1_to4");		/* only device sets are shared */
	CHECK_INT(xb_plan_build(&f.p, &pl, &errs), ==, 0);
	s = xb_compile_nft(&f.p, &pl, NULL);
	xb_plan_free(&pl);
	CHECK(s != NULL);
	CHECK(strstr(s, "set r_r0_dev4 {") != NULL);
	CHECK(strstr(s, "set r_r1_dev4") == NULL);
	CHECK(strstr(s, "set r_r2_dev4 {") != NULL);
	free(s);
}

static void nft_load(struct xb_nft *n, const char *script)
{
	char *err = NULL;

	if (xb_nft_run(n, script, &err) < 0) {
		printf("%s", err ? err : "(no error text)\n");
		free(err);
		xb_test_fail(__FILE__, __LINE__, "the script did not load");
	}
}

/* Every golden script loads into a fresh namespace, and again over itself
 * (the replace path); nft lists what was compiled. */
TEST(kernel_loads_and_replaces)
{
	struct xb_nft n;

	xb_test_private_netns();	/* first: a skip leaves nothing behind */
	copy_tree();
	CHECK_INT(xb_nft_open(&n), ==, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xb_policy *p = load(cases[i].dir, cases[i].name);
		char *s = compile(p, NULL);

		nft_load(&n, s);
		nft_load(&n, s);
		run("nft list table inet xborder");
		CHECK(strstr(out, "chain from_devices {"));
		CHECK(strstr(out, "counter packets 0 bytes 0 drop comment \"default deny\""));
		if (!strcmp(cases[i].name, "small")) {
			CHECK(strstr(out, "set r_build_dev4 {"));
			CHECK(strstr(out, "elements = { 198.51.100.2 }"));
			CHECK(strstr(out, "elements = { 2001:db8:100::3 }"));
			CHECK(strstr(out, "elements = { 2001:db8:cafe::/48 }"));
			CHECK(strstr(out, "ip saddr @r_erp_dev4 ip daddr @r_erp_to4 tcp dport { 443, 8000-8100 }"));
			CHECK(strstr(out, "meta mark set meta mark & 0xffff03ff | 0x00000300 accept"
					  " comment \"rule erp (small.conf:40)\""));
		} else if (!strcmp(cases[i].name, "families")) {
			/* auto-merge: 203.0.113.7 is inside the /24 */
			CHECK(strstr(out, "elements = { 203.0.113.0/24 }"));
			CHECK(strstr(out, "set r_1st.rule_dev4 {"));
		}
		CHECK_STR(run("nft list tables"), "table inet xborder\n");	/* one, replaced */
		free(s);
		xb_policy_free(p);
	}
	xb_nft_close(&n);
	remove_tree();
}

/* Packets from devices: written into a TUN device that plays the device
 * interface, so the kernel receives them as if WireGuard had decrypted
 * them; tunnels and the uplink are TUN devices too, read back. */
static uint32_t sum16(uint32_t sum, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A TCP SYN or an empty UDP datagram, both checksums right (conntrack
 * does not NAT packets with a wrong one). */
static size_t ip4_packet(uint8_t *b, const char *src, const char *dst, uint8_t proto,
			 uint16_t dport)
{
	size_t l4 = proto == IPPROTO_TCP ? 20 : 8, len = 20 + l4;
	uint8_t *t = b + 20;
	uint16_t c;

	memset(b, 0, len);
	b[0] = 0x45;
	b[3] = (uint8_t)len;
	b[8] = 64;
	b[9] = proto;
	inet_pton(AF_INET, src, b + 12);
	inet_pton(AF_INET, dst, b + 16);
	c = fold(sum16(0, b, 20));
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	t[0] = 0x9c;			/* source port 40000 */
	t[1] = 0x40;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	if (proto == IPPROTO_TCP) {
		t[12] = 0x50;		/* data offset: 5 words */
		t[13] = 0x02;		/* SYN */
		t[14] = 0xff;		/* window */
	} else {
		t[5] = 8;		/* UDP length */
	}
	c = fold(sum16(sum16(proto + (uint32_t)l4, b + 12, 8), t, l4));
	t[proto == IPPROTO_TCP ? 16 : 6] = (uint8_t)(c >> 8);
	t[proto == IPPROTO_TCP ? 17 : 7] = (uint8_t)c;
	return len;
}

static size_t ip6_udp(uint8_t *b, const char *src, const char *dst, uint16_t dport)
{
	memset(b, 0, 48);
	b[0] = 0x60;
	b[5] = 8;			/* payload length */
	b[6] = IPPROTO_UDP;
	b[7] = 64;
	inet_pton(AF_INET6, src, b + 8);
	inet_pton(AF_INET6, dst, b + 24);
	b[40] = 0x9c;
	b[41] = 0x40;
	b[42] = (uint8_t)(dport >> 8);
	b[43] = (uint8_t)dport;
	b[45] = 8;
	return 48;
}

/* Packets counted by the from_devices lines whose text holds what. */
static long hits(const char *what)
{
	long sum = 0;
	char *save = NULL;

	run("nft list chain inet xborder from_devices; nft list chain inet xborder forward");
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *c = strstr(l, "counter packets ");

		if (c && strstr(l, what))
			sum += atol(c + 16);
	}
	return sum;
}

/* Waits (up to 1 s) until the lines holding what counted n packets. */
static bool counted(const char *what, long n)
{
	for (int i = 0; i < 100; i++) {
		if (hits(what) == n)
			return true;
		usleep(10000);
	}
	printf("%s: %ld packets, not %ld\n%s", what, hits(what), n, out);
	return false;
}

/* Reads the next IPv4 packet from a TUN fd within a second (the kernel's
 * own IPv6 chatter skipped); its length or 0. */
static size_t tun_read4(int fd, uint8_t *b, size_t len)
{
	for (int i = 0; i < 100; i++) {
		ssize_t n = read(fd, b, len);

		if (n > 0 && b[0] >> 4 == 4)
			return (size_t)n;
		if (n <= 0)
			usleep(10000);
	}
	return 0;
}

static void send_pkt(int fd, const uint8_t *b, size_t len)
{
	CHECK(write(fd, b, len) == (ssize_t)len);
}

static bool pass_alice(void *ctx, size_t rule, size_t device)
{
	const struct xb_policy *p = ctx;

	(void)rule;
	return !strcmp(p->devices[device].name, "alice-laptop");
}

/* small.conf: first match wins, a failed posture falls through to the next
 * rule, the mark routes into the path's table and out of its tunnel
 * (masqueraded), and a tunnel-only packet that would leave by the uplink
 * is dropped. */
TEST(kernel_judges_packets)
{
	struct xb_policy *p;
	struct xb_nft n;
	char dev[16] = "xb-dev", cmi[16] = "xb-cmi", ctg[16] = "xb-ctg", up[16] = "up0";
	int fdev, fcmi, fup;
	uint8_t b[128];
	char *s;

	xb_test_private_netns();	/* first: a skip leaves nothing behind */
	copy_tree();
	p = load("examples", "small");
	CHECK((fdev = tun_open(dev, 1420)) >= 0);
	CHECK((fcmi = tun_open(cmi, 1420)) >= 0);
	CHECK(tun_open(ctg, 1420) >= 0);
	CHECK((fup = tun_open(up, 1500)) >= 0);
	sh("ip addr add 198.51.100.1/24 dev xb-dev && ip addr add 2001:db8:100::1/64 dev xb-dev nodad"
	   " && ip addr add 192.0.2.1/30 dev xb-cmi && ip addr add 203.0.113.254/32 dev up0"
	   " && ip route add default dev up0 && sysctl -qw net.ipv4.ip_forward=1");
	CHECK_INT(xb_nft_open(&n), ==, 0);
	struct xb_compile_opts o = { pass_alice, p };
	s = compile(p, &o);
	nft_load(&n, s);
	free(s);

	/* alice passes posture: erp, by prefix */
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.10", "203.0.113.5", IPPROTO_TCP, 443));
	CHECK(counted("@r_erp_to4", 1));
	/* erp's path (cmi,ctg) has no route yet: main table, the uplink: dropped */
	CHECK(counted("tunnel-only path", 1));
	/* bob: build (any protocol to 203.0.113.128/25), web (tcp 80), rest */
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.2", "203.0.113.200", IPPROTO_UDP, 53));
	CHECK(counted("@r_build_to4", 1));
	CHECK(counted("tunnel-only path", 2));	/* best: no tunnel route either */
	send_pkt(fdev, b, ip6_udp(b, "2001:db8:100::3", "2001:db8:cafe::1", 53));
	CHECK(counted("@r_build_to6", 1));
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.2", "192.0.2.77", IPPROTO_TCP, 80));
	CHECK(counted("rule web", 1));
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.2", "192.0.2.77", IPPROTO_UDP, 80));
	CHECK(counted("rule rest", 1));
	/* to the gateway itself: left to the input chain */
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.2", "198.51.100.1", IPPROTO_UDP, 53));
	usleep(50000);
	CHECK(counted("default deny", 0));
	CHECK(counted("comment \"rule ", 5));	/* nothing counted twice */

	/* the plan's route for path 3 (cmi,ctg): out of xb-cmi, masqueraded */
	sh("ip rule add fwmark 0x300/0xff00 lookup 51803 priority 10803"
	   " && ip route add default dev xb-cmi table 51803");
	while (read(fcmi, b, sizeof(b)) > 0)
		;	/* whatever the kernel sent on its own */
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.10", "203.0.113.5", IPPROTO_TCP, 8080));
	CHECK(counted("@r_erp_to4", 2));
	CHECK_INT(tun_read4(fcmi, b, sizeof(b)), ==, 40);
	char a[INET_ADDRSTRLEN];
	CHECK_STR(inet_ntop(AF_INET, b + 12, a, sizeof(a)), "192.0.2.1");
	CHECK_STR(inet_ntop(AF_INET, b + 16, a, sizeof(a)), "203.0.113.5");
	CHECK_INT(b[22] << 8 | b[23], ==, 8080);
	CHECK(counted("tunnel-only path", 2));
	/* a wrong TCP checksum: conntrack marks it invalid, NAT would skip it */
	ip4_packet(b, "198.51.100.10", "203.0.113.5", IPPROTO_TCP, 8081);
	b[37] ^= 0xff;
	send_pkt(fdev, b, 40);
	CHECK(counted("@r_erp_to4", 3));
	CHECK(counted("untracked", 1));
	CHECK_INT(tun_read4(fcmi, b, sizeof(b)), ==, 0);

	/* alice loses posture: her next packet falls through to web */
	s = compile(p, NULL);
	nft_load(&n, s);	/* counters start again at 0 */
	free(s);
	send_pkt(fdev, b, ip4_packet(b, "198.51.100.10", "203.0.113.5", IPPROTO_TCP, 443));
	CHECK(counted("rule web", 1));
	CHECK(counted("rule erp", 0));
	xb_nft_close(&n);
	xb_policy_free(p);
	close(fdev);
	close(fcmi);
	close(fup);
	remove_tree();
}

/* The first IPv6 packet read from a TUN fd within 300 ms whose source is
 * src (NULL: any) and, for next header 58, ICMPv6 type icmp_type (-1: any
 * packet); its length or 0. */
static size_t tun_read6(int fd, uint8_t *b, size_t len, const char *src, int icmp_type)
{
	uint8_t want[16];

	if (src)
		CHECK(inet_pton(AF_INET6, src, want) == 1);
	for (int i = 0; i < 30; i++) {
		ssize_t n = read(fd, b, len);

		if (n <= 0) {
			usleep(10000);
			continue;
		}
		if (n < 48 || b[0] >> 4 != 6 || (src && memcmp(b + 8, want, 16)))
			continue;
		if (icmp_type < 0 || (b[6] == IPPROTO_ICMPV6 && b[40] == icmp_type))
			return (size_t)n;
	}
	return 0;
}

/* small.conf: cmi masquerades IPv4 only (no address6), and "build" sends
 * bob's IPv6 through "best", which may pick cmi. With the path's route out
 * of xb-cmi, bob's IPv6 packet must not leave there with his own pool
 * address: it is refused at the forward hook, and bob is told so
 * (ICMPv6 destination unreachable, administratively prohibited). */
TEST(kernel_refuses_family_without_snat_address)
{
	struct xb_policy *p;
	struct xb_nft n;
	char dev[16] = "xb-dev", cmi[16] = "xb-cmi", ctg[16] = "xb-ctg";
	int fdev, fcmi;
	uint8_t b[256];
	char *s;

	xb_test_private_netns();	/* first: a skip leaves nothing behind */
	copy_tree();
	p = load("examples", "small");
	CHECK((fdev = tun_open(dev, 1420)) >= 0);
	CHECK((fcmi = tun_open(cmi, 1420)) >= 0);
	CHECK(tun_open(ctg, 1420) >= 0);
	sh("ip addr add 198.51.100.1/24 dev xb-dev && ip addr add 2001:db8:100::1/64 dev xb-dev nodad"
	   " && ip addr add 192.0.2.1/30 dev xb-cmi && sysctl -qw net.ipv6.conf.all.forwarding=1"
	   " && ip -6 rule add fwmark 0x400/0xff00 lookup 51804 priority 10804"
	   " && ip -6 route add default dev xb-cmi table 51804");
	CHECK_INT(xb_nft_open(&n), ==, 0);
	s = compile(p, NULL);
	nft_load(&n, s);
	free(s);
	while (read(fcmi, b, sizeof(b)) > 0 || read(fdev, b, sizeof(b)) > 0)
		;	/* whatever the kernel sent on its own */

	send_pkt(fdev, b, ip6_udp(b, "2001:db8:100::3", "2001:db8:cafe::1", 53));
	CHECK(counted("@r_build_to6", 1));
	CHECK_INT(tun_read6(fcmi, b, sizeof(b), "2001:db8:100::3", -1), ==, 0);
	CHECK(counted("tunnel cmi: no address6", 1));
	CHECK(tun_read6(fdev, b, sizeof(b), NULL, 1) > 0);	/* destination unreachable */
	CHECK_INT(b[41], ==, 1);				/* administratively prohibited */
	xb_nft_close(&n);
	xb_policy_free(p);
	close(fdev);
	close(fcmi);
	remove_tree();
}
