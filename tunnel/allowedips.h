/* Cryptokey routing: the allowed-IPs table maps IPv4 and IPv6 prefixes to
 * the peer that owns them. On send, the destination address picks the peer
 * (longest prefix wins); on receive, the inner source address must map back
 * to the peer the packet authenticated as. A prefix belongs to one peer at a
 * time: giving it to another moves it.
 *
 * One path-compressed binary trie per family. Lookup allocates nothing and
 * takes no locks; the caller serialises writers against readers.
 */
#ifndef XB_ALLOWEDIPS_H
#define XB_ALLOWEDIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tunnel/wgconf.h"

struct wg_aip_node;

struct wg_allowedips {
	struct wg_aip_node *root4, *root6;
	size_t count;		/* prefixes with an owner, both families */
};

void wg_allowedips_init(struct wg_allowedips *t);
void wg_allowedips_free(struct wg_allowedips *t);

/* Insert or re-own a prefix (host bits below cidr are masked off first).
 * Returns 0, -ENOMEM, or -EINVAL for a NULL peer, an unknown family or a
 * cidr beyond 32/128. Inserting an existing prefix for another peer moves it
 * to that peer. */
int wg_allowedips_insert(struct wg_allowedips *t, const struct xb_prefix *p, void *peer);
/* Remove exactly this prefix (host bits masked) if owned by peer; returns
 * true if removed. */
bool wg_allowedips_remove(struct wg_allowedips *t, const struct xb_prefix *p, void *peer);
void wg_allowedips_remove_peer(struct wg_allowedips *t, void *peer);

/* Longest-prefix match; addr is 4 or 16 bytes in network order. NULL if none. */
void *wg_allowedips_lookup(const struct wg_allowedips *t, sa_family_t family, const uint8_t *addr);

/* Call fn for every prefix owned by peer (peer NULL: every prefix), IPv4
 * before IPv6, each family in address order with shorter prefixes first.
 * fn must not modify the table. */
void wg_allowedips_walk(const struct wg_allowedips *t, void *peer,
			void (*fn)(void *ctx, const struct xb_prefix *p, void *owner), void *ctx);

#endif
