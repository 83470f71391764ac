/* Going into the background the way a daemon should: the parent waits and
 * exits only when the child says it is ready (0) or has failed (1), so that
 * the command's exit status tells whether the service came up. */
#ifndef XB_DAEMONIZE_H
#define XB_DAEMONIZE_H

/* Fork; in the child, returns the fd to report readiness on (-1 on error).
 * The parent never returns. */
int xb_daemonize(void);
/* Tell the waiting parent we are up, and let go of the terminal. */
void xb_daemon_ready(int ready_fd);

#endif
