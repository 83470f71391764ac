#!/usr/bin/env bash
# The DNS service under dnsperf, against unbound (local-data) and dnsmasq
# (address=) answering the same 1 000 names, in the same run, on the same
# namespace, each server pinned to CPU 0 and dnsperf to CPU 1.
#
#   c: dnsperf as device 198.51.100.10 ══ WireGuard (xborder-wg) ══ d: xborderd's device interface
#                                                                    198.51.100.1 xborderd's DNS
#                                                                    198.51.100.2 unbound (one thread)
#                                                                    198.51.100.3 dnsmasq
# Queries arrive the way a device's do, through its WireGuard tunnel: the
# DNS service listens on the device interface only. All three servers are
# reached through the same tunnel, so all pay the same WireGuard cost (on
# CPU 0 with them: xborderd's WireGuard thread); CPU per query counts only
# the server's own work (xborderd's main thread, where DNS runs).
#
# Printed: maximum QPS of each (dnsperf, 100 queries outstanding) and
# xborder / unbound (goal ≥ 1.5), with where CPU 0's time a query went in
# those runs (the server's thread, xborderd's WireGuard thread, its wakeups;
# the device's WireGuard on CPU 1; both cores' busy share, other jobs'
# work included) and the bound that WireGuard's share puts on the ratio — on two cores dnsperf itself may cap all
# three near the same figure, so also each server's CPU time per query at a
# rate all sustain (QPS_CPU), whose inverse is its capacity on one core; latency p50/p99 of each at a fixed
# moderate rate (QPS_FIXED, from dnsperf -v); the cost of opening paths —
# p99 of answers whose addresses go into an access rule's set against
# answers that do not (goal: ≤ 1 ms more at p99); and with the 110 775-name
# mainland list loaded: --check time, the daemon's memory (goal ≤ 64 MB)
# and QPS.
#
# Then the figure where the server is the bottleneck: each server's serving
# thread alone in a cgroup v1 cpu group with the same CPU budget (BUDGETS, %
# of one core over a CG_PERIOD_US period) — for xborderd its main thread
# only, never its WireGuard thread. The budget is set low enough that
# neither WireGuard nor dnsperf can be the limit, and the bench shows it:
# each server's QPS at the larger budget over that at the smaller must be
# their ratio (2 for 10 and 20), with no query lost; then xborder / unbound
# at equal budget (goal >= 1.5). Skipped, with the reason, without the cpu
# controller at /sys/fs/cgroup/cpu. The kernel's least quota is 1 ms, so
# small budgets need long periods (2 % of 50 ms); few queries outstanding
# (40) keep the socket buffers from overflowing while a server waits out
# its period, and keep the arrivals alike at both budgets (with 100,
# xborderd's batches grew with the budget and its QPS did not double).
#
# Env: RUNS (default 3, interleaved, medians), SECONDS_PER_RUN (default 10), QPS_FIXED (default
# 10000), QPS_CPU (default 30000), BUDGETS (default "2 4"), CG_PERIOD_US (default 50000),
# BUDGET_OUTSTANDING (dnsperf -q in the budget runs, default 40), PARTS (default "qps cpu latency
# budget paths list": which of them to run, in that order), PERF (a file: perf record -g of
# xborderd's main thread during its QPS_CPU run; PERF_ALL=1: all its threads), WG_CPU (a CPU:
# xborderd's threads but its main one moved there, a placement experiment), DNS_TAP (default
# true: gateway dns_tap, xborderd's queries skip the TUN device and the kernel; false: they
# go through them as unbound's and dnsmasq's do).
. "$(dirname "$0")/../tests/lib/netns.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
RUNS=${RUNS:-3}
QPS_FIXED=${QPS_FIXED:-10000}
QPS_CPU=${QPS_CPU:-30000}
BUDGETS=${BUDGETS:-2 4}
CG_PERIOD_US=${CG_PERIOD_US:-50000}
BUDGET_OUTSTANDING=${BUDGET_OUTSTANDING:-40}
PARTS=${PARTS:-qps cpu latency budget paths list}
DNS_TAP=${DNS_TAP:-true}
DATA=${XB_DATA:-$(cd "$(dirname "$0")/.." && pwd)/tests/data}
LIST=$DATA/accelerated-domains.china.conf
XB_QUIET=1
for t in dnsperf unbound dnsmasq taskset; do
	command -v "$t" >/dev/null || { echo "dns bench: $t is not installed (deploy/deps.sh bench)"; exit 0; }
