/* libFuzzer: the TUN write coalescer (offload_gro.c offload_gro_*), fed inner
 * packets as the receive path hands them over after decryption (fuzz_receive
 * runs with it off). Input: records [op u8][len u16 LE][len bytes]:
 *   op & 3 == 0  the bytes as a packet
 *   op & 3 == 1  the same with IP lengths and IPv4/TCP/UDP checksums fixed
 *   op & 3 == 2  the next TCP segment of the last packet's flow: its
 *                headers, sequence number moved on, the bytes as payload
 *                (op & 4: PSH), lengths and checksums fixed
 *   op & 3 == 3  flush: finish the batch, check it, reset
 * Check, per batch: every write is a vnet header and one packet that
 * offload_segment cuts back into exactly the packets that went in (as a
 * multiset: flows may be reordered against each other, never within), and
 * offload_segment_window, three at a time, into the same ones. */
#include "ref_csum.h"
#include "tunnel/offload.h"
#include "common/bytes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define MAXP	OFFLOAD_GRO_MAX_PKTS
#define POOL	(1u << 20)

struct pkt {
	const uint8_t *p;
	size_t len;
};

static struct offload_gro *gro;
static uint8_t *in_pool, *seg_pool;	/* the packets added; the segments cut back */
static size_t in_used;
static struct pkt in[MAXP], segs[MAXP];
static size_t n_in;

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

/* The headers of last (IP and TCP) with payload, the sequence number moved
 * past last's payload; 0 when last is not TCP. */
static size_t next_seg(const struct pkt *last, const uint8_t *payload, size_t n, bool psh,
		       uint8_t *out)
{
	const uint8_t *p = last->p;
	size_t ip, h;

	if (last->len >= 40 && p[0] >> 4 == 6 && p[6] == 6)
		ip = 40;
	else if (last->len >= 20 && p[0] >> 4 == 4 && p[9] == 6)
		ip = (p[0] & 15) * 4u;
	else
		return 0;
	if (ip < 20 || last->len < ip + 20 || (h = ip + (p[ip + 12] >> 4) * 4u) < ip + 20 ||
	    h > last->len || h + n > OFFLOAD_MAX_IP_LEN)
		return 0;
	memcpy(out, p, h);
	memcpy(out + h, payload, n);
	xb_put32(out + ip + 4, xb_get32(p + ip + 4) + (uint32_t)(last->len - h));
	out[ip + 13] = (uint8_t)(0x10 | (psh ? 0x08 : 0));	/* ACK, PSH */
	if (ip != 40)
		xb_put16(out + 4, (uint16_t)(xb_get16(p + 4) + 1));	/* IPv4 id */
	fix(out, h + n);
	return h + n;
}

static int pkt_cmp(const void *a, const void *b)
{
	const struct pkt *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->p, y->p, x->len);
}

static void flush(void)
{
	size_t nw = offload_gro_finish(gro), ns = 0, used = 0, len;

	for (size_t i = 0; i < nw; i++) {
		const uint8_t *w = offload_gro_get(gro, i, &len);
		size_t off[MAXP], lens[MAXP];
		int k;

		check(w && len > OFFLOAD_VNET_HDR_LEN && len <= OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_IP_LEN);
		k = offload_segment(w, len, seg_pool + used, POOL - used, off, lens, (int)(MAXP - ns));
		check(k >= 1);
		/* The same write three segments at a time (offload_segment_window,
		 * the send path's copying cut): the same packets, byte for byte. */
		for (size_t first = 0; first < (size_t)k;) {
			static uint8_t win[OFFLOAD_MAX_IP_LEN + 3 * 120];
			size_t woff[3], wlen[3];
			int r = offload_segment_window(w, len, first, win, sizeof(win), woff, wlen, 3);

			check(r >= 1 && r <= 3);
			for (int j = 0; j < r; j++)
				check(wlen[j] == lens[first + (size_t)j] &&
				      !memcmp(win + woff[j], seg_pool + used + off[first + (size_t)j], wlen[j]));
			first += (size_t)r;
		}
		check(offload_segment_window(w, len, (size_t)k, seg_pool + used, POOL - used, off, lens, 3) == 0);
		for (int j = 0; j < k; j++)
			segs[ns++] = (struct pkt){ seg_pool + used + off[j], lens[j] };
		used += off[k - 1] + lens[k - 1];
	}
	check(offload_gro_get(gro, nw, &len) == NULL);
	check(ns == n_in);
	qsort(in, n_in, sizeof(in[0]), pkt_cmp);
	qsort(segs, ns, sizeof(segs[0]), pkt_cmp);
	for (size_t i = 0; i < ns; i++)
		check(!pkt_cmp(&in[i], &segs[i]));
	offload_gro_reset(gro);
	n_in = in_used = 0;
}

static void add(const uint8_t *p, size_t len)
{
	if (n_in == MAXP || in_used + len > POOL || !offload_gro_add(gro, p, len)) {
		flush();
		if (!offload_gro_add(gro, p, len))
			return;		/* len 0 or too long: never added */
	}
	memcpy(in_pool + in_used, p, len);
	in[n_in++] = (struct pkt){ in_pool + in_used, len };
	in_used += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[OFFLOAD_MAX_IP_LEN], lastbuf[OFFLOAD_MAX_IP_LEN];
	struct pkt last = { NULL, 0 };

	if (!gro && (!(gro = offload_gro_new(OFFLOAD_GRO_MIN_BYTES * 2)) ||
		     !(in_pool = malloc(POOL)) || !(seg_pool = malloc(POOL))))
		abort();
	while (size >= 3) {
		unsigned op = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8, n = 0;

		if (len > size - 3)
			len = size - 3;
		if (len > sizeof(buf))
			len = sizeof(buf);
		switch (op & 3) {
		case 0:
		case 1:
			memcpy(buf, data + 3, len);
			if (op & 1)
				fix(buf, len);
			n = len;
			break;
		case 2:
			if (last.p)
				n = next_seg(&last, data + 3, len, op & 4, buf);
			break;
		case 3:
			flush();
			break;
		}
		data += 3 + len;
		size -= 3 + len;
		if (!n)
			continue;
		add(buf, n);
		memcpy(lastbuf, buf, n);
		last = (struct pkt){ lastbuf, n };
	}
	flush();
	return 0;
}
