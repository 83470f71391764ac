/* The control socket server; see control.h and docs/control.md.
 *
 * One epoll set holds the listening socket, a timerfd armed for the earliest
 * idle deadline, and every connection. A connection is in one of three
 * states: reading a request (out == NULL, polled for EPOLLIN), writing a
 * response (out != NULL, polled for EPOLLOUT), or waiting for a deferred
 * answer (deferred, polled for nothing: epoll still reports EPOLLHUP when
 * the client has gone, and the connection is closed then; it has no idle
 * deadline, the handler's own bounds it). It never reads the next request
 * before its response is gone, so a client that does not read stalls only
 * itself, and its buffers are bounded: one request (64 KiB) or one response.
 * Level-triggered epoll: whatever is left unread is reported again.
 *
 * A deferred answer's handle is the slot and the slot's generation, which
 * every close and every answer advances: a handle outlives its connection
 * harmlessly.
 */
#include "gateway/control.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

/* epoll data: these tags, or TAG_CONN + the connection's slot. */
enum { TAG_LISTEN, TAG_TIMER, TAG_CONN };

struct conn {
	int fd;			/* -1: the slot is free */
	pid_t pid;		/* the peer, from SO_PEERCRED, for log lines */
	uint8_t hdr[4];
	size_t hdr_got;
	char *req;		/* the request body, NUL-terminated when complete */
	size_t req_len, req_got;
	char *out;		/* the response frame being written */
	size_t out_len, out_off;
	bool close_after;	/* the request was unusable: close once out is gone */
	bool deferred;		/* its handler answers later (xb_ctl_defer) */
	uint32_t gen;		/* the slot's generation, for handles; kept across closes */
	uint64_t deadline_ns;	/* monotonic; pushed back by every byte moved */
};

struct xb_ctl {
	int lfd, epfd, tfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;		/* the socket file we made, so that close */
	ino_t ino;		/* never unlinks someone else's */
	const struct xb_ctl_command *cmds;
	size_t n_cmds;
	void *ctx;
	uint64_t idle_ns;
	size_t n_conns;
	struct conn conns[XB_CTL_MAX_CONNS];
	struct conn *running;	/* the connection whose handler runs now, for xb_ctl_defer */
	struct log_rl rl_accept;
};

/* --- requests -------------------------------------------------------------- */

static json_t *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *unknown(const struct xb_ctl *c, const char *name)
{
	char list[1024] = "";
	size_t n = 0;

	for (size_t i = 0; i < c->n_cmds && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? " " : "",
				      c->cmds[i].name);
	return fail("unknown command `%.64s'; valid commands: %s", name, list);
}

/* The handler's error as one printable line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* The response frame's JSON for a handler's outcome; consumes result and
 * errors, frees error. */
static json_t *outcome(int rc, json_t *result, char *error, json_t *errors)
{
	json_t *resp;

	if (rc == 0) {
		resp = json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
	} else {
		if (error)
			one_line(error);
		json_decref(result);
		resp = fail("%s", error ? error : "command failed");
		if (resp && json_is_array(errors))
			json_object_set(resp, "errors", errors);
	}
	free(error);
	json_decref(errors);
	return resp;
}

/* NULL when the handler deferred its answer (k->deferred). */
static json_t *run(struct xb_ctl *c, struct conn *k, const struct xb_ctl_command *cmd,
		   json_t *args)
{
	json_t *result = NULL, *errors = NULL;
	char *error = NULL;
	int rc;

	c->running = k;
	rc = cmd->fn(c->ctx, args, &result, &error, &errors);
	c->running = NULL;
	if (rc == XB_CTL_LATER && k->deferred)
		return NULL;
	if (k->deferred) {	/* deferred, then answered now after all: the handle is void */
		k->deferred = false;
		k->gen++;
	}
	if (rc == XB_CTL_LATER) {
		log_warnx("control: `%s' deferred its answer without a handle", cmd->name);
		json_decref(result);
		result = NULL;
		rc = -1;
	}
	return outcome(rc, result, error, errors);
}

