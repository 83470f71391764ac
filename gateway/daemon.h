/* xborderd's state and its life: start, reload, stop (xborderd(8)).
 *
 * One thread runs the daemon: an epoll loop over signals (signalfd), the
 * control socket and a one-second tick. Userspace WireGuard interfaces run
 * their own threads (tunnel/device.h) and are only configured from here.
 *
 * What the daemon builds from a policy, in order: the device interface and
 * one interface per tunnel (gateway/links/wgif.h), their addresses, one routing
 * table and fwmark rule per path (policy/compile.h), and the table inet
 * xborder (one nftables transaction). Everything it creates carries a name
 * (xb-*), a table number or a rule priority from its own ranges, so that a
 * start after a crash can find and remove leftovers first.
 */
#ifndef XB_DAEMON_H
#define XB_DAEMON_H

#include "common/notify.h"
#include "gateway/dns/dns_service.h"
#include "gateway/kernel/drops.h"
#include "gateway/links/greif.h"
#include "gateway/kernel/nft.h"
#include "gateway/posture/posture_rt.h"
#include "gateway/kernel/rtnl.h"
#include "gateway/links/wgif.h"
#include "policy/compile.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <time.h>

struct xb_ctl;

#define XB_TABLE_HASH 32	/* bytes of a table script's BLAKE2s */

/* A tunnel as it runs, parallel to policy->tunnels: wg for type
 * wireguard, gre for type gre (the other stays zero). */
struct xb_tunnel_rt {
	struct xb_wgif wg;
	struct xb_greif gre;
	union xb_sockaddr resolved;	/* the endpoint (GRE: the remote) as last resolved */
	time_t resolved_at;
};

/* The tunnel's interface index, 0 when it has none (creation failed). */
static inline unsigned xb_tunnel_rt_ifindex(const struct xb_tunnel_rt *rt)
{
	return rt->wg.ifindex ? rt->wg.ifindex : rt->gre.ifindex;
}

struct xb_health;
struct xb_metrics;
struct xb_cluster;
struct xb_ha;
struct xb_cluster_prune_op;

struct xb_daemon {
	char *policy_path;
	struct xb_policy *policy;
	struct xb_plan plan;
	struct xb_rtnl rtnl;
	struct xb_nft nft;
	struct xb_wgif devif;
	struct xb_tunnel_rt *tunnels;
	struct xb_ctl *ctl;
	struct xb_notify notify;	/* systemd: readiness, reload, watchdog */
	struct xb_dns_service *dns;		/* NULL until the gateway is up */
	struct xb_health *health;	/* probes, steering, notifications */
	struct xb_metrics *metrics;	/* NULL unless gateway.metrics is set */
	struct xb_posture_rt *prt;		/* posture state and enforcement */
	struct xb_cluster *cluster;	/* shared state on etcd; NULL: one gateway */
	struct xb_drops drops;		/* refused packets (nl NULL: not bound) */
	struct xb_ha *ha;		/* active/standby (cluster/ha.h); NULL without a cluster */
	/* `xborderctl cluster prune' running (cluster.h; one at a time), and
	 * its control request's deferred answer. */
	struct xb_cluster_prune_op *prune;
	uint64_t prune_answer;		/* an xb_ctl_handle */
	/* The main loop's stalls since start: the time from epoll_wait's
	 * return to the next call, i.e. how long a ready event (a device's
	 * DNS query, say) may wait behind the work of one round. */
	struct {
		uint64_t max_ns;	/* the longest round */
		uint64_t max_at;	/* wall seconds when it ended */
		uint64_t over_10ms;	/* rounds longer than 10 ms */
		uint64_t rounds;
	} stall;
	int epfd, sigfd, tickfd;
	time_t started, loaded_at;
	struct {
		bool ok;
		time_t at;
		char **errors;		/* "FILE:LINE: message" of the last failure */
		size_t n_errors;
	} last_reload;
	/* The running policy's table as xb_apply_nft_check() hashes it. */
	uint8_t table_hash[XB_TABLE_HASH];
	bool has_table_hash;
	int saved_forward4, saved_forward6;	/* -1: not changed by us */
	bool stopping;
};

/* A policy as the daemon runs it: loaded and validated, addresses
 * allocated, the routing plan built and the DNS service's configuration
 * prepared — everything that can fail on a bad file, with nothing changed.
 * start, reload and --check all use xb_daemon_load(), so --check fails
 * where start would. use_state: allocate with STATE_DIR/addresses (start,
 * reload; nothing is written); --check allocates without it, since it may
 * run as a user who cannot read it. cluster (NULL: none): its store's pool
 * allocations are the arbiter (docs/ha.md, "Pool allocations"). 0, or -1
 * with every error in errs. */
struct xb_loaded {
	struct xb_policy *policy;
	struct xb_plan plan;
	struct xb_dns_service_cfg *dns;
};
int xb_daemon_load(const char *path, bool use_state, struct xb_cluster *cluster,
		   struct xb_loaded *out, struct xb_errors *errs);
void xb_loaded_free(struct xb_loaded *l);

