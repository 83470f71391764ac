/* libconfig access for the policy parser: typed getters that report a wrong
 * type, unknown keys with a suggestion, source positions of settings.
 */
#include "policy/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* O_NONBLOCK lets the open of a FIFO return so that fstat can refuse it; it
 * does not affect reading a regular file. */
FILE *xbp_fopen_regular(const char *path, bool *not_regular)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	FILE *f;
	int e;

	*not_regular = false;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		e = errno;
	} else if (!S_ISREG(st.st_mode)) {
		*not_regular = true;
		e = 0;
	} else if ((f = fdopen(fd, "r"))) {
		return f;
	} else {
		e = errno;
	}
	close(fd);
	errno = e;
	return NULL;
}

char *xbp_strdup(struct ld *l, const char *s)
{
	char *d = strdup(s);

	if (!d)
		l->oom = true;
	return d;
}

char *xbp_join(const char *dir, const char *path)
{
	char *r;

	if (path[0] == '/' || !strcmp(dir, "."))
		return strdup(path);
	if (asprintf(&r, "%s/%s", dir, path) < 0)
		return NULL;
	return r;
}

const char *xbp_intern_name(struct ld *l, char *name)
{
	struct xb_policy *p = l->p;
	char **v;

	if (!name) {
		l->oom = true;
		return p->path;
	}
	for (size_t i = 0; i < p->n_files; i++) {
		if (!strcmp(p->files[i], name)) {
			free(name);
			return p->files[i];
		}
	}
	v = xb_grow(p->files, p->n_files, sizeof(*v));
	if (!v) {
		free(name);
		l->oom = true;
		return p->path;
	}
	p->files = v;
	p->files[p->n_files++] = name;
	xb_errors_file(l->errs, name);
	return name;
}

/* libconfig names a file read through @include as written there; the
 * policy names it as found: relative to the main file's directory. The
 * last name seen is cached (10 000 devices ask for it 10 000 times). */
const char *xbp_intern(struct ld *l, const char *file)
{
	if (!file)
		file = l->top;
	if (l->raw == file)
		return l->file;
	l->file = xbp_intern_name(l, !strcmp(file, l->top) ? strdup(file) : xbp_join(l->dir, file));
	l->raw = file;
	return l->file;
}

struct xb_src xbp_src(struct ld *l, const config_setting_t *s)
{
	return (struct xb_src){ xbp_intern(l, config_setting_source_file(s)),
				config_setting_source_line(s) };
}

static void verr(struct ld *l, struct xb_src src, const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) < 0) {
		l->oom = true;
		return;
	}
	xb_errors_add(l->errs, src.file, src.line, "%s", msg);
	free(msg);
}

void xbp_err(struct ld *l, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(l, xbp_src(l, s), fmt, ap);
	va_end(ap);
}

void xbp_err_at(struct ld *l, struct xb_src src, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(l, src, fmt, ap);
	va_end(ap);
}

const char *xbp_quote(char buf[static QUOTE_MAX + 4], const char *v)
{
	size_t i;

	for (i = 0; v[i] && i < QUOTE_MAX; i++)
		buf[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	strcpy(buf + i, v[i] ? "..." : "");
	return buf;
}

const char *xbp_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP: return "a group { }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array [ ]";
	case CONFIG_TYPE_LIST: return "a list ( )";
	}
	return "nothing";
}

void xbp_check_keys(struct ld *l, const config_setting_t *s, const char *what,
		    const char *const *names)
{
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m), *hint;
		size_t k;

		for (k = 0; names[k] && strcmp(names[k], name); k++)
			;
		if (names[k])
			continue;
		hint = xbp_suggest(name, names, SIZE_MAX);
		xbp_err(l, m, "%s%sunknown key `%s'%s%s%s", what ? what : "", what ? ": " : "",
			name, hint ? " (did you mean `" : "", hint ? hint : "", hint ? "'?)" : "");
	}
}

/* The member key of s, or NULL; wrong_type() reports a member of the wrong
 * type and returns NULL too. */
static config_setting_t *member(const config_setting_t *s, const char *key)
{
	return s ? config_setting_get_member(s, key) : NULL;
}

static void wrong_type(struct ld *l, const config_setting_t *m, const char *what,
		       const char *want)
{
	xbp_err(l, m, "%s: %s must be %s, not %s", what, config_setting_name(m), want,
		xbp_type_name(config_setting_type(m)));
}

const char *xbp_get_str(struct ld *l, const config_setting_t *s, const char *key,
			const char *what, unsigned *line)
{
	config_setting_t *m = member(s, key);

	if (!m)
		return NULL;
	if (line)
		*line = config_setting_source_line(m);
	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		wrong_type(l, m, what, "a string");
		return NULL;
	}
	return config_setting_get_string(m);
}

