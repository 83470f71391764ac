/* The cross-platform userspace API (https://www.wireguard.com/xplatform/)
 * as `wg` speaks it over /var/run/wireguard/IFNAME.sock.
 *
 * A connection carries any number of requests:
 *
 *   "get=1\n\n"                      -> key=value lines, "errno=0\n\n"
 *   "set=1\n", key=value lines, "\n"  -> "errno=0\n\n" or "errno=-N\n\n"
 *
 * Failures are sent as errno=-N, a negative errno, as wireguard-go does:
 * `wg` reads the number of a set reply and hands its negation to perror(),
 * so "errno=-22" is what makes it print "Invalid argument". A line that
 * is neither request closes the connection without a reply, like
 * wireguard-go. Unlike wireguard-go, a set request is parsed whole before
 * anything is applied, so a bad line leaves the device untouched, and a
 * request cut off by EOF is not applied at all.
 */
#include "tunnel/wgconf.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define UAPI_DIR	"/var/run/wireguard"
#define UAPI_MAX	(1U << 20)	/* bytes in one request, its first line included */
#define UAPI_TIMEOUT	5		/* seconds without a byte before a connection ends */
#define QUOTE_MAX	64		/* bytes of a bad value echoed in an error */

/* Copies v for an error message: printable bytes only, cut at QUOTE_MAX. */
static const char *quote(char buf[static QUOTE_MAX + 4], const char *v)
{
	size_t i;

	for (i = 0; v[i] && i < QUOTE_MAX; i++)
		buf[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	strcpy(buf + i, v[i] ? "..." : "");
	return buf;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (!n || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

/* Set handlers return 0, EINVAL for a bad value (the caller words the
 * error), or ENOMEM. Flags take only the word `wg` sends: "true". */
static int is_true(bool *flag, const char *v)
{
	if (strcmp(v, "true"))
		return EINVAL;
	*flag = true;
	return 0;
}

static int d_private_key(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)p;
	if (!wg_key_from_hex(c->private_key, v))
		return EINVAL;
	c->has_private_key = true;	/* all zeros: remove the key */
	return 0;
}

static int d_listen_port(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	unsigned long n;

	(void)p;
	if (!parse_uint(v, 65535, &n))
		return EINVAL;
	c->listen_port = (uint16_t)n;
	c->has_listen_port = true;
	return 0;
}

static int d_fwmark(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	unsigned long n;

	(void)p;
	if (!parse_uint(v, UINT32_MAX, &n))
		return EINVAL;
	c->fwmark = (uint32_t)n;
	c->has_fwmark = true;
	return 0;
}

static int d_replace_peers(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)p;
	return is_true(&c->replace_peers, v);
}

static int p_remove(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	return is_true(&p->remove, v);
}

static int p_update_only(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	return is_true(&p->update_only, v);
}

static int p_replace_allowed_ips(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	return is_true(&p->replace_allowed_ips, v);
}

static int p_preshared_key(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	if (!wg_key_from_hex(p->preshared_key, v))
		return EINVAL;
	p->has_preshared_key = true;	/* all zeros: remove the key */
	return 0;
}

static int p_endpoint(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	return xb_endpoint_parse(&p->endpoint, v) ? 0 : EINVAL;
}

static int p_keepalive(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	unsigned long n;

	(void)c;
	if (!parse_uint(v, 65535, &n))
		return EINVAL;
	p->persistent_keepalive = (uint16_t)n;
	p->has_persistent_keepalive = true;
	return 0;
}

/* The UAPI always spells out the prefix length. */
static int p_allowed_ip(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	struct xb_prefix pfx;

	(void)c;
	if (!strchr(v, '/') || !xb_prefix_parse(&pfx, v))
		return EINVAL;
	return xb_prefix_append(&p->allowed_ips, &p->n_allowed_ips, &pfx) ? 0 : ENOMEM;
}

/* Version 1 is the only protocol there is; wireguard-go answers EINVAL to others. */
static int p_protocol_version(struct wg_conf *c, struct wg_peer_conf *p, const char *v)
{
	(void)c;
	if (strcmp(v, "1"))
		return EINVAL;
	p->protocol_version = 1;
	return 0;
}

typedef int (*set_fn)(struct wg_conf *, struct wg_peer_conf *, const char *);

struct set_key {
	const char *name;
	set_fn fn;
	bool secret;		/* never echo the value */
};

static const struct set_key device_keys[] = {
	{ "private_key", d_private_key, true },
	{ "listen_port", d_listen_port, false },
	{ "fwmark", d_fwmark, false },
	{ "replace_peers", d_replace_peers, false },
	{ NULL, NULL, false }
};

static const struct set_key peer_keys[] = {
	{ "remove", p_remove, false },
	{ "update_only", p_update_only, false },
	{ "preshared_key", p_preshared_key, true },
	{ "endpoint", p_endpoint, false },
	{ "persistent_keepalive_interval", p_keepalive, false },
	{ "replace_allowed_ips", p_replace_allowed_ips, false },
	{ "allowed_ip", p_allowed_ip, false },
	{ "protocol_version", p_protocol_version, false },
	{ NULL, NULL, false }
};

static const struct set_key *find_key(const struct set_key *t, const char *name)
{
	for (; t->name; t++)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static int set_public_key(struct wg_conf *c, const char *v, char *err, size_t errlen)
{
	char qb[QUOTE_MAX + 4];
	uint8_t key[WG_KEY_LEN];
	struct wg_peer_conf *p;

	if (!wg_key_from_hex(key, v))
		return fail(err, errlen, EINVAL, "public_key: bad key `%s'", quote(qb, v));
	p = wg_conf_add_peer(c);
	if (!p)
		return fail(err, errlen, ENOMEM, "public_key: out of memory");
	memcpy(p->public_key, key, WG_KEY_LEN);
	return 0;
}

/* Device keys come before the first public_key, peer keys after it. */
static int set_line(struct wg_conf *c, char *line, char *err, size_t errlen)
{
	struct wg_peer_conf *p = c->n_peers ? &c->peers[c->n_peers - 1] : NULL;
	const struct set_key *k;
	char qb[QUOTE_MAX + 4], *v = strchr(line, '=');
	int ret;

	if (!v)
		return fail(err, errlen, EPROTO, "line `%s' is not key=value", quote(qb, line));
	*v++ = '\0';
	if (!strcmp(line, "public_key"))
		return set_public_key(c, v, err, errlen);
	k = find_key(p ? peer_keys : device_keys, line);
	if (!k && find_key(p ? device_keys : peer_keys, line))
		return fail(err, errlen, EINVAL, p ? "device key `%s' after a public_key" :
			    "peer key `%s' before any public_key", quote(qb, line));
	if (!k)
		return fail(err, errlen, EINVAL, "unknown key `%s'", quote(qb, line));
	ret = k->fn(c, p, v);
	if (ret == ENOMEM)
		return fail(err, errlen, ret, "%s: out of memory", k->name);
	if (ret && k->secret)
		return fail(err, errlen, ret, "%s: bad key (not 64 hex digits)", k->name);
	if (ret)
		return fail(err, errlen, ret, "%s: bad value `%s'", k->name, quote(qb, v));
	return 0;
}

int wg_uapi_parse_set(struct wg_conf *c, const char *body, size_t len, char *err, size_t errlen)
{
	char *buf = NULL, *line, *next;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	if (err && errlen)
		err[0] = '\0';
	if (len && memchr(body, '\0', len)) {
		ret = fail(err, errlen, EINVAL, "request contains a NUL byte");
		goto out;
	}
	buf = malloc(len + 1);
	if (!buf) {
		ret = fail(err, errlen, ENOMEM, "out of memory");
		goto out;
	}
	if (len)
		memcpy(buf, body, len);
	buf[len] = '\0';
	for (line = buf; *line && !ret; line = next) {
		next = strchrnul(line, '\n');
		if (*next)
			*next++ = '\0';
		if (!*line)
			ret = fail(err, errlen, EPROTO, "empty line inside the request");
		else
			ret = set_line(c, line, err, errlen);
	}
out:
	if (buf) {
		sodium_memzero(buf, len + 1);
		free(buf);
	}
	if (ret)
		wg_conf_free(c);
	return ret;
}

/* The get text holds keys: growing it never leaves a copy behind. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_grow(struct sbuf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 1024;
	char *np;

	while (cap < need)
		cap *= 2;
	np = malloc(cap);
	if (!np) {
		b->oom = true;
		return;
	}
	if (b->p) {
		memcpy(np, b->p, b->len + 1);
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (b->len + (size_t)n + 1 > b->cap)
		sb_grow(b, b->len + (size_t)n + 1);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_key(struct sbuf *b, const char *name, const uint8_t key[static WG_KEY_LEN])
{
	char hex[WG_KEY_HEX_LEN + 1];

	wg_key_to_hex(hex, key);
	sb_printf(b, "%s=%s\n", name, hex);
	sodium_memzero(hex, sizeof(hex));
}

static void sb_prefix(struct sbuf *b, const struct xb_prefix *p)
{
	char addr[INET6_ADDRSTRLEN];

	if (p->family != AF_INET && p->family != AF_INET6)
		return;
	inet_ntop(p->family, p->addr, addr, sizeof(addr));
	sb_printf(b, "allowed_ip=%s/%u\n", addr, p->cidr);
}

/* Peer lines in wireguard-go's order; `wg` parses the numbers as unsigned. */
static void sb_peer(struct sbuf *b, const struct wg_peer_conf *p)
{
	char ep[INET6_ADDRSTRLEN + IF_NAMESIZE + 16];

	sb_key(b, "public_key", p->public_key);
	if (p->has_preshared_key && !wg_key_is_zero(p->preshared_key))
		sb_key(b, "preshared_key", p->preshared_key);
	sb_printf(b, "protocol_version=1\n");
	if (p->endpoint.sa.sa_family == AF_INET || p->endpoint.sa.sa_family == AF_INET6) {
		xb_endpoint_format(ep, sizeof(ep), &p->endpoint);
		sb_printf(b, "endpoint=%s\n", ep);
	}
	sb_printf(b, "last_handshake_time_sec=%lld\n",
		  (long long)(p->last_handshake_sec > 0 ? p->last_handshake_sec : 0));
	sb_printf(b, "last_handshake_time_nsec=%lld\n",
		  (long long)(p->last_handshake_nsec > 0 ? p->last_handshake_nsec : 0));
	sb_printf(b, "tx_bytes=%llu\n", (unsigned long long)p->tx_bytes);
	sb_printf(b, "rx_bytes=%llu\n", (unsigned long long)p->rx_bytes);
	sb_printf(b, "persistent_keepalive_interval=%u\n", p->persistent_keepalive);
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		sb_prefix(b, &p->allowed_ips[i]);
}

char *wg_uapi_format_get(const struct wg_conf *c)
{
	struct sbuf b = { 0 };

	if (c->has_private_key && !wg_key_is_zero(c->private_key))
		sb_key(&b, "private_key", c->private_key);
	if (c->has_listen_port || c->listen_port)
		sb_printf(&b, "listen_port=%u\n", c->listen_port);
	if (c->fwmark)
		sb_printf(&b, "fwmark=%u\n", c->fwmark);
	for (size_t i = 0; i < c->n_peers; i++)
		sb_peer(&b, &c->peers[i]);
	sb_printf(&b, "errno=0\n\n");
	if (b.oom && b.p) {
		sodium_memzero(b.p, b.cap);
		free(b.p);
		b.p = NULL;
	}
	return b.p;
}

/* Linux interface names: 1..15 bytes, no '/', ':' or space, not "." or "..". */
static bool valid_ifname(const char *name)
{
	size_t n = strnlen(name, IFNAMSIZ);

	if (!n || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] == ':' || !isgraph((unsigned char)name[i]))
			return false;
	return true;
}

void wg_uapi_path(char *buf, size_t len, const char *ifname)
{
	snprintf(buf, len, UAPI_DIR "/%s.sock", ifname);
}

static int mkdir_p(const char *dir, mode_t mode)
{
	char path[sizeof(UAPI_DIR)];

	for (size_t i = 1; i <= strlen(dir); i++) {
		if (dir[i] != '/' && dir[i] != '\0')
			continue;
		memcpy(path, dir, i);
		path[i] = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

/* Whoever may write the directory may unlink a socket in it (or, with the
 * sticky bit, put a file where the next one must go): the interface is
 * torn down. Said once per process; the directory is the host's to fix
 * (tmpfiles.d/xborder.conf makes it 0755, owned by the daemon's user). */
static void check_dir(void)
{
	static bool said;
	struct stat st;

	if (said || stat(UAPI_DIR, &st) < 0 || !(st.st_mode & (S_IWGRP | S_IWOTH)))
		return;
	said = true;
	log_warnx("uapi: %s is writable by %s (mode %04o): whoever can write it can delete an "
		  "interface's socket and tear the interface down; make it 0755", UAPI_DIR,
		  st.st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st.st_mode & 07777));
}

/* An existing socket file is stale when nobody accepts on it (ECONNREFUSED,
 * as `wg` itself decides); a live one belongs to another daemon. */
static int clear_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, ret;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ret = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (!ret) {
		errno = EADDRINUSE;
		return -1;
	}
	if (errno != ECONNREFUSED)
		return 0;	/* bind() will say what is wrong */
	return unlink(sun->sun_path) < 0 && errno != ENOENT ? -1 : 0;
}

int wg_uapi_listen(const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = -1, ret, saved;
	mode_t old;

	if (!valid_ifname(ifname)) {
		errno = EINVAL;
		return -1;
	}
	wg_uapi_path(sun.sun_path, sizeof(sun.sun_path), ifname);
	if (mkdir_p(UAPI_DIR, 0755) < 0 || clear_stale(&sun) < 0)
		return -1;
	check_dir();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* The socket file takes its mode from the umask: 0777 & ~0177 = 0600,
	 * root only (wireguard-go's 077 leaves a meaningless execute bit). */
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || listen(fd, SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Buffered reads from one connection; every read waits at most UAPI_TIMEOUT. */
struct conn {
	int fd;
	size_t off, len;
	char buf[4096];
};

static int conn_getc(struct conn *c)
{
	ssize_t n;

	while (c->off == c->len) {
		n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->off = 0;
		c->len = (size_t)n;
	}
	return (unsigned char)c->buf[c->off++];
}

static bool conn_write(struct conn *c, const char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool reply_errno(struct conn *c, int code)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "errno=%d\n\n", -code);

	return conn_write(c, line, (size_t)n);
}

enum op { OP_CLOSE, OP_GET, OP_SET };

/* The first line of a request: "get=1" or "set=1"; anything else ends the
 * connection without a reply. */
static enum op read_op(struct conn *c)
{
	char line[8];
	size_t n = 0;
	int ch;

	while ((ch = conn_getc(c)) >= 0 && ch != '\n') {
		if (n == 5)
			return OP_CLOSE;
		line[n++] = (char)ch;
	}
	if (ch < 0)
		return OP_CLOSE;
	line[n] = '\0';
	if (!strcmp(line, "get=1"))
		return OP_GET;
	if (!strcmp(line, "set=1"))
		return OP_SET;
	return OP_CLOSE;
}

/* "get=1\n" must be followed by the empty line; wireguard-go answers EINVAL
 * to any other byte, having consumed it, and reads on. */
static bool serve_get(struct conn *c, const struct wg_uapi_ops *ops, void *ctx)
{
	struct wg_conf conf = { 0 };
	char *text;
	int ch = conn_getc(c), ret;
	bool ok;

	if (ch < 0)
		return false;
	if (ch != '\n')
		return reply_errno(c, EINVAL);
	ret = ops->get(ctx, &conf);
	text = ret ? NULL : wg_uapi_format_get(&conf);
	wg_conf_free(&conf);
	if (!text)
		return reply_errno(c, ret ? ret : ENOMEM);
	ok = conn_write(c, text, strlen(text));
	sodium_memzero(text, strlen(text));
	free(text);
	return ok;
}

struct body {
	char *p;
	size_t len, cap;
};

static bool body_grow(struct body *b)
{
	size_t cap = b->cap ? 2 * b->cap : 512;
	char *np = malloc(cap);

	if (!np)
		return false;
	if (b->p) {
		memcpy(np, b->p, b->len);
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = cap;
	return true;
}

/* Reads key=value lines up to the empty line. Returns 0, -1 when the peer
 * went away or fell silent, or EMSGSIZE/ENOMEM with the rest left unread. */
static int read_body(struct conn *c, struct body *b)
{
	int ch;

	for (;;) {
		ch = conn_getc(c);
		if (ch < 0)
			return -1;
		if (ch == '\n' && (!b->len || b->p[b->len - 1] == '\n'))
			return 0;
		/* "set=1\n", the body with this byte, and the closing "\n" */
		if (sizeof("set=1\n") - 1 + b->len + 1 + 1 > UAPI_MAX)
			return EMSGSIZE;
		if (b->len == b->cap && !body_grow(b))
			return ENOMEM;
		b->p[b->len++] = (char)ch;
	}
}

static bool serve_set(struct conn *c, const struct wg_uapi_ops *ops, void *ctx)
{
	struct body b = { 0 };
	struct wg_conf conf;
	char err[256];
	int ret = read_body(c, &b);
	bool ok = false;

	if (ret < 0)
		goto out;
	if (ret) {
		log_warnx("uapi: set refused: %s", ret == EMSGSIZE ? "request over 1 MiB" :
			  "out of memory");
		reply_errno(c, ret);	/* the stream cannot be resynchronised */
		goto out;
	}
	ret = wg_uapi_parse_set(&conf, b.p ? b.p : "", b.len, err, sizeof(err));
	if (ret) {
		log_warnx("uapi: set refused: %s", err);	/* err never holds a secret */
	} else {
		ret = ops->set(ctx, &conf);
		wg_conf_free(&conf);
	}
	ok = reply_errno(c, ret);
out:
	if (b.p) {
		sodium_memzero(b.p, b.cap);
		free(b.p);
	}
	return ok;
}

void wg_uapi_serve(int fd, const struct wg_uapi_ops *ops, void *ctx)
{
	struct timeval tv = { .tv_sec = UAPI_TIMEOUT };
	struct conn c = { .fd = fd };
	bool more = true;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (more) {
		switch (read_op(&c)) {
		case OP_GET:
			more = serve_get(&c, ops, ctx);
			break;
		case OP_SET:
			more = serve_set(&c, ops, ctx);
			break;
		default:
			more = false;
		}
	}
	sodium_memzero(c.buf, sizeof(c.buf));
}
