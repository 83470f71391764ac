#!/usr/bin/env bash
# xborderctl against xb-ctlfake: the real control server (gateway/control.c)
# serving the canned results in tests/ctl/NAME.json (no root, no namespaces).
#
#   text output      rules, reload and dns exactly as tests/ctl/NAME.out (their
#                    text does not depend on the time); status, devices and
#                    tunnels by their fixed lines (test_ctl_render checks them
#                    whole at a fixed time)
#   -j, -p           the result as received (compared as JSON with jq)
#   command words    unique prefixes; unknown or ambiguous words: exit 2;
#                    cluster prune's words and its output (tests/ctl/cluster-prune*)
#   failures         no daemon, or the daemon says no (tests/ctl/fail/NAME.err):
#                    the message on stderr, exit 1
#   colour           only on a terminal (script(1) gives one), never with NO_COLOR
#   man page         deploy/man/xborderctl.8 formats without warnings
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
XB_BUILD=${XB_BUILD:-$root/build}
ctl=$XB_BUILD/bin/xborderctl
fake=$XB_BUILD/bin/xb-ctlfake
golden=$root/tests/ctl
failed=0

ok() { echo "ok - xborderctl/$1"; }
fail() { echo "not ok - xborderctl/$1${2:+: $2}"; failed=$((failed + 1)); }
skip() { echo "skip - xborderctl/$1: $2"; }

for b in "$ctl" "$fake"; do
	if [ ! -x "$b" ]; then
		fail "binaries" "$b is missing (run make)"
		exit 1
	fi
done
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# serve SOCKET DIR — xb-ctlfake in the background, waited for.
serve() {
	"$fake" "$1" "$2" 2>>"$tmp/fake.log" &
	pids+=($!)
	for _ in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.1; done
	fail "xb-ctlfake starts" "no socket $1: $(tail -n 3 "$tmp/fake.log")"
	exit 1
}
serve "$tmp/ok.sock" "$golden"
serve "$tmp/fail.sock" "$golden/fail"

# run ARGS... — xborderctl; stdout, stderr, status in $tmp/out.{1,2,rc}.
run() {
	"$ctl" "$@" >"$tmp/out.1" 2>"$tmp/out.2"
	echo $? >"$tmp/out.rc"
}
# expect NAME RC STDERR — the last run's status and exact stderr (may be "").
expect() {
	local rc; rc=$(cat "$tmp/out.rc")
	if [ "$rc" != "$2" ]; then
		fail "$1" "exit status $rc, not $2: $(head -c 300 "$tmp/out.2")"
	elif [ "$(cat "$tmp/out.2")" != "$3" ]; then
		fail "$1" "stderr is \"$(head -c 300 "$tmp/out.2")\", not \"$3\""
	else
		ok "$1"
	fi
}
# same NAME FILE — the last run's stdout is exactly FILE.
same() {
	if diff -u "$2" "$tmp/out.1" >"$tmp/diff"; then
		ok "$1"
	else
		fail "$1" "stdout differs from ${2#$root/}:"
		sed 's/^/#   /' "$tmp/diff"
	fi
}
# has NAME PATTERN — a line of the last run's stdout matches.
has() {
	if grep -qE -- "$2" "$tmp/out.1"; then ok "$1"; else fail "$1" "no line matches /$2/"; fi
}

# --- text -----------------------------------------------------------------------
export XBORDER_SOCKET=$tmp/ok.sock
for c in rules reload dns; do
	run "$c"
	expect "$c: exit 0, nothing on stderr" 0 ""
	same "$c: text as tests/ctl/$c.out" "$golden/$c.out"
done
run status
expect "status: exit 0" 0 ""
has "status: version" '^xborderd: 0\.1$'
has "status: backend and why" '^  backend: userspace \(kernel has no WireGuard\)$'
has "status: reload ok" '^last reload: ok, [0-9dhms]+ ago$'
run devices
expect "devices: exit 0" 0 ""
has "devices: header" '^NAME +GROUPS +ADDRESS4 +ADDRESS6 +ENDPOINT +HANDSHAKE +RX +TX +POSTURE$'
has "devices: never, no endpoint" '^bob +finance,sales +198\.51\.100\.11 +- +- +never +0 B +0 B +- \(3 failing, no report\)$'
has "devices: sizes in KiB and GiB" ' 1\.50 KiB +5\.00 GiB +-$'
run tunnels
expect "tunnels: exit 0" 0 ""
has "tunnels: a block per tunnel" '^tunnel: ctg$'
has "tunnels: transfer" '^  transfer: 1\.00 MiB received, 117\.74 MiB sent$'

# --- command words ----------------------------------------------------------------
run dev
cp "$tmp/out.1" "$tmp/dev.txt"
run devices
if cmp -s "$tmp/dev.txt" "$tmp/out.1"; then ok "\`dev' is devices"; else fail "\`dev' is devices"; fi
run devs
expect "unknown command: valid words listed, exit 2" 2 \
	"xborderctl: unknown command \`devs'; valid commands: status devices tunnels rules dns posture explain drops probe reload takeover device cluster"
