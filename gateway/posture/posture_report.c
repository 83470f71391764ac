/* Untrusted posture input: the device report and the MDM push, both JSON
 * (docs/posture.md has the formats).
 *
 * Strict where it matters: every known key has one type, every string at
 * most XB_REPORT_STR_MAX bytes without NUL, every list bounded, duplicate
 * keys refused (two readers could otherwise see two values). Unknown keys
 * are ignored, so that a newer agent can add fields without breaking an
 * older gateway; they still count against the body size limit.
 *
 * An MDM push is verified in this order, and nothing is recorded before
 * the last step: parse, known key, Ed25519 signature over the exact body
 * bytes, time within XB_MDM_WINDOW, device in the policy, nonce not seen
 * (then remembered until its time leaves the window).
 */
#include "gateway/posture/posture.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parsing context: the first error wins, and with it the refusal of
 * the step that was being checked (stage; xb_posture_mdm_verify sets it). */
struct jp {
	char *err;
	size_t len;
	bool failed;
	enum xb_mdm_refusal stage, why;
};

__attribute__((format(printf, 2, 3)))
static bool fail(struct jp *j, const char *fmt, ...)
{
	va_list ap;

	if (j->failed)
		return false;
	j->failed = true;
	j->why = j->stage ? j->stage : XB_MDM_MALFORMED;
	va_start(ap, fmt);
	vsnprintf(j->err, j->len, fmt, ap);
	va_end(ap);
	return false;
}

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* A string within limits, copied; NULL (failed) otherwise. */
static char *str(struct jp *j, const json_t *v, const char *path)
{
	char *s;

	if (!json_is_string(v))
		return fail(j, "%s: expected a string, not %s", path, jtype(v)), NULL;
	if (json_string_length(v) > XB_REPORT_STR_MAX)
		return fail(j, "%s: longer than %d bytes", path, XB_REPORT_STR_MAX), NULL;
	if (!(s = strdup(json_string_value(v))))
		fail(j, "out of memory");
	return s;
}

/* An optional string member: true when absent or good. */
static bool opt_str(struct jp *j, const json_t *o, const char *key, const char *path, char **out)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return true;
	return (*out = str(j, v, path)) != NULL;
}

static bool opt_bool(struct jp *j, const json_t *o, const char *key, const char *path,
		     enum xb_tri *out)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return true;
	if (!json_is_boolean(v))
		return fail(j, "%s: expected true or false, not %s", path, jtype(v));
	*out = json_is_true(v) ? XB_TRUE : XB_FALSE;
	return true;
}

static bool integer(struct jp *j, const json_t *o, const char *key, int64_t lo, int64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return fail(j, "%s: missing", key);
	if (!json_is_integer(v))
		return fail(j, "%s: expected an integer, not %s", key, jtype(v));
	if (json_integer_value(v) < lo)
		return fail(j, "%s: must be at least %lld", key, (long long)lo);
	*out = json_integer_value(v);
	return true;
}

