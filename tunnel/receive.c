/* Incoming UDP: handshake messages, cookie replies, data.
 *
 * Rules enforced here (whitepaper §5.4, §6):
 * - every handshake message must carry a valid mac1; under load (many
 *   handshakes queued, sticky for a second) also a valid mac2, else the
 *   sender gets a cookie reply, and each source is rate limited;
 * - no unauthenticated byte changes any state: keypairs, the replay window,
 *   timers, endpoints, handshake and cookie state move only after the
 *   message's AEAD tag (data, response, cookie reply) or the handshake's
 *   static-static step and timestamp (initiation) have checked out. Before
 *   that a message may only be counted as dropped; mac1/mac2 and the under-
 *   load state are the one exception, by design (they decide how much work
 *   an unauthenticated sender gets, never what a session does);
 * - a data message is authenticated before its counter is judged at all: a
 *   receiver index is in clear in every data message, so judging the
 *   counter first would let anyone end a session with one 32-byte message
 *   (counter 2^64 - 1). A keypair past REJECT_AFTER_TIME is refused up front
 *   (local clock only); one whose peer has sent an authentic counter at or
 *   past REJECT_AFTER_MESSAGES takes no more;
 * - the first data message on the responder's new keypair confirms it;
 * - an authenticated message moves the peer's endpoint to its source
 *   (roaming);
 * - a decrypted packet is delivered only if its inner source address is
 *   in the sending peer's allowed IPs (cryptokey routing): to the TUN
 *   device, or to the local UDP tap when it takes it (tap.h).
 */
#include "tunnel/device.h"
#include "tunnel/offload.h"
#include "tunnel/tap.h"
#include "tunnel/workers.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Handshakes in one receive batch above which we are "under load". */
#define UNDER_LOAD_HANDSHAKES (WG_BATCH / 8)

static void set_endpoint(struct wg_peer *peer, const union xb_sockaddr *from,
			 const union xb_sockaddr *to, int ifindex)
{
	peer->endpoint = *from;
	if (to)
		peer->src = *to;
	peer->src_ifindex = ifindex;
}

static bool under_load(struct wg_device *dev, uint64_t now)
{
	if (dev->handshakes_this_batch >= UNDER_LOAD_HANDSHAKES) {
		dev->last_under_load_ns = now;
		return true;
	}
	return dev->last_under_load_ns && now - dev->last_under_load_ns < NSEC_PER_SEC;
}

/* mac1 always; under load mac2 (else a cookie reply) and the rate limit. */
static bool handshake_allowed(struct wg_device *dev, const void *msg, size_t len, uint32_t sender,
			      const union xb_sockaddr *from, const union xb_sockaddr *to,
			      int ifindex, uint64_t now)
{
	bool load = under_load(dev, now);
	enum cookie_mac_state st = wg_cookie_validate(&dev->cookie_checker, msg, len, from, load, now);

	if ((load && st == COOKIE_VALID_MAC_WITH_COOKIE) || (!load && st == COOKIE_VALID_MAC_BUT_NO_COOKIE))
		return true;
	if (load && st == COOKIE_VALID_MAC_BUT_NO_COOKIE) {
		struct message_handshake_cookie reply;
		wg_cookie_reply_create(&reply, &dev->cookie_checker, msg, len, sender, from, now);
		wg_send_raw(dev, from, to, ifindex, &reply, sizeof(reply));
		dev->stats.rx_cookie_replies++;
		return false;
	}
	if (st == COOKIE_VALID_MAC_WITH_COOKIE_BUT_RATELIMITED)
		dev->stats.rx_ratelimited++;
	else
		dev->stats.rx_bad_mac++;
	return false;
}

