/* Text rendering of the diagnostic control results: dns, posture, reload,
 * explain and drops; see render.h. */
#include "ctl/render_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* --- dns --------------------------------------------------------------------- */

/* fmt with each %s taking the next json_t argument as render_text(). */
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
			char *v = render_text(va_arg(ap, json_t *));

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

static void dns_row(struct render_table *t, json_t *rule)
{
	json_t *act = get(rule, "action");
	bool denies = json_is_string(act) && !strcmp(json_string_value(act), "block");

	render_tab_put(t, C_GREEN, render_text(get(rule, "name")));
	render_tab_put(t, denies ? C_RED : NULL, render_text(act));
	render_tab_put(t, NULL, render_text(get(rule, "queries")));
	render_tab_put(t, NULL, render_text(get(rule, "answered")));
	render_tab_put(t, NULL, render_text(get(rule, "cached")));
	render_tab_put(t, NULL, render_text(get(rule, "failed")));
	render_tab_put(t, NULL, render_text(get(rule, "blocked")));
	render_tab_put(t, NULL, render_text(get(rule, "denied")));
	render_tab_put(t, NULL, render_text(get(rule, "latency_p99_ms_below")));
}

/* What answers taught each access rule's sets, and what they were refused. */
static void dns_learning(const struct xb_render *r, json_t *v)
{
	static const char *const cols[] = { "ACCESS RULE", "LEARNED4", "LEARNED6", "CAP",
					    "LEARN_PRIVATE", "REFUSED:SPECIAL", "OWN", "PRIVATE",
					    "OVER_ANSWER_MAX", "SET_FULL", "EVICTED" };
	json_t *e, *ref;
	struct render_table t;
	size_t i;

	if (!json_is_array(v) || !json_array_size(v) || !render_tab_init(&t, 11, json_array_size(v) + 1))
		return;
	fputc('\n', r->out);
	render_tab_head(&t, cols);
	json_array_foreach(v, i, e) {
		ref = get(e, "refused");
		render_tab_put(&t, C_GREEN, render_text(get(e, "rule")));
		render_tab_put(&t, NULL, render_text(get(e, "learned4")));
		render_tab_put(&t, NULL, render_text(get(e, "learned6")));
		render_tab_put(&t, NULL, render_text(get(e, "cap")));
		render_tab_put(&t, NULL, render_text(get(e, "learn_private")));
		render_tab_put(&t, NULL, render_text(get(ref, "special")));
		render_tab_put(&t, NULL, render_text(get(ref, "own")));
		render_tab_put(&t, NULL, render_text(get(ref, "private")));
		render_tab_put(&t, NULL, render_text(get(ref, "over_answer_max")));
		render_tab_put(&t, NULL, render_text(get(ref, "set_full")));
		render_tab_put(&t, NULL, render_text(get(e, "evicted")));
	}
	render_tab_print(r, &t);
	render_tab_free(&t);
}

