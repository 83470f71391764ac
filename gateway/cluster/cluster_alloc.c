/* Pool allocations shared (cluster.h, docs/ha.md "Pool allocations").
 *
 * The store is the arbiter, the state file the durable copy: allocation
 * runs at policy load (policy/alloc.c) from the copy as it is then, so the
 * first start of a gateway allocates from its file alone. Afterwards each
 * pool address the policy in force gives is written create-if-absent (CAS
 * at mod_revision 0): the first gateway to write an address wins it, for
 * every gateway — etcd orders the writes, so the outcome is one for all.
 * A gateway that finds its device's address won by another device keeps
 * it (a device in session is never re-addressed under its feet) and says
 * so; its next reload takes the store's word: the device it names gets the
 * address, ours the next free one. */
#include "gateway/cluster/cluster_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static bool alloc_key(const struct xb_cluster *c, int family, const uint8_t *addr, char *key,
		      size_t len)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_ALLOC, .family = family };

	memcpy(k.addr, addr, family == AF_INET ? 4 : 16);
	return xb_cluster_kv_key_make(key, len, c->cfg->prefix, &k) != 0;
}

static void conflict(struct xb_cluster *c, struct want *w, const struct entry *e)
{
	char a[INET6_ADDRSTRLEN];

	if (w->warned)
		return;
	w->warned = true;
	c->stat.alloc_conflicts++;
	inet_ntop(w->family, w->addr, a, sizeof(a));
	log_warnx("cluster: device %s has %s here, but the cluster gave it to device %s (gateway "
		  "%s) first: %s keeps it until the next reload, which gives it another address",
		  w->device, a, e->alloc.device, e->alloc.node, w->device);
}

/* What our wants say of the copy's entry e: a conflict when it names
 * another device. */
static void check(struct xb_cluster *c, const struct entry *e)
{
	for (size_t i = 0; i < c->n_want; i++) {
		struct want *w = &c->want[i];

		if (w->family == e->k.family && !memcmp(w->addr, e->k.addr, 16) &&
		    strcmp(w->device, e->alloc.device))
			conflict(c, w, e);
	}
}

void cluster_alloc_put(struct xb_cluster *c, struct entry *e, const struct xb_etcd_kv *kv)
{
	char err[256];

	if (xb_cluster_kv_alloc_decode(kv->val, kv->vlen, &e->alloc, err, sizeof(err)) < 0) {
		c->stat.bad++;
		if (log_ratelimit(&c->rl))
			log_warnx("cluster: key %.*s: %s; skipped", (int)(kv->klen < 200 ? kv->klen : 200),
				  kv->key, err);
		return;
	}
	e->valid = true;
	strcpy(e->node, e->alloc.node);
	check(c, e);
}

static void on_alloc(void *ctx, const struct xb_etcd_result *r)
{
	struct op *o = ctx;
	struct xb_cluster *c = o->c;
	struct entry *e;
	char err[128];

	if (!r->err && r->succeeded && o->val && (e = cluster_find_or_add(c, o->val, strlen(o->val)))) {
		/* o->val is the key; the value is ours */
		xb_cluster_kv_key_parse(c->cfg->prefix, o->val, strlen(o->val), &e->k, err, sizeof(err));
		e->mod_rev = r->revision;
		e->valid = true;
		snprintf(e->alloc.device, sizeof(e->alloc.device), "%s", o->device);
		snprintf(e->alloc.node, sizeof(e->alloc.node), "%s", c->cfg->node);
		strcpy(e->node, e->alloc.node);
	} else if (!r->err && !r->succeeded) {
		c->stat.cas_lost++;
		if (r->n_kvs)
			cluster_put(c, &r->kvs[0]);	/* the winner: a conflict when not ours */
	}
	cluster_op_free(o);		/* an error: tried again at the next tick */
}

static bool in_flight(const struct xb_cluster *c, const char *key)
{
	for (const struct op *o = c->ops_list.next; o != &c->ops_list; o = o->next)
		if (o->type == OP_ALLOC && o->val && !strcmp(o->val, key))
			return true;
	return false;
}

static void publish_one(struct xb_cluster *c, struct want *w)
{
	struct xb_cluster_kv_alloc v;
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_ALLOC, .family = w->family };
	char key[KEY_MAX], *val;
	struct entry *e;
	struct op *o;

	memcpy(k.addr, w->addr, 16);
	if (!alloc_key(c, w->family, w->addr, key, sizeof(key)) || in_flight(c, key))
		return;
	e = cluster_find(c, &k);
	if (e && e->valid) {
		if (strcmp(e->alloc.device, w->device))
			conflict(c, w, e);
		return;
	}
	snprintf(v.device, sizeof(v.device), "%s", w->device);
	snprintf(v.node, sizeof(v.node), "%s", c->cfg->node);
	if (!(val = xb_cluster_kv_alloc_encode(&v)))
		return;
	if ((o = cluster_op_new(c, OP_ALLOC)) && (o->val = strdup(key))) {
		snprintf(o->device, sizeof(o->device), "%s", w->device);
		/* A value there that did not decode (hostile) is overwritten. */
		if (xb_etcd_cas(c->etcd, key, strlen(key), e ? e->mod_rev : 0, val, strlen(val), 0,
				on_alloc, o) < 0)
			cluster_op_free(o);
	} else if (o) {
		cluster_op_free(o);
	}
	free(val);
}

void cluster_alloc_publish(struct xb_cluster *c)
{
	for (size_t i = 0; i < c->n_want; i++)
		publish_one(c, &c->want[i]);
}

static bool want_add(struct xb_cluster *c, const char *device, int family, const void *addr)
{
	struct want *v = realloc(c->want, (c->n_want + 1) * sizeof(*v));

	if (!v)
		return false;
	c->want = v;
	v = &v[c->n_want++];
	memset(v, 0, sizeof(*v));
	snprintf(v->device, sizeof(v->device), "%s", device);
	v->family = family;
	memcpy(v->addr, addr, family == AF_INET ? 4 : 16);
	return true;
}

void xb_cluster_set_allocations(struct xb_cluster *c, const struct xb_policy *p)
{
	bool ok = true;

	free(c->want);
	c->want = NULL;
	c->n_want = 0;
	for (size_t i = 0; ok && i < p->n_devices; i++) {
		const struct xb_device *d = &p->devices[i];

		if (d->has4 && !d->fixed4)
			ok = want_add(c, d->name, AF_INET, &d->address4);
		if (ok && d->has6 && !d->fixed6)
			ok = want_add(c, d->name, AF_INET6, &d->address6);
	}
	if (!ok)
		log_warnx("cluster: out of memory: pool allocations not all published");
	if (c->up && c->synced)
		cluster_alloc_publish(c);
}

int xb_cluster_foreach_alloc(struct xb_cluster *c,
			     int (*fn)(void *ctx, const char *device, int family, const uint8_t *addr),
			     void *ctx)
{
	int rc;

	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *e = c->tab[b]; e; e = e->next)
			if (e->valid && e->k.kind == XB_CLUSTER_KV_ALLOC &&
			    (rc = fn(ctx, e->alloc.device, e->k.family, e->k.addr)))
				return rc;
	return 0;
}
