# Network-namespace test kit, sourced by tests/net/*.sh (bash).
#
#   . "$(dirname "$0")/../lib/netns.sh"
#   xb_begin                      # root check, sweep leftovers, trap cleanup
#   xb_ns dev gw                  # namespaces "xb<pid>-dev", "xb<pid>-gw"
#   xb_veth dev eth0 gw dev0      # veth pair dev:eth0 <-> gw:dev0 (both up)
#   xb_addr dev eth0 192.0.2.2/24 2001:db8:1::2/64
#   xb_router gw                  # forwarding on, rp_filter off
#   n dev ip route add default via 192.0.2.1
#   xb_bg gw some-daemon args     # background process, killed at cleanup
#   xb_wait 2000 n dev ping -c1 -W1 203.0.113.1   # poll until true or deadline
#   xb_check "device reaches origin" n dev ping -c1 -W1 203.0.113.1
#   xb_end                        # exit status from the checks
#
# Names are unique per run (prefix "xb" + the test shell's PID). Cleanup runs on
# EXIT, INT and TERM: background processes, processes left in our namespaces,
# the namespaces, the temp directory. A run also removes namespaces left by an
# earlier run whose shell is gone (crashed or killed -9).
# Only documentation ranges are used: 192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32.

XB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XB_BUILD=${XB_BUILD:-$XB_ROOT/build}
XB_BIN=$XB_BUILD/bin
XB_RUN=xb$$
XB_TEST=$(basename "${0%.sh}")
XB_NS=()
XB_PIDS=()
XB_FAILED=0
XB_TMP=

xb_log() { printf '# %s\n' "$*"; }

# Run a command in namespace $1 (short name), echoing it like WireGuard's n1.
n() {
	local ns=$1; shift
	[ "${XB_QUIET:-0}" = 1 ] || printf '+ [%s] %s\n' "$ns" "$*" >&2
	ip netns exec "$XB_RUN-$ns" "$@"
}
# Same, without the echo (for polling and captured output).
nq() { local ns=$1; shift; ip netns exec "$XB_RUN-$ns" "$@"; }

xb_sweep() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		[[ $ns =~ ^xb([0-9]+)- ]] || continue
		pid=${BASH_REMATCH[1]}
		[ "$pid" = $$ ] && continue
		kill -0 "$pid" 2>/dev/null && continue
		xb_log "removing leftover namespace $ns (its run, pid $pid, is gone)"
		xb_ns_kill "$ns"
		ip netns del "$ns" 2>/dev/null
	done
}

xb_ns_kill() {	# kill every process inside namespace $1 (full name)
	local pids i
	pids=$(ip netns pids "$1" 2>/dev/null)
	[ -n "$pids" ] || return 0
	kill $pids 2>/dev/null
	for i in $(seq 50); do
		pids=$(ip netns pids "$1" 2>/dev/null)
		[ -n "$pids" ] || return 0
		sleep 0.02
	done
	kill -9 $pids 2>/dev/null
}

xb_cleanup() {
	local rc=$? pid ns i
	trap - EXIT INT TERM
	for pid in "${XB_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${XB_PIDS[@]}"; do
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
		kill -9 "$pid" 2>/dev/null
	done
	for ns in "${XB_NS[@]}"; do
		xb_ns_kill "$XB_RUN-$ns"
		ip netns del "$XB_RUN-$ns" 2>/dev/null
	done
	[ -n "$XB_TMP" ] && rm -rf "$XB_TMP"
	exit "$rc"
}

xb_begin() {
	if [ "$(id -u)" != 0 ]; then
		echo "needs root for network namespaces (run: sudo make test)"
		exit 77
	fi
	xb_sweep
	XB_TMP=$(mktemp -d "/tmp/$XB_RUN-$XB_TEST.XXXXXX")
	trap xb_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

xb_ns() {
	local ns
	for ns in "$@"; do
		ip netns add "$XB_RUN-$ns" || return 1
		XB_NS+=("$ns")
		nq "$ns" ip link set lo up
		# Addresses are assigned by hand: no DAD delay, no RA autoconf.
		nq "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
	done
}

# xb_veth NS1 IF1 NS2 IF2 — a veth pair, both ends up.
xb_veth() {
	ip -n "$XB_RUN-$1" link add "$2" type veth peer name "$4" netns "$XB_RUN-$3" || return 1
	nq "$1" ip link set "$2" up && nq "$3" ip link set "$4" up
}

# xb_addr NS IF ADDR/LEN... — IPv6 addresses skip DAD.
xb_addr() {
	local ns=$1 dev=$2 a; shift 2
	for a in "$@"; do
		case $a in
		*:*) nq "$ns" ip -6 addr add "$a" dev "$dev" nodad || return 1 ;;
		*) nq "$ns" ip addr add "$a" dev "$dev" || return 1 ;;
		esac
	done
}

