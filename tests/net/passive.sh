#!/usr/bin/env bash
# Passive signals (gateway/health/passive.h): the tunnel's own data plane next to
# its probes, at 1 s probes, through xborderd.
#
#   Tunnel A (WireGuard) has two monitors: the partner's inner address and
#   203.0.113.21 on the partner's loopback. Topology: tests/lib/failover.sh.
#
#   1. one monitor dies (the partner drops echo requests to it): A stays up,
#      that target is down, the data plane still receives;
#   2. the device sends a stream through A (1 KB pings every 20 ms, ~50 KB/s —
#      well over XB_PASSIVE_TX_MIN in the hold; probes alone are no traffic to
#      carry), and A is blackholed just after a round was answered (nothing
#      received): A is down within one probe interval plus the 200 ms hold. The probes alone
#      need their detect run (3 misses: +1 s, +1.5 s, +2 s, then the 50 ms
#      timeout); the first miss with nothing received 200 ms after the round left
#      is enough now.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
xb_begin
FO_PROBE_A='probe_targets = [ "icmp:192.0.2.26", "icmp:203.0.113.21" ]; probe_interval = 1000;'
FO_PROBE_B='peer4 = "192.0.2.30"; probe_interval = 1000;'
fo_world || exit 1
xb_addr pa lo 203.0.113.21/32
fo_policy
fo_partners || { xb_fail "partners start"; xb_end; }
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts; tunnel A has two monitors, probed every 1 s"
fo_tables
health() { ctl -j tunnels | jq -c --arg t "$1" '.[] | select(.name == $t) | .health'; }
# target_state TUNNEL INDEX — the prober's state of one monitor
target_state() { health "$1" | jq -r --argjson i "$2" '.targets[$i].state'; }
xb_check "both tunnels come up" xb_wait 20000 both_up
xb_check "the path uses A" xb_wait 2000 on "$A"
fo_device || { xb_fail "device bring-up"; xb_end; }
xb_check "the device reaches the origin" xb_wait 5000 nq dev ping -c 1 -W 1 203.0.113.10
xb_check "xborderctl status: one device connected (a WireGuard session)" \
	xb_wait 3000 sh -c "[ \"\$(ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j status | jq '.device_signals.connected')\" = 1 ]"
xb_check "... its connect counted, the anomaly not judged before an hour of baseline" \
	sh -c "ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j status | jq -e '.device_signals.connects | .total == 1 and .judged == false and .anomaly == false' >/dev/null"
ctl status | sed -n '/^devices/,$p' | sed 's/^/# /'

# 1. One dead monitor.
n pa nft add table ip mon
n pa nft add chain ip mon in '{ type filter hook input priority 0; }'
n pa nft add rule ip mon in ip daddr 203.0.113.21 icmp type echo-request drop
xb_check "the dead monitor's target goes down" xb_wait 12000 sh -c "[ \"\$(ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j tunnels | jq -r --arg t '$A' '.[] | select(.name == \$t) | .health.targets[1].state')\" = down ]"
sleep 3
xb_log "A with one dead monitor: $(health "$A" | jq -c '{probe_state, targets, passive}')"
xb_check "A stays up with one monitor dead" test "$(tstate "$A")" = up
xb_check "... the other monitor is up" test "$(target_state "$A" 0)" = up
xb_check "... the data plane still receives" \
	test "$(health "$A" | jq -r '.passive.verdict')" = receiving
xb_check "... the path stays on A" on "$A"

# 2. Blackhole A (no traffic received) just after a round was answered:
# the partner's interface counts each round's two echo requests. The device
# carries a stream through A meanwhile (bounded: 20 s at most): WireGuard
# sending with nothing received since is what the data plane judges silent.
rx() { ip -n "$XB_RUN-pa" -s -j link show "$PIF" | jq '.[0].stats64.rx.packets'; }
xb_bg gw ip -ts monitor route; mpid=$XB_LAST_PID mlog=$XB_LAST_LOG
xb_wait 2000 test -e "$mlog"
r0=$(rx)
for _ in $(seq 300); do [ "$(rx)" != "$r0" ] && break; sleep 0.01; done
# The stream starts after the sync (its packets would count on the partner).
xb_bg dev ping -q -i 0.02 -s 1000 -w 20 203.0.113.10; spid=$XB_LAST_PID
sleep 0.05		# its answers are back through the tunnel
t0=$(date +%s%N)
xb_impair ra set both loss=100 >/dev/null
for _ in $(seq 500); do on "$B" && break; sleep 0.01; done
poll=$(( ($(date +%s%N) - t0) / 1000000 ))
xb_check "the path moved to B" on "$B"
xb_wait 1000 grep -q "default dev xb-$B table $TABLE" "$mlog"
kill "$mpid" "$spid" 2>/dev/null
at=$(grep -m1 "default dev xb-$B table $TABLE" "$mlog" | sed -n 's/^\[\([^]]*\)\].*/\1/p')
fo=$(( ($(date -d "${at:-now}" +%s%N) - t0) / 1000000 ))
xb_log "blackhole A at 1 s probes → the rule's path on B: $fo ms (ip monitor), seen by polling after $poll ms"
grep -E "tunnel $A: (up -> down|probe round)|route moved from $A" "$GWLOG" | sed 's/^/# xborderd: /'
# One interval to the next round plus the 200 ms hold is ~1000-1250 ms here;
# the probes' own detect run needs ~1800-2000 ms. The bound sits between.
xb_within "blackhole to route change, 1 s probes (within one interval plus margin)" "$fo" 1 1600 ms
xb_check "A is down" test "$(tstate "$A")" = down
xb_check "A's down was the data plane's (passive_downs counted)" \
	test "$(health "$A" | jq -r '.passive.downs')" -ge 1

# What an operator sees: metrics and xborderctl.
metric() {	# metric NAME [LABELS] — the value of one sample
	nq gw curl -s --max-time 2 "http://$METRICS/metrics" | awk -v k="$1${2:+{$2\}}" '$1 == k { print $2 }'
}
xb_check "metrics: A's data-plane down counted" \
	test "$(metric xborder_tunnel_passive_downs_total "tunnel=\"$A\"")" -ge 1
xb_check "metrics: the erp rule's availability (0..1)" \
	awk -v v="$(metric xborder_rule_availability 'rule="erp"')" 'BEGIN { exit !(v != "" && v >= 0 && v <= 1) }'
xb_check "metrics: one device connected" test "$(metric xborder_devices_connected)" = 1
xb_check "metrics: no device anomaly" test "$(metric xborder_device_anomaly 'kind="disconnects"')" = 0
ctl tunnels >"$XB_TMP/tunnels.txt"
xb_log "A's data plane now: $(health "$A" | jq -c .passive)"
xb_check "xborderctl tunnels: availability, monitors and the data plane shown" \
	sh -c "grep -q 'availability: .* over the last hour' '$XB_TMP/tunnels.txt' && grep -q 'monitors: .*icmp:203.0.113.21 down' '$XB_TMP/tunnels.txt' && grep -Eq 'data plane: (silent|unknown); .*; 1 down at a first missed round' '$XB_TMP/tunnels.txt'"
grep -E "availability|monitors|data plane" "$XB_TMP/tunnels.txt" | sed 's/^/# /'
xb_check "the daemon logged no error" sh -c "! grep -Ei 'error|fatal' '$GWLOG'"
xb_end
