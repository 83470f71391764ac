/* xb-impair — a userspace link-impairment router for tests (the kernel here
 * has no netem).
 *
 *   xb-impair -a TUN_AB -b TUN_BA -s CTL.sock [--seed N] [--ab PROFILE] [--ba PROFILE]
 *   xb-impair ctl CTL.sock COMMAND...
 *
 * It creates two TUN devices. The router namespace sends each direction of
 * the path into its own TUN by policy routing (tests/lib/impair.sh sets this
 * up); a packet read from a TUN is delayed, dropped, duplicated or reordered
 * by that direction's profile and written back into the same TUN, from where
 * the kernel forwards it on by the main table.
 *
 * Control commands, one per line on a Unix stream socket; the reply ends with
 * "ok" or "error: ...":
 *   set ab|ba|both KEY=VALUE...  change a profile (see impair.h); the reply
 *                                carries applied_ns=<CLOCK_MONOTONIC ns>
 *   clear ab|ba|both             back to a clean link
 *   zero ab|ba|both              zero the counters
 *   show                         one line per direction, profile and counters
 */
#include "common/clock.h"
#include "tests/tools/impair.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS 8
#define READ_BURST 256

struct client {
	int fd;
	size_t len;
	char buf[1024];
};

struct router {
	struct imp_dir dir[2];	/* 0: a→b, 1: b→a */
	int tun[2];
	int lfd;
	struct client cl[MAX_CLIENTS];
	const char *sock_path;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int tun_open(const char *name)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int s;

	if (fd < 0) {
		perror("open /dev/net/tun");
		return -1;
	}
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "xb-impair: TUNSETIFF %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	/* Bring it up here so the caller only adds rules and routes. */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			perror("SIOCSIFFLAGS");
	}
	if (s >= 0)
		close(s);
	return fd;
}

static int ctl_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "xb-impair: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "xb-impair: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Which directions a word names: bit 0 = ab, bit 1 = ba. */
static int dir_mask(const char *w)
{
	if (!w)
		return 0;
	if (!strcmp(w, "ab"))
		return 1;
	if (!strcmp(w, "ba"))
		return 2;
	if (!strcmp(w, "both"))
		return 3;
	return 0;
}

/* Apply KEY=VALUE words to the profiles in mask: all or nothing. */
static bool apply_words(struct router *r, int mask, char **words, int n, char *err, size_t errlen)
{
	struct imp_profile p[2] = { r->dir[0].prof, r->dir[1].prof };
	struct imp_dir trial[2] = { r->dir[0], r->dir[1] };

	for (int i = 0; i < 2; i++) {
		if (!(mask & (1 << i)))
			continue;
		for (int w = 0; w < n; w++)
			if (!imp_apply(&trial[i], &p[i], words[w], err, errlen))
				return false;
	}
	for (int i = 0; i < 2; i++) {
		if (!(mask & (1 << i)))
			continue;
		memcpy(r->dir[i].rng, trial[i].rng, sizeof(trial[i].rng));
		r->dir[i].seed = trial[i].seed;
		imp_set_profile(&r->dir[i], &p[i]);
	}
	return true;
}

