/* The agent's collectors on a fake root: a temporary tree with the /etc,
 * /proc and /sys files they read (agent/collect.c, disk.c, firewall.c).
 *
 *   sys/dev/block:  8:2 plain partition      253:1 crypt on 8:2
 *                   253:2 LVM on 253:1       253:3 LVM on plain 8:3
 *                   253:4 LVM on 253:1 + 8:3 253:9 its own slave (a loop)
 */
#include "tests/lib/check.h"
#include "agent/posture.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[] = "/tmp/xb-agent-test.XXXXXX";
static struct xba_conf conf;
static struct xba_env env = { root, &conf, false };

static void cleanup(void)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", root);
}

/* Write text to ROOT/rel, making directories on the way. */
static void put(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	CHECK((f = fopen(path, "w")));
	fputs(text, f);
	fclose(f);
}

static void link_to(const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK(symlink(target, path) == 0);
}

__attribute__((constructor)) static void setup(void)
{
	if (!mkdtemp(root) || sodium_init() < 0)
		abort();
	atexit(cleanup);
	log_init("test_agent_collect", LOG_LVL_ERR, false);
}

static void reset(void)
{
	memset(&conf, 0, sizeof(conf));
}

TEST(os_release_quoting_and_kernel)
{
	json_t *r = json_object(), *os;

	reset();
	put("etc/os-release", "# comment\nID=debian\nVERSION_ID=\"12.7\"\n"
			      "PRETTY_NAME=\"Debian \\\"GNU\\\"/Linux 12\"\nNAME='Debian'\n");
	put("proc/sys/kernel/osrelease", "6.1.0-13-amd64\n");
	CHECK(xba_collect_os(&env, r) == 0);
	os = json_object_get(r, "os");
	CHECK_STR(json_string_value(json_object_get(os, "family")), "linux");
	CHECK_STR(json_string_value(json_object_get(os, "version")), "12.7");
	CHECK_STR(json_string_value(json_object_get(os, "name")), "Debian \"GNU\"/Linux 12");
	CHECK_STR(json_string_value(json_object_get(os, "kernel")), "6.1.0-13-amd64");
	json_decref(r);
}

TEST(os_release_fallback_and_absent_facts)
{
	char path[PATH_MAX];
	json_t *r = json_object(), *os;

	reset();
	snprintf(path, sizeof(path), "%s/etc/os-release", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/proc/sys/kernel/osrelease", root);
	unlink(path);
	put("usr/lib/os-release", "VERSION_ID=13\n");
	CHECK(xba_collect_os(&env, r) == 0);
	os = json_object_get(r, "os");
	CHECK_STR(json_string_value(json_object_get(os, "version")), "13");
	CHECK(!json_object_get(os, "name"));
	CHECK(!json_object_get(os, "kernel"));
	json_decref(r);
}

static void dm(const char *dev, const char *uuid)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "sys/dev/block/%s/dm/uuid", dev);
	put(rel, uuid);
}

static void slave(const char *dev, const char *name, const char *target)
{
	char rel[128], to[64];

	snprintf(rel, sizeof(rel), "sys/dev/block/%s/slaves/.keep", dev);
	put(rel, "");
	snprintf(rel, sizeof(rel), "sys/dev/block/%s/slaves/%s", dev, name);
	snprintf(to, sizeof(to), "../../%s", target);
	link_to(rel, to);
}

TEST(dm_crypt_through_slaves)
{
	reset();
	put("sys/dev/block/8:2/dev", "8:2\n");
	put("sys/dev/block/8:3/dev", "8:3\n");
	dm("253:1", "CRYPT-LUKS2-0123456789abcdef-root\n");
	slave("253:1", "sda2", "8:2");
	dm("253:2", "LVM-abcdef\n");
	slave("253:2", "dm-1", "253:1");
	dm("253:3", "LVM-plain\n");
	slave("253:3", "sda3", "8:3");
	dm("253:4", "LVM-mixed\n");
	slave("253:4", "dm-1", "253:1");
	slave("253:4", "sda3", "8:3");
	dm("253:9", "LVM-loop\n");
	slave("253:9", "dm-9", "253:9");

	CHECK_INT(xba_dev_encrypted(&env, 8, 2), ==, 0);
	CHECK_INT(xba_dev_encrypted(&env, 253, 1), ==, 1);
	CHECK_INT(xba_dev_encrypted(&env, 253, 2), ==, 1);
	CHECK_INT(xba_dev_encrypted(&env, 253, 3), ==, 0);
	CHECK_INT(xba_dev_encrypted(&env, 253, 4), ==, 0);
	CHECK_INT(xba_dev_encrypted(&env, 253, 9), ==, -1);
	CHECK_INT(xba_dev_encrypted(&env, 8, 99), ==, -1);
	CHECK_INT(xba_dev_encrypted(&env, 0, 42), ==, -1);
}

