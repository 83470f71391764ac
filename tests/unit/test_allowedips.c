/* Allowed IPs: fixed cases, then the trie against a deliberately naive model
 * (a flat array searched linearly) on random input. */
#include "tests/lib/check.h"
#include "tunnel/allowedips.h"

#include <arpa/inet.h>
#include <errno.h>

static char peer_objs[8];
#define A ((void *)&peer_objs[0])
#define B ((void *)&peer_objs[1])
#define C ((void *)&peer_objs[2])
#define D ((void *)&peer_objs[3])

/* "10.0.0.0/8", "2001:db8::/32"; no "/n" means a host prefix. */
static struct xb_prefix pfx(const char *s)
{
	struct xb_prefix p = { 0 };
	char buf[64];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	p.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(p.family, buf, p.addr) != 1)
		xb_test_fail(__FILE__, __LINE__, "bad test prefix %s", s);
	p.cidr = (uint8_t)(slash ? atoi(slash + 1) : p.family == AF_INET ? 32 : 128);
	return p;
}

static void *look(const struct wg_allowedips *t, const char *addr)
{
	struct xb_prefix p = pfx(addr);

	return wg_allowedips_lookup(t, p.family, p.addr);
}

static void add(struct wg_allowedips *t, const char *s, void *peer)
{
	struct xb_prefix p = pfx(s);

	if (wg_allowedips_insert(t, &p, peer))
		xb_test_fail(__FILE__, __LINE__, "insert %s failed", s);
}

static bool del(struct wg_allowedips *t, const char *s, void *peer)
{
	struct xb_prefix p = pfx(s);

	return wg_allowedips_remove(t, &p, peer);
}

/* Walk output as text: "10.0.0.0/8=A 10.1.0.0/16=B ". */
struct text {
	char buf[2048];
	size_t len;
};

static void to_text(void *ctx, const struct xb_prefix *p, void *owner)
{
	struct text *x = ctx;
	char a[INET6_ADDRSTRLEN];

	inet_ntop(p->family, p->addr, a, sizeof(a));
	x->len += (size_t)snprintf(x->buf + x->len, sizeof(x->buf) - x->len, "%s/%u=%c ",
				   a, p->cidr, 'A' + (int)((char *)owner - peer_objs));
}

static const char *walk_text(const struct wg_allowedips *t, void *peer)
{
	static struct text x;

	x.len = 0;
	x.buf[0] = '\0';
	wg_allowedips_walk(t, peer, to_text, &x);
	return x.buf;
}

TEST(empty)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	CHECK(!look(&t, "10.0.0.1"));
	CHECK(!look(&t, "::1"));
	CHECK_STR(walk_text(&t, NULL), "");
	CHECK(!del(&t, "10.0.0.0/8", A));
	CHECK_INT(t.count, ==, 0);
	wg_allowedips_free(&t);
}

TEST(default_routes)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "0.0.0.0/0", A);
	CHECK(look(&t, "0.0.0.0") == A);
	CHECK(look(&t, "255.255.255.255") == A);
	CHECK(look(&t, "192.0.2.1") == A);
	CHECK(!look(&t, "2001:db8::1"));	/* families are separate */
	add(&t, "::/0", B);
	CHECK(look(&t, "2001:db8::1") == B);
	CHECK(look(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == B);
	CHECK(look(&t, "::") == B);
	CHECK(look(&t, "192.0.2.1") == A);
	CHECK_INT(t.count, ==, 2);
	CHECK_STR(walk_text(&t, NULL), "0.0.0.0/0=A ::/0=B ");
	wg_allowedips_free(&t);
}

TEST(host_prefixes)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "192.0.2.1/32", A);
	add(&t, "2001:db8::1/128", B);
	add(&t, "2001:db8::ffff:0:1/128", C);
	CHECK(look(&t, "192.0.2.1") == A);
	CHECK(!look(&t, "192.0.2.0"));
	CHECK(!look(&t, "192.0.2.3"));
	CHECK(!look(&t, "193.0.2.1"));
	CHECK(look(&t, "2001:db8::1") == B);
	CHECK(!look(&t, "2001:db8::0"));
	CHECK(!look(&t, "2001:db8::1:1"));
	CHECK(look(&t, "2001:db8::ffff:0:1") == C);
	CHECK(!look(&t, "2001:db8::ffff:0:0"));
	wg_allowedips_free(&t);
}

