/* Cutting a device's flows in a private network namespace:
 *
 *   lo: 192.0.2.1 (the "device"), 192.0.2.10, 198.51.100.1, 2001:db8::1, 2001:db8::10
 *   an nft rule with `ct state' loads conntrack for the namespace
 *
 * UDP flows from each source to a listener create entries; cutting
 * 192.0.2.1 deletes exactly its entries (checked with `conntrack -L', and
 * by the count returned), and leaves the others.
 */
#include "tests/lib/check.h"
#include "gateway/kernel/conntrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One UDP datagram from src:sport to dst:9 (a bound listener), which
 * creates one conntrack entry. */
static void flow(int family, const char *src, unsigned sport, const char *dst)
{
	struct sockaddr_storage s = { 0 }, d = { 0 };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_DGRAM, 0);

	CHECK(fd >= 0);
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&s, *b = (void *)&d;

		a->sin_family = b->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)sport);
		b->sin_port = htons(9);
		CHECK(inet_pton(AF_INET, src, &a->sin_addr) == 1);
		CHECK(inet_pton(AF_INET, dst, &b->sin_addr) == 1);
	} else {
		struct sockaddr_in6 *a = (void *)&s, *b = (void *)&d;

		a->sin6_family = b->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)sport);
		b->sin6_port = htons(9);
		CHECK(inet_pton(AF_INET6, src, &a->sin6_addr) == 1);
		CHECK(inet_pton(AF_INET6, dst, &b->sin6_addr) == 1);
	}
	CHECK(bind(fd, (struct sockaddr *)&s, len) == 0);
	CHECK(sendto(fd, "x", 1, 0, (struct sockaddr *)&d, len) == 1);
	close(fd);
}

static int listener(int family)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(9) };
	int fd = socket(family, SOCK_DGRAM, 0);

	CHECK(fd >= 0);
	if (family == AF_INET6) {
		int on = 1;

		CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == 0);
		CHECK(bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0);
	} else {
		CHECK(bind(fd, (struct sockaddr *)&a4, sizeof(a4)) == 0);
	}
	return fd;
}

static int count(const char *args)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "conntrack -L %s 2>/dev/null | grep -c dport=9", args);
	return atoi(xb_test_run(cmd));
}

static void setup(void)
{
	xb_test_private_netns();
	if (system("command -v conntrack >/dev/null && command -v nft >/dev/null"))
		SKIP("conntrack or nft is not installed");
	CHECK(system("ip addr add 192.0.2.1/24 dev lo && ip addr add 192.0.2.10/24 dev lo && "
		     "ip addr add 198.51.100.1/24 dev lo && "
		     "ip addr add 2001:db8::1/64 dev lo nodad && "
		     "ip addr add 2001:db8::10/64 dev lo nodad") == 0);
	CHECK(system("nft 'add table inet xbct; add chain inet xbct c { type filter hook output "
		     "priority 0; }; add rule inet xbct c ct state new counter'") == 0);
}

TEST(cut_by_address)
{
	struct xb_conntrack c;
	struct in_addr dev4, other4;
	struct in6_addr dev6;
	int l4, l6;

	setup();
	l4 = listener(AF_INET);
	l6 = listener(AF_INET6);
	for (unsigned p = 40000; p < 40005; p++)
		flow(AF_INET, "192.0.2.1", p, "192.0.2.10");
	for (unsigned p = 40000; p < 40003; p++)
		flow(AF_INET, "198.51.100.1", p, "192.0.2.10");
	for (unsigned p = 40000; p < 40002; p++)
		flow(AF_INET6, "2001:db8::1", p, "2001:db8::10");
	CHECK_INT(count("-s 192.0.2.1"), ==, 5);
	CHECK_INT(count("-s 198.51.100.1"), ==, 3);
	CHECK_INT(count("-f ipv6 -s 2001:db8::1"), ==, 2);

	CHECK_INT(xb_conntrack_open(&c), ==, 0);
	inet_pton(AF_INET, "192.0.2.1", &dev4);
	inet_pton(AF_INET, "203.0.113.9", &other4);
	CHECK_INT(xb_conntrack_cut(&c, AF_INET, &other4), ==, 0);
	CHECK_INT(xb_conntrack_cut(&c, AF_INET, &dev4), ==, 5);
	CHECK_INT(count("-s 192.0.2.1"), ==, 0);
	CHECK_INT(count("-s 198.51.100.1"), ==, 3);	/* others remain */
	CHECK_INT(count("-f ipv6 -s 2001:db8::1"), ==, 2);
	CHECK_INT(xb_conntrack_cut(&c, AF_INET, &dev4), ==, 0);	/* nothing left */

	inet_pton(AF_INET6, "2001:db8::1", &dev6);
	CHECK_INT(xb_conntrack_cut(&c, AF_INET6, &dev6), ==, 2);
	CHECK_INT(count("-f ipv6 -s 2001:db8::1"), ==, 0);
	CHECK_INT(count("-s 198.51.100.1"), ==, 3);
	CHECK_INT(xb_conntrack_cut(&c, AF_UNIX, &dev4), ==, -EAFNOSUPPORT);
	xb_conntrack_close(&c);
	close(l4);
	close(l6);
}

