/* Loading a policy: the main file, the files its `include' names, then
 * validation of the whole. Each file is its own libconfig document; an
 * included file holds only `devices'. libconfig's textual @include works
 * too, relative to the main file's directory.
 *
 * Every error of every file is collected; the load fails once at the end.
 * A file with a syntax error contributes that one error (libconfig stops
 * there) and nothing else.
 */
#include "policy/internal.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const top_keys[] = {
	"gateway", "groups", "include", "devices", "tunnels", "profiles", "mdm_keys", "rules", "dns",
	"cluster", NULL
};

/* Reads one document; false (reported) when it cannot be read or parsed.
 * Read from the stream checked to be a regular file, so libconfig names no
 * file for an error of the document itself: that is path. */
static bool read_doc(struct ld *l, const char *path, config_t *c)
{
	bool not_regular;
	FILE *f = xbp_fopen_regular(path, &not_regular);
	const char *at;
	int ok;

	config_init(c);
	l->top = path;
	l->raw = NULL;
	if (!f) {
		xb_errors_add(l->errs, xbp_intern(l, path), 0, "%s",
			      not_regular ? "not a regular file" : strerror(errno));
		config_destroy(c);
		return false;
	}
	config_set_include_dir(c, l->dir);
	ok = config_read(c, f);
	fclose(f);
	if (ok)
		return true;
	at = config_error_file(c);
	xb_errors_add(l->errs, xbp_intern(l, at ? at : path), (unsigned)config_error_line(c), "%s",
		      config_error_text(c));
	config_destroy(c);
	return false;
}

static bool already_read(const struct xb_policy *p, const char *file)
{
	for (size_t i = 0; i < p->n_files; i++)
		if (!strcmp(p->files[i], file))
			return true;
	return false;
}

static void include_file(struct ld *l, const config_setting_t *e, const char *file)
{
	char qb[QUOTE_MAX + 4];
	config_setting_t *root;
	config_t c;

	if (already_read(l->p, file)) {
		xbp_err(l, e, "include: `%s' is already read", xbp_quote(qb, file));
		return;
	}
	if (!read_doc(l, file, &c))
		return;
	root = config_root_setting(&c);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(m);

		if (!strcmp(name, "devices"))
			xbp_parse_devices(l, m);
		else if (!strcmp(name, "device"))
			xbp_err(l, m, "unknown key `%s' (did you mean `devices'?)", name);
		else
			xbp_err(l, m, "`%s' cannot be in an included file (it holds only devices)", name);
	}
	config_destroy(&c);
}

static bool has_magic(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Patterns are relative to the main file's directory; a pattern with
 * wildcards may match nothing (an empty devices.d/), a plain path must
 * exist. Matches are read in sorted order. */
static void parse_includes(struct ld *l, const config_setting_t *list, const char *main_top)
{
	char qb[QUOTE_MAX + 4];

	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *pat = xbp_elem_str(l, e, "include", "include");
		char *full;
		glob_t g;
		int r;

		if (!pat || !(full = xbp_join(l->dir, pat))) {
			l->oom |= pat != NULL;
			continue;
		}
		r = glob(full, GLOB_ERR, NULL, &g);
		l->top = main_top;
		l->raw = NULL;
		if (r == GLOB_NOMATCH && !has_magic(pat))
			xbp_err(l, e, "include: `%s': %s", xbp_quote(qb, pat), strerror(ENOENT));
		else if (r && r != GLOB_NOMATCH)
			xbp_err(l, e, "include: `%s': cannot read the directory", xbp_quote(qb, pat));
		for (size_t k = 0; !r && k < g.gl_pathc; k++) {
			include_file(l, e, g.gl_pathv[k]);
			l->top = main_top;
			l->raw = NULL;
		}
		if (r != GLOB_NOMATCH)
			globfree(&g);
		free(full);
	}
}

/* gateway.enrol_file: read like an included file after the include list;
 * until the first `xborderctl device add' it need not exist. */
static void parse_enrol_file(struct ld *l, const config_setting_t *gw, const char *main_top)
{
	const config_setting_t *m = gw ? config_setting_get_member(gw, "enrol_file") : NULL;
	char *full;

	if (!l->p->gateway.enrol_file || !m)
		return;
	if (!(full = xbp_join(l->dir, l->p->gateway.enrol_file))) {
		l->oom = true;
		return;
	}
	if (access(full, F_OK) == 0 || errno != ENOENT)
		include_file(l, m, full);
	for (size_t i = 0; i < l->p->n_files; i++)
		if (!strcmp(l->p->files[i], full))
			l->p->gateway.enrol_src = l->p->files[i];
	l->top = main_top;
	l->raw = NULL;
	free(full);
}

static config_setting_t *section(struct ld *l, const config_setting_t *root, const char *key,
				 bool group)
{
	config_setting_t *s = config_setting_get_member(root, key);

	if (!s)
		return NULL;
	if (group ? config_setting_is_group(s) : (config_setting_is_list(s) || config_setting_is_array(s)))
		return s;
	xbp_err(l, s, "%s must be %s, not %s", key, group ? "a group { }" : "a list ( )",
		xbp_type_name(config_setting_type(s)));
	return NULL;
}

