#!/usr/bin/env bash
# xborder-wg behaviour: what `wg show` reports, byte counters, peer removal,
# roaming, a changed private key, persistent keepalives on the wire, rekey
# and key expiry with shortened timers, bad and replayed datagrams.
#
#   a ───────────────────────── b
#   eth0 192.0.2.1/24            eth0 192.0.2.2/24   (a roams to 192.0.2.11)
#   wA   198.51.100.1/24  ══WG══ wB   198.51.100.2/24
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24
xb_addr b eth0 192.0.2.2/24

ka=$(wg genkey); kb=$(wg genkey); pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
psk=$(wg genpsk)
ifa=xw$$a ifb=xw$$b
# Shortened protocol times (xborder-wg --timers), so rekey and expiry are seen in seconds.
export XB_WG_ARGS="${XB_WG_ARGS:-} --timers keepalive_timeout=1,rekey_timeout=1,rekey_after_time=3,reject_after_time=5,rekey_attempt_time=3"
xb_wg_up a "$ifa" ours "$ka" 51820 198.51.100.1/24 || exit 1
xb_wg_up b "$ifb" ours "$kb" 51821 198.51.100.2/24 || exit 1
printf '%s\n' "$psk" >"$XB_TMP/psk"
n a wg set "$ifa" peer "$pb" preshared-key "$XB_TMP/psk" allowed-ips 198.51.100.2/32,2001:db8:100::/64 endpoint 192.0.2.2:51821
n b wg set "$ifb" peer "$pa" preshared-key "$XB_TMP/psk" allowed-ips 198.51.100.1/32

# --- wg show reports exactly what was set
expect="[Interface]
ListenPort = 51820
PrivateKey = $ka

[Peer]
PublicKey = $pb
PresharedKey = $psk
AllowedIPs = 198.51.100.2/32, 2001:db8:100::/64
Endpoint = 192.0.2.2:51821"
got=$(nq a wg showconf "$ifa")
xb_check "wg showconf shows what was set" test "$got" = "$expect"
[ "$got" = "$expect" ] || diff <(echo "$expect") <(echo "$got")
xb_check "wg show lists the interface" sh -c "ip netns exec $XB_RUN-a wg show interfaces | grep -qw $ifa"
xb_check "no handshake yet: latest-handshakes is 0" test "$(nq a wg show "$ifa" latest-handshakes | cut -f2)" = 0

# --- traffic, handshake time, byte counters
xb_check "ping through the tunnel (with preshared key)" nq a ping -c 5 -i 0.1 -W 2 198.51.100.2
hs=$(nq a wg show "$ifa" latest-handshakes | cut -f2); now=$(date +%s)
xb_within "handshake time is absolute Unix time, now" "$((now - hs))" 0 5 s
sleep 0.5
read -r _ a_rx a_tx < <(nq a wg show "$ifa" transfer)
read -r _ b_rx b_tx < <(nq b wg show "$ifb" transfer)
xb_log "a: rx=$a_rx tx=$a_tx  b: rx=$b_rx tx=$b_tx"
xb_check "bytes a sent = bytes b received" test "$a_tx" = "$b_rx"
xb_check "bytes b sent = bytes a received" test "$b_tx" = "$a_rx"
# 5 echo requests of 84 bytes, padded to 96, +32 of header and tag, plus the handshake (148)
xb_check "a's tx counts handshake and 5 padded pings at least" test "$a_tx" -ge $((148 + 5 * 128))

# --- persistent keepalive: 32-byte messages every second on the wire
n a wg set "$ifa" peer "$pb" persistent-keepalive 1
nq b timeout 3.5 tcpdump -nn -i eth0 -c 10 "udp and src 192.0.2.1 and dst port 51821 and udp[4:2] = 40" \
	>"$XB_TMP/ka.txt" 2>/dev/null
kas=$(grep -c 'UDP, length 32' "$XB_TMP/ka.txt")
xb_within "persistent keepalives seen on the wire in 3.5 s" "$kas" 3 5
n a wg set "$ifa" peer "$pb" persistent-keepalive 0

