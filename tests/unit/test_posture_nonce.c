/* The report nonce table (gateway/posture/posture_nonce.c): a used or evicted nonce
 * gives its slot back at once, one device cannot fill the table for the
 * others, and the table against a naive model on random operations. */
#include "tests/lib/check.h"
#include "gateway/posture/posture_nonce.h"

#include <stdlib.h>

#define S 1000000000ULL		/* ns */

TEST(used_nonce_frees_its_slot)
{
	struct xb_posture_nonce *t = xb_posture_nonce_new(60 * S, 4, 8);
	char hex[XB_POSTURE_NONCE_HEX + 1];

	CHECK(t != NULL);
	/* Far more reports than slots, within one ttl: each nonce is used at
	 * once, so none may still hold a slot. */
	for (int i = 0; i < 100; i++) {
		CHECK_INT(xb_posture_nonce_issue(t, "alice", S + (uint64_t)i, hex), ==, 0);
		CHECK(xb_posture_nonce_take(t, "alice", hex, S + (uint64_t)i));
		CHECK_INT(xb_posture_nonce_count(t), ==, 0);
	}
	xb_posture_nonce_free(t);
}

TEST(one_device_cannot_exhaust_the_table)
{
	struct xb_posture_nonce *t = xb_posture_nonce_new(60 * S, 4, 16);
	char hex[XB_POSTURE_NONCE_HEX + 1], mine[XB_POSTURE_NONCE_HEX + 1];

	CHECK(t != NULL);
	for (int i = 0; i < 1000; i++)
		CHECK_INT(xb_posture_nonce_issue(t, "mallory", S + (uint64_t)i, hex), ==, 0);
	CHECK_INT(xb_posture_nonce_count(t), ==, 4);	/* its own budget, no more */
	CHECK(xb_posture_nonce_take(t, "mallory", hex, 2 * S));	/* the newest is good */
	CHECK_INT(xb_posture_nonce_issue(t, "alice", 2 * S, mine), ==, 0);
	CHECK(xb_posture_nonce_take(t, "alice", mine, 3 * S));
	xb_posture_nonce_free(t);
}

TEST(full_table_refuses_until_a_slot_frees)
{
	struct xb_posture_nonce *t = xb_posture_nonce_new(10 * S, 1, 3);
	char a[XB_POSTURE_NONCE_HEX + 1], hex[XB_POSTURE_NONCE_HEX + 1];

	CHECK(t != NULL);
	CHECK_INT(xb_posture_nonce_issue(t, "a", S, a), ==, 0);
	CHECK_INT(xb_posture_nonce_issue(t, "b", S, hex), ==, 0);
	CHECK_INT(xb_posture_nonce_issue(t, "c", S, hex), ==, 0);
	CHECK_INT(xb_posture_nonce_issue(t, "d", S, hex), ==, -1);
	CHECK_INT(xb_posture_nonce_issue(t, "c", S, hex), ==, 0);	/* replaces c's own */
	CHECK(xb_posture_nonce_take(t, "a", a, 2 * S));
	CHECK_INT(xb_posture_nonce_issue(t, "d", 2 * S, hex), ==, 0);
	CHECK_INT(xb_posture_nonce_issue(t, "e", 2 * S, hex), ==, -1);
	CHECK_INT(xb_posture_nonce_issue(t, "e", 11 * S, hex), ==, 0);	/* b and c expired */
	CHECK_INT(xb_posture_nonce_count(t), ==, 2);
	xb_posture_nonce_free(t);
}

/* The naive model: every nonce ever issued, with its device, expiry and
 * whether it is still live (not used, evicted or expired). */
#define M_MAX 4096
static struct { char hex[XB_POSTURE_NONCE_HEX + 1]; int dev; uint64_t exp; bool live; } m[M_MAX];
static size_t m_n;

static void m_expire(uint64_t now)
{
	for (size_t i = 0; i < m_n; i++)
		if (m[i].live && m[i].exp <= now)
			m[i].live = false;
}

static size_t m_live(int dev)	/* dev < 0: all */
{
	size_t n = 0;

	for (size_t i = 0; i < m_n; i++)
		n += m[i].live && (dev < 0 || m[i].dev == dev);
	return n;
}

TEST(against_a_naive_model)
{
	static const char *const devs[] = { "d0", "d1", "d2", "d3" };
	const unsigned per = 3, cap = 7;
	const uint64_t ttl = 10 * S;
	struct xb_posture_nonce *t = xb_posture_nonce_new(ttl, per, cap);
	char hex[XB_POSTURE_NONCE_HEX + 1];
	uint64_t now = S;

	CHECK(t != NULL);
	srand(15);
	for (int step = 0; step < 20000 && m_n < M_MAX; step++) {
		int dev = rand() % 4, op = rand() % 10;

		now += (uint64_t)(rand() % 3) * S / 2;
		m_expire(now);
		if (op < 5) {
			bool want = true;

			if (m_live(dev) == per) {	/* evict the device's oldest */
				for (size_t i = 0; i < m_n; i++)
					if (m[i].live && m[i].dev == dev) {
						m[i].live = false;
						break;
					}
			}
			want = m_live(-1) < cap;
			CHECK_INT(xb_posture_nonce_issue(t, devs[dev], now, hex) == 0, ==, want);
			if (want) {
				snprintf(m[m_n].hex, sizeof(m[m_n].hex), "%s", hex);
				m[m_n].dev = dev;
				m[m_n].exp = now + ttl;
				m[m_n++].live = true;
			}
		} else if (m_n) {
			size_t i = (size_t)rand() % m_n;
			bool want = m[i].live && m[i].dev == dev;

			CHECK_INT(xb_posture_nonce_take(t, devs[dev], m[i].hex, now), ==, want);
			if (want)
				m[i].live = false;
		}
		CHECK_INT(xb_posture_nonce_count(t), ==, m_live(-1));
	}
	CHECK_INT(m_n, >, 1000);
	xb_posture_nonce_free(t);
}

TEST(bad_hex_is_refused)
{
	struct xb_posture_nonce *t = xb_posture_nonce_new(60 * S, 4, 16);
	char hex[XB_POSTURE_NONCE_HEX + 1];

	CHECK(t != NULL);
	CHECK_INT(xb_posture_nonce_issue(t, "alice", S, hex), ==, 0);
	CHECK(!xb_posture_nonce_take(t, "alice", "", S));
	CHECK(!xb_posture_nonce_take(t, "alice", "zz", S));
	hex[5] = 'g';
	CHECK(!xb_posture_nonce_take(t, "alice", hex, S));
	CHECK_INT(xb_posture_nonce_count(t), ==, 1);
	xb_posture_nonce_free(t);
}
