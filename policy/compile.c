/* The nftables ruleset of a policy: table inet xborder, written as one
 * script that creates or atomically replaces the whole table.
 *
 * Rules:
 * - Every packet a device sends (not only the first of a connection) is
 *   judged in prerouting, chain from_devices: policy rules in order, first
 *   match wins, nothing matched is dropped. An allowed packet gets its
 *   path's mark (bits 8-15) and so its routing table; the kernel routes
 *   after this hook. Taking a device out of a set cuts it at its next packet.
 * - Traffic to the gateway itself is left to the input chain.
 * - forward accepts what came from devices (already judged) and lets into
 *   the devices and out of the tunnels only established and related
 *   traffic. A base chain never has policy drop: we drop only traffic of
 *   our own interfaces, never the host's other traffic.
 * - A packet from a device that conntrack cannot track (bad checksum, out
 *   of window) is dropped in forward: NAT skips it, so it would otherwise
 *   carry a pool address into a tunnel or out of the uplink.
 * - A packet on a tunnel-only path that is about to leave by anything but
 *   a tunnel is dropped: where traffic leaves the country is never left to
 *   a missing route.
 * - A TCP SYN or SYN-ACK crossing a tunnel carries at most the MSS that
 *   fits the tunnel (mss_clamp).
 * - Forwarded bytes between each device address and each tunnel are
 *   counted in the dynamic sets acct_{tx,rx}{4,6} (address . tunnel
 *   interface, one counter per element; gateway/metrics_devices.h): inner
 *   IP bytes, before SNAT out and after it in, so the address is the
 *   device's. WireGuard's allowed IPs keep a device's source to its own
 *   addresses, so devices x tunnels elements are enough.
 * - A device packet of a family that a tunnel with snat has no inner
 *   address of is refused at that tunnel (snat_gaps): it would leave with
 *   the device's own address.
 * Identifiers: sets are "r_" RULE "_" KIND; nft identifiers must start with
 * a letter and may hold letters, digits, '.', '_', '-' and '/', which
 * covers every valid rule name. Comments are at most 127 bytes, without
 * '"' (nft quoted strings have no escapes).
 */
#include "policy/compile.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMENT_MAX 128	/* nft's limit, with the NUL */

struct out {
	FILE *f;
	const struct xb_policy *p;
	const struct xb_plan *pl;
	const struct xb_compile_opts *o;
};

static const char *const set_suffix[] = {
	[XB_SET_DEV4] = "dev4", [XB_SET_DEV6] = "dev6",
	[XB_SET_TO4] = "to4", [XB_SET_TO6] = "to6",
	[XB_SET_DNS4] = "dns4", [XB_SET_DNS6] = "dns6",
};

/* Copies s into a comment, replacing what nft cannot quote. */
static void clean(char *dst, size_t len, const char *s)
{
	size_t i = 0;

	for (; s && *s && i + 1 < len; s++, i++) {
		unsigned char c = (unsigned char)*s;

		dst[i] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
	}
	dst[i] = '\0';
}

/* "rule erp (small.conf:39)"; the file's base name when the whole path
 * does not fit. */
static void rule_label(char buf[static COMMENT_MAX], const struct xb_policy *p, size_t ri)
{
	const struct xb_rule *r = &p->rules[ri];
	const char *file = r->src.file ? r->src.file : "?";
	const char *base = strrchr(file, '/');
	char raw[COMMENT_MAX * 4], who[XB_NAME_MAX + 1];
	int n;

	if (r->name)
		snprintf(who, sizeof(who), "%s", r->name);
	else
		snprintf(who, sizeof(who), "#%zu", ri + 1);
	n = snprintf(raw, sizeof(raw), "rule %s (%s:%u)", who, file, r->src.line);
	if ((n < 0 || n >= COMMENT_MAX) && base)
		snprintf(raw, sizeof(raw), "rule %s (%s:%u)", who, base + 1, r->src.line);
	clean(buf, COMMENT_MAX, raw);
}

