/* The read-only status page on the metrics listener (GET /status): each
 * tunnel's state with its last XB_STATUS_SAMPLES samples of RTT, loss and
 * jitter drawn as SVG by the daemon (no script), the devices with their
 * posture state and handshake age, and the recent events (gateway/health/alert.h)
 * as their JSON. Every string from the policy goes out
 * HTML-escaped (xb_status_html).
 *
 * Samples: the metrics server takes one per tunnel every
 * gateway.status_interval seconds (default 60: the last hour) from the
 * probe window's figures; a gap (the tunnel was not probed) is NAN and
 * breaks the line. */
#ifndef XB_STATUS_PAGE_H
#define XB_STATUS_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define XB_STATUS_SAMPLES 60

enum { XB_STATUS_RTT, XB_STATUS_LOSS, XB_STATUS_JITTER, XB_STATUS_N };

/* A tunnel's ring of samples, oldest first from head - n. */
struct xb_status_series {
	char *tunnel;					/* malloc'ed name */
	double v[XB_STATUS_N][XB_STATUS_SAMPLES];	/* ms, per cent, ms */
	size_t n, head;
};

void xb_status_push(struct xb_status_series *s, const double v[static XB_STATUS_N]);

struct xb_status_tunnel {
	const char *name, *state;
	const struct xb_status_series *s;	/* NULL: no samples yet */
};

struct xb_status_device {
	const char *name, *posture;	/* posture NULL: no profiles */
	int64_t handshake_age;		/* seconds, -1: none */
};

struct xb_status_view {
	const struct xb_status_tunnel *t;
	size_t n_t;
	const struct xb_status_device *d;
	size_t n_d, n_d_more;		/* devices shown, and left out */
	const char *const *events;	/* newest first: time, then the event */
	size_t n_events;
	unsigned interval;		/* seconds between samples */
	const char *generated;		/* when, as text */
};

/* The page (HTML5, inline SVG). */
void xb_status_render(FILE *f, const struct xb_status_view *v);
/* s with & < > " ' escaped. */
void xb_status_html(FILE *f, const char *s);

#endif
