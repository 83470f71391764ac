/* The UAPI: set parsing (every key, every error), get formatting, the
 * server, the socket, and an end-to-end run of the real wg(8) against our
 * server backed by an in-memory device. */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/wgconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H01 "0101010101010101010101010101010101010101010101010101010101010101"
#define H11 "1111111111111111111111111111111111111111111111111111111111111111"
#define H22 "2222222222222222222222222222222222222222222222222222222222222222"
#define H33 "3333333333333333333333333333333333333333333333333333333333333333"
#define H00 "0000000000000000000000000000000000000000000000000000000000000000"
#define PK11 "public_key=" H11 "\n"

static int parse(struct wg_conf *c, const char *body, char *err, size_t errlen)
{
	return wg_uapi_parse_set(c, body, strlen(body), err, errlen);
}

/* ---- set ---- */

TEST(set_device_keys)
{
	struct wg_conf c;
	uint8_t k[WG_KEY_LEN];
	char err[128];

	CHECK_INT(parse(&c, "private_key=" H01 "\nlisten_port=51820\nfwmark=4294967295\n"
			    "replace_peers=true\n", err, sizeof(err)), ==, 0);
	wgtest_fill(k, 0x01);
	CHECK(c.has_private_key);
	CHECK_MEM(c.private_key, k, WG_KEY_LEN);
	CHECK(c.has_listen_port && c.listen_port == 51820);
	CHECK(c.has_fwmark && c.fwmark == UINT32_MAX);
	CHECK(c.replace_peers);
	CHECK_INT(c.n_peers, ==, 0);
	wg_conf_free(&c);

	/* all zeros removes the key; port and mark 0 are values too */
	CHECK_INT(parse(&c, "private_key=" H00 "\nlisten_port=0\nfwmark=0", err, sizeof(err)), ==, 0);
	CHECK(c.has_private_key && wg_key_is_zero(c.private_key));
	CHECK(c.has_listen_port && c.listen_port == 0);
	CHECK(c.has_fwmark && c.fwmark == 0);
	CHECK(!c.replace_peers);
	wg_conf_free(&c);

	CHECK_INT(parse(&c, "", err, sizeof(err)), ==, 0);
	CHECK(!c.has_private_key && !c.has_listen_port && !c.has_fwmark && !c.n_peers);
}

TEST(set_peer_keys)
{
	struct wg_conf c;
	struct wg_peer_conf *p;
	uint8_t k[WG_KEY_LEN];
	char err[128];

	CHECK_INT(parse(&c, PK11
			    "update_only=true\n"
			    "preshared_key=" H22 "\n"
			    "endpoint=[2001:db8::1]:51820\n"
			    "persistent_keepalive_interval=65535\n"
			    "replace_allowed_ips=true\n"
			    "allowed_ip=192.0.2.0/24\n"
			    "allowed_ip=2001:db8::/32\n"
			    "protocol_version=1\n"
			    "public_key=" H33 "\n"
			    "remove=true\n"
			    "public_key=" H11 "\n"
			    "preshared_key=" H00 "\n"
			    "endpoint=198.51.100.1:1\n"
			    "persistent_keepalive_interval=0\n", err, sizeof(err)), ==, 0);
	CHECK_STR(err, "");
	CHECK_INT(c.n_peers, ==, 3);
	p = &c.peers[0];
	wgtest_fill(k, 0x11);
	CHECK_MEM(p->public_key, k, WG_KEY_LEN);
	CHECK(p->update_only && !p->remove && p->replace_allowed_ips);
	wgtest_fill(k, 0x22);
	CHECK(p->has_preshared_key);
	CHECK_MEM(p->preshared_key, k, WG_KEY_LEN);
	CHECK_STR(wgtest_endpoint_str(&p->endpoint), "[2001:db8::1]:51820");
	CHECK(p->has_persistent_keepalive && p->persistent_keepalive == 65535);
	CHECK_INT(p->n_allowed_ips, ==, 2);
	CHECK_STR(wgtest_prefix_str(&p->allowed_ips[0]), "192.0.2.0/24");
	CHECK_STR(wgtest_prefix_str(&p->allowed_ips[1]), "2001:db8::/32");
	CHECK_INT(p->protocol_version, ==, 1);

	p = &c.peers[1];
	wgtest_fill(k, 0x33);
	CHECK_MEM(p->public_key, k, WG_KEY_LEN);
	CHECK(p->remove && !p->update_only && !p->has_preshared_key);
	CHECK_INT(p->endpoint.sa.sa_family, ==, AF_UNSPEC);
	CHECK(!p->has_persistent_keepalive && !p->n_allowed_ips && !p->protocol_version);

	p = &c.peers[2];	/* the same key again: a second change, applied in order */
	CHECK(p->has_preshared_key && wg_key_is_zero(p->preshared_key));
	CHECK_STR(wgtest_endpoint_str(&p->endpoint), "198.51.100.1:1");
	CHECK(p->has_persistent_keepalive && p->persistent_keepalive == 0);
	CHECK(!p->replace_allowed_ips);
	wg_conf_free(&c);
}

