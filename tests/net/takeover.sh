#!/usr/bin/env bash
# Takeover's mechanism on the userspace driver (gateway/cluster/takeover.h):
# a gateway peer that has never handshaken initiates at once when its
# persistent keepalive goes off -> on, and putting the keepalive back right
# after does not stop the handshake. The two UAPI sets below are the ones
# xb_takeover_run() makes through xb_wgif_set(). The device end is ours
# and wireguard-go; it has the gateway as endpoint but sends nothing, so
# only the gateway can start the session.
#
#   g (gateway: xborder-wg) ─────────── d (device: ours / wireguard-go)
#   eth0 192.0.2.1/24                     eth0 192.0.2.2/24
#   wg   198.51.100.1/24   ════WG════     wg   198.51.100.2/24
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns g d
xb_veth g eth0 d eth0
xb_addr g eth0 192.0.2.1/24
xb_addr d eth0 192.0.2.2/24

kg=$(wg genkey); kd=$(wg genkey); pg=$(echo "$kg" | wg pubkey); pd=$(echo "$kd" | wg pubkey)
ifg=xt$$g ifd=xt$$d

hs() { nq "$1" wg show "$2" latest-handshakes | awk '{ print $2 }'; }

for impl in ours wireguard-go; do
	name="device $impl"
	if ! xb_wg_up g "$ifg" ours "$kg" 51820 198.51.100.1/24 ||
	   ! xb_wg_up d "$ifd" "$impl" "$kd" 51821 198.51.100.2/24; then
		xb_fail "$name: bring-up"; xb_wg_down g "$ifg"; xb_wg_down d "$ifd"; continue
	fi
	n g wg set "$ifg" peer "$pd" allowed-ips 198.51.100.2/32
	n d wg set "$ifd" peer "$pg" allowed-ips 198.51.100.1/32 endpoint 192.0.2.1:51820
	# Control: an endpoint alone starts nothing (that is why takeover exists).
	n g wg set "$ifg" peer "$pd" endpoint 192.0.2.2:51821
	sleep 1.5
	xb_check "$name: no handshake without takeover" test "$(hs g "$ifg")" = 0
	# Takeover's two sets: keepalive on (sends), then back to off.
	t0=$(date +%s%N)
	n g wg set "$ifg" peer "$pd" endpoint 192.0.2.2:51821 persistent-keepalive 1
	n g wg set "$ifg" peer "$pd" persistent-keepalive 0
	if xb_wait 3000 test "$(hs d "$ifd")" != 0; then
		xb_ok "$name: the gateway initiated ($(( ($(date +%s%N) - t0) / 1000000 )) ms to the device's handshake)"
	else
		xb_fail "$name: the gateway initiated" "no handshake on the device within 3 s"
	fi
	xb_check "$name: keepalive back to off" test "$(nq g wg show "$ifg" persistent-keepalive | awk '{ print $2 }')" = off
	xb_check "$name: the device's traffic flows at once" nq d ping -c 1 -W 1 198.51.100.1
	xb_wg_down g "$ifg"; xb_wg_down d "$ifd"
done
xb_end
