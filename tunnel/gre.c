/* The GRE header codec; see gre.h for the wire format. */
#include "tunnel/gre.h"
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const drop_names[GRE_DROP_COUNT] = {
	[GRE_OK] = "ok",
	[GRE_DROP_SHORT] = "short",
	[GRE_DROP_VERSION] = "version",
	[GRE_DROP_FLAGS] = "flags",
	[GRE_DROP_CSUM] = "checksum",
	[GRE_DROP_KEY] = "key",
	[GRE_DROP_NO_SEQ] = "no_sequence",
	[GRE_DROP_SEQ] = "sequence",
	[GRE_DROP_PROTO] = "protocol",
	[GRE_DROP_INNER] = "inner",
	[GRE_DROP_OUTER] = "outer",
};

const char *gre_drop_name(enum gre_drop d)
{
	return (unsigned)d < GRE_DROP_COUNT ? drop_names[d] : "?";
}

/* offload_csum sums 8 bytes at a time: the receive path verifies every
 * checksummed packet with it. */
uint16_t gre_checksum(const uint8_t *p, size_t n)
{
	return (uint16_t)~offload_csum(p, n, 0);
}

static size_t flags_len(uint16_t flags)
{
	return 4 + (flags & GRE_F_CSUM ? 4 : 0) + (flags & GRE_F_KEY ? 4 : 0) +
	       (flags & GRE_F_SEQ ? 4 : 0);
}

static uint16_t opts_flags(const struct gre_opts *o)
{
	return (uint16_t)((o->csum ? GRE_F_CSUM : 0) | (o->has_key ? GRE_F_KEY : 0) |
			  (o->seq ? GRE_F_SEQ : 0));
}

size_t gre_hdr_size(const struct gre_opts *o)
{
	return flags_len(opts_flags(o));
}

size_t gre_encap_hdr(uint8_t *hdr, const struct gre_opts *o, uint16_t proto, uint32_t seq,
		     const uint8_t *payload, size_t plen)
{
	uint16_t flags = opts_flags(o);
	size_t len = flags_len(flags), off = 4;

	xb_put16(hdr, flags);
	xb_put16(hdr + 2, proto);
	if (o->csum) {
		xb_put32(hdr + off, 0);
		off += 4;
	}
	if (o->has_key) {
		xb_put32(hdr + off, o->key);
		off += 4;
	}
	if (o->seq)
		xb_put32(hdr + off, seq);
	/* The header is a whole number of 16-bit words: the sum chains. */
	if (o->csum)
		xb_put16(hdr + 4, (uint16_t)~offload_csum(payload, plen, offload_csum(hdr, len, 0)));
	return len;
}

size_t gre_encap(uint8_t *buf, const struct gre_opts *o, uint16_t proto, uint32_t seq,
		 size_t plen)
{
	return gre_encap_hdr(buf, o, proto, seq, buf + gre_hdr_size(o), plen);
}

/* The key rule: a tunnel with a key accepts only that key; one without
 * accepts only packets without (as the kernel's GRE does). */
static bool key_ok(const struct gre_opts *o, const struct gre_hdr *h)
{
	if (!(h->flags & GRE_F_KEY))
		return !o->has_key;
	return o->has_key && h->key == o->key;
}

enum gre_drop gre_decode(const uint8_t *pkt, size_t n, const struct gre_opts *o,
			 struct gre_hdr *h)
{
	size_t off = 4;

	if (n < 4)
		return GRE_DROP_SHORT;
	h->flags = xb_get16(pkt);
	h->proto = xb_get16(pkt + 2);
	h->key = h->seq = 0;
	if (h->flags & GRE_F_VERSION)
		return GRE_DROP_VERSION;
	if (h->flags & (GRE_F_ROUTING | GRE_F_SSR | GRE_F_RECUR))
		return GRE_DROP_FLAGS;
	h->len = flags_len(h->flags);
	if (n < h->len)
		return GRE_DROP_SHORT;
	/* Over the whole packet the stored checksum makes the sum come out 0. */
	if (h->flags & GRE_F_CSUM) {
		if (gre_checksum(pkt, n) != 0)
			return GRE_DROP_CSUM;
		off += 4;
	}
	if (h->flags & GRE_F_KEY) {
		h->key = xb_get32(pkt + off);
		off += 4;
	}
	if (h->flags & GRE_F_SEQ)
		h->seq = xb_get32(pkt + off);
	if (!key_ok(o, h))
		return GRE_DROP_KEY;
	return GRE_OK;
}

enum gre_drop gre_inner_ok(uint16_t proto, const uint8_t *p, size_t n)
{
	switch (proto) {
	case GRE_PROTO_IPV4:
		return n >= 20 && p[0] >> 4 == 4 ? GRE_OK : GRE_DROP_INNER;
	case GRE_PROTO_IPV6:
		return n >= 40 && p[0] >> 4 == 6 ? GRE_OK : GRE_DROP_INNER;
	default:
		return GRE_DROP_PROTO;
	}
}

bool gre_seq_accept(struct gre_seq_rx *s, uint32_t seq)
{
	if (s->seen && (int32_t)(seq - s->last) <= 0)
		return false;
	s->seen = true;
	s->last = seq;
	return true;
}

bool gre_key_parse(const char *s, uint32_t *key)
{
	struct in_addr a;
	unsigned long long v;
	char *end;

	if (strchr(s, '.')) {
		if (inet_pton(AF_INET, s, &a) != 1)
			return false;
		*key = ntohl(a.s_addr);
		return true;
	}
	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return false;
	*key = (uint32_t)v;
	return true;
}
