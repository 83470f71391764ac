/* xb-pkt — numbered UDP packets for measuring a path in tests.
 *
 *   xb-pkt send [-c COUNT] [-i INTERVAL_US] [-s SIZE] ADDR PORT
 *   xb-pkt recv [-c COUNT] [-t IDLE_MS] [-g] PORT
 *   xb-pkt tcp-send [-n BYTES] [-r KBIT/S] [-S SEED] ADDR PORT
 *   xb-pkt tcp-recv [-t IDLE_MS] PORT
 *   xb-pkt garbage [-c COUNT] [-S SEED] ADDR PORT
 *   xb-pkt replay PCAP ADDR PORT
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
 *
 * tcp-send streams BYTES pseudo-random bytes (seeded) over one TCP
 * connection, optionally paced to a rate, and prints bytes= and sha256=;
 * tcp-recv accepts one connection and prints the same for what arrived, and
 * progress lines "at_ns=T bytes=N" every 100 ms, so a test can see when a
 * stream stalled and whether it resumed.
 *
 * garbage sends COUNT seeded random datagrams shaped like WireGuard messages
 * (right type byte and length for each message type, random sizes, none,
 * oversized) — for robustness tests. replay sends the UDP payload of every
 * packet in a pcap file (Ethernet or raw IP, as tcpdump -w writes) again.
 * forge sends what a third party can make of such a capture: one 32-byte
 * WireGuard data message carrying the receiver index of the last data
 * message in the capture, counter COUNTER (default 2^64 - 1) and 16 random
 * bytes for a tag; it prints index= (as hex bytes on the wire) and counter=.
 */
#include "common/clock.h"

#include <sodium.h>
#include <sys/time.h>

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
			"       xb-pkt recv [-c COUNT] [-t IDLE_MS] [-g] PORT\n"
			"       xb-pkt tcp-send [-n BYTES] [-r KBIT/S] [-S SEED] ADDR PORT\n"
			"       xb-pkt tcp-recv [-t IDLE_MS] PORT\n"
			"       xb-pkt garbage [-c COUNT] [-S SEED] ADDR PORT\n"
			"       xb-pkt replay PCAP ADDR PORT\n"
			"       xb-pkt forge [-c COUNTER] PCAP ADDR PORT\n");
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

static void print_digest(uint64_t bytes, crypto_hash_sha256_state *h)
{
	uint8_t d[crypto_hash_sha256_BYTES];
	char hex[2 * sizeof(d) + 1];

	crypto_hash_sha256_final(h, d);
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	printf("bytes=%" PRIu64 " sha256=%s\n", bytes, hex);
}

