/* Per-device request budgets; see posture_rate.h.
 *
 * Tokens are kept in millitokens (integer arithmetic, no drift): a bucket
 * refills rate * 1000 millitokens a second up to burst * 1000. Entries sit
 * in a search tree by name and on a list for the sweep, which runs at most
 * once a second of `now' and drops every entry that is full again: such a
 * device is indistinguishable from one never seen.
 */
#include "gateway/posture/posture_rate.h"

#include <search.h>
#include <stdlib.h>
#include <string.h>

#define MILLI 1000u
#define SWEEP_NS 1000000000ULL

struct bucket {
	uint64_t tokens;	/* millitokens at `at' */
	uint64_t at;
	struct bucket *prev, *next;
	char name[];
};

struct xb_posture_rate {
	void *tree;
	struct bucket *head;
	size_t count;
	uint64_t rate, cap;	/* millitokens a second, and at most */
	uint64_t swept;
};

static int cmp(const void *a, const void *b)
{
	return strcmp(((const struct bucket *)a)->name, ((const struct bucket *)b)->name);
}

struct xb_posture_rate *xb_posture_rate_new(unsigned rate, unsigned burst)
{
	struct xb_posture_rate *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->rate = (uint64_t)(rate ? rate : 1) * MILLI;
	r->cap = (uint64_t)(burst ? burst : 1) * MILLI;
	return r;
}

/* b's tokens at now (time never runs back: a stale now refills nothing). */
static uint64_t refill(const struct xb_posture_rate *r, struct bucket *b, uint64_t now)
{
	uint64_t dt = now > b->at ? now - b->at : 0;
	/* Past the time a full refill takes, the bucket is full: no overflow. */
	uint64_t add = dt >= r->cap * 1000000000ULL / r->rate ? r->cap :
		       dt * r->rate / 1000000000ULL;

	b->tokens = b->tokens + add > r->cap ? r->cap : b->tokens + add;
	if (add)
		b->at = now;
	return b->tokens;
}

static void drop(struct xb_posture_rate *r, struct bucket *b)
{
	tdelete(b, &r->tree, cmp);
	*(b->prev ? &b->prev->next : &r->head) = b->next;
	if (b->next)
		b->next->prev = b->prev;
	r->count--;
	free(b);
}

static void sweep(struct xb_posture_rate *r, uint64_t now)
{
	struct bucket *b, *next;

	if (now - r->swept < SWEEP_NS)
		return;
	r->swept = now;
	for (b = r->head; b; b = next) {
		next = b->next;
		if (refill(r, b, now) == r->cap)
			drop(r, b);
	}
}

static struct bucket *get(struct xb_posture_rate *r, const char *name, uint64_t now)
{
	size_t len = strlen(name) + 1;
	struct bucket *b = malloc(sizeof(*b) + len), **found;

	if (!b)
		return NULL;
	memcpy(b->name, name, len);
	found = tsearch(b, &r->tree, cmp);
	if (!found) {
		free(b);
		return NULL;
	}
	if (*found != b) {
		free(b);
		return *found;
	}
	b->tokens = r->cap;
	b->at = now;
	b->prev = NULL;
	b->next = r->head;
	if (r->head)
		r->head->prev = b;
	r->head = b;
	r->count++;
	return b;
}

bool xb_posture_rate_take(struct xb_posture_rate *r, const char *device, uint64_t now)
{
	struct bucket *b;

	sweep(r, now);
	if (!(b = get(r, device, now)) || refill(r, b, now) < MILLI)
		return false;
	b->tokens -= MILLI;
	return true;
}

size_t xb_posture_rate_count(const struct xb_posture_rate *r)
{
	return r->count;
}

void xb_posture_rate_free(struct xb_posture_rate *r)
{
	if (!r)
		return;
	while (r->head)
		drop(r, r->head);
	free(r);
}
