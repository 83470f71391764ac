/* The gateways' shared state on etcd (docs/ha.md, "Shared state").
 *
 *   copy       every key under the cluster's prefix, decoded, fed by one
 *              watch (a full resync when its revision was compacted); the
 *              data path, DNS answers and posture checks read the daemon's
 *              own state, never etcd
 *   posture    a report is accepted once across the cluster: after the
 *              endpoint's local checks the gate writes it by compare-and-
 *              swap on the device's key (the copy's mod_revision); the
 *              device's answer waits for the CAS. Lost to a newer one: 409.
 *              A report another gateway accepted is applied here through
 *              ops->posture_remote (stored, evaluated, enforced)
 *   learned    destinations DNS answers taught this gateway are published
 *              with a lease per expiry bucket (cluster_kv.h); others' are
 *              put into this gateway's sets through ops->learned_remote
 *   mdm        MDM pushes a gateway accepted (attributes, replay id),
 *              leased to the replay window's end; others' applied through
 *              ops->mdm_remote
 *   endpoints  each device's last endpoint, read from the device
 *              interface every tick, published on change; the takeover
 *              reads them with xb_cluster_foreach_endpoint()
 *
 * Fail-static: without etcd the gateway forwards and enforces from its
 * own state; a report whose seq is above both the store's and the copy's
 * high-water is accepted, kept and published by CAS when etcd answers
 * again (the higher seq wins: cluster_kv.h); the copy is refreshed by the
 * watch's resync. Values from the store are hostile: a bad one is logged
 * and skipped, never applied. One thread: the daemon's.
 */
#ifndef XB_CLUSTER_H
#define XB_CLUSTER_H

#include "common/prefix.h"
#include "gateway/cluster/cluster_kv.h"
#include "policy/policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct xb_cluster;

/* What the cluster asks of the daemon (posture, DNS, the device
 * interface); err gets one line when a call returns < 0. */
struct xb_cluster_ops {
	/* xb_posture_rt_remote(): 0 applied, 1 not newer, < 0 refused. */
	int (*posture_remote)(void *ctx, const char *device, int64_t seq, int64_t received_ms,
			      const char *body, size_t len, char *err, size_t errlen);
	/* xb_posture_rt_gate_done(): the verdict on a held report. */
	void (*gate_done)(void *ctx, uint64_t id, unsigned status, const char *msg);
	/* xb_dns_service_learn_remote(): 0 put, 1 expired, < 0 refused. */
	int (*learned_remote)(void *ctx, const char *set, int family, const uint8_t *addr,
			      uint32_t fp, int64_t expires_wall, char *err, size_t errlen);
	/* xb_posture_rt_remote_push(): an MDM push another gateway accepted. */
	int (*mdm_remote)(void *ctx, const char *device, const char *key, const char *nonce,
			  int64_t until, json_t *attrs, char *err, size_t errlen);
	/* Each device's endpoint on the device interface now: fn for every
	 * one that has one. < 0 when the interface cannot be read. */
	int (*endpoints)(void *ctx, void (*fn)(void *arg, const char *device,
					       const union xb_sockaddr *ep), void *arg);
	/* The copy has been filled for the first time (NULL: not told). */
	void (*synced)(void *ctx);
};

/* Connect to cfg's endpoints (cfg must outlive the cluster, or until
 * xb_cluster_rebind) and start the watch. The gateway runs whether or not
 * etcd answers. NULL with the reason logged. */
struct xb_cluster *xb_cluster_open(const struct xb_cluster_cfg *cfg, const struct xb_cluster_ops *ops,
				   void *ctx);
/* A reload: the same connection when the endpoints, prefix, node and
 * timeout are unchanged (0), else -1: the caller closes and reopens. */
