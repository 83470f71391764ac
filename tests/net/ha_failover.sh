#!/usr/bin/env bash
# Active/standby failover, end to end (docs/ha.md): two gateways holding the
# same keys and sharing state through three etcd members, keepalived moving
# the devices' address, kill -9 of the active xborderd while the device pings
# the origin every 10 ms and streams TCP over a snat = false path. The
# survivor takes the device over itself (its last endpoint from etcd). The
# longest reply gap is printed and must stay within HA_GAP_MAX_MS (3000
# here: the machine is loaded; the goal, 1 s, and the measured figures are
# in docs/performance.md). On the survivor the device is compliant (the
# origin's rule needs posture) and a destination it learned through A's DNS
# opens, with no new report and no DNS query.
#
# Topology, VRRP and the partner's side: tests/lib/ha.sh.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/ha.sh"
HA_GAP_MAX_MS=${HA_GAP_MAX_MS:-3000}
xb_begin
for t in keepalived etcd etcdctl dnsmasq dig curl jq; do
	command -v "$t" >/dev/null || { xb_skip "ha_failover" "$t is not installed (deploy/deps.sh installs it)"; exit 77; }
done
ha_world || { xb_fail "topology"; xb_end; }
ha_cluster_up || { xb_fail "three etcd members start"; xb_end; }
for x in a b; do ha_policy "$x" "$(ha_cluster_snippet "$x")"; done
ha_gw_start a || { xb_fail "xborderd A starts" "$(tail -n 20 "${HA_LOG[a]}")"; xb_end; }
ha_keepalived a || { xb_fail "keepalived A"; xb_end; }
xb_check "A takes the VIP (the only one up)" ha_wait_vip a 5000
ha_gw_start b || { xb_fail "xborderd B starts" "$(tail -n 20 "${HA_LOG[b]}")"; xb_end; }
ha_keepalived b || { xb_fail "keepalived B"; xb_end; }
sleep 1
xb_check "A keeps the VIP when B comes up (nopreempt)" test "$(ha_holder)" = a
ha_device || { xb_fail "device bring-up"; xb_end; }
xb_check "the device reaches A's posture endpoint" xb_wait 5000 nq dev ping -c 1 -W 1 192.0.2.129
xb_check "A accepts a compliant report" test "$(ha_report 1 13)" = 200
xb_check "... and B has it within 2 s (the device in rule origin's set)" \
	xb_wait 2000 ha_in_set b r_origin_dev4 192.0.2.130
xb_check "A answers www.acme.test" test "$(nq dev dig +time=2 +tries=1 +short @192.0.2.129 www.acme.test)" = 192.0.2.201
xb_check "B learned it from A within 2 s" xb_wait 2000 ha_in_set b r_erp_dns4 192.0.2.201
xb_check "B knows the device's endpoint" xb_wait 3000 sh -c \
	"ETCDCTL_API=3 ip netns exec $XB_RUN-eh etcdctl --endpoints=$(etcd_endpoints) get --prefix /xborder/ha$ID/endpoint/ --print-value-only | grep -q 203.0.113.200"
if xb_wait 5000 nq dev ping -c 1 -W 1 192.0.2.200; then
	xb_ok "the device reaches the origin through A"
else
	xb_fail "the device reaches the origin through A"
	for ns in dev ga pt; do n "$ns" wg show all; done
	tail -n 30 "${HA_LOG[a]}"
	[ "${HA_DEBUG:-}" ] && { echo "debug: $XB_RUN"; sleep "$HA_DEBUG"; }
fi

# The stream: 2 MB at 2 Mbit/s, 8 s, across the kill; it must end within
# 3 s of the pings (today's 5-15 s of silence would not let it).
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 20000 "$port"; rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg dev "$XB_BIN/xb-pkt" tcp-send -n 2000000 -r 2000 192.0.2.200 "$port"; spid=$XB_LAST_PID slog=$XB_LAST_LOG
# The kill, with the device pinging every 10 ms for 12 s.
ha_failover a 12
xb_check "B takes the VIP" ha_holds b
xb_log "VIP on B ${HA_VIP_MS} ms after the kill (polled); longest reply gap ${HA_GAP_MS} ms ($HA_REPLIES replies)"
echo "HA_GAP_MS=$HA_GAP_MS"
gap=$HA_GAP_MS
xb_check "the longest reply gap (${gap} ms) is at most ${HA_GAP_MAX_MS} ms" test "$gap" -le "$HA_GAP_MAX_MS"
for _ in $(seq 30); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$spid" 2>/dev/null; then
	xb_fail "the TCP stream survives" "still sending 3 s after the pings ended"
	kill "$spid" "$rpid" 2>/dev/null
else
	wait "$rpid" 2>/dev/null
	xb_check "the TCP stream survives: every byte, same checksum" \
		sh -c "grep -q sha256= '$slog' && [ \"\$(grep sha256= '$slog')\" = \"\$(grep sha256= '$rlog')\" ]"
fi
xb_check "on B, the destination learned through A opens (no report, no DNS query since)" \
	sh -c "ip netns exec $XB_RUN-dev ping -c 1 -W 2 192.0.2.201 >/dev/null"
xb_check "B's log: the takeover began when the VIP appeared, with one device" \
	grep -q "takeover (the vip appeared): 1 device" "${HA_LOG[b]}"
xb_check "xborderctl takeover on B: the device has a live session there, nothing to initiate" \
	sh -c "ip netns exec $XB_RUN-gb '$XB_BIN/xborderctl' -s '$XB_TMP/b.sock' -j takeover | jq -e '.live == 1 and .queued == 0 and .holds_vip'"
xb_log "stream: sent $(grep -o 'sha256=[0-9a-f]\{12\}.*' "$slog" | head -1), received $(grep -o 'sha256=[0-9a-f]\{12\}.*' "$rlog" | head -1)"
xb_log "B's log:"; grep -i "vip\|takeover" "${HA_LOG[b]}" | sed 's/^/#   /'
[ "${HA_DEBUG:-}" ] && { echo "debug: $XB_RUN $XB_TMP"; sleep "$HA_DEBUG"; }
xb_end
