/* Prefix-list files, a rule's to_lists: access lists kept outside the
 * policy, often generated (a partner's or a provider's ranges).
 *
 *   # ERP and its backups
 *   203.0.113.0/25
 *   2001:db8:cafe::/48      # trailing comments too
 *   198.51.100.7            (a host: /32, /128)
 *
 * One address or prefix a line; from `#' to the end of a line is a
 * comment; blank lines and white space around a prefix are ignored. Every
 * bad line is an error "LISTFILE:LINE: message" (the list file, as the
 * policy names it relative to its directory), like any policy error: the
 * load fails, a reload keeps the running policy. A file is read once
 * however many rules name it (the same absolute path), its errors reported
 * once.
 */
#include "policy/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD_LINES_MAX 20	/* reported per file; then the rest is not read */

static bool add(struct xb_prefix_list *pl, const struct xb_prefix *p)
{
	if (!xb_prefix_append(&pl->v, &pl->n, p))
		return false;
	if (p->family == AF_INET)
		pl->n4++;
	else
		pl->n6++;
	return true;
}

/* The prefix of one line, comment and white space cut off: "" when there
 * is none. */
static char *trim(char *s)
{
	char *e = strchr(s, '#');

	if (e)
		*e = '\0';
	while (isspace((unsigned char)*s))
		s++;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	return s;
}

/* One line: true when it is good (or empty), false when reported. */
static bool line(struct ld *l, struct xb_prefix_list *pl, const char *shown, unsigned no,
		 char *text, size_t len)
{
	char qb[QUOTE_MAX + 4], fixed[64];
	const char *s;
	struct xb_prefix p;

	if (strlen(text) != len) {
		xb_errors_add(l->errs, shown, no, "a NUL byte: not a text file of prefixes");
		return false;
	}
	if (!*(s = trim(text)))
		return true;
	if (!xb_prefix_parse(&p, s)) {
		xb_errors_add(l->errs, shown, no, "`%s' is not an IPv4 or IPv6 address or prefix",
			      xbp_quote(qb, s));
		return false;
	}
	if (xbp_prefix_host_bits(&p)) {
		xbp_prefix_mask(&p);
		xbp_prefix_format(fixed, sizeof(fixed), &p);
		xb_errors_add(l->errs, shown, no, "`%s' has host bits set (did you mean %s?)",
			      xbp_quote(qb, s), fixed);
		return false;
	}
	if (pl->n == XB_PLIST_MAX) {
		xb_errors_add(l->errs, shown, no, "more than %u prefixes in one list", XB_PLIST_MAX);
		return false;
	}
	if (!add(pl, &p))
		l->oom = true;
	return true;
}

/* The next line into buf (cap XB_PLIST_LINE_MAX + 1), without its newline:
 * its length in the file, which is more than XB_PLIST_LINE_MAX when only
 * its start was kept, or -1 at the end of the file. Memory stays bounded
 * whatever the file holds (one line of a gigabyte, no newline at all). */
static ssize_t get_line(FILE *f, char *buf)
{
	size_t len = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (len < XB_PLIST_LINE_MAX)
			buf[len] = (char)c;
		if (len <= XB_PLIST_LINE_MAX)	/* saturates: only "too long" matters */
			len++;
	}
	buf[len < XB_PLIST_LINE_MAX ? len : XB_PLIST_LINE_MAX] = '\0';
	return c == EOF && !len ? -1 : (ssize_t)len;
}

static void read_list(struct ld *l, FILE *f, const char *shown, struct xb_prefix_list *pl)
{
	char text[XB_PLIST_LINE_MAX + 1];
	ssize_t len;
	unsigned no = 0, bad = 0;

	while (!l->oom && (len = get_line(f, text)) >= 0) {
		no++;
		if ((size_t)len > XB_PLIST_LINE_MAX)
			xb_errors_add(l->errs, shown, no, "a line longer than %u bytes",
				      XB_PLIST_LINE_MAX);
		else if (line(l, pl, shown, no, text, (size_t)len))
			continue;
		if (pl->n == XB_PLIST_MAX)	/* full: reported once */
			break;
		if (++bad == BAD_LINES_MAX) {
			xb_errors_add(l->errs, shown, no, "%u bad lines: the rest of the file is not read",
				      bad);
			break;
		}
	}
	if (ferror(f))
		xb_errors_add(l->errs, shown, no, "%s", strerror(errno));
}

