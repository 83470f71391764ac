/* Takeover (gateway/cluster/takeover.h) on the kernel's WireGuard, through
 * the daemon's own path: xb_takeover_* with xb_wgif_get/set on a kernel
 * wgif (gateway/links/wg_kernel.c). Skips with the reason where the kernel
 * has no WireGuard; net/kernel_vm runs it in Debian's kernel (tests/vm).
 *
 *   this process's netns (the gateway)           one netns per device
 *   xtk<pid> 198.51.100.1/24, port 51820
 *   vg<i> 192.0.2.(4i+1)/30 ───── veth ───── vd 192.0.2.(4i+2)/30
 *                                            wd 198.51.100.(i+2)/24, port 51821,
 *                                            the gateway's key, no endpoint
 *
 * Device 0: keepalive 0 on the gateway (as the daemon configures device
 * peers), no session. Device 1: keepalive 25 configured, no session — the
 * kernel has been trying to reach it (no endpoint) since the link came up
 * (see below).
 * Device 2: a live session, offered with a wrong endpoint: left alone. Both
 * devices without a session must handshake with no packet from them (they
 * have no endpoint), the gateway's keepalives must be back to 0 and 25, and
 * a ping must go through. */
#include "gateway/cluster/takeover.h"
#include "gateway/links/wgif.h"
#include "common/clock.h"
#include "tests/lib/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NDEV 3

static char ns[NDEV][32], gwif[16];
static int n_ns;

static void cleanup(void)
{
	char cmd[160];

	for (int i = 0; i < n_ns; i++) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns[i]);
		if (system(cmd) != 0)
			printf("# could not remove netns %s\n", ns[i]);
	}
	n_ns = 0;
}

/* Runs a shell command; fails the case when it does. */
static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if ((rc = system(cmd)) != 0)
		xb_test_fail(__FILE__, __LINE__, "`%s' exited %d", cmd, rc);
}

static void genkey(char priv[WG_KEY_B64_LEN + 1], uint8_t pub[WG_KEY_LEN])
{
	char cmd[128];

	snprintf(priv, WG_KEY_B64_LEN + 1, "%s", xb_test_run("wg genkey"));
	snprintf(cmd, sizeof(cmd), "echo %s | wg pubkey", priv);
	CHECK(wg_key_from_base64(pub, strtok(xb_test_run(cmd), "\n")));
}

/* Every peer the takeover sets, in order. */
static struct {
	struct xb_wgif *w;
	uint8_t keys[32][WG_KEY_LEN];
	size_t n;
} rec;

static int rget(void *ctx, struct wg_conf *out) { return xb_wgif_get(ctx, out); }
static int rset(void *ctx, const struct wg_conf *in)
{
	for (size_t i = 0; i < in->n_peers && rec.n < 32; i++)
		memcpy(rec.keys[rec.n++], in->peers[i].public_key, WG_KEY_LEN);
	return xb_wgif_set(ctx, in);
}

static bool was_set(const uint8_t *key)
{
	for (size_t i = 0; i < rec.n; i++)
		if (!memcmp(rec.keys[i], key, WG_KEY_LEN))
			return true;
	return false;
}

static const struct wg_peer_conf *peer_of(const struct wg_conf *c, const uint8_t *key)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (!memcmp(c->peers[i].public_key, key, WG_KEY_LEN))
			return &c->peers[i];
	return NULL;
}

static union xb_sockaddr sa4(const char *addr, uint16_t port)
{
	union xb_sockaddr a = { 0 };

	a.in.sin_family = AF_INET;
	a.in.sin_port = htons(port);
	inet_pton(AF_INET, addr, &a.in.sin_addr);
	return a;
}

