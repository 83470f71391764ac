/* xborderd's life: start, the event loop, reload, stop. See daemon.h. */
#include "gateway/daemon.h"
#include "gateway/cluster/cluster.h"
#include "gateway/cluster/ha.h"
#include "gateway/enrol.h"
#include "gateway/control.h"
#include "gateway/kernel/conntrack.h"
#include "gateway/health/health.h"
#include "gateway/metrics.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/thread.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FORWARD4 "/proc/sys/net/ipv4/ip_forward"
#define FORWARD6 "/proc/sys/net/ipv6/conf/all/forwarding"

static int sysctl_get(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool sysctl_set(const char *path, int v)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fprintf(f, "%d\n", v) > 0;

	if (f && fclose(f))
		ok = false;
	return ok;
}

/* Forwarding on, remembering what was there to put it back at stop. The
 * files under /proc/sys/net are writable with CAP_NET_ADMIN over the network
 * namespace, so the unprivileged daemon (xborderd.service) can do this too;
 * where it cannot (a read-only /proc/sys), it says so and goes on — with
 * forwarding already on, nothing is missing. */
static void forwarding_on(struct xb_daemon *d, const struct xb_policy *p)
{
	if (d->saved_forward4 < 0 && sysctl_get(FORWARD4) == 0) {
		if (sysctl_set(FORWARD4, 1)) {
			d->saved_forward4 = 0;
			log_info("enabled IPv4 forwarding (%s)", FORWARD4);
		} else {
			log_warn("IPv4 forwarding is off and cannot be turned on: no device "
				 "traffic is forwarded; set net.ipv4.ip_forward=1 (%s)", FORWARD4);
		}
	}
	if (p->gateway.has_pool6 && d->saved_forward6 < 0 && sysctl_get(FORWARD6) == 0) {
		if (sysctl_set(FORWARD6, 1)) {
			d->saved_forward6 = 0;
			log_info("enabled IPv6 forwarding (%s)", FORWARD6);
		} else {
			log_warn("IPv6 forwarding is off and cannot be turned on: no device "
				 "traffic is forwarded over IPv6; set net.ipv6.conf.all.forwarding=1 (%s)",
				 FORWARD6);
		}
	}
}

static void forwarding_restore(struct xb_daemon *d)
{
	if (d->saved_forward4 >= 0)
		sysctl_set(FORWARD4, d->saved_forward4);
	if (d->saved_forward6 >= 0)
		sysctl_set(FORWARD6, d->saved_forward6);
	d->saved_forward4 = d->saved_forward6 = -1;
}

static char *state_file(const struct xb_policy *p)
{
	char *path;

	if (asprintf(&path, "%s/addresses", p->gateway.state_dir) < 0)
		return NULL;
	return path;
}

int xb_daemon_load(const char *path, bool use_state, struct xb_cluster *cluster,
		   struct xb_loaded *out, struct xb_errors *errs)
{
	struct xb_alloc_shared *shared = NULL;
	size_t n_shared = 0;
	char *state = NULL;
	int e = -1;

	memset(out, 0, sizeof(*out));
	if (!(out->policy = xb_policy_load(path, errs)))
		return -1;
	xb_enrol_judge(out->policy, time(NULL));
	if ((use_state && !(state = state_file(out->policy))) ||
	    (cluster && xb_daemon_cluster_allocs(cluster, &shared, &n_shared) < 0))
		errs->oom = true;
	else if (xb_policy_allocate_shared(out->policy, state, shared, n_shared, errs) == 0 &&
		 xb_plan_build(out->policy, &out->plan, errs) == 0 &&
		 (out->dns = xb_dns_service_prepare(out->policy, errs)))
		e = 0;
	free(shared);
	free(state);
	if (e)
		xb_loaded_free(out);
	return e;
}

void xb_loaded_free(struct xb_loaded *l)
{
	xb_dns_service_cfg_free(l->dns);
	xb_plan_free(&l->plan);
	xb_policy_free(l->policy);
	memset(l, 0, sizeof(*l));
}

