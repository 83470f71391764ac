#!/usr/bin/env bash
# `xborderctl cluster prune' does not hold xborderd's loop (docs/ha.md
# "Pool allocations"): with every etcd member stopped (SIGSTOP: TCP still
# connects, nothing answers), a prune waits for etcd while the daemon
# answers `xborderctl status' and a DNS query at once; a second prune is
# told one is running; the first fails after its read's 4 s with "etcd did
# not answer ...: nothing deleted". With the members continued, a prune
# deletes a stale key. A daemon stopped during a prune answers it and exits.
#
#   alice eth0 192.0.2.1/30 ── g ea 192.0.2.2/30: xborderd (devif 203.0.113.1, DNS)
#   alice's WireGuard 203.0.113.10 → 203.0.113.1     g etcd0 ── three etcd members (tests/lib/etcd.sh, http)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/etcd.sh"
xb_begin
for t in etcd etcdctl wg jq dig; do
	command -v "$t" >/dev/null || { xb_skip "cluster_prune" "$t is not installed (deploy/deps.sh)"; exit 77; }
done
etcd_start_cluster || { xb_fail "three etcd members start"; xb_end; }
# Stopped members are continued whatever happens, before the kit's cleanup.
members() { local i; for i in 1 2 3; do cat "$ETCD_DIR/m$i.pid"; done; }
etcd_signal() { kill -"$1" $(members) 2>/dev/null; }
trap 'rc=$?; etcd_signal CONT; (exit $rc); xb_cleanup' EXIT
xb_ns g alice
xb_veth alice eth0 g ea
xb_addr alice eth0 192.0.2.1/30
xb_addr g ea 192.0.2.2/30
nq g ip link set lo up
etcd_attach g >/dev/null || { xb_fail "attach g"; xb_end; }
ID=$$
kg=$(wg genkey) ka=$(wg genkey)
(umask 077; echo "$kg" >"$XB_TMP/gw.key")
# request_timeout_ms above the prune's 4 s: its client's is capped to 4 s.
cat >"$XB_TMP/x.conf" <<EOF
gateway = {
  interface = "xp$ID"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "203.0.113.0/25";
  control_socket = "$XB_TMP/ctl.sock"; state_dir = "$XB_TMP/state";
};
devices = ( { name = "alice"; public_key = "$(echo "$ka" | wg pubkey)"; address4 = "203.0.113.10"; },
  { name = "bob"; public_key = "$(wg genkey | wg pubkey)"; } );
rules = ( { name = "none"; to = [ "198.51.100.0/24" ]; action = "deny"; } );
dns = { upstreams = [ "192.0.2.53" ]; timeout = 500; tries = 1; };
cluster = { name = "p$ID"; node = "g"; endpoints = [ $(etcd_endpoints | sed 's/[^,]*/"&"/g; s/,/, /g') ];
  request_timeout_ms = 10000; };
EOF
ctl() { timeout 20 ip netns exec "$XB_RUN-g" "$XB_BIN/xborderctl" -s "$XB_TMP/ctl.sock" "$@"; }
xb_bg g "$XB_BIN/xborderd" -f -c "$XB_TMP/x.conf"; log=$XB_LAST_LOG; pid=$XB_LAST_PID
if ! { xb_wait 8000 test -S "$XB_TMP/ctl.sock" && xb_wait 5000 grep -q "gateway up" "$log"; }; then
	xb_fail "xborderd starts" "$(tail -n 20 "$log")"; xb_end
fi
cluster_up() { ctl -j status | jq -e '.cluster.state == "up"' >/dev/null; }
xb_check "its cluster is up" xb_wait 5000 cluster_up
P=/xborder/p$ID/alloc/4/203.0.113.99
nq eh etcdctl --endpoints="$(etcd_endpoints)" put "$P" '{"device":"zed","node":"gwz"}' >/dev/null
dry_lists_zed() { ctl cluster prune --dry-run | grep -q '^would_delete .*203.0.113.99: device zed'; }
xb_check "a prune --dry-run lists zed's stale key" dry_lists_zed
AIF=xq$ID
xb_wg_up alice "$AIF" ours "$ka" 0 203.0.113.10/25 || { xb_fail "alice's WireGuard"; xb_end; }
nq alice wg set "$AIF" peer "$(echo "$kg" | wg pubkey)" endpoint 192.0.2.2:51820 allowed-ips 203.0.113.0/25
xb_check "alice reaches the gateway through her tunnel" xb_wait 5000 nq alice ping -c 1 -W 1 203.0.113.1
# Any answer (the upstream is nowhere: SERVFAIL, say) is the loop answering.
dns_answers() { timeout 5 ip netns exec "$XB_RUN-alice" dig +time=1 +tries=1 @203.0.113.1 www.example.test | grep -q "status: "; }
xb_check "the DNS service answers" dns_answers

