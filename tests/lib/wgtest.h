/* Helpers shared by the WireGuard configuration tests. */
#ifndef XB_TESTS_WGTEST_H
#define XB_TESTS_WGTEST_H

#include "tunnel/wgconf.h"

struct wg_device;

/* A key of WG_KEY_LEN bytes all equal to b. */
void wgtest_fill(uint8_t key[WG_KEY_LEN], uint8_t b);
/* "addr/cidr" and "addr:port" in a static buffer (valid until the next call). */
const char *wgtest_prefix_str(const struct xb_prefix *p);
const char *wgtest_endpoint_str(const union xb_sockaddr *sa);
/* A non-blocking UDP socket on 127.0.0.1, port chosen by the kernel, its
 * address in *addr; rcvbuf > 0: that receive buffer (SO_RCVBUFFORCE).
 * -1 on failure. For tests that run two devices in one process. */
int wgtest_loopback_udp(union xb_sockaddr *addr, int rcvbuf);
/* dev with private key `key' and one peer: pub at endpoint, allowed IPs
 * p[0..n). 0 or wg_device_set()'s error. */
int wgtest_one_peer(struct wg_device *dev, const uint8_t key[WG_KEY_LEN], const uint8_t pub[WG_KEY_LEN],
		    const union xb_sockaddr *endpoint, const struct xb_prefix *p, size_t n);

#endif
