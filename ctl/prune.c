/* xborderctl cluster prune [--dry-run] (docs/ha.md "Pool allocations",
 * xborderctl(8)): the daemon deletes the store's alloc/ keys of devices its
 * running policy does not have; here, what it did with each key. */
#include "ctl/device.h"
#include "ctl/render.h"

#include <string.h>
#include <time.h>

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* s with control characters as '?' (the store's contents are hostile; the
 * daemon has made them printable already). */
static void put(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* One line a key, then the counts. */
int xb_render_cluster_prune(const struct xb_render *r, json_t *res)
{
	json_t *keys = json_object_get(res, "keys"), *k;
	bool dry = json_is_true(json_object_get(res, "dry_run"));
	size_t i;

	if (!json_is_array(keys))
		return -1;
	json_array_foreach(keys, i, k) {
		fprintf(r->out, "%-12s ", str(k, "action"));
		put(r->out, str(k, "key"));
		fputs(": ", r->out);
		put(r->out, str(k, "reason"));
		fputc('\n', r->out);
	}
	if (dry)
		fprintf(r->out, "cluster prune --dry-run: %lld would be deleted, %lld kept (store "
			"revision %lld); nothing deleted\n", num(res, "would_delete"), num(res, "kept"),
			num(res, "revision"));
	else
		fprintf(r->out, "cluster prune: %lld deleted, %lld kept, %lld changed since read "
			"(kept), %lld errors (store revision %lld)\n", num(res, "deleted"),
			num(res, "kept"), num(res, "changed"), num(res, "errors"), num(res, "revision"));
	return 0;
}

int xb_prune_main(int argc, char **argv, int json, xb_ctl_ask_fn ask, void *ctx)
{
	char dry[] = "dry-run", *args[1] = { dry };
	struct xb_render r = { stdout, false, time(NULL) };
	json_t *res;
	int ret = 0;

	if (strcmp(argv[1], "prune")) {
		fprintf(stderr, "xborderctl: unknown cluster command `%s'; valid: prune\n", argv[1]);
		return 2;
	}
	if (argc > 2 && strcmp(argv[2], "--dry-run")) {
		fprintf(stderr, "xborderctl: cluster prune: unknown argument `%s'; usage: xborderctl "
			"cluster prune [--dry-run]\n", argv[2]);
		return 2;
	}
	if (!(res = ask(ctx, "cluster-prune", args, argc > 2 ? 1 : 0)))
		return 1;
	if (json) {
		json_dumpf(res, stdout, JSON_ENCODE_ANY | (json > 1 ? JSON_INDENT(2) : JSON_COMPACT));
		putchar('\n');
	} else if (xb_render_cluster_prune(&r, res)) {
		fprintf(stderr, "xborderctl: cluster prune: unexpected result from xborderd\n");
		ret = 1;
	}
	if (!ret && num(res, "errors") > 0)
		ret = 1;
	json_decref(res);
	return ret;
}