TEST(set_many_allowed_ips)
{
	size_t cap = 70000 * 32, n = 0;
	char *body = malloc(cap), err[64];
	struct wg_conf c;

	CHECK(body);
	n += (size_t)snprintf(body + n, cap - n, PK11);
	for (unsigned i = 0; i < 65536; i++)
		n += (size_t)snprintf(body + n, cap - n, "allowed_ip=10.%u.%u.0/24\n", i >> 8, i & 255);
	CHECK_INT(wg_uapi_parse_set(&c, body, n, err, sizeof(err)), ==, 0);
	free(body);
	CHECK_INT(c.peers[0].n_allowed_ips, ==, 65536);
	CHECK_STR(wgtest_prefix_str(&c.peers[0].allowed_ips[65535]), "10.255.255.0/24");
	wg_conf_free(&c);
}

static const struct {
	const char *body;
	int err;
	const char *msg;	/* exact, or NULL for any non-empty message */
} bad_sets[] = {
	{ "private_key=00\n", EINVAL, "private_key: bad key (not 64 hex digits)" },
	{ "private_key=" H01 "1\n", EINVAL, NULL },
	{ "private_key= " H01 "\n", EINVAL, NULL },
	{ "private_key=" H01 " \n", EINVAL, NULL },
	{ "private_key=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n", EINVAL, NULL },
	{ "listen_port=65536\n", EINVAL, "listen_port: bad value `65536'" },
	{ "listen_port=-1\n", EINVAL, "listen_port: bad value `-1'" },
	{ "listen_port=\n", EINVAL, "listen_port: bad value `'" },
	{ "listen_port=+1\n", EINVAL, NULL },
	{ "listen_port= 1\n", EINVAL, NULL },
	{ "listen_port=1 \n", EINVAL, NULL },
	{ "listen_port=0x10\n", EINVAL, NULL },
	{ "listen_port=99999999999999999999\n", EINVAL, NULL },
	{ "fwmark=4294967296\n", EINVAL, "fwmark: bad value `4294967296'" },
	{ "fwmark=off\n", EINVAL, NULL },
	{ "replace_peers=false\n", EINVAL, "replace_peers: bad value `false'" },
	{ "replace_peers=TRUE\n", EINVAL, NULL },
	{ "replace_peers=1\n", EINVAL, NULL },
	{ "replace_peers=\n", EINVAL, NULL },
	{ "public_key=xyz\n", EINVAL, "public_key: bad key `xyz'" },
	{ "public_key=\n", EINVAL, NULL },
	{ PK11 "remove=false\n", EINVAL, "remove: bad value `false'" },
	{ PK11 "update_only=yes\n", EINVAL, "update_only: bad value `yes'" },
	{ PK11 "preshared_key=zz\n", EINVAL, "preshared_key: bad key (not 64 hex digits)" },
	{ PK11 "endpoint=192.0.2.1\n", EINVAL, "endpoint: bad value `192.0.2.1'" },
	{ PK11 "endpoint=192.0.2.1:0\n", EINVAL, NULL },
	{ PK11 "endpoint=[::1]\n", EINVAL, NULL },
	{ PK11 "endpoint=::1:5\n", EINVAL, NULL },
	{ PK11 "endpoint=example.com:5\n", EINVAL, NULL },
	{ PK11 "persistent_keepalive_interval=65536\n", EINVAL,
	  "persistent_keepalive_interval: bad value `65536'" },
	{ PK11 "persistent_keepalive_interval=off\n", EINVAL, NULL },
	{ PK11 "replace_allowed_ips=false\n", EINVAL, "replace_allowed_ips: bad value `false'" },
	{ PK11 "allowed_ip=192.0.2.1\n", EINVAL, "allowed_ip: bad value `192.0.2.1'" },
	{ PK11 "allowed_ip=192.0.2.0/33\n", EINVAL, NULL },
	{ PK11 "allowed_ip=::/129\n", EINVAL, NULL },
	{ PK11 "allowed_ip=192.0.2.0/24,10.0.0.0/8\n", EINVAL, NULL },
	{ PK11 "protocol_version=2\n", EINVAL, "protocol_version: bad value `2'" },
	{ PK11 "protocol_version=0\n", EINVAL, NULL },
	{ PK11 "protocol_version=\n", EINVAL, NULL },
	{ "bogus=1\n", EINVAL, "unknown key `bogus'" },
	{ PK11 "bogus=1\n", EINVAL, "unknown key `bogus'" },
	{ "Listen_Port=1\n", EINVAL, "unknown key `Listen_Port'" },
	{ "=1\n", EINVAL, "unknown key `'" },
	{ PK11 "rx_bytes=1\n", EINVAL, "unknown key `rx_bytes'" },
	{ PK11 "last_handshake_time_sec=1\n", EINVAL, NULL },
	{ "errno=0\n", EINVAL, NULL },
	{ "endpoint=192.0.2.1:5\n", EINVAL, "peer key `endpoint' before any public_key" },
	{ "allowed_ip=192.0.2.0/24\n", EINVAL, NULL },
	{ PK11 "listen_port=1\n", EINVAL, "device key `listen_port' after a public_key" },
	{ PK11 "private_key=" H01 "\n", EINVAL, NULL },
	{ PK11 "replace_peers=true\n", EINVAL, NULL },
	{ "noequals\n", EPROTO, "line `noequals' is not key=value" },
	{ "listen_port=1\n\nfwmark=1\n", EPROTO, "empty line inside the request" },
	{ "\n", EPROTO, NULL },
	{ "listen_port=1\r\n", EINVAL, "listen_port: bad value `1?'" },
};

