#!/usr/bin/env bash
# A hostile resolver against xborderd's DNS service (issue 14, part 3):
# what an answer may put into an access rule's _dns sets, and how much.
#
#   dev ──WG── gw: xborderd ─────────────── res: xb-dnsfake
#   198.51.100.10    DNS on 198.51.100.1     192.0.2.18: every AAAA query gets 64
#   192.0.2.1/30 ↔ .2    192.0.2.17/30 ↔ .18    records: 16 fresh addresses TTL 4,
#                                             the same 16 TTL 8, 32 fresh TTL 30
#                                             or 3000 in turn;
#                                             bad.flood.example A gets the
#                                             addresses no set may hold
#
# 1. bad.flood.example answers 0.0.0.0, 127.0.0.1, the gateway's pool
#    address, 224.0.0.1, 169.254.1.1, 255.255.255.255 (and one good
#    address): none but the good one enters the rule's set; each is
#    counted in `xborderctl dns -j'.
# 2. The flood: 2 000 fresh names (64 addresses each, all learnable with
#    learn_answer_max = 64) from the device, 32 in flight, while a second
#    stream from the same device asks an override name every ms: no
#    override query is lost, their p99 stays under 50 ms, and every
#    eviction is counted. The set is sized learn_max (4 096, small so that
#    it is exercised), so the kernel itself keeps it within the cap; what
#    is checked is that no set change failed and nothing was refused for a
#    full set: the table never knows fewer elements than the kernel. Mixed
#    TTLs and addresses answered twice (grace 0) make entries learned,
#    refreshed and evicted within one round: an address answered with TTL
#    4 comes again with TTL 8 in the same answer (a refresh), then the 32
#    fresh ones with longer TTLs push it out. The figures are printed.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
for t in dig jq; do
	command -v "$t" >/dev/null || { xb_skip "dns_flood" "$t is not installed (deploy/deps.sh)"; exit 77; }
done
xb_ns dev gw res
xb_veth dev eth0 gw ed
xb_veth gw eu res eth0
xb_addr dev eth0 192.0.2.1/30
xb_addr gw ed 192.0.2.2/30
xb_addr gw eu 192.0.2.17/30
xb_addr res eth0 192.0.2.18/30

ID=$$
GWIF=xg$ID DIF=xd$ID CAP=4096
CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kd=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key")

cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; pool6 = "2001:db8:100::/64";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
};
devices = (
  { name = "dev"; public_key = "$(pub "$kd")"; address4 = "198.51.100.10"; }
);
rules = (
  { name = "flood"; devices = [ "dev" ]; domains = [ "*.flood.example" ]; action = "allow";
    via = [ "internet" ]; }
);
dns = {
  upstreams = [ "192.0.2.18" ];
  timeout = 1000; tries = 1; cache_size = 0; grace = 0;
  learn_max = $CAP; learn_answer_max = 64;
  rules = (
    { name = "ov"; domains = [ "ov.example" ]; action = "override"; answer = [ "203.0.113.5" ]; ttl = 30; }
  );
};
EOF

BAD="0.0.0.0 127.0.0.1 198.51.100.1 224.0.0.1 169.254.1.1 255.255.255.255"
REP=16
xb_bg res "$XB_BIN/xb-dnsfake" -l 192.0.2.18 -n 64 -t 3000,30 -r $REP -R 4,8 -B bad.flood.example \
	-b "$(echo $BAD 203.0.113.7 | tr ' ' ,)"
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(cat "$GWLOG")"
	xb_end
fi
xb_wg_up dev "$DIF" ours "$kd" 0 198.51.100.10/24 || { xb_fail "device bring-up"; xb_end; }
n dev wg set "$DIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24
xb_wait 5000 nq dev ping -c 1 -W 1 198.51.100.1 >/dev/null

