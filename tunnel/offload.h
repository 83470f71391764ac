/* Packet surgery for a TUN device opened with IFF_VNET_HDR and TUNSETOFFLOAD
 * (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6): no I/O, no allocation per packet.
 *
 * Every read from such a TUN returns a struct virtio_net_hdr (in host byte
 * order: the legacy virtio layout, no TUNSETVNETLE/BE) followed by one IP
 * packet, which may be a TCP "super-packet" of up to 64 KB that the kernel
 * expects us to cut into MSS-sized segments (offload_segment). Every write
 * must start with such a header too; offload_gro builds writes, merging TCP
 * segments of one flow into one super-packet that the kernel re-segments
 * exactly as they arrived if it forwards them.
 */
#ifndef XB_TUNNEL_OFFLOAD_H
#define XB_TUNNEL_OFFLOAD_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5	/* USO, Linux 6.2; absent from older headers */
#endif

#define OFFLOAD_VNET_HDR_LEN sizeof(struct virtio_net_hdr)	/* 10 bytes */

/* The largest IP packet either direction handles (IPv4 total length and
 * IPv6 payload length are 16 bits; we stay under both). */
#define OFFLOAD_MAX_IP_LEN 65535

/* Split what one TUN read returned (vnet header + packet, in_len bytes) into
 * ordinary IP packets with complete checksums, written back to back into out.
 * Segment i is at out + offsets[i], lens[i] bytes. Returns the number of
 * segments (>= 1), or -1 when the input is malformed or does not fit in
 * max_segs segments / out_cap bytes. Never reads or writes out of bounds.
 *
 *  - gso_type NONE: one packet; with NEEDS_CSUM the sum over
 *    [csum_start, end) is folded into csum_start + csum_offset.
 *  - TCPV4 / TCPV6 (ECN bit allowed), UDP_L4: needs NEEDS_CSUM with
 *    csum_start at the transport header; the IP length field must match the
 *    read (a truncated read is refused). hdr_len is ignored: the kernel puts
 *    skb_headlen() there, not the header length. IPv6 extension headers,
 *    within the read, are walked: hop-by-hop (first
 *    only), destination options and a routing header with no segments
 *    left, at most 4, each segment carrying them; a fragment header, AH,
 *    ESP, a routing header with segments left, or any other is refused, as
 *    are IPv4 fragments. */
int offload_segment(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
		    size_t *offsets, size_t *lens, int max_segs);

/* Segments first, first + 1, ... of the same read, at most max_segs of
 * them and as many as out_cap holds, back to back as offload_segment()
 * writes them (each with the sequence number, flags and checksums of its
 * place in the whole): the number written, 0 past the last, -1 as
 * offload_segment(). A read of any number of segments is cut this way, a
 * window at a time, whatever the size of its headers. */
int offload_segment_window(const uint8_t *in, size_t in_len, size_t first, uint8_t *out,
			   size_t out_cap, size_t *offsets, size_t *lens, int max_segs);

/* The same, but segment i is written at out + i * stride, lens[i] bytes,
 * each segment at most seg_cap (<= stride) bytes: for a caller that wants
 * each packet in a buffer of its own (the send queue's slots), behind room
 * for a header, without copying it there afterwards. Writes up to
 * max_segs * stride bytes from out. */
int offload_segment_strided(const uint8_t *in, size_t in_len, uint8_t *out, size_t stride,
			    size_t seg_cap, size_t *lens, int max_segs);

/* A batch of IP packets to write to the TUN. */
struct offload_gro;

/* max_bytes bounds the packets a batch holds (each costs its length plus
 * OFFLOAD_VNET_HDR_LEN); it must be at least OFFLOAD_GRO_MIN_BYTES so that an
 * empty batch takes any packet. The batch allocates about 2 * max_bytes.
 * NULL on a too small max_bytes or without memory. */
#define OFFLOAD_GRO_MIN_BYTES (OFFLOAD_MAX_IP_LEN + OFFLOAD_VNET_HDR_LEN)
#define OFFLOAD_GRO_MAX_PKTS 1024	/* packets a batch holds */
struct offload_gro *offload_gro_new(size_t max_bytes);
void offload_gro_free(struct offload_gro *g);

/* Add one IP packet (copied). False when the batch is full (finish, write,
 * reset and add again) or already finished; false on an empty batch means the
 * packet can never be added (len 0 or above OFFLOAD_MAX_IP_LEN). */
bool offload_gro_add(struct offload_gro *g, const uint8_t *pkt, size_t len);

/* Add one IP packet without copying it: pkt must stay as it is until
 * reset, and the OFFLOAD_VNET_HDR_LEN bytes before it are the batch's to
 * overwrite (finish() puts the vnet header there; with OFFLOAD_GRO_IOV it
 * also fixes a merged packet's headers in its first segment). False when the
 * batch holds OFFLOAD_GRO_MAX_PKTS packets or is finished, or on a len of 0
 * or above OFFLOAD_MAX_IP_LEN; without OFFLOAD_GRO_IOV also when the batch
 * is full as for offload_gro_add (finish() copies merged packets into the
 * batch's max_bytes, so a packet taken by reference counts as a copy would).
 * For a caller that decrypted the packet in place behind a header of its own. */
bool offload_gro_add_ref(struct offload_gro *g, uint8_t *pkt, size_t len);

/* Build the writes; returns how many there are. Each is a vnet header plus
 * one packet, ready for one write() to the TUN fd, in an order that keeps
 * every flow's packets in their arrival order. Valid until reset. */
size_t offload_gro_finish(struct offload_gro *g);
const uint8_t *offload_gro_get(const struct offload_gro *g, size_t i, size_t *len);	/* NULL past the end */
void offload_gro_reset(struct offload_gro *g);

/* How a batch is built; set on an empty batch (after new or reset), kept
 * across resets.
 *
 *  - OFFLOAD_GRO_TRUSTED: the packets' bytes are exactly what their sender
 *    made (WireGuard: the AEAD authenticated them), so no TCP checksum is
 *    verified before a segment joins, and lone packets are written with
 *    DATA_VALID (the kernel's CHECKSUM_UNNECESSARY), as Linux's WireGuard
 *    marks what it decrypts. Without it (GRE, unauthenticated) a segment
 *    joins only after its checksum verified and lone packets carry a zero
 *    header, so the kernel verifies them.
 *  - OFFLOAD_GRO_IOV: finish() builds no contiguous writes: each write is
 *    the iovecs offload_gro_iov() gives (for writev), pointing into the
 *    packets as added — the merged packet's headers are fixed where its
 *    first segment lies — and offload_gro_get() returns NULL. Saves copying
 *    every merged byte once more. */
#define OFFLOAD_GRO_TRUSTED 1u
#define OFFLOAD_GRO_IOV 2u
void offload_gro_set_flags(struct offload_gro *g, unsigned flags);
/* After finish(): write i as *n iovecs (at most OFFLOAD_GRO_MAX_PKTS in
 * all); NULL past the end or without OFFLOAD_GRO_IOV. Valid until reset. */
const struct iovec *offload_gro_iov(const struct offload_gro *g, size_t i, int *n);

/* The Internet checksum (RFC 1071): the folded, not complemented, one's
 * complement sum of p taken as big-endian 16-bit words (an odd last byte is
 * padded with zero), plus initial, itself such a sum (any 32-bit value, e.g.
 * an earlier result). Chained calls must pass even lengths except the last.
 * A packet verifies when the sum over it, pseudo-header included, is 0xffff. */
uint16_t offload_csum(const uint8_t *p, size_t len, uint32_t initial);

#endif
