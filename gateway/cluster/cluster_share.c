/* What the gateways share besides reports (cluster.h): learned
 * destinations and MDM pushes under leases per expiry bucket, and device
 * endpoints. A push accepted while etcd is away (or whose write fails) is
 * kept and published when etcd answers again, if its replay window is not
 * over; learned destinations and endpoints are not kept (the next answer,
 * the next tick, publish them again). */
#include "gateway/cluster/cluster_int.h"

#include <stdlib.h>
#include <string.h>

/* --- learned destinations ------------------------------------------------------ */

static struct bucket *bucket(struct xb_cluster *c, int64_t end)
{
	struct bucket *v;

	for (size_t i = 0; i < c->n_bk; i++)
		if (c->bk[i].end == end)
			return &c->bk[i];
	if (!(v = realloc(c->bk, (c->n_bk + 1) * sizeof(*v))))
		return NULL;
	c->bk = v;
	v[c->n_bk] = (struct bucket){ .end = end };
	return &v[c->n_bk++];
}

static void put_free(struct put *p)
{
	free(p->key);
	free(p->val);
	free(p);
}

static void mdm_wait(struct xb_cluster *c, struct put *p);
static void put_now(struct xb_cluster *c, struct put *p, int64_t lease);

static void on_lease(void *ctx, const struct xb_etcd_result *r)
{
	struct op *o = ctx;
	struct xb_cluster *c = o->c;
	struct bucket *b = bucket(c, o->bucket);
	struct put *p;

	cluster_op_free(o);
	if (!b)
		return;
	b->granting = false;
	if (!r->err)
		b->lease = r->lease_id;
	else if (log_ratelimit(&c->rl))
		log_warnx("cluster: a lease for learned destinations: %s", r->msg);
	while ((p = b->q)) {
		b->q = p->next;
		if (b->lease)
			put_now(c, p, b->lease);
		else if (p->mdm)
			mdm_wait(c, p);
		else
			put_free(p);
	}
}

static void on_mdm_put(void *ctx, const struct xb_etcd_result *r)
{
	struct op *o = ctx;
	struct put *p;

	if (r->err && (p = calloc(1, sizeof(*p)))) {
		p->key = o->key;
		p->val = o->val;
		p->until = o->bucket;
		p->mdm = true;
		o->key = o->val = NULL;
		mdm_wait(o->c, p);
	}
	cluster_op_free(o);
}

/* p written now under lease, and freed; a push's write that fails is kept. */
static void put_now(struct xb_cluster *c, struct put *p, int64_t lease)
{
	struct op *o;

	if (!p->mdm || !(o = cluster_op_new(c, OP_MDM))) {
		xb_etcd_put(c->etcd, p->key, strlen(p->key), p->val, strlen(p->val), lease, NULL, NULL);
		put_free(p);
		return;
	}
	o->key = p->key;
	o->val = p->val;
	o->bucket = p->until;
	free(p);
	if (xb_etcd_put(c->etcd, o->key, strlen(o->key), o->val, strlen(o->val), lease, on_mdm_put,
			o) < 0)
		cluster_op_free(o);
}

static void leased_put(struct xb_cluster *c, const char *key, char *val, int64_t expires,
		       bool mdm);

void xb_cluster_learned(void *ctx, const char *set, int family, const uint8_t *addr, uint32_t fp,
			int64_t expires)
{
	struct xb_cluster *c = ctx;
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_LEARNED, .family = family };
	struct xb_cluster_kv_learned v = { .expires = expires, .fp = fp };
	char key[KEY_MAX];
	struct entry *e;

	if (!c->up || !c->synced)
		return;		/* the others learn it from their own answers */
	snprintf(k.set, sizeof(k.set), "%s", set);
	memcpy(k.addr, addr, family == AF_INET ? 4 : 16);
	if (!xb_cluster_kv_key_make(key, sizeof(key), c->cfg->prefix, &k))
		return;
	e = cluster_find_or_add(c, key, strlen(key));
	if (!e || (e->valid && e->learned.expires >= expires && e->learned.fp == fp))
		return;
	snprintf(v.node, sizeof(v.node), "%s", c->cfg->node);
	e->k = k;
	e->learned = v;
	e->valid = true;
	strcpy(e->node, v.node);
	leased_put(c, key, xb_cluster_kv_learned_encode(&v), expires, false);
}

/* Put key=val (taken over) with the lease of the bucket `expires' is in,
 * granted first when the bucket has none yet. */
static void leased_put(struct xb_cluster *c, const char *key, char *val, int64_t expires,
		       bool mdm)
{
	struct bucket *b;
	struct put *p;
	struct op *o;

	if (!val || !(b = bucket(c, xb_cluster_kv_bucket(expires))) || !(p = calloc(1, sizeof(*p)))) {
		free(val);
		return;
	}
	p->val = val;
	p->until = expires;
	p->mdm = mdm;
	if (!(p->key = strdup(key))) {
		put_free(p);
		return;
	}
	if (b->lease) {
		put_now(c, p, b->lease);
		return;
	}
	p->next = b->q;
	b->q = p;
	if (b->granting || !(o = cluster_op_new(c, OP_LEASE)))
		return;
	o->bucket = b->end;
	/* To the bucket's end, and one bucket more: the value's own expiry is
	 * what counts; the lease only clears the store. */
	b->granting = xb_etcd_lease_grant(c->etcd, b->end - (int64_t)(cluster_now_ms() / 1000) +
					  XB_CLUSTER_KV_BUCKET_S, false, on_lease, o) == 0;
	if (!b->granting)
		cluster_op_free(o);
}

