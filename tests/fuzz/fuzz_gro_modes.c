/* libFuzzer: the TUN write coalescer (offload_gro.c offload_gro_*) in every mode
 * the receive paths use: trusted or not (OFFLOAD_GRO_TRUSTED) x copied or
 * by reference (offload_gro_add / offload_gro_add_ref) x contiguous or
 * gathered writes (OFFLOAD_GRO_IOV). fuzz_gro covers the untrusted copying
 * mode with a byte-exact round trip; this one runs each batch through all
 * eight modes and compares them.
 *
 * Input: records [op u8][len u16 LE][bytes]; op & 7:
 *   0  the bytes as a packet            1  the same, lengths and checksums fixed
 *   2  the next TCP segment of the last packet's flow with len payload bytes:
 *      the record's len & 15 bytes, repeated (a short record makes a large
 *      segment; so in 4 to 7); op & 8: PSH
 *   3  flush the batch
 *   4  as 2, with the TCP checksum broken
 *   5  as 2, continuing the batch's packet (op >> 3) instead of the last
 *   6  the last packet in another flow (source port + (op >> 3) + 1), fixed
 *   7  a new TCP packet: op & 8 IPv6, (op >> 4) & 3 option words, the
 *      bytes as payload, fixed
 * The harness ends a batch at OFFLOAD_GRO_MAX_PKTS packets or HB bytes,
 * which every mode's batch takes. Checks, per batch and mode:
 *  - every write is a vnet header and one IP packet whose lengths agree
 *    with the write; a merged one carries NEEDS_CSUM, TCPV4/V6 matching
 *    the IP version, csum_start/offset at the TCP checksum and a valid IPv4
 *    header checksum; a lone one a header of zeros but DATA_VALID exactly
 *    when trusted;
 *  - offload_segment cuts the writes back into the packets that went in (a
 *    multiset: flows may pass each other): byte for byte untrusted (so no
 *    segment with a bad checksum was merged: cutting recomputes it), and
 *    but for the TCP checksum trusted (a merged segment's is recomputed);
 *    so payload bytes in == out;
 *  - gathered writes have 1..IOV_MAX iovecs and hold exactly the bytes of
 *    the contiguous writes, and by-reference batches write exactly what
 *    copying ones do;
 *  - by reference, nothing outside the packets and the OFFLOAD_VNET_HDR_LEN
 *    bytes before each is written.
 * And once per batch: by reference into a batch of the smallest size
 * (contiguous, which copies merged packets into the batch's own buffer),
 * refilled whenever add_ref says it is full, still round-trips. */
#include "ref_csum.h"
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define HDR	OFFLOAD_VNET_HDR_LEN
#define MAXP	OFFLOAD_GRO_MAX_PKTS
#define HB	(2 * OFFLOAD_GRO_MIN_BYTES)	/* a batch's bytes, HDR each included */
#define SLACK	8				/* canary bytes around a referenced packet */
#define REF_POOL (HB + (size_t)MAXP * 2 * SLACK)
#define SEG_POOL (4 * HB)
#define CANARY	0xa5
#define NMODES	8

struct pkt {
	uint8_t *p;
	size_t len;
};

struct out {			/* one mode's writes, back to back */
	size_t n, used;
	size_t off[MAXP], len[MAXP];
	uint8_t *buf;
};

static struct offload_gro *gro, *small;
static uint8_t *batch_pool, *ref_pool, *seg_pool, *norm_pool;
static size_t batch_used;
static struct pkt batch[MAXP], segs[MAXP], ins[MAXP];
static size_t n_batch;
static struct out outs[NMODES];

/* Where p's TCP header starts; 0 when p is not (readably) TCP. */
static size_t tcp_at(const uint8_t *p, size_t len)
{
	size_t ip;

	if (len >= 20 && p[0] >> 4 == 4 && p[9] == 6 && (ip = (p[0] & 15) * 4u) >= 20)
		return len >= ip + 20 ? ip : 0;
	if (len >= 60 && p[0] >> 4 == 6 && p[6] == 6)
		return 40;
	return 0;
}

