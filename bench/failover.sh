#!/usr/bin/env bash
# Tunnel health and failover (issue #7), on the topology of
# tests/net/failover.sh (tests/lib/failover.sh: a device, xborderd, a
# WireGuard partner A and a GRE partner B behind xb-impair routers, an
# origin behind both; rule erp via [ A, B ]; probes every 100 ms):
#
#  1. failover time over ROUNDS blackholes of A (both ways): from just before
#     the impairment is set to the kernel's notification that the rule's
#     table routes out of B (`ip -ts monitor route'); p50, p95, max against
#     the goal p95 <= 300 ms; A heals and the path returns between rounds;
#  2. probe overhead: xborderd's CPU (utime + stime from /proc) and probe
#     packets/s over SECONDS, both tunnels probed at 100 ms vs not probed;
#  3. GRE throughput: iperf3 (TCP, 5 s) from the gateway through xb-B (our
#     userspace GRE, the daemon's thread) vs plain routing over the same
#     namespaces and the same xb-impair hop without encapsulation;
#  4. 5 % random loss (a→b on A's link, seeded) for LOSS_S seconds at
#     default thresholds: state changes of A (goal 0).
#
#   sudo bench/failover.sh        ROUNDS=20 SECONDS_=10 LOSS_S=60 to change
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
. "$(dirname "$0")/../tests/lib/failover.sh"
ROUNDS=${ROUNDS:-20} SECS=${SECONDS_:-10} LOSS_S=${LOSS_S:-60}
xb_begin
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
command -v iperf3 >/dev/null || { echo "iperf3 missing (make deps)"; exit 77; }

start() {	# start — policy, xborderd, both tunnels up, the path on A
	fo_policy
	xb_gw_start || { echo "xborderd did not start"; tail "$GWLOG"; return 1; }
	fo_tables
	[ -z "${FO_PROBE_A-x}" ] && return 0
	xb_wait 10000 both_up && xb_wait 3000 on "$A"
}
stop() {
	kill "$GWPID" 2>/dev/null
	for _ in $(seq 200); do kill -0 "$GWPID" 2>/dev/null || return 0; sleep 0.02; done
	kill -9 "$GWPID" 2>/dev/null
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GWPID/stat"; }
probes() { ctl -j tunnels | jq '[.[].health.probes_sent // 0] | add'; }
pct() {	# pct P — the P-th percentile (nearest rank) of numbers on stdin
	sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

fo_world || exit 1
fo_partners || exit 1
start || exit 1

# ---- 1. failover time
: >"$XB_TMP/fo.txt"
for r in $(seq "$ROUNDS"); do
	xb_bg gw ip -ts monitor route; mpid=$XB_LAST_PID mlog=$XB_LAST_LOG
	sleep 0.3
	t0=$(date +%s%N)
	xb_impair ra set both loss=100 >/dev/null
	xb_wait 3000 grep -q "default dev xb-$B table $TABLE" "$mlog"
	kill "$mpid" 2>/dev/null
	at=$(grep -m1 "default dev xb-$B table $TABLE" "$mlog" | sed -n 's/^\[\([^]]*\)\].*/\1/p')
	if [ -n "$at" ]; then
		echo $(( ($(date -d "$at" +%s%N) - t0) / 1000000 )) >>"$XB_TMP/fo.txt"
	else
		echo "round $r: no failover within 3 s"
	fi
	xb_impair ra clear both >/dev/null
	xb_wait 12000 on "$A" || { echo "round $r: the path did not return to A"; break; }
	sleep $(( RANDOM % 3 )).$(( RANDOM % 10 ))	# spread the onset's phase
done
n=$(wc -l <"$XB_TMP/fo.txt")
p50=$(pct 50 <"$XB_TMP/fo.txt") p95=$(pct 95 <"$XB_TMP/fo.txt") max=$(pct 100 <"$XB_TMP/fo.txt")
echo "failover (blackhole → route out of B), $n rounds at 100 ms probes: p50 $p50 ms, p95 $p95 ms, max $max ms"
echo "  all: $(sort -n "$XB_TMP/fo.txt" | tr '\n' ' ')"
awk -v p="$p95" 'BEGIN { printf "  p95 / goal 300 ms: %.2f (%s)\n", p / 300, p <= 300 ? "met" : "NOT met" }'

# ---- 2. probe overhead
overhead() {	# overhead LABEL — CPU % of one core and probe rounds/s over SECS; TICKS
	local c0 c1 p0 p1 hz
	hz=$(getconf CLK_TCK)
	sleep 1
	c0=$(cpu_ticks) p0=$(probes)
	sleep "$SECS"
	c1=$(cpu_ticks) p1=$(probes)
	awk -v l="$1" -v c=$((c1 - c0)) -v hz="$hz" -v s="$SECS" -v p=$((p1 - p0)) \
		'BEGIN { printf "  %-28s xborderd CPU %.2f %% of a core, %.1f probe rounds/s\n", l, 100 * c / hz / s, p / s }'
	TICKS=$((c1 - c0))
}
echo "probe overhead (2 tunnels, one ICMP target each; a round is one echo out and one back):"
overhead "probed every 100 ms"; on_ticks=$TICKS
stop
FO_PROBE_A= FO_PROBE_B= start || exit 1
overhead "not probed"; off_ticks=$TICKS
awk -v a="$on_ticks" -v b="$off_ticks" -v hz="$(getconf CLK_TCK)" -v s="$SECS" \
	'BEGIN { printf "  probing costs %.2f %% of a core for 2 tunnels (%.2f %% per tunnel at 10 probes/s)\n", 100 * (a - b) / hz / s, 50 * (a - b) / hz / s }'
stop
start || exit 1

# ---- 3. GRE throughput
fo_gre_iperf
gbps() { nq gw iperf3 -c 203.0.113.10 -t 5 -J "$@" | jq -r 'if .error then ("iperf3: " + .error | halt_error) else .end.sum_received.bits_per_second / 1e9 end'; }
plain=$(gbps -B 192.0.2.17)
gre=$(gbps --bind-dev "xb-$B" -B 192.0.2.29)
echo "GRE throughput, gateway → origin (iperf3, 1 stream, 5 s):"
awk -v g="$gre" -v p="$plain" 'BEGIN { printf "  plain routing %.2f Gbit/s; through xb-%s (userspace GRE) %.2f Gbit/s; ratio %.2f\n", p, "B", g, g / p }'

# ---- 4. 5 % loss at default thresholds
t0=$(ctl -j tunnels | jq --arg t "$A" '.[] | select(.name == $t) | .health.transitions')
xb_impair ra set ab loss=5 seed=7 >/dev/null
sleep "$LOSS_S"
h=$(ctl -j tunnels | jq -c --arg t "$A" '.[] | select(.name == $t) | .health | {probe_state, transitions, loss_pct, detect, bg_loss, probes_sent}')
xb_impair ra clear both >/dev/null
t1=$(echo "$h" | jq .transitions)
echo "5 % loss on A for $LOSS_S s at 100 ms probes, default thresholds: $((t1 - t0)) state changes (goal 0); A now $h"
stop
xb_end
