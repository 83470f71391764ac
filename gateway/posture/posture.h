/* Device posture: the report a device's agent sends, the attributes a
 * management system (MDM/EDR) pushes, and the evaluation of a policy
 * profile against both (docs/posture.md). Pure: no I/O, no clock — the
 * caller passes the time in (struct xb_ptime: both clocks it needs).
 *
 *   struct xb_report *r = xb_posture_report_parse(body, len, err, sizeof(err));
 *   xb_posture_set_report(&state, r, now);          state owns r
 *   why = xb_posture_mdm_verify(policy, &replay, body, len, sig, now.wall, &push, err, n);
 *   xb_posture_push(&state, &push, now.wall);       merges the attributes
 *   n = xb_posture_eval(profile, &state, now, out, XB_POSTURE_OUT(profile), &ok);
 */
#ifndef XB_POSTURE_H
#define XB_POSTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/version.h"
#include "policy/policy.h"

/* Limits on a report (and on an MDM push). */
#define XB_REPORT_BODY_MAX	65536	/* bytes */
#define XB_REPORT_PROCS_MAX	1024
#define XB_REPORT_FILES_MAX	256
#define XB_REPORT_ATTRS_MAX	256
#define XB_REPORT_VOLUMES_MAX	64
#define XB_REPORT_STR_MAX	256	/* bytes of any string, NUL excluded */
#define XB_NONCE_MAX		64	/* hex digits */

enum xb_tri { XB_UNSET, XB_FALSE, XB_TRUE };

struct xb_attr {
	char *key;
	struct xb_value value;
	int64_t expires;	/* Unix seconds; 0: never (report attributes) */
};

struct xb_report_file {
	char *path;
	bool has_sha256;
	uint8_t sha256[32];
};

struct xb_report_volume {
	char *mount;
	bool encrypted;
};

/* A parsed report. Strings are NUL-terminated and at most
 * XB_REPORT_STR_MAX bytes; NULL / XB_UNSET / has_* false: not reported. */
struct xb_report {
	uint64_t seq;
	char nonce[XB_NONCE_MAX + 1];	/* lower-case hex */
	int64_t time;			/* the device's clock */
	int platform;			/* enum xb_platform */
	char *os_version, *os_kernel, *os_name;
	char *agent_version;
	enum xb_tri disk_system;
	struct xb_report_volume *volumes;
	size_t n_volumes;
	enum xb_tri firewall, screen_lock;
	char *serial;
	bool has_processes, has_files;	/* the lists were sent (maybe empty) */
	char **processes;		/* sorted */
	size_t n_processes;
	struct xb_report_file *files;
	size_t n_files;
	struct xb_attr *attrs;		/* unique keys */
	size_t n_attrs;
};

/* Parses a report body (JSON, at most XB_REPORT_BODY_MAX bytes). NULL with
 * a message in err ("os.version: expected a string") when it is not one.
 * xb_posture_report_from_json reads one already parsed (the endpoint parses each
 * body once, checks its seq and nonce, then reads it into this). */
struct xb_report *xb_posture_report_parse(const char *body, size_t len, char *err, size_t errlen);
struct json_t;
struct xb_report *xb_posture_report_from_json(const struct json_t *root, char *err, size_t errlen);
void xb_posture_report_free(struct xb_report *r);

/* Now, on the two clocks evaluation reads, in seconds. wall (Unix time)
 * is for what carries Unix times: an MDM attribute's expiry, a push's
 * time. boot (CLOCK_BOOTTIME: monotonic, counting suspend) is for a
 * report's age, so that no step of the wall clock (NTP, an operator)
 * ages the whole fleet at once or keeps a stale report fresh. */
struct xb_ptime {
	int64_t wall;
	int64_t boot;
};

/* The age to give a report loaded from the store, received at
 * stored_wall (Unix s) by a gateway that has since restarted: its age
 * by the wall clock — the only clock that survives a restart — clamped
 * to [0, XB_POSTURE_AGE_MAX]: a report stamped in the future (the clock
 * was stepped back) counts as just received, never as younger. */
#define XB_POSTURE_AGE_MAX (30 * 86400 + 1)	/* above any profile's max_age */
int64_t xb_posture_stored_age(int64_t stored_wall, int64_t now_wall);

/* What the gateway knows about one device. Zero-initialised: nothing. */
struct xb_posture_state {
	struct xb_report *report;	/* the last accepted report, or NULL */
	int64_t received;		/* when it was accepted: boot clock (ageing) */
	int64_t received_wall;		/* ... and Unix s (display, storage) */
	struct xb_attr *mdm;		/* pushed attributes, unexpired at the last push */
	size_t n_mdm;
};

/* Replaces the report (taking r over) and stamps it with now. */
void xb_posture_set_report(struct xb_posture_state *s, struct xb_report *r, struct xb_ptime now);
void xb_posture_state_free(struct xb_posture_state *s);

