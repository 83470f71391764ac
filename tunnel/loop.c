/* The device's event loop (data thread) and its UAPI (control) thread.
 *
 * One round: wait for the TUN device, the sockets, a wake-up or the next
 * timer; then, holding the device lock, drain up to WG_BATCH packets from
 * each ready source, run due timers and flush the batched sends.
 * The loop ends on wg_device_stop(), when the TUN interface is deleted, or
 * when the UAPI socket file is removed (checked once a second), as
 * wireguard-go does.
 */
#include "tunnel/device.h"
#include "tunnel/offload.h"
#include "tunnel/tap.h"
#include "tunnel/tun.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct rxbatch {
	uint8_t *seg;			/* a TUN read cut into packets (when not into the send slots) */
	struct mmsghdr mm[WG_BATCH];
	struct iovec iov[WG_BATCH];
	union xb_sockaddr from[WG_BATCH], to[WG_BATCH];
	int ifindex[WG_BATCH];
	size_t gro[WG_BATCH];		/* UDP_GRO segment size, 0 = one datagram */
	uint8_t cmsg[WG_BATCH][CMSG_SPACE(sizeof(struct in6_pktinfo)) + 64];
	uint8_t *buf;
};

/* The UAPI's ops speak positive errno (wgconf.h); the device, -errno. */
static int uapi_get(void *ctx, struct wg_conf *out) { return -wg_device_get(ctx, out); }
static int uapi_set(void *ctx, const struct wg_conf *in) { return -wg_device_set(ctx, in); }

static void *uapi_thread(void *arg)
{
	static const struct wg_uapi_ops ops = { uapi_get, uapi_set };
	struct wg_device *dev = arg;

	while (!dev->stopping) {
		int fd = accept4(dev->uapi_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		wg_uapi_serve(fd, &ops, dev);
		close(fd);
	}
	return NULL;
}

/* Our address and interface the packet came in on, from IP(V6)_PKTINFO, and
 * the size of the datagrams the kernel coalesced into it (UDP_GRO), or 0. */
static void packet_dest(struct msghdr *msg, union xb_sockaddr *to, int *ifindex, size_t *gro)
{
	to->sa.sa_family = AF_UNSPEC;
	*ifindex = 0;
	*gro = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
			int size;
			memcpy(&size, CMSG_DATA(cm), sizeof(size));
			*gro = size > 0 ? (size_t)size : 0;
			continue;
		}
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			to->in = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr = pi.ipi_addr };
			*ifindex = pi.ipi_ifindex;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			to->in6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_addr = pi.ipi6_addr };
			*ifindex = (int)pi.ipi6_ifindex;
		}
	}
}

static void rx_socket(struct wg_device *dev, struct rxbatch *b, int fd)
{
	uint64_t now;
	int n;

	for (int i = 0; i < WG_BATCH; i++) {
		b->iov[i] = (struct iovec){ b->buf + (size_t)i * WG_MAX_PACKET, WG_MAX_PACKET };
		b->mm[i].msg_hdr = (struct msghdr){
			.msg_name = &b->from[i], .msg_namelen = sizeof(b->from[i]),
			.msg_iov = &b->iov[i], .msg_iovlen = 1,
			.msg_control = b->cmsg[i], .msg_controllen = sizeof(b->cmsg[i]),
		};
	}
	n = recvmmsg(fd, b->mm, WG_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return;
	now = clock_mono_ns();
	/* Handshakes waiting in this batch decide whether we are under load. */
	dev->handshakes_this_batch = 0;
	for (int i = 0; i < n; i++) {
		packet_dest(&b->mm[i].msg_hdr, &b->to[i], &b->ifindex[i], &b->gro[i]);
		dev->handshakes_this_batch += wg_handshakes_in(b->buf + (size_t)i * WG_MAX_PACKET,
							      b->mm[i].msg_len, b->gro[i]);
	}
	for (int i = 0; i < n; i++) {
		uint8_t *p = b->buf + (size_t)i * WG_MAX_PACKET;
		size_t len = b->mm[i].msg_len, seg = b->gro[i] ? b->gro[i] : len;

		for (size_t off = 0; off < len; off += seg)
			wg_receive(dev, p + off, len - off < seg ? len - off : seg, &b->from[i], &b->to[i],
				   b->ifindex[i], now);
	}
}

/* A TUN read with offloads may hold a 64 KB TCP segment: cut it into
 * MTU-sized packets (with their checksums) before encryption, straight
 * into the send queue's slots (wg_send_from_tun_gso). */
static void tun_packet(struct wg_device *dev, struct rxbatch *b, size_t len, uint64_t now)
{
	if (!dev->tun_offload) {
		wg_send_from_tun(dev, b->buf, len, now);
		return;
	}
	if (!wg_send_from_tun_gso(dev, b->buf, len, b->seg, WG_SEG_BYTES, now))
		dev->stats.tx_bad_packet++;
}

/* Returns false when the TUN device is gone. */
static bool rx_tun(struct wg_device *dev, struct rxbatch *b)
{
	uint64_t now = clock_mono_ns();

	for (int i = 0; i < WG_BATCH; i++) {
		ssize_t n = read(dev->tun_fd, b->buf, WG_MAX_PACKET + OFFLOAD_VNET_HDR_LEN);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return true;
			log_warn("%s: reading the TUN device", dev->ifname);
			return false;
		}
		tun_packet(dev, b, (size_t)n, now);
	}
	return true;
}

