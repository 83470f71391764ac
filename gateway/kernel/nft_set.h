/* Adding and removing addresses in the sets of table inet xborder on the
 * hot path: the DNS service puts every address it answers into the rules'
 * _dns sets before the answer leaves, so this must cost microseconds, not
 * the milliseconds of a libnftables command (parse, cache fill, then the
 * same netlink). One netfilter netlink socket, one batch per call, built
 * with libmnl; the batch is one nf_tables transaction, so a refresh
 * (delete then add with the new timeout) never shows a moment without the
 * element.
 *
 *   struct xb_nft_set s;
 *   xb_nft_set_open(&s);
 *   xb_nft_set_add(&s, "r_erp_dns4", AF_INET, &addr, 360000);   ms; 0 = none
 *   xb_nft_set_close(&s);
 *
 * The table and sets are made by the compiled ruleset (policy/compile.h);
 * adding to a set that does not exist fails with ENOENT.
 */
#ifndef XB_NFT_SET_H
#define XB_NFT_SET_H

#include "gateway/kernel/netlink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xb_nft_set {
	struct xb_nl nl;
	char *buf;		/* one batch */
	unsigned long batches, failures;
};

/* 0, or a negative errno. */
int xb_nft_set_open(struct xb_nft_set *s);
void xb_nft_set_close(struct xb_nft_set *s);

struct xb_nft_set_elem {
	int family;		/* AF_INET: addr is 4 bytes; AF_INET6: 16 */
	uint8_t addr[16];
	uint64_t timeout_ms;	/* 0: the set's default (none for our sets) */
};

/* Puts each element into set (of table inet XB_NFT_TABLE) with its
 * timeout, replacing the timeout of one already there: added absent, and
 * refreshed present, in one transaction. Every element must match the
 * set's family. Returns 0 or a negative errno (nothing changed). */
int xb_nft_set_put(struct xb_nft_set *s, const char *set, const struct xb_nft_set_elem *v, size_t n);
/* Whether a put replaces the timeout of an element already there (false
 * on Linux before 6.3, learned at the first put: it keeps the old one). */
bool xb_nft_set_refreshes(void);
/* Removes them; absent ones are no error. 0 or a negative errno. */
int xb_nft_set_remove(struct xb_nft_set *s, const char *set, const struct xb_nft_set_elem *v,
		     size_t n);

/* One change of a batch: put e into set (added absent, kept present; no
 * timeout refresh) or remove it (absent is no error). */
struct xb_nft_set_op {
	const char *set;
	bool add;
	struct xb_nft_set_elem e;
};

#define XB_NFT_SET_OPS 256	/* ops per transaction; more are split */

/* Applies ops in order, in one transaction per XB_NFT_SET_OPS of them: the
 * posture service's changes of one event-loop round in one netlink
 * exchange. 0, or the first negative errno (that transaction changed
 * nothing; the ones before it stand). */
int xb_nft_set_apply(struct xb_nft_set *s, const struct xb_nft_set_op *ops, size_t n);

#endif
