/* The normalised policy (xborderd --print): libconfig syntax that loads as
 * the same policy. Every default is written out, included devices are
 * inline (each file's run preceded by a comment naming it), objects keep
 * their file order, addresses and prefixes are canonical, domains lower
 * case; empty lists are left out. Secret keys are never printed: a private
 * key appears as its file's path, with the public key derived from it as a
 * comment, which is what an operator hands to the partner.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void xbp_put_str(FILE *out, const char *s)
{
	put_str(out, s);
}

static void put_key(FILE *out, const uint8_t key[static WG_KEY_LEN], bool quoted)
{
	char b64[WG_KEY_B64_LEN + 1];

	wg_key_to_base64(b64, key);
	fprintf(out, quoted ? "\"%s\"" : "%s", b64);
}

/* Each printer writes pre, "key = value;", then end ("\n" or ""). */
static void kv_str(FILE *out, const char *pre, const char *key, const char *v, const char *end)
{
	fprintf(out, "%s%s = ", pre, key);
	put_str(out, v);
	fprintf(out, ";%s", end);
}

static void kv_addr(FILE *out, const char *pre, const char *key, int family, const void *a,
		    const char *end)
{
	char ab[64];

	xbp_addr_format(ab, sizeof(ab), family, a);
	fprintf(out, "%s%s = \"%s\";%s", pre, key, ab, end);
}

static void kv_prefix(FILE *out, const char *pre, const char *key, const struct xb_prefix *p,
		      const char *end)
{
	char pb[64];

	xbp_prefix_format(pb, sizeof(pb), p);
	fprintf(out, "%s%s = \"%s\";%s", pre, key, pb, end);
}

/* A private key file, with the public key as a comment. */
static void kv_key_file(FILE *out, const char *pre, const char *key, const struct xb_key_file *kf)
{
	kv_str(out, pre, key, kf->path, "");
	if (kf->loaded) {
		fputs("\t# public key: ", out);
		put_key(out, kf->public_key, false);
	}
	fputc('\n', out);
}

/* Lists: "key = [ a, b ];", nothing at all when empty. */
static void list_item(FILE *out, const char *pre, const char *key, size_t i)
{
	if (i)
		fputs(", ", out);
	else
		fprintf(out, "%s%s = [ ", pre, key);
}

static void refs(FILE *out, const char *pre, const char *key, const struct xb_ref *v, size_t n,
		 const char *end)
{
	for (size_t i = 0; i < n; i++) {
		list_item(out, pre, key, i);
		put_str(out, v[i].name);
	}
	if (n)
		fprintf(out, " ];%s", end);
}

static void strs(FILE *out, const char *pre, const char *key, char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		list_item(out, pre, key, i);
		put_str(out, v[i]);
	}
	if (n)
		fputs(" ];\n", out);
}

static void prefixes(FILE *out, const char *pre, const char *key, const struct xb_prefix *v,
		     size_t n)
{
	char pb[64];

	for (size_t i = 0; i < n; i++) {
		list_item(out, pre, key, i);
		xbp_prefix_format(pb, sizeof(pb), &v[i]);
		fprintf(out, "\"%s\"", pb);
	}
	if (n)
		fputs(" ];\n", out);
}

static void print_gateway(const struct xb_gateway *g, FILE *out)
{
	const char *in = "  ";

	fputs("gateway = {\n", out);
	kv_str(out, in, "interface", g->interface, "\n");
	fprintf(out, "  listen_port = %u;\n", g->listen_port);
	kv_key_file(out, in, "private_key_file", &g->key);
	if (g->has_pool4) {
		kv_prefix(out, in, "pool4", &g->pool4, "\n");
		kv_addr(out, in, "address4", AF_INET, &g->address4, "\n");
	}
	if (g->has_pool6) {
		kv_prefix(out, in, "pool6", &g->pool6, "\n");
		kv_addr(out, in, "address6", AF_INET6, &g->address6, "\n");
	}
	fprintf(out, "  dns_port = %u;\n  posture_port = %u;\n", g->dns_port, g->posture_port);
	fprintf(out, "  dns_tap = %s;\n", g->dns_tap ? "true" : "false");
	if (g->has_posture_admin) {
		char a[INET6_ADDRSTRLEN];
		bool v6 = g->posture_admin_family == AF_INET6;

		inet_ntop(g->posture_admin_family, &g->posture_admin_addr, a, sizeof(a));
		fprintf(out, "  posture_admin = \"%s%s%s:%u\";\n", v6 ? "[" : "", a, v6 ? "]" : "",
			g->posture_admin_port);
	}
	xbp_print_posture_limits(g, out);
	kv_str(out, in, "control_socket", g->control_socket, "\n");
	kv_str(out, in, "state_dir", g->state_dir, "\n");
	fprintf(out, "  address_quarantine = %u;\n", g->address_quarantine);
	/* The enrolment file's devices are printed inline below: naming the
	 * file as well would read them twice. */
	if (g->enrol_file)
		fprintf(out, "  # enrol_file = \"%s\";  (its devices are inline below)\n", g->enrol_file);
	if (g->enrol_endpoint)
		kv_str(out, in, "enrol_endpoint", g->enrol_endpoint, "\n");
	xbp_print_health(g, out);
	fputs("};\n", out);
}

