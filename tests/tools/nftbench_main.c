/* xb-nftbench [-n RUNS] POLICY... — what a policy costs on its way into the
 * kernel, phase by phase, the way xborderd does it: load and check the
 * policy (list files included), build the plan and compile the table, load
 * the table through libnftables into an empty kernel, then replace it
 * RUNS times (default 5; what a reload does). Prints one line per policy:
 * milliseconds of each phase (the replace as median and maximum) and the
 * script's size. Changes table inet xborder of the current network
 * namespace: run it in a namespace of its own (bench/plist.sh does). */
#include "gateway/kernel/nft.h"
#include "policy/compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUNS_MAX 100

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int nft(struct xb_nft *n, const char *script, double *ms)
{
	char *err = NULL;
	double t0 = now_ms();

	if (xb_nft_run(n, script, &err) < 0) {
		fprintf(stderr, "nft: %s", err ? err : "failed\n");
		free(err);
		return -1;
	}
	*ms = now_ms() - t0;
	return 0;
}

static int bench(struct xb_nft *n, const char *path, int runs)
{
	struct xb_errors errs = { 0 };
	struct xb_plan plan;
	struct xb_policy *p;
	double t0 = now_ms(), t_load, t_compile, t_first, t[RUNS_MAX];
	size_t prefixes = 0;
	char *script;

	p = xb_policy_load(path, &errs);
	if (p && xb_policy_allocate(p, NULL, &errs) < 0) {
		xb_policy_free(p);
		p = NULL;
	}
	if (!p) {
		xb_errors_print(&errs, stderr);
		xb_errors_free(&errs);
		return -1;
	}
	t_load = now_ms() - t0;
	t0 = now_ms();
	if (xb_plan_build(p, &plan, &errs) < 0 || !(script = xb_compile_nft(p, &plan, NULL))) {
		xb_errors_print(&errs, stderr);
		xb_errors_free(&errs);
		xb_policy_free(p);
		return -1;
	}
	t_compile = now_ms() - t0;
	for (size_t i = 0; i < p->n_lists; i++)
		prefixes += p->lists[i].n;
	xb_nft_run(n, "destroy table inet " XB_NFT_TABLE "\n", NULL);
	int r = nft(n, script, &t_first);
	for (int i = 0; r == 0 && i < runs; i++)
		r = nft(n, script, &t[i]);
	if (r == 0) {
		qsort(t, (size_t)runs, sizeof(t[0]), cmp);
		printf("%s: %zu list prefixes, script %zu KiB: load+check %.1f ms, compile %.1f ms, "
		       "table load %.1f ms, replace median %.1f ms (max %.1f, %d runs)\n", path,
		       prefixes, strlen(script) / 1024, t_load, t_compile, t_first, t[runs / 2],
		       t[runs - 1], runs);
	}
	xb_nft_run(n, "destroy table inet " XB_NFT_TABLE "\n", NULL);
	free(script);
	xb_plan_free(&plan);
	xb_policy_free(p);
	xb_errors_free(&errs);
	return r;
}

int main(int argc, char **argv)
{
	struct xb_nft n;
	int runs = 5, opt, rc = 0;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n' || (runs = atoi(optarg)) < 1 || runs > RUNS_MAX) {
			fprintf(stderr, "usage: xb-nftbench [-n RUNS (1-%d)] POLICY...\n", RUNS_MAX);
			return 2;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "usage: xb-nftbench [-n RUNS (1-%d)] POLICY...\n", RUNS_MAX);
		return 2;
	}
	if (xb_nft_open(&n) < 0) {
		fprintf(stderr, "xb-nftbench: libnftables: out of memory\n");
		return 1;
	}
	for (int i = optind; i < argc; i++)
		if (bench(&n, argv[i], runs) < 0)
			rc = 1;
	xb_nft_close(&n);
	return rc;
}
