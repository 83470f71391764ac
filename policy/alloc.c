/* Pool addresses for devices without a fixed one, stable across restarts.
 *
 * The state file (STATE_DIR/addresses) has one line per device address,
 * and one per address in quarantine:
 *
 *   # comment
 *   alice-laptop 198.51.100.10
 *   alice-laptop 2001:db8:100::a
 *   - 198.51.100.11 1764930000      freed; given again from this UNIX time
 *
 * Allocation, per family, in three passes so that the result does not
 * depend on the order of the devices in the policy beyond what is new:
 *   1. fixed addresses (already indexed by validation) are taken;
 *   2. with a cluster, a device takes the address the store gives it
 *      (the store is the arbiter between gateways: docs/ha.md); then a
 *      device keeps the address the state file gives it, if that address
 *      is still in the pool, a host address, not the gateway's, free and
 *      not the store's for another device;
 *   3. every other device gets the lowest free address, in policy order,
 *      that is not held: the store's for another device, given to another
 *      name by the file (a device gone from the policy, or re-addressed)
 *      or in quarantine.
 *
 * Quarantine: a flow of the device that had an address must not be
 * delivered to the next device given it. The daemon deletes the old
 * device's conntrack entries at the reload that frees the address; the
 * quarantine (gateway.address_quarantine seconds, 0 = none) covers what
 * that misses: replies in flight, peers that cached the address, and the
 * old ruleset's sets until the new one loads. Fixed addresses ignore it:
 * the operator chose them.
 *
 * The file is written only by xb_policy_save_addresses(), once the policy
 * is in force: a reload that fails keeps the previous file.
 */
#include "policy/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct entry {
	char *name;
	int family;
	uint8_t addr[16];
};

/* A freed address: no device gets it before until (UNIX time). */
struct quar {
	int family;
	uint8_t addr[16];
	int64_t until;
};

struct state {
	struct entry *v;
	size_t n;
	struct xb_map by_name[2];	/* [0] IPv4, [1] IPv6: name -> entry */
	struct quar *q;
	size_t n_q;
};

static void state_free(struct state *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->v[i].name);
	free(st->v);
	free(st->q);
	xbp_map_free(&st->by_name[0]);
	xbp_map_free(&st->by_name[1]);
}

static int addr_family(const char *s)
{
	return strchr(s, ':') ? AF_INET6 : AF_INET;
}

/* "- ADDRESS UNTIL" (strtok has taken the "-"); false when it is not one. */
static bool quar_line(struct state *st, bool *oom)
{
	char *addr = strtok(NULL, " \t"), *until = strtok(NULL, " \t"), *end;
	struct quar q = { 0 }, *nv;
	long long t;

	if (!addr || !until || strtok(NULL, " \t"))
		return false;
	q.family = addr_family(addr);
	errno = 0;
	t = strtoll(until, &end, 10);
	if (!xbp_addr_parse(q.family, addr, q.addr) || errno || *end || t < 0)
		return false;
	q.until = t;
	if (!(nv = xb_grow(st->q, st->n_q, sizeof(*nv)))) {
		*oom = true;
		return true;
	}
	st->q = nv;
	nv[st->n_q++] = q;
	return true;
}

/* One line "NAME ADDRESS"; false when it is not one. */
static bool state_line(struct state *st, char *line, bool *oom)
{
	char *name = strtok(line, " \t"), *addr;
	struct entry e = { 0 }, *nv;
	int fam;
	uint32_t old;

	if (name && !strcmp(name, "-"))
		return quar_line(st, oom);
	addr = strtok(NULL, " \t");
	if (!name || !addr || strtok(NULL, " \t") || !xbp_name_ok(name, XB_NAME_MAX, false))
		return false;
	e.family = fam = addr_family(addr);
	if (!xbp_addr_parse(fam, addr, e.addr))
		return false;
	if (!(nv = xb_grow(st->v, st->n, sizeof(*nv))) || !(e.name = strdup(name))) {
		if (nv)
			st->v = nv;
		*oom = true;
		return true;
	}
	st->v = nv;
	nv[st->n] = e;
	/* A name listed twice for a family: the first line counts. */
	if (!xbp_map_put(&st->by_name[fam == AF_INET6], nv[st->n].name, strlen(name),
			 (uint32_t)st->n, &old) && old == UINT32_MAX)
		*oom = true;
	st->n++;
	return true;
}

