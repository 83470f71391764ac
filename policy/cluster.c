/* The cluster section: gateways sharing their state through etcd
 * (docs/ha.md, "Shared state"). Only parsed and checked here; the daemon's
 * side is gateway/cluster/cluster.c, the takeover's keys (vip,
 * takeover_rate) are read by the takeover.
 *
 *   cluster = { name = "eu"; node = "gw-a";
 *     endpoints = [ "http://192.0.2.1:2379", "http://192.0.2.2:2379" ];
 *     prefix = "/xborder/eu/"; request_timeout_ms = 1000;
 *     vip = "203.0.113.50"; takeover_rate = 500; };
 *
 * With TLS (etcd's --client-cert-auth): https:// endpoints, ca_file (the
 * CA that signed the members' certificates; required: the system's store
 * would trust any public CA's certificate for a member's address), and
 * cert_file with key_file (the client's certificate and key, both or
 * neither). Files are checked here, read again by libcurl at each new
 * connection; the key file is a secret (0600) and its content never shown.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const cluster_keys[] = {
	"name", "node", "endpoints", "prefix", "request_timeout_ms", "vip", "takeover_rate",
	"ca_file", "cert_file", "key_file", NULL
};

#define PEM_MAX	(256u << 10)	/* bytes read of a certificate or key file */

/* "http://HOST:PORT" or "https://HOST:PORT" with an optional trailing '/':
 * HOST a DNS name, an IPv4 literal or [IPv6]. etcd's client URLs; no path.
 * *tls: the scheme is https. */
static bool url_ok(const char *v, bool *tls)
{
	const char *h, *colon, *end;
	char host[256];
	size_t hl;
	long port;

	if (!strncmp(v, "http://", 7))
		h = v + 7, *tls = false;
	else if (!strncmp(v, "https://", 8))
		h = v + 8, *tls = true;
	else
		return false;
	if (*h == '[') {
		const char *rb = strchr(h, ']');
		uint8_t a6[16];

		if (!rb || rb[1] != ':' || (size_t)(rb - h - 1) >= sizeof(host))
			return false;
		memcpy(host, h + 1, (size_t)(rb - h - 1));
		host[rb - h - 1] = '\0';
		if (inet_pton(AF_INET6, host, a6) != 1)
			return false;
		colon = rb + 1;
	} else {
		if (!(colon = strchr(h, ':')) || (hl = (size_t)(colon - h)) == 0 || hl >= sizeof(host))
			return false;
		memcpy(host, h, hl);
		host[hl] = '\0';
		if (!xbp_dns_name_ok(host)) {
			uint8_t a4[4];

			if (inet_pton(AF_INET, host, a4) != 1)
				return false;
		}
	}
	port = strtol(colon + 1, (char **)&end, 10);
	return end != colon + 1 && port >= 1 && port <= 65535 && (!*end || !strcmp(end, "/"));
}

static void endpoints(struct ld *l, const config_setting_t *s, struct xb_cluster_cfg *c)
{
	config_setting_t *list = xbp_get_list(l, s, "endpoints", "cluster");
	int n = list ? config_setting_length(list) : 0;
	char qb[QUOTE_MAX + 4];
	int n_tls = 0, n_ok = 0;
	bool tls;

	if (!config_setting_get_member(s, "endpoints")) {
		xbp_err(l, s, "cluster: no endpoints (etcd's client URLs)");
		return;
	}
	if (!list)
		return;
	if (n == 0 || n > XB_CLUSTER_ENDPOINTS_MAX) {
		xbp_err(l, list, "cluster: endpoints needs 1 to %d URLs", XB_CLUSTER_ENDPOINTS_MAX);
		return;
	}
	if (!(c->endpoints = calloc((size_t)n, sizeof(char *)))) {
		l->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "endpoints", "cluster");

		if (!v)
			continue;
		if (!url_ok(v, &tls)) {
			xbp_err(l, e, "cluster: endpoint `%s' is not http://HOST:PORT or https://HOST:PORT",
				xbp_quote(qb, v));
			continue;
		}
		c->endpoints[c->n_endpoints++] = xbp_strdup(l, v);
		n_ok++;
		n_tls += tls;
	}
	/* One client, one way to talk to the members: a cluster either
	 * serves its clients TLS or it does not. */
	if (n_tls && n_tls != n_ok)
		xbp_err(l, list, "cluster: endpoints mix http:// and https:// URLs; use one scheme "
			"for every member");
	c->tls = n_tls > 0;
}

