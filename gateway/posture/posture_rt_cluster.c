/* What the cluster asks of the posture runtime (posture_rt.h, docs/ha.md
 * "Shared state"): its gate on reports, and reports accepted elsewhere
 * applied here as at start from the store. */
#include "gateway/posture/posture_rt_int.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
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
