/* etcd v3 JSON gateway: answers, the object stream, base64 (etcd_wire.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cluster/etcd_wire.h"

static int bad(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (msglen)
		vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void xbe_b64_enc(const void *in, size_t n, char *out)
{
	const uint8_t *p = in;
	size_t i;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*out++ = b64[v >> 18];
		*out++ = b64[v >> 12 & 63];
		*out++ = b64[v >> 6 & 63];
		*out++ = b64[v & 63];
	}
	if (i < n) {
		v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*out++ = b64[v >> 18];
		*out++ = b64[v >> 12 & 63];
		*out++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*out++ = '=';
	}
	*out = 0;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long xbe_b64_dec(const char *in, size_t n, char *out)
{
	size_t i, o = 0, pad = 0;
	int v[4], k;

	if (n % 4)
		return -1;
	if (n && in[n - 1] == '=')
		pad = n >= 2 && in[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n; i += 4) {
		for (k = 0; k < 4; k++) {
			bool tail = i + 4 == n && k >= 4 - (int)pad;
			v[k] = tail ? 0 : b64val(in[i + k]);
			if (v[k] < 0)
				return -1;
		}
		out[o++] = (char)(v[0] << 2 | v[1] >> 4);
		if (i + 4 < n || pad < 2)
			out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (i + 4 < n || pad < 1)
			out[o++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	/* Canonical: the bits a padded tail leaves over are zero. */
	if ((pad == 2 && (b64val(in[n - 3]) & 15)) || (pad == 1 && (b64val(in[n - 2]) & 3)))
		return -1;
	out[o] = 0;
	return (long)o;
}

size_t xbe_prefix_end(const char *p, size_t n, char *out)
{
	while (n && (uint8_t)p[n - 1] == 0xff)
		n--;
	if (!n) {
		out[0] = 0;
		return 1;
	}
	memcpy(out, p, n);
	out[n - 1] = (char)((uint8_t)out[n - 1] + 1);
	return n;
}

/* ---- fields ---- */

/* An int64 field: absent is 0; a decimal string or a JSON integer. */
static int get_i64(json_t *o, const char *name, int64_t *v, char *msg, size_t msglen)
{
	json_t *f = json_object_get(o, name);
	const char *s;
	char *end;
	long long x;

	*v = 0;
	if (!f)
		return 0;
	if (json_is_integer(f)) {
		*v = json_integer_value(f);
		return 0;
	}
	if (!json_is_string(f))
		return bad(msg, msglen, "\"%s\" is neither a string nor an integer", name);
	s = json_string_value(f);
	if (!*s || json_string_length(f) > 20 || (*s != '-' && (*s < '0' || *s > '9')))
		return bad(msg, msglen, "\"%s\" is not a decimal integer", name);
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || *end || end == s || (*s == '-' && !s[1]))
		return bad(msg, msglen, "\"%s\" is not a 64-bit integer", name);
	*v = x;
	return 0;
}

/* A base64 bytes field, decoded into a fresh NUL-terminated copy. */
static int get_bytes(json_t *o, const char *name, size_t max, char **out, size_t *len,
		     char *msg, size_t msglen)
{
	json_t *f = json_object_get(o, name);
	size_t n;
	long d;

	*out = NULL;
	*len = 0;
	if (f && !json_is_string(f))
		return bad(msg, msglen, "\"%s\" is not a string", name);
	n = f ? json_string_length(f) : 0;
	if (n / 4 * 3 > max + 2)
		return bad(msg, msglen, "\"%s\" is over %zu octets", name, max);
	if (!(*out = malloc(n / 4 * 3 + 1)))
		return -ENOMEM;
	d = xbe_b64_dec(f ? json_string_value(f) : "", n, *out);
	if (d < 0)
		return bad(msg, msglen, "\"%s\" is not base64", name);
	if ((size_t)d > max)
		return bad(msg, msglen, "\"%s\" is over %zu octets", name, max);
	*len = (size_t)d;
	return 0;
}

static json_t *get_obj(json_t *o, const char *name, bool *bad_type)
{
	json_t *f = json_object_get(o, name);

	*bad_type = f && !json_is_object(f);
	return json_is_object(f) ? f : NULL;
}

static int get_bool(json_t *o, const char *name, bool *v, char *msg, size_t msglen)
{
	json_t *f = json_object_get(o, name);

	*v = false;
	if (!f)
		return 0;
	if (!json_is_boolean(f))
		return bad(msg, msglen, "\"%s\" is not a boolean", name);
	*v = json_is_true(f);
	return 0;
}

