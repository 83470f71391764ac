/* xborderctl explain's rule walk (gateway/explain.h): hand cases on
 * deploy/examples/small.conf, and the same questions put to the kernel —
 * packets written into a TUN device playing xb-dev, judged by the compiled
 * table; the rule whose counter moved must be the rule explain names, so
 * the two cannot drift apart. The kernel part runs in a private network
 * namespace (root only, else skipped). */
#include "tests/lib/check.h"
#include "gateway/explain.h"
#include "gateway/kernel/nft.h"
#include "tunnel/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <unistd.h>

static char tmp[64], root[PATH_MAX - 256];

struct world {
	struct xb_policy *p;
	struct xb_plan plan;
	bool posture;			/* everyone passes posture */
	const char *learned;		/* the one address in every _dns set */
};

static bool posture_ok(void *ctx, size_t rule, size_t device)
{
	(void)rule;
	(void)device;
	return ((struct world *)ctx)->posture;
}

static bool learned(void *ctx, size_t rule, int family, const uint8_t *addr)
{
	struct world *w = ctx;
	uint8_t a[16];

	(void)rule;
	return w->learned && inet_pton(family, w->learned, a) == 1 &&
	       !memcmp(a, addr, family == AF_INET ? 4 : 16);
}

static void load(struct world *w)
{
	struct xb_errors errs = { 0 };

	if (!root[0])
		CHECK(getcwd(root, sizeof(root)) != NULL);
	strcpy(tmp, "/tmp/xb-test-explain.XXXXXX");
	CHECK(mkdtemp(tmp) != NULL);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp -r deploy/examples '%s/' && chmod 600 '%s'/examples/keys/*",
		 tmp, tmp);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof(cmd), "%s/examples", tmp);
	CHECK(chdir(cmd) == 0);
	w->p = xb_policy_load("small.conf", &errs);
	if (w->p && xb_policy_allocate(w->p, NULL, &errs) < 0) {
		xb_policy_free(w->p);
		w->p = NULL;
	}
	if (!w->p)
		xb_errors_print(&errs, stdout);
	CHECK(chdir(root) == 0);
	CHECK(w->p != NULL);
	CHECK_INT(xb_plan_build(w->p, &w->plan, &errs), ==, 0);
	xb_errors_free(&errs);
}

static void unload(struct world *w)
{
	char cmd[128];

	xb_plan_free(&w->plan);
	xb_policy_free(w->p);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0);
}

static size_t device(const struct xb_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_devices; i++)
		if (!strcmp(p->devices[i].name, name))
			return i;
	xb_test_fail(__FILE__, __LINE__, "no device %s", name);
}

/* The explanation for DEVICE to DEST PROTO (NULL: none), as
 * "rule:why,rule:why,...=verdict". */
static const char *ask(struct world *w, const char *dev, const char *dest, const char *proto)
{
	static char buf[512];
	struct xb_explain_in in = { w->p, &w->plan, posture_ok, learned, w };
	struct xb_explain_q q = { .device = device(w->p, dev) };
	struct xb_explain e;
	size_t off = 0;

	q.family = strchr(dest, ':') ? AF_INET6 : AF_INET;
	CHECK(inet_pton(q.family, dest, q.addr) == 1);
	if (proto)
		CHECK(xb_explain_parse_proto(proto, &q));
	if (xb_explain(&in, &q, &e) < 0) {
		snprintf(buf, sizeof(buf), "error %d", errno);
		return buf;
	}
	for (size_t i = 0; i < e.n; i++) {
		const struct xb_explain_rule *r = &e.v[i];

		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s:%s", i ? "," : "",
					w->p->rules[r->rule].name, xb_explain_why_name(r->why));
		if (r->why == XB_EXPLAIN_MATCH || r->why == XB_EXPLAIN_DEPENDS)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "(%s)",
						xb_explain_dest_name(r->dest));
	}
	snprintf(buf + off, sizeof(buf) - off, "=%s", xb_explain_verdict_name(e.verdict));
	if (e.verdict == XB_VERDICT_ALLOW)
		CHECK(e.path == w->plan.rule_path[e.decided]);
	xb_explain_free(&e);
	return buf;
}

