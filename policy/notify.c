/* gateway.notify: the notification targets (docs/operations.md,
 * "Notifications"; the daemon's side is gateway/health/alert.c).
 *
 *   notify = ( { type = "slack"; url = "https://hooks.slack.com/..."; },
 *              { type = "pagerduty"; routing_key_file = "pd.key"; },
 *              { type = "json"; url = "https://ops.example/hook";
 *                token_file = "hook.token"; headers = [ "X-Team: net" ];
 *                ca_file = "/etc/xborder/ops-ca.pem"; tries = 4; backoff = 1000;
 *                give_up = 60; timeout = 5; } );
 *
 * The old notify_webhook = "URL" still works: it is one json target. A
 * secret (token_file, routing_key_file) is a file neither group nor others
 * may access, read at load, never printed; a secret is not sent over
 * plain http.
 */
#include "policy/internal.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NOTIFY_MAX		8
#define NOTIFY_HEADERS_MAX	8
#define PAGERDUTY_URL		"https://events.pagerduty.com/v2/enqueue"

static const char *const target_keys[] = {
	"type", "url", "ca_file", "token_file", "routing_key_file", "headers", "tries",
	"backoff", "give_up", "timeout", NULL
};
static const char *const type_names[] = { "json", "slack", "pagerduty" };

/* An absolute http or https URL with a host, as libcurl parses it. */
static bool url_ok(const char *v, bool *https)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok;

	ok = u && !curl_url_set(u, CURLUPART_URL, v, 0) &&
	     !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	     !curl_url_get(u, CURLUPART_HOST, &host, 0) && host[0] &&
	     (!strcmp(scheme, "https") || !strcmp(scheme, "http")) && !strpbrk(v, " \t\r\n");
	*https = ok && !strcmp(scheme, "https");
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static void url(struct ld *l, const config_setting_t *s, const char *what,
		struct xb_notify_target *t)
{
	const char *v = xbp_get_str(l, s, "url", what, NULL);
	char qb[QUOTE_MAX + 4];
	bool https;

	if (!v && t->type == XB_NOTIFY_PAGERDUTY)
		v = PAGERDUTY_URL;
	if (!v) {
		if (!config_setting_get_member(s, "url"))
			xbp_err(l, s, "%s: no url", what);
		return;
	}
	t->url = xbp_strdup(l, v);
	if (!url_ok(v, &https))
		xbp_err(l, config_setting_get_member(s, "url"), "%s: url `%s' is not "
			"http(s)://HOST[:PORT]/PATH", what, xbp_quote(qb, v));
	else if (!https && config_setting_get_member(s, t->type == XB_NOTIFY_PAGERDUTY ?
					 "routing_key_file" : "token_file"))
		xbp_err(l, config_setting_get_member(s, "url"), "%s: url `%s' is plain http: "
			"a secret is only sent over https", what, xbp_quote(qb, v));
}

static void secret(struct ld *l, const config_setting_t *s, const char *what,
		   struct xb_notify_target *t)
{
	const char *key = t->type == XB_NOTIFY_PAGERDUTY ? "routing_key_file" : "token_file";
	const char *other = t->type == XB_NOTIFY_PAGERDUTY ? "token_file" : "routing_key_file";
	const char *v = xbp_get_str(l, s, key, what, NULL);

	if (config_setting_get_member(s, other) || (t->type == XB_NOTIFY_SLACK &&
						    config_setting_get_member(s, key)))
		xbp_err(l, config_setting_get_member(s, config_setting_get_member(s, other) ?
						     other : key),
			"%s: a %s target takes %s", what, type_names[t->type],
			t->type == XB_NOTIFY_PAGERDUTY ? "routing_key_file, not token_file" :
			t->type == XB_NOTIFY_JSON ? "token_file, not routing_key_file" :
			"neither token_file nor routing_key_file (the url is its secret)");
	else if (!v && t->type == XB_NOTIFY_PAGERDUTY && !config_setting_get_member(s, key))
		xbp_err(l, s, "%s: no routing_key_file (the PagerDuty integration key)", what);
	if (!v || t->type == XB_NOTIFY_SLACK)
		return;
	t->secret_file = xbp_strdup(l, v);
	if (!(t->secret_resolved = xbp_join(l->p->dir, v))) {
		l->oom = true;
		return;
	}
	t->secret = xbp_secret_text(l, config_setting_get_member(s, key), what, v,
				    t->secret_resolved);
}

