/* xborderctl device: enrolment from the operator's side (device.h). */
#include "ctl/device.h"
#include "tunnel/wgconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <png.h>
#include <qrencode.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QR_MARGIN 4	/* modules of quiet zone (ISO/IEC 18004) */
#define QR_SCALE 6	/* pixels a module in the PNG */

void xb_device_keypair(uint8_t priv[static 32], uint8_t pub[static 32])
{
	randombytes_buf(priv, 32);
	priv[0] &= 248;
	priv[31] &= 127;
	priv[31] |= 64;
	crypto_scalarmult_base(pub, priv);
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* AllowedIPs: the whole tunnel, the pools, or the pools and prefixes. */
static bool allowed_ips(FILE *f, json_t *gw, const char *allowed, const char **err)
{
	const char *p4 = str(gw, "pool4"), *p6 = str(gw, "pool6");
	char *list, *save = NULL;
	bool ok = true;

	if (!strcmp(allowed, "full")) {
		fputs("AllowedIPs = 0.0.0.0/0, ::/0\n", f);
		return true;
	}
	fprintf(f, "AllowedIPs = %s%s%s", p4 ? p4 : "", p4 && p6 ? ", " : "", p6 ? p6 : "");
	if (!strcmp(allowed, "pool")) {
		fputc('\n', f);
		return true;
	}
	if (!(list = strdup(allowed))) {
		*err = "out of memory";
		return false;
	}
	for (char *t = strtok_r(list, ",", &save); ok && t; t = strtok_r(NULL, ",", &save)) {
		struct xb_prefix pf;

		t += strspn(t, " ");
		if (!xb_prefix_parse(&pf, t)) {
			*err = "--allowed-ips: not full, pool or a comma-separated list of prefixes";
			ok = false;
		} else {
			fprintf(f, ", %s", t);
		}
	}
	fputc('\n', f);
	free(list);
	return ok;
}

char *xb_device_wgquick(json_t *show, const char *priv, const char *allowed, const char *endpoint,
			const char **err)
{
	json_t *dv = json_object_get(show, "device"), *gw = json_object_get(show, "gateway"), *v;
	const char *a4 = str(dv, "address4"), *a6 = str(dv, "address6");
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	if (!endpoint)
		endpoint = str(gw, "endpoint");
	if (!str(dv, "name") || !str(gw, "public_key") || (!a4 && !a6)) {
		*err = "unexpected result from xborderd";
		return NULL;
	}
	if (!endpoint) {
		*err = "no endpoint: set enrol_endpoint in the policy's gateway { } or give --endpoint HOST:PORT";
		return NULL;
	}
	if (!(f = open_memstream(&buf, &len))) {
		*err = "out of memory";
		return NULL;
	}
	fprintf(f, "# xborder device \"%s\"\n[Interface]\n", str(dv, "name"));
	if (priv)
		fprintf(f, "PrivateKey = %s\n", priv);
	else
		fputs("PrivateKey = (not stored by xborder: the device's own, or the one printed at "
		      "enrolment)\n", f);
	fprintf(f, "Address = %s%s%s%s%s\n", a4 ? a4 : "", a4 ? "/32" : "", a4 && a6 ? ", " : "",
		a6 ? a6 : "", a6 ? "/128" : "");
	json_array_foreach(json_object_get(gw, "dns"), i, v)
		fprintf(f, "%s%s", i ? ", " : "DNS = ", json_string_value(v));
	fputs(json_array_size(json_object_get(gw, "dns")) ? "\n" : "", f);
	fprintf(f, "\n[Peer]\nPublicKey = %s\nEndpoint = %s\n", str(gw, "public_key"), endpoint);
	if (!allowed_ips(f, gw, allowed, err)) {
		fclose(f);
		sodium_memzero(buf, len);
		free(buf);
		return NULL;
	}
	fputs("PersistentKeepalive = 25\n", f);
	if (fclose(f)) {
		*err = "out of memory";
		free(buf);
		return NULL;
	}
	return buf;
}

static QRcode *encode(const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);

	if (!q)
		fprintf(stderr, "xborderctl: QR code: %s\n", strerror(errno));
	return q;
}

static bool dark(const QRcode *q, int x, int y)
{
	x -= QR_MARGIN;
	y -= QR_MARGIN;
	return x >= 0 && y >= 0 && x < q->width && y < q->width && (q->data[y * q->width + x] & 1);
}

