/* Event delivery to a command and the notification targets; see alert.h. */
#include "gateway/health/alert.h"
#include "common/clock.h"
#include "common/log.h"
#include "gateway/health/alert_payload.h"
#include "gateway/health/alert_queue.h"
#include "policy/policy.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
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

/* A socket libcurl asked us to watch; data.ptr of its epoll entry. Slots
 * are never freed while the alert lives, so an event already returned by
 * epoll_wait for a socket removed since finds fd -1, not freed memory. */
struct sock {
	int fd;				/* -1: free */
	struct target *t;		/* whose multi handle */
};

/* A notification target as it runs. Heap-allocated: libcurl's handle
 * points at it (CURLOPT_PRIVATE) across a reload that reorders targets. */
struct target {
	struct xb_alert *a;
	/* A multi handle per target: libcurl keeps one parsed CA store per
	 * multi handle, so targets with different CAs do not evict each
	 * other's (a load costs ~20-30 ms in the loop); its connections are
	 * kept for the next event. */
	CURLM *multi;
	int tfd;			/* its timer */
	struct xb_notify_target cfg;	/* own copies of the strings */
	char shown[160];		/* "TYPE HOST" for logs: no path, no secret */
	struct xb_alertq q;
	CURL *easy;			/* the try in flight, or NULL */
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
};

