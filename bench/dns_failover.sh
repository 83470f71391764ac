#!/usr/bin/env bash
# DNS failover (issue #16), on the topology of tests/net/dns_failover.sh
# (tests/lib/failover.sh + tests/lib/dns_failover.sh: partners A and B,
# each with its own resolver; the dns rule names A and follows erp's path
# A, B; probes every 100 ms; dns timeout 1000 ms per try):
#
#  over ROUNDS blackholes of A (both ways), the time from just before the
#  impairment is set to the first answer for a name never asked before
#  (one dig at once, asked again until answered, each try +time=2); p50
#  and p95, next to the route's move to B (the probes' detect time) in the
#  same rounds, and to the old behaviour — a rule pinned to A alone
#  (tunnel = [ A ], what every tunnel rule did before #16): never answered.
#  A heals and the path returns between rounds.
#
#   sudo bench/dns_failover.sh        ROUNDS=10 to change
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
. "$(dirname "$0")/../tests/lib/failover.sh"
. "$(dirname "$0")/../tests/lib/dns_failover.sh"
ROUNDS=${ROUNDS:-10}
xb_begin
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in dnsmasq dig jq; do
	command -v "$t" >/dev/null || { echo "$t missing (make deps)"; exit 77; }
done
pct() {	# pct P — the P-th percentile (nearest rank) of numbers on stdin
	sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

fo_world || exit 1
df_policy
fo_partners || exit 1
df_resolvers
xb_gw_start || { echo "xborderd did not start"; tail "$GWLOG"; exit 1; }
fo_device || exit 1
fo_tables
xb_wait 5000 nq dev ping -c 1 -W 1 198.51.100.1

: >"$XB_TMP/dns.ms"; : >"$XB_TMP/route.ms"
for r in $(seq "$ROUNDS"); do
	xb_wait 30000 both_up && xb_wait 3000 on "$A" || { echo "round $r: A did not come back within 30 s"; exit 1; }
	sleep 0.5
	rm -f "$XB_TMP/moved"
	t0=$(date +%s%N)
	( for _ in $(seq 500); do on "$B" && { date +%s%N >"$XB_TMP/moved"; break; }; sleep 0.01; done ) &
	poll=$!
	xb_impair ra set both loss=100 >/dev/null
	ans=
	for _ in 1 2 3 4 5; do
		ans=$(nq dev dig +short +time=2 +tries=1 @198.51.100.1 "r$r-$RANDOM.acme.cn" A) && [ "$ans" = 203.0.113.10 ] && break
	done
	t1=$(date +%s%N)
	wait "$poll"
	[ "$ans" = 203.0.113.10 ] && echo $(( (t1 - t0) / 1000000 )) >>"$XB_TMP/dns.ms"
	[ -s "$XB_TMP/moved" ] && echo $(( ($(cat "$XB_TMP/moved") - t0) / 1000000 )) >>"$XB_TMP/route.ms"
	echo "round $r: first new name answered after $(tail -n 1 "$XB_TMP/dns.ms") ms, route moved after $(tail -n 1 "$XB_TMP/route.ms") ms"
	xb_impair ra clear both >/dev/null
done

# The old behaviour, by configuration: the rule pinned to A alone.
xb_wait 30000 both_up && xb_wait 3000 on "$A"
sed -i "s|tunnel = \"$A\";|tunnel = [ \"$A\" ];|" "$XB_TMP/xborder.conf"
ctl reload >/dev/null || echo "reload failed"
sleep 0.5
xb_impair ra set both loss=100 >/dev/null
pinned="never (no answer in 5 s)"
nq dev dig +short +time=5 +tries=1 @198.51.100.1 "pinned-$RANDOM.acme.cn" A | grep -qx 203.0.113.10 && pinned="answered (unexpected)"
xb_impair ra clear both >/dev/null

n=$(wc -l <"$XB_TMP/dns.ms")
echo "dns failover, blackhole of A → first name never asked before answered ($n of $ROUNDS rounds answered):"
echo "  p50 $(pct 50 <"$XB_TMP/dns.ms") ms, p95 $(pct 95 <"$XB_TMP/dns.ms") ms, max $(pct 100 <"$XB_TMP/dns.ms") ms"
echo "  reference: the path's route moved to B (probe detect) p50 $(pct 50 <"$XB_TMP/route.ms") ms, p95 $(pct 95 <"$XB_TMP/route.ms") ms;"
echo "  the rule pinned to A (every tunnel rule before #16): $pinned"
kill "$GWPID" 2>/dev/null
[ "$n" = "$ROUNDS" ]
