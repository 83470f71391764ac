/* Handshake rate limiter; see ratelimiter.h.
 *
 * Open addressing over a fixed table. Entries idle for a second are dropped
 * by rebuilding the table at most once a second, which keeps probing simple
 * (no tombstones). The table holds at most half its slots.
 */
#include "tunnel/ratelimiter.h"
#include "common/clock.h"

#include <stdlib.h>
#include <string.h>

#define PACKET_COST (NSEC_PER_SEC / RATELIMITER_PACKETS_PER_SECOND)
#define TOKEN_MAX (PACKET_COST * RATELIMITER_BURST)
#define MAX_USED (RATELIMITER_SLOTS / 2)

bool wg_ratelimiter_init(struct wg_ratelimiter *r)
{
	memset(r, 0, sizeof(*r));
	r->slots = calloc(RATELIMITER_SLOTS, sizeof(*r->slots));
	pthread_mutex_init(&r->lock, NULL);
	return r->slots != NULL;
}

void wg_ratelimiter_free(struct wg_ratelimiter *r)
{
	free(r->slots);
	r->slots = NULL;
	pthread_mutex_destroy(&r->lock);
}

static void make_key(uint8_t key[9], const union xb_sockaddr *src)
{
	memset(key, 0, 9);
	if (src->sa.sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &src->in.sin_addr, 4);
	} else {
		key[0] = 6;
		memcpy(key + 1, &src->in6.sin6_addr, 8);
	}
}

static uint32_t slot_of(const uint8_t key[9])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 9; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (RATELIMITER_SLOTS - 1);
}

static struct wg_ratelimiter_entry *find(struct wg_ratelimiter *r, const uint8_t key[9], bool *found)
{
	for (uint32_t i = slot_of(key), n = 0; n < RATELIMITER_SLOTS; i = (i + 1) & (RATELIMITER_SLOTS - 1), n++) {
		struct wg_ratelimiter_entry *e = &r->slots[i];
		if (!e->used) {
			*found = false;
			return e;
		}
		if (!memcmp(e->key, key, 9)) {
			*found = true;
			return e;
		}
	}
	*found = false;
	return NULL;
}

static void gc(struct wg_ratelimiter *r, uint64_t now)
{
	struct wg_ratelimiter_entry *old = r->slots;
	struct wg_ratelimiter_entry *fresh = calloc(RATELIMITER_SLOTS, sizeof(*fresh));
	bool found;

	r->last_gc_ns = now;
	if (!fresh)
		return;
	r->slots = fresh;
	r->used = 0;
	for (uint32_t i = 0; i < RATELIMITER_SLOTS; i++) {
		if (!old[i].used || now - old[i].last_ns >= NSEC_PER_SEC)
			continue;
		*find(r, old[i].key, &found) = old[i];
		r->used++;
	}
	free(old);
}

bool wg_ratelimiter_allow(struct wg_ratelimiter *r, const union xb_sockaddr *src, uint64_t now)
{
	struct wg_ratelimiter_entry *e;
	uint8_t key[9];
	bool found, ok = false;

	make_key(key, src);
	pthread_mutex_lock(&r->lock);
	if (now - r->last_gc_ns >= NSEC_PER_SEC)
		gc(r, now);
	e = find(r, key, &found);
	if (found) {
		uint64_t tokens = e->tokens + (now - e->last_ns);
		if (tokens > TOKEN_MAX)
			tokens = TOKEN_MAX;
		e->last_ns = now;
		if (tokens >= PACKET_COST) {
			e->tokens = tokens - PACKET_COST;
			ok = true;
		} else {
			e->tokens = tokens;
		}
	} else if (e && r->used < MAX_USED) {
		memcpy(e->key, key, 9);
		e->used = true;
		e->last_ns = now;
		e->tokens = TOKEN_MAX - PACKET_COST;
		r->used++;
		ok = true;
	}
	pthread_mutex_unlock(&r->lock);
	return ok;
}
