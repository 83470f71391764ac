/* The one netlink client: a libmnl socket on one bus (NETLINK_ROUTE,
 * NETLINK_NETFILTER, NETLINK_GENERIC), one request at a time. rtnl.c,
 * conntrack.c, nft_set.c, drops.c, wg_kernel.c and gre_kernel.c (through
 * rtnl.c) all speak through it; no other file opens, sends on or reads a netlink
 * socket.
 *
 * Rules:
 * - Errors come back as a negative errno value, 0 on success, from every
 *   call. An error ack from the kernel is its (negated) error; a reply that
 *   overruns its read is -EBADMSG (see nlmsg.h); a datagram larger than
 *   XB_NL_RECV_MAX is -ENOSPC.
 * - Only the kernel is listened to: every read whose sender's port id is not
 *   0 is dropped unread and counted in `foreign' (a netlink socket takes
 *   unicasts from any process that knows its port id, and sequence numbers
 *   are guessable).
 * - Calls block (but xb_nl_recv) until the answer is complete: the ack, or a dump's
 *   NLMSG_DONE. With xb_nl_timeout() set, a read that waits longer fails the
 *   call with -EAGAIN. Callbacks run during the call, in reply order.
 * - Replies are read into a buffer of XB_NL_RECV_MAX octets on the stack,
 *   wiped before the call returns (WireGuard's GET_DEVICE replies carry
 *   keys). Requests are built by the caller, at most XB_NL_RECV_MAX octets
 *   each, so that an echoed request in an error ack fits a read.
 * - The client stamps each request's sequence number; a reply with another
 *   one, or for another port id, fails the call (-EPROTO, -ESRCH), except in
 *   a batch, where answers outside its range are skipped.
 */
#ifndef XB_GATEWAY_NETLINK_H
#define XB_GATEWAY_NETLINK_H

#include <libmnl/libmnl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_NL_RECV_MAX	8192	/* octets per read */

struct xb_nl {
	struct mnl_socket *sock;	/* NULL: closed */
	uint32_t portid;		/* ours, given by the kernel at bind */
	uint32_t seq;			/* the last one used */
	unsigned long foreign;		/* reads dropped: not from the kernel */
};

/* Opens a socket on bus (NETLINK_*) bound to the multicast groups (a
 * bitmask, 0 for none), close-on-exec. */
int xb_nl_open(struct xb_nl *nl, int bus, unsigned groups);
/* Safe on a closed or never-opened (zeroed) client. */
void xb_nl_close(struct xb_nl *nl);
bool xb_nl_is_open(const struct xb_nl *nl);
/* Bounds every later read to ms milliseconds (0: wait for ever). */
int xb_nl_timeout(struct xb_nl *nl, unsigned ms);
/* The next sequence number, for a caller that builds a batch. */
uint32_t xb_nl_next_seq(struct xb_nl *nl);

/* Sends nlh (its sequence number stamped here) and reads until its ack or,
 * for a dump, NLMSG_DONE, calling cb (may be NULL) for each other reply. */
int xb_nl_request(struct xb_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);
/* xb_nl_request() with NLM_F_DUMP set: cb sees every message of the dump,
 * over as many reads as it takes. */
int xb_nl_dump(struct xb_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);
/* Sends len octets of messages built by the caller with sequence numbers
 * from xb_nl_next_seq() (e.g. an nfnetlink batch, begin ... end) and reads
 * the answers until the one to `last': the first error answered to a
 * message in [first, last], or 0. Every message in the range must ask for
 * an ack (NLM_F_ACK). Other answers are skipped, as is a read that overruns
 * itself (with a timeout set, that one then ends the wait). */
int xb_nl_batch(struct xb_nl *nl, const void *buf, size_t len, uint32_t first, uint32_t last);
/* Without blocking, one datagram the kernel sent unasked (multicast, or a
 * subsystem's messages such as nfnetlink_log's): cb for each message in it.
 * 1 when one was read, -EAGAIN when none is queued, -ENOBUFS when the kernel
 * dropped messages for want of socket buffer (the socket stays usable). */
int xb_nl_recv(struct xb_nl *nl, mnl_cb_t cb, void *data);
/* Drops whatever is queued unread (answers to a call that timed out), at
 * most 64 reads, without blocking. */
void xb_nl_drain(struct xb_nl *nl);

#endif