static void rx_initiation(struct wg_device *dev, const struct message_handshake_initiation *m,
			  const union xb_sockaddr *from, const union xb_sockaddr *to, int ifindex,
			  uint64_t now)
{
	struct noise_initiation st;
	struct wg_peer *peer;
	uint32_t old_idx;
	bool had_state;

	if (!handshake_allowed(dev, m, sizeof(*m), m->sender_index, from, to, ifindex, now))
		return;
	if (!noise_open_initiation(&st, m, &dev->identity) ||
	    !(peer = wg_peer_lookup(dev, st.remote_static))) {
		dev->stats.rx_handshake_failed++;
		return;
	}
	old_idx = peer->handshake.local_index;
	had_state = peer->handshake.state != HANDSHAKE_ZEROED;
	if (!noise_finish_initiation(&peer->handshake, &st, m, now)) {
		dev->stats.rx_handshake_failed++;
		return;
	}
	if (had_state)
		wg_peer_unindex_handshake(peer, old_idx);
	set_endpoint(peer, from, to, ifindex);
	peer->rx_bytes += sizeof(*m);
	wg_timers_any_authenticated_packet_received(peer);
	wg_timers_any_authenticated_packet_traversal(peer, now);
	wg_send_handshake_response(peer, now);
}

static void rx_response(struct wg_device *dev, const struct message_handshake_response *m,
			const union xb_sockaddr *from, const union xb_sockaddr *to, int ifindex,
			uint64_t now)
{
	struct wg_index_entry *e;
	struct noise_keypair *kp;
	struct wg_peer *peer;

	if (!handshake_allowed(dev, m, sizeof(*m), m->sender_index, from, to, ifindex, now))
		return;
	e = wg_index_find(&dev->index, m->receiver_index);
	if (!e || e->kind != INDEX_HANDSHAKE ||
	    !noise_consume_response(&e->peer->handshake, m, &dev->identity)) {
		dev->stats.rx_handshake_failed++;
		return;
	}
	peer = e->peer;
	kp = calloc(1, sizeof(*kp));
	if (!kp || !noise_derive_keypair(kp, &peer->handshake, now)) {
		free(kp);
		return;
	}
	e->kind = INDEX_KEYPAIR;
	e->kp = kp;
	set_endpoint(peer, from, to, ifindex);
	peer->rx_bytes += sizeof(*m);
	wg_timers_any_authenticated_packet_received(peer);
	wg_timers_any_authenticated_packet_traversal(peer, now);
	wg_peer_install_keypair(peer, kp);
	wg_timers_session_derived(peer, now);
	wg_timers_handshake_complete(peer);
	/* Send what waited for this session, or a keepalive to confirm it. */
	wg_send_keepalive(peer, now);
}

static void rx_cookie(struct wg_device *dev, const struct message_handshake_cookie *m, uint64_t now)
{
	struct wg_index_entry *e = wg_index_find(&dev->index, m->receiver_index);

	if (!e || !wg_cookie_reply_consume(&e->peer->cookie, m, now))
		dev->stats.rx_bad_mac++;
}

/* The inner packet's real length (padding removed) and source address. */
static size_t inner_packet(const uint8_t *p, size_t len, uint16_t *family, const uint8_t **src)
{
	size_t n;

	if (len >= 20 && p[0] >> 4 == 4) {
		n = (size_t)p[2] << 8 | p[3];
		if (n < (size_t)(p[0] & 15) * 4 || (p[0] & 15) < 5)
			return 0;
		*family = AF_INET;
		*src = p + 12;
	} else if (len >= 40 && p[0] >> 4 == 6) {
		n = 40 + ((size_t)p[4] << 8 | p[5]);
		*family = AF_INET6;
		*src = p + 8;
	} else {
		return 0;
	}
	return n <= len ? n : 0;
}

/* Write what is batched for the TUN device: coalesced where possible,
 * gathered from where the packets were decrypted (OFFLOAD_GRO_IOV) and
 * marked as verified (OFFLOAD_GRO_TRUSTED: the AEAD authenticated every
 * byte, as Linux's WireGuard marks them CHECKSUM_UNNECESSARY). */
