/* From a policy to the kernel: interfaces, addresses, routes, rules and the
 * nftables table. Start and reload share these functions; on reload they
 * are given the old policy and change only what differs, so that an
 * unchanged tunnel keeps its WireGuard session and an unchanged device
 * keeps its peer, its session and its open connections.
 */
#include "gateway/daemon.h"
#include "gateway/health/health.h"
#include "common/log.h"
#include "tunnel/blake2s.h"
#include "tunnel/device.h"
#include "tunnel/tap.h"

#include <linux/rtnetlink.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UNREACHABLE_METRIC 0x7fffffffu	/* behind every live route */
#define DEVIF_MTU 1420			/* devices reach us over the internet */

static struct xb_prefix host_prefix(int family, const void *addr, unsigned cidr)
{
	struct xb_prefix pf = { .family = (sa_family_t)family, .cidr = (uint8_t)cidr };

	memcpy(pf.addr, addr, family == AF_INET ? 4 : 16);
	return pf;
}

static bool same_prefix(const struct xb_prefix *a, const struct xb_prefix *b)
{
	return a->family == b->family && a->cidr == b->cidr && !memcmp(a->addr, b->addr, 16);
}

/* Replace address old (may be NULL) by new (may be NULL) on ifindex. */
static int swap_addr(struct xb_daemon *d, unsigned ifindex, const struct xb_prefix *old,
		     const struct xb_prefix *new, const char *ifname)
{
	int e;

	if (old && new && same_prefix(old, new))
		return 0;
	if (old && (e = xb_rtnl_addr(&d->rtnl, false, ifindex, old)) < 0)
		log_warnx("%s: removing an address: %s", ifname, strerror(-e));
	if (new && (e = xb_rtnl_addr(&d->rtnl, true, ifindex, new)) < 0) {
		char buf[INET6_ADDRSTRLEN];
		inet_ntop(new->family, new->addr, buf, sizeof(buf));
		log_warnx("%s: adding address %s/%u: %s", ifname, buf, new->cidr, strerror(-e));
		return e;
	}
	return 0;
}

/* ---- keys ----
 *
 * Private and preshared keys live in WireGuard: the policy in force holds
 * only public ones (xb_policy_wipe_keys, docs/security.md). An interface
 * that keeps its key is not sent it again; what needs a wiped key back — a
 * reload switching back to the running policy, an interface re-created
 * after it died — takes it from the running interface first, and the copy
 * is wiped again after. */

/* A wiped (all-zero) key is never sent: to WireGuard it would mean
 * "remove the key". */
static void set_key(struct wg_conf *c, const uint8_t key[static WG_KEY_LEN], bool want)
{
	c->has_private_key = want && !wg_key_is_zero(key);
	if (c->has_private_key)
		memcpy(c->private_key, key, WG_KEY_LEN);
}

/* The private key of w and, with peer, that peer's preshared key. */
static bool keys_of(struct xb_wgif *w, uint8_t key[static WG_KEY_LEN], const uint8_t *peer,
		    uint8_t *psk)
{
	struct wg_conf c;
	bool ok = xb_wgif_get(w, &c) == 0 && c.has_private_key;

	if (ok)
		memcpy(key, c.private_key, WG_KEY_LEN);
	for (size_t i = 0; ok && peer && psk && i < c.n_peers; i++)
		if (!memcmp(c.peers[i].public_key, peer, WG_KEY_LEN))
			memcpy(psk, c.peers[i].preshared_key, WG_KEY_LEN);
	wg_conf_free(&c);
	return ok;
}

static void tunnel_keys_back(struct xb_tunnel_rt *rt, struct xb_tunnel *t)
{
	if (t->type == XB_TUNNEL_WIREGUARD && rt->wg.ifname[0] &&
	    !keys_of(&rt->wg, t->key.key, t->peer_public_key, t->has_psk ? t->psk.key : NULL))
		log_warnx("tunnel %s: cannot read its keys back from %s", t->name, rt->wg.ifname);
}

void xb_apply_keys_back(struct xb_daemon *d, struct xb_policy *p, bool devif)
{
	for (size_t i = 0; d->tunnels && i < p->n_tunnels; i++)
		tunnel_keys_back(&d->tunnels[i], &p->tunnels[i]);
	if (devif && d->devif.ifname[0] && !keys_of(&d->devif, p->gateway.key.key, NULL, NULL))
		log_warnx("%s: cannot read its private key back", d->devif.ifname);
}

