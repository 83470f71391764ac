/* Prometheus text metrics (exposition format 0.0.4) on the policy's
 * gateway.metrics address: GET /metrics. libmicrohttpd in epoll mode, no
 * thread of its own: the page is built in the daemon's thread from its
 * state (docs/operations.md lists the metrics and what to alert on).
 */
#ifndef XB_METRICS_H
#define XB_METRICS_H

#include <stdbool.h>

struct xb_daemon;
struct xb_metrics;
struct xb_policy;

/* Start, move or stop (metrics unset) the server in *m for policy p; its
 * epoll fd is added to epfd with data.ptr = the server. 0, or -1 logged
 * (the address cannot be bound). */
int xb_metrics_set(struct xb_metrics **m, int epfd, const struct xb_policy *p,
		   struct xb_daemon *d);
bool xb_metrics_owns(const struct xb_metrics *m, const void *tag);
void xb_metrics_process(struct xb_metrics *m);
void xb_metrics_free(struct xb_metrics *m);

/* The page as text (malloc'ed), for tests and the server. */
char *xb_metrics_render(struct xb_daemon *d);

#endif