int xb_qr_print(FILE *f, const char *text)
{
	/* Light modules are lit characters (a dark terminal's background is
	 * the code's dark): index dark(top) * 2 + dark(bottom). */
	static const char *const cell[4] = { "\u2588", "\u2580", "\u2584", " " };
	QRcode *q = encode(text);
	int w;

	if (!q)
		return -1;
	w = q->width + 2 * QR_MARGIN;
	for (int y = 0; y < w; y += 2) {
		for (int x = 0; x < w; x++)
			fputs(cell[dark(q, x, y) * 2 + (y + 1 < w ? dark(q, x, y + 1) : 1)], f);
		fputc('\n', f);
	}
	QRcode_free(q);
	return 0;
}

int xb_qr_png(const char *path, const char *text)
{
	QRcode *q = encode(text);
	png_structp png = NULL;
	png_infop info = NULL;
	png_bytep row = NULL;
	FILE *f = NULL;
	int w, fd, ret = -1;

	if (!q)
		return -1;
	w = (q->width + 2 * QR_MARGIN) * QR_SCALE;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    !(f = fdopen(fd, "wb"))) {
		fprintf(stderr, "xborderctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!(row = malloc((size_t)w)) ||
	    !(png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL)) ||
	    !(info = png_create_info_struct(png))) {
		fprintf(stderr, "xborderctl: %s: out of memory\n", path);
		goto out;
	}
	if (setjmp(png_jmpbuf(png))) {
		fprintf(stderr, "xborderctl: %s: writing the PNG failed\n", path);
		goto out;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)w, 8, PNG_COLOR_TYPE_GRAY,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < w; y++) {
		for (int x = 0; x < w; x++)
			row[x] = dark(q, x / QR_SCALE, y / QR_SCALE) ? 0 : 255;
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	ret = 0;
out:
	if (png)
		png_destroy_write_struct(&png, info ? &info : NULL);
	if (f && fclose(f) && !ret) {
		fprintf(stderr, "xborderctl: %s: %s\n", path, strerror(errno));
		ret = -1;
	}
	free(row);
	QRcode_free(q);
	return ret;
}

/* ---- the subcommands ---- */

struct opts {
	char groups[1024];
	const char *key, *expires, *allowed, *endpoint, *png;
	int qr;		/* -1 never, 0 on a tty, 1 always */
	bool config;
};

static int usage(void)
{
	fputs("usage: xborderctl device add NAME --group G[,G...] [--public-key KEY] [--expires TIME]\n"
	      "                         [--allowed-ips full|pool|PREFIX,...] [--endpoint HOST:PORT]\n"
	      "                         [-o FILE.png] [--qr|--no-qr]\n"
	      "       xborderctl device remove NAME\n"
	      "       xborderctl device show NAME [--config [--allowed-ips ...] [--endpoint ...] "
	      "[-o FILE.png] [--qr|--no-qr]]\n", stderr);
	return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "group", required_argument, NULL, 'g' },
		{ "public-key", required_argument, NULL, 'k' },
		{ "expires", required_argument, NULL, 'e' },
		{ "allowed-ips", required_argument, NULL, 'a' },
		{ "endpoint", required_argument, NULL, 'E' },
		{ "qr", no_argument, NULL, 'Q' },
		{ "no-qr", no_argument, NULL, 'N' },
		{ "config", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .allowed = "full", .expires = "" };
	optind = 0;
	while ((c = getopt_long(argc, argv, "+o:", lo, NULL)) != -1) {
		switch (c) {
		case 'g':
			if (strlen(o->groups) + strlen(optarg) + 2 > sizeof(o->groups))
				return usage();
			strcat(strcat(o->groups, *o->groups ? "," : ""), optarg);
			break;
		case 'k': o->key = optarg; break;
		case 'e': o->expires = optarg; break;
		case 'a': o->allowed = optarg; break;
		case 'E': o->endpoint = optarg; break;
		case 'o': o->png = optarg; break;
		case 'Q': o->qr = 1; break;
		case 'N': o->qr = -1; break;
		case 'c': o->config = true; break;
		default: return usage();
		}
	}
	return optind == argc ? 0 : usage();
}

/* The wg-quick file on stdout (in -j: the result with "config"), its QR
 * code on a terminal and/or as a PNG. */