/* ---- the device interface ---- */

/* fresh: the interface has no peer of this key yet, so it has no allowed
 * IPs to replace either. */
static bool device_peer(struct wg_conf *c, const struct xb_device *dv, bool fresh)
{
	struct wg_peer_conf *pc = wg_conf_add_peer(c);
	struct xb_prefix pf;

	if (!pc)
		return false;
	memcpy(pc->public_key, dv->public_key, WG_KEY_LEN);
	pc->replace_allowed_ips = !fresh;
	if (dv->has4) {
		pf = host_prefix(AF_INET, &dv->address4, 32);
		if (!xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &pf))
			return false;
	}
	if (dv->has6) {
		pf = host_prefix(AF_INET6, &dv->address6, 128);
		if (!xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &pf))
			return false;
	}
	return true;
}

static bool same_addresses(const struct xb_device *a, const struct xb_device *b)
{
	return a->has4 == b->has4 && a->has6 == b->has6 &&
	       (!a->has4 || a->address4.s_addr == b->address4.s_addr) &&
	       (!a->has6 || !memcmp(&a->address6, &b->address6, sizeof(a->address6)));
}

/* Every device of p as a peer; on reload, only devices that are new or
 * whose addresses changed, and devices of old no longer in p (by key) are
 * removed. Peers that stay keep their sessions. Unchanged devices are left
 * out because replacing a peer's allowed IPs costs the userspace driver a
 * walk of the whole allowed-IPs trie: sent for every device, a reload of
 * 10 000 devices took seconds (bench/gateway.sh). */
static int devif_conf(struct wg_conf *c, const struct xb_policy *old, const struct xb_policy *p)
{
	set_key(c, p->gateway.key.key, !old || memcmp(old->gateway.key.public_key,
						     p->gateway.key.public_key, WG_KEY_LEN));
	c->listen_port = p->gateway.listen_port;
	c->has_listen_port = true;
	c->replace_peers = !old;
	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *dv = &p->devices[i];
		const struct xb_device *was = old ? xb_policy_device_by_key(old, dv->public_key) : NULL;
		struct wg_peer_conf *pc;

		/* An expired device has no peer (gateway/enrol.h): was && the
		 * old one live is the only case with a peer to remove. */
		if (was && was->expired)
			was = NULL;
		if (dv->expired && was) {
			if (!(pc = wg_conf_add_peer(c)))
				return ENOMEM;
			memcpy(pc->public_key, dv->public_key, WG_KEY_LEN);
			pc->remove = true;
		}
		if (dv->expired || (was && same_addresses(was, dv)))
			continue;
		if (!device_peer(c, dv, !was))
			return ENOMEM;
	}
	for (size_t i = 0; old && i < old->n_devices; i++) {
		struct wg_peer_conf *pc;

		if (old->devices[i].expired || xb_policy_device_by_key(p, old->devices[i].public_key))
			continue;
		if (!(pc = wg_conf_add_peer(c)))
			return ENOMEM;
		memcpy(pc->public_key, old->devices[i].public_key, WG_KEY_LEN);
		pc->remove = true;
	}
	return 0;
}

static void devif_addrs(const struct xb_policy *p, struct xb_prefix v[2], bool has[2])
{
	has[0] = p->gateway.has_pool4;
	has[1] = p->gateway.has_pool6;
	if (has[0])
		v[0] = host_prefix(AF_INET, &p->gateway.address4, p->gateway.pool4.cidr);
	if (has[1])
		v[1] = host_prefix(AF_INET6, &p->gateway.address6, p->gateway.pool6.cidr);
}

int xb_apply_devif(struct xb_daemon *d, const struct xb_policy *old, const struct xb_policy *p)
{
	struct wg_conf c = { 0 };
	struct xb_prefix na[2], oa[2];
	bool nh[2], oh[2] = { false, false };
	const char *ifname = p->gateway.interface;
	int e;

	if (old && strcmp(old->gateway.interface, ifname)) {
		xb_wgif_destroy(&d->devif, &d->rtnl);
		old = NULL;
	}
	if (!old && (e = xb_wgif_create(&d->devif, &d->rtnl, ifname, XB_BACKEND_AUTO,
					DEVIF_MTU)) < 0)
		return e;
	if ((e = devif_conf(&c, old, p)) == 0)
		e = xb_wgif_set(&d->devif, &c);
	wg_conf_free(&c);
	if (e) {
		log_warnx("%s: configuring %zu device peers: %s", ifname, p->n_devices, strerror(e));
		return -e;
	}
	devif_addrs(p, na, nh);
	if (old)
		devif_addrs(old, oa, oh);
	for (int f = 0; f < 2; f++)
		if ((e = swap_addr(d, d->devif.ifindex, oh[f] ? &oa[f] : NULL, nh[f] ? &na[f] : NULL,
				   ifname)) < 0)
			return e;
	if ((e = xb_rtnl_link_up(&d->rtnl, d->devif.ifindex, true)) < 0) {
		log_warnx("%s: setting up: %s", ifname, strerror(-e));
		return e;
	}
	return 0;
}

