/* The receive path with crypto workers: a batch of data messages for one
 * peer, opened in parallel, must come out exactly as the data thread alone
 * would deliver it.
 *
 * Rules under test (tunnel/receive.c, tunnel/workers.h):
 * - delivery order is arrival order, whichever worker opened what (a TCP
 *   flow is never reordered by us);
 * - the counter is judged after authentication and in arrival order: a
 *   replay is refused, a counter too old for the window is refused, a
 *   forged message (bad tag) does not burn its counter, a valid counter
 *   that arrives late but inside the window is accepted;
 * - what an earlier message of the batch does to the session holds for the
 *   later ones: the first message on the responder's "next" keypair makes
 *   it current (the old one, now previous, still receives), an authentic
 *   counter past REJECT_AFTER_MESSAGES ends the keypair's receiving and
 *   every later message on it is dropped although the workers opened it.
 *
 * The expectation comes from a naive model (every accepted counter in a
 * table, plus the highest; test_replay.c checks the window against the
 * same model), and the same script runs with 1 worker (today's path), 2
 * and 4. The batch is longer than the receive queue, so a mid-batch flush
 * is crossed too. The device's TUN is a pipe; packets are cut from it by
 * their IPv4 length.
 */
#include "tests/lib/check.h"
#include "tunnel/device.h"
#include "tunnel/replay.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_MSG 760
#define MAX_COUNTER 30000
#define PKT_MAX 1100

enum { KP_OLD, KP_NEXT };

struct step {
	int kp;			/* KP_OLD or KP_NEXT */
	uint64_t counter;
	bool tampered;		/* a wrong tag */
	bool keepalive;		/* no payload */
	size_t len;		/* inner packet length */
};

struct script {
	struct step s[N_MSG];
	unsigned n;
};

/* What the model says for each step. */
enum verdict { DELIVER, KEEPALIVE, REPLAYED, DECRYPT_FAILED, NO_KEYPAIR };

static uint64_t rng = 0x243f6a8885a308d3ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void add(struct script *sc, int kp, uint64_t counter, bool tampered, bool keepalive)
{
	CHECK(sc->n < N_MSG);
	sc->s[sc->n++] = (struct step){ kp, counter, tampered, keepalive, sc->n % 3 ? 1000 : 200 };
}

/* Old keypair: 0..449 with neighbours swapped now and then, replays of
 * recent counters, forgeries of counters that come authentic later; a jump
 * to 20000, then too-old, late-but-in-window and duplicate counters. Then
 * the next keypair is confirmed mid-batch while old-key messages are still
 * arriving (as previous, the old keypair still takes them), and finally
 * used up by an authentic counter past the limit. */
static void build(struct script *sc)
{
	uint64_t order[450];

	sc->n = 0;
	for (unsigned i = 0; i < 450; i++)
		order[i] = i;
	for (unsigned i = 0; i + 1 < 450; i++)
		if (!rnd(4)) {
			uint64_t t = order[i];
			order[i] = order[i + 1];
			order[i + 1] = t;
			i++;
		}
	for (unsigned i = 0; i < 450; i++) {
		if (i % 29 == 5)
			add(sc, KP_OLD, order[i], true, false);		/* forged first... */
		add(sc, KP_OLD, order[i], false, i % 97 == 13);	/* ...then the real one */
		if (i % 17 == 3 && i > 50)
			add(sc, KP_OLD, order[i - rnd(50)], false, false);	/* a replay */
	}
	add(sc, KP_OLD, 20000, false, false);
	add(sc, KP_OLD, 150, false, false);		/* never seen, but too old now */
	add(sc, KP_OLD, 20000 - WG_REPLAY_WINDOW, false, false);	/* the window's far edge */
	add(sc, KP_OLD, 19990, false, false);		/* late, inside the window */
	add(sc, KP_OLD, 20000, false, false);		/* duplicate */
	add(sc, KP_OLD, 19990, false, false);		/* duplicate */
	add(sc, KP_OLD, 20001, false, false);
	add(sc, KP_NEXT, 0, true, false);		/* a forgery confirms nothing */
	add(sc, KP_OLD, 20002, false, false);		/* still good */
	add(sc, KP_NEXT, 0, false, false);		/* confirms next */
	add(sc, KP_OLD, 20003, false, false);		/* old, now previous: taken */
	for (uint64_t c = 1; c < 200; c++) {
		add(sc, KP_NEXT, c, false, false);
		if (c % 40 == 7)
			add(sc, KP_OLD, 20003 + c, false, false);
		if (c % 31 == 2)
			add(sc, KP_NEXT, c - 1, false, false);	/* replay */
	}
	add(sc, KP_NEXT, REJECT_AFTER_MESSAGES, false, false);	/* authentic: used up */
	add(sc, KP_NEXT, 200, false, false);		/* dropped: no keypair */
	add(sc, KP_NEXT, 201, false, false);
}

