/* libnftables wrapper; see nft.h. */
#include "gateway/nft.h"

#include <errno.h>
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

int xb_nft_run(struct xb_nft *n, const char *script, char **err)
{
	int r = nft_run_cmd_from_buffer(n->ctx, script);
	const char *e = nft_ctx_get_error_buffer(n->ctx);

	if (err)
		*err = r && e ? strdup(e) : NULL;
	return r ? -1 : 0;
}

int xb_nft_query(struct xb_nft *n, const char *cmd, bool json, char **out, char **err)
{
	unsigned flags = nft_ctx_output_get_flags(n->ctx);
	const char *o;
	int r;

	nft_ctx_get_output_buffer(n->ctx);	/* drop what earlier commands printed */
	nft_ctx_output_set_flags(n->ctx, json ? flags | NFT_CTX_OUTPUT_JSON : flags);
	r = xb_nft_run(n, cmd, err);
	o = nft_ctx_get_output_buffer(n->ctx);
	nft_ctx_output_set_flags(n->ctx, flags);
	*out = r == 0 && o ? strdup(o) : NULL;
	return r == 0 && !*out ? -1 : r;
}