/* Hex of 2..XB_NONCE_MAX digits, stored in lower case. */
static bool nonce(struct jp *j, const json_t *o, size_t min, char out[static XB_NONCE_MAX + 1])
{
	const json_t *v = json_object_get(o, "nonce");
	const char *s;
	size_t n;

	if (!v)
		return fail(j, "nonce: missing");
	if (!json_is_string(v))
		return fail(j, "nonce: expected a string, not %s", jtype(v));
	s = json_string_value(v);
	n = json_string_length(v);
	if (n < min || n > XB_NONCE_MAX || n % 2)
		return fail(j, "nonce: expected %zu-%d hex digits", min, XB_NONCE_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return fail(j, "nonce: expected hex digits");
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[n] = '\0';
	return true;
}

static bool value(struct jp *j, const json_t *v, const char *path, struct xb_value *out)
{
	if (json_is_string(v)) {
		out->type = XB_VAL_STR;
		return (out->str = str(j, v, path)) != NULL;
	}
	if (json_is_number(v)) {
		*out = (struct xb_value){ .type = XB_VAL_NUM, .num = json_number_value(v) };
		return true;
	}
	if (json_is_boolean(v)) {
		*out = (struct xb_value){ .type = XB_VAL_BOOL, .b = json_is_true(v) };
		return true;
	}
	return fail(j, "%s: expected a string, a number or a boolean, not %s", path, jtype(v));
}

static bool os(struct jp *j, const json_t *root, struct xb_report *r)
{
	const json_t *o = json_object_get(root, "os"), *fam;
	char *family;

	if (!o)
		return fail(j, "os: missing");
	if (!json_is_object(o))
		return fail(j, "os: expected an object, not %s", jtype(o));
	if (!(fam = json_object_get(o, "family")))
		return fail(j, "os.family: missing");
	if (!(family = str(j, fam, "os.family")))
		return false;
	r->platform = xb_platform_parse(family);
	free(family);
	if (r->platform < 0)
		return fail(j, "os.family: not one of linux, macos, windows, ios, android");
	return opt_str(j, o, "version", "os.version", &r->os_version) &&
	       opt_str(j, o, "kernel", "os.kernel", &r->os_kernel) &&
	       opt_str(j, o, "name", "os.name", &r->os_name);
}

/* An optional object member; NULL when absent or (failed) not an object. */
static const json_t *object(struct jp *j, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (v && !json_is_object(v))
		return fail(j, "%s: expected an object, not %s", key, jtype(v)), NULL;
	return v;
}

/* An optional array member of at most max elements. */
static const json_t *array(struct jp *j, const json_t *o, const char *key, const char *path,
			   size_t max)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return NULL;
	if (!json_is_array(v))
		return fail(j, "%s: expected an array, not %s", path, jtype(v)), NULL;
	if (json_array_size(v) > max)
		return fail(j, "%s: more than %zu elements", path, max), NULL;
	return v;
}

static bool disk(struct jp *j, const json_t *root, struct xb_report *r)
{
	const json_t *o = object(j, root, "disk_encryption"), *vols, *e;
	char path[64];
	size_t i;

	if (!o)
		return !j->failed;
	if (!opt_bool(j, o, "system", "disk_encryption.system", &r->disk_system))
		return false;
	vols = array(j, o, "volumes", "disk_encryption.volumes", XB_REPORT_VOLUMES_MAX);
	if (!vols || !(r->volumes = calloc(json_array_size(vols) + 1, sizeof(*r->volumes))))
		return vols ? fail(j, "out of memory") : !j->failed;
	json_array_foreach(vols, i, e) {
		struct xb_report_volume *v = &r->volumes[r->n_volumes];
		enum xb_tri enc = XB_UNSET;

		snprintf(path, sizeof(path), "disk_encryption.volumes[%zu]", i);
		if (!json_is_object(e))
			return fail(j, "%s: expected an object, not %s", path, jtype(e));
		if (!json_object_get(e, "mount") || !json_object_get(e, "encrypted"))
			return fail(j, "%s: needs mount and encrypted", path);
		/* Counted as soon as mount is ours, so that a bad "encrypted"
		 * leaves it to xb_posture_report_free(). */
		if (!opt_str(j, e, "mount", path, &v->mount))
			return false;
		r->n_volumes++;
		if (!opt_bool(j, e, "encrypted", path, &enc))
			return false;
		v->encrypted = enc == XB_TRUE;
	}
	return true;
}

static int cmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool processes(struct jp *j, const json_t *root, struct xb_report *r)
{
	const json_t *v = array(j, root, "processes", "processes", XB_REPORT_PROCS_MAX), *e;
	char path[32];
	size_t i;

	if (!v)
		return !j->failed;
	r->has_processes = true;
	if (!(r->processes = calloc(json_array_size(v) + 1, sizeof(char *))))
		return fail(j, "out of memory");
	json_array_foreach(v, i, e) {
		snprintf(path, sizeof(path), "processes[%zu]", i);
		if (!(r->processes[i] = str(j, e, path)))
			return false;
		r->n_processes++;
	}
	qsort(r->processes, r->n_processes, sizeof(char *), cmp_ptr);
	return true;
}

static bool sha256(struct jp *j, const json_t *v, const char *path, uint8_t out[static 32])
{
	size_t n;

	if (!json_is_string(v))
		return fail(j, "%s: expected a string, not %s", path, jtype(v));
	if (json_string_length(v) != 64 ||
	    sodium_hex2bin(out, 32, json_string_value(v), 64, NULL, &n, NULL) || n != 32)
		return fail(j, "%s: expected 64 hex digits", path);
	return true;
}

