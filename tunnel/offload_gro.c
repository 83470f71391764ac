/* TUN offloads, the write side: coalescing what we write in; see offload.h.
 * The read side is offload_seg.c; the helpers both share are in
 * offload_int.h.
 *
 * Coalescing follows the kernel (tcp_gro_receive, inet_gro_receive) and is
 * the inverse of segmenting (tcp_gso_segment, offload_seg.c): a segment
 * joins a super-packet only when segmenting the result yields it again byte
 * for byte, so every header field the segmenter copies must be equal (IP
 * fields but length/id/checksum, TCP ports, ack, window, urgent pointer,
 * options, flags but PSH), its sequence number and IPv4 id must continue the
 * super-packet, and it may carry PSH or be shorter than the others only as
 * the last one.
 *
 * A written super-packet carries NEEDS_CSUM, which the kernel turns into
 * CHECKSUM_PARTIAL and then trusts: it never verifies the segments' own
 * checksums, and re-segmenting it (forwarding) writes fresh ones. So in an
 * untrusted batch (GRE: nothing authenticates the bytes) a segment joins
 * only after its checksum verified; whatever does not join is written
 * unchanged with a zero vnet header and the kernel verifies it as usual.
 * A trusted batch (OFFLOAD_GRO_TRUSTED: WireGuard, whose AEAD authenticated
 * every byte as the peer's sender made it) verifies nothing and writes lone
 * packets with DATA_VALID. That is Linux's WireGuard exactly: it marks what
 * it decrypts CHECKSUM_UNNECESSARY, its GRO merges segments without summing
 * them, and a forwarded merge is re-segmented with fresh checksums. Only the
 * sender of the inner packet can have got a checksum wrong; nothing on the
 * path between can corrupt a byte without the tag failing.
 */
#include "tunnel/offload_int.h"

#include <limits.h>
#include <stdlib.h>

/* A gathered write (OFFLOAD_GRO_IOV) is at most one iovec per packet of the
 * batch; writev() refuses more than IOV_MAX with EINVAL. */
_Static_assert(OFFLOAD_GRO_MAX_PKTS <= IOV_MAX, "a batch's packets must fit one writev()");

/* ---- Coalescing ----
 *
 * add() copies each packet into a byte arena, leaving room for its vnet
 * header before it, and decides at once which output it belongs to: a new
 * one, or the latest output of its flow (5-tuple) if it continues that one.
 * Outputs are ordered by their first packet, so a segment that joins moves
 * ahead of later packets of other flows only; a flow's own packets never pass
 * each other because only its latest output can grow. finish() writes the
 * merged outputs into a second arena; lone packets are written where they lie.
 *
 * A packet whose flow cannot be told (IPv4 TCP fragments, IPv6 extension
 * headers, truncated TCP) might belong to any open flow, so it closes them all.
 */

#define GRO_FLOWS 16		/* flows a batch keeps open; the least recent goes */
#define GRO_NONE UINT32_MAX

struct gro_pkt {
	uint8_t *data;		/* IP header, in in_buf or the caller's (add_ref);
				 * HDR_LEN bytes before it ours to write */
	uint32_t len;
	uint32_t next;		/* next packet of the same output, or GRO_NONE */
};

struct gro_out {
	uint32_t first, last;	/* packets, linked through gro_pkt.next */
	uint32_t segs;
	uint32_t ip_len;	/* of the merged packet */
	uint32_t next_seq;	/* a joining segment's sequence number */
	uint16_t next_id;	/* a joining segment's IPv4 id */
	uint16_t mss;		/* payload of every segment but the last */
	bool open;		/* a segment may still join */
	bool checked;		/* the first packet's checksum verified */
	bool psh;		/* the last segment carries PSH */
	const uint8_t *data;	/* after finish: vnet header + packet */
	size_t data_len;
	uint32_t iov_first;	/* after finish with OFFLOAD_GRO_IOV: iovecs of the write */
	int iov_n;
};

struct gro_flow {
	uint32_t hash;
	uint32_t out;		/* the flow's latest output */
	uint64_t used;		/* for eviction */
};

