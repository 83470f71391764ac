#!/usr/bin/env bash
# Userspace GRE (xb-gre) ours ↔ ours: ping and a TCP transfer with SHA-256
# through the tunnel, IPv4 and IPv6 outer, with and without key, with
# sequence numbers and checksums; a key mismatch passes nothing; keepalives
# go down when the remote stops and up when it returns.
#
#   a ───────────────────────── b
#   eth0 192.0.2.1/24            eth0 192.0.2.2/24
#        2001:db8:1::1/64             2001:db8:1::2/64
#   gA   198.51.100.1/30 ══GRE══ gB   198.51.100.2/30
#        2001:db8:100::1/64           2001:db8:100::2/64
#
# The keepalive remote is xb-gre too (this kernel has no ip_gre): it
# decapsulates a's keepalive, an IPv4 packet from b's own address to a, and
# routes it back out of eth0. For that b forwards and accepts packets with
# its own source address on gB (accept_local=1, rp_filter=0).
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr b eth0 192.0.2.2/24 2001:db8:1::2/64
for ns in a b; do
	xb_router "$ns"
	nq "$ns" sysctl -qw net.ipv4.conf.default.accept_local=1 net.ipv4.conf.default.rp_filter=0
done
GA=xga$$ GB=xgb$$
declare -A PID LOG

# up NS IFNAME LOCAL REMOTE INNER4 INNER6 [xb-gre options]
up() {
	local ns=$1 ifn=$2 loc=$3 rem=$4 a4=$5 a6=$6; shift 6
	xb_bg "$ns" "$XB_BIN/xb-gre" --local "$loc" --remote "$rem" "$@" "$ifn"
	PID[$ns]=$XB_LAST_PID LOG[$ns]=$XB_LAST_LOG
	xb_wait 3000 nq "$ns" ip link show "$ifn" || { cat "$XB_LAST_LOG"; return 1; }
	xb_addr "$ns" "$ifn" "$a4" "$a6"
}
down() {	# down NS: SIGTERM, and the interface goes
	local pid=${PID[$1]} i
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
	unset "PID[$1]"
	! kill -0 "$pid" 2>/dev/null
}
pair() {	# pair OUTER_A OUTER_B [xb-gre options for both]
	local oa=$1 ob=$2; shift 2
	up a "$GA" "$oa" "$ob" 198.51.100.1/30 2001:db8:100::1/64 "$@" &&
	up b "$GB" "$ob" "$oa" 198.51.100.2/30 2001:db8:100::2/64 "$@"
}
unpair() { down a; down b; }
# Outer packets a's kernel cut into IP fragments so far (IPv4 and IPv6).
frags() {
	nq a awk '$1 == "Ip:" && !h { for (i = 1; i <= NF; i++) if ($i == "FragCreates") c = i; h = 1; next }
		$1 == "Ip:" { n += $c } $1 == "Ip6FragCreates" { n += $2 } END { print n + 0 }' /proc/net/snmp /proc/net/snmp6
}
gone() { ! nq "$1" ip link show "$2" >/dev/null 2>&1; }

for outer in "192.0.2.1 192.0.2.2" "2001:db8:1::1 2001:db8:1::2"; do
	set -- $outer
	for opts in "" "--key 7" "--key 10.0.0.1 --seq" "--key 7 --seq --csum"; do
		name="outer $2${opts:+ $opts}"
		if ! pair "$1" "$2" $opts; then xb_fail "$name: bring-up"; unpair; continue; fi
		xb_check "$name: ping (IPv4 inside)" nq a ping -c 3 -i 0.2 -W 2 198.51.100.2
		xb_check "$name: ping (IPv6 inside)" nq a ping -c 3 -i 0.2 -W 2 2001:db8:100::2
		f0=$(frags)
		xb_check "$name: TCP transfer, SHA-256 equal" xb_tcp_compare a b 198.51.100.2 4000000
		# The default MTU leaves room for the options: full-sized segments
		# fill a 1500-byte outer packet, not two fragments (1476 with a key did).
		xb_check "$name: no outer fragments (default $(nq a ip -o link show "$GA" | grep -o "mtu [0-9]*"))" \
			test "$(frags)" = "$f0"
		xb_check "$name: SIGTERM stops it, interface removed" sh -c \
			"kill ${PID[a]} && sleep 0.3 && ! ip -n $XB_RUN-a link show $GA 2>/dev/null"
		unpair
	done
