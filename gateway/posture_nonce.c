/* Report nonces; see posture_nonce.h.
 *
 * Every issued nonce sits in a ring in issue order; with one ttl for all,
 * that is also expiry order, so expiry pops from the head. A nonce that is
 * used or evicted is only marked dead and leaves the ring when it reaches the
 * head. Lookup is by two search trees (tsearch): nonce bytes -> nonce, device
 * name -> the device's live (unused, unexpired) nonces, oldest first.
 */
#include "gateway/posture_nonce.h"

#include <search.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct dev;

struct nonce {
	uint8_t id[XB_PNONCE_BYTES];
	uint64_t expires;
	struct dev *dev;	/* NULL once dead (used, evicted) */
};

struct dev {
	char *name;
	unsigned n;
	struct nonce *live[];	/* per_device slots, oldest first */
};

struct xb_pnonce {
	void *by_id, *by_dev;
	struct nonce **ring;
	size_t cap, head, count;
	unsigned per_dev;
	uint64_t ttl;
};

static int cmp_id(const void *a, const void *b)
{
	return memcmp(((const struct nonce *)a)->id, ((const struct nonce *)b)->id,
		      XB_PNONCE_BYTES);
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct dev *)a)->name, ((const struct dev *)b)->name);
}

struct xb_pnonce *xb_pnonce_new(uint64_t ttl_ns, unsigned per_device, size_t total)
{
	struct xb_pnonce *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = total ? total : 1;
	t->per_dev = per_device ? per_device : 1;
	t->ttl = ttl_ns;
	t->ring = calloc(t->cap, sizeof(*t->ring));
	if (!t->ring) {
		free(t);
		return NULL;
	}
	return t;
}

/* Take n out of its device's live list (and the device out of the tree when
 * that empties) and out of the id tree: it is dead from now on. */
static void kill_nonce(struct xb_pnonce *t, struct nonce *n)
{
	struct dev *d = n->dev;
	unsigned i;

	if (!d)
		return;
	tdelete(n, &t->by_id, cmp_id);
	for (i = 0; i < d->n && d->live[i] != n; i++)
		;
	if (i < d->n) {
		memmove(&d->live[i], &d->live[i + 1], (d->n - i - 1) * sizeof(d->live[0]));
		d->n--;
	}
	n->dev = NULL;
	if (d->n == 0) {
		tdelete(d, &t->by_dev, cmp_dev);
		free(d->name);
		free(d);
	}
}

static void expire(struct xb_pnonce *t, uint64_t now)
{
	while (t->count) {
		struct nonce *n = t->ring[t->head];

		if (n->expires > now)
			break;
		kill_nonce(t, n);
		free(n);
		t->head = (t->head + 1) % t->cap;
		t->count--;
	}
}

static struct dev *device(struct xb_pnonce *t, const char *name)
{
	struct dev key = { .name = (char *)name }, *d, **found;

	found = tfind(&key, &t->by_dev, cmp_dev);
	if (found)
		return *found;
	d = calloc(1, sizeof(*d) + t->per_dev * sizeof(d->live[0]));
	if (!d || !(d->name = strdup(name)) || !tsearch(d, &t->by_dev, cmp_dev)) {
		if (d)
			free(d->name);
		free(d);
		return NULL;
	}
	return d;
}

int xb_pnonce_issue(struct xb_pnonce *t, const char *name, uint64_t now, char *hex)
{
	struct nonce *n;
	struct dev *d;

	expire(t, now);
	if (t->count == t->cap || !(n = calloc(1, sizeof(*n))))
		return -1;
	do
		randombytes_buf(n->id, sizeof(n->id));
	while (tfind(n, &t->by_id, cmp_id));
	d = device(t, name);
	if (d && d->n == t->per_dev) {
		kill_nonce(t, d->live[0]);	/* may free d (per_device 1) */
		d = device(t, name);
	}
	if (!d || !tsearch(n, &t->by_id, cmp_id)) {
		free(n);	/* a device just created holds nothing: harmless */
		return -1;
	}
	n->expires = now + t->ttl;
	n->dev = d;
	d->live[d->n++] = n;
	t->ring[(t->head + t->count++) % t->cap] = n;
	sodium_bin2hex(hex, XB_PNONCE_HEX + 1, n->id, sizeof(n->id));
	return 0;
}

bool xb_pnonce_take(struct xb_pnonce *t, const char *name, const char *hex, uint64_t now)
{
	struct nonce key, **found;
	size_t len;

	if (strlen(hex) != XB_PNONCE_HEX ||
	    sodium_hex2bin(key.id, sizeof(key.id), hex, XB_PNONCE_HEX, NULL, &len, NULL) ||
	    len != sizeof(key.id))
		return false;
	expire(t, now);
	found = tfind(&key, &t->by_id, cmp_id);
	if (!found || (*found)->expires <= now || strcmp((*found)->dev->name, name))
		return false;
	kill_nonce(t, *found);
	return true;
}

size_t xb_pnonce_count(const struct xb_pnonce *t)
{
	return t->count;
}

static void nothing(void *p)
{
	(void)p;
}

static void free_dev(void *p)
{
	struct dev *d = p;

	free(d->name);
	free(d);
}

void xb_pnonce_free(struct xb_pnonce *t)
{
	if (!t)
		return;
	tdestroy(t->by_id, nothing);
	tdestroy(t->by_dev, free_dev);
	for (; t->count; t->count--) {
		free(t->ring[t->head]);
		t->head = (t->head + 1) % t->cap;
	}
	free(t->ring);
	free(t);
}
