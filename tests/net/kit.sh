#!/usr/bin/env bash
# The netns kit itself: cleanup after success, failure and SIGTERM; leftovers
# of a crashed run are swept; xb_wait honours its deadline.
#
#   child test:  x1 ── x2        (veth, 192.0.2.1/24 ── 192.0.2.2/24)
. "$(dirname "$0")/../lib/netns.sh"
xb_begin

child=$XB_TMP/child.sh
cat >"$child" <<'CHILD'
. "$XB_ROOT/tests/lib/netns.sh"
xb_begin
xb_ns x1 x2
xb_veth x1 eth0 x2 eth0
xb_addr x1 eth0 192.0.2.1/24
xb_addr x2 eth0 192.0.2.2/24
xb_bg x1 sleep 60
echo "$XB_RUN" >"$1"
case $2 in
ok) xb_check "child ping" nq x1 ping -c 1 -W 1 192.0.2.2; xb_end ;;
fail) exit 3 ;;
hang) sleep 60 & wait $! ;;
esac
CHILD

ours() { ip netns list | awk '{print $1}' | grep -c "^$1-"; }

for how in ok fail; do
	XB_ROOT=$XB_ROOT bash "$child" "$XB_TMP/run.$how" $how >/dev/null 2>&1
	run=$(cat "$XB_TMP/run.$how")
	xb_check "nothing left after a child that ends $how" test "$(ours "$run")" = 0
done

XB_ROOT=$XB_ROOT bash "$child" "$XB_TMP/run.hang" hang >/dev/null 2>&1 &
cpid=$!
xb_wait 5000 test -s "$XB_TMP/run.hang"
run=$(cat "$XB_TMP/run.hang")
xb_check "child's namespaces exist while it runs" test "$(ours "$run")" = 2
kill -TERM "$cpid"; wait "$cpid"
xb_check "nothing left after a child killed by SIGTERM" test "$(ours "$run")" = 0

# A crashed run: namespaces whose shell is gone, one with a process inside.
sh -c 'exit 0' & dead=$!; wait $dead
ip netns add "xb$dead-left1" && ip netns add "xb$dead-left2"
ip netns exec "xb$dead-left1" sleep 60 &
spid=$!
xb_sweep
xb_check "leftovers of a crashed run are removed" test "$(ours "xb$dead")" = 0
xb_check "and their processes are gone" sh -c "! kill -0 $spid 2>/dev/null"
wait $spid 2>/dev/null

t0=$(date +%s%3N)
xb_wait 300 false; rc=$?
t1=$(date +%s%3N)
xb_check "xb_wait fails when the condition never holds" test "$rc" = 1
xb_within "xb_wait returns at its deadline" "$((t1 - t0))" 300 600 ms
xb_end