done

# The MTU defaults follow the outer family and the options (4 bytes each).
pair 192.0.2.1 192.0.2.2 && xb_check "MTU 1476 over IPv4" sh -c "ip -n $XB_RUN-a link show $GA | grep -q 'mtu 1476'"
unpair
pair 192.0.2.1 192.0.2.2 --key 7 --seq --csum && xb_check "MTU 1464 over IPv4 with key, sequence, checksum" \
	sh -c "ip -n $XB_RUN-a link show $GA | grep -q 'mtu 1464'"
unpair
pair 2001:db8:1::1 2001:db8:1::2 --key 7 && xb_check "MTU 1452 over IPv6 with a key" sh -c "ip -n $XB_RUN-a link show $GA | grep -q 'mtu 1452'"
unpair
pair 2001:db8:1::1 2001:db8:1::2 && xb_check "MTU 1456 over IPv6" sh -c "ip -n $XB_RUN-a link show $GA | grep -q 'mtu 1456'"
unpair

# Key mismatch: nothing passes, and b counts the drops by reason.
up a "$GA" 192.0.2.1 192.0.2.2 198.51.100.1/30 2001:db8:100::1/64 --key 1
up b "$GB" 192.0.2.2 192.0.2.1 198.51.100.2/30 2001:db8:100::2/64 --key 2
xb_check "key mismatch: ping fails" sh -c "! ip netns exec $XB_RUN-a ping -c 2 -i 0.2 -W 1 198.51.100.2"
kill -USR1 "${PID[b]}"
xb_check "key mismatch: drops counted as key" xb_wait 2000 grep -q 'key=[1-9]' "${LOG[b]}"
unpair
up a "$GA" 192.0.2.1 192.0.2.2 198.51.100.1/30 2001:db8:100::1/64 --key 1
up b "$GB" 192.0.2.2 192.0.2.1 198.51.100.2/30 2001:db8:100::2/64
xb_check "key on one side only: ping fails" sh -c "! ip netns exec $XB_RUN-a ping -c 2 -i 0.2 -W 1 198.51.100.2"
unpair

# Keepalives: a sends every 0.2 s, down after 3 missed; b only decapsulates.
for outer in "192.0.2.1 192.0.2.2" "2001:db8:1::1 2001:db8:1::2"; do
	set -- $outer
	up a "$GA" "$1" "$2" 198.51.100.1/30 2001:db8:100::1/64 --key 7 --seq --keepalive 0.2,3
	up b "$GB" "$2" "$1" 198.51.100.2/30 2001:db8:100::2/64 --key 7 --seq
	nq b sysctl -qw "net.ipv4.conf.$GB.accept_local=1" "net.ipv4.conf.$GB.rp_filter=0"
	sleep 1
	kill -USR1 "${PID[a]}"
	xb_check "keepalive over $2: replies while b runs" xb_wait 2000 grep -Eq 'keepalive up \(sent [0-9]+, replies [1-9]' "${LOG[a]}"
	down b
	xb_check "keepalive over $2: down when b stops" xb_wait 3000 grep -q 'tunnel down' "${LOG[a]}"
	up b "$GB" "$2" "$1" 198.51.100.2/30 2001:db8:100::2/64 --key 7 --seq
	nq b sysctl -qw "net.ipv4.conf.$GB.accept_local=1" "net.ipv4.conf.$GB.rp_filter=0"
	xb_check "keepalive over $2: up when b returns" xb_wait 3000 grep -q 'reply from .*tunnel up' "${LOG[a]}"
	xb_check "keepalive over $2: data passes again" nq a ping -c 2 -i 0.2 -W 2 198.51.100.2
	unpair
done

xb_check "no interface left behind" sh -c "gone() { ! ip -n \$1 link show \$2 >/dev/null 2>&1; }; gone $XB_RUN-a $GA && gone $XB_RUN-b $GB"
xb_end
