/* Enrolment and expiry in xborderd: see enrol.h for the rules. */
#include "gateway/enrol.h"
#include "common/log.h"
#include "gateway/kernel/conntrack.h"
#include "gateway/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENROL_FILE_MAX (64u << 20)	/* bytes of an enrolment file we keep to put back */

/* ---- expiry ---- */

void xb_enrol_judge(struct xb_policy *p, int64_t now)
{
	for (size_t i = 0; i < p->n_devices; i++)
		p->devices[i].expired = xb_device_expired(&p->devices[i], now);
}

/* Deletes the conntrack entries of the n devices v points at. */
static void cut(const struct xb_device *const *v, size_t n, const char *why)
{
	struct in6_addr *a = calloc(n + 1, sizeof(*a));
	long *res = calloc(n + 1, sizeof(*res)), total = 0, r;
	struct xb_conntrack ct;
	int e = -ENOMEM;

	if (!a || !res || (e = xb_conntrack_open(&ct)) < 0) {
		log_warnx("%s: conntrack: %s: flows of %zu devices are not cut", why, strerror(-e), n);
		free(a);
		free(res);
		return;
	}
	for (int f = 0; f < 2; f++) {
		size_t k = 0, alen = f ? 16 : 4;

		for (size_t i = 0; i < n; i++)
			if (f ? v[i]->has6 : v[i]->has4)
				memcpy((uint8_t *)a + k++ * alen,
				       f ? (const void *)&v[i]->address6 : (const void *)&v[i]->address4, alen);
		if (k && (r = xb_conntrack_cut_many(&ct, f ? AF_INET6 : AF_INET, a, k, res)) < 0)
			log_warnx("%s: cutting flows of %zu devices: %s", why, k, strerror((int)-r));
		else if (k)
			total += r;
	}
	log_info("%s: %ld flows of %zu expired devices cut", why, total, n);
	xb_conntrack_close(&ct);
	free(a);
	free(res);
}

void xb_enrol_tick(struct xb_daemon *d)
{
	struct xb_policy *p = d->policy;
	const struct xb_device **v = NULL;
	struct wg_conf c = { 0 };
	int64_t now = time(NULL);
	size_t n = 0;
	char tb[21];
	int e;

	for (size_t i = 0; i < p->n_devices; i++)
		n += !p->devices[i].expired && xb_device_expired(&p->devices[i], now);
	if (!n || !(v = calloc(n, sizeof(*v))))
		return;
	n = 0;
	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *dv = &p->devices[i];
		struct wg_peer_conf *pc;

		if (dv->expired || !xb_device_expired(dv, now) || !(pc = wg_conf_add_peer(&c)))
			continue;
		memcpy(pc->public_key, dv->public_key, WG_KEY_LEN);
		pc->remove = true;
		dv->expired = true;
		v[n++] = dv;
		xb_time_format(tb, dv->expires);
		log_info("device \"%s\" expired at %s: its peer is removed, its flows cut", dv->name, tb);
	}
	/* A failed removal is tried again at the next tick: the flag says
	 * what the interface holds. The flows are cut either way. */
	if (n && (e = xb_wgif_set(&d->devif, &c))) {
		log_warnx("%s: removing %zu expired devices' peers: %s; trying again", d->devif.ifname,
			  n, strerror(e));
		for (size_t i = 0; i < n; i++)
			((struct xb_device *)v[i])->expired = false;
	}
	wg_conf_free(&c);
	if (n)
		cut(v, n, "expiry");
	free(v);
}

void xb_enrol_cut_expired(const struct xb_policy *old, const struct xb_policy *p)
{
	const struct xb_device **v = calloc(p->n_devices + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; v && i < p->n_devices; i++) {
		const struct xb_device *was = xb_policy_device_by_key(old, p->devices[i].public_key);

		if (p->devices[i].expired && was && !was->expired)
			v[n++] = &p->devices[i];
	}
	if (n)
		cut(v, n, "reload");
	free(v);
}

/* ---- the enrolment file ---- */

