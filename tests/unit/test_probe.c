/* The prober: its packets (pure), target specs, and live probing in a
 * private network namespace — every target kind against servers this test
 * runs, interface binding, two probers side by side, reload. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "tests/lib/check.h"
#include "probe/probe.h"
#include "probe/probe_wire.h"

#define MS ((uint64_t)NSEC_PER_MSEC)

TEST(wire_echo)
{
	uint8_t b[20 + PW_ECHO_LEN];
	struct pw_echo e = { 0x1234, 7, 0x0102030405060708ULL, 99, 42, 3 }, o;

	/* IPv4: the reply comes with a 20-byte IP header; type 0 = reply. */
	memset(b, 0, 20);
	b[0] = 0x45;
	CHECK_INT(pw_echo_build(b + 20, false, &e), ==, PW_ECHO_LEN);
	CHECK_INT(b[20], ==, 8);
	CHECK(!pw_echo_parse(b, sizeof(b), false, &o));	/* a request */
	b[20] = 0;
	CHECK(pw_echo_parse(b, sizeof(b), false, &o));
	CHECK(o.ident == e.ident && o.seq == e.seq && o.nonce == e.nonce && o.round == e.round &&
	      o.tid == e.tid && o.target == e.target);
	CHECK(!pw_echo_parse(b, sizeof(b) - 1, false, &o));	/* truncated */
	b[0] = 0x4f;						/* IHL past the end */
	CHECK(!pw_echo_parse(b, 40, false, &o));
	b[0] = 0x45;
	b[28] = 'X';						/* not our magic */
	CHECK(!pw_echo_parse(b, sizeof(b), false, &o));
	/* IPv6: no header, types 128/129. */
	pw_echo_build(b, true, &e);
	CHECK_INT(b[0], ==, 128);
	b[0] = 129;
	CHECK(pw_echo_parse(b, PW_ECHO_LEN, true, &o));
	CHECK(o.tid == 42 && o.round == 99);
}

