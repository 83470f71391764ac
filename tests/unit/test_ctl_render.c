/* xborderctl's text output. Golden files: tests/ctl/NAME.json rendered at a
 * fixed time (1700000100, 100 s after the schemas' example times) must give
 * tests/ctl/NAME.out exactly; NAME up to its first '-' says which command.
 * XB_UPDATE_GOLDEN=1 rewrites the .out files (review the diff). Odd shapes
 * and types render as "-" or are refused, never a crash (run with SAN=1). */
#include "tests/lib/check.h"
#include "ctl/render.h"

#include <dirent.h>
#include <limits.h>
#include <unistd.h>

#define NOW 1700000100

static const struct {
	const char *name;
	xb_render_fn fn;
} renderers[] = {
	{ "status", xb_render_status },
	{ "devices", xb_render_devices },
	{ "tunnels", xb_render_tunnels },
	{ "rules", xb_render_rules },
	{ "reload", xb_render_reload },
	{ "posture", xb_render_posture },
	{ "dns", xb_render_dns },
	{ "explain", xb_render_explain },
	{ "drops", xb_render_drops },
	{ "cluster-prune", xb_render_cluster_prune },
};
#define N_RENDERERS (sizeof(renderers) / sizeof(renderers[0]))

/* tests/ctl of the source tree: from the current directory (make test runs
 * at the top), else above the binary (build/tests/ or build/san/tests/). */
static const char *golden_dir(void)
{
	static char dir[PATH_MAX + 32];
	char exe[PATH_MAX];
	ssize_t n;

	if (access("tests/ctl/status.json", R_OK) == 0)
		return "tests/ctl";
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		SKIP("cannot find tests/ctl: run from the source tree");
	exe[n] = '\0';
	for (int up = 0; up < 5; up++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			break;
		*slash = '\0';
		snprintf(dir, sizeof(dir), "%s/tests/ctl/status.json", exe);
		if (access(dir, R_OK) == 0) {
			snprintf(dir, sizeof(dir), "%s/tests/ctl", exe);
			return dir;
		}
	}
	SKIP("cannot find tests/ctl: run from the source tree");
}

static xb_render_fn renderer(const char *file)
{
	for (size_t i = 0; i < N_RENDERERS; i++) {
		size_t n = strlen(renderers[i].name);
		if (!strncmp(file, renderers[i].name, n) && (file[n] == '.' || file[n] == '-'))
			return renderers[i].fn;
	}
	return NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;

	if (!f)
		return NULL;
	if (getdelim(&s, &n, '\0', f) < 0) {
		free(s);
		s = strdup("");
	}
	fclose(f);
	return s;
}

/* Render json with fn at NOW; the text, malloc'ed. */
static char *render(xb_render_fn fn, json_t *json, bool colour, int *ret)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	struct xb_render r = { f, colour, NOW };

	CHECK(f != NULL);
	*ret = fn(&r, json);
	fclose(f);
	return s;
}

static void golden(const char *dir, const char *file)
{
	char path[PATH_MAX], *got, *want;
	xb_render_fn fn = renderer(file);
	json_error_t jerr;
	json_t *j;
	int ret;

	if (!fn)
		xb_test_fail(__FILE__, __LINE__, "%s: no renderer for this name", file);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!(j = json_load_file(path, JSON_DECODE_ANY, &jerr)))
		xb_test_fail(__FILE__, __LINE__, "%s:%d: %s", file, jerr.line, jerr.text);
	got = render(fn, j, false, &ret);
	json_decref(j);
	CHECK_INT(ret, ==, 0);
	snprintf(path + strlen(path) - 5, 6, ".out");
	if (getenv("XB_UPDATE_GOLDEN") && !strcmp(getenv("XB_UPDATE_GOLDEN"), "1")) {
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		fputs(got, f);
		fclose(f);
	}
	want = slurp(path);
	if (!want || strcmp(got, want)) {
		printf("# %s: got\n%s# want\n%s", file, got, want ? want : "(no file)\n");
		free(got);
		free(want);
		xb_test_fail(__FILE__, __LINE__, "%s differs from its .out", file);
	}
	free(got);
	free(want);
}