static bool files(struct jp *j, const json_t *root, struct xb_report *r)
{
	const json_t *v = array(j, root, "files", "files", XB_REPORT_FILES_MAX), *e, *h;
	char path[48];
	size_t i;

	if (!v)
		return !j->failed;
	r->has_files = true;
	if (!(r->files = calloc(json_array_size(v) + 1, sizeof(*r->files))))
		return fail(j, "out of memory");
	json_array_foreach(v, i, e) {
		struct xb_report_file *f = &r->files[i];

		snprintf(path, sizeof(path), "files[%zu]", i);
		if (!json_is_object(e))
			return fail(j, "%s: expected an object, not %s", path, jtype(e));
		if (!json_object_get(e, "path"))
			return fail(j, "%s.path: missing", path);
		if (!opt_str(j, e, "path", "files[].path", &f->path))
			return false;
		r->n_files++;
		strcat(path, ".sha256");
		if ((h = json_object_get(e, "sha256")) && !(f->has_sha256 = sha256(j, h, path, f->sha256)))
			return false;
	}
	return true;
}

static bool attributes(struct jp *j, const json_t *root, struct xb_report *r)
{
	const json_t *o = object(j, root, "attributes"), *v;
	const char *key;
	char path[64];

	if (!o)
		return !j->failed;
	if (json_object_size(o) > XB_REPORT_ATTRS_MAX)
		return fail(j, "attributes: more than %d", XB_REPORT_ATTRS_MAX);
	if (!(r->attrs = calloc(json_object_size(o) + 1, sizeof(*r->attrs))))
		return fail(j, "out of memory");
	json_object_foreach((json_t *)o, key, v) {
		struct xb_attr *a = &r->attrs[r->n_attrs];

		snprintf(path, sizeof(path), "attributes.%.40s", key);
		if (!*key || strlen(key) > XB_REPORT_STR_MAX)
			return fail(j, "attributes: a key is empty or longer than %d bytes",
				    XB_REPORT_STR_MAX);
		if (!(a->key = strdup(key)))
			return fail(j, "out of memory");
		r->n_attrs++;
		if (!value(j, v, path, &a->value))
			return false;
	}
	return true;
}

