/* The resolver's engine (dns_engine.c) on hand-made upstream answers:
 * what goes back to the client must be a valid response to its query.
 * Regression tests for fuzz_dns_engine's findings. */
#include "tests/lib/check.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "gateway/dns/dns_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static const char conf[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
	"devices = ( { name = \"d1\"; public_key = \"4Y/dLaQvQZ4EuD2bQOcm0Z+vMIUIGI4MZqth6a/3/m0=\"; } );\n"
	"rules = ( { name = \"web\"; domains = [ \"*.example.com\" ]; action = \"allow\"; via = [ \"internet\" ]; } );\n"
	"dns = { upstreams = [ \"192.0.2.53\" ];\n"
	"  rules = ( { name = \"ov\"; domains = [ \"www.example.org\" ]; action = \"override\";\n"
	"              cname = \"a.example.com\"; } ); };\n";

static struct xb_dns_service svc;
static char dir[] = "/tmp/xb-test-dns-engine.XXXXXX";

static void put(const char *name, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)) >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/* The engine with the policy above (made once), sets off (no kernel), no
 * cache; what it learns is queued and dropped at the next flush. */
static struct xb_dns_service *engine(void)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[256];

	if (svc.cfg)
		return &svc;
	CHECK(mkdtemp(dir) != NULL);
	put("gw.key", "mF4d/96W8I2d2yeqxh2Xcw9/Vi5BdKS90bCB3puspFQ=\n", 0600);
	put("xborder.conf", conf, 0644);
	snprintf(path, sizeof(path), "%s/xborder.conf", dir);
	p = xb_policy_load(path, &errs);
	if (!p)
		xb_errors_print(&errs, stderr);
	CHECK(p != NULL);
	snprintf(path, sizeof(path), "%s/gw.key", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/xborder.conf", dir);
	unlink(path);
	rmdir(dir);
	CHECK((svc.cfg = xb_dns_service_prepare(p, &errs)) != NULL);
	xb_errors_free(&errs);
	/* What xb_dns_service_new sets up for learning: the queue, the table and
	 * the log's limiter. */
	CHECK((svc.pend = calloc(DNS_PEND_MAX, sizeof(*svc.pend))) != NULL);
	xb_dns_learn_init(&svc.learned);
	svc.learn_rl = (struct log_rl)LOG_RL_INIT(1, 5);
	return &svc;
}

/* Message builder: a header, then records appended as wire bytes. */
struct msg {
	uint8_t b[512];
	size_t n;
};

static void add(struct msg *m, const void *p, size_t n)
{
	if (n)
		memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void add_name(struct msg *m, const char *text)
{
	m->n += (size_t)xb_dns_wire_name_from_text(text, m->b + m->n);
}

/* type, class, ttl 300, rdlen and rdata, after an owner already added. */
static void add_rr(struct msg *m, uint16_t type, uint16_t rclass, const void *rdata, uint16_t rdlen)
{
	uint8_t f[10];

	xb_put16(f, type);
	xb_put16(f + 2, rclass);
	xb_put32(f + 4, 300);
	xb_put16(f + 8, rdlen);
	add(m, f, 10);
	add(m, rdata, rdlen);
}

static void header(struct msg *m, uint16_t flags, uint16_t an, uint16_t ar, const char *qname)
{
	m->n = 0;
	xb_put16(m->b, 0x1234);
	xb_put16(m->b + 2, flags);
	xb_put16(m->b + 4, 1);
	xb_put16(m->b + 6, an);
	xb_put16(m->b + 8, 0);
	xb_put16(m->b + 10, ar);
	m->n = XB_DNS_WIRE_HDR_LEN;
	add_name(m, qname);
	add(m, "\0\1\0\1", 4);	/* A, IN */
}

static const uint8_t opt[XB_DNS_WIRE_OPT_LEN] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };
static const uint8_t a1[4] = { 203, 0, 113, 7 }, a2[4] = { 192, 0, 2, 9 };

/* The client's answer to qq, from the upstream's message up. */
static size_t answer(struct xb_dns_service *s, struct dns_query *qq, const struct msg *up,
		     uint8_t *out, size_t cap, struct xb_dns_wire_msg *res)
{
	const struct xb_dns_wire_query *ask;
	struct xb_dns_wire_msg m;
	size_t len = 0;

	CHECK_INT(dns_decide(s, qq, out, cap, &len), ==, DNS_ASK);
	ask = qq->chase ? &qq->qc : &qq->q;
	CHECK_INT(xb_dns_wire_parse_response(&m, up->b, up->n, 0x1234, &ask->q), ==, XB_DNS_WIRE_R_OK);
	CHECK((len = dns_answer_from(s, qq, &m, out, cap)) > 0);
	CHECK_INT(xb_dns_wire_parse_response(res, out, len, qq->q.hdr.id, &qq->q.q), ==, XB_DNS_WIRE_R_OK);
	return len;
}

