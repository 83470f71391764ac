#!/usr/bin/env bash
# sudo make demo — the whole gateway in network namespaces, told as a story.
#
#   alice (laptop, managed) ──┐ 192.0.2.1/30                   ┌── wan1 ── cmi: WireGuard partner ──┐
#     198.51.100.10            ├── WG ── hk: xborderd ──────────┤   (xb-impair)                      ├── cn: erp.acme.cn 203.0.113.10 (web)
#   bob (phone, no agent) ────┘ 192.0.2.5/30   DNS 198.51.100.1 └── wan2 ── ctg: GRE partner ───────┘       resolver 203.0.113.53
#     198.51.100.11
#
# Policy: deploy/examples/demo.conf (two devices, tunnels cmi and ctg, the
# posture profile "managed", the rule erp: *.acme.cn via cmi, else ctg).
#
#   deploy/demo/demo.sh            the story, pausing between steps; the topology stays up
#   deploy/demo/demo.sh --check    the same story without pauses, with assertions (make test)
#   deploy/demo/demo.sh --clean    remove everything (make demo-clean)
#
# Only documentation addresses; namespaces are named xbdemo-*.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${XB_BUILD:-$ROOT/build}/bin
RUN=/run/xborder-demo
POLICY=$ROOT/deploy/examples/demo.conf
KEYS=$ROOT/deploy/demo/keys
NSS="alice bob carol hk wan1 wan2 cmi ctg cn"
CHECK=0 FAILED=0 PASSED=0

case ${1:-} in
--check) CHECK=1 ;;
--clean) ;;
"") ;;
*) echo "usage: $0 [--check | --clean]"; exit 2 ;;
esac

bold() { [ -t 1 ] && printf '\033[1m%s\033[0m\n' "$*" || printf '%s\n' "$*"; }
step() { echo; bold "== $*"; }
say() { printf '   %s\n' "$*"; }
# show NS CMD... — print the command as an operator would type it, then its output.
show() {
	local ns=$1; shift
	printf '   [%s]$ %s\n' "$ns" "$*"
	ip netns exec "xbdemo-$ns" "$@" 2>&1 | sed 's/^/     /'
}
nq() { local ns=$1; shift; ip netns exec "xbdemo-$ns" "$@"; }
pause() {
	[ "$CHECK" = 1 ] && return
	[ -t 0 ] || return
	printf '   (press Enter to go on) '
	read -r _
}
# expect WHAT CMD... — in --check mode an assertion, else a quiet note.
expect() {
	local what=$1; shift
	if "$@" >/dev/null 2>&1; then
		PASSED=$((PASSED + 1))
		[ "$CHECK" = 1 ] && echo "ok - demo/$what"
		return 0
	fi
	FAILED=$((FAILED + 1))
	echo "not ok - demo/$what"
	return 1
}
wait_for() {	# wait_for MS CMD... — poll every 50 ms
	local end=$(( $(date +%s%3N) + $1 )); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%3N)" -ge "$end" ] && return 1
		sleep 0.05
	done
}

clean() {
	local ns pids
	for ns in $NSS; do
		pids=$(ip netns pids "xbdemo-$ns" 2>/dev/null)
		[ -n "$pids" ] && kill $pids 2>/dev/null
	done
	sleep 0.5
	for ns in $NSS; do
		pids=$(ip netns pids "xbdemo-$ns" 2>/dev/null)
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null
		ip netns del "xbdemo-$ns" 2>/dev/null
	done
	rm -f /var/run/wireguard/xb-dev.sock /var/run/wireguard/xb-cmi.sock \
		/var/run/wireguard/alice-wg.sock /var/run/wireguard/bob-wg.sock \
		/var/run/wireguard/carol-wg.sock /var/run/wireguard/cmi-hk.sock
	rm -rf "$RUN"
}

