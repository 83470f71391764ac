/* Version comparison (common/version.h states the rules). */
#include "common/version.h"

#include <ctype.h>
#include <string.h>

static bool sep(char c)
{
	return c == '-' || c == '_' || c == '+' || c == '~' || c == '.';
}

/* Past the "v" and the dotted numbers: the suffix, or NULL if v is not a
 * version. */
static const char *suffix(const char *v)
{
	const char *s;

	if (strlen(v) > XB_VERSION_MAX)
		return NULL;
	if (*v == 'v' || *v == 'V')
		v++;
	for (;;) {
		if (!isdigit((unsigned char)*v))
			return NULL;
		while (isdigit((unsigned char)*v))
			v++;
		if (*v != '.' || !isdigit((unsigned char)v[1]))
			break;
		v++;
	}
	if (*v == '.' || (*v && !sep(*v) && !isalpha((unsigned char)*v)))
		return NULL;
	for (s = v; *s; s++)
		if (!isalnum((unsigned char)*s) && !sep(*s))
			return NULL;
	if (*v && sep(*v) && !v[1])
		return NULL;		/* "1.0-" */
	return v;
}

bool xb_version_ok(const char *v)
{
	return suffix(v) != NULL;
}

/* Compares the digit runs at *a and *b numerically (any length: leading
 * zeros skipped, then the longer run is larger) and moves past them. */
static int num(const char **a, const char **b)
{
	size_t la, lb;
	int c;

	while (**a == '0' && isdigit((unsigned char)(*a)[1]))
		(*a)++;
	while (**b == '0' && isdigit((unsigned char)(*b)[1]))
		(*b)++;
	for (la = 0; isdigit((unsigned char)(*a)[la]); la++)
		;
	for (lb = 0; isdigit((unsigned char)(*b)[lb]); lb++)
		;
	c = la != lb ? (la < lb ? -1 : 1) : strncmp(*a, *b, la);
	*a += la;
	*b += lb;
	return c < 0 ? -1 : c > 0;
}

/* The next dotted component of the numeric part, or "0" past its end. */
static int component(const char **a, const char *end_a, const char **b, const char *end_b)
{
	const char *za = "0", *zb = "0";
	const char **pa = *a < end_a ? a : &za, **pb = *b < end_b ? b : &zb;
	int c = num(pa, pb);

	if (*a < end_a && **a == '.')
		(*a)++;
	if (*b < end_b && **b == '.')
		(*b)++;
	return c;
}

static int suffix_cmp(const char *a, const char *b)
{
	for (;;) {
		while (sep(*a))
			a++;
		while (sep(*b))
			b++;
		if (!*a || !*b)
			return !*a && !*b ? 0 : !*a ? -1 : 1;
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			int c = num(&a, &b);

			if (c)
				return c;
			continue;
		}
		if (*a != *b)	/* a digit sorts before a letter */
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
}

int xb_version_cmp(const char *a, const char *b)
{
	const char *sa = suffix(a), *sb = suffix(b);

	if (!sa || !sb)
		return !sa && !sb ? 0 : !sa ? -1 : 1;
	if (*a == 'v' || *a == 'V')
		a++;
	if (*b == 'v' || *b == 'V')
		b++;
	while (a < sa || b < sb) {
		int c = component(&a, sa, &b, sb);

		if (c)
			return c;
	}
	if (!*sa || !*sb)
		return !*sa && !*sb ? 0 : !*sa ? 1 : -1;
	return suffix_cmp(sa, sb);
}
