/* libFuzzer: the pool allocation state file ("addresses": "NAME ADDRESS"
 * lines) read by xb_policy_allocate. The policy has a small IPv4 pool (a
 * /28: 13 addresses for devices), an IPv6 one, five devices to place and
 * one with a fixed address. Checks: on success every device has an
 * address of each family, inside the pool, not the gateway's, none twice;
 * and allocating again from the file just written gives every device the
 * same addresses. */
#include "fuzz_policy.h"
#include "common/log.h"

#include <arpa/inet.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static const char conf[] =
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/28\";\n"
	"  pool6 = \"2001:db8:100::/120\"; };\n"
	"devices = (\n"
	"  { name = \"alice\"; public_key = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"; },\n"
	"  { name = \"bob\"; public_key = \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"; },\n"
	"  { name = \"carol\"; public_key = \"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\"; },\n"
	"  { name = \"dave\"; public_key = \"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=\"; },\n"
	"  { name = \"erin\"; public_key = \"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\"; },\n"
	"  { name = \"fixed\"; public_key = \"BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=\";\n"
	"    address4 = \"198.51.100.5\"; }\n"
	");\n";

static void check_placed(const struct xb_policy *p)
{
	const struct xb_gateway *g = &p->gateway;

	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *d = &p->devices[i];
		uint32_t a = ntohl(d->address4.s_addr);

		check(d->has4 && d->has6);
		check((a & 0xfffffff0u) == 0xc6336400u);	/* 198.51.100.0/28 */
		check(d->address4.s_addr != g->address4.s_addr);
		check(!memcmp(&d->address6, &g->pool6.addr, 15));	/* 2001:db8:100::/120 */
		check(memcmp(&d->address6, &g->address6, 16));
		for (size_t k = 0; k < i; k++) {
			check(d->address4.s_addr != p->devices[k].address4.s_addr);
			check(memcmp(&d->address6, &p->devices[k].address6, 16));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xb_policy *p;
	static char path[512];
	struct in_addr a4[6];
	struct in6_addr a6[6];
	struct xb_errors errs = { 0 };
	char *text;
	int r;

	if (!p) {
		log_init("fuzz", LOG_LVL_ERR, false);
		p = fuzz_policy(conf);
		check(p->n_devices == 6);
		snprintf(path, sizeof(path), "%s/addresses", fuzz_dir);
	}
	if (!(text = malloc(size + 1)))
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_write("addresses", text, 0600);
	free(text);
	r = xb_policy_allocate(p, path, &errs);
	check(r == 0 || errs.n > 0);	/* a failure says why */
	xb_errors_free(&errs);
	if (r)
		return 0;
	check_placed(p);
	for (size_t i = 0; i < 6; i++) {
		a4[i] = p->devices[i].address4;
		a6[i] = p->devices[i].address6;
	}
	check(xb_policy_allocate(p, path, &errs) == 0);
	for (size_t i = 0; i < 6; i++)
		check(a4[i].s_addr == p->devices[i].address4.s_addr &&
		      !memcmp(&a6[i], &p->devices[i].address6, 16));
	return 0;
}