/* Anything outside nft's identifier characters becomes '_'. */
static void set_base(char *buf, size_t len, const struct xb_policy *p, size_t ri)
{
	const char *name = p->rules[ri].name;
	size_t i = 2;

	if (len < 3) {
		snprintf(buf, len, "r");
		return;
	}
	if (!name) {
		snprintf(buf, len, "r_rule%zu", ri + 1);
		return;
	}
	memcpy(buf, "r_", 2);
	for (; *name && i + 1 < len && i < 2 + XB_NAME_MAX; name++, i++) {
		char c = *name;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		buf[i] = ok ? c : '_';
	}
	buf[i] = '\0';
}

static bool has_to(const struct xb_policy *p, const struct xb_rule *r, int family)
{
	for (size_t i = 0; i < r->n_to; i++)
		if (r->to[i].family == family)
			return true;
	for (size_t i = 0; i < r->n_to_lists; i++) {
		const struct xb_prefix_list *pl = &p->lists[r->to_lists[i].idx];

		if (family == AF_INET ? pl->n4 : pl->n6)
			return true;
	}
	return false;
}

/* The rule names destinations (prefixes, lists or names): only those
 * match, never "anywhere", however few the lists hold. */
static bool has_dest(const struct xb_rule *r)
{
	return r->n_to || r->n_to_lists || r->n_domains;
}

/* The rule matches on source addresses (a device set). */
static bool by_device(const struct xb_rule *r)
{
	return r->n_groups || r->n_devices || r->n_posture;
}

static bool has_pool(const struct xb_policy *p, bool v6)
{
	return v6 ? p->gateway.has_pool6 : p->gateway.has_pool4;
}

/* Every element of a is in b (references compared by index). */
static bool refs_within(const struct xb_ref *a, size_t na, const struct xb_ref *b, size_t nb)
{
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;

		while (j < nb && b[j].idx != a[i].idx)
			j++;
		if (j == nb)
			return false;
	}
	return true;
}

static bool same_refs(const struct xb_ref *a, size_t na, const struct xb_ref *b, size_t nb)
{
	return refs_within(a, na, b, nb) && refs_within(b, nb, a, na);
}

/* Rules that select the same devices under the same posture profiles share
 * one device set, the first such rule's: a fleet of 10 000 devices in 20
 * groups under 1 000 rules is then 10 000 set elements, not 500 000. */
static size_t dev_owner(const struct xb_policy *p, size_t rule)
{
	const struct xb_rule *r = &p->rules[rule];

	for (size_t i = 0; i < rule; i++) {
		const struct xb_rule *q = &p->rules[i];

		if (by_device(q) &&
		    same_refs(q->groups, q->n_groups, r->groups, r->n_groups) &&
		    same_refs(q->devices, q->n_devices, r->devices, r->n_devices) &&
		    same_refs(q->posture, q->n_posture, r->posture, r->n_posture))
			return i;
	}
	return rule;
}

bool xb_compile_set_name(char *buf, size_t len, const struct xb_policy *p, size_t rule,
			 enum xb_set_kind k)
{
	const struct xb_rule *r = &p->rules[rule];
	bool v6 = k == XB_SET_DEV6 || k == XB_SET_TO6 || k == XB_SET_DNS6;
	bool dev = k == XB_SET_DEV4 || k == XB_SET_DEV6;
	size_t n;

	set_base(buf, len, p, dev && by_device(r) ? dev_owner(p, rule) : rule);
	n = strlen(buf);
	snprintf(buf + n, len - n, "_%s", set_suffix[k]);
	if (!has_pool(p, v6))
		return false;
	switch (k) {
	case XB_SET_DEV4: case XB_SET_DEV6:
		return by_device(r);
	case XB_SET_TO4:
		return has_to(p, r, AF_INET);
	case XB_SET_TO6:
		return has_to(p, r, AF_INET6);
	default:
		return r->n_domains > 0;
	}
}

bool xb_compile_selects(const struct xb_policy *p, size_t rule, size_t device)
{
	const struct xb_rule *r = &p->rules[rule];
	const struct xb_device *d = &p->devices[device];

	if (!r->n_groups && !r->n_devices)
		return true;
	for (size_t i = 0; i < r->n_devices; i++)
		if (r->devices[i].idx == device)
			return true;
	for (size_t i = 0; i < r->n_groups; i++)
		for (size_t j = 0; j < d->n_groups; j++)
			if (r->groups[i].idx == d->groups[j].idx)
				return true;
	return false;
}