ms() { date +%s%3N; }
etcd_signal STOP
t0=$(ms)
( ctl cluster prune >"$XB_TMP/p1.out" 2>&1; echo $? >"$XB_TMP/p1.rc"; ms >"$XB_TMP/p1.t" ) &
sleep 0.5
# Both at once, 0.5 s into the prune's 4 s wait.
( t=$(ms); dns_answers; echo "$? $(( $(ms) - t ))" >"$XB_TMP/dns.res" ) &
t=$(ms); ctl status >/dev/null; rc=$?; st=$(( $(ms) - t ))
xb_log "status during the prune: rc=$rc in $st ms"
xb_check "while the prune waits for etcd, status answers" test "$rc" = 0
xb_within "... at once" "$st" 0 1500 ms
xb_wait 8000 test -s "$XB_TMP/dns.res"
read -r rc dt <"$XB_TMP/dns.res"
xb_log "DNS during the prune: rc=$rc in $dt ms"
xb_check "... a DNS query is answered" test "$rc" = 0
xb_within "... at once" "$dt" 0 1500 ms
ctl cluster prune >"$XB_TMP/p2.out" 2>&1
xb_check "a second prune is told one is running" grep -qx "xborderctl: cluster-prune failed: a prune is running (one at a time): run it again when it has finished; nothing changed" "$XB_TMP/p2.out"
xb_wait 12000 test -s "$XB_TMP/p1.t"
xb_log "the prune: rc=$(cat "$XB_TMP/p1.rc" 2>/dev/null) after $(( $(cat "$XB_TMP/p1.t" 2>/dev/null || ms) - t0 )) ms: $(cat "$XB_TMP/p1.out")"
xb_check "the prune fails with its clear error" grep -qx "xborderctl: cluster-prune failed: etcd did not answer within 4000 ms: nothing deleted" "$XB_TMP/p1.out"
xb_check "... exit 1" test "$(cat "$XB_TMP/p1.rc")" = 1
etcd_signal CONT
xb_check "members continued: healthy" etcd_wait_healthy 20000
prune_deletes() { ctl cluster prune 2>&1 | grep -q "^deleted .*203.0.113.99: device zed"; }
xb_check "then a prune deletes zed's key" xb_wait 15000 prune_deletes
xb_check "... it is gone" test -z "$(nq eh etcdctl --endpoints="$(etcd_endpoints)" get "$P" --print-value-only)"
xb_check "the daemon still runs" kill -0 "$pid"

# A reload during a prune: bob (a pool address, so a key in the store)
# leaves the policy while the prune's read waits; the read's answer is
# judged against the policy running when it arrives, so bob's key goes.
alloc_of() { nq eh etcdctl --endpoints="$(etcd_endpoints)" get --prefix "/xborder/p$ID/alloc/4/" | paste - - | awk -v d="$1" 'index($2, "\"device\":\"" d "\"") { sub(".*/", "", $1); print $1 }'; }
bob_in_store() { [ -n "$(alloc_of bob)" ]; }
xb_check "bob's pool address is in the store" xb_wait 5000 bob_in_store
etcd_signal STOP
( ctl cluster prune >"$XB_TMP/p4.out" 2>&1; echo $? >"$XB_TMP/p4.rc" ) &
sleep 0.3
sed -i '/name = "bob"/d; s/address4 = "203.0.113.10"; },/address4 = "203.0.113.10"; } );/' "$XB_TMP/x.conf"
ctl reload >"$XB_TMP/reload.out" 2>&1; rc=$?
xb_check "a reload during the prune succeeds" test "$rc" = 0
etcd_signal CONT
xb_wait 12000 test -s "$XB_TMP/p4.rc"
xb_log "the prune over a reload: rc=$(cat "$XB_TMP/p4.rc") $(tr '\n' '|' <"$XB_TMP/p4.out")"
xb_check "... the prune judged against the reloaded policy: bob's key deleted" grep -q "^deleted .*: device bob is not in this gateway's policy" "$XB_TMP/p4.out"
bob_gone() { [ -z "$(alloc_of bob)" ]; }
xb_check "... and it is gone" bob_gone

# Stopping the daemon during a prune: the request is answered, the daemon exits.
etcd_signal STOP
( ctl cluster prune >"$XB_TMP/p3.out" 2>&1; echo $? >"$XB_TMP/p3.rc" ) &
sleep 0.5
kill -TERM "$pid"
xb_wait 10000 test -s "$XB_TMP/p3.rc"
xb_log "the prune at the stop: $(cat "$XB_TMP/p3.out")"
xb_check "stopped during a prune: the prune is answered that it was cancelled" grep -qx "xborderctl: cluster-prune failed: xborderd is stopping: the prune was cancelled (deletes already sent may have been applied: run it again)" "$XB_TMP/p3.out"
# The cluster's own client waits for its requests in flight (its 10 s
# timeout): continue the members for the rest of the stop.
etcd_signal CONT
gone() { ! kill -0 "$pid" 2>/dev/null; }
xb_check "... and xborderd exits" xb_wait 15000 gone
grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$log" && xb_fail "xborderd exits clean (sanitizers)" "$(grep -A5 Sanitizer "$log" | head -20)"
xb_end