struct offload_gro {
	uint8_t *in_buf, *out_buf;
	size_t cap, in_used, out_used;
	struct gro_pkt pkts[OFFLOAD_GRO_MAX_PKTS];
	struct gro_out outs[OFFLOAD_GRO_MAX_PKTS];
	uint32_t npkts, nouts;
	struct gro_flow flows[GRO_FLOWS];
	unsigned nflows;
	uint64_t clock;
	bool finished;
	unsigned flags;		/* OFFLOAD_GRO_* */
	struct iovec iov[OFFLOAD_GRO_MAX_PKTS];	/* one per packet */
};

/* A TCP packet as the coalescer sees it. */
struct seg {
	const uint8_t *p;
	size_t len;
	struct hdrs h;
	size_t payload;
	uint32_t seq;
	uint32_t hash;
	uint8_t flags;
	bool mergeable;		/* may start or join a super-packet */
};

struct offload_gro *offload_gro_new(size_t max_bytes)
{
	struct offload_gro *g;

	if (max_bytes < OFFLOAD_GRO_MIN_BYTES || max_bytes > UINT32_MAX)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cap = max_bytes;
	g->in_buf = malloc(max_bytes);
	g->out_buf = malloc(max_bytes);
	if (!g->in_buf || !g->out_buf) {
		offload_gro_free(g);
		return NULL;
	}
	return g;
}

void offload_gro_free(struct offload_gro *g)
{
	if (!g)
		return;
	free(g->in_buf);
	free(g->out_buf);
	free(g);
}

void offload_gro_reset(struct offload_gro *g)
{
	g->in_used = g->out_used = 0;
	g->npkts = g->nouts = 0;
	g->nflows = 0;
	g->finished = false;
}

static const uint8_t *pkt_data(const struct offload_gro *g, uint32_t i)
{
	return g->pkts[i].data;
}

static uint32_t flow_hash(const struct seg *s)
{
	const uint8_t *a = s->p + (s->h.v6 ? 8 : 12);
	size_t n = s->h.v6 ? 32 : 8;
	uint32_t h = s->h.v6 ? 0x9e3779b9u : 0x85ebca6bu;

	for (size_t i = 0; i < n; i += 4)
		h = (h ^ xb_get32(a + i)) * 0x01000193u;
	return (h ^ xb_get32(s->p + s->h.iphl)) * 0x01000193u;
}

/* Same addresses and ports; p is a stored packet of an earlier output. */
static bool same_flow(const struct seg *s, const uint8_t *p)
{
	size_t a = s->h.v6 ? 8 : 12, n = s->h.v6 ? 32 : 8;
	size_t iphl = s->h.v6 ? 40 : (size_t)(p[0] & 15) * 4;

	return p[0] >> 4 == s->p[0] >> 4 && !memcmp(p + a, s->p + a, n) &&
	       !memcmp(p + iphl, s->p + s->h.iphl, 4);
}

static struct gro_flow *flow_find(struct offload_gro *g, const struct seg *s)
{
	for (unsigned i = 0; i < g->nflows; i++) {
		struct gro_flow *f = &g->flows[i];

		if (f->hash == s->hash &&
		    same_flow(s, pkt_data(g, g->outs[f->out].first)))
			return f;
	}
	return NULL;
}

static struct gro_flow *flow_insert(struct offload_gro *g)
{
	struct gro_flow *old;

	if (g->nflows < GRO_FLOWS)
		return &g->flows[g->nflows++];
	old = &g->flows[0];
	for (unsigned i = 1; i < GRO_FLOWS; i++)
		if (g->flows[i].used < old->used)
			old = &g->flows[i];
	return old;
}

/* Only ACK, and PSH or ECE besides, may ride in a super-packet. */
static bool flags_mergeable(uint8_t flags)
{
	return (flags & (uint8_t)~(TCP_PSH | TCP_ECE)) == TCP_ACK;
}

