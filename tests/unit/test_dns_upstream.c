/* The upstream client against fake servers run by this process in a private
 * network namespace: a normal answer (IPv4, IPv6, EDNS as asked), spoofed
 * replies ignored, timeout and failover, SERVFAIL and failover, TC and the
 * TCP retry, a server reachable only through bind_ifname (a veth into a
 * child's namespace), cancellation, the outstanding limit. Every wait has a
 * deadline. */
#include "gateway/dns/dns_upstream.h"
#include "common/clock.h"
#include "tests/lib/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum mode { ANSWER, SILENT, SERVFAIL, SPOOF, TRUNC };

struct fake {
	enum mode mode;
	int udp, tcp, conn, other;	/* other: a second socket, another port */
	char text[64];			/* "ADDR:PORT" for xb_dns_upstream_set_add */
	unsigned got_udp, got_tcp;
	struct xb_dns_wire_edns edns;		/* of the last query */
};

struct result {
	bool done;
	unsigned calls;
	struct xb_dns_upstream_result r;
	uint8_t a[4];			/* the first A record */
	unsigned an;
};

static const uint8_t good[4] = { 192, 0, 2, 53 }, bad[4] = { 203, 0, 113, 66 };

static void fake_open(struct fake *f, const char *ip, enum mode mode)
{
	union xb_dns_upstream_addr a = { 0 };
	socklen_t al = sizeof(a);
	int one = 1, fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	char host[INET6_ADDRSTRLEN];

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->conn = -1;
	if (fam == AF_INET) {
		a.in.sin_family = AF_INET;
		CHECK(inet_pton(AF_INET, ip, &a.in.sin_addr) == 1);
	} else {
		a.in6.sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1);
	}
	f->udp = socket(fam, SOCK_DGRAM, 0);
	f->other = socket(fam, SOCK_DGRAM, 0);
	f->tcp = socket(fam, SOCK_STREAM, 0);
	CHECK(f->udp >= 0 && f->tcp >= 0 && f->other >= 0);
	CHECK(bind(f->udp, &a.sa, fam == AF_INET ? sizeof(a.in) : sizeof(a.in6)) == 0);
	CHECK(getsockname(f->udp, &a.sa, &al) == 0);
	setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(f->tcp, &a.sa, al) == 0);	/* the same port, over TCP */
	CHECK(listen(f->tcp, 4) == 0);
	inet_ntop(fam, fam == AF_INET ? (void *)&a.in.sin_addr : (void *)&a.in6.sin6_addr,
		  host, sizeof(host));
	snprintf(f->text, sizeof(f->text), fam == AF_INET ? "%s:%u" : "[%s]:%u", host,
		 ntohs(a.in.sin_port));
}

static void fake_close(struct fake *f)
{
	close(f->udp);
	close(f->tcp);
	close(f->other);
	if (f->conn >= 0)
		close(f->conn);
}

/* An answer to the query in q: n A records of addr, rcode, at most size. */
static size_t respond(uint8_t *buf, size_t size, const struct xb_dns_wire_query *q, unsigned rcode,
		      unsigned n, const uint8_t addr[4])
{
	struct xb_dns_wire_builder b;

	CHECK_INT(xb_dns_wire_answer_begin(&b, buf, size, q, rcode, 0, XB_DNS_WIRE_EDNS_SIZE), ==, 0);
	for (unsigned i = 0; i < n; i++)
		if (xb_dns_wire_answer_a(&b, NULL, 60, addr) != 0)
			break;
	return xb_dns_wire_answer_finish(&b);
}

