#!/usr/bin/env bash
# Reload is all or nothing (docs/operations.md, "Reload"): a reload that
# fails at any step leaves the running policy whole — interfaces, device
# peers, table, routes and the address file; one that frees a device's
# address cuts that device's flows and does not give the address away.
#
#   alice ──WG── gw: xborderd ── 192.0.2.9/30 ↔ .10 ── org 203.0.113.10
#   198.51.100.x   192.0.2.2/30 ↔ alice .1
#                  pool 198.51.100.0/24, tunnel xb-a$ID (no partner needed:
#                  its route is there whether or not it has a session)
#
# The failures are real ones, made in gw's kernel by the test:
#   table:  1023 base chains of another table on the forward hook; the
#           kernel allows 1024 per hook, and a reload's transaction holds
#           the old table's forward chain and the new one at once (E2BIG).
#   routes: new interfaces without IPv6 (net.ipv6.conf.default.disable_ipv6),
#           so the new tunnel's IPv6 route is refused (EACCES).
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
command -v conntrack >/dev/null || { echo "conntrack (conntrack-tools) is missing: the test reads gw's flow table with it"; exit 77; }
xb_ns alice gw org
xb_veth alice eth0 gw ea
xb_veth gw eo org eth0
xb_addr alice eth0 192.0.2.1/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw eo 192.0.2.9/30
xb_addr org eth0 192.0.2.10/30 203.0.113.10/24
nq org ip route add 198.51.100.0/24 via 192.0.2.9
nq gw ip route add 203.0.113.0/24 via 192.0.2.10

ID=$$
GWIF=xg$ID T1=a$ID T2=b$ID AIF=xa$ID
CTL=$XB_TMP/ctl.sock STATE=$XB_TMP/state/addresses
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) ka=$(wg genkey) kb=$(wg genkey) kc=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
kt2=$(wg genkey)
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key"; echo "$kt2" >"$XB_TMP/tun2.key")

dev() { echo "  { name = \"$1\"; public_key = \"$(pub "$2")\"; groups = [ \"staff\" ]; }"; }
tun() { echo "  { name = \"$1\"; endpoint = \"192.0.2.10:$2\"; private_key_file = \"${4:-tun.key}\"; listen_port = $2;
    public_key = \"$(pub "$kp")\"; address4 = \"$3/30\"; }"; }
