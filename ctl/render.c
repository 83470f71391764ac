/* Text rendering of control results: status, devices, tunnels and rules;
 * see render.h. The diagnostic commands are in render_diag.c. */
#include "ctl/render_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* --- status ---------------------------------------------------------------- */

/* "backend (reason)", or just the backend. */
static char *backend(json_t *o)
{
	char *b = render_text(get(o, "backend")), *why = render_text(get(o, "backend_reason")), *s = NULL;

	if (b && why && strcmp(why, "-") && strcmp(why, ""))
		if (asprintf(&s, "%s (%s)", b, why) < 0)
			s = NULL;
	if (!s) {
		s = b;
		b = NULL;
	}
	free(b);
	free(why);
	return s;
}

static char *uptime(json_t *o)
{
	char buf[32];
	uint64_t s;

	if (!render_uint_at(o, "uptime_s", &s))
		return strdup("-");
	xb_fmt_duration(buf, sizeof(buf), s);
	return strdup(buf);
}

static void status_reload(const struct xb_render *r, json_t *lr)
{
	json_t *ok = get(lr, "ok"), *e;
	char *when = render_ago_at(r, lr, "at"), *s = NULL;
	size_t i;

	if (asprintf(&s, "%s, %s", json_is_true(ok) ? "ok" : json_is_false(ok) ? "failed" : "-",
		     when ? when : "-") < 0)
		s = NULL;
	free(when);
	fprintf(r->out, "%slast reload%s: %s%s%s\n", render_paint(r, C_BOLD), render_paint(r, C_RESET),
		render_paint(r, json_is_false(ok) ? C_RED : C_GREEN), s ? s : "-", render_paint(r, C_RESET));
	free(s);
	json_array_foreach(get(lr, "errors"), i, e) {
		char *t = render_text(e);
		fprintf(r->out, "  %s\n", t ? t : "-");
		free(t);
	}
}

/* "3 in the last 5 min (mean 2.1, sd 1.0 over 48 windows): z 0.9" */
static char *device_events(json_t *k)
{
	if (!json_is_true(get(k, "judged")))
		return render_fmt("%.0f in the last 5 min (baseline: %lld of 12 windows needed)",
				json_number_value(get(k, "last_5min")),
				(long long)json_integer_value(get(k, "windows")));
	return render_fmt("%.0f in the last 5 min (mean %.1f, sd %.1f over %lld windows): z %.1f%s",
			json_number_value(get(k, "last_5min")), json_number_value(get(k, "mean_5min")),
			json_number_value(get(k, "sd_5min")),
			(long long)json_integer_value(get(k, "windows")),
			json_number_value(get(k, "z")), json_is_true(get(k, "anomaly")) ? ", ANOMALY" : "");
}

static void device_signals(const struct xb_render *r, json_t *ds)
{
	if (!ds)
		return;
	render_head(r, "devices", render_text(get(ds, "connected")));
	render_kv(r, "connects", device_events(get(ds, "connects")),
	   json_is_true(get(get(ds, "connects"), "anomaly")) ? C_RED : NULL);
	render_kv(r, "disconnects", device_events(get(ds, "disconnects")),
	   json_is_true(get(get(ds, "disconnects"), "anomaly")) ? C_RED : NULL);
}

/* "cluster: up" and the few facts an operator checks first (docs/ha.md). */
static void status_cluster(const struct xb_render *r, json_t *c)
{
	bool up = json_is_string(get(c, "state")) && !strcmp(json_string_value(get(c, "state")), "up");
	char *member;

	if (!c)
		return;
	member = render_text(get(c, "member"));
	fprintf(r->out, "%scluster%s: %s%s%s\n", render_paint(r, C_BOLD), render_paint(r, C_RESET),
		render_paint(r, up ? C_GREEN : C_RED), up ? "up" : "down", render_paint(r, C_RESET));
	render_kv(r, "node", render_fmt("%s in %s", json_string_value(get(c, "node")) ?: "-",
			       json_string_value(get(c, "name")) ?: "-"), NULL);
	render_kv(r, "members", render_fmt("%lld (last answered: %s)",
				  (long long)json_integer_value(get(c, "members")), member ? member : "-"),
	   NULL);
	render_kv(r, "revision", render_text(get(c, "revision")), NULL);
	render_kv(r, "keys", render_text(get(c, "keys")), NULL);
	free(member);
}

