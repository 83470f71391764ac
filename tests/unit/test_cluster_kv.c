/* The shared state's key/value codec and reconcile rule
 * (gateway/cluster/cluster_kv.h): round trips, and hostile values refused
 * with a reason, never a crash. */
#include <arpa/inet.h>
#include <errno.h>

#include "gateway/cluster/cluster_kv.h"
#include "tests/lib/check.h"

#define P "/xborder/eu/"

static char err[256];

TEST(keys_round_trip)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_POSTURE }, o;
	char buf[256];
	size_t n;

	strcpy(k.device, "alice");
	CHECK((n = xb_cluster_kv_key_make(buf, sizeof(buf), P, &k)) > 0);
	CHECK_STR(buf, P "posture/alice");
	CHECK_INT(xb_cluster_kv_key_parse(P, buf, n, &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.kind, ==, XB_CLUSTER_KV_POSTURE);
	CHECK_STR(o.device, "alice");

	k = (struct xb_cluster_kv_key){ .kind = XB_CLUSTER_KV_LEARNED, .family = AF_INET6 };
	strcpy(k.set, "r_web_dns6");
	inet_pton(AF_INET6, "2001:db8::7", k.addr);
	CHECK((n = xb_cluster_kv_key_make(buf, sizeof(buf), P, &k)) > 0);
	CHECK_STR(buf, P "learned/r_web_dns6/2001:db8::7");
	CHECK_INT(xb_cluster_kv_key_parse(P, buf, n, &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.kind, ==, XB_CLUSTER_KV_LEARNED);
	CHECK_STR(o.set, "r_web_dns6");
	CHECK_INT(o.family, ==, AF_INET6);
	CHECK_MEM(o.addr, k.addr, 16);
	/* Too small a buffer: 0, not a cut key. */
	CHECK_INT(xb_cluster_kv_key_make(buf, 10, P, &k), ==, 0);
}

TEST(keys_hostile)
{
	static const char *const bad[] = {
		P "posture/", P "posture/a/b", P "posture/al ice", P "learned/r_web_dns4",
		P "learned/r_web_dns4/", P "learned/r_web_dns4/192.0.2.300", P "learned//192.0.2.1",
		P "endpoint/\xff", "/other/posture/alice",
	};
	struct xb_cluster_kv_key o;
	char longkey[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(xb_cluster_kv_key_parse(P, bad[i], strlen(bad[i]), &o, err, sizeof(err)),
			  ==, -EINVAL);
		CHECK(err[0]);
	}
	snprintf(longkey, sizeof(longkey), P "posture/%0200d", 1);
	CHECK_INT(xb_cluster_kv_key_parse(P, longkey, strlen(longkey), &o, err, sizeof(err)), ==,
		  -EINVAL);
	/* A kind this version does not know: skipped, not an error. */
	CHECK_INT(xb_cluster_kv_key_parse(P, P "alloc/alice", 17, &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.kind, ==, XB_CLUSTER_KV_OTHER);
	/* The length given is the key: no reading past it. */
	CHECK_INT(xb_cluster_kv_key_parse(P, P "posture/alicexyz", strlen(P) + 13, &o, err,
					  sizeof(err)), ==, 0);
	CHECK_STR(o.device, "alice");
}

TEST(posture_value)
{
	struct xb_cluster_kv_posture v = { .seq = 42, .received_ms = 1700000000123, .body =
					   "{\"seq\":42,\"x\":\"\\\"q\"}" }, o;
	char *s;

	strcpy(v.node, "gw-a");
	v.body_len = strlen(v.body);
	CHECK((s = xb_cluster_kv_posture_encode(&v)));
	CHECK_INT(xb_cluster_kv_posture_decode(s, strlen(s), &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.seq, ==, 42);
	CHECK_INT(o.received_ms, ==, 1700000000123);
	CHECK_STR(o.node, "gw-a");
	CHECK_STR(o.body, v.body);
	CHECK_INT(o.body_len, ==, v.body_len);
	xb_cluster_kv_posture_clear(&o);
	free(s);
}

TEST(posture_hostile)
{
	static const char *const bad[] = {
		"", "[]", "{", "{\"seq\":1}", "{\"seq\":-1,\"received_at\":0,\"node\":\"a\",\"body\":\"{}\"}",
		"{\"seq\":\"1\",\"received_at\":0,\"node\":\"a\",\"body\":\"{}\"}",
		"{\"seq\":1,\"received_at\":0,\"node\":\"a b\",\"body\":\"{}\"}",
		"{\"seq\":1,\"received_at\":0,\"node\":\"a\",\"body\":{}}",
		"{\"seq\":1,\"received_at\":0,\"node\":\"a\",\"body\":\"x\\u0000y\"}",
		"{\"seq\":1,\"seq\":2,\"received_at\":0,\"node\":\"a\",\"body\":\"{}\"}",
	};
	struct xb_cluster_kv_posture o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(xb_cluster_kv_posture_decode(bad[i], strlen(bad[i]), &o, err, sizeof(err)),
			  ==, -EINVAL);
		CHECK(err[0] && !o.body);
	}
}

TEST(learned_and_endpoint_values)
{
	struct xb_cluster_kv_learned l = { .expires = 1800000000, .fp = 0x00abcdef }, lo;
	struct xb_cluster_kv_endpoint e = { .seen_ms = 5 }, eo;
	char *s;

	strcpy(l.node, "gw-b");
	CHECK((s = xb_cluster_kv_learned_encode(&l)));
	CHECK_INT(xb_cluster_kv_learned_decode(s, strlen(s), &lo, err, sizeof(err)), ==, 0);
	CHECK_INT(lo.expires, ==, 1800000000);
	CHECK_INT(lo.fp, ==, 0x00abcdef);
	free(s);
	CHECK_INT(xb_cluster_kv_learned_decode("{\"expires\":1,\"fp\":\"xyz\",\"node\":\"a\"}", 35, &lo,
					       err, sizeof(err)), ==, -EINVAL);
	CHECK_INT(xb_cluster_kv_learned_decode("{\"expires\":0,\"fp\":\"00000001\",\"node\":\"a\"}", 42,
					       &lo, err, sizeof(err)), ==, -EINVAL);

	strcpy(e.node, "gw-a");
	CHECK(xb_endpoint_parse(&e.ep, "[2001:db8::9]:51820"));
	CHECK((s = xb_cluster_kv_endpoint_encode(&e)));
	CHECK_INT(xb_cluster_kv_endpoint_decode(s, strlen(s), &eo, err, sizeof(err)), ==, 0);
	CHECK_INT(eo.ep.sa.sa_family, ==, AF_INET6);
	CHECK_INT(ntohs(eo.ep.in6.sin6_port), ==, 51820);
	free(s);
	s = "{\"endpoint\":\"192.0.2.1:0\",\"seen\":1,\"node\":\"a\"}";
	CHECK_INT(xb_cluster_kv_endpoint_decode(s, strlen(s), &eo, err, sizeof(err)), ==, -EINVAL);
	s = "{\"endpoint\":\"gw.example:1\",\"seen\":1,\"node\":\"a\"}";
	CHECK_INT(xb_cluster_kv_endpoint_decode(s, strlen(s), &eo, err, sizeof(err)), ==, -EINVAL);
}

/* Higher seq wins wherever it was accepted; equal is settled. */
TEST(reconcile)
{
	CHECK_INT(xb_cluster_kv_reconcile(5, true, 4, true), ==, XB_CLUSTER_KV_PUBLISH);
	CHECK_INT(xb_cluster_kv_reconcile(5, true, 0, false), ==, XB_CLUSTER_KV_PUBLISH);
	CHECK_INT(xb_cluster_kv_reconcile(5, true, 5, true), ==, XB_CLUSTER_KV_SAME);
	CHECK_INT(xb_cluster_kv_reconcile(5, true, 9, true), ==, XB_CLUSTER_KV_ADOPT);
	CHECK_INT(xb_cluster_kv_reconcile(0, false, 9, true), ==, XB_CLUSTER_KV_ADOPT);
	CHECK_INT(xb_cluster_kv_reconcile(0, false, 0, false), ==, XB_CLUSTER_KV_SAME);
	/* Naive reference over a grid. */
	for (int m = -1; m < 4; m++)
		for (int s = -1; s < 4; s++) {
			enum xb_cluster_kv_rule want = m < 0 ? (s < 0 ? XB_CLUSTER_KV_SAME : XB_CLUSTER_KV_ADOPT) :
				s < 0 || m > s ? XB_CLUSTER_KV_PUBLISH : m == s ? XB_CLUSTER_KV_SAME :
				XB_CLUSTER_KV_ADOPT;

			CHECK_INT(xb_cluster_kv_reconcile(m, m >= 0, s, s >= 0), ==, want);
		}
}

TEST(buckets)
{
	CHECK_INT(xb_cluster_kv_bucket(0), ==, 60);
	CHECK_INT(xb_cluster_kv_bucket(59), ==, 60);
	CHECK_INT(xb_cluster_kv_bucket(60), ==, 120);
	for (int64_t t = 1000; t < 1200; t++) {
		int64_t b = xb_cluster_kv_bucket(t);

		CHECK(b > t && b - t <= XB_CLUSTER_KV_BUCKET_S && b % XB_CLUSTER_KV_BUCKET_S == 0);
	}
}

/* alloc/FAMILY/ADDRESS: the family must be the address's; values hostile. */
TEST(alloc_key_and_value)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_ALLOC, .family = AF_INET6 }, o;
	struct xb_cluster_kv_alloc v = { .device = "bob", .node = "gw-a" }, ao;
	char buf[256], *s;
	size_t n;

	inet_pton(AF_INET6, "2001:db8::2", k.addr);
	CHECK((n = xb_cluster_kv_key_make(buf, sizeof(buf), P, &k)) > 0);
	CHECK_STR(buf, P "alloc/6/2001:db8::2");
	CHECK_INT(xb_cluster_kv_key_parse(P, buf, n, &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.kind, ==, XB_CLUSTER_KV_ALLOC);
	CHECK_INT(o.family, ==, AF_INET6);
	CHECK(!memcmp(o.addr, k.addr, 16));
	static const char *const badk[] = { P "alloc/4/2001:db8::2", P "alloc/6/192.0.2.1",
					    P "alloc/192.0.2.1", P "alloc/4/", P "alloc/4/x" };
	for (size_t i = 0; i < sizeof(badk) / sizeof(badk[0]); i++)
		CHECK_INT(xb_cluster_kv_key_parse(P, badk[i], strlen(badk[i]), &o, err, sizeof(err)), ==, -EINVAL);
	/* A NUL inside the address: the key is not 192.0.2.14's (inet_pton would
	 * have stopped at the NUL and said it was). */
	static const char nul[] = P "alloc/4/192.0.2.14\0x", nul6[] = P "learned/r_web_dns4/192.0.2.14\0";
	CHECK_INT(xb_cluster_kv_key_parse(P, nul, sizeof(nul) - 1, &o, err, sizeof(err)), ==, -EINVAL);
	CHECK_INT(xb_cluster_kv_key_parse(P, nul6, sizeof(nul6) - 1, &o, err, sizeof(err)), ==, -EINVAL);

	CHECK((s = xb_cluster_kv_alloc_encode(&v)));
	CHECK_INT(xb_cluster_kv_alloc_decode(s, strlen(s), &ao, err, sizeof(err)), ==, 0);
	CHECK_STR(ao.device, "bob");
	CHECK_STR(ao.node, "gw-a");
	free(s);
	static const char *const bad[] = { "{\"device\":\"../x\",\"node\":\"a\"}", "{\"node\":\"a\"}",
					   "{\"device\":\"bob\"}", "{\"device\":1,\"node\":\"a\"}", "[]", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(xb_cluster_kv_alloc_decode(bad[i], strlen(bad[i]), &ao, err, sizeof(err)), ==, -EINVAL);
}

TEST(mdm_key_and_value)
{
	struct xb_cluster_kv_key k = { .kind = XB_CLUSTER_KV_MDM }, o;
	struct xb_cluster_kv_mdm v = { .until = 1800000300 }, mo;
	char buf[256], *s;
	size_t n;

	strcpy(k.set, "intune");
	strcpy(k.nonce, "00112233445566778899aabbccddeeff");
	CHECK((n = xb_cluster_kv_key_make(buf, sizeof(buf), P, &k)) > 0);
	CHECK_STR(buf, P "mdm/intune/00112233445566778899aabbccddeeff");
	CHECK_INT(xb_cluster_kv_key_parse(P, buf, n, &o, err, sizeof(err)), ==, 0);
	CHECK_INT(o.kind, ==, XB_CLUSTER_KV_MDM);
	CHECK_STR(o.set, "intune");
	CHECK_STR(o.nonce, k.nonce);
	CHECK_INT(xb_cluster_kv_key_parse(P, P "mdm/intune", strlen(P "mdm/intune"), &o, err, sizeof(err)), ==, -EINVAL);

	strcpy(v.device, "alice");
	strcpy(v.node, "gw-a");
	v.attrs = json_pack("[{s:s, s:f, s:I}]", "key", "edr.score", "value", 80.0, "expires",
			    (json_int_t)1800000600);
	CHECK((s = xb_cluster_kv_mdm_encode(&v)));
	CHECK_INT(xb_cluster_kv_mdm_decode(s, strlen(s), &mo, err, sizeof(err)), ==, 0);
	CHECK_STR(mo.device, "alice");
	CHECK_INT(mo.until, ==, 1800000300);
	CHECK(json_equal(mo.attrs, v.attrs));
	json_decref(mo.attrs);
	json_decref(v.attrs);
	free(s);

	static const char *const bad[] = {
		"{\"device\":\"alice\",\"until\":1,\"node\":\"a\",\"attrs\":[]}",
		"{\"device\":\"alice\",\"until\":1,\"node\":\"a\",\"attrs\":[{\"key\":\"k\",\"value\":{},\"expires\":1}]}",
		"{\"device\":\"alice\",\"until\":1,\"node\":\"a\",\"attrs\":[{\"key\":\"k\",\"value\":1,\"expires\":-1}]}",
		"{\"device\":\"a/b\",\"until\":1,\"node\":\"a\",\"attrs\":[{\"key\":\"k\",\"value\":1,\"expires\":1}]}",
		"{\"device\":\"alice\",\"until\":0,\"node\":\"a\",\"attrs\":[{\"key\":\"k\",\"value\":1,\"expires\":1}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(xb_cluster_kv_mdm_decode(bad[i], strlen(bad[i]), &mo, err, sizeof(err)), ==, -EINVAL);
		CHECK(!mo.attrs);
	}
}