/* Whether the file holds a PEM block whose BEGIN line ends in tail
 * ("CERTIFICATE-----", "PRIVATE KEY-----"); -errno when it cannot be read.
 * The buffer is wiped: it may hold a private key. */
static int pem_has(const char *path, const char *tail)
{
	char *buf = malloc(PEM_MAX + 1), *p;
	size_t n = 0;
	ssize_t r = 0;
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	while (n < PEM_MAX && (r = read(fd, buf + n, PEM_MAX - n)) > 0)
		n += (size_t)r;
	if (r < 0 && n < PEM_MAX)
		rc = -errno;
	close(fd);
	buf[n] = '\0';
	for (p = buf; !rc && (p = strstr(p, "-----BEGIN ")); p += 11) {
		const char *eol = strchr(p, '\n'), *t = strstr(p, tail);

		if (t && (!eol || t < eol)) {
			rc = 1;
			break;
		}
	}
	sodium_memzero(buf, n);
	free(buf);
	return rc;
}

/* A TLS file option: *file as written, *resolved against the policy's
 * directory, checked to hold a PEM block of kind (see pem_has). The key is
 * a secret file: regular, 0600, checked as the gateway's key is. */
static void tls_file(struct ld *l, const config_setting_t *s, const char *key, const char *kind,
		     const char *tail, char **file, char **resolved)
{
	const char *v = xbp_get_str(l, s, key, "cluster", NULL);
	config_setting_t *m = config_setting_get_member(s, key);
	char qb[QUOTE_MAX + 4];
	int rc;

	if (!v)
		return;
	*file = xbp_strdup(l, v);
	if (!(*resolved = xbp_join(l->p->dir, v))) {
		l->oom = true;
		return;
	}
	if (!strcmp(key, "key_file") && !xbp_secret_file_ok(l, m, "cluster", v, *resolved))
		return;
	if ((rc = pem_has(*resolved, tail)) < 0)
		xbp_err(l, m, "cluster: %s `%s': %s", key, xbp_quote(qb, v), strerror(-rc));
	else if (!rc)
		xbp_err(l, m, "cluster: %s `%s' holds no PEM %s", key, xbp_quote(qb, v), kind);
}

static void tls_opts(struct ld *l, const config_setting_t *s, struct xb_cluster_cfg *c)
{
	static const char *const keys[] = { "ca_file", "cert_file", "key_file" };

	tls_file(l, s, "ca_file", "certificate", "CERTIFICATE-----", &c->ca_file, &c->ca_resolved);
	tls_file(l, s, "cert_file", "certificate", "CERTIFICATE-----", &c->cert_file,
		 &c->cert_resolved);
	tls_file(l, s, "key_file", "private key", "PRIVATE KEY-----", &c->key_file, &c->key_resolved);
	if (!c->n_endpoints)
		return;
	if (!c->tls) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (config_setting_get_member(s, keys[i]))
				xbp_err(l, config_setting_get_member(s, keys[i]),
					"cluster: %s is for https:// endpoints; these are http://",
					keys[i]);
		return;
	}
	if (!config_setting_get_member(s, "ca_file"))
		xbp_err(l, s, "cluster: https:// endpoints need ca_file (the CA that signed the "
			"members' certificates)");
	if (config_setting_get_member(s, "cert_file") && !config_setting_get_member(s, "key_file"))
		xbp_err(l, config_setting_get_member(s, "cert_file"),
			"cluster: cert_file without key_file (the client certificate's private key)");
	if (config_setting_get_member(s, "key_file") && !config_setting_get_member(s, "cert_file"))
		xbp_err(l, config_setting_get_member(s, "key_file"),
			"cluster: key_file without cert_file (the client certificate)");
}

/* A key prefix: starts and ends with '/', printable ASCII without spaces. */
static void prefix(struct ld *l, const config_setting_t *s, struct xb_cluster_cfg *c)
{
	const char *v = xbp_get_str(l, s, "prefix", "cluster", NULL);
	char qb[QUOTE_MAX + 4], dflt[XB_CLUSTER_PREFIX_MAX + 16];
	bool ok;

	if (!v) {
		snprintf(dflt, sizeof(dflt), "/xborder/%s/", c->name ? c->name : "");
		c->prefix = xbp_strdup(l, dflt);
		return;
	}
	ok = v[0] == '/' && v[strlen(v) - 1] == '/' && strlen(v) <= XB_CLUSTER_PREFIX_MAX;
	for (const char *p = v; ok && *p; p++)
		ok = *p > ' ' && *p < 0x7f;
	if (!ok)
		xbp_err(l, config_setting_get_member(s, "prefix"),
			"cluster: prefix `%s' is not a key prefix (printable, no spaces, starting "
			"and ending with '/', at most %d bytes)", xbp_quote(qb, v), XB_CLUSTER_PREFIX_MAX);
	c->prefix = xbp_strdup(l, v);
}

