/* The gateway policy: a libconfig file (docs/policy.md, xborder.conf(5))
 * loaded into a validated in-memory model.
 *
 *   struct xb_errors errs = { 0 };
 *   struct xb_policy *p = xb_policy_load("/etc/xborder/xborder.conf", &errs);
 *   if (!p) { xb_errors_print(&errs, stderr); ... }      every error, sorted
 *   xb_policy_allocate(p, state_path, &errs);           pool addresses
 *   xb_policy_save_addresses(p, state_path, &errs);     once p is in force
 *   ... use p, look objects up with xb_policy_*_by_*() ...
 *   xb_policy_free(p); xb_errors_free(&errs);
 *
 * A model returned by xb_policy_load() is complete and consistent: every
 * reference is resolved to an index, every default is filled in, every key
 * file has been read. Loading never stops at the first error: it collects
 * them all (unknown keys, wrong types, bad values, dangling references,
 * duplicates, overlaps, unsafe key files) and fails once at the end.
 *
 * Every object records where it was defined (struct xb_src) so that the
 * daemon can cite it. Secret keys live only in struct xb_key_file and are
 * wiped by xb_policy_free(); nothing here prints them.
 */
#ifndef XB_POLICY_H
#define XB_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnel/wgconf.h"

#define XB_NAME_MAX		63	/* device, group, profile, rule names */
#define XB_ADDRESS_QUARANTINE	600	/* seconds: gateway.address_quarantine */
#define XB_METRICS_DEVICES_MAX	200	/* gateway.metrics_devices_max */
#define XB_STATUS_INTERVAL	60	/* seconds: gateway.status_interval */
#define XB_TUNNEL_NAME_MAX	12	/* "xb-" + name fits IFNAMSIZ - 1 */
#define XB_IFNAME_MAX		15	/* IFNAMSIZ - 1 */

/* Where something was written. file points into xb_policy.files and lives
 * as long as the policy; line is 1-based (0 = the file as a whole). */
struct xb_src {
	const char *file;
	unsigned line;
};

/* A reference by name to another object, resolved by validation. */
struct xb_ref {
	char *name;
	unsigned line;		/* of the name, in the referring object's file */
	size_t idx;		/* into the referenced array, valid after load */
};

/* A key read from a file that must not be accessible by group or others. */
struct xb_key_file {
	char *path;		/* as written in the policy */
	char *resolved;		/* absolute: relative paths are taken from the
				 * directory of the main policy file */
	unsigned line;
	uint8_t key[WG_KEY_LEN];	/* secret; wiped by xb_policy_wipe_keys() */
	uint8_t public_key[WG_KEY_LEN];	/* derived from key (private keys only) */
	bool loaded;
};

/* A notification target (gateway.notify, docs/operations.md,
 * "Notifications"): where events are POSTed and in which shape. */
enum xb_notify_type { XB_NOTIFY_JSON, XB_NOTIFY_SLACK, XB_NOTIFY_PAGERDUTY };
struct xb_notify_target {
	enum xb_notify_type type;
	char *url;			/* http(s)://HOST[:PORT]/PATH; names resolved */
	char *ca_file;			/* trust anchors instead of the system's; NULL */
	/* json: token_file (sent as "Authorization: Bearer TOKEN");
	 * pagerduty: routing_key_file. As written, resolved, and the file's
	 * content (trailing white space removed), wiped when freed. */
	char *secret_file, *secret_resolved, *secret;
	char **headers;			/* json: extra "Name: value" lines */
	size_t n_headers;
	unsigned tries;			/* per event, in all */
	unsigned backoff_ms;		/* before the second try; doubles */
	unsigned give_up_s;		/* an event is dropped this long after its first try */
	unsigned timeout_s;		/* one try: connect, TLS, answer */
	bool from_webhook;		/* made from notify_webhook (not printed in notify) */
	unsigned line;
};