int xb_cluster_rebind(struct xb_cluster *c, const struct xb_cluster_cfg *cfg);
/* The etcd client's fd for the daemon's epoll set; dispatch when readable. */
int xb_cluster_fd(const struct xb_cluster *c);
void xb_cluster_dispatch(struct xb_cluster *c);
/* Every second: endpoints read and published on change; reports accepted
 * while etcd was away published. */
void xb_cluster_tick(struct xb_cluster *c);

/* The posture gate (xb_posture_rt_gate_fn, ctx the cluster). */
int xb_cluster_gate(void *ctx, const char *device, int64_t seq, const char *body, size_t len,
		    uint64_t id, char *err, size_t errlen);
/* xb_dns_service_learn_fn (ctx the cluster): publish a learned destination. */
void xb_cluster_learned(void *ctx, const char *set, int family, const uint8_t *addr, uint32_t fp,
			int64_t expires_wall);

/* Publish an MDM push this gateway accepted (key: the signing key's name,
 * nonce its replay id, until the replay window's end, Unix s; attrs
 * [{"key","value","expires"}]), leased to until's bucket. */
void xb_cluster_mdm(struct xb_cluster *c, const char *device, const char *key, const char *nonce,
		    int64_t until, json_t *attrs);

/* Every device's last endpoint in the copy (seen_ms: Unix ms its gateway
 * saw it). fn returning non-zero stops the walk and is returned. */
int xb_cluster_foreach_endpoint(struct xb_cluster *c,
				int (*fn)(void *ctx, const char *device, const union xb_sockaddr *ep,
					  int64_t seen_ms),
				void *ctx);

/* Pool allocations (docs/ha.md, "Pool allocations"). Every alloc/ key of
 * the copy whose value decoded: the store's address of each device (fn
 * non-zero stops the walk and is returned). */
int xb_cluster_foreach_alloc(struct xb_cluster *c,
			     int (*fn)(void *ctx, const char *device, int family, const uint8_t *addr),
			     void *ctx);
/* The pool addresses of p now in force (fixed ones are the operator's, not
 * shared): each written create-if-absent (CAS at mod_revision 0) while the
 * store has none for its address, now and whenever etcd answers. One the
 * store gives another device is a conflict: logged, counted, and kept
 * until the next reload gives the device another address. */
void xb_cluster_set_allocations(struct xb_cluster *c, const struct xb_policy *p);

/* `xborderctl cluster prune' (cluster_prune.c, docs/ha.md "Pool
 * allocations"): the alloc/ keys naming a device this gateway's running
 * policy does not have, deleted each by compare-and-delete at the
 * mod_revision read (a key written again meanwhile stays); keys or values
 * that do not decode, and devices in_policy() knows, are kept. in_policy
 * runs when the read's answer arrives, in the loop's thread: it must ask
 * the policy running then (a reload may have replaced the one running at
 * the start).
 *
 * It never waits: xb_cluster_prune_start() opens a client of its own on
 * cfg's endpoints and prefix (copied: a reload does not move a running
 * prune) and sends the read; the caller polls xb_cluster_prune_fd() (an
 * epoll fd holding the client's fd and the deadline's timerfd) and calls
 * xb_cluster_prune_process(). The read has wait_ms, the deletes wait_ms
 * more; done() then runs once, in xb_cluster_prune_process(), with
 * rc 0 and result (a new reference) {"dry_run", "revision", "keys": [{"key",
 * "action", "reason", "mod_revision", "device", "node"}], "deleted",
 * "would_delete", "kept", "changed", "errors"}, or rc < 0 and err (one
 * line; "nothing deleted" when the read failed). action: deleted,
 * would_delete (dry_run), kept, changed (not deleted: written or deleted
 * since the read), error. After done() the client starts nothing more
 * and closes as soon as its worker is not inside a request
 * (xb_etcd_close_if_idle, retried every 100 ms; a request ends within the
 * client's request timeout, capped to wait_ms); then xb_cluster_prune_finished() is true and the caller closes
 * the op. xb_cluster_prune_close() before that cancels: done() gets
 * -ECANCELED if it had not run, and the close may wait for a request in
 * flight (wait_ms at most) — for the daemon's shutdown. */