static void name_key(struct ld *l, const config_setting_t *s, const char *key, char **out)
{
	const char *v = xbp_get_str(l, s, key, "cluster", NULL);
	char qb[QUOTE_MAX + 4], host[256];

	if (!v && !strcmp(key, "node")) {
		if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			if (xbp_name_ok(host, XB_NAME_MAX, false)) {
				*out = xbp_strdup(l, host);
				return;
			}
		}
		xbp_err(l, s, "cluster: no node, and the host name `%s' is not a valid name: set "
			"node", xbp_quote(qb, host));
		return;
	}
	if (!v) {
		xbp_err(l, s, "cluster: no %s", key);
		return;
	}
	if (!xbp_name_ok(v, XB_NAME_MAX, false))
		xbp_err(l, config_setting_get_member(s, key), "cluster: %s `%s' is not a valid name "
			"(1-63 letters, digits, '.', '_' and '-', starting with a letter or digit)", key,
			xbp_quote(qb, v));
	else
		*out = xbp_strdup(l, v);
}

static void vip(struct ld *l, const config_setting_t *s, struct xb_cluster_cfg *c)
{
	const char *v = xbp_get_str(l, s, "vip", "cluster", NULL);
	char qb[QUOTE_MAX + 4];

	if (!v)
		return;
	c->vip_family = strchr(v, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c->vip_family, v, c->vip) == 1)
		c->has_vip = true;
	else
		xbp_err(l, config_setting_get_member(s, "vip"),
			"cluster: vip `%s' is not an IPv4 or IPv6 address", xbp_quote(qb, v));
}

void xbp_parse_cluster(struct ld *l, const config_setting_t *s)
{
	struct xb_cluster_cfg *c = &l->p->cluster;
	long v;

	c->enabled = true;
	c->src = xbp_src(l, s);
	xbp_check_keys(l, s, "cluster", cluster_keys);
	name_key(l, s, "name", &c->name);
	name_key(l, s, "node", &c->node);
	endpoints(l, s, c);
	tls_opts(l, s, c);
	prefix(l, s, c);
	c->request_timeout_ms = XB_CLUSTER_TIMEOUT_MS;
	if (xbp_get_int(l, s, "request_timeout_ms", "cluster", 50, 60000, &v))
		c->request_timeout_ms = (unsigned)v;
	vip(l, s, c);
	c->takeover_rate = XB_CLUSTER_TAKEOVER_RATE;
	if (xbp_get_int(l, s, "takeover_rate", "cluster", 1, 100000, &v))
		c->takeover_rate = (unsigned)v;
}

static void print_file(FILE *out, const char *key, const char *v)
{
	if (!v)
		return;
	fprintf(out, "  %s = ", key);
	xbp_put_str(out, v);
	fputs(";\n", out);
}

void xbp_print_cluster(const struct xb_cluster_cfg *c, FILE *out)
{
	char a[INET6_ADDRSTRLEN];

	fputs("cluster = {\n  name = ", out);
	xbp_put_str(out, c->name);
	fputs(";\n  node = ", out);
	xbp_put_str(out, c->node);
	fputs(";\n  endpoints = [ ", out);
	for (size_t i = 0; i < c->n_endpoints; i++) {
		fputs(i ? ", " : "", out);
		xbp_put_str(out, c->endpoints[i]);
	}
	fputs(" ];\n  prefix = ", out);
	xbp_put_str(out, c->prefix);
	fprintf(out, ";\n  request_timeout_ms = %u;\n", c->request_timeout_ms);
	if (c->has_vip && inet_ntop(c->vip_family, c->vip, a, sizeof(a)))
		fprintf(out, "  vip = \"%s\";\n", a);
	fprintf(out, "  takeover_rate = %u;\n", c->takeover_rate);
	print_file(out, "ca_file", c->ca_file);
	print_file(out, "cert_file", c->cert_file);
	print_file(out, "key_file", c->key_file);
	fputs("};\n", out);
}

void xbp_cluster_free(struct xb_cluster_cfg *c)
{
	free(c->name);
	free(c->node);
	for (size_t i = 0; i < c->n_endpoints; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	free(c->prefix);
	free(c->ca_file);
	free(c->ca_resolved);
	free(c->cert_file);
	free(c->cert_resolved);
	free(c->key_file);
	free(c->key_resolved);
	memset(c, 0, sizeof(*c));
}
