#!/usr/bin/env bash
# sudo make demo HA=1 — two gateways as one service, told as a story: three
# etcd members, gateways A (active) and B (standby) with keepalived, a device
# that streams and pings through A; A's xborderd is killed with -9 and B
# takes the device over (docs/ha.md). The gap is measured.
#
# The topology is tests/lib/ha.sh's (drawn there). It is removed when the
# story ends (namespaces xb<pid>-*, the test kit's cleanup).
#
#   deploy/demo/ha.sh            the story, pausing between steps
#   deploy/demo/ha.sh --check    without pauses, each step asserted
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export XB_BUILD=${XB_BUILD:-$ROOT/build}
CHECK=0
case ${1:-} in
--check) CHECK=1 ;;
"") ;;
*) echo "usage: $0 [--check]"; exit 2 ;;
esac
XB_QUIET=1
. "$ROOT/tests/lib/netns.sh"
. "$ROOT/tests/lib/wg.sh"
. "$ROOT/tests/lib/ha.sh"
XB_TEST=demo-ha

bold() { [ -t 1 ] && printf '\033[1m%s\033[0m\n' "$*" || printf '%s\n' "$*"; }
step() { echo; bold "== $*"; }
say() { printf '   %s\n' "$*"; }
show() {	# show NS CMD... — as an operator would type it, then its output
	local ns=$1; shift
	printf '   [%s]$ %s\n' "$ns" "$*"
	nq "$ns" "$@" 2>&1 | sed 's/^/     /'
}
pause() {
	[ "$CHECK" = 1 ] && return
	[ -t 0 ] || return
	printf '   (press Enter to go on) '
	read -r _
}
expect() {	# expect WHAT CMD... — asserted with --check, a note otherwise
	local what=$1; shift
	if "$@" >/dev/null 2>&1; then
		[ "$CHECK" = 1 ] && xb_ok "$what"
		return 0
	fi
	xb_fail "$what"
	return 1
}

xb_begin
for t in keepalived etcd etcdctl dnsmasq dig curl; do
	command -v "$t" >/dev/null || { echo "$t is not installed: make deps"; exit 1; }
done

step "1. The world: a device, two gateways on one LAN, a partner, an origin, three etcd members"
ha_world >/dev/null 2>&1 || { echo "topology failed"; exit 1; }
ha_cluster_up >/dev/null 2>&1 || { echo "etcd did not start"; exit 1; }
for x in a b; do ha_policy "$x" "$(ha_cluster_snippet "$x")"; done
say "Both gateways run the same policy, the same device-side key, and this cluster section:"
grep -A2 "^	cluster" "$XB_TMP/a.conf" | sed 's/^\t*/     /'
ha_gw_start a >/dev/null 2>&1 && ha_keepalived a >/dev/null 2>&1 && ha_wait_vip a 5000 ||
	{ echo "gateway A did not start"; exit 1; }
ha_gw_start b >/dev/null 2>&1 && ha_keepalived b >/dev/null 2>&1 || { echo "gateway B did not start"; exit 1; }
say "keepalived (VRRP v3, unicast, advert every ${HA_ADVERT} s) gave the devices' address to A:"
show ga ip -4 -br addr show dev lan0
show gb ip -4 -br addr show dev lan0
expect "A holds the VIP" ha_holds a
grep "vip 203" "${HA_LOG[b]}" | sed 's/^/   B: /'
pause

step "2. The device connects to the VIP, reports its posture to A and asks A's DNS"
ha_device >/dev/null 2>&1
xb_wait 5000 nq dev ping -c 1 -W 1 192.0.2.129
say "report (os 13, profile corp needs >= 12): HTTP $(ha_report 1 13)"
show dev dig +short @192.0.2.129 www.acme.test
say "B has both already — from etcd, without ever seeing the device:"
xb_wait 2000 ha_in_set b r_origin_dev4 192.0.2.130
xb_wait 2000 ha_in_set b r_erp_dns4 192.0.2.201
show gb nft list set inet xborder r_origin_dev4
show gb nft list set inet xborder r_erp_dns4
expect "B enforces A's posture decision" ha_in_set b r_origin_dev4 192.0.2.130
expect "B has the destination A learned" ha_in_set b r_erp_dns4 192.0.2.201
sleep 1.5	# the device's endpoint, published on A's next tick
say "and where the device's packets come from:"
show eh env ETCDCTL_API=3 etcdctl --endpoints="$(etcd_endpoints)" get --prefix "/xborder/ha$ID/endpoint/" --print-value-only
pause

step "3. The device streams TCP and pings every 10 ms; A's xborderd is killed with -9"
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 20000 "$port"; rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg dev "$XB_BIN/xb-pkt" tcp-send -n 2000000 -r 2000 192.0.2.200 "$port"; spid=$XB_LAST_PID slog=$XB_LAST_LOG
say "kill -9 $(cat "$XB_TMP/a.pid")   (A's xborderd, 1.5 s into the pings)"
ha_failover a 8
say "keepalived on B:"
grep -i "entering master" "${HA_KA[b]}" | tail -n 1 | sed 's/^/     /'
say "xborderd on B:"
grep "takeover" "${HA_LOG[b]}" | sed 's/^xborderd: info: /     /'
show gb ip -4 -br addr show dev lan0
pause

step "4. What the device saw"
bold "   longest time without a reply: ${HA_GAP_MS} ms   (the VIP moved in ${HA_VIP_MS} ms; $HA_REPLIES replies)"
say "(before the takeover existed, 9.6-10.7 s: the device waited for its own timers)"
for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
wait "$rpid" 2>/dev/null
say "the TCP stream: sent $(grep -o 'bytes=[0-9]*' "$slog"), received $(grep -o 'bytes=[0-9]*' "$rlog" | tail -n 1), checksums $([ "$(grep sha256= "$slog")" = "$(grep sha256= "$rlog")" ] && echo equal || echo DIFFERENT)"
expect "the gap is under 3 s" test "$HA_GAP_MS" -le 3000
expect "the TCP stream survives" sh -c "[ \"\$(grep sha256= '$slog')\" = \"\$(grep sha256= '$rlog')\" ]"
say "no new report, no DNS query: the destination A learned opens through B:"
show dev ping -c 1 -W 2 192.0.2.201
expect "the learned destination opens through B" nq dev ping -c 1 -W 2 192.0.2.201
pause

step "5. A comes back: standby (nopreempt), no second failover"
ha_gw_start a >/dev/null 2>&1
sleep 1
show ga ip -4 -br addr show dev lan0
expect "B keeps the VIP" ha_holds b
say "done; the namespaces are removed now."
xb_end
