/* systemd's notification protocol; see notify.h. */
#include "common/notify.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The address in $NOTIFY_SOCKET: an absolute path, or "@name" for an
 * abstract socket (its first byte NUL, its length exact, no terminator). */
static int set_addr(struct xb_notify *n, const char *s)
{
	size_t len = strlen(s);

	if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path))
		return -1;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, s, len);
	if (s[0] == '@') {
		n->addr.sun_path[0] = '\0';
		n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	return 0;
}

/* $WATCHDOG_USEC, if it is for us: a positive decimal, and $WATCHDOG_PID
 * absent or our pid (a forked child must not feed its parent's watchdog). */
static uint64_t watchdog_usec(void)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (!us || !*us)
		return 0;
	errno = 0;
	v = strtoull(us, &end, 10);
	if (errno || *end || v == 0 || us[0] == '-') {
		log_warnx("WATCHDOG_USEC `%s' is not a positive number: no watchdog", us);
		return 0;
	}
	if (pid && *pid) {
		long p = strtol(pid, &end, 10);

		if (*end || p != (long)getpid())
			return 0;
	}
	return v;
}

int xb_notify_open(struct xb_notify *n)
{
	const char *s = getenv("NOTIFY_SOCKET");

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (!s || !*s)
		return 0;
	if (set_addr(n, s) < 0) {
		log_warnx("NOTIFY_SOCKET `%s' is not an absolute path or @name: not notifying", s);
		return -1;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		log_warn("NOTIFY_SOCKET: socket");
		return -1;
	}
	n->watchdog_usec = watchdog_usec();
	return 0;
}

int xb_notify_send(struct xb_notify *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int len;

	if (!n || n->fd < 0)
		return 0;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return -EINVAL;
	/* A STATUS= too long for the buffer is cut; the message stays valid. */
	if ((size_t)len >= sizeof(msg))
		len = sizeof(msg) - 1;
	if (sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&n->addr,
		   n->addr_len) < 0)
		return -errno;
	return 0;
}

uint64_t xb_notify_watchdog_interval(const struct xb_notify *n)
{
	return n->fd < 0 ? 0 : n->watchdog_usec / 2;
}

void xb_notify_close(struct xb_notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	n->watchdog_usec = 0;
}
