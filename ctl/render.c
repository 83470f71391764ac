/* Text rendering of control results; see render.h. */
#include "ctl/render.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define C_BOLD "\033[1m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define C_RESET "\033[0m"

void xb_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.2f %s", v, unit[u]);
}

void xb_fmt_duration(char *buf, size_t size, uint64_t s)
{
	if (s < 60)
		snprintf(buf, size, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* --- values as text ------------------------------------------------------ */

static void scalar(FILE *f, json_t *v)
{
	char *s;

	if (json_is_string(v)) {
		fputs(json_string_value(v), f);
	} else if (json_is_integer(v)) {
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		fprintf(f, "%g", json_real_value(v));
	} else if (json_is_boolean(v)) {
		fputs(json_is_true(v) ? "yes" : "no", f);
	} else if (!v || json_is_null(v)) {
		fputs("-", f);
	} else if ((s = json_dumps(v, JSON_COMPACT))) {
		fputs(s, f);
		free(s);
	}
}

/* v as text, malloc'ed: "-" when missing or null; a list joined by sep,
 * empty_list when empty; control characters as '?'. NULL when out of memory. */
static char *text_list(json_t *v, const char *sep, const char *empty_list)
{
	char *s = NULL;
	size_t n = 0, i;
	json_t *e;
	FILE *f = open_memstream(&s, &n);

	if (!f)
		return NULL;
	if (json_is_array(v) && json_array_size(v) == 0)
		fputs(empty_list, f);
	else if (json_is_array(v))
		json_array_foreach(v, i, e) {
			if (i)
				fputs(sep, f);
			scalar(f, e);
		}
	else
		scalar(f, v);
	if (fclose(f))
		return NULL;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

static char *text(json_t *v)
{
	return text_list(v, ",", "-");
}

static json_t *get(json_t *o, const char *key)
{
	return json_object_get(o, key);
}

/* Unsigned integer at key, or false when missing or of another type. */
static bool uint_at(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static char *bytes_at(json_t *o, const char *key)
{
	char buf[32];
	uint64_t b;

	if (!uint_at(o, key, &b))
		return strdup("-");
	xb_fmt_bytes(buf, sizeof(buf), b);
	return strdup(buf);
}

/* A wall-clock time at key as "1m40s ago"; 0 is "never". A time ahead of
 * ours (clock skew) counts as now. */
static char *ago_at(const struct xb_render *r, json_t *o, const char *key)
{
	char buf[48];
	uint64_t t;

	if (!uint_at(o, key, &t))
		return strdup("-");
	if (t == 0)
		return strdup("never");
	xb_fmt_duration(buf, sizeof(buf) - 4,
			(int64_t)t < (int64_t)r->now ? (uint64_t)((int64_t)r->now - (int64_t)t) : 0);
	strcat(buf, " ago");
	return strdup(buf);
}

static const char *paint(const struct xb_render *r, const char *code)
{
	return r->colour ? code : "";
}

/* --- tables -------------------------------------------------------------- */

/* Cells row by row, each with its colour (or NULL); printed with every column
 * as wide as its widest cell, two spaces apart, the last one unpadded. */
struct table {
	size_t cols, n, cap;
	char **cell;
	const char **colour;
};

static bool tab_init(struct table *t, size_t cols, size_t rows)
{
	t->cols = cols;
	t->n = 0;
	t->cap = cols * rows;
	t->cell = calloc(t->cap, sizeof(*t->cell));
	t->colour = calloc(t->cap, sizeof(*t->colour));
	return t->cell && t->colour;
}

/* Adds s (malloc'ed, taken over; NULL prints as "-"). */
static void tab_put(struct table *t, const char *colour, char *s)
{
	if (t->n < t->cap) {
		t->colour[t->n] = colour;
		t->cell[t->n++] = s;
	} else {
		free(s);
	}
}

static void tab_head(struct table *t, const char *const *names)
{
	for (size_t i = 0; i < t->cols; i++)
		tab_put(t, C_BOLD, strdup(names[i]));
}

/* Display width: UTF-8 characters, not bytes. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void tab_print(const struct xb_render *r, struct table *t)
{
	size_t *w = calloc(t->cols, sizeof(*w)), i;

	for (i = 0; w && i < t->n; i++) {
		size_t cw = width(t->cell[i] ? t->cell[i] : "-");
		if (cw > w[i % t->cols])
			w[i % t->cols] = cw;
	}
	for (i = 0; w && i < t->n; i++) {
		const char *s = t->cell[i] ? t->cell[i] : "-";
		bool last = i % t->cols == t->cols - 1;
		fprintf(r->out, "%s%s%s", t->colour[i] ? paint(r, t->colour[i]) : "", s,
			t->colour[i] ? paint(r, C_RESET) : "");
		if (last)
			fputc('\n', r->out);
		else
			fprintf(r->out, "%*s", (int)(w[i % t->cols] - width(s) + 2), "");
	}
	free(w);
}

static void tab_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cell[i]);
	free(t->cell);
	free(t->colour);
}

/* --- status ---------------------------------------------------------------- */

/* "  key: value" with the key in bold; value malloc'ed and freed here. */
static void kv(const struct xb_render *r, const char *key, char *value, const char *colour)
{
	fprintf(r->out, "  %s%s%s: %s%s%s\n", paint(r, C_BOLD), key, paint(r, C_RESET),
		colour ? paint(r, colour) : "", value ? value : "-", colour ? paint(r, C_RESET) : "");
	free(value);
}

/* "title: value" starting a block. */
static void head(const struct xb_render *r, const char *title, char *value)
{
	fprintf(r->out, "%s%s%s: %s%s%s\n", paint(r, C_BOLD), title, paint(r, C_RESET),
		paint(r, C_GREEN), value ? value : "-", paint(r, C_RESET));
	free(value);
}

/* "backend (reason)", or just the backend. */
static char *backend(json_t *o)
{
	char *b = text(get(o, "backend")), *why = text(get(o, "backend_reason")), *s = NULL;

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

	if (!uint_at(o, "uptime_s", &s))
		return strdup("-");
	xb_fmt_duration(buf, sizeof(buf), s);
	return strdup(buf);
}

static void status_reload(const struct xb_render *r, json_t *lr)
{
	json_t *ok = get(lr, "ok"), *e;
	char *when = ago_at(r, lr, "at"), *s = NULL;
	size_t i;

	if (asprintf(&s, "%s, %s", json_is_true(ok) ? "ok" : json_is_false(ok) ? "failed" : "-",
		     when ? when : "-") < 0)
		s = NULL;
	free(when);
	fprintf(r->out, "%slast reload%s: %s%s%s\n", paint(r, C_BOLD), paint(r, C_RESET),
		paint(r, json_is_false(ok) ? C_RED : C_GREEN), s ? s : "-", paint(r, C_RESET));
	free(s);
	json_array_foreach(get(lr, "errors"), i, e) {
		char *t = text(e);
		fprintf(r->out, "  %s\n", t ? t : "-");
		free(t);
	}
}

static char *fmt_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "3 in the last 5 min (mean 2.1, sd 1.0 over 48 windows): z 0.9" */
static char *device_events(json_t *k)
{
	if (!json_is_true(get(k, "judged")))
		return fmt_text("%.0f in the last 5 min (baseline: %lld of 12 windows needed)",
				json_number_value(get(k, "last_5min")),
				(long long)json_integer_value(get(k, "windows")));
	return fmt_text("%.0f in the last 5 min (mean %.1f, sd %.1f over %lld windows): z %.1f%s",
			json_number_value(get(k, "last_5min")), json_number_value(get(k, "mean_5min")),
			json_number_value(get(k, "sd_5min")),
			(long long)json_integer_value(get(k, "windows")),
			json_number_value(get(k, "z")), json_is_true(get(k, "anomaly")) ? ", ANOMALY" : "");
}

static void device_signals(const struct xb_render *r, json_t *ds)
{
	if (!ds)
		return;
	head(r, "devices", text(get(ds, "connected")));
	kv(r, "connects", device_events(get(ds, "connects")),
	   json_is_true(get(get(ds, "connects"), "anomaly")) ? C_RED : NULL);
	kv(r, "disconnects", device_events(get(ds, "disconnects")),
	   json_is_true(get(get(ds, "disconnects"), "anomaly")) ? C_RED : NULL);
}

/* "cluster: up" and the few facts an operator checks first (docs/ha.md). */
static void status_cluster(const struct xb_render *r, json_t *c)
{
	bool up = json_is_string(get(c, "state")) && !strcmp(json_string_value(get(c, "state")), "up");
	char *member;

	if (!c)
		return;
	member = text(get(c, "member"));
	fprintf(r->out, "%scluster%s: %s%s%s\n", paint(r, C_BOLD), paint(r, C_RESET),
		paint(r, up ? C_GREEN : C_RED), up ? "up" : "down", paint(r, C_RESET));
	kv(r, "node", fmt_text("%s in %s", json_string_value(get(c, "node")) ?: "-",
			       json_string_value(get(c, "name")) ?: "-"), NULL);
	kv(r, "members", fmt_text("%lld (last answered: %s)",
				  (long long)json_integer_value(get(c, "members")), member ? member : "-"),
	   NULL);
	kv(r, "revision", text(get(c, "revision")), NULL);
	kv(r, "keys", text(get(c, "keys")), NULL);
	free(member);
}

int xb_render_status(const struct xb_render *r, json_t *st)
{
	json_t *pol = get(st, "policy"), *ifc = get(st, "interface");

	if (!json_is_object(st))
		return -1;
	head(r, "xborderd", text(get(st, "version")));
	kv(r, "pid", text(get(st, "pid")), NULL);
	kv(r, "uptime", uptime(st), NULL);
	head(r, "policy", text(get(pol, "path")));
	kv(r, "loaded", ago_at(r, pol, "loaded_at"), NULL);
	kv(r, "devices", text(get(pol, "devices")), NULL);
	kv(r, "tunnels", text(get(pol, "tunnels")), NULL);
	kv(r, "rules", text(get(pol, "rules")), NULL);
	head(r, "interface", text(get(ifc, "ifname")));
	kv(r, "backend", backend(ifc), NULL);
	kv(r, "listening port", text(get(ifc, "listen_port")), NULL);
	kv(r, "public key", text(get(ifc, "public_key")), NULL);
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
	if (uint_at(p, "report_age", &a)) {
		xb_fmt_duration(age, sizeof(age) - 4, a);
		strcat(age, " old");
	}
	if (!(names = text(get(p, "compliant"))))
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
	struct table t;
	json_t *d;
	size_t i;

	if (!json_is_array(list))
		return -1;
	if (!tab_init(&t, 9, json_array_size(list) + 1)) {
		tab_free(&t);
		return -1;
	}
	tab_head(&t, cols);
	json_array_foreach(list, i, d) {
		uint64_t hs = 0;
		bool never = uint_at(d, "last_handshake", &hs) && hs == 0;

		bool expired = json_is_true(get(d, "expired"));
		char *name = text(get(d, "name")), *marked = NULL;

		/* An expired device (docs/enrolment.md) is refused: say so by its name. */
		if (expired && name && asprintf(&marked, "%s (expired)", name) >= 0) {
			free(name);
			name = marked;
		}
		tab_put(&t, expired ? C_RED : C_GREEN, name);
		tab_put(&t, NULL, text(get(d, "groups")));
		tab_put(&t, NULL, text(get(d, "address4")));
		tab_put(&t, NULL, text(get(d, "address6")));
		tab_put(&t, NULL, text(get(d, "endpoint")));
		tab_put(&t, never ? C_YELLOW : NULL, ago_at(r, d, "last_handshake"));
		tab_put(&t, NULL, bytes_at(d, "rx_bytes"));
		tab_put(&t, NULL, bytes_at(d, "tx_bytes"));
		tab_put(&t, NULL, posture_cell(get(d, "posture")));
	}
	tab_print(r, &t);
	tab_free(&t);
	return 0;
}

/* --- tunnels --------------------------------------------------------------- */

static char *addresses(json_t *o)
{
	char *a4 = text(get(o, "address4")), *a6 = text(get(o, "address6")), *s = NULL;
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
	char *mark = text(get(o, "mark")), *table = text(get(o, "table")), *s = NULL;

	if (asprintf(&s, "fwmark %s, table %s", mark ? mark : "-", table ? table : "-") < 0)
		s = NULL;
	free(mark);
	free(table);
	return s;
}

static char *transfer(json_t *o)
{
	char *rx = bytes_at(o, "rx_bytes"), *tx = bytes_at(o, "tx_bytes"), *s = NULL;

	if (asprintf(&s, "%s received, %s sent", rx ? rx : "-", tx ? tx : "-") < 0)
		s = NULL;
	free(rx);
	free(tx);
	return s;
}

static char *fmt_text(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
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
		kv(r, "availability", strdup("- (nothing decided yet)"), NULL);
	else if (slo > 0 && json_is_boolean(met))
		kv(r, "availability", fmt_text("%.3f %% over the last hour (SLO %g %%: %s)", a * 100,
			slo, json_is_true(met) ? "met" : "missed"), json_is_true(met) ? NULL : C_RED);
	else
		kv(r, "availability", fmt_text("%.3f %% over the last hour", a * 100), NULL);
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
	kv(r, "monitors", s, NULL);
}

static void health(const struct xb_render *r, json_t *h)
{
	json_t *a = get(h, "active_for"), *p;

	if (!h)
		return;
	kv(r, "rank", text(get(h, "rank")), NULL);
	if (get(h, "rtt_mean_ms"))
		kv(r, "probes", fmt_text("every %lld ms; RTT %.3f ms (min %.3f, p95 %.3f), "
			"jitter %.3f ms, loss %.1f %%, score %.1f",
			(long long)json_integer_value(get(h, "interval_ms")),
			json_number_value(get(h, "rtt_mean_ms")), json_number_value(get(h, "rtt_min_ms")),
			json_number_value(get(h, "rtt_p95_ms")), json_number_value(get(h, "jitter_ms")),
			json_number_value(get(h, "loss_pct")), json_number_value(get(h, "score"))), NULL);
	availability(r, h);
	monitors(r, get(h, "targets"));
	if ((p = get(h, "passive")))
		kv(r, "data plane", fmt_text("%s; last received %.0f ms ago; %lld down%s at a first "
			"missed round", json_string_value(get(p, "verdict")) ?: "-",
			json_number_value(get(p, "rx_age_ms")), (long long)json_integer_value(get(p, "downs")),
			json_integer_value(get(p, "downs")) == 1 ? "" : "s"), NULL);
	kv(r, "active for", json_array_size(a) ? text_list(a, ", ", "-") : strdup("-"), NULL);
}

static void tunnel(const struct xb_render *r, json_t *t)
{
	json_t *state = get(t, "state");
	bool up = json_is_string(state) && !strcmp(json_string_value(state), "up");
	json_t *type = get(t, "type");
	bool gre = json_is_string(type) && !strcmp(json_string_value(type), "gre");

	head(r, "tunnel", text(get(t, "name")));
	kv(r, "state", text(state), up ? C_GREEN : C_RED);
	kv(r, "interface", text(get(t, "ifname")), NULL);
	kv(r, "type", text(get(t, "type")), NULL);
	kv(r, "backend", backend(t), NULL);
	if (!gre) {
		kv(r, "endpoint", text(get(t, "endpoint")), NULL);
		kv(r, "peer public key", text(get(t, "peer_public_key")), NULL);
	}
	kv(r, "addresses", addresses(t), NULL);
	kv(r, "routing", routing(t), NULL);
	if (gre) {
		kv(r, "local", text(get(t, "local")), NULL);
		kv(r, "remote", text(get(t, "remote")), NULL);
		kv(r, "key", text(get(t, "key")), NULL);
		kv(r, "keepalive", fmt_text("%s (%lld sent, %lld replies)",
			json_string_value(get(t, "keepalive")) ?: "-",
			(long long)json_integer_value(get(t, "keepalives_sent")),
			(long long)json_integer_value(get(t, "keepalive_replies"))), NULL);
	} else {
		kv(r, "latest handshake", ago_at(r, t, "last_handshake"), NULL);
	}
	kv(r, "transfer", transfer(t), NULL);
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
	s = text_list(all, ",", "any");
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
	s = text_list(all, ",", "any");
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
	p = text_list(pr, ",", "any");
	q = po ? text_list(po, ",", "") : strdup("");
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
	char *act = text(get(rule, "active")), *s;

	if (!h || a < 0 || !act)
		return act;
	s = fmt_text("%s (%.2f %%%s)", act, a * 100,
		     json_is_false(get(h, "slo_met")) ? ", below SLO" : "");
	free(act);
	return s;
}

static void rule_row(const struct xb_render *r, struct table *t, json_t *rule)
{
	json_t *act = get(rule, "action");
	bool allow = json_is_string(act) && !strcmp(json_string_value(act), "allow");
	uint64_t pk;
	char *pkts = NULL;

	(void)r;
	if (!uint_at(rule, "packets", &pk) || asprintf(&pkts, "%" PRIu64, pk) < 0)
		pkts = strdup("-");
	tab_put(t, C_GREEN, text(get(rule, "name")));
	tab_put(t, allow ? C_GREEN : C_RED, text(act));
	tab_put(t, NULL, rule_from(rule));
	tab_put(t, NULL, text_list(get(rule, "posture"), ",", "any"));
	tab_put(t, NULL, rule_to(rule));
	tab_put(t, NULL, rule_service(rule));
	tab_put(t, NULL, text(get(rule, "via")));
	tab_put(t, NULL, rule_active(rule));
	tab_put(t, NULL, pkts);
	tab_put(t, NULL, bytes_at(rule, "bytes"));
}

int xb_render_rules(const struct xb_render *r, json_t *list)
{
	static const char *const cols[] = { "NAME", "ACTION", "FROM", "POSTURE", "TO",
					    "SERVICE", "VIA", "ACTIVE", "PACKETS", "BYTES" };
	struct table t;
	json_t *rule;
	size_t i;

	if (!json_is_array(list))
		return -1;
	if (!tab_init(&t, 10, json_array_size(list) + 1)) {
		tab_free(&t);
		return -1;
	}
	tab_head(&t, cols);
	json_array_foreach(list, i, rule)
		rule_row(r, &t, rule);
	tab_print(r, &t);
	tab_free(&t);
	return 0;
}

/* --- dns --------------------------------------------------------------------- */

/* fmt with each %s taking the next json_t argument as text(). */
static char *json_sprintf_text(const char *fmt, ...)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	va_list ap;

	if (!f)
		return NULL;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (fmt[0] == '%' && fmt[1] == 's') {
			char *v = text(va_arg(ap, json_t *));

			fputs(v ? v : "-", f);
			free(v);
			fmt++;
		} else {
			fputc(*fmt, f);
		}
	}
	va_end(ap);
	fclose(f);
	return out;
}

static void dns_row(struct table *t, json_t *rule)
{
	json_t *act = get(rule, "action");
	bool denies = json_is_string(act) && !strcmp(json_string_value(act), "block");

	tab_put(t, C_GREEN, text(get(rule, "name")));
	tab_put(t, denies ? C_RED : NULL, text(act));
	tab_put(t, NULL, text(get(rule, "queries")));
	tab_put(t, NULL, text(get(rule, "answered")));
	tab_put(t, NULL, text(get(rule, "cached")));
	tab_put(t, NULL, text(get(rule, "failed")));
	tab_put(t, NULL, text(get(rule, "blocked")));
	tab_put(t, NULL, text(get(rule, "denied")));
	tab_put(t, NULL, text(get(rule, "latency_p99_ms_below")));
}

/* What answers taught each access rule's sets, and what they were refused. */
static void dns_learning(const struct xb_render *r, json_t *v)
{
	static const char *const cols[] = { "ACCESS RULE", "LEARNED4", "LEARNED6", "CAP",
					    "LEARN_PRIVATE", "REFUSED:SPECIAL", "OWN", "PRIVATE",
					    "OVER_ANSWER_MAX", "SET_FULL", "EVICTED" };
	json_t *e, *ref;
	struct table t;
	size_t i;

	if (!json_is_array(v) || !json_array_size(v) || !tab_init(&t, 11, json_array_size(v) + 1))
		return;
	fputc('\n', r->out);
	tab_head(&t, cols);
	json_array_foreach(v, i, e) {
		ref = get(e, "refused");
		tab_put(&t, C_GREEN, text(get(e, "rule")));
		tab_put(&t, NULL, text(get(e, "learned4")));
		tab_put(&t, NULL, text(get(e, "learned6")));
		tab_put(&t, NULL, text(get(e, "cap")));
		tab_put(&t, NULL, text(get(e, "learn_private")));
		tab_put(&t, NULL, text(get(ref, "special")));
		tab_put(&t, NULL, text(get(ref, "own")));
		tab_put(&t, NULL, text(get(ref, "private")));
		tab_put(&t, NULL, text(get(ref, "over_answer_max")));
		tab_put(&t, NULL, text(get(ref, "set_full")));
		tab_put(&t, NULL, text(get(e, "evicted")));
	}
	tab_print(r, &t);
	tab_free(&t);
}

int xb_render_dns(const struct xb_render *r, json_t *st)
{
	static const char *const cols[] = { "RULE", "ACTION", "QUERIES", "ANSWERED", "CACHED",
					    "FAILED", "BLOCKED", "DENIED", "P99<MS" };
	json_t *rules = get(st, "rules"), *rule, *c = get(st, "cache"), *u = get(st, "upstream"),
	       *cl = get(st, "clients"), *lp = get(st, "loop");
	struct table t;
	size_t i;

	if (!json_is_object(st))
		return -1;
	head(r, "dns", json_is_true(get(st, "enabled")) ? strdup("enabled") : strdup("disabled"));
	kv(r, "listening", text_list(get(st, "listen"), ", ", "-"), NULL);
	kv(r, "name patterns", text(get(st, "patterns")), NULL);
	kv(r, "cache", json_is_object(c) ? json_sprintf_text("%s entries, %s hits, %s misses",
		get(c, "entries"), get(c, "hits"), get(c, "misses")) : strdup("-"), NULL);
	kv(r, "upstream", json_is_object(u) ? json_sprintf_text("%s queries, %s timeouts, %s failed, "
		"%s over TCP, %s mismatched replies ignored", get(u, "queries"), get(u, "timeouts"),
		get(u, "failed"), get(u, "tcp"), get(u, "mismatched")) : strdup("-"), NULL);
	kv(r, "clients", json_is_object(cl) ? json_sprintf_text("%s refused (not a device), "
		"%s malformed, %s truncated to TCP", get(cl, "refused"), get(cl, "formerr"),
		get(cl, "truncated")) : strdup("-"), NULL);
	kv(r, "learned", json_is_object(cl) ? json_sprintf_text("%s destinations in the sets, "
		"%s set updates, %s failed", get(cl, "learned"), get(cl, "set_puts"),
		get(cl, "set_failures")) : strdup("-"), NULL);
	kv(r, "main loop", json_is_object(lp) ? json_sprintf_text("longest round %s ms since start, "
		"%s rounds over 10 ms", get(lp, "stall_max_ms"), get(lp, "stalls_over_10ms"))
		: strdup("-"), NULL);
	dns_learning(r, get(st, "learning"));
	if (!json_is_array(rules) || !tab_init(&t, 9, json_array_size(rules) + 1))
		return 0;
	fputc('\n', r->out);
	tab_head(&t, cols);
	json_array_foreach(rules, i, rule)
		dns_row(&t, rule);
	tab_print(r, &t);
	tab_free(&t);
	return 0;
}

/* --- posture ------------------------------------------------------------------ */

static void posture_profile(const struct xb_render *r, json_t *pr)
{
	static const char *const cols[] = { "CHECK", "RESULT", "MODE", "EXPECTED", "SEEN" };
	json_t *checks = get(pr, "checks"), *c;
	bool ok = json_is_true(get(pr, "compliant"));
	struct table t;
	size_t i;

	fprintf(r->out, "\n%sprofile %s%s: %s%s%s (max_age %" JSON_INTEGER_FORMAT " s)\n",
		paint(r, C_BOLD), json_string_value(get(pr, "name")), paint(r, C_RESET),
		paint(r, ok ? C_GREEN : C_RED), ok ? "compliant" : "not compliant",
		paint(r, C_RESET), json_integer_value(get(pr, "max_age")));
	if (!json_is_array(checks) || !tab_init(&t, 5, json_array_size(checks) + 1))
		return;
	tab_head(&t, cols);
	json_array_foreach(checks, i, c) {
		const char *o = json_string_value(get(c, "outcome"));
		bool bad = o && (!strcmp(o, "fail") || !strcmp(o, "unknown"));

		tab_put(&t, NULL, text(get(c, "check")));
		tab_put(&t, bad ? C_RED : o && !strcmp(o, "pass") ? C_GREEN : NULL, text(get(c, "outcome")));
		tab_put(&t, NULL, text(get(c, "mode")));
		tab_put(&t, NULL, text(get(c, "expected")));
		tab_put(&t, NULL, text(get(c, "seen")));
	}
	tab_print(r, &t);
	tab_free(&t);
}

/* `posture': the counters; `posture DEVICE': each profile's checks. */
int xb_render_posture(const struct xb_render *r, json_t *st)
{
	json_t *pr, *a;
	size_t i;
	uint64_t age;
	char buf[48];

	if (!json_is_object(st))
		return -1;
	if (!get(st, "device")) {
		head(r, "posture", json_sprintf_text("%s devices, %s reported, %s compliant",
			get(st, "devices"), get(st, "reported"), get(st, "compliant")));
		kv(r, "received", json_sprintf_text("%s reports, %s pushes", get(st, "reports"),
			get(st, "pushes")), NULL);
		kv(r, "enforced", json_sprintf_text("%s transitions, %s set changes (%s failed), "
			"%s cuts (%s flow entries)", get(st, "transitions"), get(st, "set_changes"),
			get(st, "set_errors"), get(st, "cuts"), get(st, "cut_entries")), NULL);
		kv(r, "report to enforcement", json_sprintf_text("p99 below %s us, max %s us",
			get(st, "enforce_p99_us"), get(st, "enforce_max_us")), NULL);
		if ((a = get(st, "limits")))
			kv(r, "refused", json_sprintf_text("%s requests over a device's rate (429), "
				"%s connections over a source's limit, %s late requests cut, "
				"%s nonces (table full)", get(a, "rate_limited"),
				get(a, "connections_refused"), get(a, "deadline_closed"),
				get(a, "nonce_table_full")), NULL);
		return 0;
	}
	head(r, "device", text(get(st, "device")));
	if (uint_at(st, "report_age", &age)) {
		xb_fmt_duration(buf, sizeof(buf), age);
		kv(r, "report age", strdup(buf), NULL);
	} else {
		kv(r, "report age", strdup("no report"), C_YELLOW);
	}
	kv(r, "seq", text(get(st, "seq")), NULL);
	kv(r, "platform", text(get(st, "platform")), NULL);
	json_array_foreach(get(st, "attributes"), i, a)
		kv(r, "pushed", json_sprintf_text("%s = %s (expires %s)", get(a, "key"),
			get(a, "value"), get(a, "expires")), NULL);
	json_array_foreach(get(st, "profiles"), i, pr)
		posture_profile(r, pr);
	return 0;
}

/* --- reload ------------------------------------------------------------------ */

int xb_render_reload(const struct xb_render *r, json_t *res)
{
	json_t *ch = get(res, "changed");
	char *sum;

	if (!json_is_object(res))
		return -1;
	sum = text(get(res, "summary"));
	fprintf(r->out, "%s%s%s: %s\n", paint(r, C_GREEN),
		json_is_true(ch) ? "policy reloaded" : json_is_false(ch) ? "policy unchanged" :
		"policy reload done", paint(r, C_RESET), sum ? sum : "-");
	free(sum);
	return 0;
}

/* --- explain --------------------------------------------------------------- */

static char *explain_verdict(json_t *e)
{
	const char *v = json_string_value(get(e, "verdict"));
	json_t *rule = get(e, "rule"), *rules = get(e, "rules");
	json_t *last = json_array_get(rules, json_array_size(rules) - 1);

	if (!v)
		return NULL;
	if (!strcmp(v, "local"))
		return strdup("to the gateway itself (chain input: DNS, posture reports, ping)");
	if (!strcmp(v, "default_deny"))
		return strdup("refused: no rule matches (default deny)");
	return json_sprintf_text(!strcmp(v, "allow") ? "allowed by rule %s (%s)" :
				 "refused by rule %s (%s)", rule, get(last, "source"));
}

static void explain_rules(const struct xb_render *r, json_t *rules)
{
	static const char *const cols[] = { "RULE", "ACTION", "RESULT", "WHY" };
	struct table t;
	json_t *x;
	size_t i;

	if (!json_array_size(rules) || !tab_init(&t, 4, json_array_size(rules) + 1))
		return;
	fputc('\n', r->out);
	tab_head(&t, cols);
	json_array_foreach(rules, i, x) {
		const char *res = json_string_value(get(x, "result"));
		bool match = res && !strcmp(res, "match");

		tab_put(&t, NULL, text(get(x, "name")));
		tab_put(&t, NULL, text(get(x, "action")));
		tab_put(&t, match ? C_GREEN : res && !strcmp(res, "posture") ? C_RED : NULL,
			text(get(x, "result")));
		tab_put(&t, NULL, text(get(x, "reason")));
	}
	tab_print(r, &t);
	tab_free(&t);
}

static char *explain_dns(const struct xb_render *r, json_t *dns)
{
	char *out = NULL, when[48];
	size_t len = 0, i;
	json_t *x;
	uint64_t exp;
	FILE *f;

	if (!json_array_size(dns))
		return strdup("not learned");
	if (!(f = open_memstream(&out, &len)))
		return NULL;
	json_array_foreach(dns, i, x) {
		char *s = json_sprintf_text("learned for rule %s (%s, domains %s)", get(x, "rule"),
					    get(x, "set"), get(x, "domains"));

		if (!uint_at(x, "expires", &exp))
			snprintf(when, sizeof(when), "-");
		else
			xb_fmt_duration(when, sizeof(when),
					(int64_t)exp > (int64_t)r->now ? exp - (uint64_t)r->now : 0);
		fprintf(f, "%s%s, expires in %s", i ? "; " : "", s ? s : "-", when);
		free(s);
	}
	fclose(f);
	return out;
}

static char *explain_path(json_t *pa)
{
	char *out = NULL, *s;
	size_t len = 0, i;
	json_t *t;
	FILE *f;

	if (!json_is_object(pa))
		return strdup("-");
	if (!(f = open_memstream(&out, &len)))
		return NULL;
	s = json_sprintf_text("%s, table %s, now %s", get(pa, "name"), get(pa, "table"),
			      get(pa, "active"));
	fprintf(f, "%s", s ? s : "-");
	free(s);
	json_array_foreach(get(pa, "tunnels"), i, t) {
		s = json_sprintf_text("%s %s", get(t, "name"), get(t, "state"));
		fprintf(f, "%s%s", i ? ", " : " (", s ? s : "-");
		free(s);
	}
	fprintf(f, "%s", json_array_size(get(pa, "tunnels")) ? ")" : "");
	fclose(f);
	return out;
}

/* `explain DEVICE DEST [PROTO/PORT]': the verdict, then why. */
int xb_render_explain(const struct xb_render *r, json_t *e)
{
	json_t *pr, *port = get(e, "port");
	const char *v;
	size_t i;
	char *s;

	if (!json_is_object(e) || !(v = json_string_value(get(e, "verdict"))))
		return -1;
	fprintf(r->out, "%sverdict%s: %s", paint(r, C_BOLD), paint(r, C_RESET),
		paint(r, strcmp(v, "allow") && strcmp(v, "local") ? C_RED : C_GREEN));
	s = explain_verdict(e);
	fprintf(r->out, "%s%s\n", s ? s : "-", paint(r, C_RESET));
	free(s);
	kv(r, "device", text(get(e, "device")), NULL);
	kv(r, "destination", json_is_integer(port)
		? json_sprintf_text("%s %s/%s", get(e, "destination"), get(e, "protocol"), port)
		: json_is_string(get(e, "protocol"))
		? json_sprintf_text("%s %s", get(e, "destination"), get(e, "protocol"))
		: json_sprintf_text("%s (any protocol)", get(e, "destination")), NULL);
	kv(r, "dns", explain_dns(r, get(e, "dns")), NULL);
	kv(r, "path", explain_path(get(e, "path")), NULL);
	explain_rules(r, get(e, "rules"));
	/* each profile once, however many rules ask for it */
	json_array_foreach(get(e, "posture"), i, pr) {
		bool seen = false;

		for (size_t k = 0; k < i && !seen; k++)
			seen = json_equal(get(json_array_get(get(e, "posture"), k), "name"), get(pr, "name"));
		if (!seen)
			posture_profile(r, pr);
	}
	return 0;
}

/* --- drops ------------------------------------------------------------------ */

static char *drop_posture(json_t *list)
{
	char *out = NULL;
	size_t len = 0, i;
	json_t *x;
	FILE *f;

	if (!json_array_size(list))
		return strdup("-");
	if (!(f = open_memstream(&out, &len)))
		return NULL;
	json_array_foreach(list, i, x) {
		char *s = json_sprintf_text("%s: %s (%s)", get(x, "rule"), get(x, "profile"),
					    get(x, "failing"));

		fprintf(f, "%s%s", i ? "; " : "", s ? s : "-");
		free(s);
	}
	fclose(f);
	return out;
}

/* `drops [DEVICE]': the refused packets, newest first. */
int xb_render_drops(const struct xb_render *r, json_t *st)
{
	static const char *const cols[] = { "WHEN", "DEVICE", "SOURCE", "DESTINATION", "PROTO",
					    "PORT", "REFUSED BY", "FAILING POSTURE" };
	json_t *list = get(st, "drops"), *x;
	struct table t;
	size_t i;

	if (!json_is_object(st) || !json_is_array(list))
		return -1;
	if (!json_is_true(get(st, "logging")))
		fprintf(r->out, "%sdrop log off%s: the daemon could not bind nfnetlink_log (see its log)\n",
			paint(r, C_YELLOW), paint(r, C_RESET));
	head(r, "drops", json_sprintf_text("%s logged since start, %s lost, at most %s a second "
		"per rule line", get(st, "total"), get(st, "lost"), get(st, "rate_per_line")));
	if (!json_array_size(list) || !tab_init(&t, 8, json_array_size(list) + 1))
		return 0;
	tab_head(&t, cols);
	json_array_foreach(list, i, x) {
		json_t *rule = get(x, "rule");

		tab_put(&t, NULL, ago_at(r, x, "at"));
		tab_put(&t, NULL, text(get(x, "device")));
		tab_put(&t, NULL, text(get(x, "source")));
		tab_put(&t, NULL, text(get(x, "destination")));
		tab_put(&t, NULL, text(get(x, "protocol")));
		tab_put(&t, NULL, text(get(x, "port")));
		tab_put(&t, C_RED, json_is_string(rule)
			? json_sprintf_text("rule %s (%s)", rule, get(x, "rule_source"))
			: strdup("default deny"));
		tab_put(&t, NULL, drop_posture(get(x, "posture")));
	}
	tab_print(r, &t);
	tab_free(&t);
	return 0;
}
