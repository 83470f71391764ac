/* The gateways' shared state on etcd (cluster.h; docs/ha.md "Shared
 * state"). Keys and values: cluster_kv.h. */
#include "gateway/cluster/cluster_int.h"

#include "common/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t cluster_now_ms(void)
{
	return (int64_t)(clock_real_ns() / NSEC_PER_MSEC);
}
/* --- the copy -------------------------------------------------------------------- */

static uint32_t hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)k[i]) * 16777619u;
	return h & (BUCKETS - 1);
}

static struct entry **slot(struct xb_cluster *c, const char *key, size_t n)
{
	struct entry **pp = &c->tab[hash(key, n)];

	while (*pp && (strlen((*pp)->key) != n || memcmp((*pp)->key, key, n)))
		pp = &(*pp)->next;
	return pp;
}

struct entry *cluster_find(struct xb_cluster *c, const struct xb_cluster_kv_key *k)
{
	char key[KEY_MAX];
	size_t n = xb_cluster_kv_key_make(key, sizeof(key), c->cfg->prefix, k);

	return n ? *slot(c, key, n) : NULL;
}

struct entry *cluster_find_or_add(struct xb_cluster *c, const char *key, size_t n)
{
	struct entry **pp = slot(c, key, n), *e;

	if (*pp)
		return *pp;
	if (!(e = calloc(1, sizeof(*e))) || !(e->key = strndup(key, n))) {
		free(e);
		return NULL;
	}
	*pp = e;
	c->n_keys++;
	return e;
}

static void drop(struct xb_cluster *c, const char *key, size_t n)
{
	struct entry **pp = slot(c, key, n), *e = *pp;

	if (!e)
		return;
	*pp = e->next;
	free(e->key);
	free(e);
	c->n_keys--;
}

static void bad(struct xb_cluster *c, const char *key, size_t klen, const char *why)
{
	c->stat.bad++;
	if (log_ratelimit(&c->rl))
		log_warnx("cluster: key %.*s: %s; skipped", (int)(klen < 200 ? klen : 200), key, why);
}

static bool mine(const struct xb_cluster *c, const char *node)
{
	return !strcmp(node, c->cfg->node);
}

static void put_posture(struct xb_cluster *c, struct entry *e, const struct xb_etcd_kv *kv,
			bool resync)
{
	struct xb_cluster_kv_posture v;
	char err[256];
	int rc;

	if (xb_cluster_kv_posture_decode(kv->val, kv->vlen, &v, err, sizeof(err)) < 0) {
		bad(c, kv->key, kv->klen, err);
		return;
	}
	e->valid = true;
	e->seq = v.seq;
	strcpy(e->node, v.node);
	/* Our own writes are applied by the report's round, not here: the
	 * watch may bring them before the round has stored them. */
	if (resync || !mine(c, v.node)) {
		rc = c->ops->posture_remote(c->ctx, e->k.device, v.seq, v.received_ms, v.body,
					    v.body_len, err, sizeof(err));
		if (rc == 0)
			c->stat.applied++;
		else if (rc < 0)
			bad(c, kv->key, kv->klen, err);
	}
	xb_cluster_kv_posture_clear(&v);
}

static void put_learned(struct xb_cluster *c, struct entry *e, const struct xb_etcd_kv *kv,
			bool resync)
{
	char err[256];
	int rc;

	if (xb_cluster_kv_learned_decode(kv->val, kv->vlen, &e->learned, err, sizeof(err)) < 0) {
		bad(c, kv->key, kv->klen, err);
		return;
	}
	e->valid = true;
	strcpy(e->node, e->learned.node);
	if (!resync && mine(c, e->node))
		return;
	rc = c->ops->learned_remote(c->ctx, e->k.set, e->k.family, e->k.addr, e->learned.fp,
				    e->learned.expires, err, sizeof(err));
	if (rc == 0)
		c->stat.learned++;
	else if (rc < 0)
		bad(c, kv->key, kv->klen, err);
}

/* Another gateway's MDM push (ours were applied when we took them). */
static void put_mdm(struct xb_cluster *c, struct entry *e, const struct xb_etcd_kv *kv)
{
	struct xb_cluster_kv_mdm v;
	char err[256];

	if (xb_cluster_kv_mdm_decode(kv->val, kv->vlen, &v, err, sizeof(err)) < 0) {
		bad(c, kv->key, kv->klen, err);
		return;
	}
	e->valid = true;
	strcpy(e->node, v.node);
	if (!mine(c, v.node) && c->ops->mdm_remote) {
		if (c->ops->mdm_remote(c->ctx, v.device, e->k.set, e->k.nonce, v.until, v.attrs, err,
				       sizeof(err)) < 0)
			bad(c, kv->key, kv->klen, err);
		else
			c->stat.pushes++;
	}
	json_decref(v.attrs);
}

