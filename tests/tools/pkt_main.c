/* xb-pkt — numbered UDP packets for measuring a path in tests.
 *
 *   xb-pkt send [-c COUNT] [-i INTERVAL_US] [-s SIZE] ADDR PORT
 *   xb-pkt recv [-c COUNT] [-t IDLE_MS] [-g] PORT
 *
 * Each packet carries a magic, a sequence number and its CLOCK_MONOTONIC send
 * time; all namespaces of one machine share that clock, so a receiver can
 * relate arrivals to send times and to commands given elsewhere. The sender
 * paces on absolute deadlines (no drift). The receiver stops after COUNT
 * packets or IDLE_MS without one and prints, as key=value:
 *   received unique duplicates reordered lost first_rx_ns last_rx_ns lost_hash
 * lost_hash is an FNV-1a hash of the lost sequence numbers (for comparing
 * runs); -g also prints one line per gap: gap from=SEQ from_ns=T to=SEQ to_ns=T.
 * The receiver prints "ready" on stderr once bound.
 */
#include "common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PKT_MAGIC 0x78627074u	/* "xbpt" */
#define MAX_COUNT 10000000u

struct pkt_hdr {
	uint32_t magic;
	uint32_t seq;
	uint64_t send_ns;
} __attribute__((packed));

static void usage(void)
{
	fprintf(stderr, "usage: xb-pkt send [-c COUNT] [-i INTERVAL_US] [-s SIZE] ADDR PORT\n"
			"       xb-pkt recv [-c COUNT] [-t IDLE_MS] [-g] PORT\n");
	exit(2);
}

static unsigned long num(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max) {
		fprintf(stderr, "xb-pkt: bad number `%s'\n", s);
		exit(2);
	}
	return v;
}

static int send_main(int argc, char **argv)
{
	unsigned long count = 1000, interval_us = 1000, size = 64;
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
	uint8_t buf[65507] = { 0 };
	struct pkt_hdr *h = (struct pkt_hdr *)buf;
	uint64_t start, first = 0, last = 0;
	int c, fd, err;

	while ((c = getopt(argc, argv, "c:i:s:")) != -1) {
		switch (c) {
		case 'c': count = num(optarg, MAX_COUNT); break;
		case 'i': interval_us = num(optarg, 10000000); break;
		case 's': size = num(optarg, sizeof(buf)); break;
		default: usage();
		}
	}
	if (optind + 2 != argc || size < sizeof(*h))
		usage();
	err = getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai);
	if (err) {
		fprintf(stderr, "xb-pkt: %s: %s\n", argv[optind], gai_strerror(err));
		return 1;
	}
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("xb-pkt: socket");
		return 1;
	}
	freeaddrinfo(ai);
	start = clock_mono_ns();
	for (unsigned long i = 0; i < count; i++) {
		uint64_t due = start + i * interval_us * 1000;
		struct timespec ts = clock_ts(due);

		if (interval_us)
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		h->magic = htonl(PKT_MAGIC);
		h->seq = htonl((uint32_t)i);
		h->send_ns = clock_mono_ns();
		if (!first)
			first = h->send_ns;
		last = h->send_ns;
		/* A refused or unreachable send is part of what is measured. */
		if (send(fd, buf, size, 0) < 0 && errno != ECONNREFUSED && errno != EHOSTUNREACH &&
		    errno != ENETUNREACH && errno != ENOBUFS) {
			perror("xb-pkt: send");
			return 1;
		}
	}
	printf("sent=%lu first_ns=%" PRIu64 " last_ns=%" PRIu64 "\n", count, first, last);
	return 0;
}

struct rx_state {
	uint8_t *seen;		/* per sequence number: times received */
	uint64_t *sent_ns;	/* per sequence number: send time */
	uint32_t max_seq;
	bool any;
	uint64_t received, dups, reordered, first_rx, last_rx;
};

static void rx_packet(struct rx_state *st, const struct pkt_hdr *h, uint32_t limit)
{
	uint32_t seq = ntohl(h->seq);

	if (ntohl(h->magic) != PKT_MAGIC || seq >= limit)
		return;
	st->received++;
	st->last_rx = clock_mono_ns();
	if (!st->first_rx)
		st->first_rx = st->last_rx;
	if (st->seen[seq]++) {
		st->dups++;
		return;
	}
	st->sent_ns[seq] = h->send_ns;
	if (st->any && seq < st->max_seq)
		st->reordered++;
	if (!st->any || seq > st->max_seq)
		st->max_seq = seq;
	st->any = true;
}

static void rx_report(const struct rx_state *st, uint32_t count, bool gaps)
{
	/* Lost = not seen, counted up to the expected count (or the highest seen). */
	uint32_t end = count ? count : (st->any ? st->max_seq + 1 : 0);
	uint64_t lost = 0, hash = 0xcbf29ce484222325ULL, unique = 0;
	int64_t prev = -1;

	for (uint32_t s = 0; s < end; s++) {
		if (st->seen[s]) {
			unique++;
			if (gaps && prev != (int64_t)s - 1)
				printf("gap from=%" PRId64 " from_ns=%" PRIu64 " to=%u to_ns=%" PRIu64 "\n",
				       prev, prev >= 0 ? st->sent_ns[prev] : 0, s, st->sent_ns[s]);
			prev = s;
			continue;
		}
		lost++;
		for (int i = 0; i < 4; i++) {
			hash ^= (s >> (8 * i)) & 0xff;
			hash *= 0x100000001b3ULL;
		}
	}
	printf("received=%" PRIu64 " unique=%" PRIu64 " duplicates=%" PRIu64
	       " reordered=%" PRIu64 " lost=%" PRIu64 " first_rx_ns=%" PRIu64
	       " last_rx_ns=%" PRIu64 " lost_hash=%016" PRIx64 "\n",
	       st->received, unique, st->dups, st->reordered, lost, st->first_rx,
	       st->last_rx, hash);
}

static int recv_main(int argc, char **argv)
{
	unsigned long count = 0, idle_ms = 1000;
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct rx_state st = { 0 };
	uint32_t limit;
	bool gaps = false;
	int c, fd, off = 0, rcvbuf = 8 << 20;
	static uint8_t buf[65536];

	while ((c = getopt(argc, argv, "c:t:g")) != -1) {
		switch (c) {
		case 'c': count = num(optarg, MAX_COUNT); break;
		case 't': idle_ms = num(optarg, 3600000); break;
		case 'g': gaps = true; break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	sin6.sin6_port = htons((uint16_t)num(argv[optind], 65535));
	limit = count ? (uint32_t)count : MAX_COUNT;
	st.seen = calloc(limit, 1);
	st.sent_ns = calloc(limit, sizeof(uint64_t));
	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!st.seen || !st.sent_ns || fd < 0) {
		perror("xb-pkt");
		return 1;
	}
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		perror("xb-pkt: bind");
		return 1;
	}
	fprintf(stderr, "ready\n");
	/* The idle timer starts with the first packet; before it, 10 × idle. */
	while (!count || st.received < count) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, (int)(st.any ? idle_ms : 10 * idle_ms));
		if (r <= 0)
			break;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n >= (ssize_t)sizeof(struct pkt_hdr))
			rx_packet(&st, (const struct pkt_hdr *)buf, limit);
	}
	rx_report(&st, (uint32_t)count, gaps);
	free(st.seen);
	free(st.sent_ns);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "send"))
		return send_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return recv_main(argc - 1, argv + 1);
	usage();
}
