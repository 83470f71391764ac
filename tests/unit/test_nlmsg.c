/* Netlink replies that lie: a message length past the read, messages
 * shorter than their fixed header, attributes shorter than their type, a
 * string without its NUL. Regression tests for what fuzz_nl_* found;
 * rtnl.c is #included for its parse callbacks. Then the client
 * (netlink.h) against the kernel, in a private network namespace: replies
 * only from the kernel, error acks as -errno, a dump over several reads. */
#include "tests/lib/check.h"
#include "gateway/kernel/nlmsg.h"
#include "gateway/kernel/rtnl.c"

/* A message builder over an exactly sized copy (so ASan sees over-reads). */
struct nlbuf {
	uint8_t b[512];
	size_t n;
};

static struct nlmsghdr *msg(struct nlbuf *m, uint16_t type, const void *fixed, size_t flen)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(m->b + m->n);

	h->nlmsg_type = type;
	if (flen)
		memcpy(mnl_nlmsg_put_extra_header(h, flen), fixed, flen);
	return h;
}

static void end(struct nlbuf *m, struct nlmsghdr *h)
{
	m->n += NLMSG_ALIGN(h->nlmsg_len);
}

static int calls;

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(void)data;
	calls++;
	return MNL_CB_OK;
}

/* A second message claiming 0xfdfffffc octets: libmnl's mnl_nlmsg_ok()
 * takes it ((int) of it is negative) and its next step lands 4 GB away. */
TEST(length_past_the_read)
{
	struct nlbuf m = { .n = 0 };
	struct nlmsghdr *h = msg(&m, RTM_NEWROUTE, NULL, 0);
	uint8_t *copy;

	end(&m, h);
	h = msg(&m, RTM_NEWROUTE, NULL, 0);
	h->nlmsg_len = 0xfdfffffc;
	m.n += 16;
	CHECK(!xb_nlmsg_lengths_ok(m.b, m.n));
	CHECK((copy = malloc(m.n)) != NULL);
	memcpy(copy, m.b, m.n);
	calls = 0;
	errno = 0;
	CHECK_INT(xb_nlmsg_run(copy, m.n, 0, 0, count_cb, NULL), ==, MNL_CB_ERROR);
	CHECK_INT(errno, ==, EBADMSG);
	CHECK_INT(calls, ==, 0);
	free(copy);
	/* Whole messages, and a short tail after them, pass. */
	CHECK(xb_nlmsg_lengths_ok(m.b, 16));
	CHECK(xb_nlmsg_lengths_ok(m.b, 20));
	CHECK(xb_nlmsg_lengths_ok(m.b, 0));
}

static void run(struct nlbuf *m, mnl_cb_t cb, void *data)
{
	uint8_t *copy = malloc(m->n);

	CHECK(copy != NULL);
	memcpy(copy, m->b, m->n);
	CHECK(xb_nlmsg_run(copy, m->n, 0, 0, cb, data) >= 0);
	free(copy);
}

/* A route message with a 4-octet body (an rtmsg is 12) is skipped; one
 * whose RTA_DST holds 1 octet and RTA_OIF 2 keeps neither: their values
 * were read from the octets after them. */
TEST(route_short_parts)
{
	static struct sweep s;
	struct nlbuf m = { .n = 0 };
	struct rtmsg rtm = { .rtm_family = AF_INET, .rtm_dst_len = 24, .rtm_table = 200 };
	uint8_t one = 203;
	uint16_t two = 0xffff;
	struct nlmsghdr *h = msg(&m, RTM_NEWROUTE, &rtm, 4);

	end(&m, h);
	s.hi = s.thi = UINT32_MAX;
	run(&m, route_cb, &s);
	CHECK_INT(s.n_routes, ==, 0);

	m.n = 0;
	h = msg(&m, RTM_NEWROUTE, &rtm, sizeof(rtm));
	mnl_attr_put(h, RTA_DST, 1, &one);
	mnl_attr_put(h, RTA_OIF, 2, &two);
	mnl_attr_put_u32(h, RTA_PRIORITY, 0x77777777);	/* what sat after them */
	end(&m, h);
	run(&m, route_cb, &s);
	CHECK_INT(s.n_routes, ==, 1);
	CHECK_INT(s.routes[0].table, ==, 200);
	CHECK_INT(s.routes[0].ifindex, ==, 0);
	CHECK_INT(s.routes[0].dst.addr[0] | s.routes[0].dst.addr[1] | s.routes[0].dst.addr[2] |
		  s.routes[0].dst.addr[3], ==, 0);
	CHECK_INT(s.routes[0].metric, ==, 0x77777777);
}

/* A rule message shorter than its fib_rule_hdr is skipped. */
TEST(rule_short_header)
{
	static struct sweep s;
	struct nlbuf m = { .n = 0 };
	struct fib_rule_hdr frh = { .family = AF_INET, .table = 5 };
	struct nlmsghdr *h = msg(&m, RTM_NEWRULE, &frh, 4);

	end(&m, h);
	s.hi = s.thi = UINT32_MAX;
	run(&m, rule_cb, &s);
	CHECK_INT(s.n_rules, ==, 0);
}

/* IFLA_INFO_KIND without its NUL: the kind is the payload, not the
 * octets after it. */
