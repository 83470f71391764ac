/* libFuzzer: a DNS-over-TCP byte stream (RFC 7766), read in chunks the way
 * the service reads a client (dns_service.c on_conn: pipelined messages in
 * a buffer of XB_DNS_WIRE_TCP_FRAME_MAX, xb_dns_wire_tcp_next) and the way the upstream
 * client reads a server's reply (dns_upstream.c tcp_recv: one message,
 * never reading past it, xb_dns_wire_tcp_need). Both readers are checked against a
 * naive reference that splits the whole stream at once: the same messages,
 * in order, byte for byte; the service's buffer never fills without a whole
 * message in it. Input: two octets choosing the chunk sizes, then the
 * stream. */
#include "gateway/dns/dns_wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* The reference: message i of the stream at ref_off[i], ref_len[i]. */
static size_t ref_split(const uint8_t *s, size_t n, size_t *off, size_t *len, size_t max,
			size_t *used)
{
	size_t k = 0, p = 0;

	while (k < max && p + 2 <= n) {
		size_t m = (size_t)s[p] << 8 | s[p + 1];

		if (p + 2 + m > n)
			break;
		off[k] = p + 2;
		len[k++] = m;
		p += 2 + m;
	}
	*used = p;
	return k;
}

static size_t chunk(const uint8_t sizes[2], unsigned i)
{
	return (size_t)sizes[i & 1] * 7 + 1;	/* 1 .. 1786 octets */
}

static void service(const uint8_t sizes[2], const uint8_t *s, size_t n)
{
	static size_t roff[65536], rlen[65536];
	uint8_t *buf = malloc(XB_DNS_WIRE_TCP_FRAME_MAX);
	size_t used, nref = ref_split(s, n, roff, rlen, 65536, &used), got = 0, in_len = 0;
	unsigned i = 0;

	check(buf != NULL);
	for (size_t p = 0; p < n; i++) {
		size_t c = chunk(sizes, i), off = 0, m;
		const uint8_t *msg;

		check(in_len < XB_DNS_WIRE_TCP_FRAME_MAX);	/* room to read on */
		if (c > XB_DNS_WIRE_TCP_FRAME_MAX - in_len)
			c = XB_DNS_WIRE_TCP_FRAME_MAX - in_len;
		if (c > n - p)
			c = n - p;
		memcpy(buf + in_len, s + p, c);
		in_len += c;
		p += c;
		while (xb_dns_wire_tcp_next(buf, in_len, &off, &msg, &m)) {
			check(got < nref && m == rlen[got] && !memcmp(msg, s + roff[got], m));
			check(msg >= buf && msg + m <= buf + in_len);
			got++;
		}
		check(off <= in_len);
		memmove(buf, buf + off, in_len - off);
		in_len -= off;
	}
	check(got == nref && in_len == n - used);
	free(buf);
}

static void upstream(const uint8_t sizes[2], const uint8_t *s, size_t n)
{
	uint8_t *buf = malloc(XB_DNS_WIRE_TCP_FRAME_MAX);
	size_t got = 0, p = 0, used, roff, rlen, nref = ref_split(s, n, &roff, &rlen, 1, &used);
	unsigned i = 0;
	long need;

	check(buf != NULL);
	while ((need = xb_dns_wire_tcp_need(buf, got)) > 0) {
		size_t c = chunk(sizes, i++);

		check((size_t)need <= XB_DNS_WIRE_TCP_FRAME_MAX - got);
		if (c > (size_t)need)
			c = (size_t)need;
		if (c > n - p)
			c = n - p;
		if (!c)
			break;			/* the server closed early */
		memcpy(buf + got, s + p, c);
		got += c;
		p += c;
	}
	if (need < 0)
		check(got == 2 && ((size_t)s[0] << 8 | s[1]) < XB_DNS_WIRE_HDR_LEN);
	else if (need == 0)
		check(nref == 1 && got == 2 + rlen && rlen >= XB_DNS_WIRE_HDR_LEN &&
		      !memcmp(buf + 2, s + roff, rlen));
	else
		check(p == n && (nref == 0 || rlen < XB_DNS_WIRE_HDR_LEN));
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	service(data, data + 2, size - 2);
	upstream(data, data + 2, size - 2);
	return 0;
}