# --- rekey: with rekey_after_time=3 s the initiator makes a new handshake while traffic flows
hs1=$(nq a wg show "$ifa" latest-handshakes | cut -f2)
loss=$(nq a ping -c 50 -i 0.1 -W 1 198.51.100.2 | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
hs2=$(nq a wg show "$ifa" latest-handshakes | cut -f2)
xb_check "a new handshake happened during 5 s of traffic (rekey)" test "$hs2" -gt "$hs1"
xb_within "no loss across rekeys" "$loss" 0 2 %

# --- roaming: a moves to another outer address; b follows
n a wg set "$ifa" peer "$pb" endpoint 192.0.2.2:51821
nq a sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
nq a ip addr add 192.0.2.11/24 dev eth0
nq a ip addr del 192.0.2.1/24 dev eth0
xb_check "ping after a roamed to 192.0.2.11" nq a ping -c 3 -i 0.2 -W 2 198.51.100.2
xb_check "b's endpoint for a is the new address" sh -c "ip netns exec $XB_RUN-b wg show $ifb endpoints | grep -q '192.0.2.11:51820'"
xb_check "b can reach a at its new address" nq b ping -c 2 -i 0.2 -W 2 198.51.100.1

# --- bad input: garbage and replayed datagrams are dropped and counted; nothing crashes
nq b timeout 2 tcpdump -nn -i eth0 -w "$XB_TMP/cap.pcap" "udp and dst port 51821" 2>/dev/null &
tpid=$!
sleep 0.5
nq a ping -c 5 -i 0.1 -W 1 198.51.100.2 >/dev/null
wait $tpid
xb_check "garbage datagrams sent" nq a "$XB_BIN/xb-pkt" garbage -c 3000 -S 7 192.0.2.2 51821
xb_check "captured packets replayed" nq a "$XB_BIN/xb-pkt" replay "$XB_TMP/cap.pcap" 192.0.2.2 51821
xb_check "b still forwards after bad input" nq a ping -c 2 -i 0.2 -W 2 198.51.100.2
kill -USR1 "${XB_WG_PID[b/$ifb]}"
xb_wait 2000 grep -q 'stats rx_bad_length' "$XB_WG_LOG_b"
stats=$(grep 'stats rx_bad_length' "$XB_WG_LOG_b" | tail -n 1)
xb_log "$stats"
count() { echo "$stats" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
xb_check "replayed data messages counted" test "$(count rx_replayed)" -ge 5
xb_check "bad MACs counted" test "$(count rx_bad_mac)" -gt 10
xb_check "bad lengths and types counted" test $(( $(count rx_bad_length) + $(count rx_bad_type) )) -gt 100
xb_check "unknown receiver indices counted" test "$(count rx_no_keypair)" -gt 20
xb_check "replays did not move b's endpoint" sh -c "ip netns exec $XB_RUN-b wg show $ifb endpoints | grep -q '192.0.2.11:51820'"

# --- a changed private key handshakes again at once
sleep 1.2	# the garbage put b "under load" (cookies required) for a second
ka2=$(wg genkey); pa2=$(echo "$ka2" | wg pubkey)
printf '%s\n' "$ka2" >"$XB_TMP/ka2"
n b wg set "$ifb" peer "$pa" remove peer "$pa2" preshared-key "$XB_TMP/psk" allowed-ips 198.51.100.1/32
n a wg set "$ifa" private-key "$XB_TMP/ka2"
t0=$(date +%s%3N)
xb_check "ping with a's new key" nq a ping -c 1 -W 2 198.51.100.2
xb_within "new key's first ping answered quickly" "$(( $(date +%s%3N) - t0 ))" 0 1000 ms
xb_check "a's public key changed" test "$(nq a wg show "$ifa" public-key)" = "$pa2"

# --- key expiry: with b silent (nothing in or out), after reject_after_time a sends no data, only initiations
nq b nft add table inet t
nq b nft add chain inet t in '{ type filter hook input priority 0; policy accept; }'
nq b nft add chain inet t out '{ type filter hook output priority 0; policy accept; }'
nq b nft add rule inet t in udp dport 51821 drop
nq b nft add rule inet t out udp sport 51821 drop
sleep 5.5
nq a timeout 2.5 tcpdump -nn -i eth0 "udp and dst port 51821" >"$XB_TMP/exp.txt" 2>/dev/null &
tpid=$!
sleep 0.3
nq a ping -c 10 -i 0.2 -W 1 198.51.100.2 >/dev/null
wait $tpid
xb_log "$(sort "$XB_TMP/exp.txt" | sed -n 's/.*length \([0-9]*\).*/\1/p' | sort | uniq -c | tr '\n' ' ')"
xb_check "expired keys: no data messages leave" sh -c "! grep -v 'length 148' '$XB_TMP/exp.txt' | grep -q length"
xb_check "expired keys: handshake initiations leave instead" grep -q 'length 148' "$XB_TMP/exp.txt"
nq b nft delete table inet t
xb_check "traffic resumes after b answers again" xb_wait 5000 nq a ping -c 1 -W 1 198.51.100.2

# --- wg set remove stops traffic
n b wg set "$ifb" peer "$pa2" remove
xb_check "b has no peer after remove" test -z "$(nq b wg show "$ifb" peers)"
xb_check "no traffic after the peer was removed" sh -c "! ip netns exec $XB_RUN-a ping -c 2 -i 0.2 -W 1 198.51.100.2"

# --- wg setconf / syncconf, and a wg-quick file loaded at start (-c)
kc=$(wg genkey); pc=$(echo "$kc" | wg pubkey)
cat >"$XB_TMP/sync.conf" <<CONF
[Interface]
PrivateKey = $kb
ListenPort = 51821

[Peer]
PublicKey = $pc
AllowedIPs = 203.0.113.0/24
Endpoint = 192.0.2.9:51000
CONF
n b wg setconf "$ifb" "$XB_TMP/sync.conf"
xb_check "wg setconf applied" test "$(nq b wg show "$ifb" allowed-ips)" = "$pc	203.0.113.0/24"
sed -i 's|203.0.113.0/24|203.0.113.0/25, 2001:db8:200::/48|' "$XB_TMP/sync.conf"
n b wg syncconf "$ifb" "$XB_TMP/sync.conf"
xb_check "wg syncconf applied the difference" test "$(nq b wg show "$ifb" allowed-ips)" = "$pc	203.0.113.0/25 2001:db8:200::/48"
cat >"$XB_TMP/quick.conf" <<CONF
# as a partner hands it out
[Interface]
PrivateKey = $kc
ListenPort = 51830
Address = 198.51.100.30/24
DNS = 192.0.2.53

[Peer]
PublicKey = $pb
PresharedKey = $psk
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = 192.0.2.2:51821
PersistentKeepalive = 25
CONF
xb_bg a "$XB_BIN/xborder-wg" -f -c "$XB_TMP/quick.conf" xw$$q
xb_wait 3000 test -S "/var/run/wireguard/xw$$q.sock"
xb_check "wg-quick file loaded with -c" sh -c "ip netns exec $XB_RUN-a wg showconf xw$$q | grep -q 'AllowedIPs = 0.0.0.0/0, ::/0'"
xb_check "its keepalive and port too" sh -c "ip netns exec $XB_RUN-a wg show xw$$q dump | grep -q '	25\$' && ip netns exec $XB_RUN-a wg show xw$$q listen-port | grep -qx 51830"
printf '[Peer]\nPublicKey = nope\n' >"$XB_TMP/bad.conf"
out=$(nq a "$XB_BIN/xborder-wg" -f -c "$XB_TMP/bad.conf" "xw$$z" 2>&1); rc=$?
xb_log "$out"
xb_check "a bad wg-quick file is refused" test "$rc" != 0
xb_check "with FILE:LINE: message" grep -q 'bad.conf:2: ' <<<"$out"

# --- the process ends when its UAPI socket is removed, and when its TUN goes
pid=${XB_WG_PID[b/$ifb]}
rm -f "/var/run/wireguard/$ifb.sock"
xb_check "xborder-wg exits when its socket file is removed" xb_wait 3000 sh -c "! kill -0 $pid"
xb_check "and its interface is gone" sh -c "! ip -n $XB_RUN-b link show $ifb 2>/dev/null"
pid=${XB_WG_PID[a/$ifa]}
nq a ip link del "$ifa"
xb_check "xborder-wg exits when its TUN is deleted" xb_wait 3000 sh -c "! kill -0 $pid"
xb_check "and removes its socket" test ! -e "/var/run/wireguard/$ifa.sock"
xb_end
