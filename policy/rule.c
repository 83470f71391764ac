/* The rules section: who (groups, devices, posture), what (destination
 * prefixes, domain patterns, protocols, ports) and the action: allow via
 * tunnels in preference order, via "best" or via "internet", or deny.
 * Names are resolved by validate.c.
 */
#include "policy/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const rule_keys[] = {
	"name", "groups", "devices", "posture", "to", "to_lists", "domains", "learn_private",
	"protocols", "ports", "action", "via", "slo", NULL
};

static const struct {
	const char *name;
	unsigned bit;
} protos[] = {
	{ "tcp", XB_PROTO_TCP }, { "udp", XB_PROTO_UDP },
	{ "icmp", XB_PROTO_ICMP }, { "icmpv6", XB_PROTO_ICMPV6 },
};

/* Each string element of list key, with its setting; NULL-safe. */
#define for_each_str(l, s, key, what, e, v)                                          \
	for (const config_setting_t *list_ = xbp_get_list(l, s, key, what); list_; list_ = NULL) \
		for (int i_ = 0; i_ < config_setting_length(list_); i_++)                    \
			if ((e = config_setting_get_elem(list_, (unsigned)i_)),              \
			    (v = xbp_elem_str(l, e, key, what)))

static void parse_to(struct ld *l, const config_setting_t *s, const char *what, struct xb_rule *r)
{
	const config_setting_t *e;
	const char *v;
	char qb[QUOTE_MAX + 4], fixed[64];
	struct xb_prefix p;

	for_each_str(l, s, "to", what, e, v) {
		if (!xb_prefix_parse(&p, v)) {
			xbp_err(l, e, "%s: to `%s' is not an address or prefix", what, xbp_quote(qb, v));
		} else if (xbp_prefix_host_bits(&p)) {
			xbp_prefix_mask(&p);
			xbp_prefix_format(fixed, sizeof(fixed), &p);
			xbp_err(l, e, "%s: to `%s' has host bits set (did you mean %s?)", what,
				xbp_quote(qb, v), fixed);
		} else if (!xb_prefix_append(&r->to, &r->n_to, &p)) {
			l->oom = true;
		}
	}
}

/* "example.com" matches that name; "*.example.com" every name below it. */
static void parse_domains(struct ld *l, const config_setting_t *s, const char *what,
			  struct xb_rule *r)
{
	const config_setting_t *e;
	const char *v;
	char qb[QUOTE_MAX + 4], *d, **nv;

	for_each_str(l, s, "domains", what, e, v) {
		if (!xbp_dns_name_ok(strncmp(v, "*.", 2) ? v : v + 2)) {
			xbp_err(l, e, "%s: domains `%s' is not a domain name or *.domain pattern",
				what, xbp_quote(qb, v));
			continue;
		}
		if (!(d = strdup(v)) || !(nv = xb_grow(r->domains, r->n_domains, sizeof(*nv)))) {
			free(d);
			l->oom = true;
			return;
		}
		for (char *c = d; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		r->domains = nv;
		nv[r->n_domains++] = d;
	}
}

static void parse_protocols(struct ld *l, const config_setting_t *s, const char *what,
			    struct xb_rule *r)
{
	const config_setting_t *e;
	const char *v;
	char qb[QUOTE_MAX + 4];
	size_t k;

	for_each_str(l, s, "protocols", what, e, v) {
		for (k = 0; k < sizeof(protos) / sizeof(protos[0]) && strcmp(v, protos[k].name); k++)
			;
		if (k < sizeof(protos) / sizeof(protos[0]))
			r->protocols |= protos[k].bit;
		else
			xbp_err(l, e, "%s: protocols `%s' is not tcp, udp, icmp or icmpv6", what,
				xbp_quote(qb, v));
	}
}

/* "443", "8000-8100", or the integer 443. */
static bool port_range(const config_setting_t *e, struct xb_port_range *pr, char *shown, size_t len)
{
	const char *v;
	char *end;
	unsigned long lo, hi;

	if (config_setting_type(e) == CONFIG_TYPE_INT) {
		snprintf(shown, len, "%d", config_setting_get_int(e));
		lo = hi = (unsigned long)config_setting_get_int(e);
		if (config_setting_get_int(e) < 1 || lo > 65535)
			return false;
	} else {
		v = config_setting_get_string(e);
		snprintf(shown, len, "%s", v);
		if (!isdigit((unsigned char)v[0]))
			return false;
		lo = hi = strtoul(v, &end, 10);
		if (*end == '-' && isdigit((unsigned char)end[1]))
			hi = strtoul(end + 1, &end, 10);
		if (*end || lo < 1 || hi > 65535 || lo > hi)
			return false;
	}
	pr->lo = (uint16_t)lo;
	pr->hi = (uint16_t)hi;
	return true;
}

static void parse_ports(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_rule *r)
{
	const config_setting_t *list = xbp_get_list(l, s, "ports", what);
	char qb[QUOTE_MAX + 4], shown[QUOTE_MAX + 1];
	struct xb_port_range pr, *nv;

	for (int i = 0; list && i < config_setting_length(list); i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_INT &&
		    config_setting_type(e) != CONFIG_TYPE_STRING) {
			xbp_err(l, e, "%s: ports: element %d must be a port or a \"low-high\" string, "
				"not %s", what, i + 1, xbp_type_name(config_setting_type(e)));
		} else if (!port_range(e, &pr, shown, sizeof(shown))) {
			xbp_err(l, e, "%s: ports `%s' is not a port or range (1-65535)", what,
				xbp_quote(qb, shown));
		} else if (!(nv = xb_grow(r->ports, r->n_ports, sizeof(*nv)))) {
			l->oom = true;
			return;
		} else {
			r->ports = nv;
			nv[r->n_ports++] = pr;
		}
	}
	/* Ports mean TCP and UDP unless the rule names its protocols. */
	if (list && config_setting_length(list) && !config_setting_get_member(s, "protocols"))
		r->protocols = XB_PROTO_TCP | XB_PROTO_UDP;
	else if (r->n_ports && (r->protocols & (XB_PROTO_ICMP | XB_PROTO_ICMPV6)))
		xbp_err(l, list, "%s: ports apply only to tcp and udp, and protocols has icmp", what);
}