[ "$(id -u)" = 0 ] || { echo "the demo needs root (network namespaces): sudo make demo"; exit 1; }
clean
[ "${1:-}" = --clean ] && { echo "demo removed"; exit 0; }
for t in dnsmasq dig curl busybox wg jq; do
	command -v "$t" >/dev/null || { echo "demo: $t is missing (run: sudo make deps)"; exit 1; }
done
[ -x "$BIN/xborderd" ] || { echo "demo: build first (make)"; exit 1; }
chmod 600 "$KEYS"/* "$ROOT"/deploy/examples/keys/demo-*.key
mkdir -p "$RUN/alice" "$RUN/log"
[ "$CHECK" = 1 ] && trap clean EXIT

# ---------------------------------------------------------------- topology
veth() { ip -n "xbdemo-$1" link add "$2" type veth peer name "$4" netns "xbdemo-$3" &&
	 ip -n "xbdemo-$1" link set "$2" up && ip -n "xbdemo-$3" link set "$4" up; }
addr() { ip -n "xbdemo-$1" addr add "$3" dev "$2"; }
router() { nq "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.accept_local=1; }
bg() {	# bg NS LOGNAME CMD... — a background process in NS
	local ns=$1 log=$RUN/log/$2.log; shift 2
	ip netns exec "xbdemo-$ns" "$@" >"$log" 2>&1 &
}
impair() { "$BIN/xb-impair" ctl "$RUN/impair-$1.sock" "${@:2}"; }
impair_path() {	# impair_path NS IF_A IF_B — forward between them through xb-impair
	local ns=$1
	router "$ns"
	bg "$ns" "impair-$ns" "$BIN/xb-impair" -a imp-ab -b imp-ba -s "$RUN/impair-$ns.sock"
	wait_for 3000 test -S "$RUN/impair-$ns.sock" || { echo "xb-impair did not start in $ns"; exit 1; }
	nq "$ns" ip rule add iif "$2" lookup 100 pref 100
	nq "$ns" ip rule add iif "$3" lookup 101 pref 101
	nq "$ns" ip route add default dev imp-ab table 100
	nq "$ns" ip route add default dev imp-ba table 101
	nq "$ns" sysctl -qw net.ipv4.conf.imp-ab.rp_filter=0 net.ipv4.conf.imp-ba.rp_filter=0
}

step "Building the world: devices, the Hong Kong gateway, two partners, the mainland"
for ns in $NSS; do ip netns add "xbdemo-$ns" && nq "$ns" ip link set lo up; done
veth alice eth0 hk ea;  addr alice eth0 192.0.2.1/30; addr hk ea 192.0.2.2/30
veth bob eth0 hk eb;    addr bob eth0 192.0.2.5/30;   addr hk eb 192.0.2.6/30
veth carol eth0 hk ec;  addr carol eth0 192.0.2.33/30; addr hk ec 192.0.2.34/30
veth hk ew1 wan1 w-hk;  addr hk ew1 192.0.2.9/30;     addr wan1 w-hk 192.0.2.10/30
veth wan1 w-cn cmi eh;  addr wan1 w-cn 192.0.2.13/30; addr cmi eh 192.0.2.14/30
veth hk ew2 wan2 w-hk;  addr hk ew2 192.0.2.17/30;    addr wan2 w-hk 192.0.2.18/30
veth wan2 w-cn ctg eh;  addr wan2 w-cn 192.0.2.21/30; addr ctg eh 192.0.2.22/30
veth cmi ec cn e1;      addr cmi ec 203.0.113.65/30;  addr cn e1 203.0.113.66/30
veth ctg ec cn e2;      addr ctg ec 203.0.113.69/30;  addr cn e2 203.0.113.70/30
addr cn lo 203.0.113.10/32; addr cn lo 203.0.113.53/32
nq hk ip route add 192.0.2.12/30 via 192.0.2.10
nq hk ip route add 192.0.2.20/30 via 192.0.2.18
nq cmi ip route add 192.0.2.8/30 via 192.0.2.13
nq ctg ip route add 192.0.2.16/30 via 192.0.2.21
nq cmi ip route add 203.0.113.0/24 via 203.0.113.66
nq ctg ip route add 203.0.113.0/24 via 203.0.113.70
for p in cmi ctg; do router "$p"; done
# The mainland answers each partner's tunnel address back through it.
nq cn ip route add 192.0.2.24/30 via 203.0.113.65
nq cn ip route add 192.0.2.28/30 via 203.0.113.69
impair_path wan1 w-hk w-cn
impair_path wan2 w-hk w-cn
impair wan1 set ab delay=35 jitter=3 loss=0.5 >/dev/null; impair wan1 set ba delay=35 jitter=3 loss=0.5 >/dev/null
impair wan2 set ab delay=60 jitter=5 loss=1 >/dev/null; impair wan2 set ba delay=60 jitter=5 loss=1 >/dev/null
say "alice and bob are devices; hk is the gateway; wan1/wan2 carry the cross-border links"
say "(xb-impair: cmi 35 ms ± 3, 0.5 % loss; ctg 60 ms ± 5, 1 % loss); cn is the mainland."

# The mainland: a resolver (every *.acme.cn name is the origin) and a web
# origin.
bg cn dnsmasq dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root --pid-file= \
	--listen-address=203.0.113.53 --bind-interfaces --port=53 --local-ttl=300 \
	--address=/acme.cn/203.0.113.10 --address=/portal.acme.cn/203.0.113.99
mkdir -p "$RUN/www"
echo "<h1>ACME ERP (Shanghai)</h1>" >"$RUN/www/index.html"
head -c 40000000 /dev/zero >"$RUN/www/report.bin"
bg cn httpd busybox httpd -f -p 203.0.113.10:80 -h "$RUN/www"

# The partners: cmi runs WireGuard (xborder-wg), ctg GRE (xb-gre).
bg cmi cmi-wg "$BIN/xborder-wg" -f cmi-hk
wait_for 3000 test -S /var/run/wireguard/cmi-hk.sock || { echo "cmi's WireGuard did not start"; exit 1; }
nq cmi wg set cmi-hk private-key "$KEYS/cmi-partner.key" listen-port 51820 \
	peer "$(wg pubkey <"$ROOT/deploy/examples/keys/demo-cmi.key")" allowed-ips 192.0.2.25/32
nq cmi ip addr add 192.0.2.26/30 dev cmi-hk; nq cmi ip link set cmi-hk up
bg ctg ctg-gre "$BIN/xb-gre" --local 192.0.2.22 --remote 192.0.2.17 --key 42 ctg-hk
wait_for 3000 nq ctg ip link show ctg-hk || { echo "ctg's GRE did not start"; exit 1; }
nq ctg ip addr add 192.0.2.30/30 dev ctg-hk; nq ctg ip link set ctg-hk up

# ---------------------------------------------------------------- the gateway
step "Starting xborderd on hk with deploy/examples/demo.conf"
bg hk xborderd "$BIN/xborderd" -f -c "$POLICY"
if ! wait_for 10000 grep -q "gateway up" "$RUN/log/xborderd.log"; then
	echo "xborderd did not come up:"; tail -20 "$RUN/log/xborderd.log"; exit 1
fi
expect "xborderd is up" grep -q "gateway up" "$RUN/log/xborderd.log"
CTL="$BIN/xborderctl -s $RUN/control.sock"
show hk $CTL status
pause

# The devices: WireGuard clients whose DNS is the gateway.
device() {	# device NS KEY ADDR GWADDR
	bg "$1" "$1-wg" "$BIN/xborder-wg" -f "$1-wg"
	wait_for 3000 test -S "/var/run/wireguard/$1-wg.sock" || { echo "$1's WireGuard did not start"; exit 1; }
	nq "$1" wg set "$1-wg" private-key "$KEYS/$2.key" \
		peer "$(wg pubkey <"$ROOT/deploy/examples/keys/demo-gateway.key")" endpoint "$4:51820" \
		allowed-ips 198.51.100.0/24,203.0.113.0/24 persistent-keepalive 25
	nq "$1" ip addr add "$3/24" dev "$1-wg"; nq "$1" ip link set "$1-wg" up
	nq "$1" ip route add 203.0.113.0/24 dev "$1-wg"
}
device alice laptop 198.51.100.10 192.0.2.2
device bob phone 198.51.100.11 192.0.2.6
wait_for 5000 nq alice ping -c 1 -W 1 198.51.100.1
wait_for 5000 nq bob ping -c 1 -W 1 198.51.100.1

step "Devices connect over WireGuard; the gateway knows them by their keys"
show hk wg show xb-dev
pause

# ---------------------------------------------------------------- enrolment
step "Enrolling a third device: carol's tablet, with one command"
say "xborderctl makes the key pair, the daemon adds the device to its enrolment file and reloads;"
say "the wg-quick file (and its QR code, for a phone's WireGuard app) is all the tablet needs:"
printf '   [hk]$ xborderctl device add carol-tablet --group finance --allowed-ips pool --qr\n'
# The output is the file, then (--qr) its QR code: the tablet's file is the
# part before the code's block characters.
(umask 077; nq hk $CTL device add carol-tablet --group finance --allowed-ips pool \
	$([ "$CHECK" = 1 ] && echo --no-qr || echo --qr) >"$RUN/carol.out" &&
	sed '/[█▀▄]/,$d' "$RUN/carol.out" >"$RUN/carol.conf")
sed 's/^PrivateKey = .*/PrivateKey = (secret: shown once, never stored)/; s/^/     /' "$RUN/carol.out"
expect "device add printed carol's wg-quick file" grep -q '^PrivateKey = ' "$RUN/carol.conf"
bg carol carol-wg "$BIN/xborder-wg" -f -c "$RUN/carol.conf" carol-wg
wait_for 3000 test -S /var/run/wireguard/carol-wg.sock || { echo "carol's WireGuard did not start"; exit 1; }
nq carol ip addr add "$(sed -n 's/^Address = \([0-9.]*\).*/\1/p' "$RUN/carol.conf")/32" dev carol-wg
nq carol ip link set carol-wg up; nq carol ip route add 198.51.100.0/24 dev carol-wg
expect "carol's tablet, from that file alone, reaches the gateway" \
	wait_for 5000 nq carol ping -c 1 -W 1 198.51.100.1