static void headers(struct ld *l, const config_setting_t *s, const char *what,
		    struct xb_notify_target *t)
{
	config_setting_t *list = xbp_get_list(l, s, "headers", what);
	int n = list ? config_setting_length(list) : 0;
	char qb[QUOTE_MAX + 4];

	if (list && t->type != XB_NOTIFY_JSON)
		xbp_err(l, list, "%s: headers are for json targets only", what);
	if (!list || t->type != XB_NOTIFY_JSON)
		return;
	if (n > NOTIFY_HEADERS_MAX) {
		xbp_err(l, list, "%s: headers has %d lines; at most %d", what, n, NOTIFY_HEADERS_MAX);
		return;
	}
	if (!(t->headers = calloc((size_t)n + 1, sizeof(char *)))) {
		l->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "headers", what), *colon;

		if (!v)
			continue;
		colon = strchr(v, ':');
		if (!colon || colon == v || strpbrk(v, "\r\n") || strcspn(v, " \t") < (size_t)(colon - v))
			xbp_err(l, e, "%s: header `%s' is not `Name: value'", what, xbp_quote(qb, v));
		else if (!strncasecmp(v, "Authorization:", 14) || !strncasecmp(v, "Content-Type:", 13))
			xbp_err(l, e, "%s: header `%s': the daemon sets that one (use token_file)",
				what, xbp_quote(qb, v));
		else
			t->headers[t->n_headers++] = xbp_strdup(l, v);
	}
}

static void numbers(struct ld *l, const config_setting_t *s, const char *what,
		    struct xb_notify_target *t)
{
	long v;

	t->tries = 4;
	t->backoff_ms = 1000;
	t->give_up_s = 300;
	t->timeout_s = 10;
	if (xbp_get_int(l, s, "tries", what, 1, 20, &v))
		t->tries = (unsigned)v;
	if (xbp_get_int(l, s, "backoff", what, 100, 60000, &v))
		t->backoff_ms = (unsigned)v;
	if (xbp_get_int(l, s, "give_up", what, 1, 86400, &v))
		t->give_up_s = (unsigned)v;
	if (xbp_get_int(l, s, "timeout", what, 1, 120, &v))
		t->timeout_s = (unsigned)v;
}

