/* What the cluster asks of the posture runtime (posture_rt.h, docs/ha.md
 * "Shared state"): its gate on reports, and reports accepted elsewhere
 * applied here as at start from the store. */
#include "gateway/posture/posture_rt_int.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void xb_posture_rt_set_gate(struct xb_posture_rt *r, xb_posture_rt_gate_fn fn, void *ctx)
{
	r->gate = fn;
	r->gate_ctx = ctx;
}

void xb_posture_rt_gate_done(struct xb_posture_rt *r, uint64_t id, unsigned status, const char *msg)
{
	if (r->svc)
		xb_posture_http_gate_done(r->svc, id, status, msg);
}

static void audit_remote(struct xb_posture_rt *r, const char *device, int64_t seq)
{
	json_t *o;

	if (!r->audit)
		return;
	o = json_pack("{s:I, s:s, s:s, s:I}", "at", (json_int_t)(clock_real_ns() / NSEC_PER_MSEC),
		      "event", "cluster report", "device", device, "seq", (json_int_t)seq);
	if (o)
		xb_jsonlog_write(r->audit, o);
	json_decref(o);
}

int xb_posture_rt_remote(struct xb_posture_rt *r, const char *device, int64_t seq,
			 int64_t received_ms, const char *body, size_t len, char *err, size_t errlen)
{
	size_t i = posture_rt_find(r, device);
	struct xb_report *rep;
	struct xb_ptime now;
	int64_t last;
	int rc;

	if (i == SIZE_MAX) {
		snprintf(err, errlen, "not a device of the policy");
		return -ENOENT;
	}
	if ((rc = xb_posture_store_last_seq(r->store, device, &last)) < 0) {
		snprintf(err, errlen, "storage error: %s", xb_posture_store_error(r->store));
		return -EIO;
	}
	if (rc == 1 && seq <= last)
		return 1;
	if (!(rep = xb_posture_report_parse(body, len, err, errlen)))
		return -EINVAL;
	/* The store first: what is enforced is what a restart finds. */
	if (xb_posture_store_put_report(r->store, device, seq, received_ms, body) < 0) {
		snprintf(err, errlen, "storage error: %s", xb_posture_store_error(r->store));
		xb_posture_report_free(rep);
		return -EIO;
	}
	now = posture_rt_now();
	xb_posture_set_report(&r->dev[i].st, rep, now);
	r->dev[i].st.received -= xb_posture_stored_age(received_ms / 1000, now.wall);
	r->dev[i].st.received_wall = received_ms / 1000;
	r->stat.remote++;
	posture_rt_judge(r, i, now, POSTURE_RT_ALL);
	posture_rt_flush(r);
	audit_remote(r, device, seq);	/* after the sets: its time is the enforcement's */
	return 0;
}

void xb_posture_rt_on_push(struct xb_posture_rt *r, xb_posture_rt_push_fn fn, void *ctx)
{
	r->push_fn = fn;
	r->push_ctx = ctx;
}

/* One attribute of a remote push as the store and the state hold it. */
static int remote_attr(struct xb_posture_rt *r, const char *device, const char *source, json_t *a,
		       struct xb_attr *out)
{
	json_t *v = json_object_get(a, "value");
	char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	struct xb_posture_store_attr pa = {
		.device = device, .key = json_string_value(json_object_get(a, "key")), .value = text,
		.expires_at = json_integer_value(json_object_get(a, "expires")) * 1000, .source = source,
	};
	int rc = text && pa.key && (out->key = strdup(pa.key)) ? 0 : -ENOMEM;

	if (!rc && xb_posture_store_put_attr(r->store, &pa) < 0)
		rc = -EIO;
	out->expires = pa.expires_at / 1000;
	if (json_is_string(v))
		out->value = (struct xb_value){ .type = XB_VAL_STR, .str = strdup(json_string_value(v)) };
	else if (json_is_boolean(v))
		out->value = (struct xb_value){ .type = XB_VAL_BOOL, .b = json_is_true(v) };
	else
		out->value = (struct xb_value){ .type = XB_VAL_NUM, .num = json_number_value(v) };
	if (!rc && out->value.type == XB_VAL_STR && !out->value.str)
		rc = -ENOMEM;
	free(text);
	return rc;
}

int xb_posture_rt_remote_push(struct xb_posture_rt *r, const char *device, const char *key,
			      const char *nonce, int64_t until, json_t *attrs, char *err, size_t errlen)
{
	size_t i = posture_rt_find(r, device), n = json_array_size(attrs);
	struct xb_mdm_push m = { .until = until };
	struct xb_ptime now = posture_rt_now();
	int rc = 0;

	if (i == SIZE_MAX) {
		snprintf(err, errlen, "not a device of the policy");
		return -ENOENT;
	}
	/* The replay id first: a replay of this push to this gateway is refused
	 * from now on, and after a restart (the store). */
	if (xb_posture_mdm_replay_add(&r->replay, key, nonce, until, now.wall) < 0 ||
	    xb_posture_store_put_nonce(r->store, key, nonce, until * 1000) < 0) {
		snprintf(err, errlen, "the replay cache is full or the store fails");
		return -EIO;
	}
	if (!(m.attrs = calloc(n ? n : 1, sizeof(*m.attrs)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(m.device, sizeof(m.device), "%s", device);
	for (size_t k = 0; k < n && !rc; k++, m.n_attrs++)
		rc = remote_attr(r, device, key, json_array_get(attrs, k), &m.attrs[k]);
	if (!rc && xb_posture_push(&r->dev[i].st, &m, now.wall) < 0)
		rc = -ENOMEM;
	xb_posture_mdm_push_free(&m);
	if (rc) {
		snprintf(err, errlen, "%s", rc == -EIO ? "storage error" : "out of memory");
		return rc;
	}
	r->stat.pushes++;
	posture_rt_judge(r, i, now, POSTURE_RT_ALL);
	posture_rt_flush(r);
	return 0;
}
