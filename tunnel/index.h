/* Local session indices (the "sender index" of handshake messages and the
 * "receiver index" of data messages) mapped to what they name: a pending
 * handshake or a keypair of a peer. Indices are random and unique. */
#ifndef XB_INDEX_H
#define XB_INDEX_H

#include <stdbool.h>
#include <stdint.h>

struct wg_peer;
struct noise_keypair;

enum wg_index_kind { INDEX_HANDSHAKE = 1, INDEX_KEYPAIR = 2 };

struct wg_index_entry {
	uint32_t key;
	uint8_t kind;		/* 0: free slot */
	struct wg_peer *peer;
	struct noise_keypair *kp;
};

struct wg_index {
	struct wg_index_entry *slots;
	uint32_t mask;
	uint32_t used;
};

bool wg_index_init(struct wg_index *ix);
void wg_index_free(struct wg_index *ix);
/* A fresh random index naming (kind, peer, kp); false on ENOMEM. */
bool wg_index_new(struct wg_index *ix, uint32_t *key, enum wg_index_kind kind,
		  struct wg_peer *peer, struct noise_keypair *kp);
struct wg_index_entry *wg_index_find(struct wg_index *ix, uint32_t key);
void wg_index_del(struct wg_index *ix, uint32_t key);

#endif