/* The naive model of one keypair's counters. */
struct naive {
	uint8_t seen[MAX_COUNTER];
	uint64_t highest;
	bool any, dead;
};

static bool naive_accept(struct naive *n, uint64_t c)
{
	CHECK(c < MAX_COUNTER);
	if ((n->any && c + WG_REPLAY_WINDOW < n->highest) || n->seen[c])
		return false;
	n->seen[c] = 1;
	if (!n->any || c > n->highest)
		n->highest = c;
	n->any = true;
	return true;
}

static void model(const struct script *sc, enum verdict *v)
{
	static struct naive kp[2];

	memset(kp, 0, sizeof(kp));
	for (unsigned i = 0; i < sc->n; i++) {
		const struct step *s = &sc->s[i];
		struct naive *k = &kp[s->kp];

		if (k->dead)
			v[i] = NO_KEYPAIR;
		else if (s->tampered)
			v[i] = DECRYPT_FAILED;
		else if (s->counter >= REJECT_AFTER_MESSAGES)
			k->dead = true, v[i] = NO_KEYPAIR;
		else if (!naive_accept(k, s->counter))
			v[i] = REPLAYED;
		else
			v[i] = s->keepalive ? KEEPALIVE : DELIVER;
	}
}

struct rig {
	struct wg_device *dev;
	int tun_r;
	struct noise_keypair *kp[2];
	uint8_t (*buf)[PKT_MAX + 64];
	union xb_sockaddr from, to;
};

static const uint8_t src_ip[4] = { 198, 51, 100, 1 }, dst_ip[4] = { 198, 51, 100, 2 };

static struct noise_keypair *keypair(struct wg_device *dev, bool initiator)
{
	struct noise_keypair *kp = calloc(1, sizeof(*kp));
	uint32_t idx;

	CHECK(kp);
	randombytes_buf(kp->recv_key, sizeof(kp->recv_key));
	randombytes_buf(kp->send_key, sizeof(kp->send_key));
	wg_replay_init(&kp->replay);
	kp->birthdate_ns = clock_mono_ns();
	kp->i_am_initiator = initiator;
	kp->receiving_valid = true;	/* sending_valid stays false: no replies */
	CHECK(wg_index_new(&dev->index, &idx, INDEX_KEYPAIR, dev->peers, kp));
	kp->local_index = idx;
	wg_peer_install_keypair(dev->peers, kp);
	return kp;
}

static void rig_open(struct rig *r, unsigned workers)
{
	struct wg_timing t;
	struct wg_conf c = { .has_private_key = true };
	struct wg_peer_conf *pc;
	struct xb_prefix p = { .family = AF_INET, .cidr = 32 };
	int fds[2];

	memset(r, 0, sizeof(*r));
	log_init("test_rx_workers", LOG_LVL_ERR, false);
	noise_init();
	wg_timing_default(&t);
	CHECK(wg_device_alloc(&r->dev, "rxw", &t) == 0);
	CHECK(wg_device_set_workers(r->dev, workers) == 0);
	CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
	CHECK(fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) >= (N_MSG * PKT_MAX));
	r->dev->tun_fd = fds[1];
	r->tun_r = fds[0];
	randombytes_buf(c.private_key, 32);
	CHECK((pc = wg_conf_add_peer(&c)));
	randombytes_buf(pc->public_key, 32);
	memcpy(p.addr, src_ip, 4);
	CHECK(xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p));
	CHECK(wg_device_set(r->dev, &c) == 0);
	wg_conf_free(&c);
	r->kp[KP_OLD] = keypair(r->dev, true);		/* current */
	r->kp[KP_NEXT] = keypair(r->dev, false);	/* next, to be confirmed */
	CHECK(r->dev->peers->current == r->kp[KP_OLD] && r->dev->peers->next_kp == r->kp[KP_NEXT]);
	r->from = (union xb_sockaddr){ .in = { .sin_family = AF_INET, .sin_port = htons(51820),
					       .sin_addr.s_addr = htonl(0xcb007101) } };
	r->to = (union xb_sockaddr){ .in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0xc0000201) } };
	CHECK((r->buf = calloc(N_MSG, sizeof(*r->buf))));
}