TEST(wire_echo_checksum)
{
	uint8_t b[PW_ECHO_LEN];
	struct pw_echo e = { 1, 2, 3, 4, 5, 6 };
	uint32_t s = 0;

	pw_echo_build(b, false, &e);
	/* The Internet checksum of a correct message, checksum included, is 0. */
	for (size_t i = 0; i + 1 < sizeof(b); i += 2)
		s += xb_get16(b + i);
	s += (uint32_t)b[sizeof(b) - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	CHECK_INT(s, ==, 0xffff);
}

TEST(wire_dns)
{
	uint8_t q[300];
	size_t n = pw_dns_build(q, sizeof(q), 0xbeef, "Example.COM");
	static const uint8_t want[] = { 0xbe, 0xef, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0,
					7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'C', 'O', 'M', 0,
					0, 1, 0, 1 };

	CHECK_INT(n, ==, sizeof(want));
	CHECK_MEM(q, want, sizeof(want));
	CHECK(!pw_dns_match(q, n, 0xbeef, "example.com"));	/* a query, not a response */
	q[2] |= 0x80;
	CHECK(pw_dns_match(q, n, 0xbeef, "example.com"));	/* case-insensitive */
	CHECK(pw_dns_match(q, n, 0xbeef, "EXAMPLE.com."));
	CHECK(!pw_dns_match(q, n, 0xbeee, "example.com"));
	CHECK(!pw_dns_match(q, n, 0xbeef, "example.org"));
	CHECK(!pw_dns_match(q, n - 1, 0xbeef, "example.com"));
	CHECK_INT(pw_dns_build(q, sizeof(q), 1, "a..b"), ==, 0);
	CHECK_INT(pw_dns_build(q, sizeof(q), 1,
			       "x234567890123456789012345678901234567890123456789012345678901234.a"), ==, 0);
	CHECK_INT(pw_dns_build(q, 20, 1, "example.com"), ==, 0);	/* does not fit */
	CHECK_INT(pw_dns_build(q, sizeof(q), 1, "."), ==, 17);
}

TEST(wire_http)
{
	CHECK_INT(pw_http_status("HTTP/1.1 204 No Content\r\n", 25), ==, 204);
	CHECK_INT(pw_http_status("HTTP/1.0 503\n", 13), ==, 503);
	CHECK_INT(pw_http_status("HTTP/1.1 2", 10), ==, 0);
	CHECK_INT(pw_http_status("HTTP/1.1 200 OK", 15), ==, 0);
	CHECK_INT(pw_http_status("SSH-2.0-OpenSSH\r\n", 17), ==, -1);
	CHECK_INT(pw_http_status("HTTP/1.1 2x0 OK\r\n", 17), ==, -1);
	CHECK_INT(pw_http_status("HTTP\n", 5), ==, -1);
}

TEST(target_specs)
{
	static const struct { const char *in, *out; } good[] = {
		{ "icmp:192.0.2.1", "icmp:192.0.2.1" },
		{ "icmp:2001:db8::1", "icmp:2001:db8::1" },
		{ "tcp:192.0.2.1:443", "tcp:192.0.2.1:443" },
		{ "tcp:[2001:db8::1]:22", "tcp:[2001:db8::1]:22" },
		{ "http:198.51.100.1/health", "http:198.51.100.1:80/health" },
		{ "http:198.51.100.1:8080", "http:198.51.100.1:8080/" },
		{ "dns:203.0.113.53/example.com", "dns:203.0.113.53:53/example.com" },
		{ "dns:[2001:db8::53]:5353/a.example", "dns:[2001:db8::53]:5353/a.example" },
	};
	static const char *const bad[] = {
		"192.0.2.1", "ping:192.0.2.1", "icmp:192.0.2.1:80", "icmp:[2001:db8::1]:1",
		"tcp:192.0.2.1", "tcp:192.0.2.1:0", "tcp:192.0.2.1:65536", "tcp:host.example:80",
		"dns:192.0.2.1", "dns:192.0.2.1/", "tcp:192.0.2.1:80/x", "http:[2001:db8::1",
		"http:192.0.2.1/a b", "icmp:", "dns:192.0.2.1/a..b",
	};
	struct xb_probe_target t;
	const char *err;
	char buf[600];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err = NULL;
		if (!xb_probe_target_parse(good[i].in, &t, &err))
			xb_test_fail(__FILE__, __LINE__, "%s: %s", good[i].in, err);
		CHECK_STR(xb_probe_target_str(&t, buf, sizeof(buf)), good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (xb_probe_target_parse(bad[i], &t, &err))
			xb_test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
		CHECK(err && *err);
	}
}

/* --- live probing --- */

struct servers {
	int tcp, http, conn, dns, dns6;
};

static int listener(int type, const char *addr, unsigned port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = sizeof(*s4);
	int fd, one = 1;

	if (strchr(addr, ':')) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
	}
	fd = socket(ss.ss_family, type | SOCK_NONBLOCK, 0);
	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(fd, (struct sockaddr *)&ss, len) == 0);
	if (type == SOCK_STREAM)
		CHECK(listen(fd, 16) == 0);
	return fd;
}

static void servers_open(struct servers *s)
{
	s->tcp = listener(SOCK_STREAM, "127.0.0.1", 7001);
	s->http = listener(SOCK_STREAM, "::1", 7080);
	s->dns = listener(SOCK_DGRAM, "127.0.0.1", 7053);
	s->dns6 = listener(SOCK_DGRAM, "::1", 7053);
	s->conn = -1;
}

static void servers_close(struct servers *s)
{
	close(s->tcp);
	close(s->http);
	close(s->dns);
	close(s->dns6);
	if (s->conn >= 0)
		close(s->conn);
}

static void dns_echo(int fd)
{
	uint8_t b[512];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);

	if (n >= 12) {
		b[2] |= 0x80;	/* the question back, as a response */
		sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
}