struct xb_gateway {
	struct xb_src src;
	char interface[XB_IFNAME_MAX + 1];	/* default "xb-dev" */
	uint16_t listen_port;			/* UDP, default 51820 */
	struct xb_key_file key;			/* private_key_file */
	bool has_pool4, has_pool6;		/* at least one is true */
	struct xb_prefix pool4, pool6;		/* host bits are zero */
	struct in_addr address4;		/* the gateway's address in each */
	struct in6_addr address6;		/* pool, default: the first host */
	uint16_t dns_port;			/* default 53 */
	/* DNS over UDP from devices answered through the device interface's
	 * local UDP tap, past the kernel (docs/dns.md, "The tap"); default
	 * true. False: through the TUN device and the kernel's stack. */
	bool dns_tap;
	uint16_t posture_port;			/* default 8443 */
	/* posture_admin = "ADDR:PORT" ("[ADDR]:PORT" for IPv6): where an MDM
	 * pushes attributes (docs/posture.md); unset: no admin endpoint. */
	bool has_posture_admin;
	int posture_admin_family;		/* AF_INET or AF_INET6 */
	struct in6_addr posture_admin_addr;	/* AF_INET: the first 4 bytes */
	uint16_t posture_admin_port;
	/* posture_limits = { ... } (docs/posture.md, "Limits"): what one device
	 * may ask of the posture endpoint. 0: the endpoint's default. */
	struct xb_posture_limits {
		unsigned rate, burst;		/* requests a second, after a burst */
		unsigned nonces_per_device;	/* unused nonces it holds */
		unsigned conns_per_source;	/* open connections */
		unsigned header_timeout, body_timeout;	/* seconds */
	} posture_limits;
	char *control_socket;			/* absolute path */
	char *state_dir;			/* absolute path */
	/* Seconds a pool address freed by a removed or re-addressed device
	 * waits before another device gets it (policy/alloc.c). */
	unsigned address_quarantine;
	/* Health (docs/probing.md, policy/health.c): Prometheus metrics on
	 * metrics ("ADDR:PORT", numeric; NULL = off); events to a command
	 * (argv, no shell; n = 0: none) and/or a webhook ("http://ADDR[:PORT]/
	 * PATH", numeric address; NULL: none); availability below slo (per
	 * cent over the last hour; 0 = off) is an event. */
	char *metrics;
	union xb_sockaddr metrics_addr;
	/* Devices with series of their own on /metrics, in policy order; the
	 * rest add up in device="_other" (docs/operations.md, "Metrics"). */
	unsigned metrics_devices_max;
	/* Seconds between the samples of the /status page's plots
	 * (gateway/status_page.h); 60 of them are kept. */
	unsigned status_interval;
	char **notify_command;
	size_t n_notify_command;
	char *notify_webhook;		/* as written; also a json target in notify */
	struct xb_notify_target *notify;	/* policy/notify.c */
	size_t n_notify;
	double slo;
	/* Enrolment (docs/enrolment.md): enrol_file names the devices file
	 * `xborderctl device add' writes (relative to the policy's directory;
	 * NULL: enrolment off); read like an `include' file, a missing one is
	 * empty. enrol_endpoint ("HOST:PORT") is what devices' wg-quick files
	 * give as the gateway's Endpoint. */
	char *enrol_file;
	char *enrol_file_resolved;		/* absolute */
	const char *enrol_src;			/* its xb_src.file when read, else NULL */
	char *enrol_endpoint;
	unsigned pool4_line, pool6_line, listen_port_line, dns_port_line, posture_port_line;
	unsigned posture_admin_line;
};

struct xb_group {
	struct xb_src src;
	char *name;
};

struct xb_device {
	struct xb_src src;
	char *name;
	uint8_t public_key[WG_KEY_LEN];
	struct xb_ref *groups;		/* idx into xb_policy.groups */
	size_t n_groups;
	/* has4/has6: the device has an address of that family: written in the
	 * policy (fixed4/fixed6) or, after xb_policy_allocate(), from the pool.
	 * A policy without pool6 gives devices no IPv6 address. */
	bool has4, has6, fixed4, fixed6;
	struct in_addr address4;
	struct in6_addr address6;
	/* expires: Unix seconds from which the device is refused (0: never),
	 * written as an RFC 3339 time. expired: the daemon's judgement of it
	 * as applied to the device interface (xb_device_expired at the last
	 * apply or expiry tick); false in a freshly loaded policy. */
	int64_t expires;
	bool expired;
	unsigned key_line, address4_line, address6_line, expires_line;
};

enum xb_tunnel_type { XB_TUNNEL_WIREGUARD, XB_TUNNEL_GRE };

/* A GRE tunnel's outer side (RFC 2784, key and sequence numbers RFC 2890).
 * local and remote are of one family. */
