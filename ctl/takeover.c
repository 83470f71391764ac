/* xborderctl takeover: what the start queued (docs/control.md, "takeover"). */
#include "ctl/render.h"

#include <inttypes.h>

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

int xb_render_takeover(const struct xb_render *r, json_t *res)
{
	json_t *vip;

	if (!json_is_object(res))
		return -1;
	vip = json_object_get(res, "vip");
	fprintf(r->out, "takeover: %lld device(s) to initiate at %lld/s (%lld known, %lld with a live "
		"session here, %lld not peers or without an endpoint)\n", num(res, "queued"),
		num(res, "rate"), num(res, "offered"), num(res, "live"), num(res, "unknown"));
	fprintf(r->out, "vip: %s%s\n", json_is_string(vip) ? json_string_value(vip) : "none",
		!json_is_string(vip) ? "" : json_is_true(json_object_get(res, "holds_vip"))
		? " (held here)" : " (not held here)");
	return 0;
}
