/* The DNS service's answers through the device interface's tap that are
 * not part of a tap read's batch (an upstream's, a set update's): udp_send
 * in gateway/dns/dns_service.c frames each and sends it with a sendmsg of
 * its own. This file #includes dns_service.c to call udp_send as the
 * upstream callback does (no batch open); tests/net/dns.sh drives the same
 * path end to end.
 *
 * Checked: the frame on the socketpair's other end (header from the
 * service's address and port to the device's, then the answer, byte for
 * byte), the service's tap_answers counting each answer the socketpair
 * took and not one it refused (full), and the batch path beside it
 * sending nothing until its flush.
 */
#include "tests/lib/check.h"
#include "gateway/dns/dns_service.c"

#include <arpa/inet.h>
#include <sys/socket.h>

/* www.example. A IN, id 0x1234, RD; no EDNS (a 512-byte limit). */
static const uint8_t query[] = {
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0x00, 0x01, 0x00, 0x01,
};

static union xb_sockaddr sa4(const char *ip, uint16_t port)
{
	union xb_sockaddr a = { .in = { .sin_family = AF_INET, .sin_port = htons(port) } };

	inet_pton(AF_INET, ip, &a.in.sin_addr);
	return a;
}

/* The answer: the query with QR set and one A record, 192.0.2.80. */
static size_t make_answer(uint8_t *a)
{
	static const uint8_t rr[] = { 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c,
				      0x00, 0x04, 192, 0, 2, 80 };

	memcpy(a, query, sizeof(query));
	a[2] |= 0x80;
	a[7] = 1;
	memcpy(a + sizeof(query), rr, sizeof(rr));
	return sizeof(query) + sizeof(rr);
}

/* One frame read from fd: an answer from 198.51.100.1:53 to
 * 198.51.100.10:40000, payload ans[0..len). */
static void check_frame(int fd, const uint8_t *ans, size_t len)
{
	uint8_t f[WG_TAP_HDR_LEN + 600];
	struct wg_tap_hdr h;
	static const uint8_t gw[4] = { 198, 51, 100, 1 }, dev[4] = { 198, 51, 100, 10 };

	CHECK_INT(recv(fd, f, sizeof(f), MSG_DONTWAIT), ==, (ssize_t)(WG_TAP_HDR_LEN + len));
	memcpy(&h, f, sizeof(h));
	CHECK_INT(h.family, ==, 4);
	CHECK(!h.zero[0] && !h.zero[1] && !h.zero[2]);
	CHECK_INT(ntohs(h.sport), ==, 53);
	CHECK_INT(ntohs(h.dport), ==, 40000);
	CHECK(!memcmp(h.src, gw, 4) && !memcmp(h.dst, dev, 4));
	for (int i = 4; i < 16; i++)
		CHECK(!h.src[i] && !h.dst[i]);
	CHECK(!memcmp(f + WG_TAP_HDR_LEN, ans, len));
}

TEST(direct_send_through_the_tap)
{
	struct xb_dns_service *s = xb_dns_service_new(NULL, NULL, NULL);
	union xb_sockaddr peer = sa4("198.51.100.10", 40000), local = sa4("198.51.100.1", 53);
	struct xb_dns_wire_query q;
	uint8_t ans[600], fill[2048] = { 0 };
	size_t len = make_answer(ans);
	int sp[2], small = 4096, filled = 0;

	CHECK(s != NULL);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	CHECK(setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	xb_dns_service_set_tap(s, sp[0], 1420);
	CHECK_INT(xb_dns_wire_parse_query(&q, query, sizeof(query)), ==, XB_DNS_WIRE_Q_OK);
	CHECK_INT(s->io->batch.fd, ==, -1);	/* no tap read under way */

	/* Sent at once, framed, counted. */
	udp_send(s, sp[0], &q, ans, len, &peer, sizeof(peer.in), &local);
	CHECK_INT(s->c.tap_answers, ==, 1);
	check_frame(sp[1], ans, len);

	/* Inside a tap read's batch the same answer waits for the flush. */
	s->io->batch.fd = sp[0];
	udp_send(s, sp[0], &q, ans, len, &peer, sizeof(peer.in), &local);
	CHECK(recv(sp[1], fill, sizeof(fill), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	CHECK_INT(s->c.tap_answers, ==, 1);
	flush(s, sp[0]);
	s->io->batch.fd = -1;
	CHECK_INT(s->c.tap_answers, ==, 2);
	check_frame(sp[1], ans, len);

	/* The socketpair full: the answer is not given, not counted. */
	while (filled < 10000 && send(sp[0], fill, sizeof(fill), MSG_DONTWAIT) > 0)
		filled++;
	CHECK(filled > 0 && filled < 10000);
	udp_send(s, sp[0], &q, ans, len, &peer, sizeof(peer.in), &local);
	CHECK_INT(s->c.tap_answers, ==, 2);
	for (int i = 0; i < filled; i++)
		CHECK_INT(recv(sp[1], fill, sizeof(fill), MSG_DONTWAIT), ==, (ssize_t)sizeof(fill));
	CHECK(recv(sp[1], fill, sizeof(fill), MSG_DONTWAIT) < 0 && errno == EAGAIN);

	/* Room again: the next one goes. */
	udp_send(s, sp[0], &q, ans, len, &peer, sizeof(peer.in), &local);
	CHECK_INT(s->c.tap_answers, ==, 3);
	check_frame(sp[1], ans, len);

	close(sp[1]);
	xb_dns_service_free(s);	/* closes sp[0], the tap */
}
