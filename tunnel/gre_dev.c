/* The userspace GRE tunnel: a TUN interface and a raw IPPROTO_GRE socket
 * bound to the local outer address and connected to the remote one, so the
 * kernel hands us only GRE from that remote. One loop moves packets both
 * ways in batches and sends keepalives; see gre.h for the API.
 *
 * Batching, as the WireGuard path (docs/wireguard.md "Speed"): the TUN has
 * vnet headers and TSO (tunnel/offload.h), so one read may be a 64 KB TCP
 * segment, which offload_segment() cuts into MTU-sized packets; each gets
 * its GRE header in a separate iovec, and about TX_BURST at a time go out
 * in one sendmmsg(). Received datagrams come BATCH to a recvmmsg(); each is checked
 * and passes the sequence rule one by one, in arrival order, exactly as
 * when they came singly; the accepted ones are coalesced (offload_gro: TCP
 * segments of one flow become one TUN write, every flow's order kept) and
 * written after the batch. Sequence numbers go out in the order the packets
 * are sent: segments in order, a keepalive only after the batch before it.
 *
 * Outer IPv4 raw sockets receive the outer IP header, IPv6 ones do not
 * (RFC 3542 §3): the receive path strips it for IPv4 only.
 *
 * Keepalives (the Cisco scheme): every interval we send the remote a GRE
 * packet whose payload is a whole IP packet from the remote's outer address
 * to ours, carrying a GRE header with protocol type 0. The remote
 * decapsulates it like any packet and routes it back to us; no keepalive
 * support is needed there. Back here it arrives as GRE with protocol 0: a
 * reply. That inner GRE header carries our key and checksum option (so it
 * passes our own checks) but no sequence number: replies are exempt from
 * the sequence rule, which is about the remote's data. After `retries'
 * intervals without a reply the state goes down; the next reply brings it
 * up. The state starts up, as on a router: a tunnel is reported down only
 * once it has missed replies. For an IPv6 outer the inner packet is IPv6.
 * Coming up again restarts the receive sequence: a remote that restarted
 * numbers from 0, and would otherwise be dropped until it passed its old
 * count.
 *
 * A Linux remote decapsulating with the kernel's GRE (or ours) must accept a
 * packet with its own source address arriving on the tunnel interface:
 * net.ipv4.conf.IF.accept_local=1 and rp_filter 0 there, and forwarding on.
 *
 * Counters live in the tunnel and change under t->lock, taken once per
 * batch; gre_tunnel_stats() copies them under the same lock.
 */
#include "tunnel/gre.h"
#include "tunnel/offload.h"
#include "tunnel/tun.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH		64		/* datagrams per recvmmsg(), TUN reads per round */
#define BUF_SIZE	(9216 + 64)	/* MTU up to 9000 plus outer headers */
/* Packets per sendmmsg() (UIO_MAXIOV), and so the most one TUN read may be
 * cut into: a 64 KB segment at an MSS down to 64 bytes (a peer may announce
 * one that small). Smaller ones are refused, counted as tx errors. */
#define TX_MSGS		1024
/* Queued packets that are sent at once rather than after the next read.
 * A thread catching up after a wait for a core would otherwise hand the
 * next hop a thousand packets at once (bench/gre.sh's router queues 500);
 * 64 keeps the syscall per TSO read or two. Retransmissions in the bench
 * did not change clearly either way: drops at that queue remain. */
#define TX_BURST	64
#define READ_SIZE	(OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_IP_LEN)
/* Room for every read's segments until a send: the payload once, the IP
 * and TCP headers (120 bytes at most, but for IPv6 extension headers: then
 * a window is cut to what fits, and the queue is sent sooner) once per
 * segment. */
#define TX_ARENA	(4 * READ_SIZE + TX_MSGS * 120)

/* Packets cut from TUN reads, each behind its GRE header in iov[i][0]. */
struct txq {
	struct mmsghdr m[TX_MSGS];
	struct iovec iov[TX_MSGS][2];
	uint8_t hdr[TX_MSGS][GRE_HDR_MAX];
	unsigned n;
	size_t used;			/* of arena */
	size_t seg_off[TX_MSGS], seg_len[TX_MSGS];
	uint8_t rd[READ_SIZE];		/* one TUN read */
	uint8_t arena[TX_ARENA];
};