int xb_render_status(const struct xb_render *r, json_t *st)
{
	json_t *pol = get(st, "policy"), *ifc = get(st, "interface");

	if (!json_is_object(st))
		return -1;
	render_head(r, "xborderd", render_text(get(st, "version")));
	render_kv(r, "pid", render_text(get(st, "pid")), NULL);
	render_kv(r, "uptime", uptime(st), NULL);
	render_head(r, "policy", render_text(get(pol, "path")));
	render_kv(r, "loaded", render_ago_at(r, pol, "loaded_at"), NULL);
	render_kv(r, "devices", render_text(get(pol, "devices")), NULL);
	render_kv(r, "tunnels", render_text(get(pol, "tunnels")), NULL);
	render_kv(r, "rules", render_text(get(pol, "rules")), NULL);
	render_head(r, "interface", render_text(get(ifc, "ifname")));
	render_kv(r, "backend", backend(ifc), NULL);
	render_kv(r, "listening port", render_text(get(ifc, "listen_port")), NULL);
	render_kv(r, "public key", render_text(get(ifc, "public_key")), NULL);
	status_reload(r, get(st, "last_reload"));
	device_signals(r, get(st, "device_signals"));
	status_cluster(r, get(st, "cluster"));
	return 0;
}

/* --- devices --------------------------------------------------------------- */

/* "corp-laptop (0 failing, 12s old)"; "- (3 failing, no report)". */
static char *posture_cell(json_t *p)
{
	char *names, *s = NULL, age[40] = "no report";
	uint64_t a;

	if (!json_is_object(p))
		return strdup("-");
	if (render_uint_at(p, "report_age", &a)) {
		xb_fmt_duration(age, sizeof(age) - 4, a);
		strcat(age, " old");
	}
	if (!(names = render_text(get(p, "compliant"))))
		return NULL;
	if (asprintf(&s, "%s (%" JSON_INTEGER_FORMAT " failing, %s)", names,
		     json_integer_value(get(p, "failing_checks")), age) < 0)
		s = NULL;
	free(names);
	return s;
}

int xb_render_devices(const struct xb_render *r, json_t *list)
{
	static const char *const cols[] = { "NAME", "GROUPS", "ADDRESS4", "ADDRESS6",
					    "ENDPOINT", "HANDSHAKE", "RX", "TX", "POSTURE" };
	struct render_table t;
	json_t *d;
	size_t i;

	if (!json_is_array(list))
		return -1;
	if (!render_tab_init(&t, 9, json_array_size(list) + 1)) {
		render_tab_free(&t);
		return -1;
	}
	render_tab_head(&t, cols);
	json_array_foreach(list, i, d) {
		uint64_t hs = 0;
		bool never = render_uint_at(d, "last_handshake", &hs) && hs == 0;

		bool expired = json_is_true(get(d, "expired"));
		char *name = render_text(get(d, "name")), *marked = NULL;

		/* An expired device (docs/enrolment.md) is refused: say so by its name. */
		if (expired && name && asprintf(&marked, "%s (expired)", name) >= 0) {
			free(name);
			name = marked;
		}
		render_tab_put(&t, expired ? C_RED : C_GREEN, name);
		render_tab_put(&t, NULL, render_text(get(d, "groups")));
		render_tab_put(&t, NULL, render_text(get(d, "address4")));
		render_tab_put(&t, NULL, render_text(get(d, "address6")));
		render_tab_put(&t, NULL, render_text(get(d, "endpoint")));
		render_tab_put(&t, never ? C_YELLOW : NULL, render_ago_at(r, d, "last_handshake"));
		render_tab_put(&t, NULL, render_bytes_at(d, "rx_bytes"));
		render_tab_put(&t, NULL, render_bytes_at(d, "tx_bytes"));
		render_tab_put(&t, NULL, posture_cell(get(d, "posture")));
	}
	render_tab_print(r, &t);
	render_tab_free(&t);
	return 0;
}

