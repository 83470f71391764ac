/* WireGuard configuration as data: what a UAPI "set" request or a wg-quick
 * style file asks for, and what a UAPI "get" reports. Parsers fill these
 * structures; the device applies them. Nothing here touches a socket or a
 * device, so every parser is testable (and fuzzable) on its own.
 */
#ifndef XB_WGCONF_H
#define XB_WGCONF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/prefix.h"

#define WG_KEY_LEN 32
#define WG_KEY_HEX_LEN 64
#define WG_KEY_B64_LEN 44

struct wg_peer_conf {
	uint8_t public_key[WG_KEY_LEN];
	uint8_t preshared_key[WG_KEY_LEN];
	bool has_preshared_key;		/* all-zero key given = remove it */
	bool remove;
	bool update_only;
	bool replace_allowed_ips;
	union xb_sockaddr endpoint;	/* family AF_UNSPEC when not given */
	char *endpoint_host;		/* wg-quick only: "host:port" still to resolve */
	uint16_t persistent_keepalive;	/* seconds, 0 = off */
	bool has_persistent_keepalive;
	struct xb_prefix *allowed_ips;
	size_t n_allowed_ips;
	unsigned protocol_version;	/* 0 = not given */
	/* get only */
	int64_t last_handshake_sec, last_handshake_nsec;	/* Unix time, 0 = never */
	uint64_t rx_bytes, tx_bytes;
};

struct wg_conf {
	uint8_t private_key[WG_KEY_LEN];
	bool has_private_key;		/* all-zero key given = remove it */
	uint16_t listen_port;
	bool has_listen_port;
	uint32_t fwmark;
	bool has_fwmark;
	bool replace_peers;
	struct wg_peer_conf *peers;
	size_t n_peers;
	/* wg-quick [Interface] extras (not part of the UAPI) */
	struct xb_prefix *addresses;
	size_t n_addresses;
	unsigned mtu;			/* 0 = not given */
};

/* Frees everything the structure owns and wipes the keys; leaves it zeroed. */
void wg_conf_free(struct wg_conf *c);
/* Builder for parsers and for a device answering "get": append a zeroed
 * peer (NULL on ENOMEM; earlier peer pointers are invalidated). */
struct wg_peer_conf *wg_conf_add_peer(struct wg_conf *c);

/* Key encodings. Decoders return false on anything but exactly one key. */
bool wg_key_from_hex(uint8_t key[static WG_KEY_LEN], const char *hex);
void wg_key_to_hex(char hex[static WG_KEY_HEX_LEN + 1], const uint8_t key[static WG_KEY_LEN]);
bool wg_key_from_base64(uint8_t key[static WG_KEY_LEN], const char *b64);
void wg_key_to_base64(char b64[static WG_KEY_B64_LEN + 1], const uint8_t key[static WG_KEY_LEN]);
bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN]);


/* UAPI, the cross-platform userspace API that `wg` speaks
 * (https://www.wireguard.com/xplatform/):
 *
 * wg_uapi_parse_set() parses the body of a "set=1" request (the key=value
 * lines after "set=1", up to but not including the empty line) into c.
 * Returns 0, or a positive errno value (EINVAL for unknown keys, bad values,
 * peer keys before a public_key, ...) with a one-line reason in err; on error
 * c is freed.
 *
 * wg_uapi_format_get() writes the key=value lines of a "get=1" response,
 * ending with "errno=0\n\n", into a malloc'ed string (NULL on ENOMEM).
 * Private and preshared keys are included, as the protocol requires.
 */
int wg_uapi_parse_set(struct wg_conf *c, const char *body, size_t len, char *err, size_t errlen);
char *wg_uapi_format_get(const struct wg_conf *c);

/* What the UAPI server calls; both return 0 or a positive errno value. */
struct wg_uapi_ops {
	int (*get)(void *ctx, struct wg_conf *out);	/* out is freed by the server */
	int (*set)(void *ctx, const struct wg_conf *in);
};

/* Create /var/run/wireguard/IFNAME.sock (directory 0755, socket 0600),
 * replacing a stale socket but refusing one that a live process answers.
 * Returns the listening fd or -1 with errno set. wg_uapi_path() gives the path. */
int wg_uapi_listen(const char *ifname);
void wg_uapi_path(char *buf, size_t len, const char *ifname);
/* Serve one accepted connection until the peer closes it, an error, or
 * 5 s without a byte: any number of get=1/set=1 requests, each answered with
 * its errno= line. Requests over 1 MiB are refused. The caller closes fd. */
void wg_uapi_serve(int fd, const struct wg_uapi_ops *ops, void *ctx);

/* wg-quick style file ([Interface] PrivateKey ListenPort FwMark Address MTU,
 * [Peer] PublicKey PresharedKey AllowedIPs Endpoint PersistentKeepalive;
 * wg-quick-only keys such as DNS, Table, PreUp/PostUp are accepted and
 * ignored). Errors are "FILE:LINE: message", all of them, one per line, into
 * err. Returns 0 or -1. Endpoints that are not numeric stay in endpoint_host. */
int wg_conf_parse_file(struct wg_conf *c, const char *path, char *err, size_t errlen);
int wg_conf_parse_text(struct wg_conf *c, const char *name, const char *text,
		       char *err, size_t errlen);

#endif