/* dir/v, without "." and ".." and symbolic links where it exists, so that
 * one file written two ways is read once. NULL: out of memory. */
static char *canonical(const char *dir, const char *v)
{
	char *joined = xbp_join(dir, v), *real = joined ? realpath(joined, NULL) : NULL;

	if (!real)
		return joined;
	free(joined);
	return real;
}

/* The list already read from the same file, or SIZE_MAX. */
static size_t find(const struct xb_policy *p, const char *resolved)
{
	for (size_t i = 0; i < p->n_lists; i++)
		if (!strcmp(p->lists[i].resolved, resolved))
			return i;
	return SIZE_MAX;
}

/* A new list for the file written as v (element e of what's to_lists),
 * read; its index, or SIZE_MAX (out of memory). A file that cannot be
 * opened is reported at e and gives an empty list, so that every rule
 * naming it resolves and it is reported once. */
static size_t open_list(struct ld *l, const config_setting_t *e, const char *what,
			const char *v, char *resolved)
{
	struct xb_prefix_list *nv = xb_grow(l->p->lists, l->p->n_lists, sizeof(*nv));
	char qb[QUOTE_MAX + 4], *shown;
	bool not_regular;
	FILE *f;

	if (!nv) {
		free(resolved);
		l->oom = true;
		return SIZE_MAX;
	}
	l->p->lists = nv;
	nv = &nv[l->p->n_lists];
	*nv = (struct xb_prefix_list){ .path = xbp_strdup(l, v), .resolved = resolved };
	l->p->n_lists++;
	if (!(shown = xbp_join(l->dir, v)) || !nv->path) {
		free(shown);
		l->oom = true;
		return SIZE_MAX;
	}
	/* The file's errors sort after the policy's, in the order read. */
	xb_errors_file(l->errs, shown);
	if (!(f = xbp_fopen_regular(resolved, &not_regular))) {
		if (not_regular)	/* a directory, a FIFO or /dev/zero */
			xbp_err(l, e, "%s: to_lists `%s' is not a regular file", what, xbp_quote(qb, v));
		else if (errno == ENOMEM)
			l->oom = true;
		else
			xbp_err(l, e, "%s: to_lists `%s': %s", what, xbp_quote(qb, v), strerror(errno));
	} else {
		read_list(l, f, shown, nv);
		fclose(f);
	}
	free(shown);
	return l->p->n_lists - 1;
}

void xbp_parse_to_lists(struct ld *l, const config_setting_t *s, const char *what,
			struct xb_rule *r)
{
	const config_setting_t *list = xbp_get_list(l, s, "to_lists", what);

	for (int i = 0; list && i < config_setting_length(list); i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = xbp_elem_str(l, e, "to_lists", what);
		struct xb_ref *nv;
		char *resolved;
		size_t idx;

		if (!v)
			continue;
		if (!(resolved = canonical(l->p->dir, v))) {
			l->oom = true;
			return;
		}
		if ((idx = find(l->p, resolved)) != SIZE_MAX)
			free(resolved);
		else if ((idx = open_list(l, e, what, v, resolved)) == SIZE_MAX)
			return;
		if (!(nv = xb_grow(r->to_lists, r->n_to_lists, sizeof(*nv))) ||
		    !(nv[r->n_to_lists].name = xbp_strdup(l, v))) {
			if (nv)
				r->to_lists = nv;
			l->oom = true;
			return;
		}
		r->to_lists = nv;
		nv[r->n_to_lists].line = (unsigned)config_setting_source_line(e);
		nv[r->n_to_lists++].idx = idx;
	}
}

void xbp_lists_free(struct xb_policy *p)
{
	for (size_t i = 0; i < p->n_lists; i++) {
		free(p->lists[i].path);
		free(p->lists[i].resolved);
		free(p->lists[i].v);
	}
	free(p->lists);
}
