/* The drop log over nfnetlink_log; see drops.h.
 *
 * Protocol: a NFULNL_MSG_CONFIG with NFULA_CFG_CMD BIND for the group
 * (res_id, big endian), then NFULA_CFG_MODE to copy XB_DROPS_COPY bytes of
 * each packet, and a queue threshold of 1 so that every message is sent at
 * once rather than batched for up to a second. The kernel then sends one
 * NFULNL_MSG_PACKET per logged packet: NFULA_PREFIX (NUL-terminated),
 * NFULA_PAYLOAD (from the network header on).
 */
#include "gateway/drops.h"

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

#define BUF_SIZE	(64 * 1024)
#define RCVBUF		(256 * 1024)	/* bytes of socket buffer asked for */

static int config(struct mnl_socket *nl, char *buf, uint16_t group, uint16_t attr,
		  const void *data, uint16_t len)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;
	uint32_t seq = (uint32_t)time(NULL), portid = mnl_socket_get_portid(nl);
	ssize_t n;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = htons(group);
	mnl_attr_put(nlh, attr, len, data);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	/* The ack comes before any packet: nothing is bound until it is read. */
	if ((n = mnl_socket_recvfrom(nl, buf, BUF_SIZE)) < 0)
		return -errno;
	return mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL) < 0 ? -errno : 0;
}

int xb_drops_open(struct xb_drops *d, uint16_t group)
{
	struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = { .copy_range = htonl(XB_DROPS_COPY),
					       .copy_mode = NFULNL_COPY_PACKET };
	uint32_t qthresh = htonl(1);
	int rcvbuf = RCVBUF, e;

	memset(d, 0, sizeof(*d));
	if (!(d->buf = malloc(BUF_SIZE)))
		return -ENOMEM;
	if (!(d->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)) ||
	    mnl_socket_bind(d->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		e = -errno;
		goto fail;
	}
	setsockopt(mnl_socket_get_fd(d->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if ((e = config(d->nl, d->buf, group, NFULA_CFG_CMD, &cmd, sizeof(cmd))) ||
	    (e = config(d->nl, d->buf, group, NFULA_CFG_MODE, &mode, sizeof(mode))) ||
	    (e = config(d->nl, d->buf, group, NFULA_CFG_QTHRESH, &qthresh, sizeof(qthresh))))
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
	return d->nl ? mnl_socket_get_fd(d->nl) : -1;
}

void xb_drops_close(struct xb_drops *d)
{
	if (d->nl)
		mnl_socket_close(d->nl);
	free(d->buf);
	d->nl = NULL;
	d->buf = NULL;
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

void xb_drops_process(struct xb_drops *d)
{
	/* Bounded: at most 64 reads a call, the loop's other work waits no longer. */
	for (int k = 0; d->nl && k < 64; k++) {
		ssize_t r = recv(mnl_socket_get_fd(d->nl), d->buf, BUF_SIZE, MSG_DONTWAIT);
		int64_t now = (int64_t)time(NULL);
		int n = (int)r;

		if (r < 0 && errno == ENOBUFS) {
			d->lost++;
			continue;
		}
		if (r <= 0)
			return;
		for (const struct nlmsghdr *h = (void *)d->buf; mnl_nlmsg_ok(h, n);
		     h = mnl_nlmsg_next(h, &n)) {
			struct xb_drop x = { .at = now };

			if (xb_drops_parse(h, &x))
				xb_drops_put(d, &x);
		}
	}
}
