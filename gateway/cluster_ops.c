/* The cluster in the daemon (docs/ha.md, "Shared state"): what
 * gateway/cluster/cluster.h asks of posture, DNS and the device interface,
 * and its start, reload and stop. Without a cluster section none of this
 * runs: the gateway is one, with SQLite only. */
#include "gateway/daemon.h"
#include "gateway/ha_ops.h"
#include "gateway/control.h"

#include "common/log.h"
#include "gateway/cluster/cluster.h"
#include "gateway/posture/posture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/epoll.h>

static int posture_remote(void *ctx, const char *device, int64_t seq, int64_t received_ms,
			  const char *body, size_t len, char *err, size_t errlen)
{
	struct xb_daemon *d = ctx;

	return xb_posture_rt_remote(d->prt, device, seq, received_ms, body, len, err, errlen);
}

static void gate_done(void *ctx, uint64_t id, unsigned status, const char *msg)
{
	struct xb_daemon *d = ctx;

	xb_posture_rt_gate_done(d->prt, id, status, msg);
}

static int learned_remote(void *ctx, const char *set, int family, const uint8_t *addr, uint32_t fp,
			  int64_t expires, char *err, size_t errlen)
{
	struct xb_daemon *d = ctx;

	if (!d->dns) {
		snprintf(err, errlen, "the DNS service is not running");
		return -ENOENT;
	}
	return xb_dns_service_learn_remote(d->dns, set, family, addr, fp, expires, err, errlen);
}

/* The device interface's peers: each one's endpoint, by device name. */
static int endpoints(void *ctx, void (*fn)(void *arg, const char *device, const union xb_sockaddr *ep),
		     void *arg)
{
	struct xb_daemon *d = ctx;
	struct wg_conf wc = { 0 };

	if (xb_wgif_get(&d->devif, &wc))
		return -1;
	for (size_t i = 0; i < wc.n_peers; i++) {
		const struct wg_peer_conf *pc = &wc.peers[i];
		const struct xb_device *dv;

		if (pc->endpoint.sa.sa_family != AF_INET && pc->endpoint.sa.sa_family != AF_INET6)
			continue;
		if ((dv = xb_policy_device_by_key(d->policy, pc->public_key)) && dv->name)
			fn(arg, dv->name, &pc->endpoint);
	}
	wg_conf_free(&wc);
	return 0;
}

static int mdm_remote(void *ctx, const char *device, const char *key, const char *nonce, int64_t until,
		      json_t *attrs, char *err, size_t errlen)
{
	struct xb_daemon *d = ctx;

	return xb_posture_rt_remote_push(d->prt, device, key, nonce, until, attrs, err, errlen);
}

/* A push this gateway took, to the cluster: its attributes as JSON. */
static void push_out(void *ctx, const struct xb_mdm_push *m)
{
	struct xb_daemon *d = ctx;
	json_t *a = json_array();

	for (size_t k = 0; a && k < m->n_attrs; k++) {
		const struct xb_value *v = &m->attrs[k].value;
		json_t *jv = v->type == XB_VAL_STR ? json_string(v->str ? v->str : "") :
			     v->type == XB_VAL_BOOL ? json_boolean(v->b) : json_real(v->num);

		json_array_append_new(a, json_pack("{s:s, s:o, s:I}", "key", m->attrs[k].key,
						   "value", jv, "expires", (json_int_t)m->attrs[k].expires));
	}
	if (a && json_array_size(a) && d->cluster && m->key)
		xb_cluster_mdm(d->cluster, m->device, m->key->name, m->nonce, m->until, a);
	json_decref(a);
}

/* A takeover the vip started before the copy was filled runs now. */
static void synced(void *ctx)
{
	struct xb_daemon *d = ctx;

	if (d->ha)
		xb_ha_source_ready(d->ha);
}

static const struct xb_cluster_ops cluster_ops = { posture_remote, gate_done, learned_remote,
						   mdm_remote, endpoints, synced };

static void hooks(struct xb_daemon *d, struct xb_cluster *c)
{
	if (d->prt) {
		xb_posture_rt_set_gate(d->prt, c ? xb_cluster_gate : NULL, c);
		xb_posture_rt_on_push(d->prt, c ? push_out : NULL, d);
	}
	if (d->dns)
		xb_dns_service_on_learn(d->dns, c ? xb_cluster_learned : NULL, c);
}

int xb_daemon_cluster_start(struct xb_daemon *d, const struct xb_policy *p)
{
	struct epoll_event ev = { .events = EPOLLIN };

	if (!p->cluster.enabled)
		return 0;
	if (!(d->cluster = xb_cluster_open(&p->cluster, &cluster_ops, d)))
		return -1;
	ev.data.fd = xb_cluster_fd(d->cluster);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		log_warn("cluster: epoll");
		xb_daemon_cluster_stop(d);
		return -1;
	}
	hooks(d, d->cluster);
	xb_cluster_set_allocations(d->cluster, p);
	if (xb_ha_daemon_start(d, p) < 0) {
		xb_daemon_cluster_stop(d);
		return -1;
	}
	return 0;
}

