/* The posture service's HTTP endpoint (docs/posture.md, "Reporting
 * endpoint"): devices fetch a nonce and post reports over their WireGuard
 * tunnel; an MDM pushes attributes on a separate admin address.
 *
 *   GET  /v1/nonce       200 {"nonce":"<32 hex>","expires_in":60}
 *   POST /v1/report      200 {"accepted":true,"seq":N, ...on_report's reply}
 *   POST /v1/attributes  200 {"accepted":true,"stored":N}     (admin address only)
 *
 * Every error is {"error":"one line"} with its status: 400 malformed, 401
 * stale or unknown nonce, 403 not a device address, 404, 405, 409 replayed
 * seq, 413 body over 64 KiB, 415 not application/json, 422 refused by the
 * daemon, 429 the device over its request rate, 503 nonce table full or
 * store failing.
 *
 * Limits, so that one device cannot starve the rest (issue #15): a device
 * makes at most `rate' requests a second after a `burst' (429 beyond, at
 * its headers, before anything else is looked at), holds at most
 * nonces_per_device unused nonces (a new one evicts its oldest; a used one
 * frees its slot), and opens at most conns_per_source connections; a
 * request must have its headers in within header_timeout_s of its
 * connection (or of the previous answer on it) and its body within
 * body_timeout_s of its headers, or its connection is closed. The device
 * listeners are bound to the device interface (ifname).
 *
 * A report is checked in this order, and nothing of it is stored unless all
 * pass: the peer address is a device's (device_for), the body is a JSON
 * object with an integer "seq" above the device's last accepted one, its
 * "nonce" was issued to this device, is unexpired and unused (the check uses
 * the nonce up), on_report accepts it; then it is committed to the store,
 * and only after the commit is it applied (on_round) and acknowledged.
 *
 * Group commit: the reports and pushes accepted in one pass over the ready
 * connections (a round; up to 4 a xb_posture_http_process() call) are written in
 * one transaction, each inside a savepoint of its own, so that a write
 * that fails undoes only its request (503, and on_undo forgets what
 * on_report or on_push accepted for it). Their answers are held (the
 * connections suspended) until the round ends: the transaction commits,
 * on_round applies and enforces what they changed — or, when the commit
 * failed, drops all of it — and then every one of them is answered: 200,
 * or 503 for all if the commit failed. Nothing a 503 answers has changed
 * the daemon's state. The answers leave in the next pass. When the transaction cannot be opened (the store busy
 * or failing) the round's requests are refused with 503 before they are
 * vetted: no nonce spent, no state changed.
 *
 * Plain HTTP/1.1 (libmicrohttpd): WireGuard already encrypts the device side
 * and binds the source address to the device's key. Everything runs in the
 * caller's thread: poll xb_posture_http_fd() (an epoll fd, nests in the daemon's
 * epoll set) and call xb_posture_http_process() when it is readable.
 */
#ifndef XB_POSTURE_HTTP_H
#define XB_POSTURE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/jsonlog.h"
#include "gateway/posture/posture_store.h"

#define XB_POSTURE_HTTP_PORT 8443
#define XB_POSTURE_HTTP_MAX_BODY (64u << 10)	/* bytes of a request body */
#define XB_POSTURE_HTTP_MAX_CONNS 256		/* per listening address */
#define XB_POSTURE_HTTP_TIMEOUT_S 5		/* a connection idle this long is closed */
#define XB_POSTURE_HTTP_NONCE_TTL_S 60
#define XB_POSTURE_HTTP_NONCES_PER_DEVICE 4	/* live (unused) nonces a device holds */
#define XB_POSTURE_HTTP_NONCES 65536		/* live nonces, all devices */
#define XB_POSTURE_HTTP_RATE 5			/* requests a second per device ... */
#define XB_POSTURE_HTTP_BURST 20		/* ... after a burst of this many */
#define XB_POSTURE_HTTP_CONNS_PER_SOURCE 8	/* open connections per peer address */
#define XB_POSTURE_HTTP_HEADER_TIMEOUT_S 5	/* from connection (or last answer) to headers */
#define XB_POSTURE_HTTP_BODY_TIMEOUT_S 10	/* from headers to the whole body */
#define XB_POSTURE_HTTP_MAX_LISTEN 4

