/* libFuzzer: generic netlink replies into wg_kernel.c's parse callbacks
 * (a WireGuard device dump: keys, port, peers, allowed IPs; and the
 * family id lookup), run by xb_nlmsg_run as genl_talk() runs them.
 * wg_kernel.c is #included for its statics. Input: one octet choosing the
 * callback, then the reply, in a buffer of its size rounded up to 4 octets. */
#include "gateway/kernel/nlmsg.h"
#include "gateway/links/wg_kernel.c"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_conf c;
	uint16_t family = 0;
	uint8_t *buf;

	if (size < 1)
		return 0;
	memset(&c, 0, sizeof(c));
	/* The read, then zeroes up to the next 4-octet boundary: libmnl lets
	 * the last attribute reach into a message's alignment padding, which
	 * in talk()'s buffer (MNL_SOCKET_BUFFER_SIZE, a multiple of 4) always
	 * lies within it. */
	if (!(buf = calloc(1, NLMSG_ALIGN(size - 1) + 1)))
		abort();
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		xb_nlmsg_run(buf, size - 1, 0, 0, family_msg_cb, &family);
	else
		xb_nlmsg_run(buf, size - 1, 0, 0, device_msg_cb, &c);
	free(buf);
	for (size_t i = 0; i < c.n_peers; i++)
		check(!wg_key_is_zero(c.peers[i].public_key));
	wg_conf_free(&c);
	return 0;
}
