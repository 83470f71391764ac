#!/usr/bin/env bash
# The whole gateway: TCP (iperf3) from a device to a mainland origin through
# xborderd and a partner tunnel, against what an operator would build by
# hand on the same topology in the same run. Then policy load time and
# memory with 10 000 devices and 1 000 rules.
#
#   dev ── eth0 192.0.2.1/30 ─── .2 ea ─ gw ─ ep 192.0.2.9/30 ─── .10 eg ─ par ─ eo 203.0.113.1/24 ─── .10 eth0 ─ org
#   DIF 198.51.100.10 ═══ WG ═══ 198.51.100.1 (devices)                                                iperf3 -s
#                                192.0.2.13/30 (tunnel) ═══ WG ═══ 192.0.2.14 PIF
#
# ours:      dev xborder-wg, gw xborderd (device interface and tunnel both
#            userspace in its threads: this kernel has no WireGuard), par
#            xborder-wg.
# reference: dev, gw and par all wireguard-go; on the gateway one
#            wireguard-go for devices (GD) and one toward the partner (GT),
#            kernel forwarding, and by hand (what a competent operator writes):
#              ip rule add fwmark 0x1 lookup 100
#              ip route add default dev GT table 100
#              table inet handmade {
#                chain prerouting { type filter hook prerouting priority mangle;
#                  iifname GD ip saddr 198.51.100.10 ip daddr 203.0.113.0/24 meta mark set 0x1 }
#                chain forward { type filter hook forward priority filter; policy drop;
#                  ct state established,related accept
#                  iifname GD oifname GT ip saddr 198.51.100.10 ip daddr 203.0.113.0/24 accept }
#                chain postrouting { type nat hook postrouting priority srcnat;
#                  oifname GT masquerade } }
#            The gateway has no route to the origin of its own in either
#            case: the origin counts what arrives from 192.0.2.13 (SNAT).
# plain:     the wire under both: no tunnel, no daemon, no nft, the same
#            namespaces and hops routed plainly (dev → gw → par → org by
#            static routes, the device's own address 192.0.2.1); ours and
#            the reference are printed as a share of it.
#
# base:      optional (BASE_BUILD=DIR, a build directory of an earlier
#            revision): ours again with that build's xborderd and
#            xborder-wg, so a change is printed as a ratio against the code
#            before it, in the same run. Issue #18's goal is stated against
#            the code of 29513b7:
#              git worktree add /tmp/xb-base 29513b7 && make -C /tmp/xb-base
#              BASE_BUILD=/tmp/xb-base/build bash bench/gateway.sh
#
# Prints the median of RUNS runs of SECONDS_PER_RUN seconds each (device →
# origin, and origin → device with iperf3 -R unless REVERSE=0), CPU seconds
# of the gateway's tunnel processes per GB moved (xborderd; the two
# wireguard-go), their peak RSS, and ours / reference.
#
# PERF (a file): perf record -g of xborderd's threads (their kernel work
# included: the forwarding between its two TUNs runs in the thread that
# writes the packet) during ours' first run, device -> origin, into PERF
# and, with REVERSE=1, origin -> device into PERF.R; bench/perf_split.py
# splits such a record per thread into crypto, user, UDP, TUN, and the
# kernel's forwarding (routing, nft, conntrack, NAT).
#
# Policy load: LOAD_DEVICES devices in LOAD_GROUPS groups and LOAD_RULES
# rules (rule i names group i mod LOAD_GROUPS, one destination, one port),
# pool4 198.18.0.0/15 — the RFC 2544 benchmarking range, because the
# documentation ranges hold 254 hosts. Measured: xborderd --check (wall
# time, max RSS), and a full start of xborderd in its own namespace up to
# "gateway up" (device peers, routes, nft table) split by phase, its RSS,
# and a reload of the unchanged file. The goal is a load under 1 s.
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/wg.sh"
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
REVERSE=${REVERSE:-1}
LOAD_DEVICES=${LOAD_DEVICES:-10000}
LOAD_RULES=${LOAD_RULES:-1000}
LOAD_GROUPS=${LOAD_GROUPS:-20}
PARTS=${PARTS:-throughput load}
BASE_BUILD=${BASE_BUILD:-}
XB_QUIET=1
xb_begin
exec 3>&2 2>"$XB_TMP/trace.log"	# xb_bg's echo; kept for a failure report
xb_ns dev gw par org ld
xb_veth dev eth0 gw ea
xb_veth gw ep par eg
xb_veth par eo org eth0
xb_addr dev eth0 192.0.2.1/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30
xb_addr par eo 203.0.113.1/24
xb_addr org eth0 203.0.113.10/24
nq org ip route add default via 203.0.113.1
xb_router par