/* The response to one request body; *bad when the connection must close;
 * NULL when the answer is deferred. */
static json_t *dispatch(struct xb_ctl *c, struct conn *k, const char *body, size_t len,
			bool *bad)
{
	json_t *req, *cmd, *args, *v, *resp;
	json_error_t jerr;
	size_t i;

	*bad = true;
	req = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req)
		return fail("bad request: %s at byte %d", jerr.text, jerr.position);
	cmd = json_object_get(req, "command");
	args = json_object_get(req, "args");
	if (!json_is_object(req))
		resp = fail("bad request: not a JSON object");
	else if (!json_is_string(cmd))
		resp = fail("bad request: \"command\" is missing or not a string");
	else if (args && !json_is_array(args))
		resp = fail("bad request: \"args\" is not an array");
	else
		resp = NULL;
	json_array_foreach(args, i, v) {
		if (!resp && !json_is_string(v))
			resp = fail("bad request: args[%zu] is not a string", i);
	}
	if (resp)
		goto out;
	*bad = false;
	for (i = 0; i < c->n_cmds; i++)
		if (!strcmp(c->cmds[i].name, json_string_value(cmd)))
			break;
	if (i == c->n_cmds) {
		resp = unknown(c, json_string_value(cmd));
	} else {
		args = args ? json_incref(args) : json_array();
		resp = run(c, k, &c->cmds[i], args);
		json_decref(args);
	}
out:
	json_decref(req);
	return resp;
}

/* The frame for resp (consumed): length and JSON, malloc'ed; NULL when out of
 * memory. A response over the limit becomes an error saying so. */
static char *frame(json_t *resp, size_t *len)
{
	char *js = resp ? json_dumps(resp, JSON_COMPACT) : NULL, *f;
	size_t n = js ? strlen(js) : 0;

	json_decref(resp);
	if (js && n > XB_CTL_MAX_RESPONSE) {
		log_warnx("control: a response of %zu bytes is over the limit", n);
		free(js);
		js = json_dumps(fail("response of %zu bytes is over the %u MiB limit", n,
				     XB_CTL_MAX_RESPONSE >> 20), JSON_COMPACT);
		n = js ? strlen(js) : 0;
	}
	if (!js || !(f = malloc(4 + n))) {
		free(js);
		return NULL;
	}
	uint32_t be = htonl((uint32_t)n);
	memcpy(f, &be, 4);
	memcpy(f + 4, js, n);
	free(js);
	*len = 4 + n;
	return f;
}

/* --- connections ------------------------------------------------------------ */

static int watch(struct xb_ctl *c, struct conn *k, int op)
{
	struct epoll_event ev = {
		.events = k->deferred ? 0 : k->out ? EPOLLOUT : EPOLLIN,
		.data.u64 = TAG_CONN + (uint64_t)(k - c->conns),
	};

	return epoll_ctl(c->epfd, op, k->fd, &ev);
}

static void conn_close(struct xb_ctl *c, struct conn *k, const char *why)
{
	log_debug("control: pid %d: closed (%s)", (int)k->pid, why);
	close(k->fd);	/* also leaves the epoll set */
	free(k->req);
	free(k->out);
	*k = (struct conn){ .fd = -1, .gen = k->gen + 1 };
	c->n_conns--;
}

static void progress(const struct xb_ctl *c, struct conn *k)
{
	k->deadline_ns = clock_mono_ns() + c->idle_ns;
}

static bool conn_write(struct xb_ctl *c, struct conn *k);

