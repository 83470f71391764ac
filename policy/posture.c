/* The posture sections: `profiles' (named sets of checks a device's report
 * must pass) and `mdm_keys' (management systems allowed to push device
 * attributes). Syntax, types and values; docs/posture.md has the meaning.
 *
 *   profiles = ( { name = "corp"; platforms = [ "linux", "macos" ];
 *                  max_age = 600; other_platforms = "fail";
 *                  checks = ( { os_version = ">= 12"; platforms = [ "linux" ]; },
 *                             { firewall = true; mode = "report"; },
 *                             { attribute = "edr.score"; op = ">="; value = 80;
 *                               source = "mdm"; } ); } );
 *   mdm_keys = ( { name = "intune"; public_key = "<base64 Ed25519>"; } );
 *
 * A check is a group with exactly one kind key (check_keys below) and the
 * modifiers that kind takes. Versions are checked with xb_version_ok() at
 * load, serial files read at load (a reload reads them again).
 */
#include "policy/internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/version.h"

#define MAX_AGE_DEFAULT	600		/* seconds */
#define MAX_AGE_MAX	(30 * 86400)
#define SERIAL_MAX	256		/* bytes of a serial number */
#define SERIALS_MAX	1000000		/* serials in one check */

static const char *const platform_names[XB_OS_N] = {
	"linux", "macos", "windows", "ios", "android"
};
static const char *const cmp_names[] = { "==", "!=", "<", "<=", ">", ">=" };
/* Indexed by enum xb_check_kind; serial_file is XB_CHECK_SERIAL too. */
static const char *const kind_keys[] = {
	"os_version", "agent_version", "disk_encryption", "firewall", "screen_lock",
	"serial_in", "process", "file", "attribute", "serial_file", NULL
};
static const char *const profile_keys[] = {
	"name", "platforms", "max_age", "other_platforms", "checks", NULL
};
static const char *const check_keys[] = {
	"os_version", "agent_version", "disk_encryption", "firewall", "screen_lock",
	"serial_in", "serial_file", "process", "file", "attribute", "sha256", "op", "value",
	"mode", "platforms", "source", NULL
};
static const char *const mdm_keys[] = { "name", "public_key", NULL };
static const char *const limit_keys[] = {
	"requests_per_second", "burst", "nonces_per_device", "connections_per_source",
	"header_timeout", "body_timeout", NULL
};

int xb_platform_parse(const char *s)
{
	for (int i = 0; i < XB_OS_N; i++)
		if (!strcmp(s, platform_names[i]))
			return i;
	return -1;
}

const char *xb_platform_name(enum xb_platform p)
{
	return (unsigned)p < XB_OS_N ? platform_names[p] : NULL;
}

int xb_cmp_parse(const char *s)
{
	for (int i = 0; i < 6; i++)
		if (!strcmp(s, cmp_names[i]))
			return i;
	return -1;
}

const char *xb_cmp_name(enum xb_cmp c)
{
	return (unsigned)c < 6 ? cmp_names[c] : NULL;
}

const char *xb_check_name(enum xb_check_kind k)
{
	return k <= XB_CHECK_ATTRIBUTE ? kind_keys[k] : NULL;
}

/* platforms = [ ... ]: 1 << XB_OS_* bits; 0 when absent or all bad. */
static unsigned get_platforms(struct ld *l, const config_setting_t *s, const char *what)
{
	config_setting_t *list = xbp_get_list(l, s, "platforms", what);
	char qb[QUOTE_MAX + 4];
	unsigned bits = 0;

	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "platforms", what);
		int p;

		if (!v)
			continue;
		if ((p = xb_platform_parse(v)) < 0)
			xbp_err(l, e, "%s: platforms: unknown platform `%s' (linux, macos, windows, "
				"ios, android)", what, xbp_quote(qb, v));
		else
			bits |= 1U << p;
	}
	if (list && !config_setting_length(list))
		xbp_err(l, list, "%s: platforms is empty", what);
	return bits;
}

/* "OP VERSION", e.g. ">= 14.2". */
static void parse_version(struct ld *l, const config_setting_t *m, const char *what,
			  struct xb_check *c)
{
	const char *v = config_setting_get_string(m), *p = v;
	char op[3] = "", qb[QUOTE_MAX + 4];
	size_t n = 0;
	int k;

