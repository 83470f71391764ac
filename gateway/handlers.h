/* The control handlers, in handlers.c and beside it (handlers_*.c): what
 * they share. Results as docs/control.md describes them. */
#ifndef XB_GATEWAY_HANDLERS_H
#define XB_GATEWAY_HANDLERS_H

#include <jansson.h>
#include <stddef.h>

#include "policy/policy.h"

struct xb_daemon;

/* handlers.c: "198.51.100.10", "small.conf:40", a tunnel as `tunnels' shows it. */
json_t *xb_hj_addr(int family, const void *a);
json_t *xb_hj_src(const struct xb_src *s);
json_t *xb_hj_tunnel(struct xb_daemon *d, size_t i);

/* handlers_explain.c: explain DEVICE DEST [PROTO/PORT]; drops [DEVICE]. */
int xb_cmd_explain(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);
int xb_cmd_drops(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);

#endif
