#!/usr/bin/env bash
# The takeover's trigger and pacing in xborderd (docs/ha.md): one gateway
# with a cluster section (vip 203.0.113.10, takeover_rate 10), 20 devices
# whose last endpoints are in etcd (as another gateway would have written
# them), none of which has a session here. Adding the vip to an interface
# starts the takeover (logged with the count); at 10 a second the 20
# initiations take about 1.9 s; removing the vip in the middle stops it. Without the vip on an interface nothing is initiated.
# Restarted with the vip already held, it takes over once the shared state is read.
#
#   g: xborderd, eth0 203.0.113.1/24 (+ the vip) ── x: nothing (the devices' endpoints lead nowhere)
#   g: etcd0 ── three etcd members (tests/lib/etcd.sh)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/etcd.sh"
xb_begin
for t in etcd etcdctl wg jq; do
	command -v "$t" >/dev/null || { xb_skip "ha_trigger" "$t is not installed (deploy/deps.sh)"; exit 77; }
done
etcd_start_cluster || { xb_fail "three etcd members start"; xb_end; }
xb_ns g x
xb_veth g eth0 x eth0
xb_addr g eth0 203.0.113.1/24
nq g ip link set lo up
etcd_attach g >/dev/null || { xb_fail "attach g"; xb_end; }
ID=$$ N=20
kg=$(wg genkey)
(umask 077; echo "$kg" >"$XB_TMP/gw.key")
devs=
for i in $(seq $N); do
	devs+="{ name = \"d$i\"; public_key = \"$(wg genkey | wg pubkey)\"; address4 = \"192.0.2.$((129 + i))\"; },"
done
cat >"$XB_TMP/x.conf" <<EOF
gateway = {
  interface = "xt$ID"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "192.0.2.128/26";
  control_socket = "$XB_TMP/ctl.sock"; state_dir = "$XB_TMP/state";
};
devices = ( ${devs%,} );
rules = ( { name = "none"; to = [ "198.51.100.0/24" ]; action = "deny"; } );
cluster = { name = "tr$ID"; node = "g"; endpoints = [ $(etcd_endpoints | sed 's/[^,]*/"&"/g; s/,/, /g') ];
  request_timeout_ms = 500; vip = "203.0.113.10"; takeover_rate = 10; };
EOF
# The endpoints, as the gateway that held the devices wrote them; d20 seen last.
now=$(date +%s%3N)
for i in $(seq $N); do
	nq eh env ETCDCTL_API=3 etcdctl --endpoints="$(etcd_endpoints)" put "/xborder/tr$ID/endpoint/d$i" \
		"{\"endpoint\":\"203.0.113.$((100 + i)):51820\",\"seen\":$((now - 60000 + i * 1000)),\"node\":\"other\"}" >/dev/null
done
xb_bg g "$XB_BIN/xborderd" -f -c "$XB_TMP/x.conf"; log=$XB_LAST_LOG
if ! { xb_wait 8000 test -S "$XB_TMP/ctl.sock" && xb_wait 5000 grep -q "gateway up" "$log"; }; then
	xb_fail "xborderd starts" "$(tail -n 20 "$log")"; xb_end
fi
xb_check "standby at start: the vip is not here" grep -q "vip 203.0.113.10: not held here (standby); takeover at 10 handshakes/s" "$log"
ep() { nq g wg show "xt$ID" endpoints | grep -c "203.0.113.1[0-9][0-9]:51820"; }
xb_wait 3000 sh -c "ip netns exec $XB_RUN-g '$XB_BIN/xborderctl' -s '$XB_TMP/ctl.sock' -j status | jq -e '.cluster.state == \"up\"'" >/dev/null
sleep 1
xb_check "nothing initiated without the vip" test "$(ep)" = 0

n g ip addr add 203.0.113.10/32 dev eth0
xb_check "the vip appearing starts the takeover, logged with the count" \
	xb_wait 3000 grep -q "takeover (the vip appeared): $N device(s) to initiate at 10/s ($N known, 0 with a live session here, 0 not peers" "$log"
xb_check "... and ends with all $N initiated" xb_wait 6000 grep -q "takeover: done: $N handshake(s) initiated, 0 failed" "$log"
took=$(sed -n 's/.*takeover: done: .* in \([0-9]*\) ms/\1/p' "$log" | tail -n 1)
xb_within "paced at 10/s: $N initiations" "${took:-0}" 1800 3500 ms
xb_check "every device's endpoint set on the interface" test "$(ep)" = "$N"
xb_check "keepalive back to what it was (off) on every peer" \
	test "$(nq g wg show "xt$ID" persistent-keepalive | awk '$2 != "off"' | wc -l)" = 0
# Removing the vip in the middle of a run stops it.
n g ip addr del 203.0.113.10/32 dev eth0
xb_check "the vip going away is logged" xb_wait 3000 grep -q "went away" "$log"
n g ip addr add 203.0.113.10/32 dev eth0
sleep 0.6
n g ip addr del 203.0.113.10/32 dev eth0
xb_check "removed mid-run: the takeover stops with part of it done" \
	xb_wait 3000 grep -q "takeover: the vip 203.0.113.10 went away: stopping with [0-9]* of $N initiated" "$log"
# By hand, without the vip (an operator's switch; the order, newest first,
# is test_takeover's).
xb_check "xborderctl takeover works without the vip: all $N queued" \
	sh -c "ip netns exec $XB_RUN-g '$XB_BIN/xborderctl' -s '$XB_TMP/ctl.sock' -j takeover | jq -e '.offered == $N and .queued == $N and (.holds_vip | not) and .rate == 10'"

# A gateway that starts already holding the vip (a restart on the active
# one) takes over once its copy of the shared state is read, not before
# (it would find no devices).
pid=$XB_LAST_PID
kill -TERM "$pid" 2>/dev/null
xb_wait 5000 sh -c "! kill -0 $pid 2>/dev/null" || xb_fail "xborderd stops"
n g ip addr add 203.0.113.10/32 dev eth0
xb_bg g "$XB_BIN/xborderd" -f -c "$XB_TMP/x.conf"; log2=$XB_LAST_LOG
xb_check "restarted with the vip held: it says so" xb_wait 8000 grep -q "vip 203.0.113.10: held here (active)" "$log2"
xb_check "... and takes over all $N devices once the shared state is read" \
	xb_wait 5000 grep -q "takeover (.*): $N device(s) to initiate" "$log2"
xb_check "... never with none" sh -c "! grep -q 'takeover (.*): 0 device(s) to initiate' '$log2'"
xb_end