/* Socket buffers of the tap's socketpair: a burst of queries (or answers)
 * waits there while the other thread is busy. */
#define DNS_TAP_BUF	(1 << 20)

static size_t dns_tap_endpoints(const struct xb_policy *p, struct wg_tap_endpoint eps[2])
{
	size_t n = 0;

	if (!p->dns.enabled || !p->gateway.dns_tap)
		return 0;
	if (p->gateway.has_pool4) {
		eps[n] = (struct wg_tap_endpoint){ .family = 4, .port = p->gateway.dns_port };
		memcpy(eps[n++].addr, &p->gateway.address4, 4);
	}
	if (p->gateway.has_pool6) {
		eps[n] = (struct wg_tap_endpoint){ .family = 6, .port = p->gateway.dns_port };
		memcpy(eps[n++].addr, &p->gateway.address6, 16);
	}
	return n;
}

static void tap_off(struct xb_daemon *d)
{
	wg_device_set_tap(d->devif.dev, -1, NULL, 0);
	xb_dns_service_set_tap(d->dns, -1, 0);
}

void xb_apply_dns_tap(struct xb_daemon *d, const struct xb_policy *p)
{
	struct wg_tap_endpoint eps[2];
	size_t n = dns_tap_endpoints(p, eps);
	int sp[2], buf = DNS_TAP_BUF, e, cur;

	if (!d->dns || !d->devif.dev)
		return;		/* the kernel's WireGuard: no tap to have */
	if (!n) {
		tap_off(d);
		return;
	}
	/* Both ends still joined (the same interface, the same service): new
	 * endpoints at most, and the queries in flight through it stay. This
	 * thread is the only one that changes the device's tap. */
	if ((cur = wg_tap_fd(d->devif.dev)) >= 0 && xb_dns_service_has_tap(d->dns) &&
	    wg_device_set_tap(d->devif.dev, cur, eps, n) == 0)
		return;
	/* From here on a failure leaves no tap on either side, never an old
	 * one with the old endpoints. */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
		log_warn("%s: DNS tap: socketpair (DNS goes through the kernel)", d->devif.ifname);
		tap_off(d);
		return;
	}
	for (int i = 0; i < 2; i++) {
		setsockopt(sp[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		setsockopt(sp[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	}
	if ((e = wg_device_set_tap(d->devif.dev, sp[0], eps, n)) < 0) {
		log_warnx("%s: DNS tap: %s (DNS goes through the kernel)", d->devif.ifname, strerror(-e));
		close(sp[0]);
		close(sp[1]);
		tap_off(d);
		return;
	}
	xb_dns_service_set_tap(d->dns, sp[1], DEVIF_MTU);
	log_info("%s: DNS over UDP to the gateway's port %u answered through the tap, past the kernel",
		 d->devif.ifname, p->gateway.dns_port);
}

/* ---- tunnels ---- */

/* The endpoint as an address: literals directly, names through the
 * resolver (the first address it gives). */
static bool resolve(const struct xb_tunnel *t, union xb_sockaddr *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV }, *res;
	char port[8];
	int e;

	memset(out, 0, sizeof(*out));
	if (!t->endpoint_host)
		return false;
	if (!t->endpoint_is_name)
		hints.ai_flags |= AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", t->endpoint_port);
	if ((e = getaddrinfo(t->endpoint_host, port, &hints, &res))) {
		log_warnx("tunnel %s: cannot resolve endpoint `%s': %s", t->name, t->endpoint_host,
			  gai_strerror(e));
		return false;
	}
	if (res->ai_addrlen <= sizeof(*out))
		memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return out->sa.sa_family != AF_UNSPEC;
}

static int tunnel_conf(struct wg_conf *c, const struct xb_tunnel *t, const struct xb_tunnel *old,
		       const union xb_sockaddr *ep)
{
	struct wg_peer_conf *pc;

	set_key(c, t->key.key, !old || memcmp(old->key.public_key, t->key.public_key, WG_KEY_LEN));
	c->listen_port = t->listen_port;
	c->has_listen_port = !old || t->listen_port != old->listen_port;
	c->replace_peers = !old || memcmp(old->peer_public_key, t->peer_public_key, WG_KEY_LEN);
	if (!(pc = wg_conf_add_peer(c)))
		return ENOMEM;
	memcpy(pc->public_key, t->peer_public_key, WG_KEY_LEN);
	pc->has_preshared_key = true;	/* all zero without one: removes it */
	if (t->has_psk)
		memcpy(pc->preshared_key, t->psk.key, WG_KEY_LEN);
	if (ep->sa.sa_family != AF_UNSPEC)
		pc->endpoint = *ep;
	pc->persistent_keepalive = t->keepalive;
	pc->has_persistent_keepalive = true;
	pc->replace_allowed_ips = true;
	for (size_t i = 0; i < t->n_allowed_ips; i++)
		if (!xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &t->allowed_ips[i]))
			return ENOMEM;
	return 0;
}

/* No reverse-path filter of our own on a tunnel: replies from mainland
 * origins arrive on it although the main table routes those origins
 * elsewhere, or nowhere. The kernel applies the larger of this value and
 * conf/all/rp_filter, so a strict "all" still breaks tunnels: said once. */
static void no_rp_filter(const char *ifname)
{
	static bool warned;
	char path[96];
	FILE *f;

	if (!warned && (f = fopen("/proc/sys/net/ipv4/conf/all/rp_filter", "r"))) {
		if (fgetc(f) == '1')
			log_warnx("net.ipv4.conf.all.rp_filter is 1 (strict): replies through tunnels "
				  "will be dropped; set it to 0 or 2");
		warned = true;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/rp_filter", ifname);
	if (!(f = fopen(path, "w"))) {
		log_warn("%s: setting rp_filter", ifname);
		return;
	}
	if ((fputs("0\n", f) < 0) | (fclose(f) != 0))
		log_warn("%s: setting rp_filter", ifname);
}

/* Addresses, MTU, rp_filter and link up: the same for both types. */
static int tunnel_addrs(struct xb_daemon *d, unsigned ifindex, const char *ifname,
			const struct xb_tunnel *old, const struct xb_tunnel *t)
{
	int e;

	if ((e = swap_addr(d, ifindex, old && old->has_address4 ? &old->address4 : NULL,
			   t->has_address4 ? &t->address4 : NULL, ifname)) < 0 ||
	    (e = swap_addr(d, ifindex, old && old->has_address6 ? &old->address6 : NULL,
			   t->has_address6 ? &t->address6 : NULL, ifname)) < 0)
		return e;
	if (old && old->mtu != t->mtu && (e = xb_rtnl_link_mtu(&d->rtnl, ifindex, t->mtu)) < 0)
		log_warnx("%s: setting MTU %u: %s", ifname, t->mtu, strerror(-e));
	no_rp_filter(ifname);
	if ((e = xb_rtnl_link_up(&d->rtnl, ifindex, true)) < 0)
		log_warnx("%s: setting up: %s", ifname, strerror(-e));
	return e;
}

/* The GRE remote as an address of the tunnel's outer family: the literal,
 * or the first address the resolver gives for the name. */
static bool resolve_gre(const struct xb_tunnel *t, union xb_sockaddr *out)
{
	struct addrinfo hints = { .ai_family = t->gre.family, .ai_socktype = SOCK_DGRAM }, *res;
	int e;

	memset(out, 0, sizeof(*out));
	if (!t->gre.remote_is_name) {
		out->sa.sa_family = (sa_family_t)t->gre.family;
		if (t->gre.family == AF_INET)
			memcpy(&out->in.sin_addr, &t->gre.remote_addr, 4);
		else
			out->in6.sin6_addr = t->gre.remote_addr;
		return true;
	}
	if ((e = getaddrinfo(t->gre.remote, NULL, &hints, &res))) {
		log_warnx("tunnel %s: cannot resolve remote `%s': %s", t->name, t->gre.remote,
			  gai_strerror(e));
		return false;
	}
	if (res->ai_addrlen <= sizeof(*out))
		memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return out->sa.sa_family == t->gre.family;
}

static struct in6_addr gre_remote(const union xb_sockaddr *sa)
{
	struct in6_addr a = { 0 };

	if (sa->sa.sa_family == AF_INET)
		memcpy(&a, &sa->in.sin_addr, 4);
	else
		a = sa->in6.sin6_addr;
	return a;
}

/* A GRE tunnel: created unless kept (keepable() compared every outer
 * setting: a GRE link cannot change them in place). A remote name that does
 * not resolve leaves the tunnel without an interface until it does. */
static int gre_up(struct xb_daemon *d, struct xb_tunnel_rt *rt, const struct xb_tunnel *old,
		  const struct xb_tunnel *t)
{
	struct gre_config c;
	struct in6_addr remote;
	int e;

	if (!old) {
		rt->resolved_at = time(NULL);
		if (!resolve_gre(t, &rt->resolved))
			return -EHOSTUNREACH;
		remote = gre_remote(&rt->resolved);
		xb_greif_config(&c, t, &remote);
		if ((e = xb_greif_create(&rt->gre, &d->rtnl, &c, t->backend)) < 0)
			return e;
	}
	return tunnel_addrs(d, rt->gre.ifindex, rt->gre.ifname, old, t);
}

static void rt_destroy(struct xb_daemon *d, struct xb_tunnel_rt *rt)
{
	xb_wgif_destroy(&rt->wg, &d->rtnl);
	xb_greif_destroy(&rt->gre, &d->rtnl);
}

/* Bring tunnel t up in rt: kept from old (same name and backend) or new. */
static int tunnel_up(struct xb_daemon *d, struct xb_tunnel_rt *rt, const struct xb_tunnel *old,
		     const struct xb_tunnel *t)
{
	struct wg_conf c = { 0 };
	int e;

	if (t->type == XB_TUNNEL_GRE)
		return gre_up(d, rt, old, t);
	if (!old && (e = xb_wgif_create(&rt->wg, &d->rtnl, t->ifname, t->backend, t->mtu)) < 0)
		return e;
	if (!resolve(t, &rt->resolved))
		log_warnx("tunnel %s: no endpoint yet; waiting for the partner to reach us", t->name);
	rt->resolved_at = time(NULL);
	if ((e = tunnel_conf(&c, t, old, &rt->resolved)) == 0)
		e = xb_wgif_set(&rt->wg, &c);
	wg_conf_free(&c);
	if (e) {
		log_warnx("tunnel %s: configuring %s: %s", t->name, t->ifname, strerror(e));
		return -e;
	}
	return tunnel_addrs(d, rt->wg.ifindex, rt->wg.ifname, old, t);
}

static bool same_gre(const struct xb_tunnel *a, const struct xb_tunnel *b)
{
	const struct xb_gre *x = &a->gre, *y = &b->gre;

	return x->family == y->family && !memcmp(&x->local, &y->local, sizeof(x->local)) &&
	       !strcmp(x->remote, y->remote) && x->has_key == y->has_key &&
	       (!x->has_key || x->key == y->key) && x->sequence == y->sequence &&
	       x->checksum == y->checksum && x->keepalive == y->keepalive &&
	       x->keepalive_retries == y->keepalive_retries && a->mtu == b->mtu;
}

/* WireGuard tunnels are reconfigured in place; GRE ones only when their
 * outer side is unchanged. */
static bool keepable(const struct xb_tunnel *a, const struct xb_tunnel *b)
{
	return !strcmp(a->name, b->name) && a->backend == b->backend && a->type == b->type &&
	       (a->type != XB_TUNNEL_GRE || same_gre(a, b));
}

/* A new runtime array for p's tunnels, parallel to p->tunnels, in *out.
 *
 * Old tunnels with the same name and backend are kept (their interface and
 * WireGuard session live on); the others are destroyed first, since a new
 * tunnel may reuse the name (a changed backend). Then every tunnel is
 * brought up or updated; one that fails stays in the array without an
 * interface (ifindex 0) and the others still go ahead.
 *
 * Returns 0, -1 when some tunnel failed (logged), or -ENOMEM before
 * anything was changed (then *out and d->tunnels are untouched). */
int xb_apply_tunnels(struct xb_daemon *d, const struct xb_policy *old, const struct xb_policy *p,
		     struct xb_tunnel_rt **out, char *summary, size_t len)
{
	size_t n_old = old ? old->n_tunnels : 0, n_kept = 0, n_gone = 0;
	struct xb_tunnel_rt *v = calloc(p->n_tunnels + 1, sizeof(*v));
	bool *kept = calloc(n_old + 1, sizeof(bool));
	size_t *match = calloc(p->n_tunnels + 1, sizeof(size_t));
	int e = 0;

	if (!v || !kept || !match) {
		free(v);
		free(kept);
		free(match);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n_tunnels; i++) {
		match[i] = SIZE_MAX;
		for (size_t j = 0; j < n_old && match[i] == SIZE_MAX; j++)
			if (!kept[j] && keepable(&old->tunnels[j], &p->tunnels[i])) {
				kept[j] = true;
				match[i] = j;
				n_kept++;
			}
	}
	for (size_t j = 0; j < n_old; j++)
		if (!kept[j]) {
			rt_destroy(d, &d->tunnels[j]);
			n_gone++;
		}
	for (size_t i = 0; i < p->n_tunnels; i++) {
		const struct xb_tunnel *o = NULL;

		if (match[i] != SIZE_MAX) {
			v[i] = d->tunnels[match[i]];
			o = &old->tunnels[match[i]];
		}
		if (tunnel_up(d, &v[i], o, &p->tunnels[i]) < 0)
			e = -1;
	}
	free(kept);
	free(match);
	free(d->tunnels);
	d->tunnels = NULL;
	*out = v;
	if (summary)
		snprintf(summary, len, "%zu tunnels kept, %zu added, %zu removed", n_kept,
			 p->n_tunnels - n_kept, n_gone);
	return e;
}

/* A GRE remote given by name (or a tunnel whose name never resolved):
 * a new address means a new interface, and the paths' routes follow it. */
static void resolve_gre_again(struct xb_daemon *d, size_t i, time_t now, bool force)
{
	const struct xb_tunnel *t = &d->policy->tunnels[i];
	struct xb_tunnel_rt *rt = &d->tunnels[i];
	union xb_sockaddr sa;

	if (!t->gre.remote_is_name || (!force && now - rt->resolved_at < 60))
		return;
	rt->resolved_at = now;
	if (!resolve_gre(t, &sa) || (rt->gre.ifindex && !memcmp(&sa, &rt->resolved, sizeof(sa))))
		return;
	log_info("tunnel %s: remote %s now resolves to a new address; re-creating %s", t->name,
		 t->gre.remote, t->ifname);
	rt_destroy(d, rt);
	if (gre_up(d, rt, NULL, t) == 0)
		xb_apply_routes(d, &d->plan, NULL);
}

/* Re-resolve endpoints given by name every minute (or now, with force);
 * a changed address is applied without touching the session. */
void xb_apply_resolve(struct xb_daemon *d, bool force)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < d->policy->n_tunnels; i++) {
		const struct xb_tunnel *t = &d->policy->tunnels[i];
		struct xb_tunnel_rt *rt = &d->tunnels[i];
		union xb_sockaddr sa;
		struct wg_conf c = { 0 };
		struct wg_peer_conf *pc;
		char buf[64];

		if (t->type == XB_TUNNEL_GRE) {
			resolve_gre_again(d, i, now, force);
			continue;
		}
		if (!t->endpoint_is_name || (!force && now - rt->resolved_at < 60))
			continue;
		rt->resolved_at = now;
		if (!resolve(t, &sa) || !memcmp(&sa, &rt->resolved, sizeof(sa)))
			continue;
		rt->resolved = sa;
		if (!(pc = wg_conf_add_peer(&c)))
			continue;
		memcpy(pc->public_key, t->peer_public_key, WG_KEY_LEN);
		pc->update_only = true;
		pc->endpoint = sa;
		xb_endpoint_format(buf, sizeof(buf), &sa);
		if (xb_wgif_set(&rt->wg, &c) == 0)
			log_info("tunnel %s: endpoint %s now resolves to %s", t->name, t->endpoint_host, buf);
		wg_conf_free(&c);
	}
}