/* A key's new value into the copy, and what it changes applied. A bad
 * key or value is logged and skipped: the local state stays as it was,
 * and the entry keeps only its mod_revision (a CAS may overwrite it). */
static void put(struct xb_cluster *c, const struct xb_etcd_kv *kv, bool resync)
{
	struct xb_cluster_kv_key k;
	struct entry *e;
	char err[256];

	if (xb_cluster_kv_key_parse(c->cfg->prefix, kv->key, kv->klen, &k, err, sizeof(err)) < 0) {
		bad(c, kv->key, kv->klen, err);
		return;
	}
	if (k.kind == XB_CLUSTER_KV_OTHER)
		return;		/* a kind a newer gateway writes */
	if (!(e = cluster_find_or_add(c, kv->key, kv->klen))) {
		bad(c, kv->key, kv->klen, "out of memory");
		return;
	}
	e->k = k;
	e->mod_rev = kv->mod_rev;
	e->mark = true;
	e->valid = false;
	if (k.kind == XB_CLUSTER_KV_POSTURE)
		put_posture(c, e, kv, resync);
	else if (k.kind == XB_CLUSTER_KV_LEARNED)
		put_learned(c, e, kv, resync);
	else if (k.kind == XB_CLUSTER_KV_MDM)
		put_mdm(c, e, kv);
	else if (k.kind == XB_CLUSTER_KV_ALLOC)
		cluster_alloc_put(c, e, kv);
	else if (xb_cluster_kv_endpoint_decode(kv->val, kv->vlen, &e->ep, err, sizeof(err)) < 0)
		bad(c, kv->key, kv->klen, err);
	else
		e->valid = true, strcpy(e->node, e->ep.node);
}

void cluster_put(struct xb_cluster *c, const struct xb_etcd_kv *kv)
{
	put(c, kv, false);
}

static bool is_mdm(const struct xb_cluster *c, const struct xb_etcd_kv *kv)
{
	size_t pl = strlen(c->cfg->prefix);

	return kv->klen > pl + 4 && !memcmp(kv->key + pl, "mdm/", 4) && !memcmp(kv->key, c->cfg->prefix, pl);
}

/* The whole prefix as the store has it now: the copy replaced. Keys gone
 * from the store leave the copy; what they had put into the local state
 * (a report, a learned destination until its expiry) stays. */
static void resync(struct xb_cluster *c, const struct xb_etcd_kv *kvs, size_t n)
{
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *e = c->tab[b]; e; e = e->next)
			e->mark = false;
	/* Pushes last, oldest first: a later push's attribute wins, as when
	 * they came one by one. */
	for (size_t i = 0; i < n; i++)
		if (!is_mdm(c, &kvs[i]))
			put(c, &kvs[i], true);
	for (int64_t last = -1;;) {
		const struct xb_etcd_kv *next = NULL;

		for (size_t i = 0; i < n; i++)
			if (is_mdm(c, &kvs[i]) && kvs[i].mod_rev > last &&
			    (!next || kvs[i].mod_rev < next->mod_rev))
				next = &kvs[i];
		if (!next)
			break;
		put(c, next, true);
		last = next->mod_rev;
	}
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry **pp = &c->tab[b]; *pp;) {
			struct entry *e = *pp;

			if (e->mark) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e->key);
			free(e);
			c->n_keys--;
		}
}

static void on_watch(void *ctx, const struct xb_etcd_event *ev, size_t n, bool full, int64_t rev)
{
	struct xb_cluster *c = ctx;

	if (full) {
		struct xb_etcd_kv *kvs = malloc((n ? n : 1) * sizeof(*kvs));

		log_info("cluster: the watch's revision was compacted: resync of %zu keys", n);
		for (size_t i = 0; kvs && i < n; i++)
			kvs[i] = ev[i].kv;
		if (kvs)
			resync(c, kvs, n);
		free(kvs);
	} else {
		for (size_t i = 0; i < n; i++)
			if (ev[i].type == XB_ETCD_PUT)
				put(c, &ev[i].kv, false);
			else
				drop(c, ev[i].kv.key, ev[i].kv.klen);
	}
	if (rev > c->revision)
		c->revision = rev;
}