static int parse_kv(json_t *o, struct xb_etcd_kv *kv, char *msg, size_t msglen)
{
	char *k = NULL, *v = NULL;
	int rc;

	if (!json_is_object(o))
		return bad(msg, msglen, "a kv is not an object");
	if ((rc = get_bytes(o, "key", XBE_MAX_KEY, &k, &kv->klen, msg, msglen)) ||
	    (rc = get_bytes(o, "value", XBE_MAX_VAL, &v, &kv->vlen, msg, msglen)) ||
	    (rc = get_i64(o, "create_revision", &kv->create_rev, msg, msglen)) ||
	    (rc = get_i64(o, "mod_revision", &kv->mod_rev, msg, msglen)) ||
	    (rc = get_i64(o, "version", &kv->version, msg, msglen)) ||
	    (rc = get_i64(o, "lease", &kv->lease, msg, msglen))) {
		free(k);
		free(v);
		return rc;
	}
	if (!kv->klen) {
		free(k);
		free(v);
		return bad(msg, msglen, "a kv has no key");
	}
	kv->key = k;
	kv->val = v;
	return 0;
}

static void free_kv(struct xb_etcd_kv *kv)
{
	free((char *)kv->key);
	free((char *)kv->val);
}

static int parse_kvs(json_t *o, struct xbe_answer *a, char *msg, size_t msglen)
{
	json_t *arr = json_object_get(o, "kvs"), *it;
	size_t i;
	int rc;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return bad(msg, msglen, "\"kvs\" is not an array");
	if (!json_array_size(arr))
		return 0;
	if (!(a->kvs = calloc(json_array_size(arr), sizeof(*a->kvs))))
		return -ENOMEM;
	json_array_foreach(arr, i, it) {
		if ((rc = parse_kv(it, &a->kvs[i], msg, msglen)))
			return rc;
		a->n_kvs++;
	}
	return 0;
}

static int parse_events(json_t *o, struct xbe_answer *a, char *msg, size_t msglen)
{
	json_t *arr = json_object_get(o, "events"), *it, *t;
	bool bt;
	size_t i;
	int rc;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return bad(msg, msglen, "\"events\" is not an array");
	if (!json_array_size(arr))
		return 0;
	if (!(a->evs = calloc(json_array_size(arr), sizeof(*a->evs))))
		return -ENOMEM;
	json_array_foreach(arr, i, it) {
		struct xb_etcd_event *ev = &a->evs[i];
		json_t *kv;

		if (!json_is_object(it))
			return bad(msg, msglen, "an event is not an object");
		t = json_object_get(it, "type");
		if (!t || (json_is_string(t) && !strcmp(json_string_value(t), "PUT")) ||
		    (json_is_integer(t) && json_integer_value(t) == 0))
			ev->type = XB_ETCD_PUT;
		else if ((json_is_string(t) && !strcmp(json_string_value(t), "DELETE")) ||
			 (json_is_integer(t) && json_integer_value(t) == 1))
			ev->type = XB_ETCD_DELETE;
		else
			return bad(msg, msglen, "an event's \"type\" is neither PUT nor DELETE");
		if (!(kv = get_obj(it, "kv", &bt)))
			return bad(msg, msglen, "an event has no \"kv\" object");
		if ((rc = parse_kv(kv, &ev->kv, msg, msglen)))
			return rc;
		a->n_evs++;
	}
	return 0;
}

static int parse_txn(json_t *o, struct xbe_answer *a, char *msg, size_t msglen)
{
	json_t *arr, *it, *rr;
	bool bt;
	size_t i;
	int rc;

	if ((rc = get_bool(o, "succeeded", &a->succeeded, msg, msglen)))
		return rc;
	arr = json_object_get(o, "responses");
	if (arr && !json_is_array(arr))
		return bad(msg, msglen, "\"responses\" is not an array");
	json_array_foreach(arr, i, it) {
		if (!json_is_object(it))
			return bad(msg, msglen, "a txn response is not an object");
		rr = get_obj(it, "response_range", &bt);
		if (bt)
			return bad(msg, msglen, "\"response_range\" is not an object");
		if (rr && !a->kvs && (rc = parse_kvs(rr, a, msg, msglen)))
			return rc;
	}
	return 0;
}

/* {"error": "...", "code": N, "message": "..."} (unary) or
 * {"error": {"grpc_code": N, "message": "..."}} (stream). */
static int parse_error(json_t *e, json_t *top, struct xbe_answer *a, char *msg, size_t msglen)
{
	json_t *holder = json_is_object(e) ? e : top;
	json_t *m = json_object_get(holder, "message");
	json_t *c = json_object_get(holder, json_is_object(e) ? "grpc_code" : "code");
	const char *text = json_is_string(m) ? json_string_value(m) :
			   json_is_string(e) ? json_string_value(e) : NULL;

	if (!json_is_object(e) && !json_is_string(e))
		return bad(msg, msglen, "\"error\" is neither a string nor an object");
	if (c && !json_is_integer(c))
		return bad(msg, msglen, "an error's code is not an integer");
	a->code = c ? (int)json_integer_value(c) : 2;	/* 2: gRPC's Unknown */
	if (msglen)
		snprintf(msg, msglen, "etcd: %.200s (code %d)", text ? text : "error", a->code);
	return 1;
}

