/* DNS name matching for the resolver's policy: which rule, if any, covers a
 * query name. Patterns come in three modes:
 *
 *   erp.acme.cn     XB_DNS_EXACT   that name only
 *   *.acme.cn       XB_DNS_BELOW   every name strictly below acme.cn
 *   .acme.cn        XB_DNS_SUFFIX  acme.cn and every name below it (what a
 *                                  dnsmasq list means by `acme.cn')
 *
 * Matching is by whole labels, ASCII case-insensitive, and the most specific
 * pattern wins: the one whose name has the most labels; at the same name,
 * an exact pattern beats a suffix pattern for that name itself, and a
 * BELOW pattern beats a SUFFIX pattern for the names under it. Adding a
 * pattern that is already there (same name, same mode) replaces its entry:
 * the last one wins. docs/dns.md, "Name matching", has the full table.
 *
 * The matcher is a label trie stored in one open-addressing hash table keyed
 * by (parent node, label): a lookup walks the query's labels from the root
 * down, one probe per label, and stops at the first label with no node.
 * Lookups allocate nothing and take no locks; the caller serialises writers
 * against readers (the resolver builds a new matcher and swaps it in).
 */
#ifndef XB_GATEWAY_DNS_MATCH_H
#define XB_GATEWAY_DNS_MATCH_H

#include <stddef.h>
#include <stdint.h>

#define XB_DNS_NAME_MAX		253	/* text characters, without a final dot */
#define XB_DNS_LABEL_MAX	63

enum xb_dns_mode {
	XB_DNS_EXACT,
	XB_DNS_BELOW,
	XB_DNS_SUFFIX,
};

/* What a list line asked for; the resolver decides what it means for a
 * query. Patterns added by the policy or a plain list are XB_DNS_RULE. */
enum xb_dns_kind {
	XB_DNS_RULE,
	XB_DNS_SERVER,		/* server=/d/ADDR: forward to ADDR ("#": the default upstream) */
	XB_DNS_LOCAL,		/* server=/d/ or local=/d/: never forward */
	XB_DNS_ADDRESS,		/* address=/d/ADDR: answer ADDR; no ADDR: NXDOMAIN; "#": 0.0.0.0 and :: */
	XB_DNS_NFTSET,		/* nftset=/d/SPEC: add answers to the nftables set(s) SPEC */
	XB_DNS_IPSET,		/* ipset=/d/SETS */
};

/* What a pattern maps to. value is the caller's (a rule index, say); arg is
 * the directive's text after the last '/' (NULL when there is none), owned
 * by the matcher. */
struct xb_dns_entry {
	uint32_t value;
	uint8_t kind;		/* enum xb_dns_kind */
	uint8_t mode;		/* enum xb_dns_mode of the pattern that matched */
	const char *arg;
};

/* A pattern parsed and normalised: lower case, no final dot, no "*." or
 * leading '.'; the root is the empty name. */
struct xb_dns_pattern {
	char name[XB_DNS_NAME_MAX + 1];
	uint8_t len;
	uint8_t mode;		/* enum xb_dns_mode */
};

struct xb_dns_match;

struct xb_dns_match *xb_dns_match_new(void);
void xb_dns_match_free(struct xb_dns_match *m);

/* Parse pattern text s[0..len): "*.name" is BELOW, ".name" is SUFFIX, a
 * bare name is the mode given as bare; one final dot is ignored; "*" alone
 * is BELOW the root (every name) and "." alone the root. Labels are 1..63
 * characters of a-z, 0-9, '-' and '_' (upper case is folded), the name at
 * most 253. Returns 0, or -1 with *why saying what is wrong. */
int xb_dns_match_pattern_parse(struct xb_dns_pattern *p, const char *s, size_t len,
			 enum xb_dns_mode bare, const char **why);

/* Add p with e's value, kind and arg (copied; e->mode is ignored). Returns
 * 0 when the pattern is new, 1 when it replaced the entry of an equal
 * pattern, or -ENOMEM: then no pattern was added or changed (empty trie
 * nodes made on the way may stay; they match nothing). */
int xb_dns_match_add(struct xb_dns_match *m, const struct xb_dns_pattern *p,
		     const struct xb_dns_entry *e);

/* The entry of the most specific pattern matching name, or NULL. name is
 * dotted text name[0..len) with or without the final dot, without escapes
 * ("" or "." is the root); any case. A name that is not valid (an empty
 * label, a label over 63, over 253 characters) matches nothing. The entry
 * stays valid until the matcher is next changed. */
const struct xb_dns_entry *xb_dns_match_lookup(const struct xb_dns_match *m,
					       const char *name, size_t len);
/* The same for an uncompressed wire-format name ("\3www\4acme\2cn\0") of at
 * most max bytes, as the query carried it (any case, any byte in a label:
 * a label holding a '.' never matches a pattern's label). */
const struct xb_dns_entry *xb_dns_match_lookup_wire(const struct xb_dns_match *m,
						    const uint8_t *name, size_t max);

size_t xb_dns_match_count(const struct xb_dns_match *m);	/* patterns */
size_t xb_dns_match_replaced(const struct xb_dns_match *m);	/* adds that replaced one */
size_t xb_dns_match_memory(const struct xb_dns_match *m);	/* bytes allocated */

#endif