/* Queue resp (consumed) as k's response and send what the socket takes now. */
static void respond(struct xb_ctl *c, struct conn *k, json_t *resp, bool close_after)
{
	k->out = frame(resp, &k->out_len);
	k->out_off = 0;
	k->close_after = close_after;
	if (!k->out) {
		conn_close(c, k, "out of memory");
		return;
	}
	if (watch(c, k, EPOLL_CTL_MOD) < 0) {
		log_warn("control: epoll");
		conn_close(c, k, "epoll failed");
		return;
	}
	conn_write(c, k);
}

/* Returns false when k was closed. */
static bool conn_write(struct xb_ctl *c, struct conn *k)
{
	while (k->out_off < k->out_len) {
		ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		if (n < 0) {
			conn_close(c, k, strerror(errno));
			return false;
		}
		k->out_off += (size_t)n;
		progress(c, k);
	}
	free(k->out);
	k->out = NULL;
	if (k->close_after) {
		conn_close(c, k, "bad request");
		return false;
	}
	if (watch(c, k, EPOLL_CTL_MOD) < 0) {
		conn_close(c, k, "epoll failed");
		return false;
	}
	return true;
}

/* Read into buf up to want bytes in all; 1 = done, 0 = more to come, -1 =
 * k was closed (end of stream or error). */
static int fill(struct xb_ctl *c, struct conn *k, void *buf, size_t want, size_t *got)
{
	while (*got < want) {
		ssize_t n = recv(k->fd, (char *)buf + *got, want - *got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			bool mid = *got || k->req;
			conn_close(c, k, n ? strerror(errno) : mid ? "truncated frame" : "end of stream");
			return -1;
		}
		*got += (size_t)n;
		progress(c, k);
	}
	return 1;
}

/* Read what there is of one request; answer it when complete. */
static void conn_read(struct xb_ctl *c, struct conn *k)
{
	bool bad;
	int r;

	if (!k->req) {
		if ((r = fill(c, k, k->hdr, 4, &k->hdr_got)) <= 0)
			return;
		uint32_t be;
		memcpy(&be, k->hdr, 4);
		k->req_len = ntohl(be);
		k->req_got = 0;
		if (k->req_len == 0 || k->req_len > XB_CTL_MAX_REQUEST) {
			respond(c, k, fail("bad request: frame length %zu is not 1 to %u", k->req_len,
					   XB_CTL_MAX_REQUEST), true);
			return;
		}
		if (!(k->req = malloc(k->req_len + 1))) {
			conn_close(c, k, "out of memory");
			return;
		}
	}
	if ((r = fill(c, k, k->req, k->req_len, &k->req_got)) <= 0)
		return;
	k->req[k->req_len] = '\0';
	json_t *resp = dispatch(c, k, k->req, k->req_len, &bad);
	free(k->req);
	k->req = NULL;
	k->hdr_got = 0;
	if (!resp && k->deferred) {
		k->deadline_ns = UINT64_MAX;	/* the handler's deadline bounds the wait */
		if (watch(c, k, EPOLL_CTL_MOD) < 0)
			conn_close(c, k, "epoll failed");
		return;
	}
	respond(c, k, resp, bad);
}

/* Best effort, for a connection we will not serve: one error frame. */
static void refuse(int fd)
{
	size_t len;
	char *f = frame(fail("too many control connections (%d)", XB_CTL_MAX_CONNS), &len);

	if (f && send(fd, f, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusing a connection: %s", strerror(errno));
	free(f);
	close(fd);
}

static void add_conn(struct xb_ctl *c, int fd)
{
	struct ucred cr = { .pid = 0 };
	socklen_t crlen = sizeof(cr);
	struct conn *k = c->conns;

	while (k->fd >= 0)
		k++;	/* a free slot exists: n_conns < XB_CTL_MAX_CONNS */
	*k = (struct conn){ .fd = fd, .gen = k->gen };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0)
		k->pid = cr.pid;
	log_debug("control: connection from pid %d uid %u", (int)cr.pid, (unsigned)cr.uid);
	c->n_conns++;
	progress(c, k);
	if (watch(c, k, EPOLL_CTL_ADD) < 0) {
		log_warn("control: epoll");
		conn_close(c, k, "epoll failed");
	}
}

static void accept_all(struct xb_ctl *c)
{
	/* Bounded: at most a full table's worth of new connections per call. */
	for (int i = 0; i < 2 * XB_CTL_MAX_CONNS; i++) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED &&
			    log_ratelimit(&c->rl_accept))
				log_warn("control: accept on %s", c->path);
			return;
		}
		if (c->n_conns >= XB_CTL_MAX_CONNS)
			refuse(fd);
		else
			add_conn(c, fd);
	}
}

