/* Helpers shared by the WireGuard configuration tests. */
#ifndef XB_TESTS_WGTEST_H
#define XB_TESTS_WGTEST_H

#include "tunnel/wgconf.h"

/* A key of WG_KEY_LEN bytes all equal to b. */
void wgtest_fill(uint8_t key[WG_KEY_LEN], uint8_t b);
/* "addr/cidr" and "addr:port" in a static buffer (valid until the next call). */
const char *wgtest_prefix_str(const struct xb_prefix *p);
const char *wgtest_endpoint_str(const union xb_sockaddr *sa);

#endif
