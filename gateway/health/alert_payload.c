/* Payloads for the notification targets; see alert_payload.h. */
#include "gateway/health/alert_payload.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *str(const json_t *ev, const char *key)
{
	const char *s = json_string_value(json_object_get(ev, key));

	return s ? s : "";
}

/* What the event is about: a tunnel, a rule, a path or a device kind. */
static const char *subject(const json_t *ev)
{
	static const char *const keys[] = { "tunnel", "rule", "path", "kind" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_is_string(json_object_get(ev, keys[i])))
			return str(ev, keys[i]);
	return "";
}

const char *xb_alert_summary(const json_t *ev, char *buf, size_t len)
{
	const char *event = str(ev, "event");
	const json_t *active = json_object_get(ev, "active");

	if (!strcmp(event, "state"))
		snprintf(buf, len, "tunnel %s: %s -> %s", str(ev, "tunnel"), str(ev, "from"),
			 str(ev, "to"));
	else if (!strcmp(event, "path"))
		snprintf(buf, len, "path %s: moved from %s to %s", str(ev, "path"), str(ev, "from"),
			 str(ev, "to"));
	else if (!strcmp(event, "slo"))
		snprintf(buf, len, "rule %s: availability %.4f %s the SLO of %g%%", str(ev, "rule"),
			 json_real_value(json_object_get(ev, "availability")),
			 json_is_true(active) ? "below" : "back at or above",
			 json_real_value(json_object_get(ev, "slo")));
	else if (json_is_boolean(active))
		snprintf(buf, len, "%s %s: %s", event, subject(ev), json_is_true(active) ? "raised" :
			 "cleared");
	else
		snprintf(buf, len, "%s %s", event, subject(ev));
	return buf;
}

/* trigger, resolve, or NULL when the event raises nothing; severity. */
static const char *pd_action(const json_t *ev, const char **severity)
{
	const char *event = str(ev, "event");
	const json_t *active = json_object_get(ev, "active");

	*severity = "warning";
	if (!strcmp(event, "state")) {
		const char *to = str(ev, "to");

		if (!strcmp(to, "up"))
			return "resolve";
		if (!strcmp(to, "down"))
			*severity = "critical";
		return "trigger";
	}
	if (json_is_boolean(active))
		return json_is_true(active) ? "trigger" : "resolve";
	return NULL;
}

static json_t *pagerduty(const json_t *ev, const char *source, const char *routing_key,
			 bool *skip)
{
	const char *severity, *action = pd_action(ev, &severity);
	char key[512], summary[512];

	if (!action) {
		*skip = true;
		return NULL;
	}
	snprintf(key, sizeof(key), "xborder/%s/%s/%s", source, str(ev, "event"), subject(ev));
	if (!strcmp(action, "resolve"))
		return json_pack("{s:s, s:s, s:s}", "routing_key", routing_key ? routing_key : "",
				 "event_action", action, "dedup_key", key);
	snprintf(summary, sizeof(summary), "xborder %s: %s", source,
		 xb_alert_summary(ev, summary + 256, sizeof(summary) - 256));
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:O}}", "routing_key",
			 routing_key ? routing_key : "", "event_action", action, "dedup_key", key,
			 "payload", "summary", summary, "source", source, "severity", severity,
			 "custom_details", (json_t *)ev);
}

char *xb_alert_payload(enum xb_alert_kind kind, const json_t *ev, const char *source,
		       const char *routing_key, bool *skip)
{
	char line[512], text[640];
	json_t *body = NULL;
	char *s;

	*skip = false;
	switch (kind) {
	case XB_ALERT_JSON:
		return json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
	case XB_ALERT_SLACK:
		snprintf(text, sizeof(text), "xborder %s: %s", source,
			 xb_alert_summary(ev, line, sizeof(line)));
		body = json_pack("{s:s}", "text", text);
		break;
	case XB_ALERT_PAGERDUTY:
		body = pagerduty(ev, source, routing_key, skip);
		break;
	}
	if (!body)
		return NULL;
	s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(body);
	return s;
}
