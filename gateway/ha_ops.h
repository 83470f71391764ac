/* The daemon's side of active/standby (gateway/cluster/ha.h): opening it from the
 * policy's cluster section, and the `takeover' control command. */
#ifndef XB_HA_OPS_H
#define XB_HA_OPS_H

#include "gateway/cluster/ha.h"

#include <jansson.h>

struct xb_policy;

struct xb_daemon;

/* d->ha watching vip (NULL: manual takeover only) with devices from source;
 * its fd joins the daemon's loop. 0, or -1 with the reason logged. */
int xb_ha_daemon_open(struct xb_daemon *d, const char *vip, unsigned rate, xb_ha_source_fn source,
		      void *ctx);
/* From the policy's cluster section (vip, takeover_rate), with the devices'
 * endpoints from d->cluster: after xb_daemon_cluster_start(). Nothing
 * without a cluster. 0, or -1 with the reason logged. */
int xb_ha_daemon_start(struct xb_daemon *d, const struct xb_policy *p);
/* After a reload: reopened when vip or takeover_rate changed. */
void xb_ha_daemon_reload(struct xb_daemon *d, const struct xb_policy *p);
void xb_ha_daemon_stop(struct xb_daemon *d);
/* `takeover': start one now. Result: xb_ha_json() after the start. */
int xb_ha_cmd_takeover(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);

#endif