TEST(longest_match_wins)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	/* Inserted out of order on purpose: shape must not depend on it. */
	add(&t, "10.1.2.0/24", C);
	add(&t, "10.0.0.0/8", A);
	add(&t, "10.1.2.3/32", D);
	add(&t, "10.1.0.0/16", B);
	CHECK(look(&t, "10.9.9.9") == A);
	CHECK(look(&t, "10.1.9.9") == B);
	CHECK(look(&t, "10.1.2.9") == C);
	CHECK(look(&t, "10.1.2.3") == D);
	CHECK(!look(&t, "11.1.2.3"));
	CHECK(!look(&t, "9.255.255.255"));

	add(&t, "2001:db8::/32", A);
	add(&t, "2001:db8:0:0:8000::/65", B);	/* splits past the first word */
	add(&t, "2001:db8::1:0/112", C);
	add(&t, "2001:db8::/64", D);
	CHECK(look(&t, "2001:db8:1::1") == A);
	CHECK(look(&t, "2001:db8::8000:0:0:1") == B);
	CHECK(look(&t, "2001:db8::1:5") == C);
	CHECK(look(&t, "2001:db8::2:5") == D);
	CHECK(!look(&t, "2001:db9::1"));
	CHECK_INT(t.count, ==, 8);
	wg_allowedips_free(&t);
}

TEST(siblings_and_branch_points)
{
	/* Two /25s share a branch point at /24 that is not itself a prefix. */
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "192.0.2.0/25", A);
	add(&t, "192.0.2.128/25", B);
	CHECK(look(&t, "192.0.2.1") == A);
	CHECK(look(&t, "192.0.2.200") == B);
	CHECK(!look(&t, "192.0.3.1"));
	add(&t, "192.0.2.0/24", C);	/* lands on the branch point */
	CHECK_INT(t.count, ==, 3);
	CHECK(look(&t, "192.0.2.1") == A);
	CHECK(del(&t, "192.0.2.0/25", A));
	CHECK(look(&t, "192.0.2.1") == C);
	CHECK(del(&t, "192.0.2.0/24", C));
	CHECK(!look(&t, "192.0.2.1"));
	CHECK(look(&t, "192.0.2.200") == B);
	CHECK(del(&t, "192.0.2.128/25", B));
	CHECK(t.root4 == NULL);	/* no branch points left behind */
	CHECK_INT(t.count, ==, 0);
	wg_allowedips_free(&t);
}

TEST(host_bits_masked)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "10.1.2.3/8", A);
	add(&t, "2001:db8::dead:beef/32", B);
	CHECK_STR(walk_text(&t, NULL), "10.0.0.0/8=A 2001:db8::/32=B ");
	CHECK(look(&t, "10.200.0.1") == A);
	add(&t, "10.0.0.0/8", C);	/* the same prefix */
	CHECK_INT(t.count, ==, 2);
	CHECK(del(&t, "10.9.9.9/8", C));
	CHECK(del(&t, "2001:db8:0:0:1::/32", B));
	CHECK_INT(t.count, ==, 0);
	CHECK(t.root4 == NULL && t.root6 == NULL);
	wg_allowedips_free(&t);
}

TEST(reowning)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "10.0.0.0/8", A);
	add(&t, "10.1.0.0/16", A);
	add(&t, "10.1.0.0/16", B);
	CHECK_INT(t.count, ==, 2);
	CHECK(look(&t, "10.1.0.1") == B);
	CHECK(!del(&t, "10.1.0.0/16", A));	/* no longer A's */
	CHECK(look(&t, "10.1.0.1") == B);
	CHECK_STR(walk_text(&t, A), "10.0.0.0/8=A ");
	CHECK_STR(walk_text(&t, B), "10.1.0.0/16=B ");
	CHECK(del(&t, "10.1.0.0/16", B));
	CHECK(look(&t, "10.1.0.1") == A);
	CHECK(!del(&t, "10.1.0.0/16", B));
	CHECK(!del(&t, "10.0.0.0/9", A));	/* only exact prefixes */
	wg_allowedips_free(&t);
}

