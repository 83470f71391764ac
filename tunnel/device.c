/* The userspace WireGuard device: sockets, the event loop, configuration.
 * See device.h for the threading rule (one lock, taken per batch). */
#include "tunnel/device.h"
#include "tunnel/workers.h"
#include "tunnel/aead.h"
#include "tunnel/offload.h"
#include "tunnel/tap.h"
#include "tunnel/tun.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sodium.h>
#include <unistd.h>

/* Every peer goes. The trie is emptied first, in one pass: removing peers
 * one at a time from a full trie walks all of it per peer, which made
 * closing a 10 000-device interface take seconds. */
static void remove_all_peers(struct wg_device *dev)
{
	wg_allowedips_free(&dev->allowedips);	/* leaves it empty and usable */
	while (dev->peers)
		wg_peer_remove(dev->peers);
}

void wg_timing_default(struct wg_timing *t)
{
	*t = (struct wg_timing){
		.rekey_after_time = REKEY_AFTER_TIME,
		.reject_after_time = REJECT_AFTER_TIME,
		.rekey_attempt_time = REKEY_ATTEMPT_TIME,
		.rekey_timeout = REKEY_TIMEOUT,
		.keepalive_timeout = KEEPALIVE_TIMEOUT,
		.rekey_after_messages = REKEY_AFTER_MESSAGES,
	};
}

bool wg_timing_parse(struct wg_timing *t, const char *spec, char *err, size_t errlen)
{
	static const struct { const char *name; size_t off; } keys[] = {
		{ "rekey_after_time", offsetof(struct wg_timing, rekey_after_time) },
		{ "reject_after_time", offsetof(struct wg_timing, reject_after_time) },
		{ "rekey_attempt_time", offsetof(struct wg_timing, rekey_attempt_time) },
		{ "rekey_timeout", offsetof(struct wg_timing, rekey_timeout) },
		{ "keepalive_timeout", offsetof(struct wg_timing, keepalive_timeout) },
	};
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;
		unsigned long v;
		size_t i;

		if (!eq)
			goto bad;
		*eq = '\0';
		errno = 0;
		v = strtoul(eq + 1, &end, 10);
		if (errno || end == eq + 1 || *end || v == 0 || v > 86400)
			goto bad;
		if (!strcmp(kv, "rekey_after_messages")) {
			t->rekey_after_messages = v;
			continue;
		}
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(kv, keys[i].name))
				break;
		if (i == sizeof(keys) / sizeof(keys[0]))
			goto bad;
		*(unsigned *)((char *)t + keys[i].off) = (unsigned)v;
		continue;
bad:
		snprintf(err, errlen, "bad timer setting `%s' (keys: rekey_after_time, reject_after_time, "
			 "rekey_attempt_time, rekey_timeout, keepalive_timeout, rekey_after_messages; "
			 "values in seconds, 1..86400)", kv);
		return false;
	}
	if (t->reject_after_time <= t->keepalive_timeout + t->rekey_timeout) {
		snprintf(err, errlen, "reject_after_time must exceed keepalive_timeout + rekey_timeout");
		return false;
	}
	return true;
}

/* Socket buffers for bursts (tun_socket_buffers()): a peer's GSO batch
 * arrives while this thread waits for a core. */
#define WG_SOCK_BUF	(4 << 20)

