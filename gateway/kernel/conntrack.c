/* ctnetlink: dump the table of one family, keep the entries that match,
 * then delete each by its original tuple, zone and id (the id makes sure a
 * new entry that reused the tuple meanwhile is left alone).
 *
 * For IPv4 the kernel filters the dump by original source (CTA_FILTER,
 * Linux 5.8+):
 * it still walks the table, but sends only the device's entries, instead
 * of every entry of a busy gateway for us to parse (at 10 000 devices
 * reporting, 200 000 entries per cut). A device's flows all have it as
 * their original source: connections into devices are refused. Older
 * kernels get the whole table and our own match (original source or reply
 * destination). Deletions never run while a dump is in flight.
 */
#include "gateway/kernel/conntrack.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TUPLE_MAX 256	/* bytes of a CTA_TUPLE_ORIG payload we copy */

/* The kernel's filter flags (net/netfilter/nf_conntrack_netlink.c; not in
 * the uapi headers): which fields of CTA_TUPLE_ORIG must match. */
#define CT_FILTER_IP_SRC	(1u << 0)

static bool no_filter;	/* the kernel refused CTA_FILTER once */

struct victim {
	size_t who;		/* index of the matching address */
	uint8_t tuple[TUPLE_MAX];
	uint16_t tuple_len;
	bool has_zone, has_id;
	uint16_t zone;		/* network order, as dumped */
	uint32_t id;		/* network order */
};

/* An address to cut, and its index in the caller's list. */
struct key {
	uint8_t a[16];
	size_t who;
};

struct dump {
	int family;
	const struct key *keys;	/* sorted by address */
	size_t n_keys;
	struct victim *v;
	size_t n;
	bool more;		/* matches beyond XB_CONNTRACK_BATCH */
};

int xb_conntrack_open(struct xb_conntrack *c) { return xb_nl_open(&c->nl, NETLINK_NETFILTER, 0); }

void xb_conntrack_close(struct xb_conntrack *c) { xb_nl_close(&c->nl); }

static struct nlmsghdr *request(char *buf, int family, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

/* The nested attribute of type t directly inside a, or NULL. */
static const struct nlattr *child(const struct nlattr *a, uint16_t t)
{
	const struct nlattr *n;

	if (!a)
		return NULL;
	mnl_attr_for_each_nested(n, a)
		if (mnl_attr_get_type(n) == t)
			return n;
	return NULL;
}

/* The key whose address is the tuple's address of type t (CTA_IP_V4_SRC,
 * ...), or NULL. */
static const struct key *tuple_key(const struct dump *d, const struct nlattr *tuple, uint16_t t)
{
	const struct nlattr *a = child(child(tuple, CTA_TUPLE_IP), t);
	size_t len = d->family == AF_INET ? 4 : 16, lo = 0, hi = d->n_keys;

	if (!a || mnl_attr_get_payload_len(a) != len)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(mnl_attr_get_payload(a), d->keys[mid].a, len);

		if (!c)
			return &d->keys[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int top_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t t = mnl_attr_get_type(a);

	if (t <= CTA_MAX)
		tb[t] = a;
	return MNL_CB_OK;
}

static int stats_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t t = mnl_attr_get_type(a);

	if (t <= CTA_STATS_GLOBAL_MAX)
		tb[t] = a;
	return MNL_CB_OK;
}

static int entry_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[CTA_MAX + 1] = { 0 };
	struct dump *d = data;
	bool v4 = d->family == AF_INET;
	const struct key *k;
	struct victim *v;

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), top_cb, tb) < 0 || !tb[CTA_TUPLE_ORIG])
		return MNL_CB_OK;
	if (!(k = tuple_key(d, tb[CTA_TUPLE_ORIG], v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC)) &&
	    !(k = tuple_key(d, tb[CTA_TUPLE_REPLY], v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST)))
		return MNL_CB_OK;
	if (d->n == XB_CONNTRACK_BATCH) {
		d->more = true;
		return MNL_CB_OK;
	}
	if (mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]) > TUPLE_MAX)
		return MNL_CB_OK;
	v = &d->v[d->n++];
	v->who = k->who;
	v->tuple_len = mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]);
	memcpy(v->tuple, mnl_attr_get_payload(tb[CTA_TUPLE_ORIG]), v->tuple_len);
	if ((v->has_zone = tb[CTA_ZONE] && mnl_attr_get_payload_len(tb[CTA_ZONE]) == 2))
		memcpy(&v->zone, mnl_attr_get_payload(tb[CTA_ZONE]), 2);
	if ((v->has_id = tb[CTA_ID] && mnl_attr_get_payload_len(tb[CTA_ID]) == 4))
		memcpy(&v->id, mnl_attr_get_payload(tb[CTA_ID]), 4);
	return MNL_CB_OK;
}

static int stats_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[CTA_STATS_GLOBAL_MAX + 1] = { 0 };
	long *n = data;

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), stats_attr, tb) >= 0 &&
	    tb[CTA_STATS_GLOBAL_ENTRIES] &&
	    mnl_attr_get_payload_len(tb[CTA_STATS_GLOBAL_ENTRIES]) == 4)
		*n = (long)ntohl(mnl_attr_get_u32(tb[CTA_STATS_GLOBAL_ENTRIES]));
	return MNL_CB_OK;
}

