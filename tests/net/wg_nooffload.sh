#!/usr/bin/env bash
# Userspace WireGuard on a kernel whose TUN refuses offloads: TUNSETOFFLOAD
# fails (xb-noioctl makes it fail with EINVAL, as a kernel without TSO for
# TUN does), so xborder-wg must carry plain packets — no vnet header on
# its reads and writes — and say so in its log.
#
#   a ─── eth0 192.0.2.1/24 ───── eth0 192.0.2.2/24 ─── b
#   wA 198.51.100.1/24 (offloads refused)  ══WG══  wB 198.51.100.2/24
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24
xb_addr b eth0 192.0.2.2/24

TUNSETOFFLOAD=0x400454d0
ka=$(wg genkey); kb=$(wg genkey); pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
ifa=xw$$a ifb=xw$$b

# Side a by hand: xb_wg_up has no place for a wrapper.
xb_bg a "$XB_BIN/xb-noioctl" "$TUNSETOFFLOAD" 22 "$XB_BIN/xborder-wg" -f "$ifa"
pid_a=$XB_LAST_PID log_a=$XB_LAST_LOG
XB_WG_PID[a/$ifa]=$pid_a
xb_check "refused offloads: xborder-wg starts" xb_wait 3000 test -S "/var/run/wireguard/$ifa.sock"
printf '%s\n' "$ka" >"$XB_TMP/$ifa.key"
n a wg set "$ifa" private-key "$XB_TMP/$ifa.key" listen-port 51820
xb_addr a "$ifa" 198.51.100.1/24
nq a ip link set "$ifa" up
xb_wg_up b "$ifb" ours "$kb" 51821 198.51.100.2/24
n a wg set "$ifa" peer "$pb" allowed-ips 198.51.100.2/32 endpoint 192.0.2.2:51821
n b wg set "$ifb" peer "$pa" allowed-ips 198.51.100.1/32

xb_check "its log says the offloads are not available" grep -q "TUN offloads.*not available" "$log_a"
xb_check "ping through the tunnel (a without offloads)" nq a ping -c 3 -i 0.2 -W 2 198.51.100.2
xb_check "ping back" nq b ping -c 2 -i 0.2 -W 2 198.51.100.1
xb_check "TCP transfer from the side with offloads, bytes equal" xb_tcp_compare b a 198.51.100.1 2000000
xb_check "TCP transfer to it, bytes equal" xb_tcp_compare a b 198.51.100.2 2000000
xb_wg_down a "$ifa"
xb_wg_down b "$ifb"
xb_end
