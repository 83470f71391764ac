/* libFuzzer: what an etcd member (or anything posing as one) may send the
 * client — a unary answer of any kind, a watch stream cut into chunks
 * (gateway/cluster/etcd_wire.h). Parsers must not read past the input nor
 * leak; the stream must yield the same objects whether fed at once or in
 * the chunks the input's first octet chooses; every kv that parses has a
 * key and NUL-terminated fields of the lengths it claims. */
#include <stdlib.h>
#include <string.h>

#include "gateway/cluster/etcd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void check_kv(const struct xb_etcd_kv *kv)
{
	check(kv->klen > 0 && kv->klen <= XBE_MAX_KEY && kv->vlen <= XBE_MAX_VAL);
	check(kv->key[kv->klen] == 0 && kv->val[kv->vlen] == 0);
}

struct acc {
	uint64_t hash;
	size_t n;
	int kind;
};

static int on_obj(void *ctx, const char *obj, size_t len)
{
	struct acc *a = ctx;
	struct xbe_answer ans;
	char msg[256];
	size_t i;

	check(len >= 2 && obj[0] == '{');
	for (i = 0; i < len; i++)
		a->hash = a->hash * 1099511628211ULL ^ (uint8_t)obj[i];
	a->n++;
	if (xbe_parse(obj, len, XBE_WATCH, &ans, msg, sizeof(msg)) == 0)
		for (i = 0; i < ans.n_evs; i++)
			check_kv(&ans.evs[i].kv);
	xbe_answer_free(&ans);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xbe_stream st;
	struct xbe_answer ans;
	struct acc whole = { 0 }, cut = { 0 };
	char msg[256];
	size_t i, step;
	int rc1, rc2 = 0;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 16) + 1;
	data++;
	size--;
	for (i = XBE_PUT; i <= XBE_WATCH; i++) {
		if (xbe_parse((const char *)data, size, (enum xbe_kind)i, &ans, msg, sizeof(msg)) == 0) {
			size_t k;

			for (k = 0; k < ans.n_kvs; k++)
				check_kv(&ans.kvs[k]);
		}
		xbe_answer_free(&ans);
	}
	xbe_stream_init(&st, 4096);
	rc1 = xbe_stream_feed(&st, (const char *)data, size, on_obj, &whole, msg, sizeof(msg));
	xbe_stream_reset(&st);
	for (i = 0; i < size && !rc2; i += step)
		rc2 = xbe_stream_feed(&st, (const char *)data + i, size - i < step ? size - i : step,
				      on_obj, &cut, msg, sizeof(msg));
	check(rc1 == rc2 && whole.n == cut.n && whole.hash == cut.hash);
	xbe_stream_free(&st);
	return 0;
}
