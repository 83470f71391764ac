/* The prober's packets. RFC 792 (ICMP echo), RFC 4443 (ICMPv6 echo),
 * RFC 1035 4.1 (DNS header and question), RFC 9112 4 (HTTP status line). */
#include <ctype.h>
#include <string.h>

#include "common/bytes.h"
#include "probe/probe_wire.h"

#define ICMP_ECHO_REQ 8
#define ICMP_ECHO_REP 0
#define ICMP6_ECHO_REQ 128
#define ICMP6_ECHO_REP 129
static const uint8_t magic[4] = { 'x', 'b', 'p', 'r' };

static void put64(uint8_t *p, uint64_t v)
{
	xb_put32(p, (uint32_t)(v >> 32));
	xb_put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)xb_get32(p) << 32 | xb_get32(p + 4);
}

/* RFC 1071 Internet checksum. */
static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += xb_get16(p + i);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

size_t pw_echo_build(uint8_t *b, bool v6, const struct pw_echo *e)
{
	memset(b, 0, PW_ECHO_LEN);
	b[0] = v6 ? ICMP6_ECHO_REQ : ICMP_ECHO_REQ;
	xb_put16(b + 4, e->ident);
	xb_put16(b + 6, e->seq);
	memcpy(b + 8, magic, sizeof(magic));
	put64(b + 12, e->nonce);
	put64(b + 20, e->round);
	put64(b + 28, e->tid);
	b[36] = e->target;
	if (!v6)
		xb_put16(b + 2, csum(b, PW_ECHO_LEN));
	return PW_ECHO_LEN;
}

bool pw_echo_parse(const uint8_t *b, size_t len, bool v6, struct pw_echo *e)
{
	if (!v6) {
		size_t ihl;

		if (len < 20 || (b[0] >> 4) != 4)
			return false;
		ihl = (size_t)(b[0] & 0x0f) * 4;
		if (ihl < 20 || ihl > len)
			return false;
		b += ihl;
		len -= ihl;
	}
	if (len < PW_ECHO_LEN || b[0] != (v6 ? ICMP6_ECHO_REP : ICMP_ECHO_REP) || b[1] != 0 ||
	    memcmp(b + 8, magic, sizeof(magic)))
		return false;
	e->ident = xb_get16(b + 4);
	e->seq = xb_get16(b + 6);
	e->nonce = get64(b + 12);
	e->round = get64(b + 20);
	e->tid = get64(b + 28);
	e->target = b[36];
	return true;
}

/* name in wire form (labels, root) into out; returns its length, 0 if bad. */
static size_t qname(uint8_t *out, size_t len, const char *name)
{
	size_t o = 0;
	const char *p = name;

	if (!strcmp(name, "."))
		name = p = "";
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (l == 0 || l > 63 || o + 1 + l + 1 > len || o + 1 + l + 1 > 255)
			return 0;
		out[o++] = (uint8_t)l;
		memcpy(out + o, p, l);
		o += l;
		p += l;
		if (*p == '.')
			p++;
	}
	if (o + 1 > len)
		return 0;
	out[o++] = 0;
	return o;
}

size_t pw_dns_build(uint8_t *b, size_t len, uint16_t id, const char *name)
{
	size_t q;

	if (len < 12 + 4)
		return 0;
	memset(b, 0, 12);
	xb_put16(b, id);
	b[2] = 0x01;		/* RD */
	xb_put16(b + 4, 1);	/* QDCOUNT */
	q = qname(b + 12, len - 12 - 4, name);
	if (!q)
		return 0;
	xb_put16(b + 12 + q, 1);	/* A */
	xb_put16(b + 14 + q, 1);	/* IN */
	return 12 + q + 4;
}

bool pw_dns_match(const uint8_t *b, size_t len, uint16_t id, const char *name)
{
	uint8_t want[256 + 4];
	size_t q = qname(want, sizeof(want) - 4, name);

	if (!q || len < 12 + q + 4 || xb_get16(b) != id || !(b[2] & 0x80) ||
	    xb_get16(b + 4) != 1)
		return false;
	xb_put16(want + q, 1);
	xb_put16(want + q + 2, 1);
	/* Names compare case-insensitively (RFC 4343); label lengths are < 64,
	 * below 'A', so folding the whole run is safe. */
	for (size_t i = 0; i < q + 4; i++)
		if (tolower(b[12 + i]) != tolower(want[i]))
			return false;
	return true;
}

int pw_http_status(const char *b, size_t len)
{
	const char *nl = memchr(b, '\n', len);

	if (len >= 12 && (memcmp(b, "HTTP/1.", 7) || !isdigit((unsigned char)b[7]) ||
			  b[8] != ' ' || !isdigit((unsigned char)b[9]) ||
			  !isdigit((unsigned char)b[10]) || !isdigit((unsigned char)b[11])))
		return -1;
	if (!nl)
		return len > 1024 ? -1 : 0;
	if (nl - b < 12)
		return -1;
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}
