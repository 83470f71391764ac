/* Keys and values of the shared state, and the reconcile rule
 * (cluster_kv.h). */
#include "gateway/cluster/cluster_kv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX (XB_CLUSTER_KV_BODY_MAX * 7)	/* a body escaped in JSON, and the rest */

static const char *const kinds[] = {
	[XB_CLUSTER_KV_POSTURE] = "posture/", [XB_CLUSTER_KV_LEARNED] = "learned/",
	[XB_CLUSTER_KV_ENDPOINT] = "endpoint/", [XB_CLUSTER_KV_MDM] = "mdm/",
	[XB_CLUSTER_KV_ALLOC] = "alloc/",
};

/* Names as the policy allows them (policy/cfg.c): no '/', nothing to escape. */
static bool name_ok(const char *s, size_t n, size_t max)
{
	if (!n || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

size_t xb_cluster_kv_key_make(char *buf, size_t len, const char *prefix,
			      const struct xb_cluster_kv_key *k)
{
	char a[INET6_ADDRSTRLEN];
	int n = -1;

	if (k->kind == XB_CLUSTER_KV_POSTURE || k->kind == XB_CLUSTER_KV_ENDPOINT)
		n = snprintf(buf, len, "%s%s%s", prefix, kinds[k->kind], k->device);
	else if (k->kind == XB_CLUSTER_KV_MDM)
		n = snprintf(buf, len, "%s%s%s/%s", prefix, kinds[k->kind], k->set, k->nonce);
	else if (k->kind == XB_CLUSTER_KV_LEARNED && inet_ntop(k->family, k->addr, a, sizeof(a)))
		n = snprintf(buf, len, "%s%s%s/%s", prefix, kinds[k->kind], k->set, a);
	else if (k->kind == XB_CLUSTER_KV_ALLOC && inet_ntop(k->family, k->addr, a, sizeof(a)))
		n = snprintf(buf, len, "%s%s%c/%s", prefix, kinds[k->kind],
			     k->family == AF_INET ? '4' : '6', a);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	return -EINVAL;
}

static int parse_learned(const char *rest, size_t n, struct xb_cluster_kv_key *out, char *err,
			 size_t errlen)
{
	const char *slash = memchr(rest, '/', n);
	char a[INET6_ADDRSTRLEN + 1];
	size_t sl, al;

	if (!slash)
		return bad(err, errlen, "learned key without /ADDRESS%s", "");
	sl = (size_t)(slash - rest);
	al = n - sl - 1;
	if (!name_ok(rest, sl, sizeof(out->set)))
		return bad(err, errlen, "learned key: not a set name%s", "");
	memcpy(out->set, rest, sl);
	out->set[sl] = '\0';
	/* A NUL inside would end the text inet_pton reads: "10.0.0.14\0x"
	 * is not 10.0.0.14. */
	if (!al || al >= sizeof(a) || memchr(slash + 1, '\0', al))
		return bad(err, errlen, "learned key: not an address%s", "");
	memcpy(a, slash + 1, al);
	a[al] = '\0';
	out->family = strchr(a, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, a, out->addr) != 1)
		return bad(err, errlen, "learned key: not an address%s", "");
	return 0;
}

static int parse_mdm(const char *rest, size_t n, struct xb_cluster_kv_key *out, char *err,
		     size_t errlen)
{
	const char *slash = memchr(rest, '/', n);
	size_t kl = slash ? (size_t)(slash - rest) : 0, nl = slash ? n - kl - 1 : 0;

	if (!slash || !name_ok(rest, kl, sizeof(out->set)) || !name_ok(slash + 1, nl, sizeof(out->nonce)))
		return bad(err, errlen, "mdm key: not KEY/NONCE%s", "");
	memcpy(out->set, rest, kl);
	out->set[kl] = '\0';
	memcpy(out->nonce, slash + 1, nl);
	out->nonce[nl] = '\0';
	return 0;
}

/* "4/ADDRESS" or "6/ADDRESS", the family the address's. */
static int parse_alloc(const char *rest, size_t n, struct xb_cluster_kv_key *out, char *err,
		       size_t errlen)
{
	if (n < 3 || (rest[0] != '4' && rest[0] != '6') || rest[1] != '/' ||
	    parse_learned(rest, n, out, err, errlen) < 0 ||
	    out->family != (rest[0] == '4' ? AF_INET : AF_INET6))
		return bad(err, errlen, "alloc key: not 4/IPv4 or 6/IPv6 address%s", "");
	out->set[0] = '\0';
	return 0;
}

int xb_cluster_kv_key_parse(const char *prefix, const char *key, size_t klen,
			    struct xb_cluster_kv_key *out, char *err, size_t errlen)
{
	size_t pl = strlen(prefix);

	memset(out, 0, sizeof(*out));
	if (klen < pl || memcmp(key, prefix, pl))
		return bad(err, errlen, "a key outside the prefix%s", "");
	key += pl;
	klen -= pl;
	for (int k = XB_CLUSTER_KV_POSTURE; k <= XB_CLUSTER_KV_ALLOC; k++) {
		size_t kl = strlen(kinds[k]);

		if (klen < kl || memcmp(key, kinds[k], kl))
			continue;
		out->kind = (enum xb_cluster_kv_kind)k;
		if (k == XB_CLUSTER_KV_LEARNED)
			return parse_learned(key + kl, klen - kl, out, err, errlen);
		if (k == XB_CLUSTER_KV_MDM)
			return parse_mdm(key + kl, klen - kl, out, err, errlen);
		if (k == XB_CLUSTER_KV_ALLOC)
			return parse_alloc(key + kl, klen - kl, out, err, errlen);
		if (!name_ok(key + kl, klen - kl, sizeof(out->device)))
			return bad(err, errlen, "%s key: not a device name", kinds[k]);
		memcpy(out->device, key + kl, klen - kl);
		out->device[klen - kl] = '\0';
		return 0;
	}
	out->kind = XB_CLUSTER_KV_OTHER;
	return 0;
}

static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

char *xb_cluster_kv_posture_encode(const struct xb_cluster_kv_posture *v)
{
	return dump(json_pack("{s:I, s:I, s:s, s:s%}", "seq", (json_int_t)v->seq, "received_at",
			      (json_int_t)v->received_ms, "node", v->node, "body", v->body,
			      v->body_len));
}

char *xb_cluster_kv_learned_encode(const struct xb_cluster_kv_learned *v)
{
	char fp[9];

	snprintf(fp, sizeof(fp), "%08x", v->fp);
	return dump(json_pack("{s:I, s:s, s:s}", "expires", (json_int_t)v->expires, "fp", fp,
			      "node", v->node));
}

char *xb_cluster_kv_endpoint_encode(const struct xb_cluster_kv_endpoint *v)
{
	char ep[INET6_ADDRSTRLEN + 8];

	xb_endpoint_format(ep, sizeof(ep), &v->ep);
	return dump(json_pack("{s:s, s:I, s:s}", "endpoint", ep, "seen", (json_int_t)v->seen_ms,
			      "node", v->node));
}

/* The value as a JSON object, or NULL with err. */
static json_t *load(const char *val, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (len > VALUE_MAX) {
		snprintf(err, errlen, "value of %zu bytes, over %u", len, VALUE_MAX);
		return NULL;
	}
	if (!(j = json_loadb(val, len, JSON_REJECT_DUPLICATES, &je))) {
		snprintf(err, errlen, "not JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Integer member key, at least lo; false with err. */
static bool get_int(json_t *j, const char *key, int64_t lo, int64_t *out, char *err, size_t errlen)
{
	json_t *m = json_object_get(j, key);

	if (!json_is_integer(m) || json_integer_value(m) < lo) {
		snprintf(err, errlen, "\"%s\" is missing or not an integer >= %lld", key, (long long)lo);
		return false;
	}
	*out = json_integer_value(m);
	return true;
}

static bool get_node(json_t *j, char *node, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(j, "node"));

	if (!s || !name_ok(s, strlen(s), XB_CLUSTER_KV_NAME_MAX)) {
		snprintf(err, errlen, "\"node\" is missing or not a name");
		return false;
	}
	strcpy(node, s);
	return true;
}

int xb_cluster_kv_posture_decode(const char *val, size_t len, struct xb_cluster_kv_posture *out,
				 char *err, size_t errlen)
{
	json_t *j = load(val, len, err, errlen), *b;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!j)
		return rc;
	b = json_object_get(j, "body");
	if (get_int(j, "seq", 0, &out->seq, err, errlen) &&
	    get_int(j, "received_at", 0, &out->received_ms, err, errlen) &&
	    get_node(j, out->node, err, errlen)) {
		if (!json_is_string(b) || json_string_length(b) > XB_CLUSTER_KV_BODY_MAX)
			snprintf(err, errlen, "\"body\" is missing, not a string or over %u bytes",
				 XB_CLUSTER_KV_BODY_MAX);
		else if (!(out->body = strndup(json_string_value(b), json_string_length(b))))
			snprintf(err, errlen, "out of memory");
		else if (strlen(out->body) != json_string_length(b))
			snprintf(err, errlen, "\"body\" holds a NUL");
		else
			rc = 0;
		out->body_len = rc ? 0 : json_string_length(b);
	}
	json_decref(j);
	if (rc)
		xb_cluster_kv_posture_clear(out);
	return rc;
}

void xb_cluster_kv_posture_clear(struct xb_cluster_kv_posture *v)
{
	free(v->body);
	v->body = NULL;
	v->body_len = 0;
}

int xb_cluster_kv_learned_decode(const char *val, size_t len, struct xb_cluster_kv_learned *out,
				 char *err, size_t errlen)
{
	json_t *j = load(val, len, err, errlen);
	const char *fp;
	char *end;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!j)
		return rc;
	fp = json_string_value(json_object_get(j, "fp"));
	if (get_int(j, "expires", 1, &out->expires, err, errlen) &&
	    get_node(j, out->node, err, errlen)) {
		if (!fp || strlen(fp) != 8 || (out->fp = (uint32_t)strtoul(fp, &end, 16), *end))
			snprintf(err, errlen, "\"fp\" is missing or not 8 hex digits");
		else
			rc = 0;
	}
	json_decref(j);
	return rc;
}

int xb_cluster_kv_endpoint_decode(const char *val, size_t len, struct xb_cluster_kv_endpoint *out,
				  char *err, size_t errlen)
{
	json_t *j = load(val, len, err, errlen);
	const char *ep;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!j)
		return rc;
	ep = json_string_value(json_object_get(j, "endpoint"));
	if (get_int(j, "seen", 0, &out->seen_ms, err, errlen) &&
	    get_node(j, out->node, err, errlen)) {
		if (!ep || !xb_endpoint_parse(&out->ep, ep) ||
		    (out->ep.sa.sa_family == AF_INET ? !out->ep.in.sin_port : !out->ep.in6.sin6_port))
			snprintf(err, errlen, "\"endpoint\" is missing or not ADDRESS:PORT");
		else
			rc = 0;
	}
	json_decref(j);
	return rc;
}