/* One line per device: a fleet prints as a list one can grep. */
static void print_devices(const struct xb_policy *p, FILE *out)
{
	const char *file = p->path;

	fputs("devices = (\n", out);
	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *d = &p->devices[i];

		if (strcmp(d->src.file, file))
			fprintf(out, "  # %s\n", file = d->src.file);
		kv_str(out, "  { ", "name", d->name, " public_key = ");
		put_key(out, d->public_key, true);
		fputc(';', out);
		refs(out, " ", "groups", d->groups, d->n_groups, "");
		if (d->fixed4)
			kv_addr(out, " ", "address4", AF_INET, &d->address4, "");
		if (d->fixed6)
			kv_addr(out, " ", "address6", AF_INET6, &d->address6, "");
		if (d->expires) {
			char tb[21];

			xb_time_format(tb, d->expires);
			fprintf(out, " expires = \"%s\";", tb);
		}
		fputs(i + 1 < p->n_devices ? " },\n" : " }\n", out);
	}
	fputs(");\n", out);
}

static void tunnel_keys(const struct xb_tunnel *t, FILE *out)
{
	const char *in = "    ";

	if (t->config) {
		kv_str(out, in, "config", t->config, "\t# keys from the file\n");
		fputs("    # public key: ", out);
		put_key(out, t->key.public_key, false);
		fputs("\n    # the partner's public key: ", out);
		put_key(out, t->peer_public_key, false);
		fputc('\n', out);
		return;
	}
	kv_key_file(out, in, "private_key_file", &t->key);
	fputs("    public_key = ", out);
	put_key(out, t->peer_public_key, true);
	fputs(";\n", out);
	if (t->has_psk)
		kv_str(out, in, "preshared_key_file", t->psk.path, "\n");
}

static void print_gre(const struct xb_tunnel *t, FILE *out)
{
	const struct xb_gre *g = &t->gre;
	const char *in = "    ";

	kv_addr(out, in, "local", g->family, &g->local, "\n");
	kv_str(out, in, "remote", g->remote, "\n");
	/* libconfig holds plain integers in 32 signed bits: larger keys as strings. */
	if (g->has_key)
		fprintf(out, g->key > 2147483647u ? "    key = \"%lu\";\n" : "    key = %lu;\n",
			(unsigned long)g->key);
	fprintf(out, "    sequence = %s;\n    checksum = %s;\n", g->sequence ? "true" : "false",
		g->checksum ? "true" : "false");
	fprintf(out, "    keepalive = %u;\n    keepalive_retries = %u;\n", g->keepalive,
		g->keepalive_retries);
}

static void print_wireguard(const struct xb_tunnel *t, FILE *out)
{
	char ep[300];

	tunnel_keys(t, out);
	snprintf(ep, sizeof(ep), strchr(t->endpoint_host, ':') ? "[%s]:%u" : "%s:%u",
		 t->endpoint_host, t->endpoint_port);
	kv_str(out, "    ", "endpoint", ep, "\n");
	fprintf(out, "    listen_port = %u;\n", t->listen_port);
}

