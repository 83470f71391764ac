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
# every run, then per path the median and the spread (min-max), and the
# ratio of the medians; load average at the start and the end. Both are
# bounded by xb-impair, a userspace forwarder on rb (docs/performance.md).
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

nq org ip route add 192.0.2.16/30 via 203.0.113.5
nq org ip route add 192.0.2.28/30 via 203.0.113.5
nq org ip route add 192.0.2.16/30 via 203.0.113.5 table 2
nq org ip route add 192.0.2.28/30 via 203.0.113.5 table 2
nq rb ip route add 203.0.113.10 via 192.0.2.22
nq gw ip route add 203.0.113.10 via 192.0.2.18
xb_bg org iperf3 -s -B 203.0.113.10
xb_wait 3000 nq org ss -ltn sport = :5201
xb_wait 5000 nq gw ping -c 1 -W 1 -I "xb-$B" 203.0.113.10 >/dev/null || echo "warning: no ping through xb-$B yet"

gbps() { nq gw iperf3 -c 203.0.113.10 -t "$SECS" -J "$@" | jq -r 'if .error then ("iperf3: " + .error | halt_error) else .end.sum_received.bits_per_second / 1e9 end'; }
: >"$XB_TMP/plain" && : >"$XB_TMP/gre"
for r in $(seq "$ROUNDS"); do
	p=$(gbps -B 192.0.2.17) || exit 1
	g=$(gbps --bind-dev "xb-$B" -B 192.0.2.29) || exit 1
	echo "$p" >>"$XB_TMP/plain" && echo "$g" >>"$XB_TMP/gre"
	printf '  round %d: plain %.2f Gbit/s, GRE %.2f Gbit/s\n' "$r" "$p" "$g"
done
med() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
read -r pm plo phi <<<"$(med "$XB_TMP/plain")"
read -r gm glo ghi <<<"$(med "$XB_TMP/gre")"
echo "GRE throughput, gateway → origin (iperf3, 1 stream, $SECS s, $ROUNDS rounds):"
echo "  plain routing $pm Gbit/s ($plo-$phi); through xb-$B (userspace GRE) $gm Gbit/s ($glo-$ghi)"
awk -v g="$gm" -v p="$pm" 'BEGIN { printf "  ratio GRE / plain %.2f (goal 0.90: %s)\n", g / p, (g / p >= 0.9) ? "met" : "NOT met" }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
kill "$GWPID" 2>/dev/null
xb_end