static void query(struct dns_query *qq, const char *name)
{
	struct msg q;

	memset(qq, 0, sizeof(*qq));
	header(&q, XB_DNS_WIRE_F_RD, 0, 0, name);
	CHECK_INT(xb_dns_wire_parse_query(&qq->q, q.b, q.n), ==, XB_DNS_WIRE_Q_OK);
}

/* An override's CNAME, then the target's upstream answer re-encoded: an A
 * of class ANY (whose rdata nothing checks: here none at all) was copied
 * as an IN A of 0 octets, and the client's answer did not parse. */
TEST(chase_keeps_only_class_in)
{
	struct xb_dns_service *s = engine();
	struct dns_query qq;
	struct xb_dns_wire_msg res;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	struct msg up;
	uint8_t out[1232];
	unsigned n = 0;

	query(&qq, "www.example.org");
	header(&up, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA, 2, 0, "a.example.com");
	add(&up, "\xc0\x0c", 2);
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a1, 4);
	add(&up, "\xc0\x0c", 2);
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_ANY, NULL, 0);
	answer(s, &qq, &up, out, sizeof(out), &res);
	xb_dns_wire_iter_init(&it, &res, XB_DNS_WIRE_AN);
	while (xb_dns_wire_iter_next(&it, &rr))
		n++;
	CHECK_INT(n, ==, 2);	/* the CNAME and the IN A */
}

/* A client without EDNS gets no OPT (RFC 6891 7), also when the upstream's
 * OPT is not the last additional record: it was left in. */
TEST(strip_opt_not_last)
{
	struct xb_dns_service *s = engine();
	struct dns_query qq;
	struct xb_dns_wire_msg res;
	struct msg up;
	uint8_t out[1232];

	query(&qq, "a.example.com");
	header(&up, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA, 1, 3, "a.example.com");
	add(&up, "\xc0\x0c", 2);
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a1, 4);
	add_name(&up, "ns1.example.com");	/* a glue record before the OPT */
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a2, 4);
	add(&up, opt, sizeof(opt));
	add_name(&up, "ns2.example.com");	/* and one after it */
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a2, 4);
	answer(s, &qq, &up, out, sizeof(out), &res);
	CHECK(!res.edns.present);
	CHECK_INT(res.hdr.ancount, ==, 1);
	CHECK_INT(res.hdr.arcount, ==, 1);	/* the glue before the OPT stays */
	/* ... and with the OPT last, as it usually is. */
	query(&qq, "a.example.com");
	header(&up, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA, 1, 1, "a.example.com");
	add(&up, "\xc0\x0c", 2);
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a1, 4);
	add(&up, opt, sizeof(opt));
	answer(s, &qq, &up, out, sizeof(out), &res);
	CHECK(!res.edns.present);
	CHECK_INT(res.hdr.arcount, ==, 0);
}

/* ---- tunnel rules follow the path (issue #16) ---- */

