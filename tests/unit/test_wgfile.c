/* wg-quick style files: a full partner file, every key, every kind of error
 * with its exact "name:LINE: message" text, and several errors at once. */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/wgconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define K11 "ERERERERERERERERERERERERERERERERERERERERERE="
#define K22 "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="
#define K33 "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM="
#define K44 "REREREREREREREREREREREREREREREREREREREREREQ="

/* Parses text that must fail and returns the error text. */
static const char *errors_of(const char *text)
{
	static char err[4096];
	struct wg_conf c;

	memset(&c, 0xa5, sizeof(c));
	if (wg_conf_parse_text(&c, "partner.conf", text, err, sizeof(err)) != -1)
		xb_test_fail(__FILE__, __LINE__, "parsed: %s", text);
	if (c.peers || c.n_peers || c.addresses || c.has_private_key)
		xb_test_fail(__FILE__, __LINE__, "conf not freed after an error");
	return err;
}

static const char partner[] =
	"# Issued by partner NOC, 2024-05-01\n"
	"[Interface]\n"
	"PrivateKey = " K11 "\n"
	"ListenPort = 51820\n"
	"FwMark = 0x1234\n"
	"Address = 10.8.0.2/24, fd00:8::2/64\n"
	"Address=192.0.2.7\n"
	"MTU = 1380\n"
	"DNS = 10.8.0.1, partner.example\n"
	"Table = off\n"
	"PreUp = true\n"
	"PostUp = iptables -A FORWARD -i %i -j ACCEPT\n"
	"PreDown = true\n"
	"PostDown = iptables -D FORWARD -i %i -j ACCEPT\n"
	"SaveConfig = false\n"
	"\n"
	"  [peer]   # hub\n"
	"publickey = " K22 "\n"
	"PresharedKey = " K33 "\r\n"
	"AllowedIPs = 10.8.0.0/16 , 2001:db8::/32\n"
	"AllowedIPs = 198.51.100.0/24,\n"
	"Endpoint = 203.0.113.5:51820\n"
	"PersistentKeepalive = 25\n"
	"\n"
	"[Peer]\n"
	"PublicKey = " K44 "\n"
	"Endpoint = vpn.partner.example:4500\n"
	"PersistentKeepalive = off\n"
	"[PEER]\n"
	"PublicKey = " K33 "\n"
	"Endpoint = [2001:db8::1]:51820\n"
	"AllowedIPs =\n";

TEST(full_partner_file)
{
	struct wg_conf c;
	char err[256] = "junk";
	uint8_t k[WG_KEY_LEN];

	CHECK_INT(wg_conf_parse_text(&c, "partner.conf", partner, err, sizeof(err)), ==, 0);
	CHECK_STR(err, "");
	wgtest_fill(k, 0x11);
	CHECK(c.has_private_key);
	CHECK_MEM(c.private_key, k, WG_KEY_LEN);
	CHECK(c.has_listen_port && c.listen_port == 51820);
	CHECK(c.has_fwmark && c.fwmark == 0x1234);
	CHECK_INT(c.mtu, ==, 1380);
	CHECK_INT(c.n_addresses, ==, 3);
	CHECK_STR(wgtest_prefix_str(&c.addresses[0]), "10.8.0.2/24");
	CHECK_STR(wgtest_prefix_str(&c.addresses[1]), "fd00:8::2/64");
	CHECK_STR(wgtest_prefix_str(&c.addresses[2]), "192.0.2.7/32");
	CHECK_INT(c.n_peers, ==, 3);

	wgtest_fill(k, 0x22);
	CHECK_MEM(c.peers[0].public_key, k, WG_KEY_LEN);
	wgtest_fill(k, 0x33);
	CHECK(c.peers[0].has_preshared_key);
	CHECK_MEM(c.peers[0].preshared_key, k, WG_KEY_LEN);
	CHECK_INT(c.peers[0].n_allowed_ips, ==, 3);
	CHECK_STR(wgtest_prefix_str(&c.peers[0].allowed_ips[0]), "10.8.0.0/16");
	CHECK_STR(wgtest_prefix_str(&c.peers[0].allowed_ips[1]), "2001:db8::/32");
	CHECK_STR(wgtest_prefix_str(&c.peers[0].allowed_ips[2]), "198.51.100.0/24");
	CHECK_INT(c.peers[0].endpoint.sa.sa_family, ==, AF_INET);
	CHECK_INT(ntohs(c.peers[0].endpoint.in.sin_port), ==, 51820);
	CHECK(c.peers[0].endpoint.in.sin_addr.s_addr == inet_addr("203.0.113.5"));
	CHECK(!c.peers[0].endpoint_host);
	CHECK(c.peers[0].has_persistent_keepalive && c.peers[0].persistent_keepalive == 25);

	CHECK(!c.peers[1].has_preshared_key);
	CHECK_INT(c.peers[1].endpoint.sa.sa_family, ==, AF_UNSPEC);
	CHECK_STR(c.peers[1].endpoint_host, "vpn.partner.example:4500");
	CHECK(c.peers[1].has_persistent_keepalive && c.peers[1].persistent_keepalive == 0);
	CHECK_INT(c.peers[1].n_allowed_ips, ==, 0);

	CHECK_INT(c.peers[2].endpoint.sa.sa_family, ==, AF_INET6);
	CHECK(!c.peers[2].has_persistent_keepalive);
	CHECK_INT(c.peers[2].n_allowed_ips, ==, 0);
	wg_conf_free(&c);
	CHECK(!c.peers && !c.n_peers && !c.has_private_key);
}

