/* DNS name matching; see dns_match.h.
 *
 * Layout: node 0 is the root; every other node is one label below its
 * parent and sits in the hash table under hash(parent, label). A node holds
 * up to one entry per mode. Label text lives in one pool, lower-cased;
 * entries in one array, in the order they were first added. The table is at
 * most half full, so a probe for a label that is not there ends after about
 * two slots. Hashing is unkeyed (FNV-1a): only the operator's patterns are
 * inserted, and a query name cannot lengthen the probe runs they formed.
 */
#include "gateway/dns/dns_match.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/array.h"

#define LABELS_MAX	128	/* a 253-character name has at most 127 labels */
#define TABLE_MIN	64

struct node {
	uint32_t parent;
	uint32_t label;		/* offset of the label's text in the pool */
	uint32_t entry[3];	/* by mode: index + 1 into entries, 0 = none */
	uint8_t len;
};

struct slot {
	uint32_t hash;
	uint32_t node;		/* 0: empty (the root is never in the table) */
};

struct xb_dns_match {
	struct node *nodes;	/* grown by xb_grow */
	size_t n_nodes;
	struct slot *slots;
	size_t cap;		/* slots: a power of two, or 0 */
	char *text;		/* the label pool */
	size_t text_len, text_cap;
	struct xb_dns_entry *entries;	/* grown by xb_grow */
	size_t n_entries;
	char **args;		/* copies of entries' arg text, grown by xb_grow */
	size_t n_args, arg_bytes;
	size_t replaced;
};

/* A name split into labels: label i is base[off[i]..off[i] + len[i]),
 * leftmost first. */
struct labels {
	const uint8_t *base;
	uint8_t off[LABELS_MAX], len[LABELS_MAX];
	int n;
};

static inline uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static uint32_t hash(uint32_t parent, const uint8_t *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (parent * 0x9e3779b97f4a7c15ULL);

	for (size_t i = 0; i < len; i++) {
		h ^= fold(s[i]);
		h *= 0x100000001b3ULL;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static bool same(const char *stored, const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)stored[i] != fold(s[i]))
			return false;
	return true;
}

static uint32_t child(const struct xb_dns_match *m, uint32_t parent, const uint8_t *s,
		      size_t len, uint32_t h)
{
	size_t mask = m->cap - 1;

	if (!m->cap)
		return 0;
	for (size_t i = h & mask; m->slots[i].node; i = (i + 1) & mask) {
		const struct slot *sl = &m->slots[i];
		const struct node *n = &m->nodes[sl->node];

		if (sl->hash == h && n->parent == parent && n->len == len &&
		    same(m->text + n->label, s, len))
			return sl->node;
	}
	return 0;
}

static void place(struct slot *slots, size_t cap, struct slot s)
{
	size_t i;

	for (i = s.hash & (cap - 1); slots[i].node; i = (i + 1) & (cap - 1))
		;
	slots[i] = s;
}

static bool rehash(struct xb_dns_match *m, size_t cap)
{
	struct slot *v = calloc(cap, sizeof(*v));

	if (!v)
		return false;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].node)
			place(v, cap, m->slots[i]);
	free(m->slots);
	m->slots = v;
	m->cap = cap;
	return true;
}

static bool text_room(struct xb_dns_match *m, size_t len)
{
	size_t cap = m->text_cap ? m->text_cap : 4096;
	char *t;

	if (m->text_len + len <= m->text_cap)
		return true;
	while (cap < m->text_len + len)
		cap *= 2;
	if (cap > UINT32_MAX || !(t = realloc(m->text, cap)))
		return false;
	m->text = t;
	m->text_cap = cap;
	return true;
}

/* A new node for label s under parent; 0 when out of memory. */
static uint32_t add_node(struct xb_dns_match *m, uint32_t parent, const uint8_t *s,
			 size_t len, uint32_t h)
{
	struct node *v;
	uint32_t id = (uint32_t)m->n_nodes;

	if (m->n_nodes >= UINT32_MAX)
		return 0;
	/* n_nodes - 1 nodes are in the table; keep it at most half full. */
	if (2 * m->n_nodes > m->cap && !rehash(m, m->cap ? 2 * m->cap : TABLE_MIN))
		return 0;
	if (!(v = xb_grow(m->nodes, m->n_nodes, sizeof(*v))))
		return 0;
	m->nodes = v;
	if (!text_room(m, len))
		return 0;
	for (size_t i = 0; i < len; i++)
		m->text[m->text_len + i] = (char)fold(s[i]);
	m->nodes[id] = (struct node){ .parent = parent, .label = (uint32_t)m->text_len,
				      .len = (uint8_t)len };
	m->text_len += len;
	place(m->slots, m->cap, (struct slot){ h, id });
	m->n_nodes++;
	return id;
}