int xb_render_dns(const struct xb_render *r, json_t *st)
{
	static const char *const cols[] = { "RULE", "ACTION", "QUERIES", "ANSWERED", "CACHED",
					    "FAILED", "BLOCKED", "DENIED", "P99<MS" };
	json_t *rules = get(st, "rules"), *rule, *c = get(st, "cache"), *u = get(st, "upstream"),
	       *cl = get(st, "clients"), *lp = get(st, "loop"), *tp = get(st, "tap"),
	       *dv = get(tp, "device");
	struct render_table t;
	size_t i;

	if (!json_is_object(st))
		return -1;
	render_head(r, "dns", json_is_true(get(st, "enabled")) ? strdup("enabled") : strdup("disabled"));
	render_kv(r, "listening", render_list(get(st, "listen"), ", ", "-"), NULL);
	render_kv(r, "name patterns", render_text(get(st, "patterns")), NULL);
	render_kv(r, "cache", json_is_object(c) ? json_sprintf_text("%s entries, %s hits, %s misses",
		get(c, "entries"), get(c, "hits"), get(c, "misses")) : strdup("-"), NULL);
	render_kv(r, "upstream", json_is_object(u) ? json_sprintf_text("%s queries, %s timeouts, %s failed, "
		"%s over TCP, %s mismatched replies ignored", get(u, "queries"), get(u, "timeouts"),
		get(u, "failed"), get(u, "tcp"), get(u, "mismatched")) : strdup("-"), NULL);
	render_kv(r, "clients", json_is_object(cl) ? json_sprintf_text("%s refused (not a device), "
		"%s malformed, %s truncated to TCP", get(cl, "refused"), get(cl, "formerr"),
		get(cl, "truncated")) : strdup("-"), NULL);
	if (json_is_object(tp))		/* docs/dns.md, "The tap" */
		render_kv(r, "tap", json_is_true(get(tp, "on")) ? json_sprintf_text("on: %s queries, %s answers, "
			"%s bad frames", get(tp, "queries"), get(tp, "answers"), get(tp, "bad"))
			: strdup("off: UDP queries through the kernel"), NULL);
	if (json_is_object(dv))		/* the device interface's data thread's side */
		render_kv(r, "tap, device", json_sprintf_text("%s queries, %s answers, %s dropped (socketpair "
			"full), %s bad replies", get(dv, "queries"), get(dv, "answers"), get(dv, "dropped"),
			get(dv, "bad_reply")), NULL);
	render_kv(r, "learned", json_is_object(cl) ? json_sprintf_text("%s destinations in the sets, "
		"%s set updates, %s failed", get(cl, "learned"), get(cl, "set_puts"),
		get(cl, "set_failures")) : strdup("-"), NULL);
	render_kv(r, "main loop", json_is_object(lp) ? json_sprintf_text("longest round %s ms since start, "
		"%s rounds over 10 ms", get(lp, "stall_max_ms"), get(lp, "stalls_over_10ms"))
		: strdup("-"), NULL);
	dns_learning(r, get(st, "learning"));
	if (!json_is_array(rules) || !render_tab_init(&t, 9, json_array_size(rules) + 1))
		return 0;
	fputc('\n', r->out);
	render_tab_head(&t, cols);
	json_array_foreach(rules, i, rule)
		dns_row(&t, rule);
	render_tab_print(r, &t);
	render_tab_free(&t);
	return 0;
}

/* --- posture ------------------------------------------------------------------ */