TEST(set_errors)
{
	for (size_t i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); i++) {
		struct wg_conf c;
		char err[256] = "";
		int ret;

		memset(&c, 0x5a, sizeof(c));
		ret = parse(&c, bad_sets[i].body, err, sizeof(err));
		if (ret != bad_sets[i].err)
			xb_test_fail(__FILE__, __LINE__, "case %zu: errno %d, want %d (%s)", i, ret,
				     bad_sets[i].err, err);
		if (!err[0] || (bad_sets[i].msg && strcmp(err, bad_sets[i].msg)))
			xb_test_fail(__FILE__, __LINE__, "case %zu: message \"%s\", want \"%s\"", i,
				     err, bad_sets[i].msg ? bad_sets[i].msg : "(any)");
		CHECK(!c.peers && !c.n_peers && !c.has_private_key);	/* freed */
	}
}

TEST(set_error_details)
{
	static const char body[] = "listen_port=1\0\n";
	struct wg_conf c;
	char err[16], big[4096];

	CHECK_INT(wg_uapi_parse_set(&c, body, sizeof(body) - 1, big, sizeof(big)), ==, EINVAL);
	CHECK_STR(big, "request contains a NUL byte");
	/* secrets are never echoed, long values are cut, err is always terminated */
	CHECK_INT(parse(&c, "private_key=hunter2\n", big, sizeof(big)), ==, EINVAL);
	CHECK(!strstr(big, "hunter2"));
	CHECK_INT(parse(&c, PK11 "preshared_key=hunter2\n", big, sizeof(big)), ==, EINVAL);
	CHECK(!strstr(big, "hunter2"));
	snprintf(big, sizeof(big), "%01000d", 0);
	CHECK_INT(parse(&c, "fwmark=00000000000000000000000000000000000000000000000000000000000000000"
			    "000000000000000\n", big, sizeof(big)), ==, EINVAL);
	CHECK_STR(big, "fwmark: bad value `0000000000000000000000000000000000000000000000000000000000"
		       "000000...'");
	CHECK_INT(parse(&c, "bogus=1\n", err, sizeof(err)), ==, EINVAL);
	CHECK_STR(err, "unknown key `bo");
	CHECK_INT(parse(&c, "bogus=1\n", NULL, 0), ==, EINVAL);
}

/* ---- get ---- */

