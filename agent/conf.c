/* The agent's configuration file (libconfig); see xborder-posture(8).
 *
 *   gateway = "198.51.100.1"; port = 8443;
 *   interval = 60; check = 5; timeout = 10; retry_max = 300;   # seconds
 *   state_dir = "/var/lib/xborder-posture";
 *   mounts = [ "/home" ]; processes = [ "sshd" ]; files = [ "/etc/xb/marker" ];
 *   screen_lock_command = "..."; attributes_file = "/etc/xborder-posture.attr";
 *
 * Every error is printed as FILE:LINE: message, all of them before failing.
 */
#include "agent/posture.h"

#include <arpa/inet.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ld {
	const char *path;
	int errors;
};

static const char *const known[] = {
	"gateway", "port", "interval", "check", "timeout", "retry_max", "state_dir",
	"screen_lock_command", "attributes_file", "mounts", "processes", "files",
};

static void __attribute__((format(printf, 3, 4)))
err(struct ld *l, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	if (s)
		fprintf(stderr, "%s:%d: ", l->path, config_setting_source_line(s));
	else
		fprintf(stderr, "%s: ", l->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	l->errors++;
}

/* A misspelt key would silently keep a default; refuse it. */
static void check_known(struct ld *l, config_t *c)
{
	config_setting_t *root = config_root_setting(c), *s;

	for (int i = 0; (s = config_setting_get_elem(root, (unsigned)i)); i++) {
		size_t k = 0;

		while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k], config_setting_name(s)))
			k++;
		if (k == sizeof(known) / sizeof(known[0]))
			err(l, s, "unknown setting `%s'", config_setting_name(s));
	}
}

static void get_str(struct ld *l, config_t *c, const char *name, char **out)
{
	config_setting_t *s = config_lookup(c, name);
	const char *v;

	if (!s)
		return;
	if (!(v = config_setting_get_string(s)) || !*v) {
		err(l, s, "%s must be a non-empty string", name);
		return;
	}
	free(*out);
	*out = strdup(v);
}

/* A number of seconds in [lo, hi]. */
static void get_secs(struct ld *l, config_t *c, const char *name, unsigned lo, unsigned hi,
		     unsigned *out)
{
	config_setting_t *s = config_lookup(c, name);
	int v;

	if (!s)
		return;
	v = config_setting_get_int(s);
	if (config_setting_type(s) != CONFIG_TYPE_INT || v < (int)lo || v > (int)hi) {
		err(l, s, "%s must be an integer from %u to %u", name, lo, hi);
		return;
	}
	*out = (unsigned)v;
}

static void get_list(struct ld *l, config_t *c, const char *name, bool abs, char ***out,
		     size_t *n)
{
	config_setting_t *s = config_lookup(c, name);
	int len;

	if (!s)
		return;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		err(l, s, "%s must be a list of strings", name);
		return;
	}
	len = config_setting_length(s);
	*out = calloc((size_t)len + 1, sizeof(**out));
	for (int i = 0; *out && i < len; i++) {
		const char *v = config_setting_get_string_elem(s, i);

		if (!v || !*v || (abs && *v != '/')) {
			err(l, s, "%s: every entry must be %s", name,
			    abs ? "an absolute path" : "a non-empty string");
			continue;
		}
		(*out)[(*n)++] = strdup(v);
	}
}

static void check_gateway(struct ld *l, config_t *c, struct xba_conf *conf)
{
	unsigned char buf[16];
	unsigned port = conf->port;

	if (!conf->gateway)
		err(l, NULL, "%s is required", "gateway");
	else if (inet_pton(AF_INET, conf->gateway, buf) != 1 &&
		 inet_pton(AF_INET6, conf->gateway, buf) != 1)
		err(l, config_lookup(c, "gateway"), "gateway `%s' is not an IPv4 or IPv6 address",
		    conf->gateway);
	get_secs(l, c, "port", 1, 65535, &port);
	conf->port = (uint16_t)port;
}

static void defaults(struct xba_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->port = XBA_DEFAULT_PORT;
	conf->interval_s = 60;
	conf->check_s = 5;
	conf->timeout_s = 10;
	conf->retry_max_s = 300;
	conf->state_dir = strdup(XBA_DEFAULT_STATE);
}

int xba_conf_load(struct xba_conf *conf, const char *path)
{
	struct ld l = { path, 0 };
	config_t c;

	defaults(conf);
	config_init(&c);
	if (!config_read_file(&c, path)) {
		fprintf(stderr, "%s:%d: %s\n", config_error_file(&c) ?: path,
			config_error_line(&c), config_error_text(&c));
		config_destroy(&c);
		return -1;
	}
	check_known(&l, &c);
	get_str(&l, &c, "gateway", &conf->gateway);
	check_gateway(&l, &c, conf);
	get_secs(&l, &c, "interval", 5, 86400, &conf->interval_s);
	get_secs(&l, &c, "check", 1, 3600, &conf->check_s);
	get_secs(&l, &c, "timeout", 1, 300, &conf->timeout_s);
	get_secs(&l, &c, "retry_max", 1, 86400, &conf->retry_max_s);
	get_str(&l, &c, "state_dir", &conf->state_dir);
	get_str(&l, &c, "screen_lock_command", &conf->screen_lock_cmd);
	get_str(&l, &c, "attributes_file", &conf->attributes_file);
	get_list(&l, &c, "mounts", true, &conf->mounts, &conf->n_mounts);
	get_list(&l, &c, "processes", false, &conf->processes, &conf->n_processes);
	get_list(&l, &c, "files", true, &conf->files, &conf->n_files);
	config_destroy(&c);
	return l.errors ? -1 : 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void xba_conf_free(struct xba_conf *conf)
{
	free(conf->gateway);
	free(conf->state_dir);
	free(conf->screen_lock_cmd);
	free(conf->attributes_file);
	free_list(conf->mounts, conf->n_mounts);
	free_list(conf->processes, conf->n_processes);
	free_list(conf->files, conf->n_files);
	memset(conf, 0, sizeof(*conf));
}