set_has() { nq gw nft list set inet xborder "$1" | grep -qw -- "$2"; }
set_size() { nq gw nft list set inet xborder "$1" | grep -o ' expires ' | wc -l; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$GWPID/status"; }
learning() { ctl -j dns | jq -r ".learning[] | select(.rule == \"flood\") | $1"; }

# 1. Addresses no answer may teach.
got=$(nq dev dig +time=2 +tries=1 +short @198.51.100.1 bad.flood.example A | sort | tr '\n' ' ')
xb_check "the resolver's answer reaches the device unchanged (7 addresses)" \
	test "$(echo "$got" | wc -w)" = 7
xb_check "the good address in the same answer is learned" set_has r_flood_dns4 203.0.113.7
for a in $BAD; do
	xb_check "$a is not in the set" sh -c "! ip netns exec $XB_RUN-gw nft list set inet xborder r_flood_dns4 | grep -qw -- '$a'"
done
xb_check "the set holds exactly the good address" test "$(set_size r_flood_dns4)" = 1
xb_check "refusals counted: 5 special-purpose, 1 own" \
	test "$(learning '"\(.refused.special) \(.refused.own)"')" = "5 1"
xb_check "refusals logged" grep -q 'rule "flood": 0.0.0.0 answered for bad.flood.example not learned' "$GWLOG"

# 2. The flood, and override queries beside it.
rss0=$(rss_kb)
DONE=$XB_TMP/flood.done
t0=$(date +%s%3N)
nq dev "$XB_BIN/xb-dnsq" -s 198.51.100.1 -n 20000 -w 4 -i 1 -T 1000 -u "$DONE" ov.example >"$XB_TMP/probe.out" &
probe=$!
sleep 0.2
timeout 50 ip netns exec "$XB_RUN-dev" "$XB_BIN/xb-dnsq" -s 198.51.100.1 -t AAAA -n 2000 -w 32 -T 2000 \
	'n%u.flood.example' >"$XB_TMP/flood.out"
touch "$DONE"
wait "$probe"
t1=$(date +%s%3N)
rss1=$(rss_kb)
read -r _ fsent _ fans _ flost _ fp50 _ fp99 _ fmax <"$XB_TMP/flood.out"
read -r _ psent _ pans _ plost _ pp50 _ pp99 _ pmax <"$XB_TMP/probe.out"
n6=$(set_size r_flood_dns6)
st=$(ctl -j dns)
learned6=$(learning .learned6) evicted=$(learning .evicted) over=$(learning .refused.over_answer_max)
full=$(learning .refused.set_full) failures=$(echo "$st" | jq .clients.set_failures)
distinct=$((2000 * (64 - REP)))
stall=$(echo "$st" | jq .loop.stall_max_ms)
xb_log "flood: $fsent names sent, $fans answered, $flost lost; latency p50 $fp50 ms, p99 $fp99 ms, max $fmax ms; $((t1 - t0)) ms in all"
xb_log "override during the flood: $psent sent, $pans answered, $plost lost; p50 $pp50 ms, p99 $pp99 ms, max $pmax ms"
xb_log "set r_flood_dns6: $n6 elements in the kernel, $learned6 in the table (cap $CAP), $evicted evictions, $over over learn_answer_max, $full refused for a full set, $failures set changes failed"
xb_log "daemon RSS: ${rss0} kB before, ${rss1} kB after; main loop's longest round: $stall ms"

xb_check "every flood name was answered" test "$fans" = 2000
xb_check "the override stream ran through the flood (>= 100 queries)" test "$psent" -ge 100
xb_check "no override query was lost" test "$plost" = 0
xb_within "override p99 during the flood" "$pp99" 0 50 ms
xb_check "no set change failed" test "$failures" = 0
xb_check "nothing refused for a full set" test "$full" = 0
xb_check "the set is full (the cap was reached)" test "$n6" = "$CAP"
xb_check "the table agrees with the kernel" test "$learned6" = "$n6"
# An address evicted before it comes again (a full set's soonest entry may
# be the TTL-4 one just learned) is learned, and evicted, again.
xb_within "evictions counted: between the distinct addresses - cap and every record" "$evicted" \
	$((distinct - CAP)) $((2000 * 64))
xb_check "nothing was over learn_answer_max (64)" test "$over" = 0
xb_check "the main loop's longest round is shown" test "$stall" != null
ctl dns | sed 's/^/# /'
xb_check "SIGTERM: xborderd stops" xb_gw_stop
xb_end