/* Build everything from the policy at path. Returns 0 after telling systemd
 * READY=1 (when started by it), or -1 after logging why and removing
 * whatever it had built. */
int xb_daemon_start(struct xb_daemon *d, const char *path);
/* Serve until SIGTERM/SIGINT. Returns 0. */
int xb_daemon_run(struct xb_daemon *d);
/* Remove everything the daemon created. */
void xb_daemon_stop(struct xb_daemon *d);

/* Reload the policy file, all or nothing (docs/operations.md, "Reload"):
 * the file is loaded and its table checked by the kernel before anything
 * changes; then tunnels, posture, device peers, health, routes, the
 * posture endpoint and the table are switched over, and if one of these
 * fails the ones done are switched back to the running policy. Only then
 * the DNS service, the address state file and the conntrack entries of
 * removed or re-addressed devices follow. -1 with errors in errs (the
 * failed step named) when the running policy stays; 0 with summary
 * saying what changed. */
int xb_daemon_reload(struct xb_daemon *d, struct xb_errors *errs, char *summary, size_t len);

/* apply.c: from a policy to the kernel. */
int xb_apply_devif(struct xb_daemon *d, const struct xb_policy *old, const struct xb_policy *p);
/* The device interface's local UDP tap to the DNS service (docs/dns.md,
 * "The tap"): on for a userspace device interface when p has DNS and
 * dns_tap, a new socketpair each time; off otherwise. After the DNS
 * service's commit. */
void xb_apply_dns_tap(struct xb_daemon *d, const struct xb_policy *p);
int xb_apply_tunnels(struct xb_daemon *d, const struct xb_policy *old, const struct xb_policy *p,
		     struct xb_tunnel_rt **out, char *summary, size_t len);
int xb_apply_routes(struct xb_daemon *d, const struct xb_plan *plan,
		    const struct xb_plan *old);
int xb_apply_nft(struct xb_daemon *d, const struct xb_policy *p, const struct xb_plan *plan);
/* Whether the kernel would take p's table (nft's dry run: the whole
 * transaction goes to the kernel, which checks it and throws it away).
 * Posture as no device passing: the same sets and chains, which is what
 * the kernel can refuse. hash gets the checked script's BLAKE2s; when it
 * is the running policy's (d->table_hash), the check is skipped: 1. An
 * unchanged table (a SIGHUP for the logs) costs no second load, and should
 * the kernel refuse it all the same, the reload's table step fails and is
 * switched back like any other. 0, or -1 with nft's message in *err
 * (malloc'ed). */
int xb_apply_nft_check(struct xb_daemon *d, const struct xb_policy *p, const struct xb_plan *plan,
		       uint8_t hash[static XB_TABLE_HASH], char **err);
/* d->table_hash for the running policy (after start). */
void xb_apply_nft_remember(struct xb_daemon *d);
/* The live default route of path pa out of tunnel ti (SIZE_MAX: none). */
int xb_apply_path_live(struct xb_daemon *d, const struct xb_path *pa, size_t ti);
void xb_apply_resolve(struct xb_daemon *d, bool force);
/* The wiped keys of p (the policy the running interfaces follow) read back
 * from them: every WireGuard tunnel's, and with devif the device
 * interface's. The caller wipes them again (xb_policy_wipe_keys). */
void xb_apply_keys_back(struct xb_daemon *d, struct xb_policy *p, bool devif);
void xb_apply_sweep(struct xb_daemon *d);
/* Userspace interfaces whose thread ended made again. True when the device
 * interface was: its new tap's socket wants watching (watch_dns_udp). */
bool xb_apply_revive(struct xb_daemon *d);
void xb_apply_teardown(struct xb_daemon *d);

/* cluster_ops.c: the policy's cluster section (none: nothing runs). start
 * -1 with the reason logged; reload keeps the connection when the section's
 * connection settings are unchanged, else reopens it (p: the policy that
 * runs from now on). */
int xb_daemon_cluster_start(struct xb_daemon *d, const struct xb_policy *p);
void xb_daemon_cluster_reload(struct xb_daemon *d, const struct xb_policy *p);
void xb_daemon_cluster_stop(struct xb_daemon *d);
/* The store's pool allocations as the policy takes them (*v malloc'ed; its
 * names point into the cluster's copy: use before the next dispatch). */
int xb_daemon_cluster_allocs(struct xb_cluster *c, struct xb_alloc_shared **v, size_t *n);

/* cluster-prune [dry-run] (a control handler): the store's alloc/ keys
 * of devices the running policy does not have (cluster.h). It answers
 * later (control.h, XB_CTL_LATER): the prune runs on the daemon's loop,
 * xb_daemon_prune_process() on its fd; one at a time. */
int xb_cmd_cluster_prune(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);
void xb_daemon_prune_process(struct xb_daemon *d);
/* Shutdown: a prune still running is cancelled (its request answered with
 * an error) and closed. Before the control socket closes. */
void xb_daemon_prune_stop(struct xb_daemon *d);

/* handlers.c: the control commands. */
extern const struct xb_ctl_command *const xb_daemon_commands;
extern const size_t xb_daemon_n_commands;

#endif
