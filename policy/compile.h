/* The policy compiler: a validated policy (policy.h) becomes a routing plan
 * (firewall marks and routing tables) and one nftables script, table inet
 * xborder, that the daemon loads atomically (gateway/kernel/nft.h). Pure functions
 * of the policy: nothing here touches the kernel. docs/nftables.md
 * describes the ruleset and why it is laid out this way.
 *
 *   struct xb_plan plan;
 *   if (xb_plan_build(p, &plan, &errs) < 0) ...        too many paths
 *   char *script = xb_compile_nft(p, &plan, &opts);    NULL: out of memory
 *   xb_nft_run(&nft, script, &err);
 *   ... per path: ip rule fwmark MARK/XB_MARK_MASK lookup TABLE priority PRIO
 *   free(script); xb_plan_free(&plan);
 */
#ifndef XB_COMPILE_H
#define XB_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define XB_NFT_TABLE	"xborder"	/* family inet */
#define XB_MARK_MASK	0x0000ff00u	/* our bits of the packet mark */
#define XB_MARK_SHIFT	8
#define XB_PATHS_MAX	255u		/* path ids 1..255 fit the mask */
#define XB_TABLE_BASE	51800u		/* routing table = base + path id */
#define XB_RULE_PRIO	10800u		/* ip rule priority = base + path id */

/* The drop log: deny rules and the default deny log what they refuse to
 * nfnetlink_log group XB_DROPS_GROUP (gateway/kernel/drops.h reads it), at most
 * XB_DROPS_RATE packets a second (burst XB_DROPS_BURST) per line, each
 * with the prefix XB_DROPS_PREFIX_RULE NAME (a rule without a name: "#N")
 * or XB_DROPS_PREFIX_DEFAULT. */
#define XB_DROPS_GROUP		7800u
#define XB_DROPS_RATE		10u
#define XB_DROPS_BURST		20u
#define XB_DROPS_PREFIX_RULE	"xb drop by "
#define XB_DROPS_PREFIX_DEFAULT	"xb drop default"

/* One way out of the gateway: a routing table, selected by one mark. The
 * daemon keeps a default route in the table out of the path's active
 * tunnel (the first listed that is up; for "best" the one the prober
 * picks). With no tunnel up, a path with internet_fallback leaves its
 * table empty, so the lookup falls through to the main table; any other
 * path gets an unreachable default so that its traffic never leaves by the
 * uplink. */
struct xb_path {
	unsigned id;			/* 1..255 */
	uint32_t mark;			/* id << 8 */
	uint32_t table;			/* XB_TABLE_BASE + id */
	uint32_t priority;		/* XB_RULE_PRIO + id */
	size_t *tunnels;		/* idx into p->tunnels, preference order */
	size_t n_tunnels;
	bool best;			/* every tunnel; the prober chooses */
	bool internet_fallback;		/* the via list ends with "internet" */
	char *name;			/* "cmi", "cmi,ctg", "best", "ctg,internet" */
};

/* Paths 0..n_tunnels-1 are the tunnels' own, in tunnel order (probes and
 * DNS through a tunnel use them); then one per distinct via list that is
 * not a single tunnel, in order of first use. */
struct xb_plan {
	struct xb_path *paths;
	size_t n_paths;
	int *rule_path;			/* per rule: index into paths; -1 for a deny
					 * rule and for via = [ "internet" ] */
};

/* Returns 0, or -1 with an error added to errs (more than XB_PATHS_MAX
 * paths, naming the rule or tunnel that needed one more; out of memory).
 * On -1 out is empty (safe to free). */
int xb_plan_build(const struct xb_policy *p, struct xb_plan *out, struct xb_errors *errs);
void xb_plan_free(struct xb_plan *plan);

struct xb_compile_opts {
	/* Does device d meet the posture that rule r requires? Called only for
	 * rules with posture profiles; NULL: nobody does yet (default deny). */
	bool (*posture_ok)(void *ctx, size_t rule, size_t device);
	void *ctx;
};

/* The whole table as one script that creates it or atomically replaces it.
 * Deterministic: the same policy, plan and answers give the same text.
 * o may be NULL. Returns a malloc'ed string, NULL when out of memory. */
char *xb_compile_nft(const struct xb_policy *p, const struct xb_plan *plan,
		     const struct xb_compile_opts *o);

/* A rule's sets: the devices it applies to (source addresses), its `to'
 * prefixes, and the addresses DNS learned for its `domains'. */
enum xb_set_kind {
	XB_SET_DEV4, XB_SET_DEV6,
	XB_SET_TO4, XB_SET_TO6,
	XB_SET_DNS4, XB_SET_DNS6,
};

#define XB_SET_NAME_MAX	(2 + XB_NAME_MAX + 5 + 1)	/* "r_" NAME "_dev4" NUL */

/* Writes the set's name ("r_erp_dev4"; "r_rule3_to4" for a rule without a
 * name) into buf (at least XB_SET_NAME_MAX bytes is always enough) and
 * says whether xb_compile_nft() creates that set for this policy. */
bool xb_compile_set_name(char *buf, size_t len, const struct xb_policy *p, size_t rule,
			 enum xb_set_kind k);

/* Does rule r name device d, directly or through a group? A rule naming
 * neither devices nor groups selects every device. Posture is not part of
 * this: the device sets of a posture rule hold the selected devices that
 * also pass (the daemon adds and removes them as reports arrive). */
bool xb_compile_selects(const struct xb_policy *p, size_t rule, size_t device);

#endif
