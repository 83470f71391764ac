/* xb-ctlfake — a control socket serving canned answers, for testing
 * xborderctl against the real server module without a daemon.
 *
 *   xb-ctlfake SOCKET DIR
 *
 * Serves status, devices, tunnels, rules, reload, dns, explain, drops and
 * cluster-prune (cluster-prune-dry with an argument). For command NAME the
 * result is the JSON in DIR/NAME.json; failing that, DIR/NAME.err makes the
 * command fail, its first line the error and each further line one entry of
 * "errors". Runs until SIGTERM or SIGINT, and at most 120 s.
 */
#include "common/log.h"
#include "gateway/control.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIFETIME_S 120

static const char *dir;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int canned_error(FILE *f, char **error, json_t **errors)
{
	char line[1024];

	*errors = json_array();
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!*error)
			*error = strdup(line);
		else
			json_array_append_new(*errors, json_string(line));
	}
	fclose(f);
	return -1;
}

static int canned(const char *name, json_t **result, char **error, json_t **errors)
{
	char path[4096];
	json_error_t jerr;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	if ((*result = json_load_file(path, JSON_DECODE_ANY, &jerr)))
		return 0;
	snprintf(path, sizeof(path), "%s/%s.err", dir, name);
	if ((f = fopen(path, "r")))
		return canned_error(f, error, errors);
	*error = strdup("no canned answer");
	return -1;
}

/* A handler per command, as the daemon has. */
#define CANNED(name)                                                              \
	static int h_##name(void *ctx, json_t *args, json_t **result, char **error, \
			    json_t **errors)                                          \
	{                                                                         \
		(void)ctx, (void)args;                                            \
		return canned(#name, result, error, errors);                      \
	}
CANNED(status)
CANNED(devices)
CANNED(tunnels)
CANNED(rules)
CANNED(reload)
CANNED(dns)
CANNED(explain)
CANNED(drops)

static int h_cluster_prune(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	(void)ctx;
	/* The dry run's own answer, so that the flag is seen to reach the daemon. */
	return canned(json_array_size(args) ? "cluster-prune-dry" : "cluster-prune", result, error,
		      errors);
}

static const struct xb_ctl_command cmds[] = {
	{ "status", h_status, NULL },
	{ "devices", h_devices, NULL },
	{ "tunnels", h_tunnels, NULL },
	{ "rules", h_rules, NULL },
	{ "reload", h_reload, NULL },
	{ "dns", h_dns, NULL },
	{ "explain", h_explain, NULL },
	{ "drops", h_drops, NULL },
	{ "cluster-prune", h_cluster_prune, NULL },
};

static int serve(const char *sock)
{
	struct xb_ctl *c;
	time_t end = time(NULL) + LIFETIME_S;

	if (!(c = xb_ctl_open(sock, (gid_t)-1, cmds, sizeof(cmds) / sizeof(cmds[0]), NULL)))
		return 1;
	while (!stop && time(NULL) < end) {
		struct pollfd p = { .fd = xb_ctl_fd(c), .events = POLLIN };
		if (poll(&p, 1, 200) > 0)
			xb_ctl_process(c);
	}
	xb_ctl_close(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: xb-ctlfake SOCKET DIR\n");
		return 2;
	}
	dir = argv[2];
	log_init("xb-ctlfake", LOG_LVL_DEBUG, false);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	return serve(argv[1]);
}
