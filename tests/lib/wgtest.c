/* Helpers shared by the WireGuard configuration tests; see wgtest.h. */
#include "tests/lib/wgtest.h"
#include "tunnel/device.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void wgtest_fill(uint8_t key[WG_KEY_LEN], uint8_t b)
{
	memset(key, b, WG_KEY_LEN);
}

const char *wgtest_prefix_str(const struct xb_prefix *p)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char a[INET6_ADDRSTRLEN];

	inet_ntop(p->family, p->addr, a, sizeof(a));
	snprintf(buf, sizeof(buf), "%s/%u", a, p->cidr);
	return buf;
}

const char *wgtest_endpoint_str(const union xb_sockaddr *sa)
{
	static char buf[128];

	xb_endpoint_format(buf, sizeof(buf), sa);
	return buf;
}

int wgtest_loopback_udp(union xb_sockaddr *addr, int rcvbuf)
{
	socklen_t len = sizeof(addr->in);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	*addr = (union xb_sockaddr){ .in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) } };
	if (bind(fd, &addr->sa, sizeof(addr->in)) < 0 || getsockname(fd, &addr->sa, &len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int wgtest_one_peer(struct wg_device *dev, const uint8_t key[WG_KEY_LEN], const uint8_t pub[WG_KEY_LEN],
		    const union xb_sockaddr *endpoint, const struct xb_prefix *p, size_t n)
{
	struct wg_conf c = { .has_private_key = true };
	struct wg_peer_conf *pc;
	int r = -ENOMEM;

	memcpy(c.private_key, key, WG_KEY_LEN);
	if ((pc = wg_conf_add_peer(&c))) {
		memcpy(pc->public_key, pub, WG_KEY_LEN);
		pc->endpoint = *endpoint;
		r = 0;
		for (size_t i = 0; !r && i < n; i++)
			if (!xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p[i]))
				r = -ENOMEM;
		if (!r)
			r = wg_device_set(dev, &c);
	}
	wg_conf_free(&c);
	return r;
}