static int parse_body(json_t *o, enum xbe_kind kind, struct xbe_answer *a, char *msg,
		      size_t msglen)
{
	json_t *h;
	bool bt;
	int rc;

	h = get_obj(o, "header", &bt);
	if (bt)
		return bad(msg, msglen, "\"header\" is not an object");
	if (h && (rc = get_i64(h, "revision", &a->revision, msg, msglen)))
		return rc;
	switch (kind) {
	case XBE_RANGE:
		return parse_kvs(o, a, msg, msglen);
	case XBE_DELETE:
		return get_i64(o, "deleted", &a->deleted, msg, msglen);
	case XBE_TXN:
		return parse_txn(o, a, msg, msglen);
	case XBE_GRANT:
	case XBE_KEEPALIVE:
		if ((rc = get_i64(o, "ID", &a->lease_id, msg, msglen)) ||
		    (rc = get_i64(o, "TTL", &a->ttl, msg, msglen)))
			return rc;
		return 0;
	case XBE_WATCH:
		if ((rc = get_bool(o, "created", &a->created, msg, msglen)) ||
		    (rc = get_bool(o, "canceled", &a->canceled, msg, msglen)) ||
		    (rc = get_i64(o, "compact_revision", &a->compact_rev, msg, msglen)))
			return rc;
		return parse_events(o, a, msg, msglen);
	case XBE_PUT:
	case XBE_REVOKE:
		return 0;
	}
	return bad(msg, msglen, "unknown answer kind %d", (int)kind);
}

int xbe_parse(const char *buf, size_t len, enum xbe_kind kind, struct xbe_answer *a,
	      char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *o, *body, *e;
	int rc;

	memset(a, 0, sizeof(*a));
	if (msglen)
		msg[0] = 0;
	if (len > XBE_MAX_BODY)
		return bad(msg, msglen, "answer of %zu octets is over %u", len, XBE_MAX_BODY);
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return bad(msg, msglen, "answer is not JSON: %s at %d", jerr.text, jerr.position);
	if (!json_is_object(o)) {
		json_decref(o);
		return bad(msg, msglen, "answer is not a JSON object");
	}
	body = o;
	if ((e = json_object_get(o, "error"))) {
		rc = parse_error(e, o, a, msg, msglen);
		json_decref(o);
		return rc;
	}
	if (kind == XBE_WATCH || kind == XBE_KEEPALIVE) {
		body = json_object_get(o, "result");
		if (!json_is_object(body)) {
			json_decref(o);
			return bad(msg, msglen, "stream message has no \"result\" object");
		}
	}
	rc = parse_body(body, kind, a, msg, msglen);
	json_decref(o);
	return rc;
}

void xbe_answer_free(struct xbe_answer *a)
{
	size_t i;

	for (i = 0; i < a->n_kvs; i++)
		free_kv(&a->kvs[i]);
	for (i = 0; i < a->n_evs; i++)
		free_kv(&a->evs[i].kv);
	free(a->kvs);
	free(a->evs);
	a->kvs = NULL;
	a->evs = NULL;
	a->n_kvs = a->n_evs = 0;
}

/* ---- the object stream ---- */

void xbe_stream_init(struct xbe_stream *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

void xbe_stream_reset(struct xbe_stream *s)
{
	s->len = 0;
	s->depth = 0;
	s->in_str = s->esc = false;
}

void xbe_stream_free(struct xbe_stream *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static int push(struct xbe_stream *s, char c)
{
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		char *b;

		if (cap > s->max)
			cap = s->max;
		if (!(b = realloc(s->buf, cap)))
			return -ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	s->buf[s->len++] = c;
	return 0;
}

/* JSON's structure is all a splitter needs: braces and brackets outside
 * strings, and a string's escapes. */
int xbe_stream_feed(struct xbe_stream *s, const char *data, size_t n, xbe_obj_fn fn,
		    void *ctx, char *msg, size_t msglen)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		char c = data[i];

		if (!s->depth && !s->len) {
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
				continue;
			if (c != '{') {
				xbe_stream_reset(s);
				return bad(msg, msglen, "stream: 0x%02x between objects", (uint8_t)c);
			}
		}
		if (s->len >= s->max) {
			xbe_stream_reset(s);
			return bad(msg, msglen, "stream: an object over %zu octets", s->max);
		}
		if ((rc = push(s, c)))
			return rc;
		if (s->in_str) {
			if (s->esc)
				s->esc = false;
			else if (c == '\\')
				s->esc = true;
			else if (c == '"')
				s->in_str = false;
			continue;
		}
		if (c == '"') {
			s->in_str = true;
		} else if (c == '{' || c == '[') {
			if (++s->depth > 64) {
				xbe_stream_reset(s);
				return bad(msg, msglen, "stream: nested over 64 deep");
			}
		} else if (c == '}' || c == ']') {
			if (--s->depth == 0) {
				size_t len = s->len;

				s->len = 0;
				if ((rc = fn(ctx, s->buf, len)))
					return rc;
			} else if (s->depth < 0) {
				xbe_stream_reset(s);
				return bad(msg, msglen, "stream: unbalanced '%c'", c);
			}
		}
	}
	return 0;
}
