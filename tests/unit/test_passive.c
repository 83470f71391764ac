/* Passive tunnel signals (gateway/health/passive.h): case by case, and against a
 * naive reference that keeps every reading on random sequences. */
#include <stdlib.h>

#include "gateway/health/passive.h"
#include "tests/lib/check.h"

#define MS 1000000ULL

static struct xb_passive_counters wg(uint64_t rx, uint64_t tx, int64_t hs, int64_t wall)
{
	return (struct xb_passive_counters){ .valid = true, .rx_bytes = rx, .tx_bytes = tx,
					     .wireguard = true, .handshake_sec = hs,
					     .wall_sec = wall };
}

TEST(receiving_silent_unknown)
{
	struct xb_passive p;
	struct xb_passive_counters c = wg(1000, 2000, 1000, 1010);

	xb_passive_init(&p);
	CHECK_INT(xb_passive_judge(&p, 0), ==, XB_PASSIVE_UNKNOWN);	/* no reading */
	xb_passive_sample(&p, &c, 100 * MS);
	xb_passive_sample(&p, &c, 200 * MS);
	/* A round leaves at 250 ms; no reading after it yet. */
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_UNKNOWN);
	/* Its probe went out (tx grew), nothing came back: a probe is no
	 * traffic to carry. */
	c.tx_bytes += 128;
	xb_passive_sample(&p, &c, 300 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_UNKNOWN);
	/* The tunnel also carried a stream, nothing came back. */
	c.tx_bytes += XB_PASSIVE_TX_MIN;
	xb_passive_sample(&p, &c, 350 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_SILENT);
	/* Something came back: the tunnel carries, whatever the probes say. */
	c.rx_bytes += 64;
	xb_passive_sample(&p, &c, 400 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_RECEIVING);
	/* Since 450 ms nothing was sent and nothing received: no evidence. */
	xb_passive_sample(&p, &c, 500 * MS);
	CHECK_INT(xb_passive_judge(&p, 450 * MS), ==, XB_PASSIVE_UNKNOWN);
	CHECK_STR(xb_passive_verdict_name(XB_PASSIVE_SILENT), "silent");
}

/* The regression: an idle tunnel whose only tx is its probe rounds, one
 * round's reply lost on a lossy path. Not silent — the probes' detect run
 * decides. A stream sent with nothing received since is silent. */
TEST(idle_tunnel_lost_probe_is_not_silence)
{
	struct xb_passive p;
	struct xb_passive_counters c = wg(1000, 2000, 1000, 1010);
	uint64_t t = 0;

	xb_passive_init(&p);
	/* 5 s of 1 s rounds, 4 ICMP monitors each (96 octets apiece through
	 * WireGuard), all answered; readings every 100 ms. */
	for (int i = 0; i < 50; i++) {
		t += 100 * MS;
		if (i % 10 == 5)
			c.tx_bytes += 4 * 96;
		if (i % 10 == 6)
			c.rx_bytes += 4 * 96;
		xb_passive_sample(&p, &c, t);
	}
	/* The next round leaves at t + 50 ms; its replies are lost. */
	c.tx_bytes += 4 * 96;
	xb_passive_sample(&p, &c, t + 100 * MS);
	xb_passive_sample(&p, &c, t + 200 * MS);
	xb_passive_sample(&p, &c, t + 250 * MS);	/* the hold's end */
	CHECK_INT(xb_passive_judge(&p, t + 50 * MS), ==, XB_PASSIVE_UNKNOWN);
	/* A handshake and a keepalive on top: still only the tunnel's own. */
	c.tx_bytes += 148 + 32;
	xb_passive_sample(&p, &c, t + 260 * MS);
	CHECK_INT(xb_passive_judge(&p, t + 50 * MS), ==, XB_PASSIVE_UNKNOWN);

	/* A stream (a ping every 50 ms of 1 KB) with nothing received since
	 * the round left: silent. */
	t += 1000 * MS;
	for (int i = 0; i < 10; i++) {
		c.tx_bytes += 2 * 1060;
		xb_passive_sample(&p, &c, t + (uint64_t)i * 100 * MS);
	}
	CHECK_INT(xb_passive_judge(&p, t + 50 * MS), ==, XB_PASSIVE_SILENT);
}