/* The addresses of the policy in force, for the next start and reload. A
 * failure is logged: the policy runs, but a restart may move devices. */
static void save_addresses(const struct xb_policy *p)
{
	struct xb_errors errs = { 0 };
	char *state = state_file(p);

	if (mkdir(p->gateway.state_dir, 0750) < 0 && errno != EEXIST)
		log_warn("creating %s", p->gateway.state_dir);
	if (!state || xb_policy_save_addresses(p, state, &errs) < 0)
		log_warnx("%s: device addresses not saved: %s", state ? state : p->gateway.state_dir,
			  errs.n ? errs.v[0].msg : "out of memory");
	xb_errors_free(&errs);
	free(state);
}

static void log_errors(struct xb_errors *errs)
{
	xb_errors_sort(errs);
	for (size_t i = 0; i < errs->n; i++) {
		char *s = xb_error_str(&errs->v[i]);

		log_warnx("%s", s ? s : errs->v[i].msg);
		free(s);
	}
}

static void remember_reload(struct xb_daemon *d, bool ok, struct xb_errors *errs)
{
	for (size_t i = 0; i < d->last_reload.n_errors; i++)
		free(d->last_reload.errors[i]);
	free(d->last_reload.errors);
	d->last_reload.errors = NULL;
	d->last_reload.n_errors = 0;
	d->last_reload.ok = ok;
	d->last_reload.at = time(NULL);
	if (!errs || !errs->n || !(d->last_reload.errors = calloc(errs->n, sizeof(char *))))
		return;
	for (size_t i = 0; i < errs->n; i++) {
		char *s = xb_error_str(&errs->v[i]);

		if (s)
			d->last_reload.errors[d->last_reload.n_errors++] = s;
	}
}

