/* A WireGuard interface the daemon owns: the kernel's WireGuard where the
 * kernel has it (rtnetlink creates the link, generic netlink configures it),
 * else xborder's userspace driver (tunnel/) running in a thread of the
 * daemon. Either way `wg show IFNAME` works: the kernel answers for its
 * own links, the userspace driver serves the UAPI socket
 * /var/run/wireguard/IFNAME.sock.
 *
 * The backend chosen, and why, is kept in reason[] for the log and for
 * `xborderctl`. No silent fallback: backend "kernel" fails when the kernel
 * cannot; "auto" says which one runs and why.
 */
#ifndef XB_WGIF_H
#define XB_WGIF_H

#include "gateway/kernel/rtnl.h"
#include "policy/policy.h"
#include "tunnel/wgconf.h"

#include <pthread.h>
#include <stdbool.h>

struct wg_device;

struct xb_wgif {
	char ifname[16];
	bool kernel;			/* which backend runs */
	char reason[160];		/* why that one */
	unsigned ifindex;
	struct wg_device *dev;		/* userspace */
	pthread_t thread;
	bool running;
};

/* Create ifname with the wanted backend and MTU, down and unconfigured.
 * Returns 0 or a negative errno with the reason logged. */
int xb_wgif_create(struct xb_wgif *w, struct xb_rtnl *r, const char *ifname,
		   enum xb_backend want, unsigned mtu);
/* Apply a configuration (UAPI semantics: see tunnel/wgconf.h). 0 or a
 * positive errno. */
int xb_wgif_set(struct xb_wgif *w, const struct wg_conf *c);
/* The current configuration and counters; 0 or a positive errno. The caller
 * frees out with wg_conf_free(). */
int xb_wgif_get(struct xb_wgif *w, struct wg_conf *out);
/* Stop and remove the interface. */
void xb_wgif_destroy(struct xb_wgif *w, struct xb_rtnl *r);

/* The kernel backend (wg_kernel.c): generic netlink family "wireguard". */
int xb_wgk_set(const char *ifname, const struct wg_conf *c);	/* 0 / positive errno */
int xb_wgk_get(const char *ifname, struct wg_conf *out);	/* 0 / positive errno */

#endif