TEST(remove_peer)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "0.0.0.0/0", B);
	add(&t, "10.0.0.0/8", A);
	add(&t, "10.1.0.0/16", B);
	add(&t, "10.1.2.0/24", A);
	add(&t, "10.1.2.128/25", A);
	add(&t, "fd00::/8", A);
	add(&t, "fd00::1/128", B);
	wg_allowedips_remove_peer(&t, A);
	CHECK_INT(t.count, ==, 3);
	CHECK(look(&t, "10.9.9.9") == B);
	CHECK(look(&t, "10.1.2.200") == B);
	CHECK(look(&t, "fd00::1") == B);
	CHECK(!look(&t, "fd00::2"));
	CHECK_STR(walk_text(&t, NULL), "0.0.0.0/0=B 10.1.0.0/16=B fd00::1/128=B ");
	wg_allowedips_remove_peer(&t, A);	/* nothing left: no-op */
	wg_allowedips_remove_peer(&t, B);
	CHECK_INT(t.count, ==, 0);
	CHECK(t.root4 == NULL && t.root6 == NULL);
	wg_allowedips_free(&t);
}

TEST(walk_order_and_filter)
{
	struct wg_allowedips t;

	wg_allowedips_init(&t);
	add(&t, "fd00::/8", C);
	add(&t, "192.168.1.0/24", B);
	add(&t, "10.0.0.0/16", A);
	add(&t, "10.0.0.0/8", B);
	add(&t, "10.128.0.0/9", A);
	add(&t, "2001:db8::/32", A);
	add(&t, "0.0.0.0/0", C);
	add(&t, "10.0.0.1/32", C);
	CHECK_STR(walk_text(&t, NULL), "0.0.0.0/0=C 10.0.0.0/8=B 10.0.0.0/16=A 10.0.0.1/32=C "
				       "10.128.0.0/9=A 192.168.1.0/24=B 2001:db8::/32=A fd00::/8=C ");
	CHECK_STR(walk_text(&t, A), "10.0.0.0/16=A 10.128.0.0/9=A 2001:db8::/32=A ");
	CHECK_STR(walk_text(&t, D), "");
	wg_allowedips_free(&t);
}

TEST(bad_arguments)
{
	struct wg_allowedips t;
	struct xb_prefix p = pfx("10.0.0.0/8");

	wg_allowedips_init(&t);
	CHECK_INT(wg_allowedips_insert(&t, &p, NULL), ==, -EINVAL);
	p.cidr = 33;
	CHECK_INT(wg_allowedips_insert(&t, &p, A), ==, -EINVAL);
	p = pfx("::/0");
	p.cidr = 129;
	CHECK_INT(wg_allowedips_insert(&t, &p, A), ==, -EINVAL);
	p.family = AF_UNIX;
	p.cidr = 0;
	CHECK_INT(wg_allowedips_insert(&t, &p, A), ==, -EINVAL);
	CHECK(!wg_allowedips_lookup(&t, AF_UNIX, p.addr));
	p = pfx("10.0.0.0/8");
	CHECK(!wg_allowedips_remove(&t, &p, NULL));
	CHECK_INT(t.count, ==, 0);
	wg_allowedips_free(&t);
}

/* ---- the naive model ---------------------------------------------------- */

struct ent {
	struct xb_prefix p;	/* host bits cleared */
	void *peer;
};

struct naive {
	struct ent e[20000];
	size_t n;
};

static void mask_prefix(struct xb_prefix *p)
{
	size_t len = p->family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < 16; i++) {
		int keep = (int)p->cidr - 8 * (int)i;

		if (i >= len || keep <= 0)
			p->addr[i] = 0;
		else if (keep < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

static bool covers(const struct xb_prefix *p, sa_family_t family, const uint8_t *addr)
{
	struct xb_prefix a = { .family = family, .cidr = p->cidr };

	if (p->family != family)
		return false;
	memcpy(a.addr, addr, family == AF_INET ? 4 : 16);
	mask_prefix(&a);
	return !memcmp(a.addr, p->addr, 16);
}

static struct ent *naive_find(struct naive *m, const struct xb_prefix *p)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].p.family == p->family && m->e[i].p.cidr == p->cidr &&
		    !memcmp(m->e[i].p.addr, p->addr, 16))
			return &m->e[i];
	return NULL;
}

