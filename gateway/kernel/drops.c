/* The drop log over nfnetlink_log; see drops.h.
 *
 * Protocol: a NFULNL_MSG_CONFIG with NFULA_CFG_CMD BIND for the group
 * (res_id, big endian), then NFULA_CFG_MODE to copy XB_DROPS_COPY bytes of
 * each packet, and a queue threshold of 1 so that every message is sent at
 * once rather than batched for up to a second. The kernel then sends one
 * NFULNL_MSG_PACKET per logged packet: NFULA_PREFIX (NUL-terminated),
 * NFULA_PAYLOAD (from the network header on).
 */
#include "gateway/kernel/drops.h"

#include "common/log.h"
#include "policy/compile.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RCVBUF		(256 * 1024)	/* bytes of socket buffer asked for */

static int config(struct xb_nl *nl, uint16_t group, uint16_t attr, const void *data, uint16_t len)
{
	uint8_t buf[MNL_NLMSG_HDRLEN + 64];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = htons(group);
	mnl_attr_put(nlh, attr, len, data);
	/* The ack comes before any packet: nothing is bound until it is read. */
	return xb_nl_request(nl, nlh, NULL, NULL);
}

int xb_drops_open(struct xb_drops *d, uint16_t group)
{
	struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = { .copy_range = htonl(XB_DROPS_COPY),
					       .copy_mode = NFULNL_COPY_PACKET };
	uint32_t qthresh = htonl(1);
	int rcvbuf = RCVBUF, e;

	memset(d, 0, sizeof(*d));
	if ((e = xb_nl_open(&d->nl, NETLINK_NETFILTER, 0)))
		goto fail;
	setsockopt(mnl_socket_get_fd(d->nl.sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if ((e = config(&d->nl, group, NFULA_CFG_CMD, &cmd, sizeof(cmd))) ||
	    (e = config(&d->nl, group, NFULA_CFG_MODE, &mode, sizeof(mode))) ||
	    (e = config(&d->nl, group, NFULA_CFG_QTHRESH, &qthresh, sizeof(qthresh))))
		goto fail;
	return 0;
fail:
	errno = -e;
	log_warn("drop log: binding nfnetlink_log group %u; xborderctl drops stays empty", group);
	xb_drops_close(d);
	return e;
}

int xb_drops_fd(const struct xb_drops *d)
{
	return xb_nl_is_open(&d->nl) ? mnl_socket_get_fd(d->nl.sock) : -1;
}

void xb_drops_close(struct xb_drops *d)
{
	xb_nl_close(&d->nl);
}

/* The packet's addresses, protocol and destination port. IPv6 extension
 * headers are not walked: the next header is taken as the protocol. */
static bool packet(const uint8_t *p, size_t n, struct xb_drop *x)
{
	size_t l4;

	if (n >= 20 && p[0] >> 4 == 4) {
		x->family = AF_INET;
		x->proto = p[9];
		memcpy(x->src, p + 12, 4);
		memcpy(x->dst, p + 16, 4);
		l4 = (size_t)(p[0] & 0xf) * 4;
	} else if (n >= 40 && p[0] >> 4 == 6) {
		x->family = AF_INET6;
		x->proto = p[6];
		memcpy(x->src, p + 8, 16);
		memcpy(x->dst, p + 24, 16);
		l4 = 40;
	} else {
		return false;
	}
	x->dport = 0;
	if ((x->proto == IPPROTO_TCP || x->proto == IPPROTO_UDP) && n >= l4 + 4)
		x->dport = (uint16_t)(p[l4 + 2] << 8 | p[l4 + 3]);
	return true;
}

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, NFULA_MAX) > 0)
		tb[type] = a;
	return MNL_CB_OK;
}

bool xb_drops_parse(const struct nlmsghdr *nlh, struct xb_drop *out)
{
	const struct nlattr *tb[NFULA_MAX + 1] = { 0 };
	const char *prefix;
	size_t plen, rl = strlen(XB_DROPS_PREFIX_RULE);

	if (nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nfgenmsg)))
		return false;
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, tb) < 0 ||
	    !tb[NFULA_PREFIX] || !tb[NFULA_PAYLOAD])
		return false;
	/* The kernel sends the prefix with its NUL; do not trust that. */
	prefix = mnl_attr_get_payload(tb[NFULA_PREFIX]);
	plen = strnlen(prefix, mnl_attr_get_payload_len(tb[NFULA_PREFIX]));
	if (plen == strlen(XB_DROPS_PREFIX_DEFAULT) && !memcmp(prefix, XB_DROPS_PREFIX_DEFAULT, plen)) {
		out->rule[0] = '\0';
	} else if (plen > rl && plen - rl < sizeof(out->rule) &&
		   !memcmp(prefix, XB_DROPS_PREFIX_RULE, rl)) {
		memcpy(out->rule, prefix + rl, plen - rl);
		out->rule[plen - rl] = '\0';
	} else {
		return false;
	}
	return packet(mnl_attr_get_payload(tb[NFULA_PAYLOAD]),
		      mnl_attr_get_payload_len(tb[NFULA_PAYLOAD]), out);
}

void xb_drops_put(struct xb_drops *d, const struct xb_drop *x)
{
	d->ring[d->next] = *x;
	d->next = (d->next + 1) % XB_DROPS_MAX;
	if (d->n < XB_DROPS_MAX)
		d->n++;
	d->total++;
}

const struct xb_drop *xb_drops_get(const struct xb_drops *d, size_t i)
{
	if (i >= d->n)
		return NULL;
	return &d->ring[(d->next + XB_DROPS_MAX - 1 - i) % XB_DROPS_MAX];
}

struct got {
	struct xb_drops *d;
	int64_t now;
};

static int got_one(const struct nlmsghdr *h, void *data)
{
	struct got *g = data;
	struct xb_drop x = { .at = g->now };

	if (xb_drops_parse(h, &x))
		xb_drops_put(g->d, &x);
	return MNL_CB_OK;
}

void xb_drops_process(struct xb_drops *d)
{
	struct got g = { d, (int64_t)time(NULL) };

	/* Bounded: at most 64 reads a call, the loop's other work waits no longer. */
	for (int k = 0; xb_nl_is_open(&d->nl) && k < 64; k++) {
		int r = xb_nl_recv(&d->nl, got_one, &g);

		if (r == -ENOBUFS)
			d->lost++;
		else if (r < 0 && r != -EBADMSG)
			return;
	}
}
