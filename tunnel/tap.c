/* The local UDP tap; see tap.h for what it takes and the frame format.
 *
 * Queries of one receive batch leave in one sendmmsg (wg_tap_flush, from
 * wg_tun_flush), their payloads gathered from the receive buffer where
 * they were decrypted. Replies are read WG_BATCH at a time with recvmmsg
 * and sent like TUN reads, so they join the round's encryption batch.
 * A full socket drops the query (counted); the client retries.
 */
#include "tunnel/tap.h"
#include "tunnel/device.h"
#include "tunnel/offload.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define SLOT (WG_TAP_HDR_LEN + WG_TAP_PAYLOAD_MAX)

struct wg_tap {
	int fd;
	size_t n;
	struct wg_tap_endpoint eps[WG_TAP_MAX_ENDPOINTS];
	/* queries of the batch */
	unsigned nq;
	struct wg_tap_hdr qh[WG_BATCH];
	struct iovec qiov[WG_BATCH][2];
	struct mmsghdr qm[WG_BATCH];
	/* replies */
	struct mmsghdr rm[WG_BATCH];
	struct iovec riov[WG_BATCH];
	uint8_t rbuf[WG_BATCH][SLOT];
	uint8_t pkt[40 + 8 + WG_TAP_PAYLOAD_MAX];
};

/* The UDP pseudo-header's sum (RFC 768, RFC 8200 §8.1), as offload_csum's
 * initial value. */
static uint32_t pseudo(uint8_t family, const uint8_t *src, const uint8_t *dst, size_t udp_len)
{
	size_t alen = family == 4 ? 4 : 16;

	return (uint32_t)offload_csum(src, alen, offload_csum(dst, alen, 0)) + 17 + (uint32_t)udp_len;
}

static bool endpoint_is(const struct wg_tap_endpoint *eps, size_t n, uint8_t family, const uint8_t *addr,
			uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (eps[i].family == family && eps[i].port == port &&
		    !memcmp(eps[i].addr, addr, family == 4 ? 4 : 16))
			return true;
	return false;
}

static void fill_hdr(struct wg_tap_hdr *h, uint8_t family, const uint8_t *src, const uint8_t *dst,
		     const uint8_t *udp)
{
	size_t alen = family == 4 ? 4 : 16;

	memset(h, 0, sizeof(*h));
	h->family = family;
	memcpy(&h->sport, udp, 2);
	memcpy(&h->dport, udp + 2, 2);
	memcpy(h->src, src, alen);
	memcpy(h->dst, dst, alen);
}

bool wg_tap_parse(const struct wg_tap_endpoint *eps, size_t n, const uint8_t *pkt, size_t len,
		  struct wg_tap_hdr *h, size_t *off, size_t *plen)
{
	uint8_t family;
	const uint8_t *udp, *src, *dst;
	size_t ulen, hl;

	if (len >= 20 + 8 && pkt[0] == 0x45) {	/* IPv4, no options */
		if (((size_t)pkt[2] << 8 | pkt[3]) != len || (pkt[6] & 0x3f) || pkt[7] || pkt[9] != 17 ||
		    offload_csum(pkt, 20, 0) != 0xffff)
			return false;	/* fragment (MF or offset), not UDP, bad header */
		family = 4;
		hl = 20;
		src = pkt + 12;
		dst = pkt + 16;
	} else if (len >= 40 + 8 && pkt[0] >> 4 == 6) {
		if (40 + ((size_t)pkt[4] << 8 | pkt[5]) != len || pkt[6] != 17)
			return false;	/* extension headers: the kernel's */
		family = 6;
		hl = 40;
		src = pkt + 8;
		dst = pkt + 24;
	} else {
		return false;
	}
	udp = pkt + hl;
	ulen = (size_t)udp[4] << 8 | udp[5];
	if (ulen != len - hl || ulen - 8 > WG_TAP_PAYLOAD_MAX ||
	    !endpoint_is(eps, n, family, dst, (uint16_t)(udp[2] << 8 | udp[3])))
		return false;	/* longer: the service would drop it; not worth the socket's room */
	/* Checksum 0: none sent, allowed over IPv4 only (RFC 768, RFC 8200). */
	if (udp[6] | udp[7] ? offload_csum(udp, ulen, pseudo(family, src, dst, ulen)) != 0xffff : family == 6)
		return false;
	fill_hdr(h, family, src, dst, udp);
	*off = hl + 8;
	*plen = ulen - 8;
	return true;
}

