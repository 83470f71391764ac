/* Outgoing: data from the TUN device, keepalives, handshake messages.
 *
 * Data messages are batched per event-loop round and leave with one
 * sendmmsg() per socket. Each carries our source address for the peer
 * (IP_PKTINFO / IPV6_PKTINFO), learned from where the peer last reached us,
 * so replies leave from the address the peer expects on multi-homed hosts.
 */
#include "tunnel/aead.h"
#include "tunnel/device.h"
#include "tunnel/offload.h"
#include "tunnel/workers.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A slot: a message header and up to WG_MAX_PACKET bytes of text with its
 * tag from buf, and the AEAD's room around the text (XB_AEAD_HEADROOM
 * before buf, XB_AEAD_TAILROOM past the text), so that the text is sealed
 * in place; no two slots share any of it. */
#define TXSLOT_HEAD XB_AEAD_HEADROOM
#define TXSLOT_SIZE (TXSLOT_HEAD + WG_MAX_PACKET + 64 + XB_AEAD_TAILROOM)

struct wg_txslot {
	union xb_sockaddr to, from;
	int ifindex;
	size_t len;
	uint8_t *buf;
	/* With workers: sealed at the flush, with a copy of the key it had
	 * when queued (the keypair may be gone by then); wiped after. */
	bool unsealed;
	uint8_t key[NOISE_SYMMETRIC_KEY_LEN];
};

struct txgroup;

struct wg_txq {
	unsigned n;
	struct wg_txslot slot[WG_BATCH];
	uint8_t *mem;
	struct txgroup *group;
};

/* Room for a source address and a UDP_SEGMENT size. */
union tx_cmsg {
	struct cmsghdr align;
	uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
};

/* Fill msg's control data: send from `from' (if known) and, with gso_size,
 * let the kernel cut the buffer into datagrams of that size. */
static void set_control(struct msghdr *msg, union tx_cmsg *c, const union xb_sockaddr *from,
			int ifindex, uint16_t gso_size)
{
	struct cmsghdr *cm = (struct cmsghdr *)c->buf;
	size_t len = 0;

	memset(c, 0, sizeof(*c));
	if (from->sa.sa_family == AF_INET) {
		struct in_pktinfo pi = { .ipi_ifindex = 0, .ipi_spec_dst = from->in.sin_addr };
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		len += CMSG_SPACE(sizeof(pi));
	} else if (from->sa.sa_family == AF_INET6) {
		struct in6_pktinfo pi = { .ipi6_addr = from->in6.sin6_addr, .ipi6_ifindex = (unsigned)ifindex };
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		len += CMSG_SPACE(sizeof(pi));
	}
	if (gso_size) {
		cm = (struct cmsghdr *)(c->buf + len);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
		len += CMSG_SPACE(sizeof(uint16_t));
	}
	msg->msg_control = len ? c->buf : NULL;
	msg->msg_controllen = len;
}

static int sock_for(const struct wg_device *dev, const union xb_sockaddr *to)
{
	return to->sa.sa_family == AF_INET ? dev->sock4 : to->sa.sa_family == AF_INET6 ? dev->sock6 : -1;
}

static socklen_t sa_len(const union xb_sockaddr *sa)
{
	return sa->sa.sa_family == AF_INET ? sizeof(sa->in) : sizeof(sa->in6);
}