TEST(processes_watch_list_only)
{
	char *watch[] = { "sshd", "falcon-sensor", "a-very-long-process-name", "cron", "ssh" };
	json_t *r = json_object(), *list;

	reset();
	conf.processes = watch;
	conf.n_processes = 5;
	put("proc/1/comm", "sshd\n");
	put("proc/22/comm", "falcon-sensor\n");
	put("proc/333/comm", "a-very-long-pro\n");
	put("proc/4444/comm", "firefox\n");
	put("proc/self/comm", "cron\n");	/* not a pid directory */
	CHECK(xba_collect_processes(&env, r) == 0);
	list = json_object_get(r, "processes");
	CHECK_INT(json_array_size(list), ==, 3);
	CHECK_STR(json_string_value(json_array_get(list, 0)), "sshd");
	CHECK_STR(json_string_value(json_array_get(list, 1)), "falcon-sensor");
	CHECK_STR(json_string_value(json_array_get(list, 2)), "a-very-long-process-name");
	json_decref(r);
}

TEST(files_sha256_streamed)
{
	char *files[] = { "/etc/xb/marker", "/etc/xb/big", "/etc/xb/missing" };
	unsigned char md[crypto_hash_sha256_BYTES];
	char hex[65], *big = malloc(200001);
	json_t *r = json_object(), *list;

	reset();
	conf.files = files;
	conf.n_files = 3;
	put("etc/xb/marker", "abc");
	/* Over three read buffers, ending mid-buffer. */
	for (size_t i = 0; i < 200000; i++)
		big[i] = (char)('a' + i % 26);
	big[200000] = '\0';
	put("etc/xb/big", big);
	crypto_hash_sha256(md, (unsigned char *)big, 200000);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	free(big);
	CHECK(xba_collect_files(&env, r) == 0);
	list = json_object_get(r, "files");
	CHECK_INT(json_array_size(list), ==, 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "path")),
		  "/etc/xb/marker");
	CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "sha256")),
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK_STR(json_string_value(json_object_get(json_array_get(list, 1), "sha256")), hex);
	json_decref(r);
}

TEST(attributes_types_and_bad_lines)
{
	char path[PATH_MAX];
	json_t *o = json_object();

	snprintf(path, sizeof(path), "%s/attr", root);
	put("attr", "# from the MDM\n\nany.key = \"string with = sign\"\n"
		    "count = 42\nneg = -7\nmanaged = true\noff = false\n"
		    "bare = some text  \nnot a pair\nbad key! = 1\nbig = 99999999999999999999\n");
	CHECK(xba_attributes_read(path, o) == 0);
	CHECK_INT(json_object_size(o), ==, 7);
	CHECK_STR(json_string_value(json_object_get(o, "any.key")), "string with = sign");
	CHECK_INT(json_integer_value(json_object_get(o, "count")), ==, 42);
	CHECK_INT(json_integer_value(json_object_get(o, "neg")), ==, -7);
	CHECK(json_is_true(json_object_get(o, "managed")));
	CHECK(json_is_false(json_object_get(o, "off")));
	CHECK_STR(json_string_value(json_object_get(o, "bare")), "some text");
	/* Out of range for a number: kept as the text it is. */
	CHECK_STR(json_string_value(json_object_get(o, "big")), "99999999999999999999");
	json_decref(o);
	snprintf(path, sizeof(path), "%s/no-such-file", root);
	CHECK(xba_attributes_read(path, o) == -1);
}

