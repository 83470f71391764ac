#!/usr/bin/env bash
# Tunnel health, steering and failover through xborderd, end to end: a
# blackholed partner loses the path within a bounded time, traffic and an
# open TCP stream go on over the other partner, the path returns after the
# slow-up rule; the GRE data path; notifications (command and webhook);
# metrics.
#
# Topology and why snat = false: tests/lib/failover.sh.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
xb_begin
fo_world || exit 1
fo_policy
fo_partners || { xb_fail "partners start"; xb_end; }
xb_bg gw busybox nc -ll -p "$HOOKPORT" -e "$XB_TMP/hook.sh"
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with a WireGuard and a GRE tunnel, probed every 100 ms"
fo_device || { xb_fail "device bring-up"; xb_end; }
fo_tables
xb_log "tables: A $TA, B $TB, rule erp (via A, B) $TABLE"
xb_check "the rule's path has its own table ($TABLE), not A's ($TA) or B's ($TB)" \
	sh -c "[ '$TABLE' -gt 0 ] && [ '$TABLE' != '$TA' ] && [ '$TABLE' != '$TB' ]"
xb_check "ip rule sends the rule's mark to that table" \
	sh -c "ip -n $XB_RUN-gw rule | grep -q 'lookup $TABLE'"

xb_check "both tunnels come up (10 good probes each)" xb_wait 8000 both_up
xb_check "the path uses A, the first listed" xb_wait 2000 on "$A"
xb_check "xborderctl rules: erp is active on A" \
	sh -c "ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j rules | jq -e '.[] | select(.name == \"erp\") | .active == \"$A\"'"
xb_check "the device reaches the origin" xb_wait 5000 nq dev ping -c 1 -W 1 203.0.113.10
a0=$(via_a)
xb_check "... through A" test "${a0:-0}" -gt 0

# An open TCP stream, 1 MB at 2 Mbit/s (4 s), across the failover: slow, so
# that its own CPU does not stretch the measured failover time.
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 8000 "$port"; rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg dev "$XB_BIN/xb-pkt" tcp-send -n 1000000 -r 2000 203.0.113.10 "$port"; spid=$XB_LAST_PID slog=$XB_LAST_LOG
sleep 1

# Blackhole A both ways. The time runs from just before the impairment is
# set (so it includes starting xb-impair's ctl, ~20 ms) to the route change,
# seen two ways: by polling the rule's table every 10 ms, and by the
# timestamp of the kernel's notification to `ip monitor'. The poll is
# what an operator's script sees; on a loaded 2-core machine its own
# forks lag the change by tens of ms, so the bound is asserted on the
# notification and the poll only has to see it within 600 ms.
xb_log "A before the blackhole: $(ctl -j tunnels | jq -c --arg t "$A" '.[] | select(.name == $t) | .health | {rtt_p95_ms, loss_pct, detect, bg_loss}')"
xb_bg gw ip -ts monitor route; mpid=$XB_LAST_PID mlog=$XB_LAST_LOG
xb_wait 2000 test -e "$mlog"
sleep 0.2
t0=$(date +%s%N)
xb_impair ra set both loss=100 >/dev/null
for _ in $(seq 300); do on "$B" && break; sleep 0.01; done
poll=$(( ($(date +%s%N) - t0) / 1000000 ))
xb_check "the path moved to B" on "$B"
xb_wait 1000 grep -q "default dev xb-$B table $TABLE" "$mlog"
kill "$mpid" 2>/dev/null
at=$(grep -m1 "default dev xb-$B table $TABLE" "$mlog" | sed -n 's/^\[\([^]]*\)\].*/\1/p')
fo=$(( ($(date -d "${at:-now}" +%s%N) - t0) / 1000000 ))
xb_log "blackhole A → the rule's table routes out of xb-$B: $fo ms (ip monitor), seen by polling after $poll ms"
grep -E "tunnel $A: up -> down|route moved from $A" "$GWLOG" | sed 's/^/# xborderd: /'
xb_within "blackhole to route change (kernel notification)" "$fo" 1 400 ms
xb_within "blackhole to route change (polled every 10 ms)" "$poll" 1 600 ms
xb_check "A is down" xb_wait 2000 sh -c "[ \"\$(ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j tunnels | jq -r '.[] | select(.name == \"$A\") | .health.probe_state')\" = down ]"
# A's own path (a rule via A alone, DNS through A) has nothing left: only
# its unreachable default. The probes do not need it (bound to xb-A).
xb_check "A's own table is down to its unreachable default" \
	sh -c "ip -n $XB_RUN-gw route show table $TA | grep -q '^unreachable default' && ! ip -n $XB_RUN-gw route show table $TA | grep -q 'dev xb-$A'"