	while (*p == ' ')
		p++;
	while (n < 2 && *p && strchr("=!<>", *p))
		op[n++] = *p++;
	while (*p == ' ')
		p++;
	if ((k = xb_cmp_parse(op)) < 0)
		xbp_err(l, m, "%s: %s `%s' does not start with an operator (==, !=, <, <=, >, >=)",
			what, config_setting_name(m), xbp_quote(qb, v));
	else if (!xb_version_ok(p))
		xbp_err(l, m, "%s: %s `%s': `%s' is not a version (like 14.2 or 0.1.0-rc1)", what,
			config_setting_name(m), xbp_quote(qb, v), p);
	else if (!(c->arg = xbp_strdup(l, p)))
		return;
	c->op = k < 0 ? XB_CMP_EQ : (enum xb_cmp)k;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes duplicates, for bsearch() by evaluation. */
static void serials_sort(struct xb_check *c)
{
	size_t k = 0;

	if (!c->n_serials)
		return;
	qsort(c->serials, c->n_serials, sizeof(*c->serials), cmp_str);
	for (size_t i = 1; i < c->n_serials; i++) {
		if (strcmp(c->serials[i], c->serials[k]))
			c->serials[++k] = c->serials[i];
		else
			free(c->serials[i]);
	}
	c->n_serials = k + 1;
}

static bool serial_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > SERIAL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)s[i]))
			return false;
	return true;
}

static bool serial_add(struct ld *l, struct xb_check *c, const char *s)
{
	char **v = xb_grow(c->serials, c->n_serials, sizeof(*v));

	if (!v) {
		l->oom = true;
		return false;
	}
	c->serials = v;
	if (!(v[c->n_serials] = xbp_strdup(l, s)))
		return false;
	c->n_serials++;
	return true;
}

static void parse_serial_in(struct ld *l, const config_setting_t *m, const char *what,
			    struct xb_check *c)
{
	char qb[QUOTE_MAX + 4];

	for (int i = 0; i < config_setting_length(m); i++) {
		config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "serial_in", what);

		if (!v)
			continue;
		if (!serial_ok(v))
			xbp_err(l, e, "%s: serial_in: `%s' is not a serial number (1-%d printable "
				"characters, no spaces)", what, xbp_quote(qb, v), SERIAL_MAX);
		else if (!serial_add(l, c, v))
			return;
	}
	if (!config_setting_length(m))
		xbp_err(l, m, "%s: serial_in is empty", what);
	serials_sort(c);
}

/* One serial number a line; blank lines and lines starting with '#' are
 * skipped, white space around a serial is ignored. Errors cite the file. */
static void read_serials(struct ld *l, FILE *f, const char *shown, struct xb_check *c)
{
	char *line = NULL, qb[QUOTE_MAX + 4];
	size_t cap = 0;
	unsigned no = 0;

	while (getline(&line, &cap, f) >= 0 && ++no <= SERIALS_MAX) {
		char *s = line, *e;

		while (isspace((unsigned char)*s))
			s++;
		for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (!*s || *s == '#')
			continue;
		if (!serial_ok(s))
			xb_errors_add(l->errs, shown, no, "`%s' is not a serial number (1-%d "
				      "printable characters, no spaces)", xbp_quote(qb, s), SERIAL_MAX);
		else if (!serial_add(l, c, s))
			break;
	}
	if (no > SERIALS_MAX)
		xb_errors_add(l->errs, shown, no, "more than %d lines", SERIALS_MAX);
	free(line);
}

static void parse_serial_file(struct ld *l, const config_setting_t *m, const char *what,
			      struct xb_check *c)
{
	const char *v = config_setting_get_string(m);
	char *path = xbp_join(l->dir, v), qb[QUOTE_MAX + 4];
	bool not_regular;
	FILE *f;

	if (!path || !(c->serial_file = xbp_strdup(l, v))) {
		l->oom = true;
		free(path);
		return;
	}
	if (!(f = xbp_fopen_regular(path, &not_regular))) {
		if (not_regular)
			xbp_err(l, m, "%s: serial_file `%s' is not a regular file", what, xbp_quote(qb, v));
		else
			xbp_err(l, m, "%s: serial_file `%s': %s", what, xbp_quote(qb, v), strerror(errno));
	} else {
		read_serials(l, f, path, c);
		if (!c->n_serials)
			xbp_err(l, m, "%s: serial_file `%s' lists no serial number", what,
				xbp_quote(qb, v));
		fclose(f);
	}
	free(path);
	serials_sort(c);
}

static void parse_sha256(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_check *c)
{
	const char *v = xbp_get_str(l, s, "sha256", what, NULL), *end;
	size_t n;
	char qb[QUOTE_MAX + 4];

	if (!v)
		return;
	if (strlen(v) != 64 || sodium_hex2bin(c->sha256, 32, v, 64, NULL, &n, &end) || n != 32)
		xbp_err(l, config_setting_get_member(s, "sha256"),
			"%s: sha256 `%s' is not 64 hexadecimal digits", what, xbp_quote(qb, v));
	else
		c->has_sha256 = true;
}

