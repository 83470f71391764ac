/* TUN devices: layer-3 packets, no packet-information header. */
#ifndef XB_TUN_H
#define XB_TUN_H

#include <stdbool.h>

/* Create or attach to TUN interface ifname (non-blocking fd), set its MTU
 * (0: leave it) and bring it up. Returns the fd or -1 with errno set;
 * ifname receives the kernel's name for it. */
int tun_open(char ifname[16], unsigned mtu);
/* The same with offloads: every read and write then carries a 10-byte
 * virtio_net_hdr (tunnel/offload.h), reads may return 64 KB TCP segments to
 * cut up, writes may hand the kernel coalesced ones. *offload tells whether
 * the kernel took them (TUNSETOFFLOAD with CSUM, TSO4, TSO6); when it did
 * not, the TUN is opened again without IFF_VNET_HDR: plain packets. */
int tun_open_offload(char ifname[16], unsigned mtu, bool *offload);
int tun_set_mtu(const char *ifname, unsigned mtu);
/* Socket buffers of bytes each way for a data path's outer socket (the
 * WireGuard UDP sockets, the GRE socket): a peer's batch arrives while the
 * data thread waits for a core, and the default (about 200 KB) drops it.
 * SO_*BUFFORCE needs CAP_NET_ADMIN, which making the TUN takes; without it
 * net.core.[rw]mem_max caps the plain request. */
void tun_socket_buffers(int fd, int bytes);
int tun_get_mtu(const char *ifname);

#endif