b0=$(via_b)
xb_check "the device reaches the origin through B" nq dev ping -c 2 -i 0.2 -W 1 203.0.113.10
b1=$(via_b)
xb_check "... counted at the origin's B side ($b0 → $b1 packets)" test "${b1:-0}" -gt "${b0:-0}"
xb_check "curl from the device fetches the origin's page through B" \
	sh -c "ip netns exec $XB_RUN-dev curl -s --max-time 5 http://203.0.113.10/ | grep -q 'erp origin'"

wait "$spid"; wait "$rpid"
xb_log "stream: $(grep -h 'sha256=' "$slog" | tail -n 1) / $(grep -h 'sha256=' "$rlog" | tail -n 1)"
stall=$(awk '/at_ns=/ { split($1, a, "="); split($2, b, "="); if (b[2] != last) { if (lt && a[2] - lt > gap) gap = a[2] - lt; lt = a[2]; last = b[2] } } END { printf "%d", gap / 1e6 }' "$rlog")
xb_log "the stream's longest stall: $stall ms"
xb_check "the open TCP stream continued across the failover (1 MB, SHA-256 equal)" \
	sh -c 'grep -q "bytes=1000000" "$1" && test "$(grep sha256= "$1")" = "$(grep sha256= "$2")"' _ "$slog" "$rlog"

# The GRE data path through xborderd: the path is on B alone.
b0=$(via_b_bytes)
xb_check "2 MB over B (GRE) from the device, SHA-256 equal" xb_tcp_compare dev org 203.0.113.10 2000000
b1=$(via_b_bytes)
xb_check "... all of it through B ($b0 → $b1 bytes at the origin's B side)" test $((b1 - b0)) -gt 2000000

# Notifications: the command's file and the webhook's file hold the event.
ev_down() {	# ev_down FILE — a state event: A went down
	jq -se --arg t "$A" 'map(select(.event == "state" and .tunnel == $t and .to == "down")) | length >= 1' "$1"
}
ev_path() {	# ev_path FILE — the path event: A → B with the rule's table
	jq -se --arg a "$A" --arg b "$B" --argjson tb "$TABLE" \
		'map(select(.event == "path" and .from == $a and .to == $b and .table == $tb)) | length >= 1' "$1"
}
xb_check "notify_command got the state event (A down) as JSON" xb_wait 3000 ev_down "$XB_TMP/notify.out"
xb_check "notify_command got the path event (A → B, table $TABLE)" xb_wait 3000 ev_path "$XB_TMP/notify.out"
xb_check "notify_webhook got the state event (A down) as JSON" xb_wait 5000 ev_down "$XB_TMP/hook.out"
xb_check "notify_webhook got the path event" xb_wait 5000 ev_path "$XB_TMP/hook.out"
[ -s "$XB_TMP/notify.out" ] && sed 's/^/# command: /' "$XB_TMP/notify.out" | head -n 5