static void sample_conf(struct wg_conf *c)
{
	struct wg_peer_conf *p;
	struct xb_prefix pfx;

	memset(c, 0, sizeof(*c));
	wgtest_fill(c->private_key, 0x01);
	c->has_private_key = true;
	c->listen_port = 51820;
	c->has_listen_port = true;
	c->fwmark = 7;
	c->has_fwmark = true;

	p = wg_conf_add_peer(c);
	wgtest_fill(p->public_key, 0x11);
	wgtest_fill(p->preshared_key, 0x22);
	p->has_preshared_key = true;
	CHECK(xb_endpoint_parse(&p->endpoint, "192.0.2.1:51820"));
	p->persistent_keepalive = 25;
	p->has_persistent_keepalive = true;
	p->last_handshake_sec = 1700000000;
	p->last_handshake_nsec = 500000000;
	p->tx_bytes = 1000;
	p->rx_bytes = UINT64_MAX;
	CHECK(xb_prefix_parse(&pfx, "10.0.0.0/8"));
	CHECK(xb_prefix_append(&p->allowed_ips, &p->n_allowed_ips, &pfx));
	CHECK(xb_prefix_parse(&pfx, "2001:db8::/32"));
	CHECK(xb_prefix_append(&p->allowed_ips, &p->n_allowed_ips, &pfx));

	p = wg_conf_add_peer(c);
	wgtest_fill(p->public_key, 0x33);
	p->has_preshared_key = true;	/* zero: no key, not shown */
	CHECK(xb_endpoint_parse(&p->endpoint, "[fe80::1%lo]:1"));
	p->last_handshake_sec = -5;	/* nonsense clamps to "never" */
}

static const char sample_get[] =
	"private_key=" H01 "\n"
	"listen_port=51820\n"
	"fwmark=7\n"
	"public_key=" H11 "\n"
	"preshared_key=" H22 "\n"
	"protocol_version=1\n"
	"endpoint=192.0.2.1:51820\n"
	"last_handshake_time_sec=1700000000\n"
	"last_handshake_time_nsec=500000000\n"
	"tx_bytes=1000\n"
	"rx_bytes=18446744073709551615\n"
	"persistent_keepalive_interval=25\n"
	"allowed_ip=10.0.0.0/8\n"
	"allowed_ip=2001:db8::/32\n"
	"public_key=" H33 "\n"
	"protocol_version=1\n"
	"endpoint=[fe80::1%lo]:1\n"
	"last_handshake_time_sec=0\n"
	"last_handshake_time_nsec=0\n"
	"tx_bytes=0\n"
	"rx_bytes=0\n"
	"persistent_keepalive_interval=0\n"
	"errno=0\n\n";

TEST(get_exact_text)
{
	struct wg_conf c;
	char *s;

	sample_conf(&c);
	s = wg_uapi_format_get(&c);
	CHECK(s);
	CHECK_STR(s, sample_get);
	free(s);
	wg_conf_free(&c);

	/* an empty device: no key, no port, no mark */
	s = wg_uapi_format_get(&c);
	CHECK_STR(s, "errno=0\n\n");
	free(s);
	c.has_private_key = true;	/* a zero key is no key */
	c.has_fwmark = true;		/* mark 0 is not shown */
	c.has_listen_port = true;	/* port 0 is: the device has it */
	s = wg_uapi_format_get(&c);
	CHECK_STR(s, "listen_port=0\nerrno=0\n\n");
	free(s);
}

/* Drops the get-only lines and the errno trailer: what is left is a set body. */
static char *settable(const char *get)
{
	static const char *const get_only[] = {
		"last_handshake_time_sec=", "last_handshake_time_nsec=", "tx_bytes=", "rx_bytes=",
		"errno=",
	};
	char *out = calloc(1, strlen(get) + 1), *o = out;

	for (const char *l = get, *e; *l; l = e + 1) {
		bool keep = true;

		e = strchr(l, '\n');
		for (size_t i = 0; i < sizeof(get_only) / sizeof(get_only[0]); i++)
			keep &= strncmp(l, get_only[i], strlen(get_only[i])) != 0;
		if (keep && e > l) {
			memcpy(o, l, (size_t)(e - l + 1));
			o += e - l + 1;
		}
	}
	return out;
}

TEST(get_set_round_trip)
{
	struct wg_conf a, b;
	char *text, *body, err[128];

	sample_conf(&a);
	text = wg_uapi_format_get(&a);
	body = settable(text);
	CHECK_INT(parse(&b, body, err, sizeof(err)), ==, 0);
	free(text);
	free(body);
	CHECK(b.has_private_key && !memcmp(a.private_key, b.private_key, WG_KEY_LEN));
	CHECK(b.listen_port == a.listen_port && b.fwmark == a.fwmark);
	CHECK_INT(b.n_peers, ==, a.n_peers);
	for (size_t i = 0; i < a.n_peers; i++) {
		struct wg_peer_conf *x = &a.peers[i], *y = &b.peers[i];

		CHECK_MEM(x->public_key, y->public_key, WG_KEY_LEN);
		CHECK_INT(y->has_preshared_key, ==, !wg_key_is_zero(x->preshared_key));
		CHECK_MEM(x->preshared_key, y->preshared_key, WG_KEY_LEN);
		CHECK(!memcmp(&x->endpoint, &y->endpoint, sizeof(x->endpoint)));
		CHECK(y->has_persistent_keepalive);
		CHECK_INT(x->persistent_keepalive, ==, y->persistent_keepalive);
		CHECK_INT(y->protocol_version, ==, 1);
		CHECK_INT(x->n_allowed_ips, ==, y->n_allowed_ips);
		CHECK(!x->n_allowed_ips ||
		      !memcmp(x->allowed_ips, y->allowed_ips, x->n_allowed_ips * sizeof(struct xb_prefix)));
	}
	wg_conf_free(&a);
	wg_conf_free(&b);
}

