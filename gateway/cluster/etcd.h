/* The etcd v3 client of xborderd (docs/ha.md, "The etcd client").
 *
 * etcd 3.4 (Debian's etcd-server) through its JSON gRPC gateway under /v3/
 * (keys and values base64 in JSON), with libcurl and jansson. It never
 * blocks the daemon's loop: requests run on the client's own threads with
 * blocking curl handles and timeouts — one worker for unary requests in FIFO
 * order (and lease keepalives), one thread per watch stream; results and
 * watch events come back to the loop thread through a queue and an eventfd
 * (xb_etcd_fd, xb_etcd_dispatch), in the order the threads produced them.
 *
 * Members are tried in turn, starting with the one that answered last. A
 * request goes to the next member only when it was not sent (no connection
 * within dial_timeout_ms, refused) or etcd said it was not applied (gRPC
 * Unavailable: no leader); one that was sent and timed out is not resent (a
 * put or a txn may have been applied). The whole request, every member
 * tried, takes at most request_timeout_ms.
 *
 * err in a result: 0; -ETIMEDOUT (sent, no answer in time, or etcd timed
 * out); -ECONNREFUSED (no member answered, or none passed the TLS checks:
 * msg has libcurl's reason, e.g. "SSL certificate problem: ..."); -EPROTO (an answer that is not
 * what etcd sends; msg says what); -ENOENT (etcd: not found, e.g. an unknown
 * lease); -EIO (any other error etcd answered; msg has its message).
 */
#ifndef XB_ETCD_H
#define XB_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xb_etcd;
struct xb_etcd_opts {
	const char *const *endpoints; size_t n_endpoints;   /* "http://198.51.100.1:2379", ... tried in turn */
	unsigned request_timeout_ms;                        /* per request, default 1000 */
	unsigned dial_timeout_ms;                           /* default 500 */
	/* Added: the watch's reconnect backoff, doubling from 50 ms up to this
	 * (default 2000). */
	unsigned backoff_max_ms;
	/* Added: with no successful request for this long, the worker reads
	 * one key (a quorum read) to see the cluster still answers (default
	 * 3000); while down it does so every 500 ms, and once at open. */
	unsigned probe_interval_ms;
	/* TLS, for https:// endpoints (all or none): the CA file (PEM) the
	 * members' certificates must chain to — the only one trusted, the
	 * system's store is not used — and, for etcd's --client-cert-auth, the
	 * client's certificate and key (PEM, both or neither). The peer's
	 * certificate and host (its subjectAltName: the endpoint's IP or name)
	 * are always verified. Files are read at each new connection. */
	const char *ca_file, *cert_file, *key_file;
};
/* Results handed to callbacks (valid during the callback only). key and val
 * are NUL-terminated (klen, vlen do not count it). */
struct xb_etcd_kv { const char *key; size_t klen; const char *val; size_t vlen;
		    int64_t create_rev, mod_rev, version, lease; };
struct xb_etcd_result {
	int err;                 /* 0, or -errno: -ETIMEDOUT, -ECONNREFUSED (no member answered), -EPROTO (bad answer) */
	const char *msg;         /* for logs when err != 0 */
	int64_t revision;        /* the store's revision in the answer's header */
	bool succeeded;          /* txn: the compares held */
	const struct xb_etcd_kv *kvs; size_t n_kvs;   /* range, and a txn's range on failure (see txn) */
	int64_t lease_id, ttl;   /* lease grant */
};
typedef void (*xb_etcd_fn)(void *ctx, const struct xb_etcd_result *r);

enum xb_etcd_ev_type { XB_ETCD_PUT, XB_ETCD_DELETE };
struct xb_etcd_event { enum xb_etcd_ev_type type; struct xb_etcd_kv kv; };
/* A watch's events in one batch (one watch response), or, after a reconnect whose revision was
 * compacted, resync=true with the whole prefix's current kvs as PUTs (the caller replaces its copy). */
typedef void (*xb_etcd_watch_fn)(void *ctx, const struct xb_etcd_event *ev, size_t n, bool resync,
				 int64_t revision);
