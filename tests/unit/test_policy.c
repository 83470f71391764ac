/* The policy model: loading and lookups, pool address allocation across
 * restarts, the hash map against a naive reference on random operations,
 * prefix arithmetic, error ordering. Error messages themselves are checked
 * by the golden files of tests/cli/policy.sh.
 */
#include "tests/lib/check.h"
#include "policy/internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define K11 "ERERERERERERERERERERERERERERERERERERERERERE="
#define K22 "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="
#define K33 "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM="
#define K44 "REREREREREREREREREREREREREREREREREREREREREQ="
#define K55 "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU="
#define K66 "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY="

static char dir[64];

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

/* A fresh directory with a gateway key, and a policy with these devices. */
static void setup(const char *pools, const char *devices)
{
	char text[4096];

	strcpy(dir, "/tmp/xb-test-policy.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	put_file("gw.key", K11 "\n", 0600);
	snprintf(text, sizeof(text),
		 "gateway = { private_key_file = \"gw.key\"; %s };\n"
		 "groups = [ \"g\" ];\ndevices = ( %s );\n", pools, devices);
	put_file("xb.conf", text, 0644);
}

static void set_devices(const char *pools, const char *devices)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "gateway = { private_key_file = \"gw.key\"; %s };\n"
		 "groups = [ \"g\" ];\ndevices = ( %s );\n", pools, devices);
	put_file("xb.conf", text, 0644);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static struct xb_policy *load(void)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[128];

	snprintf(path, sizeof(path), "%s/xb.conf", dir);
	p = xb_policy_load(path, &errs);
	if (!p)
		xb_errors_print(&errs, stdout);
	xb_errors_free(&errs);
	CHECK(p != NULL);
	return p;
}

static const char *addr4(const struct xb_policy *p, const char *name)
{
	static char buf[8][INET_ADDRSTRLEN];
	static int n;
	const struct xb_device *d = xb_policy_device_by_name(p, name);

	CHECK(d && d->has4);
	n = (n + 1) % 8;
	inet_ntop(AF_INET, &d->address4, buf[n], sizeof(buf[n]));
	return buf[n];
}

/* Loads the policy and allocates with the state file, then saves it as
 * the daemon does once the policy is in force; 0 or -1. */
static int allocate(struct xb_policy **pp, char *err, size_t errlen)
{
	struct xb_errors errs = { 0 };
	char state[128];
	FILE *f;
	int r;

	snprintf(state, sizeof(state), "%s/state/addresses", dir);
	*pp = load();
	r = xb_policy_allocate(*pp, state, &errs);
	if (r == 0)
		r = xb_policy_save_addresses(*pp, state, &errs);
	f = fmemopen(err, errlen, "w");
	xb_errors_print(&errs, f);
	fclose(f);
	xb_errors_free(&errs);
	return r;
}

#define POOL4 "pool4 = \"198.51.100.0/24\";"
#define DEV(n, k) "{ name = \"" n "\"; public_key = \"" k "\"; groups = [ \"g\" ]; }"

TEST(load_defaults_and_lookups)
{
	struct xb_policy *p;
	uint8_t key[WG_KEY_LEN];

	setup(POOL4, DEV("a", K22) "," DEV("b", K33));
	p = load();
	CHECK_INT(p->n_devices, ==, 2);
	CHECK_STR(p->gateway.interface, "xb-dev");
	CHECK_INT(p->gateway.listen_port, ==, 51820);
	CHECK_INT(p->gateway.dns_port, ==, 53);
	CHECK_INT(p->gateway.posture_port, ==, 8443);
	CHECK_STR(p->gateway.state_dir, "/var/lib/xborder");
	CHECK(p->gateway.key.loaded && p->gateway.key.resolved[0] == '/');
	CHECK(p->gateway.has_pool4 && !p->gateway.has_pool6);
	CHECK_INT(ntohl(p->gateway.address4.s_addr), ==, 0xc6336401);	/* .1 */
	CHECK(wg_key_from_base64(key, K33));
	CHECK(xb_policy_device_by_key(p, key) == &p->devices[1]);
	CHECK(xb_policy_device_by_name(p, "a") == &p->devices[0]);
	CHECK(xb_policy_device_by_name(p, "c") == NULL);
	CHECK(xb_policy_group_by_name(p, "g") == &p->groups[0]);
	CHECK_INT(p->devices[1].groups[0].idx, ==, 0);
	CHECK(!p->devices[0].has4);
	xb_policy_free(p);
	cleanup();
}

