/* Firewall: whether inbound traffic is dropped unless allowed.
 *
 * Read through libnftables ("list ruleset" with JSON output) rather than by
 * running nft: no shell, no PATH, and the same parser the gateway's JSON
 * uses. iptables-nft (Debian's default iptables) keeps its chains in
 * nftables too, so `iptables -P INPUT DROP' shows as table ip filter, chain
 * INPUT, hook input, policy drop. The rule is the one operators state: some
 * base chain on the input hook of family ip, ip6 or inet has policy drop. A
 * chain that accepts by policy and ends in a drop rule does not count.
 *
 * Legacy iptables (x_tables) is invisible to nftables; when its filter table
 * is loaded (/proc/net/ip_tables_names) and nftables shows no dropping input
 * chain, the answer is unknown rather than a wrong "false".
 */
#include "agent/posture.h"
#include "common/log.h"

#include <limits.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

static bool input_drop(json_t *chain)
{
	const char *fam = json_string_value(json_object_get(chain, "family"));
	const char *hook = json_string_value(json_object_get(chain, "hook"));
	const char *policy = json_string_value(json_object_get(chain, "policy"));

	if (!fam || !hook || !policy)
		return false;
	if (strcmp(fam, "ip") && strcmp(fam, "ip6") && strcmp(fam, "inet"))
		return false;
	return !strcmp(hook, "input") && !strcmp(policy, "drop");
}

int xba_firewall_from_json(const char *text)
{
	json_t *root, *list, *item;
	size_t i;
	int ret = 0;

	if (!(root = json_loads(text, JSON_REJECT_DUPLICATES, NULL)))
		return -1;
	if (!json_is_array(list = json_object_get(root, "nftables"))) {
		json_decref(root);
		return -1;
	}
	json_array_foreach(list, i, item)
		if (input_drop(json_object_get(item, "chain")))
			ret = 1;
	json_decref(root);
	return ret;
}

/* The ruleset as JSON text (owned by ctx); NULL when nftables cannot be
 * asked (no CAP_NET_ADMIN, no nf_tables). */
static const char *ruleset(struct nft_ctx *ctx)
{
	nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(ctx) || nft_ctx_buffer_error(ctx))
		return NULL;
	if (nft_run_cmd_from_buffer(ctx, "list ruleset")) {
		log_debug("firewall: nft list ruleset: %s", nft_ctx_get_error_buffer(ctx));
		return NULL;
	}
	return nft_ctx_get_output_buffer(ctx);
}

static bool legacy_filter(const struct xba_env *env)
{
	char path[PATH_MAX], line[64];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/net/ip_tables_names", env->root);
	if (!(f = fopen(path, "re")))
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strcmp(line, "filter\n");
	fclose(f);
	return found;
}

int xba_collect_firewall(const struct xba_env *env, json_t *report)
{
	struct nft_ctx *ctx;
	const char *text;
	int v = -1;

	if (!env->firewall_nft)
		return 0;
	if (!(ctx = nft_ctx_new(NFT_CTX_DEFAULT)))
		return 0;
	if ((text = ruleset(ctx)))
		v = xba_firewall_from_json(text);
	nft_ctx_free(ctx);
	if (v == 0 && legacy_filter(env)) {
		log_debug("firewall: legacy iptables filter table loaded; unknown");
		v = -1;
	}
	if (v < 0)
		return 0;
	return json_object_set_new(report, "firewall", json_boolean(v));
}
