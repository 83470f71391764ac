/* Posture evaluation: a profile against a device's last report and its
 * pushed attributes (docs/posture.md, "Evaluation").
 *
 * Rules, from issue #6 and the gaps of other products:
 * - A profile is the AND of its checks; a rule's profiles are an OR.
 * - Something not reported (no report, no os.version, no such attribute)
 *   is UNKNOWN, and UNKNOWN fails: silence never passes.
 * - A device whose platform the profile does not list fails, unless the
 *   profile says other_platforms = "pass". A check limited to platforms is
 *   skipped on others.
 * - A report older than the profile's max_age (by the gateway's boot
 *   clock since it was accepted, never the wall clock) fails the profile,
 *   whatever it says.
 * - A check in report mode is evaluated and its result kept, but never
 *   makes the device non-compliant.
 * - Every outcome says what was expected and what was seen.
 */
#include "gateway/posture/posture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T XB_POSTURE_TEXT_MAX

const char *xb_outcome_name(enum xb_outcome o)
{
	static const char *const n[] = { "pass", "fail", "unknown", "skip" };

	return (unsigned)o < 4 ? n[o] : "?";
}

static bool cmp_holds(enum xb_cmp op, int c)
{
	switch (op) {
	case XB_CMP_EQ: return c == 0;
	case XB_CMP_NE: return c != 0;
	case XB_CMP_LT: return c < 0;
	case XB_CMP_LE: return c <= 0;
	case XB_CMP_GT: return c > 0;
	case XB_CMP_GE: return c >= 0;
	}
	return false;
}

static void value_text(char *buf, size_t len, const struct xb_value *v)
{
	if (v->type == XB_VAL_STR)
		snprintf(buf, len, "\"%.*s\"", (int)len - 3, v->str);
	else if (v->type == XB_VAL_BOOL)
		snprintf(buf, len, "%s", v->b ? "true" : "false");
	else
		snprintf(buf, len, "%.15g", v->num);
}

static const char *type_name(enum xb_value_type t)
{
	return t == XB_VAL_STR ? "a string" : t == XB_VAL_NUM ? "a number" : "a boolean";
}

static void unknown(struct xb_check_result *r)
{
	r->outcome = XB_UNKNOWN;
	snprintf(r->seen, T, "nothing (not reported)");
}

static void set(struct xb_check_result *r, bool pass)
{
	r->outcome = pass ? XB_PASS : XB_FAIL;
}

static void eval_version(const struct xb_check *c, const char *seen, struct xb_check_result *r)
{
	snprintf(r->expected, T, "%s %s", xb_cmp_name(c->op), c->arg);
	if (!seen)
		return unknown(r);
	if (!xb_version_ok(seen)) {
		snprintf(r->seen, T, "\"%.64s\" (not a version)", seen);
		return set(r, false);
	}
	snprintf(r->seen, T, "%s", seen);
	set(r, cmp_holds(c->op, xb_version_cmp(seen, c->arg)));
}

static void eval_flag(enum xb_tri v, struct xb_check_result *r)
{
	snprintf(r->expected, T, "true");
	if (v == XB_UNSET)
		return unknown(r);
	snprintf(r->seen, T, "%s", v == XB_TRUE ? "true" : "false");
	set(r, v == XB_TRUE);
}

static int cmp_ptr(const void *key, const void *elem)
{
	return strcmp(key, *(char *const *)elem);
}

static void eval_serial(const struct xb_check *c, const struct xb_report *rep,
			struct xb_check_result *r)
{
	if (c->serial_file)
		snprintf(r->expected, T, "one of %zu serial numbers in %s", c->n_serials,
			 c->serial_file);
	else if (c->n_serials == 1)
		snprintf(r->expected, T, "%s", c->serials[0]);
	else
		snprintf(r->expected, T, "one of %zu serial numbers (%s, ...)", c->n_serials,
			 c->serials[0]);
	if (!rep->serial)
		return unknown(r);
	snprintf(r->seen, T, "%s", rep->serial);
	set(r, bsearch(rep->serial, c->serials, c->n_serials, sizeof(char *), cmp_ptr) != NULL);
}

static void eval_process(const struct xb_check *c, const struct xb_report *rep,
			 struct xb_check_result *r)
{
	bool found;

	snprintf(r->expected, T, "%s running", c->arg);
	if (!rep->has_processes)
		return unknown(r);
	found = bsearch(c->arg, rep->processes, rep->n_processes, sizeof(char *), cmp_ptr);
	snprintf(r->seen, T, found ? "running" : "not running (%zu processes reported)",
		 rep->n_processes);
	set(r, found);
}

static void hex(char *buf, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
}

static void eval_file(const struct xb_check *c, const struct xb_report *rep,
		      struct xb_check_result *r)
{
	const struct xb_report_file *f = NULL;
	char h[65];

