/* libFuzzer: the userspace GRE tunnel's receive path (gre_dev.c
 * from_socket → receive_one: the outer IPv4 header, the GRE header, the
 * keepalive reply, the inner packet, the sequence rule) and its keepalive
 * clock, on datagrams from the remote. fuzz_gre covers the header codec
 * alone. The tunnel is built by hand around two socketpairs standing in for
 * the raw socket and the TUN; gre_dev.c is #included for its static
 * functions.
 *
 * Input: one octet of options (bit 0 IPv6 outer, bit 1 a key, bit 2 which
 * key, bit 3 sequence numbers, bit 4 checksums, bit 5 keepalives), then
 * records [len u16 LE][datagram]. Checks: every datagram is delivered,
 * dropped for a reason or counted as a keepalive reply; what reaches the
 * TUN (vnet header and packet, TCP segments coalesced) cuts back into one
 * whole inner packet per delivery, each passing gre_inner_ok. */
#include "tunnel/gre_dev.c"

#include <fcntl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define FEED	8	/* datagrams queued per from_socket call (a unix dgram queue holds 10) */

static uint8_t (*bufs)[BUF_SIZE];
static struct offload_gro *gro;
static uint8_t *segs;
static int sock[2], tun[2];

static void setup(void)
{
	if (bufs)
		return;
	log_init("fuzz", LOG_LVL_ERR, false);
	if (!(bufs = malloc(BATCH * sizeof(*bufs))) || !(segs = malloc(TX_ARENA)) ||
	    !(gro = offload_gro_new(BATCH * (BUF_SIZE + OFFLOAD_VNET_HDR_LEN))) ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sock) < 0 ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tun) < 0)
		abort();
}

/* What went to the TUN since the last call: whole inner packets. */
static uint64_t drain_tun(void)
{
	static uint8_t p[READ_SIZE];
	static size_t off[TX_MSGS], len[TX_MSGS];
	uint64_t n = 0;
	ssize_t r;

	while ((r = recv(tun[1], p, sizeof(p), 0)) >= 0) {
		int k = offload_segment(p, (size_t)r, segs, TX_ARENA, off, len, TX_MSGS);

		check(k >= 1);
		for (int i = 0; i < k; i++) {
			const uint8_t *s = segs + off[i];

			check(gre_inner_ok(s[0] >> 4 == 6 ? GRE_PROTO_IPV6 : GRE_PROTO_IPV4, s, len[i]) == GRE_OK);
		}
		n += (uint64_t)k;
	}
	while (recv(sock[1], p, sizeof(p), 0) >= 0)	/* our keepalives */
		;
	return n;
}

static uint64_t accounted(const struct gre_stats *st)
{
	uint64_t n = st->rx_packets + st->rx_errors + st->keepalive_replies;

	for (int i = 1; i < GRE_DROP_COUNT; i++)
		n += st->rx_drops[i];
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gre_tunnel t = { .tun_fd = -1, .sock = -1, .stop_fd = -1 };
	uint64_t now = 1000000000, sent = 0, delivered = 0;
	unsigned queued = 0;

	setup();
	if (size < 1)
		return 0;
	t.c = (struct gre_config){ .ifname = "fuzzgre", .family = data[0] & 1 ? AF_INET6 : AF_INET,
				   .opts = { .has_key = data[0] & 2, .key = data[0] & 4 ? 0x0a000001u : 42,
					     .seq = data[0] & 8, .csum = data[0] & 16 },
				   .keepalive_ms = data[0] & 32 ? 10 : 0, .keepalive_retries = 2 };
	if (t.c.family == AF_INET) {
		inet_pton(AF_INET, "192.0.2.1", &t.c.remote);
		inet_pton(AF_INET, "192.0.2.2", &t.c.local);
	} else {
		inet_pton(AF_INET6, "2001:db8::1", &t.c.remote);
		inet_pton(AF_INET6, "2001:db8::2", &t.c.local);
	}
	inet_ntop(t.c.family, &t.c.remote, t.peer, sizeof(t.peer));
	t.rl = (struct log_rl)LOG_RL_INIT(5, 10);
	t.st.ka_state = t.c.keepalive_ms ? GRE_KA_UP : GRE_KA_OFF;
	t.buf = bufs;
	t.gro = gro;
	t.sock = sock[0];
	t.tun_fd = tun[0];
	data++;
	size--;
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;

		if (len > size - 2)
			len = size - 2;
		if (send(sock[1], data + 2, len, 0) < 0)
			abort();
		data += 2 + len;
		size -= 2 + len;
		sent++;
		if (++queued == FEED || size < 2) {
			check(from_socket(&t, now) == 0);
			keepalive_tick(&t, now);
			delivered += drain_tun();
			now += 4 * NSEC_PER_MSEC;
			queued = 0;
		}
	}
	check(accounted(&t.st) == sent);
	check(delivered == t.st.rx_packets);
	return 0;
}