/* ---- an in-memory device behind the server ---- */

struct memdev {
	struct wg_conf conf;
	int fail_get;
	unsigned sets;
};

static bool copy_peer(struct wg_conf *out, const struct wg_peer_conf *src)
{
	struct wg_peer_conf *p = wg_conf_add_peer(out);

	if (!p)
		return false;
	*p = *src;
	p->endpoint_host = NULL;
	p->allowed_ips = NULL;
	p->n_allowed_ips = 0;
	for (size_t i = 0; i < src->n_allowed_ips; i++)
		if (!xb_prefix_append(&p->allowed_ips, &p->n_allowed_ips, &src->allowed_ips[i]))
			return false;
	return true;
}

static int mem_get(void *ctx, struct wg_conf *out)
{
	struct memdev *d = ctx;

	memset(out, 0, sizeof(*out));
	if (d->fail_get)
		return d->fail_get;
	out->has_private_key = d->conf.has_private_key;
	memcpy(out->private_key, d->conf.private_key, WG_KEY_LEN);
	out->listen_port = d->conf.listen_port;
	out->has_listen_port = true;
	out->fwmark = d->conf.fwmark;
	for (size_t i = 0; i < d->conf.n_peers; i++)
		if (!copy_peer(out, &d->conf.peers[i]))
			return ENOMEM;
	return 0;
}

static struct wg_peer_conf *find_peer(struct wg_conf *c, const uint8_t key[WG_KEY_LEN])
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (!memcmp(c->peers[i].public_key, key, WG_KEY_LEN))
			return &c->peers[i];
	return NULL;
}

static void drop_peer(struct wg_conf *c, struct wg_peer_conf *p)
{
	free(p->allowed_ips);
	memmove(p, p + 1, (size_t)(&c->peers[c->n_peers] - (p + 1)) * sizeof(*p));
	c->n_peers--;
}

static int merge_peer(struct wg_conf *c, const struct wg_peer_conf *in)
{
	struct wg_peer_conf *p = find_peer(c, in->public_key);

	if (in->remove) {
		if (p)
			drop_peer(c, p);
		return 0;
	}
	if (!p && in->update_only)
		return 0;
	if (!p && !(p = wg_conf_add_peer(c)))
		return ENOMEM;
	memcpy(p->public_key, in->public_key, WG_KEY_LEN);
	if (in->has_preshared_key) {
		memcpy(p->preshared_key, in->preshared_key, WG_KEY_LEN);
		p->has_preshared_key = !wg_key_is_zero(in->preshared_key);
	}
	if (in->endpoint.sa.sa_family != AF_UNSPEC)
		p->endpoint = in->endpoint;
	if (in->has_persistent_keepalive)
		p->persistent_keepalive = in->persistent_keepalive;
	if (in->replace_allowed_ips)
		p->n_allowed_ips = 0;
	for (size_t i = 0; i < in->n_allowed_ips; i++)
		if (!xb_prefix_append(&p->allowed_ips, &p->n_allowed_ips, &in->allowed_ips[i]))
			return ENOMEM;
	return 0;
}

/* Listen port 1 stands for a port in use, to see how `wg` shows errors. */
static int mem_set(void *ctx, const struct wg_conf *in)
{
	struct memdev *d = ctx;
	int ret = 0;

	if (in->has_listen_port && in->listen_port == 1)
		return EADDRINUSE;
	d->sets++;
	if (in->has_private_key) {
		memcpy(d->conf.private_key, in->private_key, WG_KEY_LEN);
		d->conf.has_private_key = !wg_key_is_zero(in->private_key);
	}
	if (in->has_listen_port)
		d->conf.listen_port = in->listen_port;
	if (in->has_fwmark)
		d->conf.fwmark = in->fwmark;
	while (in->replace_peers && d->conf.n_peers)
		drop_peer(&d->conf, &d->conf.peers[0]);
	for (size_t i = 0; i < in->n_peers && !ret; i++)
		ret = merge_peer(&d->conf, &in->peers[i]);
	return ret;
}

