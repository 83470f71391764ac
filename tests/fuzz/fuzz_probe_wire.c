/* libFuzzer: what a prober socket may receive — an ICMP/ICMPv6 datagram,
 * a DNS response, the start of an HTTP response — and a target spec as an
 * operator may write it. Parsers must not read past the input; an echo that
 * parses must rebuild to the same fields; a spec that parses must print to
 * a spec that parses to the same target. */
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"
#include "probe/probe_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void echo(const uint8_t *data, size_t size, bool v6)
{
	struct pw_echo e, f;
	uint8_t b[PW_ECHO_LEN];

	if (!pw_echo_parse(data, size, v6, &e))
		return;
	pw_echo_build(b, v6, &e);
	b[0] = v6 ? 129 : 0;	/* as a reply */
	check(pw_echo_parse(b, sizeof(b), true, &f) || !v6);
	if (v6)
		check(f.nonce == e.nonce && f.round == e.round && f.tid == e.tid &&
		      f.ident == e.ident && f.seq == e.seq && f.target == e.target);
}

static void spec(const uint8_t *data, size_t size)
{
	char s[600], out[600], again[600];
	struct xb_probe_target t, u;
	const char *err;

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = 0;
	if (!xb_probe_target_parse(s, &t, &err)) {
		check(err && *err);
		return;
	}
	xb_probe_target_str(&t, out, sizeof(out));
	check(xb_probe_target_parse(out, &u, &err));
	check(!strcmp(xb_probe_target_str(&u, again, sizeof(again)), out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	/* An exact-size heap copy, so ASan sees any read past the end. */
	memcpy(copy, data, size);
	echo(copy, size, false);
	echo(copy, size, true);
	pw_dns_match(copy, size, size >= 2 ? (uint16_t)(copy[0] << 8 | copy[1]) : 0, "example.com");
	pw_http_status((const char *)copy, size);
	spec(copy, size);
	free(copy);
	return 0;
}