show hk $CTL device show carol-tablet
pause

# ---------------------------------------------------------------- posture
step "alice's laptop runs the posture agent; bob's phone has none"
touch "$RUN/alice/managed"
cat >"$RUN/alice/agent.conf" <<EOF
gateway = "198.51.100.1";
interval = 60;
check = 1;
state_dir = "$RUN/alice/state";
files = [ "$RUN/alice/managed" ];
EOF
bg alice agent "$BIN/xborder-posture" -f -c "$RUN/alice/agent.conf"
wait_for 10000 sh -c "$CTL -j devices | grep -q ." 2>/dev/null
show hk $CTL devices
say "The profile \"managed\" wants a fresh report with the marker file present:"
show hk $CTL posture alice-laptop
pause

# ---------------------------------------------------------------- DNS
step "DNS: a host override, and a name resolved in the mainland through the tunnel"
show alice dig +short @198.51.100.1 portal.acme.cn
expect "override: portal.acme.cn answers the configured address" \
	sh -c "ip netns exec xbdemo-alice dig +short +time=2 +tries=1 @198.51.100.1 portal.acme.cn | grep -qx 203.0.113.10"
show alice dig +short @198.51.100.1 erp.acme.cn
expect "tunnel: erp.acme.cn resolved by the mainland resolver" \
	sh -c "ip netns exec xbdemo-alice dig +short +time=3 +tries=1 @198.51.100.1 erp.acme.cn | grep -qx 203.0.113.10"
