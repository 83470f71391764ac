#!/usr/bin/env bash
# Report -> enforcement on the other gateway (issue #17: p99 <= 100 ms), on
# the topology of tests/lib/ha.sh without keepalived: the vip is put on A
# by hand, B only follows the shared state (three etcd members). The device
# sends REPORTS reports to A, alternating compliant and failing; for each,
# the time from the device sending it (its nonce already fetched) to B's
# audit line "cluster report" (written once B's sets hold the result). The
# device's curl starting in its namespace is included.
#
#   sudo bench/cluster.sh        REPORTS=100 to change
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
. "$(dirname "$0")/../tests/lib/ha.sh"
REPORTS=${REPORTS:-100}
HA_GW_EXTRA="posture_limits = { requests_per_second = 100; burst = 200; };"
xb_begin
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in etcd curl jq; do
	command -v "$t" >/dev/null || { echo "$t missing (make deps)"; exit 77; }
done
ha_world || exit 1
ha_cluster_up || { echo "etcd did not start"; exit 1; }
for x in a b; do ha_policy "$x" "$(ha_cluster_snippet "$x")"; done
n ga ip addr add "$HA_VIP/32" dev lan0
ha_gw_start a && ha_gw_start b || { echo "the gateways did not start"; exit 1; }
ha_device || exit 1
xb_wait 5000 nq dev ping -c 1 -W 1 192.0.2.129 >/dev/null || { echo "the device does not reach A"; exit 1; }
up() { hctl "$1" -j status | jq -e '.cluster.state == "up"' >/dev/null; }
xb_wait 10000 up a && xb_wait 10000 up b || { echo "the cluster is not up"; exit 1; }

: >"$XB_TMP/sent"
t_start=$(date +%s)
for i in $(seq "$REPORTS"); do
	v=13; [ $((i % 2)) = 0 ] && v=11
	nonce=$(nq dev curl -s -m 2 "$HA_GW/v1/nonce" | sed 's/.*"nonce":"\([0-9a-f]*\)".*/\1/')
	echo "$i $(date +%s%3N)" >>"$XB_TMP/sent"
	st=$(nq dev curl -s -m 3 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
		-d "{\"seq\":$i,\"nonce\":\"$nonce\",\"time\":0,\"os\":{\"family\":\"linux\",\"version\":\"$v\"}}" \
		"$HA_GW/v1/report")
	[ "$st" = 200 ] || echo "report $i: $st"
	[ $(( $(date +%s) - t_start )) -gt 45 ] && { echo "stopped after $i reports (45 s)"; break; }
done
sleep 1
sort -k1,1 "$XB_TMP/sent" >"$XB_TMP/a"
jq -r 'select(.event == "cluster report" and .device == "dev") | "\(.seq) \(.at)"' \
	"$XB_TMP/state-b/posture.log" 2>/dev/null | sort -k1,1 >"$XB_TMP/b"
d=$(join "$XB_TMP/a" "$XB_TMP/b" | awk '{ print $3 - $2 }' | sort -n)
cnt=$(echo "$d" | grep -c .)
[ "$cnt" -gt 0 ] || { echo "B applied none of A's reports"; exit 1; }
pct() { echo "$d" | awk -v n="$cnt" -v p="$1" 'NR == int((n * p + 99) / 100) { print; exit }'; }
p50=$(pct 50) p99=$(pct 99)
echo "report sent to A -> enforced on B: n=$cnt of $(wc -l <"$XB_TMP/sent") p50 ${p50} ms p99 ${p99} ms max $(echo "$d" | tail -n 1) ms (goal p99 <= 100 ms: $([ "$p99" -le 100 ] && echo met || echo NOT met))"
xb_end
