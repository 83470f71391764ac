/* The daemon's side of active/standby; see ha_daemon.h. */
#include "gateway/cluster/ha_daemon.h"
#include "gateway/daemon.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

int xb_ha_daemon_open(struct xb_daemon *d, const char *vip, unsigned rate, xb_ha_source_fn source,
		      void *ctx)
{
	struct xb_ha_opts o = { .vip = vip, .rate = rate, .wg = &d->devif, .source = source, .ctx = ctx };
	struct epoll_event ev = { .events = EPOLLIN };
	char err[160];

	if (!(d->ha = xb_ha_open(&o, err, sizeof(err)))) {
		log_warnx("active/standby: %s", err);
		return -1;
	}
	ev.data.fd = xb_ha_fd(d->ha);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		log_warn("active/standby: watching its events");
		xb_ha_close(d->ha);
		d->ha = NULL;
		return -1;
	}
	return 0;
}

int xb_ha_cmd_takeover(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	long n;

	(void)args;
	(void)errors;
	if (!d->ha) {
		*error = strdup("no cluster configured: there are no shared endpoints to take over "
				"(docs/ha.md)");
		return -1;
	}
	if ((n = xb_ha_takeover(d->ha, "operator")) < 0) {
		char buf[160];

		snprintf(buf, sizeof(buf), "takeover failed: %s (the daemon's log has more)",
			 strerror((int)-n));
		*error = strdup(buf);
		return -1;
	}
	*result = xb_ha_json(d->ha);
	return 0;
}