static bool zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

size_t wg_tap_build(const struct wg_tap_endpoint *eps, size_t n, const uint8_t *frame, size_t len,
		    size_t max_payload, uint8_t *out, size_t cap)
{
	struct wg_tap_hdr h;
	size_t hl, alen, plen, ulen;
	uint8_t *udp;
	uint16_t c;

	if (len < WG_TAP_HDR_LEN)
		return 0;
	memcpy(&h, frame, sizeof(h));
	plen = len - WG_TAP_HDR_LEN;
	if ((h.family != 4 && h.family != 6) || h.zero[0] | h.zero[1] | h.zero[2] || !h.dport ||
	    plen > max_payload)
		return 0;
	alen = h.family == 4 ? 4 : 16;
	if (!zero(h.src + alen, 16 - alen) || !zero(h.dst + alen, 16 - alen) ||
	    !endpoint_is(eps, n, h.family, h.src, ntohs(h.sport)))
		return 0;
	hl = h.family == 4 ? 20 : 40;
	ulen = 8 + plen;
	if (hl + ulen > cap || hl + ulen > 65535)
		return 0;
	memset(out, 0, hl + 8);
	if (h.family == 4) {
		out[0] = 0x45;
		out[2] = (uint8_t)((hl + ulen) >> 8);
		out[3] = (uint8_t)(hl + ulen);
		out[6] = 0x40;		/* DF, as a kernel socket with PMTU discovery sends */
		out[8] = 64;
		out[9] = 17;
		memcpy(out + 12, h.src, 4);
		memcpy(out + 16, h.dst, 4);
		c = (uint16_t)~offload_csum(out, 20, 0);
		out[10] = (uint8_t)(c >> 8);
		out[11] = (uint8_t)c;
	} else {
		out[0] = 0x60;
		out[4] = (uint8_t)(ulen >> 8);
		out[5] = (uint8_t)ulen;
		out[6] = 17;
		out[7] = 64;
		memcpy(out + 8, h.src, 16);
		memcpy(out + 24, h.dst, 16);
	}
	udp = out + hl;
	memcpy(udp, &h.sport, 2);
	memcpy(udp + 2, &h.dport, 2);
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	memcpy(udp + 8, frame + WG_TAP_HDR_LEN, plen);
	c = (uint16_t)~offload_csum(udp, ulen, pseudo(h.family, h.src, h.dst, ulen));
	if (!c)
		c = 0xffff;	/* 0 means "no checksum" */
	udp[6] = (uint8_t)(c >> 8);
	udp[7] = (uint8_t)c;
	return hl + ulen;
}

/* ---- the device's side ---- */

int wg_device_set_tap(struct wg_device *dev, int fd, const struct wg_tap_endpoint *eps, size_t n)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	struct wg_tap *t = NULL;
	int r = 0, old = -1;

	if (n > WG_TAP_MAX_ENDPOINTS)
		return -EINVAL;
	if (n && !(t = calloc(1, sizeof(*t))))
		return -ENOMEM;
	pthread_mutex_lock(&dev->lock);
	if (dev->tap && (!t || dev->tap->fd != fd)) {
		old = dev->tap->fd;	/* closed with it */
		wg_tap_free(dev);
	} else if (dev->tap) {		/* the same socket: new endpoints */
		free(t);
		t = dev->tap;
		goto set;
	}
	if (!t) {
		if (fd >= 0 && fd != old)
			close(fd);
		goto out;
	}
	if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		free(t);
		goto out;
	}
	t->fd = fd;
	for (int i = 0; i < WG_BATCH; i++) {
		t->riov[i] = (struct iovec){ t->rbuf[i], sizeof(t->rbuf[i]) };
		t->rm[i].msg_hdr = (struct msghdr){ .msg_iov = &t->riov[i], .msg_iovlen = 1 };
	}
	dev->tap = t;
