/* Device posture: version order, the report parser (good, bad, limits),
 * each check kind passing, failing and unknown with its expected/seen
 * text, profile AND, rule OR, platform scoping, report-only checks, report
 * age, and MDM pushes (valid, bad signature, unknown key, old time,
 * replayed nonce, expired attribute).
 */
#include "tests/lib/check.h"
#include "gateway/posture/posture.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1763800000LL
/* Now on both clocks; the boot clock set equal to the wall clock unless a
 * case steps one of them. */
#define AT(t) ((struct xb_ptime){ .wall = (t), .boot = (t) })
#define GWKEY "ERERERERERERERERERERERERERERERERERERERERERE="
#define DEVKEY "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="
#define SHA_A "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_B "0000000000000000000000000000000000000000000000000000000000000001"

static char dir[64];
static uint8_t mdm_pk[32], mdm_sk[64];

static void put_file(const char *name, const char *text, mode_t mode)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

/* A policy with one device "laptop", an MDM key "intune" and these
 * profiles; the directory is removed at once (everything is in memory). */
static struct xb_policy *policy(const char *profiles)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char text[8192], pk[64], path[128];
	uint8_t seed[32];

	memset(seed, 7, sizeof(seed));
	CHECK(sodium_init() >= 0);
	crypto_sign_seed_keypair(mdm_pk, mdm_sk, seed);
	sodium_bin2base64(pk, sizeof(pk), mdm_pk, 32, sodium_base64_VARIANT_ORIGINAL);
	strcpy(dir, "/tmp/xb-test-posture.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	put_file("gw.key", GWKEY "\n", 0600);
	put_file("serials.txt", "# fleet\nPF2ABC\nC02DEF\n", 0644);
	snprintf(text, sizeof(text),
		 "gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
		 "devices = ( { name = \"laptop\"; public_key = \"" DEVKEY "\"; } );\n"
		 "profiles = ( %s );\n"
		 "mdm_keys = ( { name = \"intune\"; public_key = \"%s\"; } );\n"
		 "rules = ( { name = \"r\"; posture = [ \"a\", \"b\" ]; action = \"allow\"; via = [ \"internet\" ]; } );\n",
		 profiles, pk);
	put_file("xb.conf", text, 0644);
	snprintf(path, sizeof(path), "%s/xb.conf", dir);
	p = xb_policy_load(path, &errs);
	if (!p)
		xb_errors_print(&errs, stdout);
	xb_errors_free(&errs);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	CHECK(system(text) == 0);
	CHECK(p != NULL);
	return p;
}

static const char *good_report =
	"{ \"seq\": 17, \"nonce\": \"A1b2\", \"time\": 1763800000, \"extra\": [ 1 ],"
	"  \"os\": { \"family\": \"macos\", \"version\": \"13.6\", \"name\": \"macOS\" },"
	"  \"agent\": { \"version\": \"0.1.0\" },"
	"  \"disk_encryption\": { \"system\": true, \"volumes\": [ { \"mount\": \"/home\", \"encrypted\": false } ] },"
	"  \"firewall\": false, \"serial\": \"PF2ABC\","
	"  \"processes\": [ \"sshd\", \"falcon-sensor\" ],"
	"  \"files\": [ { \"path\": \"/etc/xb/marker\", \"sha256\": \"" SHA_A "\" }, { \"path\": \"/etc/x\" } ],"
	"  \"attributes\": { \"edr.score\": 75, \"tier\": \"gold\", \"managed\": true } }";

static struct xb_report *parse(const char *body)
{
	char err[256] = "";
	struct xb_report *r = xb_posture_report_parse(body, strlen(body), err, sizeof(err));

	if (!r)
		printf("# %s\n", err);
	CHECK(r != NULL);
	return r;
}