say "The answer's address went into the rule's set before the answer left:"
show hk nft list set inet xborder r_erp_dns4
say "bob may not reach the mainland (no posture), so his resolver says no:"
show bob dig @198.51.100.1 erp.acme.cn +noall +comments
expect "bob gets REFUSED for a mainland name" \
	sh -c "ip netns exec xbdemo-bob dig +time=3 +tries=1 @198.51.100.1 erp.acme.cn | grep -q 'status: REFUSED'"
pause

# ---------------------------------------------------------------- access
step "alice fetches the ERP page through the tunnel; bob is refused"
show alice curl -s --max-time 5 http://erp.acme.cn/ --resolve erp.acme.cn:80:203.0.113.10
expect "alice reaches the origin" \
	sh -c "ip netns exec xbdemo-alice curl -s --max-time 5 http://203.0.113.10/ | grep -q ACME"
show bob curl -s --max-time 3 -o /dev/null -w '%{http_code}\n' http://203.0.113.10/
expect "bob is refused" \
	sh -c "! ip netns exec xbdemo-bob curl -s --max-time 3 http://203.0.113.10/"
say "Why is bob refused? explain walks the rules as the table does and names the check:"
show hk $CTL explain bob-phone 203.0.113.10 tcp/80
expect "explain: bob's refusal is erp's posture, no report seen" \
	bash -o pipefail -c "ip netns exec xbdemo-hk $CTL -j explain bob-phone 203.0.113.10 tcp/80 | jq -e '.verdict == \"default_deny\" and .rules[0].result == \"posture\" and ([.posture[0].checks[] | select(.outcome != \"pass\")] | length > 0)'"
