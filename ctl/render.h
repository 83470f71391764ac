/* xborderctl's text output: the result JSON of each control command rendered
 * for people — aligned columns for lists that can be long (devices, rules),
 * wg-show style blocks for the few things with many fields (status,
 * tunnels), sizes in KiB/MiB, times as "1m40s ago". The schemas are in
 * docs/control.md; keys a renderer does not know are ignored, keys missing
 * or null show as "-". Strings from the daemon are printed with control
 * characters replaced, so nothing it sends can drive the terminal.
 */
#ifndef XB_CTL_RENDER_H
#define XB_CTL_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct xb_render {
	FILE *out;
	bool colour;	/* ANSI colours: the caller decides (a tty, NO_COLOR unset) */
	time_t now;	/* wall clock, seconds: what "ago" counts from */
};

/* Each prints result and returns 0, or returns -1 without printing when
 * result does not have the command's shape (e.g. not a list). */
typedef int (*xb_render_fn)(const struct xb_render *r, json_t *result);
int xb_render_status(const struct xb_render *r, json_t *result);
int xb_render_devices(const struct xb_render *r, json_t *result);
int xb_render_tunnels(const struct xb_render *r, json_t *result);
int xb_render_rules(const struct xb_render *r, json_t *result);
int xb_render_dns(const struct xb_render *r, json_t *result);
int xb_render_posture(const struct xb_render *r, json_t *result);
int xb_render_reload(const struct xb_render *r, json_t *result);
int xb_render_explain(const struct xb_render *r, json_t *result);
int xb_render_drops(const struct xb_render *r, json_t *result);
int xb_render_takeover(const struct xb_render *r, json_t *result);
int xb_render_cluster_prune(const struct xb_render *r, json_t *result);

/* "512 B", "1.50 KiB", "12.00 MiB" ... up to TiB. */
void xb_fmt_bytes(char *buf, size_t size, uint64_t bytes);
/* A duration in seconds: "42s", "1m40s", "2h05m", "3d04h". */
void xb_fmt_duration(char *buf, size_t size, uint64_t secs);

#endif
