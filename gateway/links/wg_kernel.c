/* The kernel WireGuard backend: configuration through the generic netlink
 * family "wireguard" (include/uapi/linux/wireguard.h), spoken with libmnl.
 *
 * A message holds at most one socket buffer, so a large peer list is sent
 * as several SET_DEVICE messages: the first carries the device settings and
 * WGDEVICE_F_REPLACE_PEERS, later ones only peers; a peer whose allowed IPs
 * do not fit is continued in the next message without
 * WGPEER_F_REPLACE_ALLOWEDIPS, as wg(8) does. A GET_DEVICE dump may likewise
 * split a peer over messages: a peer repeating the previous public key
 * continues it.
 *
 * Not exercised on the development machines (their kernel has no
 * WireGuard); the backend tests skip there with the reason.
 */
#include "gateway/kernel/netlink.h"
#include "gateway/links/wgif.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define BUF_LEN MNL_SOCKET_BUFFER_SIZE

struct genl {
	struct xb_nl nl;
	uint16_t family;
};

static int family_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(a, MNL_TYPE_U16) == 0)
		*(uint16_t *)data = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static int family_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_cb, data);
}

static struct nlmsghdr *genl_msg(char *buf, uint16_t type, uint8_t cmd, uint8_t version,
				 uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *gh;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	gh = mnl_nlmsg_put_extra_header(nlh, sizeof(*gh));
	gh->cmd = cmd;
	gh->version = version;
	return nlh;
}

/* Send and read replies until the ack or the dump's end: 0 or a positive
 * errno, this file's convention (wgif.h). The client wipes what it read:
 * replies to GET carry keys. */
static int genl_talk(struct genl *g, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	return -xb_nl_request(&g->nl, nlh, cb, data);
}

static int genl_open(struct genl *g)
{
	char buf[BUF_LEN];
	struct nlmsghdr *nlh;
	int e;

	memset(g, 0, sizeof(*g));
	if ((e = -xb_nl_open(&g->nl, NETLINK_GENERIC, 0)))
		return e;
	nlh = genl_msg(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_ACK);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	e = genl_talk(g, nlh, family_msg_cb, &g->family);
	if (!e && !g->family)
		e = EPROTONOSUPPORT;
	if (e)
		xb_nl_close(&g->nl);
	return e;
}

/* ---- SET_DEVICE ---- */

struct cursor {
	size_t peer, aip;	/* where the next message resumes */
	bool first;
};

static bool put_aip(struct nlmsghdr *nlh, const struct xb_prefix *p)
{
	struct nlattr *n = mnl_attr_nest_start_check(nlh, BUF_LEN, 0);

	if (!n)
		return false;
	if (!mnl_attr_put_u16_check(nlh, BUF_LEN, WGALLOWEDIP_A_FAMILY, p->family) ||
	    !mnl_attr_put_check(nlh, BUF_LEN, WGALLOWEDIP_A_IPADDR, p->family == AF_INET ? 4 : 16,
				p->addr) ||
	    !mnl_attr_put_u8_check(nlh, BUF_LEN, WGALLOWEDIP_A_CIDR_MASK, p->cidr)) {
		mnl_attr_nest_cancel(nlh, n);
		return false;
	}
	mnl_attr_nest_end(nlh, n);
	return true;
}

static bool put_peer_head(struct nlmsghdr *nlh, const struct wg_peer_conf *pc, bool resumed)
{
	uint32_t flags = 0;

	if (!mnl_attr_put_check(nlh, BUF_LEN, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, pc->public_key))
		return false;
	if (resumed)	/* only the rest of its allowed IPs */
		return true;
	if (pc->remove)
		flags |= WGPEER_F_REMOVE_ME;
	if (pc->replace_allowed_ips)
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (pc->update_only)
		flags |= WGPEER_F_UPDATE_ONLY;
	if (flags && !mnl_attr_put_u32_check(nlh, BUF_LEN, WGPEER_A_FLAGS, flags))
		return false;
	if (pc->has_preshared_key &&
	    !mnl_attr_put_check(nlh, BUF_LEN, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, pc->preshared_key))
		return false;
	if (pc->endpoint.sa.sa_family == AF_INET &&
	    !mnl_attr_put_check(nlh, BUF_LEN, WGPEER_A_ENDPOINT, sizeof(pc->endpoint.in), &pc->endpoint.in))
		return false;
	if (pc->endpoint.sa.sa_family == AF_INET6 &&
	    !mnl_attr_put_check(nlh, BUF_LEN, WGPEER_A_ENDPOINT, sizeof(pc->endpoint.in6), &pc->endpoint.in6))
		return false;
	if (pc->has_persistent_keepalive &&
	    !mnl_attr_put_u16_check(nlh, BUF_LEN, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
				    pc->persistent_keepalive))
		return false;
	return true;
}

