/* Internals of xborderctl's text rendering (render.h), shared by
 * render_text.c (values as text, tables, key: value lines), render.c
 * (status, devices, tunnels, rules) and render_diag.c (dns, posture,
 * reload, explain, drops). */
#ifndef XB_CTL_RENDER_INT_H
#define XB_CTL_RENDER_INT_H

#include "ctl/render.h"

#define C_BOLD "\033[1m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define C_RESET "\033[0m"

static inline json_t *get(json_t *o, const char *key)
{
	return json_object_get(o, key);
}

/* Values as text, malloc'ed; "-" for what is missing or null. */
char *render_text(json_t *v);
/* A list joined by sep (empty_list when empty); a scalar as render_text(). */
char *render_list(json_t *v, const char *sep, const char *empty_list);
/* Unsigned integer at key, or false when missing or of another type. */
bool render_uint_at(json_t *o, const char *key, uint64_t *out);
char *render_bytes_at(json_t *o, const char *key);
/* A wall-clock time at key as "1m40s ago"; 0 is "never". */
char *render_ago_at(const struct xb_render *r, json_t *o, const char *key);
/* code, or "" when colours are off. */
const char *render_paint(const struct xb_render *r, const char *code);
/* vasprintf's result, or NULL. */
char *render_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Cells row by row, each with its colour (or NULL); printed with every column
 * as wide as its widest cell, two spaces apart, the last one unpadded. */
struct render_table {
	size_t cols, n, cap;
	char **cell;
	const char **colour;
};

bool render_tab_init(struct render_table *t, size_t cols, size_t rows);
/* Adds s (malloc'ed, taken over; NULL prints as "-"). */
void render_tab_put(struct render_table *t, const char *colour, char *s);
void render_tab_head(struct render_table *t, const char *const *names);
void render_tab_print(const struct xb_render *r, struct render_table *t);
void render_tab_free(struct render_table *t);

/* "  key: value" with the key in bold; value malloc'ed and freed here. */
void render_kv(const struct xb_render *r, const char *key, char *value, const char *colour);
/* "title: value" starting a block; value freed here. */
void render_head(const struct xb_render *r, const char *title, char *value);

#endif