struct xb_gre {
	int family;			/* outer: AF_INET or AF_INET6 */
	struct in6_addr local;		/* AF_INET: the first 4 bytes */
	char *remote;			/* as written (lower case): literal or DNS name */
	bool remote_is_name;		/* resolved by the daemon, in family */
	struct in6_addr remote_addr;	/* the literal (!remote_is_name) */
	bool has_key;
	uint32_t key;
	bool sequence, checksum;	/* default false */
	uint16_t keepalive;		/* seconds, 0 = off; default 10 */
	uint8_t keepalive_retries;	/* default 3 */
	unsigned local_line, remote_line;
};
enum xb_backend { XB_BACKEND_AUTO, XB_BACKEND_KERNEL, XB_BACKEND_USERSPACE };

struct xb_tunnel {
	struct xb_src src;
	char *name;
	char ifname[XB_IFNAME_MAX + 1];		/* "xb-" name */
	enum xb_tunnel_type type;
	enum xb_backend backend;		/* default auto */
	char *config;				/* wg-quick file as written, or NULL */
	char *config_resolved;			/* absolute */
	/* Keys: read from the files named in the policy or, with config, from
	 * the wg-quick file (then key.path and psk.path are NULL). */
	struct xb_key_file key;			/* our private key for this tunnel */
	bool has_psk;
	struct xb_key_file psk;			/* preshared key (no public key) */
	uint8_t peer_public_key[WG_KEY_LEN];	/* the partner's key */
	/* endpoint: a DNS name (endpoint_is_name) the daemon resolves and
	 * re-resolves, or an IPv4/IPv6 literal (without brackets). */
	char *endpoint_host;
	uint16_t endpoint_port;
	bool endpoint_is_name;
	uint16_t listen_port;			/* 0 = any (default) */
	bool has_address4, has_address6;	/* inner addresses, with prefix */
	struct xb_prefix address4, address6;	/* length; host bits kept */
	bool has_peer4, has_peer6;		/* the partner's inner addresses */
	struct in_addr peer4;
	struct in6_addr peer6;
	struct xb_prefix *allowed_ips;		/* default 0.0.0.0/0, ::/0 */
	size_t n_allowed_ips;
	uint16_t keepalive;			/* seconds, 0 = off; default 25 */
	unsigned mtu;				/* default 1420 */
	bool snat;				/* default true */
	/* Probing (probe/probe.h): a round every probe_interval ms (default
	 * 1000, at least 50) to each target, in the prober's spec form
	 * ("icmp:ADDR", "tcp:ADDR:PORT", ...; canonical); none written: ICMP to
	 * peer4 and peer6. */
	unsigned probe_interval_ms;
	char **probe_targets;
	size_t n_probe_targets;
	double slo;			/* availability target, per cent; -1: gateway.slo */
	unsigned address4_line, address6_line, listen_port_line;
	/* type gre: the fields above that are WireGuard's (keys, endpoint,
	 * listen_port, allowed_ips, keepalive, config) stay empty; mtu
	 * defaults to 1476 (IPv4 outer) or 1456 (IPv6 outer), less 4 for each
	 * of key, sequence and checksum (GRE_DEFAULT_MTU). */
	struct xb_gre gre;
};

/* Posture (docs/posture.md). Platforms a device reports (os.family). */
enum xb_platform {
	XB_OS_LINUX, XB_OS_MACOS, XB_OS_WINDOWS, XB_OS_IOS, XB_OS_ANDROID, XB_OS_N
};
#define XB_OS_ALL ((1U << XB_OS_N) - 1)

enum xb_check_kind {
	XB_CHECK_OS_VERSION,		/* os.version OP version */
	XB_CHECK_AGENT_VERSION,		/* agent.version OP version */
	XB_CHECK_DISK_ENCRYPTION,	/* disk_encryption.system is true */
	XB_CHECK_FIREWALL,		/* firewall is true */
	XB_CHECK_SCREEN_LOCK,		/* screen_lock is true */
	XB_CHECK_SERIAL,		/* serial in serial_in / serial_file */
	XB_CHECK_PROCESS,		/* name among processes */
	XB_CHECK_FILE,			/* path among files (with sha256) */
	XB_CHECK_ATTRIBUTE,		/* attributes[name] OP value */
};

