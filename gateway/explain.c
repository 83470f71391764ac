/* The rule walk of chain from_devices, told in words (gateway/explain.h).
 * Every condition mirrors the line policy/compile.c writes for the rule;
 * tests/unit/test_explain.c checks them by hand and against the kernel's
 * own verdict on the compiled table. */
#include "gateway/explain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static bool prefix_has(const struct xb_prefix *x, int family, const uint8_t *a)
{
	unsigned bytes = x->cidr / 8, bits = x->cidr % 8;

	if (x->family != family)
		return false;
	if (memcmp(x->addr, a, bytes))
		return false;
	if (!bits)
		return true;
	return !((x->addr[bytes] ^ a[bytes]) & (0xff00u >> bits));
}

/* The rule's destinations: `to', then each list. */
static bool in_to(const struct xb_policy *p, const struct xb_rule *r, int family,
		  const uint8_t *a, struct xb_explain_rule *er)
{
	for (size_t i = 0; i < r->n_to; i++)
		if (prefix_has(&r->to[i], family, a)) {
			er->dest = XB_DEST_TO;
			return true;
		}
	for (size_t i = 0; i < r->n_to_lists; i++) {
		const struct xb_prefix_list *pl = &p->lists[r->to_lists[i].idx];

		for (size_t k = 0; k < pl->n; k++)
			if (prefix_has(&pl->v[k], family, a)) {
				er->dest = XB_DEST_LIST;
				er->list = i;
				return true;
			}
	}
	return false;
}

/* compile.c's l4proto(): the rule has a line for the family. */
static bool family_proto(unsigned protos, int family)
{
	unsigned mine = XB_PROTO_TCP | XB_PROTO_UDP |
			(family == AF_INET6 ? XB_PROTO_ICMPV6 : XB_PROTO_ICMP);

	return !protos || (protos & mine);
}

static enum xb_explain_why device_why(const struct xb_explain_in *in, size_t ri, size_t dev)
{
	const struct xb_rule *r = &in->p->rules[ri];

	if (!xb_compile_selects(in->p, ri, dev))
		return XB_EXPLAIN_DEVICE;
	if (r->n_posture && !(in->posture_ok && in->posture_ok(in->ctx, ri, dev)))
		return XB_EXPLAIN_POSTURE;
	return XB_EXPLAIN_MATCH;
}

/* `th dport': ports come only with tcp and udp (the loader's rule). */
static enum xb_explain_why l4_why(const struct xb_rule *r, const struct xb_explain_q *q)
{
	bool depends = false;

	if (r->protocols) {
		if (!q->proto)
			depends = true;
		else if (!(r->protocols & q->proto))
			return XB_EXPLAIN_PROTO;
	}
	if (r->n_ports) {
		bool hit = false;

		if (q->proto & (XB_PROTO_ICMP | XB_PROTO_ICMPV6))
			return XB_EXPLAIN_PROTO;
		if (!q->port)
			return XB_EXPLAIN_DEPENDS;
		for (size_t i = 0; i < r->n_ports; i++)
			hit |= q->port >= r->ports[i].lo && q->port <= r->ports[i].hi;
		if (!hit)
			return XB_EXPLAIN_PORT;
	}
	return depends ? XB_EXPLAIN_DEPENDS : XB_EXPLAIN_MATCH;
}

static void judge(const struct xb_explain_in *in, const struct xb_explain_q *q, size_t ri,
		  struct xb_explain_rule *er)
{
	const struct xb_rule *r = &in->p->rules[ri];
	bool dest = r->n_to || r->n_to_lists || r->n_domains;
	bool learned;

	*er = (struct xb_explain_rule){ .rule = ri, .dest = XB_DEST_ANY };
	if (!family_proto(r->protocols, q->family)) {
		er->why = XB_EXPLAIN_FAMILY;
		return;
	}
	if ((er->why = device_why(in, ri, q->device)) != XB_EXPLAIN_MATCH)
		return;
	learned = r->n_domains && in->learned && in->learned(in->ctx, ri, q->family, q->addr);
	er->learned = learned;
	if (dest && !in_to(in->p, r, q->family, q->addr, er)) {
		if (!learned) {
			er->why = XB_EXPLAIN_DEST;
			return;
		}
		er->dest = XB_DEST_DNS;
	}
	er->why = l4_why(r, q);
}