static void fake_udp(struct fake *f)
{
	uint8_t in[1500], out[4096];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	struct xb_dns_wire_query q;
	ssize_t n = recvfrom(f->udp, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
	size_t len;

	CHECK(n > 0);
	f->got_udp++;
	CHECK_INT(xb_dns_wire_parse_query(&q, in, (size_t)n), ==, XB_DNS_WIRE_Q_OK);
	f->edns = q.edns;
	switch (f->mode) {
	case SILENT:
		return;
	case SERVFAIL:
		len = respond(out, sizeof(out), &q, XB_DNS_WIRE_SERVFAIL, 0, good);
		break;
	case TRUNC:
		len = respond(out, 512, &q, XB_DNS_WIRE_NOERROR, 100, good);
		CHECK(out[2] & (XB_DNS_WIRE_F_TC >> 8));
		break;
	case SPOOF:
		/* The right id from another port, then a wrong id, then another
		 * question, each with a bad address; then the real answer. */
		len = respond(out, sizeof(out), &q, XB_DNS_WIRE_NOERROR, 1, bad);
		sendto(f->other, out, len, 0, (struct sockaddr *)&from, fl);
		out[1] ^= 0x55;
		sendto(f->udp, out, len, 0, (struct sockaddr *)&from, fl);
		q.q.qtype = XB_DNS_WIRE_T_AAAA;
		len = respond(out, sizeof(out), &q, XB_DNS_WIRE_NOERROR, 0, bad);
		sendto(f->udp, out, len, 0, (struct sockaddr *)&from, fl);
		q.q.qtype = XB_DNS_WIRE_T_A;
		/* fall through */
	default:
		len = respond(out, sizeof(out), &q, XB_DNS_WIRE_NOERROR, 1, good);
	}
	CHECK(sendto(f->udp, out, len, 0, (struct sockaddr *)&from, fl) == (ssize_t)len);
}

/* One TCP query per connection; the client sends it whole at once. */
static void fake_tcp(struct fake *f)
{
	uint8_t in[2 + 512], out[2 + 65535];
	struct xb_dns_wire_query q;
	ssize_t n = recv(f->conn, in, sizeof(in), 0);
	size_t len;

	f->got_tcp++;
	CHECK(n > 2 && (size_t)n == 2u + (in[0] << 8 | in[1]));
	CHECK_INT(xb_dns_wire_parse_query(&q, in + 2, (size_t)n - 2), ==, XB_DNS_WIRE_Q_OK);
	len = respond(out + 2, 65535, &q, XB_DNS_WIRE_NOERROR, 100, good);
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	CHECK(send(f->conn, out, len + 2, MSG_NOSIGNAL) == (ssize_t)len + 2);
	close(f->conn);
	f->conn = -1;
}

/* Drive the client and the fakes until *done or ms pass. xb_dns_upstream_process
 * runs only when its fd says so. */
static void run(struct xb_dns_upstream *u, struct fake *f, unsigned nf, const bool *done, unsigned ms)
{
	uint64_t end = clock_mono_ns() + ms * NSEC_PER_MSEC;

	while ((!done || !*done) && clock_mono_ns() < end) {
		struct pollfd p[1 + 3 * 4];
		unsigned n = 1;

		p[0] = (struct pollfd){ .fd = xb_dns_upstream_fd(u), .events = POLLIN };
		for (unsigned i = 0; i < nf; i++) {
			p[n++] = (struct pollfd){ .fd = f[i].udp, .events = POLLIN };
			p[n++] = (struct pollfd){ .fd = f[i].tcp, .events = POLLIN };
			p[n++] = (struct pollfd){ .fd = f[i].conn, .events = POLLIN };
		}
		if (poll(p, n, 10) <= 0)
			continue;
		if (p[0].revents)
			xb_dns_upstream_process(u, clock_mono_ns());
		for (unsigned i = 0; i < nf; i++) {
			if (p[1 + 3 * i].revents)
				fake_udp(&f[i]);
			if (p[2 + 3 * i].revents && f[i].conn < 0)
				f[i].conn = accept(f[i].tcp, NULL, NULL);
			if (p[3 + 3 * i].revents && f[i].conn >= 0)
				fake_tcp(&f[i]);
		}
	}
}

static void done_cb(void *ctx, const struct xb_dns_upstream_result *r)
{
	struct result *res = ctx;
	struct xb_dns_wire_chain ch;
	struct xb_dns_wire_addr a;

	res->done = true;
	res->calls++;
	res->r = *r;
	res->r.msg = NULL;
	res->r.m = NULL;
	if (r->status != XB_DNS_UPSTREAM_OK)
		return;
	CHECK(r->m && r->msg && r->len == r->m->len);
	CHECK_INT(xb_dns_wire_chain(r->m, &ch, &a, 1), ==, 0);
	res->an = (unsigned)ch.found;
	if (ch.naddr)
		memcpy(res->a, a.addr, 4);
}

static struct xb_dns_wire_question question(void)
{
	struct xb_dns_wire_question q = { .qtype = XB_DNS_WIRE_T_A, .qclass = XB_DNS_WIRE_C_IN };

	q.name_len = (uint16_t)xb_dns_wire_name_from_text("Www.Example.com", q.name);
	return q;
}

static struct xb_dns_upstream *client(unsigned max)
{
	struct xb_dns_upstream_conf conf = { .max_outstanding = max };
	struct xb_dns_upstream *u = xb_dns_upstream_new(&conf);

	CHECK(u);
	return u;
}

/* A set of the fakes' addresses with a short timeout. */
static void set_of(struct xb_dns_upstream_set *s, struct fake *f, unsigned nf, unsigned timeout_ms,
		   unsigned tries)
{
	xb_dns_upstream_set_init(s, "test");
	for (unsigned i = 0; i < nf; i++)
		CHECK_INT(xb_dns_upstream_set_add(s, f[i].text), ==, 0);
	s->timeout_ms = timeout_ms;
	s->tries = tries;
}

TEST(set_parse)
{
	struct xb_dns_upstream_set s;

	xb_dns_upstream_set_init(&s, "p");
	CHECK_INT(s.timeout_ms, ==, 1000);
	CHECK_INT(s.tries, ==, 2);
	CHECK_INT(xb_dns_upstream_set_add(&s, "192.0.2.1"), ==, 0);
	CHECK_INT(ntohs(s.srv[0].addr.in.sin_port), ==, 53);
	CHECK_INT(xb_dns_upstream_set_add(&s, "192.0.2.1:5353"), ==, 0);
	CHECK_INT(ntohs(s.srv[1].addr.in.sin_port), ==, 5353);
	CHECK_INT(xb_dns_upstream_set_add(&s, "2001:db8::1"), ==, 0);
	CHECK_INT(s.srv[2].addr.sa.sa_family, ==, AF_INET6);
	CHECK_INT(xb_dns_upstream_set_add(&s, "[2001:db8::1]:54"), ==, 0);
	CHECK_INT(ntohs(s.srv[3].addr.in6.sin6_port), ==, 54);
	const char *bad_text[] = { "", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "host:53",
				   "[2001:db8::1", "[2001:db8::1]x", "192.0.2.300", "[192.0.2.1]:x" };
	for (size_t i = 0; i < sizeof(bad_text) / sizeof(*bad_text); i++) {
		CHECK_INT(xb_dns_upstream_set_add(&s, bad_text[i]), ==, -1);
		CHECK_INT(errno, ==, EINVAL);
	}
	CHECK_INT(xb_dns_upstream_set_source(&s, "192.0.2.1:53"), ==, -1);
	CHECK_INT(xb_dns_upstream_set_source(&s, "192.0.2.1"), ==, 0);
	for (int i = 4; i < XB_DNS_UPSTREAM_SERVERS_MAX; i++)
		CHECK_INT(xb_dns_upstream_set_add(&s, "192.0.2.9"), ==, 0);
	CHECK_INT(xb_dns_upstream_set_add(&s, "192.0.2.9"), ==, -1);
	CHECK_INT(errno, ==, ENOSPC);
}

/* A client and its fakes (one or two), the setup the tests share. */
struct rig {
	struct xb_dns_upstream *u;
	struct xb_dns_upstream_set s;
	struct fake f[2];
	unsigned nf;
	struct xb_dns_wire_question q;
	struct result res;
};

/* A client (max outstanding, 0: the default), the fake at ip0 and, when ip1
 * is not NULL, one at ip1; the set of them with timeout_ms and tries. */
static void rig_open(struct rig *r, unsigned max, const char *ip0, enum mode m0, const char *ip1,
		     enum mode m1, unsigned timeout_ms, unsigned tries)
{
	memset(r, 0, sizeof(*r));
	r->u = client(max);
	r->q = question();
	fake_open(&r->f[0], ip0, m0);
	r->nf = 1;
	if (ip1)
		fake_open(&r->f[r->nf++], ip1, m1);
	set_of(&r->s, r->f, r->nf, timeout_ms, tries);
}

/* One query, run until answered (3 s at most): its time in ns. */
static uint64_t rig_ask(struct rig *r, unsigned flags)
{
	uint64_t t = clock_mono_ns();

	r->res = (struct result){ 0 };
	CHECK(xb_dns_upstream_query(r->u, &r->s, &r->q, flags, done_cb, &r->res, t) != 0);
	run(r->u, r->f, r->nf, &r->res.done, 3000);
	return clock_mono_ns() - t;
}

static void rig_close(struct rig *r)
{
	for (unsigned i = 0; i < r->nf; i++)
		fake_close(&r->f[i]);
	xb_dns_upstream_free(r->u);
}

static void answer_on(const char *ip, unsigned flags)
{
	struct xb_dns_upstream_stats st;
	struct rig r;

	rig_open(&r, 0, ip, ANSWER, NULL, 0, 1000, 2);
	rig_ask(&r, flags);
	CHECK(r.res.done);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 0);
	CHECK_INT(r.res.r.rcode, ==, XB_DNS_WIRE_NOERROR);
	CHECK(!r.res.r.tcp);
	CHECK_MEM(r.res.a, good, 4);
	CHECK(r.f[0].edns.present == !(flags & XB_DNS_UPSTREAM_NOEDNS));
	if (r.f[0].edns.present) {
		CHECK_INT(r.f[0].edns.udp_size, ==, XB_DNS_WIRE_EDNS_SIZE);
		CHECK_INT(r.f[0].edns.do_bit, ==, !!(flags & XB_DNS_UPSTREAM_DO));
	}
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.answered, ==, 1);
	CHECK_INT(st.outstanding, ==, 0);
	CHECK_INT(r.res.calls, ==, 1);
	rig_close(&r);
}