/* 1 deleted, 0 already gone, or a negative errno. */
static int delete(struct xb_conntrack *c, int family, const struct victim *v)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, family, IPCTNL_MSG_CT_DELETE, NLM_F_ACK);
	int ret;

	mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, v->tuple_len, v->tuple);
	if (v->has_zone)
		mnl_attr_put(nlh, CTA_ZONE, 2, &v->zone);
	if (v->has_id)
		mnl_attr_put(nlh, CTA_ID, 4, &v->id);
	ret = xb_nl_request(&c->nl, nlh, NULL, NULL);
	return ret == -ENOENT ? 0 : ret < 0 ? ret : 1;
}

/* The dump request, filtered by original source where the kernel can
 * and when one address is asked for (filter: one key). */
static int dump(struct xb_conntrack *c, int family, bool filter, char *buf, struct dump *d)
{
	const void *addr = d->keys[0].a;
	struct nlmsghdr *nlh;
	struct nlattr *t, *ip, *f;
	int ret;

	/* IPv6: Linux 6.18 answers a filtered dump with nothing (seen in
	 * test_conntrack), so IPv6 gets the whole table. */
	if (filter && !no_filter && family == AF_INET) {
		nlh = request(buf, family, IPCTNL_MSG_CT_GET, 0);
		t = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
		ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, addr);
		mnl_attr_nest_end(nlh, ip);
		mnl_attr_nest_end(nlh, t);
		f = mnl_attr_nest_start(nlh, CTA_FILTER);
		mnl_attr_put_u32(nlh, CTA_FILTER_ORIG_FLAGS, CT_FILTER_IP_SRC);
		mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, 0);
		mnl_attr_nest_end(nlh, f);
		ret = xb_nl_dump(&c->nl, nlh, entry_cb, d);
		if (ret != -EOPNOTSUPP && ret != -EINVAL)
			return ret;
		no_filter = true;	/* an old kernel: filter ourselves */
		d->n = 0;
		d->more = false;
	}
	return xb_nl_dump(&c->nl, request(buf, family, IPCTNL_MSG_CT_GET, 0), entry_cb, d);
}

/* The number of entries in the table (this namespace's), or -1. */
static long count(struct xb_conntrack *c)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	long n = -1;

	if (xb_nl_request(&c->nl, request(buf, AF_UNSPEC, IPCTNL_MSG_CT_GET_STATS, NLM_F_ACK), stats_cb,
			  &n) < 0)
		return -1;
	return n;
}

/* A key's count, or its first error, which stays. */
static void tally(long *cut, size_t who, int r)
{
	if (cut[who] >= 0)
		cut[who] = r < 0 ? r : cut[who] + r;
}

/* Cut the keys' entries: dumps (each at most XB_CONNTRACK_BATCH matches), then
 * the deletes; per-key counts (or errors) into cut. A failed delete does
 * not stop the others; a failed dump marks every key of it. */
static int passes(struct xb_conntrack *c, struct dump *d, bool filter, long *cut)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int ret = 0;

	for (int pass = 0; pass < XB_CONNTRACK_PASSES; pass++) {
		int r;

		d->n = 0;
		d->more = false;
		if ((r = dump(c, d->family, filter, buf, d)) < 0) {
			for (size_t k = 0; k < d->n_keys; k++)
				tally(cut, d->keys[k].who, r);
			return r;
		}
		for (size_t i = 0; i < d->n; i++) {
			r = delete(c, d->family, &d->v[i]);
			tally(cut, d->v[i].who, r);
			if (r < 0 && !ret)
				ret = r;
		}
		if (!d->more)
			break;
	}
	return ret;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(((const struct key *)a)->a, ((const struct key *)b)->a, 16);
}

/* One dump for all keys, or one filtered dump per key: a filtered dump
 * still walks the kernel's whole hash table (262 144 buckets on a 24 GiB
 * machine, about 1 ms), so n of them cost n walks, while one unfiltered
 * dump costs one walk and every entry copied and parsed (about 1 us
 * each). Filtered per key when the table holds more than
 * XB_CONNTRACK_WALK_ENTRIES entries per extra key. */
static bool one_dump(struct xb_conntrack *c, int family, size_t n)
{
	long entries;

	if (n == 1)
		return false;
	if (family == AF_INET6 || no_filter)
		return true;	/* unfiltered either way */
	entries = count(c);
	return entries >= 0 && (unsigned long)entries <= (n - 1) * XB_CONNTRACK_WALK_ENTRIES;
}

long xb_conntrack_cut_many(struct xb_conntrack *c, int family, const void *addrs, size_t n, long *cut)
{
	size_t len = family == AF_INET ? 4 : 16;
	struct dump d = { .family = family, .n_keys = 1 };
	struct key *keys;
	long total = 0;
	int ret = 0;

	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	if (!n)
		return 0;
	keys = calloc(n, sizeof(*keys));
	d.v = malloc(XB_CONNTRACK_BATCH * sizeof(*d.v));
	if (!keys || !d.v) {
		free(keys);
		free(d.v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(keys[i].a, (const uint8_t *)addrs + i * len, len);
		keys[i].who = i;
		cut[i] = 0;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	if (one_dump(c, family, n)) {
		d.keys = keys;
		d.n_keys = n;
		ret = passes(c, &d, false, cut);
	} else {
		for (size_t i = 0; i < n; i++) {
			int r;

			d.keys = &keys[i];
			if ((r = passes(c, &d, true, cut)) < 0 && !ret)
				ret = r;
		}
	}
	free(keys);
	free(d.v);
	for (size_t i = 0; i < n; i++)
		total += cut[i] > 0 ? cut[i] : 0;
	return ret < 0 ? ret : total;
}

long xb_conntrack_cut(struct xb_conntrack *c, int family, const void *addr)
{
	long one;

	return xb_conntrack_cut_many(c, family, addr, 1, &one);
}