enum xb_cmp { XB_CMP_EQ, XB_CMP_NE, XB_CMP_LT, XB_CMP_LE, XB_CMP_GT, XB_CMP_GE };

/* A report or MDM attribute value, or a check's operand. */
enum xb_value_type { XB_VAL_STR, XB_VAL_NUM, XB_VAL_BOOL };
struct xb_value {
	enum xb_value_type type;
	char *str;		/* XB_VAL_STR */
	double num;		/* XB_VAL_NUM */
	bool b;			/* XB_VAL_BOOL */
};

/* One check; which members are used depends on kind. A check limited to
 * platforms does not apply to devices of other platforms (it is skipped);
 * mode report: evaluated and logged, never denies. */
struct xb_check {
	struct xb_src src;
	enum xb_check_kind kind;
	bool report_only;		/* mode = "report" */
	unsigned platforms;		/* 1 << XB_OS_* bits; XB_OS_ALL: any */
	bool platforms_set;		/* written in the check */
	enum xb_cmp op;			/* versions and attributes */
	char *arg;			/* the version, process name, file path
					 * or attribute name */
	bool has_sha256;		/* file */
	uint8_t sha256[32];
	char **serials;			/* sorted, unique (serial_in or file) */
	size_t n_serials;
	char *serial_file;		/* as written; NULL with serial_in */
	struct xb_value value;		/* attribute */
	bool mdm_only;			/* attribute, source = "mdm": only a
					 * pushed value counts, never the
					 * device's own report */
};

struct xb_profile {
	struct xb_src src;
	char *name;
	unsigned platforms;		/* 1 << XB_OS_* bits, default all */
	bool other_pass;		/* other_platforms = "pass": a device of
					 * another platform passes unchecked */
	unsigned max_age;		/* seconds a report stays valid, default 600 */
	struct xb_check *checks;	/* all must pass */
	size_t n_checks;
};

/* A management system (MDM/EDR) allowed to push device attributes. */
struct xb_mdm_key {
	struct xb_src src;
	char *name;
	uint8_t public_key[32];		/* Ed25519 */
};

#define XB_PROTO_TCP	0x1
#define XB_PROTO_UDP	0x2
#define XB_PROTO_ICMP	0x4
#define XB_PROTO_ICMPV6	0x8

struct xb_port_range {
	uint16_t lo, hi;	/* inclusive, 1 <= lo <= hi */
};

enum xb_action { XB_ACTION_DENY, XB_ACTION_ALLOW };
enum xb_via_kind { XB_VIA_TUNNEL, XB_VIA_BEST, XB_VIA_INTERNET };

struct xb_via {
	enum xb_via_kind kind;
	struct xb_ref tunnel;	/* XB_VIA_TUNNEL: idx into xb_policy.tunnels */
};

/* A rule matches a packet from a device when every non-empty criterion
 * matches: the device is listed or in a listed group (both empty: every
 * device), it passes one of the listed posture profiles (none: no posture), the destination is in
 * `to' or a to_lists file or has a name matching `domains' (none of the
 * three given: anywhere), the
 * protocol and port match. Rules are evaluated in order; the first match
 * decides; nothing matched is denied. */
struct xb_rule {
	struct xb_src src;
	char *name;
	struct xb_ref *groups;		/* idx into xb_policy.groups */
	size_t n_groups;
	struct xb_ref *devices;		/* idx into xb_policy.devices */
	size_t n_devices;
	struct xb_ref *posture;		/* idx into xb_policy.profiles */
	size_t n_posture;
	struct xb_prefix *to;		/* host bits are zero */
	size_t n_to;
	/* to_lists: prefix-list files, each ref's name as written and its idx
	 * into xb_policy.lists. A destination in `to' or in any list matches;
	 * a rule with lists that hold nothing of a family matches nothing of
	 * that family (never "anywhere"). */
	struct xb_ref *to_lists;
	size_t n_to_lists;
	char **domains;			/* lower case; "*.example.com" matches
					 * every name below example.com */
	size_t n_domains;
	bool learn_private;		/* the DNS service may put private
					 * addresses (RFC 1918, 100.64/10,
					 * fc00::/7) into its _dns sets */
	unsigned protocols;		/* XB_PROTO_* bits, 0 = any */
	struct xb_port_range *ports;	/* destination ports, none = any */
	size_t n_ports;
	enum xb_action action;
	struct xb_via *via;		/* allow only: preference order */
	size_t n_via;
	double slo;			/* availability target of its path, per cent;
					 * -1: gateway.slo */
};