static void reply(int fd, const char *s)
{
	size_t off = 0, len = strlen(s);

	while (off < len) {
		ssize_t w = write(fd, s + off, len - off);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void ctl_command(struct router *r, int fd, char *line)
{
	char *words[32], *save = NULL, err[256], out[1024];
	int n = 0, mask;

	for (char *w = strtok_r(line, " \t\r", &save); w && n < 32; w = strtok_r(NULL, " \t\r", &save))
		words[n++] = w;
	if (!n)
		return;
	if (!strcmp(words[0], "show")) {
		for (int i = 0; i < 2; i++) {
			imp_format(&r->dir[i], out, sizeof(out) - 1);
			strcat(out, "\n");
			reply(fd, out);
		}
		reply(fd, "ok\n");
		return;
	}
	mask = dir_mask(n > 1 ? words[1] : NULL);
	if (!mask) {
		reply(fd, "error: usage: set|clear|zero ab|ba|both [KEY=VALUE...], or show\n");
		return;
	}
	if (!strcmp(words[0], "set")) {
		if (!apply_words(r, mask, words + 2, n - 2, err, sizeof(err))) {
			snprintf(out, sizeof(out), "error: %s\n", err);
			reply(fd, out);
			return;
		}
	} else if (!strcmp(words[0], "clear") || !strcmp(words[0], "zero")) {
		for (int i = 0; i < 2; i++) {
			if (!(mask & (1 << i)))
				continue;
			if (words[0][0] == 'z') {
				memset(&r->dir[i].cnt, 0, sizeof(r->dir[i].cnt));
			} else {
				struct imp_profile p;
				imp_profile_default(&p);
				imp_set_profile(&r->dir[i], &p);
			}
		}
	} else {
		reply(fd, "error: unknown command (set clear zero show)\n");
		return;
	}
	snprintf(out, sizeof(out), "applied_ns=%" PRIu64 "\nok\n", clock_mono_ns());
	reply(fd, out);
}

static void client_read(struct router *r, struct client *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	char *nl;

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = strchr(c->buf, '\n'))) {
		*nl = '\0';
		ctl_command(r, c->fd, c->buf);
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len + 1);
	}
	if (c->len == sizeof(c->buf) - 1) {
		reply(c->fd, "error: line too long\n");
		close(c->fd);
		c->fd = -1;
	}
}

static void accept_client(struct router *r)
{
	int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (r->cl[i].fd < 0) {
			r->cl[i].fd = fd;
			r->cl[i].len = 0;
			return;
		}
	}
	reply(fd, "error: too many control clients\n");
	close(fd);
}

static void drain_tun(struct router *r, int i)
{
	static uint8_t buf[65536];

	for (int k = 0; k < READ_BURST; k++) {
		ssize_t n = read(r->tun[i], buf, sizeof(buf));
		if (n <= 0)
			return;
		imp_enqueue(&r->dir[i], buf, (size_t)n, clock_mono_ns());
	}
}

static void release_due(struct router *r)
{
	uint64_t now = clock_mono_ns();

	for (int i = 0; i < 2; i++) {
		struct imp_pkt *p;
		while ((p = imp_dequeue(&r->dir[i], now))) {
			if (write(r->tun[i], p->data, p->len) < 0 && errno != EAGAIN)
				perror("xb-impair: write to tun");
			free(p);
		}
	}
}