struct xb_alert {
	int epfd;
	int retry_tfd;			/* the earliest retry of any target */
	char source[256];
	char **argv;
	size_t argc;
	struct queue cmdq;
	struct child kids[XB_ALERT_CHILDREN];
	struct sock socks[XB_ALERT_SOCKETS];
	struct target **t;
	size_t nt;
	struct xb_alert_stats st;
	uint64_t gone_ok, gone_failed, gone_dropped;	/* of targets removed by reloads */
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

static void free_argv(struct xb_alert *a)
{
	for (size_t i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
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

/* ---- the targets ---- */

static void arm(int tfd, uint64_t ms, bool on)
{
	struct itimerspec it = { { 0, 0 }, { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L } };

	if (on && !ms)
		it.it_value.tv_nsec = 1;	/* 0 would disarm it */
	timerfd_settime(tfd, 0, &it, NULL);
}

static struct sock *sock_slot(struct xb_alert *a)
{
	for (int i = 0; i < XB_ALERT_SOCKETS; i++)
		if (a->socks[i].fd < 0)
			return &a->socks[i];
	return NULL;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what libcurl wants, in our set. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct target *t = userp;
	struct xb_alert *a = t->a;
	struct sock *s = sockp;
	struct epoll_event ev = { .events = 0 };

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			epoll_ctl(a->epfd, EPOLL_CTL_DEL, fd, NULL);
			s->fd = -1;
			s->t = NULL;
			curl_multi_assign(t->multi, fd, NULL);
		}
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (!s) {
		if (!(s = sock_slot(a))) {
			log_warnx("notify: more than %d sockets open at once; a try fails",
				  XB_ALERT_SOCKETS);
			return -1;
		}
		s->fd = fd;
		s->t = t;
		curl_multi_assign(t->multi, fd, s);
		ev.data.ptr = s;
		if (!epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) || errno != EEXIST)
			return 0;
	}
	ev.data.ptr = s;
	epoll_ctl(a->epfd, EPOLL_CTL_MOD, fd, &ev);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, else it fires in ms. */
static int on_timer(CURLM *m, long ms, void *userp)
{
	struct target *t = userp;

	(void)m;
	arm(t->tfd, ms < 0 ? 0 : (uint64_t)ms, ms >= 0);
	return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static struct curl_slist *headers(const struct xb_notify_target *c)
{
	struct curl_slist *h = NULL, *n;
	char *auth = NULL;
	bool ok = (h = curl_slist_append(h, "Content-Type: application/json")) &&
		  (n = curl_slist_append(h, "Expect:")) && (h = n);

	for (size_t i = 0; ok && i < c->n_headers; i++)
		ok = (n = curl_slist_append(h, c->headers[i])) && (h = n);
	if (ok && c->type == XB_NOTIFY_JSON && c->secret) {
		ok = asprintf(&auth, "Authorization: Bearer %s", c->secret) >= 0 &&
		     (n = curl_slist_append(h, auth)) && (h = n);
		if (auth) {
			sodium_memzero(auth, strlen(auth));
			free(auth);
		}
	}
	if (!ok) {
		curl_slist_free_all(h);
		return NULL;
	}
	return h;
}

static void target_stop(struct target *t)
{
	if (t->easy) {
		curl_multi_remove_handle(t->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
}

/* Starts the next try of t when one is due. */
static void target_start(struct target *t, uint64_t now)
{
	const char *body;
	CURL *e;

	if (t->easy || !(body = xb_alertq_start(&t->q, now)))
		return;
	if (!(e = curl_easy_init())) {
		xb_alertq_done(&t->q, false, now);
		return;
	}
	t->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, t->cfg.url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "xborderd");
	curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->cfg.timeout_s * 1000L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	/* The CA bundle is read and parsed in this thread, inside the loop:
	 * ~20-30 ms for Debian's 145 CAs here. libcurl keeps the parsed
	 * store in the multi handle for later connections
	 * (CURLOPT_CA_CACHE_TIMEOUT, 24 h) only when no CA directory is set,
	 * and Debian's build sets one (/etc/ssl/certs, the same CAs as the
	 * bundle): unset it, so a target pays at its first connection only. */
	curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	if (t->cfg.ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, t->cfg.ca_file);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		xb_alertq_done(&t->q, false, now);
		return;
	}
	t->easy = e;
}

/* Starts what is due on every target; arms the retry timer for the
 * earliest retry still waiting. */
static void kick(struct xb_alert *a)
{
	uint64_t now = clock_mono_ms(), next = UINT64_MAX;

	for (size_t i = 0; i < a->nt; i++) {
		struct target *t = a->t[i];

		target_start(t, now);
		if (!t->easy && t->q.n && t->q.next_ms < next)
			next = t->q.next_ms;
	}
	arm(a->retry_tfd, next == UINT64_MAX ? 0 : next > now ? next - now : 0,
	    next != UINT64_MAX);
}

static void finished(CURL *e, CURLcode rc)
{
	struct target *t = NULL;
	long status = 0;
	char why[CURL_ERROR_SIZE + 64];
	enum xb_alertq_outcome o;
	uint64_t now = clock_mono_ms();

	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP status %ld", status);
	target_stop(t);
	o = xb_alertq_done(&t->q, rc == CURLE_OK && status >= 200 && status < 300, now);
	if (o == XB_ALERTQ_RETRY)
		log_info("notify %s: try %u failed (%s); again in %llu ms", t->shown, t->q.tries,
			 why, (unsigned long long)(t->q.next_ms - now));
	else if (o == XB_ALERTQ_GAVE_UP)
		log_warnx("notify %s: giving up on an event (%s); %llu given up so far", t->shown,
			  why, (unsigned long long)t->q.failed);
}

static void drain(struct xb_alert *a)
{
	CURLMsg *m;
	int left;

	for (size_t i = 0; i < a->nt; i++)
		while ((m = curl_multi_info_read(a->t[i]->multi, &left)))
			if (m->msg == CURLMSG_DONE)
				finished(m->easy_handle, m->data.result);
	kick(a);
}

static void target_free(struct xb_alert *a, struct target *t)
{
	if (!t)
		return;
	target_stop(t);
	if (a) {
		a->gone_ok += t->q.delivered;
		a->gone_failed += t->q.failed;
		a->gone_dropped += t->q.dropped;
	}
	if (t->multi)
		curl_multi_cleanup(t->multi);	/* closes its connections */
	for (int i = 0; i < XB_ALERT_SOCKETS; i++)
		if (t->a->socks[i].t == t) {	/* not told: out of the set here */
			epoll_ctl(t->a->epfd, EPOLL_CTL_DEL, t->a->socks[i].fd, NULL);
			t->a->socks[i].fd = -1;
			t->a->socks[i].t = NULL;
		}
	if (t->tfd >= 0)
		close(t->tfd);
	xb_alertq_clear(&t->q);
	curl_slist_free_all(t->hdrs);	/* holds the token: freed, not kept */
	free(t->cfg.url);
	free(t->cfg.ca_file);
	if (t->cfg.secret) {
		sodium_memzero(t->cfg.secret, strlen(t->cfg.secret));
		free(t->cfg.secret);
	}
	for (size_t i = 0; i < t->cfg.n_headers; i++)
		free(t->cfg.headers[i]);
	free(t->cfg.headers);
	free(t);
}

static bool same_str(const char *x, const char *y)
{
	return x == y || (x && y && !strcmp(x, y));
}

/* Same destination and content: a reload keeps its queue. */
static bool same_target(const struct xb_notify_target *x, const struct xb_notify_target *y)
{
	if (x->type != y->type || !same_str(x->url, y->url) || !same_str(x->ca_file, y->ca_file) ||
	    !same_str(x->secret, y->secret) || x->n_headers != y->n_headers)
		return false;
	for (size_t i = 0; i < x->n_headers; i++)
		if (strcmp(x->headers[i], y->headers[i]))
			return false;
	return true;
}

static void shown(struct target *t)
{
	static const char *const names[] = { "json", "slack", "pagerduty" };
	CURLU *u = curl_url();
	char *host = NULL;

	if (u && !curl_url_set(u, CURLUPART_URL, t->cfg.url, 0))
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	snprintf(t->shown, sizeof(t->shown), "%s %s", names[t->cfg.type], host ? host : "?");
	curl_free(host);
	curl_url_cleanup(u);
}

/* Its own multi handle and timer, in a's epoll set. */
static bool target_multi(struct xb_alert *a, struct target *t)
{
	if ((t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    epoll_ctl(a->epfd, EPOLL_CTL_ADD, t->tfd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &t->tfd }) < 0 ||
	    !(t->multi = curl_multi_init()))
		return false;
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	return true;
}

static struct target *target_new(struct xb_alert *a, const struct xb_notify_target *c)
{
	struct target *t = calloc(1, sizeof(*t));
	struct xb_alertq_rule r = { c->tries, c->backoff_ms, (uint64_t)c->give_up_s * 1000 };
	bool ok = t != NULL;

	if (!t)
		return NULL;
	t->a = a;
	t->tfd = -1;
	t->cfg = *c;
	t->cfg.secret_file = t->cfg.secret_resolved = NULL;
	t->cfg.url = strdup(c->url);
	t->cfg.ca_file = c->ca_file ? strdup(c->ca_file) : NULL;
	t->cfg.secret = c->secret ? strdup(c->secret) : NULL;
	t->cfg.headers = calloc(c->n_headers + 1, sizeof(char *));
	ok = t->cfg.url && (!c->ca_file || t->cfg.ca_file) && (!c->secret || t->cfg.secret) &&
	     t->cfg.headers;
	for (size_t i = 0; ok && i < c->n_headers; i++)
		ok = (t->cfg.headers[i] = strdup(c->headers[i])) != NULL;
	xb_alertq_init(&t->q, &r);
	if (ok)
		shown(t);
	if (!ok || !(t->hdrs = headers(&t->cfg)) || !target_multi(a, t)) {
		t->cfg.n_headers = c->n_headers;
		target_free(NULL, t);
		return NULL;
	}
	return t;
}

/* ---- life ---- */

struct xb_alert *xb_alert_new(int epfd, const char *source)
{
	struct xb_alert *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->epfd = epfd;
	a->retry_tfd = -1;
	for (int i = 0; i < XB_ALERT_SOCKETS; i++)
		a->socks[i].fd = -1;
	if (source)
		snprintf(a->source, sizeof(a->source), "%s", source);
	else if (gethostname(a->source, sizeof(a->source) - 1) < 0)
		snprintf(a->source, sizeof(a->source), "xborderd");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(a);
		return NULL;
	}
	if ((a->retry_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, a->retry_tfd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &a->retry_tfd }) < 0) {
		xb_alert_free(a);
		return NULL;
	}
	return a;
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
	for (size_t i = 0; i < a->nt; i++)
		target_free(a, a->t[i]);
	free(a->t);
	if (a->retry_tfd >= 0)
		close(a->retry_tfd);
	free_argv(a);
	q_clear(&a->cmdq);
	for (size_t i = 0; i < XB_ALERT_RECENT; i++)
		json_decref(a->recent[i]);
	curl_global_cleanup();
	free(a);
}

static void set_targets(struct xb_alert *a, const struct xb_notify_target *c, size_t nc)
{
	struct target **nt = calloc(nc + 1, sizeof(*nt));
	size_t n = 0;

	if (!nt) {
		log_warnx("notify: out of memory; the targets stay as they were");
		return;
	}
	for (size_t i = 0; i < nc; i++) {
		struct xb_alertq_rule r = { c[i].tries, c[i].backoff_ms,
					    (uint64_t)c[i].give_up_s * 1000 };

		for (size_t j = 0; j < a->nt && !nt[n]; j++)
			if (a->t[j] && same_target(&a->t[j]->cfg, &c[i])) {
				nt[n] = a->t[j];
				a->t[j] = NULL;
				nt[n]->q.rule = r;
				nt[n]->cfg.tries = c[i].tries;
				nt[n]->cfg.backoff_ms = c[i].backoff_ms;
				nt[n]->cfg.give_up_s = c[i].give_up_s;
				nt[n]->cfg.timeout_s = c[i].timeout_s;
			}
		if (!nt[n] && !(nt[n] = target_new(a, &c[i])))
			log_warnx("notify: target %zu: out of memory; not used", i + 1);
		if (nt[n])
			n++;
	}
	for (size_t j = 0; j < a->nt; j++)
		target_free(a, a->t[j]);
	free(a->t);
	a->t = nt;
	a->nt = n;
}

void xb_alert_set(struct xb_alert *a, const char *const *argv, size_t n,
		  const struct xb_notify_target *t, size_t nt)
{
	free_argv(a);
	if (n && (a->argv = calloc(n + 1, sizeof(char *)))) {
		for (size_t i = 0; i < n; i++)
			a->argv[a->argc++] = strdup(argv[i]);
	}
	set_targets(a, t, nt);
	kick(a);
}

void xb_alert_process(struct xb_alert *a, void *tag)
{
	struct sock *s = tag;
	uint64_t n;
	int running;

	if (tag == &a->retry_tfd) {
		if (read(a->retry_tfd, &n, sizeof(n)) < 0)
			return;
	} else if (s >= a->socks && s < a->socks + XB_ALERT_SOCKETS) {
		if (s->fd < 0 || !s->t)
			return;		/* removed after epoll_wait returned it */
		curl_multi_socket_action(s->t->multi, s->fd, 0, &running);
	} else {
		size_t i;

		for (i = 0; i < a->nt && tag != &a->t[i]->tfd; i++)
			;
		if (i == a->nt || read(a->t[i]->tfd, &n, sizeof(n)) != sizeof(n))
			return;		/* not ours, or a removed target's */
		curl_multi_socket_action(a->t[i]->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	drain(a);
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
	for (size_t i = 0; i < a->nt; i++) {
		struct target *t = a->t[i];
		bool skip;
		char *s = xb_alert_payload((enum xb_alert_kind)t->cfg.type, ev, a->source,
					   t->cfg.secret, &skip);

		if (s && !xb_alertq_push(&t->q, s))
			log_warnx("notify %s: queue full (%d); the oldest event dropped (%llu so far)",
				  t->shown, XB_ALERTQ_MAX, (unsigned long long)t->q.dropped);
	}
	kick(a);
}

void xb_alert_tick(struct xb_alert *a)
{
	run_commands(a);
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
	out->posts_ok += a->gone_ok;
	out->posts_failed += a->gone_failed;
	out->dropped += a->gone_dropped;
	for (size_t i = 0; i < a->nt; i++) {
		out->posts_ok += a->t[i]->q.delivered;
		out->posts_failed += a->t[i]->q.failed;
		out->dropped += a->t[i]->q.dropped;
	}
}