/* The DNS service (docs/dns.md): how each query name is answered. Rules
 * are matched by name, the most specific pattern winning (exact beats
 * "*.name" beats ".name" at the same depth); a name no rule matches is
 * forwarded to `upstreams', or refused when there are none. Which devices
 * may reach the answered addresses, and by which path, is the business of
 * the access rules' `domains': every address answered for a name is put
 * into the _dns sets of the access rules whose domains match it. */
enum xb_dns_action { XB_DNS_FORWARD, XB_DNS_OVERRIDE, XB_DNS_TUNNEL, XB_DNS_BLOCK };
enum xb_dns_block { XB_DNS_BLOCK_NXDOMAIN, XB_DNS_BLOCK_REFUSED, XB_DNS_BLOCK_ADDRESS };

enum xb_dns_list_format { XB_DNS_LISTFMT_DNSMASQ, XB_DNS_LISTFMT_PATTERNS, XB_DNS_LISTFMT_DOMAINS };

struct xb_dns_rule {
	struct xb_src src;
	char *name;
	char **domains;			/* patterns as written, lower case */
	size_t n_domains;
	char **lists;			/* files as written */
	char **list_paths;		/* the same, absolute */
	size_t n_lists;
	enum xb_dns_list_format list_format;	/* default dnsmasq */
	enum xb_dns_action action;
	/* override: the answer */
	struct in_addr *a;
	size_t n_a;
	struct in6_addr *aaaa;
	size_t n_aaaa;
	char *cname;			/* lower case, or NULL */
	uint32_t ttl;			/* override and block answers; default 60 */
	/* tunnel: resolved by `servers' reached through tunnels. No list
	 * (n_tunnels 0): through the tunnels of the path the names' access
	 * rule uses, in the order failover uses them; `tunnel' written as one
	 * name (tunnel.name) is then the tunnel for names whose path has none
	 * (via = [ "internet" ]). A list (`tunnel = [ ... ]'): its own
	 * tunnels, in order, the down ones last. forward: by `servers'
	 * (default: the section's upstreams) */
	struct xb_ref tunnel;
	struct xb_ref *tunnels;
	size_t n_tunnels;
	union xb_sockaddr *servers;	/* port 53 unless written */
	size_t n_servers;
	/* block: how; also what a tunnel rule answers a device that may not
	 * reach the name (no access rule for it, or failing posture) */
	enum xb_dns_block block;	/* default nxdomain */
	bool has_block4, has_block6;
	struct in_addr block4;
	struct in6_addr block6;
};

struct xb_dns {
	bool enabled;			/* the section is present */
	union xb_sockaddr *upstreams;
	size_t n_upstreams;
	unsigned timeout_ms;		/* per try, default 1000 */
	unsigned tries;			/* per server, default 2 */
	unsigned grace;			/* s added to an answer's TTL in the sets, default 300 */
	unsigned cache_size;		/* entries, default 100000; 0: no cache */
	unsigned ttl_max;		/* default 3600 */
	unsigned learn_max;		/* learned destinations per access rule
					 * and family, default 65536 (also the
					 * _dns sets' size) */
	unsigned learn_answer_max;	/* addresses one answer may teach one
					 * rule, default 32 */
	unsigned negative_ttl_max;	/* default 3600 */
	unsigned ttl_min;		/* s an answer is cached at least, default 0 */
	unsigned serve_stale;		/* s past expiry an answer may be served
					 * when every upstream fails (RFC 8767),
					 * default 86400; 0: never */
	bool doh_canary;		/* answer use-application-dns.net
					 * NXDOMAIN, default true */
	char *query_log;		/* as written, or NULL */
	char *query_log_path;		/* absolute */
	unsigned long query_log_max;	/* bytes before rotation, default 64 MiB */
	struct xb_dns_rule *rules;
	size_t n_rules;
};

/* A prefix-list file named by rules' to_lists (policy/plist.c): one IPv4 or
 * IPv6 address or prefix a line, `#' comments, blank lines. Read when the
 * policy is loaded (so --check and every reload read it afresh), once
 * however many rules name it. */