static void naive_insert(struct naive *m, struct xb_prefix p, void *peer)
{
	struct ent *e;

	mask_prefix(&p);
	e = naive_find(m, &p);
	if (!e) {
		CHECK(m->n < sizeof(m->e) / sizeof(m->e[0]));
		e = &m->e[m->n++];
		e->p = p;
	}
	e->peer = peer;
}

static bool naive_remove(struct naive *m, struct xb_prefix p, void *peer)
{
	struct ent *e;

	mask_prefix(&p);
	e = naive_find(m, &p);
	if (!e || e->peer != peer)
		return false;
	*e = m->e[--m->n];
	return true;
}

static void naive_remove_peer(struct naive *m, void *peer)
{
	for (size_t i = 0; i < m->n;)
		if (m->e[i].peer == peer)
			m->e[i] = m->e[--m->n];
		else
			i++;
}

static void *naive_lookup(const struct naive *m, sa_family_t family, const uint8_t *addr)
{
	const struct ent *best = NULL;

	for (size_t i = 0; i < m->n; i++)
		if (covers(&m->e[i].p, family, addr) && (!best || m->e[i].p.cidr > best->p.cidr))
			best = &m->e[i];
	return best ? best->peer : NULL;
}

/* The documented walk order: IPv4 first, then address, then prefix length. */
static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c;

	if (x->p.family != y->p.family)
		return x->p.family == AF_INET ? -1 : 1;
	c = memcmp(x->p.addr, y->p.addr, 16);
	return c ? c : (int)x->p.cidr - (int)y->p.cidr;
}

struct collect {
	struct ent e[20000];
	size_t n;
};

static void collect_fn(void *ctx, const struct xb_prefix *p, void *owner)
{
	struct collect *c = ctx;

	if (c->n < sizeof(c->e) / sizeof(c->e[0])) {
		c->e[c->n].p = *p;
		c->e[c->n].peer = owner;
	}
	c->n++;
}

/* ---- random input --------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Addresses cluster around a few bases, so prefixes overlap and nest. */
static uint8_t bases[2][8][16];