static void rig_close(struct rig *r)
{
	close(r->tun_r);
	free(r->buf);
	wg_device_close(r->dev);
}

/* Step i as it leaves the peer: an IPv4 packet carrying i, sealed. */
static size_t seal(struct rig *r, const struct step *s, unsigned i)
{
	struct message_data *m = (struct message_data *)r->buf[i];
	uint8_t pkt[PKT_MAX];
	size_t len = s->keepalive ? 0 : s->len;

	memset(pkt, 0, sizeof(pkt));
	if (len) {
		pkt[0] = 0x45;
		pkt[2] = (uint8_t)(len >> 8);
		pkt[3] = (uint8_t)len;
		pkt[8] = 64;
		pkt[9] = 17;
		memcpy(pkt + 12, src_ip, 4);
		memcpy(pkt + 16, dst_ip, 4);
		memcpy(pkt + 20, &i, sizeof(i));
	}
	memset(m, 0, sizeof(*m));
	m->header.type = MESSAGE_DATA;
	m->key_idx = r->kp[s->kp]->local_index;
	m->counter = s->counter;
	noise_encrypt(m->encrypted_data, pkt, len, s->counter, r->kp[s->kp]->recv_key);
	if (s->tampered)
		m->encrypted_data[len] ^= 0x40;
	return message_data_len(len);
}

/* The ids of the packets the device wrote to its TUN, in order. */
static unsigned delivered(struct rig *r, unsigned *ids, unsigned max)
{
	static uint8_t all[N_MSG * PKT_MAX];
	size_t got = 0, off = 0;
	unsigned n = 0;
	ssize_t k;

	while ((k = read(r->tun_r, all + got, sizeof(all) - got)) > 0)
		got += (size_t)k;
	while (off + 20 <= got) {
		size_t len = (size_t)all[off + 2] << 8 | all[off + 3];
		CHECK(len >= 24 && off + len <= got && n < max);
		memcpy(&ids[n++], all + off + 20, sizeof(ids[0]));
		off += len;
	}
	CHECK_INT(off, ==, got);
	return n;
}

static void run_batch(unsigned workers)
{
	static struct script sc;
	static enum verdict v[N_MSG];
	static unsigned want[N_MSG], got[N_MSG];
	unsigned n_want = 0, n_got, replayed = 0, failed = 0, nokp = 0;
	uint64_t now;
	struct rig r;

	rng = 0x243f6a8885a308d3ULL;
	build(&sc);
	model(&sc, v);
	rig_open(&r, workers);
	now = clock_mono_ns();
	for (unsigned i = 0; i < sc.n; i++) {
		size_t len = seal(&r, &sc.s[i], i);
		wg_receive(r.dev, r.buf[i], len, &r.from, &r.to, 1, now);
		if (v[i] == DELIVER)
			want[n_want++] = i;
		replayed += v[i] == REPLAYED;
		failed += v[i] == DECRYPT_FAILED;
		nokp += v[i] == NO_KEYPAIR;
	}
	wg_tun_flush(r.dev);
	n_got = delivered(&r, got, N_MSG);
	for (unsigned i = 0; i < n_want && i < n_got; i++)
		if (got[i] != want[i]) {
			printf("# %u workers: delivery %u is message %u, the model says %u\n", workers, i,
			       got[i], want[i]);
			CHECK_INT(got[i], ==, want[i]);
		}
	CHECK_INT(n_got, ==, n_want);
	CHECK_INT(r.dev->stats.rx_replayed, ==, replayed);
	CHECK_INT(r.dev->stats.rx_decrypt_failed, ==, failed);
	CHECK_INT(r.dev->stats.rx_no_keypair, ==, nokp);
	CHECK(r.dev->peers->current == r.kp[KP_NEXT] && !r.dev->peers->next_kp);
	CHECK(!r.kp[KP_NEXT]->receiving_valid);
	/* Enough of each kind that the script means something. */
	CHECK(n_want > 600 && replayed >= 20 && failed >= 15 && nokp >= 2);
	rig_close(&r);
}

TEST(batch_one_worker_matches_model) { run_batch(1); }
TEST(batch_two_workers_matches_model) { run_batch(2); }
TEST(batch_four_workers_matches_model) { run_batch(4); }