/* --- tunnels --------------------------------------------------------------- */

static char *addresses(json_t *o)
{
	char *a4 = render_text(get(o, "address4")), *a6 = render_text(get(o, "address6")), *s = NULL;
	bool h4 = a4 && strcmp(a4, "-"), h6 = a6 && strcmp(a6, "-");

	if (h4 && h6 && asprintf(&s, "%s, %s", a4, a6) < 0)
		s = NULL;
	else if (!(h4 && h6))
		s = strdup(h4 ? a4 : h6 ? a6 : "-");
	free(a4);
	free(a6);
	return s;
}

static char *routing(json_t *o)
{
	char *mark = render_text(get(o, "mark")), *table = render_text(get(o, "table")), *s = NULL;

	if (asprintf(&s, "fwmark %s, table %s", mark ? mark : "-", table ? table : "-") < 0)
		s = NULL;
	free(mark);
	free(table);
	return s;
}

static char *transfer(json_t *o)
{
	char *rx = render_bytes_at(o, "rx_bytes"), *tx = render_bytes_at(o, "tx_bytes"), *s = NULL;

	if (asprintf(&s, "%s received, %s sent", rx ? rx : "-", tx ? tx : "-") < 0)
		s = NULL;
	free(rx);
	free(tx);
	return s;
}

/* The prober's figures (absent before health was wired, or for an
 * unprobed tunnel's numbers). */
/* "99.950 % over the last hour (SLO 99.9 %: met)" */
static void availability(const struct xb_render *r, json_t *h)
{
	double a = json_number_value(get(h, "availability")), slo = json_number_value(get(h, "slo"));
	json_t *met = get(h, "slo_met");

	if (!get(h, "availability"))
		return;
	if (a < 0)
		render_kv(r, "availability", strdup("- (nothing decided yet)"), NULL);
	else if (slo > 0 && json_is_boolean(met))
		render_kv(r, "availability", render_fmt("%.3f %% over the last hour (SLO %g %%: %s)", a * 100,
			slo, json_is_true(met) ? "met" : "missed"), json_is_true(met) ? NULL : C_RED);
	else
		render_kv(r, "availability", render_fmt("%.3f %% over the last hour", a * 100), NULL);
}

/* "icmp:192.0.2.26 up, icmp:203.0.113.21 down" */
static void monitors(const struct xb_render *r, json_t *targets)
{
	char *s = NULL, *n;
	json_t *t;
	size_t i;

	if (json_array_size(targets) < 2)
		return;
	json_array_foreach(targets, i, t) {
		if (asprintf(&n, "%s%s%s %s", s ? s : "", s ? ", " : "",
			     json_string_value(get(t, "target")) ?: "-",
			     json_string_value(get(t, "state")) ?: "-") < 0)
			n = NULL;
		free(s);
		if (!(s = n))
			return;
	}
	render_kv(r, "monitors", s, NULL);
}

