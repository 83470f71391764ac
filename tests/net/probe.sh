#!/usr/bin/env bash
# The prober (xb-probe) through an impaired path: accuracy of RTT and loss,
# no state change under 5 % loss, blackhole to down, recovery by the slow-up
# rule, interface binding that never uses the main table, cost.
#
#   a ──────────── r ──────────── b
#   eth0           eth0    eth1   eth0
#   192.0.2.1      .254    .254   198.51.100.1
#   2001:db8:1::1  ::fe    ::fe   2001:db8:2::1
#                  [xb-impair: ab = a→b, ba = b→a]
#
# a has no route to b in its main table: the path lives in table 200,
# chosen by "oif eth0" — only sockets bound to eth0 find it, as probes of a
# tunnel find the tunnel's table.
. "$(dirname "$0")/../lib/netns.sh"
xb_begin
xb_ns a r b
xb_veth a eth0 r eth0
xb_veth r eth1 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr r eth0 192.0.2.254/24 2001:db8:1::fe/64
xb_addr r eth1 198.51.100.254/24 2001:db8:2::fe/64
xb_addr b eth0 198.51.100.1/24 2001:db8:2::1/64
n a ip route add 198.51.100.0/24 via 192.0.2.254 dev eth0 table 200
n a ip -6 route add 2001:db8:2::/64 via 2001:db8:1::fe dev eth0 table 200
n a ip rule add oif eth0 lookup 200 pref 100
n a ip -6 rule add oif eth0 lookup 200 pref 100
n b ip route add default via 198.51.100.254
n b ip -6 route add default via 2001:db8:2::fe
xb_impair_path r eth0 eth1 || exit 1

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" | head -n 1; }
probe() { nq a "$XB_BIN/xb-probe" -I eth0 "$@"; }

xb_check "the main table has no route to b (unbound ping fails)" \
	sh -c "! ip netns exec $XB_RUN-a ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1"
xb_check "a probe bound to eth0 reaches b (IPv4)" \
	sh -c "ip netns exec $XB_RUN-a '$XB_BIN/xb-probe' -I eth0 -i 50 -c 5 -q icmp:198.51.100.1 | grep -q 'tunnel=eth0 state=.* lost=0 '"
xb_check "a probe bound to eth0 reaches b (IPv6)" \
	sh -c "ip netns exec $XB_RUN-a '$XB_BIN/xb-probe' -I eth0 -i 50 -c 5 -q icmp:2001:db8:2::1 | grep -q 'tunnel=eth0 state=.* lost=0 '"
out=$(nq a "$XB_BIN/xb-probe" -I lo -i 50 -c 5 -l 200 icmp:198.51.100.1)
echo "$out" | sed 's/^/# /'
xb_check "a probe bound to lo does not find b" \
	sh -c "echo '$out' | grep -q 'tunnel=lo .* loss_pct=100.00' && ! echo '$out' | grep -q ' ok '"

# Accuracy: 30 ms delay and 5 % loss (seeded) on a→b, 1 000 probes 50 ms
# apart (the shortest interval the prober allows): 50 s.
base=$(probe -i 50 -c 200 -W 300 -q icmp:198.51.100.1 | grep '^stats tunnel' | field rtt_mean_ms)
xb_log "baseline RTT mean: $base ms"
xb_impair r set ab delay=30 loss=5 seed=42 >/dev/null
out=$(probe -i 50 -c 1000 -W 1100 -q icmp:198.51.100.1)
echo "$out" | sed 's/^/# /'
line=$(echo "$out" | grep '^stats tunnel')
mean=$(echo "$line" | field rtt_mean_ms); loss=$(echo "$line" | field loss_pct)
decided=$(echo "$line" | field decided)
xb_log "30 ms + 5 %: RTT mean $mean ms (base $base), loss $loss % over $decided probes"
xb_within "1 000 probes decided" "$decided" 1000 1100
xb_within "RTT mean is 30 ms + base, +-1 ms" "$(awk -v m="$mean" -v b="$base" 'BEGIN{printf "%.3f", m-b}')" 29 31 ms
xb_within "loss is 5 +- 1 pp" "$loss" 4 6 %
# The same ~55 s of 5 % random loss at default thresholds: no state change
# after the first up (the issue's "5 % loss for a minute", at 20 probes/s).
xb_check "5 % loss for ~55 s: up once, never down" \
	test "$(echo "$out" | grep -c '^state ')/$(echo "$line" | field downs)" = "1/0"
