#!/usr/bin/env bash
# xborder-posture against xb-gwfake, a fake gateway on 127.0.0.1:8443 in a
# private network namespace (unshare -n; nothing reaches the host's).
#
#   agent ── HTTP ──▶ xb-gwfake 127.0.0.1:8443   (checks nonce and seq, keeps each report)
#
#   --once       exit 0, the report stored with the fields and types of
#                docs/posture.md; a second run has a larger seq
#   firewall     false on the empty ruleset, true with an input chain of
#                policy drop (read through libnftables)
#   refusals     409 and 401: exit 1, the gateway's status and message on stderr
#   bad answers  not HTTP: exit 1 with the reason; nothing listening: refused
#                at once; SYNs dropped: fails after its 2 s timeout, < 6 s
#   daemon       -f: reports at start, and again within seconds when a
#                watched attribute changes (interval 60 s)
#   --print      the report as JSON, nothing sent; bad config: FILE:LINE
#   man page     deploy/man/xborder-posture.8 formats without warnings
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
XB_BUILD=${XB_BUILD:-$root/build}
agent=$XB_BUILD/bin/xborder-posture
fake=$XB_BUILD/bin/xb-gwfake

if [ -z "${XB_AGENT_NETNS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "needs root for a private network namespace"
		exit 77
	fi
	XB_AGENT_NETNS=1 exec unshare -n bash "$0" "$@"
fi

failed=0
ok() { echo "ok - agent/$1"; }
fail() { echo "not ok - agent/$1${2:+: $2}"; failed=$((failed + 1)); }
skip() { echo "skip - agent/$1: $2"; }

for b in "$agent" "$fake"; do
	[ -x "$b" ] || { fail "binaries" "$b is missing (run make)"; exit 1; }
done
command -v jq >/dev/null || { echo "jq is not installed"; exit 77; }
ip link set lo up

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# serve DIR ARGS... — xb-gwfake on 127.0.0.1:8443 keeping reports in DIR.
serve() {
	local dir=$1; shift
	mkdir -p "$dir"
	"$fake" "$@" "$dir" 2>>"$tmp/fake.log" &
	fakepid=$!
	pids+=($fakepid)
	for _ in $(seq 50); do [ -e "$dir/ready" ] && return 0; sleep 0.1; done
	fail "xb-gwfake starts" "$(tail -n 3 "$tmp/fake.log")"
	exit 1
}
unserve() { kill "$fakepid"; wait "$fakepid" 2>/dev/null; }

# run ARGS... — the agent; stdout, stderr, status in $tmp/out.{1,2,rc}.
run() {
	"$agent" "$@" >"$tmp/out.1" 2>"$tmp/out.2"
	echo $? >"$tmp/out.rc"
}
rc() { cat "$tmp/out.rc"; }

sleep 60 &
pids+=($!)
printf 'abc' >"$tmp/marker"
printf 'owner = "it"\nmanaged = true\nlevel = 3\n' >"$tmp/attr"
cat >"$tmp/agent.conf" <<EOF
gateway = "127.0.0.1";
port = 8443;
timeout = 2;
interval = 60;
check = 1;
state_dir = "$tmp/state";
processes = [ "sleep", "xb-not-running" ];
files = [ "$tmp/marker", "$tmp/missing" ];
attributes_file = "$tmp/attr";
screen_lock_command = "exit 0";
EOF
conf=$tmp/agent.conf

# --- one report ---------------------------------------------------------------------
serve "$tmp/gw"
run -c "$conf" --once
if [ "$(rc)" = 0 ] && [ -s "$tmp/gw/report-1.json" ]; then
	ok "--once: exit 0, the gateway has the report"
else
	fail "--once: exit 0, the gateway has the report" "status $(rc): $(head -c 300 "$tmp/out.2")"
fi
r1=$tmp/gw/report-1.json
check() {	# check NAME JQ-EXPRESSION — true on the first report
	if jq -e "$2" "$r1" >/dev/null 2>&1; then ok "$1"; else fail "$1" "$(head -c 400 "$r1")"; fi
}
check "report: seq, nonce, time" \
	'(.seq|type=="number" and .>0) and (.nonce|test("^[0-9a-f]{32}$")) and (.time|type=="number")'
check "report: os and agent" \
	'.os.family=="linux" and (.os.kernel|type=="string") and (.os.version|type=="string") and .agent.version=="0.1.0"'
check "report: watched processes that run, nothing else" '.processes==["sleep"]'
check "report: files that exist, with sha256" \
	".files==[{\"path\":\"$tmp/marker\",\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}]"
check "report: attributes keep their types" '.attributes=={"owner":"it","managed":true,"level":3}'
check "report: screen_lock from the command" '.screen_lock==true'
check "report: firewall false on an empty ruleset" '.firewall==false'
check "report: only known keys" \
	'keys - ["seq","nonce","time","os","agent","disk_encryption","firewall","screen_lock","serial","processes","files","attributes"] == []'

# --- seq across runs, firewall ------------------------------------------------------
if command -v nft >/dev/null; then
	nft 'add table inet xbt; add chain inet xbt in { type filter hook input priority 0; policy drop; }; add rule inet xbt in iif lo accept'
fi
run -c "$conf" --once
r2=$tmp/gw/report-2.json
if [ "$(rc)" = 0 ] && [ "$(jq .seq "$r2")" -gt "$(jq .seq "$r1")" ] &&
   [ "$(jq -r .nonce "$r2")" != "$(jq -r .nonce "$r1")" ]; then
	ok "second run: larger seq, fresh nonce"
else
	fail "second run: larger seq, fresh nonce" "status $(rc): $(head -c 300 "$tmp/out.2")"
fi
if ! command -v nft >/dev/null; then
	skip "firewall true with policy drop" "nft is not installed"
elif jq -e '.firewall==true' "$r2" >/dev/null 2>&1; then
	ok "firewall true with an input chain of policy drop"
else
	fail "firewall true with an input chain of policy drop" "$(jq -c .firewall "$r2")"
fi
nft delete table inet xbt 2>/dev/null
# The fake restarts knowing nothing; the stored seq still goes up (state file).
last=$(cat "$tmp/state/seq")
if [ "$last" = "$(jq .seq "$r2")" ]; then ok "seq stored in state_dir"; else fail "seq stored in state_dir" "$last"; fi
unserve

# --- refusals -----------------------------------------------------------------------
serve "$tmp/gw409" -F 409 -e "seq not increasing"
run -c "$conf" --once
if [ "$(rc)" = 1 ] && grep -q 'gateway refused the report (HTTP 409): seq not increasing' "$tmp/out.2"; then
	ok "409: exit 1, status and message"
else
	fail "409: exit 1, status and message" "status $(rc): $(cat "$tmp/out.2")"
fi
unserve
serve "$tmp/gw401" -F 401 -e "stale nonce"
run -c "$conf" --once
if [ "$(rc)" = 1 ] && grep -q 'gateway refused the report (HTTP 401): stale nonce' "$tmp/out.2"; then
	ok "401: exit 1, status and message"
else
	fail "401: exit 1, status and message" "status $(rc): $(cat "$tmp/out.2")"
fi
unserve
serve "$tmp/gwbad" -G
run -c "$conf" --once
if [ "$(rc)" = 1 ] && grep -q 'not an HTTP/1.x status line' "$tmp/out.2"; then
	ok "an answer that is not HTTP: exit 1 with the reason"
else
	fail "an answer that is not HTTP: exit 1 with the reason" "status $(rc): $(cat "$tmp/out.2")"
fi
unserve

# --- unreachable --------------------------------------------------------------------
run -c "$conf" --once
if [ "$(rc)" = 1 ] && grep -q 'Connection refused' "$tmp/out.2"; then
	ok "nothing listening: exit 1, connection refused"
else
	fail "nothing listening: exit 1, connection refused" "status $(rc): $(cat "$tmp/out.2")"
fi
if command -v nft >/dev/null; then
	nft 'add table inet xbt; add chain inet xbt in { type filter hook input priority 0; }; add rule inet xbt in tcp dport 8443 drop'
	start=$(date +%s%N)
	run -c "$conf" --once
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	if [ "$(rc)" = 1 ] && grep -q 'timed out' "$tmp/out.2" && [ "$ms" -ge 1900 ] && [ "$ms" -lt 6000 ]; then
		ok "SYNs dropped: fails after the 2 s timeout (${ms} ms)"
	else
		fail "SYNs dropped: fails after the 2 s timeout" "status $(rc) after ${ms} ms: $(cat "$tmp/out.2")"
	fi
	nft delete table inet xbt
else
	skip "SYNs dropped" "nft is not installed"
fi

# --- the daemon: a change is reported before the interval -------------------------------
serve "$tmp/gwd"
"$agent" -c "$conf" -f -v 2>"$tmp/daemon.log" &
dpid=$!
pids+=($dpid)
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
if waitfile "$tmp/gwd/report-1.json"; then ok "daemon: reports at start"; else fail "daemon: reports at start" "$(tail -n 3 "$tmp/daemon.log")"; fi
printf 'owner = "it"\nmanaged = false\nlevel = 3\n' >"$tmp/attr"
if waitfile "$tmp/gwd/report-2.json" && jq -e '.attributes.managed==false' "$tmp/gwd/report-2.json" >/dev/null; then
	ok "daemon: a changed fact is reported within seconds"
else
	fail "daemon: a changed fact is reported within seconds" "$(tail -n 3 "$tmp/daemon.log")"
fi
sleep 1.5
if [ ! -e "$tmp/gwd/report-3.json" ]; then ok "daemon: unchanged facts wait for the interval"; else fail "daemon: unchanged facts wait for the interval"; fi
kill "$dpid"
if wait "$dpid"; then ok "daemon: SIGTERM, exit 0"; else fail "daemon: SIGTERM, exit 0"; fi
unserve

# --- print and config errors -----------------------------------------------------------
run -c "$conf" --print
if [ "$(rc)" = 0 ] && jq -e '(.nonce == null) and .os.family=="linux" and (.seq|type=="number")' "$tmp/out.1" >/dev/null; then
	ok "--print: the report without nonce, exit 0"
else
	fail "--print: the report without nonce, exit 0" "status $(rc)"
fi
printf 'gateway = "gw.example";\nintervall = 60;\ninterval = 1;\n' >"$tmp/bad.conf"
run -c "$tmp/bad.conf" --print
if [ "$(rc)" = 1 ] && [ "$(cat "$tmp/out.2")" = "$tmp/bad.conf:2: unknown setting \`intervall'
$tmp/bad.conf:1: gateway \`gw.example' is not an IPv4 or IPv6 address
$tmp/bad.conf:3: interval must be an integer from 5 to 86400" ]; then
	ok "bad config: every error as FILE:LINE, exit 1"
else
	fail "bad config: every error as FILE:LINE, exit 1" "status $(rc): $(cat "$tmp/out.2")"
fi

# --- man page -----------------------------------------------------------------------
if command -v man >/dev/null; then
	MANWIDTH=80 man --warnings -E UTF-8 -l "$root/deploy/man/xborder-posture.8" 2>"$tmp/man.err" >/dev/null
	if [ -s "$tmp/man.err" ]; then
		fail "xborder-posture.8 formats without warnings" "$(head -c 300 "$tmp/man.err")"
	else
		ok "xborder-posture.8 formats without warnings"
	fi
else
	skip "xborder-posture.8" "man is not installed"
fi

exit $(( failed > 0 ))
