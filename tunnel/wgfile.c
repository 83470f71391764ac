/* wg-quick style configuration files, as partners hand them out:
 *
 *   [Interface]                     [Peer]
 *   PrivateKey = base64             PublicKey = base64 (required)
 *   ListenPort = 0-65535            PresharedKey = base64
 *   FwMark = 0-0xffffffff | off     AllowedIPs = prefix, prefix...
 *   Address = prefix, prefix...     Endpoint = host:port
 *   MTU = 68-65535                  PersistentKeepalive = 0-65535 | off
 *   DNS Table PreUp PostUp PreDown PostDown SaveConfig: ignored
 *
 * Keys and section names are case-insensitive, '#' starts a comment, space
 * around '=' and list items is ignored, as in wg-quick. Address and
 * AllowedIPs may repeat and accumulate; every other key may appear once per
 * section. Every error is reported as "FILE:LINE: message", sorted by line,
 * and the parse fails once at the end. Secret values are never echoed.
 */
#include "tunnel/wgconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX	(16U << 20)	/* bytes; 10k peers take about 2 MiB */
#define ERRORS_MAX	100		/* reported before giving up */
#define QUOTE_MAX	64		/* bytes of a bad value echoed */
#define MTU_MIN		68		/* the smallest IPv4 MTU, as for any Linux link */

enum section { S_NONE, S_INTERFACE, S_PEER, S_BAD };

struct ferror {
	size_t line, seq;
	char *msg;
};

struct fctx {
	struct wg_conf *c;
	const char *name;
	size_t line;
	enum section sec;
	size_t sec_line, iface_line;
	size_t *seen;			/* line where each key was set in this section */
	bool has_public_key;
	size_t *peer_lines;		/* line of each [Peer], parallel to c->peers */
	struct ferror *errs;
	size_t n_errs;
	bool oom;
};

struct fkey {
	const char *name;
	enum section sec;
	bool repeats;
	bool (*fn)(struct fctx *f, char *v);	/* NULL: accepted, ignored */
};

