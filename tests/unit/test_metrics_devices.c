/* Per-device metrics (gateway/metrics_devices.h):
 *   golden     the exposition of three devices, two tunnels and a cap of 2
 *              (the third in "_other"), device names with `"', `\' and a
 *              newline, equal to tests/metrics/devices.prom
 *   cardinality for caps 0..5 and 0..4 devices: the number of series is
 *              the documented formula, and the bytes add up to the input
 *              whatever the cap (nothing lost into or out of "_other")
 *   acct       nft's JSON listing of an acct set, as `nft -j list set'
 *              prints it, lands in the device's and tunnel's cell; unknown
 *              addresses and interfaces are skipped; garbage is an error
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics_devices.h"
#include "policy/policy.h"
#include "tests/lib/check.h"
#include "tests/lib/golden.h"

static char *hostile[] = { "alice", "bob\"} 1\nxborder_fake{x=\"", "c\\d" };

static void model(struct xb_policy *p, struct xb_tunnel *t, struct xb_device *dv)
{
	memset(p, 0, sizeof(*p));
	memset(t, 0, 2 * sizeof(*t));
	memset(dv, 0, 3 * sizeof(*dv));
	t[0].name = "cmi";
	strcpy(t[0].ifname, "xb-cmi");
	t[1].name = "hkt";
	strcpy(t[1].ifname, "xb-hkt");
	for (int i = 0; i < 3; i++) {
		char a[32];

		dv[i].name = hostile[i];
		dv[i].has4 = dv[i].has6 = true;
		snprintf(a, sizeof(a), "198.51.100.%d", 10 + i);
		inet_pton(AF_INET, a, &dv[i].address4);
		snprintf(a, sizeof(a), "2001:db8::%d", 10 + i);
		inet_pton(AF_INET6, a, &dv[i].address6);
	}
	p->tunnels = t;
	p->n_tunnels = 2;
	p->devices = dv;
	p->n_devices = 3;
}

static char *render(const struct xb_mdev_page *pg)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	CHECK(f);
	xb_mdev_render(f, pg);
	CHECK(fclose(f) == 0);
	return s;
}

TEST(golden)
{
	struct xb_policy p;
	struct xb_tunnel t[2];
	struct xb_device dv[3];
	struct xb_mdev m[3] = {
		{ hostile[0], 1000000 - 5, XB_MDEV_COMPLIANT },
		{ hostile[1], 0, XB_MDEV_NO_REPORT },
		{ hostile[2], 1000000 - 400, XB_MDEV_NONCOMPLIANT },
	};
	uint64_t bytes[3 * 2 * 2];
	struct xb_mdev_page pg = { .p = &p, .dev = m, .n_dev = 3, .bytes = bytes,
				   .posture = true, .now = 1000000, .max = 2 };
	char *s;

	model(&p, t, dv);
	for (size_t i = 0; i < 12; i++)
		bytes[i] = 1000 * (i + 1);
	s = render(&pg);
	/* The hostile name cannot close its label or start a line. */
	CHECK(!strstr(s, "\nxborder_fake"));
	xb_golden("tests/metrics/devices.prom", s);
	free(s);
}

static size_t count_lines(const char *s, const char *prefix, uint64_t *sum)
{
	size_t n = 0, k = strlen(prefix);

	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, prefix, k)) {
			char *line = strndup(l, strcspn(l, "\n"));

			CHECK(line && strrchr(line, ' '));
			n++;
			if (sum)
				*sum += strtoull(strrchr(line, ' ') + 1, NULL, 10);
			free(line);
		}
	return n;
}

TEST(cardinality)
{
	struct xb_policy p;
	struct xb_tunnel t[2];
	struct xb_device dv[3];
	struct xb_mdev m[4] = { { "a", 0, 0 }, { "b", 0, 1 }, { "c", 0, 2 }, { "d", 0, 0 } };
	uint64_t bytes[4 * 2 * 2], want = 0;

	model(&p, t, dv);
	for (size_t i = 0; i < 16; i++)
		want += bytes[i] = 7 * i + 1;
	for (size_t nd = 0; nd <= 4; nd++)
		for (unsigned max = 0; max <= 5; max++) {
			struct xb_mdev_page pg = { .p = &p, .dev = m, .n_dev = nd, .bytes = bytes,
						   .posture = true, .now = 100, .max = max };
			size_t d1 = (nd < max ? nd : max) + (nd > max), in = 0;
			uint64_t got = 0;
			char *s = render(&pg);

			for (size_t i = 0; i < nd * 4; i++)
				in += bytes[i];
			CHECK_INT(count_lines(s, "xborder_device_tunnel_bytes_total{", &got), ==, 2 * d1 * 2);
			CHECK_INT(got, ==, in);
			CHECK_INT(count_lines(s, "xborder_device_handshake_age_seconds{", NULL), ==, d1);
			CHECK_INT(count_lines(s, "xborder_device_posture{", NULL), ==, 3 * d1);
			free(s);
		}
	(void)want;
}

TEST(acct)
{
	struct xb_policy p;
	struct xb_tunnel t[2];
	struct xb_device dv[3];
	uint64_t b[12] = { 0 };
	const char *js = "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\"}}, {\"set\": "
		"{\"family\": \"inet\", \"name\": \"acct_rx6\", \"table\": \"xborder\", \"elem\": ["
		"{\"elem\": {\"val\": {\"concat\": [\"2001:db8::11\", \"xb-hkt\"]}, "
		"\"counter\": {\"packets\": 3, \"bytes\": 200}}},"
		"{\"elem\": {\"val\": {\"concat\": [\"2001:db8::99\", \"xb-hkt\"]}, "
		"\"counter\": {\"packets\": 1, \"bytes\": 50}}},"
		"{\"elem\": {\"val\": {\"concat\": [\"2001:db8::12\", \"eth0\"]}, "
		"\"counter\": {\"packets\": 1, \"bytes\": 60}}}]}}]}";
	const char *js4 = "{\"nftables\": [{\"set\": {\"name\": \"acct_tx4\", \"elem\": ["
		"{\"elem\": {\"val\": {\"concat\": [\"198.51.100.10\", \"xb-cmi\"]}, "
		"\"counter\": {\"packets\": 2, \"bytes\": 120}}}]}}]}";

	model(&p, t, dv);
	CHECK_INT(xb_mdev_acct_add(js, true, &p, b), ==, 0);
	CHECK_INT(xb_mdev_acct_add(js4, false, &p, b), ==, 0);
	CHECK_INT(xb_mdev_acct_add(js4, false, &p, b), ==, 0);	/* v4 and v6 add up */
	for (size_t i = 0; i < 12; i++)
		CHECK_INT(b[i], ==, i == (1 * 2 + 1) * 2 + 1 ? 200 : i == 0 ? 240 : 0);
	CHECK_INT(xb_mdev_acct_add("{\"nftables\": []}", false, &p, b), ==, -1);
	CHECK_INT(xb_mdev_acct_add("not json", false, &p, b), ==, -1);
}