/* A TCP packet with readable ports; false when it is not one. */
static bool seg_parse(const uint8_t *p, size_t len, struct seg *s)
{
	if (!parse_net(p, len, &s->h) || s->h.proto != IPPROTO_TCP)
		return false;
	if (!s->h.v6 && ip4_is_fragment(p))
		return false;
	if (!parse_l4(p, len, &s->h))
		return false;
	s->p = p;
	s->len = len;
	s->payload = len - s->h.iphl - s->h.thl;
	s->seq = xb_get32(p + s->h.iphl + 4);
	s->flags = p[s->h.iphl + 13];
	s->hash = flow_hash(s);
	s->mergeable = flags_mergeable(s->flags) && s->payload > 0 && ip_len_ok(p, len, &s->h) &&
		       (s->h.v6 || s->h.iphl == 20);
	return true;
}

/* Might p be a TCP packet whose flow seg_parse() could not read? */
static bool flow_unknown(const uint8_t *p, size_t len)
{
	struct hdrs h;

	if (!parse_net(p, len, &h))
		return false;	/* not IP at all: the kernel drops it */
	if (!h.v6)
		return h.proto == IPPROTO_TCP;	/* a fragment or truncated */
	switch (h.proto) {
	case IPPROTO_HOPOPTS: case IPPROTO_ROUTING: case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS: case IPPROTO_AH: case IPPROTO_ESP:
	case IPPROTO_MH: case 139: case 140:	/* HIP, shim6 */
	case IPPROTO_TCP:
		return true;
	default:
		return false;
	}
}

/* Every field the segmenter copies from the first segment must be equal. */
static bool same_headers(const struct seg *s, const uint8_t *head)
{
	const uint8_t *t = s->p + s->h.iphl, *ht = head + s->h.iphl;

	if ((size_t)(ht[12] >> 4) * 4 != s->h.thl)
		return false;	/* first, so comparing options stays inside head */
	if (s->h.v6) {
		if (memcmp(s->p, head, 4) || memcmp(s->p + 6, head + 6, 34))
			return false;
	} else if (memcmp(s->p, head, 2) || memcmp(s->p + 6, head + 6, 4) ||
		   memcmp(s->p + 12, head + 12, 8)) {
		return false;	/* all but length, id and checksum */
	}
	return !memcmp(t, ht, 4) && !memcmp(t + 8, ht + 8, 5) &&
	       (t[13] & (uint8_t)~TCP_PSH) == ht[13] &&
	       !memcmp(t + 14, ht + 14, 2) && !memcmp(t + 18, ht + 18, s->h.thl - 18);
}

static bool tcp_csum_ok(const uint8_t *p, size_t len, size_t iphl, bool v6)
{
	size_t l4_len = len - iphl;

	return fold(sum_raw(p + iphl, l4_len, pseudo_raw(p, v6, IPPROTO_TCP, l4_len))) == 0xffff;
}

/* Does s continue o exactly, as the next segment the kernel would cut? */
static bool seg_continues(const struct offload_gro *g, const struct gro_out *o,
			  const struct seg *s)
{
	const uint8_t *head = pkt_data(g, o->first);

	if (!o->open || !s->mergeable || !same_headers(s, head))
		return false;
	if (s->seq != o->next_seq || s->payload > o->mss)
		return false;
	if (o->ip_len + s->payload > OFFLOAD_MAX_IP_LEN)
		return false;
	return s->h.v6 || xb_get16(s->p + 4) == o->next_id;
}

static bool seg_join(struct offload_gro *g, struct gro_out *o, const struct seg *s,
		     uint32_t idx)
{
	const struct gro_pkt *head = &g->pkts[o->first];

	if (!seg_continues(g, o, s))
		return false;
	if (g->flags & OFFLOAD_GRO_TRUSTED) {
		/* Authenticated bytes: nothing to verify (see offload.h). */
	} else if (!o->checked) {
		o->checked = true;
		o->open = tcp_csum_ok(pkt_data(g, o->first), head->len, s->h.iphl, s->h.v6);
		if (!o->open)
			return false;
	}
	if (!(g->flags & OFFLOAD_GRO_TRUSTED) && !tcp_csum_ok(s->p, s->len, s->h.iphl, s->h.v6))
		return false;
	g->pkts[o->last].next = idx;
	o->last = idx;
	o->segs++;
	o->ip_len += (uint32_t)s->payload;
	o->next_seq += (uint32_t)s->payload;
	o->next_id++;
	o->psh = s->flags & TCP_PSH;
	o->open = !o->psh && s->payload == o->mss;
	return true;
}

