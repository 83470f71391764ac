/* The posture endpoint's connections (docs/posture.md, "Limits"): at most
 * per_source open from one address on one listener, and a deadline for
 * the request each is reading — its headers header_s after the connection
 * opened or its last answer left, its body body_s after its headers; none
 * while it is being answered (a held report waits for its round).
 * libmicrohttpd's own timeout measures only idleness: a client sending a
 * byte a second would hold its connection for ever.
 *
 * Wiring (posture_http.c): xb_posture_conns_admit is the daemon's accept policy
 * and xb_posture_conns_track its MHD_OPTION_NOTIFY_CONNECTION, both with a
 * struct xb_posture_conns_lsn as cls; the request handler reports the stages;
 * xb_posture_conns_sweep shuts a late connection's socket down, and
 * libmicrohttpd closes it when it reads the EOF in its next run. One
 * thread; times are monotonic ns.
 */
#ifndef XB_POSTURE_CONNS_H
#define XB_POSTURE_CONNS_H

#include <microhttpd.h>
#include <stdint.h>
#include <sys/socket.h>

struct xb_posture_conns;

/* One listener's view: the shared table and the listener's name for logs. */
struct xb_posture_conns_lsn {
	struct xb_posture_conns *set;
	const char *name;
};

/* NULL when out of memory. */
struct xb_posture_conns *xb_posture_conns_new(unsigned per_source, unsigned header_s, unsigned body_s);
/* Every listener using it must be stopped first. */
void xb_posture_conns_free(struct xb_posture_conns *p);

enum MHD_Result xb_posture_conns_admit(void *cls, const struct sockaddr *addr, socklen_t len);
void xb_posture_conns_track(void *cls, struct MHD_Connection *c, void **ctx,
		     enum MHD_ConnectionNotificationCode what);

/* The stages of a request on c: its headers are in (the body's deadline
 * starts), the whole request is in (no deadline while it is answered),
 * its answer has left (the next request's headers are due). */
void xb_posture_conns_headers_in(struct MHD_Connection *c, uint64_t now);
void xb_posture_conns_request_in(struct MHD_Connection *c);
void xb_posture_conns_answered(struct MHD_Connection *c, uint64_t now);

/* Shut down every connection past its deadline at now. */
void xb_posture_conns_sweep(struct xb_posture_conns *p, uint64_t now);
/* Milliseconds from now to the earliest deadline (0: one is due), or
 * UINT64_MAX when none is pending. */
uint64_t xb_posture_conns_next_ms(const struct xb_posture_conns *p, uint64_t now);
/* Connections refused (over per_source), and cut at their deadline. */
uint64_t xb_posture_conns_refused(const struct xb_posture_conns *p);
uint64_t xb_posture_conns_cut(const struct xb_posture_conns *p);

#endif