TEST(sampling_errs_toward_receiving)
{
	struct xb_passive p;
	struct xb_passive_counters c = wg(1000, 2000, 1000, 1010);

	xb_passive_init(&p);
	xb_passive_sample(&p, &c, 100 * MS);
	/* rx arrives at 180 ms, just before the round leaves at 190 ms; the
	 * next reading (200 ms) places it after: receiving, not silent. */
	c.rx_bytes += 64;
	c.tx_bytes += 64;
	xb_passive_sample(&p, &c, 200 * MS);
	CHECK_INT(xb_passive_judge(&p, 190 * MS), ==, XB_PASSIVE_RECEIVING);
	/* The first reading of a history says nothing about before it. */
	xb_passive_init(&p);
	xb_passive_sample(&p, &c, 300 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_RECEIVING);
}

TEST(no_session_and_keepalives)
{
	struct xb_passive p;
	struct xb_passive_counters c = wg(1000, 2000, 1000, 1000 + XB_PASSIVE_HANDSHAKE_DEAD_S);

	xb_passive_init(&p);
	xb_passive_sample(&p, &c, 100 * MS);
	xb_passive_sample(&p, &c, 200 * MS);
	CHECK_INT(xb_passive_judge(&p, 150 * MS), ==, XB_PASSIVE_UNKNOWN);
	c.wall_sec++;		/* the session is past REJECT_AFTER_TIME */
	xb_passive_sample(&p, &c, 300 * MS);
	CHECK(p.no_session);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_SILENT);
	c.handshake_sec = 0;	/* never had one */
	c.wall_sec = 5;
	xb_passive_sample(&p, &c, 400 * MS);
	CHECK_INT(xb_passive_judge(&p, 350 * MS), ==, XB_PASSIVE_SILENT);

	/* GRE: keepalives unanswered. */
	c = (struct xb_passive_counters){ .valid = true, .rx_bytes = 5, .tx_bytes = 5,
					  .ka = XB_PASSIVE_KA_UP };
	xb_passive_init(&p);
	xb_passive_sample(&p, &c, 100 * MS);
	xb_passive_sample(&p, &c, 200 * MS);
	CHECK_INT(xb_passive_judge(&p, 150 * MS), ==, XB_PASSIVE_UNKNOWN);
	c.ka = XB_PASSIVE_KA_DOWN;
	xb_passive_sample(&p, &c, 300 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_SILENT);
	/* Received after the round left still wins. */
	c.rx_bytes++;
	xb_passive_sample(&p, &c, 400 * MS);
	CHECK_INT(xb_passive_judge(&p, 250 * MS), ==, XB_PASSIVE_RECEIVING);
}

TEST(no_counters_and_new_interface)
{
	struct xb_passive p;
	struct xb_passive_counters none = { .valid = false }, c = wg(500, 500, 10, 20);

	xb_passive_init(&p);
	xb_passive_sample(&p, &none, 100 * MS);
	CHECK_INT(xb_passive_judge(&p, 50 * MS), ==, XB_PASSIVE_UNKNOWN);
	xb_passive_sample(&p, &c, 200 * MS);
	xb_passive_sample(&p, &c, 300 * MS);
	/* The interface was re-created: counters from zero. A history starts
	 * again; its first reading counts as a change at that moment. */
	c.rx_bytes = 10;
	c.tx_bytes = 700;
	xb_passive_sample(&p, &c, 400 * MS);
	CHECK_INT(xb_passive_judge(&p, 350 * MS), ==, XB_PASSIVE_RECEIVING);
	xb_passive_sample(&p, &c, 500 * MS);
	c.tx_bytes += 100;
	xb_passive_sample(&p, &c, 600 * MS);
	CHECK_INT(xb_passive_judge(&p, 450 * MS), ==, XB_PASSIVE_UNKNOWN);
	c.tx_bytes += XB_PASSIVE_TX_MIN;
	xb_passive_sample(&p, &c, 700 * MS);
	CHECK_INT(xb_passive_judge(&p, 450 * MS), ==, XB_PASSIVE_SILENT);
}

