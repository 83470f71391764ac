/* Peers: creation, lookup by public key, keypair rotation, staged packets. */
#include "tunnel/device.h"
#include "tunnel/aead.h"
#include "common/clock.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static uint32_t key_hash(const uint8_t pub[NOISE_PUBLIC_KEY_LEN])
{
	uint32_t h;

	/* Public keys are uniformly random; their first bytes are a fine hash. */
	memcpy(&h, pub, sizeof(h));
	return h & (WG_PEER_HASH - 1);
}

struct wg_peer *wg_peer_lookup(struct wg_device *dev, const uint8_t pub[NOISE_PUBLIC_KEY_LEN])
{
	for (struct wg_peer *p = dev->peer_hash[key_hash(pub)]; p; p = p->hash_next)
		if (!sodium_memcmp(p->handshake.remote_static, pub, NOISE_PUBLIC_KEY_LEN))
			return p;
	return NULL;
}

struct wg_peer *wg_peer_create(struct wg_device *dev, const uint8_t pub[NOISE_PUBLIC_KEY_LEN])
{
	struct wg_peer *p = calloc(1, sizeof(*p));
	uint32_t h = key_hash(pub);

	if (!p)
		return NULL;
	p->dev = dev;
	noise_handshake_init(&p->handshake, &dev->identity, pub, NULL);
	wg_cookie_init(&p->cookie, pub);
	p->hash_next = dev->peer_hash[h];
	dev->peer_hash[h] = p;
	p->prev = dev->peers_tail;
	if (dev->peers_tail)
		dev->peers_tail->next = p;
	else
		dev->peers = p;
	dev->peers_tail = p;
	dev->n_peers++;
	return p;
}

static void keypair_free(struct wg_device *dev, struct noise_keypair *kp)
{
	if (!kp)
		return;
	wg_index_del(&dev->index, kp->local_index);
	sodium_memzero(kp, sizeof(*kp));
	free(kp);
	xb_aead_forget();	/* this thread's libcrypto context may hold its key */
}

/* Free the index idx if it still names this peer's pending handshake (once
 * the session is derived the same index names the keypair: keep it). */
void wg_peer_unindex_handshake(struct wg_peer *peer, uint32_t idx)
{
	struct wg_index_entry *e = wg_index_find(&peer->dev->index, idx);

	if (e && e->kind == INDEX_HANDSHAKE && e->peer == peer)
		wg_index_del(&peer->dev->index, idx);
}

/* Forget the pending handshake: its index and its ephemeral state. */
void wg_peer_clear_handshake(struct wg_peer *peer)
{
	if (peer->handshake.state != HANDSHAKE_ZEROED)
		wg_peer_unindex_handshake(peer, peer->handshake.local_index);
	noise_handshake_clear(&peer->handshake);
}

void wg_peer_clear_keypairs(struct wg_peer *peer)
{
	keypair_free(peer->dev, peer->previous);
	keypair_free(peer->dev, peer->current);
	keypair_free(peer->dev, peer->next_kp);
	peer->previous = peer->current = peer->next_kp = NULL;
}

/* Make the next send start a handshake at once (the device key changed). */
void wg_peer_expire_keypairs(struct wg_peer *peer)
{
	peer->last_sent_handshake_ns = 0;
	wg_peer_clear_handshake(peer);
	if (peer->current)
		peer->current->sending_valid = false;
	if (peer->next_kp)
		peer->next_kp->sending_valid = false;
}

void wg_peer_purge_staged(struct wg_peer *peer)
{
	for (unsigned i = 0; i < peer->n_staged; i++)
		free(peer->staged[i]);
	peer->n_staged = 0;
}

void wg_peer_remove(struct wg_peer *peer)
{
	struct wg_device *dev = peer->dev;
	struct wg_peer **pp = &dev->peer_hash[key_hash(peer->handshake.remote_static)];

	while (*pp != peer)
		pp = &(*pp)->hash_next;
	*pp = peer->hash_next;
	if (peer->prev)
		peer->prev->next = peer->next;
	else
		dev->peers = peer->next;
	if (peer->next)
		peer->next->prev = peer->prev;
	else
		dev->peers_tail = peer->prev;
	dev->n_peers--;
	wg_allowedips_remove_peer(&dev->allowedips, peer);
	wg_peer_clear_handshake(peer);
	wg_peer_clear_keypairs(peer);
	wg_peer_purge_staged(peer);
	sodium_memzero(peer, sizeof(*peer));
	free(peer);
}

/* Packets waiting for a session; the oldest goes when the queue is full. */
bool wg_peer_stage(struct wg_peer *peer, const uint8_t *pkt, size_t len)
{
	struct wg_staged *s = malloc(sizeof(*s) + len);

	if (!s)
		return false;
	s->len = (uint16_t)len;
	if (len)
		memcpy(s->data, pkt, len);
	if (peer->n_staged == MAX_STAGED_PACKETS) {
		free(peer->staged[0]);
		memmove(peer->staged, peer->staged + 1, (MAX_STAGED_PACKETS - 1) * sizeof(peer->staged[0]));
		peer->n_staged--;
	}
	peer->staged[peer->n_staged++] = s;
	return true;
}

/* A fresh keypair: the initiator uses it at once (it holds the responder's
 * confirmation); the responder keeps it as "next" until the initiator's
 * first data message confirms it. */
void wg_peer_install_keypair(struct wg_peer *peer, struct noise_keypair *kp)
{
	struct wg_device *dev = peer->dev;

	if (kp->i_am_initiator) {
		if (peer->next_kp) {
			keypair_free(dev, peer->previous);
			peer->previous = peer->next_kp;
			peer->next_kp = NULL;
			keypair_free(dev, peer->current);
		} else {
			keypair_free(dev, peer->previous);
			peer->previous = peer->current;
		}
		peer->current = kp;
	} else {
		keypair_free(dev, peer->next_kp);
		peer->next_kp = kp;
		keypair_free(dev, peer->previous);
		peer->previous = NULL;
	}
}

/* True when kp was the pending "next" keypair and is now current. */
bool wg_peer_received_with_keypair(struct wg_peer *peer, struct noise_keypair *kp)
{
	if (kp != peer->next_kp)
		return false;
	keypair_free(peer->dev, peer->previous);
	peer->previous = peer->current;
	peer->current = kp;
	peer->next_kp = NULL;
	return true;
}

bool wg_keypair_usable(const struct wg_device *dev, const struct noise_keypair *kp, uint64_t now)
{
	return kp && kp->sending_valid &&
	       now - kp->birthdate_ns < (uint64_t)dev->timing.reject_after_time * NSEC_PER_SEC &&
	       atomic_load(&kp->send_counter) < REJECT_AFTER_MESSAGES;
}
