/* Per-device metrics; see metrics_devices.h. */
#include "gateway/metrics_devices.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void xb_mdev_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static size_t device_of(const struct xb_policy *p, const char *addr)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, addr, &a4) == 1) {
		for (size_t i = 0; i < p->n_devices; i++)
			if (p->devices[i].has4 && p->devices[i].address4.s_addr == a4.s_addr)
				return i;
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		for (size_t i = 0; i < p->n_devices; i++)
			if (p->devices[i].has6 && !memcmp(&p->devices[i].address6, &a6, sizeof(a6)))
				return i;
	}
	return SIZE_MAX;
}

static size_t tunnel_of(const struct xb_policy *p, const char *ifname)
{
	for (size_t i = 0; i < p->n_tunnels; i++)
		if (!strcmp(p->tunnels[i].ifname, ifname))
			return i;
	return SIZE_MAX;
}

/* {"elem": {"val": {"concat": [ADDR, IFNAME]}, "counter": {"bytes": N}}} */
static void elem_add(json_t *e, bool rx, const struct xb_policy *p, uint64_t *bytes)
{
	json_t *el = json_object_get(e, "elem");
	json_t *cc = json_object_get(json_object_get(el, "val"), "concat");
	json_t *b = json_object_get(json_object_get(el, "counter"), "bytes");
	const char *addr = json_string_value(json_array_get(cc, 0));
	const char *ifn = json_string_value(json_array_get(cc, 1));
	size_t dv, tu;

	if (!addr || !ifn || !json_is_integer(b))
		return;
	dv = device_of(p, addr);
	tu = tunnel_of(p, ifn);
	if (dv != SIZE_MAX && tu != SIZE_MAX)
		bytes[(dv * p->n_tunnels + tu) * 2 + rx] += (uint64_t)json_integer_value(b);
}

int xb_mdev_acct_add(const char *json, bool rx, const struct xb_policy *p, uint64_t *bytes)
{
	json_t *root = json_loads(json, 0, NULL), *o, *e;
	size_t i, k;
	int ret = -1;

	json_array_foreach(json_object_get(root, "nftables"), i, o) {
		json_t *set = json_object_get(o, "set");

		if (!set)
			continue;
		ret = 0;
		json_array_foreach(json_object_get(set, "elem"), k, e)
			elem_add(e, rx, p, bytes);
	}
	json_decref(root);
	return ret;
}

/* Row r of the page: device r, or the rest at r == max. */
static void device_label(FILE *f, const struct xb_mdev_page *pg, size_t r)
{
	fputs("device=\"", f);
	xb_mdev_label(f, r < pg->max ? pg->dev[r].name : XB_MDEV_OTHER);
	fputc('"', f);
}

static size_t rows(const struct xb_mdev_page *pg)
{
	return pg->n_dev > pg->max ? (size_t)pg->max + 1 : pg->n_dev;
}

/* The devices a row stands for: [*lo, *hi). */
static void span(const struct xb_mdev_page *pg, size_t r, size_t *lo, size_t *hi)
{
	*lo = r;
	*hi = r < pg->max ? r + 1 : pg->n_dev;
}

static void bytes(FILE *f, const struct xb_mdev_page *pg)
{
	static const char *const dir[] = { "tx", "rx" };
	size_t nt = pg->p->n_tunnels, lo, hi;

	fprintf(f, "# HELP xborder_device_tunnel_bytes_total inner IP bytes between a device and a "
		"tunnel (tx: device to tunnel), since the last reload\n"
		"# TYPE xborder_device_tunnel_bytes_total counter\n");
	for (size_t r = 0; r < rows(pg); r++)
		for (size_t t = 0; t < nt; t++)
			for (int d = 0; d < 2; d++) {
				uint64_t sum = 0;

				span(pg, r, &lo, &hi);
				for (size_t i = lo; i < hi; i++)
					sum += pg->bytes[(i * nt + t) * 2 + d];
				fputs("xborder_device_tunnel_bytes_total{", f);
				device_label(f, pg, r);
				fputs(",tunnel=\"", f);
				xb_mdev_label(f, pg->p->tunnels[t].name);
				fprintf(f, "\",direction=\"%s\"} %llu\n", dir[d], (unsigned long long)sum);
			}
}

/* The oldest handshake age of the row's devices; -1 when none had one. */
static int64_t age(const struct xb_mdev_page *pg, size_t r)
{
	int64_t a = -1;
	size_t lo, hi;

	span(pg, r, &lo, &hi);
	for (size_t i = lo; i < hi; i++)
		if (pg->dev[i].handshake > 0) {
			int64_t x = pg->now - pg->dev[i].handshake;
			if (x > a)
				a = x < 0 ? 0 : x;
		}
	return a;
}

static void handshakes(FILE *f, const struct xb_mdev_page *pg)
{
	fprintf(f, "# HELP xborder_device_handshake_age_seconds seconds since the device's last "
		"WireGuard handshake (-1: none since start; _other: the oldest)\n"
		"# TYPE xborder_device_handshake_age_seconds gauge\n");
	for (size_t r = 0; r < rows(pg); r++) {
		fputs("xborder_device_handshake_age_seconds{", f);
		device_label(f, pg, r);
		fprintf(f, "} %lld\n", (long long)age(pg, r));
	}
}

static void posture(FILE *f, const struct xb_mdev_page *pg)
{
	static const char *const st[] = { "compliant", "noncompliant", "no_report" };
	size_t lo, hi;

	if (!pg->posture)
		return;
	fprintf(f, "# HELP xborder_device_posture devices in each posture state (compliant: passes "
		"a profile)\n# TYPE xborder_device_posture gauge\n");
	for (size_t r = 0; r < rows(pg); r++)
		for (int s = 0; s < XB_MDEV_POSTURE_N; s++) {
			unsigned n = 0;

			span(pg, r, &lo, &hi);
			for (size_t i = lo; i < hi; i++)
				n += pg->dev[i].posture == (enum xb_mdev_posture)s;
			fputs("xborder_device_posture{", f);
			device_label(f, pg, r);
			fprintf(f, ",state=\"%s\"} %u\n", st[s], n);
		}
}

void xb_mdev_render(FILE *f, const struct xb_mdev_page *pg)
{
	bytes(f, pg);
	handshakes(f, pg);
	posture(f, pg);
}
