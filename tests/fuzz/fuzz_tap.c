/* libFuzzer: the local UDP tap's packet parser and reply decoder
 * (tunnel/tap.h). The first byte picks which; the rest is the input:
 *   even  a decrypted IP packet for wg_tap_parse (endpoints 192.0.2.1:53
 *         and [2001:db8::1]:53);
 *   odd   a reply frame for wg_tap_build (max payload: byte >> 1, times
 *         16).
 * Oracle, besides the sanitizers: the two agree. A packet the parser takes
 * has its payload inside it and its destination an endpoint; a frame the
 * builder takes gives a packet that the parser, with the frame's
 * destination as its endpoint, takes back with the same addresses, ports
 * and payload. */
#include "tunnel/tap.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t pkt[40 + 8 + 65536];

static size_t endpoints(struct wg_tap_endpoint eps[2])
{
	eps[0] = (struct wg_tap_endpoint){ .family = 4, .port = 53, .addr = { 192, 0, 2, 1 } };
	eps[1] = (struct wg_tap_endpoint){ .family = 6, .port = 53 };
	inet_pton(AF_INET6, "2001:db8::1", eps[1].addr);
	return 2;
}

static void parse(const uint8_t *p, size_t len)
{
	struct wg_tap_endpoint eps[2];
	struct wg_tap_hdr h;
	size_t n = endpoints(eps), off = 0, plen = 0;

	if (!wg_tap_parse(eps, n, p, len, &h, &off, &plen))
		return;
	if (off + plen != len || (h.family != 4 && h.family != 6) || ntohs(h.dport) != 53 ||
	    memcmp(h.dst, eps[h.family == 4 ? 0 : 1].addr, 16))
		abort();
}

static void build(const uint8_t *f, size_t len, size_t max)
{
	struct wg_tap_endpoint eps[2], back;
	struct wg_tap_hdr h, g;
	size_t n = endpoints(eps), off, plen, got = wg_tap_build(eps, n, f, len, max, pkt, sizeof(pkt));

	if (!got)
		return;
	memcpy(&h, f, sizeof(h));
	back = (struct wg_tap_endpoint){ .family = h.family, .port = ntohs(h.dport) };
	memcpy(back.addr, h.dst, 16);
	if (len - WG_TAP_HDR_LEN > max || !wg_tap_parse(&back, 1, pkt, got, &g, &off, &plen) ||
	    memcmp(&g, &h, sizeof(g)) || plen != len - WG_TAP_HDR_LEN ||
	    memcmp(pkt + off, f + WG_TAP_HDR_LEN, plen))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		build(data + 1, size - 1, (size_t)(data[0] >> 1) * 16);
	else
		parse(data + 1, size - 1);
	return 0;
}
