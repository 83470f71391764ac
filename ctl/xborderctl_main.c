/* xborderctl — the operator's view of a running xborderd, over its control
 * socket (docs/control.md, xborderctl(8)).
 *
 *   xborderctl [-s SOCKET] [-j] [-p] COMMAND [ARGS]
 *
 * Exit status: 0 done; 1 the daemon could not be asked or said no; 2 the
 * command line was wrong.
 */
#include "ctl/device.h"
#include "ctl/render.h"
#include "gateway/control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define TIMEOUT_S 30	/* for the whole answer; a reload of a large policy fits */

/* The commands: a new one is one line here and a renderer in render.c.
 * args names the arguments for usage; n_args to max_args of them are given. */
static const struct cmd {
	const char *name;
	const char *args;
	int n_args, max_args;
	xb_render_fn render;
} cmds[] = {
	{ "status", "", 0, 0, xb_render_status },
	{ "devices", "", 0, 0, xb_render_devices },
	{ "tunnels", "", 0, 0, xb_render_tunnels },
	{ "rules", "", 0, 0, xb_render_rules },
	{ "dns", "", 0, 0, xb_render_dns },
	{ "posture", "[DEVICE]", 0, 1, xb_render_posture },
	{ "explain", "DEVICE DEST [PROTO[/PORT]]", 2, 3, xb_render_explain },
	{ "drops", "[DEVICE]", 0, 1, xb_render_drops },
	{ "probe", "TUNNEL", 1, 1, NULL },		/* streams: see probe_stream() */
	{ "reload", "", 0, 0, xb_render_reload },
	{ "takeover", "", 0, 0, xb_render_takeover },
	{ "device", "add|remove|show NAME [OPTIONS]", 2, 64, NULL },	/* ctl/device.c */
	{ "cluster", "prune [--dry-run]", 1, 2, NULL },			/* ctl/prune.c */
};
#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: xborderctl [-s SOCKET] [-j] [-p] COMMAND [ARGS]\n"
		   "  -s SOCKET  the control socket (default $XBORDER_SOCKET or "
		   XB_CTL_DEFAULT_SOCKET ")\n"
		   "  -j         the result as JSON, one line\n"
		   "  -p         the result as JSON, indented (implies -j)\n"
		   "commands:");
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(f, " %s%s%s", cmds[i].name, *cmds[i].args ? " " : "", cmds[i].args);
	fputc('\n', f);
}

static void valid_words(FILE *f)
{
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(f, " %s", cmds[i].name);
	fputc('\n', f);
}

/* `device' (ctl/device.c) is matched only written out, so that `dev' stays
 * the prefix of devices; `cluster' too, as it deletes from the store. */
static bool by_prefix(const struct cmd *c, const char *word, size_t len)
{
	return len && strcmp(c->name, "device") && strcmp(c->name, "cluster") &&
	       !strncmp(c->name, word, len);
}

/* The command word, exactly or by a unique prefix; NULL after saying why. */
static const struct cmd *lookup(const char *word)
{
	const struct cmd *found = NULL;
	size_t n = 0, len = strlen(word);

	for (size_t i = 0; i < N_CMDS; i++) {
		if (!strcmp(cmds[i].name, word))
			return &cmds[i];
		if (by_prefix(&cmds[i], word, len)) {
			found = &cmds[i];
			n++;
		}
	}
	if (n == 1)
		return found;
	if (n == 0) {
		fprintf(stderr, "xborderctl: unknown command `%s'; valid commands:", word);
		valid_words(stderr);
		return NULL;
	}
	fprintf(stderr, "xborderctl: ambiguous command `%s'; could be:", word);
	for (size_t i = 0; i < N_CMDS; i++)
		if (by_prefix(&cmds[i], word, len))
			fprintf(stderr, " %s", cmds[i].name);
	fputc('\n', stderr);
	return NULL;
}

