/* libFuzzer: what another gateway (or anyone who can write to etcd) may
 * leave under the cluster's prefix (gateway/cluster/cluster_kv.h): the
 * input's first octet picks the parser, the rest is the key or value. No
 * crash, no leak, no read past the input; what decodes re-encodes to
 * something that decodes equal. */
#include <stdlib.h>
#include <string.h>

#include "gateway/cluster/cluster_kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	char err[256], buf[1024];
	struct xb_cluster_kv_key k;
	struct xb_cluster_kv_posture p, p2;
	struct xb_cluster_kv_learned l;
	struct xb_cluster_kv_endpoint e;
	struct xb_cluster_kv_mdm m;
	struct xb_cluster_kv_alloc a;
	char *s = NULL;

	if (!size)
		return 0;
	switch (data[0] % 6) {
	case 0:
		if (xb_cluster_kv_key_parse("/x/", in, n, &k, err, sizeof(err)) == 0 &&
		    k.kind != XB_CLUSTER_KV_OTHER) {
			size_t len = xb_cluster_kv_key_make(buf, sizeof(buf), "/x/", &k);

			check(len > 0 && xb_cluster_kv_key_parse("/x/", buf, len, &k, err, sizeof(err)) == 0);
		}
		break;
	case 1:
		if (xb_cluster_kv_posture_decode(in, n, &p, err, sizeof(err)) == 0) {
			check(p.body && strlen(p.body) == p.body_len && p.seq >= 0);
			s = xb_cluster_kv_posture_encode(&p);
			check(s && xb_cluster_kv_posture_decode(s, strlen(s), &p2, err, sizeof(err)) == 0);
			check(p2.seq == p.seq && !strcmp(p2.body, p.body));
			xb_cluster_kv_posture_clear(&p2);
			xb_cluster_kv_posture_clear(&p);
		}
		break;
	case 2:
		if (xb_cluster_kv_learned_decode(in, n, &l, err, sizeof(err)) == 0)
			check(l.expires > 0);
		break;
	case 3:
		if (xb_cluster_kv_endpoint_decode(in, n, &e, err, sizeof(err)) == 0)
			check(e.ep.sa.sa_family == AF_INET || e.ep.sa.sa_family == AF_INET6);
		break;
	case 4:
		if (xb_cluster_kv_alloc_decode(in, n, &a, err, sizeof(err)) == 0)
			check(a.device[0] && a.node[0]);
		break;
	default:
		if (xb_cluster_kv_mdm_decode(in, n, &m, err, sizeof(err)) == 0) {
			check(m.attrs && json_array_size(m.attrs) > 0);
			json_decref(m.attrs);
		}
	}
	free(s);
	return 0;
}
