/* GRE interfaces of either backend; see greif.h. */
#include "gateway/links/greif.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void xb_greif_config(struct gre_config *c, const struct xb_tunnel *t, const struct in6_addr *remote)
{
	const struct xb_gre *g = &t->gre;

	memset(c, 0, sizeof(*c));
	snprintf(c->ifname, sizeof(c->ifname), "%s", t->ifname);
	c->family = g->family;
	c->local = g->local;
	c->remote = *remote;
	c->opts = (struct gre_opts){ .has_key = g->has_key, .key = g->key, .seq = g->sequence,
				     .csum = g->checksum };
	c->mtu = t->mtu;
	c->keepalive_ms = g->keepalive * 1000u;
	c->keepalive_retries = g->keepalive_retries;
}

/* Only what we could have made: never an uplink named by mistake. */
static int remove_leftover(struct xb_rtnl *r, const char *ifname)
{
	unsigned idx = xb_rtnl_ifindex(ifname);
	char kind[16];

	if (!idx)
		return 0;
	if (xb_rtnl_link_kind(r, idx, kind) < 0 ||
	    (strcmp(kind, "gre") && strcmp(kind, "ip6gre") && strcmp(kind, "tun"))) {
		log_warnx("%s: an interface of that name exists and is not a GRE or TUN interface "
			  "(kind `%s'); not touching it", ifname, kind);
		return -EEXIST;
	}
	log_info("%s: removing a leftover %s interface of that name", ifname, kind);
	return xb_rtnl_link_del(r, idx);
}

static int try_kernel(struct xb_greif *g, struct xb_rtnl *r, const struct gre_config *c,
		      enum xb_backend want)
{
	int e = xb_grek_add(r, c);

	if (e == 0) {
		g->kernel = true;
		snprintf(g->reason, sizeof(g->reason), "%s%s",
			 want == XB_BACKEND_KERNEL ? "backend kernel configured" : "the kernel has GRE",
			 c->keepalive_ms ? "; keepalives off (the kernel's GRE has none)" : "");
		g->ifindex = xb_rtnl_ifindex(c->ifname);
		return 0;
	}
	if (want == XB_BACKEND_KERNEL) {
		log_warnx("%s: backend kernel configured, but the kernel cannot create a %s link: %s",
			  c->ifname, c->family == AF_INET ? "gre" : "ip6gre",
			  e == -EOPNOTSUPP ? "the kernel has no GRE" : strerror(-e));
		return e;
	}
	snprintf(g->reason, sizeof(g->reason), "the kernel has no GRE (creating a %s link: %s)",
		 c->family == AF_INET ? "gre" : "ip6gre", strerror(-e));
	return e;
}

int xb_greif_create(struct xb_greif *g, struct xb_rtnl *r, const struct gre_config *c,
		    enum xb_backend want)
{
	int e;

	memset(g, 0, sizeof(*g));
	snprintf(g->ifname, sizeof(g->ifname), "%s", c->ifname);
	if ((e = remove_leftover(r, c->ifname)) < 0)
		return e;
	if (want != XB_BACKEND_USERSPACE) {
		if ((e = try_kernel(g, r, c, want)) == 0)
			goto done;
		if (want == XB_BACKEND_KERNEL)
			return e;
	} else {
		snprintf(g->reason, sizeof(g->reason), "backend userspace configured");
	}
	if ((e = gre_tunnel_open(&g->dev, c)) < 0)
		return e;
	if ((e = gre_tunnel_start(g->dev)) < 0) {
		log_warnx("%s: starting the userspace GRE thread: %s", c->ifname, strerror(-e));
		gre_tunnel_close(g->dev);
		g->dev = NULL;
		return e;
	}
	g->ifindex = xb_rtnl_ifindex(c->ifname);
done:
	log_info("%s: %s GRE: %s", c->ifname, g->kernel ? "kernel" : "userspace", g->reason);
	return 0;
}

void xb_greif_stats(struct xb_greif *g, struct gre_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (g->dev)
		gre_tunnel_stats(g->dev, out);
}

void xb_greif_destroy(struct xb_greif *g, struct xb_rtnl *r)
{
	if (g->kernel && g->ifindex)
		xb_rtnl_link_del(r, g->ifindex);
	gre_tunnel_close(g->dev);
	memset(g, 0, sizeof(*g));
}
