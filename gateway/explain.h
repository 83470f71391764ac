/* Why a device's packet is allowed or refused: the policy's rules walked
 * the way table inet xborder's chain from_devices walks them
 * (policy/compile.c), for `xborderctl explain'. Pure: the caller gathers
 * the live inputs (posture, learned destinations, whether the destination
 * is the gateway's own) and the answer says, rule by rule, the first
 * condition that does not hold, or that the rule decides.
 *
 * The conditions, in the order a rule line tests them (compile.c):
 *
 *   family     the rule's protocols have one of the packet's family (icmp
 *              is IPv4's, icmpv6 IPv6's): else the rule has no line for it
 *   device     the rule names the device (directly or by group), or no
 *              device at all; then, with posture profiles, the device
 *              passes one of them (it is in the rule's device set)
 *   dest       a rule naming destinations matches only those: its `to'
 *              prefixes, its to_lists, or addresses DNS learned for its
 *              domains (the _dns set); naming none: any destination
 *   proto      the packet's protocol is one of the rule's (none: any)
 *   port       its destination port is in the rule's ports (none: any)
 *
 * Traffic to the gateway's own addresses is never judged here (`fib daddr
 * type local return'): chain input takes it. No rule matching is the
 * counted default deny.
 *
 * A question without a protocol (or tcp/udp without a port) cannot tell
 * rules that restrict them: such a rule, matching in everything else, is
 * XB_EXPLAIN_DEPENDS and the walk goes on, so the verdict is what any
 * other packet to the destination gets.
 */
#ifndef XB_GATEWAY_EXPLAIN_H
#define XB_GATEWAY_EXPLAIN_H

#include "policy/compile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xb_explain_q {
	size_t device;		/* index into p->devices */
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* destination, network order */
	unsigned proto;		/* one XB_PROTO_* bit; 0: not given */
	uint16_t port;		/* destination port; 0: not given */
	bool local;		/* addr is the gateway's own */
};

struct xb_explain_in {
	const struct xb_policy *p;
	const struct xb_plan *plan;
	/* Is device in rule's device set, i.e. does it pass the rule's
	 * posture? Asked only for rules with posture; NULL: nobody passes. */
	bool (*posture_ok)(void *ctx, size_t rule, size_t device);
	/* Does rule's _dns set of q's family hold q's address now? NULL: the
	 * sets are empty (no DNS service). */
	bool (*learned)(void *ctx, size_t rule, int family, const uint8_t *addr);
	void *ctx;
};

enum xb_explain_why {
	XB_EXPLAIN_MATCH,	/* this rule decides */
	XB_EXPLAIN_DEPENDS,	/* matches for some protocols/ports only */
	XB_EXPLAIN_FAMILY,	/* the rule's protocols have none of the family */
	XB_EXPLAIN_DEVICE,	/* the rule does not name the device */
	XB_EXPLAIN_POSTURE,	/* the device fails the rule's posture */
	XB_EXPLAIN_DEST,	/* not one of the rule's destinations */
	XB_EXPLAIN_PROTO,	/* another protocol */
	XB_EXPLAIN_PORT,	/* another port */
};

/* How the destination matched a rule that names destinations. */
enum xb_explain_dest { XB_DEST_ANY, XB_DEST_TO, XB_DEST_LIST, XB_DEST_DNS };

struct xb_explain_rule {
	size_t rule;
	enum xb_explain_why why;
	enum xb_explain_dest dest;	/* MATCH, DEPENDS: how the destination matched */
	size_t list;			/* XB_DEST_LIST: index into r->to_lists */
	bool learned;			/* the address is in the rule's _dns set */
};

enum xb_explain_verdict {
	XB_VERDICT_LOCAL,		/* to the gateway itself: chain input */
	XB_VERDICT_ALLOW,		/* rule `decided' allows */
	XB_VERDICT_DENY,		/* rule `decided' denies */
	XB_VERDICT_DEFAULT_DENY,	/* no rule matched */
};

struct xb_explain {
	struct xb_explain_rule *v;	/* the rules looked at, in order, the
					 * deciding one last */
	size_t n;
	enum xb_explain_verdict verdict;
	size_t decided;			/* rule index; SIZE_MAX: none */
	int path;			/* the deciding rule's path (plan); -1: none */
};

/* Walks in->p's rules for q into out. 0; -1 with errno EADDRNOTAVAIL
 * when the device has no address of q's family (the gateway has no pool
 * of it, say: WireGuard's cryptokey routing drops such a packet before
 * any rule), ENOMEM without memory. On -1 out is empty. */
int xb_explain(const struct xb_explain_in *in, const struct xb_explain_q *q,
	       struct xb_explain *out);
void xb_explain_free(struct xb_explain *e);

/* "PROTO[/PORT]": tcp/443, udp/53, tcp, icmp, icmpv6. Sets q->proto and
 * q->port; false for anything else (a port with icmp, port 0). */
bool xb_explain_parse_proto(const char *s, struct xb_explain_q *q);

/* Stable snake_case words for the JSON and the text. */
const char *xb_explain_why_name(enum xb_explain_why w);
const char *xb_explain_dest_name(enum xb_explain_dest d);
const char *xb_explain_verdict_name(enum xb_explain_verdict v);

#endif
