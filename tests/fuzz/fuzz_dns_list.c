/* libFuzzer: domain list text (dnsmasq and plain) into a matcher, then the
 * same bytes as query names, text and wire. The first byte picks the format. */
#include "gateway/dns/dns_list.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xb_errors errs = { 0 };
	struct xb_dns_match *m;
	int r;

	if (!size || !(m = xb_dns_match_new()))
		return 0;
	r = xb_dns_list_parse(m, "fuzz.conf", (const char *)data + 1, size - 1,
			      (enum xb_dns_list_fmt)(data[0] % 3), 1, &errs);
	if ((r == 0) != (errs.n == 0))
		abort();	/* a failure always says why, and only then */
	for (size_t i = 0; i < errs.n; i++)
		if (strcmp(errs.v[i].file, "fuzz.conf") || !errs.v[i].line)
			abort();	/* every error names its line */
	xb_dns_match_lookup(m, (const char *)data, size);
	xb_dns_match_lookup_wire(m, data, size);
	xb_errors_free(&errs);
	xb_dns_match_free(m);
	return 0;
}
