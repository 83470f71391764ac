/* xborderd — the gateway daemon: builds the gateway from its policy
 * (xborder.conf(5)) and keeps it in line with the file (xborderd(8)).
 *
 *   xborderd [-c FILE] --check     every error as FILE:LINE: message, exit 1
 *   xborderd [-c FILE] --print     the normalised policy (implies --check)
 */
#include "gateway/daemon.h"
#include "gateway/dns/dns_service.h"
#include "common/daemonize.h"
#include "common/log.h"
#include "policy/policy.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_POLICY "/etc/xborder/xborder.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xborderd [-c FILE] [-n|--check] [-v|--print] [-f] [-d]\n"
		"  -c, --config FILE  the policy (default " DEFAULT_POLICY ")\n"
		"  -n, --check        check the policy, report every error, and exit\n"
		"  -v, --print        check, then print the normalised policy and exit\n"
		"  -f, --foreground   stay in the foreground (for systemd)\n"
		"  -d, --debug        debug logging\n");
}

/* --check and --print: exit status 0 when the policy is valid, else 1.
 * The daemon's own loader (xb_daemon_load): the file, the pools, the
 * routing plan and the DNS lists, so that what passes here starts. Without
 * the state file: only whether every device can have an address; the
 * daemon allocates for real. */
static int check(const char *path, bool print)
{
	struct xb_errors errs = { 0 };
	struct xb_loaded l;
	int ret = 0;

	if (xb_daemon_load(path, false, NULL, &l, &errs) < 0) {
		xb_errors_print(&errs, stderr);
		xb_errors_free(&errs);
		return 1;
	}
	if (print)
		xb_policy_print(l.policy, stdout);
	else
		printf("%s: policy OK (%zu devices, %zu tunnels, %zu rules)\n", path,
		       l.policy->n_devices, l.policy->n_tunnels, l.policy->n_rules);
	if (fflush(stdout) || ferror(stdout)) {
		perror("xborderd: stdout");
		ret = 1;
	}
	xb_loaded_free(&l);
	xb_errors_free(&errs);
	return ret;
}

/* Whether we may build interfaces, routes and the nft table: CAP_NET_ADMIN
 * in the effective set (root has it; the systemd unit gives it to the
 * xborder user). */
static bool net_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2] = { 0 };

	if (syscall(SYS_capget, &h, c) < 0)
		return geteuid() == 0;
	return c[0].effective & (1u << CAP_NET_ADMIN);
}

/* Run the gateway until SIGTERM; everything built is removed on the way out. */
static int serve(const char *path, bool foreground, bool debug)
{
	static struct xb_daemon d;
	int ready_fd = -1;

	if (!net_admin())
		fprintf(stderr, "xborderd: no CAP_NET_ADMIN: creating interfaces will fail\n");
	log_init("xborderd", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, !foreground);
	if (!foreground && (ready_fd = xb_daemonize()) < 0)
		fatal("fork");
	if (xb_daemon_start(&d, path) < 0)
		return 1;
	if (ready_fd >= 0)
		xb_daemon_ready(ready_fd);
	xb_daemon_run(&d);
	xb_daemon_stop(&d);
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "print", no_argument, NULL, 'v' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_POLICY;
	bool do_check = false, do_print = false, foreground = false, debug = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:nvfdh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': do_check = true; break;
		case 'v': do_print = true; break;
		case 'f': foreground = true; break;
		case 'd': debug = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "xborderd: unexpected argument `%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (do_check || do_print)
		return check(path, do_print);
	return serve(path, foreground, debug);
}