void xb_cluster_mdm(struct xb_cluster *c, const char *device, const char *key, const char *nonce,
		    int64_t until, json_t *attrs)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_MDM };
	struct xb_cluster_kv_mdm v = { .until = until, .attrs = attrs };
	char kb[KEY_MAX];
	struct put *p;

	snprintf(k.set, sizeof(k.set), "%s", key);
	snprintf(k.nonce, sizeof(k.nonce), "%s", nonce);
	snprintf(v.device, sizeof(v.device), "%s", device);
	snprintf(v.node, sizeof(v.node), "%s", c->cfg->node);
	if (!xb_cluster_kv_key_make(kb, sizeof(kb), c->cfg->prefix, &k))
		return;
	if (c->up && c->synced) {
		leased_put(c, kb, xb_cluster_kv_mdm_encode(&v), until, true);
		return;
	}
	if (!(p = calloc(1, sizeof(*p))) || !(p->key = strdup(kb)) ||
	    !(p->val = xb_cluster_kv_mdm_encode(&v))) {
		if (p)
			put_free(p);
		return;
	}
	p->until = until;
	p->mdm = true;
	mdm_wait(c, p);
}

static void mdm_wait(struct xb_cluster *c, struct put *p)
{
	if (c->n_mdm_wait >= MDM_WAITING_MAX) {
		if (log_ratelimit(&c->rl))
			log_warnx("cluster: %d MDM pushes wait for etcd: this one is not published",
				  MDM_WAITING_MAX);
		put_free(p);
		return;
	}
	p->next = c->mdm_wait;
	c->mdm_wait = p;
	c->n_mdm_wait++;
}

/* The pushes kept while etcd was away, each under its bucket's lease; one
 * whose replay window is over is dropped (its nonce is refused nowhere
 * any more, and its attributes' expiry is not later). */
void cluster_mdm_publish_waiting(struct xb_cluster *c)
{
	int64_t now = cluster_now_ms() / 1000;
	struct put *p, *list = c->mdm_wait;

	c->mdm_wait = NULL;
	c->n_mdm_wait = 0;
	while ((p = list)) {
		list = p->next;
		if (p->until <= now) {
			put_free(p);
			continue;
		}
		c->stat.mdm_published++;
		leased_put(c, p->key, p->val, p->until, true);
		p->val = NULL;
		put_free(p);
	}
}

/* Buckets whose leases have run out in etcd. */
void cluster_buckets_prune(struct xb_cluster *c)
{
	int64_t now = cluster_now_ms() / 1000;

	for (size_t i = 0; i < c->n_bk;)
		if (c->bk[i].end + XB_CLUSTER_KV_BUCKET_S < now && !c->bk[i].granting) {
			while (c->bk[i].q) {
				struct put *p = c->bk[i].q;

				c->bk[i].q = p->next;
				put_free(p);
			}
			c->bk[i] = c->bk[--c->n_bk];
		} else {
			i++;
		}
}

/* --- endpoints ------------------------------------------------------------------- */

static bool same_ep(const union xb_sockaddr *a, const union xb_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return a->in6.sin6_port == b->in6.sin6_port &&
	       !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
}

void cluster_endpoint_seen(void *arg, const char *device, const union xb_sockaddr *ep)
{
	struct xb_cluster *c = arg;
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_ENDPOINT };
	struct xb_cluster_kv_endpoint v = { .ep = *ep, .seen_ms = cluster_now_ms() };
	char key[KEY_MAX], *val;
	struct entry *e;

	snprintf(k.device, sizeof(k.device), "%s", device);
	if (!xb_cluster_kv_key_make(key, sizeof(key), c->cfg->prefix, &k) ||
	    !(e = cluster_find_or_add(c, key, strlen(key))) || (e->valid && same_ep(&e->ep.ep, ep)))
		return;
	snprintf(v.node, sizeof(v.node), "%s", c->cfg->node);
	if (!(val = xb_cluster_kv_endpoint_encode(&v)))
		return;
	e->k = k;
	e->ep = v;
	e->valid = true;
	strcpy(e->node, v.node);
	xb_etcd_put(c->etcd, key, strlen(key), val, strlen(val), 0, NULL, NULL);
	free(val);
}

int xb_cluster_foreach_endpoint(struct xb_cluster *c,
				int (*fn)(void *ctx, const char *device, const union xb_sockaddr *ep,
					  int64_t seen_ms),
				void *ctx)
{
	int rc;

	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *e = c->tab[b]; e; e = e->next)
			if (e->valid && e->k.kind == XB_CLUSTER_KV_ENDPOINT &&
			    (rc = fn(ctx, e->k.device, &e->ep.ep, e->ep.seen_ms)))
				return rc;
	return 0;
}

void cluster_buckets_free(struct xb_cluster *c)
{
	for (struct put *p; (p = c->mdm_wait);) {
		c->mdm_wait = p->next;
		put_free(p);
	}
	for (size_t i = 0; i < c->n_bk; i++)
		while (c->bk[i].q) {
			struct put *p = c->bk[i].q;

			c->bk[i].q = p->next;
			put_free(p);
		}
	free(c->bk);
	c->bk = NULL;
	c->n_bk = 0;
}