struct xb_dns_match *xb_dns_match_new(void)
{
	struct xb_dns_match *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->nodes = xb_grow(NULL, 0, sizeof(*m->nodes));
	if (!m->nodes) {
		free(m);
		return NULL;
	}
	memset(&m->nodes[0], 0, sizeof(m->nodes[0]));
	m->n_nodes = 1;
	return m;
}

void xb_dns_match_free(struct xb_dns_match *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_args; i++)
		free(m->args[i]);
	free(m->args);
	free(m->entries);
	free(m->text);
	free(m->slots);
	free(m->nodes);
	free(m);
}

static int bad(const char **why, const char *what)
{
	*why = what;
	return -1;
}

/* Checks and lower-cases the bare name s[0..len) into p. */
static int parse_name(struct xb_dns_pattern *p, const char *s, size_t len, const char **why)
{
	size_t start = 0;

	if (len > XB_DNS_NAME_MAX)
		return bad(why, "name longer than 253 characters");
	for (size_t i = 0; i <= len && len; i++) {
		uint8_t c = i < len ? fold((uint8_t)s[i]) : '.';

		if (c == '.') {
			if (i == start)
				return bad(why, "empty label");
			if (i - start > XB_DNS_LABEL_MAX)
				return bad(why, "label longer than 63 characters");
			start = i + 1;
		} else if (c == '*') {
			return bad(why, "`*' is allowed only as the whole first label (`*.name')");
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			     c == '_')) {
			return bad(why, "a label holds only letters, digits, `-' and `_'");
		}
		if (i < len)
			p->name[i] = (char)c;
	}
	p->name[len] = '\0';
	p->len = (uint8_t)len;
	return 0;
}

int xb_dns_match_pattern_parse(struct xb_dns_pattern *p, const char *s, size_t len,
			 enum xb_dns_mode bare, const char **why)
{
	p->mode = (uint8_t)bare;
	if (!len)
		return bad(why, "empty pattern");
	if (len == 1 && (s[0] == '*' || s[0] == '.')) {	/* the root */
		p->mode = (uint8_t)(s[0] == '*' ? XB_DNS_BELOW : bare);
		len = 0;
	} else if (len >= 2 && s[0] == '*' && s[1] == '.') {
		p->mode = XB_DNS_BELOW;
		s += 2;
		len -= 2;
	} else if (s[0] == '.') {
		p->mode = XB_DNS_SUFFIX;
		s++;
		len--;
	}
	/* A lone '.' left after "*." or '.' is an empty label, not the root. */
	if (len > 1 && s[len - 1] == '.')
		len--;
	return parse_name(p, s, len, why);
}

/* The matcher's copy of arg; consecutive entries of a list usually share
 * one, so it is compared with the last copy made. */
static int copy_arg(struct xb_dns_match *m, const char *arg, const char **out)
{
	char **v;

	*out = NULL;
	if (!arg)
		return 0;
	if (m->n_args && !strcmp(m->args[m->n_args - 1], arg)) {
		*out = m->args[m->n_args - 1];
		return 0;
	}
	if (!(v = xb_grow(m->args, m->n_args, sizeof(*v))))
		return -ENOMEM;
	m->args = v;
	if (!(v[m->n_args] = strdup(arg)))
		return -ENOMEM;
	m->arg_bytes += strlen(arg) + 1;
	*out = v[m->n_args++];
	return 0;
}

/* The node for p's name, created with its ancestors as needed; 0 when out of
 * memory (nodes made on the way stay, empty: they match nothing). */
static uint32_t path(struct xb_dns_match *m, const struct xb_dns_pattern *p)
{
	const uint8_t *s = (const uint8_t *)p->name;
	size_t end = p->len;
	uint32_t node = 0;

	while (end) {
		size_t start = end;
		uint32_t h, next;

		while (start && s[start - 1] != '.')
			start--;
		h = hash(node, s + start, end - start);
		next = child(m, node, s + start, end - start, h);
		if (!next && !(next = add_node(m, node, s + start, end - start, h)))
			return 0;
		node = next;
		end = start ? start - 1 : 0;
	}
	return node;
}

