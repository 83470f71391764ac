/* What a notification target receives for one event (docs/operations.md,
 * "Notifications"). Pure: the same event gives the same bytes.
 *
 *   json       the event itself, {"event": ..., "time": ..., ...}
 *   slack      {"text": "xborder SOURCE: ONE LINE"} (Slack and the many
 *              receivers that take its incoming-webhook shape)
 *   pagerduty  Events API v2: {"routing_key", "event_action", "dedup_key",
 *              "payload": {"summary", "source", "severity",
 *              "custom_details"}}. An event that raises something (a
 *              tunnel down or degraded, an anomaly or an SLO breach with
 *              "active": true) triggers; the one that clears it (state
 *              "up", "active": false) resolves the same dedup_key,
 *              "xborder/SOURCE/EVENT/SUBJECT". Events that raise nothing
 *              (a path moved) are not sent to PagerDuty.
 *
 * All keys sorted, compact: the bytes the unit tests compare.
 */
#ifndef XB_ALERT_PAYLOAD_H
#define XB_ALERT_PAYLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum xb_alert_kind { XB_ALERT_JSON, XB_ALERT_SLACK, XB_ALERT_PAGERDUTY };

/* The body for ev, malloc'ed; NULL with *skip true when this kind does not
 * take ev, NULL with *skip false on no memory. source names this gateway
 * (its host name); routing_key is PagerDuty's (a secret, in the body only). */
char *xb_alert_payload(enum xb_alert_kind kind, const json_t *ev, const char *source,
		       const char *routing_key, bool *skip);

/* One line for people: "tunnel cmi: up -> down". buf is returned. */
const char *xb_alert_summary(const json_t *ev, char *buf, size_t len);

#endif