static int tcp_send_main(int argc, char **argv)
{
	unsigned long long total = 1 << 20, seed = 1;
	unsigned long rate_kbit = 0;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	crypto_hash_sha256_state h;
	static uint8_t buf[16384];
	uint64_t sent = 0, start, x;
	int c, fd, err;

	while ((c = getopt(argc, argv, "n:r:S:")) != -1) {
		switch (c) {
		case 'n': total = strtoull(optarg, NULL, 10); break;
		case 'r': rate_kbit = num(optarg, 100000000); break;
		case 'S': seed = strtoull(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind + 2 != argc)
		usage();
	if ((err = getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai))) {
		fprintf(stderr, "xb-pkt: %s: %s\n", argv[optind], gai_strerror(err));
		return 1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("xb-pkt: connect");
		return 1;
	}
	freeaddrinfo(ai);
	crypto_hash_sha256_init(&h);
	x = seed;
	start = clock_mono_ns();
	while (sent < total) {
		size_t n = total - sent < sizeof(buf) ? (size_t)(total - sent) : sizeof(buf);
		for (size_t i = 0; i < n; i += 8) {	/* xorshift64: cheap, deterministic */
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
		}
		if (rate_kbit) {
			struct timespec ts = clock_ts(start + sent * 8 * 1000000ULL / rate_kbit);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		for (size_t off = 0; off < n;) {
			ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
			if (w < 0) {
				perror("xb-pkt: send");
				return 1;
			}
			off += (size_t)w;
		}
		crypto_hash_sha256_update(&h, buf, n);
		sent += n;
	}
	close(fd);
	print_digest(sent, &h);
	return 0;
}

static int tcp_recv_main(int argc, char **argv)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	unsigned long idle_ms = 10000;
	crypto_hash_sha256_state h;
	static uint8_t buf[65536];
	uint64_t got = 0, last_report = 0;
	int c, lfd, fd, off = 0, on = 1;

	while ((c = getopt(argc, argv, "t:")) != -1) {
		if (c != 't')
			usage();
		idle_ms = num(optarg, 3600000);
	}
	if (optind + 1 != argc)
		usage();
	sin6.sin6_port = htons((uint16_t)num(argv[optind], 65535));
	lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0 || listen(lfd, 1) < 0) {
		perror("xb-pkt: listen");
		return 1;
	}
	fprintf(stderr, "ready\n");
	struct pollfd pfd = { lfd, POLLIN, 0 };
	if (poll(&pfd, 1, (int)idle_ms) <= 0 || (fd = accept(lfd, NULL, NULL)) < 0) {
		fprintf(stderr, "xb-pkt: no connection\n");
		return 1;
	}
	crypto_hash_sha256_init(&h);
	for (;;) {
		pfd = (struct pollfd){ fd, POLLIN, 0 };
		if (poll(&pfd, 1, 100) == 0) {
			uint64_t now = clock_mono_ns();
			if (now - last_report >= 100 * NSEC_PER_MSEC) {
				printf("at_ns=%" PRIu64 " bytes=%" PRIu64 "\n", now, got);
				last_report = now;
			}
			if (last_report && now - last_report > idle_ms * NSEC_PER_MSEC)
				break;
			continue;
		}
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		crypto_hash_sha256_update(&h, buf, (size_t)n);
		got += (uint64_t)n;
		uint64_t now = clock_mono_ns();
		if (now - last_report >= 100 * NSEC_PER_MSEC) {
			printf("at_ns=%" PRIu64 " bytes=%" PRIu64 "\n", now, got);
			last_report = now;
		}
	}
	print_digest(got, &h);
	return 0;
}

