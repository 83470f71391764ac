/* Shared between the policy module's files; not part of its interface. */
#ifndef XB_POLICY_INTERNAL_H
#define XB_POLICY_INTERNAL_H

#include <libconfig.h>

#include "common/array.h"
#include "policy/policy.h"

#define QUOTE_MAX 64	/* bytes of a bad value echoed in a message */
#define WHAT_MAX (QUOTE_MAX + 32)	/* "tunnel \"NAME\"" in a message */

/* Open addressing, linear probing; keys are not copied: they point into the
 * model and must not change while they are in a map. */
struct xb_map_slot {
	const void *key;	/* NULL: empty */
	uint32_t len;
	uint32_t val;
};

struct xb_map {
	struct xb_map_slot *v;
	size_t cap, n;		/* cap: a power of two, or 0 */
};

/* Returns true and inserts when key is new; false with *old set when it is
 * already there (or, with *old = UINT32_MAX, when memory ran out). */
bool xbp_map_put(struct xb_map *m, const void *key, size_t len, uint32_t val, uint32_t *old);
bool xbp_map_get(const struct xb_map *m, const void *key, size_t len, uint32_t *val);
void xbp_map_del(struct xb_map *m, const void *key, size_t len);
void xbp_map_free(struct xb_map *m);

struct xb_index {
	struct xb_map groups, devices, keys, addr4, addr6, tunnels, profiles, rules, dns_rules,
		mdm_keys;
};

/* Loading context: the policy being filled and where errors go. */
struct ld {
	struct xb_policy *p;
	struct xb_errors *errs;
	const char *dir;	/* the main file's directory as given ("." if none) */
	const char *top;	/* the file being read, as passed to libconfig */
	const char *raw;	/* last libconfig file name seen, and ... */
	const char *file;	/* ... its interned name in p->files */
	bool oom;
};

/* cfg.c: libconfig access that reports what is wrong. `what' names the
 * object in messages ("gateway", "device \"alice\""). */