/* Several addresses in one call: each one's entries are counted apart,
 * an address without flows counts 0, and the others' entries stay —
 * through one unfiltered dump (a small table) and, with more entries than
 * XB_CONNTRACK_WALK_ENTRIES for one extra address, through one filtered dump each. */
TEST(cut_many_counts_each_address)
{
	struct xb_conntrack c;
	uint8_t a[3][4];
	long cut[3];
	int l4;

	setup();
	l4 = listener(AF_INET);
	for (unsigned p = 40000; p < 40004; p++)
		flow(AF_INET, "192.0.2.1", p, "192.0.2.10");
	for (unsigned p = 40000; p < 40002; p++)
		flow(AF_INET, "198.51.100.1", p, "192.0.2.10");
	flow(AF_INET, "192.0.2.10", 40000, "192.0.2.10");
	inet_pton(AF_INET, "198.51.100.1", a[0]);
	inet_pton(AF_INET, "203.0.113.9", a[1]);
	inet_pton(AF_INET, "192.0.2.1", a[2]);
	CHECK_INT(xb_conntrack_open(&c), ==, 0);
	CHECK_INT(xb_conntrack_cut_many(&c, AF_INET, a, 3, cut), ==, 6);
	CHECK_INT(cut[0], ==, 2);
	CHECK_INT(cut[1], ==, 0);
	CHECK_INT(cut[2], ==, 4);
	CHECK_INT(count("-s 192.0.2.10"), ==, 1);	/* not asked for */

	/* A table larger than one walk's worth: filtered dumps, same answer. */
	for (unsigned p = 1000; p < 1000 + XB_CONNTRACK_WALK_ENTRIES + 10; p++)
		flow(AF_INET, "192.0.2.10", p, "192.0.2.10");
	for (unsigned p = 40000; p < 40003; p++)
		flow(AF_INET, "192.0.2.1", p, "192.0.2.10");
	flow(AF_INET, "198.51.100.1", 40000, "192.0.2.10");
	CHECK_INT(xb_conntrack_cut_many(&c, AF_INET, a, 2, cut), ==, 1);
	CHECK_INT(cut[0], ==, 1);
	CHECK_INT(xb_conntrack_cut_many(&c, AF_INET, a + 2, 1, cut), ==, 3);
	CHECK_INT(count("-s 192.0.2.10"), ==, XB_CONNTRACK_WALK_ENTRIES + 11);
	xb_conntrack_close(&c);
	close(l4);
}

/* A flow towards the device (original source elsewhere, reply destination
 * elsewhere) is not the device's own: it stays; the one from it goes. */
TEST(cut_is_by_source_only)
{
	struct xb_conntrack c;
	struct in_addr dev4;
	int l4;

	setup();
	l4 = listener(AF_INET);
	flow(AF_INET, "198.51.100.1", 41000, "192.0.2.1");	/* towards the device */
	flow(AF_INET, "192.0.2.1", 41001, "198.51.100.1");	/* from it */
	CHECK_INT(xb_conntrack_open(&c), ==, 0);
	inet_pton(AF_INET, "192.0.2.1", &dev4);
	CHECK_INT(xb_conntrack_cut(&c, AF_INET, &dev4), ==, 1);
	CHECK_INT(count("-s 198.51.100.1 -d 192.0.2.1"), ==, 1);
	xb_conntrack_close(&c);
	close(l4);
}

/* Issue #6 wants a device's flows cut within 1 s: 5000 entries of the
 * device among 5000 of another source. */
TEST(cut_many_within_a_second)
{
	struct timespec a, b;
	struct xb_conntrack c;
	struct in_addr dev4;
	long n, ms;
	int l4;

	setup();
	l4 = listener(AF_INET);
	for (unsigned p = 20000; p < 25000; p++) {
		flow(AF_INET, "192.0.2.1", p, "192.0.2.10");
		flow(AF_INET, "198.51.100.1", p, "192.0.2.10");
	}
	CHECK_INT(xb_conntrack_open(&c), ==, 0);
	inet_pton(AF_INET, "192.0.2.1", &dev4);
	clock_gettime(CLOCK_MONOTONIC, &a);
	n = xb_conntrack_cut(&c, AF_INET, &dev4);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	printf("# cut %ld of 10000 entries in %ld ms\n", n, ms);
	CHECK_INT(n, ==, 5000);
	CHECK_INT(ms, <, 1000);
	CHECK_INT(count("-s 198.51.100.1"), ==, 5000);
	xb_conntrack_close(&c);
	close(l4);
}