say "The gateway logged his refused packets (rate-limited), with the checks he fails:"
show hk $CTL drops bob-phone
expect "drops: bob's refused packet to the origin, the default deny, erp's failing checks" \
	bash -o pipefail -c "ip netns exec xbdemo-hk $CTL -j drops bob-phone | jq -e '[.drops[] | select(.destination == \"203.0.113.10\" and .port == 80 and .rule == null and .posture[0].rule == \"erp\" and (.posture[0].failing | length > 0))] | length > 0'"
say "and for alice, the rule, the name DNS learned the address for, and the path:"
show hk $CTL explain alice-laptop 203.0.113.10 tcp/80
expect "explain: alice is allowed by erp through a learned address" \
	bash -o pipefail -c "ip netns exec xbdemo-hk $CTL -j explain alice-laptop 203.0.113.10 tcp/80 | jq -e '.verdict == \"allow\" and .rule == \"erp\" and .dns[0].set == \"r_erp_dns4\" and .path.table == 51803 and (.path.active | type == \"string\")'"
say "The rule's counters, and the default deny:"
show hk $CTL rules
show hk sh -c "nft list table inet xborder | grep -E 'rule erp|default deny'"
pause

# ---------------------------------------------------------------- posture goes bad
step "alice's laptop falls out of compliance during a download"
say "alice downloads a 40 MB report at 2 MB/s..."
# curl gives up when less than 1 kB/s arrives for 3 s: a stalled download ends.
bg alice download curl -s --limit-rate 2M --speed-limit 1000 --speed-time 3 -o /dev/null \
	-w '%{size_download}' http://203.0.113.10/report.bin
DL=$!
sleep 3
say "...and the company marker disappears from her laptop."
T0=$(date +%s%3N)
rm -f "$RUN/alice/managed"
if wait_for 15000 sh -c "! kill -0 $DL 2>/dev/null || ! ip netns exec xbdemo-hk nft list set inet xborder r_erp_dev4 | grep -q 198.51.100.10"; then
	say "the gateway took alice out of the rule's devices $(( $(date +%s%3N) - T0 )) ms after the file went"
fi
expect "the open download is cut (it stalls, and curl gives up)" wait_for 15000 sh -c "! kill -0 $DL 2>/dev/null"
say "downloaded before the cut: $(cat "$RUN/log/download.log" 2>/dev/null || echo '?') bytes of 40000000"
show hk $CTL posture alice-laptop
expect "a new connection is refused" sh -c "! ip netns exec xbdemo-alice curl -s --max-time 2 http://203.0.113.10/"
touch "$RUN/alice/managed"
expect "compliant again after the next report" \
	wait_for 15000 sh -c "ip netns exec xbdemo-alice curl -s --max-time 1 http://203.0.113.10/ | grep -q ACME"