void xb_daemon_cluster_stop(struct xb_daemon *d)
{
	xb_ha_daemon_stop(d);
	hooks(d, NULL);
	xb_cluster_close(d->cluster);	/* its fd leaves the epoll set as it closes */
	d->cluster = NULL;
}

void xb_daemon_cluster_reload(struct xb_daemon *d, const struct xb_policy *p)
{
	if (d->cluster && p->cluster.enabled && xb_cluster_rebind(d->cluster, &p->cluster) == 0) {
		xb_cluster_set_allocations(d->cluster, p);
		xb_ha_daemon_reload(d, p);
		return;
	}
	xb_daemon_cluster_stop(d);
	if (xb_daemon_cluster_start(d, p) < 0)
		log_warnx("cluster: not running after the reload (see above): this gateway runs alone");
}

struct allocs { struct xb_alloc_shared *v; size_t n, cap; };

static int alloc_one(void *ctx, const char *device, int family, const uint8_t *addr)
{
	struct allocs *a = ctx;

	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		struct xb_alloc_shared *v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n] = (struct xb_alloc_shared){ .name = device, .family = family };
	memcpy(a->v[a->n++].addr, addr, family == AF_INET ? 4 : 16);
	return 0;
}

int xb_daemon_cluster_allocs(struct xb_cluster *c, struct xb_alloc_shared **v, size_t *n)
{
	struct allocs a = { 0 };

	if (xb_cluster_foreach_alloc(c, alloc_one, &a) < 0) {
		free(a.v);
		return -1;
	}
	*v = a.v;
	*n = a.n;
	return 0;
}

/* The policy running when the read's answer arrives: a reload during the
 * prune is judged against (cluster.h). None (cannot happen while the loop
 * runs): every device is kept. */
static bool in_policy(void *ctx, const char *device)
{
	const struct xb_daemon *d = ctx;

	return !d->policy || xb_policy_device_by_name(d->policy, device) != NULL;
}

static void prune_done(void *ctx, int rc, json_t *result, const char *err)
{
	struct xb_daemon *d = ctx;

	/* Handle 0: the request was refused as the prune started (its own
	 * error went back); the answer only frees what it is given. */
	if (xb_ctl_answer(d->ctl, d->prune_answer, rc < 0 ? -1 : 0, result,
			  rc < 0 ? strdup(err) : NULL, NULL) < 0 && d->prune_answer)
		log_info("cluster prune: %s; its client had left", rc < 0 ? err : "done");
	d->prune_answer = 0;
}

/* cluster-prune [dry-run]: `xborderctl cluster prune' (cluster.h,
 * docs/ha.md "Pool allocations"); the running policy's devices are kept. */
int xb_cmd_cluster_prune(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const char *a = json_string_value(json_array_get(args, 0));
	struct epoll_event ev = { .events = EPOLLIN };
	char err[320];
	bool dry = false;

	(void)errors, (void)result;
	if (json_array_size(args) > 1 || (a && strcmp(a, "dry-run"))) {
		*error = strdup("usage: cluster-prune [dry-run]");
		return -1;
	}
	dry = a != NULL;
	if (!d->policy || !d->policy->cluster.enabled || !d->cluster) {
		*error = strdup(!d->policy || !d->policy->cluster.enabled ?
				"no cluster: the policy has no cluster section; nothing changed" :
				"the cluster is not running (see the log); nothing changed");
		return -1;
	}
	if (d->prune) {
		*error = strdup("a prune is running (one at a time): run it again when it has "
				"finished; nothing changed");
		return -1;
	}
	d->prune = xb_cluster_prune_start(&d->policy->cluster, dry, XB_CLUSTER_PRUNE_WAIT_MS,
					  in_policy, d, prune_done, d, err, sizeof(err));
	if (!d->prune) {
		*error = strdup(err);
		return -1;
	}
	ev.data.fd = xb_cluster_prune_fd(d->prune);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		snprintf(err, sizeof(err), "epoll: %s; nothing changed", strerror(errno));
		d->prune_answer = 0;
		xb_cluster_prune_close(d->prune);	/* the read may be in flight: bounded */
		d->prune = NULL;
		*error = strdup(err);
		return -1;
	}
	d->prune_answer = xb_ctl_defer(d->ctl);
	return XB_CTL_LATER;
}

void xb_daemon_prune_process(struct xb_daemon *d)
{
	xb_cluster_prune_process(d->prune);
	if (xb_cluster_prune_finished(d->prune)) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, xb_cluster_prune_fd(d->prune), NULL);
		xb_cluster_prune_close(d->prune);	/* its client closed: no wait */
		d->prune = NULL;
	}
}

void xb_daemon_prune_stop(struct xb_daemon *d)
{
	if (d->prune)	/* out of the set before its fd closes (a forked child may hold it) */
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, xb_cluster_prune_fd(d->prune), NULL);
	xb_cluster_prune_close(d->prune);	/* answers a waiting request first */
	d->prune = NULL;
}
