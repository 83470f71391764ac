/* The dns section: upstreams, limits, the query log, and the name rules
 * (override, tunnel, block, forward). Tunnel references are resolved by
 * validate.c; list files are checked readable here and parsed by the DNS
 * service (gateway/dns/dns_list.h), which reports their lines' errors.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const dns_keys[] = {
	"upstreams", "timeout", "tries", "grace", "cache_size", "ttl_max", "negative_ttl_max",
	"learn_max", "learn_answer_max", "ttl_min", "serve_stale", "doh_canary",
	"query_log", "query_log_max", "rules", NULL
};

static const char *const rule_keys[] = {
	"name", "domains", "lists", "list_format", "action", "answer", "cname", "ttl",
	"tunnel", "servers", "block", NULL
};

#define for_each_str(l, s, key, what, e, v)                                          \
	for (const config_setting_t *list_ = xbp_get_list(l, s, key, what); list_; list_ = NULL) \
		for (int i_ = 0; i_ < config_setting_length(list_); i_++)                    \
			if ((e = config_setting_get_elem(list_, (unsigned)i_)),              \
			    (v = xbp_elem_str(l, e, key, what)))

/* "192.0.2.53", "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:5353". */
static bool server_parse(union xb_sockaddr *sa, const char *s)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':'), *port = NULL;
	size_t n;

	memset(sa, 0, sizeof(*sa));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (end[1] && (end[1] != ':' || !end[2])))
			return false;
		n = (size_t)(end - s - 1);
		if (n >= sizeof(host))
			return false;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		port = end[1] ? end + 2 : NULL;
	} else if (colon && strchr(s, ':') == colon) {	/* one colon: IPv4:port */
		n = (size_t)(colon - s);
		if (n >= sizeof(host))
			return false;
		memcpy(host, s, n);
		host[n] = '\0';
		port = colon + 1;
	} else {
		snprintf(host, sizeof(host), "%s", s);
		if (strlen(s) >= sizeof(host))
			return false;
	}
	uint16_t p = 53;
	if (port) {
		char *end;
		unsigned long v = strtoul(port, &end, 10);

		if (!isdigit((unsigned char)*port) || *end || v < 1 || v > 65535)
			return false;
		p = (uint16_t)v;
	}
	if (inet_pton(AF_INET, host, &sa->in.sin_addr) == 1) {
		sa->in.sin_family = AF_INET;
		sa->in.sin_port = htons(p);
		return true;
	}
	if (inet_pton(AF_INET6, host, &sa->in6.sin6_addr) == 1) {
		sa->in6.sin6_family = AF_INET6;
		sa->in6.sin6_port = htons(p);
		return true;
	}
	return false;
}

static void parse_servers(struct ld *l, const config_setting_t *s, const char *key,
			  const char *what, union xb_sockaddr **v, size_t *n)
{
	const config_setting_t *e;
	const char *str;
	char qb[QUOTE_MAX + 4];

	for_each_str(l, s, key, what, e, str) {
		union xb_sockaddr sa, *nv;

		if (!server_parse(&sa, str)) {
			xbp_err(l, e, "%s: %s `%s' is not an address with an optional port "
				"(192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)", what, key,
				xbp_quote(qb, str));
		} else if (!(nv = xb_grow(*v, *n, sizeof(*nv)))) {
			l->oom = true;
			return;
		} else {
			*v = nv;
			nv[(*n)++] = sa;
		}
	}
}

/* "erp.acme.cn" that name; "*.acme.cn" every name below; ".acme.cn" the
 * name and every name below it. */
static bool pattern_ok(const char *v)
{
	if (!strcmp(v, "*") || !strcmp(v, "."))
		return true;
	if (!strncmp(v, "*.", 2))
		v += 2;
	else if (v[0] == '.')
		v++;
	return xbp_dns_name_ok(v);
}

static bool push_str(struct ld *l, char ***v, size_t *n, char *s)
{
	char **nv;

	if (!s || !(nv = xb_grow(*v, *n, sizeof(*nv)))) {
		free(s);
		l->oom = true;
		return false;
	}
	*v = nv;
	nv[(*n)++] = s;
	return true;
}

