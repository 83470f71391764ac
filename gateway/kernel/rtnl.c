/* rtnetlink requests; see rtnl.h. */
#include "gateway/kernel/rtnl.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xb_rtnl_open(struct xb_rtnl *r) { return xb_nl_open(&r->nl, NETLINK_ROUTE, 0); }

void xb_rtnl_close(struct xb_rtnl *r) { xb_nl_close(&r->nl); }

unsigned xb_rtnl_ifindex(const char *ifname) { return if_nametoindex(ifname); }

int xb_rtnl_send(struct xb_rtnl *r, struct nlmsghdr *nlh)
{
	return xb_nl_request(&r->nl, nlh, NULL, NULL);
}

static struct nlmsghdr *request(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	return nlh;
}

static int link_change(struct xb_rtnl *r, unsigned ifindex, unsigned flags, unsigned change, unsigned mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return xb_nl_request(&r->nl, nlh, NULL, NULL);
}

int xb_rtnl_link_up(struct xb_rtnl *r, unsigned ifindex, bool up)
{
	return link_change(r, ifindex, up ? IFF_UP : 0, IFF_UP, 0);
}

int xb_rtnl_link_mtu(struct xb_rtnl *r, unsigned ifindex, unsigned mtu)
{
	return link_change(r, ifindex, 0, 0, mtu);
}

int xb_rtnl_link_del(struct xb_rtnl *r, unsigned ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	return xb_nl_request(&r->nl, nlh, NULL, NULL);
}

int xb_rtnl_link_add(struct xb_rtnl *r, const char *ifname, const char *kind)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	struct nlattr *info;

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
	mnl_attr_nest_end(nlh, info);
	return xb_nl_request(&r->nl, nlh, NULL, NULL);
}

static size_t addr_len(sa_family_t family) { return family == AF_INET ? 4 : 16; }

int xb_rtnl_addr(struct xb_rtnl *r, bool add, unsigned ifindex, const struct xb_prefix *p)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, add ? RTM_NEWADDR : RTM_DELADDR,
				       add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	int ret;

	ifa->ifa_family = p->family;
	ifa->ifa_prefixlen = p->cidr;
	ifa->ifa_index = ifindex;
	/* Addresses are set by hand, as on a point-to-point link: no DAD. */
	ifa->ifa_flags = p->family == AF_INET6 ? IFA_F_NODAD : 0;
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(p->family), p->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(p->family), p->addr);
	ret = xb_nl_request(&r->nl, nlh, NULL, NULL);
	if ((add && ret == -EEXIST) || (!add && ret == -EADDRNOTAVAIL))
		return 0;
	return ret;
}

int xb_rtnl_route(struct xb_rtnl *r, bool add, const struct xb_route *rt)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, add ? RTM_NEWROUTE : RTM_DELROUTE,
				       add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	int ret;

	rtm->rtm_family = rt->dst.family;
	rtm->rtm_dst_len = rt->dst.cidr;
	rtm->rtm_table = rt->table < 256 ? (uint8_t)rt->table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = rt->gw || rt->type > RTN_UNICAST ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rtm->rtm_type = rt->type ? rt->type : RTN_UNICAST;
	if (rt->dst.cidr)
		mnl_attr_put(nlh, RTA_DST, addr_len(rt->dst.family), rt->dst.addr);
	mnl_attr_put_u32(nlh, RTA_TABLE, rt->table ? rt->table : RT_TABLE_MAIN);
	if (rt->ifindex && rtm->rtm_type == RTN_UNICAST)
		mnl_attr_put_u32(nlh, RTA_OIF, rt->ifindex);
	if (rt->gw)
		mnl_attr_put(nlh, RTA_GATEWAY, addr_len(rt->dst.family), rt->gw);
	if (rt->metric)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, rt->metric);
	ret = xb_nl_request(&r->nl, nlh, NULL, NULL);
	return !add && ret == -ESRCH ? 0 : ret;
}

int xb_rtnl_rule(struct xb_rtnl *r, bool add, const struct xb_iprule *rule)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, add ? RTM_NEWRULE : RTM_DELRULE,
				       add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	int ret;

	frh->family = rule->family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = rule->table < 256 ? (uint8_t)rule->table : RT_TABLE_UNSPEC;
	mnl_attr_put_u32(nlh, FRA_TABLE, rule->table);
	mnl_attr_put_u32(nlh, FRA_PRIORITY, rule->priority);
	mnl_attr_put_u32(nlh, FRA_FWMARK, rule->fwmark);
	mnl_attr_put_u32(nlh, FRA_FWMASK, rule->mask);
	ret = xb_nl_request(&r->nl, nlh, NULL, NULL);
	if ((add && ret == -EEXIST) || (!add && ret == -ENOENT))
		return 0;
	return ret;
}