/* ---- routes and rules ---- */

static bool same_path(const struct xb_path *a, const struct xb_path *b)
{
	return !strcmp(a->name, b->name) && a->internet_fallback == b->internet_fallback;
}

/* A path's table: an unreachable default behind the live route unless it
 * may fall back to the internet, the live route out of its active tunnel,
 * and the fwmark rule. A table that served another path before is
 * emptied first (the leak guard in the forward chain covers the moment). */
static int path_routes(struct xb_daemon *d, const struct xb_path *pa, const struct xb_path *was)
{
	static const sa_family_t fams[2] = { AF_INET, AF_INET6 };
	size_t ai = xb_health_active(d->health, pa);
	unsigned ifindex = ai != SIZE_MAX && d->tunnels ? xb_tunnel_rt_ifindex(&d->tunnels[ai]) : 0;
	int e;

	if (was && !same_path(pa, was))
		xb_rtnl_sweep(&d->rtnl, 1, 0, pa->table, pa->table);
	for (int f = 0; f < 2; f++) {
		struct xb_route rt = { .dst = { .family = fams[f] }, .table = pa->table };
		struct xb_iprule ru = { fams[f], pa->mark, XB_MARK_MASK, pa->table, pa->priority };

		if (!pa->internet_fallback) {
			rt.type = RTN_UNREACHABLE;
			rt.metric = UNREACHABLE_METRIC;
			if ((e = xb_rtnl_route(&d->rtnl, true, &rt)) < 0)
				return e;
			rt.type = 0;
			rt.metric = 0;
		}
		if (ifindex) {
			rt.ifindex = ifindex;
			if ((e = xb_rtnl_route(&d->rtnl, true, &rt)) < 0)
				return e;
		} else {
			xb_rtnl_route(&d->rtnl, false, &rt);	/* no tunnel: no live route */
		}
		if ((e = xb_rtnl_rule(&d->rtnl, true, &ru)) < 0)
			return e;
	}
	return 0;
}