static bool add_via(struct ld *l, struct xb_rule *r, enum xb_via_kind kind, const char *name,
		    unsigned line)
{
	struct xb_via *nv = xb_grow(r->via, r->n_via, sizeof(*nv));

	if (!nv) {
		l->oom = true;
		return false;
	}
	r->via = nv;
	nv[r->n_via] = (struct xb_via){ kind, { NULL, line, 0 } };
	if (name && !(nv[r->n_via].tunnel.name = xbp_strdup(l, name)))
		return false;
	r->n_via++;
	return true;
}

/* "best" stands alone; "internet" may end a list of tunnels (the fallback
 * when none of them is up). */
static void parse_via(struct ld *l, const config_setting_t *s, const char *what, struct xb_rule *r)
{
	const config_setting_t *e, *list = config_setting_get_member(s, "via");
	const char *v;
	int n = list ? config_setting_length(list) : 0;

	for_each_str(l, s, "via", what, e, v) {
		int i = config_setting_index(e);

		if (!strcmp(v, "best") && n > 1)
			xbp_err(l, e, "%s: via \"best\" must be alone", what);
		else if (!strcmp(v, "internet") && i != n - 1)
			xbp_err(l, e, "%s: via \"internet\" must come last", what);
		if (!strcmp(v, "best") || !strcmp(v, "internet"))
			add_via(l, r, v[0] == 'b' ? XB_VIA_BEST : XB_VIA_INTERNET, NULL,
				config_setting_source_line(e));
		else if (!add_via(l, r, XB_VIA_TUNNEL, v, config_setting_source_line(e)))
			return;
	}
}

static void parse_action(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_rule *r)
{
	const config_setting_t *m = config_setting_get_member(s, "action");
	const config_setting_t *via = config_setting_get_member(s, "via");
	const char *v = xbp_get_str(l, s, "action", what, NULL);
	char qb[QUOTE_MAX + 4];

	if (!v) {
		if (!m)
			xbp_err(l, s, "%s: no action (allow or deny)", what);
		return;
	}
	if (!strcmp(v, "deny")) {
		r->action = XB_ACTION_DENY;
		if (via)
			xbp_err(l, via, "%s: action deny takes no via", what);
	} else if (!strcmp(v, "allow")) {
		r->action = XB_ACTION_ALLOW;
		if (!via)
			xbp_err(l, m, "%s: action allow needs via (tunnels, \"best\" or \"internet\")",
				what);
		else if (!config_setting_length(via) && config_setting_is_aggregate(via))
			xbp_err(l, via, "%s: via is empty (tunnels, \"best\" or \"internet\")", what);
		else
			parse_via(l, s, what, r);
	} else {
		xbp_err(l, m, "%s: action `%s' is not allow or deny", what, xbp_quote(qb, v));
	}
}

static void parse_rule(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_rule *r = obj;
	char what[WHAT_MAX];
	const char *name = xbp_obj_name(l, s, "rule", idx, false, what, sizeof(what));

	r->src = xbp_src(l, s);
	r->name = name ? xbp_strdup(l, name) : NULL;
	xbp_check_keys(l, s, what, rule_keys);
	xbp_get_refs(l, s, "groups", what, &r->groups, &r->n_groups);
	xbp_get_refs(l, s, "devices", what, &r->devices, &r->n_devices);
	xbp_get_refs(l, s, "posture", what, &r->posture, &r->n_posture);
	parse_to(l, s, what, r);
	xbp_parse_to_lists(l, s, what, r);
	parse_domains(l, s, what, r);
	if (xbp_get_bool(l, s, "learn_private", what, &r->learn_private) && !r->n_domains)
		xbp_err_at(l, r->src, "%s: learn_private applies to addresses learned for domains, and the rule has none",
			what);
	parse_protocols(l, s, what, r);
	parse_ports(l, s, what, r);
	parse_action(l, s, what, r);
	r->slo = -1;
	xbp_parse_slo(l, s, what, &r->slo);
}

void xbp_parse_rules(struct ld *l, const config_setting_t *s)
{
	xbp_parse_objects(l, s, "rules", &l->p->rules, &l->p->n_rules, sizeof(*l->p->rules),
			  parse_rule);
}
