/* Report nonces; see posture_nonce.h.
 *
 * Every live nonce (issued, not used, evicted or expired) is on a list in
 * issue order; with one ttl for all, that is also expiry order, so expiry
 * pops from the head. A nonce that is used or evicted leaves the list, and
 * its slot of `total', at once: a slot is held only by a nonce a device can
 * still use, and a device can hold at most per_device of them, so no device
 * can take the slots of others. Lookup is by two search trees (tsearch):
 * nonce bytes -> nonce, device name -> the device's live nonces, oldest
 * first.
 */
#include "gateway/posture/posture_nonce.h"

#include <search.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct dev;

struct nonce {
	uint8_t id[XB_POSTURE_NONCE_BYTES];
	uint64_t expires;
	struct dev *dev;
	struct nonce *prev, *next;	/* issue order */
};

struct dev {
	char *name;
	unsigned n;
	struct nonce *live[];	/* per_device slots, oldest first */
};

struct xb_posture_nonce {
	void *by_id, *by_dev;
	struct nonce *head, *tail;
	size_t cap, count;
	unsigned per_dev;
	uint64_t ttl;
};

static int cmp_id(const void *a, const void *b)
{
	return memcmp(((const struct nonce *)a)->id, ((const struct nonce *)b)->id,
		      XB_POSTURE_NONCE_BYTES);
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct dev *)a)->name, ((const struct dev *)b)->name);
}

struct xb_posture_nonce *xb_posture_nonce_new(uint64_t ttl_ns, unsigned per_device, size_t total)
{
	struct xb_posture_nonce *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = total ? total : 1;
	t->per_dev = per_device ? per_device : 1;
	t->ttl = ttl_ns;
	return t;
}

static void drop_dev(struct xb_posture_nonce *t, struct dev *d)
{
	tdelete(d, &t->by_dev, cmp_dev);
	free(d->name);
	free(d);
}

/* Take n out of everything (its device too, when that was its last) and
 * free it: its slot is free from now on. */
static void kill_nonce(struct xb_posture_nonce *t, struct nonce *n)
{
	struct dev *d = n->dev;
	unsigned i;

	tdelete(n, &t->by_id, cmp_id);
	for (i = 0; i < d->n && d->live[i] != n; i++)
		;
	if (i < d->n) {
		memmove(&d->live[i], &d->live[i + 1], (d->n - i - 1) * sizeof(d->live[0]));
		d->n--;
	}
	if (d->n == 0)
		drop_dev(t, d);
	*(n->prev ? &n->prev->next : &t->head) = n->next;
	*(n->next ? &n->next->prev : &t->tail) = n->prev;
	t->count--;
	free(n);
}

static void expire(struct xb_posture_nonce *t, uint64_t now)
{
	while (t->head && t->head->expires <= now)
		kill_nonce(t, t->head);
}

static struct dev *find_dev(struct xb_posture_nonce *t, const char *name)
{
	struct dev key = { .name = (char *)name }, **found = tfind(&key, &t->by_dev, cmp_dev);

	return found ? *found : NULL;
}

static struct dev *new_dev(struct xb_posture_nonce *t, const char *name)
{
	struct dev *d = calloc(1, sizeof(*d) + t->per_dev * sizeof(d->live[0]));

	if (!d || !(d->name = strdup(name)) || !tsearch(d, &t->by_dev, cmp_dev)) {
		if (d)
			free(d->name);
		free(d);
		return NULL;
	}
	return d;
}

int xb_posture_nonce_issue(struct xb_posture_nonce *t, const char *name, uint64_t now, char *hex)
{
	struct dev *d;
	struct nonce *n;

	expire(t, now);
	/* A device at its budget gives up its oldest first (which may free
	 * d): its own slot, whatever the others hold. */
	if ((d = find_dev(t, name)) && d->n == t->per_dev) {
		kill_nonce(t, d->live[0]);
		d = find_dev(t, name);
	}
	if (t->count == t->cap || !(n = calloc(1, sizeof(*n))))
		return -1;
	do
		randombytes_buf(n->id, sizeof(n->id));
	while (tfind(n, &t->by_id, cmp_id));
	if (!d && !(d = new_dev(t, name))) {
		free(n);
		return -1;
	}
	if (!tsearch(n, &t->by_id, cmp_id)) {
		if (d->n == 0)
			drop_dev(t, d);
		free(n);
		return -1;
	}
	n->expires = now + t->ttl;
	n->dev = d;
	d->live[d->n++] = n;
	n->prev = t->tail;
	*(t->tail ? &t->tail->next : &t->head) = n;
	t->tail = n;
	t->count++;
	sodium_bin2hex(hex, XB_POSTURE_NONCE_HEX + 1, n->id, sizeof(n->id));
	return 0;
}

bool xb_posture_nonce_take(struct xb_posture_nonce *t, const char *name, const char *hex, uint64_t now)
{
	struct nonce key, **found;
	size_t len;

	if (strlen(hex) != XB_POSTURE_NONCE_HEX ||
	    sodium_hex2bin(key.id, sizeof(key.id), hex, XB_POSTURE_NONCE_HEX, NULL, &len, NULL) ||
	    len != sizeof(key.id))
		return false;
	expire(t, now);
	found = tfind(&key, &t->by_id, cmp_id);
	if (!found || (*found)->expires <= now || strcmp((*found)->dev->name, name))
		return false;
	kill_nonce(t, *found);
	return true;
}

size_t xb_posture_nonce_count(const struct xb_posture_nonce *t)
{
	return t->count;
}

void xb_posture_nonce_free(struct xb_posture_nonce *t)
{
	if (!t)
		return;
	while (t->head)
		kill_nonce(t, t->head);
	free(t);
}