TEST(alloc_stable_across_restarts)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char err[1024];

	setup(POOL4, DEV("a", K22) "," DEV("b", K33) "," DEV("c", K44));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	CHECK_STR(addr4(p, "b"), "198.51.100.3");
	CHECK_STR(addr4(p, "c"), "198.51.100.4");
	CHECK(xb_policy_device_by_addr(p, AF_INET, &p->devices[2].address4) == &p->devices[2]);
	xb_policy_free(p);
	/* A restart with the devices in another order changes nothing. */
	set_devices(POOL4, DEV("c", K44) "," DEV("b", K33) "," DEV("a", K22));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	CHECK_STR(addr4(p, "b"), "198.51.100.3");
	CHECK_STR(addr4(p, "c"), "198.51.100.4");
	/* Allocating again on the same policy gives the same result. */
	snprintf(err, sizeof(err), "%s/state/addresses", dir);
	CHECK_INT(xb_policy_allocate(p, err, &errs), ==, 0);
	CHECK_STR(addr4(p, "b"), "198.51.100.3");
	CHECK_INT(errs.n, ==, 0);
	xb_policy_free(p);
	cleanup();
}

/* The state file's text, into text (len bytes). */
static void state_text(char *text, size_t len)
{
	char path[128];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/state/addresses", dir);
	CHECK((f = fopen(path, "r")) != NULL);
	n = fread(text, 1, len - 1, f);
	text[n] = '\0';
	fclose(f);
}

TEST(alloc_removed_device_address_in_quarantine)
{
	struct xb_policy *p;
	char err[1024], text[1024], *q;
	long long until;
	time_t t0 = time(NULL);

	setup(POOL4, DEV("a", K22) "," DEV("b", K33) "," DEV("c", K44));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	xb_policy_free(p);
	/* b goes, d comes: b's .3 is not given to d at once (d's traffic
	 * would meet b's flows), d gets the next free one. */
	set_devices(POOL4, DEV("a", K22) "," DEV("c", K44) "," DEV("d", K55));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	CHECK_STR(addr4(p, "c"), "198.51.100.4");
	CHECK_STR(addr4(p, "d"), "198.51.100.5");
	CHECK_INT(p->gateway.address_quarantine, ==, XB_ADDRESS_QUARANTINE);
	xb_policy_free(p);
	state_text(text, sizeof(text));
	CHECK(strstr(text, "\na 198.51.100.2\nc 198.51.100.4\nd 198.51.100.5\n") != NULL);
	CHECK(strstr(text, "\nb ") == NULL);
	CHECK((q = strstr(text, "\n- 198.51.100.3 ")) != NULL);
	CHECK(sscanf(q, "\n- 198.51.100.3 %lld", &until) == 1);
	CHECK(until >= t0 + XB_ADDRESS_QUARANTINE && until <= time(NULL) + XB_ADDRESS_QUARANTINE);
	/* Still held at the next reload, with its end unchanged; e comes. */
	set_devices(POOL4, DEV("a", K22) "," DEV("c", K44) "," DEV("d", K55) "," DEV("e", K66));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "e"), "198.51.100.6");
	xb_policy_free(p);
	state_text(text, sizeof(text));
	snprintf(err, sizeof(err), "\n- 198.51.100.3 %lld\n", until);
	CHECK(strstr(text, err) != NULL);
	cleanup();
}

TEST(alloc_quarantine_over_or_off)
{
	struct xb_policy *p;
	char err[1024], text[1024], line[96];

	/* A quarantine over (its end in the past) frees the address; one not
	 * over holds it. */
	setup(POOL4, DEV("a", K22));
	CHECK(mkdir(strcat(strcpy(err, dir), "/state"), 0755) == 0);
	snprintf(text, sizeof(text), "- 198.51.100.2 %lld\n- 198.51.100.3 %lld\n",
		 (long long)time(NULL) - 1, (long long)time(NULL) + 3600);
	put_file("state/addresses", text, 0644);
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	xb_policy_free(p);
	state_text(text, sizeof(text));
	CHECK(strstr(text, "\n- 198.51.100.2 ") == NULL);	/* over: gone */
	CHECK(strstr(text, "\n- 198.51.100.3 ") != NULL);
	/* address_quarantine = 0: a freed address goes to the next device. */
	set_devices("address_quarantine = 0; " POOL4, DEV("b", K33));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_INT(p->gateway.address_quarantine, ==, 0);
	CHECK_STR(addr4(p, "b"), "198.51.100.2");	/* a's, at once */
	xb_policy_free(p);
	state_text(text, sizeof(text));
	CHECK(strstr(text, "\n- ") == NULL);
	/* A full pool says the quarantine is why. */
	set_devices("address_quarantine = 0; pool4 = \"198.51.100.0/30\";", DEV("c", K44));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	xb_policy_free(p);
	set_devices("pool4 = \"198.51.100.0/30\";", DEV("d", K55));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, -1);
	snprintf(line, sizeof(line), "see address_quarantine");
	CHECK(strstr(err, line) != NULL);
	xb_policy_free(p);
	cleanup();
}

