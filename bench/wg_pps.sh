#!/usr/bin/env bash
# WireGuard small packets: UDP datagrams of 64-byte payloads per second
# through a tunnel between two namespaces, ours <-> ours against
# wireguard-go <-> wireguard-go, and the plain veth under both, in the same
# run with the runs interleaved (both tunnels stay up side by side, on
# their own inner addresses and ports; an idle one costs nothing).
#
#   a ── eth0 192.0.2.1 ────────── 192.0.2.2 eth0 ── b
#   OA 198.51.100.1   ═══ ours ═══   198.51.100.2 OB
#   GA 198.51.100.129 ═══ wg-go ═══  198.51.100.130 GB
#   xb-udpflood send (a) ─────────▶ xb-udpflood recv (b), counted there
#
# The sender (tests/tools/udpflood_main.c) sends 64-byte payloads as fast
# as its socket takes them, 32 per sendmmsg; the receiver counts what
# arrives during SECONDS_PER_RUN after a 1 s warm-up. All four processes
# (sender, two tunnel endpoints, receiver) share the machine's cores, as
# they would on one host; "sent" next to "received" says whether the
# sender or the path was the limit (a path that drops most of what is
# sent is the limit). Also CPU seconds of both tunnel processes per
# million packets received.
#
# The sender does not pace itself: it takes a core's share the tunnel
# endpoints then lack (what a flooding application on the same host does);
# the tunnels' CPU per million packets is the figure free of that: its
# inverse is what one core of tunnel work carries (an upper bound of the
# cost: datagrams encrypted and then dropped before the receiver count).
# SENDER_NICE (0) runs the sender at a lower priority; under other load
# on the machine that starves the sender instead.
#
# Env: RUNS (3, interleaved, medians), SECONDS_PER_RUN (5), LEN (64),
# SENDER_NICE (0). About 25 s a run of the three paths: 75 s by default.
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
LEN=${LEN:-64}
SENDER_NICE=${SENDER_NICE:-0}
XB_QUIET=1
[ -x "$XB_BIN/xb-udpflood" ] || { echo "wg_pps bench: $XB_BIN/xb-udpflood is not built (make)"; exit 0; }
command -v wireguard-go >/dev/null || { echo "wg_pps bench: wireguard-go is not installed (make deps)"; exit 0; }
xb_begin
exec 2>"$XB_TMP/trace.log"	# xb_bg's echo; shown on a failure
die() { echo "wg_pps: $*"; tail -n 20 "$XB_TMP/trace.log"; exit 1; }
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24
xb_addr b eth0 192.0.2.2/24
hz=$(getconf CLK_TCK)
OA=xo$$a OB=xo$$b GA=xw$$a GB=xw$$b

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

pair_up() {	# pair_up IMPL IF_A IF_B PORT ADDR_A ADDR_B
	local ka kb
	ka=$(wg genkey) kb=$(wg genkey)
	xb_wg_up a "$2" "$1" "$ka" "$4" "$5/25" >/dev/null 2>&1 || return 1
	xb_wg_up b "$3" "$1" "$kb" $(($4 + 1)) "$6/25" >/dev/null 2>&1 || return 1
	nq a wg set "$2" peer "$(echo "$kb" | wg pubkey)" allowed-ips "$6/32" endpoint "192.0.2.2:$(($4 + 1))"
	nq b wg set "$3" peer "$(echo "$ka" | wg pubkey)" allowed-ips "$5/32"
	xb_wait 5000 nq a ping -c 1 -W 1 "$6"
}
pair_up ours "$OA" "$OB" 51820 198.51.100.1 198.51.100.2 || die "ours did not come up"
pair_up wireguard-go "$GA" "$GB" 51830 198.51.100.129 198.51.100.130 || die "wireguard-go did not come up"
declare -A PIDS=( [ours]="${XB_WG_PID[a/$OA]} ${XB_WG_PID[b/$OB]}"
	[wg-go]="${XB_WG_PID[a/$GA]} ${XB_WG_PID[b/$GB]}" [veth]="" )
