/* The posture collectors that read files: OS, serial, processes, file
 * hashes, attributes, and the screen-lock command; see posture.h. */
#include "agent/posture.h"
#include "common/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* /proc holds one directory per task; more than this is not a workstation. */
#define MAX_PROC_ENTRIES 1000000
#define SCREEN_LOCK_TIMEOUT_MS 5000

/* Read a small file below env->root into buf, without the trailing newline. */
static int slurp(const struct xba_env *env, const char *rel, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s%s", env->root, rel);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return 0;
}

/* An os-release value: "quoted" or 'quoted' with backslash escapes, or bare
 * (os-release(5) follows shell quoting). Unquotes in place. */
static char *unquote(char *v)
{
	char q = *v, *r, *w;

	if (q != '"' && q != '\'')
		return v;
	for (r = w = v + 1; *r && *r != q; r++) {
		if (*r == '\\' && q == '"' && r[1])
			r++;
		*w++ = *r;
	}
	*w = '\0';
	return v + 1;
}

static int os_release(const struct xba_env *env, json_t *os)
{
	static const char *const where[] = { "/etc/os-release", "/usr/lib/os-release" };
	char path[PATH_MAX], line[512];
	FILE *f = NULL;

	for (size_t i = 0; i < 2 && !f; i++) {
		snprintf(path, sizeof(path), "%s%s", env->root, where[i]);
		f = fopen(path, "re");
	}
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *v;

		line[strcspn(line, "\n")] = '\0';
		if (!eq || line[0] == '#')
			continue;
		*eq = '\0';
		v = unquote(eq + 1);
		if (!strcmp(line, "VERSION_ID") && *v)
			json_object_set_new(os, "version", json_string(v));
		else if (!strcmp(line, "PRETTY_NAME") && *v)
			json_object_set_new(os, "name", json_string(v));
	}
	fclose(f);
	return 0;
}

int xba_collect_os(const struct xba_env *env, json_t *report)
{
	json_t *os = json_object();
	char rel[256];

	if (!os)
		return -1;
	/* Every Linux is family "linux"; os-release says which one. */
	json_object_set_new(os, "family", json_string("linux"));
	os_release(env, os);
	if (!slurp(env, "/proc/sys/kernel/osrelease", rel, sizeof(rel)) && *rel)
		json_object_set_new(os, "kernel", json_string(rel));
	return json_object_set_new(report, "os", os);
}

/* Vendors fill the field with these when they have no serial. */
static bool placeholder(const char *s)
{
	static const char *const none[] = {
		"", "0", "None", "Not Specified", "Not Applicable", "Default string",
		"System Serial Number", "To Be Filled By O.E.M.", "To be filled by O.E.M.",
	};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		if (!strcmp(s, none[i]))
			return true;
	return false;
}