/* Allocation alone writes nothing: a reload that fails after it leaves
 * the file as it was. */
TEST(alloc_writes_only_when_saved)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char err[1024], text[1024], state[128];

	setup(POOL4, DEV("a", K22));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	xb_policy_free(p);
	set_devices(POOL4, DEV("b", K33));
	p = load();
	snprintf(state, sizeof(state), "%s/state/addresses", dir);
	CHECK_INT(xb_policy_allocate(p, state, &errs), ==, 0);
	CHECK_STR(addr4(p, "b"), "198.51.100.3");
	xb_policy_free(p);
	state_text(text, sizeof(text));
	CHECK(strstr(text, "\na 198.51.100.2\n") != NULL);
	CHECK(strstr(text, "\nb ") == NULL && strstr(text, "\n- ") == NULL);
	xb_errors_free(&errs);
	cleanup();
}

/* With a cluster the store is the arbiter (docs/ha.md, "Pool
 * allocations"): a device the store names takes the store's address over
 * its file's; an address the store gives another device (here x, of
 * another gateway's policy) is given to none of ours; the order of the
 * store's entries does not matter. */
TEST(alloc_shared_store_wins_over_file)
{
	struct xb_alloc_shared sh[2] = { { .name = "b", .family = AF_INET },
					 { .name = "x", .family = AF_INET } };
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char err[1024], state[128], a1[16], c1[16];

	inet_pton(AF_INET, "198.51.100.4", sh[0].addr);
	inet_pton(AF_INET, "198.51.100.2", sh[1].addr);
	setup(POOL4, DEV("a", K22) "," DEV("b", K33) "," DEV("c", K44));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	CHECK_STR(addr4(p, "c"), "198.51.100.4");
	xb_policy_free(p);
	snprintf(state, sizeof(state), "%s/state/addresses", dir);
	for (int round = 0; round < 2; round++) {
		struct xb_alloc_shared v[2] = { sh[round], sh[1 - round] };

		p = load();
		CHECK_INT(xb_policy_allocate_shared(p, state, v, 2, &errs), ==, 0);
		CHECK_STR(addr4(p, "b"), "198.51.100.4");
		xb_policy_free(p);
		/* b given two addresses by the store (two gateways each won one):
		 * the lower, in either order. */
		struct xb_alloc_shared w[3] = { v[0], v[1], { .name = "b", .family = AF_INET } };

		inet_pton(AF_INET, "198.51.100.9", w[2].addr);
		if (round)
			w[0] = w[2], w[2] = v[0];
		p = load();
		CHECK_INT(xb_policy_allocate_shared(p, state, w, 3, &errs), ==, 0);
		CHECK_STR(addr4(p, "b"), "198.51.100.4");
		CHECK(strcmp(addr4(p, "a"), "198.51.100.2") && strcmp(addr4(p, "c"), "198.51.100.2"));
		CHECK(strcmp(addr4(p, "a"), addr4(p, "c")) && strcmp(addr4(p, "c"), "198.51.100.4"));
		if (!round) {
			snprintf(a1, sizeof(a1), "%s", addr4(p, "a"));
			snprintf(c1, sizeof(c1), "%s", addr4(p, "c"));
		} else {
			CHECK_STR(addr4(p, "a"), a1);
			CHECK_STR(addr4(p, "c"), c1);
		}
		xb_policy_free(p);
	}
	xb_errors_free(&errs);
	cleanup();
}

TEST(alloc_fixed_address_wins_over_state)
{
	struct xb_policy *p;
	char err[1024];

	setup(POOL4, DEV("a", K22));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "a"), "198.51.100.2");
	xb_policy_free(p);
	set_devices(POOL4, DEV("a", K22) ", { name = \"b\"; public_key = \"" K33 "\"; address4 = \"198.51.100.2\"; }");
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "b"), "198.51.100.2");
	CHECK_STR(addr4(p, "a"), "198.51.100.3");
	xb_policy_free(p);
	/* The fixed address is recorded: b keeps it once the policy drops it. */
	set_devices(POOL4, DEV("a", K22) "," DEV("b", K33));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK_STR(addr4(p, "b"), "198.51.100.2");
	CHECK_STR(addr4(p, "a"), "198.51.100.3");
	xb_policy_free(p);
	cleanup();
}

