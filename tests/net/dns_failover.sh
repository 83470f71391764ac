#!/usr/bin/env bash
# DNS follows the path (issue #16), end to end: a tunnel dns rule that
# names the first tunnel A resolves, when A is blackholed, a name never
# asked before through B within the client's 2 s (the query that was on
# A when it died is asked again through B), and its page loads through B;
# once A is down, names go to B's resolver first. With both resolvers
# dead, a name asked before is answered from the expired cache entry
# (serve-stale, TTL 30) and stays reachable; the DoH canary is NXDOMAIN.
#
# Topology: tests/lib/failover.sh and tests/lib/dns_failover.sh.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
. "$(dirname "$0")/../lib/dns_failover.sh"
xb_begin
for t in dnsmasq dig curl busybox jq; do
	command -v "$t" >/dev/null || { xb_skip "dns_failover" "$t is not installed (deploy/deps.sh)"; exit 77; }
done
fo_world || exit 1
df_policy
fo_partners || { xb_fail "partners start"; xb_end; }
df_resolvers
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with the dns rule of the issue (tunnel = \"$A\")"
fo_device || { xb_fail "device bring-up"; xb_end; }
fo_tables
xb_check "both tunnels come up" xb_wait 8000 both_up
xb_check "the path uses A" xb_wait 2000 on "$A"
xb_wait 5000 nq dev ping -c 1 -W 1 198.51.100.1

xb_check "the DoH canary use-application-dns.net is NXDOMAIN" \
	sh -c "ip netns exec $XB_RUN-dev dig +time=2 +tries=1 @198.51.100.1 use-application-dns.net | grep -q 'status: NXDOMAIN'"
xb_check "before: old.acme.cn resolves" test "$(dq old.acme.cn +short)" = 203.0.113.10
xb_check "... through A's resolver" grep -q "query\[A\] old.acme.cn" "$DF_LOG_A"
xb_check "... and its page loads" page old.acme.cn

# Blackhole A and ask at once, before the probes have judged it: the query
# goes to A's resolver, times out there (timeout 1000 ms) and is asked
# again through B.
a0=$(grep -c "query\[A\]" "$DF_LOG_B")
xb_impair ra set both loss=100 >/dev/null
ms=$(dq_ms new1.acme.cn)
xb_log "blackhole A → new1.acme.cn (never asked) answered after $ms ms"
xb_check "a name never asked before resolves within 2 s of the blackhole" test "$ms" != -
xb_check "... by B's resolver" grep -q "query\[A\] new1.acme.cn" "$DF_LOG_B"
xb_check "the path moved to B" xb_wait 2000 on "$B"
b0=$(via_b)
xb_check "new1.acme.cn's page loads (through B)" page new1.acme.cn
b1=$(via_b)
xb_check "... counted at the origin's B side ($b0 → $b1 packets)" test "${b1:-0}" -gt "${b0:-0}"
xb_check "A is down" xb_wait 3000 sh -c "[ \"\$(ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j tunnels | jq -r '.[] | select(.name == \"$A\") | .health.probe_state')\" = down ]"
ms=$(dq_ms new2.acme.cn)
xb_log "A down → new2.acme.cn answered after $ms ms"
xb_check "with A down, a new name resolves at once (through B first: under 500 ms)" \
	sh -c "[ '$ms' != - ] && [ '$ms' -lt 500 ]"
xb_check "... and A's resolver never saw it" sh -c "! grep -q 'new2.acme.cn' '$DF_LOG_A'"

# Both resolvers die; old.acme.cn's answer (TTL $DF_TTL s) expires.
kill "$DF_PID_A" "$DF_PID_B"
sleep $((DF_TTL + 1))
ans=$(dq old.acme.cn +noall +answer)
xb_log "with both resolvers dead: $ans"
xb_check "a name asked before is still answered (serve-stale)" \
	sh -c "echo '$ans' | awk '\$1 == \"old.acme.cn.\" && \$4 == \"A\" { print \$5 }' | grep -qx 203.0.113.10"
xb_check "... with TTL 30" sh -c "echo '$ans' | awk '\$1 == \"old.acme.cn.\" { print \$2 }' | grep -qx 30"
xb_check "... and its address is kept in the rule's set" \
	sh -c "ip netns exec $XB_RUN-gw nft list set inet xborder r_erp_dns4 | grep -q '203.0.113.10'"
xb_check "... so its page still loads" page old.acme.cn
xb_check "xborderctl dns counts the stale answers" \
	sh -c "ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' -j dns | jq -e '.cache.stale >= 2'"
xb_check "a name never asked before gets SERVFAIL" \
	sh -c "ip netns exec $XB_RUN-dev dig +time=4 +tries=1 @198.51.100.1 never.acme.cn | grep -q 'status: SERVFAIL'"
xb_check "the daemon logged no error" sh -c "! grep -Ei 'error|fatal' '$GWLOG'"
xb_end
