/* The kernel's GRE through rtnetlink: a `gre' link for an IPv4 outer, an
 * `ip6gre' link for an IPv6 outer (both layer 3, like ours). Keys and
 * flags go as IFLA_GRE_[IO]KEY and IFLA_GRE_[IO]FLAGS in network order, the
 * same key both ways, as `ip link add ... type gre key K' does. */
#include "gateway/links/greif.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_tunnel.h>
#include <linux/rtnetlink.h>
#include <arpa/inet.h>

static uint16_t kernel_flags(const struct gre_opts *o)
{
	return (uint16_t)((o->has_key ? GRE_KEY : 0) | (o->seq ? GRE_SEQ : 0) |
			  (o->csum ? GRE_CSUM : 0));
}

static void put_data(struct nlmsghdr *nlh, const struct gre_config *c)
{
	size_t alen = c->family == AF_INET ? 4 : 16;
	uint16_t flags = kernel_flags(&c->opts);
	unsigned link = c->bind_dev[0] ? xb_rtnl_ifindex(c->bind_dev) : 0;

	if (link)
		mnl_attr_put_u32(nlh, IFLA_GRE_LINK, link);
	mnl_attr_put_u16(nlh, IFLA_GRE_IFLAGS, flags);
	mnl_attr_put_u16(nlh, IFLA_GRE_OFLAGS, flags);
	if (c->opts.has_key) {
		mnl_attr_put_u32(nlh, IFLA_GRE_IKEY, htonl(c->opts.key));
		mnl_attr_put_u32(nlh, IFLA_GRE_OKEY, htonl(c->opts.key));
	}
	mnl_attr_put(nlh, IFLA_GRE_LOCAL, alen, &c->local);
	mnl_attr_put(nlh, IFLA_GRE_REMOTE, alen, &c->remote);
	/* TTL 0 inherits the inner packet's; a fixed 64 is what routers do. */
	mnl_attr_put_u8(nlh, IFLA_GRE_TTL, (uint8_t)(c->ttl ? c->ttl : 64));
	if (c->family == AF_INET)
		mnl_attr_put_u8(nlh, IFLA_GRE_PMTUDISC, 1);
}

int xb_grek_add(struct xb_rtnl *r, const struct gre_config *c)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *info, *data;

	if (c->bind_dev[0] && !xb_rtnl_ifindex(c->bind_dev))
		return -ENODEV;
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, c->ifname);
	if (c->mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, c->mtu);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, c->family == AF_INET ? "gre" : "ip6gre");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	put_data(nlh, c);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return xb_rtnl_send(r, nlh);
}