static const struct wg_uapi_ops mem_ops = { mem_get, mem_set };

/* Sends req (then EOF) from a child, serves it here, returns all replies. */
static char *exchange(struct memdev *d, const char *req, size_t len)
{
	static char out[1 << 16];
	size_t n = 0;
	ssize_t r;
	int sv[2], st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		xb_test_fail(__FILE__, __LINE__, "socketpair: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		close(sv[1]);
		while (len && (r = send(sv[0], req, len, MSG_NOSIGNAL)) > 0) {
			req += r;
			len -= (size_t)r;
		}
		shutdown(sv[0], SHUT_WR);
		_exit(0);
	}
	wg_uapi_serve(sv[1], &mem_ops, d);
	close(sv[1]);
	while (n < sizeof(out) - 1 && (r = read(sv[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(sv[0]);
	waitpid(pid, &st, 0);
	return out;
}

#define EXCHANGE(d, s) exchange((d), (s), sizeof(s) - 1)

TEST(serve_requests)
{
	struct memdev d = { 0 };

	CHECK_STR(EXCHANGE(&d, "get=1\n\n"), "listen_port=0\nerrno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "get=1\n\nget=1\n\n"),
		  "listen_port=0\nerrno=0\n\nlisten_port=0\nerrno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\nlisten_port=5\n" PK11 "allowed_ip=10.0.0.0/8\n\nget=1\n\n"),
		  "errno=0\n\nlisten_port=5\npublic_key=" H11 "\nprotocol_version=1\n"
		  "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
		  "persistent_keepalive_interval=0\nallowed_ip=10.0.0.0/8\nerrno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\n\n"), "errno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\nreplace_peers=true\nlisten_port=6\n\nset=1\nfwmark=9\n\n"),
		  "errno=0\n\nerrno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "get=1\n\n"), "listen_port=6\nfwmark=9\nerrno=0\n\n");
	wg_conf_free(&d.conf);
}

TEST(serve_errors)
{
	struct memdev d = { 0 };

	/* a bad set is answered, changes nothing, and the connection goes on */
	CHECK_STR(EXCHANGE(&d, "set=1\nlisten_port=7\nbogus=1\n\nget=1\n\n"),
		  "errno=-22\n\nlisten_port=0\nerrno=0\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\nnoequals\n\n"), "errno=-71\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\nlisten_port=1\n\n"), "errno=-98\n\n");
	CHECK_STR(EXCHANGE(&d, "set=1\nlisten_port=7\0\n\n"), "errno=-22\n\n");
	/* "get=1\n" and a byte that is not "\n": EINVAL, that byte consumed */
	CHECK_STR(EXCHANGE(&d, "get=1\nxget=1\n\n"), "errno=-22\n\nlisten_port=0\nerrno=0\n\n");
	/* an unknown request closes the connection without a reply */
	CHECK_STR(EXCHANGE(&d, "foo=1\n\nget=1\n\n"), "");
	CHECK_STR(EXCHANGE(&d, "GET=1\n\n"), "");
	CHECK_STR(EXCHANGE(&d, "get=1 \n\n"), "");
	CHECK_STR(EXCHANGE(&d, "get=10000000000\n\n"), "");
	CHECK_STR(EXCHANGE(&d, "\n"), "");
	CHECK_STR(EXCHANGE(&d, "ge\0=1\n\n"), "");
	/* a request cut short by EOF is not applied and not answered */
	CHECK_STR(EXCHANGE(&d, "set=1\nlisten_port=7\n"), "");
	CHECK_STR(EXCHANGE(&d, "get=1\n"), "");
	CHECK_INT(d.sets, ==, 0);
	d.fail_get = EIO;
	CHECK_STR(EXCHANGE(&d, "get=1\n\nset=1\n\n"), "errno=-5\n\nerrno=0\n\n");
}

/* A set request of exactly len bytes: "set=1\n", fwmark lines, "\n". */
static char *request_of(size_t len)
{
	char *r = malloc(len + 1), *p = r;
	size_t body = len - 7, tens;

	strcpy(p, "set=1\n");
	p += 6;
	tens = body % 9;		/* lines of 10 bytes, the rest of 9 */
	for (size_t i = 0; i < tens; i++, p += 10)
		memcpy(p, "fwmark=12\n", 10);
	for (size_t i = 0; i < (body - 10 * tens) / 9; i++, p += 9)
		memcpy(p, "fwmark=1\n", 9);
	*p++ = '\n';
	*p = '\0';
	return r;
}