/* attribute = "key"; op = ">="; value = 80; (op default "=="). Ordering a
 * string compares versions, so such a value must be one; booleans only
 * compare for equality. */
static void parse_attribute(struct ld *l, const config_setting_t *s, const char *what,
			    struct xb_check *c)
{
	const config_setting_t *m = config_setting_get_member(s, "value");
	const char *op = xbp_get_str(l, s, "op", what, NULL);
	char qb[QUOTE_MAX + 4];
	int k = op ? xb_cmp_parse(op) : XB_CMP_EQ;

	if (k < 0)
		xbp_err(l, config_setting_get_member(s, "op"), "%s: op `%s' is not one of ==, !=, "
			"<, <=, >, >=", what, xbp_quote(qb, op));
	c->op = k < 0 ? XB_CMP_EQ : (enum xb_cmp)k;
	if (!m) {
		xbp_err(l, s, "%s: attribute needs a value", what);
		return;
	}
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		c->value = (struct xb_value){ .type = XB_VAL_NUM,
					      .num = (double)config_setting_get_int64(m) };
		return;
	case CONFIG_TYPE_FLOAT:
		c->value = (struct xb_value){ .type = XB_VAL_NUM, .num = config_setting_get_float(m) };
		return;
	case CONFIG_TYPE_BOOL:
		c->value = (struct xb_value){ .type = XB_VAL_BOOL, .b = config_setting_get_bool(m) };
		if (c->op > XB_CMP_NE)
			xbp_err(l, m, "%s: a boolean value compares only with == or !=", what);
		return;
	case CONFIG_TYPE_STRING:
		c->value.type = XB_VAL_STR;
		c->value.str = xbp_strdup(l, config_setting_get_string(m));
		if (c->value.str && c->op > XB_CMP_NE && !xb_version_ok(c->value.str))
			xbp_err(l, m, "%s: op %s on a string compares versions, and `%s' is not one",
				what, cmp_names[c->op], xbp_quote(qb, c->value.str));
		return;
	}
	xbp_err(l, m, "%s: value must be a string, a number or a boolean, not %s", what,
		xbp_type_name(config_setting_type(m)));
}

/* source = "any" (default: a pushed value, else the device's own) or
 * "mdm" (only a pushed value: a device cannot vouch for what its MDM or
 * EDR says about it). */
static void parse_source(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_check *c)
{
	const char *src = xbp_get_str(l, s, "source", what, NULL);
	char qb[QUOTE_MAX + 4];

	if (!src || !strcmp(src, "any"))
		return;
	if (!strcmp(src, "mdm"))
		c->mdm_only = true;
	else
		xbp_err(l, config_setting_get_member(s, "source"), "%s: source `%s' is not "
			"\"any\" or \"mdm\"", what, xbp_quote(qb, src));
}

static void parse_true(struct ld *l, const config_setting_t *m, const char *what)
{
	if (config_setting_type(m) != CONFIG_TYPE_BOOL)
		xbp_err(l, m, "%s: %s must be true, not %s", what, config_setting_name(m),
			xbp_type_name(config_setting_type(m)));
	else if (!config_setting_get_bool(m))
		xbp_err(l, m, "%s: %s = false checks nothing; leave the check out", what,
			config_setting_name(m));
}

/* Checks the modifiers a kind does not take are absent. */
static void no_modifier(struct ld *l, const config_setting_t *s, const char *what,
			const char *kind, const char *key)
{
	const config_setting_t *m = config_setting_get_member(s, key);

	if (m)
		xbp_err(l, m, "%s: %s does not apply to a %s check", what, key, kind);
}