static void target(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_notify_target *t = obj;
	const char *type, *ca;
	char what[64], qb[QUOTE_MAX + 4];
	size_t i;

	snprintf(what, sizeof(what), "gateway: notify #%d", idx + 1);
	t->line = (unsigned)config_setting_source_line(s);
	xbp_check_keys(l, s, what, target_keys);
	type = xbp_get_str(l, s, "type", what, NULL);
	for (i = 0; type && i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (!strcmp(type, type_names[i]))
			break;
	if (!type || i == sizeof(type_names) / sizeof(type_names[0])) {
		if (type || !config_setting_get_member(s, "type"))
			xbp_err(l, s, "%s: type `%s' is not json, slack or pagerduty", what,
				xbp_quote(qb, type ? type : ""));
		return;
	}
	t->type = (enum xb_notify_type)i;
	url(l, s, what, t);
	secret(l, s, what, t);
	headers(l, s, what, t);
	numbers(l, s, what, t);
	if ((ca = xbp_get_str(l, s, "ca_file", what, NULL))) {
		if (ca[0] != '/')
			xbp_err(l, config_setting_get_member(s, "ca_file"), "%s: ca_file `%s' is not "
				"an absolute path", what, xbp_quote(qb, ca));
		t->ca_file = xbp_strdup(l, ca);
	}
}

/* notify_webhook = "URL": a json target with the defaults. */
static void webhook(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const char *v = xbp_get_str(l, s, "notify_webhook", "gateway", NULL);
	struct xb_notify_target *t;
	char qb[QUOTE_MAX + 4];
	bool https;

	if (!v)
		return;
	g->notify_webhook = xbp_strdup(l, v);
	if (!url_ok(v, &https)) {
		xbp_err(l, config_setting_get_member(s, "notify_webhook"), "gateway: notify_webhook "
			"`%s' is not http(s)://HOST[:PORT]/PATH", xbp_quote(qb, v));
		return;
	}
	if (!(t = xb_grow(g->notify, g->n_notify, sizeof(*t)))) {
		l->oom = true;
		return;
	}
	g->notify = t;
	t = &g->notify[g->n_notify++];
	*t = (struct xb_notify_target){ .type = XB_NOTIFY_JSON, .url = xbp_strdup(l, v),
					.tries = 4, .backoff_ms = 1000, .give_up_s = 300,
					.timeout_s = 10, .from_webhook = true,
					.line = (unsigned)config_setting_source_line(
						config_setting_get_member(s, "notify_webhook")) };
}

void xbp_parse_notify(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	config_setting_t *list = xbp_get_list(l, s, "notify", "gateway");

	if (list && config_setting_length(list) > NOTIFY_MAX)
		xbp_err(l, list, "gateway: notify has %d targets; at most %d",
			config_setting_length(list), NOTIFY_MAX);
	else if (list)
		xbp_parse_objects(l, list, "gateway: notify", &g->notify, &g->n_notify,
				  sizeof(*g->notify), target);
	webhook(l, s, g);
}

static void kv(FILE *out, const char *key, const char *v)
{
	if (!v)
		return;
	fprintf(out, " %s = ", key);
	xbp_put_str(out, v);
	fputc(';', out);
}

void xbp_print_notify(const struct xb_gateway *g, FILE *out)
{
	bool any = false;

	for (size_t i = 0; i < g->n_notify; i++) {
		const struct xb_notify_target *t = &g->notify[i];

		if (t->from_webhook)
			continue;
		fputs(any ? ",\n    {" : "  notify = (\n    {", out);
		any = true;
		kv(out, "type", type_names[t->type]);
		kv(out, "url", t->url);
		kv(out, "ca_file", t->ca_file);
		kv(out, t->type == XB_NOTIFY_PAGERDUTY ? "routing_key_file" : "token_file",
		   t->secret_file);
		if (t->n_headers) {
			fputs(" headers = [ ", out);
			for (size_t j = 0; j < t->n_headers; j++) {
				fputs(j ? ", " : "", out);
				xbp_put_str(out, t->headers[j]);
			}
			fputs(" ];", out);
		}
		fprintf(out, " tries = %u; backoff = %u; give_up = %u; timeout = %u; }", t->tries,
			t->backoff_ms, t->give_up_s, t->timeout_s);
	}
	if (any)
		fputs("\n  );\n", out);
}

void xbp_notify_free(struct xb_gateway *g)
{
	for (size_t i = 0; i < g->n_notify; i++) {
		struct xb_notify_target *t = &g->notify[i];

		free(t->url);
		free(t->ca_file);
		free(t->secret_file);
		free(t->secret_resolved);
		if (t->secret) {
			sodium_memzero(t->secret, strlen(t->secret));
			free(t->secret);
		}
		for (size_t j = 0; j < t->n_headers; j++)
			free(t->headers[j]);
		free(t->headers);
	}
	free(g->notify);
	g->notify = NULL;
	g->n_notify = 0;
}
