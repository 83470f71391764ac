/* Internals of the cluster, shared by cluster.c (the copy, posture, life)
 * and cluster_share.c (learned destinations, MDM pushes, endpoints). Not
 * for other modules. */
#ifndef XB_CLUSTER_INT_H
#define XB_CLUSTER_INT_H

#include "gateway/cluster/cluster.h"
#include "gateway/cluster/cluster_kv.h"
#include "gateway/cluster/etcd.h"

#include "common/log.h"

#define BUCKETS		(1u << 16)	/* hash chains of the copy */
#define KEY_MAX		512
#define CAS_TRIES	3		/* a report's CAS lost to a stale copy, retried */
#define STATUS_CONFLICT	409
#define STATUS_BUSY	503

/* One key of the copy, decoded. */
struct entry {
	struct entry *next;
	char *key;
	int64_t mod_rev;
	struct xb_cluster_kv_key k;
	bool valid;			/* the value decoded; else skipped */
	bool mark;			/* a resync saw it */
	char node[XB_CLUSTER_KV_NAME_MAX];
	int64_t seq;			/* posture */
	struct xb_cluster_kv_learned learned;
	struct xb_cluster_kv_endpoint ep;
	struct xb_cluster_kv_alloc alloc;
};

/* A request in flight (its callback's context), or a report accepted
 * while etcd was away, waiting to be published. */
enum op_type { OP_GATE, OP_PUBLISH, OP_LEASE, OP_ALLOC, OP_MDM };
struct op {
	struct op *prev, *next;
	struct xb_cluster *c;
	enum op_type type;
	bool in_flight;
	uint64_t id;			/* the gate's */
	char device[XB_CLUSTER_KV_NAME_MAX];
	int64_t seq;
	char *val;			/* the encoded value */
	unsigned tries;
	int64_t bucket;			/* OP_LEASE: the bucket's end; OP_MDM: until */
	char *key;			/* OP_MDM */
};

/* Learned destinations' leases, one per expiry bucket. */
struct put { struct put *next; char *key, *val; int64_t until; bool mdm; };
#define MDM_WAITING_MAX	4096	/* pushes kept while etcd is away; more are not published */
struct bucket {
	int64_t end;			/* Unix s */
	int64_t lease;			/* 0: not granted yet */
	bool granting;
	struct put *q;			/* waiting for the lease */
};

struct xb_cluster {
	const struct xb_cluster_cfg *cfg;
	const struct xb_cluster_ops *ops;
	void *ctx;
	struct xb_etcd *etcd;
	bool up, synced, ranging, watching;
	int64_t revision;
	struct entry **tab;
	size_t n_keys;
	struct op ops_list;		/* every op: in flight, or unpublished */
	struct bucket *bk;
	size_t n_bk;
	struct put *mdm_wait;		/* pushes accepted while etcd was away */
	size_t n_mdm_wait;
	struct want *want;		/* this gateway's pool addresses (cluster_alloc.c) */
	size_t n_want;
	struct log_rl rl;
	struct {
		uint64_t applied, learned, pushes, bad, cas_lost, refused, accepted_down, published;
		uint64_t alloc_conflicts, mdm_published;
	} stat;
};

int64_t cluster_now_ms(void);
/* A pool address this gateway gave a device, to be in the store. */
struct want {
	char device[XB_CLUSTER_KV_NAME_MAX];
	int family;
	uint8_t addr[16];
	bool warned;			/* its conflict logged */
};

/* The copy's entry of k, or NULL. */
struct entry *cluster_find(struct xb_cluster *c, const struct xb_cluster_kv_key *k);
/* A kv from the store (a CAS's answer) into the copy, as a watch event. */
void cluster_put(struct xb_cluster *c, const struct xb_etcd_kv *kv);
/* cluster_alloc.c: an alloc/ key's value into the copy e; the wanted
 * addresses written create-if-absent when missing from the store. */
void cluster_alloc_put(struct xb_cluster *c, struct entry *e, const struct xb_etcd_kv *kv);
void cluster_alloc_publish(struct xb_cluster *c);
/* The copy's entry of key (klen bytes), made when new; NULL without memory. */
struct entry *cluster_find_or_add(struct xb_cluster *c, const char *key, size_t n);
struct op *cluster_op_new(struct xb_cluster *c, enum op_type t);
void cluster_op_free(struct op *o);
/* cluster_share.c */
void cluster_buckets_prune(struct xb_cluster *c);
void cluster_buckets_free(struct xb_cluster *c);
/* MDM pushes accepted while etcd was away, published once it answers. */
void cluster_mdm_publish_waiting(struct xb_cluster *c);
/* ops->endpoints' callback: publish device's endpoint when it changed. */
void cluster_endpoint_seen(void *arg, const char *device, const union xb_sockaddr *ep);

#endif
