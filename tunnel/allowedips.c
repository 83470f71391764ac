/* Allowed IPs as path-compressed binary tries, in the manner of the WireGuard
 * kernel module's allowedips.c.
 *
 * Addresses are held as two 64-bit words, most significant bit first (IPv4 in
 * the top 32 bits of the first word), so bit i of an address is bit 63 - i%64
 * of word i/64. A node stands for the prefix key/cidr. Invariants:
 *  - key has no bits set beyond cidr; mask has exactly the first cidr bits;
 *  - a child's prefix extends its parent's, and child[b] holds the prefixes
 *    whose bit at position parent->cidr is b (so cidr strictly grows downward
 *    and a path has at most 129 nodes);
 *  - a node without a peer is a branch point and has both children; a node
 *    that loses its peer is spliced out or freed so that this stays true.
 * Hence the trie has at most 2 * count - 1 nodes and its shape depends only on
 * the set of prefixes, not on the order they were inserted in.
 */
#include "tunnel/allowedips.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wg_aip_node {
	struct wg_aip_node *child[2];
	void *peer;		/* NULL: branch point only */
	uint64_t key[2];
	uint64_t mask[2];
	uint8_t cidr;
};

static void addr_to_key(uint64_t k[2], sa_family_t family, const uint8_t *addr)
{
	if (family == AF_INET) {
		uint32_t a;

		memcpy(&a, addr, 4);
		k[0] = (uint64_t)be32toh(a) << 32;
		k[1] = 0;
	} else {
		memcpy(k, addr, 16);
		k[0] = be64toh(k[0]);
		k[1] = be64toh(k[1]);
	}
}

static void key_to_prefix(struct xb_prefix *p, const struct wg_aip_node *n, sa_family_t family)
{
	uint64_t be[2] = { htobe64(n->key[0]), htobe64(n->key[1]) };

	memset(p, 0, sizeof(*p));
	p->family = family;
	p->cidr = n->cidr;
	memcpy(p->addr, be, family == AF_INET ? 4 : 16);
}

static uint64_t word_mask(int bits)
{
	return bits <= 0 ? 0 : bits >= 64 ? UINT64_MAX : UINT64_MAX << (64 - bits);
}

/* Bit i of key. Only a /128 node asks for bit 128, and it has no children,
 * so wrapping the index to 0 is harmless and keeps the read in bounds. */
static inline unsigned bit_at(const uint64_t k[2], unsigned i)
{
	i &= 127;
	return (k[i / 64] >> (63 - i % 64)) & 1;
}

/* Number of leading bits a and b share (128 if equal). */
static unsigned common_bits(const uint64_t a[2], const uint64_t b[2])
{
	uint64_t x = a[0] ^ b[0];

	if (x)
		return (unsigned)__builtin_clzll(x);
	x = a[1] ^ b[1];
	return x ? 64 + (unsigned)__builtin_clzll(x) : 128;
}

static inline bool node_matches(const struct wg_aip_node *n, const uint64_t k[2])
{
	return !(((k[0] ^ n->key[0]) & n->mask[0]) | ((k[1] ^ n->key[1]) & n->mask[1]));
}

static struct wg_aip_node *node_new(const uint64_t key[2], unsigned cidr, void *peer)
{
	struct wg_aip_node *n = aligned_alloc(64, sizeof(*n));

	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->peer = peer;
	n->cidr = (uint8_t)cidr;
	n->mask[0] = word_mask((int)cidr);
	n->mask[1] = word_mask((int)cidr - 64);
	n->key[0] = key[0] & n->mask[0];
	n->key[1] = key[1] & n->mask[1];
	return n;
}

/* Restores the branch-point invariant at *slot after its node may have lost
 * its peer or a child: a peerless node keeps only if it has two children. */
static void prune(struct wg_aip_node **slot)
{
	struct wg_aip_node *n = *slot;

	if (!n || n->peer || (n->child[0] && n->child[1]))
		return;
	*slot = n->child[0] ? n->child[0] : n->child[1];
	free(n);
}

static void free_tree(struct wg_aip_node *n)
{
	if (!n)
		return;
	free_tree(n->child[0]);
	free_tree(n->child[1]);
	free(n);
}

static struct wg_aip_node **root_of(struct wg_allowedips *t, sa_family_t family)
{
	return family == AF_INET ? &t->root4 : &t->root6;
}

