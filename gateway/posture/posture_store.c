/* The posture store; see posture_store.h and docs/posture.md ("Storage").
 *
 * Every statement is prepared once at open. Schema changes are explicit
 * migrations: migrations[i] takes user_version i to i + 1, each in its own
 * transaction together with the new user_version, so a crash mid-migration
 * leaves the old schema whole.
 */
#include "gateway/posture/posture_store.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const migrations[XB_POSTURE_STORE_SCHEMA] = {
	/* 0 -> 1 */
	"CREATE TABLE devices ("
	"  device TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, last_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE reports ("
	"  device TEXT NOT NULL, seq INTEGER NOT NULL, received_at INTEGER NOT NULL,"
	"  body TEXT NOT NULL, PRIMARY KEY (device, seq)"
	") WITHOUT ROWID;"
	"CREATE TABLE attributes ("
	"  device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY (device, key)"
	") WITHOUT ROWID;"
	"CREATE INDEX attributes_expiry ON attributes (expires_at) WHERE expires_at > 0;"
	"CREATE TABLE transitions ("
	"  id INTEGER PRIMARY KEY, device TEXT NOT NULL, profile TEXT NOT NULL,"
	"  at INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
	"  reason TEXT NOT NULL"
	");"
	"CREATE INDEX transitions_device ON transitions (device, id);",
	/* 1 -> 2: the MDM replay cache, so that a captured push cannot be
	 * replayed after a restart while its time is still in the window. */
	"CREATE TABLE mdm_nonces ("
	"  key TEXT NOT NULL, nonce TEXT NOT NULL, until INTEGER NOT NULL,"
	"  PRIMARY KEY (key, nonce)"
	") WITHOUT ROWID;",
};

enum {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_MARK, ST_UNDO, ST_RELEASE, ST_SEQ, ST_DEVICE, ST_REPORT, ST_REPORT_TRIM,
	ST_ATTR, ST_TRANS, ST_TRANS_TRIM, ST_PRUNE, ST_LAST_REPORTS, ST_ATTRS,
	ST_TRANS_DEV, ST_TRANS_ALL, ST_NONCE, ST_NONCES, ST_NONCE_PRUNE, ST_N
};

static const char *const sql[ST_N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_MARK] = "SAVEPOINT req",
	[ST_UNDO] = "ROLLBACK TO req",
	[ST_RELEASE] = "RELEASE req",
	[ST_SEQ] = "SELECT last_seq FROM devices WHERE device = ?1",
	[ST_DEVICE] = "INSERT INTO devices (device, last_seq, last_at) VALUES (?1, ?2, ?3)"
		      " ON CONFLICT (device) DO UPDATE SET last_seq = ?2, last_at = ?3",
	[ST_REPORT] = "INSERT OR REPLACE INTO reports (device, seq, received_at, body)"
		      " VALUES (?1, ?2, ?3, ?4)",
	[ST_REPORT_TRIM] = "DELETE FROM reports WHERE device = ?1 AND seq < "
			   "(SELECT seq FROM reports WHERE device = ?1"
			   "  ORDER BY seq DESC LIMIT 1 OFFSET ?2 - 1)",
	[ST_ATTR] = "INSERT OR REPLACE INTO attributes (device, key, value, expires_at, source)"
		    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_TRANS] = "INSERT INTO transitions (device, profile, at, from_state, to_state, reason)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_TRANS_TRIM] = "DELETE FROM transitions WHERE device = ?1 AND id < "
			  "(SELECT id FROM transitions WHERE device = ?1"
			  "  ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1)",
	[ST_PRUNE] = "DELETE FROM attributes WHERE expires_at > 0 AND expires_at <= ?1",
	[ST_LAST_REPORTS] = "SELECT r.device, r.seq, r.received_at, r.body FROM reports r"
			    " JOIN devices d ON d.device = r.device AND d.last_seq = r.seq"
			    " ORDER BY r.device",
	[ST_ATTRS] = "SELECT device, key, value, expires_at, source FROM attributes"
		     " WHERE expires_at = 0 OR expires_at > ?1 ORDER BY device, key",
	[ST_TRANS_DEV] = "SELECT device, profile, at, from_state, to_state, reason"
			 " FROM transitions WHERE device = ?1 ORDER BY id",
	[ST_TRANS_ALL] = "SELECT device, profile, at, from_state, to_state, reason"
			 " FROM transitions ORDER BY id",
	[ST_NONCE] = "INSERT OR REPLACE INTO mdm_nonces (key, nonce, until) VALUES (?1, ?2, ?3)",
	[ST_NONCES] = "SELECT key, nonce, until FROM mdm_nonces WHERE until >= ?1"
		      " ORDER BY key, nonce",
	[ST_NONCE_PRUNE] = "DELETE FROM mdm_nonces WHERE until < ?1",
};