struct gre_tunnel {
	struct gre_config c;
	char peer[INET6_ADDRSTRLEN];	/* the remote, for logs */
	int tun_fd, sock, stop_fd;
	pthread_t thread;
	bool started;
	_Atomic bool ended;	/* the packet loop returned (stop, or a fatal error) */
	pthread_mutex_t lock;		/* st */
	struct gre_stats st;
	struct gre_seq_rx rx_seq;
	uint32_t tx_seq;
	uint64_t next_ka_ns;
	unsigned missed;		/* keepalive intervals without a reply */
	volatile int want_stats;	/* set from a signal handler */
	struct log_rl rl;
	uint8_t (*buf)[BUF_SIZE];	/* BATCH receive buffers */
	struct txq *tx;
	struct offload_gro *gro;	/* accepted packets waiting for the TUN */
	bool tso;			/* the kernel took TUNSETOFFLOAD */
};

const char *gre_tunnel_ifname(const struct gre_tunnel *t) { return t->c.ifname; }

const char *gre_ka_state_name(enum gre_ka_state s)
{
	return s == GRE_KA_UP ? "up" : s == GRE_KA_DOWN ? "down" : "off";
}

bool gre_config_check(const struct gre_config *c, char *err, size_t errlen)
{
	if (!c->ifname[0] || strlen(c->ifname) >= IFNAMSIZ)
		snprintf(err, errlen, "interface name `%s' is empty or too long", c->ifname);
	else if (c->family != AF_INET && c->family != AF_INET6)
		snprintf(err, errlen, "outer family must be IPv4 or IPv6");
	else if (c->mtu && (c->mtu < 576 || c->mtu > 9000))
		snprintf(err, errlen, "MTU %u is out of range (576-9000)", c->mtu);
	else if (c->ttl > 255)
		snprintf(err, errlen, "TTL %u is out of range (0-255)", c->ttl);
	else if (c->keepalive_ms && !c->keepalive_retries)
		snprintf(err, errlen, "keepalive retries must be at least 1");
	else
		return true;
	return false;
}

static socklen_t fill_sa(struct sockaddr_storage *ss, int family, const struct in6_addr *a)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_addr = *a;
	return sizeof(*s6);
}

/* Socket buffers for bursts: a batch of up to TX_MSGS packets leaves at
 * once, and a remote's batch arrives while this thread may wait for a core.
 * The default (about 200 KB, some 70 packets as the kernel charges them)
 * overflowed under load and TCP through the tunnel lost 15 % of its
 * segments (tun_socket_buffers()). */
#define SOCK_BUF	(4 << 20)

static int open_socket(const struct gre_config *c)
{
	struct sockaddr_storage ss;
	int fd = socket(c->family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_GRE), e;
	int ttl = (int)c->ttl;

	if (fd < 0)
		return -errno;
	tun_socket_buffers(fd, SOCK_BUF);
	if (c->bind_dev[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, c->bind_dev, (socklen_t)strlen(c->bind_dev)) < 0)
		goto fail;
	if (ttl && setsockopt(fd, c->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
			      c->family == AF_INET ? IP_TTL : IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, fill_sa(&ss, c->family, &c->local)) < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&ss, fill_sa(&ss, c->family, &c->remote)) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	return -e;
}

static void tunnel_free(struct gre_tunnel *t)
{
	if (t->tun_fd >= 0)
		close(t->tun_fd);
	if (t->sock >= 0)
		close(t->sock);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	pthread_mutex_destroy(&t->lock);
	offload_gro_free(t->gro);
	free(t->tx);
	free(t->buf);
	free(t);
}