static void on_range(void *ctx, const struct xb_etcd_result *r)
{
	struct xb_cluster *c = ctx;
	const char *p = c->cfg->prefix;

	c->ranging = false;
	if (r->err) {
		if (log_ratelimit(&c->rl))
			log_warnx("cluster: reading %s: %s (tried again in a second)", p, r->msg);
		return;
	}
	resync(c, r->kvs, r->n_kvs);
	c->revision = r->revision;
	c->synced = true;
	log_info("cluster: %zu keys under %s at revision %lld", c->n_keys, p, (long long)r->revision);
	if (!c->watching &&
	    xb_etcd_watch(c->etcd, p, strlen(p), r->revision + 1, on_watch, c) == 0)
		c->watching = true;
	if (c->ops->synced)
		c->ops->synced(c->ctx);
}

/* --- ops ------------------------------------------------------------------------- */

struct op *cluster_op_new(struct xb_cluster *c, enum op_type t)
{
	struct op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->c = c;
	o->type = t;
	o->next = c->ops_list.next;
	o->prev = &c->ops_list;
	o->next->prev = o;
	c->ops_list.next = o;
	return o;
}

void cluster_op_free(struct op *o)
{
	o->prev->next = o->next;
	o->next->prev = o->prev;
	free(o->val);
	free(o->key);
	free(o);
}

static void posture_key(const struct xb_cluster *c, const char *device, char *key, size_t len)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_POSTURE };

	snprintf(k.device, sizeof(k.device), "%s", device);
	if (!xb_cluster_kv_key_make(key, len, c->cfg->prefix, &k))
		key[0] = '\0';
}

/* The copy after our CAS succeeded: the key's new mod_revision is the
 * answer's revision. */
static void cas_won(struct xb_cluster *c, struct op *o, int64_t rev)
{
	char key[KEY_MAX];
	struct entry *e;

	posture_key(c, o->device, key, sizeof(key));
	if (!key[0] || !(e = cluster_find_or_add(c, key, strlen(key))))
		return;
	e->k = (struct xb_cluster_kv_key){ .kind = XB_CLUSTER_KV_POSTURE };
	strcpy(e->k.device, o->device);
	e->mod_rev = rev;
	e->seq = o->seq;
	e->valid = true;
	strcpy(e->node, c->cfg->node);
}

/* The copy's seq high-water for device, and the entry; -1 without one. */
static int64_t copy_seq(struct xb_cluster *c, const char *device, struct entry **out)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_POSTURE };
	struct entry *e;

	snprintf(k.device, sizeof(k.device), "%s", device);
	e = cluster_find(c, &k);
	if (out)
		*out = e;
	return e && e->valid ? e->seq : -1;
}

static void on_cas(void *ctx, const struct xb_etcd_result *r);

static int cas(struct xb_cluster *c, struct op *o)
{
	struct entry *e;
	char key[KEY_MAX];

	copy_seq(c, o->device, &e);
	posture_key(c, o->device, key, sizeof(key));
	o->in_flight = xb_etcd_cas(c->etcd, key, strlen(key), e ? e->mod_rev : 0, o->val,
				   strlen(o->val), 0, on_cas, o) == 0;
	return o->in_flight ? 0 : -1;
}

/* etcd did not answer: the report is judged on the copy alone (its seq is
 * above the copy's: gate() checked) and published when etcd is back. */
static void accept_down(struct xb_cluster *c, struct op *o)
{
	uint64_t id = o->id;

	c->stat.accepted_down++;
	o->type = OP_PUBLISH;
	o->in_flight = false;
	o->id = 0;
	/* One waiting per device: the newest. */
	for (struct op *p = c->ops_list.next; p != &c->ops_list; p = p->next)
		if (p != o && p->type == OP_PUBLISH && !p->in_flight && !strcmp(p->device, o->device)) {
			if (p->seq < o->seq) {
				p = p->prev;
				cluster_op_free(p->next);
			}
		}
	if (id)
		c->ops->gate_done(c->ctx, id, 0, NULL);
}