# policy DEVICES TUNNELS RULES — the gateway's policy (pool addresses only).
policy() {
	cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
};
groups = [ "staff" ];
devices = (
$1
);
tunnels = (
$2
);
rules = (
  { name = "web"; groups = [ "staff" ]; to = [ "203.0.113.0/24" ]; action = "allow"; via = [ "internet" ]; }$3
);
EOF
}
OLD_DEVS="$(dev alice "$ka"),
$(dev bob "$kb")"
OLD_TUNS=$(tun "$T1" 51901 192.0.2.13)
# The new policy also gives t1 a new key: switching back must restore the
# old one, which only the interface holds (the policy's copy is wiped).
NEW_TUNS="$(tun "$T1" 51901 192.0.2.13 tun2.key),
$(tun "$T2" 51902 192.0.2.17)"
EXTRA=",
  { name = \"extra\"; groups = [ \"staff\" ]; to = [ \"203.0.113.20/32\" ]; action = \"allow\"; via = [ \"$T2\" ]; }"
policy "$OLD_DEVS" "$OLD_TUNS" ""

if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(cat "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts"
A_ADDR=$(awk '$1 == "alice" { print $2 }' "$STATE")
xb_wg_up alice "$AIF" ours "$ka" 0 "$A_ADDR/24" || { xb_fail "alice's WireGuard"; xb_end; }
n alice wg set "$AIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24,203.0.113.0/24
nq alice ip route add 203.0.113.0/24 dev "$AIF"
xb_check "alice ($A_ADDR) reaches the origin" xb_wait 5000 nq alice ping -c 1 -W 1 203.0.113.10

# What the running policy has built; compared after each failed reload.
snapshot() {
	{
		nq gw ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort
		nq gw wg show "$GWIF" allowed-ips | sort
		nq gw wg show "xb-$T1" | grep -E 'public key|listening port'
		nq gw ip rule | grep -E '^108[0-9][0-9]:'
		nq gw ip route show table all | grep -E 'table 518[0-9][0-9]'
		nq gw ip -6 route show table all | grep -E 'table 518[0-9][0-9]'
		nq gw nft list table inet xborder | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
		cat "$STATE"
	} 2>&1
}
intact() {	# intact WHAT — the snapshot equals $before; the diff otherwise
	local now
	now=$(snapshot)
	[ "$now" = "$before" ] && return 0
	diff <(echo "$before") <(echo "$now") | head -n 20
	return 1
}

# 1. The table: the kernel refuses the new one. Tunnels, peers, table,
# routes and the address file stay the old policy's.
{
	echo "table ip xbfill$ID {"
	for i in $(seq 1023); do echo "  chain c$i { type filter hook forward priority $((i % 200)); }"; done
	echo "}"
} >"$XB_TMP/fill.nft"
n gw nft -f "$XB_TMP/fill.nft" || xb_fail "filling the forward hook"
before=$(snapshot)	# with the filler table
policy "$(dev alice "$ka")" "$NEW_TUNS" "$EXTRA"
out=$(ctl reload 2>&1); rc=$?
echo "# $out"
xb_check "table refused: the reload fails and names the step" \
	sh -c '[ "$1" = 1 ] && echo "$2" | grep -q "step \"check table inet xborder\""' _ "$rc" "$out"
xb_check "table refused: interfaces, peers (bob), rules, routes, table and address file unchanged" intact
xb_check "table refused: alice still reaches the origin" nq alice ping -c 1 -W 2 203.0.113.10
n gw nft delete table ip "xbfill$ID"

# 2. The routes: the new tunnel's IPv6 route is refused. The new tunnel
# goes again, bob's peer comes back, the table was never replaced.
before=$(snapshot)
policy "$(dev alice "$ka")" "$NEW_TUNS" "$EXTRA"
n gw sysctl -qw net.ipv6.conf.default.disable_ipv6=1
out=$(ctl reload 2>&1); rc=$?
echo "# $out"
n gw sysctl -qw net.ipv6.conf.default.disable_ipv6=0
xb_check "routes refused: the reload fails and names the step" \
	sh -c '[ "$1" = 1 ] && echo "$2" | grep -q "step \"routes and rules\""' _ "$rc" "$out"
xb_check "routes refused: interfaces, peers (bob), rules, routes, table and address file unchanged" intact
xb_check "routes refused: alice still reaches the origin" xb_wait 5000 nq alice ping -c 1 -W 1 203.0.113.10
xb_check "routes refused: xborderctl status says the last reload failed" \
	sh -c 'ip netns exec "$1" "$2" -s "$3" status | grep -qi "fail"' _ "$XB_RUN-gw" "$XB_BIN/xborderctl" "$CTL"

# 3. Alice leaves while a flow of hers is open; carol comes. Alice's
# conntrack entries go, and carol does not get her address.
nq alice ping -i 0.2 -c 100 -W 1 203.0.113.10 >/dev/null 2>&1 &
ppid=$!
XB_PIDS+=("$ppid")
xb_check "alice's flow is in gw's conntrack" \
	xb_wait 3000 sh -c "ip netns exec $XB_RUN-gw conntrack -L -s $A_ADDR 2>/dev/null | grep -q icmp"
policy "$(dev bob "$kb"),
$(dev carol "$kc")" "$OLD_TUNS" ""
out=$(ctl reload 2>&1); rc=$?
echo "# $out"
xb_check "reload without alice, with carol" test "$rc" = 0
xb_check "no device gets alice's address $A_ADDR at once" \
	sh -c '! grep -q "^[a-z]* $1\$" "$2" && ! ip netns exec "$3" wg show "$4" allowed-ips | grep -q "$1/"' \
	_ "$A_ADDR" "$STATE" "$XB_RUN-gw" "$GWIF"
xb_check "alice's address is in quarantine in the address file" grep -q "^- $A_ADDR [0-9]*\$" "$STATE"
xb_check "alice's flows are gone from conntrack" \
	sh -c "! ip netns exec $XB_RUN-gw conntrack -L -s $A_ADDR 2>/dev/null | grep -q icmp"
xb_check "... and her traffic no longer passes" \
	sh -c "! ip netns exec $XB_RUN-alice ping -c 2 -i 0.3 -W 1 203.0.113.10"
kill "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null

# 4. The same file again (a SIGHUP for the logs): its table is the running
# one's twin, so the kernel is not asked first — but when it refuses the
# load all the same, the table step fails and the steps before are
# switched back.
n gw nft -f "$XB_TMP/fill.nft" || xb_fail "filling the forward hook"
before=$(snapshot)
out=$(ctl reload 2>&1); rc=$?
echo "# $out"
n gw nft delete table ip "xbfill$ID"
xb_check "unchanged file, table refused at load: the reload fails and names the step" \
	sh -c '[ "$1" = 1 ] && echo "$2" | grep -q "step \"table inet xborder\""' _ "$rc" "$out"
xb_check "... everything unchanged" intact
xb_check "... and a reload after it succeeds" ctl reload

xb_check "SIGTERM: xborderd exits" xb_gw_stop
xb_end