int xb_explain(const struct xb_explain_in *in, const struct xb_explain_q *q,
	       struct xb_explain *out)
{
	const struct xb_policy *p = in->p;
	const struct xb_device *d = &p->devices[q->device];
	bool v6 = q->family == AF_INET6;

	*out = (struct xb_explain){ .decided = SIZE_MAX, .path = -1,
				    .verdict = XB_VERDICT_DEFAULT_DENY };
	if (!(v6 ? p->gateway.has_pool6 && d->has6 : p->gateway.has_pool4 && d->has4)) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	if (q->local) {
		out->verdict = XB_VERDICT_LOCAL;
		return 0;
	}
	if (p->n_rules && !(out->v = calloc(p->n_rules, sizeof(*out->v)))) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		struct xb_explain_rule *er = &out->v[out->n++];

		judge(in, q, i, er);
		if (er->why != XB_EXPLAIN_MATCH)
			continue;
		out->decided = i;
		out->verdict = p->rules[i].action == XB_ACTION_DENY ? XB_VERDICT_DENY : XB_VERDICT_ALLOW;
		out->path = in->plan && in->plan->rule_path ? in->plan->rule_path[i] : -1;
		break;
	}
	return 0;
}

void xb_explain_free(struct xb_explain *e)
{
	free(e->v);
	*e = (struct xb_explain){ .decided = SIZE_MAX, .path = -1 };
}

bool xb_explain_parse_proto(const char *s, struct xb_explain_q *q)
{
	static const struct { const char *name; unsigned bit; } t[] = {
		{ "tcp", XB_PROTO_TCP }, { "udp", XB_PROTO_UDP },
		{ "icmp", XB_PROTO_ICMP }, { "icmpv6", XB_PROTO_ICMPV6 },
	};
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	q->proto = 0;
	q->port = 0;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strlen(t[i].name) == n && !strncmp(s, t[i].name, n))
			q->proto = t[i].bit;
	if (!q->proto)
		return false;
	if (slash) {
		char *end;
		unsigned long v;

		if (!(q->proto & (XB_PROTO_TCP | XB_PROTO_UDP)) || slash[1] < '0' || slash[1] > '9')
			return false;
		errno = 0;
		v = strtoul(slash + 1, &end, 10);
		if (errno || *end || v < 1 || v > 65535)
			return false;
		q->port = (uint16_t)v;
	}
	return true;
}

const char *xb_explain_why_name(enum xb_explain_why w)
{
	static const char *const n[] = {
		[XB_EXPLAIN_MATCH] = "match", [XB_EXPLAIN_DEPENDS] = "depends",
		[XB_EXPLAIN_FAMILY] = "family", [XB_EXPLAIN_DEVICE] = "device",
		[XB_EXPLAIN_POSTURE] = "posture", [XB_EXPLAIN_DEST] = "destination",
		[XB_EXPLAIN_PROTO] = "protocol", [XB_EXPLAIN_PORT] = "port",
	};

	return (unsigned)w < sizeof(n) / sizeof(n[0]) ? n[w] : "?";
}

const char *xb_explain_dest_name(enum xb_explain_dest d)
{
	static const char *const n[] = {
		[XB_DEST_ANY] = "any", [XB_DEST_TO] = "to", [XB_DEST_LIST] = "to_lists",
		[XB_DEST_DNS] = "dns",
	};

	return (unsigned)d < sizeof(n) / sizeof(n[0]) ? n[d] : "?";
}

const char *xb_explain_verdict_name(enum xb_explain_verdict v)
{
	static const char *const n[] = {
		[XB_VERDICT_LOCAL] = "local", [XB_VERDICT_ALLOW] = "allow",
		[XB_VERDICT_DENY] = "deny", [XB_VERDICT_DEFAULT_DENY] = "default_deny",
	};

	return (unsigned)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}
