/* The agent's HTTP client on libcurl; see http.h. */
#include "agent/http.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct sink {
	char *buf;		/* XBA_HTTP_MAX + 1 */
	size_t len;
	bool over;
};

/* Keeps the body; more than XBA_HTTP_MAX ends the transfer. */
static size_t keep(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;

	n *= size;
	if (n > XBA_HTTP_MAX - s->len) {
		s->over = true;
		return 0;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return n;
}

static int why(CURL *e, CURLcode rc, const char *host, uint16_t port, const char *msg,
	       const struct sink *s, char *err, size_t errlen)
{
	long os = 0;

	curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return fail(err, errlen, "cannot connect to %s port %u: %s", host, port,
			    os ? strerror((int)os) : msg);
	case CURLE_OPERATION_TIMEDOUT:
		return fail(err, errlen, "no complete answer from %s port %u: timed out", host, port);
	case CURLE_WRITE_ERROR:
		if (s->over)
			return fail(err, errlen, "answer longer than %d bytes", XBA_HTTP_MAX);
		break;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:	/* an HTTP/0.9 answer: no status line */
		return fail(err, errlen, "bad answer from %s port %u: not an HTTP/1.x status "
			    "line (%s)", host, port, msg);
	default:
		break;
	}
	return fail(err, errlen, "%s port %u: %s", host, port, msg);
}

static CURL *easy(const char *url, unsigned timeout_ms, const char *method, const char *body,
		  size_t body_len, struct curl_slist *hdrs, struct sink *s, char *errbuf)
{
	CURL *e = curl_easy_init();

	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(e, CURLOPT_PROXY, "");		/* never http_proxy from the environment */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "xborder-posture");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	}
	if (strcmp(method, body ? "POST" : "GET"))
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	return e;
}

int xba_http_request(const char *host, uint16_t port, unsigned timeout_ms,
		     const char *method, const char *path, const char *body,
		     size_t body_len, struct xba_http_resp *resp, char *err, size_t errlen)
{
	bool v6 = strchr(host, ':');
	char url[512], errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = { .buf = malloc(XBA_HTTP_MAX + 1) };
	struct curl_slist *h = NULL, *n;
	long status = 0;
	CURLcode rc;
	CURL *e = NULL;
	int ret = -1;

	memset(resp, 0, sizeof(*resp));
	if (snprintf(url, sizeof(url), "http://%s%s%s:%u%s", v6 ? "[" : "", host, v6 ? "]" : "",
		     port, path) >= (int)sizeof(url))
		return fail(err, errlen, "request URL too long");
	if (!s.buf || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(s.buf);
		return fail(err, errlen, "out of memory");
	}
	if (!(h = curl_slist_append(NULL, "Accept: application/json")) ||
	    !(n = curl_slist_append(h, "Expect:")) ||
	    (body && !(n = curl_slist_append(h, "Content-Type: application/json"))) ||
	    !(e = easy(url, timeout_ms, method, body, body_len, h, &s, errbuf))) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	if ((rc = curl_easy_perform(e)) != CURLE_OK) {
		why(e, rc, host, port, errbuf[0] ? errbuf : curl_easy_strerror(rc), &s, err, errlen);
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status < 100 || status > 599) {
		fail(err, errlen, "bad answer from %s port %u: status %ld", host, port, status);
		goto out;
	}
	s.buf[s.len] = '\0';
	resp->status = (int)status;
	resp->body = s.buf;
	resp->len = s.len;
	s.buf = NULL;
	ret = 0;
out:
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	curl_global_cleanup();
	free(s.buf);
	return ret;
}

void xba_http_resp_free(struct xba_http_resp *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}
