/* The normalised policy (xborderd --print): libconfig syntax that loads as
 * the same policy. Every default is written out, included devices are
 * inline (each file's run preceded by a comment naming it), objects keep
 * their file order, addresses and prefixes are canonical, domains lower
 * case; empty lists are left out. Secret keys are never printed: a private
 * key appears as its file's path, with the public key derived from it as a
 * comment, which is what an operator hands to the partner.
 */
#include "policy/internal.h"

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

static void kv_prefix(FILE *out, const char *pre, const char *key, const struct wg_prefix *p,
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

static void prefixes(FILE *out, const char *pre, const char *key, const struct wg_prefix *v,
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
	kv_str(out, in, "control_socket", g->control_socket, "\n");
	kv_str(out, in, "state_dir", g->state_dir, "\n");
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
	fputs("  }", out);
}

static void print_profile(const struct xb_profile *pr, FILE *out)
{
	kv_str(out, "  { ", "name", pr->name, "");
	if (pr->checks)
		fprintf(out, " checks = %s;", pr->checks);
	fputs(" }", out);
}

static void rule_what(const struct xb_rule *r, FILE *out)
{
	static const char *const proto[] = { "tcp", "udp", "icmp", "icmpv6" };
	const char *sep = "    protocols = [ ";

	prefixes(out, "    ", "to", r->to, r->n_to);
	strs(out, "    ", "domains", r->domains, r->n_domains);
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
	fputs(r->n_via ? " ];\n  }" : "  }", out);
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
	SECTION(out, "rules", p->rules, p->n_rules, print_rule);
}

/* libconfig text of any setting: groups, lists, arrays and scalars. */
static void setting(FILE *out, const config_setting_t *s)
{
	int n = config_setting_length(s);
	char num[64];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		fputs("{ ", out);
		for (int i = 0; i < n; i++) {
			const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);

			fprintf(out, "%s = ", config_setting_name(m));
			setting(out, m);
			fputs("; ", out);
		}
		fputc('}', out);
		break;
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		fputs(config_setting_is_array(s) ? "[ " : "( ", out);
		for (int i = 0; i < n; i++) {
			setting(out, config_setting_get_elem(s, (unsigned)i));
			fputs(i + 1 < n ? ", " : " ", out);
		}
		fputc(config_setting_is_array(s) ? ']' : ')', out);
		break;
	case CONFIG_TYPE_INT:
		fprintf(out, "%d", config_setting_get_int(s));
		break;
	case CONFIG_TYPE_INT64:
		fprintf(out, "%lldL", config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		snprintf(num, sizeof(num), "%.17g", config_setting_get_float(s));
		fprintf(out, "%s%s", num, strpbrk(num, ".eEni") ? "" : ".0");
		break;
	case CONFIG_TYPE_BOOL:
		fputs(config_setting_get_bool(s) ? "true" : "false", out);
		break;
	case CONFIG_TYPE_STRING:
		put_str(out, config_setting_get_string(s));
		break;
	}
}

char *xbp_setting_text(const config_setting_t *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	if (!out)
		return NULL;
	setting(out, s);
	if (fclose(out)) {
		free(buf);
		return NULL;
	}
	return buf;
}