static void serve(struct servers *s)
{
	static const char resp[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
	char b[1024];
	int fd;

	while ((fd = accept(s->tcp, NULL, NULL)) >= 0)
		close(fd);
	if (s->conn < 0)
		s->conn = accept4(s->http, NULL, NULL, SOCK_NONBLOCK);
	if (s->conn >= 0) {
		ssize_t n = recv(s->conn, b, sizeof(b) - 1, 0);

		if (n > 0 && (b[n] = 0, strstr(b, "\r\n\r\n"))) {
			CHECK(send(s->conn, resp, sizeof(resp) - 1, 0) > 0);
			close(s->conn);
			s->conn = -1;
		} else if (n == 0) {
			close(s->conn);
			s->conn = -1;
		}
	}
	dns_echo(s->dns);
	dns_echo(s->dns6);
}

/* Run probers (and the servers, if any) for ms milliseconds. */
static void pump(struct xb_probe **p, int np, struct servers *s, unsigned ms)
{
	uint64_t end = clock_mono_ns() + ms * MS;

	for (unsigned guard = 0; guard < 100000 && clock_mono_ns() < end; guard++) {
		struct pollfd pf[8];
		int n = 0;

		for (int i = 0; i < np; i++)
			pf[n++] = (struct pollfd){ xb_probe_fd(p[i]), POLLIN, 0 };
		if (s) {
			pf[n++] = (struct pollfd){ s->tcp, POLLIN, 0 };
			pf[n++] = (struct pollfd){ s->http, POLLIN, 0 };
			pf[n++] = (struct pollfd){ s->dns, POLLIN, 0 };
			pf[n++] = (struct pollfd){ s->dns6, POLLIN, 0 };
			if (s->conn >= 0)
				pf[n++] = (struct pollfd){ s->conn, POLLIN, 0 };
		}
		poll(pf, (nfds_t)n, 5);
		if (s)
			serve(s);
		for (int i = 0; i < np; i++)
			xb_probe_process(p[i], clock_mono_ns());
	}
}

struct tally {
	unsigned ok[XB_PROBE_MAX_TARGETS], lost[XB_PROBE_MAX_TARGETS], late;
	unsigned to_up, to_down;
	uint64_t max_rtt;
	char err[128];
};

static void on_result(void *ctx, const struct xb_probe_result *r)
{
	struct tally *t = ctx;

	if (r->ok) {
		t->ok[r->target]++;
		if (r->rtt_ns > t->max_rtt)
			t->max_rtt = r->rtt_ns;
	} else if (r->late) {
		t->late++;
	} else {
		t->lost[r->target]++;
		snprintf(t->err, sizeof(t->err), "%s", r->error ? r->error : "");
	}
}

static void on_state(void *ctx, size_t tunnel, enum xb_pstate from, enum xb_pstate to)
{
	struct tally *t = ctx;

	(void)tunnel;
	(void)from;
	t->to_up += to == XB_PST_UP;
	t->to_down += to == XB_PST_DOWN;
}

static void tunnel_cfg(struct xb_probe_tunnel_cfg *c, const char *name, const char *ifname,
		       const char *const *targets, unsigned n)
{
	const char *err;

	xb_probe_tunnel_defaults(c);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->ifname, sizeof(c->ifname), "%s", ifname);
	c->interval_ns = 50 * MS;
	c->stats.loss_ns = 300 * MS;
	c->stats.hold_down_ns = 500 * MS;
	for (unsigned i = 0; i < n; i++) {
		if (!xb_probe_target_parse(targets[i], &c->targets[i], &err))
			xb_test_fail(__FILE__, __LINE__, "%s: %s", targets[i], err);
	}
	c->n_targets = n;
}

