/* The drop log (gateway/kernel/drops.h): nfnetlink_log messages built by hand
 * parsed or refused, the ring's order and wrap, and in a private network
 * namespace (root only, else skipped) the compiled table's deny rule and
 * default deny logging a device's refused packets to the daemon's group. */
#include "tests/lib/check.h"
#include "gateway/kernel/drops.h"
#include "gateway/kernel/nft.h"
#include "policy/compile.h"
#include "tunnel/tun.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <unistd.h>

static uint8_t msg[512];

/* An NFULNL_MSG_PACKET with prefix (plen bytes, NULL: none) and payload. */
static const struct nlmsghdr *logmsg(const char *prefix, size_t plen, const uint8_t *pay,
				     size_t n)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(memset(msg, 0, sizeof(msg)));
	struct nfgenmsg *g;

	h->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
	g->res_id = htons(XB_DROPS_GROUP);
	if (prefix)
		mnl_attr_put(h, NFULA_PREFIX, plen, prefix);
	if (pay)
		mnl_attr_put(h, NFULA_PAYLOAD, n, pay);
	return h;
}

static size_t ip4(uint8_t *b, const char *src, const char *dst, uint8_t proto, uint16_t dport)
{
	memset(b, 0, 28);
	b[0] = 0x45;
	b[3] = 28;
	b[8] = 64;
	b[9] = proto;
	inet_pton(AF_INET, src, b + 12);
	inet_pton(AF_INET, dst, b + 16);
	b[22] = (uint8_t)(dport >> 8);
	b[23] = (uint8_t)dport;
	b[25] = 8;			/* UDP length; its checksum 0: none */
	/* the header checksum: the kernel drops a wrong one before any hook */
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	b[10] = (uint8_t)(~sum >> 8);
	b[11] = (uint8_t)~sum;
	return 28;
}

TEST(parse)
{
	struct xb_drop x;
	uint8_t p[64];
	char a[INET6_ADDRSTRLEN];
	size_t n = ip4(p, "198.51.100.11", "203.0.113.5", IPPROTO_TCP, 443);

	CHECK(xb_drops_parse(logmsg("xb drop default", 16, p, n), &x));
	CHECK_STR(x.rule, "");
	CHECK_INT(x.family, ==, AF_INET);
	CHECK_INT(x.proto, ==, IPPROTO_TCP);
	CHECK_INT(x.dport, ==, 443);
	CHECK_STR(inet_ntop(AF_INET, x.src, a, sizeof(a)), "198.51.100.11");
	CHECK_STR(inet_ntop(AF_INET, x.dst, a, sizeof(a)), "203.0.113.5");
	CHECK(xb_drops_parse(logmsg("xb drop by rest", 16, p, n), &x));
	CHECK_STR(x.rule, "rest");
	/* no NUL from the kernel: still bounded */
	CHECK(xb_drops_parse(logmsg("xb drop by rest", 15, p, n), &x));
	CHECK_STR(x.rule, "rest");
	/* icmp: no port */
	n = ip4(p, "198.51.100.11", "203.0.113.5", IPPROTO_ICMP, 0x0800);
	CHECK(xb_drops_parse(logmsg("xb drop default", 16, p, n), &x));
	CHECK_INT(x.dport, ==, 0);
	/* IPv6 */
	memset(p, 0, 48);
	p[0] = 0x60;
	p[6] = IPPROTO_UDP;
	inet_pton(AF_INET6, "2001:db8:100::3", p + 8);
	inet_pton(AF_INET6, "2001:db8:cafe::1", p + 24);
	p[42] = 0;
	p[43] = 53;
	CHECK(xb_drops_parse(logmsg("xb drop default", 16, p, 48), &x));
	CHECK_INT(x.family, ==, AF_INET6);
	CHECK_INT(x.dport, ==, 53);
	CHECK_STR(inet_ntop(AF_INET6, x.dst, a, sizeof(a)), "2001:db8:cafe::1");
	/* refused: someone else's prefix, none, no payload, a short one, an empty rule */
	CHECK(!xb_drops_parse(logmsg("ssh brute force", 16, p, 48), &x));
	CHECK(!xb_drops_parse(logmsg(NULL, 0, p, 48), &x));
	CHECK(!xb_drops_parse(logmsg("xb drop default", 16, NULL, 0), &x));
	CHECK(!xb_drops_parse(logmsg("xb drop default", 16, p, 39), &x));
	CHECK(!xb_drops_parse(logmsg("xb drop by ", 12, p, 48), &x));
}

