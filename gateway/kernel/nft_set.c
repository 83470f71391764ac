/* Set elements through netfilter netlink; see nft_set.h. */
#include "gateway/kernel/nft_set.h"

#include "common/log.h"
#include "policy/compile.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Newer than Debian 12's kernel headers (Linux 6.3): delete an element
 * that may be absent without failing the transaction. */
#ifndef NFT_MSG_DESTROYSETELEM
#define NFT_MSG_DESTROYSETELEM 30
#endif

#define BATCH_MAX	(64 * 1024)
#define ELEMS_MAX	256	/* per call: a DNS answer has far fewer */

int xb_nft_set_open(struct xb_nft_set *s)
{
	int e;

	memset(s, 0, sizeof(*s));
	if (!(s->buf = malloc(BATCH_MAX)))
		return -ENOMEM;
	if ((e = xb_nl_open(&s->nl, NETLINK_NETFILTER, 0)) < 0) {
		xb_nft_set_close(s);
		return e;
	}
	/* Bounded: an answer the kernel never sends fails the call after 1 s. */
	(void)xb_nl_timeout(&s->nl, 1000);
	return 0;
}

void xb_nft_set_close(struct xb_nft_set *s)
{
	xb_nl_close(&s->nl);
	free(s->buf);
	s->buf = NULL;
}

static uint32_t next(struct xb_nft_set *s)
{
	return xb_nl_next_seq(&s->nl);
}

static struct nlmsghdr *put_msg(struct mnl_nlmsg_batch *b, uint16_t type, uint16_t flags,
				uint8_t family, uint16_t res_id, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b));
	struct nfgenmsg *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	g->res_id = htons(res_id);
	return nlh;
}

/* One NEWSETELEM / DESTROYSETELEM message with every element. */
static bool put_elems(struct mnl_nlmsg_batch *b, uint16_t msg, uint16_t flags, uint32_t seq,
		      const char *set, const struct xb_nft_set_elem *v, size_t n, bool timeouts)
{
	struct nlmsghdr *nlh = put_msg(b, (NFNL_SUBSYS_NFTABLES << 8) | msg, flags,
				       NFPROTO_INET, 0, seq);
	size_t room = BATCH_MAX - ((char *)nlh - (char *)mnl_nlmsg_batch_head(b)) - 64;
	struct nlattr *list, *el, *key;

	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, XB_NFT_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (size_t i = 0; i < n; i++) {
		if (nlh->nlmsg_len + 64 > room)
			return false;
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
		mnl_attr_put(nlh, NFTA_DATA_VALUE, v[i].family == AF_INET ? 4 : 16, v[i].addr);
		mnl_attr_nest_end(nlh, key);
		if (timeouts && v[i].timeout_ms)
			mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64(v[i].timeout_ms));
		mnl_attr_nest_end(nlh, el);
	}
	mnl_attr_nest_end(nlh, list);
	return mnl_nlmsg_batch_next(b);
}

/* Sends the batch and reads the answers: the kernel sends an ack or an
 * error for every acked message, failed batch or not. Returns 0 or the
 * first error, after the answer to `last' (bounded by the socket's 1 s
 * receive timeout). Answers left from an earlier call (one that timed out)
 * are dropped first, so as not to be taken for this one's. */
static int exchange(struct xb_nft_set *s, struct mnl_nlmsg_batch *b, uint32_t first, uint32_t last)
{
	xb_nl_drain(&s->nl);
	s->batches++;
	return xb_nl_batch(&s->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b), first, last);
}

static int run(struct xb_nft_set *s, const char *set, const struct xb_nft_set_elem *v, size_t n,
	       bool destroy, bool add)
{
	struct mnl_nlmsg_batch *b;
	uint32_t first, last;
	int err;

	if (!xb_nl_is_open(&s->nl) || n > ELEMS_MAX)
		return xb_nl_is_open(&s->nl) ? -E2BIG : -EBADF;
	if (!n)
		return 0;
	if (!(b = mnl_nlmsg_batch_start(s->buf, BATCH_MAX)))
		return -ENOMEM;
	put_msg(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, next(s));
	mnl_nlmsg_batch_next(b);
	first = s->nl.seq + 1;
	if ((destroy && !put_elems(b, NFT_MSG_DESTROYSETELEM, NLM_F_ACK, next(s), set, v, n, false)) ||
	    (add && !put_elems(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK, next(s), set, v, n,
			       true))) {
		mnl_nlmsg_batch_stop(b);
		return -E2BIG;
	}
	last = s->nl.seq;
	put_msg(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, next(s));
	mnl_nlmsg_batch_next(b);
	err = exchange(s, b, first, last);
	mnl_nlmsg_batch_stop(b);
	if (err)
		s->failures++;
	return err;
}

/* Linux before 6.3 has no DESTROYSETELEM: adding alone then keeps an
 * existing element's older timeout (the next answer after it expires adds
 * it again). Learned once. */
static bool no_destroy;

int xb_nft_set_put(struct xb_nft_set *s, const char *set, const struct xb_nft_set_elem *v, size_t n)
{
	int err;

	if (!no_destroy) {
		err = run(s, set, v, n, true, true);
		if (err != -EOPNOTSUPP && err != -EINVAL)
			return err;
		if (run(s, set, v, n, false, true) != 0)
			return err;	/* the set or the elements are wrong, not the kernel */
		no_destroy = true;
		log_warnx("nft: this kernel cannot delete absent set elements (Linux < 6.3): "
			  "re-added DNS destinations keep their first timeout");
		return 0;
	}
	return run(s, set, v, n, false, true);
}

bool xb_nft_set_refreshes(void)
{
	return !no_destroy;
}

int xb_nft_set_remove(struct xb_nft_set *s, const char *set, const struct xb_nft_set_elem *v,
		     size_t n)
{
	return run(s, set, v, n, true, false);
}

/* One transaction of at most XB_NFT_SET_OPS ops. */
static int apply_some(struct xb_nft_set *s, const struct xb_nft_set_op *ops, size_t n)
{
	struct mnl_nlmsg_batch *b;
	uint32_t first, last;
	bool room = true;
	int err;

	if (!(b = mnl_nlmsg_batch_start(s->buf, BATCH_MAX)))
		return -ENOMEM;
	put_msg(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, next(s));
	mnl_nlmsg_batch_next(b);
	first = s->nl.seq + 1;
	for (size_t i = 0; i < n && room; i++)
		room = put_elems(b, ops[i].add ? NFT_MSG_NEWSETELEM : NFT_MSG_DESTROYSETELEM,
				 (ops[i].add ? NLM_F_CREATE : 0) | NLM_F_ACK, next(s), ops[i].set,
				 &ops[i].e, 1, false);
	last = s->nl.seq;
	put_msg(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, next(s));
	if (!room || !mnl_nlmsg_batch_next(b)) {
		mnl_nlmsg_batch_stop(b);
		return -E2BIG;
	}
	err = exchange(s, b, first, last);
	mnl_nlmsg_batch_stop(b);
	if (err)
		s->failures++;
	return err;
}

int xb_nft_set_apply(struct xb_nft_set *s, const struct xb_nft_set_op *ops, size_t n)
{
	if (!xb_nl_is_open(&s->nl))
		return -EBADF;
	for (size_t at = 0; at < n; at += XB_NFT_SET_OPS) {
		int err = apply_some(s, ops + at, n - at < XB_NFT_SET_OPS ? n - at : XB_NFT_SET_OPS);

		if (err)
			return err;
	}
	return 0;
}
