/* xborder-posture — the device agent: collects this machine's posture and
 * reports it to the gateway (docs/posture.md, "The Linux agent").
 *
 * Every collector adds its fact to a report object, or leaves it out when the
 * fact cannot be determined: an absent fact fails a gateway check, a guessed
 * one could pass it wrongly. Paths under /etc, /proc and /sys are read below
 * env->root ("" on a real machine) so that tests can point the collectors at
 * a tree of their own.
 */
#ifndef XB_AGENT_POSTURE_H
#define XB_AGENT_POSTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XBA_VERSION "0.1.0"
#define XBA_DEFAULT_CONF "/etc/xborder-posture.conf"
#define XBA_DEFAULT_STATE "/var/lib/xborder-posture"
#define XBA_DEFAULT_PORT 8443
/* The gateway refuses larger bodies (413). */
#define XBA_MAX_BODY (64 * 1024)
/* The kernel keeps 15 characters of a process name (TASK_COMM_LEN - 1). */
#define XBA_COMM_MAX 15

/* The agent's configuration (xborder-posture(8)); strings owned. */
struct xba_conf {
	char *gateway;			/* IPv4 or IPv6 literal */
	uint16_t port;
	unsigned interval_s;		/* report at least this often */
	unsigned check_s;		/* re-collect this often; report on change */
	unsigned timeout_s;		/* per HTTP exchange */
	unsigned retry_max_s;		/* backoff cap */
	char *state_dir;
	char *screen_lock_cmd;		/* exit 0: locked, 1: not; else absent */
	char *attributes_file;
	char **mounts;			/* volumes beside / */
	size_t n_mounts;
	char **processes;
	size_t n_processes;
	char **files;
	size_t n_files;
};

/* Where the collectors look. */
struct xba_env {
	const char *root;		/* prefix for /etc, /proc, /sys; "" for real */
	const struct xba_conf *conf;
	bool firewall_nft;		/* ask the kernel's nftables (off in tests) */
};

/* Load FILE into conf (defaults for what it leaves out). Every error is
 * printed as FILE:LINE: message; returns -1 after all of them. */
int xba_conf_load(struct xba_conf *conf, const char *path);
void xba_conf_free(struct xba_conf *conf);

/* The collectors (collect.c, disk.c, firewall.c): each adds its key to
 * report, or nothing when the fact is unknown. Return -1 only when out of
 * memory. */
int xba_collect_os(const struct xba_env *env, json_t *report);
int xba_collect_serial(const struct xba_env *env, json_t *report);
int xba_collect_processes(const struct xba_env *env, json_t *report);
int xba_collect_files(const struct xba_env *env, json_t *report);
int xba_collect_attributes(const struct xba_env *env, json_t *report);
int xba_collect_screen_lock(const struct xba_env *env, json_t *report);
int xba_collect_disk(const struct xba_env *env, json_t *report);
int xba_collect_firewall(const struct xba_env *env, json_t *report);
/* All of them, with "agent"; the facts a report carries besides seq, nonce
 * and time. NULL when out of memory. */
json_t *xba_collect(const struct xba_env *env);

/* Whether block device MAJ:MIN sits on dm-crypt, following slaves/ (LVM on
 * LUKS, RAID of LUKS): 1 yes, 0 no, -1 unknown. */
int xba_dev_encrypted(const struct xba_env *env, unsigned maj, unsigned min);
/* The decision on `nft -j list ruleset' output: 1 when some base chain on
 * the input hook (families ip, ip6, inet) has policy drop, 0 when none has,
 * -1 when the text is not such output. */
int xba_firewall_from_json(const char *json);

/* Parse one "key = value" attributes file into obj: true/false become
 * booleans, integers numbers, "quoted" or bare text strings; # comments.
 * Bad lines are logged as FILE:LINE and skipped. -1 when unreadable. */
int xba_attributes_read(const char *path, json_t *obj);

/* sha256 of a file, streamed, as 64 lowercase hex digits. */
int xba_sha256_file(const char *path, char hex[static 65]);

#endif
