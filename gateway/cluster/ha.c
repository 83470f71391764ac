/* Active/standby: the vip watch and the takeover's timer; see ha.h. */
#include "gateway/cluster/ha.h"
#include "gateway/kernel/netlink.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct xb_ha {
	char vip_text[INET6_ADDRSTRLEN];
	int family;			/* AF_UNSPEC: no vip watched */
	uint8_t vip[16];
	bool holds;
	unsigned rate;
	char ifname[16];
	xb_ha_source_fn source;
	void *ctx;
	struct xb_nl nl;		/* address notifications */
	int epfd, timerfd;
	struct xb_takeover t;
	bool reported;			/* the end of the last run was logged */
	bool deferred;			/* a takeover waits for the source (-EAGAIN) */
};

static bool parse_vip(struct xb_ha *h, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 4], *slash;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return false;
	if ((slash = strchr(buf, '/')))
		*slash = '\0';	/* keepalived's "ADDR/LEN": the address is what counts */
	if (inet_pton(AF_INET, buf, h->vip) == 1)
		h->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, h->vip) == 1)
		h->family = AF_INET6;
	else
		return false;
	inet_ntop(h->family, h->vip, h->vip_text, sizeof(h->vip_text));
	return true;
}

/* An RTM_NEWADDR/RTM_DELADDR for the vip sets *seen to 1 / 0; others leave
 * it. IPv4 carries the interface's own address in IFA_LOCAL (IFA_ADDRESS is
 * the peer's on point-to-point links); IPv6 in IFA_ADDRESS. */
static int on_addr(const struct nlmsghdr *nlh, void *data)
{
	struct xb_ha *h = ((void **)data)[0];
	int *seen = ((void **)data)[1];
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a, *local = NULL, *addr = NULL;
	const struct nlattr *use;
	size_t len = h->family == AF_INET ? 4 : 16;

	if ((nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR) ||
	    nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) || ifa->ifa_family != h->family)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(*ifa)) {
		if (mnl_attr_get_type(a) == IFA_LOCAL)
			local = a;
		else if (mnl_attr_get_type(a) == IFA_ADDRESS)
			addr = a;
	}
	use = local ? local : addr;
	if (use && mnl_attr_get_payload_len(use) == len && !memcmp(mnl_attr_get_payload(use), h->vip, len))
		*seen = nlh->nlmsg_type == RTM_NEWADDR;
	return MNL_CB_OK;
}

/* The vip's state now, from a dump on a socket of its own (the watching
 * one takes notifications between the dump's answers). */
static int dump_state(struct xb_ha *h, bool *holds)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	struct xb_nl nl;
	int seen = 0, e;
	void *data[2] = { h, &seen };

	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)h->family;
	if ((e = xb_nl_open(&nl, NETLINK_ROUTE, 0)) < 0)
		return e;
	e = xb_nl_dump(&nl, nlh, on_addr, data);
	xb_nl_close(&nl);
	if (e == 0)
		*holds = seen == 1;
	return e;
}

static void arm(struct xb_ha *h, uint64_t ns)
{
	struct itimerspec it = { { 0, 0 }, { (time_t)(ns / NSEC_PER_SEC), (long)(ns % NSEC_PER_SEC) } };

	if (timerfd_settime(h->timerfd, 0, &it, NULL) < 0)
		log_warn("takeover: arming its timer");
}

static void report_done(struct xb_ha *h)
{
	const struct xb_takeover *t = &h->t;

	if (h->reported || t->active)
		return;
	h->reported = true;
	log_info("takeover: done: %zu handshake(s) initiated, %zu failed, in %llu ms", t->sent, t->failed,
		 (unsigned long long)((t->finished_ns - t->started_ns) / NSEC_PER_MSEC));
}

static void run(struct xb_ha *h)
{
	uint64_t wait = xb_takeover_run(&h->t, clock_mono_ns());

	if (wait)
		arm(h, wait);
	else
		report_done(h);
}

long xb_ha_takeover(struct xb_ha *h, const char *why)
{
	long n;
	int e;

	if (!h->source) {
		log_warnx("takeover (%s): no shared state to take the devices' endpoints from", why);
		return -ENOENT;
	}
	if ((e = h->source(h->ctx, &h->t)) == -EAGAIN) {
		log_info("takeover (%s): waiting for the shared state to be read", why);
		h->deferred = true;
		return 0;
	}
	if (e < 0) {
		log_warnx("takeover (%s): reading the devices' endpoints: %s", why, strerror(-e));
		return e;
	}
	n = xb_takeover_begin(&h->t, h->rate, clock_mono_ns(), time(NULL));
	if (n < 0) {
		log_warnx("takeover (%s): reading %s: %s", why, h->ifname, strerror((int)-n));
		return n;
	}
	log_info("takeover (%s): %ld device(s) to initiate at %u/s (%zu known, %zu with a live "
		 "session here, %zu not peers or without an endpoint)", why, n, h->rate, h->t.offered,
		 h->t.live, h->t.unknown);
	h->reported = false;
	run(h);
	return n;
}