done
xb_begin
exec 3>&2 2>"$XB_TMP/trace.log"
say() { printf '%s\n' "$*" >&3; }
die() { say "$*"; say "--- trace:"; tail -n 20 "$XB_TMP/trace.log" >&3; exit 1; }
rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# The cgroup the budget runs use, removed on any exit (its threads moved
# back to the root group first) before xb_cleanup ends the servers.
CG=/sys/fs/cgroup/cpu CG_DIR=
cg_rm() {
	local rc=$? t
	if [ -n "$CG_DIR" ] && [ -d "$CG_DIR" ]; then
		while read -r t; do echo "$t" >"$CG/tasks"; done <"$CG_DIR/tasks"
		rmdir "$CG_DIR" || say "dns bench: could not remove $CG_DIR"
	fi
	return $rc
}
trap 'cg_rm; xb_cleanup' EXIT
say "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"

xb_ns c d
xb_veth c eth0 d eth0
xb_addr c eth0 192.0.2.1/30
xb_addr d eth0 192.0.2.2/30
nq d ip addr add 198.51.100.2/32 dev lo
nq d ip addr add 198.51.100.3/32 dev lo

ID=$$ CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kd=$(wg genkey)
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kd" >"$XB_TMP/dev.key")
DIF=xc$ID

# 1 000 names for the comparison (n0000.bench.example → 203.0.113.x), and
# two sets of 1 000 for the path-opening cost: l*.learn.example answers go
# into an access rule's set, p*.plain.example answers do not.
: >"$XB_TMP/rules" >"$XB_TMP/unbound.local" >"$XB_TMP/dnsmasq.conf"
: >"$XB_TMP/q.bench" >"$XB_TMP/q.learn" >"$XB_TMP/q.plain"
for i in $(seq 0 999); do
	n=$(printf '%04d' "$i") a="203.0.113.$((i % 250 + 1))"
	for kind in n:bench l:learn p:plain; do
		name="${kind%%:*}$n.${kind#*:}.example"
		echo "    { name = \"${kind%%:*}$n\"; domains = [ \"$name\" ]; action = \"override\"; answer = [ \"$a\" ]; ttl = 300; }," >>"$XB_TMP/rules"
		echo "$name A" >>"$XB_TMP/q.${kind#*:}"
	done
	echo "local-data: \"n$n.bench.example. 300 IN A $a\"" >>"$XB_TMP/unbound.local"
	echo "address=/n$n.bench.example/$a" >>"$XB_TMP/dnsmasq.conf"
done
policy() {	# policy FILE [LISTRULE]
	local last='    { name = "last"; domains = [ "last.example" ]; action = "block"; }'
	cat >"$1" <<EOF
gateway = {
  interface = "xg$ID"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; control_socket = "$CTL"; state_dir = "$XB_TMP/state";
  dns_tap = $DNS_TAP;
};
devices = ( { name = "d"; public_key = "$(echo "$kd" | wg pubkey)"; address4 = "198.51.100.10"; } );
rules = ( { name = "learn"; domains = [ "*.learn.example" ]; action = "allow"; via = [ "internet" ]; } );
dns = {
  cache_size = 0;
  rules = (
$(cat "$XB_TMP/rules")
${2:-$last}
  );
};
EOF
}
policy "$XB_TMP/xborder.conf"

cat >"$XB_TMP/unbound.conf" <<EOF
server:
  interface: 198.51.100.2
  port: 53
  num-threads: 1
  do-daemonize: no
  use-syslog: no
  username: ""
  chroot: ""
  directory: "$XB_TMP"
  pidfile: ""
  access-control: 198.51.100.0/24 allow
  local-zone: "bench.example." static
  include: "$XB_TMP/unbound.local"
remote-control:
  control-enable: no
EOF

