/* Event delivery to a command and a webhook; see alert.h. */
#include "gateway/alert.h"
#include "common/log.h"
#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct queue {
	char *v[XB_ALERT_QUEUE];
	size_t head, n;
};

struct child {
	pid_t pid;
	time_t started;
};

struct xb_alert {
	int epfd;
	char **argv;
	size_t argc;
	struct queue cmdq, webq;
	struct child kids[XB_ALERT_CHILDREN];
	/* the webhook */
	char *url;
	union wg_sockaddr addr;
	const char *path;
	int fd;				/* -1: no request in flight */
	char *req;			/* the request, and how much is sent */
	size_t req_len, req_off;
	char resp[64];
	size_t resp_len;
	time_t started, retry_at;
	unsigned tries;
	struct xb_alert_stats st;
	json_t *recent[XB_ALERT_RECENT];	/* a ring; next at n_recent % size */
	size_t n_recent;
};

static void q_push(struct xb_alert *a, struct queue *q, char *s)
{
	if (q->n == XB_ALERT_QUEUE) {
		free(q->v[q->head]);
		q->head = (q->head + 1) % XB_ALERT_QUEUE;
		q->n--;
		a->st.dropped++;
	}
	q->v[(q->head + q->n++) % XB_ALERT_QUEUE] = s;
}

static char *q_pop(struct queue *q)
{
	char *s;

	if (!q->n)
		return NULL;
	s = q->v[q->head];
	q->head = (q->head + 1) % XB_ALERT_QUEUE;
	q->n--;
	return s;
}

static void q_clear(struct queue *q)
{
	char *s;

	while ((s = q_pop(q)))
		free(s);
}

struct xb_alert *xb_alert_new(int epfd)
{
	struct xb_alert *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->epfd = epfd;
	a->fd = -1;
	return a;
}

static void web_close(struct xb_alert *a)
{
	if (a->fd >= 0)
		close(a->fd);	/* leaves the epoll set with it */
	a->fd = -1;
	a->resp_len = 0;
}

static void free_argv(struct xb_alert *a)
{
	for (size_t i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}

void xb_alert_free(struct xb_alert *a)
{
	if (!a)
		return;
	for (int i = 0; i < XB_ALERT_CHILDREN; i++)
		if (a->kids[i].pid > 0) {
			kill(a->kids[i].pid, SIGKILL);
			waitpid(a->kids[i].pid, NULL, 0);
		}
	web_close(a);
	for (size_t i = 0; i < XB_ALERT_RECENT; i++)
		json_decref(a->recent[i]);
	free(a->req);
	free(a->url);
	free_argv(a);
	q_clear(&a->cmdq);
	q_clear(&a->webq);
	free(a);
}

void xb_alert_set(struct xb_alert *a, const char *const *argv, size_t n, const char *webhook)
{
	free_argv(a);
	if (n && (a->argv = calloc(n + 1, sizeof(char *)))) {
		for (size_t i = 0; i < n; i++)
			a->argv[a->argc++] = strdup(argv[i]);
	}
	if (!webhook || !a->url || strcmp(webhook, a->url)) {
		free(a->url);
		a->url = NULL;
		q_clear(&a->webq);
		if (webhook && (a->url = strdup(webhook)) &&
		    !xb_webhook_parse(a->url, &a->addr, &a->path)) {
			free(a->url);
			a->url = NULL;
		}
	}
}

/* ---- the command ---- */

static pid_t spawn(struct xb_alert *a, const char *json)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) == 0) {
		int null = open("/dev/null", O_RDWR);
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);	/* the daemon blocks some */
		dup2(p[0], 0);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(a->argv[0], a->argv);
		_exit(127);
	}
	close(p[0]);
	/* One event is far below the pipe's 64 KiB: this write does not block. */
	if (pid > 0 && (write(p[1], json, strlen(json)) < 0 || write(p[1], "\n", 1) < 0))
		log_warn("notify_command: writing the event");
	close(p[1]);
	return pid;
}

