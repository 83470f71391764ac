/* GRE interfaces of either backend (gateway/links/greif.c): the kernel's gre /
 * ip6gre links checked with `ip -d link', which skip with the reason where
 * the kernel has no GRE; the backend choice and its stated reason. */
#include "tests/lib/check.h"
#include "gateway/links/greif.h"

#include <arpa/inet.h>
#include <errno.h>

static struct gre_config conf(const char *ifname, int family, const char *local, const char *remote)
{
	struct gre_config c = { .family = family, .opts = { .has_key = true, .key = 0x0a000001,
							     .seq = true, .csum = true } };

	snprintf(c.ifname, sizeof(c.ifname), "%s", ifname);
	inet_pton(family, local, &c.local);
	inet_pton(family, remote, &c.remote);
	return c;
}

/* Skips (with the reason) when the kernel cannot make a GRE link. */
static void kernel_or_skip(struct xb_rtnl *r, const struct gre_config *c)
{
	int e = xb_grek_add(r, c);

	if (e == -EOPNOTSUPP) {
		xb_rtnl_close(r);
		SKIP("the kernel has no GRE (creating a %s link: %s); net/kernel_vm runs this in Debian's kernel",
		     c->family == AF_INET ? "gre" : "ip6gre", strerror(-e));
	}
	CHECK_INT(e, ==, 0);
}

TEST(kernel_gre_link)
{
	struct gre_config c = conf("xbk4", AF_INET, "192.0.2.1", "192.0.2.2");
	struct xb_rtnl r;
	char *out;

	xb_test_private_netns();
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	c.mtu = 1400;
	kernel_or_skip(&r, &c);
	out = xb_test_run("ip -d link show xbk4");
	CHECK(strstr(out, "gre remote 192.0.2.2 local 192.0.2.1"));
	CHECK(strstr(out, "ikey 10.0.0.1 okey 10.0.0.1"));
	CHECK(strstr(out, "iseq oseq icsum ocsum"));
	CHECK(strstr(out, "mtu 1400"));
	xb_rtnl_close(&r);
}

TEST(kernel_ip6gre_link)
{
	struct gre_config c = conf("xbk6", AF_INET6, "2001:db8:1::1", "2001:db8:1::2");
	struct xb_rtnl r;
	char *out;

	xb_test_private_netns();
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	c.opts.seq = c.opts.csum = false;
	kernel_or_skip(&r, &c);
	out = xb_test_run("ip -d link show xbk6");
	CHECK(strstr(out, "ip6gre remote 2001:db8:1::2 local 2001:db8:1::1"));
	CHECK(strstr(out, "ikey 10.0.0.1"));
	xb_rtnl_close(&r);
}

/* auto: the kernel's when it has GRE, else ours, with the reason either way;
 * kernel: fails without GRE; userspace: ours. */
TEST(backend_choice)
{
	struct gre_config c = conf("xbg0", AF_INET, "192.0.2.1", "192.0.2.2");
	struct xb_greif g;
	struct xb_rtnl r;
	struct gre_stats st;
	bool has_gre;

	xb_test_private_netns();
	xb_test_run("ip addr add 192.0.2.1/24 dev lo");
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	c.keepalive_ms = 1000, c.keepalive_retries = 3;
	CHECK_INT(xb_greif_create(&g, &r, &c, XB_BACKEND_AUTO), ==, 0);
	has_gre = g.kernel;
	CHECK(g.ifindex == xb_rtnl_ifindex("xbg0"));
	if (has_gre) {
		CHECK(strstr(g.reason, "the kernel has GRE; keepalives off"));
	} else {
		CHECK(strstr(g.reason, "the kernel has no GRE (creating a gre link: "));
		xb_greif_stats(&g, &st);
		CHECK_INT(st.ka_state, ==, GRE_KA_UP);
	}
	xb_greif_destroy(&g, &r);
	CHECK_INT(xb_rtnl_ifindex("xbg0"), ==, 0);

	CHECK_INT(xb_greif_create(&g, &r, &c, XB_BACKEND_KERNEL), ==, has_gre ? 0 : -EOPNOTSUPP);
	xb_greif_destroy(&g, &r);
	CHECK_INT(xb_greif_create(&g, &r, &c, XB_BACKEND_USERSPACE), ==, 0);
	CHECK(!g.kernel && g.dev);
	CHECK_STR(g.reason, "backend userspace configured");
	xb_greif_destroy(&g, &r);
	CHECK_INT(xb_rtnl_ifindex("xbg0"), ==, 0);
	xb_rtnl_close(&r);
}

/* A leftover of that name is replaced only when it is ours to replace. */
TEST(leftover_interfaces)
{
	struct gre_config c = conf("xbg1", AF_INET, "192.0.2.1", "192.0.2.2");
	struct xb_greif g;
	struct xb_rtnl r;

	xb_test_private_netns();
	xb_test_run("ip addr add 192.0.2.1/24 dev lo");
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	xb_test_run("ip link add xbg1 type veth peer name xbg1p");
	CHECK_INT(xb_greif_create(&g, &r, &c, XB_BACKEND_USERSPACE), ==, -EEXIST);
	xb_test_run("ip link del xbg1; ip tuntap add xbg1 mode tun");
	CHECK_INT(xb_greif_create(&g, &r, &c, XB_BACKEND_USERSPACE), ==, 0);
	xb_greif_destroy(&g, &r);
	xb_rtnl_close(&r);
}