xb_impair r clear both >/dev/null

# Blackhole at 100 ms probes: down after 3 missed probes (50 ms timeout
# each); while probes are missed rounds come every half interval (50 ms,
# the timeout), so the second and third go out 50 ms apart: onset phase
# (0-100 ms) + 3 x 50 ms.
xb_bg a "$XB_BIN/xb-probe" -I eth0 -i 100 icmp:198.51.100.1
plog=$XB_LAST_LOG
xb_wait 5000 grep -q 'to=up' "$plog"
xb_check "the tunnel comes up" grep -q 'to=up' "$plog"
sleep 1
on=$(xb_impair r set ab blackhole=on | field applied_ns)
xb_wait 3000 grep -q 'to=down' "$plog"
down=$(grep 'to=down' "$plog" | head -n 1 | field mono_ns)
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (a-b)/1e6}'; }
xb_log "blackhole to down: $(ms "$down" "$on") ms"
xb_within "blackhole to down (phase + 3 x 50 ms timeout)" "$(ms "$down" "$on")" 140 300 ms
# Keep it dark past the 5 s hold-down, so the slow-up run decides.
sleep 6
off=$(xb_impair r set ab blackhole=off | field applied_ns)
xb_wait 5000 grep -q 'to=up' <(grep -A1000 'to=down' "$plog" | tail -n +2)
up=$(grep -A1000 'to=down' "$plog" | grep 'to=up' | head -n 1 | field mono_ns)
xb_log "blackhole off to up: $(ms "$up" "$off") ms; down to up: $(ms "$up" "$down") ms"
# The first good probe leaves 0..100 ms after "off", the tenth 900 ms later.
xb_within "up again after 10 good probes (slow up)" "$(ms "$up" "$off")" 800 1150 ms
xb_within "and not within the hold-down" "$(ms "$up" "$down")" 5000 99999 ms
kill "$XB_LAST_PID" 2>/dev/null; wait "$XB_LAST_PID" 2>/dev/null
xb_check "the run prints its statistics on exit" grep -q '^stats tunnel=eth0' "$plog"

# Cost: 4 targets (ICMP v4 + v6, TCP to a closed port: the RST answers) at
# 50 ms for 10 s, CPU time of the whole process.
TIMEFORMAT='%U %S'
cpu=$( { time probe -i 50 -c 200 -q icmp:198.51.100.1 icmp:2001:db8:2::1 tcp:198.51.100.1:9 \
	tcp:[2001:db8:2::1]:9 >"$XB_TMP/cost.out"; } 2>&1 )
pk=$(grep '^packets' "$XB_TMP/cost.out" | field sent)
xb_log "4 targets x 20 rounds/s for ~11 s: $pk probe packets sent, CPU user+sys ${cpu/ /+} s"
# A guard against a busy loop, not the figure: that is bench/failover.sh's
# (0.3 % of a core a tunnel). The SAN build runs this too, and costs more:
# it measured 2.25 % once, against the 2 % bound this had.
xb_within "CPU below 10 % of a core" "$(echo "$cpu" | awk '{printf "%.2f", ($1+$2)/11*100}')" 0 10 %
xb_check "all four targets answered" sh -c "grep -c '^stats target=.* lost=0 ' '$XB_TMP/cost.out' | grep -qx 4"
xb_end
