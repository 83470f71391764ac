/* common/notify.c: datagrams on $NOTIFY_SOCKET, path and abstract
 * addresses, the watchdog variables, and silence without systemd. */
#include "tests/lib/check.h"
#include "common/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A listening datagram socket at path (or "@name"), like systemd's. */
static int listener(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	struct timeval tv = { 1, 0 };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';
		alen--;
	}
	CHECK(bind(fd, (struct sockaddr *)&sun, alen) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void recv_str(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, 0);

	CHECK(n >= 0);
	buf[n] = '\0';
}

static void clear_env(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

TEST(no_socket_is_silent)
{
	struct xb_notify n;

	clear_env();
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(n.fd, ==, -1);
	CHECK_INT(xb_notify_send(&n, "READY=1"), ==, 0);
	CHECK_INT(xb_notify_watchdog_interval(&n), ==, 0);
	xb_notify_close(&n);
}

TEST(path_socket_gets_each_message)
{
	char path[] = "/tmp/xb-notify-XXXXXX", sock[64], buf[256];
	struct xb_notify n;
	int fd;

	clear_env();
	CHECK(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/notify", path);
	fd = listener(sock);
	setenv("NOTIFY_SOCKET", sock, 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK(n.fd >= 0);
	CHECK_INT(xb_notify_send(&n, "READY=1\nSTATUS=%d devices", 3), ==, 0);
	CHECK_INT(xb_notify_send(&n, "STOPPING=1"), ==, 0);
	recv_str(fd, buf, sizeof(buf));
	CHECK_STR(buf, "READY=1\nSTATUS=3 devices");
	recv_str(fd, buf, sizeof(buf));
	CHECK_STR(buf, "STOPPING=1");
	xb_notify_close(&n);
	close(fd);
	unlink(sock);
	rmdir(path);
	clear_env();
}

TEST(abstract_socket)
{
	char name[64], buf[64];
	struct xb_notify n;
	int fd;

	clear_env();
	snprintf(name, sizeof(name), "@xb-notify-test-%d", (int)getpid());
	fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_send(&n, "WATCHDOG=1"), ==, 0);
	recv_str(fd, buf, sizeof(buf));
	CHECK_STR(buf, "WATCHDOG=1");
	xb_notify_close(&n);
	close(fd);
	clear_env();
}

/* Nobody listening: an error to the caller, never a crash or a signal. */
TEST(gone_listener_is_an_error)
{
	struct xb_notify n;

	clear_env();
	setenv("NOTIFY_SOCKET", "/nonexistent/xb-notify", 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_send(&n, "READY=1"), ==, -ENOENT);
	xb_notify_close(&n);
	clear_env();
}

TEST(bad_socket_names_refused)
{
	static const char *bad[] = { "relative/path", "@", "/" };
	char longname[200];
	struct xb_notify n;

	clear_env();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		CHECK_INT(xb_notify_open(&n), ==, -1);
		CHECK_INT(n.fd, ==, -1);
		CHECK_INT(xb_notify_send(&n, "READY=1"), ==, 0);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	CHECK_INT(xb_notify_open(&n), ==, -1);
	clear_env();
}

TEST(watchdog_interval_is_half)
{
	char pid[32];
	struct xb_notify n;

	clear_env();
	setenv("NOTIFY_SOCKET", "@xb-notify-unused", 1);
	setenv("WATCHDOG_USEC", "3000000", 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_watchdog_interval(&n), ==, 1500000);
	xb_notify_close(&n);

	/* For our pid: yes; for another process: not ours to feed. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_watchdog_interval(&n), ==, 1500000);
	xb_notify_close(&n);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_watchdog_interval(&n), ==, 0);
	xb_notify_close(&n);
	unsetenv("WATCHDOG_PID");

	static const char *bad[] = { "0", "-5", "12x", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		CHECK_INT(xb_notify_open(&n), ==, 0);
		CHECK_INT(xb_notify_watchdog_interval(&n), ==, 0);
		xb_notify_close(&n);
	}
	clear_env();
}

/* A STATUS longer than a datagram's buffer is cut, not overflowed. */
TEST(long_status_is_cut)
{
	char name[64], big[4096], buf[4096];
	struct xb_notify n;
	int fd;

	clear_env();
	snprintf(name, sizeof(name), "@xb-notify-long-%d", (int)getpid());
	fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(xb_notify_open(&n), ==, 0);
	CHECK_INT(xb_notify_send(&n, "STATUS=%s", big), ==, 0);
	recv_str(fd, buf, sizeof(buf));
	CHECK_INT(strlen(buf), ==, 1023);
	CHECK(!strncmp(buf, "STATUS=xxx", 10));
	xb_notify_close(&n);
	close(fd);
	clear_env();
}