static void parse_kind(struct ld *l, const config_setting_t *s, const config_setting_t *m,
		       const char *what, struct xb_check *c)
{
	const char *key = config_setting_name(m);
	bool want_str = c->kind != XB_CHECK_DISK_ENCRYPTION && c->kind != XB_CHECK_FIREWALL &&
			c->kind != XB_CHECK_SCREEN_LOCK && strcmp(key, "serial_in");

	if (c->kind != XB_CHECK_FILE)
		no_modifier(l, s, what, key, "sha256");
	if (c->kind != XB_CHECK_ATTRIBUTE) {
		no_modifier(l, s, what, key, "op");
		no_modifier(l, s, what, key, "value");
		no_modifier(l, s, what, key, "source");
	}
	if (want_str && config_setting_type(m) != CONFIG_TYPE_STRING) {
		xbp_err(l, m, "%s: %s must be a string, not %s", what, key,
			xbp_type_name(config_setting_type(m)));
		return;
	}
	if (!strcmp(key, "serial_in") && !xbp_get_list(l, s, key, what))
		return;
	switch (c->kind) {
	case XB_CHECK_OS_VERSION:
	case XB_CHECK_AGENT_VERSION:
		parse_version(l, m, what, c);
		break;
	case XB_CHECK_DISK_ENCRYPTION:
	case XB_CHECK_FIREWALL:
	case XB_CHECK_SCREEN_LOCK:
		parse_true(l, m, what);
		break;
	case XB_CHECK_SERIAL:
		if (!strcmp(key, "serial_in"))
			parse_serial_in(l, m, what, c);
		else
			parse_serial_file(l, m, what, c);
		break;
	case XB_CHECK_FILE:
		parse_sha256(l, s, what, c);
		/* fall through */
	case XB_CHECK_PROCESS:
	case XB_CHECK_ATTRIBUTE:
		if (!*config_setting_get_string(m))
			xbp_err(l, m, "%s: %s is empty", what, key);
		c->arg = xbp_strdup(l, config_setting_get_string(m));
		if (c->kind == XB_CHECK_ATTRIBUTE) {
			parse_attribute(l, s, what, c);
			parse_source(l, s, what, c);
		}
		break;
	}
}

/* The one kind key of a check; NULL (reported) when none or several. */
static const config_setting_t *kind_of(struct ld *l, const config_setting_t *s,
				       const char *what, struct xb_check *c)
{
	const config_setting_t *found = NULL;

	for (int k = 0; kind_keys[k]; k++) {
		const config_setting_t *m = config_setting_get_member(s, kind_keys[k]);

		if (!m)
			continue;
		if (found) {
			xbp_err(l, m, "%s: %s and %s in one check (write two checks)", what,
				config_setting_name(found), kind_keys[k]);
			return NULL;
		}
		found = m;
		c->kind = k == 9 ? XB_CHECK_SERIAL : (enum xb_check_kind)k;
	}
	if (!found)
		xbp_err(l, s, "%s: no check (one of os_version, agent_version, disk_encryption, "
			"firewall, screen_lock, serial_in, serial_file, process, file, attribute)",
			what);
	return found;
}

static void parse_check(struct ld *l, const config_setting_t *s, const char *pwhat,
			const struct xb_profile *pr, struct xb_check *c)
{
	char what[WHAT_MAX + 32], qb[QUOTE_MAX + 4];
	const config_setting_t *m;
	const char *mode;

	snprintf(what, sizeof(what), "%s: check %d", pwhat, config_setting_index(s) + 1);
	c->src = xbp_src(l, s);
	c->platforms = XB_OS_ALL;
	xbp_check_keys(l, s, what, check_keys);
	if ((mode = xbp_get_str(l, s, "mode", what, NULL))) {
		if (!strcmp(mode, "report"))
			c->report_only = true;
		else if (strcmp(mode, "enforce"))
			xbp_err(l, config_setting_get_member(s, "mode"), "%s: mode `%s' is not "
				"\"enforce\" or \"report\"", what, xbp_quote(qb, mode));
	}
	if (config_setting_get_member(s, "platforms")) {
		unsigned bits = get_platforms(l, s, what);

		c->platforms_set = true;
		c->platforms = bits ? bits : XB_OS_ALL;
		if (bits & ~pr->platforms)
			xbp_err(l, config_setting_get_member(s, "platforms"), "%s: platforms: a "
				"platform the profile does not cover (the check would never apply)",
				what);
	}
	if ((m = kind_of(l, s, what, c)))
		parse_kind(l, s, m, what, c);
}

static void parse_checks(struct ld *l, const config_setting_t *s, const char *what,
			 struct xb_profile *pr)
{
	config_setting_t *list = xbp_get_list(l, s, "checks", what);

	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		struct xb_check *v;

		if (!xbp_elem_group(l, e, "checks"))
			continue;
		if (!(v = xb_grow(pr->checks, pr->n_checks, sizeof(*v)))) {
			l->oom = true;
			return;
		}
		pr->checks = v;
		memset(&v[pr->n_checks], 0, sizeof(*v));
		parse_check(l, e, what, pr, &v[pr->n_checks++]);
	}
}

