#!/usr/bin/env bash
# xborderd end to end: devices reach a mainland origin through the gateway
# and a partner tunnel, as the policy allows and nothing else.
#
#   alice (finance) ─┐ 192.0.2.1/30 ↔ .2                      partner
#     198.51.100.10  ├──WG── gw: xborderd ─────WG (tunnel)───── 192.0.2.10 ── origin
#   bob (staff)     ─┘ 192.0.2.5/30 ↔ .6      192.0.2.9/30       203.0.113.1/24   203.0.113.10 (erp)
#     198.51.100.11       pool 198.51.100.0/24  inner 192.0.2.13/30 ↔ .14          203.0.113.20 (other)
#
# The gateway has no route to 203.0.113.0/24 of its own: whatever reaches
# the origin went through the tunnel. The origin counts packets from the
# tunnel's inner address (SNAT).
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns alice bob gw par org
xb_veth alice eth0 gw ea
xb_veth bob eth0 gw eb
xb_veth gw ep par eg
xb_veth par eo org eth0
xb_addr alice eth0 192.0.2.1/30
xb_addr bob eth0 192.0.2.5/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw eb 192.0.2.6/30
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30
xb_addr par eo 203.0.113.1/24
xb_addr org eth0 203.0.113.10/24 203.0.113.20/24
nq org ip route add default via 203.0.113.1
xb_router par

ID=$$
GWIF=xg$ID TUN=p$ID PIF=xp$ID AIF=xa$ID BIF=xq$ID
CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) ka=$(wg genkey) kb=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")

