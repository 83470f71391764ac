/* Domain list files; see dns_list.h.
 *
 * Both formats: a '#' at the start of a line or after a space starts a
 * comment (so dnsmasq's "server=/a.cn/#" keeps its '#'); blank lines and
 * spaces around a line are ignored; CRLF line ends are accepted.
 *
 * dnsmasq lines, DIRECTIVE=/DOMAIN/[DOMAIN/...]ARG, where a domain means
 * itself and below, "*.d" only below, ".d" the same as "d", and "#" every
 * name (dnsmasq's "match any domain"):
 *
 *   server=/d/ADDR  local=/d/ADDR    XB_DNS_SERVER, ARG kept ("#": default upstream)
 *   server=/d/      local=/d/        XB_DNS_LOCAL (dnsmasq: never forwarded)
 *   address=/d/[ADDR]                XB_DNS_ADDRESS (no ADDR: NXDOMAIN)
 *   nftset=/d/SPEC  ipset=/d/SETS    XB_DNS_NFTSET, XB_DNS_IPSET; SPEC/SETS required
 *
 * Other directives are errors: a list meant for the gateway holds names. So
 * are dnsmasq's "//" (unqualified names) and "*name" (a wildcard inside a
 * label), which the matcher does not do.
 */
#include "gateway/dns/dns_list.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUOTE_MAX	64	/* bytes of a bad line echoed in a message */
#define ARG_MAX		1024

struct ctx {
	struct xb_dns_match *m;
	const char *file;
	unsigned line;
	enum xb_dns_list_fmt fmt;
	uint32_t value;
	struct xb_errors *errs;
	bool failed;
};

struct directive {
	const char *name;
	enum xb_dns_kind kind;	/* with an empty ARG: see kind_of() */
};

static const struct directive directives[] = {
	{ "server", XB_DNS_SERVER },
	{ "local", XB_DNS_SERVER },
	{ "address", XB_DNS_ADDRESS },
	{ "nftset", XB_DNS_NFTSET },
	{ "ipset", XB_DNS_IPSET },
};

#define report(c, ...)							\
	do {								\
		xb_errors_add((c)->errs, (c)->file, (c)->line, __VA_ARGS__); \
		(c)->failed = true;					\
	} while (0)

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int quote_len(size_t len)
{
	return len > QUOTE_MAX ? QUOTE_MAX : (int)len;
}

static void add(struct ctx *c, const struct xb_dns_pattern *p, enum xb_dns_kind kind,
		const char *arg)
{
	struct xb_dns_entry e = { .value = c->value, .kind = (uint8_t)kind, .arg = arg };

	if (xb_dns_match_add(c->m, p, &e) < 0)
		report(c, "out of memory");
}

static void plain_line(struct ctx *c, const char *s, size_t len)
{
	enum xb_dns_mode bare = c->fmt == XB_DNS_LIST_DOMAINS ? XB_DNS_SUFFIX : XB_DNS_EXACT;
	struct xb_dns_pattern p;
	const char *why;

	for (size_t i = 0; i < len; i++) {
		if (space(s[i])) {
			report(c, "`%.*s': one pattern per line", quote_len(len), s);
			return;
		}
	}
	if (xb_dns_match_pattern_parse(&p, s, len, bare, &why))
		report(c, "`%.*s': %s", quote_len(len), s, why);
	else
		add(c, &p, XB_DNS_RULE, NULL);
}

/* One domain of a dnsmasq line. */
static void domain(struct ctx *c, const char *d, size_t len, enum xb_dns_kind kind,
		   const char *arg)
{
	struct xb_dns_pattern p;
	const char *why;

	if (len == 1 && d[0] == '#') {
		p = (struct xb_dns_pattern){ .mode = XB_DNS_SUFFIX };
	} else if (!len) {
		report(c, "empty domain (dnsmasq's `//', unqualified names) is not supported");
		return;
	} else if (xb_dns_match_pattern_parse(&p, d, len, XB_DNS_SUFFIX, &why)) {
		report(c, "domain `%.*s': %s", quote_len(len), d, why);
		return;
	}
	add(c, &p, kind, arg);
}

static const struct directive *directive(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++)
		if (strlen(directives[i].name) == len && !memcmp(directives[i].name, s, len))
			return &directives[i];
	return NULL;
}

/* The kind a directive's line gets, or -1 (reported) when ARG is missing. */
static int kind_of(struct ctx *c, const struct directive *d, size_t arg_len)
{
	if (arg_len)
		return d->kind;
	switch (d->kind) {
	case XB_DNS_SERVER:
		return XB_DNS_LOCAL;
	case XB_DNS_ADDRESS:
		return XB_DNS_ADDRESS;
	default:
		report(c, "%s= needs a set after the last `/'", d->name);
		return -1;
	}
}