/* Sweeping: dump, collect what matches, delete it. */
struct sweep {
	struct xb_iprule rules[1024];
	struct xb_route routes[2048];
	uint8_t gw[2048][16];
	size_t n_rules, n_routes;
	uint32_t lo, hi, tlo, thi;
	sa_family_t family;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	/* tb holds rule and route attributes alike (see the callers). */
	if (type >= 0 && type < FRA_MAX + RTA_MAX + 2)
		tb[type] = a;
	return MNL_CB_OK;
}

/* An attribute's u32, or def when it is absent or too short for one. */
static uint32_t u32_or(const struct nlattr *a, uint32_t def)
{
	return a && mnl_attr_get_payload_len(a) >= 4 ? mnl_attr_get_u32(a) : def;
}

/* An attribute long enough for an address of family. */
static bool addr_attr(const struct nlattr *a, sa_family_t family)
{
	return a && mnl_attr_get_payload_len(a) >= addr_len(family);
}

/* Messages shorter than their fixed header, and attributes shorter than
 * their type, are skipped: nothing is read past what the socket read. */
static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct sweep *s = data;
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[FRA_MAX + RTA_MAX + 2] = { 0 };
	uint32_t prio;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*frh))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*frh), attr_cb, tb);
	prio = u32_or(tb[FRA_PRIORITY], 0);
	if (prio < s->lo || prio > s->hi || s->n_rules == sizeof(s->rules) / sizeof(s->rules[0]))
		return MNL_CB_OK;
	s->rules[s->n_rules++] = (struct xb_iprule){
		.family = frh->family,
		.fwmark = u32_or(tb[FRA_FWMARK], 0),
		.mask = u32_or(tb[FRA_FWMASK], 0),
		.table = u32_or(tb[FRA_TABLE], frh->table),
		.priority = prio,
	};
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct sweep *s = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[FRA_MAX + RTA_MAX + 2] = { 0 };
	struct xb_route *rt;
	uint32_t table;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rtm), attr_cb, tb);
	table = u32_or(tb[RTA_TABLE], rtm->rtm_table);
	if (table < s->tlo || table > s->thi || s->n_routes == sizeof(s->routes) / sizeof(s->routes[0]))
		return MNL_CB_OK;
	rt = &s->routes[s->n_routes];
	memset(rt, 0, sizeof(*rt));
	rt->dst.family = rtm->rtm_family;
	rt->dst.cidr = rtm->rtm_dst_len;
	if (addr_attr(tb[RTA_DST], rtm->rtm_family))
		memcpy(rt->dst.addr, mnl_attr_get_payload(tb[RTA_DST]), addr_len(rtm->rtm_family));
	rt->table = table;
	rt->type = rtm->rtm_type;
	rt->ifindex = u32_or(tb[RTA_OIF], 0);
	if (addr_attr(tb[RTA_GATEWAY], rtm->rtm_family)) {
		memcpy(s->gw[s->n_routes], mnl_attr_get_payload(tb[RTA_GATEWAY]), addr_len(rtm->rtm_family));
		rt->gw = s->gw[s->n_routes];
	}
	rt->metric = u32_or(tb[RTA_PRIORITY], 0);
	s->n_routes++;
	return MNL_CB_OK;
}

static int dump(struct xb_rtnl *r, uint16_t type, sa_family_t family, mnl_cb_t cb, struct sweep *s)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = family;
	return xb_nl_dump(&r->nl, nlh, cb, s);
}

int xb_rtnl_sweep(struct xb_rtnl *r, uint32_t lo, uint32_t hi, uint32_t tlo, uint32_t thi)
{
	static const sa_family_t fams[] = { AF_INET, AF_INET6 };
	struct sweep *s = calloc(1, sizeof(*s));
	int removed = 0, ret = 0;

	if (!s)
		return -ENOMEM;
	s->lo = lo, s->hi = hi, s->tlo = tlo, s->thi = thi;
	for (size_t f = 0; f < 2 && ret >= 0; f++) {
		s->n_rules = s->n_routes = 0;
		if ((ret = dump(r, RTM_GETRULE, fams[f], rule_cb, s)) < 0 ||
		    (ret = dump(r, RTM_GETROUTE, fams[f], route_cb, s)) < 0)
			break;
		for (size_t i = 0; i < s->n_rules; i++)
			removed += xb_rtnl_rule(r, false, &s->rules[i]) == 0;
		for (size_t i = 0; i < s->n_routes; i++)
			removed += xb_rtnl_route(r, false, &s->routes[i]) == 0;
	}
	free(s);
	return ret < 0 ? ret : removed;
}

static int kind_attr_cb(const struct nlattr *a, void *data)
{
	char *kind = data;

	/* MNL_TYPE_STRING does not promise a NUL within the payload. */
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) == 0)
		snprintf(kind, 16, "%.*s", (int)mnl_attr_get_payload_len(a), mnl_attr_get_str(a));
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_LINKINFO)
		mnl_attr_parse_nested(a, kind_attr_cb, data);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, data);
}

int xb_rtnl_link_kind(struct xb_rtnl *r, unsigned ifindex, char kind[static 16])
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	kind[0] = '\0';
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	return xb_nl_request(&r->nl, nlh, link_cb, kind);
}