static void posture_profile(const struct xb_render *r, json_t *pr)
{
	static const char *const cols[] = { "CHECK", "RESULT", "MODE", "EXPECTED", "SEEN" };
	json_t *checks = get(pr, "checks"), *c;
	bool ok = json_is_true(get(pr, "compliant"));
	struct render_table t;
	size_t i;

	fprintf(r->out, "\n%sprofile %s%s: %s%s%s (max_age %" JSON_INTEGER_FORMAT " s)\n",
		render_paint(r, C_BOLD), json_string_value(get(pr, "name")), render_paint(r, C_RESET),
		render_paint(r, ok ? C_GREEN : C_RED), ok ? "compliant" : "not compliant",
		render_paint(r, C_RESET), json_integer_value(get(pr, "max_age")));
	if (!json_is_array(checks) || !render_tab_init(&t, 5, json_array_size(checks) + 1))
		return;
	render_tab_head(&t, cols);
	json_array_foreach(checks, i, c) {
		const char *o = json_string_value(get(c, "outcome"));
		bool bad = o && (!strcmp(o, "fail") || !strcmp(o, "unknown"));

		render_tab_put(&t, NULL, render_text(get(c, "check")));
		render_tab_put(&t, bad ? C_RED : o && !strcmp(o, "pass") ? C_GREEN : NULL,
			   render_text(get(c, "outcome")));
		render_tab_put(&t, NULL, render_text(get(c, "mode")));
		render_tab_put(&t, NULL, render_text(get(c, "expected")));
		render_tab_put(&t, NULL, render_text(get(c, "seen")));
	}
	render_tab_print(r, &t);
	render_tab_free(&t);
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
		render_head(r, "posture", json_sprintf_text("%s devices, %s reported, %s compliant",
			get(st, "devices"), get(st, "reported"), get(st, "compliant")));
		render_kv(r, "received", json_sprintf_text("%s reports, %s pushes", get(st, "reports"),
			get(st, "pushes")), NULL);
		render_kv(r, "enforced", json_sprintf_text("%s transitions, %s set changes (%s failed), "
			"%s cuts (%s flow entries)", get(st, "transitions"), get(st, "set_changes"),
			get(st, "set_errors"), get(st, "cuts"), get(st, "cut_entries")), NULL);
		render_kv(r, "report to enforcement", json_sprintf_text("p99 below %s us, max %s us",
			get(st, "enforce_p99_us"), get(st, "enforce_max_us")), NULL);
		if ((a = get(st, "limits")))
			render_kv(r, "refused", json_sprintf_text("%s requests over a device's rate (429), "
				"%s connections over a source's limit, %s late requests cut, "
				"%s nonces (table full)", get(a, "rate_limited"),
				get(a, "connections_refused"), get(a, "deadline_closed"),
				get(a, "nonce_table_full")), NULL);
		return 0;
	}
	render_head(r, "device", render_text(get(st, "device")));
	if (render_uint_at(st, "report_age", &age)) {
		xb_fmt_duration(buf, sizeof(buf), age);
		render_kv(r, "report age", strdup(buf), NULL);
	} else {
		render_kv(r, "report age", strdup("no report"), C_YELLOW);
	}
	render_kv(r, "seq", render_text(get(st, "seq")), NULL);
	render_kv(r, "platform", render_text(get(st, "platform")), NULL);
	json_array_foreach(get(st, "attributes"), i, a)
		render_kv(r, "pushed", json_sprintf_text("%s = %s (expires %s)", get(a, "key"),
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
	sum = render_text(get(res, "summary"));
	fprintf(r->out, "%s%s%s: %s\n", render_paint(r, C_GREEN),
		json_is_true(ch) ? "policy reloaded" : json_is_false(ch) ? "policy unchanged" :
		"policy reload done", render_paint(r, C_RESET), sum ? sum : "-");
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
	struct render_table t;
	json_t *x;
	size_t i;

	if (!json_array_size(rules) || !render_tab_init(&t, 4, json_array_size(rules) + 1))
		return;
	fputc('\n', r->out);
	render_tab_head(&t, cols);
	json_array_foreach(rules, i, x) {
		const char *res = json_string_value(get(x, "result"));
		bool match = res && !strcmp(res, "match");

		render_tab_put(&t, NULL, render_text(get(x, "name")));
		render_tab_put(&t, NULL, render_text(get(x, "action")));
		render_tab_put(&t, match ? C_GREEN : res && !strcmp(res, "posture") ? C_RED : NULL,
			render_text(get(x, "result")));
		render_tab_put(&t, NULL, render_text(get(x, "reason")));
	}
	render_tab_print(r, &t);
	render_tab_free(&t);
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

		if (!render_uint_at(x, "expires", &exp))
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
	fprintf(r->out, "%sverdict%s: %s", render_paint(r, C_BOLD), render_paint(r, C_RESET),
		render_paint(r, strcmp(v, "allow") && strcmp(v, "local") ? C_RED : C_GREEN));
	s = explain_verdict(e);
	fprintf(r->out, "%s%s\n", s ? s : "-", render_paint(r, C_RESET));
	free(s);
	render_kv(r, "device", render_text(get(e, "device")), NULL);
	render_kv(r, "destination", json_is_integer(port)
		? json_sprintf_text("%s %s/%s", get(e, "destination"), get(e, "protocol"), port)
		: json_is_string(get(e, "protocol"))
		? json_sprintf_text("%s %s", get(e, "destination"), get(e, "protocol"))
		: json_sprintf_text("%s (any protocol)", get(e, "destination")), NULL);
	render_kv(r, "dns", explain_dns(r, get(e, "dns")), NULL);
	render_kv(r, "path", explain_path(get(e, "path")), NULL);
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
	struct render_table t;
	size_t i;

	if (!json_is_object(st) || !json_is_array(list))
		return -1;
	if (!json_is_true(get(st, "logging")))
		fprintf(r->out, "%sdrop log off%s: the daemon could not bind nfnetlink_log (see its log)\n",
			render_paint(r, C_YELLOW), render_paint(r, C_RESET));
	render_head(r, "drops", json_sprintf_text("%s logged since start, %s lost, at most %s a second "
		"per rule line", get(st, "total"), get(st, "lost"), get(st, "rate_per_line")));
	if (!json_array_size(list) || !render_tab_init(&t, 8, json_array_size(list) + 1))
		return 0;
	render_tab_head(&t, cols);
	json_array_foreach(list, i, x) {
		json_t *rule = get(x, "rule");

		render_tab_put(&t, NULL, render_ago_at(r, x, "at"));
		render_tab_put(&t, NULL, render_text(get(x, "device")));
		render_tab_put(&t, NULL, render_text(get(x, "source")));
		render_tab_put(&t, NULL, render_text(get(x, "destination")));
		render_tab_put(&t, NULL, render_text(get(x, "protocol")));
		render_tab_put(&t, NULL, render_text(get(x, "port")));
		render_tab_put(&t, C_RED, json_is_string(rule)
			? json_sprintf_text("rule %s (%s)", rule, get(x, "rule_source"))
			: strdup("default deny"));
		render_tab_put(&t, NULL, drop_posture(get(x, "posture")));
	}
	render_tab_print(r, &t);
	render_tab_free(&t);
	return 0;
}