TEST(alloc_ipv6)
{
	struct xb_policy *p;
	char err[1024], a[INET6_ADDRSTRLEN];

	setup("pool6 = \"2001:db8:100::/64\";", DEV("a", K22) "," DEV("b", K33));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, 0);
	CHECK(!p->devices[0].has4 && p->devices[0].has6);
	inet_ntop(AF_INET6, &p->devices[1].address6, a, sizeof(a));
	CHECK_STR(a, "2001:db8:100::3");
	xb_policy_free(p);
	cleanup();
}

TEST(alloc_pool_exhausted)
{
	struct xb_policy *p;
	char err[1024];

	/* A /30: .1 is the gateway's, .2 the only one left. */
	setup("pool4 = \"198.51.100.0/30\";", DEV("a", K22) "," DEV("b", K33) "," DEV("c", K44));
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, -1);
	CHECK(strstr(err, "xb.conf:3: device \"b\": no free address left in pool4 "
			  "198.51.100.0/30 (2 devices without one)\n") != NULL);
	xb_policy_free(p);
	cleanup();
}

TEST(alloc_bad_state_file)
{
	struct xb_policy *p;
	char err[1024];

	setup(POOL4, DEV("a", K22));
	CHECK(mkdir(strcat(strcpy(err, dir), "/state"), 0755) == 0);
	put_file("state/addresses", "# comment\n\na 198.51.100.9\nb\nc 1.2.3.4.5\n", 0644);
	CHECK_INT(allocate(&p, err, sizeof(err)), ==, -1);
	CHECK(strstr(err, "/state/addresses:4: not \"NAME ADDRESS\" or \"- ADDRESS UNTIL\"\n") != NULL);
	CHECK(strstr(err, "/state/addresses:5: not \"NAME ADDRESS\" or \"- ADDRESS UNTIL\"\n") != NULL);
	xb_policy_free(p);
	cleanup();
}

/* The map against an array that says which of 512 keys are present. */
TEST(map_matches_naive_reference)
{
	static uint32_t keys[512];
	int present[512] = { 0 };
	struct xb_map m = { 0 };
	uint32_t v, old;

	srandom(4);
	for (uint32_t i = 0; i < 512; i++)
		keys[i] = i * 2654435761u;
	for (int op = 0; op < 200000; op++) {
		uint32_t k = (uint32_t)random() % 512;

		switch (random() % 3) {
		case 0:
			CHECK_INT(xbp_map_put(&m, &keys[k], 4, k, &old), ==, !present[k]);
			if (present[k])
				CHECK_INT(old, ==, k);
			present[k] = 1;
			break;
		case 1:
			xbp_map_del(&m, &keys[k], 4);
			present[k] = 0;
			break;
		default:
			CHECK_INT(xbp_map_get(&m, &keys[k], 4, &v), ==, present[k]);
			if (present[k])
				CHECK_INT(v, ==, k);
		}
	}
	for (uint32_t k = 0; k < 512; k++)
		CHECK_INT(xbp_map_get(&m, &keys[k], 4, &v), ==, present[k]);
	xbp_map_free(&m);
}

static struct xb_prefix pfx(const char *s)
{
	struct xb_prefix p;

	CHECK(xb_prefix_parse(&p, s));
	return p;
}

TEST(prefix_arithmetic)
{
	struct xb_prefix a = pfx("198.51.100.0/24"), b = pfx("198.51.100.200/30");
	struct xb_prefix c = pfx("198.51.101.0/24"), h = pfx("198.51.100.7/24");
	struct xb_prefix six = pfx("2001:db8::/126");
	uint8_t addr[16];
	char buf[64];

	CHECK(xbp_prefix_in(&a, &b) && !xbp_prefix_in(&b, &a));
	CHECK(xbp_prefix_overlap(&a, &b) && xbp_prefix_overlap(&b, &a));
	CHECK(!xbp_prefix_overlap(&a, &c));
	CHECK(xbp_prefix_host_bits(&h) && !xbp_prefix_host_bits(&a));
	xbp_prefix_mask(&h);
	xbp_prefix_format(buf, sizeof(buf), &h);
	CHECK_STR(buf, "198.51.100.0/24");
	CHECK(!xbp_pool_nth(&a, 0, addr));		/* network */
	CHECK(xbp_pool_nth(&a, 1, addr) && addr[3] == 1);
	CHECK(xbp_pool_nth(&a, 254, addr) && addr[3] == 254);
	CHECK(!xbp_pool_nth(&a, 255, addr));		/* broadcast */
	CHECK(!xbp_pool_nth(&a, 256, addr));		/* outside */
	CHECK(xbp_pool_nth(&six, 3, addr) && addr[15] == 3);	/* no broadcast in IPv6 */
	CHECK(!xbp_pool_nth(&six, 4, addr));
	CHECK(xbp_addr_reserved(&six, six.addr));
}

