/* Where tunnel events go besides the log (docs/operations.md,
 * "Notifications"): a command and the notification targets, neither ever
 * blocking the daemon's loop.
 *
 *   command  fork + execv of the policy's argv (no shell), the event as one
 *            line of JSON on its stdin, stdout/stderr to /dev/null; at most
 *            XB_ALERT_CHILDREN at once, each killed after
 *            XB_ALERT_CHILD_TIMEOUT_S; reaped on the one-second tick
 *   targets  HTTP(S) POSTs through libcurl's multi interface: its sockets
 *            and its timer live in the epoll set given to xb_alert_new()
 *            (curl_multi_socket_action), host names are resolved by its
 *            threaded resolver, so neither a slow DNS server nor a slow
 *            receiver holds the loop. Each target has its own queue and
 *            retry rule (gateway/health/alert_queue.h) and its payload shape
 *            (gateway/health/alert_payload.h); one request per target at a time,
 *            any 2xx is delivered. TLS is verified (the system's CAs, or
 *            the target's ca_file); no redirects; only http and https.
 *
 * Commands wait in a queue of XB_ALERT_QUEUE; when full, the oldest is
 * dropped and counted.
 */
#ifndef XB_ALERT_H
#define XB_ALERT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define XB_ALERT_QUEUE 64
#define XB_ALERT_CHILDREN 4
#define XB_ALERT_CHILD_TIMEOUT_S 10
#define XB_ALERT_SOCKETS 32	/* libcurl's sockets open at once, all targets */
#define XB_ALERT_RECENT 20	/* events kept for the status page */

struct xb_alert;

struct xb_notify_target;

/* Its sockets and timers are added to epfd with data.ptr pointing into the
 * alert; hand every tag of epfd that is not the caller's to
 * xb_alert_process(). source names this gateway in payloads (NULL: the
 * host name). */
struct xb_alert *xb_alert_new(int epfd, const char *source);
void xb_alert_free(struct xb_alert *a);
/* argv[0..n) (n = 0: no command) and the targets t[0..nt). A target whose
 * type, url, secret, ca_file and headers stay keeps its queue over a
 * reload (its retry rule follows the new policy); others start empty. */
void xb_alert_set(struct xb_alert *a, const char *const *argv, size_t n,
		  const struct xb_notify_target *t, size_t nt);
void xb_alert_event(struct xb_alert *a, json_t *ev);
/* A socket of ours is ready (tag: the epoll data.ptr). */
void xb_alert_process(struct xb_alert *a, void *tag);
/* Once a second: reap and kill children, start queued commands. */
void xb_alert_tick(struct xb_alert *a);

struct xb_alert_stats {
	uint64_t events, commands_run, commands_failed, posts_ok, posts_failed, dropped;
};
void xb_alert_stats(const struct xb_alert *a, struct xb_alert_stats *out);
/* The last XB_ALERT_RECENT events, newest first: a new array. */
json_t *xb_alert_recent(const struct xb_alert *a);

#endif