TEST(serve_size_limit)
{
	struct memdev d = { 0 };
	char *r;

	r = request_of(1 << 20);
	CHECK_INT(strlen(r), ==, 1 << 20);
	CHECK_STR(exchange(&d, r, strlen(r)), "errno=0\n\n");
	free(r);
	CHECK_INT(d.conf.fwmark, ==, 1);
	r = request_of((1 << 20) + 1);
	CHECK_INT(strlen(r), ==, (1 << 20) + 1);
	CHECK_STR(exchange(&d, r, strlen(r)), "errno=-90\n\n");
	free(r);
	CHECK_INT(d.sets, ==, 1);
}

TEST(serve_idle_timeout)
{
	struct memdev d = { 0 };
	struct timespec t0, t1;
	int sv[2];
	double s;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[0], "get=1\n", 6) == 6);	/* and then nothing, connection open */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wg_uapi_serve(sv[1], &mem_ops, &d);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(sv[0]);
	close(sv[1]);
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(s > 4.5 && s < 7.0);
}

/* ---- the socket ---- */

static bool is_root(void)
{
	return geteuid() == 0;
}

TEST(uapi_path)
{
	char buf[108];

	wg_uapi_path(buf, sizeof(buf), "wg0");
	CHECK_STR(buf, "/var/run/wireguard/wg0.sock");
}

TEST(listen_rejects_bad_names)
{
	static const char *const bad[] = {
		"", "a/b", "/", "0123456789abcdef", ".", "..", "a b", "a:b", "a\tb", "\x7f",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (wg_uapi_listen(bad[i]) != -1 || errno != EINVAL)
			xb_test_fail(__FILE__, __LINE__, "name `%s' not refused", bad[i]);
	}
}

