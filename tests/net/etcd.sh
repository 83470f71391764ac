#!/usr/bin/env bash
# The etcd client (gateway/cluster/etcd.c) against a real 3-member etcd
# cluster (tests/lib/etcd.sh): kv, compare-and-swap, leases, watches,
# a compacted watch's resync, failover when the watch's member is killed,
# quorum loss and return; the pool-allocation prune's compare-and-delete
# with a write between its read and its deletes (case prune). The cases live in xb-etcdtest
# (tests/tools/etcdtest_main.c); it runs in namespace "gw", attached to
# the members' hub.
#
#   e1 .51   e2 .52   e3 .53   (198.51.100.0/24, etcd members)
#        \     |     /
#         eh: br0 .50 ── gw: etcd0 .61 (xb-etcdtest)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/etcd.sh"
command -v etcd >/dev/null || { echo "etcd is not installed (deploy/deps.sh installs etcd-server)"; exit 77; }
command -v etcdctl >/dev/null || { echo "etcdctl is not installed (deploy/deps.sh installs etcd-client)"; exit 77; }
xb_begin
xb_check "3-member cluster up" etcd_start_cluster || xb_end
xb_ns gw
etcd_attach gw >/dev/null
n gw "$XB_BIN/xb-etcdtest" -e "$(etcd_endpoints)" -c "$ETCD_CTL" ${ETCD_CASES:-kv cas lease watch resync failover quorum prune}
rc=$?
[ $rc = 0 ] || [ $rc = 1 ] || xb_fail "xb-etcdtest" "exited with status $rc"
xb_end
