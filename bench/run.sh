#!/usr/bin/env bash
# make bench — every benchmark under bench/, each printing its figures as
# ratios against a reference measured in the same run. Needs root.
set -u
cd "$(dirname "$0")/.."
rc=0
for b in bench/*.sh; do
	[ "$(basename "$b")" = run.sh ] && continue
	echo "== $(basename "${b%.sh}")"
	bash "$b" || rc=1
done
exit $rc
