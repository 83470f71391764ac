/* The netlink client; see netlink.h. */
#include "gateway/kernel/netlink.h"
#include "gateway/kernel/nlmsg.h"

#include <errno.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

int xb_nl_open(struct xb_nl *nl, int bus, unsigned groups)
{
	memset(nl, 0, sizeof(*nl));
	nl->sock = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl->sock)
		return -errno;
	if (mnl_socket_bind(nl->sock, groups, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;

		xb_nl_close(nl);
		return -e;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void xb_nl_close(struct xb_nl *nl)
{
	if (nl->sock)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
}

bool xb_nl_is_open(const struct xb_nl *nl)
{
	return nl->sock != NULL;
}

int xb_nl_timeout(struct xb_nl *nl, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (!nl->sock)
		return -EBADF;
	if (setsockopt(mnl_socket_get_fd(nl->sock), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

uint32_t xb_nl_next_seq(struct xb_nl *nl)
{
	return ++nl->seq;
}

/* One datagram from the kernel into buf[0..XB_NL_RECV_MAX): its length or
 * -errno. Datagrams from any other sender are dropped. */
static ssize_t recv_kernel(struct xb_nl *nl, void *buf, int flags)
{
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = XB_NL_RECV_MAX };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from),
				    .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(mnl_socket_get_fd(nl->sock), &m, flags);

		if (n < 0)
			return -errno;
		if (m.msg_namelen != sizeof(from))
			return -EINVAL;
		if (from.nl_pid != 0) {
			nl->foreign++;
			continue;
		}
		if (m.msg_flags & MSG_TRUNC)
			return -ENOSPC;
		return n;
	}
}

int xb_nl_request(struct xb_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint8_t buf[XB_NL_RECV_MAX];
	uint32_t seq;
	int ret;

	if (!nl->sock)
		return -EBADF;
	seq = nlh->nlmsg_seq = xb_nl_next_seq(nl);
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		ssize_t n = recv_kernel(nl, buf, 0);

		if (n < 0) {
			ret = (int)n;
			break;
		}
		errno = 0;
		ret = xb_nlmsg_run(buf, (size_t)n, seq, nl->portid, cb, data);
		if (ret < 0)
			ret = errno ? -errno : -EIO;
	} while (ret == MNL_CB_OK);
	explicit_bzero(buf, sizeof(buf));
	return ret;	/* MNL_CB_STOP is 0 */
}

int xb_nl_dump(struct xb_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	nlh->nlmsg_flags |= NLM_F_DUMP;
	return xb_nl_request(nl, nlh, cb, data);
}

/* One read of answers, n octets: the first error among the answers to
 * [first, last] goes to *err (when it holds none yet); true once the answer
 * to `last' is among them. Other messages, and answers too short to hold
 * an error, are skipped. */
static bool acks(const void *buf, int n, uint32_t first, uint32_t last, int *err)
{
	bool done = false;

	if (!xb_nlmsg_lengths_ok(buf, (size_t)n))
		return false;
	for (const struct nlmsghdr *h = buf; mnl_nlmsg_ok(h, n); h = mnl_nlmsg_next(h, &n)) {
		const struct nlmsgerr *e;

		if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq > last ||
		    mnl_nlmsg_get_payload_len(h) < sizeof(*e))
			continue;
		e = mnl_nlmsg_get_payload(h);
		if (e->error && !*err)
			*err = e->error;
		if (h->nlmsg_seq == last)
			done = true;
	}
	return done;
}

int xb_nl_batch(struct xb_nl *nl, const void *buf, size_t len, uint32_t first, uint32_t last)
{
	uint8_t rbuf[XB_NL_RECV_MAX];
	bool done = false;
	int err = 0;

	if (!nl->sock)
		return -EBADF;
	if (mnl_socket_sendto(nl->sock, buf, len) < 0)
		return -errno;
	while (!done) {
		ssize_t n = recv_kernel(nl, rbuf, 0);

		if (n < 0)
			return err ? err : (int)n;
		done = acks(rbuf, (int)n, first, last, &err);
	}
	return err;
}

int xb_nl_recv(struct xb_nl *nl, mnl_cb_t cb, void *data)
{
	uint8_t buf[XB_NL_RECV_MAX];
	ssize_t n;
	int len;

	if (!nl->sock)
		return -EBADF;
	if ((n = recv_kernel(nl, buf, MSG_DONTWAIT)) < 0)
		return (int)n;
	len = (int)n;
	if (!xb_nlmsg_lengths_ok(buf, (size_t)n))
		return -EBADMSG;
	for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len))
		if (cb && cb(h, data) < MNL_CB_OK)
			break;
	return 1;
}

void xb_nl_drain(struct xb_nl *nl)
{
	uint8_t buf[XB_NL_RECV_MAX];

	if (!nl->sock)
		return;
	for (int i = 0; i < 64; i++)
		if (recv(mnl_socket_get_fd(nl->sock), buf, sizeof(buf), MSG_DONTWAIT) < 0)
			break;
}