# xb_router NS — forward IPv4 and IPv6, no reverse-path filter.
xb_router() {
	nq "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# xb_bg NS CMD... — run in the background inside NS; output to $XB_TMP/bg.N.log.
# Sets XB_LAST_PID and XB_LAST_LOG.
xb_bg() {
	local ns=$1; shift
	local log=$XB_TMP/bg.${#XB_PIDS[@]}.log
	XB_LAST_LOG=$log
	printf '+ [%s] %s &\n' "$ns" "$*" >&2
	ip netns exec "$XB_RUN-$ns" "$@" >"$log" 2>&1 &
	XB_LAST_PID=$!
	XB_PIDS+=("$XB_LAST_PID")
}

# xb_wait MS CMD... — run CMD every 10 ms until it succeeds; fail after MS.
xb_wait() {
	local ms=$1; shift
	local deadline=$(( $(date +%s%3N) + ms ))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(date +%s%3N)" -ge "$deadline" ] && return 1
		sleep 0.01
	done
}

xb_ok() { echo "ok - $XB_TEST/$1"; }
xb_fail() { echo "not ok - $XB_TEST/$1${2:+: $2}"; XB_FAILED=$((XB_FAILED + 1)); }
xb_skip() { echo "skip - $XB_TEST/$1: $2"; }

# xb_check NAME CMD... — one case: passes when CMD exits 0.
xb_check() {
	local name=$1; shift
	if "$@"; then xb_ok "$name"; else xb_fail "$name" "command failed: $*"; fi
}

# xb_within NAME VALUE LOW HIGH [UNIT] — one case: LOW <= VALUE <= HIGH (decimals allowed).
xb_within() {
	if awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
		xb_ok "$1 ($2${5:+ $5} in [$3, $4])"
	else
		xb_fail "$1" "$2${5:+ $5} not in [$3, $4]"
	fi
}

xb_end() { exit $(( XB_FAILED > 0 )); }

# xb_need_link NS WHAT ARGS... — skip the whole test, with the reason,
# unless the kernel makes a link of this kind in NS (`ip link add NAME
# ARGS'): the tests under tests/kernel/ need WireGuard or GRE, which
# tests/vm/vm.sh gives them in Debian's kernel.
xb_need_link() {
	local ns=$1 what=$2 err; shift 2
	if ! err=$(nq "$ns" ip link add xbk-probe "$@" 2>&1); then
		xb_skip "kernel $what" "the kernel has no $what (ip link add $*: ${err:-failed}); tests/vm/vm.sh runs this in a VM"
		xb_end
	fi
	nq "$ns" ip link del xbk-probe
}

# The median of numbers on stdin, one per line.
xb_median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# xb_impair_path NS IF_A IF_B — send everything NS forwards between IF_A and
# IF_B through xb-impair (direction "ab" = arriving on IF_A, "ba" = on IF_B).
# Change it with: xb_impair NS set ab delay=30 loss=5 ...
xb_impair_path() {
	local ns=$1 a=$2 b=$3 sock=$XB_TMP/impair-$1.sock fam
	xb_router "$ns"
	xb_bg "$ns" "$XB_BIN/xb-impair" -a imp-ab -b imp-ba -s "$sock"
	xb_wait 3000 test -S "$sock" || { echo "xb-impair did not start"; return 1; }
	for fam in -4 -6; do
		nq "$ns" ip $fam rule add iif "$a" lookup 100 pref 100 || return 1
		nq "$ns" ip $fam rule add iif "$b" lookup 101 pref 101 || return 1
		nq "$ns" ip $fam route add default dev imp-ab table 100 || return 1
		nq "$ns" ip $fam route add default dev imp-ba table 101 || return 1
	done
	nq "$ns" sysctl -qw net.ipv4.conf.imp-ab.rp_filter=0 net.ipv4.conf.imp-ba.rp_filter=0
}

xb_impair() {
	local ns=$1; shift
	"$XB_BIN/xb-impair" ctl "$XB_TMP/impair-$ns.sock" "$@"
}
