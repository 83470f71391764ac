/* The userspace WireGuard device: a TUN interface, UDP sockets, peers.
 *
 * Threads: one data thread runs the event loop (TUN, UDP, timers); one
 * control thread serves the UAPI socket. Both take dev->lock around what
 * they touch, the data thread once per batch of packets, so peers, keypairs
 * and tables need no finer locking and no reference counts. With more than
 * one worker (wg_device_set_workers), the data thread hands each batch's
 * ChaCha20-Poly1305 work to crypto helpers and waits for them, still
 * holding the lock (tunnel/workers.h); the helpers touch only the batch.
 */
#ifndef XB_DEVICE_H
#define XB_DEVICE_H

#include "common/log.h"
#include "tunnel/allowedips.h"
#include "tunnel/cookie.h"
#include "tunnel/index.h"
#include "tunnel/noise.h"
#include "tunnel/wgconf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define WG_DEFAULT_MTU 1420
#define WG_BATCH 64
#define WG_MAX_PACKET 65536
#define WG_GRO_BYTES (256 * 1024)
/* A TUN read (a TSO super-packet) that does not go into the send slots is
 * cut into scratch WG_TUN_MAX_SEGS packets at a time (offload_segment_window):
 * a read of any number of segments goes whole — 1 364 at a segment size of
 * 48, thousands when TCP options or a hostile origin's tiny segments merged
 * by GRO make them smaller. WG_SEG_BYTES holds a window: each packet with
 * its own copy of the headers (IPv4 and TCP with options: 120 at most;
 * IPv6 extension headers can make them larger, and then a window is cut
 * to as many as fit). */
#define WG_TUN_MAX_SEGS 128
#define WG_SEG_BYTES (WG_MAX_PACKET + WG_TUN_MAX_SEGS * 120)

/* Protocol times in seconds (whitepaper §6.1). Defaults are the whitepaper's;
 * xborder-wg --timers can shorten them, e.g. to watch a rekey in a test. */
struct wg_timing {
	unsigned rekey_after_time, reject_after_time, rekey_attempt_time;
	unsigned rekey_timeout, keepalive_timeout;
	uint64_t rekey_after_messages;
};

enum wg_timer {
	TIMER_RETRANSMIT_HANDSHAKE,
	TIMER_SEND_KEEPALIVE,
	TIMER_NEW_HANDSHAKE,
	TIMER_ZERO_KEY_MATERIAL,
	TIMER_PERSISTENT_KEEPALIVE,
	TIMER_COUNT,
};

struct wg_staged {
	uint16_t len;
	uint8_t data[];
};

struct wg_peer {
	struct wg_device *dev;
	struct wg_peer *next, *prev;		/* device's peer list, in order added */
	struct wg_peer *hash_next;		/* bucket by public key */
	struct noise_handshake handshake;
	struct cookie cookie;
	struct noise_keypair *current, *previous, *next_kp;
	union xb_sockaddr endpoint;
	union xb_sockaddr src;			/* our address the peer last reached */
	int src_ifindex;
	uint16_t persistent_keepalive;
	uint64_t rx_bytes, tx_bytes;
	int64_t last_handshake_sec, last_handshake_nsec;	/* wall clock */
	uint64_t last_sent_handshake_ns;
	uint64_t timers[TIMER_COUNT];		/* monotonic deadline, 0 = off */
	unsigned handshake_attempts;
	bool need_another_keepalive;
	bool sent_lastminute_handshake;
	struct wg_staged *staged[MAX_STAGED_PACKETS];
	unsigned n_staged;
};

struct wg_stats {
	uint64_t rx_bad_length, rx_bad_type, rx_bad_mac, rx_no_keypair, rx_decrypt_failed,
		 rx_replayed, rx_bad_src, rx_bad_inner, rx_handshake_failed, rx_cookie_replies,
		 tx_no_peer, tx_no_endpoint, tx_send_failed, rx_ratelimited, tx_bad_packet;
	/* The local UDP tap (tunnel/tap.h): datagrams taken off the TUN path,
	 * replies sent, malformed replies, datagrams the socket refused. */
	uint64_t tap_queries, tap_answers, tap_bad_reply, tap_dropped;
};