static int udp_socket(int family, uint16_t port, uint32_t fwmark, uint16_t *bound)
{
	union xb_sockaddr sa = { 0 };
	socklen_t len;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1, saved;

	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		sa.in = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port) };
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
		len = sizeof(sa.in);
	} else {
		sa.in6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = htons(port) };
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
		len = sizeof(sa.in6);
	}
	if (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0)
		goto fail;
	/* Receive coalesced datagrams where the kernel can (UDP GRO, Linux 5.0). */
	setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on));
	tun_socket_buffers(fd, WG_SOCK_BUF);
	if (bind(fd, &sa.sa, len) < 0 || getsockname(fd, &sa.sa, &len) < 0)
		goto fail;
	*bound = ntohs(family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static void close_socket(struct wg_device *dev, int *fd)
{
	if (*fd >= 0) {
		epoll_ctl(dev->epfd, EPOLL_CTL_DEL, *fd, NULL);
		close(*fd);
	}
	*fd = -1;
}

static void close_sockets(struct wg_device *dev)
{
	close_socket(dev, &dev->sock4);
	close_socket(dev, &dev->sock6);
}

static void watch(struct wg_device *dev, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (fd >= 0)
		epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Whether the kernel segments UDP for us (UDP_SEGMENT, Linux 4.18) and
 * coalesces on receive (UDP_GRO). */
static bool udp_offloads(int fd, bool *gro)
{
	int v = 0;
	socklen_t len = sizeof(v);

	*gro = getsockopt(fd, SOL_UDP, UDP_GRO, &v, &len) == 0 && v;
	len = sizeof(v);
	return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
}

/* Bind IPv4 and IPv6 sockets to one port (a random one for port 0). IPv6
 * is optional: a host without it runs on IPv4 alone. */
static int bind_sockets(struct wg_device *dev, uint16_t port)
{
	for (int attempt = 0; attempt < 10; attempt++) {
		uint16_t p4 = 0, p6 = 0;
		int s4 = udp_socket(AF_INET, port, dev->fwmark, &p4), s6, saved;

		if (s4 < 0)
			return -errno;
		s6 = udp_socket(AF_INET6, p4, dev->fwmark, &p6);
		if (s6 < 0 && errno == EADDRINUSE && !port) {
			close(s4);
			continue;
		}
		if (s6 < 0 && errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL) {
			saved = errno;
			close(s4);
			return -saved;
		}
		close_sockets(dev);
		dev->sock4 = s4;
		dev->sock6 = s6;
		dev->listen_port = p4;
		dev->udp_gso = udp_offloads(s4, &dev->udp_gro);
		watch(dev, s4);
		watch(dev, s6);
		return 0;
	}
	return -EADDRINUSE;
}

static void set_fwmark(struct wg_device *dev, uint32_t mark)
{
	dev->fwmark = mark;
	if ((dev->sock4 >= 0 && setsockopt(dev->sock4, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) ||
	    (dev->sock6 >= 0 && setsockopt(dev->sock6, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0))
		log_warn("%s: setting fwmark", dev->ifname);
}

static void set_private_key(struct wg_device *dev, const uint8_t key[WG_KEY_LEN])
{
	const uint8_t *k = wg_key_is_zero(key) ? NULL : key;
	struct wg_peer *p, *next;

	if (k && dev->identity.has_identity && !sodium_memcmp(dev->identity.static_private, k, WG_KEY_LEN))
		return;
	noise_identity_set(&dev->identity, k);
	wg_cookie_checker_set_key(&dev->cookie_checker, dev->identity.has_identity ?
				  dev->identity.static_public : NULL);
	for (p = dev->peers; p; p = next) {
		next = p->next;
		/* A peer with our own public key cannot exist (as in the kernel). */
		if (dev->identity.has_identity &&
		    !sodium_memcmp(p->handshake.remote_static, dev->identity.static_public, WG_KEY_LEN)) {
			wg_peer_remove(p);
			continue;
		}
		noise_handshake_precompute(&p->handshake, &dev->identity);
		wg_peer_expire_keypairs(p);
	}
}

static int apply_peer(struct wg_device *dev, const struct wg_peer_conf *pc, uint64_t now)
{
	struct wg_peer *peer = wg_peer_lookup(dev, pc->public_key);
	bool was_keepalive;

	if (pc->remove) {
		if (peer)
			wg_peer_remove(peer);
		return 0;
	}
	if (!peer) {
		if (pc->update_only)
			return 0;
		if (dev->identity.has_identity &&
		    !sodium_memcmp(pc->public_key, dev->identity.static_public, WG_KEY_LEN))
			return 0;
		if (!(peer = wg_peer_create(dev, pc->public_key)))
			return -ENOMEM;
	}
	if (pc->has_preshared_key)
		noise_handshake_set_psk(&peer->handshake,
					wg_key_is_zero(pc->preshared_key) ? NULL : pc->preshared_key);
	if (pc->endpoint.sa.sa_family != AF_UNSPEC) {
		peer->endpoint = pc->endpoint;
		peer->src.sa.sa_family = AF_UNSPEC;
		peer->src_ifindex = 0;
	}
	if (pc->replace_allowed_ips)
		wg_allowedips_remove_peer(&dev->allowedips, peer);
	for (size_t i = 0; i < pc->n_allowed_ips; i++)
		if (wg_allowedips_insert(&dev->allowedips, &pc->allowed_ips[i], peer) < 0)
			return -ENOMEM;
	was_keepalive = peer->persistent_keepalive != 0;
	if (pc->has_persistent_keepalive)
		peer->persistent_keepalive = pc->persistent_keepalive;
	/* A newly enabled persistent keepalive goes out at once. */
	if (!was_keepalive && peer->persistent_keepalive && dev->identity.has_identity)
		wg_send_keepalive(peer, now);
	return 0;
}

int wg_device_set(struct wg_device *dev, const struct wg_conf *c)
{
	uint64_t now = clock_mono_ns();
	int err = 0;

	pthread_mutex_lock(&dev->lock);
	if (c->has_fwmark)
		set_fwmark(dev, c->fwmark);
	if (c->has_listen_port && c->listen_port != dev->listen_port) {
		int r = bind_sockets(dev, c->listen_port);
		if (r < 0) {
			log_warnx("%s: cannot listen on port %u: %s", dev->ifname, c->listen_port, strerror(-r));
			err = r;
			goto out;
		}
	}
	if (c->has_private_key)
		set_private_key(dev, c->private_key);
	if (c->replace_peers)
		remove_all_peers(dev);
	for (size_t i = 0; i < c->n_peers && !err; i++)
		err = apply_peer(dev, &c->peers[i], now);
	wg_txq_flush(dev);
	/* A keepalive turned on above was sealed on this thread (the UAPI's,
	 * or the daemon's): its libcrypto context would keep the session key
	 * after the data thread frees the keypair, which wipes only its own. */
	xb_aead_forget();
out:
	pthread_mutex_unlock(&dev->lock);
	/* Timers may have been armed: let the loop recompute its sleep. */
	uint64_t one = 1;
	if (write(dev->wake_fd, &one, sizeof(one)) < 0)
		log_debug("%s: wake-up write failed", dev->ifname);
	return err;
}

struct walk_ctx {
	struct wg_peer_conf *pc;
	size_t cap;
	bool failed;
};

static void collect_prefix(void *ctx, const struct xb_prefix *p, void *owner)
{
	struct walk_ctx *w = ctx;

	(void)owner;
	if (w->pc->n_allowed_ips == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 8;
		struct xb_prefix *n = realloc(w->pc->allowed_ips, cap * sizeof(*n));
		if (!n) {
			w->failed = true;
			return;
		}
		w->pc->allowed_ips = n;
		w->cap = cap;
	}
	w->pc->allowed_ips[w->pc->n_allowed_ips++] = *p;
}

static bool get_peer(struct wg_device *dev, struct wg_peer *p, struct wg_peer_conf *pc)
{
	struct walk_ctx w = { pc, 0, false };

	memcpy(pc->public_key, p->handshake.remote_static, WG_KEY_LEN);
	memcpy(pc->preshared_key, p->handshake.preshared_key, WG_KEY_LEN);
	pc->has_preshared_key = !wg_key_is_zero(p->handshake.preshared_key);
	pc->endpoint = p->endpoint;
	pc->persistent_keepalive = p->persistent_keepalive;
	pc->has_persistent_keepalive = true;
	pc->protocol_version = 1;
	pc->last_handshake_sec = p->last_handshake_sec;
	pc->last_handshake_nsec = p->last_handshake_nsec;
	pc->rx_bytes = p->rx_bytes;
	pc->tx_bytes = p->tx_bytes;
	wg_allowedips_walk(&dev->allowedips, p, collect_prefix, &w);
	return !w.failed;
}

int wg_device_get(struct wg_device *dev, struct wg_conf *out)
{
	size_t i = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&dev->lock);
	if (dev->identity.has_identity) {
		memcpy(out->private_key, dev->identity.static_private, WG_KEY_LEN);
		out->has_private_key = true;
	}
	out->listen_port = dev->listen_port;
	out->has_listen_port = true;
	out->fwmark = dev->fwmark;
	out->has_fwmark = dev->fwmark != 0;
	out->peers = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*out->peers));
	if (!out->peers) {
		err = -ENOMEM;
		goto out;
	}
	for (struct wg_peer *p = dev->peers; p; p = p->next, i++) {
		out->n_peers = i + 1;
		if (!get_peer(dev, p, &out->peers[i])) {
			err = -ENOMEM;
			break;
		}
	}
out:
	pthread_mutex_unlock(&dev->lock);
	if (err)
		wg_conf_free(out);
	return err;
}

int wg_device_alloc(struct wg_device **out, const char *ifname, const struct wg_timing *timing)
{
	struct wg_device *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return -ENOMEM;
	noise_init();
	dev->tun_fd = dev->sock4 = dev->sock6 = dev->epfd = dev->wake_fd = dev->uapi_fd = -1;
	snprintf(dev->ifname, sizeof(dev->ifname), "%s", ifname);
	dev->timing = *timing;
	dev->mtu = WG_DEFAULT_MTU;
	dev->next_timer_ns = UINT64_MAX;
	pthread_mutex_init(&dev->lock, NULL);
	dev->rl_tx = (struct log_rl)LOG_RL_INIT(1, 5);
	wg_cookie_checker_init(&dev->cookie_checker);
	wg_allowedips_init(&dev->allowedips);
	dev->peer_hash = calloc(WG_PEER_HASH, sizeof(*dev->peer_hash));
	if (!dev->peer_hash || !wg_index_init(&dev->index) || !wg_txq_init(dev)) {
		wg_device_close(dev);
		return -ENOMEM;
	}
	*out = dev;
	return 0;
}

int wg_device_open(struct wg_device **out, const char *ifname, const struct wg_timing *timing)
{
	struct wg_device *dev;
	int r = wg_device_alloc(&dev, ifname, timing);

	if (r < 0)
		return r;
	if ((dev->tun_fd = tun_open_offload(dev->ifname, WG_DEFAULT_MTU, &dev->tun_offload)) < 0 ||
	    (dev->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (dev->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail_errno;
	watch(dev, dev->tun_fd);
	watch(dev, dev->wake_fd);
	if (dev->tun_offload && !(dev->gro = offload_gro_new(WG_GRO_BYTES))) {
		r = -ENOMEM;
		goto fail;
	}
	if (dev->gro)
		offload_gro_set_flags(dev->gro, OFFLOAD_GRO_TRUSTED | OFFLOAD_GRO_IOV);
	log_info("%s: TUN offloads (TSO in, coalescing out) %s", dev->ifname,
		 dev->tun_offload ? "on" : "not available: one packet per read and write");
	log_info("%s: transport data: %s", dev->ifname, !strcmp(xb_aead_impl(), "openssl") ?
		 "OpenSSL's ChaCha20 and Poly1305 (one wide ChaCha20 call a packet)" :
		 "libsodium's ChaCha20-Poly1305 (libcrypto gave no cipher context)");
	if ((r = bind_sockets(dev, 0)) < 0)
		goto fail;
	if ((dev->uapi_fd = wg_uapi_listen(dev->ifname)) < 0)
		goto fail_errno;
	*out = dev;
	return 0;
fail_errno:
	r = -errno;
fail:
	wg_device_close(dev);
	return r;
}

int wg_device_set_workers(struct wg_device *dev, unsigned n)
{
	int r;

	if (dev->workers || dev->rxq)
		return -EBUSY;
	if ((r = wg_workers_start(&dev->workers, n)))
		return -r;
	if (dev->workers && !wg_rxq_init(dev)) {
		wg_workers_stop(dev->workers);
		dev->workers = NULL;
		return -ENOMEM;
	}
	log_info("%s: transport data sealed and opened by %u worker%s%s", dev->ifname, n, n == 1 ? "" : "s",
		 n == 1 ? " (the data thread)" : " (the data thread and helpers)");
	return 0;
}

void wg_device_stop(struct wg_device *dev)
{
	uint64_t one = 1;

	dev->stopping = 1;
	if (write(dev->wake_fd, &one, sizeof(one)) < 0)
		return;
}

void wg_device_request_stats(struct wg_device *dev)
{
	uint64_t one = 1;

	dev->want_stats = 1;
	if (write(dev->wake_fd, &one, sizeof(one)) < 0)
		return;
}

/* Counters of what the data path dropped, by reason. */
void wg_device_log_stats(struct wg_device *dev)
{
	const struct wg_stats *s = &dev->stats;

	log_info("%s: stats rx_bad_length=%llu rx_bad_type=%llu rx_bad_mac=%llu rx_no_keypair=%llu "
		 "rx_decrypt_failed=%llu rx_replayed=%llu rx_bad_src=%llu rx_bad_inner=%llu "
		 "rx_handshake_failed=%llu rx_ratelimited=%llu rx_cookie_replies=%llu tx_no_peer=%llu "
		 "tx_no_endpoint=%llu tx_send_failed=%llu tx_bad_packet=%llu tap_queries=%llu "
		 "tap_answers=%llu tap_bad_reply=%llu tap_dropped=%llu peers=%zu",
		 dev->ifname, (unsigned long long)s->rx_bad_length, (unsigned long long)s->rx_bad_type,
		 (unsigned long long)s->rx_bad_mac, (unsigned long long)s->rx_no_keypair,
		 (unsigned long long)s->rx_decrypt_failed, (unsigned long long)s->rx_replayed,
		 (unsigned long long)s->rx_bad_src, (unsigned long long)s->rx_bad_inner,
		 (unsigned long long)s->rx_handshake_failed, (unsigned long long)s->rx_ratelimited,
		 (unsigned long long)s->rx_cookie_replies, (unsigned long long)s->tx_no_peer,
		 (unsigned long long)s->tx_no_endpoint, (unsigned long long)s->tx_send_failed,
		 (unsigned long long)s->tx_bad_packet, (unsigned long long)s->tap_queries,
		 (unsigned long long)s->tap_answers, (unsigned long long)s->tap_bad_reply,
		 (unsigned long long)s->tap_dropped, dev->n_peers);
}

void wg_device_close(struct wg_device *dev)
{
	char path[128];

	if (dev->uapi_fd >= 0) {
		wg_uapi_path(path, sizeof(path), dev->ifname);
		unlink(path);
		close(dev->uapi_fd);
	}
	remove_all_peers(dev);
	wg_tap_free(dev);
	close_sockets(dev);
	if (dev->tun_fd >= 0)
		close(dev->tun_fd);
	if (dev->wake_fd >= 0)
		close(dev->wake_fd);
	if (dev->epfd >= 0)
		close(dev->epfd);
	wg_workers_stop(dev->workers);
	wg_rxq_free(dev);
	wg_txq_free(dev);
	offload_gro_free(dev->gro);
	wg_index_free(&dev->index);
	wg_allowedips_free(&dev->allowedips);
	wg_cookie_checker_free(&dev->cookie_checker);
	noise_identity_clear(&dev->identity);
	free(dev->peer_hash);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}
