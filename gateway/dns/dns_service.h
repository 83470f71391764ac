/* The gateway's DNS service: devices' resolver on the gateway's device-side
 * addresses, UDP and TCP (docs/dns.md).
 *
 * For each query: the source address names the device (WireGuard's
 * cryptokey routing vouches for it); an address outside the device pools
 * is refused. The policy's dns rules pick an action by name (most specific
 * pattern first): override, tunnel, block, forward; no rule: forward to the
 * section's upstreams. Every address answered for a name is put into the
 * _dns4/_dns6 sets of the access rules whose `domains' match the name,
 * with a timeout of the answer's TTL plus the grace period, before the
 * answer is sent. A tunnel name is answered with its rule's block answer to
 * a device that no access rule for the name admits (group, posture).
 *
 * Event-loop agnostic like control.c: one epoll fd (sockets, TCP clients,
 * the upstream client, a timer) nested in the daemon's loop; readable →
 * xb_dns_service_process().
 *
 * Reconfiguration is two-step so that a reload is all-or-nothing:
 * xb_dns_service_prepare() builds everything from a policy (matchers, lists, server
 * sets) and reports every error; xb_dns_service_commit() swaps it in.
 */
#ifndef XB_GATEWAY_DNS_SERVICE_H
#define XB_GATEWAY_DNS_SERVICE_H

#include "policy/policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xb_dns_service;
struct xb_dns_service_cfg;

/* Does access rule `rule' admit device `device' (its posture profiles)?
 * Asked only for rules with posture; NULL: nobody passes posture. */
typedef bool (*xb_dns_service_posture_fn)(void *ctx, size_t rule, size_t device);

/* The tunnels (indices into the policy's tunnels) to resolve a tunnel
 * rule's names through, best first, into out (room for every tunnel):
 * access rule `rule''s path's tunnels in the order its failover would use
 * them, the one the path uses now first (rule < n_rules; own NULL); or
 * the rule's own list own[0..n) ranked by health, in list order, the down
 * ones last (rule SIZE_MAX). Returns how many. docs/dns.md, "Tunnel rules
 * follow the path". */
typedef size_t (*xb_dns_service_route_fn)(void *ctx, size_t rule, const size_t *own, size_t n,
				     size_t *out);

/* What xb_dns_service_prepare() builds from p (which must outlive it). Returns
 * NULL with errors added (a list's bad lines as FILE:LINE, out of memory). */
struct xb_dns_service_cfg *xb_dns_service_prepare(const struct xb_policy *p, struct xb_errors *errs);
void xb_dns_service_cfg_free(struct xb_dns_service_cfg *c);

/* A service with cfg (taken over), state in state_dir (learned
 * destinations; NULL: none kept). Sockets are opened by xb_dns_service_commit(). */
struct xb_dns_service *xb_dns_service_new(const char *state_dir, xb_dns_service_posture_fn posture, void *ctx);
/* Swap in cfg (taken over; the old one is freed after queries in flight
 * are cancelled — their clients retry), open or move the listening
 * sockets to p's gateway addresses, and put every learned destination
 * still valid into the new table's sets. Returns 0, or -1 when the
 * sockets cannot be opened (logged; the service keeps running on the
 * sockets it has). */
int xb_dns_service_commit(struct xb_dns_service *s, struct xb_dns_service_cfg *cfg);
/* The nft table was replaced (a reload): its _dns sets are empty; put the
 * learned destinations back. */
void xb_dns_service_refill(struct xb_dns_service *s);
/* How tunnel rules learn the paths and the tunnels' health; without it,
 * paths as written (via order; best: every tunnel) and own lists in order. */
void xb_dns_service_set_route(struct xb_dns_service *s, xb_dns_service_route_fn fn, void *ctx);
/* Tunnel ti (of the committed policy) is up again: servers reached
 * through it that timed out are asked in their turn at once. */
void xb_dns_service_tunnel_up(struct xb_dns_service *s, size_t ti);
/* Tunnel ti is down: queries waiting on a server through it go on to
 * their next server now, not when their try times out. */
void xb_dns_service_tunnel_down(struct xb_dns_service *s, size_t ti);
int xb_dns_service_fd(const struct xb_dns_service *s);
void xb_dns_service_process(struct xb_dns_service *s);
/* The UDP listening sockets and the tap (at most XB_DNS_SERVICE_UDP_FDS)
 * are the caller's to watch, in its own epoll set (one wakeup, one
 * epoll_wait per batch of queries): their fds after every commit or
 * xb_dns_service_set_tap(), and a readable one handed back. _ready returns
 * false for an fd that is not one of them. */
#define XB_DNS_SERVICE_UDP_FDS 3
int xb_dns_service_udp_fds(const struct xb_dns_service *s, int fds[XB_DNS_SERVICE_UDP_FDS]);
bool xb_dns_service_udp_ready(struct xb_dns_service *s, int fd);
/* Queries from the device interface's local UDP tap (tunnel/tap.h) on fd
 * (an AF_UNIX datagram socket, taken over; -1: none, the old one closed):
 * each frame's source address is the client, exactly as a UDP socket's
 * source address is; answers go back framed, cut to fit mtu. */
void xb_dns_service_set_tap(struct xb_dns_service *s, int fd, unsigned mtu);
bool xb_dns_service_has_tap(const struct xb_dns_service *s);
/* Bind the listening sockets to the device interface again, by name: after
 * it was deleted and made again (a new ifindex). */
void xb_dns_service_rebind(struct xb_dns_service *s);
/* Reopen the query log (SIGHUP). */
void xb_dns_service_reopen_log(struct xb_dns_service *s);
/* Counters and settings for `xborderctl dns'. */
json_t *xb_dns_service_status(const struct xb_dns_service *s);
/* Does the learned set `set' (an access rule's _dns4/_dns6, named as
 * xb_compile_set_name() names it) hold addr (4 or 16 bytes) now? Then
 * *expires_wall gets when it times out (wall-clock seconds). */
bool xb_dns_service_learned(struct xb_dns_service *s, const char *set, int family, const uint8_t *addr,
			    int64_t *expires_wall);
/* The cluster (docs/ha.md, "Shared state"): fn hears of every destination
 * this gateway learns from an answer (new, or its expiry moved), with its
 * set, the rule's domains' fingerprint and its expiry (wall-clock s). NULL:
 * nobody. */
typedef void (*xb_dns_service_learn_fn)(void *ctx, const char *set, int family,
					const uint8_t *addr, uint32_t fp, int64_t expires_wall);
void xb_dns_service_on_learn(struct xb_dns_service *s, xb_dns_service_learn_fn fn, void *ctx);
/* A destination another gateway learned: into this gateway's table and
 * set until expires_wall (at most the policy's ttl_max + grace from now),
 * when the running policy has an access rule with that set and the same
 * domains (fp), and the address passes the same filter as an answer's
 * (dns_learn.h). Not told to fn. 0 put, 1 nothing to do (expired), or
 * -errno with err: -ENOENT no such rule here, -EPERM refused by the filter. */
int xb_dns_service_learn_remote(struct xb_dns_service *s, const char *set, int family,
				const uint8_t *addr, uint32_t fp, int64_t expires_wall, char *err,
				size_t errlen);
/* Saves learned destinations, closes everything. NULL is ignored. */
void xb_dns_service_free(struct xb_dns_service *s);

#endif