TEST(listen_stale_live_and_mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char name[16];
	struct stat st;
	int fd, fd2, c;

	if (!is_root())
		SKIP("needs root to write /var/run/wireguard");
	snprintf(name, sizeof(name), "xbl%d", (int)getpid());
	wg_uapi_path(sun.sun_path, sizeof(sun.sun_path), name);

	/* a socket file nobody listens on is stale and replaced */
	fd = wg_uapi_listen(name);
	CHECK(fd >= 0);
	close(fd);
	CHECK(lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode));
	fd = wg_uapi_listen(name);
	CHECK(fd >= 0);
	CHECK(stat(sun.sun_path, &st) == 0);
	CHECK_INT(st.st_mode & 07777, ==, 0600);
	CHECK(stat("/var/run/wireguard", &st) == 0 && S_ISDIR(st.st_mode));

	/* a live one is refused and left alone */
	errno = 0;
	fd2 = wg_uapi_listen(name);
	CHECK_INT(fd2, ==, -1);
	CHECK_INT(errno, ==, EADDRINUSE);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	close(c);
	close(fd);

	/* something that is not a socket is not ours to delete */
	unlink(sun.sun_path);
	fd = open(sun.sun_path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	errno = 0;
	CHECK_INT(wg_uapi_listen(name), ==, -1);
	CHECK_INT(errno, ==, EEXIST);
	CHECK(lstat(sun.sun_path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(sun.sun_path);
}

/* ---- end to end: the real wg(8) against our server ---- */

#define WG "/usr/bin/wg"

struct wg_run {
	int status;
	char out[4096];
};

static void run(struct wg_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void run(struct wg_run *r, const char *fmt, ...)
{
	char cmd[1024];
	size_t n = 0;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strcat(cmd, " 2>&1");
	r->out[0] = '\0';
	r->status = -1;
	f = popen(cmd, "r");
	if (!f)
		return;
	n = fread(r->out, 1, sizeof(r->out) - 1, f);
	r->out[n] = '\0';
	r->status = pclose(f);
}

static void gen_keypair(uint8_t priv[WG_KEY_LEN], uint8_t pub[WG_KEY_LEN])
{
	randombytes_buf(priv, WG_KEY_LEN);
	priv[0] &= 248;			/* clamped, as `wg genkey` makes them */
	priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
}

static _Noreturn void serve_forever(int lfd)
{
	struct memdev d = { 0 };
	int c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(60);
	for (;;) {
		c = accept(lfd, NULL, NULL);
		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0)
			_exit(1);
		wg_uapi_serve(c, &mem_ops, &d);
		close(c);
	}
}

enum { R_SET, R_DUMP, R_CONF, R_BUSY, R_LIST, R_REMOVE, R_DUMP2, R_N };

TEST(wg_tool_end_to_end)
{
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN], ppriv[WG_KEY_LEN], ppub[WG_KEY_LEN];
	char ifname[16], sock[108], keyfile[] = "/tmp/xbu-key-XXXXXX", want[1024], dump[512];
	char privb[WG_KEY_B64_LEN + 1], pubb[WG_KEY_B64_LEN + 1], ppubb[WG_KEY_B64_LEN + 1];
	static struct wg_run r[R_N];
	int lfd, kfd, st;
	pid_t pid;

	if (!is_root())
		SKIP("needs root for /var/run/wireguard");
	if (access(WG, X_OK))
		SKIP("%s not installed", WG);
	CHECK(sodium_init() >= 0);
	gen_keypair(priv, pub);
	gen_keypair(ppriv, ppub);
	wg_key_to_base64(privb, priv);
	wg_key_to_base64(pubb, pub);
	wg_key_to_base64(ppubb, ppub);
	kfd = mkstemp(keyfile);
	CHECK(kfd >= 0);
	CHECK(write(kfd, privb, strlen(privb)) == (ssize_t)strlen(privb) && write(kfd, "\n", 1) == 1);
	close(kfd);

	snprintf(ifname, sizeof(ifname), "xbu%d", (int)getpid());
	wg_uapi_path(sock, sizeof(sock), ifname);
	lfd = wg_uapi_listen(ifname);
	if (lfd < 0) {
		unlink(keyfile);
		xb_test_fail(__FILE__, __LINE__, "wg_uapi_listen: %s", strerror(errno));
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		serve_forever(lfd);

	/* Run everything first, check afterwards: a failed CHECK must not
	 * leave the server or the socket file behind. */
	run(&r[R_SET], WG " set %s private-key %s listen-port 51820 peer %s allowed-ips "
		       "192.0.2.0/24,2001:db8::/32 endpoint 198.51.100.1:51820 persistent-keepalive 25",
	    ifname, keyfile, ppubb);
	run(&r[R_DUMP], WG " show %s dump", ifname);
	run(&r[R_CONF], WG " showconf %s", ifname);
	run(&r[R_BUSY], WG " set %s listen-port 1", ifname);
	run(&r[R_LIST], WG " show interfaces");
	run(&r[R_REMOVE], WG " set %s peer %s remove", ifname, ppubb);
	run(&r[R_DUMP2], WG " show %s dump", ifname);

	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	close(lfd);
	unlink(sock);
	unlink(keyfile);
	snprintf(dump, sizeof(dump), "%s\t%s\t51820\toff\n"
		 "%s\t(none)\t198.51.100.1:51820\t192.0.2.0/24,2001:db8::/32\t0\t0\t0\t25\n",
		 privb, pubb, ppubb);
	sodium_memzero(priv, sizeof(priv));
	sodium_memzero(privb, sizeof(privb));

	CHECK_STR(r[R_SET].out, "");
	CHECK_INT(r[R_SET].status, ==, 0);
	CHECK_STR(r[R_DUMP].out, dump);
	sodium_memzero(dump, sizeof(dump));
	CHECK_INT(r[R_CONF].status, ==, 0);
	CHECK(strstr(r[R_CONF].out, "[Interface]\nListenPort = 51820\nPrivateKey = "));
	snprintf(want, sizeof(want), "\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 192.0.2.0/24, "
		 "2001:db8::/32\nEndpoint = 198.51.100.1:51820\nPersistentKeepalive = 25\n", ppubb);
	CHECK_STR(strstr(r[R_CONF].out, "\n\n[Peer]"), want);
	CHECK_STR(r[R_BUSY].out, "Unable to modify interface: Address already in use\n");
	CHECK(WEXITSTATUS(r[R_BUSY].status) == 1);
	CHECK(strstr(r[R_LIST].out, ifname));
	CHECK_STR(r[R_REMOVE].out, "");
	CHECK_INT(r[R_REMOVE].status, ==, 0);
	CHECK(strstr(r[R_DUMP2].out, pubb) && !strstr(r[R_DUMP2].out, ppubb));
	CHECK_INT(strchr(r[R_DUMP2].out, '\n') - r[R_DUMP2].out + 1, ==, (long)strlen(r[R_DUMP2].out));
	CHECK(!WIFSIGNALED(st) || WTERMSIG(st) == SIGTERM);
}