/* The path's live default route out of tunnel ti (XB_STEER_NONE: none), per
 * family: one RTM_NEWROUTE with NLM_F_REPLACE swaps the device of the
 * route in place, so no packet finds the table without a route (the
 * unreachable default behind it has a metric of its own and stays). */
int xb_apply_path_live(struct xb_daemon *d, const struct xb_path *pa, size_t ti)
{
	static const sa_family_t fams[2] = { AF_INET, AF_INET6 };
	unsigned ifindex = ti != SIZE_MAX && d->tunnels ? xb_tunnel_rt_ifindex(&d->tunnels[ti]) : 0;
	int e, ret = 0;

	for (int f = 0; f < 2; f++) {
		struct xb_route rt = { .dst = { .family = fams[f] }, .table = pa->table,
				       .ifindex = ifindex };

		e = xb_rtnl_route(&d->rtnl, ifindex != 0, &rt);
		if (e < 0 && !(ifindex == 0 && e == -ESRCH) && !ret)
			ret = e;
	}
	return ret;
}

/* Routes and rules of every path, then removal of what the old plan had
 * beyond the new one: new paths are in place before old ones go, and a path
 * id always means the same mark, table and priority. */
int xb_apply_routes(struct xb_daemon *d, const struct xb_plan *plan,
		    const struct xb_plan *old)
{
	int e;

	for (size_t i = 0; i < plan->n_paths; i++)
		if ((e = path_routes(d, &plan->paths[i], old && i < old->n_paths ? &old->paths[i] : NULL)) < 0) {
			log_warnx("path %s: routes and rules: %s", plan->paths[i].name, strerror(-e));
			return e;
		}
	if (old && old->n_paths > plan->n_paths) {
		uint32_t first = (uint32_t)plan->n_paths + 1;
		e = xb_rtnl_sweep(&d->rtnl, XB_RULE_PRIO + first, XB_RULE_PRIO + XB_PATHS_MAX,
				  XB_TABLE_BASE + first, XB_TABLE_BASE + XB_PATHS_MAX);
		if (e < 0)
			log_warnx("removing routes and rules of old paths: %s", strerror(-e));
	}
	return 0;
}

