/* libFuzzer: the body of a UAPI "set=1" request, and the "get" text of
 * whatever it parsed into. */
#include "tunnel/wgconf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_conf c;
	char err[256], *text;

	if (wg_uapi_parse_set(&c, (const char *)data, size, err, sizeof(err))) {
		if (!err[0])
			abort();	/* every failure says why */
		return 0;
	}
	text = wg_uapi_format_get(&c);
	if (!text || strncmp(text + strlen(text) - 9, "errno=0\n\n", 9))
		abort();
	free(text);
	wg_conf_free(&c);
	return 0;
}