/* --- the socket -------------------------------------------------------------- */

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = TIMEOUT_S };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "xborderctl: socket path %s is too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		fprintf(stderr, "xborderctl: cannot connect to %s: %s%s\n", path, strerror(err),
			err == ENOENT || err == ECONNREFUSED ? " (is xborderd running?)" :
			err == EACCES ? " (are you root or in xborderd's group?)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int io_error(const char *what)
{
	if (errno == EAGAIN)
		fprintf(stderr, "xborderctl: no answer from xborderd within %d s\n", TIMEOUT_S);
	else if (errno)
		fprintf(stderr, "xborderctl: %s: %s\n", what, strerror(errno));
	else
		fprintf(stderr, "xborderctl: %s: xborderd closed the connection\n", what);
	return -1;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return io_error("sending the request");
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return io_error("reading the answer");
		}
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_request(int fd, const struct cmd *cmd, char **args, int n_args)
{
	json_t *req = json_pack("{s:s, s:[]}", "command", cmd->name, "args");
	char *js = NULL;
	uint32_t be;
	int ret = -1;

	for (int i = 0; req && i < n_args; i++)
		json_array_append_new(json_object_get(req, "args"), json_string(args[i]));
	if (!req || !(js = json_dumps(req, JSON_COMPACT))) {
		fprintf(stderr, "xborderctl: arguments are not valid UTF-8\n");
	} else if (strlen(js) > XB_CTL_MAX_REQUEST) {
		fprintf(stderr, "xborderctl: request longer than %u bytes\n", XB_CTL_MAX_REQUEST);
	} else {
		be = htonl((uint32_t)strlen(js));
		ret = write_all(fd, &be, 4) || write_all(fd, js, strlen(js)) ? -1 : 0;
	}
	free(js);
	json_decref(req);
	return ret;
}

/* The response object, checked for its shape; NULL after saying why. */
static json_t *read_response(int fd)
{
	uint32_t be;
	size_t n;
	char *body;
	json_t *resp;
	json_error_t jerr;

	if (read_all(fd, &be, 4))
		return NULL;
	n = ntohl(be);
	if (n == 0 || n > XB_CTL_MAX_RESPONSE) {
		fprintf(stderr, "xborderctl: answer of %zu bytes is not 1 to %u\n", n,
			XB_CTL_MAX_RESPONSE);
		return NULL;
	}
	if (!(body = malloc(n))) {
		fprintf(stderr, "xborderctl: out of memory\n");
		return NULL;
	}
	if (read_all(fd, body, n)) {
		free(body);
		return NULL;
	}
	resp = json_loadb(body, n, 0, &jerr);
	free(body);
	if (!resp)
		fprintf(stderr, "xborderctl: bad answer: %s\n", jerr.text);
	else if (!json_is_boolean(json_object_get(resp, "ok"))) {
		fprintf(stderr, "xborderctl: bad answer: no \"ok\"\n");
		json_decref(resp);
		resp = NULL;
	}
	return resp;
}

/* --- output --------------------------------------------------------------- */

/* A line from the daemon on stderr, control characters as '?'. */
static void put_line(json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "-";

	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, stderr);
	fputc('\n', stderr);
}

static int failed(const struct cmd *cmd, json_t *resp)
{
	json_t *e;
	size_t i;

	fprintf(stderr, "xborderctl: %s failed: ", cmd->name);
	put_line(json_object_get(resp, "error"));
	json_array_foreach(json_object_get(resp, "errors"), i, e)
		put_line(e);
	return 1;
}

