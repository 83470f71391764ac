/* The etcd client's parsers (gateway/cluster/etcd_wire.h): answers as etcd
 * 3.4's JSON gateway writes them (taken from a real member), every field
 * type-checked, base64 strict, the watch stream split the same however the
 * octets arrive. */
#include <errno.h>

#include "gateway/cluster/etcd.h"
#include "gateway/cluster/etcd_wire.h"
#include "tests/lib/check.h"

static char msg[256];

TEST(base64_round_trip)
{
	char enc[64], dec[64];
	size_t n;

	for (n = 0; n <= 20; n++) {
		char in[20];
		size_t i;

		for (i = 0; i < n; i++)
			in[i] = (char)(0xf0 + i * 37);
		xbe_b64_enc(in, n, enc);
		CHECK_INT(strlen(enc), ==, 4 * ((n + 2) / 3));
		CHECK_INT(xbe_b64_dec(enc, strlen(enc), dec), ==, n);
		CHECK(!memcmp(in, dec, n));
	}
	CHECK_STR((xbe_b64_enc("kv/a", 4, enc), enc), "a3YvYQ==");
	CHECK_INT(xbe_b64_dec("a3YvYQ", 6, dec), ==, -1);	/* unpadded */
	CHECK_INT(xbe_b64_dec("a3Y-YQ==", 8, dec), ==, -1);	/* URL alphabet */
	CHECK_INT(xbe_b64_dec("a3YvYR==", 8, dec), ==, -1);	/* stray bits */
	CHECK_INT(xbe_b64_dec("a=Yv", 4, dec), ==, -1);		/* '=' inside */
	CHECK_INT(xbe_b64_dec("====", 4, dec), ==, -1);
}

TEST(prefix_end)
{
	char out[8];

	CHECK_INT(xbe_prefix_end("ab", 2, out), ==, 2);
	CHECK(!memcmp(out, "ac", 2));
	CHECK_INT(xbe_prefix_end("a\xff\xff", 3, out), ==, 1);
	CHECK_INT(out[0], ==, 'b');
	CHECK_INT(xbe_prefix_end("\xff", 1, out), ==, 1);
	CHECK_INT(out[0], ==, 0);		/* every key from here on */
}

TEST(range_answer)
{
	static const char a1[] = "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
		"\"10276657743932975437\",\"revision\":\"7\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"
		"\"a3YvYQ==\",\"create_revision\":\"2\",\"mod_revision\":\"5\",\"version\":\"2\","
		"\"value\":\"b25l\",\"lease\":\"7587862072907213830\"},{\"key\":\"a3YvYg==\","
		"\"create_revision\":\"3\",\"mod_revision\":\"3\",\"version\":\"1\"}],\"count\":\"2\"}";
	struct xbe_answer a;

	CHECK_INT(xbe_parse(a1, strlen(a1), XBE_RANGE, &a, msg, sizeof(msg)), ==, 0);
	CHECK_INT(a.revision, ==, 7);
	CHECK_INT(a.n_kvs, ==, 2);
	CHECK_STR(a.kvs[0].key, "kv/a");
	CHECK_STR(a.kvs[0].val, "one");
	CHECK_INT(a.kvs[0].mod_rev, ==, 5);
	CHECK_INT(a.kvs[0].lease, ==, 7587862072907213830LL);
	CHECK_INT(a.kvs[1].vlen, ==, 0);		/* an empty value is left out */
	CHECK_STR(a.kvs[1].val, "");
	xbe_answer_free(&a);
}

TEST(bad_answers)
{
	static const char *bad[] = {
		"", "[]", "{", "{\"header\":[]}",
		"{\"header\":{\"revision\":7.5}}",
		"{\"header\":{\"revision\":\"7x\"}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{\"header\":{\"revision\":\"-\"}}",
		"{\"kvs\":{}}", "{\"kvs\":[1]}", "{\"kvs\":[{}]}",
		"{\"kvs\":[{\"key\":\"a3YvYQ\"}]}",
		"{\"kvs\":[{\"key\":5}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"value\":\"!!!!\"}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"version\":true}]}",
		"{\"a\":1,\"a\":2}",
	};
	struct xbe_answer a;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = 0;
		if (xbe_parse(bad[i], strlen(bad[i]), XBE_RANGE, &a, msg, sizeof(msg)) != -EPROTO)
			xb_test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
		CHECK(msg[0]);
		xbe_answer_free(&a);
	}
}

