/* xb-sdnotify — the receiving end of systemd's notification socket, for
 * testing a daemon's READY=1 / RELOADING=1 / WATCHDOG=1 / STOPPING=1.
 *
 *   xb-sdnotify SOCKET
 *
 * Binds a datagram socket at the path SOCKET and prints each message as one
 * line: milliseconds since start, a space, the message with its newlines
 * shown as '|'. Prints "listening" first. Runs until SIGTERM or SIGINT, and
 * at most 120 s.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LIFETIME_MS 120000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_one(int fd, long long t0)
{
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	if (n < 0)
		return;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\0')
			buf[i] = '|';
	printf("%lld %s\n", now_ms() - t0, buf);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long long t0 = now_ms();
	int fd;

	if (argc != 2 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: xb-sdnotify SOCKET\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	strcpy(sun.sun_path, argv[1]);
	unlink(argv[1]);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		perror(argv[1]);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	while (!stop && now_ms() - t0 < LIFETIME_MS) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 200) > 0)
			print_one(fd, t0);
	}
	close(fd);
	unlink(argv[1]);
	return 0;
}