bool xbp_get_int(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		 long lo, long hi, long *out)
{
	config_setting_t *m = member(s, key);
	long long v;

	if (!m)
		return false;
	if (config_setting_type(m) != CONFIG_TYPE_INT && config_setting_type(m) != CONFIG_TYPE_INT64) {
		wrong_type(l, m, what, "an integer");
		return false;
	}
	v = config_setting_get_int64(m);
	if (v < lo || v > hi) {
		xbp_err(l, m, "%s: %s %lld is out of range (%ld-%ld)", what, key, v, lo, hi);
		return false;
	}
	*out = (long)v;
	return true;
}

bool xbp_get_bool(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		  bool *out)
{
	config_setting_t *m = member(s, key);

	if (!m)
		return false;
	if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
		wrong_type(l, m, what, "true or false");
		return false;
	}
	*out = config_setting_get_bool(m);
	return true;
}

config_setting_t *xbp_get_list(struct ld *l, const config_setting_t *s, const char *key,
			       const char *what)
{
	config_setting_t *m = member(s, key);

	if (!m)
		return NULL;
	if (config_setting_type(m) != CONFIG_TYPE_LIST && config_setting_type(m) != CONFIG_TYPE_ARRAY) {
		wrong_type(l, m, what, "a list");
		return NULL;
	}
	return m;
}

const char *xbp_elem_str(struct ld *l, const config_setting_t *e, const char *key,
			 const char *what)
{
	if (config_setting_type(e) == CONFIG_TYPE_STRING)
		return config_setting_get_string(e);
	xbp_err(l, e, "%s: %s: element %d must be a string, not %s", what, key,
		config_setting_index(e) + 1, xbp_type_name(config_setting_type(e)));
	return NULL;
}

void xbp_refs_free(struct xb_ref *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

bool xbp_get_refs(struct ld *l, const config_setting_t *s, const char *key, const char *what,
		  struct xb_ref **v, size_t *n)
{
	config_setting_t *list = xbp_get_list(l, s, key, what);
	bool ok = true;

	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *name = xbp_elem_str(l, e, key, what);
		struct xb_ref *nv;

		if (!name) {
			ok = false;
			continue;
		}
		if (!(nv = xb_grow(*v, *n, sizeof(*nv)))) {
			l->oom = true;
			return false;
		}
		*v = nv;
		nv[*n] = (struct xb_ref){ xbp_strdup(l, name), config_setting_source_line(e), 0 };
		if (nv[*n].name)
			(*n)++;
	}
	return ok;
}

/* Names: a letter or digit, then letters, digits, '.', '_', '-'. Tunnel
 * names become interface names "xb-NAME": lower case, digits, '-'. */
bool xbp_name_ok(const char *name, size_t max, bool tunnel)
{
	size_t n = strlen(name);

	if (!n || n > max || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (tunnel ? !(islower(c) || isdigit(c) || c == '-')
			   : !(isalnum(c) || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

const char *xbp_obj_name(struct ld *l, const config_setting_t *s, const char *kind, int idx,
			 bool tunnel, char *what, size_t len)
{
	config_setting_t *m = config_setting_get_member(s, "name");
	char qb[QUOTE_MAX + 4];
	const char *name;

	snprintf(what, len, "%s #%d", kind, idx + 1);
	name = xbp_get_str(l, s, "name", what, NULL);
	if (!name) {
		if (!m)
			xbp_err(l, s, "%s: no name", what);
		return NULL;
	}
	snprintf(what, len, "%s \"%s\"", kind, xbp_quote(qb, name));
	if (!xbp_name_ok(name, tunnel ? XB_TUNNEL_NAME_MAX : XB_NAME_MAX, tunnel))
		xbp_err(l, m, "%s: the name is not valid (%s)", what,
			tunnel ? "1-12 of a-z, 0-9 and '-', starting with a letter or digit"
			       : "1-63 letters, digits, '.', '_' and '-', starting with a letter or digit");
	return name;
}

bool xbp_elem_group(struct ld *l, const config_setting_t *e, const char *list)
{
	if (config_setting_is_group(e))
		return true;
	xbp_err(l, e, "%s: element %d must be a group { }, not %s", list,
		config_setting_index(e) + 1, xbp_type_name(config_setting_type(e)));
	return false;
}

void xbp_parse_objects(struct ld *l, const config_setting_t *s, const char *list, void *arrp,
		       size_t *n, size_t size, xbp_elem_fn elem)
{
	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		void *v;
		char *obj;

		if (!xbp_elem_group(l, e, list))
			continue;
		memcpy(&v, arrp, sizeof(v));
		if (!(v = xb_grow(v, *n, size))) {
			l->oom = true;
			return;
		}
		memcpy(arrp, &v, sizeof(v));
		obj = (char *)v + *n * size;
		memset(obj, 0, size);
		(*n)++;
		elem(l, e, obj, i);
	}
}
