/* libFuzzer: what a GRE tunnel's raw socket may receive. The first byte
 * picks the receiver's options (key or not, sequence numbers, checksums);
 * the rest is the packet. Decoding must not read past it; a header that
 * decodes must lie within the packet; and a header built from what was
 * decoded must decode to the same fields. */
#include <stdlib.h>
#include <string.h>

#include "tunnel/gre.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gre_opts o = { 0 };
	struct gre_hdr h, g;
	uint8_t buf[GRE_HDR_MAX + 64];
	size_t hl, plen;

	if (size < 1)
		return 0;
	o.has_key = data[0] & 1;
	o.key = data[0] & 2 ? 0x0a000001u : 42;
	o.seq = data[0] & 4;
	o.csum = data[0] & 8;
	data++;
	size--;
	if (gre_decode(data, size, &o, &h) != GRE_OK)
		return 0;
	check(h.len >= 4 && h.len <= GRE_HDR_MAX && h.len <= size);
	gre_inner_ok(h.proto, data + h.len, size - h.len);
	/* Rebuild with the same options and a payload of up to 64 bytes. */
	plen = size - h.len < 64 ? size - h.len : 64;
	memcpy(buf + gre_hdr_size(&o), data + h.len, plen);
	hl = gre_encap(buf, &o, h.proto, h.seq, plen);
	check(gre_decode(buf, hl + plen, &o, &g) == GRE_OK);
	check(g.proto == h.proto && g.len == hl);
	if (o.seq)
		check(g.seq == h.seq);
	if (o.has_key)
		check(g.key == o.key);
	return 0;
}