static bool in_set(const struct out *o, size_t ri, size_t di)
{
	const struct xb_rule *r = &o->p->rules[ri];

	if (!xb_compile_selects(o->p, ri, di))
		return false;
	if (!r->n_posture)
		return true;
	return o->o && o->o->posture_ok && o->o->posture_ok(o->o->ctx, ri, di);
}

static void put_prefix(FILE *f, const struct xb_prefix *x)
{
	char a[INET6_ADDRSTRLEN];
	unsigned host = x->family == AF_INET ? 32 : 128;

	inet_ntop(x->family, x->addr, a, sizeof(a));
	if (x->cidr == host)
		fprintf(f, "%s", a);
	else
		fprintf(f, "%s/%u", a, x->cidr);
}

static void set_head(const struct out *o, size_t ri, enum xb_set_kind k, const char *flags)
{
	char name[XB_SET_NAME_MAX], label[COMMENT_MAX];
	bool v6 = k == XB_SET_DEV6 || k == XB_SET_TO6 || k == XB_SET_DNS6;

	xb_compile_set_name(name, sizeof(name), o->p, ri, k);
	rule_label(label, o->p, ri);
	fprintf(o->f, "\tset %s {\n\t\ttype %s\n", name, v6 ? "ipv6_addr" : "ipv4_addr");
	if (flags)
		fprintf(o->f, "\t\t%s\n", flags);
	fprintf(o->f, "\t\tcomment \"%s\"\n", label);
}

static void dev_set(const struct out *o, size_t ri, bool v6)
{
	const struct xb_policy *p = o->p;
	char a[INET6_ADDRSTRLEN];
	size_t n = 0;

	set_head(o, ri, v6 ? XB_SET_DEV6 : XB_SET_DEV4, NULL);
	for (size_t d = 0; d < p->n_devices; d++) {
		const struct xb_device *dv = &p->devices[d];

		if (!(v6 ? dv->has6 : dv->has4) || !in_set(o, ri, d))
			continue;
		if (v6)
			inet_ntop(AF_INET6, &dv->address6, a, sizeof(a));
		else
			inet_ntop(AF_INET, &dv->address4, a, sizeof(a));
		fprintf(o->f, "%s%s", n++ ? ", " : "\t\telements = { ", a);
	}
	fprintf(o->f, "%s\t}\n", n ? " }\n" : "");
}

static void put_prefixes(FILE *f, const struct xb_prefix *v, size_t nv, int family, size_t *n)
{
	for (size_t i = 0; i < nv; i++) {
		if (v[i].family != family)
			continue;
		fprintf(f, "%s", (*n)++ ? ", " : "\t\telements = { ");
		put_prefix(f, &v[i]);
	}
}

/* The rule's `to' and the prefixes of its to_lists (a file named twice
 * once). Overlapping prefixes are legal, also between `to' and lists;
 * auto-merge lets nft join them instead of refusing the set. */
static void to_set(const struct out *o, size_t ri, bool v6)
{
	const struct xb_rule *r = &o->p->rules[ri];
	int family = v6 ? AF_INET6 : AF_INET;
	size_t n = 0;

	set_head(o, ri, v6 ? XB_SET_TO6 : XB_SET_TO4, "flags interval\n\t\tauto-merge");
	put_prefixes(o->f, r->to, r->n_to, family, &n);
	for (size_t i = 0; i < r->n_to_lists; i++) {
		const struct xb_prefix_list *pl = &o->p->lists[r->to_lists[i].idx];
		size_t j = 0;

		while (j < i && r->to_lists[j].idx != r->to_lists[i].idx)
			j++;
		if (j == i)
			put_prefixes(o->f, pl->v, pl->n, family, &n);
	}
	fprintf(o->f, "%s\t}\n", n ? " }\n" : "");
}

/* Filled at run time by the DNS service, each address with a timeout. Its
 * size is the service's cap (dns.learn_max): the kernel refuses what the
 * service would never put, whatever happens. */