# dnsperf from CPU 1 against SERVER: "QPS" of a RUN-second run at full speed.
max_qps() {
	nq c taskset -c 1 dnsperf -s "$1" -a 198.51.100.10 -d "$2" -l "$SECONDS_PER_RUN" -c 4 -q 100 2>&1 |
		awk '/Queries per second/ { print int($4) }'
}
# p50 and p99 latency in ms at QPS_FIXED for 3 s (from dnsperf -v).
latency() {
	nq c taskset -c 1 dnsperf -v -s "$1" -a 198.51.100.10 -d "$2" -l 3 -Q "$QPS_FIXED" -c 4 2>/dev/null |
		awk '$1 == ">" && $2 == "NOERROR" { print $NF * 1000 }' | sort -g |
		awk '{ v[NR] = $1 } END { if (!NR) { print "- -"; exit } printf "%.3f %.3f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1] }'
}
start_xb() {	# start_xb CONF — pid in XBPID
	xb_bg d taskset -c 0 "$XB_BIN/xborderd" -f -c "$1"
	XBPID=$XB_LAST_PID
	XBLOG=$XB_LAST_LOG
	xb_wait 30000 grep -q "gateway up" "$XB_LAST_LOG" || die "xborderd did not start: $(tail -3 "$XB_LAST_LOG")"
	# WG_CPU: an experiment in placement — xborderd's other threads (its
	# WireGuard thread) moved to that CPU, its DNS thread left on CPU 0.
	if [ -n "${WG_CPU:-}" ]; then
		local t
		for t in /proc/"$XBPID"/task/*; do
			[ "${t##*/}" = "$XBPID" ] || taskset -p -c "$WG_CPU" "${t##*/}" >/dev/null ||
				die "WG_CPU: cannot move thread ${t##*/}"
		done
	fi
}
answers() {
	xb_wait 5000 nq c sh -c "dig +short +time=1 +tries=1 @$1 n0001.bench.example | grep -q ." ||
		die "$1 does not answer: $(tail -5 "$XBLOG")"
}
stop_xb() { kill "$XBPID"; for _ in $(seq 300); do kill -0 "$XBPID" 2>/dev/null || return 0; sleep 0.01; done; }

