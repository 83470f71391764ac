/* See nlmsg.h. */
#include "gateway/kernel/nlmsg.h"

#include <errno.h>
#include <linux/netlink.h>

bool xb_nlmsg_lengths_ok(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)p;
		size_t step = NLMSG_ALIGN((size_t)h->nlmsg_len);

		if (h->nlmsg_len < sizeof(*h))
			return true;	/* mnl_nlmsg_ok() stops here */
		if (h->nlmsg_len > len)
			return false;
		if (step >= len)
			return true;
		p += step;
		len -= step;
	}
	return true;
}

int xb_nlmsg_run(const void *buf, size_t len, uint32_t seq, uint32_t portid, mnl_cb_t cb,
		 void *data)
{
	if (!xb_nlmsg_lengths_ok(buf, len)) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	return mnl_cb_run(buf, len, seq, portid, cb, data);
}
