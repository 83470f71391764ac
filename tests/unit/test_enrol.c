/* Enrolment and expiry: the time format of `expires', the judgement, the
 * enrolment file (read through gateway.enrol_file, written by
 * xb_enrol_text and read back the same), the wg-quick file xborderctl
 * prints, and the key pair it makes. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <qrencode.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/device.h"
#include "gateway/enrol.h"
#include "policy/policy.h"
#include "tests/lib/check.h"

#define K11 "ERERERERERERERERERERERERERERERERERERERERERE="
#define K22 "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="

static char dir[64];

static void put(const char *name, const char *text, mode_t mode)
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

static void setup(void)
{
	strcpy(dir, "/tmp/xb-test-enrol.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	put("gw.key", K11 "\n", 0600);
	put("xb.conf", "gateway = { private_key_file = \"gw.key\"; pool4 = \"198.51.100.0/24\";\n"
		       "  enrol_file = \"enrolled.conf\"; enrol_endpoint = \"192.0.2.1:51820\"; };\n"
		       "groups = [ \"g\", \"h\" ];\n", 0644);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* The policy, or NULL with its errors in errs_out. */
static struct xb_policy *load(char *errs_out, size_t len)
{
	struct xb_errors errs = { 0 };
	struct xb_policy *p;
	char path[128];
	FILE *f = fmemopen(errs_out, len, "w");

	snprintf(path, sizeof(path), "%s/xb.conf", dir);
	p = xb_policy_load(path, &errs);
	xb_errors_print(&errs, f);
	fclose(f);
	xb_errors_free(&errs);
	return p;
}

TEST(time_parse)
{
	int64_t t = 0;
	char buf[21];

	CHECK(xb_time_parse("1970-01-01T00:00:00Z", &t) && t == 0);
	CHECK(xb_time_parse("2027-01-31T00:00:00Z", &t) && t == 1801353600);
	CHECK(xb_time_parse("2027-01-31T08:00:00+08:00", &t) && t == 1801353600);
	CHECK(xb_time_parse("2027-01-30t19:30:00-04:30", &t) && t == 1801353600);
	CHECK(xb_time_parse("2028-02-29T23:59:59z", &t));		/* a leap year */
	xb_time_format(buf, t);
	CHECK_STR(buf, "2028-02-29T23:59:59Z");
	xb_time_format(buf, 1801353600);
	CHECK_STR(buf, "2027-01-31T00:00:00Z");
	static const char *const bad[] = {
		"", "2027-01-31", "2027-01-31T00:00:00", "2027-01-31 00:00:00Z",
		"2027-02-29T00:00:00Z", "2027-04-31T00:00:00Z", "2027-13-01T00:00:00Z",
		"2027-01-31T24:00:00Z", "2027-01-31T00:60:00Z", "2027-01-31T00:00:60Z",
		"2027-01-31T00:00:00.5Z", "2027-01-31T00:00:00+8:00", "2027-01-31T00:00:00+24:00",
		"1969-12-31T23:59:59Z", "2027-1-31T00:00:00Z", "2027-01-31T00:00:00ZZ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (xb_time_parse(bad[i], &t)) {
			printf("# accepted `%s'\n", bad[i]);
			CHECK(false);
		}
}

/* Every second of 400 years (a whole Gregorian cycle) in steps of a prime
 * number of seconds formats and parses back to itself. */
TEST(time_round_trip)
{
	char buf[21];
	int64_t back;

	for (int64_t t = 0; t < 12622780800LL; t += 86400 * 3 + 7919) {
		xb_time_format(buf, t);
		if (!xb_time_parse(buf, &back) || back != t) {
			printf("# %lld -> %s -> %lld\n", (long long)t, buf, (long long)back);
			CHECK(false);
		}
	}
}

TEST(expired_judgement)
{
	struct xb_device dv = { .expires = 0 };

	CHECK(!xb_device_expired(&dv, 4000000000LL));		/* no expiry: never */
	dv.expires = 1801353600;
	CHECK(!xb_device_expired(&dv, 1801353599));
	CHECK(xb_device_expired(&dv, 1801353600));		/* from that second on */
	CHECK(xb_device_expired(&dv, 1801353601));
}