static int state_read(struct state *st, const char *path, struct xb_errors *errs)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	bool oom = false;
	ssize_t len;
	int bad = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		xb_errors_add(errs, path, 0, "%s", strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		if (!len || line[strspn(line, " \t")] == '#' || !line[strspn(line, " \t")])
			continue;
		if (!state_line(st, line, &oom)) {
			xb_errors_add(errs, path, (unsigned)lineno,
				      "not \"NAME ADDRESS\" or \"- ADDRESS UNTIL\"");
			bad = -1;
		}
	}
	free(line);
	fclose(f);
	if (oom)
		xb_errors_add(errs, path, 0, "out of memory");
	return oom ? -1 : bad;
}

struct fam {
	int family;
	const struct xb_prefix *pool;
	const void *gw;			/* the gateway's address */
	struct xb_map *used;		/* the index: address -> device */
	size_t alen;
	uint64_t next;			/* pass 3: next offset to try */
	struct xb_map held;		/* pass 3 skips these (file, quarantine) */
	struct xb_map store;		/* the cluster's: address -> 0 */
};

static uint8_t *dev_addr(struct xb_device *d, const struct fam *f)
{
	return f->family == AF_INET ? (uint8_t *)&d->address4 : (uint8_t *)&d->address6;
}

static bool *dev_has(struct xb_device *d, const struct fam *f)
{
	return f->family == AF_INET ? &d->has4 : &d->has6;
}

static bool dev_fixed(const struct xb_device *d, const struct fam *f)
{
	return f->family == AF_INET ? d->fixed4 : d->fixed6;
}

static bool take(struct xb_device *d, uint32_t idx, struct fam *f, const uint8_t *a)
{
	uint32_t old;

	if (!xbp_addr_in(f->pool, a) || xbp_addr_reserved(f->pool, a) || !memcmp(a, f->gw, f->alen) ||
	    xbp_map_get(f->used, a, f->alen, &old))
		return false;
	memcpy(dev_addr(d, f), a, f->alen);
	if (!xbp_map_put(f->used, dev_addr(d, f), f->alen, idx, &old))
		return false;
	*dev_has(d, f) = true;
	return true;
}

/* Pass 3: the lowest free address from f->next on. */
static bool take_next(struct xb_device *d, uint32_t idx, struct fam *f)
{
	unsigned host_bits = (unsigned)f->alen * 8 - f->pool->cidr;
	uint64_t end = host_bits >= 64 ? UINT64_MAX : (uint64_t)1 << host_bits;
	uint8_t a[16];
	uint32_t held;

	for (; f->next < end; f->next++)
		if (xbp_pool_nth(f->pool, f->next, a) && !xbp_map_get(&f->held, a, f->alen, &held) &&
		    take(d, idx, f, a))
			return true;
	return false;
}

/* What pass 3 must not give: every address the file names (a device that
 * keeps its own has taken it in pass 2 already) and every quarantine not
 * over at now. Nothing with a quarantine of 0. */
static bool hold(const struct xb_policy *p, struct fam *f, const struct state *st,
		 const struct state *sh, int64_t now)
{
	uint32_t old;

	for (size_t i = 0; i < sh->n; i++)
		if (sh->v[i].family == f->family &&
		    ((!xbp_map_put(&f->held, sh->v[i].addr, f->alen, 0, &old) && old == UINT32_MAX) ||
		     (!xbp_map_put(&f->store, sh->v[i].addr, f->alen, 0, &old) && old == UINT32_MAX)))
			return false;
	if (!p->gateway.address_quarantine)
		return true;
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].family == f->family &&
		    !xbp_map_put(&f->held, st->v[i].addr, f->alen, 0, &old) && old == UINT32_MAX)
			return false;
	for (size_t i = 0; i < st->n_q; i++)
		if (st->q[i].family == f->family && st->q[i].until > now &&
		    !xbp_map_put(&f->held, st->q[i].addr, f->alen, 0, &old) && old == UINT32_MAX)
			return false;
	return true;
}

/* Pass 2: the store's address of each device it names, then the file's
 * unless the store gives that address to another device. */
static void keep(struct xb_policy *p, struct fam *f, const struct state *st, const struct state *sh)
{
	const struct xb_map *sn = &sh->by_name[f->family == AF_INET6];
	const struct xb_map *fn = &st->by_name[f->family == AF_INET6];
	uint32_t e, any;

	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *d = &p->devices[i];

		if (!dev_fixed(d, f) && xbp_map_get(sn, d->name, strlen(d->name), &e))
			take(d, (uint32_t)i, f, sh->v[e].addr);
	}
	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *d = &p->devices[i];

		if (!dev_fixed(d, f) && !*dev_has(d, f) &&
		    xbp_map_get(fn, d->name, strlen(d->name), &e) &&
		    !xbp_map_get(&f->store, st->v[e].addr, f->alen, &any))
			take(d, (uint32_t)i, f, st->v[e].addr);
	}
}

