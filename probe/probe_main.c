/* xb-probe: probe targets through one interface, print every result and,
 * on exit, the statistics. For operators checking a tunnel by hand and for
 * tests/net/probe.sh.
 *
 *   xb-probe -I xb-cmi [-i MS] [-c ROUNDS] [-l LOSS_MS] [-W WINDOW] [-m MARK]
 *            [-q] TARGET...
 *
 * TARGET: icmp:ADDR, tcp:ADDR:PORT, http:ADDR[:PORT]/PATH, dns:ADDR[:PORT]/NAME.
 * Output, one line each, key=value:
 *   result round=N target=SPEC ok rtt_ms=X | lost error="..." | late rtt_ms=X
 *   state from=up to=down mono_ns=N
 *   stats target=SPEC|tunnel state=... sent=.. lost=.. loss_pct=.. rtt_*_ms=..
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "probe/probe.h"

static volatile sig_atomic_t stop;
static bool quiet;
static struct xb_probe_tunnel_cfg cfg;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_result(void *ctx, const struct xb_probe_result *r)
{
	char t[600];

	(void)ctx;
	if (quiet)
		return;
	xb_probe_target_str(&cfg.targets[r->target], t, sizeof(t));
	if (r->ok)
		printf("result round=%" PRIu64 " target=%s ok rtt_ms=%.3f\n", r->round, t,
		       r->rtt_ns / 1e6);
	else if (r->late)
		printf("result round=%" PRIu64 " target=%s late rtt_ms=%.3f\n", r->round, t,
		       r->rtt_ns / 1e6);
	else
		printf("result round=%" PRIu64 " target=%s lost error=\"%s\"\n", r->round, t,
		       r->error ? r->error : "");
	fflush(stdout);
}

static void on_state(void *ctx, size_t tunnel, enum xb_pstate from, enum xb_pstate to)
{
	(void)ctx;
	(void)tunnel;	/* the one tunnel, cfg */
	printf("state tunnel=%s from=%s to=%s mono_ns=%" PRIu64 "\n", cfg.name, xb_pstate_name(from),
	       xb_pstate_name(to), clock_mono_ns());
	fflush(stdout);
}

static void print_stats(const char *what, const struct xb_pstats_summary *s)
{
	printf("stats %s state=%s sent=%" PRIu64 " decided=%u lost=%u late=%u loss_pct=%.2f"
	       " rtt_last_ms=%.3f rtt_min_ms=%.3f rtt_mean_ms=%.3f rtt_p50_ms=%.3f"
	       " rtt_p95_ms=%.3f rtt_sd_ms=%.3f jitter_ms=%.3f availability=%.4f"
	       " downs=%" PRIu64 " score=%.1f\n",
	       what, xb_pstate_name(s->state), s->sent, s->decided, s->lost, s->late, s->loss_pct,
	       s->rtt_last_ns / 1e6, s->rtt_min_ns / 1e6, s->rtt_mean_ns / 1e6,
	       s->rtt_p50_ns / 1e6, s->rtt_p95_ns / 1e6, s->rtt_sd_ns / 1e6, s->jitter_ns / 1e6,
	       s->availability, s->downs, isinf(s->score) ? -1.0 : s->score);
}

static void usage(void)
{
	fprintf(stderr, "usage: xb-probe -I IFNAME [-i INTERVAL_MS] [-c ROUNDS] [-l LOSS_MS]"
			" [-W WINDOW] [-m MARK] [-q] TARGET...\n"
			"  TARGET: icmp:ADDR tcp:ADDR:PORT http:ADDR[:PORT]/PATH"
			" dns:ADDR[:PORT]/NAME\n");
	exit(2);
}

static unsigned long num(const char *s, const char *what, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || !*s || *end || v > max) {
		fprintf(stderr, "xb-probe: %s `%s' is not a number up to %lu\n", what, s, max);
		exit(2);
	}
	return v;
}

static void add_target(const char *spec)
{
	const char *err;

	if (cfg.n_targets == XB_PROBE_MAX_TARGETS) {
		fprintf(stderr, "xb-probe: at most %d targets\n", XB_PROBE_MAX_TARGETS);
		exit(2);
	}
	if (!xb_probe_target_parse(spec, &cfg.targets[cfg.n_targets++], &err)) {
		fprintf(stderr, "xb-probe: target `%s': %s\n", spec, err);
		exit(2);
	}
}

/* The library's defaults, with the two that must follow -l and -W. */
static void parse(int argc, char **argv, uint64_t *rounds)
{
	int c;

	xb_probe_tunnel_defaults(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "probe");
	while ((c = getopt(argc, argv, "I:i:c:l:W:m:qh")) != -1) {
		switch (c) {
		case 'I':
			snprintf(cfg.ifname, sizeof(cfg.ifname), "%s", optarg);
			snprintf(cfg.name, sizeof(cfg.name), "%s", optarg);
			break;
		case 'i':
			cfg.interval_ns = num(optarg, "interval", 3600000) * NSEC_PER_MSEC;
			break;
		case 'c':
			*rounds = num(optarg, "count", UINT32_MAX);
			break;
		case 'l':
			cfg.stats.loss_ns = num(optarg, "loss interval", 3600000) * NSEC_PER_MSEC;
			break;
		case 'W':
			cfg.stats.window = (unsigned)num(optarg, "window", 4096);
			break;
		case 'm':
			cfg.mark = (uint32_t)num(optarg, "mark", UINT32_MAX);
			break;
		case 'q':
			quiet = true;
			break;
		default:
			usage();
		}
	}
	for (; optind < argc; optind++)
		add_target(argv[optind]);
	if (!cfg.ifname[0] || !cfg.n_targets)
		usage();
	if (cfg.stats.timeout_min_ns > cfg.stats.loss_ns)
		cfg.stats.timeout_min_ns = cfg.stats.loss_ns;
	if (cfg.stats.min_decided > cfg.stats.window)
		cfg.stats.min_decided = cfg.stats.window;
}

int main(int argc, char **argv)
{
	uint64_t rounds = 0, end = 0;
	struct xb_probe_cbs cbs = { on_result, on_state, NULL, NULL };
	struct xb_probe *p;
	struct xb_pstats_summary s;
	const char *err;
	char t[600];

	parse(argc, argv, &rounds);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	p = xb_probe_new(&cbs);
	if (!p) {
		perror("xb-probe");
		return 1;
	}
	if (xb_probe_set(p, &cfg, 1, &err)) {
		fprintf(stderr, "xb-probe: %s\n", err);
		return 2;
	}
	while (!stop) {
		struct pollfd pfd = { xb_probe_fd(p), POLLIN, 0 };
		uint64_t now;

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		now = clock_mono_ns();
		xb_probe_process(p, now);
		xb_probe_stats(p, cfg.name, -1, now, &s);
		if (rounds && !end && s.sent >= rounds)
			end = now;	/* then wait for the last ones' fate */
		if (end && now >= end + cfg.stats.loss_ns + NSEC_PER_MSEC)
			break;
	}
	for (int i = -1; i < (int)cfg.n_targets; i++) {
		xb_probe_stats(p, cfg.name, i, clock_mono_ns(), &s);
		if (i < 0)
			snprintf(t, sizeof(t), "tunnel=%s", cfg.name);
		else
			snprintf(t, sizeof(t), "target=%s",
				 xb_probe_target_str(&cfg.targets[i], t + 300, 300));
		print_stats(t, &s);
	}
	printf("packets sent=%" PRIu64 "\n", xb_probe_packets(p));
	xb_probe_free(p);
	return 0;
}
