#!/usr/bin/env bash
# Packets fit the tunnel without path MTU discovery: the partner's GRE runs
# at MTU 1380 under devices at 1420, and the partner drops every ICMP
# "fragmentation needed" it would send toward the origin (as partners and
# the mainland's middle boxes often do). A 2 MB download from the origin
# completes because the gateway clamps the SYN's MSS to what fits the
# tunnel (docs/nftables.md); without the clamp the origin's 1420-byte
# segments die at the partner and the transfer stalls.
#
# Topology: tests/lib/failover.sh, with A blackholed so the path is B.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
xb_begin
fo_world || exit 1
FO_PROBE_B='peer4 = "192.0.2.30"; probe_interval = 200; mtu = 1380;'
fo_policy
fo_partners || { xb_fail "partners start"; xb_end; }
n pb ip link set "$B" mtu 1380
# The partner drops ICMP "fragmentation needed" toward the origin.
nq pb nft -f - <<'NFT'
table inet xbmss {
	chain pass {
		type filter hook forward priority filter; policy accept;
		icmp type destination-unreachable icmp code frag-needed counter drop
	}
	chain out {
		type filter hook output priority filter; policy accept;
		icmp type destination-unreachable icmp code frag-needed counter drop
	}
}
NFT
head -c 2000000 /dev/urandom >"$XB_TMP/www/big"
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
fo_device || { xb_fail "device bring-up"; xb_end; }
fo_tables
xb_check "both tunnels come up" xb_wait 10000 both_up
xb_impair ra set both loss=100 >/dev/null	# A dark: the rule's path takes B
xb_check "the path uses B (GRE, MTU 1380)" xb_wait 5000 on "$B"
xb_check "the ruleset clamps the MSS into B" \
	sh -c "ip netns exec $XB_RUN-gw nft list chain inet xborder forward | grep -q 'oifname \"xb-$B\" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1340 tcp option maxseg size set 1340'"
xb_check "a 2 MB download from the origin completes through B" \
	nq dev curl -s --max-time 20 -o "$XB_TMP/got" http://203.0.113.10/big
xb_check "... and arrives whole" cmp -s "$XB_TMP/got" "$XB_TMP/www/big"
b=$(via_b)
xb_check "... through B ($b packets from the device at the origin's B side)" test "${b:-0}" -gt 20
xb_log "frag-needed dropped at the partner: $(nq pb nft list table inet xbmss | grep -o 'packets [0-9]*' | tr '\n' ' ')"
xb_end