static void run_commands(struct xb_alert *a)
{
	time_t now = time(NULL);

	for (int i = 0; i < XB_ALERT_CHILDREN; i++) {
		struct child *k = &a->kids[i];
		int status;

		if (k->pid > 0 && waitpid(k->pid, &status, WNOHANG) == k->pid) {
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				a->st.commands_failed++;
				log_warnx("notify_command %s: pid %d ended with status %d", a->argv ? a->argv[0] : "?",
					  (int)k->pid, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			}
			k->pid = 0;
		} else if (k->pid > 0 && now - k->started >= XB_ALERT_CHILD_TIMEOUT_S) {
			log_warnx("notify_command: pid %d still runs after %d s; killing it", (int)k->pid,
				  XB_ALERT_CHILD_TIMEOUT_S);
			kill(k->pid, SIGKILL);
		}
		if (k->pid <= 0 && a->argc && a->cmdq.n) {
			char *json = q_pop(&a->cmdq);

			if ((k->pid = spawn(a, json)) > 0) {
				k->started = now;
				a->st.commands_run++;
			} else {
				log_warn("notify_command: starting %s", a->argv[0]);
				a->st.commands_failed++;
				k->pid = 0;
			}
			free(json);
		}
	}
}

/* ---- the webhook ---- */

static void web_start(struct xb_alert *a)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = &a->fd };
	socklen_t len = a->addr.sa.sa_family == AF_INET ? sizeof(a->addr.in) : sizeof(a->addr.in6);
	const char *body = a->webq.v[a->webq.head];
	char host[64];

	wg_endpoint_format(host, sizeof(host), &a->addr);
	free(a->req);
	a->req = NULL;
	if (asprintf(&a->req, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xborderd\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s", a->path, host, strlen(body), body) < 0) {
		a->req = NULL;
		return;
	}
	a->req_len = strlen(a->req);
	a->req_off = 0;
	a->started = time(NULL);
	a->fd = socket(a->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0 || (connect(a->fd, &a->addr.sa, len) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->fd, &ev) < 0)
		web_close(a);
}

static void web_done(struct xb_alert *a, bool ok, const char *why)
{
	web_close(a);
	if (ok || ++a->tries >= XB_ALERT_TRIES) {
		if (ok)
			a->st.posts_ok++;
		else {
			a->st.posts_failed++;
			log_warnx("notify_webhook %s: giving up on an event after %u tries: %s", a->url,
				  a->tries, why);
		}
		free(q_pop(&a->webq));
		a->tries = 0;
		a->retry_at = 0;
		return;
	}
	a->retry_at = time(NULL) + (1 << (a->tries - 1));
}

void xb_alert_process(struct xb_alert *a, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->fd };
	ssize_t n;

	if (tag != &a->fd || a->fd < 0)
		return;
	if (a->req_off < a->req_len) {
		n = send(a->fd, a->req + a->req_off, a->req_len - a->req_off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			web_done(a, false, strerror(errno));
			return;
		}
		if (n > 0 && (a->req_off += (size_t)n) == a->req_len)
			epoll_ctl(a->epfd, EPOLL_CTL_MOD, a->fd, &ev);
		return;
	}
	n = recv(a->fd, a->resp + a->resp_len, sizeof(a->resp) - 1 - a->resp_len, 0);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0)
		a->resp_len += (size_t)n;
	a->resp[a->resp_len] = '\0';
	/* "HTTP/1.x 2NN": delivered. */
	if (a->resp_len >= 12 || n <= 0)
		web_done(a, a->resp_len >= 12 && !strncmp(a->resp, "HTTP/1.", 7) && a->resp[9] == '2',
			 n < 0 ? strerror(errno) : a->resp_len ? "not a 2xx status" : "no answer");
}

static void web_tick(struct xb_alert *a)
{
	time_t now = time(NULL);

	if (a->fd >= 0 && now - a->started >= XB_ALERT_HTTP_TIMEOUT_S)
		web_done(a, false, "timed out");
	if (a->fd < 0 && a->url && a->webq.n && now >= a->retry_at)
		web_start(a);
}

void xb_alert_event(struct xb_alert *a, json_t *ev)
{
	json_t **slot = &a->recent[a->n_recent++ % XB_ALERT_RECENT];

	json_decref(*slot);
	*slot = json_incref(ev);
	a->st.events++;
	if (a->argc) {
		char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			q_push(a, &a->cmdq, s);
		run_commands(a);
	}
	if (a->url) {
		char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			q_push(a, &a->webq, s);
		web_tick(a);
	}
}

void xb_alert_tick(struct xb_alert *a)
{
	run_commands(a);
	web_tick(a);
}

json_t *xb_alert_recent(const struct xb_alert *a)
{
	json_t *v = json_array();
	size_t n = a->n_recent < XB_ALERT_RECENT ? a->n_recent : XB_ALERT_RECENT;

	for (size_t i = 1; v && i <= n; i++)
		json_array_append(v, a->recent[(a->n_recent - i) % XB_ALERT_RECENT]);
	return v;
}

void xb_alert_stats(const struct xb_alert *a, struct xb_alert_stats *out)
{
	*out = a->st;
}