static void ferr_at(struct fctx *f, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ferr_at(struct fctx *f, size_t line, const char *fmt, ...)
{
	struct ferror *e = f->errs;
	va_list ap;
	int n;

	if (f->n_errs >= ERRORS_MAX)
		return;
	if (!(f->n_errs & (f->n_errs - 1))) {
		e = realloc(f->errs, (f->n_errs ? 2 * f->n_errs : 1) * sizeof(*e));
		if (!e) {
			f->oom = true;
			return;
		}
		f->errs = e;
	}
	e = &f->errs[f->n_errs];
	va_start(ap, fmt);
	n = vasprintf(&e->msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		f->oom = true;
		return;
	}
	e->line = line;
	e->seq = f->n_errs++;
}

#define ferr(f, ...) ferr_at((f), (f)->line, __VA_ARGS__)

static const char *quote(char buf[static QUOTE_MAX + 4], const char *v)
{
	size_t i;

	for (i = 0; v[i] && i < QUOTE_MAX; i++)
		buf[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	strcpy(buf + i, v[i] ? "..." : "");
	return buf;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static bool parse_uint(const char *s, int base, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);
	int d;

	if (!n || n > (base == 16 ? 8 : 10))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (isdigit((unsigned char)s[i]))
			d = s[i] - '0';
		else if (base == 16 && isxdigit((unsigned char)s[i]))
			d = tolower((unsigned char)s[i]) - 'a' + 10;
		else
			return false;
		v = v * (unsigned long)base + (unsigned long)d;
	}
	*out = v;
	return v <= max;
}

static struct wg_peer_conf *peer(struct fctx *f)
{
	return &f->c->peers[f->c->n_peers - 1];
}

static bool k_private_key(struct fctx *f, char *v)
{
	if (!wg_key_from_base64(f->c->private_key, v)) {
		ferr(f, "PrivateKey: bad key (want 44 base64 characters; not shown)");
		return false;
	}
	f->c->has_private_key = true;
	return true;
}

static bool k_listen_port(struct fctx *f, char *v)
{
	char qb[QUOTE_MAX + 4];
	unsigned long n;

	if (!parse_uint(v, 10, 65535, &n)) {
		ferr(f, "ListenPort: bad port `%s'", quote(qb, v));
		return false;
	}
	f->c->listen_port = (uint16_t)n;
	f->c->has_listen_port = true;
	return true;
}

/* As wg(8): decimal, 0x-prefixed hex, or "off" (= 0). */
static bool k_fwmark(struct fctx *f, char *v)
{
	char qb[QUOTE_MAX + 4];
	unsigned long n = 0;
	bool hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');

	if (strcasecmp(v, "off") && !parse_uint(hex ? v + 2 : v, hex ? 16 : 10, UINT32_MAX, &n)) {
		ferr(f, "FwMark: bad value `%s'", quote(qb, v));
		return false;
	}
	f->c->fwmark = (uint32_t)n;
	f->c->has_fwmark = true;
	return true;
}

static bool k_mtu(struct fctx *f, char *v)
{
	char qb[QUOTE_MAX + 4];
	unsigned long n;

	if (!parse_uint(v, 10, 65535, &n) || n < MTU_MIN) {
		ferr(f, "MTU: bad value `%s'", quote(qb, v));
		return false;
	}
	f->c->mtu = (unsigned)n;
	return true;
}

/* Comma-separated prefixes; empty items are skipped, as wg-quick does. */
static bool parse_list(struct fctx *f, const char *key, char *v, struct xb_prefix **arr, size_t *n)
{
	char qb[QUOTE_MAX + 4], *item;
	struct xb_prefix p;
	bool ok = true;

	while ((item = strsep(&v, ","))) {
		item = trim(item);
		if (!*item)
			continue;
		if (!xb_prefix_parse(&p, item)) {
			ferr(f, "%s: bad prefix `%s'", key, quote(qb, item));
			ok = false;
		} else if (!xb_prefix_append(arr, n, &p)) {
			f->oom = true;
			return false;
		}
	}
	return ok;
}

static bool k_address(struct fctx *f, char *v)
{
	return parse_list(f, "Address", v, &f->c->addresses, &f->c->n_addresses);
}

static bool k_allowed_ips(struct fctx *f, char *v)
{
	struct wg_peer_conf *p = peer(f);

	return parse_list(f, "AllowedIPs", v, &p->allowed_ips, &p->n_allowed_ips);
}

static bool k_public_key(struct fctx *f, char *v)
{
	struct wg_peer_conf *p = peer(f);
	char qb[QUOTE_MAX + 4];

	f->has_public_key = true;	/* present, even if malformed */
	if (!wg_key_from_base64(p->public_key, v)) {
		ferr(f, "PublicKey: bad key `%s'", quote(qb, v));
		return false;
	}
	for (size_t i = 0; i + 1 < f->c->n_peers; i++) {
		if (!memcmp(f->c->peers[i].public_key, p->public_key, WG_KEY_LEN)) {
			ferr(f, "PublicKey: same key as the peer on line %zu", f->peer_lines[i]);
			return false;
		}
	}
	return true;
}

static bool k_preshared_key(struct fctx *f, char *v)
{
	struct wg_peer_conf *p = peer(f);

	if (!wg_key_from_base64(p->preshared_key, v)) {
		ferr(f, "PresharedKey: bad key (want 44 base64 characters; not shown)");
		return false;
	}
	p->has_preshared_key = true;
	return true;
}

/* A DNS name: labels of letters, digits, '-' and '_', not all digits and
 * dots (that would be a malformed IPv4 address). */
static bool valid_hostname(const char *h, size_t n)
{
	size_t label = 0;
	bool alpha = false;

	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '.') {
			if (!label)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '_')
			return false;
		if (++label > 63)
			return false;
		alpha |= !isdigit((unsigned char)h[i]);
	}
	return alpha;
}

static bool host_port(const char *v)
{
	const char *colon = strrchr(v, ':');
	unsigned long port;

	return colon && valid_hostname(v, (size_t)(colon - v)) &&
	       parse_uint(colon + 1, 10, 65535, &port) && port;
}

/* Numeric endpoints are parsed now; names stay text for the daemon to
 * resolve (and re-resolve) later. */
static bool k_endpoint(struct fctx *f, char *v)
{
	struct wg_peer_conf *p = peer(f);
	char qb[QUOTE_MAX + 4];

	if (xb_endpoint_parse(&p->endpoint, v))
		return true;
	if (!host_port(v)) {
		ferr(f, "Endpoint: bad endpoint `%s' (want host:port)", quote(qb, v));
		return false;
	}
	p->endpoint_host = strdup(v);
	if (!p->endpoint_host)
		f->oom = true;
	return p->endpoint_host != NULL;
}

