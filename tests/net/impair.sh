#!/usr/bin/env bash
# xb-impair accuracy: delay, loss (seeded, reproducible), blackhole timing,
# direction independence, IPv6, rate.
#
#   a ──────────── r ──────────── b
#   eth0           eth0    eth1   eth0
#   192.0.2.1      .254    .254   198.51.100.1
#   2001:db8:1::1  ::fe    ::fe   2001:db8:2::1
#                  [xb-impair: ab = a→b, ba = b→a]
. "$(dirname "$0")/../lib/netns.sh"
xb_begin
xb_ns a r b
xb_veth a eth0 r eth0
xb_veth r eth1 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr r eth0 192.0.2.254/24 2001:db8:1::fe/64
xb_addr r eth1 198.51.100.254/24 2001:db8:2::fe/64
xb_addr b eth0 198.51.100.1/24 2001:db8:2::1/64
n a ip route add default via 192.0.2.254
n a ip -6 route add default via 2001:db8:1::fe
n b ip route add default via 198.51.100.254
n b ip -6 route add default via 2001:db8:2::fe
xb_impair_path r eth0 eth1 || exit 1

# Median RTT in ms of COUNT pings from a to ADDR, 10 ms apart.
rtt_median() {
	nq a ping -n -c "$2" -i 0.01 -W 2 "$1" | sed -n 's/.* time=\([0-9.]*\) ms/\1/p' | xb_median
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" | head -n 1; }

xb_check "path through the router (IPv4)" nq a ping -c 1 -W 2 198.51.100.1
xb_check "path through the router (IPv6)" nq a ping -c 1 -W 2 2001:db8:2::1
xb_check "packets really cross xb-impair" sh -c "'$XB_BIN/xb-impair' ctl '$XB_TMP/impair-r.sock' show | grep -q '^ab .* tx=[1-9]'"

base=$(rtt_median 198.51.100.1 100)
xb_log "baseline median RTT: $base ms"

xb_impair r set ab delay=30 >/dev/null
d=$(rtt_median 198.51.100.1 100)
xb_within "30 ms delay a→b adds 30 ± 1 ms to the median RTT" "$(awk -v a="$d" -v b="$base" 'BEGIN{printf "%.3f", a-b}')" 29 31 ms

xb_impair r set ab delay=10 >/dev/null
xb_impair r set ba delay=20 >/dev/null
d=$(rtt_median 198.51.100.1 100)
xb_within "directions add independently (10 + 20 ms)" "$(awk -v a="$d" -v b="$base" 'BEGIN{printf "%.3f", a-b}')" 29 31 ms

base6=$(rtt_median 2001:db8:2::1 20)
xb_within "IPv6 takes the same delay" "$base6" 29 32 ms
xb_impair r clear both >/dev/null

xb_impair r set ab delay=30 jitter=10 >/dev/null
spread=$(nq a ping -n -c 100 -i 0.01 -W 2 198.51.100.1 | sed -n 's/.* time=\([0-9.]*\) ms/\1/p' | sort -g | awk '{v[NR]=$1} END{printf "%s %s", v[1], v[NR]}')
set -- $spread
xb_within "jitter 10 ms: fastest RTT" "$1" 19.5 24 ms
xb_within "jitter 10 ms: slowest RTT" "$2" 36 41.5 ms
xb_impair r clear both >/dev/null

# Loss: 10 000 packets, seeded.
loss_run() {	# loss_run SEED -> prints the receiver's summary line
	xb_impair r set ab loss=5 seed="$1" >/dev/null
	xb_bg b "$XB_BIN/xb-pkt" recv -c 10000 -t 500 5001
	local pid=$XB_LAST_PID log=$XB_LAST_LOG
	xb_wait 3000 grep -q ready "$log" || return 1
	nq a "$XB_BIN/xb-pkt" send -c 10000 -i 100 198.51.100.1 5001 >/dev/null
	wait "$pid"
	grep '^received=' "$log"
}
r1=$(loss_run 42); r2=$(loss_run 42); r3=$(loss_run 43)
xb_log "seed 42: $r1"; xb_log "seed 42: $r2"; xb_log "seed 43: $r3"
xb_within "5% loss drops 5 ± 1 pp of 10 000 packets" "$(echo "$r1" | field lost | awk '{print $1/100}')" 4 6 %
xb_check "same seed, same packets lost" test "$(echo "$r1" | field lost_hash)" = "$(echo "$r2" | field lost_hash)"
xb_check "another seed, other packets lost" test "$(echo "$r1" | field lost_hash)" != "$(echo "$r3" | field lost_hash)"
xb_within "seed 43 is also 5 ± 1 pp" "$(echo "$r3" | field lost | awk '{print $1/100}')" 4 6 %
xb_impair r clear both >/dev/null

# Blackhole: one packet a millisecond; on at ~300 ms, off at ~600 ms.
xb_bg b "$XB_BIN/xb-pkt" recv -c 1000 -t 500 -g 5002
rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg a "$XB_BIN/xb-pkt" send -c 1000 -i 1000 198.51.100.1 5002
sleep 0.3
on=$(xb_impair r set ab blackhole=on)
sleep 0.3
off=$(xb_impair r set ab blackhole=off)
wait "$rpid"
cat "$rlog"
gaps=$(grep -c '^gap ' "$rlog")
gap=$(grep '^gap ' "$rlog" | tail -n 1)
on_ns=$(echo "$on" | field applied_ns); on_cmd=$(echo "$on" | field cmd_ns)
off_ns=$(echo "$off" | field applied_ns); off_cmd=$(echo "$off" | field cmd_ns)
xb_check "blackhole makes exactly one gap" test "$gaps" = 1
# The gap: last packet through was sent just before "on", the first after it just after "off".
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (a-b)/1e6}'; }
xb_within "blackhole starts within 10 ms of the command" "$(ms "$on_ns" "$(echo "$gap" | field from_ns)")" -10 10 ms
xb_within "blackhole ends within 10 ms of the command" "$(ms "$(echo "$gap" | field to_ns)" "$off_ns")" -10 10 ms
xb_within "command to effect (on)" "$(ms "$on_ns" "$on_cmd")" 0 10 ms
xb_within "command to effect (off)" "$(ms "$off_ns" "$off_cmd")" 0 10 ms

# Rate: 300 × 1000-byte datagrams (1028 B IP) at 8 Mbit/s take ~308 ms.
xb_impair r set ab rate=8mbit >/dev/null
xb_bg b "$XB_BIN/xb-pkt" recv -c 300 -t 500 5003
rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
nq a "$XB_BIN/xb-pkt" send -c 300 -i 0 -s 1000 198.51.100.1 5003 >/dev/null
wait "$rpid"
line=$(grep '^received=' "$rlog"); xb_log "$line"
span=$(ms "$(echo "$line" | field last_rx_ns)" "$(echo "$line" | field first_rx_ns)")
xb_within "8 Mbit/s rate: 299 packets' serialisation time (305 ms)" "$span" 290 320 ms

xb_check "bad control input gets an error" sh -c "! '$XB_BIN/xb-impair' ctl '$XB_TMP/impair-r.sock' set ab delay=-5"
xb_end