static int allocate(struct xb_policy *p, struct fam *f, const struct state *st,
		    const struct state *sh, struct xb_errors *errs)
{
	const struct xb_device *first = NULL;
	size_t failed = 0;
	char pb[64];

	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *d = &p->devices[i];

		if (!dev_fixed(d, f) && *dev_has(d, f)) {	/* an earlier allocation */
			xbp_map_del(f->used, dev_addr(d, f), f->alen);
			*dev_has(d, f) = false;
		}
	}
	keep(p, f, st, sh);
	f->next = 1;
	for (size_t i = 0; i < p->n_devices; i++) {
		struct xb_device *d = &p->devices[i];

		if (*dev_has(d, f) || take_next(d, (uint32_t)i, f))
			continue;
		first = first ? first : d;
		failed++;
	}
	if (!failed)
		return 0;
	xbp_prefix_format(pb, sizeof(pb), f->pool);
	xb_errors_add(errs, first->src.file, first->src.line,
		      "device \"%s\": no free address left in %s %s (%zu device%s without one%s)",
		      first->name, f->family == AF_INET ? "pool4" : "pool6", pb, failed,
		      failed == 1 ? "" : "s",
		      f->held.n ? "; freed addresses are in quarantine: see address_quarantine" : "");
	return -1;
}

static void write_addr(FILE *f, const char *name, int family, const void *a)
{
	char ab[64];

	xbp_addr_format(ab, sizeof(ab), family, a);
	fprintf(f, "%s %s\n", name, ab);
}

static int write_lines(const struct xb_policy *p, const struct state *st, int fd)
{
	FILE *f = fdopen(fd, "w");

	if (!f) {
		close(fd);
		return -1;
	}
	fprintf(f, "# Device addresses assigned by xborderd from the pools of %s.\n"
		   "# Kept across restarts; a device removed from the policy frees its address,\n"
		   "# which waits in quarantine (\"- ADDRESS UNTIL\") before it is given again.\n",
		p->path);
	for (size_t i = 0; i < p->n_devices; i++) {
		const struct xb_device *d = &p->devices[i];

		if (d->has4)
			write_addr(f, d->name, AF_INET, &d->address4);
		if (d->has6)
			write_addr(f, d->name, AF_INET6, &d->address6);
	}
	for (size_t i = 0; i < st->n_q; i++) {
		char ab[64];

		xbp_addr_format(ab, sizeof(ab), st->q[i].family, st->q[i].addr);
		fprintf(f, "- %s %lld\n", ab, (long long)st->q[i].until);
	}
	if (fflush(f) || fsync(fileno(f))) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

/* Written to PATH.tmp, synced, renamed over PATH, and the directory synced:
 * after a crash the file is the old one or the new one, never a mix. */
static int state_write(const struct xb_policy *p, const struct state *st, const char *path,
		       struct xb_errors *errs)
{
	char *tmp = NULL, *dcopy = strdup(path), *dir;
	int fd = -1, ret = -1;

	if (!dcopy || asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		goto out;
	}
	dir = dirname(dcopy);
	if (mkdir(dir, 0755) && errno != EEXIST)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_lines(p, st, fd) || rename(tmp, path))
		goto out;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	ret = 0;
out:
	if (ret) {
		xb_errors_add(errs, path, 0, "cannot write the address state: %s", strerror(errno));
		if (tmp)
			unlink(tmp);
	}
	free(tmp);
	free(dcopy);
	return ret;
}

static int allocate_fam(struct xb_policy *p, struct fam *f, const struct state *st,
			const struct state *sh, struct xb_errors *errs)
{
	int e = -1;

	if (hold(p, f, st, sh, (int64_t)time(NULL)))
		e = allocate(p, f, st, sh, errs);
	else
		errs->oom = true;
	xbp_map_free(&f->held);
	xbp_map_free(&f->store);
	return e;
}

/* The store's allocations as a state (names copied). A name the store
 * gives two addresses of a family (two gateways each won one before they
 * saw the other's) takes the lower, whatever the order: every gateway
 * picks the same; the other stays held. */
