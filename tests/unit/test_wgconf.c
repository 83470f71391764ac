/* Configuration values: key encodings, prefixes and endpoints. */
#include "tests/lib/check.h"
#include "tests/lib/wgtest.h"
#include "tunnel/wgconf.h"

#include <arpa/inet.h>
#include <net/if.h>

#define H11 "1111111111111111111111111111111111111111111111111111111111111111"

TEST(key_hex)
{
	uint8_t k[WG_KEY_LEN], want[WG_KEY_LEN];
	char hex[WG_KEY_HEX_LEN + 1];

	xb_test_unhex(want, WG_KEY_LEN, "000102030405060708090a0b0c0d0e0f"
					"101112131415161718191a1b1c1d1e1f");
	CHECK(wg_key_from_hex(k, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
	CHECK_MEM(k, want, WG_KEY_LEN);
	CHECK(wg_key_from_hex(k, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"));
	CHECK_MEM(k, want, WG_KEY_LEN);
	wg_key_to_hex(hex, k);
	CHECK_STR(hex, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

	wgtest_fill(k, 0x77);
	CHECK(!wg_key_from_hex(k, ""));
	CHECK(!wg_key_from_hex(k, H11 "1"));
	CHECK(!wg_key_from_hex(k, H11 "11"));
	CHECK(!wg_key_from_hex(k, H11 " "));
	CHECK(!wg_key_from_hex(k, " " H11));
	CHECK(!wg_key_from_hex(k, "111111111111111111111111111111111111111111111111111111111111111"));
	CHECK(!wg_key_from_hex(k, "11111111111111111111111111111111111111111111111111111111111111g1"));
	CHECK(!wg_key_from_hex(k, "111111111111111111111111111111 1111111111111111111111111111111111"));
	CHECK(!wg_key_from_hex(k, "0x11111111111111111111111111111111111111111111111111111111111111"));
	wgtest_fill(want, 0x77);
	CHECK_MEM(k, want, WG_KEY_LEN);		/* untouched by failures */
}

TEST(key_base64)
{
	uint8_t k[WG_KEY_LEN], want[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN + 1];

	for (int i = 0; i < WG_KEY_LEN; i++)
		want[i] = (uint8_t)i;
	CHECK(wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
	CHECK_MEM(k, want, WG_KEY_LEN);
	wg_key_to_base64(b64, k);
	CHECK_STR(b64, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
	wgtest_fill(k, 0xff);
	wg_key_to_base64(b64, k);
	CHECK_STR(b64, "//////////////////////////////////////////8=");
	CHECK(wg_key_from_base64(k, b64));

	CHECK(!wg_key_from_base64(k, ""));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=="));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= "));
	CHECK(!wg_key_from_base64(k, " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9="));	/* low bits set */
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A"));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8="));	/* URL alphabet */
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd_h8="));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw Hh8="));
	CHECK(!wg_key_from_base64(k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=="));
	CHECK(!wg_key_from_base64(k, "============================================"));
}

TEST(key_is_zero)
{
	uint8_t k[WG_KEY_LEN] = { 0 };

	CHECK(wg_key_is_zero(k));
	k[31] = 1;
	CHECK(!wg_key_is_zero(k));
	k[31] = 0;
	k[0] = 0x80;
	CHECK(!wg_key_is_zero(k));
}

TEST(prefix_parse)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "192.0.2.0/24", "192.0.2.0/24" },
		{ "192.0.2.77/24", "192.0.2.77/24" },	/* host bits kept */
		{ "10.1.2.3", "10.1.2.3/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "255.255.255.255/32", "255.255.255.255/32" },
		{ "2001:db8::/32", "2001:db8::/32" },
		{ "2001:DB8::1", "2001:db8::1/128" },
		{ "::/0", "::/0" },
		{ "::ffff:192.0.2.1/128", "::ffff:192.0.2.1/128" },
		{ "10.0.0.0/08", "10.0.0.0/8" },
	};
	static const char *const bad[] = {
		"", "/", "/24", "192.0.2.0/", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/-1",
		"192.0.2.0/+8", "192.0.2.0/ 8", " 192.0.2.0/8", "192.0.2.0/8 ", "192.0.2/24",
		"010.0.0.1/8", "1.2.3.4.5/32", "192.0.2.0/8/8", "fe80::1%lo/64", "2001:db8:::/32",
		"example.com/24", "192.0.2.0/0x8", "192.0.2.0/4294967304",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999/128",
	};
	struct xb_prefix p;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!xb_prefix_parse(&p, good[i].in))
			xb_test_fail(__FILE__, __LINE__, "rejected `%s'", good[i].in);
		CHECK_STR(wgtest_prefix_str(&p), good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (xb_prefix_parse(&p, bad[i]))
			xb_test_fail(__FILE__, __LINE__, "accepted `%s'", bad[i]);
	CHECK(xb_prefix_parse(&p, "2001:db8::/32") && p.family == AF_INET6 && p.cidr == 32);
	CHECK(xb_prefix_parse(&p, "10.0.0.0/8") && p.family == AF_INET && p.cidr == 8);
}

TEST(endpoint_parse_and_format)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "192.0.2.1:51820", "192.0.2.1:51820" },
		{ "0.0.0.0:1", "0.0.0.0:1" },
		{ "192.0.2.1:65535", "192.0.2.1:65535" },
		{ "[2001:db8::1]:51820", "[2001:db8::1]:51820" },
		{ "[2001:DB8:0::1]:443", "[2001:db8::1]:443" },
		{ "[::ffff:192.0.2.1]:5", "[::ffff:192.0.2.1]:5" },
		{ "[fe80::1%lo]:51820", "[fe80::1%lo]:51820" },
		{ "[fe80::1%1]:51820", "[fe80::1%lo]:51820" },	/* lo is always index 1 */
	};
	static const char *const bad[] = {
		"", ":", "192.0.2.1", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536",
		"192.0.2.1:-1", "192.0.2.1:+1", "192.0.2.1: 1", " 192.0.2.1:1", "192.0.2.1:1 ",
		"192.0.2.1:0x10", "192.0.2:1", "[192.0.2.1]:1", "2001:db8::1:51820", "[2001:db8::1]",
		"[2001:db8::1]:", "[2001:db8::1]51820", "[2001:db8::1:51820", "2001:db8::1]:1",
		"[fe80::1%]:1", "[fe80::1%nosuchif0]:1", "[fe80::1%0]:1", "example.com:51820",
		"[example.com]:51820", "[[::1]]:1", "[::1]:1:1",
	};
	union xb_sockaddr sa;
	char small[8];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!xb_endpoint_parse(&sa, good[i].in))
			xb_test_fail(__FILE__, __LINE__, "rejected `%s'", good[i].in);
		CHECK_STR(wgtest_endpoint_str(&sa), good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (xb_endpoint_parse(&sa, bad[i]))
			xb_test_fail(__FILE__, __LINE__, "accepted `%s'", bad[i]);
	CHECK(xb_endpoint_parse(&sa, "[fe80::1%lo]:7"));
	CHECK_INT(sa.in6.sin6_scope_id, ==, if_nametoindex("lo"));
	CHECK_INT(ntohs(sa.in6.sin6_port), ==, 7);
	CHECK(xb_endpoint_parse(&sa, "192.0.2.1:51820"));
	xb_endpoint_format(small, sizeof(small), &sa);
	CHECK_STR(small, "192.0.2");
	memset(&sa, 0, sizeof(sa));
	CHECK_STR(wgtest_endpoint_str(&sa), "");
}

