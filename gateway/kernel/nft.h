/* nftables through libnftables: a whole ruleset applied as one atomic
 * transaction, and set elements added or removed on the fly. libnftables
 * is nft's own library, so what we load is exactly what `nft list` shows and
 * what an operator could type; no hand-built netlink messages. */
#ifndef XB_NFT_H
#define XB_NFT_H

#include <stdbool.h>

struct nft_ctx;

struct xb_nft {
	struct nft_ctx *ctx;
};

int xb_nft_open(struct xb_nft *n);
void xb_nft_close(struct xb_nft *n);
/* Run script (nft syntax, any number of commands) as one transaction: all
 * or nothing. Returns 0, or -1 with nft's error text in err (malloc'ed,
 * caller frees; may be NULL). */
int xb_nft_run(struct xb_nft *n, const char *script, char **err);
/* The same, as nft --check: the kernel validates the whole transaction
 * (hooks, sets, limits) and discards it. Nothing changes. */
int xb_nft_check(struct xb_nft *n, const char *script, char **err);
/* A command whose output is wanted (a list), as text or as nft's JSON;
 * *out is malloc'ed. Returns 0 or -1 (err as for xb_nft_run). */
int xb_nft_query(struct xb_nft *n, const char *cmd, bool json, char **out, char **err);

#endif
