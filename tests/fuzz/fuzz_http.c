/* libFuzzer: bytes a gateway (or anything pretending to be one) answers the
 * posture agent, through its HTTP response parser (agent/http.c), with and
 * without the connection closed after them. A complete parse must give a
 * status in 100..599 and a NUL-terminated body no longer than the input. */
#include "agent/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xba_http_resp r;
	char err[128];

	for (int eof = 0; eof < 2; eof++) {
		if (xba_http_parse((const char *)data, size, eof, &r, err, sizeof(err)))
			continue;
		if (r.status < 100 || r.status > 599 || r.len > size || r.body[r.len] != '\0')
			abort();
		xba_http_resp_free(&r);
	}
	return 0;
}
