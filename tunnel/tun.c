/* TUN devices; see tun.h. Interface flags and MTU through ioctls on a
 * throwaway socket: two calls do not justify a netlink conversation. */
#include "tunnel/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int ifreq_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r, saved;

	if (s < 0)
		return -1;
	r = ioctl(s, req, ifr);
	saved = errno;
	close(s);
	errno = saved;
	return r;
}

int tun_set_mtu(const char *ifname, unsigned mtu)
{
	struct ifreq ifr = { .ifr_mtu = (int)mtu };

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	return ifreq_ioctl(SIOCSIFMTU, &ifr);
}

int tun_get_mtu(const char *ifname)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	return ifreq_ioctl(SIOCGIFMTU, &ifr) < 0 ? -1 : ifr.ifr_mtu;
}

static int set_up(const char *ifname)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ifreq_ioctl(SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

static int open_tun(char ifname[16], unsigned mtu, bool *offload)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
	if (offload)
		*offload = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0;
	snprintf(ifname, IFNAMSIZ, "%s", ifr.ifr_name);
	if (mtu && tun_set_mtu(ifname, mtu) < 0)
		goto fail;
	if (set_up(ifname) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int tun_open(char ifname[16], unsigned mtu) { return open_tun(ifname, mtu, NULL); }

int tun_open_offload(char ifname[16], unsigned mtu, bool *offload) { return open_tun(ifname, mtu, offload); }
