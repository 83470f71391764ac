/* What the etcd client reads and writes on etcd v3's JSON gateway — the
 * parsers behind gateway/cluster/etcd.c, apart so that tests/fuzz can drive
 * them without a network. Internal to the client.
 *
 * Answers are grpc-gateway's JSON of etcd's protobuf messages: int64 fields
 * as decimal strings ("revision": "42"; a bare integer is accepted too),
 * bytes as standard base64 with padding, fields equal to their zero value
 * left out. A unary answer is the message itself, or {"error": "...",
 * "code": N, "message": "..."}; a streamed answer (watch, lease keepalive)
 * is a sequence of {"result": {...}} or {"error": {"grpc_code": N,
 * "message": "..."}} objects, one per message, whitespace between them.
 *
 * Everything is checked: a field of the wrong type, bad base64, a size over
 * the limits below is an error with a message naming the field, never a
 * crash or a guess.
 */
#ifndef XB_ETCD_WIRE_H
#define XB_ETCD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/cluster/etcd.h"

#define XBE_MAX_BODY	(64u << 20)	/* octets of one unary answer */
#define XBE_MAX_MSG	(16u << 20)	/* octets of one streamed message (a watch response) */
#define XBE_MAX_KEY	(64u << 10)	/* octets of a key, decoded */
#define XBE_MAX_VAL	(2u << 20)	/* octets of a value, decoded (etcd's own limit is 1.5 MiB) */

enum xbe_kind { XBE_PUT, XBE_RANGE, XBE_DELETE, XBE_TXN, XBE_GRANT, XBE_REVOKE,
		XBE_KEEPALIVE, XBE_WATCH };

/* One parsed answer. kvs and evs (and the strings they point to, each
 * NUL-terminated) are owned by it: xbe_answer_free(). */
struct xbe_answer {
	int64_t revision;
	bool succeeded;			/* txn */
	struct xb_etcd_kv *kvs;		/* range; txn's response_range */
	size_t n_kvs;
	int64_t deleted;		/* delete */
	int64_t lease_id, ttl;		/* grant, keepalive */
	struct xb_etcd_event *evs;	/* watch */
	size_t n_evs;
	bool created, canceled;		/* watch */
	int64_t compact_rev;		/* watch: start revision was compacted */
	int code;			/* etcd's error: gRPC code (when xbe_parse returns 1) */
};

/* Parses buf[0..len) as an answer of kind. Returns 0, 1 when etcd answered
 * with an error (its gRPC code in a->code, its message in msg), or -EPROTO
 * with what is wrong in msg. a is cleared first; free it in every case. */
int xbe_parse(const char *buf, size_t len, enum xbe_kind kind, struct xbe_answer *a,
	      char *msg, size_t msglen);
void xbe_answer_free(struct xbe_answer *a);

/* Splits a stream of JSON objects into whole objects, however the octets
 * arrive: an object across several chunks, several objects in one chunk.
 * Only whitespace may stand between objects; one object of more than max
 * octets is an error. */
struct xbe_stream {
	char *buf;
	size_t len, cap, max;
	int depth;
	bool in_str, esc;
};
typedef int (*xbe_obj_fn)(void *ctx, const char *obj, size_t len);

void xbe_stream_init(struct xbe_stream *s, size_t max);
void xbe_stream_reset(struct xbe_stream *s);	/* a new connection: drop a partial object */
void xbe_stream_free(struct xbe_stream *s);
/* Feeds n octets; calls fn for each object completed. Returns 0, -EPROTO
 * (msg says why), -ENOMEM, or the first non-zero value fn returned. */
int xbe_stream_feed(struct xbe_stream *s, const char *data, size_t n, xbe_obj_fn fn,
		    void *ctx, char *msg, size_t msglen);

/* Standard base64 with padding. enc: out has room for 4 * ((n + 2) / 3) + 1.
 * dec: -1 on anything but canonical base64; out has room for n / 4 * 3 + 1
 * and is NUL-terminated. */
void xbe_b64_enc(const void *in, size_t n, char *out);
long xbe_b64_dec(const char *in, size_t n, char *out);

/* The end of the range holding every key that starts with p[0..n): p with
 * its last octet below 0xff incremented and what follows dropped; "\0" (every
 * key from p on) when there is none. Writes at most n octets (1 for "\0");
 * returns the length. */
size_t xbe_prefix_end(const char *p, size_t n, char *out);

#endif
