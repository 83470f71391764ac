#!/usr/bin/env bash
# Our userspace GRE (xb-gre) against Linux's own ip_gre / ip6_gre, on
# Debian's kernel in the VM (tests/vm/vm.sh): ping both ways, IPv4 and IPv6
# outer, plain, keyed, with sequence numbers, with checksums (the kernel's
# checksum computed by the kernel, not left to veth's offload); our keepalives
# answered by the kernel's GRE (it only decapsulates and routes them back).
#
#   a (ours: xb-gre) ──────────────── b (kernel: ip link add type gre/ip6gre)
#   eth0 192.0.2.1/24                  eth0 192.0.2.2/24
#        2001:db8:1::1/64                   2001:db8:1::2/64
#   gA   198.51.100.1/30 ════GRE═════  gB   198.51.100.2/30
#        2001:db8:100::1/64                 2001:db8:100::2/64
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
xb_ns a b
xb_need_link b GRE type gre local 192.0.2.2 remote 192.0.2.1
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24 2001:db8:1::1/64
xb_addr b eth0 192.0.2.2/24 2001:db8:1::2/64
for ns in a b; do
	xb_router "$ns"
	nq "$ns" sysctl -qw net.ipv4.conf.default.accept_local=1 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.all.rp_filter=0
done
# The kernel's GRE leaves a checksum to the device (CHECKSUM_PARTIAL, field 0)
# when the device offers checksum offload; a veth never fills it in, and the
# receiving kernel takes it as already verified. A real NIC fills it in; so
# does the kernel itself when the device does not offload, as here.
n b ethtool -K eth0 tx off >/dev/null
GA=xga$$ GB=xgb$$
PID=

# ours OUTER_A OUTER_B [xb-gre options] — xb-gre in a
ours() {
	local loc=$1 rem=$2; shift 2
	xb_bg a "$XB_BIN/xb-gre" --local "$loc" --remote "$rem" "$@" "$GA"
	PID=$XB_LAST_PID LOG=$XB_LAST_LOG
	xb_wait 10000 nq a ip link show "$GA" || { cat "$LOG"; return 1; }
	xb_addr a "$GA" 198.51.100.1/30 2001:db8:100::1/64
}
# theirs OUTER_B OUTER_A [ip link gre options] — the kernel's GRE in b
theirs() {
	local loc=$1 rem=$2 kind=gre; shift 2
	case $loc in *:*) kind=ip6gre ;; esac
	n b ip link add "$GB" type "$kind" local "$loc" remote "$rem" "$@" || return 1
	xb_addr b "$GB" 198.51.100.2/30 2001:db8:100::2/64
	nq b ip link set "$GB" up
	nq b sysctl -qw "net.ipv4.conf.$GB.accept_local=1" "net.ipv4.conf.$GB.rp_filter=0"
}
unpair() {
	[ -n "$PID" ] && { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }
	nq b ip link del "$GB" 2>/dev/null
	xb_wait 3000 sh -c "! ip -n $XB_RUN-a link show $GA 2>/dev/null"
}

# Each line: our options | the kernel's options, for the same wire format.
cases=(
	"|"
	"--key 7|key 7"
	"--key 10.0.0.1 --seq|key 10.0.0.1 seq"
	"--csum|csum"
	"--key 7 --seq --csum|key 7 seq csum"
)
for outer in "192.0.2.1 192.0.2.2" "2001:db8:1::1 2001:db8:1::2"; do
	set -- $outer
	for c in "${cases[@]}"; do
		o=${c%%|*} k=${c#*|}
		name="outer $2${o:+ $o}"
		if ! { ours "$1" "$2" $o && theirs "$2" "$1" $k; }; then
			xb_fail "$name: bring-up"; unpair; continue
		fi
		xb_check "$name: ours → kernel, ping (IPv4 inside)" nq a ping -c 3 -i 0.2 -W 3 198.51.100.2
		xb_check "$name: kernel → ours, ping (IPv6 inside)" nq b ping -c 3 -i 0.2 -W 3 2001:db8:100::1
		unpair
	done
done

# Our keepalives, answered by the kernel: it decapsulates a's keepalive (an
# IPv4 or IPv6 packet from b's outer address to a's) and routes it back.
for outer in "192.0.2.1 192.0.2.2" "2001:db8:1::1 2001:db8:1::2"; do
	set -- $outer
	ours "$1" "$2" --key 7 --keepalive 0.3,3 && theirs "$2" "$1" key 7
	sleep 2
	kill -USR1 "$PID"
	xb_check "keepalive over $2: the kernel answers" \
		xb_wait 5000 grep -Eq 'keepalive up \(sent [0-9]+, replies [1-9]' "$LOG"
	# Counted from here: a start-up down/up before the kernel's side existed
	# must not pass for these.
	downs=$(grep -c 'tunnel down' "$LOG")
	nq b ip link set "$GB" down
	xb_check "keepalive over $2: down when the kernel's tunnel goes down" \
		xb_wait 6000 sh -c "[ \$(grep -c 'tunnel down' '$LOG') -gt $downs ]"
	ups=$(grep -c 'reply from .*tunnel up' "$LOG")
	nq b ip link set "$GB" up
	xb_check "keepalive over $2: up when it returns" \
		xb_wait 6000 sh -c "[ \$(grep -c 'reply from .*tunnel up' '$LOG') -gt $ups ]"
	unpair
done
xb_end
