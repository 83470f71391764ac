/* xborder-posture — the device agent: collects this machine's posture and
 * reports it to the gateway over the WireGuard tunnel (xborder-posture(8)).
 *
 *   xborder-posture [-c FILE] --print   the report as it would go, sent nowhere
 *   xborder-posture [-c FILE] --once    one report; exit 0 when accepted
 *   xborder-posture [-c FILE] [-f] [-v] the daemon
 *
 * Timers (seconds, from the configuration): the facts are collected again
 * every `check'; a report goes when they differ from the last accepted
 * ones, and at least every `interval'. A failed report is retried after
 * 2, 4, 8 ... s up to `retry_max', each wait drawn from its upper half so
 * that agents cut off together do not come back together; a change of the
 * facts does not cut a retry wait short.
 */
#include "agent/posture.h"
#include "agent/report.h"
#include "common/clock.h"
#include "common/daemonize.h"
#include "common/log.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_BASE_S 2

static volatile sig_atomic_t stop, poke;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		poke = 1;
	else
		stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xborder-posture [-c FILE] [--once | --print] [-f] [-v]\n"
		"  -c, --config FILE  configuration (default " XBA_DEFAULT_CONF ")\n"
		"      --once         send one report; exit 0 when the gateway accepted it\n"
		"      --print        collect and print the report; send nothing\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -v, --verbose      debug logging\n");
}

/* Seconds to wait after the n-th failure in a row (n >= 1). */
static unsigned backoff(const struct xba_conf *c, unsigned n)
{
	unsigned d = RETRY_BASE_S;

	while (--n && d < c->retry_max_s)
		d *= 2;
	if (d > c->retry_max_s)
		d = c->retry_max_s;
	return d - randombytes_uniform(d / 2 + 1);
}

static int print(const struct xba_env *env)
{
	json_t *facts = xba_collect(env), *r;
	int ret = 1;

	if (facts && (r = xba_report_build(facts, xba_seq_peek(env->conf->state_dir), NULL))) {
		ret = json_dumpf(r, stdout, JSON_INDENT(2)) || puts("") == EOF;
		json_decref(r);
	}
	json_decref(facts);
	return ret || fflush(stdout) ? 1 : 0;
}

static int once(const struct xba_env *env)
{
	json_t *facts = xba_collect(env);
	char err[512];
	int rc;

	if (!facts) {
		log_warnx("collecting: out of memory");
		return 1;
	}
	rc = xba_report_send(env->conf, facts, err, sizeof(err));
	if (rc)
		log_warnx("report to %s port %u: %s", env->conf->gateway, env->conf->port, err);
	else
		log_info("report accepted by %s", env->conf->gateway);
	json_decref(facts);
	return rc ? 1 : 0;
}

struct state {
	json_t *sent;		/* the facts last accepted */
	uint64_t due_ns;	/* monotonic: next report at the latest */
	unsigned fails;		/* failures in a row */
};

/* Collect, and report when due or changed. */
static void tick(const struct xba_env *env, struct state *s)
{
	const struct xba_conf *c = env->conf;
	json_t *facts = xba_collect(env);
	uint64_t now = clock_mono_ns();
	char err[512];

	if (!facts)
		return;
	if (now < s->due_ns && !poke && (s->fails || (s->sent && json_equal(facts, s->sent)))) {
		json_decref(facts);
		return;
	}
	poke = 0;
	if (xba_report_send(c, facts, err, sizeof(err))) {
		unsigned wait = backoff(c, ++s->fails);

		log_warnx("report to %s port %u: %s; retrying in %u s", c->gateway, c->port, err,
			  wait);
		s->due_ns = now + wait * NSEC_PER_SEC;
		json_decref(facts);
		return;
	}
	if (s->fails || !s->sent || !json_equal(facts, s->sent))
		log_info("report accepted by %s", c->gateway);
	s->fails = 0;
	json_decref(s->sent);
	s->sent = facts;
	s->due_ns = now + c->interval_s * NSEC_PER_SEC;
}

static int serve(const struct xba_env *env, bool foreground)
{
	struct state s = { NULL, 0, 0 };
	int ready_fd = -1;

	if (!foreground && (ready_fd = xb_daemonize()) < 0)
		fatal("fork");
	if (ready_fd >= 0)
		xb_daemon_ready(ready_fd);
	log_info("reporting to %s port %u every %u s, checking every %u s", env->conf->gateway,
		 env->conf->port, env->conf->interval_s, env->conf->check_s);
	while (!stop) {
		uint64_t now, wake;

		tick(env, &s);
		now = clock_mono_ns();
		wake = now + env->conf->check_s * NSEC_PER_SEC;
		if (s.due_ns < wake)
			wake = s.due_ns;
		/* A signal (SIGTERM, SIGUSR1) ends the wait early. */
		if (wake > now && !stop && !poke)
			poll(NULL, 0, (int)((wake - now) / NSEC_PER_MSEC) + 1);
	}
	json_decref(s.sent);
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "print", no_argument, NULL, 'p' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = XBA_DEFAULT_CONF;
	bool do_once = false, do_print = false, foreground = false, verbose = false;
	struct xba_conf conf;
	struct xba_env env = { "", &conf, true };
	struct sigaction sa = { .sa_handler = on_signal };
	int c, ret;

	while ((c = getopt_long(argc, argv, "c:fvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'o': do_once = true; break;
		case 'p': do_print = true; break;
		case 'f': foreground = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || (do_once && do_print)) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0 || xba_conf_load(&conf, path)) {
		xba_conf_free(&conf);
		return 1;
	}
	log_init("xborder-posture", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		 !foreground && !do_once && !do_print);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	if (do_print)
		ret = print(&env);
	else if (do_once)
		ret = once(&env);
	else
		ret = serve(&env, foreground);
	xba_conf_free(&conf);
	return ret;
}