int gre_tunnel_open(struct gre_tunnel **out, const struct gre_config *c)
{
	struct gre_tunnel *t = calloc(1, sizeof(*t));
	char err[128];
	int e;

	if (!t)
		return -ENOMEM;
	t->c = *c;
	t->tun_fd = t->sock = t->stop_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	t->rl = (struct log_rl)LOG_RL_INIT(5, 10);
	if (!c->mtu)
		t->c.mtu = gre_default_mtu(c->family, &c->opts);
	inet_ntop(c->family, &c->remote, t->peer, sizeof(t->peer));
	if (!gre_config_check(c, err, sizeof(err))) {
		log_warnx("%s: %s", c->ifname, err);
		e = -EINVAL;
		goto fail;
	}
	if (!(t->buf = malloc(BATCH * sizeof(*t->buf))) || !(t->tx = malloc(sizeof(*t->tx))) ||
	    !(t->gro = offload_gro_new(BATCH * (BUF_SIZE + OFFLOAD_VNET_HDR_LEN)))) {
		e = -ENOMEM;
		goto fail;
	}
	if ((t->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		e = -errno;
		goto fail;
	}
	if ((t->sock = open_socket(&t->c)) < 0) {
		e = t->sock;
		log_warnx("%s: raw GRE socket to %s: %s", c->ifname, t->peer, strerror(-e));
		goto fail;
	}
	if ((t->tun_fd = tun_open_offload(t->c.ifname, t->c.mtu, &t->tso)) < 0) {
		e = -errno;
		log_warnx("%s: creating the TUN interface: %s", c->ifname, strerror(-e));
		goto fail;
	}
	t->tx->n = 0;
	t->tx->used = 0;
	log_info("%s: TUN offloads %s", t->c.ifname, t->tso ? "on (TSO in, coalescing out)" :
		 "refused by the kernel: one packet per read, coalescing out");
	t->st.ka_state = c->keepalive_ms ? GRE_KA_UP : GRE_KA_OFF;
	t->next_ka_ns = clock_mono_ns() + (uint64_t)c->keepalive_ms * NSEC_PER_MSEC;
	*out = t;
	return 0;
fail:
	tunnel_free(t);
	return e;
}

/* ICMP errors reported to the socket (protocol unreachable while the
 * remote is not listening: ENOPROTOOPT; host unreachable; too big) and a
 * full send buffer: that packet is lost, the tunnel goes on. Only errors
 * that say the descriptor itself is unusable end the loop. */
static bool soft_error(int e)
{
	return e != EBADF && e != EFAULT && e != EINVAL && e != ENOTSOCK && e != ENOMEM;
}

static void drop(struct gre_tunnel *t, enum gre_drop why)
{
	t->st.rx_drops[why]++;
	if (log_enabled(LOG_LVL_DEBUG) && log_ratelimit(&t->rl))
		log_debug("%s: dropped a packet from %s: %s", t->c.ifname, t->peer, gre_drop_name(why));
}

/* --- keepalives ------------------------------------------------------- */

/* The inner IP packet: from the remote to us, protocol GRE, with a GRE
 * header of protocol 0. Written at p; returns its length. */
static size_t ka_inner(const struct gre_tunnel *t, uint8_t *p)
{
	struct gre_opts o = t->c.opts;
	size_t ip = t->c.family == AF_INET ? 20 : 40, g;

	o.seq = false;
	g = gre_hdr_size(&o);
	memset(p, 0, ip);
	if (t->c.family == AF_INET) {
		p[0] = 0x45;
		xb_put16(p + 2, (uint16_t)(ip + g));
		p[8] = 255;
		p[9] = IPPROTO_GRE;
		memcpy(p + 12, &t->c.remote, 4);
		memcpy(p + 16, &t->c.local, 4);
		gre_encap(p + ip, &o, GRE_PROTO_KEEPALIVE, 0, 0);
		xb_put16(p + 10, gre_checksum(p, 20));
	} else {
		p[0] = 0x60;
		xb_put16(p + 4, (uint16_t)g);
		p[6] = IPPROTO_GRE;
		p[7] = 255;
		memcpy(p + 8, &t->c.remote, 16);
		memcpy(p + 24, &t->c.local, 16);
		gre_encap(p + ip, &o, GRE_PROTO_KEEPALIVE, 0, 0);
	}
	return ip + g;
}

static void send_keepalive(struct gre_tunnel *t)
{
	uint8_t pkt[GRE_HDR_MAX + 40 + GRE_HDR_MAX];
	size_t h = gre_hdr_size(&t->c.opts), n = ka_inner(t, pkt + h);
	uint16_t proto = t->c.family == AF_INET ? GRE_PROTO_IPV4 : GRE_PROTO_IPV6;

	gre_encap(pkt, &t->c.opts, proto, t->tx_seq++, n);
	if (send(t->sock, pkt, h + n, 0) < 0)
		t->st.tx_errors++;
	t->st.keepalives_sent++;
}

static void keepalive_tick(struct gre_tunnel *t, uint64_t now)
{
	uint64_t iv = (uint64_t)t->c.keepalive_ms * NSEC_PER_MSEC;

	if (!iv || now < t->next_ka_ns)
		return;
	if (t->st.ka_state == GRE_KA_UP && t->missed >= t->c.keepalive_retries) {
		t->st.ka_state = GRE_KA_DOWN;
		t->st.ka_transitions++;
		log_warnx("%s: GRE keepalive to %s: no reply in %u intervals of %u ms, tunnel down",
			  t->c.ifname, t->peer, t->missed, t->c.keepalive_ms);
	}
	send_keepalive(t);
	t->missed++;
	t->next_ka_ns = now + iv;
}

static void keepalive_reply(struct gre_tunnel *t, uint64_t now)
{
	t->st.keepalive_replies++;
	t->st.last_reply_ns = now;
	t->missed = 0;
	if (t->st.ka_state == GRE_KA_DOWN) {
		/* The remote may have restarted and begun its numbers again. */
		t->rx_seq.seen = false;
		t->st.ka_state = GRE_KA_UP;
		t->st.ka_transitions++;
		log_info("%s: GRE keepalive reply from %s, tunnel up", t->c.ifname, t->peer);
	}
}

/* --- TUN → socket ------------------------------------------------------ */

/* Send what is queued, in order. A packet the socket refuses (an ICMP
 * error reported, a full buffer) is lost and the rest go on. -1 when the
 * socket is unusable. */
static int tx_flush(struct gre_tunnel *t)
{
	struct txq *q = t->tx;
	unsigned sent = 0;

	while (sent < q->n) {
		int r = sendmmsg(t->sock, q->m + sent, q->n - sent, 0);

		if (r < 0 && !soft_error(errno))
			return -1;
		if (r < 0) {	/* this one is lost; send the rest */
			t->st.tx_errors++;
			t->st.icmp_errors += errno != EAGAIN && errno != ENOBUFS;
			t->st.tx_bytes -= q->iov[sent][1].iov_len;
			r = 1;
		} else {
			t->st.tx_packets += (unsigned)r;
		}
		sent += (unsigned)r;
	}
	q->n = 0;
	q->used = 0;
	return 0;
}

/* Queue one inner packet behind its GRE header (the next sequence number). */
static void tx_queue(struct gre_tunnel *t, uint8_t *p, size_t n)
{
	struct txq *q = t->tx;
	uint16_t proto = n > 0 && p[0] >> 4 == 6 ? GRE_PROTO_IPV6 : GRE_PROTO_IPV4;
	size_t h;

	if (gre_inner_ok(proto, p, n) != GRE_OK) {
		t->st.tx_errors++;
		return;
	}
	h = gre_encap_hdr(q->hdr[q->n], &t->c.opts, proto, t->tx_seq++, p, n);
	q->iov[q->n][0] = (struct iovec){ q->hdr[q->n], h };
	q->iov[q->n][1] = (struct iovec){ p, n };
	q->m[q->n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = q->iov[q->n], .msg_iovlen = 2 } };
	t->st.tx_bytes += n;
	q->n++;
}

