/* The shared state's keys and values in etcd (docs/ha.md, "Key layout"),
 * and the rules that reconcile a gateway's copy with the store. Pure: no
 * I/O, unit-tested (tests/unit/test_cluster_kv.c).
 *
 * Under the cluster's prefix P (policy: cluster.prefix):
 *
 *   P posture/DEVICE         {"seq":N,"received_at":MS,"node":S,"body":S}
 *                            the device's last accepted report, written
 *                            only by compare-and-swap: the seq high-water
 *                            is accepted once across the cluster
 *   P learned/SET/ADDRESS    {"expires":UNIX_S,"fp":"8 hex","node":S}
 *                            a DNS-learned destination of an access rule's
 *                            set; its lease is the expiry's bucket's
 *   P mdm/KEY/NONCE          {"device":S,"until":UNIX_S,"node":S,"attrs":[{"key":S,
 *                            "value":V,"expires":UNIX_S}]}: an MDM push a gateway
 *                            accepted (KEY the signing key's name, NONCE its
 *                            replay id), leased to its replay window's end
 *   P endpoint/DEVICE        {"endpoint":"ADDR:PORT","seen":MS,"node":S}
 *                            where the device's WireGuard packets last
 *                            came from, as the gateway holding it saw it
 *   P alloc/4/ADDRESS        {"device":S,"node":S}: a pool address given
 *   P alloc/6/ADDRESS        to a device, written create-if-absent (CAS at
 *                            mod_revision 0): the first gateway wins it
 *
 * Values come from other gateways and from whoever can write to etcd:
 * hostile input. Every decoder checks types, ranges and sizes and says what
 * was wrong; nothing here trusts a length it did not measure.
 */
#ifndef XB_CLUSTER_KV_H
#define XB_CLUSTER_KV_H

#include "common/prefix.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_CLUSTER_KV_NAME_MAX	64	/* a device's or node's name, with the NUL */
#define XB_CLUSTER_KV_SET_MAX	72	/* a learned set's name, with the NUL */
#define XB_CLUSTER_KV_BODY_MAX	(64u << 10)	/* a report body: the endpoint's own limit */
/* Learned destinations' leases: one per bucket of expiry times this wide,
 * lasting to the bucket's end, so that a gateway holds a few leases, not
 * one per destination. */
#define XB_CLUSTER_KV_BUCKET_S	60

enum xb_cluster_kv_kind { XB_CLUSTER_KV_OTHER, XB_CLUSTER_KV_POSTURE, XB_CLUSTER_KV_LEARNED,
			  XB_CLUSTER_KV_ENDPOINT, XB_CLUSTER_KV_MDM, XB_CLUSTER_KV_ALLOC };
#define XB_CLUSTER_KV_NONCE_MAX	65	/* an MDM push's nonce, with the NUL */
#define XB_CLUSTER_KV_ATTRS_MAX	64	/* attributes in one push */

struct xb_cluster_kv_key {
	enum xb_cluster_kv_kind kind;
	char device[XB_CLUSTER_KV_NAME_MAX];	/* posture, endpoint */
	char set[XB_CLUSTER_KV_SET_MAX];	/* learned; mdm: the key's name */
	char nonce[XB_CLUSTER_KV_NONCE_MAX];	/* mdm */
	int family;				/* learned, alloc: AF_INET, AF_INET6 */
	uint8_t addr[16];
};

/* The key of kind for what k names, under prefix; its length, or 0 when it
 * does not fit len (a NUL ends it). */
size_t xb_cluster_kv_key_make(char *buf, size_t len, const char *prefix,
			      const struct xb_cluster_kv_key *k);
/* Parses a key under prefix (klen bytes, not NUL-terminated). OTHER for a
 * key of a kind this version does not know (skipped: a newer gateway may
 * write it); -EINVAL with err for a known kind that is malformed. */
int xb_cluster_kv_key_parse(const char *prefix, const char *key, size_t klen,
			    struct xb_cluster_kv_key *out, char *err, size_t errlen);