struct xb_src xbp_src(struct ld *l, const config_setting_t *s);
void xbp_err(struct ld *l, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void xbp_err_at(struct ld *l, struct xb_src src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The policy's copy of a file name (name is taken over); the file is
 * registered with the errors in the order first seen. */
const char *xbp_intern_name(struct ld *l, char *name);
/* The same for a name libconfig gives a setting (NULL: the file read). */
const char *xbp_intern(struct ld *l, const char *file);
const char *xbp_quote(char buf[static QUOTE_MAX + 4], const char *v);
const char *xbp_type_name(int type);
/* Reports every member of group s not in names (NULL-terminated). */
void xbp_check_keys(struct ld *l, const config_setting_t *s, const char *what,
		    const char *const *names);
/* Getters: NULL/false when the key is absent or has the wrong type (the
 * latter reported). */
const char *xbp_get_str(struct ld *l, const config_setting_t *s, const char *key,
			const char *what, unsigned *line);
bool xbp_get_int(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		 long lo, long hi, long *out);
bool xbp_get_bool(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		  bool *out);
/* A list `( )' or an array `[ ]'; an empty array is an empty list. */
config_setting_t *xbp_get_list(struct ld *l, const config_setting_t *s, const char *key,
			       const char *what);
/* A list of strings into references, resolved by validation. */
bool xbp_get_refs(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		  struct xb_ref **v, size_t *n);
/* The element's string, or NULL with "KEY: element N must be a string". */
const char *xbp_elem_str(struct ld *l, const config_setting_t *e, const char *key,
			 const char *what);
bool xbp_name_ok(const char *name, size_t max, bool tunnel);
/* The object's `name', checked (tunnel: a tunnel name), a bad one
 * reported. Sets what to `KIND "NAME"', or `KIND #N' (N = idx + 1) when
 * there is no name. Returns the name even when it is bad (validation does
 * not index bad names), NULL when there is none. */
const char *xbp_obj_name(struct ld *l, const config_setting_t *s, const char *kind, int idx,
			 bool tunnel, char *what, size_t len);
/* The elements of a list that must be groups { }; others are reported. */
bool xbp_elem_group(struct ld *l, const config_setting_t *e, const char *list);
/* A list of objects: each element of s that is a group { } (others are
 * reported, naming list) gets a new zeroed element at the end of the array
 * whose address is arrp (a T **, *n elements of size bytes) and is parsed
 * into it by elem(l, element, object, index). Out of memory: l->oom, and
 * the rest of the list is left. */
typedef void (*xbp_elem_fn)(struct ld *l, const config_setting_t *s, void *obj, int idx);
void xbp_parse_objects(struct ld *l, const config_setting_t *s, const char *list, void *arrp,
		       size_t *n, size_t size, xbp_elem_fn elem);
char *xbp_strdup(struct ld *l, const char *s);
/* dir/path, or path when it is absolute or dir is "." */
char *xbp_join(const char *dir, const char *path);
/* path opened for reading if it is a regular file. NULL with *not_regular
 * set for a directory, FIFO or device (a FIFO's open would wait for a
 * writer, /dev/zero never ends), else with errno set. */
FILE *xbp_fopen_regular(const char *path, bool *not_regular);
/* The name in names[0..n) (n = SIZE_MAX: a NULL-terminated list) closest
 * to s by edit distance, if it is close enough to be a likely typo. */
const char *xbp_suggest(const char *s, const char *const *names, size_t n);

/* addr.c */
bool xbp_prefix_in(const struct xb_prefix *outer, const struct xb_prefix *inner);
bool xbp_prefix_overlap(const struct xb_prefix *a, const struct xb_prefix *b);
bool xbp_prefix_host_bits(const struct xb_prefix *p);
void xbp_prefix_mask(struct xb_prefix *p);
void xbp_prefix_format(char *buf, size_t len, const struct xb_prefix *p);
void xbp_addr_format(char *buf, size_t len, int family, const void *addr);
/* A host address "192.0.2.1" (no /len, or /32 and /128) of the family. */
bool xbp_addr_parse(int family, const char *s, void *addr);
/* A host address compared with a pool. */
bool xbp_addr_in(const struct xb_prefix *pool, const void *addr);
bool xbp_addr_reserved(const struct xb_prefix *pool, const void *addr);
/* The address `off' hosts after the pool's network address, if in the pool. */
bool xbp_pool_nth(const struct xb_prefix *pool, uint64_t off, void *addr);

/* keyfile.c: reads a key file, refusing one accessible by group or others.
 * Secret: the file's content is never echoed. */
bool xbp_key_file(struct ld *l, const config_setting_t *g, const char *what,
		  const char *key, struct xb_key_file *kf, bool private_key);
/* m: the setting naming the file (for messages), shown: its path as
 * written, path: where it is. */
bool xbp_secret_file_ok(struct ld *l, const config_setting_t *m, const char *what,
			const char *shown, const char *path);

/* A secret file's one line of text (a token, a routing key), malloc'ed;
 * NULL after reporting why (mode, type, not one line). Never echoed. */
char *xbp_secret_text(struct ld *l, const config_setting_t *m, const char *what,
		      const char *shown, const char *path);
/* notify.c: gateway.notify and the old notify_webhook. */
void xbp_parse_notify(struct ld *l, const config_setting_t *s, struct xb_gateway *g);
void xbp_print_notify(const struct xb_gateway *g, FILE *out);
void xbp_notify_free(struct xb_gateway *g);

/* parse.c, tunnel.c, rule.c: the sections */
void xbp_parse_gateway(struct ld *l, const config_setting_t *s);
void xbp_parse_groups(struct ld *l, const config_setting_t *s);
void xbp_parse_devices(struct ld *l, const config_setting_t *s);
void xbp_parse_profiles(struct ld *l, const config_setting_t *s);	/* posture.c */
void xbp_parse_mdm_keys(struct ld *l, const config_setting_t *s);
/* gateway.posture_limits (s: the gateway group). */
void xbp_parse_posture_limits(struct ld *l, const config_setting_t *s, struct xb_gateway *g);
void xbp_print_posture_limits(const struct xb_gateway *g, FILE *out);
void xbp_profile_free(struct xb_profile *pr);
void xbp_parse_tunnels(struct ld *l, const config_setting_t *s);
void xbp_parse_rules(struct ld *l, const config_setting_t *s);
/* plist.c: a rule's to_lists, each file read into l->p->lists once. */
void xbp_parse_to_lists(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_rule *r);
void xbp_lists_free(struct xb_policy *p);
void xbp_parse_dns(struct ld *l, const config_setting_t *s);
void xbp_dns_free(struct xb_dns *d);
/* tunnel.c: endpoint "host:port"; host a DNS name, an IPv4 or a [IPv6]
 * literal. A DNS name: labels of letters, digits and '-', the last one not
 * all digits; stored in lower case. */
bool xbp_endpoint_parse(struct xb_tunnel *t, const char *s);
bool xbp_dns_name_ok(const char *s);
/* gre.c: the GRE-only settings of a tunnel of type "gre"; sets the MTU
 * default for the outer family. */
/* health.c: the tunnel's probe settings, the gateway's metrics and
 * notifications; their printers and frees. */
void xbp_parse_probe(struct ld *l, const config_setting_t *s, const char *what, struct xb_tunnel *t);
void xbp_parse_health(struct ld *l, const config_setting_t *s, struct xb_gateway *g);
void xbp_print_probe(const struct xb_tunnel *t, FILE *out);
void xbp_parse_slo(struct ld *l, const config_setting_t *s, const char *what, double *slo);
void xbp_print_health(const struct xb_gateway *g, FILE *out);
void xbp_health_free(struct xb_gateway *g, struct xb_tunnel *t);
void xbp_put_str(FILE *out, const char *s);	/* print.c: quoted, escaped */
void xbp_parse_gre(struct ld *l, const config_setting_t *s, const char *what, struct xb_tunnel *t);

/* cluster.c: the cluster section. */
void xbp_parse_cluster(struct ld *l, const config_setting_t *s);
void xbp_print_cluster(const struct xb_cluster_cfg *c, FILE *out);
void xbp_cluster_free(struct xb_cluster_cfg *c);

/* validate.c */
void xbp_validate(struct ld *l);
void xbp_index_free(struct xb_index *x);

void xbp_refs_free(struct xb_ref *v, size_t n);	/* cfg.c */

#endif