/* IP length fields and checksums (IPv4 header, TCP, UDP) made right. */
static void fix(uint8_t *p, size_t len)
{
	size_t ip, l4;
	uint8_t proto;
	uint32_t ps;

	if (len >= 20 && p[0] >> 4 == 4 && (ip = (p[0] & 15) * 4u) >= 20 && ip <= len) {
		xb_put16(p + 2, (uint16_t)len);
		xb_put16(p + 10, 0);
		xb_put16(p + 10, ref_csum(ref_sum16(p, ip, 0)));
		proto = p[9];
		ps = ref_sum16(p + 12, 8, 0);
	} else if (len >= 40 && p[0] >> 4 == 6) {
		ip = 40;
		xb_put16(p + 4, (uint16_t)(len - 40));
		proto = p[6];
		ps = ref_sum16(p + 8, 32, 0);
	} else {
		return;
	}
	l4 = len - ip;
	ps += proto + (uint32_t)l4;
	if (proto == 6 && l4 >= 20) {
		xb_put16(p + ip + 16, 0);
		xb_put16(p + ip + 16, ref_csum(ref_sum16(p + ip, l4, ps)));
	} else if (proto == 17 && l4 >= 8) {
		xb_put16(p + ip + 4, (uint16_t)l4);
		xb_put16(p + ip + 6, 0);
		xb_put16(p + ip + 6, ref_csum(ref_sum16(p + ip, l4, ps)));
	}
}

/* n payload bytes: src (k bytes) repeated, or a counter when k is 0. */
static void fill(uint8_t *d, size_t n, const uint8_t *src, size_t k)
{
	for (size_t i = 0; i < n; i++)
		d[i] = k ? src[i % k] : (uint8_t)i;
}

/* The headers of last with n payload bytes, the sequence number moved past
 * last's payload; 0 when last is not TCP or the result too long. */
static size_t next_seg(const struct pkt *last, const uint8_t *src, size_t k, size_t n,
		       bool psh, uint8_t *out)
{
	const uint8_t *p = last->p;
	size_t ip = tcp_at(p, last->len), h;

	if (!ip || (h = ip + (p[ip + 12] >> 4) * 4u) < ip + 20 || h > last->len ||
	    h + n > OFFLOAD_MAX_IP_LEN)
		return 0;
	memcpy(out, p, h);
	fill(out + h, n, src, k);
	xb_put32(out + ip + 4, xb_get32(p + ip + 4) + (uint32_t)(last->len - h));
	out[ip + 13] = (uint8_t)(0x10 | (psh ? 0x08 : 0));	/* ACK, PSH */
	if (ip != 40)
		xb_put16(out + 4, (uint16_t)(xb_get16(p + 4) + 1));	/* IPv4 id */
	fix(out, h + n);
	return h + n;
}

/* A fresh TCP packet (ACK) with opt option words (NOPs) and n payload bytes. */
static size_t new_tcp(bool v6, unsigned opt, const uint8_t *src, size_t k, size_t n, uint8_t *out)
{
	size_t ip = v6 ? 40 : 20, thl = 20 + 4 * opt;

	if (ip + thl + n > OFFLOAD_MAX_IP_LEN)
		n = OFFLOAD_MAX_IP_LEN - ip - thl;
	memset(out, 0, ip + thl);
	if (v6) {
		out[0] = 0x60;
		out[6] = 6;
		out[7] = 64;
		out[8] = 0x20, out[9] = 0x01, out[10] = 0x0d, out[11] = 0xb8, out[23] = 1;
		out[24] = 0x20, out[25] = 0x01, out[26] = 0x0d, out[27] = 0xb8, out[39] = 2;
	} else {
		out[0] = 0x45;
		out[6] = 0x40;	/* DF */
		out[8] = 64;
		out[9] = 6;
		out[12] = 192, out[14] = 2, out[15] = 1;
		out[16] = 198, out[17] = 51, out[18] = 100, out[19] = 1;
	}
	xb_put16(out + ip, 40000);
	xb_put16(out + ip + 2, 443);
	xb_put32(out + ip + 4, k ? xb_get32((const uint8_t[4]){ src[0], src[k / 2], src[k - 1], 7 }) : 1);
	xb_put32(out + ip + 8, 1000);
	out[ip + 12] = (uint8_t)(thl / 4 << 4);
	out[ip + 13] = 0x10;
	xb_put16(out + ip + 14, 512);
	memset(out + ip + 20, 1, thl - 20);	/* NOP */
	fill(out + ip + thl, n, src, k);
	fix(out, ip + thl + n);
	return ip + thl + n;
}

