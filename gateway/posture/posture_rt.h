/* Posture enforcement in the running gateway (docs/posture.md,
 * "Enforcement"): the pieces of gateway/posture*.h put to work.
 *
 *   state      one xb_posture_state per device, kept by device name, so
 *              a reload keeps what each device reported
 *   store      STATE_DIR/posture.db: loaded at open and re-evaluated
 *   endpoint   xb_posture_http on the gateway's pool addresses and posture_port,
 *              and on gateway.posture_admin when the policy sets it
 *   sets       a device is in the _dev4/_dev6 set of a posture rule
 *              while it passes one of the rule's profiles; rules sharing
 *              one device set (policy/compile.h) are updated once
 *   cut        a device that leaves a set loses its conntrack entries
 *   audit      STATE_DIR/posture.log: every report, push and transition
 *
 * A device is re-evaluated on every accepted report and push, once the
 * endpoint's round has committed and before the answer leaves (a 200
 * means "stored and enforced", a 503 "nothing changed"), on reload (all
 * of them), and by xb_posture_rt_tick() when its report ages past a profile's
 * max_age (on the boot clock) or a pushed attribute expires (on the wall
 * clock). One thread: the daemon's.
 */
#ifndef XB_POSTURE_RT_H
#define XB_POSTURE_RT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define XB_POSTURE_RT_DB	"posture.db"	/* under the gateway's state_dir */
#define XB_POSTURE_RT_LOG	"posture.log"	/* the audit log, JSON lines */
#define XB_POSTURE_RT_LOG_MAX	(64u << 20)	/* bytes before it rotates to .1 */

struct xb_posture_rt;

/* Open the store under p's state_dir (a corrupt one is moved aside), load
 * every device's last report and pushed attributes, evaluate every device
 * against p (quietly: this is the state before the restart), and open
 * netlink for the sets and conntrack. The endpoint is not listening yet:
 * xb_posture_rt_listen(). p must stay valid until the next xb_posture_rt_rebind(). NULL
 * with the reason logged. */
struct xb_posture_rt *xb_posture_rt_open(const struct xb_policy *p);
/* Listen on p's addresses (again, when they changed since the last call).
 * 0, or -1 with the reason logged (the old endpoint, if any, stays). */
int xb_posture_rt_listen(struct xb_posture_rt *r);
/* The device interface was deleted and made again: bind the endpoint's
 * sockets to the new one (open it, when it could not open before). */
void xb_posture_rt_interface_remade(struct xb_posture_rt *r);
/* An epoll fd: readable when xb_posture_rt_process() has work. */
int xb_posture_rt_fd(const struct xb_posture_rt *r);
void xb_posture_rt_process(struct xb_posture_rt *r);
/* Every second: devices whose report aged past a max_age or whose pushed
 * attribute expired are re-evaluated and enforced; expired attributes are
 * pruned from the store now and then. */
void xb_posture_rt_tick(struct xb_posture_rt *r);

/* A new policy: carry each device's state over by name and evaluate every
 * device against p. The set memberships are then those the compiler must
 * write (xb_posture_rt_ok); transitions are audited, and a device that left a set
 * has its flows cut. Call it before compiling p's table. */
int xb_posture_rt_rebind(struct xb_posture_rt *r, const struct xb_policy *p);

/* The posture callback of xb_compile_opts and of the DNS service: does
 * device pass rule's posture (one of its profiles)? ctx is the xb_posture_rt. */
bool xb_posture_rt_ok(void *ctx, size_t rule, size_t device);

/* For the control commands: a device's summary (compliant profiles,
 * failing checks, report age) and its full evaluation. */
json_t *xb_posture_rt_summary(struct xb_posture_rt *r, size_t device);
json_t *xb_posture_rt_detail(struct xb_posture_rt *r, size_t device);
/* Counters: reports, pushes, transitions, cuts, enforcement latency. */
json_t *xb_posture_rt_status(const struct xb_posture_rt *r);

/* The cluster (gateway/cluster/cluster.h, docs/ha.md "Shared state"),
 * posture_rt_cluster.c. A gate asked about every report that passed the
 * endpoint's local checks and parses, before it is stored: see
 * xb_posture_http_ops.gate (0 go on, XB_POSTURE_HTTP_GATE_WAIT, or a
 * status); its verdict on a held one comes back through
 * xb_posture_rt_gate_done(). fn NULL: no gate (one gateway). */
typedef int (*xb_posture_rt_gate_fn)(void *ctx, const char *device, int64_t seq,
				     const char *body, size_t len, uint64_t id, char *err,
				     size_t errlen);
void xb_posture_rt_set_gate(struct xb_posture_rt *r, xb_posture_rt_gate_fn fn, void *ctx);
void xb_posture_rt_gate_done(struct xb_posture_rt *r, uint64_t id, unsigned status,
			     const char *msg);
/* A report another gateway accepted (received_ms: when, Unix ms): when
 * its seq is above the store's, it is stored, the device evaluated as at
 * start from the store and enforced (sets, cuts), and audited. 0 applied,
 * 1 not newer (nothing done), or -errno with err: -ENOENT not a device of
 * the policy, -EINVAL an unreadable report, -EIO the store failing. */
int xb_posture_rt_remote(struct xb_posture_rt *r, const char *device, int64_t seq,
			 int64_t received_ms, const char *body, size_t len, char *err,
			 size_t errlen);

/* MDM pushes (docs/ha.md, "Shared state"): fn hears of every push this
 * gateway stored and applied (after its round's commit); a push another
 * gateway accepted is applied here with xb_posture_rt_remote_push(): its
 * nonce into the replay cache and the store, its attributes (attrs:
 * [{"key","value","expires" (Unix s)}]) stored and merged, the device
 * evaluated and enforced. 0 applied, or -errno with err. */
struct xb_mdm_push;
typedef void (*xb_posture_rt_push_fn)(void *ctx, const struct xb_mdm_push *m);
void xb_posture_rt_on_push(struct xb_posture_rt *r, xb_posture_rt_push_fn fn, void *ctx);
int xb_posture_rt_remote_push(struct xb_posture_rt *r, const char *device, const char *key,
			      const char *nonce, int64_t until, json_t *attrs, char *err,
			      size_t errlen);

/* Reopen the audit log (SIGHUP). */
void xb_posture_rt_reopen_log(struct xb_posture_rt *r);
/* Close everything. NULL is ignored. */
void xb_posture_rt_close(struct xb_posture_rt *r);

#endif