ID=$$
DIF=xd$ID GWIF=xg$ID TUN=p$ID PIF=xp$ID GD=gd$ID GT=gt$ID
CTL=$XB_TMP/ctl.sock
kd=$(wg genkey) kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
hz=$(getconf CLK_TCK)

say() { printf '%s\n' "$*" >&3; }
die() { say "$*"; say "--- trace:"; tail -n 20 "$XB_TMP/trace.log" >&3; exit 1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

# The origin counts what arrives from the tunnel's inner address.
nq org nft -f - <<'EOF'
table ip count {
	chain in {
		type filter hook input priority 0;
		ip saddr 192.0.2.13 counter
	}
}
EOF
from_tunnel() { nq org nft list table ip count | awk '/counter/ { print $(NF-2) }'; }

cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
};
groups = [ "staff" ];
devices = (
  { name = "dev"; public_key = "$(pub "$kd")"; groups = [ "staff" ]; address4 = "198.51.100.10"; }
);
tunnels = (
  { name = "$TUN"; endpoint = "192.0.2.10:51900"; private_key_file = "tun.key";
    public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; }
);
rules = (
  { name = "origin"; groups = [ "staff" ]; to = [ "203.0.113.0/24" ]; action = "allow"; via = [ "$TUN" ]; }
);
EOF

partner_up() {	# partner_up IMPL
	xb_wg_up par "$PIF" "$1" "$kp" 51900 192.0.2.14/30 >&2 || return 1
	nq par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
}
device_up() {	# device_up IMPL
	xb_wg_up dev "$DIF" "$1" "$kd" 0 198.51.100.10/24 >&2 || return 1
	nq dev wg set "$DIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 \
		allowed-ips 198.51.100.0/24,203.0.113.0/24 || return 1
	nq dev ip route add 203.0.113.0/24 dev "$DIF"
}

# Sets GW_PIDS (the gateway's tunnel processes).
ours_up() {
	partner_up ours || return 1
	xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"
	GWPID=$XB_LAST_PID GWLOG=$XB_LAST_LOG
	xb_wait 10000 grep -q "gateway up" "$GWLOG" || { cat "$GWLOG" >&3; return 1; }
	GW_PIDS=$GWPID
	device_up ours
}
base_up() {	# ours, with the binaries of BASE_BUILD
	local bin=$XB_BIN
	rm -rf "$XB_TMP/state"	# an earlier build refuses a newer state schema
	XB_BIN=$BASE_BUILD/bin
	ours_up
	local rc=$?
	XB_BIN=$bin
	return $rc
}
base_down() { ours_down; rm -rf "$XB_TMP/state"; }
ours_down() {
	kill -TERM "$GWPID" 2>/dev/null
	xb_wait 5000 sh -c "! kill -0 $GWPID" || say "xborderd did not stop on SIGTERM"
	grep -E ": (warning|error): " "$GWLOG" | head -n 5 | sed "s/^/  xborderd log: /" >&3
	xb_wg_down dev "$DIF"; xb_wg_down par "$PIF"
}

ref_up() {
	partner_up wireguard-go || return 1
	xb_router gw
	xb_wg_up gw "$GD" wireguard-go "$kg" 51820 198.51.100.1/24 >&2 || return 1
	nq gw wg set "$GD" peer "$(pub "$kd")" allowed-ips 198.51.100.10/32 || return 1
	xb_wg_up gw "$GT" wireguard-go "$kt" 0 192.0.2.13/30 >&2 || return 1
	nq gw wg set "$GT" peer "$(pub "$kp")" endpoint 192.0.2.10:51900 allowed-ips 0.0.0.0/0 || return 1
	GW_PIDS="${XB_WG_PID[gw/$GD]} ${XB_WG_PID[gw/$GT]}"
	nq gw ip rule add fwmark 0x1 lookup 100 || return 1
	nq gw ip route add default dev "$GT" table 100 || return 1
	nq gw nft -f - <<EOF || return 1
table inet handmade {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		iifname "$GD" ip saddr 198.51.100.10 ip daddr 203.0.113.0/24 meta mark set 0x1
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "$GD" oifname "$GT" ip saddr 198.51.100.10 ip daddr 203.0.113.0/24 accept
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "$GT" masquerade
	}
}
EOF
	device_up wireguard-go
}
ref_down() {
	nq gw nft delete table inet handmade
	nq gw ip rule del fwmark 0x1 lookup 100
	xb_wg_down dev "$DIF"; xb_wg_down gw "$GD"; xb_wg_down gw "$GT"; xb_wg_down par "$PIF"
}

