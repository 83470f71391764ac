/* xb-dnsfake: a hostile resolver for tests/net/dns_flood.sh.
 *
 *   xb-dnsfake -l 192.0.2.18 -n 64 -b 0.0.0.0,127.0.0.1,224.0.0.1 -B bad.flood.example
 *
 * Over UDP on -l (port -p, default 53), every AAAA query is answered with
 * -n fresh addresses (2001:db8:f:C::1 to ::N, C a counter per answer; no
 * address is ever answered twice), every A query for the name -B with the
 * addresses -b, any other query with an empty NOERROR. TTL -t (default
 * 300); a list (-t 3000,30) gives answer C the (C mod n)th. With -r R
 * -R T1,T2, an AAAA answer's first R addresses have TTL T1 and come again
 * right after them with TTL T2: the second time is a refresh. Answers are as large as they come, whatever the query's EDNS size
 * said: a hostile resolver does not mind the rules, and the gateway reads
 * UDP answers up to 64 KiB. Runs until killed.
 */
#include "gateway/dns/dns_wire.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BAD_MAX 32
#define TTL_MAX 8

/* Answer c's ith address (1-based). */
static void fresh(uint8_t a[16], uint64_t c, unsigned i)
{
	memset(a, 0, 16);
	a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[5] = 0x0f;
	a[6] = (uint8_t)(c >> 8);
	a[7] = (uint8_t)c;
	a[8] = (uint8_t)(c >> 24);
	a[9] = (uint8_t)(c >> 16);
	a[14] = (uint8_t)(i >> 8);
	a[15] = (uint8_t)i;
}

/* A comma-separated list of TTLs into v (at most max); how many. */
static unsigned ttls(char *arg, unsigned *v, unsigned max)
{
	char *tok, *save;
	unsigned n = 0;

	for (tok = strtok_r(arg, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
		v[n++] = (unsigned)atoi(tok);
	return n;
}

static void usage(void)
{
	fprintf(stderr, "usage: xb-dnsfake -l ADDR [-p PORT] [-n N] [-t TTL[,TTL...]] [-r R -R T1,T2] [-b A,B,... -B NAME]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	struct in_addr bad[BAD_MAX];
	const char *bad_name = "";
	unsigned n = 64, ttl[TTL_MAX] = { 300 }, n_ttl = 1, rep = 0, rttl[2] = { 0 }, n_bad = 0;
	uint64_t counter = 0;
	char *tok, *save;
	int fd, c;

	while ((c = getopt(argc, argv, "l:p:n:t:r:R:b:B:")) != -1) {
		switch (c) {
		case 'l':
			if (inet_pton(AF_INET, optarg, &sa.sin_addr) != 1)
				usage();
			break;
		case 'p': sa.sin_port = htons((uint16_t)atoi(optarg)); break;
		case 'n': n = (unsigned)atoi(optarg); break;
		case 't':
			if (!(n_ttl = ttls(optarg, ttl, TTL_MAX)))
				usage();
			break;
		case 'r': rep = (unsigned)atoi(optarg); break;
		case 'R':
			if (ttls(optarg, rttl, 2) != 2)
				usage();
			break;
		case 'b':
			for (tok = strtok_r(optarg, ",", &save); tok && n_bad < BAD_MAX;
			     tok = strtok_r(NULL, ",", &save))
				if (inet_pton(AF_INET, tok, &bad[n_bad++]) != 1)
					usage();
			break;
		case 'B': bad_name = optarg; break;
		default: usage();
		}
	}
	if (!sa.sin_addr.s_addr || !n || n > 1000 || 2 * rep > n || (rep && !rttl[0]))
		usage();
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("xb-dnsfake: bind");
		return 1;
	}
	for (;;) {
		static uint8_t in[4096], out[65000];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		struct xb_dns_wire_query q;
		struct xb_dns_wire_builder b;
		ssize_t got = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
		size_t len;

		if (got <= 0 || xb_dns_wire_parse_query(&q, in, (size_t)got) != XB_DNS_WIRE_Q_OK)
			continue;
		if (xb_dns_wire_answer_begin(&b, out, sizeof(out), &q, XB_DNS_WIRE_NOERROR, XB_DNS_WIRE_F_AA, 4096) < 0)
			continue;
		if (q.q.qtype == XB_DNS_WIRE_T_AAAA) {
			counter++;
			for (unsigned i = 1; i <= n; i++) {
				uint8_t a[16];
				unsigned t = ttl[counter % n_ttl];

				if (i <= 2 * rep) {
					fresh(a, counter, (i - 1) % rep + 1);
					t = rttl[i > rep];
				} else {
					fresh(a, counter, i);
				}
				xb_dns_wire_answer_aaaa(&b, NULL, t, a);
			}
		} else if (q.q.qtype == XB_DNS_WIRE_T_A && !strcmp(q.text, bad_name)) {
			for (unsigned i = 0; i < n_bad; i++)
				xb_dns_wire_answer_a(&b, NULL, ttl[0], (const uint8_t *)&bad[i]);
		}
		if ((len = xb_dns_wire_answer_finish(&b)))
			sendto(fd, out, len, 0, (struct sockaddr *)&from, fl);
	}
}