static void health(const struct xb_render *r, json_t *h)
{
	json_t *a = get(h, "active_for"), *p;

	if (!h)
		return;
	render_kv(r, "rank", render_text(get(h, "rank")), NULL);
	if (get(h, "rtt_mean_ms"))
		render_kv(r, "probes", render_fmt("every %lld ms; RTT %.3f ms (min %.3f, p95 %.3f), "
			"jitter %.3f ms, loss %.1f %%, score %.1f",
			(long long)json_integer_value(get(h, "interval_ms")),
			json_number_value(get(h, "rtt_mean_ms")), json_number_value(get(h, "rtt_min_ms")),
			json_number_value(get(h, "rtt_p95_ms")), json_number_value(get(h, "jitter_ms")),
			json_number_value(get(h, "loss_pct")), json_number_value(get(h, "score"))), NULL);
	availability(r, h);
	monitors(r, get(h, "targets"));
	if ((p = get(h, "passive")))
		render_kv(r, "data plane", render_fmt("%s; last received %.0f ms ago; %lld down%s at a first "
			"missed round", json_string_value(get(p, "verdict")) ?: "-",
			json_number_value(get(p, "rx_age_ms")), (long long)json_integer_value(get(p, "downs")),
			json_integer_value(get(p, "downs")) == 1 ? "" : "s"), NULL);
	render_kv(r, "active for", json_array_size(a) ? render_list(a, ", ", "-") : strdup("-"), NULL);
}

static void tunnel(const struct xb_render *r, json_t *t)
{
	json_t *state = get(t, "state");
	bool up = json_is_string(state) && !strcmp(json_string_value(state), "up");
	json_t *type = get(t, "type");
	bool gre = json_is_string(type) && !strcmp(json_string_value(type), "gre");

	render_head(r, "tunnel", render_text(get(t, "name")));
	render_kv(r, "state", render_text(state), up ? C_GREEN : C_RED);
	render_kv(r, "interface", render_text(get(t, "ifname")), NULL);
	render_kv(r, "type", render_text(get(t, "type")), NULL);
	render_kv(r, "backend", backend(t), NULL);
	if (!gre) {
		render_kv(r, "endpoint", render_text(get(t, "endpoint")), NULL);
		render_kv(r, "peer public key", render_text(get(t, "peer_public_key")), NULL);
	}
	render_kv(r, "addresses", addresses(t), NULL);
	render_kv(r, "routing", routing(t), NULL);
	if (gre) {
		render_kv(r, "local", render_text(get(t, "local")), NULL);
		render_kv(r, "remote", render_text(get(t, "remote")), NULL);
		render_kv(r, "key", render_text(get(t, "key")), NULL);
		render_kv(r, "keepalive", render_fmt("%s (%lld sent, %lld replies)",
			json_string_value(get(t, "keepalive")) ?: "-",
			(long long)json_integer_value(get(t, "keepalives_sent")),
			(long long)json_integer_value(get(t, "keepalive_replies"))), NULL);
	} else {
		render_kv(r, "latest handshake", render_ago_at(r, t, "last_handshake"), NULL);
	}
	render_kv(r, "transfer", transfer(t), NULL);
	health(r, get(t, "health"));
}

int xb_render_tunnels(const struct xb_render *r, json_t *list)
{
	json_t *t;
	size_t i;

	if (!json_is_array(list))
		return -1;
	json_array_foreach(list, i, t) {
		if (i)
			fputc('\n', r->out);
		tunnel(r, t);
	}
	return 0;
}

/* --- rules ------------------------------------------------------------------- */

/* Who a rule is for: groups, and devices as @name; "any" when both lists are
 * empty, "-" when both are missing. */
static char *rule_from(json_t *rule)
{
	json_t *all = json_copy(get(rule, "groups")), *d, *at;
	size_t i;
	char *s;

	if (!get(rule, "groups") && !get(rule, "devices"))
		return strdup("-");
	if (!json_is_array(all)) {
		json_decref(all);
		all = json_array();
	}
	json_array_foreach(get(rule, "devices"), i, d) {
		at = json_is_string(d) ? json_sprintf("@%s", json_string_value(d)) : NULL;
		json_array_append_new(all, at ? at : json_incref(d));
	}
	s = render_list(all, ",", "any");
	json_decref(all);
	return s;
}

/* "203.0.113.0/25,list:lists/erp.txt(10000),erp.acme.cn": prefixes, list
 * files with the prefixes each holds, names; "any" when all are empty. */