static void parse_profile(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_profile *pr = obj;
	char what[WHAT_MAX], qb[QUOTE_MAX + 4];
	const char *name = xbp_obj_name(l, s, "profile", idx, false, what, sizeof(what));
	const char *other;
	long age;

	pr->src = xbp_src(l, s);
	pr->name = name ? xbp_strdup(l, name) : NULL;
	xbp_check_keys(l, s, what, profile_keys);
	pr->platforms = get_platforms(l, s, what);
	if (!pr->platforms)
		pr->platforms = XB_OS_ALL;
	pr->max_age = xbp_get_int(l, s, "max_age", what, 1, MAX_AGE_MAX, &age) ? (unsigned)age
										: MAX_AGE_DEFAULT;
	if ((other = xbp_get_str(l, s, "other_platforms", what, NULL))) {
		if (!strcmp(other, "pass"))
			pr->other_pass = true;
		else if (strcmp(other, "fail"))
			xbp_err(l, config_setting_get_member(s, "other_platforms"), "%s: "
				"other_platforms `%s' is not \"fail\" or \"pass\"", what,
				xbp_quote(qb, other));
	}
	parse_checks(l, s, what, pr);
}

void xbp_parse_profiles(struct ld *l, const config_setting_t *s)
{
	xbp_parse_objects(l, s, "profiles", &l->p->profiles, &l->p->n_profiles,
			  sizeof(*l->p->profiles), parse_profile);
}

static void parse_mdm_key(struct ld *l, const config_setting_t *s, void *obj, int idx)
{
	struct xb_mdm_key *k = obj;
	char what[WHAT_MAX], qb[QUOTE_MAX + 4];
	const char *name = xbp_obj_name(l, s, "mdm key", idx, false, what, sizeof(what));
	const char *v, *end;
	size_t n;

	k->src = xbp_src(l, s);
	k->name = name ? xbp_strdup(l, name) : NULL;
	xbp_check_keys(l, s, what, mdm_keys);
	if (!(v = xbp_get_str(l, s, "public_key", what, NULL))) {
		if (!config_setting_get_member(s, "public_key"))
			xbp_err(l, s, "%s: no public_key", what);
		return;
	}
	if (sodium_base642bin(k->public_key, sizeof(k->public_key), v, strlen(v), NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) || *end || n != sizeof(k->public_key))
		xbp_err(l, config_setting_get_member(s, "public_key"),
			"%s: public_key `%s' is not a base64 Ed25519 public key (32 bytes)", what,
			xbp_quote(qb, v));
}

void xbp_parse_mdm_keys(struct ld *l, const config_setting_t *s)
{
	xbp_parse_objects(l, s, "mdm_keys", &l->p->mdm_keys, &l->p->n_mdm_keys,
			  sizeof(*l->p->mdm_keys), parse_mdm_key);
}

void xbp_profile_free(struct xb_profile *pr)
{
	for (size_t i = 0; i < pr->n_checks; i++) {
		struct xb_check *c = &pr->checks[i];

		free(c->arg);
		for (size_t k = 0; k < c->n_serials; k++)
			free(c->serials[k]);
		free(c->serials);
		free(c->serial_file);
		free(c->value.str);
	}
	free(pr->checks);
	free(pr->name);
}

/* gateway.posture_limits = { requests_per_second = 5; burst = 20; ... };
 * each key optional (0 in the struct: the endpoint's default). */
static unsigned *limit_field(struct xb_posture_limits *pl, int i)
{
	unsigned *f[] = { &pl->rate, &pl->burst, &pl->nonces_per_device, &pl->conns_per_source,
			  &pl->header_timeout, &pl->body_timeout };

	return f[i];
}

static const long limit_max[] = { 10000, 100000, 64, 256, 300, 300 };

void xbp_parse_posture_limits(struct ld *l, const config_setting_t *s, struct xb_gateway *g)
{
	const config_setting_t *m = config_setting_get_member(s, "posture_limits");
	long v;

	if (!m)
		return;
	if (config_setting_type(m) != CONFIG_TYPE_GROUP) {
		xbp_err(l, m, "gateway: posture_limits must be a group { requests_per_second = N; "
			"... }");
		return;
	}
	xbp_check_keys(l, m, "gateway: posture_limits", limit_keys);
	for (int i = 0; limit_keys[i]; i++)
		if (xbp_get_int(l, m, limit_keys[i], "gateway: posture_limits", 1, limit_max[i], &v))
			*limit_field(&g->posture_limits, i) = (unsigned)v;
}

void xbp_print_posture_limits(const struct xb_gateway *g, FILE *out)
{
	struct xb_posture_limits pl = g->posture_limits;
	bool any = false;

	for (int i = 0; limit_keys[i]; i++)
		if (*limit_field(&pl, i)) {
			fprintf(out, "%s%s = %u;", any ? " " : "  posture_limits = { ", limit_keys[i],
				*limit_field(&pl, i));
			any = true;
		}
	if (any)
		fputs(" };\n", out);
}