static int wait_ms(const struct wg_device *dev, uint64_t now)
{
	uint64_t next = dev->next_timer_ns;

	if (next <= now)
		return 0;
	if (next - now >= NSEC_PER_SEC)
		return 1000;
	return (int)((next - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
}

static bool uapi_socket_present(const struct wg_device *dev)
{
	char path[128];
	struct stat st;

	wg_uapi_path(path, sizeof(path), dev->ifname);
	return stat(path, &st) == 0;
}

static int loop(struct wg_device *dev, struct rxbatch *b)
{
	uint64_t last_check = clock_mono_ns();

	while (!dev->stopping) {
		struct epoll_event ev[8];
		uint64_t now = clock_mono_ns();
		int n = epoll_wait(dev->epfd, ev, 8, wait_ms(dev, now));

		if (n < 0 && errno != EINTR)
			return -errno;
		pthread_mutex_lock(&dev->lock);
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			if (fd == dev->tun_fd && (ev[i].events & (EPOLLERR | EPOLLHUP) || !rx_tun(dev, b))) {
				log_info("%s: TUN device is gone, stopping", dev->ifname);
				dev->stopping = 1;
			} else if (fd == dev->sock4 || fd == dev->sock6) {
				rx_socket(dev, b, fd);
				wg_tun_flush(dev);
			} else if (fd == wg_tap_fd(dev)) {
				wg_tap_rx(dev, clock_mono_ns());
			} else if (fd == dev->wake_fd) {
				uint64_t v;
				if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warn("%s: wake-up read", dev->ifname);
			}
		}
		now = clock_mono_ns();
		wg_timers_run(dev, now);
		wg_txq_flush(dev);
		if (dev->want_stats) {
			dev->want_stats = 0;
			wg_device_log_stats(dev);
		}
		pthread_mutex_unlock(&dev->lock);
		if (now - last_check >= NSEC_PER_SEC) {
			int mtu = tun_get_mtu(dev->ifname);
			last_check = now;
			/* `ip link set mtu' changes the padding limit. */
			if (mtu > 0)
				dev->mtu = (unsigned)mtu;
			if (!uapi_socket_present(dev)) {
				log_info("%s: UAPI socket removed, stopping", dev->ifname);
				dev->stopping = 1;
			}
		}
	}
	return 0;
}

int wg_device_run(struct wg_device *dev)
{
	struct rxbatch *b = calloc(1, sizeof(*b));
	int r;

	/* One receive slot per datagram; the first also takes a TUN read. */
	if (!b || !(b->buf = malloc((size_t)WG_BATCH * WG_MAX_PACKET + OFFLOAD_VNET_HDR_LEN)) ||
	    !(b->seg = malloc(WG_SEG_BYTES))) {
		if (b)
			free(b->buf);
		free(b);
		return -ENOMEM;
	}
	r = pthread_create(&dev->uapi_thread, NULL, uapi_thread, dev);
	if (r) {
		free(b->seg);
		free(b->buf);
		free(b);
		return -r;
	}
	r = loop(dev, b);
	/* Wake the control thread out of accept() and wait for it. */
	dev->stopping = 1;
	shutdown(dev->uapi_fd, SHUT_RDWR);
	pthread_join(dev->uapi_thread, NULL);
	free(b->seg);
	free(b->buf);
	free(b);
	return r;
}
