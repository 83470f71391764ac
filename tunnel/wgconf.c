/* WireGuard configuration values: keys and the owning structure
 * (prefixes and endpoints are common/prefix.c). Every decoder here accepts exactly one canonical spelling of a
 * value and nothing around it: no whitespace, no trailing bytes, no signs.
 */
#include "tunnel/wgconf.h"
#include "common/array.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wg_conf_free(struct wg_conf *c)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		struct wg_peer_conf *p = &c->peers[i];

		free(p->allowed_ips);
		free(p->endpoint_host);
		sodium_memzero(p, sizeof(*p));
	}
	free(c->peers);
	free(c->addresses);
	sodium_memzero(c, sizeof(*c));
}


struct wg_peer_conf *wg_conf_add_peer(struct wg_conf *c)
{
	struct wg_peer_conf *v = xb_grow(c->peers, c->n_peers, sizeof(*v));

	if (!v)
		return NULL;
	c->peers = v;
	memset(&v[c->n_peers], 0, sizeof(*v));
	return &v[c->n_peers++];
}

bool wg_key_from_hex(uint8_t key[static WG_KEY_LEN], const char *hex)
{
	uint8_t tmp[WG_KEY_LEN];
	const char *end = NULL;
	size_t len = 0;
	bool ok;

	ok = strlen(hex) == WG_KEY_HEX_LEN &&
	     !sodium_hex2bin(tmp, sizeof(tmp), hex, WG_KEY_HEX_LEN, NULL, &len, &end) &&
	     len == WG_KEY_LEN && end == hex + WG_KEY_HEX_LEN;
	if (ok)
		memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return ok;
}

void wg_key_to_hex(char hex[static WG_KEY_HEX_LEN + 1], const uint8_t key[static WG_KEY_LEN])
{
	sodium_bin2hex(hex, WG_KEY_HEX_LEN + 1, key, WG_KEY_LEN);
}

/* 32 bytes are 43 base64 digits and one '='; libsodium rejects a last digit
 * whose two unused bits are not zero, so every key has exactly one spelling. */
bool wg_key_from_base64(uint8_t key[static WG_KEY_LEN], const char *b64)
{
	uint8_t tmp[WG_KEY_LEN];
	const char *end = NULL;
	size_t len = 0;
	bool ok;

	ok = strlen(b64) == WG_KEY_B64_LEN && b64[WG_KEY_B64_LEN - 1] == '=' &&
	     !sodium_base642bin(tmp, sizeof(tmp), b64, WG_KEY_B64_LEN, NULL, &len, &end,
				sodium_base64_VARIANT_ORIGINAL) &&
	     len == WG_KEY_LEN && end == b64 + WG_KEY_B64_LEN;
	if (ok)
		memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return ok;
}

void wg_key_to_base64(char b64[static WG_KEY_B64_LEN + 1], const uint8_t key[static WG_KEY_LEN])
{
	sodium_bin2base64(b64, WG_KEY_B64_LEN + 1, key, WG_KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
}

bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN])
{
	return sodium_is_zero(key, WG_KEY_LEN) == 1;
}

