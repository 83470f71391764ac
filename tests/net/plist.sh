#!/usr/bin/env bash
# Access lists from files (a rule's to_lists) end to end, and IPv6 through a
# tunnel that masquerades IPv4 only.
#
#   alice ── 192.0.2.1/30 ↔ .2 ── gw: xborderd ── 192.0.2.9/30 ↔ .10 ── par ── 203.0.113.1/24 ── org
#     198.51.100.10                 WG device side       WG tunnel         │       203.0.113.10 (erp)
#     2001:db8:100::10              pool4, pool6         inner 192.0.2.13  │       203.0.113.20 (other)
#                                                        (no address6)     └ counts IPv6 from the pool
#
# The rule "erp" allows alice only what lists/erp.txt names: 203.0.113.10
# among 10 000 generated prefixes (tests/lib/plist.sh), and 2001:db8:cafe::/48.
# 203.0.113.20 is in no list: refused. The list is edited (.10 out, .20
# in) and the daemon reloaded: the change takes effect; a list with a bad
# line fails the reload, citing LISTFILE:LINE, and the running table stays.
# IPv6 to 2001:db8:cafe::1 is allowed by the list but the tunnel has no
# address6 to masquerade to: it is refused at the gateway (alice hears
# "administratively prohibited") and nothing from the pool reaches the
# partner.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/plist.sh"
xb_begin
xb_ns alice gw par org
xb_veth alice eth0 gw ea
xb_veth gw ep par eg
xb_veth par eo org eth0
xb_addr alice eth0 192.0.2.1/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30
xb_addr par eo 203.0.113.1/24
xb_addr org eth0 203.0.113.10/24 203.0.113.20/24
nq org ip route add default via 203.0.113.1
xb_router par

ID=$$
GWIF=xg$ID TUN=l$ID PIF=xp$ID AIF=xa$ID
CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) ka=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
mkdir -p "$XB_TMP/lists"
xb_plist_gen 10000 "$XB_TMP/lists/erp.txt"
printf '# ERP\n203.0.113.10\n2001:db8:cafe::/48\n' >>"$XB_TMP/lists/erp.txt"

cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; pool6 = "2001:db8:100::/64";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
};
groups = [ "finance" ];
devices = (
  { name = "alice"; public_key = "$(pub "$ka")"; groups = [ "finance" ];
    address4 = "198.51.100.10"; address6 = "2001:db8:100::10"; }
);
tunnels = (
  { name = "$TUN"; endpoint = "192.0.2.10:51900"; private_key_file = "tun.key";
    public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; }
);
rules = (
  { name = "erp"; groups = [ "finance" ]; to_lists = [ "lists/erp.txt" ]; protocols = [ "icmp", "icmpv6" ];
    action = "allow"; via = [ "$TUN" ]; }
);
EOF

# The partner accepts the pool's IPv6 from the gateway, so that a leak would
# arrive; it counts what comes from the pools.
xb_wg_up par "$PIF" wireguard-go "$kp" 51900 192.0.2.14/30 || { xb_fail "partner bring-up"; xb_end; }
n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32,2001:db8:100::/64
nq par nft -f - <<EOF
table inet count {
	chain in {
		type filter hook prerouting priority 0;
		iifname "$PIF" ip6 saddr 2001:db8:100::/64 counter
	}
}
EOF
leaked6() { nq par nft list table inet count | awk '/counter/ { print $(NF-2) }'; }

if ! xb_gw_start; then
	xb_fail "xborderd starts with a 10 000-prefix list" "$(tail -n 5 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with a 10 000-prefix list"
xb_wg_up alice "$AIF" ours "$ka" 0 198.51.100.10/24 2001:db8:100::10/64 || { xb_fail "device bring-up"; xb_end; }
n alice wg set "$AIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 \
	allowed-ips 198.51.100.0/24,203.0.113.0/24,2001:db8:100::/64,2001:db8:cafe::/48
nq alice ip route add 203.0.113.0/24 dev "$AIF"
nq alice ip -6 route add 2001:db8:cafe::/48 dev "$AIF"

reaches() { nq alice ping -c 1 -W 1 "$1" >/dev/null || nq alice ping -c 2 -i 0.3 -W 2 "$1"; }
blocked() { ! nq alice ping -c 2 -i 0.2 -W 1 "$1"; }
elements() { nq gw nft list set inet xborder r_erp_to4 | grep -o '[0-9./]*/30' | wc -l; }

xb_check "the list's 8 000 IPv4 prefixes are in the rule's set (and its host)" \
	sh -c "[ \$(ip netns exec $XB_RUN-gw nft list set inet xborder r_erp_to4 | grep -o '[0-9./]*/30' | wc -l) = 8000 ]"
xb_check "xborderctl rules names the list and what it holds" \
	sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL rules | grep -q 'list:lists/erp.txt(10002)'"
xb_check "203.0.113.10 (listed) is reachable" reaches 203.0.113.10
xb_check "203.0.113.20 (in no list) is refused" blocked 203.0.113.20

# IPv6: listed, but the tunnel masquerades IPv4 only.
out=$(nq alice ping -6 -c 1 -W 2 2001:db8:cafe::1 2>&1)
xb_check "IPv6 through a tunnel without address6: refused, administratively ($(echo "$out" | grep -io 'prohibited' | head -n 1))" \
	sh -c 'echo "$1" | grep -qi "prohibited"' _ "$out"
got=$(leaked6)
xb_check "... and nothing with a pool address reached the partner (${got:-?} packets)" test "$got" = 0

# Edit the list: .10 out, .20 in; reload.
sed -i 's/^203\.0\.113\.10$/203.0.113.20/' "$XB_TMP/lists/erp.txt"
xb_check "reload with the changed list" ctl reload
xb_check "after the reload 203.0.113.20 (now listed) is reachable" reaches 203.0.113.20
xb_check "after the reload 203.0.113.10 (taken out) is refused" blocked 203.0.113.10

# A bad line: the reload fails and says where; the table stays.
printf '203.0.113.300\n' >>"$XB_TMP/lists/erp.txt"
bad=$(wc -l <"$XB_TMP/lists/erp.txt")
out=$(ctl reload 2>&1); rc=$?
xb_check "a list with a bad line fails the reload at LISTFILE:LINE ($(echo "$out" | grep -o 'erp.txt:[0-9]*' | head -n 1))" \
	sh -c '[ "$1" != 0 ] && echo "$2" | grep -q "lists/erp.txt:$3: .203.0.113.300. is not"' _ "$rc" "$out" "$bad"
xb_check "after the failed reload 203.0.113.20 is still reachable" reaches 203.0.113.20
xb_check "... and 203.0.113.10 still refused" blocked 203.0.113.10

xb_check "SIGTERM: xborderd exits" xb_gw_stop
xb_end
