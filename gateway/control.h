/* The control socket: operators' requests to xborderd over a Unix stream
 * socket, answered by command handlers the daemon registers (docs/control.md).
 *
 * Wire format, both ways: a frame is a 4-byte big-endian length and that many
 * bytes of UTF-8 JSON.
 *
 *   request   {"command":"devices","args":["..."]}          args optional
 *   response  {"ok":true,"result":<any JSON>}
 *             {"ok":false,"error":"one line","errors":["FILE:LINE: msg"]}
 *
 * A connection carries any number of requests in sequence, one response each.
 * A frame that is empty or over the limit, JSON that does not parse, a
 * request that is not an object, has no string "command" or has args other
 * than an array of strings is answered with an error and the connection
 * closed. An unknown command is answered with an error naming the valid ones
 * and the connection stays open.
 *
 * Everything runs in the caller's thread and never blocks: the caller polls
 * xb_ctl_fd() for readability (an epoll fd, so it nests in the daemon's own
 * epoll set) and calls xb_ctl_process(), which accepts, reads, runs handlers,
 * writes what the socket takes and closes connections idle too long. A slow
 * client holds only its own buffers.
 *
 * A handler whose answer needs I/O (etcd, say) does not wait for it: it
 * takes a handle with xb_ctl_defer() and returns XB_CTL_LATER, and the
 * daemon's loop answers with xb_ctl_answer() when the work is done. Until
 * then that connection reads nothing (a next request waits in the socket)
 * and has no idle deadline: the handler's work must bound the wait itself
 * (the prune: cluster.h). A client that closes meanwhile is closed at once
 * and its answer dropped; xb_ctl_close() closes waiting connections like
 * the others; a handle outlives both harmlessly.
 */
#ifndef XB_CONTROL_H
#define XB_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define XB_CTL_DEFAULT_SOCKET "/run/xborder/control.sock"
#define XB_CTL_MAX_REQUEST (64u << 10)	/* bytes of JSON in a request frame */
#define XB_CTL_MAX_RESPONSE (64u << 20)	/* bytes of JSON in a response frame */
#define XB_CTL_MAX_CONNS 64		/* open at once; more are told so and closed */
#define XB_CTL_IDLE_MS 5000		/* a connection making no progress this long is closed */

struct xb_ctl;

/* A handler fills *result (a new reference; NULL means JSON null) and returns
 * 0, or returns -1 and sets *error (malloc'ed, one line) and optionally
 * *errors (a new reference to an array of strings, e.g. FILE:LINE: message),
 * or, having taken a handle with xb_ctl_defer(), returns XB_CTL_LATER and
 * leaves the outputs alone: the answer comes from xb_ctl_answer(). args is
 * the request's array of strings (never NULL, possibly empty), borrowed for
 * the call. Handlers run in the caller's thread and never block. */
#define XB_CTL_LATER 1
typedef int (*xb_ctl_fn)(void *ctx, json_t *args, json_t **result, char **error,
			 json_t **errors);

struct xb_ctl_command {
	const char *name;
	xb_ctl_fn fn;
	const char *help;	/* one line, for docs and `xborderctl -h'; may be NULL */
};

/* Listen on path: mode 0660, owned by the caller's euid (root for the
 * daemon) and group gid ((gid_t)-1 leaves the group alone). A stale socket
 * file is replaced; if a process answers on it, fails with EADDRINUSE. A
 * path that exists and is not a socket is left alone (EEXIST). cmds (n_cmds
 * of them) and ctx must live until xb_ctl_close(). Returns NULL with errno
 * set and the reason logged. */
struct xb_ctl *xb_ctl_open(const char *path, gid_t gid, const struct xb_ctl_command *cmds,
			   size_t n_cmds, void *ctx);
/* Close connections idle (no byte read or written) for ms milliseconds
 * instead of XB_CTL_IDLE_MS; for daemons that want another limit, and for
 * tests that cannot wait five seconds. */
void xb_ctl_set_idle_ms(struct xb_ctl *c, unsigned ms);
/* Readable when xb_ctl_process() has work, including an idle expiry due. */
int xb_ctl_fd(const struct xb_ctl *c);
/* Non-blocking: accept, read, dispatch, write, expire. */
void xb_ctl_process(struct xb_ctl *c);
/* Connections open now (for status and tests). */
size_t xb_ctl_conns(const struct xb_ctl *c);

/* A deferred answer: the connection's slot and that slot's generation
 * (advanced by every close and every answer), so that a handle whose
 * connection has gone names nothing. 0 is no handle. */
typedef uint64_t xb_ctl_handle;
/* Called in a handler: the handle of the request it runs for (0 outside
 * one). The handler must then return XB_CTL_LATER; if it answers at once
 * after all, the handle is void. */
xb_ctl_handle xb_ctl_defer(struct xb_ctl *c);
/* Answer a deferred request as a handler would have: rc 0 with result, or
 * -1 with error (one line, malloc'ed) and errors (array of strings or NULL).
 * Takes result, error and errors in every case. 0 when the answer was
 * queued (and what the socket takes sent), -1 when the handle names nothing
 * any more (the client left, the control socket closed: c may be NULL) and
 * the answer was dropped. Not from inside a handler for its own request. */
int xb_ctl_answer(struct xb_ctl *c, xb_ctl_handle h, int rc, json_t *result, char *error,
		  json_t *errors);
/* Requests waiting for a deferred answer (for tests). */
size_t xb_ctl_deferred(const struct xb_ctl *c);
/* Close every connection and the socket, and unlink the socket file if it is
 * still the one we created. NULL is ignored. */
void xb_ctl_close(struct xb_ctl *c);

#endif
