/* The DNS service's listening sockets: opened on the gateway's addresses,
 * bound to the device interface. See dns_service.c for their use.
 */
#include "gateway/dns/dns_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int dns_open_sock(const union xb_sockaddr *addr, int type, const char *ifname)
{
	int one = 1, fd = socket(addr->sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	socklen_t len = addr->sa.sa_family == AF_INET ? sizeof(addr->in) : sizeof(addr->in6);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	if (addr->sa.sa_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	} else {
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	}
	if (bind(fd, &addr->sa, len) < 0 || (type == SOCK_STREAM && listen(fd, 64) < 0)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void dns_close_listen(struct xb_dns_service *s, int i)
{
	if (s->udp[i] >= 0)
		close(s->udp[i]);
	if (s->tcp[i] >= 0)
		close(s->tcp[i]);
	s->udp[i] = s->tcp[i] = -1;
	memset(&s->bound[i], 0, sizeof(s->bound[i]));
}

void dns_gateway_addrs(const struct xb_policy *p, union xb_sockaddr a[DNS_LISTEN_MAX])
{
	memset(a, 0, sizeof(*a) * DNS_LISTEN_MAX);
	if (!p->dns.enabled)
		return;
	if (p->gateway.has_pool4) {
		a[0].in.sin_family = AF_INET;
		a[0].in.sin_addr = p->gateway.address4;
		a[0].in.sin_port = htons(p->gateway.dns_port);
	}
	if (p->gateway.has_pool6) {
		a[1].in6.sin6_family = AF_INET6;
		a[1].in6.sin6_addr = p->gateway.address6;
		a[1].in6.sin6_port = htons(p->gateway.dns_port);
	}
}

/* SO_BINDTODEVICE holds the interface's index as it was then: a device
 * interface deleted and made again (xb_apply_revive) has a new one, and
 * the sockets would take nothing from it. Binding again by name takes the
 * new index; the sockets, their addresses and the epoll set stay. */
void xb_dns_service_rebind(struct xb_dns_service *s)
{
	for (int i = 0; i < DNS_LISTEN_MAX; i++)
		for (int k = 0; k < 2; k++) {
			int fd = k ? s->tcp[i] : s->udp[i];

			if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, s->bound_if,
						  (socklen_t)strlen(s->bound_if)) < 0)
				log_warn("dns: binding a listening socket to %s again", s->bound_if);
		}
}