/* Connection state to the loop: up=true once a member answers, false when none does.
 * Reported on changes only; "answers" means a request succeeded or a watch
 * was created, "none does" that a request failed for -ETIMEDOUT or
 * -ECONNREFUSED or a watch found no member to be created on. The worker's
 * probe (probe_interval_ms) sees to it that an idle client notices too. */
typedef void (*xb_etcd_state_fn)(void *ctx, bool up, const char *why);

struct xb_etcd *xb_etcd_open(const struct xb_etcd_opts *o, xb_etcd_state_fn state, void *ctx,
			     char *err, size_t errlen);
void xb_etcd_close(struct xb_etcd *e);          /* joins threads; pending callbacks are dropped */
/* Close e only if that does not wait: its worker is between requests (a
 * request in flight, the worker's probe or a keepalive would hold
 * xb_etcd_close() up to request_timeout_ms) and it has no watch. true:
 * closed (requests still queued are dropped unsent, pending callbacks too);
 * false: without a watch, the worker now starts nothing more and ends after
 * what it is doing (request_timeout_ms at most) - call again; with one, e
 * is untouched. */
bool xb_etcd_close_if_idle(struct xb_etcd *e);
int xb_etcd_fd(const struct xb_etcd *e);        /* readable when xb_etcd_dispatch has work */
void xb_etcd_dispatch(struct xb_etcd *e);       /* in the loop thread: runs queued callbacks */

/* Each returns 0 (queued; cb later runs exactly once in the loop thread) or -errno now.
 * -EINVAL: an empty key, a key over 64 KiB, a value over 1.5 MiB (etcd's
 * request limit), a ttl below 1. cb may be NULL. */
int xb_etcd_put(struct xb_etcd *e, const char *key, size_t klen, const char *val, size_t vlen,
		int64_t lease, xb_etcd_fn cb, void *ctx);
int xb_etcd_delete(struct xb_etcd *e, const char *key, size_t klen, xb_etcd_fn cb, void *ctx);
/* prefix=true: every key starting with key. */
int xb_etcd_range(struct xb_etcd *e, const char *key, size_t klen, bool prefix, xb_etcd_fn cb, void *ctx);
/* Compare-and-swap: put key=val (lease 0) only if the key's mod_revision is mod_rev
 * (0: the key must not exist). On failure r->succeeded=false and r->kvs holds the key's current kv. */
int xb_etcd_cas(struct xb_etcd *e, const char *key, size_t klen, int64_t mod_rev,
		const char *val, size_t vlen, int64_t lease, xb_etcd_fn cb, void *ctx);
/* Compare-and-delete: delete key only if its mod_revision is mod_rev (>= 1).
 * On failure r->succeeded=false and r->kvs holds the key's current kv (none:
 * it is gone). */
int xb_etcd_cad(struct xb_etcd *e, const char *key, size_t klen, int64_t mod_rev, xb_etcd_fn cb,
		void *ctx);
/* A lease of ttl seconds; the client keeps it alive (keepalive at ttl/3) until revoked or closed;
 * cb gets r->lease_id. */
int xb_etcd_lease_grant(struct xb_etcd *e, int64_t ttl, bool keepalive, xb_etcd_fn cb, void *ctx);
int xb_etcd_lease_revoke(struct xb_etcd *e, int64_t lease, xb_etcd_fn cb, void *ctx);
/* One watch on a prefix from revision start (0: now); resumes after a reconnect from the last
 * revision seen + 1, resyncs (range) when that was compacted. Each watch is
 * one stream on a thread of its own; at most XB_ETCD_MAX_WATCHES per client
 * (-ENOSPC). The stream asks for a member with a leader (etcd's
 * "hasleader"), so a member cut off from the quorum ends it and the client
 * moves on. */
int xb_etcd_watch(struct xb_etcd *e, const char *prefix, size_t plen, int64_t start,
		  xb_etcd_watch_fn fn, void *ctx);
#define XB_ETCD_MAX_WATCHES 8

/* Added: the index in opts.endpoints of the member the unary requests
 * (watch=false) or the first watch (watch=true) last used; -1 before any. */
int xb_etcd_endpoint(const struct xb_etcd *e, bool watch);

#endif