#define XB_PLIST_MAX	262144u		/* prefixes in one file */
#define XB_PLIST_LINE_MAX 4096u		/* bytes in one line, its newline not counted */
struct xb_prefix_list {
	char *path;			/* as first written in the policy */
	char *resolved;			/* absolute */
	struct xb_prefix *v;		/* host bits zero, in file order */
	size_t n, n4, n6;		/* n4 + n6 = n */
};

struct xb_index;

/* cluster { } (policy/cluster.c, docs/ha.md "Shared state"): the gateways
 * sharing posture, learned destinations and endpoints through etcd. Absent
 * (enabled false): one gateway, SQLite only, as without it. */
#define XB_CLUSTER_ENDPOINTS_MAX	16
#define XB_CLUSTER_TIMEOUT_MS		1000	/* request_timeout_ms */
#define XB_CLUSTER_TAKEOVER_RATE	500	/* takeover_rate: handshakes a second */
#define XB_CLUSTER_PREFIX_MAX		128	/* bytes of prefix */
struct xb_cluster_cfg {
	bool enabled;
	struct xb_src src;
	char *name;			/* the cluster's name */
	char *node;			/* this gateway's name; default: the host name */
	char **endpoints;		/* etcd's client URLs, "http(s)://HOST:PORT" */
	size_t n_endpoints;
	bool tls;			/* the endpoints are https:// (all or none) */
	/* TLS files as written and resolved against the policy's directory:
	 * the CA that signed the members' certificates (required with https),
	 * the client's certificate and its key (both or neither; the key
	 * 0600, never read here beyond a check). NULL when not set. */
	char *ca_file, *ca_resolved;
	char *cert_file, *cert_resolved;
	char *key_file, *key_resolved;
	char *prefix;			/* every key under it; default "/xborder/NAME/" */
	unsigned request_timeout_ms;
	bool has_vip;			/* vip: the address devices connect to */
	int vip_family;
	uint8_t vip[16];
	unsigned takeover_rate;
};

struct xb_policy {
	char *path;			/* the main file, as given */
	char *dir;			/* its directory, absolute */
	char **files;			/* every policy file read, in load order */
	size_t n_files;
	struct xb_gateway gateway;
	struct xb_group *groups;
	size_t n_groups;
	struct xb_device *devices;	/* main file first, then included files */
	size_t n_devices;
	struct xb_tunnel *tunnels;
	size_t n_tunnels;
	struct xb_profile *profiles;
	size_t n_profiles;
	struct xb_mdm_key *mdm_keys;
	size_t n_mdm_keys;
	struct xb_rule *rules;
	size_t n_rules;
	struct xb_prefix_list *lists;	/* rules' to_lists, each file once */
	size_t n_lists;
	struct xb_dns dns;
	struct xb_cluster_cfg cluster;
	struct xb_index *index;		/* name, key and address lookups */
};

/* Expiry (policy/expiry.c). An RFC 3339 time, "2027-01-31T00:00:00Z" or
 * with an offset "+08:00", seconds only (no fractions), as Unix seconds;
 * false when s is not one. */
bool xb_time_parse(const char *s, int64_t *out);
/* "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with the NUL). */
void xb_time_format(char buf[static 21], int64_t t);
/* Whether dv is refused at now: it has an expiry and now is at or after it. */
bool xb_device_expired(const struct xb_device *dv, int64_t now);

/* Errors as "FILE:LINE: message". */
struct xb_error {
	char *file;
	unsigned line;		/* 0: the file as a whole, printed "FILE: message" */
	size_t rank;		/* order in which the file was read */
	size_t seq;
	char *msg;
};

struct xb_errors {
	struct xb_error *v;
	size_t n, cap;
	char **files;		/* in the order the loader read them */
	size_t n_files;
	bool oom;
};

