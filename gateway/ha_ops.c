/* The daemon's side of active/standby; see ha_ops.h. */
#include "gateway/ha_ops.h"
#include "gateway/cluster/cluster.h"
#include "gateway/daemon.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>

/* The device interface as the takeover sees it (d->devif stays where it
 * is when the interface is made again). */
static int wg_get(void *ctx, struct wg_conf *out) { return xb_wgif_get(ctx, out); }
static int wg_set(void *ctx, const struct wg_conf *in) { return xb_wgif_set(ctx, in); }

int xb_ha_daemon_open(struct xb_daemon *d, const char *vip, unsigned rate, xb_ha_source_fn source,
		      void *ctx)
{
	static const struct xb_takeover_ops ops = { wg_get, wg_set };
	struct xb_ha_opts o = { .vip = vip, .rate = rate, .ops = &ops, .wg = &d->devif,
				.ifname = d->devif.ifname, .source = source, .ctx = ctx };
	struct epoll_event ev = { .events = EPOLLIN };
	char err[160];

	if (!(d->ha = xb_ha_open(&o, err, sizeof(err)))) {
		log_warnx("active/standby: %s", err);
		return -1;
	}
	ev.data.fd = xb_ha_fd(d->ha);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		log_warn("active/standby: watching its events");
		xb_ha_close(d->ha);
		d->ha = NULL;
		return -1;
	}
	return 0;
}

struct offer {
	struct xb_daemon *d;
	struct xb_takeover *t;
};

/* A device of the shared state that this policy knows, by its key. */
static int offer(void *ctx, const char *device, const union xb_sockaddr *ep, int64_t seen_ms)
{
	struct offer *o = ctx;
	const struct xb_device *dv = xb_policy_device_by_name(o->d->policy, device);

	if (!dv || dv->expired)
		return 0;
	return xb_takeover_add(o->t, dv->public_key, ep, seen_ms) < 0 ? -ENOMEM : 0;
}

static int from_cluster(void *ctx, struct xb_takeover *t)
{
	struct xb_daemon *d = ctx;
	struct offer o = { d, t };

	if (!d->cluster)
		return -ENOENT;
	if (!xb_cluster_synced(d->cluster))
		return -EAGAIN;		/* the copy is empty yet: xb_ha_source_ready() later */
	return xb_cluster_foreach_endpoint(d->cluster, offer, &o);
}

static void vip_text(const struct xb_policy *p, char *buf, size_t len)
{
	buf[0] = '\0';
	if (p->cluster.has_vip && !inet_ntop(p->cluster.vip_family, p->cluster.vip, buf, (socklen_t)len))
		buf[0] = '\0';
}

int xb_ha_daemon_start(struct xb_daemon *d, const struct xb_policy *p)
{
	char vip[INET6_ADDRSTRLEN];

	if (!p->cluster.enabled || !d->cluster)
		return 0;
	vip_text(p, vip, sizeof(vip));
	if (xb_ha_daemon_open(d, vip, p->cluster.takeover_rate, from_cluster, d) < 0)
		return -1;
	return 0;
}

void xb_ha_daemon_stop(struct xb_daemon *d)
{
	xb_ha_close(d->ha);	/* its fd leaves the epoll set as it closes */
	d->ha = NULL;
}

void xb_ha_daemon_reload(struct xb_daemon *d, const struct xb_policy *p)
{
	char vip[INET6_ADDRSTRLEN];

	vip_text(p, vip, sizeof(vip));
	if (d->ha && d->cluster && p->cluster.enabled && xb_ha_rate(d->ha) == p->cluster.takeover_rate &&
	    !strcmp(xb_ha_vip(d->ha), vip))
		return;
	xb_ha_daemon_stop(d);
	if (xb_ha_daemon_start(d, p) < 0)
		log_warnx("active/standby: not running after the reload (see above)");
}

int xb_ha_cmd_takeover(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	long n;

	(void)args;
	(void)errors;
	if (!d->ha) {
		*error = strdup("no cluster configured: there are no shared endpoints to take over "
				"(docs/ha.md)");
		return -1;
	}
	if ((n = xb_ha_takeover(d->ha, "operator")) < 0) {
		char buf[160];

		snprintf(buf, sizeof(buf), "takeover failed: %s (the daemon's log has more)",
			 strerror((int)-n));
		*error = strdup(buf);
		return -1;
	}
	*result = xb_ha_json(d->ha);
	return 0;
}