static int show(const struct cmd *cmd, json_t *result, int json)
{
	struct xb_render r = { stdout, false, time(NULL) };
	const char *nc = getenv("NO_COLOR");

	if (json) {
		size_t fl = JSON_ENCODE_ANY | (json > 1 ? JSON_INDENT(2) : JSON_COMPACT);
		json_dumpf(result, stdout, fl);
		putchar('\n');
	} else {
		r.colour = isatty(STDOUT_FILENO) && !nc;
		if (cmd->render(&r, result)) {
			fprintf(stderr, "xborderctl: %s: unexpected result from xborderd\n", cmd->name);
			return 1;
		}
	}
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "xborderctl: stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* One request on a connection of its own; the response or NULL. */
static json_t *ask(const char *path, const struct cmd *cmd, char **args, int n)
{
	int fd = dial(path);
	json_t *resp = NULL;

	if (fd < 0)
		return NULL;
	if (!send_request(fd, cmd, args, n))
		resp = read_response(fd);
	close(fd);
	return resp;
}

static void probe_line(json_t *r, int json)
{
	if (json) {
		json_dumpf(r, stdout, JSON_COMPACT);
		putchar('\n');
		return;
	}
	printf("%lld %s round=%lld ", (long long)json_integer_value(json_object_get(r, "seq")),
	       json_string_value(json_object_get(r, "target")),
	       (long long)json_integer_value(json_object_get(r, "round")));
	if (json_is_true(json_object_get(r, "ok")))
		printf("ok rtt_ms=%.3f\n", json_number_value(json_object_get(r, "rtt_ms")));
	else
		printf("%s error=\"%s\"\n", json_is_true(json_object_get(r, "late")) ? "late" : "lost",
		       json_string_value(json_object_get(r, "error")) ?: "-");
}

/* `probe TUNNEL': the control protocol is request/response, so the client
 * polls every probe interval (at least 50 ms) with the sequence number it
 * was last given and prints what is new, until interrupted or the daemon
 * goes away. The first poll shows the results the daemon still holds. */
static int probe_stream(const char *path, const struct cmd *cmd, char *tunnel, int json)
{
	char since[24] = "0", *args[2] = { tunnel, since };

	for (;;) {
		json_t *resp = ask(path, cmd, args, 2), *res, *r;
		struct timespec ts;
		json_int_t ms;
		size_t i;

		if (!resp)
			return 1;
		if (!json_is_true(json_object_get(resp, "ok"))) {
			int ret = failed(cmd, resp);
			json_decref(resp);
			return ret;
		}
		res = json_object_get(resp, "result");
		json_array_foreach(json_object_get(res, "results"), i, r)
			probe_line(r, json);
		fflush(stdout);
		snprintf(since, sizeof(since), "%lld", (long long)json_integer_value(json_object_get(res, "next")));
		ms = json_integer_value(json_object_get(res, "interval_ms"));
		json_decref(resp);
		if (ms < 50)
			ms = 50;
		ts = (struct timespec){ ms / 1000, (long)(ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* For ctl/device.c: a command by its protocol name, the result or NULL. */
static json_t *ask_result(void *path, const char *command, char **args, int n)
{
	const struct cmd c = { .name = command };
	json_t *resp = ask(path, &c, args, n), *res = NULL;

	if (resp && json_is_true(json_object_get(resp, "ok")))
		res = json_incref(json_object_get(resp, "result") ?: json_null());
	else if (resp)
		failed(&c, resp);
	json_decref(resp);
	return res;
}

int main(int argc, char **argv)
{
	const char *path = getenv("XBORDER_SOCKET");
	const struct cmd *cmd;
	int c, json = 0, fd, ret;
	json_t *resp;

	if (!path || !*path)
		path = XB_CTL_DEFAULT_SOCKET;
	while ((c = getopt(argc, argv, "+s:jph")) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': json = json ? json : 1; break;
		case 'p': json = 2; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!(cmd = lookup(argv[optind])))
		return 2;
	if (argc - optind - 1 < cmd->n_args || argc - optind - 1 > cmd->max_args) {
		fprintf(stderr, "xborderctl: usage: xborderctl %s%s%s\n", cmd->name,
			*cmd->args ? " " : "", cmd->args);
		return 2;
	}
	if (!strcmp(cmd->name, "device"))
		return xb_device_main(argc - optind, argv + optind, json, ask_result, (void *)path);
	if (!strcmp(cmd->name, "cluster"))
		return xb_prune_main(argc - optind, argv + optind, json, ask_result, (void *)path);
	if (!cmd->render)
		return probe_stream(path, cmd, argv[optind + 1], json);
	if ((fd = dial(path)) < 0)
		return 1;
	if (send_request(fd, cmd, argv + optind + 1, argc - optind - 1) || !(resp = read_response(fd))) {
		close(fd);
		return 1;
	}
	close(fd);
	if (json_is_true(json_object_get(resp, "ok")))
		ret = show(cmd, json_object_get(resp, "result") ?: json_null(), json);
	else
		ret = failed(cmd, resp);
	json_decref(resp);
	return ret;
}