static int run(struct router *r)
{
	sigset_t block, during;

	/* Signals are taken only inside ppoll(), so none is lost between checks. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &during);
	sigdelset(&during, SIGTERM);
	sigdelset(&during, SIGINT);
	while (!stop) {
		struct pollfd pfd[3 + MAX_CLIENTS];
		struct client *map[3 + MAX_CLIENTS];
		uint64_t due = imp_next_due(&r->dir[0]), now;
		struct timespec ts, *tsp = NULL;
		int n = 0;

		if (imp_next_due(&r->dir[1]) < due)
			due = imp_next_due(&r->dir[1]);
		now = clock_mono_ns();
		if (due != UINT64_MAX) {
			ts = clock_ts(due > now ? due - now : 0);
			tsp = &ts;
		}
		pfd[n++] = (struct pollfd){ r->tun[0], POLLIN, 0 };
		pfd[n++] = (struct pollfd){ r->tun[1], POLLIN, 0 };
		pfd[n++] = (struct pollfd){ r->lfd, POLLIN, 0 };
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (r->cl[i].fd >= 0) {
				map[n] = &r->cl[i];
				pfd[n++] = (struct pollfd){ r->cl[i].fd, POLLIN, 0 };
			}
		}
		if (ppoll(pfd, (nfds_t)n, tsp, &during) < 0) {
			if (errno == EINTR)
				continue;
			perror("xb-impair: ppoll");
			return 1;
		}
		for (int i = 0; i < 2; i++)
			if (pfd[i].revents & POLLIN)
				drain_tun(r, i);
		if (pfd[0].revents & (POLLERR | POLLHUP) || pfd[1].revents & (POLLERR | POLLHUP)) {
			fprintf(stderr, "xb-impair: tun device gone\n");
			return 1;
		}
		release_due(r);
		if (pfd[2].revents & POLLIN)
			accept_client(r);
		for (int i = 3; i < n; i++)
			if (pfd[i].revents)
				client_read(r, map[i]);
	}
	return 0;
}

static int ctl_main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char line[1024] = "", buf[4096];
	size_t len = 0;
	int fd;

	if (argc < 3 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: xb-impair ctl SOCKET COMMAND...\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		size_t l = strlen(argv[i]);
		if (len + l + 2 >= sizeof(line)) {
			fprintf(stderr, "xb-impair ctl: command too long\n");
			return 2;
		}
		memcpy(line + len, argv[i], l);
		len += l;
		line[len++] = i + 1 < argc ? ' ' : '\n';
	}
	strcpy(sun.sun_path, argv[1]);
	printf("cmd_ns=%" PRIu64 "\n", clock_mono_ns());
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "xb-impair ctl: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	reply(fd, line);
	shutdown(fd, SHUT_WR);
	len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "ok\n") || strstr(buf, "error: "))
			if (buf[len - 1] == '\n')
				break;
		if (len == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	fputs(buf, stdout);
	close(fd);
	return strstr(buf, "error: ") || !strstr(buf, "ok\n") ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: xb-impair -a TUN_AB -b TUN_BA -s SOCKET [--seed N] "
		"[--ab PROFILE] [--ba PROFILE]\n       xb-impair ctl SOCKET COMMAND...\n");
	exit(2);
}

static void startup_profile(struct router *r, int i, char *spec)
{
	char *words[32], *save = NULL, err[256];
	int n = 0;

	for (char *w = strtok_r(spec, " ,", &save); w && n < 32; w = strtok_r(NULL, " ,", &save))
		words[n++] = w;
	if (!apply_words(r, 1 << i, words, n, err, sizeof(err))) {
		fprintf(stderr, "xb-impair: --%s: %s\n", r->dir[i].name, err);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 'S' },
		{ "ab", required_argument, NULL, 'A' },
		{ "ba", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	struct router r = { .lfd = -1 };
	const char *a = NULL, *b = NULL;
	char *prof[2] = { NULL, NULL };
	uint64_t seed = 1;
	int c, rc;

	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "a:b:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'a': a = optarg; break;
		case 'b': b = optarg; break;
		case 's': r.sock_path = optarg; break;
		case 'S': seed = strtoull(optarg, NULL, 0); break;
		case 'A': prof[0] = optarg; break;
		case 'B': prof[1] = optarg; break;
		default: usage();
		}
	}
	if (!a || !b || !r.sock_path || optind != argc)
		usage();
	imp_dir_init(&r.dir[0], "ab", seed);
	imp_dir_init(&r.dir[1], "ba", seed);
	for (int i = 0; i < 2; i++)
		if (prof[i])
			startup_profile(&r, i, prof[i]);
	for (int i = 0; i < MAX_CLIENTS; i++)
		r.cl[i].fd = -1;
	/* Release times are met to the microsecond, not to the default 50 µs slack. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	r.tun[0] = tun_open(a);
	r.tun[1] = tun_open(b);
	if (r.tun[0] < 0 || r.tun[1] < 0)
		return 1;
	/* The socket appears last: its existence means the router is ready. */
	r.lfd = ctl_listen(r.sock_path);
	if (r.lfd < 0)
		return 1;
	rc = run(&r);
	unlink(r.sock_path);
	for (int i = 0; i < 2; i++)
		imp_dir_free(&r.dir[i]);
	return rc;
}
