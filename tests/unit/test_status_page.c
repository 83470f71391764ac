/* The status page (gateway/status_page.h):
 *   golden   two tunnels (one with a gap in its samples, one never sampled),
 *            devices with hostile names and a hostile event, equal to
 *            tests/metrics/status.html
 *   escape   no name's markup survives: no `<script', no raw quote closes
 *            an attribute; every character HTML gives meaning is escaped
 *   ring     the ring keeps the last XB_STATUS_SAMPLES in order, and the
 *            newest sample is drawn at the right edge
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/status_page.h"
#include "tests/lib/check.h"
#include "tests/lib/golden.h"

static char *render(const struct xb_status_view *v)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	CHECK(f);
	xb_status_render(f, v);
	CHECK(fclose(f) == 0);
	return s;
}

static const char *evil = "<script>alert(\"x\")</script>' onload='x'&amp;";

static char *page(void)
{
	static struct xb_status_series a = { .tunnel = "cmi" };
	struct xb_status_tunnel t[] = { { "cmi", "up", &a }, { "hkt<b>", "unprobed", NULL } };
	struct xb_status_device d[] = { { "alice", "compliant", 12 }, { evil, "no_report", -1 } };
	const char *ev[] = { "{\"event\":\"state\",\"tunnel\":\"cmi\",\"why\":\"</code><img src=x>\"}" };
	struct xb_status_view v = { t, 2, d, 2, 3, ev, 1, 60, "2026-12-05T10:00:00Z" };

	memset(&a, 0, sizeof(a));
	for (int i = 0; i < 5; i++) {
		double s[XB_STATUS_N] = { 20.0 + i, i == 2 ? NAN : 10.0 * i, 1.5 };
		xb_status_push(&a, s);
	}
	return render(&v);
}

TEST(golden)
{
	char *s = page();

	xb_golden("tests/metrics/status.html", s);
	free(s);
}

TEST(escape)
{
	char *s = page();
	char *q;

	CHECK(!strstr(s, "<script"));
	CHECK(!strstr(s, "hkt<b>"));
	CHECK(!strstr(s, "' onload"));
	CHECK(!strstr(s, "<img"));
	CHECK(strstr(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=&#39;x&#39;&amp;amp;"));
	/* Every '<' opens a tag of ours. */
	for (q = s; (q = strchr(q, '<')); q++)
		CHECK(strchr("!/hmtbpsfrcdylo", q[1]) && strncmp(q, "<script", 7) && strncmp(q, "<b>", 3));
	free(s);
}

TEST(ring)
{
	struct xb_status_series s = { 0 };
	struct xb_status_tunnel t = { "t", "up", &s };
	struct xb_status_view v = { &t, 1, NULL, 0, 0, NULL, 0, 1, "" };
	char *p, *pts, want[64];

	for (int i = 0; i < XB_STATUS_SAMPLES + 7; i++) {
		double x[XB_STATUS_N] = { i, 0, 0 };
		xb_status_push(&s, x);
	}
	CHECK_INT(s.n, ==, XB_STATUS_SAMPLES);
	p = render(&v);
	/* The first plot is RTT: 60 points, the oldest kept (7) at x 0 and the
	 * newest (66, the largest) at the top right. */
	CHECK((pts = strstr(p, "points=\"")));
	pts += 8;
	CHECK(!strncmp(pts, "0.0,", 4));
	snprintf(want, sizeof(want), " 360.0,1.0\"");
	CHECK(strstr(pts, want) && strstr(pts, want) < strstr(pts, "/>"));
	CHECK(strstr(p, "RTT: 66.0 ms (max 66.0)"));
	free(p);
}