/* Cut segments first... of what one TUN read returned into the queue's free
 * space, as many as fit its slots: their number, 0 past the last, -1 when
 * none fits (the queue is sent and the cut tried again) or it is malformed. */
static int cut(struct txq *q, size_t len, size_t first)
{
	return offload_segment_window(q->rd, len, first, q->arena + q->used, TX_ARENA - q->used,
				      q->seg_off, q->seg_len, (int)(TX_MSGS - q->n));
}

/* Up to BATCH TUN reads, each cut into packets (a TSO segment into many)
 * and queued; sent once TX_BURST are queued, when the queue has no room for
 * the next read's packets, and at the end. Returns -1 when the TUN or the socket is gone. */
static int from_tun(struct gre_tunnel *t)
{
	struct txq *q = t->tx;

	for (unsigned i = 0; i < BATCH; i++) {
		ssize_t r;
		int n;

		if ((r = read(t->tun_fd, q->rd, sizeof(q->rd))) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		/* A window of segments at a time: a read of more than the
		 * queue holds (a tiny MSS) goes in several. */
		for (size_t first = 0;; first += (size_t)n) {
			if ((n = cut(q, (size_t)r, first)) < 0 && q->n > 0) {
				if (tx_flush(t) < 0)
					return -1;
				n = cut(q, (size_t)r, first);
			}
			if (n <= 0)
				break;
			for (int s = 0; s < n; s++)
				tx_queue(t, q->arena + q->used + q->seg_off[s], q->seg_len[s]);
			q->used += q->seg_off[n - 1] + q->seg_len[n - 1];
			if (q->n >= TX_BURST && tx_flush(t) < 0)
				return -1;
		}
		if (n < 0)	/* not a packet or super-packet we can cut */
			t->st.tx_errors++;
	}
	return tx_flush(t);
}

/* --- socket → TUN ------------------------------------------------------ */

/* The outer IPv4 header: skip it, after checking that it is one and comes
 * from the remote (the connected socket filters already; a cheap check). */
static enum gre_drop strip_outer4(const struct gre_tunnel *t, uint8_t **p, size_t *n)
{
	size_t ihl;

	if (*n < 20 || (*p)[0] >> 4 != 4)
		return GRE_DROP_OUTER;
	ihl = ((*p)[0] & 0x0f) * 4u;
	if (ihl < 20 || ihl > *n || memcmp(*p + 12, &t->c.remote, 4))
		return GRE_DROP_OUTER;
	*p += ihl;
	*n -= ihl;
	return GRE_OK;
}

/* The inner packets a TUN write w (vnet header and packet) carries, and
 * their bytes: a coalesced one stands for segments of gso_size payload each
 * behind a copy of the headers (offload.h). */
static void write_counts(const uint8_t *w, size_t len, uint64_t *pkts, uint64_t *bytes)
{
	struct virtio_net_hdr vh;
	size_t ip = len - OFFLOAD_VNET_HDR_LEN, payload;

	memcpy(&vh, w, sizeof(vh));
	*pkts = 1;
	*bytes = ip;
	if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE || !vh.gso_size || vh.hdr_len >= ip)
		return;
	payload = ip - vh.hdr_len;
	*pkts = (payload + vh.gso_size - 1) / vh.gso_size;
	*bytes = ip + (*pkts - 1) * vh.hdr_len;
}

