#!/usr/bin/env bash
# Run xborder's tests and print one summary line: "N passed, N failed, N skipped".
#
#   tests/run.sh                 every unit test binary, every tests/cli/*.sh (command
#                                line and golden-file tests), then every tests/net/*.sh
#   tests/run.sh tests/net/foo   one test (script path, or unit name such as tests/unit/test_log)
#
# A test reports each case on its own line ("ok - NAME", "not ok - NAME: why",
# "skip - NAME: why"); a script that exits 77 without a line was skipped as a
# whole, one that exits non-zero without a "not ok" line counts as one failure.
# Each test's full output goes to $XB_BUILD/test-logs/NAME.log; a failing
# test's last lines are printed. Every test has a time limit (XB_TEST_TIMEOUT).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export XB_BUILD=${XB_BUILD:-$root/build}
# Real data for tests and benchmarks (the mainland domain list): in the repository.
export XB_DATA=${XB_DATA:-$root/tests/data}
timeout_s=${XB_TEST_TIMEOUT:-600}
logs=$XB_BUILD/test-logs
mkdir -p "$logs"

pass=0 fail=0 skip=0

run_one() {	# run_one NAME CMD...
	local name=$1; shift
	local log=$logs/${name//\//_}.log rc lines
	printf '# %s\n' "$name"
	timeout -k 10 "$timeout_s" "$@" >"$log" 2>&1 </dev/null
	rc=$?
	lines=$(grep -E '^(ok|not ok|skip) - ' "$log")
	[ -n "$lines" ] && printf '%s\n' "$lines"
	local p f s
	p=$(grep -c '^ok - ' "$log")
	f=$(grep -c '^not ok - ' "$log")
	s=$(grep -c '^skip - ' "$log")
	if [ "$rc" = 77 ] && [ $((p + f + s)) = 0 ]; then
		echo "skip - $name: $(tail -n 1 "$log")"
		s=1
	elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		[ "$rc" = 124 ] && why="timed out after ${timeout_s}s" || why="exited with status $rc"
		echo "not ok - $name: $why"
		f=1
	fi
	if [ "$f" != 0 ]; then
		echo "#   last lines of $log:"
		tail -n 30 "$log" | sed 's/^/#   | /'
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

targets=("$@")
if [ ${#targets[@]} = 0 ]; then
	for b in "$XB_BUILD"/tests/test_*; do [ -x "$b" ] && targets+=("$b"); done
	for t in "$root"/tests/cli/*.sh "$root"/tests/net/*.sh; do [ -f "$t" ] && targets+=("$t"); done
fi

for t in "${targets[@]}"; do
	case $t in
	*tests/unit/*) b=$XB_BUILD/tests/$(basename "${t%.c}") ;;
	*) b=$t ;;
	esac
	if [ -x "$b" ] && [ "${b%.sh}" = "$b" ]; then
		run_one "unit/$(basename "$b")" "$b"
	elif [ -f "${t%.sh}.sh" ]; then
		t=${t%.sh}.sh
		run_one "$(basename "$(dirname "$t")")/$(basename "${t%.sh}")" bash "$t"
	else
		echo "not ok - $t: no such test"
		fail=$((fail + 1))
	fi
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