static void put_device(FILE *f, const struct xb_enrol_dev *dv)
{
	char kb[WG_KEY_B64_LEN + 1], ab[INET6_ADDRSTRLEN], tb[21];

	wg_key_to_base64(kb, dv->public_key);
	fprintf(f, "  { name = \"%s\"; public_key = \"%s\";", dv->name, kb);
	for (size_t i = 0; i < dv->n_groups; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : " groups = [ ", dv->groups[i]);
	if (dv->n_groups)
		fputs(" ];", f);
	if (dv->fixed4)
		fprintf(f, " address4 = \"%s\";", inet_ntop(AF_INET, &dv->address4, ab, sizeof(ab)));
	if (dv->fixed6)
		fprintf(f, " address6 = \"%s\";", inet_ntop(AF_INET6, &dv->address6, ab, sizeof(ab)));
	if (dv->expires) {
		xb_time_format(tb, dv->expires);
		fprintf(f, " expires = \"%s\";", tb);
	}
	fputs(" }", f);
}

char *xb_enrol_text(const struct xb_policy *p, const char *skip, const struct xb_enrol_dev *add)
{
	char *buf = NULL;
	size_t len = 0, n = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fputs("# Written by xborderd: devices enrolled with `xborderctl device add'.\n"
	      "# The daemon rewrites this file whole; keep your own devices elsewhere.\n"
	      "devices = (\n", f);
	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *d = &p->devices[i];
		const char **g = calloc(d->n_groups + 1, sizeof(*g));
		struct xb_enrol_dev e = { d->name, { 0 }, g, 0, d->expires, d->fixed4, d->fixed6,
					  d->address4, d->address6 };

		if (!g) {
			fclose(f);
			free(buf);
			return NULL;
		}
		if (p->gateway.enrol_src && d->src.file == p->gateway.enrol_src &&
		    !(skip && !strcmp(skip, d->name))) {
			memcpy(e.public_key, d->public_key, WG_KEY_LEN);
			for (size_t k = 0; k < d->n_groups; k++)
				g[e.n_groups++] = d->groups[k].name;
			fputs(n++ ? ",\n" : "", f);
			put_device(f, &e);
		}
		free(g);
	}
	if (add) {
		fputs(n++ ? ",\n" : "", f);
		put_device(f, add);
	}
	fputs(n ? "\n);\n" : ");\n", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

int xb_enrol_write(const char *path, const char *text)
{
	char *tmp = NULL, *copy = strdup(path);
	size_t n = strlen(text);
	int fd = -1, dfd, e = 0;

	if (!copy || asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		free(copy);
		errno = ENOMEM;
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0)
		e = errno;
	for (size_t off = 0; !e && off < n;) {
		ssize_t w = write(fd, text + off, n - off);

		if (w < 0 && errno != EINTR)
			e = errno;
		off += w > 0 ? (size_t)w : 0;
	}
	if (!e && fsync(fd) < 0)
		e = errno;
	if (fd >= 0 && close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e && fd >= 0)
		unlink(tmp);
	/* The rename is durable once the directory is. */
	if (!e && (dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(tmp);
	free(copy);
	errno = e;
	return e ? -1 : 0;
}

/* The file's content (NUL-terminated), or NULL: *absent when it does not
 * exist, else errno. */
static char *slurp(const char *path, bool *absent)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n;
	long sz;

	*absent = !f && errno == ENOENT;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && (size_t)sz <= ENROL_FILE_MAX &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)sz + 1))) {
		n = fread(buf, 1, (size_t)sz, f);
		buf[n] = '\0';
		if (n != (size_t)sz) {
			free(buf);
			buf = NULL;
			errno = EIO;
		}
	} else {
		errno = EFBIG;
	}
	fclose(f);
	return buf;
}