/* The JSON object in body, or NULL (failed). */
static json_t *load(struct jp *j, const char *body, size_t len)
{
	json_error_t e;
	json_t *root;

	if (len > XB_REPORT_BODY_MAX)
		return fail(j, "body: larger than %d bytes", XB_REPORT_BODY_MAX), NULL;
	if (!(root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e)))
		return fail(j, "body: not JSON: %s (at byte %d)", e.text, e.position), NULL;
	if (!json_is_object(root)) {
		fail(j, "body: expected an object, not %s", jtype(root));
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The typed report in root (an object), or NULL (failed). */
static struct xb_report *report(struct jp *j, const json_t *root)
{
	struct xb_report *r = calloc(1, sizeof(*r));
	const json_t *agent;
	int64_t seq;

	if (!r)
		return fail(j, "out of memory"), NULL;
	if (!json_is_object(root))
		fail(j, "body: expected an object, not %s", jtype(root));
	else if (integer(j, root, "seq", 0, &seq) && nonce(j, root, 2, r->nonce) &&
		 integer(j, root, "time", 0, &r->time) && os(j, root, r)) {
		r->seq = (uint64_t)seq;
		if ((agent = object(j, root, "agent")))
			opt_str(j, agent, "version", "agent.version", &r->agent_version);
	}
	/* Each step does nothing once one has failed. */
	if (!j->failed && disk(j, root, r))
		opt_bool(j, root, "firewall", "firewall", &r->firewall);
	if (!j->failed && opt_bool(j, root, "screen_lock", "screen_lock", &r->screen_lock))
		opt_str(j, root, "serial", "serial", &r->serial);
	if (!j->failed && processes(j, root, r) && files(j, root, r))
		attributes(j, root, r);
	if (!j->failed)
		return r;
	xb_posture_report_free(r);
	return NULL;
}

struct xb_report *xb_posture_report_from_json(const json_t *root, char *err, size_t errlen)
{
	struct jp j = { err, errlen, false, XB_MDM_OK, XB_MDM_OK };

	return report(&j, root);
}

struct xb_report *xb_posture_report_parse(const char *body, size_t len, char *err, size_t errlen)
{
	struct jp j = { err, errlen, false, XB_MDM_OK, XB_MDM_OK };
	json_t *root = load(&j, body, len);
	struct xb_report *r = root ? report(&j, root) : NULL;

	json_decref(root);
	return r;
}

void xb_posture_report_free(struct xb_report *r)
{
	if (!r)
		return;
	free(r->os_version);
	free(r->os_kernel);
	free(r->os_name);
	free(r->agent_version);
	for (size_t i = 0; i < r->n_volumes; i++)
		free(r->volumes[i].mount);
	free(r->volumes);
	free(r->serial);
	for (size_t i = 0; i < r->n_processes; i++)
		free(r->processes[i]);
	free(r->processes);
	for (size_t i = 0; i < r->n_files; i++)
		free(r->files[i].path);
	free(r->files);
	for (size_t i = 0; i < r->n_attrs; i++) {
		free(r->attrs[i].key);
		free(r->attrs[i].value.str);
	}
	free(r->attrs);
	free(r);
}

/* MDM pushes. */

/* { "value": V, "expires": T } for each key; those expired at now are
 * dropped. */
static bool push_attrs(struct jp *j, const json_t *o, int64_t now, struct xb_mdm_push *m)
{
	const json_t *v;
	const char *key;
	char path[64];
	int64_t exp;

	if (!o)
		return fail(j, "attributes: missing");
	if (!json_is_object(o))
		return fail(j, "attributes: expected an object, not %s", jtype(o));
	if (json_object_size(o) > XB_REPORT_ATTRS_MAX)
		return fail(j, "attributes: more than %d", XB_REPORT_ATTRS_MAX);
	if (!(m->attrs = calloc(json_object_size(o) + 1, sizeof(*m->attrs))))
		return fail(j, "out of memory");
	json_object_foreach((json_t *)o, key, v) {
		struct xb_attr *a = &m->attrs[m->n_attrs];

		snprintf(path, sizeof(path), "attributes.%.40s", key);
		if (!*key || strlen(key) > XB_REPORT_STR_MAX)
			return fail(j, "attributes: a key is empty or longer than %d bytes",
				    XB_REPORT_STR_MAX);
		if (!json_is_object(v))
			return fail(j, "%s: expected an object, not %s", path, jtype(v));
		if (!json_object_get(v, "value"))
			return fail(j, "%s.value: missing", path);
		if (!integer(j, v, "expires", 1, &exp))
			return fail(j, "%s: expires: a Unix time is required", path);
		if (exp <= now)
			continue;
		if (!(a->key = strdup(key)))
			return fail(j, "out of memory");
		a->expires = exp;
		m->n_attrs++;
		strcat(path, ".value");
		if (!value(j, json_object_get(v, "value"), path, &a->value))
			return false;
	}
	return true;
}

static bool signature_ok(struct jp *j, const struct xb_mdm_key *k, const char *body, size_t len,
			 const char *sig_b64)
{
	uint8_t sig[crypto_sign_BYTES];
	const char *end;
	size_t n;

	if (!sig_b64 || sodium_base642bin(sig, sizeof(sig), sig_b64, strlen(sig_b64), NULL, &n,
					  &end, sodium_base64_VARIANT_ORIGINAL) ||
	    *end || n != sizeof(sig))
		return fail(j, "signature: not a base64 Ed25519 signature (64 bytes)");
	if (crypto_sign_verify_detached(sig, (const unsigned char *)body, len, k->public_key))
		return fail(j, "signature: does not verify with key \"%s\"", k->name);
	return true;
}

/* Forgets nonces whose time has left the window; then whether (key, n)
 * is still remembered. */
static bool replayed(struct xb_mdm_replay *rc, const char *key, const char *n, int64_t now)
{
	size_t k = 0;
	bool seen = false;

	for (size_t i = 0; i < rc->n; i++) {
		if (rc->v[i].until < now)
			continue;
		rc->v[k++] = rc->v[i];
		seen |= !strcmp(rc->v[i].key, key) && !strcmp(rc->v[i].nonce, n);
	}
	rc->n = k;
	return seen;
}

static bool remember(struct jp *j, struct xb_mdm_replay *rc, const char *key, const char *n,
		     int64_t until)
{
	struct xb_mdm_nonce *e;

	if (rc->n >= XB_MDM_REPLAY_MAX)
		return fail(j, "nonce: %d pushes within %d s; refused until older ones expire",
			    XB_MDM_REPLAY_MAX, XB_MDM_WINDOW);
	if (!rc->v && !(rc->v = calloc(XB_MDM_REPLAY_MAX, sizeof(*rc->v))))
		return fail(j, "out of memory");
	e = &rc->v[rc->n++];
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->nonce, sizeof(e->nonce), "%s", n);
	e->until = until;
	return true;
}

