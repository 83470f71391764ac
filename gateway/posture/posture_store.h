/* The posture store: what the posture service must not forget across a
 * restart or a crash, in one SQLite database under the state directory
 * (docs/posture.md, "Storage").
 *
 *   devices      a device's last accepted report sequence number
 *   reports      its last report (and, if asked, a bounded history)
 *   attributes   attributes an MDM pushed for it, with expiry and source key
 *   transitions  posture profile changes (pass/fail and why), bounded per device
 *   mdm_nonces   the MDM replay cache: (key, nonce) pairs until their push's
 *                time leaves the window
 *
 * Durability: the database runs in WAL mode with synchronous=NORMAL. A
 * write returns once its transaction is committed to the WAL file, so a
 * process crash (kill -9) right after loses nothing; a power loss may lose
 * the last transactions since the last checkpoint (devices then report
 * again, and the nonces make a replayed old report useless anyway).
 *
 * Writes outside xb_posture_store_begin()/xb_posture_store_commit() are each their own
 * transaction. The caller batches by wrapping one event-loop round's writes
 * in begin/commit, and acknowledges nothing before the commit returned 0.
 *
 * Times are Unix milliseconds (int64). Not thread-safe: one thread uses it.
 */
#ifndef XB_POSTURE_STORE_H
#define XB_POSTURE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_POSTURE_STORE_DEFAULT_PATH "/var/lib/xborder/posture.db"
#define XB_POSTURE_STORE_SCHEMA 2		/* PRAGMA user_version this code writes */
#define XB_POSTURE_STORE_BUSY_MS 2000		/* wait this long on a lock (an operator's sqlite3) */
#define XB_POSTURE_STORE_REPORTS 1		/* reports kept per device, by default */
#define XB_POSTURE_STORE_TRANSITIONS 100	/* transitions kept per device, by default */

/* xb_posture_store_open() flags. */
#define XB_POSTURE_STORE_MOVE_ASIDE 0x1	/* a corrupt file is renamed and a new one started */

struct xb_posture_store;

struct xb_posture_store_attr {
	const char *device, *key;
	const char *value;	/* JSON text */
	int64_t expires_at;	/* 0: never */
	const char *source;	/* the key that signed the push */
};

struct xb_posture_store_transition {
	const char *device, *profile;
	int64_t at;
	const char *from, *to, *reason;
};

/* Open or create the database at path and bring its schema to
 * XB_POSTURE_STORE_SCHEMA. Fails (NULL, err filled with the path and the reason)
 * when the file cannot be opened, is from a newer xborder, or is corrupt.
 * A corrupt file (not a database, or failing PRAGMA quick_check) with
 * XB_POSTURE_STORE_MOVE_ASIDE is renamed to PATH.corrupt-YYYYMMDDTHHMMSS (with its
 * -wal and -shm), a warning naming it is logged, and a new empty store is
 * opened: nothing is ever deleted. An unreadable file is never moved. */
struct xb_posture_store *xb_posture_store_open(const char *path, unsigned flags, char *err, size_t errlen);
/* How many reports and transitions to keep per device (each at least 1). */
void xb_posture_store_set_limits(struct xb_posture_store *s, unsigned reports, unsigned transitions);
void xb_posture_store_close(struct xb_posture_store *s);
/* The last SQLite error, for messages. */
const char *xb_posture_store_error(const struct xb_posture_store *s);

/* One transaction around several writes; 0 or -1. After a failed write
 * inside it, call xb_posture_store_rollback(): nothing of it is kept. */
int xb_posture_store_begin(struct xb_posture_store *s);
int xb_posture_store_commit(struct xb_posture_store *s);
void xb_posture_store_rollback(struct xb_posture_store *s);
/* Inside a transaction, one request's writes: mark before them, then
 * unmark keeping them, or undoing them alone (the rest of the transaction
 * stays). 0, or -1 when the transaction is gone (roll it back). */
int xb_posture_store_mark(struct xb_posture_store *s);
int xb_posture_store_unmark(struct xb_posture_store *s, bool keep);

/* 1 and *seq when the device has an accepted report, 0 when not, -1 on error. */
int xb_posture_store_last_seq(struct xb_posture_store *s, const char *device, int64_t *seq);
/* Store a report (body: JSON text) and make seq the device's last; older
 * reports beyond the limit are dropped. 0 or -1. The caller has checked seq. */
int xb_posture_store_put_report(struct xb_posture_store *s, const char *device, int64_t seq,
			 int64_t received_at, const char *body);
/* Set (replace) one attribute. 0 or -1. */
int xb_posture_store_put_attr(struct xb_posture_store *s, const struct xb_posture_store_attr *a);
/* Append a transition; the device's oldest beyond the limit are dropped. */
int xb_posture_store_put_transition(struct xb_posture_store *s, const struct xb_posture_store_transition *t);
/* Remember an MDM push's (key, nonce) until `until' (Unix ms). 0 or -1. */
int xb_posture_store_put_nonce(struct xb_posture_store *s, const char *key, const char *nonce,
			int64_t until);
/* Delete attributes expired at now, and nonces remembered until before
 * now. Returns how many rows, or -1. */
int xb_posture_store_prune(struct xb_posture_store *s, int64_t now);

/* Iteration for the daemon's start (it re-evaluates from these). A callback
 * returning non-zero stops the walk; that value is returned. -1 on error.
 * Strings are valid during the callback only. */
typedef int (*xb_posture_store_report_fn)(void *ctx, const char *device, int64_t seq,
				   int64_t received_at, const char *body);
typedef int (*xb_posture_store_attr_fn)(void *ctx, const struct xb_posture_store_attr *a);
typedef int (*xb_posture_store_transition_fn)(void *ctx, const struct xb_posture_store_transition *t);
typedef int (*xb_posture_store_nonce_fn)(void *ctx, const char *key, const char *nonce,
				  int64_t until);
/* Each device's last report, by device name. */
int xb_posture_store_foreach_report(struct xb_posture_store *s, xb_posture_store_report_fn fn, void *ctx);
/* Attributes not expired at now, by device and key. */
int xb_posture_store_foreach_attr(struct xb_posture_store *s, int64_t now, xb_posture_store_attr_fn fn, void *ctx);
/* MDM nonces remembered until now or later. */
int xb_posture_store_foreach_nonce(struct xb_posture_store *s, int64_t now, xb_posture_store_nonce_fn fn, void *ctx);
/* A device's transitions, oldest first (device NULL: every device's). */
int xb_posture_store_foreach_transition(struct xb_posture_store *s, const char *device,
				 xb_posture_store_transition_fn fn, void *ctx);

#endif