void xb_errors_add(struct xb_errors *e, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Registers a file in read order, so that its errors sort after those of
 * files read before it (errors of unregistered files sort last). */
void xb_errors_file(struct xb_errors *e, const char *file);
/* Sorted by file (in read order), then line, then the order found. */
void xb_errors_sort(struct xb_errors *e);
void xb_errors_print(struct xb_errors *e, FILE *out);
/* The one formatter of an error, for every place that shows one (the
 * loader's output, the daemon's log, `xborderctl reload'): "FILE:LINE:
 * message", or "FILE: message" for line 0. malloc'ed; NULL on no memory. */
char *xb_error_str(const struct xb_error *x);
void xb_errors_free(struct xb_errors *e);

/* Loads and validates path. Returns NULL when anything is wrong, with every
 * error added to errs. */
struct xb_policy *xb_policy_load(const char *path, struct xb_errors *errs);
void xb_policy_free(struct xb_policy *p);
/* Wipes every secret key of p (the gateway's and tunnels' private keys,
 * preshared keys); public keys stay. The daemon calls it once WireGuard
 * has them (docs/security.md). */
void xb_policy_wipe_keys(struct xb_policy *p);

/* Gives every device without a fixed address one from the pool of each
 * family the gateway has. Assignments are kept across restarts through
 * state_path (policy/alloc.c has its format): a device keeps the address it
 * had when that address is still in the pool and free. An address the file
 * gives a device no longer in the policy (or no longer holding it) is in
 * quarantine: no other device gets it until gateway.address_quarantine
 * seconds after xb_policy_save_addresses() recorded it freed. Nothing is
 * written: a reload that fails later must leave the file as it was.
 * state_path NULL: start from nothing (what --check does).
 * Returns 0, or -1 with errors added (pool exhausted, unreadable or
 * malformed state file); on -1 the device addresses are unspecified. */
int xb_policy_allocate(struct xb_policy *p, const char *state_path, struct xb_errors *errs);
/* An address the cluster's store gives a device (docs/ha.md, "Pool
 * allocations"): the first gateway to write it won it. */
struct xb_alloc_shared {
	const char *name;
	int family;			/* AF_INET, AF_INET6 */
	uint8_t addr[16];
};
/* xb_policy_allocate() with the store's allocations (n of them, any order,
 * unchecked: an address outside the pool is ignored) as the arbiter: a
 * device the store names takes the store's address before the file's; an
 * address the store gives another device is given to none of p's (the
 * file's claim on it lost). With n 0 it is xb_policy_allocate(). */
int xb_policy_allocate_shared(struct xb_policy *p, const char *state_path,
			      const struct xb_alloc_shared *shared, size_t n,
			      struct xb_errors *errs);
/* Records p's assignments in state_path, replacing it atomically, with
 * the addresses freed since the file was written (and those still in
 * quarantine) until the time each may be given again. Called once p is in
 * force. 0, or -1 with the error added. */
int xb_policy_save_addresses(const struct xb_policy *p, const char *state_path,
			     struct xb_errors *errs);

/* The normalised policy in libconfig syntax: every default written out,
 * included devices inline, objects in file order, addresses canonical.
 * Secret keys are never printed: only their file paths, and the public key
 * derived from each private key as a comment. The output loads as a policy
 * equal to p (given the same directory for relative paths). */
void xb_policy_print(const struct xb_policy *p, FILE *out);

/* Lookups (hash tables; NULL when absent). */
const struct xb_device *xb_policy_device_by_name(const struct xb_policy *p, const char *name);
const struct xb_device *xb_policy_device_by_key(const struct xb_policy *p,
						const uint8_t key[static WG_KEY_LEN]);
/* family AF_INET (addr: struct in_addr) or AF_INET6 (struct in6_addr). */
const struct xb_device *xb_policy_device_by_addr(const struct xb_policy *p, int family,
						 const void *addr);
const struct xb_tunnel *xb_policy_tunnel_by_name(const struct xb_policy *p, const char *name);
const struct xb_group *xb_policy_group_by_name(const struct xb_policy *p, const char *name);
const struct xb_rule *xb_policy_rule_by_name(const struct xb_policy *p, const char *name);

const char *xb_backend_name(enum xb_backend b);
/* "linux", "macos", "windows", "ios", "android"; -1/NULL when unknown. */
int xb_platform_parse(const char *s);
const char *xb_platform_name(enum xb_platform p);
/* "==", "!=", "<", "<=", ">", ">="; -1/NULL when unknown. */
int xb_cmp_parse(const char *s);
const char *xb_cmp_name(enum xb_cmp c);
const char *xb_check_name(enum xb_check_kind k);
const struct xb_profile *xb_policy_profile_by_name(const struct xb_policy *p, const char *name);
const struct xb_mdm_key *xb_policy_mdm_key_by_name(const struct xb_policy *p, const char *name);

#endif