TEST(answer)
{
	xb_test_private_netns();
	answer_on("127.0.0.1", 0);
	answer_on("127.0.0.1", XB_DNS_UPSTREAM_DO);
	answer_on("127.0.0.1", XB_DNS_UPSTREAM_NOEDNS);
	answer_on("::1", XB_DNS_UPSTREAM_DO);
}

TEST(spoofed_ignored)
{
	struct xb_dns_upstream_stats st;
	struct rig r;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", SPOOF, NULL, 0, 1000, 1);
	rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_MEM(r.res.a, good, 4);
	xb_dns_upstream_stats(r.u, &st);
	/* The wrong id and the wrong question reach us and are counted; the
	 * other port never gets past the connected socket. */
	CHECK_INT(st.mismatched, ==, 2);
	CHECK_INT(st.tries, ==, 1);
	rig_close(&r);
}

TEST(timeout_failover)
{
	struct xb_dns_upstream_stats st;
	struct rig r;
	uint64_t t;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", SILENT, "127.0.0.1", ANSWER, 300, 2);
	t = rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 1);
	CHECK_INT(t, >=, 300 * NSEC_PER_MSEC);
	CHECK_INT(t, <, 1500 * NSEC_PER_MSEC);
	CHECK_INT(r.f[0].got_udp, ==, 1);
	CHECK(r.s.srv[0].down_until_ns > clock_mono_ns());
	/* Server 0 is down now: the next query goes straight to server 1. */
	t = rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 1);
	CHECK_INT(t, <, 300 * NSEC_PER_MSEC);
	CHECK_INT(r.f[0].got_udp, ==, 1);
	CHECK_INT(r.f[1].got_udp, ==, 2);
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.answered, ==, 2);
	rig_close(&r);
}