static bool k_keepalive(struct fctx *f, char *v)
{
	struct wg_peer_conf *p = peer(f);
	char qb[QUOTE_MAX + 4];
	unsigned long n = 0;

	if (strcasecmp(v, "off") && !parse_uint(v, 10, 65535, &n)) {
		ferr(f, "PersistentKeepalive: bad value `%s'", quote(qb, v));
		return false;
	}
	p->persistent_keepalive = (uint16_t)n;
	p->has_persistent_keepalive = true;
	return true;
}

static const struct fkey keys[] = {
	{ "PrivateKey", S_INTERFACE, false, k_private_key },
	{ "ListenPort", S_INTERFACE, false, k_listen_port },
	{ "FwMark", S_INTERFACE, false, k_fwmark },
	{ "Address", S_INTERFACE, true, k_address },
	{ "MTU", S_INTERFACE, false, k_mtu },
	{ "DNS", S_INTERFACE, true, NULL },
	{ "Table", S_INTERFACE, false, NULL },
	{ "PreUp", S_INTERFACE, true, NULL },
	{ "PostUp", S_INTERFACE, true, NULL },
	{ "PreDown", S_INTERFACE, true, NULL },
	{ "PostDown", S_INTERFACE, true, NULL },
	{ "SaveConfig", S_INTERFACE, false, NULL },
	{ "PublicKey", S_PEER, false, k_public_key },
	{ "PresharedKey", S_PEER, false, k_preshared_key },
	{ "AllowedIPs", S_PEER, true, k_allowed_ips },
	{ "Endpoint", S_PEER, false, k_endpoint },
	{ "PersistentKeepalive", S_PEER, false, k_keepalive },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static void end_section(struct fctx *f)
{
	if (f->sec == S_PEER && !f->has_public_key)
		ferr_at(f, f->sec_line, "[Peer] without PublicKey");
}

static bool add_peer(struct fctx *f)
{
	size_t n = f->c->n_peers, *lines = f->peer_lines;

	if (!(n & (n - 1))) {
		lines = realloc(lines, (n ? 2 * n : 1) * sizeof(*lines));
		if (!lines)
			return false;
		f->peer_lines = lines;
	}
	if (!wg_conf_add_peer(f->c))
		return false;
	lines[n] = f->line;
	return true;
}

static void start_section(struct fctx *f, char *line)
{
	char qb[QUOTE_MAX + 4], *name;

	end_section(f);
	f->sec = S_BAD;
	f->sec_line = f->line;
	memset(f->seen, 0, N_KEYS * sizeof(*f->seen));
	line[strlen(line) - 1] = '\0';
	name = trim(line + 1);
	if (!strcasecmp(name, "Interface")) {
		if (f->iface_line)
			ferr(f, "second [Interface] section (first on line %zu)", f->iface_line);
		f->iface_line = f->line;
		f->sec = S_INTERFACE;
	} else if (!strcasecmp(name, "Peer")) {
		f->has_public_key = false;
		f->sec = add_peer(f) ? S_PEER : S_BAD;
		f->oom |= f->sec == S_BAD;
	} else {
		ferr(f, "unknown section `[%s]'", quote(qb, name));
	}
}

static void key_value(struct fctx *f, char *line, char *eq)
{
	static const char *const sec_names[] = { "", "[Interface]", "[Peer]", "" };
	char qb[QUOTE_MAX + 4], *name, *v;
	size_t i;

	*eq = '\0';
	name = trim(line);
	v = trim(eq + 1);
	if (f->sec == S_BAD)
		return;		/* the section header was already reported */
	if (f->sec == S_NONE) {
		ferr(f, "key `%s' outside a section", quote(qb, name));
		return;
	}
	for (i = 0; i < N_KEYS; i++)
		if (keys[i].sec == f->sec && !strcasecmp(keys[i].name, name))
			break;
	if (i == N_KEYS) {
		ferr(f, "unknown key `%s' in %s", quote(qb, name), sec_names[f->sec]);
		return;
	}
	if (f->seen[i] && !keys[i].repeats) {
		ferr(f, "duplicate %s (first on line %zu)", keys[i].name, f->seen[i]);
		return;
	}
	f->seen[i] = f->line;
	if (keys[i].fn)
		keys[i].fn(f, v);
}

static void parse_line(struct fctx *f, char *line)
{
	char qb[QUOTE_MAX + 4], *eq;

	line[strcspn(line, "#")] = '\0';
	line = trim(line);
	if (!*line)
		return;
	if (line[0] == '[' && line[strlen(line) - 1] == ']') {
		start_section(f, line);
		return;
	}
	eq = strchr(line, '=');
	if (!eq) {
		ferr(f, "expected `Key = value', got `%s'", quote(qb, line));
		return;
	}
	key_value(f, line, eq);
}

static int cmp_err(const void *a, const void *b)
{
	const struct ferror *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes "NAME:LINE: message" lines into err, cut to fit, always terminated. */
static void report(struct fctx *f, char *err, size_t errlen)
{
	size_t pos = 0;
	int n;

	if (f->n_errs)
		qsort(f->errs, f->n_errs, sizeof(*f->errs), cmp_err);
	if (!err || !errlen)
		return;
	err[0] = '\0';
	for (size_t i = 0; i < f->n_errs && pos < errlen; i++) {
		n = snprintf(err + pos, errlen - pos, "%s%s:%zu: %s", i ? "\n" : "",
			     f->name, f->errs[i].line, f->errs[i].msg);
		pos += n < 0 ? errlen : (size_t)n;
	}
	if (f->oom && pos < errlen)
		snprintf(err + pos, errlen - pos, "%s%s: out of memory", pos ? "\n" : "", f->name);
	else if (f->n_errs == ERRORS_MAX && pos < errlen)
		snprintf(err + pos, errlen - pos, "\n%s: too many errors", f->name);
}

int wg_conf_parse_text(struct wg_conf *c, const char *name, const char *text,
		       char *err, size_t errlen)
{
	struct fctx f = { .c = c, .name = name };
	size_t len = strlen(text);
	char *buf = malloc(len + 1), *p, *line;
	int ret = -1;

	memset(c, 0, sizeof(*c));
	f.seen = calloc(N_KEYS, sizeof(*f.seen));
	if (!buf || !f.seen) {
		f.oom = true;
		goto out;
	}
	memcpy(buf, text, len + 1);
	for (p = buf; p && !f.oom && f.n_errs < ERRORS_MAX;) {
		line = strsep(&p, "\n");
		f.line++;
		parse_line(&f, line);
	}
	end_section(&f);
	ret = f.n_errs || f.oom ? -1 : 0;
out:
	if (ret)
		report(&f, err, errlen);
	else if (err && errlen)
		err[0] = '\0';
	if (buf) {
		sodium_memzero(buf, len + 1);
		free(buf);
	}
	for (size_t i = 0; i < f.n_errs; i++)
		free(f.errs[i].msg);
	free(f.errs);
	free(f.seen);
	free(f.peer_lines);
	if (ret)
		wg_conf_free(c);
	return ret;
}

/* Doubles buf, wiping the old copy: the file may hold keys. */
static bool grow_wipe(char **buf, size_t *cap, size_t len)
{
	size_t ncap = *cap ? 2 * *cap : 4096;
	char *nb = malloc(ncap);

	if (!nb)
		return false;
	if (*buf) {
		memcpy(nb, *buf, len);
		sodium_memzero(*buf, *cap);
		free(*buf);
	}
	*buf = nb;
	*cap = ncap;
	return true;
}

/* Reads the whole file, NUL-terminated; the caller wipes and frees *out.
 * Returns 0, or an errno value. */
static int read_file(const char *path, char **out, size_t *outcap)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return errno;
	for (;;) {
		if (len + 1 >= cap && !grow_wipe(&buf, &cap, len)) {
			ret = ENOMEM;
			break;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? errno : 0;
			break;
		}
		len += (size_t)n;
		if (len > FILE_MAX) {
			ret = EFBIG;
			break;
		}
	}
	close(fd);
	if (buf)
		buf[len] = '\0';
	if (!ret && strlen(buf) != len)
		ret = EILSEQ;	/* a NUL byte: not a text file */
	*out = buf;
	*outcap = cap;
	return ret;
}

int wg_conf_parse_file(struct wg_conf *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t cap = 0;
	int ret;

	memset(c, 0, sizeof(*c));
	ret = read_file(path, &text, &cap);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path,
				 ret == EILSEQ ? "contains a NUL byte" : strerror(ret));
		ret = -1;
	} else {
		ret = wg_conf_parse_text(c, path, text, err, errlen);
	}
	if (text) {
		sodium_memzero(text, cap);
		free(text);
	}
	return ret;
}