/* Write the accepted packets of a batch to the TUN. Packets in a write the
 * TUN refuses move from rx_packets to rx_errors. */
static void tun_flush(struct gre_tunnel *t)
{
	size_t n = offload_gro_finish(t->gro), len;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *w = offload_gro_get(t->gro, i, &len);
		uint64_t pkts, bytes;

		if (write(t->tun_fd, w, len) >= 0)
			continue;
		write_counts(w, len, &pkts, &bytes);
		t->st.rx_packets -= pkts;
		t->st.rx_bytes -= bytes;
		t->st.rx_errors += pkts;
	}
	offload_gro_reset(t->gro);
}

/* An accepted inner packet joins the batch for the TUN (counted now). */
static void deliver(struct gre_tunnel *t, const uint8_t *p, size_t n)
{
	if (!offload_gro_add(t->gro, p, n)) {
		tun_flush(t);
		if (!offload_gro_add(t->gro, p, n)) {	/* cannot happen: n <= BUF_SIZE */
			t->st.rx_errors++;
			return;
		}
	}
	t->st.rx_packets++;
	t->st.rx_bytes += n;
}

/* One received datagram; GRE_OK when it was delivered or was a keepalive
 * reply, else why it is dropped. */
static enum gre_drop receive_one(struct gre_tunnel *t, uint8_t *p, size_t n, uint64_t now)
{
	struct gre_hdr h;
	enum gre_drop d;

	if (t->c.family == AF_INET && (d = strip_outer4(t, &p, &n)) != GRE_OK)
		return d;
	if ((d = gre_decode(p, n, &t->c.opts, &h)) != GRE_OK)
		return d;
	if (h.proto == GRE_PROTO_KEEPALIVE) {
		if (n != h.len)
			return GRE_DROP_PROTO;
		keepalive_reply(t, now);
		return GRE_OK;
	}
	if ((d = gre_inner_ok(h.proto, p + h.len, n - h.len)) != GRE_OK)
		return d;
	if (t->c.opts.seq && !(h.flags & GRE_F_SEQ))
		return GRE_DROP_NO_SEQ;
	if (t->c.opts.seq && !gre_seq_accept(&t->rx_seq, h.seq))
		return GRE_DROP_SEQ;
	deliver(t, p + h.len, n - h.len);
	return GRE_OK;
}