static void on_cas(void *ctx, const struct xb_etcd_result *r)
{
	struct op *o = ctx;
	struct xb_cluster *c = o->c;
	char msg[200];
	struct entry *e;
	int64_t have;

	o->in_flight = false;
	if (r->err) {
		if (o->type == OP_GATE)
			accept_down(c, o);	/* kept for publishing */
		return;
	}
	if (r->succeeded) {
		cas_won(c, o, r->revision);
		c->stat.published += o->type == OP_PUBLISH;
		if (o->type == OP_GATE)
			c->ops->gate_done(c->ctx, o->id, 0, NULL);
		cluster_op_free(o);
		return;
	}
	/* Lost: the copy was stale. Learn what the store has (applied like a
	 * watch event), then judge again on it. */
	c->stat.cas_lost++;
	if (r->n_kvs)
		put(c, &r->kvs[0], false);
	else {
		char key[KEY_MAX];

		posture_key(c, o->device, key, sizeof(key));
		drop(c, key, strlen(key));
	}
	have = copy_seq(c, o->device, &e);
	if (have >= o->seq) {
		if (o->type == OP_GATE) {
			c->stat.refused++;
			snprintf(msg, sizeof(msg), "seq %lld is not above %lld (accepted by gateway %s)",
				 (long long)o->seq, (long long)have, e->node);
			c->ops->gate_done(c->ctx, o->id, STATUS_CONFLICT, msg);
		}
		cluster_op_free(o);
		return;
	}
	if (++o->tries < CAS_TRIES && cas(c, o) == 0)
		return;
	if (o->type == OP_GATE) {
		c->ops->gate_done(c->ctx, o->id, STATUS_BUSY, "the cluster's store is busy");
		cluster_op_free(o);
	}
}

int xb_cluster_gate(void *ctx, const char *device, int64_t seq, const char *body, size_t len,
		    uint64_t id, char *err, size_t errlen)
{
	struct xb_cluster *c = ctx;
	struct xb_cluster_kv_posture v = { .seq = seq, .received_ms = cluster_now_ms(), .body = (char *)body,
					   .body_len = len };
	struct entry *e;
	int64_t have = copy_seq(c, device, &e);
	struct op *o;

	if (have >= seq) {
		c->stat.refused++;
		snprintf(err, errlen, "seq %lld is not above %lld (accepted by gateway %s)",
			 (long long)seq, (long long)have, e->node);
		return STATUS_CONFLICT;
	}
	snprintf(v.node, sizeof(v.node), "%s", c->cfg->node);
	if (!(o = cluster_op_new(c, OP_GATE)) || !(o->val = xb_cluster_kv_posture_encode(&v))) {
		if (o)
			cluster_op_free(o);
		snprintf(err, errlen, "out of memory");
		return STATUS_BUSY;
	}
	snprintf(o->device, sizeof(o->device), "%s", device);
	o->seq = seq;
	/* Fail-static: without etcd (or before the copy is filled) a report
	 * above the copy's high-water is accepted now and published later. */
	if (!c->up || !c->synced || cas(c, o) < 0) {
		accept_down(c, o);
		return 0;
	}
	o->id = id;
	return 1;	/* XB_POSTURE_HTTP_GATE_WAIT */
}

/* Reports accepted while etcd was away: published by CAS unless the store
 * has one as new (cluster_kv.h, the reconcile rule). */
static void publish_waiting(struct xb_cluster *c)
{
	for (struct op *o = c->ops_list.next, *nx; o != &c->ops_list; o = nx) {
		struct entry *e;
		int64_t have;

		nx = o->next;
		if (o->type != OP_PUBLISH || o->in_flight)
			continue;
		have = copy_seq(c, o->device, &e);
		switch (xb_cluster_kv_reconcile(o->seq, true, have, have >= 0)) {
		case XB_CLUSTER_KV_PUBLISH:
			o->tries = 0;
			cas(c, o);
			break;
		default:
			cluster_op_free(o);	/* the store's is as new or newer: applied from the copy */
		}
	}
}

/* --- life ------------------------------------------------------------------------ */

static void on_state(void *ctx, bool up, const char *why)
{
	struct xb_cluster *c = ctx;

	c->up = up;
	if (up)
		log_info("cluster: etcd answers");
	else
		log_warnx("cluster: etcd does not answer (%s): running on the local copy", why ? why : "?");
}