TEST(golden_files)
{
	const char *dir = golden_dir();
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) {
			golden(dir, e->d_name);
			n++;
		}
	}
	closedir(d);
	printf("# %d golden files\n", n);
	CHECK_INT(n, >=, 8);
}

TEST(units)
{
	char b[32];

	xb_fmt_bytes(b, sizeof(b), 0);
	CHECK_STR(b, "0 B");
	xb_fmt_bytes(b, sizeof(b), 1023);
	CHECK_STR(b, "1023 B");
	xb_fmt_bytes(b, sizeof(b), 1024);
	CHECK_STR(b, "1.00 KiB");
	xb_fmt_bytes(b, sizeof(b), 1536);
	CHECK_STR(b, "1.50 KiB");
	xb_fmt_bytes(b, sizeof(b), 5ull << 30);
	CHECK_STR(b, "5.00 GiB");
	xb_fmt_bytes(b, sizeof(b), UINT64_MAX);
	CHECK_STR(b, "16777216.00 TiB");
	xb_fmt_duration(b, sizeof(b), 0);
	CHECK_STR(b, "0s");
	xb_fmt_duration(b, sizeof(b), 59);
	CHECK_STR(b, "59s");
	xb_fmt_duration(b, sizeof(b), 100);
	CHECK_STR(b, "1m40s");
	xb_fmt_duration(b, sizeof(b), 3600 + 5 * 60 + 59);
	CHECK_STR(b, "1h05m");
	xb_fmt_duration(b, sizeof(b), 93784);
	CHECK_STR(b, "1d02h");
}

TEST(colour_only_when_asked)
{
	json_t *j = json_pack("[{s:s, s:i}]", "name", "alice", "last_handshake", 0);
	int ret;
	char *plain = render(xb_render_devices, j, false, &ret), *col;

	CHECK(!strchr(plain, '\033'));
	col = render(xb_render_devices, j, true, &ret);
	CHECK(strstr(col, "\033[1mNAME\033[0m"));
	CHECK(strstr(col, "\033[32malice\033[0m"));
	/* Colour codes do not count towards column widths. */
	CHECK(strstr(col, "\033[32malice\033[0m  "));
	free(plain);
	free(col);
	json_decref(j);
}

TEST(odd_shapes_never_crash)
{
	static const char *const odd[] = {
		"null", "1", "\"x\"", "[]", "{}", "[null,1,\"x\",[],{}]",
		"[{\"name\":[{\"a\":1}],\"last_handshake\":\"soon\",\"rx_bytes\":-5,"
		"\"groups\":\"finance\",\"devices\":7,\"to\":{},\"ports\":[1,2.5,true]}]",
		"{\"policy\":[],\"interface\":\"x\",\"last_reload\":{\"errors\":\"e\"},"
		"\"uptime_s\":1e99,\"changed\":\"yes\"}",
		"[{\"last_handshake\":-1,\"rx_bytes\":9223372036854775807}]",
		"[{\"last_handshake\":9223372036854775807}]",
	};
	int refused = 0;

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		json_t *j = json_loads(odd[i], JSON_DECODE_ANY, NULL);
		CHECK(j != NULL);
		for (size_t k = 0; k < N_RENDERERS; k++) {
			int ret;
			char *s = render(renderers[k].fn, j, true, &ret);
			CHECK(ret == 0 || ret == -1);
			if (ret)
				CHECK_STR(s, "");	/* refused: nothing printed */
			refused += ret != 0;
			free(s);
		}
		json_decref(j);
	}
	CHECK(refused > 0);
}

TEST(no_terminal_control_from_the_daemon)
{
	json_t *j = json_pack("[{s:s, s:[s]}]", "name", "a\033]0;pwned\007b", "groups", "x\ny");
	int ret;
	char *s = render(xb_render_devices, j, false, &ret);

	CHECK(!strchr(s, '\033') && !strchr(s, '\007'));
	CHECK(strstr(s, "a?]0;pwned?b"));
	CHECK(strstr(s, "x?y"));
	free(s);
	json_decref(j);
}