static const char conf2[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
	"devices = ( { name = \"d1\"; public_key = \"4Y/dLaQvQZ4EuD2bQOcm0Z+vMIUIGI4MZqth6a/3/m0=\"; } );\n"
	"tunnels = (\n"
	"  { name = \"t1\"; endpoint = \"192.0.2.100:51820\"; private_key_file = \"gw.key\";\n"
	"    public_key = \"POXphQcmyfAg7P3x/aROr/jk8i49tQ9kIcriAhvKPG0=\"; address4 = \"192.0.2.1/30\"; },\n"
	"  { name = \"t2\"; endpoint = \"192.0.2.104:51820\"; private_key_file = \"gw.key\";\n"
	"    public_key = \"POXphQcmyfAg7P3x/aROr/jk8i49tQ9kIcriAhvKPG0=\"; address4 = \"192.0.2.5/30\"; }\n"
	");\n"
	"rules = ( { name = \"erp\"; domains = [ \"*.acme.cn\", \"*.own.cn\" ]; action = \"allow\";\n"
	"            via = [ \"t1\", \"t2\" ]; } );\n"
	"dns = { upstreams = [ \"192.0.2.53\" ];\n"
	"  rules = ( { name = \"cn\"; domains = [ \"*.acme.cn\" ]; action = \"tunnel\"; tunnel = \"t1\";\n"
	"              servers = [ \"203.0.113.53\", \"203.0.113.54\" ]; },\n"
	"            { name = \"own\"; domains = [ \"*.own.cn\" ]; action = \"tunnel\";\n"
	"              tunnel = [ \"t2\", \"t1\" ]; servers = [ \"203.0.113.53\" ]; } ); };\n";

static struct xb_dns_service svc2;

static struct xb_dns_service *engine2(void)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[256];

	if (svc2.cfg)
		return &svc2;
	snprintf(dir, sizeof(dir), "/tmp/xb-test-dns-engine.XXXXXX");	/* put() writes there */
	CHECK(mkdtemp(dir) != NULL);
	put("gw.key", "mF4d/96W8I2d2yeqxh2Xcw9/Vi5BdKS90bCB3puspFQ=\n", 0600);
	put("xborder.conf", conf2, 0644);
	snprintf(path, sizeof(path), "%s/xborder.conf", dir);
	p = xb_policy_load(path, &errs);
	if (!p)
		xb_errors_print(&errs, stderr);
	CHECK(p != NULL);
	unlink(path);
	snprintf(path, sizeof(path), "%s/gw.key", dir);
	unlink(path);
	rmdir(dir);
	CHECK((svc2.cfg = xb_dns_service_prepare(p, &errs)) != NULL);
	xb_errors_free(&errs);
	CHECK((svc2.pend = calloc(DNS_PEND_MAX, sizeof(*svc2.pend))) != NULL);
	xb_dns_learn_init(&svc2.learned);
	return &svc2;
}

/* The interfaces and addresses qq would be asked through, in order:
 * "xb-t2/203.0.113.53 xb-t1/203.0.113.53". */
static const char *asked(const struct dns_query *qq)
{
	static char buf[512];
	size_t k = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < qq->n_order; i++) {
		const struct xb_dns_upstream_server *sv = &qq->set->srv[qq->order[i]];
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &sv->addr.in.sin_addr, a, sizeof(a));
		k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s/%s", i ? " " : "", sv->ifname, a);
	}
	return buf;
}

/* A fake of steering: the order it gives, and what it was asked. */
static size_t fake_order[4], fake_n, fake_rule, fake_own_n;

static size_t fake_route(void *ctx, size_t rule, const size_t *own, size_t n, size_t *out)
{
	(void)ctx;
	(void)own;
	fake_rule = rule;
	fake_own_n = n;
	memcpy(out, fake_order, fake_n * sizeof(*out));
	return fake_n;
}

static void decide_ask(struct xb_dns_service *s, struct dns_query *qq, const char *name)
{
	uint8_t out[1232];
	size_t len;

	query(qq, name);
	CHECK_INT(dns_decide(s, qq, out, sizeof(out), &len), ==, DNS_ASK);
}

TEST(tunnel_rule_follows_the_path)
{
	struct xb_dns_service *s = engine2();
	struct dns_query qq;

	/* tunnel = "t1" follows erp's path (t1, t2): every server through
	 * t1, then through t2. */
	decide_ask(s, &qq, "new.acme.cn");
	CHECK_STR(asked(&qq), "xb-t1/203.0.113.53 xb-t1/203.0.113.54 xb-t2/203.0.113.53 xb-t2/203.0.113.54");
	/* The path moved to t2 (t1 down): steering's order is used. */
	xb_dns_service_set_route(s, fake_route, NULL);
	fake_order[0] = 1, fake_n = 1;
	decide_ask(s, &qq, "new.acme.cn");
	CHECK_INT(fake_rule, ==, 0);		/* asked for erp's path */
	CHECK_STR(asked(&qq), "xb-t2/203.0.113.53 xb-t2/203.0.113.54");
	fake_order[0] = 1, fake_order[1] = 0, fake_n = 2;	/* t1 back, behind t2 */
	decide_ask(s, &qq, "other.acme.cn");
	CHECK_STR(asked(&qq), "xb-t2/203.0.113.53 xb-t2/203.0.113.54 xb-t1/203.0.113.53 xb-t1/203.0.113.54");
	xb_dns_service_set_route(s, NULL, NULL);
}

TEST(tunnel_rule_own_list)
{
	struct xb_dns_service *s = engine2();
	struct dns_query qq;

	decide_ask(s, &qq, "x.own.cn");		/* as listed: t2, then t1 */
	CHECK_STR(asked(&qq), "xb-t2/203.0.113.53 xb-t1/203.0.113.53");
	xb_dns_service_set_route(s, fake_route, NULL);
	fake_order[0] = 0, fake_order[1] = 1, fake_n = 2;	/* health ranks t1 first */
	decide_ask(s, &qq, "x.own.cn");
	CHECK_INT(fake_rule, ==, SIZE_MAX);	/* an own list, not a path */
	CHECK_INT(fake_own_n, ==, 2);
	CHECK_STR(asked(&qq), "xb-t1/203.0.113.53 xb-t2/203.0.113.53");
	xb_dns_service_set_route(s, NULL, NULL);
}