run r
expect "ambiguous prefix: exit 2" 2 "xborderctl: ambiguous command \`r'; could be: rules reload"
run status extra
expect "extra argument: exit 2" 2 "xborderctl: usage: xborderctl status"
run
expect "no command: usage, exit 2" 2 "$("$ctl" -h)"
run explain bob-desktop
expect "explain without DEST: usage, exit 2" 2 "xborderctl: usage: xborderctl explain DEVICE DEST [PROTO[/PORT]]"
run explain bob-desktop 203.0.113.5 tcp/443
expect "explain: exit 0" 0 ""
has "explain: the verdict first" '^verdict: refused by rule rest \(small\.conf:52\)$'
has "explain: the failing check, expected and seen" '^disk_encryption +fail +enforce +true +false$'
run drops
expect "drops: exit 0" 0 ""
has "drops: the refused packet and the failing checks" '^[0-9dhms]+ ago +bob-desktop +198\.51\.100\.11 +203\.0\.113\.5 +tcp +443 +default deny +erp: managed \(disk_encryption\)$'
# cluster prune (ctl/prune.c): written out only; its words checked here
for c in "cluster prune" "cluster prune --dry-run"; do
	# shellcheck disable=SC2086
	run $c
	g=cluster-prune; [ "$c" = "cluster prune" ] || g=cluster-prune-dry
	expect "$c: exit 0, nothing on stderr" 0 ""
	same "$c: text as tests/ctl/$g.out" "$golden/$g.out"
done
run cluster
expect "cluster without a subcommand: usage, exit 2" 2 "xborderctl: usage: xborderctl cluster prune [--dry-run]"
run cluster purge
expect "cluster purge: unknown, exit 2" 2 "xborderctl: unknown cluster command \`purge'; valid: prune"
run cluster prune --force
expect "cluster prune --force: unknown argument, exit 2" 2 \
	"xborderctl: cluster prune: unknown argument \`--force'; usage: xborderctl cluster prune [--dry-run]"
run cluster prune --dry-run extra
expect "cluster prune with two arguments: usage, exit 2" 2 "xborderctl: usage: xborderctl cluster prune [--dry-run]"
run clu prune
expect "\`clu' is not cluster (a command that deletes is written out): exit 2" 2 \
	"xborderctl: unknown command \`clu'; valid commands: status devices tunnels rules dns posture explain drops probe reload takeover device cluster"
XBORDER_SOCKET=$tmp/fail.sock run cluster prune
expect "cluster prune refused (no cluster): the daemon's reason, exit 1" 1 \
	"xborderctl: cluster-prune failed: $(cat "$golden/fail/cluster-prune.err")"
run -h
has "-h: usage on stdout" '^usage: xborderctl \[-s SOCKET\] \[-j\] \[-p\] COMMAND \[ARGS\]$'

# --- JSON -------------------------------------------------------------------------
run -j reload
expect "-j reload: exit 0" 0 ""
same "-j reload: the result as received" "$golden/reload.json"
if command -v jq >/dev/null; then
	for c in status devices tunnels rules dns "explain bob-desktop 203.0.113.5 tcp/443" drops \
		"cluster prune"; do
		# shellcheck disable=SC2086
		run -j $c
		c=${c%% *}
		[ "$c" != cluster ] || c=cluster-prune
		lines=$(wc -l <"$tmp/out.1")
		if [ "$lines" = 1 ] && [ "$(jq -cS . "$tmp/out.1")" = "$(jq -cS . "$golden/$c.json")" ]; then
			ok "-j $c: one line, the same JSON"
		else
			fail "-j $c: one line, the same JSON" "$lines lines: $(head -c 200 "$tmp/out.1")"
		fi
	done
	run -p rules
	if [ "$(wc -l <"$tmp/out.1")" -gt 10 ] &&
	   [ "$(jq -cS . "$tmp/out.1")" = "$(jq -cS . "$golden/rules.json")" ]; then
		ok "-p rules: indented, the same JSON"
	else
		fail "-p rules: indented, the same JSON"
	fi
else
	skip "-j: the same JSON" "jq is not installed"
fi

# --- failures ---------------------------------------------------------------------
run -s "$tmp/none.sock" status
expect "no daemon: exit 1" 1 \
	"xborderctl: cannot connect to $tmp/none.sock: No such file or directory (is xborderd running?)"
XBORDER_SOCKET=$tmp/fail.sock run reload
expect "reload refused: the error and each FILE:LINE line, exit 1" 1 \
	"xborderctl: reload failed: $(head -n 1 "$golden/fail/reload.err")
$(tail -n +2 "$golden/fail/reload.err")"
if [ -s "$tmp/out.1" ]; then fail "reload refused: nothing on stdout"; else ok "reload refused: nothing on stdout"; fi
XBORDER_SOCKET=$tmp/fail.sock run -j status
expect "a failure with -j is still text on stderr" 1 "xborderctl: status failed: no canned answer"

# --- colour -------------------------------------------------------------------------
if command -v script >/dev/null; then
	script -qec "$ctl devices" /dev/null >"$tmp/tty.out" 2>&1
	if grep -q $'\033\\[' "$tmp/tty.out"; then ok "colour on a terminal"; else fail "colour on a terminal"; fi
	NO_COLOR=1 script -qec "$ctl devices" /dev/null >"$tmp/tty.out" 2>&1
	if grep -q $'\033\\[' "$tmp/tty.out"; then fail "no colour with NO_COLOR"; else ok "no colour with NO_COLOR"; fi
	run devices
	if grep -q $'\033' "$tmp/out.1"; then fail "no colour into a pipe"; else ok "no colour into a pipe"; fi
else
	skip "colour" "script(1) is not installed"
fi

# --- man page --------------------------------------------------------------------
if command -v man >/dev/null; then
	MANWIDTH=80 man --warnings -E UTF-8 -l "$root/deploy/man/xborderctl.8" 2>"$tmp/man.err" >/dev/null
	if [ -s "$tmp/man.err" ]; then
		fail "xborderctl.8 formats without warnings" "$(head -c 300 "$tmp/man.err")"
	else
		ok "xborderctl.8 formats without warnings"
	fi
else
	skip "xborderctl.8" "man is not installed"
fi

exit $(( failed > 0 ))