static void parse_main(struct ld *l, config_t *c)
{
	const config_setting_t *root = config_root_setting(c);
	const char *main_top = l->top;
	config_setting_t *s, *inc;

	xbp_check_keys(l, root, NULL, top_keys);
	if ((s = section(l, root, "gateway", true)))
		xbp_parse_gateway(l, s);
	else if (!config_setting_get_member(root, "gateway"))
		xb_errors_add(l->errs, l->p->path, 0, "no gateway { } section");
	if ((s = section(l, root, "groups", false)))
		xbp_parse_groups(l, s);
	if ((s = section(l, root, "devices", false)))
		xbp_parse_devices(l, s);
	if ((s = section(l, root, "tunnels", false)))
		xbp_parse_tunnels(l, s);
	if ((s = section(l, root, "profiles", false)))
		xbp_parse_profiles(l, s);
	if ((s = section(l, root, "mdm_keys", false)))
		xbp_parse_mdm_keys(l, s);
	if ((s = section(l, root, "rules", false)))
		xbp_parse_rules(l, s);
	if ((s = section(l, root, "dns", true)))
		xbp_parse_dns(l, s);
	if ((s = section(l, root, "cluster", true)))
		xbp_parse_cluster(l, s);
	if ((inc = section(l, root, "include", false)))
		parse_includes(l, inc, main_top);
	parse_enrol_file(l, config_setting_get_member(root, "gateway"), main_top);
}

/* The directory relative paths are taken from: as given, for messages,
 * and absolute, for the model. */
static bool set_dirs(struct ld *l, char **given)
{
	char *copy = strdup(l->p->path);

	if (!copy || !(*given = strdup(dirname(copy)))) {
		free(copy);
		return false;
	}
	free(copy);
	l->dir = *given;
	l->p->dir = realpath(*given, NULL);
	if (!l->p->dir)
		l->p->dir = strdup(*given);
	return l->p->dir != NULL;
}

struct xb_policy *xb_policy_load(const char *path, struct xb_errors *errs)
{
	struct xb_policy *p = calloc(1, sizeof(*p));
	struct ld l = { .p = p, .errs = errs };
	size_t n0 = errs->n;
	char *dir = NULL;
	config_t c;

	if (!p || !(p->path = strdup(path)) || !set_dirs(&l, &dir) || sodium_init() < 0) {
		xb_errors_add(errs, path, 0, "out of memory");
		free(dir);
		xb_policy_free(p);
		return NULL;
	}
	xb_errors_file(errs, path);
	if (read_doc(&l, path, &c)) {
		parse_main(&l, &c);
		config_destroy(&c);
		xbp_validate(&l);
	}
	if (l.oom)
		xb_errors_add(errs, path, 0, "out of memory");
	free(dir);
	if (errs->n > n0 || errs->oom) {
		xb_policy_free(p);
		return NULL;
	}
	return p;
}

static void key_file_free(struct xb_key_file *kf)
{
	free(kf->path);
	free(kf->resolved);
	sodium_memzero(kf, sizeof(*kf));
}

void xb_policy_wipe_keys(struct xb_policy *p)
{
	sodium_memzero(p->gateway.key.key, WG_KEY_LEN);
	for (size_t i = 0; i < p->n_tunnels; i++) {
		sodium_memzero(p->tunnels[i].key.key, WG_KEY_LEN);
		sodium_memzero(p->tunnels[i].psk.key, WG_KEY_LEN);
	}
}

static void tunnel_free(struct xb_tunnel *t)
{
	free(t->name);
	free(t->config);
	free(t->config_resolved);
	key_file_free(&t->key);
	key_file_free(&t->psk);
	free(t->endpoint_host);
	free(t->allowed_ips);
	free(t->gre.remote);
	xbp_health_free(NULL, t);
}

static void rule_free(struct xb_rule *r)
{
	free(r->name);
	xbp_refs_free(r->groups, r->n_groups);
	xbp_refs_free(r->devices, r->n_devices);
	xbp_refs_free(r->posture, r->n_posture);
	free(r->to);
	xbp_refs_free(r->to_lists, r->n_to_lists);
	for (size_t i = 0; i < r->n_domains; i++)
		free(r->domains[i]);
	free(r->domains);
	free(r->ports);
	for (size_t i = 0; i < r->n_via; i++)
		free(r->via[i].tunnel.name);
	free(r->via);
}

void xb_policy_free(struct xb_policy *p)
{
	if (!p)
		return;
	xbp_index_free(p->index);
	key_file_free(&p->gateway.key);
	free(p->gateway.control_socket);
	xbp_health_free(&p->gateway, NULL);
	free(p->gateway.state_dir);
	free(p->gateway.enrol_file);
	free(p->gateway.enrol_file_resolved);
	free(p->gateway.enrol_endpoint);
	for (size_t i = 0; i < p->n_groups; i++)
		free(p->groups[i].name);
	for (size_t i = 0; i < p->n_devices; i++) {
		free(p->devices[i].name);
		xbp_refs_free(p->devices[i].groups, p->devices[i].n_groups);
	}
	for (size_t i = 0; i < p->n_tunnels; i++)
		tunnel_free(&p->tunnels[i]);
	for (size_t i = 0; i < p->n_profiles; i++)
		xbp_profile_free(&p->profiles[i]);
	for (size_t i = 0; i < p->n_mdm_keys; i++)
		free(p->mdm_keys[i].name);
	free(p->mdm_keys);
	for (size_t i = 0; i < p->n_rules; i++)
		rule_free(&p->rules[i]);
	xbp_lists_free(p);
	for (size_t i = 0; i < p->n_files; i++)
		free(p->files[i]);
	free(p->groups);
	free(p->devices);
	free(p->tunnels);
	free(p->profiles);
	free(p->rules);
	xbp_dns_free(&p->dns);
	xbp_cluster_free(&p->cluster);
	free(p->files);
	free(p->path);
	free(p->dir);
	free(p);
}
