/* A hash map from byte strings to 32-bit values, for the policy's indexes:
 * names, public keys, addresses. Open addressing with linear probing, at
 * most half full, deletion by backward shift (no tombstones). The input is
 * the operator's own file, so an unkeyed hash (FNV-1a) is enough.
 */
#include "policy/internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static bool same(const struct xb_map_slot *s, const void *key, size_t len)
{
	return s->len == len && !memcmp(s->key, key, len);
}

static bool resize(struct xb_map *m, size_t cap)
{
	struct xb_map_slot *old = m->v, *v = calloc(cap, sizeof(*v));
	size_t old_cap = m->cap;

	if (!v)
		return false;
	m->v = v;
	m->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;

		if (!old[i].key)
			continue;
		for (j = hash(old[i].key, old[i].len) & (cap - 1); v[j].key; j = (j + 1) & (cap - 1))
			;
		v[j] = old[i];
	}
	free(old);
	return true;
}

bool xbp_map_put(struct xb_map *m, const void *key, size_t len, uint32_t val, uint32_t *old)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap && !resize(m, m->cap ? 2 * m->cap : 16)) {
		*old = UINT32_MAX;
		return false;
	}
	for (i = hash(key, len) & (m->cap - 1); m->v[i].key; i = (i + 1) & (m->cap - 1)) {
		if (same(&m->v[i], key, len)) {
			*old = m->v[i].val;
			return false;
		}
	}
	m->v[i] = (struct xb_map_slot){ key, (uint32_t)len, val };
	m->n++;
	return true;
}

static size_t find(const struct xb_map *m, const void *key, size_t len)
{
	if (!m->cap)
		return SIZE_MAX;
	for (size_t i = hash(key, len) & (m->cap - 1); m->v[i].key; i = (i + 1) & (m->cap - 1))
		if (same(&m->v[i], key, len))
			return i;
	return SIZE_MAX;
}

bool xbp_map_get(const struct xb_map *m, const void *key, size_t len, uint32_t *val)
{
	size_t i = find(m, key, len);

	if (i == SIZE_MAX)
		return false;
	*val = m->v[i].val;
	return true;
}

/* Backward shift: move later members of the probe run into the hole when
 * their home slot is at or before it (cyclically). */
void xbp_map_del(struct xb_map *m, const void *key, size_t len)
{
	size_t mask = m->cap - 1, i = find(m, key, len), j;

	if (i == SIZE_MAX)
		return;
	for (j = (i + 1) & mask; m->v[j].key; j = (j + 1) & mask) {
		size_t home = hash(m->v[j].key, m->v[j].len) & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->v[i] = m->v[j];
			i = j;
		}
	}
	m->v[i].key = NULL;
	m->n--;
}

void xbp_map_free(struct xb_map *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}