DEVICES="  { name = \"alice\"; public_key = \"$(pub "$ka")\"; groups = [ \"finance\" ]; address4 = \"198.51.100.10\"; },
  { name = \"bob\"; public_key = \"$(pub "$kb")\"; groups = [ \"staff\" ]; address4 = \"198.51.100.11\"; }"
# policy FILE EXTRA_RULES [DEVICES] — the gateway's policy.
policy() {
	cat >"$1" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
};
groups = [ "finance", "staff" ];
devices = (
${3:-$DEVICES}
);
tunnels = (
  { name = "$TUN"; endpoint = "192.0.2.10:51900"; private_key_file = "tun.key";
    public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14";${TUNEXTRA:-} }
);
rules = (
  { name = "erp"; groups = [ "finance" ]; to = [ "203.0.113.10/32" ]; protocols = [ "tcp", "icmp" ];
    action = "allow"; via = [ "$TUN" ]; }$2
);
EOF
}
policy "$XB_TMP/xborder.conf" ""

# The origin counts what arrives from the tunnel's inner address.
nq org nft -f - <<'EOF'
table ip count {
	chain in {
		type filter hook input priority 0;
		ip saddr 192.0.2.13 counter
	}
}
EOF
from_tunnel() { nq org nft list table ip count | awk '/counter/ { print $(NF-2) }'; }

partner_up() {	# partner_up IMPL
	xb_wg_up par "$PIF" "$1" "$kp" 51900 192.0.2.14/30 || return 1
	n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
}
device_up() {	# device_up NS IF KEY ADDR
	xb_wg_up "$1" "$2" ours "$3" 0 "$4/24" || return 1
	n "$1" wg set "$2" peer "$(pub "$kg")" endpoint "${5}:51820" allowed-ips 198.51.100.0/24,203.0.113.0/24
	nq "$1" ip route add 203.0.113.0/24 dev "$2"
}

reaches() { nq "$1" ping -c 1 -W 1 "$2" >/dev/null || nq "$1" ping -c 2 -i 0.3 -W 2 "$2"; }
blocked() { ! nq "$1" ping -c 2 -i 0.2 -W 1 "$2"; }

# Nothing of ours left in gw: interfaces, rules, routes, nft table, socket.
leftovers() {
	nq gw ip -o link | grep -E "$GWIF|xb-$TUN" && return 0
	nq gw ip rule | grep -E '^108[0-9][0-9]:' && return 0
	nq gw ip -6 rule | grep -E '^108[0-9][0-9]:' && return 0
	nq gw ip route show table all | grep -E 'table 518[0-9][0-9]' && return 0
	nq gw ip -6 route show table all | grep -E 'table 518[0-9][0-9]' && return 0
	nq gw nft list tables | grep -q xborder && { echo "table inet xborder left"; return 0; }
	[ -e "$CTL" ] && { echo "control socket left"; return 0; }
	return 1
}

partner_up wireguard-go || { xb_fail "partner bring-up"; xb_end; }
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(cat "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts (device interface, tunnel, routes, nft)"
device_up alice "$AIF" "$ka" 198.51.100.10 192.0.2.2
device_up bob "$BIF" "$kb" 198.51.100.11 192.0.2.6

xb_check "backend logged with its reason" grep -qE "$GWIF: (userspace|kernel) WireGuard: " "$GWLOG"
xb_check "wg show on the device interface lists both devices" \
	test "$(nq gw wg show "$GWIF" peers | wc -l)" = 2
xb_check "fwmark rule for the tunnel's table" sh -c "ip -n $XB_RUN-gw rule | grep -q 'fwmark 0x100/0xff00 lookup 51801'"
xb_check "the tunnel's table routes out of xb-$TUN" \
	sh -c "ip -n $XB_RUN-gw route show table 51801 | grep -q 'default dev xb-$TUN'"
xb_check "table inet xborder names the rule" sh -c "ip netns exec $XB_RUN-gw nft list table inet xborder | grep -q 'rule erp'"

xb_check "alice (finance) reaches the erp origin" reaches alice 203.0.113.10
before=$(from_tunnel)
xb_check "alice: TCP to the origin, bytes equal" xb_tcp_compare alice org 203.0.113.10 2000000
after=$(from_tunnel)
xb_check "the origin saw it from the tunnel's inner address ($before → $after packets)" \
	test "${after:-0}" -gt "${before:-0}"
xb_check "alice: a destination outside the rule is dropped" blocked alice 203.0.113.20
xb_check "bob (staff, no rule) is dropped" blocked bob 203.0.113.10
xb_check "nft counts the default deny" sh -c "ip netns exec $XB_RUN-gw nft list chain inet xborder from_devices | grep 'default deny' | grep -qv 'packets 0 '"

# xborderctl
if [ -x "$XB_BIN/xborderctl" ]; then
	xb_check "xborderctl status names the backend" sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL status | grep -qE 'userspace|kernel'"
	xb_check "xborderctl -j devices: alice has a handshake" \
		sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL -j devices | grep -q '\"name\":\"alice\"'"
	xb_check "xborderctl -j tunnels: the tunnel is up" \
		sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL -j tunnels | grep -q '\"state\":\"up\"'"
	xb_check "xborderctl -j rules: erp counted packets" \
		sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL -j rules | grep -qE '\"packets\":[1-9]'"
else
	xb_skip "xborderctl" "not built"
fi

# Reload with one more rule while alice streams: the stream survives, bob
# gets in.
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 5000 "$port"; rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg alice "$XB_BIN/xb-pkt" tcp-send -n 3000000 -r 8000 "203.0.113.10" "$port"; spid=$XB_LAST_PID slog=$XB_LAST_LOG
sleep 1
policy "$XB_TMP/xborder.conf" ",
  { name = \"staff\"; groups = [ \"staff\" ]; to = [ \"203.0.113.0/24\" ]; action = \"allow\"; via = [ \"$TUN\" ]; }"
if [ -x "$XB_BIN/xborderctl" ]; then
	xb_check "xborderctl reload" ctl reload
else
	kill -HUP "$GWPID"; sleep 0.5
fi
wait "$spid"; wait "$rpid"
xb_check "alice's stream survived the reload (3 MB, checksums equal)" \
	sh -c 'grep -q "bytes=3000000" "$1" && test "$(grep sha256= "$1")" = "$(grep sha256= "$2")"' _ "$slog" "$rlog"
xb_check "after the reload bob reaches the origin" reaches bob 203.0.113.20
xb_check "the tunnel kept its session (kept, not re-created)" grep -q "1 tunnels kept" "$GWLOG"

# A bad file changes nothing.
echo 'rules = ( { name = "x"; action = "allow"; via = [ "nowhere" ]; } );' >>"$XB_TMP/xborder.conf"
if [ -x "$XB_BIN/xborderctl" ]; then
	out=$(ctl reload 2>&1); rc=$?
	xb_check "a bad reload fails and says where ($(echo "$out" | tail -n 1))" \
		sh -c "[ $rc = 1 ] && echo \"\$1\" | grep -q 'xborder.conf:[0-9]*: '" _ "$out"
else
	kill -HUP "$GWPID"; sleep 0.5
fi
xb_check "after a bad reload alice still reaches the origin" reaches alice 203.0.113.10
xb_check "after a bad reload bob still reaches the origin" reaches bob 203.0.113.20

# Remove alice from the policy.
policy "$XB_TMP/xborder.conf" ",
  { name = \"staff\"; groups = [ \"staff\" ]; to = [ \"203.0.113.0/24\" ]; action = \"allow\"; via = [ \"$TUN\" ]; }" \
"  { name = \"bob\"; public_key = \"$(pub "$kb")\"; groups = [ \"staff\" ]; address4 = \"198.51.100.11\"; }"
kill -HUP "$GWPID"
xb_wait 3000 sh -c "test \$(ip netns exec $XB_RUN-gw wg show $GWIF peers | wc -l) = 1"
xb_check "a removed device is dropped" blocked alice 203.0.113.10
xb_check "bob still reaches the origin" reaches bob 203.0.113.10

# A second daemon with the same policy must not touch the running one.
xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"; p2=$XB_LAST_PID l2=$XB_LAST_LOG
exits_soon() { for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.02; done; return 1; }
xb_check "a second xborderd refuses to start (control socket in use)" exits_soon "$p2"
wait "$p2"; echo "# second instance: $(tail -n 2 "$l2" | tr '\n' ' ')"
xb_check "... and the running gateway keeps its table and traffic" reaches bob 203.0.113.10

# A changed backend re-creates the tunnel under the same name.
TUNEXTRA=' backend = "userspace";'
policy "$XB_TMP/xborder.conf" ",
  { name = \"staff\"; groups = [ \"staff\" ]; to = [ \"203.0.113.0/24\" ]; action = \"allow\"; via = [ \"$TUN\" ]; }" \
"  { name = \"bob\"; public_key = \"$(pub "$kb")\"; groups = [ \"staff\" ]; address4 = \"198.51.100.11\"; }"
ctl reload >/dev/null
xb_check "after a backend change the re-created tunnel answers wg" nq gw wg show "xb-$TUN"
xb_check "... and carries bob's traffic" reaches bob 203.0.113.10
unset TUNEXTRA

# An interface deleted by hand is noticed and re-created.
nq gw ip link del "xb-$TUN"
xb_check "a tunnel deleted by hand is re-created within 5 s" xb_wait 5000 nq gw wg show "xb-$TUN"
xb_check "... with its route, and traffic flows" xb_wait 5000 nq bob ping -c 1 -W 1 203.0.113.10

# A reload leaves unchanged devices' peers alone but must still move a
# device whose address changed, and move it back.
bob_at() {	# bob_at ADDR — the policy with bob at ADDR, reloaded
	policy "$XB_TMP/xborder.conf" ",
  { name = \"staff\"; groups = [ \"staff\" ]; to = [ \"203.0.113.0/24\" ]; action = \"allow\"; via = [ \"$TUN\" ]; }" \
"  { name = \"bob\"; public_key = \"$(pub "$kb")\"; groups = [ \"staff\" ]; address4 = \"$1\"; }"
	kill -HUP "$GWPID"
	xb_wait 3000 sh -c "ip netns exec $XB_RUN-gw wg show $GWIF allowed-ips | grep -q '$(pub "$kb")	$1/32\$'"
}
xb_check "reload: bob's new address replaces his old one on the peer" bob_at 198.51.100.12
xb_check "reload: and back" bob_at 198.51.100.11
xb_check "bob reaches the origin at his address again" reaches bob 203.0.113.10

xb_check "SIGTERM: xborderd exits" xb_gw_stop
xb_check "SIGTERM: no interface, rule, route, table or socket left" eval '! leftovers'

# A crash leaves things behind; the next start removes them first.
xb_gw_start || xb_fail "restart" "$(cat "$GWLOG")"
kill -9 "$GWPID"; wait "$GWPID" 2>/dev/null
xb_check "kill -9 leaves routes, rules and the nft table behind (as expected)" leftovers
xb_check "a start after a crash succeeds" xb_gw_start
# bob's client still holds a session with the crashed gateway: WireGuard
# starts a new handshake once data goes unanswered (keepalive + rekey
# timeout, 15 s).
t0=$(date +%s%3N)
xb_check "bob's client recovers by itself after the restart" xb_wait 30000 nq bob ping -c 1 -W 1 203.0.113.10
echo "# bob reconnected after $(( $(date +%s%3N) - t0 )) ms"

# The partner runs our userspace driver instead of wireguard-go.
xb_wg_down par "$PIF"
partner_up ours
t0=$(date +%s%3N)
xb_check "partner on xborder-wg: bob reaches the origin (the tunnel re-handshakes by itself)" \
	xb_wait 30000 nq bob ping -c 1 -W 1 203.0.113.10
echo "# through the new partner after $(( $(date +%s%3N) - t0 )) ms"
xb_gw_stop
xb_check "nothing left at the end" eval '! leftovers'
xb_end