/* Browsers that find use-application-dns.net turn their own DoH off. */
TEST(doh_canary)
{
	struct xb_dns_service *s = engine();
	struct xb_policy *p = (struct xb_policy *)s->cfg->p;
	struct dns_query qq;
	struct xb_dns_wire_msg res;
	uint8_t out[1232];
	size_t len = 0;

	query(&qq, "use-application-dns.net");
	CHECK_INT(dns_decide(s, &qq, out, sizeof(out), &len), ==, DNS_ANSWERED);
	CHECK_INT(xb_dns_wire_parse_response(&res, out, len, qq.q.hdr.id, &qq.q.q), ==, XB_DNS_WIRE_R_OK);
	CHECK_INT(res.rcode, ==, XB_DNS_WIRE_NXDOMAIN);
	query(&qq, "USE-Application-DNS.net.");	/* any case */
	CHECK_INT(dns_decide(s, &qq, out, sizeof(out), &len), ==, DNS_ANSWERED);
	query(&qq, "x.use-application-dns.net");	/* the name only */
	CHECK_INT(dns_decide(s, &qq, out, sizeof(out), &len), ==, DNS_ASK);
	p->dns.doh_canary = false;
	query(&qq, "use-application-dns.net");
	CHECK_INT(dns_decide(s, &qq, out, sizeof(out), &len), ==, DNS_ASK);
	p->dns.doh_canary = true;
}

/* Every upstream failed: an answer expired at most serve_stale ago is
 * served with TTL 30 and its addresses are learned again. */
TEST(serve_stale)
{
	struct xb_dns_service *s = engine2();
	struct xb_policy *p = (struct xb_policy *)s->cfg->p;
	struct xb_dns_cache_conf cc = { .stale_s = p->dns.serve_stale };
	struct dns_query qq;
	struct xb_dns_wire_msg res;
	struct xb_dns_wire_iter it;
	struct xb_dns_wire_rr rr;
	struct msg up;
	uint8_t out[1232];
	size_t len;

	CHECK((s->cache = xb_dns_cache_new(&cc)) != NULL);
	s->now_ns = 1000 * NSEC_PER_SEC;
	decide_ask(s, &qq, "old.acme.cn");
	header(&up, XB_DNS_WIRE_F_QR | XB_DNS_WIRE_F_RD | XB_DNS_WIRE_F_RA, 1, 0, "old.acme.cn");
	add(&up, "\xc0\x0c", 2);
	add_rr(&up, XB_DNS_WIRE_T_A, XB_DNS_WIRE_C_IN, a1, 4);	/* TTL 300 */
	CHECK_INT(xb_dns_cache_store(s->cache, qq.scope, &qq.q.q, up.b, up.n, s->now_ns), ==, XB_DNS_CACHE_STORED);
	s->now_ns += 400 * NSEC_PER_SEC;		/* expired 100 s ago */
	CHECK_INT(dns_from_cache(s, &qq, out, sizeof(out)), ==, 0);
	s->n_pend = 0;
	CHECK((len = dns_from_stale(s, &qq, out, sizeof(out))) > 0);
	CHECK(qq.stale);
	CHECK_INT(xb_dns_wire_parse_response(&res, out, len, qq.q.hdr.id, &qq.q.q), ==, XB_DNS_WIRE_R_OK);
	xb_dns_wire_iter_init(&it, &res, XB_DNS_WIRE_AN);
	CHECK(xb_dns_wire_iter_next(&it, &rr));
	CHECK_INT(rr.ttl, ==, 30);
	CHECK_INT(s->n_pend, ==, 1);			/* 203.0.113.7 into erp's set */
	CHECK_INT(s->pend[0].ttl, ==, 30);
	p->dns.serve_stale = 0;				/* off */
	qq.stale = false;
	CHECK_INT(dns_from_stale(s, &qq, out, sizeof(out)), ==, 0);
	p->dns.serve_stale = 86400;
	s->now_ns += (uint64_t)cc.stale_s * NSEC_PER_SEC;	/* past the window */
	CHECK_INT(dns_from_stale(s, &qq, out, sizeof(out)), ==, 0);
	s->n_pend = 0;
	xb_dns_cache_free(s->cache);
	s->cache = NULL;
}