static void changed(struct xb_ha *h, bool holds)
{
	if (holds == h->holds)
		return;
	h->holds = holds;
	h->deferred = false;
	if (holds) {
		xb_ha_takeover(h, "the vip appeared");
	} else {
		if (h->t.active)
			log_info("takeover: the vip %s went away: stopping with %zu of %zu initiated",
				 h->vip_text, h->t.sent, h->t.n);
		else
			log_info("the vip %s went away: this gateway is standby", h->vip_text);
		xb_takeover_stop(&h->t);
		arm(h, 0);
	}
}

static void on_netlink(struct xb_ha *h)
{
	int seen = -1, r;
	void *data[2] = { h, &seen };
	bool holds;

	for (int i = 0; i < 64; i++) {
		r = xb_nl_recv(&h->nl, on_addr, data);
		if (r == -ENOBUFS) {	/* lost notifications: ask for the state */
			if (dump_state(h, &holds) == 0)
				seen = holds;
			continue;
		}
		if (r < 0)
			break;
	}
	if (seen >= 0)
		changed(h, seen == 1);
}

void xb_ha_process(struct xb_ha *h)
{
	struct epoll_event ev[2];
	int n = epoll_wait(h->epfd, ev, 2, 0);

	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd == h->timerfd) {
			uint64_t x;

			if (read(h->timerfd, &x, sizeof(x)) == sizeof(x))
				run(h);
		} else {
			on_netlink(h);
		}
	}
}

static int watch(struct xb_ha *h, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
}

struct xb_ha *xb_ha_open(const struct xb_ha_opts *o, char *err, size_t errlen)
{
	struct xb_ha *h = calloc(1, sizeof(*h));
	bool holds = false;
	int e;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->epfd = h->timerfd = -1;
	h->rate = o->rate ? o->rate : XB_TAKEOVER_RATE_DEFAULT;
	snprintf(h->ifname, sizeof(h->ifname), "%s", o->ifname ? o->ifname : "");
	h->source = o->source;
	h->ctx = o->ctx;
	xb_takeover_init(&h->t, o->ops, o->wg);
	if (o->vip && *o->vip && !parse_vip(h, o->vip)) {
		snprintf(err, errlen, "vip `%s' is not an IPv4 or IPv6 address", o->vip);
		goto fail;
	}
	if ((h->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (h->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    watch(h, h->timerfd) < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		goto fail;
	}
	if (h->family == AF_UNSPEC)
		return h;
	e = xb_nl_open(&h->nl, NETLINK_ROUTE,
		       h->family == AF_INET ? RTMGRP_IPV4_IFADDR : RTMGRP_IPV6_IFADDR);
	if (e < 0 || (e = dump_state(h, &holds)) < 0 ||
	    (watch(h, mnl_socket_get_fd(h->nl.sock)) < 0 && (e = -errno))) {
		snprintf(err, errlen, "watching the vip %s: %s", h->vip_text, strerror(-e));
		goto fail;
	}
	log_info("vip %s: %s; takeover at %u handshakes/s", h->vip_text,
		 holds ? "held here (active)" : "not held here (standby)", h->rate);
	/* Started holding it (a restart on the active gateway): take over too,
	 * the sessions of a killed predecessor are gone with it. */
	changed(h, holds);
	return h;
fail:
	xb_ha_close(h);
	return NULL;
}

void xb_ha_close(struct xb_ha *h)
{
	if (!h)
		return;
	xb_nl_close(&h->nl);
	if (h->timerfd >= 0)
		close(h->timerfd);
	if (h->epfd >= 0)
		close(h->epfd);
	xb_takeover_free(&h->t);
	free(h);
}

void xb_ha_source_ready(struct xb_ha *h)
{
	if (!h->deferred)
		return;
	h->deferred = false;
	if (h->holds)
		xb_ha_takeover(h, "the vip is here, the shared state read");
}

int xb_ha_fd(const struct xb_ha *h) { return h->epfd; }
const char *xb_ha_vip(const struct xb_ha *h) { return h->vip_text; }
unsigned xb_ha_rate(const struct xb_ha *h) { return h->rate; }
bool xb_ha_holds_vip(const struct xb_ha *h) { return h->holds; }

json_t *xb_ha_json(const struct xb_ha *h)
{
	const struct xb_takeover *t = &h->t;
	uint64_t now = clock_mono_ns();

	return json_pack("{s:o, s:b, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
			 "vip", h->family ? json_string(h->vip_text) : json_null(),
			 "holds_vip", h->holds, "rate", (json_int_t)h->rate, "active", t->active,
			 "offered", (json_int_t)t->offered, "live", (json_int_t)t->live,
			 "unknown", (json_int_t)t->unknown, "queued", (json_int_t)t->n,
			 "sent", (json_int_t)t->sent, "failed", (json_int_t)t->failed,
			 "started_ms_ago", t->started_ns ? json_integer((json_int_t)((now - t->started_ns) / NSEC_PER_MSEC)) : json_null(),
			 "took_ms", t->started_ns && !t->active ? json_integer((json_int_t)((t->finished_ns - t->started_ns) / NSEC_PER_MSEC)) : json_null());
}