TEST(txn_and_errors)
{
	static const char t[] = "{\"header\":{\"revision\":\"9\"},\"responses\":[{\"response_range\":"
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"8\","
		"\"value\":\"eA==\"}],\"count\":\"1\"}}]}";
	static const char e1[] = "{\"error\":\"etcdserver: requested lease not found\",\"code\":5,"
		"\"message\":\"etcdserver: requested lease not found\"}";
	static const char e2[] = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
		"\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";
	struct xbe_answer a;

	CHECK_INT(xbe_parse(t, strlen(t), XBE_TXN, &a, msg, sizeof(msg)), ==, 0);
	CHECK(!a.succeeded);
	CHECK_INT(a.n_kvs, ==, 1);
	CHECK_INT(a.kvs[0].mod_rev, ==, 8);
	xbe_answer_free(&a);
	CHECK_INT(xbe_parse(e1, strlen(e1), XBE_REVOKE, &a, msg, sizeof(msg)), ==, 1);
	CHECK_INT(a.code, ==, 5);
	CHECK(strstr(msg, "lease not found"));
	CHECK_INT(xbe_parse(e2, strlen(e2), XBE_WATCH, &a, msg, sizeof(msg)), ==, 1);
	CHECK_INT(a.code, ==, 14);
}

TEST(watch_messages)
{
	static const char w[] = "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"kv\":"
		"{\"key\":\"dy8x\",\"mod_revision\":\"11\",\"value\":\"eA==\"}},{\"type\":\"DELETE\","
		"\"kv\":{\"key\":\"dy8y\",\"mod_revision\":\"12\"}}]}}";
	static const char c[] = "{\"result\":{\"header\":{\"revision\":\"20\"},\"canceled\":true,"
		"\"compact_revision\":\"15\"}}";
	static const char bad_type[] = "{\"result\":{\"events\":[{\"type\":\"MOVE\",\"kv\":{\"key\":\"YQ==\"}}]}}";
	struct xbe_answer a;

	CHECK_INT(xbe_parse(w, strlen(w), XBE_WATCH, &a, msg, sizeof(msg)), ==, 0);
	CHECK_INT(a.n_evs, ==, 2);
	CHECK_INT(a.evs[0].type, ==, XB_ETCD_PUT);
	CHECK_STR(a.evs[0].kv.key, "w/1");
	CHECK_INT(a.evs[1].type, ==, XB_ETCD_DELETE);
	CHECK_INT(a.evs[1].kv.mod_rev, ==, 12);
	xbe_answer_free(&a);
	CHECK_INT(xbe_parse(c, strlen(c), XBE_WATCH, &a, msg, sizeof(msg)), ==, 0);
	CHECK(a.canceled);
	CHECK_INT(a.compact_rev, ==, 15);
	CHECK_INT(xbe_parse(bad_type, strlen(bad_type), XBE_WATCH, &a, msg, sizeof(msg)), ==, -EPROTO);
	xbe_answer_free(&a);
	CHECK_INT(xbe_parse("{\"header\":{}}", 13, XBE_WATCH, &a, msg, sizeof(msg)), ==, -EPROTO);
}

struct objs {
	char all[4096];
	size_t len, n;
};

static int take(void *ctx, const char *obj, size_t len)
{
	struct objs *o = ctx;

	if (o->len + len + 1 > sizeof(o->all))
		return -E2BIG;
	memcpy(o->all + o->len, obj, len);
	o->len += len;
	o->all[o->len++] = '|';
	o->n++;
	return 0;
}

/* However the stream is cut, the same objects come out: each cut checked
 * against the whole stream fed at once. */
