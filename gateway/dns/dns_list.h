/* Domain list files for the name matcher (dns_match.h): dnsmasq
 * configuration lines as the public lists ship them, and plain lists of one
 * pattern per line. docs/dns.md, "List formats", describes both.
 *
 * Every bad line is reported as "FILE:LINE: message" and loading goes on, so
 * one run shows every error; the valid lines are added. A load that found
 * anything wrong returns -1, and the caller decides: for all-or-nothing,
 * load into a fresh matcher and swap it in only when every load returned 0
 * (the old matcher is never touched).
 */
#ifndef XB_GATEWAY_DNS_LIST_H
#define XB_GATEWAY_DNS_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/dns/dns_match.h"
#include "policy/policy.h"

enum xb_dns_list_fmt {
	XB_DNS_LIST_DNSMASQ,	/* server=, local=, address=, nftset=, ipset= lines */
	XB_DNS_LIST_PATTERNS,	/* one pattern per line; a bare name is exact */
	XB_DNS_LIST_DOMAINS,	/* one pattern per line; a bare name is itself and below */
};

#define XB_DNS_LINE_MAX	4096	/* bytes of one line, newline excluded */
#define XB_DNS_LIST_MAX_BYTES	(64u << 20)	/* a list file larger is refused unread */

/* Add every name of the list at path to m with value. Returns 0, or -1 with
 * every problem in errs (unreadable file, bad lines, out of memory). */
int xb_dns_list_load(struct xb_dns_match *m, const char *path, enum xb_dns_list_fmt fmt,
		     uint32_t value, struct xb_errors *errs);
/* The same for the list text[0..len), reported under the name file. */
int xb_dns_list_parse(struct xb_dns_match *m, const char *file, const char *text, size_t len,
		      enum xb_dns_list_fmt fmt, uint32_t value, struct xb_errors *errs);

#endif
