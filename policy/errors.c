/* Configuration errors, collected and reported all at once, OpenBSD style:
 *
 *   xborder.conf:42: tunnel "cmi": endpoint `foo:bar' is not host:port
 *
 * Loading never stops at the first error; the caller prints the sorted list
 * and fails once.
 */
#include "policy/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static size_t rank_of(const struct xb_errors *e, const char *file)
{
	for (size_t i = 0; i < e->n_files; i++)
		if (!strcmp(e->files[i], file))
			return i;
	return SIZE_MAX;
}

void xb_errors_file(struct xb_errors *e, const char *file)
{
	char **v;

	if (rank_of(e, file) != SIZE_MAX)
		return;
	v = xb_grow(e->files, e->n_files, sizeof(*v));
	if (!v || !(file = strdup(file))) {
		if (v)
			e->files = v;
		e->oom = true;
		return;
	}
	e->files = v;
	e->files[e->n_files++] = (char *)file;
}

void xb_errors_add(struct xb_errors *e, const char *file, unsigned line, const char *fmt, ...)
{
	struct xb_error *x;
	va_list ap;
	int n;

	x = xb_grow(e->v, e->n, sizeof(*x));
	if (!x) {
		e->oom = true;
		return;
	}
	e->v = x;
	x = &e->v[e->n];
	memset(x, 0, sizeof(*x));
	va_start(ap, fmt);
	n = vasprintf(&x->msg, fmt, ap);
	va_end(ap);
	x->file = strdup(file ? file : "?");
	if (n < 0 || !x->file) {
		if (n >= 0)
			free(x->msg);
		free(x->file);
		e->oom = true;
		return;
	}
	x->line = line;
	x->rank = rank_of(e, x->file);
	x->seq = e->n++;
}

static int cmp(const void *a, const void *b)
{
	const struct xb_error *x = a, *y = b;
	int c;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if ((c = strcmp(x->file, y->file)))	/* unregistered files */
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void xb_errors_sort(struct xb_errors *e)
{
	/* Ranks of files registered after an error was added. */
	for (size_t i = 0; i < e->n; i++)
		e->v[i].rank = rank_of(e, e->v[i].file);
	if (e->n)
		qsort(e->v, e->n, sizeof(*e->v), cmp);
}

char *xb_error_str(const struct xb_error *x)
{
	char *s;

	if ((x->line ? asprintf(&s, "%s:%u: %s", x->file, x->line, x->msg)
		     : asprintf(&s, "%s: %s", x->file, x->msg)) < 0)
		return NULL;
	return s;
}

void xb_errors_print(struct xb_errors *e, FILE *out)
{
	xb_errors_sort(e);
	for (size_t i = 0; i < e->n; i++) {
		char *s = xb_error_str(&e->v[i]);

		fprintf(out, "%s\n", s ? s : e->v[i].msg);
		free(s);
	}
	if (e->oom)
		fprintf(out, "out of memory: some errors are not shown\n");
}

void xb_errors_free(struct xb_errors *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].file);
		free(e->v[i].msg);
	}
	for (size_t i = 0; i < e->n_files; i++)
		free(e->files[i]);
	free(e->v);
	free(e->files);
	memset(e, 0, sizeof(*e));
}

/* Optimal string alignment distance (Levenshtein plus transpositions), for
 * names up to 64 bytes; longer ones are never suggested. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[3][65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t *cur = d[i % 3], *prev = d[(i - 1) % 3], *pp = d[(i + 1) % 3];

		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t c = prev[j - 1] + (a[i - 1] != b[j - 1]);

			if (prev[j] + 1 < c)
				c = prev[j] + 1;
			if (cur[j - 1] + 1 < c)
				c = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < c)
				c = pp[j - 2] + 1;
			cur[j] = c;
		}
	}
	return d[la % 3][lb];
}

const char *xbp_suggest(const char *s, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, limit = strlen(s) <= 4 ? 1 : 2;

	for (size_t i = 0; n == SIZE_MAX ? names[i] != NULL : i < n; i++) {
		size_t d = distance(s, names[i]);

		if (d < best_d) {
			best_d = d;
			best = names[i];
		}
	}
	return best_d <= limit ? best : NULL;
}