static unsigned max_cidr(sa_family_t family)
{
	return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

void wg_allowedips_init(struct wg_allowedips *t)
{
	memset(t, 0, sizeof(*t));
}

void wg_allowedips_free(struct wg_allowedips *t)
{
	free_tree(t->root4);
	free_tree(t->root6);
	wg_allowedips_init(t);
}

/* Where the new prefix goes relative to the first node on its path that is
 * not a prefix of it: above it (the new prefix contains it) or beside it
 * under a new branch point at the first differing bit. */
static int splice(struct wg_aip_node **slot, const uint64_t key[2], unsigned cidr,
		  unsigned common, void *peer)
{
	struct wg_aip_node *n = *slot, *leaf, *branch;

	leaf = node_new(key, cidr, peer);
	if (!leaf)
		return -ENOMEM;
	if (!n) {
		*slot = leaf;
		return 0;
	}
	if (common == cidr) {
		leaf->child[bit_at(n->key, cidr)] = n;
		*slot = leaf;
		return 0;
	}
	branch = node_new(key, common, NULL);
	if (!branch) {
		free(leaf);
		return -ENOMEM;
	}
	branch->child[bit_at(key, common)] = leaf;
	branch->child[bit_at(n->key, common)] = n;
	*slot = branch;
	return 0;
}

int wg_allowedips_insert(struct wg_allowedips *t, const struct xb_prefix *p, void *peer)
{
	unsigned cidr = p->cidr, common = 0, maxc = max_cidr(p->family);
	struct wg_aip_node **slot, *n;
	uint64_t key[2];
	int ret;

	if (!peer || !maxc || cidr > maxc)
		return -EINVAL;
	addr_to_key(key, p->family, p->addr);
	for (slot = root_of(t, p->family); (n = *slot); slot = &n->child[bit_at(key, n->cidr)]) {
		common = common_bits(n->key, key);
		common = common < cidr ? common : cidr;
		if (common < n->cidr)
			break;
		if (n->cidr == cidr) {
			t->count += !n->peer;
			n->peer = peer;
			return 0;
		}
	}
	ret = splice(slot, key, cidr, common, peer);
	if (!ret)
		t->count++;
	return ret;
}

bool wg_allowedips_remove(struct wg_allowedips *t, const struct xb_prefix *p, void *peer)
{
	unsigned cidr = p->cidr, maxc = max_cidr(p->family);
	struct wg_aip_node **slot, **parent = NULL, *n;
	uint64_t key[2];

	if (!peer || !maxc || cidr > maxc)
		return false;
	addr_to_key(key, p->family, p->addr);
	slot = root_of(t, p->family);
	while ((n = *slot) && n->cidr < cidr && node_matches(n, key)) {
		parent = slot;
		slot = &n->child[bit_at(key, n->cidr)];
	}
	if (!n || n->cidr != cidr || !node_matches(n, key) || n->peer != peer)
		return false;
	n->peer = NULL;
	t->count--;
	prune(slot);
	if (parent)
		prune(parent);
	return true;
}

/* Post-order, so that children are already pruned when their parent is. */
static void remove_peer(struct wg_aip_node **slot, void *peer, size_t *count)
{
	struct wg_aip_node *n = *slot;

	if (!n)
		return;
	remove_peer(&n->child[0], peer, count);
	remove_peer(&n->child[1], peer, count);
	if (n->peer == peer) {
		n->peer = NULL;
		(*count)--;
	}
	prune(slot);
}

void wg_allowedips_remove_peer(struct wg_allowedips *t, void *peer)
{
	if (!peer)
		return;
	remove_peer(&t->root4, peer, &t->count);
	remove_peer(&t->root6, peer, &t->count);
}

/* Walks down the one path the address selects, remembering the deepest
 * owned prefix that still matches. */
void *wg_allowedips_lookup(const struct wg_allowedips *t, sa_family_t family, const uint8_t *addr)
{
	const struct wg_aip_node *n;
	void *found = NULL;
	uint64_t key[2];

	if (family == AF_INET)
		n = t->root4;
	else if (family == AF_INET6)
		n = t->root6;
	else
		return NULL;
	addr_to_key(key, family, addr);
	while (n && node_matches(n, key)) {
		if (n->peer)
			found = n->peer;
		n = n->child[bit_at(key, n->cidr)];
	}
	return found;
}

/* Pre-order with child[0] first: address order, shorter prefixes first. */
static void walk(const struct wg_aip_node *n, sa_family_t family, void *peer,
		 void (*fn)(void *ctx, const struct xb_prefix *p, void *owner), void *ctx)
{
	struct xb_prefix p;

	for (; n; n = n->child[1]) {
		if (n->peer && (!peer || n->peer == peer)) {
			key_to_prefix(&p, n, family);
			fn(ctx, &p, n->peer);
		}
		walk(n->child[0], family, peer, fn, ctx);
	}
}

void wg_allowedips_walk(const struct wg_allowedips *t, void *peer,
			void (*fn)(void *ctx, const struct xb_prefix *p, void *owner), void *ctx)
{
	walk(t->root4, AF_INET, peer, fn, ctx);
	walk(t->root6, AF_INET6, peer, fn, ctx);
}