static int from_socket(struct gre_tunnel *t, uint64_t now)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	int r;

	for (unsigned i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ t->buf[i], BUF_SIZE };
		m[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	r = recvmmsg(t->sock, m, BATCH, 0, NULL);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (!soft_error(errno))
			return -1;
		t->st.icmp_errors++;
		return 0;
	}
	for (int i = 0; i < r; i++) {
		enum gre_drop d = m[i].msg_hdr.msg_flags & MSG_TRUNC ? GRE_DROP_SHORT
				: receive_one(t, t->buf[i], m[i].msg_len, now);

		if (d != GRE_OK)
			drop(t, d);
	}
	tun_flush(t);
	return 0;
}

/* --- the loop ---------------------------------------------------------- */

void gre_stats_format(const struct gre_stats *s, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "rx %llu packets %llu bytes, tx %llu packets %llu bytes, "
				    "rx errors %llu, tx errors %llu, icmp errors %llu, keepalive %s "
				    "(sent %llu, replies %llu), drops",
				    (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes,
				    (unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes,
				    (unsigned long long)s->rx_errors, (unsigned long long)s->tx_errors,
				    (unsigned long long)s->icmp_errors, gre_ka_state_name(s->ka_state),
				    (unsigned long long)s->keepalives_sent,
				    (unsigned long long)s->keepalive_replies);

	for (int d = GRE_OK + 1; d < GRE_DROP_COUNT && n < len; d++)
		n += (size_t)snprintf(buf + n, len - n, " %s=%llu", gre_drop_name((enum gre_drop)d),
				      (unsigned long long)s->rx_drops[d]);
}

static void log_stats(struct gre_tunnel *t)
{
	struct gre_stats s;
	char buf[512];

	gre_tunnel_stats(t, &s);
	gre_stats_format(&s, buf, sizeof(buf));
	log_info("%s: %s", t->c.ifname, buf);
}

void gre_tunnel_request_stats(struct gre_tunnel *t) { t->want_stats = 1; }

static int wait_ms(const struct gre_tunnel *t, uint64_t now)
{
	if (!t->c.keepalive_ms)
		return -1;
	if (t->next_ka_ns <= now)
		return 0;
	return (int)((t->next_ka_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
}

int gre_tunnel_run(struct gre_tunnel *t)
{
	struct pollfd pfd[3] = {
		{ .fd = t->tun_fd, .events = POLLIN },
		{ .fd = t->sock, .events = POLLIN },
		{ .fd = t->stop_fd, .events = POLLIN },
	};
	int ret = 0;

	for (;;) {
		uint64_t now = clock_mono_ns();

		if (poll(pfd, 3, wait_ms(t, now)) < 0 && errno != EINTR)
			return -errno;
		if (pfd[2].revents)
			break;
		if (t->want_stats) {
			t->want_stats = 0;
			log_stats(t);
		}
		now = clock_mono_ns();
		pthread_mutex_lock(&t->lock);
		if ((pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) && from_tun(t) < 0)
			ret = -errno;
		if (!ret && (pfd[1].revents & (POLLIN | POLLERR)) && from_socket(t, now) < 0)
			ret = -errno;
		keepalive_tick(t, now);
		pthread_mutex_unlock(&t->lock);
		if (ret) {
			log_warnx("%s: GRE tunnel to %s stopped: %s", t->c.ifname, t->peer, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static void *thread_main(void *arg)
{
	struct gre_tunnel *t = arg;

	gre_tunnel_run(t);
	atomic_store(&t->ended, true);
	return NULL;
}

bool gre_tunnel_ended(struct gre_tunnel *t)
{
	return t->started && atomic_load(&t->ended);
}

int gre_tunnel_start(struct gre_tunnel *t)
{
	int r = xb_thread_start(&t->thread, thread_main, t);

	if (r)
		return -r;
	t->started = true;
	return 0;
}

void gre_tunnel_stop(struct gre_tunnel *t)
{
	uint64_t one = 1;

	if (write(t->stop_fd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: a stop is pending. */
	}
}

void gre_tunnel_close(struct gre_tunnel *t)
{
	if (!t)
		return;
	if (t->started) {
		gre_tunnel_stop(t);
		pthread_join(t->thread, NULL);
	}
	tunnel_free(t);
}

void gre_tunnel_stats(struct gre_tunnel *t, struct gre_stats *out)
{
	pthread_mutex_lock(&t->lock);
	*out = t->st;
	pthread_mutex_unlock(&t->lock);
}