static void parse_names(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_dns_rule *r)
{
	const config_setting_t *e;
	const char *v;
	char qb[QUOTE_MAX + 4];

	for_each_str(l, s, "domains", what, e, v) {
		char *d;

		if (!pattern_ok(v)) {
			xbp_err(l, e, "%s: domains `%s' is not a name, *.name or .name", what,
				xbp_quote(qb, v));
			continue;
		}
		if (!push_str(l, &r->domains, &r->n_domains, (d = strdup(v))))
			return;
		for (; *d; d++)
			*d = (char)tolower((unsigned char)*d);
	}
	for_each_str(l, s, "lists", what, e, v) {
		char *path = xbp_join(l->p->dir, v);
		size_t n = r->n_lists;

		if (path && access(path, R_OK) != 0)
			xbp_err(l, e, "%s: lists: cannot read `%s'", what, xbp_quote(qb, v));
		if (!push_str(l, &r->list_paths, &n, path) ||
		    !push_str(l, &r->lists, &r->n_lists, strdup(v)))
			return;
	}
	if (!r->n_domains && !r->n_lists && !config_setting_get_member(s, "domains") &&
	    !config_setting_get_member(s, "lists"))
		xbp_err(l, s, "%s: names no domains and no lists", what);
}

static void parse_format(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_dns_rule *r)
{
	const char *v = xbp_get_str(l, s, "list_format", what, NULL);
	char qb[QUOTE_MAX + 4];

	if (!v)
		return;
	if (!strcmp(v, "dnsmasq"))
		r->list_format = XB_DNS_LISTFMT_DNSMASQ;
	else if (!strcmp(v, "patterns"))
		r->list_format = XB_DNS_LISTFMT_PATTERNS;
	else if (!strcmp(v, "domains"))
		r->list_format = XB_DNS_LISTFMT_DOMAINS;
	else
		xbp_err(l, config_setting_get_member(s, "list_format"),
			"%s: list_format `%s' is not dnsmasq, patterns or domains", what,
			xbp_quote(qb, v));
}

static void parse_answer(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_dns_rule *r)
{
	const config_setting_t *e;
	const char *v;
	char qb[QUOTE_MAX + 4];

	for_each_str(l, s, "answer", what, e, v) {
		struct in_addr a;
		struct in6_addr a6;
		void *nv;

		if (inet_pton(AF_INET, v, &a) == 1 && (nv = xb_grow(r->a, r->n_a, sizeof(a)))) {
			r->a = nv;
			r->a[r->n_a++] = a;
		} else if (inet_pton(AF_INET6, v, &a6) == 1 &&
			   (nv = xb_grow(r->aaaa, r->n_aaaa, sizeof(a6)))) {
			r->aaaa = nv;
			r->aaaa[r->n_aaaa++] = a6;
		} else {
			xbp_err(l, e, "%s: answer `%s' is not an IPv4 or IPv6 address", what,
				xbp_quote(qb, v));
		}
	}
	if ((v = xbp_get_str(l, s, "cname", what, NULL))) {
		if (!xbp_dns_name_ok(v))
			xbp_err(l, config_setting_get_member(s, "cname"),
				"%s: cname `%s' is not a domain name", what, xbp_quote(qb, v));
		else if ((r->cname = xbp_strdup(l, v)))
			for (char *c = r->cname; *c; c++)
				*c = (char)tolower((unsigned char)*c);
	}
}

static void block_addr(struct ld *l, const config_setting_t *e, const char *what,
		       struct xb_dns_rule *r, const char *v)
{
	char qb[QUOTE_MAX + 4];

	if (!r->has_block4 && inet_pton(AF_INET, v, &r->block4) == 1)
		r->has_block4 = true;
	else if (!r->has_block6 && inet_pton(AF_INET6, v, &r->block6) == 1)
		r->has_block6 = true;
	else
		xbp_err(l, e, "%s: block `%s' is not nxdomain, refused, or one address per family",
			what, xbp_quote(qb, v));
}

