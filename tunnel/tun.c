/* TUN devices; see tun.h. Interface flags and MTU through ioctls on a
 * throwaway socket: two calls do not justify a netlink conversation. */
#include "tunnel/tun.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TUN_NODE "/dev/net/tun"

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

/* open(2) of the TUN node checks its permissions, and CAP_NET_ADMIN does
 * not override them: where no udev made it 0666 (containers, minimal images)
 * an xborderd without root needs an ACL entry for its group, which
 * tmpfiles.d/xborder.conf ships (docs/security.md). Say what is wrong and
 * the one command that mends it; errno is kept. */
static void explain_denied(void)
{
	int saved = errno;
	struct group *g = getgrgid(getegid());
	struct stat st;
	char grp[64];

	if (g)
		snprintf(grp, sizeof(grp), "%s", g->gr_name);
	else
		snprintf(grp, sizeof(grp), "%u", (unsigned)getegid());
	if (stat(TUN_NODE, &st) < 0)
		st.st_mode = 0, st.st_uid = st.st_gid = (uid_t)-1;
	log_warnx(TUN_NODE ": %s: the node is mode %04o, owner %d:%d, and this process runs as "
		  "uid %u gid %u (CAP_NET_ADMIN does not open it); give the group access with "
		  "`setfacl -m g:%s:rw " TUN_NODE "' (tmpfiles.d/xborder.conf does it at boot: "
		  "`systemd-tmpfiles --create xborder.conf')",
		  strerror(saved), (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)st.st_gid,
		  (unsigned)geteuid(), (unsigned)getegid(), grp);
	errno = saved;
}

static int open_tun(char ifname[16], unsigned mtu, bool *offload)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) };
	int fd = open(TUN_NODE, O_RDWR | O_NONBLOCK | O_CLOEXEC), saved;

	if (fd < 0) {
		if (errno == EACCES || errno == EPERM)
			explain_denied();
		return -1;
	}
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
	if (offload && !(*offload = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0)) {
		/* The queue still carries a virtio_net_hdr before every
		 * packet, which the caller, told "no offloads", would not
		 * expect: start again without it (closing the only queue of
		 * a non-persistent TUN removes the interface, so the name is
		 * free again). */
		close(fd);
		return open_tun(ifname, mtu, NULL);
	}
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

void tun_socket_buffers(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}