TEST(errors_sorted_by_file_then_line)
{
	struct xb_errors e = { 0 };
	char out[512] = "";
	FILE *f = fmemopen(out, sizeof(out), "w");

	xb_errors_file(&e, "main.conf");
	xb_errors_add(&e, "z.conf", 1, "third file");
	xb_errors_add(&e, "main.conf", 9, "second");
	xb_errors_add(&e, "a.conf", 2, "unregistered, last");
	xb_errors_file(&e, "z.conf");
	xb_errors_add(&e, "main.conf", 3, "first");
	xb_errors_add(&e, "main.conf", 9, "same line, found later");
	xb_errors_add(&e, "main.conf", 0, "the whole file");
	xb_errors_print(&e, f);
	fclose(f);
	CHECK_STR(out, "main.conf: the whole file\n"
		       "main.conf:3: first\n"
		       "main.conf:9: second\n"
		       "main.conf:9: same line, found later\n"
		       "z.conf:1: third file\n"
		       "a.conf:2: unregistered, last\n");
	xb_errors_free(&e);
}

TEST(suggestions)
{
	static const char *const keys[] = { "listen_port", "pool4", "pool6", "address4", NULL };

	CHECK_STR(xbp_suggest("lisen_port", keys, SIZE_MAX), "listen_port");
	CHECK_STR(xbp_suggest("adress4", keys, SIZE_MAX), "address4");
	CHECK_STR(xbp_suggest("pool", keys, SIZE_MAX), "pool4");
	CHECK(xbp_suggest("mystery", keys, SIZE_MAX) == NULL);
}

/* GRE tunnels: the model the daemon gets (families, key forms, defaults,
 * MTU by outer family), and the greif settings built from it. */
TEST(gre_tunnels)
{
	const struct xb_tunnel *t;
	struct xb_policy *p;
	uint8_t a[16];

	setup("pool4 = \"198.51.100.0/24\";", "");
	put_file("xb.conf",
		 "gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"
		 "tunnels = (\n"
		 "  { name = \"g4\"; type = \"gre\"; local = \"192.0.2.1\"; remote = \"192.0.2.2\";\n"
		 "    key = \"10.0.0.1\"; sequence = true; address4 = \"192.0.2.9/30\"; },\n"
		 "  { name = \"g6\"; type = \"gre\"; local = \"2001:db8::1\"; remote = \"partner.example\";\n"
		 "    key = 7; keepalive = 0; address6 = \"2001:db8:100::1/64\"; }\n"
		 ");\n", 0644);
	p = load();
	CHECK((t = xb_policy_tunnel_by_name(p, "g4")) != NULL);
	CHECK_INT(t->type, ==, XB_TUNNEL_GRE);
	CHECK_INT(t->gre.family, ==, AF_INET);
	inet_pton(AF_INET, "192.0.2.2", a);
	CHECK(!t->gre.remote_is_name && !memcmp(&t->gre.remote_addr, a, 4));
	CHECK(t->gre.has_key && t->gre.key == 0x0a000001);
	CHECK(t->gre.sequence && !t->gre.checksum);
	CHECK_INT(t->gre.keepalive, ==, 10);
	CHECK_INT(t->gre.keepalive_retries, ==, 3);
	CHECK_INT(t->mtu, ==, 1468);	/* 1500 - 20 - 4 - key - sequence: no outer fragments */
	CHECK_INT(t->n_allowed_ips, ==, 0);	/* WireGuard's, not filled in */
	CHECK((t = xb_policy_tunnel_by_name(p, "g6")) != NULL);
	CHECK_INT(t->gre.family, ==, AF_INET6);
	CHECK(t->gre.remote_is_name);
	CHECK_STR(t->gre.remote, "partner.example");
	CHECK_INT(t->gre.key, ==, 7);
	CHECK_INT(t->gre.keepalive, ==, 0);
	CHECK_INT(t->mtu, ==, 1452);	/* 1500 - 40 - 4 - key */
	xb_policy_free(p);
	cleanup();
}

/* Errors of loading the policy, sorted, one string. */
static void load_errors(char *out, size_t len)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[128];
	FILE *f = fmemopen(out, len, "w");

	snprintf(path, sizeof(path), "%s/xb.conf", dir);
	p = xb_policy_load(path, &errs);
	CHECK(p == NULL);
	xb_errors_print(&errs, f);
	fclose(f);
	xb_errors_free(&errs);
}

#define LISTS_GW "gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\"; };\n"

