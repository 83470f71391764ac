#!/usr/bin/env bash
# xborderd with the kernel's WireGuard: the device interface (auto picks the
# kernel) and a tunnel with backend = "kernel", configured through generic
# netlink and read back with `wg`. Skips where the kernel has no WireGuard.
#
#   gw ─────────────── par
#   192.0.2.9/30       192.0.2.10/30 (wireguard-go)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns gw par
if ! err=$(nq gw ip link add xbk-probe type wireguard 2>&1); then
	xb_skip "kernel backend" "the kernel has no WireGuard (ip link add type wireguard: ${err:-failed})"
	xb_end
fi
nq gw ip link del xbk-probe
xb_veth gw ep par eg
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30

ID=$$ GWIF=xg$ID TUN=k$ID PIF=xp$ID CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
cat >"$XB_TMP/xborder.conf" <<EOC
gateway = { interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; control_socket = "$CTL"; state_dir = "$XB_TMP/state"; };
devices = ( { name = "d1"; public_key = "$(pub "$(wg genkey)")"; } );
tunnels = ( { name = "$TUN"; backend = "kernel"; endpoint = "192.0.2.10:51900";
  private_key_file = "tun.key"; public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; } );
rules = ( { name = "all"; action = "allow"; via = [ "$TUN" ]; } );
EOC
xb_wg_up par "$PIF" wireguard-go "$kp" 51900 192.0.2.14/30
n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"; pid=$XB_LAST_PID log=$XB_LAST_LOG
xb_check "xborderd starts" xb_wait 20000 grep -q "gateway up" "$log"
xb_check "the device interface runs in the kernel" grep -q "$GWIF: kernel WireGuard" "$log"
xb_check "the tunnel runs in the kernel" sh -c "ip -n $XB_RUN-gw -d link show xb-$TUN | grep -q wireguard"
xb_check "wg shows the partner (set through generic netlink)" \
	sh -c "ip netns exec $XB_RUN-gw wg show xb-$TUN peers | grep -qF '$(pub "$kp")'"
xb_check "the tunnel carries traffic" nq gw ping -c 2 -i 0.3 -W 2 192.0.2.14
kill "$pid"; wait "$pid"
xb_check "SIGTERM removes the kernel interfaces" sh -c "! ip -n $XB_RUN-gw link show xb-$TUN 2>/dev/null"
xb_end
