/* Telling the service manager how we are: systemd's notification protocol
 * (sd_notify(3)), spoken directly.
 *
 * The protocol is one datagram per message on the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace): newline-
 * separated VAR=value lines — READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1,
 * STATUS=text, MONOTONIC_USEC=n. No reply. Without $NOTIFY_SOCKET (not
 * started by systemd, or `xborderd -f` by hand) every call does nothing.
 *
 * The watchdog: when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is
 * ours) the manager expects WATCHDOG=1 at least that often; systemd advises
 * sending it every half interval.
 */
#ifndef XB_NOTIFY_H
#define XB_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct xb_notify {
	int fd;				/* -1: nobody to tell */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec;		/* 0: no watchdog */
};

/* Read the environment and open the socket. Returns 0, also when there is
 * no $NOTIFY_SOCKET; -1 (logged) when it is set but unusable — the caller
 * goes on without notifications. The variables are left in the environment
 * (they are read once). */
int xb_notify_open(struct xb_notify *n);
/* Send one message ("READY=1\nSTATUS=..."). 0 when sent or nobody listens
 * for it, -errno on failure (not logged: callers decide). */
int xb_notify_send(struct xb_notify *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The interval to send WATCHDOG=1 at: half of $WATCHDOG_USEC, in µs; 0
 * when there is no watchdog. */
uint64_t xb_notify_watchdog_interval(const struct xb_notify *n);
void xb_notify_close(struct xb_notify *n);

#endif