/* ---- nftables ---- */

int xb_apply_nft(struct xb_daemon *d, const struct xb_policy *p, const struct xb_plan *plan)
{
	/* Posture: the devices passing now (xb_posture_rt_rebind came first). */
	struct xb_compile_opts o = { .posture_ok = d->prt ? xb_posture_rt_ok : NULL, .ctx = d->prt };
	char *script = xb_compile_nft(p, plan, &o), *err = NULL;
	int e;

	if (!script)
		return -ENOMEM;
	e = xb_nft_run(&d->nft, script, &err);
	if (e < 0)
		log_warnx("loading table inet %s: %s", XB_NFT_TABLE, err ? err : "failed");
	free(err);
	free(script);
	return e < 0 ? -EINVAL : 0;
}

void xb_apply_nft_remember(struct xb_daemon *d)
{
	char *script = xb_compile_nft(d->policy, &d->plan, NULL);

	d->has_table_hash = script != NULL;
	if (script)
		blake2s(d->table_hash, XB_TABLE_HASH, (const uint8_t *)script, strlen(script), NULL, 0);
	free(script);
}

int xb_apply_nft_check(struct xb_daemon *d, const struct xb_policy *p, const struct xb_plan *plan,
		       uint8_t hash[static XB_TABLE_HASH], char **err)
{
	char *script = xb_compile_nft(p, plan, NULL);
	int e;

	*err = NULL;
	if (!script) {
		*err = strdup("out of memory");
		return -1;
	}
	blake2s(hash, XB_TABLE_HASH, (const uint8_t *)script, strlen(script), NULL, 0);
	if (d->has_table_hash && !memcmp(hash, d->table_hash, XB_TABLE_HASH))
		e = 1;
	else
		e = xb_nft_check(&d->nft, script, err);
	free(script);
	return e;
}