set:
	memcpy(t->eps, eps, n * sizeof(*eps));
	t->n = n;
out:
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void wg_tap_free(struct wg_device *dev)
{
	if (!dev->tap)
		return;
	if (dev->epfd >= 0)
		epoll_ctl(dev->epfd, EPOLL_CTL_DEL, dev->tap->fd, NULL);
	close(dev->tap->fd);
	free(dev->tap);
	dev->tap = NULL;
}

int wg_tap_fd(const struct wg_device *dev)
{
	return dev->tap ? dev->tap->fd : -1;
}

bool wg_tap_take(struct wg_device *dev, const uint8_t *pkt, size_t len)
{
	struct wg_tap *t = dev->tap;
	size_t off, plen;
	unsigned i;

	if (!t || !t->n)
		return false;
	if (t->nq == WG_BATCH)
		wg_tap_flush(dev);
	i = t->nq;
	if (!wg_tap_parse(t->eps, t->n, pkt, len, &t->qh[i], &off, &plen))
		return false;
	t->qiov[i][0] = (struct iovec){ &t->qh[i], sizeof(t->qh[i]) };
	t->qiov[i][1] = (struct iovec){ (void *)(pkt + off), plen };
	t->qm[i].msg_hdr = (struct msghdr){ .msg_iov = t->qiov[i], .msg_iovlen = 2 };
	t->nq++;
	dev->stats.tap_queries++;
	return true;
}

void wg_tap_flush(struct wg_device *dev)
{
	struct wg_tap *t = dev->tap;
	unsigned sent = 0;

	if (!t || !t->nq)
		return;
	while (sent < t->nq) {
		int k = sendmmsg(t->fd, t->qm + sent, t->nq - sent, MSG_DONTWAIT);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			dev->stats.tap_dropped += t->nq - sent;
			break;
		}
		sent += (unsigned)k;
	}
	t->nq = 0;
}

/* A reply may be as long as fits the interface's MTU after IP and UDP. */
static size_t max_payload(const struct wg_device *dev, const uint8_t *frame, size_t len)
{
	size_t over = len && frame[0] == 4 ? 28 : 48, m = dev->mtu > over ? dev->mtu - over : 0;

	return m < WG_TAP_PAYLOAD_MAX ? m : WG_TAP_PAYLOAD_MAX;
}

void wg_tap_rx(struct wg_device *dev, uint64_t now)
{
	struct wg_tap *t = dev->tap;
	int n;

	if (!t)
		return;
	n = recvmmsg(t->fd, t->rm, WG_BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < n; i++) {
		size_t len = t->rm[i].msg_len, plen = 0;

		if (!(t->rm[i].msg_hdr.msg_flags & MSG_TRUNC))
			plen = wg_tap_build(t->eps, t->n, t->rbuf[i], len, max_payload(dev, t->rbuf[i], len),
					    t->pkt, sizeof(t->pkt));
		if (!plen) {
			dev->stats.tap_bad_reply++;
			if (log_ratelimit(&dev->rl_tx))
				log_warnx("%s: tap: dropped a malformed reply of %zu bytes", dev->ifname, len);
			continue;
		}
		/* Counted once handed to the peer (queued or staged); a drop
		 * there (no peer for the address, no endpoint) is counted by
		 * wg_send_from_tun in tx_no_peer / tx_no_endpoint. */
		if (wg_send_from_tun(dev, t->pkt, plen, now))
			dev->stats.tap_answers++;
	}
}
