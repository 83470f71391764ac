/* libFuzzer: posture report bodies (untrusted, from devices) through the
 * parser, then every accepted report through a profile with one check of
 * each kind, so that the evaluation's text formatting sees odd values. */
#include "gateway/posture/posture.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *serials[] = { "A1", "PF2ABC" };
static struct xb_check checks[] = {
	{ .kind = XB_CHECK_OS_VERSION, .platforms = XB_OS_ALL, .op = XB_CMP_GE, .arg = "14.2" },
	{ .kind = XB_CHECK_AGENT_VERSION, .platforms = XB_OS_ALL, .op = XB_CMP_LT, .arg = "1.0-rc1" },
	{ .kind = XB_CHECK_DISK_ENCRYPTION, .platforms = XB_OS_ALL },
	{ .kind = XB_CHECK_FIREWALL, .platforms = 1U << XB_OS_LINUX, .report_only = true },
	{ .kind = XB_CHECK_SCREEN_LOCK, .platforms = XB_OS_ALL },
	{ .kind = XB_CHECK_SERIAL, .platforms = XB_OS_ALL, .serials = serials, .n_serials = 2 },
	{ .kind = XB_CHECK_PROCESS, .platforms = XB_OS_ALL, .arg = "sshd" },
	{ .kind = XB_CHECK_FILE, .platforms = XB_OS_ALL, .arg = "/etc/x", .has_sha256 = true },
	{ .kind = XB_CHECK_ATTRIBUTE, .platforms = XB_OS_ALL, .op = XB_CMP_GE, .arg = "s",
	  .value = { .type = XB_VAL_NUM, .num = 80 } },
	{ .kind = XB_CHECK_ATTRIBUTE, .platforms = XB_OS_ALL, .op = XB_CMP_GT, .arg = "v",
	  .value = { .type = XB_VAL_STR, .str = "7.1" } },
};
static const struct xb_profile profile = {
	.name = "fuzz", .platforms = XB_OS_ALL, .max_age = 600,
	.checks = checks, .n_checks = sizeof(checks) / sizeof(checks[0]),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xb_check_result out[sizeof(checks) / sizeof(checks[0]) + 1];
	struct xb_posture_state s = { 0 };
	struct xb_report *r;
	char err[256] = "";
	bool ok;

	r = xb_posture_report_parse((const char *)data, size, err, sizeof(err));
	if (!r != !!err[0])
		abort();	/* a failure always says why, and only then */
	if (!r)
		return 0;
	xb_posture_set_report(&s, r, (struct xb_ptime){ 1000, 1000 });
	if (xb_posture_eval(&profile, &s, (struct xb_ptime){ 1000, 1000 }, out, XB_POSTURE_OUT(&profile), &ok) !=
	    XB_POSTURE_OUT(&profile))
		abort();
	for (size_t i = 0; i < XB_POSTURE_OUT(&profile); i++)
		if (!strstr(out[i].text, ": expected "))
			abort();
	xb_posture_state_free(&s);
	return 0;
}