declare -A DST=( [ours]=198.51.100.2 [wg-go]=198.51.100.130 [veth]=192.0.2.2 )
declare -A SIF=( [ours]=$OA [wg-go]=$GA [veth]=eth0 )
# Datagrams the sending side's interface dropped (its queue full): where
# an offered load above what the path carries is shed.
tx_dropped() { nq a cat "/sys/class/net/$1/statistics/tx_dropped"; }

ticks() { local p t=0; for p in $1; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }

# one PATH -> "received_pps sent_pps cpu_ticks dropped_pps"
one() {
	local port=$((20000 + RANDOM % 20000)) t0 t1 sent got d0 d1
	xb_bg b "$XB_BIN/xb-udpflood" recv -w 1000 -t $((SECONDS_PER_RUN * 1000)) "${DST[$1]}" "$port"
	local rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
	xb_wait 3000 grep -q ready "$rlog" || return 1
	t0=$(ticks "${PIDS[$1]}") d0=$(tx_dropped "${SIF[$1]}")
	sent=$(nq a nice -n "$SENDER_NICE" "$XB_BIN/xb-udpflood" send -l "$LEN" -t $((SECONDS_PER_RUN * 1000 + 1500)) "${DST[$1]}" "$port")
	wait "$rpid"
	t1=$(ticks "${PIDS[$1]}") d1=$(tx_dropped "${SIF[$1]}")
	got=$(grep -o 'pps [0-9]*' "$rlog" | cut -d' ' -f2)
	# "sent N seconds S pps X" -> "X drops/S"
	echo "${got:-0} $(echo "$sent" | awk -v d=$((d1 - d0)) -v t=$((t1 - t0)) '{ printf "%s %s %.0f", $6, t, d / $4 }')"
}

: >"$XB_TMP/r"
for _ in $(seq "$RUNS"); do
	for p in ours wg-go veth; do
		r=$(one "$p") || die "a $p run failed"
		echo "$p $r" >>"$XB_TMP/r"
	done
done
med() { awk -v p="$1" -v c="$2" '$1 == p { print $c }' "$XB_TMP/r" | xb_median; }
# CPU seconds of the two tunnel processes per million packets received,
# over all runs of PATH (each run counts for SECONDS_PER_RUN + 1.5 s of
# sending; the receiver's window is SECONDS_PER_RUN of it).
cpu_per_mpkt() {
	awk -v p="$1" -v hz="$hz" -v s="$SECONDS_PER_RUN" '$1 == p { t += $4; n += $2 * (s + 1.5) }
		END { if (n > 0) printf "%.2f", (t / hz) / (n / 1e6); else print "-" }' "$XB_TMP/r"
}
echo "UDP, $LEN-byte payloads, median of $RUNS interleaved runs of ${SECONDS_PER_RUN} s, counted at the receiver"
for p in ours wg-go veth; do
	runs=$(awk -v p="$p" '$1 == p { printf "%s%d", (n++ ? " " : ""), $2 }' "$XB_TMP/r")
	printf '  %-30s %9s pps received (sent %9s pps, dropped by the sending interface %9s pps)  runs: %s%s\n' \
		"$(case $p in ours) echo "ours <-> ours";; wg-go) echo "wireguard-go <-> wireguard-go";;
			veth) echo "plain veth (no tunnel)";; esac)" \
		"$(med "$p" 2)" "$(med "$p" 3)" "$(med "$p" 5)" "$runs" \
		"$([ "$p" = veth ] || echo "; tunnels' CPU $(cpu_per_mpkt "$p") s per Mpkt")"
done
o=$(med ours 2) g=$(med wg-go 2) v=$(med veth 2)
echo "pps ratio ours / wireguard-go: $(awk -v a="$o" -v b="$g" 'BEGIN { printf "%.2f", a / b }')"
echo "pps ratio ours / plain veth: $(awk -v a="$o" -v b="$v" 'BEGIN { printf "%.3f", a / b }')," \
	"wireguard-go / plain veth: $(awk -v a="$g" -v b="$v" 'BEGIN { printf "%.3f", a / b }')"
xb_wg_down a "$OA"; xb_wg_down b "$OB"; xb_wg_down a "$GA"; xb_wg_down b "$GB"
xb_end