static int add_watch(struct xb_daemon *d, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* The tick: every second, or every half watchdog interval when systemd's
 * is shorter than two seconds. What runs on it is timed by the clock, not
 * by counting ticks, so a faster tick changes nothing else. */
static struct itimerspec tick_interval(const struct xb_daemon *d)
{
	uint64_t us = xb_notify_watchdog_interval(&d->notify);
	struct itimerspec t = { { 1, 0 }, { 1, 0 } };

	if (us && us < 1000000) {
		t.it_interval.tv_sec = t.it_value.tv_sec = 0;
		t.it_interval.tv_nsec = t.it_value.tv_nsec = (long)(us < 1000 ? 1000 : us) * 1000;
	}
	return t;
}

/* The DNS service's UDP sockets go straight into our epoll set; a commit
 * may have opened new ones (a closed socket leaves the set by itself). */
static void watch_dns_udp(struct xb_daemon *d)
{
	int fds[XB_DNS_SERVICE_UDP_FDS], n = d->dns ? xb_dns_service_udp_fds(d->dns, fds) : 0;

	for (int i = 0; i < n; i++)
		if (add_watch(d, fds[i]) < 0 && errno != EEXIST)
			log_warn("dns: watching a socket");
}

/* The device interface was made again (revived, or put back by a failed
 * reload's switch back): the new tap's socket joins our epoll set, and the
 * sockets bound to the interface (SO_BINDTODEVICE keeps the index it found)
 * are bound to the new one. */
static void devif_remade(struct xb_daemon *d)
{
	watch_dns_udp(d);
	if (d->dns)
		xb_dns_service_rebind(d->dns);
	if (d->prt)
		xb_posture_rt_interface_remade(d->prt);
}

static int open_loop(struct xb_daemon *d)
{
	struct itimerspec tick = tick_interval(d);
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits it. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) ||
	    (d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (d->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(d->tickfd, 0, &tick, NULL) < 0 ||
	    (d->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    add_watch(d, d->sigfd) < 0 || add_watch(d, d->tickfd) < 0) {
		log_warn("setting up the event loop");
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int open_control(struct xb_daemon *d)
{
	const char *path = d->policy->gateway.control_socket;
	char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;

	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			log_warn("creating %s", dir);
	}
	free(dir);
	d->ctl = xb_ctl_open(path, getegid(), xb_daemon_commands, xb_daemon_n_commands, d);
	if (!d->ctl)
		return -1;
	return add_watch(d, xb_ctl_fd(d->ctl));
}

/* For the DNS service's tunnel rules: the tunnels of access rule `rule''s
 * path, or of a rule's own list, as steering orders them now. */
static size_t dns_route(void *ctx, size_t rule, const size_t *own, size_t n, size_t *out)
{
	struct xb_daemon *d = ctx;
	struct xb_path pa = { .tunnels = (size_t *)own, .n_tunnels = n };
	int pi;

	if (rule != SIZE_MAX) {
		if (rule >= d->policy->n_rules || (pi = d->plan.rule_path[rule]) < 0)
			return 0;	/* deny, or via internet alone */
		return xb_health_order(d->health, &d->plan.paths[pi], out);
	}
	return xb_health_order(d->health, &pa, out);
}

/* ---- what health asks of the daemon (health.h, struct xb_health_ops) ---- */

static int health_path_live(void *ctx, const struct xb_path *pa, size_t ti)
{
	return xb_apply_path_live(ctx, pa, ti);
}

/* WireGuard: the partner peer's counters and last handshake (the kernel's
 * through generic netlink, the userspace driver's directly); userspace GRE:
 * its counters and keepalive state. A kernel GRE link has none here. */
static void health_counters(void *ctx, size_t ti, struct xb_passive_counters *c)
{
	struct xb_daemon *d = ctx;
	struct xb_tunnel_rt *rt;
	struct wg_conf wc;

	*c = (struct xb_passive_counters){ .wall_sec = (int64_t)time(NULL) };
	if (!d->tunnels || !d->policy || ti >= d->policy->n_tunnels)
		return;
	rt = &d->tunnels[ti];
	if (d->policy->tunnels[ti].type == XB_TUNNEL_GRE) {
		struct gre_stats gs;

		if (!rt->gre.dev)
			return;
		xb_greif_stats(&rt->gre, &gs);
		c->valid = true;
		c->rx_bytes = gs.rx_bytes;
		c->tx_bytes = gs.tx_bytes;
		c->ka = gs.ka_state == GRE_KA_DOWN ? XB_PASSIVE_KA_DOWN :
			gs.ka_state == GRE_KA_UP ? XB_PASSIVE_KA_UP : XB_PASSIVE_KA_NONE;
		return;
	}
	if (xb_wgif_get(&rt->wg, &wc))
		return;
	if (wc.n_peers) {
		c->valid = c->wireguard = true;
		c->rx_bytes = wc.peers[0].rx_bytes;
		c->tx_bytes = wc.peers[0].tx_bytes;
		c->handshake_sec = wc.peers[0].last_handshake_sec;
	}
	wg_conf_free(&wc);
}

static int health_devices(void *ctx, struct wg_conf *c)
{
	struct xb_daemon *d = ctx;

	return xb_wgif_get(&d->devif, c) ? -1 : 0;
}

/* DNS follows the probes: see xb_dns_service_tunnel_down(). */
static void health_tunnel_state(void *ctx, size_t ti, bool up)
{
	struct xb_daemon *d = ctx;

	if (d->dns && up)
		xb_dns_service_tunnel_up(d->dns, ti);
	else if (d->dns)
		xb_dns_service_tunnel_down(d->dns, ti);
}

/* Probes and steering (health.h): before the routes, which it chooses.
 * Then the metrics server, which reads health's figures. */
static int start_health(struct xb_daemon *d)
{
	struct xb_health_ops ops = { .ctx = d, .path_live = health_path_live,
				     .counters = health_counters, .devices = health_devices,
				     .tunnel_state = health_tunnel_state };

	if (!(d->health = xb_health_new(&ops)) || add_watch(d, xb_health_fd(d->health)) < 0)
		return -1;
	if (xb_health_set(d->health, d->policy, &d->plan) < 0)
		return -1;
	return xb_metrics_set(&d->metrics, d->epfd, d->policy, d);
}

int xb_daemon_start(struct xb_daemon *d, const char *path)
{
	struct xb_errors errs = { 0 };
	struct xb_dns_service_cfg *dns = NULL;
	struct xb_loaded l;
	int e;

	memset(d, 0, sizeof(*d));
	d->epfd = d->sigfd = d->tickfd = -1;
	d->saved_forward4 = d->saved_forward6 = -1;
	d->started = time(NULL);
	xb_notify_open(&d->notify);
	if (!(d->policy_path = strdup(path)))
		return -1;
	if (xb_daemon_load(path, true, NULL, &l, &errs) < 0) {
		log_errors(&errs);
		xb_errors_free(&errs);
		log_warnx("%s: not starting", path);
		return -1;
	}
	xb_errors_free(&errs);
	d->policy = l.policy;
	d->plan = l.plan;
	dns = l.dns;
	d->loaded_at = time(NULL);
	remember_reload(d, true, NULL);
	if (open_loop(d) < 0)
		return -1;
	if ((e = xb_rtnl_open(&d->rtnl)) < 0 || (e = xb_nft_open(&d->nft)) < 0) {
		log_warnx("netlink: %s", strerror(-e));
		return -1;
	}
	/* The control socket first: a second daemon with the same policy stops
	 * here, before it touches anything of the running one. */
	if (open_control(d) < 0)
		return -1;
	/* Posture before the table: the compiler asks it who passes. */
	if (!(d->prt = xb_posture_rt_open(d->policy)))
		goto fail;
	/* Order: the table (it replaces a crashed run's atomically and names
	 * interfaces by name, so they need not exist yet) before anything can
	 * forward; routes and rules swept and rebuilt; the device interface up
	 * last, then forwarding. No device packet ever passes unjudged. */
	if (xb_apply_nft(d, d->policy, &d->plan) < 0)
		goto fail;
	xb_apply_sweep(d);
	if (xb_apply_tunnels(d, NULL, d->policy, &d->tunnels, NULL, 0) < 0 ||
	    start_health(d) < 0 ||
	    xb_apply_routes(d, &d->plan, NULL) < 0 ||
	    xb_apply_devif(d, NULL, d->policy) < 0)
		goto fail;
	forwarding_on(d, d->policy);
	/* DNS last: its answers go into the table's sets. */
	if (!(d->dns = xb_dns_service_new(d->policy->gateway.state_dir, xb_posture_rt_ok, d->prt)) ||
	    add_watch(d, xb_dns_service_fd(d->dns)) < 0) {
		goto fail;
	}
	xb_dns_service_set_route(d->dns, dns_route, d);
	/* The cluster before the posture endpoint listens: its gate is set
	 * before the first report. */
	if (xb_daemon_cluster_start(d, d->policy) < 0)
		goto fail;
	/* The drop log: without it the gateway runs, `drops' stays empty. */
	if (!xb_drops_open(&d->drops, XB_DROPS_GROUP) && add_watch(d, xb_drops_fd(&d->drops)) < 0)
		xb_drops_close(&d->drops);
	/* The posture endpoint listens (freebind) once the sets exist. */
	if (add_watch(d, xb_posture_rt_fd(d->prt)) < 0)
		goto fail;
	xb_posture_rt_listen(d->prt);
	xb_dns_service_commit(d->dns, dns);
	dns = NULL;
	xb_apply_dns_tap(d, d->policy);
	watch_dns_udp(d);
	save_addresses(d->policy);
	xb_policy_wipe_keys(d->policy);	/* WireGuard has them */
	xb_apply_nft_remember(d);
	log_info("%s: gateway up: %zu devices, %zu tunnels, %zu rules, %zu paths", path,
		 d->policy->n_devices, d->policy->n_tunnels, d->policy->n_rules, d->plan.n_paths);
	/* The control socket listens already: whoever waits for READY=1 can
	 * ask it at once. */
	xb_notify_send(&d->notify, "READY=1\nSTATUS=up: %zu devices, %zu tunnels, %zu rules",
		       d->policy->n_devices, d->policy->n_tunnels, d->policy->n_rules);
	if (d->notify.watchdog_usec)
		log_info("systemd watchdog: %llu ms", (unsigned long long)d->notify.watchdog_usec / 1000);
	return 0;
fail:
	xb_dns_service_cfg_free(dns);
	log_warnx("%s: start failed; removing what was built", path);
	xb_daemon_stop(d);
	return -1;
}

/* A reload's steps after the point of no return, in order. Each one can
 * fail; the ones done (the failed one included: it may have got half way)
 * are switched back to the running policy, in reverse. The table comes
 * last: it is one transaction the kernel has checked already, so that a
 * failure anywhere leaves the running table — and the DNS service's and
 * posture's entries in its sets — untouched. */
enum step { S_TUNNELS, S_POSTURE, S_DEVICES, S_HEALTH, S_ROUTES, S_LISTEN, S_TABLE, S_DONE };

static const char *const step_names[] = {
	"tunnels", "posture", "device peers", "tunnel health", "routes and rules",
	"posture endpoint", ("table inet " XB_NFT_TABLE),
};

/* From old to n. Returns S_DONE, or the step that failed with *undo the
 * number of steps to switch back. */
static enum step forward(struct xb_daemon *d, const struct xb_policy *old, const struct xb_plan *oplan,
			 const struct xb_loaded *n, char *tsum, size_t tlen, int *undo)
{
	struct xb_tunnel_rt *tunnels;
	int e;

	*undo = 0;
	/* -ENOMEM: refused before anything changed. */
	if ((e = xb_apply_tunnels(d, old, n->policy, &tunnels, tsum, tlen)) == -ENOMEM)
		return S_TUNNELS;
	d->tunnels = tunnels;
	d->policy = n->policy;
	*undo = S_TUNNELS + 1;
	if (e < 0)
		return S_TUNNELS;
	/* Every device against the new profiles, before the table that lists
	 * the passing ones is compiled. */
	*undo = S_POSTURE + 1;
	if (d->prt && xb_posture_rt_rebind(d->prt, n->policy) < 0)
		return S_POSTURE;
	*undo = S_DEVICES + 1;
	if (xb_apply_devif(d, old, n->policy) < 0)
		return S_DEVICES;
	*undo = S_HEALTH + 1;
	if (d->health && xb_health_set(d->health, n->policy, &n->plan) < 0)
		return S_HEALTH;
	if (xb_metrics_set(&d->metrics, d->epfd, n->policy, d) < 0)
		return S_HEALTH;
	*undo = S_ROUTES + 1;
	if (xb_apply_routes(d, &n->plan, oplan) < 0)
		return S_ROUTES;
	*undo = S_LISTEN + 1;
	if (d->prt && xb_posture_rt_listen(d->prt) < 0)
		return S_LISTEN;
	*undo = S_TABLE;	/* one transaction: a failed one changed nothing */
	if (xb_apply_nft(d, n->policy, &n->plan) < 0)
		return S_TABLE;
	return S_DONE;
}

/* Back from n to old, for the first undo steps. The order differs from
 * forward()'s where one step reads another's result: routes name tunnel
 * interfaces by index in the policy the tunnel array follows, so the
 * tunnels go back before the routes. Returns false when a step failed. */
static bool back(struct xb_daemon *d, struct xb_policy *old, const struct xb_plan *oplan,
		 const struct xb_loaded *n, int undo)
{
	struct xb_tunnel_rt *tunnels;
	bool ok = true;

	if (undo > S_POSTURE && d->prt && xb_posture_rt_rebind(d->prt, old) < 0)
		ok = false;
	if (undo > S_LISTEN && d->prt && xb_posture_rt_listen(d->prt) < 0)
		ok = false;
	if (undo > S_DEVICES && xb_apply_devif(d, n->policy, old) < 0)
		ok = false;
	if (undo > S_TUNNELS) {
		if (xb_apply_tunnels(d, n->policy, old, &tunnels, NULL, 0) == -ENOMEM)
			return false;	/* d->tunnels still follows n */
		d->tunnels = tunnels;
		d->policy = old;
	}
	if (undo > S_HEALTH && d->health && xb_health_set(d->health, old, oplan) < 0)
		ok = false;
	if (undo > S_HEALTH && xb_metrics_set(&d->metrics, d->epfd, old, d) < 0)
		ok = false;
	if (undo > S_ROUTES && xb_apply_routes(d, oplan, &n->plan) < 0)
		ok = false;
	return ok;
}

/* A device's address that p no longer gives it (p: the new policy, dv: an
 * old device). */
static bool moved(const struct xb_policy *p, const struct xb_device *dv, int family)
{
	const struct xb_device *now = xb_policy_device_by_key(p, dv->public_key);

	if (family == AF_INET)
		return dv->has4 && !(now && now->has4 && now->address4.s_addr == dv->address4.s_addr);
	return dv->has6 && !(now && now->has6 && !memcmp(&now->address6, &dv->address6, 16));
}

/* Flows of devices gone from the policy, or given another address: their
 * conntrack entries go, so that no reply of theirs is delivered to
 * whoever has the address next, and no flow the old ruleset let through
 * goes on. */
static void cut_moved(const struct xb_policy *old, const struct xb_policy *p)
{
	struct in6_addr *a = calloc(old->n_devices + 1, sizeof(*a));
	long *cut = calloc(old->n_devices + 1, sizeof(*cut)), total = 0, r;
	struct xb_conntrack ct;
	int e;

	if (!a || !cut) {
		log_warnx("reload: out of memory: flows of removed devices are not cut");
		free(a);
		free(cut);
		return;
	}
	if ((e = xb_conntrack_open(&ct)) < 0) {
		log_warnx("reload: conntrack: %s: flows of removed devices are not cut", strerror(-e));
		free(a);
		free(cut);
		return;
	}
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		size_t n = 0, alen = f ? 16 : 4;

		for (size_t i = 0; i < old->n_devices; i++)
			if (moved(p, &old->devices[i], family))
				memcpy((uint8_t *)a + n++ * alen,
				       f ? (const void *)&old->devices[i].address6
					 : (const void *)&old->devices[i].address4, alen);
		if (n && (r = xb_conntrack_cut_many(&ct, family, a, n, cut)) < 0)
			log_warnx("reload: cutting flows of %zu removed or moved devices: %s", n,
				  strerror((int)-r));
		else if (n)
			total += r;
	}
	if (total)
		log_info("reload: %ld flows of removed or re-addressed devices cut", total);
	xb_conntrack_close(&ct);
	free(a);
	free(cut);
}

static int reload_failed(struct xb_daemon *d, struct xb_errors *errs)
{
	log_errors(errs);
	log_warnx("%s: reload failed; the running policy stays", d->policy_path);
	remember_reload(d, false, errs);
	return -1;
}

static int reload(struct xb_daemon *d, struct xb_errors *errs, char *summary, size_t len)
{
	struct xb_policy *old = d->policy;
	struct xb_loaded n;
	char tsum[128] = "", *err = NULL;
	uint8_t hash[XB_TABLE_HASH];
	enum step st;
	int undo;

	/* Before the point of no return: the file, and the kernel's word on
	 * the new table. */
	if (xb_daemon_load(d->policy_path, true, d->cluster, &n, errs) < 0)
		return reload_failed(d, errs);
	if (xb_apply_nft_check(d, n.policy, &n.plan, hash, &err) < 0) {
		char *nl = err ? strchr(err, '\n') : NULL;

		if (nl)
			*nl = '\0';
		xb_errors_add(errs, d->policy_path, 0,
			      "reload failed at step \"check table inet %s\": the kernel refuses the "
			      "new table: %s; nothing was changed", XB_NFT_TABLE, err ? err : "?");
		free(err);
		xb_loaded_free(&n);
		return reload_failed(d, errs);
	}
	/* Switching back needs the running policy's keys, which only the
	 * interfaces hold: the tunnels' (few), and the device interface's
	 * when the new policy replaces it. */
	xb_apply_keys_back(d, old, strcmp(old->gateway.interface, n.policy->gateway.interface) ||
				   memcmp(old->gateway.key.public_key, n.policy->gateway.key.public_key,
					  WG_KEY_LEN));
	st = forward(d, old, &d->plan, &n, tsum, sizeof(tsum), &undo);
	xb_policy_wipe_keys(n.policy);
	if (st != S_DONE) {
		bool ok = back(d, old, &d->plan, &n, undo);

		/* A device interface made again by back() has no tap yet. */
		xb_apply_dns_tap(d, old);
		devif_remade(d);
		xb_policy_wipe_keys(old);
		xb_errors_add(errs, d->policy_path, 0,
			      "reload failed at step \"%s\" (see the daemon's log); %s", step_names[st],
			      ok ? "the steps before it were switched back: the running policy stays"
				 : "switching back failed too: the running policy is not whole, see the log");
		xb_loaded_free(&n);
		return reload_failed(d, errs);
	}
	forwarding_on(d, n.policy);
	/* The new table's _dns sets are empty: commit refills them. Sockets
	 * that cannot move stay where they were (logged). */
	if (d->dns && xb_dns_service_commit(d->dns, n.dns) < 0)
		log_warnx("%s: reload: the DNS service keeps its old sockets", d->policy_path);
	else if (!d->dns)
		xb_dns_service_cfg_free(n.dns);
	n.dns = NULL;
	xb_apply_dns_tap(d, n.policy);
	watch_dns_udp(d);
	xb_policy_wipe_keys(old);
	cut_moved(old, n.policy);
	xb_enrol_cut_expired(old, n.policy);
	save_addresses(n.policy);
	xb_plan_free(&d->plan);
	d->plan = n.plan;
	memcpy(d->table_hash, hash, XB_TABLE_HASH);
	d->has_table_hash = true;
	xb_daemon_cluster_reload(d, n.policy);	/* before old, which its settings point into */
	xb_policy_free(old);
	d->loaded_at = time(NULL);
	snprintf(summary, len, "%s; %zu devices, %zu rules", tsum, n.policy->n_devices,
		 n.policy->n_rules);
	log_info("%s: reloaded: %s", d->policy_path, summary);
	remember_reload(d, true, NULL);
	return 0;
}

/* systemd's reload protocol: RELOADING=1 with the monotonic time it began,
 * then READY=1 when done — also after a failed reload, since the old policy
 * keeps running. (systemd 252 shows the state; from 253 on, a unit of
 * Type=notify-reload waits for it.) */
int xb_daemon_reload(struct xb_daemon *d, struct xb_errors *errs, char *summary, size_t len)
{
	struct timespec now;
	int e;

	clock_gettime(CLOCK_MONOTONIC, &now);
	xb_notify_send(&d->notify, "RELOADING=1\nMONOTONIC_USEC=%llu",
		       (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000);
	e = reload(d, errs, summary, len);
	xb_notify_send(&d->notify, "READY=1\nSTATUS=%s: %zu devices, %zu tunnels, %zu rules",
		       e ? "last reload failed" : "up", d->policy->n_devices,
		       d->policy->n_tunnels, d->policy->n_rules);
	return e;
}

static void on_signal(struct xb_daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			struct xb_errors errs = { 0 };
			char summary[256];

			log_info("SIGHUP: reloading %s", d->policy_path);
			xb_daemon_reload(d, &errs, summary, sizeof(summary));
			xb_errors_free(&errs);
			if (d->dns)
				xb_dns_service_reopen_log(d->dns);
			if (d->prt)
				xb_posture_rt_reopen_log(d->prt);
		} else {
			log_info("%s: stopping", strsignal((int)si.ssi_signo));
			d->stopping = true;
		}
	}
}

static void on_tick(struct xb_daemon *d)
{
	uint64_t n;

	if (read(d->tickfd, &n, sizeof(n)) < 0)
		return;
	if (d->notify.watchdog_usec)
		xb_notify_send(&d->notify, "WATCHDOG=1");
	xb_apply_resolve(d, false);
	if (xb_apply_revive(d))
		devif_remade(d);
	if (d->prt)
		xb_posture_rt_tick(d->prt);
	if (d->cluster)
		xb_cluster_tick(d->cluster);
	if (d->metrics)
		xb_metrics_process(d->metrics);	/* its connection timeouts */
	xb_enrol_tick(d);
}

static void stall_note(struct xb_daemon *d, uint64_t t0)
{
	uint64_t ns = clock_mono_ns() - t0;

	d->stall.rounds++;
	d->stall.over_10ms += ns > 10 * NSEC_PER_MSEC;
	if (ns > d->stall.max_ns) {
		d->stall.max_ns = ns;
		d->stall.max_at = (uint64_t)time(NULL);
	}
}

int xb_daemon_run(struct xb_daemon *d)
{
	int e = xb_thread_batch();

	/* See common/thread.h: DNS queries in batches, not one wakeup each. */
	if (e < 0)
		log_warnx("main thread: SCHED_BATCH: %s (DNS queries cost a wakeup each)", strerror(-e));
	while (!d->stopping) {
		struct epoll_event ev[8];
		int n = epoll_wait(d->epfd, ev, 8, -1);
		uint64_t t0 = clock_mono_ns();

		if (n < 0 && errno != EINTR) {
			log_warn("epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == d->sigfd)
				on_signal(d);
			else if (ev[i].data.fd == d->tickfd)
				on_tick(d);
			else if (d->ctl && ev[i].data.fd == xb_ctl_fd(d->ctl))
				xb_ctl_process(d->ctl);
			else if (d->dns && ev[i].data.fd == xb_dns_service_fd(d->dns))
				xb_dns_service_process(d->dns);
			else if (d->dns && xb_dns_service_udp_ready(d->dns, ev[i].data.fd))
				;
			else if (d->health && ev[i].data.fd == xb_health_fd(d->health))
				xb_health_process(d->health);
			else if (d->metrics && ev[i].data.fd == xb_metrics_fd(d->metrics))
				xb_metrics_process(d->metrics);
			else if (d->prt && ev[i].data.fd == xb_posture_rt_fd(d->prt))
				xb_posture_rt_process(d->prt);
			else if (d->cluster && ev[i].data.fd == xb_cluster_fd(d->cluster))
				xb_cluster_dispatch(d->cluster);
			else if (d->prune && ev[i].data.fd == xb_cluster_prune_fd(d->prune))
				xb_daemon_prune_process(d);
			else if (xb_nl_is_open(&d->drops.nl) && ev[i].data.fd == xb_drops_fd(&d->drops))
				xb_drops_process(&d->drops);
			else if (d->ha && ev[i].data.fd == xb_ha_fd(d->ha))
				xb_ha_process(d->ha);
		}
		stall_note(d, t0);
	}
	return 0;
}

void xb_daemon_stop(struct xb_daemon *d)
{
	xb_notify_send(&d->notify, "STOPPING=1\nSTATUS=stopping: removing what was built");
	xb_daemon_prune_stop(d);		/* before the control socket: it answers */
	if (d->ctl)
		xb_ctl_close(d->ctl);
	d->ctl = NULL;
	xb_daemon_cluster_stop(d);		/* reports waiting on it are answered 503 */
	xb_dns_service_free(d->dns);		/* saves the learned destinations */
	d->dns = NULL;
	xb_metrics_free(d->metrics);
	d->metrics = NULL;
	xb_drops_close(&d->drops);
	xb_health_free(d->health);
	d->health = NULL;
	xb_posture_rt_close(d->prt);		/* everything acknowledged is in the store */
	d->prt = NULL;
	xb_apply_teardown(d);
	forwarding_restore(d);
	xb_nft_close(&d->nft);
	xb_rtnl_close(&d->rtnl);
	xb_plan_free(&d->plan);
	xb_policy_free(d->policy);
	d->policy = NULL;
	remember_reload(d, true, NULL);
	free(d->policy_path);
	d->policy_path = NULL;
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->sigfd >= 0)
		close(d->sigfd);
	if (d->tickfd >= 0)
		close(d->tickfd);
	d->epfd = d->sigfd = d->tickfd = -1;
	xb_notify_close(&d->notify);
}
