/* libFuzzer: bytes a client sends on the control socket, through the real
 * server (gateway/control.c) on a socket in a temporary directory. Every
 * answer must be a well-formed frame holding an object with a boolean "ok",
 * and the server must close the connection once the client is done. */
#include "common/log.h"
#include "gateway/control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sockaddr_un sa = { .sun_family = AF_UNIX };
static struct xb_ctl *srv;
static char dir[] = "/tmp/xb-fuzz-control.XXXXXX";

static void cleanup(void)
{
	xb_ctl_close(srv);
	rmdir(dir);
}

static int echo(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)error, (void)errors;
	*result = json_incref(args);
	return 0;
}

static int broken(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx, (void)result;
	*error = strdup(json_string_value(json_array_get(args, 0)) ?: "no\nargs");
	*errors = json_incref(args);
	return -1;
}

static const struct xb_ctl_command cmds[] = { { "echo", echo, NULL }, { "fail", broken, NULL } };

static struct xb_ctl *server(void)
{
	if (srv)
		return srv;
	log_set_level(LOG_LVL_ERR);
	if (!mkdtemp(dir))
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	if (!(srv = xb_ctl_open(sa.sun_path, (gid_t)-1, cmds, 2, NULL)))
		abort();
	atexit(cleanup);
	return srv;
}

static void pump(struct xb_ctl *c)
{
	struct pollfd p = { .fd = xb_ctl_fd(c), .events = POLLIN };

	if (poll(&p, 1, 1) > 0)
		xb_ctl_process(c);
}

/* Each complete frame in buf[0..n) is an answer object; returns bytes used. */
static size_t check_answers(const uint8_t *buf, size_t n)
{
	size_t off = 0;

	while (n - off >= 4) {
		uint32_t be;
		memcpy(&be, buf + off, 4);
		size_t len = ntohl(be);
		if (len == 0 || len > XB_CTL_MAX_RESPONSE)
			abort();
		if (n - off - 4 < len)
			break;
		json_t *j = json_loadb((const char *)buf + off + 4, len, 0, NULL);
		if (!j || !json_is_boolean(json_object_get(j, "ok")))
			abort();
		json_decref(j);
		off += 4 + len;
	}
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[1 << 20];
	struct xb_ctl *c = server();
	size_t sent = 0, got = 0, used = 0;
	bool eof = false;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	for (int round = 0; round < 20000 && !eof; round++) {
		ssize_t r;
		if (sent < size && (r = send(fd, data + sent, size - sent, MSG_NOSIGNAL)) > 0)
			if ((sent += (size_t)r) == size)
				shutdown(fd, SHUT_WR);
		if (size == 0 && round == 0)
			shutdown(fd, SHUT_WR);
		pump(c);
		while ((r = recv(fd, in + got, sizeof(in) - got, 0)) > 0) {
			got += (size_t)r;
			used += check_answers(in + used, got - used);
			if (used == got)
				got = used = 0;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN))
			eof = true;	/* closed, or reset after a bad frame */
	}
	if (!eof)
		abort();	/* the server kept a finished client open */
	close(fd);
	for (int i = 0; i < 100 && xb_ctl_conns(c); i++)
		pump(c);
	if (xb_ctl_conns(c))
		abort();
	return 0;
}
