#!/usr/bin/env bash
# The gateway on the kernel backends, end to end: xborderd's device
# interface on kernel WireGuard, tunnel A on kernel WireGuard and tunnel B on
# the kernel's GRE (backend auto picks them here), a device reaching the
# origin through A, A blackholed and the path moving to B, a TCP transfer
# through B, and A back after its hold-down. The topology is
# tests/lib/failover.sh's (partners: xborder-wg and xb-gre). Time limits
# are generous: the CPU in tests/vm is emulated; failover time is measured
# on real CPUs by tests/net/failover.sh and bench/failover.sh.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
xb_begin
xb_ns probe
xb_need_link probe WireGuard type wireguard
xb_need_link probe GRE type gre local 192.0.2.1 remote 192.0.2.2
fo_world || exit 1
FO_PROBE_A='peer4 = "192.0.2.26"; probe_interval = 300;'
FO_PROBE_B='peer4 = "192.0.2.30"; probe_interval = 300;'
fo_policy
fo_partners || { xb_fail "partners start"; xb_end; }
xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"; GWPID=$XB_LAST_PID GWLOG=$XB_LAST_LOG
xb_check "xborderd starts" xb_wait 60000 grep -q "gateway up" "$GWLOG" || xb_end
xb_check "the device interface is kernel WireGuard" grep -q "$GWIF: kernel WireGuard" "$GWLOG"
xb_check "tunnel A is kernel WireGuard" sh -c "ip -n $XB_RUN-gw -d link show xb-$A | grep -q wireguard"
xb_check "tunnel B is the kernel's GRE" sh -c "ip -n $XB_RUN-gw -d link show xb-$B | grep -q 'gre remote 192.0.2.22'"
fo_device || { xb_fail "device bring-up"; xb_end; }
fo_tables
xb_check "both tunnels come up" xb_wait 60000 both_up
xb_check "the path uses A, the first listed" xb_wait 10000 on "$A"
xb_check "the device reaches the origin" xb_wait 15000 nq dev ping -c 1 -W 2 203.0.113.10
a0=$(via_a)
xb_check "... through A (kernel WireGuard)" test "${a0:-0}" -gt 0

xb_impair ra set both loss=100 >/dev/null
xb_check "A blackholed: the path moves to B" xb_wait 20000 on "$B"
b0=$(via_b)
xb_check "the device reaches the origin through B (kernel GRE)" nq dev ping -c 3 -i 0.3 -W 2 203.0.113.10
b1=$(via_b)
xb_check "... counted at the origin's B side ($b0 → $b1 packets)" test "${b1:-0}" -gt "${b0:-0}"
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 30000 "$port"; rlog=$XB_LAST_LOG
xb_wait 5000 grep -q ready "$rlog"
xb_bg dev "$XB_BIN/xb-pkt" tcp-send -n 500000 203.0.113.10 "$port"; spid=$XB_LAST_PID slog=$XB_LAST_LOG
wait "$spid"
xb_wait 10000 grep -q sha256= "$rlog"
sent=$(grep -o 'sha256=[0-9a-f]*' "$slog") got=$(grep -o 'sha256=[0-9a-f]*' "$rlog" | tail -n 1)
xb_check "500 kB over B from the device, SHA-256 equal" test -n "$sent" -a "$sent" = "$got"

xb_impair ra set both loss=0 >/dev/null
xb_check "A heals: the path returns to A after its hold-down" xb_wait 60000 on "$A"
# A new flow each try (a fresh TCP port: an ICMP id reused from the B
# period would follow that flow's conntrack entry, as it should), until one
# is counted at A's side: on the emulated CPU the path may still move once
# more while A's probes settle.
through_a() {
	local a1 p
	a1=$(via_a) port=$((port + 1)) p=$port
	xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 10000 "$p"
	xb_wait 5000 grep -q ready "$XB_LAST_LOG" || return 1
	nq dev "$XB_BIN/xb-pkt" tcp-send -n 20000 203.0.113.10 "$p" >/dev/null || return 1
	[ "$(via_a)" -gt "${a1:-0}" ]
}
xb_check "a new TCP flow from the device reaches the origin through A again" xb_wait 30000 through_a
xb_log "A: $(tstate "$A"), B: $(tstate "$B"); the rule's table: $(ip -n "$XB_RUN-gw" route show table "$TABLE" | head -n 1)"
kill "$GWPID"; wait "$GWPID"
xb_check "stop: the kernel links are gone" \
	sh -c "! ip -n $XB_RUN-gw link show xb-$A 2>/dev/null && ! ip -n $XB_RUN-gw link show xb-$B 2>/dev/null && ! ip -n $XB_RUN-gw link show $GWIF 2>/dev/null"
xb_end
