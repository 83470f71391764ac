/* Passive tunnel signals: see passive.h. */
#include "gateway/health/passive.h"

#include <string.h>

void xb_passive_init(struct xb_passive *p)
{
	memset(p, 0, sizeof(*p));
}

static bool stale(const struct xb_passive_counters *c)
{
	return c->wireguard &&
	       (!c->handshake_sec || c->wall_sec - c->handshake_sec > XB_PASSIVE_HANDSHAKE_DEAD_S);
}

void xb_passive_sample(struct xb_passive *p, const struct xb_passive_counters *c, uint64_t now)
{
	if (!c->valid)
		return;
	if (!p->have || c->rx_bytes < p->rx || c->tx_bytes < p->tx) {
		/* First reading, or a new interface: nothing is known to have
		 * changed before now. */
		*p = (struct xb_passive){ .have = true, .rx = c->rx_bytes, .tx = c->tx_bytes,
					  .rx_at = now, .tx_at = now };
	}
	if (c->rx_bytes != p->rx) {
		p->rx = c->rx_bytes;
		p->rx_at = now;
	}
	if (c->tx_bytes != p->tx) {
		p->tx = c->tx_bytes;
		p->tx_at = now;
	}
	p->ring[p->ring_head].at = now;
	p->ring[p->ring_head].tx = c->tx_bytes;
	p->ring_head = (p->ring_head + 1) % XB_PASSIVE_RING;
	if (p->ring_n < XB_PASSIVE_RING)
		p->ring_n++;
	p->sampled_at = now;
	p->no_session = stale(c);
	p->ka_down = c->ka == XB_PASSIVE_KA_DOWN;
}

/* Octets sent since `since': from the newest kept reading at or before it,
 * or the oldest kept when all are newer (an underestimate). */
static uint64_t tx_growth(const struct xb_passive *p, uint64_t since)
{
	unsigned i, base = (p->ring_head + XB_PASSIVE_RING - p->ring_n) % XB_PASSIVE_RING;

	for (unsigned k = 0; k < p->ring_n; k++) {
		i = (p->ring_head + XB_PASSIVE_RING - 1 - k) % XB_PASSIVE_RING;
		if (p->ring[i].at <= since) {
			base = i;
			break;
		}
	}
	return p->tx - p->ring[base].tx;
}

enum xb_passive_verdict xb_passive_judge(const struct xb_passive *p, uint64_t since)
{
	if (!p->have || p->sampled_at <= since)
		return XB_PASSIVE_UNKNOWN;
	if (p->rx_at > since)
		return XB_PASSIVE_RECEIVING;
	if (p->no_session || p->ka_down ||
	    (p->tx_at > since && tx_growth(p, since) >= XB_PASSIVE_TX_MIN))
		return XB_PASSIVE_SILENT;
	return XB_PASSIVE_UNKNOWN;
}

const char *xb_passive_verdict_name(enum xb_passive_verdict v)
{
	static const char *const names[] = { "unknown", "receiving", "silent" };

	return v <= XB_PASSIVE_SILENT ? names[v] : "?";
}
