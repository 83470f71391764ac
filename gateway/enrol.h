/* Enrolment and expiry in xborderd (docs/enrolment.md).
 *
 * Enrolment: `xborderctl device add/remove' are control commands. The
 * daemon owns the policy's path and its reload, so it writes the devices
 * file the policy names in gateway.enrol_file — written whole to a
 * temporary file, fsync'ed, renamed over the old one — and reloads through
 * the all-or-nothing reload (xb_daemon_reload). A reload that fails puts
 * the file's old content back (or removes a file that did not exist), so
 * the file on disk and the running policy agree. The operator's own files
 * are never written. Who may enrol: whoever may use the control socket
 * (mode 0660: root and the daemon's group), as for reload.
 *
 * Expiry: a device whose `expires' time has come has no WireGuard peer on
 * the device interface — nothing it sends is decrypted, so it is in no
 * allow set's reach — and its conntrack entries are deleted. The daemon
 * judges it at every load and every tick (one second), so a device that
 * expires while running is cut within a tick, not only at a reload.
 */
#ifndef XB_ENROL_H
#define XB_ENROL_H

#include "gateway/control.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stdint.h>

struct xb_daemon;

/* Sets every device's expired flag for now (before the policy is applied). */
void xb_enrol_judge(struct xb_policy *p, int64_t now);
/* The tick: devices of the running policy that expired since the last
 * judgement lose their peer and their flows. */
void xb_enrol_tick(struct xb_daemon *d);
/* After a reload: flows of devices expired in p but live in old are cut. */
void xb_enrol_cut_expired(const struct xb_policy *old, const struct xb_policy *p);

/* A device to write into the enrolment file. */
struct xb_enrol_dev {
	const char *name;
	uint8_t public_key[WG_KEY_LEN];
	const char *const *groups;
	size_t n_groups;
	int64_t expires;		/* 0: none */
	bool fixed4, fixed6;
	struct in_addr address4;
	struct in6_addr address6;
};

/* The enrolment file's text: p's devices that come from it (in order),
 * without the one named skip (NULL: none), then add (NULL: none).
 * Malloc'ed; NULL when out of memory. */
char *xb_enrol_text(const struct xb_policy *p, const char *skip, const struct xb_enrol_dev *add);
/* Replaces path by text: a temporary file beside it (mode 0640), fsync,
 * rename, fsync of the directory. 0, or -1 with errno. */
int xb_enrol_write(const char *path, const char *text);

/* The control commands (docs/control.md). */
int xb_enrol_cmd_add(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);
int xb_enrol_cmd_remove(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);
int xb_enrol_cmd_show(void *ctx, json_t *args, json_t **result, char **error, json_t **errors);

#endif
