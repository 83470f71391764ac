/* Internals of the posture runtime, shared by posture_rt.c (state,
 * evaluation, enforcement) and posture_rt_http.c (the endpoint's
 * callbacks and the control views). Not for other modules. */
#ifndef XB_POSTURE_RT_INT_H
#define XB_POSTURE_RT_INT_H

#include "common/jsonlog.h"
#include "gateway/kernel/conntrack.h"
#include "gateway/kernel/nft_set.h"
#include "gateway/posture/posture.h"
#include "gateway/posture/posture_http.h"
#include "gateway/posture/posture_rt.h"
#include "gateway/posture/posture_store.h"
#include "policy/compile.h"

/* A device's per-profile result: what xb_posture_eval said last. UNSEEN
 * until the first evaluation, which is never audited as a transition. */
enum { POSTURE_RT_FAIL = 0, POSTURE_RT_PASS = 1, POSTURE_RT_UNSEEN = 2 };

#define POSTURE_RT_LAT_BUCKETS 24	/* log2 microseconds: [2^k, 2^(k+1)) */

struct posture_rt_dev {
	char *name;			/* the key across reloads */
	struct xb_posture_state st;
	/* Evaluate again then (0: never): when a report ages past a max_age,
	 * on the boot clock; when a pushed attribute expires, Unix s. */
	int64_t next_boot, next_wall;
	bool cut_queued;		/* in xb_posture_rt.cut until the next flush */
};

/* One device set of posture rules; rules sharing it share this. */
struct posture_rt_set {
	size_t rule;			/* the first rule using it */
	char name4[XB_SET_NAME_MAX], name6[XB_SET_NAME_MAX];
	bool has4, has6;		/* the compiled table has the set */
};

struct posture_rt_addr {
	uint8_t a[16];			/* IPv4: the first 4 bytes */
	size_t dev;
};

/* A report or push the endpoint accepted, applied to the device's state
 * only once the round's transaction has committed (on_round): a request
 * answered 503 changes nothing. */
struct posture_rt_pending {
	size_t dev;
	struct xb_report *rep;		/* a report, or NULL: push */
	struct xb_mdm_push push;
	uint64_t t0;			/* monotonic ns it arrived */
};

/* A set change posture_rt_judge decided, applied by posture_rt_flush. */
struct posture_rt_change {
	size_t set, dev;
	bool add;
	unsigned tries;			/* failed attempts so far */
};

/* A set change that fails stays queued and is tried again at the next
 * flush (the tick's, within a second), this many times in all. */
#define POSTURE_RT_SET_TRIES 5

struct xb_posture_rt {
	const struct xb_policy *p;
	struct posture_rt_dev *dev;		/* parallel to p->devices */
	size_t n_dev;
	size_t *by_name;		/* indices into dev, by name */
	struct posture_rt_addr *by4, *by6;	/* sorted by address */
	size_t n4, n6;
	uint8_t *pok;			/* [dev * n_profiles + profile]: POSTURE_RT_* */
	uint8_t *in;			/* [dev * n_sets + set]: in the set now */
	struct posture_rt_set *sets;
	size_t n_sets;
	size_t *rule_set;		/* per rule: index into sets, or SIZE_MAX */
	struct xb_check_result *res;	/* enough for the largest profile */
	size_t n_res;

	struct xb_posture_store *store;
	struct xb_jsonlog *audit;	/* NULL: could not be opened (logged) */
	struct xb_posture_http *svc;
	char svc_key[256];		/* what svc listens on */
	struct xb_nft_set nft;
	struct xb_conntrack ct;
	struct xb_mdm_replay replay;
	xb_posture_rt_gate_fn gate;	/* the cluster's, or NULL */
	void *gate_ctx;
	int epfd;
	int64_t pruned;			/* boot clock s of the last store prune */

	struct posture_rt_pending *pend;	/* accepted in the endpoint's round */
	size_t n_pend, cap_pend;

	/* Enforcement decided since the last posture_rt_flush(): applied together,
	 * in one nft batch and one conntrack pass (docs/posture.md). */
	struct posture_rt_change *chg;
	size_t n_chg, cap_chg;
	size_t *cut;			/* devices that left a set */
	size_t n_cut, cap_cut;
	uint64_t *t0;			/* monotonic ns each pending report arrived */
	size_t n_t0, cap_t0;

	struct {
		uint64_t reports, pushes, transitions, cuts, cut_entries;
		uint64_t remote;		/* reports applied from the cluster */
		uint64_t set_changes, set_errors;
		uint64_t lat[POSTURE_RT_LAT_BUCKETS];	/* enforcement, per report */
		uint64_t lat_max_us;
	} stat;
};

/* judge() flags. */
#define POSTURE_RT_AUDIT	0x1	/* log transitions */
#define POSTURE_RT_SETS	0x2	/* update the nft sets */
#define POSTURE_RT_CUT		0x4	/* cut the flows of a device that left a set */
#define POSTURE_RT_ALL		(POSTURE_RT_AUDIT | POSTURE_RT_SETS | POSTURE_RT_CUT)

/* posture_rt.c */
size_t posture_rt_find(const struct xb_posture_rt *r, const char *name);	/* SIZE_MAX: none */
/* Evaluate device i; with POSTURE_RT_SETS and POSTURE_RT_CUT what changes is queued
 * for posture_rt_flush(), which every caller runs before it answers or returns. */
void posture_rt_judge(struct xb_posture_rt *r, size_t i, struct xb_ptime now, unsigned flags);
/* Apply the queued set changes (one nft batch) and cuts (one conntrack
 * pass per family), then record the latency of the reports they enforce. */
void posture_rt_flush(struct xb_posture_rt *r);
/* A report's arrival, for its latency once posture_rt_flush() has enforced it. */
void posture_rt_arrived(struct xb_posture_rt *r, uint64_t t0);
/* Now: Unix s and CLOCK_BOOTTIME s (see struct xb_ptime). */
struct xb_ptime posture_rt_now(void);
/* Forget pending entry k's report or push (a push's nonce with it). */
void posture_rt_pending_drop(struct xb_posture_rt *r, struct posture_rt_pending *k);
/* posture_rt_http.c */
extern const struct xb_posture_http_ops posture_rt_ops;
json_t *posture_rt_value_json(const struct xb_value *v);

#endif