TEST(empty_and_comment_only_files)
{
	struct wg_conf c;
	char err[64];

	CHECK_INT(wg_conf_parse_text(&c, "x", "", err, sizeof(err)), ==, 0);
	CHECK_INT(c.n_peers, ==, 0);
	CHECK_INT(wg_conf_parse_text(&c, "x", "# nothing\n\n   \t\n", err, sizeof(err)), ==, 0);
	CHECK(!c.has_private_key && !c.has_listen_port);
	CHECK_INT(wg_conf_parse_text(&c, "x", "[Interface]", err, sizeof(err)), ==, 0);
	wg_conf_free(&c);
}

TEST(fwmark_and_keepalive_forms)
{
	struct wg_conf c;
	char err[64];

	CHECK_INT(wg_conf_parse_text(&c, "x", "[Interface]\nFwMark = off\n", err, sizeof(err)), ==, 0);
	CHECK(c.has_fwmark && c.fwmark == 0);
	CHECK_INT(wg_conf_parse_text(&c, "x", "[Interface]\nFwMark = 4294967295\n", err, sizeof(err)), ==, 0);
	CHECK(c.fwmark == UINT32_MAX);
	CHECK_INT(wg_conf_parse_text(&c, "x", "[Interface]\nFwMark = 0xffffffff\n", err, sizeof(err)), ==, 0);
	CHECK(c.fwmark == UINT32_MAX);
	CHECK_INT(wg_conf_parse_text(&c, "x", "[Interface]\nListenPort = 0\nMTU = 68\n", err, sizeof(err)), ==, 0);
	CHECK(c.has_listen_port && c.listen_port == 0 && c.mtu == 68);
	CHECK_INT(wg_conf_parse_text(&c, "x", "[Peer]\nPublicKey=" K11 "\nPersistentKeepalive=65535\n",
				     err, sizeof(err)), ==, 0);
	CHECK_INT(c.peers[0].persistent_keepalive, ==, 65535);
	wg_conf_free(&c);
}