static void tun_write_out(struct wg_device *dev)
{
	size_t n;

	if (!dev->gro)
		return;
	n = offload_gro_finish(dev->gro);
	for (size_t i = 0; i < n; i++) {
		int iovcnt;
		const struct iovec *iov = offload_gro_iov(dev->gro, i, &iovcnt);
		if (writev(dev->tun_fd, iov, iovcnt) < 0)
			dev->stats.tx_send_failed++;
	}
	offload_gro_reset(dev->gro);
}

void wg_tun_flush(struct wg_device *dev)
{
	wg_receive_flush(dev);
	wg_tap_flush(dev);
	tun_write_out(dev);
}

/* pkt was decrypted in place in the receive buffer, which stays until the
 * batch's wg_tun_flush(), behind the message header, which nothing reads
 * again: the batch takes it where it is (offload_gro_add_ref). */
static void deliver(struct wg_device *dev, uint8_t *pkt, size_t len)
{
	if (dev->tap && wg_tap_take(dev, pkt, len))
		return;
	if (!dev->gro) {
		if (write(dev->tun_fd, pkt, len) < 0)
			dev->stats.tx_send_failed++;
		return;
	}
	if (offload_gro_add_ref(dev->gro, pkt, len))
		return;
	tun_write_out(dev);
	if (!offload_gro_add_ref(dev->gro, pkt, len))
		dev->stats.rx_bad_inner++;
}

/* Judged before decryption, so from local state only: never from the packet. */
static bool keypair_receivable(const struct wg_device *dev, const struct noise_keypair *kp, uint64_t now)
{
	return kp->receiving_valid &&
	       now - kp->birthdate_ns < (uint64_t)dev->timing.reject_after_time * NSEC_PER_SEC;
}

/* Rekey before the session expires (whitepaper §6.2): the initiator starts a
 * handshake when a message arrives on a keypair close to REJECT_AFTER_TIME. */
static void keep_key_fresh(struct wg_peer *peer, uint64_t now)
{
	const struct wg_timing *tm = &peer->dev->timing;
	struct noise_keypair *kp = peer->current;
	uint64_t limit = (uint64_t)(tm->reject_after_time - tm->keepalive_timeout - tm->rekey_timeout) *
			 NSEC_PER_SEC;

	if (peer->sent_lastminute_handshake || !kp || !kp->sending_valid || !kp->i_am_initiator)
		return;
	if (now - kp->birthdate_ns >= limit) {
		peer->sent_lastminute_handshake = true;
		wg_send_handshake_initiation(peer, false, now);
	}
}

/* The keypair a data message names, if it may be opened now; no counting. */
static struct noise_keypair *receivable_keypair(struct wg_device *dev, const struct message_data *m,
						uint64_t now, struct wg_peer **peer)
{
	struct wg_index_entry *e = wg_index_find(&dev->index, m->key_idx);

	if (!e || e->kind != INDEX_KEYPAIR || !keypair_receivable(dev, e->kp, now))
		return NULL;
	*peer = e->peer;
	return e->kp;
}

/* A data message whose tag checked out under kp: the counter, timers,
 * roaming, cryptokey routing, delivery. */
static void rx_authentic(struct wg_device *dev, struct wg_peer *peer, struct noise_keypair *kp,
			 struct message_data *m, size_t len, const union xb_sockaddr *from,
			 const union xb_sockaddr *to, int ifindex, uint64_t now)
{
	size_t plen = len - sizeof(*m) - NOISE_AUTHTAG_LEN, n;
	const uint8_t *src;
	uint16_t family;

	/* Authentic from here on: only the peer can have used the keypair up. */
	if (m->counter >= REJECT_AFTER_MESSAGES) {
		kp->receiving_valid = false;
		dev->stats.rx_no_keypair++;
		return;
	}
	if (!wg_replay_accept(&kp->replay, m->counter)) {
		dev->stats.rx_replayed++;
		return;
	}
	if (wg_peer_received_with_keypair(peer, kp)) {
		wg_timers_handshake_complete(peer);
		wg_send_staged(peer, now);
	}
	keep_key_fresh(peer, now);
	wg_timers_any_authenticated_packet_received(peer);
	wg_timers_any_authenticated_packet_traversal(peer, now);
	set_endpoint(peer, from, to, ifindex);
	peer->rx_bytes += len;
	if (!plen)
		return;		/* keepalive */
	wg_timers_data_received(peer, now);
	n = inner_packet(m->encrypted_data, plen, &family, &src);
	if (!n) {
		dev->stats.rx_bad_inner++;
		return;
	}
	if (wg_allowedips_lookup(&dev->allowedips, family, src) != peer) {
		dev->stats.rx_bad_src++;
		return;
	}
	deliver(dev, m->encrypted_data, n);
}

