/* JSON-lines log files; see jsonlog.h. */
#include "common/jsonlog.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct xb_jsonlog {
	int fd;
	size_t max_bytes;	/* 0: no cap */
	size_t size;		/* bytes in the file, as of open plus our writes */
	uint64_t errors;	/* lines lost since open */
	uint64_t run;		/* lines lost since the last success */
	char path[PATH_MAX];
	char path1[PATH_MAX];	/* path.1 */
};

static int openf(struct xb_jsonlog *l)
{
	struct stat st;
	int fd;

	fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->size = (size_t)st.st_size;
	return 0;
}

struct xb_jsonlog *xb_jsonlog_open(const char *path, size_t max_bytes)
{
	struct xb_jsonlog *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->fd = -1;
	l->max_bytes = max_bytes;
	if ((size_t)snprintf(l->path, sizeof(l->path), "%s", path) >= sizeof(l->path) ||
	    (size_t)snprintf(l->path1, sizeof(l->path1), "%s.1", path) >= sizeof(l->path1)) {
		free(l);
		errno = ENAMETOOLONG;
		log_warnx("log file `%.64s...': path too long", path);
		return NULL;
	}
	if (openf(l) < 0) {
		int e = errno;

		log_warn("log file `%s'", path);
		free(l);
		errno = e;
		return NULL;
	}
	return l;
}

int xb_jsonlog_reopen(struct xb_jsonlog *l)
{
	if (openf(l) < 0) {
		log_warn("log file `%s': reopen", l->path);
		return -1;
	}
	return 0;
}

/* FILE -> FILE.1 and a new FILE; on failure writing goes on in FILE. */
static void rotate(struct xb_jsonlog *l)
{
	if (rename(l->path, l->path1) < 0) {
		log_warn("log file `%s': rotate to `%s'", l->path, l->path1);
		return;
	}
	if (openf(l) < 0)
		log_warn("log file `%s': open after rotation", l->path);
}

static void lost(struct xb_jsonlog *l, const char *why)
{
	l->errors++;
	if (l->run++ == 0)
		log_warnx("log file `%s': %s; lines are lost until it can be written again",
			  l->path, why);
}

int xb_jsonlog_write(struct xb_jsonlog *l, const json_t *obj)
{
	char *js = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
	size_t n;
	ssize_t w;

	if (!js) {
		lost(l, "out of memory");
		return -1;
	}
	n = strlen(js);
	js[n++] = '\n';	/* json_dumps leaves room: the NUL becomes the newline */
	if (l->max_bytes && l->size > 0 && l->size + n > l->max_bytes)
		rotate(l);
	w = write(l->fd, js, n);
	free(js);
	if (w != (ssize_t)n) {
		lost(l, w < 0 ? strerror(errno) : "short write");
		if (w > 0)
			l->size += (size_t)w;
		return -1;
	}
	l->size += n;
	if (l->run) {
		log_info("log file `%s': writing again after %llu lost lines", l->path,
			 (unsigned long long)l->run);
		l->run = 0;
	}
	return 0;
}

uint64_t xb_jsonlog_errors(const struct xb_jsonlog *l)
{
	return l->errors;
}

void xb_jsonlog_close(struct xb_jsonlog *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}