void wg_send_raw(struct wg_device *dev, const union xb_sockaddr *to, const union xb_sockaddr *from,
		 int ifindex, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_name = (void *)to, .msg_namelen = sa_len(to), .msg_iov = &iov, .msg_iovlen = 1 };
	union tx_cmsg c;
	int fd = sock_for(dev, to);

	if (fd < 0) {
		dev->stats.tx_no_endpoint++;
		return;
	}
	set_control(&msg, &c, from, ifindex, 0);
	if (sendmsg(fd, &msg, 0) < 0 && msg.msg_control) {
		/* Our old source address may be gone: let the kernel choose. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		if (sendmsg(fd, &msg, 0) < 0)
			dev->stats.tx_send_failed++;
	}
}

/* Datagrams for one socket, grouped: consecutive slots to the same
 * destination from the same source, all of one size but a shorter last one,
 * go out as one UDP GSO send of up to GSO_MAX_SEGS datagrams. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

struct txgroup {
	struct mmsghdr mm[WG_BATCH];
	struct iovec iov[WG_BATCH];
	union tx_cmsg c[WG_BATCH];
	struct wg_txslot *first[WG_BATCH];
	unsigned nmsg, niov;
	size_t seg, total;
	bool open;
};

static bool joins(const struct txgroup *g, const struct wg_txslot *first, const struct wg_txslot *s)
{
	unsigned segs = (unsigned)g->mm[g->nmsg - 1].msg_hdr.msg_iovlen;

	return g->open && s->len <= g->seg && segs < GSO_MAX_SEGS && g->total + s->len <= GSO_MAX_BYTES &&
	       !memcmp(&s->to, &first->to, sizeof(s->to)) && !memcmp(&s->from, &first->from, sizeof(s->from)) &&
	       s->ifindex == first->ifindex;
}

static void group_add(struct wg_device *dev, struct txgroup *g, struct wg_txslot *s)
{
	g->iov[g->niov] = (struct iovec){ s->buf, s->len };
	if (g->nmsg && dev->udp_gso && joins(g, g->first[g->nmsg - 1], s)) {
		g->mm[g->nmsg - 1].msg_hdr.msg_iovlen++;
	} else {
		g->first[g->nmsg] = s;
		g->mm[g->nmsg].msg_hdr = (struct msghdr){ .msg_name = &s->to, .msg_namelen = sa_len(&s->to),
							  .msg_iov = &g->iov[g->niov], .msg_iovlen = 1 };
		g->nmsg++;
		g->seg = s->len;
		g->total = 0;
		g->open = true;
	}
	g->total += s->len;
	g->niov++;
	/* A shorter datagram can only end a GSO group. */
	if (s->len < g->seg)
		g->open = false;
}

static void send_alone(struct wg_device *dev, struct msghdr *h)
{
	for (size_t i = 0; i < h->msg_iovlen; i++)
		wg_send_raw(dev, (union xb_sockaddr *)h->msg_name, &(union xb_sockaddr){ 0 }, 0,
			    h->msg_iov[i].iov_base, h->msg_iov[i].iov_len);
}