/* ---- the control commands ---- */

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > XB_NAME_MAX || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
				       (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int fail(char **error, const char *fmt, const char *a, const char *b)
{
	if (asprintf(error, fmt, a, b) < 0)
		*error = NULL;
	return -1;
}

static json_t *jaddr(int family, const void *a)
{
	char buf[INET6_ADDRSTRLEN];

	return inet_ntop(family, a, buf, sizeof(buf)) ? json_string(buf) : json_null();
}

static json_t *jkey(const uint8_t key[static WG_KEY_LEN])
{
	char b64[WG_KEY_B64_LEN + 1];

	wg_key_to_base64(b64, key);
	return json_string(b64);
}

static json_t *jprefix(const struct xb_prefix *pf)
{
	char buf[INET6_ADDRSTRLEN];

	if (!inet_ntop(pf->family, pf->addr, buf, sizeof(buf)))
		return json_null();
	return json_sprintf("%s/%u", buf, pf->cidr);
}

/* `device NAME': the device and what its wg-quick file needs of the gateway. */
static json_t *show_json(const struct xb_policy *p, const struct xb_device *dv)
{
	const struct xb_gateway *g = &p->gateway;
	json_t *groups = json_array(), *dns = json_array();
	char tb[21];

	for (size_t i = 0; groups && i < dv->n_groups; i++)
		json_array_append_new(groups, json_string(dv->groups[i].name));
	if (dns && g->has_pool4)
		json_array_append_new(dns, jaddr(AF_INET, &g->address4));
	if (dns && g->has_pool6)
		json_array_append_new(dns, jaddr(AF_INET6, &g->address6));
	if (dv->expires)
		xb_time_format(tb, dv->expires);
	return json_pack("{s:{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o}, "
			 "s:{s:o, s:i, s:o, s:o, s:o, s:o}}",
		"device", "name", dv->name, "public_key", jkey(dv->public_key),
		"groups", groups ? groups : json_array(),
		"address4", dv->has4 ? jaddr(AF_INET, &dv->address4) : json_null(),
		"address6", dv->has6 ? jaddr(AF_INET6, &dv->address6) : json_null(),
		"expires", dv->expires ? json_string(tb) : json_null(),
		"expired", dv->expired,
		"enrolled", g->enrol_src && dv->src.file == g->enrol_src,
		"source", json_sprintf("%s:%u", dv->src.file, dv->src.line),
		"gateway", "public_key", jkey(g->key.public_key), "listen_port", (int)g->listen_port,
		"endpoint", g->enrol_endpoint ? json_string(g->enrol_endpoint) : json_null(),
		"dns", dns ? dns : json_array(),
		"pool4", g->has_pool4 ? jprefix(&g->pool4) : json_null(),
		"pool6", g->has_pool6 ? jprefix(&g->pool6) : json_null());
}

static json_t *errors_json(struct xb_errors *errs)
{
	json_t *a = json_array();

	xb_errors_sort(errs);
	for (size_t i = 0; a && i < errs->n; i++)
		json_array_append_new(a, errs->v[i].line
			? json_sprintf("%s:%u: %s", errs->v[i].file, errs->v[i].line, errs->v[i].msg)
			: json_sprintf("%s: %s", errs->v[i].file, errs->v[i].msg));
	return a;
}

/* Writes text as the enrolment file and reloads; a failed reload puts the
 * file back as it was. name: the device to show after (NULL: none). */
static int apply_file(struct xb_daemon *d, const char *text, const char *name, json_t **result,
		      char **error, json_t **errors)
{
	char *path = strdup(d->policy->gateway.enrol_file_resolved), *old, summary[256];
	struct xb_errors errs = { 0 };
	const struct xb_device *dv;
	bool absent;
	int e;

	if (!path)
		return fail(error, "out of memory%s%s", "", "");
	if (!(old = slurp(path, &absent)) && !absent) {
		e = fail(error, "%s: %s (not changed)", path, strerror(errno));
		free(path);
		return e;
	}
	if (xb_enrol_write(path, text) < 0) {
		e = fail(error, "writing %s: %s", path, strerror(errno));
		free(old);
		free(path);
		return e;
	}
	if (xb_daemon_reload(d, &errs, summary, sizeof(summary)) < 0) {
		bool put = absent ? unlink(path) == 0 || errno == ENOENT : xb_enrol_write(path, old) == 0;

		if (!put)
			log_warn("%s: putting the old enrolment file back", path);
		*errors = errors_json(&errs);
		e = fail(error, put ? "the policy does not load with the change; %s is as it was%s"
				    : "the policy does not load with the change, and %s could not be put "
				      "back: %s", path, put ? "" : strerror(errno));
		xb_errors_free(&errs);
		free(old);
		free(path);
		return e;
	}
	xb_errors_free(&errs);
	free(old);
	free(path);
	dv = name ? xb_policy_device_by_name(d->policy, name) : NULL;
	*result = dv ? show_json(d->policy, dv) : json_object();
	if (*result)
		json_object_set_new(*result, "reload", json_string(summary));
	return *result ? 0 : fail(error, "out of memory%s%s", "", "");
}

static const char *arg(json_t *args, size_t i)
{
	const char *s = json_string_value(json_array_get(args, i));

	return s ? s : "";
}

/* args: NAME PUBLIC_KEY GROUPS EXPIRES — groups comma-separated, expires
 * RFC 3339 or empty. */
int xb_enrol_cmd_add(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const struct xb_policy *p = d->policy;
	const char *name = arg(args, 0), *key = arg(args, 1), *exp = arg(args, 3), *g[64];
	char *groups = strdup(arg(args, 2)), *save = NULL, *text;
	struct xb_enrol_dev dv = { .name = name, .groups = g };
	const struct xb_device *other;
	int e;

	if (!groups)
		return fail(error, "out of memory%s%s", "", "");
	if (json_array_size(args) != 4)
		e = fail(error, "usage: device-add NAME PUBLIC_KEY GROUP[,GROUP...] EXPIRES%s%s", "", "");
	else if (!p->gateway.enrol_file)
		e = fail(error, "%s names no enrolment file: add `enrol_file = \"enrolled.conf\";' to "
			 "its gateway { } (docs/enrolment.md)%s", d->policy_path, "");
	else if (!name_ok(name))
		e = fail(error, "`%s' is not a device name (1-63 letters, digits, '.', '_' and '-', "
			 "starting with a letter or digit)%s", name, "");
	else if ((other = xb_policy_device_by_name(p, name)))
		e = fail(error, "device \"%s\" exists (%s)", name, other->src.file);
	else if (!wg_key_from_base64(dv.public_key, key))
		e = fail(error, "public key `%s' is not a base64 WireGuard key%s", key, "");
	else if ((other = xb_policy_device_by_key(p, dv.public_key)))
		e = fail(error, "that public key is device \"%s\"'s%s", other->name, "");
	else if (*exp && !xb_time_parse(exp, &dv.expires))
		e = fail(error, "expires `%s' is not a time like \"2027-01-31T00:00:00Z\"%s", exp, "");
	else
		e = 0;
	for (char *t = e ? NULL : strtok_r(groups, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!name_ok(t) || dv.n_groups == 64) {
			e = fail(error, "`%s' is not a group name%s", t, "");
			break;
		}
		g[dv.n_groups++] = t;
	}
	if (!e && !(text = xb_enrol_text(p, NULL, &dv)))
		e = fail(error, "out of memory%s%s", "", "");
	else if (!e) {
		log_info("control: enrolling device \"%s\"", name);
		e = apply_file(d, text, name, result, error, errors);
		free(text);
	}
	free(groups);
	return e;
}

int xb_enrol_cmd_remove(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const struct xb_policy *p = d->policy;
	const char *name = arg(args, 0);
	const struct xb_device *dv = xb_policy_device_by_name(p, name);
	char *text;
	int e;

	if (json_array_size(args) != 1)
		return fail(error, "usage: device-remove NAME%s%s", "", "");
	if (!dv)
		return fail(error, "no device \"%s\" in the policy%s", name, "");
	if (!p->gateway.enrol_src || dv->src.file != p->gateway.enrol_src)
		return fail(error, "device \"%s\" is not an enrolled one: it is written in %s; remove "
			    "it there", name, dv->src.file);
	if (!(text = xb_enrol_text(p, name, NULL)))
		return fail(error, "out of memory%s%s", "", "");
	log_info("control: removing device \"%s\"", name);
	e = apply_file(d, text, NULL, result, error, errors);
	free(text);
	if (!e)
		json_object_set_new(*result, "removed", json_string(name));
	return e;
}

int xb_enrol_cmd_show(void *ctx, json_t *args, json_t **result, char **error, json_t **errors)
{
	struct xb_daemon *d = ctx;
	const char *name = arg(args, 0);
	const struct xb_device *dv = xb_policy_device_by_name(d->policy, name);

	(void)errors;
	if (json_array_size(args) != 1)
		return fail(error, "usage: device NAME%s%s", "", "");
	if (!dv)
		return fail(error, "no device \"%s\" in the policy%s", name, "");
	*result = show_json(d->policy, dv);
	return *result ? 0 : fail(error, "out of memory%s%s", "", "");
}