/* A list is read relative to the policy's directory (not the working
 * directory), once however many rules name it and however it is spelt;
 * its prefixes keep file order and are counted by family. */
TEST(to_lists_read_once_shared)
{
	const struct xb_prefix_list *pl;
	const struct xb_rule *r;
	struct xb_policy *p;
	char fmt[64], cwd[256];

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	setup(POOL4, "");
	CHECK(mkdir(strcat(strcpy(fmt, dir), "/l"), 0755) == 0);
	put_file("l/a.txt", "# a\n203.0.113.0/24\n\n 2001:db8:cafe::/48 # v6\n198.51.100.7\n", 0644);
	put_file("l/b.txt", "2001:db8::/32\n", 0644);
	put_file("xb.conf", LISTS_GW "rules = (\n"
		 "  { name = \"r1\"; to_lists = [ \"l/a.txt\", \"l/b.txt\" ]; action = \"deny\"; },\n"
		 "  { name = \"r2\"; to = [ \"192.0.2.0/24\" ]; to_lists = [ \"./l/../l/a.txt\" ]; action = \"deny\"; }\n"
		 ");\n", 0644);
	CHECK(chdir("/") == 0);
	p = load();
	CHECK_INT(p->n_lists, ==, 2);
	r = xb_policy_rule_by_name(p, "r1");
	CHECK_INT(r->n_to_lists, ==, 2);
	CHECK_STR(r->to_lists[0].name, "l/a.txt");
	CHECK_INT(r->to_lists[0].line, ==, 3);
	pl = &p->lists[r->to_lists[0].idx];
	CHECK(pl->resolved[0] == '/');
	CHECK_INT(pl->n, ==, 3);
	CHECK_INT(pl->n4, ==, 2);
	CHECK_INT(pl->n6, ==, 1);
	xbp_prefix_format(fmt, sizeof(fmt), &pl->v[1]);
	CHECK_STR(fmt, "2001:db8:cafe::/48");
	xbp_prefix_format(fmt, sizeof(fmt), &pl->v[2]);
	CHECK_STR(fmt, "198.51.100.7/32");
	r = xb_policy_rule_by_name(p, "r2");
	CHECK_STR(r->to_lists[0].name, "./l/../l/a.txt");	/* as written, for --print */
	CHECK_INT(r->to_lists[0].idx, ==, xb_policy_rule_by_name(p, "r1")->to_lists[0].idx);
	CHECK_INT(r->n_to, ==, 1);				/* `to' stays its own */
	xb_policy_free(p);
	cleanup();
	CHECK(chdir(cwd) == 0);
}

/* Bad lines are FILE:LINE errors of the list file, once per file; an empty
 * list is no error (the rule then matches nothing). */
TEST(to_lists_errors)
{
	char err[2048], want[1024];

	setup(POOL4, "");
	put_file("bad.txt", "203.0.113.0/24\n203.0.113.1/24\nnope\n", 0644);
	put_file("empty.txt", "# nothing yet\n\n", 0644);
	put_file("xb.conf", LISTS_GW "rules = (\n"
		 "  { name = \"r1\"; to_lists = [ \"bad.txt\", \"empty.txt\" ]; action = \"deny\"; },\n"
		 "  { name = \"r2\"; to_lists = [ \"bad.txt\", \"gone.txt\" ]; action = \"deny\"; }\n"
		 ");\n", 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want),
		 "%s/xb.conf:4: rule \"r2\": to_lists `gone.txt': No such file or directory\n"
		 "%s/bad.txt:2: `203.0.113.1/24' has host bits set (did you mean 203.0.113.0/24?)\n"
		 "%s/bad.txt:3: `nope' is not an IPv4 or IPv6 address or prefix\n", dir, dir, dir);
	CHECK_STR(err, want);
	cleanup();
}

/* A list of more than XB_PLIST_MAX prefixes is refused at the first one
 * too many; twenty bad lines end the reading of a file. */