TEST(every_kind_answers)
{
	static const char *const tg[] = { "icmp:127.0.0.1", "icmp:::1", "tcp:127.0.0.1:7001",
					  "http:[::1]:7080/health", "dns:127.0.0.1:7053/example.com",
					  "dns:[::1]:7053/example.org" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_probe *p;
	struct servers s;
	struct xb_pstats_summary sum;
	const char *err;

	xb_test_private_netns();
	servers_open(&s);
	tunnel_cfg(&c, "lo", "lo", tg, 6);
	p = xb_probe_new(&cbs);
	CHECK(p);
	CHECK(xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, &s, 1000);
	for (unsigned i = 0; i < 6; i++) {
		printf("# %s: %u ok, %u lost\n", tg[i], t.ok[i], t.lost[i]);
		CHECK_INT(t.ok[i], >=, 15);	/* ~20 rounds in 1 s */
		CHECK_INT(t.lost[i], ==, 0);
	}
	CHECK_INT(t.to_up, ==, 1);
	CHECK_INT(t.max_rtt, <, 20 * MS);
	CHECK(xb_probe_stats(p, "lo", -1, clock_mono_ns(), &sum) == 0);
	CHECK_INT(sum.state, ==, XB_PST_UP);
	CHECK_INT(sum.lost, ==, 0);
	CHECK(xb_probe_stats(p, "lo", 6, clock_mono_ns(), &sum) == -1);
	CHECK(xb_probe_stats(p, "nope", -1, clock_mono_ns(), &sum) == -1);
	/* Sockets: 2 raw + 2 DNS; TCP/HTTP come and go. */
	printf("# packets sent: %" PRIu64 "\n", xb_probe_packets(p));
	xb_probe_free(p);
	servers_close(&s);
}

TEST(one_dead_target_does_not_condemn)
{
	/* 198.51.100.99: nobody answers there (no route even). */
	static const char *const tg[] = { "icmp:198.51.100.99", "icmp:127.0.0.1" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_probe *p;
	struct xb_pstats_summary sum;
	const char *err;

	xb_test_private_netns();
	tunnel_cfg(&c, "t", "lo", tg, 2);
	p = xb_probe_new(&cbs);
	CHECK(xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, NULL, 1200);
	CHECK_INT(t.ok[1], >=, 15);
	CHECK_INT(t.ok[0], ==, 0);
	CHECK_INT(t.lost[0], >=, 10);
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &sum);
	CHECK_INT(sum.state, ==, XB_PST_UP);
	xb_probe_stats(p, "t", 0, clock_mono_ns(), &sum);
	CHECK_INT(sum.state, ==, XB_PST_DOWN);
	CHECK(sum.loss_pct > 99);
	xb_probe_free(p);
}

/* "dev"'s TX packet count from /proc/net/dev (this namespace's). */
static long tx_packets(const char *dev)
{
	FILE *f = fopen("/proc/net/dev", "r");
	char line[512], name[64];
	long v[16], r = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!c || sscanf(line, " %63[^:]", name) != 1 || strcmp(name, dev))
			continue;
		if (sscanf(c + 1, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) == 10)
			r = v[9];
	}
	fclose(f);
	return r;
}

/* While probes are missed, rounds come every half interval: a blackhole
 * that starts just after an answered round (interval 400 ms, timeout
 * 50 ms) is down when the third miss times out — the next round at +400,
 * then +600 and +800, down at about +850 ms. At the plain cadence it
 * would be +400, +800, +1200: down at about +1250. */
TEST(misses_probed_at_half_interval)
{
	static const char *const tg[] = { "dns:127.0.0.1:7053/example.com" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_pstats_summary a, b;
	struct xb_probe *p;
	struct servers s;
	uint64_t t0, dt;
	unsigned ok;
	const char *err;

	xb_test_private_netns();
	servers_open(&s);
	tunnel_cfg(&c, "t", "lo", tg, 1);
	c.interval_ns = 400 * MS;
	c.stats.loss_ns = 400 * MS;
	p = xb_probe_new(&cbs);
	CHECK(p && xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, &s, 1300);
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &a);
	CHECK_INT(a.state, ==, XB_PST_UP);
	CHECK_INT(a.sent, <=, 5);	/* a clean link: no extra rounds */
	/* The blackhole starts as a round has just been answered. */
	ok = t.ok[0];
	for (int i = 0; i < 200 && t.ok[0] == ok; i++)
		pump(&p, 1, &s, 5);
	CHECK_INT(t.ok[0], >, ok);
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &a);
	t0 = clock_mono_ns();
	for (int i = 0; i < 300 && !t.to_down; i++)
		pump(&p, 1, NULL, 10);
	dt = (clock_mono_ns() - t0) / MS;
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &b);
	printf("# down %" PRIu64 " ms after the onset, %" PRIu64 " rounds sent meanwhile\n", dt,
	       b.sent - a.sent);
	CHECK_INT(t.to_down, ==, 1);
	CHECK_INT(dt, >=, 750);
	CHECK_INT(dt, <, 1050);
	CHECK_INT(b.sent - a.sent, ==, 3);
	xb_probe_free(p);
	servers_close(&s);
}

/* The data plane's word at a missed round (cbs.silent, gateway/health/passive.h):
 * what the callback was asked, and what it answers. */
struct quiet {
	struct tally t;
	bool answer;
	unsigned asked;
	uint64_t since;
};