char *xb_cluster_kv_alloc_encode(const struct xb_cluster_kv_alloc *v)
{
	return dump(json_pack("{s:s, s:s}", "device", v->device, "node", v->node));
}

int xb_cluster_kv_alloc_decode(const char *val, size_t len, struct xb_cluster_kv_alloc *out,
			       char *err, size_t errlen)
{
	json_t *j = load(val, len, err, errlen);
	const char *dev;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!j)
		return rc;
	dev = json_string_value(json_object_get(j, "device"));
	if (get_node(j, out->node, err, errlen)) {
		if (!dev || !name_ok(dev, strlen(dev), sizeof(out->device)))
			snprintf(err, errlen, "\"device\" is missing or not a name");
		else
			rc = 0, strcpy(out->device, dev);
	}
	json_decref(j);
	return rc;
}

char *xb_cluster_kv_mdm_encode(const struct xb_cluster_kv_mdm *v)
{
	return dump(json_pack("{s:s, s:I, s:s, s:O}", "device", v->device, "until", (json_int_t)v->until,
			      "node", v->node, "attrs", v->attrs));
}

/* Each attribute {"key": a name, "value": string, bool or number, "expires": >= 0}. */
static bool attrs_ok(json_t *a, char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (!json_is_array(a) || !json_array_size(a) || json_array_size(a) > XB_CLUSTER_KV_ATTRS_MAX) {
		snprintf(err, errlen, "\"attrs\" is not an array of 1 to %d", XB_CLUSTER_KV_ATTRS_MAX);
		return false;
	}
	json_array_foreach(a, i, e) {
		const char *k = json_string_value(json_object_get(e, "key"));
		json_t *v = json_object_get(e, "value"), *x = json_object_get(e, "expires");

		if (!k || !*k || strlen(k) >= XB_CLUSTER_KV_NAME_MAX || strchr(k, '\n') ||
		    !(json_is_string(v) || json_is_boolean(v) || json_is_number(v)) ||
		    (json_is_string(v) && json_string_length(v) > 1024) ||
		    !json_is_integer(x) || json_integer_value(x) < 0) {
			snprintf(err, errlen, "attribute %zu is not {key, value, expires}", i);
			return false;
		}
	}
	return true;
}