plain_up() {
	xb_router gw
	nq dev ip route add 203.0.113.0/24 via 192.0.2.2 || return 1
	nq gw ip route add 203.0.113.0/24 via 192.0.2.10 || return 1
	nq par ip route add 192.0.2.0/30 via 192.0.2.9 || return 1
	GW_PIDS=	# kernel forwarding: no process to charge
}
plain_down() {
	nq dev ip route del 203.0.113.0/24 via 192.0.2.2
	nq gw ip route del 203.0.113.0/24 via 192.0.2.10
	nq par ip route del 192.0.2.0/30 via 192.0.2.9
}

gw_ticks() { local p t=0; for p in $GW_PIDS; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
gw_hwm() { local p s=; for p in $GW_PIDS; do s+="${s:+ + }$(hwm_kb "$p")"; done; echo "$s"; }

# streams [-R] -> "gbit_s cpu_s_per_gb": the median of RUNS iperf3 runs and
# the gateway's CPU per GB over all of them.
streams() {
	local rates=() bytes=0 t0 t1 r out
	t0=$(gw_ticks)
	for r in $(seq "$RUNS"); do
		xb_bg org iperf3 -s -1 -B 203.0.113.10
		xb_wait 3000 sh -c "ip netns exec $XB_RUN-org ss -Htln | grep -q ':5201 '" || return 1
		[ -n "${PERF:-}" ] && [ "$r" = 1 ] && [ -n "${GWPID:-}" ] && [ "$GW_PIDS" = "$GWPID" ] &&
			(sleep 1; perf record -q -g -p "$GWPID" -o "$PERF${1:+.R}" \
				-- sleep $((SECONDS_PER_RUN > 3 ? SECONDS_PER_RUN - 2 : 1)) >/dev/null 2>&1) &
		out=$(nq dev iperf3 -c 203.0.113.10 -t "$SECONDS_PER_RUN" -J "$@" 2>/dev/null)
		wait "$XB_LAST_PID" 2>/dev/null
		r=$(echo "$out" | jq -e '.end.sum_received.bits_per_second') || return 1
		rates+=("$r")
		bytes=$(echo "$out" | jq --argjson b "$bytes" '$b + .end.sum_received.bytes')
	done
	t1=$(gw_ticks)
	awk -v r="$(printf '%s\n' "${rates[@]}" | xb_median)" -v t=$((t1 - t0)) -v hz="$hz" \
		-v b="$bytes" 'BEGIN { printf "%.3f %.2f\n", r / 1e9, (t / hz) / (b / 1e9) }'
}

declare -A res
measure() {	# measure ours|ref
	local before
	"$1_up" || die "$1: bring-up failed"
	xb_wait 5000 nq dev ping -c 1 -W 1 203.0.113.10 || die "$1: the device does not reach the origin"
	before=$(from_tunnel)
	res[$1]=$(streams) || die "$1: iperf3 failed"
	[ "$REVERSE" = 1 ] && { res[$1-R]=$(streams -R) || die "$1: iperf3 -R failed"; }
	[ "$1" = plain ] || [ "$(from_tunnel)" -gt "${before:-0}" ] || die "$1: the origin saw nothing from the tunnel"
	res[$1-rss]=$(gw_hwm)
	"$1_down"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

throughput() {
	say "gateway throughput: median of $RUNS x ${SECONDS_PER_RUN}s iperf3 (TCP), device -> origin"
	local setups="ours ref plain"
	if [ -n "$BASE_BUILD" ]; then
		[ -x "$BASE_BUILD/bin/xborderd" ] || die "BASE_BUILD=$BASE_BUILD has no bin/xborderd"
		setups="ours base ref plain"
	fi
	for m in $setups; do measure $m; done
	for m in $setups; do
		read -r g c <<<"${res[$m]}"
		[ $m = plain ] && c=-
		line=$(printf '%-38s %7s Gbit/s  gateway %6s CPU-s/GB' \
			"$(case $m in ours) echo "ours (xborderd)";; base) echo "ours at BASE_BUILD";; ref) echo "reference (wireguard-go + nft)";;
				plain) echo "plain routing (no tunnels, no daemon)";; esac)" "$g" "$c")
		if [ "$REVERSE" = 1 ]; then
			read -r g c <<<"${res[$m-R]}"
			[ $m = plain ] && c=-
			line+=$(printf '   -R %7s Gbit/s %6s CPU-s/GB' "$g" "$c")
		fi
		say "$line"
	done
	say "gateway peak RSS: xborderd ${res[ours-rss]} KiB; wireguard-go ${res[ref-rss]} KiB"
	read -r gp _ <<<"${res[plain]}"
	say "share of the wire (plain routing): ours $(share "${res[ours]% *}" "$gp"), reference $(share "${res[ref]% *}" "$gp")"
	if [ "$REVERSE" = 1 ]; then
		read -r gp _ <<<"${res[plain-R]}"
		say "share of the wire, origin -> device (-R): ours $(share "${res[ours-R]% *}" "$gp"), reference $(share "${res[ref-R]% *}" "$gp")"
	fi
	read -r go oc <<<"${res[ours]}"
	read -r gr rc <<<"${res[ref]}"
	say "ratio ours/reference = $(ratio "$go" "$gr")x (goal >= 2x)"
	if [ "$REVERSE" = 1 ]; then
		read -r go _ <<<"${res[ours-R]}"
		read -r gr _ <<<"${res[ref-R]}"
		say "ratio ours/reference, origin -> device (-R) = $(ratio "$go" "$gr")x"
	fi
	say "gateway CPU per GB ours/reference = $(ratio "$oc" "$rc")x (lower is better)"
	if [ -n "$BASE_BUILD" ]; then
		read -r go oc <<<"${res[ours]}"
		read -r gb bc <<<"${res[base]}"
		say "ratio ours/BASE_BUILD = $(ratio "$go" "$gb")x device -> origin" \
			"(issue #18's goal: >= 2x the code of 29513b7), CPU per GB $(ratio "$oc" "$bc")x"
		[ "$REVERSE" = 1 ] && say "ratio ours/BASE_BUILD, origin -> device (-R) =" \
			"$(ratio "${res[ours-R]% *}" "${res[base-R]% *}")x"
	fi
	[ -n "$BASE_BUILD" ] || say "(no earlier build measured: BASE_BUILD unset)"
}

# ---- policy load ----

# big_policy DIR IFNAME — LOAD_DEVICES devices in LOAD_GROUPS groups and
# LOAD_RULES rules over two tunnels; device addresses come from the pool.
big_policy() {
	local dir=$1 g=$LOAD_GROUPS k
	mkdir -p "$dir"
	(umask 077; for k in gw t0 t1; do wg genkey >"$dir/$k.key"; done)
	{
		cat <<EOF2
gateway = { interface = "$2"; private_key_file = "gw.key"; pool4 = "198.18.0.0/15";
  control_socket = "$dir/ctl.sock"; state_dir = "$dir/state"; };
groups = [ $(seq -f '"g%.0f"' 0 $((g - 1)) | paste -sd,) ];
tunnels = (
  { name = "t0"; endpoint = "192.0.2.10:51900"; private_key_file = "t0.key";
    public_key = "$(wg genkey | wg pubkey)"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; },
  { name = "t1"; endpoint = "192.0.2.18:51900"; private_key_file = "t1.key";
    public_key = "$(wg genkey | wg pubkey)"; address4 = "192.0.2.21/30"; peer4 = "192.0.2.22"; }
);
devices = (
EOF2
		# Any 32 bytes are a key to the parser: 30 random bytes are 40
		# base64 digits, "AAA=" adds two zero bytes.
		head -c $((30 * LOAD_DEVICES)) /dev/urandom | base64 -w 40 | awk -v g="$g" '
			{ printf "%s  { name = \"d%d\"; public_key = \"%sAAA=\"; groups = [ \"g%d\" ]; }",
				(NR > 1 ? ",\n" : ""), NR, $0, NR % g }'
		printf '\n);\nrules = (\n'
		seq 0 $((LOAD_RULES - 1)) | awk -v g="$g" '
			{ printf "%s  { name = \"r%d\"; groups = [ \"g%d\" ]; to = [ \"203.0.113.%d/32\" ]; protocols = [ \"tcp\" ]; ports = ( %d ); action = \"allow\"; via = [ \"t%d\", \"t%d\" ]; }",
				(NR > 1 ? ",\n" : ""), $1, $1 % g, $1 % 254 + 1, 1024 + $1, $1 % 2, ($1 + 1) % 2 }'
		printf '\n);\n'
	} >"$dir/xborder.conf"
}

now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# follow LOG PID T0 PATTERN COUNT MS — copy LOG's new lines to LOG.t, each
# prefixed by the milliseconds since T0 at which it was seen (10 ms
# polling), until COUNT lines match PATTERN; fails when PID dies or after MS.
follow() {
	local log=$1 pid=$2 t0=$3 pat=$4 count=$5 deadline=$(( $(now_ms) + $6 )) seen n
	seen=$(cat "$log.n" 2>/dev/null || echo 0)
	while :; do
		n=$(wc -l <"$log")
		if [ "$n" -gt "$seen" ]; then
			sed -n "$((seen + 1)),${n}p" "$log" | sed "s/^/$(( $(now_ms) - t0 )) /" >>"$log.t"
			seen=$n
			echo "$seen" >"$log.n"
			[ "$(grep -c -- "$pat" "$log.t")" -ge "$count" ] && return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.01
	done
}
at() { grep -- "$2" "$1.t" | sed -n "${3:-1}p" | cut -d' ' -f1; }	# at LOG PATTERN [NTH] -> ms
before() { grep -B1 -- "$2" "$1.t" | head -n 1 | cut -d' ' -f1; }	# the line before
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
goal() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }	# ms / the 1 s goal

load() {
	local dir=$XB_TMP/load lif=xl$ID conf t0 pid log ms m r
	big_policy "$dir" "$lif"
	conf=$dir/xborder.conf
	say "policy load: $LOAD_DEVICES devices in $LOAD_GROUPS groups, $LOAD_RULES rules, 2 tunnels" \
		"($LOAD_DEVICES device-set elements: rules of one group share its set); goal: load < 1 s"

	if [ -x /usr/bin/time ]; then
		m=$(/usr/bin/time -f '%e %M' "$XB_BIN/xborderd" --check -c "$conf" 2>&1 >/dev/null) ||
			die "xborderd --check failed: $m"
		read -r r m <<<"$m"
		say "$(printf '  %-34s %6s s  max RSS %7s KiB   load time / 1 s goal = %s' \
			"xborderd --check" "$r" "$m" "$r")"
	else
		t0=$(now_ms)
		"$XB_BIN/xborderd" --check -c "$conf" >/dev/null || die "xborderd --check failed"
		ms=$(( $(now_ms) - t0 ))
		say "$(printf '  %-34s %6s s  (no /usr/bin/time: no RSS)   load time / 1 s goal = %s' \
			"xborderd --check" "$(secs $ms)" "$(goal $ms)")"
	fi

	t0=$(now_ms)
	xb_bg ld "$XB_BIN/xborderd" -f -c "$conf"
	pid=$XB_LAST_PID log=$XB_LAST_LOG
	follow "$log" "$pid" "$t0" "gateway up" 1 300000 || { cat "$log" >&3; die "xborderd did not come up"; }
	ms=$(at "$log" "gateway up")
	say "$(printf '  %-34s %6s s  RSS %7s KiB (peak %s)   load time / 1 s goal = %s' \
		"xborderd start to \"gateway up\"" "$(secs "$ms")" "$(rss_kb "$pid")" "$(hwm_kb "$pid")" \
		"$(goal "$ms")")"
	say "    policy, addresses, plan $(secs "$(at "$log" "control: listening")") s;" \
		"nft table, tunnels, routes $(secs $(( $(at "$log" "$lif: .*WireGuard: ") - $(at "$log" "control: listening") ))) s;" \
		"device interface + $LOAD_DEVICES peers $(secs $(( ms - $(at "$log" "$lif: .*WireGuard: ") ))) s"
	for r in 1 2; do
		t0=$(now_ms)
		kill -HUP "$pid"
		follow "$log" "$pid" "$t0" "reloaded: " "$r" 300000 || { cat "$log" >&3; die "reload $r failed"; }
		ms=$(( $(at "$log" "reloaded: " "$r") - $(at "$log" "SIGHUP: " "$r") ))
		say "$(printf '  %-34s %6s s  RSS %7s KiB (peak %s)   load time / 1 s goal = %s' \
			"reload $r, the file unchanged" "$(secs "$ms")" "$(rss_kb "$pid")" "$(hwm_kb "$pid")" \
			"$(goal "$ms")")"
	done
	t0=$(now_ms)
	kill -TERM "$pid"
	follow "$log" "$pid" "$t0" "stopped" 1 300000
	say "$(printf '  %-34s %6s s' "stop (everything removed)" "$(secs $(( $(now_ms) - t0 )))")"
	grep -E ": (warning|error): " "$log" | head -n 5 | sed "s/^/  xborderd log: /" >&3
}

say "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run (other work skews the figures)"
for part in $PARTS; do "$part"; done
