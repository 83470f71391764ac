/* libFuzzer: a prefix-list file (a rule's to_lists, policy/plist.c) loaded
 * with the policy that names it, then compiled. Checks: a load that
 * succeeds kept one prefix for every line that is not blank or a comment,
 * in order, each equal to its line's text parsed, without host bits, the
 * families counted; no such load had a NUL byte in the file; every prefix
 * is in the compiled table; a load that fails said so with an error of the
 * list file at a line the file has (or of the policy). */
#include "fuzz_policy.h"
#include "policy/compile.h"
#include "policy/internal.h"

#include <ctype.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define GATEWAY \
	"gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\";\n" \
	"  pool6 = \"2001:db8:100::/64\"; };\n"
static const char conf[] = GATEWAY
	"rules = ( { name = \"r\"; to_lists = [ \"list.txt\" ]; action = \"deny\"; } );\n";

static char path[512], list[512];

static void put_list(const uint8_t *data, size_t size)
{
	FILE *f = fopen(list, "we");

	check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
}

/* The lines' trimmed texts that are not empty, as the reader sees them
 * (comments cut at '#'); *nul when a line holds a NUL byte. */
static size_t lines(const uint8_t *data, size_t size, char ***out, bool *nul, unsigned *n_lines)
{
	size_t n = 0, start = 0;
	char **v = calloc(size + 1, sizeof(*v));

	check(v);
	*nul = false;
	*n_lines = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		if (i == size && start == size)
			break;
		char *s = strndup((const char *)data + start, i - start), *e;

		check(s);
		(*n_lines)++;
		*nul |= memchr(data + start, 0, i - start) != NULL;
		if ((e = strchr(s, '#')))
			*e = '\0';
		for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		for (e = s; isspace((unsigned char)*e); e++)
			;
		if (*e)
			v[n++] = strdup(e);
		free(s);
		start = i + 1;
	}
	*out = v;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char **want;
	bool nul;
	unsigned n_lines;
	size_t n;

	if (!path[0]) {	/* the directory and key, then the policy naming the list */
		xb_policy_free(fuzz_policy(GATEWAY));
		fuzz_write("list.txt", "", 0644);
		fuzz_write("xborder.conf", conf, 0644);
		snprintf(path, sizeof(path), "%s/xborder.conf", fuzz_dir);
		snprintf(list, sizeof(list), "%s/list.txt", fuzz_dir);
	}
	if (size > 65536)
		return 0;
	put_list(data, size);
	n = lines(data, size, &want, &nul, &n_lines);
	p = xb_policy_load(path, &errs);
	if (p) {
		const struct xb_prefix_list *pl = &p->lists[0];
		struct xb_plan plan;
		char *s, buf[64];

		check(!nul && p->n_lists == 1 && pl->n == n && pl->n4 + pl->n6 == n);
		for (size_t i = 0; i < n; i++) {
			struct xb_prefix q;

			check(xb_prefix_parse(&q, want[i]));
			check(q.family == pl->v[i].family && q.cidr == pl->v[i].cidr &&
			      !memcmp(q.addr, pl->v[i].addr, 16));
			check(!xbp_prefix_host_bits(&pl->v[i]));
		}
		check(xb_plan_build(p, &plan, &errs) == 0);
		check((s = xb_compile_nft(p, &plan, NULL)) != NULL);
		for (size_t i = 0; i < n; i++) {
			xbp_prefix_format(buf, sizeof(buf), &pl->v[i]);
			if (pl->v[i].cidr == (pl->v[i].family == AF_INET ? 32 : 128))
				*strchr(buf, '/') = '\0';
			check(strstr(s, buf) != NULL);
		}
		free(s);
		xb_plan_free(&plan);
		xb_policy_free(p);
	} else {
		check(errs.n > 0);
		for (size_t i = 0; i < errs.n; i++)
			check(strcmp(errs.v[i].file, list) || errs.v[i].line <= n_lines);
	}
	for (size_t i = 0; i < n; i++)
		free(want[i]);
	free(want);
	xb_errors_free(&errs);
	return 0;
}