TEST(to_lists_limits)
{
	char err[4096], want[256], *text, *at;
	size_t n = (size_t)XB_PLIST_MAX + 1;

	setup(POOL4, "");
	CHECK((text = malloc(n * 16 + 1)) != NULL);
	at = text;
	for (size_t i = 0; i < n; i++)	/* 10.0.0.0/32 ... distinct hosts */
		at += sprintf(at, "10.%zu.%zu.%zu\n", i >> 16, (i >> 8) & 255, i & 255);
	put_file("big.txt", text, 0644);
	free(text);
	put_file("xb.conf", LISTS_GW "rules = ( { name = \"r\"; to_lists = [ \"big.txt\" ]; action = \"deny\"; } );\n",
		 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want), "%s/big.txt:%zu: more than %u prefixes in one list\n", dir, n,
		 XB_PLIST_MAX);
	CHECK_STR(err, want);

	CHECK((text = calloc(30, 8)) != NULL);
	for (int i = 0; i < 30; i++)
		strcat(text, "x\n");
	put_file("big.txt", text, 0644);
	free(text);
	load_errors(err, sizeof(err));
	CHECK(strstr(err, "big.txt:20: 20 bad lines: the rest of the file is not read\n") != NULL);
	CHECK(strstr(err, "big.txt:21:") == NULL);

	/* not a regular file: refused before it is read */
	put_file("xb.conf", LISTS_GW "rules = ( { name = \"r\"; to_lists = [ \"/dev/zero\", \".\" ]; action = \"deny\"; } );\n",
		 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want), "%s/xb.conf:2: rule \"r\": to_lists `/dev/zero' is not a regular file\n"
		 "%s/xb.conf:2: rule \"r\": to_lists `.' is not a regular file\n", dir, dir);
	CHECK_STR(err, want);
	cleanup();
}

/* A FIFO named as a list is refused, not waited on: opening one for
 * reading blocks until a writer comes, which would hang a load (and a
 * reload of the running daemon) for good. SIGALRM fails the test if the
 * load blocks. */
TEST(to_lists_fifo_not_waited_on)
{
	char err[1024], want[512], fifo[128];

	setup(POOL4, "");
	snprintf(fifo, sizeof(fifo), "%s/pipe.txt", dir);
	CHECK(mkfifo(fifo, 0644) == 0);
	put_file("xb.conf", LISTS_GW "rules = ( { name = \"r\"; to_lists = [ \"pipe.txt\" ]; action = \"deny\"; } );\n",
		 0644);
	alarm(10);
	load_errors(err, sizeof(err));
	alarm(0);
	snprintf(want, sizeof(want), "%s/xb.conf:2: rule \"r\": to_lists `pipe.txt' is not a regular file\n",
		 dir);
	CHECK_STR(err, want);
	cleanup();
}

/* The same for the policy's other files: an included file, a posture
 * serial_file, and the policy itself. */
TEST(policy_files_fifo_not_waited_on)
{
	char err[1024], want[768], fifo[128];
	struct xb_errors errs = { 0 };

	setup(POOL4, "");
	snprintf(fifo, sizeof(fifo), "%s/pipe.conf", dir);
	CHECK(mkfifo(fifo, 0644) == 0);
	put_file("xb.conf", LISTS_GW "include = [ \"pipe.conf\" ];\n"
		 "profiles = ( { name = \"p\"; checks = ( { serial_file = \"pipe.conf\"; } ); } );\n", 0644);
	alarm(10);
	load_errors(err, sizeof(err));
	alarm(0);
	snprintf(want, sizeof(want), "%s/xb.conf:3: profile \"p\": check 1: serial_file `pipe.conf' is not a regular file\n"
		 "%s/pipe.conf: not a regular file\n", dir, dir);
	CHECK_STR(err, want);

	alarm(10);
	CHECK(xb_policy_load(fifo, &errs) == NULL);
	alarm(0);
	CHECK(errs.n == 1 && !strcmp(errs.v[0].file, fifo) && errs.v[0].line == 0 &&
	      !strcmp(errs.v[0].msg, "not a regular file"));
	xb_errors_free(&errs);
	cleanup();
}

/* A line longer than XB_PLIST_LINE_MAX is an error of its own, and reading
 * goes on after it: a list file is never read into memory a line at a
 * time however long the line (a file without newlines would otherwise be
 * held whole, in the running daemon on a reload). */
TEST(to_lists_long_line)
{
	char err[1024], want[512], *text;
	size_t n = 3 * XB_PLIST_LINE_MAX;

	setup(POOL4, "");
	CHECK((text = malloc(n + 64)) != NULL);
	strcpy(text, "203.0.113.0/24\n# ");
	memset(text + strlen(text), 'x', n);
	strcpy(text + 17 + n, "\nnope\n198.51.100.0/24");	/* no newline at the end */
	put_file("long.txt", text, 0644);
	free(text);
	put_file("xb.conf", LISTS_GW "rules = ( { name = \"r\"; to_lists = [ \"long.txt\" ]; action = \"deny\"; } );\n",
		 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want), "%s/long.txt:2: a line longer than %u bytes\n"
		 "%s/long.txt:3: `nope' is not an IPv4 or IPv6 address or prefix\n", dir,
		 XB_PLIST_LINE_MAX, dir);
	CHECK_STR(err, want);
	cleanup();
}

