/* libFuzzer: the resolver's cache (dns_cache.c) fed upstream answers. The
 * input is a sequence of records [op u8][len u16 LE][len bytes]:
 *   op & 3 == 0  store the bytes as the answer to their own question
 *                (scope op >> 2 & 3)
 *   op & 3 == 1  look up the question of an earlier stored record (index
 *                from the first byte), scope op >> 2 & 3
 *   op & 3 == 2  let time pass: the first two bytes, in seconds
 *   op & 3 == 3  flush one scope (op >> 2 & 3), or all (op & 0x80)
 * A cache of at most 6 entries and 2 KB keeps eviction busy. Checks: the
 * bounds hold; what a lookup returns parses as the answer to the question
 * looked up, with the id asked for, within the buffer; an answer stored
 * can be looked up at once. Seeds: tests/fuzz/corpus/fuzz_dns_cache (one
 * store record each). */
#include "gateway/dns/dns_cache.h"
#include "common/bytes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define MAX_ENTRIES	6
#define MAX_BYTES	2048
#define NS		1000000000ull

/* The question at the start of msg (uncompressed name), if any. */
static bool question_of(const uint8_t *msg, size_t len, struct xb_dns_wire_question *q)
{
	size_t nl;

	if (len < XB_DNS_WIRE_HDR_LEN + 5 || !(nl = xb_dns_wire_name_len(msg + XB_DNS_WIRE_HDR_LEN, len - XB_DNS_WIRE_HDR_LEN - 4)))
		return false;
	memcpy(q->name, msg + XB_DNS_WIRE_HDR_LEN, nl);
	q->name_len = (uint16_t)nl;
	q->qtype = xb_get16(msg + XB_DNS_WIRE_HDR_LEN + nl);
	q->qclass = xb_get16(msg + XB_DNS_WIRE_HDR_LEN + nl + 2);
	return true;
}

static void lookup(struct xb_dns_cache *c, uint32_t scope, const struct xb_dns_wire_question *q, uint16_t id,
		   uint64_t now, bool must_hit)
{
	static uint8_t buf[XB_DNS_CACHE_MSG_MAX + 16];
	struct xb_dns_wire_msg m;
	uint32_t left = 0;
	size_t n = xb_dns_cache_lookup(c, scope, q, id, now, buf, XB_DNS_CACHE_MSG_MAX, &left);

	check(!must_hit || n > 0);
	if (!n)
		return;
	check(n <= XB_DNS_CACHE_MSG_MAX && left >= 1);
	check(xb_dns_wire_parse_response(&m, buf, n, id, q) == XB_DNS_WIRE_R_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xb_dns_cache_conf conf = { .max_entries = MAX_ENTRIES, .max_bytes = MAX_BYTES,
				     .max_ttl = 600, .neg_max_ttl = 60 };
	static struct xb_dns_wire_question qs[8];
	struct xb_dns_cache *c;
	struct xb_dns_cache_stats st;
	uint64_t now = 1000 * NS;
	unsigned nq = 0;

	if (size && data[0] == 0xff) {	/* a floor on TTLs, sometimes */
		conf.min_ttl = 30;
		data++;
		size--;
	}
	if (!(c = xb_dns_cache_new(&conf)))
		abort();
	while (size >= 3) {
		unsigned op = data[0], scope = op >> 2 & 3;
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		const uint8_t *p = data + 3;

		if (len > size - 3)
			len = size - 3;
		data += 3 + len;
		size -= 3 + len;
		switch (op & 3) {
		case 0: {
			struct xb_dns_wire_question q;

			if (!question_of(p, len, &q))
				break;
			if (xb_dns_cache_store(c, scope, &q, p, len, now) == XB_DNS_CACHE_STORED) {
				lookup(c, scope, &q, (uint16_t)(len * 7), now, true);
				qs[nq++ % 8] = q;
			}
			break;
		}
		case 1:
			if (nq)
				lookup(c, scope, &qs[(len ? p[0] : 0) % (nq < 8 ? nq : 8)],
				       len > 2 ? xb_get16(p + 1) : 0, now, false);
			break;
		case 2:
			now += (len >= 2 ? xb_get16(p) : 1) * NS;
			break;
		case 3:
			if (op & 0x80)
				xb_dns_cache_flush(c);
			else
				xb_dns_cache_flush_scope(c, scope);
			break;
		}
		xb_dns_cache_stats(c, &st);
		check(st.entries <= MAX_ENTRIES && st.bytes <= MAX_BYTES);
		check(st.entries > 0 || st.bytes == 0);
	}
	xb_dns_cache_free(c);
	return 0;
}
