/* libnftables wrapper; see nft.h. */
#include "gateway/kernel/nft.h"

#include <errno.h>
#include <malloc.h>
#include <nftables/libnftables.h>
#include <stdlib.h>
#include <string.h>

int xb_nft_open(struct xb_nft *n)
{
	n->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!n->ctx)
		return -ENOMEM;
	nft_ctx_buffer_output(n->ctx);
	nft_ctx_buffer_error(n->ctx);
	return 0;
}

void xb_nft_close(struct xb_nft *n)
{
	if (n->ctx)
		nft_ctx_free(n->ctx);
	n->ctx = NULL;
}

/* libnftables keeps what a command read and wrote in the context's cache
 * until the context is freed: after loading a table of 500 000 set
 * elements that held about 200 MB, and twice that after a reload
 * (bench/gateway.sh). A new context after every command gives it back,
 * and malloc_trim() returns the freed heap to the system; a context costs
 * about 35 us to make (nft_ctx_new and _free, measured here). */
static void renew(struct xb_nft *n)
{
	xb_nft_close(n);
	malloc_trim(0);
	xb_nft_open(n);
}

/* A context to run in: the last renew() may have found no memory. */
static bool ready(struct xb_nft *n, char **err)
{
	if (n->ctx || xb_nft_open(n) == 0)
		return true;
	if (err)
		*err = strdup("out of memory");
	return false;
}

static int run(struct xb_nft *n, const char *script, char **err)
{
	int r = nft_run_cmd_from_buffer(n->ctx, script);
	const char *e = nft_ctx_get_error_buffer(n->ctx);

	if (err)
		*err = r && e ? strdup(e) : NULL;
	return r ? -1 : 0;
}

int xb_nft_run(struct xb_nft *n, const char *script, char **err)
{
	int r;

	if (!ready(n, err))
		return -1;
	r = run(n, script, err);
	renew(n);
	return r;
}

int xb_nft_check(struct xb_nft *n, const char *script, char **err)
{
	int r;

	if (!ready(n, err))
		return -1;
	nft_ctx_set_dry_run(n->ctx, true);
	r = run(n, script, err);
	renew(n);	/* a fresh context: dry run off again */
	return r;
}

int xb_nft_query(struct xb_nft *n, const char *cmd, bool json, char **out, char **err)
{
	const char *o;
	int r;

	*out = NULL;
	if (!ready(n, err))
		return -1;
	if (json)
		nft_ctx_output_set_flags(n->ctx, nft_ctx_output_get_flags(n->ctx) | NFT_CTX_OUTPUT_JSON);
	r = run(n, cmd, err);
	o = nft_ctx_get_output_buffer(n->ctx);
	*out = r == 0 && o ? strdup(o) : NULL;
	renew(n);
	return r == 0 && !*out ? -1 : r;
}
