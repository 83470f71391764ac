/* Sequence numbers, nonces and the report exchange; see report.h. */
#include "agent/report.h"
#include "agent/http.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONCE_HEX 32

static int fail(char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The last seq stored, 0 when there is none or it is unreadable. */
static uint64_t seq_last(const char *dir)
{
	char path[PATH_MAX], buf[32], *end;
	uint64_t v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/seq", dir);
	if (!(f = fopen(path, "re")))
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n')) {
		log_warnx("%s: not a number; starting from the clock", path);
		return 0;
	}
	return v;
}

uint64_t xba_seq_peek(const char *dir)
{
	uint64_t last = seq_last(dir), now = clock_real_ns() / 1000;

	return last + 1 > now ? last + 1 : now;
}

static int write_file(const char *tmp, const char *text)
{
	size_t n = strlen(text);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	if (write(fd, text, n) != (ssize_t)n || fsync(fd)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int xba_seq_next(const char *dir, uint64_t *seq)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[32];
	int dfd;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return -1;
	*seq = xba_seq_peek(dir);
	snprintf(path, sizeof(path), "%s/seq", dir);
	snprintf(tmp, sizeof(tmp), "%s/seq.tmp", dir);
	snprintf(text, sizeof(text), "%" PRIu64 "\n", *seq);
	if (write_file(tmp, text) || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	/* The rename itself must survive a power cut. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

json_t *xba_report_build(const json_t *facts, uint64_t seq, const char *nonce)
{
	json_t *r = json_deep_copy(facts);

	if (!r)
		return NULL;
	if (json_object_set_new(r, "seq", json_integer((json_int_t)seq)) ||
	    (nonce && json_object_set_new(r, "nonce", json_string(nonce))) ||
	    json_object_set_new(r, "time", json_integer((json_int_t)(clock_real_ns() / NSEC_PER_SEC)))) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* The body of an answer as a JSON object, or NULL. */
static json_t *answer(const struct xba_http_resp *resp)
{
	json_t *j = json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, NULL);

	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (; *s; s++)
		if (!strchr("0123456789abcdefABCDEF", *s))
			return false;
	return true;
}

static int exchange(const struct xba_conf *c, const char *method, const char *path,
		    const char *body, json_t **out, int *status, char *err, size_t errlen)
{
	struct xba_http_resp resp;

	if (xba_http_request(c->gateway, c->port, c->timeout_s * 1000, method, path, body,
			     body ? strlen(body) : 0, &resp, err, errlen))
		return -1;
	*status = resp.status;
	*out = answer(&resp);
	xba_http_resp_free(&resp);
	return 0;
}

/* A refusal in the gateway's words: "409: seq not increasing". */
static int refused(json_t *j, int status, const char *what, char *err, size_t errlen)
{
	const char *e = json_string_value(json_object_get(j, "error"));
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", e ? e : "no error message");
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	json_decref(j);
	return fail(err, errlen, "gateway refused the %s (HTTP %d): %s", what, status, msg);
}

static int get_nonce(const struct xba_conf *c, char nonce[static NONCE_HEX + 1], char *err,
		     size_t errlen)
{
	json_t *j = NULL;
	const char *v;
	int status;

	if (exchange(c, "GET", "/v1/nonce", NULL, &j, &status, err, errlen))
		return -1;
	if (status != 200)
		return refused(j, status, "nonce request", err, errlen);
	if (!(v = json_string_value(json_object_get(j, "nonce"))) || !hex(v, NONCE_HEX)) {
		json_decref(j);
		return fail(err, errlen, "gateway's nonce answer has no 32-hex-digit \"nonce\"");
	}
	memcpy(nonce, v, NONCE_HEX + 1);
	json_decref(j);
	return 0;
}

static int post(const struct xba_conf *c, const char *body, uint64_t seq, char *err,
		size_t errlen)
{
	json_t *j = NULL, *acc;
	int status;

	if (exchange(c, "POST", "/v1/report", body, &j, &status, err, errlen))
		return -1;
	if (status != 200)
		return refused(j, status, "report", err, errlen);
	acc = json_object_get(j, "accepted");
	if (!json_is_true(acc) ||
	    (json_object_get(j, "seq") &&
	     json_integer_value(json_object_get(j, "seq")) != (json_int_t)seq)) {
		json_decref(j);
		return fail(err, errlen, "gateway answered 200 without \"accepted\": true for "
			    "seq %" PRIu64, seq);
	}
	json_decref(j);
	return 0;
}

int xba_report_send(const struct xba_conf *c, const json_t *facts, char *err, size_t errlen)
{
	char nonce[NONCE_HEX + 1], *body;
	json_t *r;
	uint64_t seq;
	int rc;

	if (get_nonce(c, nonce, err, errlen))
		return -1;
	if (xba_seq_next(c->state_dir, &seq))
		return fail(err, errlen, "cannot store seq in %s: %s", c->state_dir,
			    strerror(errno));
	if (!(r = xba_report_build(facts, seq, nonce)) ||
	    !(body = json_dumps(r, JSON_COMPACT))) {
		json_decref(r);
		return fail(err, errlen, "out of memory");
	}
	json_decref(r);
	if (strlen(body) > XBA_MAX_BODY)
		rc = fail(err, errlen, "report is %zu bytes, over the gateway's %d; watch fewer "
			  "files or attributes", strlen(body), XBA_MAX_BODY);
	else if (!(rc = post(c, body, seq, err, errlen)))
		log_debug("report seq %" PRIu64 " accepted (%zu bytes)", seq, strlen(body));
	free(body);
	return rc;
}
