/* The status page; see status_page.h. */
#include "gateway/status_page.h"

#include <math.h>

#define PLOT_W 360
#define PLOT_H 60

void xb_status_push(struct xb_status_series *s, const double v[static XB_STATUS_N])
{
	for (int k = 0; k < XB_STATUS_N; k++)
		s->v[k][s->head] = v[k];
	s->head = (s->head + 1) % XB_STATUS_SAMPLES;
	if (s->n < XB_STATUS_SAMPLES)
		s->n++;
}

void xb_status_html(FILE *f, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
}

/* Sample i (0: oldest) of kind k. */
static double at(const struct xb_status_series *s, int k, size_t i)
{
	return s->v[k][(s->head + XB_STATUS_SAMPLES - s->n + i) % XB_STATUS_SAMPLES];
}

/* One plot: the newest sample at the right edge, one slot per sample
 * period, y from 0 to the largest sample (at least 1). Gaps are left out
 * of the line. */
static void plot(FILE *f, const struct xb_status_series *s, int k, const char *what,
		 const char *unit)
{
	double max = 1, last = NAN;
	size_t first = XB_STATUS_SAMPLES - (s ? s->n : 0);

	for (size_t i = 0; s && i < s->n; i++)
		if (isfinite(at(s, k, i))) {
			last = at(s, k, i);
			max = last > max ? last : max;
		}
	fprintf(f, "<figure><figcaption>%s: ", what);
	if (isfinite(last))
		fprintf(f, "%.1f %s (max %.1f)", last, unit, max);
	else
		fputs("no samples", f);
	fprintf(f, "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
		"<rect width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/><polyline fill=\"none\" "
		"stroke=\"#1f5fa8\" stroke-width=\"1.5\" points=\"", PLOT_W, PLOT_H, PLOT_W, PLOT_H,
		what, PLOT_W, PLOT_H);
	for (size_t i = 0, sp = 0; s && i < s->n; i++) {
		double v = at(s, k, i);

		if (isfinite(v))
			fprintf(f, "%s%.1f,%.1f", sp++ ? " " : "",
				(double)(first + i) * PLOT_W / (XB_STATUS_SAMPLES - 1),
				PLOT_H - (v < 0 ? 0 : v) / max * (PLOT_H - 2) - 1);
	}
	fputs("\"/></svg></figure>\n", f);
}

static void tunnels(FILE *f, const struct xb_status_view *v)
{
	fprintf(f, "<h2>Tunnels</h2>\n<p>One sample every %u s, the last %u.</p>\n", v->interval,
		XB_STATUS_SAMPLES);
	for (size_t i = 0; i < v->n_t; i++) {
		const struct xb_status_tunnel *t = &v->t[i];

		fputs("<section class=\"tunnel\"><h3>", f);
		xb_status_html(f, t->name);
		fputs(" <span class=\"state\">", f);
		xb_status_html(f, t->state);
		fputs("</span></h3>\n", f);
		plot(f, t->s, XB_STATUS_RTT, "RTT", "ms");
		plot(f, t->s, XB_STATUS_LOSS, "loss", "%");
		plot(f, t->s, XB_STATUS_JITTER, "jitter", "ms");
		fputs("</section>\n", f);
	}
}

static void devices(FILE *f, const struct xb_status_view *v)
{
	fputs("<h2>Devices</h2>\n<table><thead><tr><th>device</th><th>posture</th>"
	      "<th>handshake</th></tr></thead><tbody>\n", f);
	for (size_t i = 0; i < v->n_d; i++) {
		const struct xb_status_device *d = &v->d[i];

		fputs("<tr><td class=\"device\">", f);
		xb_status_html(f, d->name);
		fputs("</td><td class=\"posture\">", f);
		xb_status_html(f, d->posture ? d->posture : "-");
		if (d->handshake_age >= 0)
			fprintf(f, "</td><td>%lld s ago</td></tr>\n", (long long)d->handshake_age);
		else
			fputs("</td><td>none</td></tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
	if (v->n_d_more)
		fprintf(f, "<p>%zu more devices (gateway.metrics_devices_max).</p>\n", v->n_d_more);
}

static void events(FILE *f, const struct xb_status_view *v)
{
	fputs("<h2>Recent events</h2>\n", f);
	if (!v->n_events) {
		fputs("<p>None since start.</p>\n", f);
		return;
	}
	fputs("<ol class=\"events\">\n", f);
	for (size_t i = 0; i < v->n_events; i++) {
		fputs("<li><code>", f);
		xb_status_html(f, v->events[i]);
		fputs("</code></li>\n", f);
	}
	fputs("</ol>\n", f);
}

void xb_status_render(FILE *f, const struct xb_status_view *v)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	      "<meta http-equiv=\"refresh\" content=\"60\"><title>xborder status</title>\n"
	      "<style>body{font:14px sans-serif;margin:1em 2em}figure{display:inline-block;"
	      "margin:0 1em 1em 0}figcaption{font-size:12px}td,th{padding:2px 1em;"
	      "text-align:left}</style></head>\n<body><h1>xborder status</h1>\n<p>", f);
	xb_status_html(f, v->generated);
	fputs("</p>\n", f);
	tunnels(f, v);
	devices(f, v);
	events(f, v);
	fputs("</body></html>\n", f);
}