static int udp_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
	int fd, err = getaddrinfo(host, port, &hints, &ai);

	if (err) {
		fprintf(stderr, "xb-pkt: %s: %s\n", host, gai_strerror(err));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("xb-pkt: socket");
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int garbage_main(int argc, char **argv)
{
	static const size_t sizes[] = { 148, 92, 64, 32, 48, 1452, 0, 1, 3, 4, 15, 16, 31, 65000 };
	unsigned long count = 1000;
	unsigned long long seed = 1;
	static uint8_t buf[65507];
	int c, fd;

	while ((c = getopt(argc, argv, "c:S:")) != -1) {
		switch (c) {
		case 'c': count = num(optarg, MAX_COUNT); break;
		case 'S': seed = strtoull(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind + 2 != argc || (fd = udp_connect(argv[optind], argv[optind + 1])) < 0)
		return optind + 2 != argc ? 2 : 1;
	uint64_t x = seed | 1;
	for (unsigned long i = 0; i < count; i++) {
		size_t len;
		for (size_t k = 0; k < 2048; k += 8) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			memcpy(buf + k, &x, 8);
		}
		len = i % 3 ? sizes[x % (sizeof(sizes) / sizeof(sizes[0]))] : x % 2048;
		if (i % 2) {	/* a plausible header: type 1-4, reserved bytes zero */
			buf[0] = (uint8_t)(1 + (x >> 8) % 4);
			buf[1] = buf[2] = buf[3] = 0;
		}
		if (send(fd, buf, len, 0) < 0 && errno != ECONNREFUSED)
			perror("xb-pkt: send");
		/* 1 ms every 64: a receiver on a busy machine drains its socket
		 * between bursts, so the counts a test reads do not hang on the
		 * scheduler (3 000 datagrams take ~50 ms more). */
		if (i % 64 == 63)
			usleep(1000);
	}
	printf("sent=%lu\n", count);
	return 0;
}

/* Call fn for the UDP payload of every packet in a pcap file (link types
 * Ethernet and raw IP); -1 when the file is not pcap, else 0. */
static int pcap_each(const char *path, void (*fn)(const uint8_t *, size_t, void *), void *ctx)
{
	static uint8_t rec[262144];
	uint8_t gh[24];
	uint32_t linktype;
	FILE *f;

	if (!(f = fopen(path, "rb")) || fread(gh, 1, 24, f) != 24) {
		fprintf(stderr, "xb-pkt: %s: not a pcap file\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	memcpy(&linktype, gh + 20, 4);
	for (;;) {
		uint8_t rh[16];
		uint32_t caplen;
		size_t off = linktype == 1 ? 14 : 0, ihl;
		if (fread(rh, 1, 16, f) != 16)
			break;
		memcpy(&caplen, rh + 8, 4);
		if (caplen > sizeof(rec) || fread(rec, 1, caplen, f) != caplen)
			break;
		if (caplen < off + 1)
			continue;
		if (rec[off] >> 4 == 4 && caplen >= off + 20 && rec[off + 9] == IPPROTO_UDP)
			ihl = (size_t)(rec[off] & 15) * 4;
		else if (rec[off] >> 4 == 6 && caplen >= off + 40 && rec[off + 6] == IPPROTO_UDP)
			ihl = 40;
		else
			continue;
		if (caplen < off + ihl + 8)
			continue;
		fn(rec + off + ihl + 8, caplen - off - ihl - 8, ctx);
	}
	fclose(f);
	return 0;
}

struct replay_ctx {
	int fd;
	unsigned long sent;
};

static void replay_one(const uint8_t *p, size_t len, void *ctx)
{
	struct replay_ctx *r = ctx;

	if (send(r->fd, p, len, 0) >= 0)
		r->sent++;
}

static int replay_main(int argc, char **argv)
{
	struct replay_ctx r = { .fd = -1 };

	if (argc != 4)
		usage();
	if ((r.fd = udp_connect(argv[2], argv[3])) < 0 || pcap_each(argv[1], replay_one, &r) < 0)
		return 1;
	printf("replayed=%lu\n", r.sent);
	return 0;
}

/* The receiver index of the last data message (type 4, 32 bytes or more). */
static void last_index(const uint8_t *p, size_t len, void *ctx)
{
	uint8_t *idx = ctx;

	if (len >= 32 && p[0] == 4 && !p[1] && !p[2] && !p[3]) {
		memcpy(idx + 1, p + 4, 4);
		idx[0] = 1;
	}
}

static int forge_main(int argc, char **argv)
{
	unsigned long long counter = UINT64_MAX;
	uint8_t msg[32], idx[5] = { 0 };
	char *end;
	int c, fd;

	while ((c = getopt(argc, argv, "c:")) != -1) {
		switch (c) {
		case 'c':
			errno = 0;
			counter = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || *optarg == '-') {
				fprintf(stderr, "xb-pkt: bad counter `%s'\n", optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	if (optind + 3 != argc)
		usage();
	if (sodium_init() < 0)
		return 1;
	if (pcap_each(argv[optind], last_index, idx) < 0)
		return 1;
	if (!idx[0]) {
		fprintf(stderr, "xb-pkt: %s: no WireGuard data message in the capture\n", argv[optind]);
		return 1;
	}
	if ((fd = udp_connect(argv[optind + 1], argv[optind + 2])) < 0)
		return 1;
	memset(msg, 0, sizeof(msg));
	msg[0] = 4;
	memcpy(msg + 4, idx + 1, 4);
	for (int i = 0; i < 8; i++)	/* little-endian on the wire */
		msg[8 + i] = (uint8_t)(counter >> (8 * i));
	randombytes_buf(msg + 16, 16);
	if (send(fd, msg, sizeof(msg), 0) < 0) {
		perror("xb-pkt: send");
		return 1;
	}
	printf("index=%02x%02x%02x%02x counter=%llu\n", idx[1], idx[2], idx[3], idx[4], counter);
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
	if (!strcmp(argv[1], "tcp-send"))
		return tcp_send_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tcp-recv"))
		return tcp_recv_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "garbage"))
		return garbage_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "replay"))
		return replay_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "forge"))
		return forge_main(argc - 1, argv + 1);
	usage();
}