/* --- idle expiry --------------------------------------------------------- */

/* Arm the timer for the earliest deadline, or disarm it. */
static void arm(struct xb_ctl *c)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint64_t first = UINT64_MAX;

	for (size_t i = 0; i < XB_CTL_MAX_CONNS; i++)
		if (c->conns[i].fd >= 0 && c->conns[i].deadline_ns < first)
			first = c->conns[i].deadline_ns;	/* UINT64_MAX: deferred, none */
	if (first != UINT64_MAX)
		its.it_value = clock_ts(first ? first : 1);
	timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void expire(struct xb_ctl *c)
{
	uint64_t now = clock_mono_ns(), ticks;

	if (read(c->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("control: timerfd");
	for (size_t i = 0; i < XB_CTL_MAX_CONNS; i++) {
		struct conn *k = &c->conns[i];
		if (k->fd >= 0 && k->deadline_ns <= now)
			conn_close(c, k, "idle");
	}
}

/* --- public ----------------------------------------------------------------- */

void xb_ctl_process(struct xb_ctl *c)
{
	struct epoll_event ev[XB_CTL_MAX_CONNS + 2];
	int n = epoll_wait(c->epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), 0);

	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;
		struct conn *k;

		if (tag == TAG_LISTEN) {
			accept_all(c);
			continue;
		}
		if (tag == TAG_TIMER)
			continue;	/* expire() below */
		k = &c->conns[tag - TAG_CONN];
		if (k->fd < 0)
			continue;	/* closed earlier in this batch */
		if (k->deferred)	/* only EPOLLHUP, EPOLLERR: the client left */
			conn_close(c, k, "the client left before its answer");
		else if (k->out)
			conn_write(c, k);
		else
			conn_read(c, k);
	}
	expire(c);
	arm(c);
}

