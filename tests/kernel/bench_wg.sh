#!/usr/bin/env bash
# Benchmark, run inside the VM by bench/kernel_vm.sh: TCP (iperf3) through
# the kernel's WireGuard and through ours (xborder-wg) between the same two
# namespaces, and the plain veth under them, in the same boot. The CPU is
# emulated (QEMU TCG, no KVM): the figures are the ratio, not the speeds.
#
#   a ── eth0 192.0.2.1 ─────── 192.0.2.2 eth0 ── b
#   wA 198.51.100.1  ═══ WG ═══  198.51.100.2 wB      iperf3 -c (a) → -s (b)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
SECS=${SECS:-5}
XB_QUIET=1
xb_begin
xb_ns a b
xb_veth a eth0 b eth0
xb_addr a eth0 192.0.2.1/24
xb_addr b eth0 192.0.2.2/24
ka=$(wg genkey) kb=$(wg genkey); pa=$(echo "$ka" | wg pubkey) pb=$(echo "$kb" | wg pubkey)
(umask 077; echo "$ka" >"$XB_TMP/a.key"; echo "$kb" >"$XB_TMP/b.key")
ifa=xw$$a ifb=xw$$b

gbps() {	# gbps ADDR — one iperf3 run from a to b, Gbit/s received
	xb_bg b iperf3 -s -1 -B "$1"
	xb_wait 10000 sh -c "ip netns exec $XB_RUN-b ss -Htln | grep -q ':5201 '"
	nq a iperf3 -c "$1" -t "$SECS" -J 2>/dev/null | jq -r '.end.sum_received.bits_per_second / 1e9 * 1000 | floor / 1000'
	wait "$XB_LAST_PID" 2>/dev/null
}
up() {	# up IMPL (kernel | ours)
	if [ "$1" = kernel ]; then
		nq a ip link add "$ifa" type wireguard && nq b ip link add "$ifb" type wireguard
		nq a wg set "$ifa" private-key "$XB_TMP/a.key" listen-port 51820
		nq b wg set "$ifb" private-key "$XB_TMP/b.key" listen-port 51821
		xb_addr a "$ifa" 198.51.100.1/24; xb_addr b "$ifb" 198.51.100.2/24
		nq a ip link set "$ifa" up; nq b ip link set "$ifb" up
	else
		xb_wg_up a "$ifa" ours "$ka" 51820 198.51.100.1/24 >/dev/null
		xb_wg_up b "$ifb" ours "$kb" 51821 198.51.100.2/24 >/dev/null
	fi
	nq a wg set "$ifa" peer "$pb" allowed-ips 198.51.100.2/32 endpoint 192.0.2.2:51821
	nq b wg set "$ifb" peer "$pa" allowed-ips 198.51.100.1/32
	nq a ping -c 1 -W 5 198.51.100.2 >/dev/null
}
down() { xb_wg_down a "$ifa"; xb_wg_down b "$ifb"; nq a ip link del "$ifa" 2>/dev/null; nq b ip link del "$ifb" 2>/dev/null; }

veth=$(gbps 192.0.2.2)
up kernel && kern=$(gbps 198.51.100.2); down
up ours && ours=$(gbps 198.51.100.2); down
echo "# emulated CPU (QEMU TCG, $(nproc) vCPUs, kernel $(uname -r)): compare ratios, not speeds"
printf '%-30s %8s Gbit/s\n' "plain veth" "$veth" "kernel WireGuard <-> kernel" "${kern:-?}" "ours <-> ours" "${ours:-?}"
awk -v o="${ours:-0}" -v k="${kern:-0}" -v v="${veth:-0}" 'BEGIN {
	if (k > 0) printf "ours / kernel WireGuard: %.2f\n", o / k
	if (v > 0) printf "of the veth: kernel %.2f, ours %.2f\n", k / v, o / v }'
xb_end
