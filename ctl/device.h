/* xborderctl device add|remove|show (docs/enrolment.md, xborderctl(8)).
 *
 * The device's key pair is made here, in xborderctl, when no public key is
 * given: only the public key goes to the daemon, the private key appears
 * once, in the wg-quick file printed (and its QR code), and is wiped. */
#ifndef XB_CTL_DEVICE_H
#define XB_CTL_DEVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Asks the daemon: the result (a new reference), or NULL after saying why
 * on stderr. */
typedef json_t *(*xb_ctl_ask_fn)(void *ctx, const char *command, char **args, int n);

/* argv[0] is "device". Returns the exit status (0, 1, 2 usage). */
int xb_device_main(int argc, char **argv, int json, xb_ctl_ask_fn ask, void *ctx);

/* ctl/prune.c: argv "cluster" "prune" ["--dry-run"] (argc 2 or 3). The exit
 * status: 1 when a key could not be deleted for an error. */
int xb_prune_main(int argc, char **argv, int json, xb_ctl_ask_fn ask, void *ctx);

/* A WireGuard key pair: a random private key, clamped (RFC 7748), and its
 * X25519 public key. */
void xb_device_keypair(uint8_t priv[static 32], uint8_t pub[static 32]);

/* The device's wg-quick file from the daemon's `device' result. priv: the
 * private key in base64, or NULL for a placeholder. allowed: "full",
 * "pool" or PREFIX[,PREFIX...] (the pools are added). endpoint: NULL for
 * the policy's enrol_endpoint. Malloc'ed, or NULL with *err (static). */
char *xb_device_wgquick(json_t *show, const char *priv, const char *allowed, const char *endpoint,
			const char **err);

/* text as a QR code: half-block characters for a terminal, light on dark;
 * or a PNG (mode 0600: it may hold a private key). 0 or -1 (said why). */
int xb_qr_print(FILE *f, const char *text);
int xb_qr_png(const char *path, const char *text);

#endif