static const struct {
	const char *text, *error;
} bad[] = {
	{ "[Peer]\nPublicKey = abc\n", "partner.conf:2: PublicKey: bad key `abc'" },
	{ "[Peer]\nPublicKey = ERERERERERERERERERERERERERERERERERERERERERF=\n",
	  "partner.conf:2: PublicKey: bad key `ERERERERERERERERERERERERERERERERERERERERERF='" },
	{ "[Interface]\nPrivateKey = secretbutwrong\n",
	  "partner.conf:2: PrivateKey: bad key (want 44 base64 characters; not shown)" },
	{ "[Peer]\nPublicKey = " K11 "\nPresharedKey = " K11 "x\n",
	  "partner.conf:3: PresharedKey: bad key (want 44 base64 characters; not shown)" },
	{ "[Interface]\nListenPort = 65536\n", "partner.conf:2: ListenPort: bad port `65536'" },
	{ "[Interface]\nListenPort = -1\n", "partner.conf:2: ListenPort: bad port `-1'" },
	{ "[Interface]\nListenPort =\n", "partner.conf:2: ListenPort: bad port `'" },
	{ "[Interface]\nFwMark = 0x100000000\n", "partner.conf:2: FwMark: bad value `0x100000000'" },
	{ "[Interface]\nFwMark = on\n", "partner.conf:2: FwMark: bad value `on'" },
	{ "[Interface]\nMTU = 67\n", "partner.conf:2: MTU: bad value `67'" },
	{ "[Interface]\nMTU = 1420b\n", "partner.conf:2: MTU: bad value `1420b'" },
	{ "[Interface]\nAddress = 10.0.0.1/33\n", "partner.conf:2: Address: bad prefix `10.0.0.1/33'" },
	{ "[Interface]\nAddress = 10.0.0.1/24, fd00::1/129\n",
	  "partner.conf:2: Address: bad prefix `fd00::1/129'" },
	{ "[Peer]\nPublicKey = " K11 "\nAllowedIPs = 10.0.0.0/8, 10.1/16\n",
	  "partner.conf:3: AllowedIPs: bad prefix `10.1/16'" },
	{ "[Peer]\nPublicKey = " K11 "\nEndpoint = 192.0.2.1\n",
	  "partner.conf:3: Endpoint: bad endpoint `192.0.2.1' (want host:port)" },
	{ "[Peer]\nPublicKey = " K11 "\nEndpoint = 192.0.2.1:0\n",
	  "partner.conf:3: Endpoint: bad endpoint `192.0.2.1:0' (want host:port)" },
	{ "[Peer]\nPublicKey = " K11 "\nEndpoint = 192.0.2.300:1\n",
	  "partner.conf:3: Endpoint: bad endpoint `192.0.2.300:1' (want host:port)" },
	{ "[Peer]\nPublicKey = " K11 "\nEndpoint = bad host:1\n",
	  "partner.conf:3: Endpoint: bad endpoint `bad host:1' (want host:port)" },
	{ "[Peer]\nPublicKey = " K11 "\nEndpoint = [2001:db8::1:51820\n",
	  "partner.conf:3: Endpoint: bad endpoint `[2001:db8::1:51820' (want host:port)" },
	{ "[Peer]\nPublicKey = " K11 "\nPersistentKeepalive = 65536\n",
	  "partner.conf:3: PersistentKeepalive: bad value `65536'" },
	{ "ListenPort = 1\n", "partner.conf:1: key `ListenPort' outside a section" },
	{ "[Interface]\nFoo = 1\n", "partner.conf:2: unknown key `Foo' in [Interface]" },
	{ "[Interface]\nPublicKey = " K11 "\n",
	  "partner.conf:2: unknown key `PublicKey' in [Interface]" },
	{ "[Peer]\nPublicKey = " K11 "\nListenPort = 1\n",
	  "partner.conf:3: unknown key `ListenPort' in [Peer]" },
	{ "[Wireguard]\nFoo = 1\n[Interface]\n", "partner.conf:1: unknown section `[Wireguard]'" },
	{ "[Interface]\nListenPort 51820\n",
	  "partner.conf:2: expected `Key = value', got `ListenPort 51820'" },
	{ "[Interface]\nListenPort = 1\nlistenport = 2\n",
	  "partner.conf:3: duplicate ListenPort (first on line 2)" },
	{ "[Interface]\n[Interface]\n", "partner.conf:2: second [Interface] section (first on line 1)" },
	{ "[Peer]\nEndpoint = 192.0.2.1:1\n", "partner.conf:1: [Peer] without PublicKey" },
	{ "[Peer]\nPublicKey = " K11 "\n[Peer]\nPublicKey = " K11 "\n",
	  "partner.conf:4: PublicKey: same key as the peer on line 1" },
	{ "[Interface]\nListenPort = \x01\xff\n", "partner.conf:2: ListenPort: bad port `\?\?'" },
};

TEST(each_error_exact_text)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = errors_of(bad[i].text);

		if (strcmp(got, bad[i].error))
			xb_test_fail(__FILE__, __LINE__, "case %zu: \"%s\", want \"%s\"", i, got,
				     bad[i].error);
	}
}

TEST(secrets_not_echoed)
{
	const char *e = errors_of("[Interface]\nPrivateKey = hunter2hunter2\n"
				  "[Peer]\nPublicKey = " K11 "\nPresharedKey = hunter3\n");

	CHECK(!strstr(e, "hunter"));
}

TEST(long_value_quoted_and_cut)
{
	char text[512], want[256];

	snprintf(text, sizeof(text), "[Interface]\nListenPort = %0200d\n", 7);
	snprintf(want, sizeof(want), "partner.conf:2: ListenPort: bad port `%064d...'", 0);
	CHECK_STR(errors_of(text), want);
}