static bool open_data(struct message_data *m, size_t len, const struct noise_keypair *kp)
{
	size_t clen = len - sizeof(*m);

	return noise_decrypt(m->encrypted_data, m->encrypted_data, clen, m->counter, kp->recv_key);
}

static void rx_data(struct wg_device *dev, uint8_t *buf, size_t len, const union xb_sockaddr *from,
		    const union xb_sockaddr *to, int ifindex, uint64_t now)
{
	struct message_data *m = (struct message_data *)buf;
	struct wg_peer *peer;
	struct noise_keypair *kp = receivable_keypair(dev, m, now, &peer);

	if (!kp) {
		dev->stats.rx_no_keypair++;
		return;
	}
	if (!open_data(m, len, kp)) {
		dev->stats.rx_decrypt_failed++;
		return;
	}
	rx_authentic(dev, peer, kp, m, len, from, to, ifindex, now);
}

/* Data messages of one receive batch, opened by the workers together and
 * then handled one by one in arrival order on the data thread.
 *
 * Why this is the single thread's behaviour exactly: opening reads only the
 * message and its keypair's receive key, and writes only the message's own
 * bytes. The keypair is looked up when the message is queued; while the
 * queue fills and is opened nothing can create a keypair (a handshake
 * message flushes the queue before it is handled; the control thread waits
 * for the device lock, which the data thread holds throughout), so at the
 * in-order step the lookup either names the same keypair or none: that
 * step repeats every check the single thread makes before opening, against
 * the state it would have then (an earlier message may have used the
 * keypair up), and only the tag's verdict is taken from the workers. The
 * counter is judged, and the replay window moved, there and only there. */
#define WG_RXQ 512

struct wg_rxjob {
	struct message_data *m;
	size_t len;
	union xb_sockaddr from, to;
	bool has_to;
	int ifindex;
	uint64_t now;
	struct noise_keypair *kp;	/* at queueing; NULL: not to be opened */
	bool ok;			/* the tag checked out */
};

struct wg_rxq {
	unsigned n;
	struct wg_rxjob job[WG_RXQ];
};

bool wg_rxq_init(struct wg_device *dev)
{
	return (dev->rxq = calloc(1, sizeof(*dev->rxq))) != NULL;
}

void wg_rxq_free(struct wg_device *dev)
{
	free(dev->rxq);
	dev->rxq = NULL;
}

static void open_job(void *ctx, size_t i)
{
	struct wg_rxjob *j = &((struct wg_rxq *)ctx)->job[i];

	if (j->kp)
		j->ok = open_data(j->m, j->len, j->kp);
}

static void finish_job(struct wg_device *dev, struct wg_rxjob *j)
{
	struct wg_peer *peer;
	struct noise_keypair *kp = receivable_keypair(dev, j->m, j->now, &peer);

	if (!kp) {
		dev->stats.rx_no_keypair++;
		return;
	}
	if (kp != j->kp) {
		/* Not opened (see above: only "none then, one now" can
		 * differ, and the bytes are untouched): open it here. */
		if (j->kp || !(j->ok = open_data(j->m, j->len, kp))) {
			dev->stats.rx_decrypt_failed++;
			return;
		}
	} else if (!j->ok) {
		dev->stats.rx_decrypt_failed++;
		return;
	}
	rx_authentic(dev, peer, kp, j->m, j->len, &j->from, j->has_to ? &j->to : NULL, j->ifindex, j->now);
}