static char *rule_to(json_t *rule)
{
	json_t *all = json_copy(get(rule, "to")), *l;
	char *s;
	size_t i;

	if (!get(rule, "to") && !get(rule, "to_lists") && !get(rule, "domains"))
		return strdup("-");
	if (!json_is_array(all)) {
		json_decref(all);
		all = json_array();
	}
	json_array_foreach(get(rule, "to_lists"), i, l)
		json_array_append_new(all, json_sprintf("list:%s(%" JSON_INTEGER_FORMAT ")",
							json_string_value(get(l, "path")) ?
							json_string_value(get(l, "path")) : "?",
							json_integer_value(get(l, "prefixes"))));
	json_array_extend(all, get(rule, "domains"));
	s = render_list(all, ",", "any");
	json_decref(all);
	return s;
}

/* "tcp,udp/443,8000-8100"; "any" when both lists are empty, "-" when both
 * are missing. */
static char *rule_service(json_t *rule)
{
	json_t *pr = get(rule, "protocols"), *po = get(rule, "ports");
	char *p, *q, *s = NULL;

	if (!pr && !po)
		return strdup("-");
	p = render_list(pr, ",", "any");
	q = po ? render_list(po, ",", "") : strdup("");
	if (p && q && *q && asprintf(&s, "%s/%s", p, q) < 0)
		s = NULL;
	else if (p && q && !*q)
		s = strdup(p);
	free(p);
	free(q);
	return s;
}

/* The tunnel in use, with its path's availability over the last hour when
 * the daemon has one: "cmi (99.95 %)", a missed SLO flagged. */
static char *rule_active(json_t *rule)
{
	json_t *h = get(rule, "health");
	double a = json_number_value(get(h, "availability"));
	char *act = render_text(get(rule, "active")), *s;

	if (!h || a < 0 || !act)
		return act;
	s = render_fmt("%s (%.2f %%%s)", act, a * 100,
		     json_is_false(get(h, "slo_met")) ? ", below SLO" : "");
	free(act);
	return s;
}

static void rule_row(const struct xb_render *r, struct render_table *t, json_t *rule)
{
	json_t *act = get(rule, "action");
	bool allow = json_is_string(act) && !strcmp(json_string_value(act), "allow");
	uint64_t pk;
	char *pkts = NULL;

	(void)r;
	if (!render_uint_at(rule, "packets", &pk) || asprintf(&pkts, "%" PRIu64, pk) < 0)
		pkts = strdup("-");
	render_tab_put(t, C_GREEN, render_text(get(rule, "name")));
	render_tab_put(t, allow ? C_GREEN : C_RED, render_text(act));
	render_tab_put(t, NULL, rule_from(rule));
	render_tab_put(t, NULL, render_list(get(rule, "posture"), ",", "any"));
	render_tab_put(t, NULL, rule_to(rule));
	render_tab_put(t, NULL, rule_service(rule));
	render_tab_put(t, NULL, render_text(get(rule, "via")));
	render_tab_put(t, NULL, rule_active(rule));
	render_tab_put(t, NULL, pkts);
	render_tab_put(t, NULL, render_bytes_at(rule, "bytes"));
}

int xb_render_rules(const struct xb_render *r, json_t *list)
{
	static const char *const cols[] = { "NAME", "ACTION", "FROM", "POSTURE", "TO",
					    "SERVICE", "VIA", "ACTIVE", "PACKETS", "BYTES" };
	struct render_table t;
	json_t *rule;
	size_t i;

	if (!json_is_array(list))
		return -1;
	if (!render_tab_init(&t, 10, json_array_size(list) + 1)) {
		render_tab_free(&t);
		return -1;
	}
	render_tab_head(&t, cols);
	json_array_foreach(list, i, rule)
		rule_row(r, &t, rule);
	render_tab_print(r, &t);
	render_tab_free(&t);
	return 0;
}
