#!/usr/bin/env bash
# Userspace GRE throughput against plain routing over the same hop (#18:
# goal GRE >= 0.9 x plain), on the topology of bench/failover.sh
# (tests/lib/failover.sh): iperf3 TCP, one stream, SECS seconds, from the
# gateway to the origin, alternately
#
#   plain   gw eb ── rb (xb-impair) ── pb ── org        routed, no tunnel
#   GRE     gw xb-B (xborderd's userspace GRE, key 7) ══ the same hops ══
#           pb xb-B (xb-gre) ── org
#
# ROUNDS times each, interleaved so that both see the same load. Prints
# every run, then per path the median and the spread (min-max), the
# ratio of the medians and the median of each round's ratio (the pairs ran
# back to back, so it follows the load best; judged against the goal); load average at the start and the end; CPU seconds
# per GB of xborderd (gw), xb-impair (rb) and xb-gre (pb) over each path.
# Both paths are bounded by xb-impair, a userspace forwarder on rb
# (docs/performance.md).
#
#   sudo bench/gre.sh        ROUNDS=3 SECS=5 to change; XB_BUILD=DIR runs
#                            another build's binaries (an old one, to compare)
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
. "$(dirname "$0")/../tests/lib/failover.sh"
ROUNDS=${ROUNDS:-3} SECS=${SECS:-5}
xb_begin
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); binaries: $XB_BIN"
command -v iperf3 >/dev/null || { echo "skip: iperf3 missing (make deps)"; exit 77; }

fo_world || exit 1
fo_partners || exit 1
fo_policy
xb_gw_start || { echo "xborderd did not start"; tail "$GWLOG"; exit 1; }

fo_gre_iperf
xb_wait 5000 nq gw ping -c 1 -W 1 -I "xb-$B" 203.0.113.10 >/dev/null || echo "warning: no ping through xb-$B yet"

pid_in() {	# pid_in NS COMM — the process COMM in namespace NS
	local p
	for p in $(ip netns pids "$XB_RUN-$1"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && { echo "$p"; return; }
	done
}
PIDS="$GWPID $(pid_in rb xb-impair) $(pid_in pb xb-gre)"
ticks() { for p in $PIDS; do awk '{ printf "%d ", $14 + $15 }' "/proc/$p/stat"; done; }
# gbps ARGS — one iperf3 run: GB, Gbit/s; CPU, "gw rb pb" CPU s per GB
gbps() {
	local t0 t1 r
	t0=$(ticks)
	r=$(nq gw iperf3 -c 203.0.113.10 -t "$SECS" -J "$@" | jq -r 'if .error then ("iperf3: " + .error | halt_error) else "\(.end.sum_received.bits_per_second / 1e9) \(.end.sum_sent.retransmits)" end') || return 1
	read -r r RETR <<<"$r"
	t1=$(ticks)
	CPU=$(awk -v a="$t0" -v b="$t1" -v g="$r" -v s="$SECS" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x); split(b, y); gb = g * s / 8
		for (i = 1; i <= 3; i++) printf "%s%.1f", (i > 1) ? "/" : "", (y[i] - x[i]) / hz / gb }')
	GB=$r
}
: >"$XB_TMP/plain" && : >"$XB_TMP/gre" && : >"$XB_TMP/ratio"
for r in $(seq "$ROUNDS"); do
	gbps -B 192.0.2.17 && p=$GB pc=$CPU pr=$RETR || exit 1
	gbps --bind-dev "xb-$B" -B 192.0.2.29 && g=$GB gc=$CPU gr=$RETR || exit 1
	echo "$p" >>"$XB_TMP/plain" && echo "$g" >>"$XB_TMP/gre"
	awk -v g="$g" -v p="$p" 'BEGIN { print g / p }' >>"$XB_TMP/ratio"
	printf '  round %d: plain %.2f Gbit/s (%s retransmits), GRE %.2f Gbit/s (%s); CPU s/GB xborderd/xb-impair/xb-gre: plain %s, GRE %s\n' \
		"$r" "$p" "$pr" "$g" "$gr" "$pc" "$gc"
done
med() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
read -r pm plo phi <<<"$(med "$XB_TMP/plain")"
read -r gm glo ghi <<<"$(med "$XB_TMP/gre")"
echo "GRE throughput, gateway → origin (iperf3, 1 stream, $SECS s, $ROUNDS rounds):"
echo "  plain routing $pm Gbit/s ($plo-$phi); through xb-$B (userspace GRE) $gm Gbit/s ($glo-$ghi)"
read -r rm rlo rhi <<<"$(med "$XB_TMP/ratio")"
awk -v g="$gm" -v p="$pm" -v r="$rm" -v lo="$rlo" -v hi="$rhi" 'BEGIN {
	printf "  ratio GRE / plain: of the medians %.2f; median of the rounds %.2f (%.2f-%.2f); goal 0.90: %s\n",
		g / p, r, lo, hi, (r >= 0.9) ? "met" : "NOT met" }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# xb-gre's counters (SIGUSR1 logs them): drops by reason, errors.
kill -USR1 "$(pid_in pb xb-gre)" && sleep 0.3
echo "xb-gre (pb): $(grep -ho "$B: rx [0-9]* packets.*" "$XB_TMP"/bg.*.log | tail -n 1)"
# Datagrams the raw GRE sockets lost to a full receive buffer (last column).
echo "xb-impair's TUNs (rb), packets dropped for a full queue: $(nq rb ip -j -s link show imp-ab | jq '.[0].stats64.tx.dropped') a→b, $(nq rb ip -j -s link show imp-ba | jq '.[0].stats64.tx.dropped') b→a; xb-$B (gw): $(nq gw ip -j -s link show "xb-$B" | jq '.[0].stats64.tx.dropped')"
for ns in gw pb; do
	echo "raw socket drops in $ns: $(nq "$ns" awk 'NR > 1 && $10 != "" { d += $NF } END { print d + 0 }' /proc/net/raw /proc/net/raw6)"
done
kill "$GWPID" 2>/dev/null
xb_end