TEST(all_time_out)
{
	struct xb_dns_upstream_stats st;
	struct rig r;
	uint64_t t;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", SILENT, "::1", SILENT, 50, 2);
	t = rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_TIMEOUT);
	CHECK_INT(r.res.r.server, ==, -1);
	/* Two rounds over two servers, 50 ms each. */
	CHECK_INT(t, >=, 200 * NSEC_PER_MSEC);
	CHECK_INT(t, <, 1500 * NSEC_PER_MSEC);
	CHECK_INT(r.f[0].got_udp, ==, 2);
	CHECK_INT(r.f[1].got_udp, ==, 2);
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.timeouts, ==, 1);
	CHECK_INT(st.tries, ==, 4);
	rig_close(&r);
}

TEST(servfail_failover)
{
	struct rig r;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", SERVFAIL, "127.0.0.1", ANSWER, 1000, 2);
	rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 1);
	CHECK_INT(r.f[0].got_udp, ==, 1);
	/* Every server fails: FAILED with the rcode; each asked once only. */
	r.f[1].mode = SERVFAIL;
	rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_FAILED);
	CHECK_INT(r.res.r.rcode, ==, XB_DNS_WIRE_SERVFAIL);
	CHECK_INT(r.f[0].got_udp, ==, 2);
	CHECK_INT(r.f[1].got_udp, ==, 2);
	rig_close(&r);
}

