/* Where tunnel events go besides the log (docs/probing.md,
 * "Notifications"): a command and/or a webhook, neither ever blocking the
 * daemon's loop.
 *
 *   command  fork + execv of the policy's argv (no shell), the event as one
 *            line of JSON on its stdin, stdout/stderr to /dev/null; at most
 *            XB_ALERT_CHILDREN at once, each killed after
 *            XB_ALERT_CHILD_TIMEOUT_S; reaped on the one-second tick
 *   webhook  HTTP/1.1 POST of the JSON (Content-Type: application/json) over
 *            a non-blocking TCP socket, plain http to a numeric address;
 *            one request at a time, any 2xx is delivered; otherwise retried
 *            after 1, 2, 4 s (XB_ALERT_TRIES in all), each try bounded by
 *            XB_ALERT_HTTP_TIMEOUT_S
 *
 * Events wait in a queue of XB_ALERT_QUEUE per destination; when full, the
 * oldest is dropped and counted.
 */
#ifndef XB_ALERT_H
#define XB_ALERT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define XB_ALERT_QUEUE 64
#define XB_ALERT_CHILDREN 4
#define XB_ALERT_CHILD_TIMEOUT_S 10
#define XB_ALERT_TRIES 4
#define XB_ALERT_HTTP_TIMEOUT_S 5
#define XB_ALERT_RECENT 20	/* events kept for the status page */

struct xb_alert;

/* Its sockets are added to epfd with data.ptr pointing into the alert. */
struct xb_alert *xb_alert_new(int epfd);
void xb_alert_free(struct xb_alert *a);
/* argv[0..n) (n = 0: no command), webhook URL or NULL. */
void xb_alert_set(struct xb_alert *a, const char *const *argv, size_t n, const char *webhook);
void xb_alert_event(struct xb_alert *a, json_t *ev);
/* A socket of ours is ready (tag: the epoll data.ptr). */
void xb_alert_process(struct xb_alert *a, void *tag);
/* Once a second: reap and kill children, start queued work, retries. */
void xb_alert_tick(struct xb_alert *a);

struct xb_alert_stats {
	uint64_t events, commands_run, commands_failed, posts_ok, posts_failed, dropped;
};
void xb_alert_stats(const struct xb_alert *a, struct xb_alert_stats *out);
/* The last XB_ALERT_RECENT events, newest first: a new array. */
json_t *xb_alert_recent(const struct xb_alert *a);

#endif