static void random_addr(uint8_t addr[16], int fam6)
{
	size_t len = fam6 ? 16 : 4;
	unsigned flips = (unsigned)(rnd() % 4);

	memcpy(addr, bases[fam6][rnd() % 8], 16);
	if (rnd() % 16 == 0)		/* now and then, anywhere at all */
		for (size_t i = 0; i < len; i++)
			addr[i] = (uint8_t)rnd();
	while (flips--) {
		/* Mostly low-order bits, sometimes anywhere. */
		unsigned bit = rnd() % 3 ? (unsigned)(8 * len - 1 - rnd() % 24)
					 : (unsigned)(rnd() % (8 * len));

		addr[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
	}
	memset(addr + len, 0, 16 - len);
}

static struct xb_prefix random_prefix(int fam6)
{
	struct xb_prefix p = { .family = fam6 ? AF_INET6 : AF_INET };
	unsigned max = fam6 ? 128 : 32;

	random_addr(p.addr, fam6);
	/* Bias toward long prefixes, but cover 0 and the host length too. */
	p.cidr = (uint8_t)(rnd() % 4 ? max - rnd() % (max / 2 + 1) : rnd() % (max + 1));
	return p;	/* host bits left in on purpose: both sides mask them */
}

static void check_walk(const struct wg_allowedips *t, struct naive *m, struct collect *c)
{
	c->n = 0;
	wg_allowedips_walk(t, NULL, collect_fn, c);
	CHECK_INT(c->n, ==, m->n);
	CHECK_INT(t->count, ==, m->n);
	qsort(m->e, m->n, sizeof(m->e[0]), ent_cmp);
	for (size_t i = 0; i < m->n; i++) {
		CHECK(c->e[i].peer == m->e[i].peer);
		CHECK(c->e[i].p.family == m->e[i].p.family);
		CHECK_INT(c->e[i].p.cidr, ==, m->e[i].p.cidr);
		CHECK_MEM(c->e[i].p.addr, m->e[i].p.addr, 16);
	}
}

/* The walk filtered by owner gives that owner's prefixes, in the same order. */
static void check_walk_owner(const struct wg_allowedips *t, struct naive *m,
			     struct collect *c, void *owner)
{
	size_t j = 0;

	c->n = 0;
	wg_allowedips_walk(t, owner, collect_fn, c);
	qsort(m->e, m->n, sizeof(m->e[0]), ent_cmp);
	for (size_t i = 0; i < m->n; i++) {
		if (m->e[i].peer != owner)
			continue;
		CHECK(j < c->n);
		CHECK(c->e[j].peer == owner);
		CHECK_INT(c->e[j].p.cidr, ==, m->e[i].p.cidr);
		CHECK_MEM(c->e[j].p.addr, m->e[i].p.addr, 16);
		j++;
	}
	CHECK_INT(j, ==, c->n);
}

static void check_lookups(const struct wg_allowedips *t, const struct naive *m, int n)
{
	uint8_t addr[16];

	while (n--) {
		int fam6 = (int)(rnd() % 2);
		sa_family_t f = fam6 ? AF_INET6 : AF_INET;

		random_addr(addr, fam6);
		CHECK(wg_allowedips_lookup(t, f, addr) == naive_lookup(m, f, addr));
	}
}

static void random_op(struct wg_allowedips *t, struct naive *m)
{
	unsigned k = (unsigned)(rnd() % 1000);
	void *peer = &peer_objs[rnd() % 8];
	struct xb_prefix p;

	if (k < 600) {
		p = random_prefix((int)(rnd() % 2));
		CHECK_INT(wg_allowedips_insert(t, &p, peer), ==, 0);
		naive_insert(m, p, peer);
	} else if (k < 800 && m->n) {
		/* An existing prefix, half the time with a wrong owner. */
		struct ent *e = &m->e[rnd() % m->n];

		p = e->p;
		if (rnd() % 2)
			peer = e->peer;
		CHECK(wg_allowedips_remove(t, &p, peer) == naive_remove(m, p, peer));
	} else if (k < 990) {
		p = random_prefix((int)(rnd() % 2));
		CHECK(wg_allowedips_remove(t, &p, peer) == naive_remove(m, p, peer));
	} else {
		wg_allowedips_remove_peer(t, peer);
		naive_remove_peer(m, peer);
	}
}

static void random_bases(uint64_t seed)
{
	rng_state = seed;
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < 8; i++)
			for (int j = 0; j < 16; j++)
				bases[f][i][j] = (uint8_t)rnd();
}

TEST(random_vs_naive)
{
	static struct naive m;
	static struct collect c;
	struct wg_allowedips t;

	random_bases(20240601);
	wg_allowedips_init(&t);
	m.n = 0;
	for (int i = 0; i < 40000; i++) {
		random_op(&t, &m);
		check_lookups(&t, &m, 4);
		if (i % 2000 == 1999)
			check_walk(&t, &m, &c);
	}
	check_walk(&t, &m, &c);
	for (int i = 0; i < 8; i++)
		check_walk_owner(&t, &m, &c, &peer_objs[i]);
	wg_allowedips_free(&t);
	CHECK(t.root4 == NULL && t.root6 == NULL && t.count == 0);
}

TEST(random_fill_then_drain)
{
	/* Remove every prefix, in random order: nothing may be left behind. */
	static struct naive m;
	static struct collect c;
	struct wg_allowedips t;

	random_bases(7);
	wg_allowedips_init(&t);
	m.n = 0;
	for (int i = 0; i < 8000; i++) {
		struct xb_prefix p = random_prefix((int)(rnd() % 2));
		void *peer = &peer_objs[rnd() % 8];

		CHECK_INT(wg_allowedips_insert(&t, &p, peer), ==, 0);
		naive_insert(&m, p, peer);
	}
	check_walk(&t, &m, &c);
	while (m.n) {
		struct ent e = m.e[rnd() % m.n];

		CHECK(wg_allowedips_remove(&t, &e.p, e.peer));
		CHECK(naive_remove(&m, e.p, e.peer));
		if (m.n % 500 == 0) {
			check_lookups(&t, &m, 200);
			check_walk(&t, &m, &c);
		}
	}
	CHECK(t.root4 == NULL && t.root6 == NULL && t.count == 0);
	wg_allowedips_free(&t);
}
