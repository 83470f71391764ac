/* Notification payloads (gateway/health/alert_payload.h) against golden JSON for
 * each kind, and PagerDuty's trigger/resolve pairing by dedup_key. */
#include <stdlib.h>

#include "gateway/health/alert_payload.h"
#include "tests/lib/check.h"

static char *body(enum xb_alert_kind kind, const char *ev_json, bool *skip)
{
	json_t *ev = json_loads(ev_json, 0, NULL);
	char *s;

	CHECK(ev != NULL);
	s = xb_alert_payload(kind, ev, "gw1", "R0UTINGKEY", skip);
	json_decref(ev);
	return s;
}

static void golden(enum xb_alert_kind kind, const char *ev, const char *want)
{
	bool skip = true;
	char *s = body(kind, ev, &skip);

	CHECK(!skip);
	CHECK(s != NULL);
	CHECK_STR(s, want);
	free(s);
}

#define DOWN "{\"event\":\"state\",\"tunnel\":\"cmi\",\"from\":\"up\",\"to\":\"down\",\"time\":1700000000}"
#define UP "{\"event\":\"state\",\"tunnel\":\"cmi\",\"from\":\"down\",\"to\":\"up\",\"time\":1700000060}"
#define PATH "{\"event\":\"path\",\"path\":\"cn\",\"from\":\"cmi\",\"to\":\"hk\",\"table\":1001,\"time\":1}"

TEST(json_is_the_event)
{
	golden(XB_ALERT_JSON, DOWN,
	       "{\"event\":\"state\",\"from\":\"up\",\"time\":1700000000,\"to\":\"down\",\"tunnel\":\"cmi\"}");
	golden(XB_ALERT_JSON, PATH,
	       "{\"event\":\"path\",\"from\":\"cmi\",\"path\":\"cn\",\"table\":1001,\"time\":1,\"to\":\"hk\"}");
}

TEST(slack_is_one_line_of_text)
{
	golden(XB_ALERT_SLACK, DOWN, "{\"text\":\"xborder gw1: tunnel cmi: up -> down\"}");
	golden(XB_ALERT_SLACK, PATH, "{\"text\":\"xborder gw1: path cn: moved from cmi to hk\"}");
	golden(XB_ALERT_SLACK, "{\"event\":\"rtt_anomaly\",\"tunnel\":\"hk\",\"active\":false}",
	       "{\"text\":\"xborder gw1: rtt_anomaly hk: cleared\"}");
	/* Quotes and control characters are escaped, not pasted. */
	golden(XB_ALERT_SLACK, "{\"event\":\"state\",\"tunnel\":\"a\\\"b\\n\",\"from\":\"up\",\"to\":\"down\"}",
	       "{\"text\":\"xborder gw1: tunnel a\\\"b\\n: up -> down\"}");
}

TEST(pagerduty_trigger_then_resolve_by_dedup_key)
{
	golden(XB_ALERT_PAGERDUTY, DOWN,
	       "{\"dedup_key\":\"xborder/gw1/state/cmi\",\"event_action\":\"trigger\","
	       "\"payload\":{\"custom_details\":{\"event\":\"state\",\"from\":\"up\",\"time\":1700000000,"
	       "\"to\":\"down\",\"tunnel\":\"cmi\"},\"severity\":\"critical\",\"source\":\"gw1\","
	       "\"summary\":\"xborder gw1: tunnel cmi: up -> down\"},\"routing_key\":\"R0UTINGKEY\"}");
	golden(XB_ALERT_PAGERDUTY, UP,
	       "{\"dedup_key\":\"xborder/gw1/state/cmi\",\"event_action\":\"resolve\","
	       "\"routing_key\":\"R0UTINGKEY\"}");
	/* degraded raises a warning under the same key: up clears either. */
	golden(XB_ALERT_PAGERDUTY, "{\"event\":\"state\",\"tunnel\":\"cmi\",\"from\":\"up\",\"to\":\"degraded\"}",
	       "{\"dedup_key\":\"xborder/gw1/state/cmi\",\"event_action\":\"trigger\","
	       "\"payload\":{\"custom_details\":{\"event\":\"state\",\"from\":\"up\",\"to\":\"degraded\","
	       "\"tunnel\":\"cmi\"},\"severity\":\"warning\",\"source\":\"gw1\","
	       "\"summary\":\"xborder gw1: tunnel cmi: up -> degraded\"},\"routing_key\":\"R0UTINGKEY\"}");
	golden(XB_ALERT_PAGERDUTY, "{\"event\":\"slo\",\"rule\":\"office\",\"path\":\"cn\",\"active\":false}",
	       "{\"dedup_key\":\"xborder/gw1/slo/office\",\"event_action\":\"resolve\","
	       "\"routing_key\":\"R0UTINGKEY\"}");
	golden(XB_ALERT_PAGERDUTY, "{\"event\":\"device_anomaly\",\"kind\":\"connects\",\"active\":true}",
	       "{\"dedup_key\":\"xborder/gw1/device_anomaly/connects\",\"event_action\":\"trigger\","
	       "\"payload\":{\"custom_details\":{\"active\":true,\"event\":\"device_anomaly\","
	       "\"kind\":\"connects\"},\"severity\":\"warning\",\"source\":\"gw1\","
	       "\"summary\":\"xborder gw1: device_anomaly connects: raised\"},\"routing_key\":\"R0UTINGKEY\"}");
}

TEST(pagerduty_skips_what_raises_nothing)
{
	bool skip = false;
	char *s = body(XB_ALERT_PAGERDUTY, PATH, &skip);

	CHECK(s == NULL);
	CHECK(skip);
	s = body(XB_ALERT_SLACK, PATH, &skip);
	CHECK(!skip);
	free(s);
}