static void dns_set(const struct out *o, size_t ri, bool v6)
{
	set_head(o, ri, v6 ? XB_SET_DNS6 : XB_SET_DNS4, "flags timeout");
	fprintf(o->f, "\t\tsize %u\n\t}\n", o->p->dns.learn_max ? o->p->dns.learn_max : 65536);
}

static void rule_sets(const struct out *o, size_t ri)
{
	char name[XB_SET_NAME_MAX];

	for (int v6 = 0; v6 <= 1; v6++) {
		if (xb_compile_set_name(name, sizeof(name), o->p, ri, v6 ? XB_SET_DEV6 : XB_SET_DEV4) &&
		    dev_owner(o->p, ri) == ri)
			dev_set(o, ri, v6);
		if (xb_compile_set_name(name, sizeof(name), o->p, ri, v6 ? XB_SET_TO6 : XB_SET_TO4))
			to_set(o, ri, v6);
		if (xb_compile_set_name(name, sizeof(name), o->p, ri, v6 ? XB_SET_DNS6 : XB_SET_DNS4))
			dns_set(o, ri, v6);
	}
}

/* "meta l4proto { tcp, udp } ", "" for any protocol, NULL when the rule
 * names protocols but none of this family (icmp is IPv4's, icmpv6 IPv6's). */
static const char *l4proto(char buf[static 64], unsigned protos, bool v6)
{
	const char *names[3];
	size_t n = 0, off;

	if (!protos)
		return "";
	if (protos & XB_PROTO_TCP)
		names[n++] = "tcp";
	if (protos & XB_PROTO_UDP)
		names[n++] = "udp";
	if (protos & (v6 ? XB_PROTO_ICMPV6 : XB_PROTO_ICMP))
		names[n++] = v6 ? "ipv6-icmp" : "icmp";
	if (!n)
		return NULL;
	off = (size_t)snprintf(buf, 64, "meta l4proto %s", n > 1 ? "{ " : "");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, 64 - off, "%s%s", i ? ", " : "", names[i]);
	snprintf(buf + off, 64 - off, "%s", n > 1 ? " } " : " ");
	return buf;
}

static void put_ports(FILE *f, const struct xb_rule *r)
{
	if (!r->n_ports)
		return;
	fprintf(f, "th dport %s", r->n_ports > 1 ? "{ " : "");
	for (size_t i = 0; i < r->n_ports; i++) {
		const struct xb_port_range *x = &r->ports[i];

		fprintf(f, "%s%u", i ? ", " : "", x->lo);
		if (x->hi != x->lo)
			fprintf(f, "-%u", x->hi);
	}
	fprintf(f, "%s", r->n_ports > 1 ? " } " : " ");
}

static void verdict(const struct out *o, size_t ri)
{
	int k = o->pl->rule_path[ri];

	if (o->p->rules[ri].action == XB_ACTION_DENY)
		fprintf(o->f, "drop");
	else if (k < 0)
		fprintf(o->f, "accept");
	else
		fprintf(o->f, "meta mark set meta mark & 0x%08x | 0x%08x accept",
			~XB_MARK_MASK, o->pl->paths[k].mark);
}

/* What the daemon's drop log (gateway/kernel/drops.h) reads: the refused packets
 * of a deny rule and of the default deny, through nfnetlink_log group
 * XB_DROPS_GROUP, at most XB_DROPS_RATE a second per line (more are not
 * logged, and never let through: the log is a line of its own, before the
 * line that drops). The prefix names the rule. */
static void log_tail(const struct out *o, const char *who)
{
	char prefix[COMMENT_MAX];

	clean(prefix, sizeof(prefix), who);
	fprintf(o->f, "limit rate %u/second burst %u packets log prefix \"%s\" group %u\n",
		XB_DROPS_RATE, XB_DROPS_BURST, prefix, XB_DROPS_GROUP);
}

