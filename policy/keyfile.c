/* Key files: one base64 key (as `wg genkey' and `wg genpsk' write it, a
 * trailing newline allowed) in a regular file that neither group nor others
 * may access — the same rule for a partner's wg-quick file, which holds a
 * private key too. A file's content is never echoed in a message.
 */
#include "policy/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 1024	/* bytes; a key is 44 */

/* Opens path for reading after checking that it is a secret file; -1 after
 * reporting why not. */
static int open_secret(struct ld *l, const config_setting_t *m, const char *what,
		       const char *shown, const char *path)
{
	char qb[QUOTE_MAX + 4];
	const char *key = config_setting_name(m);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		xbp_err(l, m, "%s: %s `%s': %s", what, key, xbp_quote(qb, shown), strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		xbp_err(l, m, "%s: %s `%s' is not a regular file", what, key, xbp_quote(qb, shown));
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		xbp_err(l, m, "%s: %s `%s' is accessible by group or others (mode %04o); chmod 600 it",
			what, key, xbp_quote(qb, shown), (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	return fd;
}

bool xbp_secret_file_ok(struct ld *l, const config_setting_t *m, const char *what,
			const char *shown, const char *path)
{
	int fd = open_secret(l, m, what, shown, path);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static bool read_small(int fd, char buf[static KEY_FILE_MAX + 1]);

char *xbp_secret_text(struct ld *l, const config_setting_t *m, const char *what,
		      const char *shown, const char *path)
{
	char qb[QUOTE_MAX + 4], buf[KEY_FILE_MAX + 1], *s = NULL;
	int fd = open_secret(l, m, what, shown, path);
	bool ok;

	if (fd < 0)
		return NULL;
	ok = read_small(fd, buf);
	close(fd);
	if (!ok || !buf[0] || strpbrk(buf, "\r\n") || strlen(buf) != strcspn(buf, "\t"))
		xbp_err(l, m, "%s: %s `%s' must hold one line of text (at most %d bytes)", what,
			config_setting_name(m), xbp_quote(qb, shown), KEY_FILE_MAX);
	else if (!(s = strdup(buf)))
		l->oom = true;
	sodium_memzero(buf, sizeof(buf));
	return s;
}

/* Reads the whole (small) file into buf, NUL-terminated, trailing white
 * space removed. */
static bool read_small(int fd, char buf[static KEY_FILE_MAX + 1])
{
	size_t n = 0;
	ssize_t r;

	while ((r = read(fd, buf + n, KEY_FILE_MAX + 1 - n)) > 0)
		if ((n += (size_t)r) > KEY_FILE_MAX)
			return false;
	if (r < 0)
		return false;
	while (n && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	return true;
}

static bool decode(struct ld *l, const config_setting_t *m, const char *what,
		   struct xb_key_file *kf, int fd, bool private_key)
{
	char qb[QUOTE_MAX + 4], buf[KEY_FILE_MAX + 1];
	const char *key = config_setting_name(m);
	bool ok = read_small(fd, buf) && wg_key_from_base64(kf->key, buf);

	sodium_memzero(buf, sizeof(buf));
	if (!ok) {
		xbp_err(l, m, "%s: %s `%s' does not hold one base64 WireGuard key", what, key,
			xbp_quote(qb, kf->path));
		return false;
	}
	if (wg_key_is_zero(kf->key)) {
		xbp_err(l, m, "%s: %s `%s' holds an all-zero key", what, key, xbp_quote(qb, kf->path));
		return false;
	}
	if (private_key)
		crypto_scalarmult_curve25519_base(kf->public_key, kf->key);
	return true;
}

bool xbp_key_file(struct ld *l, const config_setting_t *g, const char *what, const char *key,
		  struct xb_key_file *kf, bool private_key)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *path = xbp_get_str(l, g, key, what, &kf->line);
	int fd;

	if (!path)
		return false;
	kf->path = xbp_strdup(l, path);
	kf->resolved = xbp_join(l->p->dir, path);
	if (!kf->path || !kf->resolved) {
		l->oom = true;
		return false;
	}
	fd = open_secret(l, m, what, path, kf->resolved);
	if (fd < 0)
		return false;
	kf->loaded = decode(l, m, what, kf, fd, private_key);
	close(fd);
	return kf->loaded;
}
