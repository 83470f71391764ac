#!/usr/bin/env bash
# Userspace WireGuard: handshake and data, ours ↔ ours and ours ↔ wireguard-go,
# each side as initiator, IPv4 and IPv6 inside and outside.
#
#   a ───────────────────────── b
#   eth0 192.0.2.1/24            eth0 192.0.2.2/24
#        2001:db8:1::1/64             2001:db8:1::2/64
#   wA   198.51.100.1/24  ══WG══ wB   198.51.100.2/24
#        2001:db8:100::1/64           2001:db8:100::2/64
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr b eth0 192.0.2.2/24 2001:db8:1::2/64

ka=$(wg genkey); kb=$(wg genkey); pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
ifa=xw$$a ifb=xw$$b

pair() {	# pair IMPL_A IMPL_B OUTER_B_ADDR
	xb_wg_up a "$ifa" "$1" "$ka" 51820 198.51.100.1/24 2001:db8:100::1/64 || return 1
	xb_wg_up b "$ifb" "$2" "$kb" 51821 198.51.100.2/24 2001:db8:100::2/64 || return 1
	n a wg set "$ifa" peer "$pb" allowed-ips 198.51.100.2/32,2001:db8:100::2/128 endpoint "$3:51821"
	n b wg set "$ifb" peer "$pa" allowed-ips 198.51.100.1/32,2001:db8:100::1/128
}
unpair() { xb_wg_down a "$ifa"; xb_wg_down b "$ifb"; }

for combo in "ours ours" "ours wireguard-go" "wireguard-go ours"; do
	set -- $combo
	for outer in 192.0.2.2 "[2001:db8:1::2]"; do
		name="$1 → $2 over ${outer}"
		if ! pair "$1" "$2" "$outer"; then xb_fail "$name: bring-up"; unpair; continue; fi
		xb_check "$name: ping (IPv4 inside, A initiates)" nq a ping -c 3 -i 0.2 -W 2 198.51.100.2
		xb_check "$name: ping (IPv6 inside)" nq a ping -c 3 -i 0.2 -W 2 2001:db8:100::2
		xb_check "$name: B answers back" nq b ping -c 2 -i 0.2 -W 2 198.51.100.1
		xb_check "$name: TCP transfer, bytes equal" xb_tcp_compare a b 198.51.100.2 4000000
		unpair
	done
done
# The same with two crypto workers (the default on a 2-core machine is one):
# TCP through the parallel path, and interop both ways.
for combo in "ours ours" "ours wireguard-go" "wireguard-go ours"; do
	set -- $combo
	name="$1 → $2, xborder-wg --workers 2"
	XB_WG_ARGS="--workers 2"
	if ! pair "$1" "$2" 192.0.2.2; then xb_fail "$name: bring-up"; unpair; continue; fi
	xb_check "$name: ping" nq a ping -c 3 -i 0.2 -W 2 198.51.100.2
	xb_check "$name: TCP transfer A → B, bytes equal" xb_tcp_compare a b 198.51.100.2 4000000
	xb_check "$name: TCP transfer B → A, bytes equal" xb_tcp_compare b a 198.51.100.1 4000000
	unpair
done
unset XB_WG_ARGS
xb_end