static int pkt_cmp(const void *a, const void *b)
{
	const struct pkt *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->p, y->p, x->len);
}

/* The write at w (len bytes) as its vnet header says it should be. */
static void check_write(const uint8_t *w, size_t len, bool trusted)
{
	struct virtio_net_hdr vh;
	const uint8_t *ip = w + HDR;
	size_t iplen = len - HDR, iphl, thl;
	bool v6;

	check(len > HDR && iplen <= OFFLOAD_MAX_IP_LEN);
	memcpy(&vh, w, HDR);
	if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		check(vh.flags == (trusted ? VIRTIO_NET_HDR_F_DATA_VALID : 0));
		check(!vh.hdr_len && !vh.gso_size && !vh.csum_start && !vh.csum_offset);
		return;
	}
	v6 = ip[0] >> 4 == 6;
	iphl = v6 ? 40 : 20;
	check(vh.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM);
	check(vh.gso_type == (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4));
	check(v6 || ip[0] == 0x45);
	check(iplen >= iphl + 20 && ip[v6 ? 6 : 9] == 6);
	thl = (size_t)(ip[iphl + 12] >> 4) * 4;
	check(vh.csum_start == iphl && vh.csum_offset == 16 && vh.hdr_len == iphl + thl);
	check(vh.gso_size > 0 && iplen > iphl + thl + vh.gso_size);	/* at least two segments */
	if (v6) {
		check(xb_get16(ip + 4) + 40u == iplen);
	} else {
		check(xb_get16(ip + 2) == iplen);
		check(ref_csum(ref_sum16(ip, 20, 0)) == 0);
	}
}

/* p copied to norm_pool + *used, its TCP checksum zeroed. */
static struct pkt normalized(const struct pkt *x, size_t *used)
{
	uint8_t *d = norm_pool + *used;
	size_t ip = tcp_at(x->p, x->len);

	memcpy(d, x->p, x->len);
	if (ip)
		xb_put16(d + ip + 16, 0);
	*used += x->len;
	return (struct pkt){ d, x->len };
}

/* Every packet of sub (sorted) is one of set (sorted), each used once. */
static void check_sub_multiset(const struct pkt *sub, size_t n_sub, const struct pkt *set, size_t n_set)
{
	size_t j = 0;

	for (size_t i = 0; i < n_sub; i++) {
		while (j < n_set && pkt_cmp(&set[j], &sub[i]) < 0)
			j++;
		check(j < n_set && !pkt_cmp(&set[j], &sub[i]));
		j++;
	}
}

/* Mode m's writes cut back into the batch's packets. Trusted, merged
 * segments get their TCP checksums recomputed, so the packets compare
 * without them, and lone writes must be packets as they went in. */