static void q_result(void *ctx, const struct xb_probe_result *r)
{
	on_result(&((struct quiet *)ctx)->t, r);
}

static void q_state(void *ctx, size_t tunnel, enum xb_pstate from, enum xb_pstate to)
{
	on_state(&((struct quiet *)ctx)->t, tunnel, from, to);
}

static bool q_silent(void *ctx, size_t tunnel, uint64_t since)
{
	struct quiet *q = ctx;

	(void)tunnel;
	q->asked++;
	q->since = since;
	return q->answer;
}

/* A prober of one DNS target (interval 400 ms, timeout 50 ms, hold
 * 200 ms), up, returned just after a round was answered. */
static struct xb_probe *answered(struct quiet *q, struct servers *s)
{
	static const char *const tg[] = { "dns:127.0.0.1:7053/example.com" };
	struct xb_probe_cbs cbs = { q_result, q_state, q, q_silent };
	struct xb_probe_tunnel_cfg c;
	struct xb_pstats_summary a;
	struct xb_probe *p;
	unsigned ok;
	const char *err;

	servers_open(s);
	tunnel_cfg(&c, "t", "lo", tg, 1);
	c.interval_ns = 400 * MS;
	c.stats.loss_ns = 400 * MS;
	CHECK_INT(c.silent_hold_ns, ==, 200 * MS);	/* the default */
	p = xb_probe_new(&cbs);
	CHECK(p && xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, s, 1300);
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &a);
	CHECK_INT(a.state, ==, XB_PST_UP);
	CHECK_INT(q->asked, ==, 0);		/* nothing missed: never asked */
	ok = q->t.ok[0];
	for (int i = 0; i < 200 && q->t.ok[0] == ok; i++)
		pump(&p, 1, s, 5);
	CHECK_INT(q->t.ok[0], >, ok);
	return p;
}

/* Blackhole onset just after an answered round, as in
 * misses_probed_at_half_interval; ms from it to down. */
static uint64_t onset_to_down(struct quiet *q, uint64_t *onset, uint64_t *rounds)
{
	struct xb_pstats_summary a, b;
	struct servers s;
	struct xb_probe *p = answered(q, &s);
	uint64_t dt;

	xb_probe_stats(p, "t", -1, clock_mono_ns(), &a);
	*onset = clock_mono_ns();
	for (int i = 0; i < 300 && !q->t.to_down; i++)
		pump(&p, 1, NULL, 10);
	dt = (clock_mono_ns() - *onset) / MS;
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &b);
	*rounds = b.sent - a.sent;
	CHECK_INT(q->t.to_down, ==, 1);
	CHECK_INT(b.state, ==, XB_PST_DOWN);
	xb_probe_free(p);
	servers_close(&s);
	return dt;
}

TEST(silent_tunnel_is_down_at_the_first_miss)
{
	struct quiet q = { .answer = true };
	uint64_t onset, rounds, dt;

	xb_test_private_netns();
	dt = onset_to_down(&q, &onset, &rounds);
	printf("# data plane silent: down %" PRIu64 " ms after the onset, %" PRIu64 " rounds\n",
	       dt, rounds);
	/* The next round at +400 ms, asked 200 ms after it left: down at ~+600.
	 * The probes alone need three misses: ~+850 (misses_probed_at_half_interval). */
	CHECK_INT(q.asked, ==, 1);
	CHECK_INT(q.since, >, onset);		/* the missed round's own send time */
	CHECK_INT(q.since, <, onset + 500 * MS);
	CHECK_INT(rounds, <=, 2);		/* the half-interval one may have left */
	CHECK_INT(dt, >=, 550);
	CHECK_INT(dt, <, 800);
}

TEST(receiving_tunnel_waits_for_the_detect_run)
{
	struct quiet q = { .answer = false };
	uint64_t onset, rounds, dt;

	xb_test_private_netns();
	dt = onset_to_down(&q, &onset, &rounds);
	printf("# data plane receiving: down %" PRIu64 " ms after the onset\n", dt);
	/* Asked about the first and second missed rounds; the third miss is
	 * the detect run. */
	CHECK_INT(q.asked, ==, 2);
	CHECK_INT(rounds, ==, 3);
	/* Well past the ~600 ms of a first-miss down; not tighter (748 ms seen
	 * on a loaded box: the rounds' timer and the onset are each a few ms
	 * off). */
	CHECK_INT(dt, >=, 700);
	CHECK_INT(dt, <, 1050);
}

