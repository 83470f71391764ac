/* Values as text, tables and "key: value" lines for xborderctl's
 * renderers (render_int.h). */
#include "ctl/render_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void xb_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.2f %s", v, unit[u]);
}

void xb_fmt_duration(char *buf, size_t size, uint64_t s)
{
	if (s < 60)
		snprintf(buf, size, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* --- values as text ------------------------------------------------------ */

static void scalar(FILE *f, json_t *v)
{
	char *s;

	if (json_is_string(v)) {
		fputs(json_string_value(v), f);
	} else if (json_is_integer(v)) {
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		fprintf(f, "%g", json_real_value(v));
	} else if (json_is_boolean(v)) {
		fputs(json_is_true(v) ? "yes" : "no", f);
	} else if (!v || json_is_null(v)) {
		fputs("-", f);
	} else if ((s = json_dumps(v, JSON_COMPACT))) {
		fputs(s, f);
		free(s);
	}
}

/* v as text, malloc'ed: "-" when missing or null; a list joined by sep,
 * empty_list when empty; control characters as '?'. NULL when out of memory. */
char *render_list(json_t *v, const char *sep, const char *empty_list)
{
	char *s = NULL;
	size_t n = 0, i;
	json_t *e;
	FILE *f = open_memstream(&s, &n);

	if (!f)
		return NULL;
	if (json_is_array(v) && json_array_size(v) == 0)
		fputs(empty_list, f);
	else if (json_is_array(v))
		json_array_foreach(v, i, e) {
			if (i)
				fputs(sep, f);
			scalar(f, e);
		}
	else
		scalar(f, v);
	if (fclose(f))
		return NULL;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

char *render_text(json_t *v)
{
	return render_list(v, ",", "-");
}

/* Unsigned integer at key, or false when missing or of another type. */
bool render_uint_at(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

char *render_bytes_at(json_t *o, const char *key)
{
	char buf[32];
	uint64_t b;

	if (!render_uint_at(o, key, &b))
		return strdup("-");
	xb_fmt_bytes(buf, sizeof(buf), b);
	return strdup(buf);
}

/* A wall-clock time at key as "1m40s ago"; 0 is "never". A time ahead of
 * ours (clock skew) counts as now. */
char *render_ago_at(const struct xb_render *r, json_t *o, const char *key)
{
	char buf[48];
	uint64_t t;

	if (!render_uint_at(o, key, &t))
		return strdup("-");
	if (t == 0)
		return strdup("never");
	xb_fmt_duration(buf, sizeof(buf) - 4,
			(int64_t)t < (int64_t)r->now ? (uint64_t)((int64_t)r->now - (int64_t)t) : 0);
	strcat(buf, " ago");
	return strdup(buf);
}

const char *render_paint(const struct xb_render *r, const char *code)
{
	return r->colour ? code : "";
}

/* --- tables -------------------------------------------------------------- */

bool render_tab_init(struct render_table *t, size_t cols, size_t rows)
{
	t->cols = cols;
	t->n = 0;
	t->cap = cols * rows;
	t->cell = calloc(t->cap, sizeof(*t->cell));
	t->colour = calloc(t->cap, sizeof(*t->colour));
	return t->cell && t->colour;
}

/* Adds s (malloc'ed, taken over; NULL prints as "-"). */
void render_tab_put(struct render_table *t, const char *colour, char *s)
{
	if (t->n < t->cap) {
		t->colour[t->n] = colour;
		t->cell[t->n++] = s;
	} else {
		free(s);
	}
}

void render_tab_head(struct render_table *t, const char *const *names)
{
	for (size_t i = 0; i < t->cols; i++)
		render_tab_put(t, C_BOLD, strdup(names[i]));
}

/* Display width: UTF-8 characters, not bytes. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

void render_tab_print(const struct xb_render *r, struct render_table *t)
{
	size_t *w = calloc(t->cols, sizeof(*w)), i;

	for (i = 0; w && i < t->n; i++) {
		size_t cw = width(t->cell[i] ? t->cell[i] : "-");
		if (cw > w[i % t->cols])
			w[i % t->cols] = cw;
	}
	for (i = 0; w && i < t->n; i++) {
		const char *s = t->cell[i] ? t->cell[i] : "-";
		bool last = i % t->cols == t->cols - 1;
		fprintf(r->out, "%s%s%s", t->colour[i] ? render_paint(r, t->colour[i]) : "", s,
			t->colour[i] ? render_paint(r, C_RESET) : "");
		if (last)
			fputc('\n', r->out);
		else
			fprintf(r->out, "%*s", (int)(w[i % t->cols] - width(s) + 2), "");
	}
	free(w);
}

void render_tab_free(struct render_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cell[i]);
	free(t->cell);
	free(t->colour);
}


/* "  key: value" with the key in bold; value malloc'ed and freed here. */
void render_kv(const struct xb_render *r, const char *key, char *value, const char *colour)
{
	fprintf(r->out, "  %s%s%s: %s%s%s\n", render_paint(r, C_BOLD), key, render_paint(r, C_RESET),
		colour ? render_paint(r, colour) : "", value ? value : "-",
		colour ? render_paint(r, C_RESET) : "");
	free(value);
}

/* "title: value" starting a block. */
void render_head(const struct xb_render *r, const char *title, char *value)
{
	fprintf(r->out, "%s%s%s: %s%s%s\n", render_paint(r, C_BOLD), title, render_paint(r, C_RESET),
		render_paint(r, C_GREEN), value ? value : "-", render_paint(r, C_RESET));
	free(value);
}

char *render_fmt(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}
