/* Per-peer protocol timers (whitepaper §6; the kernel's timers.c names):
 *
 * - retransmit_handshake: no response REKEY_TIMEOUT + jitter after an
 *   initiation → send another, up to MAX_TIMER_HANDSHAKES (REKEY_ATTEMPT_TIME
 *   in all); then give up, drop staged packets and arm zero_key_material.
 * - send_keepalive: a data packet arrived and we sent nothing back for
 *   KEEPALIVE_TIMEOUT → send an empty (keepalive) packet.
 * - new_handshake: we sent data and heard nothing, not even a keepalive, for
 *   KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter → initiate a new handshake.
 * - zero_key_material: no new session for 3 × REJECT_AFTER_TIME → wipe all
 *   keys and handshake state.
 * - persistent_keepalive: nothing sent for the configured interval → send a
 *   keepalive (to hold NAT and firewall state open).
 *
 * Deadlines are monotonic nanoseconds in the peer. The data thread scans all
 * peers only when the earliest deadline may have come (dev->next_timer_ns),
 * so an idle device with many peers costs nothing between deadlines.
 */
#include "tunnel/device.h"
#include "common/clock.h"
#include "common/log.h"

#include <sodium.h>

static uint64_t jitter(void)
{
	return (uint64_t)randombytes_uniform(REKEY_TIMEOUT_JITTER_MAX_MS) * NSEC_PER_MSEC;
}

static uint64_t secs(unsigned s) { return (uint64_t)s * NSEC_PER_SEC; }

void wg_timer_mod(struct wg_peer *peer, enum wg_timer t, uint64_t deadline)
{
	if (!deadline)
		deadline = 1;
	peer->timers[t] = deadline;
	if (deadline < peer->dev->next_timer_ns)
		peer->dev->next_timer_ns = deadline;
}

void wg_timer_del(struct wg_peer *peer, enum wg_timer t) { peer->timers[t] = 0; }

static bool pending(const struct wg_peer *peer, enum wg_timer t) { return peer->timers[t] != 0; }

void wg_timers_stop(struct wg_peer *peer)
{
	for (int t = 0; t < TIMER_COUNT; t++)
		peer->timers[t] = 0;
}

static void expired_retransmit_handshake(struct wg_peer *peer, uint64_t now)
{
	const struct wg_timing *tm = &peer->dev->timing;

	if (peer->handshake_attempts > tm->rekey_attempt_time / tm->rekey_timeout) {
		log_info("%s: handshake with a peer did not complete after %u attempts, giving up",
			 peer->dev->ifname, peer->handshake_attempts + 1);
		wg_timer_del(peer, TIMER_SEND_KEEPALIVE);
		wg_peer_purge_staged(peer);
		if (!pending(peer, TIMER_ZERO_KEY_MATERIAL))
			wg_timer_mod(peer, TIMER_ZERO_KEY_MATERIAL, now + 3 * secs(tm->reject_after_time));
		return;
	}
	peer->handshake_attempts++;
	log_debug("%s: handshake did not complete after %u seconds, retrying (try %u)",
		  peer->dev->ifname, tm->rekey_timeout, peer->handshake_attempts + 1);
	/* The source address may be what is wrong: pick it afresh. */
	peer->src.sa.sa_family = AF_UNSPEC;
	peer->src_ifindex = 0;
	wg_send_handshake_initiation(peer, true, now);
}

static void expired_send_keepalive(struct wg_peer *peer, uint64_t now)
{
	wg_send_keepalive(peer, now);
	if (peer->need_another_keepalive) {
		peer->need_another_keepalive = false;
		wg_timer_mod(peer, TIMER_SEND_KEEPALIVE, now + secs(peer->dev->timing.keepalive_timeout));
	}
}

static void expired_new_handshake(struct wg_peer *peer, uint64_t now)
{
	log_debug("%s: retrying handshake because we stopped hearing back", peer->dev->ifname);
	peer->src.sa.sa_family = AF_UNSPEC;
	peer->src_ifindex = 0;
	wg_send_handshake_initiation(peer, false, now);
}