static uint32_t out_new(struct offload_gro *g, uint32_t idx, const struct seg *s)
{
	struct gro_out *o = &g->outs[g->nouts];

	memset(o, 0, sizeof(*o));
	o->first = o->last = idx;
	o->segs = 1;
	o->ip_len = g->pkts[idx].len;
	if (s) {
		o->next_seq = s->seq + (uint32_t)s->payload;
		o->next_id = (uint16_t)(xb_get16(s->p + 4) + 1);
		o->mss = (uint16_t)s->payload;
		o->open = s->mergeable && !(s->flags & TCP_PSH);
	}
	return g->nouts++;
}

static void gro_tcp(struct offload_gro *g, uint32_t idx, const struct seg *s)
{
	struct gro_flow *f = flow_find(g, s);

	if (f && seg_join(g, &g->outs[f->out], s, idx)) {
		f->used = ++g->clock;
		return;
	}
	if (!f) {
		f = flow_insert(g);
		f->hash = s->hash;
	}
	f->out = out_new(g, idx, s);
	f->used = ++g->clock;
}

/* Packet p (in in_buf or the caller's) joins the batch. */
static void gro_take(struct offload_gro *g, uint8_t *data, size_t len)
{
	struct gro_pkt *p = &g->pkts[g->npkts];
	struct seg s;

	p->data = data;
	p->len = (uint32_t)len;
	p->next = GRO_NONE;
	if (seg_parse(data, len, &s)) {
		gro_tcp(g, g->npkts++, &s);
		return;
	}
	if (flow_unknown(data, len))
		g->nflows = 0;
	out_new(g, g->npkts++, NULL);
}

bool offload_gro_add(struct offload_gro *g, const uint8_t *pkt, size_t len)
{
	uint8_t *data;

	if (g->finished || len == 0 || len > OFFLOAD_MAX_IP_LEN)
		return false;
	if (g->cap - g->in_used < HDR_LEN + len || g->npkts == OFFLOAD_GRO_MAX_PKTS)
		return false;
	data = g->in_buf + g->in_used + HDR_LEN;
	memcpy(data, pkt, len);
	g->in_used += HDR_LEN + len;
	gro_take(g, data, len);
	return true;
}

/* Without OFFLOAD_GRO_IOV, finish() copies merged packets into out_buf, which
 * holds cap bytes: a packet taken by reference counts against cap as a copy
 * would, so that no more can be merged than out_buf holds. */
bool offload_gro_add_ref(struct offload_gro *g, uint8_t *pkt, size_t len)
{
	if (g->finished || len == 0 || len > OFFLOAD_MAX_IP_LEN || g->npkts == OFFLOAD_GRO_MAX_PKTS)
		return false;
	if (!(g->flags & OFFLOAD_GRO_IOV)) {
		if (g->cap - g->in_used < HDR_LEN + len)
			return false;
		g->in_used += HDR_LEN + len;
	}
	gro_take(g, pkt, len);
	return true;
}

/* The merged packet at d + HDR_LEN, whose headers are still the first
 * segment's: its vnet header at d, the final lengths, PSH of the last
 * segment, and in the TCP checksum field the pseudo-header sum the kernel's
 * CHECKSUM_PARTIAL expects (as tcp_v4_send_check leaves it). */
static void out_headers(uint8_t *d, const struct gro_out *o)
{
	uint8_t *ip = d + HDR_LEN;
	bool v6 = ip[0] >> 4 == 6;
	size_t iphl = v6 ? 40 : 20, thl = (size_t)(ip[iphl + 12] >> 4) * 4;
	struct virtio_net_hdr vh = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = (uint16_t)(iphl + thl),
		.gso_size = o->mss,
		.csum_start = (uint16_t)iphl,
		.csum_offset = TCP_CSUM_OFF,
	};

	memcpy(d, &vh, HDR_LEN);
	if (v6) {
		xb_put16(ip + 4, (uint16_t)(o->ip_len - 40));
	} else {
		xb_put16(ip + 2, (uint16_t)o->ip_len);
		ip4_fix_csum(ip, iphl);
	}
	if (o->psh)
		ip[iphl + 13] |= TCP_PSH;
	store_raw(ip + iphl + 16, fold(pseudo_raw(ip, v6, IPPROTO_TCP, o->ip_len - iphl)));
}