TEST(first_match_and_why_not)
{
	struct world w = { .posture = true };

	load(&w);
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp/443"), "erp:match(to)=allow");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp/8050"), "erp:match(to)=allow");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp/22"),
		  "erp:port,build:device,web:port,rest:match(any)=deny");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "udp/443"),
		  "erp:protocol,build:device,web:protocol,rest:match(any)=deny");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "icmp"),
		  "erp:protocol,build:device,web:protocol,rest:match(any)=deny");
	CHECK_STR(ask(&w, "bob-desktop", "203.0.113.200", "udp/53"),
		  "erp:device,build:match(to)=allow");
	CHECK_STR(ask(&w, "bob-desktop", "2001:db8:cafe::1", "udp/53"),
		  "erp:device,build:match(to)=allow");
	CHECK_STR(ask(&w, "bob-desktop", "192.0.2.77", "tcp/80"),
		  "erp:device,build:destination,web:match(any)=allow");
	/* icmpv6 has no IPv4 line: erp (tcp) and web (tcp) have none for it */
	CHECK_STR(ask(&w, "bob-desktop", "2001:db8:cafe::1", "icmpv6"),
		  "erp:device,build:match(to)=allow");
	CHECK_STR(ask(&w, "alice-laptop", "2001:db8:cafe::1", "icmpv6"),
		  "erp:destination,build:device,web:protocol,rest:match(any)=deny");
	/* a rule of icmp alone has no IPv6 line at all */
	size_t n_ports = w.p->rules[2].n_ports;
	w.p->rules[2].protocols = XB_PROTO_ICMP;
	w.p->rules[2].n_ports = 0;
	CHECK_STR(ask(&w, "alice-laptop", "2001:db8:cafe::1", "icmpv6"),
		  "erp:destination,build:device,web:family,rest:match(any)=deny");
	CHECK_STR(ask(&w, "alice-laptop", "192.0.2.1", "icmp"),
		  "erp:destination,build:device,web:match(any)=allow");
	w.p->rules[2].protocols = XB_PROTO_TCP;
	w.p->rules[2].n_ports = n_ports;
	unload(&w);
}

TEST(posture_falls_through)
{
	struct world w = { .posture = false };

	load(&w);
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp/443"),
		  "erp:posture,build:device,web:match(any)=allow");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp/8050"),
		  "erp:posture,build:device,web:port,rest:match(any)=deny");
	unload(&w);
}

TEST(learned_destinations)
{
	struct world w = { .posture = true };

	load(&w);
	CHECK_STR(ask(&w, "alice-laptop", "192.0.2.50", "tcp/443"),
		  "erp:destination,build:device,web:match(any)=allow");
	w.learned = "192.0.2.50";
	CHECK_STR(ask(&w, "alice-laptop", "192.0.2.50", "tcp/443"), "erp:match(dns)=allow");
	w.learned = "2001:db8:77::5";
	CHECK_STR(ask(&w, "alice-laptop", "2001:db8:77::5", "tcp/8000"), "erp:match(dns)=allow");
	unload(&w);
}

/* Without a protocol, rules that restrict it cannot decide. */
TEST(protocol_not_given)
{
	struct world w = { .posture = true };

	load(&w);
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", NULL),
		  "erp:depends(to),build:device,web:depends(any),rest:match(any)=deny");
	CHECK_STR(ask(&w, "alice-laptop", "203.0.113.5", "tcp"),
		  "erp:depends(to),build:device,web:depends(any),rest:match(any)=deny");
	CHECK_STR(ask(&w, "bob-desktop", "203.0.113.200", NULL), "erp:device,build:match(to)=allow");
	unload(&w);
}

TEST(local_and_no_address)
{
	struct world w = { .posture = true };
	struct xb_explain_in in;
	struct xb_explain_q q = { .family = AF_INET, .local = true };
	struct xb_explain e;

	load(&w);
	in = (struct xb_explain_in){ w.p, &w.plan, posture_ok, learned, &w };
	q.device = device(w.p, "bob-desktop");
	CHECK_INT(xb_explain(&in, &q, &e), ==, 0);
	CHECK_INT(e.verdict, ==, XB_VERDICT_LOCAL);
	CHECK_INT(e.n, ==, 0);
	xb_explain_free(&e);
	w.p->gateway.has_pool6 = false;
	CHECK_STR(ask(&w, "bob-desktop", "2001:db8:cafe::1", "udp/53"), "error 99");	/* EADDRNOTAVAIL */
	w.p->gateway.has_pool6 = true;
	unload(&w);
}

TEST(parse_proto)
{
	struct xb_explain_q q;

	CHECK(xb_explain_parse_proto("tcp/443", &q));
	CHECK_INT(q.proto, ==, XB_PROTO_TCP);
	CHECK_INT(q.port, ==, 443);
	CHECK(xb_explain_parse_proto("udp/65535", &q) && q.port == 65535);
	CHECK(xb_explain_parse_proto("icmpv6", &q) && q.proto == XB_PROTO_ICMPV6 && !q.port);
	CHECK(xb_explain_parse_proto("tcp", &q) && !q.port);
	CHECK(!xb_explain_parse_proto("tcp/0", &q));
	CHECK(!xb_explain_parse_proto("tcp/65536", &q));
	CHECK(!xb_explain_parse_proto("tcp/", &q));
	CHECK(!xb_explain_parse_proto("tcp/-1", &q));
	CHECK(!xb_explain_parse_proto("tcp/44x", &q));
	CHECK(!xb_explain_parse_proto("icmp/8", &q));
	CHECK(!xb_explain_parse_proto("sctp/1", &q));
	CHECK(!xb_explain_parse_proto("tc", &q));
	CHECK(!xb_explain_parse_proto("", &q));
}

