/* Set elements through netlink (gateway/kernel/nft_set.h), checked with `nft` in a
 * private network namespace of this test process. */
#include "tests/lib/check.h"
#include "common/clock.h"
#include "gateway/kernel/nft.h"
#include "gateway/kernel/nft_set.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static char *out;
#define run(cmd) (out = xb_test_run(cmd))

static const char table[] =
	"table inet xborder {\n"
	"\tset r_a_dns4 { type ipv4_addr; flags timeout; }\n"
	"\tset r_a_dns6 { type ipv6_addr; flags timeout; }\n"
	"}\n";

static struct xb_nft_set_elem elem(const char *a, uint64_t ms)
{
	struct xb_nft_set_elem e = { .timeout_ms = ms };

	e.family = strchr(a, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(e.family, a, e.addr) != 1)
		xb_test_fail(__FILE__, __LINE__, "bad address %s", a);
	return e;
}

static void load(void)
{
	struct xb_nft n;
	char *err = NULL;

	CHECK_INT(xb_nft_open(&n), ==, 0);
	if (xb_nft_run(&n, table, &err) < 0)
		xb_test_fail(__FILE__, __LINE__, "table: %s", err ? err : "?");
	xb_nft_close(&n);
}

TEST(put_refresh_remove)
{
	struct xb_nft_set s;
	struct xb_nft_set_elem v[3] = { elem("203.0.113.10", 60000), elem("203.0.113.11", 0),
				       elem("198.51.100.7", 5000) };
	struct xb_nft_set_elem six = elem("2001:db8::10", 90000);

	xb_test_private_netns();
	load();
	CHECK_INT(xb_nft_set_open(&s), ==, 0);
	CHECK_INT(xb_nft_set_put(&s, "r_a_dns4", v, 3), ==, 0);
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.10 timeout 1m expires") != NULL);
	CHECK(strstr(out, "203.0.113.11,") != NULL || strstr(out, "203.0.113.11 }") != NULL);
	CHECK(strstr(out, "198.51.100.7 timeout 5s") != NULL);

	/* Present: the new timeout replaces the old one, in one transaction. */
	v[0].timeout_ms = 7200000;
	CHECK_INT(xb_nft_set_put(&s, "r_a_dns4", v, 1), ==, 0);
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.10 timeout 2h expires 1h59m") != NULL);

	CHECK_INT(xb_nft_set_put(&s, "r_a_dns6", &six, 1), ==, 0);
	run("nft list set inet xborder r_a_dns6");
	CHECK(strstr(out, "2001:db8::10 timeout 1m30s") != NULL);

	/* Removed; absent ones are fine. */
	CHECK_INT(xb_nft_set_remove(&s, "r_a_dns4", v, 2), ==, 0);
	CHECK_INT(xb_nft_set_remove(&s, "r_a_dns4", v, 2), ==, 0);
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.10") == NULL);
	CHECK(strstr(out, "198.51.100.7") != NULL);
	xb_nft_set_close(&s);
}

/* One batch of changes to several sets, applied in order (an add then a
 * remove of one element leaves it out); a bad set fails the batch whole. */
TEST(apply_in_order)
{
	struct xb_nft_set s;
	struct xb_nft_set_op ops[] = {
		{ "r_a_dns4", true, elem("203.0.113.20", 0) },
		{ "r_a_dns6", true, elem("2001:db8::20", 0) },
		{ "r_a_dns4", true, elem("203.0.113.21", 0) },
		{ "r_a_dns4", false, elem("203.0.113.21", 0) },
		{ "r_a_dns4", false, elem("203.0.113.99", 0) },	/* absent: fine */
		{ "r_a_nope", true, elem("203.0.113.30", 0) },
	};

	xb_test_private_netns();
	load();
	CHECK_INT(xb_nft_set_open(&s), ==, 0);
	CHECK_INT(xb_nft_set_apply(&s, ops, 5), ==, 0);
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.20") != NULL);
	CHECK(strstr(out, "203.0.113.21") == NULL);
	run("nft list set inet xborder r_a_dns6");
	CHECK(strstr(out, "2001:db8::20") != NULL);
	ops[0].add = false;
	ops[1].add = false;
	CHECK_INT(xb_nft_set_apply(&s, ops, 6), ==, -ENOENT);
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.20") != NULL);	/* the batch changed nothing */
	xb_nft_set_close(&s);
}

/* A wrong set or family changes nothing and says so. */
TEST(errors_change_nothing)
{
	struct xb_nft_set s;
	struct xb_nft_set_elem v[2] = { elem("203.0.113.10", 60000), elem("2001:db8::1", 1000) };

	xb_test_private_netns();
	load();
	CHECK_INT(xb_nft_set_open(&s), ==, 0);
	CHECK_INT(xb_nft_set_put(&s, "r_nope_dns4", v, 1), ==, -ENOENT);
	CHECK(xb_nft_set_put(&s, "r_a_dns4", v, 2) < 0);		/* an IPv6 key in an IPv4 set */
	run("nft list set inet xborder r_a_dns4");
	CHECK(strstr(out, "203.0.113.10") == NULL);
	CHECK(s.failures >= 2);
	/* Every answer to a failed batch was read: the next call gets its own. */
	CHECK_INT(xb_nft_set_put(&s, "r_a_dns4", v, 1), ==, 0);
	CHECK_INT(xb_nft_set_put(&s, "r_nope_dns4", v, 1), ==, -ENOENT);
	CHECK_INT(xb_nft_set_remove(&s, "r_a_dns4", v, 1), ==, 0);
	xb_nft_set_close(&s);
}

/* What the DNS service pays per answer (printed; the bench has the goal):
 * 256 addresses of 203.0.113.0/24, each put several times (refreshes). */
TEST(cost)
{
	struct xb_nft_set s;
	struct xb_nft_set_elem e = elem("203.0.113.1", 60000);
	uint64_t t0;
	int n = 2000;

	xb_test_private_netns();
	load();
	CHECK_INT(xb_nft_set_open(&s), ==, 0);
	t0 = clock_mono_ns();
	for (int i = 0; i < n; i++) {
		e.addr[3] = (uint8_t)i;
		CHECK_INT(xb_nft_set_put(&s, "r_a_dns4", &e, 1), ==, 0);
	}
	printf("# %d puts, %.1f us each\n", n, (double)(clock_mono_ns() - t0) / n / 1000.0);
	xb_nft_set_close(&s);
}
