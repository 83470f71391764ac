#!/usr/bin/env bash
# xborderd with the kernel's WireGuard and GRE: the device interface (auto
# picks the kernel), a WireGuard tunnel with backend = "kernel", configured
# through generic netlink and read back with `wg`, and a GRE tunnel with
# backend = "kernel" to the partner's own Linux GRE; reloads that remove and
# add a tunnel, a restart and a stop leave no link behind. Skips where the
# kernel has no WireGuard (tests/vm/vm.sh runs it in Debian's kernel).
#
#   gw ─────────────── par
#   192.0.2.9/30       192.0.2.10/30
#   xb-k<id> ══WG═════ wireguard-go   inner 192.0.2.13/30 ↔ .14
#   xb-g<id> ══GRE════ ip_gre, key 7  inner 192.0.2.17/30 ↔ .18
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns gw par
xb_need_link gw WireGuard type wireguard
xb_need_link gw GRE type gre local 192.0.2.9 remote 192.0.2.10
xb_veth gw ep par eg
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30

ID=$$ GWIF=xg$ID TUN=k$ID GRE=g$ID PIF=xp$ID CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
policy() {	# the policy with $GRE_TUN and $GRE_VIA (empty: no GRE tunnel)
cat >"$XB_TMP/xborder.conf" <<EOC
gateway = { interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; control_socket = "$CTL"; state_dir = "$XB_TMP/state"; };
devices = ( { name = "d1"; public_key = "$(pub "$(wg genkey)")"; } );
tunnels = ( { name = "$TUN"; backend = "kernel"; endpoint = "192.0.2.10:51900";
  private_key_file = "tun.key"; public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; }
  $GRE_TUN );
rules = ( { name = "all"; action = "allow"; via = [ "$TUN"$GRE_VIA ]; } );
EOC
}
GRE_TUN=", { name = \"$GRE\"; type = \"gre\"; backend = \"kernel\"; local = \"192.0.2.9\"; remote = \"192.0.2.10\"; key = 7; address4 = \"192.0.2.17/30\"; }"
GRE_VIA=", \"$GRE\""
policy
xb_wg_up par "$PIF" wireguard-go "$kp" 51900 192.0.2.14/30
n par ip link add xpg$ID type gre local 192.0.2.10 remote 192.0.2.9 key 7
xb_addr par xpg$ID 192.0.2.18/30
nq par ip link set xpg$ID up
n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"; pid=$XB_LAST_PID log=$XB_LAST_LOG
xb_check "xborderd starts" xb_wait 60000 grep -q "gateway up" "$log"
xb_check "the device interface runs in the kernel" grep -q "$GWIF: kernel WireGuard" "$log"
xb_check "the tunnel runs in the kernel" sh -c "ip -n $XB_RUN-gw -d link show xb-$TUN | grep -q wireguard"
xb_check "wg shows the partner (set through generic netlink)" \
	sh -c "ip netns exec $XB_RUN-gw wg show xb-$TUN peers | grep -qF '$(pub "$kp")'"
xb_check "the tunnel carries traffic" nq gw ping -c 2 -i 0.3 -W 2 192.0.2.14
xb_check "the GRE tunnel runs in the kernel, keyed" \
	sh -c "ip -n $XB_RUN-gw -d link show xb-$GRE | grep -q 'gre remote 192.0.2.10 local 192.0.2.9 .*ikey 0.0.0.7 okey 0.0.0.7'"
xb_check "the GRE tunnel carries traffic to the partner's Linux GRE" nq gw ping -c 2 -i 0.3 -W 2 192.0.2.18

# links — what xborderd built: every link in gw but lo, the veth and the
# fallback devices the tunnel modules put in every namespace (gre0, …)
links() {
	ip -n "$XB_RUN-gw" -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
		grep -vxE 'lo|ep|gre0|gretap0|erspan0|ip6gre0|ip6tnl0|tunl0|sit0|ip_vti0|ip6_vti0' | sort | tr '\n' ' '
}
sorted() { printf '%s\n' "$@" | sort | tr '\n' ' '; }
reload() { nq gw "$XB_BIN/xborderctl" -s "$CTL" reload >/dev/null; }
GRE_TUN= GRE_VIA= policy
xb_check "reload without the GRE tunnel: its link goes" reload
xb_check "... and only it ($(links))" test "$(links)" = "$(sorted "$GWIF" "xb-$TUN")"
GRE_TUN=", { name = \"$GRE\"; type = \"gre\"; backend = \"kernel\"; local = \"192.0.2.9\"; remote = \"192.0.2.10\"; key = 7; address4 = \"192.0.2.17/30\"; }"
GRE_VIA=", \"$GRE\""
policy
xb_check "reload with it again: it is back" reload
xb_check "... and carries traffic" nq gw ping -c 2 -i 0.3 -W 2 192.0.2.18
kill "$pid"; wait "$pid"
xb_check "SIGTERM removes the kernel interfaces" sh -c "! ip -n $XB_RUN-gw link show xb-$TUN 2>/dev/null"
xb_check "... every one of them (left: '$(links)')" test -z "$(links)"
xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"; pid=$XB_LAST_PID log=$XB_LAST_LOG
xb_check "restart: xborderd starts again" xb_wait 60000 grep -q "gateway up" "$log"
xb_check "... with its three links ($(links))" test "$(links)" = "$(sorted "$GWIF" "xb-$GRE" "xb-$TUN")"
xb_check "... both tunnels carry traffic" sh -c "ip netns exec $XB_RUN-gw ping -c 2 -i 0.3 -W 2 192.0.2.14 && ip netns exec $XB_RUN-gw ping -c 2 -i 0.3 -W 2 192.0.2.18"
kill "$pid"; wait "$pid"
xb_check "stop: nothing left behind (left: '$(links)')" test -z "$(links)"
xb_end