struct wg_device {
	char ifname[16];
	int tun_fd;
	int sock4, sock6;
	int epfd, wake_fd, uapi_fd;
	unsigned mtu;
	uint16_t listen_port;			/* 0 until bound */
	bool udp_gso;			/* UDP_SEGMENT: one send, many datagrams */
	bool tun_offload;		/* TUN with vnet headers, TSO in, GRO out */
	struct offload_gro *gro;	/* decrypted packets waiting for the TUN */
	bool udp_gro;			/* UDP_GRO: one receive, many datagrams */
	uint32_t fwmark;
	struct wg_timing timing;
	struct noise_identity identity;
	struct cookie_checker cookie_checker;
	struct wg_allowedips allowedips;
	struct wg_index index;
	struct wg_peer *peers, *peers_tail;
	struct wg_peer **peer_hash;		/* WG_PEER_HASH buckets */
	size_t n_peers;
	uint64_t next_timer_ns;
	uint64_t last_under_load_ns;
	unsigned handshakes_this_batch;
	struct wg_stats stats;
	struct log_rl rl_tx;		/* the send path's warnings, this device's alone */
	pthread_mutex_t lock;
	pthread_t uapi_thread;
	volatile int stopping;
	volatile int want_stats;	/* set from a signal handler: log counters */
	/* Per-batch scratch for outgoing UDP. */
	struct wg_txq *txq;
	/* Crypto workers (NULL: one, the data thread) and, with them, the data
	 * messages of a receive batch waiting to be opened together. */
	struct wg_workers *workers;
	struct wg_rxq *rxq;
	struct wg_tap *tap;		/* NULL: every packet to the TUN (tunnel/tap.h) */
};

#define WG_PEER_HASH 4096

/* device.c */
/* The device's state alone: no TUN, sockets or UAPI (wg_device_open adds them). */
int wg_device_alloc(struct wg_device **out, const char *ifname, const struct wg_timing *timing);
int wg_device_open(struct wg_device **out, const char *ifname, const struct wg_timing *timing);
int wg_device_run(struct wg_device *dev);	/* until stopped or the TUN/socket goes */
void wg_device_stop(struct wg_device *dev);
/* Ask the loop to log its drop counters (async-signal-safe). */
void wg_device_request_stats(struct wg_device *dev);
void wg_device_log_stats(struct wg_device *dev);
void wg_device_close(struct wg_device *dev);
/* Spread transport data's AEAD over n workers, the data thread included
 * (1 = the data thread alone; wg_workers_default() picks by CPUs). Before
 * wg_device_run. 0 or -errno. */
int wg_device_set_workers(struct wg_device *dev, unsigned n);
/* Apply c (UAPI semantics, tunnel/wgconf.h) / read the configuration and
 * counters back (out freed with wg_conf_free). 0 or -errno; the UAPI
 * server's ops turn that into its positive errno (loop.c). */
int wg_device_set(struct wg_device *dev, const struct wg_conf *c);
int wg_device_get(struct wg_device *dev, struct wg_conf *out);
void wg_timing_default(struct wg_timing *t);
/* "rekey_after_time=10,reject_after_time=15"; false with err on bad input. */
bool wg_timing_parse(struct wg_timing *t, const char *spec, char *err, size_t errlen);