struct xb_posture_http_ops {
	/* The device whose tunnel address peer is, or NULL. */
	const char *(*device_for)(void *ctx, const struct sockaddr *peer);
	/* Evaluate a report (borrowed) without applying it yet. 0 accepts:
	 * *reply may be set to a new JSON object whose members are added to
	 * the 200 answer. Non-zero refuses with err (one line): 422, nothing
	 * stored. */
	int (*on_report)(void *ctx, const char *device, json_t *report, json_t **reply,
			 char *err, size_t errlen);
	/* Verify and parse an MDM push (sig: the X-Xborder-Signature header,
	 * NULL when absent). 0 accepts: *attrs is a new JSON array of
	 * {"device":s,"key":s,"value":any,"expires_at":ms (optional),"source":s}
	 * to store; it may write to the store itself (inside the request's
	 * savepoint). Non-zero refuses with err: that status when it is
	 * 400..499 or 503, else 422. May be NULL when there is no admin
	 * address. */
	int (*on_push)(void *ctx, const char *body, size_t len, const char *sig,
		       json_t **attrs, char *err, size_t errlen);
	/* The end of a round that accepted reports or pushes, after its
	 * commit and before any of their answers: committed, apply what
	 * on_report and on_push accepted (state, sets, cuts); not, forget it
	 * all. May be NULL. */
	void (*on_round)(void *ctx, bool committed);
	/* The last report or push accepted by on_report / on_push had its
	 * writes undone (it is answered 503): forget it. May be NULL. */
	void (*on_undo)(void *ctx);
	/* A cluster's say on a report (docs/ha.md, "Shared state"), asked once
	 * it passed the local checks (device, seq above the store's, nonce —
	 * spent now) and before on_report and the store: 0 goes on at once;
	 * XB_POSTURE_HTTP_GATE_WAIT holds the request, its connection
	 * suspended, until xb_posture_http_gate_done(id) brings the verdict;
	 * an HTTP status (400-599) refuses it with err. May be NULL: no gate. */
	int (*gate)(void *ctx, const char *device, int64_t seq, const char *body, size_t len,
		    uint64_t id, char *err, size_t errlen);
};

#define XB_POSTURE_HTTP_GATE_WAIT 1

struct xb_posture_http_config {
	const char *listen[XB_POSTURE_HTTP_MAX_LISTEN];	/* device-side addresses, IPv4 or IPv6 */
	uint16_t port;				/* 0: XB_POSTURE_HTTP_PORT */
	const char *admin;			/* admin address, NULL: off */
	uint16_t admin_port;			/* 0: XB_POSTURE_HTTP_PORT */
	unsigned max_conns;			/* 0: the defaults above, here and below */
	unsigned timeout_s;
	unsigned nonce_ttl_s;
	unsigned nonces_per_device;
	unsigned nonces;
	const char *ifname;			/* device listeners bound to it; NULL: not bound */
	unsigned rate, burst;			/* requests a second per device, and a burst */
	unsigned conns_per_source;		/* open connections per peer address */
	unsigned header_timeout_s;		/* a request's headers must be in by then */
	unsigned body_timeout_s;		/* and its body this long after its headers */
};

struct xb_posture_http;

/* Listen on every address (bound even before the address exists: freebind).
 * ops, ctx and store must outlive the service; audit (may be NULL) gets one
 * line per report and push, accepted or not. NULL with the reason logged. */
struct xb_posture_http *xb_posture_http_open(const struct xb_posture_http_config *cfg, const struct xb_posture_http_ops *ops,
			     void *ctx, struct xb_posture_store *store, struct xb_jsonlog *audit);
int xb_posture_http_fd(const struct xb_posture_http *s);
/* Non-blocking: accept, read, answer, time out. */
void xb_posture_http_process(struct xb_posture_http *s);
/* Bind the device listeners to ifname again (SO_BINDTODEVICE keeps the
 * index it found: a device interface deleted and made again has a new one). */
void xb_posture_http_rebind(struct xb_posture_http *s, const char *ifname);
/* Connections open now, all addresses (for status and tests). Beyond
 * max_conns on an address, new connections wait in the kernel's listen
 * backlog until one closes. */
size_t xb_posture_http_conns(const struct xb_posture_http *s);

/* What the limits refused, since the service opened (docs/operations.md). */
struct xb_posture_http_stats {
	uint64_t limited;		/* requests refused 429: a device over its rate */
	uint64_t conns_refused;		/* connections over conns_per_source */
	uint64_t deadline_closed;	/* connections cut: a request not in by its deadline */
	uint64_t nonce_full;		/* nonce requests refused 503: the table full */
};
void xb_posture_http_stats(const struct xb_posture_http *s, struct xb_posture_http_stats *out);
/* The gate's verdict on the report it held as id: status 0 lets it go on
 * (evaluated, stored, enforced, answered 200 as any other), else it is
 * refused with that status and msg. An id no longer held (its connection
 * closed, the service reopened) is ignored. */
void xb_posture_http_gate_done(struct xb_posture_http *s, uint64_t id, unsigned status,
			       const char *msg);
void xb_posture_http_close(struct xb_posture_http *s);

#endif