static void expired_zero_key_material(struct wg_peer *peer)
{
	log_debug("%s: zeroing keys of a peer after %u seconds without a new session",
		  peer->dev->ifname, 3 * peer->dev->timing.reject_after_time);
	wg_peer_clear_handshake(peer);
	wg_peer_clear_keypairs(peer);
}

static void expired_persistent_keepalive(struct wg_peer *peer, uint64_t now)
{
	if (peer->persistent_keepalive)
		wg_send_keepalive(peer, now);
}

static void fire(struct wg_peer *peer, enum wg_timer t, uint64_t now)
{
	switch (t) {
	case TIMER_RETRANSMIT_HANDSHAKE: expired_retransmit_handshake(peer, now); break;
	case TIMER_SEND_KEEPALIVE: expired_send_keepalive(peer, now); break;
	case TIMER_NEW_HANDSHAKE: expired_new_handshake(peer, now); break;
	case TIMER_ZERO_KEY_MATERIAL: expired_zero_key_material(peer); break;
	case TIMER_PERSISTENT_KEEPALIVE: expired_persistent_keepalive(peer, now); break;
	default: break;
	}
}

void wg_timers_run(struct wg_device *dev, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (now < dev->next_timer_ns)
		return;
	dev->next_timer_ns = UINT64_MAX;
	for (struct wg_peer *p = dev->peers; p; p = p->next) {
		for (int t = 0; t < TIMER_COUNT; t++) {
			if (p->timers[t] && p->timers[t] <= now) {
				p->timers[t] = 0;
				fire(p, (enum wg_timer)t, now);
			}
		}
		for (int t = 0; t < TIMER_COUNT; t++)
			if (p->timers[t] && p->timers[t] < next)
				next = p->timers[t];
	}
	if (next < dev->next_timer_ns)
		dev->next_timer_ns = next;
}

void wg_timers_data_sent(struct wg_peer *peer, uint64_t now)
{
	const struct wg_timing *tm = &peer->dev->timing;

	if (!pending(peer, TIMER_NEW_HANDSHAKE))
		wg_timer_mod(peer, TIMER_NEW_HANDSHAKE,
			     now + secs(tm->keepalive_timeout + tm->rekey_timeout) + jitter());
}

void wg_timers_data_received(struct wg_peer *peer, uint64_t now)
{
	if (!pending(peer, TIMER_SEND_KEEPALIVE))
		wg_timer_mod(peer, TIMER_SEND_KEEPALIVE, now + secs(peer->dev->timing.keepalive_timeout));
	else
		peer->need_another_keepalive = true;
}

void wg_timers_any_authenticated_packet_sent(struct wg_peer *peer)
{
	wg_timer_del(peer, TIMER_SEND_KEEPALIVE);
}

void wg_timers_any_authenticated_packet_received(struct wg_peer *peer)
{
	wg_timer_del(peer, TIMER_NEW_HANDSHAKE);
}

void wg_timers_any_authenticated_packet_traversal(struct wg_peer *peer, uint64_t now)
{
	if (peer->persistent_keepalive)
		wg_timer_mod(peer, TIMER_PERSISTENT_KEEPALIVE, now + secs(peer->persistent_keepalive));
}

void wg_timers_handshake_initiated(struct wg_peer *peer, uint64_t now)
{
	wg_timer_mod(peer, TIMER_RETRANSMIT_HANDSHAKE,
		     now + secs(peer->dev->timing.rekey_timeout) + jitter());
}

void wg_timers_handshake_complete(struct wg_peer *peer)
{
	struct timespec ts;

	wg_timer_del(peer, TIMER_RETRANSMIT_HANDSHAKE);
	peer->handshake_attempts = 0;
	peer->sent_lastminute_handshake = false;
	clock_gettime(CLOCK_REALTIME, &ts);
	peer->last_handshake_sec = ts.tv_sec;
	peer->last_handshake_nsec = ts.tv_nsec;
}

void wg_timers_session_derived(struct wg_peer *peer, uint64_t now)
{
	wg_timer_mod(peer, TIMER_ZERO_KEY_MATERIAL, now + 3 * secs(peer->dev->timing.reject_after_time));
}