TEST(port_unreachable_is_quick)
{
	struct rig r;
	uint64_t t;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", ANSWER, "127.0.0.1", ANSWER, 1000, 2);
	close(r.f[0].udp);	/* nobody listens: ICMP port unreachable */
	r.f[0].udp = socket(AF_INET, SOCK_DGRAM, 0);
	t = rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 1);
	CHECK_INT(t, <, 500 * NSEC_PER_MSEC);
	rig_close(&r);
}

TEST(truncated_then_tcp)
{
	struct xb_dns_upstream_stats st;
	struct rig r;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", TRUNC, NULL, 0, 1000, 1);
	rig_ask(&r, 0);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK(r.res.r.tcp);
	CHECK_INT(r.res.an, ==, 100);
	CHECK_INT(r.res.r.len, >, 1600);
	CHECK_INT(r.f[0].got_udp, ==, 1);
	CHECK_INT(r.f[0].got_tcp, ==, 1);
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.tcp, ==, 1);
	rig_close(&r);
}

TEST(cancel_and_limit)
{
	struct xb_dns_upstream_stats st;
	struct result res[3] = { 0 };
	struct rig r;
	uint64_t h[3];

	xb_test_private_netns();
	rig_open(&r, 2, "127.0.0.1", SILENT, NULL, 0, 100, 1);
	h[0] = xb_dns_upstream_query(r.u, &r.s, &r.q, 0, done_cb, &res[0], clock_mono_ns());
	h[1] = xb_dns_upstream_query(r.u, &r.s, &r.q, 0, done_cb, &res[1], clock_mono_ns());
	CHECK(h[0] && h[1] && h[0] != h[1]);
	errno = 0;
	h[2] = xb_dns_upstream_query(r.u, &r.s, &r.q, 0, done_cb, &res[2], clock_mono_ns());
	CHECK(h[2] == 0);
	CHECK_INT(errno, ==, EAGAIN);
	xb_dns_upstream_cancel(r.u, h[0]);
	run(r.u, r.f, 1, NULL, 300);
	CHECK_INT(res[0].calls, ==, 0);
	CHECK_INT(res[1].calls, ==, 1);
	CHECK_INT(res[1].r.status, ==, XB_DNS_UPSTREAM_TIMEOUT);
	/* Stale handles cancel nothing, not even a query now in their slot. */
	h[2] = xb_dns_upstream_query(r.u, &r.s, &r.q, 0, done_cb, &res[2], clock_mono_ns());
	CHECK(h[2]);
	xb_dns_upstream_cancel(r.u, h[0]);
	xb_dns_upstream_cancel(r.u, h[1]);
	xb_dns_upstream_cancel(r.u, 0);
	xb_dns_upstream_cancel(r.u, 12345);
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.outstanding, ==, 1);
	CHECK_INT(st.limited, ==, 1);
	CHECK_INT(st.cancelled, ==, 1);
	run(r.u, r.f, 1, &res[2].done, 1000);
	CHECK_INT(res[2].r.status, ==, XB_DNS_UPSTREAM_TIMEOUT);
	CHECK_INT(res[0].calls, ==, 0);
	rig_close(&r);
}