static size_t out_hlen(const uint8_t *first)
{
	size_t iphl = first[0] >> 4 == 6 ? 40 : 20;

	return iphl + (size_t)(first[iphl + 12] >> 4) * 4;
}

/* The merged packet copied into out_buf, in one piece. */
static void out_build(struct offload_gro *g, struct gro_out *o)
{
	uint8_t *d = g->out_buf + g->out_used, *end;
	const uint8_t *first = pkt_data(g, o->first);
	size_t hl = out_hlen(first);

	memcpy(d + HDR_LEN, first, g->pkts[o->first].len);
	end = d + HDR_LEN + g->pkts[o->first].len;
	for (uint32_t i = g->pkts[o->first].next; i != GRO_NONE; i = g->pkts[i].next) {
		memcpy(end, pkt_data(g, i) + hl, g->pkts[i].len - hl);
		end += g->pkts[i].len - hl;
	}
	out_headers(d, o);
	o->data = d;
	o->data_len = HDR_LEN + o->ip_len;
	g->out_used += o->data_len;
}

/* The merged packet left where its segments lie: the first one's headers
 * become the merged packet's, and iovecs gather the others' payloads. */
static void out_gather(struct offload_gro *g, struct gro_out *o, uint32_t *niov)
{
	struct gro_pkt *p = &g->pkts[o->first];
	uint8_t *d = p->data - HDR_LEN;
	size_t hl = out_hlen(d + HDR_LEN);

	o->iov_first = *niov;
	g->iov[(*niov)++] = (struct iovec){ d, HDR_LEN + p->len };
	for (uint32_t i = p->next; i != GRO_NONE; i = g->pkts[i].next)
		g->iov[(*niov)++] = (struct iovec){ g->pkts[i].data + hl, g->pkts[i].len - hl };
	o->iov_n = (int)(*niov - o->iov_first);
	out_headers(d, o);
}

size_t offload_gro_finish(struct offload_gro *g)
{
	const struct virtio_net_hdr lone = {
		.flags = g->flags & OFFLOAD_GRO_TRUSTED ? VIRTIO_NET_HDR_F_DATA_VALID : 0,
	};
	uint32_t niov = 0;

	if (g->finished)
		return g->nouts;
	for (uint32_t i = 0; i < g->nouts; i++) {
		struct gro_out *o = &g->outs[i];
		struct gro_pkt *p = &g->pkts[o->first];

		if (o->segs > 1) {
			if (g->flags & OFFLOAD_GRO_IOV)
				out_gather(g, o, &niov);
			else
				out_build(g, o);
			continue;
		}
		memcpy(p->data - HDR_LEN, &lone, HDR_LEN);
		o->data = p->data - HDR_LEN;
		o->data_len = HDR_LEN + p->len;
		o->iov_first = niov;
		o->iov_n = 1;
		g->iov[niov++] = (struct iovec){ (void *)o->data, o->data_len };
	}
	g->finished = true;
	return g->nouts;
}

const uint8_t *offload_gro_get(const struct offload_gro *g, size_t i, size_t *len)
{
	if (!g->finished || i >= g->nouts || (g->flags & OFFLOAD_GRO_IOV))
		return NULL;
	*len = g->outs[i].data_len;
	return g->outs[i].data;
}


void offload_gro_set_flags(struct offload_gro *g, unsigned flags)
{
	g->flags = flags & (OFFLOAD_GRO_TRUSTED | OFFLOAD_GRO_IOV);
}

const struct iovec *offload_gro_iov(const struct offload_gro *g, size_t i, int *n)
{
	if (!g->finished || i >= g->nouts || !(g->flags & OFFLOAD_GRO_IOV))
		return NULL;
	*n = g->outs[i].iov_n;
	return &g->iov[g->outs[i].iov_first];
}