static void flush_family(struct wg_device *dev, struct txgroup *g, int family)
{
	struct wg_txq *q = dev->txq;
	unsigned done = 0;
	int fd = family == AF_INET ? dev->sock4 : dev->sock6;

	g->nmsg = g->niov = 0;
	g->open = false;
	for (unsigned i = 0; i < q->n; i++)
		if (q->slot[i].to.sa.sa_family == family)
			group_add(dev, g, &q->slot[i]);
	if (!g->nmsg)
		return;
	if (fd < 0) {
		dev->stats.tx_no_endpoint += g->niov;
		return;
	}
	for (unsigned m = 0; m < g->nmsg; m++) {
		struct msghdr *h = &g->mm[m].msg_hdr;
		set_control(h, &g->c[m], &g->first[m]->from, g->first[m]->ifindex,
			    h->msg_iovlen > 1 ? (uint16_t)g->first[m]->len : 0);
	}
	while (done < g->nmsg) {
		int r = sendmmsg(fd, g->mm + done, g->nmsg - done, 0);
		if (r > 0) {
			done += (unsigned)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		/* The first message failed: send its datagrams one by one, from
		 * whatever source the kernel picks; a GSO failure (EIO: the
		 * route's device cannot do it) turns GSO off. */
		if (g->mm[done].msg_hdr.msg_iovlen > 1 && errno == EIO && dev->udp_gso) {
			log_warnx("%s: UDP segmentation offload failed, sending datagrams singly", dev->ifname);
			dev->udp_gso = false;
		}
		send_alone(dev, &g->mm[done].msg_hdr);
		done++;
	}
}

bool wg_txq_init(struct wg_device *dev)
{
	struct wg_txq *q = calloc(1, sizeof(*q));

	if (!q || !(q->mem = aligned_alloc(64, (size_t)WG_BATCH * TXSLOT_SIZE))) {
		free(q);
		return false;
	}
	if (!(q->group = calloc(1, sizeof(*q->group)))) {
		free(q->mem);
		free(q);
		return false;
	}
	for (unsigned i = 0; i < WG_BATCH; i++)
		q->slot[i].buf = q->mem + (size_t)i * TXSLOT_SIZE + TXSLOT_HEAD;
	dev->txq = q;
	return true;
}

void wg_txq_free(struct wg_device *dev)
{
	if (!dev->txq)
		return;
	for (unsigned i = 0; i < WG_BATCH; i++)
		sodium_memzero(dev->txq->slot[i].key, sizeof(dev->txq->slot[i].key));
	free(dev->txq->group);
	free(dev->txq->mem);
	free(dev->txq);
	dev->txq = NULL;
}

static void seal_slot(void *ctx, size_t i)
{
	struct wg_txslot *s = &((struct wg_txq *)ctx)->slot[i];
	struct message_data *m = (struct message_data *)s->buf;

	if (!s->unsealed)
		return;
	xb_aead_seal_inplace(m->encrypted_data, s->len - sizeof(*m) - NOISE_AUTHTAG_LEN, m->counter,
			     s->key);
	sodium_memzero(s->key, sizeof(s->key));
	s->unsealed = false;
}

void wg_txq_flush(struct wg_device *dev)
{
	if (!dev->txq->n)
		return;
	if (dev->workers) {
		size_t bytes = 0;
		for (unsigned i = 0; i < dev->txq->n; i++)
			bytes += dev->txq->slot[i].len;
		wg_workers_run(dev->workers, seal_slot, dev->txq, dev->txq->n, bytes);
	}
	flush_family(dev, dev->txq->group, AF_INET);
	flush_family(dev, dev->txq->group, AF_INET6);
	dev->txq->n = 0;
}

/* Padding (whitepaper §5.4.6): to a multiple of 16, but never past the MTU. */
static size_t padded_len(size_t len, unsigned mtu)
{
	size_t p = (len + MESSAGE_PADDING_MULTIPLE - 1) & ~(size_t)(MESSAGE_PADDING_MULTIPLE - 1);

	if (len <= mtu && p > mtu)
		p = mtu;
	return p < len ? len : p;
}

static void send_data(struct wg_peer *peer, struct noise_keypair *kp, const uint8_t *pkt, size_t len,
		      uint64_t now)
{
	struct wg_device *dev = peer->dev;
	struct wg_txslot *s;
	struct message_data *m;
	size_t plen = padded_len(len, dev->mtu);

	if (dev->txq->n == WG_BATCH)
		wg_txq_flush(dev);
	s = &dev->txq->slot[dev->txq->n++];
	m = (struct message_data *)s->buf;
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = kp->remote_index;
	m->counter = atomic_fetch_add(&kp->send_counter, 1);
	if (pkt != m->encrypted_data)	/* else segmented into the slot already */
		memcpy(m->encrypted_data, pkt, len);
	memset(m->encrypted_data + len, 0, plen - len);
	s->len = message_data_len(plen);
	if (dev->workers) {
		memcpy(s->key, kp->send_key, sizeof(s->key));
		s->unsealed = true;
	} else {
		xb_aead_seal_inplace(m->encrypted_data, plen, m->counter, kp->send_key);
	}
	s->to = peer->endpoint;
	s->from = peer->src;
	s->ifindex = peer->src_ifindex;
	peer->tx_bytes += s->len;
	wg_timers_any_authenticated_packet_traversal(peer, now);
	wg_timers_any_authenticated_packet_sent(peer);
	if (len)
		wg_timers_data_sent(peer, now);
}

/* Rekey when the session is old or has carried many messages (whitepaper
 * §6.2): only the initiator rekeys on time, to avoid both sides racing. */
static void keep_key_fresh(struct wg_peer *peer, uint64_t now)
{
	struct noise_keypair *kp = peer->current;
	const struct wg_timing *tm = &peer->dev->timing;

	if (kp && kp->sending_valid &&
	    (atomic_load(&kp->send_counter) > tm->rekey_after_messages ||
	     (kp->i_am_initiator && now - kp->birthdate_ns >= (uint64_t)tm->rekey_after_time * NSEC_PER_SEC)))
		wg_send_handshake_initiation(peer, false, now);
}

void wg_send_staged(struct wg_peer *peer, uint64_t now)
{
	struct noise_keypair *kp = peer->current;

	if (!peer->n_staged)
		return;
	if (!wg_keypair_usable(peer->dev, kp, now) || peer->endpoint.sa.sa_family == AF_UNSPEC) {
		wg_send_handshake_initiation(peer, false, now);
		return;
	}
	for (unsigned i = 0; i < peer->n_staged; i++) {
		send_data(peer, kp, peer->staged[i]->data, peer->staged[i]->len, now);
		free(peer->staged[i]);
	}
	peer->n_staged = 0;
	keep_key_fresh(peer, now);
}

void wg_send_keepalive(struct wg_peer *peer, uint64_t now)
{
	if (!peer->n_staged)
		wg_peer_stage(peer, NULL, 0);
	wg_send_staged(peer, now);
}

static uint16_t inner_dst(const uint8_t *pkt, size_t len, const uint8_t **addr)
{
	if (len >= 20 && pkt[0] >> 4 == 4) {
		*addr = pkt + 16;
		return AF_INET;
	}
	if (len >= 40 && pkt[0] >> 4 == 6) {
		*addr = pkt + 24;
		return AF_INET6;
	}
	return AF_UNSPEC;
}

bool wg_send_from_tun(struct wg_device *dev, const uint8_t *pkt, size_t len, uint64_t now)
{
	const uint8_t *dst;
	uint16_t family = inner_dst(pkt, len, &dst);
	struct wg_peer *peer;

	if (family == AF_UNSPEC)
		return false;
	peer = wg_allowedips_lookup(&dev->allowedips, family, dst);
	if (!peer) {
		dev->stats.tx_no_peer++;
		return false;
	}
	if (peer->endpoint.sa.sa_family == AF_UNSPEC) {
		dev->stats.tx_no_endpoint++;
		if (log_ratelimit(&dev->rl_tx))
			log_warnx("%s: no endpoint configured for the peer of a packet", dev->ifname);
		return false;
	}
	if (!peer->n_staged && wg_keypair_usable(dev, peer->current, now)) {
		send_data(peer, peer->current, pkt, len, now);
		keep_key_fresh(peer, now);
		return true;
	}
	if (!wg_peer_stage(peer, pkt, len))
		return false;
	wg_send_staged(peer, now);
	return true;
}

/* A TUN read cut into scratch, a window of WG_TUN_MAX_SEGS at a time, and
 * sent packet by packet (the copying path: wg_send_from_tun copies each, so
 * the next window may reuse the scratch). */
static bool send_copied(struct wg_device *dev, const uint8_t *in, size_t in_len, uint8_t *scratch,
			size_t scratch_cap, uint64_t now)
{
	size_t lens[WG_TUN_MAX_SEGS], offs[WG_TUN_MAX_SEGS], first = 0;
	int n;

	while ((n = offload_segment_window(in, in_len, first, scratch, scratch_cap, offs, lens,
					   WG_TUN_MAX_SEGS)) > 0) {
		for (int i = 0; i < n; i++)
			wg_send_from_tun(dev, scratch + offs[i], lens[i], now);
		first += (size_t)n;
	}
	return n == 0 && first > 0;
}

/* One TUN read with offloads: its segments are cut straight into the send
 * queue's slots, behind the message header, so that send_data() seals them
 * where they lie. All segments of a read have the same destination, so one
 * peer and one verdict; once one is staged (the keypair ran out) the rest
 * are too, and nothing is sent into the slots still holding segments. A
 * peer with staged packets, or no usable keypair, takes the copying path,
 * and so does a read of more segments than the queue has slots (a small
 * MSS).
 *
 * The queue may be full on entry: send_data() flushes lazily, before the
 * packet after the one that filled it. Then there is no slot q->n to cut
 * into (q->slot[WG_BATCH] is past the array; the SAN build aborted there,
 * which stalled TCP through the tunnel), so flush first.
 * False: the read was malformed. */
bool wg_send_from_tun_gso(struct wg_device *dev, const uint8_t *in, size_t in_len, uint8_t *scratch,
			  size_t scratch_cap, uint64_t now)
{
	struct wg_txq *q = dev->txq;
	size_t lens[WG_BATCH];
	const uint8_t *dst;
	uint16_t family;
	struct wg_peer *peer;
	unsigned n0;
	int n;

	family = in_len > OFFLOAD_VNET_HDR_LEN ?
		 inner_dst(in + OFFLOAD_VNET_HDR_LEN, in_len - OFFLOAD_VNET_HDR_LEN, &dst) : AF_UNSPEC;
	peer = family == AF_UNSPEC ? NULL : wg_allowedips_lookup(&dev->allowedips, family, dst);
	if (!peer || peer->endpoint.sa.sa_family == AF_UNSPEC || peer->n_staged ||
	    !wg_keypair_usable(dev, peer->current, now))
		return send_copied(dev, in, in_len, scratch, scratch_cap, now);
	if (q->n == WG_BATCH)
		wg_txq_flush(dev);
	n = offload_segment_strided(in, in_len, q->slot[q->n].buf + sizeof(struct message_data),
				    TXSLOT_SIZE, WG_MAX_PACKET, lens, (int)(WG_BATCH - q->n));
	if (n < 0 && q->n) {	/* perhaps only too many for the slots left */
		wg_txq_flush(dev);
		n = offload_segment_strided(in, in_len, q->slot[0].buf + sizeof(struct message_data),
					    TXSLOT_SIZE, WG_MAX_PACKET, lens, WG_BATCH);
	}
	if (n < 0)	/* more segments than slots, or malformed */
		return send_copied(dev, in, in_len, scratch, scratch_cap, now);
	n0 = q->n;
	for (int i = 0; i < n; i++) {
		uint8_t *pkt = q->slot[n0 + i].buf + sizeof(struct message_data);

		if (!peer->n_staged && wg_keypair_usable(dev, peer->current, now))
			send_data(peer, peer->current, pkt, lens[i], now);
		else
			wg_peer_stage(peer, pkt, lens[i]);
	}
	if (peer->n_staged)
		wg_send_staged(peer, now);
	else
		keep_key_fresh(peer, now);
	return true;
}

void wg_send_handshake_initiation(struct wg_peer *peer, bool is_retry, uint64_t now)
{
	struct wg_device *dev = peer->dev;
	struct message_handshake_initiation msg;
	uint32_t idx;

	if (!is_retry)
		peer->handshake_attempts = 0;
	/* At most one initiation per REKEY_TIMEOUT. */
	if (peer->last_sent_handshake_ns &&
	    now - peer->last_sent_handshake_ns < (uint64_t)dev->timing.rekey_timeout * NSEC_PER_SEC)
		return;
	if (!dev->identity.has_identity)
		return;
	peer->last_sent_handshake_ns = now;
	wg_peer_clear_handshake(peer);
	if (!wg_index_new(&dev->index, &idx, INDEX_HANDSHAKE, peer, NULL))
		return;
	if (!noise_create_initiation(&msg, &peer->handshake, &dev->identity, idx)) {
		wg_index_del(&dev->index, idx);
		return;
	}
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg), now);
	wg_timers_any_authenticated_packet_traversal(peer, now);
	wg_timers_any_authenticated_packet_sent(peer);
	if (peer->endpoint.sa.sa_family != AF_UNSPEC) {
		wg_send_raw(dev, &peer->endpoint, &peer->src, peer->src_ifindex, &msg, sizeof(msg));
		peer->tx_bytes += sizeof(msg);
	}
	wg_timers_handshake_initiated(peer, now);
}