int xb_cluster_kv_mdm_decode(const char *val, size_t len, struct xb_cluster_kv_mdm *out, char *err,
			     size_t errlen)
{
	json_t *j = load(val, len, err, errlen);
	const char *dv;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!j)
		return rc;
	dv = json_string_value(json_object_get(j, "device"));
	if (get_int(j, "until", 1, &out->until, err, errlen) && get_node(j, out->node, err, errlen)) {
		if (!dv || !name_ok(dv, strlen(dv), sizeof(out->device)))
			snprintf(err, errlen, "\"device\" is missing or not a name");
		else if (attrs_ok(json_object_get(j, "attrs"), err, errlen)) {
			strcpy(out->device, dv);
			out->attrs = json_incref(json_object_get(j, "attrs"));
			rc = 0;
		}
	}
	json_decref(j);
	return rc;
}

enum xb_cluster_kv_rule xb_cluster_kv_reconcile(int64_t mine, bool has_mine, int64_t store,
						bool has_store)
{
	if (!has_mine)
		return has_store ? XB_CLUSTER_KV_ADOPT : XB_CLUSTER_KV_SAME;
	if (!has_store || mine > store)
		return XB_CLUSTER_KV_PUBLISH;
	return mine == store ? XB_CLUSTER_KV_SAME : XB_CLUSTER_KV_ADOPT;
}

int64_t xb_cluster_kv_bucket(int64_t expires)
{
	if (expires < 0)
		expires = 0;
	return (expires / XB_CLUSTER_KV_BUCKET_S + 1) * XB_CLUSTER_KV_BUCKET_S;
}
