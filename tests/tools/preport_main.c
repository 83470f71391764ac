/* xb-preport: a posture report load generator for bench/posture.sh.
 *
 *   xb-preport -g 198.18.0.1 -p 8443 -b 198.18.1.0 -n 10000 -i 10 -t 30 -w 8 -o lat
 *
 * N devices with consecutive IPv4 addresses from -b (each must be a local
 * address: the tool binds it, so the gateway sees the device's own
 * source) report every -i seconds for -t seconds, spread evenly over the
 * interval: fetch a nonce, post a report. W worker processes share the
 * devices (device i goes to worker i mod W). Each report alternates
 * between a passing and a failing os.version ("12", "11"), so every
 * report changes the device's set membership — the expensive case.
 *
 * Per worker, one line per report to OUT.W: the POST's latency in
 * microseconds, from the request's first byte sent to the 200's last byte
 * read. The gateway answers only after enforcing, so this bounds the
 * report → enforcement latency from above. A report not answered 200 is a
 * line "err STATUS". Lateness against the schedule is summed on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in gw;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* One request from src, Connection: close; the status, or -1. */
static int request(uint32_t src, const char *req, char *buf, size_t len)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(src) };
	struct timeval tv = { 2, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
	size_t n = 0;
	ssize_t k;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&s, sizeof(s)) == 0 &&
	    connect(fd, (struct sockaddr *)&gw, sizeof(gw)) == 0 &&
	    write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		while (n + 1 < len && (k = read(fd, buf + n, len - n - 1)) > 0)
			n += (size_t)k;
		buf[n] = '\0';
		if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
			status = -1;
	}
	close(fd);
	return status;
}

/* Nonce, then the report; the report's latency in us, or -status. */
static long report(uint32_t src, uint64_t seq, bool pass)
{
	char buf[2048], body[256], req[512], *nonce, *end;
	uint64_t t0;
	int st;

	st = request(src, "GET /v1/nonce HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
		     buf, sizeof(buf));
	if (st != 200 || !(nonce = strstr(buf, "\"nonce\":\"")) || !(end = strchr(nonce + 9, '"')))
		return st > 0 ? -st : -1;
	*end = '\0';
	snprintf(body, sizeof(body), "{\"seq\":%llu,\"nonce\":\"%s\",\"time\":0,\"os\":"
		 "{\"family\":\"linux\",\"version\":\"%s\"}}", (unsigned long long)seq, nonce + 9,
		 pass ? "12" : "11");
	snprintf(req, sizeof(req), "POST /v1/report HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
	t0 = now_us();
	st = request(src, req, buf, sizeof(buf));
	return st == 200 ? (long)(now_us() - t0) : st > 0 ? -st : -1;
}

static int worker(unsigned w, unsigned nw, uint32_t base, unsigned n, unsigned interval,
		  unsigned duration, const char *out)
{
	char path[512];
	FILE *f;
	uint64_t start = now_us(), late = 0, wall;
	struct timespec ts;

	snprintf(path, sizeof(path), "%s.%u", out, w);
	if (!(f = fopen(path, "w")))
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	for (unsigned k = 0; (uint64_t)k * interval < duration; k++) {
		for (unsigned i = w; i < n; i += nw) {
			uint64_t due = start + ((uint64_t)k * interval * 1000000) +
				       (uint64_t)i * interval * 1000000 / n, t = now_us();
			long l;

			if (due > t)
				usleep((useconds_t)(due - t));
			else
				late += t - due;
			l = report(base + i, wall + k, k % 2 == 0);
			if (l >= 0)
				fprintf(f, "%ld\n", l);
			else
				fprintf(f, "err %ld\n", -l);
		}
	}
	fclose(f);
	fprintf(stderr, "xb-preport: worker %u: %.1f s late in total\n", w, (double)late / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	const char *gwaddr = NULL, *first = NULL, *out = "preport";
	unsigned port = 8443, n = 100, interval = 10, duration = 30, nw = 4;
	struct in_addr b;
	int c, rc = 0;

	while ((c = getopt(argc, argv, "g:p:b:n:i:t:w:o:")) != -1) {
		switch (c) {
		case 'g': gwaddr = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'b': first = optarg; break;
		case 'n': n = (unsigned)atoi(optarg); break;
		case 'i': interval = (unsigned)atoi(optarg); break;
		case 't': duration = (unsigned)atoi(optarg); break;
		case 'w': nw = (unsigned)atoi(optarg); break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	gw.sin_family = AF_INET;
	gw.sin_port = htons((uint16_t)port);
	if (!gwaddr || !first || inet_pton(AF_INET, gwaddr, &gw.sin_addr) != 1 ||
	    inet_pton(AF_INET, first, &b) != 1 || !n || !interval || !nw || nw > 64) {
		fprintf(stderr, "usage: xb-preport -g GW -b FIRST [-p PORT] [-n N] [-i S] [-t S] "
			"[-w WORKERS] [-o OUT]\n");
		return 2;
	}
	for (unsigned w = 0; w < nw; w++)
		if (fork() == 0)
			_exit(worker(w, nw, ntohl(b.s_addr), n, interval, duration, out));
	for (unsigned w = 0; w < nw; w++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = 1;
	}
	return rc;
}
