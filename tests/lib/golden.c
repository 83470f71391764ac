#include "tests/lib/golden.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;
	FILE *m;
	int c;

	if (!f)
		return NULL;
	m = open_memstream(&s, &n);
	while (m && (c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(f);
	if (!m || fclose(m)) {
		free(s);
		return NULL;
	}
	return s;
}

void xb_golden(const char *path, const char *got)
{
	const char *upd = getenv("XB_UPDATE_GOLDEN");
	char *want;
	size_t i = 0;

	if (upd && !strcmp(upd, "1")) {
		FILE *f = fopen(path, "w");

		if (!f || fputs(got, f) < 0 || fclose(f))
			xb_test_fail(__FILE__, __LINE__, "%s: cannot write: %s", path, strerror(errno));
		return;
	}
	if (!(want = slurp(path)))
		xb_test_fail(__FILE__, __LINE__, "%s: %s (XB_UPDATE_GOLDEN=1 writes it)", path,
			     strerror(errno));
	while (want[i] && want[i] == got[i])
		i++;
	if (want[i] || got[i]) {
		printf("%s differs at byte %zu:\n--- want\n%.300s\n--- got\n%.300s\n", path, i,
		       want + i, got + i);
		free(want);
		xb_test_fail(__FILE__, __LINE__, "%s: output differs", path);
	}
	free(want);
}