	hex(h, c->sha256, 32);
	snprintf(r->expected, T, c->has_sha256 ? "%s with sha256 %s" : "%s present", c->arg, h);
	if (!rep->has_files)
		return unknown(r);
	for (size_t i = 0; i < rep->n_files && !f; i++)
		if (!strcmp(rep->files[i].path, c->arg))
			f = &rep->files[i];
	if (!f) {
		snprintf(r->seen, T, "absent");
		return set(r, false);
	}
	if (!c->has_sha256) {
		snprintf(r->seen, T, "present");
		return set(r, true);
	}
	if (!f->has_sha256) {
		snprintf(r->seen, T, "present, no sha256 reported");
		return set(r, false);
	}
	hex(h, f->sha256, 32);
	snprintf(r->seen, T, "sha256 %s", h);
	set(r, !memcmp(f->sha256, c->sha256, 32));
}

static const struct xb_attr *attr_find(const struct xb_attr *v, size_t n, const char *key,
				       int64_t now)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].key, key))
			return v[i].expires && v[i].expires <= now ? NULL : &v[i];
	return NULL;
}

/* A pushed (MDM) attribute wins over one the device reports itself; with
 * source = "mdm" only a pushed one counts, and its absence fails (a
 * device's word is no substitute for its MDM's, whatever it claims). */
static void eval_attr(const struct xb_check *c, const struct xb_posture_state *s, int64_t now,
		      struct xb_check_result *r)
{
	const struct xb_attr *a = attr_find(s->mdm, s->n_mdm, c->arg, now);
	char v[T / 2];
	int cmp;

	if (!a && s->report && !c->mdm_only)
		a = attr_find(s->report->attrs, s->report->n_attrs, c->arg, now);
	value_text(v, sizeof(v), &c->value);
	snprintf(r->expected, T, "%s %s %s%s", c->arg, xb_cmp_name(c->op), v,
		 c->mdm_only ? " (from an MDM push)" : "");
	if (!a && c->mdm_only) {
		snprintf(r->seen, T, "no MDM attribute");
		return set(r, false);
	}
	if (!a)
		return unknown(r);
	value_text(v, sizeof(v), &a->value);
	if (a->value.type != c->value.type) {
		snprintf(r->seen, T, "%s (%s, not %s)", v, type_name(a->value.type),
			 type_name(c->value.type));
		return set(r, false);
	}
	snprintf(r->seen, T, "%s", v);
	if (c->value.type == XB_VAL_BOOL)
		cmp = a->value.b != c->value.b;
	else if (c->value.type == XB_VAL_NUM)
		cmp = (a->value.num > c->value.num) - (a->value.num < c->value.num);
	else if (c->op == XB_CMP_EQ || c->op == XB_CMP_NE)
		cmp = strcmp(a->value.str, c->value.str);
	else
		cmp = xb_version_cmp(a->value.str, c->value.str);
	set(r, cmp_holds(c->op, cmp));
}

static void eval_check(const struct xb_check *c, const struct xb_posture_state *s,
		       struct xb_ptime now, struct xb_check_result *r)
{
	const struct xb_report *rep = s->report;

	switch (c->kind) {
	case XB_CHECK_OS_VERSION:
		return eval_version(c, rep->os_version, r);
	case XB_CHECK_AGENT_VERSION:
		return eval_version(c, rep->agent_version, r);
	case XB_CHECK_DISK_ENCRYPTION:
		return eval_flag(rep->disk_system, r);
	case XB_CHECK_FIREWALL:
		return eval_flag(rep->firewall, r);
	case XB_CHECK_SCREEN_LOCK:
		return eval_flag(rep->screen_lock, r);
	case XB_CHECK_SERIAL:
		return eval_serial(c, rep, r);
	case XB_CHECK_PROCESS:
		return eval_process(c, rep, r);
	case XB_CHECK_FILE:
		return eval_file(c, rep, r);
	case XB_CHECK_ATTRIBUTE:
		return eval_attr(c, s, now.wall, r);
	}
}

static void platforms_text(char *buf, unsigned bits)
{
	*buf = '\0';
	for (int i = 0; i < XB_OS_N; i++) {
		if (bits & (1U << i)) {
			strcat(buf, *buf ? "|" : "");
			strcat(buf, xb_platform_name(i));
		}
	}
}

/* The profile-level outcome: a report is there, of a covered platform,
 * fresh enough. Returns whether the checks are to be evaluated. */
static bool eval_profile(const struct xb_profile *pr, const struct xb_posture_state *s,
			 struct xb_ptime now, struct xb_check_result *r, const char **name)
{
	const struct xb_report *rep = s->report;
	int64_t age = rep ? now.boot - s->received : 0;