static void print_tunnel(const struct xb_tunnel *t, FILE *out)
{
	const char *in = "    ";
	bool gre = t->type == XB_TUNNEL_GRE;

	fputs("  {\n", out);
	kv_str(out, in, "name", t->name, "\n");
	fprintf(out, "    type = \"%s\";\n    backend = \"%s\";\n", gre ? "gre" : "wireguard",
		xb_backend_name(t->backend));
	if (gre)
		print_gre(t, out);
	else
		print_wireguard(t, out);
	if (t->has_address4)
		kv_prefix(out, in, "address4", &t->address4, "\n");
	if (t->has_peer4)
		kv_addr(out, in, "peer4", AF_INET, &t->peer4, "\n");
	if (t->has_address6)
		kv_prefix(out, in, "address6", &t->address6, "\n");
	if (t->has_peer6)
		kv_addr(out, in, "peer6", AF_INET6, &t->peer6, "\n");
	if (!gre) {
		prefixes(out, in, "allowed_ips", t->allowed_ips, t->n_allowed_ips);
		fprintf(out, "    keepalive = %u;\n", t->keepalive);
	}
	fprintf(out, "    mtu = %u;\n    snat = %s;\n", t->mtu, t->snat ? "true" : "false");
	xbp_print_probe(t, out);
	fputs("  }", out);
}

static void platforms(FILE *out, unsigned bits)
{
	const char *sep = " platforms = [ ";

	for (int i = 0; i < XB_OS_N; i++) {
		if (bits & (1U << i)) {
			fprintf(out, "%s\"%s\"", sep, xb_platform_name(i));
			sep = ", ";
		}
	}
	fputs(" ];", out);
}

/* Integral values as integers (L beyond 32 bits), others as floats. */
static void put_num(FILE *out, double v)
{
	char num[64];

	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		fprintf(out, fabs(v) > 2147483647.0 ? "%.0fL" : "%.0f", v);
		return;
	}
	snprintf(num, sizeof(num), "%.17g", v);
	fprintf(out, "%s%s", num, strpbrk(num, ".eEni") ? "" : ".0");
}

static void check_value(const struct xb_check *c, FILE *out)
{
	switch (c->kind) {
	case XB_CHECK_OS_VERSION:
	case XB_CHECK_AGENT_VERSION:
		fprintf(out, "%s = \"%s %s\";", xb_check_name(c->kind), xb_cmp_name(c->op), c->arg);
		break;
	case XB_CHECK_DISK_ENCRYPTION:
	case XB_CHECK_FIREWALL:
	case XB_CHECK_SCREEN_LOCK:
		fprintf(out, "%s = true;", xb_check_name(c->kind));
		break;
	case XB_CHECK_SERIAL:
		if (c->serial_file)
			kv_str(out, "", "serial_file", c->serial_file, "");
		for (size_t i = 0; !c->serial_file && i < c->n_serials; i++) {
			fputs(i ? ", " : "serial_in = [ ", out);
			put_str(out, c->serials[i]);
		}
		if (!c->serial_file)
			fputs(" ];", out);
		break;
	case XB_CHECK_PROCESS:
	case XB_CHECK_FILE:
	case XB_CHECK_ATTRIBUTE:
		kv_str(out, "", xb_check_name(c->kind), c->arg, "");
		break;
	}
	if (c->kind == XB_CHECK_FILE && c->has_sha256) {
		fputs(" sha256 = \"", out);
		for (int i = 0; i < 32; i++)
			fprintf(out, "%02x", c->sha256[i]);
		fputs("\";", out);
	}
	if (c->kind != XB_CHECK_ATTRIBUTE)
		return;
	fprintf(out, " op = \"%s\"; value = ", xb_cmp_name(c->op));
	if (c->value.type == XB_VAL_STR)
		put_str(out, c->value.str);
	else if (c->value.type == XB_VAL_BOOL)
		fputs(c->value.b ? "true" : "false", out);
	else
		put_num(out, c->value.num);
	fprintf(out, "; source = \"%s\";", c->mdm_only ? "mdm" : "any");
}

static void print_check(const struct xb_check *c, FILE *out)
{
	fputs("      { ", out);
	check_value(c, out);
	if (c->platforms_set)
		platforms(out, c->platforms);
	fprintf(out, " mode = \"%s\"; }", c->report_only ? "report" : "enforce");
}

static void print_profile(const struct xb_profile *pr, FILE *out)
{
	kv_str(out, "  {\n", "    name", pr->name, "\n   ");
	platforms(out, pr->platforms);
	fprintf(out, "\n    max_age = %u;\n    other_platforms = \"%s\";\n", pr->max_age,
		pr->other_pass ? "pass" : "fail");
	for (size_t i = 0; i < pr->n_checks; i++) {
		fputs(i ? ",\n" : "    checks = (\n", out);
		print_check(&pr->checks[i], out);
	}
	fputs(pr->n_checks ? "\n    );\n  }" : "  }", out);
}

