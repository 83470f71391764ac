/* The local UDP tap: UDP to a few local endpoints, answered by a process
 * beside the device instead of through the TUN device.
 *
 * A device configured with endpoints (address, port) and one datagram
 * socket (an AF_UNIX socketpair end) takes a decrypted packet that passed
 * cryptokey routing and is a plain UDP datagram to one of them off the TUN
 * path: it leaves on the socket as a frame, WG_TAP_HDR_LEN bytes of header
 * then the UDP payload. Frames read back from the socket (replies) become
 * IPv4/IPv6 + UDP packets, TTL/hop limit 64, checksums filled in, and are
 * sent into the tunnel as if read from the TUN device (wg_send_from_tun).
 * The tunnel library knows nothing of what the endpoints serve.
 *
 * What the tap does not take goes to the TUN device unchanged, for the
 * kernel to deliver or drop and count: IPv4 with options or fragmented,
 * IPv6 with any extension header, a bad IPv4 header checksum, a UDP length
 * that disagrees with the IP length, a bad (IPv6: missing) UDP checksum.
 * Like every decrypted packet, those go marked DATA_VALID (the AEAD
 * authenticated every byte, as Linux's WireGuard marks them
 * CHECKSUM_UNNECESSARY), so the kernel does not check the UDP checksum
 * again: a datagram with a bad one is delivered as its sender made it. An
 * IPv6 datagram without one is still dropped by the kernel.
 *
 * Frame header (both ways), byte offsets:
 *   0      family: 4 or 6
 *   1..3   zero
 *   4..5   source port, network order
 *   6..7   destination port, network order
 *   8..23  source address (IPv4: bytes 8..11, the rest zero)
 *   24..39 destination address (likewise)
 * A query's source is the device, its destination the endpoint; a reply's
 * source must be one of the endpoints and its destination is the device.
 */
#ifndef XB_TAP_H
#define XB_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WG_TAP_MAX_ENDPOINTS	4
#define WG_TAP_HDR_LEN		40
#define WG_TAP_PAYLOAD_MAX	4096	/* a longer query goes to the TUN; a longer reply is dropped (counted) */

struct wg_tap_endpoint {
	uint8_t family;			/* 4 or 6 */
	uint8_t addr[16];		/* IPv4: the first 4 bytes */
	uint16_t port;			/* host order */
};

struct wg_tap_hdr {
	uint8_t family;
	uint8_t zero[3];
	uint16_t sport, dport;		/* network order */
	uint8_t src[16], dst[16];
};
_Static_assert(sizeof(struct wg_tap_hdr) == WG_TAP_HDR_LEN, "the frame header is 40 bytes");

/* Is pkt (one whole IP packet, len its IP length) a UDP datagram the tap
 * takes, to one of eps[0..n)? Then *h is its frame header and the payload
 * is pkt[*off .. *off + *plen). */
bool wg_tap_parse(const struct wg_tap_endpoint *eps, size_t n, const uint8_t *pkt, size_t len,
		  struct wg_tap_hdr *h, size_t *off, size_t *plen);
/* The IP packet for a reply frame (header ‖ payload of at most max_payload
 * bytes) into out (cap bytes): its length, or 0 when the frame is bad
 * (short, unknown family, non-zero reserved bytes, a source that is no
 * endpoint, a destination port 0, a payload too long). */
size_t wg_tap_build(const struct wg_tap_endpoint *eps, size_t n, const uint8_t *frame, size_t len,
		    size_t max_payload, uint8_t *out, size_t cap);

struct wg_device;
/* Tap UDP to eps[0..n) through fd (taken over when this returns 0: the
 * device closes it); n 0 turns the tap off (fd, if any, closed). Any time,
 * from any thread. 0 or -errno (fd left to the caller). */
int wg_device_set_tap(struct wg_device *dev, int fd, const struct wg_tap_endpoint *eps, size_t n);
/* The data thread's side, under the device lock. wg_tap_take() queues pkt
 * (which must stay until wg_tap_flush) when the tap takes it. */
bool wg_tap_take(struct wg_device *dev, const uint8_t *pkt, size_t len);
void wg_tap_flush(struct wg_device *dev);
/* -1: no tap. Also safe from the one thread that calls wg_device_set_tap(). */
int wg_tap_fd(const struct wg_device *dev);
void wg_tap_rx(struct wg_device *dev, uint64_t now);
void wg_tap_free(struct wg_device *dev);

#endif
