/* libFuzzer: rtnetlink dump replies into rtnl.c's parse callbacks (rules
 * and routes for the sweep, a link's kind), run by xb_nlmsg_run as talk()
 * runs them on what the socket read. rtnl.c is #included for its statics.
 * Input: one octet choosing the callback, then the reply (one or more
 * netlink messages), in a buffer of its size rounded up to 4 octets. */
#include "gateway/kernel/nlmsg.h"
#include "gateway/kernel/rtnl.c"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sweep *s;
	static const mnl_cb_t cbs[] = { rule_cb, route_cb, link_cb };
	char kind[16];
	uint8_t *buf;
	void *ctx;

	if (size < 1)
		return 0;
	if (!s && !(s = calloc(1, sizeof(*s))))
		abort();
	s->n_rules = s->n_routes = 0;
	s->lo = s->tlo = 0;
	s->hi = s->thi = UINT32_MAX;
	memset(kind, 'x', sizeof(kind));
	ctx = data[0] % 3 == 2 ? (void *)kind : (void *)s;
	/* The read, then zeroes up to the next 4-octet boundary: libmnl lets
	 * the last attribute reach into a message's alignment padding, which
	 * in talk()'s buffer (MNL_SOCKET_BUFFER_SIZE, a multiple of 4) always
	 * lies within it. */
	if (!(buf = calloc(1, NLMSG_ALIGN(size - 1) + 1)))
		abort();
	memcpy(buf, data + 1, size - 1);
	xb_nlmsg_run(buf, size - 1, 0, 0, cbs[data[0] % 3], ctx);
	free(buf);
	check(s->n_rules <= sizeof(s->rules) / sizeof(s->rules[0]));
	check(s->n_routes <= sizeof(s->routes) / sizeof(s->routes[0]));
	check(data[0] % 3 != 2 || memchr(kind, 0, sizeof(kind)) || kind[0] == 'x');
	return 0;
}
