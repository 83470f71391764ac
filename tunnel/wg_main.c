/* xborder-wg — xborder's userspace WireGuard, run on its own like
 * wireguard-go: `xborder-wg [-f] IFNAME`, then configure it with `wg` and
 * `ip`. See xborder-wg(8).
 */
#include "common/daemonize.h"
#include "tunnel/device.h"
#include "tunnel/tun.h"
#include "tunnel/workers.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct wg_device *the_dev;

static void on_signal(int sig)
{
	(void)sig;
	if (the_dev)
		wg_device_stop(the_dev);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (the_dev)
		wg_device_request_stats(the_dev);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xborder-wg [-f|--foreground] [-c FILE] [--mtu N] [--timers SPEC] [--workers N] [-v] IFNAME\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -c, --config FILE  apply a wg-quick style file ([Interface]/[Peer]) at start\n"
		"  --mtu N            interface MTU (default 1420)\n"
		"  --timers SPEC      protocol times in seconds, e.g. rekey_after_time=10,reject_after_time=15\n"
		"  --workers N        threads that encrypt and decrypt, the data thread included\n"
		"                     (1..64; default: half the online CPUs, 1..%u; 1 = the data thread alone)\n"
		"  -v, --verbose      debug logging\n", WG_WORKERS_MAX);
}

/* Read a wg-quick style file before anything is created, so that a bad
 * file changes nothing. */
static int read_config(struct wg_conf *c, const char *path)
{
	char err[4096];

	if (wg_conf_parse_file(c, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s", err);
		return -1;
	}
	for (size_t i = 0; i < c->n_peers; i++)
		if (c->peers[i].endpoint_host)
			log_warnx("%s: endpoint `%s' is not numeric; xborder-wg does not resolve names "
				  "(xborderd does)", path, c->peers[i].endpoint_host);
	if (c->n_addresses)
		log_info("%s: Address is for the interface: set it with `ip address add'", path);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ "mtu", required_argument, NULL, 'm' },
		{ "timers", required_argument, NULL, 't' },
		{ "workers", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	bool foreground = false, verbose = false;
	unsigned long mtu = 0, workers = wg_workers_default();
	char *end;
	struct wg_timing timing;
	struct wg_conf conf = { 0 };
	char err[512];
	int c, r, ready_fd = -1;

	wg_timing_default(&timing);
	while ((c = getopt_long(argc, argv, "fc:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = true; break;
		case 'c': config = optarg; break;
		case 'v': verbose = true; break;
		case 'm':
			mtu = strtoul(optarg, NULL, 10);
			if (mtu < 576 || mtu > 65535) {
				fprintf(stderr, "xborder-wg: bad MTU `%s' (576..65535)\n", optarg);
				return 2;
			}
			break;
		case 'w':
			errno = 0;
			workers = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || workers < 1 || workers > 64) {
				fprintf(stderr, "xborder-wg: bad number of workers `%s' (1..64)\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (!wg_timing_parse(&timing, optarg, err, sizeof(err))) {
				fprintf(stderr, "xborder-wg: %s\n", err);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	log_init("xborder-wg", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO, !foreground);
	if (config && read_config(&conf, config) < 0)
		return 1;
	if (!foreground && (ready_fd = xb_daemonize()) < 0)
		fatal("fork");
	r = wg_device_open(&the_dev, argv[optind], &timing);
	if (r < 0)
		fatalx("%s: %s", argv[optind], strerror(-r));
	r = wg_device_set_workers(the_dev, (unsigned)workers);
	if (r < 0)
		fatalx("%s: starting %lu workers: %s", argv[optind], workers, strerror(-r));
	if (mtu) {
		the_dev->mtu = (unsigned)mtu;
		if (tun_set_mtu(the_dev->ifname, (unsigned)mtu) < 0)
			log_warn("%s: setting MTU %lu", the_dev->ifname, mtu);
	}
	if (config) {
		if (conf.mtu && !mtu && tun_set_mtu(the_dev->ifname, conf.mtu) == 0)
			the_dev->mtu = conf.mtu;
		r = wg_device_set(the_dev, &conf);
		wg_conf_free(&conf);
		if (r) {
			log_warnx("%s: %s", config, strerror(-r));
			wg_device_close(the_dev);
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGUSR1, on_usr1);
	log_info("%s: userspace WireGuard up, listening on port %u", the_dev->ifname, the_dev->listen_port);
	if (ready_fd >= 0)
		xb_daemon_ready(ready_fd);
	r = wg_device_run(the_dev);
	wg_device_log_stats(the_dev);
	wg_device_close(the_dev);
	log_info("%s: stopped", argv[optind]);
	return r < 0 ? 1 : 0;
}