/* "nxdomain", "refused", or the addresses to answer (one per family). */
static void parse_block(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_dns_rule *r)
{
	const config_setting_t *m = config_setting_get_member(s, "block");
	const config_setting_t *e;
	const char *v;

	if (m && config_setting_type(m) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(m);
		if (!strcmp(v, "nxdomain") || !strcmp(v, "refused"))
			r->block = v[0] == 'n' ? XB_DNS_BLOCK_NXDOMAIN : XB_DNS_BLOCK_REFUSED;
		else
			block_addr(l, m, what, r, v);
	} else {
		for_each_str(l, s, "block", what, e, v)
			block_addr(l, e, what, r, v);
	}
	if (r->has_block4 || r->has_block6)
		r->block = XB_DNS_BLOCK_ADDRESS;
}

static const char *const actions[] = { "forward", "override", "tunnel", "block" };

/* Settings that mean something only for some actions. */
static void misplaced(struct ld *l, const config_setting_t *s, const char *what,
		      const struct xb_dns_rule *r)
{
	static const struct { const char *key; unsigned actions; } only[] = {
		{ "answer", 1u << XB_DNS_OVERRIDE }, { "cname", 1u << XB_DNS_OVERRIDE },
		{ "tunnel", 1u << XB_DNS_TUNNEL },
		{ "servers", 1u << XB_DNS_TUNNEL | 1u << XB_DNS_FORWARD },
		{ "block", 1u << XB_DNS_TUNNEL | 1u << XB_DNS_BLOCK },
		{ "ttl", 1u << XB_DNS_OVERRIDE | 1u << XB_DNS_BLOCK },
	};

	for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++) {
		const config_setting_t *m = config_setting_get_member(s, only[i].key);

		if (m && !(only[i].actions & (1u << r->action)))
			xbp_err(l, m, "%s: %s does not apply to action %s", what, only[i].key,
				actions[r->action]);
	}
}

/* One name (the path's tunnels, that one when the path has none) or a
 * list (the rule's own tunnels, in order). */
static void parse_tunnel(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_dns_rule *r)
{
	const config_setting_t *m = config_setting_get_member(s, "tunnel");
	const char *v;

	if (!m)
		return;
	if (config_setting_type(m) == CONFIG_TYPE_STRING) {
		if ((v = xbp_get_str(l, s, "tunnel", what, &r->tunnel.line)))
			r->tunnel.name = xbp_strdup(l, v);
		return;
	}
	if (config_setting_type(m) != CONFIG_TYPE_LIST && config_setting_type(m) != CONFIG_TYPE_ARRAY) {
		xbp_err(l, m, "%s: tunnel must be a tunnel name or a list of them, not %s", what,
			xbp_type_name(config_setting_type(m)));
		return;
	}
	if (!xbp_get_refs(l, s, "tunnel", what, &r->tunnels, &r->n_tunnels))
		return;
	if (!r->n_tunnels)
		xbp_err(l, m, "%s: tunnel: an empty list (leave tunnel out to follow the path)", what);
	for (size_t i = 0; i < r->n_tunnels; i++)
		for (size_t k = 0; k < i; k++)
			if (!strcmp(r->tunnels[i].name, r->tunnels[k].name))
				xbp_err(l, m, "%s: tunnel: `%s' is listed twice", what,
					r->tunnels[i].name);
}

static void parse_action(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_dns_rule *r)
{
	const config_setting_t *m = config_setting_get_member(s, "action");
	const char *v = xbp_get_str(l, s, "action", what, NULL);
	char qb[QUOTE_MAX + 4];
	size_t k = 0;
	long ttl;

	if (!v) {
		if (!m)
			xbp_err(l, s, "%s: no action (override, tunnel, block or forward)", what);
		return;
	}
	while (k < 4 && strcmp(v, actions[k]))
		k++;
	if (k == 4) {
		xbp_err(l, m, "%s: action `%s' is not override, tunnel, block or forward", what,
			xbp_quote(qb, v));
		return;
	}
	r->action = (enum xb_dns_action)k;
	misplaced(l, s, what, r);
	r->ttl = 60;
	if (xbp_get_int(l, s, "ttl", what, 0, 604800, &ttl))
		r->ttl = (uint32_t)ttl;
	parse_answer(l, s, what, r);
	parse_block(l, s, what, r);
	parse_servers(l, s, "servers", what, &r->servers, &r->n_servers);
	parse_tunnel(l, s, what, r);
	if (r->action == XB_DNS_OVERRIDE && !r->n_a && !r->n_aaaa && !r->cname &&
	    !config_setting_get_member(s, "answer"))
		xbp_err(l, m, "%s: action override needs answer (addresses) or cname", what);
	if (r->action == XB_DNS_OVERRIDE && r->cname && (r->n_a || r->n_aaaa))
		xbp_err(l, m, "%s: override has both answer and cname (one or the other)", what);
	if (r->action == XB_DNS_TUNNEL && !config_setting_get_member(s, "servers"))
		xbp_err(l, m, "%s: action tunnel needs servers (resolvers behind the tunnel)", what);
}

