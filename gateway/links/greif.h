/* A GRE interface the daemon owns: the kernel's GRE (`gre' / `ip6gre'
 * links, created through rtnetlink) where the kernel has it, else
 * xborder's userspace GRE (tunnel/gre.h) running in a thread of the daemon.
 *
 * As for WireGuard (wgif.h) there is no silent fallback: backend "kernel"
 * fails when the kernel has no GRE; "auto" says which one runs and why, in
 * reason[]. Keepalives run only in the userspace backend (the kernel's GRE
 * has none): with the kernel backend ka_state is GRE_KA_OFF and reason[]
 * says so, and the prober's probes are the health signal.
 *
 *   struct gre_config c;
 *   xb_greif_config(&c, tunnel, &remote);     from the policy, remote resolved
 *   xb_greif_create(&g, &rtnl, &c, tunnel->backend);
 *   ... addresses and routes on g.ifindex (rtnl.h), link up ...
 *   xb_greif_stats(&g, &st);                  any thread
 *   xb_greif_destroy(&g, &rtnl);
 */
#ifndef XB_GREIF_H
#define XB_GREIF_H

#include "gateway/kernel/rtnl.h"
#include "policy/policy.h"
#include "tunnel/gre.h"

#include <stdbool.h>

struct xb_greif {
	char ifname[16];
	bool kernel;			/* which backend runs */
	char reason[192];		/* why that one */
	unsigned ifindex;
	struct gre_tunnel *dev;		/* userspace, running in its own thread */
};

/* The tunnel's GRE settings from a policy tunnel of type gre; remote is the
 * outer address the daemon resolved (t->gre.remote may be a DNS name), of
 * t->gre.family. */
void xb_greif_config(struct gre_config *c, const struct xb_tunnel *t, const struct in6_addr *remote);

/* Create the interface with the wanted backend, with its MTU; the kernel's
 * is created down, the userspace one up and running. 0 or a negative errno
 * with the reason logged. */
int xb_greif_create(struct xb_greif *g, struct xb_rtnl *r, const struct gre_config *c,
		    enum xb_backend want);
/* Counters and keepalive state (userspace; the kernel backend gives zeros
 * and GRE_KA_OFF: read its counters with `ip -s link'). */
void xb_greif_stats(struct xb_greif *g, struct gre_stats *out);
/* Stop and remove the interface. */
void xb_greif_destroy(struct xb_greif *g, struct xb_rtnl *r);

/* The kernel backend alone (gre_kernel.c): a `gre' or `ip6gre' link named
 * c->ifname, down. -EOPNOTSUPP when the kernel has no such kind. */
int xb_grek_add(struct xb_rtnl *r, const struct gre_config *c);

#endif