# Metrics. The 2 MB above queued at xb-impair's router, the bottleneck now
# that the userspace GRE is faster than it: B's probes saw the queue's delay
# and B may be degraded for a moment. Metrics are read once it is up again.
b_up() { [ "$(tstate "$B")" = up ]; }
xb_check "B is up again after the transfer" xb_wait 15000 b_up
metric() {	# metric NAME LABELS — the value of one sample
	nq gw curl -s --max-time 2 "http://$METRICS/metrics" | awk -v k="$1{$2}" '$1 == k { print $2 }'
}
nq gw curl -s --max-time 2 "http://$METRICS/metrics" >"$XB_TMP/metrics.txt"
xb_check "metrics: served as Prometheus text" grep -q '^# TYPE xborder_tunnel_state gauge' "$XB_TMP/metrics.txt"
xb_check "metrics: every sample line parses (name{labels} number)" \
	sh -c "! grep -v '^#' '$XB_TMP/metrics.txt' | grep -Evq '^[a-z_][a-z0-9_]*(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9.e+-]+$'"
xb_check "metrics: A is down" test "$(metric xborder_tunnel_state "tunnel=\"$A\",state=\"down\"")" = 1
xb_check "metrics: B is up" test "$(metric xborder_tunnel_state "tunnel=\"$B\",state=\"up\"")" = 1
la=$(metric xborder_tunnel_loss_percent "tunnel=\"$A\"")
lb=$(metric xborder_tunnel_loss_percent "tunnel=\"$B\"")
rb=$(metric xborder_tunnel_rtt_ms "tunnel=\"$B\"")
xb_log "metrics: loss A $la %, B $lb %; RTT B $rb ms"
xb_within "metrics: A's loss shows the blackhole" "${la:-0}" 1 100 %
xb_within "metrics: B's loss is 0" "${lb:--1}" 0 0 %
xb_within "metrics: B's RTT is a LAN's" "${rb:--1}" 0.001 20 ms
xb_check "metrics: the route swap is counted" grep -q '^xborder_route_swaps_total [1-9]' "$XB_TMP/metrics.txt"

# A heals: it comes up after its hold-down (5 s since down) and 10 good
# probes, and the path returns to it.
t0=$(date +%s%N)
xb_impair ra clear both >/dev/null
xb_check "the path returns to A after the hold-down" xb_wait 10000 on "$A"
back=$(( ($(date +%s%N) - t0) / 1000000 ))
xb_log "A healed → path back on A after $back ms (hold-down 5 s from down, then 10 good probes)"
a0=$(via_a)
xb_check "the device reaches the origin through A again" nq dev ping -c 2 -i 0.2 -W 1 203.0.113.10
a1=$(via_a)
xb_check "... counted at the origin's A side ($a0 → $a1 packets)" test "${a1:-0}" -gt "${a0:-0}"
xb_check "notify_command got A's way back up" \
	xb_wait 3000 jq -se --arg t "$A" 'map(select(.event == "state" and .tunnel == $t and .to == "up")) | length >= 2' "$XB_TMP/notify.out"
# `xborderctl probe' streams each tunnel's own results — A lost probes in
# the blackhole, B none — also after a reload that lists the tunnels the
# other way round (kept results follow their tunnel, not its place).
targets() { timeout 0.5 ip netns exec "$XB_RUN-gw" "$XB_BIN/xborderctl" -s "$CTL" -j probe "$1" |
	jq -r '(if .ok then "ok" else "lost" end) + " " + .target' | sort -u | tr '\n' ' '; }
xb_check "xborderctl probe A: A's target, lost and answered" \
	test "$(targets "$A")" = "lost icmp:192.0.2.26 ok icmp:192.0.2.26 "
xb_check "xborderctl probe B: B's target, answered" test "$(targets "$B")" = "ok icmp:192.0.2.30 "
FO_B_FIRST=1 fo_policy
xb_check "a reload that lists B first" ctl reload
xb_check "... xborderctl probe A still shows A's results" \
	test "$(targets "$A")" = "lost icmp:192.0.2.26 ok icmp:192.0.2.26 "
xb_check "... and probe B only B's" test "$(targets "$B")" = "ok icmp:192.0.2.30 "
xb_check "the daemon logged no error" sh -c "! grep -Ei 'error|fatal' '$GWLOG'"
xb_end