static void rule_match(const struct out *o, size_t ri, int fam, const char *proto,
		       const enum xb_set_kind *dst)
{
	const struct xb_rule *r = &o->p->rules[ri];
	const char *ip = fam == 6 ? "ip6" : "ip";
	char name[XB_SET_NAME_MAX];

	fprintf(o->f, "\t\t");
	if (by_device(r)) {
		xb_compile_set_name(name, sizeof(name), o->p, ri, fam == 6 ? XB_SET_DEV6 : XB_SET_DEV4);
		fprintf(o->f, "%s saddr @%s ", ip, name);
	}
	if (dst) {
		xb_compile_set_name(name, sizeof(name), o->p, ri, *dst);
		fprintf(o->f, "%s daddr @%s ", ip, name);
	}
	if (!by_device(r) && !dst && fam)
		fprintf(o->f, "meta nfproto %s ", fam == 6 ? "ipv6" : "ipv4");
	fprintf(o->f, "%s", proto);
	put_ports(o->f, r);
}

/* One line of rule ri: for family 4 or 6, or 0 for both (a line with
 * nothing specific to a family), and one destination set (dst NULL: any
 * destination). A deny rule's line is preceded by its log line. */
static void rule_line(const struct out *o, size_t ri, int fam, const char *proto,
		      const enum xb_set_kind *dst)
{
	const struct xb_rule *r = &o->p->rules[ri];
	char label[COMMENT_MAX], who[XB_NAME_MAX + 16];

	if (r->action == XB_ACTION_DENY) {
		rule_match(o, ri, fam, proto, dst);
		if (r->name)
			snprintf(who, sizeof(who), XB_DROPS_PREFIX_RULE "%s", r->name);
		else
			snprintf(who, sizeof(who), XB_DROPS_PREFIX_RULE "#%zu", ri + 1);
		log_tail(o, who);
	}
	rule_match(o, ri, fam, proto, dst);
	fprintf(o->f, "counter ");
	verdict(o, ri);
	rule_label(label, o->p, ri);
	fprintf(o->f, " comment \"%s\"\n", label);
}

/* A rule for every device and destination: one line for both families
 * when the protocols are the same in both, else one per family. */
static bool any_family_line(const struct out *o, size_t ri)
{
	const struct xb_rule *r = &o->p->rules[ri];
	char pb4[64], pb6[64];
	const char *p4 = has_pool(o->p, false) ? l4proto(pb4, r->protocols, false) : NULL;
	const char *p6 = has_pool(o->p, true) ? l4proto(pb6, r->protocols, true) : NULL;

	if (by_device(r) || has_dest(r))
		return false;
	if (p4 && p6 && !strcmp(p4, p6))
		rule_line(o, ri, 0, p4, NULL);
	else if (p4 || p6)
		rule_line(o, ri, p4 ? 4 : 6, p4 ? p4 : p6, NULL);
	if (p4 && p6 && strcmp(p4, p6))
		rule_line(o, ri, 6, p6, NULL);
	return true;
}

static void rule_lines(const struct out *o, size_t ri)
{
	const struct xb_rule *r = &o->p->rules[ri];
	char pb[64], name[XB_SET_NAME_MAX];

	if (any_family_line(o, ri))
		return;
	for (int v6 = 0; v6 <= 1; v6++) {
		const char *proto = l4proto(pb, r->protocols, v6);
		enum xb_set_kind to = v6 ? XB_SET_TO6 : XB_SET_TO4;
		enum xb_set_kind dns = v6 ? XB_SET_DNS6 : XB_SET_DNS4;
		int fam = v6 ? 6 : 4;

		if (!has_pool(o->p, v6) || !proto)
			continue;
		if (!has_dest(r))
			rule_line(o, ri, fam, proto, NULL);
		if (xb_compile_set_name(name, sizeof(name), o->p, ri, to))
			rule_line(o, ri, fam, proto, &to);
		if (xb_compile_set_name(name, sizeof(name), o->p, ri, dns))
			rule_line(o, ri, fam, proto, &dns);
	}
}

/* `{ "xb-a", "xb-b" }', or one name alone; with_dev adds the device side. */
static void ifnames(const struct out *o, bool with_dev)
{
	size_t n = o->p->n_tunnels + with_dev;

	fprintf(o->f, "%s", n > 1 ? "{ " : "");
	if (with_dev)
		fprintf(o->f, "\"%s\"", o->p->gateway.interface);
	for (size_t i = 0; i < o->p->n_tunnels; i++)
		fprintf(o->f, "%s\"%s\"", i || with_dev ? ", " : "", o->p->tunnels[i].ifname);
	fprintf(o->f, "%s", n > 1 ? " }" : "");
}