int xb_dns_match_add(struct xb_dns_match *m, const struct xb_dns_pattern *p,
		     const struct xb_dns_entry *e)
{
	uint32_t node = p->len ? path(m, p) : 0;
	struct xb_dns_entry *v;
	uint32_t *slot;
	const char *arg;

	if (p->len && !node)
		return -ENOMEM;
	slot = &m->nodes[node].entry[p->mode];
	if (*slot) {
		if (copy_arg(m, e->arg, &arg))
			return -ENOMEM;
		m->entries[*slot - 1] = (struct xb_dns_entry){ e->value, e->kind, p->mode, arg };
		m->replaced++;
		return 1;
	}
	if (m->n_entries >= UINT32_MAX - 1 ||
	    !(v = xb_grow(m->entries, m->n_entries, sizeof(*v))))
		return -ENOMEM;
	m->entries = v;
	if (copy_arg(m, e->arg, &arg))
		return -ENOMEM;
	v[m->n_entries++] = (struct xb_dns_entry){ e->value, e->kind, p->mode, arg };
	*slot = (uint32_t)m->n_entries;
	return 0;
}

/* Which entry of node n applies: to its own name (self), or to a name below. */
static uint32_t pick(const struct node *n, bool self)
{
	uint32_t first = n->entry[self ? XB_DNS_EXACT : XB_DNS_BELOW];

	return first ? first : n->entry[XB_DNS_SUFFIX];
}

/* From the root down, one probe per label; the deepest applicable entry wins. */
static const struct xb_dns_entry *walk(const struct xb_dns_match *m, const struct labels *l)
{
	uint32_t node = 0, best = pick(&m->nodes[0], l->n == 0), e;

	for (int i = l->n - 1; i >= 0; i--) {
		const uint8_t *s = l->base + l->off[i];

		node = child(m, node, s, l->len[i], hash(node, s, l->len[i]));
		if (!node)
			break;
		if ((e = pick(&m->nodes[node], i == 0)))
			best = e;
	}
	return best ? &m->entries[best - 1] : NULL;
}

static bool split_text(struct labels *l, const char *name, size_t len)
{
	size_t start = 0;

	l->base = (const uint8_t *)name;
	l->n = 0;
	if (len && name[len - 1] == '.')
		len--;
	if (len > XB_DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len && len; i++) {
		if (i < len && name[i] != '.')
			continue;
		if (i == start || i - start > XB_DNS_LABEL_MAX)
			return false;
		l->off[l->n] = (uint8_t)start;
		l->len[l->n++] = (uint8_t)(i - start);
		start = i + 1;
	}
	return true;
}

/* A wire name is at most 255 octets, its terminating zero included. */
static bool split_wire(struct labels *l, const uint8_t *name, size_t max)
{
	size_t i = 0;

	l->base = name;
	l->n = 0;
	if (max > 255)
		max = 255;
	while (i < max && name[i]) {
		size_t len = name[i];

		if (len > XB_DNS_LABEL_MAX || i + 1 + len >= max)
			return false;
		l->off[l->n] = (uint8_t)(i + 1);
		l->len[l->n++] = (uint8_t)len;
		i += 1 + len;
	}
	return i < max;
}

const struct xb_dns_entry *xb_dns_match_lookup(const struct xb_dns_match *m,
					       const char *name, size_t len)
{
	struct labels l;

	return split_text(&l, name, len) ? walk(m, &l) : NULL;
}

const struct xb_dns_entry *xb_dns_match_lookup_wire(const struct xb_dns_match *m,
						    const uint8_t *name, size_t max)
{
	struct labels l;

	return split_wire(&l, name, max) ? walk(m, &l) : NULL;
}

size_t xb_dns_match_count(const struct xb_dns_match *m)
{
	return m->n_entries;
}

size_t xb_dns_match_replaced(const struct xb_dns_match *m)
{
	return m->replaced;
}

/* xb_grow gives an array of n elements room for the next power of two. */
static size_t grown(size_t n, size_t size)
{
	size_t cap = 1;

	while (cap < n)
		cap *= 2;
	return n ? cap * size : 0;
}

size_t xb_dns_match_memory(const struct xb_dns_match *m)
{
	return sizeof(*m) + grown(m->n_nodes, sizeof(struct node)) +
	       m->cap * sizeof(struct slot) + m->text_cap +
	       grown(m->n_entries, sizeof(struct xb_dns_entry)) +
	       grown(m->n_args, sizeof(char *)) + m->arg_bytes;
}