/* key, signature, time, device; the nonce is read into n. */
static bool push_header(struct jp *j, const struct xb_policy *p, const json_t *root,
			const char *body, size_t len, const char *sig, int64_t now,
			struct xb_mdm_push *m, int64_t *t, char n[static XB_NONCE_MAX + 1])
{
	const json_t *v = json_object_get(root, "key");
	char *s;

	j->stage = XB_MDM_FORBIDDEN;		/* who signed it, and when */
	if (!v)
		return fail(j, "key: missing");
	if (!(s = str(j, v, "key")))
		return false;
	m->key = xb_policy_mdm_key_by_name(p, s);
	if (!m->key)
		fail(j, "key: \"%.64s\" is not in the policy's mdm_keys", s);
	free(s);
	if (!m->key || !signature_ok(j, m->key, body, len, sig) || !integer(j, root, "time", 0, t))
		return false;
	if (*t < now - XB_MDM_WINDOW || *t > now + XB_MDM_WINDOW)
		return fail(j, "time: %lld is %lld s from the gateway's clock (at most %d)",
			    (long long)*t, (long long)(*t > now ? *t - now : now - *t),
			    XB_MDM_WINDOW);
	j->stage = XB_MDM_MALFORMED;
	if (!nonce(j, root, 16, n))
		return false;
	j->stage = XB_MDM_NO_DEVICE;
	if (!(v = json_object_get(root, "device")))
		return fail(j, "device: missing");
	if (!(s = str(j, v, "device")))
		return false;
	snprintf(m->device, sizeof(m->device), "%s", s);
	if (strlen(s) > XB_NAME_MAX || !xb_policy_device_by_name(p, s))
		fail(j, "device: \"%.64s\" is not in the policy", s);
	free(s);
	j->stage = XB_MDM_MALFORMED;
	return !j->failed;
}

enum xb_mdm_refusal xb_posture_mdm_verify(const struct xb_policy *p, struct xb_mdm_replay *rc,
				  const char *body, size_t len, const char *sig_b64, int64_t now,
				  struct xb_mdm_push *out, char *err, size_t errlen)
{
	struct jp j = { err, errlen, false, XB_MDM_MALFORMED, XB_MDM_OK };
	char n[XB_NONCE_MAX + 1];
	json_t *root = load(&j, body, len);
	int64_t t;

	memset(out, 0, sizeof(*out));
	if (root && push_header(&j, p, root, body, len, sig_b64, now, out, &t, n) &&
	    push_attrs(&j, json_object_get(root, "attributes"), now, out)) {
		if (replayed(rc, out->key->name, n, now)) {
			j.stage = XB_MDM_REPLAYED;
			fail(&j, "nonce: already used within the last %d s", 2 * XB_MDM_WINDOW);
		} else if (remember(&j, rc, out->key->name, n, t + XB_MDM_WINDOW)) {
			snprintf(out->nonce, sizeof(out->nonce), "%s", n);
			out->until = t + XB_MDM_WINDOW;
		}
	}
	json_decref(root);
	if (!j.failed)
		return XB_MDM_OK;
	xb_posture_mdm_push_free(out);
	return j.why;
}

int xb_posture_mdm_replay_add(struct xb_mdm_replay *rc, const char *key, const char *nonce,
		      int64_t until, int64_t now)
{
	struct jp j = { NULL, 0, false, XB_MDM_OK, XB_MDM_OK };

	if (until < now || replayed(rc, key, nonce, now))
		return 0;
	return remember(&j, rc, key, nonce, until) ? 0 : -1;
}

void xb_posture_mdm_replay_forget(struct xb_mdm_replay *rc, const char *key, const char *nonce)
{
	for (size_t i = 0; i < rc->n; i++) {
		if (!strcmp(rc->v[i].key, key) && !strcmp(rc->v[i].nonce, nonce)) {
			rc->v[i] = rc->v[--rc->n];
			return;
		}
	}
}

void xb_posture_mdm_replay_free(struct xb_mdm_replay *rc)
{
	free(rc->v);
	rc->v = NULL;
	rc->n = 0;
}