/* A missing enrolment file is an empty one; an existing one is read like
 * an include; its devices are marked as its. */
TEST(enrol_file_is_read)
{
	char errs[1024];
	struct xb_policy *p;
	const struct xb_device *d;

	setup();
	p = load(errs, sizeof(errs));
	CHECK(p != NULL);
	CHECK_INT(p->n_devices, ==, 0);
	CHECK(p->gateway.enrol_src == NULL);
	CHECK_STR(p->gateway.enrol_endpoint, "192.0.2.1:51820");
	xb_policy_free(p);

	put("enrolled.conf", "devices = (\n  { name = \"a\"; public_key = \"" K22 "\";\n"
			     "    groups = [ \"g\" ]; expires = \"2027-01-31T00:00:00Z\"; }\n);\n", 0640);
	p = load(errs, sizeof(errs));
	CHECK(p != NULL);
	CHECK_INT(p->n_devices, ==, 1);
	d = xb_policy_device_by_name(p, "a");
	CHECK(d && d->expires == 1801353600 && p->gateway.enrol_src && d->src.file == p->gateway.enrol_src);
	xb_policy_free(p);

	put("enrolled.conf", "devices = (\n  { name = \"a\"; public_key = \"" K22 "\";\n"
			     "    expires = \"tomorrow\"; }\n);\n", 0640);
	CHECK(load(errs, sizeof(errs)) == NULL);
	CHECK(strstr(errs, "/enrolled.conf:3: device \"a\": expires `tomorrow' is not a time") != NULL);
	cleanup();
}

/* What the daemon writes is what it reads back: add, then remove. */
TEST(enrol_text_round_trip)
{
	static const char *const groups[] = { "g", "h" };
	struct xb_enrol_dev add = { .name = "b", .groups = groups, .n_groups = 2,
				    .expires = 1801353600 };
	char errs[1024], path[128];
	struct xb_policy *p;
	const struct xb_device *d;
	char *text;

	setup();
	snprintf(path, sizeof(path), "%s/enrolled.conf", dir);
	put("enrolled.conf", "devices = ( { name = \"a\"; public_key = \"" K22 "\"; "
			     "address4 = \"198.51.100.9\"; } );\n", 0640);
	p = load(errs, sizeof(errs));
	CHECK(p != NULL);
	memset(add.public_key, 0x33, WG_KEY_LEN);
	CHECK((text = xb_enrol_text(p, NULL, &add)) != NULL);
	xb_policy_free(p);
	CHECK_INT(xb_enrol_write(path, text), ==, 0);
	free(text);
	p = load(errs, sizeof(errs));
	if (!p)
		printf("# %s", errs);
	CHECK(p != NULL);
	CHECK_INT(p->n_devices, ==, 2);
	d = xb_policy_device_by_name(p, "a");
	CHECK(d && d->fixed4 && d->address4.s_addr == htonl(0xc6336409) && !d->expires);
	d = xb_policy_device_by_name(p, "b");
	CHECK(d && d->n_groups == 2 && !strcmp(d->groups[1].name, "h") && d->expires == 1801353600);
	CHECK(d && d->public_key[0] == 0x33 && d->src.file == p->gateway.enrol_src);
	CHECK((text = xb_enrol_text(p, "a", NULL)) != NULL);	/* remove a */
	xb_policy_free(p);
	CHECK_INT(xb_enrol_write(path, text), ==, 0);
	free(text);
	p = load(errs, sizeof(errs));
	CHECK(p != NULL && p->n_devices == 1 && (d = xb_policy_device_by_name(p, "b")));
	CHECK(d->n_groups == 2 && d->expires == 1801353600);	/* rewritten as it was */
	CHECK((text = xb_enrol_text(p, "b", NULL)) != NULL);	/* and the last one */
	xb_policy_free(p);
	CHECK_INT(xb_enrol_write(path, text), ==, 0);
	free(text);
	p = load(errs, sizeof(errs));
	CHECK(p != NULL && p->n_devices == 0);
	xb_policy_free(p);
	cleanup();
}

