/* libFuzzer: ctnetlink dump replies into conntrack.c's parse callbacks
 * (entry_cb choosing the entries to delete, stats_cb counting them), run by
 * xb_nlmsg_run as talk() runs them. conntrack.c is #included for its statics.
 * Input: one octet (bit 0: IPv6 dump; bit 1: the statistics callback), then
 * the reply, in a buffer of its size rounded up to 4 octets. Checks: a victim's tuple is
 * within its buffer and it names a key that was asked for. */
#include "gateway/kernel/nlmsg.h"
#include "gateway/kernel/conntrack.c"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct victim *v;
	static struct key k4[2] = { { { 198, 51, 100, 10 }, 0 }, { { 198, 51, 100, 20 }, 1 } };
	static struct key k6[1] = { { { 0x20, 0x01, 0x0d, 0xb8, [15] = 10 }, 0 } };
	struct dump d = { 0 };
	long entries = -1;
	uint8_t *buf;

	if (size < 1)
		return 0;
	if (!v && !(v = calloc(XB_CONNTRACK_BATCH, sizeof(*v))))
		abort();
	d.family = data[0] & 1 ? AF_INET6 : AF_INET;
	d.keys = data[0] & 1 ? k6 : k4;
	d.n_keys = data[0] & 1 ? 1 : 2;
	d.v = v;
	/* The read, then zeroes up to the next 4-octet boundary: libmnl lets
	 * the last attribute reach into a message's alignment padding, which
	 * in talk()'s buffer (MNL_SOCKET_BUFFER_SIZE, a multiple of 4) always
	 * lies within it. */
	if (!(buf = calloc(1, NLMSG_ALIGN(size - 1) + 1)))
		abort();
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 2)
		xb_nlmsg_run(buf, size - 1, 0, 0, stats_cb, &entries);
	else
		xb_nlmsg_run(buf, size - 1, 0, 0, entry_cb, &d);
	free(buf);
	check(d.n <= XB_CONNTRACK_BATCH);
	for (size_t i = 0; i < d.n; i++)
		check(v[i].tuple_len <= TUPLE_MAX && v[i].who < d.n_keys);
	return 0;
}