static void print_mdm_key(const struct xb_mdm_key *k, FILE *out)
{
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];

	sodium_bin2base64(b64, sizeof(b64), k->public_key, 32, sodium_base64_VARIANT_ORIGINAL);
	kv_str(out, "  { ", "name", k->name, "");
	kv_str(out, " ", "public_key", b64, " }");
}

static void rule_what(const struct xb_rule *r, FILE *out)
{
	static const char *const proto[] = { "tcp", "udp", "icmp", "icmpv6" };
	const char *sep = "    protocols = [ ";

	prefixes(out, "    ", "to", r->to, r->n_to);
	refs(out, "    ", "to_lists", r->to_lists, r->n_to_lists, "\n");
	strs(out, "    ", "domains", r->domains, r->n_domains);
	if (r->learn_private)
		fputs("    learn_private = true;\n", out);
	for (unsigned b = 0; b < 4; b++) {
		if (r->protocols & (1U << b)) {
			fprintf(out, "%s\"%s\"", sep, proto[b]);
			sep = ", ";
		}
	}
	if (r->protocols)
		fputs(" ];\n", out);
	for (size_t i = 0; i < r->n_ports; i++) {
		fputs(i ? ", \"" : "    ports = [ \"", out);
		fprintf(out, r->ports[i].lo == r->ports[i].hi ? "%u\"" : "%u-%u\"", r->ports[i].lo,
			r->ports[i].hi);
	}
	if (r->n_ports)
		fputs(" ];\n", out);
}

static void print_rule(const struct xb_rule *r, FILE *out)
{
	static const char *const kind[] = { "", "best", "internet" };
	const char *in = "    ";

	fputs("  {\n", out);
	kv_str(out, in, "name", r->name, "\n");
	refs(out, in, "groups", r->groups, r->n_groups, "\n");
	refs(out, in, "devices", r->devices, r->n_devices, "\n");
	refs(out, in, "posture", r->posture, r->n_posture, "\n");
	rule_what(r, out);
	fprintf(out, "    action = \"%s\";\n", r->action == XB_ACTION_ALLOW ? "allow" : "deny");
	for (size_t i = 0; i < r->n_via; i++) {
		fputs(i ? ", " : "    via = [ ", out);
		put_str(out, r->via[i].kind == XB_VIA_TUNNEL ? r->via[i].tunnel.name : kind[r->via[i].kind]);
	}
	fputs(r->n_via ? " ];\n" : "", out);
	if (r->slo >= 0)
		fprintf(out, "    slo = %g;\n", r->slo);
	fputs("  }", out);
}

static void servers(FILE *out, const char *pre, const char *key, const union xb_sockaddr *v,
		    size_t n)
{
	char sb[80];

	for (size_t i = 0; i < n; i++) {
		list_item(out, pre, key, i);
		xb_endpoint_format(sb, sizeof(sb), &v[i]);
		fprintf(out, "\"%s\"", sb);
	}
	if (n)
		fputs(" ];\n", out);
}

static void dns_answer(const struct xb_dns_rule *r, FILE *out)
{
	const char *in = "      ";
	size_t k = 0;
	char ab[64];

	for (size_t i = 0; i < r->n_a; i++, k++) {
		list_item(out, in, "answer", k);
		xbp_addr_format(ab, sizeof(ab), AF_INET, &r->a[i]);
		fprintf(out, "\"%s\"", ab);
	}
	for (size_t i = 0; i < r->n_aaaa; i++, k++) {
		list_item(out, in, "answer", k);
		xbp_addr_format(ab, sizeof(ab), AF_INET6, &r->aaaa[i]);
		fprintf(out, "\"%s\"", ab);
	}
	if (k)
		fputs(" ];\n", out);
	if (r->cname)
		kv_str(out, in, "cname", r->cname, "\n");
}

static void dns_block(const struct xb_dns_rule *r, FILE *out)
{
	char ab[64];

	if (r->block != XB_DNS_BLOCK_ADDRESS) {
		fprintf(out, "      block = \"%s\";\n",
			r->block == XB_DNS_BLOCK_NXDOMAIN ? "nxdomain" : "refused");
		return;
	}
	fputs("      block = [ ", out);
	if (r->has_block4) {
		xbp_addr_format(ab, sizeof(ab), AF_INET, &r->block4);
		fprintf(out, "\"%s\"%s", ab, r->has_block6 ? ", " : "");
	}
	if (r->has_block6) {
		xbp_addr_format(ab, sizeof(ab), AF_INET6, &r->block6);
		fprintf(out, "\"%s\"", ab);
	}
	fputs(" ];\n", out);
}

