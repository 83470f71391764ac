/* The prober's packets: ICMP echo with our payload, a DNS query and its
 * answer's match, an HTTP status line. Pure functions over byte buffers;
 * every parser takes untrusted input (tests/fuzz/fuzz_probe_wire.c). */
#ifndef XB_PROBE_WIRE_H
#define XB_PROBE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Echo payload: magic "xbpr", nonce (per prober run), round, target's
 * stats id, target index — 29 bytes after the 8-byte ICMP header. */
#define PW_ECHO_LEN (8 + 4 + 8 + 8 + 8 + 1)

struct pw_echo {
	uint16_t ident, seq;
	uint64_t nonce, round, tid;
	uint8_t target;
};

/* An echo request into buf (at least PW_ECHO_LEN); returns the length. The
 * IPv4 checksum is filled in; for IPv6 the kernel computes it. */
size_t pw_echo_build(uint8_t *buf, bool v6, const struct pw_echo *e);
/* An echo reply from a raw socket (IPv4: with its IP header; IPv6: without).
 * True and *e filled only for an echo reply carrying our magic. */
bool pw_echo_parse(const uint8_t *buf, size_t len, bool v6, struct pw_echo *e);

/* A query (RD set, type A, class IN) into buf; 0 if name is not a valid
 * domain name or does not fit. */
size_t pw_dns_build(uint8_t *buf, size_t len, uint16_t id, const char *name);
/* True if buf is a response with this id and exactly the question asked. */
bool pw_dns_match(const uint8_t *buf, size_t len, uint16_t id, const char *name);

/* The status code of "HTTP/1.x NNN ..." once its line ended (CRLF or LF);
 * 0 while incomplete, -1 if it is not an HTTP status line. */
int pw_http_status(const char *buf, size_t len);

#endif
