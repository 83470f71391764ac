/* Internals of the posture runtime, shared by posture_rt.c (state,
 * evaluation, enforcement) and posture_rt_http.c (the endpoint's
 * callbacks and the control views). Not for other modules. */
#ifndef XB_POSTURE_RT_INT_H
#define XB_POSTURE_RT_INT_H

#include "common/jsonlog.h"
#include "gateway/conntrack.h"
#include "gateway/nft_set.h"
#include "gateway/posture.h"
#include "gateway/posture_http.h"
#include "gateway/posture_rt.h"
#include "gateway/posture_store.h"
#include "policy/compile.h"

/* A device's per-profile result: what xb_posture_eval said last. UNSEEN
 * until the first evaluation, which is never audited as a transition. */
enum { PRT_FAIL = 0, PRT_PASS = 1, PRT_UNSEEN = 2 };

#define PRT_LAT_BUCKETS 24	/* log2 microseconds: [2^k, 2^(k+1)) */

struct prt_dev {
	char *name;			/* the key across reloads */
	struct xb_posture_state st;
	/* Evaluate again then (0: never): when a report ages past a max_age,
	 * on the boot clock; when a pushed attribute expires, Unix s. */
	int64_t next_boot, next_wall;
	bool cut_queued;		/* in xb_prt.cut until the next flush */
};

/* One device set of posture rules; rules sharing it share this. */
struct prt_set {
	size_t rule;			/* the first rule using it */
	char name4[XB_SET_NAME_MAX], name6[XB_SET_NAME_MAX];
	bool has4, has6;		/* the compiled table has the set */
};

struct prt_addr {
	uint8_t a[16];			/* IPv4: the first 4 bytes */
	size_t dev;
};

/* A report or push the endpoint accepted, applied to the device's state
 * only once the round's transaction has committed (on_round): a request
 * answered 503 changes nothing. */
struct prt_pending {
	size_t dev;
	struct xb_report *rep;		/* a report, or NULL: push */
	struct xb_mdm_push push;
	uint64_t t0;			/* monotonic ns it arrived */
};

/* A set change prt_judge decided, applied by prt_flush. */
struct prt_change {
	size_t set, dev;
	bool add;
	unsigned tries;			/* failed attempts so far */
};

/* A set change that fails stays queued and is tried again at the next
 * flush (the tick's, within a second), this many times in all. */
#define PRT_SET_TRIES 5

struct xb_prt {
	const struct xb_policy *p;
	struct prt_dev *dev;		/* parallel to p->devices */
	size_t n_dev;
	size_t *by_name;		/* indices into dev, by name */
	struct prt_addr *by4, *by6;	/* sorted by address */
	size_t n4, n6;
	uint8_t *pok;			/* [dev * n_profiles + profile]: PRT_* */
	uint8_t *in;			/* [dev * n_sets + set]: in the set now */
	struct prt_set *sets;
	size_t n_sets;
	size_t *rule_set;		/* per rule: index into sets, or SIZE_MAX */
	struct xb_check_result *res;	/* enough for the largest profile */
	size_t n_res;

	struct xb_pstore *store;
	struct xb_jsonlog *audit;	/* NULL: could not be opened (logged) */
	struct xb_psvc *svc;
	char svc_key[256];		/* what svc listens on */
	struct xb_nftset nft;
	struct xb_ct ct;
	struct xb_mdm_replay replay;
	int epfd;
	int64_t pruned;			/* boot clock s of the last store prune */

	struct prt_pending *pend;	/* accepted in the endpoint's round */
	size_t n_pend, cap_pend;

	/* Enforcement decided since the last prt_flush(): applied together,
	 * in one nft batch and one conntrack pass (docs/posture.md). */
	struct prt_change *chg;
	size_t n_chg, cap_chg;
	size_t *cut;			/* devices that left a set */
	size_t n_cut, cap_cut;
	uint64_t *t0;			/* monotonic ns each pending report arrived */
	size_t n_t0, cap_t0;

	struct {
		uint64_t reports, pushes, transitions, cuts, cut_entries;
		uint64_t set_changes, set_errors;
		uint64_t lat[PRT_LAT_BUCKETS];	/* enforcement, per report */
		uint64_t lat_max_us;
	} stat;
};

/* judge() flags. */
#define PRT_AUDIT	0x1	/* log transitions */
#define PRT_SETS	0x2	/* update the nft sets */
#define PRT_CUT		0x4	/* cut the flows of a device that left a set */
#define PRT_ALL		(PRT_AUDIT | PRT_SETS | PRT_CUT)

/* posture_rt.c */
size_t prt_find(const struct xb_prt *r, const char *name);	/* SIZE_MAX: none */
/* Evaluate device i; with PRT_SETS and PRT_CUT what changes is queued
 * for prt_flush(), which every caller runs before it answers or returns. */
void prt_judge(struct xb_prt *r, size_t i, struct xb_ptime now, unsigned flags);
/* Apply the queued set changes (one nft batch) and cuts (one conntrack
 * pass per family), then record the latency of the reports they enforce. */
void prt_flush(struct xb_prt *r);
/* A report's arrival, for its latency once prt_flush() has enforced it. */
void prt_arrived(struct xb_prt *r, uint64_t t0);
/* Now: Unix s and CLOCK_BOOTTIME s (see struct xb_ptime). */
struct xb_ptime prt_now(void);
/* Forget pending entry k's report or push (a push's nonce with it). */
void prt_pending_drop(struct xb_prt *r, struct prt_pending *k);
/* posture_rt_http.c */
extern const struct xb_psvc_ops prt_ops;
json_t *prt_value_json(const struct xb_value *v);

#endif
