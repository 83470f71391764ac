/* xb-gre — one userspace GRE tunnel in the foreground, for tests and for
 * hosts without ip_gre:
 *
 *   xb-gre --local A --remote B [--key K] [--seq] [--csum]
 *          [--keepalive SECS,RETRIES] [--mtu N] [--ttl N] [--dev DEV] IFNAME
 *
 * Addresses go on IFNAME with `ip'. SIGTERM/SIGINT stop it cleanly (the
 * interface goes); SIGUSR1 logs the counters, which are logged at exit too.
 * Keepalive state changes are logged as "tunnel down" / "tunnel up".
 */
#include "tunnel/gre.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gre_tunnel *the_tunnel;

static void on_signal(int sig)
{
	if (the_tunnel)
		sig == SIGUSR1 ? gre_tunnel_request_stats(the_tunnel) : gre_tunnel_stop(the_tunnel);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xb-gre --local ADDR --remote ADDR [options] IFNAME\n"
		"  --local ADDR          our outer address (IPv4 or IPv6)\n"
		"  --remote ADDR         the remote's outer address (same family)\n"
		"  --key K               GRE key: integer or dotted quad (sent and required)\n"
		"  --seq                 send sequence numbers, require them in order\n"
		"  --csum                send checksums (received ones are always verified)\n"
		"  --keepalive S,R       keepalive every S seconds (decimals allowed), down after R\n"
		"                        intervals without a reply\n"
		"  --mtu N               interface MTU (default 1476, 1456 for an IPv6 outer,\n"
		"                        less 4 for each of --key, --seq, --csum)\n"
		"  --ttl N               outer TTL / hop limit (default: the system's)\n"
		"  --dev DEV             send and receive only through DEV\n"
		"  -v, --verbose         debug logging (dropped packets)\n");
}

static bool parse_addrs(struct gre_config *c, const char *local, const char *remote)
{
	int fam = strchr(local, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(fam, local, &c->local) != 1) {
		fprintf(stderr, "xb-gre: --local `%s' is not an IPv4 or IPv6 address\n", local);
		return false;
	}
	if (inet_pton(fam, remote, &c->remote) != 1) {
		fprintf(stderr, "xb-gre: --remote `%s' is not an %s address like --local\n", remote,
			fam == AF_INET ? "IPv4" : "IPv6");
		return false;
	}
	c->family = fam;
	return true;
}

static bool parse_keepalive(struct gre_config *c, const char *s)
{
	char *end;
	double secs = strtod(s, &end);
	unsigned long retries;

	if (end == s || *end != ',' || !(secs >= 0.01 && secs <= 3600))
		return false;
	s = end + 1;
	retries = strtoul(s, &end, 10);
	if (end == s || *end || retries < 1 || retries > 255)
		return false;
	c->keepalive_ms = (unsigned)(secs * 1000 + 0.5);
	c->keepalive_retries = (unsigned)retries;
	return true;
}

static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

/* 0 to run, 1 to exit with status 2 (message printed). */
static int parse_args(int argc, char **argv, struct gre_config *c, bool *verbose)
{
	static const struct option opts[] = {
		{ "local", required_argument, NULL, 'l' }, { "remote", required_argument, NULL, 'r' },
		{ "key", required_argument, NULL, 'k' }, { "seq", no_argument, NULL, 's' },
		{ "csum", no_argument, NULL, 'c' }, { "keepalive", required_argument, NULL, 'K' },
		{ "mtu", required_argument, NULL, 'm' }, { "ttl", required_argument, NULL, 't' },
		{ "dev", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *local = NULL, *remote = NULL;
	int o, idx = 0;

	while ((o = getopt_long(argc, argv, "vh", opts, &idx)) != -1) {
		bool ok = true;

		switch (o) {
		case 'l': local = optarg; break;
		case 'r': remote = optarg; break;
		case 'k': ok = gre_key_parse(optarg, &c->opts.key); c->opts.has_key = true; break;
		case 's': c->opts.seq = true; break;
		case 'c': c->opts.csum = true; break;
		case 'K': ok = parse_keepalive(c, optarg); break;
		case 'm': ok = parse_uint(optarg, 576, 9000, &c->mtu); break;
		case 't': ok = parse_uint(optarg, 1, 255, &c->ttl); break;
		case 'd': ok = strlen(optarg) < sizeof(c->bind_dev);
			  snprintf(c->bind_dev, sizeof(c->bind_dev), "%s", optarg); break;
		case 'v': *verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 1;
		}
		if (!ok) {
			fprintf(stderr, "xb-gre: bad value `%s' for --%s\n", optarg, opts[idx].name);
			return 1;
		}
	}
	if (optind + 1 != argc || !local || !remote) {
		usage(stderr);
		return 1;
	}
	if (strlen(argv[optind]) >= sizeof(c->ifname)) {
		fprintf(stderr, "xb-gre: interface name `%s' is too long\n", argv[optind]);
		return 1;
	}
	snprintf(c->ifname, sizeof(c->ifname), "%s", argv[optind]);
	return parse_addrs(c, local, remote) ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct gre_config c = { 0 };
	struct gre_stats st;
	bool verbose = false;
	char buf[512];
	int r;

	if (parse_args(argc, argv, &c, &verbose))
		return 2;
	log_init("xb-gre", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO, false);
	if (!gre_config_check(&c, buf, sizeof(buf))) {
		fprintf(stderr, "xb-gre: %s\n", buf);
		return 2;
	}
	if ((r = gre_tunnel_open(&the_tunnel, &c)) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGUSR1, on_signal);
	inet_ntop(c.family, &c.remote, buf, sizeof(buf));
	log_info("%s: userspace GRE to %s up%s%s%s", c.ifname, buf, c.opts.has_key ? ", key" : "",
		 c.opts.seq ? ", sequence numbers" : "", c.opts.csum ? ", checksums" : "");
	r = gre_tunnel_run(the_tunnel);
	gre_tunnel_stats(the_tunnel, &st);
	gre_stats_format(&st, buf, sizeof(buf));
	log_info("%s: %s", c.ifname, buf);
	gre_tunnel_close(the_tunnel);
	log_info("%s: stopped", c.ifname);
	return r < 0 ? 1 : 0;
}
