/* The posture endpoint's connections (docs/posture.md, "Limits"): at most
 * per_source open from one address on one listener, and a deadline for
 * the request each is reading — its headers header_s after the connection
 * opened or its last answer left, its body body_s after its headers; none
 * while it is being answered (a held report waits for its round).
 * libmicrohttpd's own timeout measures only idleness: a client sending a
 * byte a second would hold its connection for ever.
 *
 * Wiring (posture_http.c): xb_pconns_admit is the daemon's accept policy
 * and xb_pconns_track its MHD_OPTION_NOTIFY_CONNECTION, both with a
 * struct xb_pconns_lsn as cls; the request handler reports the stages;
 * xb_pconns_sweep shuts a late connection's socket down, and
 * libmicrohttpd closes it when it reads the EOF in its next run. One
 * thread; times are monotonic ns.
 */
#ifndef XB_POSTURE_CONNS_H
#define XB_POSTURE_CONNS_H

#include <microhttpd.h>
#include <stdint.h>
#include <sys/socket.h>

struct xb_pconns;

/* One listener's view: the shared table and the listener's name for logs. */
struct xb_pconns_lsn {
	struct xb_pconns *set;
	const char *name;
};

/* NULL when out of memory. */
struct xb_pconns *xb_pconns_new(unsigned per_source, unsigned header_s, unsigned body_s);
/* Every listener using it must be stopped first. */
void xb_pconns_free(struct xb_pconns *p);

enum MHD_Result xb_pconns_admit(void *cls, const struct sockaddr *addr, socklen_t len);
void xb_pconns_track(void *cls, struct MHD_Connection *c, void **ctx,
		     enum MHD_ConnectionNotificationCode what);

/* The stages of a request on c: its headers are in (the body's deadline
 * starts), the whole request is in (no deadline while it is answered),
 * its answer has left (the next request's headers are due). */
void xb_pconns_headers_in(struct MHD_Connection *c, uint64_t now);
void xb_pconns_request_in(struct MHD_Connection *c);
void xb_pconns_answered(struct MHD_Connection *c, uint64_t now);

/* Shut down every connection past its deadline at now. */
void xb_pconns_sweep(struct xb_pconns *p, uint64_t now);
/* Milliseconds from now to the earliest deadline (0: one is due), or
 * UINT64_MAX when none is pending. */
uint64_t xb_pconns_next_ms(const struct xb_pconns *p, uint64_t now);
/* Connections refused (over per_source), and cut at their deadline. */
uint64_t xb_pconns_refused(const struct xb_pconns *p);
uint64_t xb_pconns_cut(const struct xb_pconns *p);

#endif