TEST(kernel_takeover_handshakes)
{
	static const struct xb_takeover_ops ops = { rget, rset };
	static const uint16_t ka[NDEV] = { 0, 25, 0 };
	char gpriv[WG_KEY_B64_LEN + 1], dpriv[WG_KEY_B64_LEN + 1], gpub_b64[WG_KEY_B64_LEN + 1];
	uint8_t gpub[WG_KEY_LEN], dpub[NDEV][WG_KEY_LEN], stranger[WG_KEY_LEN];
	uint64_t hs_ms[NDEV] = { 0 }, t0, now;
	struct wg_conf c = { 0 }, got = { 0 };
	struct xb_takeover t;
	struct xb_wgif w;
	struct xb_rtnl r;
	union xb_sockaddr e;
	int rounds = 0, e2;

	xb_test_private_netns();
	CHECK_INT(xb_rtnl_open(&r), ==, 0);
	snprintf(gwif, sizeof(gwif), "xtk%d", (int)getpid() % 100000);
	if ((e2 = xb_wgif_create(&w, &r, gwif, XB_BACKEND_KERNEL, 1420)) == -EOPNOTSUPP) {
		xb_rtnl_close(&r);
		SKIP("the kernel has no WireGuard (creating a wireguard link: %s); net/kernel_vm "
		     "runs this in Debian's kernel", strerror(-e2));
	}
	CHECK_INT(e2, ==, 0);
	CHECK(w.kernel);
	atexit(cleanup);

	genkey(gpriv, gpub);
	wg_key_to_base64(gpub_b64, gpub);
	CHECK(wg_key_from_base64(c.private_key, gpriv));
	c.has_private_key = c.has_listen_port = true;
	c.listen_port = 51820;
	for (int i = 0; i < NDEV; i++) {
		struct wg_peer_conf *pc;
		struct xb_prefix p = { .family = AF_INET, .cidr = 32 };

		snprintf(ns[i], sizeof(ns[i]), "xbtk%d-%d", (int)getpid(), i);
		sh("ip netns add %s", ns[i]);
		n_ns = i + 1;
		genkey(dpriv, dpub[i]);
		sh("ip link add vg%d type veth peer name vd netns %s", i, ns[i]);
		sh("ip addr add 192.0.2.%d/30 dev vg%d && ip link set vg%d up", 4 * i + 1, i, i);
		sh("ip -n %s link set lo up && ip -n %s addr add 192.0.2.%d/30 dev vd && "
		   "ip -n %s link set vd up", ns[i], ns[i], 4 * i + 2, ns[i]);
		sh("ip -n %s link add wd type wireguard && ip -n %s addr add 198.51.100.%d/24 dev wd",
		   ns[i], ns[i], i + 2);
		sh("umask 077; echo %s >/tmp/xbtk%d.key && ip netns exec %s wg set wd private-key "
		   "/tmp/xbtk%d.key listen-port 51821 peer %s allowed-ips 198.51.100.0/24; "
		   "r=$?; rm -f /tmp/xbtk%d.key; exit $r",
		   dpriv, (int)getpid(), ns[i], (int)getpid(), gpub_b64, (int)getpid());
		sh("ip -n %s link set wd up", ns[i]);
		CHECK((pc = wg_conf_add_peer(&c)));
		memcpy(pc->public_key, dpub[i], WG_KEY_LEN);
		pc->has_persistent_keepalive = true;
		pc->persistent_keepalive = ka[i];
		inet_pton(AF_INET, "198.51.100.0", p.addr);
		p.addr[3] = (uint8_t)(i + 2);
		CHECK(xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p));
	}
	CHECK_INT(xb_wgif_set(&w, &c), ==, 0);
	wg_conf_free(&c);
	sh("ip addr add 198.51.100.1/24 dev %s && ip link set %s up", gwif, gwif);

	/* Device 2 has a live session: it knows the gateway's endpoint. */
	sh("ip netns exec %s wg set wd peer %s endpoint 192.0.2.9:51820", ns[2], gpub_b64);
	sh("ip netns exec %s ping -c 1 -W 5 198.51.100.1 >/dev/null", ns[2]);
	CHECK_INT(xb_wgif_get(&w, &got), ==, 0);
	CHECK(peer_of(&got, dpub[2]) && peer_of(&got, dpub[2])->last_handshake_sec);
	CHECK(peer_of(&got, dpub[0]) && !peer_of(&got, dpub[0])->last_handshake_sec);
	CHECK(peer_of(&got, dpub[1]) && !peer_of(&got, dpub[1])->last_handshake_sec);
	wg_conf_free(&got);

	/* The daemon's path: offers from the shared state, begin, run. */
	rec.w = &w;
	xb_takeover_init(&t, &ops, &w);
	for (int i = 0; i < 2; i++) {
		e = sa4(i ? "192.0.2.6" : "192.0.2.2", 51821);
		CHECK_INT(xb_takeover_add(&t, dpub[i], &e, 1000 + i), ==, 0);
	}
	e = sa4("203.0.113.7", 51821);	/* a wrong one: must not replace the live session's */
	CHECK_INT(xb_takeover_add(&t, dpub[2], &e, 2000), ==, 0);
	memset(stranger, 0x5a, sizeof(stranger));
	CHECK_INT(xb_takeover_add(&t, stranger, &e, 3000), ==, 0);
	t0 = now = clock_mono_ns();
	CHECK_INT(xb_takeover_begin(&t, 500, now, (int64_t)time(NULL)), ==, 2);
	CHECK_INT(t.live, ==, 1);
	CHECK_INT(t.unknown, ==, 1);
	for (uint64_t wait = 1; wait && rounds++ < 100;) {
		wait = xb_takeover_run(&t, now);
		if (wait)
			nanosleep(&(struct timespec){ 0, (long)wait }, NULL);
		now = clock_mono_ns();
	}
	CHECK(!t.active);
	CHECK_INT(t.sent, ==, 2);
	CHECK_INT(t.failed, ==, 0);

	/* Handshakes: the devices have no endpoint, so only the gateway can
	 * have started them. Bounded: 20 s (the CPU may be emulated). */
	for (int tries = 0; tries < 400 && (!hs_ms[0] || !hs_ms[1]); tries++) {
		CHECK_INT(xb_wgif_get(&w, &got), ==, 0);
		for (int i = 0; i < 2; i++)
			if (!hs_ms[i] && peer_of(&got, dpub[i])->last_handshake_sec)
				hs_ms[i] = (clock_mono_ns() - t0) / NSEC_PER_MSEC;
		wg_conf_free(&got);
		nanosleep(&(struct timespec){ 0, 50 * NSEC_PER_MSEC }, NULL);
	}
	printf("# handshake after the takeover: device 0 (keepalive 0) %llu ms, device 1 "
	       "(keepalive 25) %llu ms\n", (unsigned long long)hs_ms[0], (unsigned long long)hs_ms[1]);
	/* Device 0 is the daemon's case: the off->on sends at once. Device 1
	 * (a keepalive configured, no endpoint) is what the kernel has been
	 * retrying since the link came up, rate-limited to one initiation per
	 * REKEY_TIMEOUT: the takeover's off->on sends nothing and its
	 * handshake leaves, to the endpoint set, on the kernel's next retry,
	 * up to 5 s later (docs/ha.md). Not asserted as a time: the CPU may be
	 * emulated and loaded. */
	CHECK(hs_ms[0] && hs_ms[1]);
	for (int i = 0; i < 2; i++) {
		char cmd[160];
		const char *out;

		snprintf(cmd, sizeof(cmd), "ip netns exec %s wg show wd latest-handshakes", ns[i]);
		out = xb_test_run(cmd);
		CHECK(strchr(out, '\t') && atol(strchr(out, '\t') + 1) > 0);	/* the device's side */
		sh("ping -c 1 -W 5 198.51.100.%d >/dev/null", i + 2);		/* through */
	}

	CHECK_INT(xb_wgif_get(&w, &got), ==, 0);
	for (int i = 0; i < NDEV; i++)		/* keepalives as configured */
		CHECK_INT(peer_of(&got, dpub[i])->persistent_keepalive, ==, ka[i]);
	/* the live session: not touched, its endpoint kept */
	CHECK(!was_set(dpub[2]));
	CHECK_STR(inet_ntoa(peer_of(&got, dpub[2])->endpoint.in.sin_addr), "192.0.2.10");
	CHECK(was_set(dpub[0]) && was_set(dpub[1]));
	wg_conf_free(&got);
	xb_takeover_free(&t);
	xb_wgif_destroy(&w, &r);
	xb_rtnl_close(&r);
	cleanup();
	printf("# the takeover and its checks took %llu ms\n",
	       (unsigned long long)((clock_mono_ns() - t0) / NSEC_PER_MSEC));
}