/* The gateway's own services answer devices without conntrack: DNS and
 * posture reports would otherwise fill the table with one entry per query
 * and report (a busy gateway: hundreds of thousands), which every lookup,
 * and every posture cut's walk, pays for. Their input rules accept them by
 * port, not by state. */
static void chain_notrack(const struct out *o)
{
	const struct xb_gateway *g = &o->p->gateway;
	const char *dev = g->interface;

	fprintf(o->f, "\tchain notrack_in {\n"
		"\t\ttype filter hook prerouting priority raw; policy accept;\n"
		"\t\tiifname \"%s\" fib daddr type local meta l4proto { tcp, udp } th dport %u "
		"notrack comment \"DNS\"\n"
		"\t\tiifname \"%s\" fib daddr type local tcp dport %u notrack comment \"posture reports\"\n"
		"\t}\n"
		"\tchain notrack_out {\n"
		"\t\ttype filter hook output priority raw; policy accept;\n"
		"\t\toifname \"%s\" meta l4proto { tcp, udp } th sport %u notrack comment \"DNS\"\n"
		"\t\toifname \"%s\" tcp sport %u notrack comment \"posture reports\"\n"
		"\t}\n", dev, g->dns_port, dev, g->posture_port, dev, g->dns_port, dev, g->posture_port);
}

static void chain_prerouting(const struct out *o)
{
	fprintf(o->f, "\tchain prerouting {\n"
		"\t\ttype filter hook prerouting priority mangle; policy accept;\n"
		"\t\tiifname \"%s\" jump from_devices\n"
		"\t}\n", o->p->gateway.interface);
}

static void chain_from_devices(const struct out *o)
{
	fprintf(o->f, "\tchain from_devices {\n"
		"\t\tfib daddr type local return comment \"to the gateway: chain input\"\n");
	for (size_t i = 0; i < o->p->n_rules; i++)
		rule_lines(o, i);
	fprintf(o->f, "\t\t");
	log_tail(o, XB_DROPS_PREFIX_DEFAULT);
	fprintf(o->f, "\t\tcounter drop comment \"default deny\"\n\t}\n");
}

/* Per device and tunnel byte counters: see the header. */
static void acct_sets(const struct out *o)
{
	size_t size = (o->p->n_devices ? o->p->n_devices : 1) * o->p->n_tunnels;

	for (int v6 = 0; o->p->n_tunnels && v6 < 2; v6++)
		for (int rx = 0; rx < 2 && has_pool(o->p, v6); rx++)
			fprintf(o->f, "\tset acct_%s%d {\n\t\ttype %s . ifname\n\t\tsize %zu\n"
				"\t\tflags dynamic\n\t\tcounter\n\t}\n", rx ? "rx" : "tx", v6 ? 6 : 4,
				v6 ? "ipv6_addr" : "ipv4_addr", size);
}

static void acct_rules(const struct out *o)
{
	const char *dev = o->p->gateway.interface;

	for (int v6 = 0; o->p->n_tunnels && v6 < 2; v6++) {
		const char *ip = v6 ? "ip6" : "ip";

		if (!has_pool(o->p, v6))
			continue;
		fprintf(o->f, "\t\tiifname \"%s\" oifname ", dev);
		ifnames(o, false);
		fprintf(o->f, " update @acct_tx%d { %s saddr . oifname }\n\t\tiifname ", v6 ? 6 : 4, ip);
		ifnames(o, false);
		fprintf(o->f, " oifname \"%s\" ct state established,related update @acct_rx%d "
			"{ %s daddr . iifname }\n", dev, v6 ? 6 : 4, ip);
	}
}