static void check_round_trip(const struct out *o, bool trusted, const struct pkt *in, size_t n_in)
{
	static struct pkt lone[MAXP];
	size_t ns = 0, used = 0, nused = 0, bytes_in = 0, bytes_out = 0, n_lone = 0;

	if (trusted) {
		for (size_t i = 0; i < o->n; i++) {
			struct virtio_net_hdr vh;

			memcpy(&vh, o->buf + o->off[i], HDR);
			if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE)
				lone[n_lone++] = (struct pkt){ o->buf + o->off[i] + HDR, o->len[i] - HDR };
		}
		memcpy(ins, in, n_in * sizeof(ins[0]));
		qsort(ins, n_in, sizeof(ins[0]), pkt_cmp);
		qsort(lone, n_lone, sizeof(lone[0]), pkt_cmp);
		check_sub_multiset(lone, n_lone, ins, n_in);
	}
	for (size_t i = 0; i < o->n; i++) {
		size_t off[MAXP], lens[MAXP];
		int k;

		check_write(o->buf + o->off[i], o->len[i], trusted);
		k = offload_segment(o->buf + o->off[i], o->len[i], seg_pool + used, SEG_POOL - used,
				    off, lens, (int)(MAXP - ns));
		check(k >= 1);
		for (int j = 0; j < k; j++)
			segs[ns++] = (struct pkt){ seg_pool + used + off[j], lens[j] };
		used += off[k - 1] + lens[k - 1];
	}
	check(ns == n_in);
	for (size_t i = 0; i < n_in; i++) {
		ins[i] = trusted ? normalized(&in[i], &nused) : in[i];
		if (trusted)
			segs[i] = normalized(&segs[i], &nused);
		bytes_in += in[i].len;
		bytes_out += segs[i].len;
	}
	check(bytes_in == bytes_out);
	qsort(ins, n_in, sizeof(ins[0]), pkt_cmp);
	qsort(segs, ns, sizeof(segs[0]), pkt_cmp);
	for (size_t i = 0; i < ns; i++)
		check(!pkt_cmp(&ins[i], &segs[i]));
}

/* The batch, copied to ref_pool with SLACK canary bytes and HDR bytes
 * before each packet and SLACK after; the copies in refs. */
static void ref_copy(struct pkt *refs)
{
	size_t used = 0;

	for (size_t i = 0; i < n_batch; i++) {
		uint8_t *d = ref_pool + used;

		memset(d, CANARY, SLACK + HDR);
		memcpy(d + SLACK + HDR, batch[i].p, batch[i].len);
		memset(d + SLACK + HDR + batch[i].len, CANARY, SLACK);
		refs[i] = (struct pkt){ d + SLACK + HDR, batch[i].len };
		used += 2 * SLACK + HDR + batch[i].len;
	}
}

static void check_canaries(const struct pkt *refs)
{
	for (size_t i = 0; i < n_batch; i++)
		for (size_t j = 0; j < SLACK; j++)
			check(refs[i].p[-(ptrdiff_t)(HDR + SLACK) + (ptrdiff_t)j] == CANARY &&
			      refs[i].p[refs[i].len + j] == CANARY);
}

/* Finish g and copy its writes (gathered from iovecs, or contiguous) to o. */
static void collect(struct offload_gro *g, bool iov, struct out *o)
{
	size_t n = offload_gro_finish(g), len;

	o->n = n;
	o->used = 0;
	for (size_t i = 0; i < n; i++) {
		o->off[i] = o->used;
		if (iov) {
			int cnt;
			const struct iovec *v = offload_gro_iov(g, i, &cnt);

			check(v && cnt >= 1 && cnt <= IOV_MAX && !offload_gro_get(g, i, &len));
			for (int j = 0; j < cnt; j++) {
				check(v[j].iov_len > 0 && o->used + v[j].iov_len <= HB);
				memcpy(o->buf + o->used, v[j].iov_base, v[j].iov_len);
				o->used += v[j].iov_len;
			}
		} else {
			const uint8_t *w = offload_gro_get(g, i, &len);
			int cnt;

			check(w && !offload_gro_iov(g, i, &cnt) && o->used + len <= HB);
			memcpy(o->buf + o->used, w, len);
			o->used += len;
		}
		o->len[i] = o->used - o->off[i];
	}
	check(!offload_gro_get(g, n, &len));
	offload_gro_reset(g);
}

static bool same_out(const struct out *a, const struct out *b)
{
	return a->n == b->n && a->used == b->used &&
	       !memcmp(a->len, b->len, a->n * sizeof(a->len[0])) && !memcmp(a->buf, b->buf, a->used);
}

/* By reference into the smallest batch, contiguous: add_ref must say
 * "full" before the merged packets outgrow the batch's buffer. */