struct xb_cluster *xb_cluster_open(const struct xb_cluster_cfg *cfg, const struct xb_cluster_ops *ops,
				   void *ctx)
{
	struct xb_cluster *c = calloc(1, sizeof(*c));
	struct xb_etcd_opts o = {
		.endpoints = (const char *const *)cfg->endpoints, .n_endpoints = cfg->n_endpoints,
		.request_timeout_ms = cfg->request_timeout_ms,
		.ca_file = cfg->ca_resolved, .cert_file = cfg->cert_resolved,
		.key_file = cfg->key_resolved,
	};
	char err[256];

	if (!c || !(c->tab = calloc(BUCKETS, sizeof(*c->tab)))) {
		log_warnx("cluster: out of memory");
		free(c);
		return NULL;
	}
	c->cfg = cfg;
	c->ops = ops;
	c->ctx = ctx;
	c->ops_list.next = c->ops_list.prev = &c->ops_list;
	c->rl = (struct log_rl)LOG_RL_INIT(2, 10);
	if (!(c->etcd = xb_etcd_open(&o, on_state, c, err, sizeof(err)))) {
		log_warnx("cluster: %s", err);
		xb_cluster_close(c);
		return NULL;
	}
	log_info("cluster \"%s\": node %s, %zu etcd endpoints%s, keys under %s", cfg->name, cfg->node,
		 cfg->n_endpoints, !cfg->tls ? "" : cfg->cert_resolved ? " (TLS, client certificate)" :
		 " (TLS)", cfg->prefix);
	xb_cluster_tick(c);
	return c;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* A change of the TLS files' paths reconnects (a new client); a file
 * replaced under the same path is read at the client's next connection. */
static bool same_cfg(const struct xb_cluster_cfg *a, const struct xb_cluster_cfg *b)
{
	if (a->n_endpoints != b->n_endpoints || strcmp(a->prefix, b->prefix) ||
	    strcmp(a->node, b->node) || a->request_timeout_ms != b->request_timeout_ms ||
	    !same_str(a->ca_resolved, b->ca_resolved) || !same_str(a->cert_resolved, b->cert_resolved) ||
	    !same_str(a->key_resolved, b->key_resolved))
		return false;
	for (size_t i = 0; i < a->n_endpoints; i++)
		if (strcmp(a->endpoints[i], b->endpoints[i]))
			return false;
	return true;
}

int xb_cluster_rebind(struct xb_cluster *c, const struct xb_cluster_cfg *cfg)
{
	if (!same_cfg(c->cfg, cfg))
		return -1;
	c->cfg = cfg;
	return 0;
}

int xb_cluster_fd(const struct xb_cluster *c)
{
	return xb_etcd_fd(c->etcd);
}

void xb_cluster_dispatch(struct xb_cluster *c)
{
	xb_etcd_dispatch(c->etcd);
}

void xb_cluster_tick(struct xb_cluster *c)
{
	const char *p = c->cfg->prefix;

	if (!c->synced && !c->ranging)
		c->ranging = xb_etcd_range(c->etcd, p, strlen(p), true, on_range, c) == 0;
	if (c->up && c->synced) {
		publish_waiting(c);
		cluster_mdm_publish_waiting(c);
		cluster_alloc_publish(c);
		if (c->ops->endpoints)
			c->ops->endpoints(c->ctx, cluster_endpoint_seen, c);
	}
	cluster_buckets_prune(c);
}

bool xb_cluster_synced(const struct xb_cluster *c)
{
	return c->synced;
}

json_t *xb_cluster_status(const struct xb_cluster *c)
{
	int m = xb_etcd_endpoint(c->etcd, false);
	size_t waiting = 0;

	for (const struct op *o = c->ops_list.next; o != &c->ops_list; o = o->next)
		waiting += o->type == OP_PUBLISH;
	return json_pack("{s:s, s:s, s:s, s:I, s:s?, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
			 "state", c->up ? "up" : "down", "name", c->cfg->name, "node", c->cfg->node,
			 "members", (json_int_t)c->cfg->n_endpoints,
			 "member", m >= 0 ? c->cfg->endpoints[m] : NULL,
			 "revision", (json_int_t)c->revision, "keys", (json_int_t)c->n_keys,
			 "counters", "applied", (json_int_t)c->stat.applied,
			 "learned", (json_int_t)c->stat.learned, "pushes", (json_int_t)c->stat.pushes,
			 "bad_values", (json_int_t)c->stat.bad,
			 "cas_lost", (json_int_t)c->stat.cas_lost, "refused", (json_int_t)c->stat.refused,
			 "accepted_down", (json_int_t)c->stat.accepted_down,
			 "published", (json_int_t)c->stat.published, "waiting", (json_int_t)waiting,
			 "pushes_waiting", (json_int_t)c->n_mdm_wait,
			 "pushes_published", (json_int_t)c->stat.mdm_published,
			 "alloc_conflicts", (json_int_t)c->stat.alloc_conflicts);
}

void xb_cluster_close(struct xb_cluster *c)
{
	if (!c)
		return;
	xb_etcd_close(c->etcd);		/* its pending callbacks are dropped */
	while (c->ops_list.next && c->ops_list.next != &c->ops_list)
		cluster_op_free(c->ops_list.next);
	cluster_buckets_free(c);
	free(c->want);
	for (size_t b = 0; c->tab && b < BUCKETS; b++)
		while (c->tab[b]) {
			struct entry *e = c->tab[b];

			c->tab[b] = e->next;
			free(e->key);
			free(e);
		}
	free(c->tab);
	free(c);
}