static void parse_rule(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_dns_rule *r = obj;
	char what[WHAT_MAX];
	const char *name = xbp_obj_name(l, s, "dns rule", idx, false, what, sizeof(what));

	r->src = xbp_src(l, s);
	r->name = name ? xbp_strdup(l, name) : NULL;
	xbp_check_keys(l, s, what, rule_keys);
	parse_names(l, s, what, r);
	parse_format(l, s, what, r);
	parse_action(l, s, what, r);
}

static void get_uint(struct ld *l, const config_setting_t *s, const char *key, long lo, long hi,
		     unsigned *out, unsigned dflt)
{
	long v;

	*out = dflt;
	if (xbp_get_int(l, s, key, "dns", lo, hi, &v))
		*out = (unsigned)v;
}

void xbp_parse_dns(struct ld *l, const config_setting_t *s)
{
	struct xb_dns *d = &l->p->dns;
	const config_setting_t *rules;
	const char *v;
	long n;

	d->enabled = true;
	xbp_check_keys(l, s, "dns", dns_keys);
	parse_servers(l, s, "upstreams", "dns", &d->upstreams, &d->n_upstreams);
	get_uint(l, s, "timeout", 10, 30000, &d->timeout_ms, 1000);
	get_uint(l, s, "tries", 1, 10, &d->tries, 2);
	get_uint(l, s, "grace", 0, 86400, &d->grace, 300);
	get_uint(l, s, "cache_size", 0, 10000000, &d->cache_size, 100000);
	get_uint(l, s, "ttl_max", 1, 604800, &d->ttl_max, 3600);
	get_uint(l, s, "learn_max", 16, 1048576, &d->learn_max, 65536);
	get_uint(l, s, "learn_answer_max", 1, 256, &d->learn_answer_max, 32);
	get_uint(l, s, "negative_ttl_max", 0, 86400, &d->negative_ttl_max, 3600);
	get_uint(l, s, "ttl_min", 0, 3600, &d->ttl_min, 0);
	get_uint(l, s, "serve_stale", 0, 604800, &d->serve_stale, 86400);
	d->doh_canary = true;
	xbp_get_bool(l, s, "doh_canary", "dns", &d->doh_canary);
	d->query_log_max = 64ul << 20;
	if (xbp_get_int(l, s, "query_log_max", "dns", 4096, 1l << 40, &n))
		d->query_log_max = (unsigned long)n;
	if ((v = xbp_get_str(l, s, "query_log", "dns", NULL)) &&
	    (!(d->query_log = strdup(v)) || !(d->query_log_path = xbp_join(l->p->dir, v))))
		l->oom = true;
	if (!(rules = xbp_get_list(l, s, "rules", "dns")))
		return;
	xbp_parse_objects(l, rules, "dns rules", &d->rules, &d->n_rules, sizeof(*d->rules),
			  parse_rule);
}

void xbp_dns_free(struct xb_dns *d)
{
	for (size_t i = 0; i < d->n_rules; i++) {
		struct xb_dns_rule *r = &d->rules[i];

		free(r->name);
		for (size_t k = 0; k < r->n_domains; k++)
			free(r->domains[k]);
		for (size_t k = 0; k < r->n_lists; k++) {
			free(r->lists[k]);
			free(r->list_paths[k]);
		}
		free(r->domains);
		free(r->lists);
		free(r->list_paths);
		free(r->a);
		free(r->aaaa);
		free(r->cname);
		free(r->tunnel.name);
		xbp_refs_free(r->tunnels, r->n_tunnels);
		free(r->servers);
	}
	free(d->rules);
	free(d->upstreams);
	free(d->query_log);
	free(d->query_log_path);
	memset(d, 0, sizeof(*d));
}