static void print_dns_rule(const struct xb_dns_rule *r, FILE *out)
{
	static const char *const action[] = { "forward", "override", "tunnel", "block" };
	static const char *const fmt[] = { "dnsmasq", "patterns", "domains" };
	const char *in = "      ";

	fputs("    {\n", out);
	if (r->name)
		kv_str(out, in, "name", r->name, "\n");
	strs(out, in, "domains", r->domains, r->n_domains);
	strs(out, in, "lists", r->lists, r->n_lists);
	if (r->n_lists)
		fprintf(out, "%slist_format = \"%s\";\n", in, fmt[r->list_format]);
	fprintf(out, "%saction = \"%s\";\n", in, action[r->action]);
	if (r->action == XB_DNS_OVERRIDE)
		dns_answer(r, out);
	if (r->action == XB_DNS_OVERRIDE || r->action == XB_DNS_BLOCK)
		fprintf(out, "%sttl = %u;\n", in, r->ttl);
	if (r->action == XB_DNS_TUNNEL && r->tunnel.name)
		kv_str(out, in, "tunnel", r->tunnel.name, "\n");
	refs(out, in, "tunnel", r->tunnels, r->n_tunnels, "\n");
	servers(out, in, "servers", r->servers, r->n_servers);
	if (r->action == XB_DNS_TUNNEL || r->action == XB_DNS_BLOCK)
		dns_block(r, out);
	fputs("    }", out);
}

static void print_dns(const struct xb_dns *d, FILE *out)
{
	const char *in = "  ";

	if (!d->enabled)
		return;
	fputs("dns = {\n", out);
	servers(out, in, "upstreams", d->upstreams, d->n_upstreams);
	fprintf(out, "  timeout = %u;\n  tries = %u;\n  grace = %u;\n  cache_size = %u;\n"
		"  ttl_max = %u;\n  negative_ttl_max = %u;\n  learn_max = %u;\n"
		"  learn_answer_max = %u;\n  ttl_min = %u;\n  serve_stale = %u;\n"
		"  doh_canary = %s;\n", d->timeout_ms, d->tries, d->grace, d->cache_size,
		d->ttl_max, d->negative_ttl_max, d->learn_max, d->learn_answer_max, d->ttl_min,
		d->serve_stale, d->doh_canary ? "true" : "false");
	if (d->query_log)
		kv_str(out, in, "query_log", d->query_log, "\n");
	fprintf(out, "  query_log_max = %luL;\n", d->query_log_max);
	if (d->n_rules) {
		fputs("  rules = (\n", out);
		for (size_t i = 0; i < d->n_rules; i++) {
			print_dns_rule(&d->rules[i], out);
			fputs(i + 1 < d->n_rules ? ",\n" : "\n", out);
		}
		fputs("  );\n", out);
	}
	fputs("};\n", out);
}

/* Prints a "KEY = ( ... );" section, calling fn for each element. */
#define SECTION(out, key, v, n, fn)                                         \
	do {                                                               \
		if (!(n))                                                  \
			break;                                             \
		fputs(key " = (\n", out);                                  \
		for (size_t i_ = 0; i_ < (n); i_++) {                      \
			fn(&(v)[i_], out);                                 \
			fputs(i_ + 1 < (n) ? ",\n" : "\n", out);           \
		}                                                          \
		fputs(");\n", out);                                        \
	} while (0)

void xb_policy_print(const struct xb_policy *p, FILE *out)
{
	fputs("# Normalised by xborderd --print from ", out);
	fprintf(out, "%s: defaults written out, included devices inline.\n", p->path);
	print_gateway(&p->gateway, out);
	for (size_t i = 0; i < p->n_groups; i++) {
		fputs(i ? ", " : "groups = [ ", out);
		put_str(out, p->groups[i].name);
	}
	fputs(p->n_groups ? " ];\n" : "", out);
	if (p->n_devices)
		print_devices(p, out);
	SECTION(out, "tunnels", p->tunnels, p->n_tunnels, print_tunnel);
	SECTION(out, "profiles", p->profiles, p->n_profiles, print_profile);
	SECTION(out, "mdm_keys", p->mdm_keys, p->n_mdm_keys, print_mdm_key);
	SECTION(out, "rules", p->rules, p->n_rules, print_rule);
	print_dns(&p->dns, out);
	if (p->cluster.enabled)
		xbp_print_cluster(&p->cluster, out);
}
