#!/usr/bin/env bash
# One forged WireGuard data message must not end a session (issue 14).
# A third party m reads b's live receiver index off the wire (it is in clear
# in every data message a sends to b) and sends b a 32-byte type-4 message
# with that index and counter 2^64 - 1, then 2^64 - 2^13 - 1
# (REJECT_AFTER_MESSAGES). The session must carry traffic as before: 10 of 10
# pings, no new handshake, b's endpoint for a where it was. wireguard-go runs
# the same steps as b first, as the reference the test itself is checked on.
#
#   a ───────────────────── b ───────────────────── m (third party)
#   eth0 192.0.2.1/24        eth0 192.0.2.2/24
#                            eth1 203.0.113.2/24     eth0 203.0.113.3/24
#   wA   198.51.100.1/24 ══WG══ wB 198.51.100.2/24
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b m
xb_veth a eth0 b eth0
xb_veth b eth1 m eth0
xb_addr a eth0 192.0.2.1/24
xb_addr b eth0 192.0.2.2/24
xb_addr b eth1 203.0.113.2/24
xb_addr m eth0 203.0.113.3/24

ka=$(wg genkey); kb=$(wg genkey); pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
ifa=xw$$a ifb=xw$$b

replies() { nq "$1" ping -c 10 -i 0.2 -W 1 "$2" | sed -n 's/.* \([0-9]*\) received.*/\1/p'; }
handshake() { nq "$1" wg show "$2" latest-handshakes | cut -f2; }

for impl in wireguard-go ours; do
	xb_log "--- b runs $impl"
	xb_wg_up a "$ifa" ours "$ka" 51820 198.51.100.1/24 || exit 1
	xb_wg_up b "$ifb" "$impl" "$kb" 51821 198.51.100.2/24 || exit 1
	n a wg set "$ifa" peer "$pb" allowed-ips 198.51.100.2/32 endpoint 192.0.2.2:51821
	n b wg set "$ifb" peer "$pa" allowed-ips 198.51.100.1/32
	xb_check "$impl: session up" xb_wait 5000 nq a ping -c 1 -W 1 198.51.100.2

	# What an observer on the path sees: data messages from a to b.
	nq b timeout 3 tcpdump -nn -i eth0 -c 3 -w "$XB_TMP/$impl.pcap" "udp and dst port 51821 and udp[4:2] >= 40" \
		2>/dev/null &
	tpid=$!
	sleep 0.5
	nq a ping -c 3 -i 0.1 -W 1 198.51.100.2 >/dev/null
	wait $tpid
	# Handshake times are in seconds: let one pass so that a new one would show.
	sleep 1.1
	hs_a=$(handshake a "$ifa"); hs_b=$(handshake b "$ifb")
	ep_b=$(nq b wg show "$ifb" endpoints | cut -f2)

	xb_check "$impl: m forges counter 2^64-1 on b's live index" \
		nq m "$XB_BIN/xb-pkt" forge "$XB_TMP/$impl.pcap" 203.0.113.2 51821
	xb_check "$impl: m forges counter REJECT_AFTER_MESSAGES" \
		nq m "$XB_BIN/xb-pkt" forge -c 18446744073709543423 "$XB_TMP/$impl.pcap" 203.0.113.2 51821
	xb_within "$impl: a → b after the forged messages (pings answered)" "$(replies a 198.51.100.2)" 10 10
	xb_within "$impl: b → a after the forged messages (pings answered)" "$(replies b 198.51.100.1)" 10 10
	xb_check "$impl: no new handshake on a" test "$(handshake a "$ifa")" = "$hs_a"
	xb_check "$impl: no new handshake on b" test "$(handshake b "$ifb")" = "$hs_b"
	xb_check "$impl: b's endpoint for a did not move" test "$(nq b wg show "$ifb" endpoints | cut -f2)" = "$ep_b"
	if [ "$impl" = ours ]; then
		kill -USR1 "${XB_WG_PID[b/$ifb]}"
		xb_wait 2000 grep -q 'stats rx_bad_length' "$XB_WG_LOG_b"
		stats=$(grep 'stats rx_bad_length' "$XB_WG_LOG_b" | tail -n 1)
		xb_log "$stats"
		xb_check "$impl: the forged messages counted as failed decryptions" \
			test "$(echo "$stats" | sed -n 's/.* rx_decrypt_failed=\([0-9]*\).*/\1/p')" -ge 2
	fi
	xb_wg_down a "$ifa"
	xb_wg_down b "$ifb"
done
xb_end