/* Evaluation. One outcome per check, then one for the profile itself
 * (platform and report age), which is always the last. */
enum xb_outcome { XB_PASS, XB_FAIL, XB_UNKNOWN, XB_SKIP };

#define XB_POSTURE_TEXT_MAX 192

struct xb_check_result {
	const struct xb_check *check;	/* NULL: the profile-level outcome */
	enum xb_outcome outcome;	/* UNKNOWN: not reported (counts as a
					 * failure); SKIP: not for this platform */
	bool report_only;		/* a failure is logged, not enforced */
	char expected[XB_POSTURE_TEXT_MAX];
	char seen[XB_POSTURE_TEXT_MAX];
	/* "os_version: expected >= 14.2, seen 13.6" */
	char text[2 * XB_POSTURE_TEXT_MAX + 32];
};

#define XB_POSTURE_OUT(pr) ((pr)->n_checks + 1)

/* Evaluates profile pr for the device at now. Fills out[0..returned) (at
 * most max entries; XB_POSTURE_OUT(pr) is enough for all) and sets
 * *compliant: no enforced check failed or is unknown, and the profile's
 * own outcome passed. */
size_t xb_posture_eval(const struct xb_profile *pr, const struct xb_posture_state *s,
		       struct xb_ptime now, struct xb_check_result *out, size_t max,
		       bool *compliant);
/* A rule's posture list: compliant with any profile (OR). No profiles: true. */
bool xb_posture_any(const struct xb_policy *p, const struct xb_rule *r,
		    const struct xb_posture_state *s, struct xb_ptime now);
/* out[] as "pass"/"fail"/"unknown"/"skip". */
const char *xb_outcome_name(enum xb_outcome o);

/* MDM pushes (docs/posture.md): a JSON body signed with Ed25519 by a key
 * in the policy's mdm_keys; the signature is detached, base64. */
#define XB_MDM_WINDOW		300	/* seconds either side of now */
#define XB_MDM_REPLAY_MAX	4096	/* nonces remembered */

struct xb_mdm_nonce {
	char key[XB_NAME_MAX + 1];
	char nonce[XB_NONCE_MAX + 1];
	int64_t until;			/* forgotten after: time + window */
};

/* Nonces seen and still within the window. Zero-initialised: empty. A full
 * cache refuses new pushes rather than forget a live nonce. */
struct xb_mdm_replay {
	struct xb_mdm_nonce *v;
	size_t n;
};

struct xb_mdm_push {
	const struct xb_mdm_key *key;	/* into the policy */
	char nonce[XB_NONCE_MAX + 1];	/* as recorded in the replay cache */
	int64_t until;			/* ... until then (Unix s) */
	char device[XB_NAME_MAX + 1];
	struct xb_attr *attrs;		/* unexpired only */
	size_t n_attrs;
};

/* Why a push is refused: the step that failed. The endpoint maps each to
 * its HTTP status (posture_rt_http.c). */
enum xb_mdm_refusal {
	XB_MDM_OK,
	XB_MDM_MALFORMED,	/* not JSON, a field missing or mistyped, the cache full */
	XB_MDM_FORBIDDEN,	/* key unknown, signature bad, time out of the window */
	XB_MDM_REPLAYED,	/* nonce already used within the window */
	XB_MDM_NO_DEVICE,	/* device missing or not in the policy */
};

/* Verifies and parses a push: JSON within limits, known key, valid
 * signature over the exact body bytes, time within XB_MDM_WINDOW of now,
 * nonce well-formed, device in the policy, attributes, nonce not seen.
 * Expired attributes are dropped. Returns XB_MDM_OK, or the refusal with
 * err set (nothing recorded on failure). */
enum xb_mdm_refusal xb_posture_mdm_verify(const struct xb_policy *p, struct xb_mdm_replay *rc,
				  const char *body, size_t len, const char *sig_b64, int64_t now,
				  struct xb_mdm_push *out, char *err, size_t errlen);
void xb_posture_mdm_push_free(struct xb_mdm_push *m);
void xb_posture_mdm_replay_free(struct xb_mdm_replay *rc);
/* The replay cache outlives a restart through the store (posture_rt.c):
 * add puts back a nonce remembered until `until' (ignored once until < now;
 * -1 when the cache is full or out of memory); forget drops one whose push
 * was not kept after all (its transaction rolled back). */
int xb_posture_mdm_replay_add(struct xb_mdm_replay *rc, const char *key, const char *nonce,
		      int64_t until, int64_t now);
void xb_posture_mdm_replay_forget(struct xb_mdm_replay *rc, const char *key, const char *nonce);
/* Merges a verified push into a device's state: each attribute replaces
 * the one of the same key; expired ones are dropped. */
int xb_posture_push(struct xb_posture_state *s, struct xb_mdm_push *m, int64_t now);

#endif