/* Routes and rules in our ranges: what a crashed run may have left. */
void xb_apply_sweep(struct xb_daemon *d)
{
	int e;

	if (xb_nl_is_open(&d->rtnl.nl) && (e = xb_rtnl_sweep(&d->rtnl, XB_RULE_PRIO, XB_RULE_PRIO + XB_PATHS_MAX,
					     XB_TABLE_BASE, XB_TABLE_BASE + XB_PATHS_MAX)) < 0)
		log_warnx("removing routes and rules: %s", strerror(-e));
}

/* Everything the daemon made, the device interface first so that no device
 * packet is forwarded while the rest goes, the nftables table last. */
void xb_apply_teardown(struct xb_daemon *d)
{
	char *err = NULL;

	if (d->devif.ifname[0])
		xb_wgif_destroy(&d->devif, &d->rtnl);
	for (size_t i = 0; d->policy && d->tunnels && i < d->policy->n_tunnels; i++)
		rt_destroy(d, &d->tunnels[i]);
	free(d->tunnels);
	d->tunnels = NULL;
	xb_apply_sweep(d);
	if (d->nft.ctx && xb_nft_run(&d->nft, "destroy table inet " XB_NFT_TABLE "\n", &err) < 0) {
		free(err);
		err = NULL;
		/* nft before 1.0.8 has no destroy: delete, which fails if absent */
		xb_nft_run(&d->nft, "add table inet " XB_NFT_TABLE "\ndelete table inet "
			   XB_NFT_TABLE "\n", &err);
	}
	free(err);
}

