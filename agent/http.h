/* The agent's HTTP client for its two fixed exchanges with the gateway
 * (GET /v1/nonce, POST /v1/report): plain HTTP to an address literal
 * inside the WireGuard tunnel, one request per call, every size and every
 * wait bounded. libcurl, the project's one HTTP client (docs/architecture.md),
 * held to that: http only, no proxy from the environment, no redirects.
 */
#ifndef XB_AGENT_HTTP_H
#define XB_AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The body of a response may not exceed this. */
#define XBA_HTTP_MAX (96 * 1024)

struct xba_http_resp {
	int status;		/* 100..599 */
	char *body;		/* NUL-terminated, owned; may hold NULs before len */
	size_t len;
};

/* Send one request and read its response within timeout_ms in all. On
 * failure returns -1 and says why in err (connect refused, timed out, bad
 * answer...). */
int xba_http_request(const char *host, uint16_t port, unsigned timeout_ms,
		     const char *method, const char *path, const char *body,
		     size_t body_len, struct xba_http_resp *resp, char *err, size_t errlen);

void xba_http_resp_free(struct xba_http_resp *resp);

#endif