void wg_send_handshake_response(struct wg_peer *peer, uint64_t now)
{
	struct wg_device *dev = peer->dev;
	struct message_handshake_response msg;
	struct noise_keypair *kp;
	struct wg_index_entry *e;
	uint32_t idx;

	peer->last_sent_handshake_ns = now;
	if (!wg_index_new(&dev->index, &idx, INDEX_HANDSHAKE, peer, NULL))
		return;
	kp = calloc(1, sizeof(*kp));
	if (!kp || !noise_create_response(&msg, &peer->handshake, idx) ||
	    !noise_derive_keypair(kp, &peer->handshake, now)) {
		free(kp);
		wg_index_del(&dev->index, idx);
		return;
	}
	e = wg_index_find(&dev->index, idx);
	e->kind = INDEX_KEYPAIR;
	e->kp = kp;
	wg_peer_install_keypair(peer, kp);
	wg_timers_session_derived(peer, now);
	wg_cookie_add_macs(&peer->cookie, &msg, sizeof(msg), now);
	wg_timers_any_authenticated_packet_traversal(peer, now);
	wg_timers_any_authenticated_packet_sent(peer);
	wg_send_raw(dev, &peer->endpoint, &peer->src, peer->src_ifindex, &msg, sizeof(msg));
	peer->tx_bytes += sizeof(msg);
}
