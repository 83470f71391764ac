/* Internals of the posture service's HTTP endpoint, shared by
 * posture_http.c (the service: listeners, rounds, the gate) and
 * posture_http_req.c (requests: routes, reports, pushes, answers). */
#ifndef XB_POSTURE_HTTP_INT_H
#define XB_POSTURE_HTTP_INT_H

#include "gateway/posture/posture_http.h"
#include "gateway/posture/posture_conns.h"
#include "gateway/posture/posture_nonce.h"
#include "gateway/posture/posture_rate.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>

#define DISCARD_MAX (1u << 20)	/* body bytes thrown away after a 413 is due */

enum route { R_NONE, R_NONCE, R_REPORT, R_PUSH };

struct lsn {
	struct xb_posture_http *svc;
	struct MHD_Daemon *d;
	bool admin;
	char name[64];		/* address:port, for log lines */
	struct xb_posture_conns_lsn conns;	/* {svc->conns, name} */
};

struct xb_posture_http {
	struct xb_posture_http_config cfg;	/* defaults filled in */
	const struct xb_posture_http_ops *ops;
	void *ctx;
	struct xb_posture_store *store;
	struct xb_jsonlog *audit;
	struct xb_posture_nonce *nonces;
	struct xb_posture_rate *rate;
	struct xb_posture_conns *conns;	/* every open connection, all listeners */
	uint64_t limited, nonce_full;	/* for xb_posture_http_stats() */
	int epfd, tfd;
	/* The round: every report and push accepted in one xb_posture_http_process()
	 * call is written in one transaction (open while in_tx), and answered
	 * after it commits. */
	bool in_tx, tx_failed;
	char why[160];			/* why the round's transaction failed */
	struct req *held, *held_last;	/* in the order accepted */
	struct req *gating;		/* reports waiting on the gate, suspended */
	uint64_t gate_id;		/* the last id given; starts at the clock */
	size_t n_lsn;
	struct lsn lsn[XB_POSTURE_HTTP_MAX_LISTEN + 1];
};

/* A request with a body, between handle() calls. An accepted report or
 * push is held (its connection suspended) until the round's commit: then
 * `answer' is sent, or a 503 if the commit failed. */
struct req {
	enum route route;
	char *body;
	size_t len;
	size_t discarded;	/* > 0: over the limit, answered 413 at the end */
	struct MHD_Connection *conn;
	struct req *next;	/* in xb_posture_http.held */
	bool held, ready;	/* suspended; resumed with its answer */
	unsigned status;
	json_t *answer;
	char addr[INET6_ADDRSTRLEN];
	char *device;		/* for the audit line; NULL for a push */
	json_int_t seq;
	/* The gate (ops->gate): waiting on it (in xb_posture_http.gating),
	 * passed, or refused with gate_status and gate_msg. */
	bool gating, gated;
	unsigned gate_status;
	char *gate_msg;
	uint64_t gate_id;
	struct req *gnext;
};

/* posture_http.c: the round. */
/* Start one request's writes in the round's transaction, opening it at
 * the round's first request. False (refuse with 503, before anything is
 * vetted, enforced or remembered) when it cannot be opened — the store
 * busy or failing — or the round is already lost. */
bool posture_http_join(struct xb_posture_http *s);
/* End one request's writes: kept, or undone alone when it failed. */
void posture_http_part(struct xb_posture_http *s, bool keep);
/* Keep an accepted request's answer (ok) until the round is enforced and
 * committed; its connection waits, suspended. */
enum MHD_Result posture_http_hold(struct xb_posture_http *s, struct MHD_Connection *c, struct req *q,
				  const char *addr, const char *device, json_int_t seq, json_t *ok);
/* Ask the gate about a report that passed the local checks: 0 passed, a
 * status to refuse with (msg), or XB_POSTURE_HTTP_GATE_WAIT (suspended). */
unsigned posture_http_gate(struct xb_posture_http *s, struct MHD_Connection *c, struct req *r,
			   const char *device, json_int_t seq, char *msg, size_t len);

/* posture_http_req.c: requests, for libmicrohttpd's callbacks. */
void posture_http_audit(struct xb_posture_http *s, const char *event, const char *addr,
			const char *device, json_int_t seq, unsigned status, const char *error);
enum MHD_Result posture_http_handle(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *data,
				    size_t *size, void **con_cls);
void posture_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
		       enum MHD_RequestTerminationCode why);

#endif