TEST(link_kind_without_nul)
{
	struct nlbuf m = { .n = 0 };
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nlmsghdr *h = msg(&m, RTM_NEWLINK, &ifi, sizeof(ifi));
	struct nlattr *nest = mnl_attr_nest_start(h, IFLA_LINKINFO);
	char kind[16];

	mnl_attr_put(h, IFLA_INFO_KIND, 4, "wire");	/* 4 octets: no padding, no NUL */
	mnl_attr_put_strz(h, IFLA_INFO_DATA, "tail");	/* its header follows at once */
	mnl_attr_nest_end(h, nest);
	end(&m, h);
	memset(kind, 0, sizeof(kind));
	run(&m, link_cb, kind);
	CHECK_STR(kind, "wire");
}

/* A netlink socket takes unicasts from any process that knows its port id,
 * and sequence numbers start at the time of day: a forged "success" ack
 * queued before the kernel's answer must not be taken for it. Here the
 * kernel answers ENODEV (no such link); another socket in this process
 * first sends an ack claiming success with the very sequence number. */
TEST(reply_from_a_process_is_ignored)
{
	struct xb_rtnl r;
	struct mnl_socket *evil;
	struct sockaddr_nl to = { .nl_family = AF_NETLINK };
	char buf[256], kind[16];
	struct nlmsghdr *h;
	struct nlmsgerr *e;

	xb_test_private_netns();
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	CHECK((evil = mnl_socket_open(NETLINK_ROUTE)) != NULL);
	CHECK(mnl_socket_bind(evil, 0, MNL_SOCKET_AUTOPID) == 0);
	memset(buf, 0, sizeof(buf));
	h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = NLMSG_ERROR;
	h->nlmsg_seq = r.nl.seq + 1;	/* the next one */
	e = mnl_nlmsg_put_extra_header(h, sizeof(*e));
	e->error = 0;
	e->msg.nlmsg_seq = h->nlmsg_seq;
	to.nl_pid = r.nl.portid;
	CHECK(sendto(mnl_socket_get_fd(evil), h, h->nlmsg_len, 0, (struct sockaddr *)&to,
		     sizeof(to)) == (ssize_t)h->nlmsg_len);
	CHECK_INT(xb_rtnl_link_kind(&r, 0x7ffffff0, kind), ==, -ENODEV);
	CHECK_INT(r.nl.foreign, ==, 1);
	mnl_socket_close(evil);
	xb_rtnl_close(&r);
}

/* An error ack comes back as its negative errno, from a request and from a
 * dump; a closed client answers -EBADF. */
TEST(error_ack_is_negative_errno)
{
	struct xb_nl nl = { .sock = NULL };
	char buf[256];
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct ifaddrmsg *ifa;

	h->nlmsg_type = RTM_GETLINK;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_index = 0x7ffffff0;
	CHECK_INT(xb_nl_request(&nl, h, NULL, NULL), ==, -EBADF);
	xb_test_private_netns();
	CHECK_INT(xb_nl_open(&nl, NETLINK_ROUTE, 0), ==, 0);
	CHECK(xb_nl_is_open(&nl));
	CHECK_INT(xb_nl_request(&nl, h, NULL, NULL), ==, -ENODEV);
	/* Deleting an address lo does not have. */
	h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = RTM_DELADDR;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	*ifa = (struct ifaddrmsg){ .ifa_family = AF_INET, .ifa_prefixlen = 32,
				   .ifa_index = if_nametoindex("lo") };
	mnl_attr_put(h, IFA_LOCAL, 4, "\xcb\x00\x71\x09");	/* 203.0.113.9 */
	CHECK_INT(xb_nl_request(&nl, h, NULL, NULL), ==, -EADDRNOTAVAIL);
	xb_nl_close(&nl);
	CHECK(!xb_nl_is_open(&nl));
	xb_nl_close(&nl);	/* twice is harmless */
}

struct tally {
	unsigned ours;		/* 198.51.100.0/24 addresses seen */
	size_t octets;
};

static int addr_tally_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tally *t = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	t->octets += nlh->nlmsg_len;
	if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(*ifa))
		if (mnl_attr_get_type(a) == IFA_LOCAL && mnl_attr_get_payload_len(a) == 4 &&
		    memcmp(mnl_attr_get_payload(a), "\xc6\x33\x64", 3) == 0)
			t->ours++;
	return MNL_CB_OK;
}

/* 250 addresses on lo make a dump of some 20 000 octets: the kernel sends
 * it in several datagrams of at most XB_NL_RECV_MAX, and every address
 * reaches the callback once. */
TEST(dump_over_several_reads)
{
	struct xb_rtnl r;
	struct tally t = { 0, 0 };
	char buf[256], a[32];
	struct nlmsghdr *h;
	struct ifaddrmsg *ifa;
	struct xb_prefix p;
	unsigned lo;

	xb_test_private_netns();
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	CHECK((lo = xb_rtnl_ifindex("lo")) > 0);
	for (int i = 1; i <= 250; i++) {
		snprintf(a, sizeof(a), "198.51.100.%d/32", i);
		CHECK(xb_prefix_parse(&p, a));
		CHECK_INT(xb_rtnl_addr(&r, true, lo, &p), ==, 0);
	}
	h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = RTM_GETADDR;
	h->nlmsg_flags = NLM_F_REQUEST;
	ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	CHECK_INT(xb_nl_dump(&r.nl, h, addr_tally_cb, &t), ==, 0);
	CHECK_INT(t.ours, ==, 250);
	CHECK(t.octets > 2 * XB_NL_RECV_MAX);
	CHECK_INT(r.nl.foreign, ==, 0);
	xb_rtnl_close(&r);
}