static int put_config(json_t *res, const char *priv, const struct opts *o, int json)
{
	const char *err = NULL;
	char *text = xb_device_wgquick(res, priv, o->allowed, o->endpoint, &err);
	int ret = 0;

	if (!text) {
		fprintf(stderr, "xborderctl: %s\n", err);
		return 1;
	}
	if (json) {
		json_object_set_new(res, "config", json_string(text));
		json_dumpf(res, stdout, json > 1 ? JSON_INDENT(2) : JSON_COMPACT);
		putchar('\n');
		json_object_del(res, "config");
	} else {
		fputs(text, stdout);
		if (o->qr > 0 || (o->qr == 0 && isatty(STDOUT_FILENO))) {
			putchar('\n');
			ret |= xb_qr_print(stdout, text) ? 1 : 0;
		}
	}
	if (o->png)
		ret |= xb_qr_png(o->png, text) ? 1 : 0;
	if (fflush(stdout) || ferror(stdout))
		ret = 1;
	sodium_memzero(text, strlen(text));
	free(text);
	return ret;
}

static int add(int argc, char **argv, int json, xb_ctl_ask_fn ask, void *ctx)
{
	uint8_t priv[32], pub[32];
	char pb[WG_KEY_B64_LEN + 1], kb[WG_KEY_B64_LEN + 1], *args[4];
	struct opts o;
	json_t *res;
	int ret;

	if (argc < 2 || (ret = parse(argc - 1, argv + 1, &o)))
		return argc < 2 ? usage() : ret;
	if (!*o.groups) {
		fputs("xborderctl: device add: --group is required\n", stderr);
		return 2;
	}
	if (o.key) {
		snprintf(kb, sizeof(kb), "%s", o.key);
	} else {
		xb_device_keypair(priv, pub);
		wg_key_to_base64(kb, pub);
		wg_key_to_base64(pb, priv);
		sodium_memzero(priv, sizeof(priv));
	}
	args[0] = argv[1];
	args[1] = kb;
	args[2] = o.groups;
	args[3] = (char *)o.expires;
	if (!(res = ask(ctx, "device-add", args, 4))) {
		sodium_memzero(pb, sizeof(pb));
		return 1;
	}
	ret = put_config(res, o.key ? NULL : pb, &o, json);
	sodium_memzero(pb, sizeof(pb));
	json_decref(res);
	return ret;
}

static void show_text(json_t *res)
{
	json_t *dv = json_object_get(res, "device"), *g;
	size_t i;

	printf("device: %s\n  public key: %s\n  groups:", str(dv, "name"), str(dv, "public_key"));
	json_array_foreach(json_object_get(dv, "groups"), i, g)
		printf(" %s", json_string_value(g));
	printf("\n  address4: %s\n  address6: %s\n  expires: %s%s\n  source: %s%s\n",
	       str(dv, "address4") ?: "-", str(dv, "address6") ?: "-", str(dv, "expires") ?: "never",
	       json_is_true(json_object_get(dv, "expired")) ? " (expired: refused)" : "",
	       str(dv, "source") ?: "-", json_is_true(json_object_get(dv, "enrolled")) ? " (enrolled)" : "");
}

int xb_device_main(int argc, char **argv, int json, xb_ctl_ask_fn ask, void *ctx)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct opts o;
	json_t *res;
	int ret;

	if (sodium_init() < 0) {
		fputs("xborderctl: libsodium cannot start\n", stderr);
		return 1;
	}
	if (!strcmp(sub, "add"))
		return add(argc - 1, argv + 1, json, ask, ctx);
	if ((strcmp(sub, "remove") && strcmp(sub, "show")) || argc < 3)
		return usage();
	if ((ret = parse(argc - 2, argv + 2, &o)))
		return ret;
	res = ask(ctx, !strcmp(sub, "remove") ? "device-remove" : "device", argv + 2, 1);
	if (!res)
		return 1;
	if (o.config && !strcmp(sub, "show"))
		ret = put_config(res, NULL, &o, json);
	else if (json)
		ret = json_dumpf(res, stdout, json > 1 ? JSON_INDENT(2) : JSON_COMPACT) || putchar('\n') == EOF;
	else if (!strcmp(sub, "remove"))
		printf("removed device %s; %s\n", argv[2], str(res, "reload") ?: "");
	else
		show_text(res);
	json_decref(res);
	return ret;
}
