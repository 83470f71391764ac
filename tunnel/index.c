/* Index table: open addressing, linear probing, backward-shift deletion
 * (no tombstones), grown at 1/2 load. Keys are random, so a multiplicative
 * hash spreads them well enough. */
#include "tunnel/index.h"

#include <sodium.h>
#include <stdlib.h>

#define INITIAL_SLOTS 64

static uint32_t home(const struct wg_index *ix, uint32_t key)
{
	return (uint32_t)((key * 2654435769u) & ix->mask);
}

bool wg_index_init(struct wg_index *ix)
{
	ix->slots = calloc(INITIAL_SLOTS, sizeof(*ix->slots));
	ix->mask = INITIAL_SLOTS - 1;
	ix->used = 0;
	return ix->slots != NULL;
}

void wg_index_free(struct wg_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
	ix->used = ix->mask = 0;
}

static struct wg_index_entry *probe(struct wg_index *ix, uint32_t key)
{
	for (uint32_t i = home(ix, key);; i = (i + 1) & ix->mask)
		if (!ix->slots[i].kind || ix->slots[i].key == key)
			return &ix->slots[i];
}

static bool grow(struct wg_index *ix)
{
	struct wg_index_entry *old = ix->slots;
	uint32_t n = ix->mask + 1;
	struct wg_index_entry *fresh = calloc(2 * (size_t)n, sizeof(*fresh));

	if (!fresh)
		return false;
	ix->slots = fresh;
	ix->mask = 2 * n - 1;
	for (uint32_t i = 0; i < n; i++)
		if (old[i].kind)
			*probe(ix, old[i].key) = old[i];
	free(old);
	return true;
}

bool wg_index_new(struct wg_index *ix, uint32_t *key, enum wg_index_kind kind,
		  struct wg_peer *peer, struct noise_keypair *kp)
{
	struct wg_index_entry *e;

	if (2 * (ix->used + 1) > ix->mask + 1 && !grow(ix))
		return false;
	do {
		*key = randombytes_random();
		e = probe(ix, *key);
	} while (e->kind);
	*e = (struct wg_index_entry){ *key, (uint8_t)kind, peer, kp };
	ix->used++;
	return true;
}

struct wg_index_entry *wg_index_find(struct wg_index *ix, uint32_t key)
{
	struct wg_index_entry *e = probe(ix, key);

	return e->kind ? e : NULL;
}

void wg_index_del(struct wg_index *ix, uint32_t key)
{
	struct wg_index_entry *e = probe(ix, key);
	uint32_t i, j;

	if (!e->kind)
		return;
	i = (uint32_t)(e - ix->slots);
	e->kind = 0;
	ix->used--;
	/* Shift back every following entry that may no longer be reachable. */
	for (j = (i + 1) & ix->mask; ix->slots[j].kind; j = (j + 1) & ix->mask) {
		uint32_t h = home(ix, ix->slots[j].key);
		bool between = i <= j ? (i < h && h <= j) : (i < h || h <= j);
		if (between)
			continue;
		ix->slots[i] = ix->slots[j];
		ix->slots[j].kind = 0;
		i = j;
	}
}