/* Packets from devices, their checksums right. */
static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t sum16(uint32_t sum, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	return sum;
}

/* IPv4 with a TCP SYN, an empty UDP datagram or an ICMP echo request. */
static size_t ip4(uint8_t *b, const uint8_t *src, const uint8_t *dst, unsigned proto,
		  uint16_t dport)
{
	uint8_t pr = proto == XB_PROTO_TCP ? IPPROTO_TCP : proto == XB_PROTO_UDP ? IPPROTO_UDP :
		     IPPROTO_ICMP;
	size_t l4 = pr == IPPROTO_TCP ? 20 : 8, len = 20 + l4;
	uint8_t *t = b + 20;
	uint16_t c;

	memset(b, 0, len);
	b[0] = 0x45;
	b[3] = (uint8_t)len;
	b[8] = 64;
	b[9] = pr;
	memcpy(b + 12, src, 4);
	memcpy(b + 16, dst, 4);
	c = fold(sum16(0, b, 20));
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	if (pr == IPPROTO_ICMP) {
		t[0] = 8;
		c = fold(sum16(0, t, l4));
		t[2] = (uint8_t)(c >> 8);
		t[3] = (uint8_t)c;
		return len;
	}
	t[0] = 0x9c;
	t[1] = 0x40;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	if (pr == IPPROTO_TCP) {
		t[12] = 0x50;
		t[13] = 0x02;
		t[14] = 0xff;
	} else {
		t[5] = 8;
	}
	c = fold(sum16(sum16(pr + (uint32_t)l4, b + 12, 8), t, l4));
	t[pr == IPPROTO_TCP ? 16 : 6] = (uint8_t)(c >> 8);
	t[pr == IPPROTO_TCP ? 17 : 7] = (uint8_t)c;
	return len;
}

/* IPv6 with an empty UDP datagram or a TCP SYN (checksums are not looked
 * at before prerouting). */
static size_t ip6(uint8_t *b, const uint8_t *src, const uint8_t *dst, unsigned proto,
		  uint16_t dport)
{
	size_t l4 = proto == XB_PROTO_TCP ? 20 : 8;

	memset(b, 0, 40 + l4);
	b[0] = 0x60;
	b[5] = (uint8_t)l4;
	b[6] = proto == XB_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
	b[7] = 64;
	memcpy(b + 8, src, 16);
	memcpy(b + 24, dst, 16);
	b[40] = 0x9c;
	b[41] = 0x40;
	b[42] = (uint8_t)(dport >> 8);
	b[43] = (uint8_t)dport;
	if (proto == XB_PROTO_TCP) {
		b[52] = 0x50;
		b[53] = 0x02;
	} else {
		b[45] = 8;
	}
	return 40 + l4;
}

/* The packets counted so far by rule NAME's lines ("default deny" for the
 * chain's last line), from `nft list chain'. */
static long counted(const char *name)
{
	char what[64], *out, *save = NULL;
	long sum = 0;

	if (strcmp(name, "default deny"))
		snprintf(what, sizeof(what), "comment \"rule %s (", name);
	else
		snprintf(what, sizeof(what), "comment \"default deny\"");
	out = xb_test_run("nft list chain inet xborder from_devices");
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *c = strstr(l, "counter packets ");

		if (c && strstr(l, what))
			sum += atol(c + 16);
	}
	return sum;
}

/* Sends DEVICE's packet to DEST and waits (up to 1 s) for a from_devices
 * counter to move; returns that rule's name, "default deny", or "none". */
static const char *kernel_says(struct world *w, int fd, const char *dev, const char *dest,
			       const char *proto)
{
	static const char *names[] = { "erp", "build", "web", "rest", "default deny" };
	const struct xb_device *d = &w->p->devices[device(w->p, dev)];
	long before[5];
	struct xb_explain_q q;
	uint8_t b[80], a[16];
	bool v6 = strchr(dest, ':');

	CHECK(xb_explain_parse_proto(proto, &q));
	CHECK(inet_pton(v6 ? AF_INET6 : AF_INET, dest, a) == 1);
	for (size_t i = 0; i < 5; i++)
		before[i] = i < w->p->n_rules || i == 4 ? counted(names[i]) : 0;
	CHECK(write(fd, b, v6 ? ip6(b, (const uint8_t *)&d->address6, a, q.proto, q.port)
			  : ip4(b, (const uint8_t *)&d->address4, a, q.proto, q.port)) > 0);
	for (int k = 0; k < 100; k++) {
		for (size_t i = 0; i < 5; i++)
			if ((i < w->p->n_rules || i == 4) && counted(names[i]) > before[i])
				return names[i];
		usleep(10000);
	}
	return "none";
}

