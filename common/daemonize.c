/* Forking into the background; see daemonize.h. */
#include "common/daemonize.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int xb_daemonize(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &c, 1) == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	return p[1];
}

void xb_daemon_ready(int ready_fd)
{
	char ok = 0;
	int fd = open("/dev/null", O_RDWR);

	if (write(ready_fd, &ok, 1) < 0)
		log_warn("telling the parent we are ready");
	close(ready_fd);
	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}