	*name = rep ? "platform" : "report";
	platforms_text(r->expected, pr->platforms);
	if (!rep) {
		unknown(r);
		snprintf(r->seen, T, "no report");
		return false;
	}
	snprintf(r->seen, T, "%s", xb_platform_name(rep->platform));
	if (!(pr->platforms & (1U << rep->platform))) {
		strcat(r->seen, pr->other_pass ? " (other_platforms = pass)" : "");
		set(r, pr->other_pass);
		return false;
	}
	if (age > (int64_t)pr->max_age) {
		*name = "report age";
		snprintf(r->expected, T, "a report at most %u s old", pr->max_age);
		snprintf(r->seen, T, "%lld s old", (long long)age);
		set(r, false);
		return true;
	}
	set(r, true);
	return true;
}

static void result_text(struct xb_check_result *r, const char *name)
{
	snprintf(r->text, sizeof(r->text), "%s: expected %s, seen %s%s", name, r->expected,
		 r->seen, r->report_only && r->outcome != XB_PASS ? " (report only)" : "");
}

size_t xb_posture_eval(const struct xb_profile *pr, const struct xb_posture_state *s,
		       struct xb_ptime now, struct xb_check_result *out, size_t max,
		       bool *compliant)
{
	struct xb_check_result self = { 0 };
	const char *name;
	bool run = eval_profile(pr, s, now, &self, &name);
	size_t n = 0;

	*compliant = self.outcome == XB_PASS;
	result_text(&self, name);
	for (size_t i = 0; i < pr->n_checks; i++) {
		const struct xb_check *c = &pr->checks[i];
		struct xb_check_result r = { .check = c, .report_only = c->report_only };

		if (!run || !(c->platforms & (1U << s->report->platform))) {
			r.outcome = XB_SKIP;
			snprintf(r.expected, T, "-");
			snprintf(r.seen, T, run ? "platform %s" : "-",
				 run ? xb_platform_name(s->report->platform) : "");
		} else {
			eval_check(c, s, now, &r);
		}
		if ((r.outcome == XB_FAIL || r.outcome == XB_UNKNOWN) && !c->report_only)
			*compliant = false;
		result_text(&r, xb_check_name(c->kind));
		if (n < max)
			out[n++] = r;
	}
	if (n < max)
		out[n++] = self;
	return n;
}

bool xb_posture_any(const struct xb_policy *p, const struct xb_rule *r,
		    const struct xb_posture_state *s, struct xb_ptime now)
{
	for (size_t i = 0; i < r->n_posture; i++) {
		bool ok;

		xb_posture_eval(&p->profiles[r->posture[i].idx], s, now, NULL, 0, &ok);
		if (ok)
			return true;
	}
	return !r->n_posture;
}

void xb_posture_set_report(struct xb_posture_state *s, struct xb_report *r, struct xb_ptime now)
{
	xb_posture_report_free(s->report);
	s->report = r;
	s->received = now.boot;
	s->received_wall = now.wall;
}

int64_t xb_posture_stored_age(int64_t stored_wall, int64_t now_wall)
{
	int64_t age = now_wall - stored_wall;

	return age < 0 ? 0 : age > XB_POSTURE_AGE_MAX ? XB_POSTURE_AGE_MAX : age;
}

static void attr_clear(struct xb_attr *a)
{
	free(a->key);
	free(a->value.str);
}

static void attrs_free(struct xb_attr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		attr_clear(&v[i]);
	free(v);
}

void xb_posture_state_free(struct xb_posture_state *s)
{
	xb_posture_report_free(s->report);
	attrs_free(s->mdm, s->n_mdm);
	memset(s, 0, sizeof(*s));
}

void xb_posture_mdm_push_free(struct xb_mdm_push *m)
{
	attrs_free(m->attrs, m->n_attrs);
	m->attrs = NULL;
	m->n_attrs = 0;
}

/* Drops expired attributes, then moves each pushed one in, replacing the
 * one of the same key. The push is emptied. */
int xb_posture_push(struct xb_posture_state *s, struct xb_mdm_push *m, int64_t now)
{
	size_t k = 0;
	struct xb_attr *v;

	for (size_t i = 0; i < s->n_mdm; i++) {
		if (s->mdm[i].expires > now)
			s->mdm[k++] = s->mdm[i];
		else
			attr_clear(&s->mdm[i]);
	}
	s->n_mdm = k;
	for (size_t i = 0; i < m->n_attrs; i++) {
		struct xb_attr *a = &m->attrs[i];
		size_t j;

		for (j = 0; j < s->n_mdm && strcmp(s->mdm[j].key, a->key); j++)
			;
		if (j == s->n_mdm) {
			if (!(v = realloc(s->mdm, (s->n_mdm + 1) * sizeof(*v))))
				return -1;
			s->mdm = v;
			s->n_mdm++;
		} else {
			attr_clear(&s->mdm[j]);
		}
		s->mdm[j] = *a;
		*a = (struct xb_attr){ 0 };
	}
	xb_posture_mdm_push_free(m);
	return 0;
}
