/* Tunnel health settings: per tunnel, how it is probed (probe_interval,
 * probe_targets); in the gateway section, where metrics are served and
 * where events go (metrics, notify_command, notify_webhook, slo; the
 * notification targets are policy/notify.c). The
 * daemon's side is gateway/health/health.c; docs/probing.md says what they do.
 *
 * Targets are checked with the prober's own parser (probe/probe.h) and
 * kept in its canonical form, so that --print writes what loads back equal.
 */
#include "policy/internal.h"
#include "probe/probe.h"

#include <stdlib.h>
#include <string.h>

#define PROBE_INTERVAL_MIN_MS	(XB_PROBE_MIN_INTERVAL_NS / 1000000)
#define PROBE_INTERVAL_MAX_MS	60000
#define PROBE_INTERVAL_DEFAULT_MS (XB_PROBE_DEFAULT_INTERVAL_NS / 1000000)
#define NOTIFY_ARGV_MAX		32

static void probe_targets(struct ld *l, const config_setting_t *s, const char *what,
			  struct xb_tunnel *t)
{
	config_setting_t *list = xbp_get_list(l, s, "probe_targets", what);
	char qb[QUOTE_MAX + 4], buf[512];

	if (list && config_setting_length(list) > XB_PROBE_MAX_TARGETS)
		xbp_err(l, list, "%s: probe_targets has %d targets; at most %d", what,
			config_setting_length(list), XB_PROBE_MAX_TARGETS);
	for (int i = 0; list && i < config_setting_length(list) && i < XB_PROBE_MAX_TARGETS; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "probe_targets", what), *err = NULL;
		struct xb_probe_target pt;
		char **nv;

		if (!v)
			continue;
		if (!xb_probe_target_parse(v, &pt, &err)) {
			xbp_err(l, e, "%s: probe target `%s': %s (icmp:ADDR, tcp:ADDR:PORT, "
				"http:ADDR[:PORT]/PATH, dns:ADDR[:PORT]/NAME)", what, xbp_quote(qb, v), err);
			continue;
		}
		if (!(nv = xb_grow(t->probe_targets, t->n_probe_targets, sizeof(*nv)))) {
			l->oom = true;
			return;
		}
		t->probe_targets = nv;
		nv[t->n_probe_targets++] = xbp_strdup(l, xb_probe_target_str(&pt, buf, sizeof(buf)));
	}
}

void xbp_parse_probe(struct ld *l, const config_setting_t *s, const char *what, struct xb_tunnel *t)
{
	long v;

	t->probe_interval_ms = PROBE_INTERVAL_DEFAULT_MS;
	if (xbp_get_int(l, s, "probe_interval", what, PROBE_INTERVAL_MIN_MS, PROBE_INTERVAL_MAX_MS, &v))
		t->probe_interval_ms = (unsigned)v;
	probe_targets(l, s, what, t);
	t->slo = -1;
	xbp_parse_slo(l, s, what, &t->slo);
}

/* slo: availability over the last hour, in per cent, that an event is sent
 * below; 0 is off. Left as it is when not written. */
void xbp_parse_slo(struct ld *l, const config_setting_t *s, const char *what, double *slo)
{
	const config_setting_t *m = config_setting_get_member(s, "slo");

	if (!m)
		return;
	if (config_setting_type(m) == CONFIG_TYPE_FLOAT)
		*slo = config_setting_get_float(m);
	else if (config_setting_type(m) == CONFIG_TYPE_INT)
		*slo = config_setting_get_int(m);
	else
		*slo = -1;
	if (!(*slo >= 0 && *slo < 100))
		xbp_err(l, m, "%s: slo must be a number from 0 (off) to below 100 "
			"(availability in per cent over the last hour)", what);
}