/* An answer past the 50 ms timeout but within the hold: the round was
 * missed, the tunnel is not silent and is never asked about. */
TEST(a_late_answer_within_the_hold_is_not_silence)
{
	struct quiet q = { .answer = true };
	struct servers s;
	struct xb_probe *p;
	struct xb_pstats_summary b;

	xb_test_private_netns();
	p = answered(&q, &s);
	pump(&p, 1, NULL, 480);		/* the next round (+400) misses at +450 */
	pump(&p, 1, &s, 1000);		/* answered at ~+480: late, not lost */
	xb_probe_stats(p, "t", -1, clock_mono_ns(), &b);
	CHECK_INT(q.asked, ==, 0);
	CHECK_INT(q.t.to_down, ==, 0);
	CHECK_INT(b.state, ==, XB_PST_UP);
	xb_probe_free(p);
	servers_close(&s);
}

TEST(bound_to_down_or_missing_interface_fails)
{
	static const char *const tg[] = { "icmp:192.0.2.2", "tcp:192.0.2.2:80",
					  "dns:192.0.2.2/example.com" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_probe *p;
	const char *err;
	long tx0, tx1;

	xb_test_private_netns();
	/* d0 is the tunnel, down; d1 is up and the main table routes
	 * 192.0.2.0/24 there: a probe that leaked would leave through d1. */
	if (system("ip link add d0 type veth peer name d0p && ip link add d1 type veth peer name d1p"
		   " && sysctl -qw net.ipv6.conf.d1.disable_ipv6=1"	/* no MLD or RS on d1 */
		   " && ip link set d1 up && ip link set d1p up && ip addr add 192.0.2.1/24 dev d1"))
		SKIP("cannot create veth links");
	tx0 = tx_packets("d1");
	tunnel_cfg(&c, "t", "d0", tg, 3);
	p = xb_probe_new(&cbs);
	CHECK(xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, NULL, 800);
	tx1 = tx_packets("d1");
	printf("# down link: %u/%u/%u lost, last error \"%s\"; d1 tx %ld -> %ld\n", t.lost[0],
	       t.lost[1], t.lost[2], t.err, tx0, tx1);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(t.ok[i], ==, 0);
		CHECK_INT(t.lost[i], >=, 5);
	}
	CHECK(tx0 >= 0);
	CHECK_INT(tx1, ==, tx0);
	CHECK(strstr(t.err, "Network is down") || strstr(t.err, "unreachable"));
	xb_probe_free(p);

	/* An interface that does not exist: every probe fails, saying why. */
	memset(&t, 0, sizeof(t));
	tunnel_cfg(&c, "t", "nosuch0", tg, 1);
	p = xb_probe_new(&cbs);
	CHECK(xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, NULL, 600);
	CHECK_INT(t.ok[0], ==, 0);
	CHECK_INT(t.lost[0], >=, 3);
	printf("# missing link: \"%s\"\n", t.err);
	CHECK(strstr(t.err, "No such device"));
	CHECK_INT(tx_packets("d1"), ==, tx0);
	xb_probe_free(p);
}

/* d0 here (192.0.2.1) to d0p (192.0.2.2) in pid's namespace, both up. */
static int link_to(pid_t pid)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "ip link add d0 type veth peer name d0p netns %d && "
		 "ip addr add 192.0.2.1/24 dev d0 && ip link set d0 up && "
		 "nsenter --net=/proc/%d/ns/net sh -c "
		 "'ip addr add 192.0.2.2/24 dev d0p && ip link set d0p up'", (int)pid, (int)pid);
	return system(cmd);
}

/* A tunnel interface deleted and made again under its name (xborderd
 * re-creates a tunnel deleted by hand) is probed again: the sockets bound
 * to the old one are replaced, not left failing with ENODEV for good. */