TEST(stream_split_anywhere)
{
	static const char s[] = "{\"result\":{\"a\":\"}{\\\"\"}}\n{\"result\":{\"b\":[1,{\"c\":2}]}}\r\n"
		"  {\"x\":\"\\\\\"}{\"y\":1}\n";
	struct objs whole = { 0 }, cut;
	struct xbe_stream st;
	size_t n = strlen(s), i, j;

	xbe_stream_init(&st, 1024);
	CHECK_INT(xbe_stream_feed(&st, s, n, take, &whole, msg, sizeof(msg)), ==, 0);
	CHECK_INT(whole.n, ==, 4);
	{
		static const char first[] = "{\"result\":{\"a\":\"}{\\\"\"}}|";

		CHECK(!memcmp(whole.all, first, sizeof(first) - 1));
	}
	for (i = 0; i <= n; i++)
		for (j = i; j <= n; j++) {
			memset(&cut, 0, sizeof(cut));
			xbe_stream_reset(&st);
			CHECK_INT(xbe_stream_feed(&st, s, i, take, &cut, msg, sizeof(msg)), ==, 0);
			CHECK_INT(xbe_stream_feed(&st, s + i, j - i, take, &cut, msg, sizeof(msg)), ==, 0);
			CHECK_INT(xbe_stream_feed(&st, s + j, n - j, take, &cut, msg, sizeof(msg)), ==, 0);
			CHECK_INT(cut.len, ==, whole.len);
			CHECK(!memcmp(cut.all, whole.all, whole.len));
		}
	xbe_stream_free(&st);
}

TEST(stream_bounds)
{
	struct objs o = { 0 };
	struct xbe_stream st;
	char big[200];

	xbe_stream_init(&st, 64);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[1] = '"';
	CHECK_INT(xbe_stream_feed(&st, big, sizeof(big), take, &o, msg, sizeof(msg)), ==, -EPROTO);
	CHECK(strstr(msg, "over 64"));
	xbe_stream_reset(&st);
	CHECK_INT(xbe_stream_feed(&st, "x{}", 3, take, &o, msg, sizeof(msg)), ==, -EPROTO);
	xbe_stream_free(&st);
	xbe_stream_init(&st, 1024);
	memset(big, '[', sizeof(big));
	big[0] = '{';
	CHECK_INT(xbe_stream_feed(&st, big, 64, take, &o, msg, sizeof(msg)), ==, 0);
	CHECK_INT(xbe_stream_feed(&st, big, 1, take, &o, msg, sizeof(msg)), ==, -EPROTO);
	CHECK(strstr(msg, "deep"));
	xbe_stream_reset(&st);
	CHECK_INT(xbe_stream_feed(&st, "{}]", 3, take, &o, msg, sizeof(msg)), ==, -EPROTO);
	CHECK_INT(o.n, ==, 1);
	xbe_stream_free(&st);
}

/* xb_etcd_open's TLS rules (etcd.h): https endpoints all or none, a CA with
 * https, no TLS files with http, a certificate and its key together. Each
 * refused at open with a message, before any thread starts. */
TEST(open_tls_rules)
{
	static const char *const mixed[] = { "https://192.0.2.1:2379", "http://192.0.2.2:2379" };
	static const char *const tls[] = { "https://192.0.2.1:2379", "https://192.0.2.2:2379" };
	static const char *const plain[] = { "http://192.0.2.1:2379" };
	struct { const char *const *eps; size_t n; const char *ca, *cert, *key, *want; } c[] = {
		{ mixed, 2, "ca.pem", NULL, NULL, "etcd: endpoints mix http:// and https://" },
		{ tls, 2, NULL, NULL, NULL, "etcd: https endpoints need a CA file" },
		{ tls, 2, NULL, "c.pem", "c.key", "etcd: https endpoints need a CA file" },
		{ plain, 1, "ca.pem", NULL, NULL, "etcd: TLS files given for http endpoints" },
		{ plain, 1, NULL, "c.pem", "c.key", "etcd: TLS files given for http endpoints" },
		{ tls, 2, "ca.pem", "c.pem", NULL, "etcd: a client certificate needs its key, and a key its certificate" },
		{ tls, 2, "ca.pem", NULL, "c.key", "etcd: a client certificate needs its key, and a key its certificate" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct xb_etcd_opts o = { .endpoints = c[i].eps, .n_endpoints = c[i].n,
					  .ca_file = c[i].ca, .cert_file = c[i].cert, .key_file = c[i].key };

		err[0] = '\0';
		CHECK(xb_etcd_open(&o, NULL, NULL, err, sizeof(err)) == NULL);
		CHECK_STR(err, c[i].want);
	}
}