static const char *explain_says(struct world *w, const char *dev, const char *dest,
				const char *proto)
{
	struct xb_explain_in in = { w->p, &w->plan, posture_ok, learned, w };
	struct xb_explain_q q = { .device = device(w->p, dev) };
	struct xb_explain e;
	const char *name;

	q.family = strchr(dest, ':') ? AF_INET6 : AF_INET;
	CHECK(xb_explain_parse_proto(proto, &q));
	CHECK(inet_pton(q.family, dest, q.addr) == 1);
	CHECK_INT(xb_explain(&in, &q, &e), ==, 0);
	name = e.decided == SIZE_MAX ? "default deny" : w->p->rules[e.decided].name;
	xb_explain_free(&e);
	return name;
}

/* The compiled table with posture for all or none, and without the last
 * rule (rest) when cut: then the default deny decides what web refuses. */
static void load_table(struct world *w, struct xb_nft *n, bool cut)
{
	struct xb_compile_opts o = { posture_ok, w };
	struct xb_errors errs = { 0 };
	char *s, *err = NULL;

	if (cut)
		w->p->n_rules--;
	xb_plan_free(&w->plan);
	CHECK_INT(xb_plan_build(w->p, &w->plan, &errs), ==, 0);
	xb_errors_free(&errs);
	s = xb_compile_nft(w->p, &w->plan, &o);
	CHECK(s != NULL);
	if (xb_nft_run(n, s, &err) < 0) {
		printf("%s", err ? err : "");
		xb_test_fail(__FILE__, __LINE__, "the table did not load");
	}
	free(s);
}

TEST(kernel_agrees)
{
	static const struct { const char *dev, *dest, *proto; } cases[] = {
		{ "alice-laptop", "203.0.113.5", "tcp/443" },
		{ "alice-laptop", "203.0.113.5", "tcp/8100" },
		{ "alice-laptop", "203.0.113.5", "tcp/8101" },
		{ "alice-laptop", "203.0.113.5", "udp/443" },
		{ "alice-laptop", "203.0.113.5", "icmp" },
		{ "alice-laptop", "203.0.113.200", "tcp/80" },
		{ "bob-desktop", "203.0.113.200", "udp/53" },
		{ "bob-desktop", "203.0.113.127", "udp/53" },
		{ "bob-desktop", "192.0.2.77", "tcp/80" },
		{ "bob-desktop", "192.0.2.77", "tcp/81" },
		{ "bob-desktop", "2001:db8:cafe::1", "udp/53" },
		{ "bob-desktop", "2001:db8:cafd::1", "tcp/443" },
		{ "bob-desktop", "2001:db8:cafd::1", "udp/443" },
		{ "alice-laptop", "2001:db8:cafe::1", "tcp/8000" },
		/* learned by DNS into erp's _dns4 set (below) */
		{ "alice-laptop", "192.0.2.50", "tcp/8000" },
		{ "alice-laptop", "192.0.2.50", "tcp/7999" },
		{ "bob-desktop", "192.0.2.50", "tcp/8000" },
	};
	struct world w = { 0 };
	struct xb_nft n;
	char dev[16] = "xb-dev";
	size_t rules;
	int fd;

	xb_test_private_netns();
	load(&w);
	rules = w.p->n_rules;
	CHECK((fd = tun_open(dev, 1420)) >= 0);
	CHECK(system("ip addr add 198.51.100.1/24 dev xb-dev && ip addr add 2001:db8:100::1/64 dev xb-dev"
		     " nodad && sysctl -qw net.ipv4.ip_forward=1") == 0);
	CHECK_INT(xb_nft_open(&n), ==, 0);
	for (int round = 0; round < 4; round++) {
		w.posture = round & 1;
		load_table(&w, &n, round >= 2);
		CHECK(system("nft add element inet xborder r_erp_dns4 '{ 192.0.2.50 timeout 1h }'") == 0);
		w.learned = "192.0.2.50";
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			const char *k = kernel_says(&w, fd, cases[i].dev, cases[i].dest, cases[i].proto);
			const char *e = explain_says(&w, cases[i].dev, cases[i].dest, cases[i].proto);

			if (strcmp(k, e))
				xb_test_fail(__FILE__, __LINE__, "%s %s %s (posture %d, %zu rules): "
					     "kernel %s, explain %s", cases[i].dev, cases[i].dest,
					     cases[i].proto, w.posture, w.p->n_rules, k, e);
		}
		w.p->n_rules = rules;
	}
	xb_nft_close(&n);
	close(fd);
	unload(&w);
}
