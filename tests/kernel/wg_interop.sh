#!/usr/bin/env bash
# Our userspace WireGuard (xborder-wg) against the kernel's, on Debian's
# kernel in the VM (tests/vm/vm.sh), both configured only with `wg': a
# handshake started by each side, IPv4 and IPv6 inside over an IPv4 and an
# IPv6 outer, a preshared key, each side roaming to a new address, what
# `wg show' says on both, and rekeying (ours starting it, on shortened timers).
#
#   a (ours: xborder-wg) ──────────── b (kernel: ip link add type wireguard)
#   eth0 192.0.2.1/24 (roams to .11)  eth0 192.0.2.2/24 (roams to .12)
#        2001:db8:1::1/64                  2001:db8:1::2/64
#   wa   198.51.100.1/24 ═════WG═════ wb   198.51.100.2/24
#        2001:db8:100::1/64                2001:db8:100::2/64
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_need_link b WireGuard type wireguard
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr b eth0 192.0.2.2/24 2001:db8:1::2/64
WA=xwa$$ WB=xwb$$
ka=$(wg genkey) kb=$(wg genkey) psk=$(wg genpsk)
pa=$(echo "$ka" | wg pubkey) pb=$(echo "$kb" | wg pubkey)
(umask 077; echo "$kb" >"$XB_TMP/wb.key"; echo "$psk" >"$XB_TMP/psk")

# pair OUTER_B [psk] — both interfaces, fresh, a knowing b's endpoint and b
# knowing a's (either may start); with psk, both use the preshared key.
pair() {
	local ob=$1 oa extra=()
	case $ob in *:*) oa=[2001:db8:1::1]:51820 ob=[$ob]:51821 ;; *) oa=192.0.2.1:51820 ob=$ob:51821 ;; esac
	[ "${2:-}" = psk ] && extra=(preshared-key "$XB_TMP/psk")
	xb_wg_up a "$WA" ours "$ka" 51820 198.51.100.1/24 2001:db8:100::1/64 || return 1
	n a wg set "$WA" peer "$pb" endpoint "$ob" allowed-ips 198.51.100.2/32,2001:db8:100::2/128 "${extra[@]}" || return 1
	n b ip link add "$WB" type wireguard || return 1
	n b wg set "$WB" private-key "$XB_TMP/wb.key" listen-port 51821 \
		peer "$pa" endpoint "$oa" allowed-ips 198.51.100.1/32,2001:db8:100::1/128 "${extra[@]}" || return 1
	xb_addr b "$WB" 198.51.100.2/24 2001:db8:100::2/64
	nq b ip link set "$WB" up
}
unpair() { xb_wg_down a "$WA"; nq b ip link del "$WB" 2>/dev/null; }
hs() { nq "$1" wg show "$2" latest-handshakes | awk '{ print $2 }'; }	# hs NS IFNAME

for outer in 192.0.2.2 2001:db8:1::2; do
	for starter in a b; do
		for mode in "" psk; do
			name="outer $outer, $starter starts${mode:+, psk}"
			pair "$outer" $mode || { xb_fail "$name: bring-up"; unpair; continue; }
			if [ $starter = a ]; then peer=198.51.100.2 peer6=2001:db8:100::2; else peer=198.51.100.1 peer6=2001:db8:100::1; fi
			xb_check "$name: ping (IPv4 inside)" nq $starter ping -c 3 -i 0.2 -W 3 $peer
			xb_check "$name: ping (IPv6 inside)" nq $starter ping -c 2 -i 0.2 -W 3 $peer6
			ha=$(hs a "$WA") hb=$(hs b "$WB")
			xb_check "$name: both show a handshake, within 2 s of each other ($ha, $hb)" \
				sh -c "[ '$ha' -gt 0 ] && [ '$hb' -gt 0 ] && [ \$(( $ha - $hb )) -le 2 ] && [ \$(( $hb - $ha )) -le 2 ]"
			unpair
		done
	done
done

# Rekey: ours, the initiator, with rekey_after_time shortened to 4 s, makes
# new handshakes with the kernel while traffic flows; nothing is lost.
XB_WG_ARGS="--timers rekey_after_time=4" pair 192.0.2.2
nq a ping -c 2 -i 0.2 -W 3 198.51.100.2 >/dev/null
hs1a=$(hs a "$WA") hs1b=$(hs b "$WB")
xb_check "rekey: 45 pings over 9 s, none lost" nq a ping -c 45 -i 0.2 -W 3 198.51.100.2
hs2a=$(hs a "$WA") hs2b=$(hs b "$WB")
xb_check "rekey: a new handshake on both sides (a $hs1a → $hs2a, b $hs1b → $hs2b)" \
	sh -c "[ $hs2a -gt $hs1a ] && [ $hs2b -gt $hs1b ]"
unpair

# What wg shows, on both sides, after traffic both ways.
pair 192.0.2.2 psk
nq a ping -c 3 -i 0.2 -W 3 198.51.100.2 >/dev/null
nq b ping -c 2 -i 0.2 -W 3 198.51.100.1 >/dev/null
sleep 0.5
da=$(nq a wg show "$WA" dump | sed -n 2p) db=$(nq b wg show "$WB" dump | sed -n 2p)
xb_log "a: $da"; xb_log "b: $db"
f() { echo "$1" | cut -f"$2"; }
xb_check "wg show: a's peer is b, with the psk" test "$(f "$da" 1) $(f "$da" 2)" = "$pb $psk"
xb_check "wg show: b's peer is a, with the psk" test "$(f "$db" 1) $(f "$db" 2)" = "$pa $psk"
xb_check "wg show: a sees b at 192.0.2.2:51821, b sees a at 192.0.2.1:51820" \
	test "$(f "$da" 3) $(f "$db" 3)" = "192.0.2.2:51821 192.0.2.1:51820"
xb_check "wg show: allowed ips" \
	test "$(f "$da" 4)|$(f "$db" 4)" = "198.51.100.2/32,2001:db8:100::2/128|198.51.100.1/32,2001:db8:100::1/128"
xb_check "wg show: bytes a sent = bytes b received, and back ($(f "$da" 7)/$(f "$db" 6), $(f "$db" 7)/$(f "$da" 6))" \
	test "$(f "$da" 7) $(f "$db" 7)" = "$(f "$db" 6) $(f "$da" 6)"

# Roaming: a moves to 192.0.2.11 and the kernel follows; then b moves to
# 192.0.2.12 and ours follows. Each sends first from its new address.
n a ip addr del 192.0.2.1/24 dev eth0
xb_addr a eth0 192.0.2.11/24
n a wg set "$WA" peer "$pb" endpoint 192.0.2.2:51821
xb_check "a roams: ping from its new address" nq a ping -c 2 -i 0.2 -W 3 198.51.100.2
xb_check "... and the kernel's endpoint for a follows (192.0.2.11:51820)" \
	sh -c "ip netns exec $XB_RUN-b wg show $WB endpoints | grep -qF 192.0.2.11:51820"
n b ip addr del 192.0.2.2/24 dev eth0
xb_addr b eth0 192.0.2.12/24
n b wg set "$WB" peer "$pa" endpoint 192.0.2.11:51820
xb_check "b roams: ping from its new address" nq b ping -c 2 -i 0.2 -W 3 198.51.100.1
xb_check "... and our endpoint for b follows (192.0.2.12:51821)" \
	sh -c "ip netns exec $XB_RUN-a wg show $WA endpoints | grep -qF 192.0.2.12:51821"
unpair

xb_end
