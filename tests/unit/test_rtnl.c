/* rtnetlink and nftables wrappers, checked with `ip` and `nft` inside a
 * private network namespace of this test process (nothing can leak out). */
#include "tests/lib/check.h"
#include "gateway/kernel/nft.h"
#include "gateway/kernel/rtnl.h"
#include "tunnel/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <unistd.h>

/* The last command's output. */
static char *out;
#define run(cmd) (out = xb_test_run(cmd))

static struct xb_prefix pfx(const char *s)
{
	struct xb_prefix p;

	if (!xb_prefix_parse(&p, s))
		xb_test_fail(__FILE__, __LINE__, "bad prefix %s", s);
	return p;
}

TEST(links_addresses_routes_rules)
{
	struct xb_rtnl r;
	char name[16] = "xbt0";
	int fd;
	unsigned idx;
	uint8_t gw4[4];

	xb_test_private_netns();
	CHECK((fd = tun_open(name, 1420)) >= 0);
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	idx = xb_rtnl_ifindex("xbt0");
	CHECK(idx > 0);

	struct xb_prefix a4 = pfx("192.0.2.1/24"), a6 = pfx("2001:db8:1::1/64");
	CHECK_INT(xb_rtnl_addr(&r, true, idx, &a4), ==, 0);
	CHECK_INT(xb_rtnl_addr(&r, true, idx, &a4), ==, 0);	/* idempotent */
	CHECK_INT(xb_rtnl_addr(&r, true, idx, &a6), ==, 0);
	CHECK(strstr(run("ip -o addr show dev xbt0"), "inet 192.0.2.1/24"));
	CHECK(strstr(out, "inet6 2001:db8:1::1/64"));

	CHECK_INT(xb_rtnl_link_mtu(&r, idx, 1300), ==, 0);
	CHECK(strstr(run("ip -o link show dev xbt0"), "mtu 1300"));

	inet_pton(AF_INET, "192.0.2.254", gw4);
	struct xb_route rt = { .dst = pfx("203.0.113.0/24"), .table = 1001, .ifindex = idx };
	CHECK_INT(xb_rtnl_route(&r, true, &rt), ==, 0);
	CHECK(strstr(run("ip route show table 1001"), "203.0.113.0/24 dev xbt0"));
	rt.gw = gw4;	/* replaced in place */
	CHECK_INT(xb_rtnl_route(&r, true, &rt), ==, 0);
	CHECK(strstr(run("ip route show table 1001"), "203.0.113.0/24 via 192.0.2.254 dev xbt0"));
	CHECK(!strstr(out, "203.0.113.0/24 dev xbt0"));
	struct xb_route def6 = { .dst = pfx("::/0"), .table = 1001, .ifindex = idx };
	CHECK_INT(xb_rtnl_route(&r, true, &def6), ==, 0);
	CHECK(strstr(run("ip -6 route show table 1001"), "default dev xbt0"));
	struct xb_route bh = { .dst = pfx("0.0.0.0/0"), .table = 1002, .type = RTN_BLACKHOLE };
	CHECK_INT(xb_rtnl_route(&r, true, &bh), ==, 0);
	CHECK(strstr(run("ip route show table 1002"), "blackhole default"));

	struct xb_iprule ru = { AF_INET, 0x1001, 0xffff, 1001, 10001 };
	CHECK_INT(xb_rtnl_rule(&r, true, &ru), ==, 0);
	CHECK_INT(xb_rtnl_rule(&r, true, &ru), ==, 0);	/* idempotent */
	ru.family = AF_INET6;
	CHECK_INT(xb_rtnl_rule(&r, true, &ru), ==, 0);
	CHECK(strstr(run("ip rule show"), "10001:\tfrom all fwmark 0x1001/0xffff lookup 1001"));
	CHECK(strstr(run("ip -6 rule show"), "fwmark 0x1001/0xffff lookup 1001"));

	/* What a crashed run left is swept: 2 rules, 3 routes. */
	CHECK_INT(xb_rtnl_sweep(&r, 10000, 10999, 1000, 1999), ==, 5);
	CHECK(!strstr(run("ip rule show; ip -6 rule show"), "lookup 1001"));
	CHECK_STR(run("ip route show table 1001; ip -6 route show table 1001; ip route show table 1002"), "");

	CHECK_INT(xb_rtnl_addr(&r, false, idx, &a4), ==, 0);
	CHECK(!strstr(run("ip -o addr show dev xbt0"), "192.0.2.1"));
	CHECK_INT(xb_rtnl_link_up(&r, idx, false), ==, 0);
	CHECK(!strstr(run("ip -o link show dev xbt0"), ",UP"));
	CHECK_INT(xb_rtnl_link_del(&r, idx), ==, 0);
	CHECK_INT(xb_rtnl_ifindex("xbt0"), ==, 0);
	close(fd);
	xb_rtnl_close(&r);
}

TEST(nft_transaction_all_or_nothing)
{
	struct xb_nft n;
	char *err = NULL;

	xb_test_private_netns();
	CHECK_INT(xb_nft_open(&n), ==, 0);
	CHECK_INT(xb_nft_run(&n, "table inet xbtest { set s { type ipv4_addr; flags interval; }; "
			     "chain c { type filter hook forward priority 0; policy drop; }; }", &err), ==, 0);
	CHECK(err == NULL);
	CHECK(strstr(run("nft list table inet xbtest"), "policy drop"));
	/* A bad command in the middle: nothing of the batch is applied. */
	CHECK_INT(xb_nft_run(&n, "add element inet xbtest s { 192.0.2.0/24 }\n"
			     "add rule inet xbtest nosuchchain accept\n", &err), ==, -1);
	CHECK(err && strstr(err, "Error"));
	free(err);
	CHECK(!strstr(run("nft list set inet xbtest s"), "192.0.2.0/24"));
	CHECK_INT(xb_nft_run(&n, "add element inet xbtest s { 192.0.2.0/24 }", NULL), ==, 0);
	CHECK(strstr(run("nft list set inet xbtest s"), "192.0.2.0/24"));
	CHECK_INT(xb_nft_run(&n, "delete table inet xbtest", NULL), ==, 0);
	xb_nft_close(&n);
}