# The budget runs: "QPS LOST THROTTLED" of a run with the threads TIDS
# (space separated) alone in our group at PCT % of one core; THROTTLED is
# the per cent of the run's periods in which the group used up its quota
# while it still had work (cpu.stat) — ~100: the budget was the limit.
budget_qps() {	# budget_qps SERVER "TIDS" PCT
	local t s0 s1
	echo $((CG_PERIOD_US * $3 / 100)) >"$CG_DIR/cpu.cfs_quota_us"
	for t in $2; do echo "$t" >"$CG_DIR/tasks"; done
	s0=$(awk '/^nr_periods|^nr_throttled/ { printf "%s ", $2 }' "$CG_DIR/cpu.stat")
	nq c taskset -c 1 dnsperf -s "$1" -a 198.51.100.10 -d "$XB_TMP/q.bench" -l "$SECONDS_PER_RUN" \
		-c 4 -q "$BUDGET_OUTSTANDING" >"$XB_TMP/dnsperf.out" 2>&1
	s1=$(awk '/^nr_periods|^nr_throttled/ { printf "%s ", $2 }' "$CG_DIR/cpu.stat")
	for t in $2; do echo "$t" >"$CG/tasks"; done
	awk -v s0="$s0" -v s1="$s1" 'BEGIN { split(s0, a); split(s1, b) }
		/Queries lost/ { l = $3 } /Queries per second/ { q = int($4) }
		END { p = b[1] - a[1]; printf "%d %d %.0f\n", q, l, (p > 0 ? 100 * (b[2] - a[2]) / p : 0) }' \
		"$XB_TMP/dnsperf.out"
}
part_budget() {
	local b lo hi i srv q l th line
	if [ ! -w "$CG/cpu.cfs_quota_us" ]; then
		say "equal CPU budget: skipped, no cgroup v1 cpu controller at $CG"
		return
	fi
	read -r lo hi <<<"$BUDGETS"
	CG_DIR=$CG/xb$$-dns
	mkdir "$CG_DIR" && echo "$CG_PERIOD_US" >"$CG_DIR/cpu.cfs_period_us" ||
		{ say "equal CPU budget: skipped, cannot make $CG_DIR"; return; }
	# xborderd: its main thread (its pid), never its WireGuard thread;
	# unbound (one thread) and dnsmasq: every thread they have.
	declare -A T=( [x]=$XBPID [u]="$(ls "/proc/$UBPID/task")" [m]="$(ls "/proc/$DMPID/task")" )
	declare -A A=( [x]=198.51.100.1 [u]=198.51.100.2 [m]=198.51.100.3 ) Q TH lost bound
	say "equal CPU budget: each server's serving thread alone in a cgroup (cpu.cfs_period_us" \
		"$CG_PERIOD_US, quota ${lo} % and ${hi} % of it), dnsperf -q $BUDGET_OUTSTANDING; median of $RUNS"
	for b in $lo $hi; do
		: >"$XB_TMP/b"
		for i in $(seq "$RUNS"); do
			for srv in x u m; do
				read -r q l th <<<"$(budget_qps "${A[$srv]}" "${T[$srv]}" "$b")"
				echo "$srv $q $th" >>"$XB_TMP/b"
				lost[$srv]=$((${lost[$srv]:-0} + l))
			done
		done
		for srv in x u m; do
			Q[$srv$b]=$(awk -v s=$srv '$1 == s { print $2 }' "$XB_TMP/b" | xb_median)
			TH[$srv]=$(awk -v s=$srv '$1 == s { print $3 }' "$XB_TMP/b" | sort -g | head -1)
			[ "${TH[$srv]}" -ge 95 ] || bound[$srv]=no
		done
		say "$(printf '  %3s %%: xborder %6s QPS, unbound %6s, dnsmasq %6s;' "$b" "${Q[x$b]}" "${Q[u$b]}" "${Q[m$b]}")" \
			"xborder / unbound = $(ratio "${Q[x$b]}" "${Q[u$b]}") (goal >= 1.5)," \
			"xborder / dnsmasq = $(ratio "${Q[x$b]}" "${Q[m$b]}");" \
			"periods throttled (least of the runs): ${TH[x]} %, ${TH[u]} %, ${TH[m]} %"
	done
	line="QPS at $hi % / at $lo %: xborder $(ratio "${Q[x$hi]}" "${Q[x$lo]}"),"
	line+=" unbound $(ratio "${Q[u$hi]}" "${Q[u$lo]}"), dnsmasq $(ratio "${Q[m$hi]}" "${Q[m$lo]}")"
	say "  $line (expected $(ratio "$hi" "$lo") when the budget is the limit)"
	say "  queries lost in these runs: xborder ${lost[x]}, unbound ${lost[u]}, dnsmasq ${lost[m]}"
	# Bound by its budget: throttled in >= 95 % of periods at both budgets,
	# QPS at least 0.9 of the budgets' ratio (transport caps it below), none lost.
	for srv in x u m; do
		awk -v r="$(ratio "${Q[$srv$hi]}" "${Q[$srv$lo]}")" -v e="$hi" -v l="$lo" \
			'BEGIN { exit !(r >= 0.9 * e / l) }' || bound[$srv]=no
		[ "${lost[$srv]}" = 0 ] || bound[$srv]=no
	done
	say "  bound by the budget (throttled >= 95 %, ratio >= 0.9 of the budgets', nothing lost):" \
		"xborder ${bound[x]:-yes}, unbound ${bound[u]:-yes}, dnsmasq ${bound[m]:-yes}"
	cg_rm
	CG_DIR=
}

start_xb "$XB_TMP/xborder.conf"
# The device: its WireGuard on CPU 1 with dnsperf.
xb_bg c taskset -c 1 "$XB_BIN/xborder-wg" -f "$DIF"
DEVPID=$XB_LAST_PID
xb_wait 3000 test -S "/var/run/wireguard/$DIF.sock" || die "the device's WireGuard did not start"
nq c wg set "$DIF" private-key "$XB_TMP/dev.key" peer "$(echo "$kg" | wg pubkey)" \
	endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24
nq c ip addr add 198.51.100.10/24 dev "$DIF"
nq c ip link set "$DIF" up
xb_wait 5000 nq c ping -c 1 -W 1 198.51.100.1 || die "the device's tunnel does not come up"
answers 198.51.100.1
xb_bg d taskset -c 0 unbound -c "$XB_TMP/unbound.conf"; UBPID=$XB_LAST_PID
xb_bg d taskset -c 0 dnsmasq --no-daemon --conf-file="$XB_TMP/dnsmasq.conf" --no-resolv --no-hosts \
	--user=root --pid-file= --listen-address=198.51.100.3 --bind-interfaces --port=53 \
	--local-ttl=300 --cache-size=0; DMPID=$XB_LAST_PID
answers 198.51.100.2
answers 198.51.100.3