struct xb_posture_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	unsigned reports, transitions;	/* kept per device */
	bool in_tx;			/* inside xb_posture_store_begin() */
};

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool corrupt(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* --- open -------------------------------------------------------------------- */

/* The single text result of a pragma, into out; the SQLite result code. */
static int pragma(sqlite3 *db, const char *q, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		snprintf(out, outlen, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*out = '\0';
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char v[32], q[64];
	int rc = pragma(db, "PRAGMA user_version", v, sizeof(v));
	long ver;

	if (rc != SQLITE_OK)
		return rc;
	ver = strtol(v, NULL, 10);
	if (ver > XB_POSTURE_STORE_SCHEMA) {
		say(err, errlen, "%s: schema version %ld is from a newer xborder (this one knows %d)",
		    path, ver, XB_POSTURE_STORE_SCHEMA);
		return SQLITE_ERROR;
	}
	for (; ver < XB_POSTURE_STORE_SCHEMA; ver++) {
		snprintf(q, sizeof(q), "PRAGMA user_version = %ld", ver + 1);
		if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, migrations[ver], NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, q, NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
			say(err, errlen, "%s: migration to schema %ld: %s", path, ver + 1,
			    sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		log_info("posture store %s: schema %ld", path, ver + 1);
	}
	return SQLITE_OK;
}

/* Settings, integrity, schema. The SQLite result code; err says what failed. */
static int setup(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char v[256];
	int rc;

	sqlite3_busy_timeout(db, XB_POSTURE_STORE_BUSY_MS);
	/* quick_check first: on a file that is not a database even the journal
	 * mode pragma fails, and the error should say "corrupt". */
	rc = pragma(db, "PRAGMA quick_check", v, sizeof(v));
	if (rc == SQLITE_OK && strcmp(v, "ok")) {
		say(err, errlen, "%s: integrity check failed: %s", path, v);
		return SQLITE_CORRUPT;
	}
	if (rc == SQLITE_OK)
		rc = pragma(db, "PRAGMA journal_mode = WAL", v, sizeof(v));
	if (rc == SQLITE_OK && strcmp(v, "wal")) {
		say(err, errlen, "%s: cannot use WAL mode (journal mode is %s)", path, v);
		return SQLITE_ERROR;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		say(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return rc;
	}
	return migrate(db, path, err, errlen);
}

static int prepare(struct xb_posture_store *s, const char *path, char *err, size_t errlen)
{
	for (int i = 0; i < ST_N; i++) {
		int rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->st[i], NULL);

		if (rc != SQLITE_OK) {
			say(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
			return rc;
		}
	}
	return SQLITE_OK;
}

/* PATH -> PATH.corrupt-STAMP, and its -wal and -shm files alike. */
static int move_aside(const char *path, char *to, size_t tolen)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char stamp[32], a[PATH_MAX], b[PATH_MAX];
	time_t now = time(NULL);
	struct tm tm;

	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", gmtime_r(&now, &tm));
	snprintf(to, tolen, "%s.corrupt-%s", path, stamp);
	for (size_t i = 0; i < 3; i++) {
		snprintf(a, sizeof(a), "%s%s", path, sfx[i]);
		snprintf(b, sizeof(b), "%s%s", to, sfx[i]);
		if (rename(a, b) < 0 && (i == 0 || errno != ENOENT))
			return -1;
	}
	return 0;
}

static struct xb_posture_store *try_open(const char *path, char *err, size_t errlen, int *rc)
{
	struct xb_posture_store *s = calloc(1, sizeof(*s));

	if (!s) {
		say(err, errlen, "%s: out of memory", path);
		*rc = SQLITE_NOMEM;
		return NULL;
	}
	s->reports = XB_POSTURE_STORE_REPORTS;
	s->transitions = XB_POSTURE_STORE_TRANSITIONS;
	*rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			      SQLITE_OPEN_NOMUTEX, NULL);
	if (*rc != SQLITE_OK) {
		say(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
	} else if ((*rc = setup(s->db, path, err, errlen)) == SQLITE_OK &&
		   (*rc = prepare(s, path, err, errlen)) == SQLITE_OK) {
		return s;
	}
	xb_posture_store_close(s);
	return NULL;
}

struct xb_posture_store *xb_posture_store_open(const char *path, unsigned flags, char *err, size_t errlen)
{
	char aside[PATH_MAX];
	struct xb_posture_store *s;
	int rc;

	s = try_open(path, err, errlen, &rc);
	if (s || !corrupt(rc) || !(flags & XB_POSTURE_STORE_MOVE_ASIDE))
		return s;
	log_warnx("posture store %s", err);
	if (move_aside(path, aside, sizeof(aside)) < 0) {
		say(err, errlen, "%s: corrupt, and moving it to %s failed: %s", path, aside,
		    strerror(errno));
		return NULL;
	}
	log_warnx("posture store %s: moved to %s; starting with an empty store "
		  "(devices are re-evaluated at their next report)", path, aside);
	return try_open(path, err, errlen, &rc);
}

void xb_posture_store_set_limits(struct xb_posture_store *s, unsigned reports, unsigned transitions)
{
	s->reports = reports ? reports : 1;
	s->transitions = transitions ? transitions : 1;
}

void xb_posture_store_close(struct xb_posture_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
}

const char *xb_posture_store_error(const struct xb_posture_store *s)
{
	return sqlite3_errmsg(s->db);
}

/* --- writes ------------------------------------------------------------------ */

/* Run a bound statement to its end and reset it; 0 or -1 (logged). */
static int run(struct xb_posture_store *s, int i)
{
	sqlite3_stmt *st = s->st[i];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		log_warnx("posture store: %s: %s", sql[i], sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static void text(sqlite3_stmt *st, int col, const char *v)
{
	sqlite3_bind_text(st, col, v ? v : "", -1, SQLITE_STATIC);
}

int xb_posture_store_begin(struct xb_posture_store *s)
{
	if (s->in_tx || run(s, ST_BEGIN) < 0)
		return -1;
	s->in_tx = true;
	return 0;
}

int xb_posture_store_commit(struct xb_posture_store *s)
{
	if (!s->in_tx)
		return -1;
	if (run(s, ST_COMMIT) < 0) {
		xb_posture_store_rollback(s);
		return -1;
	}
	s->in_tx = false;
	return 0;
}

void xb_posture_store_rollback(struct xb_posture_store *s)
{
	if (s->in_tx && sqlite3_get_autocommit(s->db) == 0)
		run(s, ST_ROLLBACK);
	s->in_tx = false;
}

int xb_posture_store_mark(struct xb_posture_store *s)
{
	return s->in_tx ? run(s, ST_MARK) : -1;
}

int xb_posture_store_unmark(struct xb_posture_store *s, bool keep)
{
	if (!keep && run(s, ST_UNDO) < 0)
		return -1;
	/* A failed write may have ended the whole transaction (SQLite rolls
	 * back on some I/O and full-disk errors): nothing is left to keep. */
	if (sqlite3_get_autocommit(s->db) || run(s, ST_RELEASE) < 0)
		return -1;
	return 0;
}

/* A write of several statements is atomic: inside the caller's transaction,
 * or in one of its own. */
static bool own_begin(struct xb_posture_store *s)
{
	return !s->in_tx && xb_posture_store_begin(s) == 0;
}

static int own_end(struct xb_posture_store *s, bool own, int rc)
{
	if (!own)
		return rc;
	if (rc == 0)
		return xb_posture_store_commit(s);
	xb_posture_store_rollback(s);
	return -1;
}

int xb_posture_store_last_seq(struct xb_posture_store *s, const char *device, int64_t *seq)
{
	sqlite3_stmt *st = s->st[ST_SEQ];
	int rc;

	text(st, 1, device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		log_warnx("posture store: last seq of %s: %s", device, sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int xb_posture_store_put_report(struct xb_posture_store *s, const char *device, int64_t seq,
			 int64_t received_at, const char *body)
{
	bool own = own_begin(s);
	sqlite3_stmt *st;
	int rc;

	if (!own && !s->in_tx)
		return -1;
	st = s->st[ST_DEVICE];
	text(st, 1, device);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, received_at);
	rc = run(s, ST_DEVICE);
	st = s->st[ST_REPORT];
	text(st, 1, device);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, received_at);
	text(st, 4, body);
	rc = rc ? rc : run(s, ST_REPORT);
	st = s->st[ST_REPORT_TRIM];
	text(st, 1, device);
	sqlite3_bind_int64(st, 2, s->reports);
	rc = rc ? rc : run(s, ST_REPORT_TRIM);
	return own_end(s, own, rc);
}

int xb_posture_store_put_attr(struct xb_posture_store *s, const struct xb_posture_store_attr *a)
{
	sqlite3_stmt *st = s->st[ST_ATTR];

	text(st, 1, a->device);
	text(st, 2, a->key);
	text(st, 3, a->value);
	sqlite3_bind_int64(st, 4, a->expires_at > 0 ? a->expires_at : 0);
	text(st, 5, a->source);
	return run(s, ST_ATTR);
}

int xb_posture_store_put_transition(struct xb_posture_store *s, const struct xb_posture_store_transition *t)
{
	bool own = own_begin(s);
	sqlite3_stmt *st = s->st[ST_TRANS];
	int rc;

	if (!own && !s->in_tx)
		return -1;
	text(st, 1, t->device);
	text(st, 2, t->profile);
	sqlite3_bind_int64(st, 3, t->at);
	text(st, 4, t->from);
	text(st, 5, t->to);
	text(st, 6, t->reason);
	rc = run(s, ST_TRANS);
	st = s->st[ST_TRANS_TRIM];
	text(st, 1, t->device);
	sqlite3_bind_int64(st, 2, s->transitions);
	rc = rc ? rc : run(s, ST_TRANS_TRIM);
	return own_end(s, own, rc);
}

int xb_posture_store_put_nonce(struct xb_posture_store *s, const char *key, const char *nonce,
			int64_t until)
{
	sqlite3_stmt *st = s->st[ST_NONCE];

	text(st, 1, key);
	text(st, 2, nonce);
	sqlite3_bind_int64(st, 3, until);
	return run(s, ST_NONCE);
}

int xb_posture_store_prune(struct xb_posture_store *s, int64_t now)
{
	int n;

	sqlite3_bind_int64(s->st[ST_PRUNE], 1, now);
	if (run(s, ST_PRUNE) < 0)
		return -1;
	n = sqlite3_changes(s->db);
	sqlite3_bind_int64(s->st[ST_NONCE_PRUNE], 1, now);
	if (run(s, ST_NONCE_PRUNE) < 0)
		return -1;
	return n + sqlite3_changes(s->db);
}

/* --- reads ------------------------------------------------------------------- */

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

/* Step st through its rows, calling row() for each; see foreach in the header. */
static int walk(struct xb_posture_store *s, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *, void *),
		void *fn, void *ctx)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((ret = row(st, fn, ctx)) != 0)
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_warnx("posture store: %s: %s", sqlite3_sql(st), sqlite3_errmsg(s->db));
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int report_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	return ((xb_posture_store_report_fn)fn)(ctx, col(st, 0), sqlite3_column_int64(st, 1),
					 sqlite3_column_int64(st, 2), col(st, 3));
}

static int attr_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	struct xb_posture_store_attr a = {
		.device = col(st, 0), .key = col(st, 1), .value = col(st, 2),
		.expires_at = sqlite3_column_int64(st, 3), .source = col(st, 4),
	};

	return ((xb_posture_store_attr_fn)fn)(ctx, &a);
}

static int transition_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	struct xb_posture_store_transition t = {
		.device = col(st, 0), .profile = col(st, 1), .at = sqlite3_column_int64(st, 2),
		.from = col(st, 3), .to = col(st, 4), .reason = col(st, 5),
	};

	return ((xb_posture_store_transition_fn)fn)(ctx, &t);
}

int xb_posture_store_foreach_report(struct xb_posture_store *s, xb_posture_store_report_fn fn, void *ctx)
{
	return walk(s, s->st[ST_LAST_REPORTS], report_row, (void *)fn, ctx);
}

int xb_posture_store_foreach_attr(struct xb_posture_store *s, int64_t now, xb_posture_store_attr_fn fn, void *ctx)
{
	sqlite3_bind_int64(s->st[ST_ATTRS], 1, now);
	return walk(s, s->st[ST_ATTRS], attr_row, (void *)fn, ctx);
}

static int nonce_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	return ((xb_posture_store_nonce_fn)fn)(ctx, col(st, 0), col(st, 1), sqlite3_column_int64(st, 2));
}

int xb_posture_store_foreach_nonce(struct xb_posture_store *s, int64_t now, xb_posture_store_nonce_fn fn, void *ctx)
{
	sqlite3_bind_int64(s->st[ST_NONCES], 1, now);
	return walk(s, s->st[ST_NONCES], nonce_row, (void *)fn, ctx);
}

int xb_posture_store_foreach_transition(struct xb_posture_store *s, const char *device,
				 xb_posture_store_transition_fn fn, void *ctx)
{
	sqlite3_stmt *st = s->st[device ? ST_TRANS_DEV : ST_TRANS_ALL];

	if (device)
		text(st, 1, device);
	return walk(s, st, transition_row, (void *)fn, ctx);
}
