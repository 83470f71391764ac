# WireGuard helpers for netns tests (sourced after netns.sh).
#
#   xb_wg_up NS IFNAME IMPL PRIVKEY PORT ADDR... — start IMPL ("ours" =
#       xborder-wg, "wireguard-go") for IFNAME inside NS, set key and port,
#       add the addresses, bring it up.
#       XB_WG_ARGS holds extra xborder-wg options; the process's log is in
#       $XB_WG_LOG_<NS>, its pid in ${XB_WG_PID[NS/IFNAME]}.
#   xb_wg_down NS IFNAME — stop it; the interface and UAPI socket go too.
#   xb_tcp_compare NS_SRC NS_DST ADDR BYTES — send BYTES random bytes over
#       TCP and compare checksums on both ends.

declare -A XB_WG_PID

xb_wg_up() {
	local ns=$1 ifn=$2 impl=$3 key=$4 port=$5 a; shift 5
	case $impl in
	ours) xb_bg "$ns" "$XB_BIN/xborder-wg" -f ${XB_WG_ARGS:-} "$ifn" ;;
	wireguard-go) xb_bg "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$ifn" ;;
	*) echo "unknown WireGuard implementation $impl"; return 1 ;;
	esac
	XB_WG_PID[$ns/$ifn]=$XB_LAST_PID
	printf -v "XB_WG_LOG_$ns" '%s' "$XB_LAST_LOG"
	xb_wait 3000 test -S "/var/run/wireguard/$ifn.sock" || { echo "$impl did not start"; cat "$XB_LAST_LOG"; return 1; }
	printf '%s\n' "$key" >"$XB_TMP/$ifn.key"
	n "$ns" wg set "$ifn" private-key "$XB_TMP/$ifn.key" listen-port "$port" || return 1
	for a in "$@"; do xb_addr "$ns" "$ifn" "$a" || return 1; done
	nq "$ns" ip link set "$ifn" up
}

xb_wg_down() {
	local pid=${XB_WG_PID[$1/$2]} i
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
	kill -9 "$pid" 2>/dev/null
	rm -f "/var/run/wireguard/$2.sock"
	unset "XB_WG_PID[$1/$2]"
}

xb_tcp_compare() {
	local src=$1 dst=$2 addr=$3 bytes=$4 port=$((20000 + RANDOM % 20000)) rpid rlog sent
	xb_bg "$dst" "$XB_BIN/xb-pkt" tcp-recv -t 10000 "$port"
	rpid=$XB_LAST_PID rlog=$XB_LAST_LOG
	xb_wait 3000 grep -q ready "$rlog" || return 1
	sent=$(nq "$src" timeout 30 "$XB_BIN/xb-pkt" tcp-send -n "$bytes" "$addr" "$port" | grep sha256=) || return 1
	wait "$rpid"
	echo "# sent: $sent; received: $(grep sha256= "$rlog")"
	[ "$sent" = "$(grep sha256= "$rlog")" ]
}
