/* xb-udpflood: a UDP flood of small datagrams and a receiver that counts
 * them over a fixed window; packets per second through a tunnel, for
 * bench/wg_pps.sh.
 *
 *   xb-udpflood recv [-w WARM_MS] [-t MS] ADDR PORT
 *   xb-udpflood send [-l LEN] [-t MS] [-b BATCH] ADDR PORT
 *
 * recv binds ADDR:PORT, prints "ready", waits (5 s at most) for the first
 * datagram, lets -w ms pass (default 1000: handshake and queues settle),
 * then counts datagrams for -t ms (default 5000) and prints one line:
 *
 *   packets N bytes N seconds S pps X
 *
 * send sends LEN-byte payloads (default 64) to ADDR:PORT for -t ms
 * (default 7000), BATCH (default 32, at most 256) per sendmmsg(2), as fast
 * as the socket takes them (a datagram the stack drops is not retried),
 * and prints "sent N seconds S pps X". Why not iperf3 -u: its sender is
 * one sendto(2) per datagram plus a clock read, and on a 2-core machine
 * that shares the cores with both tunnel endpoints the sender's cost is
 * part of what is measured; a batch costs one system call.
 * Every loop is bounded by its -t (60 s at most).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 256
#define LEN_MAX 1472
#define T_MAX_MS 60000
#define FIRST_WAIT_MS 5000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int usage(void)
{
	fprintf(stderr, "usage: xb-udpflood recv [-w WARM_MS] [-t MS] ADDR PORT\n"
			"       xb-udpflood send [-l LEN] [-t MS] [-b BATCH] ADDR PORT\n");
	return 2;
}

static long num(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "xb-udpflood: %s `%s' is not a number in %ld..%ld\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static int sockaddr_of(const char *addr, const char *port, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)num(port, "port", 1, 65535));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
		fprintf(stderr, "xb-udpflood: `%s' is not an IPv4 address\n", addr);
		return -1;
	}
	return 0;
}

/* Reads what is queued without waiting; returns datagrams and adds their bytes. */
static int drain(int fd, struct mmsghdr *m, unsigned long long *bytes)
{
	int n = recvmmsg(fd, m, BATCH_MAX, MSG_DONTWAIT, NULL);

	for (int i = 0; i < n; i++)
		*bytes += m[i].msg_len;
	return n < 0 ? 0 : n;
}

static int do_recv(int fd, long warm_ms, long t_ms)
{
	static char buf[BATCH_MAX][LEN_MAX + 1];
	struct iovec iov[BATCH_MAX];
	struct mmsghdr m[BATCH_MAX];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned long long pkts = 0, bytes = 0, junk = 0;
	uint64_t start, end, t;

	for (int i = 0; i < BATCH_MAX; i++) {
		iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = sizeof(buf[i]) };
		m[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	printf("ready\n");
	fflush(stdout);
	if (poll(&p, 1, FIRST_WAIT_MS) != 1) {
		fprintf(stderr, "xb-udpflood: nothing arrived in %d ms\n", FIRST_WAIT_MS);
		return 1;
	}
	start = now_ms() + (uint64_t)warm_ms;
	while (now_ms() < start)
		if (poll(&p, 1, 10) == 1)
			drain(fd, m, &junk);
	end = start + (uint64_t)t_ms;
	while ((t = now_ms()) < end) {
		if (poll(&p, 1, (int)(end - t)) == 1)
			pkts += (unsigned long long)drain(fd, m, &bytes);
	}
	printf("packets %llu bytes %llu seconds %.3f pps %.0f\n", pkts, bytes, t_ms / 1e3,
	       pkts / (t_ms / 1e3));
	return 0;
}

static int do_send(int fd, const struct sockaddr_in *to, long len, long t_ms, long batch)
{
	static char buf[LEN_MAX];
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)len };
	struct mmsghdr m[BATCH_MAX];
	unsigned long long sent = 0;
	uint64_t t0 = now_ms(), end = t0 + (uint64_t)t_ms, t;

	memset(buf, 'x', sizeof(buf));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		perror("xb-udpflood: connect");
		return 1;
	}
	for (int i = 0; i < batch; i++)
		m[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
	while ((t = now_ms()) < end) {
		int n = sendmmsg(fd, m, (unsigned)batch, 0);

		if (n > 0)
			sent += (unsigned long long)n;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED && errno != EINTR) {
			perror("xb-udpflood: sendmmsg");
			return 1;
		}
	}
	t = now_ms() - t0;
	printf("sent %llu seconds %.3f pps %.0f\n", sent, t / 1e3, sent / (t / 1e3));
	return 0;
}

int main(int argc, char **argv)
{
	long len = 64, t_ms = -1, warm_ms = 1000, batch = 32;
	struct sockaddr_in sin;
	int c, fd, rc, rcvbuf = 4 << 20;
	const char *mode;

	if (argc < 2)
		return usage();
	mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "l:t:b:w:")) != -1) {
		switch (c) {
		case 'l': len = num(optarg, "-l", 1, LEN_MAX); break;
		case 't': t_ms = num(optarg, "-t", 1, T_MAX_MS); break;
		case 'b': batch = num(optarg, "-b", 1, BATCH_MAX); break;
		case 'w': warm_ms = num(optarg, "-w", 0, T_MAX_MS); break;
		default: return usage();
		}
	}
	if (argc - optind != 2 || sockaddr_of(argv[optind], argv[optind + 1], &sin) < 0)
		return usage();
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0) {
		perror("xb-udpflood: socket");
		return 1;
	}
	if (!strcmp(mode, "recv")) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			perror("xb-udpflood: bind");
			return 1;
		}
		rc = do_recv(fd, warm_ms, t_ms < 0 ? 5000 : t_ms);
	} else if (!strcmp(mode, "send")) {
		rc = do_send(fd, &sin, len, t_ms < 0 ? 7000 : t_ms, batch);
	} else {
		rc = usage();
	}
	close(fd);
	return rc;
}