#define XB_CLUSTER_PRUNE_WAIT_MS 4000
typedef bool (*xb_cluster_prune_in_policy_fn)(void *ctx, const char *device);
typedef void (*xb_cluster_prune_done_fn)(void *ctx, int rc, json_t *result, const char *err);
struct xb_cluster_prune_op;
/* NULL with err (nothing sent or nothing deleted) when it cannot start. */
struct xb_cluster_prune_op *xb_cluster_prune_start(const struct xb_cluster_cfg *cfg, bool dry_run,
						   unsigned wait_ms,
						   xb_cluster_prune_in_policy_fn in_policy,
						   void *ctx, xb_cluster_prune_done_fn done,
						   void *done_ctx, char *err, size_t errlen);
int xb_cluster_prune_fd(const struct xb_cluster_prune_op *op);
void xb_cluster_prune_process(struct xb_cluster_prune_op *op);
bool xb_cluster_prune_finished(const struct xb_cluster_prune_op *op);
void xb_cluster_prune_close(struct xb_cluster_prune_op *op);

/* Its steps, non-blocking, for tests that drive a client themselves and
 * change the store between the read and the deletes. */
enum xb_cluster_prune_what { XB_PRUNE_DELETED, XB_PRUNE_WOULD_DELETE, XB_PRUNE_KEPT,
			     XB_PRUNE_CHANGED, XB_PRUNE_ERROR };
struct xb_cluster_prune;
struct xb_cluster_prune_key {
	char *key, *shown;		/* as stored; printable (hostile bytes as '?') */
	size_t klen;
	int64_t mod_rev;
	enum xb_cluster_prune_what what;
	bool answered;
	struct xb_cluster_prune *owner;	/* for the delete's callback */
	char device[XB_CLUSTER_KV_NAME_MAX], node[XB_CLUSTER_KV_NAME_MAX];
	char why[256];
};
struct xb_cluster_prune {
	const char *prefix;		/* the cluster's, "/xborder/NAME/" */
	bool dry_run;
	unsigned wait_ms;		/* for the read; for the deletes, all together */
	xb_cluster_prune_in_policy_fn in_policy;
	void *ctx;			/* in_policy's */
	int64_t revision;		/* the store's at the read */
	struct xb_cluster_prune_key *v;
	size_t n, cap;
	bool read_done;			/* the read's answer came: read_err, read_msg */
	int read_err;
	char read_msg[240];
	size_t cads_sent, cads_done;
};
struct xb_etcd;
/* Sends the read of every key under prefix "alloc/"; its answer, when e's
 * callbacks run, judges them and sets read_done. 0 or < 0 with err. */
int xb_cluster_prune_read_start(struct xb_etcd *e, struct xb_cluster_prune *pr, char *err,
				size_t errlen);
/* Sends a compare-and-delete at its mod_revision for each key judged
 * XB_PRUNE_DELETED; each answer sets the key's what and why and counts in
 * cads_done. Close e before xb_cluster_prune_free() (callbacks still
 * queued point into pr). */
void xb_cluster_prune_delete_start(struct xb_etcd *e, struct xb_cluster_prune *pr);
/* Keys still XB_PRUNE_DELETED with no answer become errors ("run the prune
 * again"): the deadline passed. */
void xb_cluster_prune_unanswered(struct xb_cluster_prune *pr);
json_t *xb_cluster_prune_json(const struct xb_cluster_prune *pr);
void xb_cluster_prune_free(struct xb_cluster_prune *pr);

/* Whether the copy has been filled from the store (its first range). */
bool xb_cluster_synced(const struct xb_cluster *c);

/* For `xborderctl status': up, members, revision, keys, counters. */
json_t *xb_cluster_status(const struct xb_cluster *c);
void xb_cluster_close(struct xb_cluster *c);

#endif