#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n"
#define CLUSTER_TLS(eps, files) \
	LISTS_GW "cluster = { name = \"eu\"; node = \"gw-a\"; endpoints = [ " eps " ]; " files " };\n"

/* The cluster's TLS files (docs/ha.md, "TLS"): resolved against the
 * policy's directory, not the working directory; https:// sets tls; with
 * http:// there are none. */
TEST(cluster_tls_files)
{
	char cwd[256], want[128];
	struct xb_policy *p;

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	setup(POOL4, "");
	put_file("ca.pem", CA_PEM, 0644);
	put_file("client.pem", "subject=gw-a\n" CA_PEM, 0644);
	put_file("client.key", KEY_PEM, 0600);
	put_file("xb.conf", CLUSTER_TLS("\"https://192.0.2.1:2379\", \"https://192.0.2.2:2379/\"",
					"ca_file = \"ca.pem\"; cert_file = \"client.pem\"; "
					"key_file = \"client.key\";"), 0644);
	CHECK(chdir("/") == 0);
	p = load();
	CHECK(p->cluster.tls);
	CHECK_INT(p->cluster.n_endpoints, ==, 2);
	CHECK_STR(p->cluster.ca_file, "ca.pem");
	snprintf(want, sizeof(want), "%s/ca.pem", dir);
	CHECK_STR(p->cluster.ca_resolved, want);
	snprintf(want, sizeof(want), "%s/client.pem", dir);
	CHECK_STR(p->cluster.cert_resolved, want);
	snprintf(want, sizeof(want), "%s/client.key", dir);
	CHECK_STR(p->cluster.key_resolved, want);
	xb_policy_free(p);
	/* A CA alone (members that do not ask for a client certificate). */
	put_file("xb.conf", CLUSTER_TLS("\"https://192.0.2.1:2379\"", "ca_file = \"ca.pem\";"), 0644);
	p = load();
	CHECK(p->cluster.tls && p->cluster.ca_resolved && !p->cluster.cert_resolved &&
	      !p->cluster.key_resolved);
	xb_policy_free(p);
	put_file("xb.conf", CLUSTER_TLS("\"http://192.0.2.1:2379\"", ""), 0644);
	p = load();
	CHECK(!p->cluster.tls && !p->cluster.ca_file && !p->cluster.ca_resolved);
	xb_policy_free(p);
	CHECK(chdir(cwd) == 0);
	cleanup();
}

/* Every TLS mistake is reported, each naming its option and file, and a
 * key file's content never appears in a message (here: readable by
 * others, and not a PEM key). A directory where a file belongs is an
 * error, not a crash. */
TEST(cluster_tls_errors)
{
	char err[2048], want[1024], sub[128];

	setup(POOL4, "");
	put_file("ca.pem", CA_PEM, 0644);
	put_file("open.key", KEY_PEM, 0644);
	put_file("plain.key", "SECRETKEYBYTES\n", 0600);
	CHECK(mkdir(strcat(strcpy(sub, dir), "/d"), 0755) == 0);
	put_file("xb.conf", CLUSTER_TLS("\"https://192.0.2.1:2379\"", "cert_file = \"d\"; key_file = \"open.key\";"),
		 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want),
		 "%s/xb.conf:2: cluster: cert_file `d': Is a directory\n"
		 "%s/xb.conf:2: cluster: key_file `open.key' is accessible by group or others (mode 0644); chmod 600 it\n"
		 "%s/xb.conf:2: cluster: https:// endpoints need ca_file (the CA that signed the members' certificates)\n",
		 dir, dir, dir);
	CHECK_STR(err, want);
	put_file("xb.conf", CLUSTER_TLS("\"https://192.0.2.1:2379\", \"http://192.0.2.2:2379\"",
					"ca_file = \"ca.pem\"; cert_file = \"ca.pem\"; key_file = \"plain.key\";"),
		 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want),
		 "%s/xb.conf:2: cluster: endpoints mix http:// and https:// URLs; use one scheme for every member\n"
		 "%s/xb.conf:2: cluster: key_file `plain.key' holds no PEM private key\n", dir, dir);
	CHECK_STR(err, want);
	put_file("xb.conf", CLUSTER_TLS("\"http://192.0.2.1:2379\"", "ca_file = \"missing.pem\";"), 0644);
	load_errors(err, sizeof(err));
	snprintf(want, sizeof(want),
		 "%s/xb.conf:2: cluster: ca_file `missing.pem': No such file or directory\n"
		 "%s/xb.conf:2: cluster: ca_file is for https:// endpoints; these are http://\n", dir, dir);
	CHECK_STR(err, want);
	CHECK(strstr(err, "SECRETKEYBYTES") == NULL);
	cleanup();
}