/* The marks of paths that must leave by a tunnel, or be dropped. */
static void leak_guard(const struct out *o)
{
	const char *dev = o->p->gateway.interface;
	size_t n = 0;

	for (size_t i = 0; i < o->pl->n_paths; i++)
		n += !o->pl->paths[i].internet_fallback;
	if (!n)
		return;
	fprintf(o->f, "\t\tiifname \"%s\" ", dev);
	if (o->p->n_tunnels) {
		fprintf(o->f, "oifname != ");
		ifnames(o, false);
		fprintf(o->f, " ");
	}
	fprintf(o->f, "meta mark & 0x%08x %s", XB_MARK_MASK, n > 1 ? "{ " : "");
	for (size_t i = 0, k = 0; i < o->pl->n_paths; i++)
		if (!o->pl->paths[i].internet_fallback)
			fprintf(o->f, "%s0x%08x", k++ ? ", " : "", o->pl->paths[i].mark);
	fprintf(o->f, "%s counter drop comment \"tunnel-only path without a tunnel route\"\n",
		n > 1 ? " }" : "");
}

/* TCP's MSS, both ways, at most what fits the tunnel a SYN crosses: the
 * SYN out of it (the origin then sends segments that fit) and the SYN-ACK
 * in from it (the device does). Path MTU discovery across the border often
 * fails — partners and the mainland's middle boxes drop ICMP "fragmentation
 * needed" — and a partner's GRE (1 476 and less) sits below devices at
 * 1 420. An MSS already smaller is left alone. */
static void mss_clamp(const struct out *o)
{
	for (size_t i = 0; i < o->p->n_tunnels; i++) {
		const struct xb_tunnel *t = &o->p->tunnels[i];

		for (int v6 = 0; v6 < 2; v6++) {
			unsigned mss = t->mtu - (v6 ? 60 : 40);

			if (!has_pool(o->p, v6))
				continue;
			for (int in = 0; in < 2; in++)
				fprintf(o->f, "\t\t%s \"%s\" meta nfproto %s tcp flags syn / syn,rst "
					"tcp option maxseg size > %u tcp option maxseg size set %u "
					"comment \"tunnel %s: MSS fits its MTU %u\"\n",
					in ? "iifname" : "oifname", t->ifname, v6 ? "ipv6" : "ipv4", mss, mss,
					t->name, t->mtu);
		}
	}
}

/* A tunnel with snat masquerades each family to its inner address of that
 * family (postrouting); without one, nothing would rewrite the source and
 * the device's own pool address would leave through the tunnel — to a
 * partner that was never meant to see it and cannot route it back. Device
 * traffic of that family out of that tunnel is refused instead, wherever
 * the route came from (a via list, "best", a failover), with
 * administratively prohibited, so that a dual-stack device falls back to
 * the other family at once rather than after a timeout. */
static void snat_gaps(const struct out *o)
{
	for (size_t i = 0; i < o->p->n_tunnels; i++) {
		const struct xb_tunnel *t = &o->p->tunnels[i];

		for (int v6 = 0; v6 < 2; v6++) {
			if (!t->snat || !has_pool(o->p, v6) || (v6 ? t->has_address6 : t->has_address4))
				continue;
			fprintf(o->f, "\t\tiifname \"%s\" oifname \"%s\" meta nfproto %s counter "
				"reject with icmpx admin-prohibited comment \"tunnel %s: no %s to "
				"masquerade to\"\n", o->p->gateway.interface, t->ifname,
				v6 ? "ipv6" : "ipv4", t->name, v6 ? "address6" : "address4");
		}
	}
}

static void chain_forward(const struct out *o)
{
	const char *dev = o->p->gateway.interface;

	fprintf(o->f, "\tchain forward {\n"
		"\t\ttype filter hook forward priority filter; policy accept;\n"
		"\t\tiifname \"%s\" ct state invalid counter drop comment \"untracked: would escape snat\"\n",
		dev);
	snat_gaps(o);
	mss_clamp(o);
	leak_guard(o);
	acct_rules(o);
	fprintf(o->f, "\t\tiifname \"%s\" accept comment \"judged in prerouting\"\n"
		"\t\toifname \"%s\" ct state established,related accept\n"
		"\t\toifname \"%s\" counter drop comment \"no connections into devices\"\n",
		dev, dev, dev);
	if (!o->p->n_tunnels)
		goto end;
	fprintf(o->f, "\t\tiifname ");
	ifnames(o, false);
	fprintf(o->f, " ct state established,related accept\n\t\tiifname ");
	ifnames(o, false);
	fprintf(o->f, " counter drop comment \"no connections from partners\"\n");
end:
	fprintf(o->f, "\t}\n");
}