struct xb_cluster_kv_posture {
	int64_t seq;
	int64_t received_ms;			/* Unix ms the writer accepted it */
	char node[XB_CLUSTER_KV_NAME_MAX];
	char *body;				/* malloc'ed, NUL-terminated */
	size_t body_len;
};
struct xb_cluster_kv_learned {
	int64_t expires;			/* Unix s */
	uint32_t fp;				/* the rule's domains' fingerprint */
	char node[XB_CLUSTER_KV_NAME_MAX];
};
struct xb_cluster_kv_endpoint {
	union xb_sockaddr ep;
	int64_t seen_ms;
	char node[XB_CLUSTER_KV_NAME_MAX];
};

struct xb_cluster_kv_mdm {
	char device[XB_CLUSTER_KV_NAME_MAX];
	int64_t until;				/* Unix s: the replay window's end */
	char node[XB_CLUSTER_KV_NAME_MAX];
	json_t *attrs;				/* [{"key","value","expires"}], checked; owned */
};

struct xb_cluster_kv_alloc {
	char device[XB_CLUSTER_KV_NAME_MAX];
	char node[XB_CLUSTER_KV_NAME_MAX];
};

/* Encoders: a malloc'ed NUL-terminated JSON text, NULL without memory. */
char *xb_cluster_kv_posture_encode(const struct xb_cluster_kv_posture *v);
char *xb_cluster_kv_learned_encode(const struct xb_cluster_kv_learned *v);
char *xb_cluster_kv_endpoint_encode(const struct xb_cluster_kv_endpoint *v);
char *xb_cluster_kv_mdm_encode(const struct xb_cluster_kv_mdm *v);
/* Decoders: 0, or -EINVAL with err. posture: out->body is the caller's
 * to free (xb_cluster_kv_posture_clear). */
int xb_cluster_kv_posture_decode(const char *val, size_t len, struct xb_cluster_kv_posture *out,
				 char *err, size_t errlen);
void xb_cluster_kv_posture_clear(struct xb_cluster_kv_posture *v);
int xb_cluster_kv_learned_decode(const char *val, size_t len, struct xb_cluster_kv_learned *out,
				 char *err, size_t errlen);
int xb_cluster_kv_endpoint_decode(const char *val, size_t len, struct xb_cluster_kv_endpoint *out,
				  char *err, size_t errlen);
char *xb_cluster_kv_alloc_encode(const struct xb_cluster_kv_alloc *v);
int xb_cluster_kv_alloc_decode(const char *val, size_t len, struct xb_cluster_kv_alloc *out,
			       char *err, size_t errlen);
/* out->attrs is the caller's (json_decref). */
int xb_cluster_kv_mdm_decode(const char *val, size_t len, struct xb_cluster_kv_mdm *out, char *err,
			     size_t errlen);

/* What a gateway does with a device's report seq when the store and its
 * copy meet (a watch event, a CAS answer, a resync after a reconnect):
 *
 *   ADOPT     the store's is newer: apply it locally (it was accepted
 *             elsewhere), keep nothing of ours
 *   PUBLISH   ours is newer (accepted while etcd was away, above the copy's
 *             high-water): write it by CAS over the store's
 *   SAME      equal seqs: nothing to do (the one the store has won)
 *
 * Higher seq wins; a report the store has never seen (has_store false) is
 * published. A device's agent numbers its reports, so the higher seq is the
 * newer report wherever it was accepted. */
enum xb_cluster_kv_rule { XB_CLUSTER_KV_ADOPT, XB_CLUSTER_KV_PUBLISH, XB_CLUSTER_KV_SAME };
enum xb_cluster_kv_rule xb_cluster_kv_reconcile(int64_t mine, bool has_mine, int64_t store,
						bool has_store);

/* The lease bucket of an expiry: its end, Unix s (a multiple of
 * XB_CLUSTER_KV_BUCKET_S strictly after expires). */
int64_t xb_cluster_kv_bucket(int64_t expires);

#endif
