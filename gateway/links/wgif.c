/* WireGuard interfaces of either backend; see wgif.h. */
#include "gateway/links/wgif.h"
#include "tunnel/device.h"
#include "tunnel/tun.h"
#include "tunnel/workers.h"
#include "common/log.h"
#include "common/thread.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The thread gets the device, not the xb_wgif: that one may be moved. */
static void *run(void *arg)
{
	struct wg_device *dev = arg;
	int r = wg_device_run(dev);

	if (r < 0)
		log_warnx("%s: userspace WireGuard stopped: %s", dev->ifname, strerror(-r));
	return NULL;
}

static int create_userspace(struct xb_wgif *w, unsigned mtu)
{
	struct wg_timing timing;
	int r;

	wg_timing_default(&timing);
	r = wg_device_open(&w->dev, w->ifname, &timing);
	if (r < 0) {
		log_warnx("%s: cannot create the userspace WireGuard interface: %s", w->ifname,
			  strerror(-r));
		return r;
	}
	w->dev->mtu = mtu;
	/* Crypto workers: one per online CPU, capped (docs/wireguard.md). */
	if ((r = wg_device_set_workers(w->dev, wg_workers_default())) < 0)
		log_warnx("%s: no crypto workers (%s): the data thread does it alone", w->ifname,
			  strerror(-r));
	if (tun_set_mtu(w->ifname, mtu) < 0)
		log_warn("%s: setting MTU %u", w->ifname, mtu);
	r = xb_thread_start(&w->thread, run, w->dev);
	if (r) {
		wg_device_close(w->dev);
		w->dev = NULL;
		return -r;
	}
	w->running = true;
	return 0;
}

/* auto: the kernel when it can create a wireguard link, with the reason it
 * could not otherwise. */
int xb_wgif_create(struct xb_wgif *w, struct xb_rtnl *r, const char *ifname,
		   enum xb_backend want, unsigned mtu)
{
	unsigned leftover = xb_rtnl_ifindex(ifname);
	int e;

	memset(w, 0, sizeof(*w));
	snprintf(w->ifname, sizeof(w->ifname), "%s", ifname);
	if (leftover) {
		char kind[16];

		/* Only what we could have made: never an uplink named by mistake. */
		if (xb_rtnl_link_kind(r, leftover, kind) < 0 ||
		    (strcmp(kind, "wireguard") && strcmp(kind, "tun"))) {
			log_warnx("%s: an interface of that name exists and is not a WireGuard or "
				  "TUN interface (kind `%s'); not touching it", ifname, kind);
			return -EEXIST;
		}
		log_info("%s: removing a leftover %s interface of that name", ifname, kind);
		xb_rtnl_link_del(r, leftover);
	}
	if (want != XB_BACKEND_USERSPACE) {
		e = xb_rtnl_link_add(r, ifname, "wireguard");
		if (e == 0) {
			w->kernel = true;
			snprintf(w->reason, sizeof(w->reason), "%s",
				 want == XB_BACKEND_KERNEL ? "backend kernel configured"
							   : "the kernel has WireGuard");
			w->ifindex = xb_rtnl_ifindex(ifname);
			if ((e = xb_rtnl_link_mtu(r, w->ifindex, mtu)) < 0)
				log_warnx("%s: setting MTU %u: %s", ifname, mtu, strerror(-e));
			goto done;
		}
		if (want == XB_BACKEND_KERNEL) {
			log_warnx("%s: backend kernel configured, but the kernel cannot create a "
				  "WireGuard link: %s", ifname, strerror(-e));
			return e;
		}
		snprintf(w->reason, sizeof(w->reason),
			 "the kernel has no WireGuard (creating a wireguard link: %s)", strerror(-e));
	} else {
		snprintf(w->reason, sizeof(w->reason), "backend userspace configured");
	}
	if ((e = create_userspace(w, mtu)) < 0)
		return e;
	w->ifindex = xb_rtnl_ifindex(ifname);
done:
	log_info("%s: %s WireGuard: %s", ifname, w->kernel ? "kernel" : "userspace", w->reason);
	return 0;
}

int xb_wgif_set(struct xb_wgif *w, const struct wg_conf *c)
{
	if (w->kernel)
		return xb_wgk_set(w->ifname, c);
	return w->dev ? -wg_device_set(w->dev, c) : ENODEV;	/* positive, as xb_wgk_set */
}

int xb_wgif_get(struct xb_wgif *w, struct wg_conf *out)
{
	memset(out, 0, sizeof(*out));
	if (w->kernel)
		return xb_wgk_get(w->ifname, out);
	return w->dev ? -wg_device_get(w->dev, out) : ENODEV;
}

void xb_wgif_destroy(struct xb_wgif *w, struct xb_rtnl *r)
{
	if (w->kernel) {
		if (w->ifindex)
			xb_rtnl_link_del(r, w->ifindex);
	} else if (w->dev) {
		if (w->running) {
			wg_device_stop(w->dev);
			pthread_join(w->thread, NULL);
		}
		wg_device_close(w->dev);
	}
	memset(w, 0, sizeof(*w));
}