int xba_collect_serial(const struct xba_env *env, json_t *report)
{
	char s[128];

	/* Readable by root only; absent otherwise. */
	if (slurp(env, "/sys/class/dmi/id/product_serial", s, sizeof(s)) || placeholder(s))
		return 0;
	for (char *p = s; *p; p++)
		if (!isprint((unsigned char)*p))
			return 0;
	return json_object_set_new(report, "serial", json_string(s));
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Mark in running[] each watched name that comm matches. The kernel cuts
 * comm to 15 characters, so a longer watched name matches its first 15. */
static void match_comm(const struct xba_conf *c, const char *comm, bool *running)
{
	for (size_t i = 0; i < c->n_processes; i++)
		if (!strncmp(c->processes[i], comm, XBA_COMM_MAX) &&
		    strlen(comm) == (strlen(c->processes[i]) < XBA_COMM_MAX ?
				     strlen(c->processes[i]) : XBA_COMM_MAX))
			running[i] = true;
}

/* Only the configured watch list is reported, never the process table: the
 * gateway needs to know whether the EDR runs, not what else the user runs. */
int xba_collect_processes(const struct xba_env *env, json_t *report)
{
	const struct xba_conf *c = env->conf;
	char path[PATH_MAX], comm[64];
	bool *running;
	json_t *list;
	struct dirent *de;
	DIR *d;
	size_t seen = 0;

	if (!c->n_processes)
		return 0;
	snprintf(path, sizeof(path), "%s/proc", env->root);
	if (!(d = opendir(path)))
		return 0;
	if (!(running = calloc(c->n_processes, sizeof(*running))) || !(list = json_array())) {
		free(running);
		closedir(d);
		return -1;
	}
	while ((de = readdir(d)) && seen++ < MAX_PROC_ENTRIES) {
		if (!all_digits(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if (!slurp(env, path, comm, sizeof(comm)))
			match_comm(c, comm, running);
	}
	closedir(d);
	for (size_t i = 0; i < c->n_processes; i++)
		if (running[i])
			json_array_append_new(list, json_string(c->processes[i]));
	free(running);
	return json_object_set_new(report, "processes", list);
}

int xba_sha256_file(const char *path, char hex[static 65])
{
	crypto_hash_sha256_state st;
	unsigned char buf[65536], md[crypto_hash_sha256_BYTES];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	crypto_hash_sha256_init(&st);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
	close(fd);
	if (n < 0)
		return -1;
	crypto_hash_sha256_final(&st, md);
	sodium_bin2hex(hex, 65, md, sizeof(md));
	return 0;
}

/* A watched file that is missing or unreadable is left out of the list: the
 * gateway's "file present" check then fails, as it should. */
int xba_collect_files(const struct xba_env *env, json_t *report)
{
	const struct xba_conf *c = env->conf;
	char path[PATH_MAX], hex[65];
	json_t *list;

	if (!c->n_files)
		return 0;
	if (!(list = json_array()))
		return -1;
	for (size_t i = 0; i < c->n_files; i++) {
		snprintf(path, sizeof(path), "%s%s", env->root, c->files[i]);
		if (xba_sha256_file(path, hex)) {
			log_debug("file %s: %s", c->files[i], strerror(errno));
			continue;
		}
		json_array_append_new(list, json_pack("{s:s,s:s}", "path", c->files[i],
						      "sha256", hex));
	}
	return json_object_set_new(report, "files", list);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && !strchr("._-", *k))
			return false;
	return true;
}

/* A value: true/false, a decimal integer, "quoted" text, or bare text. */
static json_t *attr_value(char *v)
{
	size_t n = strlen(v);
	char *end;
	long long i;

	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return json_boolean(*v == 't');
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v[n - 1] = '\0';
		return json_string(v + 1);
	}
	errno = 0;
	i = strtoll(v, &end, 10);
	if (*v && !*end && !errno)
		return json_integer(i);
	return json_string(v);
}

int xba_attributes_read(const char *path, json_t *obj)
{
	char line[1024];
	FILE *f;
	int lineno = 0;

	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *eq, *v;
		json_t *val;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		k = trim(k);
		if (!*k || *k == '#')
			continue;
		if (!(eq = strchr(k, '='))) {
			log_warnx("%s:%d: `%s' is not key = value", path, lineno, k);
			continue;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if (!valid_key(k)) {
			log_warnx("%s:%d: key `%s' is not letters, digits, . _ -", path, lineno, k);
			continue;
		}
		if (!(val = attr_value(v)) || json_object_set_new(obj, k, val)) {
			log_warnx("%s:%d: value of `%s' is not UTF-8", path, lineno, k);
			continue;
		}
	}
	fclose(f);
	return 0;
}

int xba_collect_attributes(const struct xba_env *env, json_t *report)
{
	const char *file = env->conf->attributes_file;
	json_t *obj;

	if (!file)
		return 0;
	if (!(obj = json_object()))
		return -1;
	if (xba_attributes_read(file, obj)) {
		log_debug("attributes %s: %s", file, strerror(errno));
		json_decref(obj);
		return 0;
	}
	return json_object_set_new(report, "attributes", obj);
}

/* Wait for pid up to ms; kill it when it takes longer. The exit status, or
 * -1 when it did not exit normally in time. */
static int wait_bounded(pid_t pid, int ms)
{
	int st;

	for (int waited = 0;; waited += 50) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited >= ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			log_warnx("screen_lock_command took longer than %d ms; killed", ms);
			return -1;
		}
		poll(NULL, 0, 50);
	}
}

/* Linux has no one answer to "does the screen lock": the configured command
 * knows the desktop in use. Exit 0 means it locks, 1 that it does not;
 * anything else (or no command) leaves the fact out. */
int xba_collect_screen_lock(const struct xba_env *env, json_t *report)
{
	const char *cmd = env->conf->screen_lock_cmd;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	if (!cmd)
		return 0;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		log_warnx("screen_lock_command: %s", strerror(rc));
		return 0;
	}
	rc = wait_bounded(pid, SCREEN_LOCK_TIMEOUT_MS);
	if (rc == 0 || rc == 1)
		return json_object_set_new(report, "screen_lock", json_boolean(rc == 0));
	return 0;
}

json_t *xba_collect(const struct xba_env *env)
{
	int (*const fn[])(const struct xba_env *, json_t *) = {
		xba_collect_os, xba_collect_disk, xba_collect_firewall,
		xba_collect_screen_lock, xba_collect_serial, xba_collect_processes,
		xba_collect_files, xba_collect_attributes,
	};
	json_t *r = json_object();

	if (!r || json_object_set_new(r, "agent", json_pack("{s:s}", "version", XBA_VERSION)))
		goto oom;
	for (size_t i = 0; i < sizeof(fn) / sizeof(fn[0]); i++)
		if (fn[i](env, r))
			goto oom;
	return r;
oom:
	json_decref(r);
	return NULL;
}