/* Adds as much of peer cur->peer as fits; false when the message is full. */
static bool put_peer(struct nlmsghdr *nlh, const struct wg_peer_conf *pc, struct cursor *cur)
{
	struct nlattr *n = mnl_attr_nest_start_check(nlh, BUF_LEN, 0), *aips;
	size_t start = cur->aip;

	if (!n || !put_peer_head(nlh, pc, start > 0))
		goto cancel;
	if (pc->n_allowed_ips > start) {
		if (!(aips = mnl_attr_nest_start_check(nlh, BUF_LEN, WGPEER_A_ALLOWEDIPS)))
			goto cancel;
		while (cur->aip < pc->n_allowed_ips && put_aip(nlh, &pc->allowed_ips[cur->aip]))
			cur->aip++;
		if (cur->aip == start) {
			mnl_attr_nest_cancel(nlh, aips);
			goto cancel;
		}
		mnl_attr_nest_end(nlh, aips);
	}
	mnl_attr_nest_end(nlh, n);
	if (cur->aip < pc->n_allowed_ips)
		return false;	/* continued in the next message */
	cur->peer++;
	cur->aip = 0;
	return true;
cancel:
	if (n)
		mnl_attr_nest_cancel(nlh, n);
	cur->aip = start;
	return false;
}

static void put_device(struct nlmsghdr *nlh, const struct wg_conf *c)
{
	if (c->has_private_key)
		mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, c->private_key);
	if (c->has_listen_port)
		mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, c->listen_port);
	if (c->has_fwmark)
		mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, c->fwmark);
	if (c->replace_peers)
		mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
}

int xb_wgk_set(const char *ifname, const struct wg_conf *c)
{
	char *buf = malloc(BUF_LEN);
	struct cursor cur = { .first = true };
	struct genl g;
	int e;

	if (!buf)
		return ENOMEM;
	if ((e = genl_open(&g))) {
		free(buf);
		return e;
	}
	do {
		struct nlmsghdr *nlh = genl_msg(buf, g.family, WG_CMD_SET_DEVICE, WG_GENL_VERSION,
						NLM_F_ACK);
		struct nlattr *peers;
		size_t before = cur.peer, before_aip = cur.aip;

		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
		if (cur.first)
			put_device(nlh, c);
		cur.first = false;
		if (cur.peer < c->n_peers && (peers = mnl_attr_nest_start_check(nlh, BUF_LEN, WGDEVICE_A_PEERS))) {
			while (cur.peer < c->n_peers && put_peer(nlh, &c->peers[cur.peer], &cur))
				;
			mnl_attr_nest_end(nlh, peers);
			if (cur.peer == before && cur.aip == before_aip) {
				e = EMSGSIZE;	/* one allowed IP does not fit: cannot happen */
				break;
			}
		}
		e = genl_talk(&g, nlh, NULL, NULL);
	} while (!e && cur.peer < c->n_peers);
	xb_nl_close(&g.nl);
	sodium_memzero(buf, BUF_LEN);	/* keys */
	free(buf);
	return e;
}

/* ---- GET_DEVICE ---- */