static void run_small(bool trusted)
{
	static struct pkt refs[MAXP];
	size_t first = 0;

	ref_copy(refs);
	offload_gro_set_flags(small, trusted ? OFFLOAD_GRO_TRUSTED : 0);
	for (size_t i = 0; i <= n_batch; i++) {
		if (i < n_batch && offload_gro_add_ref(small, refs[i].p, refs[i].len))
			continue;
		collect(small, false, &outs[0]);
		check_round_trip(&outs[0], trusted, batch + first, i - first);
		if (i == n_batch)
			break;
		ref_copy(refs);		/* the writes changed the referenced headers */
		first = i;
		check(offload_gro_add_ref(small, refs[i].p, refs[i].len));
	}
	check_canaries(refs);
}

static void run_batch(void)
{
	static struct pkt refs[MAXP];

	for (unsigned m = 0; m < NMODES; m++) {
		bool trusted = m & 1, ref = m & 2, iov = m & 4;

		offload_gro_set_flags(gro, (trusted ? OFFLOAD_GRO_TRUSTED : 0) | (iov ? OFFLOAD_GRO_IOV : 0));
		if (ref)
			ref_copy(refs);
		for (size_t i = 0; i < n_batch; i++)
			check(ref ? offload_gro_add_ref(gro, refs[i].p, refs[i].len)
				  : offload_gro_add(gro, batch[i].p, batch[i].len));
		collect(gro, iov, &outs[m]);
		if (ref)
			check_canaries(refs);
		check_round_trip(&outs[m], trusted, batch, n_batch);
		if (m >= 2)	/* same as the copying, contiguous run */
			check(same_out(&outs[m], &outs[m & 1]));
	}
	run_small(n_batch & 1);
	n_batch = batch_used = 0;
}

static void add(const uint8_t *p, size_t len)
{
	if (!len)
		return;
	if (n_batch == MAXP || batch_used + HDR + len > HB)
		run_batch();
	memcpy(batch_pool + batch_used, p, len);
	batch[n_batch++] = (struct pkt){ batch_pool + batch_used, len };
	batch_used += HDR + len;
}

static void init(void)
{
	if (!(gro = offload_gro_new(HB)) || !(small = offload_gro_new(OFFLOAD_GRO_MIN_BYTES)) ||
	    !(batch_pool = malloc(HB)) || !(ref_pool = malloc(REF_POOL)) ||
	    !(seg_pool = malloc(SEG_POOL)) || !(norm_pool = malloc(2 * SEG_POOL)))
		abort();
	for (int m = 0; m < NMODES; m++)
		if (!(outs[m].buf = malloc(HB)))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[OFFLOAD_MAX_IP_LEN], lastbuf[OFFLOAD_MAX_IP_LEN];
	struct pkt last = { NULL, 0 };

	if (!gro)
		init();
	while (size >= 3) {
		unsigned op = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8, k = size - 3, n = 0;
		const uint8_t *src = data + 3;
		struct pkt from = last;

		if (k > ((op & 7) == 2 || (op & 7) >= 4 ? len & 15 : len))
			k = (op & 7) == 2 || (op & 7) >= 4 ? len & 15 : len;
		switch (op & 7) {
		case 0:
		case 1:
			memcpy(buf, src, k);
			if (op & 1)
				fix(buf, k);
			n = k;
			break;
		case 5:
			if (n_batch)
				from = batch[(op >> 3) % n_batch];
			/* fall through */
		case 2:
		case 4:
			if (from.p)
				n = next_seg(&from, src, k, len, op & 8, buf);
			if (n && (op & 7) == 4)
				buf[tcp_at(buf, n) + 17] ^= 0x5a;
			break;
		case 3:
			if (n_batch)
				run_batch();
			break;
		case 6:
			if (last.p && tcp_at(last.p, last.len)) {
				size_t ip = tcp_at(last.p, last.len);

				memcpy(buf, last.p, last.len);
				xb_put16(buf + ip, (uint16_t)(xb_get16(buf + ip) + (op >> 3) + 1));
				fix(buf, last.len);
				n = last.len;
			}
			break;
		case 7:
			n = new_tcp(op & 8, (op >> 4) & 3, src, k, len, buf);
			break;
		}
		data += 3 + k;
		size -= 3 + k;
		if (!n)
			continue;
		add(buf, n);
		memcpy(lastbuf, buf, n);
		last = (struct pkt){ lastbuf, n };
	}
	if (n_batch)
		run_batch();
	return 0;
}