/* A userspace interface whose thread ended (its TUN deleted by hand, its
 * UAPI socket removed) is a black hole: re-create it, with its routes. */
static bool died(struct xb_wgif *w)
{
	if (w->kernel || !w->running || pthread_tryjoin_np(w->thread, NULL))
		return false;
	w->running = false;
	log_warnx("%s: the userspace WireGuard interface went away; re-creating it", w->ifname);
	return true;
}

static bool gre_died(struct xb_greif *g)
{
	if (!g->dev || !gre_tunnel_ended(g->dev))
		return false;
	log_warnx("%s: the userspace GRE interface went away; re-creating it", g->ifname);
	return true;
}

bool xb_apply_revive(struct xb_daemon *d)
{
	bool routes = false, devif;

	/* A stopped userspace device still answers get: its keys come back
	 * from it before it goes. */
	for (size_t i = 0; d->tunnels && i < d->policy->n_tunnels; i++)
		if (died(&d->tunnels[i].wg) || gre_died(&d->tunnels[i].gre)) {
			tunnel_keys_back(&d->tunnels[i], &d->policy->tunnels[i]);
			rt_destroy(d, &d->tunnels[i]);
			tunnel_up(d, &d->tunnels[i], NULL, &d->policy->tunnels[i]);
			routes = true;
		}
	if (routes)
		xb_apply_routes(d, &d->plan, NULL);
	if ((devif = died(&d->devif))) {
		xb_apply_keys_back(d, d->policy, true);
		xb_wgif_destroy(&d->devif, &d->rtnl);
		xb_apply_devif(d, NULL, d->policy);
		xb_apply_dns_tap(d, d->policy);	/* the new interface has none */
	}
	if (routes || devif)
		xb_policy_wipe_keys(d->policy);
	return devif;
}
