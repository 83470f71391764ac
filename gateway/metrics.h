/* Prometheus text metrics (exposition format 0.0.4) on the policy's
 * gateway.metrics address: GET /metrics. libmicrohttpd in epoll mode, no
 * thread of its own: the daemon owns the server, nests its fd in its loop
 * and calls xb_metrics_process() when it is readable and once a second
 * (connection timeouts); the page is built in the daemon's thread from
 * its state (docs/operations.md lists the metrics and what to alert on).
 */
#ifndef XB_METRICS_H
#define XB_METRICS_H

struct xb_daemon;
struct xb_metrics;
struct xb_policy;

/* Start, move or stop (metrics unset) the server in *m for policy p; its
 * epoll fd (xb_metrics_fd) is added to epfd with data.fd. 0, or -1 logged
 * (the address cannot be bound). */
int xb_metrics_set(struct xb_metrics **m, int epfd, const struct xb_policy *p,
		   struct xb_daemon *d);
int xb_metrics_fd(const struct xb_metrics *m);
void xb_metrics_process(struct xb_metrics *m);
void xb_metrics_free(struct xb_metrics *m);

/* The page as text (malloc'ed), for tests and the server. */
char *xb_metrics_render(struct xb_daemon *d);

#endif