/* peer.c */
struct wg_peer *wg_peer_create(struct wg_device *dev, const uint8_t pub[NOISE_PUBLIC_KEY_LEN]);
void wg_peer_remove(struct wg_peer *peer);
struct wg_peer *wg_peer_lookup(struct wg_device *dev, const uint8_t pub[NOISE_PUBLIC_KEY_LEN]);
void wg_peer_expire_keypairs(struct wg_peer *peer);
void wg_peer_clear_keypairs(struct wg_peer *peer);
void wg_peer_clear_handshake(struct wg_peer *peer);
void wg_peer_unindex_handshake(struct wg_peer *peer, uint32_t idx);
bool wg_peer_stage(struct wg_peer *peer, const uint8_t *pkt, size_t len);
void wg_peer_purge_staged(struct wg_peer *peer);
void wg_peer_install_keypair(struct wg_peer *peer, struct noise_keypair *kp);
bool wg_peer_received_with_keypair(struct wg_peer *peer, struct noise_keypair *kp);
bool wg_keypair_usable(const struct wg_device *dev, const struct noise_keypair *kp, uint64_t now);

/* send.c */
void wg_send_staged(struct wg_peer *peer, uint64_t now);
void wg_send_keepalive(struct wg_peer *peer, uint64_t now);
void wg_send_handshake_initiation(struct wg_peer *peer, bool is_retry, uint64_t now);
void wg_send_handshake_response(struct wg_peer *peer, uint64_t now);
/* True when the packet went to its peer: into the send queue, or staged
 * until a handshake gives a keypair (MAX_STAGED_PACKETS per peer, the
 * oldest then giving way). False: dropped here (no peer for its
 * destination, no endpoint: counted in stats; not IP; out of memory). */
bool wg_send_from_tun(struct wg_device *dev, const uint8_t *pkt, size_t len, uint64_t now);
/* A TUN read with its vnet header (offloads on): segmented into the send
 * queue's slots where it can be, else into scratch and sent packet by
 * packet. False when the read is malformed. */
bool wg_send_from_tun_gso(struct wg_device *dev, const uint8_t *in, size_t in_len, uint8_t *scratch,
			  size_t scratch_cap, uint64_t now);
void wg_send_raw(struct wg_device *dev, const union xb_sockaddr *to, const union xb_sockaddr *from,
		 int ifindex, const void *buf, size_t len);
bool wg_txq_init(struct wg_device *dev);
void wg_txq_free(struct wg_device *dev);
void wg_txq_flush(struct wg_device *dev);

/* receive.c */
/* With workers, wg_receive() queues data messages (their buffers must stay
 * until then) and wg_receive_flush() opens them together and handles them
 * in arrival order; any other message flushes the queue first. Without
 * workers both act at once. wg_tun_flush() flushes the queue first. */
void wg_receive_flush(struct wg_device *dev);
bool wg_rxq_init(struct wg_device *dev);
void wg_rxq_free(struct wg_device *dev);
void wg_tun_flush(struct wg_device *dev);
/* Well-framed initiations and responses in a received datagram made of
 * segments of seg bytes (UDP_GRO; 0 = one datagram): what counts towards
 * "under load". Every segment counts, so a flood that the kernel coalesces
 * weighs as much as one that it does not. */
unsigned wg_handshakes_in(const uint8_t *buf, size_t len, size_t seg);
void wg_receive(struct wg_device *dev, uint8_t *buf, size_t len, const union xb_sockaddr *from,
		const union xb_sockaddr *to, int ifindex, uint64_t now);

/* timers.c */
void wg_timer_mod(struct wg_peer *peer, enum wg_timer t, uint64_t deadline);
void wg_timer_del(struct wg_peer *peer, enum wg_timer t);
void wg_timers_run(struct wg_device *dev, uint64_t now);
void wg_timers_data_sent(struct wg_peer *peer, uint64_t now);
void wg_timers_data_received(struct wg_peer *peer, uint64_t now);
void wg_timers_any_authenticated_packet_sent(struct wg_peer *peer);
void wg_timers_any_authenticated_packet_received(struct wg_peer *peer);
void wg_timers_any_authenticated_packet_traversal(struct wg_peer *peer, uint64_t now);
void wg_timers_handshake_initiated(struct wg_peer *peer, uint64_t now);
void wg_timers_handshake_complete(struct wg_peer *peer);
void wg_timers_session_derived(struct wg_peer *peer, uint64_t now);
void wg_timers_stop(struct wg_peer *peer);

#endif