/* ---- bind_ifname ----
 *
 *   this namespace                       the child's namespace
 *   veth0 192.0.2.1/32  <---- veth ---->  veth1 192.0.2.2/24, DNS on :53
 *   (no route to 192.0.2.2)
 *
 * Only a socket bound to veth0 reaches the server: the kernel takes a bound
 * device's destination as on-link when no route matches. */

static void child_serve(int in, int out)
{
	struct fake f;
	char c;

	if (unshare(CLONE_NEWNET) < 0 || write(out, "r", 1) != 1 || read(in, &c, 1) != 1)
		_exit(1);
	if (system("ip link set lo up && ip addr add 192.0.2.2/24 dev veth1 && "
		   "ip link set veth1 up") != 0)
		_exit(2);
	fake_open(&f, "192.0.2.2", ANSWER);
	if (write(out, f.text, strlen(f.text) + 1) < 0)
		_exit(3);
	for (int i = 0; i < 500; i++) {		/* 5 s at most */
		struct pollfd p[2] = { { .fd = f.udp, .events = POLLIN }, { .fd = in, .events = POLLIN } };

		if (poll(p, 2, 10) > 0) {
			if (p[1].revents)
				break;		/* the parent is done */
			if (p[0].revents)
				fake_udp(&f);
		}
	}
	_exit(0);
}