/* The reference keeps every valid reading and answers from them directly:
 * within the last history (since the last reading whose counters went
 * backwards), received after `since' when a reading after it is the
 * history's first or shows rx changed from the reading before it; sent
 * when tx grew by XB_PASSIVE_TX_MIN from the newest of the history's last
 * XB_PASSIVE_RING readings at or before `since' (the oldest of them if none). */
struct reading {
	uint64_t at;
	struct xb_passive_counters c;
};

static enum xb_passive_verdict naive(const struct reading *r, size_t n, uint64_t since)
{
	size_t start = 0, lo, base;
	bool rx = false, tx;
	const struct xb_passive_counters *last;

	if (!n || r[n - 1].at <= since)
		return XB_PASSIVE_UNKNOWN;
	for (size_t i = 1; i < n; i++)
		if (r[i].c.rx_bytes < r[i - 1].c.rx_bytes || r[i].c.tx_bytes < r[i - 1].c.tx_bytes)
			start = i;
	for (size_t i = start; i < n; i++) {
		if (r[i].at <= since)
			continue;
		rx |= i == start || r[i].c.rx_bytes != r[i - 1].c.rx_bytes;
	}
	last = &r[n - 1].c;
	lo = n - start > XB_PASSIVE_RING ? n - XB_PASSIVE_RING : start;
	base = lo;
	for (size_t i = lo; i < n; i++)
		if (r[i].at <= since)
			base = i;
	tx = last->tx_bytes - r[base].c.tx_bytes >= XB_PASSIVE_TX_MIN;
	if (rx)
		return XB_PASSIVE_RECEIVING;
	if ((last->wireguard && (!last->handshake_sec ||
				 last->wall_sec - last->handshake_sec > XB_PASSIVE_HANDSHAKE_DEAD_S)) ||
	    last->ka == XB_PASSIVE_KA_DOWN || tx)
		return XB_PASSIVE_SILENT;
	return XB_PASSIVE_UNKNOWN;
}

TEST(random_against_reference)
{
	static struct reading r[64];

	srand(16);
	for (int round = 0; round < 20000; round++) {
		struct xb_passive p;
		size_t n = 0, count = (size_t)(rand() % 40);
		uint64_t at = 0, rx = 0, tx = 0;

		xb_passive_init(&p);
		for (size_t i = 0; i < count; i++) {
			struct xb_passive_counters c = { .valid = rand() % 8 != 0 };
			int k = rand() % 10;

			at += (uint64_t)(1 + rand() % 150) * MS;
			rx += k < 4 ? (uint64_t)(rand() % 100) : 0;
			tx += k < 7 ? (uint64_t)(rand() % (k < 2 ? 3000 : 200)) : 0;
			if (rand() % 25 == 0)
				rx = tx = (uint64_t)(rand() % 50);	/* re-created */
			c.rx_bytes = rx;
			c.tx_bytes = tx;
			c.wireguard = rand() % 2;
			c.wall_sec = 1000 + (int64_t)(at / (1000 * MS));
			c.handshake_sec = rand() % 20 ? c.wall_sec - rand() % 200 : 0;
			c.ka = (enum xb_passive_ka)(rand() % 3);
			xb_passive_sample(&p, &c, at);
			if (c.valid)
				r[n++] = (struct reading){ at, c };
		}
		for (int q = 0; q < 8; q++) {
			uint64_t since = at ? (uint64_t)rand() % (at + 100 * MS) : 0;

			CHECK_INT(xb_passive_judge(&p, since), ==, naive(r, n, since));
		}
	}
}