TEST(ring_newest_first_and_wraps)
{
	static struct xb_drops d;
	struct xb_drop x = { 0 };

	CHECK(xb_drops_get(&d, 0) == NULL);
	for (int i = 0; i < XB_DROPS_MAX + 10; i++) {
		x.at = i;
		xb_drops_put(&d, &x);
	}
	CHECK_INT(d.n, ==, XB_DROPS_MAX);
	CHECK_INT(d.total, ==, XB_DROPS_MAX + 10);
	CHECK_INT(xb_drops_get(&d, 0)->at, ==, XB_DROPS_MAX + 9);
	CHECK_INT(xb_drops_get(&d, XB_DROPS_MAX - 1)->at, ==, 10);
	CHECK(xb_drops_get(&d, XB_DROPS_MAX) == NULL);
}

/* The compiled table logs to the group: a deny rule's drop names it, the
 * default deny none; more than the limit is dropped all the same. */
TEST(kernel_logs_refused_packets)
{
	static const char script[] =
		"table inet xborder {\n"
		" chain from_devices {\n"
		"  type filter hook prerouting priority mangle; policy accept;\n"
		"  iifname \"xb-dev\" ip daddr 192.0.2.77 limit rate 10/second burst 20 packets "
		"log prefix \"" XB_DROPS_PREFIX_RULE "rest\" group 7800\n"
		"  iifname \"xb-dev\" ip daddr 192.0.2.77 counter drop\n"
		"  iifname \"xb-dev\" limit rate 10/second burst 20 packets "
		"log prefix \"" XB_DROPS_PREFIX_DEFAULT "\" group 7800\n"
		"  iifname \"xb-dev\" counter drop\n"
		" }\n}\n";
	static struct xb_drops d;
	struct xb_nft n;
	char dev[16] = "xb-dev", *err = NULL;
	uint8_t p[64];
	int fd;

	xb_test_private_netns();
	CHECK((fd = tun_open(dev, 1420)) >= 0);
	CHECK(system("ip addr add 198.51.100.1/24 dev xb-dev") == 0);
	CHECK_INT(xb_nft_open(&n), ==, 0);
	if (xb_nft_run(&n, script, &err) < 0)
		xb_test_fail(__FILE__, __LINE__, "%s", err ? err : "the table did not load");
	CHECK_INT(xb_drops_open(&d, XB_DROPS_GROUP), ==, 0);
	CHECK(write(fd, p, ip4(p, "198.51.100.11", "203.0.113.5", IPPROTO_UDP, 53)) > 0);
	CHECK(write(fd, p, ip4(p, "198.51.100.11", "192.0.2.77", IPPROTO_UDP, 80)) > 0);
	for (int i = 0; i < 100 && d.n < 2; i++) {
		xb_drops_process(&d);
		usleep(10000);
	}
	CHECK_INT(d.n, ==, 2);
	CHECK_STR(xb_drops_get(&d, 0)->rule, "rest");
	CHECK_INT(xb_drops_get(&d, 0)->dport, ==, 80);
	CHECK_STR(xb_drops_get(&d, 1)->rule, "");
	CHECK_INT(xb_drops_get(&d, 1)->dport, ==, 53);
	/* a burst of 100: at most burst + a little logged, every one dropped */
	for (int i = 0; i < 100; i++)
		CHECK(write(fd, p, ip4(p, "198.51.100.11", "203.0.113.5", IPPROTO_UDP, 1000)) > 0);
	usleep(200000);
	xb_drops_process(&d);
	CHECK_INT(d.total, >=, 2 + 15);
	CHECK_INT(d.total, <=, 2 + 20 + 5);
	xb_drops_close(&d);
	xb_nft_close(&n);
	close(fd);
}