static bool shared_state(struct state *sh, const struct xb_alloc_shared *v, size_t n)
{
	uint32_t old;

	if (n && !(sh->v = calloc(n, sizeof(*sh->v))))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = &sh->v[sh->n];

		if (v[i].family != AF_INET && v[i].family != AF_INET6)
			continue;
		if (!(e->name = strdup(v[i].name)))
			return false;
		e->family = v[i].family;
		memcpy(e->addr, v[i].addr, 16);
		sh->n++;
		if (xbp_map_get(&sh->by_name[e->family == AF_INET6], e->name, strlen(e->name), &old)) {
			if (memcmp(sh->v[old].addr, e->addr, 16) < 0)
				continue;
			xbp_map_del(&sh->by_name[e->family == AF_INET6], e->name, strlen(e->name));
		}
		if (!xbp_map_put(&sh->by_name[e->family == AF_INET6], e->name, strlen(e->name),
				 (uint32_t)(sh->n - 1), &old) && old == UINT32_MAX)
			return false;
	}
	return true;
}

int xb_policy_allocate(struct xb_policy *p, const char *state_path, struct xb_errors *errs)
{
	return xb_policy_allocate_shared(p, state_path, NULL, 0, errs);
}

int xb_policy_allocate_shared(struct xb_policy *p, const char *state_path,
			      const struct xb_alloc_shared *shared, size_t n,
			      struct xb_errors *errs)
{
	struct state st = { 0 }, sh = { 0 };
	struct xb_gateway *g = &p->gateway;
	struct fam f4 = { .family = AF_INET, .pool = &g->pool4, .gw = &g->address4,
			  .used = &p->index->addr4, .alen = 4 };
	struct fam f6 = { .family = AF_INET6, .pool = &g->pool6, .gw = &g->address6,
			  .used = &p->index->addr6, .alen = 16 };
	int ret = 0;

	if (!shared_state(&sh, shared, n)) {
		errs->oom = true;
		ret = -1;
	} else if (state_path && state_read(&st, state_path, errs)) {
		ret = -1;
	} else {
		if (g->has_pool4 && allocate_fam(p, &f4, &st, &sh, errs))
			ret = -1;
		if (g->has_pool6 && allocate_fam(p, &f6, &st, &sh, errs))
			ret = -1;
	}
	state_free(&st);
	state_free(&sh);
	return ret;
}

/* Whether a device of p holds addr now. */
static bool in_use(const struct xb_policy *p, int family, const uint8_t *addr)
{
	uint32_t v;

	return xbp_map_get(family == AF_INET ? &p->index->addr4 : &p->index->addr6, addr,
			   family == AF_INET ? 4 : 16, &v);
}

/* The quarantine lines to write: every address the file gave that no
 * device of p holds now, from now on; every earlier one not over, with
 * its own end (the later one when both apply). */
static void quarantine(const struct xb_policy *p, struct state *st, int64_t now)
{
	int64_t until = now + p->gateway.address_quarantine;
	size_t n = 0;

	for (size_t i = 0; i < st->n_q; i++)
		if (st->q[i].until > now && !in_use(p, st->q[i].family, st->q[i].addr))
			st->q[n++] = st->q[i];
	st->n_q = n;
	for (size_t i = 0; i < st->n; i++) {
		struct entry *e = &st->v[i];
		struct quar *nv;
		size_t j;

		if (in_use(p, e->family, e->addr))
			continue;
		for (j = 0; j < st->n_q; j++)
			if (st->q[j].family == e->family && !memcmp(st->q[j].addr, e->addr, 16))
				break;
		if (j < st->n_q) {
			st->q[j].until = st->q[j].until > until ? st->q[j].until : until;
			continue;
		}
		if (!(nv = xb_grow(st->q, st->n_q, sizeof(*nv))))
			return;		/* out of memory: this one is not held */
		st->q = nv;
		nv[st->n_q].family = e->family;
		memcpy(nv[st->n_q].addr, e->addr, 16);
		nv[st->n_q++].until = until;
	}
}

int xb_policy_save_addresses(const struct xb_policy *p, const char *state_path,
			     struct xb_errors *errs)
{
	struct state st = { 0 };
	struct xb_errors ignored = { 0 };
	int ret;

	/* The allocation read the same file; should it have become
	 * unreadable since, what it held cannot be quarantined, but the new
	 * assignments are still worth keeping. */
	if (state_read(&st, state_path, &ignored)) {
		state_free(&st);
		st = (struct state){ 0 };
	}
	xb_errors_free(&ignored);
	if (p->gateway.address_quarantine)
		quarantine(p, &st, (int64_t)time(NULL));
	else
		st.n_q = 0;
	ret = state_write(p, &st, state_path, errs);
	state_free(&st);
	return ret;
}