TEST(interface_recreated_is_probed_again)
{
	static const char *const tg[] = { "icmp:192.0.2.2", "dns:192.0.2.2/example.com" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_probe *p;
	const char *err;
	int go[2], status;
	pid_t pid;
	char ch;

	xb_test_private_netns();
	CHECK(pipe(go) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {		/* the far end's namespace, alive until go closes */
		close(go[1]);
		if (unshare(CLONE_NEWNET) < 0 || system("ip link set lo up") != 0)
			_exit(1);
		_exit(read(go[0], &ch, 1) < 0 ? 2 : 0);
	}
	close(go[0]);
	for (int i = 0; i < 100; i++) {		/* until the child has its namespace */
		char a[64], b[64];
		ssize_t n, m;

		snprintf(a, sizeof(a), "/proc/%d/ns/net", (int)pid);
		n = readlink(a, b, sizeof(b) - 1);
		m = readlink("/proc/self/ns/net", a, sizeof(a) - 1);
		if (n > 0 && m > 0 && (n != m || memcmp(a, b, (size_t)n)))
			break;
		usleep(10000);
	}
	if (link_to(pid) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		SKIP("cannot make a veth pair into a child namespace (nsenter?)");
	}
	tunnel_cfg(&c, "t", "d0", tg, 2);
	p = xb_probe_new(&cbs);
	CHECK(p && xb_probe_set(p, &c, 1, &err) == 0);
	pump(&p, 1, NULL, 500);
	printf("# before: icmp %u ok, dns %u ok/%u lost\n", t.ok[0], t.ok[1], t.lost[1]);
	CHECK_INT(t.ok[0], >=, 5);
	/* dns: nobody serves it, but the port unreachable is not an answer */
	CHECK(system("ip link del d0") == 0);
	pump(&p, 1, NULL, 200);
	CHECK_INT(link_to(pid), ==, 0);
	memset(&t, 0, sizeof(t));
	pump(&p, 1, NULL, 500);
	printf("# after re-creating d0: icmp %u ok, %u lost (\"%s\")\n", t.ok[0], t.lost[0], t.err);
	CHECK_INT(t.ok[0], >=, 5);
	xb_probe_free(p);
	close(go[1]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(two_probers_tell_their_echoes_apart)
{
	static const char *const tg[] = { "icmp:127.0.0.1" };
	struct tally t1 = { 0 }, t2 = { 0 };
	struct xb_probe_cbs c1 = { on_result, NULL, &t1, NULL }, c2 = { on_result, NULL, &t2, NULL };
	struct xb_probe_tunnel_cfg c;
	struct xb_probe *p[2];
	struct xb_pstats_summary s1, s2;
	const char *err;

	xb_test_private_netns();
	tunnel_cfg(&c, "t", "lo", tg, 1);
	p[0] = xb_probe_new(&c1);
	p[1] = xb_probe_new(&c2);
	CHECK(xb_probe_set(p[0], &c, 1, &err) == 0);
	CHECK(xb_probe_set(p[1], &c, 1, &err) == 0);
	/* Both raw sockets see both probers' replies; each keeps its own. */
	pump(p, 2, NULL, 1000);
	xb_probe_stats(p[0], "t", 0, clock_mono_ns(), &s1);
	xb_probe_stats(p[1], "t", 0, clock_mono_ns(), &s2);
	printf("# prober 1: %u ok of %" PRIu64 ", prober 2: %u ok of %" PRIu64 "\n", t1.ok[0],
	       s1.sent, t2.ok[0], s2.sent);
	CHECK_INT(t1.ok[0] + t1.late, <=, s1.sent);
	CHECK_INT(t2.ok[0] + t2.late, <=, s2.sent);
	CHECK_INT(t1.ok[0], >=, s1.sent - 1);	/* the last may be in flight */
	CHECK_INT(t2.ok[0], >=, s2.sent - 1);
	CHECK_INT(t1.late + t2.late, ==, 0);
	xb_probe_free(p[0]);
	xb_probe_free(p[1]);
}

TEST(reload_keeps_stats)
{
	static const char *const ta[] = { "icmp:127.0.0.1" };
	static const char *const tb[] = { "icmp:127.0.0.1", "icmp:::1" };
	struct tally t = { 0 };
	struct xb_probe_cbs cbs = { on_result, on_state, &t, NULL };
	struct xb_probe_tunnel_cfg c[2];
	struct xb_probe *p;
	struct xb_pstats_summary a0, b0, a1, b1, bt;
	const char *err;

	xb_test_private_netns();
	tunnel_cfg(&c[0], "a", "lo", ta, 1);
	tunnel_cfg(&c[1], "b", "lo", ta, 1);
	p = xb_probe_new(&cbs);
	CHECK(xb_probe_set(p, c, 2, &err) == 0);
	pump(&p, 1, NULL, 800);
	xb_probe_stats(p, "a", -1, clock_mono_ns(), &a0);
	xb_probe_stats(p, "b", -1, clock_mono_ns(), &b0);
	CHECK_INT(a0.state, ==, XB_PST_UP);
	/* b gains a target: its stats and its first target's go on. */
	tunnel_cfg(&c[1], "b", "lo", tb, 2);
	CHECK(xb_probe_set(p, c, 2, &err) == 0);
	pump(&p, 1, NULL, 400);
	xb_probe_stats(p, "a", -1, clock_mono_ns(), &a1);
	xb_probe_stats(p, "b", -1, clock_mono_ns(), &b1);
	CHECK_INT(a1.sent, >, a0.sent);
	CHECK_INT(b1.sent, >, b0.sent);
	CHECK_INT(b1.state, ==, XB_PST_UP);
	CHECK_INT(b1.lost, ==, 0);	/* no false loss across the reload */
	xb_probe_stats(p, "b", 1, clock_mono_ns(), &bt);
	CHECK_INT(bt.sent, <, b1.sent);	/* the new target started from zero */
	CHECK_INT(bt.sent, >, 3);
	CHECK_INT(t.to_down, ==, 0);
	/* A bad set changes nothing. */
	c[1].interval_ns = 1 * MS;
	CHECK(xb_probe_set(p, c, 2, &err) == -1);
	printf("# refused: %s\n", err);
	CHECK_INT(xb_probe_count(p), ==, 2);
	c[1] = c[0];
	CHECK(xb_probe_set(p, c, 2, &err) == -1);	/* "a" twice */
	/* b goes away, a stays. */
	CHECK(xb_probe_set(p, c, 1, &err) == 0);
	CHECK_INT(xb_probe_count(p), ==, 1);
	CHECK(xb_probe_stats(p, "b", -1, clock_mono_ns(), &b1) == -1);
	xb_probe_stats(p, "a", -1, clock_mono_ns(), &a0);
	CHECK_INT(a0.sent, >=, a1.sent);
	xb_probe_free(p);
}

/* Results and callbacks name a tunnel by the id its cfg carries (the
 * daemon's policy index), also for a tunnel kept running across a set
 * that moved it. */
struct ids {
	unsigned seen[32];
};

static void id_result(void *ctx, const struct xb_probe_result *r)
{
	struct ids *x = ctx;

	x->seen[r->tunnel < 31 ? r->tunnel : 31]++;
}

TEST(results_carry_the_callers_id)
{
	static const char *const tg[] = { "icmp:127.0.0.1" };
	struct ids x = { { 0 } };
	struct xb_probe_cbs cbs = { id_result, NULL, &x, NULL };
	struct xb_probe_tunnel_cfg c[2];
	struct xb_probe *p;
	const char *err;

	xb_test_private_netns();
	tunnel_cfg(&c[0], "a", "lo", tg, 1);
	tunnel_cfg(&c[1], "b", "lo", tg, 1);
	c[0].id = 10;
	c[1].id = 20;
	p = xb_probe_new(&cbs);
	CHECK(xb_probe_set(p, c, 2, &err) == 0);
	pump(&p, 1, NULL, 300);
	CHECK_INT(x.seen[10], >, 0);
	CHECK_INT(x.seen[20], >, 0);
	/* The same tunnels, swapped and renumbered: kept, reported anew. */
	struct xb_probe_tunnel_cfg s[2] = { c[1], c[0] };
	s[0].id = 1;
	s[1].id = 2;
	CHECK(xb_probe_set(p, s, 2, &err) == 0);
	memset(&x, 0, sizeof(x));
	pump(&p, 1, NULL, 300);
	CHECK_INT(x.seen[1], >, 0);
	CHECK_INT(x.seen[2], >, 0);
	CHECK_INT(x.seen[10] + x.seen[20], ==, 0);
	xb_probe_free(p);
}