TEST(bind_ifname)
{
	struct xb_dns_wire_question q = question();
	struct xb_dns_upstream *u;
	struct xb_dns_upstream_set s;
	struct result res = { 0 };
	int down[2], up[2], status;
	char cmd[256], text[64] = "";
	pid_t pid;

	xb_test_private_netns();
	CHECK(pipe(down) == 0 && pipe(up) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child_serve(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	CHECK(read(up[0], text, 1) == 1);
	snprintf(cmd, sizeof(cmd), "ip link add veth0 type veth peer name veth1 netns %d && "
		 "ip addr add 192.0.2.1/32 dev veth0 && ip link set veth0 up && "
		 "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth0.rp_filter=0",
		 (int)pid);
	if (system(cmd) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		SKIP("cannot make a veth pair into a child namespace");
	}
	CHECK(write(down[1], "g", 1) == 1);
	CHECK(read(up[0], text, sizeof(text)) > 0);
	u = client(0);
	xb_dns_upstream_set_init(&s, "tunnel");
	CHECK_INT(xb_dns_upstream_set_add(&s, text), ==, 0);
	s.timeout_ms = 1000;
	/* Unbound: no route, the query cannot even be sent. */
	errno = 0;
	CHECK(xb_dns_upstream_query(u, &s, &q, 0, done_cb, &res, clock_mono_ns()) == 0);
	CHECK_INT(errno, ==, ENETUNREACH);
	snprintf(s.bind_ifname, sizeof(s.bind_ifname), "veth0");
	CHECK(xb_dns_upstream_query(u, &s, &q, 0, done_cb, &res, clock_mono_ns()) != 0);
	run(u, NULL, 0, &res.done, 3000);
	CHECK_INT(res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_MEM(res.a, good, 4);
	xb_dns_upstream_free(u);
	close(down[1]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(up[0]);
}

/* A query names its servers and their order (a tunnel rule: the path's
 * tunnels as steering orders them): the first is asked first; when it does
 * not answer (its tunnel died mid-flight) the next one is, within the
 * query; xb_dns_upstream_set_revive lets a tunnel's servers be asked at once again. */
TEST(order_and_revive)
{
	static const uint8_t back[] = { 1, 0 }, one[] = { 1 }, out[] = { 2 };
	struct rig r;
	uint64_t t;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", ANSWER, "127.0.0.1", ANSWER, 100, 1);
	snprintf(r.s.srv[1].ifname, sizeof(r.s.srv[1].ifname), "lo");
	r.res = (struct result){ 0 };
	t = clock_mono_ns();
	CHECK(xb_dns_upstream_query_order(r.u, &r.s, back, 2, &r.q, 0, done_cb, &r.res, t) != 0);
	run(r.u, r.f, r.nf, &r.res.done, 3000);
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 1);		/* the order's first, not the set's */
	CHECK_INT(r.f[0].got_udp, ==, 0);
	CHECK_INT(r.f[1].got_udp, ==, 1);
	/* Server 1 goes silent: asked first, it times out, server 0 answers. */
	r.f[1].mode = SILENT;
	r.res = (struct result){ 0 };
	t = clock_mono_ns();
	CHECK(xb_dns_upstream_query_order(r.u, &r.s, back, 2, &r.q, 0, done_cb, &r.res, t) != 0);
	run(r.u, r.f, r.nf, &r.res.done, 3000);
	t = clock_mono_ns() - t;
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 0);
	CHECK_INT(t, >=, 100 * NSEC_PER_MSEC);
	CHECK_INT(r.f[1].got_udp, ==, 2);
	CHECK(r.s.srv[1].down_until_ns > clock_mono_ns());
	/* Its tunnel (lo) is up again: asked at once, not after down_ms. */
	r.f[1].mode = ANSWER;
	xb_dns_upstream_set_revive(&r.s, "lo");
	CHECK_INT(r.s.srv[1].down_until_ns, ==, 0);
	r.res = (struct result){ 0 };
	CHECK(xb_dns_upstream_query_order(r.u, &r.s, one, 1, &r.q, 0, done_cb, &r.res, clock_mono_ns()) != 0);
	run(r.u, r.f, r.nf, &r.res.done, 3000);
	CHECK_INT(r.res.r.server, ==, 1);
	CHECK_INT(r.f[1].got_udp, ==, 3);
	/* An index outside the set is refused. */
	CHECK(xb_dns_upstream_query_order(r.u, &r.s, out, 1, &r.q, 0, done_cb, &r.res, clock_mono_ns()) == 0);
	CHECK_INT(errno, ==, EINVAL);
	rig_close(&r);
}

/* The tunnel a try waits on is judged down (xb_dns_upstream_give_up): the query
 * goes on to its next server at once, not after its 2 s try. */
TEST(give_up_on_a_dead_tunnel)
{
	static const uint8_t back[] = { 1, 0 };
	struct xb_dns_upstream_stats st;
	struct rig r;
	uint64_t t;

	xb_test_private_netns();
	rig_open(&r, 0, "127.0.0.1", ANSWER, "127.0.0.1", SILENT, 2000, 1);
	snprintf(r.s.srv[1].ifname, sizeof(r.s.srv[1].ifname), "lo");
	t = clock_mono_ns();
	CHECK(xb_dns_upstream_query_order(r.u, &r.s, back, 2, &r.q, 0, done_cb, &r.res, t) != 0);
	run(r.u, r.f, r.nf, NULL, 50);			/* server 1 got it, and is silent */
	CHECK_INT(r.f[1].got_udp, ==, 1);
	CHECK(!r.res.done);
	xb_dns_upstream_give_up(r.u, "eth9", clock_mono_ns());	/* another tunnel: nothing */
	run(r.u, r.f, r.nf, NULL, 50);
	CHECK(!r.res.done);
	xb_dns_upstream_give_up(r.u, "lo", clock_mono_ns());
	run(r.u, r.f, r.nf, &r.res.done, 3000);
	t = clock_mono_ns() - t;
	CHECK_INT(r.res.r.status, ==, XB_DNS_UPSTREAM_OK);
	CHECK_INT(r.res.r.server, ==, 0);
	CHECK_INT(t, <, 1500 * NSEC_PER_MSEC);		/* well before the 2 s try's end */
	CHECK(r.s.srv[1].down_until_ns > clock_mono_ns());
	xb_dns_upstream_stats(r.u, &st);
	CHECK_INT(st.tries, ==, 2);
	rig_close(&r);
}