static int parse_aip(const struct nlattr *a, void *data)
{
	struct xb_prefix *p = data;

	switch (mnl_attr_get_type(a)) {
	case WGALLOWEDIP_A_FAMILY:
		if (!mnl_attr_validate(a, MNL_TYPE_U16))
			p->family = mnl_attr_get_u16(a);
		break;
	case WGALLOWEDIP_A_IPADDR:
		if (mnl_attr_get_payload_len(a) <= 16)
			memcpy(p->addr, mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
		break;
	case WGALLOWEDIP_A_CIDR_MASK:
		if (!mnl_attr_validate(a, MNL_TYPE_U8))
			p->cidr = mnl_attr_get_u8(a);
		break;
	}
	return MNL_CB_OK;
}

static int parse_aips(const struct nlattr *a, void *data)
{
	struct wg_peer_conf *pc = data;
	struct xb_prefix p = { 0 };

	if (mnl_attr_parse_nested(a, parse_aip, &p) < 0)
		return MNL_CB_ERROR;
	if ((p.family == AF_INET && p.cidr <= 32) || (p.family == AF_INET6 && p.cidr <= 128))
		if (!xb_prefix_append(&pc->allowed_ips, &pc->n_allowed_ips, &p))
			return MNL_CB_ERROR;
	return MNL_CB_OK;
}

static void parse_endpoint(struct wg_peer_conf *pc, const struct nlattr *a)
{
	size_t len = mnl_attr_get_payload_len(a);

	if (len == sizeof(struct sockaddr_in) || len == sizeof(struct sockaddr_in6))
		memcpy(&pc->endpoint, mnl_attr_get_payload(a), len);
}

static int parse_peer_attr(const struct nlattr *a, void *data)
{
	struct wg_peer_conf *pc = data;
	struct { int64_t sec, nsec; } ts;

	switch (mnl_attr_get_type(a)) {
	case WGPEER_A_PRESHARED_KEY:
		if (mnl_attr_get_payload_len(a) == WG_KEY_LEN) {
			memcpy(pc->preshared_key, mnl_attr_get_payload(a), WG_KEY_LEN);
			pc->has_preshared_key = !wg_key_is_zero(pc->preshared_key);
		}
		break;
	case WGPEER_A_ENDPOINT: parse_endpoint(pc, a); break;
	case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
		if (!mnl_attr_validate(a, MNL_TYPE_U16))
			pc->persistent_keepalive = mnl_attr_get_u16(a);
		break;
	case WGPEER_A_LAST_HANDSHAKE_TIME:
		if (mnl_attr_get_payload_len(a) == sizeof(ts)) {
			memcpy(&ts, mnl_attr_get_payload(a), sizeof(ts));	/* 4-byte aligned only */
			pc->last_handshake_sec = ts.sec;
			pc->last_handshake_nsec = ts.nsec;
		}
		break;
	case WGPEER_A_RX_BYTES:
		if (!mnl_attr_validate(a, MNL_TYPE_U64))
			pc->rx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_TX_BYTES:
		if (!mnl_attr_validate(a, MNL_TYPE_U64))
			pc->tx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_PROTOCOL_VERSION:
		if (!mnl_attr_validate(a, MNL_TYPE_U32))
			pc->protocol_version = mnl_attr_get_u32(a);
		break;
	case WGPEER_A_ALLOWEDIPS:
		return mnl_attr_parse_nested(a, parse_aips, pc) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
	}
	return MNL_CB_OK;
}

static int key_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == WGPEER_A_PUBLIC_KEY && mnl_attr_get_payload_len(a) == WG_KEY_LEN)
		memcpy(data, mnl_attr_get_payload(a), WG_KEY_LEN);
	return MNL_CB_OK;
}

static int parse_peer(const struct nlattr *a, void *data)
{
	struct wg_conf *c = data;
	uint8_t key[WG_KEY_LEN] = { 0 };
	struct wg_peer_conf *pc;

	if (mnl_attr_parse_nested(a, key_cb, key) < 0 || wg_key_is_zero(key))
		return MNL_CB_ERROR;
	if (c->n_peers && !memcmp(c->peers[c->n_peers - 1].public_key, key, WG_KEY_LEN))
		pc = &c->peers[c->n_peers - 1];		/* continued from the last message */
	else if ((pc = wg_conf_add_peer(c)))
		memcpy(pc->public_key, key, WG_KEY_LEN);
	else
		return MNL_CB_ERROR;
	return mnl_attr_parse_nested(a, parse_peer_attr, pc) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

static int parse_device_attr(const struct nlattr *a, void *data)
{
	struct wg_conf *c = data;

	switch (mnl_attr_get_type(a)) {
	case WGDEVICE_A_PRIVATE_KEY:
		if (mnl_attr_get_payload_len(a) == WG_KEY_LEN) {
			memcpy(c->private_key, mnl_attr_get_payload(a), WG_KEY_LEN);
			c->has_private_key = !wg_key_is_zero(c->private_key);
		}
		break;
	case WGDEVICE_A_LISTEN_PORT:
		if (!mnl_attr_validate(a, MNL_TYPE_U16)) {
			c->listen_port = mnl_attr_get_u16(a);
			c->has_listen_port = true;
		}
		break;
	case WGDEVICE_A_FWMARK:
		if (!mnl_attr_validate(a, MNL_TYPE_U32)) {
			c->fwmark = mnl_attr_get_u32(a);
			c->has_fwmark = true;
		}
		break;
	case WGDEVICE_A_PEERS:
		return mnl_attr_parse_nested(a, parse_peer, c) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
	}
	return MNL_CB_OK;
}

static int device_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), parse_device_attr, data);
}

int xb_wgk_get(const char *ifname, struct wg_conf *out)
{
	char buf[BUF_LEN];
	struct nlmsghdr *nlh;
	struct genl g;
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = genl_open(&g)))
		return e;
	nlh = genl_msg(buf, g.family, WG_CMD_GET_DEVICE, WG_GENL_VERSION, NLM_F_ACK);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	e = -xb_nl_dump(&g.nl, nlh, device_msg_cb, out);
	xb_nl_close(&g.nl);
	if (e)
		wg_conf_free(out);
	return e;
}