TEST(several_errors_sorted_by_line)
{
	const char *e = errors_of("[Interface]\n"
				  "ListenPort = x\n"
				  "Bogus = 1\n"
				  "[Peer]\n"
				  "AllowedIPs = 10.0.0.0/8, nope, 2001:db8::/129\n"
				  "Endpoint = 1.2.3.4:99999\n"
				  "[Peer]\n"
				  "PublicKey = " K22 "\n");

	CHECK_STR(e, "partner.conf:2: ListenPort: bad port `x'\n"
		     "partner.conf:3: unknown key `Bogus' in [Interface]\n"
		     "partner.conf:4: [Peer] without PublicKey\n"
		     "partner.conf:5: AllowedIPs: bad prefix `nope'\n"
		     "partner.conf:5: AllowedIPs: bad prefix `2001:db8::/129'\n"
		     "partner.conf:6: Endpoint: bad endpoint `1.2.3.4:99999' (want host:port)");
}

TEST(errors_truncated_safely)
{
	struct wg_conf c;
	char err[40];

	memset(err, 'z', sizeof(err));
	CHECK_INT(wg_conf_parse_text(&c, "partner.conf", "[Interface]\nListenPort = x\nMTU = y\n",
				     err, sizeof(err)), ==, -1);
	CHECK_INT(strlen(err), ==, sizeof(err) - 1);
	CHECK(!strncmp(err, "partner.conf:2: ListenPort: bad port", 36));
	CHECK_INT(wg_conf_parse_text(&c, "partner.conf", "x\n", err, 1), ==, -1);
	CHECK_STR(err, "");
	CHECK_INT(wg_conf_parse_text(&c, "partner.conf", "x\n", NULL, 0), ==, -1);
}

TEST(too_many_errors_stop)
{
	static char text[64 * 1024], err[64 * 1024];
	struct wg_conf c;
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "[Interface]\n");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "Bad%d = 1\n", i);
	CHECK_INT(wg_conf_parse_text(&c, "f", text, err, sizeof(err)), ==, -1);
	CHECK(strstr(err, "f:101: unknown key `Bad99' in [Interface]\nf: too many errors"));
	CHECK(!strstr(err, "Bad100"));
}

TEST(parse_file_and_its_errors)
{
	char path[] = "/tmp/xb-wgfile-XXXXXX", err[256], want[300];
	struct wg_conf c;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	CHECK(write(fd, partner, strlen(partner)) == (ssize_t)strlen(partner));
	close(fd);
	CHECK_INT(wg_conf_parse_file(&c, path, err, sizeof(err)), ==, 0);
	CHECK_INT(c.n_peers, ==, 3);
	wg_conf_free(&c);

	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "[Interface]\nMTU = 1\n", 20) == 20);
	close(fd);
	CHECK_INT(wg_conf_parse_file(&c, path, err, sizeof(err)), ==, -1);
	snprintf(want, sizeof(want), "%s:2: MTU: bad value `1'", path);
	CHECK_STR(err, want);

	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "[Interface]\n\0\n", 14) == 14);
	close(fd);
	CHECK_INT(wg_conf_parse_file(&c, path, err, sizeof(err)), ==, -1);
	snprintf(want, sizeof(want), "%s: contains a NUL byte", path);
	CHECK_STR(err, want);

	unlink(path);
	CHECK_INT(wg_conf_parse_file(&c, path, err, sizeof(err)), ==, -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	CHECK_STR(err, want);
}

TEST(large_file_many_peers)
{
	size_t cap = 10000 * 160, n = 0;
	char *text = malloc(cap), err[128];
	struct wg_conf c;
	uint8_t k[WG_KEY_LEN] = { 0 };

	CHECK(text);
	for (unsigned i = 0; i < 10000; i++) {
		char b64[WG_KEY_B64_LEN + 1];

		memcpy(k, &i, sizeof(i));
		wg_key_to_base64(b64, k);
		n += (size_t)snprintf(text + n, cap - n,
				      "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%u.%u.0/24\n", b64,
				      i >> 8, i & 255);
	}
	CHECK_INT(wg_conf_parse_text(&c, "big", text, err, sizeof(err)), ==, 0);
	free(text);
	CHECK_INT(c.n_peers, ==, 10000);
	CHECK_STR(wgtest_prefix_str(&c.peers[9999].allowed_ips[0]), "10.39.15.0/24");
	wg_conf_free(&c);
}