static json_t *show(const char *endpoint)
{
	json_t *j = json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:i, s:[s], s:s}}",
		"device", "name", "phone", "public_key", K22, "address4", "198.51.100.2",
		"gateway", "public_key", K11, "listen_port", 51820, "dns", "198.51.100.1",
		"pool4", "198.51.100.0/24");

	if (endpoint)
		json_object_set_new(json_object_get(j, "gateway"), "endpoint", json_string(endpoint));
	return j;
}

TEST(wgquick_file)
{
	json_t *j = show("192.0.2.1:51820");
	const char *err = NULL;
	char *t;

	t = xb_device_wgquick(j, K22, "full", NULL, &err);
	CHECK_STR(t, "# xborder device \"phone\"\n[Interface]\nPrivateKey = " K22 "\n"
		     "Address = 198.51.100.2/32\nDNS = 198.51.100.1\n\n[Peer]\nPublicKey = " K11 "\n"
		     "Endpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0, ::/0\n"
		     "PersistentKeepalive = 25\n");
	free(t);
	t = xb_device_wgquick(j, NULL, "203.0.113.0/24,2001:db8::/32", "[2001:db8::1]:443", &err);
	CHECK(t && strstr(t, "\nAllowedIPs = 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32\n"));
	CHECK(t && strstr(t, "\nEndpoint = [2001:db8::1]:443\n") && strstr(t, "PrivateKey = (not stored"));
	free(t);
	t = xb_device_wgquick(j, NULL, "pool", NULL, &err);
	CHECK(t && strstr(t, "\nAllowedIPs = 198.51.100.0/24\n"));
	free(t);
	CHECK(xb_device_wgquick(j, NULL, "203.0.113.0/33", NULL, &err) == NULL && strstr(err, "--allowed-ips"));
	json_decref(j);
	j = show(NULL);
	CHECK(xb_device_wgquick(j, NULL, "full", NULL, &err) == NULL && strstr(err, "enrol_endpoint"));
	json_decref(j);
}

/* The terminal's QR code, read back cell by cell (two rows a character),
 * is the encoder's matrix inside a 4-module quiet zone. */
TEST(qr_terminal_is_the_matrix)
{
	static const char *const cell[4] = { "\u2588", "\u2580", "\u2584", " " };
	const char *text = "[Interface]\nPrivateKey = " K22 "\n";
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	char *out = NULL, *s;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	int w, y = 0;

	CHECK(q && f);
	CHECK_INT(xb_qr_print(f, text), ==, 0);
	fclose(f);
	w = q->width + 8;
	for (s = out; *s; y += 2, s++) {
		for (int x = 0; x < w; x++) {
			int c = 0;

			while (c < 4 && strncmp(s, cell[c], strlen(cell[c])))
				c++;
			CHECK(c < 4);
			s += strlen(cell[c]);
			for (int h = 0; h < 2 && y + h < w; h++) {
				int mx = x - 4, my = y + h - 4;
				bool dark = mx >= 0 && my >= 0 && mx < q->width && my < q->width &&
					    (q->data[my * q->width + mx] & 1);

				CHECK_INT((c >> (1 - h)) & 1, ==, dark);
			}
		}
		CHECK(*s == '\n');
	}
	CHECK_INT(y, ==, w + (w & 1));
	free(out);
	QRcode_free(q);
}

TEST(keypair_is_x25519)
{
	uint8_t priv[32], pub[32], want[32];

	CHECK(sodium_init() >= 0);
	for (int i = 0; i < 64; i++) {
		xb_device_keypair(priv, pub);
		CHECK((priv[0] & 7) == 0 && (priv[31] & 0xc0) == 0x40);	/* clamped */
		CHECK(crypto_scalarmult_base(want, priv) == 0);
		CHECK_MEM(pub, want, 32);
	}
}