say "The marker is back: alice is compliant again and reaches the origin."
pause

# ---------------------------------------------------------------- failover
step "The cmi link goes dark; traffic fails over to ctg"
show hk $CTL tunnels
# The erp rule's path ("cmi,ctg") has a table of its own, not cmi's: ask
# the daemon which one.
ERPT=$(nq hk $CTL -j rules | jq -r '.[] | select(.name == "erp") | .table')
say "the erp rule's path uses table $ERPT:"
show hk ip route show table "$ERPT"
T0=$(date +%s%3N)
impair wan1 set ab loss=100 >/dev/null; impair wan1 set ba loss=100 >/dev/null
say "wan1 now drops everything (blackhole). At once, alice asks for a name nobody asked before:"
NEWIP=$(nq alice dig +short +time=3 +tries=1 @198.51.100.1 intranet.acme.cn)
say "intranet.acme.cn: ${NEWIP:-no answer} after $(( $(date +%s%3N) - T0 )) ms (the mainland rule resolves through the erp path's tunnels: cmi, and ctg when cmi does not answer)"
if wait_for 15000 sh -c "ip -n xbdemo-hk route show table $ERPT | grep -q '^default dev xb-ctg'"; then
	say "the erp path's route moved to xb-ctg after $(( $(date +%s%3N) - T0 )) ms"
fi
expect "the erp path now leaves by ctg" sh -c "ip -n xbdemo-hk route show table $ERPT | grep -q '^default dev xb-ctg'"
expect "xborderctl rules: erp is active on ctg" \
	sh -c "ip netns exec xbdemo-hk $CTL -j rules | jq -e '.[] | select(.name == \"erp\") | .active == \"ctg\"'"
expect "alice still reaches the origin, through ctg" \
	wait_for 5000 sh -c "ip netns exec xbdemo-alice curl -s --max-time 2 http://203.0.113.10/ | grep -q ACME"
expect "a name nobody asked before (intranet.acme.cn) resolved right after the blackhole" test "$NEWIP" = 203.0.113.10
show alice curl -s --max-time 5 http://intranet.acme.cn/ --resolve "intranet.acme.cn:80:${NEWIP:-0.0.0.0}"
expect "alice loads intranet.acme.cn by its name, through ctg" \
	sh -c "ip netns exec xbdemo-alice curl -s --max-time 5 --resolve intranet.acme.cn:80:${NEWIP:-0.0.0.0} http://intranet.acme.cn/ | grep -q ACME"
show hk $CTL tunnels
show hk ip route show table all type unicast
impair wan1 set ab loss=0.5 >/dev/null; impair wan1 set ba loss=0.5 >/dev/null
say "wan1 is back; cmi comes up again after its hold-down and takes the path back."
pause

# ---------------------------------------------------------------- the end
step "What to try next"
cat <<EOF
   The topology stays up. Each namespace is xbdemo-NAME; for example:
     sudo ip netns exec xbdemo-hk $BIN/xborderctl -s $RUN/control.sock tunnels
     sudo ip netns exec xbdemo-hk $BIN/xborderctl -s $RUN/control.sock dns
     sudo ip netns exec xbdemo-hk wg show
     sudo ip netns exec xbdemo-hk nft list table inet xborder
     sudo ip netns exec xbdemo-alice dig @198.51.100.1 erp.acme.cn
     sudo ip netns exec xbdemo-alice curl http://203.0.113.10/
     sudo $BIN/xb-impair ctl $RUN/impair-wan1.sock set ab loss=100    # break cmi
     tail -f $RUN/dns-queries.log $RUN/log/xborderd.log
   Remove it all with: sudo make demo-clean
EOF
if [ "$CHECK" = 1 ]; then
	echo "$PASSED passed, $FAILED failed"
	exit $(( FAILED > 0 ))
fi