/* 0 when path is free: absent, or a socket nobody answers on (removed). */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, err;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (log_warn("control: %s", path), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("control: %s exists and is not a socket; not replacing it", path);
		errno = EEXIST;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return log_warn("control: socket"), -1;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	err = errno;
	close(fd);
	/* EAGAIN: a live listener whose backlog is full. */
	if (r == 0 || err == EAGAIN) {
		log_warnx("control: another process answers on %s; is xborderd running?", path);
		errno = EADDRINUSE;
		return -1;
	}
	if (err != ECONNREFUSED) {
		errno = err;
		return log_warn("control: probing %s", path), -1;
	}
	log_info("control: removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return log_warn("control: unlink %s", path), -1;
	return 0;
}

/* Bind, set the mode and group, then listen: until listen() nobody can
 * connect, so the socket is never reachable with a wider mode than 0660. */
static int listen_on(struct xb_ctl *c, const struct sockaddr_un *sa, gid_t gid)
{
	struct stat st;

	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0)
		return log_warn("control: socket"), -1;
	if (bind(c->lfd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		return log_warn("control: bind %s", c->path), -1;
	if (lstat(c->path, &st) < 0)
		return log_warn("control: %s", c->path), -1;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (chmod(c->path, 0660) < 0)
		return log_warn("control: chmod %s", c->path), -1;
	if (gid != (gid_t)-1 && chown(c->path, (uid_t)-1, gid) < 0)
		return log_warn("control: chown %s to group %u", c->path, (unsigned)gid), -1;
	if (listen(c->lfd, 16) < 0)
		return log_warn("control: listen on %s", c->path), -1;
	return 0;
}

static int add_fd(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

struct xb_ctl *xb_ctl_open(const char *path, gid_t gid, const struct xb_ctl_command *cmds,
			   size_t n_cmds, void *ctx)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xb_ctl *c;
	int err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_warnx("control: socket path %s is too long", path);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	strcpy(sa.sun_path, path);
	strcpy(c->path, path);
	c->lfd = c->epfd = c->tfd = -1;
	c->rl_accept = (struct log_rl)LOG_RL_INIT(1, 5);
	c->cmds = cmds;
	c->n_cmds = n_cmds;
	c->ctx = ctx;
	c->idle_ns = XB_CTL_IDLE_MS * NSEC_PER_MSEC;
	for (size_t i = 0; i < XB_CTL_MAX_CONNS; i++)
		c->conns[i].fd = -1;
	if (clear_stale(path, &sa) < 0) {
		err = errno;
		free(c);
		errno = err;
		return NULL;
	}
	if (listen_on(c, &sa, gid) < 0)
		goto fail;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->epfd < 0 || c->tfd < 0 || add_fd(c->epfd, c->lfd, TAG_LISTEN) < 0 ||
	    add_fd(c->epfd, c->tfd, TAG_TIMER) < 0) {
		log_warn("control: epoll");
		goto fail;
	}
	log_info("control: listening on %s", path);
	return c;
fail:
	err = errno;
	xb_ctl_close(c);
	errno = err;
	return NULL;
}

void xb_ctl_set_idle_ms(struct xb_ctl *c, unsigned ms)
{
	c->idle_ns = ms * NSEC_PER_MSEC;
}

int xb_ctl_fd(const struct xb_ctl *c)
{
	return c->epfd;
}

size_t xb_ctl_conns(const struct xb_ctl *c)
{
	return c->n_conns;
}

xb_ctl_handle xb_ctl_defer(struct xb_ctl *c)
{
	struct conn *k = c ? c->running : NULL;

	if (!k)
		return 0;
	k->deferred = true;
	return (uint64_t)k->gen << 32 | ((uint64_t)(k - c->conns) + 1);
}

static struct conn *by_handle(struct xb_ctl *c, xb_ctl_handle h)
{
	uint64_t slot = (h & 0xffffffffu) - 1;
	struct conn *k;

	if (!c || !h || slot >= XB_CTL_MAX_CONNS)
		return NULL;
	k = &c->conns[slot];
	if (k->fd < 0 || !k->deferred || k->gen != (uint32_t)(h >> 32) || k == c->running)
		return NULL;
	return k;
}

int xb_ctl_answer(struct xb_ctl *c, xb_ctl_handle h, int rc, json_t *result, char *error,
		  json_t *errors)
{
	struct conn *k = by_handle(c, h);

	if (!k) {
		json_decref(result);
		free(error);
		json_decref(errors);
		return -1;
	}
	k->deferred = false;
	k->gen++;
	progress(c, k);
	respond(c, k, outcome(rc, result, error, errors), false);
	arm(c);
	return 0;
}

size_t xb_ctl_deferred(const struct xb_ctl *c)
{
	size_t n = 0;

	for (size_t i = 0; i < XB_CTL_MAX_CONNS; i++)
		n += c->conns[i].fd >= 0 && c->conns[i].deferred;
	return n;
}

void xb_ctl_close(struct xb_ctl *c)
{
	struct stat st;

	if (!c)
		return;
	for (size_t i = 0; i < XB_CTL_MAX_CONNS; i++)
		if (c->conns[i].fd >= 0)
			conn_close(c, &c->conns[i], "shutting down");
	if (c->lfd >= 0) {
		if (c->ino && lstat(c->path, &st) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(c->path);
		close(c->lfd);
	}
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->tfd >= 0)
		close(c->tfd);
	free(c);
}