void wg_receive_flush(struct wg_device *dev)
{
	struct wg_rxq *q = dev->rxq;
	size_t bytes = 0;

	if (!q || !q->n)
		return;
	for (unsigned i = 0; i < q->n; i++)
		bytes += q->job[i].kp ? q->job[i].len : 0;
	wg_workers_run(dev->workers, open_job, q, q->n, bytes);
	for (unsigned i = 0; i < q->n; i++)
		finish_job(dev, &q->job[i]);
	q->n = 0;
}

static void queue_data(struct wg_device *dev, uint8_t *buf, size_t len, const union xb_sockaddr *from,
		       const union xb_sockaddr *to, int ifindex, uint64_t now)
{
	struct wg_rxjob *j;
	struct wg_peer *peer;

	if (dev->rxq->n == WG_RXQ)
		wg_receive_flush(dev);
	j = &dev->rxq->job[dev->rxq->n++];
	j->m = (struct message_data *)buf;
	j->len = len;
	j->from = *from;
	j->has_to = to != NULL;
	if (to)
		j->to = *to;
	j->ifindex = ifindex;
	j->now = now;
	j->kp = receivable_keypair(dev, j->m, now, &peer);
	j->ok = false;
}

/* A handshake message as wg_receive() would take it: right type, zero
 * reserved bytes, exact length. */
static bool is_handshake(const uint8_t *p, size_t len)
{
	if (len < sizeof(struct message_header) || p[1] || p[2] || p[3])
		return false;
	return (p[0] == MESSAGE_HANDSHAKE_INITIATION && len == sizeof(struct message_handshake_initiation)) ||
	       (p[0] == MESSAGE_HANDSHAKE_RESPONSE && len == sizeof(struct message_handshake_response));
}

unsigned wg_handshakes_in(const uint8_t *buf, size_t len, size_t seg)
{
	unsigned n = 0;

	if (!seg)
		seg = len;
	for (size_t off = 0; off < len; off += seg)
		n += is_handshake(buf + off, len - off < seg ? len - off : seg);
	return n;
}

void wg_receive(struct wg_device *dev, uint8_t *buf, size_t len, const union xb_sockaddr *from,
		const union xb_sockaddr *to, int ifindex, uint64_t now)
{
	struct message_header *h = (struct message_header *)buf;

	if (len < sizeof(*h) || h->reserved[0] || h->reserved[1] || h->reserved[2]) {
		dev->stats.rx_bad_type++;
		return;
	}
	if (dev->rxq) {
		if (h->type == MESSAGE_DATA && len >= MESSAGE_MINIMUM_LENGTH) {
			queue_data(dev, buf, len, from, to, ifindex, now);
			return;
		}
		wg_receive_flush(dev);
	}
	switch (h->type) {
	case MESSAGE_HANDSHAKE_INITIATION:
		if (len != sizeof(struct message_handshake_initiation))
			break;
		rx_initiation(dev, (void *)buf, from, to, ifindex, now);
		return;
	case MESSAGE_HANDSHAKE_RESPONSE:
		if (len != sizeof(struct message_handshake_response))
			break;
		rx_response(dev, (void *)buf, from, to, ifindex, now);
		return;
	case MESSAGE_HANDSHAKE_COOKIE:
		if (len != sizeof(struct message_handshake_cookie))
			break;
		rx_cookie(dev, (void *)buf, now);
		return;
	case MESSAGE_DATA:
		if (len < MESSAGE_MINIMUM_LENGTH)
			break;
		rx_data(dev, buf, len, from, to, ifindex, now);
		return;
	default:
		dev->stats.rx_bad_type++;
		return;
	}
	dev->stats.rx_bad_length++;
}