static void notify_command(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	config_setting_t *list = xbp_get_list(l, s, "notify_command", "gateway");
	int n = list ? config_setting_length(list) : 0;

	if (!list)
		return;
	if (n == 0 || n > NOTIFY_ARGV_MAX) {
		xbp_err(l, list, "gateway: notify_command needs 1 to %d strings (the program, then "
			"its arguments)", NOTIFY_ARGV_MAX);
		return;
	}
	if (!(g->notify_command = calloc((size_t)n + 1, sizeof(char *)))) {
		l->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "notify_command", "gateway");

		if (!v)
			continue;
		if (i == 0 && v[0] != '/')
			xbp_err(l, e, "gateway: notify_command: the program `%s' is not an absolute "
				"path (no shell, no PATH search)", v);
		g->notify_command[g->n_notify_command++] = xbp_strdup(l, v);
	}
}

void xbp_parse_health(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const char *v;
	char qb[QUOTE_MAX + 4];
	long n;

	if ((v = xbp_get_str(l, s, "metrics", "gateway", NULL))) {
		g->metrics = xbp_strdup(l, v);
		if (!xb_endpoint_parse(&g->metrics_addr, v) || !g->metrics_addr.in.sin_port)
			xbp_err(l, config_setting_get_member(s, "metrics"), "gateway: metrics `%s' is "
				"not ADDR:PORT (numeric, e.g. \"127.0.0.1:9180\")", xbp_quote(qb, v));
	}
	g->metrics_devices_max = XB_METRICS_DEVICES_MAX;
	if (xbp_get_int(l, s, "metrics_devices_max", "gateway", 0, 100000, &n))
		g->metrics_devices_max = (unsigned)n;
	g->status_interval = XB_STATUS_INTERVAL;
	if (xbp_get_int(l, s, "status_interval", "gateway", 1, 3600, &n))
		g->status_interval = (unsigned)n;
	notify_command(l, s, g);
	xbp_parse_notify(l, s, g);
	xbp_parse_slo(l, s, "gateway", &g->slo);
}

void xbp_print_probe(const struct xb_tunnel *t, FILE *out)
{
	fprintf(out, "    probe_interval = %u;\n", t->probe_interval_ms);
	if (t->slo >= 0)
		fprintf(out, "    slo = %g;\n", t->slo);
	if (!t->n_probe_targets)
		return;
	fputs("    probe_targets = [ ", out);
	for (size_t i = 0; i < t->n_probe_targets; i++) {
		fputs(i ? ", " : "", out);
		xbp_put_str(out, t->probe_targets[i]);
	}
	fputs(" ];\n", out);
}

void xbp_print_health(const struct xb_gateway *g, FILE *out)
{
	if (g->metrics) {
		fputs("  metrics = ", out);
		xbp_put_str(out, g->metrics);
		fputs(";\n", out);
		fprintf(out, "  metrics_devices_max = %u;\n  status_interval = %u;\n",
			g->metrics_devices_max, g->status_interval);
	}
	if (g->n_notify_command) {
		fputs("  notify_command = [ ", out);
		for (size_t i = 0; i < g->n_notify_command; i++) {
			fputs(i ? ", " : "", out);
			xbp_put_str(out, g->notify_command[i]);
		}
		fputs(" ];\n", out);
	}
	if (g->notify_webhook) {
		fputs("  notify_webhook = ", out);
		xbp_put_str(out, g->notify_webhook);
		fputs(";\n", out);
	}
	xbp_print_notify(g, out);
	if (g->slo > 0)
		fprintf(out, "  slo = %.17g%s;\n", g->slo, g->slo == (double)(long)g->slo ? ".0" : "");
}

void xbp_health_free(struct xb_gateway *g, struct xb_tunnel *t)
{
	if (t) {
		for (size_t i = 0; i < t->n_probe_targets; i++)
			free(t->probe_targets[i]);
		free(t->probe_targets);
	}
	if (g) {
		free(g->metrics);
		for (size_t i = 0; i < g->n_notify_command; i++)
			free(g->notify_command[i]);
		free(g->notify_command);
		free(g->notify_webhook);
		xbp_notify_free(g);
	}
}
