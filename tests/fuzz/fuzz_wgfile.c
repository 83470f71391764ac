/* libFuzzer: wg-quick style configuration text. */
#include "tunnel/wgconf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_conf c;
	char err[512], *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';	/* parse up to the first NUL, as a C string */
	if (wg_conf_parse_text(&c, "fuzz.conf", text, err, sizeof(err))) {
		if (strncmp(err, "fuzz.conf", 9))
			abort();	/* every failure says where */
	} else {
		wg_conf_free(&c);
	}
	free(text);
	return 0;
}