/* v[0..len) is what follows "DIRECTIVE=": "/d1/d2/ARG". */
static void dnsmasq_value(struct ctx *c, const struct directive *d, const char *v, size_t len)
{
	const char *last = len ? memrchr(v, '/', len) : NULL;
	size_t arg_len, start = 1;
	char arg[ARG_MAX];
	int kind;

	if (!len || v[0] != '/' || last == v) {
		report(c, "%s=%.*s: want %s=/DOMAIN/[DOMAIN/...]%s", d->name, quote_len(len), v,
		      d->name, d->kind == XB_DNS_NFTSET || d->kind == XB_DNS_IPSET ? "SET" : "[ADDR]");
		return;
	}
	arg_len = len - (size_t)(last + 1 - v);
	if (arg_len >= sizeof(arg)) {
		report(c, "%s=: text after the last `/' is longer than %d bytes", d->name,
		      ARG_MAX - 1);
		return;
	}
	if ((kind = kind_of(c, d, arg_len)) < 0)
		return;
	memcpy(arg, last + 1, arg_len);
	arg[arg_len] = '\0';
	for (size_t i = 1; i <= (size_t)(last - v); i++) {
		if (v[i] != '/')
			continue;
		domain(c, v + start, i - start, (enum xb_dns_kind)kind, arg_len ? arg : NULL);
		start = i + 1;
	}
}

static void dnsmasq_line(struct ctx *c, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	size_t name_len = eq ? (size_t)(eq - s) : len;
	const struct directive *d = directive(s, name_len);

	if (!d) {
		report(c, "unknown dnsmasq directive `%.*s'", quote_len(name_len), s);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (space(s[i]) || !s[i]) {
			report(c, "`%.*s': unexpected %s", quote_len(len), s,
			      s[i] ? "space" : "NUL byte");
			return;
		}
	}
	if (!eq) {
		report(c, "%s: want %s=/DOMAIN/...", d->name, d->name);
		return;
	}
	dnsmasq_value(c, d, eq + 1, len - name_len - 1);
}

/* s[0..len) without leading space, comment and trailing space. */
static const char *trim(const char *s, size_t *len)
{
	size_t n = *len, i;

	while (n && space(*s)) {
		s++;
		n--;
	}
	for (i = 0; i < n; i++)
		if (s[i] == '#' && (i == 0 || space(s[i - 1])))
			break;
	n = i;
	while (n && space(s[n - 1]))
		n--;
	*len = n;
	return s;
}

int xb_dns_list_parse(struct xb_dns_match *m, const char *file, const char *text, size_t len,
		      enum xb_dns_list_fmt fmt, uint32_t value, struct xb_errors *errs)
{
	struct ctx c = { .m = m, .file = file, .fmt = fmt, .value = value, .errs = errs };
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos), *s;
		size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;

		c.line++;
		if (n > XB_DNS_LINE_MAX) {
			report(&c, "line longer than %d bytes", XB_DNS_LINE_MAX);
		} else if ((s = trim(text + pos, &n)) && n) {
			if (fmt == XB_DNS_LIST_DNSMASQ)
				dnsmasq_line(&c, s, n);
			else
				plain_line(&c, s, n);
		}
		pos = end + 1;
	}
	return c.failed ? -1 : 0;
}

enum { READ_ERRNO, NOT_REGULAR, TOO_LARGE };

/* The whole file, NUL-terminated; NULL with *why: READ_ERRNO (errno set),
 * NOT_REGULAR (O_NONBLOCK lets a FIFO's open return so that fstat can
 * refuse it; /dev/zero would never end) or TOO_LARGE (over
 * XB_DNS_LIST_MAX_BYTES, refused unread). */
static char *slurp(const char *path, size_t *len, int *why)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL, *v;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), e = 0;
	struct stat st;
	ssize_t r = 1;

	*why = READ_ERRNO;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)XB_DNS_LIST_MAX_BYTES) {
		*why = S_ISREG(st.st_mode) ? TOO_LARGE : NOT_REGULAR;
		close(fd);
		return NULL;
	}
	/* Room for the whole file and its NUL at once (it grows only if the
	 * file does). The cap holds while reading too: a file that grows
	 * meanwhile is refused like one that was too large at the start. */
	cap = (size_t)st.st_size + 2 > cap ? (size_t)st.st_size + 2 : cap;
	while (r > 0) {
		if ((!buf || n + 1 >= cap) && !(v = realloc(buf, buf ? (cap *= 2) : cap))) {
			e = ENOMEM;
			break;
		}
		buf = v;
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			r = 1;
		else if (r < 0)
			e = errno;
		else if ((n += (size_t)r) > XB_DNS_LIST_MAX_BYTES)
			break;
	}
	close(fd);
	if (e || n > XB_DNS_LIST_MAX_BYTES) {
		*why = e ? READ_ERRNO : TOO_LARGE;
		free(buf);
		errno = e;
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

int xb_dns_list_load(struct xb_dns_match *m, const char *path, enum xb_dns_list_fmt fmt,
		     uint32_t value, struct xb_errors *errs)
{
	size_t len;
	int why;
	char *text;
	int r;

	xb_errors_file(errs, path);
	if (!(text = slurp(path, &len, &why))) {
		if (why == NOT_REGULAR)
			xb_errors_add(errs, path, 0, "not a regular file");
		else if (why == TOO_LARGE)
			xb_errors_add(errs, path, 0, "larger than %u MiB", XB_DNS_LIST_MAX_BYTES >> 20);
		else
			xb_errors_add(errs, path, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	r = xb_dns_list_parse(m, path, text, len, fmt, value, errs);
	free(text);
	return r;
}
