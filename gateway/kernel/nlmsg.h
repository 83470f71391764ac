/* Reading netlink replies safely with libmnl.
 *
 * libmnl's mnl_nlmsg_ok() compares (int)nlmsg_len with what is left, so a
 * message claiming 2^31 octets or more passes it; mnl_nlmsg_next() then
 * steps that far past the buffer and the next header read faults. The
 * kernel sends no such message, and the client (netlink.h) reads only
 * the kernel's datagrams; still, every read is checked with
 * xb_nlmsg_lengths_ok() before libmnl walks it.
 */
#ifndef XB_GATEWAY_NLMSG_H
#define XB_GATEWAY_NLMSG_H

#include <libmnl/libmnl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Does every message in buf[0..len) lie within it (headers walked as
 * mnl_nlmsg_next() walks them, octets after the last whole one ignored)? */
bool xb_nlmsg_lengths_ok(const void *buf, size_t len);

/* mnl_cb_run() on one read, after that check: -1 with errno EBADMSG when a
 * message overruns the read. */
int xb_nlmsg_run(const void *buf, size_t len, uint32_t seq, uint32_t portid, mnl_cb_t cb,
		 void *data);

#endif