static void chain_input(const struct out *o)
{
	const struct xb_gateway *g = &o->p->gateway;
	const char *dev = g->interface;

	fprintf(o->f, "\tchain input {\n"
		"\t\ttype filter hook input priority filter; policy accept;\n"
		"\t\tiifname \"%s\" ct state established,related accept\n"
		"\t\tiifname \"%s\" meta l4proto { tcp, udp } th dport %u accept comment \"DNS\"\n"
		"\t\tiifname \"%s\" tcp dport %u accept comment \"posture reports\"\n"
		"\t\tiifname \"%s\" icmp type echo-request accept\n"
		"\t\tiifname \"%s\" icmpv6 type { echo-request, nd-neighbor-solicit, "
		"nd-neighbor-advert, nd-router-solicit } accept\n"
		"\t\tiifname \"%s\" counter drop\n",
		dev, dev, g->dns_port, dev, g->posture_port, dev, dev, dev);
	if (o->p->n_tunnels) {
		fprintf(o->f, "\t\tiifname ");
		ifnames(o, false);
		fprintf(o->f, " ct state established,related accept\n\t\tiifname ");
		ifnames(o, false);
		fprintf(o->f, " meta l4proto { icmp, ipv6-icmp } accept\n\t\tiifname ");
		ifnames(o, false);
		fprintf(o->f, " counter drop\n");
	}
	fprintf(o->f, "\t}\n");
}

static void masquerade(const struct out *o, const struct xb_tunnel *t, bool v6)
{
	const struct xb_gateway *g = &o->p->gateway;

	fprintf(o->f, "\t\toifname ");
	if (t) {
		fprintf(o->f, "\"%s\"", t->ifname);
	} else {
		fprintf(o->f, "!= ");
		ifnames(o, true);
	}
	fprintf(o->f, " %s saddr ", v6 ? "ip6" : "ip");
	put_prefix(o->f, v6 ? &g->pool6 : &g->pool4);
	if (t)
		fprintf(o->f, " masquerade comment \"tunnel %s: snat\"\n", t->name);
	else
		fprintf(o->f, " masquerade comment \"via internet\"\n");
}

/* Masquerade rather than snat to a fixed address: when a tunnel goes down
 * the kernel forgets its NAT mappings, so flows move to the next tunnel. */
static void chain_postrouting(const struct out *o)
{
	const struct xb_policy *p = o->p;

	fprintf(o->f, "\tchain postrouting {\n"
		"\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	for (size_t i = 0; i < p->n_tunnels; i++) {
		const struct xb_tunnel *t = &p->tunnels[i];

		if (t->snat && t->has_address4 && p->gateway.has_pool4)
			masquerade(o, t, false);
		if (t->snat && t->has_address6 && p->gateway.has_pool6)
			masquerade(o, t, true);
	}
	for (int v6 = 0; v6 <= 1; v6++)
		if (has_pool(p, v6))
			masquerade(o, NULL, v6);
	fprintf(o->f, "\t}\n");
}

char *xb_compile_nft(const struct xb_policy *p, const struct xb_plan *plan,
		     const struct xb_compile_opts *opts)
{
	struct out o = { .p = p, .pl = plan, .o = opts };
	char *buf = NULL, file[COMMENT_MAX - 16];
	size_t len = 0;
	bool bad;

	if (!(o.f = open_memstream(&buf, &len)))
		return NULL;
	clean(file, sizeof(file), p->path);
	fprintf(o.f, "add table inet " XB_NFT_TABLE "\n"
		"delete table inet " XB_NFT_TABLE "\n"
		"table inet " XB_NFT_TABLE " {\n"
		"\tcomment \"xborder policy %s\"\n", file);
	for (size_t i = 0; i < p->n_rules; i++)
		rule_sets(&o, i);
	acct_sets(&o);
	chain_notrack(&o);
	chain_prerouting(&o);
	chain_from_devices(&o);
	chain_forward(&o);
	chain_input(&o);
	chain_postrouting(&o);
	fprintf(o.f, "}\n");
	bad = ferror(o.f);
	if (fclose(o.f) || bad) {
		free(buf);
		return NULL;
	}
	return buf;
}
