/* xb-dnsq: DNS queries at a steady pace or as fast as a window allows, and
 * their latencies; for tests/net/dns_flood.sh.
 *
 *   xb-dnsq -s 198.51.100.1 -t AAAA -n 2000 -w 32 'n%u.flood.example'
 *   xb-dnsq -s 198.51.100.1 -n 20000 -i 5 -u DONE_FILE ov.example
 *
 * Query i asks NAME with %u replaced by i (a fresh name each), over UDP
 * from one socket, at most -w in flight, one every -i ms at most (0: as
 * fast as the window allows), until -n are sent or the file -u exists. A
 * query is answered by any response with its id (truncated ones too: the
 * gateway has learned before it answers); one without a response within
 * -T ms (default 1000) is lost, never retried. Prints one line:
 *
 *   sent N answered N lost N p50_ms X p99_ms X max_ms X
 *
 * and exits 0. Every loop is bounded: -n at most 100000, and the run ends
 * -T ms after the last query at the latest.
 */
#include "common/clock.h"
#include "gateway/dns/dns_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QMAX 100000

struct slot {
	uint64_t sent_ns;	/* 0: free */
	uint32_t i;
};

static struct slot slots[65536];
static double lat_ms[QMAX];

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int send_one(int fd, const char *pat, uint32_t i, uint16_t id, uint16_t type)
{
	struct xb_dns_wire_question q = { .qtype = type, .qclass = XB_DNS_WIRE_C_IN };
	char name[256];
	uint8_t buf[512];
	int n, len;

	snprintf(name, sizeof(name), pat, i);
	if ((n = xb_dns_wire_name_from_text(name, q.name)) <= 0)
		return -1;
	q.name_len = (uint16_t)n;
	if ((len = xb_dns_wire_build_query(buf, sizeof(buf), id, 0x0100, &q, NULL)) < 0)
		return -1;
	return send(fd, buf, (size_t)len, 0) == len ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: xb-dnsq -s SERVER [-p PORT] [-t A|AAAA] [-n COUNT] [-w WINDOW] "
		"[-i INTERVAL_MS] [-T TIMEOUT_MS] [-u STOP_FILE] NAME\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *server = NULL, *until = NULL, *pat;
	unsigned port = 53, n = 1, window = 1, interval = 0, timeout = 1000;
	uint16_t type = XB_DNS_WIRE_T_A, id = 1;
	union { struct sockaddr sa; struct sockaddr_in in; struct sockaddr_in6 in6; } sa = { 0 };
	uint32_t sent = 0, answered = 0, lost = 0, inflight = 0;
	uint64_t next = 0, last_sent = 0;
	int fd, c;

	while ((c = getopt(argc, argv, "s:p:t:n:w:i:T:u:")) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 't': type = !strcmp(optarg, "AAAA") ? XB_DNS_WIRE_T_AAAA : XB_DNS_WIRE_T_A; break;
		case 'n': n = (unsigned)atoi(optarg); break;
		case 'w': window = (unsigned)atoi(optarg); break;
		case 'i': interval = (unsigned)atoi(optarg); break;
		case 'T': timeout = (unsigned)atoi(optarg); break;
		case 'u': until = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || !server || !n || n > QMAX || !window || window > 1024 || !timeout)
		usage();
	pat = argv[optind];
	if (inet_pton(AF_INET, server, &sa.in.sin_addr) == 1) {
		sa.in.sin_family = AF_INET;
		sa.in.sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, server, &sa.in6.sin6_addr) == 1) {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons((uint16_t)port);
	} else {
		usage();
	}
	fd = socket(sa.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, &sa.sa, sa.sa.sa_family == AF_INET ? sizeof(sa.in) : sizeof(sa.in6))) {
		perror("xb-dnsq: socket");
		return 1;
	}
	for (;;) {
		uint64_t now = clock_mono_ns();
		bool stop = sent == n || (until && access(until, F_OK) == 0);
		struct pollfd p = { fd, POLLIN, 0 };
		uint8_t buf[4096];
		ssize_t got;

		if (stop && !inflight)
			break;
		if (stop && now > last_sent + (uint64_t)timeout * NSEC_PER_MSEC * 2)
			break;
		while (!stop && inflight < window && now >= next && sent < n) {
			while (slots[id].sent_ns || !id)
				id++;
			if (send_one(fd, pat, sent, id, type) < 0) {
				if (errno != EAGAIN && errno != ENOBUFS) {
					perror("xb-dnsq: send");
					return 1;
				}
				break;
			}
			slots[id] = (struct slot){ now, sent };
			sent++;
			inflight++;
			last_sent = now;
			next = interval ? now + (uint64_t)interval * NSEC_PER_MSEC : 0;
		}
		poll(&p, 1, 1);
		while ((got = recv(fd, buf, sizeof(buf), 0)) >= 12) {
			uint16_t rid = (uint16_t)(buf[0] << 8 | buf[1]);

			if (!slots[rid].sent_ns)
				continue;	/* late, or not ours */
			lat_ms[answered++] = (double)(clock_mono_ns() - slots[rid].sent_ns) / 1e6;
			slots[rid].sent_ns = 0;
			inflight--;
		}
		now = clock_mono_ns();
		for (uint32_t k = 1; inflight && k < 65536; k++)
			if (slots[k].sent_ns && now - slots[k].sent_ns > (uint64_t)timeout * NSEC_PER_MSEC) {
				slots[k].sent_ns = 0;
				inflight--;
				lost++;
			}
	}
	qsort(lat_ms, answered, sizeof(lat_ms[0]), cmp);
	printf("sent %u answered %u lost %u p50_ms %.2f p99_ms %.2f max_ms %.2f\n", sent, answered,
	       lost + inflight, answered ? lat_ms[answered / 2] : 0.0,
	       answered ? lat_ms[answered - 1 - answered / 100] : 0.0,
	       answered ? lat_ms[answered - 1] : 0.0);
	return 0;
}