part_qps() {
	say "1 000 names, A records; servers on CPU 0, dnsperf on CPU 1; median of $RUNS runs of ${SECONDS_PER_RUN} s"
	# Interleaved runs, the median of each: a shared machine's noise hits all three.
	: >"$XB_TMP/x" >"$XB_TMP/u" >"$XB_TMP/m" >"$XB_TMP/cpu0"
	local q
	for _ in $(seq "$RUNS"); do
		for srv in x:198.51.100.1 u:198.51.100.2 m:198.51.100.3; do
			cpu0_mark
			q=$(max_qps "${srv#*:}" "$XB_TMP/q.bench")
			echo "$q" >>"$XB_TMP/${srv%%:*}"
			echo "${srv%%:*} $(cpu0_split "$q")" >>"$XB_TMP/cpu0"
		done
	done
	xq=$(xb_median <"$XB_TMP/x") uq=$(xb_median <"$XB_TMP/u") dq=$(xb_median <"$XB_TMP/m")
	say "  runs (QPS): xborder $(paste -sd' ' "$XB_TMP/x"); unbound $(paste -sd' ' "$XB_TMP/u"); dnsmasq $(paste -sd' ' "$XB_TMP/m")"
	say "$(printf '  %-10s %8s QPS' xborder "$xq")   xborder / unbound = $(ratio "$xq" "$uq") (goal >= 1.5)"
	say "$(printf '  %-10s %8s QPS' unbound "$uq")"
	say "$(printf '  %-10s %8s QPS' dnsmasq "$dq")   xborder / dnsmasq = $(ratio "$xq" "$dq")"
	cpu0_report
}
# Where CPU 0's time per query goes in the QPS runs: the server's serving
# thread(s) against xborderd's other threads (its WireGuard data thread,
# which carries every server's queries; its UAPI thread is idle). The
# through-the-tunnel ratio is (w + s_unbound) / (w + s_xborder): with w
# the WireGuard thread's microseconds a query, it cannot pass
# (w + s_unbound) / w however cheap our own DNS gets.
task_ticks() {	# task_ticks PID -> "tid ticks voluntary_switches" per thread
	local t
	for t in /proc/"$1"/task/*; do
		echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null) $(awk '/^voluntary/ { print $2 }' "$t/status" 2>/dev/null)"
	done
}
cpu_busy() { awk '/^cpu[01] / { printf "%s %d %d ", $1, $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
cpu0_mark() {
	cpu_busy >"$XB_TMP/c0"
	task_ticks "$DEVPID" >"$XB_TMP/t.dev0"
	task_ticks "$XBPID" >"$XB_TMP/t.xb0"
	task_ticks "$UBPID" >"$XB_TMP/t.ub0"
	task_ticks "$DMPID" >"$XB_TMP/t.dm0"
}
# cpu0_split SERVER_QPS -> "server_us wg_us wg_wakeups device_wg_us cpu0_busy% cpu1_busy%"
# for the run just done (busy: all work on that core, other jobs' included).
cpu0_split() {
	local dv
	dv=$(paste -d' ' <(task_ticks "$DEVPID") "$XB_TMP/t.dev0" | awk '{ d += $2 - $5 } END { print d }')
	read -r _ b0 t0 _ b1 t1 <"$XB_TMP/c0"
	read -r _ c0 u0 _ c1 u1 <<<"$(cpu_busy)"
	task_ticks "$XBPID" >"$XB_TMP/t.xb1"
	task_ticks "$UBPID" >"$XB_TMP/t.ub1"
	task_ticks "$DMPID" >"$XB_TMP/t.dm1"
	awk -v dv="$dv" -v b0=$((c0 - b0)) -v tt0=$((u0 - t0)) -v b1=$((c1 - b1)) -v tt1=$((u1 - t1)) \
		-v main="$XBPID" -v q="$1" -v s="$SECONDS_PER_RUN" -v hz="$(getconf CLK_TCK)" -v srv="$srv" '
		FILENAME ~ /0$/ { t0[FILENAME "/" $1] = $2; v0[FILENAME "/" $1] = $3; next }
		{ f = FILENAME; sub(/1$/, "0", f); d = $2 - t0[f "/" $1] }
		FILENAME ~ /xb1$/ { if ($1 == main) xmain += d; else { xwg += d; xv += $3 - v0[f "/" $1] } }
		FILENAME ~ /ub1$/ { ub += d } FILENAME ~ /dm1$/ { dm += d }
		END {
			n = q * s; if (n <= 0) { print "- -"; exit }
			own = (srv ~ /^x/ ? xmain : srv ~ /^u/ ? ub : dm)
			printf "%.2f %.2f %.3f %.2f %.0f %.0f\n", own / hz * 1e6 / n, xwg / hz * 1e6 / n, xv / n,
				dv / hz * 1e6 / n, 100 * b0 / tt0, 100 * b1 / tt1 }' \
		"$XB_TMP/t.xb0" "$XB_TMP/t.ub0" "$XB_TMP/t.dm0" "$XB_TMP/t.xb1" "$XB_TMP/t.ub1" "$XB_TMP/t.dm1"
}
cpu0_report() {
	local xs xw us uw
	xs=$(awk '$1 == "x" { print $2 }' "$XB_TMP/cpu0" | xb_median) xw=$(awk '$1 == "x" { print $3 }' "$XB_TMP/cpu0" | xb_median)
	us=$(awk '$1 == "u" { print $2 }' "$XB_TMP/cpu0" | xb_median) uw=$(awk '$1 == "u" { print $3 }' "$XB_TMP/cpu0" | xb_median)
	say "  CPU 0 a query in these runs (medians): xborder: its DNS thread $xs us + its WireGuard thread $xw us" \
		"($(awk '$1 == "x" { print $4 }' "$XB_TMP/cpu0" | xb_median) WireGuard wakeups a query);" \
		"unbound: $us us + xborderd's WireGuard thread $uw us ($(awk '$1 == "u" { print $4 }' "$XB_TMP/cpu0" | xb_median))"
	say "  the device's WireGuard (CPU 1) $(awk '$1 == "x" { print $5 }' "$XB_TMP/cpu0" | xb_median) us a query;" \
		"cores busy (any work, other jobs' too) CPU 0 / CPU 1: xborder runs" \
		"$(awk '$1 == "x" { printf "%s%s/%s %%", (n++ ? ", " : ""), $6, $7 }' "$XB_TMP/cpu0")," \
		"unbound runs $(awk '$1 == "u" { printf "%s%s/%s %%", (n++ ? ", " : ""), $6, $7 }' "$XB_TMP/cpu0")"
	say "  bound of the ratio through the tunnel with our DNS at 0 us: ($us + $uw) / $xw =" \
		"$(awk -v a="$us" -v b="$uw" -v w="$xw" 'BEGIN { if (w > 0) printf "%.2f", (a + b) / w; else print "-" }')"
}
# What a query costs the server: its CPU time (utime + stime) over a run at
# a fixed rate both can sustain — its capacity on one core is the inverse.
# On two cores dnsperf may be the bottleneck of the QPS runs above; this is not.
# Also "US WAKEUPS": the thread's voluntary context switches (it slept
# and was woken) per query — the cost of a busy server is mostly those.
cpu_us() {	# cpu_us SERVER PID — CPU microseconds per answered query at QPS_CPU
	local t0 t1 v0 v1 n st=/proc/$2/task/$2
	[ -n "$PERF" ] && [ "$2" = "$XBPID" ] &&
		perf record -q -g $([ "${PERF_ALL:-0}" = 1 ] && echo -p || echo -t) "$XBPID" -o "$PERF" -- sleep "$SECONDS_PER_RUN" >/dev/null 2>&1 &
	t0=$(awk '{ print $14 + $15 }' "$st/stat") v0=$(awk '/^voluntary/ { print $2 }' "$st/status")
	n=$(nq c taskset -c 1 dnsperf -s "$1" -a 198.51.100.10 -d "$XB_TMP/q.bench" -l "$SECONDS_PER_RUN" \
		-Q "$QPS_CPU" -c 4 2>&1 | awk '/Queries completed/ { print $3 }')
	t1=$(awk '{ print $14 + $15 }' "$st/stat") v1=$(awk '/^voluntary/ { print $2 }' "$st/status")
	wait
	awk -v d=$((t1 - t0)) -v v=$((v1 - v0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
		'BEGIN { if (n > 0) printf "%.2f %.2f", d / hz * 1e6 / n, v / n; else print "- -" }'
}
part_cpu() {
	local xw uw dw
	read -r xc xw <<<"$(cpu_us 198.51.100.1 "$XBPID")"
	read -r uc uw <<<"$(cpu_us 198.51.100.2 "$UBPID")"
	read -r dc dw <<<"$(cpu_us 198.51.100.3 "$DMPID")"
	say "CPU per query at $QPS_CPU QPS: xborder $xc us, unbound $uc us, dnsmasq $dc us;" \
		"capacity xborder / unbound = $(ratio "$uc" "$xc") (goal >= 1.5), xborder / dnsmasq = $(ratio "$dc" "$xc")"
	say "  wakeups per query: xborder $xw, unbound $uw, dnsmasq $dw"
}
part_latency() {
	read -r xp50 xp99 <<<"$(latency 198.51.100.1 "$XB_TMP/q.bench")"
	read -r up50 up99 <<<"$(latency 198.51.100.2 "$XB_TMP/q.bench")"
	read -r dp50 dp99 <<<"$(latency 198.51.100.3 "$XB_TMP/q.bench")"
	say "latency at $QPS_FIXED QPS, p50 / p99 ms: xborder $xp50 / $xp99, unbound $up50 / $up99, dnsmasq $dp50 / $dp99"
}
part_paths() {
	read -r pp50 pp99 <<<"$(latency 198.51.100.1 "$XB_TMP/q.plain")"
	read -r lp50 lp99 <<<"$(latency 198.51.100.1 "$XB_TMP/q.learn")"
	extra=$(awk -v a="$lp99" -v b="$pp99" 'BEGIN { printf "%.3f", a - b }')
	st=$(nq d "$XB_BIN/xborderctl" -s "$CTL" -j dns)
	puts=$(jq .clients.set_puts <<<"$st") pus=$(jq .clients.set_update_p99_us_below <<<"$st")
	say "opening paths: an answer that puts its address into a set waits for the netlink batch:" \
		"p99 < $pus us over $puts updates = $(ratio "$pus" 1000) of the 1 ms goal"
	say "  dnsperf p99 at $QPS_FIXED QPS: $lp99 ms for names whose answers go into a set, $pp99 ms for names" \
		"whose do not ($extra ms; noise of a shared machine included); set elements after the run:" \
		"$(nq d nft list set inet xborder r_learn_dns4 | grep -o '203\.0\.113\.[0-9]*' | sort -u | wc -l)"
}
# Last: it reloads xborderd with the list.
part_list() {
	if [ -r "$LIST" ]; then
		policy "$XB_TMP/list.conf" "    { name = \"mainland\"; lists = [ \"$LIST\" ]; action = \"forward\"; servers = [ \"192.0.2.53\" ]; }"
		t0=$(date +%s%N)
		"$XB_BIN/xborderd" --check -c "$XB_TMP/list.conf" >/dev/null || die "the list policy does not check"
		ms=$(( ($(date +%s%N) - t0) / 1000000 ))
		cp "$XB_TMP/list.conf" "$XB_TMP/xborder.conf"
		xrss=$(rss_kb "$XBPID")
		t0=$(date +%s%N)
		kill -HUP "$XBPID"
		xb_wait 30000 grep -q "reloaded: " "$XBLOG" || die "the reload with the list failed: $(tail -3 "$XBLOG")"
		rms=$(( ($(date +%s%N) - t0) / 1000000 ))
		answers 198.51.100.1
		lrss=$(rss_kb "$XBPID")
		lq=$(max_qps 198.51.100.1 "$XB_TMP/q.bench")
		read -r lc _ <<<"$(cpu_us 198.51.100.1 "$XBPID")"
		say "with the $(grep -c '^server=' "$LIST")-name list: --check $ms ms, reload ${rms} ms; xborderd RSS" \
			"$((lrss / 1024)) MB (before $((xrss / 1024)) MB; goal <= 64 MB); $lq QPS, $lc us CPU per query" \
			"${xq:+(without the list: $xq QPS, $xc us)}"
	else
		say "with the mainland list: skipped, $LIST is not there"
	fi
}

for part in $PARTS; do
	case $part in
	qps | cpu | latency | budget | paths | list) "part_$part" ;;
	*) die "PARTS: unknown part \"$part\" (qps cpu latency budget paths list)" ;;
	esac
done
stop_xb
kill "$UBPID" "$DMPID" 2>/dev/null
xb_end