TEST(version_order)
{
	static const struct { const char *a, *b; int c; } t[] = {
		{ "14.2", "14.10", -1 }, { "14.10", "14.2", 1 }, { "14", "14.0", 0 },
		{ "14.0.0", "14", 0 }, { "v1.2", "1.2", 0 }, { "V2", "1.99", 1 },
		{ "1.0-rc1", "1.0", -1 }, { "1.0", "1.0-rc1", 1 }, { "1.0-rc2", "1.0-rc10", -1 },
		{ "1.0-beta", "1.0-rc1", -1 }, { "1.0.1", "1.0-rc1", 1 }, { "1.0b2", "1.0", -1 },
		{ "10.0.22631", "10.0.19045", 1 }, { "007", "7", 0 },
		{ "99999999999999999999.1", "99999999999999999998.9", 1 }, { "0.1.0", "0.1", 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (xb_version_cmp(t[i].a, t[i].b) != t[i].c)
			printf("# %s vs %s\n", t[i].a, t[i].b);
		CHECK_INT(xb_version_cmp(t[i].a, t[i].b), ==, t[i].c);
		CHECK_INT(xb_version_cmp(t[i].b, t[i].a), ==, -t[i].c);
	}
	CHECK(xb_version_ok("0.1.0-rc.1+build5"));
	CHECK(!xb_version_ok(""));
	CHECK(!xb_version_ok("v"));
	CHECK(!xb_version_ok("14..2"));
	CHECK(!xb_version_ok("1.0-"));
	CHECK(!xb_version_ok(".1"));
	CHECK(!xb_version_ok("1 .0"));
	CHECK(!xb_version_ok("latest"));
	CHECK_INT(xb_version_cmp("garbage", "1"), ==, -1);
}

TEST(report_good)
{
	struct xb_report *r = parse(good_report);

	CHECK_INT(r->seq, ==, 17);
	CHECK_STR(r->nonce, "a1b2");
	CHECK_INT(r->time, ==, NOW);
	CHECK_INT(r->platform, ==, XB_OS_MACOS);
	CHECK_STR(r->os_version, "13.6");
	CHECK(r->os_kernel == NULL);
	CHECK_STR(r->agent_version, "0.1.0");
	CHECK_INT(r->disk_system, ==, XB_TRUE);
	CHECK_INT(r->n_volumes, ==, 1);
	CHECK(!r->volumes[0].encrypted);
	CHECK_INT(r->firewall, ==, XB_FALSE);
	CHECK_INT(r->screen_lock, ==, XB_UNSET);
	CHECK_STR(r->processes[0], "falcon-sensor");	/* sorted */
	CHECK_INT(r->n_files, ==, 2);
	CHECK(r->files[0].has_sha256 && !r->files[1].has_sha256);
	CHECK_INT(r->n_attrs, ==, 3);
	xb_posture_report_free(r);
}

static void bad(const char *body, size_t len, const char *want)
{
	char err[256] = "";
	struct xb_report *r = xb_posture_report_parse(body, len, err, sizeof(err));

	if (r || !strstr(err, want))
		printf("# body %.60s: error \"%s\", wanted \"%s\"\n", body, err, want);
	CHECK(r == NULL);
	CHECK(strstr(err, want) != NULL);
}

#define HEAD "\"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"os\": { \"family\": \"linux\" }"

TEST(report_bad)
{
	static const struct { const char *body, *err; } t[] = {
		{ "[]", "body: expected an object, not an array" },
		{ "{", "body: not JSON" },
		{ "{ \"nonce\": \"ab\", \"time\": 5 }", "seq: missing" },
		{ "{ \"seq\": -1 }", "seq: must be at least 0" },
		{ "{ \"seq\": \"1\" }", "seq: expected an integer, not a string" },
		{ "{ \"seq\": 1, \"nonce\": \"xyz1\", \"time\": 5 }", "nonce: expected hex digits" },
		{ "{ \"seq\": 1, \"nonce\": \"abc\", \"time\": 5 }", "nonce: expected 2-64 hex digits" },
		{ "{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5 }", "os: missing" },
		{ "{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"os\": { \"family\": \"beos\" } }",
		  "os.family: not one of" },
		{ "{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"os\": { \"family\": \"linux\", \"version\": 12 } }",
		  "os.version: expected a string, not an integer" },
		{ "{ " HEAD ", \"firewall\": \"yes\" }", "firewall: expected true or false, not a string" },
		{ "{ " HEAD ", \"processes\": [ 1 ] }", "processes[0]: expected a string, not an integer" },
		{ "{ " HEAD ", \"processes\": {} }", "processes: expected an array, not an object" },
		{ "{ " HEAD ", \"files\": [ { \"sha256\": \"00\" } ] }", "files[0].path: missing" },
		{ "{ " HEAD ", \"files\": [ { \"path\": \"/a\", \"sha256\": \"00\" } ] }",
		  "files[0].sha256: expected 64 hex digits" },
		{ "{ " HEAD ", \"attributes\": { \"a\": null } }",
		  "attributes.a: expected a string, a number or a boolean, not null" },
		{ "{ " HEAD ", \"attributes\": [] }", "attributes: expected an object" },
		{ "{ " HEAD ", \"disk_encryption\": { \"volumes\": [ { \"mount\": \"/\" } ] } }",
		  "disk_encryption.volumes[0]: needs mount and encrypted" },
		/* The mount string was parsed first and leaked (ASan: make test SAN=1). */
		{ "{ " HEAD ", \"disk_encryption\": { \"volumes\": [ { \"mount\": \"/home\", "
		  "\"encrypted\": \"yes\" } ] } }",
		  "disk_encryption.volumes[0]: expected true or false, not a string" },
		{ "{ " HEAD ", \"serial\": \"a\", \"serial\": \"b\" }", "duplicate object key" },
		{ "{ " HEAD ", \"serial\": \"a\\u0000b\" }", "not JSON" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		bad(t[i].body, strlen(t[i].body), t[i].err);
}

TEST(report_limits)
{
	size_t cap = XB_REPORT_BODY_MAX + 64, n;
	char *b = malloc(cap);

	CHECK(b != NULL);
	/* 1024 processes fit; 1025 do not. */
	for (int k = 1024; k <= 1025; k++) {
		n = (size_t)snprintf(b, cap, "{ " HEAD ", \"processes\": [ ");
		for (int i = 0; i < k; i++)
			n += (size_t)snprintf(b + n, cap - n, "%s\"p%d\"", i ? "," : "", i);
		n += (size_t)snprintf(b + n, cap - n, " ] }");
		if (k == 1024) {
			struct xb_report *r = parse(b);

			CHECK_INT(r->n_processes, ==, 1024);
			xb_posture_report_free(r);
		} else {
			bad(b, n, "processes: more than 1024 elements");
		}
	}
	n = (size_t)snprintf(b, cap, "{ " HEAD ", \"serial\": \"");
	memset(b + n, 'x', 257);
	strcpy(b + n + 257, "\" }");
	bad(b, strlen(b), "serial: longer than 256 bytes");
	memset(b, ' ', cap);
	bad(b, XB_REPORT_BODY_MAX + 1, "body: larger than 65536 bytes");
	free(b);
}

static struct xb_posture_state state(const char *body, int64_t received)
{
	struct xb_posture_state s = { 0 };

	xb_posture_set_report(&s, parse(body), AT(received));
	return s;
}

/* Evaluates profile i; returns the compliance; out holds the results. */
static bool eval(const struct xb_policy *p, size_t i, const struct xb_posture_state *s,
		 struct xb_ptime now, struct xb_check_result *out)
{
	bool ok;
	size_t n = xb_posture_eval(&p->profiles[i], s, now, out, XB_POSTURE_OUT(&p->profiles[i]), &ok);

	CHECK_INT(n, ==, XB_POSTURE_OUT(&p->profiles[i]));
	return ok;
}

#define EXPECT(r, o, t)                                                      \
	do {                                                                 \
		if ((r).outcome != (o) || strcmp((r).text, (t)))             \
			printf("# got %s: %s\n", xb_outcome_name((r).outcome), (r).text); \
		CHECK_INT((r).outcome, ==, (o));                             \
		CHECK_STR((r).text, (t));                                    \
	} while (0)

TEST(each_check)
{
	struct xb_policy *p = policy(
		"{ name = \"a\"; checks = ("
		"  { os_version = \">= 14.2\"; }, { os_version = \"< 14\"; },"
		"  { agent_version = \">= 0.1\"; }, { agent_version = \">= 0.2\"; },"
		"  { disk_encryption = true; }, { firewall = true; }, { screen_lock = true; },"
		"  { serial_file = \"serials.txt\"; }, { serial_in = [ \"X1\" ]; },"
		"  { process = \"falcon-sensor\"; }, { process = \"clamd\"; },"
		"  { file = \"/etc/xb/marker\"; sha256 = \"" SHA_A "\"; },"
		"  { file = \"/etc/xb/marker\"; sha256 = \"" SHA_B "\"; },"
		"  { file = \"/etc/x\"; }, { file = \"/etc/y\"; },"
		"  { attribute = \"edr.score\"; op = \">=\"; value = 80; },"
		"  { attribute = \"edr.score\"; op = \">\"; value = 70.5; },"
		"  { attribute = \"tier\"; value = 3; }, { attribute = \"nope\"; value = true; },"
		"  { attribute = \"managed\"; op = \"!=\"; value = false; } ); }, { name = \"b\"; }");
	struct xb_posture_state s = state(good_report, NOW);
	struct xb_check_result r[32];

	CHECK(!eval(p, 0, &s, AT(NOW), r));
	EXPECT(r[0], XB_FAIL, "os_version: expected >= 14.2, seen 13.6");
	EXPECT(r[1], XB_PASS, "os_version: expected < 14, seen 13.6");
	EXPECT(r[2], XB_PASS, "agent_version: expected >= 0.1, seen 0.1.0");
	EXPECT(r[3], XB_FAIL, "agent_version: expected >= 0.2, seen 0.1.0");
	EXPECT(r[4], XB_PASS, "disk_encryption: expected true, seen true");
	EXPECT(r[5], XB_FAIL, "firewall: expected true, seen false");
	EXPECT(r[6], XB_UNKNOWN, "screen_lock: expected true, seen nothing (not reported)");
	EXPECT(r[7], XB_PASS, "serial_in: expected one of 2 serial numbers in serials.txt, seen PF2ABC");
	EXPECT(r[8], XB_FAIL, "serial_in: expected X1, seen PF2ABC");
	EXPECT(r[9], XB_PASS, "process: expected falcon-sensor running, seen running");
	EXPECT(r[10], XB_FAIL, "process: expected clamd running, seen not running (2 processes reported)");
	EXPECT(r[11], XB_PASS, "file: expected /etc/xb/marker with sha256 " SHA_A ", seen sha256 " SHA_A);
	EXPECT(r[12], XB_FAIL, "file: expected /etc/xb/marker with sha256 " SHA_B ", seen sha256 " SHA_A);
	EXPECT(r[13], XB_PASS, "file: expected /etc/x present, seen present");
	EXPECT(r[14], XB_FAIL, "file: expected /etc/y present, seen absent");
	EXPECT(r[15], XB_FAIL, "attribute: expected edr.score >= 80, seen 75");
	EXPECT(r[16], XB_PASS, "attribute: expected edr.score > 70.5, seen 75");
	EXPECT(r[17], XB_FAIL, "attribute: expected tier == 3, seen \"gold\" (a string, not a number)");
	EXPECT(r[18], XB_UNKNOWN, "attribute: expected nope == true, seen nothing (not reported)");
	EXPECT(r[19], XB_PASS, "attribute: expected managed != false, seen true");
	EXPECT(r[20], XB_PASS, "platform: expected linux|macos|windows|ios|android, seen macos");
	/* Nothing reported at all: every list-based check is unknown. */
	xb_posture_state_free(&s);
	s = state("{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"os\": { \"family\": \"macos\" } }", NOW);
	CHECK(!eval(p, 0, &s, AT(NOW), r));
	for (size_t i = 0; i < p->profiles[0].n_checks; i++)
		CHECK_INT(r[i].outcome, ==, XB_UNKNOWN);
	xb_posture_state_free(&s);
	xb_policy_free(p);
}

TEST(and_platforms_report_only_age)
{
	struct xb_policy *p = policy(
		"{ name = \"a\"; platforms = [ \"linux\", \"macos\" ]; max_age = 60; checks = ("
		"  { os_version = \">= 12\"; platforms = [ \"linux\" ]; },"
		"  { os_version = \">= 13.5\"; platforms = [ \"macos\" ]; },"
		"  { firewall = true; mode = \"report\"; } ); },"
		"{ name = \"b\"; platforms = [ \"linux\" ]; other_platforms = \"pass\"; checks = ("
		"  { firewall = true; } ); }");
	struct xb_posture_state s = state(good_report, NOW), none = { 0 };
	struct xb_check_result r[8];

	/* macOS 13.6: the linux check is skipped, the firewall fails only in
	 * report mode: compliant. */
	CHECK(eval(p, 0, &s, AT(NOW + 60), r));
	EXPECT(r[0], XB_SKIP, "os_version: expected -, seen platform macos");
	EXPECT(r[1], XB_PASS, "os_version: expected >= 13.5, seen 13.6");
	EXPECT(r[2], XB_FAIL, "firewall: expected true, seen false (report only)");
	CHECK(r[2].report_only);
	/* One second too old. */
	CHECK(!eval(p, 0, &s, AT(NOW + 61), r));
	EXPECT(r[3], XB_FAIL, "report age: expected a report at most 60 s old, seen 61 s old");
	/* Profile b covers linux only and lets other platforms pass. */
	CHECK(eval(p, 1, &s, AT(NOW), r));
	EXPECT(r[0], XB_SKIP, "firewall: expected -, seen -");
	EXPECT(r[1], XB_PASS, "platform: expected linux, seen macos (other_platforms = pass)");
	CHECK(xb_posture_any(p, &p->rules[0], &s, AT(NOW)));
	/* Windows is covered by neither a (fails) nor b (passes): OR passes. */
	xb_posture_state_free(&s);
	s = state("{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"os\": { \"family\": \"windows\" } }", NOW);
	CHECK(!eval(p, 0, &s, AT(NOW), r));
	EXPECT(r[3], XB_FAIL, "platform: expected linux|macos, seen windows");
	CHECK(xb_posture_any(p, &p->rules[0], &s, AT(NOW)));
	/* Linux with firewall off: a fails (no os.version), b fails: OR fails. */
	xb_posture_state_free(&s);
	s = state("{ \"seq\": 1, \"nonce\": \"ab\", \"time\": 5, \"firewall\": false, "
		  "\"os\": { \"family\": \"linux\" } }", NOW);
	CHECK(!xb_posture_any(p, &p->rules[0], &s, AT(NOW)));
	/* No report: unknown, not compliant. */
	CHECK(!eval(p, 0, &none, AT(NOW), r));
	EXPECT(r[3], XB_UNKNOWN, "report: expected linux|macos, seen no report");
	xb_posture_state_free(&s);
	xb_policy_free(p);
}

/* A signed push: body into buf, signature (base64) into sig. */
static void sign(char *buf, size_t len, char sig[static 100], const char *key, int64_t t,
		 const char *nonce, const char *device, const char *attrs)
{
	uint8_t raw[64];

	snprintf(buf, len, "{ \"key\": \"%s\", \"time\": %lld, \"nonce\": \"%s\", "
		 "\"device\": \"%s\", \"attributes\": { %s } }", key, (long long)t, nonce, device,
		 attrs);
	crypto_sign_detached(raw, NULL, (const uint8_t *)buf, strlen(buf), mdm_sk);
	sodium_bin2base64(sig, 100, raw, 64, sodium_base64_VARIANT_ORIGINAL);
}

/* A report's age is counted on the boot clock from its acceptance: the
 * wall clock stepped a day forward (NTP) does not age it, stepped a day
 * back does not keep it fresh; a pushed attribute still expires by the
 * wall clock, the one its expiry is written in. */
TEST(age_ignores_wall_clock_steps)
{
	struct xb_policy *p = policy(
		"{ name = \"a\"; max_age = 60; checks = ( { attribute = \"edr.score\";"
		" op = \">=\"; value = 70; } ); }, { name = \"b\"; }");
	struct xb_posture_state s = { 0 };
	struct xb_check_result r[2];
	const int64_t boot = 5000;	/* seconds since boot at acceptance */

	xb_posture_set_report(&s, parse(good_report), (struct xb_ptime){ NOW, boot });
	CHECK_INT(s.received_wall, ==, NOW);
	/* 10 s later by the boot clock, a day later by the wall clock. */
	CHECK(eval(p, 0, &s, ((struct xb_ptime){ NOW + 86400, boot + 10 }), r));
	EXPECT(r[1], XB_PASS, "platform: expected linux|macos|windows|ios|android, seen macos");
	/* 61 s later by the boot clock, a day earlier by the wall clock. */
	CHECK(!eval(p, 0, &s, ((struct xb_ptime){ NOW - 86400, boot + 61 }), r));
	EXPECT(r[1], XB_FAIL, "report age: expected a report at most 60 s old, seen 61 s old");

	/* After a restart only the wall clock says how old a stored report
	 * is: clamped to [0, XB_POSTURE_AGE_MAX]. */
	CHECK_INT(xb_posture_stored_age(NOW - 30, NOW), ==, 30);
	CHECK_INT(xb_posture_stored_age(NOW + 3600, NOW), ==, 0);
	CHECK_INT(xb_posture_stored_age(0, NOW), ==, XB_POSTURE_AGE_MAX);
	xb_posture_state_free(&s);
	xb_policy_free(p);
}

static enum xb_mdm_refusal why;	/* the last push's */

static int push(const struct xb_policy *p, struct xb_mdm_replay *rc, const char *body,
		const char *sig, struct xb_mdm_push *m, char *err)
{
	why = xb_posture_mdm_verify(p, rc, body, strlen(body), sig, NOW, m, err, 256);
	return why == XB_MDM_OK ? 0 : -1;
}

#define N1 "00112233445566778899aabbccddeeff"
#define N2 "ffeeddccbbaa99887766554433221100"
#define SCORE "\"edr.score\": { \"value\": 90, \"expires\": 1763800600 }"

TEST(mdm_push)
{
	struct xb_policy *p = policy(
		"{ name = \"a\"; checks = ( { attribute = \"edr.score\"; op = \">=\"; value = 80; } ); },"
		"{ name = \"b\"; }");
	struct xb_posture_state s = state(good_report, NOW);
	struct xb_mdm_replay rc = { 0 };
	struct xb_check_result r[4];
	struct xb_mdm_push m;
	char body[1024], sig[100], err[256];

	/* Reported 75 fails; pushed 90 wins over it until it expires. */
	CHECK(!eval(p, 0, &s, AT(NOW), r));
	sign(body, sizeof(body), sig, "intune", NOW - 299, N1, "laptop",
	     SCORE ", \"old\": { \"value\": \"x\", \"expires\": 1763799999 }");
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, 0);
	CHECK_STR(m.key->name, "intune");
	CHECK_STR(m.device, "laptop");
	CHECK_INT(m.n_attrs, ==, 1);		/* "old" had expired */
	CHECK_INT(xb_posture_push(&s, &m, NOW), ==, 0);
	CHECK(eval(p, 0, &s, AT(NOW), r));
	EXPECT(r[0], XB_PASS, "attribute: expected edr.score >= 80, seen 90");
	CHECK(!eval(p, 0, &s, AT(NOW + 600), r));	/* expired: the report's 75 again */
	EXPECT(r[0], XB_FAIL, "attribute: expected edr.score >= 80, seen 75");

	/* The same push again: replay. */
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "nonce: already used within the last 600 s");
	CHECK_INT(why, ==, XB_MDM_REPLAYED);
	/* A changed byte (90 -> 99): bad signature. */
	strstr(body, "90")[1] = '9';
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "signature: does not verify with key \"intune\"");
	CHECK_INT(why, ==, XB_MDM_FORBIDDEN);
	CHECK_INT(push(p, &rc, body, "AAAA", &m, err), ==, -1);
	CHECK_STR(err, "signature: not a base64 Ed25519 signature (64 bytes)");
	CHECK_INT(why, ==, XB_MDM_FORBIDDEN);
	/* Unknown key, old time, unknown device, missing expiry. */
	sign(body, sizeof(body), sig, "jamf", NOW, N2, "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "key: \"jamf\" is not in the policy's mdm_keys");
	CHECK_INT(why, ==, XB_MDM_FORBIDDEN);
	sign(body, sizeof(body), sig, "intune", NOW - 301, N2, "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "time: 1763799699 is 301 s from the gateway's clock (at most 300)");
	CHECK_INT(why, ==, XB_MDM_FORBIDDEN);
	sign(body, sizeof(body), sig, "intune", NOW + 301, N2, "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	sign(body, sizeof(body), sig, "intune", NOW, N2, "desktop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "device: \"desktop\" is not in the policy");
	CHECK_INT(why, ==, XB_MDM_NO_DEVICE);
	sign(body, sizeof(body), sig, "intune", NOW, "abcd", "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "nonce: expected 16-64 hex digits");
	CHECK_INT(why, ==, XB_MDM_MALFORMED);
	sign(body, sizeof(body), sig, "intune", NOW, N2, "laptop", "\"a\": { \"value\": 1 }");
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, -1);
	CHECK_STR(err, "expires: missing");
	CHECK_INT(why, ==, XB_MDM_MALFORMED);
	/* None of the failures used up N2. */
	sign(body, sizeof(body), sig, "intune", NOW, N2, "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, 0);
	CHECK_INT(rc.n, ==, 2);
	xb_posture_mdm_push_free(&m);
	xb_posture_mdm_replay_free(&rc);
	xb_posture_state_free(&s);
	xb_policy_free(p);
}

/* source = "mdm": the device's own edr.score (it could claim 100) does not
 * count; without a valid push the check fails, with one it is judged, and
 * once the push expires it fails again. */
TEST(mdm_only_attribute)
{
	struct xb_policy *p = policy(
		"{ name = \"a\"; checks = ( { attribute = \"edr.score\"; op = \">=\"; value = 70;"
		" source = \"mdm\"; } ); }, { name = \"b\"; }");
	struct xb_posture_state s = state(good_report, NOW);	/* reports edr.score 75 */
	struct xb_mdm_replay rc = { 0 };
	struct xb_check_result r[2];
	struct xb_mdm_push m;
	char body[1024], sig[100], err[256];

	CHECK(p->profiles[0].checks[0].mdm_only);
	CHECK(!eval(p, 0, &s, AT(NOW), r));
	EXPECT(r[0], XB_FAIL, "attribute: expected edr.score >= 70 (from an MDM push), "
	       "seen no MDM attribute");
	sign(body, sizeof(body), sig, "intune", NOW, N1, "laptop",
	     "\"edr.score\": { \"value\": 60, \"expires\": 1763800600 }");
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, 0);
	CHECK_INT(xb_posture_push(&s, &m, NOW), ==, 0);
	CHECK(!eval(p, 0, &s, AT(NOW), r));		/* the MDM's 60, not the device's 75 */
	EXPECT(r[0], XB_FAIL, "attribute: expected edr.score >= 70 (from an MDM push), seen 60");
	sign(body, sizeof(body), sig, "intune", NOW, N2, "laptop", SCORE);
	CHECK_INT(push(p, &rc, body, sig, &m, err), ==, 0);
	CHECK_INT(xb_posture_push(&s, &m, NOW), ==, 0);
	CHECK(eval(p, 0, &s, AT(NOW), r));
	CHECK(!eval(p, 0, &s, AT(NOW + 600), r));	/* expired: no fallback to the report */
	EXPECT(r[0], XB_FAIL, "attribute: expected edr.score >= 70 (from an MDM push), "
	       "seen no MDM attribute");
	xb_posture_mdm_replay_free(&rc);
	xb_posture_state_free(&s);
	xb_policy_free(p);
}

TEST(mdm_replay_bounded)
{
	struct xb_policy *p = policy("{ name = \"a\"; }, { name = \"b\"; }");
	struct xb_mdm_replay rc = { 0 };
	struct xb_mdm_push m;
	char body[512], sig[100], err[256], n[40];

	for (int i = 0; i <= XB_MDM_REPLAY_MAX; i++) {
		snprintf(n, sizeof(n), "%032x", i);
		sign(body, sizeof(body), sig, "intune", NOW, n, "laptop", "");
		CHECK_INT(push(p, &rc, body, sig, &m, err), ==, i < XB_MDM_REPLAY_MAX ? 0 : -1);
		xb_posture_mdm_push_free(&m);
	}
	CHECK(strstr(err, "refused until older ones expire") != NULL);
	/* 301 s later the first pushes' nonces have left the window. */
	sign(body, sizeof(body), sig, "intune", NOW + 301, N1, "laptop", "");
	CHECK_INT(xb_posture_mdm_verify(p, &rc, body, strlen(body), sig, NOW + 301, &m, err, sizeof(err)), ==, 0);
	CHECK_INT(rc.n, ==, 1);
	xb_posture_mdm_push_free(&m);
	xb_posture_mdm_replay_free(&rc);
	xb_policy_free(p);
}
