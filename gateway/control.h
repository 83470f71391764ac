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
 */
#ifndef XB_CONTROL_H
#define XB_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define XB_CTL_DEFAULT_SOCKET "/run/xborder/control.sock"
#define XB_CTL_MAX_REQUEST (64u << 10)	/* bytes of JSON in a request frame */
#define XB_CTL_MAX_RESPONSE (64u << 20)	/* bytes of JSON in a response frame */
#define XB_CTL_MAX_CONNS 64		/* open at once; more are told so and closed */
#define XB_CTL_IDLE_MS 5000		/* a connection making no progress this long is closed */

struct xb_ctl;

/* A handler fills *result (a new reference; NULL means JSON null) and returns
 * 0, or returns -1 and sets *error (malloc'ed, one line) and optionally
 * *errors (a new reference to an array of strings, e.g. FILE:LINE: message).
 * args is the request's array of strings (never NULL, possibly empty),
 * borrowed for the call. Handlers run in the caller's thread. */
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
/* Close every connection and the socket, and unlink the socket file if it is
 * still the one we created. NULL is ignored. */
void xb_ctl_close(struct xb_ctl *c);

#endif