TEST(serial_placeholders_are_absent)
{
	json_t *r = json_object();

	reset();
	put("sys/class/dmi/id/product_serial", "To Be Filled By O.E.M.\n");
	CHECK(xba_collect_serial(&env, r) == 0);
	CHECK(!json_object_get(r, "serial"));
	put("sys/class/dmi/id/product_serial", "PF2ABC\n");
	CHECK(xba_collect_serial(&env, r) == 0);
	CHECK_STR(json_string_value(json_object_get(r, "serial")), "PF2ABC");
	json_decref(r);
}

TEST(firewall_input_policy_drop)
{
	const char *meta = "{\"metainfo\":{\"json_schema_version\":1}}";
	char buf[1024];

	snprintf(buf, sizeof(buf), "{\"nftables\":[%s,{\"table\":{\"family\":\"inet\","
		 "\"name\":\"filter\"}},{\"chain\":{\"family\":\"inet\",\"table\":\"filter\","
		 "\"name\":\"input\",\"type\":\"filter\",\"hook\":\"input\",\"prio\":0,"
		 "\"policy\":\"drop\"}}]}", meta);
	CHECK_INT(xba_firewall_from_json(buf), ==, 1);
	/* iptables-nft: table ip filter, chain INPUT. */
	snprintf(buf, sizeof(buf), "{\"nftables\":[%s,{\"chain\":{\"family\":\"ip\","
		 "\"table\":\"filter\",\"name\":\"INPUT\",\"type\":\"filter\",\"hook\":\"input\","
		 "\"prio\":0,\"policy\":\"drop\"}}]}", meta);
	CHECK_INT(xba_firewall_from_json(buf), ==, 1);
	/* Accepting input, dropping forward, or a bridge input chain: no. */
	snprintf(buf, sizeof(buf), "{\"nftables\":[%s,{\"chain\":{\"family\":\"inet\","
		 "\"hook\":\"input\",\"policy\":\"accept\"}},{\"chain\":{\"family\":\"inet\","
		 "\"hook\":\"forward\",\"policy\":\"drop\"}},{\"chain\":{\"family\":\"bridge\","
		 "\"hook\":\"input\",\"policy\":\"drop\"}},{\"chain\":{\"family\":\"inet\","
		 "\"name\":\"regular\"}}]}", meta);
	CHECK_INT(xba_firewall_from_json(buf), ==, 0);
	snprintf(buf, sizeof(buf), "{\"nftables\":[%s]}", meta);
	CHECK_INT(xba_firewall_from_json(buf), ==, 0);
	CHECK_INT(xba_firewall_from_json("{\"tables\":[]}"), ==, -1);
	CHECK_INT(xba_firewall_from_json("not json"), ==, -1);
}

TEST(collect_all_on_the_fake_root)
{
	char *watch[] = { "sshd" };
	json_t *r;

	reset();
	conf.processes = watch;
	conf.n_processes = 1;
	put("etc/os-release", "VERSION_ID=12\n");
	CHECK((r = xba_collect(&env)));
	CHECK_STR(json_string_value(json_object_get(json_object_get(r, "agent"), "version")),
		  XBA_VERSION);
	CHECK(json_is_object(json_object_get(r, "os")));
	CHECK(json_is_array(json_object_get(r, "processes")));
	/* Not asked for (tests leave the host's nftables alone), not configured: absent. */
	CHECK(!json_object_get(r, "firewall"));
	CHECK(!json_object_get(r, "screen_lock"));
	CHECK(!json_object_get(r, "files"));
	CHECK(!json_object_get(r, "attributes"));
	/* The tree's own device is not in its sys/dev/block: unknown. */
	CHECK(!json_object_get(r, "disk_encryption"));
	json_decref(r);
}

TEST(screen_lock_command_exit_status)
{
	json_t *r = json_object();

	reset();
	conf.screen_lock_cmd = "exit 0";
	CHECK(xba_collect_screen_lock(&env, r) == 0);
	CHECK(json_is_true(json_object_get(r, "screen_lock")));
	conf.screen_lock_cmd = "exit 1";
	CHECK(xba_collect_screen_lock(&env, r) == 0);
	CHECK(json_is_false(json_object_get(r, "screen_lock")));
	json_object_del(r, "screen_lock");
	conf.screen_lock_cmd = "exit 3";
	CHECK(xba_collect_screen_lock(&env, r) == 0);
	CHECK(!json_object_get(r, "screen_lock"));
	json_decref(r);
}
